"""Validation of one record batch, with uniqueness kept exact across batches.

Each batch goes through the very steps of :func:`ingest.validate.validate`
(parsers, the pandera rules, the split), and a :class:`KeyIndex` per unique
column remembers every value accepted or seen before with the row it first
appeared on: a value met again in a later batch is quarantined as a duplicate
naming that row, exactly as when the whole table is validated at once (first
occurrence wins).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import polars as pl

from ..errors import guard
from ..readers import SourceTable
from ..schema import Dataset
from ..validate import (  # the same steps, batch by batch
    FIRST_ROW,
    ROW,
    ValidationResult,
    _merged,
    _rule_failures,
    _split,
)
from ..validate.coerce import coerce
from .keyindex import KeyIndex
from .rowwise import require_row_wise


class BatchValidator:
    """Validates batch after batch; rows are numbered from the member's first data row."""

    def __init__(self, dataset: Dataset, delivery_date: date) -> None:
        # a rule that answers for the whole table would answer for each batch instead
        require_row_wise(dataset, delivery_date)
        self._dataset = dataset
        self._date = delivery_date
        self._indexes: dict[str, KeyIndex] = {}
        self.rows = 0

    def validate(self, source: SourceTable) -> ValidationResult:
        with guard("validation"):
            return self._validate(source)

    def _validate(self, source: SourceTable) -> ValidationResult:
        dataset = self._dataset
        offset = self.rows
        clean, parse_failures, repairs = coerce(source.frame, dataset, None, self._date)
        flags = _rule_failures(clean, dataset, self._date, parse_failures)
        earlier = {u: self._index(u, clean).earlier(clean[u]) for u in dataset.unique}
        flags = flags.hstack([
            (clean[u].is_not_null() & (~clean[u].is_first_distinct()
                                       | earlier[u].is_not_null())).alias(f"{u}:duplicate")
            for u in dataset.unique])
        result = _split(source, clean, flags, replace(dataset, unique=()))
        quarantined = result.quarantined.with_columns(pl.col(ROW) + offset)
        if dataset.unique:
            quarantined = quarantined.with_columns(
                self._first_rows(clean, flags, result.quarantined[ROW], earlier, offset))
        for u in dataset.unique:
            self._indexes[u].add(clean[u], offset + 1, earlier[u])
        self.rows += clean.height
        return replace(result, quarantined=quarantined,
                       repairs=_merged(source.repairs, repairs))

    def _index(self, column: str, clean: pl.DataFrame) -> KeyIndex:
        if column not in self._indexes:
            self._indexes[column] = KeyIndex(clean.schema[column])
        return self._indexes[column]

    def _first_rows(self, clean: pl.DataFrame, flags: pl.DataFrame, rows: pl.Series,
                    earlier: dict[str, pl.Series], offset: int) -> pl.Series:
        """As :func:`ingest.validate._first_rows`, the row a repeated value first
        appeared on: in an earlier batch if it did, else in this one."""
        at = (rows - 1).cast(pl.Int64)
        per_column = []
        for u in self._dataset.unique:
            repeat = flags[f"{u}:duplicate"].gather(at)
            values = clean[u].gather(at)
            here = (clean.select(u).with_row_index(ROW, offset=offset + 1)
                    .filter(pl.col(u).is_in(values.filter(repeat).unique().implode()))
                    .group_by(u).agg(pl.col(ROW).min().cast(pl.UInt64).alias(FIRST_ROW)))
            in_batch = values.to_frame().join(here, on=u, how="left",
                                              maintain_order="left")[FIRST_ROW]
            before = earlier[u].gather(at)
            per_column.append(pl.when(repeat).then(pl.coalesce(before, in_batch)))
        return pl.select(pl.coalesce(per_column).alias(FIRST_ROW)).to_series()
