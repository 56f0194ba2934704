"""``ingest serve``: watch an inbox folder; one flow run per complete delivery.

A delivery is a file or a folder at the top of the inbox. It has *arrived*
(is complete) when the first of these holds:

1. a marker ``<name>.done`` or ``<name>.ready`` stands beside it;
2. a checksum file says so: a file with ``<name>.sha256`` (or ``.md5``) beside it
   whose digest matches, or a folder holding a checksum file (``SHA256SUMS``,
   ``*.sha256``, ...) every named file of which is present with its digest. The
   watcher hashes (streaming) each time the delivery changed. A file whose
   sidecar still disagrees once it has stopped changing is failed here; a folder
   is then run anyway, and its media stage says which member is wrong;
3. nothing about it (names, sizes, modification times, recursively) has changed
   for the settle period (default 5 s).

Hidden names (``.x``), partial downloads (``*.part``, ``*.partial``, ``*.tmp``,
``*.crdownload``) and the ``processed/`` and ``failed/`` folders are never
deliveries; markers and checksum files beside a delivery travel with it.

Each arrived delivery becomes a flow run of the deployment (``run_deployment``),
picked up by a process worker of the work pool: by default workers this command
starts itself on our managed local server (or on ``PREFECT_API_URL``), with
``--pool`` the workers someone else runs. Parameters are paths and names only;
a passphrase goes by file path (``passphrase_file``) or Secret block name
(``passphrase_secret``), or lives in the workers' environment.

When the run ends, the delivery (with its marker and checksum file) moves to
``processed/`` (completed: published or already processed) or ``failed/``,
beside a ``<name>.reason.txt`` holding one line: the run's own message, which
names paths, counts and rules, never a value. A name taken there gets a UTC time
prefix. If this command stops, deliveries still in the inbox are picked up
again on the next start: runs still going are adopted, finished ones rerun and
find the delivery already processed (its fingerprint names its outputs).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import time
from collections.abc import Callable, Iterator, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest._fs import private_dir, write_private
from ingest.errors import UsageError
from ingest.media.checksums import is_checksum_file
from ingest.settings import Settings

PROCESSED = "processed"
FAILED = "failed"
MARKERS = (".done", ".ready")
SIDECARS = (".sha256", ".md5")
PARTIAL = (".part", ".partial", ".tmp", ".crdownload", ".reason.txt")
DEFAULT_SETTLE = 5.0
DEFAULT_POLL = 2.0
UNPICKED_WARNING = 60.0
"""Seconds a run may wait for a worker before we say so."""

_PREFECT_PREFIX = re.compile(r"^(Flow run encountered an exception: )")


# --------------------------------------------------------------------------- the folder


@dataclass
class _Seen:
    signature: tuple
    since: float
    checked: tuple | None = None
    digest_ok: bool | None = None


@dataclass
class Inbox:
    """The inbox folder: which deliveries have arrived, and where they go when done."""

    root: Path
    settle: float = DEFAULT_SETTLE
    _seen: dict[str, _Seen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        if not self.root.is_dir():
            raise UsageError(f"the inbox {self.root} is not a folder; create it first")
        private_dir(self.root / PROCESSED)
        private_dir(self.root / FAILED)

    # -- what is there

    def candidates(self) -> list[Path]:
        """Every entry at the top of the inbox that is (or will be) a delivery."""
        found = []
        for entry in sorted(self.root.iterdir()):
            name = entry.name
            if name.startswith(".") or name in (PROCESSED, FAILED) \
                    or name.lower().endswith(PARTIAL) or entry.is_symlink():
                continue
            if name.lower().endswith(MARKERS + SIDECARS):
                continue  # a companion (or a marker whose delivery is not there yet)
            if entry.is_file() or entry.is_dir():
                found.append(entry)
        return found

    def companions(self, entry: Path) -> list[Path]:
        return [p for p in (entry.with_name(entry.name + s) for s in MARKERS + SIDECARS)
                if p.is_file()]

    def arrived(self, exclude: Set[Path] = frozenset()) -> tuple[list[tuple[Path, str]],
                                                                   list[tuple[Path, str]]]:
        """Deliveries complete now (with how we know), and ones to fail (with why)."""
        now = time.monotonic()
        ready: list[tuple[Path, str]] = []
        broken: list[tuple[Path, str]] = []
        present = set()
        for entry in self.candidates():
            present.add(entry.name)
            if entry in exclude:
                continue
            try:
                verdict = self._verdict(entry, now)
            except OSError:
                continue  # moved or changing under us: look again next time
            if verdict is None:
                continue
            ok, how = verdict
            (ready if ok else broken).append((entry, how))
        for name in list(self._seen):
            if name not in present:
                del self._seen[name]
        return ready, broken

    def _verdict(self, entry: Path, now: float) -> tuple[bool, str] | None:
        for suffix in MARKERS:
            if entry.with_name(entry.name + suffix).is_file():
                return True, f"marker {entry.name}{suffix}"
        signature = _signature(entry)
        seen = self._seen.get(entry.name)
        if seen is None or seen.signature != signature:
            seen = self._seen[entry.name] = _Seen(signature, now)
        stable = now - seen.since >= self.settle
        if entry.is_file():
            sidecar = next((p for p in (entry.with_name(entry.name + s) for s in SIDECARS)
                            if p.is_file()), None)
            if sidecar is not None:
                key = (signature, _signature(sidecar))
                if seen.checked != key:
                    seen.digest_ok, seen.checked = _sidecar_matches(entry, sidecar), key
                if seen.digest_ok:
                    return True, f"checksum {sidecar.name}"
                if stable:
                    return False, (f"{entry.name}: checksum mismatch against {sidecar.name}; "
                                   "the file is damaged or altered, ask for it again")
                return None
        elif entry.is_dir():
            if seen.checked != signature:
                seen.digest_ok, seen.checked = _checksums_match(entry), signature
            if seen.digest_ok:
                return True, "checksum file"
        if stable:
            return True, f"unchanged for {self.settle:g} s"
        return None

    # -- when done

    def finish(self, entry: Path, ok: bool, reason: str) -> Path:
        """Move ``entry`` and its companions to processed/ or failed/; write the reason."""
        dest_dir = self.root / (PROCESSED if ok else FAILED)
        name = entry.name
        if any((dest_dir / n).exists() for n in _names(name)):
            name = f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{entry.name}"
            while any((dest_dir / n).exists() for n in _names(name)):
                name = f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S.%f')}-{entry.name}"
        companions = self.companions(entry)
        os.rename(entry, dest_dir / name)
        for extra in companions:
            with contextlib.suppress(FileNotFoundError):
                os.rename(extra, dest_dir / (name + extra.name[len(entry.name):]))
        write_private(dest_dir / f"{name}.reason.txt",
                      (" ".join(reason.split()) + "\n").encode("utf-8"))
        self._seen.pop(entry.name, None)
        return dest_dir / name


def _names(name: str) -> list[str]:
    return [name, f"{name}.reason.txt"]


def _signature(entry: Path) -> tuple:
    st = entry.stat()
    if entry.is_file():
        return (st.st_size, st.st_mtime_ns)
    items: list[tuple] = [("", st.st_mtime_ns)]
    for dirpath, dirnames, filenames in os.walk(entry):
        dirnames.sort()
        for name in sorted(filenames + dirnames):
            path = Path(dirpath) / name
            s = path.lstat()
            items.append((path.relative_to(entry).as_posix(), s.st_size, s.st_mtime_ns))
    return tuple(items)


def _file_digest(path: Path, algo: str) -> str:
    digest = hashlib.md5() if algo == "md5" else hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _entries(sumfile: Path) -> list[tuple[str, str]] | None:
    """(name, digest) lines of a checksum file, as the media stage reads them."""
    from ingest.errors import ChecksumError
    from ingest.media import Member
    from ingest.media.checksums import _entries as parse

    try:
        return parse(Member(sumfile.name, sumfile.read_bytes()))
    except ChecksumError:
        return None


def _sidecar_matches(entry: Path, sidecar: Path) -> bool:
    """Whether ``entry`` hashes to the digest in ``sidecar`` (streamed, any size)."""
    found = _entries(sidecar) or []
    digests = [d.lower() for n, d in found if n.lstrip("./") == entry.name] \
        or [d.lower() for _, d in found[:1]]
    return bool(digests) and _file_digest(
        entry, "md5" if len(digests[0]) == 32 else "sha256") == digests[0]


def _checksums_match(folder: Path) -> bool | None:
    """None without a checksum file at the folder's top; else whether every file named
    is there with its digest (streamed, any size)."""
    sums = [p for p in folder.iterdir() if p.is_file() and is_checksum_file(p.name)]
    if not sums:
        return None
    for sumfile in sums:
        entries = _entries(sumfile)
        if not entries:
            return False
        for name, digest in entries:
            target = folder / name.lstrip("./")
            if not target.is_file() or _file_digest(
                    target, "md5" if len(digest) == 32 else "sha256") != digest.lower():
                return False
    return True


# --------------------------------------------------------------------------- serving


@dataclass
class _Run:
    entry: Path
    submitted: float
    warned: bool = False


def reason_of(state: Any) -> tuple[bool, str]:
    """(completed?, one line) from a flow run's final state."""
    message = (state.message or "").strip()
    message = _PREFECT_PREFIX.sub("", message)
    if state.is_completed():
        return True, message or "completed"
    kind = state.type.value.lower()
    return False, f"{kind}: {message}" if message else kind


