"""Profiling a delivered table, column by column, into drafted column declarations.

Each column is looked at whole (polars expressions, no Python per row) and given
the narrowest kind every one of its values parses as, so the unedited draft
quarantines no row for a value that does not parse. What the data suggests but
a run would enforce as a rule (category levels, ranges, keys) is returned apart,
for the draft to show commented out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import time
from typing import Any

import polars as pl

from ..schema import Kind

NULL_CANDIDATES = ("", "NA", "N/A", "n/a", "NULL", "null", ".", "#N/A", "NaN")
"""Spellings of "no value" looked for; those seen become the dataset's null tokens."""

BOOLEAN_SPELLINGS = (("Y", "N"), ("y", "n"), ("1", "0"), ("TRUE", "FALSE"), ("True", "False"),
                     ("true", "false"), ("T", "F"), ("YES", "NO"), ("Yes", "No"),
                     ("yes", "no"))
"""(true, false) pairs; 1/0 counts only when both are seen (else it is a number)."""

DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%d/%m/%Y", "%Y/%m/%d", "%d.%m.%Y", "%m-%d-%Y",
                "%d-%m-%Y", "%d-%b-%Y", "%d %b %Y", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S",
                "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M")
"""Date formats tried, in order; those with a time only when every time is midnight."""
DAY_OR_MONTH_FIRST = (("%m/%d/%Y", "%d/%m/%Y"), ("%m-%d-%Y", "%d-%m-%Y"))
DATETIME_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M",
                    "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z",
                    "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%d/%m/%Y %H:%M:%S",
                    "%d/%m/%Y %H:%M", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M %p")
TIME_FORMATS = ("%H:%M:%S%.f", "%H:%M")
TWO_DIGIT_YEAR = r"^[0-9]{1,2}[/.-][0-9]{1,2}[/.-][0-9]{2}$"

CATEGORY_MAX_LEVELS = 25
LEVEL_MAX_CHARS = 40
FREE_TEXT_MEAN_CHARS = 25

_PERSON_WORDS = {"pers", "person", "patient", "pat", "ssn", "mrn", "nhs", "passport", "email",
                 "phone", "mobile", "client", "member", "subject", "participant", "name",
                 "surname", "forename", "firstname", "lastname", "fname", "lname", "address",
                 "street", "nin", "sin", "tin"}
_ID_WORDS = {"id", "ident", "identifier", "key", "code", "cd", "fips", "zip", "postcode",
             "zipcode"}
_BIRTH_WORDS = {"dob", "birth", "birthdate", "birthday", "bdate", "born", "bdt"}


@dataclass
class Drafted:
    """One column's draft: its declaration, and what may only be suggested."""

    source: str
    name: str
    kind: Kind = "string"
    nullable: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    """``Column`` settings besides the source (policy, width, formats, ...)."""
    notes: list[str] = field(default_factory=list)
    """Why the column was drafted so: counts, formats, kinds; never a value."""
    suggested: list[str] = field(default_factory=list)
    """``pa.Field`` arguments that hold values from the data (levels, ranges)."""
    null_tokens: list[str] = field(default_factory=list)
    candidate_key: bool = False


def null_tokens_seen(frame: pl.DataFrame) -> list[str]:
    """The null spellings found (stripped, whole cells) in the text columns."""
    text = [c for c in frame.columns if frame.schema[c] == pl.Utf8]
    if not text:
        return [""]
    found = frame.select([pl.col(c).str.strip_chars().is_in(NULL_CANDIDATES)
                          .any().alias(c) for c in text]).row(0)
    if not any(found):
        return [""]
    seen = frame.select([pl.col(c).str.strip_chars() for c, hit in zip(text, found,
                                                                       strict=True) if hit])
    tokens = set()
    for c in seen.columns:
        tokens.update(seen[c].filter(seen[c].is_in(NULL_CANDIDATES)).unique().to_list())
    return [t for t in NULL_CANDIDATES if t in tokens or t == ""]


