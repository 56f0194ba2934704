"""The whole benchmark suite on the reference delivery, every form, one command.

    .venv/bin/python bench/run_all.py [--rows 400000] [--scale] [--repeat 1]

For each form (CSV and TSV OpenPGP-encrypted, xlsx with Office password
encryption, xls in a 7-Zip AES archive, the Access fixture in a ZIP AES; SPSS,
Stata, SAS transport and SAS data set files, the CSV on a cpio tape, and
fixed-width records with their layout in a tar, Windows-1252 lines or EBCDIC
records with no line ends, each OpenPGP-encrypted), side
by side, each case in a fresh process (its wall time and peak RSS):

* ``library``   ingest.pipeline.run_delivery (the ``--no-prefect`` path);
* ``flow``      ``ingest run ... --json``: the Prefect flow against the managed
                local server, a fresh process as a user runs it;
* ``floor``     the raw engines alone on the same bytes: the decrypting tool
                (gpg, msoffcrypto, py7zr, pyzipper), then polars read_csv /
                fastexcel (calamine) / mdb-export, then encrypted Parquet (pyarrow);
                (sav, dta, xpt, sas7bdat: pyreadstat's own read; fwf: polars
                slicing the lines by the layout; ebcdic: the records as a numpy
                byte array, each field sliced and decoded by Python's cp037 codec);
* ``pandas``    pandas read_csv / read_excel (openpyxl; xlrd for xls) / read_spss /
                read_stata / read_sas / read_fwf (none for ebcdic) + pandera's
                pandas backend + to_parquet (encrypted);
* ``polars``    plain polars: read_csv / read_excel (calamine), the rules as
                expressions, encrypted Parquet;
* ``duckdb``    the project's DuckDB: read_csv, the rules in SQL, COPY TO Parquet
                with DuckDB's own encryption;
* ``duckdb-1.5`` DuckDB 1.5.5 with the PyPI extensions (excel: read_xlsx; httpfs:
                OpenSSL) in a side virtualenv under the cache;
* ``decrypt-cli`` the decrypting command alone (gpg, 7z) writing to /dev/null;
* ``mdb-export`` mdb-export alone on the plain database, to /dev/null.

``--scale`` adds the library path at 4,000,000 rows as CSV and as xlsx (split over
sheets of 1,048,575 rows, the most a sheet holds) against the 400k figures.

Prints a table and the ratios against the goals, writes
``bench/results/run_all-<rows>.json`` and ``.png``. Inputs are generated once
(``ingest.synth``, fixed seed) and cached under ``bench/results/cache/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, print_table, run_case, run_process, save  # noqa: E402
from _inputs import (  # noqa: E402
    CACHE,
    FORMS,
    HOME,
    STATS_FORMS,
    Form,
    password_file,
    settings_env,
)

INGEST = str(ROOT / ".venv" / "bin" / "ingest")
SCALE_ROWS = 4_000_000
DUCKDB_SIDE = CACHE / "duckdb-side"
DUCKDB_SIDE_PACKAGES = ["duckdb==1.5.5", "duckdb-extension-excel==1.5.5",
                        "duckdb-extension-httpfs==1.5.5", "msoffcrypto-tool", "pyzipper"]
CASES = ("library", "flow", "floor", "pandas", "polars", "duckdb", "duckdb-1.5",
         "decrypt-cli", "mdb-export")
GOALS = {
    "library_csv_over_floor": ("library CSV / floor (wall)", 1.5),
    "library_csv_over_duckdb": ("library CSV / best DuckDB CSV->encrypted Parquet", 1.0),
    "xlsx_read_over_calamine": ("library xlsx read stage / fastexcel (calamine) read", 1.2),
    "access_read_over_mdb_export": ("library Access read stage / mdb-export alone", 1.3),
    "flow_minus_library_s": ("flow - library, seconds (worst form)", 2.0),
    "peak_gb_max": ("library peak RSS, GB (worst form)", 1.5),
    "scale_csv_time": ("4M/400k CSV time", 11.0),
    "scale_csv_memory": ("4M/400k CSV peak memory", 3.0),
    "scale_xlsx_time": ("4M/400k xlsx time", 11.0),
    "scale_xlsx_memory": ("4M/400k xlsx peak memory", 3.0),
}

CHILD = """
import json, sys, time
t0 = time.perf_counter()
import _cases
result = _cases.{func}(**{kwargs!r})
result["seconds"] = round(time.perf_counter() - t0, 3)
with open("/proc/self/status") as fh:
    hwm = [line.split()[1] for line in fh if line.startswith("VmHWM:")]
