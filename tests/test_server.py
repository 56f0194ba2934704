"""The local Prefect server of flows/server.py, started for real in a temporary INGEST_HOME.

All tests share one home (module fixture); each calls ``ensure_server`` itself, so
they pass in any order, and the fixture's finalizer stops whatever was started
there (by the state file, then by any leftover process naming that home).
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from flows import server
from flows.server import (
    PrefectServerError,
    client_environment,
    ensure_server,
    prefect_environment,
    server_status,
    stop_server,
)
from ingest.errors import UsageError
from ingest.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]


def _ours(settings: Settings) -> list[psutil.Process]:
    """Every live supervisor process for this home."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["status"] != psutil.STATUS_ZOMBIE and "flows.server" in cmdline \
                and "supervise" in cmdline and str(settings.prefect_home) in cmdline:
            found.append(proc)
    return found


def _kill_leftovers(settings: Settings) -> None:
    for proc in _ours(settings):
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the supervisor leads its own session
        except (ProcessLookupError, PermissionError):
            pass


def _wait_gone(procs: list[psutil.Process], timeout: float = 30.0) -> list[psutil.Process]:
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


def _subprocess_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(client_environment(settings))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("ingest_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INGEST_HOME", str(home))
        mp.delenv("PREFECT_API_URL", raising=False)
        mp.delenv(server.IDLE_ENV, raising=False)
        mp.delenv(server.MANAGED_URL_ENV, raising=False)
        settings = load_settings()
        try:
            yield settings
        finally:
            try:
                stop_server(settings)
            finally:
                _kill_leftovers(settings)


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Per-test guard: the home's variables stay set, idle timeout at its default."""
    monkeypatch.setenv("INGEST_HOME", str(settings.home))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv(server.IDLE_ENV, raising=False)
    monkeypatch.delenv(server.MANAGED_URL_ENV, raising=False)
    return settings


# --------------------------------------------------------------------- no server needed


