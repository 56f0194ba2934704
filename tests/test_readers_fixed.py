"""Fixed-width text and EBCDIC records read exactly against the generator's truth.

The samples are made from the generator's tables (``ingest.synth.fixed_forms``,
also behind ``scripts/make-fixed-width-samples``): the reference table as
Windows-1252 records (line-ended LF and CRLF, and with no line ends as on tape),
with its layout as a CSV and as a SAS INPUT statement beside it; the same
records recoded to EBCDIC by glibc's ``iconv`` (IBM037, IBM500), an encoder
independent of the Python codecs the reader uses; and the admissions table in
EBCDIC (IBM1140: cp037 with the euro its notes need) with zoned and packed
numbers, read through the whole pipeline against its truth.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import ingest
from ingest.errors import ReadError, SchemaMismatchError
from ingest.formats import Kind, classify
from ingest.media import Member
from ingest.readers import fixed as fixed_reader
from ingest.readers import read_delivery_table
from ingest.readers.ebcdic import INVALID, decode_numbers, encode_packed, encode_zoned
from ingest.readers.layout import parse_layout
from ingest.schema import Dataset
from ingest.synth import generate, to_delimited
from ingest.synth.admissions import ADMISSION_REASONS
from ingest.synth.admissions import generate as generate_admissions
from ingest.synth.fixed_forms import (
    Slot,
    fit_layout,
    iconv,
    layout_csv,
    layout_sas,
    to_fixed_width,
)
from schemas.admissions import DATASET as ADMISSIONS
from schemas.reference import DATASET as REFERENCE

from conftest import DELIVERY_DATE

ROWS = 3_000
LAYOUTS = {"csv": layout_csv, "sas": layout_sas}
LINE_ENDS = {"tape": "", "lf": "\n", "crlf": "\r\n"}
ADMISSION_NUMBERS = {
    "LOS_DAYS": Slot("LOS_DAYS", 5, "zoned", 0),
    "PRIOR_ADM": Slot("PRIOR_ADM", 3, "zoned", 0),
    "CREAT": Slot("CREAT", 4, "packed", 3),
}


@pytest.fixture(scope="module")
def reference() -> pl.DataFrame:
    return generate(ROWS, seed=5, delivery_date=DELIVERY_DATE)[0]


@pytest.fixture(scope="module")
def admissions():
    return generate_admissions(ROWS, seed=11, bad_share=0.005)


def as_read(frame: pl.DataFrame) -> pl.DataFrame:
    """What a fixed-width reader gives for the generator's text: nulls as blanks."""
    return frame.with_columns(pl.all().fill_null(""))


def read(files: dict[str, bytes], dataset: Dataset):
    return read_delivery_table([Member(n, d) for n, d in files.items()], dataset)


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("ends", list(LINE_ENDS))
def test_windows_1252_records_read_exactly(reference, layout: str, ends: str) -> None:
    slots = fit_layout(reference, "cp1252")
    data = to_fixed_width(reference, slots, "cp1252", LINE_ENDS[ends])
    table = read({"cases.dat": data, "cases.layout": LAYOUTS[layout](slots)}, REFERENCE)
    assert (table.format, table.encoding, table.rows) == ("fixed-width", "cp1252", ROWS)
    assert table.frame.equals(as_read(reference))


@pytest.mark.parametrize("code_page", ["IBM037", "IBM500"])
def test_ebcdic_records_made_by_iconv_read_exactly(reference, code_page: str) -> None:
    """The comments hold characters no EBCDIC code page has (the euro, a dash, a
    curly quote): they are left out of the EBCDIC records and of the dataset."""
    frame = reference.drop("CMNT")
    slots = fit_layout(frame, "cp1252")
    data = iconv(to_fixed_width(frame, slots, "cp1252"), "CP1252", code_page)
    assert data[:1] == b"\xf0"  # really recoded: an EBCDIC zero
    dataset = dataclasses.replace(REFERENCE, encodings=("cp" + code_page[3:],), columns=tuple(
        c for c in REFERENCE.columns if c.source != "CMNT"))
    table = read({"tape.dat": data, "layout.sas": layout_sas(slots)}, dataset)
    assert table.encoding == "cp" + code_page[3:]
    assert table.frame.equals(as_read(frame))


