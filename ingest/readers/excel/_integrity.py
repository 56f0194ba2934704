"""Whether a workbook calamine refused is damaged, or intact and beyond our parser.

The two call for different actions: a truncated or damaged file is sent again;
a well-formed file that our spreadsheet engine cannot parse (a producer's
dialect) is saved again in another format. A ZIP-based workbook is intact when
every entry passes its CRC and every XML part is well-formed; a legacy one when
its compound file's directory reads and its Workbook stream starts with a BIFF
beginning-of-file record. Entries are inflated as streams and never kept.
"""

from __future__ import annotations

import io
import zipfile
from xml.parsers import expat

from ...formats import Probe

_DEFLATE_MAX_RATIO = 1032
_TOTAL_MAX = 4 << 30
"""Inflated bytes checked at most; a larger package is not judged intact."""
_BOF = (b"\x09\x08", b"\x09\x04", b"\x09\x02", b"\x09\x00")


def is_intact(data: bytes) -> bool:
    """Whether the workbook's container is whole and its XML well-formed."""
    probe = Probe(data)
    if probe.zip is not None:
        return probe.zip.complete and _zip_intact(data)
    if probe.ole is not None:
        return probe.ole.complete and probe.ole.workbook_head[:2] in _BOF
    return False


def _zip_intact(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            infos = package.infolist()
            if sum(i.file_size for i in infos) > _TOTAL_MAX or any(
                    i.file_size > _DEFLATE_MAX_RATIO * max(i.compress_size, 1) for i in infos):
                return False
            for info in infos:
                xml = info.filename.lower().endswith((".xml", ".rels"))
                if not _entry_intact(package, info, xml):
                    return False
    except Exception:  # noqa: BLE001 - whatever fails to read is damage
        return False
    return True


def _entry_intact(package: zipfile.ZipFile, info: zipfile.ZipInfo, xml: bool) -> bool:
    """Read to the end (zipfile checks the CRC there); an XML part also parsed."""
    parser = expat.ParserCreate() if xml else None
    if parser is not None:
        def refuse(*_args: object) -> None:
            raise ValueError("document type")  # entities are not expanded here

        parser.StartDoctypeDeclHandler = refuse
        parser.EntityDeclHandler = refuse
    with package.open(info) as stream:
        while chunk := stream.read(1 << 20):
            if parser is not None:
                parser.Parse(chunk, False)
    if parser is not None:
        parser.Parse(b"", True)
    return True
