"""A schema rule that answers for the whole table keeps a delivery off the batched path.

On record batches such a rule would answer for each batch instead (a batch's mean,
"unique" within a batch): the delivery is read whole, with a warning naming the
schema and the rule, and every output is the in-memory path's. A schema whose
rules are all row-wise stays batched. The runs below force large-delivery
handling on a small file (``stream_above_bytes=0``) with batches of a few rows.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path
from typing import Any

import pandera.polars as pa
import polars as pl
import pytest
from pandera.api.polars.types import PolarsData
from test_stream import WHOLE, _encrypted, _outputs, _same, _write

from ingest.declare import dataset
from ingest.pipeline import RunSummary, run_delivery
from ingest.schema import Dataset
from ingest.settings import load_settings
from ingest.stream.rowwise import whole_table_rule
from ingest.synth import generate, to_delimited
from schemas.reference import Cases

from conftest import DELIVERY_DATE

BATCH = 3_000
"""Bytes a batch: some twenty rows, so a rare value is missing from most batches."""


class TwiceTheMean(Cases):
    """(a) a dataframe check comparing each row with an aggregate of the column."""

    @pa.dataframe_check
    @classmethod
    def lab_value_at_most_twice_the_mean(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("lab_value").is_null()
                                     | (pl.col("lab_value") <= 2 * pl.col("lab_value").mean()))


class EverySex(Cases):
    """(b) a column check reducing the column to one answer."""

    @pa.check("sex")
    @classmethod
    def every_sex_delivered(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col(data.key).n_unique() >= 4)


class RowWise(Cases):
    """(d) custom checks, each of one row's values only, beside the builtins."""

    @pa.check("county_fips")
    @classmethod
    def five_characters(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col(data.key).str.len_chars() == 5)

    @pa.check("lab_value", element_wise=True)
    @classmethod
    def below_a_thousand(cls, value: float) -> bool:
        return value < 1000

    @pa.dataframe_check
    @classmethod
    def reported_in_or_after_birth_year(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.when(pl.col("birth_date").is_null()).then(pl.lit(True))
            .otherwise(pl.col("report_date").dt.year() >= pl.col("birth_date").dt.year()))


def _declared(model: type[pa.DataFrameModel], name: str) -> Dataset:
    return dataset(model, name=name, version="1", table="CASES")


def _pandera_unique() -> Dataset:
    """(c) pandera's own ``unique=True`` (every copy fails), not the dataset's index."""
    base = _declared(Cases, "pandera_unique")
    rules = base.rules

    def unique_person(delivery_date: date) -> pa.DataFrameSchema:
        return rules(delivery_date).update_column("person_id", unique=True)

    return dataclasses.replace(base, rules=unique_person)


@pytest.fixture(scope="module")
def delivery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame, _ = generate(3_000, seed=11, delivery_date=DELIVERY_DATE)
    return _write(tmp_path_factory.mktemp("checks") / "delivery", to_delimited(frame))


def _run(folder: Path, out: Path, schema: Dataset, batch: int | None) -> RunSummary:
    # these rules fail many rows; every row is still accounted for, in the quarantine
    settings = load_settings(stream_above_bytes=WHOLE if batch is None else 0,
                             stream_batch_bytes=batch or 1 << 26, max_quarantine_share=1.0)
    return run_delivery(folder, out=out, delivery_date=DELIVERY_DATE, settings=settings,
                        schema=schema)


def _without(outputs: dict[str, Any], warning: str) -> dict[str, Any]:
    """The outputs with the fallback's warning taken out of the manifest and counts."""
    manifest = dict(outputs["manifest"])
    manifest["warnings"] = [w for w in manifest["warnings"] if w != warning]
    counts = outputs["counts"]
    counts = (*counts[:-1], [w for w in counts[-1] if w != warning])
    return {**outputs, "manifest": manifest, "counts": counts}


WHOLE_TABLE = {
    "dataframe-check": (lambda: _declared(TwiceTheMean, "twice_the_mean"),
                        "lab_value_at_most_twice_the_mean"),
    "aggregate-column-check": (lambda: _declared(EverySex, "every_sex"),
                               "sex:every_sex_delivered"),
    "pandera-unique": (_pandera_unique,
                       "person_id:unique (pandera's own, not the dataset's unique)"),
}


@pytest.mark.parametrize("case", list(WHOLE_TABLE))
def test_a_whole_table_rule_reads_the_delivery_whole(case: str, home: Path, tmp_path: Path,
                                                     delivery: Path) -> None:
    make, rule = WHOLE_TABLE[case]
    schema = make()
    whole = _run(delivery, tmp_path / "whole", schema, None)
    asked = _run(delivery, tmp_path / "batched", schema, BATCH)
    warning = (f"schema {schema.name}: rule {rule} may depend on the whole table, not on "
               "each row alone, so the delivery is read whole rather than in record batches")
    assert "stream" not in asked.stage_seconds and "read" in asked.stage_seconds
    assert warning in asked.warnings and warning not in whole.warnings
    a, b = _outputs(whole, schema.name), _outputs(asked, schema.name)
    assert warning in b["manifest"]["warnings"]  # type: ignore[index]
    _same(a, _without(b, warning))


def test_an_encrypted_delivery_with_a_whole_table_rule_is_read_whole(
        home: Path, tmp_path: Path) -> None:
    """The rule is judged before a batch is read, while gpg is already decrypting
    into the pipe: it is stopped and the delivery decrypted again, whole."""
    frame, _ = generate(3_000, seed=11, delivery_date=DELIVERY_DATE)
    folder = _encrypted(home, tmp_path / "delivery", to_delimited(frame), tmp_path)
    schema = _declared(TwiceTheMean, "twice_the_mean")
    whole = _run(folder, tmp_path / "whole", schema, None)
    asked = _run(folder, tmp_path / "batched", schema, BATCH)
    assert "stream" not in asked.stage_seconds
    warning, = (w for w in asked.warnings if "record batches" in w)
    _same(_outputs(whole, schema.name), _without(_outputs(asked, schema.name), warning))


