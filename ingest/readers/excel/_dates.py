"""Typed date cells read in the day count of the application that wrote the workbook.

calamine reads every date serial Excel's way (see ``_writer``): serial ``s``
below 60 as 1899-12-31 + ``s``, from 60 on as 1899-12-30 + ``s``. A plain
number in a date column is converted the same way, and in a 1904 workbook so
is a plain number, while a date cell there is read as 1904-01-01 + ``s`` by the
same rule shifted 1,462 days. So calamine's date gives back the serial, except
1900-02-28, which is serial 59 or 60 (1,402 or 1,403 days before 1904-01-01).
The workbook's own count is applied to that serial:

* LibreOffice's count (``1900-continuous``): dates before 1900-02-28 move a
  day earlier; a 1900-02-28 is looked up.
* Excel's count (``1900``): a 1900-02-28 is looked up, since serial 60 is
  1900-02-29, a day that never was: it is kept as text, and quarantined as not
  a date.
* the 1904 system: plain numbers are told apart from date cells (a text load of
  the column), and counted from 1904-01-01; date cells before 1900-03-01 move a
  day earlier, and a 1900-02-28 is looked up.
* ``.ods``: dates are ISO text, read exactly; plain numbers are told apart and
  counted from the document's null date, where that changes them.
* a writer not known, counting from 1900: nothing is changed, and each date
  before 1900-03-01 is counted in a note: Excel's reading and LibreOffice's
  differ there by a day, and the file does not say which is meant.

Looking up means one more load of the column as numbers, in which a date cell
is a cell error that carries its serial; telling numbers apart, a load as text.
Each is made only when a value needs it (the first only for a 1900-02-28, the
second only in a 1904 workbook, or in an ``.ods`` with dates before 1900-03-01).
"""

from __future__ import annotations

import re
from datetime import date
from typing import TYPE_CHECKING

import polars as pl

from ._cells import _located
from ._writer import SYSTEM_1900, SYSTEM_1904, Writer

if TYPE_CHECKING:
    import fastexcel

    from ._columns import _Part

EXCEL_EPOCH = date(1899, 12, 30)
EPOCH_1904 = date(1904, 1, 1)
COUNTS_AGREE = date(1900, 3, 1)
"""From this day on Excel's count and LibreOffice's are the same."""
AMBIGUOUS = date(1900, 2, 28)
"""calamine's reading of both serial 59 and serial 60."""
PHANTOM_TEXT = "1900-02-29"
"""How Excel shows serial 60; no date format parses it."""
_SERIAL = re.compile(
    r"ExcelDateTime \{ value: ([-+0-9.eE]+|NaN|-?inf), datetime_type: DateTime, "
    r"is_1904: (true|false) \}")
"""A date cell in fastexcel's cell error: its serial and whether it counts from 1904."""
_SERIAL_RANGE = (-693_593, 2_958_466)
"""0001-01-01 to 9999-12-31 from 1899-12-30: beyond them a serial names no date."""


