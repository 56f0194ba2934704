"""A pytest plugin that records how one test process spent its time, for
``scripts/mutants --profile``: one JSON line per process (each mutant's, and mutmut's
own runs of the whole selection) with its mutant, wall and CPU seconds, the seconds of
set-up, call and tear-down, and each test it ran. What a mutation run's time is made of
decides what to cut, so it is measured, not guessed."""

from __future__ import annotations

import json
import os
import resource
import time
from typing import Any

OUT_ENV = "MUTANT_PROFILE_OUT"
_run: dict[str, Any] = {}


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def pytest_configure(config: Any) -> None:
    _run.update(start=time.monotonic(), cpu=_cpu(), tests=[],
                phases={"setup": 0.0, "call": 0.0, "teardown": 0.0})


def pytest_runtest_logreport(report: Any) -> None:
    _run["phases"][report.when] += report.duration
    if report.when == "call" or report.failed:
        _run["tests"].append([report.nodeid, report.when, round(report.duration, 3),
                              report.outcome])


def pytest_unconfigure(config: Any) -> None:
    out = os.environ.get(OUT_ENV)
    if not out or "start" not in _run:
        return
    line = {"mutant": os.environ.get("MUTANT_UNDER_TEST", ""),
            "wall": round(time.monotonic() - _run["start"], 3),
            "cpu": round(_cpu() - _run["cpu"], 3),
            "phases": {k: round(v, 3) for k, v in _run["phases"].items()},
            "tests": _run["tests"]}
    with open(out, "a") as sink:  # one short line per process: appends do not interleave
        sink.write(json.dumps(line) + "\n")
