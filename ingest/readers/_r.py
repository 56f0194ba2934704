"""Two conventions of R's ``write.table``, recognised in delimited text.

Escaped quotes. With its default ``qmethod="escape"``, R writes a quote inside
a quoted value as ``\\"``, where RFC 4180 doubles it (``""``). Read the RFC way,
the quote vanishes and the backslash stays. The convention is recognised only
when the text cannot be RFC 4180: a ``\\"`` followed by anything but a separator,
a line end or another quote. In RFC text, ``\\"`` is either a value ending in a
backslash (the quote closes the field, so a separator or line end follows) or a
backslash before a doubled quote; a plain CSV with a backslash in a value is
never read differently. R does not escape backslashes themselves, so a value
ending in one is ambiguous in R's own convention: such a file fails to split
into the header's fields and is refused.

Row names. With its default ``row.names=TRUE``, R writes a first column of row
names that has no name in the header: the header is one field short. Such a
column is dropped only when every row's first field is its row number
(``1``, ``2``, ... in order); otherwise the file is refused as ragged.
"""

from __future__ import annotations

import csv
import io
import re

import polars as pl

from ..repairs import R_ESCAPED_QUOTES, key
from ..schema import Dataset

ESCAPED_QUOTES_NOTE = ("quotes escaped with a backslash (R write.table's qmethod=\"escape\") "
                       "were read as quotes")
ESCAPED_QUOTES_REFUSAL = (
    "The file escapes quotes with a backslash (R write.table's default), and in that "
    "convention a value ending in a backslash cannot be told from an escaped quote: ask for "
    "the file written with write.csv, or write.table with qmethod=\"double\"")
_ROW_NAMES = "_r_row_names"
_FIRST_RECORD_SAMPLE = 1 << 16


def uses_escaped_quotes(text: bytes, sep: str) -> bool:
    """True when ``text`` escapes quotes R's way (and so is not RFC 4180 text)."""
    if b"\\" not in text:  # the common case: no backslash at all (one memchr scan)
        return False
    return re.search(rb'\\"[^' + re.escape(sep.encode()) + rb'"\r\n]', text) is not None


def unescape_quotes(text: bytes) -> bytes:
    """R's ``\\"`` as RFC 4180's ``""``: the text polars reads."""
    return text.replace(b'\\"', b'""')


def unescaped_counts(frame: pl.DataFrame, dataset: Dataset) -> dict[str, int]:
    """Per schema column, the values that hold a quote (each was escaped)."""
    text = [c for c in dataset.columns if frame.schema[c.source] == pl.Utf8]
    if not text:
        return {}
    counts = frame.select(pl.col(c.source).str.contains('"', literal=True).sum()
                          for c in text).row(0)
    return {key(c.name, R_ESCAPED_QUOTES): int(n) for c, n in zip(text, counts, strict=True)
            if n}


def row_names_column(text: bytes, start: int, sep: str, header_line: str) -> str | None:
    """The name to give a leading row-names column, if the header is one field
    shorter than the first record and that record starts with ``1``."""
    header = next(csv.reader([header_line], delimiter=sep, quotechar='"'), [])
    body = text.find(b"\n", start) + 1
    if not header or body <= 0:
        return None
    sample = text[body:body + _FIRST_RECORD_SAMPLE].decode("utf-8", errors="ignore")
    first = next(csv.reader(io.StringIO(sample, newline=""), delimiter=sep, quotechar='"'),
                 None)
    if first is None or len(first) != len(header) + 1 or first[0].strip() != "1":
        return None
    name = _ROW_NAMES
    while name in header:
        name = "_" + name
    return name


def with_row_names_header(text: bytes, start: int, sep: str, name: str) -> bytes:
    """``text`` with ``name`` as the header's first field."""
    return b"".join((memoryview(text)[:start], f'"{name}"{sep}'.encode(),
                     memoryview(text)[start:]))


def are_row_names(column: pl.Series) -> bool:
    """Every value is its row number, 1 to n in order (R's default row names)."""
    numbers = pl.int_range(1, column.len() + 1, eager=True).cast(pl.Utf8)
    return bool(column.str.strip_chars().eq_missing(numbers).all())


def row_names_note(rows: int) -> str:
    return (f"dropped a first column without a header holding the row numbers 1 to {rows} "
            "(R write.table's row names)")