class DateReading:
    """A workbook's day count applied to its typed date columns, and what it changed."""

    def __init__(self, writer: Writer, fmt: str) -> None:
        self.writer = writer
        self.fmt = fmt
        self._changed: dict[str, int] = {}
        self._phantoms: dict[str, int] = {}
        self._doubtful: dict[str, int] = {}

    @property
    def date_system(self) -> str | None:
        return self.writer.date_system

    def settle(self, book: fastexcel.ExcelReader, sheet: int, header: int,
               columns: dict[int, tuple[str, _Part]], end: int) -> None:
        """Put the date columns' values (sheet column -> (source name, its part)) in
        the workbook's own day count."""
        system = self.date_system
        ods = self.fmt == "ods"
        work: dict[int, tuple[str, _Part]] = {}
        looked_up: list[int] = []
        told_apart: list[int] = []
        for index, (source, part) in columns.items():
            value = part.value
            if value is None or value.dtype != pl.Date or value.null_count() == len(value):
                continue
            early = bool((value < COUNTS_AGREE).any())
            if system is None:
                # an .ods stores dates as ISO text, read exactly whatever the writer
                if not ods:
                    _add(self._doubtful, source, int((value < COUNTS_AGREE).sum()))
                continue
            if ods:
                if early or system == SYSTEM_1904:
                    told_apart.append(index)
                    work[index] = (source, part)
                continue
            if system == SYSTEM_1904:
                told_apart.append(index)
            if bool((value == AMBIGUOUS).any()):
                looked_up.append(index)
            if early or system == SYSTEM_1904:
                work[index] = (source, part)
        if not work:
            return
        serials = _exact_serials(book, sheet, header, looked_up, end) if looked_up else {}
        numbers = _plain_numbers(book, sheet, header, told_apart, end) if told_apart else {}
        for index, (source, part) in work.items():
            changed, phantoms = _recount(part, system or SYSTEM_1900, ods,
                                         serials.get(index), numbers.get(index))
            _add(self._changed, source, changed)
            _add(self._phantoms, source, phantoms)

    def notes(self) -> list[str]:
        """What was read otherwise than calamine reads it, and what is in doubt (counts)."""
        if self.date_system == SYSTEM_1904:
            count = ("read in the workbook's 1904 date system (days from 1904-01-01); "
                     "calamine's reading would put them a day to four years early")
        else:
            count = (f"before 1900-03-01 read as {self.writer.family or 'the writer'}, which "
                     "wrote the workbook, counts days (from 1899-12-30, with no 1900-02-29); "
                     "Excel's count would put each a day later")
        notes = [f"{source}: {_dates(n)} {count}" for source, n in self._changed.items()]
        notes += [f"{source}: {_dates(n, 'cell')} holding Excel's serial 60, the day "
                  "1900-02-29 that never was, kept as text and quarantined as not a date"
                  for source, n in self._phantoms.items()]
        notes += [f"{source}: {_dates(n)} before 1900-03-01 in a workbook that does not say "
                  "which application wrote it; read as Excel counts days, but written by "
                  "LibreOffice each would mean the day before. Check them with the sender"
                  for source, n in self._doubtful.items()]
        return notes


def _dates(n: int, what: str = "date") -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def _add(counts: dict[str, int], source: str, n: int) -> None:
    if n:
        counts[source] = counts.get(source, 0) + n


def _exact_serials(book: fastexcel.ExcelReader, sheet: int, header: int, columns: list[int],
                   end: int) -> dict[int, tuple[pl.Series, pl.Series]]:
    """Per sheet column: each cell's serial (Float64: a plain number, or a date cell's
    serial; null for any other cell), and whether it is a date cell counted from 1904."""
    loaded = book.load_sheet(sheet, header_row=header, use_columns=columns,
                             dtypes=dict.fromkeys(columns, "float"))
    batch, cell_errors = loaded.to_arrow_with_errors()
    frame = pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    info = loaded.selected_columns
    found: dict[int, dict[int, tuple[float, bool]]] = {}
    for error, j in _located(cell_errors, info):
        row = error.offset_position[0]
        match = _SERIAL.search(error.detail) if row < end else None
        if match:
            found.setdefault(j, {})[row] = (float(match.group(1)), match.group(2) == "true")
    result: dict[int, tuple[pl.Series, pl.Series]] = {}
    for j, column in enumerate(info):
        serial = frame.to_series(j).head(end).cast(pl.Float64)
        from_1904 = pl.repeat(False, end, dtype=pl.Boolean, eager=True)
        cells = found.get(j, {})
        if cells:
            rows = list(cells)
            serial = serial.scatter(rows, [cells[r][0] for r in rows])
            from_1904 = from_1904.scatter(rows, [cells[r][1] for r in rows])
        result[column.absolute_index] = serial, from_1904
    return result


def _plain_numbers(book: fastexcel.ExcelReader, sheet: int, header: int, columns: list[int],
                   end: int) -> dict[int, pl.Series]:
    """Per sheet column: the value of each plain number cell (Float64), null for any
    other cell. As text a number is its digits, a date cell a date."""
    loaded = book.load_sheet(sheet, header_row=header, use_columns=columns,
                             dtypes=dict.fromkeys(columns, "string"))
    frame = pl.from_arrow(loaded.to_arrow_with_errors()[0])
    assert isinstance(frame, pl.DataFrame)
    return {column.absolute_index: frame.to_series(j).head(end).str.strip_chars()
            .cast(pl.Float64, strict=False)
            for j, column in enumerate(loaded.selected_columns)}


