"""Look inside a delivery without running it: ``ingest inspect DELIVERY [--schema S]``.

The delivery is opened and decrypted in memory exactly as a run opens it
(:func:`ingest.media.open_delivery`, the format registry, the readers); with a
schema, its table is read and validated exactly as a run does
(:func:`ingest.readers.read_delivery_table`, :func:`ingest.validate.validate`).
Nothing is written: no output folder, no staging area, no lock, no audit
record, no key. The keyring is only read (GnuPG's home, to decrypt OpenPGP).

What is reported is counts and names only: members (name, size, format), the
table chosen, and per column its kind as read, its share of nulls and its count
of distinct values; with a schema, rows per rule that would be quarantined and
whether the delivery would be accepted. Never a value from a row.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from . import catalog
from .errors import KeyringError, MediaError, ReadError, guard
from .formats import Kind, classify
from .keys import session
from .media import Delivery, Member, open_delivery
from .pipeline import datasets_of
from .readers import SourceTable, read_delivery_tables, read_member, stats
from .readers.access import list_tables, read_table
from .schema import Column, Dataset
from .settings import Settings, load_settings
from .validate import validate

_DELIMITERS = (",", "\t", ";", "|")
_header_null_tokens: tuple[str, ...] = ("", "NA", ".", "NULL")
"""Without a schema, what counts as null: the default of :class:`Dataset`."""
_HEAD = 1 << 16


@dataclass
class Inspection:
    """Everything ``ingest inspect`` says: names and counts, never a row's value."""

    delivery: dict[str, Any]
    members: list[dict[str, Any]]
    tables: list[dict[str, Any]] = field(default_factory=list)
    """Per table: member, format, encoding, rows, how it was chosen, ``columns``;
    with a schema also ``schema`` (name, version, source, SHA-256) and ``validation``."""
    accepted: bool | None = None
    """With schemas: whether a run would publish the delivery (every table within
    the quarantine share; one table over it rejects them all). None without."""
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"delivery": self.delivery, "members": self.members, "tables": self.tables,
                "accepted": self.accepted, "warnings": self.warnings}


def inspect_delivery(path: str | Path, *,
                     schema: str | Dataset | Sequence[str | Dataset] | None = None,
                     settings: Settings | None = None,
                     delivery_date: date | None = None) -> Inspection:
    """Open ``path`` in memory and describe it; with ``schema`` (one spec or dataset,
    or several, one per table, as ``ingest run`` takes them), a dry run of the rules."""
    settings = settings or load_settings()
    datasets = datasets_of(schema) if schema else ()
    delivery = _opened(path, settings)
    found = Inspection(
        delivery={"source": Path(delivery.source).name, "sha256": delivery.sha256,
                  "id": delivery.id, "checksums_verified": delivery.checksums_verified},
        members=[_member(m) for m in delivery.members],
        warnings=list(delivery.warnings))
    if not datasets:
        table, chosen = _any_table(delivery.members)
        found.tables = [_described(table, chosen, _header_null_tokens)]
        found.warnings += table.notes
        if not looks_like_header(table.frame.columns):
            # the first row may be data: its cells are never shown
            for i, entry in enumerate(found.tables[0]["columns"]):
                entry["name"] = f"column_{i + 1}"
            found.warnings.append("the first row does not look like a header (a cell is "
                                  "empty, repeated, or starts with a digit or a sign), so it "
                                  "may be data: column names are not shown")
        return found
    tables = read_delivery_tables(delivery.members, datasets)
    chosen = "the one member whose columns match the schema" if len(datasets) == 1 else \
        "the table whose columns match this schema"
    for table, dataset in zip(tables, datasets, strict=True):
        entry = _described(table, chosen, dataset.null_tokens)
        entry.update(_dry_run(table, dataset, delivery_date or date.today(),
                              settings.max_quarantine_share))
        found.tables.append(entry)
        found.warnings += table.notes
    found.accepted = all(t["validation"]["accepted"] for t in found.tables)
    return found


def _opened(path: str | Path, settings: Settings) -> Delivery:
    """The delivery opened as a run opens it, but GnuPG is used only in a keyring's
    existing home: a run would create one (``gpg-agent.conf``, gpg's key box), a
    dry run does not."""
    home = settings.gnupg_home if settings.gnupg_home.is_dir() else None
    try:
        return open_delivery(path, passphrase=session.passphrase(), gnupg_home=home,
                             limits=settings.limits)
    except MediaError as exc:
        if home is None and "no GnuPG home" in str(exc):
            raise KeyringError(f"{exc}: the keyring at {settings.home} has no GnuPG home; "
                               "run 'ingest keys init' (or set INGEST_HOME to the keyring "
                               "folder), as a run needs") from None
        raise


