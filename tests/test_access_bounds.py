"""What mdbtools may write for a database is bounded: a runaway export is stopped.

With the real mdbtools: a database whose table declares fewer rows than it holds
(its definition page's row count made smaller, as damage would) is refused at the
batch that passes the declared count, not after the whole export; and output past
the limit the delivery's settings derive is refused naming the tool and table.
"""

from __future__ import annotations

import lzma
import os
import struct
import time
from pathlib import Path

import pytest

from ingest.errors import ReadError
from ingest.media import Member
from ingest.readers import read_member
from ingest.readers.access import EXPORT_BATCH_BYTES, Runaway, _database
from schemas.reference import DATASET

from conftest import data_fixture

PAGE = 4096
"""Jet 4 / ACE page size."""


def _declaring(data: bytes, rows: int, declared: int) -> bytes:
    """The database with the table that declares ``rows`` rows declaring ``declared``:
    the row count of its definition page (type 0x02, count at offset 16) rewritten."""
    pages = [p for p in range(0, len(data), PAGE)
             if data[p:p + 2] == b"\x02\x01" and struct.unpack_from("<I", data, p + 16)[0] == rows]
    assert len(pages) == 1, pages
    damaged = bytearray(data)
    struct.pack_into("<I", damaged, pages[0] + 16, declared)
    return bytes(damaged)


def _no_value(message: str) -> None:
    for value in ("CANARY", "PCAFE", "P0", "2015-", "Doña"):
        assert value not in message


@pytest.fixture(scope="module")
def big() -> bytes:
    """The 400k-row database (49 MB): its export is a dozen batches."""
    return lzma.decompress(data_fixture("access", "reference_400k.accdb.xz").read_bytes())


def test_more_rows_than_declared_stop_the_export_at_that_batch(big: bytes) -> None:
    damaged = _declaring(big, 400_000, 1_000)
    taken = []
    with _database(damaged, "big.accdb") as db:
        assert db.count("CASES") == 1_000  # mdbtools reports the damaged count
        names = [c.name for c in db.tables()["CASES"]]
        with pytest.raises(Runaway) as raised:
            db.export("CASES", names, lambda batch: taken.append(batch.height), 1_000)
    message = str(raised.value)
    assert message.startswith("big.accdb: mdb-export gave more rows for table CASES than "
                              "the 1,000 the database declares for it; it was stopped")
    _no_value(message)
    # stopped within the batches read ahead, not after 400,000 rows
    assert 1_000 < sum(taken) < 400_000 // 3
    assert len(taken) <= 4, taken


def test_a_table_declaring_fewer_rows_is_refused_by_the_reader() -> None:
    data = data_fixture("access", "reference_20k.accdb").read_bytes()
    with pytest.raises(ReadError, match="^r.accdb: mdb-export gave more rows for table "
                                        "CASES than the 500 the database declares") as raised:
        read_member(Member("r.accdb", _declaring(data, 20_000, 500)), DATASET)
    _no_value(str(raised.value))
    assert raised.value.__cause__ is None


def test_the_undamaged_database_reads_with_the_count_checked_first() -> None:
    data = data_fixture("access", "reference_20k.accdb").read_bytes()
    assert read_member(Member("r.accdb", data), DATASET).rows == 20_000


def test_output_past_the_settings_limit_stops_the_real_mdb_export(
        monkeypatch: pytest.MonkeyPatch) -> None:
    data = data_fixture("access", "reference_20k.accdb").read_bytes()  # 3.2 MB, CSV ~3.3 MB
    monkeypatch.setenv("INGEST_MAX_EXPANDED_BYTES", str(2 << 20))
    with pytest.raises(ReadError, match=r"^r.accdb: mdb-export wrote more than 2,097,152 "
                                        r"bytes for table CASES, more than a database of "
                                        r"3,223,552 bytes can hold") as raised:
        read_member(Member("r.accdb", data), DATASET)
    _no_value(str(raised.value))
    monkeypatch.setenv("INGEST_MAX_EXPANDED_BYTES", str(4 << 20))  # room for the CSV
    assert read_member(Member("r.accdb", data), DATASET).rows == 20_000


