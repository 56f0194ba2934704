"""Fixed-width records: text or EBCDIC, line-ended or as on tape.

Where the positions come from: each column's ``start`` (1-based) and ``length``
declared by the dataset, or a record layout delivered with the data (a SAS
``INPUT`` statement or a ``name,start,width`` CSV, :mod:`ingest.readers.layout`),
checked against the schema: every schema column must be in it, a position the
schema also declares must agree, and extra fields must be named ``FILLER...``.

How the classifier knows: a fixed-width file has no magic, so no content test
claims it. :func:`positioned` decides per delivery: when the dataset declares
positions, or a layout member is present, every member that would otherwise be
read as delimited text or is of no known format is read as fixed-width records
instead (:func:`may_hold`). Without either, nothing changes for CSV.

Records: the record length is the end of the last field. Records followed by a
line end (LF or CRLF, in the code page's own bytes) and records with no line
ends (as on tape) both work, told apart by the bytes after the first record. A
first record that does not fit is no table of this layout (the member is passed
over, as a CSV with the wrong header is); a later record of the wrong length
stops the run, naming the record, so a row is never shifted.

Decoding: bytes are sliced before decoding. For a single-byte code page
(Windows-1252, Latin-1, EBCDIC cp037/cp500/cp1140, ...) a column's bytes are
decoded in one call and their UTF-8 offsets computed with numpy; for UTF-8 the
positions are bytes and a field boundary inside a character is refused. The
first declared encoding that decodes every text column is used. Trailing blanks
are padding and are stripped; leading blanks are kept for string columns and
stripped for every other kind. Zoned and packed fields: :mod:`ingest.readers.ebcdic`.
"""

from __future__ import annotations

import codecs
import importlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache

import numpy as np
import polars as pl
import pyarrow as pa

from ..errors import ReadError, SchemaMismatchError, guard
from ..formats import Format, Kind, classify
from ..media import Member
from ..schema import Column, Dataset
from ._base import SourceTable, normalise_header
from .ebcdic import check_width, decode_numbers
from .layout import FORMAT as LAYOUT
from .layout import Field, parse_layout

TITLE = "fixed-width records (positions from the schema or a record layout)"


def never_by_content(probe: object) -> bool:
    """A fixed-width file has no magic: it is claimed per delivery, see :func:`positioned`."""
    return False


@dataclass(frozen=True)
class _Slot:
    column: Column
    offset: int
    """0-based first byte."""
    length: int


def may_hold(fmt: Format) -> bool:
    """Whether a member so classified is read as records when positions are known."""
    return fmt.kind is Kind.UNKNOWN or fmt.name == "delimited"


def positioned(members: Sequence[Member], dataset: Dataset) -> Dataset | None:
    """The dataset with every column's position, or None: not a fixed-width delivery.

    Positions come from a layout member if one is delivered, checked against the
    dataset; else from the dataset's own declarations.
    """
    layouts = [m for m in members if classify(m) is LAYOUT]
    if len(layouts) > 1:
        raise SchemaMismatchError("more than one record layout in the delivery: "
                                  + ", ".join(m.name for m in layouts)
                                  + "; deliver one layout with the data")
    declared = [c for c in dataset.columns if c.start is not None or c.length is not None]
    if layouts:
        with guard(f"{layouts[0].name}: reading the record layout", SchemaMismatchError):
            fields = parse_layout(layouts[0].data, layouts[0].name)
        return _apply(fields, dataset, layouts[0].name)
    if not declared:
        return None
    lacking = [c.source for c in dataset.columns if c.start is None or c.length is None]
    if lacking:
        raise SchemaMismatchError(f"schema '{dataset.name}' declares fixed-width positions for "
                                  "some columns but not " + ", ".join(lacking)
                                  + "; give every column start and length, or deliver a "
                                  "record layout")
    _check_storage(dataset.columns, dataset.name)
    return dataset


