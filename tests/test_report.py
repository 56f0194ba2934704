"""Reports: Markdown and table artifacts and the HTML page, from aggregates only.

Small counts are suppressed; a real run's report holds none of the data's values
(canaries planted in accepted and quarantined rows); the HTML page fetches
nothing and renders in headless Chromium to a page that is not blank.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import polars as pl
import pytest

from ingest import report
from ingest.synth import generate

from conftest import DELIVERY_DATE

SUMMARY = {
    "delivery_id": "0123456789abcdef", "delivery_sha256": "0123456789abcdef" * 4,
    "schema": "reference", "rows_in": 5000, "rows_accepted": 4961, "rows_quarantined": 39,
    "quarantine_reasons": {"lab_value:greater_than_or_equal_to": 3, "case_id:duplicate": 25,
                           "case_id:str_matches": 2,
                           "birth_date_not_after_report_date": 12, "lab_value:not_a_number": 4},
    "outputs": [{"path": "reference.parquet", "kind": "parquet", "sha256": "ab" * 32,
                 "bytes": 123456}],
    "output_dir": "/secure/out/0123456789abcdef", "seconds": 3.21,
    "stage_seconds": {"open-media": 1.0, "read": 0.5, "validate": 0.9, "encrypt": 0.6,
                      "publish": 0.2},
    "warnings": [], "skipped": False,
}
PROFILE = {"rows": 4961, "nulls": {"case_id": 0, "lab_value": 250, "comments": 3}}


def test_small_counts_are_suppressed_everywhere() -> None:
    assert report.suppress(0) == 0 and report.suppress(9) == "<10" and report.suppress(10) == 10
    md = report.markdown(SUMMARY, PROFILE)
    assert "| lab_value:greater_than_or_equal_to | lab_value | <10 |" in md
    assert "| lab_value:not_a_number | lab_value | <10 |" in md
    assert "| case_id:duplicate | case_id | 25 |" in md
    assert "| birth_date_not_after_report_date | (whole row) | 12 |" in md
    # per column: lab_value's 3 + 4 = 7 failures is still small
    assert "| lab_value | <10 | 5.0% |" in md
    assert "| comments | 0 | <10 rows |" in md  # 3 nulls: suppressed
    # case_id's 25 + 2: its total would give the 2 away (27 - 25), so it is not shown
    assert "| case_id | ≥10 | 0% |" in md and "27" not in md
    assert "| delivered | 5,000 |" in md and "| quarantined | 39 |" in md  # totals as they are
    assert f"`{'ab' * 32}`" in md and "| open and decrypt | 1.00 |" in md
    rows = report.table(SUMMARY)
    values = {(r["section"], r["name"]): r["value"] for r in rows}
    assert values[("rule", "lab_value:greater_than_or_equal_to")] == "<10"
    assert values[("rule", "case_id:duplicate")] == 25
    assert values[("column", "lab_value")] == "<10"
    assert values[("column", "case_id")] == "≥10"
    assert values[("rows", "quarantined")] == 39
    assert values[("output", "reference.parquet")] == "ab" * 32
    json.dumps(rows)  # a table artifact must be JSON
    page = report.html_report(SUMMARY, PROFILE, [])
    for small in ("3", "4", "7"):
        assert f">{small}</text>" not in page  # no chart label shows a small count
    assert page.count("&lt;10") >= 3


def test_column_profile_is_counts_only() -> None:
    frame = pl.DataFrame({"a": [1, None, 3], "b": ["x", "y", None], "c": [None, None, None]})
    assert report.column_profile(frame) == {"rows": 3, "nulls": {"a": 1, "b": 1, "c": 3}}


def test_history_reads_the_manifests(tmp_path: Path) -> None:
    for i, (finished, rows) in enumerate([("2026-07-02T10:00:00+00:00", 100),
                                          ("2026-07-01T10:00:00+00:00", 200)]):
        folder = tmp_path / f"{i:016x}"
        folder.mkdir()
        (folder / "manifest.json").write_text(json.dumps({
            "delivery": {"id": folder.name, "source": f"d{i}", "delivery_date": "2026-06-30"},
            "run": {"finished": finished}, "schema": {"name": "reference"},
            "rows": {"in": rows, "accepted": rows - 1, "quarantined": 1}}))
    (tmp_path / ".staging-x").mkdir()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "manifest.json").write_text("{not json")
    found = report.history(tmp_path)
    assert [e["rows_in"] for e in found] == [200, 100]  # oldest first
    assert report.history(tmp_path / "missing") == []


def _real_report(pgp_delivery, tmp_path: Path) -> tuple[dict, dict, str]:
    from ingest.pipeline import run_delivery

    person, comment = "PCAFED00D", "CANARY-HERON-5512 report"
    frame, truth = generate(3000, seed=21, delivery_date=DELIVERY_DATE,
                            canaries={"person_id": person, "comment": comment})
    frame = frame.with_columns(frame["CMNT"].scatter(7, comment + " q"),
                               frame["DX_CD"].scatter(7, "U99.9"))
    folder, _ = pgp_delivery(frame, truth, name="canary")
    profile: dict = {}

    def stage(name, fn, *args):  # as the flow does
        value = fn(*args)
        if name == "validate":
            profile.update(report.column_profile(value.accepted))
        return value

    summary = run_delivery(folder, out=tmp_path / "out", delivery_date=DELIVERY_DATE,
                           stage=stage).to_json()
    return summary, profile, comment + "|" + person


def test_a_real_runs_report_holds_no_value(pgp_delivery, tmp_path: Path) -> None:
    from test_confidentiality import forms

    summary, profile, canaries = _real_report(pgp_delivery, tmp_path)
    page = report.html_report(summary, profile, report.history(tmp_path / "out"))
    path = report.write_html(summary["output_dir"], page)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    texts = [report.markdown(summary, profile), json.dumps(report.table(summary)),
             path.read_text()]
    for value in canaries.split("|"):
        for text in texts:
            assert not any(v in text.encode() for v in forms(value)), value
    # the page fetches nothing: no script, no link, no external reference
    lowered = page.lower()
    assert "<script" not in lowered and "<link" not in lowered and "url(" not in lowered
    assert not re.search(r"\b(src|href)\s*=", lowered)
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) <= {"http://www.w3.org/2000/svg"}
    assert "default-src 'none'" in page
    assert summary["rows_quarantined"] >= 1 and "quarantine reasons" in lowered


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("chromium is not installed: run scripts/bootstrap (APT_PACKAGES)")
    return found


def test_the_html_report_renders_in_headless_chromium(pgp_delivery, tmp_path: Path) -> None:
    from PIL import Image

    summary, profile, _ = _real_report(pgp_delivery, tmp_path)
    deliveries = report.history(tmp_path / "out")
    deliveries = [dict(deliveries[0], delivery_id=f"{i:04x}" * 4, published=f"2026-0{i}-15",
                       rows_in=n, rows_accepted=n - q, rows_quarantined=q)
                  for i, (n, q) in enumerate([(2800, 12), (3100, 40), (2950, 3)], start=1)
                  ] + deliveries
    page = report.write_html(summary["output_dir"],
                             report.html_report(summary, profile, deliveries))
    shot = tmp_path / "report.png"
    profile_dir = tmp_path / "chromium-profile"
    proc = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={profile_dir}", "--hide-scrollbars",
         "--window-size=1100,2300", f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env=dict(os.environ, HOME=str(tmp_path)))
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1100, 2300)
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50, "the screenshot is blank or nearly so"
    white = sum(n for n, rgb in colours if min(rgb) > 245)
    assert white / (image.size[0] * image.size[1]) < 0.97
    # the charts were drawn: the accepted, quarantined and null-rate bar colours
    drawn = {rgb for _, rgb in colours}
    for hex_colour in (report.ACCEPTED_COLOUR, report.QUARANTINED_COLOUR, report.NEUTRAL_COLOUR):
        rgb = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
        assert rgb in drawn, hex_colour
    keep = os.environ.get("INGEST_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
