"""Reading a delivery's table without a schema: every column as the sender gave it.

For drafting a schema from a delivery. The readers match a schema's header, so
the header is looked at first (the first line of delimited text, the fullest of
a workbook's first rows, an Access table's column list), a schema of text
columns named after it is made, and the member is read through the very same
reader a run uses. Text formats give text; an Access table gives the types its
columns carry. Nothing is written anywhere.
"""

from __future__ import annotations

import csv as _stdcsv
import io
from datetime import date

import polars as pl

from ..errors import DecryptionError, ReadError, guard
from ..formats import Format, Kind, classify
from ..media import Member
from ..schema import Column, Dataset
from . import csv as _csv
from ._base import SourceTable

_DELIMITERS = (",", "\t", ";", "|")


def read_as_delivered(members: list[Member], encodings: tuple[str, ...] = ("utf-8", "cp1252"),
                      table: str | None = None, member: str | None = None) -> SourceTable:
    """The delivery's one table, every column as delivered, under its own header.

    ``encodings`` are tried for text as a schema's would be; ``table`` names the
    table of an Access database (else its largest table is read, and the others
    are named in a note); ``member`` names the file to read when the delivery
    holds several (its name or its path inside the delivery). More than one table
    member, none named, is refused, naming them.
    """
    if member is not None:
        named = [m for m in members if m.name == member or m.name.endswith("/" + member)]
        if not named:
            raise ReadError(f"no member {member} in the delivery (members: "
                            + ", ".join(m.name for m in members[:20]) + ")")
        members = named
    tables: list[tuple[Member, Format]] = []
    for each in members:
        fmt = classify(each)
        if fmt.kind is Kind.ENCRYPTION:
            raise DecryptionError(f"{each.name}: encrypted ({fmt.title}) and not "
                                  "decrypted; give the password or key")
        if fmt.kind is Kind.TABLE:
            tables.append((each, fmt))
    if not tables:
        raise ReadError("no table found in the delivery: no member is CSV, TSV, a workbook "
                        "or an Access database")
    if len(tables) > 1:
        raise ReadError("more than one member holds a table: "
                        + ", ".join(m.name for m, _ in tables[:20])
                        + "; name the one to draft from (--member)")
    found, fmt = tables[0]
    with guard(f"{found.name}: reading {fmt.name}", ReadError):
        if fmt.name == "delimited":
            return _delimited(found, encodings)
        if fmt.name == "access":
            return _access(found, table)
        from . import stats  # registers into this package: imported once it is loaded

        if fmt.name in stats.FORMATS:  # typed as the file declares, labels as levels
            names = stats.column_names(fmt.name, found.data, found.name)
            return stats.read_stats(fmt.name, found.data, text_dataset(names, encodings),
                                    found.name)
        return _workbook(found, fmt)


def text_dataset(header: list[str], encodings: tuple[str, ...] = ("utf-8", "cp1252"),
                 table: str | None = None) -> Dataset:
    """A schema of text columns, one per header name, that accepts every row."""
    import pandera.polars as pa

    columns = tuple(Column(h, f"c{i}", "string", nullable=True) for i, h in enumerate(header))

    def rules(_: date) -> pa.DataFrameSchema:
        return pa.DataFrameSchema({})

    return Dataset("as-delivered", "0", columns, rules, table=table, encodings=encodings,
                   null_tokens=())


def _header_names(cells: list[object]) -> list[str]:
    """The header's names; a column without a name (R's row names, a spacer column) is
    left out, as a run leaves out any column its schema does not name."""
    names = [str(c).strip() for c in cells if c is not None and str(c).strip()]
    if not names:
        raise ReadError("the table has no header row naming its columns; add one and "
                        "deliver again")
    return names


def _delimited(member: Member, encodings: tuple[str, ...]) -> SourceTable:
    utf8 = _csv.to_utf8(member.data, text_dataset([], encodings), member.name)
    # the first record, read as the csv module reads it (a quoted name may hold a line
    # break), split by the separator that gives the most fields
    head = utf8.text[:1 << 16].lstrip(b"\r\n").decode("utf-8", errors="ignore")

    def first_record(sep: str) -> list[str]:
        return next(_stdcsv.reader(io.StringIO(head, newline=""), delimiter=sep), [])

    sep = max(_DELIMITERS, key=lambda d: len(first_record(d)))
    try:
        # the names as the reader's parser gives them (it keeps a doubled quote doubled)
        names: list[object] = list(pl.read_csv(io.BytesIO(head.encode("utf-8")), separator=sep,
                                               n_rows=0, infer_schema=False).columns)
    except pl.exceptions.PolarsError:
        names = list(first_record(sep))
    header = _header_names(names)
    return _contiguous(_csv.read_utf8(utf8, text_dataset(header, encodings), member.name))


def _workbook(member: Member, fmt: Format) -> SourceTable:
    """The sheet row with the most filled cells among each sheet's first rows is the header."""
    from .excel._book import _open
    from .excel._shape import HEADER_SCAN_ROWS

    book = _open(member.data, fmt.name)
    best: list[object] = []
    for index in range(len(book.sheet_names)):
        loaded = book.load_sheet(index, header_row=None, n_rows=HEADER_SCAN_ROWS,
                                 dtypes="string")
        rows = pl.from_arrow(loaded.to_arrow())
        assert isinstance(rows, pl.DataFrame)
        for row in rows.rows():
            if sum(c is not None and str(c).strip() != "" for c in row) > \
                    sum(c is not None and str(c).strip() != "" for c in best):
                best = list(row)
    if not best:
        raise ReadError(f"{member.name}: every sheet is empty")
    header = _header_names(best)
    reader = fmt.handler
    return _contiguous(reader.read(member.data, text_dataset(header), member.name))


def _access(member: Member, table: str | None) -> SourceTable:
    from . import access

    counts = access.list_tables(member.data, member.name)
    if not counts:
        raise ReadError(f"{member.name}: the database holds no table")
    if table is None:
        table = max(counts, key=lambda t: (counts[t], t))
    elif table not in counts:
        raise ReadError(f"{member.name}: no table {table} (tables: "
                        f"{', '.join(sorted(counts)[:20])})")
    frame = access.read_table(member.data, table, member.name)
    notes = [f"table {table} of {', '.join(sorted(counts))}"] if len(counts) > 1 else []
    return SourceTable(member.name, "access", frame, None, None, notes)


def _contiguous(table: SourceTable) -> SourceTable:
    from dataclasses import replace

    return replace(table, frame=table.frame.rechunk())


__all__ = ["read_as_delivered", "text_dataset"]
