"""Pieces of an output that must wait on disk, sealed with age: never plaintext.

The feature matrix is made batch by batch, but each array of the npz is one
member written whole after the one before, so each batch's pieces wait in a
spill until the archive is written. Every piece is sealed on its own with age
(pyrage, X25519) to an identity generated for the spill and held in memory
only: the spill is unreadable once the process ends, and is deleted when
closed. A spill file is the sealed pieces one after the other, each preceded
by its length (8 bytes, little-endian).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyrage

from .._fs import FILE_MODE
from ..errors import OutputError

_LENGTH = 8


class Spill:
    """Byte pieces sealed one by one into a new owner-only file in ``folder``."""

    def __init__(self, folder: Path, label: str) -> None:
        identity = pyrage.x25519.Identity.generate()
        self._identity = identity
        self._recipient = identity.to_public()
        self._label = label
        self.path = folder / f".spill-{label}-{secrets.token_hex(6)}"
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
        self._file = os.fdopen(fd, "w+b")
        self.pieces = 0

    def write(self, piece: bytes) -> None:
        sealed = pyrage.encrypt(piece, [self._recipient])
        try:
            self._file.write(len(sealed).to_bytes(_LENGTH, "little"))
            self._file.write(sealed)
        except OSError as exc:  # a full disk: an output error, not the reader's
            raise OutputError(f"features: staging the {self._label} pieces in "
                              f"{self.path.parent} failed ({exc.strerror or 'I/O error'}); "
                              "free space there and run again") from None
        self.pieces += 1

    def read(self) -> Iterator[bytes]:
        """The pieces, in the order written, one at a time."""
        self._file.flush()
        with open(self.path, "rb") as fh:
            for _ in range(self.pieces):
                size = int.from_bytes(fh.read(_LENGTH), "little")
                sealed = fh.read(size)
                try:
                    yield pyrage.decrypt(sealed, [self._identity])
                except pyrage.DecryptError:
                    raise OutputError(f"features: the staged {self._label} pieces were "
                                      "damaged while the run went on; nothing was "
                                      "published") from None

    def close(self) -> None:
        """Delete the spill (it is of no use to anyone once the run ends)."""
        self._file.close()
        self.path.unlink(missing_ok=True)


class ArraySpill:
    """A one-dimensional array appended in parts, kept in a :class:`Spill`."""

    def __init__(self, folder: Path, label: str, dtype: type[np.generic]) -> None:
        self.dtype = np.dtype(dtype)
        self.length = 0
        self._spill = Spill(folder, label)

    def append(self, part: np.ndarray) -> None:
        if part.size:
            self._spill.write(np.ascontiguousarray(part, dtype=self.dtype).tobytes())
            self.length += int(part.size)

    def parts(self, dtype: np.dtype | type[np.generic] | None = None) -> Iterator[np.ndarray]:
        """The parts in order, as ``dtype`` (default: as kept)."""
        for piece in self._spill.read():
            part = np.frombuffer(piece, dtype=self.dtype)
            yield part if dtype is None else part.astype(dtype, copy=False)

    def close(self) -> None:
        self._spill.close()
