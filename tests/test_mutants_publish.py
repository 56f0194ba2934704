"""Publishing as an operator sees it: a forced run replaces a delivery's outputs whole.

Written for the mutants of ``ingest/writers/publish.py`` that the other tests let
live (``scripts/mutants publish``).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from ingest.errors import AlreadyProcessed, OutputError
from ingest.writers.publish import (
    MANIFEST,
    Output,
    Staging,
    _exchange,
    delivery_lock,
    is_published,
    table_output,
)


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


# --- what is staged, and what the manifest says of it --------------------------------------

def test_each_output_is_recorded_with_its_hash_and_size(tmp_path: Path) -> None:
    big = bytes(range(256)) * 5000  # more than the file's 1 MiB buffer, written in parts
    with Staging(tmp_path / "out", "d1") as staging:
        assert staging.add("b.age", b"abc", "jsonl") == Output(
            "b.age", "jsonl", hashlib.sha256(b"abc").hexdigest(), 3)
        with staging.open("a.parquet", "parquet") as sink:
            for at in range(0, len(big), 700_001):
                sink.write(big[at:at + 700_001])
        assert stat.S_IMODE(staging.path.stat().st_mode) == 0o700
        assert stat.S_IMODE((staging.path / "a.parquet").stat().st_mode) == 0o600
        final = staging.publish({"delivery": {"id": "d1"}})
        assert [o.path for o in staging.outputs] == ["a.parquet", "b.age", MANIFEST]
    assert (final / "a.parquet").read_bytes() == big
    doc = json.loads((final / MANIFEST).read_bytes())
    assert doc["outputs"] == [
        {"path": "a.parquet", "kind": "parquet", "sha256": hashlib.sha256(big).hexdigest(),
         "bytes": len(big)},
        {"path": "b.age", "kind": "jsonl", "sha256": hashlib.sha256(b"abc").hexdigest(),
         "bytes": 3}]
    assert (final / MANIFEST).read_bytes() == (
        json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n")
    assert is_published(tmp_path / "out", "d1") and not is_published(tmp_path / "out", "d2")


def test_the_audit_record_sees_the_manifest_before_the_outputs_appear(tmp_path: Path) -> None:
    seen: list[tuple[Output, bool]] = []
    with Staging(tmp_path / "out", "d1") as staging:
        staging.add("x", b"1", "parquet")
        final = staging.publish({}, before_rename=lambda entry: seen.append(
            (entry, (tmp_path / "out" / "d1").exists())))
    data = (final / MANIFEST).read_bytes()
    assert seen == [(Output(MANIFEST, "manifest", hashlib.sha256(data).hexdigest(),
                            len(data)), False)]
    # published once: a second publish replaces nothing unless forced
    with pytest.raises(AlreadyProcessed) as caught, Staging(tmp_path / "out", "d1") as again:
        again.add("x", b"2", "parquet")
        again.publish({})
    assert str(caught.value) == (f"delivery d1 is already processed in {final}; use --force "
                                 "to replace its outputs")
    assert (final / MANIFEST).read_bytes() == data
    # replaced by force, outside a with-block: the replaced outputs go at once too
    staging = Staging(tmp_path / "out", "d1")
    staging.add("x", b"3", "parquet")
    assert staging.publish({}, force=True) == final
    assert (final / "x").read_bytes() == b"3"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["d1"]


def test_a_stage_run_again_starts_afresh(tmp_path: Path) -> None:
    with Staging(tmp_path / "out", "d1") as staging:
        staging.add("x", b"1", "parquet")
        staging.clear()
        assert list(staging.path.iterdir()) == [] and staging.outputs == []
        staging.add("y", b"2", "parquet")
        final = staging.publish({})
    assert sorted(p.name for p in final.iterdir()) == [MANIFEST, "y"]


def test_a_failed_run_leaves_no_staging_and_a_killed_ones_is_cleared(tmp_path: Path) -> None:
    root = tmp_path / "out"
    with pytest.raises(RuntimeError), Staging(root, "d1") as staging:
        staging.add("x", b"1", "parquet")
        raise RuntimeError("a stage failed")
    assert not staging.path.exists()
    # folders a killed run left: this delivery's go when it is staged again, others stay
    for stale in (".staging-d1-0000", ".staging-d1-ffff", ".staging-d10-0000"):
        (root / stale).mkdir()
        (root / stale / "part").write_bytes(b"x")
    with Staging(root, "d1") as staging:
        assert sorted(p.name for p in root.iterdir() if p.name.startswith(".staging")) == [
            ".staging-d1-" + staging.path.name.rsplit("-", 1)[1], ".staging-d10-0000"]
        staging.discard()
        assert not staging.path.exists()
        staging.discard()  # again, as a failure path may: nothing left, nothing raised


def test_one_lock_per_delivery_under_the_root(tmp_path: Path) -> None:
    with delivery_lock(tmp_path / "out", "d1"):
        lock = tmp_path / "out" / ".locks" / "d1.lock"
        assert lock.is_file()
        assert stat.S_IMODE(lock.parent.stat().st_mode) == 0o700


def test_the_tables_of_one_delivery_share_its_folder() -> None:
    assert table_output(None, "reference.parquet") == "reference.parquet"
    assert table_output("counties", "parquet") == "counties.parquet"
    assert table_output("", "manifest.json") == "manifest.json"


# --- errors while publishing -----------------------------------------------------------------

def test_an_output_root_that_cannot_be_made_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    root = tmp_path / "file" / "out"
    with pytest.raises(OutputError) as caught:
        Staging(root, "d1")
    assert str(caught.value) == (
        f"preparing the outputs of delivery d1 in {root}: Not a directory "
        f"({root}); nothing was published. Free space on the output folder's disk or make "
        "it writable, then run again")


def test_a_failed_exchange_names_the_folder_and_the_reason(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    with pytest.raises(OutputError) as caught:
        _exchange(tmp_path / "a", tmp_path / "gone")
    assert str(caught.value) == f"could not replace {tmp_path / 'gone'}: No such file or directory"
    assert (tmp_path / "a").is_dir()


def test_a_disk_error_after_the_outputs_are_in_place_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The last step, syncing the output root, fails (a disk going bad): the delivery is
    published, and the message must not say that nothing was."""
    import ingest.writers.publish as publish

    root = tmp_path / "out"
    real = publish.fsync_dir

    def fsync_dir(path: Path) -> None:
        if path == root:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(path)

    monkeypatch.setattr(publish, "fsync_dir", fsync_dir)
    with pytest.raises(OutputError) as caught, Staging(root, "d1") as staging:
        staging.add("x", b"1", "parquet")
        staging.publish({})
    assert str(caught.value) == (f"syncing {root} after publishing delivery d1: "
                                 "Input/output error; the outputs are in place, but the disk "
                                 "reported an error: check it")
    assert (root / "d1" / MANIFEST).is_file()


def test_a_disk_error_while_publishing_leaves_nothing_published(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ingest.writers.publish as publish

    root = tmp_path / "out"

    def fsync_dir(path: Path) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(publish, "fsync_dir", fsync_dir)
    with pytest.raises(OutputError) as caught, Staging(root, "d1") as staging:
        staging.add("x", b"1", "parquet")
        staging.publish({})
    assert str(caught.value) == (
        f"publishing delivery d1 to {root / 'd1'}: Input/output error; nothing was "
        "published. Free space on the output folder's disk or make it writable, then run "
        "again")
    assert list(root.iterdir()) == []
