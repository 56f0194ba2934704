"""A mounted disc or a folder: every regular file below it, in a stable order."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import MediaError
from ._base import Limits, Member


def read_directory(root: Path, limits: Limits) -> list[Member]:
    """Read every regular file under ``root``; links and devices are refused."""
    members: list[Member] = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in dirnames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink() and not (rel.startswith(".") or "/." in rel):
                # os.walk lists a link to a folder but does not enter it: never skip silently
                raise MediaError(f"{rel}: a link to a folder in the delivery; refused")
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if rel.startswith(".") or "/." in rel:
                continue  # hidden files are not part of a delivery (.DS_Store, our markers)
            if path.is_symlink() or not path.is_file():
                raise MediaError(f"{rel}: a link or special file in the delivery; refused")
            total += path.stat().st_size
            if total > limits.max_expanded_bytes:
                raise MediaError(f"{root.name}: the delivery is larger than the limit of "
                                 f"{limits.max_expanded_bytes} bytes")
            members.append(Member(rel, path.read_bytes()))
    if not members:
        raise MediaError(f"{root}: the folder holds no files")
    return members
