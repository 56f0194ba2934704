"""Open a delivery: a folder, a file, or containers nested in each other.

What each member is comes from :func:`ingest.formats.classify`, by content,
never by extension. Every container format is one module with an object
satisfying :class:`~ingest.media._base.Container`, registered with
:mod:`ingest.formats` as a container; encryption layers (OpenPGP, Office) are
registered by :mod:`ingest.crypto` and peeled as they are met.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MediaError, guard
from ..formats import Kind, classify
from ._base import Container, Limits, Member, OpenContext
from .checksums import verify_checksums
from .directory import read_directory


@dataclass(frozen=True)
class Delivery:
    """A delivery opened in memory: its fingerprint and its leaf members."""

    source: str
    sha256: str
    members: list[Member] = field(repr=False)
    warnings: list[str] = field(default_factory=list)
    checksums_verified: int = 0

    @property
    def id(self) -> str:
        return self.sha256[:16]


def fingerprint(path: Path) -> str:
    """SHA-256 of a file, or of the sorted (name, SHA-256) list of a folder's files."""
    if path.is_file():
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()
    listing = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        if rel.startswith(".") or "/." in rel:
            continue
        listing.update(f"{rel}\0{fingerprint(file)}\n".encode())
    return listing.hexdigest()


def open_delivery(path: str | Path, *, passphrase: str | None = None,
                  gnupg_home: Path | None = None, limits: Limits | None = None) -> Delivery:
    """Open ``path`` and expand every container and encrypted layer, in memory."""
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path}: no such file or folder")
    ctx = OpenContext(passphrase=passphrase, limits=limits or Limits())
    # the delivery's fingerprint is computed on the other core while it is opened
    # (hashlib releases the GIL)
    with ThreadPoolExecutor(max_workers=1) as pool:
        with guard(f"reading {path.name}", MediaError):
            if path.is_dir():
                top = read_directory(path, ctx.limits)
                digest = pool.submit(fingerprint, path)
            else:
                data = path.read_bytes()
                top = [Member(path.name, data)]
                digest = pool.submit(lambda: hashlib.sha256(data).hexdigest())
        leaves, verified = expand(top, ctx, gnupg_home)
        with guard(f"reading {path.name}", MediaError):
            sha = digest.result()
    return Delivery(str(path), sha, leaves, ctx.warnings, verified)


def expand(members: list[Member], ctx: OpenContext, gnupg_home: Path | None,
           depth: int = 0) -> tuple[list[Member], int]:
    """Verify checksums at this level, then open containers and decrypt, recursively."""
    if depth > ctx.limits.max_nesting:
        raise MediaError(f"containers nested deeper than {ctx.limits.max_nesting} levels; "
                         "refused")
    members, verified = verify_checksums(members)
    leaves: list[Member] = []
    for member in members:
        inner = _open_one(member, ctx, gnupg_home)
        if inner is None:
            leaves.append(member)
            continue
        found, count = expand(inner, ctx, gnupg_home, depth + 1)
        leaves.extend(found)
        verified += count
    return leaves, verified


def _open_one(member: Member, ctx: OpenContext, gnupg_home: Path | None) -> list[Member] | None:
    """The members inside a container or behind an encryption layer; None for a leaf."""
    from ..errors import DecryptionError

    fmt = classify(member)
    if fmt.kind is Kind.ENCRYPTION:
        # decrypted in memory; a password-protected workbook keeps its name, for the readers
        with guard(f"{member.name}: decrypting the {fmt.title}", DecryptionError):
            name, plain = fmt.handler(member.name, member.data, ctx.passphrase, gnupg_home,
                                      ctx.warnings)
        return [Member(name, plain)]
    if fmt.kind is Kind.CONTAINER:
        container: Container = fmt.handler
        with guard(f"{member.name}: opening {container.kind}", MediaError):
            return container.open(member, ctx)
    return None


__all__ = ["Delivery", "Limits", "Member", "OpenContext", "expand",
           "fingerprint", "open_delivery"]
