"""JSON Lines encrypted in the age format, so ``age -d -i identity`` opens it."""

from __future__ import annotations

import io

import polars as pl
import pyrage

from ..errors import DecryptionError


def encrypt_jsonl(frame: pl.DataFrame, recipient: object) -> bytes:
    """One JSON object per row (dates ISO 8601), sealed to ``recipient``."""
    sink = io.BytesIO()
    frame.write_ndjson(sink)
    return pyrage.encrypt(sink.getvalue(), [recipient])


def decrypt_jsonl(data: bytes, identity: object, name: str = "file") -> pl.DataFrame:
    try:
        plain = pyrage.decrypt(data, [identity])
    except pyrage.DecryptError:
        raise DecryptionError(f"{name}: cannot be decrypted: wrong identity, tampered or "
                              "truncated") from None
    if not plain:
        return pl.DataFrame()
    return pl.read_ndjson(io.BytesIO(plain), infer_schema_length=None)
