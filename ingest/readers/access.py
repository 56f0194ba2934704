"""MS Access databases: ``.mdb`` (Jet 3/4) and ``.accdb`` (ACE), through mdbtools.

mdbtools reads only a path, so the member's bytes go into an anonymous
memory file (``memfd``) that the mdbtools processes inherit and open as
``/proc/self/fd/N``: nothing touches a disk. The table is the schema's
``Dataset.table`` (case-insensitive), else the one table whose columns match
the schema; lookup tables beside it are ignored.

Column types come from ``mdb-schema``; ``mdb-export`` writes CSV to a pipe with
four-digit-year dates, parsed and typed a batch of whole records at a time on a
second thread while mdb-export writes the rest. Date/Time columns become Date
(Datetime when a time of day is present), Yes/No Boolean, whole-number types
Int64 (a CASE_ID stored as a Long Integer is zero-padded by coercion),
Double/Single/Currency Float64, except where the schema declares a decimal: that
column stays mdbtools' text (Currency ``3.5000``), parsed exactly by the schema
(the mapping is ``ingest.kinds.ACCESS_KINDS``).
mdbtools prints dates it cannot represent (before 1899-12-30, after 9999) as
``1900-01-00``: such a column stays text, its good dates written in the
schema's date format and the bad ones as printed, so those rows are quarantined
as not-a-date, never given a wrong date.

A password-encrypted ACE database (Office encryption) cannot be read by
mdbtools: it is refused with :class:`DecryptionError`, before mdbtools runs.

A damaged or hostile database may make mdbtools write without end (the stall
watchdog only stops a child that goes silent), so what a child writes is bounded
as a container's expansion is (:meth:`_Database.output_limit`), and an export
that gives more rows than ``mdb-count`` declared for the table is stopped at the
batch that passes the count; either ends the child and refuses the database.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import cast

import numpy as np
import polars as pl

from .._fs import OutputActivity, Watchdog, child_environment, memory_file, widen_pipe
from ..errors import DecryptionError, ReadError, SchemaMismatchError
from ..kinds import ACCESS_KINDS, READ_AS_TEXT_FROM_ACCESS
from ..media._safety import RATIO_FLOOR
from ..schema import Column, Dataset
from ..settings import load_settings, stall_seconds
from . import Reader
from ._base import SourceTable, match_columns
from ._formats import ACCESS_MAGIC as _MAGIC
from ._formats import is_access as sniff

DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
EXPORT_BIND_SIZE = 200_000
"""mdb-export's fixed buffer per value (bytes, with the terminating NUL); a
longer Memo is cut short by mdbtools, with no option to raise it."""
EXPORT_BATCH_BYTES = 4 << 20
"""mdb-export's CSV is parsed and typed this many bytes (whole records) at a
time, on a second thread, while mdb-export is still writing the rest."""
_PIPE_BYTES = 1 << 20
_PIPE_PAUSE_SECONDS = 0.005
"""mdb-export writes 4 KiB at a time: a reader woken for every write (12,000
for 50 MB) slows it by a tenth. Pausing between reads lets a 1 MiB pipe fill
(about 300 KB come in the pause), so mdb-export never waits for the reader."""

_HEADER_MASK_KEY = bytes.fromhex("c7da396b")
"""RC4 key that masks the Jet 4/ACE header page (0x6b39dac7, little-endian)."""
_ENCODING_KEY_OFFSET = 0x3E
_BATCHES_AHEAD = 2
"""Export batches read but not yet typed, at most."""
_QUOTE, _NEWLINE = ord('"'), ord("\n")
_JET3_CHARSET = {"MDB_JET3_CHARSET": "CP1252"}
"""Jet 3 text is Windows-1252 unless the environment says otherwise."""


@dataclass(frozen=True)
class AccessColumn:
    name: str
    type: str
    """mdbtools' type name: ``Long Integer``, ``DateTime``, ``Text``, ``Numeric``, ..."""
    scale: int | None = None


