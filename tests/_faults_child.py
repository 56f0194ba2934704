"""A run of one delivery in its own process, which can be made to stop at a chosen point.

Used by test_faults.py, which kills it there (SIGKILL) and checks what is left.

    python tests/_faults_child.py DELIVERY OUT [--force] [--date YYYY-MM-DD]

Environment:
    INGEST_HOME         the keyring (as for any run)
    INGEST_FAULT_AT     where to stop (see POINTS); empty: run through
    INGEST_FAULT_READY  a file this process creates once it has stopped there; it holds
                        the point's name and, for 'decrypt', the pid of the gpg it started
    INGEST_FAULT_GO     for 'barrier': a file to wait for before the run starts, so that
                        two processes start their runs at the same moment

The hooks live here, in the test helper, and only in this process: each wraps a
stage function of ``ingest.pipeline`` or a step of ``ingest.writers.publish``
and, at its point, announces itself and sleeps until it is killed. Stdout gets one
JSON line: the run's summary (counts and hashes only) or the error's class and
message (our messages hold no values).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import types
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

POINTS = (
    "decrypt",                # gpg is running and has part of the ciphertext
    "read",                   # the table is read (plaintext in memory only)
    "validate",               # validated, nothing written
    "encrypt",                # ciphertext in memory, nothing written
    "write",                  # two outputs written into the staging folder
    "before-rename",          # every output and the manifest staged, not yet renamed
    "after-rename",           # published, the audit record not yet appended
    "audit-locked",           # holding the audit lock, before the outcome line is written
    "force-before-exchange",  # a forced re-run, new outputs staged, before the swap
    "force-after-exchange",   # swapped, the old outputs not yet removed
    "barrier",                # no fault: wait for INGEST_FAULT_GO, then run through
)


def announce_and_wait(point: str, extra: dict[str, Any] | None = None) -> None:
    ready = Path(os.environ["INGEST_FAULT_READY"])
    tmp = ready.with_name(ready.name + ".tmp")
    tmp.write_text(json.dumps({"point": point, "pid": os.getpid(), **(extra or {})}))
    tmp.rename(ready)
    while True:  # until SIGKILL
        time.sleep(60)


def _after(module: types.ModuleType, name: str, point: str) -> None:
    """Stop inside ``module.name`` once it has done its work, before it returns."""
    real: Callable[..., Any] = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        announce_and_wait(point)

    setattr(module, name, wrapper)


def install(point: str) -> None:
    import ingest._fs
    import ingest.audit
    import ingest.crypto.openpgp
    import ingest.pipeline
    import ingest.writers.publish as publish

    if point == "decrypt":
        # stop while gpg is mid-decryption: started, its output not yet received
        # (it blocks on the full pipe, holding plaintext)
        real_popen = subprocess.Popen
        started: list[subprocess.Popen[bytes]] = []

        def popen(cmd: list[str], *args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
            proc = real_popen(cmd, *args, **kwargs)
            if "--decrypt" in cmd:
                started.append(proc)
            return proc

        real_receive_all = ingest._fs.ChildOutput.receive_all

        def receive_all(self: ingest._fs.ChildOutput, hint: int) -> bytes:
            if started:
                announce_and_wait(point, {"gpg_pid": started[-1].pid})
            return real_receive_all(self, hint)

        # gpg is started by ingest._fs.run_tool
        ingest._fs.subprocess = types.SimpleNamespace(  # type: ignore[attr-defined]
            **{n: getattr(subprocess, n) for n in dir(subprocess) if not n.startswith("__")})
        ingest._fs.subprocess.Popen = popen  # type: ignore[attr-defined]
        ingest._fs.ChildOutput.receive_all = receive_all  # type: ignore[method-assign]
    elif point in ("read", "validate", "encrypt"):
        _after(ingest.pipeline, f"{point}_stage", point)
    elif point == "write":
        real_add = publish.Staging.add
        calls = {"n": 0}

        def add(self: publish.Staging, name: str, data: bytes, kind: str) -> Any:
            out = real_add(self, name, data, kind)
            calls["n"] += 1
            if calls["n"] == 2:
                announce_and_wait(point)
            return out

        publish.Staging.add = add  # type: ignore[method-assign]
    elif point in ("before-rename", "after-rename"):
        real_rename = os.rename

        def rename(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            staged = Path(src).name.startswith(".staging-")
            if staged and point == "before-rename":
                announce_and_wait(point)
            real_rename(src, dst, *args, **kwargs)
            if staged:
                announce_and_wait(point)

        publish.os = types.SimpleNamespace(  # type: ignore[attr-defined]
            **{n: getattr(os, n) for n in dir(os) if not n.startswith("__")})
        publish.os.rename = rename  # type: ignore[attr-defined]
    elif point == "audit-locked":
        real_last = ingest.audit._last_line
        calls = []

        def last_line(fd: int) -> bytes:
            # the first append is the intent record before the rename; the second,
            # after it, records the outcome: stop while holding the lock for that one
            line = real_last(fd)
            calls.append(1)
            if len(calls) == 2:
                announce_and_wait(point)
            return line

        ingest.audit._last_line = last_line  # type: ignore[assignment]
    elif point.startswith("force-"):
        real_exchange = publish._exchange

        def exchange(a: Path, b: Path) -> None:
            if point == "force-before-exchange":
                announce_and_wait(point)
            real_exchange(a, b)
            announce_and_wait(point)

        publish._exchange = exchange  # type: ignore[assignment]
    elif point == "barrier":
        go = Path(os.environ["INGEST_FAULT_GO"])
        ready = Path(os.environ["INGEST_FAULT_READY"])
        tmp = ready.with_name(ready.name + ".tmp")
        tmp.write_text(json.dumps({"point": point}))
        tmp.rename(ready)  # whole or absent: the parent never reads it half-written
        while not go.exists():
            time.sleep(0.01)
    elif point:
        raise SystemExit(f"unknown fault point {point!r}; one of {', '.join(POINTS)}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("delivery")
    parser.add_argument("out")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--date", default="2026-06-30")
    args = parser.parse_args()

    from ingest.errors import IngestError
    from ingest.pipeline import run_delivery

    install(os.environ.get("INGEST_FAULT_AT", ""))
    try:
        summary = run_delivery(args.delivery, out=args.out, force=args.force,
                               delivery_date=date.fromisoformat(args.date))
    except IngestError as exc:
        print(json.dumps({"ok": False, "error": type(exc).__name__, "message": str(exc)}))
        return 1
    print(json.dumps({"ok": True, "skipped": summary.skipped, "rows_in": summary.rows_in,
                      "rows_accepted": summary.rows_accepted,
                      "rows_quarantined": summary.rows_quarantined,
                      "output_dir": summary.output_dir}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
