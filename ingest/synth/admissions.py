"""A second example, of another shape: hospital admissions and their wards.

Deterministic by seed, any row count. Where the reference delivery is dates and
text, this one is typed: an admission id (unique) and a patient id (pseudonymised),
an admission timestamp (mostly zone-aware UTC ``2024-05-01T13:45:00Z``, some with
a ``+02:00`` offset, some naive), an arrival time of day (``13:45``), a length of
stay and a count of earlier admissions (integers), a charge in money (two places)
and a creatinine value (three places), a triage category, a readmission flag, a
ward code from a lookup table (:func:`wards`) and a free-text note.

:func:`generate` gives the source table (all text, source column names) and its
truth: the clean value of every cell, as the schema ``schemas/admissions.py``
must produce it, and which rows break which rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import numpy as np
import polars as pl

ADMISSION_BAD_KINDS = ("stay_out_of_range", "fractional_stay", "charge_too_many_places",
                       "unknown_ward", "invalid_admitted_at", "invalid_arrival_time",
                       "duplicate_admission_id")
"""How generated rows break the rules; each maps to one quarantine reason."""

ADMISSION_REASONS = {
    "stay_out_of_range": "length_of_stay:in_range",
    "fractional_stay": "length_of_stay:not_an_integer",
    "charge_too_many_places": "charge:decimal_too_many_places",
    "unknown_ward": "ward_code:isin",
    "invalid_admitted_at": "admitted_at:not_a_datetime",
    "invalid_arrival_time": "arrival_time:not_a_time",
    "duplicate_admission_id": "admission_id:duplicate",
}
"""The quarantine reason each kind of bad row must earn."""

WARDS = (
    ("CAR", "Cardiologie", 24, "North"), ("EMR", "Emergency", 40, "North"),
    ("GER", "Gériatrie", 30, "South"), ("ICU", "Intensive care", 12, "North"),
    ("MAT", "Maternity", 28, "South"), ("MED", "General medicine", 60, "North"),
    ("ONC", "Oncology", 22, "South"), ("ORT", "Orthopaedics", 26, "South"),
    ("PED", "Pediatría", 18, "North"), ("SUR", "Surgery", 48, "South"),
)
"""The lookup table: ward code, name (some not ASCII), beds, facility."""
WARD_CODES = tuple(w[0] for w in WARDS)
TRIAGE = ("RED", "ORANGE", "YELLOW", "GREEN", "BLUE")
STAY_MAXIMUM = 3650
CHARGE_SCALE, LAB_SCALE = 2, 3
NULL_TOKENS = ("", "NA", "NULL")

_NOTES = (
    "Allergie: pénicilline",
    'Transferred from clinic; "urgent" on referral',
    "Interpreter needed (español)",
    "Family contact: daughter, 2 visits",
    "Cost estimate €1,200 agreed",
    "Réadmission prévue dans 30 jours",
)
_FIRST = datetime(2023, 1, 1, tzinfo=UTC)
_SECONDS = int((datetime(2026, 1, 1, tzinfo=UTC) - _FIRST).total_seconds())


@dataclass(frozen=True)
class AdmissionsTruth:
    rows: int
    seed: int
    bad_rows: dict[int, str] = field(repr=False)
    """1-based data row -> kind of rule it breaks."""
    clean: pl.DataFrame = field(repr=False, compare=False)
    """Every row's clean values (clean column names, clean types); a bad row's
    broken cell is null. ``patient_id`` is the identifier before pseudonymisation."""

    @property
    def quarantined(self) -> int:
        return len(self.bad_rows)

    @property
    def accepted(self) -> int:
        return self.rows - self.quarantined

    def accepted_rows(self) -> pl.DataFrame:
        """The clean values of the rows that break no rule, in delivery order."""
        keep = ~pl.Series(range(1, self.rows + 1)).is_in(list(self.bad_rows))
        return self.clean.filter(keep)

    def by_kind(self) -> dict[str, int]:
        counts = dict.fromkeys(ADMISSION_BAD_KINDS, 0)
        for kind in self.bad_rows.values():
            counts[kind] += 1
        return counts

    def to_json(self) -> dict:
        return {"rows": self.rows, "accepted": self.accepted, "quarantined": self.quarantined,
                "seed": self.seed, "by_kind": self.by_kind(),
                "expected_reason": ADMISSION_REASONS,
                "quarantined_rows": sorted([r, k] for r, k in self.bad_rows.items())}


def wards() -> pl.DataFrame:
    """The ward lookup table as delivered (all text, source column names)."""
    return pl.DataFrame({"WARD_CD": [w[0] for w in WARDS], "WARD_NAME": [w[1] for w in WARDS],
                         "BEDS": [str(w[2]) for w in WARDS],
                         "FACILITY": [w[3] for w in WARDS]})


def generate(rows: int, seed: int = 0,
             bad_share: float = 0.002) -> tuple[pl.DataFrame, AdmissionsTruth]:
    """The admissions table (all text, source column names) and its truth."""
    if rows < 20:
        raise ValueError("generate at least 20 rows")
    rng = np.random.default_rng(seed)
    n = rows
    step = max(2, min(1000, 9 * 10**7 // n))
    numbers = np.cumsum(rng.integers(1, step, n, dtype=np.int64))
    rng.shuffle(numbers)
    admission_id = [f"ADM{v:08d}" for v in numbers.tolist()]
    patients = rng.integers(0, 10**7, max(1, int(n * 0.7)))
    patient_id = [f"MRN{v:07d}" for v in rng.choice(patients, n).tolist()]

    admitted = [_FIRST + timedelta(seconds=int(s))
                for s in rng.integers(0, _SECONDS // 60, n) * 60]
    spelling = rng.choice(3, n, p=[0.6, 0.25, 0.15])
    minutes = rng.integers(0, 24 * 60, n).tolist()
    arrival = [time(m // 60, m % 60) for m in minutes]
    stay = rng.integers(0, 60, n)
    prior = rng.integers(0, 20, n)
    prior_null = rng.random(n) < 0.1
    cents = rng.integers(0, 5_000_000, n)
    lab = rng.integers(100, 15_000, n)
    lab_null = rng.random(n) < 0.08
    lab_token = rng.choice(np.array(NULL_TOKENS), n)
    triage = rng.choice(np.array(TRIAGE), n, p=[0.05, 0.15, 0.4, 0.3, 0.1])
    readmitted = rng.random(n) < 0.12
    ward = rng.choice(np.array(WARD_CODES), n)
    note_idx = rng.integers(0, len(_NOTES), n)
    has_note = rng.random(n) < 0.4

    clean = {
        "admission_id": admission_id,
        "patient_id": patient_id,
        "admitted_at": admitted,
        "arrival_time": arrival,
        "length_of_stay": stay.tolist(),
        "prior_admissions": [None if z else int(v) for v, z in zip(prior, prior_null,
                                                                    strict=True)],
        "charge": [Decimal(int(c)).scaleb(-CHARGE_SCALE) for c in cents.tolist()],
        "creatinine": [None if z else Decimal(int(v)).scaleb(-LAB_SCALE)
                       for v, z in zip(lab, lab_null, strict=True)],
        "triage": triage.tolist(),
        "readmitted": readmitted.tolist(),
        "ward_code": ward.tolist(),
        "note": [_NOTES[i] if h else None for i, h in zip(note_idx, has_note, strict=True)],
    }
    _boundaries(clean)
    text = {
        "ADM_ID": list(clean["admission_id"]),
        "MRN": list(clean["patient_id"]),
        "ADMIT_TS": [_spell_datetime(v, int(k)) for v, k in zip(clean["admitted_at"], spelling,
                                                                 strict=True)],
        "ARRIVAL": [v.strftime("%H:%M") for v in clean["arrival_time"]],
        "LOS_DAYS": [str(v) for v in clean["length_of_stay"]],
        "PRIOR_ADM": ["" if v is None else str(v) for v in clean["prior_admissions"]],
        "CHARGE": [_spell_decimal(v, rng) for v in clean["charge"]],
        "CREAT": [str(t) if v is None else _spell_decimal(v, rng)
                  for v, t in zip(clean["creatinine"], lab_token, strict=True)],
        "TRIAGE": list(clean["triage"]),
        "READMIT": ["Y" if v else "N" for v in clean["readmitted"]],
        "WARD_CD": list(clean["ward_code"]),
        "NOTE": [v or "" for v in clean["note"]],
    }
    bad = _break_rules(text, clean, rng, n, bad_share)
    frame = pl.DataFrame(text, schema=dict.fromkeys(text, pl.Utf8))
    return frame, AdmissionsTruth(n, seed, bad, pl.DataFrame(clean, schema=CLEAN_SCHEMA))


CLEAN_SCHEMA: dict[str, pl.DataType] = {
    "admission_id": pl.Utf8(), "patient_id": pl.Utf8(), "admitted_at": pl.Datetime("us", "UTC"),
    "arrival_time": pl.Time(), "length_of_stay": pl.Int64(), "prior_admissions": pl.Int64(),
    "charge": pl.Decimal(12, CHARGE_SCALE), "creatinine": pl.Decimal(7, LAB_SCALE),
    "triage": pl.Utf8(), "readmitted": pl.Boolean(), "ward_code": pl.Utf8(), "note": pl.Utf8(),
}
"""The clean table's types, as the schema declares them."""