def read(data: bytes, dataset: Dataset, member: str) -> SourceTable:
    """The dataset's table from the database, typed as Access stores it."""
    with _database(data, member) as db:
        tables = db.tables()
        name = _choose(tables, dataset, member)
        columns = tables[name]
        mapping = match_columns([c.name for c in columns], dataset, f"{member} (table {name})")
        by_name = {c.name: c for c in columns}
        wanted = [by_name[mapping[s]] for s in dataset.source_names]
        typed = _export(db, name, list(zip(wanted, dataset.columns, strict=True)))
    frame = pl.DataFrame([series.alias(spec.source)
                          for series, spec in zip(typed, dataset.columns, strict=True)])
    notes = [f"table {name} of {', '.join(sorted(tables))}"] if len(tables) > 1 else []
    return SourceTable(member, "accdb" if data[4:19] == _MAGIC[1] else "mdb", frame,
                       "utf-8", None, notes)


def read_table(data: bytes, table: str, member: str = "database") -> pl.DataFrame:
    """Any table of the database, typed as in :func:`read`, without a schema.

    Dates mdbtools cannot print keep the column as text.
    """
    with _database(data, member) as db:
        tables = db.tables()
        if table not in tables:
            raise ReadError(f"{member}: no table {table} (tables: "
                            f"{', '.join(sorted(tables)) or 'none'})")
        return pl.DataFrame(_export(db, table, [(c, None) for c in tables[table]]))


def list_tables(data: bytes, member: str = "database") -> dict[str, int]:
    """Every user table and its row count, as mdbtools reports them."""
    with _database(data, member) as db:
        return {name: db.count(name) for name in db.tables()}


def _export(db: _Database, table: str,
            wanted: list[tuple[AccessColumn, Column | None]]) -> list[pl.Series]:
    """The wanted columns of the table, typed, each for its schema column if any.

    The exported rows are checked against ``mdb-count``.
    """
    for column, _ in wanted:
        if _kind(column) is None:
            raise ReadError(
                f"{db.member}: column {column.name} of table {table} has an Access type "
                f"({column.type}) that mdbtools cannot export (attachment, multi-value or "
                "Date/Time Extended); ask the sender to change it to a standard type, "
                "or to export CSV")
    typers = [_ColumnTyper(column, spec, db.member) for column, spec in wanted]

    def take(batch: pl.DataFrame) -> None:
        for typer in typers:
            typer.add(batch.get_column(typer.column.name))

    # counted first: the export may not give more rows than the table declares
    expected = db.count(table)
    exported = db.export(table, [c.name for c in db.tables()[table]], take, expected)
    if exported != expected:
        raise ReadError(f"{db.member}: table {table} has {expected} rows but {exported} "
                        "were exported; the database may be damaged, ask for it again")
    return [typer.result() for typer in typers]


# --- mdbtools over a memory file ----------------------------------------------------------

@dataclass
class _Child:
    """A running mdbtools command, its output's activity and the stall watchdog
    (the one every child tool has: a hostile or damaged file must not hang the run)."""

    process: subprocess.Popen[bytes]
    activity: OutputActivity
    watchdog: Watchdog | None
    limit: int
    """Bytes the child may write in all (:meth:`_Database.output_limit`)."""
    refusal: str
    """What :class:`Runaway` says when the child passes ``limit``."""
    received: int = 0

    @property
    def program(self) -> str:
        return cast(list[str], self.process.args)[0]

    def read_output(self) -> Iterator[bytes]:
        """The output as it comes, each piece counted as progress and against the
        limit (a sum per piece of up to a MiB: no per-row work)."""
        assert self.process.stdout is not None
        while chunk := os.read(self.process.stdout.fileno(), _PIPE_BYTES):
            self.activity.moved()
            self.received += len(chunk)
            if self.received > self.limit:
                raise Runaway(self.refusal)  # the child is killed as the command is left
            yield chunk

    def check_stalled(self) -> None:
        """Once the child has ended: :class:`ToolStalled` naming it if the watchdog
        stopped it."""
        if self.watchdog is not None and self.watchdog.stop():
            raise self.watchdog.error(self.program)


class Runaway(ReadError):
    """An mdbtools child wrote more than the database can hold: it was stopped."""


