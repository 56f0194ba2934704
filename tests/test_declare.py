"""A dataset declared once: a pandera model is read into column specs and rules.

The reference schema is checked against the column specs it was written with by
hand before, and validates a delivery exactly like that hand-built dataset did.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Optional

import pandera.polars as pa
import polars as pl
import pytest
from pandera.api.polars.types import PolarsData
from polars.testing import assert_frame_equal

from ingest import kinds
from ingest.declare import ANNOTATIONS, dataset
from ingest.errors import UsageError
from ingest.readers import SourceTable
from ingest.schema import Column, Dataset, Features, load_dataset
from ingest.synth import generate
from ingest.validate import validate

DELIVERY = date(2026, 6, 30)
DIAGNOSIS_PATTERN = r"^[A-TV-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$"

# The reference dataset as it was written by hand, twice over, before it was declared once.
HAND_COLUMNS = (
    Column("CASE_ID", "case_id", "string", width=10),
    Column("PERS_ID", "person_id", "string", policy="pseudonymise"),
    Column("DOB", "birth_date", "date", policy="restrict", earliest=date(1900, 1, 1)),
    Column("SEX", "sex", "category"),
    Column("CNTY_FIPS", "county_fips", "string", width=5),
    Column("RPT_DT", "report_date", "date", earliest=date(2015, 1, 1), latest="delivery"),
    Column("DX_CD", "diagnosis_code", "category"),
    Column("LAB_VAL", "lab_value", "float", nullable=True),
    Column("HOSP_YN", "hospitalized", "bool"),
    Column("CMNT", "comments", "string", nullable=True, policy="restrict"),
)


def _birth_not_after_report(data: PolarsData) -> pl.LazyFrame:
    return data.lazyframe.select(
        pl.col("birth_date").is_null() | pl.col("report_date").is_null()
        | (pl.col("birth_date") <= pl.col("report_date")))


def _hand_rules(delivery_date: date) -> pa.DataFrameSchema:
    def col(name: str) -> Column:
        return next(c for c in HAND_COLUMNS if c.name == name)

    return pa.DataFrameSchema(
        {
            "case_id": pa.Column(pl.Utf8, pa.Check.str_matches(r"^[0-9]{10}$")),
            "person_id": pa.Column(pl.Utf8, pa.Check.str_matches(r"^P[0-9A-F]{8}$")),
            "birth_date": pa.Column(pl.Date, col("birth_date").range_check(delivery_date)),
            "sex": pa.Column(pl.Utf8, pa.Check.isin(["F", "M", "X", "U"])),
            "county_fips": pa.Column(pl.Utf8, pa.Check.str_matches(r"^[0-9]{5}$")),
            "report_date": pa.Column(pl.Date, col("report_date").range_check(delivery_date)),
            "diagnosis_code": pa.Column(pl.Utf8, pa.Check.str_matches(DIAGNOSIS_PATTERN)),
            "lab_value": pa.Column(pl.Float64, pa.Check.ge(0), nullable=True),
            "hospitalized": pa.Column(pl.Boolean),
            "comments": pa.Column(pl.Utf8, pa.Check.str_length(max_value=500), nullable=True),
        },
        checks=[pa.Check(_birth_not_after_report, name="birth_date_not_after_report_date")],
        strict=True, ordered=True, name="reference")


HAND_BUILT = Dataset(
    "reference", "1", HAND_COLUMNS, _hand_rules, table="CASES", unique=("case_id",),
    features=Features(labels=("hospitalized",),
                      categorical=("sex", "diagnosis_code", "county_fips"),
                      numeric=("lab_value",), derived=("age_at_report",)))


def test_the_reference_columns_are_the_ones_declared_by_hand() -> None:
    declared = load_dataset("reference")
    assert declared.columns == HAND_COLUMNS
    for part in ("name", "version", "table", "encodings", "null_tokens", "unique", "features"):
        assert getattr(declared, part) == getattr(HAND_BUILT, part), part


def _breaking(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with rows broken in every way a rule or a parser can refuse."""
    changes = [
        {"DX_CD": "U07.1"}, {"DOB": "02/30/1980"}, {"DOB": "12/31/1899"},
        {"DOB": "03/05/2020", "RPT_DT": "03/04/2020"}, {"RPT_DT": "12/31/2014"},
        {"RPT_DT": "07/01/2026"}, {"LAB_VAL": "-0.1"}, {"LAB_VAL": "abc"}, {"SEX": "Q"},
        {"HOSP_YN": "yes"}, {"HOSP_YN": ""}, {"CNTY_FIPS": "1001A"}, {"CNTY_FIPS": "1001"},
        {"CASE_ID": "12345-6789"}, {"PERS_ID": "p0000abcd"}, {"CMNT": "x" * 501},
        {"CASE_ID": frame["CASE_ID"][0]}, {"DOB": "", "RPT_DT": "", "SEX": ""},
        {"RPT_DT": "06/30/2026", "DOB": "02/29/24"},
    ]
    broken = [frame.slice(i + 1, 1).with_columns(
        **{k: pl.lit(v, dtype=pl.Utf8) for k, v in change.items()})
        for i, change in enumerate(changes)]
    return pl.concat([frame, *broken])


