"""The unique-value index of the batched path answers exactly as a dict would."""

from __future__ import annotations

import random

import polars as pl
import pytest

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
    assert max(len(runs) for runs in index._parts) < 10


def test_values_that_differ_only_slightly_are_not_duplicates() -> None:
    # near-equal spellings land in different places of a sorted run: only equality counts
    _check([["AB", "ab", "A B"], ["AB ", "a", "AB", "ab"], ["", "A", "B"]], pl.String())


def test_a_batch_is_not_compared_with_every_partition() -> None:
    index = KeyIndex(pl.Int64())
    values = pl.Series("v", range(10_000), dtype=pl.Int64)
    index.add(values, 1, pl.Series([None] * 10_000, dtype=pl.UInt64))
    used = sum(1 for runs in index._parts if runs)
    assert used == PARTITIONS  # spread over every partition, each a fraction of the index
    assert max(run.height for runs in index._parts for run in runs) < 10_000 / PARTITIONS * 2
