"""Column policies applied before anything is written.

keep: as is; pseudonymise: keyed HMAC-SHA-256 token (hex), the same person gets
the same token in every delivery under one key, so deliveries link; restrict:
kept, but encrypted under the restricted master key; drop: never written.
"""

from __future__ import annotations

import polars as pl
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.hmac import HMAC

from ..keys import SecretKey
from ..kinds import output_type
from ..schema import Dataset


def pseudonymise(values: pl.Series, key: SecretKey) -> pl.Series:
    """HMAC-SHA-256 of each value under ``key``, as 64 hex digits; nulls stay null.

    Each distinct value is hashed once (people recur across cases), from a copy
    of one keyed HMAC (``cryptography``'s, the cheapest per value); the digests
    become hex in one vectorised step.
    """
    keyed = HMAC(key.material, SHA256())
    if values.dtype != pl.Utf8:  # an identifier of another kind (an integer) by its text
        values = values.cast(pl.Utf8)

    def digest(value: bytes) -> bytes:
        mac = keyed.copy()
        mac.update(value)
        return mac.finalize()

    uniques = values.unique().drop_nulls()
    digests = pl.Series([digest(v) for v in uniques.cast(pl.Binary).to_list()],
                        dtype=pl.Binary)
    # each value looked up in place (not through a join, whose output order is not
    # a promise); a null has no digest and stays null
    return values.replace_strict(uniques, digests.bin.encode("hex")).alias(values.name)


def apply_policies(frame: pl.DataFrame, dataset: Dataset, key: SecretKey) -> pl.DataFrame:
    """The table as it may leave the pipeline: pseudonymised, dropped, categories typed."""
    out: list[pl.Series] = []
    for col in dataset.columns:
        if col.policy == "drop":
            continue
        series = frame[col.name]
        if col.policy == "pseudonymise":
            series = pseudonymise(series, key)
        else:
            # the type every output keeps (the kinds table; categories as Categorical)
            series = series.cast(output_type(col))
        out.append(series)
    return pl.DataFrame(out)


def written_columns(dataset: Dataset) -> list[str]:
    """The columns that leave the pipeline (every one but those dropped)."""
    return [c.name for c in dataset.columns if c.policy != "drop"]


def restricted_columns(dataset: Dataset) -> list[str]:
    """Columns under the restricted master key: identifiers and quasi-identifiers."""
    return [c.name for c in dataset.columns if c.policy in ("restrict", "pseudonymise")]