def test_a_declared_dataset_validates_exactly_like_the_hand_built_one() -> None:
    frame, _ = generate(3_000, seed=11, delivery_date=DELIVERY)
    source = SourceTable("cases.csv", "csv", _breaking(frame))
    by_hand = validate(source, HAND_BUILT, DELIVERY)
    declared = validate(source, load_dataset("reference"), DELIVERY)
    assert by_hand.rows_quarantined > 20  # the broken rows and the generator's own
    assert declared.reasons == by_hand.reasons
    assert declared.repairs == by_hand.repairs
    assert_frame_equal(declared.accepted, by_hand.accepted)
    assert_frame_equal(declared.quarantined, by_hand.quarantined)


@pytest.mark.parametrize(("annotation", "kind"), [
    (str, "string"), (pl.Utf8, "string"), (pl.String, "string"),
    (pl.Categorical, "category"), (pl.Float64, "float"), (float, "float"),
    (pl.Boolean, "bool"), (pl.Date, "date"), (pl.Int64, "integer"), (pl.Decimal, "decimal"),
    (pl.Datetime, "datetime"), (pl.Time, "time"),
])
def test_the_annotation_gives_the_kind(annotation: object, kind: str) -> None:
    model = type("One", (pa.DataFrameModel,), {
        "__annotations__": {"value": annotation},
        "value": pa.Field(metadata={"source": "VALUE"})})
    assert dataset(model, name="one", version="1").columns == (
        Column("VALUE", "value", kind),)  # type: ignore[arg-type]


def test_every_kind_has_an_annotation() -> None:
    assert sorted(set(ANNOTATIONS.values())) == sorted(kinds.KINDS)


class Visits(pa.DataFrameModel):
    visit_id: str = pa.Field(str_matches=r"^V[0-9]{6}$", unique=True,
                             metadata={"source": "Visit ID", "policy": "pseudonymise"})
    ward: pl.Categorical = pa.Field(isin=["A", "B"], metadata={"source": "WARD", "width": 1})
    admitted: pl.Date = pa.Field(metadata={"source": "ADMIT", "date_formats": ["%Y-%m-%d"],
                                           "earliest": date(2020, 1, 1)})
    discharged: pl.Date = pa.Field(nullable=True, metadata={
        "source": "DISCH", "date_formats": ("%Y-%m-%d",), "latest": "delivery"})
    stay_days: pl.Int64 = pa.Field(nullable=True, metadata={"source": "LOS", "minimum": 0,
                                                            "maximum": 365})
    charge: pl.Decimal = pa.Field(metadata={"source": "CHARGE", "precision": 10, "scale": 2})
    seen_at: pl.Datetime = pa.Field(metadata={"source": "SEEN", "timezone": "UTC"})
    seen_time: pl.Time = pa.Field(nullable=True, metadata={"source": "SEEN_T"})
    icu: pl.Boolean = pa.Field(metadata={"source": "ICU", "true_values": ("1",),
                                         "false_values": ("0",)})
    note: str = pa.Field(nullable=True, metadata={"source": "NOTE", "policy": "drop"})

    @pa.dataframe_check
    def discharged_not_before_admitted(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("discharged").is_null() | (pl.col("discharged") >= pl.col("admitted")))


VISITS = dataset(Visits, name="visits", version="2", table="VISITS", unique=("ward",),
                 null_tokens=("", "-"), features=Features(labels=("icu",)))


