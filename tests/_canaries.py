"""Canary values and the scan that looks for any fragment of them in bytes.

A canary is a value made of characters chosen at random from a seed, so that any
8-character window of it is, for practical purposes, unique in the world: finding
one in a file means the value (or a piece of it) leaked there. Each window is
looked for as UTF-8, UTF-16 LE and BE, and base64 at each of the three byte
alignments; every gzip or zstd stream found inside a file is inflated and its
content scanned too (a compressed log or database page hides a plain one).

The scan is vectorised: each needle's first 8 bytes are read as one 64-bit word,
and every 8-byte window of a file is compared against the set of those words with
numpy, so a few thousand needles cost about as much as one.
"""

from __future__ import annotations

import base64
import random
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WINDOW = 8
"""The shortest leaked fragment the scan must find."""

_GZIP = b"\x1f\x8b\x08"
_ZSTD = b"\x28\xb5\x2f\xfd"
_INFLATE_LIMIT = 256 * 2**20
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class Canary:
    label: str
    value: str


class Maker:
    """Distinctive values for each column, as far as the column's rules allow."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def _pick(self, alphabet: str, n: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def letters(self, n: int = 24) -> str:
        return self._pick(_UPPER, n)

    def case_id(self) -> str:
        """Ten digits (the rule); the first never 0, so no run of zeros."""
        return self._pick("123456789", 1) + self._pick("0123456789", 9)

    def person_id(self) -> str:
        """P and eight upper-case hex digits (the rule), letters only: no digit run."""
        return "P" + self._pick("ABCDEF", 8)

    def diagnosis_code(self) -> str:
        """The longest code the rule allows: letter, digit, letter, dot, four letters."""
        first = self._pick("ABCDEFGHIJKLMNOPQRSTVWXYZ", 1)
        return f"{first}{self._pick('0123456789', 1)}{self.letters(1)}.{self.letters(4)}"

    def lab_value(self) -> str:
        """A non-negative number written as its shortest float repr (it round-trips)."""
        whole = self._pick("123456789", 1) + self._pick("0123456789", 3)
        return f"{whole}.{self._pick('0123456789', 5)}{self._pick('123456789', 1)}"


def forms(value: str) -> list[bytes]:
    """Every 8-character window of ``value``, in every form the scan looks for."""
    found: list[bytes] = []
    for start in range(max(1, len(value) - WINDOW + 1)):
        window = value[start:start + WINDOW]
        raw = window.encode()
        found += [raw, window.encode("utf-16-le"), window.encode("utf-16-be")]
        for pad in range(3):
            # the base64 characters that depend on the window's bytes alone, with
            # the window starting at each offset within a 3-byte group
            enc = base64.b64encode(b"\0" * pad + raw)
            first = -(-pad // 3) * 4
            whole = (pad + len(raw)) // 3 * 4
            if whole - first >= WINDOW:
                found.append(enc[first:whole])
    return found


class Scanner:
    """Finds any needle of any canary in bytes, files and folders."""

    def __init__(self, canaries: Iterable[Canary]) -> None:
        self.by_head: dict[int, list[tuple[str, bytes]]] = {}
        for canary in canaries:
            for needle in forms(canary.value):
                assert len(needle) >= WINDOW, needle
                head = int.from_bytes(needle[:WINDOW], "little")
                self.by_head.setdefault(head, []).append((canary.label, needle))
        self.heads = np.array(sorted(self.by_head), dtype=np.uint64)
        self.files_scanned: list[Path] = []

    def scan_bytes(self, data: bytes, depth: int = 0) -> set[str]:
        hits = self._direct(data)
        if depth < 3:
            for inner in _inflated(data):
                hits |= {f"{h} (compressed)" for h in self.scan_bytes(inner, depth + 1)}
        return hits

    def _direct(self, data: bytes) -> set[str]:
        hits: set[str] = set()
        arr = np.frombuffer(data, dtype=np.uint8)
        for offset in range(WINDOW):
            usable = (len(arr) - offset) // WINDOW * WINDOW
            if usable <= 0:
                break
            words = arr[offset:offset + usable].view("<u8")
            for index in np.nonzero(np.isin(words, self.heads))[0].tolist():
                pos = offset + index * WINDOW
                head = int(words[index])
                for label, needle in self.by_head[head]:
                    if data[pos:pos + len(needle)] == needle:
                        hits.add(label)
        return hits

    def scan(self, roots: Iterable[Path], skip: tuple[Path, ...] = ()) -> list[str]:
        """``label in file`` for each canary found in a file under ``roots``."""
        found = []
        for file in files_under(roots):
            if any(file.is_relative_to(s) for s in skip):
                continue
            try:
                data = file.read_bytes()
            except (FileNotFoundError, PermissionError):  # gone meanwhile (a socket, a lock)
                continue
            self.files_scanned.append(file)
            found += [f"{label} in {file}" for label in sorted(self.scan_bytes(data))]
        return found


def files_under(roots: Iterable[Path]) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            for path in sorted(root.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    yield path


def _inflated(data: bytes) -> Iterator[bytes]:
    """The content of every gzip and zstd stream in ``data`` (as far as it inflates)."""
    pos = data.find(_GZIP)
    while pos >= 0:
        inflater = zlib.decompressobj(wbits=31)
        try:
            out = inflater.decompress(data[pos:], _INFLATE_LIMIT)
        except zlib.error:
            out = b""
        if out:
            yield out
        pos = data.find(_GZIP, pos + 1)
    pos = data.find(_ZSTD)
    if pos >= 0:
        import zstandard

        while pos >= 0:
            out = bytearray()
            reader = zstandard.ZstdDecompressor().stream_reader(data[pos:],
                                                                read_across_frames=False)
            try:
                while len(out) < _INFLATE_LIMIT and (chunk := reader.read(2**20)):
                    out += chunk
            except zstandard.ZstdError:
                pass
            if out:
                yield bytes(out)
            pos = data.find(_ZSTD, pos + 1)
