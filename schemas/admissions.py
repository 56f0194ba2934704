"""The second example: hospital admissions (12 columns), with the ward lookup table.

Declared once (see :mod:`ingest.declare`): each field is a clean column of its own
kind, integers, decimals, a UTC timestamp, a time of day, a category, a flag. The
metadata says how the source spells them; the formats cover CSV, workbooks and
what ``mdb-export`` prints for Access (a time of day on day zero ``1899-12-30``,
flags as ``1``/``0``). Ward codes are the ones in ``schemas/wards.py``; run both
tables of a delivery with ``ingest run DELIVERY --schema admissions --schema wards``.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from ingest.declare import dataset
from ingest.schema import Features

WARD_CODES = ("CAR", "EMR", "GER", "ICU", "MAT", "MED", "ONC", "ORT", "PED", "SUR")
"""The codes of the ward lookup table (``schemas/wards.py``)."""
TRIAGE = ("RED", "ORANGE", "YELLOW", "GREEN", "BLUE")
TIMESTAMPS = ("%Y-%m-%dT%H:%M:%S%#z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S")
"""ISO 8601 with ``Z`` or an offset (converted to UTC), or naive (read as UTC)."""
TIMES = ("%H:%M", "%H:%M:%S", "1899-12-30 %H:%M:%S")
FLAGS = {"true_values": ("Y", "1"), "false_values": ("N", "0")}


class Admissions(pa.DataFrameModel):
    """One hospital admission."""

    admission_id: str = pa.Field(str_matches=r"^ADM[0-9]{8}$", unique=True,
                                 metadata={"source": "ADM_ID"})
    patient_id: str = pa.Field(str_matches=r"^MRN[0-9]{7}$",
                               metadata={"source": "MRN", "policy": "pseudonymise"})
    admitted_at: pl.Datetime = pa.Field(metadata={"source": "ADMIT_TS", "timezone": "UTC",
                                                  "datetime_formats": TIMESTAMPS})
    arrival_time: pl.Time = pa.Field(metadata={"source": "ARRIVAL", "time_formats": TIMES})
    length_of_stay: pl.Int64 = pa.Field(metadata={"source": "LOS_DAYS", "minimum": 0,
                                                  "maximum": 3650})
    prior_admissions: pl.Int64 = pa.Field(nullable=True, metadata={"source": "PRIOR_ADM",
                                                                   "minimum": 0})
    charge: pl.Decimal = pa.Field(ge=0, metadata={"source": "CHARGE", "precision": 12,
                                                  "scale": 2})
    creatinine: pl.Decimal = pa.Field(nullable=True, metadata={"source": "CREAT",
                                                               "precision": 7, "scale": 3})
    triage: pl.Categorical = pa.Field(isin=list(TRIAGE), metadata={"source": "TRIAGE"})
    readmitted: pl.Boolean = pa.Field(metadata={"source": "READMIT", **FLAGS})
    ward_code: pl.Categorical = pa.Field(isin=list(WARD_CODES), metadata={"source": "WARD_CD"})
    note: str = pa.Field(str_length={"max_value": 200}, nullable=True,
                         metadata={"source": "NOTE", "policy": "restrict"})


DATASET = dataset(
    Admissions,
    name="admissions",
    version="1",
    table="ADMISSIONS",
    null_tokens=("", "NA", "NULL"),
    features=Features(
        labels=("readmitted",),
        categorical=("triage", "ward_code"),
        numeric=("length_of_stay", "prior_admissions", "charge", "creatinine"),
    ),
)
