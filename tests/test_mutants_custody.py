"""Verification as a custodian relies on it: exact counts, every kind of output
authenticated, a delivery of several tables checked table by table, the audit log's
record of each manifest, and a custodian whose copy of the keys has no audit log.

Written for the mutants of ``ingest/custody.py`` that ``tests/test_custody.py`` lets
live (``scripts/mutants custody``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ingest.custody import rotate, verify_outputs
from ingest.errors import DecryptionError, IngestError, OutputError
from ingest.keys import Keyring
from ingest.pipeline import run_delivery
from ingest.settings import load_settings
from ingest.synth import to_delimited

from conftest import DELIVERY_DATE, data_fixture

SCHEMAS = ["reference", "counties"]


@pytest.fixture
def home(own_keyring: Path) -> Path:
    """A keyring of this test's own (rotation changes keys; the audit log is edited)."""
    return own_keyring


def _deliver(tmp_path: Path, table_20k, tables: int = 1) -> tuple[Path, Path]:
    """A plain CSV delivery of 300 rows (and the counties lookup for two tables),
    published; returns the output root and the delivery's folder."""
    frame, _ = table_20k
    folder = tmp_path / f"delivery-{tables}"
    folder.mkdir()
    (folder / "cases.csv").write_bytes(to_delimited(frame.head(300)))
    if tables == 2:
        counties = subprocess.run(
            ["mdb-export", str(data_fixture("access", "reference_20k.accdb")), "COUNTIES"],
            capture_output=True, check=True).stdout
        (folder / "counties.csv").write_bytes(counties)
    out = tmp_path / f"out-{tables}"
    summary = run_delivery(folder, schema=SCHEMAS[:tables], out=out,
                           delivery_date=DELIVERY_DATE)
    return out, Path(summary.output_dir)


def _listed(folder: Path) -> list[str]:
    return [o["path"] for o in json.loads((folder / "manifest.json").read_text())["outputs"]]


def _reader(home: Path, tmp_path: Path) -> Keyring:
    """A copy of the keys alone, as a custodian elsewhere holds them: no audit log, so
    the manifest itself and the encryption are all that verification can go by."""
    reader = tmp_path / "reader"
    shutil.copytree(home / "keys", reader / "keys")
    return Keyring.open(load_settings(home=reader))


def _edit_manifest(folder: Path, edit) -> None:  # noqa: ANN001
    path = folder / "manifest.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def _rehash(folder: Path, name: str) -> None:
    """Record an output's present hash in the manifest (what a forger would do)."""
    sha = hashlib.sha256((folder / name).read_bytes()).hexdigest()

    def edit(doc: dict) -> None:
        for out in doc["outputs"]:
            if out["path"] == name:
                out["sha256"] = sha
    _edit_manifest(folder, edit)


def _flip_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


# --- what verification reports ------------------------------------------------------------

def test_verification_counts_each_output_once(home: Path, tmp_path: Path, table_20k) -> None:
    out, folder = _deliver(tmp_path, table_20k)
    listed = _listed(folder)
    assert len(listed) >= 6
    assert verify_outputs(out, Keyring.open()) == [
        {"delivery_id": folder.name, "outputs_checked": len(listed)}]


def test_a_delivery_of_several_tables_is_verified_table_by_table(
        home: Path, tmp_path: Path, table_20k) -> None:
    out, folder = _deliver(tmp_path, table_20k, tables=2)
    listed = _listed(folder)
    assert {"reference.parquet", "counties.parquet"} <= set(listed)
    expected = [{"delivery_id": folder.name, "outputs_checked": len(listed),
                 "tables": SCHEMAS}]
    assert verify_outputs(out, Keyring.open()) == expected
    assert verify_outputs(out, _reader(home, tmp_path)) == expected


# --- a manifest that does not hold together (no audit log to compare with) ---------------

def _not_among(folder: Path, table: str) -> str:
    return (f"{folder / 'manifest.json'}: table {table}'s outputs are not among the "
            "outputs it lists; it was altered")


def _unreadable(folder: Path) -> str:
    return f"{folder / 'manifest.json'}: is not a readable manifest; it was damaged or altered"


def test_a_table_whose_outputs_the_manifest_does_not_list_is_refused(
        home: Path, tmp_path: Path, table_20k) -> None:
    out, folder = _deliver(tmp_path, table_20k, tables=2)
    reader = _reader(home, tmp_path)
    original = (folder / "manifest.json").read_bytes()

    def drop_listed(doc: dict) -> None:  # the counties' Parquet file no longer listed
        doc["outputs"] = [o for o in doc["outputs"] if o["path"] != "counties.parquet"]
    _edit_manifest(folder, drop_listed)
    with pytest.raises(OutputError) as caught:
        verify_outputs(out, reader)
    assert str(caught.value) == _not_among(folder, "counties")

    (folder / "manifest.json").write_bytes(original)

    def drop_parquet(doc: dict) -> None:  # listed, but no longer the table's own
        doc["tables"][1]["outputs"].remove("counties.parquet")
    _edit_manifest(folder, drop_parquet)
    with pytest.raises(OutputError) as caught:
        verify_outputs(out, reader)
    assert str(caught.value) == _not_among(folder, "counties")


