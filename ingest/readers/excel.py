"""Workbooks: ``.xlsx``, legacy ``.xls``, ``.xlsb`` and OpenDocument ``.ods``.

Read in memory by fastexcel (calamine underneath, Arrow out). Each sheet is
loaded twice: once as text (to find the header row below any title or notes
rows, and to keep every cell's text), and once with the column types the
schema asks for (dates, numbers, booleans). A column keeps its cells' type when
every cell has it; a column whose cells are mixed (dates beside text such as
``02/30/1980``, numbers beside ``NA``) becomes text, each typed cell written the
way the schema parses it (dates in the column's first date format, identifiers
zero-padded to ``Column.width``), so no cell is lost or changed and the bad ones
are quarantined downstream with the right reason. Formula errors (``#N/A``)
become their text, which never parses as a date or number. In an identifier
column, text that spells the number exactly (``67409``) counts as that number
and is padded too: Excel users type identifiers either way.

Two loads, because calamine's single typed load either nulls the cells that do
not fit a column's type or turns a mixed column into text that loses the cell
types (dates as ISO text, numbers rounded to nine decimals).

A table split over several sheets with the same header (a legacy ``.xls`` sheet
holds 65,536 rows) is read as one table, in sheet order; sheets without that
header (notes, lookups, empty sheets) are skipped and named in the notes.
"""

from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import polars as pl

from ..errors import DecryptionError, ReadError, SchemaMismatchError
from ..schema import Column, Dataset
from ._base import SourceTable, header_score, match_columns
from .csv import _TRAILER

if TYPE_CHECKING:
    import fastexcel
    from fastexcel import DType

HEADER_SCAN_ROWS = 30
"""Title and notes rows above the header are looked through this far."""

_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# BIFF8 and BIFF5 beginning-of-file records of a workbook globals substream
_BIFF_BOF = (b"\x09\x08\x10\x00\x00\x06\x05\x00", b"\x09\x08\x08\x00\x00\x05\x05\x00")
_ODS_MIME = b"application/vnd.oasis.opendocument.spreadsheet"
_ERROR_TEXT = {"NA": "#N/A", "Div0": "#DIV/0!", "Value": "#VALUE!", "Ref": "#REF!",
               "Name": "#NAME?", "Num": "#NUM!", "Null": "#NULL!",
               "GettingData": "#GETTING_DATA"}
_FORCED: dict[str, DType] = {"date": "date", "float": "float", "bool": "boolean"}
_BOOL_TEXT = ("true", "false")
"""How calamine writes a boolean cell as text."""
_SST_ENTRY = re.compile(rb"<(?:\w{1,16}:)?si[\s>/]")
"""The start of a shared-string entry (``<si>``, ``<x:si>``, ``<si/>``)."""
_MIN_CELL_BYTES = 20
"""The shortest sheet XML of a cell that uses a shared string: ``<c t="s"><v>0</v></c>``."""
_DEFLATE_MAX_RATIO = 1032
"""Deflate cannot expand more than this; a larger declared size is not believed."""
_SST_SLACK = 10_000


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
    if not head.startswith(_OLE):
        return False
    utf16 = ("Workbook".encode("utf-16-le"), "Book\x00".encode("utf-16-le"),
             "EncryptedPackage".encode("utf-16-le"))
    return any(name in head for name in utf16) or any(bof in head for bof in _BIFF_BOF)


# --- reading ----------------------------------------------------------------------------

@dataclass
class _Sheet:
    """One sheet as text: every row (absolute), its header row and error cells."""

    index: int
    name: str
    text: pl.DataFrame
    absolute: list[int]
    """Sheet column index of each column of ``text``."""
    errors: dict[tuple[int, int], str]
    """(row, column of ``text``) -> ``#N/A`` and the like."""
    header: int = -1
    score: int = 0


@dataclass
class _Column:
    """A schema column gathered over the table's sheets."""

    spec: Column
    text: list[pl.Series] = field(default_factory=list)
    typed: list[pl.Series] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)


def _format_reader(fmt: str):  # noqa: ANN202 - a Reader.read
    def read(data: bytes, dataset: Dataset, member: str) -> SourceTable:
        return read_workbook(data, dataset, member, fmt)
    read.__doc__ = f"Read a {fmt} workbook member as the dataset's table."
    return read


def read_workbook(data: bytes, dataset: Dataset, member: str, fmt: str) -> SourceTable:
    """The dataset's table from the workbook's sheets that carry its header."""
    import fastexcel

    if data.startswith(_OLE) and "EncryptedPackage".encode("utf-16-le") in data[:65536]:
        raise _encrypted(member)
    if fmt == "xlsx":
        _check_shared_strings(data, member)
    try:
        book = fastexcel.read_excel(data)
        return _read_book(book, dataset, member, fmt)
    except fastexcel.FastExcelError:
        raise _unreadable(data, member, fmt) from None
    except BaseException as exc:
        # a Rust panic inside calamine reaches Python as a BaseException
        if type(exc).__name__ != "PanicException":
            raise
        raise _unreadable(data, member, fmt) from None


