"""Password-protected Office workbooks: detected, decrypted in memory, left alone when plain."""

from __future__ import annotations

import io
import os
import struct
from hashlib import sha1
from pathlib import Path

import olefile
import pytest
import xlsxwriter
import xlwt
from msoffcrypto.format import xls97
from msoffcrypto.method.rc4_cryptoapi import DocumentRC4CryptoAPI

from ingest.crypto.office import decrypt_office, encrypt_office, is_encrypted_office
from ingest.errors import DecryptionError
from ingest.media import open_delivery
from ingest.synth.packaging import make_7z, make_zip

PASSWORD = "Workbook pass 2026!"
SECRET = "P0A1B2C3D"


def _xlsx() -> bytes:
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    sheet = book.add_worksheet("CASES")
    for col, (head, value) in enumerate([("CASE_ID", "0000000042"), ("PERS_ID", SECRET)]):
        sheet.write_string(0, col, head)
        sheet.write_string(1, col, value)
    book.close()
    return out.getvalue()


def _xls() -> bytes:
    book = xlwt.Workbook()
    sheet = book.add_sheet("CASES")
    sheet.write(0, 0, "CASE_ID")
    sheet.write(1, 0, "0000000042")
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


PLAIN = _xlsx()
LOCKED = encrypt_office(PLAIN, PASSWORD)


# --- an RC4 CryptoAPI xls, as Excel 2003 writes it (no library writes one) -------------------

_FILEPASS, _BOUNDSHEET, _EOF = 0x002F, 0x0085, 0x000A
_CLEAR_RECORDS = {0x0809, 0x002F, 0x0194, 0x0195, 0x00E1, 0x0138, 0x0196}
"""BOF, FilePass, UsrExcl, FileLock, InterfaceHdr, RRDInfo, RRDHead: never encrypted."""


def _rc4(password: str, salt: bytes, data: bytes) -> bytes:
    """msoffcrypto's own RC4 CryptoAPI keystream (re-keyed every 1024 bytes); RC4 is
    symmetric, so its decrypt() encrypts too."""
    return DocumentRC4CryptoAPI.decrypt(password, salt, 128, io.BytesIO(data),
                                        blocksize=1024).read()


def _filepass(password: str, salt: bytes, pad: int) -> bytes:
    """The FILEPASS record (MS-XLS 2.4.117, MS-OFFCRYPTO 2.3.5.1); ``pad`` trailing bytes."""
    verifier = os.urandom(16)
    sealed = _rc4(password, salt, verifier + sha1(verifier).digest())
    csp = "Microsoft Enhanced Cryptographic Provider v1.0\0".encode("utf-16le")
    header = struct.pack("<8I", 0x04, 0, 0x6801, 0x8004, 128, 1, 0, 0) + csp
    body = (struct.pack("<HHHII", 1, 4, 2, 0x04, len(header)) + header
            + struct.pack("<I", 16) + salt + sealed[:16] + struct.pack("<I", 20) + sealed[16:]
            + bytes(pad))
    return struct.pack("<HH", _FILEPASS, len(body)) + body


def _records(stream: bytes) -> list[tuple[int, int, int]]:
    out, pos = [], 0
    while pos + 4 <= len(stream):
        num, size = struct.unpack_from("<HH", stream, pos)
        out.append((pos, num, size))
        pos += 4 + size
    return out


def _xls_with(record: bytes) -> bytes:
    """An xlwt workbook with ``record`` right after the first BOF."""

    class Book(xlwt.Workbook):
        def _Workbook__bof_rec(self) -> bytes:  # noqa: N802 - xlwt's mangled name
            return super()._Workbook__bof_rec() + record  # type: ignore[misc]

    book = Book()
    sheet = book.add_sheet("CASES")
    sheet.write(0, 0, "CASE_ID")
    for row in range(1, 400):  # a Workbook stream past 4 KiB: no mini-stream
        sheet.write(row, 0, f"{row + 41:010d}")
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _workbook_stream(data: bytes) -> bytes:
    with olefile.OleFileIO(io.BytesIO(data)) as ole:
        return ole.openstream("Workbook").read()


