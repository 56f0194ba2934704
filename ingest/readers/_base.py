"""What every reader returns, and header matching shared by all of them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

from ..errors import SchemaMismatchError
from ..schema import Dataset


@dataclass(frozen=True)
class SourceTable:
    """A table as the sender delivered it, in the schema's column order.

    Text formats give Utf8 columns; Excel and Access give the types their cells
    carry (Date, Float64, Int64, Boolean, Utf8), which coercion understands.
    Row ``i`` of ``frame`` is data row ``i + 1`` of the member.
    """

    member: str
    format: str
    frame: pl.DataFrame = field(repr=False)
    encoding: str | None = None
    trailer_count: int | None = None
    notes: list[str] = field(default_factory=list)
    repairs: dict[str, int] = field(default_factory=dict)
    """``<column>:<kind>`` -> number of values the reader repaired as the schema
    declares (counts only: what was changed is never recorded)."""
    date_system: str | None = None
    """How numeric date cells count days: None (not a spreadsheet), "1900" (Excel's
    1900 system with its phantom 1900-02-29), "1900-continuous" (days from
    1899-12-30 with no phantom day, as LibreOffice writes) or "1904"."""

    @property
    def rows(self) -> int:
        return self.frame.height


def normalise_header(name: object) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().lstrip("\ufeff")).upper()


def match_columns(found: list[str], dataset: Dataset, member: str) -> dict[str, str]:
    """Map each schema source column to the member's column; list every difference."""
    by_norm: dict[str, str] = {}
    for name in found:
        by_norm.setdefault(normalise_header(name), name)
    wanted = {normalise_header(s): s for s in dataset.source_names}
    missing = [s for n, s in wanted.items() if n not in by_norm]
    extra = [str(f) for n, f in by_norm.items() if n not in wanted]
    if len(missing) > len(wanted) / 2:
        # probably no header at all: the first row may be data, so it is not quoted
        raise SchemaMismatchError(
            f"{member}: no header row with the columns of schema '{dataset.name}' was found "
            f"({len(wanted) - len(missing)} of {len(wanted)} names present); the file needs "
            "a header row naming " + ", ".join(dataset.source_names))
    if missing or len(found) != len(by_norm):
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing))
        if extra:
            parts.append("unexpected " + ", ".join(extra[:20]))
        if len(found) != len(by_norm):
            parts.append("repeated column names")
        raise SchemaMismatchError(
            f"{member}: the header does not match schema '{dataset.name}': "
            + "; ".join(parts) + ". Check that the right file and schema were given")
    return {s: by_norm[n] for n, s in wanted.items()}


def header_score(cells: Sequence[object], dataset: Dataset) -> int:
    """How many schema source names appear among ``cells``."""
    wanted = {normalise_header(s) for s in dataset.source_names}
    return sum(1 for c in cells if c is not None and normalise_header(c) in wanted)
