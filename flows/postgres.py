"""A temporary PostgreSQL cluster for the Prefect server, from Debian's ``postgresql``.

For the tests and for trying the several-machine set-up on one machine: a
cluster created with ``initdb`` in a fresh temporary folder, listening on
127.0.0.1 at a free port (and on a Unix socket inside that folder only),
with one role that logs in by password (SCRAM-SHA-256) and one database,
``prefect``. The password is random, made here, and written only to a
libpq password file (``pgpass``, 0600) beside the cluster: the URL this gives
Prefect carries none, and asyncpg (Prefect's driver) reads the password from the
file named by ``PGPASSFILE``, as libpq does. On leaving, the cluster is stopped
and its folder deleted.

PostgreSQL refuses to run as root, so when we are root the cluster belongs to
the ``postgres`` system account (created by Debian's package) and its programs
run as that account (``runuser``). The cluster trades durability for speed
(``fsync`` off): it is thrown away anyway; never use these settings for a
standing server.

Command line: ``python -m flows.postgres`` creates one, prints its URL and
``PGPASSFILE=...``, and keeps it until interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ingest.errors import IngestError

HOST = "127.0.0.1"
ROLE = "ingest"
DATABASE = "prefect"
SYSTEM_ACCOUNT = "postgres"
"""Debian's package creates it; the cluster runs as it when we are root."""
PASSFILE = "pgpass"
LOG_FILE = "postgres.log"
START_TIMEOUT = 60
_SPEED_OVER_DURABILITY = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


class PostgresError(IngestError):
    """A temporary PostgreSQL cluster could not be created, started or stopped."""

    exit_code = 9


@dataclass(frozen=True)
class Cluster:
    root: Path
    """The cluster's folder: ``data/`` (PGDATA), the socket folder, the server log."""
    port: int
    passfile: Path
    """libpq password file for :attr:`url`'s role; hand it over as ``PGPASSFILE``."""

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        """Prefect's connection URL; no password in it."""
        return f"postgresql+asyncpg://{ROLE}@{HOST}:{self.port}/{DATABASE}"

    @property
    def log(self) -> Path:
        return self.root / LOG_FILE


def bin_dir() -> Path:
    """Where Debian's ``postgresql`` puts its server programs (the newest version's)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent  # /usr/local/bin may hold links to initdb alone
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if not versions:
        raise PostgresError("PostgreSQL's server programs (initdb) are not installed; "
                            "run scripts/bootstrap install, or apt-get install postgresql")
    return versions[-1].parent


@contextlib.contextmanager
def temporary_cluster(parent: Path | None = None) -> Iterator[Cluster]:
    """A running cluster in a new folder under ``parent`` (the system's temporary
    folder by default: when we are root the ``postgres`` account must reach it);
    stopped and deleted on leaving, whatever happened."""
    tools = bin_dir()
    account = _account()
    root = Path(tempfile.mkdtemp(prefix="ingest-pg-", dir=parent))
    started = False
    try:
        if account is not None:
            os.chown(root, account.pw_uid, account.pw_gid)
        password = secrets.token_urlsafe(24)
        _initdb(tools, root, password, account)
        port = _start(tools, root, account)
        started = True
        passfile = root / PASSFILE
        fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{HOST}:{port}:*:{ROLE}:{password}\n")
        del password
        cluster = Cluster(root, port, passfile)
        _create_database(tools, cluster)
        yield cluster
    finally:
        try:
            if started:
                _run([str(tools / "pg_ctl"), "stop", "-D", str(root / "data"), "-m", "fast",
                      "-w", "-t", "30"], account, root, "pg_ctl stop")
        finally:
            shutil.rmtree(root, ignore_errors=True)


def _account() -> pwd.struct_passwd | None:
    """The account the cluster runs as: ``postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SYSTEM_ACCOUNT)
    except KeyError:
        raise PostgresError("PostgreSQL does not run as root and there is no 'postgres' "
                            "account; install Debian's postgresql package (it creates one)"
                            ) from None


