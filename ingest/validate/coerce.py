"""Parsers: source cells (text, or typed cells from Excel/Access) to typed values.

A cell that cannot be parsed becomes null in the clean frame and earns its row a
``<column>:<reason>`` quarantine reason; nothing is silently coerced away.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date
from typing import NamedTuple

import polars as pl

from ..kinds import is_numeric_type as _is_numeric
from ..kinds import kind_of
from ..repairs import FLOAT_SPELLING_RESTORED, TWO_DIGIT_YEAR_EXPANDED, ZERO_PADDED, key
from ..schema import Column, Dataset
from . import identifiers, years

EXCEL_EPOCH = date(1899, 12, 30)
EPOCH_1904 = date(1904, 1, 1)
DATE_SYSTEMS = ("1900", "1900-continuous", "1904")
_YEAR_1000 = date(1000, 1, 1)
"""Text dates parsed before it may have been written with two-digit years."""


class Coerced(NamedTuple):
    clean: pl.DataFrame
    """Typed values, clean column names, in the schema's order."""
    failures: pl.DataFrame
    """One boolean column ``<clean>:<reason>`` per way a column can fail to parse."""
    repairs: dict[str, int]
    """``<clean>:<kind>`` -> values repaired as the schema declares (counts only)."""


def coerce(frame: pl.DataFrame, dataset: Dataset, date_system: str | None = None,
           delivery_date: date | None = None) -> Coerced:
    """Parse ``frame`` (the schema's source columns) into typed values.

    ``date_system`` says how numeric date cells count days (see
    ``SourceTable.date_system``); None: a number in a date column is not a date.
    ``delivery_date`` closes a date range declared to end at the delivery (it
    settles two-digit years); today when not given.
    """
    # Whether a cell holds a value is worked out once per column (it feeds both
    # the parser and the failure flag), and text dates are parsed with their
    # first format everywhere, the other formats only where that one failed.
    delivery_date = delivery_date or date.today()
    names = [c.name for c in dataset.columns]
    present_names = _unused_names([*frame.columns, *names], len(names))
    work = frame.with_columns(
        _present(pl.col(col.source), frame.schema[col.source], dataset.null_tokens).alias(p)
        for col, p in zip(dataset.columns, present_names, strict=True))
    # a text column without null tokens, and without short identifiers if it has a
    # width, is its own clean column: no copy is made
    padded = [col for col in dataset.columns if col.width and col.kind in ("string", "category")
              and frame.schema[col.source] == pl.Utf8]
    counts = work.select([pl.col(p).sum() for p in present_names]
                         + [identifiers.text_needs_repair(pl.col(c.source), c.width or 0).sum()
                            for c in padded]).row(0)
    needs_repair = dict(zip([c.name for c in padded], counts[len(names):], strict=True))
    values: list[pl.Expr] = []
    repair_counts: dict[str, pl.Expr] = {}
    later: list[tuple[Column, str, pl.Expr]] = []
    """Columns parsed with their first format, the expression for the others."""
    text_dates: list[Column] = []
    for col, p, present in zip(dataset.columns, present_names, counts[:len(names)],
                               strict=True):
        dtype = frame.schema[col.source]
        if col.kind in ("string", "category") and dtype == pl.Utf8 and \
                present == frame.height - frame[col.source].null_count() and \
                not needs_repair.get(col.name):
            values.append(pl.col(col.source).alias(col.name))
            continue
        if col.width and col.kind in ("string", "category"):
            repair_counts.update(_width_repairs(col, dtype, pl.col(p),
                                                needs_repair.get(col.name, 0)))
        formats = None
        first_only = False
        raw = pl.col(col.source)
        if col.kind == "date" and _text_dates(dtype):
            text_dates.append(col)
            if len(col.date_formats) > 1:
                formats = col.date_formats[:1]
                text = raw.cast(pl.Utf8).str.strip_chars()
                later.append((col, p, pl.coalesce([_strptime(text, fmt)
                                                   for fmt in col.date_formats[1:]])))
        elif _retried(col, dtype, date_system):
            first_only = True
            spec = kind_of(col)
            assert spec.parse_text is not None
            later.append((col, p, spec.parse_text(*_text_and_column(
                raw, col, date_system, slice(1, None)))))
        values.append(_parse(col, raw, dtype, pl.col(p), date_system, formats,
                             first_only).alias(col.name))
    clean = work.select(values)
    repairs = {k: int(v) for k, v in work.select(**repair_counts).row(0, named=True).items()
               if v} if repair_counts else {}
    for col, p, others in later:
        missed = work[p] & clean[col.name].is_null()
        if missed.any():
            rows = missed.arg_true()
            retried = work[col.source].gather(rows).to_frame().select(
                others.cast(clean.schema[col.name])).to_series()
            clean = clean.with_columns(clean[col.name].scatter(rows, retried))
    refused: dict[str, pl.Series] = {}
    refusing = [(col, p) for col, p in zip(dataset.columns, present_names, strict=True)
                if kind_of(col).refusals is not None
                and kind_of(col).parse_typed(pl.col(col.source), frame.schema[col.source],
                                             col) is None]
    if refusing:
        refused.update(_refusals(work, refusing))
    for col in text_dates:
        clean, refusals, expanded = _two_digit_years(col, work[col.source], clean,
                                                     delivery_date)
        refused.update(refusals)
        if expanded:
            repairs[key(col.name, TWO_DIGIT_YEAR_EXPANDED)] = expanded
    failures = pl.concat([work.select(present_names), clean], how="horizontal").select(
        (pl.col(p).fill_null(False) & pl.col(col.name).is_null())
        .alias(f"{col.name}:{_reason(col)}")
        for col, p in zip(dataset.columns, present_names, strict=True))
    if refused:
        # a refused two-digit year (or a decimal's extra places) is reported as such,
        # not again as "not a date" ("not a decimal")
        for col in dataset.columns:
            mine = [s for name, s in refused.items() if name.rpartition(":")[0] == col.name]
            if mine:
                reason = f"{col.name}:{_reason(col)}"
                failures = failures.with_columns(
                    failures[reason] & ~pl.select(pl.any_horizontal(mine)).to_series())
        failures = failures.with_columns(**refused)
    return Coerced(clean.select(names), failures, dict(sorted(repairs.items())))


