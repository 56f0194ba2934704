"""A dataset declared once: a pandera ``DataFrameModel`` whose fields say everything.

Each field of the model is one clean column. Pandera's own parts say what pandera
already knows how to say; the field's ``metadata`` says the rest, the settings of
:class:`ingest.schema.Column` (its keys are ``Column``'s field names)::

    import pandera.polars as pa
    import polars as pl
    from datetime import date

    from ingest.declare import dataset

    class Cases(pa.DataFrameModel):
        case_id: str = pa.Field(str_matches=r"^[0-9]{10}$", unique=True,
                                metadata={"source": "CASE_ID", "width": 10})
        sex: pl.Categorical = pa.Field(isin=["F", "M", "X", "U"],
                                       metadata={"source": "SEX"})
        birth_date: pl.Date = pa.Field(metadata={"source": "DOB", "policy": "restrict",
                                                 "earliest": date(1900, 1, 1)})
        report_date: pl.Date = pa.Field(metadata={"source": "RPT_DT", "latest": "delivery"})
        stay_days: pl.Int64 = pa.Field(nullable=True, metadata={"source": "LOS"})

        @pa.dataframe_check
        @classmethod
        def birth_date_not_after_report_date(cls, data):
            return data.lazyframe.select(
                pl.col("birth_date").is_null() | pl.col("report_date").is_null()
                | (pl.col("birth_date") <= pl.col("report_date")))

    DATASET = dataset(Cases, name="cases", version="1", table="CASES")

What comes from where:

- **name**: the field's name (or its pandera ``alias``), the column's name in every output;
- **kind**: the annotation (:data:`ANNOTATIONS`): ``str``/``pl.Utf8`` string,
  ``pl.Categorical`` category, ``pl.Float64`` float, ``pl.Boolean`` bool, ``pl.Date``
  date, ``pl.Int64`` integer, ``pl.Decimal`` decimal, ``pl.Datetime`` datetime,
  ``pl.Time`` time. Any other type is refused. A category's clean values are text,
  so the rules see it as ``pl.Utf8``; each kind's clean type is what the rules check;
- **nullable**: ``pa.Field(nullable=True)`` (``Optional[...]`` means "may be
  missing" to pandera, which a delivery's column may not be, so it is refused);
- **source** (required), **policy**, **width**, **date_formats**, **earliest**,
  **latest**, **precision**, **scale**, **timezone**, ...: ``metadata`` (a decimal's
  precision and scale, or a datetime's UTC zone, may be written in the annotation
  instead: ``Annotated[pl.Decimal, 10, 2]``, but not both ways differently);
- **rules**: the field's checks (``str_matches``, ``isin``, ``ge``, ... named as pandera
  names them, so quarantine reasons read ``case_id:str_matches``), the model's
  ``@pa.dataframe_check`` methods (a reason named after the method), and the date
  range each column declares (``earliest``/``latest``, ``minimum``/``maximum``;
  ``latest="delivery"`` closes it at each delivery's date, so the rules are built
  per delivery);
- **unique**: ``pa.Field(unique=True)`` or ``dataset(..., unique=(...))``: a repeat is
  quarantined as ``<column>:duplicate`` and the first occurrence kept (unlike
  pandera's own ``unique``, which would fail every copy);
- the model's ``Config`` is not read: ingest builds the clean table itself, every
  declared column in order and no other (pandera's ``strict`` and ``ordered``);
- what is the dataset's, not a column's (``name``, ``version``, ``table``,
  ``features``, ``derive``, ``encodings``, ``null_tokens``): :func:`dataset`'s arguments.

A model that cannot be read this way (no source, an unknown metadata key, a type no
kind maps to) is refused when the schema module is imported, with a message naming
the field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from datetime import date
from typing import TYPE_CHECKING, Any

import polars as pl

from . import kinds
from .errors import UsageError
from .schema import Column, Dataset, Features, Kind

if TYPE_CHECKING:
    import pandera.polars as pa

ANNOTATIONS: dict[type[pl.DataType], Kind] = {
    pl.String: "string",
    pl.Categorical: "category",
    pl.Float64: "float",
    pl.Boolean: "bool",
    pl.Date: "date",
    pl.Int64: "integer",
    pl.Decimal: "decimal",
    pl.Datetime: "datetime",
    pl.Time: "time",
}
"""The annotation's polars type -> the column's kind."""

_SPELLED = ("str (or pl.Utf8), pl.Categorical, pl.Float64, pl.Boolean, pl.Date, "
            "pl.Int64, pl.Decimal, pl.Datetime, pl.Time")
_DERIVED = {
    "name": "the name is the field's own (or its pa.Field alias)",
    "kind": "the kind comes from the field's type annotation",
    "nullable": "declare it as pa.Field(nullable=True)",
}
METADATA_KEYS = tuple(f.name for f in dataclasses.fields(Column) if f.name not in _DERIVED)
"""The keys a field's ``metadata`` may hold: ``Column``'s settings."""


def dataset(model: type[pa.DataFrameModel], *, name: str, version: str,
            table: str | None = None, unique: Iterable[str] = (),
            features: Features | None = None, derive: Callable | None = None,
            encodings: tuple[str, ...] | None = None,
            null_tokens: tuple[str, ...] | None = None) -> Dataset:
    """The :class:`Dataset` a model declares: its columns and its rules, from one list.

    ``unique`` adds to the fields declared ``unique=True``; ``encodings`` and
    ``null_tokens`` default to :class:`Dataset`'s.
    """
    base = _schema(model)
    columns = tuple(_column(model, field, spec) for field, spec in base.columns.items())
    names = [c.name for c in columns]
    unique_columns = tuple(dict.fromkeys(
        [field for field, spec in base.columns.items() if spec.unique] + list(unique)))
    features = features or Features()
    _known(model, names, "unique", unique_columns)
    for part in ("labels", "categorical", "numeric"):
        _known(model, names, f"features.{part}", getattr(features, part))
    base = base.update_columns({
        c.name: {"dtype": clean_dtype(c), "unique": False} for c in columns})
    rules = _Rules(base, columns, name)
    options: dict[str, Any] = {}
    if encodings is not None:
        options["encodings"] = tuple(encodings)
    if null_tokens is not None:
        options["null_tokens"] = tuple(null_tokens)
    return Dataset(name=name, version=version, columns=columns, rules=rules, table=table,
                   unique=unique_columns, features=features, derive=derive, **options)


def annotation_kind(dtype: Any) -> Kind | None:
    """The kind a pandera (polars engine) dtype declares; None if no kind maps to it."""
    polars_type = getattr(dtype, "type", None)
    # pandera keeps some types as polars classes (String), others as instances
    if isinstance(polars_type, pl.DataType):
        polars_type = polars_type.base_type()
    return ANNOTATIONS.get(polars_type) if isinstance(polars_type, type) else None


def clean_dtype(column: Column) -> pl.DataType:
    """The polars type of a column's clean values (what its rules check)."""
    return kinds.kind_of(column).dtype(column)


