"""How a dataset is described: source columns, clean columns, parsing, policies.

A dataset module in ``schemas/`` builds a :class:`Dataset`: the column specs
below drive reading and coercion (text to typed values), and a pandera
``DataFrameSchema`` (polars backend) holds every rule the clean table must
satisfy. Coercion failures and rule failures both become quarantine reasons.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Literal

from .errors import UsageError

if TYPE_CHECKING:
    import pandera.polars as pa

Kind = Literal["string", "category", "float", "bool", "date",
               "integer", "decimal", "datetime", "time"]
"""What a clean column holds; :mod:`ingest.kinds` says, per kind, its Arrow/polars
type, how text and typed cells become it, and the reason a cell that cannot gets."""
Policy = Literal["keep", "pseudonymise", "restrict", "drop"]


@dataclass(frozen=True)
class Column:
    source: str
    """Name in the delivery (matched case-insensitively, spaces and case ignored)."""
    name: str
    """Clean name in every output."""
    kind: Kind
    nullable: bool = False
    policy: Policy = "keep"
    """keep; pseudonymise (keyed HMAC-SHA-256); restrict (restricted master key); drop."""
    width: int | None = None
    """An identifier of this many digits: digits that arrive short (text, numbers,
    whole float spellings such as ``118952.0``) are zero-padded to it, and counted
    as repairs; a value with any other character is left as it is."""
    date_formats: tuple[str, ...] = ("%m/%d/%Y", "%Y-%m-%d")
    earliest: date | None = None
    """Date columns: the earliest valid date (a rule of the clean table)."""
    latest: date | Literal["delivery"] | None = None
    """Date columns: the latest valid date; "delivery": the delivery date. With
    ``earliest``, a range under a hundred years makes a two-digit year's century
    certain, so such years are expanded (and counted); otherwise they are refused."""
    true_values: tuple[str, ...] = ("Y",)
    false_values: tuple[str, ...] = ("N",)
    minimum: int | None = None
    """Integer columns: the smallest valid value (a rule of the clean table, given
    by :meth:`range_check` like a date range)."""
    maximum: int | None = None
    """Integer columns: the largest valid value (a rule, see :meth:`range_check`)."""
    precision: int = 38
    """Decimal columns: the most significant digits a value may hold (at most 38);
    a value with more is quarantined as ``<column>:decimal_too_many_digits``."""
    scale: int = 0
    """Decimal columns: digits after the point. A value with more is refused, never
    rounded (``<column>:decimal_too_many_places``); fewer are exact (``12.3`` is
    ``12.30`` at scale 2)."""
    datetime_formats: tuple[str, ...] = (
        "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z",
        "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M")
    """Datetime columns: text formats tried in order (chrono's ``strftime`` codes;
    ``%#z`` takes ``Z``, ``+02:00`` and ``+0200``)."""
    timezone: str | None = None
    """Datetime columns: None, values are naive and kept naive (a value with an
    offset is refused); a zone name (``"UTC"``, ``"Europe/Oslo"``): values with an
    offset are converted to UTC, naive ones are read in this zone, then converted."""
    time_formats: tuple[str, ...] = ("%H:%M:%S%.f", "%H:%M")
    """Time columns: text formats tried in order."""
    start: int | None = None
    """Fixed-width sources: the column's first byte in the record, 1-based as record
    layouts are written (with ``length``; see :mod:`ingest.readers.fixed`)."""
    length: int | None = None
    """Fixed-width sources: the column's length in bytes."""
    storage: Literal["text", "zoned", "packed"] = "text"
    """Fixed-width sources: how the bytes hold the value: text; zoned decimal (a digit
    a byte, the sign in the last byte's zone nibble) or packed decimal (COMP-3, two
    digits a byte, the sign in the last nibble), with ``scale`` implied places."""

    def __post_init__(self) -> None:
        # a declaration no parser could honour is the schema author's to fix, said
        # when the schema loads, not as a polars error in the middle of a run
        where = f"column {self.name}"
        if self.kind == "decimal" and not (1 <= self.precision <= 38
                                           and 0 <= self.scale <= self.precision):
            raise UsageError(f"{where}: a decimal needs 1 <= precision <= 38 and "
                             f"0 <= scale <= precision (got {self.precision}, {self.scale})")
        if self.minimum is not None and self.maximum is not None \
                and self.minimum > self.maximum:
            raise UsageError(f"{where}: minimum {self.minimum} is above maximum {self.maximum}")
        if self.timezone is not None:
            import zoneinfo

            try:
                zoneinfo.ZoneInfo(self.timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise UsageError(f"{where}: unknown time zone {self.timezone!r}; give an IANA "
                                 "name such as 'UTC' or 'Europe/Oslo'") from None

    def date_range(self, delivery_date: date) -> tuple[date | None, date | None]:
        """The declared valid dates (either end may be open) for a delivery."""
        return self.earliest, delivery_date if self.latest == "delivery" else self.latest

    def range_check(self, delivery_date: date) -> pa.Check | None:
        """The pandera rule for the declared range (dates: ``earliest``/``latest``;
        integers: ``minimum``/``maximum``): ``ge``, ``le`` or ``in_range`` (rule
        names the quarantine reasons carry), None if undeclared."""
        import pandera.polars as pa

        low: object
        high: object
        if self.kind == "integer":
            low, high = self.minimum, self.maximum
        else:
            low, high = self.date_range(delivery_date)
        if low is not None and high is not None:
            return pa.Check.in_range(low, high)
        if low is not None:
            return pa.Check.ge(low)
        if high is not None:
            return pa.Check.le(high)
        return None

    @property
    def exact_date_format(self) -> str:
        """The first date format with a four-digit year and no time: a date written
        with it (by a reader that must keep a cell as text) parses back exactly."""
        return next((f for f in self.date_formats if "%Y" in f and "%H" not in f),
                    "%Y-%m-%d")


@dataclass(frozen=True)
class Features:
    """Which columns feed the training matrix, and the label(s)."""

    labels: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    derived: tuple[str, ...] = ()
    """Named derived numbers the dataset module computes (see ``Dataset.derive``)."""
    scale: tuple[str, ...] = ()
    """Numeric or derived features to standardise (fitted on the first delivery)."""


@dataclass(frozen=True)
class Dataset:
    name: str
    version: str
    columns: tuple[Column, ...]
    rules: Callable[[date], pa.DataFrameSchema]
    """Builds the pandera schema for a delivery date (rules may depend on it)."""
    table: str | None = None
    """Table name inside a database (Access); None: the one whose columns match."""
    encodings: tuple[str, ...] = ("utf-8", "cp1252")
    """Encodings the sender may use, tried in order (strict UTF-8 first)."""
    null_tokens: tuple[str, ...] = ("", "NA", ".", "NULL")
    unique: tuple[str, ...] = ()
    """Columns whose repeats are quarantined (the first occurrence is kept)."""
    features: Features = field(default_factory=Features)
    derive: Callable | None = None
    """Optional: polars expressions for derived feature columns, by name."""

    @property
    def source_names(self) -> list[str]:
        return [c.source for c in self.columns]

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)


def load_dataset(spec: str) -> Dataset:
    """The dataset ``spec`` names: a path to a ``.py`` file, a module name, or a
    name in ``schemas/``, ``INGEST_SCHEMA_PATH`` or the ``ingest.schemas`` entry
    points, in the order :mod:`ingest.catalog` documents."""
    from . import catalog

    found = catalog.find(spec)
    if not isinstance(found.value, Dataset):
        raise UsageError(f"schema {spec}: DATASET is a {type(found.value).__name__}, not an "
                         "ingest.schema.Dataset")
    return found.value
