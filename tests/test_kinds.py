"""Kinds integer, decimal, datetime and time, end to end: parsed from CSV text and
workbook cells, quarantined with their reasons, and kept by every output (Parquet
through ``ingest.load`` as polars, pandas and Arrow; JSON Lines opened with the
``age`` command; ``ingest cat --format arrow``)."""

from __future__ import annotations

import io
import json
import os
import subprocess
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path

import pandera.polars as pa
import polars as pl
import pyarrow as pyarrow
import pytest

import ingest
from ingest.kinds import KINDS
from ingest.readers import SourceTable
from ingest.schema import Column, Dataset, Features
from ingest.validate import validate

from conftest import ROOT

DELIVERY_DATE = date(2026, 6, 30)
COLUMNS = (
    Column("ID", "id", "string"),
    Column("YEAR", "year", "integer", minimum=1900, maximum=2100),
    Column("FLIGHT", "flight", "integer", nullable=True),
    Column("AMOUNT", "amount", "decimal", precision=10, scale=2, nullable=True),
    Column("LAB", "lab", "decimal", precision=6, scale=3, nullable=True),
    Column("SEEN", "seen", "datetime", nullable=True),
    Column("STAMP", "stamp", "datetime", timezone="America/New_York", nullable=True),
    Column("AT", "at", "time", nullable=True),
    Column("RATE", "rate", "float", nullable=True),
)
TYPES = {"id": pl.Utf8, "year": pl.Int64, "flight": pl.Int64,
         "amount": pl.Decimal(10, 2), "lab": pl.Decimal(6, 3),
         "seen": pl.Datetime("us"), "stamp": pl.Datetime("us", "UTC"), "at": pl.Time,
         "rate": pl.Float64}


def _rules(delivery_date: date) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {c.name: pa.Column(TYPES[c.name], [k for k in [c.range_check(delivery_date)] if k],
                           nullable=c.nullable) for c in COLUMNS},
        strict=True, ordered=True, name="kinds")


DATASET = Dataset("kinds", "1", COLUMNS, _rules, unique=("id",),
                  features=Features(numeric=("year", "amount", "lab")))
GOOD = {"ID": "r0", "YEAR": "2013", "FLIGHT": "1545", "AMOUNT": "12.30", "LAB": "0.125",
        "SEEN": "2013-01-01 05:17:00", "STAMP": "2013-01-01T05:17:00Z", "AT": "05:17",
        "RATE": "0.5"}


def _validate(*changes: dict[str, str]):
    rows = [GOOD, *(GOOD | {"ID": f"r{i + 1}"} | c for i, c in enumerate(changes))]
    return validate(SourceTable("t.csv", "csv", pl.DataFrame(rows)), DATASET, DELIVERY_DATE)


@pytest.mark.parametrize(("change", "reason"), [
    ({"YEAR": "2013.5"}, "year:not_an_integer"),
    ({"YEAR": "2013.0"}, "year:not_an_integer"),  # no float spelling taken silently
    ({"YEAR": "twenty"}, "year:not_an_integer"),
    ({"YEAR": "99999999999999999999"}, "year:not_an_integer"),  # beyond Int64
    ({"YEAR": "1899"}, "year:in_range"),
    ({"YEAR": "2101"}, "year:in_range"),
    ({"YEAR": ""}, "year:not_nullable"),
    ({"AMOUNT": "12.345"}, "amount:decimal_too_many_places"),  # refused, never rounded
    ({"AMOUNT": "123456789.00"}, "amount:decimal_too_many_digits"),
    ({"AMOUNT": "12,30"}, "amount:not_a_decimal"),
    ({"AMOUNT": "1e3"}, "amount:not_a_decimal"),
    ({"LAB": "0.1255"}, "lab:decimal_too_many_places"),
    ({"SEEN": "2013-02-30 05:17:00"}, "seen:not_a_datetime"),
    ({"SEEN": "2013-01-01T05:17:00+01:00"}, "seen:datetime_zone_not_declared"),
    ({"STAMP": "2013-03-10 02:30:00"}, "stamp:not_a_datetime"),  # a New York hour that never was
    ({"AT": "25:00"}, "at:not_a_time"),
    ({"AT": "noon"}, "at:not_a_time"),
])
def test_a_value_that_does_not_parse_is_quarantined_with_its_reason(change, reason) -> None:
    result = _validate(change)
    assert result.quarantined["_reasons"].to_list() == [reason]
    assert result.reasons == {reason: 1}
    assert result.rows_accepted == 1


