"""What people see about a run: a Markdown report, a table and an HTML page.

Everything here is built from aggregates only: the run summary
(:class:`ingest.pipeline.RunSummary` as JSON: counts, rule names, output names
and hashes, stage timings), a column profile (null counts per column of the
accepted rows) and the manifests already published under the output root. No
function here ever sees a row.

Small counts are suppressed: a count of quarantined rows per rule or per column,
or of nulls in a column, that is above 0 and below :data:`SUPPRESS_BELOW` is
shown as ``"<10"`` (and drawn without a bar), since a handful of rows can point
at a person. Totals (rows delivered, accepted, quarantined) are shown as they are.

The HTML page is self-contained: inline SVG charts drawn here, inline CSS, a
Content-Security-Policy that forbids every network fetch, no JavaScript.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ._fs import write_private
from .repairs import phrase

SUPPRESS_BELOW = 10
SUPPRESSED = f"<{SUPPRESS_BELOW}"
REPORT_FILE = "report.html"
TABLE_LEVEL = "(whole row)"
"""Column shown for rules that are not about one column (cross-column checks)."""

STAGE_LABELS = {"open-media": "open and decrypt", "read": "read", "validate": "validate",
                "encrypt": "encrypt", "publish": "write and publish"}


# --------------------------------------------------------------------------- aggregates


def suppress(count: int) -> int | str:
    """``count``, or ``"<10"`` when it is small enough to point at a person."""
    return SUPPRESSED if 0 < count < SUPPRESS_BELOW else count


def column_profile(accepted: Any) -> dict[str, Any]:
    """Null counts per column of a polars DataFrame of accepted rows: aggregates only."""
    nulls = accepted.null_count().row(0, named=True) if accepted.width else {}
    return {"rows": int(accepted.height), "nulls": {str(k): int(v) for k, v in nulls.items()}}


def rule_column(rule: str) -> str:
    """The column a rule is about (``"lab_value:greater_than..."`` -> ``lab_value``)."""
    return rule.rpartition(":")[0] if ":" in rule else TABLE_LEVEL


def failures_by_column(reasons: dict[str, int]) -> dict[str, int]:
    """Rule failures summed per column (a row failing two rules of a column counts twice)."""
    out: dict[str, int] = {}
    for rule, count in reasons.items():
        out[rule_column(rule)] = out.get(rule_column(rule), 0) + int(count)
    return dict(sorted(out.items()))


def column_counts(reasons: dict[str, int]) -> dict[str, int | str]:
    """Rule failures per column, as shown: small totals as ``"<10"``, and a total one of
    whose rules is suppressed as ``"≥10"`` (else shown rule counts subtracted from it
    would give the suppressed one away)."""
    shown: dict[str, int | str] = {}
    for col, total in failures_by_column(reasons).items():
        hidden = any(0 < int(c) < SUPPRESS_BELOW for r, c in reasons.items()
                     if rule_column(r) == col)
        shown[col] = suppress(total) if not hidden or total < SUPPRESS_BELOW \
            else f"≥{SUPPRESS_BELOW}"
    return shown


def _fmt(value: int | str) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def repair_lines(repairs: dict[str, int]) -> list[str]:
    """Each repair as a sentence ("1,480 county_fips values zero-padded ..."), small
    counts suppressed like every other count."""
    return [phrase(r, _fmt(suppress(int(c)))) for r, c in sorted(repairs.items())]


def flat_profile(profile: dict[str, Any] | None) -> tuple[dict[str, int], dict[str, int]]:
    """Null counts per column and the rows each column's rate is taken over; the
    columns of a delivery of several tables are named ``<table>.<column>``."""
    profile = profile or {}
    if "tables" not in profile:
        nulls = dict(profile.get("nulls", {}))
        return nulls, dict.fromkeys(nulls, int(profile.get("rows", 0)))
    nulls, rows = {}, {}
    for table, part in profile["tables"].items():
        for column, count in part.get("nulls", {}).items():
            nulls[f"{table}.{column}"] = count
            rows[f"{table}.{column}"] = int(part.get("rows", 0))
    return nulls, rows


def table_rows(summary: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Each table of a delivery of several: name, rows delivered, accepted,
    quarantined (totals per table are shown as they are, like the delivery's)."""
    return [(t["name"], _fmt(t["rows_in"]), _fmt(t["rows_accepted"]),
             _fmt(t["rows_quarantined"])) for t in summary.get("tables") or []]


