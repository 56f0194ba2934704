"""Hostile SPSS, Stata and SAS files: truncated, corrupted, or declaring more rows or a
longer string than they hold, are refused with a clear message and nothing written;
no declared size is trusted before it is checked against the file's bytes."""

from __future__ import annotations

import io
import os
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

import pyreadstat
import pytest
from test_readers_stats import SAMPLE

from ingest.errors import ReadError
from ingest.pipeline import run_delivery
from ingest.readers.stats import read_stats
from ingest.synth import generate
from schemas.reference import DATASET

from conftest import DELIVERY_DATE, data_fixture


def _written(write: Callable[..., None], suffix: str, **options: object) -> bytes:
    frame, _ = generate(3000, seed=5)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "t" + suffix)
        write(frame.to_pandas(), path, **options)
        return Path(path).read_bytes()


def _stata(**options: object) -> bytes:
    frame, _ = generate(300, seed=5)
    out = io.BytesIO()
    frame.to_pandas().to_stata(out, write_index=False, version=118, **options)
    return out.getvalue()


FILES: dict[str, tuple[str, Callable[[], bytes]]] = {
    "sav": ("spss", lambda: _written(pyreadstat.write_sav, ".sav")),
    "zsav": ("spss", lambda: _written(pyreadstat.write_sav, ".zsav", compress=True)),
    "dta": ("stata", lambda: _written(pyreadstat.write_dta, ".dta")),
    "xpt": ("sas-transport", lambda: _written(pyreadstat.write_xport, ".xpt",
                                              file_format_version=8)),
    "sas7bdat": ("sas7bdat", lambda: data_fixture("stats", "haven.sas7bdat").read_bytes()),
}


@pytest.mark.parametrize("cut", [0.99, 0.5, 0.1, 0.02])
@pytest.mark.parametrize("form", list(FILES))
def test_a_truncated_file_is_refused(form: str, cut: float) -> None:
    fmt, make = FILES[form]
    data = make()
    with pytest.raises(ReadError, match=r"^cases: the file (is damaged or )?(is )?truncated"):
        read_stats(fmt, data[:int(len(data) * cut)], DATASET, "cases")


def test_a_transport_file_cut_at_a_record_boundary_is_refused_by_its_count() -> None:
    data = FILES["xpt"][1]()
    cut = data[:(len(data) // 2) // 80 * 80]
    with pytest.raises(ReadError, match="declares 3,000 rows but holds"):
        read_stats("sas-transport", cut, DATASET, "cases")


def test_a_corrupted_compressed_file_is_refused() -> None:
    data = bytearray(FILES["zsav"][1]())
    at = len(data) * 2 // 3
    data[at:at + 8] = bytes(b ^ 0x5A for b in data[at:at + 8])
    with pytest.raises(ReadError, match="damaged or truncated"):
        read_stats("spss", bytes(data), DATASET, "cases")


def test_a_corrupted_sas_page_is_refused() -> None:
    data = bytearray(FILES["sas7bdat"][1]())
    data[len(data) // 2:] = bytes(len(data) - len(data) // 2)  # the data page zeroed
    with pytest.raises(ReadError, match="damaged"):
        read_stats("sas7bdat", bytes(data), SAMPLE, "cases")


@pytest.mark.parametrize("form", ["sav", "zsav"])
def test_a_huge_declared_row_count_is_refused_before_reading(form: str) -> None:
    data = bytearray(FILES[form][1]())
    data[80:84] = struct.pack("<i", 10**9)  # the header's case count
    with pytest.raises(ReadError, match="declares 1,000,000,000 rows of 10 columns, more "
                                        "than its [0-9,]+ bytes can hold"):
        read_stats("spss", bytes(data), DATASET, "cases")


def test_a_row_count_beyond_the_rows_present_is_refused() -> None:
    data = bytearray(FILES["sav"][1]())
    data[80:84] = struct.pack("<i", 3001)
    with pytest.raises(ReadError, match="did not contain the expected number of rows"):
        read_stats("spss", bytes(data), DATASET, "cases")


def test_a_huge_stata_row_count_is_refused() -> None:
    data = bytearray(_stata())
    at = data.find(b"<N>") + 3
    data[at:at + 8] = struct.pack("<Q", 10**8)
    with pytest.raises(ReadError, match="declares 100,000,000 rows of 10 columns"):
        read_stats("stata", bytes(data), DATASET, "cases")
    data[at:at + 8] = struct.pack("<Q", 2**40)  # beyond what ReadStat counts in
    with pytest.raises(ReadError, match="cases: the file could not be read.*damaged"):
        read_stats("stata", bytes(data), DATASET, "cases")


def test_a_huge_declared_string_length_is_refused() -> None:
    """A Stata long string (strL) declaring 4 GiB: refused, not allocated."""
    data = bytearray(_stata(convert_strl=["CMNT"]))
    at = data.find(b"GSO", data.find(b"<strls>"))
    data[at + 16:at + 20] = struct.pack("<I", 0xFFFFFFF0)  # the string's byte length
    with pytest.raises(ReadError, match="damaged or truncated"):
        read_stats("stata", bytes(data), DATASET, "cases")


@pytest.mark.parametrize("form", ["sav", "dta", "sas7bdat"])
def test_a_damaged_file_in_a_delivery_writes_nothing(form: str, tmp_path: Path,
                                                    home: Path) -> None:
    _, make = FILES[form]
    data = make()
    folder, out = tmp_path / "delivery", tmp_path / "out"
    folder.mkdir()
    out.mkdir()
    (folder / f"cases.{form}").write_bytes(data[:len(data) // 2])
    with pytest.raises(ReadError) as caught:
        run_delivery(folder, out=out, delivery_date=DELIVERY_DATE)
    assert f"cases.{form}" in str(caught.value)
    assert [p.name for p in out.iterdir() if not p.name.startswith(".")] == []
