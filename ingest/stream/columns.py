"""The accepted rows' feature columns, kept batch by batch for the feature matrix.

Only the columns the matrix is built from are kept (labels, categorical and
numeric features, and the columns derived features are computed from), text
categories as dictionary codes: a few bytes a row, where the whole table is
hundreds. The matrix is then built from them exactly as from the whole table.
"""

from __future__ import annotations

import polars as pl

from ..schema import Dataset


def feature_sources(dataset: Dataset) -> list[str]:
    """The clean columns the feature matrix reads."""
    spec = dataset.features
    wanted = [*spec.labels, *spec.categorical, *spec.numeric]
    if spec.derived and dataset.derive is not None:
        exprs = dataset.derive()
        for name in spec.derived:
            if name in exprs:
                wanted.extend(exprs[name].meta.root_names())
    names = [c.name for c in dataset.columns]
    return [n for n in dict.fromkeys(wanted) if n in names]


class FeatureColumns:
    def __init__(self, dataset: Dataset) -> None:
        self._columns = feature_sources(dataset)
        self._categorical = set(dataset.features.categorical)
        self._parts: list[pl.DataFrame] = []

    def add(self, accepted: pl.DataFrame) -> None:
        part = accepted.select(self._columns)
        self._parts.append(part.with_columns(
            pl.col(c).cast(pl.String).cast(pl.Categorical) for c in self._columns
            if c in self._categorical and part.schema[c] == pl.String))

    def table(self) -> pl.DataFrame:
        parts, self._parts = self._parts, []
        # the batches' columns side by side, not copied into one piece
        return pl.concat(parts, rechunk=False) if parts else pl.DataFrame()
