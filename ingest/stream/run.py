"""One delivery through every stage in record batches: bounded memory at any size.

The stages are the library's own, applied a batch at a time: the batch is read
by :func:`ingest.readers.csv.read_utf8` (its header put in front), validated
(:mod:`.checks`), pseudonymised (:func:`ingest.writers.apply_policies`), and
appended to each output (:mod:`.sinks`) and to the feature matrix
(:class:`ingest.features.BatchedMatrix`: fitted as the batches come, its pieces
waiting in age-sealed spills, written once every batch is in). Whatever is whole-table
(the trailer's count, the share of quarantined rows, first-occurrence-wins
uniqueness) is decided on the whole table, so the outputs, manifest and summary
are those of the in-memory path (``ingest.pipeline``), which is used for every
delivery this path does not handle: it raises :class:`Fallback` before anything
is published, and the caller runs that path instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from .. import progress
from ..errors import ReadError, guard
from ..features import BatchedMatrix, Encoding
from ..formats import classify
from ..keys import Keyring, session
from ..readers import SourceTable
from ..readers import fixed as _fixed
from ..schema import Dataset
from ..settings import Settings
from ..validate import ValidationResult
from ..writers import Staging, apply_policies, restricted_columns
from ..writers.parquet import key_material_name
from ..writers.publish import QUARANTINE, table_output
from .checks import BatchValidator
from .heap import hold_thresholds
from .records import Records, WrongEncoding, peek
from .sinks import AgeLines, ParquetRows
from .source import Source, streamable_file, with_plaintext
from .tables import DelimitedBatches, Fallback, FixedBatches

Batches = DelimitedBatches | FixedBatches

BLOCK = 8 << 20
"""Bytes read from the file or from gpg at a time."""


@dataclass(frozen=True)
class Counted(ValidationResult):
    """A whole table's validation counts, its rows already written batch by batch."""

    accepted_rows: int = 0
    quarantined_rows: int = 0
    accepted_nulls: dict[str, int] = field(default_factory=dict)
    """Null cells per column of the accepted rows."""

    @property
    def rows_accepted(self) -> int:
        return self.accepted_rows

    @property
    def rows_quarantined(self) -> int:
        return self.quarantined_rows


@dataclass
class Streamed:
    """What the stream stage made: the table as read (no rows), its counts, and
    the warnings of decryption."""

    table: SourceTable
    result: Counted
    warnings: list[str] = field(default_factory=list)

    @property
    def profile(self) -> dict[str, Any]:
        """As ``ingest.report.column_profile`` of the accepted rows: aggregates only."""
        return {"rows": self.result.rows_accepted, "nulls": dict(self.result.accepted_nulls)}


def streamable(path: str | Path, datasets: tuple[Dataset, ...],
               settings: Settings) -> Source | None:
    """The delivery's file if this path may read it: one table, one file (plain or
    OpenPGP) over ``stream_above_bytes``."""
    if len(datasets) != 1:
        return None
    source = streamable_file(Path(path))
    if source is None or source.size <= settings.stream_above_bytes:
        return None
    if not source.encrypted and source.size > settings.limits.max_expanded_bytes:
        return None  # refused as too large, by the in-memory path's own check
    return source


def stream_stage(source: Source, dataset: Dataset, keyring: Keyring, settings: Settings,
                 sha256: str, delivery_date: date, previous: Encoding | None,
                 staging: Staging) -> Streamed:
    """Read, validate and write every output of the delivery, batch by batch."""
    hold_thresholds()  # freed batches go back to the system, not to a growing heap
    encodings = dataset.encodings
    while True:
        staging.clear()
        try:
            return _attempt(source, dataset, keyring, settings, sha256, delivery_date,
                            previous, staging, encodings)
        except WrongEncoding as exc:  # the in-memory reader would have chosen another
            encodings = exc.remaining