def test_text_is_parsed_exactly_into_each_kind() -> None:
    result = _validate(
        {"YEAR": " 2014 ", "FLIGHT": "", "AMOUNT": "-0.5", "LAB": "12.340",
         "SEEN": "2013-01-01T05:17:00.25", "STAMP": "2013-07-01 08:00:00", "AT": "23:59:59",
         "RATE": "NA"},
        {"FLIGHT": "+7", "AMOUNT": "99999999.99", "LAB": "-.5", "SEEN": "01/02/2013 13:45",
         "STAMP": "2013-01-01T05:17:00-05:00", "AT": "00:00:00.5"})
    assert result.reasons == {}
    df = result.accepted
    assert dict(df.schema) == TYPES
    assert df["year"].to_list() == [2013, 2014, 2013]
    assert df["flight"].to_list() == [1545, None, 7]
    assert df["amount"].to_list() == [Decimal("12.30"), Decimal("-0.50"),
                                      Decimal("99999999.99")]
    assert df["lab"].to_list() == [Decimal("0.125"), Decimal("12.340"), Decimal("-0.500")]
    assert df["seen"].to_list() == [datetime(2013, 1, 1, 5, 17), datetime(2013, 1, 1, 5, 17, 0,
                                    250000), datetime(2013, 1, 2, 13, 45)]
    utc = UTC
    # zone-aware values converted to UTC; naive ones read in the declared zone (EDT)
    assert df["stamp"].to_list() == [datetime(2013, 1, 1, 5, 17, tzinfo=utc),
                                     datetime(2013, 7, 1, 12, 0, tzinfo=utc),
                                     datetime(2013, 1, 1, 10, 17, tzinfo=utc)]
    assert df["at"].to_list() == [time(5, 17), time(23, 59, 59), time(0, 0, 0, 500000)]


def test_typed_cells_map_to_each_kind() -> None:
    """Cells a workbook or database gives typed: whole floats are integers, a fraction
    is not; a float decimal is read by its shortest spelling; dates become midnight."""
    frame = pl.DataFrame({
        "ID": ["a", "b", "c"], "YEAR": [2013.0, 2014.5, 1e300], "FLIGHT": [1, None, 3],
        "AMOUNT": [12.3, 0.1 + 0.2, 7.0], "LAB": [1, 2, 3],
        "SEEN": [date(2013, 1, 1), date(2013, 1, 2), None],
        "STAMP": [datetime(2013, 1, 1, 5, 17), None, None],
        "AT": [time(5, 17), None, None], "RATE": [1, 2, 3]})
    result = validate(SourceTable("t.xlsx", "xlsx", frame), DATASET, DELIVERY_DATE)
    assert result.quarantined["_reasons"].to_list() == [
        "amount:decimal_too_many_places; year:not_an_integer", "year:not_an_integer"]
    df = result.accepted
    assert df["year"].to_list() == [2013]
    assert df["amount"].to_list() == [Decimal("12.30")]
    assert df["lab"].to_list() == [Decimal("1.000")]
    assert df["seen"].to_list() == [datetime(2013, 1, 1)]
    assert df["stamp"].to_list() == [datetime(2013, 1, 1, 10, 17, tzinfo=UTC)]
    assert df["at"].to_list() == [time(5, 17)]


def test_every_kind_has_a_type_a_reason_and_a_parser() -> None:
    assert set(KINDS) == {"string", "category", "float", "bool", "date", "integer",
                          "decimal", "datetime", "time"}
    # a reason names the kind that failed: only string and category share one
    reasons = [spec.reason for spec in KINDS.values() if spec.name != "category"]
    assert len(reasons) == len(set(reasons))
    for col in COLUMNS:
        assert KINDS[col.kind].dtype(col) == TYPES[col.name]


# --- end to end -----------------------------------------------------------------------------

ROWS = 300


def _delivery_frame() -> pl.DataFrame:
    rows = [GOOD | {"ID": f"r{i:04d}", "YEAR": str(1990 + i % 30),
                    "FLIGHT": "" if i % 7 == 0 else str(i),
                    "AMOUNT": f"{i}.{i % 100:02d}", "LAB": f"0.{i % 1000:03d}",
                    "SEEN": f"2013-01-{1 + i % 28:02d} {i % 24:02d}:17:00",
                    "STAMP": f"2013-01-{1 + i % 28:02d}T{i % 24:02d}:17:00Z",
                    "AT": f"{i % 24:02d}:{i % 60:02d}"} for i in range(ROWS)]
    rows[5] |= {"AMOUNT": "12.345"}
    rows[6] |= {"YEAR": "2013.0"}
    rows[7] |= {"SEEN": "2013-01-01T05:17:00Z"}
    return pl.DataFrame(rows)


