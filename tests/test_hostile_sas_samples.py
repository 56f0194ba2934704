"""The SAS-written samples (``tests/data/stats/sas/``), damaged: cut short anywhere, or
with bytes flipped anywhere.

A cut is always refused (at every 1 KiB boundary too, where a page may end). A
sas7bdat file has no checksum, so flipped bytes inside a data page may change a
value and still read: what is asked is that every flip is either refused with the
library's own error or read with every row (no crash, no other exception, no row
lost or added). A delivery that differs from what the sender sent is caught by
comparing its fingerprint (SHA-256, in the manifest) with the sender's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_sas_samples import SAMPLES, sample

from ingest.errors import IngestError, ReadError, SchemaMismatchError
from ingest.pipeline import run_delivery
from ingest.readers.stats import read_stats


@pytest.mark.parametrize("name", list(SAMPLES))
def test_a_sas_written_file_cut_short_anywhere_is_refused(name: str) -> None:
    dataset = SAMPLES[name][0]
    data = sample(name)
    cuts = sorted({*range(1024, len(data), 1024),
                   *(int(len(data) * f) for f in (0.99, 0.5, 0.1, 0.02)), len(data) - 1})
    read = []
    for cut in cuts:
        try:
            read_stats("sas7bdat", data[:cut], dataset, name)
            read.append(cut)
        except ReadError as exc:
            assert "damaged or truncated" in str(exc)
    assert read == []


@pytest.mark.parametrize("name", list(SAMPLES))
def test_flipped_bytes_are_refused_or_read_with_every_row(name: str) -> None:
    dataset = SAMPLES[name][0]
    data = sample(name)
    rows = read_stats("sas7bdat", data, dataset, name).frame.height
    outcomes = {"refused": 0, "read": 0}
    for at in range(0, len(data) - 8, max(64, len(data) // 150)):
        damaged = bytearray(data)
        damaged[at:at + 8] = bytes(b ^ 0x5A for b in damaged[at:at + 8])
        try:
            table = read_stats("sas7bdat", bytes(damaged), dataset, name)
        except (ReadError, SchemaMismatchError):
            outcomes["refused"] += 1
            continue
        assert table.frame.height == rows, at
        outcomes["read"] += 1
    assert outcomes["refused"] > 0  # the header and metadata pages are checked


def test_a_truncated_sas_written_delivery_writes_nothing(tmp_path: Path, home: Path) -> None:
    data = sample("productsales")
    folder = tmp_path / "delivery"
    folder.mkdir()
    (folder / "productsales.sas7bdat").write_bytes(data[:len(data) // 2])
    with pytest.raises(IngestError, match="productsales.sas7bdat: the file is damaged or "
                                          "truncated"):
        run_delivery(folder, schema=SAMPLES["productsales"][0], out=tmp_path / "out")
    assert not list((tmp_path / "out").rglob("*.parquet"))
    assert not list((tmp_path / "out").rglob("*.age"))
