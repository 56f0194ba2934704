"""The local keyring: master keys, the pseudonymisation key, the age identity.

Layout under ``$INGEST_HOME`` (directories 0700, files 0600)::

    keys/general.json      master key for general columns and footers
    keys/restricted.json   master key for identifiers and quasi-identifiers
    keys/pseudonym.json    HMAC-SHA-256 key for pseudonymised columns
    keys/age-identity.txt  age X25519 identity for JSON Lines and quarantine
    gnupg/                 GnuPG home holding the recipient's OpenPGP key

Where a key comes from, highest precedence first:

1. an environment variable ``INGEST_KEY_<ROLE>`` holding ``<id>:<base64 key>``
   (``INGEST_KEY_GENERAL``, ``INGEST_KEY_RESTRICTED``, ``INGEST_KEY_PSEUDONYM``);
2. a Prefect Secret block named ``<prefix>-<role>-key`` holding the same text,
   when ``INGEST_PREFECT_SECRET_PREFIX`` names the prefix (deployments on a
   Prefect server);
3. the key file under ``keys/``, optionally sealed with a passphrase
   (``ingest keys protect``): scrypt derives a key that opens it with AES-256-GCM;
   the passphrase comes from ``INGEST_KEYRING_PASSPHRASE`` or a prompt.

Key material never leaves this module except as bytes handed to a cipher;
``repr`` of a key shows only its id.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .._fs import private_dir, write_private
from ..errors import KeyringError
from ..settings import Settings, load_settings
from ._secret import SecretKey

if TYPE_CHECKING:
    from .kms import KmsFactory

MASTER_ROLES = ("general", "restricted")
KEYRING_PASSPHRASE_ENV = "INGEST_KEYRING_PASSPHRASE"
PREFECT_PREFIX_ENV = "INGEST_PREFECT_SECRET_PREFIX"
_SCRYPT = {"n": 2**15, "r": 8, "p": 1}
_derived: dict[bytes, bytes] = {}


class Keyring:
    """Keys kept under one directory. Create with :meth:`init`, open with :meth:`open`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.home

    # -- lifecycle -----------------------------------------------------------------
    @classmethod
    def open(cls, settings: Settings | None = None) -> Keyring:
        ring = cls(settings or load_settings())
        if ring._source("general") is None:
            raise KeyringError(
                f"no keyring at {ring.home}: run 'ingest keys init' "
                "(or set INGEST_HOME to the keyring directory)")
        return ring

    @classmethod
    def init(cls, settings: Settings | None = None) -> Keyring:
        """Create any missing key; never overwrites an existing one."""
        ring = cls(settings or load_settings())
        private_dir(ring.home)
        private_dir(ring.settings.keys_dir)
        for role in (*MASTER_ROLES, "pseudonym"):
            path = ring.settings.keys_dir / f"{role}.json"
            if not path.exists():
                ring._write_key(path, SecretKey(_new_id(role), secrets.token_bytes(32)))
        identity = ring.settings.keys_dir / "age-identity.txt"
        if not identity.exists():
            import pyrage

            write_private(identity, str(pyrage.x25519.Identity.generate()).encode() + b"\n")
        from ..crypto.openpgp import ensure_recipient_key

        ensure_recipient_key(ring.settings.gnupg_home)
        return ring

    # -- keys ----------------------------------------------------------------------
    def master_key(self, role: str) -> SecretKey:
        if role not in MASTER_ROLES:
            raise KeyringError(f"unknown master key role '{role}'")
        key = self._load(role)
        if key is None:
            raise KeyringError(f"not authorised: this keyring holds no '{role}' master key")
        return key

    def current_master_keys(self) -> dict[str, SecretKey]:
        """The master key of each role this keyring holds (a reader may hold only some)."""
        found = {role: self._load(role) for role in MASTER_ROLES}
        return {role: key for role, key in found.items() if key is not None}

    def master_keys_by_id(self) -> dict[str, SecretKey]:
        """Every master key this keyring holds, by id: current ones, and retired ones
        while a rotation is re-wrapping outputs."""
        found = {key.id: key for key in self.current_master_keys().values()}
        retired = self.settings.keys_dir / "retired"
        if retired.is_dir():
            for path in retired.glob("*.json"):
                key = self._read_key(path)
                found[key.id] = key
        return found

    def kms_factory(self) -> KmsFactory:
        from .kms import local_kms_factory  # pyarrow's encryption module: loaded when used

        return local_kms_factory(self.current_master_keys(), self.master_keys_by_id())

    def begin_rotation(self, role: str) -> tuple[SecretKey, SecretKey]:
        """Make a new master key for ``role``; the old one is kept aside (retired/)
        until :meth:`finish_rotation`. Returns (old, new)."""
        if self._source(role) != "file":
            raise KeyringError(f"the '{role}' master key comes from the {self._source(role)}, "
                               "not the keyring folder: rotate it where it is kept")
        old = self.master_key(role)
        current = self.settings.keys_dir / f"{role}.json"
        retired = private_dir(self.settings.keys_dir / "retired")
        write_private(retired / f"{old.id}.json", current.read_bytes())
        new = SecretKey(_new_id(role), secrets.token_bytes(32))
        created = datetime.now(UTC).isoformat(timespec="seconds")
        if "sealed" in json.loads(current.read_bytes()):
            write_private(current, json.dumps(_seal(new, keyring_passphrase(), created))
                          .encode())
        else:
            self._write_key(current, new)
        return old, new

    def finish_rotation(self) -> list[str]:
        """Destroy retired master keys: outputs no longer open with them."""
        retired = self.settings.keys_dir / "retired"
        gone = []
        for path in sorted(retired.glob("*.json")) if retired.is_dir() else []:
            gone.append(path.stem)
            path.unlink()
        return gone

    def pseudonym_key(self) -> SecretKey:
        key = self._load("pseudonym")
        if key is None:
            raise KeyringError("no pseudonymisation key: run 'ingest keys init' or set "
                               "INGEST_KEY_PSEUDONYM")
        return key

    def age_identity(self):  # -> pyrage.x25519.Identity
        import pyrage

        path = self.settings.keys_dir / "age-identity.txt"
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise KeyringError(f"age identity missing from {path.parent}: "
                               "run 'ingest keys init'") from None
        if raw.startswith(b"age-encryption.org/"):  # protected: age's own passphrase format
            try:
                raw = pyrage.passphrase.decrypt(raw, keyring_passphrase())
            except pyrage.DecryptError:
                raise KeyringError("wrong keyring passphrase (age identity)") from None
        return pyrage.x25519.Identity.from_str(raw.decode().strip())

    def age_recipient(self):  # -> pyrage.x25519.Recipient
        return self.age_identity().to_public()

    @property
    def gnupg_home(self) -> Path:
        return self.settings.gnupg_home

    def protect(self, passphrase: str) -> int:
        """Seal every key file with ``passphrase`` (scrypt + AES-256-GCM); the age
        identity is sealed in age's own passphrase format, which ``age -d`` opens."""
        import pyrage

        count = 0
        for path in sorted(self.settings.keys_dir.glob("*.json")):
            doc = json.loads(path.read_bytes())
            if "sealed" in doc:
                continue
            key = self._read_key(path)
            write_private(path, json.dumps(_seal(key, passphrase, doc["created"])).encode())
            count += 1
        identity = self.settings.keys_dir / "age-identity.txt"
        raw = identity.read_bytes()
        if not raw.startswith(b"age-encryption.org/"):
            write_private(identity, pyrage.passphrase.encrypt(raw, passphrase))
            count += 1
        return count

    def _source(self, role: str) -> str | None:
        """Where ``role``'s key comes from: 'environment', 'prefect', 'file' or None."""
        if os.environ.get(f"INGEST_KEY_{role.upper()}"):
            return "environment"
        if os.environ.get(PREFECT_PREFIX_ENV):
            return "prefect"
        if (self.settings.keys_dir / f"{role}.json").exists():
            return "file"
        return None

    def _load(self, role: str) -> SecretKey | None:
        source = self._source(role)
        if source == "environment":
            return _parse_key_text(os.environ[f"INGEST_KEY_{role.upper()}"],
                                   f"INGEST_KEY_{role.upper()}")
        if source == "prefect":
            from prefect.blocks.system import Secret

            name = f"{os.environ[PREFECT_PREFIX_ENV]}-{role}-key"
            try:
                text = Secret.load(name, _sync=True).get()  # type: ignore[call-arg,union-attr]
            except ValueError:
                path = self.settings.keys_dir / f"{role}.json"
                return self._read_key(path) if path.exists() else None
            return _parse_key_text(str(text), f"Prefect Secret block {name}")
        if source == "file":
            return self._read_key(self.settings.keys_dir / f"{role}.json")
        return None

    # -- storage -------------------------------------------------------------------
    @staticmethod
    def _write_key(path: Path, key: SecretKey) -> None:
        doc = {"id": key.id, "created": datetime.now(UTC).isoformat(timespec="seconds"),
               "key": base64.b64encode(key.material).decode()}
        write_private(path, json.dumps(doc).encode())

    @staticmethod
    def _read_key(path: Path) -> SecretKey:
        try:
            doc = json.loads(path.read_bytes())
            material = (_unseal(doc["sealed"], doc["id"]) if "sealed" in doc
                        else base64.b64decode(doc["key"], validate=True))
        except FileNotFoundError:
            raise KeyringError(f"key file {path.name} missing from {path.parent}: "
                               "run 'ingest keys init' or restore it from backup") from None
        except (ValueError, KeyError, TypeError):
            raise KeyringError(f"key file {path} is damaged") from None
        if len(material) != 32:
            raise KeyringError(f"key file {path} does not hold a 256-bit key")
        if os.stat(path).st_mode & 0o077:
            raise KeyringError(f"key file {path} is readable by others: chmod 600 it")
        return SecretKey(doc["id"], material)