def _attempt(source: Source, dataset: Dataset, keyring: Keyring, settings: Settings,
             sha256: str, delivery_date: date, previous: Encoding | None, staging: Staging,
             encodings: tuple[str, ...]) -> Streamed:
    warnings: list[str] = []

    spec = dataset.features
    matrix = BatchedMatrix(dataset, previous, staging.path) \
        if spec.labels or spec.categorical or spec.numeric else None

    def consume(blocks: Iterator[bytes]) -> tuple[SourceTable, Counted]:
        head, blocks = peek(blocks, 1 << 16)
        batches = _batches(head, blocks, source, dataset, encodings,
                           settings.stream_batch_bytes)
        signal: Exception
        with guard(f"{source.member}: reading {batches.format}", ReadError):
            try:
                return _write_all(batches, dataset, keyring, sha256, delivery_date, staging,
                                  matrix)
            except (WrongEncoding, Fallback) as exc:  # not errors: kept from the guard
                signal = exc
        raise signal

    block = min(BLOCK, max(settings.stream_batch_bytes, 1 << 12))
    try:
        table, result = with_plaintext(source, block, consume,
                                       gnupg_home=settings.gnupg_home,
                                       passphrase=session.passphrase(), warnings=warnings)
        if matrix is not None:  # once gpg has vouched for the plaintext
            matrix.write(keyring.age_recipient(),
                         lambda out: staging.open(table_output(None, out), "features"))
    finally:
        if matrix is not None:
            matrix.close()  # its spills are never published
    return Streamed(table, result, warnings)


def _batches(head: bytes, blocks: Iterator[bytes], source: Source, dataset: Dataset,
             encodings: tuple[str, ...], batch_bytes: int) -> Batches:
    """The reader the in-memory path would choose for the member, by its content."""
    fmt = classify(head)
    positioned = _fixed.positioned((), dataset)
    if positioned is not None:
        if not _fixed.may_hold(fmt):
            raise Fallback
        return FixedBatches(blocks, positioned, encodings, source.member, batch_bytes)
    if fmt.name != "delimited":
        raise Fallback  # a container or another format inside the encryption
    records = Records(blocks, encodings, source.member, batch_bytes).given(dataset.encodings)
    return DelimitedBatches(records, dataset, source.member)


def _write_all(batches: Batches, dataset: Dataset, keyring: Keyring, sha256: str,
               delivery_date: date, staging: Staging, matrix: BatchedMatrix | None
               ) -> tuple[SourceTable, Counted]:
    recipient = keyring.age_recipient()
    key = keyring.pseudonym_key()
    validator = BatchValidator(dataset, delivery_date)
    reasons: dict[str, int] = {}
    repairs: dict[str, int] = {}
    nulls: dict[str, int] = {}
    accepted = quarantined = 0
    name = f"{dataset.name}.parquet"
    with staging.open(name, "parquet") as parquet_sink, \
            staging.open(f"{dataset.name}.jsonl.age", "jsonl") as lines_sink, \
            staging.open(table_output(None, QUARANTINE), "quarantine") as quarantine_sink:
        parquet = ParquetRows(keyring, restricted_columns(dataset), name, sha256,
                              parquet_sink)
        lines = AgeLines(recipient, lines_sink, f"{dataset.name}.jsonl.age")
        rejected = AgeLines(recipient, quarantine_sink, QUARANTINE)
        try:
            for table in batches.tables():
                progress.rows("read", table.rows)
                result = validator.validate(table)
                del table
                progress.rows("validated", result.rows_in)
                _add(reasons, result.reasons)
                _add(repairs, result.repairs)
                accepted += result.rows_accepted
                _add(nulls, result.accepted.null_count().row(0, named=True))
                quarantined += result.rows_quarantined
                clean = apply_policies(result.accepted, dataset, key)
                parquet.write(clean)
                lines.write(clean)
                rejected.write(result.quarantined)
                if matrix is not None:
                    matrix.add(result.accepted)
                progress.rows("written", result.rows_in)
            described = batches.finish()
            parquet.close()
            lines.close()
            rejected.close()
        except BaseException:
            lines.abandon()
            rejected.abandon()
            raise
    staging.add(key_material_name(name), parquet.material, "key-material")
    counted = Counted(pl.DataFrame(), pl.DataFrame(), validator.rows,
                      dict(sorted(reasons.items())), dict(sorted(repairs.items())),
                      accepted, quarantined, nulls)
    return described, counted


def _add(total: dict[str, int], counts: dict[str, int]) -> None:
    for k, n in counts.items():
        total[k] = total.get(k, 0) + int(n)
