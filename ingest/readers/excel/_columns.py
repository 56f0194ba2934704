"""A schema column gathered over sheets and finished: typed, or faithful text."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import polars as pl

from ...kinds import KINDS
from ...schema import Column
from ..csv import _TRAILER
from ._cells import _BOOL_TEXT, _float_text

if TYPE_CHECKING:
    from fastexcel import DType

_TYPED: dict[str, DType] = {name: spec.excel_load for name, spec in KINDS.items()
                            if spec.excel_load != "string"}
"""Schema kinds loaded typed (the kinds table); every other column loads as text."""


def _numbers(spec: Column) -> bool:
    """A column loaded as numbers (floats, integers, decimals)."""
    return _TYPED.get(spec.kind) == "float"


@dataclass
class _Part:
    """One schema column's cells from one sheet's data rows."""

    text: pl.Series
    """Utf8, calamine's text of the cells; for a typed column, of the cells not of its type."""
    value: pl.Series | None = None
    """The typed load (Date, Float64) for a typed column."""
    marked: pl.Series | None = None
    """Boolean: in a number column the boolean cells, in a yes/no column the text cells
    that spell ``true`` or ``false``."""
    errors: list[tuple[int, str]] = field(default_factory=list)
    """(row, ``#N/A`` and the like)."""
    identifier: bool = False


@dataclass
class _Column:
    """A schema column gathered over the table's sheets."""

    spec: Column
    parts: list[_Part] = field(default_factory=list)


def _identifier(spec: Column) -> bool:
    """A text column whose numbers are zero-padded to a width."""
    return bool(spec.width) and spec.kind not in (*_TYPED, "bool")


def _extent(frame: pl.DataFrame, texts: set[int], misfits: dict[int, dict[int, str]],
            formulas: dict[int, dict[int, str]], odd: dict[int, set[int]],
            last: bool) -> tuple[int, int | None]:
    """Data rows to keep (trailing empty rows dropped), and a record-count trailer.

    A row is filled when a cell holds a value, non-blank text or a formula error;
    the last filled row is a trailer when its one cell is text such as
    ``TOTAL RECORDS: 3``.
    """
    if frame.width == 0 or frame.height == 0:
        return 0, None
    present = frame.select(pl.any_horizontal(pl.all().is_not_null())).to_series().arg_true()
    extra = {r for cells in (*misfits.values(), *formulas.values(), *odd.values())
             for r in cells}

    def rows_backwards() -> Iterator[int]:
        """Rows with a cell, the last first."""
        seen = 64
        listed: set[int] = set()
        while True:
            tail = set(present.tail(seen).to_list())
            batch = sorted((tail | extra) - listed, reverse=True)
            if len(tail) < seen:  # every row with a value is in the batch
                yield from batch
                return
            floor = min(tail)
            for row in batch:
                if row < floor:
                    break
                listed.add(row)
                yield row
            seen *= 8

    candidates = rows_backwards()

    def cells(row: int) -> list[str | None]:
        """The row's non-blank cells: their text, None for a typed value."""
        found: list[str | None] = []
        for j, value in enumerate(frame.row(row)):
            if value is None:
                value = misfits.get(j, {}).get(row)
                if value is not None and value.strip():
                    found.append(value)
                elif row in odd.get(j, ()):
                    found.append(None)
            elif j not in texts:
                found.append(None)
            elif value.strip():
                found.append(value)
        return found

    filled = (r for r in candidates
              if cells(r) or any(r in f for f in formulas.values()))
    final = next(filled, None)
    if final is None:
        return 0, None
    if last:
        found = cells(final)
        match = _TRAILER.match(found[0]) if len(found) == 1 and found[0] is not None else None
        if match:
            before = next(filled, None)
            return (before + 1 if before is not None else 0), int(match.group(1))
    return final + 1, None