def test_the_derived_columns_equal_the_declaration() -> None:
    assert VISITS.columns == (
        Column("Visit ID", "visit_id", "string", policy="pseudonymise"),
        Column("WARD", "ward", "category", width=1),
        Column("ADMIT", "admitted", "date", date_formats=("%Y-%m-%d",),
               earliest=date(2020, 1, 1)),
        Column("DISCH", "discharged", "date", nullable=True, date_formats=("%Y-%m-%d",),
               latest="delivery"),
        Column("LOS", "stay_days", "integer", nullable=True, minimum=0, maximum=365),
        Column("CHARGE", "charge", "decimal", precision=10, scale=2),
        Column("SEEN", "seen_at", "datetime", timezone="UTC"),
        Column("SEEN_T", "seen_time", "time", nullable=True),
        Column("ICU", "icu", "bool", true_values=("1",), false_values=("0",)),
        Column("NOTE", "note", "string", nullable=True, policy="drop"),
    )
    assert (VISITS.name, VISITS.version, VISITS.table) == ("visits", "2", "VISITS")
    # a field's unique=True and the argument's, in the model's order
    assert VISITS.unique == ("visit_id", "ward")
    assert VISITS.null_tokens == ("", "-")
    assert VISITS.encodings == Dataset("x", "1", (), _hand_rules).encodings


def test_a_declared_dataset_of_every_kind_validates_typed_values() -> None:
    visits = dataset(Visits, name="visits", version="2")
    good = {"Visit ID": "V000001", "WARD": "A", "ADMIT": "2024-01-01", "DISCH": "2024-01-03",
            "LOS": "2", "CHARGE": "12.5", "SEEN": "2024-01-01 10:00:00+01:00",
            "SEEN_T": "13:45", "ICU": "1", "NOTE": "-"}
    rows = [good, good | {"Visit ID": "V000002", "LOS": "366"},
            good | {"Visit ID": "V000003", "CHARGE": "1.234"},
            good | {"Visit ID": "V000004", "DISCH": "2023-12-31"},
            good | {"Visit ID": "V000005", "LOS": "", "SEEN_T": "", "DISCH": ""},
            good | {"Visit ID": "V000001"}]
    result = validate(SourceTable("t.csv", "csv", pl.DataFrame(rows)), visits,
                      date(2024, 6, 1))
    assert result.quarantined["_reasons"].to_list() == [
        "stay_days:in_range", "charge:decimal_too_many_places",
        "discharged_not_before_admitted", "visit_id:duplicate"]
    accepted = result.accepted
    assert accepted.schema == pl.Schema({
        "visit_id": pl.Utf8, "ward": pl.Utf8, "admitted": pl.Date, "discharged": pl.Date,
        "stay_days": pl.Int64, "charge": pl.Decimal(10, 2),
        "seen_at": pl.Datetime("us", "UTC"), "seen_time": pl.Time, "icu": pl.Boolean,
        "note": pl.Utf8})
    assert accepted["stay_days"].to_list() == [2, None]
    assert str(accepted["charge"][0]) == "12.50"
    assert accepted["seen_at"][0].isoformat() == "2024-01-01T09:00:00+00:00"


def _rule_failures(schema: pa.DataFrameSchema, frame: pl.DataFrame) -> set[str]:
    import pandera.errors

    try:
        schema.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        # rule names without their arguments, as quarantine reasons carry them
        checks = [k.split("(", 1)[0] for k in cases["check"]]
        return {f"{c}:{k}" if c else k for c, k in zip(cases["column"], checks, strict=True)}
    return set()


SIMPLE = {"CASE_ID": "0000000001", "PERS_ID": "P0000ABCD", "DOB": "01/02/1980", "SEX": "F",
          "CNTY_FIPS": "01001", "RPT_DT": "03/04/2020", "DX_CD": "A01.1", "LAB_VAL": "1.5",
          "HOSP_YN": "N", "CMNT": ""}


def _reasons(dataset_: Dataset, rows: list[dict[str, str]], when: date) -> list[str]:
    result = validate(SourceTable("t.csv", "csv", pl.DataFrame(rows)), dataset_, when)
    return result.quarantined["_reasons"].to_list()