def test_module_imports_no_prefect() -> None:
    code = ("import sys, flows.server; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('prefect', 'psutil')); "
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "[]"


def test_prefect_environment_names_exist_in_installed_prefect(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    ours = prefect_environment(settings)
    assert ours["PREFECT_HOME"] == str(tmp_path / "prefect")
    assert ours["PREFECT_SERVER_DATABASE_CONNECTION_URL"] == \
        f"sqlite+aiosqlite:///{tmp_path / 'prefect' / 'prefect.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(ours)
    code = ("import json; from prefect.settings import Settings; "
            "print(json.dumps(Settings().to_environment_variables(exclude_unset=True)))")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    applied = {k: v.lower() for k, v in json.loads(out.splitlines()[-1]).items()}
    for name, value in ours.items():
        if name.startswith("PREFECT_"):
            assert applied.get(name) == value.lower(), name


def test_external_api_url_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://prefect.example.invalid:4200/api")
    settings = Settings(home=tmp_path)
    assert ensure_server(settings) == "http://prefect.example.invalid:4200/api"
    assert not (settings.prefect_home / server.STATE_FILE).exists()
    assert server_status(settings)["running"] is False


def test_bad_idle_minutes_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(server.IDLE_ENV, "soon")
    with pytest.raises(UsageError, match=server.IDLE_ENV):
        server.idle_minutes_from_env()
    monkeypatch.setenv(server.IDLE_ENV, "0")
    with pytest.raises(UsageError):
        server.idle_minutes_from_env()
    monkeypatch.setenv(server.IDLE_ENV, "2.5")
    assert server.idle_minutes_from_env() == 2.5


# --------------------------------------------------------------------- real server


@pytest.mark.prefect_server
def test_concurrent_ensure_server_starts_one_server(env: Settings) -> None:
    stop_server(env)
    assert _ours(env) == []
    code = ("from ingest.settings import load_settings; from flows.server import ensure_server;"
            " print(ensure_server(load_settings()))")
    sub_env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=sub_env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    urls = {out.strip() for out, _ in outs}
    assert len(urls) == 1
    assert len(_ours(env)) == 1
    # and this process reuses it
    assert ensure_server(env) == urls.pop()
    assert len(_ours(env)) == 1


@pytest.mark.prefect_server
def test_status_files_and_reuse(env: Settings) -> None:
    url = ensure_server(env)
    status = server_status(env)
    assert status["running"] is True
    assert status["url"] == url and url.startswith("http://127.0.0.1:")
    assert status["idle_minutes"] == server.DEFAULT_IDLE_MINUTES
    assert status["idle_for_minutes"] is not None and status["idle_for_minutes"] < 1
    assert status["started"] and status["external_api_url"] is None
    (supervisor,) = _ours(env)
    assert status["pid"] == supervisor.pid
    assert supervisor.pid == os.getsid(supervisor.pid)  # detached: its own session
    children = supervisor.children()
    assert len(children) == 1 and "server" in children[0].cmdline()
    assert ensure_server(env) == url  # reused, not restarted
    assert server_status(env)["pid"] == supervisor.pid
    home = env.prefect_home
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for path in home.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    for name in (server.STATE_FILE, server.LOCK_FILE, server.HEARTBEAT_FILE,
                 server.LOG_FILE, server.DB_FILE):
        assert (home / name).is_file(), name


_FLOW = textwrap.dedent("""
    import json
    from prefect import flow, get_run_logger, task
    from flows.server import fast_flow_runs

    @task
    def add_one(x: int) -> int:
        return x + 1

    @task
    def double(x: int) -> int:
        return x * 2

    @task
    def minus_three(x: int) -> int:
        return x - 3

    @flow(name="server-test-trivial")
    def trivial(x: int = 1) -> int:
        get_run_logger().info("trivial flow: 3 tasks")
        return minus_three(double(add_one(x)))

    with fast_flow_runs():
        state = trivial(1, return_state=True)
    print(json.dumps({"id": str(state.state_details.flow_run_id), "result": state.result()}))
""")

_READ = textwrap.dedent("""
    import json, sys, time
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId)

    run_id = sys.argv[1]
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + 30
        while True:  # task runs are recorded from events, asynchronously
            run = client.read_flow_run(run_id)
            tasks = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
            logs = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
            done = len(tasks) == 3 and all(t.state and t.state.is_completed() for t in tasks)
            if (done and logs) or time.monotonic() > deadline:
                break
            time.sleep(0.25)
    print(json.dumps({
        "flow": run.state.type.value,
        "tasks": sorted((t.name.rsplit("-", 1)[0], t.state.type.value) for t in tasks),
        "logs": [log.message for log in logs],
    }))
""")


@pytest.mark.prefect_server
def test_flow_run_completes_through_the_api(env: Settings, tmp_path: Path) -> None:
    (tmp_path / "trivial_flow.py").write_text(_FLOW)
    (tmp_path / "read_run.py").write_text(_READ)
    sub_env = _subprocess_env(env)
    assert sub_env["PREFECT_API_URL"] == ensure_server(env)
    ran = subprocess.run([sys.executable, str(tmp_path / "trivial_flow.py")], cwd=tmp_path,
                         env=sub_env, capture_output=True, text=True, timeout=180)
    assert ran.returncode == 0, ran.stderr[-3000:]
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    assert result["result"] == 1
    read = subprocess.run([sys.executable, str(tmp_path / "read_run.py"), result["id"]],
                          cwd=tmp_path, env=sub_env, capture_output=True, text=True,
                          timeout=180)
    assert read.returncode == 0, read.stderr[-3000:]
    seen = json.loads(read.stdout.strip().splitlines()[-1])
    assert seen["flow"] == "COMPLETED"
    assert seen["tasks"] == [["add_one", "COMPLETED"], ["double", "COMPLETED"],
                             ["minus_three", "COMPLETED"]]
    assert "trivial flow: 3 tasks" in seen["logs"]
    # results are not persisted anywhere under our Prefect home
    assert not (env.prefect_home / "storage").exists()


@pytest.mark.prefect_server
def test_stop_server_stops_only_ours(env: Settings, tmp_path: Path) -> None:
    url = ensure_server(env)
    (supervisor,) = _ours(env)
    child = supervisor.children()[0]
    other = Settings(home=tmp_path / "other")
    other.prefect_home.mkdir(parents=True)
    state_file = other.prefect_home / server.STATE_FILE
    # Decoys: one looks exactly like a supervisor for the other home, one is anything.
    lookalike = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "flows.server", "supervise",
         "--home", str(other.prefect_home)])
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    decoys = [lookalike, stranger]
    try:
        created = psutil.Process(lookalike.pid).create_time()
        for pid, pid_created in ((lookalike.pid, created - 100),  # pid reused
                                 (lookalike.pid, None),
                                 (stranger.pid, psutil.Process(stranger.pid).create_time())):
            state_file.write_text(json.dumps(
                {"pid": pid, "pid_created": pid_created, "port": 1,
                 "url": "http://127.0.0.1:1/api"}))
            assert server_status(other)["running"] is False
            assert stop_server(other) is False
            assert not state_file.exists()
            assert all(d.poll() is None for d in decoys)

        assert stop_server(env) is True
        assert _wait_gone([supervisor, child]) == []
        assert all(d.poll() is None for d in decoys)
        assert not (env.prefect_home / server.STATE_FILE).exists()
        assert server_status(env)["running"] is False
        assert not server._healthy(url)
        assert stop_server(env) is False  # nothing left to stop
    finally:
        for d in decoys:
            d.kill()
            d.wait()


@pytest.mark.prefect_server
def test_start_failure_is_clear_and_leaves_nothing(env: Settings) -> None:
    stop_server(env)
    with pytest.raises(PrefectServerError, match="server.log"):
        ensure_server(env, timeout=0.5)
    assert _wait_gone(_ours(env), timeout=10) == []
    assert not (env.prefect_home / server.STATE_FILE).exists()


@pytest.mark.prefect_server
def test_idle_server_stops_itself(env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    stop_server(env)
    monkeypatch.setenv(server.IDLE_ENV, "0.05")  # 3 s
    ensure_server(env)
    (supervisor,) = _ours(env)
    assert server_status(env)["idle_minutes"] == 0.05
    assert _wait_gone([supervisor], timeout=60) == []
    assert not (env.prefect_home / server.STATE_FILE).exists()
    assert "exits: idle for 0.05 min" in (env.prefect_home / server.LOG_FILE).read_text()


@pytest.mark.prefect_server
def test_handed_down_url_of_a_stopped_server_is_not_reused(
        env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    handed_down = client_environment(env)
    stale = handed_down["PREFECT_API_URL"]
    assert handed_down[server.MANAGED_URL_ENV] == stale
    stop_server(env)
    # A process started with that environment calls ensure_server again.
    monkeypatch.setenv("PREFECT_API_URL", stale)
    monkeypatch.setenv(server.MANAGED_URL_ENV, stale)
    assert server_status(env)["external_api_url"] is None
    url = ensure_server(env)
    assert server._healthy(url)
    assert len(_ours(env)) == 1
