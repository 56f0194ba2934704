"""Identifiers of a declared width (``Column.width``) whose leading zeros were lost.

Spreadsheets, databases, R (``write.csv``) and pandas (``to_csv``) write a code
such as ``01053`` as the number ``1053``, and pandas writes a whole column as
floats when one value is missing (``118952.0`` for ``0000118952``). Where the
schema declares the width, such values are restored: digits only, or digits
with a zero fraction (whole, and at most 15 digits so the float was exact), are
zero-padded to the width. A value holding any other character is left as it is
for the column's rules to judge (a digit is 0-9: other scripts' digits are other
characters). Whole columns at a time, as polars expressions.
"""

from __future__ import annotations

import polars as pl

_EXACT_DIGITS = 15
"""A float holds every whole number of up to 15 digits exactly."""


def _float_spelling(width: int) -> str:
    return rf"^[0-9]{{1,{min(width, _EXACT_DIGITS)}}}\.0+$"


def text_needs_repair(raw: pl.Expr, width: int) -> pl.Expr:
    """True where a text value is short digits or a whole float spelling (one scan)."""
    forms = [rf"[0-9]{{1,{min(width, _EXACT_DIGITS)}}}\.0+"]
    if width > 1:
        forms.append(rf"[0-9]{{1,{width - 1}}}")
    return raw.str.contains("^(?:" + "|".join(forms) + ")$")


def _digits(raw: pl.Expr, width: int) -> pl.Expr:
    restored = raw.str.contains(_float_spelling(width))
    return pl.when(restored).then(raw.str.replace(r"\.0+$", "")).otherwise(raw)


def pad_text(raw: pl.Expr, width: int) -> pl.Expr:
    digits = _digits(raw, width)
    return pl.when(digits.str.contains(r"^[0-9]+$")).then(digits.str.zfill(width)) \
        .otherwise(raw)


def text_repairs(raw: pl.Expr, present: pl.Expr, width: int) -> tuple[pl.Expr, pl.Expr]:
    """Counts of values zero-padded and of float spellings restored."""
    digits = _digits(raw, width)
    padded = present & digits.str.contains(r"^[0-9]+$") & (digits.str.len_bytes() < width)
    restored = present & raw.str.contains(_float_spelling(width))
    return padded.sum(), restored.sum()


def _whole(raw: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    number = raw.cast(pl.Float64)
    ok = (number == number.floor()) & (number >= 0) & (number < 10.0 ** _EXACT_DIGITS)
    return pl.when(ok).then(number.cast(pl.Int64)).cast(pl.Utf8), ok


def pad_number(raw: pl.Expr, width: int) -> pl.Expr:
    """A number cell as its digits, zero-padded; null if it is not a whole number
    that fits a float exactly (such a value is not an identifier)."""
    digits, _ = _whole(raw)
    return digits.str.zfill(width)


def number_repairs(raw: pl.Expr, present: pl.Expr, width: int) -> pl.Expr:
    """Count of number cells zero-padded."""
    digits, ok = _whole(raw)
    return (present & ok & (digits.str.len_bytes() < width)).sum()
