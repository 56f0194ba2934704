"""Private file helpers: owner-only permissions and atomic writes; memory files for tools.

Tools that only take a path (7z, gpg, mdbtools) get an anonymous memory file
(``memfd``) that the child inherits and opens as ``/proc/self/fd/N``; what they
write back is received straight into the final ``bytes`` (:class:`ChildOutput`):
plaintext never touches a disk.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar

from .errors import ToolStalled
from .progress import tool_input

T = TypeVar("T")

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) owner-only; tighten it if it exists."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    os.chmod(path, DIR_MODE)
    return path


@contextlib.contextmanager
def create_private(path: Path) -> Iterator[BinaryIO]:
    """A new file, owner-only, never an existing one nor a link; synced to disk on close."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    with os.fdopen(fd, "wb") as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created owner-only), blocking until free."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp name, fsync, rename), mode 0600."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with create_private(tmp) as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)



_CHILD_VARIABLES = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR")


def child_environment(*prefixes: str, **extra: str) -> dict[str, str]:
    """What every child process we start gets: the variables a tool needs to run
    (``PATH``, ``HOME``, locale, time zone, ``TMPDIR``), the tool's own settings
    (names starting with one of ``prefixes``) and ``extra``; nothing else, so no
    passphrase, key or API token in our environment (``INGEST_*``,
    ``PREFECT_API_KEY``, a cloud credential) reaches a tool."""
    kept = {k: v for k, v in os.environ.items()
            if k in _CHILD_VARIABLES or k.startswith(("LC_", *prefixes))}
    return kept | extra


def widen_pipe(fd: int, size: int = 1 << 20) -> bool:
    """Make a pipe hold ``size`` bytes (fewer wake-ups); whether it could be done
    (the system caps it per user; the default 64 KiB works too, only slower)."""
    try:
        return fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size) >= size
    except OSError:
        return False


MEMORY_FILES = os.path.isdir("/proc/self/fd")
"""Whether a child can open an inherited descriptor by path (Linux /proc)."""

_RECEIVE_CHUNK = 1 << 30
"""Largest single receive: the kernel moves at most about 2 GiB per call."""
_PUMP_CHUNK = 1 << 20


def memory_file(data: bytes, name: str) -> int:
    """An anonymous in-memory file holding ``data``, positioned at its start.

    Close-on-exec: a child gets it only through ``pass_fds`` or as one of its
    standard streams, and then reads it as ``/proc/self/fd/N`` or from stdin.
    """
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_memory_file(fd: int, limit: int) -> bytes:
    """The first ``limit`` bytes of a memory file (a child's messages, say)."""
    return os.pread(fd, min(os.fstat(fd).st_size, limit), 0)


def secret_pipe(secret: str | None) -> int:
    """The read end of a pipe that holds ``secret`` as one line (nothing if None),
    then its end: a child reads it once, never from argv or the environment."""
    read_end, write_end = os.pipe()
    try:
        if secret is not None:
            os.write(write_end, secret.encode() + b"\n")
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    return read_end


def run_tool(cmd: list[str], receive: Callable[[ChildOutput], T], *, stdin: int,
             env: dict[str, str], messages_limit: int, pass_fds: tuple[int, ...] = (),
             stall_after: float | None = None, **popen: Any) -> tuple[int, T, bytes]:
    """Run ``cmd``, its stdout received in memory by ``receive`` while it works
    (:class:`ChildOutput`) and its stderr kept in a memory file.

    Returns the exit status, what ``receive`` returned and the first
    ``messages_limit`` bytes of the messages. If ``receive`` raises, the child is
    stopped and reaped before the error goes on. With ``stall_after``, a child
    that writes nothing for that many seconds is killed and :class:`ToolStalled`
    names it (a hung tool must not hold a run for ever).
    """
    with contextlib.ExitStack() as stack:
        log = os.memfd_create("ingest-tool-messages", os.MFD_CLOEXEC)
        stack.callback(os.close, log)
        output = stack.enter_context(ChildOutput())
        stack.enter_context(tool_input(stdin))  # how far the tool has read its input
        try:
            proc = subprocess.Popen(cmd, stdin=stdin, stdout=output.child_end, stderr=log,
                                    pass_fds=pass_fds, env=env, **popen)
        finally:
            output.started()
        watchdog = Watchdog(proc, output, stall_after) if stall_after else None
        try:
            received = receive(output)
        except BaseException:
            output.stop(proc)
            if watchdog is not None and watchdog.stop():
                raise watchdog.error(cmd[0]) from None
            raise
        code = proc.wait()
        if watchdog is not None and watchdog.stop():
            raise watchdog.error(cmd[0])
        return code, received, read_memory_file(log, messages_limit)


class Progressing(Protocol):
    last_progress: float
    """``time.monotonic()`` when the child's output last moved."""


class OutputActivity:
    """When a child's output last moved, for a reader that reads the pipe itself
    (:class:`ChildOutput` keeps its own)."""

    def __init__(self) -> None:
        self.last_progress = time.monotonic()

    def moved(self) -> None:
        self.last_progress = time.monotonic()


