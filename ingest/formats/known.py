"""Formats this tool knows but does not read, registered so that they can be named.

A delivery holding a PDF or a Parquet file and no table is refused with the
format named ("PDF document"), so the sender knows what to send instead.
"""

from __future__ import annotations

from . import Format, Kind, Probe, register

_ODT = b"application/vnd.oasis.opendocument.text"
_ODP = b"application/vnd.oasis.opendocument.presentation"


def _ooxml_under(probe: Probe, folder: str) -> bool:
    return probe.zip is not None and probe.zip.ooxml and probe.zip.any_under(folder) \
        and not probe.zip.any_under("xl/")


def _mimetype(probe: Probe, mime: bytes) -> bool:
    return probe.zip is not None and (probe.zip.mimetype or b"").strip() == mime


def _ole_stream(probe: Probe, stream: str) -> bool:
    return probe.ole is not None and stream in probe.ole.streams \
        and not probe.is_("office-encrypted")


_SPECIFIC_OOXML = ("xlsx", "xlsb", "docx", "pptx")
_SPECIFIC_ODF = ("ods", "odt", "odp")
_SPECIFIC_OLE = ("xls", "doc", "ppt", "office-encrypted")

for _fmt in (
    Format("pdf", Kind.NOT_READ, "PDF document", lambda p: p.head.startswith(b"%PDF-")),
    Format("docx", Kind.NOT_READ, "Word document", lambda p: _ooxml_under(p, "word/")),
    Format("pptx", Kind.NOT_READ, "PowerPoint presentation",
           lambda p: _ooxml_under(p, "ppt/") and not p.zip.any_under("word/")),  # type: ignore[union-attr]
    Format("ooxml", Kind.NOT_READ, "Office Open XML document (not a workbook)",
           lambda p: p.zip is not None and p.zip.ooxml
           and not any(p.is_(n) for n in _SPECIFIC_OOXML)),
    Format("odt", Kind.NOT_READ, "OpenDocument text document", lambda p: _mimetype(p, _ODT)),
    Format("odp", Kind.NOT_READ, "OpenDocument presentation", lambda p: _mimetype(p, _ODP)),
    Format("opendocument", Kind.NOT_READ, "OpenDocument file (not a spreadsheet)",
           lambda p: p.zip is not None and p.zip.opendocument
           and not any(p.is_(n) for n in _SPECIFIC_ODF)),
    Format("doc", Kind.NOT_READ, "Word 97-2003 document",
           lambda p: _ole_stream(p, "worddocument")),
    Format("ppt", Kind.NOT_READ, "PowerPoint 97-2003 presentation",
           lambda p: _ole_stream(p, "powerpoint document")),
    Format("ole2", Kind.NOT_READ, "Microsoft compound document (not a workbook)",
           lambda p: p.ole is not None and not any(p.is_(n) for n in _SPECIFIC_OLE)),
    Format("parquet", Kind.NOT_READ, "Parquet file", lambda p: p.head.startswith(b"PAR1")),
    Format("sqlite", Kind.NOT_READ, "SQLite database",
           lambda p: p.head.startswith(b"SQLite format 3\x00")),
    Format("rar", Kind.NOT_READ, "RAR archive", lambda p: p.head.startswith(b"Rar!\x1a\x07")),
    Format("png", Kind.NOT_READ, "PNG image", lambda p: p.head.startswith(b"\x89PNG\r\n\x1a\n")),
    Format("jpeg", Kind.NOT_READ, "JPEG image", lambda p: p.head.startswith(b"\xff\xd8\xff")),
):
    register(_fmt)
