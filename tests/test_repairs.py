"""Repairs declared by the schema, made by real producers' files, and counted.

R's ``write.table`` (escaped quotes, row names) and ``write.csv`` and pandas'
``to_csv`` (leading zeros lost, ``118952.0`` floats) are run here on the
generator's table; two-digit years are what LibreOffice's CSV export writes (its
sample is committed in ``tests/data/producers``, see ``test_producers.py``).
Every repair is counted per column and kind, and the counts, never a value,
reach the manifest, the run's JSON summary and the report.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import date
from pathlib import Path

import polars as pl
import pytest

import ingest
from ingest import report
from ingest.errors import ReadError, ValidationRejected
from ingest.readers import SourceTable
from ingest.readers.csv import read_delimited
from ingest.schema import Column, Dataset
from ingest.synth import generate, to_delimited
from ingest.validate import validate
from schemas.reference import DATASET

from conftest import ROOT

DELIVERY = date(2026, 6, 30)
GOOD = {"CASE_ID": "0000000001", "PERS_ID": "P0000ABCD", "DOB": "01/02/1980", "SEX": "F",
        "CNTY_FIPS": "01001", "RPT_DT": "03/04/2020", "DX_CD": "A01.1", "LAB_VAL": "1.5",
        "HOSP_YN": "N", "CMNT": ""}


def rows(*changes: dict[str, str]) -> SourceTable:
    """A text table of GOOD rows, each changed as given, with distinct CASE_IDs."""
    records = [GOOD | {"CASE_ID": f"{i + 1:010d}"} | change for i, change in enumerate(changes)]
    return SourceTable("t.csv", "csv", pl.DataFrame(records))


def rscript(code: str, **paths: Path) -> None:
    if not shutil.which("Rscript"):
        pytest.fail("R is not installed (r-base-core): the R producers cannot be run")
    env = dict(os.environ, **{k.upper(): str(v) for k, v in paths.items()})
    subprocess.run(["Rscript", "-e", code], env=env, check=True, capture_output=True)


@pytest.fixture(scope="module")
def table() -> tuple[pl.DataFrame, object]:
    return generate(400, seed=11, delivery_date=DELIVERY)


@pytest.fixture(scope="module")
def agency_csv(table, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generator's table as the agency's extract writes it (every value quoted)."""
    path = tmp_path_factory.mktemp("agency") / "cases.csv"
    path.write_bytes(to_delimited(table[0], encoding="utf-8", trailer=False))
    return path


def r_file(agency_csv: Path, tmp_path: Path, call: str, name: str) -> bytes:
    """``agency_csv`` read by R's read.csv and written back by ``call``."""
    out = tmp_path / name
    rscript(f'd <- read.csv(Sys.getenv("SOURCE")); {call}', source=agency_csv, out=out)
    return out.read_bytes()


def zeros_lost(values: pl.Series) -> int:
    return int(values.str.starts_with("0").sum())


# -- R's write.table ------------------------------------------------------------------

def test_r_write_table_with_row_names_and_escaped_quotes_reads_as_written(
        table, agency_csv: Path, tmp_path: Path) -> None:
    frame, _ = table
    data = r_file(agency_csv, tmp_path, 'write.table(d, Sys.getenv("OUT"), sep="\\t")',
                  "r.tsv")
    header, first = data.split(b"\n")[:2]
    assert len(first.split(b"\t")) == len(header.split(b"\t")) + 1  # R's convention, really
    assert b'\\"' in data
    got = read_delimited(data, DATASET, "r.tsv")
    quoted = int(frame["CMNT"].str.contains('"', literal=True).sum())
    assert quoted
    assert got.repairs == {"r_row_names_dropped": frame.height,
                           "comments:r_escaped_quotes": quoted}
    assert any("row names" in n for n in got.notes)
    assert any("escaped" in n for n in got.notes)
    # R's read.csv dropped the CR of CRLF in quoted cells; nothing else differs
    want = frame["CMNT"].str.replace_all("\r\n", "\n", literal=True)
    assert got.frame["CMNT"].to_list() == want.to_list()
    assert got.frame["PERS_ID"].to_list() == frame["PERS_ID"].to_list()


def test_r_write_table_without_row_names(table, agency_csv: Path, tmp_path: Path) -> None:
    frame, _ = table
    data = r_file(agency_csv, tmp_path,
                  'write.table(d, Sys.getenv("OUT"), sep="\\t", row.names=FALSE)', "r.tsv")
    got = read_delimited(data, DATASET, "r.tsv")
    assert set(got.repairs) == {"comments:r_escaped_quotes"}
    want = frame["CMNT"].str.replace_all("\r\n", "\n", literal=True)
    assert got.frame["CMNT"].to_list() == want.to_list()


