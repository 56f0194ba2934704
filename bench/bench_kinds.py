"""The cost of the kinds: the second example (admissions: integers, decimals, a UTC
datetime, a time, a category, flags), an OpenPGP-encrypted Windows-1252 CSV, through
the library beside the floor (gpg decrypt, decode, polars CSV read, Parquet write).

Each in a fresh process, median of --repeat runs, with CPU seconds (the process and
gpg) of the timed part. The library's validate stage is where the kinds are parsed.
Usage: .venv/bin/python bench/bench_kinds.py [--rows 400000] [--repeat 3]
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
from bench_delivery import CPU, FLOOR, PEAK  # noqa: E402

from _common import ROOT, print_table, run_child, save  # noqa: E402

LIBRARY = """
import json, resource, time
from ingest.pipeline import run_delivery
from ingest.schema import load_dataset
dataset = load_dataset("admissions")  # the schema module's imports: not timed
c0 = """ + CPU + """
t0 = time.perf_counter()
s = run_delivery({delivery!r}, schema=dataset, out={out!r}, force=True)
print(json.dumps({{"seconds": time.perf_counter() - t0, "stages": s.stage_seconds,
                  "cpu_s": round(""" + CPU + """ - c0, 3), "rows": s.rows_in,
                  "quarantined": s.rows_quarantined,
                  "peak_mb": round(""" + PEAK + """, 1)}}))
"""

DELIVERY = """
import json
from pathlib import Path
from ingest.crypto.openpgp import encrypt_openpgp, export_public_key
from ingest.synth import to_delimited
from ingest.synth.admissions import generate
frame, _ = generate({rows}, seed=2026)
home, folder = Path({home!r}), Path({folder!r})
folder.mkdir(parents=True)
(folder / "admissions.csv.gpg").write_bytes(encrypt_openpgp(
    to_delimited(frame, encoding="cp1252"), folder.parent / "sender",
    recipient_key=export_public_key(home / "gnupg")))
print(json.dumps({{}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ingest-bench-kinds-"))
    env = dict(os.environ, INGEST_HOME=str(work / "home"))
    ingest = str(ROOT / ".venv" / "bin" / "ingest")
    subprocess.run([ingest, "keys", "init"], env=env, check=True, capture_output=True)
    delivery = work / "delivery"
    run_child(DELIVERY.format(rows=args.rows, home=str(work / "home"), folder=str(delivery)),
              env)
    cipher = str(delivery / "admissions.csv.gpg")
    gnupg = str(work / "home" / "gnupg")
    cases = {
        "library": lambda: run_child(LIBRARY.format(delivery=str(delivery),
                                                    out=str(work / "out")), env),
        "floor": lambda: run_child(FLOOR.format(gnupg=gnupg, cipher=cipher), env),
    }
    results: dict[str, dict] = {}
    for name, fn in cases.items():
        runs = [fn() for _ in range(args.repeat)]
        results[name] = {"seconds": round(statistics.median(r["seconds"] for r in runs), 3),
                         "cpu_s": round(statistics.median(r["cpu_s"] for r in runs), 3),
                         "peak_mb": max(r.get("peak_mb", 0) for r in runs),
                         "stages": runs[-1].get("stages")}
    lib, floor = results["library"], results["floor"]
    ratios = {"library_over_floor_seconds": round(lib["seconds"] / floor["seconds"], 2),
              "library_over_floor_cpu": round(lib["cpu_s"] / floor["cpu_s"], 2)}
    print(f"second example (admissions), {args.rows:,} rows, cp1252 CSV under OpenPGP, "
          f"median of {args.repeat}")
    print_table([{"case": k, "seconds": v["seconds"], "cpu_s": v["cpu_s"],
                  "peak_mb": v["peak_mb"]} for k, v in results.items()],
                ["case", "seconds", "cpu_s", "peak_mb"])
    print("ratios:", ratios)
    print("library stages:", lib["stages"])
    print("floor stages:", floor["stages"])
    path = save("kinds", {"rows": args.rows, "results": results, "ratios": ratios})
    print(f"written {path}")


if __name__ == "__main__":
    main()
