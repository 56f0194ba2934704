"""Write a synthesised table the way an agency's tools export it."""

from __future__ import annotations

from collections.abc import Callable

import polars as pl


def to_delimited(frame: pl.DataFrame, *, separator: str = ",", encoding: str = "cp1252",
                 crlf: bool = True, trailer: bool = True, bom: bool = False) -> bytes:
    """CSV/TSV bytes: quoted, CRLF, optional ``TOTAL RECORDS: N`` trailer or a BOM."""
    newline = "\r\n" if crlf else "\n"
    text = frame.write_csv(None, separator=separator, quote_style="always",
                           line_terminator=newline)
    if trailer:
        text += f"TOTAL RECORDS: {frame.height}{newline}"
    data = text.encode(encoding)
    if bom:
        data = ({"utf-8": b"\xef\xbb\xbf"}.get(encoding, b"")) + data
    return data


_REFERENCE_NUMBERS = ("CASE_ID", "CNTY_FIPS", "LAB_VAL")
_REFERENCE_DATES = ("DOB", "RPT_DT")
_TITLE = ("Notifiable disease case reports: extract", "Prepared by the surveillance unit",
          "CONFIDENTIAL: contains personal health information")
"""Title and notes lines above the header; a fourth title row and later stay blank."""
XLS_MAX_DATA_ROWS = 65_535
"""A BIFF8 sheet holds 65,536 rows: one header and 65,535 data rows."""


def _typed_cells(frame: pl.DataFrame, native_types: bool, number_columns: tuple[str, ...],
                 date_columns: tuple[str, ...]) -> list[list[tuple[str, object]]]:
    """Per column, ``(kind, value)`` cells: ``n`` number, ``d`` Excel serial date,
    ``s`` text, ``b`` blank; text that does not parse stays text, as Excel keeps it."""
    columns: list[list[tuple[str, object]]] = []
    for name in frame.columns:
        text = frame[name].cast(pl.Utf8)
        typed: pl.Series | None = None
        kind = "s"
        if native_types and name in number_columns:
            kind = "n"
            typed = text.str.strip_chars().cast(pl.Float64, strict=False)
        elif native_types and name in date_columns:
            kind = "d"
            days = text.str.strptime(pl.Date, "%m/%d/%Y", strict=False, exact=True)
            # Excel counts 1900-01-01 as day 1 and keeps a 1900-02-29 (day 60)
            serial = days.cast(pl.Int32) + 25_568
            typed = pl.select(pl.when(serial > 59).then(serial + 1).otherwise(serial)
                              .cast(pl.Float64)).to_series()
        texts = text.to_list()
        values = typed.to_list() if typed is not None else [None] * len(texts)
        columns.append([
            (kind, v) if v is not None and v == v and abs(v) != float("inf")
            else (("b", None) if t is None or t == "" else ("s", t))
            for t, v in zip(texts, values, strict=True)])
    return columns


def to_xlsx(frame: pl.DataFrame, *, title_rows: int = 0, native_types: bool = True,
            notes_sheet: bool = False, number_columns: tuple[str, ...] = _REFERENCE_NUMBERS,
            date_columns: tuple[str, ...] = _REFERENCE_DATES) -> bytes:
    """An ``.xlsx`` workbook, built in memory, as a spreadsheet user would save it.

    With ``native_types`` the number columns are numbers (CASE_ID and CNTY_FIPS
    lose their leading zeros, as Excel does) and the date columns Excel dates;
    cells that do not parse (``NA``, ``02/30/1980``) stay text, so those columns
    are mixed, as real ones are. ``title_rows`` title/notes lines sit above the
    header; ``notes_sheet`` adds a sheet of notes after the data.
    """
    import io

    import xlsxwriter  # type: ignore[import-untyped]

    buffer = io.BytesIO()
    # in_memory: xlsxwriter would otherwise stage worksheets in temporary files
    book = xlsxwriter.Workbook(buffer, {"in_memory": True, "strings_to_numbers": False,
                                        "strings_to_formulas": False, "strings_to_urls": False})
    sheet = book.add_worksheet("Cases")
    date_format = book.add_format({"num_format": "mm/dd/yyyy"})
    for r, line in enumerate(_TITLE[:title_rows]):
        sheet.write_string(r, 0, line)
    sheet.write_row(title_rows, 0, frame.columns)
    columns = _typed_cells(frame, native_types, number_columns, date_columns)
    for c, cells in enumerate(columns):
        row = title_rows + 1
        for kind, value in cells:
            if kind == "n":
                sheet.write_number(row, c, value)
            elif kind == "d":
                sheet.write_number(row, c, value, date_format)
            elif kind == "s":
                sheet.write_string(row, c, value)
            row += 1
    if notes_sheet:
        _notes(book.add_worksheet("Notes").write_string)
    book.close()
    return buffer.getvalue()


def to_xls(frame: pl.DataFrame, *, title_rows: int = 0, native_types: bool = True,
           notes_sheet: bool = False, rows_per_sheet: int = XLS_MAX_DATA_ROWS,
           number_columns: tuple[str, ...] = _REFERENCE_NUMBERS,
           date_columns: tuple[str, ...] = _REFERENCE_DATES) -> bytes:
    """A legacy ``.xls`` (BIFF8) workbook: the table split over sheets of at most
    ``rows_per_sheet`` data rows (65,535, the format's limit), each with the header.

    Title rows, if any, sit on the first sheet only; types as in :func:`to_xlsx`.
    """
    import io

    import xlwt  # type: ignore[import-untyped]

    rows_per_sheet = max(1, min(rows_per_sheet, XLS_MAX_DATA_ROWS - title_rows))
    book = xlwt.Workbook(encoding="utf-8")
    date_style = xlwt.easyxf(num_format_str="mm/dd/yyyy")
    columns = _typed_cells(frame, native_types, number_columns, date_columns)
    starts = range(0, max(frame.height, 1), rows_per_sheet)
    for part, start in enumerate(starts):
        sheet = book.add_sheet(f"Cases {part + 1}" if len(starts) > 1 else "Cases")
        top = title_rows if part == 0 else 0
        for r, line in enumerate(_TITLE[:top]):
            sheet.write(r, 0, line)
        for c, name in enumerate(frame.columns):
            sheet.write(top, c, name)
        for c, cells in enumerate(columns):
            for offset, (kind, value) in enumerate(cells[start:start + rows_per_sheet]):
                if kind == "b":
                    continue
                row = sheet.row(top + 1 + offset)
                if kind == "d":
                    row.set_cell_number(c, value, date_style)
                elif kind == "n":
                    row.set_cell_number(c, value)
                else:
                    row.set_cell_text(c, value)
    if notes_sheet:
        _notes(book.add_sheet("Notes").write)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _notes(write: Callable[[int, int, str], object]) -> None:
    """A notes sheet, as senders add one: a reader must pass over it."""
    for r, line in enumerate(("Notes", "Dates are MM/DD/YYYY.",
                              "LAB_VAL: NA, . and NULL mean not tested.",
                              "Contact the surveillance unit with questions.")):
        write(r, 0, line)