@pytest.mark.parametrize("value", ["C:\\dir\\", "a\\\"b", "\\", "back\\slash", "\\\"\\\""],
                         ids=["windows-folder", "escaped-quote", "backslash-alone",
                              "backslash-inside", "escaped-quotes-alone"])
def test_a_plain_csv_with_backslashes_is_not_read_the_r_way(
        value: str, agency_csv: Path, tmp_path: Path) -> None:
    """RFC 4180 text (R's write.csv doubles quotes) holding backslashes, some before a
    quote, reads exactly as written."""
    source = tmp_path / "in.csv"
    source.write_text(f'"CMNT"\n"{value.replace(chr(34), chr(34) * 2)}"\n')
    rscript('d <- read.csv(Sys.getenv("IN")); x <- read.csv(Sys.getenv("SOURCE"))[1, ]; '
            'x$CMNT <- d$CMNT[1]; write.csv(x, Sys.getenv("OUT"), row.names=FALSE)',
            source=agency_csv, out=tmp_path / "out.csv", **{"in": source})
    data = (tmp_path / "out.csv").read_bytes()
    got = read_delimited(data, DATASET, "out.csv")
    assert got.frame["CMNT"].to_list() == [value]
    assert got.repairs == {} and got.notes == []


def test_an_r_file_with_a_value_ending_in_a_backslash_is_refused_clearly(
        agency_csv: Path, tmp_path: Path) -> None:
    """R does not escape backslashes: ``"C:\\dir\\"`` then reads as an open quote."""
    source = tmp_path / "in.csv"
    source.write_text('"CMNT"\n"C:\\Zqxdir\\"\n"say ""Qwkhi"""\n')
    rscript('d <- read.csv(Sys.getenv("IN")); x <- read.csv(Sys.getenv("SOURCE"))[1:2, ]; '
            'x$CMNT <- d$CMNT; write.table(x, Sys.getenv("OUT"), sep="\\t", row.names=FALSE)',
            source=agency_csv, out=tmp_path / "r.tsv", **{"in": source})
    data = (tmp_path / "r.tsv").read_bytes()
    assert b'"C:\\Zqxdir\\"' in data and b'\\"Qwkhi\\"' in data
    with pytest.raises(ReadError, match="qmethod") as refused:
        read_delimited(data, DATASET, "r.tsv")
    assert "Zqx" not in str(refused.value) and "Qwk" not in str(refused.value)


def test_a_short_header_without_row_numbers_is_refused_as_ragged() -> None:
    header = ",".join(DATASET.source_names)
    good = ",".join(f'"{GOOD[c]}"' for c in DATASET.source_names)
    for first in ("1", "x", "3", ""):
        data = f"{header}\n\"1\",{good}\n\"{first}\",{good}\n".encode()
        with pytest.raises(ReadError, match="fields"):
            read_delimited(data, DATASET, "t.csv")
    data = f"{header}\n\"1\",{good}\n\"2\",{good}\n".encode()
    assert read_delimited(data, DATASET, "t.csv").repairs == {"r_row_names_dropped": 2}


# -- leading zeros ----------------------------------------------------------------------

def test_r_write_csv_loses_zeros_and_they_are_restored(
        table, agency_csv: Path, tmp_path: Path) -> None:
    frame, truth = table
    data = r_file(agency_csv, tmp_path, 'write.csv(d, Sys.getenv("OUT"), row.names=FALSE)',
                  "r.csv")
    source = read_delimited(data, DATASET, "r.csv")
    assert not source.frame["CNTY_FIPS"].str.starts_with("0").any()  # R really lost them
    result = validate(source, DATASET, DELIVERY)
    assert result.rows_accepted == truth.accepted
    assert result.repairs == {"case_id:zero_padded": zeros_lost(frame["CASE_ID"]),
                              "county_fips:zero_padded": zeros_lost(frame["CNTY_FIPS"])}
    kept = pl.Series(range(1, frame.height + 1)).is_in(list(truth.bad_rows)).not_()
    assert result.accepted["county_fips"].to_list() == frame["CNTY_FIPS"].filter(kept).to_list()
    assert result.accepted["case_id"].to_list() == frame["CASE_ID"].filter(kept).to_list()