def test_the_limit_is_the_expansion_ratio_times_the_size(
        monkeypatch: pytest.MonkeyPatch) -> None:
    data = data_fixture("access", "reference_20k.accdb").read_bytes()
    monkeypatch.setenv("INGEST_MAX_EXPANSION_RATIO", "0.5")
    with _database(data, "r.accdb") as db:
        assert db.output_limit() == len(data) // 2
        monkeypatch.setenv("INGEST_MAX_EXPANSION_RATIO", "0.01")
        assert db.output_limit() == 1 << 20  # judged past a MiB, as for containers
        monkeypatch.setenv("INGEST_MAX_EXPANDED_BYTES", "1000")
        assert db.output_limit() == 1000
    monkeypatch.setenv("INGEST_MAX_EXPANSION_RATIO", "0.5")
    monkeypatch.delenv("INGEST_MAX_EXPANDED_BYTES")
    with pytest.raises(ReadError, match="mdb-export wrote more than"):
        read_member(Member("r.accdb", data), DATASET)


# --- an export that never ends ------------------------------------------------------------

def _endless_mdb_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> Path:
    """A stand-in ``mdb-export`` first on the PATH: it records its process id, then
    runs ``script`` (sh), which writes for ever."""
    pid = tmp_path / "pid"
    tool = tmp_path / "mdb-export"
    tool.write_text(f"#!/bin/sh\necho $$ > '{pid}'\n{script}\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    return pid


def _ended(pid_file: Path) -> bool:
    try:
        os.kill(int(pid_file.read_text()), 0)
    except ProcessLookupError:
        return True
    return False


ENDLESS = {
    # records for ever: more rows than declared
    "rows": ("exec yes '1,\"a\",,,,,,,,'", 20_000, "mdb-export gave more rows for table CASES "
                                              "than the 20,000"),
    # records for ever, and no count to hold them to: the byte limit
    "bytes": ("exec yes '1,\"a\",,,,,,,,'", None, "mdb-export wrote more than 67,108,864 bytes "
                                             "for table CASES"),
    # one quoted value that never closes: no record ever ends, so no batch is parsed
    "open-quote": ("printf '1,\"'; exec yes a", 20_000, "mdb-export wrote more than "
                                                      "67,108,864 bytes for table CASES"),
    # a batch that cannot be parsed while the child writes on: the wait for it to end
    # (to report its own failure first) is bounded too
    "unparsable": ("exec yes '\"a'", 20_000, "mdb-export wrote more than 67,108,864 "
                                            "bytes for table CASES"),
}


@pytest.mark.parametrize("case", list(ENDLESS))
def test_an_export_that_writes_for_ever_is_stopped_and_ended(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    """A STAND-IN for mdb-export (a script first on the PATH that writes without end,
    like ``yes``), because no real file makes mdbtools loop: mdb-export reads a
    table's rows from the data pages its usage map lists, a scan that only moves
    forward over a finite map (mdbtools' ``src/libmdb/map.c``), so a damaged file can
    make it write much more than it should (the tests above, with the real mdbtools)
    but not for ever. The stand-in never stalls, so the stall watchdog
    never fires; the bounds must stop it, and the child must be ended."""
    script, declared, message = ENDLESS[case]
    monkeypatch.setenv("INGEST_MAX_EXPANDED_BYTES", str(64 << 20))
    data = data_fixture("access", "reference_20k.accdb").read_bytes()
    with _database(data, "r.accdb") as db:
        names = [c.name for c in db.tables()["CASES"]]
        pid = _endless_mdb_export(tmp_path, monkeypatch, script)
        taken: list[int] = []
        started = time.monotonic()
        with pytest.raises(Runaway, match=f"^r.accdb: {message}"):
            db.export("CASES", names, lambda batch: taken.append(batch.height), declared)
        assert time.monotonic() - started < 60
    assert _ended(pid)
    # bounded work: at most the limit's bytes were parsed
    assert sum(taken) * len('1,"a",,,,,,,,\n') <= (64 << 20) + EXPORT_BATCH_BYTES
