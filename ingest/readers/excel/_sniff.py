"""Recognising the workbook formats by their first bytes."""

from __future__ import annotations

import re
import struct

from ...crypto.office import OLE2_MAGIC

# BIFF8 and BIFF5 beginning-of-file records of a workbook globals substream
_BIFF_BOF = (b"\x09\x08\x10\x00\x00\x06\x05\x00", b"\x09\x08\x08\x00\x00\x05\x05\x00")
_ODS_MIME = b"application/vnd.oasis.opendocument.spreadsheet"


def _zip_names(head: bytes) -> list[bytes]:
    """Names of the ZIP entries whose local headers lie in ``head``."""
    names = []
    for match in re.finditer(rb"PK\x03\x04", head):
        start = match.start()
        if start + 30 > len(head):
            break
        (length,) = struct.unpack_from("<H", head, start + 26)
        names.append(head[start + 30:start + 30 + length])
    return names


def _is_xlsb(names: list[bytes]) -> bool:
    return any(n == b"xl/workbook.bin" or (n.startswith(b"xl/worksheets/") and n.endswith(b".bin"))
               for n in names)


def sniff_xlsx(head: bytes) -> bool:
    """An Office Open XML workbook: a ZIP with ``[Content_Types].xml`` and ``xl/``."""
    if not head.startswith(b"PK\x03\x04"):
        return False
    names = _zip_names(head)
    return (b"[Content_Types].xml" in names and any(n.startswith(b"xl/") for n in names)
            and not _is_xlsb(names))


def sniff_xlsb(head: bytes) -> bool:
    """An Excel binary workbook: the same ZIP, with ``.bin`` parts."""
    return head.startswith(b"PK\x03\x04") and _is_xlsb(_zip_names(head))


def sniff_ods(head: bytes) -> bool:
    """An OpenDocument spreadsheet: a ZIP whose first entry is its ``mimetype``."""
    return (head.startswith(b"PK\x03\x04") and head[30:38] == b"mimetype"
            and _ODS_MIME in head[38:38 + 80])


def sniff_xls(head: bytes) -> bool:
    """A BIFF workbook in an OLE2 file (a Word document in OLE2 is not claimed).

    The directory may lie past ``head`` (xlwt puts it last), so the BIFF
    beginning-of-file record of the workbook stream is accepted too. An
    encrypted Office file is claimed so that it is refused clearly.
    """
    if not head.startswith(OLE2_MAGIC):
        return False
    utf16 = ("Workbook".encode("utf-16-le"), "Book\x00".encode("utf-16-le"),
             "EncryptedPackage".encode("utf-16-le"))
    return any(name in head for name in utf16) or any(bof in head for bof in _BIFF_BOF)
