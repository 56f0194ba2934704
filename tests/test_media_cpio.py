"""cpio archives open like tar: every form the real writers make, plain, compressed and
padded to tape blocks, gives exactly the files put in; a delivery in cpio runs end to
end (the reference table and the admissions example) in every container and under
every encryption, by the library, the CLI and the Prefect flow."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest
from _cpio import COMPRESSORS, SUFFIX, WRITERS, make_cpio, tape
from test_second_example import _differences, _quarantine, expected_clean, expected_quarantine

import ingest
from ingest.crypto.openpgp import encrypt_openpgp, export_public_key
from ingest.formats import classify
from ingest.keys import Keyring
from ingest.media import open_delivery
from ingest.pipeline import run_delivery
from ingest.synth import generate, to_delimited
from ingest.synth.admissions import generate as generate_admissions
from ingest.synth.packaging import make_7z, make_tar, make_zip

from conftest import DELIVERY_DATE, ROOT

PASSWORD = "S3nder-Pa55"
INGEST = str(ROOT / ".venv" / "bin" / "ingest")

FILES = {
    "cases.csv": b"CASE_ID,SEX\r\n1,F\r\n2,M\r\n",
    "notes/read me.txt": "caf\u00e9 notes\n".encode(),
    "notes/deep/empty.txt": b"",
    # past libarchive's read blocks and a tape block, bytes of every value
    "blob.bin": hashlib.sha256(b"seed").digest() * 20_000 + bytes(range(256)),
}


def _opened(name: str, data: bytes, tmp_path: Path) -> dict[str, bytes]:
    path = tmp_path / name
    path.write_bytes(data)
    return {m.name: m.data for m in open_delivery(path).members}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_every_writers_form_opens_exactly(writer: str, tmp_path: Path) -> None:
    data = make_cpio(FILES, writer)
    assert classify(data).name == "cpio"
    got = _opened("tape.cpio", data, tmp_path)
    assert got == {f"tape.cpio/{n}": d for n, d in FILES.items()}


def test_the_tape_forms_are_padded_to_their_blocks() -> None:
    """What makes them tape images: zero blocks after the trailer."""
    for writer, block in (("gnu-newc-tape-5120", 5120), ("gnu-newc-tape-10240", 10240)):
        data = make_cpio(FILES, writer)
        assert len(data) % block == 0 and data.endswith(bytes(512)), writer


@pytest.mark.parametrize("compress", list(COMPRESSORS))
@pytest.mark.parametrize("writer", ["gnu-newc", "gnu-odc", "gnu-newc-tape-5120"])
def test_a_compressed_cpio_opens_exactly(writer: str, compress: str, tmp_path: Path) -> None:
    data = make_cpio(FILES, writer, compress)
    got = _opened(f"tape.cpio.{SUFFIX[compress]}", data, tmp_path)
    assert got == {f"tape.cpio.{SUFFIX[compress]}/tape.cpio/{n}": d for n, d in FILES.items()}


@pytest.mark.parametrize("compress", ["gzip", "zstd"])
def test_a_compressed_cpio_padded_to_tape_blocks_opens_exactly(compress: str,
                                                               tmp_path: Path) -> None:
    data = tape(make_cpio(FILES, "gnu-newc", compress), 10240)
    got = _opened(f"tape.cpio.{SUFFIX[compress]}", data, tmp_path)
    assert got == {f"tape.cpio.{SUFFIX[compress]}/tape.cpio/{n}": d for n, d in FILES.items()}


def test_a_cpio_beside_other_members_and_inside_a_tar(tmp_path: Path) -> None:
    inner = make_cpio({"cases.csv": FILES["cases.csv"]}, "gnu-odc")
    got = _opened("tape.tar", make_tar({"one.cpio": inner, "two.txt": b"x"}), tmp_path)
    assert got == {"tape.tar/one.cpio/cases.csv": FILES["cases.csv"], "tape.tar/two.txt": b"x"}


# -- end to end ------------------------------------------------------------------------------

def _table_hash(out: Path) -> str:
    frame = ingest.load(out).with_columns(pl.col(pl.Categorical).cast(pl.Utf8))
    return hashlib.sha256(frame.write_csv().encode()).hexdigest()


def _deliver(tmp: Path, files: dict[str, bytes]) -> Path:
    folder = tmp / "delivery"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def _pgp(data: bytes, tmp: Path, home: Path) -> bytes:
    return encrypt_openpgp(data, tmp / "sender",
                           recipient_key=export_public_key(home / "gnupg"))


PACKS: dict[str, Callable[[dict[str, bytes], Path, Path], dict[str, bytes]]] = {
    "cpio-newc": lambda f, t, h: {"tape.cpio": make_cpio(f)},
    "cpio-odc-tape-gzip": lambda f, t, h: {"tape.cpio.gz": tape(
        make_cpio(f, "gnu-odc", "gzip"))},
    "cpio-in-openpgp": lambda f, t, h: {"tape.cpio.gpg": _pgp(make_cpio(f, "gnu-crc"), t, h)},
    "cpio-xz-in-openpgp-passphrase": lambda f, t, h: {"tape.cpio.xz.asc": encrypt_openpgp(
        make_cpio(f, "gnu-bin", "xz"), t / "sender", passphrase=PASSWORD, armor=True)},
    "cpio-in-zip-aes": lambda f, t, h: {"delivery.zip": make_zip(
        {"tape.cpio": make_cpio(f, "bsdcpio-newc")}, PASSWORD)},
    "cpio-zstd-in-7z": lambda f, t, h: {"delivery.7z": make_7z(
        {"tape.cpio.zst": make_cpio(f, "gnu-newc-tape-10240", "zstd")}, PASSWORD, True)},
    "openpgp-in-cpio": lambda f, t, h: {"tape.cpio": make_cpio(
        {f"{n}.gpg": _pgp(d, t, h) for n, d in f.items()})},
}
"""A CSV delivery packed in cpio as senders would, in every container and encryption."""


@pytest.fixture(scope="module")
def reference() -> tuple[pl.DataFrame, bytes]:
    frame, _ = generate(3_000, seed=23, delivery_date=DELIVERY_DATE)
    return frame, to_delimited(frame)


@pytest.fixture(scope="module")
def baseline(reference, tmp_path_factory, keyring_home: Path) -> tuple[str, dict[str, int]]:
    os.environ["INGEST_HOME"] = str(keyring_home)
    tmp = tmp_path_factory.mktemp("baseline")
    summary = run_delivery(_deliver(tmp, {"cases.csv": reference[1]}), out=tmp / "out",
                           delivery_date=DELIVERY_DATE)
    return _table_hash(tmp / "out"), summary.quarantine_reasons


@pytest.mark.parametrize("pack", list(PACKS))
def test_the_reference_table_in_cpio_gives_the_csvs_table(
        pack: str, reference, baseline, tmp_path: Path, home: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_PASSPHRASE", PASSWORD)
    folder = _deliver(tmp_path, PACKS[pack]({"cases.csv": reference[1]}, tmp_path, home))
    summary = run_delivery(folder, out=tmp_path / "out", passphrase=PASSWORD,
                           delivery_date=DELIVERY_DATE)
    assert summary.quarantine_reasons and summary.rows_in == reference[0].height
    assert (_table_hash(tmp_path / "out"), summary.quarantine_reasons) == baseline


def _cli(args: list[str], home: Path) -> dict[str, object]:
    env = dict(os.environ, INGEST_HOME=str(home), INGEST_PASSPHRASE=PASSWORD)
    env.pop("PREFECT_API_URL", None)
    try:
        done = subprocess.run([INGEST, "run", *args, "--json"], env=env, capture_output=True,
                              text=True, check=False, timeout=600)
    finally:
        if "--no-prefect" not in args:
            subprocess.run([INGEST, "server", "stop"], env=env, check=False,
                           capture_output=True)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_the_cli_runs_the_admissions_example_from_a_cpio_tape(tmp_path: Path,
                                                              home: Path) -> None:
    frame, truth = generate_admissions(2_000, seed=11, bad_share=0.005)
    data = to_delimited(frame, encoding="utf-8", trailer=False, crlf=False)
    folder = _deliver(tmp_path, {"admissions.cpio.gpg": _pgp(
        tape(make_cpio({"admissions.csv": data}, "gnu-newc", "gzip")), tmp_path, home)})
    summary = _cli([str(folder), "--schema", "admissions", "--out", str(tmp_path / "out"),
                    "--no-prefect"], home)
    assert (summary["rows_in"], summary["rows_accepted"], summary["rows_quarantined"]) == (
        truth.rows, truth.accepted, truth.quarantined)
    got = ingest.load(tmp_path / "out")
    assert _differences(got, expected_clean(truth, Keyring.open().pseudonym_key().material)) \
        == []
    published = SimpleNamespace(output_dir=summary["output_dir"])
    assert _quarantine(published) == expected_quarantine(frame, truth)  # type: ignore[arg-type]


def test_the_cli_runs_the_reference_table_from_cpio(reference, baseline, tmp_path: Path,
                                                    home: Path) -> None:
    folder = _deliver(tmp_path, PACKS["cpio-in-zip-aes"]({"cases.csv": reference[1]},
                                                         tmp_path, home))
    summary = _cli([str(folder), "--schema", "reference", "--out", str(tmp_path / "out"),
                    "--delivery-date", DELIVERY_DATE.isoformat(), "--no-prefect"], home)
    assert summary["quarantine_reasons"] == baseline[1]
    assert _table_hash(tmp_path / "out") == baseline[0]


@pytest.mark.prefect_server
def test_the_flow_runs_cpio_deliveries_of_both_examples(reference, baseline, tmp_path: Path,
                                                        home: Path) -> None:
    """Through the Prefect flow (the managed local server): the reference table in an
    OpenPGP-encrypted cpio, then the admissions example on a gzip tape."""
    folder = _deliver(tmp_path, PACKS["cpio-in-openpgp"]({"cases.csv": reference[1]},
                                                         tmp_path, home))
    summary = _cli([str(folder), "--schema", "reference", "--out", str(tmp_path / "out"),
                    "--delivery-date", DELIVERY_DATE.isoformat()], home)
    assert summary["quarantine_reasons"] == baseline[1]
    assert _table_hash(tmp_path / "out") == baseline[0]
    assert summary["rows_in"] == reference[0].height

    frame, truth = generate_admissions(2_000, seed=11, bad_share=0.005)
    data = to_delimited(frame, encoding="utf-8", trailer=False, crlf=False)
    second = tmp_path / "second"
    second.mkdir()
    folder = _deliver(second, {"admissions.cpio.gz": tape(
        make_cpio({"admissions.csv": data}, "gnu-odc", "gzip"))})
    summary = _cli([str(folder), "--schema", "admissions", "--out", str(second / "out")],
                   home)
    assert (summary["rows_in"], summary["rows_accepted"], summary["rows_quarantined"]) == (
        truth.rows, truth.accepted, truth.quarantined)
    published = SimpleNamespace(output_dir=summary["output_dir"])
    assert _quarantine(published) == expected_quarantine(frame, truth)  # type: ignore[arg-type]
    got = ingest.load(second / "out")
    assert _differences(got, expected_clean(truth, Keyring.open().pseudonym_key().material)) \
        == []


def test_a_name_in_a_legacy_encoding_is_kept_as_tar_keeps_it(tmp_path: Path) -> None:
    """GNU cpio and GNU tar archive a Latin-1 file name as its bytes; both openers give
    the same member name (undecodable bytes escaped, as tarfile does)."""
    src = tmp_path / "src"
    src.mkdir()
    raw = b"caf\xe9.csv"
    with open(os.path.join(os.fsencode(src), raw), "wb") as fh:
        fh.write(FILES["cases.csv"])
    archive = subprocess.run(["cpio", "-o", "--quiet", "-H", "newc"], input=raw + b"\n",
                             cwd=src, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-cf", str(tmp_path / "t.tar"), os.fsdecode(raw)], cwd=src,
                   check=True)
    from_cpio = _opened("t.cpio", archive, tmp_path)
    from_tar = _opened("t.tar", (tmp_path / "t.tar").read_bytes(), tmp_path)
    assert list(from_cpio.values()) == list(from_tar.values()) == [FILES["cases.csv"]]
    assert [n.split("/", 1)[1] for n in from_cpio] == [n.split("/", 1)[1] for n in from_tar]
    assert "\udce9" in next(iter(from_cpio))
