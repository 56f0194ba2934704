"""The library path: one delivery through every stage, without an orchestrator.

The stages are plain functions that hand each other plain values (a Delivery, a
SourceTable, a ValidationResult, bytes); the Prefect flow composes the very same
functions as tasks. Read top to bottom, this module is the list of steps.
"""

from __future__ import annotations

import getpass
import logging
import platform
import re
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from . import __version__, audit, catalog, features, progress, stream
from .custody import register_output_root
from .errors import IngestError, UsageError, ValidationRejected
from .features import Encoding
from .keys import Keyring, session
from .media import Delivery, fingerprint, open_delivery
from .readers import SourceTable, read_delivery_table, read_delivery_tables
from .schema import Dataset, load_dataset
from .settings import Settings, load_settings
from .validate import ValidationResult, top_reasons, validate
from .writers import (
    MANIFEST,
    Output,
    Staging,
    apply_policies,
    delivery_lock,
    is_published,
    restricted_columns,
    write_jsonl,
    write_parquet,
    written_columns,
)
from .writers.parquet import key_material_name, unlistable_refusal
from .writers.publish import QUARANTINE, table_output

logger = logging.getLogger("ingest")


@dataclass
class RunSummary:
    """What a run did, in counts and hashes only: safe to print, log and store."""

    delivery_id: str
    delivery_sha256: str
    schema: str
    rows_in: int = 0
    rows_accepted: int = 0
    rows_quarantined: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    repairs: dict[str, int] = field(default_factory=dict)
    """``<column>:<kind>`` -> values repaired as the schema declares (counts only)."""
    outputs: list[dict[str, Any]] = field(default_factory=list)
    output_dir: str = ""
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    skipped: bool = False
    tables: list[dict[str, Any]] = field(default_factory=list)
    """A delivery of several tables: each table's name, schema, counts, reasons,
    repairs and output files (the fields above are then totals; rules and
    repairs are named ``<table>.<rule>``). Empty for a delivery of one table."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def take_counts(self, manifest: dict[str, Any]) -> None:
        """The counts, reasons and repairs as the manifest records them."""
        self.rows_in = manifest["rows"]["in"]
        self.rows_accepted = manifest["rows"]["accepted"]
        self.rows_quarantined = manifest["rows"]["quarantined"]
        self.quarantine_reasons = manifest["quarantine_reasons"]
        self.repairs = manifest.get("repairs", {})  # manifests from before repairs were counted


# -- stages ------------------------------------------------------------------------

def open_stage(path: str | Path, settings: Settings) -> Delivery:
    """Media and decryption; the passphrase comes from this process's session."""
    return open_delivery(path, passphrase=session.passphrase(), gnupg_home=settings.gnupg_home,
                         limits=settings.limits)


def read_stage(delivery: Delivery, dataset: Dataset) -> SourceTable:
    return read_delivery_table(delivery.members, dataset)


def read_tables_stage(delivery: Delivery, datasets: Sequence[Dataset]) -> list[SourceTable]:
    return read_delivery_tables(delivery.members, datasets)


def validate_stage(table: SourceTable, dataset: Dataset, delivery_date: date,
                   max_quarantine_share: float) -> ValidationResult:
    result = validate(table, dataset, delivery_date)
    check_quarantine_share(result, max_quarantine_share)
    return result


def check_quarantine_share(result: ValidationResult, max_quarantine_share: float) -> None:
    """A table with more bad rows than allowed is refused whole."""
    share = result.rows_quarantined / max(result.rows_in, 1)
    if share > max_quarantine_share:
        raise ValidationRejected(
            f"{result.rows_quarantined} of {result.rows_in} rows ({share:.1%}) break the "
            f"schema's rules, more than the {max_quarantine_share:.1%} allowed: nothing was "
            f"published. Rules failed most: {top_reasons(result.reasons)}. Check the schema "
            "and the delivery, or raise INGEST_MAX_QUARANTINE_SHARE")


