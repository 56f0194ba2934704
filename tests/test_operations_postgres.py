"""Operations on a Prefect server backed by PostgreSQL (the several-machine set-up).

First, without a server: the database URL setting (environment, config file,
``ingest server start --database``), refused when it holds a password, which no
message repeats.

Then for real: a temporary PostgreSQL cluster (Debian's ``postgresql``, made by
``flows.postgres``), our managed Prefect server on it, a process work pool with
two workers of its own (as workers on other machines would be), and ``ingest
serve --pool`` given ten deliveries at once. Each delivery is run by exactly one
worker, once, and published; both workers take some. Finally the canary scan,
which covers the PostgreSQL cluster (data files, WAL, its log) besides the
server's home, the workers' logs, the watcher's output, the reasons, reports and
what the API returns: no planted value of the data, and not the database's
password, anywhere. A probe written through the API is found in the cluster's
files, so the scan does read them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_operations import COMMENT, PERSON, _our_processes, _run_serve, _stop_tree

from flows import deploy
from flows.inbox import FAILED, PROCESSED
from flows.server import checked_database_url, database_url, masked_url, prefect_environment
from ingest.errors import UsageError
from ingest.settings import load_settings

SECRET = "WQZJXKVBRTMNPLHG"
"""A stand-in password in refused URLs: random capitals, so the scan finds any 8 of them."""
DELIVERIES = 10
ROWS = 1000


# --------------------------------------------------------------------------- the setting


def test_the_database_setting_comes_from_env_or_config_and_defaults_to_sqlite(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_HOME", str(tmp_path))
    monkeypatch.delenv("INGEST_PREFECT_DATABASE", raising=False)
    settings = load_settings()
    assert settings.prefect_database == ""
    assert database_url(settings) == f"sqlite+aiosqlite:///{tmp_path / 'prefect' / 'prefect.db'}"
    (tmp_path / "config.toml").write_text(
        'prefect_database = "postgresql://prefect@db.example:5433/prefect"\n')
    settings = load_settings()
    assert prefect_environment(settings)["PREFECT_SERVER_DATABASE_CONNECTION_URL"] == \
        "postgresql+asyncpg://prefect@db.example:5433/prefect"
    monkeypatch.setenv("INGEST_PREFECT_DATABASE", "postgresql+asyncpg://other@db2/prefect")
    assert database_url(load_settings()) == "postgresql+asyncpg://other@db2/prefect"
    (tmp_path / "config.toml").write_text("prefect_database = 5432\n")
    monkeypatch.delenv("INGEST_PREFECT_DATABASE")
    with pytest.raises(UsageError, match="prefect_database in .* must be text"):
        load_settings()


@pytest.mark.parametrize("url", [
    f"postgresql+asyncpg://prefect:{SECRET}@db.example:5432/prefect",
    f"postgresql://prefect:{SECRET}@db.example/prefect?sslmode=require",
    f"postgresql+asyncpg://prefect@db.example/prefect?password={SECRET}",
])
def test_a_password_in_the_url_is_refused_and_never_repeated(url: str) -> None:
    with pytest.raises(UsageError) as refused:
        checked_database_url(url)
    message = str(refused.value)
    assert SECRET[:8] not in message and SECRET[-8:] not in message
    assert "***" in message and "holds a password" in message and "PGPASSFILE" in message
    assert SECRET not in masked_url(url) and "db.example" in masked_url(url)


@pytest.mark.parametrize("url", ["mysql://prefect@db/prefect", "sqlite:///x.db",
                                 "postgresql+asyncpg://db.example", "not a url at all",
                                 "postgresql://prefect@db:port/prefect"])
def test_only_a_postgresql_database_is_taken(url: str) -> None:
    with pytest.raises(UsageError, match="postgresql\\+asyncpg://USER@HOST:PORT/DATABASE"):
        checked_database_url(url)


def test_server_start_refuses_a_password_on_the_command_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from ingest.cli import main

    monkeypatch.setenv("INGEST_HOME", str(tmp_path))
    code = main(["server", "start", "--database",
                 f"postgresql://prefect:{SECRET}@db.example/prefect"])
    said = capsys.readouterr()
    assert code == 2
    assert SECRET[:8] not in said.out + said.err and "holds a password" in said.err
    assert not (tmp_path / "prefect" / "server.json").exists()  # nothing was started
    assert main(["server", "status", "--database", "postgresql://p@db/prefect"]) == 2
    assert "--database goes with 'ingest server start'" in capsys.readouterr().err


def test_a_running_server_on_another_database_is_not_taken_silently(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.server import PrefectServerError, _check_same_database

    monkeypatch.setenv("INGEST_HOME", str(tmp_path))
    monkeypatch.delenv("INGEST_PREFECT_DATABASE", raising=False)
    on_sqlite = {"database": database_url(load_settings())}
    on_postgres = {"database": "postgresql+asyncpg://prefect@db.example/prefect"}
    # no database named: whatever our server runs on is used
    for state in (on_sqlite, on_postgres, {}):
        _check_same_database(load_settings(), state)
    monkeypatch.setenv("INGEST_PREFECT_DATABASE", "postgresql://prefect@db.example/prefect")
    _check_same_database(load_settings(), on_postgres)
    for state in (on_sqlite, {}):  # a state from before the setting: SQLite
        with pytest.raises(PrefectServerError, match="stop it first"):
            _check_same_database(load_settings(), state)


# --------------------------------------------------------------------------- for real


UNCOMPRESSED = """
DO $$
DECLARE col record;
BEGIN
  FOR col IN SELECT c.oid::regclass AS tab, a.attname AS name
             FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND a.attnum > 0
               AND NOT a.attisdropped AND a.attstorage IN ('x', 'm')
  LOOP
    EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET STORAGE EXTERNAL', col.tab, col.name);
  END LOOP;
