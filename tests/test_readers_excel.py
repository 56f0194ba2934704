"""Workbook readers: the same delivery in CSV, .xlsx, .xls and .ods reads to the same table."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from datetime import date, datetime
from xml.sax.saxutils import escape

import polars as pl
import pytest
import xlsxwriter

from ingest.errors import DecryptionError, ReadError, SchemaMismatchError
from ingest.media import Member
from ingest.readers import read_member, reader_for
from ingest.readers.excel import sniff_ods, sniff_xls, sniff_xlsb, sniff_xlsx
from ingest.synth import generate, to_delimited
from ingest.synth.forms import XLS_MAX_DATA_ROWS, to_xls, to_xlsx
from ingest.validate import ValidationResult, validate
from schemas.reference import DATASET

DELIVERY = date(2026, 6, 30)
HEADER = DATASET.source_names


@dataclass(frozen=True)
class Formula:
    """A formula cell whose cached result is an Excel error."""

    formula: str
    error: str


def workbook(*sheets: tuple[str, list[list[object]]]) -> bytes:
    """An .xlsx with each cell written as the type of its Python value."""
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    date_format = book.add_format({"num_format": "mm/dd/yyyy"})
    for name, rows in sheets:
        sheet = book.add_worksheet(name)
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                if value is None:
                    continue
                if isinstance(value, Formula):
                    sheet.write_formula(r, c, value.formula, None, value.error)
                elif isinstance(value, bool):
                    sheet.write_boolean(r, c, value)
                elif isinstance(value, datetime | date):
                    sheet.write_datetime(r, c, value, date_format)
                elif isinstance(value, int | float):
                    sheet.write_number(r, c, value)
                else:
                    sheet.write_string(r, c, value)
    book.close()
    return buffer.getvalue()


def row(case: object = 1, *, dob: object = date(1950, 1, 2), lab: object = 1.5,
        hosp: object = "N", fips: object = "01001", comment: object = "ok",
        report: object = date(2020, 5, 6)) -> list[object]:
    return [case, "P0000ABCD", dob, "F", fips, report, "A01.1", lab, hosp, comment]


def read(data: bytes, name: str = "cases.xlsx"):  # noqa: ANN201
    return read_member(Member(name, data), DATASET)


def outcome(result: ValidationResult) -> dict[int, str]:
    return dict(result.quarantined.select("_row", "_reasons").iter_rows())


# --- the key property: one delivery, any format, one clean table ---------------------------

@pytest.fixture(scope="module")
def delivery() -> dict[str, object]:
    frame, truth = generate(20_000, seed=2024)
    return {
        "truth": truth,
        "csv": to_delimited(frame),
        "xlsx": to_xlsx(frame, title_rows=3),
        "xlsx-text": to_xlsx(frame, native_types=False),
        "xls": to_xls(frame, rows_per_sheet=7_000, notes_sheet=True),
    }


def test_same_delivery_in_csv_xlsx_and_multisheet_xls_gives_the_same_clean_table(
        delivery: dict[str, object]) -> None:
    truth = delivery["truth"]
    results = {}
    for form in ("csv", "xlsx", "xlsx-text", "xls"):
        source = read(delivery[form], f"cases.{form.split('-')[0]}")
        results[form] = validate(source, DATASET, truth.delivery_date)
    expected = results["csv"]
    assert expected.rows_accepted == truth.accepted
    assert set(outcome(expected)) == set(truth.bad_rows)
    for form, result in results.items():
        assert result.rows_in == truth.rows, form
        assert result.accepted.equals(expected.accepted), form
        assert result.reasons == expected.reasons, form
        assert outcome(result) == outcome(expected), form


def test_cells_keep_their_types_and_mixed_columns_stay_faithful_text(
        delivery: dict[str, object]) -> None:
    csv = read(delivery["csv"], "cases.csv").frame
    source = read(delivery["xlsx"])
    assert source.format == "xlsx"
    schema = source.frame.schema
    # numbers and dates throughout: typed; the leading zeros come back in coercion
    assert schema["CASE_ID"] == pl.Int64 and schema["CNTY_FIPS"] == pl.Int64
    assert schema["RPT_DT"] == pl.Date
    # DOB holds dates and invalid-date text, LAB_VAL numbers and NA/./NULL text
    assert schema["DOB"] == pl.Utf8 and schema["LAB_VAL"] == pl.Utf8
    # every date cell is written MM/DD/YYYY, exactly as the CSV has it
    assert source.frame["DOB"].equals(csv["DOB"])
    assert source.frame["RPT_DT"].equals(
        csv["RPT_DT"].str.strptime(pl.Date, "%m/%d/%Y"), check_names=False)


def test_a_legacy_xls_splits_at_65535_rows_and_reads_back_as_one_table() -> None:
    frame, truth = generate(XLS_MAX_DATA_ROWS + 1_000, seed=5)
    data = to_xls(frame)
    source = read(data, "cases.xls")
    assert source.format == "xls" and source.rows == frame.height
    assert any("2 sheets" in note for note in source.notes)
    result = validate(source, DATASET, truth.delivery_date)
    assert result.rows_accepted == truth.accepted
    assert set(outcome(result)) == set(truth.bad_rows)


# --- cells: mixed types, formula errors, serial numbers ------------------------------------

def test_mixed_cells_error_cells_and_serial_numbers_are_read_without_loss() -> None:
    rows = [
        HEADER,
        row(67409),                                          # 1 typed cells
        row("0000000042", dob="03/04/1960", lab="NA", hosp="Y", fips="02013",
            report=datetime(2021, 1, 1, 13, 30)),             # 2 text cells
        row(3, dob="02/30/1980"),                            # 3 an impossible date, as text
        row(4, dob=Formula("=NA()", "#N/A")),                # 4 a formula error
        row(5, lab=Formula("=1/0", "#DIV/0!")),              # 5 another
        row(6, dob=20000),                                   # 6 a serial number
        row(7, lab=True),                                    # 7 a boolean in a number column
        row(8, hosp=True),                                   # 8 a boolean in a Y/N column
        row(123.5),                                          # 9 not a whole number
        row(10, comment=Formula("=NA()", "#N/A")),           # 10 an error in free text
    ]
    source = read(workbook(("Cases", rows)))
    frame = source.frame
    assert frame["CASE_ID"].to_list()[:2] == ["0000067409", "0000000042"]
    assert frame["CNTY_FIPS"].to_list()[:2] == ["01001", "02013"]
    assert frame["DOB"].to_list()[:6] == ["01/02/1950", "03/04/1960", "02/30/1980", "#N/A",
                                         "01/02/1950", "10/03/1954"]
    assert frame["LAB_VAL"][4] == "#DIV/0!" and frame["LAB_VAL"][6] == "true"
    assert frame["HOSP_YN"][7] == "Y"
    assert frame.schema["RPT_DT"] == pl.Date and frame["RPT_DT"][1] == date(2021, 1, 1)
    assert any("formula errors" in note for note in source.notes)

    result = validate(source, DATASET, DELIVERY)
    assert outcome(result) == {
        3: "birth_date:not_a_date",
        4: "birth_date:not_a_date",
        5: "lab_value:not_a_number",
        7: "lab_value:not_a_number",
        9: "case_id:str_matches",
    }
    accepted = result.accepted
    assert accepted["case_id"].to_list() == ["0000067409", "0000000042", "0000000006",
                                             "0000000008", "0000000010"]
    assert accepted["birth_date"][2] == date(1954, 10, 3)
    assert accepted["hospitalized"].to_list() == [False, True, False, True, False]
    assert accepted["lab_value"][1] is None
    assert accepted["comments"][4] == "#N/A"


def test_columns_whose_cells_all_have_one_type_are_typed() -> None:
    rows = [HEADER, row(1, hosp=False), row(2, lab=0, hosp=True, fips=1001)]
    frame = read(workbook(("Cases", rows))).frame
    assert frame.schema["CASE_ID"] == pl.Int64
    assert frame.schema["DOB"] == pl.Date
    assert frame.schema["LAB_VAL"] == pl.Float64
    assert frame.schema["HOSP_YN"] == pl.Boolean
    assert frame.schema["CNTY_FIPS"] == pl.Utf8   # "01001" text beside 1001
    assert frame["CNTY_FIPS"].to_list() == ["01001", "01001"]
    result = validate(read(workbook(("Cases", rows))), DATASET, DELIVERY)
    assert result.rows_accepted == 2


# --- sheets and the header row --------------------------------------------------------------

def test_header_below_title_rows_and_notes_and_lookup_sheets_are_skipped() -> None:
    data = workbook(
        ("Read me", [["Extract of case reports"], ["CASE_ID is the case number"]]),
        ("Empty", []),
        ("Cases 1", [["Case reports"], [], ["Confidential"], HEADER, row(1), row(2)]),
        ("Counties", [["CNTY_FIPS", "NAME"], ["01001", "Autauga"]]),
        ("Cases 2", [HEADER, row(3)]),
    )
    source = read(data)
    assert source.frame["CASE_ID"].to_list() == [1, 2, 3]
    skipped = [n for n in source.notes if n.startswith("skipped")]
    assert len(skipped) == 3 and any("'Counties'" in n for n in skipped)


def test_trailing_empty_rows_are_dropped_and_a_trailer_is_checked() -> None:
    body = [HEADER, row(1), row(2), row(3)]
    source = read(workbook(("Cases", [*body, [], ["TOTAL RECORDS: 3"]])))
    assert source.rows == 3 and source.trailer_count == 3
    with pytest.raises(ReadError, match="trailer says 4 records but 3"):
        read(workbook(("Cases", [*body, ["TOTAL RECORDS: 4"]])))


def test_a_header_too_far_down_or_missing_columns_is_a_schema_mismatch() -> None:
    far = [[f"note {i}"] for i in range(40)] + [HEADER, row(1)]
    with pytest.raises(SchemaMismatchError, match="no sheet has a header row"):
        read(workbook(("Cases", far)))
    with pytest.raises(SchemaMismatchError, match="missing CMNT") as info:
        read(workbook(("Cases", [HEADER[:-1], row(1)[:-1]])))
    assert "P0000ABCD" not in str(info.value)


# --- formats: recognition, OpenDocument, damaged and encrypted files ----------------------

MANIFEST = (
    '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest='
    '"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
    '<manifest:file-entry manifest:full-path="/" '
    'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
    '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
    "</manifest:manifest>")


def ods(rows: list[list[object]]) -> bytes:
    """A minimal OpenDocument spreadsheet, as LibreOffice would type its cells."""
    def cell(value: object) -> str:
        if value is None:
            return "<table:table-cell/>"
        if isinstance(value, bool):
            kind, attr = "boolean", f'office:boolean-value="{str(value).lower()}"'
        elif isinstance(value, date):
            kind, attr = "date", f'office:date-value="{value.isoformat()}"'
        elif isinstance(value, int | float):
            kind, attr = "float", f'office:value="{value}"'
        else:
            kind, attr = "string", ""
        return (f'<table:table-cell office:value-type="{kind}" {attr}>'
                f"<text:p>{escape(str(value))}</text:p></table:table-cell>")

    ns = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
          'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
          'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"')
    table = "".join("<table:table-row>" + "".join(cell(v) for v in r) + "</table:table-row>"
                    for r in rows)
    content = (f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {ns} '
               'office:version="1.2"><office:body><office:spreadsheet>'
               f'<table:table table:name="Cases">{table}</table:table>'
               "</office:spreadsheet></office:body></office:document-content>")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"),
                         "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("META-INF/manifest.xml", MANIFEST, compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr("content.xml", content, compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def test_an_opendocument_spreadsheet_reads_with_typed_cells() -> None:
    source = read(ods([HEADER, row(1), row(2, dob="02/30/1980")]), "cases.ods")
    assert source.format == "ods"
    assert source.frame["DOB"].to_list() == ["01/02/1950", "02/30/1980"]
    result = validate(source, DATASET, DELIVERY)
    assert outcome(result) == {2: "birth_date:not_a_date"}


def test_formats_are_recognised_by_content(delivery: dict[str, object]) -> None:
    xlsx, xls, csv = delivery["xlsx"], delivery["xls"], delivery["csv"]
    assert sniff_xlsx(xlsx[:65536]) and not sniff_xlsb(xlsx[:65536])
    assert sniff_xls(xls[:65536]) and not sniff_xlsx(xls[:65536])
    assert sniff_ods(ods([HEADER])) and not sniff_xlsx(ods([HEADER]))
    fake_xlsb = io.BytesIO()
    with zipfile.ZipFile(fake_xlsb, "w") as archive:
        archive.writestr("[Content_Types].xml", "")
        archive.writestr("xl/workbook.bin", b"")
    assert sniff_xlsb(fake_xlsb.getvalue()) and not sniff_xlsx(fake_xlsb.getvalue())
    word = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504) + "WordDocument".encode("utf-16-le")
    assert not sniff_xls(word)
    assert reader_for(Member("a.csv", csv)).format == "delimited"
    assert reader_for(Member("a.bin", xls)).format == "xls"


def test_a_damaged_workbook_is_a_read_error_without_data(delivery: dict[str, object]) -> None:
    data = delivery["xlsx"]
    with pytest.raises(ReadError, match="cases.xlsx") as info:
        read(data[: len(data) // 2])
    assert "Traceback" not in str(info.value)
    assert info.value.__cause__ is None


def test_a_password_protected_workbook_is_a_decryption_error() -> None:
    from msoffcrypto.format.ooxml import OOXMLFile

    encrypted = io.BytesIO()
    OOXMLFile(io.BytesIO(workbook(("Cases", [HEADER, row(1)])))).encrypt("secret", encrypted)
    with pytest.raises(DecryptionError, match="password-protected"):
        read(encrypted.getvalue())
