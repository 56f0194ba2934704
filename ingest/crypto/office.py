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
from ..formats import Probe
from ..formats._ole import OLE2_MAGIC

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
    """True for an OLE2 Office file that is encrypted (xlsx/docx package, xls, doc, ppt);
    ``head`` is not needed any more (the whole file is looked at) and kept for callers."""
    return Probe(data).is_("office-encrypted")  # the registry's test (._formats)


def msoffcrypto_says_encrypted(data: bytes) -> bool:
    """msoffcrypto-tool's verdict (for the files :mod:`._formats` cannot judge alone)."""
    try:
        return bool(msoffcrypto.OfficeFile(io.BytesIO(data)).is_encrypted())
    except Exception:  # noqa: BLE001 - not recognisably encrypted: the readers will judge it
        return False


def decrypt_office(data: bytes, password: str | None, member: str) -> bytes:
    """The decrypted file, in memory; a wrong or missing password is a DecryptionError."""
    # an empty password protects nothing (msoffcrypto takes it for no key at all and
    # fails as if the package were damaged): it is treated as no password given
    password = password or None
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


def open_office(name: str, data: bytes, passphrase: str | None,
                gnupg_home: object = None,
                warnings: list[str] | None = None) -> tuple[str, bytes]:
    """The decrypted workbook, in memory, under the same name, for the readers."""
    return name, decrypt_office(data, passphrase, name)


__all__ = ["EXCEL_DEFAULT_PASSWORD", "OLE2_MAGIC", "decrypt_office", "encrypt_office",
           "is_encrypted_office"]
