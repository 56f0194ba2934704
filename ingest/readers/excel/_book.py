"""Reading a workbook through fastexcel (calamine): sheets, header, typed loads."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from ...errors import DecryptionError, ReadError, SchemaMismatchError
from ...formats import Probe
from ...schema import Dataset
from .._base import SourceTable, header_score, match_columns, normalise_header
from ._cells import _BOOL_TEXT, _cell_errors, _located, _scatter
from ._columns import _TYPED, _Column, _extent, _finish, _identifier, _numbers, _Part
from ._dates import DateReading
from ._integrity import is_intact
from ._odf import without_layout_whitespace
from ._package import _Head, _Package
from ._shape import HEADER_SCAN_ROWS, MAX_COLUMNS
from ._writer import Writer, identify

if TYPE_CHECKING:
    import fastexcel
    from fastexcel import DType


class _Misread(Exception):
    """The package scan and calamine disagree about a sheet: read it calamine's way."""



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



def _format_reader(fmt: str):  # noqa: ANN202 - a Reader.read
    def read(data: bytes, dataset: Dataset, member: str) -> SourceTable:
        return read_workbook(data, dataset, member, fmt)
    read.__doc__ = f"Read a {fmt} workbook member as the dataset's table."
    return read


def read_workbook(data: bytes, dataset: Dataset, member: str, fmt: str) -> SourceTable:
    """The dataset's table from the workbook's sheets that carry its header."""
    import fastexcel

    if Probe(data).is_("office-encrypted"):  # handed here without being decrypted
        raise _encrypted(member)
    package = _Package.open(data) if fmt == "xlsx" else None
    writer = identify(data, fmt)
    if package is not None:
        package.prepare(member)
    try:
        book = _open(data, fmt)
        try:
            return _read_book(book, package, writer, dataset, member, fmt,
                              scanned=package is not None)
        except _Misread:
            return _read_book(book, package, writer, dataset, member, fmt, scanned=False)
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


def _read_book(book: fastexcel.ExcelReader, package: _Package | None, writer: Writer,
               dataset: Dataset, member: str, fmt: str, scanned: bool) -> SourceTable:
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
    dates = DateReading(writer, fmt)
    for position, sheet in enumerate(table):
        trailer = _gather(book, package, sheet, dataset, member, columns, dates,
                          last=position == len(table) - 1)
    frame = pl.DataFrame([_finish(c) for c in columns])
    errors = sum(len(p.errors) for c in columns for p in c.parts)
    if errors:
        notes.append(f"{errors} cells hold formula errors (such as #N/A); "
                     "their rows will be quarantined where the column needs a value")
    if trailer is not None and trailer != frame.height:
        raise ReadError(f"{member}: the trailer says {trailer} records but {frame.height} "
                        "were read; the workbook is incomplete or altered, ask for it again")
    notes += dates.notes()
    return SourceTable(member, fmt, frame, None, trailer, notes,
                       date_system=dates.date_system)


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
            dataset: Dataset, member: str, columns: list[_Column], dates: DateReading,
            last: bool) -> int | None:
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
    if package is not None and any(_numbers(s) or s.kind == "bool" or _identifier(s)
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
            if j in odd or (_numbers(spec) and _may_hold_booleans(package, sheet, series)) \
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
    dates.settle(book, sheet.index, sheet.header, {i: (s.source, parts[s.source])
                                                   for i, s in wanted.items() if s.kind == "date"},
                 end)
    offset = sum(len(p.text) for p in columns[0].parts)
    for column in columns:
        part = parts[column.spec.source]
        part.errors = [(offset + r, t) for r, t in part.errors]
        column.parts.append(part)
    return trailer



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
    if not is_intact(data):
        return ReadError(f"{member}: the {fmt} workbook could not be read; it may be damaged "
                         "or truncated (its structure fails its checks). Ask the sender to "
                         "send it again, or to export CSV")
    producer = "Gnumeric " if (identify(data, fmt).application or "").lower().startswith(
        "gnumeric") else ""
    return ReadError(f"{member}: a {producer}{fmt} workbook our spreadsheet engine cannot "
                     "parse; the file itself is intact (not damaged). Ask the sender to save "
                     "it as .xlsx (Excel), or to export CSV")


def _open(data: bytes, fmt: str) -> fastexcel.ExcelReader:
    """The workbook opened by calamine; an OpenDocument file calamine refuses is tried
    again without its layout whitespace (Gnumeric's indented XML, see ``_odf``)."""
    import fastexcel

    try:
        return fastexcel.read_excel(data)
    except fastexcel.FastExcelError:
        if fmt != "ods":
            raise
        plain = without_layout_whitespace(data)
        if plain is None:
            raise
        return fastexcel.read_excel(plain)
