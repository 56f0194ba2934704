"""The table formats read by a module of their own, declared to :mod:`ingest.formats`:
how each is recognised, and where its reader is.

The Access and statistics readers (mdbtools, pyreadstat) are loaded when a member
of their format is met, not to classify a CSV. Delimited text and fixed-width
records, the common case, are declared beside their readers in
:mod:`ingest.readers`; workbooks in :mod:`ingest.readers.excel._formats`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..formats import Format, Kind, Loader, register

ACCESS_MAGIC = (b"Standard Jet DB", b"Standard ACE DB")
"""The Jet (.mdb) and ACE (.accdb) signatures, at bytes 4..19."""
SAS_MAGIC = bytes.fromhex("000000000000000000000000c2ea8160b31411cfbd92080009c7318c181f1011")
SAS_TRANSPORT = (b"HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!",
                 b"HEADER RECORD*******LIBV8   HEADER RECORD!!!!!!!")
"""Version 5 and version 8 transport files."""


def is_access(head: bytes) -> bool:
    """The Jet/ACE signature at bytes 4..19."""
    return head[4:19] in ACCESS_MAGIC


def is_stata(head: bytes) -> bool:
    """Stata 13+ (``<stata_dta>``), or an older release byte with its byte order."""
    if head.startswith(b"<stata_dta>"):
        return True
    return len(head) > 4 and 104 <= head[0] <= 115 and head[1] in (1, 2) and head[2] == 1 \
        and head[3] == 0


def _stats_reader(name: str) -> Callable[[], Any]:
    def load() -> Any:
        from . import Reader
        from .stats import read_as

        return Reader(name, read_as(name))
    return load


for _fmt in (
    Format("access", Kind.TABLE, "Access database (.mdb, .accdb)",
           lambda probe: is_access(probe.head), "ingest.readers.access:READER"),
    Format("spss", Kind.TABLE, "SPSS data file (.sav, .zsav)",
           lambda p: p.head.startswith((b"$FL2", b"$FL3")), Loader(_stats_reader("spss"))),
    Format("stata", Kind.TABLE, "Stata data file (.dta)", lambda p: is_stata(p.head),
           Loader(_stats_reader("stata"))),
    Format("sas7bdat", Kind.TABLE, "SAS data set (.sas7bdat)",
           lambda p: p.head.startswith(SAS_MAGIC), Loader(_stats_reader("sas7bdat"))),
    Format("sas-transport", Kind.TABLE, "SAS transport file (XPORT, .xpt)",
           lambda p: p.head.startswith(SAS_TRANSPORT), Loader(_stats_reader("sas-transport"))),
):
    register(_fmt)
