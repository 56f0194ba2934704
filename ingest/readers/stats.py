"""Statistical packages' data files: SPSS (``.sav``, ``.zsav``), Stata (``.dta``), SAS
(``.sas7bdat``, transport ``.xpt``), through pyreadstat (ReadStat).

pyreadstat reads from a file-like object, so the member's bytes are read where
they are (a ``BytesIO`` over them): nothing touches a disk. Only the schema's
columns are read (``usecols``), typed as the file declares them: numbers as
Float64, text as Utf8, SAS/SPSS/Stata date, datetime and time formats as Date,
Datetime and Time, which coercion takes like an Access column's.

What the file says about its values is kept, never guessed:

* **Value labels** (SPSS/Stata/SAS formats on a code), in a column the schema
  declares as a category or text, become the column's text:
  a code with a label is read as the label (the category level), a code without
  one as its own spelling, so a schema's level list refuses it. The manifest
  records, per column, how many values were labelled (a repair
  ``<column>:value_labels_applied``) and a note gives the count of labelled
  columns and levels: the label set is metadata of the file, never a data value.
* **User-defined missing values** (SPSS missing values and ranges, SAS and
  Stata special missing ``.a``-``.z``) become nulls, counted per column
  (``<column>:user_missing_to_null``).
* **Encoding**: the file's own (its header), else the dataset's declared ones
  in turn.

A damaged or truncated file is refused with :class:`ReadError`; a header that
declares more rows than the file's bytes can hold is refused before any
column is built, so a hostile count cannot exhaust memory.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

import polars as pl

from ..errors import ReadError
from ..repairs import key
from ..schema import Dataset
from ._base import SourceTable, match_columns

VALUE_LABELS_APPLIED = "value_labels_applied"
USER_MISSING_TO_NULL = "user_missing_to_null"

_OBS_V8 = b"HEADER RECORD*******OBSV8   HEADER RECORD!!!!!!!"
_COMPRESSED_CELLS_PER_BYTE = 1100
"""At most this many cells per byte of a compressed file (SPSS bytecode in zlib,
SAS RLE): zlib's ratio is bounded near 1032:1, and a cell takes at least one code."""
_LABELLED_KINDS = ("category", "string")
"""Kinds read through a column's value labels; a column the schema declares as a
number (integer, float, decimal) keeps its codes."""
_BYTES_PER_CELL = 8
"""What the reader sets aside per declared cell, at least (a float or a reference)."""
_CLEAN_MESSAGE = re.compile(r"^[A-Za-z ,()'-]{1,120}$")
"""ReadStat's error messages are fixed sentences; anything else is withheld."""


def _readers() -> dict[str, tuple[Callable[..., Any], bool]]:
    """Format name -> (pyreadstat's reader, whether the format may be compressed)."""
    import pyreadstat

    return {"spss": (pyreadstat.read_sav, True), "stata": (pyreadstat.read_dta, False),
            "sas7bdat": (pyreadstat.read_sas7bdat, True),
            "sas-transport": (pyreadstat.read_xport, False)}


def read_as(fmt: str) -> Callable[[bytes, Dataset, str], SourceTable]:
    def read(data: bytes, dataset: Dataset, member: str) -> SourceTable:
        return read_stats(fmt, data, dataset, member)
    return read


def read_stats(fmt: str, data: bytes, dataset: Dataset, member: str) -> SourceTable:
    """The dataset's table from a statistical package's file."""
    reader, compressed = _readers()[fmt]
    meta, encoding = _metadata(reader, data, dataset, member)
    if not meta.column_names:
        raise ReadError(f"{member}: the file holds no column definitions; it is damaged or "
                        "truncated: ask the sender for a new copy")
    _check_size(meta, len(data), compressed, member)
    mapping = match_columns(list(meta.column_names), dataset, member)
    wanted = [mapping[s] for s in dataset.source_names]
    options: dict[str, Any] = {"usecols": wanted, "output_format": "polars"}
    if fmt != "sas-transport":
        options["user_missing"] = True
    frame, meta = _call(reader, data, member, encoding=encoding, **options)
    if fmt == "sas-transport":
        _check_transport(data, frame.height, member)
    repairs: dict[str, int] = {}
    columns = []
    ranges = getattr(meta, "missing_ranges", {}) or {}
    for spec in dataset.columns:
        name = mapping[spec.source]
        series, missing = _user_missing(frame.get_column(name), ranges.get(name, []))
        labels = (meta.variable_value_labels or {}).get(name)
        if labels and spec.kind in _LABELLED_KINDS:
            series, labelled = _labelled(series, labels)
            if labelled:
                repairs[key(spec.source, VALUE_LABELS_APPLIED)] = labelled
        if missing:
            repairs[key(spec.source, USER_MISSING_TO_NULL)] = missing
        columns.append(series.alias(spec.source))
    del frame
    labelled_columns = {mapping[c.source] for c in dataset.columns
                        if c.kind in _LABELLED_KINDS} & set(meta.variable_value_labels or {})
    notes = []
    if labelled_columns:
        levels = sum(len(meta.variable_value_labels[c]) for c in labelled_columns)
        notes.append(f"value labels read as category levels: {len(labelled_columns)} "
                     f"column(s), {levels} level(s) declared by the file")
    return SourceTable(member, fmt, pl.DataFrame(columns), encoding or meta.file_encoding,
                       None, notes, repairs)


FORMATS = ("spss", "stata", "sas7bdat", "sas-transport")


def column_names(fmt: str, data: bytes, member: str) -> list[str]:
    """The file's column names, from its metadata alone (for ``ingest inspect``)."""
    reader, _ = _readers()[fmt]
    return list(_call(reader, data, member, metadataonly=True)[1].column_names)


