"""CSV and TSV, in whatever encoding the schema allows the sender to use.

Decoding is decided, never guessed: a byte-order mark names the encoding;
otherwise the schema's encodings are tried strictly, in order (UTF-8 first).
A trailer line such as ``TOTAL RECORDS: 400000`` is recognised, checked against
the rows read, and not treated as data.
"""

from __future__ import annotations

import codecs
import io
import re

import polars as pl

from ..errors import ReadError
from ..schema import Dataset
from ._base import SourceTable, header_score, match_columns

_TRAILER = re.compile(
    r"^[ \t]*\"?(?:TOTAL[ _]RECORDS?|RECORD[ _]COUNT|ROW[ _]COUNT|TOTAL[ _]ROWS|TOTAL)"
    r"[ \t]*[:=,\t]?[ \t]*\"?[ \t]*(\d+)[ \t]*\"?[ \t,]*$",
    re.IGNORECASE,
)
_DELIMITERS = (",", "\t", ";", "|")


def sniff_text(head: bytes) -> bool:
    """Plausibly delimited text: no NUL bytes (or UTF-16 with a BOM)."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return True
    return b"\x00" not in head[:8192] and any(d.encode() in head for d in _DELIMITERS)


def decode(data: bytes, encodings: tuple[str, ...], member: str) -> tuple[str, str]:
    """Text and the encoding it was decoded with."""
    if data.startswith(codecs.BOM_UTF8):
        return _strict(data[3:], "utf-8", member), "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _strict(data, "utf-16", member), "utf-16"
    for encoding in encodings:
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise ReadError(f"{member}: the text is in none of the encodings the schema allows "
                    f"({', '.join(encodings)}); ask the sender which encoding they used")


def _strict(data: bytes, encoding: str, member: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        raise ReadError(f"{member}: marked as {encoding} but not valid {encoding}") from None


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
    text, encoding = decode(data, dataset.encodings, member)
    text, trailer = split_trailer(text)
    first_line = text.split("\n", 1)[0].rstrip("\r")
    sep = _delimiter(first_line, dataset)
    try:
        frame = pl.read_csv(
            io.BytesIO(text.encode("utf-8")),
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
        raise ReadError(f"{member}: the rows could not be parsed as delimited text "
                        f"(separator {sep!r}); a row has the wrong number of fields or a "
                        "quote is not closed") from None
    mapping = match_columns(frame.columns, dataset, member)
    frame = frame.select([pl.col(mapping[s]).alias(s) for s in dataset.source_names])
    if trailer is not None and trailer != frame.height:
        raise ReadError(f"{member}: the trailer says {trailer} records but {frame.height} "
                        "were read; the file is incomplete or altered, ask for it again")
    return SourceTable(member, "tsv" if sep == "\t" else "csv", frame, encoding, trailer)
