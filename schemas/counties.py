"""The reference delivery's lookup table: counties by FIPS code (2 columns).

Delivered beside the case reports (the ``COUNTIES`` table of the reference
Access databases, or a CSV of its own); run both with
``ingest run DELIVERY --schema reference --schema counties``.
Declared once (see :mod:`ingest.declare`).
"""

from __future__ import annotations

import pandera.polars as pa

from ingest.declare import dataset


class Counties(pa.DataFrameModel):
    """Five-digit codes, each once; every county has a name of at most 100 characters."""

    county_fips: str = pa.Field(str_matches=r"^[0-9]{5}$", unique=True,
                                metadata={"source": "CNTY_FIPS", "width": 5})
    county_name: str = pa.Field(str_length={"min_value": 1, "max_value": 100},
                                metadata={"source": "NAME"})


DATASET = dataset(Counties, name="counties", version="1", table="COUNTIES")
