"""Crashes, a full disk, a read-only output folder, and runs at the same time.

A run is killed (SIGKILL, no chance to clean up) at each point of the pipeline
in a child process (tests/_faults_child.py), then:
- the output root shows only complete deliveries: every visible folder has a
  manifest whose files all exist and verify (``ingest.custody.verify_outputs``);
- the audit log verifies (``ingest.audit.verify``);
- no plaintext of the delivery is on disk (its canaries appear nowhere under the
  output root, INGEST_HOME or the run's temp folder);
- a re-run succeeds and publishes exactly the rows of the delivery (data lost:
  zero), leaving no staging folder behind.

A gpg that stops making progress mid-delivery is stopped by the stall watchdog:
the run fails naming gpg, nothing is published, and a re-run succeeds.

A full disk and a read-only output folder end in our OutputError with nothing
published, and a re-run once the disk has room succeeds. Two runs of the same
delivery at once publish it once (the other reports it already processed); two
different deliveries at once are both published.

Mounting a tmpfs or a read-only bind mount needs root (CAP_SYS_ADMIN); without
it those tests are skipped with the reason, and the full disk is also simulated
(an ENOSPC from fsync) so that case always runs.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import signal
import subprocess
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ingest import audit
from ingest.custody import verify_outputs
from ingest.errors import OutputError
from ingest.keys import Keyring
from ingest.pipeline import run_delivery
from ingest.settings import load_settings
from ingest.synth import generate, to_delimited

from conftest import DELIVERY_DATE, ROOT

CHILD = Path(__file__).with_name("_faults_child.py")
PYTHON = str(ROOT / ".venv" / "bin" / "python")
PERSON = "PCAFED00D"
COMMENT = "CANARY-FAULT-5150 do not leak"
ROWS = 3000
READY_SECONDS = 120

KILL_POINTS = ["decrypt", "read", "validate", "encrypt", "write", "before-rename",
               "after-rename", "audit-locked"]
FORCE_POINTS = ["force-before-exchange", "force-after-exchange"]


# --- deliveries and children ------------------------------------------------------------------


def _encrypted_delivery(folder: Path, keyring_home: Path, rows: int, seed: int) -> object:
    from ingest.crypto.openpgp import encrypt_openpgp, export_public_key

    frame, truth = generate(rows, seed=seed, delivery_date=DELIVERY_DATE,
                            canaries={"person_id": PERSON, "comment": COMMENT})
    folder.mkdir(parents=True)
    cipher = encrypt_openpgp(to_delimited(frame), folder.parent / f".sender-{seed}",
                             recipient_key=export_public_key(keyring_home / "gnupg"))
    (folder / "cases.csv.gpg").write_bytes(cipher)
    sender = folder.parent / f".sender-{seed}"
    # its agent removes its sockets as it exits: end it before removing the folder
    subprocess.run(["gpgconf", "--homedir", str(sender), "--kill", "gpg-agent"], check=False,
                   capture_output=True)
    shutil.rmtree(sender, onerror=_gone_already)
    return truth


def _gone_already(function: object, path: str, exc_info: tuple) -> None:
    """rmtree's error handler: a socket the exiting agent removed first is fine."""
    if not isinstance(exc_info[1], FileNotFoundError):
        raise exc_info[1]


@pytest.fixture(scope="module")
def deliveries(keyring_home: Path, tmp_path_factory: pytest.TempPathFactory
               ) -> dict[str, tuple[Path, object]]:
    base = tmp_path_factory.mktemp("fault-deliveries")
    return {name: (base / name, _encrypted_delivery(base / name, keyring_home, rows, seed))
            for name, rows, seed in [("a", ROWS, 71), ("b", 2000, 72)]}


