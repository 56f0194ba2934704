"""Keys: the local keyring and the KMS seam used by the Parquet writer."""

from .keyring import MASTER_ROLES, Keyring, SecretKey

__all__ = ["MASTER_ROLES", "Keyring", "SecretKey"]