def _expected(frame: pl.DataFrame) -> dict[str, list]:
    good = frame.filter(~pl.col("ID").is_in(["r0005", "r0006", "r0007"]))
    return {
        "year": [int(v) for v in good["YEAR"]],
        "flight": [int(v) if v else None for v in good["FLIGHT"]],
        "amount": [Decimal(v) for v in good["AMOUNT"]],
        "seen": [datetime.fromisoformat(v) for v in good["SEEN"]],
        "stamp": [datetime.fromisoformat(v) for v in good["STAMP"]],
        "at": [time.fromisoformat(v) for v in good["AT"]],
    }


@pytest.fixture
def published(home: Path, tmp_path: Path):
    from ingest.crypto.openpgp import encrypt_openpgp, export_public_key
    from ingest.synth import to_delimited

    frame = _delivery_frame()
    folder = tmp_path / "delivery"
    folder.mkdir()
    (folder / "kinds.csv.gpg").write_bytes(encrypt_openpgp(
        to_delimited(frame), tmp_path / "sender", recipient_key=export_public_key(home / "gnupg")))
    summary = ingest.run_delivery(folder, schema=DATASET, out=tmp_path / "out",
                                  delivery_date=DELIVERY_DATE)
    return summary, frame


def test_csv_delivery_keeps_every_kind_in_parquet_polars_pandas_arrow(published) -> None:
    summary, frame = published
    assert summary.rows_quarantined == 3
    assert summary.quarantine_reasons == {"amount:decimal_too_many_places": 1,
                                          "seen:datetime_zone_not_declared": 1,
                                          "year:not_an_integer": 1}
    expected = _expected(frame)
    df = ingest.load(summary.output_dir)
    assert {n: df.schema[n] for n in TYPES} == TYPES
    for name, values in expected.items():
        assert df[name].to_list() == values, name

    pdf = ingest.load(summary.output_dir, as_="pandas")
    assert str(pdf["year"].dtype) == "Int64" and str(pdf["flight"].dtype) == "Int64"
    assert pdf["flight"].isna().sum() == sum(v is None for v in expected["flight"])
    assert [int(v) for v in pdf["year"]] == expected["year"]
    assert list(pdf["amount"]) == expected["amount"]  # decimal.Decimal, exact
    assert str(pdf["seen"].dtype) == "datetime64[us]"
    assert str(pdf["stamp"].dtype) == "datetime64[us, UTC]"
    assert list(pdf["at"]) == expected["at"]

    table = ingest.load(summary.output_dir, as_="arrow")
    assert table.schema.field("year").type == pyarrow.int64()
    assert table.schema.field("amount").type == pyarrow.decimal128(10, 2)
    assert table.schema.field("seen").type == pyarrow.timestamp("us")
    assert table.schema.field("stamp").type == pyarrow.timestamp("us", tz="UTC")
    assert pyarrow.types.is_time(table.schema.field("at").type)


def test_json_lines_write_integers_exact_decimals_and_iso_datetimes(published, home) -> None:
    summary, frame = published
    proc = subprocess.run(["age", "-d", "-i", str(home / "keys" / "age-identity.txt"),
                           str(Path(summary.output_dir) / "kinds.jsonl.age")],
                          capture_output=True, check=True)
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    expected = _expected(frame)
    assert len(rows) == ROWS - 3
    first = rows[0]
    assert first["year"] == 1990 and isinstance(first["year"], int)
    assert first["amount"] == "0.00" and first["lab"] == "0.000"
    assert first["seen"] == "2013-01-01T00:17:00"
    assert first["stamp"] == "2013-01-01T00:17:00+00:00"
    assert first["at"] == "00:00:00"
    assert [r["year"] for r in rows] == expected["year"]
    assert [Decimal(r["amount"]) for r in rows] == expected["amount"]
    assert [r["amount"] for r in rows] == [str(v) for v in expected["amount"]]
    assert [datetime.fromisoformat(r["seen"]) for r in rows] == expected["seen"]
    assert all("T" in r["seen"] for r in rows)


def test_ingest_cat_streams_arrow_with_the_kinds(published, home) -> None:
    summary, frame = published
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "ingest"), "cat", summary.output_dir,
                           "--format", "arrow"], capture_output=True, check=True,
                          env=os.environ | {"INGEST_HOME": str(home)})
    table = pyarrow.ipc.open_stream(io.BytesIO(proc.stdout)).read_all()
    assert table.schema.field("year").type == pyarrow.int64()
    assert table.schema.field("amount").type == pyarrow.decimal128(10, 2)
    assert table.schema.field("seen").type == pyarrow.timestamp("us")
    assert table.schema.field("stamp").type == pyarrow.timestamp("us", tz="UTC")
    assert table.column("year").to_pylist() == _expected(frame)["year"]
    assert table.column("amount").to_pylist() == _expected(frame)["amount"]