def test_one_table_owning_every_output_holds_together(home: Path, tmp_path: Path,
                                                     table_20k) -> None:
    out, folder = _deliver(tmp_path, table_20k, tables=2)
    listed = _listed(folder)

    def one_part(doc: dict) -> None:
        doc["tables"] = [{**doc["tables"][0], "outputs": listed}]
    _edit_manifest(folder, one_part)
    assert verify_outputs(out, _reader(home, tmp_path)) == [
        {"delivery_id": folder.name, "outputs_checked": len(listed)}]


ONE_TABLE_DAMAGE = ("schema-without-name", "output-without-path", "output-without-kind",
                    "output-without-hash", "delivery-without-hash", "not-json")


@pytest.mark.parametrize("damage", ["table-without-name", "table-without-outputs",
                                    "tables-not-a-list-of-parts", *ONE_TABLE_DAMAGE])
def test_a_manifest_missing_what_verification_reads_is_refused(
        home: Path, tmp_path: Path, table_20k, damage: str) -> None:
    out, folder = _deliver(tmp_path, table_20k, tables=1 if damage in ONE_TABLE_DAMAGE else 2)
    parquet = _listed(folder).index("reference.parquet")

    def edit(doc: dict) -> None:
        if damage == "table-without-name":
            del doc["tables"][1]["name"]
        elif damage == "table-without-outputs":
            del doc["tables"][0]["outputs"]
        elif damage == "tables-not-a-list-of-parts":
            doc["tables"] = [5]
        elif damage == "schema-without-name":
            del doc["schema"]["name"]
        elif damage == "delivery-without-hash":
            del doc["delivery"]["sha256"]
        elif damage.startswith("output-without-"):
            field = {"path": "path", "kind": "kind", "hash": "sha256"}[damage.split("-")[-1]]
            del doc["outputs"][parquet][field]
    _edit_manifest(folder, edit)
    if damage == "not-json":
        (folder / "manifest.json").write_text('{"delivery": ')
    with pytest.raises(OutputError) as caught:
        verify_outputs(out, _reader(home, tmp_path))
    assert str(caught.value) == _unreadable(folder)


# --- every kind of output is authenticated, not only hashed -------------------------------

@pytest.mark.parametrize("name", ["reference.parquet", "features.npz.age",
                                  "reference.jsonl.age", "quarantine.jsonl.age"])
def test_a_forged_output_with_its_hash_recorded_fails_authentication(
        home: Path, tmp_path: Path, table_20k, name: str) -> None:
    """The manifest's hash rewritten to the altered file's: without an audit log that
    knows the manifest, the encryption's own authentication is what catches it."""
    out, folder = _deliver(tmp_path, table_20k)
    reader = _reader(home, tmp_path)
    _flip_middle(folder / name)
    _rehash(folder, name)
    kind = {"reference.parquet": OutputError, "features.npz.age": OutputError}.get(
        name, DecryptionError)
    with pytest.raises(kind) as caught:
        verify_outputs(out, reader)
    assert str(caught.value) == {
        "reference.parquet": f"{folder / name}: fails authentication (tampered)",
        "features.npz.age": f"{folder / name}: fails authentication (tampered or truncated)",
    }.get(name, f"{name}: cannot be decrypted: wrong identity, tampered or truncated")


def test_an_output_listed_but_gone_is_named(home: Path, tmp_path: Path, table_20k) -> None:
    out, folder = _deliver(tmp_path, table_20k)
    (folder / "features.npz.age").unlink()
    with pytest.raises(OutputError) as caught:
        verify_outputs(out, Keyring.open())
    assert str(caught.value) == f"{folder / 'features.npz.age'}: listed in the manifest but missing"


def test_outputs_verify_after_a_rotation_rewrapped_their_keys(home: Path, tmp_path: Path,
                                                              table_20k) -> None:
    out, folder = _deliver(tmp_path, table_20k)
    material = [p for p in folder.iterdir() if p.name.startswith("_KEY_MATERIAL")]
    before = {p: p.read_bytes() for p in material}
    assert material
    assert rotate(load_settings())["files_rewrapped"] == 1
    assert any(p.read_bytes() != data for p, data in before.items())
    assert verify_outputs(out, Keyring.open()) == [
        {"delivery_id": folder.name, "outputs_checked": len(_listed(folder))}]


