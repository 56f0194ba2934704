"""Hostile fixed-width and EBCDIC input: refused clearly, nothing written, memory bounded.

A truncated tape, a line cut short or run long, a layout that declares absurd
positions, a packed field wider than any number, a UTF-8 character split by a
field boundary: each is refused with a message that names the record or the
field (never a value) before anything is published. A zoned or packed field
whose bytes are no number is a row-level fault: that row is quarantined with
its column's reason, every other row read.
"""

from __future__ import annotations

import dataclasses
import resource
from pathlib import Path

import pytest

import ingest
from ingest.errors import IngestError, ReadError, SchemaMismatchError
from ingest.media import Member
from ingest.readers import read_delivery_table
from ingest.synth.admissions import ADMISSION_REASONS
from ingest.synth.admissions import generate as generate_admissions
from ingest.synth.fixed_forms import Slot, fit_layout, layout_csv, layout_sas, to_fixed_width
from schemas.admissions import DATASET as ADMISSIONS

ROWS = 2_000
NUMBERS = {"LOS_DAYS": Slot("LOS_DAYS", 5, "zoned", 0), "CREAT": Slot("CREAT", 4, "packed", 3)}
EBCDIC = dataclasses.replace(ADMISSIONS, encodings=("cp1140",))


@pytest.fixture(scope="module")
def tape():
    frame, truth = generate_admissions(ROWS, seed=3, bad_share=0.0)
    slots = fit_layout(frame, "cp1140", NUMBERS)
    return to_fixed_width(frame, slots, "cp1140"), slots, truth


def _run(tmp_path: Path, files: dict[str, bytes]) -> ingest.RunSummary:
    folder = tmp_path / "delivery"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return ingest.run_delivery(folder, schema=EBCDIC, out=tmp_path / "out")


def test_a_truncated_tape_is_refused_and_nothing_is_published(tape, tmp_path: Path,
                                                              home: Path) -> None:
    data, slots, _ = tape
    with pytest.raises(SchemaMismatchError, match=rf"record {ROWS} is short \(truncated\?\)"):
        _run(tmp_path, {"ADM.DAT": data[:-7], "ADM.SAS": layout_sas(slots)})
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.parquet*"))


def test_a_line_end_lost_in_the_middle_names_the_record(tape) -> None:
    data, slots, _ = tape
    width = sum(s.width for s in slots)
    lines = "\n".encode("cp1140").join(data[i:i + width] for i in range(0, len(data), width))
    broken = lines[:(width + 1) * 700 - 1] + lines[(width + 1) * 700:]  # record 700 + 701 joined
    with pytest.raises(ReadError, match=r"record 700 \(from byte \d+\) is not"):
        read_delivery_table([Member("a.dat", broken), Member("a.csv", layout_csv(slots))], EBCDIC)


def test_a_number_field_that_is_no_number_quarantines_its_row(tape, tmp_path: Path,
                                                              home: Path) -> None:
    data, slots, truth = tape
    width = sum(s.width for s in slots)
    offset = sum(s.width for s in slots[:[s.name for s in slots].index("LOS_DAYS")])
    damaged = bytearray(data)
    record = next(r for r in range(42, ROWS) if r not in truth.bad_rows)
    damaged[(record - 1) * width + offset] = 0xAB  # a digit nibble of B
    summary = _run(tmp_path, {"ADM.DAT": bytes(damaged), "ADM.SAS": layout_sas(slots)})
    want: dict[str, int] = {}
    for kind in [*truth.bad_rows.values(), "fractional_stay"]:
        want[ADMISSION_REASONS[kind]] = want.get(ADMISSION_REASONS[kind], 0) + 1
    assert (summary.rows_in, summary.rows_quarantined) == (ROWS, truth.quarantined + 1)
    assert summary.quarantine_reasons == want


@pytest.mark.parametrize("form", ["csv-width", "csv-start", "sas-width"])
def test_absurd_positions_cost_no_memory(tape, form: str) -> None:
    data, slots, _ = tape
    first = slots[0]
    if form == "sas-width":
        layout = layout_sas(slots).replace(f"$char{first.width}.".encode(),
                                           b"$char999999999999.", 1)
    else:
        rows = layout_csv(slots).split(b"\n")
        rows[1] = (b"ADM_ID,1,1000000000000,text," if form == "csv-width"
                   else b"ADM_ID,4611686018427387904,10,text,")
        layout = b"\n".join(rows)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(SchemaMismatchError, match=r"a.dat: record 1 is not \d+ bytes long"):
        read_delivery_table([Member("a.dat", data), Member("a.layout", layout)], EBCDIC)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB


def test_a_packed_field_wider_than_int64_is_refused(tape) -> None:
    data, slots, _ = tape
    wide = [dataclasses.replace(s, width=11) if s.name == "CREAT" else s for s in slots]
    with pytest.raises(SchemaMismatchError, match="column CREAT: a packed decimal field of 11 "
                                                  "bytes holds more than 18 digits"):
        read_delivery_table([Member("a.dat", data), Member("a.sas", layout_sas(wide))], EBCDIC)


def test_a_number_stored_in_a_text_kind_is_refused(tape) -> None:
    data, slots, _ = tape
    text = [dataclasses.replace(s, storage="zoned", places=0) if s.name == "ADM_ID" else s
            for s in slots]
    with pytest.raises(SchemaMismatchError, match="ADM_ID is zoned decimal but of kind string"):
        read_delivery_table([Member("a.dat", data), Member("a.csv", layout_csv(text))], EBCDIC)


def test_a_utf8_character_split_by_a_field_boundary_is_refused() -> None:
    from schemas.wards import DATASET as WARDS

    names = [c.source for c in WARDS.columns]
    fields = "\n".join(f"{n},{1 + 4 * i},4" for i, n in enumerate(names))
    broken = b"CAR " + "GGGé".encode() + b"24 Nort"  # 'é' is split by bytes 8 and 9
    assert len(broken) == 16
    layout = ("name,start,width\n" + fields + "\n").encode()
    with pytest.raises(ReadError, match="record 1: a character crosses the boundary of column "
                                        "WARD_NAME at byte 9; positions count bytes"):
        read_delivery_table([Member("w.dat", broken + b"\n"), Member("w.csv", layout)],
                            dataclasses.replace(WARDS, encodings=("utf-8",)))


def test_messages_never_quote_a_value(tape) -> None:
    data, slots, truth = tape
    first = truth.clean["admission_id"][0]
    with pytest.raises(IngestError) as caught:
        read_delivery_table([Member("a.dat", data[:-1]), Member("a.csv", layout_csv(slots))],
                            EBCDIC)
    assert first not in str(caught.value)
