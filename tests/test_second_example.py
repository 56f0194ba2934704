"""The second example (hospital admissions and their wards) in every form, end to end.

Nothing in the library may assume the reference table's columns: this table has
other names and other kinds (integers, decimals, a UTC timestamp, a time of day),
and each form, CSV in UTF-8 and Windows-1252, workbooks with typed cells from
XlsxWriter and openpyxl, and the text mdb-export prints for Access, must give
exactly the generator's clean values, typed, and quarantine exactly its bad rows.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import re
import subprocess
from collections.abc import Callable
from datetime import datetime, time
from decimal import Decimal
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

import ingest
from ingest.crypto.openpgp import encrypt_openpgp, export_public_key
from ingest.features import load as load_features
from ingest.keys import Keyring
from ingest.synth import to_delimited
from ingest.synth.admissions import (
    ADMISSION_BAD_KINDS,
    ADMISSION_REASONS,
    CLEAN_SCHEMA,
    TRIAGE,
    WARD_CODES,
    WARDS,
    AdmissionsTruth,
    generate,
    wards,
)
from ingest.synth.admissions_forms import to_access_export, to_xlsx
from ingest.writers import decrypt_jsonl

from conftest import ROOT

ROWS, SEED = 2_000, 11
INGEST = str(ROOT / ".venv" / "bin" / "ingest")

Generated = tuple[pl.DataFrame, AdmissionsTruth]


@pytest.fixture(scope="module")
def generated() -> Generated:
    return generate(ROWS, seed=SEED, bad_share=0.005)


FORMS: dict[str, tuple[str, Callable[[pl.DataFrame], bytes]]] = {
    "csv-utf8": ("admissions.csv", lambda f: to_delimited(f, encoding="utf-8", trailer=False,
                                                          crlf=False)),
    "csv-cp1252": ("admissions.csv", lambda f: to_delimited(f, encoding="cp1252")),
    "xlsx-xlsxwriter": ("admissions.xlsx", lambda f: to_xlsx(f, engine="xlsxwriter")),
    "xlsx-openpyxl": ("admissions.xlsx", lambda f: to_xlsx(f, engine="openpyxl")),
    "access-export": ("admissions.csv", to_access_export),
}
"""The forms: file name in the delivery, and how the table is written."""


def _deliver(tmp_path: Path, files: dict[str, bytes], encrypt_to: Path | None = None) -> Path:
    folder = tmp_path / "delivery"
    folder.mkdir()
    for name, data in files.items():
        if encrypt_to is not None:
            data = encrypt_openpgp(data, tmp_path / "sender",
                                   recipient_key=export_public_key(encrypt_to / "gnupg"))
            name += ".gpg"
        (folder / name).write_bytes(data)
    return folder


def _token(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def expected_clean(truth: AdmissionsTruth, pseudonym_key: bytes) -> pl.DataFrame:
    """The accepted rows' clean values, identifiers pseudonymised as published."""
    want = truth.accepted_rows()
    return want.with_columns(pl.col("patient_id").map_elements(
        lambda v: _token(pseudonym_key, v), return_dtype=pl.Utf8))


def _differences(got: pl.DataFrame, want: pl.DataFrame) -> list[str]:
    """Per column, how many rows differ and the first few positions (no values)."""
    found = []
    for column in want.columns:
        g = got[column]
        if g.dtype == pl.Categorical:
            g = g.cast(pl.Utf8)
        same = (g == want[column]) | (g.is_null() & want[column].is_null())
        wrong = (~same.fill_null(False)).arg_true().to_list()
        if wrong:
            found.append(f"{column}: {len(wrong)} rows differ, first at {wrong[:5]}")
    return found


def _quarantine(summary: ingest.RunSummary, table: str = "") -> dict[int, tuple[str, int | None]]:
    """Quarantined row -> (its reasons, the first row of a duplicate)."""
    name = f"{table}.quarantine.jsonl.age" if table else "quarantine.jsonl.age"
    rows = decrypt_jsonl((Path(summary.output_dir) / name).read_bytes(),
                         Keyring.open().age_identity())
    firsts = (rows["_first_row"].to_list() if "_first_row" in rows.columns
              else [None] * rows.height)
    return {r: (reasons, first) for r, reasons, first in
            zip(rows["_row"].to_list(), rows["_reasons"].to_list(), firsts, strict=True)}


def expected_quarantine(frame: pl.DataFrame,
                        truth: AdmissionsTruth) -> dict[int, tuple[str, int | None]]:
    ids = frame["ADM_ID"].to_list()
    first: dict[str, int] = {}
    for i, value in enumerate(ids):
        first.setdefault(value, i + 1)
    return {row: (ADMISSION_REASONS[kind],
                  first[ids[row - 1]] if kind == "duplicate_admission_id" else None)
            for row, kind in truth.bad_rows.items()}