def _null_cell(count: int, rows: int) -> str:
    if count == 0:
        return "0%"
    if count < SUPPRESS_BELOW:
        return f"{SUPPRESSED} rows"
    return f"{count / max(rows, 1):.1%}"


def history(root: str | Path) -> list[dict[str, Any]]:
    """One entry per delivery published under ``root``, oldest first, from the manifests."""
    entries = []
    root = Path(root)
    if not root.is_dir():
        return []
    for folder in root.iterdir():
        path = folder / "manifest.json"
        if folder.name.startswith(".") or not path.is_file():
            continue
        try:
            doc = json.loads(path.read_text())
            entries.append({
                "delivery_id": str(doc["delivery"]["id"]),
                "source": str(doc["delivery"].get("source", "")),
                "delivery_date": str(doc["delivery"].get("delivery_date", "")),
                "published": str(doc.get("run", {}).get("finished", "")),
                "schema": str(doc.get("schema", {}).get("name", "")),
                "rows_in": int(doc["rows"]["in"]),
                "rows_accepted": int(doc["rows"]["accepted"]),
                "rows_quarantined": int(doc["rows"]["quarantined"]),
            })
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not one of ours, or damaged: `ingest verify` is the place to say so
    return sorted(entries, key=lambda e: (e["published"], e["delivery_id"]))


# --------------------------------------------------------------------------- Markdown + table


def _md_table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str) -> list[str]:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def title(summary: dict[str, Any]) -> str:
    state = "already processed, outputs unchanged" if summary.get("skipped") else "published"
    return f"Delivery {summary['delivery_id']} ({summary['schema']}): {state}"


def markdown(summary: dict[str, Any], profile: dict[str, Any] | None = None) -> str:
    """The run as Markdown: counts per rule and per column, outputs, hashes, timings."""
    reasons = summary.get("quarantine_reasons") or {}
    lines = [f"# {title(summary)}", ""]
    if summary.get("output_dir"):
        lines += [f"Outputs in `{summary['output_dir']}`.", ""]
    lines += _md_table(["rows", "count"], [
        ("delivered", _fmt(summary["rows_in"])),
        ("accepted", _fmt(summary["rows_accepted"])),
        ("quarantined", _fmt(summary["rows_quarantined"]))], "lr")
    if summary.get("tables"):
        lines += ["", "## Tables", "", "Each table was validated on its own; the delivery "
                  "was published because every table passed.", ""]
        lines += _md_table(["table", "delivered", "accepted", "quarantined"],
                           table_rows(summary), "lrrr")
    lines += ["", "## Quarantine reasons", "",
              f"Rows failing each rule (a row may fail several); counts from 1 to "
              f"{SUPPRESS_BELOW - 1} are shown as {SUPPRESSED}.", ""]
    if reasons:
        lines += _md_table(["rule", "column", "rows"],
                           [(r, rule_column(r), _fmt(suppress(int(c))))
                            for r, c in sorted(reasons.items())], "llr")
    else:
        lines.append("No row was quarantined.")
    lines += ["", "## Repairs", "",
              "Values changed into what the sender meant, as the schema declares; counts "
              f"from 1 to {SUPPRESS_BELOW - 1} are shown as {SUPPRESSED}.", ""]
    repairs = repair_lines(summary.get("repairs") or {})
    lines += [f"- {line}" for line in repairs] if repairs else ["No value was repaired."]
    by_col = column_counts(reasons)
    nulls, rows = flat_profile(profile)
    columns = sorted(set(by_col) | set(nulls))
    if columns:
        lines += ["", "## Per column", ""]
        lines += _md_table(["column", "rule failures", "null rate (accepted rows)"],
                           [(c, _fmt(by_col.get(c, 0)),
                             _null_cell(nulls[c], rows[c]) if c in nulls else "")
                            for c in columns], "lrr")
    if summary.get("outputs"):
        lines += ["", "## Outputs", ""]
        lines += _md_table(["file", "kind", "bytes", "sha256"],
                           [(o["path"], o["kind"], _fmt(int(o.get("bytes", 0))),
                             f"`{o['sha256']}`") for o in summary["outputs"]], "llrl")
    stages = summary.get("stage_seconds") or {}
    if stages:
        lines += ["", "## Time per stage", ""]
        lines += _md_table(["stage", "seconds"],
                           [(STAGE_LABELS.get(s, s), f"{t:.2f}") for s, t in stages.items()]
                           + [("whole run", f"{summary.get('seconds', 0):.2f}")], "lr")
    for warning in summary.get("warnings") or []:
        lines += ["", f"> warning: {warning}"]
    return "\n".join(lines) + "\n"