def validate_tables_stage(tables: Sequence[SourceTable], datasets: Sequence[Dataset],
                          delivery_date: date,
                          max_quarantine_share: float) -> list[ValidationResult]:
    """Each table validated; one table over its share of bad rows rejects them all."""
    results = []
    for table, dataset in zip(tables, datasets, strict=True):
        try:
            results.append(validate_stage(table, dataset, delivery_date,
                                          max_quarantine_share))
        except ValidationRejected as exc:
            # its message says nothing was published: true of every table
            raise ValidationRejected(f"table '{dataset.name}' of {len(datasets)}: {exc}"
                                     ) from None
    return results


def encrypt_stage(result: ValidationResult, dataset: Dataset, keyring: Keyring,
                  sha256: str, previous: Encoding | None, staging: Staging) -> None:
    """Every data output, encrypted, streamed into the staging folder.

    The feature matrix reuses ``previous`` (the last delivery's encoding) so
    that columns line up across deliveries.
    """
    staging.clear()
    _encrypt_table(result, dataset, keyring, sha256, previous, staging, None)


def encrypt_tables_stage(results: Sequence[ValidationResult], datasets: Sequence[Dataset],
                         keyring: Keyring, sha256: str,
                         previous: Sequence[Encoding | None], staging: Staging) -> None:
    """The outputs of every table into the one staging folder, each table's side
    outputs named after it (``<table>.quarantine.jsonl.age``)."""
    staging.clear()
    for result, dataset, encoding in zip(results, datasets, previous, strict=True):
        _encrypt_table(result, dataset, keyring, sha256, encoding, staging, dataset.name)


def _encrypt_table(result: ValidationResult, dataset: Dataset, keyring: Keyring,
                   sha256: str, previous: Encoding | None, staging: Staging,
                   table: str | None) -> None:
    from concurrent.futures import ThreadPoolExecutor

    recipient = keyring.age_recipient()
    # Two cores: pyarrow, polars, numpy and file writes release the GIL, so the
    # Parquet file, the JSON Lines and the other outputs are made side by side,
    # once the pseudonyms are in (the feature matrix is not built beside them:
    # at millions of rows both are large).
    clean = apply_policies(result.accepted, dataset, keyring.pseudonym_key())
    with ThreadPoolExecutor(max_workers=2) as pool:
        side_job = pool.submit(_side_outputs, result, dataset, recipient, previous, staging,
                               table)
        parquet_job = pool.submit(_parquet_output, clean, dataset, keyring, sha256,
                                  staging)
        with staging.open(f"{dataset.name}.jsonl.age", "jsonl") as sink:
            write_jsonl(clean, recipient, sink)
        parquet_job.result()
        side_job.result()


def _parquet_output(table: pl.DataFrame, dataset: Dataset, keyring: Keyring, sha256: str,
                    staging: Staging) -> None:
    name = f"{dataset.name}.parquet"
    with staging.open(name, "parquet") as sink:
        material = write_parquet(table, keyring, restricted_columns(dataset), name, sha256,
                                 sink)
    staging.add(key_material_name(name), material, "key-material")


def _side_outputs(result: ValidationResult, dataset: Dataset, recipient: object,
                  previous: Encoding | None, staging: Staging, table: str | None) -> None:
    """The quarantine and the feature matrix: neither holds a pseudonymised column
    (identifiers are never features), so they need not wait for the pseudonyms."""
    with staging.open(table_output(table, QUARANTINE), "quarantine") as sink:
        write_jsonl(result.quarantined, recipient, sink)
    if has_features(dataset):
        matrix = features.build(result.accepted, dataset, encoding=previous)
        features.write(matrix, recipient,
                       lambda name: staging.open(table_output(table, name), "features"))


def has_features(dataset: Dataset) -> bool:
    return bool(dataset.features.labels or dataset.features.categorical
                or dataset.features.numeric)


def publish_stage(staging: Staging, summary: RunSummary, manifest: dict, force: bool,
                  audit_log: Path | None = None) -> Path:
    def record(entry: Output) -> None:
        # logged before the rename: a run killed right after it still left a
        # manifest that the audit log knows
        if audit_log is not None:
            audit.append(audit_log, "run", outcome="publishing",
                         delivery_sha256=summary.delivery_sha256,
                         outputs={MANIFEST: entry.sha256})

    final = staging.publish(manifest, force=force, before_rename=record)
    summary.outputs = [asdict(o) for o in staging.outputs]
    return final


