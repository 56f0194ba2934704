"""The keyring, its sealed keys, the KMS seam and the passphrase session as a custodian
and the command line meet them, called in-process.

Written for the mutants of ``ingest/keys/*.py`` that ``tests/test_custody.py`` lets live
(``scripts/mutants keys``): that file reaches the session only through the ``ingest``
command in a child process, which mutmut does not link to the code.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from ingest.errors import KeyringError
from ingest.keys import Keyring, SecretKey, session
from ingest.keys import keyring as keyring_module
from ingest.keys.kms import LocalKms, local_kms_factory
from ingest.settings import load_settings

KEY = SecretKey("general-00000001", bytes(range(32)))


# --- the passphrase session -------------------------------------------------------------

def test_a_passphrase_file_gives_its_text_less_the_line_end(tmp_path: Path) -> None:
    path = tmp_path / "pass"
    path.write_text(" two words \r\n", encoding="utf-8")
    assert session.read_passphrase_file(path) == " two words "
    path.write_bytes("é\n\n".encode())
    assert session.read_passphrase_file(str(path)) == "é"
    path.write_text("ends in X\n")  # only line ends are taken off
    assert session.read_passphrase_file(path) == "ends in X"


def test_an_empty_or_unreadable_passphrase_file_is_refused_naming_it(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\r\n")
    with pytest.raises(KeyringError) as caught:
        session.read_passphrase_file(empty)
    assert str(caught.value) == f"the passphrase file {empty} is empty"
    missing = tmp_path / "missing"
    with pytest.raises(KeyringError) as caught:
        session.read_passphrase_file(missing)
    assert str(caught.value) == (f"cannot read the passphrase file {missing}: "
                                 "No such file or directory")


def test_a_passphrase_file_that_is_no_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "binary"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(KeyringError) as caught:
        session.read_passphrase_file(path)
    assert str(caught.value) == f"the passphrase file {path} is not UTF-8 text"


def test_the_passphrase_comes_from_the_file_then_the_environment_then_a_prompt(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "pass"
    path.write_text("from the file\n")
    asked: list[str] = []

    def prompt(text: str) -> str:
        asked.append(text)
        return "typed"

    monkeypatch.setattr("getpass.getpass", prompt)
    monkeypatch.setenv("INGEST_PASSPHRASE", "from the environment")
    assert session.resolve_passphrase(path, prompt=True) == "from the file"
    assert session.resolve_passphrase(None, prompt=True) == "from the environment"
    monkeypatch.delenv("INGEST_PASSPHRASE")
    assert session.resolve_passphrase(None) is None
    assert asked == []
    assert session.resolve_passphrase(None, prompt=True) == "typed"
    assert asked == ["Passphrase: "]
    monkeypatch.setattr("getpass.getpass", lambda text: "")
    assert session.resolve_passphrase(None, prompt=True) is None


def test_the_session_keeps_each_secret_apart_until_cleared(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INGEST_PASSPHRASE", raising=False)
    assert session.passphrase() is None and session.keyring_passphrase() is None
    session.set_passphrase("delivery secret")
    session.set_keyring_passphrase("keyring secret")
    assert session.passphrase() == "delivery secret"
    assert session.keyring_passphrase() == "keyring secret"
    session.set_passphrase(None)
    assert session.passphrase() is None
    assert session.keyring_passphrase() == "keyring secret"
    monkeypatch.setenv("INGEST_PASSPHRASE", "from the environment")
    assert session.passphrase() == "from the environment"
    session.set_passphrase("delivery secret")
    assert session.passphrase() == "delivery secret"  # the session's own comes first
    session.set_keyring_passphrase(None)
    assert session.keyring_passphrase() is None
    session.set_passphrase(None)


def test_the_keyring_passphrase_comes_from_the_environment_then_the_session(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INGEST_KEYRING_PASSPHRASE", raising=False)
    with pytest.raises(KeyringError) as caught:
        keyring_module.keyring_passphrase()
    assert str(caught.value) == ("the keyring is passphrase-protected: set "
                                 "INGEST_KEYRING_PASSPHRASE or give "
                                 "--keyring-passphrase-prompt")
    session.set_keyring_passphrase("from the prompt")
    assert keyring_module.keyring_passphrase() == "from the prompt"
    monkeypatch.setenv("INGEST_KEYRING_PASSPHRASE", "from the environment")
    assert keyring_module.keyring_passphrase() == "from the environment"


# --- the KMS seam -------------------------------------------------------------------------

def test_a_data_key_wrapped_by_a_role_unwraps_with_that_key_only() -> None:
    other = SecretKey("general-00000002", bytes(32))
    kms = LocalKms({"general": KEY}, {KEY.id: KEY, other.id: other})
    data_key = os.urandom(16)
    wrapped = kms.wrap_key(data_key, "general")
    key_id, sep, blob = wrapped.partition("$")
    assert (key_id, sep) == (KEY.id, "$")
    assert len(base64.b64decode(blob)) == 12 + 16 + 16  # nonce, sealed key, tag
    assert kms.unwrap_key(wrapped, "general") == data_key
    assert kms.wrap_key(data_key, "general") != wrapped  # a fresh nonce each time
    # the master key's id is bound to what it sealed
    relabelled = f"{other.id}${blob}"
    with pytest.raises(PermissionError) as caught:
        kms.unwrap_key(relabelled, "general")
    assert str(caught.value) == (f"master key {other.id} does not unwrap this data key: "
                                 "the key material was altered")
    with pytest.raises(PermissionError) as caught:
        kms.wrap_key(data_key, "restricted")
    assert str(caught.value) == "not authorised: no 'restricted' master key in this keyring"
    reader = local_kms_factory({}, {other.id: other})(None)  # type: ignore[arg-type]
    with pytest.raises(PermissionError) as caught:
        reader.unwrap_key(wrapped, "general")
    assert str(caught.value) == (f"not authorised: the 'general' master key {KEY.id} is "
                                 "not in this keyring")


# --- the keyring ----------------------------------------------------------------------------

@pytest.fixture
def ring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Keyring:
    for name in ("INGEST_KEY_GENERAL", "INGEST_KEY_RESTRICTED", "INGEST_KEY_PSEUDONYM",
                 "INGEST_KEYRING_PASSPHRASE", "INGEST_PREFECT_SECRET_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    keys = tmp_path / "home" / "keys"
    keys.mkdir(parents=True)
    for role in ("general", "restricted", "pseudonym"):
        Keyring._write_key(keys / f"{role}.json", SecretKey(f"{role}-0000000a",
                                                             bytes([len(role)]) * 32))
    import pyrage

    identity = keys / "age-identity.txt"
    identity.write_bytes(str(pyrage.x25519.Identity.generate()).encode() + b"\n")
    identity.chmod(0o600)
    return Keyring(load_settings(home=tmp_path / "home"))


def test_a_key_file_is_private_and_holds_its_id_date_and_key(ring: Keyring) -> None:
    path = ring.settings.keys_dir / "general.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_bytes())
    assert sorted(doc) == ["created", "id", "key"]
    assert doc["id"] == "general-0000000a"
    assert doc["created"].endswith("+00:00") and "T" in doc["created"]
    assert base64.b64decode(doc["key"]) == bytes([7]) * 32
    assert ring.master_key("general") == SecretKey("general-0000000a", bytes([7]) * 32)
    assert ring.pseudonym_key().material == bytes([9]) * 32


def test_init_makes_every_key_and_keeps_existing_ones(tmp_path: Path) -> None:
    home = tmp_path / "fresh"
    ring = Keyring.init(load_settings(home=home))
    keys = {role: ring._load(role) for role in ("general", "restricted", "pseudonym")}
    for role, key in keys.items():
        assert key is not None and key.id.startswith(f"{role}-") and len(key.id) == len(role) + 9
        assert stat.S_IMODE((home / "keys" / f"{role}.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "keys").stat().st_mode) == 0o700
    assert len({key.material for key in keys.values() if key}) == 3
    identity = (home / "keys" / "age-identity.txt").read_bytes()
    assert identity.startswith(b"AGE-SECRET-KEY-1") and identity.endswith(b"\n")
    again = Keyring.init(load_settings(home=home))
    assert {role: again._load(role) for role in keys} == keys
    assert (home / "keys" / "age-identity.txt").read_bytes() == identity
    assert str(again.age_recipient()).startswith("age1")
    assert Keyring.open(load_settings(home=home)).home == home


def test_a_missing_keyring_or_key_tells_what_to_run(tmp_path: Path, ring: Keyring) -> None:
    nowhere = tmp_path / "nowhere"
    with pytest.raises(KeyringError) as caught:
        Keyring.open(load_settings(home=nowhere))
    assert str(caught.value) == (f"no keyring at {nowhere}: run 'ingest keys init' "
                                 "(or set INGEST_HOME to the keyring directory)")
    with pytest.raises(KeyringError) as caught:
        ring.master_key("pseudonym")
    assert str(caught.value) == "unknown master key role 'pseudonym'"
    (ring.settings.keys_dir / "restricted.json").unlink()
    with pytest.raises(KeyringError) as caught:
        ring.master_key("restricted")
    assert str(caught.value) == "not authorised: this keyring holds no 'restricted' master key"
    assert list(ring.current_master_keys()) == ["general"]
    (ring.settings.keys_dir / "pseudonym.json").unlink()
    with pytest.raises(KeyringError) as caught:
        ring.pseudonym_key()
    assert str(caught.value) == ("no pseudonymisation key: run 'ingest keys init' or set "
                                 "INGEST_KEY_PSEUDONYM")
    (ring.settings.keys_dir / "age-identity.txt").unlink()
    with pytest.raises(KeyringError) as caught:
        ring.age_identity()
    assert str(caught.value) == (f"age identity missing from {ring.settings.keys_dir}: "
                                 "run 'ingest keys init'")
    with pytest.raises(KeyringError) as caught:
        Keyring._read_key(ring.settings.keys_dir / "restricted.json")
    assert str(caught.value) == (f"key file restricted.json missing from "
                                 f"{ring.settings.keys_dir}: run 'ingest keys init' or "
                                 "restore it from backup")


@pytest.mark.parametrize(("content", "says"), [
    (b"not json", "is damaged"),
    (b'{"id": "general-1"}', "is damaged"),
    (b'{"id": "general-1", "key": "!!!"}', "is damaged"),
    (b'{"id": "general-1", "key": 5}', "is damaged"),
    (b'{"id": "general-1", "key": "' + base64.b64encode(bytes(31)) + b'"}',
     "does not hold a 256-bit key"),
    (b'{"id": "general-1", "key": "' + base64.b64encode(bytes(33)) + b'"}',
     "does not hold a 256-bit key"),
], ids=["not-json", "no-key", "key-not-base64", "key-not-text", "31-bytes", "33-bytes"])
def test_a_damaged_key_file_is_refused(ring: Keyring, content: bytes, says: str) -> None:
    path = ring.settings.keys_dir / "general.json"
    path.write_bytes(content)
    with pytest.raises(KeyringError) as caught:
        ring.master_key("general")
    assert str(caught.value) == f"key file {path} {says}"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o610, 0o601])
def test_a_key_file_others_may_read_is_refused(ring: Keyring, mode: int) -> None:
    path = ring.settings.keys_dir / "general.json"
    path.chmod(mode)
    with pytest.raises(KeyringError) as caught:
        ring.master_key("general")
    assert str(caught.value) == f"key file {path} is readable by others: chmod 600 it"
    path.chmod(0o700)
    assert ring.master_key("general").id == "general-0000000a"


def test_keys_from_the_environment_come_first_and_must_be_well_formed(
        ring: Keyring, monkeypatch: pytest.MonkeyPatch) -> None:
    material = bytes([1]) * 32
    monkeypatch.setenv("INGEST_KEY_GENERAL",
                       f"  general-env:{base64.b64encode(material).decode()}\n")
    assert ring._source("general") == "environment"
    assert ring._source("restricted") == "file"
    assert ring.master_key("general") == SecretKey("general-env", material)
    assert ring.master_key("restricted").id == "restricted-0000000a"
    assert set(ring.master_keys_by_id()) == {"general-env", "restricted-0000000a"}
    for bad in ("general-env", f":{base64.b64encode(material).decode()}",
                f"general-env:{base64.b64encode(bytes(31)).decode()}",
                "general-env:not base64!",
                # one character that is no base64 among 44 that are: not skipped over
                f"general-env:{base64.b64encode(material).decode()[:20]}!"
                f"{base64.b64encode(material).decode()[20:]}"):
        monkeypatch.setenv("INGEST_KEY_GENERAL", bad)
        with pytest.raises(KeyringError) as caught:
            ring.master_key("general")
        assert str(caught.value) == ("INGEST_KEY_GENERAL must hold "
                                     "'<key id>:<base64 of a 256-bit key>'")
    monkeypatch.delenv("INGEST_KEY_GENERAL")
    (ring.settings.keys_dir / "general.json").unlink()
    assert ring._source("general") is None
    monkeypatch.setenv("INGEST_PREFECT_SECRET_PREFIX", "site")
    assert ring._source("general") == "prefect"


def test_a_key_from_outside_the_folder_is_not_rotated_here(
        ring: Keyring, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_KEY_GENERAL",
                       f"general-env:{base64.b64encode(bytes(32)).decode()}")
    with pytest.raises(KeyringError) as caught:
        ring.begin_rotation("general")
    assert str(caught.value) == ("the 'general' master key comes from the environment, not "
                                 "the keyring folder: rotate it where it is kept")


def test_a_rotation_retires_the_old_key_until_it_is_finished(ring: Keyring) -> None:
    old, new = ring.begin_rotation("restricted")
    assert old.id == "restricted-0000000a" and new.id.startswith("restricted-")
    assert new.id != old.id and new.material != old.material and len(new.material) == 32
    assert ring.master_key("restricted") == new
    retired = ring.settings.keys_dir / "retired"
    assert stat.S_IMODE(retired.stat().st_mode) == 0o700
    assert [p.name for p in retired.iterdir()] == [f"{old.id}.json"]
    assert ring.master_keys_by_id()[old.id] == old
    assert set(ring.master_keys_by_id()) == {old.id, new.id, "general-0000000a"}
    assert ring.finish_rotation() == [old.id]
    assert list(retired.iterdir()) == []
    assert old.id not in ring.master_keys_by_id()
    assert ring.finish_rotation() == []


PASSPHRASE = "a long keyring passphrase"
# An age identity sealed with PASSPHRASE in age's passphrase format (made once with
# age-keygen, sealed once): a keyring whose identity is sealed already, so the tests of
# the key files do not pay age's scrypt (seconds per call) on every run.
SEALED_IDENTITY = base64.b64decode(
    "YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IHNjcnlwdCB4VkdEbWxWZURmWVN1bFlXTnE3OWxR"
    "IDIwCmpBR1BKYk45UzhNL2JQMjJqbUgxYWVjcndKVkVJdEd1WkkwRGpsa0w2RDgKLS0tIEdx"
    "amJiSzBVMmZucnU5dVBIWWthRGRxM0lnUzdaMVU1VDVoRlRKWUFFUnMKnGhXXE2q3Qc+rJgE"
    "EvoMLykqwKSmDMMtWbCDYbuA5yQUqEwiW7cYp6gP4G38hoVde2t4i4PIfj2nQMmoM6x2pOUE"
    "oODsCERxkjkZgtjvN5HSFBwsiev8ebxiv2q6zjity3KE4YhHLvmSCAQ="
)


def test_a_sealed_keyring_opens_with_its_passphrase_only(
        ring: Keyring, monkeypatch: pytest.MonkeyPatch) -> None:
    identity = ring.settings.keys_dir / "age-identity.txt"
    identity.write_bytes(SEALED_IDENTITY)
    plain = ring.master_key("general")
    assert ring.protect(PASSPHRASE) == 3  # the three key files; the identity is sealed
    assert ring.protect(PASSPHRASE) == 0  # nothing left to seal
    assert identity.read_bytes() == SEALED_IDENTITY  # not sealed twice
    doc = json.loads((ring.settings.keys_dir / "general.json").read_bytes())
    assert doc["id"] == plain.id and "key" not in doc
    sealed = doc["sealed"]
    assert (sealed["kdf"], sealed["n"], sealed["r"], sealed["p"]) == ("scrypt", 2**15, 8, 1)
    assert len(base64.b64decode(sealed["salt"])) == 16
    assert len(base64.b64decode(sealed["nonce"])) == 12
    keyring_module._derived.clear()
    with pytest.raises(KeyringError, match="passphrase-protected"):
        ring.master_key("general")
    monkeypatch.setenv("INGEST_KEYRING_PASSPHRASE", "a wrong passphrase")
    with pytest.raises(KeyringError) as caught:
        ring.master_key("general")
    assert str(caught.value) == "wrong keyring passphrase, or a key file was altered"
    monkeypatch.setenv("INGEST_KEYRING_PASSPHRASE", PASSPHRASE)
    assert ring.master_key("general") == plain
    # the key's id is bound to its sealed material
    doc["id"] = "general-other"
    (ring.settings.keys_dir / "general.json").write_text(json.dumps(doc))
    with pytest.raises(KeyringError, match="wrong keyring passphrase, or a key file was"):
        ring.master_key("general")
    doc["id"], doc["sealed"]["kdf"] = plain.id, "pbkdf2"
    (ring.settings.keys_dir / "general.json").write_text(json.dumps(doc))
    with pytest.raises(KeyringError) as caught:
        ring.master_key("general")
    assert str(caught.value) == "a key file is sealed with an unknown method"


def test_a_sealed_age_identity_opens_with_its_passphrase_only(
        ring: Keyring, monkeypatch: pytest.MonkeyPatch) -> None:
    identity = ring.settings.keys_dir / "age-identity.txt"
    recipient = str(ring.age_recipient())
    assert ring.protect(PASSPHRASE) == 4
    assert identity.read_bytes().startswith(b"age-encryption.org/")
    monkeypatch.setenv("INGEST_KEYRING_PASSPHRASE", "a wrong passphrase")
    with pytest.raises(KeyringError) as caught:
        ring.age_identity()
    assert str(caught.value) == "wrong keyring passphrase (age identity)"
    monkeypatch.setenv("INGEST_KEYRING_PASSPHRASE", PASSPHRASE)
    assert str(ring.age_recipient()) == recipient


def test_a_sealed_keyring_is_rotated_sealed(ring: Keyring,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (ring.settings.keys_dir / "age-identity.txt").write_bytes(SEALED_IDENTITY)
    ring.protect(PASSPHRASE)
    monkeypatch.setenv("INGEST_KEYRING_PASSPHRASE", PASSPHRASE)
    created = json.loads((ring.settings.keys_dir / "general.json").read_bytes())["created"]
    old, new = ring.begin_rotation("general")
    doc = json.loads((ring.settings.keys_dir / "general.json").read_bytes())
    assert doc["id"] == new.id and "key" not in doc and "sealed" in doc
    assert doc["created"] >= created and doc["created"].endswith("+00:00")  # UTC
    assert ring.master_key("general") == new
    assert ring.master_keys_by_id()[old.id] == old
    # a key added since (as `ingest keys init` adds a missing one) is sealed by the next
    # protect, whichever files before it are sealed already
    Keyring._write_key(ring.settings.keys_dir / "restricted.json",
                       SecretKey("restricted-0000000b", bytes(32)))
    assert ring.protect(PASSPHRASE) == 1
    assert "sealed" in json.loads((ring.settings.keys_dir / "restricted.json").read_bytes())
