"""Several tables in one delivery: each validated and published under one folder and
one manifest, or none of them."""

from __future__ import annotations

import io
import json
import os
import subprocess
from dataclasses import replace
from datetime import date
from pathlib import Path

import polars as pl
import pytest

import ingest
from ingest.custody import verify_outputs
from ingest.errors import ReadError, SchemaMismatchError, UsageError, ValidationRejected
from ingest.keys import Keyring
from ingest.pipeline import run_delivery
from ingest.settings import load_settings
from ingest.synth import generate, to_delimited
from ingest.writers import decrypt_jsonl

from conftest import DELIVERY_DATE, ROOT, data_fixture

ACCDB = ("access", "reference_20k.accdb")
ACCESS_DATE = date(2024, 6, 30)  # the delivery date of the Access fixtures' truth
SCHEMAS = ["reference", "counties"]


def access_truth() -> dict:
    return json.loads(data_fixture("access", "reference_20k.truth.json").read_text())


@pytest.fixture(scope="module")
def counties_csv() -> bytes:
    """The COUNTIES lookup as a CSV, written by mdbtools from the Access fixture."""
    proc = subprocess.run(["mdb-export", str(data_fixture(*ACCDB)), "COUNTIES"],
                          capture_output=True, check=True)
    return proc.stdout


def counties_frame(data: bytes) -> pl.DataFrame:
    return pl.read_csv(io.BytesIO(data), infer_schema=False)


def published(out: Path) -> list[str]:
    """Every entry under the output root that a reader could see (not hidden)."""
    return sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) \
        if out.exists() else []


def quarantine_rows(folder: Path, name: str, home: Path) -> pl.DataFrame:
    identity = Keyring.open(load_settings(home=home)).age_identity()
    return decrypt_jsonl((folder / name).read_bytes(), identity)


# -- Access: CASES and COUNTIES of one database --------------------------------------


def test_access_database_with_cases_and_counties(home: Path, tmp_path: Path,
                                                 counties_csv: bytes) -> None:
    truth = access_truth()["expected"]
    summary = run_delivery(data_fixture(*ACCDB), schema=SCHEMAS, out=tmp_path / "out",
                           delivery_date=ACCESS_DATE)
    folder = Path(summary.output_dir)
    parts = {t["name"]: t for t in summary.tables}
    assert list(parts) == SCHEMAS
    assert (parts["reference"]["rows_in"], parts["reference"]["rows_accepted"],
            parts["reference"]["rows_quarantined"]) == (
        truth["rows_in"], truth["rows_clean"], truth["rows_quarantined"])
    lookup = counties_frame(counties_csv)
    assert (parts["counties"]["rows_in"], parts["counties"]["rows_accepted"]) == (
        lookup.height, lookup.height) == (3_221, 3_221)
    assert summary.rows_in == truth["rows_in"] + 3_221
    assert summary.schema == "reference+counties"
    files = {o["path"] for o in summary.outputs}
    assert {"reference.parquet", "reference.jsonl.age", "reference.quarantine.jsonl.age",
            "reference.features.npz.age", "reference.features.json.age",
            "counties.parquet", "counties.jsonl.age", "counties.quarantine.jsonl.age",
            "manifest.json"} <= files
    # features only for a dataset that declares them; no unprefixed side outputs
    assert not {"counties.features.npz.age", "quarantine.jsonl.age",
                "features.npz.age"} & files
    clean = ingest.load(folder, table="counties")
    assert clean.columns == ["county_fips", "county_name"]
    expected = lookup.rename({"CNTY_FIPS": "county_fips", "NAME": "county_name"})
    assert clean.sort("county_fips").equals(expected.sort("county_fips"))
    cases = ingest.load(folder, table="reference", columns=["case_id"])
    assert cases.height == truth["rows_clean"]
    bad = quarantine_rows(folder, "reference.quarantine.jsonl.age", home)
    assert bad.height == truth["rows_quarantined"]
    assert quarantine_rows(folder, "counties.quarantine.jsonl.age", home).height == 0


# -- a folder of two CSVs, one of them OpenPGP-encrypted ------------------------------


