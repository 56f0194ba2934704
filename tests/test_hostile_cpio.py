"""Hostile and broken cpio deliveries, end to end through ``run_delivery``.

Each is refused with one of our own errors whose message names the cause and
quotes no value, and leaves the output root, the temp folder and the working
folder exactly as they were (``refused`` of test_hostile_input, which also
checks the audit record). Archives come from GNU cpio where it can make the
case (traversal, links, devices, fifos, truncation); headers no honest writer
makes (a member claiming gigabytes, a name of ``/etc/...``) are written by hand
from the newc layout.
"""

# ruff: noqa: F811 - the fixtures of test_hostile_input, imported, are parameters here
from __future__ import annotations

import dataclasses
import gzip
import os
import subprocess
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from _cpio import make_cpio, tape, tool
from test_hostile_input import (  # noqa: F401
    ROWS,
    World,
    accepted,
    baseline,
    csv_bytes,
    refused,
    secrets_,
    table,
    world,
)

from ingest.errors import MediaError
from ingest.media import Member, OpenContext
from ingest.media.cpio import CONTAINER
from ingest.synth.packaging import make_tar


def newc(*entries: tuple[str, bytes, int], sizes: dict[str, int] | None = None) -> bytes:
    """A newc archive by hand: (name, data, mode) entries, a size in the header that may
    differ from the data's (``sizes``), and the trailer."""
    out = bytearray()
    for ino, (name, data, mode) in enumerate([*entries, ("TRAILER!!!", b"", 0)], 1):
        raw = name.encode() + b"\0"
        size = (sizes or {}).get(name, len(data))
        fields = (ino, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, len(raw), 0)
        out += b"070701" + b"".join(b"%08X" % f for f in fields) + raw
        out += bytes(-len(out) % 4) + data + bytes(-len(data) % 4)
    return bytes(out + bytes(-len(out) % 512))


REG, LNK, CHR, BLK = 0o100644, 0o120777, 0o020644, 0o060644


def _gnu(setup: Callable[[Path], list[str]], form: str = "newc") -> bytes:
    """What GNU cpio writes for the names ``setup`` prepares in a scratch folder."""
    import tempfile

    with tempfile.TemporaryDirectory() as work:
        root = Path(work, "sub")
        root.mkdir()
        names = setup(root)
        return tool("cpio", "-o", "--quiet", "-H", form,
                    stdin="".join(f"{n}\n" for n in names).encode(), cwd=root)


def _dotdot(root: Path) -> list[str]:
    (root.parent / "escape.csv").write_bytes(b"CASE_ID\r\n1\r\n")
    return ["../escape.csv"]


def _symlink(root: Path) -> list[str]:
    (root / "cases.csv").symlink_to("/etc/passwd")
    return ["cases.csv"]


def _hardlink(csv: bytes) -> Callable[[Path], list[str]]:
    def setup(root: Path) -> list[str]:
        (root / "cases.csv").write_bytes(csv)
        os.link(root / "cases.csv", root / "more.csv")
        return ["cases.csv", "more.csv"]
    return setup


def _fifo(root: Path) -> list[str]:
    os.mkfifo(root / "cases.csv")
    return ["cases.csv"]


def _char_device(root: Path) -> list[str]:
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root (the block device case is by hand)")
    os.mknod(root / "cases.csv", 0o020644, os.makedev(1, 3))  # /dev/null's numbers
    return ["cases.csv"]