def encrypt_xls(password: str) -> bytes:
    """Encrypt every record but those MS-XLS keeps clear, in place in the OLE2 file.

    xlwt pads the stream with zeros after the last EOF; the FILEPASS record is
    padded so that padding splits into whole (empty) records, as msoffcrypto needs.
    """
    salt = os.urandom(16)
    stream = _workbook_stream(_xls_with(_filepass(password, salt, 0)))
    end = max(pos + 4 + size for pos, num, size in _records(stream) if num == _EOF)
    data = _xls_with(_filepass(password, salt, (len(stream) - end) % 4))
    stream = _workbook_stream(data)
    keyed = _rc4(password, salt, stream)
    sealed = bytearray(stream)
    for pos, num, size in _records(stream):
        if num not in _CLEAR_RECORDS:
            start = pos + 4 + (4 if num == _BOUNDSHEET else 0)  # lbPlyPos stays clear
            sealed[start:pos + 4 + size] = keyed[start:pos + 4 + size]
    out = io.BytesIO(data)
    with olefile.OleFileIO(out, write_mode=True) as ole:
        ole.write_stream("Workbook", bytes(sealed))
    return out.getvalue()


LOCKED_XLS = encrypt_xls(PASSWORD)


def _clean(exc: BaseException) -> str:
    message = str(exc)
    assert PASSWORD not in message and SECRET not in message
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__
    return message


def test_encrypted_workbook_is_an_ole2_file() -> None:
    assert LOCKED.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")
    assert SECRET.encode() not in LOCKED
    assert is_encrypted_office(LOCKED[:65536], LOCKED)


@pytest.mark.parametrize("data", [PLAIN, _xls(), b"CASE_ID,PERS_ID\r\n", b""],
                         ids=["xlsx", "xls", "csv", "empty"])
def test_plain_files_are_not_encrypted_office(data: bytes) -> None:
    assert not is_encrypted_office(data[:65536], data)


def test_damaged_ole2_is_not_taken_for_encrypted() -> None:
    data = LOCKED[:600]
    assert not is_encrypted_office(data, data)


def test_round_trip() -> None:
    assert decrypt_office(LOCKED, PASSWORD, "cases.xlsx") == PLAIN


def test_wrong_password() -> None:
    with pytest.raises(DecryptionError) as caught:
        decrypt_office(LOCKED, "not it", "cases.xlsx")
    message = _clean(caught.value)
    assert "cases.xlsx" in message and "wrong password for the workbook" in message
    assert "--passphrase-file" in message


def test_missing_password() -> None:
    with pytest.raises(DecryptionError) as caught:
        decrypt_office(LOCKED, None, "cases.xlsx")
    assert "--passphrase-file" in _clean(caught.value)