class _Rules:
    """``Dataset.rules``: the model's pandera schema, closed at a delivery's date."""

    def __init__(self, base: pa.DataFrameSchema, columns: tuple[Column, ...],
                 name: str) -> None:
        import pandera.polars as pa

        # ingest builds the clean table itself, every column in the declared order
        self._base = pa.DataFrameSchema(base.columns, checks=base.checks, strict=True,
                                        ordered=True, name=name)
        self._columns = columns

    def __call__(self, delivery_date: date) -> pa.DataFrameSchema:
        # the declared ranges (dates, integer bounds) are each column's own rule
        ranges = {c.name: check for c in self._columns
                  if (check := c.range_check(delivery_date)) is not None}
        if not ranges:
            return self._base
        return self._base.update_columns({
            name: {"checks": [*self._base.columns[name].checks, check]}
            for name, check in ranges.items()})


def _schema(model: type[pa.DataFrameModel]) -> pa.DataFrameSchema:
    import pandera.errors
    import pandera.polars as pa

    if not (isinstance(model, type) and issubclass(model, pa.DataFrameModel)):
        raise UsageError("a dataset is declared by a pandera.polars.DataFrameModel class")
    try:
        return model.to_schema()
    except (pandera.errors.SchemaInitError, TypeError, ValueError) as exc:
        # pandera's message names the field and its annotation, never data
        raise UsageError(f"schema model {model.__name__}: {exc}") from None


