"""The audit log as an auditor checks it, without our code.

Written for the mutants of ``ingest/audit.py`` that the other tests let live
(``scripts/mutants audit``); each test states what an auditor or an operator relies on.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import socket
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from ingest import audit
from ingest.errors import OutputError


def _independent_hash(line: bytes) -> str:
    """The documented rule: SHA-256 over the record's canonical JSON (keys sorted, no
    spaces), without its own ``hash``."""
    record = json.loads(line)
    del record["hash"]
    return hashlib.sha256(json.dumps(record, sort_keys=True, separators=(",", ":"))
                          .encode()).hexdigest()


def test_an_auditor_can_check_the_chain_with_the_documented_rule(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    for n in range(3):
        audit.append(log, "run", delivery=f"d{n}", rows_in=10 + n)
    prev = audit.GENESIS
    for line in log.read_bytes().splitlines():
        record = json.loads(line)
        assert record["prev"] == prev
        assert record["hash"] == _independent_hash(line)
        prev = record["hash"]


def test_each_record_says_when_who_where_and_what(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    before = datetime.now().astimezone()
    entry = audit.append(log, "rotate", role="general")
    record = json.loads(log.read_bytes())
    assert record == entry
    assert record["event"] == "rotate" and record["role"] == "general"
    assert record["user"] == getpass.getuser()
    assert record["host"] == socket.gethostname()
    when = datetime.fromisoformat(record["time"])
    assert when.utcoffset() == timedelta(0)  # UTC, whatever the machine's zone
    assert abs(when - before) < timedelta(minutes=1)


def test_verify_counts_the_lines(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    assert audit.verify(log) == 0  # no log yet
    log.write_bytes(b"")
    assert audit.verify(log) == 0  # an empty log holds no events
    for n in range(1, 4):
        audit.append(log, "run", n=n)
        assert audit.verify(log) == n


def test_a_damaged_line_is_named(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    audit.append(log, "run")
    with log.open("ab") as fh:
        fh.write(b"{not json\n")
    with pytest.raises(OutputError) as caught:
        audit.verify(log)
    assert str(caught.value) == (f"audit log {log}: line 2 is not JSON: the log was edited "
                                 "or damaged")


def test_a_removed_line_is_named_with_the_line_before(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    for n in range(4):
        audit.append(log, "run", n=n)
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:2] + lines[3:]))
    with pytest.raises(OutputError) as caught:
        audit.verify(log)
    assert str(caught.value) == (f"audit log {log}: line 3 does not follow line 2: a line "
                                 "was removed, inserted or reordered")


def test_a_short_write_leaves_the_log_as_it_was_and_says_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "audit.log"
    audit.append(log, "run", outcome="published")
    before = log.read_bytes()
    real_write = os.write

    def short_write(fd: int, data: bytes) -> int:  # what a nearly full disk does
        return real_write(fd, bytes(data)[: len(data) // 2])

    monkeypatch.setattr(os, "write", short_write)
    with pytest.raises(OutputError) as caught:
        audit.append(log, "run", outcome="published")
    monkeypatch.setattr(os, "write", real_write)
    assert str(caught.value) == (f"audit log {log}: could not append (No space left on "
                                 "device); nothing was recorded")
    assert log.read_bytes() == before


def test_an_os_error_without_a_text_is_named_by_its_kind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An error raised with an errno alone (as some file-system layers do) still says
    what went wrong, and the log is left as it was."""
    log = tmp_path / "audit.log"
    audit.append(log, "run", outcome="published")
    before = log.read_bytes()

    def failing_fsync(fd: int) -> None:
        raise PermissionError(13)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OutputError) as caught:
        audit.append(log, "run", outcome="published")
    monkeypatch.undo()
    assert str(caught.value) == (f"audit log {log}: could not append (PermissionError); "
                                 "nothing was recorded")
    assert log.read_bytes() == before