result["hwm_mb"] = round(int(hwm[0]) / 1024, 1) if hwm else None
print(json.dumps(result))
"""
PREPARE = """
import json, sys
import _inputs
forms = _inputs.prepare({rows!r}, {forms!r}, log=lambda m: print(m, file=sys.stderr, flush=True))
print(json.dumps({{k: v.to_json() for k, v in forms.items()}}))
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def prepare(rows: int, forms: tuple[str, ...]) -> dict[str, Form]:
    """The inputs, made (or found in the cache) by a child process.

    Not in this process: a child's peak RSS as the kernel reports it (``wait4``)
    is never below this parent's own high-water mark, since the child starts as a
    copy of it. Generating inputs takes gigabytes; this process stays at ~20 MB.
    """
    done = subprocess.run([sys.executable, "-c", PREPARE.format(rows=rows, forms=forms)],
                          env=settings_env(), stdout=subprocess.PIPE, check=True)
    return {k: Form(**v) for k, v in json.loads(done.stdout.splitlines()[-1]).items()}


# --- running cases ---------------------------------------------------------------------------

class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.env = settings_env()
        self.gnupg = str(HOME / "gnupg")
        self.work = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
        self.side_python: str | None = None
        self.flow_ready = False
        self.flow_note = ""

    def child(self, func: str, python: str | None = None, **kwargs: Any) -> dict[str, Any]:
        code = CHILD.format(func=func, kwargs=kwargs)
        if python is None:
            return run_case(code, self.env, timeout=self.args.timeout)
        done = run_process([python, "-c", code], self.env, timeout=self.args.timeout)
        if done["returncode"] != 0:
            raise RuntimeError(f"benchmark child failed:\n{done['stderr'][-3000:]}")
        result = json.loads(done["stdout"].strip().splitlines()[-1])
        return result | {"wall_s": done["wall_s"], "peak_mb": done["peak_mb"],
                         "cpu_s": done["cpu_s"]}

    def out(self) -> str:
        return tempfile.mkdtemp(prefix="out-", dir=self.work)

    def one(self, form: Form, case: str) -> dict[str, Any] | None:
        """One run of ``case`` on ``form``; None when the case does not apply."""
        spec = form.to_json()
        name = form.name
        if case == "library":
            return self.child("library", form=spec, out=self.out())
        if case == "flow":
            return self.flow(form) if self.flow_ready else None
        if case == "floor":
            return self.child("floor", form=spec, gnupg_home=self.gnupg)
        if case == "pandas":
            return self.child("pandas_peer", form=spec, gnupg_home=self.gnupg)
        if case == "polars":
            if name in STATS_FORMS or name in ("fwf", "ebcdic"):
                return None  # polars reads none of these; the floor slices the records itself
            return self.child("polars_peer", form=spec, gnupg_home=self.gnupg)
        if case == "duckdb":
            if name not in ("csv", "tsv", "accdb", "cpio"):
                return None  # no excel extension for this DuckDB offline; it reads no xls
            return self.child("duckdb_peer", form=spec, gnupg_home=self.gnupg)
        if case == "duckdb-1.5":
            # cpio: no libarchive-c; ebcdic: DuckDB reads no fixed-length records
            if self.side_python is None or name in ("xls", "cpio", "ebcdic"):
                return None
            return self.child("duckdb_peer", python=self.side_python, form=spec,
                              gnupg_home=self.gnupg, side=True)
        if case == "decrypt-cli":
            if form.container.startswith("openpgp"):
                cmd = f"gpg --homedir {self.gnupg} --batch --quiet --decrypt -o /dev/null " \
                      f"{form.path}"
            elif form.container in ("7z", "zip"):
                cmd = f"7z x -so -p{form.password} {form.path} > /dev/null"
            else:
                return None
            return self.shell(cmd, "gpg" if form.container.startswith("openpgp") else "7z")
        if case == "mdb-export":
            if form.plain_path is None:
                return None
            return self.shell(f"LC_ALL=C.UTF-8 mdb-export -D '%Y-%m-%d' -T '%Y-%m-%d "
                              f"%H:%M:%S' -b hex {form.plain_path} CASES > /dev/null",
                              "mdb-export")
        raise ValueError(case)

    def shell(self, cmd: str, tool: str) -> dict[str, Any]:
        done = run_process(["sh", "-c", cmd], self.env, timeout=self.args.timeout)
        if done["returncode"] != 0:
            raise RuntimeError(f"{tool} failed: {done['stderr'][-2000:]}")
        return {"wall_s": done["wall_s"], "peak_mb": done["peak_mb"], "cpu_s": done["cpu_s"],
                "stages": {tool: done["wall_s"]}}

    def flow(self, form: Form) -> dict[str, Any]:
        argv = [INGEST, "run", form.path, "--out", self.out(), "--force", "--delivery-date",
                form.delivery_date, "--json"]
        if form.password:
            argv += ["--passphrase-file", str(password_file())]
        if form.schema:
            argv += ["--schema", form.schema]
        done = run_process(argv, self.env, timeout=self.args.timeout)
        if done["returncode"] != 0:
            raise RuntimeError(f"ingest run failed: {done['stderr'][-2000:]}")
        line = next(x for x in reversed(done["stdout"].splitlines()) if x.startswith("{"))
        summary = json.loads(line)
        return {"wall_s": done["wall_s"], "peak_mb": done["peak_mb"], "cpu_s": done["cpu_s"],
                "seconds": summary.get("seconds"), "rows_in": summary["rows_in"],
                "rows_accepted": summary["rows_accepted"],
                "rows_quarantined": summary["rows_quarantined"]}

    def measure(self, form: Form, case: str, repeat: int) -> dict[str, Any] | None:
        """``repeat`` runs; the fastest one (the machine may be shared: noise only
        adds time), with the largest peak RSS of all runs and every wall time."""
        runs, loads = [], []
        for _ in range(repeat):
            loads.append(os.getloadavg()[0])
            try:
                result = self.one(form, case)
            except Exception as exc:  # noqa: BLE001 - a failed case is reported, not fatal
                log(f"  {form.name:5} {case:11} FAILED: {str(exc).strip()[-600:]}")
                return {"error": str(exc).strip()[-2000:]}
            if result is None:
                return None
            runs.append(result)
        best = dict(min(runs, key=lambda r: r["wall_s"]))
        best["peak_mb"] = max(r["peak_mb"] for r in runs)
        best["walls"] = [r["wall_s"] for r in runs]
        best["median_wall_s"] = round(statistics.median(best["walls"]), 3)
        best["load_1min"] = round(max(loads), 2)
        stages = " ".join(f"{k}={v:.2f}" for k, v in (best.get("stages") or {}).items())
        log(f"  {form.name:5} {case:11} {best['wall_s']:8.2f} s {best['peak_mb']:8.0f} MB  "
            f"load {best['load_1min']:.1f}  {stages}")
        return best

    # -- Prefect server and DuckDB side interpreter --------------------------------------

    def start_flow(self, warmup: Form) -> None:
        done = run_process([INGEST, "server", "start"], self.env, timeout=180)
        if done["returncode"] != 0:
            self.flow_note = ("not measured: the managed Prefect server did not start ("
                              + (done["stderr"].strip().splitlines() or ["?"])[-1][:300] + ")")
            log(f"flow {self.flow_note}")
            return
        self.flow_ready = True
        try:  # the first flow run of a server registers the flow: not what we measure
            self.flow(warmup)
        except Exception as exc:  # noqa: BLE001
            self.flow_ready = False
            self.flow_note = f"not measured: the warm-up flow run failed ({str(exc)[-300:]})"
            log(f"flow {self.flow_note}")

    def stop_flow(self) -> None:
        run_process([INGEST, "server", "stop"], self.env, timeout=120)

    def ensure_duckdb_side(self) -> str:
        """A side virtualenv with DuckDB 1.5.5 and its PyPI extensions; its python."""
        python = DUCKDB_SIDE / "bin" / "python"
        marker = DUCKDB_SIDE / ".complete"
        if not marker.exists():
            log(f"creating the DuckDB side virtualenv in {DUCKDB_SIDE} (once)")
            uv = str(ROOT / ".venv" / "bin" / "uv")
            shutil.rmtree(DUCKDB_SIDE, ignore_errors=True)
            subprocess.run([uv, "venv", "-q", str(DUCKDB_SIDE), "--python", sys.executable],
                           check=True, capture_output=True)
            subprocess.run([uv, "pip", "install", "-q", "--python", str(python),
                            *DUCKDB_SIDE_PACKAGES], check=True, capture_output=True)
            marker.write_text(" ".join(DUCKDB_SIDE_PACKAGES))
        return str(python)

    def cleanup(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)