def test_pandas_float_spellings_are_restored(table, agency_csv: Path, tmp_path: Path) -> None:
    """A missing CASE_ID makes pandas read the column as floats and write 118952.0."""
    import pandas as pd

    frame, truth = table
    once = frame["CASE_ID"].is_unique()
    blank = next(i for i in range(frame.height) if i + 1 not in truth.bad_rows and once[i])
    blanked = tmp_path / "blank.csv"
    blanked.write_bytes(to_delimited(frame.with_columns(
        pl.when(pl.int_range(pl.len()) == blank).then(pl.lit("")).otherwise(pl.col("CASE_ID"))
        .alias("CASE_ID")), encoding="utf-8", trailer=False))
    out = tmp_path / "pandas.csv"
    pd.read_csv(blanked).to_csv(out, index=False)
    data = out.read_bytes()
    assert data.count(b".0,") >= frame.height - 1  # pandas really wrote floats
    result = validate(read_delimited(data, DATASET, "pandas.csv"), DATASET, DELIVERY)
    rest = frame.height - 1
    assert result.repairs == {"case_id:float_spelling_restored": rest,
                              "case_id:zero_padded": rest,
                              "county_fips:zero_padded": zeros_lost(frame["CNTY_FIPS"])}
    assert result.reasons["case_id:not_nullable"] == 1
    assert result.rows_accepted == truth.accepted - 1
    kept = pl.Series(range(frame.height)).is_in([blank, *(r - 1 for r in truth.bad_rows)])
    assert result.accepted["case_id"].to_list() == frame["CASE_ID"].filter(~kept).to_list()


def _codes(width: int | None) -> Dataset:
    """One string column, of a declared width or none, and no rule on its values."""
    import pandera.polars as pa

    return Dataset("t", "1", (Column("CODE", "code", "string", width=width),),
                   rules=lambda _: pa.DataFrameSchema({"code": pa.Column(pl.Utf8)}))


OTHER_CHARACTERS = ["A105", "105-", "+105", "-105", "105.5", "1e3", " 105", "105 ", "105.",
                    "0x41", "１０５", "10 5", "1,05", "105.0.0", ".0"]


@pytest.mark.parametrize("value", OTHER_CHARACTERS,
                         ids=lambda v: v if v.isascii() else "fullwidth-digits")
def test_a_value_with_other_characters_is_never_padded(value: str) -> None:
    result = validate(rows({"CNTY_FIPS": value}), DATASET, DELIVERY)
    assert result.repairs == {}
    assert result.quarantined["_reasons"].to_list() == ["county_fips:str_matches"]
    assert result.quarantined["CNTY_FIPS"].to_list() == [value]
    # where no rule would catch it, the value still arrives as it was written (beside
    # one that is padded, so the column is repaired at all)
    kept = validate(SourceTable("t.csv", "csv", pl.DataFrame({"CODE": [value, "7"]})),
                    _codes(5), DELIVERY)
    assert kept.accepted["code"].to_list() == [value, "00007"]
    assert kept.repairs == {"code:zero_padded": 1}


@pytest.mark.parametrize(("value", "clean", "repairs"), [
    ("1053", "01053", {"county_fips:zero_padded": 1}),
    ("1053.0", "01053", {"county_fips:zero_padded": 1,
                         "county_fips:float_spelling_restored": 1}),
    ("12345.00", "12345", {"county_fips:float_spelling_restored": 1}),
    ("7", "00007", {"county_fips:zero_padded": 1}),
    ("01053", "01053", {}),
])
def test_short_digits_are_padded_to_the_declared_width(value: str, clean: str,
                                                        repairs: dict[str, int]) -> None:
    result = validate(rows({"CNTY_FIPS": value}), DATASET, DELIVERY)
    assert result.accepted["county_fips"].to_list() == [clean]
    assert result.repairs == repairs


def test_numbers_from_a_spreadsheet_are_padded_and_counted() -> None:
    frame = rows({}, {}, {}).frame.with_columns(
        pl.Series("CNTY_FIPS", [1053.0, 12345.0, 1001.5]))
    result = validate(SourceTable("t.xlsx", "xlsx", frame), DATASET, DELIVERY)
    assert result.accepted["county_fips"].to_list() == ["01053", "12345"]
    assert result.repairs == {"county_fips:zero_padded": 1}
    assert result.reasons == {"county_fips:not_text": 1}


def test_a_column_without_a_width_is_not_padded() -> None:
    result = validate(SourceTable("t.csv", "csv", pl.DataFrame({"CODE": ["1053", "1.0"]})),
                      _codes(None), DELIVERY)
    assert result.accepted["code"].to_list() == ["1053", "1.0"]
    assert result.repairs == {}