HOSTILE: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "gnu-dotdot": (lambda c: _gnu(_dotdot), "climbs out of the archive"),
    "gnu-odc-dotdot": (lambda c: _gnu(_dotdot, "odc"), "climbs out of the archive"),
    "by-hand-dotdot-deep": (lambda c: newc(("cases.csv", c, REG), ("a/../../x.csv", c, REG)),
                            "climbs out of the archive"),
    "by-hand-absolute": (lambda c: newc(("/etc/x", c, REG)), "absolute path"),
    "gnu-absolute": (lambda c: _gnu(lambda r: [str(_written(r / "abs.csv", c))]),
                     "absolute path"),
    "gnu-symlink": (lambda c: _gnu(_symlink), "symbolic link"),
    "gnu-bin-symlink": (lambda c: _gnu(_symlink, "bin"), "symbolic link"),
    "by-hand-symlink": (lambda c: newc(("cases.csv", b"/etc/passwd", LNK)), "symbolic link"),
    "gnu-newc-hardlink": (lambda c: _gnu(_hardlink(c)), "hard link"),
    "gnu-odc-hardlink": (lambda c: _gnu(_hardlink(c), "odc"), "hard link"),
    "gnu-fifo": (lambda c: _gnu(_fifo), "fifo"),
    "gnu-char-device": (lambda c: _gnu(_char_device), "character device"),
    "by-hand-block-device": (lambda c: newc(("cases.csv", b"", BLK)), "block device"),
    "by-hand-duplicate": (lambda c: newc(("cases.csv", c, REG), ("./cases.csv", c, REG)),
                          "two members of this name"),
    "data-after-the-trailer": (lambda c: newc(("cases.csv", c, REG)) + newc(
        ("more.csv", c, REG)), "data follows the end"),
}


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_cpio_members_are_refused_end_to_end(world: World, csv_bytes: bytes,
                                                     case: str) -> None:
    build, why = HOSTILE[case]
    message = refused(world, {"tape.cpio": build(csv_bytes)}, MediaError)
    assert why in message, message
    assert "refused" in message
    assert not (world.root / "escape.csv").exists() and not Path("/etc/x").exists()


def test_the_hand_made_archive_is_a_valid_one(world: World, csv_bytes: bytes, table) -> None:
    """So the cases above fail for the hostile part alone."""
    summary = accepted(world, {"tape.cpio": newc(("d/cases.csv", csv_bytes, REG))})
    assert (summary.rows_in, summary.rows_quarantined) == (ROWS, table[1].quarantined)


def _cut_points(data: bytes) -> dict[str, int]:
    second = data.index(b"070701", 1)
    trailer = data.index(b"TRAILER!!!") - 110  # its header's start
    return {"inside-the-first-header": 60, "inside-the-first-name": 112,
            "inside-the-data": second // 2, "at-a-member-boundary": second,
            "before-the-trailer": trailer, "inside-the-trailer": trailer + 50}


@pytest.mark.parametrize("cut", ["inside-the-first-header", "inside-the-first-name",
                                 "inside-the-data", "at-a-member-boundary",
                                 "before-the-trailer", "inside-the-trailer"])
def test_a_truncated_cpio_is_refused(world: World, csv_bytes: bytes, cut: str) -> None:
    data = make_cpio({"cases.csv": csv_bytes, "notes.txt": b"x" * 700})
    at = _cut_points(data)[cut]
    message = refused(world, {"tape.cpio": data[:at]}, MediaError)
    assert "truncated" in message, message


