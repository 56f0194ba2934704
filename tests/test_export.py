"""The decrypted table for other tools: Arrow/Parquet streams, plaintext export, R."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import ingest
from ingest.errors import UsageError
from ingest.export import export_plaintext, portable_table, stream_table
from ingest.synth import generate, to_delimited

ROOT = Path(__file__).resolve().parents[1]
R_HELPER = ROOT / "r" / "ingest.R"
DELIVERY = date(2026, 6, 30)

# Reads an Arrow IPC stream (or Parquet) on stdin in a fresh interpreter, checks it is
# complete, and sends it back re-encoded by that process's own writer.
READER = textwrap.dedent("""
    import io, os, sys
    import pyarrow as pa, pyarrow.parquet as pq
    fmt = sys.argv[1]
    if fmt == "arrow":
        table = pa.ipc.open_stream(sys.stdin.buffer).read_all()
    else:
        table = pq.read_table(io.BytesIO(sys.stdin.buffer.read()))
    with pa.ipc.new_stream(sys.stdout.buffer, table.schema) as out:
        out.write_table(table)
    sys.stdout.flush()
    # pyarrow's Parquet reader can abort the interpreter's teardown ("terminate called
    # without an active exception", apache/arrow#34314) after all its work is done:
    # the reply is complete and flushed, so the reader ends without that teardown.
    os._exit(0)
