"""Readers: a member's bytes to a :class:`SourceTable`, the format found by content.

Every table format registers with :mod:`ingest.formats` (its recogniser, its
human name, and a :class:`Reader` as handler); :func:`classify` says what a
member is, and the reader of a table format reads it. Delimited text is the
fallback: it claims only what no other format does.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import polars as pl

from ..errors import DecryptionError, IngestError, ReadError, SchemaMismatchError, guard
from ..formats import Format, Kind, classify, register
from ..media import Member
from ..schema import Dataset
from . import csv as _csv
from . import fixed as _fixed
from ._as_delivered import read_as_delivered
from ._base import SourceTable, header_score


@dataclass(frozen=True)
class Reader:
    format: str
    read: Callable[[bytes, Dataset, str], SourceTable]
    text: tuple[Callable[[bytes, Dataset, str], Any], Callable[[Any, Dataset, str],
                                                             SourceTable]] | None = None
    """For a text format: (decode, parse), ``read`` in two steps. The member's bytes
    are handed over to ``decode`` (:meth:`Member.take`), so the delivery's
    plaintext is freed before the text is parsed; the table then never lives
    beside it."""


register(Format("delimited", Kind.TABLE, "delimited text (CSV, TSV)",
                lambda probe: _csv.sniff_text(probe.head),
                Reader("delimited", _csv.read_delimited, (_csv.to_utf8, _csv.read_utf8)),
                fallback=True))
FIXED_WIDTH = register(Format("fixed-width", Kind.TABLE, _fixed.TITLE, _fixed.never_by_content,
                              Reader("fixed-width", _fixed.read_fixed)))


def reader_for(member: Member) -> Reader | None:
    """The reader of the member's format, if it is a table format."""
    fmt = classify(member)
    return fmt.handler if fmt.kind is Kind.TABLE else None


def read_member(member: Member, dataset: Dataset, fmt: Format | None = None,
                keep: bool = False) -> SourceTable:
    """The member read as ``dataset``'s table. A text member's bytes are handed over
    to the reader (freed as it decodes them) unless ``keep``: another dataset of
    the delivery may still read the same member."""
    fmt = fmt or classify(member)
    if fmt.kind is Kind.ENCRYPTION:
        raise DecryptionError(f"{member.name}: {_passed_over(fmt)}; give the password or key "
                              "so it is decrypted before reading, or ask the sender for an "
                              "unencrypted copy")
    if fmt.kind is not Kind.TABLE:
        raise ReadError(f"{member.name}: {_passed_over(fmt)}; this tool reads CSV, TSV, "
                        "Excel, OpenDocument spreadsheets, Access databases, SPSS, Stata "
                        "and SAS files")
    reader: Reader = fmt.handler
    with guard(f"{member.name}: reading {reader.format}", ReadError):
        if reader.text is None or keep:
            return reader.read(member.data, dataset, member.name)
        decode, parse = reader.text
        return parse(decode(member.take(), dataset, member.name), dataset, member.name)


def _passed_over(fmt: Format) -> str:
    """Why a member that is not a table was passed over, naming its format."""
    if fmt.kind is Kind.NOT_READ:
        return f"{fmt.title}, a format this tool does not read"
    if fmt.kind is Kind.ENCRYPTION:
        return f"encrypted ({fmt.title}) and not decrypted"
    if fmt.kind is Kind.CONTAINER:
        return f"{fmt.title}, not opened"
    return "not a table format (no format this tool knows)"


def read_delivery_table(members: list[Member], dataset: Dataset) -> SourceTable:
    """The one table of the delivery that matches ``dataset``.

    Members that are not tables (notes, readme files, formats this tool does
    not read) are passed over; if no member or more than one matches the
    schema, the run stops and says so, naming each member and why it was
    passed over. A table member that cannot be read (encrypted, damaged, a file
    the parser cannot read) stops the run: it may hold the table.
    """
    tables: list[SourceTable] = []
    mismatches: list[str] = []
    failures: list[IngestError] = []
    passed: list[str] = []
    positioned = _fixed.positioned(members, dataset)  # a fixed-width delivery: see fixed.py
    for member in members:
        fmt = classify(member)
        if positioned is not None and _fixed.may_hold(fmt):
            fmt = FIXED_WIDTH
        if fmt.kind is not Kind.TABLE:
            passed.append(f"{member.name}: {_passed_over(fmt)}")
            continue
        try:
            tables.append(read_member(member, positioned or dataset, fmt))
        except SchemaMismatchError as exc:
            mismatches.append(str(exc))
        except (ReadError, DecryptionError) as exc:
            failures.append(exc)
    if failures:
        if len(failures) == 1:
            raise _with_others(failures[0], passed)
        raise ReadError(f"{len(failures)} members could not be read: "
                        + " | ".join(str(f) for f in failures) + _others(passed))
    if len(tables) == 1:
        return _contiguous(tables.pop())
    if not tables:
        if mismatches:
            raise SchemaMismatchError(mismatches[0] if len(mismatches) == 1 else
                                      "no member matches the schema: " + " | ".join(mismatches))
        shown = passed[:20] + ([f"and {len(passed) - 20} more"] if len(passed) > 20 else [])
        raise ReadError("no table found in the delivery; members passed over: "
                        + "; ".join(shown))
    raise ReadError("more than one member holds the table: "
                    + ", ".join(t.member for t in tables)
                    + "; deliver one table per delivery")