@pytest.mark.parametrize("encoding", ["cp1252", "utf-8", "cp1140"])
def test_a_text_field_decoded_in_blocks_of_records_reads_as_whole(
        reference, encoding: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wide field is decoded a block of records at a time (bounded memory); blocks
    of a few records, most holding characters beyond ASCII, give the same table."""
    frame = reference if encoding != "cp1140" else reference.drop("CMNT")
    dataset = dataclasses.replace(REFERENCE, encodings=(encoding,), columns=tuple(
        c for c in REFERENCE.columns if c.source in frame.columns))
    slots = fit_layout(frame, encoding)
    files = {"cases.dat": to_fixed_width(frame, slots, encoding, "\n" if encoding != "cp1140"
                                         else ""), "cases.layout.csv": layout_csv(slots)}
    whole = read(files, dataset).frame
    assert whole.equals(as_read(frame))
    monkeypatch.setattr(fixed_reader, "BLOCK_BYTES", 997)  # 1 to 90 records a block
    assert read(files, dataset).frame.equals(whole)


def test_positions_declared_by_the_schema_need_no_layout(reference) -> None:
    slots = fit_layout(reference, "cp1252")
    columns, start = [], 1
    for column, slot in zip(REFERENCE.columns, slots, strict=True):
        columns.append(dataclasses.replace(column, start=start, length=slot.width))
        start += slot.width
    dataset = dataclasses.replace(REFERENCE, columns=tuple(columns))
    data = to_fixed_width(reference, slots, "cp1252", "\r\n")
    assert read({"cases.txt": data}, dataset).frame.equals(as_read(reference))


def test_admissions_in_ebcdic_with_zoned_and_packed_numbers_match_the_truth(
        admissions, tmp_path: Path, home: Path) -> None:
    frame, truth = admissions
    slots = fit_layout(frame, "cp1140", ADMISSION_NUMBERS)
    data = to_fixed_width(frame, slots, "cp1140")
    folder = tmp_path / "delivery"
    folder.mkdir()
    (folder / "ADMISSIONS.DAT").write_bytes(data)
    (folder / "ADMISSIONS.SAS").write_bytes(layout_sas(slots, "ADMISSIONS.DAT"))
    dataset = dataclasses.replace(ADMISSIONS, encodings=("cp1140",))

    summary = ingest.run_delivery(folder, schema=dataset, out=tmp_path / "out")

    want_reasons: dict[str, int] = {}
    for kind in truth.bad_rows.values():
        want_reasons[ADMISSION_REASONS[kind]] = want_reasons.get(ADMISSION_REASONS[kind], 0) + 1
    assert (summary.rows_in, summary.rows_accepted) == (truth.rows, truth.accepted)
    assert summary.quarantine_reasons == want_reasons
    got = ingest.load(tmp_path / "out").drop("patient_id")
    want = truth.accepted_rows().drop("patient_id")
    assert got.schema["creatinine"] == pl.Decimal(7, 3)
    assert got.with_columns(pl.col(pl.Categorical).cast(pl.Utf8)).equals(want)


@pytest.mark.parametrize("ends", ["tape", "crlf"])
def test_fixed_width_runs_end_to_end_like_the_csv(reference, ends: str, tmp_path: Path,
                                                  home: Path) -> None:
    """The clean table and the quarantine of the records equal the CSV's."""
    slots = fit_layout(reference, "cp1252")
    runs = {}
    for form, files in {
        "csv": {"cases.csv": to_delimited(reference)},
        "fixed": {"cases.dat": to_fixed_width(reference, slots, "cp1252", LINE_ENDS[ends]),
                  "cases.layout.csv": layout_csv(slots)},
    }.items():
        folder = tmp_path / form
        folder.mkdir()
        for name, data in files.items():
            (folder / name).write_bytes(data)
        summary = ingest.run_delivery(folder, out=tmp_path / f"out-{form}",
                                      delivery_date=DELIVERY_DATE)
        clean = ingest.load(tmp_path / f"out-{form}")
        runs[form] = (summary.rows_in, summary.quarantine_reasons,
                      clean.with_columns(pl.col(pl.Categorical).cast(pl.Utf8)))
    assert runs["fixed"][:2] == runs["csv"][:2]
    assert runs["fixed"][2].equals(runs["csv"][2])


# -- the registry: how a fixed-width file is claimed ----------------------------------------

def test_a_layout_is_named_and_never_read_as_a_table(reference) -> None:
    slots = fit_layout(reference, "cp1252")
    for layout in (layout_csv(slots), layout_sas(slots)):
        fmt = classify(layout)
        assert (fmt.name, fmt.kind) == ("record-layout", Kind.NOT_READ)
    # without a layout or declared positions, a CSV is read as before
    csv = to_delimited(reference)
    assert classify(csv).name == "delimited"
    assert read({"cases.csv": csv}, REFERENCE).format == "csv"


def test_without_positions_fixed_width_is_not_guessed(reference) -> None:
    slots = fit_layout(reference, "cp1252")
    data = to_fixed_width(reference, slots, "cp1252", "\n")
    with pytest.raises((ReadError, SchemaMismatchError), match="header"):
        read({"cases.dat": data}, REFERENCE)  # read as the CSV it is not, and refused


def test_a_readme_beside_the_records_is_passed_over(reference) -> None:
    slots = fit_layout(reference, "cp1252")
    table = read({"cases.dat": to_fixed_width(reference, slots, "cp1252", "\n"),
                  "layout.csv": layout_csv(slots), "README.txt": b"Cases, 2026.\n"},
                 REFERENCE)
    assert table.member == "cases.dat"


# -- layouts --------------------------------------------------------------------------------

def test_sas_input_statements_in_both_forms() -> None:
    columns = parse_layout(b"data x; infile 'a'; /* the layout */\n"
                           b"INPUT CASE_ID $ 1-10 PERS_ID $ 11-19 SEX $ 20\n  LOS 21-23 ;\nrun;",
                           "a.sas")
    assert [(f.name, f.start, f.length) for f in columns] == [
        ("CASE_ID", 1, 10), ("PERS_ID", 11, 9), ("SEX", 20, 1), ("LOS", 21, 3)]
    pointer = parse_layout(b"input @1 CASE_ID $char10. @11 SEX $1. @12 LOS zd5.0 "
                           b"@17 CREAT s370fpd4.3 @21 N 3.;", "b.sas")
    assert [(f.name, f.start, f.length, f.storage, f.places) for f in pointer] == [
        ("CASE_ID", 1, 10, "text", None), ("SEX", 11, 1, "text", None),
        ("LOS", 12, 5, "zoned", 0), ("CREAT", 17, 4, "packed", 3), ("N", 21, 3, "text", None)]


def test_a_layout_that_disagrees_with_the_schema_is_refused(reference) -> None:
    slots = fit_layout(reference, "cp1252")
    data = to_fixed_width(reference, slots, "cp1252")
    renamed = layout_csv(slots).replace(b"\nSEX,", b"\nGENDER,")
    with pytest.raises(SchemaMismatchError, match="missing SEX; unexpected GENDER"):
        read({"cases.dat": data, "l.csv": renamed}, REFERENCE)
    declared = dataclasses.replace(REFERENCE, columns=tuple(
        dataclasses.replace(c, start=99, length=1) if c.source == "SEX" else c
        for c in REFERENCE.columns))
    with pytest.raises(SchemaMismatchError, match="column SEX: the layout gives start"):
        read({"cases.dat": data, "l.csv": layout_csv(slots)}, declared)


# -- records of the wrong length ------------------------------------------------------------

def test_a_short_line_is_an_error_naming_it_never_a_shifted_row(reference) -> None:
    slots = fit_layout(reference, "cp1252")
    width = sum(s.width for s in slots)
    tape = to_fixed_width(reference, slots, "cp1252")
    records = [tape[i:i + width] for i in range(0, len(tape), width)]
    assert any(b"\n" in r for r in records)  # comments hold line breaks: lines are not records
    records[1234] = records[1234][:-1]  # record 1235 one byte short
    for ends in ("\n", "\r\n"):
        data = ends.encode().join(records) + ends.encode()
        with pytest.raises(ReadError, match=rf"record 1235 \(from byte \d+\) is not {width} "):
            read({"cases.dat": data, "l.csv": layout_csv(slots)}, REFERENCE)
    records[1234] += b"  "  # one byte long
    with pytest.raises(ReadError, match=r"record 1235 "):
        read({"cases.dat": b"\n".join(records), "l.csv": layout_csv(slots)}, REFERENCE)
    records[1234] = records[1234][:-1]
    records[-1] = records[-1][:-1]  # the last line short, with no line end after it
    with pytest.raises(ReadError, match=rf"record {ROWS} "):
        read({"cases.dat": b"\n".join(records), "l.csv": layout_csv(slots)}, REFERENCE)
    records[-1] += b" "
    assert read({"cases.dat": b"\n".join(records), "l.csv": layout_csv(slots)},
                REFERENCE).rows == ROWS


def test_a_short_last_record_on_tape_is_an_error(reference) -> None:
    slots = fit_layout(reference, "cp1252")
    data = to_fixed_width(reference, slots, "cp1252")
    with pytest.raises(SchemaMismatchError, match=f"record {ROWS} is short"):
        read({"cases.dat": data[:-3], "l.csv": layout_csv(slots)}, REFERENCE)


# -- zoned and packed decimals --------------------------------------------------------------

@pytest.mark.parametrize("storage", ["zoned", "packed"])
def test_zoned_and_packed_values_are_exact(storage: str) -> None:
    values = [0, 1, -1, 123456789, -987654321, 10**16 - 1, -(10**16 - 1)]
    length = 17 if storage == "zoned" else 9
    encode = encode_zoned if storage == "zoned" else encode_packed
    matrix = np.frombuffer(b"".join(encode(v, length) for v in values), np.uint8)
    got = decode_numbers(matrix.reshape(len(values), length), storage, 2, 0x40).to_list()
    assert got == [f"{'-' if v < 0 else ''}{abs(v) // 100}.{abs(v) % 100:02d}" for v in values]
    # F is an unsigned positive zone/sign; blanks are null; a nibble above 9 is no number
    assert decode_numbers(np.array([[0xF1, 0xF2]], np.uint8), "zoned", 0, 0x40).to_list() \
        == ["12"]
    assert decode_numbers(np.array([[0x12, 0x3F]], np.uint8), "packed", 1, 0x40).to_list() \
        == ["12.3"]
    assert decode_numbers(np.array([[0x40, 0x40]], np.uint8), storage, 0, 0x40).to_list() \
        == [None]
    bad = [[0xFA, 0xC1]] if storage == "zoned" else [[0x1A, 0x2C]]
    assert decode_numbers(np.array(bad, np.uint8), storage, 0, 0x40).to_list() == [INVALID]
    assert decode_numbers(np.array([[0x12, 0x34]], np.uint8), "packed", 0,
                          0x40).to_list() == [INVALID]  # 4 is no sign


# -- the samples script, the CLI and the flow -----------------------------------------------

def test_the_samples_run_through_the_cli_and_the_flow(tmp_path: Path, home: Path) -> None:
    import json
    import os
    import subprocess

    from conftest import ROOT

    rows = 1_500
    samples = tmp_path / "samples"
    subprocess.run([str(ROOT / "scripts" / "make-fixed-width-samples"), str(samples), str(rows)],
                   check=True, capture_output=True)
    env = dict(os.environ, INGEST_HOME=str(home))
    env.pop("PREFECT_API_URL", None)
    ingest_bin = str(ROOT / ".venv" / "bin" / "ingest")

    def run(delivery: str, schema: str, *extra: str) -> dict:
        proc = subprocess.run([ingest_bin, "run", str(samples / delivery), "--schema", schema,
                               "--out", str(tmp_path / f"out-{delivery}"), "--delivery-date",
                               DELIVERY_DATE.isoformat(), "--json", *extra],
                              env=env, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(proc.stdout)

    _, truth = generate_admissions(rows, seed=5, bad_share=0.005)
    got = run("admissions-cp1140", str(samples / "schemas" / "admissions_cp1140.py"),
              "--no-prefect")
    assert (got["rows_in"], got["rows_accepted"]) == (rows, truth.accepted)
    assert sum(got["quarantine_reasons"].values()) == truth.quarantined
    try:
        flow = run("reference-tape", "reference")
    finally:
        subprocess.run([ingest_bin, "server", "stop"], env=env, capture_output=True, check=False)
    library = run("reference-lf", "reference", "--no-prefect")
    assert flow["rows_in"] == rows
    assert flow["quarantine_reasons"] == library["quarantine_reasons"]