def test_feature_matrix_takes_integers_and_decimals_as_numbers(published) -> None:
    import ingest.features

    summary, frame = published
    fm = ingest.features.load(summary.output_dir)
    names = list(fm.feature_names)
    expected = _expected(frame)
    dense = fm.X.toarray()
    assert dense[:, names.index("year")].tolist() == [float(v) for v in expected["year"]]
    assert dense[:, names.index("amount")].tolist() == pytest.approx(
        [float(v) for v in expected["amount"]])


# --- workbooks --------------------------------------------------------------------------------

HEADER = ["ID", "YEAR", "FLIGHT", "AMOUNT", "LAB", "SEEN", "STAMP", "AT", "RATE"]
CELLS = [  # typed cells as a sender's tool writes them
    ["a", 2013, 1545, 12.3, 0.125, datetime(2013, 1, 1, 5, 17), datetime(2013, 1, 1, 5, 17),
     time(5, 17), 0.5],
    ["b", 2014, None, 99999999.99, 1, datetime(2013, 1, 1, 5, 17, 30, 500000),
     "2013-01-01T05:17:00Z", "06:30", 1],
    ["c", 2013.5, True, 12.345, 0.1, date(2013, 1, 2), None, time(23, 59, 59), None],
    ["d", 1e20, "x", 7, 2.5, "x", None, datetime(2013, 1, 1, 5, 17), None],
]
ACCEPTED = {
    "year": [2013, 2014],
    "flight": [1545, None],
    "amount": [Decimal("12.30"), Decimal("99999999.99")],  # never 99999999.989999995
    "lab": [Decimal("0.125"), Decimal("1.000")],
    "seen": [datetime(2013, 1, 1, 5, 17), datetime(2013, 1, 1, 5, 17, 30, 500000)],
    "stamp": [datetime(2013, 1, 1, 10, 17, tzinfo=UTC), datetime(2013, 1, 1, 5, 17, tzinfo=UTC)],
    "at": [time(5, 17), time(6, 30)],
}
REFUSED = ["amount:decimal_too_many_places; flight:not_an_integer; year:not_an_integer",
           "at:not_a_time; flight:not_an_integer; seen:not_a_datetime; year:not_an_integer"]


def _openpyxl(epoch_1904: bool) -> bytes:
    import openpyxl
    from openpyxl.utils.datetime import CALENDAR_MAC_1904

    book = openpyxl.Workbook()
    if epoch_1904:
        book.epoch = CALENDAR_MAC_1904
    sheet = book.active
    sheet.append(HEADER)
    for row in CELLS:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _xlsxwriter(epoch_1904: bool) -> bytes:
    import xlsxwriter

    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True, "date_1904": epoch_1904})
    sheet = book.add_worksheet()
    stamp = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    clock = book.add_format({"num_format": "hh:mm:ss"})
    sheet.write_row(0, 0, HEADER)
    for r, row in enumerate(CELLS, start=1):
        for c, value in enumerate(row):
            if isinstance(value, datetime | date):
                sheet.write_datetime(r, c, value, stamp)
            elif isinstance(value, time):
                sheet.write_datetime(r, c, value, clock)
            elif value is not None:
                sheet.write(r, c, value)
    book.close()
    return out.getvalue()


@pytest.mark.parametrize("epoch_1904", [False, True], ids=["1900", "1904"])
@pytest.mark.parametrize("writer", [_openpyxl, _xlsxwriter])
def test_workbook_cells_become_each_kind_exactly(writer, epoch_1904: bool) -> None:
    from ingest.media import Member
    from ingest.readers import read_member

    source = read_member(Member("kinds.xlsx", writer(epoch_1904)), DATASET)
    result = validate(source, DATASET, DELIVERY_DATE)
    assert result.quarantined["_reasons"].to_list() == REFUSED
    for name, values in ACCEPTED.items():
        assert result.accepted[name].to_list() == values, name
    assert dict(result.accepted.schema) == TYPES


# --- Access -----------------------------------------------------------------------------------

