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
from ingest.errors import ValidationRejected
from ingest.pipeline import run_delivery
from ingest.schema import Dataset
from ingest.synth import generate, to_delimited
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
