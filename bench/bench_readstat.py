"""SPSS, Stata and SAS transport files: pyreadstat against polars-readstat (and pandas'
own readers), time and peak memory, each read from bytes already in memory.

    .venv/bin/python bench/bench_readstat.py              # 400,000 rows, best of 3
    .venv/bin/python bench/bench_readstat.py --rows 20000 --repeat 1

The table is the reference generator's (seed 2026) with its dates and lab values
typed where they parse, so each file holds text, numbers and dates. Every read
runs in a fresh process, its modules imported first: its peak resident memory
(``VmHWM``, reset once the file's bytes are loaded) less the resident memory then is
the read's own memory.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FORMS = {"sav": ".sav", "zsav": ".zsav", "dta": ".dta", "xpt": ".xpt"}


def make(rows: int, folder: Path) -> dict[str, Path]:
    import polars as pl
    import pyreadstat

    from ingest.synth import generate

    frame, _ = generate(rows, seed=2026)
    frame = frame.with_columns(
        pl.col("DOB", "RPT_DT").str.to_date("%m/%d/%Y", strict=False),
        pl.col("LAB_VAL").cast(pl.Float64, strict=False))
    pandas = frame.to_pandas()
    paths = {}
    for form, suffix in FORMS.items():
        path = folder / f"cases{suffix}"
        if form == "xpt":
            pyreadstat.write_xport(pandas, str(path), file_format_version=8)
        elif form == "dta":
            pyreadstat.write_dta(pandas, str(path))
        else:
            pyreadstat.write_sav(pandas, str(path), compress=form == "zsav")
        paths[form] = path
    return paths


def _read(engine: str, form: str, data: bytes) -> int:
    if engine == "ingest":
        from ingest.readers.stats import read_stats
        from schemas.reference import DATASET

        fmt = {"sav": "spss", "zsav": "spss", "dta": "stata", "xpt": "sas-transport"}[form]
        return read_stats(fmt, data, DATASET, "cases").rows
    if engine == "pyreadstat":
        import pyreadstat

        reader: Any = {"sav": pyreadstat.read_sav, "zsav": pyreadstat.read_sav,
                  "dta": pyreadstat.read_dta, "xpt": pyreadstat.read_xport}[form]
        return int(reader(io.BytesIO(data), output_format="polars")[0].height)
    if engine == "polars-readstat":
        import polars_readstat

        return int(polars_readstat.read_readstat(f"cases.{form}", data=data).height)
    import pandas as pd

    if form == "dta":
        return len(pd.read_stata(io.BytesIO(data)))
    if form == "xpt":
        return len(pd.read_sas(io.BytesIO(data), format="xport"))
    raise NotImplementedError("pandas reads SPSS only from a path (through pyreadstat)")


_MODULES = {"ingest": ("ingest.readers.stats", "schemas.reference", "pyreadstat"),
            "pyreadstat": ("pyreadstat", "polars"), "polars-readstat": ("polars_readstat",),
            "pandas": ("pandas",)}


def child(engine: str, form: str, path: str) -> None:
    import gc
    from importlib import import_module

    for module in _MODULES[engine]:  # imports are not the read's cost
        import_module(module)
    data = Path(path).read_bytes()
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # the peak starts again from here
    before = _status("VmRSS")
    start = time.perf_counter()
    rows = _read(engine, form, data)
    seconds = time.perf_counter() - start
    peak = _status("VmHWM")
    print(json.dumps({"rows": rows, "seconds": seconds, "mib": (peak - before) / 1024}))


def _status(field: str) -> int:
    """A memory figure of this process, KiB (Linux /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def measure(engine: str, form: str, path: Path, repeat: int) -> dict[str, float] | None:
    runs = []
    for _ in range(repeat):
        done = subprocess.run([sys.executable, __file__, "--child", engine, form, str(path)],
                              capture_output=True, text=True, check=False, cwd=ROOT,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
        if done.returncode:
            return None
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["seconds"])
    return {"seconds": round(best["seconds"], 2), "mib": round(max(r["mib"] for r in runs)),
            "rows": best["rows"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as folder:  # synthetic data only
        paths = make(args.rows, Path(folder))
        print(f"{args.rows:,} rows; best of {args.repeat}; seconds / peak MiB above the "
              "file's bytes")
        print(f"{'form':6} {'MB':>6}  " + "  ".join(f"{e:>18}" for e in ENGINES))
        results: dict[str, dict[str, object]] = {}
        for form, path in paths.items():
            cells = []
            results[form] = {"mb": round(path.stat().st_size / 1e6, 1)}
            for engine in ENGINES:
                got = measure(engine, form, path, args.repeat)
                results[form][engine] = got
                cells.append(f"{got['seconds']:>8.2f} s {got['mib']:>5} MiB" if got
                             else f"{'-':>18}")
            print(f"{form:6} {results[form]['mb']:>6}  " + "  ".join(cells))
    out = ROOT / "bench" / "results" / f"readstat-{args.rows}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1))


ENGINES = ("ingest", "pyreadstat", "polars-readstat", "pandas")

if __name__ == "__main__":
    main()
