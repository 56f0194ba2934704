"""Which application wrote a workbook, and how its date serials count days.

Found from the workbook's own metadata, read from the bytes in memory:

* ``.xlsx``/``.xlsb``: ``<Application>`` of the extended properties
  (``docProps/app.xml``) and ``date1904`` of ``<workbookPr>`` (``.xlsx`` only).
* ``.xls``: the application name (``PIDSI_APPNAME``) of the
  ``\\x05SummaryInformation`` property set, the BIFF ``DATEMODE`` record, and
  the ``WRITEACCESS`` record: LibreOffice (and OpenOffice before it) writes no
  application name to either property set but always the fixed user name
  ``Calc`` there, where Excel writes its user's name.
* ``.ods``: ``<meta:generator>`` of ``meta.xml`` and the document's null date
  (``<table:null-date>``, 1899-12-30 unless stated).

What each writer stores for a date (measured; the tools' versions are in
``tests/data/spreadsheet_dates/README.md``), and what calamine (fastexcel)
reads back from it, in the 1900 system:

====================  ==========  ==========  ==========  =====================
writer                1900-01-01  1900-02-28  1900-03-01  calamine reads
====================  ==========  ==========  ==========  =====================
Excel (openpyxl,      1           59          61          right
xlwt, Gnumeric)
LibreOffice xlsx/xls  2           60          61          1900-01-02,
                                                          1900-02-28, 03-01
xlsxwriter            0 [1]_      59          61          1899-12-31 [1]_, ...
LibreOffice ods       ISO date    ISO date    ISO date    right
====================  ==========  ==========  ==========  =====================

Excel counts 1900 as a leap year: serial 60 is 1900-02-29, a day that never
was, and serials below it start at 1899-12-31. LibreOffice counts plainly from
1899-12-30, so the two agree from 1900-03-01 on and differ by a day before it.
calamine reads every serial Excel's way (serials 59 and 60 both as 1900-02-28),
and converts a plain number in a date column Excel's way too, even in a 1904
workbook (date cells there are read in 1904 days). ``.ods`` stores dates as
ISO text, which calamine reads exactly; only plain numbers in a date column
count days there, from the document's null date.

.. [1] xlsxwriter 3.3 writes ``datetime(1900, 1, 1)`` as 0 (it takes the day
   for a time-only value); Excel shows that as 1900-01-00. It is read as
   1899-12-31, which the reference schema quarantines: never silently accepted.
"""

from __future__ import annotations

import io
import struct
import zipfile
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree

from ._ooxml import _local

SYSTEM_1900 = "1900"
"""Excel's 1900 system: serial 1 is 1900-01-01, serial 60 the phantom 1900-02-29."""
SYSTEM_CONTINUOUS = "1900-continuous"
"""Days from 1899-12-30 with no phantom day, as LibreOffice counts."""
SYSTEM_1904 = "1904"
"""Days from 1904-01-01 (Excel for the Mac before 2011, or when chosen)."""

_CONTINUOUS_WRITERS = {"libreoffice": "LibreOffice", "openoffice": "OpenOffice",
                       "neooffice": "NeoOffice", "staroffice": "StarOffice"}
"""Applications of the StarOffice line (by how their names start): they all count
days from 1899-12-30."""
_EXCEL_WRITERS = {"microsoft excel": "Microsoft Excel",
                  "microsoft macintosh excel": "Microsoft Excel", "gnumeric": "Gnumeric"}
"""Applications that write Excel's serials (openpyxl says "Microsoft Excel
Compatible", xlsxwriter and R's openxlsx "Microsoft Excel")."""
_METADATA_BYTES = 1 << 20
"""The largest properties or settings part read; more is not metadata."""
_WORKBOOK_BYTES = 4 << 20
"""How far a workbook part or stream is read for its settings (they come first)."""

