"""The .xlsx package read in place: first rows, shared strings, boolean cells."""

from __future__ import annotations

import io
import re
import struct
import threading
import zipfile
from xml.etree import ElementTree

from ...errors import ReadError
from ._cells import _float_text
from ._ooxml import (
    _CELL_ESCAPE,
    _ENTRY_END,
    _ENTRY_START,
    _SPELLED_NUMBER,
    _column_number,
    _entry_count,
    _entry_starts,
    _entry_text,
    _local,
    _run_text,
)
from ._shape import HEADER_SCAN_ROWS

_Head = tuple[list[int], list[list[str | None]], set[tuple[int, int]]]
"""A sheet's first rows from the package scan: columns, rows, and its text cells."""

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