class _Database:
    """mdbtools commands against one memory file."""

    def __init__(self, fd: int, member: str, size: int) -> None:
        self.fd, self.member, self.size = fd, member, size
        self.path = f"/proc/self/fd/{fd}"  # the child's own descriptor, inherited
        self._tables: dict[str, list[AccessColumn]] | None = None

    def output_limit(self) -> int:
        """Bytes one mdbtools child may write: what the delivery's limits let a
        container of the database's size expand to (``max_expansion_ratio`` times
        its size, judged past a MiB as for containers, and at most
        ``max_expanded_bytes``). A table's CSV is a few times its pages at most
        (a Yes/No bit becomes ``1,``); a child writing more is looping."""
        limits = load_settings().limits
        return min(limits.max_expanded_bytes,
                   max(RATIO_FLOOR, int(limits.max_expansion_ratio * self.size)))

    @contextlib.contextmanager
    def started(self, *args: str, table: str | None = None) -> Iterator[_Child]:
        """An mdbtools command running, its output on a pipe, under the stall
        watchdog and the output limit; killed if left early."""
        try:
            # stderr is never shown (it may name objects or quote values), so not kept
            process = subprocess.Popen(
                list(args), pass_fds=(self.fd,), stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                # C numbers: a decimal comma would break the CSV
                env={**_JET3_CHARSET, **child_environment("MDB", LC_ALL="C.UTF-8")})
        except FileNotFoundError:
            raise ReadError(f"{self.member}: reading Access needs mdbtools "
                            f"({args[0]} not found); install it (apt-get install "
                            "mdbtools)") from None
        with process:
            seconds = stall_seconds()
            activity = OutputActivity()
            limit = self.output_limit()
            of_table = f" for table {table}" if table is not None else ""
            refusal = (
                f"{self.member}: {args[0]} wrote more than {limit:,} bytes{of_table}, more "
                f"than a database of {self.size:,} bytes can hold under the delivery's limits "
                "(INGEST_MAX_EXPANSION_RATIO times its size, at most "
                "INGEST_MAX_EXPANDED_BYTES); it was stopped: the database is damaged or "
                "hostile. Ask the sender for it again, or for CSV")
            child = _Child(process, activity,
                           Watchdog(process, activity, seconds) if seconds else None,
                           limit, refusal)
            try:
                yield child
            finally:
                if process.poll() is None:
                    process.kill()
                if child.watchdog is not None:
                    child.watchdog.stop()

    def finish(self, child: _Child) -> bytes:
        """The output of a command from :meth:`started`, once it has succeeded."""
        out = b"".join(child.read_output())
        child.process.wait()
        child.check_stalled()
        if child.process.returncode != 0:
            raise self._failure(child)
        return out

    def _failure(self, child: _Child) -> ReadError:
        return ReadError(f"{self.member}: mdbtools could not read the database "
                         f"({child.program} failed); it is damaged, truncated or not an "
                         "Access database. Ask the sender for it again, or for CSV")

    def tables(self) -> dict[str, list[AccessColumn]]:
        if self._tables is None:
            with self.started("mdb-tables", "-1", self.path) as listing, \
                    self.started("mdb-schema", "--no-not-null", "--no-indexes",
                                 "--no-relations", "--no-default-values", self.path,
                                 "access") as schema:
                names = [n for n in self.finish(listing).decode("utf-8", "replace")
                         .splitlines() if n]
                parsed = _parse_schema(self.finish(schema).decode("utf-8", "replace"))
            self._tables = {n: parsed.get(n, []) for n in names}
        return self._tables

    def count(self, table: str) -> int:
        with self.started("mdb-count", self.path, table, table=table) as child:
            text = self.finish(child).strip()
        if not text.isdigit():
            raise ReadError(f"{self.member}: mdb-count gave no row count for table {table}")
        return int(text)

    def export(self, table: str, names: list[str],
               take: Callable[[pl.DataFrame], None], declared: int | None = None) -> int:
        """The table's rows, all columns as text, handed to ``take`` a batch at a time
        (on another thread, in order) while mdb-export writes the rest; the row count.

        ``declared``: the table's row count (``mdb-count``); an export that passes it
        is stopped at that batch, with :class:`Runaway`.
        """
        failure: ReadError | None = None
        rows = 0

        def counted(more: int) -> int:
            if declared is not None and rows + more > declared:
                raise Runaway(
                    f"{self.member}: mdb-export gave more rows for table {table} than the "
                    f"{declared:,} the database declares for it; it was stopped: the "
                    "database is damaged or hostile. Ask the sender for it again, or for CSV")
            return more

        # no header (a name may hold a comma); dates with four-digit years;
        # binary as hex so the CSV stays valid UTF-8
        with self.started("mdb-export", "-H", "-D", "%Y-%m-%d", "-T", DATETIME_FORMAT,
                          "-b", "hex", self.path, table, table=table) as child, \
                ThreadPoolExecutor(1, thread_name_prefix="access-export") as worker:
            process = child.process
            assert process.stdout is not None

            def parse(batch: bytes) -> int:
                try:
                    frame = pl.read_csv(batch, has_header=False, new_columns=names,
                                        infer_schema=False, quote_char='"', encoding="utf8")
                except pl.exceptions.PolarsError:  # its message may quote the text
                    raise ReadError(
                        f"{self.member}: the export of table {table} could not be parsed "
                        "(invalid UTF-8 or a broken row); ask the sender for a CSV "
                        "export") from None
                take(frame)
                return frame.height

            pending: deque[Future[int]] = deque()
            pipe = process.stdout.fileno()
            pause = _PIPE_PAUSE_SECONDS if widen_pipe(pipe, _PIPE_BYTES) else 0.0
            try:
                try:
                    for batch in _batches(child.read_output(), pause):
                        pending.append(worker.submit(parse, batch))
                        # at most _BATCHES_AHEAD wait to be typed: while they do,
                        # mdb-export waits on the pipe, and the plaintext stays bounded
                        while pending and (pending[0].done()
                                           or len(pending) > _BATCHES_AHEAD):
                            rows += counted(pending.popleft().result())
                    while pending:
                        rows += counted(pending.popleft().result())
                except Runaway:
                    raise  # not waited for: it may never end
                except ReadError as exc:
                    # mdb-export may have failed first: let it end (within the output
                    # limit), then say which
                    failure = exc
                    for future in pending:
                        future.cancel()
                    for _ in child.read_output():
                        pass
                process.wait()
            finally:
                for future in pending:  # anything else: stop at once
                    future.cancel()
        child.check_stalled()
        if process.returncode != 0:
            raise self._failure(child)
        if failure is not None:
            raise failure
        return rows


