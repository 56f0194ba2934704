"""``ingest schema draft``: a schema drafted from a delivery validates that delivery.

Every test delivery of this project (the synthetic CSV and TSV under OpenPGP, an
xlsx and an xls, the Access fixtures, the real producers' samples) and a table of
another shape made here are drafted; the draft, loaded from its file as
``--schema path.py`` would load it, must read every row of the same delivery with
no value that fails to parse (and, as its rules are suggestions only, quarantine
nothing). Values planted in free text never reach the draft, and values the
draft does hold (category levels) sit only on the lines it marks.
"""

from __future__ import annotations

import importlib.util
import io
import json
import stat
import sys
from contextlib import redirect_stdout
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from ingest.cli import main
from ingest.draft import FROM_THE_DATA, draft_delivery, load_draft
from ingest.draft.names import clean_names
from ingest.media import open_delivery
from ingest.readers import read_delivery_table
from ingest.schema import Dataset
from ingest.synth import generate, to_delimited
from ingest.synth.forms import to_xls, to_xlsx
from ingest.validate import validate

from conftest import DATA, DELIVERY_DATE

PRODUCERS = sorted(p for p in (DATA / "producers").iterdir()
                   if p.suffix in (".csv", ".tsv", ".xlsx", ".xls", ".ods"))
ACCESS = [DATA / "access" / "reference_20k.mdb", DATA / "access" / "reference_20k.accdb"]
COMMENT_CANARY = "Qzx7 canary note wvJ3"
PERSON_CANARY = "P7C0FFEE1"


