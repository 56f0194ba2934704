"""Operations: the inbox watcher, the deployment, workers, status and progress.

The first tests need no server: arrival rules of the inbox, filing deliveries
away, the retry condition, the flow's final-state messages, prefect.yaml through
Prefect's own loader, ``ingest status`` and the progress lines.

The last test runs the whole thing for real: our Prefect server on 127.0.0.1
(SQLite under a temporary INGEST_HOME), a process work pool created and the flow
deployed with Prefect's own CLI from prefect.yaml, two process workers, and
``ingest serve`` over an inbox of three deliveries (one complete by settling, one
by a marker, one by its checksum file and needing a passphrase from a Prefect
Secret block). Then, through the API: three completed flow runs, each with its
artifacts. A second ``ingest serve`` in its default mode (its own local worker)
takes a repeated drop, which makes no new output, and a delivery for a stranger's
key, which fails without retries. Finally the canary scan: the data's planted
values and the passphrase appear nowhere in the server's database and logs, the
workers' logs, the watcher's output, the reason files, the reports, the
artifacts or the flow runs' parameters.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from flows import deploy
from flows.inbox import FAILED, PROCESSED, Inbox, reason_of
from flows.ingest_delivery import ingest_delivery, is_transient, transient
from ingest.errors import DecryptionError, KeyringError, ValidationRejected

from conftest import ROOT

INGEST = str(ROOT / ".venv" / "bin" / "ingest")
PREFECT = str(ROOT / ".venv" / "bin" / "prefect")


# --------------------------------------------------------------------------- the inbox


def _wait_for(box: Inbox, name: str, timeout: float = 5.0) -> tuple[bool, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, broken = box.arrived()
        for entry, why in ready:
            if entry.name == name:
                return True, why
        for entry, why in broken:
            if entry.name == name:
                return False, why
        time.sleep(0.05)
    raise AssertionError(f"{name} never arrived")


def _names(pairs: list[tuple[Path, str]]) -> set[str]:
    return {p.name for p, _ in pairs}


def test_a_delivery_arrives_by_marker_checksum_or_settling(tmp_path: Path) -> None:
    box = Inbox(tmp_path, settle=0.4)
    assert (tmp_path / PROCESSED).is_dir() and (tmp_path / FAILED).is_dir()
    data = b"x" * 1000
    # settling: not at first sight, then once unchanged for the settle period
    (tmp_path / "plain.gpg").write_bytes(data)
    ready, _ = box.arrived()
    assert "plain.gpg" not in _names(ready)
    t0 = time.monotonic()
    assert _wait_for(box, "plain.gpg") == (True, "unchanged for 0.4 s")
    assert time.monotonic() - t0 > 0.2
    # a marker: at once
    (tmp_path / "marked").mkdir()
    (tmp_path / "marked" / "a.csv").write_bytes(data)
    (tmp_path / "marked.done").touch()
    assert "marked" in _names(box.arrived()[0])
    # a sidecar checksum that matches: at once; one that does not: failed once settled
    (tmp_path / "summed.gpg").write_bytes(data)
    (tmp_path / "summed.gpg.sha256").write_text(
        f"{hashlib.sha256(data).hexdigest()}  summed.gpg\n")
    (tmp_path / "bad.gpg").write_bytes(data)
    (tmp_path / "bad.gpg.sha256").write_text(hashlib.sha256(b"other").hexdigest() + "\n")
    ready, broken = box.arrived()
    assert "summed.gpg" in _names(ready) and "bad.gpg" not in _names(ready + broken)
    # a sidecar still being written is looked at again once it changes
    (tmp_path / "late.gpg").write_bytes(data)
    (tmp_path / "late.gpg.sha256").write_text("")
    assert "late.gpg" not in _names(box.arrived()[0])
    (tmp_path / "late.gpg.sha256").write_text(hashlib.sha256(data).hexdigest() + "\n")
    assert "late.gpg" in _names(box.arrived()[0])
    assert _wait_for(box, "bad.gpg")[0] is False
    assert "checksum mismatch against bad.gpg.sha256" in _wait_for(box, "bad.gpg")[1]
    # a folder with a checksum file: when every named file is there with its digest
    folder = tmp_path / "disc"
    folder.mkdir()
    (folder / "SHA256SUMS").write_text(f"{hashlib.sha256(data).hexdigest()}  cases.csv\n")
    assert "disc" not in _names(box.arrived()[0])
    (folder / "cases.csv").write_bytes(data[:500])  # still being copied
    assert "disc" not in _names(box.arrived()[0])
    (folder / "cases.csv").write_bytes(data)
    assert dict((p.name, w) for p, w in box.arrived()[0])["disc"] == "checksum file"


def test_what_is_never_a_delivery(tmp_path: Path) -> None:
    box = Inbox(tmp_path, settle=0.0)
    for name in (".hidden", "upload.part", "big.partial", "x.tmp", "get.crdownload",
                 "lonely.done", "lonely.ready", "orphan.sha256", "old.reason.txt"):
        (tmp_path / name).write_bytes(b"1")
    (tmp_path / "real.csv.gpg").write_bytes(b"1")
    assert [p.name for p in box.candidates()] == ["real.csv.gpg"]
    assert _names(box.arrived()[0]) == {"real.csv.gpg"}
    # an entry that is being filed elsewhere is not offered again
    assert box.arrived(exclude={tmp_path / "real.csv.gpg"}) == ([], [])


def test_finish_files_the_delivery_its_companions_and_a_one_line_reason(tmp_path: Path) -> None:
    box = Inbox(tmp_path, settle=0.0)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "cases.csv").write_text("a\n")
    (tmp_path / "d.done").touch()
    moved = box.finish(tmp_path / "d", True, "published 7 outputs\n to /out/abc")
    assert moved == tmp_path / PROCESSED / "d"
    assert (tmp_path / PROCESSED / "d.done").is_file()
    assert (tmp_path / PROCESSED / "d.reason.txt").read_text() == \
        "published 7 outputs to /out/abc\n"
    assert not (tmp_path / "d").exists() and not (tmp_path / "d.done").exists()
    # the same name again: a time-stamped name, nothing overwritten
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "cases.csv").write_text("b\n")
    again = box.finish(tmp_path / "d", True, "already processed")
    assert again.name.endswith("-d") and again != moved
    assert (again.parent / f"{again.name}.reason.txt").read_text() == "already processed\n"
    assert (moved / "cases.csv").read_text() == "a\n"
    (tmp_path / "x.gpg").write_bytes(b"1")
    (tmp_path / "x.gpg.sha256").write_text("0" * 64 + "\n")
    bad = box.finish(tmp_path / "x.gpg", False, "failed: DecryptionError: x.gpg: no key")
    assert bad == tmp_path / FAILED / "x.gpg"
    assert (tmp_path / FAILED / "x.gpg.sha256").is_file()
    assert os.stat(tmp_path / FAILED / "x.gpg.reason.txt").st_mode & 0o077 == 0


def test_retries_are_for_transient_io_errors_only() -> None:
    import errno

    from prefect.states import Failed

    assert is_transient(OSError(errno.EIO, "Input/output error"))
    assert is_transient(TimeoutError())
    assert is_transient(OSError(errno.ESTALE, "Stale file handle"))
    for exc in (PermissionError(errno.EACCES, "denied"), FileNotFoundError(2, "gone"),
                DecryptionError("wrong key"), ValidationRejected("too many bad rows"),
                KeyringError("no key"), ValueError("x"), None):
        assert not is_transient(exc), exc
    assert transient(None, None, Failed(data=OSError(errno.EIO, "io"))) is True
    assert transient(None, None, Failed(data=DecryptionError("wrong key"))) is False


def test_reasons_come_from_the_final_state() -> None:
    from prefect.states import Cancelled, Completed, Crashed, Failed

    assert reason_of(Completed(message="published 7 outputs to /o/x")) == \
        (True, "published 7 outputs to /o/x")
    assert reason_of(Failed(message="Flow run encountered an exception: DecryptionError: "
                                    "cases.csv.gpg: not for our key")) == \
        (False, "failed: DecryptionError: cases.csv.gpg: not for our key")
    assert reason_of(Crashed(message="Flow run process exited with non-zero status code 1."))\
        == (False, "crashed: Flow run process exited with non-zero status code 1.")
    assert reason_of(Cancelled()) == (False, "cancelled")


def test_prefect_yaml_is_the_deployment_serve_makes() -> None:
    from prefect.cli.deploy._config import _load_deploy_configs_and_actions
    from prefect.utilities.callables import parameter_schema
    from rich.console import Console

    console = Console(file=io.StringIO())
    configs, actions = _load_deploy_configs_and_actions(ROOT / "prefect.yaml", console=console)
    assert console.file.getvalue() == "", console.file.getvalue()  # no validation complaint
    (config,) = configs
    assert config["name"] == deploy.DEFAULT_POOL
    assert config["entrypoint"] == deploy.ENTRYPOINT
    assert config["work_pool"]["name"] == deploy.DEFAULT_POOL
    assert config["work_pool"]["job_variables"]["env"] == {
        "PREFECT_RUNNER_AUTO_INSTALL_DEPENDENCIES": "false"}
    assert actions["build"] == [] and actions["push"] == [] and actions["pull"] is None
    # parameters given are the flow's; every parameter of the flow is documented there
    schema = parameter_schema(ingest_delivery.fn).model_dump()["properties"]
    assert set(config["parameters"]) <= set(schema)
    text = (ROOT / "prefect.yaml").read_text()
    for name in schema:
        assert f"#   {name} " in text, f"parameter {name} is not documented in prefect.yaml"
    assert not any("passphrase" in n and n not in ("passphrase_file", "passphrase_secret")
                   for n in schema)


# --------------------------------------------------------------------------- status, progress


def test_status_lists_published_skipped_and_failed_runs(home: Path, pgp_delivery,
                                                        tmp_path: Path) -> None:
    from ingest.pipeline import run_delivery
    from ingest.settings import load_settings
    from ingest.status import deliveries, render

    from conftest import DELIVERY_DATE

    settings = load_settings()
    folder, truth = pgp_delivery()
    out = tmp_path / "out"
    summary = run_delivery(folder, out=out, delivery_date=DELIVERY_DATE)
    run_delivery(folder, out=out, delivery_date=DELIVERY_DATE)
    broken = tmp_path / "broken.gpg"
    broken.write_bytes(b"-----BEGIN PGP MESSAGE-----\nnot really\n")
    with pytest.raises(DecryptionError) as refused:
        run_delivery(broken, out=out, delivery_date=DELIVERY_DATE)
    assert str(refused.value) == "broken.gpg: not an OpenPGP message, or it is truncated"
    rows = deliveries(settings, out)
    mine = [r for r in rows if r["delivery_id"] == summary.delivery_id]
    assert len(mine) == 1
    assert mine[0]["outcome"] == "published (re-run skipped)" and mine[0]["runs"] == 2
    assert (mine[0]["rows_in"], mine[0]["rows_accepted"]) == (truth.rows, truth.accepted)
    assert any(r["outcome"] == "failed" and r["source"] == "broken.gpg"
               and r["error"] == "DecryptionError" for r in rows)
    text = render(rows)
    assert summary.delivery_id in text and "broken.gpg" in text and "failed" in text
    proc = subprocess.run([INGEST, "status", "--out", str(out), "--json"], capture_output=True,
                          text=True, env=dict(os.environ, INGEST_HOME=str(home)))
    assert proc.returncode == 0, proc.stderr
    assert summary.delivery_id in {r["delivery_id"] for r in json.loads(proc.stdout)}


def test_progress_lines_only_on_a_terminal() -> None:
    from ingest.status import Progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        run = Progress(stream).wrap(lambda name, fn, *a: fn(*a))
        assert run("open-media", lambda x: x + 1, 1) == 2
    lines = tty.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("opening and decrypting ...")
    assert "opening and decrypting: done in" in lines[1] and lines[1].endswith(" s")
    assert pipe.getvalue() == ""


# --------------------------------------------------------------------------- for real

PERSON = "PCAFEF00D"
COMMENT = "CANARY-OTTER-4417 ops note"
PASSPHRASE = "QXZJWVKRTMPLHGDBYN-93715"
"""Random capitals: no 8-character window of it occurs in a log or database by chance."""
SECRET_BLOCK = "ingest-test-passphrase"


def _our_processes(marks: list[str]) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if any(m in cmdline for m in marks):
            found.append(proc)
    return found


def _stop_tree(procs: list[psutil.Process]) -> None:
    tree = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            tree += [proc, *proc.children(recursive=True)]
    deploy.terminate_all(tree, timeout=10)


def _tree_snapshot(root: Path) -> dict[str, tuple[int, str]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns,
                                       hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file() and ".locks" not in p.parts}


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory):
    """A keyring and our Prefect server in a temporary INGEST_HOME; stops what it started."""
    from flows.server import client_environment, ensure_server, stop_server
    from ingest.settings import load_settings

    base = tmp_path_factory.mktemp("ops")
    home = base / "home"
    started: list[subprocess.Popen] = []
    serve_pids: list[int] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INGEST_HOME", str(home))
        for name in ("PREFECT_API_URL", "INGEST_MANAGED_PREFECT_API_URL", "INGEST_PASSPHRASE",
                     "INGEST_SERVER_IDLE_MINUTES"):
            mp.delenv(name, raising=False)
        settings = load_settings()
        try:
            subprocess.run([INGEST, "keys", "init"], check=True, capture_output=True,
                           env=dict(os.environ))
            url = ensure_server(settings)
            env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
            env.update(client_environment(settings))
            yield {"base": base, "home": home, "settings": settings, "url": url, "env": env,
                   "started": started, "serve_pids": serve_pids}
        finally:
            deploy.stop_workers([p for p in started if p.poll() is None])
            _stop_tree(_our_processes([f"ingest-local-{pid}-" for pid in serve_pids]))
            stop_server(settings)
            _stop_tree(_our_processes([str(settings.prefect_home)]))
            for keyring in {p.parent for p in base.rglob("pubring.kbx")}:  # GnuPG's agents
                subprocess.run(["gpgconf", "--homedir", str(keyring), "--kill", "gpg-agent"],
                               capture_output=True, check=False)


def _run_serve(ops: dict, log: Path, *args: str, timeout: float = 150) -> int:
    with log.open("ab") as fh:
        proc = subprocess.Popen([INGEST, "serve", *args], stdout=fh, stderr=fh, env=ops["env"],
                                cwd=ops["base"], start_new_session=True)
        ops["serve_pids"].append(proc.pid)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)  # serve stops its workers on SIGTERM
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            raise AssertionError(f"ingest serve did not finish in {timeout} s:\n"
                                 + log.read_text()[-3000:]) from None


_RETRIES = """
import errno, json
from prefect import flow
import flows.ingest_delivery as m
from flows.server import fast_flow_runs
from ingest.errors import DecryptionError