class Watchdog:
    """Kills a child whose output has not moved for ``seconds`` (killing it ends its
    output, so a receiver waiting on it returns). One rule for every child tool:
    progress is output, and the time is the one setting ``tool_stall_seconds``."""

    def __init__(self, proc: subprocess.Popen[bytes], output: Progressing,
                 seconds: float) -> None:
        self._proc, self._output, self.seconds = proc, output, seconds
        self._done = threading.Event()
        self.fired = False
        self._thread = threading.Thread(target=self._watch, name="child-watchdog",
                                        daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        step = min(1.0, self.seconds / 4)
        while not self._done.wait(step):
            if self._proc.poll() is not None:
                return
            if time.monotonic() - self._output.last_progress > self.seconds:
                self.fired = True
                self._proc.kill()
                return

    def stop(self) -> bool:
        """End the watch; True when it had to stop the child."""
        self._done.set()
        self._thread.join()
        return self.fired

    def error(self, command: str) -> ToolStalled:
        name = os.path.basename(command)
        return ToolStalled(f"{name} made no progress for {self.seconds:g} s and was stopped; "
                           "nothing was published. Run again; if it stalls again, the "
                           "input or the tool is at fault (INGEST_TOOL_STALL_SECONDS sets "
                           "the time)")


class ChildOutput:
    """A child's stdout, received in memory straight into buffers of the final size.

    The child writes into a 1 MiB pipe; a thread splices the pipe into a socket
    (the kernel moves pages, nothing is copied), and :meth:`receive` asks the
    socket for a whole buffer at once (``MSG_WAITALL``): the kernel fills it
    while the child works, on the other core, and the ``bytes`` needs no
    joining copy. Reading a pipe in 32 KiB pieces and joining them (what
    ``subprocess.run`` does), or letting the child write to a memory file read
    back afterwards, each cost 20-40 ms more on 40 MB; gpg writing 8 KiB at a
    time straight into the socket had a slower and more erratic receiver.

    Use as a context manager: pass :attr:`child_end` as the child's stdout,
    call :meth:`started` once it runs, then receive; leaving closes everything.
    To stop before the end, call :meth:`abandon` *before* killing and reaping
    the child: a splice blocked on our full socket holds the pipe, and a dying
    child waits for the pipe.
    """

    def __init__(self) -> None:
        self._read_end, self.child_end = os.pipe()
        self.last_progress = time.monotonic()
        """When the child's output last moved (the watchdog's measure of progress)."""
        try:
            widen_pipe(self.child_end, _PUMP_CHUNK)
            self._ours, self._theirs = socket.socketpair()
        except BaseException:
            os.close(self._read_end)
            os.close(self.child_end)
            raise
        # Started only once our copy of the child's end is closed: a splice blocked on
        # our full socket holds the pipe's lock, and closing an end of that pipe then
        # waits for it for ever, before we ever read (a fast child, a slow parent).
        self._pump = threading.Thread(target=self._run_pump, name="child-output", daemon=True)

    def __enter__(self) -> ChildOutput:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.started()
        self.abandon()
        self._pump.join()

    def abandon(self) -> None:
        """Stop receiving: the pump's next write fails, the child's next write too."""
        self._ours.close()

    def stop(self, child: subprocess.Popen[bytes]) -> None:
        """Stop receiving, then end and reap ``child`` (in the order that cannot hang)."""
        self.abandon()
        child.kill()
        child.wait()

    def started(self) -> None:
        """Drop our copy of the child's end, so the child's exit ends the stream."""
        if self.child_end >= 0:
            os.close(self.child_end)
            self.child_end = -1
            self._pump.start()

    def receive(self, size: int) -> bytes:
        """Up to ``size`` bytes: fewer only when the child's output ended.

        The buffer's unused tail is never touched, so a generous ``size`` costs
        address space only.
        """
        parts: list[bytes] = []
        got = 0
        while got < size:
            chunk = self._ours.recv(min(size - got, _RECEIVE_CHUNK), socket.MSG_WAITALL)
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def receive_all(self, hint: int) -> bytes:
        """Everything until the child's output ends; ``hint``: the size expected."""
        hint = max(hint, 1)
        first = self.receive(hint)
        if len(first) < hint:
            return first
        parts = [first]
        while chunk := self.receive(hint):
            parts.append(chunk)
        return b"".join(parts)

    def _run_pump(self) -> None:
        source, sink = self._read_end, self._theirs.fileno()
        try:
            while os.splice(source, sink, _PUMP_CHUNK):
                self.last_progress = time.monotonic()
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # no splice between these: copy instead
                with contextlib.suppress(OSError):
                    while chunk := os.read(source, _PUMP_CHUNK):
                        self.last_progress = time.monotonic()
                        self._theirs.sendall(chunk)
            # else our socket was closed: we stopped reading, the child will stop too
        finally:
            os.close(source)
            self._theirs.close()
