"""Access reader: the reference databases against their truth, and real-world files."""

from __future__ import annotations

import contextlib
import hashlib
import json
import lzma
import os
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from ingest.errors import DecryptionError, ReadError, SchemaMismatchError
from ingest.media import Member
from ingest.readers import access, read_member, reader_for
from ingest.readers.access import _database, list_tables, password_encrypted, read_table, sniff
from ingest.schema import Column
from ingest.validate import ValidationResult, validate
from schemas.reference import DATASET

FIXTURES = Path(__file__).parent / "data" / "access"
ENCRYPTED_MESSAGE = ("the Access database is encrypted/password-protected, which mdbtools "
                     "cannot read; ask the sender for an unencrypted export (or CSV)")

# what the fixtures README reports for each third-party file (tables and rows)
THIRDPARTY = {
    "adox_jet4.mdb": {},
    "complexDataTestV2007.accdb": {"Table1": 4},
    "extDateTestV2019.accdb": {"Table1": 9},
    "fixedNumericTestV2000.mdb": {"test": 1},
    "fixedTextTestV2003.mdb": {"users": 2},
    "oldDatesV2007.accdb": {"Table1": 4},
    "test2V1997.mdb": {"MSP_PROJECTS": 1},
    "test2V2000.mdb": {"MSP_PROJECTS": 1},
    "testEmoticonsV2010.accdb": {"data": 80},
    "testUnicodeCompV2003.mdb": {"Table": 8},
    "testV1997.mdb": {"Table1": 2, "Table2": 0, "Table3": 0, "Table4": 0},
    "testV2010.accdb": {"Table1": 2, "Table2": 0, "Table3": 0, "Table4": 0},
    "encrypted/db97-enc.mdb": {"Table1": 2},
    "encrypted/db-enc.mdb": {"Table1": 2},
}
PASSWORD_PROTECTED = ["encrypted/db2007-oldenc.accdb", "encrypted/db2007-enc.accdb",
                      "encrypted/db2013-enc.accdb", "encrypted/db-nonstandard.accdb"]
UNEXPORTABLE = {"complexDataTestV2007.accdb": "VersionHistory",  # multi-value history
                "extDateTestV2019.accdb": "DateExt"}           # Date/Time Extended


def fixture(name: str) -> bytes:
    path = FIXTURES / name
    if not path.is_file():
        pytest.fail(f"fixture {path} is missing from the repository")
    return path.read_bytes()


def truth(name: str) -> dict:
    return json.loads(fixture(name).decode())


def clean_digest(accepted: pl.DataFrame) -> str:
    """The truth file's digest of the clean rows (see its ``clean_digest.how``)."""
    lines = []
    for r in accepted.iter_rows(named=True):
        comment = (r["comments"] or "").replace("\r\n", "\n").replace("\r", "\n")
        lab = "" if r["lab_value"] is None else f"{r['lab_value']:.2f}"
        lines.append("|".join([
            r["case_id"], r["person_id"], r["birth_date"].isoformat(), r["sex"],
            r["county_fips"], r["report_date"].isoformat(), r["diagnosis_code"], lab,
            "true" if r["hospitalized"] else "false",
            hashlib.sha256(comment.encode()).hexdigest()]))
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


def check_against_truth(result: ValidationResult, expected: dict) -> None:
    assert result.rows_in == expected["rows"]
    assert result.rows_accepted == expected["expected"]["rows_clean"]
    assert result.rows_quarantined == expected["expected"]["rows_quarantined"]
    quarantined = dict(result.quarantined.select("_row", "_first_row").iter_rows())
    assert set(quarantined) == {bad["row"] for bad in expected["bad_rows"]}
    for bad in expected["bad_rows"]:
        if "duplicate_of_row" in bad:
            assert quarantined[bad["row"]] == bad["duplicate_of_row"]
    canaries = {c["pers_id"] for c in expected["canaries"]}
    assert canaries <= set(result.accepted["person_id"].to_list())
    assert clean_digest(result.accepted) == expected["clean_digest"]["sha256"]