@pytest.fixture
def two_csvs(pgp_delivery, counties_csv: bytes):
    """cases.csv.gpg (20,000 generated rows, encrypted to the keyring) and a plain
    counties.csv beside it."""
    folder, truth = pgp_delivery()
    (folder / "counties.csv").write_bytes(counties_csv)
    return folder, truth


def test_folder_of_two_csvs_one_encrypted(two_csvs, home: Path, tmp_path: Path,
                                         counties_csv: bytes) -> None:
    folder, truth = two_csvs
    summary = run_delivery(folder, schema=SCHEMAS, out=tmp_path / "out",
                           delivery_date=DELIVERY_DATE)
    parts = {t["name"]: t for t in summary.tables}
    assert (parts["reference"]["rows_accepted"], parts["reference"]["rows_quarantined"]) == (
        truth.accepted, truth.quarantined)
    assert parts["counties"]["rows_accepted"] == counties_frame(counties_csv).height
    out = Path(summary.output_dir)
    quarantined = quarantine_rows(out, "reference.quarantine.jsonl.age", home)
    assert set(quarantined["_row"].to_list()) == set(truth.bad_rows)
    doc = ingest.manifest(out)
    reads = {t["name"]: t["read"] for t in doc["tables"]}
    assert reads["reference"]["member"] == "cases.csv"  # decrypted from cases.csv.gpg
    assert reads["counties"]["member"] == "counties.csv"
    # the order of the schemas is the order of the tables; it changes no outcome
    again = run_delivery(folder, schema=list(reversed(SCHEMAS)), out=tmp_path / "out2",
                         delivery_date=DELIVERY_DATE)
    assert [t["name"] for t in again.tables] == ["counties", "reference"]
    assert {t["name"]: t["rows_accepted"] for t in again.tables} == {
        t["name"]: t["rows_accepted"] for t in summary.tables}


def test_the_manifest_holds_each_tables_part(two_csvs, home: Path, tmp_path: Path) -> None:
    folder, truth = two_csvs
    summary = run_delivery(folder, schema=SCHEMAS, out=tmp_path / "out",
                           delivery_date=DELIVERY_DATE)
    out = Path(summary.output_dir)
    doc = ingest.manifest(out)
    assert doc["schema"]["name"] == "reference+counties"
    assert doc["schema"]["tables"] == SCHEMAS
    parts = doc["tables"]
    assert [p["name"] for p in parts] == SCHEMAS
    for part in parts:
        assert {"schema", "read", "rows", "quarantine_reasons", "repairs", "columns",
                "outputs"} <= set(part)
        assert part["schema"]["name"] == part["name"]
        assert part["rows"]["in"] == part["rows"]["accepted"] + part["rows"]["quarantined"]
        assert sum(part["quarantine_reasons"].values()) == part["rows"]["quarantined"]
    reference = parts[0]
    assert reference["rows"] == {"in": truth.rows, "accepted": truth.accepted,
                                 "quarantined": truth.quarantined}
    assert reference["columns"]["restricted"] == ["person_id", "birth_date", "comments"] \
        or set(reference["columns"]["restricted"]) >= {"birth_date", "comments"}
    # totals on top, each rule and repair named after its table
    assert doc["rows"] == {k: sum(p["rows"][k] for p in parts)
                           for k in ("in", "accepted", "quarantined")}
    assert doc["quarantine_reasons"] == {f"{p['name']}.{r}": n for p in parts
                                         for r, n in p["quarantine_reasons"].items()}
    assert doc["repairs"] == {f"{p['name']}.{r}": n for p in parts
                              for r, n in p["repairs"].items()}
    # every output belongs to exactly one table, or is the manifest
    listed = {o["path"] for o in doc["outputs"]}
    owned = [f for p in parts for f in p["outputs"]]
    assert len(owned) == len(set(owned)) and set(owned) == listed
    assert all(f.startswith(f"{p['name']}.") or p["name"] in f
               for p in parts for f in p["outputs"])
    assert [e["outputs_checked"] for e in verify_outputs(out, Keyring.open(
        load_settings()))] == [len(listed)]