_DATEMODE, _WRITEACCESS, _FILEPASS, _BOUNDSHEET, _EOF = 0x0022, 0x005C, 0x002F, 0x0085, 0x000A
_PIDSI_APPNAME = 0x12
_LIBREOFFICE_USER = b"\x04\x00\x00Calc"
"""LibreOffice's fixed ``WRITEACCESS`` record: a 4-character user name, 8-bit."""


@dataclass(frozen=True)
class Writer:
    """The application that wrote a workbook, and the day count of its serials."""

    application: str | None = None
    """The application as the file names it (``LibreOffice``, ``Microsoft Excel``);
    None when the file does not say."""
    date_system: str | None = None
    """``1900``, ``1900-continuous`` or ``1904``; None when the workbook counts
    from 1900 and its writer is not known (Excel's count is the likely one, but a
    date before 1900-03-01 is then in doubt)."""

    @property
    def family(self) -> str | None:
        """The application's family as named here (``LibreOffice`` for every version
        and platform); None when it is not one whose day count is known."""
        name = (self.application or "").lower()
        return next((family for writers in (_CONTINUOUS_WRITERS, _EXCEL_WRITERS)
                     for prefix, family in writers.items() if name.startswith(prefix)), None)


def identify(data: bytes, fmt: str) -> Writer:
    """The workbook's writer and date system; ``Writer()`` when nothing can be told."""
    try:
        if fmt in ("xlsx", "xlsb"):
            return _ooxml(data, read_date1904=fmt == "xlsx")
        if fmt == "xls":
            return _biff(data)
        if fmt == "ods":
            return _opendocument(data)
    except Exception:  # noqa: BLE001 - damage is calamine's to report; here it means "unknown"
        pass
    return Writer()


def _system(application: str | None) -> str | None:
    name = (application or "").strip().lower()
    if name.startswith(tuple(_CONTINUOUS_WRITERS)):
        return SYSTEM_CONTINUOUS
    if name.startswith(tuple(_EXCEL_WRITERS)):
        return SYSTEM_1900
    return None


def _writer(application: str | None, date1904: bool) -> Writer:
    named = application.strip() if application else None
    return Writer(named or None, SYSTEM_1904 if date1904 else _system(named))


# --- Office Open XML --------------------------------------------------------------------

def _ooxml(data: bytes, read_date1904: bool) -> Writer:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = {i.filename.lower(): i for i in archive.infolist()}
        targets = _root_targets(archive, names)
        properties = targets.get("extended-properties", "docProps/app.xml")
        found = _first_element(archive, names.get(properties.lower()), "Application",
                               _METADATA_BYTES)
        application = found.text if found is not None else None
        date1904 = False
        if read_date1904:
            workbook = targets.get("officeDocument", "xl/workbook.xml")
            settings = _first_element(archive, names.get(workbook.lower()), "workbookPr",
                                      _WORKBOOK_BYTES, stop="sheets")
            date1904 = settings is not None and \
                (settings.get("date1904") or "").strip().lower() in ("1", "true")
    return _writer(application, date1904)


def _root_targets(archive: zipfile.ZipFile, names: dict[str, zipfile.ZipInfo]
                  ) -> dict[str, str]:
    """Relationship kind (last part of its type) -> part name, from ``_rels/.rels``."""
    info = names.get("_rels/.rels")
    if info is None or info.file_size > _METADATA_BYTES:
        return {}
    found: dict[str, str] = {}
    for rel in ElementTree.fromstring(archive.read(info)):
        kind = rel.get("Type", "").rpartition("/")[2]
        target = rel.get("Target", "").lstrip("/")
        if kind and target and rel.get("TargetMode") != "External":
            found.setdefault(kind, target)
    return found