# --- the reference delivery ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["reference_20k.mdb", "reference_20k.accdb"])
def test_reference_databases_give_exactly_the_truths_clean_table(name: str) -> None:
    expected = truth("reference_20k.truth.json")
    source = read_member(Member(name, fixture(name)), DATASET)
    assert source.format == name.rsplit(".", 1)[1]
    assert source.rows == expected["rows"]
    result = validate(source, DATASET, date.fromisoformat(expected["delivery_date"]))
    check_against_truth(result, expected)


def test_access_types_are_kept_and_impossible_dates_stay_unparseable() -> None:
    mdb = read_member(Member("r.mdb", fixture("reference_20k.mdb")), DATASET).frame
    accdb = read_member(Member("r.accdb", fixture("reference_20k.accdb")), DATASET).frame
    # Long Integer and Yes/No in the .mdb, Text in the .accdb
    assert mdb.schema["CASE_ID"] == pl.Int64 and mdb.schema["HOSP_YN"] == pl.Boolean
    assert accdb.schema["CASE_ID"] == pl.Utf8 and accdb.schema["HOSP_YN"] == pl.Utf8
    for frame in (mdb, accdb):
        assert frame.schema["RPT_DT"] == pl.Date and frame.schema["LAB_VAL"] == pl.Float64
        # the DOB before 1900 that mdbtools prints as 1900-01-00 keeps the column text:
        # every other date in the schema's format, that one as printed (not a date)
        assert frame.schema["DOB"] == pl.Utf8
        assert frame["DOB"][12376] == "1900-01-00 00:00:00"
        assert frame["DOB"].str.strptime(pl.Date, "%m/%d/%Y", strict=False).null_count() == 1
        # 16 printed digits (9.039999999999999) come back as the value entered
        lab = frame["LAB_VAL"].drop_nulls()
        assert (lab == lab.round(2)).all()
    assert mdb.drop("CASE_ID", "HOSP_YN").equals(accdb.drop("CASE_ID", "HOSP_YN"))


@pytest.mark.slow
def test_the_400k_database_gives_exactly_the_truths_clean_table() -> None:
    expected = truth("reference_400k.truth.json")
    data = lzma.decompress(fixture("reference_400k.accdb.xz"))  # in memory only
    source = read_member(Member("reference_400k.accdb", data), DATASET)
    result = validate(source, DATASET, date.fromisoformat(expected["delivery_date"]))
    check_against_truth(result, expected)


# --- which table --------------------------------------------------------------------------

def test_the_table_is_found_by_name_in_any_case_or_by_its_columns() -> None:
    data = fixture("reference_20k.accdb")
    for table in ("CASES", "cases", None, "NO_SUCH_TABLE"):
        source = read_member(Member("r.accdb", data), replace(DATASET, table=table))
        assert source.rows == 20_000, table
    counties = replace(DATASET, name="counties", table=None, unique=(), columns=(
        Column("CNTY_FIPS", "county_fips", "string", width=5),
        Column("NAME", "name", "string")))
    assert read_member(Member("r.accdb", data), counties).rows == 3_221


def test_no_matching_table_is_a_schema_mismatch_naming_the_tables() -> None:
    other = replace(DATASET, name="other", table=None,
                    columns=(Column("PATIENT", "patient", "string"),))
    with pytest.raises(SchemaMismatchError, match=r"tables: CASES, COUNTIES"):
        read_member(Member("r.mdb", fixture("reference_20k.mdb")), other)


# --- real databases from elsewhere, encrypted and damaged ones -----------------------------

def mdbtools_report(path: Path) -> dict[str, int]:
    tables = subprocess.run(["mdb-tables", "-1", str(path)], capture_output=True, check=True,
                            text=True).stdout.split()
    return {t: int(subprocess.run(["mdb-count", str(path), t], capture_output=True,
                                  check=True, text=True).stdout) for t in tables}