def test_a_single_table_run_keeps_its_names_and_fields(pgp_delivery, tmp_path: Path) -> None:
    folder, _ = pgp_delivery()
    summary = run_delivery(folder, schema="reference", out=tmp_path / "out",
                           delivery_date=DELIVERY_DATE)
    doc = ingest.manifest(summary.output_dir)
    assert "tables" not in doc and summary.tables == []
    assert doc["schema"]["name"] == "reference"
    assert {o["path"] for o in doc["outputs"]} == {
        "reference.parquet", "_KEY_MATERIAL_FOR_reference.parquet.json",
        "reference.jsonl.age", "quarantine.jsonl.age", "features.npz.age",
        "features.json.age"}
    assert ingest.load(summary.output_dir).height == summary.rows_accepted


# -- a workbook of two sheets -----------------------------------------------------------


def workbook(sheets: dict[str, pl.DataFrame]) -> bytes:
    """An .xlsx made by XlsxWriter, every cell text, one sheet per frame."""
    import xlsxwriter  # type: ignore[import-untyped]

    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True, "strings_to_numbers": False})
    for name, frame in sheets.items():
        sheet = book.add_worksheet(name)
        sheet.write_row(0, 0, frame.columns)
        for r, row in enumerate(frame.iter_rows(), start=1):
            for c, value in enumerate(row):
                if value is not None:
                    sheet.write_string(r, c, str(value))
    book.close()
    return buffer.getvalue()


def test_workbook_with_a_sheet_per_table(home: Path, tmp_path: Path,
                                         counties_csv: bytes) -> None:
    cases, truth = generate(2_000, seed=11, delivery_date=DELIVERY_DATE)
    lookup = counties_frame(counties_csv)
    folder = tmp_path / "delivery"
    folder.mkdir()
    (folder / "cases.xlsx").write_bytes(workbook({"Counties": lookup, "Cases": cases}))
    summary = run_delivery(folder, schema=SCHEMAS, out=tmp_path / "out",
                           delivery_date=DELIVERY_DATE)
    parts = {t["name"]: t for t in summary.tables}
    assert (parts["reference"]["rows_accepted"], parts["reference"]["rows_quarantined"]) == (
        truth.accepted, truth.quarantined)
    assert parts["counties"]["rows_accepted"] == lookup.height
    doc = ingest.manifest(summary.output_dir)
    assert {t["read"]["member"] for t in doc["tables"]} == {"cases.xlsx"}
    names = ingest.load(summary.output_dir, table="counties")["county_name"].sort()
    assert names.to_list() == sorted(lookup["NAME"].to_list())


# -- one table fails: nothing is published ------------------------------------------------


def test_one_table_over_its_quarantine_share_publishes_nothing(
        two_csvs, home: Path, tmp_path: Path, counties_csv: bytes) -> None:
    folder, _ = two_csvs
    lookup = counties_frame(counties_csv)
    broken = lookup.with_columns(
        pl.when(pl.int_range(pl.len()) % 10 == 0).then(pl.lit("ABCDE"))
        .otherwise(pl.col("CNTY_FIPS")).alias("CNTY_FIPS"))  # 10 % bad, 5 % allowed
    (folder / "counties.csv").write_bytes(broken.write_csv().encode())
    out = tmp_path / "out"
    with pytest.raises(ValidationRejected, match="table 'counties' of 2: .* nothing was published"):
        run_delivery(folder, schema=SCHEMAS, out=out, delivery_date=DELIVERY_DATE)
    assert published(out) == []
    # the same delivery with the good lookup is published whole
    (folder / "counties.csv").write_bytes(counties_csv)
    summary = run_delivery(folder, schema=SCHEMAS, out=out, delivery_date=DELIVERY_DATE)
    assert published(out) == [Path(summary.output_dir).name]


def test_a_missing_table_publishes_nothing(pgp_delivery, tmp_path: Path) -> None:
    folder, _ = pgp_delivery()
    out = tmp_path / "out"
    with pytest.raises(SchemaMismatchError, match="no table of schema 'counties'"):
        run_delivery(folder, schema=SCHEMAS, out=out, delivery_date=DELIVERY_DATE)
    assert published(out) == []