# --- ratios, table, chart --------------------------------------------------------------------

def _get(results: dict, form: str, case: str, key: str = "wall_s") -> float | None:
    entry = results.get(form, {}).get(case)
    if not entry or "error" in entry:
        return None
    if key in entry:
        return entry[key]
    return (entry.get("stages") or {}).get(key)


def _cpu_bound(results: dict, peer: str) -> str:
    """The CPU time of the library and of ``peer`` on CSV, and the wall time the
    library's CPU time allows at best on this machine's cores (perfect overlap)."""
    lib, other = _get(results, "csv", "library", "cpu_s"), _get(results, "csv", peer, "cpu_s")
    if lib is None or other is None:
        return "CPU time not measured"
    cores = os.cpu_count() or 1
    return (f"CPU library {lib:.2f} s, {peer} {other:.2f} s: on {cores} cores the library "
            f"needs at least {lib / cores:.2f} s")


def ratios(results: dict, scale: dict | None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}

    def put(key: str, value: float | None, detail: str) -> None:
        label, goal = GOALS[key]
        met = None if value is None else value <= goal if key != "peak_gb_max" else value < goal
        out[key] = {"what": label, "value": None if value is None else round(value, 2),
                    "goal": goal, "met": met, "detail": detail}

    lib = _get(results, "csv", "library")
    flo = _get(results, "csv", "floor")
    put("library_csv_over_floor", lib / flo if lib and flo else None,
        f"library {lib} s, floor {flo} s; {_cpu_bound(results, 'floor')}")
    ducks = {c: _get(results, "csv", c) for c in ("duckdb", "duckdb-1.5")}
    ducks = {c: v for c, v in ducks.items() if v}
    best = min(ducks.items(), key=lambda kv: kv[1]) if ducks else None
    put("library_csv_over_duckdb", lib / best[1] if lib and best else None,
        f"library {lib} s, {best[0]} {best[1]} s; {_cpu_bound(results, best[0])}"
        if best else "no DuckDB figure")
    read = _get(results, "xlsx", "library", "read")
    cal = _get(results, "xlsx", "floor", "read")
    put("xlsx_read_over_calamine", read / cal if read and cal else None,
        f"library read stage {read} s, fastexcel read {cal} s; whole library path "
        f"{_get(results, 'xlsx', 'library')} s")
    read = _get(results, "accdb", "library", "read")
    mdb = _get(results, "accdb", "mdb-export")
    put("access_read_over_mdb_export", read / mdb if read and mdb else None,
        f"library read stage {read} s, mdb-export {mdb} s; whole library path "
        f"{_get(results, 'accdb', 'library')} s")
    gaps = {f: round(_get(results, f, "flow") - _get(results, f, "library"), 2)
            for f in results if _get(results, f, "flow") and _get(results, f, "library")}
    put("flow_minus_library_s", max(gaps.values()) if gaps else None,
        ", ".join(f"{f} {g:+.2f} s" for f, g in gaps.items()) or "flow not measured")
    peaks = {f: _get(results, f, "library", "peak_mb") for f in results}
    peaks = {f: p for f, p in peaks.items() if p}
    put("peak_gb_max", max(peaks.values()) / 1024 if peaks else None,
        ", ".join(f"{f} {p / 1024:.2f} GB" for f, p in peaks.items()))
    if scale:
        for form in ("csv", "xlsx"):
            big = scale.get(form) or {}
            small = results.get(form, {}).get("library") or {}
            if "error" in big or "error" in small or not big or not small:
                continue
            put(f"scale_{form}_time", big["wall_s"] / small["wall_s"],
                f"{big['wall_s']} s vs {small['wall_s']} s")
            put(f"scale_{form}_memory", big["peak_mb"] / small["peak_mb"],
                f"{big['peak_mb']:.0f} MB vs {small['peak_mb']:.0f} MB")
    return out


