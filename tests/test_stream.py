"""The batched path (ingest.stream) makes what the in-memory path makes.

Each delivery form the batched path takes is run both ways with tiny batches
(so records, quoted line breaks and duplicates fall across batch boundaries),
and every output is decrypted and compared: the cleaned table, the JSON Lines,
the quarantine, the feature matrix and its encoding, and the manifest's counts,
reasons and repairs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyrage
import pytest
import scipy.sparse
from _canaries import Canary, Maker, Scanner, files_under

from ingest import features, stream
from ingest.errors import DecryptionError, ReadError, ValidationRejected
from ingest.features import Encoding
from ingest.keys import Keyring
from ingest.media import Member
from ingest.pipeline import RunSummary, run_delivery
from ingest.readers.fixed import positioned
from ingest.schema import Dataset, load_dataset
from ingest.settings import load_settings
from ingest.stream.rowwise import whole_table_derived
from ingest.synth import Truth, generate, to_delimited
from ingest.synth.admissions import generate as generate_admissions
from ingest.synth.fixed_forms import Slot, fit_layout, layout_sas, to_fixed_width
from ingest.writers import read_parquet

from conftest import DELIVERY_DATE

WHOLE = 1 << 62
"""stream_above_bytes that keeps every delivery on the in-memory path."""


@pytest.fixture(scope="module")
def table_3k() -> tuple[pl.DataFrame, Truth]:
    return generate(3_000, seed=11, delivery_date=DELIVERY_DATE)


def _run(folder: Path, out: Path, batch: int | None, **kw: Any) -> RunSummary:
    """``batch`` None: the in-memory path; else the batched one, ``batch`` bytes a batch."""
    settings = load_settings(stream_above_bytes=WHOLE if batch is None else 0,
                             stream_batch_bytes=batch or 1 << 26)
    summary = run_delivery(folder, out=out, delivery_date=DELIVERY_DATE, settings=settings,
                           **kw)
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


def _outputs(summary: RunSummary, table: str = "reference") -> dict[str, object]:
    """Every output decrypted, and the manifest without what differs run to run."""
    folder = Path(summary.output_dir)
    keyring = Keyring.open(load_settings())
    identity = keyring.age_identity()
    plain = {p.name: pyrage.decrypt(p.read_bytes(), [identity])
             for p in folder.glob("*.age") if not p.name.startswith("features.npz")}
    arrays = {}
    if (folder / "features.npz.age").exists():
        npz = pyrage.decrypt((folder / "features.npz.age").read_bytes(), [identity])
        arrays = dict(np.load(io.BytesIO(npz), allow_pickle=False))
    manifest = json.loads((folder / "manifest.json").read_text())
    for key in ("run", "outputs"):
        manifest.pop(key)
    clean = pl.from_arrow(read_parquet(folder / f"{table}.parquet", keyring))
    return {"table": clean, "plain": plain, "arrays": arrays, "manifest": manifest,
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
        assert a[key].dtype == b[key].dtype, key
        assert np.array_equal(a[key], b[key]), key
    assert whole["manifest"] == batched["manifest"]
    assert whole["counts"] == batched["counts"]


def _both(folder: Path, tmp: Path, batch: int, schema: Dataset | None = None
          ) -> tuple[dict[str, object], dict[str, object]]:
    kw = {"schema": schema} if schema is not None else {}
    name = schema.name if schema is not None else "reference"
    whole = _outputs(_run(folder, tmp / "out-whole", None, **kw), name)
    batched = _outputs(_run(folder, tmp / "out-batched", batch, **kw), name)
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


def _edited(frame: pl.DataFrame, **cells: tuple[int, str]) -> pl.DataFrame:
    return frame.with_columns(frame[c].scatter(row, v) for c, (row, v) in cells.items())


def test_quoted_line_breaks_duplicates_and_a_bad_last_row_across_batches(
        home: Path, tmp_path: Path, table_3k: tuple[pl.DataFrame, Truth]) -> None:
    frame, _ = table_3k
    case = frame["CASE_ID"]
    rows = frame.height
    # most records hold line breaks inside quotes: batches are cut between records only
    frame = frame.with_columns(frame["CMNT"].scatter(
        list(range(5, rows, 2)), "first line\r\nsecond, \"quoted\" line\n\nthird\r\n"))
    # repeats of an early case id in later batches, and one repeated within a batch
    frame = _edited(frame, CASE_ID=(rows - 700, case[12]))
    frame = frame.with_columns(frame["CASE_ID"].scatter([rows - 3, rows - 4], case[40]))
    frame = _edited(frame, DOB=(rows - 1, "13/45/1990"))  # the very last row is bad
    folder = _write(tmp_path / "delivery", to_delimited(frame))
    whole, batched = _both(folder, tmp_path, 3_000)
    _same(whole, batched)
    reasons = whole["counts"][3]  # type: ignore[index]
    assert reasons["case_id:duplicate"] >= 3
    quarantine = pl.read_ndjson(batched["plain"]["quarantine.jsonl.age"])  # type: ignore[index]
    repeat = quarantine.filter(pl.col("_row") == rows - 700 + 1)
    assert repeat["_first_row"].to_list() == [13]  # the first occurrence, batches before
    assert rows in quarantine["_row"].to_list()  # the last row


def test_text_that_is_not_utf8_late_in_the_file_is_read_as_the_next_encoding(
        home: Path, tmp_path: Path, table_3k: tuple[pl.DataFrame, Truth]) -> None:
    frame, _ = table_3k
    ascii_only = pl.col("CMNT").str.replace_all(r"[^\x00-\x7f]", "?")
    frame = frame.with_columns(ascii_only)
    frame = _edited(frame, CMNT=(frame.height - 2, "caf\u00e9"))
    data = to_delimited(frame, encoding="cp1252")
    assert data[:-1000].isascii() and not data.isascii()  # UTF-8 fails only at the end
    folder = _write(tmp_path / "delivery", data)
    whole, batched = _both(folder, tmp_path, 4_000)
    _same(whole, batched)
    assert whole["manifest"]["read"]["encoding"] == "cp1252"  # type: ignore[index]


def _nothing_published(out: Path) -> None:
    assert not out.exists() or not [p for p in out.iterdir() if p.name != ".locks"], \
        list(out.iterdir())


def test_a_broken_record_late_in_the_file_publishes_nothing(
        home: Path, tmp_path: Path, table_3k: tuple[pl.DataFrame, Truth]) -> None:
    frame, _ = table_3k
    lines = to_delimited(frame).split(b"\r\n")
    lines[-4] = b'"1234567890","cut short"'  # a record two fields long, near the end
    folder = _write(tmp_path / "delivery", b"\r\n".join(lines))
    with pytest.raises(ReadError, match="do not have the header's 10 fields") as raised:
        _run(folder, tmp_path / "out", 4_000)
    assert "counted within the rows read from data row" in str(raised.value)
    _nothing_published(tmp_path / "out")


def test_a_truncated_openpgp_message_publishes_nothing(
        home: Path, tmp_path: Path, table_3k: tuple[pl.DataFrame, Truth]) -> None:
    frame, _ = table_3k
    folder = _encrypted(home, tmp_path / "delivery", to_delimited(frame), tmp_path)
    cipher = folder / "cases.csv.gpg"
    cipher.write_bytes(cipher.read_bytes()[: cipher.stat().st_size * 2 // 3])
    with pytest.raises(DecryptionError):
        _run(folder, tmp_path / "out", 4_000)
    _nothing_published(tmp_path / "out")


def test_too_many_bad_rows_publish_nothing(home: Path, tmp_path: Path,
                                          table_3k: tuple[pl.DataFrame, Truth]) -> None:
    frame, _ = table_3k
    frame = frame.with_columns(frame["DOB"].scatter(list(range(0, frame.height, 9)), "x"))
    folder = _write(tmp_path / "delivery", to_delimited(frame))
    with pytest.raises(ValidationRejected, match="nothing was published"):
        _run(folder, tmp_path / "out", 4_000)
    _nothing_published(tmp_path / "out")


def test_small_deliveries_stay_in_memory_and_other_forms_fall_back(
        home: Path, tmp_path: Path, table_3k: tuple[pl.DataFrame, Truth]) -> None:
    frame, _ = table_3k
    folder = _write(tmp_path / "delivery", to_delimited(frame))
    settings = load_settings()
    assert settings.stream_above_bytes == 256 * 2**20
    assert stream.streamable(folder, (_reference(),), settings) is None  # small: whole
    assert stream.streamable(folder, (_reference(),),
                             load_settings(stream_above_bytes=0)) is not None
    (folder / "notes.txt").write_text("two files")  # not one file alone: whole
    assert stream.streamable(folder, (_reference(),),
                             load_settings(stream_above_bytes=0)) is None


def _reference():  # noqa: ANN202
    from ingest.schema import load_dataset

    return load_dataset("reference")


def test_no_canary_in_anything_the_batched_run_writes(
        home: Path, tmp_path: Path, table_3k: tuple[pl.DataFrame, Truth]) -> None:
    frame, _ = table_3k
    make = Maker(2718)
    accepted = {"PERS_ID": make.person_id(), "CMNT": make.letters(40)}
    quarantined = {c: make.letters(16) for c in frame.columns}
    canaries = [Canary(f"{c} accepted", v) for c, v in accepted.items()]
    canaries += [Canary(f"{c} quarantined", v) for c, v in quarantined.items()]
    for row, values in ((frame.height - 30, accepted), (frame.height - 20, quarantined)):
        frame = frame.with_columns(frame[c].scatter(row, v) for c, v in values.items())
    folder = _encrypted(home, tmp_path / "delivery", to_delimited(frame), tmp_path)
    summary = _run(folder, tmp_path / "out", 4_000)
    assert summary.rows_quarantined > 0
    scanner = Scanner(canaries)
    assert scanner.scan([tmp_path / "out", home]) == []
    assert any(p.suffix == ".parquet" for p in files_under([tmp_path / "out"]))


def _declared(dataset: Dataset, slots: list[Slot]) -> Dataset:
    """The dataset with the layout's positions declared (a delivery of one file)."""
    found = positioned([Member("layout.sas", layout_sas(slots))], dataset)
    assert found is not None
    return found


