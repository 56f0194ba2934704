"""The Prefect flow: one delivery, the library's stages run as Prefect tasks.

The flow owns no logic: it hands :func:`ingest.pipeline.run_delivery` a stage
runner that makes each stage a task, and :mod:`ingest.report` builds what people
see. Nothing Prefect records can hold data or secrets: parameters are paths, a
schema spec (as ``--schema`` takes it, see :mod:`ingest.catalog`), a block name
and flags; the passphrase is read inside a task from a file or a Prefect Secret
block into this process's session (:mod:`ingest.keys.session`) and never
returned; task results stay in memory (no persistence, no cache keys computed
from data); log lines, artifacts and the returned summary carry counts, rule
names, paths and hashes only; every
exception is one of ours, whose messages never quote values.

Retries: a stage is retried (twice, after 5 s then 30 s) only when it raised a
bare ``OSError`` that may be transient (an I/O error, a full or stale file
system, a timeout), never for our own errors (a wrong key, a rule failure, a
damaged delivery) nor for errors that cannot go away by themselves (permission
denied, no such file). See :func:`transient`.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import Flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Completed

from flows.server import run_notice
from ingest import pipeline, progress
from ingest import report as reports
from ingest.errors import IngestError, KeyringError, guard

RETRIES = 2
RETRY_DELAYS = [5, 30]
_PERMANENT_OS_ERRORS = (PermissionError, FileNotFoundError, FileExistsError,
                        IsADirectoryError, NotADirectoryError)

StageListener = Callable[[str, str, float], None]
stage_listeners: list[StageListener] = []
"""Called as ``listener(stage, "start" | "end", seconds)`` around each stage in this
process (the CLI's progress display); empty unless someone registers."""


def is_transient(exc: BaseException | None) -> bool:
    """Whether a stage that raised ``exc`` is worth running again."""
    return (isinstance(exc, OSError) and not isinstance(exc, IngestError)
            and not isinstance(exc, _PERMANENT_OS_ERRORS))


def transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only a transient ``OSError``."""
    exc = state.data if isinstance(state.data, BaseException) else None
    return is_transient(exc)


def run_as_task(name: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Run one stage as a Prefect task: retried only on a transient OSError, no result
    persistence, no cache key over the data."""
    staged = task(  # type: ignore[call-overload]
        fn, name=name, cache_policy=NO_CACHE, persist_result=False, retries=RETRIES,
        retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=transient, log_prints=False)
    started = time.perf_counter()
    for listener in stage_listeners:
        listener(name, "start", 0.0)
    value = staged(*args)
    for listener in stage_listeners:
        listener(name, "end", time.perf_counter() - started)
    return value


def load_passphrase(passphrase_file: str | None, passphrase_secret: str | None) -> None:
    """Park the passphrase in this process's session; returns nothing (no result to record)."""
    from ingest.keys import session

    if passphrase_file:
        session.set_passphrase(session.read_passphrase_file(passphrase_file))
        return
    from prefect.blocks.system import Secret

    try:
        value = Secret.load(str(passphrase_secret), _sync=True).get()  # type: ignore[call-arg,union-attr]
    except (ValueError, TypeError, KeyError):
        raise KeyringError(f"cannot load the Prefect Secret block {passphrase_secret!r}; "
                           f"create it (prefect block create secret) or fix the name"
                           ) from None
    if not isinstance(value, str) or not value:
        raise KeyringError(f"the Prefect Secret block {passphrase_secret!r} holds no "
                           "passphrase text")
    session.set_passphrase(value)


PROGRESS_KEY = "ingest-progress"
PROGRESS_LOG_SECONDS = 10.0
"""How often a long stage logs its progress line to the flow run."""


class PrefectProgress:
    """The run's progress in Prefect: a progress artifact (the share done, and the
    counts line as its description) updated as each stage ends, and the counts
    line in the run's log every :data:`PROGRESS_LOG_SECONDS` within a long stage
    (not at each end: the CLI's console shows the run's log beside its own
    progress line). Counts, rates and times only (see :mod:`ingest.progress`).

    The artifact is written by a thread of its own, so that no stage waits on the
    server for it (each request took 20-200 ms on a loaded machine); only the
    newest figures are sent. :meth:`close` sends the last and waits for it.
    """

    def __init__(self, log: Any, flow_run_id: str | None) -> None:
        self.log = log
        self.logged = time.monotonic()
        self._run_id = flow_run_id
        self._latest: tuple[float, str] | None = None
        self._closed = False
        self._ready = threading.Condition()
        # the flow run's context (its Prefect settings: the API's address) goes along
        self._thread = threading.Thread(target=contextvars.copy_context().run,
                                        args=(self._send,), name="ingest-progress-artifact",
                                        daemon=True)
        self._thread.start()

    def __call__(self, snap: progress.Snapshot, why: str) -> None:
        if why == "end":
            self.post(snap.percent, snap.line())
        elif why == "tick" and time.monotonic() - self.logged >= PROGRESS_LOG_SECONDS:
            self.logged = time.monotonic()
            self.log.info(snap.line())

    def post(self, percent: float, line: str) -> None:
        with self._ready:
            self._latest = (percent, line)
            self._ready.notify()

    def close(self, timeout: float = 30.0) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join(timeout)

    def _send(self) -> None:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import ArtifactCreate, ArtifactUpdate

        try:
            with get_client(sync_client=True) as client:
                artifact = client.create_artifact(ArtifactCreate(
                    key=PROGRESS_KEY, type="progress", data=0.0,
                    description="ingest: starting",
                    flow_run_id=UUID(self._run_id) if self._run_id else None)).id
                while True:
                    with self._ready:
                        while self._latest is None and not self._closed:
                            self._ready.wait()
                        latest, self._latest = self._latest, None
                    if latest is None:  # closed, everything sent
                        return
                    client.update_artifact(artifact, ArtifactUpdate(
                        data=latest[0], description=latest[1]))
        except Exception as exc:  # noqa: BLE001 - progress must never fail a run
            self.log.warning("progress is not shown in Prefect (%s)", type(exc).__name__)


def publish_report(summary: dict[str, Any], profile: dict[str, Any] | None) -> None:
    """Markdown and table artifacts, and report.html beside the outputs (new ones only)."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    key = f"delivery-{summary['delivery_id']}"
    create_markdown_artifact(reports.markdown(summary, profile), key=key,
                             description=reports.title(summary))
    create_table_artifact(reports.table(summary), key=f"{key}-table",
                          description=reports.title(summary))
    if not summary.get("skipped") and summary.get("output_dir"):
        folder = Path(summary["output_dir"])
        page = reports.html_report(summary, profile, reports.history(folder.parent))
        reports.write_html(folder, page)


class _Flow(Flow):  # type: ignore[type-arg]
    """A flow whose parameters (paths, schema specs, a date, flags) are recorded as
    plain JSON without Prefect's general encoder, which imports FastAPI (0.1-0.5 s
    of every run, the server's web framework, for a client that needs none of it).
    Anything else still goes through Prefect's encoder."""

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        encoded: dict[str, Any] = {}
        for key, value in parameters.items():
            if _is_plain(value):
                encoded[key] = value
            elif isinstance(value, date) and not isinstance(value, datetime):
                encoded[key] = value.isoformat()  # as Prefect's encoder writes it
            else:
                encoded.update(super().serialize_parameters({key: value}))
        return encoded


def _is_plain(value: object) -> bool:
    if value is None or isinstance(value, str | bool | int | float):
        return True
    return isinstance(value, list) and all(_is_plain(v) for v in value)


def _flow(**options: Any) -> Callable[[Callable[..., Any]], _Flow]:
    return lambda fn: _Flow(fn, **options)


@_flow(name="ingest-delivery", persist_result=False, log_prints=False)
def ingest_delivery(delivery: str, out: str, dataset: str | list[str] = "reference",
                    delivery_date: date | None = None, force: bool = False,
                    passphrase_file: str | None = None,
                    passphrase_secret: str | None = None) -> Any:
    """Open, decrypt, read, validate and publish one delivery; returns counts only.

    ``dataset`` is a schema spec, or a list of them for a delivery of several
    tables (one schema each, published together or not at all).

    ``passphrase_file`` is the path of a file holding the passphrase;
    ``passphrase_secret`` the name of a Prefect Secret block holding it. Without
    either, the passphrase of this process's session or ``$INGEST_PASSPHRASE``
    (if any) is used.
    """
    from prefect.artifacts import create_markdown_artifact

    log = get_run_logger()
    if notice := run_notice(flow_run.get_id()):  # no UI: no "View at" link, name the run
        log.info(notice)
    profile: dict[str, Any] = {}

    def stage(name: str, fn: Callable[..., Any], *args: Any) -> Any:
        value = run_as_task(name, fn, *args)
        if name == "validate":  # aggregates of the accepted rows, for the report
            if isinstance(value, list):  # several tables: one profile each, by name
                names = [d.name for d in pipeline.datasets_of(dataset)]
                profile["tables"] = {n: reports.column_profile(r.accepted)
                                     for n, r in zip(names, value, strict=True)}
            else:
                profile.update(reports.column_profile(value.accepted))
        if name == "stream":  # a table in record batches: the same aggregates, summed
            profile.update(value.profile)
        return value

    try:
        # Prefect pickles a failed flow's exception into its result storage whatever
        # persist_result says: make sure it is one of ours (value-free), never a
        # foreign one that may quote data.
        with guard("ingest-delivery"):
            if passphrase_file or passphrase_secret:
                run_as_task("passphrase", load_passphrase, passphrase_file, passphrase_secret)
            shown = PrefectProgress(log, flow_run.get_id())
            try:
                with progress.watching(shown, PROGRESS_LOG_SECONDS) as tracker:
                    summary = pipeline.run_delivery(delivery, schema=dataset, out=out,
                                                    delivery_date=delivery_date,
                                                    force=force, stage=stage,
                                                    log=log).to_json()
                    # also a delivery already processed
                    shown.post(100.0, tracker.snapshot().line())
            finally:
                shown.close()
    except IngestError as exc:
        with contextlib.suppress(Exception):  # never hide the run's own error
            create_markdown_artifact(reports.failure_markdown(exc, delivery),
                                     description=type(exc).__name__)
        raise
    try:
        run_as_task("report", publish_report, summary, profile or None)
    except Exception as exc:  # noqa: BLE001 - outputs are published; the report is extra
        log.warning("the report was not written (%s); the outputs are published",
                    type(exc).__name__)
    if summary["skipped"]:
        message = f"already processed: outputs unchanged in {summary['output_dir']}"
    else:
        message = (f"published {len(summary['outputs'])} outputs to {summary['output_dir']}: "
                   f"{summary['rows_accepted']} rows accepted, "
                   f"{summary['rows_quarantined']} quarantined")
    return Completed(message=message, data=summary)
