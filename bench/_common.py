"""Shared benchmark helpers: timing, peak memory of a child process, tables."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def timed(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """Median wall time of ``repeat`` calls, and the last value."""
    times, value = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2], value


def run_child(code: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; it prints one JSON object. Adds peak RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result.setdefault("peak_mb", round(max(peak, before) / 1024, 1))
    return result


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(f"{r.get(c, '')}") for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(f"{row.get(c, '')}".ljust(widths[c]) for c in columns))


def save(name: str, doc: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2))
    return path


def run_process(argv: list[str], env: dict[str, str] | None = None,
                timeout: float | None = None) -> dict[str, Any]:
    """Run ``argv`` as a fresh process; its wall time, exit code, output, peak RSS and
    CPU time (``cpu_s``: user + system, the process and the descendants it waited for).

    Unlike :func:`run_child`'s RUSAGE_CHILDREN figure, which is the largest child
    this interpreter ever reaped (so it never goes down from one case to the next),
    ``peak_mb`` here comes from ``wait4`` on this one process: the larger of its own
    peak RSS and that of the largest descendant it waited for (gpg, mdb-export, ...).
    Descendants' memory is not added up, and a server it talks to is not counted.
    """
    import os
    import signal
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env,
                                start_new_session=True)
        deadline = None if timeout is None else t0 + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.perf_counter() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode("utf-8", "replace"), err.read().decode(
            "utf-8", "replace")
    timed_out = deadline is not None and wall > (timeout or 0)
    return {"returncode": proc.returncode, "wall_s": round(wall, 3),
            "peak_mb": round(usage.ru_maxrss / 1024, 1),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "stdout": stdout, "stderr": stderr,
            "timed_out": timed_out}


def run_case(code: str, env: dict[str, str] | None = None,
             timeout: float | None = None) -> dict[str, Any]:
    """:func:`run_child` with a per-case peak RSS and the wall time of the process.

    The child prints one JSON object as its last line; ``wall_s`` (fresh
    interpreter start to exit) and ``peak_mb`` (see :func:`run_process`) are added.
    """
    done = run_process([sys.executable, "-c", code], env, timeout)
    if done["returncode"] != 0 or done["timed_out"]:
        why = "timed out" if done["timed_out"] else f"exit {done['returncode']}"
        raise RuntimeError(f"benchmark child failed ({why}):\n{done['stderr'][-3000:]}")
    lines = done["stdout"].strip().splitlines()
    result = json.loads(lines[-1]) if lines else {}
    result["wall_s"] = done["wall_s"]
    result["cpu_s"] = done["cpu_s"]
    # a child that resets its own high-water mark (to see each stage's peak) reports
    # the largest one as self_peak_mb: the kernel's figure only covers the last stage
    result["peak_mb"] = max(done["peak_mb"], result.get("self_peak_mb") or 0.0)
    return result
