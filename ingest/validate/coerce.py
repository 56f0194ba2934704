"""Parsers: source cells (text, or typed cells from Excel/Access) to typed values.

A cell that cannot be parsed becomes null in the clean frame and earns its row a
``<column>:<reason>`` quarantine reason; nothing is silently coerced away.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from ..schema import Column, Dataset

EXCEL_EPOCH = date(1899, 12, 30)
_NUMERIC = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32,
            pl.UInt64, pl.Float32, pl.Float64)


def _is_numeric(dtype: pl.DataType) -> bool:
    return any(dtype == t for t in _NUMERIC)


def coerce(frame: pl.DataFrame, dataset: Dataset,
           excel_serials: bool = False) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Typed clean frame (renamed), and one boolean column per parse failure kind.

    ``frame`` has the schema's source columns. The second frame has a column
    ``<clean>:<reason>`` for each column that can fail to parse.
    """
    clean: list[pl.Expr] = []
    failures: list[pl.Expr] = []
    for col in dataset.columns:
        dtype = frame.schema[col.source]
        raw = pl.col(col.source)
        present = _present(raw, dtype, dataset.null_tokens)
        value = _parse(col, raw, dtype, present, excel_serials)
        clean.append(value.alias(col.name))
        failures.append((present.fill_null(False) & value.is_null())
                        .alias(f"{col.name}:{_reason(col)}"))
    both = frame.select(clean + failures)
    names = [c.name for c in dataset.columns]
    return both.select(names), both.drop(names)


def _present(raw: pl.Expr, dtype: pl.DataType, null_tokens: tuple[str, ...]) -> pl.Expr:
    """True where the cell holds a value (not null, not a null token)."""
    if dtype == pl.Utf8:
        return raw.is_not_null() & ~raw.str.strip_chars().is_in(list(null_tokens))
    return raw.is_not_null()


def _reason(col: Column) -> str:
    return {"date": "not_a_date", "float": "not_a_number", "bool": "not_a_boolean"}.get(
        col.kind, "not_text")


def _parse(col: Column, raw: pl.Expr, dtype: pl.DataType, present: pl.Expr,
           excel_serials: bool) -> pl.Expr:
    when_present = pl.when(present)
    if col.kind in ("string", "category"):
        if dtype == pl.Utf8:
            return when_present.then(raw)
        if _is_numeric(dtype) and col.width:
            whole = raw.cast(pl.Float64)
            ok = (whole == whole.floor()) & (whole >= 0)
            return when_present.then(
                pl.when(ok).then(whole.cast(pl.Int64).cast(pl.Utf8).str.zfill(col.width)))
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
            if not excel_serials:
                return pl.lit(None, pl.Date)
            # Excel's serials count 1900 as a leap year: serial 60 is the day that
            # never was (1900-02-29) and serials below it start a day later.
            days = raw.cast(pl.Float64)
            whole = days.cast(pl.Int64)
            return when_present.then(
                pl.when((days != days.floor()) | (whole == 60) | (whole < 1)).then(None)
                .when(whole < 60).then(pl.lit(EXCEL_EPOCH) + pl.duration(days=whole + 1))
                .otherwise(pl.lit(EXCEL_EPOCH) + pl.duration(days=whole)))
        text = raw.cast(pl.Utf8).str.strip_chars()
        parsed = [text.str.strptime(pl.Date, fmt, strict=False, exact=True)
                  for fmt in col.date_formats]
        return when_present.then(pl.coalesce(parsed))
    if col.kind == "float":
        number = raw.cast(pl.Float64) if _is_numeric(dtype) else (
            raw.cast(pl.Utf8).str.strip_chars().cast(pl.Float64, strict=False))
        # NaN and infinities are not measurements; they also sort above every number
        return when_present.then(pl.when(number.is_finite()).then(number))
    if col.kind == "bool":
        if dtype == pl.Boolean:
            return raw
        text = raw.cast(pl.Utf8).str.strip_chars()
        return (pl.when(text.is_in(list(col.true_values))).then(True)
                .when(text.is_in(list(col.false_values))).then(False)
                .otherwise(None))
    raise ValueError(f"unknown column kind {col.kind}")
