"""Time and peak memory of the library path at a row count, in a fresh process.

    .venv/bin/python bench/bench_scale.py 400000  /tmp/scale-400k gen   # make the input once
    .venv/bin/python bench/bench_scale.py 400000  /tmp/scale-400k run   # measure
    .venv/bin/python bench/bench_scale.py 4000000 /tmp/scale-4m gen
    .venv/bin/python bench/bench_scale.py 4000000 /tmp/scale-4m run

The input is a plain (synthetic) cp1252 CSV, so decryption is left out and the
peak belongs to reading, validating, encrypting and publishing alone.
"""
import json
import os
import resource
import sys
import time
from pathlib import Path

d = Path(sys.argv[2])
os.environ["INGEST_HOME"] = str(d / "home")
rows = int(sys.argv[1])
if sys.argv[3] == "gen":
    from ingest.keys import Keyring
    from ingest.synth import generate, to_delimited
    Keyring.init()
    frame, truth = generate(rows, seed=2026)
    (d / "delivery").mkdir(parents=True, exist_ok=True)
    (d / "delivery" / "cases.csv").write_bytes(to_delimited(frame))
    sys.exit(0)
from datetime import date

from ingest.pipeline import run_delivery

t = time.perf_counter()
s = run_delivery(d / "delivery", out=d / "out", delivery_date=date(2026, 6, 30), force=True)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": rows, "seconds": round(time.perf_counter() - t, 2), "peak_mb": peak // 1024, "stages": s.stage_seconds, "q": s.rows_quarantined}))