@pytest.mark.parametrize("ends", ["\r\n", ""])
def test_fixed_width_records_line_ended_and_on_tape(
        ends: str, home: Path, tmp_path: Path, table_3k: tuple[pl.DataFrame, Truth]) -> None:
    frame, _ = table_3k
    slots = fit_layout(frame, "cp1252")
    dataset = _declared(_reference(), slots)
    folder = _write(tmp_path / "delivery", to_fixed_width(frame, slots, "cp1252", ends),
                    "cases.dat")
    whole, batched = _both(folder, tmp_path, 5_000, dataset)
    _same(whole, batched)
    assert whole["manifest"]["read"]["format"] == "fixed-width"  # type: ignore[index]


def test_ebcdic_tape_with_zoned_and_packed_numbers(home: Path, tmp_path: Path) -> None:
    from schemas.admissions import DATASET as ADMISSIONS

    frame, _ = generate_admissions(3_000, seed=11, bad_share=0.005)
    numbers = {"LOS_DAYS": Slot("LOS_DAYS", 5, "zoned", 0),
               "PRIOR_ADM": Slot("PRIOR_ADM", 3, "zoned", 0),
               "CREAT": Slot("CREAT", 4, "packed", 3)}
    slots = fit_layout(frame, "cp1140", numbers)
    dataset = _declared(dataclasses.replace(ADMISSIONS, encodings=("cp1140",)), slots)
    folder = _write(tmp_path / "delivery", to_fixed_width(frame, slots, "cp1140"), "ADM.DAT")
    whole, batched = _both(folder, tmp_path, 6_000, dataset)
    _same(whole, batched)
    assert whole["counts"][2] > 0  # type: ignore[index]