def build_manifest(delivery: Delivery, table: SourceTable, result: ValidationResult,
                   dataset: Dataset, keyring: Keyring, delivery_date: date,
                   started: datetime, warnings: list[str]) -> dict[str, Any]:
    """Everything about the run but the data: fingerprints, counts, key ids, versions."""
    import pandera
    import pyarrow

    return {
        "format": "ingest-manifest/1",
        "delivery": {"id": delivery.id, "sha256": delivery.sha256,
                     "source": Path(delivery.source).name,
                     "checksums_verified": delivery.checksums_verified,
                     "delivery_date": delivery_date.isoformat()},
        "read": {"member": table.member, "format": table.format, "encoding": table.encoding,
                 "trailer_count": table.trailer_count},
        "schema": catalog.describe(dataset),  # name, version, source and its SHA-256
        "rows": {"in": result.rows_in, "accepted": result.rows_accepted,
                 "quarantined": result.rows_quarantined},
        "quarantine_reasons": result.reasons,
        "repairs": result.repairs,
        "keys": {"general": keyring.master_key("general").id,
                 "restricted": keyring.master_key("restricted").id,
                 "pseudonym": keyring.pseudonym_key().id,
                 "age_recipient": str(keyring.age_recipient())},
        "columns": {"restricted": restricted_columns(dataset),
                    "dropped": [c.name for c in dataset.columns if c.policy == "drop"]},
        "versions": {"ingest": __version__, "polars": pl.__version__,
                     "pyarrow": pyarrow.__version__, "pandera": pandera.__version__},
        "run": {"started": started.isoformat(timespec="seconds"),
                "finished": datetime.now(UTC).isoformat(timespec="seconds"),
                "user": getpass.getuser(), "host": socket.gethostname(),
                "python": platform.python_version()},
        "warnings": list(warnings),
    }


# -- the whole run -----------------------------------------------------------------

StageRunner = Callable[..., Any]
"""Runs one stage: ``runner(name, fn, *args)``. The Prefect flow passes one that
makes each stage a task; the library path just calls it, timing it."""


