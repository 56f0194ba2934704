"""Every value of a unique column seen so far, and the row it first appeared on.

The values are kept as they are (no hash standing in for a value), so a
duplicate is one exactly. They are spread over ``PARTITIONS`` partitions by
their hash (the hash only picks a partition: within it, values are compared
exactly), and each partition holds a few runs sorted by value, merged
LSM-style: a new run is merged into the one before it while that one is at
most twice its size, so a partition has a logarithmic number of runs.

A batch is looked up by binary search in each run (``search_sorted``): its cost
grows with the batch and the logarithm of the index, never with the index
itself. Memory is the values and a ``UInt64`` row each, as before; a merge
copies two runs of one partition, about ``1/PARTITIONS`` of the index at most,
never the whole index at once.
"""

from __future__ import annotations

import polars as pl

from ..validate import FIRST_ROW

_VALUE = "_value"
_AT = "_at"
_PART = "_part"
PARTITIONS = 32


class KeyIndex:
    """The values of one unique column met in earlier batches, with their first row."""

    def __init__(self, dtype: pl.DataType) -> None:
        self._dtype = dtype
        self._parts: list[list[pl.DataFrame]] = [[] for _ in range(PARTITIONS)]

    @property
    def size(self) -> int:
        """Values held."""
        return sum(run.height for runs in self._parts for run in runs)

    def earlier(self, values: pl.Series) -> pl.Series:
        """Per value, the row it first appeared on in an earlier batch (null: new)."""
        out = pl.Series(FIRST_ROW, [None] * values.len(), dtype=pl.UInt64)
        wanted = self._partitioned(values.rename(_VALUE).to_frame()
                                   .with_row_index(_AT).drop_nulls(_VALUE))
        for part, frame in wanted.items():
            at, found = frame[_AT], frame[_VALUE]
            for run in self._parts[part]:
                keys = run[_VALUE]
                pos = keys.search_sorted(found, side="left")
                inside = pos < run.height
                hit_rows = run[FIRST_ROW].gather(pos.filter(inside))
                hit = keys.gather(pos.filter(inside)) == found.filter(inside)
                if hit.any():
                    out.scatter(at.filter(inside).filter(hit), hit_rows.filter(hit))
        return out

    def add(self, values: pl.Series, first_row: int, earlier: pl.Series) -> None:
        """Remember this batch's new values (``first_row``: the batch's first row;
        ``earlier``: what :meth:`earlier` said of them)."""
        fresh = (values.rename(_VALUE).to_frame()
                 .with_row_index(FIRST_ROW, offset=first_row)
                 .select(_VALUE, pl.col(FIRST_ROW).cast(pl.UInt64))
                 .filter(pl.col(_VALUE).is_not_null() & earlier.is_null()
                         & pl.col(_VALUE).is_first_distinct()))
        for part, frame in self._partitioned(fresh).items():
            self._push(part, frame.sort(_VALUE).rechunk())

    def _partitioned(self, frame: pl.DataFrame) -> dict[int, pl.DataFrame]:
        if not frame.height:
            return {}
        keyed = frame.with_columns(
            (pl.col(_VALUE).hash(seed=0) % PARTITIONS).cast(pl.Int64).alias(_PART))
        return {int(key[0]): part.drop(_PART)  # type: ignore[index]
                for key, part in keyed.partition_by(_PART, as_dict=True).items()}

    def _push(self, part: int, run: pl.DataFrame) -> None:
        runs = self._parts[part]
        runs.append(run)
        while len(runs) > 1 and runs[-2].height <= 2 * runs[-1].height:
            newer = runs.pop()
            older = runs.pop()
            # values are distinct across runs (a value already held is never added)
            runs.append(older.merge_sorted(newer, key=_VALUE).rechunk())