def _batches(chunks: Iterator[bytes], pause: float) -> Iterator[bytes]:
    """mdb-export's CSV in pieces of whole records, about EXPORT_BATCH_BYTES each.

    mdb-export quotes text with ``"`` and doubles a ``"`` inside it, so a newline
    (a Memo holds some) ends a record where the quotes before it are even in
    number. Each chunk is looked at once, as it arrives: output that never ends a
    record (a quote never closed) costs no more than any other.
    """
    buffer = bytearray()
    odd = False  # the quotes in the buffer so far are odd in number
    end = 0  # just past the buffer's last newline known to end a record
    for chunk in chunks:
        start = len(buffer)
        buffer += chunk
        if len(buffer) >= EXPORT_BATCH_BYTES:
            end, odd = _record_end(chunk, start, odd, end)
        else:  # no cut yet: only the parity is kept
            odd ^= chunk.count(b'"') % 2 == 1
        if len(buffer) >= EXPORT_BATCH_BYTES and end:
            with memoryview(buffer) as view, view[:end] as records:
                batch = bytes(records)
            del buffer[:end]
            end = 0  # the quotes before a record end are even: ``odd`` holds for the rest
            yield batch
        if pause:
            time.sleep(pause)
    if buffer:
        yield bytes(buffer)


def _record_end(chunk: bytes, start: int, odd: bool, end: int) -> tuple[int, bool]:
    """The last record end in the buffer once ``chunk`` (appended at ``start``) is
    counted, and whether the buffer's quotes are then odd in number."""
    odd_after = odd ^ (chunk.count(b'"') % 2 == 1)
    newline = chunk.rfind(b"\n")
    if newline < 0:
        return end, odd_after
    if not odd_after ^ (chunk.count(b'"', newline) % 2 == 1):
        return start + newline + 1, odd_after  # the usual case: the last newline ends one
    # the chunk's last newline is inside a quoted value: every newline, vectorised
    data = np.frombuffer(chunk, dtype=np.uint8)
    parity = (np.cumsum(data == _QUOTE) + odd) & 1  # per byte: quotes up to it, odd
    ends = np.flatnonzero((data == _NEWLINE) & (parity == 0))
    return (start + int(ends[-1]) + 1 if ends.size else end), odd_after


