"""SAS data sets written by SAS itself (pandas' test files, ``tests/data/stats/sas/``).

Each file runs as a delivery through the library and every published value is
checked against the CSV pandas ships beside it, under these rules:

* text: equal, the CSV's empty field being a null;
* dates (``MMDDYY10.`` columns): the CSV holds SAS day numbers, so the date is
  1960-01-01 plus that many days;
* numbers: the CSV prints at most 12 significant digits, so both sides are
  compared as ``%.12g``; a column SAS stored in fewer than 8 bytes (``LENGTH YEAR
  4``, read from the file's column descriptor when the sample was added) holds the
  CSV's value with its double cut to those leading bytes, as SAS writes it;
  an empty field is a null.
"""

from __future__ import annotations

import struct
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from sas_schemas import AIRLINE, PRODUCTSALES, TEST1
from test_delivery_matrix import CONTAINERS, PASSWORD, deliver

import ingest
from ingest.schema import Dataset

from conftest import data_fixture

SAMPLES: dict[str, tuple[Dataset, str, dict[str, int], str]] = {
    "airline": (AIRLINE, "airline.csv", {"YEAR": 4}, "9.0000M0 WIN"),
    "productsales": (PRODUCTSALES, "productsales.csv", {}, "9.0301M2 X64_7PRO"),
    "test1": (TEST1, "test_sas7bdat_1.csv", {}, "9.0401M1 Linux"),
}
"""Sample -> (schema, truth CSV, columns stored in fewer than 8 bytes, SAS release
and host in the file's header)."""
SAS_EPOCH = date(1960, 1, 1)


def sample(name: str) -> bytes:
    return data_fixture("stats", "sas", f"{name}.sas7bdat").read_bytes()


def truncated(value: float, width: int) -> float:
    """``value`` as SAS stores it in a numeric of ``width`` bytes: the double's
    leading bytes, the rest zero."""
    return struct.unpack(">d", struct.pack(">d", value)[:width] + bytes(8 - width))[0]


def expected(column: str, text: str | None, kind: pl.DataType, width: int) -> object:
    if text is None or text == "":
        return None
    if kind == pl.Date:
        return SAS_EPOCH + timedelta(days=int(text))
    if kind == pl.Float64:
        return f"{truncated(float(text), width):.12g}"
    return text


def published(value: object, kind: pl.DataType) -> object:
    if value is None:
        return None
    return f"{value:.12g}" if kind == pl.Float64 else value


@pytest.mark.parametrize("name", list(SAMPLES))
def test_a_sas_written_file_was_written_by_sas(name: str) -> None:
    """The header names the SAS release and host that wrote it, not ReadStat's."""
    release, host = SAMPLES[name][3].split(" ")
    head = sample(name)[:1024]
    assert release.encode() in head and host.encode() in head
    own = data_fixture("stats", "haven.sas7bdat").read_bytes()[:1024]
    assert release.encode() not in own  # ReadStat writes its own release string


@pytest.mark.parametrize("name", list(SAMPLES))
def test_a_sas_written_file_reads_exactly_against_its_csv(name: str, tmp_path: Path,
                                                          home: Path) -> None:
    dataset, truth_name, widths, _ = SAMPLES[name]
    truth = pl.read_csv(data_fixture("stats", "sas", truth_name), infer_schema=False)
    folder = tmp_path / "delivery"
    folder.mkdir()
    (folder / f"{name}.sas7bdat").write_bytes(sample(name))

    summary = ingest.run_delivery(folder, schema=dataset, out=tmp_path / "out")

    assert (summary.rows_in, summary.rows_accepted, summary.rows_quarantined) == (
        truth.height, truth.height, 0)
    assert summary.repairs == {}
    got = ingest.load(tmp_path / "out").with_columns(pl.col(pl.Categorical).cast(pl.Utf8))
    assert got.height == truth.height
    differ = []
    for column in dataset.columns:
        kind = got.schema[column.name]
        want = [expected(column.source, v, kind, widths.get(column.source, 8))
                for v in truth[column.source].to_list()]
        have = [published(v, kind) for v in got[column.name].to_list()]
        rows = [i for i, (a, b) in enumerate(zip(have, want, strict=True)) if a != b]
        if rows:
            differ.append(f"{column.source}: rows {rows[:5]}")
    assert differ == []


def test_the_stored_length_rule_is_what_the_file_holds() -> None:
    """YEAR of the airline file is stored in 4 bytes: its CSV value differs from the
    file's beyond 12 digits, and equals it once cut to 4 bytes."""
    assert f"{1958.00096758:.12g}" != "1958"
    assert f"{truncated(1958.00096758, 4):.12g}" == "1958"


@pytest.mark.parametrize("container", ["openpgp-key", "zip-aes", "7z-encrypted-names",
                                       "tar-zstd-tape", "cpio-gzip-tape"])
def test_a_sas_written_file_reads_the_same_in_each_container(
        container: str, tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """productsales (SAS 9.3, 64-bit) in the delivery matrix's containers gives what it
    gives as a plain file (checked against its CSV above)."""
    monkeypatch.setenv("INGEST_PASSPHRASE", PASSWORD)
    dataset = SAMPLES["productsales"][0]
    files = {"productsales.sas7bdat": sample("productsales")}
    (tmp_path / "plain").mkdir()
    (tmp_path / "packed").mkdir()
    plain = ingest.run_delivery(deliver(tmp_path / "plain", files), schema=dataset,
                                out=tmp_path / "out-plain")
    packed = deliver(tmp_path / "packed", CONTAINERS[container](files, tmp_path, home))
    summary = ingest.run_delivery(packed, schema=dataset, out=tmp_path / "out")
    assert (summary.rows_in, summary.rows_accepted) == (plain.rows_in, plain.rows_accepted)
    assert ingest.load(tmp_path / "out").equals(ingest.load(tmp_path / "out-plain"))