def test_two_members_holding_one_table_are_refused(pgp_delivery, tmp_path: Path,
                                                  counties_csv: bytes) -> None:
    folder, _ = pgp_delivery()
    (folder / "counties.csv").write_bytes(counties_csv)
    (folder / "more.csv").write_bytes(counties_csv)
    with pytest.raises(ReadError, match="more than one member holds the table of schema "
                       "'counties': counties.csv, more.csv"):
        run_delivery(folder, schema=SCHEMAS, out=tmp_path / "out",
                     delivery_date=DELIVERY_DATE)
    assert published(tmp_path / "out") == []


def test_a_text_member_matching_two_schemas_is_refused(pgp_delivery, tmp_path: Path,
                                                       counties_csv: bytes) -> None:
    from schemas.counties import DATASET as COUNTIES

    folder, _ = pgp_delivery()
    (folder / "counties.csv").write_bytes(counties_csv)
    regions = replace(COUNTIES, name="regions")  # the same columns under another name
    with pytest.raises(ReadError, match="counties.csv: its header matches schemas "
                       "'counties' and 'regions'"):
        run_delivery(folder, schema=["reference", COUNTIES, regions], out=tmp_path / "out",
                     delivery_date=DELIVERY_DATE)


def test_schemas_given_twice_or_unfit_to_name_files_are_refused(home: Path,
                                                              tmp_path: Path) -> None:
    from schemas.counties import DATASET as COUNTIES

    with pytest.raises(UsageError, match="more than once"):
        run_delivery(tmp_path, schema=["counties", "counties"], out=tmp_path / "out")
    # a table's name becomes its files' names: a path or a dot would mix tables up
    for name in ("../counties", "reference.x"):
        with pytest.raises(UsageError, match="letters, digits, _ and - only"):
            run_delivery(tmp_path, schema=["reference", replace(COUNTIES, name=name)],
                         out=tmp_path / "out")
    assert published(tmp_path / "out") == []


# -- reading back: ingest.load(table=...) ------------------------------------------------


def test_load_picks_a_table_or_lists_them(two_csvs, home: Path, tmp_path: Path) -> None:
    folder, truth = two_csvs
    out = tmp_path / "out"
    summary = run_delivery(folder, schema=SCHEMAS, out=out, delivery_date=DELIVERY_DATE)
    with pytest.raises(UsageError, match=r"holds 2 tables \(counties, reference\)"):
        ingest.load(out)
    assert ingest.load(out, table="reference").height == truth.accepted
    assert ingest.load(summary.output_dir, table="counties", as_="arrow").num_rows == 3_221
    lazy = ingest.scan(out, table="counties").filter(pl.col("county_fips") == "01001")
    assert lazy.collect().height == 1
    with pytest.raises(UsageError, match="no table 'cases'.*counties, reference"):
        ingest.load(out, table="cases")
    # a root of a single-table delivery and this one: one table across both
    single, _ = generate(500, seed=3, delivery_date=DELIVERY_DATE), None
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "cases.csv").write_bytes(to_delimited(single[0]))
    run_delivery(plain, schema="reference", out=out, delivery_date=DELIVERY_DATE)
    both = ingest.load(out, table="reference", columns=["case_id"])
    assert both.height == truth.accepted + single[1].accepted
    assert both["delivery_id"].n_unique() == 2


# -- the command ------------------------------------------------------------------------


def test_cli_runs_a_repeated_schema(two_csvs, home: Path, tmp_path: Path) -> None:
    folder, truth = two_csvs
    env = dict(os.environ, INGEST_HOME=str(home))
    out = tmp_path / "out"
    proc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ingest"), "run", str(folder), "--schema", "reference",
         "--schema", "counties", "--out", str(out), "--delivery-date",
         DELIVERY_DATE.isoformat(), "--no-prefect", "--json"],
        env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    parts = {t["name"]: t for t in doc["tables"]}
    assert parts["reference"]["rows_quarantined"] == truth.quarantined
    assert parts["counties"]["rows_accepted"] == 3_221
    assert doc["rows_in"] == truth.rows + 3_221
    cat = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ingest"), "cat", str(out), "--table", "counties",
         "--format", "arrow"], env=env, capture_output=True, check=False)
    assert cat.returncode == 0, cat.stderr
    import pyarrow as pa

    assert pa.ipc.open_stream(cat.stdout).read_all().num_rows == 3_221