END $$
"""
"""PostgreSQL compresses a long value (pglz) before storing it; pglz keeps runs of
new bytes as they are but puts a control byte before every 8 items, which may split
a value the scan looks for. So in the test's cluster every column Prefect made is
stored uncompressed (``EXTERNAL``: out of line when long, never compressed)."""


@pytest.fixture(scope="module")
def pg_ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A temporary PostgreSQL cluster, a keyring, and our Prefect server on that
    cluster in a temporary INGEST_HOME; stops and deletes what it started."""
    from flows.postgres import psql, temporary_cluster
    from flows.server import client_environment, ensure_server, stop_server
    from ingest.keys import Keyring

    base = tmp_path_factory.mktemp("pg-ops")
    home = base / "home"
    started: list[subprocess.Popen[bytes]] = []
    serve_pids: list[int] = []
    with temporary_cluster() as cluster, pytest.MonkeyPatch.context() as mp:
        mp.setenv("INGEST_HOME", str(home))
        mp.setenv("INGEST_PREFECT_DATABASE", cluster.url)
        mp.setenv("PGPASSFILE", str(cluster.passfile))
        for name in ("PREFECT_API_URL", "INGEST_MANAGED_PREFECT_API_URL", "INGEST_PASSPHRASE",
                     "INGEST_SERVER_IDLE_MINUTES", "PGPASSWORD"):
            mp.delenv(name, raising=False)
        settings = load_settings()
        try:
            Keyring.init(settings)
            t0 = time.monotonic()
            url = ensure_server(settings)
            server_start = time.monotonic() - t0
            psql(cluster, UNCOMPRESSED)
            env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
            env.update(client_environment(settings))
            yield {"base": base, "home": home, "settings": settings, "url": url, "env": env,
                   "cluster": cluster, "started": started, "serve_pids": serve_pids,
                   "server_start": server_start}
        finally:
            deploy.stop_workers([p for p in started if p.poll() is None])
            _stop_tree(_our_processes([f"ingest-local-{pid}-" for pid in serve_pids]))
            stop_server(settings)
            _stop_tree(_our_processes([str(settings.prefect_home)]))
            for keyring in {p.parent for p in base.rglob("pubring.kbx")}:  # GnuPG's agents
                subprocess.run(["gpgconf", "--homedir", str(keyring), "--kill", "gpg-agent"],
                               capture_output=True, check=False)