""")

@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """A keyring in a private INGEST_HOME and two real deliveries run through the pipeline."""
    from ingest.keys import Keyring
    from ingest.pipeline import run_delivery

    base = tmp_path_factory.mktemp("export")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INGEST_HOME", str(base / "home"))
        Keyring.init()
        out = base / "out"
        folders = []
        for seed in (1, 2):
            frame, _ = generate(1_500, seed=seed, delivery_date=DELIVERY)
            source = base / f"delivery-{seed}"
            source.mkdir()
            (source / "cases.csv").write_bytes(to_delimited(frame))
            summary = run_delivery(source, out=out, delivery_date=DELIVERY)
            folders.append(Path(summary.output_dir))
        yield {"base": base, "out": out, "one": folders[0], "two": folders[1],
               "home": base / "home"}


def plain(table: pa.Table) -> pa.Table:
    """Comparable form: dictionaries decoded, every string type as ``string``."""
    columns = []
    for column in table.columns:
        kind = column.type
        if pa.types.is_dictionary(kind):
            column = column.cast(kind.value_type)
        if pa.types.is_large_string(column.type) or pa.types.is_string_view(column.type):
            column = column.cast(pa.string())
        columns.append(column)
    return pa.table(columns, names=table.column_names).combine_chunks()


def read_in_child(fmt: str, write: object) -> pa.Table:
    """Run ``write(sink)`` into the stdin of a separate Python process reading ``fmt``."""
    proc = subprocess.Popen([sys.executable, "-c", READER, fmt], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    write(proc.stdin)  # type: ignore[operator]
    proc.stdin.close()
    data = proc.stdout.read()
    err = proc.stderr.read()
    assert proc.wait() == 0, err.decode()
    return pa.ipc.open_stream(pa.BufferReader(data)).read_all()


def files_under(*roots: Path) -> set[Path]:
    return {p for root in roots for p in root.rglob("*")}


# -- streams -------------------------------------------------------------------------

def test_arrow_stream_read_by_another_process(world: dict[str, Path],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_HOME", str(world["home"]))
    before = files_under(world["base"])
    got = read_in_child("arrow", lambda sink: stream_table(world["one"], sink=sink))
    assert files_under(world["base"]) == before  # nothing written on the way
    expected = ingest.load(world["one"]).to_arrow()
    assert got.num_rows == expected.num_rows > 1_000
    assert plain(got).equals(plain(expected))
    types = dict(zip(got.column_names, got.schema.types, strict=True))
    assert types["birth_date"] == pa.date32()
    assert types["hospitalized"] == pa.bool_()
    assert types["sex"] == pa.dictionary(pa.int32(), pa.string())
    assert types["diagnosis_code"] == pa.dictionary(pa.int32(), pa.string())
    assert types["case_id"] == pa.string()
    assert not any(f.metadata for f in got.schema)  # no polars-private metadata


def test_parquet_stream_and_columns(world: dict[str, Path],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_HOME", str(world["home"]))
    got = read_in_child("parquet", lambda sink: stream_table(
        world["one"], columns="sex,hospitalized", fmt="parquet", sink=sink))
    assert got.column_names == ["sex", "hospitalized"]
    expected = ingest.load(world["one"], columns=["sex", "hospitalized"]).to_arrow()
    assert plain(got).equals(plain(expected))
    assert pa.types.is_dictionary(got.schema.field("sex").type)


def test_stream_of_several_deliveries(world: dict[str, Path],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_HOME", str(world["home"]))
    got = read_in_child("arrow", lambda sink: stream_table(world["out"], sink=sink))
    expected = ingest.load(world["out"]).to_arrow()
    assert "delivery_id" in got.column_names
    assert plain(got).equals(plain(expected))


def test_stream_rejects_an_unknown_format(world: dict[str, Path]) -> None:
    with pytest.raises(UsageError, match="arrow or parquet"):
        stream_table(world["one"], fmt="csv", sink=io.BytesIO())  # type: ignore[arg-type]


def test_portable_types() -> None:
    table = pa.table({
        "s": pa.array(["a", None], pa.large_string()),
        "d": pa.array(["x", "y"]).dictionary_encode().cast(
            pa.dictionary(pa.uint32(), pa.large_string())),
    })
    out = portable_table(table)
    assert out.schema.types == [pa.string(), pa.dictionary(pa.int32(), pa.string())]
    assert plain(out).equals(plain(table))


# -- plaintext export ----------------------------------------------------------------

def test_plaintext_export_read_by_pyarrow_duckdb_polars(world: dict[str, Path],
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    import duckdb

    monkeypatch.setenv("INGEST_HOME", str(world["home"]))
    dest = tmp_path / "export"
    paths = export_plaintext(world["one"], dest)
    assert paths == [dest / f"reference-{world['one'].name}.parquet"]
    path = paths[0]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in dest.iterdir()) == [path.name]  # no partial file left

    expected = ingest.load(world["one"])
    arrow_table = pq.read_table(path)
    assert plain(arrow_table).equals(plain(expected.to_arrow()))
    types = dict(zip(arrow_table.column_names, arrow_table.schema.types, strict=True))
    assert types["birth_date"] == pa.date32() and types["report_date"] == pa.date32()
    assert types["hospitalized"] == pa.bool_()
    assert pa.types.is_dictionary(types["sex"])
    assert pa.types.is_dictionary(types["diagnosis_code"])

    frame = pl.read_parquet(path)
    assert frame.schema["birth_date"] == pl.Date
    assert frame.schema["hospitalized"] == pl.Boolean
    assert isinstance(frame.schema["sex"], pl.Categorical | pl.Enum)
    assert frame.height == expected.height
    assert frame["county_fips"].to_list() == expected["county_fips"].to_list()

    with duckdb.connect() as con:
        described = dict(con.execute("SELECT column_name, column_type FROM "
                                     "(DESCRIBE SELECT * FROM read_parquet(?))",
                                     [str(path)]).fetchall())
        assert described["birth_date"] == "DATE"
        assert described["hospitalized"] == "BOOLEAN"
        assert described["sex"] in ("VARCHAR", "ENUM")  # DuckDB reads dictionaries as text
        assert described["lab_value"] == "DOUBLE"
        rows, hosp, nulls = con.execute(
            "SELECT count(*), sum(hospitalized::INT), count(*) - count(lab_value) "
            "FROM read_parquet(?)", [str(path)]).fetchone()
    assert rows == expected.height
    assert hosp == expected["hospitalized"].sum()
    assert nulls == expected["lab_value"].null_count()

    # never replaces an export
    with pytest.raises(UsageError, match="already exist"):
        export_plaintext(world["one"], dest)


def test_plaintext_export_of_several_deliveries(world: dict[str, Path],
                                                monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    import duckdb

    monkeypatch.setenv("INGEST_HOME", str(world["home"]))
    dest = tmp_path / "all"
    paths = export_plaintext(world["out"], dest, columns=["case_id", "sex"])
    assert len(paths) == 2
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700
    import pyarrow.dataset as ds

    table = ds.dataset(dest, format="parquet").to_table()
    assert set(table.column_names) == {"case_id", "sex", "delivery_id"}
    expected = ingest.load(world["out"], columns=["case_id", "sex"])
    assert table.num_rows == expected.height
    with duckdb.connect() as con:
        ids = con.execute("SELECT DISTINCT delivery_id FROM read_parquet(?) ORDER BY 1",
                          [str(dest / "*.parquet")]).fetchall()
    assert [i[0] for i in ids] == sorted([world["one"].name, world["two"].name])


# -- R -------------------------------------------------------------------------------

RSCRIPT = shutil.which("Rscript")
needs_r = pytest.mark.skipif(RSCRIPT is None, reason="Rscript is not installed "
                             "(apt-get install r-base-core)")


def r_has_arrow() -> bool:
    if RSCRIPT is None:
        return False
    done = subprocess.run([RSCRIPT, "-e", "library(arrow)"], capture_output=True)
    return done.returncode == 0


def run_r(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    assert RSCRIPT is not None
    script = f"source({str(R_HELPER)!r})\n{code}"
    return subprocess.run([RSCRIPT, "-e", script], capture_output=True, env=env, timeout=300)


@pytest.fixture
def r_env(world: dict[str, Path], tmp_path: Path) -> dict[str, str]:
    """INGEST_BIN: this checkout's CLI (`python -m ingest.cli`) behind a tiny wrapper."""
    wrapper = tmp_path / "ingest"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} -m ingest.cli \"$@\"\n")
    wrapper.chmod(0o700)
    return dict(os.environ, INGEST_HOME=str(world["home"]), INGEST_BIN=str(wrapper),
                PYTHONPATH=str(ROOT))


