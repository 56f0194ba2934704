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

import io
import re
import struct
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from xml.etree import ElementTree

import polars as pl

from ..crypto.office import OLE2_MAGIC
from ..errors import DecryptionError, ReadError, SchemaMismatchError
from ..schema import Column, Dataset
from ._base import SourceTable, header_score, match_columns, normalise_header
from .csv import _TRAILER

if TYPE_CHECKING:
    import fastexcel
    from fastexcel import DType

HEADER_SCAN_ROWS = 30
"""Title and notes rows above the header are looked through this far."""
MAX_COLUMNS = 16_384
"""Excel's widest sheet: every column up to it is loaded with a stated type, never guessed."""

# BIFF8 and BIFF5 beginning-of-file records of a workbook globals substream
_BIFF_BOF = (b"\x09\x08\x10\x00\x00\x06\x05\x00", b"\x09\x08\x08\x00\x00\x05\x05\x00")
_ODS_MIME = b"application/vnd.oasis.opendocument.spreadsheet"
_ERROR_TEXT = {"NA": "#N/A", "Div0": "#DIV/0!", "Value": "#VALUE!", "Ref": "#REF!",
               "Name": "#NAME?", "Num": "#NUM!", "Null": "#NULL!",
               "GettingData": "#GETTING_DATA"}
_TYPED: dict[str, DType] = {"date": "date", "float": "float"}
"""Schema kinds loaded typed; every other column loads as text."""
_BOOL_TEXT = ("true", "false")
"""How calamine writes a boolean cell as text."""
_NAME = rb"[^\s<>/:!?=\"']+"
"""An XML name part: a namespace prefix, of any length and spelling."""
_SST_ENTRY = re.compile(rb"<(?:" + _NAME + rb":)?si[\s>/]")
"""The start of a shared-string entry (``<si>``, ``<x:si>``, ``<si/>``)."""
_MIN_CELL_BYTES = 20
"""The shortest sheet XML of a cell that uses a shared string: ``<c t="s"><v>0</v></c>``."""
_DEFLATE_MAX_RATIO = 1032
"""Deflate cannot expand more than this; a larger declared size is not believed."""
_SST_SLACK = 10_000
_HEAD_BYTES = 8 << 20
"""The XML read for a sheet's first rows; a sheet that needs more is looked at by calamine."""
_PART_BYTES = 16 << 20
"""The largest workbook or relationships part parsed here."""
_NUMBERS_KEPT = 4096
"""Shared strings spelling numbers kept track of; with more, identifiers load as text."""

# --- recognising the formats ------------------------------------------------------------

def _zip_names(head: bytes) -> list[bytes]:
    """Names of the ZIP entries whose local headers lie in ``head``."""
    names = []
    for match in re.finditer(rb"PK\x03\x04", head):
        start = match.start()
        if start + 30 > len(head):
            break
        (length,) = struct.unpack_from("<H", head, start + 26)
        names.append(head[start + 30:start + 30 + length])
    return names


def _is_xlsb(names: list[bytes]) -> bool:
    return any(n == b"xl/workbook.bin" or (n.startswith(b"xl/worksheets/") and n.endswith(b".bin"))
               for n in names)


def sniff_xlsx(head: bytes) -> bool:
    """An Office Open XML workbook: a ZIP with ``[Content_Types].xml`` and ``xl/``."""
    if not head.startswith(b"PK\x03\x04"):
        return False
    names = _zip_names(head)
    return (b"[Content_Types].xml" in names and any(n.startswith(b"xl/") for n in names)
            and not _is_xlsb(names))


def sniff_xlsb(head: bytes) -> bool:
    """An Excel binary workbook: the same ZIP, with ``.bin`` parts."""
    return head.startswith(b"PK\x03\x04") and _is_xlsb(_zip_names(head))


def sniff_ods(head: bytes) -> bool:
    """An OpenDocument spreadsheet: a ZIP whose first entry is its ``mimetype``."""
    return (head.startswith(b"PK\x03\x04") and head[30:38] == b"mimetype"
            and _ODS_MIME in head[38:38 + 80])


def sniff_xls(head: bytes) -> bool:
    """A BIFF workbook in an OLE2 file (a Word document in OLE2 is not claimed).

    The directory may lie past ``head`` (xlwt puts it last), so the BIFF
    beginning-of-file record of the workbook stream is accepted too. An
    encrypted Office file is claimed so that it is refused clearly.
    """
    if not head.startswith(OLE2_MAGIC):
        return False
    utf16 = ("Workbook".encode("utf-16-le"), "Book\x00".encode("utf-16-le"),
             "EncryptedPackage".encode("utf-16-le"))
    return any(name in head for name in utf16) or any(bof in head for bof in _BIFF_BOF)


# --- reading ----------------------------------------------------------------------------

class _Misread(Exception):
    """The package scan and calamine disagree about a sheet: read it calamine's way."""


_Head = tuple[list[int], list[list[str | None]], set[tuple[int, int]]]
"""A sheet's first rows from the package scan: columns, rows, and its text cells."""


@dataclass
class _Sheet:
    """A sheet's first rows as text, and the row among them that best names the columns."""

    index: int
    name: str
    columns: list[int]
    """Sheet column index of each position in ``rows``."""
    rows: list[list[str | None]]
    """The first ``HEADER_SCAN_ROWS`` rows of the sheet (absolute row numbers)."""
    texts: set[tuple[int, int]] | None = None
    """(row, sheet column) of the text cells among the rows, when the package scan read them."""
    header: int = -1
    score: int = 0

    @property
    def exact(self) -> bool:
        """The rows are calamine's own text (else the package scan's, checked on loading)."""
        return self.texts is None

    def text_below_header(self, column: int) -> bool:
        """Whether a text cell lies in the column among the first data rows (if known)."""
        texts = self.texts or set()
        return any((row, column) in texts for row in range(self.header + 1, len(self.rows)))


