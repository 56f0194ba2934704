"""Keys from a Prefect Secret block (``Keyring._load``'s ``prefect`` branch), called
in-process against a real Prefect server that the project manages (``flows.server``).

``tests/test_cli.py`` covers this source through the ``ingest`` command in a child
process, which mutmut does not link to the code; these tests reach it in the test's own
process, so ``scripts/mutants keys`` runs them for that branch's mutants (the file is
picked up by its name).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest._fs import private_dir
from ingest.errors import KeyringError
from ingest.keys import Keyring, SecretKey
from ingest.settings import Settings, load_settings

PREFIX = "site"
GENERAL = SecretKey("general-0000000a", bytes(range(32)))
RESTRICTED = SecretKey("restricted-0000000b", bytes(range(32, 64)))
PSEUDONYM = SecretKey("pseudonym-0000000c", bytes(range(64, 96)))
ON_DISK = SecretKey("general-0000000d", bytes(range(96, 128)))


def _text(key: SecretKey) -> str:
    return f"{key.id}:{base64.b64encode(key.material).decode()}"


SHARED_HOME = "INGEST_TEST_PREFECT_HOME"
"""An INGEST_HOME whose managed server is already running, to use instead of starting
one (``scripts/mutants`` starts one for the whole group: a start per mutant's process
took most of the group's time). Left running at the end; otherwise ours is stopped."""


@pytest.fixture(scope="module")
def prefect_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Our managed Prefect server in a temporary INGEST_HOME (or the one
    ``INGEST_TEST_PREFECT_HOME`` names), with the blocks the tests read saved in it."""
    import os

    from prefect.blocks.system import Secret
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.server import ensure_server, stop_server

    shared = os.environ.get(SHARED_HOME)
    home = Path(shared) if shared else tmp_path_factory.mktemp("prefect-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INGEST_HOME", str(home))
        for name in ("PREFECT_API_URL", "INGEST_MANAGED_PREFECT_API_URL",
                     "INGEST_SERVER_IDLE_MINUTES"):
            mp.delenv(name, raising=False)
        settings = load_settings()
        try:
            url = ensure_server(settings)
            with temporary_settings(updates={PREFECT_API_URL: url}):
                blocks = {  # the first with trailing white space, as pasted into the UI
                          f"{PREFIX}-general-key": _text(GENERAL) + "\n",
                          f"{PREFIX}-restricted-key": _text(RESTRICTED),
                          f"{PREFIX}-pseudonym-key": _text(PSEUDONYM),
                          "short-general-key": "general-0000000e:c2VjcmV0LXRvby1zaG9ydA==",
                          "bare-general-key": "no separator at all"}
                for name, value in blocks.items():
                    Secret(value=value).save(name, overwrite=True)
            yield url
        finally:
            if not shared:
                stop_server(settings)


@pytest.fixture
def in_prefect(prefect_url: str, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings of an empty keyring folder, this process's Prefect client pointed at the
    server, no key in the environment."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.setenv("INGEST_HOME", str(tmp_path / "home"))
    for role in ("GENERAL", "RESTRICTED", "PSEUDONYM"):
        monkeypatch.delenv(f"INGEST_KEY_{role}", raising=False)
    monkeypatch.setenv("INGEST_PREFECT_SECRET_PREFIX", PREFIX)
    settings = load_settings()
    private_dir(settings.home)
    private_dir(settings.keys_dir)
    with temporary_settings(updates={PREFECT_API_URL: prefect_url}):
        yield settings


def _same(found: SecretKey | None, expected: SecretKey) -> None:
    assert found is not None
    assert (found.id, found.material) == (expected.id, expected.material)


def test_each_key_comes_from_its_roles_secret_block(in_prefect: Settings) -> None:
    ring = Keyring.open(in_prefect)  # no key file: the blocks make it a keyring
    assert ring._source("general") == "prefect"
    _same(ring.master_key("general"), GENERAL)
    _same(ring.master_key("restricted"), RESTRICTED)
    _same(ring.pseudonym_key(), PSEUDONYM)
    assert {role: key.id for role, key in ring.current_master_keys().items()} == {
        "general": GENERAL.id, "restricted": RESTRICTED.id}
    # a block's key is not the folder's to rotate
    with pytest.raises(KeyringError) as caught:
        ring.begin_rotation("general")
    assert str(caught.value) == ("the 'general' master key comes from the prefect, "
                                 "not the keyring folder: rotate it where it is kept")


def test_without_a_block_the_key_file_is_used_and_without_one_there_is_no_key(
        in_prefect: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_PREFECT_SECRET_PREFIX", "elsewhere")  # no block of that name
    Keyring._write_key(in_prefect.keys_dir / "general.json", ON_DISK)
    ring = Keyring.open(in_prefect)
    _same(ring.master_key("general"), ON_DISK)
    assert list(ring.current_master_keys()) == ["general"]
    with pytest.raises(KeyringError) as caught:
        ring.master_key("restricted")
    assert str(caught.value) == "not authorised: this keyring holds no 'restricted' master key"
    with pytest.raises(KeyringError) as caught:
        ring.pseudonym_key()
    assert str(caught.value) == ("no pseudonymisation key: run 'ingest keys init' or set "
                                 "INGEST_KEY_PSEUDONYM")


def test_a_malformed_block_is_refused_naming_it_never_quoting_it(
        in_prefect: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    ring = Keyring(in_prefect)
    for prefix, value in (("short", "c2VjcmV0LXRvby1zaG9ydA=="),
                          ("bare", "no separator at all")):
        monkeypatch.setenv("INGEST_PREFECT_SECRET_PREFIX", prefix)
        with pytest.raises(KeyringError) as caught:
            ring.master_key("general")
        assert str(caught.value) == (f"Prefect Secret block {prefix}-general-key must hold "
                                     "'<key id>:<base64 of a 256-bit key>'")
        assert value not in str(caught.value) and value not in repr(caught.value)
        assert caught.value.__context__ is None  # no chained error to print it either


def test_the_environment_wins_over_the_block(in_prefect: Settings,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from_env = SecretKey("general-0000000f", bytes(range(128, 160)))
    monkeypatch.setenv("INGEST_KEY_GENERAL", _text(from_env))
    ring = Keyring.open(in_prefect)
    assert ring._source("general") == "environment"
    _same(ring.master_key("general"), from_env)
    _same(ring.master_key("restricted"), RESTRICTED)  # the other roles still from blocks


def test_a_block_is_read_also_from_inside_a_running_event_loop(in_prefect: Settings) -> None:
    """An async flow or task opens the keyring with an event loop running, where
    Prefect's ``load`` would otherwise hand back a coroutine."""
    ring = Keyring.open(in_prefect)

    async def in_a_loop() -> SecretKey:
        return ring.master_key("general")

    _same(asyncio.run(in_a_loop()), GENERAL)
