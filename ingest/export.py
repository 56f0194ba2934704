"""The decrypted table for other tools: streamed to a pipe, or exported on request.

R, DuckDB or any Arrow reader cannot open our encrypted Parquet without our
keyring, so this module hands them the *decrypted* table in standard formats:

* :func:`stream_table` (``ingest cat``) writes an Arrow IPC stream or a plain
  Parquet file to a pipe. Nothing touches disk: the reader on the other end
  (``r/ingest.R``'s ``read_delivery``, ``pyarrow.ipc.open_stream``) holds the
  table in memory only. This is the default way to reach the data from R.
* :func:`export_plaintext` (``ingest export --plaintext``) writes plain
  Parquet files for analysts who work on an encrypted volume. It is the one
  deliberate exception to "no plaintext on disk": the CLI warns and the caller
  writes an audit entry; here the files are at least created owner-only (0600)
  and never overwrite anything.

Both normalise the schema to the most portable Arrow types (``string`` rather
than ``large_string``, dictionaries with ``int32`` indices, no polars-private
metadata), so R's arrow, DuckDB, Spark and pandas all read them the same way:
dates stay ``date32``, booleans ``bool``, categoricals dictionaries (R factors,
polars Categorical).
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import BinaryIO, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from ._fs import create_private, fsync_dir
from .errors import OutputError, UsageError
from .outputs import load_arrow, manifest, output_dirs, table_names, with_delivery_id
from .settings import Settings

Format = Literal["arrow", "parquet"]
BATCH_ROWS = 64 * 1024
"""Record batches of the Arrow stream: a reader can start before the last row."""


def portable_table(table: pa.Table) -> pa.Table:
    """``table`` with portable types and one dictionary per categorical column.

    Deliveries read together may each bring their own dictionary; unifying them
    gives every batch the same dictionary, which readers of a stream expect.
    """
    fields = [pa.field(f.name, _portable_type(f.type), f.nullable) for f in table.schema]
    out = table.cast(pa.schema(fields))
    if any(pa.types.is_dictionary(f.type) for f in fields):
        out = out.unify_dictionaries()
    return out


def _portable_type(kind: pa.DataType) -> pa.DataType:
    if pa.types.is_dictionary(kind):
        return pa.dictionary(pa.int32(), _portable_type(kind.value_type))
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return pa.string()
    if pa.types.is_large_binary(kind) or pa.types.is_binary_view(kind):
        return pa.binary()
    if pa.types.is_date64(kind):
        return pa.date32()
    return kind


def stream_table(path: str | Path, columns: list[str] | str | None = None,
                 fmt: Format = "arrow", sink: BinaryIO | None = None,
                 settings: Settings | None = None, table: str | None = None) -> int:
    """Write the decrypted table of ``path`` to ``sink`` (default: standard output).

    ``fmt`` is ``"arrow"`` (an Arrow IPC *stream*, what ``arrow::read_ipc_stream``
    and ``pyarrow.ipc.open_stream`` read) or ``"parquet"`` (one plain Parquet
    file, written sequentially so a pipe will do). ``columns`` limits the
    columns (a list, or a comma-separated string as the CLI passes it). Keys
    come from the keyring. ``table`` picks one table of a delivery of several (as
    :func:`ingest.load`). Returns the number of rows written.
    """
    if fmt not in ("arrow", "parquet"):
        raise UsageError(f"--format must be arrow or parquet, not {fmt!r}")
    data = portable_table(load_arrow(path, _columns(columns), settings, table))
    out = sink if sink is not None else sys.stdout.buffer
    try:
        if fmt == "arrow":
            with pa.ipc.new_stream(out, data.schema) as writer:
                writer.write_table(data, max_chunksize=BATCH_ROWS)
        else:
            pq.write_table(data, out)
        out.flush()
    except BrokenPipeError:
        raise OutputError("the reader closed the stream before the table was complete") \
            from None
    return data.num_rows


def export_plaintext(path: str | Path, dest_dir: str | Path,
                     columns: list[str] | str | None = None,
                     settings: Settings | None = None,
                     table: str | None = None) -> list[Path]:
    """Write each delivery under ``path`` as a plain Parquet file in ``dest_dir``.

    One file per delivery and table, ``<table>-<delivery id>.parquet`` (the table
    is the schema's name), mode 0600; only ``table`` if given; with
    several deliveries each file also has a ``delivery_id`` column, as
    ``ingest.load`` does, so ``arrow::open_dataset(dest_dir)`` or DuckDB's
    ``read_parquet('dest/*.parquet')`` reads them as one table. An existing
    file is never replaced. Returns the paths written.

    The data is in plaintext in these files: call this only for a destination
    on an encrypted volume, and record the export in the audit log.
    """
    folders = output_dirs(path)
    dest = Path(dest_dir)
    if not dest.exists():
        dest.mkdir(parents=True, mode=0o700)
    elif not dest.is_dir():
        raise UsageError(f"{dest} is not a folder")
    targets = [(folder, name, dest / f"{name}-{folder.name}.parquet")
               for folder in folders for name in table_names(manifest(folder))
               if table is None or name == table]
    if not targets:
        raise UsageError(f"no table {table!r} in {path}")
    present = [str(t) for _, _, t in targets if t.exists()]
    if present:
        raise UsageError(f"{', '.join(present)} already exist(s): export into an empty "
                         "folder, or remove the earlier export first")
    written: list[Path] = []
    for folder, name, target in targets:
        data = load_arrow(folder, _columns(columns), settings, name)
        if len(folders) > 1:
            data = with_delivery_id(data, folder.name)
        _write_private_parquet(portable_table(data), target)
        written.append(target)
    fsync_dir(dest)
    return written


def _write_private_parquet(table: pa.Table, target: Path) -> None:
    """Owner-only, created exclusively, complete or absent (partial name, then rename)."""
    partial = target.with_name(f".{target.name}.partial")
    try:
        with create_private(partial) as fh:
            pq.write_table(table, fh, compression="snappy")
        if target.exists():
            raise UsageError(f"{target} appeared during the export; nothing was replaced")
        os.rename(partial, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise


def _columns(columns: list[str] | str | None) -> list[str] | None:
    if isinstance(columns, str):
        columns = [c.strip() for c in columns.split(",") if c.strip()]
    return list(columns) if columns else None
