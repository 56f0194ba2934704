"""Tape exports in cpio form: newc (``070701``), crc (``070702``), odc (``070707``)
and the old binary form, as GNU cpio and bsdcpio write them.

Parsed by libarchive (libarchive-c over the system's libarchive13, the library
bsdcpio and bsdtar are built on) rather than a parser of our own: it is widely
used and fuzzed, and reads every cpio variant from a buffer in memory. It is
given the bytes only, with its cpio reader alone and no decompression filter,
so nothing but a cpio archive is ever parsed here and nothing touches the disk.

A compressed cpio (``.cpio.gz``, ``.xz``, ``.zst``, ``.bz2``) is decompressed by
the tar opener, which opens a compressed stream that holds no tar as one member;
that member is recognised here. Decompression is thus limited exactly as for tar.

The same limits as tar: only regular files become members; symbolic and hard
links, devices, fifos and sockets refuse the archive; names are cleaned and
refused when they climb out (``..``) or are absolute; every entry counts against
the member limit and every byte against the size and ratio limits, each
member's declared size before it is read. The archive must end with its
``TRAILER!!!`` record; only zero padding (tape blocks, ``cpio -B`` or ``-C``)
may follow it, and every byte before the trailer must belong to a record
libarchive returned (it steps over a damaged header to the next magic it finds,
which would drop a member). The crc form's per-file checksums are verified here, as
libarchive does not.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

from ..errors import IngestError, MediaError
from ._base import Member, OpenContext
from ._formats import CPIO_BINARY_HEADER as _BINARY_HEADER
from ._formats import is_cpio
from ._safety import Intake

if TYPE_CHECKING:
    import libarchive

_CRC = b"070702"

_FOREIGN = (UnicodeError, ValueError, OSError)
"""What libarchive-c raises on a truncated or damaged archive, beside its own
ArchiveError (its message is not ours to show: it may quote a member name).
libarchive is imported when a cpio archive is met, not when the registry loads."""


class CpioContainer:
    """cpio archives, recognised by their header."""

    kind = "cpio archive"

    def sniff(self, head: bytes) -> bool:
        return is_cpio(head)

    def open(self, member: Member, ctx: OpenContext) -> list[Member]:
        from libarchive.exception import ArchiveError

        intake = Intake(member, ctx, self.kind)
        try:
            return _read(member, intake)
        except IngestError:
            raise
        except (ArchiveError, *_FOREIGN):
            raise MediaError(f"{member.name}: the cpio archive is truncated or damaged; ask "
                             "the sender to send it again") from None


def _read(member: Member, intake: Intake) -> list[Member]:
    members, end = _entries(member, intake)
    if member.data.count(0, end) != len(member.data) - end:
        raise MediaError(f"{member.name}: data follows the end of the cpio archive (its "
                         "TRAILER!!! record); refused, ask the sender for one archive per file")
    return members


def _entries(member: Member, intake: Intake) -> tuple[list[Member], int]:
    """Every regular file, and where the archive's trailer ends."""
    import libarchive

    layout = _layout(member.data)
    members: list[Member] = []
    accounted = 0
    with libarchive.memory_reader(member.data, format_name="cpio",
                                  filter_name="none") as archive:
        for entry in archive:
            intake.count_entry()
            header = accounted
            accounted += _record_size(entry, layout)
            found = _entry(entry, intake)
            if found is not None:
                if member.data[:6] == _CRC:
                    _verify_crc(found, member.data[header + 102:header + 110])
                members.append(found)
        end = archive.bytes_read
    # libarchive resynchronises on the next magic after a damaged header, dropping
    # the member with a mere warning (none at all when the next record is the
    # trailer): every byte up to the trailer's end must belong to a record returned
    if accounted + _record_size(None, layout) != end:
        raise MediaError(f"{member.name}: the cpio archive is damaged (a header is not where "
                         "the one before it says); ask the sender to send it again")
    return members, end


_LAYOUTS = {b"070701": (110, 4), b"070702": (110, 4), b"070707": (76, 1)}
"""Header size and alignment of each form (the old binary's: 26 bytes, 2)."""


def _layout(data: bytes) -> tuple[int, int]:
    return _LAYOUTS.get(data[:6], (_BINARY_HEADER, 2))


def _record_size(entry: libarchive.ArchiveEntry | None, layout: tuple[int, int]) -> int:
    """Bytes of one record (header, name, data, each padded); None: the trailer's."""
    import libarchive.ffi

    header, align = layout
    name = libarchive.ffi.entry_pathname(entry._entry_p) if entry is not None else b"TRAILER!!!"
    size = entry.size if entry is not None and not entry.issym else 0
    if entry is not None and entry.issym:
        size = len(libarchive.ffi.entry_symlink(entry._entry_p) or b"")
    return -(-(header + len(name) + 1) // align) * align + -(-size // align) * align


def _verify_crc(found: Member, field: bytes) -> None:
    """The crc form's check: the sum of the file's bytes, modulo 2**32 (libarchive
    does not verify it)."""
    total = int(np.frombuffer(found.data, dtype=np.uint8).sum(dtype=np.uint64)) & 0xFFFFFFFF
    if int(field, 16) != total:
        raise MediaError(f"{found.name}: its data does not match its checksum in the cpio "
                         "archive (crc form); the archive is damaged, ask the sender to send "
                         "it again")


def _entry(entry: libarchive.ArchiveEntry, intake: Intake) -> Member | None:
    """One regular file read into memory; directories are skipped."""
    raw = entry.pathname
    if isinstance(raw, bytes):  # not UTF-8: kept as tarfile keeps such a name
        raw = raw.decode("utf-8", "surrogateescape")
    if entry.isdir:
        return None
    for test, what in (("issym", "symbolic link"), ("islnk", "hard link"),
                       ("ischr", "character device"), ("isblk", "block device"),
                       ("isfifo", "fifo"), ("issock", "socket")):
        if getattr(entry, test):
            intake.refuse_special(raw, what)
    if not entry.isreg:
        intake.refuse_special(raw, f"cpio entry of unknown type {entry.filetype:o}")
    name = intake.name(raw)
    if name is None:
        return None
    size = entry.size
    intake.admit(name, size)
    out = io.BytesIO()  # its getvalue() hands over the buffer: no second copy
    read = 0
    for block in entry.get_blocks():
        read += len(block)
        if read > size:
            raise MediaError(f"{name}: holds more data than its header declares; the archive "
                             "is damaged or hostile, ask the sender to send it again")
        intake.take(name, len(block))
        out.write(block)
    if read != size:
        raise MediaError(f"{name}: the cpio archive ends inside this member; it is truncated, "
                         "ask the sender to send it again")
    return Member(name, out.getvalue())


CONTAINER = CpioContainer()