m.RETRY_DELAYS = [0, 0]
calls = {"io": 0, "permission": 0, "key": 0}

def flaky():
    calls["io"] += 1
    if calls["io"] < 3:
        raise OSError(errno.EIO, "Input/output error")
    return "ok"

def denied():
    calls["permission"] += 1
    raise PermissionError(errno.EACCES, "Permission denied")

def wrong_key():
    calls["key"] += 1
    raise DecryptionError("cases.csv.gpg: not for our key")

@flow(name="retry-check")
def check():
    value = m.run_as_task("flaky", flaky)
    for fn in (denied, wrong_key):
        try:
            m.run_as_task(fn.__name__, fn)
        except (PermissionError, DecryptionError):
            pass
    return value

with fast_flow_runs():
    assert check() == "ok"
print(json.dumps(calls))
"""


@pytest.mark.prefect_server
def test_stages_retry_transient_io_errors_only(ops: dict, tmp_path: Path) -> None:
    script = tmp_path / "retries.py"
    script.write_text(_RETRIES)
    env = dict(ops["env"], PYTHONPATH=str(ROOT))
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), str(script)], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == \
        {"io": 3, "permission": 1, "key": 1}


@pytest.mark.prefect_server
def test_inbox_to_workers_to_artifacts_end_to_end(ops: dict) -> None:
    from _canaries import Canary, Scanner
    from prefect.blocks.system import Secret
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterId,
    )
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from ingest.crypto.openpgp import encrypt_openpgp, ensure_recipient_key, export_public_key
    from ingest.synth import generate, to_delimited

    t_start = time.monotonic()
    base, home, env, settings = ops["base"], ops["home"], ops["env"], ops["settings"]
    inbox, out, stage, logs = base / "inbox", base / "out", base / "stage", base / "logs"
    for folder in (inbox, stage, logs):
        folder.mkdir()
    passfile = base / "passphrase.txt"
    passfile.write_text(PASSPHRASE + "\n")

    # -- three deliveries, each complete in its own way
    def synth(name: str, seed: int, *extra: str) -> Path:
        subprocess.run([INGEST, "synth", "--rows", "3000", "--seed", str(seed), "--out",
                        str(stage / name), *extra], check=True, capture_output=True, env=env)
        return stage / name

    settled = synth("settled", 1)
    (settled / "SHA256SUMS").unlink()  # complete only by settling
    summed = synth("summed", 3, "--encrypt", "pgp-passphrase", "--passphrase-file",
                   str(passfile))  # its SHA256SUMS says it is complete; needs the passphrase
    frame, truth = generate(3000, seed=5, canaries={"person_id": PERSON, "comment": COMMENT})
    frame = frame.with_columns(frame["CMNT"].scatter(11, COMMENT + " q"),
                               frame["DX_CD"].scatter(11, "U99.9"))  # a quarantined canary
    recipient = export_public_key(home / "gnupg")
    (stage / "canary.csv.gpg").write_bytes(
        encrypt_openpgp(to_delimited(frame), base / "sender", recipient_key=recipient))

    # -- the server side, as docs/operations.md says: pool, workers, deploy, secret
    subprocess.run([PREFECT, "work-pool", "create", deploy.DEFAULT_POOL, "--type", "process"],
                   check=True, capture_output=True, env=env, cwd=base)
    worker_env = deploy.worker_environment(settings)
    for i in (1, 2):
        ops["started"].append(deploy.start_worker(deploy.DEFAULT_POOL, f"test-worker-{i}",
                                                  worker_env, logs / f"worker-{i}.log"))
    deployed = subprocess.run([PREFECT, "--no-prompt", "deploy", "--all"], capture_output=True,
                              text=True, env=env, cwd=ROOT)
    assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-2000:]
    assert "ingest-delivery/ingest" in deployed.stdout
    with temporary_settings(updates={PREFECT_API_URL: ops["url"]}):
        Secret(value=PASSPHRASE).save(SECRET_BLOCK, overwrite=True)
    t_ready = time.monotonic()

    # -- drop them; serve with the pool's workers until the inbox is empty
    shutil.move(settled, inbox / "settled")
    shutil.move(summed, inbox / "summed")
    shutil.move(stage / "canary.csv.gpg", inbox / "canary.csv.gpg")
    (inbox / "canary.csv.gpg.done").touch()
    serve_log = logs / "serve.log"
    code = _run_serve(ops, serve_log, "--inbox", str(inbox), "--out", str(out), "--pool",
                      deploy.DEFAULT_POOL, "--deployment", "ingest-delivery/ingest",
                      "--settle", "1", "--poll", "0.5", "--passphrase-secret", SECRET_BLOCK,
                      "--until-empty")
    assert code == 0, serve_log.read_text()[-3000:]
    t_first = time.monotonic()
    said = serve_log.read_text()
    assert "settled (unchanged for 1 s)" in said
    assert "canary.csv.gpg (marker canary.csv.gpg.done)" in said
    assert "summed (checksum file)" in said
    processed = inbox / PROCESSED
    assert sorted(p.name for p in processed.iterdir()) == [
        "canary.csv.gpg", "canary.csv.gpg.done", "canary.csv.gpg.reason.txt",
        "settled", "settled.reason.txt", "summed", "summed.reason.txt"]
    assert list((inbox / FAILED).iterdir()) == []
    assert sorted(p.name for p in inbox.iterdir()) == [FAILED, PROCESSED]
    folders = sorted(p for p in out.iterdir() if not p.name.startswith("."))
    assert len(folders) == 3
    for folder in folders:
        assert (folder / "report.html").stat().st_mode & 0o777 == 0o600
        source = json.loads((folder / "manifest.json").read_text())["delivery"]["source"]
        assert source in {"settled", "summed", "canary.csv.gpg"}
    for name in ("settled", "summed", "canary.csv.gpg"):
        line = (processed / f"{name}.reason.txt").read_text()
        assert line.startswith("published 7 outputs to ") and line.count("\n") == 1

    # -- through the API: three completed runs, each with a Markdown and a table artifact
    with temporary_settings(updates={PREFECT_API_URL: ops["url"]}), \
            get_client(sync_client=True) as client:
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(
            name=DeploymentFilterName(any_=["ingest"])))
        assert len(runs) == 3
        assert all(r.state and r.state.is_completed() for r in runs), \
            [(r.name, r.state) for r in runs]
        assert {r.name for r in runs} == {"settled", "summed", "canary.csv.gpg"}
        for run in runs:
            assert set(run.parameters) == {"delivery", "out", "dataset", "passphrase_secret"}
            assert run.parameters["passphrase_secret"] == SECRET_BLOCK
            arts = client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
            arts = [a for a in arts if a.type]  # untyped ones are Prefect's result records
            assert sorted(a.type for a in arts) == ["markdown", "progress", "table"], run.name
            md = next(a for a in arts if a.type == "markdown").data
            assert "## Quarantine reasons" in md and "<10" in md and "## Time per stage" in md

        # -- again, the default way: serve's own local worker. A repeated drop and a
        #    delivery for a stranger's key.
        before = _tree_snapshot(out)
        shutil.copytree(processed / "settled", inbox / "settled")
        ensure_recipient_key(base / "stranger")
        (inbox / "stranger.csv.gpg").write_bytes(encrypt_openpgp(
            to_delimited(frame), base / "sender",
            recipient_key=export_public_key(base / "stranger")))
        (inbox / "stranger.csv.gpg.ready").touch()
        code = _run_serve(ops, serve_log, "--inbox", str(inbox), "--out", str(out),
                          "--workers", "1", "--settle", "1", "--poll", "0.5", "--until-empty")
        assert code == 1, serve_log.read_text()[-3000:]  # one delivery failed
        t_second = time.monotonic()
        assert _tree_snapshot(out) == before, "a repeated drop changed the outputs"
        again = [p for p in processed.iterdir() if p.name.endswith("-settled")]
        assert len(again) == 1
        assert (processed / f"{again[0].name}.reason.txt").read_text().startswith(
            "already processed: outputs unchanged in ")
        failed = (inbox / FAILED / "stranger.csv.gpg.reason.txt").read_text()
        assert failed.startswith("failed: DecryptionError: "), failed
        assert (inbox / FAILED / "stranger.csv.gpg.ready").is_file()

        local = client.read_flow_runs(deployment_filter=DeploymentFilter(
            name=DeploymentFilterName(any_=[deploy.LOCAL_POOL])))
        by_name = {r.name: r for r in local}
        assert set(by_name) == {"settled", "stranger.csv.gpg"}
        assert by_name["settled"].state.is_completed()
        assert by_name["stranger.csv.gpg"].state.is_failed()
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[by_name["stranger.csv.gpg"].id])))
        opened = [t for t in tasks if t.name.startswith("open-media")]
        assert len(opened) == 1 and opened[0].run_count == 1, "a wrong key was retried"
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[by_name["stranger.csv.gpg"].id])))
        # Prefect keeps the failed flow's exception as a result record (pickled under
        # $PREFECT_HOME/storage): one of ours, value-free; the canary scan covers it
        assert {a.type for a in arts} == {"markdown", "progress", None}
        (md,) = [a.data for a in arts if a.type == "markdown"]
        assert md.startswith("# Delivery stranger.csv.gpg: failed") and "DecryptionError" in md

        # -- the canary scan: what Prefect stores, what the processes printed
        every_run = client.read_flow_runs()
        every_artifact = client.read_artifacts()
    api_dump = logs / "api.json"
    api_dump.write_text(json.dumps({
        "parameters": [r.parameters for r in every_run],
        "states": [r.state.message if r.state else None for r in every_run],
        "artifacts": [{"data": a.data, "description": a.description} for a in every_artifact],
    }, default=str))
    scanner = Scanner([Canary("person canary", PERSON), Canary("comment canary", COMMENT),
                       Canary("passphrase", PASSPHRASE)])
    reasons = list(inbox.rglob("*.reason.txt"))
    reports = [p / "report.html" for p in out.iterdir() if (p / "report.html").is_file()]
    hits = scanner.scan([settings.prefect_home, logs, api_dump, *reasons, *reports])
    assert hits == [], hits
    # the scan can see a canary where one is
    probe = logs / "probe.bin"
    probe.write_bytes(b".." + COMMENT.encode("utf-16-le") + b"..")
    assert scanner.scan([probe]) == [f"comment canary in {probe}"]
    print(f"\ntimings: set-up {t_ready - t_start:.1f} s, three deliveries "
          f"{t_first - t_ready:.1f} s, repeat + failure {t_second - t_first:.1f} s")