def _read_book(book: fastexcel.ExcelReader, dataset: Dataset, member: str,
               fmt: str) -> SourceTable:
    sheets = [_scan(book, i, name, dataset) for i, name in enumerate(book.sheet_names)]
    best = max((s.score for s in sheets), default=0)
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
        trailer = _gather(book, sheet, dataset, member, columns,
                          last=position == len(table) - 1)
    frame = pl.DataFrame([_finish(c) for c in columns])
    errors = sum(len(c.errors) for c in columns)
    if errors:
        notes.append(f"{errors} cells hold formula errors (such as #N/A); "
                     "their rows will be quarantined where the column needs a value")
    if trailer is not None and trailer != frame.height:
        raise ReadError(f"{member}: the trailer says {trailer} records but {frame.height} "
                        "were read; the workbook is incomplete or altered, ask for it again")
    return SourceTable(member, fmt, frame, None, trailer, notes)


def _scan(book: fastexcel.ExcelReader, index: int, name: str, dataset: Dataset) -> _Sheet:
    """The sheet as text, and the row among the first ones that best names the columns."""
    sheet = book.load_sheet(index, header_row=None, skip_rows=0, dtypes="string")
    batch, cell_errors = sheet.to_arrow_with_errors()
    text = pl.from_arrow(batch)
    assert isinstance(text, pl.DataFrame)
    errors = {}
    for error in cell_errors.errors if cell_errors else ():
        kind = re.search(r"Error\((\w+)\)", error.detail)
        errors[error.offset_position] = _ERROR_TEXT.get(kind.group(1), "#ERROR") if kind \
            else "#ERROR"
    found = _Sheet(index, name, text, [c.absolute_index for c in sheet.selected_columns],
                   errors)
    for row, cells in enumerate(text.head(HEADER_SCAN_ROWS).rows()):
        score = header_score(list(cells), dataset)
        if score > found.score:
            found.header, found.score = row, score
    return found


def _gather(book: fastexcel.ExcelReader, sheet: _Sheet, dataset: Dataset, member: str,
            columns: list[_Column], last: bool) -> int | None:
    """Add the sheet's data rows to ``columns``; the trailer count if it ends with one."""
    names = [str(v) if v is not None else f"(blank column {j + 1})"
             for j, v in enumerate(sheet.text.row(sheet.header))]
    mapping = match_columns(names, dataset, f"{member} (sheet {sheet.name!r})")
    where = {source: names.index(found) for source, found in mapping.items()}
    body = sheet.text.slice(sheet.header + 1)
    end, trailer = _extent(body, sheet, last)
    forced: dict[str | int, DType] = {}
    for spec in dataset.columns:
        dtype = _forced_dtype(spec)
        if dtype:
            forced[sheet.absolute[where[spec.source]]] = dtype
    typed: dict[int, pl.Series] = {}
    if forced:
        loaded = book.load_sheet(sheet.index, header_row=sheet.header,
                                 use_columns=sorted(int(i) for i in forced), dtypes=forced)
        frame = pl.from_arrow(loaded.to_arrow())
        assert isinstance(frame, pl.DataFrame)
        if frame.height != body.height:
            raise ReadError(f"{member}: sheet {sheet.name!r} gave different row counts when "
                            "read twice; the workbook may be damaged, ask for it again")
        for info, series in zip(loaded.selected_columns, frame.get_columns(), strict=True):
            typed[info.absolute_index] = series.head(end)
    offset = sum(len(s) for s in columns[0].text)
    for column in columns:
        j = where[column.spec.source]
        column.text.append(body.to_series(j).head(end).cast(pl.Utf8))
        if sheet.absolute[j] in typed:
            column.typed.append(typed[sheet.absolute[j]])
        column.errors.extend((offset + r - sheet.header - 1, text)
                             for (r, c), text in sheet.errors.items()
                             if c == j and sheet.header < r <= sheet.header + end)
    return trailer


def _extent(body: pl.DataFrame, sheet: _Sheet, last: bool) -> tuple[int, int | None]:
    """Data rows to keep (trailing empty rows dropped), and a record-count trailer."""
    occupied = body.select(pl.any_horizontal(
        [pl.col(c).is_not_null() & (pl.col(c).str.strip_chars() != "") for c in body.columns]
    )).to_series().arg_true().to_list()
    filled = sorted({*occupied, *(r - sheet.header - 1 for r, _ in sheet.errors
                                  if r > sheet.header)})
    if not filled:
        return 0, None
    if last and filled[-1] in occupied:
        cells = [v for v in body.row(filled[-1]) if v is not None and v.strip()]
        match = _TRAILER.match(cells[0]) if len(cells) == 1 else None
        if match:
            return (filled[-2] + 1 if len(filled) > 1 else 0), int(match.group(1))
    return filled[-1] + 1, None


