"""The flow's overhead: ``ingest run`` through the Prefect flow beside ``--no-prefect``.

Whole processes, as a user meets them: the same OpenPGP CSV delivery (the bench
inputs, ``bench/_inputs.py``) at 2,000 and 400,000 rows, each command run
``--repeat`` times, the two alternating so that both meet the same load. The
managed Prefect server is started first and left running (a user's second run
and every later one; a cold start is measured apart with ``--cold``).

Then where the flow's extra time goes, in one process with timestamps: importing
Prefect and the flow module, reaching the server, the flow run itself (its
stages' own time, and what is left: Prefect's engine, task runs, logs and
artifacts over the API), draining Prefect's queues, and the interpreter's exit.

    .venv/bin/python bench/bench_flow_overhead.py [--rows 2000 400000] [--repeat 5] [--cold]

Prints a table and saves ``bench/results/flow_overhead.json``. Every figure comes
with the load average, and with CPU seconds (the process and the children it
waited for: gpg) beside the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import ROOT, print_table, run_process, save
from _inputs import DELIVERY_DATE, prepare, settings_env

INGEST = str(ROOT / ".venv" / "bin" / "ingest")
GOAL_SECONDS = 1.5
"""The flow may cost at most this much over ``--no-prefect``."""

_PHASES = r"""
import json, os, sys, time
t = [("interpreter started", time.perf_counter())]
def mark(name): t.append((name, time.perf_counter()))
from pathlib import Path
from ingest import cli
from ingest.settings import load_settings
mark("import ingest.cli")
settings = load_settings()
if sys.argv[2] == "flow":  # in the order of ingest.cli.run_flow
    from flows.server import fast_flow_runs, use_prefect
    use_prefect(settings)
    mark("reach the server (ensure_server)")
    import prefect
    mark("import prefect")
    from flows.ingest_delivery import ingest_delivery
    mark("import flows.ingest_delivery")
    cli._quiet_tracebacks()
    with fast_flow_runs():
        state = ingest_delivery(delivery=sys.argv[1], out=sys.argv[3], dataset="reference",
                                delivery_date=sys.argv[4], force=True, return_state=True)
        summary = state.result()
    mark("flow run")
    cli._drain_prefect()
    mark("drain Prefect's queues")
else:
    from ingest.pipeline import run_delivery
    summary = run_delivery(sys.argv[1], schema="reference", out=sys.argv[3],
                           delivery_date=cli._date(sys.argv[4]), force=True,
                           settings=settings).to_json()
    mark("run_delivery")
marks = [(name, round(b - a, 3)) for (_, a), (name, b) in zip(t, t[1:])]
print(json.dumps({"marks": marks, "stages": summary["stage_seconds"],
                  "rows": summary["rows_in"], "inside": round(t[-1][1] - t[0][1], 3)}))
