"""Validation: parse, check against the dataset's pandera schema, split the rows.

A pipeline in three steps, each giving row-level reasons:
1. parsers (:mod:`.coerce`): text to typed values; a cell that cannot be parsed
   is a reason;
2. the pandera schema (polars backend) at full depth, lazily, so every failing
   rule of every row is collected; only row indexes, columns and rule names are
   kept: pandera's failure cases carry raw values and never leave this module;
3. uniqueness: the first occurrence is kept, later ones are quarantined with the
   row number of the first.

Rows delivered = rows accepted + rows quarantined, always.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date

import polars as pl

from ..errors import IngestError, guard
from ..formats import EXCEL_SERIAL_DATES, capable
from ..readers import SourceTable
from ..schema import Dataset
from . import years
from .coerce import coerce
from .whole import refuse_failed_table_answers, refuse_whole_table_failures

ROW = "_row"
REASONS = "_reasons"
FIRST_ROW = "_first_row"


@dataclass(frozen=True)
class ValidationResult:
    """Accepted clean rows, quarantined source rows with reasons, and counts."""

    accepted: pl.DataFrame = field(repr=False)
    quarantined: pl.DataFrame = field(repr=False)
    """Source columns as delivered (text), plus ``_row``, ``_reasons`` and, for
    duplicates, ``_first_row`` (the row kept)."""
    rows_in: int
    reasons: dict[str, int]
    """Rule -> number of rows failing it (a row may fail several)."""
    repairs: dict[str, int] = field(default_factory=dict)
    """``<column>:<kind>`` -> number of values repaired as the schema declares
    (by the reader and by the parsers); counts only, never values."""

    @property
    def rows_accepted(self) -> int:
        return self.accepted.height

    @property
    def rows_quarantined(self) -> int:
        return self.quarantined.height


def validate(source: SourceTable, dataset: Dataset, delivery_date: date) -> ValidationResult:
    """Split ``source`` into accepted and quarantined rows, a reason for each of the latter."""
    with guard("validation"):
        # a spreadsheet reader that does not say which system it read is Excel's 1900
        date_system = source.date_system or (
            "1900" if capable(source.format, EXCEL_SERIAL_DATES) else None)
        clean, parse_failures, repairs = coerce(source.frame, dataset, date_system,
                                                delivery_date)
        flags = _rule_failures(clean, dataset, delivery_date, parse_failures)
        flags = flags.hstack(_duplicates(clean, dataset))
        result = _split(source, clean, flags, dataset)
        return replace(result, repairs=_merged(source.repairs, repairs))


CAUSES = {
    years.AMBIGUOUS: "dates written with two-digit years where the column's declared "
                     "range does not make the century certain; ask for four-digit years",
    years.OUT_OF_RANGE: "two-digit years that no century puts in the column's declared "
                        "range",
}
"""What a parse-failure kind means, for messages (a rule's kind follows its column)."""


def top_reasons(reasons: dict[str, int], count: int = 5) -> str:
    """The rules most rows fail, with their row counts and what known kinds mean:
    rule names and counts only, never a value."""
    top = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:count]
    shown = ", ".join(f"{rule} ({n:,} row{'' if n == 1 else 's'})" for rule, n in top)
    more = f", and {len(reasons) - count} more rule(s)" if len(reasons) > count else ""
    kinds = dict.fromkeys(rule.rpartition(":")[2] for rule, _ in top)
    causes = "".join(f"; {kind}: {CAUSES[kind]}" for kind in kinds if kind in CAUSES)
    return shown + more + causes