@dataclass
class _Part:
    """One schema column's cells from one sheet's data rows."""

    text: pl.Series
    """Utf8, calamine's text of the cells; for a typed column, of the cells not of its type."""
    value: pl.Series | None = None
    """The typed load (Date, Float64) for a typed column."""
    marked: pl.Series | None = None
    """Boolean: in a number column the boolean cells, in a yes/no column the text cells
    that spell ``true`` or ``false``."""
    errors: list[tuple[int, str]] = field(default_factory=list)
    """(row, ``#N/A`` and the like)."""
    identifier: bool = False


@dataclass
class _Column:
    """A schema column gathered over the table's sheets."""

    spec: Column
    parts: list[_Part] = field(default_factory=list)


def _format_reader(fmt: str):  # noqa: ANN202 - a Reader.read
    def read(data: bytes, dataset: Dataset, member: str) -> SourceTable:
        return read_workbook(data, dataset, member, fmt)
    read.__doc__ = f"Read a {fmt} workbook member as the dataset's table."
    return read


def read_workbook(data: bytes, dataset: Dataset, member: str, fmt: str) -> SourceTable:
    """The dataset's table from the workbook's sheets that carry its header."""
    import fastexcel

    if data.startswith(OLE2_MAGIC) and "EncryptedPackage".encode("utf-16-le") in data[:65536]:
        raise _encrypted(member)
    package = _Package.open(data) if fmt == "xlsx" else None
    if package is not None:
        package.prepare(member)
    try:
        book = fastexcel.read_excel(data)
        try:
            return _read_book(book, package, dataset, member, fmt, scanned=package is not None)
        except _Misread:
            return _read_book(book, package, dataset, member, fmt, scanned=False)
    except fastexcel.FastExcelError:
        raise _unreadable(data, member, fmt) from None
    except BaseException as exc:
        # a Rust panic inside calamine reaches Python as a BaseException
        if type(exc).__name__ != "PanicException":
            raise
        raise _unreadable(data, member, fmt) from None
    finally:
        if package is not None:
            package.close()


def _read_book(book: fastexcel.ExcelReader, package: _Package | None, dataset: Dataset,
               member: str, fmt: str, scanned: bool) -> SourceTable:
    heads = package.heads(book.sheet_names) if package is not None and scanned else None
    sheets = [_heading(book, i, name, heads[i] if heads else None, dataset)
              for i, name in enumerate(book.sheet_names)]
    best = max((s.score for s in sheets), default=0)
    if best == 0 and any(not s.exact for s in sheets):
        raise _Misread
    if best == 0:
        raise SchemaMismatchError(
            f"{member}: no sheet has a header row with the columns of schema '{dataset.name}' "
            f"in its first {HEADER_SCAN_ROWS} rows; check that the right file and schema "
            "were given")
    table = [s for s in sheets if s.score == best]
    notes = [f"skipped sheet {s.name!r}: it does not hold the table's header"
             for s in sheets if s.score != best]
    if len(table) > 1:
        notes.append(f"read {len(table)} sheets with the same header as one table, "
                     "in sheet order")
    columns = [_Column(c) for c in dataset.columns]
    trailer: int | None = None
    for position, sheet in enumerate(table):
        trailer = _gather(book, package, sheet, dataset, member, columns,
                          last=position == len(table) - 1)
    frame = pl.DataFrame([_finish(c) for c in columns])
    errors = sum(len(p.errors) for c in columns for p in c.parts)
    if errors:
        notes.append(f"{errors} cells hold formula errors (such as #N/A); "
                     "their rows will be quarantined where the column needs a value")
    if trailer is not None and trailer != frame.height:
        raise ReadError(f"{member}: the trailer says {trailer} records but {frame.height} "
                        "were read; the workbook is incomplete or altered, ask for it again")
    return SourceTable(member, fmt, frame, None, trailer, notes)


def _heading(book: fastexcel.ExcelReader, index: int, name: str, head: _Head | None,
             dataset: Dataset) -> _Sheet:
    """The sheet's first rows, and the one that best names the schema's columns."""
    sheet = _Sheet(index, name, head[0], head[1], texts=head[2]) if head \
        else _loaded_head(book, index, name)
    for row, cells in enumerate(sheet.rows):
        score = header_score(cells, dataset)
        if score > sheet.score:
            sheet.header, sheet.score = row, score
    return sheet


def _loaded_head(book: fastexcel.ExcelReader, index: int, name: str) -> _Sheet:
    """The sheet's first rows as calamine writes them as text."""
    loaded = book.load_sheet(index, header_row=None, skip_rows=0, n_rows=HEADER_SCAN_ROWS,
                             dtypes="string")
    batch, _ = loaded.to_arrow_with_errors()
    text = pl.from_arrow(batch)
    assert isinstance(text, pl.DataFrame)
    return _Sheet(index, name, [c.absolute_index for c in loaded.selected_columns],
                  [list(r) for r in text.rows()])


def _header_names(sheet: _Sheet) -> list[str]:
    return [v if v is not None else f"(blank column {j + 1})"
            for j, v in enumerate(sheet.rows[sheet.header])]


