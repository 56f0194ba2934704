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
from ingest.readers.excel import HEADER_SCAN_ROWS, sniff_ods, sniff_xls, sniff_xlsb, sniff_xlsx
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


# --- one load per sheet: what a typed load cannot tell apart, and how it is settled --------

def legacy_workbook(rows: list[list[object]]) -> bytes:
    """An .xls with each cell written as the type of its Python value (no formulas)."""
    import xlwt  # type: ignore[import-untyped]

    book = xlwt.Workbook(encoding="utf-8")
    sheet = book.add_sheet("Cases")
    date_style = xlwt.easyxf(num_format_str="mm/dd/yyyy")
    for r, values in enumerate(rows):
        for c, value in enumerate(values):
            if isinstance(value, datetime | date):
                sheet.write(r, c, value, date_style)
            elif value is not None:
                sheet.write(r, c, value)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


BOTH_FORMS = pytest.mark.parametrize("form", ["xlsx", "xls"])


def both(form: str, rows: list[list[object]]):  # noqa: ANN201
    data = workbook(("Cases", rows)) if form == "xlsx" else legacy_workbook(rows)
    return read(data, f"cases.{form}")


@BOTH_FORMS
def test_numbers_with_many_decimals_read_back_exactly(form: str) -> None:
    # calamine writes numbers as text to nine decimals; these need the number itself
    values = [0.1234567890123, 1.000000000001, 3.14159265358979, 1e-10, 2.5]
    pure = both(form, [HEADER, *(row(i, lab=v) for i, v in enumerate(values, 1))])
    assert pure.frame["LAB_VAL"].to_list() == values
    mixed = both(form, [HEADER, *(row(i, lab=v) for i, v in enumerate(values, 1)),
                        row(9, lab="NA")])
    assert [float(v) for v in mixed.frame["LAB_VAL"].to_list()[:5]] == values
    result = validate(mixed, DATASET, DELIVERY)
    assert result.accepted["lab_value"].to_list() == [*values, None]


def test_a_datetime_cell_is_a_date_in_a_date_column_and_text_in_a_number_column() -> None:
    when = datetime(2021, 1, 1, 13, 30, 5)
    source = read(workbook(("Cases", [HEADER, row(1, report=when), row(2, lab=when)])))
    assert source.frame.schema["RPT_DT"] == pl.Date
    assert source.frame["RPT_DT"][0] == date(2021, 1, 1)
    # as calamine writes a date-time as text, so the row is quarantined as not a number
    assert source.frame["LAB_VAL"].to_list() == ["1.5", "2021-01-01 13:30:05"]
    assert outcome(validate(source, DATASET, DELIVERY)) == {2: "lab_value:not_a_number"}
    # a last row holding only such a cell is a row, not trailing emptiness
    last = [None] * 7 + [when]
    source = read(workbook(("Cases", [HEADER, row(1), last])))
    assert source.rows == 2 and source.frame["LAB_VAL"][1] == "2021-01-01 13:30:05"


@BOTH_FORMS
def test_boolean_cells_are_told_from_text_that_spells_them(form: str) -> None:
    rows = [
        HEADER,
        row(1, hosp=True),             # a boolean cell: Y
        row(2, hosp="TRUE"),           # text, as Excel shows a boolean: stays text
        row(3, hosp="true"),           # text, as calamine writes a boolean: stays text too
        row(4, lab=0), row(5, lab=1),  # numbers 0 and 1 ...
        row(6, lab=False),             # ... beside a boolean in the same number column
    ]
    source = both(form, rows)
    assert source.frame["HOSP_YN"].to_list()[:3] == ["Y", "TRUE", "true"]
    assert source.frame["LAB_VAL"].to_list()[3:6] == ["0.0", "1.0", "false"]
    assert outcome(validate(source, DATASET, DELIVERY)) == {
        2: "hospitalized:not_a_boolean", 3: "hospitalized:not_a_boolean",
        6: "lab_value:not_a_number"}