def read_delivery_tables(members: list[Member],
                         datasets: Sequence[Dataset]) -> list[SourceTable]:
    """The table of each dataset, in the order given: one delivery of several tables.

    With one dataset this is :func:`read_delivery_table`. With several, each
    member is offered to the datasets that may hold it (a workbook or database
    holds a table per sheet or per Access table, so every dataset looks inside
    it; delimited text holds one table, offered only to the datasets whose
    columns its header line names); each dataset must find exactly one table,
    or the run stops naming the dataset. A text member that only one dataset
    may hold is handed over to its reader, as in a single-table run.

    Fixed-width: a dataset with positions (declared, or a delivered layout that
    names its columns: :func:`fixed.positioned_each`) reads as records every text
    or unknown member whose header line names no other dataset's columns, as a
    single-table run would.
    """
    if len(datasets) == 1:
        return [read_delivery_table(members, datasets[0])]
    found: dict[str, list[SourceTable]] = {d.name: [] for d in datasets}
    mismatches: dict[str, list[str]] = {d.name: [] for d in datasets}
    failures: list[IngestError] = []
    passed: list[str] = []
    # a fixed-width table: its dataset, with positions (see fixed.py), reads as records
    # the text members no other dataset's header claims
    positions = _fixed.positioned_each(members, datasets)
    records = [p for p in positions if p is not None]
    for member in members:
        fmt = classify(member)
        by_header = [d for d, p in zip(datasets, positions, strict=True)
                     if p is None and fmt.kind is Kind.TABLE and _may_hold(member, fmt, d)]
        # a header line not in ASCII is offered to every text dataset (the reader
        # decides), but does not keep records from the positioned ones unless it
        # names a dataset's columns
        claimed = [d for d in by_header if _may_hold(member, fmt, d, strict=True)]
        as_records = records if _fixed.may_hold(fmt) and not claimed else []
        if as_records:
            by_header = claimed
        if fmt.kind is not Kind.TABLE and not as_records:
            passed.append(f"{member.name}: {_passed_over(fmt)}")
            continue
        candidates = [(d, fmt) for d in by_header] + [(d, FIXED_WIDTH) for d in as_records]
        offered = {d.name for d, _ in candidates}
        for dataset, position in zip(datasets, positions, strict=True):
            if dataset.name not in offered:
                mismatches[dataset.name].append(
                    f"{member.name}: not text records of schema '{dataset.name}'"
                    if position is not None else
                    f"{member.name}: its header lacks columns of schema '{dataset.name}'")
        for dataset, as_fmt in candidates:
            try:
                found[dataset.name].append(
                    read_member(member, dataset, as_fmt, keep=len(candidates) > 1))
            except SchemaMismatchError as exc:
                mismatches[dataset.name].append(str(exc))
            except (ReadError, DecryptionError) as exc:
                failures.append(exc)
                break  # the member is unreadable whichever table it holds
    if failures:
        if len(failures) == 1:
            raise _with_others(failures[0], passed)
        raise ReadError(f"{len(failures)} members could not be read: "
                        + " | ".join(str(f) for f in failures) + _others(passed))
    _one_member_one_table(found)
    tables = []
    for dataset in datasets:
        held = found[dataset.name]
        if not held:
            listed = " | ".join(mismatches[dataset.name][:10]) or "no table member"
            raise SchemaMismatchError(
                f"no table of schema '{dataset.name}' in the delivery ({listed})"
                + _others(passed) + "; every table of the run must be delivered")
        if len(held) > 1:
            raise ReadError(f"more than one member holds the table of schema "
                            f"'{dataset.name}': " + ", ".join(t.member for t in held)
                            + "; deliver one member per table")
        tables.append(_contiguous(held[0]))
    return tables


def _may_hold(member: Member, fmt: Format, dataset: Dataset, strict: bool = False) -> bool:
    """Whether the member may hold the dataset's table, from its header line alone
    (a text format; a workbook or database is looked into by its reader).

    A header that lacks any of the dataset's columns is refused by the reader too
    (:func:`match_columns`), so skipping such a member changes no outcome; it saves
    parsing a large table as the wrong dataset (a lookup whose columns are a few
    of the main table's). ``strict``: a header line not in ASCII must name the
    columns too (read as Latin-1, which any byte is), rather than being let through.
    """
    if fmt.handler.text is None:
        return True
    head = member.data[:1 << 16].removeprefix(codecs.BOM_UTF8)
    line = head.lstrip(b"\r\n").split(b"\n", 1)[0].rstrip(b"\r")
    if not line.isascii() and not strict:
        return True  # UTF-16, or names outside ASCII: let the reader decide
    text = line.decode("latin-1")
    score = max(header_score([c.strip().strip('"') for c in text.split(sep)], dataset)
                for sep in (",", "\t", ";", "|"))
    return score >= len(dataset.source_names)


def _one_member_one_table(found: dict[str, list[SourceTable]]) -> None:
    """A text member read as two datasets' table is ambiguous: say so."""
    claims: dict[str, list[str]] = {}
    for name, tables in found.items():
        for table in tables:
            if table.format in ("csv", "tsv", "fixed-width"):
                claims.setdefault(table.member, []).append(name)
    for member, names in claims.items():
        if len(names) > 1:
            raise ReadError(f"{member}: its header matches schemas "
                            + " and ".join(f"'{n}'" for n in names)
                            + "; a text file holds one table: give the schemas distinct "
                            "columns")


def _others(passed: list[str]) -> str:
    if not passed:
        return ""
    more = f" and {len(passed) - 10} more" if len(passed) > 10 else ""
    return " (other members passed over: " + "; ".join(passed[:10]) + more + ")"


def _with_others(error: IngestError, passed: list[str]) -> IngestError:
    """The error, of its own class, with the members passed over beside it."""
    if not passed:
        return error
    return type(error)(str(error) + _others(passed))


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


__all__ = ["Reader", "SourceTable", "read_as_delivered", "read_delivery_table", "read_member",
           "reader_for"]
