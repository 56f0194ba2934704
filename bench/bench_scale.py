"""Time and peak memory of the library path at a row count, in a fresh process.

    .venv/bin/python bench/bench_scale.py 400000  /tmp/scale-400k gen   # make the input once
    .venv/bin/python bench/bench_scale.py 400000  /tmp/scale-400k run   # measure
    .venv/bin/python bench/bench_scale.py 4000000 /tmp/scale-4m gen
    .venv/bin/python bench/bench_scale.py 4000000 /tmp/scale-4m run

The input is a plain (synthetic) cp1252 CSV, so decryption is left out and the
peak belongs to reading, validating, encrypting and publishing alone.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from datetime import date
from pathlib import Path


def main() -> None:
    rows, folder, step = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    os.environ["INGEST_HOME"] = str(folder / "home")
    if step == "gen":
        from ingest.keys import Keyring
        from ingest.synth import generate, to_delimited

        Keyring.init()
        frame, _ = generate(rows, seed=2026)
        (folder / "delivery").mkdir(parents=True, exist_ok=True)
        (folder / "delivery" / "cases.csv").write_bytes(to_delimited(frame))
        return
    from ingest.pipeline import run_delivery

    started = time.perf_counter()
    summary = run_delivery(folder / "delivery", out=folder / "out",
                           delivery_date=date(2026, 6, 30), force=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": rows, "seconds": round(time.perf_counter() - started, 2),
                      "peak_mb": peak // 1024, "stages": summary.stage_seconds,
                      "quarantined": summary.rows_quarantined}))


if __name__ == "__main__":
    main()
