"""The local Prefect server the project manages itself.

A flow run against Prefect's ephemeral API costs 12-22 s per process; against a
long-lived local server it costs a few seconds. So, unless the user points
``PREFECT_API_URL`` at a server of their own, :func:`ensure_server` starts one
on 127.0.0.1 under ``$INGEST_HOME/prefect`` and returns its URL:

* a detached *supervisor* (``python -m flows.server supervise``, its own
  session) runs ``prefect server start`` as its child and stops it after
  ``INGEST_SERVER_IDLE_MINUTES`` (default 30) without use. Use is a touch of
  the heartbeat file (every :func:`ensure_server` touches it, and
  :func:`keep_alive` does so while a block runs) or a client connected to the
  server (a running flow holds its events websocket open for the whole run);
* the state file ``server.json`` names the supervisor (pid and its start time,
  port, URL); ``server.lock`` (``flock``) makes concurrent callers start one;
* everything under ``$INGEST_HOME/prefect`` is owner-only (0700/0600); the
  server's log is ``server.log`` there;
* its database is SQLite (``prefect.db`` there) unless the setting
  ``prefect_database`` (``INGEST_PREFECT_DATABASE``, ``ingest server start
  --database URL``) names a PostgreSQL database, which several machines' workers
  can share (``docs/operations.md``). That URL never holds the password: asyncpg
  reads it as libpq does, from ``PGPASSFILE`` (default ``~/.pgpass``) or
  ``PGPASSWORD``, inherited by the server from the process that starts it; so no
  file of ours, no state, log line or message holds it;
* the server serves Prefect's UI (the dashboard: runs, their task timeline, the
  report artifacts) unless ``INGEST_PREFECT_UI`` is off. Prefect copies the UI's
  static build, with the URL it is served under templated in, into
  ``$INGEST_HOME/prefect/ui``: never into site-packages. When the UI is off, no
  ``View at`` link is printed (it would answer 404); :func:`run_notice` gives the
  run's API address instead.

This module imports no Prefect (slow to import); only the server process and
:func:`fast_flow_runs` do. Command line: ``python -m flows.server
start|status|stop|env``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from ingest._fs import DIR_MODE, FILE_MODE, private_dir, write_private
from ingest.errors import IngestError, UsageError
from ingest.settings import Settings, load_settings

HOST = "127.0.0.1"
STATE_FILE = "server.json"
LOCK_FILE = "server.lock"
HEARTBEAT_FILE = "server.heartbeat"
LOG_FILE = "server.log"
DB_FILE = "prefect.db"

IDLE_ENV = "INGEST_SERVER_IDLE_MINUTES"
UI_ENV = "INGEST_PREFECT_UI"
UI_DIR = "ui"
MANAGED_URL_ENV = "INGEST_MANAGED_PREFECT_API_URL"
DEFAULT_IDLE_MINUTES = 30.0
START_TIMEOUT = 60.0
"""Seconds to wait for a new server's /api/health."""
_LOG_ROTATE_BYTES = 1 << 20
_SUPERVISOR_MARK = "flows.server"

# Never send loopback traffic through a proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class PrefectServerError(IngestError):
    """The local Prefect server could not be started, reached or stopped."""

    exit_code = 9


# --------------------------------------------------------------------------- environment


