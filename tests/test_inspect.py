"""ingest inspect: a dry run that writes nothing and prints no value.

Real encrypted deliveries (a CSV in OpenPGP, a workbook in an AES ZIP, an Access
database in an AES 7-Zip) go through the real command. Every folder a run could
write (the output root, INGEST_HOME with its keyring and GnuPG home, TMPDIR, the
working folder, the delivery's own folder) is listed before and after, each entry
with its size, modification time and, for a file, its SHA-256; canaries planted
in the rows must not reach stdout or stderr. With a schema, the counts are the
ones a real run of the same delivery then publishes.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from ingest.synth import generate, to_delimited
from ingest.synth.forms import to_xlsx
from ingest.synth.packaging import make_7z, make_zip

from conftest import DELIVERY_DATE, data_fixture

CANARY = "QZXJVKWT"
"""Upper-case letters the generator never writes together; planted in free text
(accepted rows) and in a person id (a quarantined row)."""
PASSWORD = "correct horse battery staple"


def planted(rows: int = 400) -> pl.DataFrame:
    frame, _ = generate(rows, seed=11, delivery_date=DELIVERY_DATE)
    index = pl.int_range(pl.len())
    return frame.with_columns(
        pl.when(index % 7 == 0).then(pl.lit(f"note {CANARY} ") + index.cast(pl.Utf8))
        .otherwise(pl.col("CMNT")).alias("CMNT"),
        pl.when(index == 3).then(pl.lit(f"P{CANARY}")).otherwise(pl.col("PERS_ID"))
        .alias("PERS_ID"))


def snapshot(*folders: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry under the folders (themselves included): kind, size, mtime, hash."""
    seen: dict[str, tuple[Any, ...]] = {}
    for folder in folders:
        for path in [folder, *folder.rglob("*")]:
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() \
                if path.is_file() and not path.is_symlink() else None
            seen[str(path)] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return seen


def assert_unchanged(before: dict[str, tuple[Any, ...]], after: dict[str, tuple[Any, ...]],
                     place: dict[str, Path]) -> None:
    """Nothing added, removed or altered. One allowance: gpg, decrypting with the
    keyring's key, takes its lock files (``pubring.kbx.lock``, ``.#lk…``, holding
    its process id) in the GnuPG home and removes them, which moves that folder's
    own modification time; every entry inside it is compared like any other."""
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    gnupg = str(place["home"] / "gnupg")
    if gnupg in changed and before[gnupg][0] == after[gnupg][0]:
        changed.remove(gnupg)
    assert not changed, f"inspect wrote: {sorted(changed)}"


@pytest.fixture
def place(home: Path, tmp_path: Path) -> dict[str, Path]:
    """The folders a run could write; TMPDIR and the working folder are fresh."""
    folders = {"home": home, "tmp": tmp_path / "tmp", "cwd": tmp_path / "cwd",
               "out": tmp_path / "out", "delivery": tmp_path / "delivery"}
    for name in ("tmp", "cwd", "out", "delivery"):
        folders[name].mkdir()
    return folders


def inspect(place: dict[str, Path], delivery: Path, *args: str,
            passphrase: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INGEST_HOME": str(place["home"]), "TMPDIR": str(place["tmp"]),
           "HOME": str(place["cwd"])}
    env.pop("INGEST_PASSPHRASE", None)
    if passphrase is not None:
        env["INGEST_PASSPHRASE"] = passphrase
    return subprocess.run([sys.executable, "-m", "ingest.cli", "inspect", str(delivery),
                           "--delivery-date", DELIVERY_DATE.isoformat(), *args],
                          capture_output=True, text=True, timeout=300, env=env,
                          cwd=place["cwd"])


def dry_runs(place: dict[str, Path], delivery: Path,
             passphrase: str | None = None) -> tuple[dict, dict, str]:
    """Inspect without and with the schema, as JSON and as text: nothing written,
    no canary printed. Returns both JSON objects and the text with the schema."""
    before = snapshot(*place.values())
    results = [inspect(place, delivery, *args, passphrase=passphrase)
               for args in ([], ["--json"], ["--schema", "reference"],
                            ["--schema", "reference", "--json"])]
    after = snapshot(*place.values())
    for done in results:
        assert done.returncode == 0, done.stderr
        for stream in (done.stdout, done.stderr):
            assert CANARY not in stream
            assert CANARY not in stream.replace("\\u", "")  # not even JSON-escaped
    assert_unchanged(before, after, place)
    assert not any(place["out"].iterdir())
    return json.loads(results[1].stdout), json.loads(results[3].stdout), results[2].stdout


