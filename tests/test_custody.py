"""Column keys, key rotation, delivery binding, tamper detection, the audit trail."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import ingest
from ingest import audit
from ingest.custody import rotate, verify_outputs
from ingest.errors import DecryptionError, KeyringError, OutputError
from ingest.keys import Keyring
from ingest.pipeline import run_delivery
from ingest.settings import load_settings

from conftest import DELIVERY_DATE, ROOT

INGEST = str(ROOT / ".venv" / "bin" / "ingest")
RESTRICTED = {"person_id", "birth_date", "comments"}


@pytest.fixture
def own_home(own_keyring: Path) -> Path:
    """A keyring of this test's own (rotation changes keys)."""
    return own_keyring


@pytest.fixture
def published(own_home: Path, tmp_path: Path, table_20k):
    from ingest.crypto.openpgp import encrypt_openpgp, export_public_key
    from ingest.synth import to_delimited

    frame, truth = table_20k
    folder = tmp_path / "delivery"
    folder.mkdir()
    (folder / "cases.csv.gpg").write_bytes(encrypt_openpgp(
        to_delimited(frame.head(3000)), tmp_path / "sender",
        recipient_key=export_public_key(own_home / "gnupg")))
    out = tmp_path / "out"
    summary = run_delivery(folder, out=out, delivery_date=DELIVERY_DATE)
    return own_home, out, Path(summary.output_dir)


def test_general_key_reads_only_general_columns(published, tmp_path: Path) -> None:
    home, out, _ = published
    reader = tmp_path / "reader"
    shutil.copytree(home / "keys", reader / "keys")
    (reader / "keys" / "restricted.json").unlink()
    settings = load_settings(home=reader)
    general = ingest.load(out, columns=["case_id", "sex", "lab_value"], settings=settings)
    assert general.height > 0
    with pytest.raises(KeyringError, match="not authorised for column birth_date"):
        ingest.load(out, columns=["case_id", "birth_date"], settings=settings)
    with pytest.raises(KeyringError, match="not authorised for column person_id"):
        ingest.load(out, settings=settings)
    full = ingest.load(out)
    assert RESTRICTED <= set(full.columns)


def test_rotation_rewraps_without_rewriting_and_retires_the_old_key(published,
                                                                     tmp_path: Path) -> None:
    home, out, folder = published
    before = ingest.load(out)
    parquet = folder / "reference.parquet"
    data_before = parquet.read_bytes()
    old_home = tmp_path / "old-keys"
    shutil.copytree(home / "keys", old_home / "keys")
    done = rotate(load_settings())
    assert done["files_rewrapped"] == 1
    assert parquet.read_bytes() == data_before  # the data was not rewritten
    assert ingest.load(out).equals(before)
    with pytest.raises(KeyringError, match="not authorised"):
        ingest.load(out, settings=load_settings(home=old_home))
    assert not list((home / "keys" / "retired").glob("*.json"))
    assert audit.verify(home / "audit.log") >= 2


