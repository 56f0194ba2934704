"""7-Zip archives, plain or AES-256 with a password, file names encrypted or not.

py7zr reads the header from a BytesIO (decrypting it when the names are
encrypted): every member's name, type and declared size is checked before any
byte is decompressed. The bytes themselves come from the ``7z`` command when it
is installed, about 1.5x faster than py7zr: it reads the archive from a memory
file (``/proc/self/fd/N``) and writes the members, one after another, to its
stdout, which we receive member by member into buffers of the declared sizes;
the password reaches it on its stdin (7-Zip reads it there when no ``-p`` is
given), never on its command line nor in its environment. Without the command
(or for a password 7-Zip cannot read from one line), py7zr decompresses into an
in-memory sink of ours. Either way nothing is written to a path, no member may
be longer than its header declares, and every byte is counted against the
delivery's limits.
"""

from __future__ import annotations

import contextlib
import io
import lzma
import os
import shutil
import stat
import struct
import zlib
from dataclasses import dataclass

import py7zr
from py7zr.exceptions import (
    ArchiveError,
    DecompressionBombError,
    PasswordRequired,
    UnsupportedCompressionMethodError,
)
from py7zr.helpers import get_sanitized_output_path
from py7zr.io import Py7zIO, WriterFactory

from .._fs import (
    MEMORY_FILES,
    ChildOutput,
    child_environment,
    memory_file,
    run_tool,
    secret_pipe,
)
from ..errors import DecryptionError, IngestError, MediaError
from ..settings import stall_seconds
from ._base import Member, OpenContext
from ._formats import is_seven_zip
from ._safety import Intake

_AES = b"\x06\xf1\x07\x01"  # the 7zAES coder

_COMMANDS = ("7z", "7zz")
"""p7zip-full's ``7z`` (7-Zip itself in current Debian) or 7-Zip's own ``7zz``."""
_UNREADABLE_IN_ONE_LINE = ("\n", "\r", "\0")
_PASSWORD_LIMIT = 4096
"""Bytes of password that fit the pipe's buffer many times over, written before 7-Zip runs."""
_MESSAGES_LIMIT = 1 << 16

_FOREIGN = (ArchiveError, EOFError, OSError, lzma.LZMAError, zlib.error, ValueError,
            TypeError, KeyError, IndexError, AttributeError, struct.error, UnicodeError)
"""What py7zr raises on a wrong password or damaged data: with encrypted names a
wrong password surfaces as a bare TypeError, IndexError, ... from its parser."""


@dataclass(frozen=True)
class _Planned:
    """A regular file to extract: py7zr's key for it, our name, its declared size."""

    key: str
    name: str
    size: int
    hidden: bool = False


class _Sink(Py7zIO):
    """One member's bytes, in memory, capped at its declared size."""

    def __init__(self, name: str, size: int, intake: Intake) -> None:
        self.name = name
        self.declared = size
        self.intake = intake
        self.buffer = io.BytesIO()

    def write(self, s: bytes | bytearray) -> int:
        if self.buffer.tell() + len(s) > self.declared:
            raise MediaError(f"{self.name}: holds more data than the 7-Zip header declares; "
                             "the archive is damaged or hostile, ask for it again")
        self.intake.take(self.name, len(s))
        return self.buffer.write(s)

    def read(self, size: int | None = None) -> bytes:
        return self.buffer.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.buffer.seek(offset, whence)

    def flush(self) -> None:
        return None

    def size(self) -> int:
        return self.buffer.getbuffer().nbytes


class _Factory(WriterFactory):
    """Hands py7zr a sink for each member we planned for, and nothing else."""

    def __init__(self, planned: dict[str, _Planned], intake: Intake) -> None:
        self.planned = planned
        self.intake = intake
        self.sinks: dict[str, _Sink] = {}

    def create(self, filename: str) -> Py7zIO:
        if filename not in self.planned:
            raise MediaError(f"{self.intake.container.name}: the 7-Zip archive produced a "
                             "member it does not list; refused, ask for it again")
        if filename not in self.sinks:
            planned = self.planned[filename]
            self.sinks[filename] = _Sink(planned.name, planned.size, self.intake)
        return self.sinks[filename]


