"""MS Access databases: ``.mdb`` (Jet 3/4) and ``.accdb`` (ACE), through mdbtools.

mdbtools reads only a path, so the member's bytes go into an anonymous
memory file (``memfd``) that the mdbtools processes inherit and open as
``/proc/self/fd/N``: nothing touches a disk. The table is the schema's
``Dataset.table`` (case-insensitive), else the one table whose columns match
the schema; lookup tables beside it are ignored.

Column types come from ``mdb-schema``; ``mdb-export`` writes CSV to a pipe with
four-digit-year dates. Date/Time columns become Date (Datetime when a time of
day is present), Yes/No Boolean, whole-number types Int64 (a CASE_ID stored as a
Long Integer is zero-padded by coercion), Double/Single/Currency Float64.
mdbtools prints dates it cannot represent (before 1899-12-30, after 9999) as
``1900-01-00``: such a column stays text, its good dates written in the
schema's date format and the bad ones as printed, so those rows are quarantined
as not-a-date, never given a wrong date.

A password-encrypted ACE database (Office encryption) cannot be read by
mdbtools: it is refused with :class:`DecryptionError`, before mdbtools runs.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl

from ..errors import DecryptionError, ReadError, SchemaMismatchError
from ..schema import Column, Dataset
from ._base import SourceTable, match_columns

TIMEOUT_SECONDS = 1800
"""A hostile or damaged file must not hang the run."""
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
EXPORT_BIND_SIZE = 200_000
"""mdb-export's fixed buffer per value (bytes, with the terminating NUL); a
longer Memo is cut short by mdbtools, with no option to raise it."""

_MAGIC = (b"Standard Jet DB", b"Standard ACE DB")
_HEADER_MASK_KEY = bytes.fromhex("c7da396b")
"""RC4 key that masks the Jet 4/ACE header page (0x6b39dac7, little-endian)."""
_ENCODING_KEY_OFFSET = 0x3E
_INTEGER = {"Byte", "Integer", "Long Integer"}
_FLOAT = {"Single", "Double", "Currency"}
_TEXT = {"Text", "Memo/Hyperlink", "OLE", "Binary", "Replication ID"}
_JET3_CHARSET = {"MDB_JET3_CHARSET": "CP1252"}
"""Jet 3 text is Windows-1252 unless the environment says otherwise."""


def sniff(head: bytes) -> bool:
    """The Jet/ACE signature at bytes 4..19."""
    return head[4:19] in _MAGIC


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
        raw = _export(db, name, wanted)
    frame = pl.DataFrame([
        _typed(raw.get_column(column.name), column, spec, member).alias(spec.source)
        for spec, column in zip(dataset.columns, wanted, strict=True)])
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
        raw = _export(db, table, tables[table])
    return pl.DataFrame([_typed(raw.get_column(c.name), c, None, member)
                         for c in tables[table]])


def list_tables(data: bytes, member: str = "database") -> dict[str, int]:
    """Every user table and its row count, as mdbtools reports them."""
    with _database(data, member) as db:
        return {name: db.count(name) for name in db.tables()}


def _export(db: _Database, table: str, wanted: list[AccessColumn]) -> pl.DataFrame:
    """The table's text, all columns, after checking the wanted ones can be exported."""
    for column in wanted:
        if _kind(column) is None:
            raise ReadError(
                f"{db.member}: column {column.name} of table {table} has an Access type "
                f"({column.type}) that mdbtools cannot export (attachment, multi-value or "
                "Date/Time Extended); ask the sender to change it to a standard type, "
                "or to export CSV")
    raw = db.export(table, [c.name for c in db.tables()[table]])
    expected = db.count(table)
    if raw.height != expected:
        raise ReadError(f"{db.member}: table {table} has {expected} rows but {raw.height} "
                        "were exported; the database may be damaged, ask for it again")
    return raw


# --- mdbtools over a memory file ----------------------------------------------------------