def _spell_datetime(value: datetime, spelling: int) -> str:
    """Zone-aware UTC (``Z``), a ``+02:00`` offset, or naive (read as UTC, as declared)."""
    if spelling == 0:
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if spelling == 1:
        return (value + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+02:00")
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _spell_decimal(value: Decimal, rng: np.random.Generator) -> str:
    """Mostly at full scale (``12.50``), sometimes with trailing zeros left off
    (``12.5``, ``12``), as a spreadsheet shows them: the same exact value."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if rng.random() < 0.2 else text


def _boundaries(clean: dict[str, list]) -> None:
    """Valid boundary values in rows 0..6 (never bad rows)."""
    clean["length_of_stay"][0] = 0
    clean["length_of_stay"][1] = STAY_MAXIMUM
    clean["charge"][2] = Decimal("0.00")
    clean["charge"][3] = Decimal("9999999999.99")
    clean["arrival_time"][4] = time(0, 0)
    clean["arrival_time"][5] = time(23, 59)
    clean["admitted_at"][6] = datetime(2024, 2, 29, 23, 59, tzinfo=UTC)


def _break_rules(text: dict[str, list], clean: dict[str, list], rng: np.random.Generator,
                 n: int, share: float) -> dict[int, str]:
    count = max(len(ADMISSION_BAD_KINDS), round(n * share))
    # rows 0..9 are kept clean for boundary values
    chosen = sorted(rng.choice(np.arange(10, n), count, replace=False).tolist())
    clean_rows = np.setdiff1d(np.arange(10, n), chosen)
    bad: dict[int, str] = {}
    for i, row in enumerate(chosen):
        kind = ADMISSION_BAD_KINDS[i % len(ADMISSION_BAD_KINDS)]
        if kind == "stay_out_of_range":
            value = int(rng.choice([-1, -30, STAY_MAXIMUM + 1]))
            text["LOS_DAYS"][row], clean["length_of_stay"][row] = str(value), value
        elif kind == "fractional_stay":
            text["LOS_DAYS"][row], clean["length_of_stay"][row] = \
                str(rng.choice(["2.5", "0.25", "7.75"])), None
        elif kind == "charge_too_many_places":
            text["CHARGE"][row], clean["charge"][row] = f"{clean['charge'][row]:f}5", None
        elif kind == "unknown_ward":
            text["WARD_CD"][row] = clean["ward_code"][row] = str(rng.choice(["XYZ", "W99"]))
        elif kind == "invalid_admitted_at":
            text["ADMIT_TS"][row], clean["admitted_at"][row] = \
                str(rng.choice(["2024-02-30T10:00:00Z", "2023-13-01 08:00:00"])), None
        elif kind == "invalid_arrival_time":
            text["ARRIVAL"][row], clean["arrival_time"][row] = \
                str(rng.choice(["25:10", "12:61"])), None
        else:  # a later copy of an earlier, valid row's admission id
            earlier = clean_rows[clean_rows < row]
            source = int(rng.choice(earlier if earlier.size else np.arange(0, 10)))
            text["ADM_ID"][row] = clean["admission_id"][row] = text["ADM_ID"][source]
        bad[row + 1] = kind
    return bad
