"""The dashboard: the managed server's Prefect UI opens the run a delivery printed.

A delivery with canary values runs through the flow (``ingest run``) on the managed
server; the ``View at`` link it prints is opened in headless Chromium against that
real server: the page names the run, its state and every stage's task, the report
artifact's page opens, and no canary is in either page's DOM. With
``INGEST_PREFECT_UI`` off no link is printed, only the run's API address.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from _canaries import Canary, Scanner

from ingest.synth import generate

from conftest import DELIVERY_DATE, ROOT

INGEST = str(ROOT / ".venv" / "bin" / "ingest")
STAGES = ("open-media", "read", "validate", "encrypt", "publish", "report")
PERSON, COMMENT = "PDEC0FFEE", "CANARY-OSPREY-7391 notes"
pytestmark = pytest.mark.prefect_server

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture
def cli_env(home: Path):
    env = dict(os.environ, INGEST_HOME=str(home))
    for name in ("PREFECT_API_URL", "PREFECT_UI_URL", "INGEST_PASSPHRASE",
                 "INGEST_MANAGED_PREFECT_API_URL", "INGEST_PREFECT_UI"):
        env.pop(name, None)
    subprocess.run([INGEST, "server", "stop"], env=env, check=False, capture_output=True)
    yield env
    subprocess.run([INGEST, "server", "stop"], env=env, check=False, capture_output=True)


def _run(env: dict[str, str], folder: Path, out: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [INGEST, "run", str(folder), "--schema", "reference", "--out", str(out),
         "--delivery-date", DELIVERY_DATE.isoformat(), "--json"],
        env=env, capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _canary_delivery(pgp_delivery) -> Path:
    frame, truth = generate(2000, seed=23, delivery_date=DELIVERY_DATE,
                            canaries={"person_id": PERSON, "comment": COMMENT})
    frame = frame.with_columns(frame["CMNT"].scatter(7, COMMENT + " q"))  # quarantined too
    folder, _ = pgp_delivery(frame, truth, name="dashboard")
    return folder


def _chromium(url: str, tmp_path: Path, shot: Path | None = None) -> str:
    """The page's DOM after its scripts ran (and a screenshot when ``shot`` is given)."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if not binary:
        pytest.fail("chromium is not installed: run scripts/bootstrap (APT_PACKAGES)")
    what = [f"--screenshot={shot}"] if shot else ["--dump-dom"]
    proc = subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'chromium-profile'}",
         "--hide-scrollbars", "--window-size=1400,1000", "--virtual-time-budget=15000",
         *what, url],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env=dict(os.environ, HOME=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _rendered(url: str, tmp_path: Path, *expect: str, tries: int = 3) -> str:
    """The DOM once the page's text matches every pattern of ``expect``: on a busy
    machine the UI's calls to the API (the run, then its logs) may outlast one
    virtual-time budget, so the page is loaded again."""
    for _ in range(tries):
        dom = _chromium(url, tmp_path)
        if all(re.search(pattern, _text(dom)) for pattern in expect):
            return dom
    return dom


def _text(dom: str) -> str:
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def _get(url: str, data: dict | None = None) -> tuple[int, bytes]:
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers={
        "Accept": "text/html,application/json", "Content-Type": "application/json"})
    try:
        with _OPENER.open(request, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def test_the_printed_link_opens_the_run_and_its_report(cli_env, pgp_delivery,
                                                       tmp_path: Path) -> None:
    from PIL import Image

    folder = _canary_delivery(pgp_delivery)
    proc = _run(cli_env, folder, tmp_path / "out")
    summary = json.loads(proc.stdout)
    delivery_id = Path(summary["output_dir"]).name
    links = re.findall(r"View at (http://127\.0\.0\.1:\d+/runs/flow-run/([0-9a-f-]{36}))",
                       proc.stderr)
    assert len(links) == 1, proc.stderr[-3000:]
    link, run_id = links[0]
    name = re.search(r"Beginning flow run '([\w-]+)'", proc.stderr)
    assert name, proc.stderr[-3000:]
    base = link.split("/runs/")[0]
    scanner = Scanner([Canary("person_id", PERSON), Canary("comment", COMMENT)])

    # the run: its name, its state, the flow, and each stage's task run
    tasks = [rf"\b{stage}-[0-9a-f]{{3}}\b" for stage in STAGES]
    dom = _rendered(link, tmp_path, re.escape(f"Flow Run: {name.group(1)}"), *tasks)
    text = _text(dom)
    assert f"Flow Run: {name.group(1)}" in text, text[:2000]
    assert "Completed" in text and "ingest-delivery" in text, text[:2000]
    for task in tasks:
        assert re.search(task, text), (task, text[:3000])
    assert not scanner.scan_bytes(dom.encode())
    shot = tmp_path / "run.png"
    _chromium(link, tmp_path, shot)
    image = Image.open(shot).convert("RGB")
    assert image.size == (1400, 1000)
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50, "the screenshot is blank or nearly so"
    assert max(n for n, _ in colours) / (1400 * 1000) < 0.9, "one colour fills the page"

    # the report artifact of the run, found through the API, opens on its own page
    status, body = _get(f"{base}/api/artifacts/filter", {
        "artifacts": {"key": {"any_": [f"delivery-{delivery_id}"]}}})
    assert status == 200
    artifacts = [a for a in json.loads(body) if a["flow_run_id"] == run_id]
    assert len(artifacts) == 1
    page = f"{base}/artifacts/artifact/{artifacts[0]['id']}"
    dom = _rendered(page, tmp_path, "Quarantine reasons", re.escape(name.group(1)))
    text = _text(dom)
    assert f"Delivery {delivery_id} (reference): published" in text, text[:2000]
    assert "Quarantine reasons" in text and f"{summary['rows_in']:,}" in text, text[:3000]
    assert name.group(1) in text  # the artifact names the run it came from
    assert not scanner.scan_bytes(dom.encode())
    keep = os.environ.get("INGEST_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)

    # the UI's static copy is under the managed server's Prefect home, free of data
    ui = Path(cli_env["INGEST_HOME"]) / "prefect" / "ui"
    assert (ui / "v1" / "index.html").is_file() and (ui / "v2" / "index.html").is_file()
    assert not scanner.scan(ui.iterdir())


def test_without_the_ui_no_link_is_printed_but_the_runs_api_address(
        cli_env, pgp_delivery, tmp_path: Path) -> None:
    folder = _canary_delivery(pgp_delivery)
    proc = _run(dict(cli_env, INGEST_PREFECT_UI="off"), folder, tmp_path / "out")
    assert "View at" not in proc.stderr
    notice = re.search(r"flow run ([0-9a-f-]{36}) \(the Prefect server serves no UI\): "
                       r"(http://127\.0\.0\.1:\d+/api)/flow_runs/\1", proc.stderr)
    assert notice, proc.stderr[-3000:]
    run_id, api = notice.groups()
    status, body = _get(f"{api}/flow_runs/{run_id}")
    assert status == 200 and json.loads(body)["state"]["type"] == "COMPLETED"
    # the server indeed serves no UI: the link Prefect would print answers 404
    assert _get(f"{api.removesuffix('/api')}/runs/flow-run/{run_id}")[0] == 404
    state = json.loads(subprocess.run([INGEST, "server", "status"], env=cli_env,
                                      capture_output=True, text=True, check=True).stdout)
    assert state["running"] and state["ui"] is None