@contextlib.contextmanager
def _database(data: bytes, member: str) -> Iterator[_Database]:
    """The bytes in an anonymous memory file, for mdbtools to open by path."""
    if password_encrypted(data):
        raise DecryptionError(
            f"{member}: the Access database is encrypted/password-protected, which "
            "mdbtools cannot read; ask the sender for an unencrypted export (or CSV)")
    fd = memory_file(data, "ingest-access")
    try:
        yield _Database(fd, member, len(data))
    finally:
        os.close(fd)


def password_encrypted(data: bytes) -> bool:
    """An ACE database with Office (password) encryption.

    The header page is masked with a fixed RC4 key; under the mask, a non-zero
    encoding key means the pages are encrypted. Jet files with such a key use
    the old RC4 "encoding" whose key is in the file, which mdbtools reads.
    """
    if data[4:19] != _MAGIC[1] or len(data) < _ENCODING_KEY_OFFSET + 4:
        return False
    header = _rc4(_HEADER_MASK_KEY, data[0x18:_ENCODING_KEY_OFFSET + 4])
    return any(header[_ENCODING_KEY_OFFSET - 0x18:])


def _rc4(key: bytes, data: bytes) -> bytes:
    box = list(range(256))
    j = 0
    for i in range(256):
        j = (j + box[i] + key[i % len(key)]) & 0xFF
        box[i], box[j] = box[j], box[i]
    out = bytearray()
    i = j = 0
    for byte in data:
        i = (i + 1) & 0xFF
        j = (j + box[i]) & 0xFF
        box[i], box[j] = box[j], box[i]
        out.append(byte ^ box[(box[i] + box[j]) & 0xFF])
    return bytes(out)


_TABLE = re.compile(r"^CREATE TABLE \[([^\]]*)\]\s*\((.*?)^\);", re.MULTILINE | re.DOTALL)
_COLUMN = re.compile(r"^\s*\[([^\]]*)\]\s+(.+?)\s*,?\s*$", re.MULTILINE)


def _parse_schema(text: str) -> dict[str, list[AccessColumn]]:
    """Tables and their columns from ``mdb-schema``'s Access DDL."""
    tables = {}
    for table in _TABLE.finditer(text):
        columns = []
        for name, declared in _COLUMN.findall(table.group(2)):
            declared = declared.removesuffix(" NOT NULL")
            base = re.sub(r"\s*\(.*\)$", "", declared)
            scale = re.search(r"\(\d+,\s*(\d+)\)", declared)
            columns.append(AccessColumn(name, base, int(scale.group(1)) if scale else None))
        tables[table.group(1)] = columns
    return tables


def _choose(tables: dict[str, list[AccessColumn]], dataset: Dataset, member: str) -> str:
    """The schema's table by name, else the only one whose columns match."""
    if dataset.table:
        named = [t for t in tables if t.casefold() == dataset.table.casefold()]
        if named:
            return named[0]
    matching = []
    for name, columns in tables.items():
        try:
            match_columns([c.name for c in columns], dataset, member)
        except SchemaMismatchError:
            continue
        matching.append(name)
    if len(matching) == 1:
        return matching[0]
    listed = ", ".join(sorted(tables)[:20]) or "none"
    if matching:
        raise ReadError(f"{member}: several tables match schema '{dataset.name}' "
                        f"({', '.join(sorted(matching))}); name the table in the schema")
    wanted = f"no table {dataset.table} and " if dataset.table else ""
    raise SchemaMismatchError(f"{member}: {wanted}no table whose columns match schema "
                              f"'{dataset.name}' (tables: {listed}); check that the right "
                              "file and schema were given")


# --- typing the exported text -------------------------------------------------------------

