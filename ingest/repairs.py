"""The repairs a delivery may get, by name, and how each reads in a report.

A repair changes what the sender wrote into what they meant, only as the schema
declares (a column's width, its date range) or where a producer's convention is
certain (R's escaped quotes and row names). Every one is counted under
``<column>:<kind>`` (``<kind>`` alone for the whole table); the counts travel
with the table into the manifest, the run's summary and the report. Counts only:
which values were repaired is never recorded.
"""

from __future__ import annotations

ZERO_PADDED = "zero_padded"
FLOAT_SPELLING_RESTORED = "float_spelling_restored"
TWO_DIGIT_YEAR_EXPANDED = "two_digit_year_expanded"
R_ESCAPED_QUOTES = "r_escaped_quotes"
R_ROW_NAMES_DROPPED = "r_row_names_dropped"

_PHRASES = {
    ZERO_PADDED: "{n} {column} values zero-padded to the declared width",
    FLOAT_SPELLING_RESTORED: "{n} {column} values written as whole floats (a .0 "
                             "fraction) restored to digits",
    TWO_DIGIT_YEAR_EXPANDED: "{n} {column} two-digit years expanded (the declared date "
                             "range makes the century certain)",
    R_ESCAPED_QUOTES: "{n} {column} values with R's backslash-escaped quotes read as "
                      "quotes",
    R_ROW_NAMES_DROPPED: "{n} R row names dropped (an unnamed first column)",
}


def key(column: str, kind: str) -> str:
    return f"{column}:{kind}"


def phrase(repair: str, shown: str) -> str:
    """``repair`` (a key) as a sentence, its count already formatted as ``shown``."""
    column, _, kind = repair.rpartition(":")
    template = _PHRASES.get(kind, "{n} {column} values repaired (" + kind + ")")
    return template.format(n=shown, column=column or "table").replace("  ", " ")
