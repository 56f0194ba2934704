"""Shared fixtures: a private keyring per test session, synthetic deliveries."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from ingest.synth import Truth, generate, to_delimited

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
"""Test fixtures that nothing here can make (Access databases), with their READMEs."""
DELIVERY_DATE = date(2026, 6, 30)


def data_fixture(*parts: str) -> Path:
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"test fixture missing: {path} (it is part of the repository)")
    return path


@pytest.fixture(scope="session", autouse=True)
def _no_gpg_agents_left(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN202
    """gpg starts an agent per GnuPG home; end the ones under this run's temp folder."""
    yield
    base = tmp_path_factory.getbasetemp()
    subprocess.run(["pkill", "-f", f"gpg-agent --homedir {base}/"], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(autouse=True)
def _no_session_secret_left() -> Iterator[None]:
    """A passphrase one test gives for its session is not another test's."""
    yield
    from ingest.keys import session

    session.set_passphrase(None)
    session.set_keyring_passphrase(None)


@pytest.fixture(scope="session")
def keyring_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One keyring for the whole session (GnuPG key generation takes a moment)."""
    from ingest.keys import Keyring
    from ingest.settings import load_settings

    home = tmp_path_factory.mktemp("ingest-home")
    Keyring.init(load_settings(home=home))
    return home


@pytest.fixture(scope="session")
def keyring_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A keyring made once, for tests that need one of their own to change (rotation,
    protection): copying it costs milliseconds, making one (GnuPG key generation) a
    second on a loaded machine, and mutation testing repeats every set-up."""
    from ingest.keys import Keyring
    from ingest.settings import load_settings

    template = tmp_path_factory.mktemp("keyring-template") / "home"
    Keyring.init(load_settings(home=template))
    return template


@pytest.fixture
def own_keyring(keyring_template: Path, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> Path:
    """A keyring of this test's own (a copy of the template, without its gpg-agent's
    sockets), made the current one through ``INGEST_HOME``."""
    home = tmp_path / "home"
    shutil.copytree(keyring_template, home, symlinks=True,
                    ignore=shutil.ignore_patterns("S.*", "*.lock"))
    monkeypatch.setenv("INGEST_HOME", str(home))
    return home


@pytest.fixture
def home(keyring_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("INGEST_HOME", str(keyring_home))
    monkeypatch.delenv("INGEST_PASSPHRASE", raising=False)
    return keyring_home


@pytest.fixture(scope="session")
def table_20k() -> tuple[pl.DataFrame, Truth]:
    return generate(20_000, seed=7, delivery_date=DELIVERY_DATE)


@pytest.fixture
def pgp_delivery(home: Path, tmp_path: Path,
                 table_20k: tuple[pl.DataFrame, Truth]) -> Callable[..., tuple[Path, Truth]]:
    """Write an OpenPGP-encrypted CSV delivery (to the keyring's key) into a folder."""
    from ingest.crypto.openpgp import encrypt_openpgp, export_public_key

    def make(frame: pl.DataFrame | None = None, truth: Truth | None = None,
             name: str = "delivery", **csv: object) -> tuple[Path, Truth]:
        if frame is None:
            frame, truth = table_20k
        assert truth is not None
        data = to_delimited(frame, **csv)  # type: ignore[arg-type]
        cipher = encrypt_openpgp(data, tmp_path / "sender",
                                 recipient_key=export_public_key(home / "gnupg"))
        folder = tmp_path / name
        folder.mkdir()
        (folder / "cases.csv.gpg").write_bytes(cipher)
        (tmp_path / f"{name}.truth.json").write_text(json.dumps(truth.to_json()))
        return folder, truth

    return make
