"""The workbook formats, registered with :mod:`ingest.formats` by what their files hold.

An OOXML workbook is a ZIP whose central directory lists ``[Content_Types].xml``
and parts under ``xl/`` (wherever the writer put them in the file); an
OpenDocument spreadsheet names itself in its stored ``mimetype`` entry; a
legacy workbook is an OLE2 file whose directory holds a ``Workbook`` (BIFF8)
or ``Book`` (BIFF5) stream and is not encrypted (that is
:mod:`ingest.crypto.office`'s to decrypt first).

The reader (:mod:`._book`, and fastexcel under it) is loaded when a workbook is
met, not when these formats are declared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...formats import EXCEL_SERIAL_DATES, Format, Kind, Loader, Probe, register

ODS_MIME = b"application/vnd.oasis.opendocument.spreadsheet"


def _binary_parts(probe: Probe) -> bool:
    assert probe.zip is not None
    return any(n.lower() == "xl/workbook.bin"
               or (n.lower().startswith("xl/worksheets/") and n.lower().endswith(".bin"))
               for n in probe.zip.names)


def is_xlsx(probe: Probe) -> bool:
    return probe.zip is not None and probe.zip.ooxml and probe.zip.any_under("xl/") \
        and not _binary_parts(probe)


def is_xlsb(probe: Probe) -> bool:
    return probe.zip is not None and probe.zip.ooxml and _binary_parts(probe)


def is_ods(probe: Probe) -> bool:
    return probe.zip is not None and (probe.zip.mimetype or b"").strip() == ODS_MIME


def is_xls(probe: Probe) -> bool:
    return probe.ole is not None and bool({"workbook", "book"} & probe.ole.streams) \
        and not probe.is_("office-encrypted")


_TITLES = {"xlsx": "Excel workbook (.xlsx)", "xlsb": "Excel binary workbook (.xlsb)",
           "ods": "OpenDocument spreadsheet (.ods)", "xls": "Excel 97-2003 workbook (.xls)"}
_TESTS = {"xlsx": is_xlsx, "xlsb": is_xlsb, "ods": is_ods, "xls": is_xls}
_SERIAL_DATES = {"xlsx", "xlsb", "xls"}


def _reader(name: str) -> Callable[[], Any]:
    def load() -> Any:
        from .. import Reader
        from ._book import _format_reader

        return Reader(name, _format_reader(name))
    return load


for _name, _test in _TESTS.items():
    register(Format(_name, Kind.TABLE, _TITLES[_name], _test, Loader(_reader(_name)),
                    frozenset({EXCEL_SERIAL_DATES}) if _name in _SERIAL_DATES else frozenset()))