def call_stage(name: str, fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


def datasets_of(schema: str | Dataset | Sequence[str | Dataset]) -> tuple[Dataset, ...]:
    """The datasets a run validates: one schema spec or dataset, or several (one
    table each, under the one delivery folder and manifest).

    A spec may name a bundle: a schema module defining ``DATASETS`` (instead of
    ``DATASET``), a tuple of the tables one delivery holds, each a ``Dataset`` or
    a spec as ``--schema`` takes it (``DATASETS = (CASES, "counties")``).
    """
    specs = [schema] if isinstance(schema, str | Dataset) else list(schema)
    if not specs:
        raise UsageError("no schema given: name at least one with --schema")
    datasets = tuple(d for spec in specs for d in _tables_of(spec))
    names = [d.name for d in datasets]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UsageError("schema(s) " + ", ".join(repeated) + " given more than once: each "
                         "table of a delivery has its own schema")
    if len(datasets) > 1:
        unsafe = [n for n in names if not _TABLE_NAME.fullmatch(n)]
        if unsafe:
            raise UsageError("a delivery of several tables names its outputs after each "
                             "schema: " + ", ".join(repr(n) for n in unsafe) + " must be "
                             "letters, digits, _ and - only")
    for d in datasets:  # refused now, not once the delivery is read and validated
        if why := unlistable_refusal(written_columns(d)):
            raise UsageError(f"schema {d.name}: {why}; name the field without them (the "
                             "delivery's header stays in metadata 'source')")
    return datasets


_TABLE_NAME = re.compile(r"[A-Za-z0-9_-]+")


def _tables_of(spec: str | Dataset) -> list[Dataset]:
    """The dataset ``spec`` names, or each dataset of the bundle it names."""
    if isinstance(spec, Dataset):
        return [spec]
    found = catalog.find(spec)
    value = found.value
    if isinstance(value, Dataset):
        return [value]
    if not isinstance(value, tuple | list) or not value:
        raise UsageError(f"schema {spec}: DATASET is a {type(value).__name__}, not an "
                         "ingest.schema.Dataset, and DATASETS (a bundle) is a non-empty "
                         "tuple of datasets or schema specs")
    tables: list[Dataset] = []
    for item in value:
        if isinstance(item, str) and catalog.is_path(item) and not Path(item).is_absolute():
            if found.origin.file:  # a path in a bundle is relative to the bundle's file
                item = str(Path(found.origin.file).parent / item)
        if isinstance(item, str):
            item = load_dataset(item)
        if not isinstance(item, Dataset):
            raise UsageError(f"schema {spec}: DATASETS holds a {type(item).__name__}; each "
                             "entry is a Dataset or a schema spec (text)")
        tables.append(item)
    return tables


def schema_label(datasets: Sequence[Dataset]) -> str:
    """The run's schema as people see it: ``reference``, or ``reference+counties``."""
    return "+".join(d.name for d in datasets)


def build_tables_manifest(delivery: Delivery, tables: Sequence[SourceTable],
                          results: Sequence[ValidationResult], datasets: Sequence[Dataset],
                          keyring: Keyring, delivery_date: date, started: datetime,
                          warnings: list[str], staged: Sequence[Output]) -> dict[str, Any]:
    """The manifest of a delivery of several tables: each table's own part (what
    :func:`build_manifest` says of one table, and its output files) under
    ``tables``; rows, reasons and repairs summed on top, named ``<table>.<rule>``."""
    parts = [build_manifest(delivery, t, r, d, keyring, delivery_date, started, warnings)
             for t, r, d in zip(tables, results, datasets, strict=True)]
    doc = {k: parts[0][k] for k in ("format", "delivery", "keys", "versions", "run",
                                    "warnings")}
    doc["schema"] = {"name": schema_label(datasets),
                     "version": "+".join(d.version for d in datasets),
                     "tables": [d.name for d in datasets]}
    doc["rows"] = {k: sum(p["rows"][k] for p in parts)
                   for k in ("in", "accepted", "quarantined")}
    doc["quarantine_reasons"] = _prefixed(parts, "quarantine_reasons")
    doc["repairs"] = _prefixed(parts, "repairs")
    doc["columns"] = {k: [f"{d.name}.{c}" for d, p in zip(datasets, parts, strict=True)
                          for c in p["columns"][k]] for k in ("restricted", "dropped")}
    doc["tables"] = [
        {"name": d.name, **{k: p[k] for k in ("schema", "read", "rows",
                                               "quarantine_reasons", "repairs", "columns")},
         "outputs": table_outputs(d.name, staged)}
        for d, p in zip(datasets, parts, strict=True)]
    return doc


def _prefixed(parts: list[dict[str, Any]], key: str) -> dict[str, int]:
    return {f"{p['schema']['name']}.{rule}": count
            for p in parts for rule, count in p[key].items()}


def table_outputs(table: str, staged: Sequence[Output]) -> list[str]:
    """The files of one table of a delivery of several: ``<table>.*`` and the key
    material of its Parquet file."""
    keys = key_material_name(f"{table}.parquet")
    return [o.path for o in staged if o.path.startswith(f"{table}.") or o.path == keys]


def run_delivery(path: str | Path, *,
                 schema: str | Dataset | Sequence[str | Dataset] = "reference",
                 out: str | Path, passphrase: str | None = None,
                 delivery_date: date | None = None, force: bool = False,
                 settings: Settings | None = None, stage: StageRunner = call_stage,
                 log: logging.Logger | logging.LoggerAdapter | None = None) -> RunSummary:
    """Open, decrypt, read, validate and publish one delivery. Returns counts only.

    ``schema`` names one table's schema, or several (a list): each table is then
    read, validated and published under the one delivery folder and manifest,
    and one table that fails (missing, or over its share of bad rows) fails the
    delivery as a whole, with nothing published.
    """
    settings = settings or load_settings()
    datasets = datasets_of(schema)
    label = schema_label(datasets)
    keyring = Keyring.open(settings)
    log = log or logger
    if passphrase is not None:
        session.set_passphrase(passphrase)
    out = Path(out)
    clock = time.perf_counter()
    stages: dict[str, float] = {}

    def timed(name: str, fn: Callable[..., Any], *args: Any) -> Any:
        t0 = time.perf_counter()
        progress.stage_started(name)
        value = stage(name, fn, *args)
        progress.stage_ended(name)
        stages[name] = round(time.perf_counter() - t0, 3)
        return value

    try:
        summary = _run(path, datasets, keyring, settings, out, delivery_date, force, timed,
                       log)
    except IngestError as exc:
        audit.append(settings.audit_log, "run", outcome="failed", schema=label,
                     source=Path(path).name, error=type(exc).__name__)
        raise
    summary.stage_seconds = stages
    summary.seconds = round(time.perf_counter() - clock, 3)
    audit.append(settings.audit_log, "run",
                 outcome="already-processed" if summary.skipped else "published",
                 delivery_sha256=summary.delivery_sha256, schema=label,
                 schema_version="+".join(d.version for d in datasets),
                 keys={r: k.id for r, k in keyring.current_master_keys().items()},
                 rows={"in": summary.rows_in, "accepted": summary.rows_accepted,
                       "quarantined": summary.rows_quarantined},
                 outputs={o["path"]: o["sha256"] for o in summary.outputs})
    return summary


def _run(path: str | Path, datasets: tuple[Dataset, ...], keyring: Keyring,
         settings: Settings, out: Path, delivery_date: date | None, force: bool,
         timed: Callable[..., Any], log: logging.Logger | logging.LoggerAdapter) -> RunSummary:
    source = stream.streamable(path, datasets, settings)
    why: list[str] = []  # a fallback's reason the user must see (a schema rule's name)
    if source is not None:  # a large CSV, TSV or fixed-width file: in bounded memory
        try:
            return _run_streamed(path, source, datasets[0], keyring, settings, out,
                                 delivery_date, force, timed, log)
        except stream.Fallback as exc:
            log.info("delivery read whole: its form is one the batches do not take")
            why = [str(a) for a in exc.args if isinstance(a, str)]
    started = datetime.now(UTC)
    several = len(datasets) > 1
    delivery = timed("open-media", open_stage, path, settings)
    log.info("delivery %s opened: %d member(s), %d checksum(s) verified",
             delivery.id, len(delivery.members), delivery.checksums_verified)
    for warning in delivery.warnings:
        log.warning(warning)
    for warning in why:
        log.warning(warning)
    summary = RunSummary(delivery.id, delivery.sha256, schema_label(datasets),
                         warnings=[*delivery.warnings, *why])
    with delivery_lock(out, delivery.id):
        if is_published(out, delivery.id) and not force:
            log.info("delivery %s is already processed; nothing to do", delivery.id)
            return _already(summary, out)
        tables = (timed("read", read_tables_stage, delivery, datasets) if several
                  else [timed("read", read_stage, delivery, datasets[0])])
        progress.rows("read", sum(t.rows for t in tables))
        delivery = replace(delivery, members=[])  # the plaintext bytes are no longer needed
        for table, dataset in zip(tables, datasets, strict=True):
            log.info("read %d rows from %s (%s)", table.rows, table.member, table.format)
            for note in table.notes:
                note = f"table {dataset.name}: {note}" if several else note
                log.warning(note)
                summary.warnings.append(note)
        when = delivery_date or date.today()
        share = settings.max_quarantine_share
        results = (timed("validate", validate_tables_stage, tables, datasets, when, share)
                   if several else
                   [timed("validate", validate_stage, tables[0], datasets[0], when, share)])
        progress.rows("validated", sum(r.rows_in for r in results))
        for result in results:
            log.info("%d rows accepted, %d quarantined", result.rows_accepted,
                     result.rows_quarantined)
        # nor the source tables
        tables = [replace(t, frame=t.frame.clear()) for t in tables]
        identity = keyring.age_identity()
        previous = [features.latest_encoding(out, identity, exclude=delivery.id,
                                             table=d.name if several else None)
                    if has_features(d) else None for d in datasets]
        register_output_root(settings, out)
        with Staging(out, delivery.id) as staging:
            if several:
                timed("encrypt", encrypt_tables_stage, results, datasets, keyring,
                      delivery.sha256, previous, staging)
                manifest = build_tables_manifest(delivery, tables, results, datasets,
                                                 keyring, when, started, summary.warnings,
                                                 staging.outputs)
                summary.tables = _table_summaries(manifest)
            else:
                timed("encrypt", encrypt_stage, results[0], datasets[0], keyring,
                      delivery.sha256, previous[0], staging)
                manifest = build_manifest(delivery, tables[0], results[0], datasets[0],
                                          keyring, when, started, summary.warnings)
            progress.rows("written", manifest["rows"]["in"])  # accepted and quarantined
            return _publish(staging, summary, manifest, force, settings, timed, log)


def _run_streamed(path: str | Path, source: stream.Source, dataset: Dataset, keyring: Keyring,
                  settings: Settings, out: Path, delivery_date: date | None, force: bool,
                  timed: Callable[..., Any],
                  log: logging.Logger | logging.LoggerAdapter) -> RunSummary:
    """:func:`_run` for one table read, validated and written in record batches
    (``ingest.stream``): the same outputs, manifest and summary."""
    started = datetime.now(UTC)
    sha256 = timed("open-media", fingerprint, Path(path))
    delivery = Delivery(str(path), sha256, [])
    summary = RunSummary(delivery.id, sha256, dataset.name)
    with delivery_lock(out, delivery.id):
        if is_published(out, delivery.id) and not force:
            log.info("delivery %s is already processed; nothing to do", delivery.id)
            return _already(summary, out)
        when = delivery_date or date.today()
        previous = (features.latest_encoding(out, keyring.age_identity(), exclude=delivery.id,
                                             table=None) if has_features(dataset) else None)
        register_output_root(settings, out)
        with Staging(out, delivery.id) as staging:
            made: stream.Streamed = timed("stream", stream.stream_stage, source, dataset,
                                          keyring, settings, sha256, when, previous, staging)
            delivery = Delivery(str(path), sha256, [], made.warnings)
            summary.warnings = list(made.warnings)
            for warning in made.warnings:
                log.warning(warning)
            log.info("read %d rows from %s (%s), in batches", made.result.rows_in,
                     made.table.member, made.table.format)
            for note in made.table.notes:
                log.warning(note)
                summary.warnings.append(note)
            check_quarantine_share(made.result, settings.max_quarantine_share)
            log.info("%d rows accepted, %d quarantined", made.result.rows_accepted,
                     made.result.rows_quarantined)
            manifest = build_manifest(delivery, made.table, made.result, dataset, keyring,
                                      when, started, summary.warnings)
            return _publish(staging, summary, manifest, force, settings, timed, log)


def _publish(staging: Staging, summary: RunSummary, manifest: dict[str, Any], force: bool,
             settings: Settings, timed: Callable[..., Any],
             log: logging.Logger | logging.LoggerAdapter) -> RunSummary:
    """The last step of either path: counts from the manifest, then publish."""
    summary.take_counts(manifest)
    final = timed("publish", publish_stage, staging, summary, manifest, force,
                  settings.audit_log)
    summary.output_dir = str(final)
    log.info("published %d outputs to %s", len(summary.outputs), final)
    return summary


def _table_summaries(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Each table's part of a manifest as the run summary shows it (counts only)."""
    return [{"name": t["name"], "schema": t["schema"]["name"],
             "rows_in": t["rows"]["in"], "rows_accepted": t["rows"]["accepted"],
             "rows_quarantined": t["rows"]["quarantined"],
             "quarantine_reasons": t["quarantine_reasons"], "repairs": t["repairs"],
             "outputs": t["outputs"]} for t in manifest.get("tables", [])]


def _already(summary: RunSummary, out: Path) -> RunSummary:
    """The summary of the earlier run, from its manifest: the run is idempotent."""
    import hashlib
    import json

    folder = out / summary.delivery_id
    raw = (folder / "manifest.json").read_bytes()
    manifest = json.loads(raw)
    summary.take_counts(manifest)
    summary.tables = _table_summaries(manifest)
    summary.outputs = [*manifest["outputs"],
                       asdict(Output("manifest.json", "manifest",
                                     hashlib.sha256(raw).hexdigest(), len(raw)))]
    summary.output_dir = str(folder)
    summary.skipped = True
    return summary
