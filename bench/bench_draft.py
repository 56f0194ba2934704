"""`ingest schema draft` on the reference delivery, beside a plain run of it.

The 400k-row reference delivery (OpenPGP-encrypted Windows-1252 CSV, made by
``_inputs.prepare``) is drafted, and run with the shipped reference schema, each
in a fresh process (imports not timed), median of --repeat runs, with the peak RSS.
The draft decrypts, reads, profiles every column and validates the delivery
against the draft once (the check that no value fails to parse), so it costs
about a run's reading and validation, without encrypting or writing outputs.

Usage: .venv/bin/python bench/bench_draft.py [--rows 400000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, run_child, save  # noqa: E402
from _inputs import DELIVERY_DATE, prepare, settings_env  # noqa: E402

PEAK = ("max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
        "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024")

DRAFT = """
import json, resource, time
from datetime import date
import pandera.polars, ingest.draft, ingest.declare  # imports not timed
t0 = time.perf_counter()
d = ingest.draft.draft_delivery({delivery!r}, name="reference",
                               delivery_date=date.fromisoformat({when!r}))
seconds = time.perf_counter() - t0
print(json.dumps({{"seconds": seconds, "columns": d.columns, "demoted": d.demoted,
                  "peak_mb": round(""" + PEAK + """, 1)}}))
"""

RUN = """
import json, resource, time
from datetime import date
from ingest.pipeline import run_delivery
from ingest.schema import load_dataset
load_dataset("reference")  # the schema module's imports: not timed either
t0 = time.perf_counter()
s = run_delivery({delivery!r}, out={out!r}, delivery_date=date.fromisoformat({when!r}), force=True)
print(json.dumps({{"seconds": time.perf_counter() - t0, "stages": s.stage_seconds,
                  "peak_mb": round(""" + PEAK + """, 1)}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    form = prepare(args.rows, forms=("csv",))["csv"]
    env = settings_env()
    out = tempfile.mkdtemp(prefix="ingest-bench-draft-")
    when = DELIVERY_DATE.isoformat()
    cases = {
        "draft": DRAFT.format(delivery=form.path, when=when),
        "run": RUN.format(delivery=form.path, out=out, when=when),
    }
    results: dict[str, dict] = {}
    for name, code in cases.items():
        runs = [run_child(code, env) for _ in range(args.repeat)]
        results[name] = {"seconds": round(statistics.median(r["seconds"] for r in runs), 3),
                         "peak_mb": max(r.get("peak_mb", 0) for r in runs)}
        extra = runs[-1]
        if "stages" in extra:
            results[name]["stages"] = extra["stages"]
        if "columns" in extra:
            results[name]["columns"] = extra["columns"]
            results[name]["demoted"] = extra["demoted"]
    rows = [{"case": k, "seconds": v["seconds"], "peak_mb": v["peak_mb"]}
            for k, v in results.items()]
    print(f"reference delivery (OpenPGP CSV), {args.rows:,} rows, median of {args.repeat}")
    print_table(rows, ["case", "seconds", "peak_mb"])
    ratio = round(results["draft"]["seconds"] / results["run"]["seconds"], 2)
    print(f"draft / run: {ratio}")
    print("drafted kinds:", ", ".join(f"{n} {k}" for n, k in results["draft"]["columns"]))
    print("run stages:", results["run"]["stages"])
    path = save("draft", {"rows": args.rows, "results": results, "draft_over_run": ratio})
    print(f"written {path}")


if __name__ == "__main__":
    main()