def test_a_container_inside_the_encryption_is_read_whole(
        home: Path, tmp_path: Path, table_3k: tuple[pl.DataFrame, Truth]) -> None:
    """A tar behind OpenPGP: the first bytes are no table, so the run falls back to
    the in-memory path (which opens the tar) before writing anything."""
    from ingest.synth.packaging import make_tar

    frame, _ = table_3k
    tar = make_tar({"cases.csv": to_delimited(frame)})
    folder = _encrypted(home, tmp_path / "delivery", tar, tmp_path)
    settings = load_settings(stream_above_bytes=0, stream_batch_bytes=4_000)
    summary = run_delivery(folder, out=tmp_path / "out", delivery_date=DELIVERY_DATE,
                           settings=settings)
    assert "stream" not in summary.stage_seconds and "read" in summary.stage_seconds
    whole = _run(folder, tmp_path / "out-whole", None)
    assert _outputs(summary)["counts"] == _outputs(whole)["counts"]


def test_r_escaped_quotes_are_read_whole(home: Path, tmp_path: Path,
                                        table_3k: tuple[pl.DataFrame, Truth]) -> None:
    """R's conventions are decided on the whole text: a batch that shows one sends
    the run to the in-memory path, with the same outcome as reading it whole."""
    frame, _ = table_3k
    frame = _edited(frame, CMNT=(frame.height - 5, 'said "no" twice'))
    data = to_delimited(frame).replace(b'said ""no"" twice', b'said \\"no\\" twice')
    assert b'\\"no\\"' in data
    folder = _write(tmp_path / "delivery", data)
    settings = load_settings(stream_above_bytes=0, stream_batch_bytes=4_000)
    summary = run_delivery(folder, out=tmp_path / "out", delivery_date=DELIVERY_DATE,
                           settings=settings)
    assert "stream" not in summary.stage_seconds
    assert any("escaped with a backslash" in w for w in summary.warnings)