class Child:
    """One run in its own process, optionally stopping at a fault point."""

    def __init__(self, delivery: Path, out: Path, home: Path, work: Path, point: str = "",
                 force: bool = False, go: Path | None = None) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.tmp = work / "tmp"
        self.tmp.mkdir(exist_ok=True)
        self.ready = work / "ready.json"
        self.ready.unlink(missing_ok=True)
        env = {**os.environ, "INGEST_HOME": str(home), "TMPDIR": str(self.tmp),
               "INGEST_FAULT_AT": point, "INGEST_FAULT_READY": str(self.ready),
               "PYTHONDONTWRITEBYTECODE": "1"}
        env.pop("INGEST_PASSPHRASE", None)
        if go is not None:
            env["INGEST_FAULT_GO"] = str(go)
        args = [PYTHON, str(CHILD), str(delivery), str(out), "--date",
                DELIVERY_DATE.isoformat(), *(["--force"] if force else [])]
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=work)

    def wait_ready(self) -> dict:
        deadline = time.monotonic() + READY_SECONDS
        while not self.ready.exists():
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                pytest.fail(f"the child ended before its fault point: {out!r} {err[-2000:]!r}")
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail("the child never reached its fault point")
            time.sleep(0.02)
        return json.loads(self.ready.read_text())

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.output = self.proc.communicate()
        assert self.proc.returncode == -signal.SIGKILL

    def result(self, timeout: float = 300) -> dict:
        out, err = self.proc.communicate(timeout=timeout)
        self.output = (out, err)
        assert self.proc.returncode in (0, 1), err.decode(errors="replace")[-3000:]
        return json.loads(out.decode().strip().splitlines()[-1])


# --- what must hold after anything ------------------------------------------------------------


def visible(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if not p.name.startswith(".")) if out.exists() else []


def assert_only_complete_deliveries(out: Path) -> int:
    """Every visible entry is a published delivery whose outputs verify; returns how many.

    The whole root is verified too: a hidden staging folder a killed run left is no
    delivery and must not be taken for one.
    """
    folders = visible(out)
    for folder in folders:
        assert folder.is_dir() and (folder / "manifest.json").is_file(), folder
        [report] = verify_outputs(folder, Keyring.open())
        assert report["delivery_id"] == folder.name and report["outputs_checked"] >= 4
    if folders:
        assert [r["delivery_id"] for r in verify_outputs(out, Keyring.open())] == \
            [f.name for f in folders]
    return len(folders)


def assert_audit_verifies() -> int:
    """The chain verifies; returns the number of runs it records as ended.

    A run logs its intent ("publishing", with the staged manifest's hash) just
    before the rename and its outcome after it; only outcomes are counted.
    """
    audit.verify(load_settings().audit_log)
    return sum(1 for e in audit_entries() if e.get("outcome") != "publishing")


