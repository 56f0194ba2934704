"""The reference delivery: notifiable-disease case reports (10 columns).

Every rule of ``shared/spec/reference-delivery.md`` is here, declared once (see
:mod:`ingest.declare`): each field is a clean column, its pandera checks are the
rules of the clean, typed table, and its metadata says how source text becomes
typed values (the source header, dates from MM/DD/YYYY, identifiers' widths,
policies); Y/N to boolean and the null tokens are the defaults.
"""

from __future__ import annotations

from datetime import date

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from ingest.declare import dataset
from ingest.schema import Features

DIAGNOSIS_PATTERN = r"^[A-TV-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$"
EARLIEST_BIRTH = date(1900, 1, 1)
EARLIEST_REPORT = date(2015, 1, 1)


class Cases(pa.DataFrameModel):
    """One reported case. Date ranges are the columns' own declarations (they also
    settle two-digit years); report dates may not be later than the delivery."""

    case_id: str = pa.Field(str_matches=r"^[0-9]{10}$", unique=True,
                            metadata={"source": "CASE_ID", "width": 10})
    person_id: str = pa.Field(str_matches=r"^P[0-9A-F]{8}$",
                              metadata={"source": "PERS_ID", "policy": "pseudonymise"})
    birth_date: pl.Date = pa.Field(metadata={"source": "DOB", "policy": "restrict",
                                             "earliest": EARLIEST_BIRTH})
    sex: pl.Categorical = pa.Field(isin=["F", "M", "X", "U"], metadata={"source": "SEX"})
    county_fips: str = pa.Field(str_matches=r"^[0-9]{5}$",
                                metadata={"source": "CNTY_FIPS", "width": 5})
    report_date: pl.Date = pa.Field(metadata={"source": "RPT_DT", "earliest": EARLIEST_REPORT,
                                              "latest": "delivery"})
    diagnosis_code: pl.Categorical = pa.Field(str_matches=DIAGNOSIS_PATTERN,
                                              metadata={"source": "DX_CD"})
    lab_value: pl.Float64 = pa.Field(ge=0, nullable=True, metadata={"source": "LAB_VAL"})
    hospitalized: pl.Boolean = pa.Field(metadata={"source": "HOSP_YN"})
    comments: str = pa.Field(str_length={"max_value": 500}, nullable=True,
                             metadata={"source": "CMNT", "policy": "restrict"})

    @pa.dataframe_check
    @classmethod
    def birth_date_not_after_report_date(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("birth_date").is_null() | pl.col("report_date").is_null()
            | (pl.col("birth_date") <= pl.col("report_date")))


def derive() -> dict[str, pl.Expr]:
    """Derived feature columns: age in years at the report date."""
    return {
        "age_at_report": ((pl.col("report_date") - pl.col("birth_date")).dt.total_days()
                          / 365.25),
    }


DATASET = dataset(
    Cases,
    name="reference",
    version="1",
    table="CASES",
    encodings=("utf-8", "cp1252"),
    null_tokens=("", "NA", ".", "NULL"),
    features=Features(
        labels=("hospitalized",),
        categorical=("sex", "diagnosis_code", "county_fips"),
        numeric=("lab_value",),
        derived=("age_at_report",),
    ),
    derive=derive,
)
