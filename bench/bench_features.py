"""Benchmark: the reference table (400k rows) to a CSR matrix, ours vs scikit-learn.

Both sides encode the same columns into the same layout: the three categorical
columns one-hot (sex, diagnosis_code, county_fips), lab_value with a missing
indicator, and age_at_report derived with the schema's expression. The
scikit-learn side is what one would write without this package: polars to
numpy object arrays, ``OneHotEncoder(handle_unknown="ignore")``, the numeric
columns as a sparse block, ``scipy.sparse.hstack`` and ``tocsr()``.

The table is synthetic and stays in memory (generated, read, validated,
policies applied), like a delivery inside the pipeline.

    python bench/bench_features.py [--rows 400000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ingest.features as features  # noqa: E402
from ingest.keys.keyring import SecretKey  # noqa: E402
from ingest.readers.csv import read_delimited  # noqa: E402
from ingest.schema import Dataset, load_dataset  # noqa: E402
from ingest.synth import generate, to_delimited  # noqa: E402
from ingest.validate import validate  # noqa: E402
from ingest.writers import apply_policies  # noqa: E402

DELIVERY = date(2026, 6, 30)


def reference_table(rows: int, seed: int, dataset: Dataset) -> pl.DataFrame:
    """A cleaned table shaped like ``ingest.load`` output (categoricals typed)."""
    frame, _ = generate(rows, seed=seed, delivery_date=DELIVERY)
    source = read_delimited(to_delimited(frame), dataset, "bench.csv")
    accepted = validate(source, dataset, DELIVERY).accepted
    return apply_policies(accepted, dataset, SecretKey("bench", bytes(32)))


def sklearn_csr(table: pl.DataFrame, dataset: Dataset, encoder: Any = None,
                dtype: Any = np.float32) -> tuple[sp.csr_matrix, Any]:
    """The same matrix the scikit-learn way (fit when ``encoder`` is None)."""
    from sklearn.preprocessing import OneHotEncoder

    spec = dataset.features
    assert dataset.derive is not None
    cats = table.select(pl.col(c).cast(pl.String) for c in spec.categorical).to_numpy()
    nums = table.select(*spec.numeric, **{d: dataset.derive()[d] for d in spec.derived})
    if encoder is None:
        encoder = OneHotEncoder(handle_unknown="ignore", dtype=dtype)
        onehot = encoder.fit_transform(cats)
    else:
        onehot = encoder.transform(cats)
    blocks = [onehot]
    for name in nums.columns:
        col = nums[name]
        missing = col.is_null().to_numpy()
        values = col.fill_null(0.0).to_numpy().astype(dtype)
        blocks.append(sp.csr_matrix(np.column_stack([values, missing.astype(dtype)])))
    return sp.hstack(blocks, format="csr", dtype=dtype), encoder


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    times, value = [], None
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return min(times), value


def matrix_bytes(X: sp.csr_matrix) -> int:
    return int(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    dataset = load_dataset("reference")

    t0 = time.perf_counter()
    table = reference_table(args.rows, 11, dataset)
    second = reference_table(max(args.rows // 4, 1000), 12, dataset)
    print(f"table: {table.height:,} rows x {table.width} columns "
          f"(prepared in {time.perf_counter() - t0:.1f} s, not timed below)")

    ours_fit, fm = best_of(args.repeat, lambda: features.build(table, dataset))
    sk_fit, (X_sk, encoder) = best_of(args.repeat, lambda: sklearn_csr(table, dataset))
    sk64_fit, (X_sk64, _) = best_of(args.repeat,
                                    lambda: sklearn_csr(table, dataset, dtype=np.float64))
    ours_tr, fm2 = best_of(args.repeat,
                           lambda: features.build(second, dataset, encoding=fm.encoding))
    sk_tr, _ = best_of(args.repeat, lambda: sklearn_csr(second, dataset, encoder))

    # same layout up to the unseen/null buckets: compare the shared nnz structure
    same_nnz = fm.X.nnz == X_sk.nnz
    print(f"matrix: {fm.shape[0]:,} x {fm.shape[1]:,}, nnz {fm.X.nnz:,} "
          f"(scikit-learn {X_sk.shape[1]:,} columns, nnz {X_sk.nnz:,}, same nnz: {same_nnz})")
    print(f"{'':28}{'ours':>10}{'sklearn':>10}{'ratio':>8}")
    print(f"{'fit + encode (s)':28}{ours_fit:10.3f}{sk_fit:10.3f}{sk_fit / ours_fit:7.1f}x")
    print(f"{'  sklearn default float64':28}{'':10}{sk64_fit:10.3f}{sk64_fit / ours_fit:7.1f}x")
    print(f"{'encode, reused encoding (s)':28}{ours_tr:10.3f}{sk_tr:10.3f}"
          f"{sk_tr / ours_tr:7.1f}x   ({second.height:,} rows)")
    mb = 1 / 2**20
    print(f"{'CSR memory (MiB)':28}{matrix_bytes(fm.X) * mb:10.1f}"
          f"{matrix_bytes(X_sk) * mb:10.1f}   (data + indices + indptr; sklearn float64: "
          f"{matrix_bytes(X_sk64) * mb:.1f})")
    print(f"  ours: data {fm.X.data.dtype}, indices {fm.X.indices.dtype}, "
          f"indptr {fm.X.indptr.dtype}; sklearn: data {X_sk.data.dtype}, "
          f"indices {X_sk.indices.dtype}, indptr {X_sk.indptr.dtype}")

    import pyrage

    recipient = pyrage.x25519.Identity.generate().to_public()
    save_s, files = best_of(1, lambda: features.save(fm, recipient))
    sizes = ", ".join(f"{name} {len(data) * mb:.1f} MiB" for name, data in files.items())
    print(f"save (npz + age, in memory): {save_s:.2f} s; {sizes}")
    print(f"second delivery: {fm2.shape[1]:,} columns (unchanged: "
          f"{fm2.shape[1] == fm.shape[1]})")


if __name__ == "__main__":
    main()
