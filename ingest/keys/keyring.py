"""The local keyring: master keys, the pseudonymisation key, the age identity.

Layout under ``$INGEST_HOME`` (directories 0700, files 0600)::

    keys/general.json      master key for general columns and footers
    keys/restricted.json   master key for identifiers and quasi-identifiers
    keys/pseudonym.json    HMAC-SHA-256 key for pseudonymised columns
    keys/age-identity.txt  age X25519 identity for JSON Lines and quarantine
    gnupg/                 GnuPG home holding the recipient's OpenPGP key

Key material never leaves this module except as bytes handed to a cipher;
``repr`` of a key shows only its id.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .._fs import private_dir, write_private
from ..errors import KeyringError
from ..settings import Settings, load_settings

MASTER_ROLES = ("general", "restricted")


@dataclass(frozen=True)
class SecretKey:
    """A named symmetric key. Only the id is ever shown."""

    id: str
    material: bytes = field(repr=False)


class Keyring:
    """Keys kept under one directory. Create with :meth:`init`, open with :meth:`open`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.home

    # -- lifecycle -----------------------------------------------------------------
    @classmethod
    def open(cls, settings: Settings | None = None) -> Keyring:
        ring = cls(settings or load_settings())
        if not (ring.settings.keys_dir / "general.json").is_file():
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
        path = self.settings.keys_dir / f"{role}.json"
        if not path.exists():
            raise KeyringError(f"not authorised: this keyring holds no '{role}' master key")
        return self._read_key(path)

    def current_master_keys(self) -> dict[str, SecretKey]:
        """The master key of each role this keyring holds (a reader may hold only some)."""
        return {role: self._read_key(self.settings.keys_dir / f"{role}.json")
                for role in MASTER_ROLES if (self.settings.keys_dir / f"{role}.json").exists()}

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

    def kms_factory(self):  # -> ingest.keys.kms.KmsFactory
        from .kms import local_kms_factory

        return local_kms_factory(self.current_master_keys(), self.master_keys_by_id())

    def begin_rotation(self, role: str) -> tuple[SecretKey, SecretKey]:
        """Make a new master key for ``role``; the old one is kept aside (retired/)
        until :meth:`finish_rotation`. Returns (old, new)."""
        old = self.master_key(role)
        retired = private_dir(self.settings.keys_dir / "retired")
        self._write_key(retired / f"{old.id}.json", old)
        new = SecretKey(_new_id(role), secrets.token_bytes(32))
        self._write_key(self.settings.keys_dir / f"{role}.json", new)
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
        return self._read_key(self.settings.keys_dir / "pseudonym.json")

    def age_identity(self):  # -> pyrage.x25519.Identity
        import pyrage

        path = self.settings.keys_dir / "age-identity.txt"
        try:
            return pyrage.x25519.Identity.from_str(path.read_text().strip())
        except FileNotFoundError:
            raise KeyringError(f"age identity missing from {path.parent}: "
                               "run 'ingest keys init'") from None

    def age_recipient(self):  # -> pyrage.x25519.Recipient
        return self.age_identity().to_public()

    @property
    def gnupg_home(self) -> Path:
        return self.settings.gnupg_home

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
            material = base64.b64decode(doc["key"], validate=True)
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
