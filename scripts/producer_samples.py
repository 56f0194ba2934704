"""The reference table written by the tools agencies really use, into tests/data/producers/.

Run through ``scripts/make-producer-samples`` (which installs the tools). Each
producer starts where an analyst starts: the generator's CSV (UTF-8, CRLF,
quoted) or, for the Python libraries that build a workbook cell by cell, the
generator's table with the types a spreadsheet user would give its cells. The
tool then writes the file with its own defaults; nothing is patched afterwards.

The test (``tests/test_producers.py``) regenerates the table from the seed and
row count in ``truth.json`` and compares every value with what the library reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import date, datetime
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import polars as pl  # noqa: E402

from ingest.synth import generate, to_delimited  # noqa: E402

ROWS = 3000
SEED = 2026
DELIVERY_DATE = date(2026, 6, 30)
OUT = ROOT / "tests" / "data" / "producers"
R_SCRIPT = Path(__file__).with_name("producer_samples.R")

NUMBER_COLUMNS = ("CASE_ID", "CNTY_FIPS", "LAB_VAL")
DATE_COLUMNS = ("DOB", "RPT_DT")
LO_IMPORT = "CSV:44,34,76,1,,1033,false,true"
"""LibreOffice's text import as an analyst sets it: comma, double quote, UTF-8,
from line 1, English (USA), quoted fields not forced to text, special numbers
(dates) detected."""

Producer = Callable[[Path, pl.DataFrame, Path], None]


# -- what a spreadsheet user's cells hold ------------------------------------------

def typed_rows(frame: pl.DataFrame) -> list[list[object]]:
    """Rows of cell values: codes, IDs and lab values as numbers, dates as dates,
    text that does not parse as it is (``NA``, ``02/30/1980``), empty as None."""
    def cell(column: str, text: str) -> object:
        if text == "":
            return None
        if column in NUMBER_COLUMNS:
            try:
                number = float(text)
            except ValueError:
                return text
            return int(number) if column != "LAB_VAL" else number
        if column in DATE_COLUMNS:
            try:
                return datetime.strptime(text, "%m/%d/%Y").date()
            except ValueError:
                return text
        return text

    return [[cell(c, v) for c, v in zip(frame.columns, row, strict=True)]
            for row in frame.iter_rows()]


def openpyxl_book(source: Path, frame: pl.DataFrame, out: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Cases"
    sheet.append(frame.columns)
    for row in typed_rows(frame):
        sheet.append(row)
    for column in ("C", "F"):  # DOB, RPT_DT shown as the agency writes dates
        for cell in sheet[column][1:]:
            if isinstance(cell.value, (date, datetime)):
                cell.number_format = "mm/dd/yyyy"
    book.save(out)


def xlsxwriter_book(source: Path, frame: pl.DataFrame, out: Path) -> None:
    import xlsxwriter  # type: ignore[import-untyped]

    book = xlsxwriter.Workbook(str(out))
    sheet = book.add_worksheet("Cases")
    shown = book.add_format({"num_format": "mm/dd/yyyy"})
    sheet.write_row(0, 0, frame.columns)
    for r, row in enumerate(typed_rows(frame), start=1):
        for c, value in enumerate(row):
            if isinstance(value, date):
                sheet.write_datetime(r, c, value, shown)
            elif isinstance(value, (int, float)):
                sheet.write_number(r, c, value)
            elif value is not None:
                sheet.write_string(r, c, value)
    book.close()


def xlwt_book(source: Path, frame: pl.DataFrame, out: Path) -> None:
    import xlwt  # type: ignore[import-untyped]

    book = xlwt.Workbook(encoding="utf-8")
    sheet = book.add_sheet("Cases")
    shown = xlwt.easyxf(num_format_str="mm/dd/yyyy")
    for c, name in enumerate(frame.columns):
        sheet.write(0, c, name)
    for r, row in enumerate(typed_rows(frame), start=1):
        for c, value in enumerate(row):
            if isinstance(value, date):
                sheet.write(r, c, value, shown)
            elif value is not None:
                sheet.write(r, c, value)
    book.save(str(out))


# -- pandas: read_csv with its defaults, then write ---------------------------------

def _pandas_frame(source: Path):  # noqa: ANN202
    import pandas as pd

    return pd.read_csv(source)


def pandas_excel(engine: str) -> Producer:
    def produce(source: Path, frame: pl.DataFrame, out: Path) -> None:
        _pandas_frame(source).to_excel(out, index=False, engine=engine)
    return produce


def pandas_csv(source: Path, frame: pl.DataFrame, out: Path) -> None:
    _pandas_frame(source).to_csv(out, index=False)


# -- LibreOffice Calc and Gnumeric: import the CSV, save as ---------------------------

def libreoffice(target: str) -> Producer:
    def produce(source: Path, frame: pl.DataFrame, out: Path) -> None:
        with tempfile.TemporaryDirectory() as work:
            # a private profile: a concurrent soffice would otherwise hold its lock
            profile = Path(work, "profile").as_uri()
            subprocess.run(["soffice", f"-env:UserInstallation={profile}", "--headless",
                            f"--infilter={LO_IMPORT}", "--convert-to", target,
                            "--outdir", work, str(source)],
                           check=True, capture_output=True)
            made = Path(work, source.stem + "." + target.split(":")[0])
            shutil.move(made, out)
    return produce


def gnumeric(source: Path, frame: pl.DataFrame, out: Path) -> None:
    subprocess.run(["ssconvert", str(source), str(out)], check=True, capture_output=True)


# -- R: read.csv with its defaults, then write ----------------------------------------

def r_producer(kind: str) -> Producer:
    def produce(source: Path, frame: pl.DataFrame, out: Path) -> None:
        subprocess.run(["Rscript", "--vanilla", str(R_SCRIPT), kind, str(source), str(out)],
                       check=True, capture_output=True, env={**os.environ, "LANG": "C.UTF-8"})
    return produce


PRODUCERS: dict[str, Producer] = {
    "libreoffice-calc.xlsx": libreoffice("xlsx"),
    "libreoffice-calc.xls": libreoffice("xls"),
    "libreoffice-calc.ods": libreoffice("ods"),
    "libreoffice-calc.csv": libreoffice("csv"),
    "gnumeric.xlsx": gnumeric,
    "gnumeric.xls": gnumeric,
    "gnumeric.ods": gnumeric,
    "openpyxl.xlsx": openpyxl_book,
    "xlsxwriter.xlsx": xlsxwriter_book,
    "xlwt.xls": xlwt_book,
    "pandas-openpyxl.xlsx": pandas_excel("openpyxl"),
    "pandas-xlsxwriter.xlsx": pandas_excel("xlsxwriter"),
    "pandas.csv": pandas_csv,
    "r-write-csv.csv": r_producer("write.csv"),
    "r-write-table-rownames.tsv": r_producer("write.table-rownames"),
    "r-write-table.tsv": r_producer("write.table"),
    "r-openxlsx.xlsx": r_producer("openxlsx"),
}


def _first_line(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return (done.stdout or done.stderr).strip().splitlines()[0].strip()


def versions() -> dict[str, str]:
    r_openxlsx = subprocess.run(
        ["Rscript", "--vanilla", "-e", 'cat(as.character(packageVersion("openxlsx")))'],
        capture_output=True, text=True, check=True).stdout.strip()
    return {
        "libreoffice-calc": _first_line(["soffice", "--version"]),
        "gnumeric": _first_line(["ssconvert", "--version"]),
        "R": _first_line(["R", "--version"]),
        "R openxlsx": r_openxlsx,
        "python": sys.version.split()[0],
        **{f"python {p}": version(p) for p in ("openpyxl", "XlsxWriter", "xlwt", "pandas",
                                               "polars")},
    }


def main(only: list[str]) -> None:
    """Every producer's file, or only those named; truth.json and VERSIONS.txt always."""
    frame, truth = generate(ROWS, seed=SEED, delivery_date=DELIVERY_DATE)
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        # what the agency's extract tool wrote, and what the analyst opened
        source = Path(work, "cases.csv")
        source.write_bytes(to_delimited(frame, encoding="utf-8", trailer=False))
        for name, produce in PRODUCERS.items():
            if only and name not in only:
                continue
            target = Path(work, name)
            produce(source, frame, target)
            shutil.move(target, OUT / name)
            print(f"{name}: {(OUT / name).stat().st_size:,} bytes")
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
    # enough to regenerate the table; the hash proves it is the one the samples hold
    (OUT / "truth.json").write_text(
        json.dumps(truth.to_json() | {"source_sha256": digest}, indent=1) + "\n")
    (OUT / "VERSIONS.txt").write_text(
        "".join(f"{tool}: {v}\n" for tool, v in versions().items()))


if __name__ == "__main__":
    main(sys.argv[1:])