def audit_entries() -> list[dict]:
    path = load_settings().audit_log
    return [json.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def assert_no_plaintext(*roots: Path) -> None:
    needles = [PERSON.encode(), COMMENT.encode(), COMMENT.encode("utf-16-le")]
    for root in roots:
        for file in (p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
            data = file.read_bytes()
            assert not any(n in data for n in needles), f"plaintext in {file}"


def assert_published_whole(out: Path, delivery_id: str, truth: object,
                           summary: dict | object) -> None:
    """Data lost: zero. Every delivered row is in the outputs, accepted or quarantined."""
    import ingest

    get = summary.get if isinstance(summary, dict) else lambda k: getattr(summary, k)
    assert (get("rows_in"), get("rows_accepted"), get("rows_quarantined")) == (
        truth.rows, truth.accepted, truth.quarantined)  # type: ignore[attr-defined]
    assert ingest.load(out / delivery_id, columns=["case_id"]).height == truth.accepted  # type: ignore[attr-defined]
    assert not list(out.glob(f".staging-{delivery_id}-*")), "a staging folder was left"


# --- kills ------------------------------------------------------------------------------------


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_run_killed_at_any_point_leaves_nothing_partial_and_a_rerun_succeeds(
        point: str, home: Path, tmp_path: Path) -> None:
    # a delivery of its own: no earlier run of it is in the audit log
    delivery = tmp_path / "delivery"
    truth = _encrypted_delivery(delivery, home, ROWS, 100 + KILL_POINTS.index(point))
    out = tmp_path / "out"
    before = assert_audit_verifies()
    child = Child(delivery, out, home, tmp_path / "child", point)
    ready = child.wait_ready()
    assert ready["point"] == point
    child.kill()

    published = assert_only_complete_deliveries(out)
    assert published == (1 if point in ("after-rename", "audit-locked") else 0)
    assert assert_audit_verifies() == before  # the killed run appended nothing
    assert_no_plaintext(out, home, child.tmp, tmp_path / "child")
    if point == "decrypt":  # gpg must not outlive the run, holding plaintext
        _gone(ready["gpg_pid"])

    summary = run_delivery(delivery, out=out, delivery_date=DELIVERY_DATE)
    assert summary.skipped == (published == 1)
    assert assert_only_complete_deliveries(out) == 1
    assert_published_whole(out, summary.delivery_id, truth, summary)
    assert assert_audit_verifies() == before + 1
    assert audit_entries()[-1]["outcome"] == ("already-processed" if published else "published")
    assert_no_plaintext(out, home)


def _gone(pid: int, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists() and stat.read_text().split()[2] == "Z":
            return  # a zombie holds no memory; its parent (killed) is gone
        time.sleep(0.05)
    pytest.fail(f"gpg (pid {pid}) still runs after its parent was killed")


@pytest.mark.parametrize("point", FORCE_POINTS)
def test_a_forced_rerun_killed_mid_swap_keeps_one_whole_delivery(
        point: str, deliveries, home: Path, tmp_path: Path) -> None:
    delivery, truth = deliveries["a"]
    out = tmp_path / "out"
    first = run_delivery(delivery, out=out, delivery_date=DELIVERY_DATE)
    before = assert_audit_verifies()
    child = Child(delivery, out, home, tmp_path / "child", point, force=True)
    child.wait_ready()
    child.kill()

    # after the swap the visible outputs are the new run's: the audit log knows their
    # manifest from the intent record the killed run wrote before the swap
    assert assert_only_complete_deliveries(out) == 1
    assert assert_audit_verifies() == before
    assert_no_plaintext(out, home, child.tmp)
    again = run_delivery(delivery, out=out, delivery_date=DELIVERY_DATE, force=True)
    assert not again.skipped and again.delivery_id == first.delivery_id
    assert assert_only_complete_deliveries(out) == 1
    assert_published_whole(out, again.delivery_id, truth, again)
    assert assert_audit_verifies() == before + 1


def test_a_staging_folder_left_by_a_kill_is_never_read_as_a_delivery(
        home: Path, tmp_path: Path) -> None:
    import ingest
    from ingest.errors import UsageError

    delivery = tmp_path / "delivery"
    _encrypted_delivery(delivery, home, 2000, 90)
    out = tmp_path / "out"
    child = Child(delivery, out, home, tmp_path / "child", "before-rename")
    child.wait_ready()
    child.kill()
    assert visible(out) == [] and list(out.glob(".staging-*"))
    with pytest.raises(UsageError):
        ingest.load(out)


def test_a_run_killed_after_publishing_still_verifies(deliveries, home: Path,
                                                      tmp_path: Path) -> None:
    """Killed between the rename and the outcome record: the outputs are in place and
    the audit log knows their manifest only from the intent ("publishing") record
    written before the rename. The delivery was published before (elsewhere), so the
    log also holds a different manifest for it: verification must go by the intent
    record, not call the intact outputs altered."""
    import hashlib

    delivery, truth = deliveries["b"]
    run_delivery(delivery, out=tmp_path / "elsewhere", delivery_date=DELIVERY_DATE)
    before = assert_audit_verifies()
    out = tmp_path / "out"
    child = Child(delivery, out, home, tmp_path / "child", "after-rename")
    child.wait_ready()
    child.kill()

    [folder] = visible(out)
    manifest_sha = hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest()
    delivery_sha = json.loads((folder / "manifest.json").read_text())["delivery"]["sha256"]
    runs = [e for e in audit_entries() if e.get("delivery_sha256") == delivery_sha]
    assert runs[-1]["outcome"] == "publishing"  # the killed run's only record
    assert runs[-1]["outputs"] == {"manifest.json": manifest_sha}
    assert manifest_sha not in {e["outputs"]["manifest.json"] for e in runs[:-1]}
    assert assert_audit_verifies() == before
    [report] = verify_outputs(out, Keyring.open())
    assert report == {"delivery_id": folder.name, "outputs_checked": report["outputs_checked"]}
    assert report["outputs_checked"] >= 6

    again = run_delivery(delivery, out=out, delivery_date=DELIVERY_DATE)
    assert again.skipped
    assert_published_whole(out, folder.name, truth, again)
    assert verify_outputs(out, Keyring.open()) == [report]


def test_repeated_kills_then_a_clean_run(deliveries, home: Path, tmp_path: Path) -> None:
    """Killed at every point in turn into one output root, then run through."""
    delivery, truth = deliveries["a"]
    out = tmp_path / "out"
    for n, point in enumerate(["write", "before-rename", "encrypt", "write"]):
        child = Child(delivery, out, home, tmp_path / f"child{n}", point)
        child.wait_ready()
        child.kill()
        assert assert_only_complete_deliveries(out) == 0
    summary = run_delivery(delivery, out=out, delivery_date=DELIVERY_DATE)
    assert_published_whole(out, summary.delivery_id, truth, summary)
    assert_audit_verifies()


# --- a full disk --------------------------------------------------------------------------------


# --- a child tool that stalls -------------------------------------------------------------------


_STALLING_GPG = """#!{python}
# The real gpg, decrypting, whose first {passed} bytes of output are passed on; then
# nothing more is read from it, so it blocks on its full pipe (a hung decryption
# mid-delivery), and nothing more is written, until this process is killed.
import os, subprocess, sys, time
gpg = subprocess.Popen([{real!r}, *sys.argv[1:]], stdout=subprocess.PIPE, close_fds=False)
passed = 0
while passed < {passed} and (chunk := os.read(gpg.stdout.fileno(), {passed} - passed)):
    passed += os.write(1, chunk)
with open({count!r}, "w") as fh:
    fh.write(str(passed))
time.sleep(600)
"""


def _stalling_gpg(folder: Path, passed: int) -> Path:
    """A ``gpg`` for the front of the PATH; returns the file that gets the count of
    bytes it passed on (a count only: plaintext never touches the disk)."""
    import sys

    real = shutil.which("gpg")
    assert real is not None
    folder.mkdir()
    count = folder / "passed"
    tool = folder / "gpg"
    tool.write_text(_STALLING_GPG.format(python=sys.executable, real=real, passed=passed,
                                         count=str(count)))
    tool.chmod(0o755)
    return count


def test_a_gpg_stalled_mid_delivery_fails_naming_gpg_and_a_rerun_succeeds(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ingest.errors import ToolStalled

    delivery = tmp_path / "delivery"
    truth = _encrypted_delivery(delivery, home, ROWS, 90)
    out = tmp_path / "out"
    before = assert_audit_verifies()
    count = _stalling_gpg(tmp_path / "bin", passed=64 << 10)
    path = os.environ["PATH"]
    monkeypatch.setenv("PATH", f"{count.parent}{os.pathsep}{path}")
    monkeypatch.setenv("INGEST_TOOL_STALL_SECONDS", "2")
    started = time.monotonic()
    with pytest.raises(ToolStalled, match=r"^gpg made no progress for 2 s and was stopped; "
                                          "nothing was published") as err:
        run_delivery(delivery, out=out, delivery_date=DELIVERY_DATE)
    assert time.monotonic() - started < 60
    assert count.read_text() == str(64 << 10)  # it did stall mid-delivery, not before
    assert PERSON not in str(err.value) and COMMENT not in str(err.value)
    assert assert_only_complete_deliveries(out) == 0
    assert assert_audit_verifies() == before + 1
    assert audit_entries()[-1]["outcome"] == "failed"
    assert audit_entries()[-1]["error"] == "ToolStalled"
    assert_no_plaintext(out, home, tmp_path)

    monkeypatch.setenv("PATH", path)
    summary = run_delivery(delivery, out=out, delivery_date=DELIVERY_DATE)
    assert not summary.skipped
    assert assert_only_complete_deliveries(out) == 1
    assert_published_whole(out, summary.delivery_id, truth, summary)
    assert audit_entries()[-1]["outcome"] == "published"


@pytest.fixture
def mount_point(tmp_path: Path) -> Iterator[Callable]:
    """Mounts made in a test, unmounted afterwards; skips when mounting is not allowed."""
    mounted: list[Path] = []

    def mount(*args: str, target: Path) -> None:
        proc = subprocess.run(["mount", *args, str(target)], capture_output=True, check=False)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount here ({proc.stderr.decode().strip() or 'not root'}); "
                        "this case needs root with CAP_SYS_ADMIN")
        mounted.append(target)

    yield mount
    for target in reversed(mounted):
        subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)


def _fill(folder: Path, leave: int) -> Path:
    """Fill the file system of ``folder`` until about ``leave`` bytes are free."""
    filler = folder / "filler"
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    with filler.open("wb") as fh:
        fh.write(b"\0" * max(free - leave, 0))
    return filler


@pytest.mark.parametrize("room", [16 * 1024, 160 * 1024])
def test_a_full_disk_is_a_clear_error_with_nothing_published(
        room: int, deliveries, home: Path, tmp_path: Path, mount_point) -> None:
    delivery, truth = deliveries["a"]
    disk = tmp_path / "disk"
    disk.mkdir()
    mount_point("-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", target=disk)
    out = disk / "out"
    filler = _fill(disk, room)
    before = assert_audit_verifies()
    with pytest.raises(OutputError) as caught:
        run_delivery(delivery, out=out, delivery_date=DELIVERY_DATE)
    message = str(caught.value)
    assert "No space left on device" in message and "nothing was published" in message
    assert PERSON not in message and COMMENT not in message
    assert visible(out) == [] and not list(out.glob(".staging-*"))
    assert assert_audit_verifies() == before + 1
    assert audit_entries()[-1]["error"] == "OutputError"
    filler.unlink()
    summary = run_delivery(delivery, out=out, delivery_date=DELIVERY_DATE)
    assert_published_whole(out, summary.delivery_id, truth, summary)
    assert assert_only_complete_deliveries(out) == 1


@pytest.mark.parametrize("fail_at", [1, 3, 6])
def test_a_full_disk_simulated_at_fsync_is_a_clear_error(
        fail_at: int, deliveries, home: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a tmpfs: the n-th fsync of a staged output reports ENOSPC."""
    delivery, truth = deliveries["a"]
    out = tmp_path / "out"
    real_fsync = os.fsync
    seen = {"n": 0}

    def fsync(fd: int) -> None:
        if ".staging-" in os.readlink(f"/proc/self/fd/{fd}"):
            seen["n"] += 1
            if seen["n"] == fail_at:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OutputError, match="No space left on device.*nothing was published"):
        run_delivery(delivery, out=out, delivery_date=DELIVERY_DATE)
    assert visible(out) == [] and not list(out.glob(".staging-*"))
    monkeypatch.setattr(os, "fsync", real_fsync)
    summary = run_delivery(delivery, out=out, delivery_date=DELIVERY_DATE)
    assert_published_whole(out, summary.delivery_id, truth, summary)


@pytest.mark.parametrize("output", ["reference.jsonl.age", "quarantine.jsonl.age",
                                    "features.npz.age", "reference.parquet"])
def test_a_full_disk_while_an_output_is_encrypted_is_a_clear_error(
        output: str, deliveries, home: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a tmpfs: a staged output's file reports ENOSPC once past a few bytes, while
    the encryption streams into it (the file's buffer is smaller than the output)."""
    import ingest.writers.publish as publish

    delivery, truth = deliveries["a"]
    out = tmp_path / "out"
    real_write = publish.HashingWriter.write
    room = 256

    def write(self: publish.HashingWriter, data: bytes) -> int:
        name = Path(os.readlink(f"/proc/self/fd/{self._fh.fileno()}")).name
        if name == output and self.size + len(data) > room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(self, data)

    monkeypatch.setattr(publish.HashingWriter, "write", write)
    # a small file buffer: the outputs of a 3,000-row delivery are below the 1 MiB one,
    # and a larger output's file is written from inside the encryption
    small = types.SimpleNamespace(**{n: getattr(io, n) for n in dir(io)
                                     if not n.startswith("__")})
    small.BufferedWriter = lambda raw, buffer_size: io.BufferedWriter(raw, buffer_size=512)
    monkeypatch.setattr(publish, "io", small)
    before = assert_audit_verifies()
    with pytest.raises(OutputError) as caught:
        run_delivery(delivery, out=out, delivery_date=DELIVERY_DATE)
    assert str(caught.value).startswith(f"writing {output} of delivery ")
    assert "No space left on device; nothing was published" in str(caught.value)
    assert visible(out) == [] and not list(out.glob(".staging-*"))
    assert assert_audit_verifies() == before + 1
    assert audit_entries()[-1]["error"] == "OutputError"
    monkeypatch.setattr(publish.HashingWriter, "write", real_write)
    monkeypatch.setattr(publish, "io", io)
    summary = run_delivery(delivery, out=out, delivery_date=DELIVERY_DATE)
    assert_published_whole(out, summary.delivery_id, truth, summary)


def test_a_short_write_to_the_audit_log_leaves_the_chain_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "audit.log"
    audit.append(log, "run", outcome="published")
    real_write = os.write

    def short_write(fd: int, data: bytes) -> int:  # what a nearly full disk does
        return real_write(fd, bytes(data)[: len(data) // 2])

    monkeypatch.setattr(os, "write", short_write)
    with pytest.raises(OutputError):
        audit.append(log, "run", outcome="published")
    monkeypatch.setattr(os, "write", real_write)
    assert audit.verify(log) == 1
    audit.append(log, "run", outcome="published")
    assert audit.verify(log) == 2


# --- a read-only output folder ----------------------------------------------------------------


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Everything under ``root`` but lock files (an empty lock file is bookkeeping)."""
    return {p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*")) if not p.name.endswith(".lock")}


@pytest.mark.parametrize("how", ["read-only-bind-mount", "immutable", "chmod-0500"])
def test_a_read_only_output_folder_is_a_clear_error(how: str, deliveries, home: Path,
                                                     tmp_path: Path, mount_point) -> None:
    earlier, _ = deliveries["b"]
    delivery, _ = deliveries["a"]
    out = tmp_path / "out"
    run_delivery(earlier, out=out, delivery_date=DELIVERY_DATE)
    before = _snapshot(out)
    if how == "read-only-bind-mount":
        mount_point("--bind", str(out), target=out)
        mount_point("-o", "remount,bind,ro", target=out)
    elif how == "immutable":
        if not shutil.which("chattr") or subprocess.run(
                ["chattr", "+i", str(out)], capture_output=True).returncode != 0:
            pytest.skip("chattr +i is not available on this file system")
    else:
        if os.geteuid() == 0:
            pytest.skip("running as root: permission bits do not stop root (the bind-mount "
                        "and immutable cases cover a read-only folder)")
        os.chmod(out, 0o500)
    try:
        with pytest.raises(OutputError) as caught:
            run_delivery(delivery, out=out, delivery_date=DELIVERY_DATE)
    finally:
        if how == "immutable":
            subprocess.run(["chattr", "-i", str(out)], check=True)
        elif how == "chmod-0500":
            os.chmod(out, 0o700)
    message = str(caught.value)
    assert any(s in message for s in ("Read-only file system", "Operation not permitted",
                                      "Permission denied")), message
    assert "nothing was published" in message
    assert _snapshot(out) == before
    assert audit_entries()[-1]["error"] == "OutputError"
    assert_audit_verifies()


# --- runs at the same time --------------------------------------------------------------------


def _together(children: list[Child], go: Path) -> list[dict]:
    try:
        for child in children:
            child.wait_ready()
    except BaseException:
        for child in children:  # none may be left waiting for the go
            child.proc.kill()
            child.proc.wait()
        raise
    go.touch()
    return [child.result() for child in children]


def test_the_same_delivery_twice_at_once_is_published_once(deliveries, home: Path,
                                                           tmp_path: Path) -> None:
    delivery, truth = deliveries["a"]
    out, go = tmp_path / "out", tmp_path / "go"
    before = assert_audit_verifies()
    children = [Child(delivery, out, home, tmp_path / f"c{i}", "barrier", go=go)
                for i in range(2)]
    results = _together(children, go)
    assert all(r["ok"] for r in results), results
    assert sorted(r["skipped"] for r in results) == [False, True]
    assert assert_only_complete_deliveries(out) == 1
    folder = Path(results[0]["output_dir"])
    assert_published_whole(out, folder.name, truth, results[0])
    assert assert_audit_verifies() == before + 2
    assert sorted(e["outcome"] for e in audit_entries()[-2:]) == ["already-processed",
                                                                  "published"]


def test_the_same_delivery_forced_twice_at_once_leaves_one_whole_delivery(
        deliveries, home: Path, tmp_path: Path) -> None:
    delivery, truth = deliveries["a"]
    out, go = tmp_path / "out", tmp_path / "go"
    run_delivery(delivery, out=out, delivery_date=DELIVERY_DATE)
    children = [Child(delivery, out, home, tmp_path / f"c{i}", "barrier", force=True, go=go)
                for i in range(2)]
    results = _together(children, go)
    assert all(r["ok"] and not r["skipped"] for r in results), results
    assert assert_only_complete_deliveries(out) == 1
    assert_published_whole(out, Path(results[0]["output_dir"]).name, truth, results[0])
    assert_audit_verifies()


def test_different_deliveries_at_once_are_both_published(deliveries, home: Path,
                                                         tmp_path: Path) -> None:
    out, go = tmp_path / "out", tmp_path / "go"
    children = [Child(deliveries[name][0], out, home, tmp_path / f"c-{name}", "barrier", go=go)
                for name in ("a", "b")]
    results = _together(children, go)
    assert all(r["ok"] and not r["skipped"] for r in results), results
    assert assert_only_complete_deliveries(out) == 2
    for name, result in zip(("a", "b"), results, strict=True):
        assert_published_whole(out, Path(result["output_dir"]).name, deliveries[name][1], result)
    assert_audit_verifies()


def test_the_child_helper_runs_through_without_a_fault(deliveries, home: Path,
                                                      tmp_path: Path) -> None:
    delivery, truth = deliveries["b"]
    out = tmp_path / "out"
    result = Child(delivery, out, home, tmp_path / "c").result()
    assert result["ok"] and not result["skipped"]
    assert_published_whole(out, Path(result["output_dir"]).name, truth, result)


def _blocked_on_flock(path: Path) -> bool:
    """A thread of this process waits for an flock on ``path`` (a ``->`` line in
    /proc/locks: a waiter, not a holder)."""
    inode = f":{path.stat().st_ino}"
    for line in Path("/proc/locks").read_text().splitlines():
        parts = line.split()
        if parts[1:3] == ["->", "FLOCK"] and parts[5] == str(os.getpid()) \
                and parts[6].endswith(inode):
            return True
    return False


def test_runs_into_different_output_roots_at_once_register_both_roots(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second run comes to the registry while the first is about to write it.

    The first is held at its write until the second is seen either waiting for the
    registry's lock (/proc/locks) or writing too: so the race always happens, and
    without the lock the second has read the registry before the first wrote it."""
    import threading

    import ingest.custody as custody

    settings = load_settings()
    lock_file = settings.home / f".{custody.REGISTRY}.lock"
    real_write = custody.write_private
    first_writing, second_writing = threading.Event(), threading.Event()
    seen: list[str] = []

    def write_private(path: Path, data: bytes) -> None:
        if first_writing.is_set():
            second_writing.set()
        else:
            first_writing.set()
            deadline = time.monotonic() + READY_SECONDS
            while not seen:
                if second_writing.is_set():
                    seen.append("second run writing")
                elif _blocked_on_flock(lock_file):
                    seen.append("second run waiting for the lock")
                elif time.monotonic() > deadline:
                    seen.append("second run never came")
                time.sleep(0.002)
        real_write(path, data)

    monkeypatch.setattr(custody, "write_private", write_private)
    roots = [tmp_path / "root-a", tmp_path / "root-b"]
    threads = [threading.Thread(target=custody.register_output_root, args=(settings, r))
               for r in roots]
    threads[0].start()
    assert first_writing.wait(READY_SECONDS), "the first run never came to write"
    threads[1].start()
    for thread in threads:
        thread.join(READY_SECONDS)
        assert not thread.is_alive()
    assert seen == ["second run waiting for the lock"]
    registered = set(custody.output_roots(settings))
    assert {r.resolve() for r in roots} <= registered
