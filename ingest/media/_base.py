"""What every container opener shares: the member type, limits, the protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ..settings import Limits  # one definition, configured with the settings


@dataclass(frozen=True)
class Member:
    """One file of a delivery, its bytes held in memory (never written to disk).

    ``name`` is the path inside the delivery, '/'-separated; nested containers
    add their own name as a prefix (``disc.iso/cases.7z/cases.csv``).
    """

    name: str
    data: bytes = field(repr=False)

    @property
    def basename(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    def __len__(self) -> int:
        return len(self.data)

    def take(self) -> bytes:
        """The bytes, handed over: this member holds them no longer.

        A reader that turns them into something else (text decoded to UTF-8) takes
        them, so that the delivery's plaintext is freed as soon as the reader is
        done with it, instead of living beside the table until the read ends.
        """
        data = self.data
        object.__setattr__(self, "data", b"")  # frozen for everything but this
        return data


@dataclass
class OpenContext:
    """What an opener may need: the secret, the limits, and a place for warnings."""

    passphrase: str | None = None
    limits: Limits = field(default_factory=Limits)
    warnings: list[str] = field(default_factory=list)
    expanded_bytes: int = 0


class Container(Protocol):
    """A container format: recognised by content, opened in memory."""

    kind: str

    def sniff(self, head: bytes) -> bool:
        """True when ``head`` (the first 64 KiB) is this format."""
        ...

    def open(self, member: Member, ctx: OpenContext) -> list[Member]:
        """The members inside, names prefixed with ``member.name + '/'``."""
        ...
