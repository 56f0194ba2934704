"""Publishing as an operator sees it: a forced run replaces a delivery's outputs whole.

Written for the mutants of ``ingest/writers/publish.py`` that the other tests let
live (``scripts/mutants publish``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.errors import AlreadyProcessed
from ingest.writers.publish import MANIFEST, Staging


def _publish(root: Path, content: bytes, force: bool = False) -> Path:
    with Staging(root, "delivery-1") as staging:
        staging.add("data.bin", content, "parquet")
        return staging.publish({"delivery": {"id": "delivery-1"}}, force=force)


@pytest.mark.parametrize("relative", [False, True], ids=["absolute-root", "relative-root"])
def test_force_replaces_the_outputs_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          relative: bool) -> None:
    """``--out`` may be a relative path (``ingest run --out out``): the swap of the old
    and new folders must work from the current folder too."""
    monkeypatch.chdir(tmp_path)
    root = Path("out") if relative else tmp_path / "out"
    first = _publish(root, b"first run")
    with pytest.raises(AlreadyProcessed):
        _publish(root, b"second run")
    assert (first / "data.bin").read_bytes() == b"first run"
    final = _publish(root, b"second run", force=True)
    assert final.resolve() == first.resolve()
    assert (final / "data.bin").read_bytes() == b"second run"
    listed = json.loads((final / MANIFEST).read_bytes())["outputs"]
    assert [o["path"] for o in listed] == ["data.bin"]
    # nothing left beside it: no staging folder, no copy of the replaced outputs
    assert sorted(p.name for p in (tmp_path / "out").iterdir()
                  if not p.name.startswith(".locks")) == ["delivery-1"]
