"""Files written by the tools agencies really use read exactly, or are refused clearly.

Each sample in ``tests/data/producers/`` is the reference table (regenerated here
from the seed and row count in ``truth.json``) as one real producer wrote it
(``scripts/make-producer-samples``; what each tool did is in that folder's
README). Each goes through the library path as a user runs it, and what comes
out is compared with the generator's table, computed here without the library's
parsers: the rows accepted, the rows quarantined with their reasons, and every
clean value of every accepted row. The only differences allowed are the ones
the producer itself made to the values, each named in :data:`SAMPLES`.

A sample that does not read as it should today carries its cause in ``gap``:
the case is then a strict xfail, so fixing the cause makes the suite fail until
the ``gap`` entry is removed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest

import ingest
from ingest.errors import IngestError
from ingest.keys import Keyring
from ingest.synth import EXPECTED_REASON, Truth, generate, to_delimited
from ingest.writers import decrypt_jsonl

from conftest import data_fixture

NULL_TOKENS = ("", "NA", ".", "NULL")
"""The reference delivery's null tokens (shared/spec/reference-delivery.md)."""

Allowance = Callable[[pl.DataFrame], pl.DataFrame]
"""A change the producer made to the values: the expected clean table, changed alike."""


def crlf_as_lf(expected: pl.DataFrame) -> pl.DataFrame:
    """A line break inside a cell is stored as LF where the generator wrote CRLF
    (LibreOffice and R's read.csv drop the CR; openpyxl and Gnumeric write a raw
    CR into the XML, which every XML parser reads as a line feed)."""
    return expected.with_columns(pl.col("comments").str.replace_all("\r\n", "\n",
                                                                    literal=True))


@dataclass(frozen=True)
class Sample:
    tool: str
    allowances: tuple[Allowance, ...] = ()
    refusal: tuple[str, ...] = ()
    """Words the refusal must hold; empty: the sample must read exactly."""
    gap: str | None = None
    """Why the sample does not give its expected outcome today (a strict xfail)."""


REFUSAL_TWO_DIGIT_YEARS = ("two-digit", "century")

SAMPLES: dict[str, Sample] = {
    "libreoffice-calc.xlsx": Sample("LibreOffice Calc", (crlf_as_lf,)),
    "libreoffice-calc.xls": Sample("LibreOffice Calc", (crlf_as_lf,)),
    "libreoffice-calc.ods": Sample("LibreOffice Calc", (crlf_as_lf,)),
    "libreoffice-calc.csv": Sample("LibreOffice Calc", refusal=REFUSAL_TWO_DIGIT_YEARS),
    "gnumeric.xlsx": Sample("Gnumeric", (crlf_as_lf,)),
    "gnumeric.xls": Sample("Gnumeric"),
    "gnumeric.ods": Sample("Gnumeric", (crlf_as_lf,)),
    "openpyxl.xlsx": Sample("openpyxl", (crlf_as_lf,)),
    "xlsxwriter.xlsx": Sample("XlsxWriter"),
    "xlwt.xls": Sample("xlwt"),
    "pandas-openpyxl.xlsx": Sample("pandas DataFrame.to_excel (openpyxl)", (crlf_as_lf,)),
    "pandas-xlsxwriter.xlsx": Sample("pandas DataFrame.to_excel (xlsxwriter)"),
    "pandas.csv": Sample("pandas DataFrame.to_csv"),
    "r-write-csv.csv": Sample("R write.csv", (crlf_as_lf,)),
    "r-write-table-rownames.tsv": Sample("R write.table(sep='\\t')", (crlf_as_lf,)),
    "r-write-table.tsv": Sample("R write.table(sep='\\t', row.names=FALSE)", (crlf_as_lf,)),
    "r-openxlsx.xlsx": Sample("R openxlsx::write.xlsx", (crlf_as_lf,)),
}


def _cases() -> list:
    return [pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=s.gap))
            if s.gap else name for name, s in SAMPLES.items()]


# -- the truth, worked out from the generator's table alone -----------------------------

@dataclass(frozen=True)
class Generated:
    frame: pl.DataFrame
    truth: Truth


@pytest.fixture(scope="module")
def generated() -> Generated:
    recorded = json.loads(data_fixture("producers", "truth.json").read_text())
    frame, truth = generate(recorded["rows"], seed=recorded["seed"],
                            delivery_date=date.fromisoformat(recorded["delivery_date"]))
    # the samples were made from this very table: a changed generator needs new samples
    source = hashlib.sha256(to_delimited(frame, encoding="utf-8", trailer=False)).hexdigest()
    assert source == recorded["source_sha256"], \
        "the generator no longer makes the samples' table: run scripts/make-producer-samples"
    assert truth.to_json() == {k: v for k, v in recorded.items() if k != "source_sha256"}
    return Generated(frame, truth)


def _date(text: str) -> date:
    return datetime.strptime(text, "%m/%d/%Y").date()


def expected_clean(generated: Generated, pseudonym_key: bytes) -> pl.DataFrame:
    """The accepted rows as the spec defines their clean values, in delivery order."""
    bad = generated.truth.bad_rows
    rows = [r for i, r in enumerate(generated.frame.iter_rows(named=True)) if i + 1 not in bad]

    def token(person: str) -> str:
        return hmac.new(pseudonym_key, person.encode(), hashlib.sha256).hexdigest()

    return pl.DataFrame({
        "case_id": [r["CASE_ID"] for r in rows],
        "person_id": [token(r["PERS_ID"]) for r in rows],
        "birth_date": [_date(r["DOB"]) for r in rows],
        "sex": [r["SEX"] for r in rows],
        "county_fips": [r["CNTY_FIPS"] for r in rows],
        "report_date": [_date(r["RPT_DT"]) for r in rows],
        "diagnosis_code": [r["DX_CD"] for r in rows],
        "lab_value": [None if r["LAB_VAL"].strip() in NULL_TOKENS else float(r["LAB_VAL"])
                      for r in rows],
        "hospitalized": [r["HOSP_YN"] == "Y" for r in rows],
        "comments": [r["CMNT"] or None for r in rows],
    }, schema={"case_id": pl.Utf8, "person_id": pl.Utf8, "birth_date": pl.Date,
               "sex": pl.Utf8, "county_fips": pl.Utf8, "report_date": pl.Date,
               "diagnosis_code": pl.Utf8, "lab_value": pl.Float64,
               "hospitalized": pl.Boolean, "comments": pl.Utf8})


