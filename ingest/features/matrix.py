"""Build the sparse training matrix of a cleaned table, column-wise and vectorised.

Every row gets exactly one entry per feature *block*: one per categorical column
(its category, the ``__unseen__`` bucket or the null indicator) and one per
numeric column (its value, or 1 in its missing indicator). So the CSR arrays
can be filled directly, one numpy assignment per column, with ``indptr`` a
plain ``arange``; blocks are laid out in order, which keeps the column indices
of each row sorted without a sort. Values that are exactly 0 are then removed.

Categories are mapped through the table's dictionary codes: only the few
distinct values are looked up in the vocabulary (a Python dict over the
vocabulary, never over rows) and the per-row codes are translated with one
numpy gather through a code -> column table. That is what makes this several
times faster than scikit-learn's ``OneHotEncoder`` on object arrays plus ``hstack``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from ..errors import UsageError
from ..schema import Dataset
from .codes import codes as _codes
from .encoding import CategoricalSpec, Encoding, LabelSpec
from .fit import Fitting, Prepared

_NOT_FEATURES = {"pseudonymise": "pseudonymised", "restrict": "restricted",
                 "drop": "dropped"}


@dataclass
class FeatureMatrix:
    """The matrix, its label(s) and how it was encoded.

    ``X`` is CSR float32 (rows: table rows; columns: ``feature_names``). ``y`` is a
    numpy vector for one label (0/1 for a boolean label, class index for a
    categorical one, float for a numeric one), a CSR int8 matrix (rows x labels)
    for several boolean labels, or None when the dataset declares no label.
    ``class_weight`` is "balanced" (n / (k * count)) keyed by the values in ``y``,
    ready for ``LogisticRegression(class_weight=...)``; for several labels it is
    one such dict per label name.
    """

    X: sp.csr_matrix
    y: np.ndarray | sp.csr_matrix | None
    feature_names: list[str]
    class_weight: dict[Any, Any]
    encoding: Encoding = field(repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.X.shape[0]), int(self.X.shape[1]))

    @property
    def label_names(self) -> list[str]:
        return [lab.name for lab in self.encoding.labels]


def build(table: pl.DataFrame, dataset: Dataset, encoding: Encoding | None = None,
          *, scale: Iterable[str] | None = None) -> FeatureMatrix:
    """The feature matrix of ``table`` (a cleaned table, as ``ingest.load`` returns it).

    Without ``encoding`` the vocabularies and scaling are fitted on ``table``.
    With the encoding of an earlier delivery they are reused, so the columns
    line up: a value the vocabulary lacks goes to ``<col>=__unseen__``, and the
    number and order of columns never change.

    ``scale`` names the numeric or derived columns to standardise (default: the
    dataset's ``features.scale`` if it declares one, else none); it only applies
    when fitting, a reused encoding brings its own scaling.
    """
    check_spec(dataset, encoding)
    _check_columns(table, dataset)
    prepared = prepare(table, dataset)
    if encoding is None:
        fitting = Fitting(dataset, scaled(dataset, scale))
        fitting.add(prepared)
        encoding = fitting.encoding()
    X, label_columns = encode(prepared, encoding)
    y, class_weight = _labels(label_columns, encoding.labels)
    return FeatureMatrix(X, y, list(encoding.feature_names), class_weight, encoding)


def check_spec(dataset: Dataset, encoding: Encoding | None) -> None:
    """The dataset declares features, and ``encoding`` (if any) was fitted for them."""
    spec = dataset.features
    if not (spec.categorical or spec.numeric or spec.derived):
        raise UsageError(f"schema '{dataset.name}' declares no feature columns "
                         "(Features.categorical, numeric or derived)")
    if encoding is not None:
        _check_reuse(encoding, dataset)


def scaled(dataset: Dataset, scale: Iterable[str] | None) -> set[str]:
    """The columns to standardise when fitting (``scale``, else the schema's)."""
    spec = dataset.features
    names = set(getattr(spec, "scale", ()) if scale is None else scale)
    unknown = names - set(spec.numeric) - set(spec.derived)
    if unknown:
        raise UsageError(f"cannot scale {', '.join(sorted(unknown))}: not a numeric or "
                         "derived feature of the schema")
    return names


def prepare(table: pl.DataFrame, dataset: Dataset) -> Prepared:
    spec = dataset.features
    derived = _derived(table, dataset)
    # text columns become categorical once: fitting and encoding then work on codes
    table = table.with_columns(pl.col(c).cast(pl.String).cast(pl.Categorical)
                               for c in spec.categorical
                               if not isinstance(table.schema[c], pl.Categorical | pl.Enum))
    # each numeric column converted once, for fitting and for encoding
    numbers = {name: _numeric(derived[name] if name in derived.columns else table[name], name)
               for name in (*spec.numeric, *spec.derived)}
    return Prepared(table, numbers)


def encode(prepared: Prepared, encoding: Encoding) -> tuple[sp.csr_matrix, list[np.ndarray]]:
    """The rows' matrix, and each label's column (as :func:`_label_vector` makes it).

    Row by row: the rows of a table encoded in parts, one after the other, are
    those of the whole table encoded at once.
    """
    table, numbers = prepared.table, prepared.numbers
    n = table.height
    offsets = encoding.offsets()
    blocks = len(offsets)
    indices = np.empty((n, blocks), dtype=np.int32)
    values = np.ones((n, blocks), dtype=np.float32)
    for j, cat in enumerate(encoding.categorical):
        indices[:, j] = offsets[j] + _category_positions(table[cat.name], cat)
    base = len(encoding.categorical)
    for j, num in enumerate(encoding.numeric, start=base):
        x, missing = numbers[num.name]
        if missing.any() and not num.missing_indicator:
            raise UsageError(f"column {num.name} has missing values but the encoding has no "
                             f"'{num.name}:missing' indicator; build without encoding= to "
                             "fit a new one")
        if num.scaled:
            x = (x - num.mean) / num.scale
        indices[:, j] = offsets[j] + missing
        values[:, j] = np.where(missing, np.float32(1), x.astype(np.float32))

    nnz = n * blocks
    index_dtype = np.int32 if nnz < 2**31 - 1 else np.int64
    X = sp.csr_matrix((values.reshape(-1), indices.reshape(-1),
                       np.arange(0, nnz + 1, blocks, dtype=index_dtype)),
                      shape=(n, encoding.width))
    X.has_sorted_indices = True
    X.eliminate_zeros()
    for lab in encoding.labels:
        if table[lab.name].null_count():
            raise UsageError(f"label {lab.name} has missing values: drop those rows before "
                             "building the matrix")
    return X, [_label_vector(table[lab.name], lab) for lab in encoding.labels]


# -- checks ----------------------------------------------------------------------------

def _check_columns(table: pl.DataFrame, dataset: Dataset) -> None:
    spec = dataset.features
    wanted = [*spec.categorical, *spec.numeric, *spec.labels]
    missing = [c for c in wanted if c not in table.columns]
    if missing:
        raise UsageError(f"the table lacks the feature column(s) {', '.join(missing)}: load it "
                         "with every feature column (ingest.load(path) without columns=)")
    known = {c.name: c for c in dataset.columns}
    for name in (*spec.categorical, *spec.numeric):
        col = known.get(name)
        if col is not None and col.policy in _NOT_FEATURES:
            raise UsageError(
                f"column {name} is {_NOT_FEATURES[col.policy]} by the schema, so it may not "
                "be a feature (its values would reach the feature outputs); declare a coarser "
                "derived feature in the schema's derive() instead")


def _check_reuse(encoding: Encoding, dataset: Dataset) -> None:
    spec = dataset.features
    same = ([c.name for c in encoding.categorical] == list(spec.categorical)
            and [n.name for n in encoding.numeric] == [*spec.numeric, *spec.derived]
            and [lab.name for lab in encoding.labels] == list(spec.labels))
    if encoding.dataset != dataset.name or not same:
        raise UsageError(
            f"the encoding was fitted for schema '{encoding.dataset}' version "
            f"{encoding.version} with other feature columns than schema '{dataset.name}' "
            f"version {dataset.version} declares; build without encoding= to fit a new one")


def _derived(table: pl.DataFrame, dataset: Dataset) -> pl.DataFrame:
    names = dataset.features.derived
    if not names:
        return pl.DataFrame()
    if dataset.derive is None:
        raise UsageError(f"schema '{dataset.name}' declares derived features but no derive()")
    exprs = dataset.derive()
    undefined = [name for name in names if name not in exprs]
    if undefined:
        raise UsageError(f"derived feature(s) {', '.join(undefined)} not defined by "
                         f"derive() of schema '{dataset.name}'")
    try:
        return table.select(**{name: exprs[name] for name in names})
    except pl.exceptions.PolarsError:
        # polars' message may quote values; name the features only
        raise UsageError(f"derived feature(s) {', '.join(names)} could not be computed: the "
                         "table lacks a column they need or has an unexpected type; load "
                         "the table with every column") from None


# -- encoding columns ------------------------------------------------------------------

def _category_positions(series: pl.Series, spec: CategoricalSpec) -> np.ndarray:
    """Per row, the column within the block: vocabulary index, unseen bucket or null."""
    unseen = len(spec.vocabulary)
    if not isinstance(series.dtype, pl.Categorical | pl.Enum):
        series = series.cast(pl.String).cast(pl.Categorical)
    found = _codes(series)
    if found is None:
        return _category_positions_by_search(series, spec)
    row_codes, null, distinct_codes, values = found
    if null.any() and not spec.null_indicator:
        raise UsageError(f"column {spec.name} has missing values but the encoding has no "
                         f"'{spec.name}=null' indicator; build without encoding= to fit a "
                         "new one")
    position = {value: i for i, value in enumerate(spec.vocabulary)}
    table = np.full(int(row_codes.max()) + 1, unseen, dtype=np.int32)
    table[distinct_codes] = [position.get(v, unseen) for v in values]
    mapped = table[row_codes]
    return np.where(null, np.int32(unseen + 1), mapped) if null.any() else mapped


def _category_positions_by_search(series: pl.Series, spec: CategoricalSpec) -> np.ndarray:
    """The same, for a column whose codes come from a very large global dictionary."""
    unseen = len(spec.vocabulary)
    codes = series.to_physical()
    null = codes.is_null().to_numpy()
    if null.any() and not spec.null_indicator:
        raise UsageError(f"column {spec.name} has missing values but the encoding has no "
                         f"'{spec.name}=null' indicator; build without encoding= to fit a "
                         "new one")
    distinct = series.drop_nulls().unique()
    out = np.full(series.len(), unseen + 1, dtype=np.int32)  # the null indicator
    if distinct.len():
        position = {value: i for i, value in enumerate(spec.vocabulary)}
        distinct_codes = distinct.to_physical().to_numpy()
        target = np.fromiter((position.get(v, unseen) for v in distinct.cast(pl.String)),
                             dtype=np.int32, count=distinct.len())
        row_codes = codes.fill_null(0).to_numpy()
        order = np.argsort(distinct_codes)
        at = np.searchsorted(distinct_codes[order], row_codes)
        np.minimum(at, len(order) - 1, out=at)
        out = np.where(null, out, target[order][at])
    return out


def _numeric(series: pl.Series, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Values as float64 (0 where missing) and the missing mask; NaN counts as missing."""
    try:
        floats = series.cast(pl.Float64)
    except pl.exceptions.PolarsError:
        raise UsageError(f"numeric feature {name} is not a number column") from None
    floats = floats.fill_nan(None)
    missing = floats.is_null().to_numpy()
    return floats.fill_null(0.0).to_numpy(), missing


def _labels(columns: list[np.ndarray], labels: tuple[LabelSpec, ...]
            ) -> tuple[np.ndarray | sp.csr_matrix | None, dict[Any, Any]]:
    if not labels:
        return None, {}
    if len(labels) == 1:
        y = columns[0]
        weights = {} if labels[0].kind == "float" else balanced(y)
        return y, weights
    check_multilabel(labels)
    stacked = np.column_stack(columns)
    y = sp.csr_matrix(stacked, dtype=np.int8)
    return y, {lab.name: balanced(stacked[:, i]) for i, lab in enumerate(labels)}


def check_multilabel(labels: tuple[LabelSpec, ...]) -> None:
    if any(lab.kind != "bool" for lab in labels):
        raise UsageError("several labels must all be boolean (a multi-label matrix); "
                         f"{', '.join(lab.name for lab in labels if lab.kind != 'bool')} "
                         "is not")


def _label_vector(series: pl.Series, spec: LabelSpec) -> np.ndarray:
    if spec.kind == "bool":
        if series.dtype != pl.Boolean:
            raise UsageError(f"label {spec.name} was boolean when the encoding was fitted")
        return series.cast(pl.Int8).to_numpy()
    if spec.kind == "float":
        return series.cast(pl.Float64).to_numpy().astype(np.float32)
    cat = CategoricalSpec(spec.name, tuple(str(c) for c in spec.classes), null_indicator=True)
    codes = _category_positions(series, cat)
    if (codes >= len(spec.classes)).any():
        raise UsageError(f"label {spec.name} has a class the encoding does not know; build "
                         "without encoding= to fit a new one")
    return codes


def balanced(y: np.ndarray) -> dict[int, float]:
    """``n / (k * count)`` for each of the k classes present in ``y`` (scikit-learn's
    "balanced"), so the rare class (3 % hospitalised) weighs as much as the common one."""
    if y.size and y.dtype.kind in "iu" and y.min() >= 0:  # class indices: count, no sort
        return balanced_counts(np.bincount(y))
    classes, counts = np.unique(y, return_counts=True)
    return _balanced(classes, counts)


def balanced_counts(counts: np.ndarray) -> dict[int, float]:
    """:func:`balanced` of the labels whose count of each class index is ``counts``."""
    classes = np.flatnonzero(counts)
    return _balanced(classes, counts[classes])


def _balanced(classes: np.ndarray, counts: np.ndarray) -> dict[int, float]:
    n, k = int(counts.sum()), len(classes)
    return {int(c): n / (k * int(m)) for c, m in zip(classes, counts, strict=True)}