# -- the generator ---------------------------------------------------------------------------

def test_the_generator_is_deterministic_by_seed_and_breaks_every_rule(
        generated: Generated) -> None:
    frame, truth = generated
    again, truth_again = generate(ROWS, seed=SEED, bad_share=0.005)
    assert frame.equals(again) and truth.clean.equals(truth_again.clean)
    assert truth.bad_rows == truth_again.bad_rows
    assert not frame.equals(generate(ROWS, seed=SEED + 1, bad_share=0.005)[0])
    assert set(truth.bad_rows.values()) == set(ADMISSION_BAD_KINDS)
    assert truth.clean.schema == pl.Schema(CLEAN_SCHEMA)
    # what makes the forms worth reading: zones, offsets and naive timestamps,
    # decimals spelled short, null tokens, non-ASCII text
    stamps = frame["ADMIT_TS"]
    assert stamps.str.ends_with("Z").any() and stamps.str.ends_with("+02:00").any()
    assert stamps.str.contains(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$").any()
    assert (frame["CHARGE"].str.contains(r"^\d+\.\d$")).any()
    assert set(frame["CREAT"].to_list()) >= {"", "NA", "NULL"}
    assert frame["NOTE"].str.contains("[éñ€]").any()
    assert json.loads(json.dumps(truth.to_json()))["quarantined"] == truth.quarantined


def test_the_schema_and_the_generator_agree_on_codes() -> None:
    from schemas.admissions import TRIAGE as SCHEMA_TRIAGE
    from schemas.admissions import WARD_CODES as SCHEMA_WARDS

    assert SCHEMA_WARDS == WARD_CODES == tuple(wards()["WARD_CD"].to_list())
    assert SCHEMA_TRIAGE == TRIAGE


def test_the_workbooks_hold_typed_cells(generated: Generated) -> None:
    """The xlsx forms are worth running only if their cells are typed, not text."""
    from openpyxl import load_workbook  # type: ignore[import-untyped]

    frame, truth = generated
    row = next(i for i in range(10, ROWS) if i + 1 not in truth.bad_rows
               and frame["PRIOR_ADM"][i] != "" and frame["CREAT"][i] not in ("", "NA", "NULL"))
    for engine in ("xlsxwriter", "openpyxl"):
        sheet = load_workbook(io.BytesIO(to_xlsx(frame, engine=engine)), read_only=True).active
        cells = dict(zip(frame.columns, next(sheet.iter_rows(min_row=row + 2, max_row=row + 2,
                                                              values_only=True)), strict=True))
        assert isinstance(cells["ADMIT_TS"], datetime), engine
        assert isinstance(cells["ARRIVAL"], time | datetime), engine
        assert isinstance(cells["LOS_DAYS"], int | float), engine
        assert isinstance(cells["CHARGE"], int | float), engine
        assert isinstance(cells["CREAT"], float), engine
        assert isinstance(cells["READMIT"], bool), engine
        assert isinstance(cells["ADM_ID"], str), engine


def test_the_access_form_is_what_mdb_export_prints(generated: Generated) -> None:
    frame, _ = generated
    lines = to_access_export(frame).decode("utf-8").split("\n")
    assert lines[0].startswith('"ADM_ID","MRN","ADMIT_TS"')
    first = lines[1].split(",")
    assert first[0].startswith('"ADM') and first[2].count(":") == 2 and "T" not in first[2]
    assert first[3].startswith("1899-12-30 ")  # a time of day on Access's day zero
    assert re.fullmatch(r"[0-9]+\.[0-9]{4}", first[6])  # Currency: four places
    assert first[9] in ("0", "1")  # Yes/No


# -- every form, end to end ------------------------------------------------------------------

@pytest.mark.parametrize("form", list(FORMS))
def test_every_form_gives_the_generators_clean_values_and_quarantine(
        form: str, generated: Generated, tmp_path: Path, home: Path) -> None:
    frame, truth = generated
    name, write = FORMS[form]
    encrypt = home if form == "csv-cp1252" else None  # one form as an OpenPGP delivery
    folder, out = _deliver(tmp_path, {name: write(frame)}, encrypt), tmp_path / "out"

    summary = ingest.run_delivery(folder, schema="admissions", out=out)

    assert (summary.rows_in, summary.rows_accepted, summary.rows_quarantined) == (
        truth.rows, truth.accepted, truth.quarantined)
    want_reasons: dict[str, int] = {}
    for kind in truth.bad_rows.values():
        want_reasons[ADMISSION_REASONS[kind]] = want_reasons.get(ADMISSION_REASONS[kind], 0) + 1
    assert summary.quarantine_reasons == want_reasons
    assert summary.repairs == {}
    assert _quarantine(summary) == expected_quarantine(frame, truth)

    got = ingest.load(out)
    want = expected_clean(truth, Keyring.open().pseudonym_key().material)
    assert got.columns == want.columns
    assert got.height == want.height
    assert _differences(got, want) == []


def test_the_kinds_are_kept_in_every_reader(generated: Generated, tmp_path: Path,
                                            home: Path) -> None:
    frame, truth = generated
    folder, out = _deliver(tmp_path, {"admissions.xlsx": to_xlsx(frame)}), tmp_path / "out"
    summary = ingest.run_delivery(folder, schema="admissions", out=out)

    polars = ingest.load(out)
    assert polars.schema["length_of_stay"] == pl.Int64
    assert polars.schema["prior_admissions"] == pl.Int64
    assert polars.schema["charge"] == pl.Decimal(12, 2)
    assert polars.schema["creatinine"] == pl.Decimal(7, 3)
    assert polars.schema["admitted_at"] == pl.Datetime("us", "UTC")
    assert polars.schema["arrival_time"] == pl.Time
    assert polars.schema["readmitted"] == pl.Boolean
    assert polars["prior_admissions"].null_count() > 0  # nulls stay nulls, not NaN

    arrow = ingest.load(out, as_="arrow")
    assert arrow.schema.field("length_of_stay").type == pa.int64()
    assert arrow.schema.field("charge").type == pa.decimal128(12, 2)
    assert arrow.schema.field("admitted_at").type == pa.timestamp("us", tz="UTC")
    assert pa.types.is_time64(arrow.schema.field("arrival_time").type)  # polars' ns

    pandas = ingest.load(out, columns=["prior_admissions", "charge", "arrival_time"],
                         as_="pandas")
    assert str(pandas["prior_admissions"].dtype) == "Int64"
    want = truth.accepted_rows()
    assert pandas["charge"].iloc[0] == want["charge"][0]
    assert isinstance(pandas["charge"].iloc[0], Decimal)
    assert pandas["arrival_time"].iloc[0] == want["arrival_time"][0]

    # the training matrix takes integers and decimals as numbers (its float32), the
    # flag as label
    matrix = load_features(summary.output_dir)
    assert matrix.X.shape[0] == truth.accepted
    names = list(matrix.feature_names)
    for column in ("length_of_stay", "charge", "creatinine"):
        values = matrix.X[:, names.index(column)].toarray().ravel()
        assert values.tolist() == want[column].cast(pl.Float32).fill_null(0).to_list(), column
    assert matrix.y is not None and matrix.y.tolist() == want["readmitted"].cast(pl.Int64).to_list()


def test_admissions_and_their_wards_are_one_delivery_of_two_tables(
        generated: Generated, tmp_path: Path, home: Path) -> None:
    frame, truth = generated
    folder = _deliver(tmp_path, {"admissions.csv": to_delimited(frame, encoding="utf-8"),
                                 "wards.csv": to_delimited(wards(), encoding="cp1252")})
    out = tmp_path / "out"

    summary = ingest.run_delivery(folder, schema=["admissions", "wards"], out=out)

    assert [t["name"] for t in summary.tables] == ["admissions", "wards"]
    assert summary.rows_in == truth.rows + len(WARDS)
    assert summary.rows_quarantined == truth.quarantined
    assert _quarantine(summary, "admissions") == expected_quarantine(frame, truth)
    got = ingest.load(out, table="wards")
    assert got["ward_code"].to_list() == list(WARD_CODES)
    assert got["ward_name"].to_list() == [w[1] for w in WARDS]  # accents through cp1252
    assert got["beds"].dtype == pl.Int64 and got["beds"].to_list() == [w[2] for w in WARDS]
    admissions = ingest.load(out, table="admissions")
    assert _differences(admissions, expected_clean(truth, Keyring.open().pseudonym_key()
                                                   .material)) == []


def test_the_cli_runs_the_example_from_a_schema_file(generated: Generated, tmp_path: Path,
                                                     home: Path) -> None:
    frame, truth = generated
    folder = _deliver(tmp_path, {"admissions.csv": to_access_export(frame)})
    env = dict(os.environ, INGEST_HOME=str(home))
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run(
        [INGEST, "run", str(folder), "--schema", str(ROOT / "schemas" / "admissions.py"),
         "--out", str(tmp_path / "out"), "--no-prefect", "--json"],
        env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["rows_in"], summary["rows_accepted"], summary["rows_quarantined"]) == (
        truth.rows, truth.accepted, truth.quarantined)
    assert sum(summary["quarantine_reasons"].values()) == truth.quarantined
    got = ingest.load(tmp_path / "out")
    assert _differences(got, expected_clean(truth, Keyring.open().pseudonym_key().material)) \
        == []


# -- the README's walkthrough ----------------------------------------------------------------

def _walkthrough() -> list[tuple[str, str]]:
    """The code blocks of the README's "Your own delivery", in order: (language, code)."""
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Your own delivery\n")
    section = text[start:text.index("\n## ", start + 1)]
    return re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)