@BOTH_FORMS
def test_text_true_in_a_sheet_without_boolean_cells_stays_text(form: str) -> None:
    source = both(form, [HEADER, row(1), row(2, hosp="true"), row(3, lab=1)])
    assert source.frame["HOSP_YN"].to_list() == ["N", "true", "N"]
    assert source.frame.schema["LAB_VAL"] == pl.Float64
    assert outcome(validate(source, DATASET, DELIVERY)) == {2: "hospitalized:not_a_boolean"}


@BOTH_FORMS
def test_identifier_text_keeps_its_spelling_beside_numbers(form: str) -> None:
    rows = [HEADER, row(1), row(67409), row("067408"), row("67407"), row(True), row(42.5)]
    source = both(form, rows)
    assert source.frame["CASE_ID"].to_list() == [
        "0000000001", "0000067409", "067408", "0000067407", "true", "42.5"]
    result = validate(source, DATASET, DELIVERY)
    # text digits arriving short are zero-padded to the declared width: a repair the
    # schema declares, counted; a cell with other characters is never padded
    assert outcome(result) == dict.fromkeys((5, 6), "case_id:str_matches")
    assert result.accepted["case_id"].to_list()[2] == "0000067408"
    assert result.repairs.get("case_id:zero_padded", 0) >= 1


def test_a_number_near_a_whole_number_in_an_identifier_column() -> None:
    # the one ambiguity left (see the module docstring): an .xls identifier column loads
    # as calamine's text, which writes 67409.0000000001 as 67409, so it reads as 67409;
    # an .xlsx one loads as numbers, where it is not whole and stays as text
    rows = [HEADER, row(1), row(67409.0000000001)]
    assert both("xls", rows).frame["CASE_ID"].to_list() == [1, 67409]
    assert both("xlsx", rows).frame["CASE_ID"].to_list() == ["0000000001", "67409"]


@BOTH_FORMS
def test_text_that_does_not_fit_its_column_comes_back_exactly(form: str) -> None:
    odd = ['say "hi"', "back\\slash", "two\nlines", "tab\there", "é€😀", "zero\u200bwidth",
           "  padded  ", "it's", "(paren)", "got 'x'"]
    if form == "xlsx":
        odd.append("bell\x07")
    rows = [HEADER, *(row(i, dob=t, lab=t, report=t) for i, t in enumerate(odd, 1))]
    frame = both(form, rows).frame
    for column in ("DOB", "LAB_VAL", "RPT_DT"):
        assert frame[column].to_list() == odd, column


def test_identifiers_written_as_text_throughout_load_as_text() -> None:
    # the first data rows show the column as text: no number load to undo
    rows = [HEADER, row("0000000001"), row("0000000002", fips=1001), row("12")]
    frame = read(workbook(("Cases", rows))).frame
    assert frame["CASE_ID"].to_list() == ["0000000001", "0000000002", "0000000012"]


# --- the .xlsx package scan, and calamine as the last word ---------------------------------

