"""Keys: the local keyring and the KMS seam used by the Parquet writer."""

from ._secret import SecretKey
from .keyring import MASTER_ROLES, Keyring

__all__ = ["MASTER_ROLES", "Keyring", "SecretKey"]
