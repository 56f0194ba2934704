"""The admissions table in the forms a hospital's tools give it.

CSV comes from :func:`ingest.synth.to_delimited` (UTF-8 or Windows-1252). Here:
workbooks with typed cells (integers and money as numbers, timestamps and times
of day as Excel dates and times, flags as booleans), written by XlsxWriter or by
openpyxl, and the text ``mdb-export`` prints for an Access table of these types.

No tool here writes an Access database (mdbtools only reads), so the Access form
is what the reader gets from mdbtools: ``mdb-export -D %Y-%m-%d -T "%Y-%m-%d
%H:%M:%S"`` of a table whose columns are Date/Time (the timestamp, without a zone;
a time of day on Access's day zero, ``1899-12-30``), Long Integer, Currency (four
places), Numeric(7,3), Yes/No (``1``/``0``) and Text (quoted). A value its Access
type could not hold (a broken row's ``2.5`` days) is printed as the text it is,
as from a Text column.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, time
from decimal import Decimal, InvalidOperation

import polars as pl

from .admissions import NULL_TOKENS

Cell = tuple[str, object]
"""``(kind, value)``: ``n`` number, ``t`` datetime, ``h`` time of day, ``b`` boolean,
``s`` text, ``e`` empty."""

_DATETIME_SPELLINGS = ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S")
_ACCESS_DAY_ZERO = "1899-12-30"


def _datetime(text: str) -> datetime | None:
    """The UTC wall-clock time a timestamp's text says (Excel and Access hold no zone)."""
    for spelling in _DATETIME_SPELLINGS:
        try:
            value = datetime.strptime(text.replace("Z", "+00:00"), spelling)
        except ValueError:
            continue
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return None


def _time(text: str) -> time | None:
    try:
        return datetime.strptime(text, "%H:%M").time()
    except ValueError:
        return None


def _number(text: str) -> float | None:
    try:
        Decimal(text)
    except InvalidOperation:
        return None
    return float(text)


_TYPED: dict[str, tuple[str, Callable[[str], object]]] = {
    "ADMIT_TS": ("t", _datetime),
    "ARRIVAL": ("h", _time),
    "LOS_DAYS": ("n", _number),
    "PRIOR_ADM": ("n", _number),
    "CHARGE": ("n", _number),
    "CREAT": ("n", _number),
    "READMIT": ("b", {"Y": True, "N": False}.get),
}
"""Source columns a spreadsheet holds as typed cells; text that does not parse
(a broken row's ``25:10``, a null token ``NA``) stays a text cell, as Excel keeps it."""


def typed_cells(frame: pl.DataFrame) -> list[list[Cell]]:
    """Per column, its cells as a spreadsheet user's workbook holds them."""
    columns = []
    for name in frame.columns:
        kind, parse = _TYPED.get(name, ("s", str))
        cells: list[Cell] = []
        for text in frame[name].to_list():
            value = parse(text) if text else None
            if not text:
                cells.append(("e", None))
            elif value is None or kind == "s":
                cells.append(("s", text))
            else:
                cells.append((kind, value))
        columns.append(cells)
    return columns


def to_xlsx(frame: pl.DataFrame, *, engine: str = "xlsxwriter",
            sheet: str = "Admissions") -> bytes:
    """An ``.xlsx`` workbook with typed cells, built in memory by ``engine``
    (``xlsxwriter`` or ``openpyxl``)."""
    columns = typed_cells(frame)
    if engine == "xlsxwriter":
        return _xlsxwriter(frame.columns, columns, sheet)
    if engine == "openpyxl":
        return _openpyxl(frame.columns, columns, sheet)
    raise ValueError(f"unknown engine {engine!r}: xlsxwriter or openpyxl")


def _xlsxwriter(header: list[str], columns: list[list[Cell]], name: str) -> bytes:
    import xlsxwriter  # type: ignore[import-untyped]

    buffer = io.BytesIO()
    # in_memory: xlsxwriter would otherwise stage worksheets in temporary files
    book = xlsxwriter.Workbook(buffer, {"in_memory": True, "strings_to_numbers": False,
                                        "strings_to_formulas": False, "strings_to_urls": False})
    sheet = book.add_worksheet(name)
    stamp = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    clock = book.add_format({"num_format": "hh:mm"})
    sheet.write_row(0, 0, header)
    for c, cells in enumerate(columns):
        for r, (kind, value) in enumerate(cells, start=1):
            if kind == "n":
                sheet.write_number(r, c, value)
            elif kind == "t":
                sheet.write_datetime(r, c, value, stamp)
            elif kind == "h":
                sheet.write_datetime(r, c, value, clock)
            elif kind == "b":
                sheet.write_boolean(r, c, value)
            elif kind == "s":
                sheet.write_string(r, c, value)
    book.close()
    return buffer.getvalue()


def _openpyxl(header: list[str], columns: list[list[Cell]], name: str) -> bytes:
    from openpyxl import Workbook  # type: ignore[import-untyped]
    from openpyxl.cell import WriteOnlyCell  # type: ignore[import-untyped]

    book = Workbook(write_only=True)
    sheet = book.create_sheet(name)
    sheet.append(header)
    formats = {"t": "yyyy-mm-dd hh:mm:ss", "h": "hh:mm"}
    for cells in zip(*columns, strict=True):
        row = []
        for kind, value in cells:
            cell = WriteOnlyCell(sheet, value=value)
            if kind in formats:
                cell.number_format = formats[kind]
            elif kind == "s":
                cell.data_type = "s"  # text that looks like a number stays text
            row.append(cell)
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


_ACCESS_TYPES = {"ADMIT_TS": "datetime", "ARRIVAL": "time", "LOS_DAYS": "integer",
                 "PRIOR_ADM": "integer", "CHARGE": "currency", "CREAT": "numeric",
                 "READMIT": "bool"}
"""The Access type of each source column; others are Text."""


def to_access_export(frame: pl.DataFrame) -> bytes:
    """The UTF-8 text ``mdb-export`` prints for the table (see the module's note)."""
    lines = [",".join(_quoted(name) for name in frame.columns)]
    printers = [_access_printer(_ACCESS_TYPES.get(name, "text")) for name in frame.columns]
    for row in frame.iter_rows():
        lines.append(",".join(p(v) for p, v in zip(printers, row, strict=True)))
    return ("\n".join(lines) + "\n").encode("utf-8")


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _access_printer(kind: str) -> Callable[[str], str]:
    def printed(text: str) -> str:
        if text in NULL_TOKENS:
            return ""  # a null in Access
        value: object = None
        if kind == "datetime":
            value = _datetime(text)
            shown = value.strftime("%Y-%m-%d %H:%M:%S") if value else ""
        elif kind == "time":
            value = _time(text)
            shown = f"{_ACCESS_DAY_ZERO} {value:%H:%M:%S}" if value else ""
        elif kind in ("integer", "currency", "numeric"):
            value = _decimal(text)
            places = {"integer": 0, "currency": 4, "numeric": 3}[kind]
            fits = value is not None and -value.as_tuple().exponent <= places  # type: ignore[operator]
            shown = f"{value:.{places}f}" if value is not None and fits else ""
            value = value if fits else None
        elif kind == "bool":
            value = {"Y": "1", "N": "0"}.get(text)
            shown = value or ""
        else:
            return _quoted(text)
        # a value its Access type cannot hold is kept as the text it is
        return shown if value is not None else _quoted(text)

    return printed


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None
