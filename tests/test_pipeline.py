"""The library path end to end: an encrypted CSV delivery to encrypted outputs."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import ingest
from ingest.errors import KeyringError, OutputError, ValidationRejected
from ingest.keys import Keyring
from ingest.pipeline import run_delivery
from ingest.settings import load_settings
from ingest.synth import generate
from ingest.writers import decrypt_jsonl

from conftest import DELIVERY_DATE


@pytest.fixture
def published(pgp_delivery, tmp_path: Path):
    folder, truth = pgp_delivery()
    out = tmp_path / "out"
    summary = run_delivery(folder, out=out, delivery_date=DELIVERY_DATE)
    return summary, truth, out


def test_rows_are_accounted_for_and_match_the_truth(published) -> None:
    summary, truth, out = published
    assert summary.rows_in == truth.rows
    assert summary.rows_accepted + summary.rows_quarantined == summary.rows_in
    assert summary.rows_quarantined == truth.quarantined
    ring = Keyring.open()
    quarantine = decrypt_jsonl((Path(summary.output_dir) / "quarantine.jsonl.age").read_bytes(),
                               ring.age_identity())
    assert sorted(quarantine["_row"].to_list()) == sorted(truth.bad_rows)
    assert quarantine["_reasons"].null_count() == 0


def test_parquet_is_encrypted_and_loads_back(published, table_20k) -> None:
    summary, truth, out = published
    path = Path(summary.output_dir) / "reference.parquet"
    data = path.read_bytes()
    assert data[:4] == b"PARE" and data[-4:] == b"PARE"
    with pytest.raises(OSError):
        pq.read_table(path)  # no keys: unreadable
    df = ingest.load(out)
    assert df.height == truth.accepted
    frame, _ = table_20k
    good_rows = [i for i in range(truth.rows) if i + 1 not in truth.bad_rows]
    expected_ids = frame["CASE_ID"].gather(good_rows).to_list()
    assert df["case_id"].to_list() == expected_ids
    assert df["person_id"].str.len_chars().unique().to_list() == [64]  # pseudonymised
    assert not set(df["person_id"].to_list()) & set(frame["PERS_ID"].to_list())


def test_jsonl_opens_with_the_age_command(published, home: Path) -> None:
    summary, truth, _ = published
    if not shutil.which("age"):
        pytest.fail("the age command is missing: run scripts/bootstrap install")
    proc = subprocess.run(["age", "-d", "-i", str(home / "keys" / "age-identity.txt"),
                           str(Path(summary.output_dir) / "reference.jsonl.age")],
                          capture_output=True, check=True)
    lines = proc.stdout.splitlines()
    assert len(lines) == truth.accepted
    assert set(json.loads(lines[0])) == {"case_id", "person_id", "birth_date", "sex",
                                         "county_fips", "report_date", "diagnosis_code",
                                         "lab_value", "hospitalized", "comments"}


def test_manifest_has_hashes_counts_and_no_values(published, table_20k) -> None:
    import hashlib

    summary, truth, _ = published
    folder = Path(summary.output_dir)
    manifest = ingest.manifest(folder)
    assert manifest["rows"] == {"in": truth.rows, "accepted": truth.accepted,
                                "quarantined": truth.quarantined}
    for out in manifest["outputs"]:
        if out["kind"] != "manifest":
            assert hashlib.sha256((folder / out["path"]).read_bytes()).hexdigest() == \
                out["sha256"]
    text = (folder / "manifest.json").read_text()
    frame, _ = table_20k
    for value in frame["PERS_ID"].head(50).to_list() + frame["CASE_ID"].head(50).to_list():
        assert value not in text


def test_outputs_are_private(published) -> None:
    summary, _, out = published
    for path in [out, *out.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path


def test_rerun_is_idempotent_and_force_replaces(published, pgp_delivery) -> None:
    summary, _, out = published
    folder = Path(summary.output_dir)
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    again = run_delivery(folder.parent.parent / "delivery", out=out, delivery_date=DELIVERY_DATE)
    assert again.skipped and again.rows_accepted == summary.rows_accepted
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    forced = run_delivery(folder.parent.parent / "delivery", out=out,
                          delivery_date=DELIVERY_DATE, force=True)
    assert not forced.skipped
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} != before
    assert sorted(p.name for p in out.iterdir()) == [".locks", summary.delivery_id]


def test_too_many_bad_rows_rejects_the_delivery(pgp_delivery, tmp_path: Path,
                                                monkeypatch) -> None:
    frame, truth = generate(2000, seed=3, bad_share=0.2, delivery_date=DELIVERY_DATE)
    folder, _ = pgp_delivery(frame, truth, name="bad")
    out = tmp_path / "out"
    with pytest.raises(ValidationRejected, match="nothing was published"):
        run_delivery(folder, out=out, delivery_date=DELIVERY_DATE)
    assert [p.name for p in out.iterdir()] == [".locks"]


def test_wrong_keyring_cannot_read(published, tmp_path: Path) -> None:
    _, _, out = published
    other = load_settings(home=tmp_path / "other-home")
    Keyring.init(other)
    with pytest.raises(KeyringError, match="not authorised"):
        ingest.load(out, settings=other)


def test_a_flipped_byte_in_the_parquet_is_detected(published) -> None:
    summary, _, out = published
    path = Path(summary.output_dir) / "reference.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    os.chmod(path, 0o600)
    path.write_bytes(bytes(data))
    with pytest.raises((OutputError, KeyringError)):
        ingest.load(out)


def test_scan_reads_lazily_only_what_the_query_needs(published, tmp_path: Path) -> None:
    import shutil

    import polars as pl

    summary, truth, out = published
    full = ingest.load(out)
    lazy = ingest.scan(out)
    query = lazy.filter(pl.col("lab_value") > 10).select("case_id", "lab_value")
    assert query.collect().equals(full.filter(pl.col("lab_value") > 10)
                                  .select("case_id", "lab_value"))
    assert lazy.head(5).collect().height == 5
    # a general-key reader may scan general columns; restricted ones are refused
    reader = tmp_path / "reader"
    shutil.copytree(Path(os.environ["INGEST_HOME"]) / "keys", reader / "keys")
    (reader / "keys" / "restricted.json").unlink()
    general = ingest.scan(out, settings=load_settings(home=reader))
    assert general.select("sex").collect().height == truth.accepted
    with pytest.raises(KeyringError, match="not authorised for column birth_date"):
        general.select("birth_date").collect()


def test_pseudonyms_are_hmac_sha256_of_the_identifier() -> None:
    import hashlib
    import hmac

    import polars as pl

    from ingest.keys import SecretKey
    from ingest.writers import pseudonymise

    key = SecretKey("pseudonym-test", bytes(range(32)))
    values = pl.Series("person_id", ["P0000ABCD", None, "P0000ABCD", "PCAFEBABE"])
    tokens = pseudonymise(values, key).to_list()
    expected = hmac.new(key.material, b"P0000ABCD", hashlib.sha256).hexdigest()
    assert tokens[0] == tokens[2] == expected and tokens[1] is None
    assert tokens[3] != expected and len(tokens[3]) == 64
    accented = pseudonymise(pl.Series(["Zoë Ñúñez"]), key).item()
    assert accented == hmac.new(key.material, "Zoë Ñúñez".encode(), hashlib.sha256).hexdigest()


def test_feature_columns_line_up_across_deliveries(pgp_delivery, tmp_path: Path) -> None:
    import ingest.features

    frame, truth = generate(3000, seed=21, delivery_date=DELIVERY_DATE)
    first, _ = pgp_delivery(frame, truth, name="first")
    # the second delivery has a county and a code the first never had
    later = frame.with_columns(frame["CNTY_FIPS"].scatter(0, "99999"),
                               frame["DX_CD"].scatter(1, "Z99.9"),
                               frame["CASE_ID"].str.replace(r"^0", "9"))
    second, _ = pgp_delivery(later, truth, name="second")
    out = tmp_path / "out"
    a = run_delivery(first, out=out, delivery_date=DELIVERY_DATE)
    b = run_delivery(second, out=out, delivery_date=DELIVERY_DATE)
    fa = ingest.features.load(a.output_dir)
    fb = ingest.features.load(b.output_dir)
    assert fa.feature_names == fb.feature_names
    unseen = fb.feature_names.index("county_fips=__unseen__")
    assert fb.X[0, unseen] == 1 and fa.X[:, unseen].sum() == 0


def test_a_dropped_column_is_never_written(pgp_delivery, tmp_path: Path) -> None:
    import dataclasses

    from ingest.schema import load_dataset

    base = load_dataset("reference")
    columns = tuple(dataclasses.replace(c, policy="drop") if c.name == "comments" else c
                    for c in base.columns)
    dataset = dataclasses.replace(base, columns=columns)
    folder, _ = pgp_delivery()
    summary = run_delivery(folder, schema=dataset, out=tmp_path / "out",
                           delivery_date=DELIVERY_DATE)
    assert "comments" not in ingest.load(tmp_path / "out").columns
    assert ingest.manifest(summary.output_dir)["columns"]["dropped"] == ["comments"]


def test_the_published_quarantine_holds_each_bad_row_its_reason_and_first_row(
        published, table_20k, home: Path) -> None:
    """The quarantine as a user opens it (the age command, not our reader), row by row
    against the generator's truth: the row as delivered, the reason its kind must
    earn, and for a repeated CASE_ID the first row holding it, found here by a plain
    scan of the generated table."""
    from ingest.synth import EXPECTED_REASON

    summary, truth, _ = published
    frame, _ = table_20k
    if not shutil.which("age"):
        pytest.fail("the age command is missing: run scripts/bootstrap install")
    proc = subprocess.run(["age", "-d", "-i", str(home / "keys" / "age-identity.txt"),
                           str(Path(summary.output_dir) / "quarantine.jsonl.age")],
                          capture_output=True, check=True)
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == truth.quarantined == len(truth.bad_rows)

    first_seen: dict[str, int] = {}
    for number, case_id in enumerate(frame["CASE_ID"].to_list(), start=1):
        first_seen.setdefault(case_id, number)
    source = frame.rows(named=True)
    for got in rows:
        row = got["_row"]
        kind = truth.bad_rows[row]
        assert set(got) == {*frame.columns, "_row", "_reasons", "_first_row"}, row
        assert {c: got[c] for c in frame.columns} == source[row - 1], row
        assert got["_reasons"].split("; ") == [EXPECTED_REASON[kind]], (row, kind)
        expected_first = first_seen[source[row - 1]["CASE_ID"]] \
            if kind == "duplicate_case_id" else None
        assert expected_first != row
        assert got["_first_row"] == expected_first, (row, kind)
    assert sorted(r["_row"] for r in rows) == sorted(truth.bad_rows)
    assert summary.quarantine_reasons == {
        EXPECTED_REASON[k]: n for k, n in truth.by_kind().items() if n}
