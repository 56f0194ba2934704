"""The reference delivery's lookup table: counties by FIPS code (2 columns).

Delivered beside the case reports (the ``COUNTIES`` table of the reference
Access databases, or a CSV of its own); run both with
``ingest run DELIVERY --schema reference --schema counties``.
"""

from __future__ import annotations

from datetime import date

import pandera.polars as pa
import polars as pl

from ingest.schema import Column, Dataset

COLUMNS = (
    Column("CNTY_FIPS", "county_fips", "string", width=5),
    Column("NAME", "county_name", "string"),
)


def rules(delivery_date: date) -> pa.DataFrameSchema:
    """Five-digit codes, each once; every county has a name of at most 100 characters."""
    return pa.DataFrameSchema(
        {
            "county_fips": pa.Column(pl.Utf8, pa.Check.str_matches(r"^[0-9]{5}$"),
                                     nullable=False),
            "county_name": pa.Column(pl.Utf8, pa.Check.str_length(1, 100), nullable=False),
        },
        strict=True,
        ordered=True,
        name="counties",
    )


DATASET = Dataset(
    name="counties",
    version="1",
    columns=COLUMNS,
    rules=rules,
    table="COUNTIES",
    unique=("county_fips",),
)