def _access_dataset(scale: int) -> Dataset:
    columns = (
        Column("A", "a", "string"),
        Column("C", "byte", "integer"),
        Column("D", "short", "integer"),
        Column("E", "long", "integer"),
        Column("F", "double", "float"),
        Column("G", "when", "datetime"),
        Column("H", "money", "decimal", precision=19, scale=scale),
        Column("I", "flag", "bool"),
    )
    types = {"a": pl.Utf8, "byte": pl.Int64, "short": pl.Int64, "long": pl.Int64,
             "double": pl.Float64, "when": pl.Datetime("us"), "money": pl.Decimal(19, scale),
             "flag": pl.Boolean}

    def rules(delivery_date: date) -> pa.DataFrameSchema:
        return pa.DataFrameSchema({n: pa.Column(t) for n, t in types.items()}, strict=True,
                                  ordered=True)

    return Dataset("access_kinds", "1", columns, rules, table="Table1")


@pytest.mark.parametrize("name", ["testV2010.accdb", "testV1997.mdb"])
def test_access_integer_currency_and_date_columns_keep_their_kinds(name: str) -> None:
    """Jackcess' test databases (tests/data/access/README.md): Byte, Integer, Long Integer,
    Double, Date/Time, Currency (mdbtools prints 3.5000) and Yes/No columns."""
    from ingest.media import Member
    from ingest.readers import read_member

    from conftest import data_fixture

    data = data_fixture("access", "thirdparty", name).read_bytes()
    exact = _access_dataset(scale=2)
    result = validate(read_member(Member(name, data), exact), exact, DELIVERY_DATE)
    assert result.reasons == {}
    df = result.accepted
    assert df["byte"].to_list() == [0, 2] and df["short"].to_list() == [0, 222]
    assert df["long"].to_list() == [0, 333333333]
    assert df["double"].to_list() == [0.0, 444.555]
    assert df["when"].to_list() == [datetime(1981, 12, 12), datetime(1974, 9, 21)]
    assert df["money"].to_list() == [Decimal("0.00"), Decimal("3.50")]
    assert df["money"].dtype == pl.Decimal(19, 2)
    assert df["flag"].to_list() == [False, True]
    # a currency with more places than the schema declares is refused, not rounded
    whole = _access_dataset(scale=0)
    result = validate(read_member(Member(name, data), whole), whole, DELIVERY_DATE)
    assert result.reasons == {"money:decimal_too_many_places": 1}
    assert result.accepted["money"].to_list() == [Decimal("0")]


def test_an_access_money_column_declared_decimal_is_read_as_text() -> None:
    """mdbtools prints Currency and Numeric exactly; a float on the way would round a
    value of more than 15 digits (Currency holds 19), so the decimal's parser gets the text."""
    from ingest.readers.access import AccessColumn, _kind

    money = Column("H", "money", "decimal", precision=19, scale=4)
    assert _kind(AccessColumn("H", "Currency", None), money) == "text"
    assert _kind(AccessColumn("H", "Numeric", 4), money) == "text"
    assert _kind(AccessColumn("H", "Currency", None), Column("H", "h", "float")) == "float"
    assert _kind(AccessColumn("E", "Long Integer", None), Column("E", "e", "integer")) == "int"


def test_parsers_alone_never_round_nor_drop_a_zone() -> None:
    """Each parser on its own (not only through the reasons that quarantine the row):
    a value it cannot hold exactly is null, never an approximation."""
    amount, seen = COLUMNS[3], COLUMNS[5]
    text = pl.Series(["12.345", "12.340", "123456789.00", "1e3"])
    parsed = pl.select(KINDS["decimal"].parse_text(pl.lit(text), amount)).to_series()
    assert parsed.to_list() == [None, Decimal("12.34"), None, None]
    stamps = pl.Series(["2013-01-01T05:17:00Z", "2013-01-01T05:17:00"])
    parsed = pl.select(KINDS["datetime"].parse_text(pl.lit(stamps), seen)).to_series()
    assert parsed.to_list() == [None, datetime(2013, 1, 1, 5, 17)]


@pytest.mark.parametrize(("settings", "says"), [
    ({"kind": "decimal", "precision": 39, "scale": 2}, "precision <= 38"),
    ({"kind": "decimal", "precision": 4, "scale": 5}, "scale <= precision"),
    ({"kind": "integer", "minimum": 10, "maximum": 1}, "minimum 10 is above maximum 1"),
    ({"kind": "datetime", "timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
])
def test_a_declaration_no_parser_could_honour_is_refused_naming_the_column(settings, says
                                                                           ) -> None:
    from ingest.errors import UsageError

    with pytest.raises(UsageError, match="column charge") as caught:
        Column("CHARGE", "charge", **settings)
    assert says in str(caught.value)