def _field_chunks(lines: list[str]) -> list[tuple[int, int]]:
    """(first, end) line spans of the model's fields in a schema module."""
    spans, i = [], 0
    while i < len(lines):
        if re.match(r"^    \w+: [\w.]+ = pa\.Field\(", lines[i]):
            depth, j = 0, i
            while True:
                code = re.split(r"\s#\s", lines[j])[0]  # a comment, not a %#z
                depth += code.count("(") - code.count(")")
                j += 1
                if depth == 0:
                    break
            spans.append((i, j))
            i = j
        else:
            i += 1
    return spans


def apply_readme_edits(draft: str, edits: str) -> str:
    """The draft with each field the README edits (found by its source name) replaced,
    and the lines holding values from the data deleted, as the README says."""
    edit_lines = edits.rstrip("\n").split("\n")
    by_source = {}
    for first, end in _field_chunks(edit_lines):
        chunk = "\n".join(edit_lines[first:end])
        by_source[re.search(r"[\"']source[\"']: [\"'](\w+)[\"']", chunk).group(1)] = chunk  # type: ignore[union-attr]
    lines = draft.split("\n")
    out, last = [], 0
    for first, end in _field_chunks(lines):
        out += lines[last:first]
        chunk = "\n".join(lines[first:end])
        source = re.search(r"'source': '(\w+)'", chunk).group(1)  # type: ignore[union-attr]
        out.append(by_source.pop(source, chunk))
        last = end
    out += lines[last:]
    assert not by_source, f"the README edits fields the draft does not have: {by_source}"
    return "\n".join(line for line in out if not line.rstrip().endswith("# from the data"))