def expected_quarantine(generated: Generated) -> dict[int, tuple[str, int | None]]:
    """Row -> (reason prefix, first row of a duplicate's CASE_ID)."""
    case_ids = generated.frame["CASE_ID"].to_list()
    first: dict[str, int] = {}
    for i, case_id in enumerate(case_ids):
        first.setdefault(case_id, i + 1)
    return {row: (EXPECTED_REASON[kind],
                  first[case_ids[row - 1]] if kind == "duplicate_case_id" else None)
            for row, kind in generated.truth.bad_rows.items()}


# -- the tests --------------------------------------------------------------------------

def _deliver(name: str, tmp_path: Path) -> Path:
    folder = tmp_path / "delivery"
    folder.mkdir()
    shutil.copyfile(data_fixture("producers", name), folder / name)
    return folder


def _differences(got: pl.DataFrame, want: pl.DataFrame) -> list[str]:
    """Per column, how many rows differ and the first few row positions (no values)."""
    found = []
    for column in want.columns:
        same = (got[column] == want[column]) | (got[column].is_null() & want[column].is_null())
        wrong = (~same.fill_null(False)).arg_true().to_list()
        if wrong:
            found.append(f"{column}: {len(wrong)} rows differ, first at accepted rows "
                         f"{wrong[:5]}")
    return found


@pytest.mark.parametrize("name", _cases())
def test_a_real_producers_file_reads_as_the_generator_wrote_it(
        name: str, generated: Generated, tmp_path: Path, home: Path) -> None:
    sample = SAMPLES[name]
    folder, out = _deliver(name, tmp_path), tmp_path / "out"
    delivery_date = generated.truth.delivery_date
    if sample.refusal:
        with pytest.raises(IngestError) as refused:
            ingest.run_delivery(folder, schema="reference", out=out,
                                delivery_date=delivery_date)
        message = str(refused.value)
        assert "birth_date" in message or "DOB" in message, message
        for word in sample.refusal:
            assert word in message, message
        assert not re.search(r"\d{1,2}/\d{1,2}/\d{2}", message), "a value is quoted"
        assert not out.exists() or not any(p for p in out.iterdir()
                                           if not p.name.startswith("."))
        return

    summary = ingest.run_delivery(folder, schema="reference", out=out,
                                  delivery_date=delivery_date)
    truth = generated.truth
    assert (summary.rows_in, summary.rows_accepted, summary.rows_quarantined) == (
        truth.rows, truth.accepted, truth.quarantined)

    ring = Keyring.open()
    quarantine = decrypt_jsonl(
        (Path(summary.output_dir) / "quarantine.jsonl.age").read_bytes(), ring.age_identity())
    want_quarantine = expected_quarantine(generated)
    got_quarantine = {
        row: (reasons, first) for row, reasons, first in zip(
            quarantine["_row"].to_list(), quarantine["_reasons"].to_list(),
            quarantine["_first_row"].to_list() if "_first_row" in quarantine.columns
            else [None] * quarantine.height, strict=True)}
    assert sorted(got_quarantine) == sorted(want_quarantine)
    for row, (reason, first) in want_quarantine.items():
        got_reason, got_first = got_quarantine[row]
        assert got_reason.startswith(reason), (row, got_reason, reason)
        assert got_first == first, row

    got = ingest.load(out).with_columns(pl.col(pl.Categorical).cast(pl.Utf8))
    want = expected_clean(generated, ring.pseudonym_key().material)
    for allowance in sample.allowances:
        want = allowance(want)
    assert got.columns == want.columns
    assert got.height == want.height
    assert _differences(got, want) == []


def test_the_table_holds_the_values_producers_get_wrong(generated: Generated) -> None:
    """The samples are worth reading only if the table has what tools mangle."""
    frame, bad = generated.frame, generated.truth.bad_rows
    good = frame.filter(~pl.Series(range(1, frame.height + 1)).is_in(list(bad)))
    comments = good["CMNT"]
    assert comments.str.contains('"', literal=True).any()
    assert comments.str.contains(",", literal=True).any()
    assert comments.str.contains("\r\n", literal=True).any()
    assert comments.str.contains("[éñü’€]").any()
    assert comments.str.len_chars().max() == 500
    assert good["CNTY_FIPS"].str.starts_with("0").any()
    assert good["CASE_ID"].str.starts_with("0").all()
    assert set(good["LAB_VAL"].to_list()) >= set(NULL_TOKENS)
    assert "01/01/1900" in good["DOB"].to_list()
    assert set(bad.values()) == set(EXPECTED_REASON)


def test_every_sample_is_in_the_table_and_documented() -> None:
    folder = data_fixture("producers")
    files = {p.name for p in folder.iterdir()} - {"README.md", "VERSIONS.txt", "truth.json"}
    assert files == set(SAMPLES)
    readme = (folder / "README.md").read_text()
    for name in SAMPLES:
        assert f"`{name}`" in readme, name
