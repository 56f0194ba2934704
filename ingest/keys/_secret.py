"""The key type the keyring hands out and the KMS seam consumes.

Its own module so that :mod:`~ingest.keys.keyring` (which makes a KMS client) and
:mod:`~ingest.keys.kms` (which seals with these keys) both import it and neither
imports the other at load time.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SecretKey:
    """A named symmetric key. Only the id is ever shown."""

    id: str
    material: bytes = field(repr=False)
