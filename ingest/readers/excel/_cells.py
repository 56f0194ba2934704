"""Cells as calamine writes them as text: its cell errors decoded, numbers spelled."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    import fastexcel

_ERROR_TEXT = {"NA": "#N/A", "Div0": "#DIV/0!", "Value": "#VALUE!", "Ref": "#REF!",
               "Name": "#NAME?", "Num": "#NUM!", "Null": "#NULL!",
               "GettingData": "#GETTING_DATA"}
_BOOL_TEXT = ("true", "false")
"""How calamine writes a boolean cell as text."""

_DETAIL = re.compile(r"got '(\w+)\((.*)\)'?\Z", re.DOTALL)
"""fastexcel's cell error: the cell in Rust's debug form, ``String("NA")``, ``Float(1.5)``."""
_RUST_STRING = re.compile(r'"((?:[^"\\]|\\(?:u\{[0-9a-fA-F]{1,6}\}|[0tnr\\"\']))*)"', re.DOTALL)
_RUST_ESCAPE = re.compile(r"\\(?:u\{([0-9a-fA-F]{1,6})\}|(.))", re.DOTALL)
_RUST_CHARS = {"0": "\0", "t": "\t", "r": "\r", "n": "\n", "\\": "\\", '"': '"', "'": "'"}


def _cell_errors(cell_errors: fastexcel.CellErrors | None, info: list[fastexcel.ColumnInfo]
                 ) -> tuple[dict[int, dict[int, str]], dict[int, dict[int, str]],
                            dict[int, set[int]]]:
    """The load's cell errors: cells not of their column's type (as calamine's text),
    formula errors (as Excel writes them), and the cells that are neither (odd).

    In a text column every cell error is a formula error (``#ERROR`` when calamine
    could not write the cell); keys are column position in the load, then data row.
    """
    misfits: dict[int, dict[int, str]] = {}
    formulas: dict[int, dict[int, str]] = {}
    odd: dict[int, set[int]] = {}
    decoded: dict[str, tuple[str, str | None]] = {}
    for error, j in _located(cell_errors, info):
        row = error.offset_position[0]
        detail = error.detail
        if detail not in decoded:
            found = _DETAIL.search(detail)
            kind, inner = found.groups() if found else ("", "")
            decoded[detail] = ("error", _ERROR_TEXT.get(inner, "#ERROR")) if kind == "Error" \
                else (kind, _cell_text(kind, inner))
        kind, text = decoded[detail]
        if kind == "error" or info[j].dtype == "string":
            formulas.setdefault(j, {})[row] = text if kind == "error" and text else "#ERROR"
        elif text is None:
            odd.setdefault(j, set()).add(row)
        else:
            misfits.setdefault(j, {})[row] = text
    return misfits, formulas, odd


def _located(cell_errors: fastexcel.CellErrors | None, info: list[fastexcel.ColumnInfo]
             ) -> Iterator[tuple[fastexcel.CellError, int]]:
    """Each cell error with its column's position in the load (errors name the column
    by its index in the sheet's range)."""
    position = {c.index: j for j, c in enumerate(info)}
    for error in cell_errors.errors if cell_errors else ():
        j = position.get(error.offset_position[1])
        if j is not None:
            yield error, j


def _cell_text(kind: str, inner: str) -> str | None:
    """A cell as calamine writes it as text, from its debug form; None if unsure."""
    if kind in ("String", "DateTimeIso"):
        quoted = _RUST_STRING.fullmatch(inner)
        return _RUST_ESCAPE.sub(_unescape, quoted.group(1)) if quoted else None
    if kind == "Bool" and inner in _BOOL_TEXT:
        return inner
    if kind == "Int" and re.fullmatch(r"-?\d+", inner):
        return str(int(inner))
    if kind == "Float":
        try:
            number = float(inner)
        except ValueError:
            return None
        return _float_text(number) if number - number == 0 else None
    return None


def _unescape(match: re.Match[str]) -> str:
    code, char = match.groups()
    return chr(int(code, 16)) if code else _RUST_CHARS[char]


def _float_text(number: float) -> str:
    """calamine's text of a number: at most nine decimals, trailing zeros dropped."""
    return f"{number:.9f}".rstrip("0").rstrip(".")


def _scatter(length: int, cells: dict[int, str] | None) -> pl.Series:
    series = pl.repeat(None, length, dtype=pl.Utf8, eager=True)
    kept = {r: t for r, t in (cells or {}).items() if r < length}
    return series.scatter(list(kept), list(kept.values())) if kept else series