"""


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run_cli(path: str, out: Path, flow: bool, env: dict[str, str],
            tree: Path | None = None) -> dict[str, Any]:
    """``ingest run`` as the command a user types; with ``tree``, the ``ingest`` of that
    source tree (another version of the code) with this interpreter."""
    command = [INGEST] if tree is None else [sys.executable, "-m", "ingest.cli"]
    if tree is not None:
        env = dict(env, PYTHONPATH=os.pathsep.join([str(tree), str(ROOT / "bench")]))
    quiet = ["--quiet"] if tree is None else []  # an older tree may not know it
    argv = [*command, "run", path, "--schema", "reference", "--out", str(out),
            "--delivery-date", DELIVERY_DATE.isoformat(), "--force", "--json", *quiet]
    done = run_process(argv + ([] if flow else ["--no-prefect"]), env, timeout=900)
    if done["returncode"] != 0:
        raise RuntimeError(f"ingest run failed:\n{done['stderr'][-3000:]}")
    return {"wall_s": done["wall_s"], "cpu_s": done["cpu_s"],
            "rows": json.loads(done["stdout"].strip().splitlines()[-1])["rows_in"],
            "load": loadavg()}


def phases(path: str, out: Path, flow: bool, env: dict[str, str]) -> dict[str, Any]:
    argv = [sys.executable, "-c", _PHASES, path, "flow" if flow else "library", str(out),
            DELIVERY_DATE.isoformat()]
    done = run_process(argv, env, timeout=900)
    if done["returncode"] != 0:
        raise RuntimeError(f"phase run failed:\n{done['stderr'][-3000:]}")
    doc = json.loads(done["stdout"].strip().splitlines()[-1])
    doc["wall_s"], doc["cpu_s"] = done["wall_s"], done["cpu_s"]
    # start-up before the first mark, and the exit after the last
    doc["outside_s"] = round(done["wall_s"] - doc["inside"], 3)
    return doc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[2_000, 400_000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--before", type=Path, metavar="TREE",
                        help="also run the ingest of this source tree (an earlier version, "
                        "e.g. from git archive), alternating with this one")
    parser.add_argument("--cold", action="store_true",
                        help="also time one flow run that has to start the server")
    args = parser.parse_args()
    env = settings_env()
    env.pop("PREFECT_API_URL", None)
    deliveries = {rows: prepare(rows, forms=("csv",))["csv"].path for rows in args.rows}
    started = run_process([INGEST, "server", "start"], env, timeout=300)
    assert started["returncode"] == 0, started["stderr"][-2000:]
    doc: dict[str, Any] = {"load_before": loadavg(), "cpus": os.cpu_count(), "sizes": []}
    table = []
    with tempfile.TemporaryDirectory(prefix="flow-overhead-") as tmp:
        for rows, path in deliveries.items():
            kinds = ["library", "flow"] + (["library before", "flow before"]
                                           if args.before else [])
            runs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
            run_cli(path, Path(tmp) / "warm", True, env)  # page cache, .pyc, the server
            if args.before:
                run_cli(path, Path(tmp) / "warm", True, env, args.before)
            for n in range(args.repeat):
                order = kinds if n % 2 == 0 else kinds[::-1]
                for kind in order:
                    tree = args.before if kind.endswith("before") else None
                    runs[kind].append(run_cli(path, Path(tmp) / kind.replace(" ", "-"),
                                              kind.startswith("flow"), env, tree))
            wall = {k: statistics.median(r["wall_s"] for r in v) for k, v in runs.items()}
            cpu = {k: statistics.median(r["cpu_s"] for r in v) for k, v in runs.items()}
            # the per-pair differences: each pair ran back to back, under the same load
            pairs = [f["wall_s"] - lib["wall_s"]
                     for f, lib in zip(runs["flow"], runs["library"], strict=True)]
            if args.before:
                old = [f["wall_s"] - lib["wall_s"] for f, lib in
                       zip(runs["flow before"], runs["library before"], strict=True)]
                table.append({"rows": f"{rows:,} before",
                              "no-prefect s": f"{wall['library before']:.2f}",
                              "flow s": f"{wall['flow before']:.2f}",
                              "flow - no-prefect s": f"{statistics.median(old):+.2f}",
                              "ratio": f"{wall['flow before'] / wall['library before']:.2f}",
                              "cpu no-prefect s": f"{cpu['library before']:.2f}",
                              "cpu flow s": f"{cpu['flow before']:.2f}"})
            size = {"rows": rows, "runs": runs, "median_wall_s": wall, "median_cpu_s": cpu,
                    "flow_minus_library_s": round(statistics.median(pairs), 3),
                    "pair_differences_s": [round(p, 3) for p in pairs],
                    "ratio": round(wall["flow"] / wall["library"], 2),
                    "phases": {k: phases(path, Path(tmp) / f"ph-{k}", k == "flow", env)
                               for k in ("library", "flow")}}
            doc["sizes"].append(size)
            table.append({"rows": f"{rows:,}", "no-prefect s": f"{wall['library']:.2f}",
                          "flow s": f"{wall['flow']:.2f}",
                          "flow - no-prefect s": f"{size['flow_minus_library_s']:+.2f}",
                          "ratio": f"{size['ratio']:.2f}",
                          "cpu no-prefect s": f"{cpu['library']:.2f}",
                          "cpu flow s": f"{cpu['flow']:.2f}",
                          "goal": "met" if size["flow_minus_library_s"] <= GOAL_SECONDS
                          else "missed"})
        if args.cold:
            stopped = run_process([INGEST, "server", "stop"], env, timeout=120)
            assert stopped["returncode"] == 0
            path = deliveries[min(deliveries)]
            doc["cold_flow_run"] = run_cli(path, Path(tmp) / "cold", True, env)
    doc["load_after"] = loadavg()
    print(f"load average before {doc['load_before']}, after {doc['load_after']}; "
          f"{doc['cpus']} cores; median of {args.repeat} alternating runs each")
    print_table(table, list(table[0]))
    for size in doc["sizes"]:
        for kind, ph in size["phases"].items():
            marks = ", ".join(f"{name} {s:.2f}" for name, s in ph["marks"])
            stages = sum(ph["stages"].values())
            print(f"{size['rows']:>9,} {kind:8s} wall {ph['wall_s']:.2f} s (cpu "
                  f"{ph['cpu_s']:.2f}): start-up and exit {ph['outside_s']:.2f}, {marks}; "
                  f"stages {stages:.2f} ({json.dumps(ph['stages'])})")
    if "cold_flow_run" in doc:
        print(f"a flow run that starts the server: {doc['cold_flow_run']['wall_s']:.2f} s")
    print(f"saved {save('flow_overhead', doc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