def test_every_thirdparty_database_is_listed_here() -> None:
    found = {str(p.relative_to(FIXTURES / "thirdparty"))
             for p in (FIXTURES / "thirdparty").rglob("*") if p.suffix in (".mdb", ".accdb")}
    if not found:
        pytest.fail(f"no databases in {FIXTURES / 'thirdparty'}; they are part of the repository")
    assert found == set(THIRDPARTY) | set(PASSWORD_PROTECTED)


@pytest.mark.parametrize("name", sorted(THIRDPARTY))
def test_a_thirdparty_database_reads_as_mdbtools_reports_it(name: str) -> None:
    data = fixture(f"thirdparty/{name}")
    assert sniff(data[:64]) and reader_for(Member(name, data)).format == "access"
    tables = list_tables(data, name)
    assert tables == THIRDPARTY[name] == mdbtools_report(FIXTURES / "thirdparty" / name)
    for table, rows in tables.items():
        if name in UNEXPORTABLE:
            with pytest.raises(ReadError, match=f"{UNEXPORTABLE[name]}.*cannot export"):
                read_table(data, table, name)
            continue
        assert read_table(data, table, name).height == rows


@pytest.mark.parametrize("name", PASSWORD_PROTECTED)
def test_a_password_protected_database_is_refused_clearly(name: str) -> None:
    data = fixture(f"thirdparty/{name}")
    assert password_encrypted(data)
    with pytest.raises(DecryptionError) as info:
        read_member(Member(name, data), DATASET)
    assert str(info.value) == f"{name}: {ENCRYPTED_MESSAGE}"
    assert info.value.__cause__ is None
    with pytest.raises(DecryptionError):
        list_tables(data, name)


def test_jet_encoded_databases_are_not_mistaken_for_password_protected() -> None:
    for name in ("encrypted/db97-enc.mdb", "encrypted/db-enc.mdb", "reference_20k.accdb"):
        path = f"thirdparty/{name}" if name.startswith("encrypted") else name
        assert not password_encrypted(fixture(path))


def test_dates_mdbtools_cannot_print_are_kept_as_text_never_as_dates() -> None:
    frame = read_table(fixture("thirdparty/oldDatesV2007.accdb"), "Table1")
    assert frame.schema["DateField"] == pl.Utf8
    assert set(frame["DateField"].to_list()) == {"1900-01-00 00:00:00"}


def test_a_damaged_database_is_a_read_error() -> None:
    data = fixture("reference_20k.mdb")
    for broken in (data[:8192], data[:20] + bytes(len(data) - 20)):
        with pytest.raises(ReadError, match="mdbtools could not read the database") as info:
            read_member(Member("broken.mdb", broken), DATASET)
        assert not isinstance(info.value, DecryptionError)


def test_the_database_lives_in_a_memory_file_not_on_disk() -> None:
    with _database(fixture("reference_20k.mdb"), "r.mdb") as db:
        assert db.path == f"/proc/self/fd/{db.fd}"
        assert os.readlink(db.path).startswith("/memfd:")


# --- the export read in batches while mdb-export writes ------------------------------------

# mdb-export's quoting: text in ", a " inside doubled; a Memo keeps CRLF and LF,
# and may hold what looks like a whole record on a line of its own
QUOTED_MEMOS = (b'1,"PA","plain"\n'
                b'2,"PB","line one\r\nsays ""hi"", then\n3,""PC"",""fake record""\n"\n'
                b'4,"PC",\n'
                b'5,"PD","""\n""\n\n,"\n'
                b'6,"PE","ends with a newline\n"\n')


def batches_of(data: bytes, monkeypatch: pytest.MonkeyPatch, read_bytes: int) -> list[bytes]:
    """The batches cut from ``data`` read off a pipe ``read_bytes`` at a time."""
    monkeypatch.setattr(access, "EXPORT_BATCH_BYTES", 1)  # cut wherever a record ends
    reading, writing = os.pipe()

    def chunks() -> Iterator[bytes]:
        while chunk := os.read(reading, read_bytes):
            yield chunk

    try:
        os.write(writing, data)  # less than a pipe holds
        os.close(writing)
        return list(access._batches(chunks(), 0.0))
    finally:
        os.close(reading)