def positioned_each(members: Sequence[Member],
                    datasets: Sequence[Dataset]) -> list[Dataset | None]:
    """Per dataset of a delivery of several tables, as :func:`positioned`: the dataset
    with every column's position, or None where its table is not fixed-width.

    A delivered layout belongs to the one dataset it matches (every column named,
    agreeing with what the dataset declares); a layout that matches none, or more
    than one, stops the run naming why for each dataset, as does a dataset that two
    layouts match. A dataset no layout matches keeps its own declarations.
    """
    layouts = [m for m in members if classify(m) is LAYOUT]
    matched: dict[int, tuple[str, Dataset]] = {}
    for layout in layouts:
        with guard(f"{layout.name}: reading the record layout", SchemaMismatchError):
            fields = parse_layout(layout.data, layout.name)
        fits: list[tuple[int, Dataset]] = []
        why: list[str] = []
        for i, dataset in enumerate(datasets):
            try:
                fits.append((i, _apply(fields, dataset, layout.name)))
            except SchemaMismatchError as exc:
                why.append(str(exc))
        if len(fits) != 1:
            names = " and ".join(f"'{datasets[i].name}'" for i, _ in fits)
            raise SchemaMismatchError(
                f"{layout.name}: the record layout matches schemas {names}; give the "
                "schemas distinct columns" if fits else
                f"{layout.name}: the record layout matches no schema of the run ("
                + " | ".join(why) + ")")
        i, dataset = fits[0]
        if i in matched:
            raise SchemaMismatchError(f"record layouts {matched[i][0]} and {layout.name} both "
                                      f"match schema '{dataset.name}'; deliver one layout per "
                                      "table")
        matched[i] = (layout.name, dataset)
    return [matched[i][1] if i in matched else positioned((), d)
            for i, d in enumerate(datasets)]


def _apply(fields: list[Field], dataset: Dataset, where: str) -> Dataset:
    by_name: dict[str, Field] = {}
    for f in fields:
        if normalise_header(f.name) in by_name:
            raise SchemaMismatchError(f"{where}: field {f.name} is named twice")
        by_name[normalise_header(f.name)] = f
    wanted = {normalise_header(c.source) for c in dataset.columns}
    missing = [c.source for c in dataset.columns if normalise_header(c.source) not in by_name]
    extra = [f.name for n, f in by_name.items()
             if n not in wanted and not n.startswith("FILLER")]
    if missing or extra:
        parts = (["missing " + ", ".join(missing)] if missing else []) \
            + (["unexpected " + ", ".join(extra[:20])] if extra else [])
        raise SchemaMismatchError(f"{where}: the record layout does not match schema "
                                  f"'{dataset.name}': " + "; ".join(parts))
    columns = []
    for col in dataset.columns:
        f = by_name[normalise_header(col.source)]
        for setting, mine, theirs in (("start", col.start, f.start),
                                      ("length", col.length, f.length)):
            if mine is not None and mine != theirs:
                raise SchemaMismatchError(f"{where}: column {col.source}: the layout gives "
                                          f"{setting} {theirs}, the schema {mine}")
        if col.storage != "text" and col.storage != f.storage:
            raise SchemaMismatchError(f"{where}: column {col.source}: the layout gives "
                                      f"{f.storage} storage, the schema {col.storage}")
        if f.places is not None:
            if f.storage == "text":
                raise SchemaMismatchError(f"{where}: column {col.source}: implied decimal "
                                          "places on a text field are not read; write the "
                                          "point in the data or store the field zoned")
            if f.places != _places(col):
                raise SchemaMismatchError(f"{where}: column {col.source}: the layout gives "
                                          f"{f.places} decimal places, the schema "
                                          f"{_places(col)}")
        columns.append(replace(col, start=f.start, length=f.length, storage=f.storage))
    _check_storage(columns, where)
    return replace(dataset, columns=tuple(columns))


def _places(col: Column) -> int:
    return col.scale if col.kind == "decimal" else 0


def _check_storage(columns: Sequence[Column], where: str) -> None:
    for col in columns:
        if col.storage == "text":
            continue
        if col.kind not in ("integer", "decimal"):
            raise SchemaMismatchError(f"{where}: column {col.source} is {col.storage} decimal "
                                      f"but of kind {col.kind}; declare it integer or decimal")
        check_width(col.storage, col.length or 0, f"{where}: column {col.source}")


def read_fixed(data: bytes, dataset: Dataset, member: str) -> SourceTable:
    """The member's records as a table of the dataset's positioned columns."""
    slots = [_Slot(c, (c.start or 1) - 1, c.length or 0) for c in dataset.columns]
    record = max(s.offset + s.length for s in slots)
    encodings = dataset.encodings or ("utf-8",)
    binary = any(s.column.storage != "text" for s in slots)
    matrix = _records(data, record, _line_end(encodings[0]), member, binary)
    if not binary:  # the whole member tells the encoding: one pass over the columns
        encodings = next(((e,) for e in encodings if _decodes(data, e)), encodings)
    for encoding in encodings:
        try:
            frame = pl.DataFrame([_column(matrix, s, encoding, member) for s in slots])
        except UnicodeDecodeError:
            continue
        return SourceTable(member=member, format="fixed-width", frame=frame,
                           encoding=codecs.lookup(encoding).name,
                           notes=[f"{frame.height} records of {record} bytes"])
    raise ReadError(f"{member}: the text fields are not in any encoding the schema allows "
                    f"({', '.join(encodings)}); declare the file's encoding in the dataset")


