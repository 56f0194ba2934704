"""The format registry's contract, and what it fixes for users.

Every registered format has samples, from the real writers where this machine
has one (LibreOffice, Gnumeric, openpyxl, XlsxWriter, xlwt, R, pandas, gpg,
7-Zip, zip, zstd, pycdlib, msoffcrypto, polars, SQLite, Pillow), and each sample
is claimed by exactly one entry. Formats no writer here produces (SPSS, SAS,
RAR, .xlsb, an OOXML package that is no Office document, a bare OLE2 file) are
made by hand from their published signatures, and say so.

Adding a format: declare it in its stage's ``_formats`` module (the recogniser, and where its
handler is), add its samples to :data:`SAMPLES`.
"""

from __future__ import annotations

import io
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from collections.abc import Callable
from functools import cache
from pathlib import Path

import polars as pl
import pytest

from ingest.crypto.office import encrypt_office
from ingest.errors import ReadError
from ingest.formats import UNKNOWN, Kind, claimants, classify, formats, named
from ingest.media import Member
from ingest.readers import Reader, read_delivery_table
from ingest.readers.excel import _odf
from ingest.synth import generate, to_delimited
from ingest.synth.packaging import make_7z, make_iso, make_tar, make_zip
from schemas.reference import DATASET

from conftest import ROOT, data_fixture

FILES = {"cases.csv": b"CASE_ID,SEX\r\n1,F\r\n", "notes/readme.txt": b"no commas here\n"}


def producer(name: str) -> Callable[[], bytes]:
    return lambda: data_fixture("producers", name).read_bytes()


def document(name: str) -> Callable[[], bytes]:
    """A document LibreOffice wrote (tests/data/formats/make-samples)."""
    return lambda: data_fixture("formats", name).read_bytes()


def _tool(*command: str, stdin: bytes = b"", cwd: Path | None = None) -> bytes:
    if shutil.which(command[0]) is None:
        pytest.fail(f"{command[0]} is not installed (see README: system tools)")
    return subprocess.run(command, input=stdin, capture_output=True, check=True,
                          cwd=cwd).stdout


def _zip_cli() -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as work:
        Path(work, "cases.csv").write_bytes(FILES["cases.csv"])
        _tool("zip", "-q", "-X", "delivery.zip", "cases.csv", cwd=Path(work))
        return Path(work, "delivery.zip").read_bytes()


def _cpio(*command: str) -> Callable[[], bytes]:
    """FILES archived by a cpio writer (GNU cpio, bsdcpio), names on its stdin."""
    def make() -> bytes:
        import tempfile

        with tempfile.TemporaryDirectory() as work:
            for name, data in FILES.items():
                Path(work, name).parent.mkdir(parents=True, exist_ok=True)
                Path(work, name).write_bytes(data)
            return _tool(*command, stdin="\n".join(FILES).encode() + b"\n", cwd=Path(work))
    return make


def _zip_holding_a_stored_workbook() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("book.xlsx", data_fixture("producers", "openpyxl.xlsx").read_bytes())
    return out.getvalue()


def _gpg(*args: str) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as home:
        return _tool("gpg", "--homedir", home, "--batch", "--pinentry-mode", "loopback",
                     "--passphrase", "sample", "--symmetric", *args, "--output", "-",
                     stdin=FILES["cases.csv"])