def _finish(column: _Column) -> pl.Series:
    """The column, typed when every cell has the schema's type, else faithful text."""
    spec = column.spec
    parts = column.parts
    if _identifier(spec):
        parts = [_as_identifier(p) for p in parts]
    text = pl.concat([p.text for p in parts]) if parts else pl.Series([], dtype=pl.Utf8)
    listed = [e for p in parts for e in p.errors]
    errors = pl.repeat(None, text.len(), dtype=pl.Utf8, eager=True)
    if listed:
        rows, values = zip(*listed, strict=True)
        errors = errors.scatter(list(rows), list(values))
    if spec.kind not in (*_TYPED, "bool") and not spec.width:
        return (text.zip_with(text.is_not_null(), errors) if listed else text).alias(spec.source)
    columns = {"t": text}
    if any(p.marked is not None for p in parts):
        columns["m"] = pl.concat([p.marked if p.marked is not None
                                  else pl.repeat(False, p.text.len(), dtype=pl.Boolean,
                                                 eager=True)
                                  for p in parts])
    if spec.kind in _TYPED or _identifier(spec):
        empty = pl.Date if _TYPED.get(spec.kind) == "date" else \
            pl.Int64 if _identifier(spec) else pl.Float64
        columns["v"] = pl.concat([p.value for p in parts if p.value is not None]) if parts \
            else pl.Series([], dtype=empty)
    t = pl.col("t")
    marked = pl.col("m") if "m" in columns else pl.lit(False)
    if spec.kind == "bool":
        value = t == "true"
        genuine = t.is_in(_BOOL_TEXT) & ~marked
    else:  # a date, a number, or an identifier's whole number
        value = pl.col("v")
        genuine = value.is_not_null() & ~marked
    frame = pl.DataFrame(columns).with_columns(
        value.alias("value"), genuine.fill_null(False).alias("genuine"))
    value, genuine = pl.col("value"), pl.col("genuine")
    # the cells that are not of the type are few: only they are looked at for text
    stray = frame.filter(~genuine & t.is_not_null()).get_column("t")
    if not listed and (stray.str.strip_chars() == "").all():
        return frame.select(pl.when(genuine).then(value).alias(spec.source)).to_series()
    cell_text = KINDS[spec.kind].cell_text
    if cell_text is not None and not _identifier(spec):
        render = cell_text(value, spec)
    else:
        render = pl.when(value >= 0).then(value.cast(pl.Utf8).str.zfill(spec.width or 0)) \
            .otherwise(value.cast(pl.Utf8))
    return frame.with_columns(e=errors).select(
        pl.coalesce(pl.when(genuine).then(render).otherwise(t), pl.col("e"))
        .alias(spec.source)).to_series()


def _as_identifier(part: _Part) -> _Part:
    """An identifier column's part as text beside whole numbers (Int64, null elsewhere).

    From a text load, a cell is a whole number when its text is the integer's own
    spelling (calamine writes a whole number so, and ``067409`` is not); from a
    number load, when the number is whole. Either way it must be below 2**53, where
    a float still holds every integer; other number cells keep calamine's text.
    """
    if part.value is None:
        number = part.text.cast(pl.Int64, strict=False)
        whole = (number.cast(pl.Utf8) == part.text) & (number.abs() < 2**53)
        value = pl.select(pl.when(whole.fill_null(False)).then(number)).to_series()
        return _Part(part.text, value, None, part.errors, True)
    number = part.value
    # -0 is written "-0", not the integer's spelling: as text it is no whole number either
    negative_zero = (number == 0) & (1.0 / number < 0)
    whole = ((number == number.floor()) & (number.abs() < 2**53) & ~negative_zero) \
        .fill_null(False)
    text = part.text
    others = (number.is_not_null() & ~whole).arg_true()
    if others.len():
        text = text.scatter(others, [_float_text(v) for v in number.gather(others).to_list()])
    value = pl.select(pl.when(whole).then(number.cast(pl.Int64, strict=False))).to_series()
    return _Part(text, value, None, part.errors, True)
