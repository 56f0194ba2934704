"""The README's Python examples run as written (paths replaced by a real delivery's)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from ingest.pipeline import run_delivery

from conftest import DELIVERY_DATE, ROOT


def python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_features_example_trains_a_model(pgp_delivery, tmp_path: Path) -> None:
    folder, _ = pgp_delivery()
    summary = run_delivery(folder, out=tmp_path / "out", delivery_date=DELIVERY_DATE)
    block = next(b for b in python_blocks() if "ingest.features.load" in b)
    code = block.replace("/secure/out/<delivery id>", summary.output_dir)
    if importlib.util.find_spec("torch") is None:
        code = code.split("import torch")[0]  # the PyTorch lines need torch installed
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - our own README
    assert scope["model"].predict(scope["fm"].X[:10]).shape == (10,)
    if "X" in scope:
        assert tuple(scope["X"].shape) == scope["fm"].X.shape


def test_the_load_example_reads_the_outputs(pgp_delivery, tmp_path: Path) -> None:
    folder, truth = pgp_delivery()
    run_delivery(folder, out=tmp_path / "out", delivery_date=DELIVERY_DATE)
    block = next(b for b in python_blocks() if "ingest.load(" in b and "run_delivery" in b)
    code = block.replace('"/secure/out"', repr(str(tmp_path / "out")))
    code = code.replace('"cases.csv.gpg"', repr(str(folder)))
    code = code.replace('out=', 'delivery_date=__import__("datetime").date(2026, 6, 30), out=')
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - our own README
    assert scope["summary"].skipped  # the same delivery, already published above
    assert scope["df"].shape[0] == truth.accepted  # the pandas frame of two columns
    assert list(scope["df"].columns) == ["sex", "hospitalized"]
