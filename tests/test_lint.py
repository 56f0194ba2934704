"""The code stays clean: ruff over every Python folder of the project, mypy over the
library, and the import contract over the library and the flows.

The import contract (``[tool.importlinter]`` in pyproject.toml) keeps imports one way:
the CLI -> the flows -> orchestration (pipeline, status, export, report) -> the stages
(media, crypto, readers, validate, writers, keys, features) -> helpers (settings,
schema, ``_fs``, the format registry, errors); the read side and the write side do not
import each other, no library module imports the CLI or the flows, and the modules of a
package import each other without cycles.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

LINT_IMPORTS = ROOT / ".venv" / "bin" / "lint-imports"


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


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    # the packages under ``root`` are the ones analysed, ahead of the installed checkout
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config",
                           str(root / "pyproject.toml")], cwd=root, env=env,
                          capture_output=True, text=True, check=False)


def test_imports_follow_the_layers() -> None:
    proc = _lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


# (module, import added to it, contract that must break, the import as reported)
FORBIDDEN = {
    "a stage imports the CLI": (
        "ingest/media/zip.py", "from ingest.cli import main",
        "No library module imports the CLI or the flows", "ingest.media.zip -> ingest.cli"),
    "the flows import the CLI": (
        "flows/inbox.py", "from ingest.cli import main",
        "Layers: cli -> flows", "flows.inbox -> ingest.cli"),
    "a reader imports a writer, inside a function": (
        "ingest/readers/csv.py", "def _later() -> None:\n    from ..writers import parquet",
        "The read side does not import the write side", "ingest.readers.csv -> ingest.writers"),
    "a helper imports a stage": (
        "ingest/settings.py", "from .media import Member",
        "Layers: cli -> flows", "ingest.settings -> ingest.media"),
    "the write side opens deliveries": (
        "ingest/writers/publish.py", "from ..media import open_delivery",
        "The write side does not import the read side", "ingest.writers.publish -> ingest.media"),
    "two modules of a package import each other": (
        "ingest/keys/kms.py", "from .keyring import Keyring",
        "No import cycles between the modules of a package", ".kms -> .keyring"),
}


@pytest.mark.parametrize("case", sorted(FORBIDDEN))
def test_the_import_check_catches(tmp_path: Path, case: str) -> None:
    module, line, contract, reported = FORBIDDEN[case]
    for folder in ("ingest", "flows"):
        shutil.copytree(ROOT / folder, tmp_path / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with (tmp_path / module).open("a") as fh:
        fh.write(f"\n\n{line}  # noqa\n")
    proc = _lint_imports(tmp_path)
    assert proc.returncode == 1, proc.stdout[-4000:] + proc.stderr[-2000:]
    broken = [row for row in proc.stdout.splitlines() if row.endswith("BROKEN")
              or " BROKEN (" in row]
    assert any(row.startswith(contract) for row in broken), proc.stdout[-4000:]
    assert reported in proc.stdout