# -- two-digit years ------------------------------------------------------------------

def test_two_digit_report_dates_are_expanded_where_the_range_makes_the_century_certain(
        ) -> None:
    result = validate(rows({"RPT_DT": "02/17/17"}, {"RPT_DT": "6/30/26"},
                           {"RPT_DT": "01/01/15"}), DATASET, DELIVERY)
    assert result.accepted["report_date"].to_list() == [
        date(2017, 2, 17), date(2026, 6, 30), date(2015, 1, 1)]
    assert result.repairs == {"report_date:two_digit_year_expanded": 3}


@pytest.mark.parametrize(("value", "reason"), [
    ("12/31/14", "report_date:two_digit_year_out_of_range"),  # 2014 and 2114: neither
    ("07/01/26", "report_date:two_digit_year_out_of_range"),  # after the delivery
    # four digits: the year 17, as written (so before the birth date too)
    ("02/17/0017", "birth_date_not_after_report_date; report_date:in_range"),
    ("02/17/170", "report_date:not_a_date"),
    ("02/17/7", "report_date:not_a_date"),
])
def test_a_report_date_no_century_explains_is_refused(value: str, reason: str) -> None:
    result = validate(rows({"RPT_DT": value}), DATASET, DELIVERY)
    assert result.quarantined["_reasons"].to_list() == [reason]
    assert result.repairs == {}


def test_two_digit_birth_dates_are_refused_naming_the_column_and_cause() -> None:
    """Birth dates from 1900 to the report: ``17`` may be 1917 or 2017 (and ``50`` is
    refused too: the column's range, not one value, decides)."""
    result = validate(rows({"DOB": "02/17/17"}, {"DOB": "02/17/50"}, {}), DATASET, DELIVERY)
    assert result.quarantined["_reasons"].to_list() == ["birth_date:two_digit_year_ambiguous"] * 2
    assert result.rows_accepted == 1
    assert result.repairs == {}


def _dated(formats: tuple[str, ...], earliest: date | None = None,
           latest: date | str | None = None) -> Dataset:
    import pandera.polars as pa

    col = Column("D", "d", "date", date_formats=formats, earliest=earliest,
                 latest=latest)  # type: ignore[arg-type]
    return Dataset("t", "1", (col,), rules=lambda when: pa.DataFrameSchema(
        {"d": pa.Column(pl.Date, col.range_check(when), nullable=False)}))


def test_a_two_digit_year_format_never_guesses_the_century() -> None:
    """``%y`` alone would read 17 as 2017 and 70 as 1970 (a fixed pivot), and would
    refuse 0017; here the column's declared range decides, or the value is refused."""
    frame = pl.DataFrame({"D": ["02/17/17", "02/17/70", "02/17/0017", "02/17/2017"]})
    open_range = validate(SourceTable("t.csv", "csv", frame), _dated(("%m/%d/%y",)), DELIVERY)
    assert open_range.quarantined["_reasons"].to_list() == [
        "d:two_digit_year_ambiguous", "d:two_digit_year_ambiguous", "d:not_a_date",
        "d:not_a_date"]
    narrow = _dated(("%m/%d/%y",), date(1960, 1, 1), date(2059, 12, 31))
    result = validate(SourceTable("t.csv", "csv", frame), narrow, DELIVERY)
    assert result.accepted["d"].to_list() == [date(2017, 2, 17), date(1970, 2, 17)]
    assert result.repairs == {"d:two_digit_year_expanded": 2}


def test_the_date_range_is_declared_once_for_the_rule_and_the_years() -> None:
    col = DATASET.column("report_date")
    assert col.date_range(DELIVERY) == (date(2015, 1, 1), DELIVERY)
    schema = DATASET.rules(DELIVERY)
    check = schema.columns["report_date"].checks[0]
    assert check.name == "in_range"
    assert (check.statistics["min_value"], check.statistics["max_value"]) == (
        date(2015, 1, 1), DELIVERY)
    assert schema.columns["birth_date"].checks[0].statistics["min_value"] == date(1900, 1, 1)


# -- date systems -----------------------------------------------------------------------

