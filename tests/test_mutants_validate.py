"""Validation's summary and counts as an operator reads them.

Written for the mutants of ``ingest/validate/__init__.py`` that the other tests let
live (``scripts/mutants validate``); each test states what an operator relies on.
"""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from ingest.errors import IngestError
from ingest.readers import SourceTable
from ingest.schema import load_dataset
from ingest.validate import CAUSES, top_reasons, validate, years

DATASET = load_dataset("reference")
GOOD = {
    "CASE_ID": "0000000001", "PERS_ID": "P0000ABCD", "DOB": "01/02/1980", "SEX": "F",
    "CNTY_FIPS": "01001", "RPT_DT": "03/04/2020", "DX_CD": "A01.1", "LAB_VAL": "1.5",
    "HOSP_YN": "N", "CMNT": "",
}
DELIVERY = date(2026, 6, 30)


def test_the_summary_names_the_rules_most_rows_fail_first() -> None:
    reasons = {"b:x": 1, "a:x": 1, "c:y": 1200, "e:z": 5, "d:z": 5, "f:w": 2, "g:v": 3}
    # most rows first, ties by name; counts with separators; the rest summed up
    assert top_reasons(reasons) == ("c:y (1,200 rows), d:z (5 rows), e:z (5 rows), "
                                    "g:v (3 rows), f:w (2 rows), and 2 more rule(s)")
    assert top_reasons(reasons, count=7).endswith("a:x (1 row), b:x (1 row)")


def test_the_summary_says_what_a_two_digit_year_failure_means() -> None:
    ambiguous = f"birth_date:{years.AMBIGUOUS}"
    out_of_range = f"report_date:{years.OUT_OF_RANGE}"
    # a rule over several columns has no column part
    summary = top_reasons({ambiguous: 3, out_of_range: 2, "sex:isin": 1,
                           "birth_date_not_after_report_date": 1})
    assert summary == (f"{ambiguous} (3 rows), {out_of_range} (2 rows), "
                       "birth_date_not_after_report_date (1 row), sex:isin (1 row)"
                       f"; {years.AMBIGUOUS}: {CAUSES[years.AMBIGUOUS]}"
                       f"; {years.OUT_OF_RANGE}: {CAUSES[years.OUT_OF_RANGE]}")
    assert "ask for four-digit years" in CAUSES[years.AMBIGUOUS]


def test_repairs_by_the_reader_and_by_the_parsers_are_counted_together() -> None:
    frame = pl.DataFrame([GOOD, GOOD | {"CASE_ID": "0000000002", "CNTY_FIPS": "1001"},
                          GOOD | {"CASE_ID": "0000000003", "CNTY_FIPS": "2001"}])
    # the reader (say R's lost zeros in an identifier) repaired two more of the same kind
    source = SourceTable("t.csv", "csv", frame,
                         repairs={"county_fips:zero_padded": 2, "case_id:zero_padded": 1})
    result = validate(source, DATASET, DELIVERY)
    assert result.repairs == {"case_id:zero_padded": 1, "county_fips:zero_padded": 4}
    assert result.rows_accepted == 3 and result.rows_quarantined == 0


def test_a_failure_inside_validation_is_named_as_validation() -> None:
    frame = pl.DataFrame([GOOD]).drop("SEX")
    with pytest.raises(IngestError) as caught:
        validate(SourceTable("t.csv", "csv", frame), DATASET, DELIVERY)
    assert str(caught.value).startswith("validation failed (")


CHECK_ONE_BAD_ROW = """
from datetime import date
import polars as pl
from ingest.readers import SourceTable
from ingest.schema import load_dataset
from ingest.validate import validate
good = {GOOD!r}
frame = pl.DataFrame([good, good | {{"CASE_ID": "0000000002", "SEX": "Q"}}])
result = validate(SourceTable("t.csv", "csv", frame), load_dataset("reference"),
                  date(2026, 6, 30))
print(result.rows_accepted, result.rows_quarantined, sorted(result.reasons))
"""


