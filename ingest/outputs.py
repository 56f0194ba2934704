"""Read published outputs back: one delivery's folder, or a root of many."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import polars as pl
import pyarrow as pa

from .errors import UsageError
from .keys import Keyring
from .settings import Settings, load_settings
from .writers import MANIFEST, read_parquet


def output_dirs(path: str | Path) -> list[Path]:
    """The delivery folders at ``path`` (itself, or its children), oldest id first."""
    path = Path(path)
    if (path / MANIFEST).is_file():
        return [path]
    # hidden folders are a run's staging area or locks, never a published delivery
    found = sorted(p for p in path.iterdir()
                   if not p.name.startswith(".") and (p / MANIFEST).is_file()) \
        if path.is_dir() else []
    if not found:
        raise UsageError(f"{path} is not an output folder: it holds no {MANIFEST}; "
                         "give the --out folder of 'ingest run' or one delivery inside it")
    return found


def manifest(folder: str | Path) -> dict[str, Any]:
    return json.loads((Path(folder) / MANIFEST).read_text())


def table_names(doc: dict[str, Any]) -> list[str]:
    """The tables a manifest's delivery holds (one, or several), by name."""
    return [out["path"].removesuffix(".parquet") for out in doc["outputs"]
            if out["kind"] == "parquet"]


def _table_file(folder: Path, table: str | None = None) -> tuple[Path, str] | None:
    """The Parquet file of the delivery's table (its only one, or ``table``) and the
    delivery SHA-256 it must carry (one read); None if it holds no such table."""
    doc = manifest(folder)
    names = table_names(doc)
    if not names:
        raise UsageError(f"{folder}: the manifest lists no Parquet output")
    if table is None:
        if len(names) > 1:
            raise UsageError(f"{folder} holds {len(names)} tables ({', '.join(names)}); "
                             "say which: table=NAME (--table NAME)")
        table = names[0]
    if table not in names:
        return None
    return folder / f"{table}.parquet", doc["delivery"]["sha256"]


def _table_files(folders: list[Path], table: str | None) -> list[tuple[str, Path, str]]:
    """(delivery id, Parquet file, delivery SHA-256) of the table in each delivery
    that holds it; an error naming the tables there are if none does."""
    files = []
    for folder in folders:
        found = _table_file(folder, table)
        if found is not None:
            files.append((folder.name, *found))
    if not files:
        held = sorted({n for f in folders for n in table_names(manifest(f))})
        raise UsageError(f"no table {table!r} in {len(folders)} delivery folder(s); the "
                         "tables there are " + ", ".join(held))
    return files


def with_delivery_id(table: pa.Table, delivery_id: str) -> pa.Table:
    """The table with a ``delivery_id`` column, as one table of many deliveries has."""
    return table.append_column("delivery_id",
                               pa.array([delivery_id] * table.num_rows, pa.string()))


def load_arrow(path: str | Path, columns: list[str] | None = None,
               settings: Settings | None = None, table: str | None = None) -> pa.Table:
    """As :func:`load`, an Arrow table."""
    keyring = Keyring.open(settings or load_settings())
    folders = output_dirs(path)
    tables = []
    for delivery_id, file, sha256 in _table_files(folders, table):
        read = read_parquet(file, keyring, columns, delivery_sha256=sha256)
        tables.append(with_delivery_id(read, delivery_id) if len(folders) > 1 else read)
    return pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 \
        else tables[0]


def load(path: str | Path, columns: list[str] | None = None, filters: pl.Expr | None = None,
         as_: Literal["polars", "pandas", "arrow"] = "polars",
         settings: Settings | None = None, table: str | None = None) -> Any:
    """The cleaned table of one delivery, or of every delivery under ``path``.

    Keys come from the keyring (``INGEST_HOME``). With several deliveries the
    table has a ``delivery_id`` column. ``filters`` is a polars expression.
    ``table`` picks one table of a delivery of several (``"counties"``); without
    it, each delivery must hold one table, else the error lists the tables. Under
    a root, the table is read from every delivery that holds it.

    >>> df = ingest.load("out/")                      # doctest: +SKIP
    >>> df = ingest.load("out/", columns=["sex", "hospitalized"])  # doctest: +SKIP
    """
    frame = pl.from_arrow(load_arrow(path, columns, settings, table))
    assert isinstance(frame, pl.DataFrame)
    if filters is not None:
        frame = frame.filter(filters)
    if as_ == "polars":
        return frame
    if as_ == "arrow":
        return frame.to_arrow()
    if as_ == "pandas":
        return to_pandas(frame)
    raise UsageError(f"as_ must be 'polars', 'pandas' or 'arrow', not {as_!r}")


def to_pandas(frame: pl.DataFrame) -> Any:
    """``frame`` as pandas, every kind kept: integers as nullable ``Int64`` (numpy's
    int64 has no null, so pandas would make ``2013`` a float ``2013.0``), decimals as
    ``decimal.Decimal`` objects, times as ``datetime.time``."""
    import pandas as pd

    nullable = {pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int32Dtype(),
                pa.int16(): pd.Int16Dtype(), pa.int8(): pd.Int8Dtype()}
    return frame.to_pandas(types_mapper=nullable.get)


def scan(path: str | Path, settings: Settings | None = None,
         table: str | None = None) -> pl.LazyFrame:
    """The cleaned table as a polars LazyFrame that decrypts only what a query needs.

    Only the columns the query uses are read (projection pushdown), batch by
    batch, row groups one at a time; filters apply as the batches stream, and a
    ``head``/``limit`` stops reading early. Restricted columns need the restricted
    key only if the query uses them. ``table`` as in :func:`load`.

    >>> lazy = ingest.scan("out/")                                  # doctest: +SKIP
    >>> lazy.filter(pl.col("sex") == "F").select("lab_value").collect()  # doctest: +SKIP
    """
    from polars.io.plugins import register_io_source

    from .writers.parquet import iter_parquet, open_parquet

    keyring = Keyring.open(settings or load_settings())
    folders = output_dirs(path)
    several = len(folders) > 1
    files = _table_files(folders, table)
    first = pl.from_arrow(open_parquet(files[0][1], keyring).schema_arrow.empty_table())
    assert isinstance(first, pl.DataFrame)
    schema = dict(first.schema) | ({"delivery_id": pl.Utf8} if several else {})

    def source(with_columns: list[str] | None, predicate: pl.Expr | None,
               n_rows: int | None, batch_size: int | None):
        columns = None if with_columns is None else [c for c in with_columns
                                                     if c != "delivery_id"]
        left = n_rows
        for delivery_id, file, sha in files:
            for batch in iter_parquet(file, keyring, columns, sha, batch_size or 65536):
                frame = pl.from_arrow(batch)
                assert isinstance(frame, pl.DataFrame)
                if several:
                    frame = frame.with_columns(pl.lit(delivery_id).alias("delivery_id"))
                if with_columns is not None:
                    frame = frame.select(with_columns)
                if predicate is not None:
                    frame = frame.filter(predicate)
                if left is not None:
                    frame = frame.head(left)
                    left -= frame.height
                yield frame
                if left is not None and left <= 0:
                    return

    return register_io_source(source, schema=schema, explain_name="ingest-encrypted-parquet")