def _gather(book: fastexcel.ExcelReader, package: _Package | None, sheet: _Sheet,
            dataset: Dataset, member: str, columns: list[_Column], last: bool) -> int | None:
    """Add the sheet's data rows to ``columns``; the trailer count if it ends with one."""
    label = f"{member} (sheet {sheet.name!r})"
    names = _header_names(sheet)
    try:
        mapping = match_columns(names, dataset, label)
    except SchemaMismatchError:
        if not sheet.exact:  # judged on the scan's reading: read it calamine's way, which
            raise _Misread from None  # either matches or names the cells as calamine has them
        raise
    wanted = {sheet.columns[names.index(found)]: spec
              for spec in dataset.columns for source, found in mapping.items()
              if source == spec.source}
    dtypes: dict[str | int, DType] = dict.fromkeys(range(MAX_COLUMNS), "string")
    numbers = package is not None and package.numbers is not None
    for index, spec in wanted.items():
        if spec.kind in _TYPED:
            dtypes[index] = _TYPED[spec.kind]
        elif _identifier(spec) and numbers and not sheet.text_below_header(index):
            dtypes[index] = "float"
    if package is not None and any(s.kind in ("float", "bool") or _identifier(s)
                                   for s in wanted.values()):
        package.scan_cells(sheet.index)
    loaded = book.load_sheet(sheet.index, header_row=sheet.header, dtypes=dtypes)
    batch, cell_errors = loaded.to_arrow_with_errors()
    frame = pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    info = loaded.selected_columns
    position = {c.absolute_index: j for j, c in enumerate(info)}
    for index, spec in wanted.items():
        j = position.get(index)
        if j is None or not (sheet.exact or normalise_header(info[j].name)
                             == normalise_header(spec.source)):
            raise _Misread
    texts = {j for j, c in enumerate(info) if c.dtype == "string"}
    misfits, formulas, odd = _cell_errors(cell_errors, info)
    end, trailer = _extent(frame, texts, misfits, formulas, odd, last)

    parts: dict[str, _Part] = {}
    again: dict[int, DType] = {}
    for index, spec in wanted.items():
        j = position[index]
        series = frame.to_series(j).head(end)
        if series.dtype != pl.Utf8:
            part = _Part(_scatter(end, misfits.get(j)), series)
            if j in odd or (spec.kind == "float" and _may_hold_booleans(package, sheet, series)) \
                    or (_identifier(spec) and _may_hold_text(package, sheet, series)):
                again[index] = "string"
        else:
            part = _Part(series)
            if spec.kind == "bool" and series.is_in(_BOOL_TEXT).any():
                if package is None or package.cells(sheet.index)[0]:
                    again[index] = "boolean"
                else:
                    part.marked = series.is_in(_BOOL_TEXT)
        part.errors = sorted((r, t) for r, t in formulas.get(j, {}).items() if r < end)
        part.identifier = _identifier(spec)
        parts[spec.source] = part
    if again:
        _load_again(book, sheet, again, {i: parts[s.source] for i, s in wanted.items()}, end)
    offset = sum(len(p.text) for p in columns[0].parts)
    for column in columns:
        part = parts[column.spec.source]
        part.errors = [(offset + r, t) for r, t in part.errors]
        column.parts.append(part)
    return trailer


def _identifier(spec: Column) -> bool:
    """A text column whose numbers are zero-padded to a width."""
    return bool(spec.width) and spec.kind not in (*_TYPED, "bool")


def _may_hold_booleans(package: _Package | None, sheet: _Sheet, numbers: pl.Series) -> bool:
    """Whether some of a number load's 1s and 0s may be boolean cells."""
    return bool(numbers.is_in([0.0, 1.0]).any()) and (
        package is None or package.cells(sheet.index)[0])


def _may_hold_text(package: _Package | None, sheet: _Sheet, numbers: pl.Series) -> bool:
    """Whether a number load of an identifier column may hold cells that are not numbers.

    A number load reads text that spells a number (``067409``) and booleans as
    numbers. Shared text can only come back as the value it spells, so a column
    without any of those values holds none; inline and formula text is checked for
    in the sheet.
    """
    if package is None or package.numbers is None or package.cells(sheet.index)[1]:
        return True
    return _may_hold_booleans(package, sheet, numbers) or bool(
        package.numbers and numbers.is_in(sorted(package.numbers)).any())


def _load_again(book: fastexcel.ExcelReader, sheet: _Sheet, dtypes: dict[int, DType],
                parts: dict[int, _Part], end: int) -> None:
    """Settle what the typed load could not tell, by a second load of just those columns.

    As text, a number column shows its boolean cells (``true``) and a date or
    number column its odd cells as calamine writes them; as booleans, a yes/no
    column's text cells that spell ``true`` are cell errors.
    """
    stated: dict[str | int, DType] = {index: dtype for index, dtype in dtypes.items()}
    loaded = book.load_sheet(sheet.index, header_row=sheet.header, use_columns=sorted(dtypes),
                             dtypes=stated)
    batch, cell_errors = loaded.to_arrow_with_errors()
    frame = pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    info = loaded.selected_columns
    _, formulas, _ = _cell_errors(cell_errors, info)
    failed: dict[int, list[int]] = {}
    for error, j in _located(cell_errors, info):
        failed.setdefault(j, []).append(error.offset_position[0])
    for j, c in enumerate(info):
        part = parts[c.absolute_index]
        series = frame.to_series(j).head(end)
        if c.dtype == "string":
            part.text = series
            part.errors = sorted((r, t) for r, t in formulas.get(j, {}).items() if r < end)
            if part.value is not None and part.value.dtype == pl.Float64:
                part.marked = series.is_in(_BOOL_TEXT) & part.value.is_not_null()
            if part.identifier:
                part.value = part.marked = None
        else:
            rows = [r for r in failed.get(j, ()) if r < end]
            not_boolean = pl.repeat(False, end, dtype=pl.Boolean, eager=True)
            if rows:
                not_boolean = not_boolean.scatter(rows, True)
            part.marked = part.text.is_in(_BOOL_TEXT) & not_boolean


_DETAIL = re.compile(r"got '(\w+)\((.*)\)'?\Z", re.DOTALL)
"""fastexcel's cell error: the cell in Rust's debug form, ``String("NA")``, ``Float(1.5)``."""
_RUST_STRING = re.compile(r'"((?:[^"\\]|\\(?:u\{[0-9a-fA-F]{1,6}\}|[0tnr\\"\']))*)"', re.DOTALL)
_RUST_ESCAPE = re.compile(r"\\(?:u\{([0-9a-fA-F]{1,6})\}|(.))", re.DOTALL)
_RUST_CHARS = {"0": "\0", "t": "\t", "r": "\r", "n": "\n", "\\": "\\", '"': '"', "'": "'"}