@needs_r
def test_r_helper_streams_the_bytes_unchanged(world: dict[str, Path], r_env: dict[str, str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Base R (no arrow needed) reads the binary stream from the pipe byte for byte."""
    monkeypatch.setenv("INGEST_HOME", str(world["home"]))
    sink = io.BytesIO()
    stream_table(world["one"], columns=["sex", "lab_value"], sink=sink)
    expected = sink.getvalue()
    done = run_r(f"x <- .ingest_cat({str(world['one'])!r}, c('sex', 'lab_value'))\n"
                 "cat(length(x), sum(as.integer(x)), paste(as.character(x[1:16]), "
                 "collapse=''), sep='\\n')", r_env)
    assert done.returncode == 0, done.stderr.decode()
    length, total, head = done.stdout.decode().split()
    assert int(length) == len(expected)
    assert int(float(total)) == sum(expected)
    assert head == expected[:16].hex()


@needs_r
def test_r_helper_reports_a_failed_command(r_env: dict[str, str], tmp_path: Path) -> None:
    done = run_r(f"tryCatch(.ingest_cat({str(tmp_path / 'nowhere')!r}), error = function(e) "
                 "cat('ERR:', conditionMessage(e), '\\n'))", r_env)
    out = done.stdout.decode()
    assert "ERR:" in out and "exit status 2" in out  # UsageError
    assert "is not an output folder" in done.stderr.decode()  # ingest's own message


@needs_r
def test_r_helper_without_arrow(world: dict[str, Path], r_env: dict[str, str]) -> None:
    if r_has_arrow():
        pytest.skip("the R package arrow is installed: the missing-arrow message "
                    "cannot be shown")
    done = run_r(f"tryCatch(read_delivery({str(world['one'])!r}), error = function(e) "
                 "cat('ERR:', conditionMessage(e), '\\n'))", r_env)
    out = done.stdout.decode()
    assert "ERR:" in out
    assert "'arrow'" in out and 'install.packages("arrow")' in out
    done = run_r("tryCatch(read_export('.'), error = function(e) "
                 "cat('ERR:', conditionMessage(e), '\\n'))", r_env)
    assert 'install.packages("arrow")' in done.stdout.decode()


@needs_r
def test_r_reads_the_delivery_with_arrow(world: dict[str, Path], r_env: dict[str, str],
                                         tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    if not r_has_arrow():
        pytest.skip("the R package arrow is not installed (not installable here): "
                    "read_delivery/read_export were checked only up to the raw stream")
    monkeypatch.setenv("INGEST_HOME", str(world["home"]))
    expected = ingest.load(world["one"])
    dest = tmp_path / "export"
    export_plaintext(world["one"], dest)
    done = run_r(
        f"d <- read_delivery({str(world['one'])!r})\n"
        "cat(nrow(d), class(d$sex), class(d$birth_date), class(d$hospitalized), '\\n')\n"
        f"s <- read_delivery({str(world['one'])!r}, columns = c('sex', 'lab_value'))\n"
        "cat(paste(names(s), collapse=','), '\\n')\n"
        f"e <- dplyr::collect(read_export({str(dest)!r}))\n"
        "cat(nrow(e), '\\n')\n", r_env)
    assert done.returncode == 0, done.stderr.decode()
    lines = done.stdout.decode().splitlines()
    assert lines[0].split() == [str(expected.height), "factor", "Date", "logical"]
    assert lines[1].strip() == "sex,lab_value"
    assert lines[2].strip() == str(expected.height)
