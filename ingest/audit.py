"""An append-only audit trail: one hash-chained JSON line per event.

Each line carries the SHA-256 of the line before it (``prev``) and its own hash
over its canonical JSON (``hash``), so an edited, removed, inserted or reordered
line breaks the chain at that point. Lines hold ids, hashes and counts only.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import json
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._fs import FILE_MODE, private_dir
from .errors import OutputError

GENESIS = "0" * 64


def _digest(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"))
                          .encode()).hexdigest()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[int]:
    private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def append(path: Path, event: str, **fields: Any) -> dict[str, Any]:
    """Append one event, chained to the last line. Safe against concurrent writers."""
    with _locked(path) as fd:
        last = _last_line(fd)
        prev = json.loads(last)["hash"] if last else GENESIS
        entry = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                 "event": event, "user": getpass.getuser(), "host": socket.gethostname(),
                 **fields, "prev": prev}
        entry["hash"] = _digest(entry)
        _write_line(fd, json.dumps(entry, sort_keys=True).encode() + b"\n", path)
    return entry


def _write_line(fd: int, line: bytes, path: Path) -> None:
    """All of ``line`` or nothing: a short write (a full disk) is cut back off."""
    start = os.lseek(fd, 0, os.SEEK_END)
    try:
        if os.write(fd, line) != len(line):  # a short write: the disk is (nearly) full
            raise OSError(28, "No space left on device")
        os.fsync(fd)
    except OSError as exc:
        os.ftruncate(fd, start)
        raise OutputError(f"audit log {path}: could not append "
                          f"({exc.strerror or type(exc).__name__}); nothing was recorded") from None


def _last_line(fd: int) -> bytes:
    size = os.lseek(fd, 0, os.SEEK_END)
    if size == 0:
        return b""
    chunk = min(size, 1 << 16)
    os.lseek(fd, size - chunk, os.SEEK_SET)
    data = os.read(fd, chunk).rstrip(b"\n")
    return data.rsplit(b"\n", 1)[-1]


def verify(path: Path) -> int:
    """Check the whole chain; returns the number of lines, or raises naming the line."""
    if not path.exists():
        return 0
    prev = GENESIS
    count = 0
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            entry = json.loads(raw)
        except ValueError:
            raise OutputError(f"audit log {path}: line {number} is not JSON: the log was "
                              "edited or damaged") from None
        if entry.get("prev") != prev:
            raise OutputError(f"audit log {path}: line {number} does not follow line "
                              f"{number - 1}: a line was removed, inserted or reordered")
        if entry.get("hash") != _digest(entry):
            raise OutputError(f"audit log {path}: line {number} was edited")
        prev = entry["hash"]
        count = number
    return count
