"""The reference delivery (OpenPGP-encrypted Windows-1252 CSV), four ways, one run.

(a) our library path, no Prefect, in a fresh process (imports not timed, the schema
    module's included, as for the floor), and `ingest run --no-prefect` as a whole
    fresh process;
(b) the Prefect flow as a user meets it: a fresh `ingest run` process each time,
    against the managed local server (already started), compared with the
    `--no-prefect` command;
(c) the floor: the raw engines alone on the same bytes (gpg decrypt, cp1252 decode,
    polars CSV read, pyarrow Parquet write);
(d) what a user would otherwise write: pandas read_csv + pandera's pandas backend +
    to_parquet.

Each is timed in a fresh process (median of --repeat runs), with its peak RSS, and
(a) and (c) with the CPU time of the timed part (the process and gpg).
Usage: .venv/bin/python bench/bench_delivery.py [--rows 400000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, print_table, run_child, save  # noqa: E402

PEAK = ("max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
        "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024")
CPU = ("sum(getattr(resource.getrusage(who), f) for who in "
       "(resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) for f in ('ru_utime', 'ru_stime'))")
"""CPU seconds of this process and its reaped children (gpg) so far."""

LIBRARY = """
import json, resource, time
from datetime import date
from ingest.pipeline import run_delivery
from ingest.schema import load_dataset
load_dataset("reference")  # the schema module's imports (pandera, pandas): not timed either
c0 = """ + CPU + """
t0 = time.perf_counter()
s = run_delivery({delivery!r}, out={out!r}, delivery_date=date(2026, 6, 30), force=True)
print(json.dumps({{"seconds": time.perf_counter() - t0, "stages": s.stage_seconds,
                  "cpu_s": round(""" + CPU + """ - c0, 3),
                  "peak_mb": round(""" + PEAK + """, 1)}}))
"""

COMMAND = """
import json, resource, subprocess, time
t0 = time.perf_counter()
subprocess.run({argv!r}, check=True, capture_output=True)
print(json.dumps({{"seconds": time.perf_counter() - t0,
                  "peak_mb": round(""" + PEAK + """, 1)}}))
"""

FLOOR = """
import io, json, resource, subprocess, time
import polars as pl, pyarrow.parquet as pq
c0 = """ + CPU + """
t0 = time.perf_counter()
plain = subprocess.run(["gpg", "--homedir", {gnupg!r}, "--batch", "--quiet", "--decrypt",
                        {cipher!r}], capture_output=True, check=True).stdout
t1 = time.perf_counter()
text = plain.decode("cp1252").encode("utf-8")
frame = pl.read_csv(io.BytesIO(text), infer_schema=False)
t2 = time.perf_counter()
pq.write_table(frame.to_arrow(), io.BytesIO(), compression="zstd")
t3 = time.perf_counter()
print(json.dumps({{"seconds": t3 - t0, "stages": {{"gpg": t1 - t0, "read": t2 - t1,
                  "parquet": t3 - t2}}, "cpu_s": round(""" + CPU + """ - c0, 3),
                  "peak_mb": round(""" + PEAK + """, 1)}}))
"""

PANDAS = """
import io, json, subprocess, time
t0 = time.perf_counter()
import pandas as pd, pandera.pandas as pa
plain = subprocess.run(["gpg", "--homedir", {gnupg!r}, "--batch", "--quiet", "--decrypt",
                        {cipher!r}], capture_output=True, check=True).stdout
df = pd.read_csv(io.BytesIO(plain), encoding="cp1252", dtype=str, keep_default_na=False,
                 skipfooter=1, engine="python")
df = df.rename(columns=str.lower)
df["dob"] = pd.to_datetime(df["dob"], format="%m/%d/%Y", errors="coerce")
df["rpt_dt"] = pd.to_datetime(df["rpt_dt"], format="%m/%d/%Y", errors="coerce")
df["lab_val"] = pd.to_numeric(df["lab_val"].replace(["NA", ".", "NULL", ""], None),
                              errors="coerce")
