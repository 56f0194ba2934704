"""The fitted encoding: what turns a table into matrix columns, as plain JSON.

An :class:`Encoding` is fitted on one delivery and reused on the next ones so
that column ``j`` of every matrix means the same thing: the vocabulary of each
categorical column (in a fixed order, with an ``__unseen__`` bucket for values a
later delivery brings), the scaling of each numeric column, and which columns
carry a missing-value indicator. It holds category spellings (codes such as a
diagnosis code) but never a direct identifier: columns that are pseudonymised,
restricted or dropped are refused as features before anything is fitted.

The JSON is stored inside ``features.json.age``, never in plaintext.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import UsageError

FORMAT = "ingest-encoding/1"
UNSEEN = "__unseen__"
"""The bucket of a categorical column for values its vocabulary lacks."""
NULL = "null"
"""Suffix of a categorical column's null indicator (``<col>=null``)."""
MISSING = "missing"
"""Suffix of a numeric column's missing indicator (``<col>:missing``)."""

LabelKind = Literal["bool", "category", "float"]


@dataclass(frozen=True)
class CategoricalSpec:
    """One categorical column: ``vocabulary`` then the unseen bucket, then nulls."""

    name: str
    vocabulary: tuple[str, ...]
    null_indicator: bool

    @property
    def width(self) -> int:
        return len(self.vocabulary) + 1 + int(self.null_indicator)

    def feature_names(self) -> list[str]:
        names = [f"{self.name}={v}" for v in self.vocabulary] + [f"{self.name}={UNSEEN}"]
        if self.null_indicator:
            names.append(f"{self.name}={NULL}")
        return names


@dataclass(frozen=True)
class NumericSpec:
    """One numeric column (from the table or derived): value, then missing indicator.

    When ``scaled``, the value is ``(x - mean) / scale`` with the mean and
    scale of the delivery the encoding was fitted on; otherwise it is ``x``.
    A missing value contributes 0 to the value column and 1 to the indicator.
    """

    name: str
    derived: bool
    missing_indicator: bool
    scaled: bool = False
    mean: float = 0.0
    scale: float = 1.0

    @property
    def width(self) -> int:
        return 1 + int(self.missing_indicator)

    def feature_names(self) -> list[str]:
        names = [self.name]
        if self.missing_indicator:
            names.append(f"{self.name}:{MISSING}")
        return names


@dataclass(frozen=True)
class LabelSpec:
    """A label column: booleans become 0/1, categories their index in ``classes``."""

    name: str
    kind: LabelKind
    classes: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Encoding:
    """Everything needed to encode another delivery into the same columns."""

    dataset: str
    version: str
    categorical: tuple[CategoricalSpec, ...] = ()
    numeric: tuple[NumericSpec, ...] = ()
    labels: tuple[LabelSpec, ...] = ()
    feature_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        expected = tuple(self._names())
        if not self.feature_names:
            object.__setattr__(self, "feature_names", expected)
        elif tuple(self.feature_names) != expected:
            raise UsageError("the encoding's feature names do not match its vocabularies "
                             "and numeric columns: it is damaged or was edited by hand")
        if len(set(self.feature_names)) != len(self.feature_names):
            raise UsageError(
                "two features would have the same name: a category value of "
                f"{', '.join(self._clashing())} is spelled like a reserved bucket "
                f"('{UNSEEN}' or '{NULL}') or another feature; rename it in the schema")

    def _names(self) -> list[str]:
        names: list[str] = []
        for cat in self.categorical:
            names.extend(cat.feature_names())
        for num in self.numeric:
            names.extend(num.feature_names())
        return names

    def _clashing(self) -> list[str]:
        seen: set[str] = set()
        columns: list[str] = []
        for spec in self._blocks():
            for name in spec.feature_names():
                if name in seen and spec.name not in columns:
                    columns.append(spec.name)
                seen.add(name)
        return columns or ["a column"]

    def _blocks(self) -> tuple[CategoricalSpec | NumericSpec, ...]:
        return (*self.categorical, *self.numeric)

    @property
    def width(self) -> int:
        """Number of matrix columns."""
        return len(self.feature_names)

    def offsets(self) -> list[int]:
        """First matrix column of each categorical, then each numeric block."""
        out, at = [], 0
        for spec in self._blocks():
            out.append(at)
            at += spec.width
        return out

    # -- JSON ----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "dataset": self.dataset,
            "version": self.version,
            "categorical": [{"name": c.name, "vocabulary": list(c.vocabulary),
                             "null_indicator": c.null_indicator} for c in self.categorical],
            "numeric": [{"name": n.name, "derived": n.derived,
                         "missing_indicator": n.missing_indicator, "scaled": n.scaled,
                         "mean": n.mean, "scale": n.scale} for n in self.numeric],
            "labels": [{"name": lab.name, "kind": lab.kind, "classes": list(lab.classes)}
                       for lab in self.labels],
            "feature_names": list(self.feature_names),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Encoding:
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise UsageError(f"not an encoding in the {FORMAT} format")
        try:
            return cls(
                dataset=str(doc["dataset"]),
                version=str(doc["version"]),
                categorical=tuple(
                    CategoricalSpec(str(c["name"]), tuple(str(v) for v in c["vocabulary"]),
                                    bool(c["null_indicator"])) for c in doc["categorical"]),
                numeric=tuple(
                    NumericSpec(str(n["name"]), bool(n["derived"]), bool(n["missing_indicator"]),
                                bool(n["scaled"]), float(n["mean"]), float(n["scale"]))
                    for n in doc["numeric"]),
                labels=tuple(LabelSpec(str(lab["name"]), lab["kind"], tuple(lab["classes"]))
                             for lab in doc["labels"]),
                feature_names=tuple(str(f) for f in doc["feature_names"]),
            )
        except (KeyError, TypeError, ValueError):
            raise UsageError(f"the encoding is incomplete or damaged ({FORMAT})") from None
