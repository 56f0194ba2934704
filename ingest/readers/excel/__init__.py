"""Workbooks: ``.xlsx``, legacy ``.xls``, ``.xlsb`` and OpenDocument ``.ods``.

Read in memory by fastexcel (calamine underneath, Arrow out), each sheet parsed
once. The header row is found first, below any title or notes rows, among the
first rows of every sheet: in an ``.xlsx`` by reading just those rows of the
sheet's XML (and the shared strings they use), in the other formats by a short
load. Only the sheets that hold the table are then loaded, once each, every
column with the type the schema asks for: dates and numbers typed, the rest as
calamine's text. A cell that does not fit its column's type (``02/30/1980``
text among dates, ``NA`` among numbers, a formula error) comes back as a cell
error that carries the cell, and is kept as the text calamine gives it.

A column keeps its cells' type when every cell has it; a column whose cells are
mixed becomes text, each typed cell written the way the schema parses it (dates
in the column's first date format, identifiers zero-padded to ``Column.width``),
so no cell is lost or changed and the bad ones are quarantined downstream with
the right reason. Formula errors (``#N/A``) become their text, which never parses
as a date or number. In an identifier column, text that spells the number exactly
(``67409``) counts as that number and is padded too: Excel users type identifiers
either way.

What one typed load cannot tell apart, and how it is settled (a second load of
just the columns concerned, only when the cells leave it open):

* A boolean cell in a number column loads as 1 or 0. When a number column holds
  a 1 or a 0 and the sheet may hold boolean cells (an ``.xlsx`` sheet's XML is
  scanned for them while calamine parses it; other formats are assumed to), the
  column is loaded again as text: TRUE still reads as ``true`` and is
  quarantined as not a number.
* Yes/no columns load as text, in which calamine writes a boolean cell as
  ``true`` or ``false``. Text cells spelling exactly that are told apart the same
  way (a boolean load of the column, when the sheet may hold boolean cells):
  text ``true`` stays text, as ``TRUE`` does.
* In an ``.xlsx``, identifier columns whose first data rows are numbers load as
  numbers, which would also read text that spells a number (``067409``) and
  booleans as numbers. Shared text can only load as the number it spells, so
  the column is loaded again as text when it holds one of the numbers that the
  workbook's shared strings spell, a 1 or 0 where the sheet may hold booleans,
  or when the sheet holds inline or formula text.
* Identifier columns that load as text (every ``.xls``, ``.xlsb`` and ``.ods``,
  and an ``.xlsx`` whose identifiers are text or whose text is mostly numbers)
  show number cells as calamine writes them, to nine decimals. The one
  ambiguity left: a number that is not whole but lies within half a billionth of
  a whole number (a floating-point artefact such as 67409.0000000001) reads as
  that whole number and is padded, where its exact value would leave it as text
  to be quarantined. Excel shows such a value as the whole number, and a text
  load cannot tell the two apart.
* A typed load reports a cell this module cannot write as calamine would (a date
  cell in a number column, say): that column is loaded again as text.

A table split over several sheets with the same header (a legacy ``.xls`` sheet
holds 65,536 rows) is read as one table, in sheet order; sheets without that
header (notes, lookups, empty sheets) are skipped and named in the notes.
"""

from __future__ import annotations

from typing import Any

from ...formats import Probe
from ._formats import is_ods, is_xls, is_xlsb, is_xlsx
from ._shape import HEADER_SCAN_ROWS, MAX_COLUMNS


def sniff_xlsx(data: bytes) -> bool:
    """Whether ``data`` (the whole member) is an OOXML workbook, as the registry decides."""
    return is_xlsx(Probe(data))


def sniff_xlsb(data: bytes) -> bool:
    return is_xlsb(Probe(data))


def sniff_ods(data: bytes) -> bool:
    return is_ods(Probe(data))


def sniff_xls(data: bytes) -> bool:
    return is_xls(Probe(data))


def __getattr__(name: str) -> Any:
    # the reader is loaded when a workbook is read, not when the registry declares
    # the workbook formats (this package is imported for ._formats)
    if name == "read_workbook":
        from ._book import read_workbook

        return read_workbook
    if name == "_Package":
        from ._package import _Package

        return _Package
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["HEADER_SCAN_ROWS", "MAX_COLUMNS", "_Package", "read_workbook", "sniff_ods",
           "sniff_xls", "sniff_xlsb", "sniff_xlsx"]
