"""Readers: a member's bytes to a :class:`SourceTable`, the format found by content.

Every format is one module with ``sniff(head) -> bool`` and
``read(data, dataset, member) -> SourceTable``, listed in :data:`READERS` in the
order they are tried (binary formats first, delimited text last).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import polars as pl

from ..errors import ReadError, SchemaMismatchError, guard
from ..media import Member
from ..schema import Dataset
from . import csv as _csv
from ._base import SourceTable


@dataclass(frozen=True)
class Reader:
    format: str
    sniff: Callable[[bytes], bool]
    read: Callable[[bytes, Dataset, str], SourceTable]
    text: tuple[Callable[[bytes, Dataset, str], Any], Callable[[Any, Dataset, str],
                                                             SourceTable]] | None = None
    """For a text format: (decode, parse), ``read`` in two steps. The member's bytes
    are handed over to ``decode`` (:meth:`Member.take`), so the delivery's
    plaintext is freed before the text is parsed; the table then never lives
    beside it."""


READERS: list[Reader] = []


def _register_builtin() -> None:
    from importlib import import_module

    for module in ("access", "excel"):
        try:
            mod = import_module(f"{__name__}.{module}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith(__name__):
                continue
            raise
        READERS.extend(mod.READERS)
    READERS.append(Reader("delimited", _csv.sniff_text, _csv.read_delimited,
                          (_csv.to_utf8, _csv.read_utf8)))


def reader_for(member: Member) -> Reader | None:
    head = member.data[:65536]
    return next((r for r in READERS if r.sniff(head)), None)


def read_member(member: Member, dataset: Dataset) -> SourceTable:
    reader = reader_for(member)
    if reader is None:
        raise ReadError(f"{member.name}: not a format this tool reads "
                        "(CSV, TSV, Excel, Access)")
    with guard(f"{member.name}: reading {reader.format}", ReadError):
        if reader.text is None:
            return reader.read(member.data, dataset, member.name)
        decode, parse = reader.text
        return parse(decode(member.take(), dataset, member.name), dataset, member.name)


def read_delivery_table(members: list[Member], dataset: Dataset) -> SourceTable:
    """The one table of the delivery that matches ``dataset``.

    Members that are not tables (notes, readme files) are passed over; if no
    member or more than one matches the schema, the run stops and says so.
    """
    tables: list[SourceTable] = []
    mismatches: list[str] = []
    for member in members:
        if reader_for(member) is None:
            continue
        try:
            tables.append(read_member(member, dataset))
        except SchemaMismatchError as exc:
            mismatches.append(str(exc))
    if len(tables) == 1:
        return _contiguous(tables.pop())
    if not tables:
        if mismatches:
            raise SchemaMismatchError(mismatches[0] if len(mismatches) == 1 else
                                      "no member matches the schema: " + " | ".join(mismatches))
        names = ", ".join(m.name for m in members[:10])
        raise ReadError(f"no table found in the delivery (members: {names})")
    raise ReadError("more than one member holds the table: "
                    + ", ".join(t.member for t in tables)
                    + "; deliver one table per delivery")


def _contiguous(table: SourceTable) -> SourceTable:
    """The table with each column in one piece, one column at a time.

    Readers leave columns in chunks (one per parsing thread or batch). Later
    steps that mix chunked and whole columns make polars merge every column,
    copying all of them at once; merging here, one column at a time, frees each
    chunked column before the next is merged.
    """
    columns = table.frame.get_columns()
    table = replace(table, frame=pl.DataFrame())
    merged: list[pl.Series] = []
    while columns:
        merged.append(columns.pop(0).rechunk())
    return replace(table, frame=pl.DataFrame(merged))


_register_builtin()

__all__ = ["READERS", "Reader", "SourceTable", "read_delivery_table", "read_member"]
