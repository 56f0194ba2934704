"""A ZIP's entry names, from its central directory at the end of the file.

Office writers order a package's entries as they like (LibreOffice, Gnumeric
and openpyxl put ``[Content_Types].xml`` last), so what a ZIP holds is read
from its central directory, never guessed from the first local headers. A ZIP
whose directory cannot be read (truncated) falls back to walking its local
headers, so a damaged workbook is still recognised as a workbook and reported
as damaged.
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

_LOCAL = b"PK\x03\x04"
_EMPTY = b"PK\x05\x06"
_SPANNED = b"PK\x07\x08"
_DESCRIPTOR = 0x8
_MIMETYPE_MAX = 256
_NAMES_MAX = 50_000
"""Entries listed at most; a ZIP declaring more is an archive, not a document."""
_OOXML_FIRST = ("docprops/", "xl/", "word/", "ppt/", "[content_types].xml", "_rels/")
"""Where OOXML writers start their packages."""
OPENDOCUMENT = b"application/vnd.oasis.opendocument."


@dataclass(frozen=True)
class ZipFacts:
    names: tuple[str, ...]
    """Entry names, in the directory's order (or the local headers' when it is unreadable)."""
    first: str | None
    """The first entry in the file (OpenDocument puts its ``mimetype`` there, stored)."""
    mimetype: bytes | None
    """The content of a stored first ``mimetype`` entry (OpenDocument), else None."""
    complete: bool
    """Whether the central directory was read (False: truncated or damaged)."""

    def has(self, name: str) -> bool:
        wanted = name.lower()
        return any(n.lower() == wanted for n in self.names)

    def any_under(self, folder: str) -> bool:
        prefix = folder.lower()
        return any(n.lower().startswith(prefix) for n in self.names)

    @property
    def ooxml(self) -> bool:
        """An Office Open XML package (xlsx, docx, ...): it has ``[Content_Types].xml``,
        or, its directory unreadable, starts where OOXML writers start."""
        if self.has("[Content_Types].xml") or self.has("_rels/.rels"):
            return True
        return not self.complete and (self.first or "").lower().startswith(_OOXML_FIRST)

    @property
    def opendocument(self) -> bool:
        """An OpenDocument file (ods, odt, ...): its first entry is its ``mimetype``."""
        return self.first == "mimetype" and (
            self.mimetype is None or self.mimetype.startswith(OPENDOCUMENT))

    @property
    def package(self) -> bool:
        """A document built on ZIP rather than an archive of files."""
        return self.ooxml or self.opendocument


def zip_facts(data: bytes) -> ZipFacts | None:
    """The facts of a ZIP starting at byte 0 (an empty or spanned one included), else None."""
    start = 4 if data.startswith(_SPANNED) else 0
    if not (data.startswith(_EMPTY) or data[start:start + 4] == _LOCAL):
        return None
    first, mimetype = _first_entry(data, start)
    if _declared_entries(data) > _NAMES_MAX:
        # no Office package has so many parts: an archive, which the ZIP opener
        # refuses by its own limit without this reading its directory first
        return ZipFacts((), first, mimetype, True)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = tuple(archive.namelist())
            if first == "mimetype" and mimetype is None:  # compressed, against the rules
                info = archive.getinfo("mimetype")
                if info.file_size <= _MIMETYPE_MAX and not info.flag_bits & 0x1:
                    mimetype = archive.read(info)
        complete = True
    except Exception:  # noqa: BLE001 - an unreadable directory: fall back to the local headers
        names = tuple(n.decode("utf-8", "replace") for n in local_names(data))
        complete = False
    return ZipFacts(names, first, mimetype, complete)


def _declared_entries(data: bytes) -> int:
    """The entry count in the end-of-central-directory record (0 if not found; the
    ZIP64 marker 0xFFFF counts as unknown)."""
    end = data.rfind(_EMPTY, max(0, len(data) - (1 << 16) - 22))
    if end < 0 or end + 22 > len(data):
        return 0
    (count,) = struct.unpack_from("<H", data, end + 10)
    return 0 if count == 0xFFFF else count


def _first_entry(data: bytes, pos: int) -> tuple[str | None, bytes | None]:
    if data[pos:pos + 4] != _LOCAL or pos + 30 > len(data):
        return None, None
    method, = struct.unpack_from("<H", data, pos + 8)
    size, = struct.unpack_from("<I", data, pos + 18)
    name_len, extra_len = struct.unpack_from("<HH", data, pos + 26)
    name = data[pos + 30:pos + 30 + name_len].decode("utf-8", "replace")
    if name != "mimetype" or method != 0 or size > _MIMETYPE_MAX:
        return name, None
    body = pos + 30 + name_len + extra_len
    return name, data[body:body + size]


def local_names(data: bytes) -> Iterator[bytes]:
    """Names of the entries by their local headers, in file order, as far as they chain.

    Walking the headers (rather than searching the bytes) keeps a stored
    workbook *inside* a delivery ZIP from making the delivery look like one.
    """
    pos = 4 if data.startswith(_SPANNED) else 0
    while data[pos:pos + 4] == _LOCAL and pos + 30 <= len(data):
        (flags,) = struct.unpack_from("<H", data, pos + 6)
        (size,) = struct.unpack_from("<I", data, pos + 18)
        name_len, extra_len = struct.unpack_from("<HH", data, pos + 26)
        yield data[pos + 30:pos + 30 + name_len]
        if flags & _DESCRIPTOR or size == 0xFFFFFFFF:
            return  # size unknown here (streamed or ZIP64): stop walking
        pos += 30 + name_len + extra_len + size