@dataclass
class Watcher:
    """Submits arrived deliveries as flow runs of ``deployment`` and files them away."""

    inbox: Inbox
    out: Path
    deployment: str
    dataset: str = "reference"
    passphrase_file: str | None = None
    passphrase_secret: str | None = None
    poll: float = DEFAULT_POLL
    say: Callable[[str], None] = print
    runs: dict[Any, _Run] = field(default_factory=dict)
    done: list[tuple[Path, bool, str]] = field(default_factory=list)

    def parameters(self, entry: Path) -> dict[str, Any]:
        params: dict[str, Any] = {"delivery": str(entry), "out": str(self.out),
                                  "dataset": self.dataset}
        if self.passphrase_file:
            params["passphrase_file"] = self.passphrase_file
        if self.passphrase_secret:
            params["passphrase_secret"] = self.passphrase_secret
        return params

    def adopt(self, client: Any) -> None:
        """Runs of our deployment still going for deliveries still in the inbox."""
        from prefect.client.schemas.filters import (
            DeploymentFilter,
            DeploymentFilterId,
            FlowRunFilter,
            FlowRunFilterState,
            FlowRunFilterStateType,
        )
        from prefect.client.schemas.objects import StateType

        dep = client.read_deployment_by_name(self.deployment)
        live = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED]
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                type=FlowRunFilterStateType(any_=live))))
        for run in runs:
            path = Path(str(run.parameters.get("delivery", "")))
            if path.parent == self.inbox.root and path.exists():
                self.runs[run.id] = _Run(path, time.monotonic())
                self.say(f"adopted   {path.name}: flow run {run.name} is still going")

    def submit(self, entry: Path, how: str) -> None:
        from prefect.client.schemas.objects import FlowRun
        from prefect.deployments import run_deployment

        run = run_deployment(self.deployment, parameters=self.parameters(entry), timeout=0,
                             flow_run_name=entry.name, as_subflow=False, tags=["inbox"])
        assert isinstance(run, FlowRun)  # a sync call returns the run itself
        self.runs[run.id] = _Run(entry, time.monotonic())
        self.say(f"submitted {entry.name} ({how}): flow run {run.id}")

    def step(self, client: Any) -> None:
        """One pass: file away finished runs, submit newly arrived deliveries."""
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        if self.runs:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(self.runs))))
            for run in runs:
                mine = self.runs[run.id]
                if run.state is None:
                    continue
                if run.state.is_final():
                    ok, reason = reason_of(run.state)
                    self._finish(mine.entry, ok, reason)
                    del self.runs[run.id]
                elif run.state.is_scheduled() and not mine.warned \
                        and time.monotonic() - mine.submitted > UNPICKED_WARNING:
                    mine.warned = True
                    self.say(f"waiting   {mine.entry.name}: no worker has taken it for "
                             f"{UNPICKED_WARNING:g} s; is a worker running for the pool?")
        busy = {r.entry for r in self.runs.values()}
        ready, broken = self.inbox.arrived(exclude=busy)
        for entry, why in broken:
            self._finish(entry, False, why)
        for entry, how in ready:
            self.submit(entry, how)

    def _finish(self, entry: Path, ok: bool, reason: str) -> None:
        try:
            moved = self.inbox.finish(entry, ok, reason)
        except FileNotFoundError:
            self.say(f"gone      {entry.name}: removed from the inbox before it was filed")
            return
        self.done.append((moved, ok, reason))
        self.say(f"{'processed' if ok else 'failed   '} {entry.name} -> "
                 f"{moved.parent.name}/{moved.name}: {reason}")

    def idle(self) -> bool:
        return not self.runs and not self.inbox.candidates()


