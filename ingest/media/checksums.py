"""Checksum files beside the data (SHA256SUMS, *.sha256, MD5SUMS, *.md5)."""

from __future__ import annotations

import hashlib
import re

from ..errors import ChecksumError
from ._base import Member

_LINE = re.compile(r"^(?P<digest>[0-9a-fA-F]{32}|[0-9a-fA-F]{64})\s+[* ]?(?P<name>.+?)\s*$")
_BSD = re.compile(r"^(?P<algo>SHA256|MD5) \((?P<name>.+)\) = (?P<digest>[0-9a-fA-F]+)\s*$")


def is_checksum_file(name: str) -> bool:
    base = name.rsplit("/", 1)[-1].lower()
    return base in {"sha256sums", "md5sums", "sha256sums.txt", "md5sums.txt",
                    "checksums.sha256", "checksums.md5"} or base.endswith((".sha256", ".md5"))


def verify_checksums(members: list[Member]) -> tuple[list[Member], int]:
    """Check members named by checksum files at the same level.

    Returns the members without the checksum files, and how many digests were
    verified. A mismatch or a named member that is missing stops the run.
    """
    by_name = {m.name: m for m in members}
    sums = [m for m in members if is_checksum_file(m.name)]
    verified = 0
    for sumfile in sums:
        folder = sumfile.name.rsplit("/", 1)[0] + "/" if "/" in sumfile.name else ""
        for entry_name, digest in _entries(sumfile):
            target = by_name.get(folder + entry_name.lstrip("./"))
            if target is None:
                raise ChecksumError(f"{sumfile.name} names {entry_name}, which is not in the "
                                    "delivery; ask the sender for the missing file")
            algo = hashlib.md5 if len(digest) == 32 else hashlib.sha256
            if algo(target.data).hexdigest() != digest.lower():
                raise ChecksumError(f"{target.name}: checksum mismatch against {sumfile.name}; "
                                    "the file is damaged or altered, ask for it again")
            verified += 1
    return [m for m in members if m not in sums], verified


def _entries(sumfile: Member) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    text = sumfile.data.decode("utf-8-sig", "replace")
    single = sumfile.basename.lower().endswith((".sha256", ".md5"))
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if match := _BSD.match(line):
            out.append((match["name"], match["digest"]))
        elif match := _LINE.match(line):
            out.append((match["name"], match["digest"]))
        elif single and re.fullmatch(r"[0-9a-fA-F]{32}|[0-9a-fA-F]{64}", line):
            # a bare digest in cases.csv.sha256 names cases.csv
            out.append((sumfile.basename.rsplit(".", 1)[0], line))
        else:
            raise ChecksumError(f"{sumfile.name}: a line is not a checksum entry")
    return out