def decryption(results: dict) -> list[dict[str, Any]]:
    """The library's open-media stage (read, fingerprint, decrypt) against the tools alone."""
    tools = {"openpgp": "gpg", "office": "msoffcrypto", "7z": "py7zr", "zip": "pyzipper"}
    containers = {"csv": "openpgp", "tsv": "openpgp", "xlsx": "office", "xls": "7z",
                  "accdb": "zip", **dict.fromkeys((*STATS_FORMS, "cpio", "fwf", "ebcdic"),
                                                 "openpgp")}
    rows = []
    for form in results:
        lib = _get(results, form, "library", "open-media")
        if lib is None:
            continue
        cli = _get(results, form, "decrypt-cli")
        floor = _get(results, form, "floor", "decrypt")
        rows.append({"form": form, "library open-media s": lib,
                     "tool": tools.get(containers.get(form, ""), "?"),
                     "tool in the floor s": floor,
                     "command alone s": cli if cli is not None else "",
                     "library / command": round(lib / cli, 2) if cli else "",
                     "library / Python tool": round(lib / floor, 2) if floor else ""})
    return rows


def table(results: dict, scale: dict | None, rows: int) -> list[dict[str, Any]]:
    lines = []
    for form, cases in results.items():
        lib = _get(results, form, "library")
        for case, entry in cases.items():
            if entry is None:
                continue
            if "error" in entry:
                lines.append({"form": form, "case": case, "seconds": "FAILED"})
                continue
            lines.append({
                "form": form, "case": case, "seconds": f"{entry['wall_s']:.2f}",
                "x library": f"{entry['wall_s'] / lib:.2f}" if lib else "",
                "peak MB": f"{entry['peak_mb']:.0f}",
                "CPU s": f"{entry['cpu_s']:.2f}" if "cpu_s" in entry else "",
                "rows ok/quarantined": (f"{entry['rows_accepted']}/{entry['rows_quarantined']}"
                                        if "rows_accepted" in entry else ""),
                "stages (s)": " ".join(f"{k}={v:.2f}" for k, v in
                                       (entry.get("stages") or {}).items()),
            })
    for form, entry in (scale or {}).items():
        if entry and "error" not in entry:
            lines.append({"form": f"{form} {SCALE_ROWS // 1_000_000}M", "case": "library",
                          "seconds": f"{entry['wall_s']:.2f}", "peak MB":
                          f"{entry['peak_mb']:.0f}",
                          "rows ok/quarantined": f"{entry['rows_accepted']}/"
                                                 f"{entry['rows_quarantined']}",
                          "stages (s)": " ".join(f"{k}={v:.2f}" for k, v in
                                                 entry["stages"].items())})
    return lines


