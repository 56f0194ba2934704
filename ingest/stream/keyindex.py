"""Every value of a unique column seen so far, and the row it first appeared on.

The values are kept as they are (no hash standing in for a value), so a
duplicate is one exactly. They are spread over ``PARTITIONS`` partitions by
their hash (the hash only picks a partition: within it, values are compared
exactly), and each partition holds a few runs sorted by value, merged
LSM-style: a new run is merged into the one before it while that one is at
most twice its size, so a partition has a logarithmic number of runs.

A batch is looked up by binary search in each run: its cost grows with the
batch and the logarithm of the index, never with the index itself. A merge
copies two runs of one partition, about ``1/PARTITIONS`` of the index at most,
never the whole index at once.

Text values (the usual identifiers) are held compactly, as fixed-width bytes
(:class:`_TextRuns`): each value's UTF-8 bytes and a final ``0x01`` (so that
no value's trailing NUL bytes can be mistaken for the padding), padded to the
longest in its run, with the row as 4 bytes while rows fit: 15 bytes a value
for 10-character ids, where a polars string view and a 64-bit row are 24.
Other types are held as polars columns (:class:`_FrameRuns`).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from ..validate import FIRST_ROW

_VALUE = "_value"
_AT = "_at"
_PART = "_part"
PARTITIONS = 32
_END = 1
"""The byte closing every text value in a run (see the module's docstring)."""


class KeyIndex:
    """The values of one unique column met in earlier batches, with their first row."""

    def __init__(self, dtype: pl.DataType) -> None:
        self._runs: _TextRuns | _FrameRuns = \
            _TextRuns() if dtype == pl.String else _FrameRuns()

    @property
    def size(self) -> int:
        """Values held."""
        return self._runs.size()

    def earlier(self, values: pl.Series) -> pl.Series:
        """Per value, the row it first appeared on in an earlier batch (null: new)."""
        out = pl.Series(FIRST_ROW, [None] * values.len(), dtype=pl.UInt64)
        wanted = values.rename(_VALUE).to_frame().with_row_index(_AT).drop_nulls(_VALUE)
        for part, frame in _partitioned(wanted).items():
            at, rows = self._runs.find(part, frame[_VALUE])
            if at.size:
                out.scatter(frame[_AT].to_numpy()[at], rows)
        return out

    def add(self, values: pl.Series, first_row: int, earlier: pl.Series) -> None:
        """Remember this batch's new values (``first_row``: the batch's first row;
        ``earlier``: what :meth:`earlier` said of them)."""
        fresh = (values.rename(_VALUE).to_frame()
                 .with_row_index(FIRST_ROW, offset=first_row)
                 .select(_VALUE, pl.col(FIRST_ROW).cast(pl.UInt64))
                 .filter(pl.col(_VALUE).is_not_null() & earlier.is_null()
                         & pl.col(_VALUE).is_first_distinct()))
        for part, frame in _partitioned(fresh).items():
            self._runs.add(part, frame[_VALUE], frame[FIRST_ROW].to_numpy())


def _partitioned(frame: pl.DataFrame) -> dict[int, pl.DataFrame]:
    if not frame.height:
        return {}
    keyed = frame.with_columns(
        (pl.col(_VALUE).hash(seed=0) % PARTITIONS).cast(pl.Int64).alias(_PART))
    return {int(key[0]): part.drop(_PART)  # type: ignore[index]
            for key, part in keyed.partition_by(_PART, as_dict=True).items()}


def _merge_positions(older: np.ndarray, newer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the rows of two sorted runs (no value in both) go in their merge."""
    into = np.searchsorted(older, newer) + np.arange(newer.size)
    keep = np.ones(older.size + newer.size, dtype=bool)
    keep[into] = False
    return np.flatnonzero(keep), into


def _rows_dtype(top: int) -> type[np.unsignedinteger]:
    return np.uint32 if top < 2**32 else np.uint64


class _TextRuns:
    """Per partition, runs of (fixed-width terminated bytes, row), sorted by bytes."""

    def __init__(self) -> None:
        self._parts: list[list[tuple[np.ndarray, np.ndarray]]] = \
            [[] for _ in range(PARTITIONS)]

    def size(self) -> int:
        return sum(keys.size for runs in self._parts for keys, _ in runs)

    def find(self, part: int, values: pl.Series) -> tuple[np.ndarray, np.ndarray]:
        """Positions in ``values`` of the values held, and their rows."""
        needles, lengths = _fixed(values)
        # searched in order, each search starts near the last one: far fewer cache
        # misses in a large run than values in the batch's order
        order = np.argsort(needles, kind="stable")
        needles, lengths = needles[order], lengths[order]
        found_at: list[np.ndarray] = []
        found_rows: list[np.ndarray] = []
        for keys, rows in self._parts[part]:
            width = keys.dtype.itemsize
            fits = np.flatnonzero(lengths < width)  # with its end byte, no wider than the run
            if not fits.size:
                continue
            probe = needles[fits].astype(keys.dtype)  # only NUL padding is cut or added
            pos = np.searchsorted(keys, probe)
            inside = pos < keys.size
            hit = np.zeros(probe.size, dtype=bool)
            hit[inside] = keys[pos[inside]] == probe[inside]
            found_at.append(order[fits[hit]])
            found_rows.append(rows[pos[hit]].astype(np.uint64))
        if not found_at:
            return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.uint64)
        return np.concatenate(found_at), np.concatenate(found_rows)

    def add(self, part: int, values: pl.Series, rows: np.ndarray) -> None:
        keys, _ = _fixed(values)
        order = np.argsort(keys, kind="stable")
        runs = self._parts[part]
        runs.append((keys[order], rows[order].astype(_rows_dtype(int(rows.max())))))
        while len(runs) > 1 and runs[-2][0].size <= 2 * runs[-1][0].size:
            newer_keys, newer_rows = runs.pop()
            older_keys, older_rows = runs.pop()
            dtype = max(older_keys.dtype, newer_keys.dtype, key=lambda d: d.itemsize)
            older_keys, newer_keys = older_keys.astype(dtype), newer_keys.astype(dtype)
            old_at, new_at = _merge_positions(older_keys, newer_keys)
            keys = np.empty(old_at.size + new_at.size, dtype=dtype)
            keys[old_at], keys[new_at] = older_keys, newer_keys
            merged_rows = np.empty(keys.size, dtype=np.result_type(older_rows, newer_rows))
            merged_rows[old_at], merged_rows[new_at] = older_rows, newer_rows
            runs.append((keys, merged_rows))


def _fixed(values: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """Each (non-null) text value as its UTF-8 bytes and ``_END``, NUL-padded to the
    longest (numpy ``S`` strings), and each value's length in bytes."""
    array = values.to_arrow().cast("large_binary")
    n = len(array)
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[array.offset:array.offset + n + 1]
    lengths = np.diff(offsets)
    width = int(lengths.max()) + 1 if n else 1
    table = np.zeros((n, width), dtype=np.uint8)
    if n:
        data = np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0]:offsets[-1]] \
            if data_buffer is not None else np.zeros(0, dtype=np.uint8)
        row = np.repeat(np.arange(n, dtype=np.int64), lengths)
        column = np.arange(data.size, dtype=np.int64) - np.repeat(offsets[:-1] - offsets[0],
                                                                  lengths)
        table[row, column] = data
        table[np.arange(n), lengths] = _END
    return table.view(f"S{width}").reshape(n), lengths