def _merged(*counts: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for each in counts:
        for kind, n in each.items():
            out[kind] = out.get(kind, 0) + int(n)
    return dict(sorted(out.items()))


def _rule_failures(clean: pl.DataFrame, dataset: Dataset, delivery_date: date,
                   parse_failures: pl.DataFrame) -> pl.DataFrame:
    """One boolean column per failed rule, true on rows that break it."""
    import pandera.errors
    from pandera.config import ValidationDepth, config_context

    schema = dataset.rules(delivery_date)
    n = clean.height
    columns: dict[str, pl.Series] = {c: parse_failures[c] for c in parse_failures.columns
                                     if parse_failures[c].any()}
    unparsed = {c.rpartition(":")[0] for c in columns}  # a column name may hold ":"
    try:
        with config_context(validation_enabled=True,
                            validation_depth=ValidationDepth.SCHEMA_AND_DATA):
            schema.validate(clean, lazy=True)
        return pl.DataFrame(columns) if columns else pl.DataFrame(schema={"_": pl.Boolean}).clear(n)
    except pandera.errors.SchemaErrors as exc:
        # only where and which rule: failure cases and the message quote raw values
        cases = exc.failure_cases.select("schema_context", "column", "check",
                                         "check_number", "index")
    except pl.exceptions.SchemaError:
        # pandera could not put its failure cases together (a plain True/False rule
        # failed beside rules failing rows): name the table's failed rules, if that is it
        refuse_failed_table_answers(schema, clean)
        raise
    # rule names without their arguments: "lab_value:greater_than_or_equal_to"
    check = pl.col("check").str.replace(r"\(.*$", "")
    cases = cases.with_columns(
        pl.when(pl.col("schema_context") == "Column").then(pl.col("column") + ":" + check)
        .otherwise(check).alias("rule"))
    refuse_whole_table_failures(schema, clean, cases)
    if cases["index"].null_count():
        raise IngestError("validation: a schema-level check failed (column types or order); "
                          "the schema module is inconsistent with its column specs")
    # a cell that could not be parsed is reported once, as such, not again as null
    cases = cases.filter(pl.col("column").is_null() | ~pl.col("column").is_in(list(unparsed))
                         | (pl.col("check") != "not_nullable"))
    for rule, group in cases.group_by("rule"):
        mask = pl.repeat(False, n, dtype=pl.Boolean, eager=True)  # scatter writes in place
        columns[str(rule[0])] = mask.scatter(group["index"].cast(pl.Int64), True)
    return pl.DataFrame(columns)


def _duplicates(clean: pl.DataFrame, dataset: Dataset) -> pl.DataFrame:
    out = {}
    for name in dataset.unique:
        out[f"{name}:duplicate"] = clean.select(
            pl.col(name).is_not_null() & ~pl.col(name).is_first_distinct()).to_series()
    return pl.DataFrame(out)


def _split(source: SourceTable, clean: pl.DataFrame, flags: pl.DataFrame,
           dataset: Dataset) -> ValidationResult:
    flags = flags.drop([c for c in flags.columns if c == "_"])
    n = clean.height
    counts = flags.select(pl.all().sum()).row(0, named=True) if flags.width else {}
    # sorted: a row's reasons read the same in every run, whatever order the rules
    # were collected in
    reasons = {c: int(k) for c, k in sorted(counts.items()) if k}
    if reasons:
        bad = flags.select(pl.any_horizontal(list(reasons)).alias("bad")).to_series()
        # "a; b" per quarantined row, from the columns it fails
        reason_text = flags.filter(bad).select(
            pl.concat_str([pl.when(pl.col(c)).then(pl.lit(c)) for c in reasons],
                          separator="; ", ignore_nulls=True).alias(REASONS)).to_series()
    else:
        bad = pl.repeat(False, n, dtype=pl.Boolean, eager=True).alias("bad")
        reason_text = pl.Series(REASONS, [], dtype=pl.Utf8)
    rows = pl.int_range(1, n + 1, eager=True).alias(ROW).filter(bad)
    # only the quarantined rows are cast to text (the accepted ones are typed)
    quarantined = (source.frame.filter(bad).with_columns(pl.all().cast(pl.Utf8))
                   .with_columns(rows, reason_text))
    if dataset.unique:
        quarantined = quarantined.with_columns(_first_rows(clean, flags, bad, dataset))
    accepted = clean.filter(~bad)
    assert accepted.height + quarantined.height == n
    return ValidationResult(accepted, quarantined, n, reasons)


def _first_rows(clean: pl.DataFrame, flags: pl.DataFrame, bad: pl.Series,
                dataset: Dataset) -> pl.Series:
    """For each quarantined row that repeats a unique column's value, the row where
    that value first appears; null for the other quarantined rows.

    Only the repeated values are looked up, so no grouping of the whole table is
    made (at millions of rows that would be the validation's largest allocation).
    """
    per_column = []
    for u in dataset.unique:
        repeat = flags[f"{u}:duplicate"].filter(bad)
        values = clean[u].filter(bad)
        wanted = values.filter(repeat).unique()
        first = (clean.select(u).with_row_index(ROW, offset=1)
                 .filter(pl.col(u).is_in(wanted.implode()))
                 .group_by(u).agg(pl.col(ROW).min().alias(FIRST_ROW)))
        # the join's output order is not relied on: each row keys back to its place
        found = (values.to_frame().with_row_index(ROW)
                 .join(first, on=u, how="left").sort(ROW)[FIRST_ROW])
        per_column.append(pl.when(repeat).then(found))
    return pl.select(pl.coalesce(per_column).alias(FIRST_ROW)).to_series()


__all__ = ["ValidationResult", "top_reasons", "validate"]
