"""Progress a person can follow: counts, rates and time left, never a data value.

The counts are checked against the generator's truth, the bytes decrypted against
the delivery's size (a real gpg reading a memory file), the lines on stderr of a
real ``ingest run`` for canary values, and the flow's Prefect progress artifact,
read back through the API, for the same canaries.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _canaries import Canary, Maker, Scanner

from ingest import progress
from ingest.synth import generate, to_delimited

from conftest import DELIVERY_DATE, ROOT

INGEST = str(ROOT / ".venv" / "bin" / "ingest")
ROWS = 3000
_MAKER = Maker(4711)
PERSON = _MAKER.person_id()
COMMENT = f"{_MAKER.letters()} {_MAKER.letters()}"
SCANNER = Scanner([Canary("person canary", PERSON), Canary("comment canary", COMMENT)])


class Collected:
    """A sink keeping every snapshot and why it was taken."""

    def __init__(self) -> None:
        self.seen: list[tuple[progress.Snapshot, str]] = []

    def __call__(self, snap: progress.Snapshot, why: str) -> None:
        self.seen.append((snap, why))


# --- the tracker on its own -----------------------------------------------------------------


def test_hooks_without_a_tracker_do_nothing() -> None:
    progress.stage_started("read")
    progress.rows("read", 10)
    progress.stage_ended("read")
    with progress.tool_input(0):
        pass


def test_counts_rates_and_share_done_follow_the_stages() -> None:
    sink = Collected()
    with progress.Tracker([sink], interval=0) as tracker:
        progress.stage_started("open-media")
        progress.stage_ended("open-media")
        progress.stage_started("read")
        time.sleep(0.05)
        progress.stage_ended("read")
        progress.rows("read", 1000)  # counted just after its stage, as the pipeline does
        snap = tracker.snapshot()
    assert snap.rows == {"read": 1000}
    assert 1000 / 0.5 < snap.rate("read") <= 1000 / 0.05  # the read stage's own time
    assert snap.percent == 40.0  # two of five stages
    assert [why for _, why in sink.seen] == ["start", "end", "start", "end"]
    assert "reading done" in snap.line() and "read 1,000 rows" in snap.line()
    assert progress._active is None  # left: hooks are no-ops again


def test_rows_counted_batch_by_batch_are_timed_once() -> None:
    """A streamed run counts each batch within its stage: the rate is the rows so far
    over the stage's time so far, not over a sum of elapsed times."""
    with progress.Tracker([Collected()], interval=0) as tracker:
        progress.stage_started("read")
        for _ in range(5):
            time.sleep(0.05)
            progress.rows("read", 100)
        during = tracker.snapshot()
        progress.stage_ended("read")
        after = tracker.snapshot()
    assert during.rows["read"] == after.rows["read"] == 500
    assert 0.2 < during.row_seconds["read"] < 0.5  # about 0.25 s, not 0.75
    assert during.row_seconds["read"] <= after.row_seconds["read"] < 0.5
    assert 500 / 0.5 < after.rate("read") < 500 / 0.2


def test_time_left_comes_from_the_bytes_decrypted() -> None:
    consumed = [0]
    with progress.Tracker([Collected()], interval=0) as tracker:
        progress.stage_started("open-media")
        with tracker.input_read(lambda: consumed[0], 1000):
            time.sleep(0.2)
            consumed[0] = 250
            snap = tracker.snapshot()
            assert snap.bytes_total == 1000 and snap.bytes_decrypted == 250
            assert snap.percent == 5.0  # a quarter of the first of five stages
            # 750 bytes left at about 250 per 0.2 s
            assert snap.eta is not None and 0.3 < snap.eta < 0.7
            assert "about 1 s left to decrypt" in snap.line() or \
                "about 0 s left to decrypt" in snap.line()
            consumed[0] = 1000
        progress.stage_ended("open-media")
        done = tracker.snapshot()
    assert done.bytes_decrypted == 1000 and done.eta is None


def test_a_sink_that_fails_never_fails_the_run() -> None:
    def broken(snap: progress.Snapshot, why: str) -> None:
        raise RuntimeError("display gone")

    kept = Collected()
    with progress.Tracker([broken, kept], interval=0):
        progress.stage_started("read")
        progress.stage_ended("read")
    assert len(kept.seen) == 2


def test_ticks_between_stage_events() -> None:
    sink = Collected()
    with progress.Tracker([sink], interval=0.05):
        progress.stage_started("validate")
        time.sleep(0.4)
        progress.stage_ended("validate")
    assert [why for _, why in sink.seen].count("tick") >= 3


def test_terminal_lines_rewrite_one_line_on_a_terminal_only() -> None:
    snap = progress.Snapshot(1.0, "read", ("open-media",), 100, 100, 1.0, {}, {})
    live, plain = io.StringIO(), io.StringIO()
    progress.TerminalLines(live, live=True)(snap, "tick")
    progress.TerminalLines(plain, live=False)(snap, "tick")
    assert live.getvalue().startswith("\r") and not live.getvalue().endswith("\n")
    assert plain.getvalue() == snap.line() + "\n"


# --- a real run -----------------------------------------------------------------------------


