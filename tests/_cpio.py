"""cpio archives as the real writers make them (GNU cpio, bsdcpio, bsdtar), for the tests.

The files are written to a temporary folder only to be archived (test data, not a
delivery's), their names given on the writer's standard input as ``find`` would.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

WRITERS: dict[str, tuple[str, ...]] = {
    "gnu-newc": ("cpio", "-o", "--quiet", "-H", "newc"),
    "gnu-crc": ("cpio", "-o", "--quiet", "-H", "crc"),
    "gnu-odc": ("cpio", "-o", "--quiet", "-H", "odc"),
    "gnu-bin": ("cpio", "-o", "--quiet", "-H", "bin"),
    "gnu-newc-tape-5120": ("cpio", "-o", "--quiet", "-H", "newc", "-B"),
    "gnu-newc-tape-10240": ("cpio", "-o", "--quiet", "-H", "newc", "-C", "10240"),
    "bsdcpio-odc": ("bsdcpio", "-o", "--quiet"),
    "bsdcpio-newc": ("bsdcpio", "-o", "--quiet", "--format", "newc"),
    "bsdtar-cpio": ("bsdtar", "-c", "-n", "-f", "-", "--format", "cpio", "-T", "-"),
}
"""A writer's command; the names to archive come on its standard input."""

COMPRESSORS: dict[str, tuple[str, ...]] = {
    "gzip": ("gzip", "-c", "-n"), "bzip2": ("bzip2", "-c"), "xz": ("xz", "-c"),
    "zstd": ("zstd", "-q", "-c"),
}
SUFFIX = {"gzip": "gz", "bzip2": "bz2", "xz": "xz", "zstd": "zst"}
"""The file name's suffix each compressor gives."""


def tool(*command: str, stdin: bytes = b"", cwd: Path | None = None) -> bytes:
    if shutil.which(command[0]) is None:
        pytest.fail(f"{command[0]} is not installed (scripts/bootstrap installs it)")
    return subprocess.run(command, input=stdin, capture_output=True, check=True,
                          cwd=cwd).stdout


def make_cpio(files: dict[str, bytes], writer: str = "gnu-newc",
              compress: str | None = None) -> bytes:
    """``files`` archived by ``writer`` (folders listed first, as ``find`` does)."""
    with tempfile.TemporaryDirectory() as work:
        names: list[str] = []
        for name, data in files.items():
            path = Path(work, name)
            for parent in reversed(Path(name).parents[:-1]):
                if str(parent) not in names:
                    names.append(str(parent))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            names.append(name)
        archive = tool(*WRITERS[writer], stdin="".join(f"{n}\n" for n in names).encode(),
                       cwd=Path(work))
    return archive if compress is None else tool(*COMPRESSORS[compress], stdin=archive)


def tape(data: bytes, block: int = 5120) -> bytes:
    """Zero-padded to whole tape blocks, as ``dd conv=sync`` writes it to tape."""
    return data + bytes(-len(data) % block)