def infer(series: pl.Series, source: str, name: str, null_tokens: list[str]) -> Drafted:
    """The draft of one delivered column (``series``, as the reader gave it)."""
    col = Drafted(source, name)
    words = set(name.split("_"))
    height = series.len()
    if series.dtype == pl.Utf8:
        stripped = series.str.strip_chars()
        present = series.is_not_null() & ~stripped.is_in(null_tokens)
        values = stripped.filter(present)
        raw = series.filter(present)
        seen = [t for t in null_tokens if stripped.eq(t).any()]
        col.null_tokens = seen
    else:
        present = series.is_not_null()
        values = raw = series.filter(present)
        seen = []
    col.nullable = values.len() < height
    if col.nullable:
        missing = height - values.len()
        spelled = (" (spelled as empty" + "".join(f", {t!r}" for t in seen if t) + ")"
                   if seen else "")
        col.notes.append(f"{missing:,} of {height:,} rows have no value{spelled}")
    if values.len() == 0:
        col.notes.append("no value in any row: the kind cannot be told, kept as text")
        return col
    col.candidate_key = not col.nullable and height > 1 and raw.n_unique() == height
    # a measurement or a moment that happens to be unique is not a key
    if series.dtype == pl.Utf8:
        _text_kind(col, values, raw, words)
    else:
        _typed_kind(col, values, words)
    _policy(col, words)
    col.candidate_key = col.candidate_key and col.kind in ("string", "integer", "date")
    return col


# --- kinds --------------------------------------------------------------------------------------

def _typed_kind(col: Drafted, values: pl.Series, words: set[str]) -> None:
    """A column the source typed (an Access column): its type says the kind."""
    dtype = values.dtype
    if dtype == pl.Boolean:
        col.kind = "bool"
    elif dtype.is_integer():
        col.kind = "string" if words & _ID_WORDS else "integer"
        if col.kind == "string":
            col.notes.append("whole numbers, kept as text: the name says an identifier or code")
    elif dtype.is_float():
        col.kind = "float"
    elif dtype == pl.Date:
        col.kind = "date"
    elif isinstance(dtype, pl.Datetime):
        midnight = bool((values.dt.time() == time(0)).all()) if values.len() else True
        col.kind = "date" if midnight else "datetime"
        if isinstance(dtype, pl.Datetime) and dtype.time_zone and col.kind == "datetime":
            col.metadata["timezone"] = "UTC"
    elif dtype == pl.Time:
        col.kind = "time"
    else:
        col.notes.append(f"delivered as {dtype}: kept as text")
        return
    col.notes.append(f"typed {dtype} in the source")
    _range(col, values)


def _text_kind(col: Drafted, values: pl.Series, raw: pl.Series, words: set[str]) -> None:
    distinct = values.n_unique()
    if distinct <= 2 and _boolean(col, values):
        return
    if values.str.contains(r"^[+-]?[0-9]+$").all():
        _digits(col, values, words)
        return
    if _decimal(col, values) or _float(col, values):
        return
    if _dates(col, values) or _datetimes(col, values) or _times(col, values):
        return
    _text(col, raw, distinct)


def _boolean(col: Drafted, values: pl.Series) -> bool:
    seen = set(values.unique().to_list())
    for true, false in BOOLEAN_SPELLINGS:
        if seen <= {true, false} and (true != "1" or seen == {"1", "0"}):
            col.kind = "bool"
            col.metadata["true_values"] = (true,)
            col.metadata["false_values"] = (false,)
            col.notes.append(f"yes/no written {true}/{false}")
            return True
    return False


def _digits(col: Drafted, values: pl.Series, words: set[str]) -> None:
    lengths = values.str.len_chars()
    zeros = values.str.contains(r"^0[0-9]").any()
    shortest, longest = int(lengths.min()), int(lengths.max())  # type: ignore[arg-type]
    if zeros and shortest == longest:
        col.metadata["width"] = longest
        col.notes.append(f"a code of {longest} digits with leading zeros: kept as text, "
                         "zero-padded to its width")
        return
    if zeros:
        col.notes.append(f"digits with leading zeros, {shortest} to {longest} long: kept as "
                         "text; declare a width if shorter ones lost their zeros")
        return
    if words & _ID_WORDS:
        col.notes.append(f"digits, {shortest} to {longest} long: kept as text, the name says "
                         "an identifier or code")
        return
    if longest > 18:
        col.notes.append("whole numbers too long for a 64-bit integer: kept as text")
        return
    col.kind = "integer"
    col.notes.append("whole numbers")
    _range(col, values.cast(pl.Int64))


