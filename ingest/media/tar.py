"""Tape exports: tar archives (GNU or pax), plain or compressed (gzip, bzip2, xz, zstd).

Everything stays in memory: tarfile reads from a BytesIO and each regular file is
read into bytes. Only regular files become members; links, devices and fifos are
refused. A compressed stream that turns out not to hold a tar (a lone
``cases.csv.gz``) is opened as well, as a single member.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import zlib
from typing import NoReturn

import zstandard

from ..errors import IngestError, MediaError
from ._base import Member, OpenContext
from ._formats import compression, is_tar, is_tar_header
from ._safety import CHUNK, Intake, read_capped

_NAMES = {None: "tar archive", "gz": "gzip stream (or the tar in it)",
          "bz2": "bzip2 stream (or the tar in it)", "xz": "xz stream (or the tar in it)",
          "zst": "zstd stream (or the tar in it)"}
_SUFFIXES = {".tgz": ".tar", ".taz": ".tar", ".tbz": ".tar", ".tbz2": ".tar", ".txz": ".tar",
             ".tzst": ".tar", ".gz": "", ".gzip": "", ".bz2": "", ".xz": "", ".zst": "",
             ".zstd": ""}
_ZSTD_STEP = 1024
"""Compressed bytes fed to zstd at a time: one KiB expands to at most ~32 MiB, so the
size cap is checked long before a bomb can fill memory."""

_SKIPPED_TYPES = {b"V"}
"""GNU volume labels (``tar -V``) name the tape; they hold no file."""

_SPECIAL = {tarfile.SYMTYPE: "symbolic link", tarfile.LNKTYPE: "hard link",
            tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device",
            tarfile.FIFOTYPE: "fifo", b"M": "continuation of a multi-volume tape"}

_FOREIGN = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError, ValueError,
            zstandard.ZstdError, UnicodeError)
"""What tarfile and the decompressors raise on a truncated or damaged stream."""


class TarContainer:
    """Tar archives and compressed streams, recognised by magic bytes."""

    kind = "tar archive"

    def sniff(self, head: bytes) -> bool:
        return is_tar(head)

    def open(self, member: Member, ctx: OpenContext) -> list[Member]:
        comp = compression(member.data[:8])
        intake = Intake(member, ctx, "tar archive")
        try:
            return _open(member, comp, intake)
        except IngestError:
            raise
        except _FOREIGN:
            raise MediaError(f"{member.name}: the {_NAMES[comp]} is truncated or damaged; ask "
                             "the sender to send it again") from None


def _open(member: Member, comp: str | None, intake: Intake) -> list[Member]:
    stream = _reader(member, comp, intake)
    head = stream.read(tarfile.BLOCKSIZE)
    stream.seek(0)
    if is_tar_header(head):
        return _read_tar(_Recorder(stream), intake, verify_stream=comp in ("gz", "bz2", "xz"))
    if comp is None:
        raise MediaError(f"{member.name}: not a tar archive after all; ask the sender what "
                         "the file is")
    plain = stream.getvalue() if isinstance(stream, io.BytesIO) else _decompress(
        member, stream, intake)
    return [_single(member, plain, intake)]


def _reader(member: Member, comp: str | None, intake: Intake) -> io.BufferedIOBase:
    """The decompressed stream: lazily for gzip, bzip2 and xz (the stdlib checks their
    CRCs at the end), whole and capped for zstd."""
    raw = io.BytesIO(member.data)
    if comp == "gz":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if comp == "bz2":
        return bz2.BZ2File(raw)
    if comp == "xz":
        return lzma.LZMAFile(raw)
    if comp == "zst":
        return io.BytesIO(_unzstd(member, intake))
    return raw


class _Recorder:
    """Passes reads through and keeps the last one: the header tarfile stopped at.

    tarfile ends iteration quietly at a damaged or cut header once past the first
    member; a whole archive ends with a zero block, and the recorded block tells
    which it was without seeking back (a backward seek re-decompresses the stream).
    """

    def __init__(self, stream: io.BufferedIOBase) -> None:
        self.stream = stream
        self.last = b""

    def read(self, size: int = -1) -> bytes:
        self.last = self.stream.read(size)
        return self.last

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.stream.seek(offset, whence)

    def tell(self) -> int:
        return self.stream.tell()


def _read_tar(stream: _Recorder, intake: Intake, *, verify_stream: bool) -> list[Member]:
    """Every regular file of the archive; the end marker and stream CRC are checked."""
    members: list[Member] = []
    with tarfile.open(fileobj=stream, mode="r:") as tar:  # type: ignore[call-overload]
        for info in tar:
            intake.count_entry()
            found = _entry(tar, info, intake)
            if found is not None:
                members.append(found)
    if stream.last != bytes(tarfile.BLOCKSIZE):
        raise MediaError(f"{intake.container.name}: the tar archive is truncated or a header "
                         "is damaged; ask the sender to send it again")
    if verify_stream:
        _drain(stream.stream, intake)
    return members


def _entry(tar: tarfile.TarFile, info: tarfile.TarInfo, intake: Intake) -> Member | None:
    """One regular file read into memory; directories and volume labels are skipped."""
    if info.isdir() or info.type in _SKIPPED_TYPES:
        return None
    if info.type in _SPECIAL:
        intake.refuse_special(info.name, _SPECIAL[info.type])
    if not info.isreg():
        intake.refuse_special(info.name, f"tar entry of unknown type {info.type!r}")
    name = intake.name(info.name)
    if name is None:
        return None
    intake.admit(name, info.size)
    fh = tar.extractfile(info)
    if fh is None:  # pragma: no cover - isreg() entries always have a file object
        raise MediaError(f"{name}: the tar entry has no data; ask the sender to send it again")
    data = read_capped(fh.read, name, intake, cap=info.size)
    if len(data) != info.size:
        raise MediaError(f"{name}: the tar archive ends inside this member; it is truncated, "
                         "ask the sender to send it again")
    return Member(name, data)


def _drain(fileobj: io.BufferedIOBase, intake: Intake) -> None:
    """Read the compressed stream to its end, so its CRC is verified (padding only)."""
    left = intake.remaining()
    while chunk := fileobj.read(CHUNK):
        left -= len(chunk)
        if left < 0:
            raise MediaError(f"{intake.container.name}: endless data after the end of the tar "
                             "archive; refused as a possible decompression bomb")


def _decompress(member: Member, reader: io.BufferedIOBase, intake: Intake) -> bytes:
    """A whole gzip, bzip2 or xz stream, stopped once it passes the limits."""
    cap = intake.remaining()
    out = io.BytesIO()
    while chunk := reader.read(min(CHUNK, cap + 1)):
        out.write(chunk)
        if out.tell() > cap:
            _too_big(member, intake)
    return out.getvalue()


def _unzstd(member: Member, intake: Intake) -> bytes:
    """All zstd frames, fed a kilobyte at a time so the size cap holds.

    zstandard's readers return short output on a truncated frame without an
    error, so each frame's end is checked explicitly.
    """
    data = member.data
    cap = intake.remaining()
    out = io.BytesIO()
    pos = 0
    while pos < len(data):
        frame = zstandard.ZstdDecompressor().decompressobj()
        while not frame.eof:
            if pos >= len(data):
                raise MediaError(f"{member.name}: the zstd stream is truncated; ask the "
                                 "sender to send it again")
            piece = data[pos:pos + _ZSTD_STEP]
            pos += len(piece)
            out.write(frame.decompress(piece))
            if out.tell() > cap:
                _too_big(member, intake)
        pos -= len(frame.unused_data)
        if data[pos:pos + 4] == bytes(4) and data.count(0, pos) == len(data) - pos:
            break  # zero padding to the tape's block size
    return out.getvalue()


def _too_big(member: Member, intake: Intake) -> NoReturn:
    raise MediaError(f"{member.name}: expands past the delivery's limits ("
                     f"{intake.ctx.limits.max_expanded_bytes} bytes in all, "
                     f"{intake.ctx.limits.max_expansion_ratio:g} times its size); refused as a "
                     "possible decompression bomb")


def _single(member: Member, plain: bytes, intake: Intake) -> Member:
    """A compressed lone file: one member named without the compression suffix."""
    base = member.basename
    for suffix, replacement in _SUFFIXES.items():
        if base.lower().endswith(suffix) and len(base) > len(suffix):
            base = base[: -len(suffix)] + replacement
            break
    name = intake.name(base.lstrip(".") or "data")
    assert name is not None  # not hidden: no leading dot, no folder
    intake.admit(name, len(plain))
    intake.take(name, len(plain))
    return Member(name, plain)


CONTAINER = TarContainer()