def _described(table: SourceTable, chosen: str, null_tokens: tuple[str, ...]
               ) -> dict[str, Any]:
    return {"member": table.member, "format": table.format, "encoding": table.encoding,
            "rows": table.rows, "trailer_count": table.trailer_count, "chosen": chosen,
            "columns": [_profile(table.frame[c], null_tokens) for c in table.frame.columns]}


def _dry_run(table: SourceTable, dataset: Dataset, when: date,
             max_share: float) -> dict[str, Any]:
    """What the run's validation would do to the table (the same function)."""
    result = validate(table, dataset, when)
    share = result.rows_quarantined / max(result.rows_in, 1)
    return {
        "schema": catalog.describe(dataset),
        "clean": [{"name": c.name, "kind": c.kind} for c in dataset.columns],
        "validation": {
            "rows_in": result.rows_in, "rows_accepted": result.rows_accepted,
            "rows_quarantined": result.rows_quarantined,
            "quarantine_reasons": dict(sorted(result.reasons.items(),
                                              key=lambda kv: (-kv[1], kv[0]))),
            "repairs": result.repairs, "quarantine_share": round(share, 6),
            "max_quarantine_share": max_share, "accepted": share <= max_share}}


def _member(member: Member) -> dict[str, Any]:
    fmt = classify(member)
    return {"name": member.name, "size": len(member), "format": fmt.name,
            "title": fmt.title, "kind": fmt.kind.name.lower()}


# -- without a schema: the largest table, every column as delivered ------------------

def _any_table(members: list[Member]) -> tuple[SourceTable, str]:
    """The largest table member read with every column it has (text as text)."""
    tables = [m for m in members if classify(m).kind is Kind.TABLE]
    if not tables:
        raise ReadError("no table found in the delivery: "
                        + "; ".join(f"{m.name} ({classify(m).title})" for m in members[:20]))
    member = max(tables, key=len)
    how = "the only table member" if len(tables) == 1 else \
        f"the largest of {len(tables)} table members"
    fmt = classify(member)
    if fmt.name == "access":
        return _access(member, how)
    if fmt.name != "delimited":
        typed = _typed_sheet(member, fmt.name)
        if typed is not None:
            return typed, how + ", its first sheet with a header, cells typed as stored"
    return read_member(member, _header_dataset(member, fmt.name), fmt), how


def _typed_sheet(member: Member, fmt: str) -> SourceTable | None:
    """The first sheet with a header, each column of the type its cells carry
    (calamine's reading; a column of mixed cells is text). None: calamine cannot
    open the workbook alone, so the workbook reader reads it, every column as text."""
    import fastexcel

    try:
        book = fastexcel.read_excel(member.data)
        for index in range(len(book.sheet_names)):
            sheet = book.load_sheet(index)
            if any(not c.name.startswith("__UNNAMED__") for c in sheet.available_columns()):
                return SourceTable(member.name, fmt, sheet.to_polars())
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # noqa: BLE001 - calamine's errors (and panics) may quote cells
        return None
    return None


def _access(member: Member, how: str) -> tuple[SourceTable, str]:
    rows = list_tables(member.data, member.name)
    if not rows:
        raise ReadError(f"{member.name}: the database holds no table")
    name = max(rows, key=lambda t: (rows[t], t))
    with guard(f"{member.name}: reading table {name}", ReadError):
        frame = read_table(member.data, name, member.name)
    how += f", its largest table {name} (of {len(rows)}: {', '.join(sorted(rows)[:20])})"
    return SourceTable(member.name, "access", frame, "utf-8"), how


def _header_dataset(member: Member, fmt: str) -> Dataset:
    """A dataset asking for every column of the member's header, each as text, so
    the real reader reads the member as a run would."""
    if fmt in stats.FORMATS:
        names = stats.column_names(fmt, member.data, member.name)
    else:
        names = _workbook_header(member) if fmt != "delimited" else _text_header(member)
    seen: set[str] = set()
    columns = []
    for i, name in enumerate(names):
        key = name.strip().upper()
        if not key or key in seen:
            continue
        seen.add(key)
        columns.append(Column(name, f"column_{i + 1}", "string", nullable=True))
    if not columns:
        raise ReadError(f"{member.name}: no header row found")
    return Dataset("inspect", "0", tuple(columns), rules=_no_rules)


def _no_rules(_when: date) -> Any:
    raise AssertionError("inspect reads only; it never validates without a schema")