def test_a_cross_column_check_is_a_reason_named_after_its_method() -> None:
    class Pairs(pa.DataFrameModel):
        low: pl.Float64 = pa.Field(metadata={"source": "LOW"})
        high: pl.Float64 = pa.Field(metadata={"source": "HIGH"})

        @pa.dataframe_check
        def low_not_above_high(cls, data: PolarsData) -> pl.LazyFrame:
            return data.lazyframe.select(pl.col("low") <= pl.col("high"))

    pairs = dataset(Pairs, name="pairs", version="1")
    rows = [{"LOW": "1", "HIGH": "2"}, {"LOW": "3", "HIGH": "2"}, {"LOW": "2", "HIGH": "2"}]
    assert _reasons(pairs, rows, DELIVERY) == ["low_not_above_high"]


def test_a_custom_column_check_is_a_reason_named_after_its_column_and_method() -> None:
    class Codes(pa.DataFrameModel):
        code: str = pa.Field(metadata={"source": "CODE"})

        @pa.check("code")
        @classmethod
        def upper_case(cls, data: PolarsData) -> pl.LazyFrame:
            return data.lazyframe.select(pl.col(data.key) == pl.col(data.key).str.to_uppercase())

    codes = dataset(Codes, name="codes", version="1")
    assert _reasons(codes, [{"CODE": "AB"}, {"CODE": "ab"}], DELIVERY) == ["code:upper_case"]


def test_a_date_declared_to_end_at_the_delivery_moves_with_it() -> None:
    reference = load_dataset("reference")
    late = [SIMPLE, SIMPLE | {"CASE_ID": "0000000002", "RPT_DT": "07/01/2026"}]
    assert _reasons(reference, late, date(2026, 6, 30)) == ["report_date:in_range"]
    assert _reasons(reference, late, date(2026, 7, 1)) == []
    # only earliest: a lower bound, whatever the delivery
    early = [SIMPLE | {"DOB": "12/31/1899"}]
    assert _reasons(reference, early, date(2026, 7, 1)) == [
        "birth_date:greater_than_or_equal_to"]


def test_the_declared_ranges_are_rules_of_the_clean_table() -> None:
    typed = pl.DataFrame({
        "visit_id": ["V000001"], "ward": ["A"], "admitted": [date(2020, 1, 1)],
        "discharged": [date(2024, 1, 2)], "stay_days": pl.Series([366], dtype=pl.Int64),
    })

    def failures(delivery_date: date) -> set[str]:
        schema = VISITS.rules(delivery_date)
        return _rule_failures(schema.remove_columns(
            [c for c in schema.columns if c not in typed.columns]), typed)

    assert failures(date(2024, 1, 1)) == {"stay_days:in_range",
                                         "discharged:less_than_or_equal_to"}
    assert failures(date(2024, 1, 2)) == {"stay_days:in_range"}


def test_unique_keeps_the_first_row_and_quarantines_the_repeat() -> None:
    class Codes(pa.DataFrameModel):
        code: str = pa.Field(unique=True, metadata={"source": "CODE"})

    codes = dataset(Codes, name="codes", version="1")
    result = validate(SourceTable("t.csv", "csv", pl.DataFrame({"CODE": ["a", "b", "a"]})),
                      codes, DELIVERY)
    assert result.accepted["code"].to_list() == ["a", "b"]
    assert result.quarantined["_reasons"].to_list() == ["code:duplicate"]
    assert result.quarantined["_first_row"].to_list() == [1]


def _model(annotation: object, field: object) -> type[pa.DataFrameModel]:
    return type("Bad", (pa.DataFrameModel,), {
        "__annotations__": {"good": str, "lab_value": annotation},
        "good": pa.Field(metadata={"source": "GOOD"}), "lab_value": field})


