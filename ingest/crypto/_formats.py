"""The encryption layers, declared to :mod:`ingest.formats`: how each is recognised,
and where its decryptor is.

OpenPGP is told by its first packet. An encrypted Office file is told from its
compound file's directory, and for a legacy workbook from the first records of
its Workbook stream; msoffcrypto-tool (imported with the decryptor, in
:mod:`ingest.crypto.office`) is asked only about a file that holds an
``EncryptionInfo`` stream or is a Word or PowerPoint document.
"""

from __future__ import annotations

import struct

from ..formats import Format, Kind, Probe, register
from .openpgp import is_openpgp

_BOF, _FILEPASS, _EOF = 0x0809, 0x002F, 0x000A


def is_encrypted_office(probe: Probe) -> bool:
    """An encrypted Office file, from the compound file's directory.

    A plain xls (OLE2 without encryption) or any other OLE2 file is not: it is
    left to the readers. For a workbook only the first records of its Workbook
    stream are read: a FILEPASS record there is what makes a legacy workbook
    encrypted (msoffcrypto-tool would read the whole stream to learn the same).
    """
    ole = probe.ole
    if ole is None or not ole.complete:
        return False
    # the order msoffcrypto.OfficeFile tries the formats in
    if "encryptioninfo" in ole.streams or "worddocument" in ole.streams:
        return _msoffcrypto_says_encrypted(probe.data)
    if "workbook" in ole.streams:
        return _has_filepass(ole.workbook_head)
    if "powerpoint document" in ole.streams:
        return _msoffcrypto_says_encrypted(probe.data)
    return False


def _msoffcrypto_says_encrypted(data: bytes) -> bool:
    from .office import msoffcrypto_says_encrypted  # msoffcrypto, kept off disk there

    return msoffcrypto_says_encrypted(data)


def _has_filepass(stream: bytes) -> bool:
    """A FILEPASS record for RC4 or XOR obfuscation among the workbook's first records
    (msoffcrypto-tool's test, on the head of the stream)."""
    if len(stream) < 4 or struct.unpack_from("<H", stream)[0] != _BOF:
        return False
    pos = 0
    while pos + 4 <= len(stream):
        number, size = struct.unpack_from("<HH", stream, pos)
        if number == _EOF:
            return False
        if number == _FILEPASS:
            if pos + 6 > len(stream):
                return False
            (kind,) = struct.unpack_from("<H", stream, pos + 4)
            return kind in (0x0000, 0x0001)  # XOR obfuscation, RC4
        pos += 4 + size
    return False


for _fmt in (
    Format("office-encrypted", Kind.ENCRYPTION, "password-protected Office file",
           is_encrypted_office, "ingest.crypto.office:open_office"),
    Format("openpgp", Kind.ENCRYPTION, "OpenPGP-encrypted file",
           lambda probe: is_openpgp(probe.head), "ingest.crypto.openpgp:open_openpgp"),
):
    register(_fmt)
