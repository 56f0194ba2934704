"""Canaries: values planted in deliveries must appear in no file a run writes.

Every column that can carry a distinctive value carries a canary (random upper-case
letters from a seed, or as close as the column's rule allows), in an accepted row
and in a quarantined row; so do the Access fixture's own canary rows. Real runs go
through the CLI, both through the Prefect flow on the managed local Prefect server
and through the library path (``--no-prefect``): successful ones (CSV in OpenPGP,
an encrypted workbook in an AES ZIP, Access in a 7-Zip), then failing ones (wrong
key, a header that does not match the schema, too many bad rows).

After the successful runs, and again after the failing ones, every byte under the
output folder, INGEST_HOME (keyring, Prefect's database and its WAL, the server's
log), TMPDIR, ``/dev/shm``, HOME, the working folder and the captured stdout and
stderr is scanned for any 8-character fragment of any canary (``_canaries``). Key
material must not appear outside the key files either.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest
import zstandard
from _canaries import Canary, Maker, Scanner, files_under, forms

from ingest.synth import generate, to_delimited

from conftest import DELIVERY_DATE, ROOT, data_fixture

INGEST = str(ROOT / ".venv" / "bin" / "ingest")
SEED = 20260630
SHM = Path("/dev/shm")

ACCEPTED_ROW, QUARANTINED_ROW = 7, 9
"""0-based rows of the generated table that the generator keeps clean."""


def _plant(frame: pl.DataFrame) -> tuple[pl.DataFrame, list[Canary]]:
    """A canary in each column that can hold one: in an accepted row as far as the
    rules allow, and in every column of a row that is quarantined."""
    make = Maker(SEED)
    accepted = {"CASE_ID": make.case_id(), "PERS_ID": make.person_id(),
                "DX_CD": make.diagnosis_code(), "LAB_VAL": make.lab_value(),
                "CMNT": make.letters(40)}
    quarantined = {column: make.letters(16) for column in frame.columns}
    canaries = [Canary(f"{c} (accepted row)", v) for c, v in accepted.items()]
    canaries += [Canary(f"{c} (quarantined row)", v) for c, v in quarantined.items()]
    for row, values in ((ACCEPTED_ROW, accepted), (QUARANTINED_ROW, quarantined)):
        frame = frame.with_columns(frame[c].scatter(row, v) for c, v in values.items())
    return frame, canaries


def _access_canaries() -> list[Canary]:
    """The Access fixture's canary rows (tests/data/access/README.md). Its case ids
    are zero-padded numbers, not distinctive enough to scan for."""
    truth = json.loads(data_fixture("access", "reference_20k.truth.json").read_text())
    return [Canary(f"Access {key} row {c['row']}", c[key])
            for c in truth["canaries"] for key in ("pers_id", "token")]


@dataclass
class World:
    """One isolated set of folders a run may write to, and what it printed."""

    base: Path
    env: dict[str, str]
    path: str
    """"flow" (the Prefect flow) or "library" (``--no-prefect``)."""
    captured: list[bytes] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.base / "ingest-home"

    @property
    def out(self) -> Path:
        return self.base / "out"

    def roots(self) -> list[Path]:
        return [self.out, self.home, self.base / "tmp", self.base / "user-home",
                self.base / "cwd", SHM]


def _world(base: Path, path: str) -> World:
    for name in ("tmp", "user-home", "cwd"):
        (base / name).mkdir()
    env = dict(os.environ, INGEST_HOME=str(base / "ingest-home"), TMPDIR=str(base / "tmp"),
               HOME=str(base / "user-home"))
    for name in ("INGEST_PASSPHRASE", "PREFECT_API_URL", "PREFECT_HOME"):
        env.pop(name, None)
    world = World(base, env, path)
    subprocess.run([INGEST, "keys", "init"], env=env, cwd=base / "cwd", check=True,
                   capture_output=True)
    return world


@pytest.fixture(params=[pytest.param("flow", marks=pytest.mark.prefect_server), "library"])
def world(request: pytest.FixtureRequest, tmp_path: Path):  # noqa: ANN201
    world = _world(tmp_path, request.param)
    yield world
    if request.param == "flow":
        subprocess.run([INGEST, "server", "stop"], env=world.env, check=False,
                       capture_output=True)


def _runner(world: World) -> Callable[..., None]:
    extra = ["--no-prefect"] if world.path == "library" else []

    def run(folder: Path, expect_ok: bool = True, **env_extra: str) -> None:
        proc = subprocess.run([INGEST, "run", str(folder), "--out", str(world.out), "--json",
                               "--delivery-date", DELIVERY_DATE.isoformat(), *extra],
                              env=dict(world.env, **env_extra), cwd=world.base / "cwd",
                              capture_output=True)
        world.captured += [proc.stdout, proc.stderr]
        assert (proc.returncode == 0) == expect_ok, proc.stderr.decode()[-2000:]
        if not expect_ok:
            assert proc.stderr.decode().splitlines()[-1].startswith("ingest: error: ")
            assert "Traceback" not in proc.stderr.decode()

    return run


def _scan(world: World, scanner: Scanner, when: str) -> None:
    hits = scanner.scan(world.roots())
    hits += [f"{h} in captured output" for h in scanner.scan_bytes(b"\n".join(world.captured))]
    assert hits == [], f"canaries leaked ({when}): {hits}"


def test_no_canary_anywhere_a_run_writes(world: World) -> None:
    """Successful runs of three forms, then failing ones; a scan after each phase."""
    from ingest.crypto.office import encrypt_office
    from ingest.crypto.openpgp import encrypt_openpgp, ensure_recipient_key, export_public_key
    from ingest.synth.forms import to_xlsx
    from ingest.synth.packaging import make_7z, make_zip

    base = world.base
    frame, truth = generate(5000, seed=11, delivery_date=DELIVERY_DATE)
    frame, canaries = _plant(frame)
    scanner = Scanner(canaries + _access_canaries())
    recipient = export_public_key(world.home / "gnupg")
    run = _runner(world)

    def folder_with(name: str, files: dict[str, bytes]) -> Path:
        folder = base / "deliveries" / name
        folder.mkdir(parents=True)
        for file, data in files.items():
            (folder / file).write_bytes(data)
        return folder

    def pgp(name: str, table: pl.DataFrame, key: bytes = recipient) -> Path:
        cipher = encrypt_openpgp(to_delimited(table), base / "sender", recipient_key=key)
        return folder_with(name, {"cases.csv.gpg": cipher})

    run(pgp("good", frame))
    summary = json.loads(world.captured[-2])
    assert summary["rows_in"] == 5000
    assert summary["rows_quarantined"] == truth.quarantined + 1  # the quarantined canary row
    run(folder_with("xlsx-in-zip", {"cases.zip": make_zip(
        {"cases.xlsx": encrypt_office(to_xlsx(frame.head(3000), title_rows=1), "pw-123456")},
        "pw-123456")}), INGEST_PASSPHRASE="pw-123456")
    run(folder_with("access-in-7z", {"cases.7z": make_7z({"cases.accdb": data_fixture(
        "access", "reference_20k.accdb").read_bytes()}, "pw-123456", True)}),
        INGEST_PASSPHRASE="pw-123456")

    home = world.home
    if world.path == "flow":
        assert list(home.glob("prefect/*.db")), "Prefect's database is not under INGEST_HOME"
    _scan(world, scanner, "after successful runs")
    scanned = scanner.files_scanned
    assert any(f.suffix == ".parquet" for f in scanned)
    assert any(f.name.endswith(".age") for f in scanned)
    if world.path == "flow":
        assert any(f.suffix == ".db" for f in scanned)

    ensure_recipient_key(base / "stranger")
    run(pgp("wrong-key", frame, export_public_key(base / "stranger")), expect_ok=False)
    run(pgp("bad-header", frame.rename({"SEX": "GENDER"})), expect_ok=False)
    run(pgp("too-many-bad", frame), expect_ok=False, INGEST_MAX_QUARANTINE_SHARE="0.0001")
    _scan(world, scanner, "after failing runs")

    keys = {p.stem: json.loads(p.read_text())["key"] for p in (home / "keys").glob("*.json")}
    key_needles = {f"{k} key": [v.encode(), base64.b64decode(v)] for k, v in keys.items()}
    sources = {str(f): f.read_bytes() for f in files_under(world.roots())
               if not f.is_relative_to(home / "keys")}
    sources["captured output"] = b"\n".join(world.captured)
    hits = [f"{name} in {where}" for where, data in sources.items()
            for name, variants in key_needles.items() if any(v in data for v in variants)]
    assert hits == [], hits


# -- the scan itself ----------------------------------------------------------------------

PROBE = Canary("probe", Maker(1).letters(30))


@pytest.mark.parametrize("start", [0, 5, 22])
@pytest.mark.parametrize("wrap", ["raw", "utf-16-le", "utf-16-be", "base64", "gzip", "zstd"])
def test_the_scan_finds_any_8_character_fragment(wrap: str, start: int) -> None:
    """Any 8 characters of a canary, at any offset, in each form, in 1 MiB of noise."""
    fragment = PROBE.value[start:start + 8]
    scanner = Scanner([PROBE])
    for lead in range(3):  # every base64 alignment, every 8-byte word offset
        data = b"x" * lead + b"note: " + fragment.encode() + b" end"
        if wrap.startswith("utf-16"):
            data = data.decode().encode(wrap)
        elif wrap == "base64":
            data = base64.b64encode(data)
        elif wrap == "gzip":
            data = gzip.compress(data)
        elif wrap == "zstd":
            data = zstandard.ZstdCompressor().compress(data)
        noise = os.urandom(2**19)
        found = scanner.scan_bytes(noise + data + noise)
        # a small zstd frame may store its input raw: then found both ways
        assert ("probe (compressed)" if wrap in ("gzip", "zstd") else "probe") in found


def test_seven_characters_are_not_a_hit() -> None:
    """The floor is 8 characters: shorter pieces are below chance level and not reported."""
    scanner = Scanner([PROBE])
    assert scanner.scan_bytes(PROBE.value[3:10].encode()) == set()
    assert scanner.scan_bytes(PROBE.value[3:11].encode()) == {"probe"}


def test_canaries_are_distinct_and_reproducible() -> None:
    frame, _ = generate(100, seed=11, delivery_date=DELIVERY_DATE)
    planted, canaries = _plant(frame)
    again = _plant(frame)[1]
    assert canaries == again
    windows = [set(forms(c.value)) for c in canaries]
    assert len(set.union(*windows)) == sum(map(len, windows))  # no two share a needle
    assert len(canaries) == 5 + len(frame.columns)
