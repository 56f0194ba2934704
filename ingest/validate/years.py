"""Two-digit years in text dates: expanded where the schema makes the century
certain, refused where it does not; never guessed.

A date format's ``%Y`` takes a two-digit year (``02/17/17``) as the year 17, and
``%y`` picks a century by a fixed pivot: both are guesses. So every format is
parsed with ``%Y`` and the few dates that come out before the year 1000 are
looked at again, by the shape of their text:

* a four-digit year written out (``02/17/0017``) under a ``%Y`` format is kept as
  written (the column's range rule judges it);
* a two-digit year (``02/17/17``, under ``%Y`` or ``%y``) is expanded only when the
  column declares a range shorter than a hundred years (``Column.earliest`` and
  ``Column.latest``): then at most one century puts the date in it. A date no
  century puts in range is refused as ``two_digit_year_out_of_range``; in a column
  whose range does not settle the century (birth dates from 1900: ``17`` may be
  1917 or 2017) every two-digit year is refused as ``two_digit_year_ambiguous``;
* anything else (one or three digits) is not a date.
"""

from __future__ import annotations

import re
from datetime import date
from typing import NamedTuple

import polars as pl

from ..schema import Column

AMBIGUOUS = "two_digit_year_ambiguous"
OUT_OF_RANGE = "two_digit_year_out_of_range"
REFUSALS = (AMBIGUOUS, OUT_OF_RANGE)

_FIELDS = {"%m": "[0-9]{1,2}", "%d": "[0-9]{1,2}", "%H": "[0-9]{1,2}", "%M": "[0-9]{1,2}",
           "%S": "[0-9]{1,2}", "%b": "[A-Za-z]{3}", "%B": "[A-Za-z]+", "%j": "[0-9]{1,3}",
           "%e": " ?[0-9]{1,2}", "%%": "%"}


def parsing_format(fmt: str) -> str:
    """The format polars parses with: ``%y`` read as ``%Y`` (its pivot is a guess)."""
    return fmt.replace("%y", "%Y")


def _shape(fmt: str, year_digits: int) -> str:
    """A pattern for text written in ``fmt`` with a year of exactly that many digits."""
    out = []
    for token in re.split(r"(%.)", fmt):
        if token in ("%Y", "%y"):
            out.append(f"[0-9]{{{year_digits}}}")
        elif token in _FIELDS:
            out.append(_FIELDS[token])
        elif token.startswith("%") and len(token) == 2:
            out.append(".+?")
        else:
            out.append(re.escape(token))
    return "^" + "".join(out) + "$"


def century_certain(col: Column, delivery_date: date) -> bool:
    """True when no two dates a hundred years apart both lie in the declared range."""
    low, high = col.date_range(delivery_date)
    if low is None or high is None:
        return False
    try:
        return high < low.replace(year=low.year + 100)
    except ValueError:  # 29 February
        return high < date(low.year + 100, 3, 1)


class Years(NamedTuple):
    dates: pl.Series
    """The rows' dates: expanded, kept, or null where refused or not a date."""
    expanded: int
    refused: pl.Series
    """Per row, the refusal (one of :data:`REFUSALS`) or null."""


def settle(col: Column, text: pl.Series, parsed: pl.Series, delivery_date: date) -> Years:
    """The rows whose parsed year is below 1000, their text beside: what they are."""
    text = text.cast(pl.Utf8).str.strip_chars()
    four = [_shape(f, 4) for f in col.date_formats if "%Y" in f]
    two = [_shape(f, 2) for f in col.date_formats if "%Y" in f or "%y" in f]
    written = pl.any_horizontal([text.str.contains(p) for p in four]) if four \
        else pl.repeat(False, len(text), eager=True)
    short = pl.any_horizontal([text.str.contains(p) for p in two]) if two \
        else pl.repeat(False, len(text), eager=True)
    frame = pl.DataFrame({"parsed": parsed, "written": pl.select(written).to_series(),
                          "short": pl.select(short).to_series()})
    if century_certain(col, delivery_date):
        low, high = col.date_range(delivery_date)
        assert low is not None and high is not None
        candidate = _with_year(pl.col("parsed"), low.year - low.year % 100)
        candidate = pl.when(candidate < pl.lit(low)).then(
            _with_year(pl.col("parsed"), low.year - low.year % 100 + 100)).otherwise(candidate)
        in_range = candidate.is_not_null() & (candidate <= pl.lit(high))
        frame = frame.with_columns(
            pl.when(pl.col("written")).then(pl.col("parsed"))
            .when(pl.col("short") & in_range).then(candidate).alias("date"),
            pl.when(pl.col("written")).then(None)
            .when(pl.col("short") & ~in_range).then(pl.lit(OUT_OF_RANGE)).alias("refused"),
            (~pl.col("written") & pl.col("short") & in_range).alias("expanded"))
    else:
        frame = frame.with_columns(
            pl.when(pl.col("written")).then(pl.col("parsed")).alias("date"),
            pl.when(~pl.col("written") & pl.col("short")).then(pl.lit(AMBIGUOUS))
            .alias("refused"),
            pl.lit(False).alias("expanded"))
    return Years(frame["date"], int(frame["expanded"].sum()),
                 frame["refused"].cast(pl.Utf8))


def _with_year(parsed: pl.Expr, century: int) -> pl.Expr:
    """``parsed`` (a date in the years 0 to 99) moved into ``century``; null where that
    day does not exist then (29 February of a year that is not a leap year)."""
    return pl.format("{}-{}-{}", (parsed.dt.year() + century).cast(pl.Utf8),
                     parsed.dt.month().cast(pl.Utf8).str.zfill(2),
                     parsed.dt.day().cast(pl.Utf8).str.zfill(2)
                     ).str.strptime(pl.Date, "%Y-%m-%d", strict=False)