def _text_header(member: Member) -> list[str]:
    head = member.data[:_HEAD]
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            text = head.decode(encoding)
            break
        except UnicodeDecodeError as exc:
            if exc.start >= len(head) - 4:  # a character cut by the 64 KiB window
                text = head[:exc.start].decode(encoding)
                break
    else:
        text = head.decode("latin-1")
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    sep = max(_DELIMITERS, key=line.count)
    return next(csv.reader([line], delimiter=sep), [])


def _workbook_header(member: Member) -> list[str]:
    import fastexcel

    with guard(f"{member.name}: reading the workbook's header", ReadError):
        book = fastexcel.read_excel(member.data)
        for index in range(len(book.sheet_names)):
            sheet = book.load_sheet(index, n_rows=1)
            names = [c.name for c in sheet.available_columns()]
            if any(not n.startswith("__UNNAMED__") for n in names):
                return names
    return []


def looks_like_header(names: list[str]) -> bool:
    """Whether a first row reads as column names: each starts with a letter or ``_``
    and holds only name characters, and no two are the same."""
    cleaned = [str(n).strip() for n in names]
    return len(set(cleaned)) == len(cleaned) and all(
        n and (n[0].isalpha() or n[0] == "_") and _NAME.fullmatch(n) for n in cleaned)


_NAME = re.compile(r"[\w .\-/()#%&]+")


# -- per column: counts only ----------------------------------------------------------

_KINDS = {pl.Utf8: "text", pl.Boolean: "bool", pl.Date: "date", pl.Time: "time"}


def kind_as_read(dtype: pl.DataType) -> str:
    """What the reader delivered: text, integer, float, decimal, bool, date, datetime,
    time (a text format delivers text; a workbook or a database its cells' types)."""
    if dtype.is_integer():
        return "integer"
    if dtype.is_float():
        return "float"
    if isinstance(dtype, pl.Decimal):
        return "decimal"
    if isinstance(dtype, pl.Datetime):
        return "datetime"
    for known, name in _KINDS.items():
        if dtype == known:
            return name
    return str(dtype).lower()


def _profile(series: pl.Series, null_tokens: tuple[str, ...]) -> dict[str, Any]:
    """Kind, null share and distinct count of one column; a null token counts as null."""
    rows = series.len()
    if series.dtype == pl.Utf8:
        stripped = series.str.strip_chars()
        values = series.filter(series.is_not_null() & ~stripped.is_in(list(null_tokens)))
    else:
        values = series.drop_nulls()
    return {"name": series.name, "kind": kind_as_read(series.dtype),
            "null_share": round(1 - values.len() / rows, 6) if rows else 0.0,
            "distinct": values.n_unique()}


def render(found: Inspection) -> str:
    """The inspection as text for a terminal: names and counts only."""
    d = found.delivery
    lines = [f"Delivery {d['id']} ({d['source']}, sha256 {d['sha256'][:16]}…)",
             f"  members ({len(found.members)})"]
    lines += [f"    {m['name']:<40} {m['size']:>14,} bytes  {m['title']}"
              for m in found.members]
    for t in found.tables:
        lines.append(f"  table: {t['member']} ({t['format']}"
                     + (f", {t['encoding']}" if t["encoding"] else "")
                     + f"), {t['rows']:,} rows; {t['chosen']}")
        clean = t.get("clean") or []
        lines.append(f"  columns ({len(t['columns'])})    kind as read   nulls   distinct")
        for i, c in enumerate(t["columns"]):
            declared = f"  -> {clean[i]['name']} ({clean[i]['kind']})" if i < len(clean) \
                else ""
            lines.append(f"    {c['name']:<20} {c['kind']:<12} {c['null_share']:>7.1%} "
                         f"{c['distinct']:>10,}{declared}")
        if "validation" in t:
            s, v = t["schema"], t["validation"]
            lines.append(f"  schema {s['name']} version {s['version']} ({s['source']}, "
                         f"sha256 {(s['sha256'] or 'unknown')[:16]})")
            lines.append(f"    rows accepted     {v['rows_accepted']:>10,}")
            lines.append(f"    rows quarantined  {v['rows_quarantined']:>10,} "
                         f"({v['quarantine_share']:.2%}, at most "
                         f"{v['max_quarantine_share']:.1%} allowed)")
            lines += [f"      {n:>8,}  {rule}" for rule, n in v["quarantine_reasons"].items()]
            lines += [f"    repaired {n:>10,}  {what}" for what, n in v["repairs"].items()]
    if found.accepted is not None:
        verdict = "would be accepted" if found.accepted else "would be REJECTED"
        lines.append(f"  the delivery {verdict}")
    lines += [f"  warning: {w}" for w in found.warnings]
    lines.append("  nothing was written")
    return "\n".join(lines)
