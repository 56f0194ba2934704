"""An OLE2 compound file's streams, from its directory (which may lie anywhere in the file).

Legacy Office files (xls, doc, ppt) and encrypted OOXML packages are OLE2 files;
which one is told by the streams in the root storage (``Workbook``/``Book``,
``WordDocument``, ``EncryptedPackage``), not by the magic, which they share.
xlwt puts the directory last, past any fixed head.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_WORKBOOK_HEAD = 4096
"""Bytes of the Workbook stream kept: MS-XLS puts FILEPASS right after the first BOF."""
_BIFF_BOF = (b"\x09\x08\x10\x00\x00\x06\x05\x00", b"\x09\x08\x08\x00\x00\x05\x05\x00")
"""BIFF8 and BIFF5 beginning-of-file records of a workbook globals substream."""
_GUESSED = {"workbook": "Workbook", "book": "Book\x00", "encryptedpackage": "EncryptedPackage",
            "worddocument": "WordDocument", "powerpoint document": "PowerPoint Document"}
"""Stream names looked for in the bytes when the directory cannot be read."""


@dataclass(frozen=True)
class OleFacts:
    streams: frozenset[str]
    """Lower-cased names of the root storage's entries."""
    workbook_head: bytes
    """The first bytes of the ``Workbook`` (or ``Book``) stream; empty when there is none."""
    complete: bool
    """Whether the directory was read (False: damaged; ``streams`` are then guessed)."""


def ole_facts(data: bytes) -> OleFacts | None:
    if not data.startswith(OLE2_MAGIC):
        return None
    try:
        import olefile

        with olefile.OleFileIO(io.BytesIO(data)) as ole:
            streams = frozenset(e.name.lower() for e in ole.root.kids)
            book = next((n for n in ("workbook", "book") if n in streams), None)
            head = _stream_head(ole, data, book, _WORKBOOK_HEAD) if book else b""
        return OleFacts(streams, head, True)
    except Exception:  # noqa: BLE001 - damaged: guess from the bytes, the reader reports damage
        head = data[:1 << 16]
        guessed = {k for k, v in _GUESSED.items() if v.encode("utf-16-le") in head}
        if any(bof in head for bof in _BIFF_BOF):
            guessed.add("workbook")
        return OleFacts(frozenset(guessed), b"", False)


def _stream_head(ole: Any, data: bytes, name: str, size: int) -> bytes:
    """The first ``size`` bytes of a root stream, following its sector chain only that far
    (olefile would read the whole stream)."""
    entry = next(e for e in ole.root.kids if e.name.lower() == name)
    wanted = min(size, entry.size)
    if entry.size < ole.minisectorcutoff:
        return bytes(ole.openstream(entry.name).read(wanted))
    sector, step = entry.isectStart, ole.sectorsize
    fat = ole.fat
    out = bytearray()
    while len(out) < wanted and 0 <= sector < len(fat):
        start = (sector + 1) * step  # sector 0 follows the header, one sector long
        if start + step > len(data):
            break
        out += data[start:start + step]
        sector = fat[sector]
    return bytes(out[:wanted])
