"""Whether a schema's rules may be checked a record batch at a time.

A rule gives each row the answer it gets in the whole table only if the answer
depends on that row alone: a check that reduces a column to one value (a mean,
``unique_values_eq``), a dataframe check that compares a row with an aggregate,
or pandera's own uniqueness would answer differently on each batch. Such a
schema is refused by the batched path (:class:`WholeTable`, a :class:`Fallback`)
and the delivery is read whole, with a warning naming the schema and the rule.

A rule is known to be row-wise when it is one of pandera's builtins that compare
a value with constants, an ``element_wise`` check, or a custom check whose polars
query (built on an empty frame, never on data) is a selection of expressions made
only of columns, constants and element-wise operations. Anything else, or
anything this module cannot read, counts as whole-table: the in-memory path is
always right, only slower. A derived feature's expression is judged the same
way: a mean or a window over a batch would be the batch's, not the table's.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from datetime import date
from typing import TYPE_CHECKING, Any

import polars as pl

from ..kinds import kind_of
from ..schema import Dataset
from .tables import Fallback

if TYPE_CHECKING:
    import pandera.polars as pa

ROW_WISE_BUILTINS = frozenset({
    "equal_to", "not_equal_to", "greater_than", "greater_than_or_equal_to", "less_than",
    "less_than_or_equal_to", "in_range", "isin", "notin", "str_matches", "str_contains",
    "str_startswith", "str_endswith", "str_length"})
"""pandera's polars builtins that compare each value with constants
(``unique_values_eq``, the other one, reduces the column)."""

_BOOLEAN = frozenset({
    "Not", "IsNull", "IsNotNull", "IsNan", "IsNotNan", "IsFinite", "IsInfinite",
    "AnyHorizontal", "AllHorizontal", "IsBetween", "IsIn"})
"""polars boolean functions of one row's values (``is_unique``, ``any``, ... are not)."""
_STRING = frozenset({
    "Contains", "StartsWith", "EndsWith", "LenBytes", "LenChars", "Lowercase", "Uppercase",
    "StripChars", "StripCharsStart", "StripCharsEnd", "StripPrefix", "StripSuffix",
    "Slice", "Head", "Tail", "Replace", "CountMatches", "Extract", "ZFill", "PadStart",
    "PadEnd", "Strptime", "ToInteger", "ToDecimal", "Reverse", "Titlecase"})
_FUNCTIONS = frozenset({"FillNull", "Abs", "Negate", "Round", "Floor", "Ceil", "Clip",
                        "Coalesce", "Pow", "Sqrt", "Sign"})
_TEMPORAL = frozenset({
    "Year", "IsoYear", "Quarter", "Month", "Week", "WeekDay", "Day", "OrdinalDay",
    "Hour", "Minute", "Second", "Millisecond", "Microsecond", "Nanosecond", "IsLeapYear",
    "Date", "Time", "Truncate", "OffsetBy", "MonthStart", "MonthEnd", "TotalDays",
    "TotalHours", "TotalMinutes", "TotalSeconds", "TotalMilliseconds", "TotalMicroseconds",
    "TotalNanoseconds"})
_WRAPPERS = {"Cast": ("expr",), "Ternary": ("predicate", "truthy", "falsy")}


class WholeTable(Fallback):
    """A schema rule answers for the whole table, not row by row: read it whole.
    Its one argument is the run's warning (names only, never a value)."""


def require_row_wise(dataset: Dataset, delivery_date: date) -> None:
    """Raise :class:`WholeTable` (nothing read or written yet) unless every rule of
    the dataset's schema for this delivery, and every derived feature, is known to
    be row-wise."""
    rule = whole_table_rule(dataset, delivery_date)
    if rule is not None:
        raise WholeTable(
            f"schema {dataset.name}: rule {rule} may depend on the whole table, not on "
            "each row alone, so the delivery is read whole rather than in record batches")
    feature = whole_table_derived(dataset)
    if feature is not None:
        raise WholeTable(
            f"schema {dataset.name}: the derived feature {feature} may depend on other rows "
            "than its own, so the delivery is read whole rather than in record batches")


def whole_table_rule(dataset: Dataset, delivery_date: date) -> str | None:
    """The first rule of the schema not known to be row-wise (named as quarantine
    reasons name it), or None."""
    schema = dataset.rules(delivery_date)
    probe = _probe(dataset)
    for rule, check, key in _rules(schema):
        if check is None or not _row_wise(check, probe, key):
            return rule
    return None


def whole_table_derived(dataset: Dataset) -> str | None:
    """The first derived feature whose expression is not known to be row-wise (a
    mean, a window: on a batch it would be the batch's), or None."""
    if not dataset.features.derived or dataset.derive is None:
        return None
    exprs = dataset.derive()
    probe = _probe(dataset)
    for name in dataset.features.derived:
        if name in exprs and not _lazy_row_wise(probe.select(exprs[name].alias(name))):
            return name
    return None


def _probe(dataset: Dataset) -> pl.LazyFrame:
    """An empty frame of the clean columns: queries are built on it, never on data."""
    return pl.LazyFrame(schema={c.name: kind_of(c).dtype(c) for c in dataset.columns})