def _as(account: pwd.struct_passwd | None, argv: list[str]) -> list[str]:
    return ["runuser", "-u", account.pw_name, "--", *argv] if account else argv


def _run(argv: list[str], account: pwd.struct_passwd | None, root: Path, what: str, *,
         stdin: bytes | None = None, env: dict[str, str] | None = None) -> None:
    read_end: int | None = None
    if stdin is not None:
        # a pipe the child's account may open again as /dev/stdin (initdb does)
        read_end, write_end = os.pipe()
        if account is not None:
            os.fchown(read_end, account.pw_uid, account.pw_gid)
        os.write(write_end, stdin)  # a few bytes: within the pipe's buffer
        os.close(write_end)
    try:
        proc = subprocess.run(_as(account, argv), stdin=read_end, capture_output=True,
                              cwd=root, env=env, timeout=START_TIMEOUT, check=False)
    finally:
        if read_end is not None:
            os.close(read_end)
    if proc.returncode != 0:
        # PostgreSQL's own messages name files, ports and roles, never the password
        detail = (proc.stderr or proc.stdout).decode(errors="replace").strip()[-600:]
        raise PostgresError(f"{what} failed (status {proc.returncode}): {detail}")


def _initdb(tools: Path, root: Path, password: str, account: pwd.struct_passwd | None) -> None:
    # the password goes through a pipe (--pwfile=/dev/stdin), never a file; only its
    # SCRAM verifier is stored in the cluster
    _run([str(tools / "initdb"), "-D", str(root / "data"), "-U", ROLE, "--pwfile=/dev/stdin",
          "--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
          "--no-instructions"], account, root, "initdb", stdin=f"{password}\n".encode())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _start(tools: Path, root: Path, account: pwd.struct_passwd | None) -> int:
    """Start the server on a free port (another may take the port meanwhile: retried)."""
    error: PostgresError | None = None
    for _attempt in range(3):
        port = _free_port()
        options = " ".join([f"-p {port}", f"-c listen_addresses={HOST}",
                            f"-c unix_socket_directories={root}",
                            *(f"-c {o}" for o in _SPEED_OVER_DURABILITY)])
        try:
            _run([str(tools / "pg_ctl"), "start", "-D", str(root / "data"), "-l",
                  str(root / LOG_FILE), "-w", "-t", str(START_TIMEOUT), "-o", options],
                 account, root, f"starting PostgreSQL on port {port} (log {root / LOG_FILE})")
            return port
        except PostgresError as exc:
            error = exc
    assert error is not None
    raise error


def _create_database(tools: Path, cluster: Cluster) -> None:
    env = {**os.environ, "PGPASSFILE": str(cluster.passfile), "PGHOST": HOST,
           "PGPORT": str(cluster.port), "PGUSER": ROLE, "PGDATABASE": "postgres"}
    env.pop("PGPASSWORD", None)
    _run([str(tools / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c",
          f"CREATE DATABASE {DATABASE}"], None, cluster.root, "creating the database", env=env)


def psql(cluster: Cluster, sql: str) -> None:
    """Run ``sql`` in the cluster's database as its role (statements of ours, never data)."""
    env = {**os.environ, "PGPASSFILE": str(cluster.passfile)}
    env.pop("PGPASSWORD", None)
    _run([str(bin_dir() / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", HOST, "-p",
          str(cluster.port), "-U", ROLE, "-d", DATABASE, "-c", sql], None, cluster.root,
         "psql", env=env)


def checkpoint(cluster: Cluster) -> None:
    """Write every change out to the data files (what a scan of them should see)."""
    psql(cluster, "CHECKPOINT")


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.postgres",
        description="A temporary PostgreSQL cluster for the Prefect server: prints its URL "
        "and PGPASSFILE, keeps it until interrupted, then deletes it.")
    parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: stop.set())
    try:
        with temporary_cluster() as cluster:
            print(f"PGPASSFILE={cluster.passfile}", flush=True)
            print(f"ingest server start --database {cluster.url}", flush=True)
            stop.wait()
    except IngestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