def serve(settings: Settings, inbox: str | Path, out: str | Path, *, dataset: str = "reference",
          pool: str | None = None, workers: int = 2, deployment: str | None = None,
          settle: float = DEFAULT_SETTLE, poll: float = DEFAULT_POLL,
          passphrase_file: str | None = None, passphrase_secret: str | None = None,
          until_empty: bool = False, say: Callable[[str], None] = print) -> Watcher:
    """Watch ``inbox`` until interrupted (or, with ``until_empty``, until it is empty)."""
    from flows import deploy
    from flows.server import _external_api_url, keep_alive, use_prefect
    from ingest.pipeline import datasets_of

    datasets_of(dataset)  # a wrong schema (or bundle) fails now, not in every run
    if passphrase_file:
        passphrase_file = str(Path(passphrase_file).resolve())
        if not Path(passphrase_file).is_file():
            raise UsageError(f"the passphrase file {passphrase_file} does not exist")
    box = Inbox(Path(inbox), settle=settle)
    out = Path(out).resolve()
    if box.root == out or out.is_relative_to(box.root):
        raise UsageError("the output folder must not be inside the inbox")
    private_dir(out)
    local = pool is None
    if local and workers < 1:
        raise UsageError("--workers must be at least 1 (or give --pool to use workers run "
                         "elsewhere)")
    external = _external_api_url()
    use_prefect(settings)
    if deployment:
        name = deploy.deployment_name(deployment)
        deployed_on = deploy.deployment_pool(name)
        if pool and pool != deployed_on:
            raise UsageError(f"the deployment {name} runs on pool {deployed_on!r}, not {pool!r}")
        pool = deployed_on
        deploy.ensure_pool(pool, create=local)
    else:
        pool = pool or deploy.LOCAL_POOL
        deploy.ensure_pool(pool, create=local)
        with _quiet_stdout():
            name = deploy.deploy(pool)
    names = [f"{pool}-{os.getpid()}-{i + 1}" for i in range(workers if local else 0)]
    procs = deploy.start_workers(len(names), pool, settings, names)
    where = external or "the local Prefect server"
    say(f"ingest serve: watching {box.root} -> {out}; deployment {name} on pool {pool} at "
        f"{where}; " + (f"{workers} local worker(s)" if local else "workers run elsewhere"))
    watcher = Watcher(box, out, name, dataset, passphrase_file, passphrase_secret, poll, say)
    stop = _stop_on_signals()
    try:
        from prefect.client.orchestration import get_client

        with (keep_alive(settings) if not external else contextlib.nullcontext()), \
                get_client(sync_client=True) as client:
            watcher.adopt(client)
            while not stop():
                watcher.step(client)
                if until_empty and watcher.idle():
                    break
                for i, proc in enumerate(procs):
                    if proc.poll() is not None:
                        say(f"worker {names[i]} exited with status {proc.returncode}; "
                            f"starting it again (log: {settings.prefect_home}/workers)")
                        procs[i] = deploy.start_workers(1, pool, settings, [names[i]])[0]
                _sleep(poll, stop)
    except KeyboardInterrupt:
        say("ingest serve: interrupted; deliveries still in the inbox are picked up on the "
            "next start")
    finally:
        deploy.stop_workers(procs)
    return watcher


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Prefect's deploy() prints a table; our serve prints its own lines."""
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        yield


def _stop_on_signals() -> Callable[[], bool]:
    flag = {"stop": False}

    def handler(signum: int, frame: object) -> None:
        flag["stop"] = True

    with contextlib.suppress(ValueError):  # not the main thread: rely on KeyboardInterrupt
        signal.signal(signal.SIGTERM, handler)
    return lambda: flag["stop"]


def _sleep(seconds: float, stop: Callable[[], bool]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop():
        time.sleep(min(0.2, seconds))