def same_as_a_run(place: dict[str, Path], delivery: Path, checked: dict,
                  passphrase: str | None = None) -> None:
    """The real run of the delivery publishes the counts the dry run predicted."""
    from ingest.pipeline import run_delivery

    summary = run_delivery(delivery, schema="reference", out=place["out"],
                           passphrase=passphrase, delivery_date=DELIVERY_DATE)
    validation = checked["tables"][0]["validation"]
    assert validation["accepted"] is True
    assert (validation["rows_in"], validation["rows_accepted"],
            validation["rows_quarantined"]) == (summary.rows_in, summary.rows_accepted,
                                                summary.rows_quarantined)
    assert validation["quarantine_reasons"] == summary.quarantine_reasons
    assert validation["repairs"] == summary.repairs
    assert summary.rows_quarantined > 0  # the delivery breaks rules: the counts say something


def test_an_openpgp_csv(place: dict[str, Path], pgp_delivery) -> None:  # noqa: ANN001
    frame = planted()
    folder, _ = pgp_delivery(frame, generate(400, seed=11, delivery_date=DELIVERY_DATE)[1],
                             name="pgp")
    delivery = folder / "cases.csv.gpg"
    plain, checked, text = dry_runs(place, delivery)

    assert plain["members"] == [{"name": "cases.csv", "size": len(to_delimited(frame)),
                                 "format": "delimited", "title": "delimited text (CSV, TSV)",
                                 "kind": "table"}]
    assert plain["delivery"]["sha256"] == hashlib.sha256(delivery.read_bytes()).hexdigest()
    assert plain["tables"][0]["member"] == "cases.csv" and plain["tables"][0]["rows"] == 400
    assert plain["tables"][0]["encoding"] == "cp1252"
    assert [c["name"] for c in plain["tables"][0]["columns"]] == frame.columns
    assert {c["kind"] for c in plain["tables"][0]["columns"]} == {"text"}
    by_name = {c["name"]: c for c in plain["tables"][0]["columns"]}
    assert by_name["HOSP_YN"]["distinct"] == frame["HOSP_YN"].n_unique()
    assert by_name["CMNT"]["distinct"] == frame["CMNT"].filter(
        ~frame["CMNT"].str.strip_chars().is_in(["", "NA", ".", "NULL"])).n_unique()
    nulls = frame["LAB_VAL"].str.strip_chars().is_in(["", "NA", ".", "NULL"]).sum()
    assert by_name["LAB_VAL"]["null_share"] == pytest.approx(nulls / 400, abs=1e-6)

    schema = checked["tables"][0]["schema"]
    assert schema["name"] == "reference" and schema["sha256"]
    assert [c["name"] for c in checked["tables"][0]["clean"]][:2] == ["case_id", "person_id"]
    assert "person_id:str_matches" in checked["tables"][0]["validation"]["quarantine_reasons"]
    assert "would be accepted" in text and "nothing was written" in text
    same_as_a_run(place, delivery, checked)


def test_a_workbook_in_an_aes_zip(place: dict[str, Path]) -> None:
    frame = planted()
    workbook = to_xlsx(frame)
    delivery = place["delivery"] / "cases.zip"
    delivery.write_bytes(make_zip({"cases.xlsx": workbook, "README.txt": b"read me"},
                                  password=PASSWORD))
    plain, checked, _ = dry_runs(place, delivery, passphrase=PASSWORD)

    assert [(m["name"], m["size"], m["format"]) for m in plain["members"]] == [
        ("cases.zip/cases.xlsx", len(workbook), "xlsx"),
        ("cases.zip/README.txt", 7, "unknown")]
    assert plain["tables"][0]["rows"] == 400
    kinds = {c["name"]: c["kind"] for c in plain["tables"][0]["columns"]}
    # numbers and dates are typed cells in the workbook; text stays text
    assert kinds["CASE_ID"] == "float" and kinds["RPT_DT"] == "datetime"
    assert kinds["SEX"] == kinds["CMNT"] == "text"
    same_as_a_run(place, delivery, checked, passphrase=PASSWORD)