def _width_repairs(col: Column, dtype: pl.DataType, present: pl.Expr,
                   text_needing_repair: int) -> dict[str, pl.Expr]:
    """Count expressions for the repairs a column of a declared width may need."""
    width = col.width or 0
    raw = pl.col(col.source)
    if dtype == pl.Utf8:
        if not text_needing_repair:
            return {}
        padded, restored = identifiers.text_repairs(raw, present, width)
        return {key(col.name, ZERO_PADDED): padded,
                key(col.name, FLOAT_SPELLING_RESTORED): restored}
    if _is_numeric(dtype):
        return {key(col.name, ZERO_PADDED): identifiers.number_repairs(raw, present, width)}
    return {}


def _strptime(text: pl.Expr, fmt: str) -> pl.Expr:
    """``text`` parsed with ``fmt``; a ``%y`` format only takes two-digit years,
    left in the years 0 to 99 for :mod:`.years` to settle."""
    parsed = text.str.strptime(pl.Date, years.parsing_format(fmt), strict=False, exact=True)
    return pl.when(parsed.dt.year() < 100).then(parsed) if "%y" in fmt else parsed


def _two_digit_years(col: Column, raw: pl.Series, clean: pl.DataFrame, delivery_date: date
                     ) -> tuple[pl.DataFrame, dict[str, pl.Series], int]:
    """Dates read before the year 1000 settled by :func:`.years.settle` (few rows:
    only those are looked at again)."""
    # a date comparison, not the year's extraction: ten times cheaper, and every
    # text date column of every run pays for it
    suspect = clean[col.name] < _YEAR_1000
    if not suspect.any():
        return clean, {}, 0
    rows = suspect.arg_true()
    settled = years.settle(col, raw.gather(rows), clean[col.name].gather(rows), delivery_date)
    clean = clean.with_columns(clean[col.name].scatter(rows, settled.dates))
    refusals = {}
    for kind in years.REFUSALS:
        hit = settled.refused == kind
        if hit.any():
            mask = pl.repeat(False, clean.height, dtype=pl.Boolean, eager=True)
            refusals[f"{col.name}:{kind}"] = mask.scatter(rows.filter(hit), True)
    return clean, refusals, settled.expanded


def _refusals(work: pl.DataFrame, columns: list[tuple[Column, str]]) -> dict[str, pl.Series]:
    """``<column>:<reason>`` -> rows whose text the column's kind refuses for that
    reason (only the reasons some row has)."""
    exprs = {}
    for col, p in columns:
        text = pl.col(col.source).cast(pl.Utf8).str.strip_chars()
        refusals = kind_of(col).refusals
        assert refusals is not None
        for reason, hit in refusals(text, col).items():
            exprs[f"{col.name}:{reason}"] = (pl.col(p) & hit).fill_null(False)
    flags = work.select(**exprs)
    return {name: flags[name] for name in flags.columns if flags[name].any()}


def _unused_names(taken: list[str], count: int) -> list[str]:
    prefix = "_present"
    while any(c.startswith(prefix) for c in taken):
        prefix = "_" + prefix
    return [f"{prefix}{i}" for i in range(count)]


def _text_dates(dtype: pl.DataType) -> bool:
    """Dates in a column of this type are parsed from text by their formats."""
    return not (dtype == pl.Date or isinstance(dtype, pl.Datetime) or _is_numeric(dtype))