def _forced_dtype(column: Column) -> DType | None:
    """What to load the column as, beside its text: None for text columns."""
    if column.kind in _FORCED:
        return _FORCED[column.kind]
    return "float" if column.width else None


def _date_format(column: Column) -> str:
    """The column's first date format with a four-digit year: it parses back exactly."""
    return next((f for f in column.date_formats if "%Y" in f and "%H" not in f), "%Y-%m-%d")


def _finish(column: _Column) -> pl.Series:
    """The column, typed when every cell has the schema's type, else faithful text."""
    spec = column.spec
    text = pl.concat(column.text) if column.text else pl.Series([], dtype=pl.Utf8)
    errors = pl.repeat(None, text.len(), dtype=pl.Utf8, eager=True)
    if column.errors:
        rows, values = zip(*column.errors, strict=True)
        errors = errors.scatter(list(rows), list(values))
    if not column.typed:
        return text.zip_with(text.is_not_null(), errors).alias(spec.source)
    typed = pl.concat(column.typed)
    frame = pl.DataFrame({"t": text, "v": typed, "e": errors})
    t, v = pl.col("t"), pl.col("v")
    is_bool_cell = t.is_in(_BOOL_TEXT)
    if spec.kind == "date":
        genuine = v.is_not_null()
        render = v.dt.strftime(_date_format(spec))
    elif spec.kind == "float":
        genuine = v.is_not_null() & ~is_bool_cell
        render = v.cast(pl.Utf8)
    elif spec.kind == "bool":
        genuine = v.is_not_null() & is_bool_cell
        render = pl.when(v).then(pl.lit(spec.true_values[0])).otherwise(
            pl.lit(spec.false_values[0]))
    else:  # an identifier: a number cell reads as the integer calamine wrote
        whole = (v == v.floor()) & (v.abs() < 2.0**53)
        as_int = pl.when(whole).then(v.cast(pl.Int64).cast(pl.Utf8))
        genuine = (v.is_not_null() & (t == as_int)).fill_null(False)
        render = pl.when(whole & (v >= 0)).then(as_int.str.zfill(spec.width or 0)).otherwise(t)
    genuine = genuine.fill_null(False)
    stray = t.is_not_null() & (t.str.strip_chars() != "") & ~genuine
    pure = not column.errors and not frame.select(stray.any()).item()
    if pure:
        typed_column = frame.select(pl.when(genuine).then(v).alias(spec.source)).to_series()
        return typed_column if spec.kind in ("date", "float", "bool") else _narrow(typed_column)
    return frame.select(
        pl.coalesce(pl.when(genuine).then(render).otherwise(t), pl.col("e"))
        .alias(spec.source)).to_series()


def _narrow(series: pl.Series) -> pl.Series:
    """Whole numbers as Int64: an identifier keeps every digit."""
    values = series.drop_nulls()
    if series.dtype == pl.Float64 and \
            ((values == values.floor()) & (values.abs() < 2.0**53)).all():
        return series.cast(pl.Int64)
    return series


def _check_shared_strings(data: bytes, member: str) -> None:
    """Refuse a shared-string table with more strings than the sheets have cells.

    calamine loads the whole table before the first cell, at some 75 bytes of
    memory an entry, so a workbook of a few megabytes holding millions of tiny
    ``<si>`` entries would exhaust memory. Each entry of an honest table is used
    by a cell, and a cell takes at least ``_MIN_CELL_BYTES`` of sheet XML. The
    table is inflated as a stream and counted, never held whole; a package that
    cannot be opened here is left for calamine to report.
    """
    import zipfile

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
        tables = [i for i in infos
                  if i.filename.rsplit("/", 1)[-1].lower() == "sharedstrings.xml"]
        sheet_bytes = sum(min(i.file_size, _DEFLATE_MAX_RATIO * max(i.compress_size, 1))
                          for i in infos if i.filename.lower().startswith("xl/worksheets/"))
        room = sheet_bytes // _MIN_CELL_BYTES + _SST_SLACK
        for info in tables:
            count = 0
            tail = b""
            with archive.open(info) as stream:
                while chunk := stream.read(1 << 20):
                    buffer = tail + chunk
                    count += sum(1 for m in _SST_ENTRY.finditer(buffer) if m.end() > len(tail))
                    tail = buffer[-32:]
                    if count > room:
                        raise ReadError(
                            f"{member}: the workbook's shared-string table holds more than "
                            f"{room} strings, more than its sheets have cells; refused as a "
                            "damaged or hostile workbook (it would exhaust memory). Ask the "
                            "sender to save it again, or to export CSV")
    except ReadError:
        raise
    except Exception:  # noqa: BLE001 - damage is calamine's to report, with its own message
        return


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