def failure_markdown(error: BaseException, delivery: str) -> str:
    """A failed run: our one-line message (never a value) and what happened to outputs."""
    return (f"# Delivery {Path(delivery).name}: failed\n\n"
            f"**{type(error).__name__}**: {error}\n\nNothing was published.\n")


def table(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The run as one table (rows of section, name, value) for a Prefect table artifact."""
    out: list[dict[str, Any]] = [
        {"section": "rows", "name": name, "value": summary[key]}
        for name, key in (("delivered", "rows_in"), ("accepted", "rows_accepted"),
                          ("quarantined", "rows_quarantined"))]
    out += [{"section": "table", "name": f"{t['name']} {what}", "value": t[key]}
            for t in summary.get("tables") or []
            for what, key in (("delivered", "rows_in"), ("accepted", "rows_accepted"),
                              ("quarantined", "rows_quarantined"))]
    out += [{"section": "rule", "name": rule, "value": suppress(int(count))}
            for rule, count in sorted((summary.get("quarantine_reasons") or {}).items())]
    out += [{"section": "repair", "name": repair, "value": suppress(int(count))}
            for repair, count in sorted((summary.get("repairs") or {}).items())]
    out += [{"section": "column", "name": col, "value": count} for col, count
            in column_counts(summary.get("quarantine_reasons") or {}).items()]
    out += [{"section": "output", "name": o["path"], "value": o["sha256"]}
            for o in summary.get("outputs") or []]
    out += [{"section": "seconds", "name": stage, "value": seconds}
            for stage, seconds in (summary.get("stage_seconds") or {}).items()]
    return out


# --------------------------------------------------------------------------- SVG charts

_FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif"
ACCEPTED_COLOUR = "#2f7d4f"
QUARANTINED_COLOUR = "#c0392b"
NEUTRAL_COLOUR = "#3d6fb6"
MUTED = "#8a8f98"


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def bar_chart(items: Sequence[tuple[str, float, str, str]], *, max_value: float | None = None,
              width: int = 640, label_width: int = 250, title: str = "") -> str:
    """Horizontal bars: ``(label, value, shown text, colour)``; value < 0 draws no bar."""
    row, top = 26, 8
    height = top + row * max(len(items), 1) + 8
    top_value = max_value or max([v for _, v, _, _ in items if v > 0] or [1])
    plot = width - label_width - 80
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}" '
             f'style="{_FONT};font-size:13px">']
    if not items:
        parts.append(f'<text x="0" y="{top + 16}" fill="{MUTED}">nothing to show</text>')
    for i, (label, value, shown, colour) in enumerate(items):
        y = top + i * row
        parts.append(f'<text x="{label_width - 8}" y="{y + 16}" text-anchor="end" '
                     f'fill="#222">{_e(label)}</text>')
        length = 0.0 if value <= 0 else max(2.0, plot * value / top_value)
        parts.append(f'<rect x="{label_width}" y="{y + 3}" width="{plot}" height="18" '
                     f'fill="#eef0f3"/>')
        if length:
            parts.append(f'<rect x="{label_width}" y="{y + 3}" width="{length:.1f}" '
                         f'height="18" fill="{colour}"/>')
        parts.append(f'<text x="{label_width + plot + 6}" y="{y + 16}" '
                     f'fill="{colour if value > 0 else MUTED}">{_e(shown)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def history_chart(entries: Sequence[dict[str, Any]], *, current: str = "",
                  width: int = 640, height: int = 240) -> str:
    """Stacked columns per delivery (accepted + quarantined rows), oldest on the left."""
    left, right, top, bottom = 64, 12, 12, 58
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = max([e["rows_in"] for e in entries] or [1]) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="deliveries over time" '
             f'style="{_FONT};font-size:12px">']
    for frac in (0, 0.5, 1):
        y = top + plot_h * (1 - frac)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#d9dce1"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" '
                     f'fill="{MUTED}">{_e(f"{round(top_value * frac):,}")}</text>')
    n = max(len(entries), 1)
    slot = plot_w / n
    bar = min(48.0, slot * 0.7)
    for i, entry in enumerate(entries):
        x = left + slot * i + (slot - bar) / 2
        acc_h = plot_h * entry["rows_accepted"] / top_value
        q_h = plot_h * entry["rows_quarantined"] / top_value
        base = top + plot_h
        parts.append(f'<rect x="{x:.1f}" y="{base - acc_h:.1f}" width="{bar:.1f}" '
                     f'height="{acc_h:.1f}" fill="{ACCEPTED_COLOUR}"><title>'
                     f'{_e(entry["delivery_id"])}: {entry["rows_accepted"]:,} accepted'
                     f'</title></rect>')
        if q_h:
            parts.append(f'<rect x="{x:.1f}" y="{base - acc_h - max(q_h, 1.5):.1f}" '
                         f'width="{bar:.1f}" height="{max(q_h, 1.5):.1f}" '
                         f'fill="{QUARANTINED_COLOUR}"/>')
        if entry["delivery_id"] == current:
            parts.append(f'<rect x="{x - 3:.1f}" y="{top:.1f}" width="{bar + 6:.1f}" '
                         f'height="{plot_h:.1f}" fill="none" stroke="#222" '
                         f'stroke-dasharray="3 3"/>')
        if n <= 16 or i % max(1, n // 12) == 0:
            cx = x + bar / 2
            parts.append(f'<text x="{cx:.1f}" y="{base + 16}" text-anchor="middle" '
                         f'fill="#222">{_e(entry["published"][:10])}</text>')
            parts.append(f'<text x="{cx:.1f}" y="{base + 30}" text-anchor="middle" '
                         f'fill="{MUTED}">{_e(entry["delivery_id"][:8])}</text>')
    if not entries:
        parts.append(f'<text x="{left + 8}" y="{top + 20}" fill="{MUTED}">'
                     'no published delivery yet</text>')
    legend_y = height - 10
    parts.append(f'<rect x="{left}" y="{legend_y - 10}" width="12" height="12" '
                 f'fill="{ACCEPTED_COLOUR}"/><text x="{left + 18}" y="{legend_y}">accepted</text>'
                 f'<rect x="{left + 100}" y="{legend_y - 10}" width="12" height="12" '
                 f'fill="{QUARANTINED_COLOUR}"/><text x="{left + 118}" y="{legend_y}">'
                 'quarantined</text>')
    parts.append("</svg>")
    return "".join(parts)


# --------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;
 margin:2rem auto;max-width:980px;color:#222;padding:0 1rem;background:#fff}
h1{font-size:1.5rem;margin-bottom:.2rem} h2{font-size:1.1rem;margin-top:2rem;
 border-bottom:1px solid #d9dce1;padding-bottom:.3rem}
.sub{color:#5a5f68;margin-top:0} .cards{display:flex;gap:1rem;flex-wrap:wrap}
.card{border:1px solid #d9dce1;border-radius:8px;padding:.7rem 1.1rem;min-width:140px}
.card b{display:block;font-size:1.5rem} .card span{color:#5a5f68;font-size:.85rem}
table{border-collapse:collapse;font-size:.9rem;margin-top:.5rem}
td,th{border-bottom:1px solid #eceef1;padding:.3rem .8rem;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:.78rem;word-break:break-all}
.note{color:#5a5f68;font-size:.85rem}
"""


def html_report(summary: dict[str, Any], profile: dict[str, Any] | None,
                deliveries: Sequence[dict[str, Any]]) -> str:
    """The delivery's report page: cards, four charts, outputs and timings."""
    reasons = summary.get("quarantine_reasons") or {}
    profile = profile or {"rows": summary["rows_accepted"], "nulls": {}}
    outcome = bar_chart([
        ("accepted", summary["rows_accepted"], _fmt(summary["rows_accepted"]), ACCEPTED_COLOUR),
        ("quarantined", summary["rows_quarantined"], _fmt(summary["rows_quarantined"]),
         QUARANTINED_COLOUR)], max_value=max(summary["rows_in"], 1), title="rows per outcome",
        label_width=120)
    reason_items = []
    for rule, count in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])):
        shown = suppress(int(count))
        reason_items.append((rule, -1 if isinstance(shown, str) else count, _fmt(shown),
                             QUARANTINED_COLOUR))
    reason_svg = bar_chart(reason_items, title="quarantine reasons", label_width=300)
    null_items = []
    nulls, rows_of = flat_profile(profile)
    for col, count in nulls.items():
        small = 0 < count < SUPPRESS_BELOW
        rate = count / rows_of[col] if rows_of[col] else 0.0
        null_items.append((col, -1 if small else rate, _null_cell(count, rows_of[col]),
                           NEUTRAL_COLOUR))
    null_svg = bar_chart(null_items, max_value=1.0, title="null rate per column")
    hist_svg = history_chart(list(deliveries), current=summary["delivery_id"])
    outputs = "".join(
        f"<tr><td>{_e(o['path'])}</td><td>{_e(o['kind'])}</td>"
        f"<td class=n>{_fmt(int(o.get('bytes', 0)))}</td><td><code>{_e(o['sha256'])}</code>"
        "</td></tr>" for o in summary.get("outputs") or [])
    stages = "".join(f"<tr><td>{_e(STAGE_LABELS.get(s, s))}</td><td class=n>{t:.2f}</td></tr>"
                     for s, t in (summary.get("stage_seconds") or {}).items())
    cards = "".join(
        f"<div class=card><b>{_fmt(v)}</b><span>{_e(k)}</span></div>" for k, v in (
            ("rows delivered", summary["rows_in"]), ("accepted", summary["rows_accepted"]),
            ("quarantined", summary["rows_quarantined"]), ("rules failed", len(reasons))))
    tables = "".join(f"<tr><td>{_e(name)}</td><td class=n>{_e(n_in)}</td><td class=n>"
                     f"{_e(n_ok)}</td><td class=n>{_e(n_bad)}</td></tr>"
                     for name, n_in, n_ok, n_bad in table_rows(summary))
    tables = ("<h2>Tables</h2><table><tr><th>table</th><th class=n>delivered</th>"
              "<th class=n>accepted</th><th class=n>quarantined</th></tr>"
              f"{tables}</table>") if tables else ""
    repairs = "".join(f"<li>{_e(line)}</li>"
                      for line in repair_lines(summary.get("repairs") or {}))
    repairs = f"<ul>{repairs}</ul>" if repairs else "<p>No value was repaired.</p>"
    warnings = "".join(f"<p class=note>warning: {_e(w)}</p>"
                       for w in summary.get("warnings") or [])
    csp = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
           "base-uri 'none'; form-action 'none'")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="referrer" content="no-referrer">