def _new_id(role: str) -> str:
    return f"{role}-{secrets.token_hex(4)}"


def keyring_passphrase() -> str:
    value = os.environ.get(KEYRING_PASSPHRASE_ENV)
    if value:
        return value
    from .session import keyring_passphrase as session_value

    value = session_value()
    if not value:
        raise KeyringError(f"the keyring is passphrase-protected: set {KEYRING_PASSPHRASE_ENV} "
                           "or give --keyring-passphrase-prompt")
    return value


def _kek(salt: bytes, passphrase: str) -> bytes:
    cache_key = salt + passphrase.encode()
    if cache_key not in _derived:
        _derived[cache_key] = Scrypt(salt=salt, length=32, **_SCRYPT).derive(passphrase.encode())
    return _derived[cache_key]


def _seal(key: SecretKey, passphrase: str, created: str) -> dict:
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    sealed = AESGCM(_kek(salt, passphrase)).encrypt(nonce, key.material, key.id.encode())
    return {"id": key.id, "created": created, "sealed": {
        "kdf": "scrypt", **_SCRYPT, "salt": base64.b64encode(salt).decode(),
        "nonce": base64.b64encode(nonce).decode(),
        "ciphertext": base64.b64encode(sealed).decode()}}


def _unseal(sealed: dict, key_id: str) -> bytes:
    if sealed.get("kdf") != "scrypt":
        raise KeyringError("a key file is sealed with an unknown method")
    salt = base64.b64decode(sealed["salt"])
    try:
        return AESGCM(_kek(salt, keyring_passphrase())).decrypt(
            base64.b64decode(sealed["nonce"]), base64.b64decode(sealed["ciphertext"]),
            key_id.encode())
    except InvalidTag:
        raise KeyringError("wrong keyring passphrase, or a key file was altered") from None


def _parse_key_text(text: str, where: str) -> SecretKey:
    key_id, _, b64 = text.strip().partition(":")
    try:
        material = base64.b64decode(b64, validate=True)
    except ValueError:
        material = b""
    if not key_id or len(material) != 32:
        raise KeyringError(f"{where} must hold '<key id>:<base64 of a 256-bit key>'")
    return SecretKey(key_id, material)
