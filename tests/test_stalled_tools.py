"""A child tool that stops making progress is stopped, and the run fails naming it.

Real processes throughout: ``sleep`` as a child that never writes, a shell loop
that writes slowly but steadily, and a real gpg left waiting for a passphrase
that never comes (the pipe it reads is held open and never written).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from ingest._fs import child_environment, run_tool
from ingest.errors import ToolStalled
from ingest.synth import generate, to_delimited

from conftest import DELIVERY_DATE


def _run(cmd: list[str], stall_after: float | None) -> tuple[int, bytes]:
    code, out, _ = run_tool(cmd, lambda output: output.receive_all(1 << 16),
                            stdin=subprocess.DEVNULL, env=child_environment(),
                            messages_limit=4096, stall_after=stall_after)
    return code, out


def test_a_silent_child_is_stopped_and_named() -> None:
    started = time.monotonic()
    with pytest.raises(ToolStalled, match=r"^sleep made no progress for 1 s") as err:
        _run(["sleep", "60"], stall_after=1)
    assert time.monotonic() - started < 10
    assert "INGEST_TOOL_STALL_SECONDS" in str(err.value)


def test_a_slow_child_that_keeps_writing_is_left_to_finish() -> None:
    script = "for i in 1 2 3 4 5 6 7 8; do echo line; sleep 0.4; done"
    code, out = _run(["sh", "-c", script], stall_after=1)
    assert code == 0 and out == b"line\n" * 8


def test_without_a_stall_time_nothing_is_stopped() -> None:
    code, out = _run(["sh", "-c", "sleep 1.5; echo done"], stall_after=None)
    assert code == 0 and out == b"done\n"


def test_a_hung_gpg_fails_the_run_with_nothing_published(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ingest.crypto import openpgp
    from ingest.pipeline import run_delivery

    frame, _ = generate(200, seed=3, delivery_date=DELIVERY_DATE)
    cipher = openpgp.encrypt_openpgp(to_delimited(frame), tmp_path / "sender",
                                     passphrase="a pass phrase")
    delivery = tmp_path / "cases.csv.gpg"
    delivery.write_bytes(cipher)
    held: list[int] = []

    def never_written(secret: str | None) -> int:
        read_end, write_end = os.pipe()
        held.append(write_end)  # open and silent: gpg waits for its passphrase for ever
        return read_end

    monkeypatch.setattr(openpgp, "secret_pipe", never_written)
    monkeypatch.setenv("INGEST_TOOL_STALL_SECONDS", "2")
    out = tmp_path / "out"
    started = time.monotonic()
    try:
        with pytest.raises(ToolStalled, match=r"^gpg made no progress for 2 s"):
            run_delivery(delivery, schema="reference", out=out, passphrase="a pass phrase",
                         delivery_date=DELIVERY_DATE)
    finally:
        for fd in held:
            os.close(fd)
    assert time.monotonic() - started < 30
    published = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    assert not [p for p in published if p.name.endswith((".parquet", ".age", "manifest.json"))]


def test_a_hung_mdb_export_fails_the_run_naming_it_with_nothing_published(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """mdbtools is under the same watchdog and setting: a real mdb-export's first rows,
    then silence (a front on the PATH that stops passing them on)."""
    import shutil

    from ingest.pipeline import run_delivery

    from conftest import data_fixture

    real = shutil.which("mdb-export")
    assert real is not None
    tools = tmp_path / "bin"
    tools.mkdir()
    front = tools / "mdb-export"
    # head passes the first 4 KiB on, then the front sleeps holding the pipe
    front.write_text(f"#!/bin/sh\n'{real}' \"$@\" | head -c 4096\nexec sleep 60\n")
    front.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("INGEST_TOOL_STALL_SECONDS", "2")
    delivery = tmp_path / "delivery"
    delivery.mkdir()
    shutil.copy(data_fixture("access", "reference_20k.accdb"), delivery / "cases.accdb")
    out = tmp_path / "out"
    started = time.monotonic()
    with pytest.raises(ToolStalled, match=r"^mdb-export made no progress for 2 s"):
        run_delivery(delivery, schema="reference", out=out, delivery_date=DELIVERY_DATE)
    assert time.monotonic() - started < 30
    published = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    assert not [p for p in published if p.name.endswith((".parquet", ".age", "manifest.json"))]