def _metadata(reader: Callable[..., Any], data: bytes, dataset: Dataset,
              member: str) -> tuple[Any, str | None]:
    """The file's metadata, and the encoding to read it with: None (the file's own,
    from its header) unless the file's text does not decode, then the first of the
    dataset's declared encodings that does."""
    import pyreadstat

    try:
        return _call(reader, data, member, metadataonly=True, strict=True)[1], None
    except pyreadstat.ReadstatError as exc:
        if "encoding" not in str(exc).lower() and "convert" not in str(exc).lower():
            raise _damaged(member, exc) from None
    for encoding in dataset.encodings:
        try:
            return _call(reader, data, member, metadataonly=True, strict=True,
                         encoding=encoding.upper())[1], encoding.upper()
        except pyreadstat.ReadstatError:
            continue
    raise ReadError(f"{member}: its text does not decode in the file's own encoding nor in "
                    f"{', '.join(dataset.encodings)}; declare the file's encoding in the schema")


def _call(reader: Callable[..., Any], data: bytes, member: str, strict: bool = False,
          **options: Any) -> tuple[Any, Any]:
    import pyreadstat

    try:
        return reader(io.BytesIO(data), **options)  # type: ignore[no-any-return]
    except pyreadstat.ReadstatError as exc:
        if strict:
            raise
        raise _damaged(member, exc) from None
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged file fails anywhere in the parser
        raise ReadError(f"{member}: the file could not be read ({type(exc).__name__}); it "
                        "may be damaged or truncated: ask the sender for a new copy") from None


def _damaged(member: str, exc: Exception) -> ReadError:
    said = str(exc).strip()
    why = f" ({said})" if _CLEAN_MESSAGE.match(said) else ""
    return ReadError(f"{member}: the file is damaged or truncated{why}; ask the sender for a "
                     "new copy")


def _check_size(meta: Any, size: int, compressed: bool, member: str) -> None:
    """Refuse a declared shape the file's bytes cannot hold, before reading it."""
    rows = meta.number_rows
    if rows is None or rows < 0:
        return  # not declared (a transport file): ReadStat counts what is there
    import psutil

    cells = rows * max(meta.number_columns, 1)
    limit = size * (_COMPRESSED_CELLS_PER_BYTE if compressed else 1)
    if cells > limit:
        raise ReadError(f"{member}: the file declares {rows:,} rows of "
                        f"{meta.number_columns} columns, more than its {size:,} bytes can "
                        "hold; it is damaged or not what it claims to be")
    # the reader sets aside the declared rows up front: a compressed file may
    # honestly declare more than fits, and must then be refused, not half read
    if cells * _BYTES_PER_CELL > psutil.virtual_memory().available // 2:
        raise ReadError(f"{member}: the file declares {rows:,} rows of "
                        f"{meta.number_columns} columns, more than half the memory now "
                        "available; read it on a machine with more memory")


def _check_transport(data: bytes, rows: int, member: str) -> None:
    """A transport file has no end marker: ReadStat reads the whole rows that are there.
    A cut is caught where the file still says how long it was: 80-byte records
    throughout, and version 8's observation count (when the writer filled it in)."""
    if len(data) % 80:
        raise ReadError(f"{member}: the file is truncated (a SAS transport file is made of "
                        "80-byte records and its last one is cut short); ask the sender for "
                        "a new copy")
    at = data.find(_OBS_V8)
    declared = data[at + len(_OBS_V8):at + 80].strip() if at >= 0 else b""
    if declared.isdigit() and int(declared) and int(declared) != rows:
        raise ReadError(f"{member}: the file declares {int(declared):,} rows but holds "
                        f"{rows:,}; it is truncated or damaged: ask the sender for a new copy")


def _user_missing(series: pl.Series, ranges: list[dict[str, Any]]) -> tuple[pl.Series, int]:
    """The column with its user-defined missing values made null, and how many there were."""
    if series.dtype == pl.Object:
        # SAS/Stata special missing (.a-.z) arrive as letters among the numbers
        values = series.to_list()
        numbers = [v if isinstance(v, (int, float)) and not isinstance(v, bool) else None
                   for v in values]
        missing = sum(1 for v in values if isinstance(v, str))
        series = pl.Series(series.name, numbers, dtype=pl.Float64)
        return series, missing
    if not ranges:
        return series, 0
    hit = pl.repeat(False, series.len(), eager=True)
    for bounds in ranges:
        lo, hi = bounds["lo"], bounds["hi"]
        hit = hit | ((series == lo) if lo == hi else series.is_between(lo, hi))
    hit = hit.fill_null(False)
    missing = int(hit.sum())
    return (series.set(hit, None) if missing else series), missing  # type: ignore[arg-type]


def _labelled(series: pl.Series, labels: dict[Any, str]) -> tuple[pl.Series, int]:
    """The column read through its value labels: each labelled code as its label, any
    other value as its own spelling (a whole number without ``.0``)."""
    if series.dtype == pl.Utf8:
        codes = {str(k): v for k, v in labels.items()}
        text = series
    else:
        codes = {_spelling(k): v for k, v in labels.items()}
        number = series.cast(pl.Float64)
        whole = (number == number.floor()) & (number.abs() < 2**53)
        text = pl.select(pl.when(whole).then(number.cast(pl.Int64, strict=False).cast(pl.Utf8))
                         .otherwise(number.cast(pl.Utf8))).to_series()
    found = text.is_in(list(codes))
    return text.replace(codes), int(found.sum())


def _spelling(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


__all__ = ["FORMATS", "USER_MISSING_TO_NULL", "VALUE_LABELS_APPLIED", "column_names",
           "read_stats"]