def prefect_environment(settings: Settings) -> dict[str, str]:
    """Environment variables for every Prefect process of ours (server, flows, CLI).

    Not included: ``PREFECT_API_URL`` (see :func:`ensure_server` and
    :func:`client_environment`). Every name here exists in the installed Prefect
    (``tests/test_server.py`` checks it against ``prefect.settings.Settings``).
    """
    home = settings.prefect_home
    no_proxy = [h for h in (os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or "")
                .split(",") if h.strip()]
    for host in (HOST, "localhost", "::1"):
        if host not in no_proxy:
            no_proxy.append(host)
    return {
        # Where Prefect keeps its files (profiles, memo store, result storage)
        # and its database: ours, not ~/.prefect.
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": database_url(settings),
        # No telemetry, server-side or client-side, and no metrics endpoints.
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_CLIENT_METRICS_ENABLED": "false",
        "PREFECT_SERVER_METRICS_ENABLED": "false",
        "PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS": "false",
        # Never fall back to a slow ephemeral server when no API URL is set.
        "PREFECT_SERVER_EPHEMERAL_ENABLED": "false",
        # Our log lines name stages and counts, never values: keep them in the API.
        "PREFECT_LOGGING_TO_API_ENABLED": "true",
        # Task and flow results may be data: never pickle them to disk, never
        # hash task inputs into cache keys.
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
        "PREFECT_TASKS_DEFAULT_PERSIST_RESULT": "false",
        "PREFECT_TASKS_DEFAULT_NO_CACHE": "true",
        # Server: API and UI. An on-demand server cannot honour schedules, and nothing
        # of ours pauses flows, uses automations or reads Late/worker health states.
        # Kept: task run recorder, event persister, cancellation cleanup,
        # repossessor (concurrency leases), cleanup reconciler, DB vacuum.
        # The UI (on unless INGEST_PREFECT_UI is off) is copied with its URL
        # templated in: into our home, not into site-packages (which may be
        # read-only or shared). No promotional content (upgrade prompts, banners).
        "PREFECT_SERVER_UI_ENABLED": "true" if ui_enabled_from_env() else "false",
        "PREFECT_SERVER_UI_STATIC_DIRECTORY": str(home / UI_DIR),
        "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
        # Loopback traffic never goes through a proxy from the environment.
        "NO_PROXY": ",".join(no_proxy),
        "no_proxy": ",".join(no_proxy),
    }


def client_environment(settings: Settings) -> dict[str, str]:
    """:func:`prefect_environment` plus ``PREFECT_API_URL`` from :func:`ensure_server`.

    When that URL is our server's it is also put in ``INGEST_MANAGED_PREFECT_API_URL``,
    so that a process given this environment which calls :func:`ensure_server`
    again still manages (and, if it idled out, restarts) our server instead of
    taking the URL for the user's own server.

    When the server is ours, ``PREFECT_UI_URL`` is its dashboard's address, or empty
    when it serves no UI, so that Prefect prints no ``View at`` link (it would answer
    404). Whether it serves one is
    read from the running server's state, not from the setting: a server started
    before the setting changed keeps its UI, or its lack of one, until it stops.
    """
    url = ensure_server(settings)
    env = {**prefect_environment(settings), "PREFECT_API_URL": url}
    if not _external_api_url():
        env[MANAGED_URL_ENV] = url
        state = _read_state(settings.prefect_home) or {}
        # a state written before the UI could be served has no "ui": it served none
        serves_ui = state.get("url") == url and bool(state.get("ui", False))
        env["PREFECT_UI_URL"] = _ui_url(url) if serves_ui else ""
    return env


def use_prefect(settings: Settings) -> None:
    """Point this process's Prefect client at our managed server, unless the user set
    ``PREFECT_API_URL`` (then at theirs)."""
    os.environ.update(client_environment(settings))


def _external_api_url() -> str | None:
    """The user's ``PREFECT_API_URL``, if set and not ours."""
    url = os.environ.get("PREFECT_API_URL", "").strip()
    return url if url and url != os.environ.get(MANAGED_URL_ENV) else None


def database_url(settings: Settings) -> str:
    """The connection URL of our server's database: the ``prefect_database`` setting
    (checked by :func:`checked_database_url`), else SQLite under our Prefect home."""
    if settings.prefect_database:
        return checked_database_url(settings.prefect_database)
    return f"sqlite+aiosqlite:///{settings.prefect_home / DB_FILE}"


_POSTGRES_SCHEMES = ("postgresql+asyncpg", "postgresql", "postgres")


def checked_database_url(url: str) -> str:
    """A PostgreSQL URL for Prefect (``postgresql+asyncpg://``), refused if it holds a
    password: one in a URL ends up in process lists, shell histories and config files.
    Messages show the URL with any password masked."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        parts.port  # noqa: B018 (a bad port raises here)
    except ValueError:
        raise UsageError("the Prefect database URL is not a URL; give "
                         "postgresql+asyncpg://USER@HOST:PORT/DATABASE") from None
    query = urllib.parse.parse_qs(parts.query)
    if parts.password is not None or "password" in query:
        raise UsageError(
            f"the Prefect database URL {masked_url(url)} holds a password; remove it and "
            "put the password in a libpq password file (~/.pgpass, or the file named by "
            "PGPASSFILE: HOST:PORT:DATABASE:USER:PASSWORD, mode 0600)")
    if parts.scheme not in _POSTGRES_SCHEMES or not parts.hostname \
            or not parts.path.strip("/"):
        raise UsageError(f"the Prefect database URL {masked_url(url)} is not a PostgreSQL "
                         "database's; give postgresql+asyncpg://USER@HOST:PORT/DATABASE")
    return urllib.parse.urlunsplit(parts._replace(scheme="postgresql+asyncpg"))


def masked_url(url: str) -> str:
    """``url`` with its password, if any, shown as ``***`` (in the netloc or the query)."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        netloc = parts.netloc
        if parts.password is not None:
            netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
        query = urllib.parse.urlencode(
            [(k, "***" if k == "password" else v)
             for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)],
            safe="*")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:
        return "(not a URL)"