def _first_element(archive: zipfile.ZipFile, info: zipfile.ZipInfo | None, tag: str,
                   limit: int, stop: str | None = None) -> ElementTree.Element | None:
    """The first element named ``tag`` (any namespace) in the part, read as a stream;
    None if it is absent, or not met before ``stop`` or ``limit`` bytes."""
    if info is None:
        return None
    parser: ElementTree.XMLPullParser = ElementTree.XMLPullParser(events=("start", "end"))
    read = 0
    with archive.open(info) as stream:
        while read < limit and (chunk := stream.read(1 << 16)):
            read += len(chunk)
            parser.feed(chunk)
            for event, *rest in parser.read_events():
                element = rest[0]
                if not isinstance(element, ElementTree.Element):
                    continue
                name = _local(element.tag)
                if event == "end" and name == tag:
                    return element
                if event == "start" and name == stop:
                    return None
    return None


# --- BIFF in OLE2 -----------------------------------------------------------------------

def _biff(data: bytes) -> Writer:
    import olefile

    with olefile.OleFileIO(data) as ole:
        application = _application_name(ole)
        records = _globals(ole)
    date1904 = records.get(_DATEMODE, b"\0\0")[:2] == b"\x01\x00"
    if application is None and records.get(_WRITEACCESS, b"").startswith(_LIBREOFFICE_USER):
        application = "LibreOffice"
    return _writer(application, date1904)


def _application_name(ole: Any) -> str | None:
    stream = "\x05SummaryInformation"
    if not ole.exists(stream):
        return None
    value = ole.getproperties(stream).get(_PIDSI_APPNAME)
    if isinstance(value, bytes):
        value = value.split(b"\0", 1)[0].decode("latin-1")
    return value if isinstance(value, str) else None


def _globals(ole: Any) -> dict[int, bytes]:
    """The workbook globals records wanted here (``DATEMODE``, ``WRITEACCESS``), from
    the start of the ``Workbook`` stream; encrypted records (after ``FILEPASS``)
    are not read."""
    name = next((n for n in ("Workbook", "Book") if ole.exists(n)), None)
    if name is None:
        return {}
    stream = _stream_head(ole, name)
    found: dict[int, bytes] = {}
    position = 0
    while position + 4 <= len(stream):
        kind, length = struct.unpack_from("<HH", stream, position)
        body = stream[position + 4:position + 4 + length]
        position += 4 + length
        if kind in (_FILEPASS, _BOUNDSHEET, _EOF):
            break
        if kind in (_DATEMODE, _WRITEACCESS):
            found.setdefault(kind, body)
    return found


def _stream_head(ole: Any, name: str) -> bytes:
    """The first ``_WORKBOOK_BYTES`` of a stream: the settings come first, and a
    whole ``Workbook`` stream is the size of the workbook (olefile reads a stream
    whole). Falls back on the whole stream if olefile's layout is not the expected."""
    try:
        sid = ole._find(name)
        entry = ole.direntries[sid]
        if entry.size >= ole.minisectorcutoff:
            size = max(ole.minisectorcutoff, min(entry.size, _WORKBOOK_BYTES))
            return bytes(ole._open(entry.isectStart, size).read())
    except (AttributeError, IndexError, TypeError):
        pass
    return bytes(ole.openstream(name).read())


# --- OpenDocument -----------------------------------------------------------------------

_ODS_NULL_DATES = {"1899-12-30": SYSTEM_CONTINUOUS, "1904-01-01": SYSTEM_1904}


def _opendocument(data: bytes) -> Writer:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = {i.filename.lower(): i for i in archive.infolist()}
        found = _first_element(archive, names.get("meta.xml"), "generator", _METADATA_BYTES)
        application = found.text.strip() or None if found is not None and found.text else None
        # the null date sits in the settings before the first table
        null = _first_element(archive, names.get("content.xml"), "null-date",
                              _WORKBOOK_BYTES, stop="table")
    value = "1899-12-30"
    if null is not None:
        value = next((v for k, v in null.attrib.items() if _local(k) == "date-value"), value)
    # the null date is the document's, whoever wrote it: an unusual one is unknown
    return Writer(application, _ODS_NULL_DATES.get(value[:10]))
