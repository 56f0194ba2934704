"""Every statistical and fixed-width form, with both examples, through the CLI and the flow.

Forms: SPSS (``.sav``, ``.zsav``), Stata (``.dta``), SAS transport (``.xpt``, version
8) as pyreadstat writes them; SAS data sets (``.sas7bdat``) as R's haven writes them;
fixed-width text records with their layout (the reference table in Windows-1252,
the admissions in UTF-8, LF-ended); EBCDIC records on tape (IBM1140; the admissions
with zoned and packed numbers; the reference comments' characters that no EBCDIC code
page has, a dash or a curly quote, written as ``?`` there and in its CSV baseline).
cpio tapes run both ways in ``test_media_cpio.py``.

Each run is ``ingest run`` in a fresh process, ``--no-prefect`` or through the
Prefect flow. The reference table is checked against the same table delivered as
CSV (its clean table's content hash and quarantine counts); the admissions against
the generator's truth, value by value.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pyreadstat
import pytest
from test_second_example import _differences, expected_clean

import ingest
from ingest.keys import Keyring
from ingest.synth import generate, to_delimited
from ingest.synth.admissions import ADMISSION_REASONS, AdmissionsTruth
from ingest.synth.admissions import generate as generate_admissions
from ingest.synth.fixed_forms import Slot, fit_layout, layout_csv, layout_sas, to_fixed_width

from conftest import DELIVERY_DATE, ROOT

INGEST = str(ROOT / ".venv" / "bin" / "ingest")
ROWS = 1_000
ADMISSION_NUMBERS = {
    "LOS_DAYS": Slot("LOS_DAYS", 5, "zoned", 0),
    "PRIOR_ADM": Slot("PRIOR_ADM", 3, "zoned", 0),
    "CREAT": Slot("CREAT", 4, "packed", 3),
}
SCHEMA_IN_CP1140 = ("from dataclasses import replace\n"
                    "from schemas.{name} import DATASET as BASE\n"
                    "DATASET = replace(BASE, encodings=('cp1140',))\n")


def _pyreadstat(write: Callable[..., None], suffix: str, **options: object
                ) -> Callable[[pl.DataFrame, str], dict[str, bytes]]:
    def make(frame: pl.DataFrame, name: str) -> dict[str, bytes]:
        with tempfile.TemporaryDirectory() as folder:  # the test's own synthetic table
            path = Path(folder) / f"{name}{suffix}"
            write(frame.to_pandas(), str(path), **options)
            return {path.name: path.read_bytes()}
    return make


def _haven_sas7bdat(frame: pl.DataFrame, name: str) -> dict[str, bytes]:
    """R haven's ``write_sas`` (ReadStat's sas7bdat writer, which pyreadstat does not
    offer), from the SPSS file pyreadstat writes of the table."""
    with tempfile.TemporaryDirectory() as folder:
        sav, out = Path(folder) / "t.sav", Path(folder) / f"{name}.sas7bdat"
        pyreadstat.write_sav(frame.to_pandas(), str(sav))
        subprocess.run(["Rscript", "-e", "suppressWarnings(haven::write_sas(haven::read_sav("
                        "commandArgs(TRUE)[1]), commandArgs(TRUE)[2]))", str(sav), str(out)],
                       check=True, capture_output=True)
        return {out.name: out.read_bytes()}


def _text_records(frame: pl.DataFrame, name: str) -> dict[str, bytes]:
    encoding = "cp1252" if name == "cases" else "utf-8"
    slots = fit_layout(frame, encoding)
    return {f"{name}.dat": to_fixed_width(frame, slots, encoding, "\n"),
            f"{name}.layout.csv": layout_csv(slots)}


def _ebcdic_tape(frame: pl.DataFrame, name: str) -> dict[str, bytes]:
    slots = fit_layout(frame, "cp1140", ADMISSION_NUMBERS if name == "admissions" else None)
    return {f"{name.upper()}.DAT": to_fixed_width(frame, slots, "cp1140"),
            f"{name.upper()}.SAS": layout_sas(slots, f"{name.upper()}.DAT")}


FORMS: dict[str, Callable[[pl.DataFrame, str], dict[str, bytes]]] = {
    "sav": _pyreadstat(pyreadstat.write_sav, ".sav"),
    "zsav": _pyreadstat(pyreadstat.write_sav, ".zsav", compress=True),
    "dta": _pyreadstat(pyreadstat.write_dta, ".dta"),
    "xpt": _pyreadstat(pyreadstat.write_xport, ".xpt", file_format_version=8),
    "sas7bdat": _haven_sas7bdat,
    "fixed-width": _text_records,
    "ebcdic": _ebcdic_tape,
}


@pytest.fixture(scope="module")
def reference() -> pl.DataFrame:
    return generate(ROWS, seed=5, delivery_date=DELIVERY_DATE)[0]


@pytest.fixture(scope="module")
def admissions() -> tuple[pl.DataFrame, AdmissionsTruth]:
    return generate_admissions(ROWS, seed=11, bad_share=0.005)


def _content(out: Path) -> str:
    frame = ingest.load(out).with_columns(pl.col(pl.Categorical).cast(pl.Utf8))
    return hashlib.sha256(frame.write_csv().encode()).hexdigest()


class Runs:
    """``ingest run`` in a fresh process, with the test's keyring."""

    def __init__(self, home: Path, tmp: Path) -> None:
        self.env = dict(os.environ, INGEST_HOME=str(home))
        self.env.pop("PREFECT_API_URL", None)
        self.tmp = tmp
        self.baselines: dict[bool, tuple[dict, str]] = {}

    def run(self, label: str, files: dict[str, bytes], schema: str, flow: bool) -> tuple[
            dict, Path]:
        folder, out = self.tmp / label, self.tmp / f"out-{label}"
        folder.mkdir()
        for name, data in files.items():
            (folder / name).write_bytes(data)
        done = subprocess.run(
            [INGEST, "run", str(folder), "--schema", schema, "--out", str(out),
             "--delivery-date", DELIVERY_DATE.isoformat(), "--json",
             *([] if flow else ["--no-prefect"])],
            env=self.env, capture_output=True, text=True, check=False, timeout=600)
        assert done.returncode == 0, f"{label}: {done.stderr[-2000:]}"
        return json.loads(done.stdout), out

    def stop_server(self) -> None:
        subprocess.run([INGEST, "server", "stop"], env=self.env, capture_output=True,
                       check=False)


