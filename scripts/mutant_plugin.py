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
- **What the time is made of** (``scripts/mutants --profile``): one JSON line per
  process, with its mutant, wall and CPU seconds, the seconds of set-up, call and
  tear-down, and each test it ran.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import time
from pathlib import Path
from typing import Any

PROFILE_ENV = "MUTANT_PROFILE_OUT"
WARMUP_ENV = "MUTANT_WARMUP"
COSTS = "mutant-test-costs.json"
"""Seconds per test node id, written by the stats run into mutmut's folder (mutants/)."""

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
    out = os.environ.get(PROFILE_ENV)
    if not out:
        return
    line = {"mutant": _mutant(),
            "wall": round(time.monotonic() - _run["start"], 3),
            "cpu": round(_cpu() - _run["cpu"], 3),
            "phases": {k: round(v, 3) for k, v in _run["phases"].items()},
            "tests": _run["tests"]}
    with open(out, "a") as sink:  # one short line per process: appends do not interleave
        sink.write(json.dumps(line) + "\n")