@pytest.mark.parametrize("read_bytes", [1, 2, 3, 5, 8, 13, 4096])
def test_batches_end_between_records_never_inside_a_quoted_memo(
        monkeypatch: pytest.MonkeyPatch, read_bytes: int) -> None:
    batches = batches_of(QUOTED_MEMOS, monkeypatch, read_bytes)
    assert b"".join(batches) == QUOTED_MEMOS
    if read_bytes < 10:
        assert len(batches) == 5
    names = ["ID", "PERS", "MEMO"]
    whole = pl.read_csv(QUOTED_MEMOS, has_header=False, new_columns=names, infer_schema=False)
    assert whole["ID"].to_list() == ["1", "2", "4", "5", "6"]
    assert whole["MEMO"][1] == 'line one\r\nsays "hi", then\n3,"PC","fake record"\n'
    parts = [pl.read_csv(b, has_header=False, new_columns=names, infer_schema=False)
             for b in batches]
    assert pl.concat(parts).equals(whole)


def test_a_memo_crossing_a_batch_boundary_reads_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    data = fixture("reference_20k.accdb")
    one_batch = read_table(data, "CASES")
    memos = one_batch["CMNT"]
    assert (memos.str.contains("\n") & memos.str.contains('"')).sum() > 10
    cuts = []
    batches = access._batches

    def counted(chunks: Iterator[bytes], pause: float) -> Iterator[bytes]:
        for batch in batches(chunks, pause):
            cuts.append(len(batch))
            yield batch

    monkeypatch.setattr(access, "_batches", counted)
    monkeypatch.setattr(access, "EXPORT_BATCH_BYTES", 16 << 10)
    monkeypatch.setattr(access, "_PIPE_BYTES", 4093)  # reads end anywhere in a record
    many = read_table(data, "CASES")
    assert len(cuts) > 50
    assert many.equals(one_batch) and many.schema == one_batch.schema


