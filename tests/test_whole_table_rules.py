"""A rule about the table as a whole that a delivery fails refuses the delivery.

pandera reports such a rule's failure (one answer for the table: a mean, a count of
distinct values) as one case at row 0. Read as a row's failure it quarantined the
first row alone and accepted the rest. The rule names no row, so the delivery is
refused naming it, and nothing is published. A rule that fails on the first row
alone still quarantines that row.
"""

from __future__ import annotations

from pathlib import Path

import pandera.polars as pa
import polars as pl
import pytest
from pandera.api.polars.types import PolarsData

from ingest.declare import dataset
from ingest.errors import IngestError, ValidationRejected
from ingest.pipeline import run_delivery
from ingest.readers import SourceTable
from ingest.schema import Dataset
from ingest.synth import generate, to_delimited
from ingest.validate import validate
from ingest.validate.whole import refuse_whole_table_failures
from schemas.reference import Cases

from conftest import DELIVERY_DATE


class FewSexes(Cases):
    """A column check reducing the column to one answer, failed by the delivery."""

    @pa.check("sex")
    @classmethod
    def at_most_one_sex(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col(data.key).n_unique() <= 1)


class LowMean(Cases):
    """A dataframe check reducing the table to one answer, failed by the delivery."""

    @pa.dataframe_check
    @classmethod
    def mean_lab_value_below_one(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("lab_value").mean() < 1)


class NotTheFirstCase(Cases):
    """A row-wise rule that the first row alone breaks."""

    @pa.dataframe_check
    @classmethod
    def not_the_first_case(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("case_id") != pl.col("case_id").first())


def _declared(model: type[pa.DataFrameModel]) -> Dataset:
    return dataset(model, name=model.__name__.lower(), version="1", table="CASES")


@pytest.fixture(scope="module")
def delivery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame, _ = generate(2_000, seed=3, delivery_date=DELIVERY_DATE)
    folder = tmp_path_factory.mktemp("whole") / "delivery"
    folder.mkdir()
    (folder / "cases.csv").write_bytes(to_delimited(frame))
    return folder


@pytest.mark.parametrize(("model", "rule"), [
    pytest.param(FewSexes, "sex:at_most_one_sex", id="aggregate-column-check"),
    pytest.param(LowMean, "mean_lab_value_below_one", id="aggregate-dataframe-check"),
])
def test_a_failed_rule_about_the_whole_table_refuses_the_delivery(
        home: Path, delivery: Path, tmp_path: Path, model: type[pa.DataFrameModel],
        rule: str) -> None:
    out = tmp_path / "out"
    with pytest.raises(ValidationRejected) as caught:
        run_delivery(delivery, out=out, delivery_date=DELIVERY_DATE,
                     schema=_declared(model))
    message = str(caught.value)
    assert f"'{rule}'" in message and "table as a whole" in message
    assert "column types" not in message
    assert not out.exists() or not any(out.rglob("*.parquet"))  # nothing published


def test_a_rule_that_the_first_row_alone_breaks_quarantines_that_row(
        home: Path, delivery: Path, tmp_path: Path) -> None:
    import ingest

    plain = run_delivery(delivery, out=tmp_path / "plain", delivery_date=DELIVERY_DATE,
                         schema=_declared(Cases))
    first = pl.read_csv(delivery / "cases.csv", n_rows=1, infer_schema=False,
                        encoding="utf8-lossy")[0, 0]
    accepted = ingest.load(plain.output_dir, columns=["case_id"])["case_id"]
    assert accepted[0] == first  # the first row is good under the reference rules
    summary = run_delivery(delivery, out=tmp_path / "out", delivery_date=DELIVERY_DATE,
                           schema=_declared(NotTheFirstCase))
    assert summary.quarantine_reasons["not_the_first_case"] == 1
    assert summary.rows_accepted == plain.rows_accepted - 1
    assert summary.rows_quarantined == plain.rows_quarantined + 1


# --- at the level of validation: which failures are the table's and which a row's ---------

DELIVERY = DELIVERY_DATE


class Small(pa.DataFrameModel):
    """A small table of its own: a number and a text."""

    a: int = pa.Field(metadata={"source": "A"})
    b: str = pa.Field(nullable=True, metadata={"source": "B"})

    @pa.check("a")
    @classmethod
    def positive(cls, data: PolarsData) -> pl.LazyFrame:  # row-wise, vectorised
        return data.lazyframe.select(pl.col(data.key) > 0)

    @pa.check("b", element_wise=True)
    @classmethod
    def not_x(cls, value: str | None) -> bool:  # row-wise, one value at a time
        return value != "x"


class SmallAndFew(Small):
    @pa.dataframe_check
    @classmethod
    def fewer_than_ten_rows(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.len() < 10)