def _cell_errors(cell_errors: fastexcel.CellErrors | None, info: list[fastexcel.ColumnInfo]
                 ) -> tuple[dict[int, dict[int, str]], dict[int, dict[int, str]],
                            dict[int, set[int]]]:
    """The load's cell errors: cells not of their column's type (as calamine's text),
    formula errors (as Excel writes them), and the cells that are neither (odd).

    In a text column every cell error is a formula error (``#ERROR`` when calamine
    could not write the cell); keys are column position in the load, then data row.
    """
    misfits: dict[int, dict[int, str]] = {}
    formulas: dict[int, dict[int, str]] = {}
    odd: dict[int, set[int]] = {}
    decoded: dict[str, tuple[str, str | None]] = {}
    for error, j in _located(cell_errors, info):
        row = error.offset_position[0]
        detail = error.detail
        if detail not in decoded:
            found = _DETAIL.search(detail)
            kind, inner = found.groups() if found else ("", "")
            decoded[detail] = ("error", _ERROR_TEXT.get(inner, "#ERROR")) if kind == "Error" \
                else (kind, _cell_text(kind, inner))
        kind, text = decoded[detail]
        if kind == "error" or info[j].dtype == "string":
            formulas.setdefault(j, {})[row] = text if kind == "error" and text else "#ERROR"
        elif text is None:
            odd.setdefault(j, set()).add(row)
        else:
            misfits.setdefault(j, {})[row] = text
    return misfits, formulas, odd


def _located(cell_errors: fastexcel.CellErrors | None, info: list[fastexcel.ColumnInfo]
             ) -> Iterator[tuple[fastexcel.CellError, int]]:
    """Each cell error with its column's position in the load (errors name the column
    by its index in the sheet's range)."""
    position = {c.index: j for j, c in enumerate(info)}
    for error in cell_errors.errors if cell_errors else ():
        j = position.get(error.offset_position[1])
        if j is not None:
            yield error, j


def _cell_text(kind: str, inner: str) -> str | None:
    """A cell as calamine writes it as text, from its debug form; None if unsure."""
    if kind in ("String", "DateTimeIso"):
        quoted = _RUST_STRING.fullmatch(inner)
        return _RUST_ESCAPE.sub(_unescape, quoted.group(1)) if quoted else None
    if kind == "Bool" and inner in _BOOL_TEXT:
        return inner
    if kind == "Int" and re.fullmatch(r"-?\d+", inner):
        return str(int(inner))
    if kind == "Float":
        try:
            number = float(inner)
        except ValueError:
            return None
        return _float_text(number) if number - number == 0 else None
    return None


def _unescape(match: re.Match[str]) -> str:
    code, char = match.groups()
    return chr(int(code, 16)) if code else _RUST_CHARS[char]


def _float_text(number: float) -> str:
    """calamine's text of a number: at most nine decimals, trailing zeros dropped."""
    return f"{number:.9f}".rstrip("0").rstrip(".")


def _scatter(length: int, cells: dict[int, str] | None) -> pl.Series:
    series = pl.repeat(None, length, dtype=pl.Utf8, eager=True)
    kept = {r: t for r, t in (cells or {}).items() if r < length}
    return series.scatter(list(kept), list(kept.values())) if kept else series


def _extent(frame: pl.DataFrame, texts: set[int], misfits: dict[int, dict[int, str]],
            formulas: dict[int, dict[int, str]], odd: dict[int, set[int]],
            last: bool) -> tuple[int, int | None]:
    """Data rows to keep (trailing empty rows dropped), and a record-count trailer.

    A row is filled when a cell holds a value, non-blank text or a formula error;
    the last filled row is a trailer when its one cell is text such as
    ``TOTAL RECORDS: 3``.
    """
    if frame.width == 0 or frame.height == 0:
        return 0, None
    present = frame.select(pl.any_horizontal(pl.all().is_not_null())).to_series().arg_true()
    extra = {r for cells in (*misfits.values(), *formulas.values(), *odd.values())
             for r in cells}

    def rows_backwards() -> Iterator[int]:
        """Rows with a cell, the last first."""
        seen = 64
        listed: set[int] = set()
        while True:
            tail = set(present.tail(seen).to_list())
            batch = sorted((tail | extra) - listed, reverse=True)
            if len(tail) < seen:  # every row with a value is in the batch
                yield from batch
                return
            floor = min(tail)
            for row in batch:
                if row < floor:
                    break
                listed.add(row)
                yield row
            seen *= 8

    candidates = rows_backwards()

    def cells(row: int) -> list[str | None]:
        """The row's non-blank cells: their text, None for a typed value."""
        found: list[str | None] = []
        for j, value in enumerate(frame.row(row)):
            if value is None:
                value = misfits.get(j, {}).get(row)
                if value is not None and value.strip():
                    found.append(value)
                elif row in odd.get(j, ()):
                    found.append(None)
            elif j not in texts:
                found.append(None)
            elif value.strip():
                found.append(value)
        return found

    filled = (r for r in candidates
              if cells(r) or any(r in f for f in formulas.values()))
    final = next(filled, None)
    if final is None:
        return 0, None
    if last:
        found = cells(final)
        match = _TRAILER.match(found[0]) if len(found) == 1 and found[0] is not None else None
        if match:
            before = next(filled, None)
            return (before + 1 if before is not None else 0), int(match.group(1))
    return final + 1, None


