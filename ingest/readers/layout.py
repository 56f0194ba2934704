"""Record layouts delivered with fixed-width data: a SAS INPUT statement or a CSV.

Two forms are read, recognised by content (never by name, like every format):

- a SAS program holding an ``INPUT`` statement, in column form
  (``INPUT CASE_ID $ 1-10 SEX $ 11 LOS 40-42 .2;``) or column-pointer form
  (``INPUT @1 CASE_ID $char10. @11 SEX $1. @40 CHARGE zd7.2 @47 BAL pd4.2;``).
  Informats: ``$w.``/``$charw.`` text, ``w.d`` numeric text, ``zdw.d`` (or
  ``s370fzdw.d``) zoned decimal, ``pdw.d`` (or ``s370fpdw.d``) packed decimal;
  ``.d`` after a column range gives implied places. Comments (``/* */``,
  ``* ...;``) are ignored; the first ``INPUT`` statement is the layout.
- a CSV whose header is ``name,start,width`` (1-based start), with optional
  columns ``storage`` (text, zoned, packed) and ``places``.

A layout is registered as a format (:data:`FORMAT`) so the classifier names it
and never offers it as a table; :mod:`ingest.readers.fixed` reads the data by it.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Literal, cast

from ..errors import SchemaMismatchError
from ..formats import Format, Kind, Probe, register

MAX_LAYOUT_BYTES = 1 << 20
"""A layout is a few lines; anything larger is not one (and is not parsed)."""


Storage = Literal["text", "zoned", "packed"]


@dataclass(frozen=True)
class Field:
    name: str
    start: int
    """1-based first byte."""
    length: int
    storage: Storage = "text"
    places: int | None = None


_INPUT = re.compile(rb"(?is)(?:^|;)\s*input\s+([^;]*);")
_CSV_HEADER = re.compile(rb"^(?:\xef\xbb\xbf)?\s*name\s*,\s*start\s*,\s*width\s*(,|\r?\n|$)", re.I)
_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_POINTER = re.compile(rf"@(\d+)\s+({_NAME})\s*(\$?)\s*([A-Za-z0-9]*?)(\d+)\.(\d*)")
_RANGE = re.compile(rf"({_NAME})\s*(\$?)\s*(\d+)(?:\s*-\s*(\d+))?(?:\s*\.(\d+))?")


def is_layout(probe: Probe) -> bool:
    """A SAS INPUT statement with positions, or a ``name,start,width`` CSV."""
    if len(probe.data) > MAX_LAYOUT_BYTES:
        return False
    if _CSV_HEADER.match(probe.head):
        return True
    found = _INPUT.search(probe.head.replace(b"\r", b""))
    return found is not None and re.search(rb"@\d+|\d+\s*-\s*\d+", found.group(1)) is not None


FORMAT = register(Format("record-layout", Kind.NOT_READ,
                         "record layout (SAS INPUT statement or name,start,width CSV)",
                         is_layout))


def parse_layout(data: bytes, where: str) -> list[Field]:
    """The fields of a layout member, in record order; a layout that cannot be read
    is refused naming the member and what is wrong (never a value of the data)."""
    text = data.decode("utf-8-sig", errors="replace")
    fields = _parse_csv(text, where) if _CSV_HEADER.match(data) else _parse_sas(text, where)
    if not fields:
        raise SchemaMismatchError(f"{where}: the record layout names no field")
    for f in fields:
        if f.start < 1 or f.length < 1:
            raise SchemaMismatchError(f"{where}: field {f.name} has start {f.start} and "
                                      f"length {f.length}; both must be 1 or more")
    return fields


def _parse_csv(text: str, where: str) -> list[Field]:
    rows = list(csv.DictReader(io.StringIO(text)))
    fields = []
    for number, row in enumerate(rows, start=2):
        if None in row:
            raise SchemaMismatchError(f"{where}: line {number} of the layout has more fields "
                                      "than its header")
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        if not row.get("name"):
            continue
        try:
            storage = (row.get("storage") or "text").lower()
            places = int(row["places"]) if row.get("places") else None
            start, width = int(row["start"]), int(row["width"])
        except (KeyError, ValueError):
            raise SchemaMismatchError(f"{where}: line {number} of the layout is not "
                                      "name,start,width with whole numbers") from None
        if storage not in ("text", "zoned", "packed"):
            raise SchemaMismatchError(f"{where}: line {number}: storage must be text, zoned "
                                      "or packed")
        fields.append(Field(row["name"], start, width, cast(Storage, storage), places))
    return fields


def _parse_sas(text: str, where: str) -> list[Field]:
    text = _COMMENT.sub(" ", text)
    text = re.sub(r"(?m)^\s*\*[^;]*;", " ", text)
    found = _INPUT.search(text.encode("utf-8", errors="replace"))
    if found is None:
        raise SchemaMismatchError(f"{where}: no INPUT statement in the SAS program")
    body = found.group(1).decode("utf-8", errors="replace")
    fields: list[Field] = []
    if "@" in body:
        for match in _POINTER.finditer(body):
            start, name, dollar, informat, width, places = match.groups()
            storage = _storage(informat.lower(), bool(dollar), where, name)
            fields.append(Field(name, int(start), int(width), storage,
                                int(places) if places else None))
        leftover = _POINTER.sub(" ", body).strip()
    else:
        for match in _RANGE.finditer(body):
            name, dollar, first, last, places = match.groups()
            end = int(last) if last else int(first)
            fields.append(Field(name, int(first), end - int(first) + 1, "text",
                                int(places) if places else None))
        leftover = _RANGE.sub(" ", body).strip()
    if leftover:
        raise SchemaMismatchError(f"{where}: the INPUT statement has parts this tool does not "
                                  "read (list input or other informats); give every field a "
                                  "column range or an @position with a $w., w.d, zdw.d or "
                                  "pdw.d informat")
    return fields


def _storage(informat: str, dollar: bool, where: str, name: str) -> Storage:
    if dollar or informat in ("$", "char", "$char"):
        return "text"
    if informat in ("zd", "s370fzd"):
        return "zoned"
    if informat in ("pd", "s370fpd"):
        return "packed"
    if informat in ("", "f"):
        return "text"
    raise SchemaMismatchError(f"{where}: field {name}: informat {informat} is not read; use "
                              "$w., w.d, zdw.d or pdw.d")
