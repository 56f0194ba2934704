"""KMS seam for Parquet Modular Encryption.

pyarrow's :class:`~pyarrow.parquet.encryption.CryptoFactory` generates a fresh
data key per file and column and asks a KMS client to wrap it with a master
key. :class:`LocalKms` wraps with AES-256-GCM from ``cryptography``, the master
key id as associated data. A site with its own KMS implements the same two
methods (``wrap_key``, ``unwrap_key``) and passes its factory to the writers.
"""

from __future__ import annotations

import base64
import os

import pyarrow.parquet.encryption as pe
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .keyring import SecretKey

_NONCE = 12


class LocalKms(pe.KmsClient):
    """Wraps data keys with master keys held in memory (from the local keyring)."""

    def __init__(self, master_keys: dict[str, SecretKey]) -> None:
        super().__init__()
        self._keys = master_keys

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        master = self._key(master_key_identifier)
        nonce = os.urandom(_NONCE)
        sealed = AESGCM(master.material).encrypt(nonce, key_bytes,
                                                 master_key_identifier.encode())
        return base64.b64encode(nonce + sealed).decode()

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        master = self._key(master_key_identifier)
        blob = base64.b64decode(wrapped_key)
        try:
            return AESGCM(master.material).decrypt(blob[:_NONCE], blob[_NONCE:],
                                                   master_key_identifier.encode())
        except InvalidTag:
            raise PermissionError(f"master key {master_key_identifier} does not "
                                  "unwrap this data key") from None

    def _key(self, key_id: str) -> SecretKey:
        try:
            return self._keys[key_id]
        except KeyError:
            raise PermissionError(f"not authorised: master key {key_id} "
                                  "is not in this keyring") from None


def crypto_factory(master_keys: dict[str, SecretKey]) -> pe.CryptoFactory:
    return pe.CryptoFactory(lambda _config: LocalKms(master_keys))