def _finish(column: _Column) -> pl.Series:
    """The column, typed when every cell has the schema's type, else faithful text."""
    spec = column.spec
    parts = column.parts
    if _identifier(spec):
        parts = [_as_identifier(p) for p in parts]
    text = pl.concat([p.text for p in parts]) if parts else pl.Series([], dtype=pl.Utf8)
    listed = [e for p in parts for e in p.errors]
    errors = pl.repeat(None, text.len(), dtype=pl.Utf8, eager=True)
    if listed:
        rows, values = zip(*listed, strict=True)
        errors = errors.scatter(list(rows), list(values))
    if spec.kind not in (*_TYPED, "bool") and not spec.width:
        return (text.zip_with(text.is_not_null(), errors) if listed else text).alias(spec.source)
    columns = {"t": text}
    if any(p.marked is not None for p in parts):
        columns["m"] = pl.concat([p.marked if p.marked is not None
                                  else pl.repeat(False, p.text.len(), dtype=pl.Boolean,
                                                 eager=True)
                                  for p in parts])
    if spec.kind in _TYPED or _identifier(spec):
        empty = pl.Date if spec.kind == "date" else pl.Int64 if _identifier(spec) else pl.Float64
        columns["v"] = pl.concat([p.value for p in parts if p.value is not None]) if parts \
            else pl.Series([], dtype=empty)
    t = pl.col("t")
    marked = pl.col("m") if "m" in columns else pl.lit(False)
    if spec.kind == "bool":
        value = t == "true"
        genuine = t.is_in(_BOOL_TEXT) & ~marked
    else:  # a date, a number, or an identifier's whole number
        value = pl.col("v")
        genuine = value.is_not_null() & ~marked
    frame = pl.DataFrame(columns).with_columns(
        value.alias("value"), genuine.fill_null(False).alias("genuine"))
    value, genuine = pl.col("value"), pl.col("genuine")
    # the cells that are not of the type are few: only they are looked at for text
    stray = frame.filter(~genuine & t.is_not_null()).get_column("t")
    if not listed and (stray.str.strip_chars() == "").all():
        return frame.select(pl.when(genuine).then(value).alias(spec.source)).to_series()
    if spec.kind == "date":
        render = value.dt.strftime(spec.exact_date_format)
    elif spec.kind == "float":
        render = value.cast(pl.Utf8)
    elif spec.kind == "bool":
        render = pl.when(value).then(pl.lit(spec.true_values[0])).otherwise(
            pl.lit(spec.false_values[0]))
    else:
        render = pl.when(value >= 0).then(value.cast(pl.Utf8).str.zfill(spec.width or 0)) \
            .otherwise(value.cast(pl.Utf8))
    return frame.with_columns(e=errors).select(
        pl.coalesce(pl.when(genuine).then(render).otherwise(t), pl.col("e"))
        .alias(spec.source)).to_series()


def _as_identifier(part: _Part) -> _Part:
    """An identifier column's part as text beside whole numbers (Int64, null elsewhere).

    From a text load, a cell is a whole number when its text is the integer's own
    spelling (calamine writes a whole number so, and ``067409`` is not); from a
    number load, when the number is whole. Either way it must be below 2**53, where
    a float still holds every integer; other number cells keep calamine's text.
    """
    if part.value is None:
        number = part.text.cast(pl.Int64, strict=False)
        whole = (number.cast(pl.Utf8) == part.text) & (number.abs() < 2**53)
        value = pl.select(pl.when(whole.fill_null(False)).then(number)).to_series()
        return _Part(part.text, value, None, part.errors, True)
    number = part.value
    # -0 is written "-0", not the integer's spelling: as text it is no whole number either
    negative_zero = (number == 0) & (1.0 / number < 0)
    whole = ((number == number.floor()) & (number.abs() < 2**53) & ~negative_zero) \
        .fill_null(False)
    text = part.text
    others = (number.is_not_null() & ~whole).arg_true()
    if others.len():
        text = text.scatter(others, [_float_text(v) for v in number.gather(others).to_list()])
    value = pl.select(pl.when(whole).then(number.cast(pl.Int64, strict=False))).to_series()
    return _Part(text, value, None, part.errors, True)


# --- the .xlsx package: first rows, shared strings, boolean cells --------------------------

_CELL_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
"""OOXML writes control characters in text as ``_x000D_``; calamine reads them back."""


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _column_number(ref: str) -> int:
    """``A1`` -> 0, ``AB7`` -> 27; -1 if the reference is not a cell."""
    letters = re.match(r"([A-Z]{1,3})[0-9]+$", ref)
    if not letters:
        return -1
    number = 0
    for letter in letters.group(1):
        number = number * 26 + ord(letter) - 64
    return number - 1


def _run_text(element: ElementTree.Element) -> str:
    """The text of an ``<si>`` or ``<is>``: its ``<t>`` and rich-text runs, no phonetics."""
    out = []
    for child in element:
        tag = _local(child.tag)
        if tag == "t":
            out.append(child.text or "")
        elif tag == "r":
            out.extend(t.text or "" for t in child if _local(t.tag) == "t")
    return _CELL_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), "".join(out))


_PREFIX = re.compile(rb"<(/?)" + _NAME + rb":")
_SST_PREFIXED = re.compile(rb"<" + _NAME + rb":si[\s>/]")
_SPELLED_NUMBER = re.compile(
    rb">(?=[-+.0-9iInN])([+-]?(?:[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN]"
    rb"|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?))(?:</|\Z)")
"""Text that calamine's number load parses (Rust's float syntax), ended by a tag."""
_ENTRY_START = re.compile(rb"<(?:" + _NAME + rb":)?si>\s*<(?:" + _NAME
                          + rb":)?t(?:\s[^>]*)?>\Z")
_ENTRY_END = re.compile(rb"</(?:" + _NAME + rb":)?t>\s*</(?:" + _NAME + rb":)?si>")


def _entry_count(buffer: bytes | bytearray, end: int, start: int = 0) -> int:
    """Shared-string entries starting in ``buffer[start:end]``; more, never fewer.

    No other element of the table starts with ``si``, and text holds ``<`` only
    escaped, so counting ``<si`` is exact for an honest table, and fast.
    """
    count = buffer.count(b"<si", start, end)
    if buffer.find(b":si", start, end) >= 0:
        count += len(_SST_PREFIXED.findall(buffer, start, end))
    return count


