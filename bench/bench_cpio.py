"""cpio deliveries: the reference table's CSV (Windows-1252) archived by GNU cpio (newc,
and newc gzip-compressed), opened by the library beside libarchive-c's own read, GNU
cpio's extraction to a pipe, the library's tar opener on the same file as a tar, and
pandas' read_csv of the extracted member; then whole runs, CSV in cpio and plain CSV.

Each case in a fresh process, median of --repeat runs, peak RSS of the process.
Usage: .venv/bin/python bench/bench_cpio.py [--rows 400000] [--repeat 3]
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

TIMED = """
import io, json, resource, time
from pathlib import Path
data = Path({path!r}).read_bytes()
{setup}
t0 = time.perf_counter()
{body}
print(json.dumps({{"seconds": time.perf_counter() - t0, "bytes": got,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

OPENERS = {
    "ingest cpio (newc)": ("tape.cpio", "from ingest.media import Member, OpenContext\n"
                           "from ingest.media.cpio import CONTAINER",
                           "got = sum(len(m) for m in CONTAINER.open(Member('t', data), "
                           "OpenContext()))"),
    "ingest cpio (newc, gzip)": ("tape.cpio.gz", "from ingest.media import open_delivery\n"
                                 "from ingest.formats import formats\nformats()",
                                 "got = sum(len(m) for m in open_delivery({path!r}).members)"),
    "libarchive-c raw (newc)": ("tape.cpio", "import libarchive",
                                "got = 0\nwith libarchive.memory_reader(data, format_name="
                                "'cpio', filter_name='none') as a:\n    for e in a:\n"
                                "        got += len(b''.join(e.get_blocks()))"),
    "GNU cpio -i --to-stdout (newc)": ("tape.cpio", "import subprocess",
                                       "got = len(subprocess.run(['cpio', '-i', '--quiet', "
                                       "'--to-stdout'], input=data, capture_output=True, "
                                       "check=True).stdout)"),
    "ingest tar (same file as tar)": ("tape.tar", "from ingest.media import Member, "
                                      "OpenContext\nfrom ingest.media.tar import CONTAINER",
                                      "got = sum(len(m) for m in CONTAINER.open(Member('t', "
                                      "data), OpenContext()))"),
    "pandas read_csv of the member": ("tape.cpio", "import pandas as pd\nfrom ingest.media "
                                      "import Member, OpenContext\nfrom ingest.media.cpio "
                                      "import CONTAINER\nmember = CONTAINER.open(Member('t', "
                                      "data), OpenContext())[0].data",
                                      "got = len(pd.read_csv(io.BytesIO(member), dtype=str, "
                                      "encoding='cp1252', skipfooter=0, nrows=None))"),
}

RUN = """
import json, resource, time
from datetime import date
from ingest.pipeline import run_delivery
t0 = time.perf_counter()
s = run_delivery({delivery!r}, out={out!r}, force=True, delivery_date=date(2026, 6, 30))
print(json.dumps({{"seconds": time.perf_counter() - t0, "rows": s.rows_in,
                  "stages": s.stage_seconds,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

INPUTS = """
import json
from pathlib import Path
from ingest.synth import generate, to_delimited
frame, _ = generate({rows}, seed=2026)
Path({csv!r}).write_bytes(to_delimited(frame))
print(json.dumps({{}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    # synthetic data only, in memory (/dev/shm) where the machine has it
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    work = Path(tempfile.mkdtemp(prefix="ingest-bench-cpio-", dir=shm))
    env = dict(os.environ, INGEST_HOME=str(work / "home"))
    ingest = str(ROOT / ".venv" / "bin" / "ingest")
    subprocess.run([ingest, "keys", "init"], env=env, check=True, capture_output=True)
    src = work / "src"
    src.mkdir()
    run_child(INPUTS.format(rows=args.rows, csv=str(src / "cases.csv")), env)
    archive = subprocess.run(["cpio", "-o", "--quiet", "-H", "newc"], input=b"cases.csv\n",
                             cwd=src, capture_output=True, check=True).stdout
    (work / "tape.cpio").write_bytes(archive)
    (work / "tape.cpio.gz").write_bytes(subprocess.run(
        ["gzip", "-c", "-n"], input=archive, capture_output=True, check=True).stdout)
    subprocess.run(["tar", "-cf", str(work / "tape.tar"), "cases.csv"], cwd=src, check=True)
    for name in ("csv", "cpio"):
        (work / f"d-{name}").mkdir()
    (work / "d-csv" / "cases.csv").write_bytes((src / "cases.csv").read_bytes())
    (work / "d-cpio" / "tape.cpio").write_bytes(archive)

    results: dict[str, dict] = {}
    for case, (file, setup, body) in OPENERS.items():
        path = str(work / file)
        code = TIMED.format(path=path, setup=setup, body=body.format(path=path))
        runs = [run_child(code, env) for _ in range(args.repeat)]
        results[case] = {"seconds": round(statistics.median(r["seconds"] for r in runs), 3),
                         "peak_mb": round(max(r["peak_mb"] for r in runs), 1)}
    for case, folder in (("run: library, CSV in cpio", "d-cpio"),
                         ("run: library, plain CSV", "d-csv")):
        runs = [run_child(RUN.format(delivery=str(work / folder), out=str(work / "out")), env)
                for _ in range(args.repeat)]
        results[case] = {"seconds": round(statistics.median(r["seconds"] for r in runs), 3),
                         "peak_mb": round(max(r["peak_mb"] for r in runs), 1)}
    size = len(archive)
    print(f"reference table, {args.rows:,} rows, CSV of {size / 2**20:.1f} MiB in cpio, "
          f"median of {args.repeat}")
    print_table([{"case": k, **v} for k, v in results.items()], ["case", "seconds", "peak_mb"])
    path = save("cpio", {"rows": args.rows, "archive_bytes": size, "results": results})
    print(f"written {path}")
    subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
