"""Typed date cells read in the day count of the application that wrote the workbook.

calamine reads every date serial Excel's way (see ``_writer``), so a workbook
that counts days otherwise is read again where it matters, from its exact
serials: a load of the date columns as numbers gives a plain number as itself
and a date cell as a cell error that carries its serial. That load is made only
when a value may be wrong:

* LibreOffice's count (``1900-continuous``): a date before 1900-03-01 (calamine
  puts those a day late, and reads serials 59 and 60 both as 1900-02-28);
* Excel's count (``1900``): a 1900-02-28, which may be serial 60, Excel's
  1900-02-29 that never was: it is kept as text, and quarantined as not a date;
* the 1904 system: any date (calamine reads a plain number in the column as
  1900 days, 1,462 days early);
* a writer not known, counting from 1900: nothing is changed, and each date
  before 1900-03-01 is counted in a note: Excel's reading and LibreOffice's
  differ there by a day, and the file does not say which is meant.
"""

from __future__ import annotations

import re
from datetime import date
from typing import TYPE_CHECKING

import polars as pl

from ._cells import _located
from ._writer import SYSTEM_1900, SYSTEM_1904, SYSTEM_CONTINUOUS, Writer

if TYPE_CHECKING:
    import fastexcel

    from ._columns import _Part

EXCEL_EPOCH = date(1899, 12, 30)
EPOCH_1904 = date(1904, 1, 1)
COUNTS_AGREE = date(1900, 3, 1)
"""From this day on Excel's count and LibreOffice's are the same."""
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
        reread: dict[int, tuple[str, _Part]] = {}
        for index, (source, part) in columns.items():
            value = part.value
            if value is None or value.dtype != pl.Date or value.null_count() == len(value):
                continue
            if system is None:
                # an .ods stores dates as ISO text, read exactly whatever the writer
                if self.fmt != "ods":
                    _add(self._doubtful, source, int((value < COUNTS_AGREE).sum()))
            elif system == SYSTEM_1904 or bool(
                    ((value < COUNTS_AGREE) if system == SYSTEM_CONTINUOUS
                     else (value == date(1900, 2, 28))).any()):
                reread[index] = (source, part)
        if not reread:
            return
        serials = _exact_serials(book, sheet, header, sorted(reread), end)
        for index, (source, part) in reread.items():
            serial, from_1904 = serials[index]
            changed, phantoms = _recount(part, serial, from_1904, system or SYSTEM_1900)
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


def _recount(part: _Part, serial: pl.Series, from_1904: pl.Series,
             system: str) -> tuple[int, int]:
    """Each date of ``part`` from its serial in ``system`` (a date cell counted from
    1904 in that system whatever the workbook says); (dates changed, phantom days)."""
    assert part.value is not None
    frame = pl.DataFrame({"value": part.value, "serial": serial, "from_1904": from_1904})
    whole = pl.col("serial").floor()
    days = whole.cast(pl.Int64, strict=False)
    low, high = _SERIAL_RANGE
    usable = (pl.col("value").is_not_null() & whole.is_not_null() & whole.is_finite()
              & (whole >= low) & (whole < high)).fill_null(False)
    epoch_1904 = pl.col("from_1904") | (system == SYSTEM_1904)
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
        pl.when(usable).then(counted).otherwise(pl.col("value")).alias("date"),
        (usable & phantom).alias("phantom"),
        (usable & ~phantom & (counted != pl.col("value"))).fill_null(False).alias("changed"))
    phantoms = checked["phantom"]
    part.value = checked.select(pl.when(~pl.col("phantom")).then(pl.col("date"))).to_series() \
        .alias(part.value.name)
    rows = phantoms.arg_true()
    if rows.len():
        part.text = part.text.scatter(rows, [PHANTOM_TEXT] * rows.len())
    return int(checked["changed"].sum()), rows.len()