def _load_file(path: Path) -> Dataset:
    """The DATASET of a schema file, imported as a module from its path."""
    spec = importlib.util.spec_from_file_location(f"drafted_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    dataset = module.DATASET
    assert isinstance(dataset, Dataset)
    return dataset


def _draft_file(delivery: Path, tmp_path: Path, name: str = "drafted",
                *extra: str) -> tuple[Path, str]:
    """Run ``ingest schema draft``; the draft's path and what was printed."""
    out = tmp_path / f"{name}.py"
    printed = io.StringIO()
    with redirect_stdout(printed):
        code = main(["schema", "draft", str(delivery), "--name", name, "--out", str(out),
                     *extra])
    assert code == 0
    return out, printed.getvalue()


def _validated(delivery: Path, dataset: Dataset) -> tuple[int, dict[str, int]]:
    """Rows and quarantine reasons of the delivery under ``dataset`` (the run's stages)."""
    table = read_delivery_table(open_delivery(delivery).members, dataset)
    result = validate(table, dataset, DELIVERY_DATE)
    assert result.rows_accepted + result.rows_quarantined == result.rows_in
    return result.rows_in, result.reasons


def _prose(text: str) -> str:
    """The draft's comments and code as one line (comments wrap anywhere)."""
    return " ".join(line.strip().lstrip("#").strip() for line in text.splitlines())


def _assert_reads_clean(delivery: Path, dataset: Dataset, rows: int) -> None:
    rows_in, reasons = _validated(delivery, dataset)
    assert rows_in == rows
    # the draft's rules are its kinds and nullability only: nothing fails
    assert reasons == {}


# --- the project's deliveries ---------------------------------------------------------------

@pytest.fixture(scope="module")
def canary_table() -> tuple[pl.DataFrame, object]:
    return generate(20_000, seed=11, delivery_date=DELIVERY_DATE,
                    canaries={"person_id": PERSON_CANARY, "comment": COMMENT_CANARY})


@pytest.mark.parametrize("form", ["csv-cp1252", "tsv-utf8"])
def test_openpgp_delivery_drafted_then_run_end_to_end(form: str, pgp_delivery, home: Path,
                                                      tmp_path: Path, canary_table) -> None:
    frame, truth = canary_table
    csv = {"separator": ",", "encoding": "cp1252"} if form == "csv-cp1252" else \
        {"separator": "\t", "encoding": "utf-8"}
    folder, _ = pgp_delivery(frame, truth, name=form, **csv)
    path, printed = _draft_file(folder, tmp_path, "cases")
    text = path.read_text(encoding="utf-8")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for canary in (COMMENT_CANARY, PERSON_CANARY):
        assert canary not in text and canary not in printed
    # no free text of the comments column reaches the draft, marked or not
    for comment in ("fever", "follow-up", "symptoms", "Long note"):
        assert comment not in text
    dataset = _load_file(path)
    kinds = {c.source: c for c in dataset.columns}
    assert kinds["CASE_ID"].kind == "string" and kinds["CASE_ID"].width == 10
    assert kinds["CNTY_FIPS"].width == 5
    assert kinds["RPT_DT"].kind == "date" and kinds["RPT_DT"].date_formats == ("%m/%d/%Y",)
    assert kinds["HOSP_YN"].kind == "bool"
    assert kinds["LAB_VAL"].kind == "float" and kinds["LAB_VAL"].nullable
    assert kinds["SEX"].kind == "category"
    assert kinds["PERS_ID"].policy == "pseudonymise"
    assert kinds["CMNT"].policy == "restrict" and kinds["DOB"].policy == "restrict"
    # some birth dates are not dates (13/01/1975): the column stays text, and says why
    assert kinds["DOB"].kind == "string" and "not dates written %m/%d/%Y" in _prose(text)
    from ingest.pipeline import run_delivery

    # the draft as `--schema path/to/draft.py` takes it
    summary = run_delivery(folder, schema=str(path), out=tmp_path / "out",
                           delivery_date=DELIVERY_DATE)
    assert summary.rows_in == truth.rows
    assert summary.rows_quarantined == 0, summary.quarantine_reasons


@pytest.mark.parametrize("form", ["xlsx", "xls"])
def test_synth_workbooks(form: str, home: Path, tmp_path: Path) -> None:
    frame, truth = generate(3_000, seed=5, delivery_date=DELIVERY_DATE)
    data = to_xlsx(frame, title_rows=2) if form == "xlsx" else to_xls(frame)
    delivery = tmp_path / f"cases.{form}"
    delivery.write_bytes(data)
    path, _ = _draft_file(delivery, tmp_path)
    _assert_reads_clean(delivery, _load_file(path), truth.rows)


@pytest.mark.parametrize("database", ACCESS, ids=lambda p: p.name)
def test_access_fixtures(database: Path, home: Path, tmp_path: Path) -> None:
    path, _ = _draft_file(database, tmp_path)
    dataset = _load_file(path)
    assert dataset.table == "CASES"  # the largest table, named so a run reads it
    _assert_reads_clean(database, dataset, 20_000)


@pytest.mark.parametrize("sample", PRODUCERS, ids=lambda p: p.name)
def test_real_producer_samples(sample: Path, home: Path, tmp_path: Path) -> None:
    path, _ = _draft_file(sample, tmp_path)
    _assert_reads_clean(sample, _load_file(path), 3_000)


# --- a table of another shape ----------------------------------------------------------------

HEADERS = {
    "Trip ID": "trip_id",
    "flightNumber": "flight_number",
    "Fare (USD)": "fare_usd",
    "distance": "distance",
    "Dep. Time UTC": "dep_time_utc",
    "Local departure": "local_departure",
    "Gate opens": "gate_opens",
    "Año": "ano",
    "2nd Carrier": "c_2nd_carrier",
    "Carrier": "carrier",
    "Booked On": "booked_on",
    "Travel date": "travel_date",
    "Refund?": "refund",
    "Member": "member",
    "Cancelled": "cancelled",
    "Airport Code": "airport_code",
    "Note": "note",
    "Carrier#": "carrier_2",
    'Pax "adult"': "pax_adult",
    "Seats": "seats",
}
LEVELS = ("KQZXAIR", "VWJYAIR", "PLMNAIR")
NOTE_CANARY = "ZqW8 free text canary 4Kp"


def _other_table(rows: int = 400) -> pl.DataFrame:
    i = pl.int_range(0, rows, eager=True)
    texts = {
        "Trip ID": (i + 1).cast(pl.Utf8),
        "flightNumber": (i % 97 + 100).cast(pl.Utf8),
        "Fare (USD)": ((i * 37 % 100_000) / 100).map_elements(lambda v: f"{v:.2f}",
                                                              return_dtype=pl.Utf8),
        "distance": (i * 1.37 + 0.5).round(3).cast(pl.Utf8),
        "Dep. Time UTC": pl.Series([f"2024-03-{1 + k % 28:02d}T{k % 24:02d}:{k % 60:02d}:00Z"
                                    for k in range(rows)]),
        "Local departure": pl.Series([f"2024-03-{1 + k % 28:02d} {k % 24:02d}:{k % 60:02d}:15"
                                      for k in range(rows)]),
        "Gate opens": pl.Series([f"{k % 24:02d}:{(k * 7) % 60:02d}" for k in range(rows)]),
        "Año": (2000 + i % 25).cast(pl.Utf8),
        "2nd Carrier": pl.Series([LEVELS[k % 3] if k % 5 else "" for k in range(rows)]),
        "Carrier": pl.Series([LEVELS[(k + 1) % 3] for k in range(rows)]),
        # day first: 25/03/2024 settles it
        "Booked On": pl.Series([f"{1 + k % 28:02d}/{1 + k % 12:02d}/2023" for k in range(rows)]),
        # no day above 12: day first or month first cannot be told
        "Travel date": pl.Series([f"{1 + k % 12:02d}/{1 + (k * 5) % 12:02d}/2024"
                                  for k in range(rows)]),
        "Refund?": pl.Series(["yes" if k % 4 else "no" for k in range(rows)]),
        "Member": pl.Series(["TRUE" if k % 3 else "FALSE" for k in range(rows)]),
        "Cancelled": pl.Series(["1" if k % 9 == 0 else "0" for k in range(rows)]),
        "Airport Code": (i % 300).cast(pl.Utf8).str.zfill(4),
        "Note": pl.Series([NOTE_CANARY if k == 17 else
                           ("Passenger asked for a window seat near the front" if k % 2 else "")
                           for k in range(rows)]),
        "Carrier#": pl.Series(["NA" if k % 7 == 0 else str(k) for k in range(rows)]),
        'Pax "adult"': (i % 5 + 1).cast(pl.Utf8),
        "Seats": ((i % 50 + 100).cast(pl.Float64)).cast(pl.Utf8),  # "120.0", as pandas writes
    }
    return pl.DataFrame(texts)


def test_other_shape_kinds_names_and_marked_values(home: Path, tmp_path: Path) -> None:
    frame = _other_table()
    delivery = tmp_path / "trips.csv"
    delivery.write_bytes(to_delimited(frame, encoding="utf-8", trailer=False))
    path, printed = _draft_file(delivery, tmp_path, "trips")
    text = path.read_text(encoding="utf-8")
    dataset = _load_file(path)
    assert [c.name for c in dataset.columns] == list(HEADERS.values())
    # a quote inside a header name stays doubled, as the CSV reader's parser reads it
    assert [c.source for c in dataset.columns] == [h.replace('"', '""') for h in HEADERS]
    col = {c.name: c for c in dataset.columns}
    assert col["trip_id"].kind == "string"  # digits, but the name says an identifier
    assert col["flight_number"].kind == "integer"
    assert col["ano"].kind == "integer"
    assert (col["fare_usd"].kind, col["fare_usd"].scale) == ("decimal", 2)
    assert col["distance"].kind == "float"
    assert col["dep_time_utc"].kind == "datetime" and col["dep_time_utc"].timezone == "UTC"
    assert col["local_departure"].kind == "datetime" and col["local_departure"].timezone is None
    assert col["gate_opens"].kind == "time"
    assert col["booked_on"].kind == "date" and col["booked_on"].date_formats == ("%d/%m/%Y",)
    # refused to guess: text, and the draft says which two readings are open
    assert col["travel_date"].kind == "string"
    assert "day or the month comes first" in _prose(text)
    assert (col["refund"].kind, col["refund"].true_values) == ("bool", ("yes",))
    assert (col["member"].kind, col["member"].true_values) == ("bool", ("TRUE",))
    assert (col["cancelled"].kind, col["cancelled"].true_values) == ("bool", ("1",))
    assert col["airport_code"].kind == "string" and col["airport_code"].width == 4
    assert col["carrier"].kind == "category" and not col["carrier"].nullable
    assert col["c_2nd_carrier"].kind == "category" and col["c_2nd_carrier"].nullable
    assert col["carrier_2"].kind == "integer" and col["carrier_2"].nullable
    assert col["pax_adult"].kind == "integer"
    assert col["seats"].kind == "float"  # "120.0": not an integer to the integer kind
    assert col["note"].policy == "restrict"
    assert "NA" in dataset.null_tokens
    # candidate key named in a comment, not declared
    assert "in this delivery): trip_id." in _prose(text) and dataset.unique == ()

    # values from the data: category levels only on marked lines; free text nowhere
    lines = text.splitlines()
    for level in LEVELS:
        holding = [line for line in lines if level in line]
        assert holding and all(line.endswith(FROM_THE_DATA) for line in holding), level
    assert NOTE_CANARY not in text and "window seat" not in text
    assert not any(level in printed for level in LEVELS)
    marked = [line for line in lines if line.endswith(FROM_THE_DATA)]
    assert all(line.lstrip().startswith("#") for line in marked)  # suggestions, commented

    _assert_reads_clean(delivery, dataset, frame.height)
    # each suggestion, once uncommented, is a valid pa.Field
    import datetime as dt
    from decimal import Decimal

    import pandera.polars as pa

    scope = {"pa": pa, "date": dt.date, "datetime": dt.datetime, "time": dt.time,
             "Decimal": Decimal}
    for line in marked:
        field = line.split("# suggested: ", 1)[1].removesuffix(FROM_THE_DATA).strip()
        eval(field, scope)  # noqa: S307 - the draft's own text
    assert load_draft(text).name == "trips"


def test_a_value_that_breaks_the_inferred_kind_keeps_the_column_as_text(
        home: Path, tmp_path: Path) -> None:
    frame = pl.DataFrame({"Count": [str(k) for k in range(300)] + ["12a"],
                          "Seen": ["2024-01-02"] * 300 + ["2024-02-30"]})
    delivery = tmp_path / "t.csv"
    delivery.write_bytes(to_delimited(frame, encoding="utf-8", trailer=False))
    dataset = _load_file(_draft_file(delivery, tmp_path)[0])
    assert [c.kind for c in dataset.columns] == ["string", "string"]
    _assert_reads_clean(delivery, dataset, 301)


def test_the_check_against_the_delivery_keeps_a_column_the_run_would_refuse_as_text(
        home: Path, tmp_path: Path) -> None:
    # every value has two places, so a decimal is inferred; one has more digits than
    # any decimal holds (38): only validating the draft against the delivery finds it
    frame = pl.DataFrame({"Visit": ["12.50"] * 300 + ["9" * 39 + ".25"],
                          "Ward": ["A", "B", "C"] * 100 + ["A"]})
    delivery = tmp_path / "t.csv"
    delivery.write_bytes(to_delimited(frame, encoding="utf-8", trailer=False))
    path, printed = _draft_file(delivery, tmp_path)
    dataset = _load_file(path)
    assert dataset.column("visit").kind == "string"
    assert "kept as text" in printed and "visit" in printed
    _assert_reads_clean(delivery, dataset, 301)


def test_draft_never_replaces_a_file(home: Path, tmp_path: Path) -> None:
    delivery = tmp_path / "t.csv"
    delivery.write_bytes(to_delimited(_other_table(40), encoding="utf-8"))
    out = tmp_path / "kept.py"
    out.write_text("# mine\n")
    assert main(["schema", "draft", str(delivery), "--name", "t", "--out", str(out)]) != 0
    assert out.read_text() == "# mine\n"


def test_headers_that_spell_the_names_a_draft_uses(home: Path, tmp_path: Path) -> None:
    frame = pl.DataFrame({h: [str(k % 3) + "x" for k in range(40)]
                          for h in ("str", "pl", "pa", "Date", "time", "dataset", "Config")})
    delivery = tmp_path / "t.csv"
    delivery.write_bytes(to_delimited(frame, encoding="utf-8"))
    dataset = _load_file(_draft_file(delivery, tmp_path)[0])
    assert [c.name for c in dataset.columns] == [
        "str_col", "pl_col", "pa_col", "date_col", "time_col", "dataset_col", "config"]
    _assert_reads_clean(delivery, dataset, 40)


def test_a_name_that_cannot_name_outputs_is_refused(home: Path, tmp_path: Path) -> None:
    delivery = tmp_path / "t.csv"
    delivery.write_bytes(to_delimited(_other_table(40), encoding="utf-8"))
    for name in ("../x", "my cases", ""):
        assert main(["schema", "draft", str(delivery), "--name", name,
                     "--out", str(tmp_path / "x.py")]) != 0
    assert not (tmp_path / "x.py").exists()


def test_library_call_matches_the_cli(home: Path, tmp_path: Path) -> None:
    delivery = tmp_path / "t.csv"
    delivery.write_bytes(to_delimited(_other_table(60), encoding="utf-8"))
    draft = draft_delivery(delivery, name="t", delivery_date=date(2026, 6, 30))
    assert dict(draft.columns)["fare_usd"] == "decimal"
    assert json.dumps(draft.columns)  # names and kinds only: printable


def test_clean_names() -> None:
    assert clean_names(["Date of Birth", "dateOfBirth", "DATE-OF-BIRTH", "2nd", "Ñandú!",
                        "€", "class", "HTTPCode", "a__b  c", "validate"],
                       reserved={"validate"}) == [
        "date_of_birth", "date_of_birth_2", "date_of_birth_3", "c_2nd", "nandu",
        "column_6", "class_col", "http_code", "a_b_c", "validate_col"]


def test_a_delivery_of_several_tables_is_drafted_one_member_at_a_time(
        home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "delivery"
    folder.mkdir()
    (folder / "trips.csv").write_bytes(to_delimited(_other_table(50), encoding="utf-8"))
    lookup = pl.DataFrame({"Code": ["001", "002", "010"], "Label": ["KQZX", "VWJY", "PLMN"]})
    (folder / "carriers.csv").write_bytes(to_delimited(lookup, encoding="utf-8"))
    assert main(["schema", "draft", str(folder), "--name", "x",
                 "--out", str(tmp_path / "x.py")]) != 0
    error = capsys.readouterr().err
    assert "trips.csv" in error and "carriers.csv" in error and "--member" in error
    assert not (tmp_path / "x.py").exists()
    path, _ = _draft_file(folder, tmp_path, "carriers", "--member", "carriers.csv")
    dataset = _load_file(path)
    assert [(c.name, c.width) for c in dataset.columns] == [("code", 3), ("label", None)]
    table = read_delivery_table(
        [m for m in open_delivery(folder).members if m.name.endswith("carriers.csv")], dataset)
    assert validate(table, dataset, DELIVERY_DATE).reasons == {}


def test_other_shape_as_a_typed_workbook(home: Path, tmp_path: Path) -> None:
    """Numbers, date-times, dates and booleans as spreadsheet cells, not text."""
    import datetime as dt

    import xlsxwriter  # type: ignore[import-untyped]

    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    sheet = book.add_worksheet("Trips")
    moment = book.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    day = book.add_format({"num_format": "dd/mm/yyyy"})
    sheet.write_row(0, 0, ["Year", "Seats sold", "Ratio", "Departed", "Day", "Flag", "Gate"])
    for r in range(1, 301):
        sheet.write_number(r, 0, 2000 + r % 20)
        sheet.write_number(r, 1, r * 3)
        sheet.write_number(r, 2, r / 7)
        sheet.write_datetime(r, 3, dt.datetime(2024, 1, 1, r % 24, r % 60), moment)
        sheet.write_datetime(r, 4, dt.datetime(2024, 1, 1) + dt.timedelta(days=r), day)
        sheet.write_boolean(r, 5, r % 3 == 0)
        sheet.write_string(r, 6, f"{r:05d}")
    book.close()
    delivery = tmp_path / "trips.xlsx"
    delivery.write_bytes(buffer.getvalue())
    dataset = _load_file(_draft_file(delivery, tmp_path, "trips")[0])
    assert [(c.name, c.kind) for c in dataset.columns] == [
        ("year", "integer"), ("seats_sold", "integer"), ("ratio", "float"),
        ("departed", "datetime"), ("day", "date"), ("flag", "bool"), ("gate", "string")]
    assert dataset.column("gate").width == 5
    _assert_reads_clean(delivery, dataset, 300)