class SmallAndLowMean(SmallAndFew):
    @pa.check("a")
    @classmethod
    def mean_below_three(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col(data.key).mean() < 3)


def _source(a: list[int], b: list[str] | None = None) -> SourceTable:
    b = b if b is not None else ["y"] * len(a)
    return SourceTable("t.csv", "csv", pl.DataFrame({"A": [str(v) for v in a], "B": b}))


def _small(model: type[pa.DataFrameModel], name: str = "small") -> Dataset:
    return dataset(model, name=name, version="1")


def test_a_column_rule_failed_by_the_first_row_alone_quarantines_it() -> None:
    # one failure case, at row 0: what a whole-table rule also looks like
    result = validate(_source([0, 1, 2, 3, 4]), _small(Small), DELIVERY)
    assert (result.rows_accepted, result.rows_quarantined) == (4, 1)
    assert result.reasons == {"a:positive": 1}
    assert result.quarantined["_row"].to_list() == [1]


def test_a_value_by_value_rule_failed_by_the_first_row_alone_quarantines_it() -> None:
    result = validate(_source([1, 2, 3], ["x", "y", "z"]), _small(Small), DELIVERY)
    assert (result.rows_accepted, result.rows_quarantined) == (2, 1)
    assert result.reasons == {"b:not_x": 1}


@pytest.mark.parametrize(("model", "a", "rule"), [
    pytest.param(SmallAndLowMean, [5, 6], "a:mean_below_three", id="two-rows-column-rule"),
    pytest.param(SmallAndFew, list(range(1, 13)), "fewer_than_ten_rows",
                 id="twelve-rows-table-rule"),
])
def test_a_whole_table_rule_refuses_even_two_rows(model: type[pa.DataFrameModel],
                                                  a: list[int], rule: str) -> None:
    with pytest.raises(ValidationRejected, match=f"'{rule}'"):
        validate(_source(a), _small(model), DELIVERY)


def test_the_refusal_names_every_whole_table_rule_failed() -> None:
    with pytest.raises(ValidationRejected) as caught:
        validate(_source(list(range(11, 23))), _small(SmallAndLowMean), DELIVERY)
    assert str(caught.value) == (
        "the delivery fails 'a:mean_below_three', 'fewer_than_ten_rows', a rule about the "
        "table as a whole (it gives one answer for the table, not one per row), so no row "
        "can be set apart for it: the delivery is refused and nothing is published. Check "
        "the delivery against that rule, or change the rule in the schema module")


def test_a_dataset_named_as_its_column_still_has_its_table_rules_told_apart() -> None:
    # pandera names a table rule's failure by the schema's name, which is here also a
    # column's name: the table rule must not be taken for that column's row-wise rule
    with pytest.raises(ValidationRejected, match="'fewer_than_ten_rows'"):
        validate(_source(list(range(1, 13))), _small(SmallAndFew, name="a"), DELIVERY)


class _Once:
    """A rule that can be run once only (it reads something gone by the second run)."""

    def __init__(self, fails: pl.Expr) -> None:
        self.fails, self.calls = fails, 0

    def __call__(self, data: PolarsData) -> pl.LazyFrame:
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("the rule's source is gone")
        return data.lazyframe.select(~self.fails)