def _kind(column: AccessColumn, spec: Column | None = None) -> str | None:
    """How the column's exported text is typed (the kinds table's Access mapping);
    None: a type mdbtools cannot export (attachments, multi-value, Date/Time Extended).
    A column the schema reads exactly (a decimal) stays mdbtools' text, so no value
    passes through a float on its way to the schema's parser."""
    mapped = ACCESS_KINDS.get(column.type)
    if mapped is None:
        return None
    if spec is not None and spec.kind in READ_AS_TEXT_FROM_ACCESS and mapped.read != "text":
        return "text"
    if column.type == "Numeric" and column.scale == 0:
        return "int"
    return mapped.read


class _ColumnTyper:
    """One exported column typed as Access stores it, a batch at a time.

    All its values parse: the type (a date column Date when every value is a
    whole day, else Datetime). One does not: the column stays text, except a
    date column for a date in the schema, whose good dates are written in the
    schema's date format and the bad ones as printed, so they are quarantined.
    """

    def __init__(self, column: AccessColumn, spec: Column | None, member: str) -> None:
        self.column, self.spec, self.member = column, spec, member
        self.kind = _kind(column, spec)
        self.mode = "text" if self.kind == "text" else "typed"
        self.texts: list[pl.Series] = []
        self.values: list[pl.Series] = []
        """Typed values ("typed") or dates rendered in the schema's format ("rendered")."""
        self.whole_days = True
        self.batches = 0

    def add(self, text: pl.Series) -> None:
        self.batches += 1
        if self.kind == "text":
            if self.column.type in ("Text", "Memo/Hyperlink") and \
                    (text.str.len_bytes() >= EXPORT_BIND_SIZE - 1).any():
                raise ReadError(f"{self.member}: a value of column {self.column.name} "
                                f"reaches mdbtools' export limit ({EXPORT_BIND_SIZE - 1} "
                                "bytes) and may be cut short; ask the sender for a CSV "
                                "export")
            self.texts.append(text)
            return
        if self.mode == "text":
            self.texts.append(text)
            return
        typed = _parsed(text, self.kind)
        if self.mode == "rendered":
            self.values.append(_rendered(typed, text, self.spec))
            return
        if (text.is_not_null() & (text != "") & typed.is_null()).any():
            if self.kind == "date" and self.spec is not None and self.spec.kind == "date":
                self.mode = "rendered"
                self.values = [_rendered(t, x, self.spec) for t, x in
                               zip([*self.values, typed], [*self.texts, text], strict=True)]
                self.texts = []
            else:
                self.mode = "text"
                self.texts.append(text)
                self.values = []
            return
        if self.kind == "date" and self.whole_days:
            days = typed.drop_nulls()
            self.whole_days = bool((days.dt.truncate("1d") == days).all())
        self.values.append(typed)
        self.texts.append(text)

    def result(self) -> pl.Series:
        if not self.batches:
            self.add(pl.Series(self.column.name, [], dtype=pl.Utf8))
        if self.mode == "text":
            return _joined(self.texts)
        values = _joined(self.values)
        if self.kind == "date" and self.mode == "typed" and self.whole_days:
            return values.dt.date()
        return values


def _joined(pieces: list[pl.Series]) -> pl.Series:
    return pieces[0] if len(pieces) == 1 else pl.concat(pieces, rechunk=False)


def _parsed(text: pl.Series, kind: str | None) -> pl.Series:
    """The values of a bool, int, float or date column; null where one does not parse."""
    if kind == "bool":
        return text.replace_strict({"1": True, "0": False}, default=None,
                                   return_dtype=pl.Boolean)
    if kind == "int":
        return text.cast(pl.Int64, strict=False)
    if kind == "float":
        # mdbtools prints 16 significant digits (9.04 -> 9.039999999999999);
        # 15 recover the value that was entered
        return text.cast(pl.Float64, strict=False).round_sig_figs(15)
    return text.str.strptime(pl.Datetime("us"), DATETIME_FORMAT, strict=False, exact=True)


def _rendered(typed: pl.Series, text: pl.Series, spec: Column | None) -> pl.Series:
    """Good dates in the schema's date format, the others as mdbtools printed them."""
    assert spec is not None
    return pl.select(pl.when(typed.is_not_null())
                     .then(typed.dt.strftime(spec.exact_date_format)).otherwise(text)) \
        .to_series()


READER = Reader("access", read)
"""The registry's handler of the format (declared in :mod:`._formats`)."""

__all__ = ["READER", "list_tables", "password_encrypted", "read", "read_table", "sniff"]