<title>{_e(title(summary))}</title><style>{_CSS}</style></head>
<body>
<h1>Delivery {_e(summary['delivery_id'])}</h1>
<p class=sub>schema {_e(summary['schema'])} &middot; fingerprint
<code>{_e(summary['delivery_sha256'])}</code></p>
<div class=cards>{cards}</div>{warnings}
<h2>Rows per outcome</h2>{outcome}{tables}
<h2>Quarantine reasons</h2>
<p class=note>Rows failing each rule; a row may fail several. Counts from 1 to
{SUPPRESS_BELOW - 1} are shown as {_e(SUPPRESSED)}, without a bar.</p>{reason_svg}
<h2>Repairs</h2>
<p class=note>Values changed into what the sender meant, as the schema declares; counts from 1
to {SUPPRESS_BELOW - 1} are shown as {_e(SUPPRESSED)}.</p>{repairs}
<h2>Null rate per column</h2>
<p class=note>Share of accepted rows with no value; under {SUPPRESS_BELOW} rows is shown as
{_e(SUPPRESSED)} rows.</p>{null_svg}
<h2>Deliveries over time</h2>
<p class=note>Every delivery published in this output folder, by publication date; this one is
outlined.</p>{hist_svg}
<h2>Outputs</h2><table><tr><th>file</th><th>kind</th><th class=n>bytes</th><th>sha256</th>
</tr>{outputs}</table>
<h2>Time per stage</h2><table><tr><th>stage</th><th class=n>seconds</th></tr>{stages}
<tr><td><b>whole run</b></td><td class=n><b>{summary.get('seconds', 0):.2f}</b></td></tr>
</table>
<p class=note>Built from counts, rule names and hashes only; no value of the data is in this
page.</p>
</body></html>
"""


def write_html(folder: str | Path, text: str) -> Path:
    """Write ``report.html`` into a published delivery folder: atomic, mode 0600."""
    path = Path(folder) / REPORT_FILE
    write_private(path, text.encode("utf-8"))
    return path
