"""Outputs appear atomically or not at all.

A run writes into a private staging folder beside the output root, each output
streamed straight into its file (hashed as it is written, fsynced when it is
closed, so no output needs to be held whole in memory), writes the manifest
last, then renames the folder into place in one step (an atomic exchange when a
forced re-run replaces earlier outputs). A killed run leaves only a staging
folder, removed by the next run. One lock per delivery keeps two runs of the
same delivery from publishing at once. A delivery of several tables stages
every table's outputs in the same folder under the one manifest, so they appear
together or not at all.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import io
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from .._fs import create_private, exclusive_lock, fsync_dir, private_dir
from ..errors import AlreadyProcessed, OutputError

MANIFEST = "manifest.json"
QUARANTINE = "quarantine.jsonl.age"
_RENAME_EXCHANGE = 2


def table_output(table: str | None, name: str) -> str:
    """An output's file name: ``name`` in a delivery of one table (None), else
    ``<table>.<name>``, so the tables of one delivery share its folder."""
    return f"{table}.{name}" if table else name


@dataclass(frozen=True)
class Output:
    path: str
    kind: str
    sha256: str
    bytes: int


def delivery_dir(root: Path, delivery_id: str) -> Path:
    return root / delivery_id


def is_published(root: Path, delivery_id: str) -> bool:
    return (delivery_dir(root, delivery_id) / MANIFEST).is_file()


@contextlib.contextmanager
def delivery_lock(root: Path, delivery_id: str) -> Iterator[None]:
    """Hold an exclusive lock for ``delivery_id`` under ``root`` (blocks until free)."""
    with contextlib.ExitStack() as held:
        with _writing(f"locking delivery {delivery_id} in {root}"):
            held.enter_context(exclusive_lock(private_dir(root / ".locks")
                                              / f"{delivery_id}.lock"))
        yield


class Staging:
    """A folder of outputs that becomes ``root/<delivery_id>`` only on :meth:`publish`."""

    def __init__(self, root: Path, delivery_id: str) -> None:
        self.delivery_id = delivery_id
        self._outputs: dict[str, Output] = {}
        with _writing(f"preparing the outputs of delivery {delivery_id} in {root}"):
            self.root = private_dir(root)
            _remove_stale(self.root, delivery_id)
            self.path = self.root / f".staging-{delivery_id}-{secrets.token_hex(4)}"
            self.path.mkdir(mode=0o700)

    @contextlib.contextmanager
    def open(self, name: str, kind: str) -> Iterator[BinaryIO]:
        """A new output file, written as a stream: hashed as it goes, fsynced on close.

        Safe to use from several threads at once, one file each.
        """
        with _writing(f"writing {name} of delivery {self.delivery_id}"):
            with create_private(self.path / name) as fh:
                raw = HashingWriter(fh)
                buffered = io.BufferedWriter(raw, buffer_size=1 << 20)  # type: ignore[type-var]
                yield buffered  # type: ignore[misc]
                buffered.flush()
        self._outputs[name] = Output(name, kind, raw.sha256.hexdigest(), raw.size)

    @property
    def outputs(self) -> list[Output]:
        """What was staged, by file name (the manifest is last, once written)."""
        return sorted(self._outputs.values(), key=lambda o: (o.kind == "manifest", o.path))

    def clear(self) -> None:
        """Remove what was staged so far (a stage that is run again starts afresh)."""
        for entry in self.path.iterdir():
            entry.unlink()
        self._outputs.clear()

    def add(self, name: str, data: bytes, kind: str) -> Output:
        """A whole output at once."""
        with self.open(name, kind) as sink:
            sink.write(data)
        return self._outputs[name]

    def publish(self, manifest: dict, force: bool = False,
                before_rename: Callable[[Output], None] | None = None) -> Path:
        """Write the manifest, then move the folder into place in one rename.

        ``before_rename`` sees the manifest's output entry once it is on disk, so a
        record of it (the audit log) exists before the outputs become visible.
        """
        manifest["outputs"] = [asdict(o) for o in self.outputs]
        data = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
        entry = self.add(MANIFEST, data, "manifest")
        if before_rename is not None:
            before_rename(entry)
        final = delivery_dir(self.root, self.delivery_id)
        with _writing(f"publishing delivery {self.delivery_id} to {final}"):
            fsync_dir(self.path)
            if final.exists():
                if not force:
                    raise AlreadyProcessed(f"delivery {self.delivery_id} is already processed "
                                           f"in {final}; use --force to replace its outputs")
                _exchange(self.path, final)
            else:
                os.rename(self.path, final)
        if self.path.exists():  # after an exchange: the replaced outputs
            shutil.rmtree(self.path, ignore_errors=True)
        with _writing(f"syncing {self.root} after publishing delivery {self.delivery_id}",
                      published=True):
            fsync_dir(self.root)
        return final

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.path.exists():
            self.discard()


class HashingWriter(io.RawIOBase):
    """A binary file that keeps the SHA-256 and size of what went through it."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self.sha256.update(data)
        self._fh.write(data)
        self.size += len(data)
        return len(data)


@contextlib.contextmanager
def _writing(what: str, published: bool = False) -> Iterator[None]:
    """An OS error (disk full, read-only or unwritable folder) as our own clear error.

    Whatever was staged is removed by :class:`Staging` on the way out, so the
    output folder is left as it was.
    """
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        where = f" ({exc.filename})" if exc.filename else ""
        then = ("the outputs are in place, but the disk reported an error: check it" if published
                else "nothing was published. Free space on the output folder's disk or make "
                "it writable, then run again")
        raise OutputError(f"{what}: {reason}{where}; {then}") from None


def _exchange(a: Path, b: Path) -> None:
    """Swap two folders atomically (Linux renameat2 RENAME_EXCHANGE)."""
    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd = -100
    res = libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if res != 0:
        err = ctypes.get_errno()
        raise OutputError(f"could not replace {b}: {os.strerror(err)}")


def _remove_stale(root: Path, delivery_id: str) -> None:
    """Staging folders of this delivery left by a killed run (we hold its lock)."""
    for stale in root.glob(f".staging-{delivery_id}-*"):
        shutil.rmtree(stale, ignore_errors=True)