@pytest.mark.parametrize(("system", "serial", "expected"), [
    ("1900", 1.0, date(1900, 1, 1)), ("1900", 61.0, date(1900, 3, 1)),
    ("1900-continuous", 2.0, date(1900, 1, 1)), ("1900-continuous", 60.0, date(1900, 2, 28)),
    ("1900-continuous", 61.0, date(1900, 3, 1)), ("1900-continuous", 43831.0, date(2020, 1, 1)),
    ("1904", 0.0, date(1904, 1, 1)), ("1904", 42369.0, date(2020, 1, 1)),
])
def test_date_serials_count_days_in_the_tables_date_system(system: str, serial: float,
                                                           expected: date) -> None:
    frame = rows({}).frame.with_columns(pl.lit(serial).alias("DOB"))
    result = validate(SourceTable("t.xlsx", "xlsx", frame, date_system=system), DATASET,
                      DELIVERY)
    assert result.accepted["birth_date"].to_list() == [expected]


def test_a_number_is_no_date_outside_a_spreadsheet() -> None:
    frame = rows({}).frame.with_columns(pl.lit(43831.0).alias("DOB"))
    result = validate(SourceTable("t.mdb", "mdb", frame), DATASET, DELIVERY)
    assert result.quarantined["_reasons"].to_list() == ["birth_date:not_a_date"]


# -- counts in every output -------------------------------------------------------------

def test_repairs_reach_the_manifest_the_json_summary_and_the_report(
        table, agency_csv: Path, tmp_path: Path, home: Path) -> None:
    frame, truth = table
    delivery = tmp_path / "delivery"
    delivery.mkdir()
    data = r_file(agency_csv, tmp_path, 'write.table(d, Sys.getenv("OUT"), sep="\\t")',
                  "cases.tsv")
    (delivery / "cases.tsv").write_bytes(data)
    out = tmp_path / "out"
    proc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ingest"), "run", str(delivery), "--no-prefect",
         "--schema", "reference", "--out", str(out), "--delivery-date", DELIVERY.isoformat(),
         "--json"], capture_output=True, text=True, check=False,
        env=dict(os.environ, PYTHONPATH=str(ROOT)))  # this tree's code, as the test's
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    fips = zeros_lost(frame["CNTY_FIPS"])
    want = {"case_id:zero_padded": frame.height, "county_fips:zero_padded": fips,
            "comments:r_escaped_quotes": int(frame["CMNT"].str.contains('"', literal=True)
                                             .sum()),
            "r_row_names_dropped": frame.height}
    assert doc["repairs"] == want
    assert doc["rows_accepted"] == truth.accepted
    manifest = json.loads((Path(doc["output_dir"]) / "manifest.json").read_text())
    assert manifest["repairs"] == want
    summary = ingest.run_delivery(delivery, schema="reference", out=out,
                                  delivery_date=DELIVERY).to_json()
    assert summary["skipped"] and summary["repairs"] == want
    md = report.markdown(summary)
    page = report.html_report(summary, None, report.history(out))
    for text in (md, page):
        assert f"{fips:,} county_fips values zero-padded" in text
        assert f"{frame.height:,} R row names dropped" in text
    assert ("repair", "county_fips:zero_padded") in {
        (r["section"], r["name"]) for r in report.table(summary)}


def test_small_repair_counts_are_suppressed_in_the_report() -> None:
    summary = {"delivery_id": "x", "schema": "reference", "delivery_sha256": "0" * 64,
               "rows_in": 3, "rows_accepted": 3, "rows_quarantined": 0,
               "repairs": {"county_fips:zero_padded": 3, "case_id:zero_padded": 1480}}
    md = report.markdown(summary)
    assert "<10 county_fips values zero-padded" in md
    assert "1,480 case_id values zero-padded" in md
    page = report.html_report(summary, None, []).split("<h2>Repairs")[1]
    assert "&lt;10 county_fips values zero-padded" in page


def test_a_refusal_names_the_rules_that_failed_most(home: Path, tmp_path: Path) -> None:
    frame, truth = generate(300, seed=3, delivery_date=DELIVERY)
    two_digit = frame.with_columns(pl.col("DOB").str.replace(r"/\d\d(\d\d)$", "/$1"))
    delivery = tmp_path / "d"
    delivery.mkdir()
    (delivery / "cases.csv").write_bytes(to_delimited(two_digit, encoding="utf-8"))
    with pytest.raises(ValidationRejected) as refused:
        ingest.run_delivery(delivery, schema="reference", out=tmp_path / "out",
                            delivery_date=DELIVERY)
    message = str(refused.value)
    # 02/30/80 is no date in any century
    ambiguous = frame.height - list(truth.bad_rows.values()).count("invalid_date")
    assert f"birth_date:two_digit_year_ambiguous ({ambiguous:,} rows)" in message
    assert "two-digit" in message and "century" in message
    for value in two_digit["DOB"].head(50).to_list() + two_digit["CASE_ID"].head(50).to_list():
        assert value not in message
