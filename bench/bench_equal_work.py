"""The equal-work floor: the library's outputs written by the raw engines, straight line.

    .venv/bin/python bench/bench_equal_work.py [--rows 400000] [--forms csv,tsv,xlsx,accdb]
                                               [--repeat 3]

``run_all.py``'s floor decrypts, reads and writes encrypted Parquet: it leaves out
the rules, the pseudonyms, the JSON Lines, the quarantine and the features that the
library also makes. This floor makes every one of them, in the most direct code
the engines allow, one step after the other:

1. decrypt with the underlying tool (gpg, msoffcrypto, pyzipper), as ``run_all``;
2. read the same bytes: polars ``read_csv`` (CSV, TSV; Windows-1252 to UTF-8
   first), fastexcel (calamine) every sheet as text (xlsx), ``mdb-export`` to CSV
   then polars (Access);
3. the reference schema's rules as polars expressions, a reason per failed rule
   and repeated CASE_IDs, accepted and quarantined rows split;
4. HMAC-SHA-256 pseudonyms of ``person_id`` (each distinct value once);
5. Parquet Modular Encryption of the accepted rows (pyarrow; the restricted
   columns under their own master key, as the library);
6. age-encrypted JSON Lines of the accepted rows (pyrage);
7. the age-encrypted quarantine: the rows as delivered, their row numbers and
   reasons;
8. the CSR feature matrix (one-hot categories, numbers with a missing indicator,
   age at report, the label), saved as npz and age-encrypted.

The library (``ingest.pipeline.run_delivery``, no Prefect, as ``run_all``'s
``library`` case) and the floor run side by side, each in a fresh process,
alternating, on the same cached inputs (``bench/_inputs.py``). Reported: wall and
CPU seconds of each, the ratio library/floor per form, and both per stage (the
stage's CPU seconds too: every thread, and the tools waited for).
Writes ``bench/results/equal_work-<rows>.json``.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cases import Clock, decrypt, mdb_export_csv, text_utf8, write_encrypted_parquet  # noqa: E402
from _common import print_table, run_case, save  # noqa: E402
from _inputs import HOME, settings_env  # noqa: E402

FORMS = ("csv", "tsv", "xlsx", "accdb")
GOAL = 0.75
"""The library's wall time at most this share of the floor's (the issue's goal)."""
HMAC_KEY = b"bench-pseudonym-key-32-bytes-xx!"
CATEGORICAL = ("sex", "diagnosis_code", "county_fips")
LABEL = "hospitalized"

CHILD = """
import json, time
t0 = time.perf_counter()
import {module}
result = {module}.{func}(**{kwargs!r})
result["seconds"] = round(time.perf_counter() - t0, 3)
print(json.dumps(result))
"""


# --- both sides, per stage in wall and CPU seconds (each runs in a child) -------------------

def _cpu() -> float:
    """CPU seconds of this process (every thread) and of the tools it waited for."""
    import resource

    own, tools = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + tools.ru_utime + tools.ru_stime


class CpuClock(Clock):
    """:class:`Clock`, with each stage's CPU seconds beside its wall time: on a loaded
    machine the wall time of a stage is mostly waiting, its CPU time is not."""

    def __init__(self) -> None:
        super().__init__()
        self.c = _cpu()
        self.cpu: dict[str, float] = {}

    def lap(self, name: str) -> None:
        super().lap(name)
        now = _cpu()
        self.cpu[name] = round(self.cpu.get(name, 0.0) + now - self.c, 3)
        self.c = now


def library(form: dict[str, Any], out: str) -> dict[str, Any]:
    """``run_delivery`` as run_all's library case runs it, each stage's CPU seconds too."""
    clock = CpuClock()
    from datetime import date

    from ingest.pipeline import run_delivery
    clock.lap("import")
    cpu: dict[str, float] = {}

    def stage(name: str, fn: Any, *args: Any) -> Any:
        start = _cpu()
        value = fn(*args)
        cpu[name] = round(cpu.get(name, 0.0) + _cpu() - start, 3)
        return value

    summary = run_delivery(form["path"], out=out, force=True, passphrase=form["password"],
                           delivery_date=date.fromisoformat(form["delivery_date"]),
                           stage=stage)
    clock.lap("run")
    stages = {"import": clock.stages["import"], **summary.stage_seconds}
    stages["other"] = round(clock.stages["run"] - sum(summary.stage_seconds.values()), 3)
    cpu_stages = {"import": clock.cpu["import"], **cpu,
                  "other": round(clock.cpu["run"] - sum(cpu.values()), 3)}
    return {"stages": stages, "cpu_stages": cpu_stages, "rows_in": summary.rows_in,
            "rows_accepted": summary.rows_accepted,
            "rows_quarantined": summary.rows_quarantined}


def floor(form: dict[str, Any], gnupg_home: str) -> dict[str, Any]:
    """Every output of the library, by the raw engines, one step after the other."""
    clock = CpuClock()
    import polars  # noqa: F401 - its import is the floor's too, timed here
    import pyrage
    clock.lap("import")
    recipient = pyrage.x25519.Identity.generate().to_public()
    plain = decrypt(form, gnupg_home)
    clock.lap("decrypt")
    frame = _read(form["name"], plain)
    del plain
    clock.lap("read")
    accepted, quarantined = _rules(frame, form["delivery_date"])
    clock.lap("validate")
    accepted = accepted.with_columns(_pseudonyms(accepted["person_id"]))
    clock.lap("pseudonymise")
    parquet = io.BytesIO()
    write_encrypted_parquet(accepted.to_arrow(), parquet)
    clock.lap("parquet")
    jsonl = pyrage.encrypt(_ndjson(accepted), [recipient])
    clock.lap("jsonl")
    quarantine = pyrage.encrypt(_ndjson(quarantined), [recipient])
    clock.lap("quarantine")
    npz = pyrage.encrypt(_features(accepted), [recipient])
    clock.lap("features")
    return {"stages": clock.stages, "cpu_stages": clock.cpu, "rows_in": frame.height,
            "rows_accepted": accepted.height,
            "rows_quarantined": quarantined.height,
            "output_mb": round((parquet.tell() + len(jsonl) + len(quarantine) + len(npz)) / 1e6,
                               1)}


def _read(name: str, plain: bytes) -> Any:
    """The delivery's table, every column as text (the rules parse it)."""
    import polars as pl

    from _cases import NULL_TOKENS

    if name in ("csv", "tsv"):
        return pl.read_csv(io.BytesIO(text_utf8(plain)), separator="\t" if name == "tsv" else ",",
                           infer_schema=False, null_values=NULL_TOKENS)
    if name == "xlsx":
        import fastexcel

        book = fastexcel.read_excel(plain)
        sheets = [pl.from_arrow(book.load_sheet(i, dtypes="string").to_arrow())
                  for i in range(len(book.sheet_names))]
        frame = pl.concat(sheets) if len(sheets) > 1 else sheets[0]
        return frame.with_columns(pl.when(~pl.all().is_in(NULL_TOKENS)).then(pl.all()).name.keep())
    return pl.read_csv(io.BytesIO(mdb_export_csv(plain)), infer_schema=False,
                       null_values=NULL_TOKENS)


def _rules(frame: Any, delivery_date: str) -> tuple[Any, Any]:
    """(accepted clean rows, quarantined rows as delivered with ``_row`` and ``_reasons``):
    the reference schema's rules (schemas/reference.py), each failure named. The null
    tokens are nulls already (the reader's ``null_values``)."""
    from datetime import date

    import polars as pl

    from _cases import DX, NULL_TOKENS

    c = pl.col
    last = date.fromisoformat(delivery_date)

    def day(name: str) -> pl.Expr:
        value = c(name).str.strip_chars()
        # text dates as written, or calamine's spelling of a date cell
        return pl.coalesce(value.str.strptime(pl.Date, "%m/%d/%Y", strict=False, exact=True),
                           value.str.slice(0, 10).str.strptime(pl.Date, "%Y-%m-%d",
                                                               strict=False, exact=True))

    def digits(name: str, width: int) -> pl.Expr:
        value = c(name).str.replace(r"\.0+$", "")
        return pl.when(value.str.contains(r"^[0-9]+$")).then(value.str.zfill(width)) \
            .otherwise(value)

    lab = c("LAB_VAL").str.strip_chars()
    lab = pl.when(~lab.is_in(NULL_TOKENS)).then(lab)  # the tokens spelled with blanks too
    clean = frame.with_row_index("_row", offset=1).with_columns(
        case_id=digits("CASE_ID", 10), person_id=c("PERS_ID"), birth_date=day("DOB"),
        sex=c("SEX"), county_fips=digits("CNTY_FIPS", 5), report_date=day("RPT_DT"),
        diagnosis_code=c("DX_CD"), lab_value=lab.cast(pl.Float64, strict=False),
        hospitalized=c("HOSP_YN").replace_strict(
            {"Y": True, "N": False, "1": True, "0": False, "true": True, "false": False},
            default=None, return_dtype=pl.Boolean),
        comments=c("CMNT"))
    failures = {
        "case_id:pattern": ~c("case_id").str.contains(r"^[0-9]{10}$"),
        "person_id:pattern": ~c("person_id").str.contains(r"^P[0-9A-F]{8}$"),
        "birth_date:not_a_date": c("birth_date").is_null(),
        "birth_date:range": c("birth_date") < date(1900, 1, 1),
        "sex:isin": ~c("sex").is_in(["F", "M", "X", "U"]),
        "county_fips:pattern": ~c("county_fips").str.contains(r"^[0-9]{5}$"),
        "report_date:not_a_date": c("report_date").is_null(),
        "report_date:range": ~c("report_date").is_between(date(2015, 1, 1), last),
        "diagnosis_code:pattern": ~c("diagnosis_code").str.contains(DX),
        "lab_value:not_a_number": lab.is_not_null() & c("lab_value").is_null(),
        "lab_value:ge": c("lab_value") < 0,
        "hospitalized:not_yes_no": c("hospitalized").is_null(),
        "comments:length": c("comments").str.len_chars() > 500,
        "birth_date_not_after_report_date": c("birth_date") > c("report_date"),
    }
    flags = [rule.fill_null(rule_name.endswith(("pattern", "isin"))).alias(rule_name)
             for rule_name, rule in failures.items()]
    marked = clean.with_columns(flags).with_columns(
        _duplicate=~c("case_id").is_first_distinct())
    bad = pl.any_horizontal(*failures, "_duplicate")
    names = ["case_id", "person_id", "birth_date", "sex", "county_fips", "report_date",
             "diagnosis_code", "lab_value", "hospitalized", "comments"]
    accepted = marked.filter(~bad).select(
        *names[:3], c("sex").cast(pl.Categorical), *names[4:6],
        c("diagnosis_code").cast(pl.Categorical), *names[7:])
    # the reasons are spelled for the few quarantined rows only
    quarantined = marked.filter(bad).select(
        *frame.columns, "_row",
        _reasons=pl.concat_str([pl.when(c(name)).then(pl.lit(name)) for name in failures]
                               + [pl.when(c("_duplicate")).then(pl.lit("case_id:duplicate"))],
                               separator=";", ignore_nulls=True))
    return accepted, quarantined


def _pseudonyms(values: Any) -> Any:
    """HMAC-SHA-256 of each distinct value, as hex; the column mapped through them."""
    import hmac

    import polars as pl

    uniques = values.unique().drop_nulls().to_list()
    digests = [hmac.digest(HMAC_KEY, v.encode(), "sha256").hex() for v in uniques]
    mapping = pl.DataFrame({"v": uniques, "t": digests}, schema={"v": pl.Utf8, "t": pl.Utf8})
    return values.to_frame("v").join(mapping, on="v", how="left", maintain_order="left")["t"] \
        .alias(values.name)


def _ndjson(frame: Any) -> bytes:
    sink = io.BytesIO()
    frame.write_ndjson(sink)
    return sink.getvalue()


def _features(accepted: Any) -> bytes:
    """The CSR matrix as the library lays it out: per row one column per category block
    (a value, or its null), then each number and its missing indicator; npz bytes."""
    import numpy as np
    import polars as pl
    import scipy.sparse as sp

    n = accepted.height
    blocks: list[tuple[np.ndarray, np.ndarray]] = []
    width = 0
    for name in CATEGORICAL:
        column = accepted[name].cast(pl.Utf8)
        vocabulary = sorted(column.drop_nulls().unique().to_list())
        codes = column.cast(pl.Enum(vocabulary)).to_physical().fill_null(len(vocabulary))
        blocks.append((width + codes.to_numpy().astype(np.int32), np.ones(n, np.float32)))
        width += len(vocabulary) + 1
    age = ((accepted["report_date"] - accepted["birth_date"]).dt.total_days() / 365.25)
    for number in (accepted["lab_value"], age):
        missing = number.is_null().to_numpy()
        values = number.fill_null(1.0).to_numpy().astype(np.float32)
        blocks.append((width + missing.astype(np.int32), values))
        width += 2
    indices = np.column_stack([b[0] for b in blocks]).reshape(-1)
    data = np.column_stack([b[1] for b in blocks]).reshape(-1)
    per_row = len(blocks)
    matrix = sp.csr_matrix((data, indices, np.arange(0, n * per_row + 1, per_row)),
                           shape=(n, width))
    matrix.eliminate_zeros()
    y = accepted[LABEL].cast(pl.Int8).to_numpy()
    sink = io.BytesIO()
    np.savez(sink, data=matrix.data, indices=matrix.indices, indptr=matrix.indptr,
             shape=np.array(matrix.shape), format=np.array("csr"), y=y)
    return sink.getvalue()


# --- the parent: both sides, alternating -----------------------------------------------------

def _child(func: str, module: str, env: dict[str, str], **kwargs: Any) -> dict[str, Any]:
    return run_case(CHILD.format(module=module, func=func, kwargs=kwargs), env, timeout=3600)


def _loadavg() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--forms", default=",".join(FORMS))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    forms = tuple(args.forms.split(","))
    from run_all import prepare

    inputs = prepare(args.rows, forms)
    env = settings_env()
    gnupg = str(HOME / "gnupg")
    work = Path(tempfile.mkdtemp(prefix="ingest-equal-work-"))
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {f: {"library": [], "floor": []}
                                                        for f in forms}
    loads = [_loadavg()]
    for turn in range(args.repeat):
        for name in forms:
            spec = inputs[name].to_json()
            # alternate which side goes first, so neither always meets the same load
            order = ("library", "floor") if turn % 2 == 0 else ("floor", "library")
            for side in order:
                if side == "library":
                    out = tempfile.mkdtemp(prefix="out-", dir=work)
                    result = _child("library", "bench_equal_work", env, form=spec, out=out)
                else:
                    result = _child("floor", "bench_equal_work", env, form=spec,
                                    gnupg_home=gnupg)
                result["loadavg"] = _loadavg()
                runs[name][side].append(result)
                print(f"{name:6} {side:8} wall {result['wall_s']:6.2f} s  cpu "
                      f"{result['cpu_s']:6.2f} s  load {result['loadavg']}", file=sys.stderr,
                      flush=True)
    loads.append(_loadavg())
    rows, stage_rows = _summarise(runs)
    print(f"\nequal work at {args.rows:,} rows, median of {args.repeat}; load average "
          f"{loads[0]} (start), {loads[-1]} (end)")
    print_table(rows, ["form", "library_wall_s", "floor_wall_s", "ratio_wall",
                       "library_cpu_s", "floor_cpu_s", "ratio_cpu", "goal_met",
                       "library_accepted", "floor_accepted"])
    print()
    print_table(stage_rows, ["form", "side", "seconds", "stages"])
    save(f"equal_work-{args.rows}", {"rows": args.rows, "repeat": args.repeat,
                                     "goal_library_over_floor": GOAL, "loadavg": loads,
                                     "cpus": os.cpu_count(), "summary": rows,
                                     "stages": stage_rows, "runs": runs})


def _summarise(runs: dict[str, dict[str, list[dict[str, Any]]]]
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows, stage_rows = [], []
    for name, sides in runs.items():
        med = {side: {k: statistics.median(r[k] for r in results)
                      for k in ("wall_s", "cpu_s")} for side, results in sides.items()}
        ratio = med["library"]["wall_s"] / med["floor"]["wall_s"]
        rows.append({"form": name, "library_wall_s": round(med["library"]["wall_s"], 2),
                     "floor_wall_s": round(med["floor"]["wall_s"], 2),
                     "ratio_wall": round(ratio, 2),
                     "library_cpu_s": round(med["library"]["cpu_s"], 2),
                     "floor_cpu_s": round(med["floor"]["cpu_s"], 2),
                     "ratio_cpu": round(med["library"]["cpu_s"] / med["floor"]["cpu_s"], 2),
                     "goal_met": ratio <= GOAL,
                     "library_accepted": sides["library"][0]["rows_accepted"],
                     "floor_accepted": sides["floor"][0]["rows_accepted"]})
        for side, results in sides.items():
            for what in ("stages", "cpu_stages"):
                names = list(results[0][what])
                stages = {s: round(statistics.median(r[what].get(s, 0.0) for r in results), 2)
                          for s in names}
                stage_rows.append({"form": name, "side": side,
                                   "seconds": "wall" if what == "stages" else "cpu",
                                   "stages": " ".join(f"{k}={v}" for k, v in stages.items())})
    return rows, stage_rows


if __name__ == "__main__":
    main()