def test_the_whole_table_rules_change_the_answer_on_batches() -> None:
    """Each rule above answers differently on batches (here of twenty rows) than on
    the whole table, so the runs compare something."""
    frame, _ = generate(3_000, seed=11, delivery_date=DELIVERY_DATE)
    chunks = [frame.slice(i, 20) for i in range(0, frame.height, 20)]
    lab = pl.col("LAB_VAL").cast(pl.Float64, strict=False)
    whole_mean = frame.select(lab.mean()).item()
    assert any(not c.select((lab <= 2 * whole_mean) == (lab <= 2 * lab.mean())).to_series()
               .fill_null(True).all() for c in chunks)
    assert frame["SEX"].n_unique() >= 4 and any(c["SEX"].n_unique() < 4 for c in chunks)
    assert frame["PERS_ID"].is_duplicated().sum() > sum(c["PERS_ID"].is_duplicated().sum()
                                                        for c in chunks)


def test_row_wise_rules_stay_batched(home: Path, tmp_path: Path, delivery: Path) -> None:
    schema = _declared(RowWise, "row_wise")
    assert whole_table_rule(schema, DELIVERY_DATE) is None
    whole = _run(delivery, tmp_path / "whole", schema, None)
    batched = _run(delivery, tmp_path / "batched", schema, BATCH)
    assert "stream" in batched.stage_seconds and "read" not in batched.stage_seconds
    assert not any("record batches" in w for w in batched.warnings)
    _same(_outputs(whole, schema.name), _outputs(batched, schema.name))


def test_the_example_schemas_are_row_wise() -> None:
    from ingest.schema import load_dataset

    for name in ("reference", "admissions", "wards", "counties"):
        assert whole_table_rule(load_dataset(name), DELIVERY_DATE) is None, name


def _one_check(check: pa.Check, **schema: Any) -> str | None:
    """The rule :func:`whole_table_rule` names for the reference schema plus ``check``
    on ``lab_value`` (and ``schema``'s options)."""
    base = _declared(Cases, "one_check")
    rules = base.rules

    def with_check(delivery_date: date) -> pa.DataFrameSchema:
        built = rules(delivery_date)
        built = built.update_column("lab_value",
                                    checks=[*built.columns["lab_value"].checks, check])
        return pa.DataFrameSchema(built.columns, checks=built.checks, name=built.name,
                                  **schema)

    return whole_table_rule(dataclasses.replace(base, rules=with_check), DELIVERY_DATE)


def _query(expr: pl.Expr, name: str = "custom") -> pa.Check:
    return pa.Check(lambda data: data.lazyframe.select(expr), name=name)


ROW_WISE_CHECKS = {
    "builtin in_range": pa.Check.in_range(0, 10),
    "builtin isin": pa.Check.isin([1.0, 2.0]),
    "builtin str_length": pa.Check.str_length(1, 4),
    "element-wise": pa.Check(lambda v: v > 0, element_wise=True),
    "comparison of columns": _query(pl.col("lab_value") >= 0),
    "is_in constants": _query(pl.col("lab_value").is_in([1.0, 2.0])),
    "when/then": _query(pl.when(pl.col("lab_value").is_null()).then(pl.lit(True))
                        .otherwise(pl.col("lab_value").fill_null(0) < 5)),
    "dates": _query(pl.col("report_date").dt.month() <= 12),
    "a builtin's name on a custom row-wise check": _query(pl.col("lab_value") < 1, "isin"),
}

WHOLE_TABLE_CHECKS = {
    "mean": _query(pl.col("lab_value").mean() < 10),
    "against the mean": _query(pl.col("lab_value") < pl.col("lab_value").mean()),
    "is_unique": _query(pl.col("lab_value").is_unique()),
    "shift": _query(pl.col("lab_value") >= pl.col("lab_value").shift(1)),
    "over a group": _query(pl.col("lab_value").max().over("sex") > 0),
    "is_in another column": _query(pl.col("county_fips").is_in(pl.col("case_id").implode())),
    "constant only": _query(pl.lit(True)),
    "a bool": pa.Check(lambda data: True, name="custom"),
    "map_batches": _query(pl.col("lab_value").map_batches(lambda s: s > 0)),
    "filtered rows": pa.Check(lambda data: data.lazyframe.filter(pl.col("lab_value") > 0)
                              .select(pl.col("lab_value") > 1), name="custom"),
    "raises": pa.Check(lambda data: 1 / 0, name="custom"),
    "unique_values_eq": pa.Check.unique_values_eq([1.0]),
    "a builtin's name on a custom aggregate": _query(pl.col("lab_value").mean() < 1, "isin"),
    "only the first failures": pa.Check.in_range(0, 10, n_failure_cases=3),
}


@pytest.mark.parametrize("name", list(ROW_WISE_CHECKS))
def test_row_wise_checks_are_recognised(name: str) -> None:
    assert _one_check(ROW_WISE_CHECKS[name]) is None


@pytest.mark.parametrize("name", list(WHOLE_TABLE_CHECKS))
def test_whole_table_checks_are_named(name: str) -> None:
    check = WHOLE_TABLE_CHECKS[name]
    assert _one_check(check) == f"lab_value:{check.name}"


def test_a_schema_level_unique_is_whole_table() -> None:
    assert _one_check(pa.Check.ge(0), unique=["person_id", "county_fips"]) \
        == "unique (pandera's, of the schema)"