def _canary_delivery(folder: Path, keyring_home: Path) -> object:
    from ingest.crypto.openpgp import encrypt_openpgp, export_public_key

    frame, truth = generate(ROWS, seed=47, delivery_date=DELIVERY_DATE,
                            canaries={"person_id": PERSON, "comment": COMMENT})
    folder.mkdir()
    (folder / "cases.csv.gpg").write_bytes(encrypt_openpgp(
        to_delimited(frame), folder.parent / "sender",
        recipient_key=export_public_key(keyring_home / "gnupg")))
    return truth


def test_a_run_reports_every_stage_with_the_truths_counts(home: Path, tmp_path: Path) -> None:
    from ingest.pipeline import run_delivery

    truth = _canary_delivery(tmp_path / "d", home)
    size = (tmp_path / "d" / "cases.csv.gpg").stat().st_size
    sink = Collected()
    with progress.Tracker([sink], interval=0.01):
        run_delivery(tmp_path / "d", out=tmp_path / "out", delivery_date=DELIVERY_DATE)
    ends = [snap for snap, why in sink.seen if why == "end"]
    assert [s.stages_done[-1] for s in ends] == list(progress.STAGES)
    final = ends[-1]
    rows = truth.rows  # type: ignore[attr-defined]
    assert final.rows == {"read": rows, "validated": rows, "written": rows}
    # gpg read the whole delivery from the memory file whose offset we share
    assert final.bytes_total == size and final.bytes_decrypted == size
    assert final.percent == 100.0
    lines = "\n".join(snap.line() for snap, _ in sink.seen)
    assert SCANNER.scan_bytes(lines.encode()) == set()


def _ingest(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([INGEST, *args], env=env, capture_output=True, text=True,
                          check=False, timeout=600)


@pytest.fixture
def cli_env(home: Path) -> dict[str, str]:
    env = dict(os.environ, INGEST_HOME=str(home))
    env.pop("PREFECT_API_URL", None)
    return env


def test_the_cli_prints_counts_and_never_a_value(cli_env: dict[str, str],
                                                 home: Path, tmp_path: Path) -> None:
    truth = _canary_delivery(tmp_path / "d", home)
    args = ("run", str(tmp_path / "d"), "--out", str(tmp_path / "out"), "--no-prefect",
            "--delivery-date", DELIVERY_DATE.isoformat(), "--json")
    shown = _ingest(cli_env, *args, "--progress")
    assert shown.returncode == 0, shown.stderr[-2000:]
    lines = [line for line in shown.stderr.splitlines() if line.startswith("ingest: [")]
    rows = f"{truth.rows:,}"  # type: ignore[attr-defined]
    assert any(f"read {rows} rows" in line and f"validated {rows} rows" in line
               and f"written {rows} rows" in line for line in lines), lines
    assert any("decrypted" in line and "(100%" in line for line in lines), lines
    assert SCANNER.scan_bytes((shown.stderr + shown.stdout).encode()) == set()
    assert json.loads(shown.stdout)["rows_in"] == truth.rows  # type: ignore[attr-defined]
    # without --progress, stderr being no terminal: nothing; --quiet: nothing
    for extra in ((), ("--quiet",)):
        quiet = _ingest(cli_env, *args, "--force", *extra)
        assert quiet.returncode == 0, quiet.stderr[-2000:]
        assert "ingest: [" not in quiet.stderr


@pytest.mark.prefect_server
def test_the_flow_reports_progress_to_prefect_without_a_value(
        cli_env: dict[str, str], home: Path, tmp_path: Path) -> None:
    truth = _canary_delivery(tmp_path / "d", home)
    try:
        done = _ingest(cli_env, "run", str(tmp_path / "d"), "--out", str(tmp_path / "out"),
                       "--delivery-date", DELIVERY_DATE.isoformat(), "--json", "--progress")
        assert done.returncode == 0, done.stderr[-3000:]
        url = _ingest(cli_env, "server", "start").stdout.strip()  # the running one's
        read = subprocess.run([sys.executable, "-c", _READ_ARTIFACTS],
                              env=dict(cli_env, PREFECT_API_URL=url), capture_output=True,
                              text=True, timeout=180, check=False)
        assert read.returncode == 0, read.stderr[-3000:]
    finally:
        _ingest(cli_env, "server", "stop")
    artifacts = json.loads(read.stdout.strip().splitlines()[-1])
    assert artifacts, "no progress artifact"
    art = max(artifacts, key=lambda a: a["created"])  # this run's (the home is shared)
    assert art["key"] == "ingest-progress" and float(art["data"]) == 100.0
    rows = f"{truth.rows:,}"  # type: ignore[attr-defined]
    assert f"written {rows} rows" in art["description"], art
    assert SCANNER.scan_bytes(json.dumps(artifacts).encode()) == set()


_READ_ARTIFACTS = """
import json
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterType

with get_client(sync_client=True) as client:
    found = client.read_artifacts(artifact_filter=ArtifactFilter(
        type=ArtifactFilterType(any_=["progress"])))
print(json.dumps([{"key": a.key, "data": a.data, "description": a.description,
                   "created": str(a.created)} for a in found]))
"""