def _present(raw: pl.Expr, dtype: pl.DataType, null_tokens: tuple[str, ...]) -> pl.Expr:
    """True where the cell holds a value (not null, not a null token)."""
    if dtype == pl.Utf8:
        # a pattern, not strip-then-compare: no stripped copy of the column is made
        tokens = "|".join(re.escape(t) for t in null_tokens)
        return raw.is_not_null() & ~raw.str.contains(rf"^\s*(?:{tokens})\s*$")
    return raw.is_not_null()


def _reason(col: Column) -> str:
    return kind_of(col).reason


def _serial_dates(raw: pl.Expr, date_system: str | None) -> pl.Expr:
    """Day serials to dates in the given system; null where no date is meant."""
    if date_system is None:
        return pl.lit(None, pl.Date)
    if date_system not in DATE_SYSTEMS:
        raise ValueError(f"unknown date system {date_system}")
    days = raw.cast(pl.Float64)
    whole = days.cast(pl.Int64, strict=False)
    not_whole = days != days.floor()
    if date_system == "1904":
        return pl.when(not_whole | (whole < 0)).then(None).otherwise(
            pl.lit(EPOCH_1904) + pl.duration(days=whole))
    if date_system == "1900-continuous":
        # LibreOffice counts days both ways from its epoch (0 and below are dates)
        return pl.when(not_whole).then(None).otherwise(
            pl.lit(EXCEL_EPOCH) + pl.duration(days=whole))
    # Excel's serials count 1900 as a leap year: serial 60 is the day that
    # never was (1900-02-29) and serials below it start a day later.
    return (pl.when(not_whole | (whole == 60) | (whole < 1)).then(None)
            .when(whole < 60).then(pl.lit(EXCEL_EPOCH) + pl.duration(days=whole + 1))
            .otherwise(pl.lit(EXCEL_EPOCH) + pl.duration(days=whole)))


def _retried(col: Column, dtype: pl.DataType, date_system: str | None) -> bool:
    """A column of text parsed with several formats: the first is tried on every
    value, the others only on the values it did not parse."""
    spec = kind_of(col)
    if spec.formats is None or spec.parse_typed(pl.col(col.source), dtype, col) is not None:
        return False
    return len(getattr(_text_and_column(pl.col(col.source), col, date_system)[1],
                       spec.formats)) > 1


def _text_and_column(raw: pl.Expr, col: Column, date_system: str | None,
                     formats: slice | None = None) -> tuple[pl.Expr, Column]:
    """The text a kind's parser reads, and the column as it reads it: in a workbook
    with calamine's spellings too; with ``formats``, only those of its formats."""
    spec = kind_of(col)
    text = raw.cast(pl.Utf8).str.strip_chars()
    if date_system is not None and spec.workbook_text is not None:
        text, col = spec.workbook_text(text, col)  # a workbook: calamine's spelling
    if formats is not None and spec.formats is not None:
        col = replace(col, **{spec.formats: getattr(col, spec.formats)[formats]})
    return text, col


def _parse(col: Column, raw: pl.Expr, dtype: pl.DataType, present: pl.Expr,
           date_system: str | None, date_formats: tuple[str, ...] | None = None,
           first_only: bool = False) -> pl.Expr:
    when_present = pl.when(present)
    if col.kind in ("string", "category"):
        if dtype == pl.Utf8 and col.width:
            return when_present.then(identifiers.pad_text(raw, col.width))
        if dtype == pl.Utf8:
            return when_present.then(raw)
        if _is_numeric(dtype) and col.width:
            return when_present.then(identifiers.pad_number(raw, col.width))
        if _is_numeric(dtype):
            whole = raw.cast(pl.Float64)
            return when_present.then(
                pl.when(whole == whole.floor()).then(whole.cast(pl.Int64).cast(pl.Utf8))
                .otherwise(raw.cast(pl.Utf8)))
        return when_present.then(raw.cast(pl.Utf8))
    if col.kind == "date":
        if dtype == pl.Date:
            return raw
        if isinstance(dtype, pl.Datetime):
            return raw.dt.date()
        if _is_numeric(dtype):
            return when_present.then(_serial_dates(raw, date_system))
        text = raw.cast(pl.Utf8).str.strip_chars()
        parsed = [_strptime(text, fmt) for fmt in (date_formats or col.date_formats)]
        return when_present.then(pl.coalesce(parsed))
    # every other kind is one row of the kinds table: a typed cell by its type,
    # anything else by its text
    spec = kind_of(col)
    assert spec.parse_text is not None, col.kind
    typed = spec.parse_typed(raw, dtype, col)
    if typed is None:
        typed = spec.parse_text(*_text_and_column(raw, col, date_system,
                                                  slice(0, 1) if first_only else None))
    return when_present.then(typed).cast(spec.dtype(col))
