"""Canaries: values planted in deliveries must appear in no file a run writes.

Real runs through the CLI, the Prefect flow and the managed Prefect server: a
successful one, and failing ones (wrong key, header that does not match the
schema, too many bad rows). Then every byte under the output folder,
INGEST_HOME (keyring, Prefect's database and logs, the server's log), the temp
folder and the captured output is scanned for each canary, as plain text, UTF-16
and base64. Key material must not appear outside the key files either.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest

from ingest.synth import generate, to_delimited

from conftest import DELIVERY_DATE, ROOT

PERSON = "PCAFEBABE"
COMMENT = "CANARY-ZEBRA-7731 confidential note"
INGEST = str(ROOT / ".venv" / "bin" / "ingest")

pytestmark = pytest.mark.prefect_server


def forms(value: str) -> list[bytes]:
    raw = value.encode()
    found = [raw, value.encode("utf-16-le"), value.encode("utf-16-be")]
    for pad in range(3):
        enc = base64.b64encode(b"\0" * pad + raw)
        found.append(enc[4:-4] if pad else enc[:-4])
    return found


def scan(paths: list[Path], needles: dict[str, list[bytes]],
         skip: tuple[Path, ...] = ()) -> list[str]:
    hits = []
    for root in paths:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for file in files:
            if any(file.is_relative_to(s) for s in skip):
                continue
            data = file.read_bytes()
            for name, variants in needles.items():
                if any(v in data for v in variants):
                    hits.append(f"{name} in {file}")
    return hits


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("canary")
    home, tmp, out = base / "home", base / "tmp", base / "out"
    tmp.mkdir()
    env = dict(os.environ, INGEST_HOME=str(home), TMPDIR=str(tmp))
    env.pop("INGEST_PASSPHRASE", None)
    env.pop("PREFECT_API_URL", None)
    subprocess.run([INGEST, "keys", "init"], env=env, check=True, capture_output=True)
    yield base, home, tmp, out, env
    subprocess.run([INGEST, "server", "stop"], env=env, check=False, capture_output=True)


def test_no_canary_anywhere_a_run_writes(world) -> None:
    """CSV through OpenPGP, xlsx with Office encryption in a ZIP, Access in a 7-Zip,
    and failing runs; then every byte the runs wrote is scanned."""
    base, home, tmp, out, env = world
    from ingest.crypto.openpgp import encrypt_openpgp, ensure_recipient_key, export_public_key

    frame, truth = generate(5000, seed=11, delivery_date=DELIVERY_DATE,
                            canaries={"person_id": PERSON, "comment": COMMENT})
    # the same canary also in a row that is quarantined (an impossible code)
    bad = frame.with_columns(frame["CMNT"].scatter(9, COMMENT + " q"),
                             frame["DX_CD"].scatter(9, "U99.9"))
    recipient = export_public_key(home / "gnupg")
    captured: list[bytes] = []

    def deliver(name: str, data: bytes, key: bytes = recipient) -> Path:
        folder = base / name
        folder.mkdir()
        (folder / "cases.csv.gpg").write_bytes(encrypt_openpgp(data, base / "sender",
                                                               recipient_key=key))
        return folder

    def run(folder: Path, *extra: str, expect_ok: bool = True, **env_extra: str) -> None:
        proc = subprocess.run([INGEST, "run", str(folder), "--out", str(out), "--json",
                               "--delivery-date", DELIVERY_DATE.isoformat(), *extra],
                              env=dict(env, **env_extra), capture_output=True)
        captured.extend([proc.stdout, proc.stderr])
        assert (proc.returncode == 0) == expect_ok, proc.stderr.decode()[-2000:]
        if not expect_ok:
            assert proc.stderr.decode().splitlines()[-1].startswith("ingest: error: ")
            assert "Traceback" not in proc.stderr.decode()

    good = deliver("good", to_delimited(bad))
    run(good)
    summary = json.loads(captured[-2])
    assert summary["rows_in"] == 5000 and summary["rows_quarantined"] == truth.quarantined + 1

    # other forms: a password-protected workbook inside an AES ZIP, and an Access
    # database (the shared fixture's own canary rows) inside a 7-Zip archive
    from ingest.crypto.office import encrypt_office
    from ingest.synth.forms import to_xlsx
    from ingest.synth.packaging import make_7z, make_zip

    from conftest import data_fixture

    for name, files in {
        "xlsx-in-zip": {"cases.zip": make_zip(
            {"cases.xlsx": encrypt_office(to_xlsx(bad.head(3000), title_rows=1), "pw-123456")},
            "pw-123456")},
        "access-in-7z": {"cases.7z": make_7z({"cases.accdb": data_fixture(
            "fixtures", "access", "reference_20k.accdb").read_bytes()}, "pw-123456", True)},
    }.items():
        folder = base / name
        folder.mkdir()
        for file, data in files.items():
            (folder / file).write_bytes(data)
        run(folder, INGEST_PASSPHRASE="pw-123456")

    ensure_recipient_key(base / "stranger")
    run(deliver("wrong-key", to_delimited(bad), export_public_key(base / "stranger")),
        expect_ok=False)
    run(deliver("bad-header", to_delimited(bad.rename({"SEX": "GENDER"}))), expect_ok=False)
    run(deliver("too-many-bad", to_delimited(bad)), expect_ok=False,
        INGEST_MAX_QUARANTINE_SHARE="0.0001")

    logs = base / "captured.bin"
    logs.write_bytes(b"\n".join(captured))
    needles = {"person canary": forms(PERSON), "comment canary": forms(COMMENT)}
    # the Access fixture's canaries (see shared/fixtures/access/README.md)
    access_truth = json.loads(data_fixture("access",
                                             "reference_20k.truth.json").read_text())
    for canary in access_truth["canaries"]:
        needles[f"access person canary row {canary['row']}"] = forms(canary["pers_id"])
        needles[f"access comment canary row {canary['row']}"] = forms(canary["token"])
    probe = base / "probe.bin"  # the scan itself must be able to find a canary
    for variant in (COMMENT.encode("utf-16-le"), base64.b64encode(b"x" + COMMENT.encode())):
        probe.write_bytes(b"..." + variant + b"...")
        assert scan([probe], needles) == [f"comment canary in {probe}"]
    probe.unlink()
    assert (home / "prefect").exists(), "the Prefect server's home was not under INGEST_HOME"
    hits = scan([out, home, tmp, logs], needles)
    assert hits == [], hits

    keys = {p.stem: json.loads(p.read_text())["key"] for p in (home / "keys").glob("*.json")}
    key_needles = {f"{k} key": [v.encode(), base64.b64decode(v)] for k, v in keys.items()}
    hits = scan([out, home, tmp, logs], key_needles, skip=(home / "keys",))
    assert hits == [], hits