def _decimal(col: Drafted, values: pl.Series) -> bool:
    """Every value written with the same number of places (money, lab values)."""
    if not values.str.contains(r"^[+-]?[0-9]+\.[0-9]{1,9}$").all():
        return False
    places = values.str.extract(r"\.([0-9]+)$").str.len_chars()
    if places.n_unique() != 1:
        return False
    if values.str.contains(r"\.0+$").all():
        # whole numbers written as floats (pandas writes an integer column with gaps so):
        # the integer kind does not read "2013.0", so they stay numbers, as floats
        col.kind = "float"
        col.notes.append("whole numbers written with a decimal point (as 2013.0): float; the "
                         "integer kind reads only digits")
        _range(col, values.cast(pl.Float64))
        return True
    scale = int(places[0])
    whole = int(values.str.extract(r"^[+-]?0*([0-9]*)\.").str.len_chars().max())  # type: ignore[arg-type]
    needed = max(whole + scale, scale + 1)
    col.kind = "decimal"
    col.metadata["precision"] = min(38, max(18, needed))
    col.metadata["scale"] = scale
    col.notes.append(f"every value has {scale} decimal place(s): exact decimal; up to "
                     f"{needed} digits seen")
    _range(col, values.cast(pl.Decimal(38, scale), strict=False))
    return True


def _float(col: Drafted, values: pl.Series) -> bool:
    number = values.cast(pl.Float64, strict=False)
    if number.null_count() or not number.is_finite().all():
        return False
    col.kind = "float"
    col.notes.append("numbers with varying decimal places")
    _range(col, number)
    return True


def _parses(values: pl.Series, dtype: Any, fmt: str) -> int:
    """How many of ``values`` parse as ``dtype`` (Date, Datetime, Time) written ``fmt``."""
    return values.len() - values.str.strptime(dtype, fmt, strict=False,
                                              exact=True).null_count()


_SAMPLE = 2_000