# -- what people see: report, status, verify, the flow ---------------------------------------


def test_report_status_and_verify_show_each_table(two_csvs, home: Path,
                                                  tmp_path: Path) -> None:
    from ingest import report
    from ingest.status import deliveries, render

    folder, truth = two_csvs
    out = tmp_path / "out"
    summary = run_delivery(folder, schema=SCHEMAS, out=out, delivery_date=DELIVERY_DATE)
    doc = summary.to_json()
    profile = {"tables": {
        "reference": report.column_profile(ingest.load(out, table="reference")),
        "counties": report.column_profile(ingest.load(out, table="counties"))}}
    text = report.markdown(doc, profile)
    assert "## Tables" in text
    assert f"| reference | {truth.rows:,} | {truth.accepted:,} | {truth.quarantined:,} |" \
        in text
    assert "| counties | 3,221 | 3,221 | 0 |" in text
    # null rates per table, each over its own table's rows
    assert "| reference.lab_value |" in text and "| counties.county_name | 0 | 0% |" in text
    page = report.html_report(doc, profile, report.history(out))
    assert "<td>counties</td><td class=n>3,221</td>" in page
    rows = report.table(doc)
    assert {"section": "table", "name": "counties accepted", "value": 3_221} in rows
    listed = deliveries(load_settings(), out)
    mine = [r for r in listed if r["folder"] == summary.output_dir]
    assert [t["name"] for t in mine[0]["tables"]] == SCHEMAS
    shown = render(listed)
    assert "table counties" in shown and "table reference" in shown
    checked = verify_outputs(out, Keyring.open(load_settings()))
    assert checked[0]["tables"] == SCHEMAS


@pytest.mark.prefect_server
def test_the_flow_runs_several_tables(two_csvs, home: Path, tmp_path: Path) -> None:
    folder, truth = two_csvs
    env = dict(os.environ, INGEST_HOME=str(home))
    env.pop("PREFECT_API_URL", None)
    ingest_bin = str(ROOT / ".venv" / "bin" / "ingest")
    try:
        proc = subprocess.run(
            [ingest_bin, "run", str(folder), "--schema", "reference", "--schema", "counties",
             "--out", str(tmp_path / "out"), "--delivery-date", DELIVERY_DATE.isoformat(),
             "--json"], env=env, capture_output=True, text=True, check=False)
    finally:
        subprocess.run([ingest_bin, "server", "stop"], env=env, check=False,
                       capture_output=True)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [t["name"] for t in doc["tables"]] == SCHEMAS
    assert doc["rows_quarantined"] == truth.quarantined
    page = (Path(doc["output_dir"]) / "report.html").read_text()
    assert "<h2>Tables</h2>" in page and "counties.county_name" in page


# -- a bundle: one schema module naming the tables of a delivery ----------------------------


def test_a_bundle_names_the_tables(two_csvs, home: Path, tmp_path: Path) -> None:
    folder, truth = two_csvs
    shipped = run_delivery(folder, schema="reference_and_counties", out=tmp_path / "a",
                           delivery_date=DELIVERY_DATE)
    assert [t["name"] for t in shipped.tables] == SCHEMAS
    # a bundle file of the user's own: a path beside it, and a shipped name
    mine = tmp_path / "schemas"
    mine.mkdir()
    (mine / "lookup.py").write_text(
        "from dataclasses import replace\n"
        "from schemas.counties import DATASET as COUNTIES\n"
        "DATASET = replace(COUNTIES, name='lookup')\n")
    (mine / "bundle.py").write_text("DATASETS = ('reference', 'lookup.py')\n")
    summary = run_delivery(folder, schema=str(mine / "bundle.py"), out=tmp_path / "b",
                           delivery_date=DELIVERY_DATE)
    parts = {t["name"]: t for t in summary.tables}
    assert list(parts) == ["reference", "lookup"]
    assert parts["reference"]["rows_quarantined"] == truth.quarantined
    assert ingest.load(summary.output_dir, table="lookup").height == 3_221
    (mine / "empty.py").write_text("DATASETS = ()\n")
    with pytest.raises(UsageError, match="non-empty tuple"):
        run_delivery(folder, schema=str(mine / "empty.py"), out=tmp_path / "c")


