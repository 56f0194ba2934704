"""Where deliveries stand, and progress of a run on the terminal.

:func:`deliveries` merges two sources: the manifests under the output roots
(what is published) and this keyring's audit log (every run: published, already
processed, failed with the error's class). Both hold ids, names, counts and
hashes only. :class:`Progress` prints one line to stderr as each stage starts
and ends, with the elapsed time, when stderr is a terminal.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from .settings import Settings

STAGE_WORDS = {"passphrase": "reading the passphrase", "open-media": "opening and decrypting",
               "read": "reading", "validate": "validating", "encrypt": "encrypting",
               "publish": "writing", "report": "writing the report"}


# --------------------------------------------------------------------------- progress


class Progress:
    """A stage listener (``listener(stage, "start"|"end", seconds)``) printing to a TTY."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.started = time.perf_counter()
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, stage: str, event: str, seconds: float) -> None:
        if not self.enabled:
            return
        words = STAGE_WORDS.get(stage, stage)
        clock = time.perf_counter() - self.started
        if event == "start":
            line = f"ingest: [{clock:7.1f} s] {words} ..."
        else:
            line = f"ingest: [{clock:7.1f} s] {words}: done in {seconds:.1f} s"
        print(line, file=self.stream, flush=True)

    def wrap(self, runner: Any) -> Any:
        """A stage runner (``runner(name, fn, *args)``) that reports around ``runner``."""

        def run(name: str, fn: Any, *args: Any) -> Any:
            t0 = time.perf_counter()
            self(name, "start", 0.0)
            value = runner(name, fn, *args)
            self(name, "end", time.perf_counter() - t0)
            return value

        return run


# --------------------------------------------------------------------------- status


def _manifests(root: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if not root.is_dir():
        return found
    for folder in sorted(root.iterdir()):
        path = folder / "manifest.json"
        if folder.name.startswith(".") or not path.is_file():
            continue
        try:
            doc = json.loads(path.read_text())
            found.append({
                "delivery_id": doc["delivery"]["id"],
                "delivery_sha256": doc["delivery"]["sha256"],
                "source": doc["delivery"].get("source", ""),
                "schema": doc["schema"]["name"],
                "time": doc.get("run", {}).get("finished", ""),
                "rows_in": doc["rows"]["in"], "rows_accepted": doc["rows"]["accepted"],
                "rows_quarantined": doc["rows"]["quarantined"],
                "folder": str(folder), "report": (folder / "report.html").is_file(),
            })
            if "tables" in doc:  # a delivery of several tables: each one's counts
                found[-1]["tables"] = [{"name": t["name"], "rows_in": t["rows"]["in"],
                                        "rows_accepted": t["rows"]["accepted"],
                                        "rows_quarantined": t["rows"]["quarantined"]}
                                       for t in doc["tables"]]
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def _audit_runs(path: Path) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    if not path.is_file():
        return runs
    for raw in path.read_bytes().splitlines():
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if entry.get("event") == "run":
            runs.append(entry)
    return runs


def deliveries(settings: Settings, out: str | Path | None = None) -> list[dict[str, Any]]:
    """One row per delivery: its latest outcome, counts, folder and run count.

    Published deliveries come from the manifests under ``out`` (else under every
    output root this keyring has published to); failed runs come from the audit
    log (which names the delivery's file or folder and the error's class, no
    more). Oldest first.
    """
    from .custody import output_roots

    roots = [Path(out).resolve()] if out else output_roots(settings)
    rows: dict[str, list[dict[str, Any]]] = {}  # by fingerprint: one per output root
    for root in roots:
        for m in _manifests(root):
            rows.setdefault(m["delivery_sha256"], []).append(
                {**m, "outcome": "published", "runs": 0, "last_run": m["time"], "error": ""})
    failures: list[dict[str, Any]] = []
    for entry in _audit_runs(settings.audit_log):
        sha = entry.get("delivery_sha256")
        outcome = entry.get("outcome", "")
        if outcome == "publishing":  # the intent record before an outcome: not a run
            continue
        if sha and sha in rows:
            for row in rows[sha]:  # the audit log does not say which root
                row["runs"] += 1
                row["last_run"] = entry.get("time", "")
                row["outcome"] = ("published (re-run skipped)"
                                  if outcome == "already-processed" else "published")
        elif outcome == "failed":
            failures.append({
                "delivery_id": "", "delivery_sha256": "", "source": entry.get("source", ""),
                "schema": entry.get("schema", ""), "time": entry.get("time", ""),
                "last_run": entry.get("time", ""), "outcome": "failed",
                "error": entry.get("error", ""), "rows_in": None, "rows_accepted": None,
                "rows_quarantined": None, "folder": "", "report": False, "runs": 1})
    listing = [row for same in rows.values() for row in same] + failures
    return sorted(listing, key=lambda r: (r["last_run"] or r["time"] or ""))


def render(rows: list[dict[str, Any]]) -> str:
    """The listing as aligned text for the terminal."""
    if not rows:
        return "no deliveries yet"

    def num(v: Any) -> str:
        return "" if v is None else f"{v:,}"

    header = ("last run (UTC)", "delivery", "source", "outcome", "rows in", "accepted",
              "quarantined", "folder / error")
    table = [header] + [(
        (r["last_run"] or r["time"])[:19].replace("T", " "), r["delivery_id"] or "-",
        r["source"], r["outcome"], num(r["rows_in"]), num(r["rows_accepted"]),
        num(r["rows_quarantined"]), r["folder"] or r["error"]) for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    right = {4, 5, 6}
    lines = []
    for n, row in enumerate(table):
        cells = [str(c).rjust(widths[i]) if i in right else str(c).ljust(widths[i])
                 for i, c in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        # a delivery of several tables: one line per table, under the delivery's totals
        for part in rows[n - 1].get("tables", []) if n else []:
            cells = ["", "", f"  table {part['name']}", "", num(part["rows_in"]),
                     num(part["rows_accepted"]), num(part["rows_quarantined"])]
            lines.append("  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i])
                                   for i, c in enumerate(cells)).rstrip())
    return "\n".join(lines)
