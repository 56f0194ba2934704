"""Fixed-width records: the library's reader beside polars slicing and pandas' read_fwf.

    .venv/bin/python bench/bench_fixed.py [--rows N]

The reference table (Windows-1252, comments with line breaks and characters beyond
ASCII) as LF-ended records, and the admissions as EBCDIC (IBM1140) tape records with
zoned and packed numbers. Each reader runs in its own process; the figures are wall
seconds and the peak RSS of a fresh process (which includes its copy of the input).
``polars slicing`` is a floor: one string column
of lines sliced with ``str.slice`` (it cannot read records whose values hold a line
break, so it is given the same records with those breaks blanked, and it decodes
nothing but UTF-8: it is given the UTF-8 text). ``pandas read_fwf`` is what a pandas
user would call; it splits records at every line break, so its row count is shown.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _inputs(rows: int) -> dict[str, Any]:
    from ingest.synth import generate
    from ingest.synth.admissions import generate as generate_admissions
    from ingest.synth.fixed_forms import (
        ADMISSION_NUMBERS,
        fit_layout,
        layout_csv,
        to_fixed_width,
    )

    frame = generate(rows, seed=1)[0]
    slots = fit_layout(frame, "cp1252")
    flat = frame.with_columns(frame["CMNT"].str.replace_all("[\r\n]", " "))
    admissions = generate_admissions(rows, seed=1, bad_share=0.005)[0]
    adm_slots = fit_layout(admissions, "cp1140", {s.name: s for s in ADMISSION_NUMBERS})
    return {
        "reference": (to_fixed_width(frame, slots, "cp1252", "\n"), layout_csv(slots),
                      [s.width for s in slots]),
        "reference-flat-utf8": to_fixed_width(flat, fit_layout(flat, "utf-8"), "utf-8", "\n"),
        "flat-widths": [s.width for s in fit_layout(flat, "utf-8")],
        "admissions": (to_fixed_width(admissions, adm_slots, "cp1140"), layout_csv(adm_slots)),
    }


def _ingest(data: bytes, layout: bytes, schema: str) -> int:
    import dataclasses
    import importlib

    from ingest.media import Member
    from ingest.readers import read_delivery_table

    dataset = importlib.import_module(f"schemas.{schema}").DATASET
    if schema == "admissions":
        dataset = dataclasses.replace(dataset, encodings=("cp1140",))
    return read_delivery_table([Member("d.dat", data), Member("l.csv", layout)], dataset).rows


def _polars_slices(data: bytes, widths: list[int]) -> int:
    import polars as pl

    lines = pl.Series(data.decode("utf-8").split("\n")[:-1])
    starts = [sum(widths[:i]) for i in range(len(widths))]
    frame = pl.DataFrame({"l": lines}).select(
        pl.col("l").str.slice(s, w).str.strip_chars_end(" ").alias(str(i))
        for i, (s, w) in enumerate(zip(starts, widths, strict=True)))
    return frame.height


def _pandas(data: bytes, widths: list[int], encoding: str) -> int:
    import pandas as pd

    return len(pd.read_fwf(io.BytesIO(data), widths=widths, header=None, encoding=encoding,
                           dtype=str, keep_default_na=False))


def _child(queue: Any, case: str, inputs: dict[str, Any]) -> None:
    import pandas  # noqa: F401 - imports are not timed
    import polars  # noqa: F401

    import ingest.readers  # noqa: F401
    import schemas.admissions  # noqa: F401
    import schemas.reference  # noqa: F401

    t0 = time.perf_counter()
    if case == "ingest: reference (cp1252, LF)":
        rows = _ingest(*inputs["reference"][:2], "reference")
    elif case == "ingest: admissions (EBCDIC tape, zoned+packed)":
        rows = _ingest(*inputs["admissions"], "admissions")
    elif case == "polars str.slice floor (UTF-8, no breaks)":
        rows = _polars_slices(inputs["reference-flat-utf8"], inputs["flat-widths"])
    else:
        rows = _pandas(inputs["reference"][0], inputs["reference"][2], "cp1252")
    queue.put((case, time.perf_counter() - t0, rows,
               resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=400_000)
    args = parser.parse_args()
    inputs = _inputs(args.rows)
    print(f"{args.rows} rows; reference records {len(inputs['reference'][0]) / 2**20:.0f} MiB")
    context = mp.get_context("spawn")  # polars threads do not survive a fork
    for case in ("ingest: reference (cp1252, LF)",
                 "ingest: admissions (EBCDIC tape, zoned+packed)",
                 "polars str.slice floor (UTF-8, no breaks)", "pandas read_fwf (cp1252)"):
        queue = context.Queue()
        process = context.Process(target=_child, args=(queue, case, inputs))
        process.start()
        name, seconds, rows, peak = queue.get()
        process.join()
        print(f"{name:50s} {seconds:7.2f} s  {rows:>8} rows  peak RSS {peak:7.0f} MiB")


if __name__ == "__main__":
    main()