def _likely(values: pl.Series, dtype: Any, formats: tuple[str, ...], share: float
            ) -> list[str]:
    """The formats that read at least ``share`` of a sample spread over the column (so
    a column of names is not tried against every format in full)."""
    sample = values.gather_every(max(1, values.len() // _SAMPLE))
    return [f for f in formats if _parses(sample, dtype, f) >= share * sample.len()]


def _dates(col: Drafted, values: pl.Series) -> bool:
    if values.str.contains(TWO_DIGIT_YEAR).all():
        col.notes.append("dates with two-digit years: kept as text; to read them as dates "
                         "declare pl.Date with date_formats and an earliest/latest range that "
                         "makes the century certain")
        return True
    n = values.len()
    counts = {}
    for fmt in _likely(values, pl.Date, DATE_FORMATS, 0.5):
        if "%H" in fmt and not values.str.contains(r"[ T]00:00:00$").all():
            continue
        counts[fmt] = _parses(values, pl.Date, fmt)
    full = [f for f, k in counts.items() if k == n]
    for first, second in DAY_OR_MONTH_FIRST:
        if first in full and second in full:
            col.notes.append(f"dates written {first} or {second}: no value settles whether the "
                             "day or the month comes first, so they are kept as text. Ask the "
                             f"sender, then declare pl.Date with date_formats=({first!r},) or "
                             f"({second!r},)")
            return True
    if full:
        col.kind = "date"
        col.metadata["date_formats"] = (full[0],)
        col.notes.append(f"dates written {full[0]}")
        _range(col, values.str.strptime(pl.Date, full[0], strict=False, exact=True))
        return True
    best = max(counts, key=lambda f: counts[f], default=None)
    if best is not None and counts[best] >= n * 0.5:
        col.notes.append(f"{n - counts[best]:,} of {n:,} values are not dates written {best}: "
                         "kept as text so no row is quarantined. To check them, declare "
                         f"pl.Date with date_formats=({best!r},); those rows are then "
                         "quarantined as not_a_date")
        return True
    return False


def _datetimes(col: Drafted, values: pl.Series) -> bool:
    n = values.len()
    for fmt in _likely(values, pl.Datetime("us"), DATETIME_FORMATS, 1.0):
        if _parses(values, pl.Datetime("us"), fmt) == n:
            col.kind = "datetime"
            col.metadata["datetime_formats"] = (fmt,)
            zoned = "z" in fmt
            if zoned:
                col.metadata["timezone"] = "UTC"
            col.notes.append(f"date and time written {fmt}"
                             + ("; with an offset, so converted to UTC" if zoned else
                                "; no offset, so kept as written (naive)"))
            return True
    return False


def _times(col: Drafted, values: pl.Series) -> bool:
    n = values.len()
    for fmt in _likely(values, pl.Time, TIME_FORMATS, 1.0):
        if _parses(values, pl.Time, fmt) == n:
            col.kind = "time"
            col.metadata["time_formats"] = (fmt,)
            col.notes.append(f"times of day written {fmt}")
            return True
    return False


def _text(col: Drafted, raw: pl.Series, distinct: int) -> None:
    lengths = raw.str.len_chars()
    mean = float(lengths.mean() or 0)  # type: ignore[arg-type]
    longest = int(lengths.max() or 0)  # type: ignore[arg-type]
    if mean >= FREE_TEXT_MEAN_CHARS or longest > 2 * LEVEL_MAX_CHARS:
        col.metadata["policy"] = "restrict"
        col.notes.append("free text: restricted, as it may name people")
        col.suggested.append(f"str_length={{'max_value': {longest}}}")
        return
    if distinct <= CATEGORY_MAX_LEVELS and distinct * 4 <= raw.len() \
            and longest <= LEVEL_MAX_CHARS:
        col.kind = "category"
        levels = sorted(raw.unique().to_list())
        col.notes.append(f"{distinct} distinct values: a category")
        col.suggested.append(f"isin={levels!r}")
        return
    col.notes.append(f"text, {distinct:,} distinct values")


def _range(col: Drafted, values: pl.Series) -> None:
    low, high = values.min(), values.max()
    if low is None or high is None:
        return
    col.suggested.append(f"ge={_literal(low)}, le={_literal(high)}")


def _literal(value: object) -> str:
    """A Python expression for a bound (the emitted module imports ``date``/``datetime``)."""
    from datetime import date, datetime, time
    from decimal import Decimal

    if isinstance(value, datetime):
        return f"datetime.fromisoformat({value.isoformat()!r})"
    if isinstance(value, date):
        return f"date({value.year}, {value.month}, {value.day})"
    if isinstance(value, time):
        return f"time.fromisoformat({value.isoformat()!r})"
    if isinstance(value, Decimal):
        return f"Decimal({str(value)!r})"
    return repr(value)


# --- policies -----------------------------------------------------------------------------------

def _policy(col: Drafted, words: set[str]) -> None:
    if col.metadata.get("policy"):
        return
    if words & _BIRTH_WORDS or re.search(r"birth|dob", col.name):
        if col.kind in ("date", "datetime", "string"):
            col.metadata["policy"] = "restrict"
            col.notes.append("a birth date: restricted (a quasi-identifier)")
        return
    if words & _PERSON_WORDS and col.kind in ("string", "integer", "category"):
        col.metadata["policy"] = "pseudonymise"
        col.kind = "string" if col.kind == "category" else col.kind
        col.suggested.clear()  # no values of an identifier are shown
        col.notes.append("points at a person: pseudonymised (a keyed HMAC token)")
        return
    if words & {"id", "identifier"} and col.kind in ("string", "integer"):
        col.notes.append("an identifier: pseudonymise it if it points at a person")
