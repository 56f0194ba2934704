"""A first schema drafted from a delivery: ``ingest schema draft``.

The delivery is opened and decrypted in memory exactly as a run opens it, its
table read without a schema (every column as delivered), each column profiled
(:mod:`.infer`), and a schema module written in the declared-once idiom
(:mod:`.emit`). Before it is handed back, the draft is loaded and the delivery
validated against it in memory: a column any of whose values would not parse is
drafted as text instead, so the unedited draft quarantines no row for that.

Nothing is written but the draft; what is printed or raised holds counts and
names, never a value. The draft itself marks the lines that hold values from the
data (see :data:`.emit.FROM_THE_DATA`).
"""

from __future__ import annotations

import re
import types
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from ..errors import IngestError, ReadError, UsageError, guard
from ..media import Delivery, Member, open_delivery
from ..readers import SourceTable, read_as_delivered
from ..schema import Dataset
from ..settings import Settings, load_settings
from .emit import FROM_THE_DATA, Source, module_text
from .infer import Drafted, infer, null_tokens_seen
from .names import clean_names

_CHECK_ROUNDS = 3
_NAMES_USED = {"str", "pl", "pa", "date", "datetime", "time", "decimal", "dataset"}
"""Names the draft's annotations use: pandera reads a model's annotations with its
fields in scope, so a field of one of these names would hide it."""


@dataclass(frozen=True)
class Draft:
    """A drafted schema module and what it says, in counts and names only."""

    name: str
    text: str
    """The module's source (holds values from the data on its marked lines)."""
    columns: tuple[tuple[str, str], ...]
    """(clean name, kind) of each column."""
    rows: int
    demoted: tuple[str, ...] = ()
    """Columns drafted as text because some value did not parse as inferred."""


def draft_delivery(path: str | Path, *, name: str, passphrase: str | None = None,
                   settings: Settings | None = None, table: str | None = None,
                   member: str | None = None, delivery_date: date | None = None) -> Draft:
    """Open ``path`` as a run does and draft the schema ``name`` from its table (the
    member named ``member`` if it holds several; an Access database's ``table``, else
    its largest)."""
    from ..keys import session

    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name):
        # the name becomes output file names (<name>.parquet) and a Python string
        raise UsageError(f"{name!r} is not a dataset name: use letters, digits, '_' and '-', "
                         "starting with a letter")
    settings = settings or load_settings()
    if passphrase is not None:
        session.set_passphrase(passphrase)
    delivery = open_delivery(path, passphrase=session.passphrase(),
                             gnupg_home=settings.gnupg_home, limits=settings.limits)
    members = [m for m in delivery.members
               if member is None or m.name == member or m.name.endswith("/" + member)]
    with guard("listing the database's tables", ReadError):
        table = table or _access_table(members)
    source = read_as_delivered(delivery.members, table=table, member=member)
    return draft_table(source, name=name, delivery=delivery, table=table,
                       delivery_date=delivery_date)


def draft_table(source: SourceTable, *, name: str, delivery: Delivery | None = None,
                table: str | None = None, delivery_date: date | None = None) -> Draft:
    """The draft of a table read by :func:`ingest.readers.read_as_delivered`."""
    # a foreign error's message may quote a value: ours says only where it failed
    with guard(f"drafting a schema from {source.member}"):
        return _draft(source, name, delivery, table, delivery_date)


def _draft(source: SourceTable, name: str, delivery: Delivery | None, table: str | None,
           delivery_date: date | None) -> Draft:
    import pandera.polars as pa

    frame = source.frame
    tokens = null_tokens_seen(frame)
    names = clean_names(list(frame.columns), reserved=set(dir(pa.DataFrameModel)) | _NAMES_USED)
    # two at a time: polars releases the GIL, and each column is profiled alone
    with ThreadPoolExecutor(max_workers=2) as pool:
        columns = list(pool.map(lambda s, n: infer(frame[s], s, n, tokens), frame.columns,
                                names))
    about = Source(delivery.sha256 if delivery else "unknown", source.member, source.format,
                   frame.height, (delivery_date or date.today()).isoformat(), table,
                   source.encoding)
    demoted: list[str] = []
    for _ in range(_CHECK_ROUNDS):
        text = module_text(name, about, columns, tokens)
        failing = _failing_columns(text, source, delivery_date or date.today())
        if not failing:
            return Draft(name, text, tuple((c.name, c.kind) for c in columns), frame.height,
                         tuple(demoted))
        for col in columns:
            if col.name in failing:
                _as_text(col, failing[col.name])
                demoted.append(col.name)
    raise IngestError(f"the draft of '{name}' still fails on its own delivery after "
                      f"{_CHECK_ROUNDS} rounds; report this with the column kinds")


def load_draft(text: str, label: str = "draft") -> Dataset:
    """The ``DATASET`` a draft's text declares, loaded in memory (nothing written)."""
    import sys

    module = types.ModuleType(f"_ingest_draft_{abs(hash(text))}")
    # pandera resolves the model's annotations in its module's namespace
    sys.modules[module.__name__] = module
    try:
        exec(compile(text, label, "exec"), module.__dict__)  # noqa: S102 - our own text
    finally:
        del sys.modules[module.__name__]
    dataset = module.__dict__.get("DATASET")
    if not isinstance(dataset, Dataset):
        raise IngestError("the draft defines no DATASET")
    return dataset


def write_draft(draft: Draft, out: Path) -> Path:
    """Write the draft to ``out`` (owner-only), never over an existing file."""
    import os

    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"{out} exists; give another --out or remove it first") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(draft.text)
    return out


def _failing_columns(text: str, source: SourceTable, when: date) -> dict[str, set[str]]:
    """Column -> the reasons its values fail in the delivery under the draft."""
    from ..validate import validate

    result = validate(source, load_draft(text), when)
    failing: dict[str, set[str]] = {}
    for reason in result.reasons:
        column, colon, why = reason.rpartition(":")  # a column name may hold ":"
        if colon:
            failing.setdefault(column, set()).add(why)
    return failing


def _as_text(col: Drafted, reasons: set[str]) -> None:
    if reasons == {"not_nullable"}:
        col.nullable = True
        return
    was = col.kind
    col.kind = "string"
    col.suggested.clear()
    for key in ("date_formats", "datetime_formats", "time_formats", "timezone", "precision",
                "scale", "true_values", "false_values"):
        col.metadata.pop(key, None)
    col.notes.append(f"kept as text: as {was}, some values would not be read "
                     f"({', '.join(sorted(reasons))})")


def _access_table(members: list[Member]) -> str | None:
    """An Access database's largest table (the run is then told it by name)."""
    from ..formats import classify
    from ..readers import access

    for member in members:
        if classify(member).name == "access":
            counts = access.list_tables(member.data, member.name)
            if counts:
                return max(counts, key=lambda t: (counts[t], t))
    return None


__all__ = ["FROM_THE_DATA", "Draft", "draft_delivery", "draft_table", "load_draft",
           "write_draft"]