def handmade_xlsx(sheet_xml: str, shared: list[str] | None = None) -> bytes:
    """An .xlsx from raw sheet XML (and shared strings), as other writers make them."""
    rels = ('<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
            'openxmlformats.org/package/2006/relationships">{}</Relationships>')
    ns = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    book_rels = (f'<Relationship Id="rId1" Type="{ns}/worksheet" '
                 'Target="worksheets/sheet1.xml"/>')
    if shared is not None:
        book_rels += (f'<Relationship Id="rId2" Type="{ns}/sharedStrings" '
                      'Target="sharedStrings.xml"/>')
    parts = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats'
            '.org/package/2006/content-types"><Default Extension="rels" ContentType="applicati'
            'on/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" Conten'
            'tType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="appli'
            'cation/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override'
            ' PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats'
            '-officedocument.spreadsheetml.worksheet+xml"/></Types>'),
        "_rels/.rels": rels.format(f'<Relationship Id="rId1" Type="{ns}/officeDocument" '
                                   'Target="xl/workbook.xml"/>'),
        "xl/workbook.xml": (f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{main}" '
                            f'xmlns:r="{ns}"><sheets><sheet name="Cases" sheetId="1" '
                            'r:id="rId1"/></sheets></workbook>'),
        "xl/_rels/workbook.xml.rels": rels.format(book_rels),
        "xl/worksheets/sheet1.xml": (f'<?xml version="1.0" encoding="UTF-8"?><worksheet '
                                     f'xmlns="{main}"><sheetData>{sheet_xml}</sheetData>'
                                     '</worksheet>'),
    }
    if shared is not None:
        parts["xl/sharedStrings.xml"] = (f'<?xml version="1.0" encoding="UTF-8"?><sst '
                                         f'xmlns="{main}">{"".join(shared)}</sst>')
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in parts.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def _letter(c: int) -> str:
    return chr(65 + c)


def inline_row(r: int, values: list[object], refs: bool = True) -> str:
    cells = []
    for c, value in enumerate(values):
        ref = f' r="{_letter(c)}{r}"' if refs else ""
        if isinstance(value, bool):
            cells.append(f'<c{ref} t="b"><v>{int(value)}</v></c>')
        elif isinstance(value, int | float):
            cells.append(f"<c{ref}><v>{value}</v></c>")
        else:
            cells.append(f'<c{ref} t="inlineStr"><is><t>{escape(str(value))}</t></is></c>')
    return f'<row r="{r}">{"".join(cells)}</row>' if refs else f"<row>{''.join(cells)}</row>"


def test_inline_text_and_rich_shared_strings_name_the_columns() -> None:
    # a title in rich text (two runs and a phonetic reading), the header as inline text,
    # and inline text that spells a number in an identifier column
    shared = ['<si><r><t>Case </t></r><r><rPr><b/></rPr><t>reports</t></r>'
              '<rPh sb="0" eb="1"><t>x</t></rPh></si>']
    title = '<row r="1"><c r="A1" t="s"><v>0</v></c></row>'
    values = [1, "P0000ABCD", 18265, "F", 1001, 43957, "A01.1", 1.5, "N", "ok"]
    body = [inline_row(2, HEADER), inline_row(3, values), inline_row(4, ["067409", *values[1:]])]
    source = read(handmade_xlsx(title + "".join(body), shared))
    assert source.frame["CASE_ID"].to_list() == ["0000000001", "067409"]
    assert source.frame["LAB_VAL"].to_list() == [1.5, 1.5]


def test_a_sheet_the_package_scan_cannot_follow_is_read_by_calamine() -> None:
    # cells without references: calamine places them in order, the scan steps aside
    values = [1, "P0000ABCD", 18265, "F", 1001, 43957, "A01.1", 1.5, True, "ok"]
    sheet = "".join(inline_row(r, v, refs=False)
                    for r, v in ((1, ["Case reports"]), (2, HEADER), (3, values)))
    source = read(handmade_xlsx(sheet))
    assert source.frame["CASE_ID"].to_list() == [1]
    assert source.frame["HOSP_YN"].to_list() == [True]


