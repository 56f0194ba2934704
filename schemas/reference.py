"""The reference delivery: notifiable-disease case reports (10 columns).

Every rule of ``shared/spec/reference-delivery.md`` is here: the pandera schema
checks the clean, typed table; the column specs say how source text becomes
typed values (dates from MM/DD/YYYY, Y/N to boolean, null tokens).
"""

from __future__ import annotations

from datetime import date

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from ingest.schema import Column, Dataset, Features

DIAGNOSIS_PATTERN = r"^[A-TV-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$"
EARLIEST_BIRTH = date(1900, 1, 1)
EARLIEST_REPORT = date(2015, 1, 1)

COLUMNS = (
    Column("CASE_ID", "case_id", "string", width=10),
    Column("PERS_ID", "person_id", "string", policy="pseudonymise"),
    Column("DOB", "birth_date", "date", policy="restrict", earliest=EARLIEST_BIRTH),
    Column("SEX", "sex", "category"),
    Column("CNTY_FIPS", "county_fips", "string", width=5),
    Column("RPT_DT", "report_date", "date", earliest=EARLIEST_REPORT, latest="delivery"),
    Column("DX_CD", "diagnosis_code", "category"),
    Column("LAB_VAL", "lab_value", "float", nullable=True),
    Column("HOSP_YN", "hospitalized", "bool"),
    Column("CMNT", "comments", "string", nullable=True, policy="restrict"),
)


def _birth_not_after_report(data: PolarsData) -> pl.LazyFrame:
    return data.lazyframe.select(
        pl.col("birth_date").is_null() | pl.col("report_date").is_null()
        | (pl.col("birth_date") <= pl.col("report_date")))


def _column(name: str) -> Column:
    return next(c for c in COLUMNS if c.name == name)


def rules(delivery_date: date) -> pa.DataFrameSchema:
    """The clean table's rules; report dates may not be later than the delivery.
    Date ranges are the columns' own declarations (they also settle two-digit years)."""
    return pa.DataFrameSchema(
        {
            "case_id": pa.Column(pl.Utf8, pa.Check.str_matches(r"^[0-9]{10}$"),
                                 nullable=False),
            "person_id": pa.Column(pl.Utf8, pa.Check.str_matches(r"^P[0-9A-F]{8}$"),
                                   nullable=False),
            "birth_date": pa.Column(pl.Date, _column("birth_date").range_check(delivery_date),
                                    nullable=False),
            "sex": pa.Column(pl.Utf8, pa.Check.isin(["F", "M", "X", "U"]), nullable=False),
            "county_fips": pa.Column(pl.Utf8, pa.Check.str_matches(r"^[0-9]{5}$"),
                                     nullable=False),
            "report_date": pa.Column(pl.Date, _column("report_date").range_check(delivery_date),
                                     nullable=False),
            "diagnosis_code": pa.Column(pl.Utf8, pa.Check.str_matches(DIAGNOSIS_PATTERN),
                                        nullable=False),
            "lab_value": pa.Column(pl.Float64, pa.Check.ge(0), nullable=True),
            "hospitalized": pa.Column(pl.Boolean, nullable=False),
            "comments": pa.Column(pl.Utf8, pa.Check.str_length(max_value=500),
                                  nullable=True),
        },
        checks=[pa.Check(_birth_not_after_report, name="birth_date_not_after_report_date")],
        strict=True,
        ordered=True,
        name="reference",
    )


def derive() -> dict[str, pl.Expr]:
    """Derived feature columns: age in years at the report date."""
    return {
        "age_at_report": ((pl.col("report_date") - pl.col("birth_date")).dt.total_days()
                          / 365.25),
    }


DATASET = Dataset(
    name="reference",
    version="1",
    columns=COLUMNS,
    rules=rules,
    table="CASES",
    encodings=("utf-8", "cp1252"),
    null_tokens=("", "NA", ".", "NULL"),
    unique=("case_id",),
    features=Features(
        labels=("hospitalized",),
        categorical=("sex", "diagnosis_code", "county_fips"),
        numeric=("lab_value",),
        derived=("age_at_report",),
    ),
    derive=derive,
)
