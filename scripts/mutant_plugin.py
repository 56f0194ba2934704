"""The pytest plugin ``scripts/mutants`` loads into every test process of a mutation run.

- **Cheapest tests first.** mutmut's fork server hands pytest a mutant's tests in no
  particular order, and ``-x`` stops at the first failure, so a slow test met early is
  paid by mutants a fast test would have killed. The run of the whole selection that
  mutmut makes first (its "stats" run) records what each test cost, set-up and
  tear-down included (``mutant-test-costs.json``); each mutant's process then runs its
  tests cheapest first.
- **Imports paid once** (``MUTANT_WARMUP``, module names): imported when the tests are
  collected, that is in the fork server before it forks each mutant's process, so the
  modules a test imports lazily (pandera, pyarrow, the schemas) are not imported again in
  every mutant's process.
- **A test's own time limit.** A mutant that makes a test loop used to hold its core
  until mutmut's clock for the whole selection ran out: (the selection's time + 15 s)
  x 3 of wall time, and twice that of CPU. Each test now gets
  ``LIMIT_FACTOR`` x its recorded cost + ``LIMIT_FLOOR`` seconds of CPU in the
  mutant's process (CPU time, which another job on the machine does not stretch);
  past it the process ends with mutmut's own timeout code, so the mutant is counted as
  a timeout, as before, only sooner.
- **What the time is made of** (``scripts/mutants --profile``): one JSON line per
  process, with its mutant, wall and CPU seconds, the seconds of set-up, call and
  tear-down, and each test it ran.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import signal
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

PROFILE_ENV = "MUTANT_PROFILE_OUT"
WARMUP_ENV = "MUTANT_WARMUP"
COSTS = "mutant-test-costs.json"
"""Seconds per test node id, written by the stats run into mutmut's folder (mutants/)."""
LIMIT_FACTOR = 10
LIMIT_FLOOR = float(os.environ.get("MUTANT_LIMIT_FLOOR", "10"))
"""A test's CPU limit in a mutant's process: generous enough for the session's set-up
(imports, the keyring) paid by whichever test comes first, and for a loaded machine
(``MUTANT_LIMIT_FLOOR`` seconds, 10 by default)."""
TIMEOUT_EXIT = 36
"""mutmut's exit code for a mutant's tests that ran out of time."""

_run: dict[str, Any] = {}


def _mutant() -> str:
    return os.environ.get("MUTANT_UNDER_TEST", "")


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def pytest_configure(config: Any) -> None:
    _run.update(start=time.monotonic(), cpu=_cpu(), tests=[], costs={},
                phases={"setup": 0.0, "call": 0.0, "teardown": 0.0})


def pytest_collection_finish(session: Any) -> None:
    for name in filter(None, os.environ.get(WARMUP_ENV, "").split(",")):
        importlib.import_module(name.strip())


def pytest_collection_modifyitems(session: Any, config: Any, items: list[Any]) -> None:
    if "__mutmut_" not in _mutant():
        return
    path = Path(str(config.rootpath)) / COSTS
    if not path.exists():
        return
    costs = json.loads(path.read_text())
    # a test the stats run did not time goes last, in its place among the others
    items.sort(key=lambda item: costs.get(item.nodeid, float("inf")))
    _run["limits"] = {k: LIMIT_FACTOR * v + LIMIT_FLOOR for k, v in costs.items()}
    signal.signal(signal.SIGPROF, _out_of_time)


def _out_of_time(signum: int, frame: Any) -> None:
    _record(timeout=_run.get("current"))
    os._exit(TIMEOUT_EXIT)  # at once, as mutmut's own clock would: no tear-down


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: Any, nextitem: Any) -> Generator[None, Any, Any]:
    limit = _run.get("limits", {}).get(item.nodeid)
    _run["current"] = item.nodeid
    if limit:
        signal.setitimer(signal.ITIMER_PROF, limit)
    try:
        return (yield)
    finally:
        if limit:
            signal.setitimer(signal.ITIMER_PROF, 0)


def pytest_runtest_logreport(report: Any) -> None:
    _run["phases"][report.when] += report.duration
    _run["costs"][report.nodeid] = _run["costs"].get(report.nodeid, 0.0) + report.duration
    if report.when == "call" or report.failed:
        _run["tests"].append([report.nodeid, report.when, round(report.duration, 3),
                              report.outcome])


def pytest_unconfigure(config: Any) -> None:
    if "start" not in _run:
        return
    if _mutant() == "stats":
        (Path(str(config.rootpath)) / COSTS).write_text(json.dumps(_run["costs"]))
    _record()


def _record(**extra: Any) -> None:
    out = os.environ.get(PROFILE_ENV)
    if not out:
        return
    line = {"mutant": _mutant(),
            "wall": round(time.monotonic() - _run["start"], 3),
            "cpu": round(_cpu() - _run["cpu"], 3),
            "phases": {k: round(v, 3) for k, v in _run["phases"].items()},
            "tests": _run["tests"], **extra}
    with open(out, "a") as sink:  # one short line per process: appends do not interleave
        sink.write(json.dumps(line) + "\n")
