"""Record batches read as tables, by the in-memory readers themselves.

:class:`DelimitedBatches` reads each batch of :class:`.records.Records` with
:func:`ingest.readers.csv.read_utf8` (the header put in front);
:class:`FixedBatches` cuts fixed-width records at whole records and reads each
batch with :func:`ingest.readers.fixed.read_fixed`. Either gives, at the end,
the table as the in-memory reader describes it (member, format, encoding,
trailer, notes) without its rows, once every whole-table check has passed.

A reader's error names rows and lines counted from the start of the batch; the
batch's first row and line in the file are added to it.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import replace

import polars as pl

from ..errors import ReadError, SchemaMismatchError
from ..readers import SourceTable, _r
from ..readers import csv as _csv
from ..readers import fixed as _fixed
from ..schema import Dataset
from .records import Records, WrongEncoding, chained


class Fallback(Exception):  # noqa: N818 - a signal: take the in-memory path
    """This delivery is one the in-memory path must read (nothing was published)."""


def _located(exc: ReadError, rows_before: int, where: str) -> ReadError:
    if rows_before == 0:
        return exc
    return ReadError(f"{exc} (row and line numbers counted within the rows read from data "
                     f"row {rows_before + 1}, {where} of the file, on)")


class DelimitedBatches:
    format = "delimited"

    def __init__(self, records: Records, dataset: Dataset, member: str) -> None:
        self._records = records
        self._dataset = dataset
        self._member = member
        self._first: SourceTable | None = None
        self.rows = 0

    def tables(self) -> Iterator[SourceTable]:
        records = self._records
        for batch in records.batches():
            utf8 = _csv.Utf8Text(records.header + batch.text, records.encoding, None)
            try:
                table = _csv.read_utf8(utf8, self._dataset, self._member)
            except SchemaMismatchError:
                raise
            except ReadError as exc:
                raise _located(exc, self.rows, f"line {batch.first_line}") from None
            if table.repairs or _r.ESCAPED_QUOTES_NOTE in table.notes:
                raise Fallback  # R's conventions are decided on the whole text
            self._first = self._first or table
            self.rows += table.rows
            yield table

    def finish(self) -> SourceTable:
        first, records = self._first, self._records
        if first is None:
            raise Fallback  # no data rows: the in-memory reader says what the file is
        if records.trailer is not None and records.trailer != self.rows:
            raise ReadError(f"{self._member}: the trailer says {records.trailer} records but "
                            f"{self.rows} were read; the file is incomplete or altered, ask "
                            "for it again")
        return SourceTable(first.member, first.format, pl.DataFrame(), records.encoding,
                           records.trailer, first.notes)


class FixedBatches:
    """Fixed-width records, line-ended or as on tape, a whole number of records a batch.

    The encoding is the first of the schema's that decodes every batch: a batch
    that needs a later one than the batches before it means the whole member
    would have been read in a later one, and :class:`WrongEncoding` starts again.
    """

    format = "fixed-width"

    def __init__(self, blocks: Iterator[bytes], dataset: Dataset, encodings: tuple[str, ...],
                 member: str, batch_bytes: int) -> None:
        self._blocks = blocks
        self._dataset = replace(dataset, encodings=encodings)
        self._encodings = encodings or ("utf-8",)
        self._member = member
        self._batch = max(batch_bytes, 1)
        self._encoding: str | None = None
        self._first = b""
        self.rows = 0
        self._record = max((c.start or 1) - 1 + (c.length or 0) for c in dataset.columns)

    def tables(self) -> Iterator[SourceTable]:
        head = b""
        blocks = self._blocks
        for block in blocks:
            head += block
            if len(head) > self._record + 2:
                break
        nl, crnl = _fixed._line_end(self._encodings[0])
        eol = crnl if head[self._record:self._record + len(crnl)] == crnl else \
            nl if head[self._record:self._record + len(nl)] == nl else b""
        stride = self._record + len(eol)
        size = max(self._batch // stride, 1) * stride
        buffer = b""
        for block in chained(head, blocks):
            buffer += block
            while len(buffer) > size:  # one more byte: the end is never cut from its record
                yield self._read(buffer[:size], stride)
                buffer = buffer[size:]
        if buffer or not self.rows:
            yield self._read(buffer, stride)

    def _read(self, data: bytes, stride: int) -> SourceTable:
        # A later batch is read behind the member's first record, so the reader's
        # checks of a member's first record (its length, its line end) are made on
        # that record, as they are when the member is read whole; its row is dropped.
        ahead = self._first if self.rows else b""
        try:
            table = _fixed.read_fixed(ahead + data, self._dataset, self._member)
        except SchemaMismatchError:
            if self.rows:
                raise ReadError(f"{self._member}: the records end short of the layout's "
                                "record length (truncated?)") from None
            raise
        except ReadError as exc:
            if not self.rows:
                raise
            raise ReadError(f"{exc} (in the records from data row {self.rows + 1} on, from "
                            f"byte {self.rows * stride + 1} of the file: its record n is "
                            f"data row {self.rows - 1} + n, its byte b is byte "
                            f"{self.rows * stride - stride} + b)") from None
        if ahead:
            table = replace(table, frame=table.frame.slice(1))
        else:
            self._first = data[:stride]
        chosen = str(table.encoding)
        if self._encoding is None:
            # the encodings before it fail on this batch, so on the whole member
            self._encoding = chosen
            names = [codecs.lookup(e).name for e in self._encodings]
            self._dataset = replace(self._dataset,
                                    encodings=self._encodings[names.index(chosen):])
        elif chosen != self._encoding:
            names = [codecs.lookup(e).name for e in self._encodings]
            raise WrongEncoding(self._encodings[names.index(self._encoding) + 1:])
        self.rows += table.rows
        return table

    def finish(self) -> SourceTable:
        return SourceTable(self._member, "fixed-width", pl.DataFrame(), self._encoding,
                           None, [f"{self.rows} records of {self._record} bytes"])