# --- the audit log's record of each manifest -----------------------------------------------

def _edit_rows(folder: Path) -> None:
    def edit(doc: dict) -> None:
        doc["rows"]["quarantined"] += 1  # valid JSON, every data file's hash unchanged
    _edit_manifest(folder, edit)


def _recorded_differs(folder: Path) -> str:
    return (f"{folder / 'manifest.json'}: differs from the manifest the audit log recorded "
            "for this delivery; it was altered")


def test_a_failed_run_in_the_audit_log_does_not_stop_verification(
        home: Path, tmp_path: Path, table_20k) -> None:
    empty = tmp_path / "empty-delivery"
    empty.mkdir()
    with pytest.raises(IngestError):
        run_delivery(empty, out=tmp_path / "out-failed", delivery_date=DELIVERY_DATE)
    out, folder = _deliver(tmp_path, table_20k)
    log = load_settings().audit_log.read_bytes().splitlines()
    assert [json.loads(line)["outcome"] for line in log] == ["failed", "publishing",
                                                             "published"]
    assert verify_outputs(out, Keyring.open())[0]["outputs_checked"] == len(_listed(folder))
    _edit_rows(folder)
    with pytest.raises(OutputError) as caught:
        verify_outputs(out, Keyring.open())
    assert str(caught.value) == _recorded_differs(folder)


def test_a_run_killed_before_its_last_audit_line_still_records_its_manifest(
        home: Path, tmp_path: Path, table_20k) -> None:
    """The manifest's hash is logged before the outputs appear ("publishing"); a run
    killed before it logs "published" leaves that record alone, and it is enough."""
    out, folder = _deliver(tmp_path, table_20k)
    log = load_settings().audit_log
    lines = log.read_bytes().splitlines(keepends=True)
    assert json.loads(lines[-1])["outcome"] == "published"
    log.write_bytes(b"".join(lines[:-1]))
    assert verify_outputs(out, Keyring.open())[0]["outputs_checked"] == len(_listed(folder))
    _edit_rows(folder)
    with pytest.raises(OutputError) as caught:
        verify_outputs(out, Keyring.open())
    assert str(caught.value) == _recorded_differs(folder)


# --- rotation ---------------------------------------------------------------------------------

def _audit_entries() -> list[dict]:
    return [json.loads(line) for line in load_settings().audit_log.read_bytes().splitlines()]


def test_a_rotation_rewraps_every_output_root_and_says_what_it_did(
        home: Path, tmp_path: Path, table_20k, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two output roots, each registered when it was published; the keyring to rotate is
    the one given, whatever INGEST_HOME names."""
    out_1, folder_1 = _deliver(tmp_path, table_20k)
    out_2, folder_2 = _deliver(tmp_path, table_20k, tables=2)
    before = Keyring.open().current_master_keys()
    settings = load_settings()
    monkeypatch.setenv("INGEST_HOME", str(tmp_path / "no-keyring-here"))
    done = rotate(settings)
    monkeypatch.setenv("INGEST_HOME", str(home))
    after = Keyring.open().current_master_keys()
    assert done == {"keys": {role: {"retired": before[role].id, "current": after[role].id}
                             for role in ("general", "restricted")},
                    "files_rewrapped": 3}
    assert all(before[r].id != after[r].id for r in ("general", "restricted"))
    assert _audit_entries()[-1]["event"] == "key-rotation"
    assert (_audit_entries()[-1]["outcome"], _audit_entries()[-1]["keys"],
            _audit_entries()[-1]["files"]) == ("ok", done["keys"], 3)
    for out in (out_1, out_2):
        assert verify_outputs(out, Keyring.open())[0]["outputs_checked"] > 0


def test_a_keyring_that_never_published_rotates_nothing(home: Path) -> None:
    assert not (home / "output-roots.json").exists()
    assert rotate(load_settings(), roles=("general",))["files_rewrapped"] == 0


def test_a_rotation_that_fails_is_logged_and_keeps_the_old_keys(
        home: Path, tmp_path: Path, table_20k) -> None:
    _, folder = _deliver(tmp_path, table_20k)
    next(p for p in folder.iterdir() if p.name.startswith("_KEY_MATERIAL")).unlink()
    old = Keyring.open().master_key("general")
    with pytest.raises(OutputError):
        rotate(load_settings(), roles=("general",))
    new = Keyring.open().master_key("general")
    last = _audit_entries()[-1]
    assert (last["event"], last["outcome"]) == ("key-rotation", "failed")
    assert last["keys"] == {"general": {"retired": old.id, "current": new.id}}
    assert Keyring.open().master_keys_by_id()[old.id] == old  # kept until it finishes
