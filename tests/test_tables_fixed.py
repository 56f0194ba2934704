"""A fixed-width table beside other tables in one delivery (several schemas, or a bundle).

The record layout (delivered, or the positions a schema declares) belongs to the
dataset whose columns it names; that dataset reads as records the text members no
other dataset's header claims, and the other tables read as they would alone.
Each table is compared with the generator's truth, or with the same delivery made
of CSVs only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import polars as pl
import pytest
from test_second_example import _differences, _quarantine, expected_clean, expected_quarantine

import ingest
from ingest.errors import SchemaMismatchError
from ingest.keys import Keyring
from ingest.synth import generate, to_delimited
from ingest.synth.admissions import ADMISSION_REASONS, WARD_CODES, WARDS, wards
from ingest.synth.admissions import generate as generate_admissions
from ingest.synth.fixed_forms import Slot, fit_layout, layout_csv, layout_sas, to_fixed_width
from schemas.admissions import DATASET as ADMISSIONS
from schemas.counties import DATASET as COUNTIES
from schemas.reference import DATASET as REFERENCE

from conftest import DELIVERY_DATE, ROOT

INGEST = str(ROOT / ".venv" / "bin" / "ingest")
ROWS = 2_000
ADMISSION_NUMBERS = {
    "LOS_DAYS": Slot("LOS_DAYS", 5, "zoned", 0),
    "PRIOR_ADM": Slot("PRIOR_ADM", 3, "zoned", 0),
    "CREAT": Slot("CREAT", 4, "packed", 3),
}
COUNTIES_CSV = (b"CNTY_FIPS,NAME\r\n06001,Alameda\r\n"
                b"06003,Alpine\r\n36061,New York\r\n")


@pytest.fixture(scope="module")
def admissions():
    return generate_admissions(ROWS, seed=11, bad_share=0.005)


def _folder(tmp_path: Path, files: dict[str, bytes]) -> Path:
    folder = tmp_path / "delivery"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def _check_admissions_and_wards(summary: dict, out: Path, frame: pl.DataFrame, truth,
                                wards_format: str = "csv") -> None:
    parts = {t["name"]: t for t in summary["tables"]}
    assert (parts["admissions"]["rows_in"], parts["admissions"]["rows_accepted"],
            parts["admissions"]["rows_quarantined"]) == (truth.rows, truth.accepted,
                                                         truth.quarantined)
    manifest = json.loads((Path(summary["output_dir"]) / "manifest.json").read_text())
    read = {t["name"]: (t["read"]["member"], t["read"]["format"]) for t in manifest["tables"]}
    assert read["admissions"] == ("ADMISSIONS.DAT", "fixed-width")
    assert read["wards"][1] == wards_format
    assert (parts["wards"]["rows_in"], parts["wards"]["rows_accepted"]) == (len(WARDS),
                                                                            len(WARDS))
    got = ingest.load(out, table="wards")
    assert got["ward_code"].to_list() == list(WARD_CODES)
    assert got["ward_name"].to_list() == [w[1] for w in WARDS]
    assert got["beds"].to_list() == [w[2] for w in WARDS]
    admissions = ingest.load(out, table="admissions")
    want = expected_clean(truth, Keyring.open().pseudonym_key().material)
    assert admissions.columns == want.columns and admissions.height == want.height
    assert _differences(admissions, want) == []


def test_the_cli_runs_fixed_width_admissions_beside_a_csv_of_wards(
        admissions, tmp_path: Path, home: Path) -> None:
    frame, truth = admissions
    slots = fit_layout(frame, "utf-8")
    folder = _folder(tmp_path, {
        "ADMISSIONS.DAT": to_fixed_width(frame, slots, "utf-8", "\n"),
        "ADMISSIONS.SAS": layout_sas(slots, "ADMISSIONS.DAT"),
        "wards.csv": to_delimited(wards(), encoding="cp1252")})
    env = dict(os.environ, INGEST_HOME=str(home))
    env.pop("PREFECT_API_URL", None)
    out = tmp_path / "out"
    done = subprocess.run([INGEST, "run", str(folder), "--schema", "admissions", "--schema",
                           "wards", "--out", str(out), "--no-prefect", "--json"],
                          env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    _check_admissions_and_wards(summary, out, frame, truth)
    want_reasons: dict[str, int] = {}
    for kind in truth.bad_rows.values():
        key = f"admissions.{ADMISSION_REASONS[kind]}"
        want_reasons[key] = want_reasons.get(key, 0) + 1
    assert summary["quarantine_reasons"] == want_reasons


def test_ebcdic_admissions_and_a_csv_of_wards_in_a_bundle(
        admissions, tmp_path: Path, home: Path) -> None:
    """Zoned and packed numbers on a tape, its SAS layout, and a lookup CSV; the
    schemas named by a bundle of the user's own."""
    frame, truth = admissions
    slots = fit_layout(frame, "cp1140", ADMISSION_NUMBERS)
    folder = _folder(tmp_path, {
        "ADMISSIONS.DAT": to_fixed_width(frame, slots, "cp1140"),
        "ADMISSIONS.SAS": layout_sas(slots, "ADMISSIONS.DAT"),
        "WARDS.CSV": to_delimited(wards(), encoding="cp1252")})
    mine = tmp_path / "schemas"
    mine.mkdir()
    (mine / "tape.py").write_text(
        "from dataclasses import replace\n"
        "from schemas.admissions import DATASET as ADMISSIONS\n"
        "DATASET = replace(ADMISSIONS, encodings=('cp1140',))\n")
    (mine / "bundle.py").write_text("DATASETS = ('tape.py', 'wards')\n")
    out = tmp_path / "out"

    summary = ingest.run_delivery(folder, schema=str(mine / "bundle.py"), out=out)

    _check_admissions_and_wards({"tables": summary.tables, "output_dir": summary.output_dir},
                                out, frame, truth)
    assert _quarantine(summary, "admissions") == expected_quarantine(frame, truth)


