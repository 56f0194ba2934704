"""SPSS, Stata and SAS files: each sample, from two independent writers, reads exactly
against its truth, and a delivery of each runs end to end.

Writers: pyreadstat (``.sav``, ``.zsav``, ``.dta``, ``.xpt``, made here at test time
from the generators' tables) and R's haven (``tests/data/stats/``, made by its
``make-samples.R``: the only writer of ``.sas7bdat`` at hand).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tempfile
from collections.abc import Callable
from datetime import date, datetime, time
from pathlib import Path

import pandera.polars as pa
import polars as pl
import pyreadstat
import pytest
from test_second_example import (
    _differences,
    _quarantine,
    expected_clean,
    expected_quarantine,
)

import ingest
from ingest.crypto.openpgp import encrypt_openpgp, export_public_key
from ingest.declare import dataset
from ingest.keys import Keyring
from ingest.media import Member
from ingest.readers import read_delivery_table
from ingest.readers.stats import USER_MISSING_TO_NULL, VALUE_LABELS_APPLIED, read_stats
from ingest.synth import generate
from ingest.synth.admissions import generate as generate_admissions
from schemas.reference import DATASET as REFERENCE

from conftest import DELIVERY_DATE, ROOT, data_fixture

INGEST = str(ROOT / ".venv" / "bin" / "ingest")


def written(write: Callable[..., None], frame: pl.DataFrame, suffix: str,
            **options: object) -> bytes:
    """The file pyreadstat writes for ``frame`` (pyreadstat writes only to a path; the
    test's own data, in a folder removed at once)."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "table" + suffix)
        write(frame.to_pandas(), path, **options)
        return Path(path).read_bytes()


WRITERS: dict[str, tuple[str, str, Callable[[pl.DataFrame], bytes]]] = {
    "sav": ("cases.sav", "spss", lambda f: written(pyreadstat.write_sav, f, ".sav")),
    "zsav": ("cases.zsav", "spss",
             lambda f: written(pyreadstat.write_sav, f, ".zsav", compress=True)),
    "dta": ("cases.dta", "stata", lambda f: written(pyreadstat.write_dta, f, ".dta")),
    "xpt-v8": ("cases.xpt", "sas-transport",
               lambda f: written(pyreadstat.write_xport, f, ".xpt", file_format_version=8)),
}
"""Form -> (member name, registered format, writer)."""


@pytest.mark.parametrize("form", list(WRITERS))
def test_a_pyreadstat_file_reads_exactly_as_the_generators_table(form: str) -> None:
    frame, _ = generate(3000, seed=5)
    name, fmt, write = WRITERS[form]
    table = read_delivery_table([Member(name, write(frame))], REFERENCE)
    assert table.format == fmt
    assert table.frame.schema == frame.schema
    assert table.frame.equals(frame)
    assert table.repairs == {} and table.notes == []


# --- typed samples from R's haven -----------------------------------------------------------

class Sample(pa.DataFrameModel):
    case_id: str = pa.Field(metadata={"source": "CASE_ID"})
    sex: pl.Categorical = pa.Field(isin=["F", "M", "X"], metadata={"source": "SEX"})
    birth: pl.Date = pa.Field(nullable=True, metadata={"source": "DOB"})
    seen: pl.Datetime = pa.Field(nullable=True, metadata={"source": "SEEN"})
    lab_value: pl.Float64 = pa.Field(nullable=True, metadata={"source": "LAB_VAL"})
    comments: str = pa.Field(nullable=True, metadata={"source": "CMNT"})


SAMPLE = dataset(Sample, name="sample", version="1")
HAVEN_TRUTH = pl.DataFrame({
    "CASE_ID": ["0000000001", "0000000002", "0000000003", "0000000004"],
    "DOB": [date(1950, 1, 31), date(1999, 12, 31), None, date(2001, 2, 3)],
    "SEEN": [datetime(2020, 1, 2, 3, 4, 5), datetime(2021, 6, 7, 8, 9, 10),
             datetime(2022, 1, 1), None],
    "LAB_VAL": [1.5, None, 250.25, 0.0],
    "CMNT": ["café", "", "line", "x"],
})
LABELLED = ["F", "M", "9", "X"]
"""SEX through its value labels (F=1, M=2, X=3): 9 has no label, so stays 9."""
CODES = [1.0, 2.0, 9.0, 3.0]
"""SEX as stored: SAS keeps labels (formats) in a separate catalog, not in the file."""

HAVEN = {"haven.sav": ("spss", True), "haven.zsav": ("spss", True),
         "haven.dta": ("stata", True), "haven.xpt": ("sas-transport", False),
         "haven.sas7bdat": ("sas7bdat", False)}


@pytest.mark.parametrize("name", list(HAVEN))
def test_a_haven_file_reads_exactly_against_its_truth(name: str) -> None:
    fmt, labels = HAVEN[name]
    table = read_delivery_table([Member(name, data_fixture("stats", name).read_bytes())],
                                SAMPLE)
    assert table.format == fmt
    want = HAVEN_TRUTH.with_columns(pl.Series("SEX", LABELLED if labels else CODES)) \
        .select(SAMPLE.source_names)
    assert table.frame.equals(want), table.frame
    assert table.frame.schema["DOB"] == pl.Date
    assert table.frame.schema["SEEN"] == pl.Datetime("us")
    if labels:
        assert table.repairs == {f"SEX:{VALUE_LABELS_APPLIED}": 3}
        assert table.notes == ["value labels read as category levels: 1 column(s), "
                               "3 level(s) declared by the file"]
    else:
        assert table.repairs == {} and table.notes == []


def test_a_labelled_file_runs_with_the_unlabelled_code_quarantined(
        tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_MAX_QUARANTINE_SHARE", "0.5")
    folder = tmp_path / "delivery"
    folder.mkdir()
    (folder / "cases.sav").write_bytes(data_fixture("stats", "haven.sav").read_bytes())
    summary = ingest.run_delivery(folder, schema=SAMPLE, out=tmp_path / "out",
                                  delivery_date=DELIVERY_DATE)
    assert (summary.rows_in, summary.rows_accepted, summary.rows_quarantined) == (4, 3, 1)
    assert summary.quarantine_reasons == {"sex:isin": 1}
    assert summary.repairs == {f"SEX:{VALUE_LABELS_APPLIED}": 3}
    got = ingest.load(tmp_path / "out")
    assert got["sex"].cast(pl.Utf8).to_list() == ["F", "M", "X"]
    manifest = next((tmp_path / "out").rglob("manifest.json")).read_text()
    for value in ("café", "0000000001", "250.25"):
        assert value not in manifest


# --- user-defined missing values, formats, encodings ----------------------------------------

MISSING = pl.DataFrame({"CASE_ID": ["a", "b", "c", "d", "e"],
                        "LAB_VAL": [1.5, 99.0, 97.5, None, 3.0]})


class Lab(pa.DataFrameModel):
    case_id: str = pa.Field(metadata={"source": "CASE_ID"})
    lab_value: pl.Float64 = pa.Field(nullable=True, metadata={"source": "LAB_VAL"})


LAB = dataset(Lab, name="lab", version="1")


def test_spss_missing_values_and_ranges_become_nulls_counted_per_column() -> None:
    data = written(pyreadstat.write_sav, MISSING, ".sav", missing_ranges={
        "LAB_VAL": [99.0, {"lo": 97.0, "hi": 98.0}]})
    table = read_stats("spss", data, LAB, "lab.sav")
    assert table.frame["LAB_VAL"].to_list() == [1.5, None, None, None, 3.0]
    assert table.repairs == {f"LAB_VAL:{USER_MISSING_TO_NULL}": 2}


def test_stata_special_missing_values_become_nulls_counted_per_column() -> None:
    frame = pl.DataFrame({"CASE_ID": ["a", "b", "c", "d"],
                          "LAB_VAL": pl.Series([1.5, 2.0, None, 4.0], dtype=pl.Object)})
    pandas = frame.to_pandas()
    pandas["LAB_VAL"] = [1.5, "a", None, "z"]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "lab.dta")
        pyreadstat.write_dta(pandas, path, missing_user_values={"LAB_VAL": ["a", "z"]})
        data = Path(path).read_bytes()
    table = read_stats("stata", data, LAB, "lab.dta")
    assert table.frame["LAB_VAL"].to_list() == [1.5, None, None, None]
    assert table.frame.schema["LAB_VAL"] == pl.Float64
    assert table.repairs == {f"LAB_VAL:{USER_MISSING_TO_NULL}": 2}


class Times(pa.DataFrameModel):
    case_id: str = pa.Field(metadata={"source": "CASE_ID"})
    day: pl.Date = pa.Field(metadata={"source": "DAY"})
    at: pl.Datetime = pa.Field(metadata={"source": "AT"})
    clock: pl.Time = pa.Field(metadata={"source": "CLOCK"})


def test_spss_date_datetime_and_time_formats_read_as_those_kinds() -> None:
    frame = pl.DataFrame({"CASE_ID": ["a", "b"], "DAY": [date(1582, 10, 15), date(2024, 2, 29)],
                          "AT": [datetime(1970, 1, 1), datetime(2024, 2, 29, 23, 59, 59)],
                          "CLOCK": [time(0, 0), time(23, 59, 59)]})
    data = written(pyreadstat.write_sav, frame, ".sav",
                   variable_format={"DAY": "ADATE10", "AT": "DATETIME20", "CLOCK": "TIME8"})
    table = read_stats("spss", data, dataset(Times, name="times", version="1"), "t.sav")
    assert table.frame.schema == pl.Schema({"CASE_ID": pl.Utf8, "DAY": pl.Date,
                                            "AT": pl.Datetime("us"), "CLOCK": pl.Time})
    assert table.frame.equals(frame.with_columns(pl.col("AT").cast(pl.Datetime("us"))))


def test_an_old_stata_file_in_latin_1_reads_its_accents() -> None:
    """Stata before 14 (format 114/117) writes Latin-1; pyreadstat is told by the header."""
    out = io.BytesIO()
    pl.DataFrame({"CASE_ID": ["a", "b"], "CMNT": ["café", "niño"]}).to_pandas().to_stata(
        out, write_index=False, version=117)

    class Note(pa.DataFrameModel):
        case_id: str = pa.Field(metadata={"source": "CASE_ID"})
        comments: str = pa.Field(metadata={"source": "CMNT"})

    table = read_stats("stata", out.getvalue(), dataset(Note, name="n", version="1"), "n.dta")
    assert table.frame["CMNT"].to_list() == ["café", "niño"]


# --- end to end: both datasets, CLI and flow -----------------------------------------------

@pytest.mark.parametrize("form", ["sav", "dta", "xpt-v8"])
def test_the_second_example_runs_end_to_end(form: str, tmp_path: Path, home: Path) -> None:
    frame, truth = generate_admissions(2000, seed=11, bad_share=0.005)
    name, _, write = WRITERS[form]
    folder = tmp_path / "delivery"
    folder.mkdir()
    (folder / name.replace("cases", "admissions")).write_bytes(write(frame))
    summary = ingest.run_delivery(folder, schema="admissions", out=tmp_path / "out")
    assert (summary.rows_in, summary.rows_accepted, summary.rows_quarantined) == (
        truth.rows, truth.accepted, truth.quarantined)
    assert _quarantine(summary) == expected_quarantine(frame, truth)
    got = ingest.load(tmp_path / "out")
    assert _differences(got, expected_clean(truth, Keyring.open().pseudonym_key().material)) \
        == []


@pytest.mark.parametrize("prefect", [False, True], ids=["library", "flow"])
def test_the_cli_runs_an_encrypted_spss_delivery(prefect: bool, tmp_path: Path,
                                                 home: Path) -> None:
    frame, _ = generate(2000, seed=4)
    folder = tmp_path / "delivery"
    folder.mkdir()
    key = export_public_key(home / "gnupg")
    (folder / "cases.zsav.gpg").write_bytes(encrypt_openpgp(
        WRITERS["zsav"][2](frame), tmp_path / "sender", recipient_key=key))
    env = dict(os.environ, INGEST_HOME=str(home))
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run(
        [INGEST, "run", str(folder), "--out", str(tmp_path / "out"), "--json",
         "--delivery-date", DELIVERY_DATE.isoformat(), *([] if prefect else ["--no-prefect"])],
        env=env, capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["rows_in"] == 2000
    assert summary["rows_accepted"] + summary["rows_quarantined"] == 2000
    manifest = json.loads(next((tmp_path / "out").rglob("manifest.json")).read_text())
    assert manifest["read"]["format"] == "spss"


def test_the_cli_runs_the_second_example_as_a_stata_file_in_an_aes_zip_through_the_flow(
        tmp_path: Path, home: Path) -> None:
    from ingest.synth.packaging import make_zip

    frame, truth = generate_admissions(2000, seed=11, bad_share=0.005)
    folder = tmp_path / "delivery"
    folder.mkdir()
    (folder / "delivery.zip").write_bytes(make_zip({"admissions.dta": WRITERS["dta"][2](frame)},
                                                   "S3nder-Pa55"))
    env = dict(os.environ, INGEST_HOME=str(home), INGEST_PASSPHRASE="S3nder-Pa55")
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run(
        [INGEST, "run", str(folder), "--schema", str(ROOT / "schemas" / "admissions.py"),
         "--out", str(tmp_path / "out"), "--json"],
        env=env, capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["rows_in"], summary["rows_accepted"], summary["rows_quarantined"]) == (
        truth.rows, truth.accepted, truth.quarantined)
    got = ingest.load(tmp_path / "out")
    assert _differences(got, expected_clean(truth, Keyring.open().pseudonym_key().material)) \
        == []


def test_a_labelled_column_declared_as_a_number_keeps_its_codes() -> None:
    class Coded(pa.DataFrameModel):
        case_id: str = pa.Field(metadata={"source": "CASE_ID"})
        sex: int = pa.Field(metadata={"source": "SEX"})

    table = read_stats("spss", data_fixture("stats", "haven.sav").read_bytes(),
                       dataset(Coded, name="coded", version="1"), "coded.sav")
    assert table.frame["SEX"].to_list() == CODES
    assert table.repairs == {} and table.notes == []


def test_inspect_and_schema_draft_read_a_stats_file_typed(tmp_path: Path, home: Path) -> None:
    folder = tmp_path / "delivery"
    folder.mkdir()
    (folder / "cases.sav").write_bytes(data_fixture("stats", "haven.sav").read_bytes())
    env = dict(os.environ, INGEST_HOME=str(home))
    shown = subprocess.run([INGEST, "inspect", str(folder)], env=env, capture_output=True,
                           text=True, check=False, timeout=300)
    assert shown.returncode == 0, shown.stderr
    assert "table: cases.sav (spss, UTF-8), 4 rows" in shown.stdout
    kinds = {line.split()[0]: line.split()[1] for line in shown.stdout.splitlines()
             if line.startswith("    ") and len(line.split()) == 4}
    assert kinds == {"CASE_ID": "text", "SEX": "text", "DOB": "date", "SEEN": "datetime",
                     "LAB_VAL": "float", "CMNT": "text"}
    drafted = subprocess.run([INGEST, "schema", "draft", str(folder), "--name", "cases",
                              "--out", str(tmp_path / "draft.py")], env=env,
                             capture_output=True, text=True, check=False, timeout=300)
    assert drafted.returncode == 0, drafted.stderr
    assert "case_id string, sex string, dob date, seen datetime, lab_val float, cmnt string" \
        in drafted.stdout + drafted.stderr
