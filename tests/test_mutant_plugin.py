"""scripts/mutant_plugin.py, the pytest plugin of every mutation run: it records what
each test costs in mutmut's first run of the whole selection, runs a mutant's tests
cheapest first, and ends a test that runs past its own CPU limit with mutmut's timeout
code. Each is run here as mutmut runs it: a pytest process with ``MUTANT_UNDER_TEST``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = '''
import time

def test_slow():
    time.sleep(0.4)

def test_fast():
    pass

def test_middling():
    time.sleep(0.1)
'''


def run(folder: Path, mutant: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MUTANT_")}
    environ.update(PYTHONPATH=str(ROOT / "scripts"), MUTANT_UNDER_TEST=mutant, **env)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "mutant_plugin", "-p",
                           "no:cacheprovider", "-v", "--rootdir", str(folder),
                           "-o", "addopts=", *args], cwd=folder, env=environ,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "test_cases.py").write_text(TESTS)
    return tmp_path


def ran(output: str) -> list[str]:
    return [line.split("::")[1].split()[0] for line in output.splitlines()
            if "::" in line and (" PASSED" in line or " FAILED" in line)]


def test_the_stats_run_records_what_each_test_cost(folder: Path) -> None:
    done = run(folder, "stats")
    assert done.returncode == 0, done.stdout + done.stderr
    costs = json.loads((folder / "mutant-test-costs.json").read_text())
    assert set(costs) == {f"test_cases.py::test_{n}" for n in ("slow", "fast", "middling")}
    assert costs["test_cases.py::test_slow"] >= 0.4 > costs["test_cases.py::test_middling"]
    assert costs["test_cases.py::test_middling"] >= 0.1 > costs["test_cases.py::test_fast"]


def test_a_mutant_s_tests_run_cheapest_first(folder: Path) -> None:
    run(folder, "stats")
    mutant = run(folder, "ingest.m.x_f__mutmut_1")
    assert ran(mutant.stdout) == ["test_fast", "test_middling", "test_slow"], mutant.stdout
    # without a mutant (mutmut's own runs), pytest's order stands
    plain = run(folder, "")
    assert ran(plain.stdout) == ["test_slow", "test_fast", "test_middling"], plain.stdout


def test_a_test_past_its_own_cpu_limit_ends_as_a_timeout(folder: Path) -> None:
    (folder / "mutant-test-costs.json").write_text(json.dumps(
        {"test_cases.py::test_loops": 0.01, "test_cases.py::test_fast": 0.0}))
    (folder / "test_cases.py").write_text(
        "def test_fast():\n    pass\n\ndef test_loops():\n    while True:\n        pass\n")
    out = folder / "profile.jsonl"
    done = run(folder, "ingest.m.x_f__mutmut_2", MUTANT_LIMIT_FLOOR="1",
               MUTANT_PROFILE_OUT=str(out))
    assert done.returncode == 36  # mutmut's code for a timeout
    line = json.loads(out.read_text())
    assert line["timeout"] == "test_cases.py::test_loops"
    assert 1.0 <= line["cpu"] < 5  # the floor + 10 x its cost, in CPU seconds
    assert [t[0] for t in line["tests"]] == ["test_cases.py::test_fast"]
