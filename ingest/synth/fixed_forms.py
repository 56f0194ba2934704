"""The generator's tables as fixed-width records: text or EBCDIC, with their layouts.

Used by ``scripts/make-fixed-width-samples``, the tests and the benchmarks. A
:class:`Slot` is one field of the record: the source column, its width in bytes
and how it is stored (text, zoned or packed decimal with implied places). Text
is left-aligned and blank-padded; a value that does not fit its field is an
error here (the layout is made to fit the table: :func:`fit_layout`). A value a
zoned or packed field cannot hold (a fraction in an integer field, too many
places) is written as bytes that are no number (``0xFF`` bytes), as a broken
field of a real file would be, so the reader must refuse that row.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import polars as pl

from ..readers.ebcdic import encode_packed, encode_zoned


@dataclass(frozen=True)
class Slot:
    name: str
    width: int
    storage: str = "text"
    places: int | None = None


def fit_layout(frame: pl.DataFrame, encoding: str, numbers: dict[str, Slot] | None = None,
               spare: int = 2) -> list[Slot]:
    """A field per column, wide enough for its longest value (plus ``spare`` blanks);
    ``numbers`` gives zoned or packed fields by column."""
    numbers = numbers or {}
    slots = []
    for name in frame.columns:
        if name in numbers:
            slots.append(numbers[name])
            continue
        longest = max((len(v.encode(encoding)) for v in frame[name].drop_nulls()), default=1)
        slots.append(Slot(name, longest + spare))
    return slots


def to_fixed_width(frame: pl.DataFrame, slots: Sequence[Slot], encoding: str,
                   line_end: str = "") -> bytes:
    """The records, each followed by ``line_end`` ("" as on tape, "\\n", "\\r\\n")."""
    blank = " ".encode(encoding)
    end = line_end.encode(encoding)
    columns = [frame[s.name].to_list() for s in slots]
    out = bytearray()
    for row in zip(*columns, strict=True):
        for slot, value in zip(slots, row, strict=True):
            out += _field(slot, value, encoding, blank)
        out += end
    return bytes(out)


def _field(slot: Slot, value: str | None, encoding: str, blank: bytes) -> bytes:
    if slot.storage == "text":
        data = (value or "").encode(encoding)
        if len(data) > slot.width:
            raise ValueError(f"a value of column {slot.name} is wider than its field")
        return data + blank * (slot.width - len(data))
    if value is None or value.strip() in ("", "NA", "NULL", "."):
        return blank * slot.width
    try:
        scaled = Decimal(value.strip()).scaleb(slot.places or 0)
    except InvalidOperation:
        return b"\xff" * slot.width
    if scaled != scaled.to_integral_value():
        return b"\xff" * slot.width
    number = int(scaled)
    try:
        if slot.storage == "zoned":
            return encode_zoned(number, slot.width, ebcdic=blank != b" ")
        return encode_packed(number, slot.width)
    except ValueError:
        return b"\xff" * slot.width


def layout_csv(slots: Sequence[Slot]) -> bytes:
    """The layout as ``name,start,width[,storage,places]``."""
    lines, start = ["name,start,width,storage,places"], 1
    for s in slots:
        places = "" if s.places is None else str(s.places)
        lines.append(f"{s.name},{start},{s.width},{s.storage},{places}")
        start += s.width
    return ("\n".join(lines) + "\n").encode("ascii")


def layout_sas(slots: Sequence[Slot], member: str = "cases.dat") -> bytes:
    """The layout as a SAS DATA step: ``@start name informat`` (column-pointer form)
    when any field is zoned or packed, else column ranges (``name $ 1-10``)."""
    pointer = any(s.storage != "text" for s in slots)
    parts, start = [], 1
    for s in slots:
        if pointer:
            informat = {"text": f"$char{s.width}.", "zoned": f"zd{s.width}.{s.places or 0}",
                        "packed": f"pd{s.width}.{s.places or 0}"}[s.storage]
            parts.append(f"  @{start} {s.name} {informat}")
        else:
            parts.append(f"  {s.name} $ {start}-{start + s.width - 1}")
        start += s.width
    program = (f"/* record layout of {member} */\n"
               f"DATA cases;\n  INFILE '{member}' LRECL={start - 1} RECFM=F;\n  INPUT\n"
               + "\n".join(parts) + "\n  ;\nRUN;\n")
    return program.encode("ascii")


def iconv(data: bytes, source: str, target: str) -> bytes:
    """``data`` recoded by glibc's iconv (an encoder independent of Python's codecs)."""
    return subprocess.run(["iconv", "-f", source, "-t", target], input=data,
                          capture_output=True, check=True).stdout


ADMISSION_NUMBERS = (Slot("LOS_DAYS", 5, "zoned", 0), Slot("PRIOR_ADM", 3, "zoned", 0),
                     Slot("CREAT", 4, "packed", 3))
"""The admissions' numbers as a mainframe keeps them: the stay and the count of
earlier admissions zoned (``PIC S9(5)``, ``PIC S9(3)``), creatinine packed
(``PIC S9(4)V999 COMP-3``)."""

_EBCDIC_SCHEMA = '''"""{title} (written by scripts/make-fixed-width-samples)."""

import dataclasses

from {module} import DATASET as _BASE

DATASET = dataclasses.replace(_BASE, name="{name}", encodings=("{encoding}",))
'''


def write_samples(out: Path, rows: int = 3000, seed: int = 5) -> list[Path]:
    """Every fixed-width sample, each a delivery folder under ``out`` with its layout,
    and ``out/schemas/`` with the datasets that declare the EBCDIC code pages."""
    from . import generate
    from .admissions import generate as generate_admissions

    reference = generate(rows, seed=seed)[0]
    slots = fit_layout(reference, "cp1252")
    deliveries: dict[str, dict[str, bytes]] = {
        "reference-lf": {"cases.dat": to_fixed_width(reference, slots, "cp1252", "\n"),
                         "cases.layout.csv": layout_csv(slots)},
        "reference-crlf": {"cases.txt": to_fixed_width(reference, slots, "cp1252", "\r\n"),
                           "cases.sas": layout_sas(slots, "cases.txt")},
        "reference-tape": {"CASES.DAT": to_fixed_width(reference, slots, "cp1252"),
                           "CASES.SAS": layout_sas(slots, "CASES.DAT")},
    }
    # the comments hold characters no EBCDIC code page has: left out of these two
    plain = reference.drop("CMNT")
    text_slots = fit_layout(plain, "cp1252")
    for page in ("IBM037", "IBM500"):
        deliveries[f"reference-{page.lower()}"] = {
            "CASES.DAT": iconv(to_fixed_width(plain, text_slots, "cp1252"), "CP1252", page),
            "CASES.SAS": layout_sas(text_slots, "CASES.DAT")}
    admissions = generate_admissions(rows, seed=seed, bad_share=0.005)[0]
    numbers = {s.name: s for s in ADMISSION_NUMBERS}
    adm_slots = fit_layout(admissions, "cp1140", numbers)
    deliveries["admissions-cp1140"] = {
        "ADMISSIONS.DAT": to_fixed_width(admissions, adm_slots, "cp1140"),
        "ADMISSIONS.SAS": layout_sas(adm_slots, "ADMISSIONS.DAT")}
    written = []
    for name, files in deliveries.items():
        (out / name).mkdir(parents=True, exist_ok=True)
        for file, data in files.items():
            (out / name / file).write_bytes(data)
            written.append(out / name / file)
    schemas = out / "schemas"
    schemas.mkdir(parents=True, exist_ok=True)
    (schemas / "admissions_cp1140.py").write_text(_EBCDIC_SCHEMA.format(
        title="The admissions as EBCDIC records (IBM1140: cp037 with the euro)",
        module="schemas.admissions", name="admissions", encoding="cp1140"))
    written.append(schemas / "admissions_cp1140.py")
    return written
