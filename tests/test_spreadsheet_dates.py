"""Spreadsheet dates read in the day count of the application that wrote the file.

LibreOffice counts days from 1899-12-30, Excel from 1900-01-01 with a 1900-02-29
that never was, and a 1904 workbook from 1904-01-01: the three differ before
1900-03-01 (the 1904 system everywhere). The LibreOffice and Gnumeric files are
real ones in ``tests/data/spreadsheet_dates/`` (what each tool stores is in its
README); the Python writers run here.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from datetime import date
from pathlib import Path

import openpyxl
import pandera.polars as pa
import polars as pl
import pytest
import xlsxwriter
import xlwt
from openpyxl.utils.datetime import CALENDAR_MAC_1904

import ingest
from ingest.readers._base import SourceTable
from ingest.readers.excel import read_workbook
from ingest.readers.excel._writer import identify
from ingest.schema import Column, Dataset
from ingest.synth import generate
from ingest.synth.forms import to_xls
from ingest.validate import validate

from conftest import data_fixture

DAYS = [date(1899, 12, 30), date(1899, 12, 31), date(1900, 1, 1), date(1900, 2, 27),
        date(1900, 2, 28), date(1900, 3, 1), date(1904, 1, 1), date(2000, 1, 1),
        date(1850, 6, 15)]
"""The dates in ``dates.csv``, from which the LibreOffice and Gnumeric samples were made."""
NUMBERS_AS_LIBREOFFICE_MEANS = [date(1900, 1, 1), date(1900, 2, 27), date(1900, 2, 28),
                                date(1900, 3, 1), date(2000, 1, 1)]
"""``numbers.csv``'s plain numbers 2, 59, 60, 61, 36526 counted from 1899-12-30."""
DAYS_1904 = [date(1900, 1, 1), date(1900, 2, 28), date(1900, 3, 1), date(1904, 1, 1),
             date(2000, 1, 1), date(2000, 1, 1)]
"""The dates of the LibreOffice 1904 samples (the last a plain number, 35064)."""
DELIVERY = date(2026, 6, 30)


def _rules(_: date) -> pa.DataFrameSchema:
    return pa.DataFrameSchema({"label": pa.Column(pl.Utf8),
                               "birth_date": pa.Column(pl.Date, nullable=False)})


DATES = Dataset("early_dates", "1", (
    Column("LABEL", "label", "string"),
    Column("DOB", "birth_date", "date", date_formats=("%Y-%m-%d",)),
), _rules)


def read(data: bytes, fmt: str) -> SourceTable:
    return read_workbook(data, DATES, f"dates.{fmt}", fmt)


def sample(name: str) -> tuple[bytes, str]:
    return data_fixture("spreadsheet_dates", name).read_bytes(), name.rsplit(".", 1)[1]


def dates_of(table: SourceTable) -> list[date | None]:
    column = table.frame["DOB"]
    assert column.dtype == pl.Date, column.dtype
    return column.to_list()


# -- the Python writers, run here -------------------------------------------------------

def by_openpyxl(days: list[object], mac: bool = False, formatted: bool = True) -> bytes:
    book = openpyxl.Workbook()
    if mac:
        book.epoch = CALENDAR_MAC_1904
    sheet = book.active
    sheet.append(["LABEL", "DOB"])
    for i, day in enumerate(days, 1):
        sheet.append([f"r{i}", day])
        if formatted:
            sheet.cell(i + 1, 2).number_format = "yyyy-mm-dd"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def by_xlsxwriter(days: list[date], mac: bool = False) -> bytes:
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True, "date_1904": mac})
    sheet = book.add_worksheet()
    style = book.add_format({"num_format": "yyyy-mm-dd"})
    sheet.write_row(0, 0, ["LABEL", "DOB"])
    for i, day in enumerate(days, 1):
        sheet.write_string(i, 0, f"r{i}")
        sheet.write_datetime(i, 1, day, style)
    book.close()
    return buffer.getvalue()