@pytest.mark.prefect_server
def test_ten_deliveries_two_workers_one_postgres_backed_server(pg_ops: dict) -> None:
    from _canaries import Canary, Scanner
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.postgres import checkpoint
    from flows.server import server_status
    from ingest.crypto.openpgp import encrypt_openpgp, export_public_key
    from ingest.synth import generate, to_delimited

    t_start = time.monotonic()
    base, home, settings, cluster = (pg_ops["base"], pg_ops["home"], pg_ops["settings"],
                                     pg_ops["cluster"])
    status = server_status(settings)
    assert status["running"] and status["database"] == cluster.url
    inbox, out, stage, logs = base / "inbox", base / "out", base / "stage", base / "logs"
    for folder in (inbox, stage, logs):
        folder.mkdir()

    # -- ten deliveries, one carrying canaries (one of them in a quarantined row)
    recipient = export_public_key(home / "gnupg")
    names = [f"d{i:02d}.csv.gpg" for i in range(DELIVERIES)]
    for i, name in enumerate(names):
        planted = {"person_id": PERSON, "comment": COMMENT} if i == 0 else None
        frame, _ = generate(ROWS, seed=100 + i, canaries=planted)
        if i == 0:
            frame = frame.with_columns(frame["CMNT"].scatter(11, COMMENT + " q"),
                                       frame["DX_CD"].scatter(11, "U99.9"))
        (stage / name).write_bytes(encrypt_openpgp(to_delimited(frame), base / "sender",
                                                   recipient_key=recipient))

    # -- the pool and its two workers, as on two other machines
    with temporary_settings(updates={PREFECT_API_URL: pg_ops["url"]}):
        deploy.ensure_pool(deploy.DEFAULT_POOL)
    # asked every second rather than 2 s: a worker's next delivery starts sooner
    worker_env = {**deploy.worker_environment(settings), "PREFECT_WORKER_QUERY_SECONDS": "1"}
    workers = [f"pg-worker-{i}" for i in (1, 2)]
    for name in workers:
        pg_ops["started"].append(deploy.start_worker(deploy.DEFAULT_POOL, name, worker_env,
                                                     logs / f"{name}.log"))
    t_ready = time.monotonic()

    # -- all ten at once; the watcher deploys and submits, the pool's workers run them
    for name in names:
        shutil.move(stage / name, inbox / name)
    for name in names:
        (inbox / f"{name}.done").touch()
    serve_log = logs / "serve.log"
    code = _run_serve(pg_ops, serve_log, "--inbox", str(inbox), "--out", str(out), "--pool",
                      deploy.DEFAULT_POOL, "--settle", "1", "--poll", "0.5", "--until-empty",
                      timeout=240)
    assert code == 0, serve_log.read_text()[-3000:]
    t_done = time.monotonic()
    processed = inbox / PROCESSED
    assert list((inbox / FAILED).iterdir()) == []
    assert sorted(p.name for p in inbox.iterdir()) == [FAILED, PROCESSED]
    for name in names:
        line = (processed / f"{name}.reason.txt").read_text()
        assert line.startswith("published 7 outputs to "), (name, line)
    folders = [p for p in out.iterdir() if not p.name.startswith(".")]
    sources = sorted(json.loads((f / "manifest.json").read_text())["delivery"]["source"]
                     for f in folders)
    assert sources == names  # one output folder each: none run twice, none lost

    # -- through the API (PostgreSQL): every run completed, and ran once
    with temporary_settings(updates={PREFECT_API_URL: pg_ops["url"]}), \
            get_client(sync_client=True) as client:
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(
            name=DeploymentFilterName(any_=[deploy.DEFAULT_POOL])))
        assert sorted(r.name for r in runs) == names
        for run in runs:
            assert run.state and run.state.is_completed(), (run.name, run.state)
            # a second Pending is the run's own process taking over from its worker
            kinds = [s.type.value for s in client.read_flow_run_states(run.id)]
            assert kinds.count("RUNNING") == 1 and kinds.count("COMPLETED") == 1, \
                (run.name, kinds)
        every_run = client.read_flow_runs()
        every_artifact = client.read_artifacts()

    # -- each run started by exactly one worker. Both workers may ask for the same
    #    scheduled run; the server lets one of them move it to Pending and refuses
    #    the other, which then does not start it (Prefect logs both in the worker's log)
    started_by: dict[str, list[str]] = {name: [] for name in names}
    refused = 0
    for worker in workers:
        said = (logs / f"{worker}.log").read_text()
        refused += said.count("Aborted submission of flow run")
        for name in names:
            if f"Flow run '{name}' submitted to infrastructure" in said:
                started_by[name].append(worker)
    assert all(len(w) == 1 for w in started_by.values()), started_by
    per_worker = {w: sum(v == [w] for v in started_by.values()) for w in workers}
    assert all(n >= 1 for n in per_worker.values()), per_worker  # both took some

    # -- the canary scan, PostgreSQL's files included (flushed to them first)
    api_dump = logs / "api.json"
    api_dump.write_text(json.dumps({
        "parameters": [r.parameters for r in every_run],
        "states": [r.state.message if r.state else None for r in every_run],
        "artifacts": [{"data": a.data, "description": a.description} for a in every_artifact],
    }, default=str))
    password = cluster.passfile.read_text().strip().rsplit(":", 1)[1]
    checkpoint(cluster)
    scanner = Scanner([Canary("person canary", PERSON), Canary("comment canary", COMMENT),
                       Canary("database password", password)])
    reasons = list(inbox.rglob("*.reason.txt"))
    reports = [p / "report.html" for p in folders]
    hits = scanner.scan([settings.prefect_home, logs, api_dump, *reasons, *reports,
                         cluster.root], skip=(cluster.passfile,))
    assert hits == [], hits
    scanned = set(scanner.files_scanned)
    assert cluster.log in scanned
    assert any(p.is_relative_to(cluster.data / "pg_wal") for p in scanned)
    assert any(p.is_relative_to(cluster.data / "base") for p in scanned)

    # the scan sees values written through the API in PostgreSQL's files, a short one
    # and one long enough to be stored out of line (where it would be compressed)
    probes = {"short probe": "KJHQWPZMRTXVBNLC", "long probe": "VNZQKXJWMBHTRPLD"}
    with temporary_settings(updates={PREFECT_API_URL: pg_ops["url"]}):
        from prefect.variables import Variable

        Variable.set("scan-probe-short", probes["short probe"])
        Variable.set("scan-probe-long", "filler " * 600 + probes["long probe"])
    checkpoint(cluster)
    probe_scan = Scanner([Canary(label, value) for label, value in probes.items()])
    found = {hit.split(" in ")[0] for hit in probe_scan.scan([cluster.data / "base"])}
    assert found == set(probes), f"the scan sees only {found} in PostgreSQL's files"
    print(f"\ntimings: server start on PostgreSQL {pg_ops['server_start']:.1f} s, set-up "
          f"{t_ready - t_start:.1f} s, ten deliveries on two workers {t_done - t_ready:.1f} s "
          f"({per_worker}, {refused} double asks refused; each run "
          f"{_mean_seconds(runs):.1f} s in the mean from start to end), checks and scan "
          f"{time.monotonic() - t_done:.1f} s")


def _mean_seconds(runs: list) -> float:
    spans = [(r.end_time - r.start_time).total_seconds() for r in runs
             if r.start_time and r.end_time]
    return sum(spans) / max(len(spans), 1)