schema = pa.DataFrameSchema({{
    "case_id": pa.Column(str, pa.Check.str_matches(r"^[0-9]{{10}}$"), unique=False),
    "pers_id": pa.Column(str, pa.Check.str_matches(r"^P[0-9A-F]{{8}}$")),
    "dob": pa.Column("datetime64[ns]", pa.Check.ge(pd.Timestamp("1900-01-01")),
                     nullable=True),
    "sex": pa.Column(str, pa.Check.isin(["F", "M", "X", "U"])),
    "cnty_fips": pa.Column(str, pa.Check.str_matches(r"^[0-9]{{5}}$")),
    "rpt_dt": pa.Column("datetime64[ns]", nullable=True),
    "dx_cd": pa.Column(str, pa.Check.str_matches(r"^[A-TV-Z][0-9][0-9A-Z](\\.[0-9A-Z]{{1,4}})?$")),
    "lab_val": pa.Column(float, pa.Check.ge(0), nullable=True),
    "hosp_yn": pa.Column(str, pa.Check.isin(["Y", "N"])),
    "cmnt": pa.Column(str, pa.Check.str_length(max_value=500)),
}})
try:
    schema.validate(df, lazy=True)
    bad = []
except pa.errors.SchemaErrors as exc:
    bad = exc.failure_cases["index"].dropna().unique()
good = df.drop(index=bad)
good.to_parquet(io.BytesIO())
import resource
print(json.dumps({{"seconds": time.perf_counter() - t0, "peak_mb": round(""" + PEAK + """, 1)}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    env = dict(os.environ, INGEST_HOME=str(work / "home"))
    ingest = str(ROOT / ".venv" / "bin" / "ingest")
    subprocess.run([ingest, "synth", "--rows", str(args.rows), "--seed", "2026",
                    "--out", str(work / "delivery")], env=env, check=True,
                   capture_output=True)
    cipher = str(work / "delivery" / "cases.csv.gpg")
    gnupg = str(work / "home" / "gnupg")
    out = str(work / "out")
    subprocess.run([ingest, "server", "start"], env=env, check=True, capture_output=True)

    run_args = [ingest, "run", str(work / "delivery"), "--out", out, "--force",
                "--delivery-date", "2026-06-30", "--json"]
    cases = {
        "a_library": lambda: run_child(LIBRARY.format(delivery=str(work / "delivery"),
                                                      out=out), env),
        "a_cli_no_prefect": lambda: run_child(COMMAND.format(
            argv=[*run_args, "--no-prefect"]), env),
        "b_flow_cli": lambda: run_child(COMMAND.format(argv=run_args), env),
        "c_floor": lambda: run_child(FLOOR.format(gnupg=gnupg, cipher=cipher), env),
        "d_pandas_pandera": lambda: run_child(PANDAS.format(gnupg=gnupg, cipher=cipher), env),
    }
    results: dict[str, dict] = {}
    for name, fn in cases.items():
        runs = [fn() for _ in range(args.repeat)]
        results[name] = {"seconds": round(statistics.median(r["seconds"] for r in runs), 3),
                         "peak_mb": max(r.get("peak_mb", 0) for r in runs),
                         "stages": runs[-1].get("stages")}
        if "cpu_s" in runs[0]:
            results[name]["cpu_s"] = round(statistics.median(r["cpu_s"] for r in runs), 3)
    subprocess.run([ingest, "server", "stop"], env=env, check=False, capture_output=True)

    a, b = results["a_library"]["seconds"], results["b_flow_cli"]["seconds"]
    a_cli = results["a_cli_no_prefect"]["seconds"]
    c, d = results["c_floor"]["seconds"], results["d_pandas_pandera"]["seconds"]
    ratios = {"library_over_floor": round(a / c, 2),
              "flow_cli_minus_library_cli_s": round(b - a_cli, 2),
              "pandas_over_library": round(d / a, 2)}
    rows = [{"case": k, "seconds": v["seconds"], "peak_mb": v["peak_mb"],
             "cpu_s": v.get("cpu_s", "")} for k, v in results.items()]
    print(f"reference delivery, {args.rows:,} rows, median of {args.repeat}")
    print_table(rows, ["case", "seconds", "peak_mb", "cpu_s"])
    print("ratios:", ratios)
    cpu, cores = results["a_library"]["cpu_s"], os.cpu_count() or 1
    print(f"(a) used {cpu} CPU seconds (gpg included): on {cores} cores it cannot take less "
          f"than {cpu / cores:.2f} s, {cpu / cores / c:.2f}x the floor")
    print("library stages:", results["a_library"]["stages"])
    print("floor stages:", results["c_floor"]["stages"])
    path = save("delivery", {"rows": args.rows, "results": results, "ratios": ratios})
    print(f"written {path}")


if __name__ == "__main__":
    main()
