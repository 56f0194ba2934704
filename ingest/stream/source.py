"""The delivery's plaintext as a stream of blocks: a plain file, or an OpenPGP
message that gpg decrypts into a pipe, never onto disk.

Only the simplest delivery shapes stream: a single file, or a folder holding
exactly one file. Anything else (containers, checksum files, other encryption
layers) takes the in-memory path, which knows them all.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .. import progress
from .._fs import ChildOutput, child_environment, run_tool
from ..crypto import openpgp
from ..errors import DecryptionError, IngestError, MediaError
from ..settings import stall_seconds

T = TypeVar("T")

Blocks = Iterator[bytes]


@dataclass(frozen=True)
class Source:
    """One file of a delivery that may be streamed."""

    path: Path
    delivered: str
    """The file's name in the delivery (``cases.csv.gpg``)."""
    member: str
    """The member's name as the in-memory path names it (``cases.csv`` for
    ``cases.csv.gpg``)."""
    encrypted: bool
    size: int


def streamable_file(path: Path) -> Source | None:
    """The delivery's one file, if it is a plain or OpenPGP file alone (else None)."""
    if path.is_dir():
        files = [p for p in sorted(path.rglob("*"))
                 if not any(part.startswith(".") for part in p.relative_to(path).parts)]
        if len(files) != 1 or files[0].is_symlink() or not files[0].is_file():
            return None
        file, name = files[0], files[0].relative_to(path).as_posix()
    elif path.is_file() and not path.is_symlink():
        file, name = path, path.name
    else:
        return None
    with file.open("rb") as fh:
        head = fh.read(1 << 16)
    encrypted = openpgp.is_openpgp(head)
    member = _decrypted_name(name) if encrypted else name
    return Source(file, name, member, encrypted, file.stat().st_size)


def _decrypted_name(name: str) -> str:
    """As the in-memory path names a decrypted member (:func:`openpgp.open_openpgp`)."""
    for suffix in (".gpg", ".pgp", ".asc"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name + ".decrypted"


def with_plaintext(source: Source, block: int, consume: Callable[[Blocks], T], *,
                   gnupg_home: Path, passphrase: str | None,
                   warnings: list[str]) -> T:
    """``consume(blocks)`` over the source's plaintext, ``block`` bytes at a time.

    An OpenPGP message is decrypted by gpg as it is read. What ``consume`` made
    of it stands only once gpg has reported the decryption and its integrity
    check good: a tampered or truncated message raises here, after ``consume``,
    and the caller publishes nothing.
    """
    if not source.encrypted:
        with source.path.open("rb") as fh:
            return consume(iter(lambda: fh.read(block), b""))
    return _decrypting(source, block, consume, gnupg_home, passphrase, warnings)


def _decrypting(source: Source, block: int, consume: Callable[[Blocks], T],
                home: Path, passphrase: str | None, warnings: list[str]) -> T:
    with contextlib.ExitStack() as stack:
        try:
            message = os.open(source.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise MediaError(f"{source.path.name}: cannot be read "
                             f"({exc.strerror or type(exc).__name__})") from None
        stack.callback(os.close, message)
        cmd, pass_fds = openpgp.gpg_command(home, passphrase, stack)
        stack.enter_context(progress.tool_input(message))  # how far gpg has read
        code, (made, failed), messages = run_tool(
            [*cmd, "--decrypt"], lambda output: _drained(output, block, consume),
            stdin=message, pass_fds=pass_fds, env=child_environment(),
            messages_limit=1 << 20, stall_after=stall_seconds())
    status = openpgp.status_lines(messages)
    _check(code, status, source.delivered, passphrase is not None, warnings)
    if failed is not None:
        raise failed
    return made  # type: ignore[return-value]


def _drained(output: ChildOutput, block: int, consume: Callable[[Blocks], T]
             ) -> tuple[T | None, IngestError | None]:
    """What ``consume`` made, or the error it raised once the rest of the plaintext
    is read and dropped: a truncated or tampered message is reported as such
    (gpg's verdict comes first), not as the damaged text it let through."""
    blocks = iter(lambda: output.receive(block), b"")
    try:
        return consume(blocks), None
    except IngestError as exc:
        for _ in blocks:
            pass
        return None, exc


def _check(code: int, status: list[str], name: str, had_passphrase: bool,
           warnings: list[str]) -> None:
    """gpg's verdict, read as :func:`openpgp.decrypt_openpgp` reads it."""
    words = {line.split(" ", 1)[0] for line in status}
    unverified = openpgp._unverified_signers(status)
    exit_ok = code == 0 or (code == 2 and bool(unverified))
    if words & openpgp._SIG_BAD:
        raise DecryptionError(f"{name}: the OpenPGP signature is bad, or made by a revoked "
                              "or expired key: the message may have been altered or its "
                              "sender's key compromised; ask the sender to send it again")
    ok = exit_ok and "DECRYPTION_OKAY" in words and "DECRYPTION_FAILED" not in words
    if ok and ("GOODMDC" in words or "DECRYPTION_INFO" in words):
        if unverified:
            warnings.append(f"{name}: signed by OpenPGP key {', '.join(unverified)}, which "
                            "this keyring does not hold: the signature was not verified "
                            "(import the sender's public key to verify it)")
        return
    raise DecryptionError(openpgp._explain(name, status, words, had_passphrase))