def test_swapped_files_between_deliveries_are_detected(published, tmp_path: Path) -> None:
    home, out, folder = published
    other = out / "0000000000000000"
    shutil.copytree(folder, other)
    doc = json.loads((other / "manifest.json").read_text())
    doc["delivery"]["sha256"] = "f" * 64
    (other / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(OutputError, match="belongs to another delivery"):
        ingest.load(other)


@pytest.mark.parametrize("name", ["reference.parquet", "reference.jsonl.age",
                                  "quarantine.jsonl.age", "features.npz.age", "manifest.json"])
@pytest.mark.parametrize("where", ["header", "middle", "footer"])
def test_a_flipped_byte_in_any_output_is_detected(published, name: str, where: str) -> None:
    _, out, folder = published
    path = folder / name
    data = bytearray(path.read_bytes())
    pos = {"header": 2, "middle": len(data) // 2, "footer": len(data) - 3}[where]
    data[pos] ^= 0x20
    path.write_bytes(bytes(data))
    with pytest.raises((OutputError, DecryptionError, KeyringError)):  # ours, never foreign
        verify_outputs(out, Keyring.open())


def test_verify_passes_on_untouched_outputs(published) -> None:
    _, out, _ = published
    assert verify_outputs(out, Keyring.open())[0]["outputs_checked"] >= 6


def test_audit_log_detects_edits_removals_and_reordering(published, tmp_path: Path) -> None:
    home, out, folder = published
    log = home / "audit.log"
    audit.append(log, "test", n=1)
    audit.append(log, "test", n=2)
    lines = log.read_bytes().splitlines()
    assert audit.verify(log) == len(lines)
    entries = [json.loads(line) for line in lines]
    assert [e["outcome"] for e in entries[:2]] == ["publishing", "published"]
    assert entries[1]["delivery_sha256"] and entries[1]["outputs"]
    for broken in (lines[:1] + lines[2:],                     # removed
                   [lines[1], lines[0], *lines[2:]],          # reordered
                   [lines[0], lines[1].replace(b'"published"', b'"failed"'),
                    *lines[2:]]):                             # edited
        log.write_bytes(b"\n".join(broken) + b"\n")
        with pytest.raises(OutputError, match="audit log"):
            audit.verify(log)


def test_a_protected_keyring_needs_its_passphrase(published, monkeypatch) -> None:
    home, out, _ = published
    before = ingest.load(out)
    keyring = Keyring.open()
    assert keyring.protect("a long keyring passphrase") == 4
    text = b"".join(p.read_bytes() for p in (home / "keys").glob("*"))
    assert b'"key"' not in text and b"AGE-SECRET-KEY" not in text
    monkeypatch.delenv("INGEST_KEYRING_PASSPHRASE", raising=False)
    from ingest.keys import keyring as keyring_module

    keyring_module._derived.clear()
    with pytest.raises(KeyringError, match="passphrase-protected"):
        ingest.load(out)
    monkeypatch.setenv("INGEST_KEYRING_PASSPHRASE", "wrong passphrase!!")
    with pytest.raises(KeyringError, match="wrong keyring passphrase"):
        ingest.load(out)
    monkeypatch.setenv("INGEST_KEYRING_PASSPHRASE", "a long keyring passphrase")
    assert ingest.load(out).equals(before)
    assert Keyring.open().age_identity() is not None
    rotate(load_settings())  # rotation keeps the keyring sealed
    assert b'"key"' not in (home / "keys" / "general.json").read_bytes()
    assert ingest.load(out).equals(before)


def test_keys_from_the_environment_take_precedence(published, monkeypatch) -> None:
    import base64
    import os

    home, out, _ = published
    general = json.loads((home / "keys" / "general.json").read_text())
    monkeypatch.setenv("INGEST_KEY_GENERAL", f"{general['id']}:{general['key']}")
    (home / "keys" / "general.json").rename(home / "keys" / "general.moved")
    assert ingest.load(out, columns=["case_id"]).height > 0
    monkeypatch.setenv("INGEST_KEY_GENERAL",
                       f"general-other:{base64.b64encode(os.urandom(32)).decode()}")
    with pytest.raises(KeyringError, match="not authorised"):
        ingest.load(out, columns=["case_id"])
    monkeypatch.setenv("INGEST_KEY_GENERAL", "garbage")
    with pytest.raises(KeyringError, match="must hold"):
        ingest.load(out, columns=["case_id"])


def test_an_edited_manifest_is_caught_by_the_audit_log(published) -> None:
    _, out, folder = published
    doc = json.loads((folder / "manifest.json").read_text())
    doc["rows"]["quarantined"] += 1  # still valid JSON, hashes of the data files unchanged
    (folder / "manifest.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    with pytest.raises(OutputError, match="differs from the manifest the audit log recorded"):
        verify_outputs(out, Keyring.open())


def _age(*args: str, data: bytes) -> bytes:
    if not shutil.which("age"):
        pytest.fail("the age command is missing: run scripts/bootstrap install")
    return subprocess.run(["age", *args], input=data, capture_output=True, check=True).stdout


def test_a_validly_encrypted_substitute_is_caught_by_the_hash(published, tmp_path: Path,
                                                             table_20k) -> None:
    """Outputs swapped for others that decrypt and authenticate as well: another
    delivery's, under the same keyring, and one forged with the age command (the
    age recipient is public, so anyone can). Only the manifest's hashes tell."""
    from ingest.crypto.openpgp import encrypt_openpgp, export_public_key
    from ingest.synth import to_delimited

    home, out, folder = published
    frame, _ = table_20k
    other_delivery = tmp_path / "other-delivery"
    other_delivery.mkdir()
    (other_delivery / "cases.csv.gpg").write_bytes(encrypt_openpgp(
        to_delimited(frame.slice(3000, 2000)), tmp_path / "sender-2",
        recipient_key=export_public_key(home / "gnupg")))
    other = Path(run_delivery(other_delivery, out=tmp_path / "other-out",
                              delivery_date=DELIVERY_DATE).output_dir)
    identity = str(home / "keys" / "age-identity.txt")
    recipient = str(Keyring.open().age_recipient())
    # the accepted rows less the last one, sealed again by the age command
    rows = _age("-d", "-i", identity, data=(folder / "reference.jsonl.age").read_bytes())
    forged = _age("-r", recipient, data=rows[:rows.rstrip(b"\n").rfind(b"\n") + 1])

    substitutes: dict[str, dict[str, bytes]] = {
        name: {name: (other / name).read_bytes()}
        for name in ("reference.jsonl.age", "quarantine.jsonl.age", "features.npz.age",
                     "features.json.age")}
    material = next(p.name for p in folder.iterdir() if p.name.startswith("_KEY_MATERIAL"))
    substitutes["reference.parquet"] = {n: (other / n).read_bytes()
                                        for n in ("reference.parquet", material)}
    substitutes["forged reference.jsonl.age"] = {"reference.jsonl.age": forged}

    originals = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert verify_outputs(out, Keyring.open())[0]["outputs_checked"] >= 6
    outcome = {}
    for case, files in substitutes.items():
        for name, data in files.items():
            assert data != originals[name], case
            (folder / name).write_bytes(data)
        try:
            verify_outputs(out, Keyring.open())
            outcome[case] = "verified"
        except OutputError as exc:
            outcome[case] = str(exc).split(": ", 1)[-1]
        for name in files:
            (folder / name).write_bytes(originals[name])
    assert outcome == dict.fromkeys(substitutes, "does not match its hash in manifest.json; "
                                                 "it was altered")

    (folder / "reference.jsonl.age").write_bytes(forged)
    proc = subprocess.run([INGEST, "verify", str(out)], capture_output=True, text=True,
                          env={**os.environ, "INGEST_HOME": str(home)})
    assert proc.returncode != 0 and "reference.jsonl.age: does not match its hash" in proc.stderr
