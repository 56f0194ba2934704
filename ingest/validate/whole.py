"""Rules that answer for the table as a whole, and a delivery that fails one.

pandera reports a check that reduces the table to one answer (a column's mean,
``n_unique``, a check returning ``False``) as a single failure case at row index 0,
or with no index at all: taken as a row's failure it would quarantine the first
row alone and accept every other, for a rule that names no row. Such a failure
is told apart by running the failing check once more and looking at the shape
of its answer (one value for the table, not one per row); only the rules whose
failure cases could be one (a single case, at index 0 or none) are looked at,
so the rules that fail rows cost nothing more. A delivery that fails a rule
about the whole table is refused, naming the rule: there is no row to set apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from ..errors import ValidationRejected

if TYPE_CHECKING:
    import pandera.polars as pa


def refuse_whole_table_failures(schema: pa.DataFrameSchema, clean: pl.DataFrame,
                                cases: pl.DataFrame) -> None:
    """Raise :class:`ValidationRejected` if a failing rule judged the whole table.

    ``cases``: pandera's failure cases (``schema_context``, ``column``,
    ``check_number``, ``index``) with ``rule``, the project's name for the rule.
    """
    if clean.height <= 1:  # the one row is the table: a row's reason says it all
        return
    single = (cases.filter(pl.col("check_number").is_not_null())
              .group_by("rule", "schema_context", "column", "check_number")
              .agg(pl.len().alias("n"), pl.col("index").max().alias("at"))
              .filter((pl.col("n") == 1) & (pl.col("at").is_null() | (pl.col("at") == 0)))
              .sort("rule"))
    failed = [str(rule) for rule, context, column, number, _, _ in single.iter_rows()
              if not _one_answer_per_row(_check(schema, context, column, number),
                                         clean, column)]
    _refuse(failed)


def refuse_failed_table_answers(schema: pa.DataFrameSchema, clean: pl.DataFrame) -> None:
    """Raise :class:`ValidationRejected` naming every rule that answers ``False`` for
    the table as a whole.

    For when pandera could not gather its failure cases: a rule answering one plain
    ``True``/``False`` that fails beside a rule failing rows makes pandera's
    concatenation of failure cases raise (their values' types differ), so no rule
    would be named. Each rule is run once more; the ones giving one ``False`` for a
    table of several rows are the table's failures, and refuse it as above.
    """
    if clean.height <= 1:
        return
    rules = [(check.name, None, check) for check in schema.checks]
    rules += [(f"{name}:{check.name}", name, check)
              for name, column in schema.columns.items() for check in column.checks]
    _refuse([rule for rule, column, check in rules if _one_false(check, clean, column)])


def _refuse(failed: list[str]) -> None:
    if failed:
        names = ", ".join(repr(r) for r in failed)
        raise ValidationRejected(
            f"the delivery fails {names}, a rule about the table as a whole (it gives "
            "one answer for the table, not one per row), so no row can be set apart "
            "for it: the delivery is refused and nothing is published. Check the "
            "delivery against that rule, or change the rule in the schema module")


def _answer(check: Any, clean: pl.DataFrame, column: str | None) -> Any:
    """What ``check`` answers on ``clean`` when run once more; None if it cannot be
    run again (such a rule names no row, and is not named as the table's either)."""
    try:
        output = check(clean.lazy(), column).check_output
        return output.collect() if isinstance(output, pl.LazyFrame) else output
    except Exception:  # noqa: BLE001 - any failure of a user's rule is "no answer"
        return None


def _one_false(check: Any, clean: pl.DataFrame, column: str | None) -> bool:
    output = _answer(check, clean, column)
    return isinstance(output, pl.DataFrame) and output.shape == (1, 1) and output.item() is False


def _check(schema: pa.DataFrameSchema, context: str, column: str | None,
           number: int) -> Any:
    if context == "Column" and column is not None and column in schema.columns:
        checks = schema.columns[column].checks
    elif context == "DataFrameSchema":
        checks = schema.checks
    else:
        return None
    return checks[number] if 0 <= number < len(checks) else None


def _one_answer_per_row(check: Any, clean: pl.DataFrame, column: str | None) -> bool:
    """Whether ``check`` answers row by row on ``clean`` (unknown: it does not)."""
    if check is None:
        return False
    if check.element_wise:
        return True
    output = _answer(check, clean, column)
    return isinstance(output, pl.DataFrame | pl.Series) and len(output) == clean.height
