"""Writers: column policies, encrypted Parquet, encrypted JSON Lines, atomic publishing."""

from .jsonl import decrypt_jsonl, write_jsonl
from .parquet import read_parquet, write_parquet
from .policy import apply_policies, pseudonymise, restricted_columns, written_columns
from .publish import MANIFEST, Output, Staging, delivery_lock, is_published

__all__ = ["MANIFEST", "Output", "Staging", "apply_policies", "decrypt_jsonl",
           "delivery_lock", "is_published", "pseudonymise", "read_parquet",
           "restricted_columns", "write_jsonl", "write_parquet", "written_columns"]
