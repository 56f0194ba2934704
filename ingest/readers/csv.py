"""CSV and TSV, in whatever encoding the schema allows the sender to use.

Decoding is decided, never guessed: a byte-order mark names the encoding;
otherwise the schema's encodings are tried strictly, in order (UTF-8 first).
A trailer line such as ``TOTAL RECORDS: 400000`` is recognised, checked against
the rows read, and not treated as data.

Every row must have as many fields as the header. A row with more or fewer
(a value with an unquoted separator, a line cut short, a stray line break, a
blank line between rows) is never padded or cut to fit: the delivery is
refused, naming the data rows and their field counts, because which of the
row's cells belong to which column can only be guessed. NUL bytes and bare CR
line endings are refused the same way. Blank lines at the very end are not rows.

Two conventions of R's ``write.table`` are recognised, noted and counted
(:mod:`._r`): quotes escaped as ``\\"`` (its default ``qmethod="escape"``), and
a first column of row names ``1, 2, ...`` that has no name in the header.
"""

from __future__ import annotations

import codecs
import csv as _stdcsv
import io
import re
from typing import NamedTuple

import polars as pl

from ..errors import ReadError
from ..repairs import R_ROW_NAMES_DROPPED
from ..schema import Dataset
from . import _r
from ._base import SourceTable, header_score, match_columns

_TRAILER = re.compile(
    r"^[ \t]*\"?(?:TOTAL[ _]RECORDS?|RECORD[ _]COUNT|ROW[ _]COUNT|TOTAL[ _]ROWS|TOTAL)"
    r"[ \t]*[:=,\t]?[ \t]*\"?[ \t]*(\d+)[ \t]*\"?[ \t,]*$",
    re.IGNORECASE,
)
_DELIMITERS = (",", "\t", ";", "|")


_SHOWN_ROWS = 5
"""Ragged rows named in an error message; the rest are counted."""


class Utf8Text(NamedTuple):
    text: bytes
    encoding: str
    """The encoding the member was in."""
    trailer: int | None
    """The record count its trailer gave, if it had one."""