def _entry_starts(buffer: bytes | bytearray, end: int, wanted: set[int]) -> dict[int, int]:
    """Where the ``wanted`` entries (counted from the first in ``buffer``) start.

    Counted a block at a time, and looked through only in the blocks that hold one.
    """
    starts: dict[int, int] = {}
    index = block = 0
    while block < end and len(starts) < len(wanted):
        stop = min(block + (1 << 16), end)
        if stop < end:
            # blocks end at a "<", so no entry's start straddles two
            seam = buffer.rfind(b"<", block + 1, stop)
            stop = seam if seam > block else stop
        found = _entry_count(buffer, stop, block)
        if any(index <= k < index + found for k in wanted):
            for k, match in enumerate(_SST_ENTRY.finditer(buffer, block, stop), start=index):
                if k in wanted:
                    starts[k] = match.start()
        index += found
        block = stop
    return starts


def _entry_text(fragment: bytes) -> str | None:
    """The text of one ``<si>`` entry cut from the shared-string table."""
    try:
        root = ElementTree.fromstring(b"<root>" + _PREFIX.sub(rb"<\1", fragment) + b"</root>")
    except ElementTree.ParseError:
        return None
    return _run_text(root[0]) if len(root) else None


class _Package:
    """An ``.xlsx`` package read in place: parts are streamed, never inflated whole.

    Used for what is cheap to learn without calamine: each sheet's first rows (to
    find the header), whether a sheet holds any boolean cell, and the size of the
    shared-string table. Anything unexpected makes it step aside (None, or "may
    hold booleans"), and calamine is asked instead.
    """

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.archive = zipfile.ZipFile(io.BytesIO(data))
        self.names = {i.filename.lower(): i.filename for i in self.archive.infolist()}
        self.sheets: list[tuple[str, str | None]] | None = None
        self.shared: str | None = None
        self._cells: dict[int, tuple[bool, bool]] = {}
        self._scans: dict[int, tuple[threading.Thread, list[tuple[bool, bool] | None]]] = {}
        self.numbers: set[float] | None = None
        """The numbers that shared strings spell (``067409`` -> 67409.0); None if unknown."""
        self._rows: list[dict[int, dict[int, int | str | None]] | None] = []
        self._texts: list[set[tuple[int, int]]] = []
        self._strings: dict[int, str | None] = {}
        try:
            self._read_workbook()
        except Exception:  # noqa: BLE001 - calamine reads what this cannot
            self.sheets = None

    @classmethod
    def open(cls, data: bytes) -> _Package | None:
        try:
            return cls(data)
        except Exception:  # noqa: BLE001 - damage is calamine's to report
            return None

    def _xml(self, name: str) -> ElementTree.Element | None:
        actual = self.names.get(name.lower())
        if actual is None or self.archive.getinfo(actual).file_size > _PART_BYTES:
            return None
        return ElementTree.fromstring(self.archive.read(actual))

    def _relations(self, part: str) -> dict[str, tuple[str, str]]:
        """Id -> (type, part name) of a part's relationships."""
        folder, _, name = part.rpartition("/")
        rels = self._xml(f"{folder}/_rels/{name}.rels" if folder else f"_rels/{name}.rels")
        found = {}
        for rel in rels if rels is not None else ():
            target = rel.get("Target", "")
            if rel.get("TargetMode") == "External":
                continue
            path = target.lstrip("/") if target.startswith("/") else \
                "/".join(p for p in f"{folder}/{target}".split("/") if p)
            parts: list[str] = []
            for piece in path.split("/"):
                if piece == "..":
                    if parts:
                        parts.pop()
                elif piece != ".":
                    parts.append(piece)
            found[rel.get("Id", "")] = (rel.get("Type", ""), "/".join(parts))
        return found

    def _read_workbook(self) -> None:
        root = self._relations("")
        workbook = next((p for t, p in root.values() if t.endswith("/officeDocument")), None)
        if workbook is None:
            return
        rels = self._relations(workbook)
        self.shared = next((p for t, p in rels.values() if t.endswith("/sharedStrings")), None)
        xml = self._xml(workbook)
        if xml is None:
            return
        sheets = []
        for element in xml.iter():
            if _local(element.tag) != "sheet":
                continue
            rid = next((v for k, v in element.attrib.items() if _local(k) == "id"), "")
            kind, part = rels.get(rid, ("", ""))
            sheets.append((element.get("name", ""),
                           part if kind.endswith("/worksheet") and part.lower() in self.names
                           else None))
        self.sheets = sheets

    def prepare(self, member: str) -> None:
        """Read each sheet's first rows, then the shared strings once, as a stream.

        The shared-string table is counted as it streams (see
        ``_check_shared_strings``) and only the entries the first rows use are kept.
        """
        self._texts = [set() for _ in self.sheets or ()]
        self._rows = [self._first_rows(part, texts) if part else None
                      for (_, part), texts in zip(self.sheets or (), self._texts, strict=True)]
        needed = {v for rows in self._rows if rows for cells in rows.values()
                  for v in cells.values() if isinstance(v, int)}
        self._strings = self._check_shared_strings(member, needed)

    def _check_shared_strings(self, member: str, needed: set[int]) -> dict[int, str | None]:
        """Refuse a shared-string table with more strings than the sheets have cells.

        calamine loads the whole table before the first cell, at some 75 bytes of
        memory an entry, so a workbook of a few megabytes holding millions of tiny
        ``<si>`` entries would exhaust memory. Each entry of an honest table is used
        by a cell, and a cell takes at least ``_MIN_CELL_BYTES`` of sheet XML. The
        table is inflated as a stream and counted, never held whole; a package that
        cannot be read here is left for calamine to report. Returns the ``needed``
        entries of the workbook's own table that were found.
        """
        strings: dict[int, str | None] = {}
        self.numbers = set()
        try:
            infos = self.archive.infolist()
            tables = [i for i in infos
                      if i.filename.rsplit("/", 1)[-1].lower() == "sharedstrings.xml"]
            sheet_bytes = sum(min(i.file_size, _DEFLATE_MAX_RATIO * max(i.compress_size, 1))
                              for i in infos if i.filename.lower().startswith("xl/worksheets/"))
            room = sheet_bytes // _MIN_CELL_BYTES + _SST_SLACK
            for info in tables:
                mine = self.shared is not None and info.filename.lower() == self.shared.lower()
                count = self._count_entries(info, room, needed if mine else set(), strings)
                if count > room:
                    raise ReadError(
                        f"{member}: the workbook's shared-string table holds more than "
                        f"{room} strings, more than its sheets have cells; refused as a "
                        "damaged or hostile workbook (it would exhaust memory). Ask the "
                        "sender to save it again, or to export CSV")
        except ReadError:
            raise
        except Exception:  # noqa: BLE001 - damage is calamine's to report, with its own message
            self.numbers = None
            return {}
        return strings

    def _count_entries(self, info: zipfile.ZipInfo, room: int, needed: set[int],
                       strings: dict[int, str | None]) -> int:
        """The table's entries, counted up to ``room``; the ``needed`` ones go to ``strings``.

        Read a megabyte at a time; each step looks at the whole entries read so far
        (up to the last entry's start, or the last ``<``: an entry's start holds one,
        so none straddles it) and keeps the rest for the next step.
        """
        count = 0
        buffer = bytearray()
        entry: tuple[int, bytearray] | None = None
        """A needed entry whose end is not read yet."""
        with self.archive.open(info) as stream:
            while count <= room:
                chunk = stream.read(1 << 20)
                fresh = len(buffer)
                buffer += chunk
                if chunk:
                    cut = buffer.rfind(b"<si", max(0, fresh - 2))
                    cut = buffer.rfind(b"<", max(0, fresh - 2)) if cut <= 0 else cut
                    cut = max(cut, 0)
                else:
                    cut = len(buffer)
                self._spelled_numbers(buffer, cut)
                found = _entry_count(buffer, cut)
                wanted = {i - count for i in needed if count <= i < count + found}
                if entry is not None or wanted:
                    starts = _entry_starts(buffer, cut, {0} | wanted | {k + 1 for k in wanted})
                    if entry is not None:
                        entry[1].extend(buffer[:starts.get(0, cut)])
                        if 0 in starts:
                            strings[entry[0]] = _entry_text(bytes(entry[1]))
                            entry = None
                    for k in sorted(wanted):
                        if k not in starts:
                            continue
                        if k + 1 in starts:
                            strings[count + k] = _entry_text(bytes(buffer[starts[k]:starts[k + 1]]))
                        else:
                            entry = (count + k, bytearray(buffer[starts[k]:cut]))
                count += found
                del buffer[:cut]
                if not chunk:
                    break
        if entry is not None:
            # the table's last entry ends where the table does
            entry[1].extend(buffer)
            strings[entry[0]] = _entry_text(bytes(entry[1][:entry[1].rfind(b"</")]))
        return count

    def _spelled_numbers(self, buffer: bytes | bytearray, end: int) -> None:
        """Add to ``numbers`` what the entries in ``buffer[:end]`` spell, as calamine
        parses text in a number column; give up (None) on text it cannot be sure of:
        a number in a rich-text run, written with character references or in CDATA."""
        if self.numbers is None:
            return
        if buffer.find(b"&#", 0, end) >= 0 or buffer.find(b"<![CDATA[", 0, end) >= 0:
            self.numbers = None
            return
        for found in _SPELLED_NUMBER.finditer(buffer, 0, end):
            before = buffer[max(0, found.start() - 256):found.start() + 1]
            after = buffer[found.end() - 2:found.end() + 64]
            number = float(found.group(1))
            if number != number or not (_ENTRY_START.search(before) and _ENTRY_END.match(after)):
                self.numbers = None
                return
            self.numbers.add(number)
            if len(self.numbers) > _NUMBERS_KEPT:
                self.numbers = None  # text is mostly numbers: identifiers load as text
                return

    def heads(self, sheet_names: list[str]) -> list[_Head | None] | None:
        """Each sheet's first ``HEADER_SCAN_ROWS`` rows as calamine writes them as text.

        None for a sheet this cannot read (calamine reads it), and for all of them
        when the workbook's sheets are not the ones calamine lists. A number cell is
        written as calamine writes a number, even where a date format would make
        calamine write a date: such a cell never names a column.
        """
        if self.sheets is None or [n for n, _ in self.sheets] != sheet_names:
            return None
        heads: list[_Head | None] = []
        for rows, texts in zip(self._rows, self._texts, strict=True):
            if rows is None or any(isinstance(v, int) and self._strings.get(v) is None
                                   for cells in rows.values() for v in cells.values()):
                heads.append(None)
                continue
            width = max((c + 1 for cells in rows.values() for c in cells), default=0)
            height = max(rows, default=-1) + 1
            table: list[list[str | None]] = [[None] * width for _ in range(height)]
            for r, cells in rows.items():
                for c, v in cells.items():
                    table[r][c] = self._strings.get(v) if isinstance(v, int) else v
            heads.append((list(range(width)), table, texts))
        return heads

    def _first_rows(self, part: str, texts: set[tuple[int, int]]
                    ) -> dict[int, dict[int, int | str | None]] | None:
        """row -> column -> a shared-string index, the cell's text, or None (no text);
        the (row, column) of the text cells go to ``texts``."""
        rows: dict[int, dict[int, int | str | None]] = {}
        current: dict[int, int | str | None] | None = None
        at = -1
        parser: ElementTree.XMLPullParser = ElementTree.XMLPullParser(events=("start", "end"))
        read = 0
        try:
            with self.archive.open(self.names[part.lower()]) as stream:
                while chunk := stream.read(1 << 16):
                    read += len(chunk)
                    if read > _HEAD_BYTES:
                        return None
                    parser.feed(chunk)
                    for event, *rest in parser.read_events():
                        element = rest[0]
                        if not isinstance(element, ElementTree.Element):
                            continue
                        tag = _local(element.tag)
                        if event == "start":
                            if tag == "row":
                                number = element.get("r")
                                if number is None or not number.isdigit():
                                    return None
                                if int(number) > HEADER_SCAN_ROWS:
                                    return rows
                                at = int(number) - 1
                                current = rows.setdefault(at, {})
                            continue
                        if tag == "c":
                            column = _column_number(element.get("r", ""))
                            if column < 0 or current is None:  # a cell outside a row
                                return None
                            kind, cell = self._cell(element)
                            if kind == "unknown":
                                return None
                            current[column] = cell
                            if kind in ("s", "str", "inlineStr"):
                                texts.add((at, column))
                            element.clear()
                        elif tag == "row":
                            element.clear()
                        elif tag == "sheetData":
                            return rows
        except Exception:  # noqa: BLE001 - unsure (damaged XML or ZIP): calamine reads it
            return None  # and reports the damage in its own words
        return rows

    @staticmethod
    def _cell(element: ElementTree.Element) -> tuple[str, int | str | None]:
        """(the cell's kind, a shared-string index or its text); kind ``unknown`` if unsure."""
        kind = element.get("t", "n")
        value = next((c.text or "" for c in element if _local(c.tag) == "v"), None)
        if kind == "inlineStr":
            inline = next((c for c in element if _local(c.tag) == "is"), None)
            return kind, _run_text(inline) if inline is not None else None
        if value is None:
            return kind, None
        if kind == "s":
            return (kind, int(value)) if value.strip().isdigit() else ("unknown", None)
        if kind in ("str", "d"):
            return kind, _CELL_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value)
        if kind == "b":
            return kind, "true" if value.strip() not in ("0", "") else "false"
        if kind == "e":
            return kind, None
        if kind == "n":
            try:
                return kind, _float_text(float(value))
            except ValueError:
                pass
        return "unknown", None

    def scan_cells(self, index: int) -> None:
        """Start looking for boolean and other non-number cells in the sheet, in a
        thread beside calamine's load of it (see ``cells``).

        zlib, Arrow's regular expressions and calamine's parse all release the GIL,
        so on a second core the scan costs no time. The sheet's XML is inflated and
        scanned a few MB at a time, never held whole.
        """
        name = self._part_name(index)
        if index in self._cells or index in self._scans or name is None:
            return
        result: list[tuple[bool, bool] | None] = [None]
        thread = threading.Thread(target=self._scan, args=(name, result),
                                  name="xlsx-cell-scan")
        thread.start()
        self._scans[index] = (thread, result)

    def cells(self, index: int) -> tuple[bool, bool]:
        """Whether the sheet may hold (boolean cells, text cells not in the shared strings).

        The second: inline or formula text (``t="inlineStr"``, ``t="str"``) and ISO
        dates (``t="d"``), which the shared-string check does not see. Every
        attribute value is quoted, so a sheet without ``"b"`` anywhere holds no
        boolean cell. True when unsure.
        """
        if index not in self._cells:
            self.scan_cells(index)  # if it was not started beside the load
            found: tuple[bool, bool] | None = None
            if index in self._scans:
                thread, result = self._scans.pop(index)
                thread.join()
                found = result[0]
            self._cells[index] = (True, True) if found is None else found
        return self._cells[index]

    def _part_name(self, index: int) -> str | None:
        """The ZIP entry of sheet ``index``; None if the scan did not find it."""
        part = self.sheets[index][1] if self.sheets and index < len(self.sheets) else None
        return self.names[part.lower()] if part is not None else None

    def _scan(self, name: str, result: list[tuple[bool, bool] | None]) -> None:
        """(In a thread.) (booleans, texts) of the sheet into ``result[0]``; None if unsure."""
        tail = b""
        booleans = texts = False
        try:
            with self.archive.open(name) as stream:
                while not (booleans and texts) and (chunk := stream.read(1 << 22)):
                    block = tail + chunk
                    if _matches(block, _EITHER_CELL):
                        booleans = booleans or _matches(block, _BOOLEAN_CELL)
                        texts = texts or _matches(block, _TEXT_CELL)
                    tail = block[-16:]
        except Exception:  # noqa: BLE001 - unsure: the sheet may hold either
            return
        result[0] = booleans, texts

    def close(self) -> None:
        """Wait for the scans still running (their answers are not needed)."""
        for thread, _ in self._scans.values():
            thread.join()
        self._scans.clear()


