"""Password-protected Office workbooks: detected, decrypted in memory, left alone when plain."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import xlsxwriter
import xlwt
from msoffcrypto.format import xls97

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