@pytest.mark.parametrize("positions", ["layout", "declared"])
def test_reference_records_beside_counties_equal_the_csv_delivery(
        positions: str, tmp_path: Path, home: Path) -> None:
    """The reference table as Windows-1252 CRLF records (by a delivered layout, or by
    positions the schema declares) and the county lookup as CSV: each table as
    published equals the delivery of two CSVs."""
    frame = generate(3_000, seed=5, delivery_date=DELIVERY_DATE)[0]
    slots = fit_layout(frame, "cp1252")
    records = to_fixed_width(frame, slots, "cp1252", "\r\n")
    reference: object = "reference"
    files = {"cases.dat": records, "counties.csv": COUNTIES_CSV}
    if positions == "layout":
        files["cases.layout.csv"] = layout_csv(slots)
    else:
        columns, start = [], 1
        for column, slot in zip(REFERENCE.columns, slots, strict=True):
            columns.append(dataclasses.replace(column, start=start, length=slot.width))
            start += slot.width
        reference = dataclasses.replace(REFERENCE, columns=tuple(columns))
    runs = {}
    for form, delivered, schema in (
            ("csv", {"cases.csv": to_delimited(frame), "counties.csv": COUNTIES_CSV},
             ["reference", "counties"]),
            ("fixed", files, [reference, COUNTIES])):
        folder = tmp_path / form
        folder.mkdir()
        for name, data in delivered.items():
            (folder / name).write_bytes(data)
        out = tmp_path / f"out-{form}"
        summary = ingest.run_delivery(folder, schema=schema, out=out,
                                      delivery_date=DELIVERY_DATE)
        runs[form] = (
            [(t["name"], t["rows_in"], t["rows_accepted"], t["quarantine_reasons"])
             for t in summary.tables],
            {t: ingest.load(out, table=t).with_columns(pl.col(pl.Categorical).cast(pl.Utf8))
             for t in ("reference", "counties")})
    assert [t[0] for t in runs["fixed"][0]] == ["reference", "counties"]
    assert runs["fixed"][0] == runs["csv"][0]
    assert runs["fixed"][0][1][1:3] == (3, 3)
    for table in ("reference", "counties"):
        assert runs["fixed"][1][table].equals(runs["csv"][1][table]), table


