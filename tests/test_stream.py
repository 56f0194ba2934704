"""The batched path (ingest.stream) makes what the in-memory path makes.

Each delivery form the batched path takes is run both ways with tiny batches
(so records, quoted line breaks and duplicates fall across batch boundaries),
and every output is decrypted and compared: the cleaned table, the JSON Lines,
the quarantine, the feature matrix and its encoding, and the manifest's counts,
reasons and repairs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pyrage
import pytest
import scipy.sparse as sp

from ingest import stream
from ingest.errors import DecryptionError, IngestError, ReadError, ValidationRejected
from ingest.keys import Keyring
from ingest.pipeline import RunSummary, run_delivery
from ingest.settings import load_settings
from ingest.synth import Truth, generate, to_delimited
from ingest.writers import read_parquet

from _canaries import Canary, Maker, Scanner, files_under
from conftest import DELIVERY_DATE

WHOLE = 1 << 62
"""stream_above_bytes that keeps every delivery on the in-memory path."""


@pytest.fixture(scope="module")
def table_3k() -> tuple[pl.DataFrame, Truth]:
    return generate(3_000, seed=11, delivery_date=DELIVERY_DATE)


def _run(folder: Path, out: Path, batch: int | None, **kw: object) -> RunSummary:
    """``batch`` None: the in-memory path; else the batched one, ``batch`` bytes a batch."""
    settings = load_settings(stream_above_bytes=WHOLE if batch is None else 0,
                             stream_batch_bytes=batch or 1 << 26)
    summary = run_delivery(folder, out=out, delivery_date=DELIVERY_DATE, settings=settings,
                           **kw)  # type: ignore[arg-type]
    assert ("stream" in summary.stage_seconds) == (batch is not None)  # the path asked for
    return summary


def _write(folder: Path, data: bytes, name: str = "cases.csv") -> Path:
    folder.mkdir(parents=True)
    (folder / name).write_bytes(data)
    return folder


def _encrypted(home: Path, folder: Path, data: bytes, tmp: Path) -> Path:
    from ingest.crypto.openpgp import encrypt_openpgp, export_public_key

    cipher = encrypt_openpgp(data, tmp / "sender",
                             recipient_key=export_public_key(home / "gnupg"))
    return _write(folder, cipher, "cases.csv.gpg")


def _outputs(summary: RunSummary) -> dict[str, object]:
    """Every output decrypted, and the manifest without what differs run to run."""
    folder = Path(summary.output_dir)
    keyring = Keyring.open(load_settings())
    identity = keyring.age_identity()
    plain = {p.name: pyrage.decrypt(p.read_bytes(), [identity])
             for p in folder.glob("*.age") if not p.name.startswith("features.npz")}
    npz = pyrage.decrypt((folder / "features.npz.age").read_bytes(), [identity])
    import io
    arrays = dict(np.load(io.BytesIO(npz), allow_pickle=False))
    manifest = json.loads((folder / "manifest.json").read_text())
    for key in ("run", "outputs"):
        manifest.pop(key)
    table = pl.from_arrow(read_parquet(folder / "reference.parquet", keyring))
    return {"table": table, "plain": plain, "arrays": arrays, "manifest": manifest,
            "counts": (summary.rows_in, summary.rows_accepted, summary.rows_quarantined,
                       summary.quarantine_reasons, summary.repairs, summary.warnings)}


def _same(whole: dict[str, object], batched: dict[str, object]) -> None:
    assert isinstance(whole["table"], pl.DataFrame)
    assert whole["table"].equals(batched["table"])  # type: ignore[arg-type]
    assert whole["table"].hash_rows().sum() == batched["table"].hash_rows().sum()  # type: ignore[union-attr]
    assert whole["plain"] == batched["plain"]  # JSON Lines, quarantine, encoding: byte for byte
    a, b = whole["arrays"], batched["arrays"]
    assert isinstance(a, dict) and isinstance(b, dict)
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    assert whole["manifest"] == batched["manifest"]
    assert whole["counts"] == batched["counts"]


def _both(folder: Path, tmp: Path, batch: int) -> tuple[dict[str, object], dict[str, object]]:
    whole = _outputs(_run(folder, tmp / "out-whole", None))
    batched = _outputs(_run(folder, tmp / "out-batched", batch))
    return whole, batched


FORMS: dict[str, dict[str, object]] = {
    "cp1252-crlf-trailer": {},
    "utf8-bom": {"encoding": "utf-8", "bom": True, "trailer": False},
    "tsv-lf": {"separator": "\t", "crlf": False},
}


@pytest.mark.parametrize("form", list(FORMS))
def test_each_form_batched_equals_whole(form: str, home: Path, tmp_path: Path,
                                        table_3k: tuple[pl.DataFrame, Truth]) -> None:
    frame, _ = table_3k
    folder = _write(tmp_path / "delivery", to_delimited(frame, **FORMS[form]))  # type: ignore[arg-type]
    whole, batched = _both(folder, tmp_path, 5_000)
    _same(whole, batched)
    assert whole["counts"][2] > 0  # type: ignore[index]  # some rows were quarantined


def test_encrypted_delivery_streams_through_gpg(home: Path, tmp_path: Path,
                                                 table_3k: tuple[pl.DataFrame, Truth]) -> None:
    frame, _ = table_3k
    folder = _encrypted(home, tmp_path / "delivery", to_delimited(frame), tmp_path)
    whole, batched = _both(folder, tmp_path, 7_000)
    _same(whole, batched)
