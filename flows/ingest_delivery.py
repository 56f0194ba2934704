"""The Prefect flow: one delivery, the library's stages run as Prefect tasks.

The flow owns no logic: it hands :func:`ingest.pipeline.run_delivery` a stage
runner that makes each stage a task. Nothing Prefect records can hold data or
secrets: parameters are a path, a schema name, a folder and flags; the
passphrase stays in this process's session (:mod:`ingest.keys.session`); task
results stay in memory (no persistence, no cache keys computed from data); log
lines and the returned summary carry counts and hashes only; every exception is
one of ours, whose messages never quote values.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from ingest import pipeline


def run_as_task(name: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Run one stage as a Prefect task: no retries (a wrong key or a rule failure
    is not transient), no result persistence, no cache key over the data."""
    staged = task(fn, name=name, cache_policy=NO_CACHE, persist_result=False, retries=0,
                  log_prints=False)
    return staged(*args)


@flow(name="ingest-delivery", persist_result=False, log_prints=False)
def ingest_delivery(delivery: str, out: str, dataset: str = "reference",
                    delivery_date: date | None = None, force: bool = False) -> dict[str, Any]:
    """Open, decrypt, read, validate and publish one delivery; returns counts only."""
    summary = pipeline.run_delivery(delivery, schema=dataset, out=out,
                                    delivery_date=delivery_date, force=force,
                                    stage=run_as_task, log=get_run_logger())
    return summary.to_json()