def _recount(part: _Part, system: str, ods: bool,
             exact: tuple[pl.Series, pl.Series] | None,
             numbers: pl.Series | None) -> tuple[int, int]:
    """Each date of ``part`` from its serial in ``system``; (dates changed, phantom days).

    The serial is the looked-up one where there is one, else a plain number's own
    value, else (a date cell) worked back from calamine's date; an ``.ods`` date
    cell is left as it is.
    """
    assert part.value is not None
    whole_column = part.value
    # In the 1900 counts a date cell from 1900-03-01 on is read alike by every writer
    # (and a plain number is only told apart in a 1904 workbook or an .ods): only the
    # earlier dates can change, so only they are worked on (a few rows, not all)
    rows: pl.Series | None = None
    if not ods and system != SYSTEM_1904 and numbers is None:
        rows = (whole_column < COUNTS_AGREE).fill_null(False).arg_true()
    values = whole_column if rows is None else whole_column.gather(rows)
    height = len(values)
    nothing = pl.repeat(None, height, dtype=pl.Float64, eager=True)
    frame = pl.DataFrame({
        "value": values,
        "exact": (exact[0] if rows is None else exact[0].gather(rows)) if exact else nothing,
        "exact_1904": (exact[1] if rows is None else exact[1].gather(rows)) if exact
        else pl.repeat(False, height, dtype=pl.Boolean, eager=True),
        "number": numbers if numbers is not None else nothing})
    value, number, looked_up = pl.col("value"), pl.col("number"), pl.col("exact")
    # calamine's date back to the serial it came from (Excel's rule undone)
    day = (value - pl.lit(EXCEL_EPOCH)).dt.total_days()
    excel = pl.when(day > 60).then(day).when(day < 60).then(day - 1).cast(pl.Float64)
    date_cell = pl.lit(None, pl.Float64) if ods else (
        excel - 1462 if system == SYSTEM_1904 else excel)
    serial = pl.coalesce(looked_up, number.cast(pl.Float64), date_cell)
    whole = serial.floor()
    days = whole.cast(pl.Int64, strict=False)
    low, high = _SERIAL_RANGE
    usable = (value.is_not_null() & whole.is_not_null() & whole.is_finite()
              & (whole >= low) & (whole < high)).fill_null(False)
    epoch_1904 = (pl.col("exact_1904") & looked_up.is_not_null()) | (system == SYSTEM_1904)
    continuous = pl.when(epoch_1904).then(pl.lit(EPOCH_1904) + pl.duration(days=days)) \
        .otherwise(pl.lit(EXCEL_EPOCH) + pl.duration(days=days))
    phantom: pl.Expr = pl.lit(False)
    counted: pl.Expr
    if system == SYSTEM_1900:
        # Excel's count: serials below 60 start at 1899-12-31, and 60 is no day
        phantom = ~epoch_1904 & (days == 60)
        counted = pl.when(epoch_1904 | (days > 60)).then(continuous) \
            .when(days < 60).then(pl.lit(EXCEL_EPOCH) + pl.duration(days=days + 1))
    else:
        counted = continuous
    checked = frame.select(
        pl.when(usable).then(counted).otherwise(value).alias("date"),
        (usable & phantom).alias("phantom"),
        (usable & ~phantom & (counted != value)).fill_null(False).alias("changed"))
    dates = checked.select(pl.when(~pl.col("phantom")).then(pl.col("date"))).to_series()
    phantoms = checked["phantom"].arg_true()
    if rows is None:
        part.value = dates.alias(whole_column.name)
    else:
        if rows.len():
            part.value = whole_column.clone().scatter(rows, dates)
        phantoms = rows.gather(phantoms)
    if phantoms.len():
        part.text = part.text.scatter(phantoms, [PHANTOM_TEXT] * phantoms.len())
    return int(checked["changed"].sum()), phantoms.len()