@pytest.mark.parametrize("setting", [
    {"PANDERA_VALIDATION_ENABLED": "False"},
    {"PANDERA_VALIDATION_DEPTH": "SCHEMA_ONLY"},
])
def test_pandera_settings_in_the_environment_do_not_turn_the_rules_off(
        setting: dict[str, str]) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run([sys.executable, "-c", CHECK_ONE_BAD_ROW.format(GOOD=GOOD)],
                          env=os.environ | setting, capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["1", "1", "['sex:isin']"]


def test_the_quarantine_table_has_one_shape_with_or_without_bad_rows() -> None:
    """Downstream readers of quarantine files see the same columns and types in every
    delivery: the source columns as text, then the row number, reasons, first row."""
    clean = pl.DataFrame([GOOD, GOOD | {"CASE_ID": "0000000002"}])
    # a spreadsheet gives typed cells; quarantined rows keep them as text
    typed = pl.DataFrame([GOOD, GOOD | {"CASE_ID": "0000000002", "SEX": "Q"}]).with_columns(
        pl.col("LAB_VAL").cast(pl.Float64))
    none_bad = validate(SourceTable("t.csv", "csv", clean), DATASET, DELIVERY)
    one_bad = validate(SourceTable("t.xlsx", "xlsx", typed), DATASET, DELIVERY)
    assert none_bad.rows_quarantined == 0 and one_bad.rows_quarantined == 1
    assert none_bad.quarantined.schema == one_bad.quarantined.schema
    assert list(one_bad.quarantined.columns) == [*GOOD, "_row", "_reasons", "_first_row"]
    assert all(one_bad.quarantined.schema[c] == pl.Utf8 for c in GOOD)
    assert one_bad.quarantined.schema["_reasons"] == pl.Utf8
    assert one_bad.quarantined.schema["_row"].is_integer()
    row = one_bad.quarantined.row(0, named=True)
    assert (row["LAB_VAL"], row["_row"], row["_reasons"]) == ("1.5", 2, "sex:isin")


@pytest.mark.parametrize("outer", [
    {"validation_enabled": False},
    {"validation_depth": "SCHEMA_ONLY"},
])
def test_pandera_turned_off_by_the_calling_program_does_not_turn_the_rules_off(
        outer: dict[str, object]) -> None:
    """A program that embeds ingest and turns pandera's checks off for its own frames
    still gets every rule of the dataset checked."""
    from pandera.config import ValidationDepth, config_context

    if "validation_depth" in outer:
        outer = {"validation_depth": ValidationDepth(outer["validation_depth"])}
    frame = pl.DataFrame([GOOD, GOOD | {"CASE_ID": "0000000002", "SEX": "Q"}])
    with config_context(**outer):  # type: ignore[arg-type]
        result = validate(SourceTable("t.csv", "csv", frame), DATASET, DELIVERY)
    assert (result.rows_accepted, result.rows_quarantined) == (1, 1)
    assert result.reasons == {"sex:isin": 1}


def test_a_schema_module_at_odds_with_its_column_specs_is_named_as_such() -> None:
    """A schema-level failure (a column's type, not a row's value) has no row to
    quarantine: it is a defect of the schema module, said so, quoting no value."""
    import pandera.polars as pa

    from ingest.schema import Column, Dataset

    at_odds = Dataset("t", "1", (Column("CODE", "code", "string"),),
                      rules=lambda _: pa.DataFrameSchema({"code": pa.Column(pl.Int64)}))
    frame = pl.DataFrame({"CODE": ["a1", "b2"]})
    with pytest.raises(IngestError) as caught:
        validate(SourceTable("t.csv", "csv", frame), at_odds, DELIVERY)
    assert str(caught.value) == ("validation: a schema-level check failed (column types or "
                                 "order); the schema module is inconsistent with its column "
                                 "specs")


def test_a_column_whose_name_holds_a_colon_is_told_apart_from_its_rule() -> None:
    """Rule names are ``<column>:<kind>``; a column may be named with a colon (a
    pandera ``alias``), so the kind is what follows the last colon."""
    import pandera.polars as pa

    from ingest.declare import dataset
    from ingest.report import TABLE_LEVEL, failures_by_column

    class Doses(pa.DataFrameModel):
        dose: int = pa.Field(alias="dose:mg", metadata={"source": "DOSE"})
        seen: pl.Date = pa.Field(alias="seen:on", nullable=True,
                                 metadata={"source": "SEEN", "date_formats": ("%m/%d/%y",)})

    frame = pl.DataFrame({"DOSE": ["1", "x", "3"], "SEEN": ["01/02/20", "", "01/02/20"]})
    result = validate(SourceTable("t.csv", "csv", frame), dataset(Doses, name="d", version="1"),
                      DELIVERY)
    # the unreadable dose is reported once, as such, not again as a missing value; the
    # refused two-digit years once, not again as "not a date"
    assert result.reasons == {"dose:mg:not_an_integer": 1, f"seen:on:{years.AMBIGUOUS}": 2}
    assert top_reasons(result.reasons).endswith(
        f"; {years.AMBIGUOUS}: {CAUSES[years.AMBIGUOUS]}")
    assert failures_by_column({**result.reasons, "a_table_rule": 1}) == {
        "dose:mg": 1, "seen:on": 2, TABLE_LEVEL: 1}
