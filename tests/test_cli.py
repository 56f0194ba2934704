"""The command as a user meets it: JSON contract, exit codes, one-line errors, the demo."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import ingest

from conftest import DELIVERY_DATE, ROOT

INGEST = str(ROOT / ".venv" / "bin" / "ingest")
pytestmark = pytest.mark.prefect_server


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("cli-home")
    env = dict(os.environ, INGEST_HOME=str(home))
    env.pop("PREFECT_API_URL", None)
    env.pop("INGEST_PASSPHRASE", None)
    yield env
    subprocess.run([INGEST, "server", "stop"], env=env, check=False, capture_output=True)


def ingest_cmd(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([INGEST, *args], env=env, capture_output=True, text=True,
                          check=False)


def test_run_prints_the_json_contract_and_is_idempotent(cli_env, tmp_path: Path) -> None:
    assert ingest_cmd(cli_env, "synth", "--rows", "5000", "--out",
                      str(tmp_path / "d")).returncode == 0
    truth = json.loads((tmp_path / "d.truth.json").read_text())
    args = ("run", str(tmp_path / "d"), "--schema", "reference", "--out", str(tmp_path / "out"),
            "--delivery-date", DELIVERY_DATE.isoformat(), "--json")
    proc = ingest_cmd(cli_env, *args)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert {"delivery_sha256", "rows_in", "rows_accepted", "rows_quarantined",
            "quarantine_reasons", "outputs", "seconds"} <= set(doc)
    assert (doc["rows_in"], doc["rows_accepted"], doc["rows_quarantined"]) == (
        truth["rows"], truth["accepted"], truth["quarantined"])
    assert sum(doc["quarantine_reasons"].values()) == truth["quarantined"]
    assert {o["kind"] for o in doc["outputs"]} >= {"parquet", "jsonl", "quarantine",
                                                  "manifest", "features"}
    again = json.loads(ingest_cmd(cli_env, *args).stdout)
    assert again["skipped"] and again["outputs"] == doc["outputs"]
    os.environ["INGEST_HOME"] = cli_env["INGEST_HOME"]
    try:
        assert ingest.load(tmp_path / "out").height == truth["accepted"]
    finally:
        del os.environ["INGEST_HOME"]


@pytest.mark.parametrize(("args", "code", "words"), [
    (("run", "/nonexistent/delivery", "--out", "OUT"), 3, "no such file or folder"),
    (("run", "DELIVERY", "--out", "OUT", "--schema", "nosuch"), 2, "no schema 'nosuch'"),
    (("run", "DELIVERY", "--out", "OUT", "--passphrase-file", "/nonexistent"), 5,
     "cannot read the passphrase file"),
])
def test_failures_end_in_one_actionable_line(cli_env, tmp_path: Path, args, code,
                                             words) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "cases.csv").write_text("CASE_ID\n1\n")
    args = [a.replace("DELIVERY", str(tmp_path / "d")).replace("OUT", str(tmp_path / "o"))
            for a in args]
    proc = ingest_cmd(cli_env, *args)
    assert proc.returncode == code, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ingest: error: ") and words in last
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_the_demo_runs_the_400k_delivery_through_the_flow(cli_env) -> None:
    proc = ingest_cmd(cli_env, "demo")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "every row accounted for, and exactly the rule-breaking rows quarantined" in \
        proc.stdout
    assert "rows delivered       400,000" in proc.stdout


def test_master_key_from_a_prefect_secret_block(cli_env, tmp_path: Path) -> None:
    """A deployment keeps the general master key in a Prefect Secret block, not on disk."""
    home = Path(cli_env["INGEST_HOME"])
    assert ingest_cmd(cli_env, "synth", "--rows", "3000", "--seed", "5", "--out",
                      str(tmp_path / "d")).returncode == 0
    server_env = dict(cli_env)
    for line in subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-m", "flows.server",
                                "env"], env=cli_env, capture_output=True, text=True,
                               check=True).stdout.splitlines():
        key, _, value = line.partition("=")
        server_env[key] = value.strip("'")
    key_file = home / "keys" / "general.json"
    doc = json.loads(key_file.read_text())
    save = ("from prefect.blocks.system import Secret; "
            f"Secret(value={doc['id'] + ':' + doc['key']!r}).save('site-general-key', "
            "overwrite=True)")
    subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-c", save], env=server_env,
                   check=True, capture_output=True)
    moved = key_file.with_name("general.json.away")
    key_file.rename(moved)
    try:
        env = dict(cli_env, INGEST_PREFECT_SECRET_PREFIX="site")
        proc = ingest_cmd(env, "run", str(tmp_path / "d"), "--out", str(tmp_path / "out"),
                          "--delivery-date", DELIVERY_DATE.isoformat(), "--json")
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert json.loads(proc.stdout)["rows_in"] == 3000
        without = ingest_cmd(cli_env, "run", str(tmp_path / "d"), "--out",
                             str(tmp_path / "out2"), "--no-prefect")
        assert without.returncode == 5 and "no keyring" in without.stderr
    finally:
        moved.rename(key_file)