def by_xlwt(days: list[date], mac: bool = False) -> bytes:
    book = xlwt.Workbook()
    book.dates_1904 = mac
    sheet = book.add_sheet("dates")
    style = xlwt.easyxf(num_format_str="YYYY-MM-DD")
    sheet.write(0, 0, "LABEL")
    sheet.write(0, 1, "DOB")
    for i, day in enumerate(days, 1):
        sheet.write(i, 0, f"r{i}")
        sheet.write(i, 1, day, style)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def without_part(data: bytes, name: str) -> bytes:
    """The package with one part left out, rebuilt in memory."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            if info.filename != name:
                target.writestr(info, source.read(info))
    return out.getvalue()


# -- which application, which day count -------------------------------------------------

@pytest.mark.parametrize(("name", "family", "system"), [
    ("libreoffice.xlsx", "LibreOffice", "1900-continuous"),
    ("libreoffice.xls", "LibreOffice", "1900-continuous"),
    ("libreoffice.ods", "LibreOffice", "1900-continuous"),
    ("libreoffice-1904.xlsx", "LibreOffice", "1904"),
    ("libreoffice-1904.xls", "LibreOffice", "1904"),
    ("libreoffice-1904.ods", "LibreOffice", "1904"),
    ("gnumeric.xlsx", "Gnumeric", "1900"),
    ("gnumeric.xls", None, None),
])
def test_the_writer_and_its_day_count_come_from_the_files_metadata(
        name: str, family: str | None, system: str | None) -> None:
    writer = identify(*sample(name))
    assert (writer.family, writer.date_system) == (family, system)


@pytest.mark.parametrize(("make", "fmt", "family"), [
    (by_openpyxl, "xlsx", "Microsoft Excel"),
    (by_xlsxwriter, "xlsx", "Microsoft Excel"),
    (by_xlwt, "xls", None),
])
@pytest.mark.parametrize("mac", [False, True])
def test_python_writers_say_excel_and_their_date_system(
        make: Callable[..., bytes], fmt: str, family: str | None, mac: bool) -> None:
    writer = identify(make([date(2000, 1, 1)], mac=mac), fmt)
    assert writer.family == family
    assert writer.date_system == ("1904" if mac else "1900" if family else None)


def test_metadata_that_cannot_be_read_means_an_unknown_writer() -> None:
    data = without_part(by_openpyxl([date(2000, 1, 1)]), "docProps/app.xml")
    assert (identify(data, "xlsx").family, identify(data, "xlsx").date_system) == (None, None)
    assert identify(b"PK\x03\x04 not a package", "xlsx").date_system is None
    assert identify(b"\xd0\xcf\x11\xe0 not a compound file", "xls").date_system is None


# -- LibreOffice, read as it counts -----------------------------------------------------

@pytest.mark.parametrize("fmt", ["xlsx", "xls", "ods"])
def test_libreoffice_dates_read_as_libreoffice_wrote_them(fmt: str) -> None:
    table = read(*sample(f"libreoffice.{fmt}"))
    assert dates_of(table) == DAYS
    assert table.date_system == "1900-continuous"
    if fmt == "ods":  # ISO dates: nothing to count, nothing to say
        assert table.notes == []
    else:  # 1899-12-30 .. 1900-02-27 and 1850-06-15; 1900-02-28 (60) calamine reads right
        assert table.notes == [
            "DOB: 5 dates before 1900-03-01 read as LibreOffice, which wrote the workbook, "
            "counts days (from 1899-12-30, with no 1900-02-29); Excel's count would put "
            "each a day later"]


@pytest.mark.parametrize("fmt", ["xlsx", "xls"])
def test_libreoffice_dates_without_a_1900_02_28_worked_back_from_calamines_reading(
        fmt: str) -> None:
    table = read(*sample(f"libreoffice-early.{fmt}"))
    assert dates_of(table) == [date(1900, 1, 1), date(1899, 12, 31), date(1850, 6, 15),
                               date(1900, 2, 26), date(2000, 1, 1)]
    assert len(table.notes) == 1 and table.notes[0].startswith("DOB: 4 dates before")


@pytest.mark.parametrize("fmt", ["xlsx", "xls", "ods"])
def test_libreoffice_plain_numbers_in_a_date_column_count_from_1899_12_30(fmt: str) -> None:
    table = read(*sample(f"libreoffice-numbers.{fmt}"))
    assert dates_of(table) == NUMBERS_AS_LIBREOFFICE_MEANS
    assert len(table.notes) == 1 and table.notes[0].startswith("DOB: 2 dates before")


@pytest.mark.parametrize("fmt", ["xlsx", "xls", "ods"])
def test_libreoffice_1904_workbooks_count_from_1904(fmt: str) -> None:
    table = read(*sample(f"libreoffice-1904.{fmt}"))
    assert dates_of(table) == DAYS_1904
    assert table.date_system == "1904"


def test_libreoffice_dates_pass_validation_unchanged() -> None:
    table = read(*sample("libreoffice.xls"))
    result = validate(table, DATES, DELIVERY)
    assert result.rows_quarantined == 0
    assert result.accepted["birth_date"].to_list() == DAYS


# -- Excel's count ----------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["xlsx"])
def test_gnumeric_writes_excels_count_and_is_read_so(fmt: str) -> None:
    table = read(*sample(f"gnumeric.{fmt}"))
    assert dates_of(table) == DAYS
    assert (table.date_system, table.notes) == ("1900", [])


@pytest.mark.parametrize("make", [by_openpyxl, by_xlsxwriter])
def test_excel_writers_dates_from_1900_01_02_read_as_written(
        make: Callable[..., bytes]) -> None:
    # xlsxwriter stores datetime 1900-01-01 as 0 (1900-01-00): its own quirk, left out here
    days = [date(1900, 1, 2), date(1900, 2, 27), date(1900, 2, 28), date(1900, 3, 1),
            date(2000, 1, 1)]
    table = read(make(days), "xlsx")
    assert dates_of(table) == days
    assert (table.date_system, table.notes) == ("1900", [])


def test_excels_serial_60_is_no_day_and_is_quarantined() -> None:
    # serial 60 is Excel's 1900-02-29; calamine reads it, and 59, as 1900-02-28
    data = by_openpyxl([59, 60, 61])
    table = read(data, "xlsx")
    assert table.frame["DOB"].to_list() == ["1900-02-28", "1900-02-29", "1900-03-01"]
    assert table.notes == [
        "DOB: 1 cell holding Excel's serial 60, the day 1900-02-29 that never was, kept as "
        "text and quarantined as not a date"]
    result = validate(table, DATES, DELIVERY)
    assert result.reasons == {"birth_date:not_a_date": 1}
    assert result.quarantined["_row"].to_list() == [2]
    assert result.accepted["birth_date"].to_list() == [date(1900, 2, 28), date(1900, 3, 1)]


# -- the 1904 system --------------------------------------------------------------------

@pytest.mark.parametrize(("make", "fmt"), [(by_openpyxl, "xlsx"), (by_xlsxwriter, "xlsx"),
                                           (by_xlwt, "xls")])
def test_1904_workbooks_date_cells_count_from_1904(make: Callable[..., bytes], fmt: str) -> None:
    days = [date(1904, 1, 1), date(1904, 1, 2), date(2000, 1, 1), date(2026, 6, 30)]
    table = read(make(days, mac=True), fmt)
    assert dates_of(table) == days
    assert table.date_system == "1904"


def test_1904_workbooks_plain_numbers_in_a_date_column_count_from_1904() -> None:
    # calamine converts a plain number in a date column in 1900 days whatever the workbook
    table = read(by_openpyxl([0, 1, 35064], mac=True, formatted=False), "xlsx")
    assert dates_of(table) == [date(1904, 1, 1), date(1904, 1, 2), date(2000, 1, 1)]
    assert len(table.notes) == 1 and "1904 date system" in table.notes[0]


# -- a writer not known -----------------------------------------------------------------

EXCEL_DAYS = [date(1899, 12, 31), date(1900, 1, 1), date(1900, 2, 27), date(1900, 2, 28),
              date(1900, 3, 1), date(2000, 1, 1)]
"""Dates the Python writers store in Excel's count (before 1899-12-31 they disagree)."""