class SevenZipContainer:
    """7-Zip archives, recognised by their signature."""

    kind = "7-Zip archive"

    def sniff(self, head: bytes) -> bool:
        return is_seven_zip(head)

    def open(self, member: Member, ctx: OpenContext) -> list[Member]:
        intake = Intake(member, ctx, self.kind)
        archive = _open_archive(member, ctx.passphrase, intake.remaining())
        with archive:
            planned = _plan(archive, intake)
            encrypted = _content_encrypted(archive)
            command = seven_zip_command()
            if command is not None and _fits_one_line(ctx.passphrase):
                if encrypted and ctx.passphrase is None:
                    raise _need_password(member)
                data = _extract_with_command(command, member, planned, intake,
                                             ctx.passphrase, encrypted)
                return [Member(p.name, d) for p, d in zip(planned, data, strict=True)
                        if not p.hidden]
            factory = _Factory({p.key: p for p in planned}, intake)
            _extract(archive, factory, member, encrypted)
        return [_collect(factory, p) for p in planned if not p.hidden]


def seven_zip_command() -> str | None:
    """The 7-Zip command, or None to decompress with py7zr."""
    if not MEMORY_FILES:
        return None
    for name in _COMMANDS:
        path = shutil.which(name)
        if path:
            return path
    return None


def _fits_one_line(password: str | None) -> bool:
    """7-Zip reads the password as one line of its stdin."""
    if password is None:
        return True
    return (len(password.encode()) < _PASSWORD_LIMIT
            and not any(c in password for c in _UNREADABLE_IN_ONE_LINE))


def _open_archive(member: Member, password: str | None, cap: int) -> py7zr.SevenZipFile:
    """Parse the header (decrypting it when the file names are encrypted)."""
    try:
        return py7zr.SevenZipFile(io.BytesIO(member.data), "r", password=password,
                                  max_extract_size=cap)
    except PasswordRequired:
        raise _need_password(member) from None
    except _FOREIGN:
        if password is not None and _names_encrypted(member.data):
            raise _wrong_password(member) from None
        raise MediaError(f"{member.name}: the 7-Zip archive is truncated or damaged; ask the "
                         "sender to send it again") from None


def _names_encrypted(data: bytes) -> bool:
    """True when the header itself needs the password (7z -mhe=on)."""
    try:
        py7zr.SevenZipFile(io.BytesIO(data), "r").close()
    except PasswordRequired:
        return True
    except Exception:  # noqa: BLE001 - any other failure: the header is not encrypted
        return False
    return False


def _plan(archive: py7zr.SevenZipFile, intake: Intake) -> list[_Planned]:
    """Every regular file, its name and declared size checked before any byte comes out.

    Hidden files are decompressed too (a solid block cannot skip them) but dropped.
    """
    planned: list[_Planned] = []
    total = 0
    for entry in archive.files:
        intake.count_entry()
        if entry.is_directory:
            continue
        _refuse_special(entry, intake)
        name = intake.name(entry.filename)
        label = name or f"{intake.container.name}/{entry.filename}"
        size = int(entry.uncompressed)
        intake.admit(label, size)
        total += size
        key = get_sanitized_output_path(entry.filename, None).as_posix()
        planned.append(_Planned(key, label, size, hidden=name is None))
    intake.admit(intake.container.name, total)  # the whole archive, before any byte
    return planned


def _refuse_special(entry: py7zr.py7zr.ArchiveFile, intake: Intake) -> None:
    if entry.is_symlink:
        intake.refuse_special(entry.filename, "symbolic link")
    if entry.is_junction:
        intake.refuse_special(entry.filename, "junction")
    if entry.is_socket:
        intake.refuse_special(entry.filename, "socket")
    fmt = entry.st_fmt
    if fmt is not None and fmt not in (0, stat.S_IFREG):
        intake.refuse_special(entry.filename, "special file")


def _extract(archive: py7zr.SevenZipFile, factory: _Factory, member: Member,
             encrypted: bool) -> None:
    """Decompress every member into the factory's sinks; CRCs are checked by py7zr."""
    try:
        archive.extractall(factory=factory)
    except IngestError:
        raise
    except PasswordRequired:
        raise _need_password(member) from None
    except DecompressionBombError:
        raise MediaError(f"{member.name}: expands past the delivery's limits; refused as a "
                         "possible decompression bomb") from None
    except UnsupportedCompressionMethodError:
        raise MediaError(f"{member.name}: uses a 7-Zip method that is not supported; ask the "
                         "sender to use LZMA2 (the 7-Zip default)") from None
    except _FOREIGN:
        if encrypted:
            raise _wrong_password(member) from None
        raise MediaError(f"{member.name}: the 7-Zip archive is truncated or damaged (CRC "
                         "check failed); ask the sender to send it again") from None


