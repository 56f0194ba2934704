"""Validation: every rule of the reference schema really runs on the data."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from ingest.readers import SourceTable
from ingest.schema import load_dataset
from ingest.validate import validate

DATASET = load_dataset("reference")
GOOD = {
    "CASE_ID": "0000000001", "PERS_ID": "P0000ABCD", "DOB": "01/02/1980", "SEX": "F",
    "CNTY_FIPS": "01001", "RPT_DT": "03/04/2020", "DX_CD": "A01.1", "LAB_VAL": "1.5",
    "HOSP_YN": "N", "CMNT": "",
}


def run(*changes: dict[str, str], delivery: date = date(2026, 6, 30)):
    rows = [GOOD | {"CASE_ID": f"{i + 2:010d}"} | c for i, c in enumerate(changes)]
    frame = pl.DataFrame([GOOD, *rows])
    return validate(SourceTable("t.csv", "csv", frame), DATASET, delivery)


@pytest.mark.parametrize(("change", "reason"), [
    ({"DX_CD": "U07.1"}, "diagnosis_code:str_matches"),
    ({"DX_CD": "A1"}, "diagnosis_code:str_matches"),
    ({"DOB": "02/30/1980"}, "birth_date:not_a_date"),
    ({"DOB": "12/31/1899"}, "birth_date:greater_than_or_equal_to"),
    ({"DOB": "03/05/2020"}, "birth_date_not_after_report_date"),
    ({"RPT_DT": "12/31/2014", "DOB": "01/01/2000"}, "report_date:in_range"),
    ({"RPT_DT": "07/01/2026"}, "report_date:in_range"),
    ({"LAB_VAL": "-0.1"}, "lab_value:greater_than_or_equal_to"),
    ({"LAB_VAL": "abc"}, "lab_value:not_a_number"),
    ({"SEX": "Q"}, "sex:isin"),
    ({"HOSP_YN": "yes"}, "hospitalized:not_a_boolean"),
    ({"HOSP_YN": ""}, "hospitalized:not_nullable"),
    # a short one is zero-padded, a declared repair (tests/test_repairs.py); these are not
    ({"CNTY_FIPS": "010011"}, "county_fips:str_matches"),
    ({"CNTY_FIPS": "1001A"}, "county_fips:str_matches"),
    ({"CASE_ID": "00000000012"}, "case_id:str_matches"),
    ({"CASE_ID": "12345-6789"}, "case_id:str_matches"),
    ({"PERS_ID": "p0000abcd"}, "person_id:str_matches"),
    ({"CMNT": "x" * 501}, "comments:str_length"),
    ({"CASE_ID": "0000000001"}, "case_id:duplicate"),
])
def test_a_broken_row_is_quarantined_with_its_reason(change: dict, reason: str) -> None:
    result = run(change)
    assert result.rows_in == 2
    assert result.rows_accepted == 1
    assert result.quarantined["_reasons"].to_list() == [reason]
    assert result.reasons == {reason: 1}


def test_boundary_values_are_valid() -> None:
    result = run({"DOB": "01/01/1900"}, {"DOB": "03/04/2020"}, {"RPT_DT": "01/01/2015",
                 "DOB": "01/01/2015"}, {"RPT_DT": "06/30/2026"}, {"LAB_VAL": "0"},
                 {"CMNT": "é" * 500}, {"SEX": "X"}, {"LAB_VAL": "NA"}, {"LAB_VAL": "."},
                 {"LAB_VAL": "NULL"}, {"LAB_VAL": ""})
    assert result.rows_quarantined == 0, result.quarantined["_reasons"].to_list()
    assert result.accepted["lab_value"].null_count() == 4


def test_null_tokens_count_with_surrounding_blanks_and_only_whole() -> None:
    result = run({"LAB_VAL": " NA "}, {"LAB_VAL": "\tNULL"}, {"LAB_VAL": "  "},
                 {"CMNT": " . "}, {"CMNT": "NA NA"}, {"CMNT": "N/A"})
    assert result.rows_quarantined == 0, result.quarantined["_reasons"].to_list()
    assert result.accepted["lab_value"].null_count() == 3
    # a text column keeps what is not a whole token, and nulls only the token
    assert result.accepted["comments"].to_list()[-3:] == [None, "NA NA", "N/A"]


def test_duplicate_names_the_first_row_and_keeps_it() -> None:
    result = run({"CASE_ID": "0000000001", "SEX": "M"})
    assert result.accepted["sex"].to_list() == ["F"]
    assert result.quarantined["_first_row"].to_list() == [1]
    assert result.quarantined["_row"].to_list() == [2]


def test_every_repeat_names_the_first_row_even_a_quarantined_one() -> None:
    # row 2 breaks a rule and is the first of "...0002"; rows 3 and 5 repeat it,
    # row 4 repeats row 1; row 6 breaks a rule only
    result = run({"SEX": "Q"}, {"CASE_ID": "0000000002"}, {"CASE_ID": "0000000001"},
                 {"CASE_ID": "0000000002", "LAB_VAL": "-1"}, {"SEX": "Q"})
    quarantined = result.quarantined.select("_row", "_first_row").rows()
    assert quarantined == [(2, None), (3, 2), (4, 1), (5, 2), (6, None)]
    assert result.rows_accepted == 1


def test_a_row_breaking_several_rules_lists_them_all() -> None:
    result = run({"DX_CD": "??", "LAB_VAL": "-3"})
    assert result.quarantined["_reasons"].to_list() == [
        "diagnosis_code:str_matches; lab_value:greater_than_or_equal_to"]


def test_generated_delivery_quarantines_exactly_the_truth(table_20k) -> None:
    from ingest.readers.csv import read_delimited
    from ingest.synth import EXPECTED_REASON, to_delimited

    frame, truth = table_20k
    table = read_delimited(to_delimited(frame), DATASET, "cases.csv")
    result = validate(table, DATASET, truth.delivery_date)
    assert result.rows_accepted + result.rows_quarantined == result.rows_in == truth.rows
    got = dict(zip(result.quarantined["_row"].to_list(),
                   result.quarantined["_reasons"].to_list(), strict=True))
    assert set(got) == set(truth.bad_rows)
    for row, kind in truth.bad_rows.items():
        assert got[row].startswith(EXPECTED_REASON[kind]), (row, kind, got[row])


@pytest.mark.parametrize(("serial", "expected"), [
    (1.0, date(1900, 1, 1)), (59.0, date(1900, 2, 28)), (60.0, None),
    (61.0, date(1900, 3, 1)), (43831.0, date(2020, 1, 1)), (43831.5, None)])
def test_excel_serial_numbers_become_dates(serial: float, expected: date | None) -> None:
    frame = pl.DataFrame([GOOD]).with_columns(pl.lit(serial).alias("DOB"))
    result = validate(SourceTable("t.xlsx", "xlsx", frame), DATASET, date(2026, 6, 30))
    if expected is None:
        assert result.quarantined["_reasons"].to_list() == ["birth_date:not_a_date"]
    else:
        assert result.accepted["birth_date"].to_list() == [expected]


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity", "1e400"])
def test_non_finite_numbers_are_not_measurements(value: str) -> None:
    assert run({"LAB_VAL": value}).quarantined["_reasons"].to_list() == ["lab_value:not_a_number"]


def test_first_rows_match_a_plain_reading_of_the_rule() -> None:
    """On random tables with repeats and nulls in one or two unique columns: each
    quarantined row that repeats a value names the first row holding it."""
    import random
    from types import SimpleNamespace

    from ingest.validate import _first_rows

    rng = random.Random(7)
    for trial in range(200):
        n = rng.randint(1, 60)
        table = {"a": [rng.choice(["x", "y", "z", "w", None]) for _ in range(n)],
                 "b": [rng.choice(["1", "2", None]) for _ in range(n)]}
        unique = ("a", "b") if trial % 2 else ("a",)
        first_seen: dict[str, dict[str, int]] = {u: {} for u in unique}
        repeats = {u: [False] * n for u in unique}
        for row in range(n):
            for u in unique:
                value = table[u][row]
                if value is None:
                    continue
                if value in first_seen[u]:
                    repeats[u][row] = True
                else:
                    first_seen[u][value] = row + 1
        bad = [any(repeats[u][r] for u in unique) or rng.random() < 0.2 for r in range(n)]
        expected = [next((first_seen[u][table[u][r]] for u in unique if repeats[u][r]), None)
                    for r in range(n) if bad[r]]
        flags = pl.DataFrame({f"{u}:duplicate": repeats[u] for u in unique})
        got = _first_rows(pl.DataFrame(table), flags, pl.Series(bad),
                          SimpleNamespace(unique=unique))  # type: ignore[arg-type]
        assert got.to_list() == expected, trial


def test_empty_values_in_a_unique_column_are_not_repeats_of_each_other() -> None:
    """The duplicate rule runs for real: a null is no value, so two nulls in a unique
    column are not a repeat. Rows 2 and 3 lack CASE_ID (quarantined for that alone);
    with comments also unique, the empty comments of rows 1-4 are all accepted and
    only row 5's repeat of row 4's comment is a duplicate."""
    import dataclasses

    dataset = dataclasses.replace(DATASET, unique=("case_id", "comments"))
    rows = [GOOD | {"CASE_ID": f"{i:010d}"} for i in range(1, 6)]
    rows[1]["CASE_ID"] = rows[2]["CASE_ID"] = ""
    rows[3]["CMNT"] = rows[4]["CMNT"] = "seen twice"
    result = validate(SourceTable("t.csv", "csv", pl.DataFrame(rows)), dataset,
                      date(2026, 6, 30))
    assert result.quarantined.select("_row", "_reasons", "_first_row").rows() == [
        (2, "case_id:not_nullable", None),
        (3, "case_id:not_nullable", None),
        (5, "comments:duplicate", 4),
    ]
    assert result.reasons == {"case_id:not_nullable": 2, "comments:duplicate": 1}
    assert result.accepted["case_id"].to_list() == ["0000000001", "0000000004"]