def test_the_report_profile_is_the_same(home: Path, tmp_path: Path,
                                        table_3k: tuple[pl.DataFrame, Truth]) -> None:
    """The flow's report shows null counts of the accepted rows: summed over the
    batches, they are those of the whole table."""
    from ingest.report import column_profile

    frame, _ = table_3k
    folder = _write(tmp_path / "delivery", to_delimited(frame))
    seen: dict[str, Any] = {}

    def stage(name: str, fn: Any, *args: Any) -> Any:
        value = fn(*args)
        seen[name] = value
        return value

    for batch, out in ((None, "whole"), (3_000, "batched")):
        _run(folder, tmp_path / out, batch, stage=stage)
    assert seen["stream"].profile == column_profile(seen["validate"].accepted)
    assert seen["stream"].profile["nulls"]["lab_value"] > 0


# -- the feature matrix, made batch by batch -------------------------------------------

def _whole_arrays(table: pl.DataFrame, dataset: Dataset, previous: Encoding | None,
                  identity: pyrage.x25519.Identity) -> tuple[dict[str, np.ndarray], bytes]:
    files = features.save(features.build(table, dataset, encoding=previous),
                          identity.to_public())
    return _opened(files, identity)


def _opened(files: dict[str, bytes], identity: pyrage.x25519.Identity
            ) -> tuple[dict[str, np.ndarray], bytes]:
    npz = pyrage.decrypt(files[features.NPZ], [identity])
    with np.load(io.BytesIO(npz), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    X = scipy.sparse.load_npz(io.BytesIO(npz))  # scipy reads X straight from the archive
    assert X.shape == tuple(arrays["shape"]) and X.nnz == arrays["data"].size
    return arrays, pyrage.decrypt(files[features.JSON], [identity])


def _in_parts(table: pl.DataFrame, dataset: Dataset, previous: Encoding | None,
              identity: pyrage.x25519.Identity, folder: Path, cuts: list[int]
              ) -> tuple[dict[str, np.ndarray], bytes]:
    folder.mkdir()
    matrix = features.BatchedMatrix(dataset, previous, folder)
    files: dict[str, bytes] = {}

    @contextlib.contextmanager
    def sink(name: str) -> Iterator[io.BytesIO]:
        out = io.BytesIO()
        yield out
        files[name] = out.getvalue()

    try:
        for start, end in itertools.pairwise([0, *cuts, table.height]):
            matrix.add(table.slice(start, end - start))
            for spill in folder.iterdir():  # only age ciphertext waits on disk
                assert spill.name.startswith(".spill-")
                data = spill.read_bytes()
                assert not data or data[8:30] == b"age-encryption.org/v1\n"
        matrix.write(identity.to_public(), sink)
    finally:
        matrix.close()
    assert not list(folder.iterdir())  # every spill deleted
    return _opened(files, identity)


def _equal_arrays(whole: dict[str, np.ndarray], parts: dict[str, np.ndarray]) -> None:
    assert list(whole) == list(parts)  # the same members, in the same order
    for key in whole:
        assert whole[key].dtype == parts[key].dtype, key
        assert whole[key].shape == parts[key].shape, key
        assert np.array_equal(whole[key], parts[key]), key


@pytest.fixture(scope="module")
def accepted_3k(table_3k: tuple[pl.DataFrame, Truth]) -> pl.DataFrame:
    from ingest.readers.csv import read_delimited
    from ingest.validate import validate

    frame, _ = table_3k
    dataset = load_dataset("reference")
    table = validate(read_delimited(to_delimited(frame), dataset, "x.csv"), dataset,
                     DELIVERY_DATE).accepted
    # one county and one diagnosis only in the last rows: first seen in the last part
    late = (pl.col("county_fips") == table["county_fips"][0]) \
        | (pl.col("diagnosis_code") == table["diagnosis_code"][1])
    return pl.concat([table.filter(~late), table.filter(late)])


CUTS = [0, 1, 700, 701, 1_900]
"""Part boundaries: an empty first part, a part of one row, uneven sizes."""


def _scaled(dataset: Dataset) -> Dataset:
    return dataclasses.replace(dataset, features=dataclasses.replace(
        dataset.features, scale=("lab_value", "age_at_report")))


@pytest.mark.parametrize("variant", ["fitted", "scaled", "previous", "two-labels"])
def test_the_matrix_made_in_parts_is_the_whole_tables(
        variant: str, accepted_3k: pl.DataFrame, tmp_path: Path) -> None:
    identity = pyrage.x25519.Identity.generate()
    dataset = load_dataset("reference")
    table = accepted_3k
    previous = None
    if variant == "scaled":
        dataset = _scaled(dataset)
    if variant == "previous":  # fitted on the first rows: later categories are unseen
        previous = features.build(table.head(1_000), _scaled(dataset)).encoding
        dataset = _scaled(dataset)
    if variant == "two-labels":
        table = table.with_columns(female=pl.col("sex").cast(pl.String) == "F")
        dataset = dataclasses.replace(dataset, features=dataclasses.replace(
            dataset.features, labels=("hospitalized", "female")))
    whole, whole_meta = _whole_arrays(table, dataset, previous, identity)
    parts, parts_meta = _in_parts(table, dataset, previous, identity, tmp_path / "spill",
                                  CUTS)
    _equal_arrays(whole, parts)
    assert whole_meta == parts_meta  # encoding, shape, class weights: byte for byte
    encoding = json.loads(parts_meta)["encoding"]
    counties = next(c for c in encoding["categorical"] if c["name"] == "county_fips")
    late_county = table["county_fips"][-1]
    if previous is None:  # the late county has its own column, in sorted place
        assert late_county in counties["vocabulary"]
        assert counties["vocabulary"] == sorted(counties["vocabulary"])
    else:  # unseen when the encoding was fitted: its rows go to the unseen bucket
        assert late_county not in counties["vocabulary"]
        unseen = encoding["feature_names"].index(f"county_fips={features.UNSEEN}")
        assert (parts["indices"] == unseen).sum() >= 1
    if variant in ("scaled", "previous"):
        numeric = {n["name"]: n for n in encoding["numeric"]}
        assert numeric["lab_value"]["scaled"] and numeric["lab_value"]["scale"] != 1.0


def test_a_category_seen_late_and_one_unseen_before_batched_equals_whole(
        home: Path, tmp_path: Path, table_3k: tuple[pl.DataFrame, Truth]) -> None:
    frame, _ = table_3k
    first, second = frame.head(1_500), frame.slice(1_500)
    # a county and a diagnosis no row before has, in the very last rows of the second
    rows = second.height
    second = _edited(second, CNTY_FIPS=(rows - 2, "99999"), DX_CD=(rows - 1, "Z99.9"))
    schema = _scaled(load_dataset("reference"))
    d1 = _write(tmp_path / "d1", to_delimited(first))
    d2 = _write(tmp_path / "d2", to_delimited(second))
    whole_out, batched_out = tmp_path / "out-whole", tmp_path / "out-batched"
    _same(_outputs(_run(d1, whole_out, None, schema=schema)),
          _outputs(_run(d1, batched_out, 2_000, schema=schema)))
    # the second delivery reuses the first's encoding: the new values are unseen
    whole = _outputs(_run(d2, whole_out, None, schema=schema))
    batched = _outputs(_run(d2, batched_out, 2_000, schema=schema))
    _same(whole, batched)
    names = json.loads(batched["plain"]["features.json.age"])["feature_names"]  # type: ignore[index]
    assert "county_fips=99999" not in names
    arrays = batched["arrays"]
    assert isinstance(arrays, dict)
    unseen = [names.index(f"{c}={features.UNSEEN}") for c in ("county_fips", "diagnosis_code")]
    last_rows = arrays["indices"][arrays["indptr"][-3]:]
    assert set(unseen) <= set(last_rows.tolist())


def test_a_derived_feature_over_other_rows_is_computed_on_the_whole_table(
        home: Path, tmp_path: Path, table_3k: tuple[pl.DataFrame, Truth]) -> None:
    frame, _ = table_3k
    reference = load_dataset("reference")

    def centred() -> dict[str, pl.Expr]:  # each row against the whole column's mean
        return {"age_at_report": pl.col("lab_value") - pl.col("lab_value").mean()}

    schema = dataclasses.replace(reference, derive=centred)
    folder = _write(tmp_path / "delivery", to_delimited(frame))
    settings = load_settings(stream_above_bytes=0, stream_batch_bytes=5_000)
    summary = run_delivery(folder, out=tmp_path / "out-batched", delivery_date=DELIVERY_DATE,
                           settings=settings, schema=schema)
    assert "stream" not in summary.stage_seconds  # read whole, so the mean is the table's
    assert any("derived feature" in w for w in summary.warnings)
    whole, fallen_back = (_outputs(_run(folder, tmp_path / "out-whole", None, schema=schema)),
                          _outputs(summary))
    for outputs in (whole, fallen_back):  # all but the fallback's warning
        outputs["manifest"].pop("warnings")  # type: ignore[attr-defined]
        outputs["counts"] = outputs["counts"][:-1]  # type: ignore[index]
    _same(whole, fallen_back)
    # a derived feature of the row alone stays batched
    assert whole_table_derived(reference) is None
    assert whole_table_derived(schema) == "age_at_report"