def sniff_text(head: bytes) -> bool:
    """Plausibly delimited text: no NUL bytes (or UTF-16 with a BOM)."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return True
    return b"\x00" not in head[:8192] and any(d.encode() in head for d in _DELIMITERS)


def split_trailer(text: str) -> tuple[str, int | None]:
    """Remove a record-count trailer from the end of ``text``."""
    body = text.rstrip("\r\n\x1a ")  # DOS end-of-file marks too
    cut = max(body.rfind("\n"), -1)
    last = body[cut + 1:]
    match = _TRAILER.match(last.strip("\r"))
    # A line inside a quoted field is not a trailer: the text before it must
    # leave no quote open.
    if match and body.count('"', 0, cut + 1) % 2 == 0:
        return body[: cut + 1], int(match.group(1))
    return text, None


def _delimiter(header: str, dataset: Dataset) -> str:
    def cells(d: str) -> list[str]:
        return [c.strip().strip('"') for c in header.split(d)]

    best = max(_DELIMITERS, key=lambda d: header_score(cells(d), dataset))
    if header_score(cells(best), dataset) == 0:
        return ","
    return best


def read_delimited(data: bytes, dataset: Dataset, member: str) -> SourceTable:
    return read_utf8(to_utf8(data, dataset, member), dataset, member)


def to_utf8(data: bytes, dataset: Dataset, member: str) -> Utf8Text:
    """The member's records as UTF-8 bytes, decoded from the first of the schema's
    encodings that decodes them strictly (a byte-order mark decides first),
    without a record-count trailer or blank lines at the end.

    The checks here and in :func:`read_utf8` work on these bytes, not on a
    decoded copy: every character they look for is ASCII, and in UTF-8 an ASCII
    byte is always that character.
    """
    text, encoding = _utf8(data, dataset.encodings, member)
    _refuse_nul(text, member)
    end, trailer = _trailer_end(text)
    return Utf8Text(_without_trailing_blank_lines(text, end), encoding, trailer)


def read_utf8(utf8: Utf8Text, dataset: Dataset, member: str) -> SourceTable:
    text, encoding, trailer = utf8
    start = _LEADING_NEWLINES.match(text).end()  # type: ignore[union-attr]
    stop = text.find(b"\n", start)
    first_line = text[start:stop if stop >= 0 else len(text)].decode("utf-8")
    if "\r" in first_line.rstrip("\r"):
        raise ReadError(f"{member}: lines end with a bare carriage return (CR, classic Mac "
                        "line endings), so rows cannot be told apart; ask the sender to export "
                        "with CRLF or LF line endings")
    sep = _delimiter(first_line.rstrip("\r"), dataset)
    delivered = text
    notes: list[str] = []
    escaped = _r.uses_escaped_quotes(text, sep)
    if escaped:
        text = _r.unescape_quotes(text)
        notes.append(_r.ESCAPED_QUOTES_NOTE)
    row_names = _r.row_names_column(text, start, sep, first_line.rstrip("\r"))
    if row_names:
        text = _r.with_row_names_header(text, start, sep, row_names)
    try:
        frame = pl.read_csv(
            io.BytesIO(text),
            separator=sep,
            has_header=True,
            infer_schema=False,
            quote_char='"',
            empty_string_is_null=False,
            raise_if_empty=True,
        )
    except pl.exceptions.NoDataError:
        raise ReadError(f"{member}: the file is empty") from None
    except (pl.exceptions.ComputeError, pl.exceptions.ShapeError):
        # polars' message quotes the offending line, so it is withheld
        raise _unparsable(text.decode("utf-8"), sep, member, escaped) from None
    if not _every_row_complete(text, sep, frame):
        # polars pads a short row with empty cells: refused, never silently fixed
        raise _unparsable(text.decode("utf-8"), sep, member, escaped)
    repairs: dict[str, int] = {}
    if row_names:
        if not _r.are_row_names(frame[row_names]):
            # not R's row names after all: the header is one field short
            raise _unparsable(delivered.decode("utf-8"), sep, member)
        frame = frame.drop(row_names)
        notes.append(_r.row_names_note(frame.height))
        repairs[R_ROW_NAMES_DROPPED] = frame.height
    del delivered
    mapping = match_columns(frame.columns, dataset, member)
    ignored = [c for c in frame.columns if c not in mapping.values()]
    if ignored:
        notes.append(f"ignored {len(ignored)} column(s) not in schema '{dataset.name}': "
                     + ", ".join(ignored[:20]))
    frame = frame.select([pl.col(mapping[s]).alias(s) for s in dataset.source_names])
    if trailer is not None and trailer != frame.height:
        raise ReadError(f"{member}: the trailer says {trailer} records but {frame.height} "
                        "were read; the file is incomplete or altered, ask for it again")
    if escaped:
        repairs.update(_r.unescaped_counts(frame, dataset))
    return SourceTable(member, "tsv" if sep == "\t" else "csv", frame, encoding, trailer,
                       notes, repairs=repairs)


_LEADING_NEWLINES = re.compile(rb"[\r\n]*")


def _utf8(data: bytes, encodings: tuple[str, ...], member: str) -> tuple[bytes, str]:
    """The text as UTF-8 bytes, and the encoding it was decoded with (as :func:`decode`)."""
    marked = {codecs.BOM_UTF8: "utf-8-sig", codecs.BOM_UTF16_LE: "utf-16",
              codecs.BOM_UTF16_BE: "utf-16"}
    for bom, encoding in marked.items():
        if data.startswith(bom):
            try:
                return _as_utf8(data, encoding), encoding
            except UnicodeDecodeError:
                raise ReadError(f"{member}: marked as {encoding.removesuffix('-sig')} but "
                                f"not valid {encoding.removesuffix('-sig')}") from None
    for encoding in encodings:
        if codecs.lookup(encoding).name == "utf-8" and _not_utf8_from_the_start(data):
            continue
        try:
            return _as_utf8(data, encoding), encoding
        except UnicodeDecodeError:
            continue
    raise ReadError(f"{member}: the text is in none of the encodings the schema allows "
                    f"({', '.join(encodings)}); ask the sender which encoding they used")


_TRANSCODE_CHUNK = 1 << 24


def _as_utf8(data: bytes, encoding: str) -> bytes:
    """``data`` (strictly ``encoding``) as UTF-8 bytes, decoded a chunk at a time:
    the decoded text, at up to four bytes a character, never exists whole. Text
    that is UTF-8 already is only checked, and returned as it is (without a BOM)."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    view = memoryview(data)
    chunks = (decoder.decode(view[i:i + _TRANSCODE_CHUNK])
              for i in range(0, len(view), _TRANSCODE_CHUNK))
    if codecs.lookup(encoding).name in ("utf-8", "utf-8-sig"):
        for _ in chunks:
            pass
        decoder.decode(b"", final=True)
        return data[3:] if data.startswith(codecs.BOM_UTF8) else data
    parts = [chunk.encode("utf-8") for chunk in chunks]
    parts.append(decoder.decode(b"", final=True).encode("utf-8"))
    return b"".join(parts)


def _not_utf8_from_the_start(data: bytes, size: int = 1 << 16) -> bool:
    """True when the first ``size`` bytes already prove ``data`` is not UTF-8.

    Spares a failed decode of the whole file, which costs as much as a good one.
    An error within the last few bytes of the sample may be a character cut in
    two by the sample's end, so it proves nothing.
    """
    if len(data) <= size:
        return False
    try:
        data[:size].decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < size - 4
    return False