def _column(model: type, field: str, spec: Any) -> Column:
    where = f"schema model {model.__name__}, field '{field}'"
    kind = annotation_kind(spec.dtype)
    if kind is None:
        raise UsageError(f"{where}: its type {spec.dtype} is not one ingest reads; "
                         f"annotate it with one of {_SPELLED}")
    if spec.regex:
        raise UsageError(f"{where}: a regex name stands for several columns; declare "
                         "each column of the delivery as its own field")
    if not spec.required:
        raise UsageError(f"{where}: Optional[...] makes a column one a delivery may leave "
                         "out; a delivery holds every column: for empty values declare "
                         "pa.Field(nullable=True)")
    metadata = dict(spec.metadata or {})
    for key in metadata:
        if key in _DERIVED:
            raise UsageError(f"{where}: metadata '{key}' is not set there: {_DERIVED[key]}")
        if key not in METADATA_KEYS:
            raise UsageError(f"{where}: unknown metadata key '{key}'; the keys are "
                             f"{', '.join(METADATA_KEYS)}")
    metadata.update(_from_type(spec.dtype.type, metadata, where))
    source = metadata.pop("source", None)
    if not isinstance(source, str) or not source.strip():
        raise UsageError(f"{where}: no source name; add metadata={{'source': "
                         "'<its header in the delivery>'}")
    # lists read as tuples, so a Column stays hashable and equal to a hand-built one
    settings: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                                for k, v in metadata.items()}
    return Column(source, field, kind, nullable=bool(spec.nullable), **settings)


def _from_type(dtype: Any, metadata: dict[str, Any], where: str) -> dict[str, Any]:
    """Settings a parametrised annotation declares (``Annotated[pl.Decimal, 10, 2]``),
    checked against the metadata so a setting is never declared twice, differently."""
    declared: dict[str, Any] = {}
    if isinstance(dtype, pl.Decimal) and (dtype.precision, dtype.scale) != (28, 0):
        # pandera's bare pl.Decimal is (28, 0): anything else was written in the type
        declared = {"precision": dtype.precision, "scale": dtype.scale}
    elif isinstance(dtype, pl.Datetime):
        if dtype.time_unit != "us":
            raise UsageError(f"{where}: ingest keeps datetimes in microseconds; annotate "
                             "pl.Datetime (or Annotated[pl.Datetime, 'us', 'UTC'])")
        if dtype.time_zone not in (None, kinds.UTC):
            raise UsageError(f"{where}: zone-aware values are kept in UTC; annotate "
                             "Annotated[pl.Datetime, 'us', 'UTC'] and declare the zone naive "
                             "values are read in as metadata 'timezone'")
        if dtype.time_zone and "timezone" not in metadata:
            declared = {"timezone": dtype.time_zone}
    for key, value in declared.items():
        if key in metadata and metadata[key] != value:
            raise UsageError(f"{where}: its type declares {key} {value}, its metadata "
                             f"{metadata[key]}; declare it once")
    return declared


def _known(model: type, names: list[str], part: str, wanted: Iterable[str]) -> None:
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise UsageError(f"schema model {model.__name__}: {part} names "
                         f"{', '.join(unknown)}, not a field of the model")


__all__ = ["ANNOTATIONS", "METADATA_KEYS", "annotation_kind", "clean_dtype", "dataset"]