class _Database:
    """mdbtools commands against one memory file."""

    def __init__(self, fd: int, member: str) -> None:
        self.fd, self.member = fd, member
        self.path = f"/proc/self/fd/{fd}"  # the child's own descriptor, inherited
        self._tables: dict[str, list[AccessColumn]] | None = None

    def run(self, *args: str) -> bytes:
        try:
            done = subprocess.run(list(args), pass_fds=(self.fd,), capture_output=True,
                                  timeout=TIMEOUT_SECONDS, check=False,
                                  # C numbers: a decimal comma would break the CSV
                                  env={**_JET3_CHARSET, **os.environ, "LC_ALL": "C.UTF-8"})
        except FileNotFoundError:
            raise ReadError(f"{self.member}: reading Access needs mdbtools "
                            f"({args[0]} not found); install it (apt-get install "
                            "mdbtools)") from None
        except subprocess.TimeoutExpired:
            raise ReadError(f"{self.member}: {args[0]} did not finish in "
                            f"{TIMEOUT_SECONDS} s; the database may be damaged") from None
        if done.returncode != 0:
            # stderr is not shown: it may name objects or quote values
            raise ReadError(f"{self.member}: mdbtools could not read the database "
                            f"({args[0]} failed); it is damaged, truncated or not an "
                            "Access database. Ask the sender for it again, or for CSV")
        return done.stdout

    def tables(self) -> dict[str, list[AccessColumn]]:
        if self._tables is None:
            names = [n for n in self.run("mdb-tables", "-1", self.path)
                     .decode("utf-8", "replace").splitlines() if n]
            schema = self.run("mdb-schema", "--no-not-null", "--no-indexes",
                              "--no-relations", "--no-default-values", self.path,
                              "access").decode("utf-8", "replace")
            parsed = _parse_schema(schema)
            self._tables = {n: parsed.get(n, []) for n in names}
        return self._tables

    def count(self, table: str) -> int:
        text = self.run("mdb-count", self.path, table).strip()
        if not text.isdigit():
            raise ReadError(f"{self.member}: mdb-count gave no row count for table {table}")
        return int(text)

    def export(self, table: str, names: list[str]) -> pl.DataFrame:
        # no header (a name may hold a comma); dates with four-digit years;
        # binary as hex so the CSV stays valid UTF-8
        out = self.run("mdb-export", "-H", "-D", "%Y-%m-%d", "-T", DATETIME_FORMAT,
                       "-b", "hex", self.path, table)
        if not out.strip():
            return pl.DataFrame({n: pl.Series([], dtype=pl.Utf8) for n in names})
        try:
            return pl.read_csv(io.BytesIO(out), has_header=False, new_columns=names,
                               infer_schema=False, quote_char='"', encoding="utf8")
        except (pl.exceptions.ComputeError, pl.exceptions.ShapeError):
            raise ReadError(f"{self.member}: the export of table {table} could not be "
                            "parsed (invalid UTF-8 or a broken row); ask the sender for "
                            "a CSV export") from None


@contextlib.contextmanager
def _database(data: bytes, member: str) -> Iterator[_Database]:
    """The bytes in an anonymous memory file, for mdbtools to open by path."""
    if password_encrypted(data):
        raise DecryptionError(
            f"{member}: the Access database is encrypted/password-protected, which "
            "mdbtools cannot read; ask the sender for an unencrypted export (or CSV)")
    fd = os.memfd_create("ingest-access", os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        yield _Database(fd, member)
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

def _kind(column: AccessColumn) -> str | None:
    if column.type == "Boolean":
        return "bool"
    if column.type in _INTEGER or (column.type == "Numeric" and column.scale == 0):
        return "int"
    if column.type in _FLOAT or column.type == "Numeric":
        return "float"
    if column.type == "DateTime":
        return "date"
    if column.type in _TEXT:
        return "text"
    return None  # Unknown_00xx: attachments, multi-value, Date/Time Extended


def _typed(text: pl.Series, column: AccessColumn, spec: Column | None,
           member: str) -> pl.Series:
    """The exported text as Access typed it; text where a value does not parse."""
    kind = _kind(column)
    present = text.is_not_null() & (text != "")
    if kind == "text":
        if column.type in ("Text", "Memo/Hyperlink") and \
                (text.str.len_bytes() >= EXPORT_BIND_SIZE - 1).any():
            raise ReadError(f"{member}: a value of column {column.name} reaches mdbtools' "
                            f"export limit ({EXPORT_BIND_SIZE - 1} bytes) and may be cut "
                            "short; ask the sender for a CSV export")
        return text
    if kind == "bool":
        typed = text.replace_strict({"1": True, "0": False}, default=None,
                                    return_dtype=pl.Boolean)
    elif kind == "int":
        typed = text.cast(pl.Int64, strict=False)
    elif kind == "float":
        # mdbtools prints 16 significant digits (9.04 -> 9.039999999999999);
        # 15 recover the value that was entered
        typed = text.cast(pl.Float64, strict=False).round_sig_figs(15)
    else:
        typed = text.str.strptime(pl.Datetime("us"), DATETIME_FORMAT, strict=False, exact=True)
    if (present & typed.is_null()).any():
        if kind != "date" or spec is None or spec.kind != "date":
            return text
        rendered = typed.dt.strftime(_date_format(spec))
        return pl.select(pl.when(typed.is_not_null()).then(rendered).otherwise(text)) \
            .to_series()
    if kind == "date":
        values = typed.drop_nulls()
        if (values.dt.truncate("1d") == values).all():
            return typed.dt.date()
    return typed


def _date_format(spec: Column) -> str:
    """The column's first date format with a four-digit year: it parses back exactly."""
    return next((f for f in spec.date_formats if "%Y" in f and "%H" not in f), "%Y-%m-%d")


def _reader():  # noqa: ANN202
    from . import Reader

    return [Reader("access", sniff, read)]


READERS = _reader()

__all__ = ["READERS", "list_tables", "password_encrypted", "read", "read_table", "sniff"]