def test_tampered_package_is_refused() -> None:
    data = bytearray(LOCKED)
    data[len(data) // 2] ^= 0x01
    with pytest.raises(DecryptionError) as caught:
        decrypt_office(bytes(data), PASSWORD, "cases.xlsx")
    assert "cases.xlsx" in _clean(caught.value)


def test_delivery_with_an_encrypted_workbook(tmp_path: Path) -> None:
    path = tmp_path / "cases.xlsx"
    path.write_bytes(LOCKED)
    delivery = open_delivery(path, passphrase=PASSWORD)
    assert [(m.name, m.data) for m in delivery.members] == [("cases.xlsx", PLAIN)]


def test_delivery_with_a_wrong_workbook_password(tmp_path: Path) -> None:
    path = tmp_path / "cases.xlsx"
    path.write_bytes(LOCKED)
    with pytest.raises(DecryptionError) as caught:
        open_delivery(path, passphrase="nope")
    assert "cases.xlsx" in _clean(caught.value)


def test_encrypted_workbook_inside_an_encrypted_zip(tmp_path: Path) -> None:
    path = tmp_path / "delivery.zip"
    path.write_bytes(make_zip({"cases.xlsx": LOCKED}, PASSWORD))
    delivery = open_delivery(path, passphrase=PASSWORD)
    assert [(m.name, m.data) for m in delivery.members] == [("delivery.zip/cases.xlsx", PLAIN)]


def test_encrypted_workbook_inside_a_7z(tmp_path: Path) -> None:
    path = tmp_path / "delivery.7z"
    path.write_bytes(make_7z({"cases.xlsx": LOCKED}, PASSWORD, encrypt_names=True))
    delivery = open_delivery(path, passphrase=PASSWORD)
    assert [(m.name, m.data) for m in delivery.members] == [("delivery.7z/cases.xlsx", PLAIN)]


@pytest.mark.parametrize("data", [PLAIN, _xls()], ids=["xlsx", "xls"])
def test_plain_workbooks_pass_through(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "cases.bin"
    path.write_bytes(data)
    delivery = open_delivery(path, passphrase=PASSWORD)
    assert [(m.name, m.data) for m in delivery.members] == [("cases.bin", data)]


def test_encrypted_legacy_xls() -> None:
    assert is_encrypted_office(LOCKED_XLS[:65536], LOCKED_XLS)
    assert b"0000000042" not in _workbook_stream(LOCKED_XLS)
    plain = decrypt_office(LOCKED_XLS, PASSWORD, "cases.xls")
    assert not is_encrypted_office(plain[:65536], plain)
    import python_calamine

    sheet = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(plain)).get_sheet_by_index(0)
    rows = sheet.to_python()
    assert rows[0] == ["CASE_ID"] and rows[1] == ["0000000042"] and len(rows) == 400


def test_encrypted_legacy_xls_wrong_password() -> None:
    with pytest.raises(DecryptionError) as caught:
        decrypt_office(LOCKED_XLS, "nope", "cases.xls")
    assert "wrong password for the workbook" in _clean(caught.value)


def test_delivery_with_an_encrypted_xls(tmp_path: Path) -> None:
    path = tmp_path / "cases.xls"
    path.write_bytes(LOCKED_XLS)
    delivery = open_delivery(path, passphrase=PASSWORD)
    assert [m.name for m in delivery.members] == ["cases.xls"]
    assert delivery.members[0].data == decrypt_office(LOCKED_XLS, PASSWORD, "x")


def test_legacy_decryption_stays_in_memory() -> None:
    """msoffcrypto-tool copies xls/doc/ppt through a temporary file; ours is in memory."""
    with xls97.tempfile.TemporaryFile() as handle:
        assert isinstance(handle, io.BytesIO)


def test_decryption_writes_nothing_to_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins
    import os
    import tempfile

    real_open, real_os_open = builtins.open, os.open

    def guarded_open(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        assert not set(mode) & set("wax+"), "a file was opened for writing"
        return real_open(file, mode, *args, **kwargs)  # type: ignore[call-overload]

    def guarded_os_open(path: object, flags: int, *args: object, **kwargs: object) -> int:
        assert not flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT), "a file was created"
        return real_os_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(os, "open", guarded_os_open)
    monkeypatch.setattr(tempfile, "TemporaryFile", None)
    assert decrypt_office(LOCKED, PASSWORD, "cases.xlsx") == PLAIN
    assert decrypt_office(LOCKED_XLS, PASSWORD, "cases.xls").startswith(b"\xd0\xcf\x11\xe0")


def test_read_only_recommended_xls_needs_no_password() -> None:
    """Excel encrypts such workbooks with its published default password."""
    locked = encrypt_xls("VelvetSweatshop")
    assert is_encrypted_office(locked[:65536], locked)
    plain = decrypt_office(locked, None, "cases.xls")
    assert not is_encrypted_office(plain[:65536], plain)


def _decrypted_xls() -> bytes:
    return decrypt_office(LOCKED_XLS, PASSWORD, "cases.xls")


@pytest.mark.parametrize("make", [lambda: LOCKED, lambda: LOCKED_XLS, _xls, _decrypted_xls,
                                  lambda: encrypt_xls("VelvetSweatshop"),
                                  lambda: _xls_with(b"")],
                         ids=["xlsx", "xls", "plain-xls", "decrypted-xls", "velvet-xls",
                              "large-plain-xls"])
def test_encryption_is_detected_as_msoffcrypto_detects_it(make: object) -> None:
    import msoffcrypto

    data = make()  # type: ignore[operator]
    expected = msoffcrypto.OfficeFile(io.BytesIO(data)).is_encrypted()
    assert is_encrypted_office(data[:65536], data) is expected


def test_a_workbook_is_judged_by_the_head_of_its_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither msoffcrypto-tool nor a whole-stream read: FILEPASS sits right after BOF."""
    import msoffcrypto

    def whole_file(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the whole workbook was parsed")

    locked, decrypted = LOCKED_XLS, _decrypted_xls()
    big_plain = _xls_with(struct.pack("<HH", 0x0086, 0))  # WriteProtect, then the rest
    monkeypatch.setattr(msoffcrypto, "OfficeFile", whole_file)
    monkeypatch.setattr(olefile.OleFileIO, "openstream", whole_file)
    assert is_encrypted_office(locked[:65536], locked)
    assert not is_encrypted_office(big_plain[:65536], big_plain)
    assert not is_encrypted_office(decrypted[:65536], decrypted)


def test_filepass_after_write_protect_is_found() -> None:
    salt = os.urandom(16)
    data = _xls_with(struct.pack("<HH", 0x0086, 0) + _filepass(PASSWORD, salt, 0))
    assert is_encrypted_office(data[:65536], data)


# --- workbooks encrypted by LibreOffice Calc (tests/data/office/README.md) --------------------

CALC_PASSWORD = "Calc-sample-26"
CALC_ROWS = [
    ("0000000042", "P0A1B2C3D", "01/15/1980", "F", "06037", "03/02/2024", "A01.1", 12.5, "N",
     "Seen at clinic"),
    ("0000000043", "P0A1B2C3E", "11/30/1955", "M", "36061", "07/19/2025", "B20", None, "Y",
     "Résumé: señal, café €"),
    ("0000000044", "P0A1B2C3F", "02/29/2000", "X", "48201", "12/31/2025", "J10.81", 0.0, "N",
     "LIBREOFFICE-SAMPLE-ROW"),
]
"""The sheet scripts/make-office-samples gives Calc, as our reader types it."""
CALC_SAMPLES = {"standard-libreoffice.xlsx": "xlsx", "rc4-libreoffice.xls": "xls"}


def _calc_sample(name: str) -> Path:
    from conftest import data_fixture

    return data_fixture("office", name)


@pytest.mark.parametrize("name", list(CALC_SAMPLES))
def test_workbook_encrypted_by_libreoffice_reads_exactly(name: str) -> None:
    from ingest.readers import read_member
    from ingest.schema import load_dataset

    path = _calc_sample(name)
    assert is_encrypted_office(path.read_bytes()[:65536], path.read_bytes())
    assert b"LIBREOFFICE-SAMPLE-ROW" not in path.read_bytes()
    delivery = open_delivery(path, passphrase=CALC_PASSWORD)
    table = read_member(delivery.members[0], load_dataset("reference"))
    assert table.format == CALC_SAMPLES[name]
    assert table.frame.rows() == CALC_ROWS


@pytest.mark.parametrize("name", list(CALC_SAMPLES))
@pytest.mark.parametrize("password", ["Calc-sample-27", "", None])
def test_workbook_encrypted_by_libreoffice_wrong_password(name: str,
                                                          password: str | None) -> None:
    with pytest.raises(DecryptionError) as caught:
        open_delivery(_calc_sample(name), passphrase=password)
    message = _clean(caught.value)
    assert name in message and "--passphrase-file" in message
    if password:
        assert "wrong password for the workbook" in message
        assert password not in message
    else:  # an empty password is no password: never called damage
        assert "password-protected" in message and "damaged" not in message