def test_where_the_package_scan_and_calamine_disagree_calamine_wins(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from ingest.readers import excel

    real = excel._Package.heads

    def shifted(self, names):  # noqa: ANN001, ANN202 - the header one row too low
        heads = real(self, names)
        return [(cols, [[None] * len(cols), *rows], texts) if rows else None
                for cols, rows, texts in heads] if heads else heads

    monkeypatch.setattr(excel._Package, "heads", shifted)
    rows = [["Case reports"], HEADER, row(1), row(2)]
    source = read(workbook(("Cases", rows)))
    assert source.frame["CASE_ID"].to_list() == [1, 2]


def test_identifier_text_far_below_the_first_rows_keeps_its_spelling() -> None:
    # the first rows show numbers, so the column loads as numbers; the text cells that
    # load as numbers too (067408, a boolean) are found and the column loaded as text
    numbers = [row(100 + i) for i in range(HEADER_SCAN_ROWS + 5)]
    rows = [HEADER, *numbers, row("067408"), row("67407"), row(True), row(42.5)]
    frame = read(workbook(("Cases", rows))).frame
    assert frame["CASE_ID"].to_list()[:2] == ["0000000100", "0000000101"]
    assert frame["CASE_ID"].to_list()[-4:] == ["067408", "0000067407", "true", "42.5"]
    # -0 is no whole number's spelling, as a text load would show
    assert read(workbook(("Cases", [HEADER, *numbers, row(-0.0)]))).frame["CASE_ID"][-1] == "-0"
    # numbers only below the first rows: typed, every digit kept
    plain = read(workbook(("Cases", [HEADER, *numbers, row(67407)]))).frame
    assert plain.schema["CASE_ID"] == pl.Int64 and plain["CASE_ID"][-1] == 67407


@pytest.mark.parametrize("rows", [
    [HEADER, row(1, hosp=True), row(2, hosp="true"), row(4, lab=0), row(6, lab=False)],
    [HEADER, row(1), row(2, hosp="true"), row(3, lab=1)],
    [HEADER, *[row(100 + i) for i in range(HEADER_SCAN_ROWS + 5)], row("067408"), row(True)],
], ids=["booleans", "no-booleans", "identifier-text"])
def test_the_cell_scan_streams_beside_the_load_and_changes_nothing(
        rows: list, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same table whether the package scan answers or is always unsure (then
    every doubtful column is loaded again as text); the scan streams the sheet in
    its own thread, beside calamine's load."""
    from ingest.readers import excel

    data = workbook(("Cases", rows))
    with monkeypatch.context() as unsure:
        unsure.setattr(excel._Package, "cells", lambda self, index: (True, True))
        whole = read(data).frame
    streamed = []
    real = excel._Package._scan

    def spy(self, name, result):  # noqa: ANN001, ANN202
        import threading

        streamed.append(threading.current_thread().name)
        return real(self, name, result)

    monkeypatch.setattr(excel._Package, "_scan", spy)
    assert read(data).frame.equals(whole)
    assert streamed  # the streamed scan really ran
    assert "xlsx-cell-scan" in streamed  # beside calamine's load, not after it


def test_a_damaged_sheet_stream_is_reported_as_a_damaged_workbook() -> None:
    """Damage the package scan meets (here, a corrupt deflate stream) is left to
    calamine, whose failure becomes the clear message, not a withheld one."""
    import io
    import zipfile

    data = bytearray(workbook(("Cases", [HEADER, *[row(100 + i) for i in range(50)]])))
    info = next(i for i in zipfile.ZipFile(io.BytesIO(data)).infolist()
                if "worksheets/sheet" in i.filename)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for k in range(start + 40, start + 60):
        data[k] ^= 0xFF
    with pytest.raises(ReadError, match="could not be read; it may be damaged"):
        read(bytes(data))


def test_a_header_the_package_scan_misreads_is_read_calamines_way(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the scan's reading of the header does not match but calamine's does,
    the workbook is read, not refused with a message built from the scan."""
    from ingest.readers import excel

    data = workbook(("Cases", [HEADER, row(1), row(2)]))
    expected = read(data).frame
    real = excel._Package.heads

    def misread(self, names):  # noqa: ANN001, ANN202
        heads = real(self, names)
        for head in heads or ():
            if head is not None:
                first = head[1][0]  # two cells misread: the sheet still looks like the header
                head[1][0] = [f"{c} X" if c and j < 2 else c for j, c in enumerate(first)]
        return heads

    monkeypatch.setattr(excel._Package, "heads", misread)
    assert read(data).frame.equals(expected)
