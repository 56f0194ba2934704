"""The admissions example's lookup table: wards by code (4 columns).

Delivered beside the admissions (``ingest run DELIVERY --schema admissions
--schema wards``); its codes are the ones ``schemas/admissions.py`` accepts.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from ingest.declare import dataset


class Wards(pa.DataFrameModel):
    """One ward: its code, name, beds and facility."""

    ward_code: str = pa.Field(str_matches=r"^[A-Z]{3}$", unique=True,
                              metadata={"source": "WARD_CD"})
    ward_name: str = pa.Field(str_length={"min_value": 1, "max_value": 100},
                              metadata={"source": "WARD_NAME"})
    beds: pl.Int64 = pa.Field(metadata={"source": "BEDS", "minimum": 1})
    facility: pl.Categorical = pa.Field(metadata={"source": "FACILITY"})


DATASET = dataset(Wards, name="wards", version="1", table="WARDS")
