"""The kinds of clean column, in one table.

Per kind (:data:`KINDS`): the polars/Arrow type of the clean column and of its
outputs, how source text is parsed, how a typed cell (a spreadsheet's number,
date or boolean; an Access column's value) becomes it, how a workbook column is
loaded, and the quarantine reason of a cell that does not parse. Access column
types map to kinds in :data:`ACCESS_KINDS`.

Every parser is a polars expression over the whole column: no Python runs per
row. Nothing is rounded or guessed: a decimal with more places than declared,
an integer written ``2013.5``, a datetime with an offset in a column declared
naive are each a quarantine reason, never an altered value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Literal

import polars as pl

from .schema import Column, Kind

if TYPE_CHECKING:
    from fastexcel import DType

INTEGER_TYPES = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32,
                 pl.UInt64)
FLOAT_TYPES = (pl.Float32, pl.Float64)
EXACT_FLOAT_INTEGERS = 2**53
"""Below this a float holds every integer, so a whole float is that integer."""
DECIMAL_TEXT = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)$"
UTC = "UTC"
_MIDNIGHT = datetime(2000, 1, 1)
ACCESS_DAY_ZERO = date(1899, 12, 30)


def is_integer_type(dtype: pl.DataType) -> bool:
    return any(dtype == t for t in INTEGER_TYPES)


def is_numeric_type(dtype: pl.DataType) -> bool:
    return is_integer_type(dtype) or any(dtype == t for t in FLOAT_TYPES)


Parser = Callable[[pl.Expr, Column], pl.Expr]
"""Stripped text (Utf8) -> the clean type, null where it does not parse."""
TypedParser = Callable[[pl.Expr, pl.DataType, Column], "pl.Expr | None"]
"""A typed source column -> the clean type; None: this type is read as its text."""
Refusals = Callable[[pl.Expr, Column], dict[str, pl.Expr]]
"""Stripped text -> reason -> true where the value is refused for that reason (more
telling than the kind's general reason, which such rows do not also get)."""


@dataclass(frozen=True)
class KindSpec:
    name: Kind
    dtype: Callable[[Column], pl.DataType]
    """The clean column's type (and the type every output keeps)."""
    reason: str
    """Quarantine reason ``<column>:<reason>`` of a value that does not parse."""
    parse_text: Parser | None
    """None: the kind's text is handled by :mod:`ingest.validate.coerce` itself
    (identifier widths, date formats and two-digit years)."""
    parse_typed: TypedParser = lambda raw, dtype, col: None
    refusals: Refusals | None = None
    excel_load: DType = "string"
    """How a workbook column of this kind is loaded by calamine: ``string`` cells
    are parsed here as text (calamine writes a number cell's shortest spelling)."""
    formats: str | None = None
    """The ``Column`` field of the kind's text formats, tried in order: the first on
    every value, the others only where it failed (few values, in most deliveries)."""
    workbook_text: Callable[[pl.Expr, Column], tuple[pl.Expr, Column]] | None = None
    """A workbook column's text (calamine's spelling of a date or time cell) made
    parseable: the text and the column as the parser then sees them."""
    cell_text: Callable[[pl.Expr, Column], pl.Expr] | None = None
    """A typed workbook cell (of ``excel_load``'s type) spelled so that the kind's
    text parser reads it back exactly: for a column whose other cells are text."""
    output: Callable[[Column], pl.DataType] | None = None
    """The type written out, when not the clean type (categories)."""
    refusal_reasons: tuple[str, ...] = field(default=())


# --- integer ---------------------------------------------------------------------------------

def _integer_text(text: pl.Expr, col: Column) -> pl.Expr:
    # polars takes only optional sign and digits here, and nulls an overflow
    return text.cast(pl.Int64, strict=False)


def _integer_typed(raw: pl.Expr, dtype: pl.DataType, col: Column) -> pl.Expr | None:
    if is_integer_type(dtype):
        return raw.cast(pl.Int64, strict=False)
    if any(dtype == t for t in FLOAT_TYPES):
        number = raw.cast(pl.Float64)
        whole = (number == number.floor()) & (number.abs() < EXACT_FLOAT_INTEGERS)
        return pl.when(whole).then(number.cast(pl.Int64, strict=False))
    if dtype == pl.Boolean:
        return pl.lit(None, pl.Int64)
    return None


# --- decimal ---------------------------------------------------------------------------------

TOO_MANY_PLACES = "decimal_too_many_places"
TOO_MANY_DIGITS = "decimal_too_many_digits"


def _decimal_type(col: Column) -> pl.DataType:
    return pl.Decimal(col.precision, col.scale)


def _places_fit(col: Column) -> str:
    """At most ``scale`` digits after the point, trailing zeros apart (``12.340`` has two)."""
    return rf"^[^.]*(?:\.[0-9]{{0,{col.scale}}}0*)?$"


def _digits_fit(col: Column) -> str:
    """At most ``precision - scale`` digits before the point, leading zeros apart."""
    return rf"^[+-]?0*[0-9]{{0,{col.precision - col.scale}}}(?:\.|$)"


def _decimal_refusals(text: pl.Expr, col: Column) -> dict[str, pl.Expr]:
    spelled = text.str.contains(DECIMAL_TEXT)
    return {TOO_MANY_PLACES: spelled & ~text.str.contains(_places_fit(col)),
            TOO_MANY_DIGITS: spelled & ~text.str.contains(_digits_fit(col))}


def _decimal_text(text: pl.Expr, col: Column) -> pl.Expr:
    # polars' cast truncates extra places: only values that fit exactly are cast
    whole, scale = col.precision - col.scale, col.scale
    fits = text.str.contains(rf"^[+-]?0*[0-9]{{0,{whole}}}(?:\.[0-9]{{0,{scale}}}0*)?$") \
        & text.str.contains("[0-9]")
    return pl.when(fits).then(text.cast(_decimal_type(col), strict=False))


def _decimal_typed(raw: pl.Expr, dtype: pl.DataType, col: Column) -> pl.Expr | None:
    if isinstance(dtype, pl.Decimal) and (dtype.scale or 0) <= col.scale:
        return raw.cast(_decimal_type(col), strict=False)
    if is_integer_type(dtype):
        return _decimal_text(raw.cast(pl.Utf8), col)
    # a float is read by its shortest spelling (what a spreadsheet shows at full
    # precision), never by its binary value: 12.34 stays 12.34
    return None


# --- datetime --------------------------------------------------------------------------------

ZONE_NOT_DECLARED = "datetime_zone_not_declared"
_OFFSET_CODES = ("%z", "%#z", "%:z", "%::z", "%:::z")


def _datetime_type(col: Column) -> pl.DataType:
    return pl.Datetime("us", UTC if col.timezone else None)


def _with_offset(fmt: str) -> bool:
    return any(code in fmt for code in _OFFSET_CODES)


def _in_zone(naive: pl.Expr, col: Column) -> pl.Expr:
    """Naive values as the column declares them: kept naive, or read in the declared
    zone and converted to UTC (a local time that never was, or was twice, is null)."""
    if not col.timezone:
        return naive
    return naive.dt.replace_time_zone(col.timezone, ambiguous="null",
                                      non_existent="null").dt.convert_time_zone(UTC)


def _datetime_text(text: pl.Expr, col: Column) -> pl.Expr:
    parsed = []
    for fmt in col.datetime_formats:
        value = text.str.strptime(pl.Datetime("us"), fmt, strict=False, exact=True)
        if _with_offset(fmt):
            if col.timezone:  # polars gives offset values in UTC
                parsed.append(value.dt.convert_time_zone(UTC))
        else:
            parsed.append(_in_zone(value, col))
    return pl.coalesce(parsed) if parsed else pl.lit(None, _datetime_type(col))


def _datetime_refusals(text: pl.Expr, col: Column) -> dict[str, pl.Expr]:
    offsets = [f for f in col.datetime_formats if _with_offset(f)]
    if col.timezone or not offsets:
        return {}
    return {ZONE_NOT_DECLARED: pl.any_horizontal(
        [text.str.strptime(pl.Datetime("us"), f, strict=False, exact=True).is_not_null()
         for f in offsets])}


def _datetime_typed(raw: pl.Expr, dtype: pl.DataType, col: Column) -> pl.Expr | None:
    if dtype == pl.Date:
        return _in_zone(raw.cast(pl.Datetime("us")), col)
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            return _in_zone(raw.cast(pl.Datetime("us")), col)
        if col.timezone:
            return raw.dt.convert_time_zone(UTC).cast(pl.Datetime("us", UTC))
        return pl.lit(None, pl.Datetime("us"))
    if is_numeric_type(dtype) or dtype == pl.Boolean:
        return pl.lit(None, _datetime_type(col))
    return None


# --- time ------------------------------------------------------------------------------------

def _time_text(text: pl.Expr, col: Column) -> pl.Expr:
    return pl.coalesce([text.str.strptime(pl.Time, f, strict=False, exact=True)
                        for f in col.time_formats])


def _time_typed(raw: pl.Expr, dtype: pl.DataType, col: Column) -> pl.Expr | None:
    if dtype == pl.Time:
        return raw
    if isinstance(dtype, pl.Duration):
        # a spreadsheet's time of day is a duration under a day
        within = (raw >= pl.duration(days=0)) & (raw < pl.duration(days=1))
        return pl.when(within).then((pl.lit(_MIDNIGHT) + raw).dt.time())
    if isinstance(dtype, pl.Datetime):
        # Access keeps a time of day on its day 0; any other day is a full datetime
        return pl.when(raw.dt.date() == ACCESS_DAY_ZERO).then(raw.dt.time())
    if dtype == pl.Date or is_numeric_type(dtype) or dtype == pl.Boolean:
        return pl.lit(None, pl.Time)
    return None


# --- workbook cells, as calamine spells them ---------------------------------------------------

CALAMINE_DATETIME = "%Y-%m-%d %H:%M:%S%.f"
"""How calamine spells a date or datetime cell loaded as text (2013-01-01 05:17:00)."""
TIME_CELL_DAYS = r"^(?:1899-12-3[01]|1904-01-0[12]) "
"""The day calamine puts before a time-only cell (day 0 of the 1900 or 1904 system)."""


def _datetime_workbook(text: pl.Expr, col: Column) -> tuple[pl.Expr, Column]:
    if CALAMINE_DATETIME in col.datetime_formats:
        return text, col
    return text, replace(col, datetime_formats=(*col.datetime_formats, CALAMINE_DATETIME))


def _time_workbook(text: pl.Expr, col: Column) -> tuple[pl.Expr, Column]:
    formats = col.time_formats if "%H:%M:%S%.f" in col.time_formats else \
        (*col.time_formats, "%H:%M:%S%.f")
    return text.str.replace(TIME_CELL_DAYS, ""), replace(col, time_formats=formats)


def _number_cell(value: pl.Expr, col: Column) -> pl.Expr:
    return value.cast(pl.Utf8)  # the shortest spelling: 99999999.99, exact decimals


def _integer_cell(value: pl.Expr, col: Column) -> pl.Expr:
    # a whole number in its integer spelling (polars writes 2013.0); a fraction keeps
    # its own and is refused by the parser
    return pl.when(value == value.floor()).then(
        value.cast(pl.Int64, strict=False).cast(pl.Utf8)).otherwise(value.cast(pl.Utf8))


def _date_cell(value: pl.Expr, col: Column) -> pl.Expr:
    return value.dt.strftime(col.exact_date_format)


def _bool_cell(value: pl.Expr, col: Column) -> pl.Expr:
    return pl.when(value).then(pl.lit(col.true_values[0])).otherwise(
        pl.lit(col.false_values[0]))


# --- float, bool -----------------------------------------------------------------------------

def _finite(number: pl.Expr) -> pl.Expr:
    # NaN and infinities are not measurements; they also sort above every number
    return pl.when(number.is_finite()).then(number)


def _float_text(text: pl.Expr, col: Column) -> pl.Expr:
    return _finite(text.cast(pl.Float64, strict=False))


def _float_typed(raw: pl.Expr, dtype: pl.DataType, col: Column) -> pl.Expr | None:
    if is_numeric_type(dtype):
        return _finite(raw.cast(pl.Float64))
    if isinstance(dtype, pl.Decimal):
        return _finite(raw.cast(pl.Float64))
    return None


def _bool_text(text: pl.Expr, col: Column) -> pl.Expr:
    return (pl.when(text.is_in(list(col.true_values))).then(True)
            .when(text.is_in(list(col.false_values))).then(False)
            .otherwise(None))


def _bool_typed(raw: pl.Expr, dtype: pl.DataType, col: Column) -> pl.Expr | None:
    return raw if dtype == pl.Boolean else None


KINDS: dict[str, KindSpec] = {spec.name: spec for spec in (
    KindSpec("string", lambda col: pl.Utf8(), "not_text", None),
    KindSpec("category", lambda col: pl.Utf8(), "not_text", None,
             output=lambda col: pl.Categorical()),
    KindSpec("float", lambda col: pl.Float64(), "not_a_number", _float_text, _float_typed,
             excel_load="float", cell_text=_number_cell),
    KindSpec("bool", lambda col: pl.Boolean(), "not_a_boolean", _bool_text, _bool_typed,
             cell_text=_bool_cell),
    KindSpec("date", lambda col: pl.Date(), "not_a_date", None, excel_load="date",
             cell_text=_date_cell),
    # calamine spells a number cell as text with float noise (99999999.989999995):
    # integers and decimals load as numbers, which polars spells shortest
    KindSpec("integer", lambda col: pl.Int64(), "not_an_integer", _integer_text, _integer_typed,
             excel_load="float", cell_text=_integer_cell),
    KindSpec("decimal", _decimal_type, "not_a_decimal", _decimal_text, _decimal_typed,
             refusals=_decimal_refusals, excel_load="float", cell_text=_number_cell,
             refusal_reasons=(TOO_MANY_PLACES, TOO_MANY_DIGITS)),
    KindSpec("datetime", _datetime_type, "not_a_datetime", _datetime_text, _datetime_typed,
             refusals=_datetime_refusals, formats="datetime_formats",
             workbook_text=_datetime_workbook,
             refusal_reasons=(ZONE_NOT_DECLARED,)),
    KindSpec("time", lambda col: pl.Time(), "not_a_time", _time_text, _time_typed,
             formats="time_formats", workbook_text=_time_workbook),
)}


def kind_of(col: Column) -> KindSpec:
    try:
        return KINDS[col.kind]
    except KeyError:
        raise ValueError(f"column {col.name}: unknown kind {col.kind!r}; "
                         f"kinds are {', '.join(KINDS)}") from None


def output_type(col: Column) -> pl.DataType:
    spec = kind_of(col)
    return spec.output(col) if spec.output else spec.dtype(col)


AccessRead = Literal["bool", "int", "float", "date", "text"]


@dataclass(frozen=True)
class AccessType:
    kind: Kind
    """The kind a column of this Access type is (for drafting a schema)."""
    read: AccessRead
    """How mdbtools' text of it is typed by the reader."""


ACCESS_KINDS: dict[str, AccessType] = {
    "Boolean": AccessType("bool", "bool"),
    "Byte": AccessType("integer", "int"),
    "Integer": AccessType("integer", "int"),
    "Long Integer": AccessType("integer", "int"),
    "Replication ID": AccessType("string", "text"),
    "Single": AccessType("float", "float"),
    "Double": AccessType("float", "float"),
    # money and fixed-point numbers are exact: read as text, parsed as decimals
    "Currency": AccessType("decimal", "float"),
    "Numeric": AccessType("decimal", "float"),
    "DateTime": AccessType("datetime", "date"),  # Date when every value is a whole day
    "Text": AccessType("string", "text"),
    "Memo/Hyperlink": AccessType("string", "text"),
    "OLE": AccessType("string", "text"),
    "Binary": AccessType("string", "text"),
}
"""mdbtools' type names. A column the schema declares decimal is kept as mdbtools'
text whatever its Access type, so no value passes through a float."""

READ_AS_TEXT_FROM_ACCESS: frozenset[str] = frozenset({"decimal"})
"""Kinds whose Access columns are handed to validation as exported text."""
