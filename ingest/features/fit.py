"""Fitting an :class:`Encoding`, part by part: what it needs is kept, never the rows.

A table fitted in parts, one after the other, gives the encoding of the whole
table fitted at once: the vocabularies are sorted sets of the values met, the
indicators say whether a null was met, label classes are sorted sets, and the
scaling comes from exact sums (:mod:`.exact`), the same whatever the parts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from ..schema import Dataset
from .codes import distinct_strings
from .encoding import CategoricalSpec, Encoding, LabelKind, LabelSpec, NumericSpec
from .exact import Moments


@dataclass(frozen=True)
class Prepared:
    """A table's feature columns made ready once, for fitting and for encoding: text
    categories as ``Categorical``, each numeric or derived column as float64 values
    (0 where missing) and its missing mask."""

    table: pl.DataFrame
    numbers: dict[str, tuple[np.ndarray, np.ndarray]]

    @property
    def height(self) -> int:
        return self.table.height


class Fitting:
    """The encoding of every part added so far."""

    def __init__(self, dataset: Dataset, scaled: set[str]) -> None:
        spec = dataset.features
        self._dataset = dataset
        self._scaled = scaled
        self._nullable = {c.name: c.nullable for c in dataset.columns}
        self._categories: dict[str, set[str]] = {name: set() for name in spec.categorical}
        self._category_nulls = dict.fromkeys(spec.categorical, False)
        self._missing = dict.fromkeys((*spec.numeric, *spec.derived), False)
        self._moments = {name: Moments() for name in scaled}
        self._label_kinds: dict[str, LabelKind] = {}
        self._classes: dict[str, set[str]] = {name: set() for name in spec.labels}

    def add(self, part: Prepared) -> None:
        for name in self._categories:
            series = part.table[name]
            self._categories[name].update(distinct_strings(series))
            self._category_nulls[name] |= series.null_count() > 0
        for name in self._missing:
            x, missing = part.numbers[name]
            self._missing[name] |= bool(missing.any())
            if name in self._moments:
                self._moments[name].add(x[~missing])
        for name in self._classes:
            series = part.table[name]
            self._label_kinds[name] = _label_kind(series)
            if self._label_kinds[name] == "category":
                self._classes[name].update(series.drop_nulls().unique().cast(pl.String)
                                           .to_list())

    def encoding(self) -> Encoding:
        spec = self._dataset.features
        categorical = tuple(
            CategoricalSpec(name, tuple(sorted(values)),
                            null_indicator=self._nullable.get(name, True)
                            or self._category_nulls[name])
            for name, values in self._categories.items())
        numeric = []
        for name, is_derived in [*((c, False) for c in spec.numeric),
                                 *((c, True) for c in spec.derived)]:
            moments = self._moments.get(name)
            std = moments.std() if moments is not None else 0.0
            numeric.append(NumericSpec(
                name, is_derived,
                missing_indicator=is_derived or self._nullable.get(name, True)
                or self._missing[name],
                scaled=moments is not None,
                mean=moments.mean() if moments is not None else 0.0,
                scale=(std if std > 0 else 1.0) if moments is not None else 1.0))
        labels = tuple(_label(name, self._label_kinds.get(name, "float"), self._classes[name])
                       for name in spec.labels)
        return Encoding(self._dataset.name, self._dataset.version, categorical,
                        tuple(numeric), labels)


def _label_kind(series: pl.Series) -> LabelKind:
    if series.dtype == pl.Boolean:
        return "bool"
    if series.dtype.is_numeric():
        return "float"
    return "category"


def _label(name: str, kind: LabelKind, classes: set[str]) -> LabelSpec:
    if kind == "bool":
        return LabelSpec(name, "bool", (False, True))
    if kind == "float":
        return LabelSpec(name, "float")
    return LabelSpec(name, "category", tuple(sorted(classes)))