def _extract_with_command(command: str, member: Member, planned: list[_Planned],
                          intake: Intake, password: str | None,
                          encrypted: bool) -> list[bytes]:
    """Every planned member's bytes, from ``7z x -so`` on a memory file of the archive.

    7-Zip writes the files in header order, as py7zr lists them, directories
    and empty files contributing nothing: each member is exactly its declared
    size, anything after the last one is refused, and 7-Zip checks every CRC.
    """
    data = [b""] * len(planned)
    if not any(p.size for p in planned):
        return data
    def receive(output: ChildOutput) -> bool:
        complete = _receive_members(output, planned, intake, data)
        if complete and output.receive(1):
            raise MediaError(f"{member.name}: holds more data than the 7-Zip header "
                             "declares; the archive is damaged or hostile, ask for it again")
        return complete

    with contextlib.ExitStack() as stack:
        archive = memory_file(member.data, "ingest-7z")
        stack.callback(os.close, archive)
        # a line read once by 7-Zip; no password: it reads the end of input and gives up
        secret = secret_pipe(password)
        stack.callback(os.close, secret)
        code, complete, log = run_tool(
            [command, "x", "-so", "-t7z", "-bd", "-bb0", f"/proc/self/fd/{archive}"],
            receive, stdin=secret, pass_fds=(archive,), messages_limit=_MESSAGES_LIMIT,
            env=child_environment(LC_ALL="C.UTF-8"), cwd="/", stall_after=stall_seconds(),
            start_new_session=True)  # no terminal to prompt on: stdin only
    messages = log.decode("utf-8", "replace")
    if code != 0:
        raise _command_failure(member, messages, encrypted)
    if not complete:
        raise MediaError(f"{member.name}: the 7-Zip archive did not yield its members whole; "
                         "it is damaged, ask the sender to send it again")
    return data


def _receive_members(output: ChildOutput, planned: list[_Planned], intake: Intake,
                     data: list[bytes]) -> bool:
    """Each member in turn, straight into a buffer of its declared size; False when
    7-Zip stopped early (its exit status says why)."""
    for index, plan in enumerate(planned):
        if not plan.size:
            continue
        chunk = output.receive(plan.size)
        intake.take(plan.name, len(chunk))
        if len(chunk) < plan.size:
            return False
        data[index] = chunk
    return True


def _command_failure(member: Member, messages: str, encrypted: bool) -> IngestError:
    """7-Zip's messages name members and may echo data: classified, never shown."""
    if "Unsupported Method" in messages:
        return MediaError(f"{member.name}: uses a 7-Zip method that is not supported; ask the "
                          "sender to use LZMA2 (the 7-Zip default)")
    if encrypted or "Wrong password" in messages:
        return _wrong_password(member)
    return MediaError(f"{member.name}: the 7-Zip archive is truncated or damaged (CRC check "
                      "failed); ask the sender to send it again")


def _content_encrypted(archive: py7zr.SevenZipFile) -> bool:
    """True when a folder of the archive is AES-encrypted (py7zr's needs_password() only
    says whether a password was given)."""
    streams = archive.header.main_streams
    if streams is None:
        return False
    return any(coder.get("method") == _AES for folder in streams.unpackinfo.folders
               for coder in folder.coders)


def _collect(factory: _Factory, planned: _Planned) -> Member:
    sink = factory.sinks.get(planned.key)
    if sink is None or sink.size() != planned.size:
        raise MediaError(f"{planned.name}: the 7-Zip archive did not yield this member whole; "
                         "it is damaged, ask the sender to send it again")
    return Member(planned.name, sink.buffer.getvalue())


def _need_password(member: Member) -> DecryptionError:
    return DecryptionError(f"{member.name}: the 7-Zip archive is encrypted; give the password "
                           "with --passphrase-file")


def _wrong_password(member: Member) -> DecryptionError:
    return DecryptionError(f"{member.name}: the 7-Zip archive could not be decrypted: the "
                           "password is wrong or the archive is damaged; check "
                           "--passphrase-file, else ask the sender to send it again")


CONTAINER = SevenZipContainer()