def _xlsb() -> bytes:
    """By hand: no writer here makes .xlsb; Excel's part names."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as package:
        package.writestr("[Content_Types].xml", "<Types/>")
        package.writestr("xl/workbook.bin", b"\x83\x01\x00")
        package.writestr("xl/worksheets/sheet1.bin", b"\x81\x01\x00")
    return out.getvalue()


def _ooxml_other() -> bytes:
    """By hand: an OOXML package that is no workbook, document or presentation (Visio's parts)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as package:
        package.writestr("[Content_Types].xml", "<Types/>")
        package.writestr("_rels/.rels", "<Relationships/>")
        package.writestr("visio/document.xml", "<VisioDocument/>")
    return out.getvalue()


def _ole_other() -> bytes:
    """An OLE2 file holding no Office stream: xlwt's workbook, its one stream renamed."""
    data = data_fixture("producers", "xlwt.xls").read_bytes()
    name = "Workbook".encode("utf-16-le")
    assert data.count(name) == 1
    return data.replace(name, "Contents".encode("utf-16-le"))


def _stata(version: int) -> Callable[[], bytes]:
    def make() -> bytes:
        out = io.BytesIO()
        generate(20, seed=1)[0].to_pandas().iloc[:, :3].to_stata(
            out, write_index=False, version=version)
        return out.getvalue()
    return make


def _parquet() -> bytes:
    out = io.BytesIO()
    pl.DataFrame({"CASE_ID": [1, 2]}).write_parquet(out)
    return out.getvalue()


def _sqlite(tmp: Path) -> bytes:
    path = tmp / "cases.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("create table cases (case_id integer)")
    db.close()
    return path.read_bytes()


def _image(fmt: str) -> Callable[[], bytes]:
    def make() -> bytes:
        from PIL import Image

        out = io.BytesIO()
        Image.new("RGB", (4, 4)).save(out, fmt)
        return out.getvalue()
    return make


def _csv() -> bytes:
    return to_delimited(generate(50, seed=2)[0])


def _fixed_width(form: str) -> Callable[[], bytes]:
    """The reference table as fixed-width records (``form``) or their layout."""
    def make() -> bytes:
        from ingest.synth import fixed_forms

        frame = generate(20, seed=3)[0]
        slots = fixed_forms.fit_layout(frame, "cp1252")
        if form == "layout-csv":
            return fixed_forms.layout_csv(slots)
        if form == "layout-sas":
            return fixed_forms.layout_sas(slots)
        return fixed_forms.to_fixed_width(frame, slots, "cp1252", "\n" if form == "lf" else "")
    return make


BY_DELIVERY = {"fixed-width": _fixed_width("layout-csv")}
"""Formats with no magic, claimed per delivery (fixed-width records: when a layout is
delivered beside them or the dataset declares positions); their samples are read
beside this layout."""


def stats_sample(name: str) -> Callable[[], bytes]:
    return lambda: data_fixture("stats", name).read_bytes()


SAS_MAGIC = bytes.fromhex("000000000000000000000000c2ea8160b31411cfbd92080009c7318c181f1011")

SAMPLES: dict[str, dict[str, Callable[[], bytes]]] = {
    "tar": {"gnu": lambda: make_tar(FILES), "pax": lambda: make_tar(FILES, format="pax"),
            "gzip": lambda: make_tar(FILES, "gz"), "bzip2": lambda: make_tar(FILES, "bz2"),
            "xz": lambda: make_tar(FILES, "xz"),
            "zstd-cli": lambda: _tool("zstd", "-q", "-c", stdin=make_tar(FILES))},
    "cpio": {f"gnu-{form}": _cpio("cpio", "-o", "--quiet", "-H", form)
             for form in ("newc", "crc", "odc", "bin")}
    | {"gnu-tape-5120": _cpio("cpio", "-o", "--quiet", "-H", "newc", "-B"),
       "bsdcpio-odc": _cpio("bsdcpio", "-o", "--quiet"),
       "bsdcpio-newc": _cpio("bsdcpio", "-o", "--quiet", "--format", "newc")},
    "iso": {"pycdlib": lambda: make_iso(FILES)},
    "7z": {"py7zr": lambda: make_7z(FILES), "encrypted-names": lambda: make_7z(
        FILES, "pw", encrypt_names=True)},
    "zip": {"zip-cli": _zip_cli, "aes": lambda: make_zip(FILES, "pw"),
            "holding-a-stored-workbook": _zip_holding_a_stored_workbook,
            "empty": lambda: b"PK\x05\x06" + bytes(18)},
    "openpgp": {"gpg-binary": lambda: _gpg(), "gpg-armoured": lambda: _gpg("--armor")},
    "office-encrypted": {"msoffcrypto-xlsx": lambda: encrypt_office(
        data_fixture("producers", "openpyxl.xlsx").read_bytes(), "pw")},
    "delimited": {"csv": _csv, "tsv": lambda: to_delimited(generate(20)[0], separator="\t"),
                  "libreoffice-csv": producer("libreoffice-calc.csv"),
                  "r-tsv": producer("r-write-table.tsv"),
                  "utf16": lambda: "\ufeffCASE_ID,SEX\r\n".encode("utf-16-le")},
    "access": {"mdb": lambda: data_fixture("access", "reference_20k.mdb").read_bytes(),
               "accdb": lambda: data_fixture("access", "reference_20k.accdb").read_bytes()},
    "xlsx": {name.split(".")[0]: producer(name) for name in (
        "libreoffice-calc.xlsx", "gnumeric.xlsx", "openpyxl.xlsx", "pandas-openpyxl.xlsx",
        "pandas-xlsxwriter.xlsx", "xlsxwriter.xlsx", "r-openxlsx.xlsx")},
    "xlsb": {"by-hand": _xlsb},
    "ods": {"libreoffice": producer("libreoffice-calc.ods"), "gnumeric": producer("gnumeric.ods")},
    "xls": {"libreoffice": producer("libreoffice-calc.xls"), "gnumeric": producer("gnumeric.xls"),
            "xlwt": producer("xlwt.xls")},
    "spss": {"by-hand": lambda: b"$FL2@(#) IBM SPSS STATISTICS 64-bit Linux 28.0.0".ljust(176),
             "haven-sav": stats_sample("haven.sav"), "haven-zsav": stats_sample("haven.zsav")},
    "stata": {"pandas-114": _stata(114), "pandas-117": _stata(117), "pandas-118": _stata(118),
              "haven-15": stats_sample("haven.dta")},
    "sas7bdat": {"by-hand": lambda: SAS_MAGIC + bytes(1024),
                 "haven": stats_sample("haven.sas7bdat")},
    "sas-transport": {"by-hand": lambda: b"HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!"
                      + b"000000000000000000000000000000  ".ljust(32),
                      "haven-v8": stats_sample("haven.xpt")},
    "fixed-width": {"lf": _fixed_width("lf"), "tape": _fixed_width("tape")},
    "record-layout": {"csv": _fixed_width("layout-csv"), "sas-input": _fixed_width("layout-sas")},
    "pdf": {"libreoffice": document("libreoffice.pdf")},
    "docx": {"libreoffice": document("libreoffice.docx")},
    "pptx": {"libreoffice": document("libreoffice.pptx")},
    "ooxml": {"by-hand": _ooxml_other},
    "odt": {"libreoffice": document("libreoffice.odt")},
    "odp": {"libreoffice": document("libreoffice.odp")},
    "opendocument": {"libreoffice-odg": document("libreoffice.odg")},
    "doc": {"libreoffice": document("libreoffice.doc")},
    "ppt": {"libreoffice": document("libreoffice.ppt")},
    "ole2": {"renamed-stream": _ole_other},
    "parquet": {"polars": _parquet},
    "sqlite": {"sqlite3": lambda: _sqlite(Path(__import__("tempfile").mkdtemp()))},
    "rar": {"by-hand": lambda: b"Rar!\x1a\x07\x01\x00" + bytes(64)},
    "png": {"pillow": _image("PNG")},
    "jpeg": {"pillow": _image("JPEG")},
}

CASES = [(fmt, label) for fmt, samples in SAMPLES.items() for label in samples]


@cache
def sample(fmt: str, label: str) -> bytes:
    return SAMPLES[fmt][label]()


def test_every_registered_format_has_samples_and_every_sample_a_format() -> None:
    registered = {f.name for f in formats()}
    assert registered == set(SAMPLES)


@pytest.mark.parametrize(("fmt", "label"), CASES)
def test_each_sample_is_claimed_by_exactly_its_own_format(fmt: str, label: str) -> None:
    data = sample(fmt, label)
    entry = named(fmt)
    assert entry is not None
    if fmt in BY_DELIVERY:
        assert claimants(data) == []
        members = [Member("records.dat", data), Member("layout", BY_DELIVERY[fmt]())]
        assert read_delivery_table(members, DATASET).format == fmt
        return
    claimed = [f.name for f in claimants(data)]
    assert claimed == ([] if entry.fallback else [fmt])
    assert classify(data) is entry


def test_every_format_is_named_and_has_what_its_kind_needs() -> None:
    for fmt in formats():
        assert fmt.title and fmt.title[0].isalnum()
        if fmt.kind is Kind.TABLE:
            assert isinstance(fmt.handler, Reader) and fmt.handler.format == fmt.name
        elif fmt.kind is Kind.CONTAINER:
            assert callable(fmt.handler.open) and fmt.handler.kind
        elif fmt.kind is Kind.ENCRYPTION:
            assert callable(fmt.handler)
        else:
            assert fmt.kind is Kind.NOT_READ and fmt.handler is None


HEAVY = ("py7zr", "pycdlib", "pyzipper", "pyreadstat", "python_calamine", "fastexcel",
         "libarchive", "msoffcrypto", "olefile", "ingest.readers.excel._book")
"""The libraries of formats a CSV delivery does not hold (and the workbook reader)."""

_IMPORTED_AFTER = """
import sys
from ingest.formats import classify, named
from ingest.media import Member
from ingest.readers import read_member
from schemas.reference import DATASET
member = Member("cases.csv", {data!r})
fmt = classify(member)
read_member(member, DATASET, fmt)
{then}
print(fmt.name, *sorted(m for m in {heavy!r} if m in sys.modules))
"""


def _imported_after(then: str = "") -> list[str]:
    """A fresh interpreter classifies and reads a CSV member (then runs ``then``): the
    format, and which of :data:`HEAVY` it imported."""
    data = to_delimited(generate(20, seed=3)[0])
    code = _IMPORTED_AFTER.format(data=data, then=then, heavy=HEAVY)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.split()
    return out


def test_a_csv_delivery_loads_no_other_format_s_library() -> None:
    """Formats are declared apart from their handlers: classifying and reading a CSV
    imports no archive, workbook or statistics library (each cost every run its
    import time when the registry loaded them all)."""
    assert _imported_after() == ["delimited"]


def test_a_handler_is_loaded_when_its_format_is_met() -> None:
    """The other side of the same laziness: asking for a format's handler loads it."""
    assert _imported_after('named("7z").handler; named("xlsx").handler') == \
        ["delimited", "ingest.readers.excel._book", "py7zr"]


def test_unknown_bytes_are_claimed_by_nothing() -> None:
    assert classify(bytes(range(256)) * 4) is UNKNOWN
    assert classify(b"") is UNKNOWN


# --- what the registry fixed: an .xlsx whose [Content_Types].xml comes last ----------------

@pytest.mark.parametrize("writer", ["ssconvert", "soffice"])
def test_a_spreadsheet_app_xlsx_larger_than_64_kib_is_read_as_a_table(
        tmp_path: Path, writer: str) -> None:
    """Gnumeric and LibreOffice put [Content_Types].xml last; a workbook past 64 KiB
    was 'no table found in the delivery'."""
    frame, _ = generate(3000, seed=7)
    source = tmp_path / "cases.csv"
    source.write_bytes(to_delimited(frame, encoding="utf-8", trailer=False))
    target = tmp_path / "cases.xlsx"
    if writer == "ssconvert":
        _tool("ssconvert", "--export-type=Gnumeric_Excel:xlsx2", str(source), str(target))
    else:
        _tool("soffice", f"-env:UserInstallation={(tmp_path / 'profile').as_uri()}",
              "--headless", "--convert-to", "xlsx", "--outdir", str(tmp_path), str(source))
    data = target.read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        assert package.getinfo("[Content_Types].xml").header_offset > 65536
    table = read_delivery_table([Member("cases.xlsx", data)], DATASET)
    assert table.format == "xlsx" and table.rows == frame.height


# --- messages that name the cause ------------------------------------------------------------

def test_a_delivery_without_a_table_names_each_member_and_why() -> None:
    members = [Member("survey.parquet", sample("parquet", "polars")),
               Member("report.pdf", sample("pdf", "libreoffice")),
               Member("cases.sqlite", sample("sqlite", "sqlite3")),
               Member("blob.bin", bytes(range(256)))]
    with pytest.raises(ReadError) as caught:
        read_delivery_table(members, DATASET)
    message = str(caught.value)
    assert "no table found" in message
    for name, why in (("survey.parquet", "Parquet file"), ("report.pdf", "PDF document"),
                      ("cases.sqlite", "SQLite database"), ("blob.bin", "not a table format")):
        assert f"{name}: " in message and why in message.split(f"{name}: ", 1)[1]
    assert "does not read" in message


def test_a_truncated_workbook_is_called_damaged() -> None:
    data = sample("xlsx", "openpyxl")
    with pytest.raises(ReadError, match="damaged or truncated") as caught:
        read_delivery_table([Member("cases.xlsx", data[: len(data) // 2])], DATASET)
    assert "cannot parse" not in str(caught.value)


def test_an_intact_file_our_engine_cannot_parse_is_not_called_damaged(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Gnumeric's .ods without the whitespace normalisation: calamine refuses it."""
    from ingest.readers.excel import _book

    monkeypatch.setattr(_book, "without_layout_whitespace", lambda data: None)
    with pytest.raises(ReadError) as caught:
        read_delivery_table([Member("cases.ods", sample("ods", "gnumeric"))], DATASET)
    message = str(caught.value)
    assert "Gnumeric ods workbook our spreadsheet engine cannot parse" in message
    assert "save it as .xlsx" in message and "may be damaged" not in message


# --- Gnumeric's indented OpenDocument ------------------------------------------------------

def test_a_gnumeric_ods_reads_as_the_same_table_as_its_csv(tmp_path: Path) -> None:
    frame, _ = generate(400, seed=11)
    source = tmp_path / "cases.csv"
    source.write_bytes(to_delimited(frame, encoding="utf-8", trailer=False))
    target = tmp_path / "cases.ods"
    _tool("ssconvert", str(source), str(target))
    from_ods = read_delivery_table([Member("cases.ods", target.read_bytes())], DATASET)
    from_csv = read_delivery_table([Member("cases.csv", source.read_bytes())], DATASET)
    assert from_ods.format == "ods"
    assert from_ods.rows == from_csv.rows == frame.height


def test_layout_whitespace_goes_and_cell_text_stays() -> None:
    xml = (b'<?xml version="1.0"?>\n<office:document-content a="x > y">\n  <table:table>\n'
           b'    <table:table-row>\n      <table:table-cell><text:p>  two  spaces </text:p>'
           b'<text:p><text:span>a</text:span> <text:span>b</text:span></text:p>\n'
           b'      </table:table-cell>\n    </table:table-row>\n  </table:table>\n'
           b'</office:document-content>\n')
    out = _odf._normalised(xml)
    assert out == (b'<?xml version="1.0"?>\n<office:document-content a="x > y"><table:table>'
                   b'<table:table-row><table:table-cell><text:p>  two  spaces </text:p>'
                   b'<text:p><text:span>a</text:span> <text:span>b</text:span></text:p>'
                   b'</table:table-cell></table:table-row></table:table>'
                   b'</office:document-content>\n')
    assert _odf._normalised(out) is None  # nothing left to take out
    assert _odf._normalised(b'<!DOCTYPE x [<!ENTITY e "v">]><table:t>\n</table:t>') is None
    assert _odf._normalised(b"<table:t>\n<table:u>\n</table:t>") is None  # not well-formed



def test_a_zip_declaring_more_entries_than_any_package_is_an_archive_unread() -> None:
    """Its directory is not read to classify it (the ZIP opener refuses it by its limit)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("[Content_Types].xml", b"<Types/>")
        for i in range(50_000):
            archive.writestr(f"xl/{i}", b"")
    assert classify(out.getvalue()).name == "zip"