def ui_enabled_from_env() -> bool:
    """``INGEST_PREFECT_UI``: whether our server serves Prefect's UI (default: yes)."""
    raw = os.environ.get(UI_ENV, "").strip().lower()
    if raw in ("", "1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise UsageError(f"{UI_ENV} must be on or off (1/0, true/false, yes/no)")


def run_notice(flow_run_id: object) -> str | None:
    """The line that names a flow run when Prefect prints no ``View at`` link for it.

    None when Prefect prints one (a UI URL is known). Otherwise the run's id and the
    API address that answers for it. Imports Prefect.
    """
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    if PREFECT_UI_URL.value():
        return None
    api = PREFECT_API_URL.value()
    where = f": {api.rstrip('/')}/flow_runs/{flow_run_id}" if api else ""
    return f"flow run {flow_run_id} (the Prefect server serves no UI){where}"


def idle_minutes_from_env() -> float:
    raw = os.environ.get(IDLE_ENV, "").strip()
    if not raw:
        return DEFAULT_IDLE_MINUTES
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{IDLE_ENV} must be a number of minutes") from None
    if not value > 0:
        raise UsageError(f"{IDLE_ENV} must be more than 0 minutes")
    return value


# --------------------------------------------------------------------------- public API


def ensure_server(settings: Settings, *, timeout: float = START_TIMEOUT) -> str:
    """Return the Prefect API URL to use, starting our local server if needed.

    ``PREFECT_API_URL`` in the environment wins: the user's server is used and
    ours is not started (unless it is our own URL, handed down by
    :func:`client_environment`). Otherwise our server is reused when its supervisor is
    alive, is ours and ``/api/health`` answers; else a new one is started and
    waited for (``timeout`` seconds).
    """
    external = _external_api_url()
    if external:
        return external
    home = private_dir(settings.prefect_home)
    touch_heartbeat(settings)
    with _locked(home, timeout=timeout + 30):
        state = _read_state(home)
        if state is not None:
            if _is_ours(state, home):
                _check_same_database(settings, state)
                url = state["url"]
                if _healthy(url) or _wait_healthy(url, state, home, timeout):
                    touch_heartbeat(settings)
                    return url
                _terminate(state, home)  # alive but hung: replace it
            _remove_state(home)
        url = _start(settings, home, timeout)
    touch_heartbeat(settings)
    return url


def _check_same_database(settings: Settings, state: dict) -> None:
    """A database named in the settings must be the running server's (a server is
    reused whatever its database when none is named: ``--database`` given to
    ``ingest server start`` alone then holds until the server stops)."""
    if not settings.prefect_database:
        return
    running = state.get("database") or f"sqlite+aiosqlite:///{settings.prefect_home / DB_FILE}"
    wanted = database_url(settings)
    if running != wanted:
        raise PrefectServerError(
            f"our Prefect server is running on the database {masked_url(str(running))}, not "
            f"on {masked_url(wanted)}; stop it first ('ingest server stop'), or leave "
            "the database setting out to use it")


def server_status(settings: Settings) -> dict[str, object]:
    """What is known about our server; never starts or stops anything.

    Keys: running (supervisor alive, ours, /api/health answers), url, ui (the
    dashboard's address, None when the server serves no UI), database (its
    connection URL, never with a password), pid (of the
    supervisor), started (ISO 8601 UTC), idle_minutes (the configured timeout),
    idle_for_minutes (since the last heartbeat touch), log, external_api_url
    (``PREFECT_API_URL`` from the environment, which :func:`ensure_server` would use).
    """
    home = settings.prefect_home
    state = _read_state(home) if home.is_dir() else None
    status: dict[str, object] = {
        "running": False, "url": None, "ui": None, "database": None, "pid": None,
        "started": None,
        "idle_minutes": None, "idle_for_minutes": None,
        "log": str(home / LOG_FILE),
        "external_api_url": _external_api_url(),
    }
    if state is None:
        return status
    status.update(url=state.get("url"), pid=state.get("pid"),
                  ui=_ui_url(str(state.get("url"))) if state.get("ui") else None,
                  database=masked_url(str(state.get("database") or
                                          f"sqlite+aiosqlite:///{home / DB_FILE}")),
                  idle_minutes=state.get("idle_minutes"),
                  started=_iso(state.get("started")))
    with contextlib.suppress(OSError):
        age = time.time() - (home / HEARTBEAT_FILE).stat().st_mtime
        status["idle_for_minutes"] = round(max(age, 0.0) / 60, 2)
    status["running"] = bool(_is_ours(state, home) and _healthy(str(state.get("url"))))
    return status


def stop_server(settings: Settings, *, timeout: float = 30.0) -> bool:
    """Stop our supervisor and its server; True if one was running.

    Only the process named in the state file is signalled, and only after
    checking it is our supervisor for this home (command line and start time).
    """
    home = settings.prefect_home
    if not home.is_dir():
        return False
    with _locked(home, timeout=START_TIMEOUT + 30):
        state = _read_state(home)
        if state is None:
            return False
        stopped = False
        if _is_ours(state, home):
            _terminate(state, home, timeout=timeout)
            stopped = True
        _remove_state(home)
        return stopped


def touch_heartbeat(settings: Settings) -> None:
    """Mark our server as in use now (resets its idle timer)."""
    path = private_dir(settings.prefect_home) / HEARTBEAT_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
    try:
        os.utime(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def fast_flow_runs() -> Iterator[None]:
    """In-process flow runs within the block skip Prefect's flow-run heartbeat thread.

    A sync flow run joins that thread on exit and the thread sleeps in 1 s steps,
    which costs about 1 s per run (measured: 1.3 s -> 0.4 s for a 3-task flow).
    Heartbeats only feed Prefect automations, which our server does not run.
    There is no environment variable for it (the setting cannot be set to None
    from the environment), hence a context manager. Imports Prefect.
    """
    from prefect.settings import temporary_settings

    with temporary_settings(updates={"flows.heartbeat_frequency": None}):
        yield


@contextlib.contextmanager
def keep_alive(settings: Settings, every: float = 60.0) -> Iterator[None]:
    """Touch the heartbeat every ``every`` seconds while the block runs."""
    done = threading.Event()

    def beat() -> None:
        while not done.wait(every):
            with contextlib.suppress(OSError):
                touch_heartbeat(settings)

    touch_heartbeat(settings)
    thread = threading.Thread(target=beat, name="prefect-server-keep-alive", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=5)


# --------------------------------------------------------------------------- internals


@contextlib.contextmanager
def _locked(home: Path, timeout: float, poll: float = 0.05) -> Iterator[None]:
    fd = os.open(home / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise PrefectServerError(
                        f"another process has held {home / LOCK_FILE} for over "
                        f"{timeout:.0f} s; if none of ours is starting a server, "
                        "delete that file and retry") from None
                time.sleep(poll)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def _try_locked(home: Path) -> Iterator[bool]:
    fd = os.open(home / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
        else:
            yield True
    finally:
        os.close(fd)


def _read_state(home: Path) -> dict | None:
    try:
        state = json.loads((home / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or not isinstance(state.get("pid"), int) \
            or not isinstance(state.get("url"), str):
        return None
    return state


def _write_state(home: Path, state: dict) -> None:
    write_private(home / STATE_FILE, json.dumps(state, indent=1).encode())


def _remove_state(home: Path, only_pid: int | None = None) -> None:
    if only_pid is not None:
        state = _read_state(home)
        if state is None or state.get("pid") != only_pid:
            return
    with contextlib.suppress(FileNotFoundError):
        (home / STATE_FILE).unlink()


def _iso(epoch: object) -> str | None:
    if not isinstance(epoch, int | float):
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _process(pid: int):
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _is_ours(state: dict, home: Path) -> bool:
    """The state's pid is alive and is our supervisor for ``home`` (not a reused pid)."""
    import psutil

    proc = _process(state["pid"])
    if proc is None:
        return False
    try:
        cmdline = proc.cmdline()
        created = proc.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    if _SUPERVISOR_MARK not in cmdline or "supervise" not in cmdline \
            or str(home) not in cmdline:
        return False
    recorded = state.get("pid_created")
    return isinstance(recorded, int | float) and abs(created - recorded) < 1.0


def _ui_url(api_url: str) -> str:
    """The dashboard's address: the API's without ``/api`` (as Prefect infers it)."""
    return api_url.removesuffix("/api")


def _healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with _OPENER.open(f"{url}/health", timeout=timeout) as resp:
            return resp.status == 200
    except (OSError, ValueError):
        return False


def _wait_healthy(url: str, state: dict, home: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _healthy(url):
            return True
        if not _is_ours(state, home):
            return False
        time.sleep(0.1)
    return False


def _terminate(state: dict, home: Path, timeout: float = 30.0) -> None:
    """SIGTERM our supervisor (it stops its server); SIGKILL its group if it lingers."""
    pid = state["pid"]
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _is_ours(state, home):
        time.sleep(0.05)
    if _is_ours(state, home):
        _kill_group(pid)


def _kill_group(pid: int) -> None:
    """SIGKILL the session our supervisor leads (itself and its server)."""
    try:
        if os.getsid(pid) == pid and os.getpgid(pid) == pid and pid != os.getpgid(0):
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _owner_only(root: Path) -> None:
    """Make the UI's static copy owner-only, as all else under our Prefect home.

    Prefect copies the build keeping the wheel's modes (0755/0644), before its
    server answers /api/health; the files are Prefect's own, public, so the moment
    they are readable by others before this runs exposes nothing."""
    for path in [root, *root.rglob("*")] if root.is_dir() else []:
        with contextlib.suppress(OSError):
            if not path.is_symlink():
                os.chmod(path, DIR_MODE if path.is_dir() else FILE_MODE)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _open_log(home: Path) -> int:
    path = home / LOG_FILE
    with contextlib.suppress(OSError):
        if path.stat().st_size > _LOG_ROTATE_BYTES:
            os.replace(path, path.with_name(LOG_FILE + ".1"))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    return fd


def _project_root() -> str:
    return str(Path(__file__).resolve().parent.parent)


def _start(settings: Settings, home: Path, timeout: float) -> str:
    """Spawn a supervisor and wait for its server. Called with the lock held."""
    import psutil

    idle = idle_minutes_from_env()
    ui = ui_enabled_from_env()
    env = {**os.environ, **prefect_environment(settings)}
    for name in ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_PROFILE", MANAGED_URL_ENV,
                 "PREFECT_UI_URL", "PREFECT_UI_API_URL", "PREFECT_SERVER_UI_API_URL",
                 "PREFECT_UI_SERVE_BASE", "PREFECT_SERVER_UI_SERVE_BASE"):
        env.pop(name, None)  # the server is ours, whatever the user's profile says
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (_project_root(), os.environ.get("PYTHONPATH", "")) if p)
    log = home / LOG_FILE
    deadline = time.monotonic() + timeout
    for _attempt in range(3):
        port = _free_port()
        url = f"http://{HOST}:{port}/api"
        # The UI asks the API at this address (Prefect's default is port 4200).
        env["PREFECT_SERVER_UI_API_URL"] = url
        log_fd = _open_log(home)
        try:
            os.write(log_fd, f"--- {_iso(time.time())} starting on port {port}\n".encode())
            # The launcher forks the supervisor into its own session, prints its
            # pid and exits: the supervisor is not our child (no zombie, no
            # ResourceWarning) and survives us.
            launcher = subprocess.Popen(
                [sys.executable, "-m", "flows.server", "supervise", "--home", str(home),
                 "--port", str(port), "--idle-minutes", repr(idle)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log_fd,
                cwd=home, env=env, close_fds=True)
        finally:
            os.close(log_fd)
        with launcher:
            try:
                out, _ = launcher.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                launcher.kill()
                out = b""
        try:
            pid = int(out.decode().strip())
            created = psutil.Process(pid).create_time()
        except (ValueError, psutil.Error):
            raise PrefectServerError(
                f"the Prefect server supervisor did not start; see its log {log}") from None
        state = {"pid": pid, "pid_created": created, "port": port, "url": url, "ui": ui,
                 "database": env["PREFECT_SERVER_DATABASE_CONNECTION_URL"],
                 "started": time.time(), "idle_minutes": idle, "home": str(home),
                 "log": str(log)}
        _write_state(home, state)
        while time.monotonic() < deadline:
            if _healthy(url):
                _owner_only(home / UI_DIR)
                return url
            if not _is_ours(state, home):
                break  # supervisor gone: port taken meanwhile, or the server failed
            time.sleep(0.1)
        alive = _is_ours(state, home)
        if alive:
            _kill_group(pid)
        _remove_state(home)
        if alive or time.monotonic() >= deadline:
            raise PrefectServerError(
                f"the local Prefect server did not answer on {HOST}:{port} within "
                f"{timeout:.0f} s; see its log {log}.{_database_hint(settings)} To use "
                "another Prefect server, set PREFECT_API_URL.")
    raise PrefectServerError(
        f"the local Prefect server exited while starting, 3 times; see its log {log}."
        f"{_database_hint(settings)} To use another Prefect server, set PREFECT_API_URL.")


def _database_hint(settings: Settings) -> str:
    if not settings.prefect_database:
        return ""
    return (f" Its database is {masked_url(database_url(settings))}: check that it "
            "answers and that the password file (PGPASSFILE, or ~/.pgpass) holds its "
            "password.")


# --------------------------------------------------------------------------- supervisor


def _server_command(port: int) -> list[str]:
    return [sys.executable, "-m", "prefect", "server", "start",
            "--host", HOST, "--port", str(port)]


def _supervise(home: Path, port: int, idle_minutes: float) -> int:
    """Run the server as a child; stop it when idle, signalled, or when it dies."""
    os.umask(0o077)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    idle_s = idle_minutes * 60
    check_every = min(15.0, max(idle_s / 4, 0.5))
    last_active = time.time()
    server = subprocess.Popen(_server_command(port), stdin=subprocess.DEVNULL, cwd=home)
    reason = "stopped by signal"
    next_check = time.monotonic() + check_every
    try:
        while not stop.wait(0.5):
            if server.poll() is not None:
                reason = f"server exited with status {server.returncode}"
                with _try_locked(home):
                    _remove_state(home, only_pid=os.getpid())
                break
            if time.monotonic() < next_check:
                continue
            next_check = time.monotonic() + check_every
            if _has_clients(server.pid, port):
                last_active = time.time()
            if _idle_for(home, last_active) < idle_s:
                continue
            with _try_locked(home) as locked:
                # Re-check under the lock: a caller holding it has just touched the
                # heartbeat or is about to hand our URL out.
                if locked and _idle_for(home, last_active) >= idle_s \
                        and not _has_clients(server.pid, port):
                    _remove_state(home, only_pid=os.getpid())
                    reason = f"idle for {idle_minutes:g} min"
                    break
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        print(f"--- {_iso(time.time())} supervisor {os.getpid()} exits: {reason}",
              flush=True)
    return 0


def _has_clients(server_pid: int, port: int) -> bool:
    """Whether a client holds a connection to the server (a running flow keeps its
    events websocket open for the whole run, even inside a long task)."""
    import psutil

    try:
        conns = psutil.Process(server_pid).net_connections(kind="tcp")
    except psutil.Error:
        return False
    return any(c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port
               for c in conns)


def _idle_for(home: Path, last_active: float) -> float:
    """Seconds since the last use: a heartbeat touch or a client connection."""
    try:
        last = max((home / HEARTBEAT_FILE).stat().st_mtime, last_active)
    except OSError:
        last = last_active
    return time.time() - last


def _daemonize_and_supervise(home: Path, port: int, idle_minutes: float) -> int:
    pid = os.fork()
    if pid:
        print(pid, flush=True)
        os._exit(0)
    os.setsid()
    os.dup2(2, 1)  # stdout -> the log file too
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return _supervise(home, port, idle_minutes)


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.server",
                                     description="Our local Prefect server.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("start", help="start it if needed and print its API URL")
    sub.add_parser("status", help="print its status as JSON")
    sub.add_parser("stop", help="stop it")
    sub.add_parser("env", help="print the Prefect environment (with PREFECT_API_URL)")
    sup = sub.add_parser("supervise", help=argparse.SUPPRESS)
    sup.add_argument("--home", type=Path, required=True)
    sup.add_argument("--port", type=int, required=True)
    sup.add_argument("--idle-minutes", type=float, required=True)
    args = parser.parse_args(argv)
    if args.command == "supervise":
        return _daemonize_and_supervise(args.home, args.port, args.idle_minutes)
    settings = load_settings()
    try:
        if args.command == "start":
            print(ensure_server(settings))
        elif args.command == "status":
            print(json.dumps(server_status(settings), indent=2))
        elif args.command == "stop":
            print("stopped" if stop_server(settings) else "not running")
        elif args.command == "env":
            for key, value in client_environment(settings).items():
                print(f"{key}={shlex.quote(value)}")
    except IngestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
