"""Password-protected Office files (Excel's "Encrypt with Password"), decrypted in memory.

An encrypted xlsx is an OLE2 compound file holding ``EncryptionInfo`` and
``EncryptedPackage`` streams (ECMA-376 agile or standard encryption); an
encrypted legacy xls keeps its BIFF records RC4-encrypted behind a FILEPASS
record. msoffcrypto-tool does the cryptography for both.

msoffcrypto-tool copies legacy (xls, doc, ppt) files through
``tempfile.TemporaryFile`` while decrypting, which would put plaintext on disk;
those modules are pointed at an in-memory stand-in below, so nothing is.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import IO, Any

import msoffcrypto
import olefile
from msoffcrypto import exceptions as mso_errors
from msoffcrypto.format import doc97, ppt97, xls97

from ..errors import DecryptionError

OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
EXCEL_DEFAULT_PASSWORD = "VelvetSweatshop"
"""Excel encrypts "read-only recommended" xls workbooks with this published password."""

_FOREIGN = (mso_errors.FileFormatError, mso_errors.ParseError, mso_errors.DecryptionError,
            OSError, EOFError, ValueError, KeyError, IndexError, AssertionError,
            struct.error, zlib.error, UnicodeError, TypeError, AttributeError)
"""What msoffcrypto-tool and olefile raise on a damaged or unexpected file."""


class _MemoryTempfile:
    """Stands in for the ``tempfile`` module inside msoffcrypto's legacy formats."""

    @staticmethod
    def TemporaryFile(*_args: Any, **_kwargs: Any) -> IO[bytes]:  # noqa: N802 - tempfile API
        return io.BytesIO()


for _module in (xls97, doc97, ppt97):
    _module.tempfile = _MemoryTempfile  # type: ignore[attr-defined]


def is_encrypted_office(head: bytes, data: bytes) -> bool:
    """True for an OLE2 Office file that is encrypted (xlsx/docx package, xls, doc, ppt).

    A plain xls (OLE2 without encryption) or any other OLE2 file is False: it is
    left to the readers. Only the compound file's directory and, for a workbook,
    the first records of its Workbook stream are read: a FILEPASS record there
    is what makes a legacy workbook encrypted. msoffcrypto-tool would read the
    whole stream to learn the same.
    """
    if not head.startswith(OLE2_MAGIC):
        return False
    try:
        with olefile.OleFileIO(io.BytesIO(data)) as ole:
            # the order msoffcrypto.OfficeFile tries the formats in
            if ole.exists("EncryptionInfo") or ole.exists("WordDocument"):
                return _msoffcrypto_says_encrypted(data)
            if ole.exists("Workbook"):
                return _has_filepass(_stream_head(ole, data, "Workbook", _WORKBOOK_HEAD))
            if ole.exists("PowerPoint Document"):
                return _msoffcrypto_says_encrypted(data)
    except Exception:  # noqa: BLE001 - not recognisably encrypted: the readers will judge it
        return False
    return False


_WORKBOOK_HEAD = 4096
"""Bytes of the Workbook stream searched for FILEPASS, which MS-XLS puts right after
the first BOF (and an optional WriteProtect); a decrypted workbook has zeros there."""
_BOF, _FILEPASS, _EOF = 0x0809, 0x002F, 0x000A


def _msoffcrypto_says_encrypted(data: bytes) -> bool:
    try:
        return bool(msoffcrypto.OfficeFile(io.BytesIO(data)).is_encrypted())
    except Exception:  # noqa: BLE001 - as above
        return False


def _stream_head(ole: olefile.OleFileIO, data: bytes, name: str, size: int) -> bytes:
    """The first ``size`` bytes of a root stream, following its sector chain only that far."""
    entry = next(e for e in ole.root.kids if e.name.lower() == name.lower())
    wanted = min(size, entry.size)
    if entry.size < ole.minisectorcutoff:  # a small stream lives in the mini stream
        return bytes(ole.openstream(name).read(wanted))
    sector, step = entry.isectStart, ole.sectorsize
    out = bytearray()
    while len(out) < wanted and 0 <= sector < len(ole.fat):
        start = (sector + 1) * step  # sector 0 follows the header, one sector long
        if start + step > len(data):
            break
        out += data[start:start + step]
        sector = ole.fat[sector]
    return bytes(out[:wanted])


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


def decrypt_office(data: bytes, password: str | None, member: str) -> bytes:
    """The decrypted file, in memory; a wrong or missing password is a DecryptionError."""
    candidates = [EXCEL_DEFAULT_PASSWORD] if _is_legacy(data) else []
    candidates += [password] if password is not None else []
    try:
        for candidate in candidates:
            plain = _try(data, candidate)
            if plain is not None:
                return plain
    except _Tampered:
        raise DecryptionError(f"{member}: the workbook's integrity check failed: it is "
                              "tampered or damaged; ask the sender to send it again") from None
    except _FOREIGN:
        raise DecryptionError(f"{member}: the encrypted workbook is damaged or uses an "
                              "unsupported encryption; ask the sender to send it again") from None
    if password is None:
        raise DecryptionError(f"{member}: the workbook is password-protected; give its "
                              "password with --passphrase-file")
    raise DecryptionError(f"{member}: wrong password for the workbook; give the right one "
                          "with --passphrase-file")


class _Tampered(Exception):
    """The password was right but the package failed its integrity check."""


def _is_legacy(data: bytes) -> bool:
    """True for an OLE2 file without an encrypted OOXML package (xls, doc, ppt)."""
    try:
        with olefile.OleFileIO(io.BytesIO(data)) as ole:
            return not ole.exists("EncryptionInfo")
    except _FOREIGN:
        return False


def _try(data: bytes, password: str) -> bytes | None:
    """Decrypt with ``password``; None when the password is wrong.

    Agile (AES) packages are also checked against their HMAC, so a tampered
    package is refused rather than decrypted to garbage.
    """
    from msoffcrypto.format.ooxml import OOXMLFile  # its cryptography imports: only when needed

    office = msoffcrypto.OfficeFile(io.BytesIO(data))
    ooxml = isinstance(office, OOXMLFile)
    try:
        if ooxml:
            office.load_key(password=password, verify_password=True)
        else:
            office.load_key(password=password)
    except mso_errors.InvalidKeyError:
        return None
    out = io.BytesIO()
    try:
        if ooxml and office.type == "agile":
            office.decrypt(out, verify_integrity=True)
        else:
            office.decrypt(out)
    except mso_errors.InvalidKeyError:
        raise _Tampered from None
    return out.getvalue()


def encrypt_office(data: bytes, password: str) -> bytes:
    """Encrypt an xlsx/docx as Excel does (ECMA-376 agile, AES-256); for the generator."""
    from msoffcrypto.format.ooxml import OOXMLFile

    out = io.BytesIO()
    OOXMLFile(io.BytesIO(data)).encrypt(password, out)
    return out.getvalue()


__all__ = ["EXCEL_DEFAULT_PASSWORD", "decrypt_office", "encrypt_office", "is_encrypted_office"]