@pytest.mark.parametrize(("data", "fmt", "days"), [
    pytest.param(lambda: sample("gnumeric.xls")[0], "xls", DAYS, id="gnumeric.xls"),
    pytest.param(lambda: by_xlwt(EXCEL_DAYS), "xls", EXCEL_DAYS, id="xlwt"),
    pytest.param(lambda: without_part(by_openpyxl(EXCEL_DAYS), "docProps/app.xml"), "xlsx",
                 EXCEL_DAYS, id="xlsx-without-app.xml"),
])
def test_early_dates_from_an_unknown_writer_are_a_warning_never_a_shift(
        data: Callable[[], bytes], fmt: str, days: list[date]) -> None:
    table = read(data(), fmt)
    assert dates_of(table) == days  # read as Excel counts, which each of these wrote
    assert table.date_system is None
    early = sum(1 for d in days if d < date(1900, 3, 1))
    assert table.notes == [
        f"DOB: {early} dates before 1900-03-01 in a workbook that does not say which "
        "application wrote it; read as Excel counts days, but written by LibreOffice each "
        "would mean the day before. Check them with the sender"]


def test_an_unknown_writer_without_early_dates_says_nothing() -> None:
    table = read(by_xlwt([date(1900, 3, 1), date(2000, 1, 1)]), "xls")
    assert dates_of(table) == [date(1900, 3, 1), date(2000, 1, 1)]
    assert table.notes == []


def test_the_warning_reaches_the_runs_warnings(tmp_path: Path, home: Path) -> None:
    frame, truth = generate(200, seed=7, delivery_date=DELIVERY)
    assert frame["DOB"][0] == "01/01/1900"  # the generator's earliest birth date
    folder = tmp_path / "delivery"
    folder.mkdir()
    (folder / "cases.xls").write_bytes(to_xls(frame))  # xlwt: no application named
    summary = ingest.run_delivery(folder, schema="reference", out=tmp_path / "out",
                                  delivery_date=DELIVERY)
    assert summary.rows_accepted == truth.accepted
    assert any(w.startswith("DOB: 1 date before 1900-03-01 in a workbook that does not say")
               for w in summary.warnings), summary.warnings


def test_samples_are_the_ones_the_readme_describes() -> None:
    folder = data_fixture("spreadsheet_dates")
    made = {p.name for p in folder.iterdir() if p.suffix in (".xlsx", ".xls", ".ods")}
    readme = (folder / "README.md").read_text()
    assert made and all(name.split(".")[0] in readme for name in made)