def _schema_with(check: pa.Check, rows: list[int]) -> tuple[pa.DataFrameSchema, pl.DataFrame,
                                                             pl.DataFrame]:
    schema = pa.DataFrameSchema({"a": pa.Column(pl.Int64)}, checks=[check], name="t")
    clean = pl.DataFrame({"a": rows})
    try:
        schema.validate(clean, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = pl.DataFrame(errors.failure_cases).with_columns(pl.col("check").alias("rule"))
        return schema, clean, cases
    raise AssertionError("the rule did not fail")


def test_a_table_rule_that_cannot_be_run_again_is_refused() -> None:
    once = _Once(pl.len() >= 10)
    schema, clean, cases = _schema_with(pa.Check(once, name="once"), list(range(12)))
    with pytest.raises(ValidationRejected, match="'once'"):
        refuse_whole_table_failures(schema, clean, cases)


def test_a_rule_failed_by_one_later_row_is_that_row_s_without_being_run_again() -> None:
    once = _Once(pl.col("a") == 5)
    schema, clean, cases = _schema_with(pa.Check(once, name="once"), list(range(12)))
    assert cases["index"].to_list() == [5]
    refuse_whole_table_failures(schema, clean, cases)  # not refused: row 5 is named
    assert once.calls == 1


def test_a_one_row_table_is_its_row() -> None:
    once = _Once(pl.len() >= 1)
    schema, clean, cases = _schema_with(pa.Check(once, name="once"), [7])
    refuse_whole_table_failures(schema, clean, cases)  # the one row takes the reason
    assert once.calls == 1


@pytest.mark.parametrize(("context", "column", "number"), [
    ("Column", "not_a_column", 0), ("Column", "a", 1), ("Column", "a", -1),
    ("DataFrameSchema", "t", 1), ("Index", "a", 0)],
    ids=["unknown-column", "past-the-last-check", "negative", "past-the-table-checks",
         "unknown-context"])
def test_a_failure_naming_a_rule_the_schema_does_not_hold_is_refused(
        context: str, column: str, number: int) -> None:
    schema = pa.DataFrameSchema({"a": pa.Column(pl.Int64, pa.Check.gt(0))},
                                checks=[pa.Check(lambda d: d.lazyframe.select(pl.len() > 0))],
                                name="t")
    cases = pl.DataFrame({"schema_context": [context], "column": [column],
                          "check_number": [number], "index": [0], "rule": ["r"]},
                         schema_overrides={"check_number": pl.Int32, "index": pl.Int32})
    with pytest.raises(ValidationRejected, match="'r'"):
        refuse_whole_table_failures(schema, pl.DataFrame({"a": [1, 2, 3]}), cases)


# --- a plain True/False rule failed beside rules failing rows -------------------------------

class Plain(pa.DataFrameModel):
    """A rule failing rows (``b`` in ``y``) beside rules answering one plain bool."""

    a: int = pa.Field(metadata={"source": "A"})
    b: str = pa.Field(isin=["y"], metadata={"source": "B"})


class PlainFalse(Plain):
    @pa.dataframe_check
    @classmethod
    def never(cls, data: PolarsData) -> bool:
        return False


class PlainFalseColumn(PlainFalse):
    @pa.check("a")
    @classmethod
    def not_either(cls, data: PolarsData) -> bool:  # reads its column: one answer
        return bool(data.lazyframe.select(pl.col(data.key).max()).collect().item() > 100)


_RUNS: dict[str, int] = {}


class PlainFalseAndOnce(PlainFalse):
    @pa.dataframe_check
    @classmethod
    def passes_once(cls, data: PolarsData) -> pl.LazyFrame:
        """Passes, and cannot be run a second time (what it reads is gone by then)."""
        _RUNS["passes_once"] = _RUNS.get("passes_once", 0) + 1
        if _RUNS["passes_once"] > 1:
            raise RuntimeError("the rule's source is gone")
        return data.lazyframe.select(pl.lit(True))


class PlainTrue(Plain):
    @pa.dataframe_check
    @classmethod
    def always(cls, data: PolarsData) -> bool:
        return True


@pytest.mark.parametrize(("model", "names", "b"), [
    pytest.param(PlainFalse, "'never'", ["y", "x", "y"], id="table-rule"),
    pytest.param(PlainFalse, "'never'", ["y", "x"], id="two-rows"),
    pytest.param(PlainFalseColumn, "'never', 'a:not_either'", ["y", "x", "y"],
                 id="table-and-column-rules"),
    pytest.param(PlainFalseAndOnce, "'never'", ["y", "x", "y"],
                 id="beside-a-rule-that-cannot-run-again"),
])
def test_a_plain_false_rule_beside_failing_rows_is_named(model: type[pa.DataFrameModel],
                                                         names: str, b: list[str]) -> None:
    # pandera cannot gather these failure cases (a bool beside text values) and raises
    # a polars SchemaError that names no rule; the rule is named all the same, and only
    # the rules known to have failed
    _RUNS.clear()
    with pytest.raises(ValidationRejected) as caught:
        validate(_source(list(range(1, len(b) + 1)), b), _small(model), DELIVERY)
    assert str(caught.value) == (
        f"the delivery fails {names}, a rule about the table as a whole (it gives one "
        "answer for the table, not one per row), so no row can be set apart for it: the "
        "delivery is refused and nothing is published. Check the delivery against that "
        "rule, or change the rule in the schema module")


def test_a_plain_true_rule_leaves_the_failing_rows_to_the_quarantine() -> None:
    result = validate(_source([1, 2, 3], ["y", "x", "y"]), _small(PlainTrue), DELIVERY)
    assert result.reasons == {"b:isin": 1}
    assert result.quarantined["_row"].to_list() == [2]


def test_on_one_row_pandera_s_own_failure_is_reported_as_such() -> None:
    # one row: its one answer could be the row's as well as the table's, so no rule is
    # named as the table's; the failure is refused, as any failure inside validation
    with pytest.raises(IngestError) as caught:
        validate(_source([1], ["x"]), _small(PlainFalse), DELIVERY)
    assert str(caught.value) == ("validation failed (SchemaError); the original message is "
                                 "withheld because it may quote data")