def _stripped_end(data: bytes, end: int, chars: bytes) -> int:
    """``len(data[:end].rstrip(chars))``, without copying ``data``."""
    step = 256
    while end > 0:
        start = max(0, end - step)
        kept = len(data[start:end].rstrip(chars))
        if kept:
            return start + kept
        end = start
        step *= 2
    return 0


def _trailer_end(text: bytes) -> tuple[int, int | None]:
    """Where the text ends without its record-count trailer, and the count (as
    :func:`split_trailer`, on UTF-8 bytes)."""
    body_end = _stripped_end(text, len(text), b"\r\n\x1a ")  # DOS end-of-file marks too
    cut = text.rfind(b"\n", 0, body_end)
    last = text[cut + 1:body_end].decode("utf-8")
    match = _TRAILER.match(last.strip("\r"))
    # A line inside a quoted field is not a trailer: the text before it must
    # leave no quote open.
    if match and text.count(b'"', 0, cut + 1) % 2 == 0:
        return cut + 1, int(match.group(1))
    return len(text), None


def _refuse_nul(text: bytes, member: str) -> None:
    at = text.find(b"\x00")
    if at >= 0:
        line = text.count(b"\n", 0, at) + 1
        raise ReadError(f"{member}: holds a NUL byte (line {line}); the file is binary or "
                        "damaged, ask the sender to export it again")


def _without_trailing_blank_lines(text: bytes, end: int) -> bytes:
    """``text[:end]`` without blank lines at its end, and a DOS end-of-file mark on a
    line of its own: they are not rows."""
    body = _stripped_end(text, end, b"\r\n")
    if body >= 2 and text[body - 1] == 0x1A and text[body - 2] in b"\r\n":
        body = _stripped_end(text, body - 1, b"\r\n")
    if body != end:
        return b"".join((memoryview(text)[:body], b"\n"))  # one copy, not two
    return text if end == len(text) else text[:end]


def _every_row_complete(text: bytes, sep: str, frame: pl.DataFrame) -> bool:
    """True when every record had exactly as many fields as the header.

    polars refuses a row with too many fields but pads a short one. Every record
    of ``w`` fields holds ``w - 1`` separators outside quotes, and a separator
    inside quotes is part of a value, so the separators in the text add up
    exactly only when no record is short.
    """
    counts = frame.select(pl.all().str.count_matches(sep, literal=True).sum()).row(0) \
        if frame.height else ()
    quoted = sum(int(n or 0) for n in counts) + sum(c.count(sep) for c in frame.columns)
    return text.count(sep.encode()) == (frame.height + 1) * (frame.width - 1) + quoted


def _unparsable(text: str, sep: str, member: str, escaped: bool = False) -> ReadError:
    """The error for text polars could not split into the header's columns.

    The records are walked again (standard library, only on this path) to name
    the rows whose field count differs from the header's; no value is quoted.
    """
    if escaped:
        error = _unparsable(text, sep, member)
        return ReadError(f"{error}. {_r.ESCAPED_QUOTES_REFUSAL}")
    ragged, width = _ragged_rows(text, sep)
    if not ragged:
        return ReadError(f"{member}: the rows could not be parsed as delimited text "
                         f"(separator {sep!r}); a quote is not closed, a quoted value has text "
                         "after its closing quote, or a line ends with a bare carriage return "
                         "(CR). Ask the sender to export the file again")
    shown = ", ".join(f"data row {row} (line {line}) "
                      + (f"has {fields}" if fields else "is blank")
                      for row, line, fields in ragged[:_SHOWN_ROWS])
    more = f", and {len(ragged) - _SHOWN_ROWS} more" if len(ragged) > _SHOWN_ROWS else ""
    return ReadError(f"{member}: {len(ragged)} row(s) do not have the header's {width} fields "
                     f"(separator {sep!r}): {shown}{more}. Such rows are not padded or cut "
                     "to fit, so nothing was read: a value may hold an unquoted separator or "
                     "line break, or a line was cut short. Ask the sender to export the file "
                     "again with every value quoted")


def _ragged_rows(text: str, sep: str) -> tuple[list[tuple[int, int, int]], int]:
    """(data row, line, fields) of each record whose field count is not the header's."""
    reader = _stdcsv.reader(io.StringIO(text, newline=""), delimiter=sep, quotechar='"',
                            doublequote=True, strict=False)
    found: list[tuple[int, int, int]] = []
    width = 0
    row = 0
    try:
        for record in reader:
            if not width:
                width = len(record)  # the header; blank lines before it are skipped
                continue
            row += 1
            if len(record) != width:
                found.append((row, reader.line_num, len(record)))
    except _stdcsv.Error:
        pass  # an unclosed quote or an over-long field: the rows found so far are named
    return found, width