def test_feature_matrices_per_table_line_up_across_deliveries(
        home: Path, tmp_path: Path, counties_csv: bytes) -> None:
    import ingest.features

    out = tmp_path / "out"
    first, _ = generate(3_000, seed=21, delivery_date=DELIVERY_DATE)
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "cases.csv").write_bytes(to_delimited(first))
    single = run_delivery(alone, schema="reference", out=out, delivery_date=DELIVERY_DATE)
    # the next delivery brings the lookup too, and only a few of the categories seen
    later, _ = generate(3_000, seed=22, delivery_date=DELIVERY_DATE)
    later = later.filter(pl.col("SEX") == "F")
    both = tmp_path / "both"
    both.mkdir()
    (both / "cases.csv").write_bytes(to_delimited(later))
    (both / "counties.csv").write_bytes(counties_csv)
    summary = run_delivery(both, schema=SCHEMAS, out=out, delivery_date=DELIVERY_DATE)
    before = ingest.features.load(single.output_dir)
    after = ingest.features.load(summary.output_dir, table="reference")
    assert after.feature_names == before.feature_names  # the encoding was reused
    assert after.X.shape[0] == summary.tables[0]["rows_accepted"]
    with pytest.raises(UsageError, match="say which table's features: reference"):
        ingest.features.load(summary.output_dir)
    with pytest.raises(UsageError, match="without these features"):
        ingest.features.load(summary.output_dir, table="counties")


def test_a_large_text_table_is_parsed_once_and_its_plaintext_freed(
        counties_csv: bytes) -> None:
    """The lookup's schema never parses the main table: its header lacks the lookup's
    columns (though it holds the county code), so only the main schema reads it,
    taking its bytes as a run of one table does."""
    from ingest.media import Member
    from ingest.readers import read_delivery_tables
    from ingest.schema import load_dataset

    cases, _ = generate(1_000, seed=9, delivery_date=DELIVERY_DATE)
    main = Member("cases.csv", to_delimited(cases))
    lookup = Member("counties.csv", counties_csv)
    read = read_delivery_tables([main, lookup], [load_dataset(s) for s in SCHEMAS])
    assert [t.rows for t in read] == [1_000, 3_221]
    assert main.data == b""  # handed over to the one reader that parsed it


def test_a_failure_writing_the_second_table_publishes_neither(
        two_csvs, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first table's outputs are staged, then writing the second fails (a full
    disk, say): no table is published and nothing is left behind."""
    from ingest.errors import OutputError
    from ingest.writers import publish

    folder, _ = two_csvs
    real_open = publish.Staging.open
    staged: list[str] = []

    def failing_open(self: publish.Staging, name: str, kind: str):  # noqa: ANN202
        staged.append(name)
        if name == "counties.jsonl.age":
            raise OutputError("writing counties.jsonl.age: No space left on device")
        return real_open(self, name, kind)

    monkeypatch.setattr(publish.Staging, "open", failing_open)
    out = tmp_path / "out"
    with pytest.raises(OutputError, match="No space left"):
        run_delivery(folder, schema=SCHEMAS, out=out, delivery_date=DELIVERY_DATE)
    assert "reference.parquet" in staged and "reference.jsonl.age" in staged
    assert published(out) == []
    assert not [p for p in out.iterdir() if p.name.startswith(".staging-")]
    monkeypatch.setattr(publish.Staging, "open", real_open)
    summary = run_delivery(folder, schema=SCHEMAS, out=out, delivery_date=DELIVERY_DATE)
    assert published(out) == [Path(summary.output_dir).name]