def test_the_readme_walkthrough_runs_as_written(home: Path, tmp_path: Path) -> None:
    """Every block of "Your own delivery", run: keys, the sender's encrypted delivery,
    inspect, draft, the README's edits, the run, and the Python that reads the result."""
    blocks = _walkthrough()
    shell = [code for lang, code in blocks if lang == "sh"]
    edits = next(code for lang, code in blocks if lang == "python" and "pa.Field" in code)
    reading = next(code for lang, code in blocks if lang == "python" and "ingest.load" in code)
    secure = tmp_path / "secure"
    env = dict(os.environ, INGEST_HOME=str(home), PATH=f"{ROOT / '.venv' / 'bin'}:"
               f"{os.environ['PATH']}")
    env.pop("PREFECT_API_URL", None)
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")  # the README runs from a checkout

    def sh(code: str) -> str:
        code = code.replace("/secure", str(secure)).replace("50_000", "3_000")
        code = code.replace("export INGEST_HOME=", ": ")  # the test's own keyring
        code = code.replace(" --json", " --no-prefect --json")  # no Prefect server here
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=tmp_path, env=env,
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, (code, done.stderr)
        return done.stdout

    _, truth = generate(3_000, seed=1)
    sh(shell[0])  # keys, and the sender's encrypted delivery
    assert (secure / "inbox" / "adm-0001" / "admissions.csv.gpg").exists()
    assert "3,000 rows" in sh(shell[1])  # inspect
    sh(shell[2])  # draft
    draft = (tmp_path / "my_schema.py").read_text()
    (tmp_path / "my_schema.py").write_text(apply_readme_edits(draft, edits))
    summary = json.loads(sh(shell[3]))  # run
    assert (summary["rows_in"], summary["rows_accepted"], summary["rows_quarantined"]) == (
        truth.rows, truth.accepted, truth.quarantined)
    want: dict[str, int] = {}
    for kind in truth.bad_rows.values():
        want[ADMISSION_REASONS[kind]] = want.get(ADMISSION_REASONS[kind], 0) + 1
    assert summary["quarantine_reasons"] == want

    scope: dict = {}
    code = reading.replace('"/secure/out"', repr(str(secure / "out")))
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - our own README
    assert scope["admissions"].height == truth.accepted
    assert str(scope["frame"]["length_of_stay"].dtype) == "Int64"
