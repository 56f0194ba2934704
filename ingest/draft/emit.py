"""The drafted schema module's text, in the declared-once idiom (:mod:`ingest.declare`)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from .infer import Drafted
from .names import class_name

FROM_THE_DATA = "# from the data"
"""Ends every line of a draft that holds values drawn from the delivery."""

ANNOTATIONS = {"string": "str", "category": "pl.Categorical", "float": "pl.Float64",
               "bool": "pl.Boolean", "date": "pl.Date", "integer": "pl.Int64",
               "decimal": "pl.Decimal", "datetime": "pl.Datetime", "time": "pl.Time"}


_WIDTH = 96


@dataclass(frozen=True)
class Source:
    """What the draft says about where it came from: no data values."""

    delivery_sha256: str
    member: str
    format: str
    rows: int
    drafted_on: str
    table: str | None = None
    encoding: str | None = None


def module_text(name: str, source: Source, columns: list[Drafted],
                null_tokens: list[str]) -> str:
    model = class_name(name)
    keys = [c.name for c in columns if c.candidate_key]
    where = f"{source.member}" + (f", table {source.table}" if source.table else "")
    lines = [
        f'"""Dataset {name!r}: a schema drafted by `ingest schema draft`; edit it before use.',
        "",
        f"Drafted on {source.drafted_on} from delivery {source.delivery_sha256[:16]} "
        f"({where}: {source.format}, {source.rows:,} rows).",
        "",
        "WHERE THIS FILE MAY BE KEPT: every line that ends with",
        f'"{FROM_THE_DATA}" holds values drawn from the delivery (category levels,',
        "observed ranges, the longest text). Every other line holds only column",
        "names, kinds, formats and counts (of rows, of distinct values, of digits).",
        "Keep this file where the delivery's data may be kept, or delete the marked",
        "lines before keeping or sending it anywhere else.",
        "",
        "As drafted, every value of that delivery parses, so running it quarantines",
        "no row for a value that does not parse. The suggested rules (levels,",
        "ranges) are commented out: uncomment and edit those you mean, and check the",
        "kinds, policies (pseudonymise, restrict) and widths chosen for each column.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from datetime import date, datetime, time  # noqa: F401 - for the suggested bounds",
        "from decimal import Decimal  # noqa: F401 - for the suggested bounds",
        "",
        "import pandera.polars as pa",
        "import polars as pl",
        "",
        "from ingest.declare import dataset",
        "",
        "",
        f"class {model}(pa.DataFrameModel):",
        f'    """One row of the delivered table ({len(columns)} columns)."""',
    ]
    for col in columns:
        lines.append("")
        lines.extend(_field(col))
    options = [f"    name={name!r},", '    version="1",']
    if source.table:
        options.append(f"    table={source.table!r},")
    options.append(f"    null_tokens={tuple(null_tokens)!r},")
    if source.encoding and source.encoding not in ("utf-8", "cp1252", "utf-8-sig", "utf-16"):
        options.append(f"    encodings=({source.encoding!r},),")
    lines += ["", ""]
    if keys:
        lines += textwrap.wrap(
            "Candidate unique keys (no repeated and no empty value in this delivery): "
            f"{', '.join(keys)}. To quarantine repeats, add unique=(...) below.",
            width=_WIDTH, initial_indent="# ", subsequent_indent="# ")
    else:
        lines.append("# No column is a unique key in this delivery (each repeats or is empty).")
    lines += [f"DATASET = dataset(\n    {model},", *options, ")", ""]
    return "\n".join(lines)


def _field(col: Drafted) -> list[str]:
    # a header cell may hold a line break or a control character: not in a comment
    header = " ".join("".join(ch if ch.isprintable() else " " for ch in col.source).split())
    out = textwrap.wrap(f"{header}: " + "; ".join(col.notes or ["text"]), width=_WIDTH,
                        initial_indent="    # ", subsequent_indent="    #   ",
                        break_on_hyphens=False)
    metadata = {"source": col.source, **col.metadata}
    args = ["nullable=True"] if col.nullable else []
    args.append("metadata={" + ", ".join(f"{k!r}: {v!r}" for k, v in metadata.items()) + "}")
    line = f"    {col.name}: {ANNOTATIONS[col.kind]} = pa.Field({', '.join(args)})"
    if len(line) <= _WIDTH:
        out.append(line)
    else:
        out += [f"    {col.name}: {ANNOTATIONS[col.kind]} = pa.Field(",
                *(f"        {arg}," for arg in args), "    )"]
    for suggestion in col.suggested:
        out.append(f"    # suggested: pa.Field({suggestion})  {FROM_THE_DATA}")
    return out
