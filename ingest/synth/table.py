"""The reference delivery, synthesised: deterministic by seed, any row count.

Rows have the quirks of the real thing (leading zeros, null tokens, commas,
quotes, line breaks and non-ASCII in comments, boundary values) and about 0.1 %
break a rule. The truth says which rows break which rule, so a run's quarantine
can be checked row by row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import polars as pl

BAD_KINDS = ("bad_diagnosis_code", "birth_after_report", "invalid_date", "negative_lab_value",
             "duplicate_case_id")
"""How generated rows break the rules; each maps to one quarantine reason."""

EXPECTED_REASON = {
    "bad_diagnosis_code": "diagnosis_code:str_matches",
    "birth_after_report": "birth_date_not_after_report_date",
    "invalid_date": "birth_date:not_a_date",
    "negative_lab_value": "lab_value:greater_than_or_equal_to",
    "duplicate_case_id": "case_id:duplicate",
}
"""The prefix of the quarantine reason each kind of bad row must earn."""

_COMMENTS = (
    "Patient reports fever, cough and fatigue",
    'Seen at clinic; "follow-up" advised',
    "Contact traced\r\nsecond line of the note",
    "Résumé of symptoms: señal, müde, café",
    "Cost of test €25 — patient’s own account",
    "Lab result pending, re-test in 7 days",
    "Travel history: none; household, 3 members",
    "Vaccinated; no symptoms reported",
)


@dataclass(frozen=True)
class Truth:
    rows: int
    seed: int
    delivery_date: date
    bad_rows: dict[int, str] = field(repr=False)
    """1-based data row -> kind of rule it breaks."""
    canary_rows: dict[str, int] = field(default_factory=dict)

    @property
    def quarantined(self) -> int:
        return len(self.bad_rows)

    @property
    def accepted(self) -> int:
        return self.rows - self.quarantined

    def by_kind(self) -> dict[str, int]:
        counts = dict.fromkeys(BAD_KINDS, 0)
        for kind in self.bad_rows.values():
            counts[kind] += 1
        return counts

    def to_json(self) -> dict:
        return {
            "rows": self.rows, "accepted": self.accepted, "quarantined": self.quarantined,
            "seed": self.seed, "delivery_date": self.delivery_date.isoformat(),
            "by_kind": self.by_kind(), "expected_reason": EXPECTED_REASON,
            "quarantined_rows": sorted([r, k] for r, k in self.bad_rows.items()),
        }


def generate(rows: int, seed: int = 0, delivery_date: date = date(2026, 6, 30),
             bad_share: float = 0.001,
             canaries: dict[str, str] | None = None) -> tuple[pl.DataFrame, Truth]:
    """The source table (all text, source column names) and its truth.

    ``canaries`` may hold ``person_id`` and ``comment`` values to plant in one
    valid row each, for tests that prove a value never leaks.
    """
    if rows < 20:
        raise ValueError("generate at least 20 rows")
    rng = np.random.default_rng(seed)
    n = rows
    # unique, sorted 10-digit numbers (many with leading zeros), for any row count
    step = max(2, min(20_000, 9 * 10**9 // n))
    case_num = np.cumsum(rng.integers(1, step, n, dtype=np.int64)) + rng.integers(0, 10**6)
    rng.shuffle(case_num)
    case_id = pl.Series(case_num).cast(pl.Utf8).str.zfill(10)

    people = rng.integers(0, 2**32, max(1, int(n * 0.8)), dtype=np.uint64)
    person_id = pl.Series([f"P{v:08X}" for v in rng.choice(people, n).tolist()])

    first, last = date(2015, 1, 1), delivery_date
    span = (last - first).days
    report_days = rng.integers(0, span + 1, n)
    age_days = rng.integers(0, 100 * 365, n)
    report = pl.select(pl.lit(first) + pl.duration(days=pl.lit(pl.Series(report_days))))\
        .to_series()
    birth = pl.select(report - pl.duration(days=pl.lit(pl.Series(age_days)))).to_series()
    birth = birth.clip(date(1900, 1, 1), None)

    sex = rng.choice(np.array(["F", "M", "X", "U"]), n, p=[0.49, 0.49, 0.005, 0.015])
    states = rng.integers(1, 57, 3200)
    fips_pool = np.array([f"{s:02d}{c:03d}" for s, c in zip(states, rng.integers(1, 999, 3200),
                                                            strict=True)])
    fips = rng.choice(np.unique(fips_pool), n)
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTVWXYZ"))
    dx_pool = np.unique(np.array([
        f"{rng.choice(letters)}{rng.integers(0, 100):02d}"
        + (f".{rng.integers(0, 100)}" if rng.random() < 0.7 else "") for _ in range(520)]))[:500]
    dx = rng.choice(dx_pool, n)
    lab = np.round(rng.lognormal(2.0, 1.0, n), 2).astype(str)
    lab_null = rng.random(n) < 0.05
    lab = np.where(lab_null, rng.choice(np.array(["", "NA", ".", "NULL"]), n), lab)
    hosp = np.where(rng.random(n) < 0.03, "Y", "N")
    comment_idx = rng.integers(0, len(_COMMENTS), n)
    has_comment = rng.random(n) < 0.4
    comments = np.where(has_comment, np.array(_COMMENTS, dtype=object)[comment_idx], "")

    frame = pl.DataFrame({
        "CASE_ID": case_id,
        "PERS_ID": person_id,
        "DOB": birth.dt.strftime("%m/%d/%Y"),
        "SEX": sex,
        "CNTY_FIPS": fips,
        "RPT_DT": report.dt.strftime("%m/%d/%Y"),
        "DX_CD": dx,
        "LAB_VAL": lab,
        "HOSP_YN": hosp,
        "CMNT": comments.astype(str),
    })
    frame, bad = _break_rules(frame, rng, n, bad_share)
    frame = _boundaries(frame, bad, delivery_date)
    canary_rows: dict[str, int] = {}
    if canaries:
        frame, canary_rows = _plant(frame, bad, canaries)
    return frame, Truth(n, seed, delivery_date, bad, canary_rows)


def _set(frame: pl.DataFrame, column: str, row: int, value: str) -> pl.DataFrame:
    return frame.with_columns(frame[column].scatter(row, value))


def _break_rules(frame: pl.DataFrame, rng: np.random.Generator, n: int,
                 share: float) -> tuple[pl.DataFrame, dict[int, str]]:
    count = max(len(BAD_KINDS), round(n * share))
    # rows 0..9 are kept clean for boundary values and canaries
    chosen = rng.choice(np.arange(10, n), count, replace=False)
    bad: dict[int, str] = {}
    columns = {c: frame[c].to_list() for c in frame.columns}
    clean_rows = np.setdiff1d(np.arange(10, n), chosen)
    for i, row in enumerate(sorted(chosen.tolist())):
        kind = BAD_KINDS[i % len(BAD_KINDS)]
        if kind == "bad_diagnosis_code":
            columns["DX_CD"][row] = str(rng.choice(["U07.1", "123", "a01.1", "Z9", "B20.12345"]))
        elif kind == "birth_after_report":
            rpt = columns["RPT_DT"][row]
            m, d, y = (int(x) for x in rpt.split("/"))
            later = date(y, m, d) + timedelta(days=int(rng.integers(1, 400)))
            columns["DOB"][row] = later.strftime("%m/%d/%Y")
        elif kind == "invalid_date":
            columns["DOB"][row] = str(rng.choice(["02/30/1980", "13/01/1975", "00/12/1990"]))
        elif kind == "negative_lab_value":
            columns["LAB_VAL"][row] = f"-{rng.integers(1, 500) / 10:.1f}"
        else:  # a later copy of an earlier, valid row's CASE_ID
            earlier = clean_rows[clean_rows < row]
            source = int(rng.choice(earlier if earlier.size else np.arange(0, 10)))
            columns["CASE_ID"][row] = columns["CASE_ID"][source]
        bad[row + 1] = kind
    return pl.DataFrame(columns), bad


def _boundaries(frame: pl.DataFrame, bad: dict[int, str], delivery: date) -> pl.DataFrame:
    """Valid boundary values in rows 0..6 (never bad rows)."""
    fmt = "%m/%d/%Y"
    frame = _set(frame, "DOB", 0, "01/01/1900")
    frame = _set(frame, "RPT_DT", 1, "01/01/2015")
    frame = _set(frame, "DOB", 1, "01/01/2015")  # DOB = RPT_DT
    frame = _set(frame, "RPT_DT", 2, delivery.strftime(fmt))
    frame = _set(frame, "LAB_VAL", 3, "0")
    frame = _set(frame, "CMNT", 4, ("Long note, " * 60)[:499] + "€")
    frame = _set(frame, "SEX", 5, "X")
    return frame


def _plant(frame: pl.DataFrame, bad: dict[int, str],
           canaries: dict[str, str]) -> tuple[pl.DataFrame, dict[str, int]]:
    rows: dict[str, int] = {}
    if "person_id" in canaries:
        frame = _set(frame, "PERS_ID", 7, canaries["person_id"])
        rows["person_id"] = 8
    if "comment" in canaries:
        frame = _set(frame, "CMNT", 8, canaries["comment"])
        rows["comment"] = 9
    return frame, rows