def _rules(schema: pa.DataFrameSchema) -> Iterator[tuple[str, Any, str]]:
    """Each rule with its pandera check (None: a rule that is whole-table as such)."""
    if getattr(schema, "unique", None):
        yield "unique (pandera's, of the schema)", None, "*"
    if getattr(schema, "parsers", None):
        yield "parsers (of the schema)", None, "*"
    for name, column in schema.columns.items():
        if getattr(column, "unique", False):
            yield f"{name}:unique (pandera's own, not the dataset's unique)", None, name
        if getattr(column, "parsers", None):
            yield f"{name}:parsers", None, name
        for check in column.checks:
            yield f"{name}:{check.name}", check, name
    for check in schema.checks:
        yield str(check.name), check, "*"


def _row_wise(check: Any, probe: pl.LazyFrame, key: str) -> bool:
    from pandera.api.checks import Check

    if getattr(check, "groupby", None) is not None or getattr(check, "groups", None) \
            or getattr(check, "n_failure_cases", None) is not None:
        return False  # grouped, or only the first failures reported: whole-table
    if check.element_wise:
        return True  # pandera calls it on one value (or one row) at a time
    name = check.name
    if name in ROW_WISE_BUILTINS and Check.is_builtin_check(name) \
            and _polars_builtin(check._check_fn, Check.get_builtin_check_fn(name)):
        return True
    return _query_row_wise(check, probe, key)  # a custom check, whatever its name


def _polars_builtin(fn: Any, builtin: Any) -> bool:
    """Whether ``fn`` dispatches to pandera's own builtin functions, not a custom
    check that took a builtin's name (a schema's copy holds a copy of the
    dispatcher, with the very same functions)."""
    own = getattr(builtin, "_function_registry", {})
    mine = getattr(fn, "_function_registry", {})
    # the builtin's dispatcher gains a function per backend imported later (pandas)
    return bool(mine) and all(any(f is g for g in own.values()) for f in mine.values())


def _query_row_wise(check: Any, probe: pl.LazyFrame, key: str) -> bool:
    """Whether the check's polars query, built on an empty frame, is row-wise."""
    from pandera.api.polars.types import PolarsData

    try:
        out = check._check_fn(PolarsData(probe, key), **check._check_kwargs)
    except Exception:  # noqa: BLE001 - unreadable counts as whole-table
        return False
    # a bool is an answer for the whole table
    return isinstance(out, pl.LazyFrame) and _lazy_row_wise(out)


def _lazy_row_wise(query: pl.LazyFrame) -> bool:
    """Whether ``query``'s plan keeps the rows one to one, each from its own row."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # polars calls its JSON form unstable
            plan = json.loads(query.serialize(format="json"))
    except Exception:  # noqa: BLE001 - unreadable counts as whole-table
        return False
    return _plan_row_wise(plan)


def _plan_row_wise(node: Any) -> bool:
    """A selection (or added columns) straight over the probe, each expression
    row-wise and reading at least one column."""
    if not isinstance(node, dict) or len(node) != 1:
        return False
    kind, body = next(iter(node.items()))
    if kind == "DataFrameScan":
        return True
    if kind == "Select":
        exprs = body.get("expr")
    elif kind == "HStack":
        exprs = body.get("exprs")
    else:
        return False  # a filter, join, sort, slice, group_by...: rows are not kept one to one
    return (isinstance(exprs, list) and bool(exprs)
            and all(_expr_row_wise(e) and _reads_column(e) for e in exprs)
            and _plan_row_wise(body.get("input")))


def _expr_row_wise(expr: Any) -> bool:
    if not isinstance(expr, dict) or len(expr) != 1:
        return False
    kind, body = next(iter(expr.items()))
    if kind in ("Column", "Selector"):
        return True
    if kind == "Literal":
        return isinstance(body, dict) and set(body) <= {"Scalar", "Dyn"}  # not a Series
    if kind == "BinaryExpr":
        return _expr_row_wise(body.get("left")) and _expr_row_wise(body.get("right"))
    if kind == "Alias":
        return isinstance(body, list) and bool(body) and _expr_row_wise(body[0])
    if kind in _WRAPPERS:
        return all(_expr_row_wise(body.get(part)) for part in _WRAPPERS[kind])
    if kind == "Function":
        inputs = body.get("input")
        if not isinstance(inputs, list) or not _function_row_wise(body.get("function"),
                                                                  inputs):
            return False
        return all(_expr_row_wise(e) for e in inputs)
    return False  # Agg, Over, Window, Shift, Sort, Gather, AnonymousFunction, Len, ...


def _function_row_wise(function: Any, inputs: list[Any]) -> bool:
    if isinstance(function, str):
        return function in _FUNCTIONS
    if not isinstance(function, dict) or len(function) != 1:
        return False
    group, which = next(iter(function.items()))
    variant = which if isinstance(which, str) else (
        next(iter(which)) if isinstance(which, dict) and len(which) == 1 else None)
    if group == "Boolean":
        if variant == "IsIn":  # membership of constants only, not of another column
            return all(next(iter(e), None) == "Literal" for e in inputs[1:])
        return variant in _BOOLEAN
    if group == "StringExpr":
        return variant in _STRING
    return group == "TemporalExpr" and variant in _TEMPORAL


def _reads_column(expr: Any) -> bool:
    """Whether a column is read: an expression of constants only is one value for
    the whole table."""
    if isinstance(expr, dict):
        return any(k in ("Column", "Selector") or _reads_column(v) for k, v in expr.items())
    if isinstance(expr, list):
        return any(_reads_column(v) for v in expr)
    return False
