"""The unique-value index of the batched path answers exactly as a dict would."""

from __future__ import annotations

import random

import polars as pl
import pytest

from ingest.stream import keyindex
from ingest.stream.keyindex import PARTITIONS, KeyIndex


def _check(batches: list[list[object]], dtype: pl.DataType) -> KeyIndex:
    index = KeyIndex(dtype)
    first: dict[object, int] = {}
    row = 1
    for batch in batches:
        values = pl.Series("v", batch, dtype=dtype)
        earlier = index.earlier(values)
        assert earlier.to_list() == [first.get(v) if v is not None else None for v in batch]
        index.add(values, row, earlier)
        for i, v in enumerate(batch):
            if v is not None and v not in first:
                first[v] = row + i
        row += len(batch)
    assert index.size == len(first)
    return index


@pytest.mark.parametrize("dtype", [pl.String(), pl.Int64()])
def test_every_answer_is_the_first_row_of_an_exactly_equal_value(dtype: pl.DataType) -> None:
    rng = random.Random(7)
    pool: list[object] = [f"K{i:05d}" for i in range(3_000)] if dtype == pl.String() \
        else list(range(-1_500, 1_500))
    batches = [[rng.choice(pool) if rng.random() > 0.05 else None
                for _ in range(rng.randint(0, 400))] for _ in range(40)]
    index = _check(batches, dtype)
    # merged LSM-style: a handful of runs per partition, not one per batch
    assert max(len(runs) for runs in index._runs._parts) < 10  # type: ignore[attr-defined]


def test_values_that_differ_only_slightly_are_not_duplicates() -> None:
    # near-equal spellings land in different places of a sorted run: only equality counts
    _check([["AB", "ab", "A B"], ["AB ", "a", "AB", "ab"], ["", "A", "B"]], pl.String())


def test_a_batch_is_not_compared_with_every_partition() -> None:
    index = KeyIndex(pl.Int64())
    values = pl.Series("v", range(10_000), dtype=pl.Int64)
    index.add(values, 1, pl.Series([None] * 10_000, dtype=pl.UInt64))
    parts = index._runs._parts  # type: ignore[attr-defined]
    assert sum(1 for runs in parts if runs) == PARTITIONS  # each a fraction of the index
    assert max(run.height for runs in parts for run in runs) < 10_000 / PARTITIONS * 2


@pytest.mark.parametrize("partitions", [1, PARTITIONS])
def test_text_held_compactly_is_still_exact(partitions: int,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # one partition: values that differ only in trailing bytes meet in the same runs
    monkeypatch.setattr(keyindex, "PARTITIONS", partitions)
    # trailing NUL bytes, the empty string, non-ASCII text, and widths that differ
    # from batch to batch (a run's padding must never make two values equal, nor a
    # longer value cut to a run's width)
    tricky = ["a", "a\x00", "a\x00\x00", "", "\x00", "é", "e\u0301", "a" * 40, "a" * 39,
              "\x01", "a\x01", "zz", "abc\x01\x00z"]
    rng = random.Random(3)
    batches = [rng.sample(tricky, k=rng.randint(1, 5)) + [f"id{rng.randint(0, 60)}"]
               for _ in range(30)]
    batches[:0] = [[None, "a"], ["abc"], ["a\x00", "abc\x01\x00z"]]
    _check(batches, pl.String())


def test_text_rows_are_held_in_four_bytes() -> None:
    index = KeyIndex(pl.String())
    values = pl.Series("v", [f"{i:010d}" for i in range(5_000)])
    index.add(values, 1, pl.Series([None] * 5_000, dtype=pl.UInt64))
    runs = [run for runs in index._runs._parts for run in runs]  # type: ignore[attr-defined]
    assert sum(keys.nbytes + rows.nbytes for keys, rows in runs) == 5_000 * (11 + 4)