def _decodes(data: bytes, encoding: str) -> bool:
    """Whether ``data`` is text in ``encoding``, decoded a block at a time (bounded memory)."""
    try:
        if data.isascii() and _to_ascii(encoding)[:128] == bytes(range(128)):
            return True
        if _single_byte(codecs.lookup(encoding).name):
            undefined = [b for b in range(256) if not _defined(b, encoding)]
            return not any(data.find(bytes([b])) >= 0 for b in undefined)
        decoder = codecs.getincrementaldecoder(encoding)()
        for first in range(0, len(data), 1 << 24):
            decoder.decode(data[first:first + (1 << 24)])
        decoder.decode(b"", final=True)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


def _defined(byte: int, encoding: str) -> bool:
    try:
        bytes([byte]).decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def _line_end(encoding: str) -> tuple[bytes, bytes]:
    try:
        return "\n".encode(encoding), "\r\n".encode(encoding)
    except (LookupError, UnicodeError):
        raise ReadError(f"encoding {encoding} of the schema is not known") from None


def _records(data: bytes, record: int, ends: tuple[bytes, bytes], member: str,
             binary: bool) -> np.ndarray:
    """The records as a (records x record bytes) view of ``data``; never a copy.

    Records with no line ends that do not divide the member (a text file beside the
    tape, or a truncated tape) are no table of this layout; a line break inside the
    first record of all-text fields is a line-ended file whose first line is short.
    A zoned or packed field may hold any byte, so there the test is not made."""
    nl, crnl = ends
    if not data:
        raise SchemaMismatchError(f"{member}: empty; no records of the layout")
    if data[record:record + len(crnl)] == crnl:
        eol = crnl
    elif data[record:record + len(nl)] == nl:
        eol = nl
    else:
        eol = b""
    if len(data) < record or (not eol and not binary and nl in data[:record]):
        raise SchemaMismatchError(f"{member}: record 1 is not {record} bytes long (the "
                                  "layout's record length); not records of this layout")
    stride = record + len(eol)
    whole, rest = divmod(len(data), stride)
    count = whole + (1 if rest == record and eol else 0)
    if rest not in (0, record if eol else 0):
        if not eol:
            raise SchemaMismatchError(f"{member}: {len(data)} bytes is not a whole number of "
                            f"{record}-byte records: record {whole + 1} is short (truncated?)")
        count = -1  # some line is of the wrong length: found below
    buffer = np.frombuffer(data, dtype=np.uint8)
    if count >= 0 and eol and _first_bad(buffer, record, eol, count - (rest != 0)) is not None:
        count = -1
    if count < 0:
        ended = max(0, (len(data) - record - len(eol)) // stride + 1)
        number = _first_bad(buffer, record, eol, ended) or ended + 1
        raise ReadError(f"{member}: record {number} (from byte {(number - 1) * stride + 1}) "
                        f"is not {record} bytes long: every line must have the layout's record "
                        "length, since a short or long one would shift the fields")
    return np.lib.stride_tricks.as_strided(buffer, (count, record), (stride, 1),
                                           writeable=False)


def _first_bad(buffer: np.ndarray, record: int, eol: bytes, ended: int) -> int | None:
    """The 1-based number of the first of ``ended`` records not followed by ``eol``
    at its record length (records are counted by position, so a line break inside
    a value does not miscount them); None if all are."""
    if ended <= 0:
        return None
    stride = record + len(eol)
    marks = np.lib.stride_tricks.as_strided(buffer[record:], (ended, len(eol)), (stride, 1),
                                            writeable=False)
    bad = ~(marks == np.frombuffer(eol, np.uint8)).all(axis=1)
    return int(np.argmax(bad)) + 1 if bad.any() else None


def _column(matrix: np.ndarray, slot: _Slot, encoding: str, member: str) -> pl.Series:
    field = matrix[:, slot.offset:slot.offset + slot.length]
    col = slot.column
    if col.storage != "text":
        blank = " ".encode(encoding)[0]
        return decode_numbers(np.ascontiguousarray(field), col.storage, _places(col),
                              blank).alias(col.source)
    name = codecs.lookup(encoding).name
    if name == "utf-8":
        _whole_characters(matrix, slot, member)
    # a block of records at a time: a wide field (comments) decoded whole would hold
    # its bytes, their ASCII map, a Python string and its UTF-8 at once (4-6 times
    # the field); the blocks' UTF-8 alone stays
    step = max(1, BLOCK_BYTES // max(slot.length, 1))
    blocks = [_text_block(field[first:first + step], name)
              for first in range(0, field.shape[0], step)]
    series = pl.Series(col.source, pa.chunked_array(blocks, pa.large_utf8()), dtype=pl.Utf8)
    stripped = series.str.strip_chars_end(" ")
    return stripped if col.kind == "string" else stripped.str.strip_chars_start(" ")


BLOCK_BYTES = 1 << 24
"""Bytes of one field decoded at a time (see :func:`_column`)."""


def _text_block(field: np.ndarray, name: str) -> pa.LargeStringArray:
    """Records' text field (rows x width bytes in the code page ``name``) as UTF-8."""
    blob = np.ascontiguousarray(field).tobytes()
    rows, width = field.shape
    offsets = np.arange(0, rows * width + 1, width, dtype=np.int64)
    if name == "utf-8":
        blob.decode("utf-8")  # raises if not UTF-8: the next encoding is tried
        text = blob
    else:
        ascii_only = blob.translate(_to_ascii(name))  # 0x80 marks any other character
        if ascii_only.isascii():
            text = ascii_only  # ASCII is UTF-8 as it stands: no decoding at all
        else:
            text = blob.decode(name).encode("utf-8")
            offsets[1:] += np.cumsum(_extra_bytes(blob, ascii_only, rows, width, name))
    return pa.LargeStringArray.from_buffers(rows, pa.py_buffer(offsets.tobytes()),
                                            pa.py_buffer(text))


def _whole_characters(matrix: np.ndarray, slot: _Slot, member: str) -> None:
    """A UTF-8 field must not begin or end inside a character."""
    edges = [slot.offset] + ([slot.offset + slot.length]
                             if slot.offset + slot.length < matrix.shape[1] else [])
    for edge in edges:
        inside = (matrix[:, edge] & 0xC0) == 0x80
        if inside.any():
            raise ReadError(f"{member}: record {int(np.argmax(inside)) + 1}: a character "
                            f"crosses the boundary of column {slot.column.source} at byte "
                            f"{edge + 1}; positions count bytes of UTF-8")


def _extra_bytes(blob: bytes, ascii_only: bytes, rows: int, width: int,
                 encoding: str) -> np.ndarray:
    """Per record, how many more bytes the field takes in UTF-8 than in its code page,
    from the bytes that are not ASCII characters alone (marked 0x80 in ``ascii_only``)."""
    wide = np.flatnonzero(np.frombuffer(ascii_only, np.uint8) == 0x80)
    extra = _utf8_extra(encoding)[np.frombuffer(blob, np.uint8)[wide]]
    return np.bincount(wide // width, weights=extra, minlength=rows).astype(np.int64)


@cache
def _to_ascii(encoding: str) -> bytes:
    """A ``bytes.translate`` table: each byte of the code page to its character if that
    is ASCII, else to 0x80."""
    table = bytearray(b"\x80" * 256)
    for b in range(256):
        try:
            char = bytes([b]).decode(encoding)
        except UnicodeDecodeError:
            continue
        if char.isascii():
            table[b] = ord(char)
    return bytes(table)


@cache
def _utf8_extra(encoding: str) -> np.ndarray:
    """Bytes of UTF-8 beyond one that each byte of a single-byte code page becomes."""
    if not _single_byte(encoding):
        raise ReadError(f"encoding {encoding} is neither UTF-8 nor a single-byte code page; "
                        "fixed-width positions cannot be read in it")
    return np.array([len(bytes([b]).decode(encoding, errors="replace").encode("utf-8")) - 1
                     for b in range(256)], dtype=np.uint8)


def _single_byte(encoding: str) -> bool:
    if encoding in ("latin-1", "iso8859-1", "ascii"):
        return True
    try:
        module = importlib.import_module("encodings." + encoding.replace("-", "_"))
    except ImportError:
        return False
    return hasattr(module, "decoding_table")