def chart(results: dict, scale: dict | None, path: Path, rows: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    forms = list(results)
    cases = [c for c in CASES if any(results[f].get(c) and "error" not in results[f][c]
                                     for f in forms)]
    fig, axes = plt.subplots(1, 2, figsize=(15, 6.5))
    width = 0.8 / max(len(cases), 1)
    colors = plt.get_cmap("tab10")
    for i, case in enumerate(cases):
        xs, secs, mems = [], [], []
        for j, form in enumerate(forms):
            entry = results[form].get(case)
            if entry and "error" not in entry:
                xs.append(j + (i - (len(cases) - 1) / 2) * width)
                secs.append(entry["wall_s"])
                mems.append(entry["peak_mb"] / 1024)
        axes[0].bar(xs, secs, width, label=case, color=colors(i))
        axes[1].bar(xs, mems, width, label=case, color=colors(i))
    for ax, title in ((axes[0], "wall time, fresh process (s)"),
                      (axes[1], "peak RSS (GB)")):
        ax.set_xticks(range(len(forms)), forms)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    axes[1].axhline(1.5, color="red", linestyle="--", linewidth=1, label="goal 1.5 GB")
    axes[0].legend(fontsize=8, ncols=2)
    axes[1].legend(fontsize=8, ncols=2)
    note = ""
    if scale:
        note = "  |  scale (library): " + ", ".join(
            f"{f} 4M {e['wall_s']:.0f} s / {e['peak_mb'] / 1024:.1f} GB"
            for f, e in scale.items() if e and "error" not in e)
    fig.suptitle(f"ingest benchmark, reference delivery {rows:,} rows, "
                 f"{os.cpu_count()} cores{note}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def code_version() -> dict[str, Any]:
    """The commit measured, and the files changed outside bench/ since (uncommitted)."""
    def git(*argv: str) -> str:
        done = subprocess.run(["git", "-C", str(ROOT), *argv], capture_output=True,
                              text=True, check=False)
        return done.stdout.rstrip("\n")

    changed = [line[3:] for line in git("status", "--porcelain").splitlines()
               if not line[3:].startswith("bench/")]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(),
            "uncommitted_outside_bench": changed}


def machine() -> dict[str, Any]:
    import importlib.metadata as md

    cpu = ""
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as fh:
        mem = int(fh.readline().split()[1]) / 1024 / 1024
    versions = {}
    for name in ("polars", "pyarrow", "pandas", "pandera", "duckdb", "fastexcel", "openpyxl",
                 "xlrd", "py7zr", "pyzipper", "msoffcrypto-tool", "prefect"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None

    def tool(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, check=False)
        except FileNotFoundError:
            return "missing"
        lines = [x for x in (out.stdout + out.stderr).splitlines() if x.strip()]
        return lines[0].strip() if lines else "?"

    versions |= {"gpg": tool(["gpg", "--version"]), "7z": tool(["7z", "i"])[:60],
                 "mdbtools": tool(["mdb-export", "--version"])}
    return {"cores": os.cpu_count(), "memory_gb": round(mem, 1), "cpu": cpu,
            "python": platform.python_version(), "versions": versions}


# --- main --------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--scale", action="store_true",
                        help=f"also the library at {SCALE_ROWS:,} rows (CSV, xlsx)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per case, the fastest reported (pandas: 1 run; "
                             "--scale: at most 2)")
    parser.add_argument("--forms", default=",".join(FORMS))
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--no-duckdb-side", action="store_true",
                        help="skip DuckDB 1.5.5 + PyPI extensions (side virtualenv)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile the library path per form (pyinstrument)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="per case, seconds")
    args = parser.parse_args()
    forms = tuple(f for f in args.forms.split(",") if f)
    cases = tuple(c for c in args.cases.split(",") if c)

    started = time.perf_counter()
    log(f"preparing inputs ({args.rows:,} rows; cache {CACHE})")
    inputs = prepare(args.rows, forms)
    runner = Runner(args)
    results: dict[str, dict[str, Any]] = {f: {} for f in forms}
    scale: dict[str, Any] | None = None
    notes: dict[str, str] = {}
    try:
        if "duckdb-1.5" in cases and not args.no_duckdb_side:
            try:
                runner.side_python = runner.ensure_duckdb_side()
            except subprocess.CalledProcessError as exc:
                notes["duckdb-1.5"] = ("skipped: the side virtualenv could not be made ("
                                       + (exc.stderr or b"").decode()[-300:] + ")")
        elif "duckdb-1.5" in cases:
            notes["duckdb-1.5"] = "skipped (--no-duckdb-side)"
        if "duckdb-1.5" not in notes:
            notes["duckdb-1.5"] = ("DuckDB 1.5.5 + duckdb-extension-excel/httpfs 1.5.5 from "
                                   "PyPI in a side virtualenv: the extensions on PyPI are "
                                   "built for DuckDB 1.5.5 only, the project pins "
                                   "a newer DuckDB, which cannot load them")
        notes["duckdb"] = ("the project's DuckDB; xlsx needs the excel extension, which "
                           "cannot be installed offline for this version; no reader for xls; "
                           "Parquet encryption through its built-in mbedtls "
                           "(force_mbedtls_unsafe), as httpfs (OpenSSL) cannot be installed "
                           "offline either")
        if "flow" in cases:
            warm = prepare(1_000, ("csv",))["csv"]
            runner.start_flow(warm)
            if runner.flow_note:
                notes["flow"] = runner.flow_note
        log(f"running cases ({time.perf_counter() - started:.0f} s so far)")
        for name in forms:
            for case in cases:
                # pandas is far from every goal and slow on Excel: one run is enough
                entry = runner.measure(inputs[name], case, 1 if case == "pandas" else
                                       args.repeat)
                if entry is not None:
                    results[name][case] = entry
        if args.profile:
            for name in forms:
                report = RESULTS / f"profile-{name}-{args.rows}.txt"
                try:
                    runner.child("library_profile", form=inputs[name].to_json(),
                                 out=runner.out(), report=str(report))
                    log(f"  profile of the library on {name}: {report}")
                except RuntimeError as exc:
                    log(f"  profile of {name} failed: {str(exc)[-300:]}")
        if args.scale:
            log(f"scale: {SCALE_ROWS:,} rows ({time.perf_counter() - started:.0f} s so far)")
            big = prepare(SCALE_ROWS, ("csv", "xlsx"))
            scale = {name: runner.measure(form, "library", min(args.repeat, 2))
                     for name, form in big.items()}
    finally:
        if runner.flow_ready:
            runner.stop_flow()
        runner.cleanup()

    goal = ratios(results, scale)
    print(f"\nreference delivery, {args.rows:,} rows; each case a fresh process; "
          f"wall seconds (best of {args.repeat}), peak RSS")
    print_table(table(results, scale, args.rows),
                ["form", "case", "seconds", "x library", "peak MB", "CPU s", "rows ok/quarantined",
                 "stages (s)"])
    print("\nratios vs goals")
    print_table([{"ratio": v["what"], "value": v["value"], "goal": v["goal"],
                  "met": {True: "yes", False: "NO", None: "n/a"}[v["met"]],
                  "detail": v["detail"]} for v in goal.values()],
                ["ratio", "value", "goal", "met", "detail"])
    crypto = decryption(results)
    if crypto:
        print("\ndecryption alone (the command writes to /dev/null; the library and the Python "
              "tools keep the plaintext in memory)")
        print_table(crypto, list(crypto[0]))
    for case, note in notes.items():
        print(f"note: {case}: {note}")
    loads = [e["load_1min"] for cs in results.values() for e in cs.values()
             if e and "load_1min" in e]
    if loads and max(loads) > (os.cpu_count() or 1) + 0.5:
        print(f"note: the machine was busy during this run (1-minute load up to "
              f"{max(loads):.1f} on {os.cpu_count()} cores): figures are noisier than usual")
    doc = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "rows": args.rows,
           "repeat": args.repeat, "machine": machine(), "code": code_version(),
           "inputs": {k: v.to_json() | {"bytes": Path(v.path).stat().st_size}
                      for k, v in inputs.items()},
           "results": results, "scale": scale, "ratios": goal, "decryption": crypto,
           "notes": notes,
           "suite_seconds": round(time.perf_counter() - started, 1)}
    for entry in doc["inputs"].values():
        entry.pop("password", None)
    # a run of some forms is named after them: it never replaces the whole suite's file
    some = "" if set(forms) == set(FORMS) else "-" + "-".join(forms)
    path = save(f"run_all-{args.rows}{some}", doc)
    png = path.with_suffix(".png")
    chart(results, scale, png, args.rows)
    print(f"\nwritten {path} and {png} ({doc['suite_seconds']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
