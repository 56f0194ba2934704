"""Checks every container opener shares, so a hostile archive is refused the same way.

A delivery comes from outside: member names may climb out of the archive
(``../x``, ``/etc/x``), entries may be links or devices, two entries may claim
the same name, and a few kilobytes may expand to gigabytes. :class:`Intake`
hands out one container's members only once each check has passed, counting
every byte against the delivery's :class:`~ingest.media._base.Limits`.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import NoReturn

from ..errors import MediaError
from ._base import Member, OpenContext

RATIO_FLOOR = 1 << 20
"""Expansion ratios are judged only past 1 MiB: a small file of blanks compresses
1000:1 quite honestly, while a bomb needs size to do harm."""

CHUNK = 1 << 20
"""Read size when a format cannot tell a member's size up front."""

_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean_name(raw: str, container: str) -> str:
    """A member name as a safe relative '/'-path; refuse names that could escape.

    Backslashes count as separators (Windows tools write them), ``.`` and empty
    parts are dropped; ``..``, absolute paths, drive letters and control
    characters are refused rather than repaired, as the sender's tool is broken
    or hostile.
    """
    name = raw.replace("\\", "/")
    if _CONTROL.search(name):
        raise MediaError(f"{container}: a member name holds control characters; refused, "
                         "ask the sender to rename the file")
    if name.startswith("/") or _DRIVE.match(name):
        raise MediaError(f"{container}: member {raw!r} has an absolute path; refused, "
                         "ask the sender for an archive with relative names")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise MediaError(f"{container}: member {raw!r} climbs out of the archive ('..'); "
                         "refused, ask the sender for an archive with plain names")
    if not parts:
        raise MediaError(f"{container}: a member has an empty name; refused")
    return "/".join(parts)


def is_hidden(clean: str) -> bool:
    """Dot-files and macOS ``__MACOSX`` forks are not part of a delivery (as for a folder)."""
    parts = clean.split("/")
    return parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts)


class Intake:
    """One container's members: clean unique names, counted against the limits."""

    def __init__(self, container: Member, ctx: OpenContext, kind: str) -> None:
        self.container = container
        self.ctx = ctx
        self.kind = kind
        self.entries = 0
        self.produced = 0
        self._names: set[str] = set()

    def name(self, raw: str) -> str | None:
        """The member's full name (``container/inner``), refused if unsafe or repeated.

        None for hidden files, which are skipped as the folder reader skips them.
        """
        inner = clean_name(raw, self.container.name)
        if is_hidden(inner):
            return None
        full = f"{self.container.name}/{inner}"
        if full in self._names:
            raise MediaError(f"{full}: the {self.kind} holds two members of this name; "
                             "refused, ask the sender for an archive without duplicates")
        self._names.add(full)
        return full

    def count_entry(self, n: int = 1) -> None:
        """Count entries of any type, so a million empty entries cannot stall us."""
        self.entries += n
        if self.entries > self.ctx.limits.max_members:
            raise MediaError(f"{self.container.name}: the {self.kind} holds more than "
                             f"{self.ctx.limits.max_members} entries; refused")

    def refuse_special(self, raw: str, what: str) -> NoReturn:
        """Links, devices and fifos could point outside the delivery: never followed."""
        shown = _CONTROL.sub("?", raw)
        raise MediaError(f"{self.container.name}/{shown}: a {what} inside the {self.kind}; links "
                         "and special files are refused, ask the sender for plain files")

    def admit(self, name: str, size: int, compressed: int | None = None) -> None:
        """Check a member's declared size before any buffer is allocated for it."""
        if size < 0:
            raise MediaError(f"{name}: the {self.kind} declares a negative size; the archive "
                             "is damaged, ask the sender to send it again")
        self._check_total(name, self.ctx.expanded_bytes + size)
        if compressed is not None:
            self._check_ratio(name, size, compressed)
        self._check_ratio(self.container.name, self.produced + size, len(self.container.data))

    def take(self, name: str, n: int) -> None:
        """Count ``n`` bytes that came out of the container (also chunk by chunk)."""
        self.produced += n
        self.ctx.expanded_bytes += n
        self._check_total(name, self.ctx.expanded_bytes)
        self._check_ratio(self.container.name, self.produced, len(self.container.data))

    def remaining(self) -> int:
        """How many more bytes this container may produce within both limits."""
        total = self.ctx.limits.max_expanded_bytes - self.ctx.expanded_bytes
        ratio = int(max(RATIO_FLOOR, self.ctx.limits.max_expansion_ratio
                        * len(self.container.data))) - self.produced
        return max(0, min(total, ratio))

    def _check_total(self, name: str, total: int) -> None:
        limit = self.ctx.limits.max_expanded_bytes
        if total > limit:
            raise MediaError(f"{name}: the delivery expands past the limit of {limit} bytes; "
                             "refused as a possible decompression bomb (raise the limit if "
                             "the delivery is genuinely this large)")

    def _check_ratio(self, name: str, size: int, compressed: int) -> None:
        ratio = self.ctx.limits.max_expansion_ratio
        if size > RATIO_FLOOR and size > ratio * max(compressed, 1):
            raise MediaError(f"{name}: expands more than {ratio:g} times its compressed size; "
                             "refused as a possible decompression bomb")


def read_capped(read: Callable[[int], bytes], name: str, intake: Intake,
                cap: int | None = None) -> bytes:
    """Read a stream to its end in chunks, counting each against the limits.

    ``cap`` is the size the format declared: a stream longer than that is
    refused, as is one that would pass the delivery's limits.
    """
    out = io.BytesIO()
    while chunk := read(CHUNK):
        if cap is not None and out.tell() + len(chunk) > cap:
            raise MediaError(f"{name}: holds more data than its header declares; the archive "
                             "is damaged or hostile, ask the sender to send it again")
        intake.take(name, len(chunk))
        out.write(chunk)
    return out.getvalue()