@pytest.mark.parametrize(("annotation", "field", "says"), [
    (pl.Float64, pa.Field(), "no source name"),
    (pl.Float64, pa.Field(metadata={"policy": "keep"}), "no source name"),
    (pl.Float64, pa.Field(metadata={"source": " "}), "no source name"),
    (pl.Float64, pa.Field(metadata={"source": "LAB", "witdh": 5}),
     "unknown metadata key 'witdh'"),
    (pl.Float64, pa.Field(metadata={"source": "LAB", "kind": "float"}),
     "the kind comes from the field's type annotation"),
    (pl.Float64, pa.Field(metadata={"source": "LAB", "nullable": True}),
     "pa.Field(nullable=True)"),
    (pl.Float64, pa.Field(metadata={"source": "LAB", "name": "lab"}), "alias"),
    (pl.Float64, pa.Field(regex=True, metadata={"source": "LAB"}), "a regex name"),
    (pl.Int32, pa.Field(metadata={"source": "LAB"}), "Int32 is not one ingest reads"),
    (pl.Float32, pa.Field(metadata={"source": "LAB"}), "Float32 is not one ingest reads"),
    (pl.List(pl.Utf8), pa.Field(metadata={"source": "LAB"}), "is not one ingest reads"),
    (Optional[pl.Float64], pa.Field(metadata={"source": "LAB"}),  # noqa: UP045
     "pa.Field(nullable=True)"),
])
def test_a_model_ingest_cannot_read_is_refused_naming_the_field(
        annotation: object, field: object, says: str) -> None:
    with pytest.raises(UsageError) as caught:
        dataset(_model(annotation, field), name="bad", version="1")
    message = str(caught.value)
    assert "schema model Bad, field 'lab_value'" in message
    assert says in message


def test_a_decimal_or_datetime_may_carry_its_settings_in_the_annotation() -> None:
    class Typed(pa.DataFrameModel):
        charge: Annotated[pl.Decimal, 10, 2] = pa.Field(metadata={"source": "C"})
        same: Annotated[pl.Decimal, 10, 2] = pa.Field(metadata={"source": "S", "scale": 2})
        at: Annotated[pl.Datetime, "us", "UTC"] = pa.Field(metadata={"source": "T"})
        local: Annotated[pl.Datetime, "us", "UTC"] = pa.Field(
            metadata={"source": "L", "timezone": "Europe/Oslo"})

    assert dataset(Typed, name="typed", version="1").columns == (
        Column("C", "charge", "decimal", precision=10, scale=2),
        Column("S", "same", "decimal", precision=10, scale=2),
        Column("T", "at", "datetime", timezone="UTC"),
        Column("L", "local", "datetime", timezone="Europe/Oslo"))


@pytest.mark.parametrize(("annotation", "metadata", "says"), [
    (Annotated[pl.Decimal, 10, 2], {"scale": 3}, "its type declares scale 2, its metadata 3"),
    (Annotated[pl.Datetime, "ns", None], {}, "microseconds"),
    (Annotated[pl.Datetime, "us", "Europe/Oslo"], {}, "kept in UTC"),
])
def test_a_setting_declared_twice_differently_is_refused(annotation: object, metadata: dict,
                                                        says: str) -> None:
    model = _model(annotation, pa.Field(metadata={"source": "LAB", **metadata}))
    with pytest.raises(UsageError, match="field 'lab_value'") as caught:
        dataset(model, name="bad", version="1")
    assert says in str(caught.value)


@pytest.mark.parametrize(("options", "says"), [
    ({"unique": ("lab",)}, "unique names lab, not a field"),
    ({"features": Features(labels=("nope",))}, "features.labels names nope"),
    ({"features": Features(numeric=("good", "x"))}, "features.numeric names x"),
])
def test_a_dataset_naming_a_column_the_model_lacks_is_refused(options: dict,
                                                             says: str) -> None:
    model = _model(pl.Float64, pa.Field(metadata={"source": "LAB"}))
    with pytest.raises(UsageError, match=says):
        dataset(model, name="bad", version="1", **options)


def test_only_a_model_is_a_declaration() -> None:
    with pytest.raises(UsageError, match="DataFrameModel"):
        dataset(pa.DataFrameSchema({}), name="x", version="1")  # type: ignore[arg-type]


def test_the_worked_example_in_the_module_docstring_runs() -> None:
    import textwrap

    import ingest.declare

    doc = ingest.declare.__doc__ or ""
    example = textwrap.dedent(doc.split("::\n", 1)[1].split("\nWhat comes from where", 1)[0])
    scope: dict = {}
    exec(compile(example, "ingest/declare.py", "exec", dont_inherit=True), scope)  # noqa: S102
    declared = scope["DATASET"]
    assert [c.kind for c in declared.columns] == ["string", "category", "date", "date",
                                                  "integer"]
    assert declared.unique == ("case_id",)
    late = {"CASE_ID": "0000000001", "SEX": "F", "DOB": "01/02/1980", "RPT_DT": "07/01/2026",
            "LOS": ""}
    assert _reasons(declared, [late], date(2026, 6, 30)) == ["report_date:less_than_or_equal_to"]