class _FrameRuns:
    """Per partition, runs of (value, row) as polars frames sorted by value."""

    def __init__(self) -> None:
        self._parts: list[list[pl.DataFrame]] = [[] for _ in range(PARTITIONS)]

    def size(self) -> int:
        return sum(run.height for runs in self._parts for run in runs)

    def find(self, part: int, values: pl.Series) -> tuple[np.ndarray, np.ndarray]:
        found_at: list[np.ndarray] = []
        found_rows: list[np.ndarray] = []
        for run in self._parts[part]:
            keys = run[_VALUE]
            pos = keys.search_sorted(values, side="left")
            inside = (pos < run.height).to_numpy()
            at = np.flatnonzero(inside)
            pos_in = pos.filter(pos < run.height)
            hit = (keys.gather(pos_in) == values.filter(pos < run.height)).to_numpy()
            found_at.append(at[hit])
            found_rows.append(run[FIRST_ROW].gather(pos_in).to_numpy()[hit])
        if not found_at:
            return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.uint64)
        return np.concatenate(found_at), np.concatenate(found_rows)

    def add(self, part: int, values: pl.Series, rows: np.ndarray) -> None:
        runs = self._parts[part]
        runs.append(pl.DataFrame({_VALUE: values, FIRST_ROW: pl.Series(rows, dtype=pl.UInt64)})
                    .sort(_VALUE).rechunk())
        while len(runs) > 1 and runs[-2].height <= 2 * runs[-1].height:
            newer = runs.pop()
            older = runs.pop()
            # values are distinct across runs (a value already held is never added)
            runs.append(older.merge_sorted(newer, key=_VALUE).rechunk())