def _schema(form: str, name: str, tmp: Path) -> str:
    if form != "ebcdic":
        return name
    path = tmp / f"{name}_cp1140.py"
    path.write_text(SCHEMA_IN_CP1140.format(name=name))
    return str(path)


def _in_code_page(frame: pl.DataFrame, encoding: str) -> pl.DataFrame:
    """The table with each character its code page lacks (a dash, a curly quote in the
    comments) as ``?``, in the EBCDIC form and its CSV baseline alike."""
    def fit(value: str | None) -> str | None:
        return None if value is None else value.encode(encoding, "replace").decode(encoding)
    return frame.with_columns(pl.col(c).map_elements(fit, return_dtype=pl.Utf8)
                              for c in frame.columns)


def _check_both(runs: Runs, form: str, reference: pl.DataFrame, admissions, tmp: Path,
                flow: bool) -> None:
    # the reference table: what the CSV of the same table gives
    ebcdic = form == "ebcdic"
    if ebcdic:
        reference = _in_code_page(reference, "cp1140")
    if ebcdic not in runs.baselines:
        baseline, base_out = runs.run(f"csv-{form}-{flow}",
                                      {"cases.csv": to_delimited(reference)}, "reference",
                                      flow=False)
        runs.baselines[ebcdic] = baseline, _content(base_out)
    baseline, content = runs.baselines[ebcdic]
    summary, out = runs.run(f"reference-{form}-{flow}", FORMS[form](reference, "cases"),
                            _schema(form, "reference", tmp), flow)
    assert (summary["rows_in"], summary["rows_accepted"], summary["quarantine_reasons"]) == (
        ROWS, baseline["rows_accepted"], baseline["quarantine_reasons"]), form
    assert _content(out) == content, form
    # the admissions: the generator's truth
    frame, truth = admissions
    summary, out = runs.run(f"admissions-{form}-{flow}", FORMS[form](frame, "admissions"),
                            _schema(form, "admissions", tmp), flow)
    want: dict[str, int] = {}
    for kind in truth.bad_rows.values():
        want[ADMISSION_REASONS[kind]] = want.get(ADMISSION_REASONS[kind], 0) + 1
    assert (summary["rows_in"], summary["rows_accepted"], summary["quarantine_reasons"]) == (
        truth.rows, truth.accepted, want), form
    got = ingest.load(out)
    assert _differences(got, expected_clean(truth, Keyring.open().pseudonym_key().material)) \
        == [], form


@pytest.mark.parametrize("form", list(FORMS))
def test_the_cli_runs_both_examples_in_each_form(form: str, reference, admissions,
                                                 tmp_path: Path, home: Path) -> None:
    _check_both(Runs(home, tmp_path), form, reference, admissions, tmp_path, flow=False)


def test_the_flow_runs_both_examples_in_each_form(reference, admissions, tmp_path: Path,
                                                  home: Path) -> None:
    runs = Runs(home, tmp_path)
    try:
        for form in FORMS:
            _check_both(runs, form, reference, admissions, tmp_path, flow=True)
    finally:
        runs.stop_server()
