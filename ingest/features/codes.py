"""A categorical column's codes, and the distinct strings they stand for."""

from __future__ import annotations

import numpy as np
import polars as pl


def codes(series: pl.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]] | None:
    """Row codes, null mask, the distinct codes present and their strings, found by
    counting codes (no hashing of the column), or None when codes are too sparse."""
    physical = series.to_physical()
    null = physical.is_null().to_numpy()
    row_codes = physical.fill_null(0).to_numpy()
    if not row_codes.size:
        return None
    top = int(row_codes.max())
    if top >= max(16 * series.len(), 2**24):
        return None
    valid = row_codes[~null] if null.any() else row_codes
    distinct_codes = np.flatnonzero(np.bincount(valid, minlength=top + 1))
    last_row = np.empty(top + 1, dtype=np.int64)
    rows = np.arange(series.len(), dtype=np.int64)
    last_row[valid] = rows[~null] if null.any() else rows
    values = series.gather(last_row[distinct_codes]).cast(pl.String).to_list()
    return row_codes, null, distinct_codes, values


def distinct_strings(series: pl.Series) -> list[str]:
    if isinstance(series.dtype, pl.Categorical | pl.Enum):
        found = codes(series)
        if found is not None:
            return found[3]
    return series.drop_nulls().unique().cast(pl.String).to_list()
