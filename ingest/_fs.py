"""Private file helpers: owner-only permissions and atomic writes; memory files for tools.

Tools that only take a path (7z, gpg, mdbtools) get an anonymous memory file
(``memfd``) that the child inherits and opens as ``/proc/self/fd/N``; what they
write back comes through a socket, received straight into the final ``bytes``:
plaintext never touches a disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

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


MEMORY_FILES = os.path.isdir("/proc/self/fd")
"""Whether a child can open an inherited descriptor by path (Linux /proc)."""

_RECEIVE_CHUNK = 1 << 30
"""Largest single receive: the kernel moves at most about 2 GiB per call."""


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


def receive(sock: socket.socket, size: int) -> bytes:
    """Up to ``size`` bytes from a stream socket: fewer only at its end.

    ``MSG_WAITALL`` lets the kernel fill one buffer of ``size`` bytes as the
    child writes (on the other core), so the result needs no joining copy; the
    buffer's unused tail is never touched, so a generous ``size`` costs nothing.
    """
    parts: list[bytes] = []
    got = 0
    while got < size:
        chunk = sock.recv(min(size - got, _RECEIVE_CHUNK), socket.MSG_WAITALL)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    if len(parts) == 1:
        return parts[0]
    return b"".join(parts)


def receive_all(sock: socket.socket, hint: int) -> bytes:
    """Everything until the peer closes; ``hint`` is the expected size (may be short)."""
    first = receive(sock, max(hint, 1))
    if len(first) < max(hint, 1):
        return first  # the peer closed before the buffer was full
    rest = [first]
    while chunk := receive(sock, max(hint, 1 << 20)):
        rest.append(chunk)
    return b"".join(rest)
