"""The flow as a Prefect deployment on a process work pool, and local process workers.

How workers get the code: they do not download anything. The deployment's
storage is this project folder (``flow.from_source(<project folder>, ...)``), so
its one pull step is ``set_working_directory: <project folder>``; a process
worker runs each flow run as a subprocess of its own Python, in that folder,
loading ``flows/ingest_delivery.py:ingest_delivery``. Hence a worker must run
on a machine that has this project at the same path, with its ``.venv`` (start
the worker with ``.venv/bin/prefect``), and the same ``INGEST_HOME`` (the
keyring). ``prefect.yaml`` describes the same deployment for ``prefect deploy``.

The runner's automatic dependency installation (``uv run`` in the project) is
turned off for our workers: a flow run must never reach for a package index.

Command line: ``python -m flows.deploy [--pool NAME] [--name NAME]`` creates the
work pool if missing and creates or updates the deployment.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ingest._fs import FILE_MODE, private_dir
from ingest.errors import IngestError, UsageError
from ingest.settings import Settings, load_settings

if TYPE_CHECKING:
    import psutil

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINT = "flows/ingest_delivery.py:ingest_delivery"
"""The same entrypoint, pool type and job variables as prefect.yaml."""
FLOW_NAME = "ingest-delivery"
DEFAULT_POOL = "ingest"
LOCAL_POOL = "ingest-local"
WORKER_QUERY_SECONDS = "2"
"""How often our local workers ask the server for work (Prefect's default is 10 s)."""


def deployment_name(name: str) -> str:
    return name if "/" in name else f"{FLOW_NAME}/{name}"


def worker_environment(settings: Settings) -> dict[str, str]:
    """Environment for a process worker of ours; its flow runs inherit it."""
    from flows.server import client_environment

    env = {**os.environ, **client_environment(settings)}
    env.update({
        "INGEST_HOME": str(settings.home),
        "PREFECT_WORKER_QUERY_SECONDS": WORKER_QUERY_SECONDS,
        "PREFECT_RUNNER_AUTO_INSTALL_DEPENDENCIES": "false",
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p),
    })
    return env


def ensure_pool(name: str, *, create: bool = True) -> None:
    """The work pool ``name`` exists (created as a process pool if ``create``)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
            return
        except ObjectNotFound:
            if not create:
                raise UsageError(f"there is no work pool {name!r} on the Prefect server; "
                                 f"create it: prefect work-pool create {name} --type process"
                                 ) from None
        client.create_work_pool(WorkPoolCreate(
            name=name, type="process",
            base_job_template=ProcessWorker.get_default_base_job_template(),
            description="ingest: confidential deliveries, one flow run each"))


def deployment_pool(name: str) -> str:
    """The work pool of the existing deployment ``name`` (``flow/deployment``)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            dep = client.read_deployment_by_name(deployment_name(name))
        except ObjectNotFound:
            raise UsageError(f"there is no deployment {deployment_name(name)!r} on the Prefect "
                             "server; run '.venv/bin/prefect --no-prompt deploy --all' in the "
                             "project folder, or leave out --deployment") from None
    if not dep.work_pool_name:
        raise UsageError(f"the deployment {deployment_name(name)!r} has no work pool")
    return dep.work_pool_name


def deploy(pool: str, name: str | None = None) -> str:
    """Create or update the deployment ``ingest-delivery/<name or pool>`` on ``pool``."""
    from flows.ingest_delivery import ingest_delivery

    name = name or pool
    flow = ingest_delivery.from_source(str(PROJECT_ROOT), ENTRYPOINT)
    flow.deploy(  # type: ignore[union-attr]
                name=name, work_pool_name=pool, build=False, push=False,
                job_variables={"env": {"PREFECT_RUNNER_AUTO_INSTALL_DEPENDENCIES": "false"}},
                print_next_steps=False, ignore_warnings=True, tags=["ingest"],
                description="One confidential delivery: open, decrypt, read, validate, "
                "publish encrypted outputs. Parameters are paths and names only.")
    return deployment_name(name)


# --------------------------------------------------------------------------- local workers


def start_workers(count: int, pool: str, settings: Settings,
                  names: list[str] | None = None) -> list[subprocess.Popen[bytes]]:
    """Start ``count`` process workers for ``pool``, each running one flow run at a time.

    Each is our child in its own session; its output (and its flow runs') goes to
    ``$INGEST_HOME/prefect/workers/<name>.log`` (0600).
    """
    env = worker_environment(settings)
    logs = private_dir(settings.prefect_home / "workers")
    procs = []
    for i in range(count):
        name = (names or [])[i] if names and i < len(names) else f"{pool}-{os.getpid()}-{i + 1}"
        procs.append(start_worker(pool, name, env, logs / f"{name}.log"))
    return procs


def start_worker(pool: str, name: str, env: dict[str, str],
                 log: Path) -> subprocess.Popen[bytes]:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, FILE_MODE)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool,
             "--type", "process", "--limit", "1", "--name", name],
            stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, env=env, cwd=PROJECT_ROOT,
            start_new_session=True)
    finally:
        os.close(fd)


def stop_workers(procs: list[subprocess.Popen[bytes]], timeout: float = 20.0) -> None:
    """Stop the workers we started and the flow runs they started.

    SIGTERM each worker's session; after ``timeout`` SIGKILL it. Flow-run processes
    run in process groups of their own, so those found below a worker before it
    was signalled are then terminated too (a run cut short publishes nothing: the
    publish step is one rename).
    """
    import psutil

    below: list[psutil.Process] = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            below += psutil.Process(proc.pid).children(recursive=True)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    terminate_all(below, timeout=5)


def terminate_all(processes: list[psutil.Process], timeout: float) -> None:
    """SIGTERM each process, then SIGKILL those still running after ``timeout``."""
    import psutil

    for proc in processes:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.deploy",
                                     description="Deploy the ingest flow to a work pool.")
    parser.add_argument("--pool", default=DEFAULT_POOL, help="process work pool (created "
                        "if missing); default %(default)s")
    parser.add_argument("--name", help="deployment name (default: the pool's name)")
    args = parser.parse_args(argv)
    settings = load_settings()
    try:
        from flows.server import use_prefect

        use_prefect(settings)
        ensure_pool(args.pool)
        print(deploy(args.pool, args.name))
    except IngestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
