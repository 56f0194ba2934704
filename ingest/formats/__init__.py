"""What a member is: one registry of file formats, one classifier.

Every format the tool meets is registered once, by the module that handles it
(a container in :mod:`ingest.media`, an encryption layer in :mod:`ingest.crypto`,
a table reader in :mod:`ingest.readers`) or, for formats this tool knows but
does not read, in :mod:`ingest.formats.known`. An entry says what the format is
(:class:`Kind`), how to recognise it (a test on a :class:`Probe` of the whole
member), a human name for messages, and its capabilities; the handler that
opens or reads it is named, not imported (``"ingest.media.sevenzip:CONTAINER"``,
or a loader), and loaded the first time a member of that format is met
(:attr:`Format.handler`). Stages dispatch by :func:`classify` and ask
capabilities (:func:`capable`), never format names.

Declaring is cheap: the recognisers are byte tests (and the ZIP and OLE2
directory readers of this package), so classifying a CSV delivery loads no
archive, workbook or statistics library; each registering module is a small
declarations module of its stage (``ingest/media/_formats.py``, ...), apart
from the handlers.

Layers: this package sits below every stage (the import contract in
pyproject.toml, checked by ``lint-imports``): the stages import it and register
into it; it imports none of them, and loads the registering modules only by name
(:data:`_BUILTIN`), on first use.

Recognition looks wherever the format keeps its identity, not at a fixed head:
a ZIP's central directory at the end of the file, an OLE2 compound file's
directory. Each member is claimed by at most one entry; a *fallback* entry
(delimited text) claims only what no other entry does.

>>> from ingest.formats import classify
>>> classify(b"%PDF-1.7\\n...").title
'PDF document'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._ole import OleFacts, ole_facts
from ._zip import ZipFacts, zip_facts

if TYPE_CHECKING:
    from ..media._base import Member

HEAD = 65536
"""What a format that announces itself at the start is recognised from."""


class Kind(Enum):
    """What a format is to this tool."""

    CONTAINER = "container"
    """Holds other members (ZIP, tar, 7-Zip, ISO); opened by :mod:`ingest.media`."""
    ENCRYPTION = "encryption layer"
    """One member encrypted (OpenPGP, Office); decrypted by :mod:`ingest.crypto`."""
    TABLE = "table"
    """A table this tool reads (:mod:`ingest.readers`)."""
    NOT_READ = "known format, not read"
    """Recognised so it can be named ("SPSS data file"), but not read."""
    UNKNOWN = "unrecognised"


@dataclass(frozen=True)
class Format:
    """One registered format."""

    name: str
    """Short, stable name (``xlsx``, ``zip``, ``openpgp``); what a SourceTable reports."""
    kind: Kind
    title: str
    """What a user calls it: "Excel workbook (.xlsx)", "SPSS data file"."""
    recognise: Callable[[Probe], bool] = field(repr=False)
    load: Any = field(default=None, repr=False, compare=False)
    """Its handler: where it is (``"module:attribute"``, or a :class:`Loader`), imported
    on first use of :attr:`handler` so that declaring a format costs none of its
    libraries; or the handler itself when it costs nothing more; None for a format
    that is only named."""
    capabilities: frozenset[str] = frozenset()
    fallback: bool = False
    """Claims a member only when no other entry does (delimited text)."""

    def can(self, capability: str) -> bool:
        return capability in self.capabilities

    @cached_property
    def handler(self) -> Any:
        """What opens or reads it (a Container, a decryptor, a Reader), loaded now."""
        if isinstance(self.load, Loader):
            return self.load.load()
        if isinstance(self.load, str):
            module, _, attribute = self.load.partition(":")
            return getattr(import_module(module), attribute)
        return self.load


@dataclass(frozen=True)
class Loader:
    """A handler made when first asked for (one reader per format from a shared
    module, say), by calling ``load`` with no arguments."""

    load: Callable[[], Any]


EXCEL_SERIAL_DATES = "excel-serial-dates"
"""Capability: a number in a date column is a spreadsheet serial day (Excel's 1900
system unless the reader says otherwise)."""


class Probe:
    """A member's bytes and the facts formats are recognised by, each worked out once."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.head = data[:HEAD]
        self._claims: dict[str, bool] = {}

    @cached_property
    def zip(self) -> ZipFacts | None:
        """The entry names of a ZIP (from its central directory), else None."""
        return zip_facts(self.data)

    @cached_property
    def ole(self) -> OleFacts | None:
        """The streams of an OLE2 compound file (from its directory), else None."""
        return ole_facts(self.data)

    def is_(self, name: str) -> bool:
        """Whether the registered format ``name`` claims this member (for a format
        that yields to another, e.g. a workbook to its encrypted form)."""
        if name not in self._claims:
            entry = _entries().get(name)
            self._claims[name] = bool(entry and entry.recognise(self))
        return self._claims[name]


_REGISTRY: dict[str, Format] = {}
_BUILTIN = ("ingest.media._formats", "ingest.crypto._formats", "ingest.readers._formats",
            "ingest.readers.excel._formats", "ingest.formats.known")
"""Modules that declare formats (recognisers and handler names, no handler
libraries), imported on first use of the registry."""
_loaded = False


def register(fmt: Format) -> Format:
    """Add a format; its name must be new (one entry per format)."""
    known = _REGISTRY.get(fmt.name)
    if known is not None and known != fmt:
        raise ValueError(f"format {fmt.name!r} is registered twice")
    _REGISTRY[fmt.name] = fmt
    return fmt


def _entries() -> dict[str, Format]:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in _BUILTIN:
            try:
                import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name and exc.name.startswith("ingest"):
                    continue  # format not built in
                raise
    return _REGISTRY


def formats() -> list[Format]:
    """Every registered format."""
    return list(_entries().values())


def named(name: str) -> Format | None:
    return _entries().get(name)


def capable(name: str, capability: str) -> bool:
    """Whether the format a table was read as (``SourceTable.format``) has ``capability``."""
    fmt = named(name)
    return fmt is not None and fmt.can(capability)


UNKNOWN = Format("unknown", Kind.UNKNOWN, "a file of no format this tool knows",
                 lambda probe: False)


def claimants(data: bytes | Member) -> list[Format]:
    """Every non-fallback entry that claims the member (at most one, by contract)."""
    probe = Probe(data if isinstance(data, bytes) else data.data)
    return [f for f in _entries().values() if not f.fallback and probe.is_(f.name)]


def classify(member: bytes | Member) -> Format:
    """What the member is; :data:`UNKNOWN` when no entry claims it."""
    probe = Probe(member if isinstance(member, bytes) else member.data)
    entries = _entries().values()
    found = next((f for f in entries if not f.fallback and probe.is_(f.name)), None)
    if found is None:
        found = next((f for f in entries if f.fallback and probe.is_(f.name)), UNKNOWN)
    return found


__all__ = ["EXCEL_SERIAL_DATES", "HEAD", "UNKNOWN", "Format", "Kind", "Loader", "Probe", "capable",
           "claimants", "classify", "formats", "named", "register"]
