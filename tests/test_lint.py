"""The code stays clean: ruff over every Python folder of the project."""

from __future__ import annotations

import subprocess

from conftest import ROOT


def test_ruff_is_clean() -> None:
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "ruff"), "check", "ingest", "flows",
                           "schemas", "tests", "bench"], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_mypy_is_clean() -> None:
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "mypy"), "ingest", "flows", "schemas",
                           "--ignore-missing-imports"], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:]