def test_a_layout_that_matches_no_schema_of_the_run_is_refused(admissions,
                                                               tmp_path: Path,
                                                               home: Path) -> None:
    frame, _ = admissions
    slots = fit_layout(frame, "utf-8")
    layout = layout_csv(slots).replace(b"ADM_ID,", b"ADMISSION,")
    folder = _folder(tmp_path, {"ADMISSIONS.DAT": to_fixed_width(frame, slots, "utf-8", "\n"),
                                "layout.csv": layout,
                                "wards.csv": to_delimited(wards(), encoding="cp1252")})
    with pytest.raises(SchemaMismatchError) as caught:
        ingest.run_delivery(folder, schema=["admissions", "wards"], out=tmp_path / "out")
    message = str(caught.value)
    assert "layout.csv: the record layout matches no schema of the run" in message
    assert "schema 'admissions': missing ADM_ID; unexpected ADMISSION" in message
    assert "schema 'wards'" in message
    assert not list((tmp_path / "out").rglob("*.parquet"))


def test_a_layout_matching_two_schemas_is_refused(admissions, tmp_path: Path,
                                                  home: Path) -> None:
    frame, _ = admissions
    slots = fit_layout(frame, "utf-8")
    twin = dataclasses.replace(ADMISSIONS, name="twin")
    folder = _folder(tmp_path, {"ADMISSIONS.DAT": to_fixed_width(frame, slots, "utf-8", "\n"),
                                "layout.csv": layout_csv(slots)})
    with pytest.raises(SchemaMismatchError, match="matches schemas 'admissions' and 'twin'"):
        ingest.run_delivery(folder, schema=[ADMISSIONS, twin], out=tmp_path / "out")


def test_two_fixed_width_tables_each_with_its_layout(admissions, tmp_path: Path,
                                                     home: Path) -> None:
    """Each layout goes to the schema whose columns it names, and each schema reads the
    records of its own length (the other member's first record does not fit)."""
    frame, truth = admissions
    slots = fit_layout(frame, "utf-8")
    ward_slots = fit_layout(wards(), "cp1252")
    folder = _folder(tmp_path, {
        "ADMISSIONS.DAT": to_fixed_width(frame, slots, "utf-8", "\n"),
        "ADMISSIONS.SAS": layout_sas(slots, "ADMISSIONS.DAT"),
        "WARDS.DAT": to_fixed_width(wards(), ward_slots, "cp1252", "\r\n"),
        "wards.layout.csv": layout_csv(ward_slots)})
    out = tmp_path / "out"

    summary = ingest.run_delivery(folder, schema=["admissions", "wards"], out=out)

    _check_admissions_and_wards({"tables": summary.tables, "output_dir": summary.output_dir},
                                out, frame, truth, wards_format="fixed-width")


def test_inspect_reads_the_fixed_width_table_beside_the_csv(admissions, tmp_path: Path,
                                                            home: Path) -> None:
    frame, truth = admissions
    slots = fit_layout(frame, "utf-8")
    folder = _folder(tmp_path, {
        "ADMISSIONS.DAT": to_fixed_width(frame, slots, "utf-8", "\n"),
        "ADMISSIONS.SAS": layout_sas(slots, "ADMISSIONS.DAT"),
        "wards.csv": to_delimited(wards(), encoding="cp1252")})
    env = dict(os.environ, INGEST_HOME=str(home))
    done = subprocess.run([INGEST, "inspect", str(folder), "--schema", "admissions",
                           "--schema", "wards", "--json"],
                          env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["accepted"] is True
    assert [(t["member"], t["format"], t["rows"]) for t in doc["tables"]] == [
        ("ADMISSIONS.DAT", "fixed-width", truth.rows), ("wards.csv", "csv", len(WARDS))]
