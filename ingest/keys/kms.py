"""KMS seam for Parquet Modular Encryption.

pyarrow's :class:`~pyarrow.parquet.encryption.CryptoFactory` makes a fresh data
key for every file and column, wraps it with a key-encryption key, and asks a
KMS client to wrap that with a *master key* named by role ("general",
"restricted"). Any KMS fits behind two methods:

``wrap_key(key_bytes, master_key_identifier) -> str``
    seal ``key_bytes`` under the current master key of that role;
``unwrap_key(wrapped, master_key_identifier) -> bytes``
    open it again, or raise ``PermissionError`` when not authorised.

:class:`LocalKms` is the embedded one: AES-256-GCM from ``cryptography``, with
the master key's id stored beside the sealed key and bound as associated data,
so a rotated keyring still knows which key sealed what. A site plugs in its own
KMS by passing ``kms_factory`` to the Parquet writer and reader.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Mapping

import pyarrow.parquet.encryption as pe
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ._secret import SecretKey

_NONCE = 12
KmsFactory = Callable[[pe.KmsConnectionConfig], pe.KmsClient]


class LocalKms(pe.KmsClient):
    """Wrap with the current key of a role; unwrap with whichever key id sealed it."""

    def __init__(self, current: Mapping[str, SecretKey], by_id: Mapping[str, SecretKey]) -> None:
        super().__init__()
        self._current = current
        self._by_id = by_id

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        master = self._current.get(master_key_identifier)
        if master is None:
            raise PermissionError(f"not authorised: no '{master_key_identifier}' master key "
                                  "in this keyring")
        nonce = os.urandom(_NONCE)
        sealed = AESGCM(master.material).encrypt(nonce, key_bytes, master.id.encode())
        return f"{master.id}${base64.b64encode(nonce + sealed).decode()}"

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        key_id, _, blob_text = wrapped_key.partition("$")
        master = self._by_id.get(key_id)
        if master is None:
            raise PermissionError(f"not authorised: the '{master_key_identifier}' master key "
                                  f"{key_id} is not in this keyring")
        blob = base64.b64decode(blob_text)
        try:
            return AESGCM(master.material).decrypt(blob[:_NONCE], blob[_NONCE:],
                                                   key_id.encode())
        except InvalidTag:
            raise PermissionError(f"master key {key_id} does not unwrap this data key: "
                                  "the key material was altered") from None


def local_kms_factory(current: Mapping[str, SecretKey],
                      by_id: Mapping[str, SecretKey]) -> KmsFactory:
    return lambda _config: LocalKms(current, by_id)