_BOOLEAN_CELL = re.compile(rb"[\"']b[\"']")
_TEXT_CELL = re.compile(rb"[\"'](?:d|str|inlineStr)[\"']")
_EITHER_CELL = re.compile(rb"[\"'](?:b|d|str|inlineStr)[\"']")


def _matches(data: bytes, pattern: re.Pattern[bytes]) -> bool:
    """Whether ``pattern`` occurs in ``data``, by RE2 through pyarrow: linear time,
    gigabytes a second, and the GIL released (Python's ``re`` managed 0.1 GB/s here)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    offsets = pa.py_buffer(struct.pack("<qq", 0, len(data)))
    array = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)])
    return bool(pc.match_substring_regex(array, pattern.pattern.decode())[0].as_py())


def _encrypted(member: str) -> DecryptionError:
    return DecryptionError(
        f"{member}: the workbook is password-protected (Office encryption); give the "
        "password so it is decrypted before reading, or ask the sender for an "
        "unprotected copy")


def _unreadable(data: bytes, member: str, fmt: str) -> ReadError | DecryptionError:
    """Why calamine failed, without its message (which may quote cells)."""
    try:
        import msoffcrypto  # type: ignore[import-untyped]

        if msoffcrypto.OfficeFile(io.BytesIO(data)).is_encrypted():
            return _encrypted(member)
    except Exception:  # noqa: BLE001 - only asking whether it is encrypted
        pass
    return ReadError(f"{member}: the {fmt} workbook could not be read; it may be damaged "
                     "or truncated. Ask the sender to save it again, or to export CSV")


def _reader(fmt: str, sniff):  # noqa: ANN001, ANN202
    from . import Reader

    return Reader(fmt, sniff, _format_reader(fmt))


READERS = [_reader("xlsx", sniff_xlsx), _reader("xlsb", sniff_xlsb),
           _reader("ods", sniff_ods), _reader("xls", sniff_xls)]