@pytest.mark.parametrize("name", ["reference_20k.mdb", "reference_20k.accdb"])
def test_types_are_decided_over_all_batches(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    data = fixture(name)
    one_batch = read_member(Member(name, data), DATASET).frame
    monkeypatch.setattr(access, "EXPORT_BATCH_BYTES", 64 << 10)
    many = read_member(Member(name, data), DATASET).frame
    assert many.equals(one_batch) and many.schema == one_batch.schema
    # the one date mdbtools cannot print (row 12377) comes batches after the first:
    # the good dates of the earlier batches are rendered too
    assert many.schema["DOB"] == pl.Utf8 and many["DOB"][12376] == "1900-01-00 00:00:00"
    assert many["DOB"][0] == one_batch["DOB"][0] != "" and "/" in many["DOB"][0]
    assert many.schema["RPT_DT"] == pl.Date


def test_a_memo_at_the_export_limit_is_refused_naming_the_column_only(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(access, "EXPORT_BIND_SIZE", 120)
    monkeypatch.setattr(access, "EXPORT_BATCH_BYTES", 64 << 10)
    with pytest.raises(ReadError, match="column CMNT reaches mdbtools' export limit") as info:
        read_member(Member("r.accdb", fixture("reference_20k.accdb")), DATASET)
    assert "CANARY" not in str(info.value) and "PCAFE" not in str(info.value)


def test_a_failing_batch_stops_the_export() -> None:
    def refuse(batch: pl.DataFrame) -> None:
        raise ReadError("r.accdb: refused")

    with _database(fixture("reference_20k.accdb"), "r.accdb") as db:
        names = [c.name for c in db.tables()["CASES"]]
        with pytest.raises(ReadError, match="^r.accdb: refused$"):
            db.export("CASES", names, refuse)
        assert db.count("CASES") == 20_000  # the memory file is still usable


@pytest.mark.parametrize("script", [
    "exec sleep 30",  # silent from the start
    # some rows, then silence (a hung export), while the pipe has room for more
    "printf '1,\"a\",,,,,,,,\\n'; exec sleep 30",
])
def test_an_export_that_stalls_is_stopped_naming_mdb_export(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    import time

    from ingest.errors import ToolStalled

    with _database(fixture("reference_20k.accdb"), "r.accdb") as db:
        names = [c.name for c in db.tables()["CASES"]]
        fake_mdb_export(tmp_path, monkeypatch, script)
        monkeypatch.setenv("INGEST_TOOL_STALL_SECONDS", "1")
        started = time.monotonic()
        with pytest.raises(ToolStalled, match=r"^mdb-export made no progress for 1 s"):
            db.export("CASES", names, lambda batch: None)
        assert time.monotonic() - started < 10


def test_a_slow_export_that_keeps_writing_is_left_to_finish(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    row = ",".join(["1"] * 10)
    fake_mdb_export(tmp_path, monkeypatch,
                    f"for i in 1 2 3 4 5 6; do echo '{row}'; sleep 0.4; done")
    monkeypatch.setenv("INGEST_TOOL_STALL_SECONDS", "1")
    with _database(fixture("reference_20k.accdb"), "r.accdb") as db:
        names = [c.name for c in db.tables()["CASES"]]
        assert len(names) == 10
        assert db.export("CASES", names, lambda batch: None) == 6


def fake_mdb_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    """An ``mdb-export`` first on the PATH that runs ``script`` (sh) instead."""
    tool = tmp_path / "mdb-export"
    tool.write_text(f"#!/bin/sh\n{script}\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.parametrize(("script", "message"), [
    # broken output, then a failure: the failure is what is reported
    ("printf '1,\"\\377\",,,,,,,,\\n'; exit 1", r"could not read the database \(mdb-export"),
    ("printf '1,\"a\"\\n'; exit 1", r"could not read the database \(mdb-export"),
    ("printf '1,\"\\377\",,,,,,,,\\n'", "the export of table CASES could not be parsed"),
    ("printf '1,\"a\"\\n'", "the export of table CASES could not be parsed"),
])
def test_a_failing_export_is_reported_without_its_output(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str, message: str) -> None:
    with _database(fixture("reference_20k.accdb"), "r.accdb") as db:
        names = [c.name for c in db.tables()["CASES"]]
        fake_mdb_export(tmp_path, monkeypatch, script)
        monkeypatch.setenv("INGEST_TOOL_STALL_SECONDS", "0.5")
        with pytest.raises(ReadError, match=message) as info:
            db.export("CASES", names, lambda batch: None)
    # nothing chained that could quote the output
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


def test_mdbtools_get_no_ingest_variables(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A passphrase or key given in INGEST_*, or any other secret of ours, never
    reaches the mdbtools children; their own settings do."""
    seen = tmp_path / "environ"
    monkeypatch.setenv("INGEST_PASSPHRASE", "canary-passphrase-7f3a")
    monkeypatch.setenv("INGEST_KEY_GENERAL", "canary-key-7f3a")
    monkeypatch.setenv("PREFECT_API_KEY", "canary-token-7f3a")
    monkeypatch.setenv("MDB_JET3_CHARSET", "ISO-8859-15")
    with _database(fixture("reference_20k.accdb"), "r.accdb") as db:
        names = [c.name for c in db.tables()["CASES"]]
        fake_mdb_export(tmp_path, monkeypatch, f"cat /proc/$$/environ > '{seen}'")
        with contextlib.suppress(ReadError):  # the stand-in exports nothing
            db.export("CASES", names, lambda batch: None)
    environ = seen.read_bytes()
    assert b"PATH=" in environ  # the child did run and record its environment
    assert b"canary" not in environ and b"INGEST_" not in environ
    assert b"MDB_JET3_CHARSET=ISO-8859-15" in environ  # the user's choice wins