def test_an_access_database_in_an_aes_7z(place: dict[str, Path]) -> None:
    database = data_fixture("access", "reference_20k.mdb").read_bytes()
    delivery = place["delivery"] / "cases.7z"
    delivery.write_bytes(make_7z({"cases.mdb": database}, password=PASSWORD))
    plain, checked, _ = dry_runs(place, delivery, passphrase=PASSWORD)
    assert plain["tables"][0]["format"] == "access" and plain["tables"][0]["rows"] == 20_000
    assert "largest table" in plain["tables"][0]["chosen"]
    assert checked["tables"][0]["validation"]["rows_in"] == 20_000

    # the database's two tables, as a run of several tables takes them
    from ingest.pipeline import run_delivery

    before = snapshot(*place.values())
    runs = [inspect(place, delivery, *args, "--json", passphrase=PASSWORD)
            for args in (["--schema", "reference", "--schema", "counties"],
                         ["--schema", "reference_and_counties"])]
    assert_unchanged(before, snapshot(*place.values()), place)
    both, bundle = (json.loads(done.stdout) for done in runs)
    assert [t["schema"]["name"] for t in both["tables"]] == ["reference", "counties"]
    assert both["tables"] == bundle["tables"] and both["accepted"] is True
    summary = run_delivery(delivery, schema=["reference", "counties"], out=place["out"],
                           passphrase=PASSWORD, delivery_date=DELIVERY_DATE)
    assert summary.rows_in == sum(t["validation"]["rows_in"] for t in both["tables"])
    assert summary.rows_quarantined == sum(t["validation"]["rows_quarantined"]
                                           for t in both["tables"])


def test_a_wrong_password_is_our_error_and_writes_nothing(place: dict[str, Path]) -> None:
    delivery = place["delivery"] / "cases.zip"
    delivery.write_bytes(make_zip({"cases.csv": to_delimited(planted())}, password=PASSWORD))
    before = snapshot(*place.values())
    done = inspect(place, delivery, "--schema", "reference", passphrase="wrong")
    assert done.returncode == 4 and done.stderr.startswith("ingest: error:")
    assert CANARY not in done.stdout + done.stderr
    assert_unchanged(before, snapshot(*place.values()), place)


def test_a_rejected_delivery_is_said_so(place: dict[str, Path]) -> None:
    delivery = place["delivery"] / "cases.csv"
    delivery.write_bytes(to_delimited(planted()))
    env_share = {"INGEST_MAX_QUARANTINE_SHARE": "0.001"}
    os.environ.update(env_share)
    try:
        done = inspect(place, delivery, "--schema", "reference", "--json")
        text = inspect(place, delivery, "--schema", "reference")
    finally:
        os.environ.pop("INGEST_MAX_QUARANTINE_SHARE")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    validation = doc["tables"][0]["validation"]
    assert doc["accepted"] is False
    assert validation["accepted"] is False and validation["max_quarantine_share"] == 0.001
    assert validation["quarantine_share"] == pytest.approx(
        validation["rows_quarantined"] / validation["rows_in"], abs=1e-6)
    assert "would be REJECTED" in text.stdout


def test_a_first_row_that_may_be_data_is_not_shown(place: dict[str, Path]) -> None:
    """Without a schema nothing says whether the first row is a header: one that
    does not read as names (here the data, header removed) is never printed."""
    frame = planted()
    body = to_delimited(frame, trailer=False).split(b"\n", 1)[1]
    delivery = place["delivery"] / "cases.csv"
    delivery.write_bytes(body)
    done = inspect(place, delivery, "--json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    names = [c["name"] for c in found["tables"][0]["columns"]]
    assert names == [f"column_{i}" for i in range(1, 11)]
    assert any("may be data" in w for w in found["warnings"])
    first = frame.row(0)
    for value in first:
        if value and len(value) > 3:
            assert value not in done.stdout


def test_no_keyring_is_created(place: dict[str, Path], pgp_delivery) -> None:  # noqa: ANN001
    """A run creates a missing GnuPG home (gpg-agent.conf, gpg's key box); a dry
    run does not: with no keyring, a plain delivery is inspected and an OpenPGP
    one is refused (the keyring's error), and INGEST_HOME stays absent."""
    folder, _ = pgp_delivery(planted(), generate(400, seed=11,
                                                 delivery_date=DELIVERY_DATE)[1], name="pgp")
    plain = place["delivery"] / "cases.csv"
    plain.write_bytes(to_delimited(planted()))
    empty = dict(place, home=place["cwd"].parent / "no-keyring")
    ok = inspect(empty, plain, "--schema", "reference")
    refused = inspect(empty, folder / "cases.csv.gpg", "--schema", "reference")
    assert ok.returncode == 0, ok.stderr
    assert refused.returncode == 5 and "ingest keys init" in refused.stderr
    assert not empty["home"].exists()