@pytest.mark.parametrize("compress", ["gzip", "xz", "zstd"])
def test_a_truncated_compressed_cpio_is_refused(world: World, csv_bytes: bytes,
                                                compress: str) -> None:
    data = make_cpio({"cases.csv": csv_bytes}, "gnu-newc-tape-5120", compress)
    message = refused(world, {f"tape.cpio.{compress}": data[: len(data) * 2 // 3]}, MediaError)
    assert "truncated" in message, message


@pytest.mark.parametrize(("header", "at"), [(0, 60), (1, 60), (1, 3), (1, 100), (2, 2)])
def test_a_corrupted_header_is_refused(world: World, csv_bytes: bytes, header: int,
                                       at: int) -> None:
    """A size field or a magic no longer valid: libarchive steps over to the next
    magic it finds, dropping a member; that is seen and refused."""
    data = bytearray(make_cpio({"cases.csv": csv_bytes, "notes.txt": b"x" * 5,
                                "more.txt": b"y"}))
    starts = [i for i in range(0, len(data), 2) if data.startswith(b"070701", i)]
    assert len(starts) == 4  # three members and the trailer
    data[starts[header] + at] = ord("Z")
    message = refused(world, {"tape.cpio": bytes(data)}, MediaError)
    assert "damaged" in message, message


def test_a_member_claiming_a_huge_size_allocates_nothing(world: World, csv_bytes: bytes) -> None:
    """4 GiB declared in a 1 KiB archive: refused before any buffer, within the ratio."""
    data = newc(("cases.csv", b"x" * 100, REG), sizes={"cases.csv": 0xFFFFFFFF})
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(MediaError, match="bomb") as caught:
            CONTAINER.open(Member("tape.cpio", data), OpenContext())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20 and time.perf_counter() - started < 5, (peak, str(caught.value))
    message = refused(world, {"tape.cpio": data}, MediaError)
    assert "bomb" in message


def test_a_member_claiming_more_than_the_archive_holds_is_refused(world: World,
                                                                  csv_bytes: bytes) -> None:
    """Within the limits, but the data is not there: truncated, not padded with zeros."""
    data = newc(("cases.csv", csv_bytes, REG), sizes={"cases.csv": len(csv_bytes) * 3})
    message = refused(world, {"tape.cpio": data}, MediaError)
    assert "truncated" in message, message


def _many(count: int) -> bytes:
    return newc(*[(f"m{i}.txt", b"", REG) for i in range(count)])


def test_a_bomb_of_many_members_is_refused(world: World) -> None:
    settings = dataclasses.replace(world.settings, limits=dataclasses.replace(
        world.settings.limits, max_members=1000))
    message = refused(world, {"tape.cpio": _many(1001)}, MediaError, settings=settings)
    assert "more than 1000 entries" in message


def test_the_default_member_limit_holds_for_a_real_cpio_of_empty_files(world: World) -> None:
    """100,001 entries (GNU cpio's own headers, 13 MiB): refused at the default limit."""
    data = _many(100_001)
    started = time.perf_counter()
    message = refused(world, {"tape.cpio": data}, MediaError)
    assert "more than 100000 entries" in message
    assert time.perf_counter() - started < 60


def test_a_compressed_cpio_bomb_is_refused(world: World) -> None:
    data = gzip.compress(make_cpio({"cases.csv": b"CASE_ID\r\n" + bytes(48 * 2**20)}))
    message = refused(world, {"tape.cpio.gz": data}, MediaError)
    assert "bomb" in message, message


def _nest(csv: bytes, levels: int) -> tuple[str, bytes]:
    """cases.csv in cpio in tar in cpio ..., ``levels`` containers deep."""
    name, data = "cases.csv", csv
    for level in range(levels):
        if level % 2 == 0:
            data, name = make_cpio({name: data}), f"l{level}.cpio"
        else:
            data, name = make_tar({name: data}), f"l{level}.tar"
    return name, data


def test_nesting_cpio_and_tar_to_the_limit_is_read(world: World, csv_bytes: bytes,
                                                   table) -> None:
    name, data = _nest(csv_bytes, world.settings.limits.max_nesting)
    summary = accepted(world, {name: data})
    assert (summary.rows_in, summary.rows_quarantined) == (ROWS, table[1].quarantined)


def test_nesting_cpio_and_tar_past_the_limit_is_refused(world: World, csv_bytes: bytes) -> None:
    name, data = _nest(csv_bytes, world.settings.limits.max_nesting + 1)
    message = refused(world, {name: data}, MediaError)
    assert f"nested deeper than {world.settings.limits.max_nesting}" in message


def test_a_tape_of_zero_blocks_after_the_trailer_is_read(world: World, csv_bytes: bytes,
                                                         table) -> None:
    """The padding a tape drive writes is not 'data after the end'."""
    data = tape(newc(("cases.csv", csv_bytes, REG)), 10240) + bytes(10240)
    summary = accepted(world, {"tape.cpio": data})
    assert summary.rows_in == ROWS


def test_gnu_cpio_reads_the_hand_made_archives() -> None:
    """The hand-made layout is the real one: GNU cpio lists it."""
    listed = subprocess.run(["cpio", "-t", "--quiet"], input=newc(("a/b.csv", b"1", REG)),
                            capture_output=True, check=True).stdout
    assert listed == b"a/b.csv\n"


def test_a_flipped_data_byte_in_the_crc_form_is_refused(world: World, csv_bytes: bytes) -> None:
    """The crc form carries a checksum per file; libarchive ignores it, we do not."""
    data = bytearray(make_cpio({"cases.csv": csv_bytes}, "gnu-crc"))
    at = data.index(csv_bytes[:40]) + 20
    data[at] ^= 0x01
    message = refused(world, {"tape.cpio": bytes(data)}, MediaError)
    assert "does not match its checksum" in message, message
