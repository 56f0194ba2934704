"""The containers, declared to :mod:`ingest.formats`: how each is recognised, and
where its opener is.

Recognising a container takes its magic bytes (or the ZIP central directory the
registry reads); opening one takes its library (pycdlib, py7zr, pyzipper,
libarchive). The two are kept apart so that a delivery loads only the openers
of the containers it holds: the openers are named here, not imported.
"""

from __future__ import annotations

import re

from ..formats import Format, Kind, Probe, register

TAR_COMPRESSIONS = {"gz": b"\x1f\x8b", "bz2": b"BZh", "xz": b"\xfd7zXZ\x00",
                    "zst": b"\x28\xb5\x2f\xfd"}
"""The compressed streams the tar opener opens, by their magic bytes."""
ISO_MAGIC_AT = 0x8001
ISO_MAGIC = b"CD001"
"""The primary volume descriptor's identifier, at sector 16."""
SEVEN_ZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"

_CPIO_ASCII = {b"070701": re.compile(rb"[0-9A-Fa-f]{1,6}"),
               b"070702": re.compile(rb"[0-9A-Fa-f]{1,6}"),
               b"070707": re.compile(rb"[0-7]{1,6}")}
"""newc and crc (hexadecimal fields) and odc (octal): the magic and the first six
digits of the fields after it (fewer if the member ends). Not every field: a header
damaged further on is still a cpio, refused as damaged rather than passed over."""
CPIO_BINARY = (b"\xc7\x71", b"\x71\xc7")
"""The old binary cpio's magic 070707 as a 16-bit word, little- or big-endian."""
CPIO_BINARY_HEADER = 26


def compression(head: bytes) -> str | None:
    """The compression a stream starts with, by magic bytes; None when plain."""
    for name, magic in TAR_COMPRESSIONS.items():
        if head.startswith(magic):
            return name
    return None


def is_tar_header(block: bytes) -> bool:
    """True when ``block`` starts with a ustar, GNU or pax header."""
    return block[257:262] == b"ustar"


def is_tar(head: bytes) -> bool:
    """A tar archive, or a compressed stream (which may hold one)."""
    return compression(head) is not None or is_tar_header(head)


def is_iso(head: bytes) -> bool:
    return head[ISO_MAGIC_AT:ISO_MAGIC_AT + len(ISO_MAGIC)] == ISO_MAGIC


def is_seven_zip(head: bytes) -> bool:
    return head.startswith(SEVEN_ZIP_MAGIC)


def is_zip_archive(probe: Probe) -> bool:
    """A ZIP that is an archive of files, not a document built on ZIP (OOXML, OpenDocument):
    decided from the central directory, wherever the writer put each entry."""
    return probe.zip is not None and not probe.zip.package


def is_cpio(head: bytes) -> bool:
    """True when ``head`` starts with a cpio header of any of the four forms."""
    digits = _CPIO_ASCII.get(head[:6])
    if digits is not None:
        return digits.fullmatch(head, 6, 12) is not None
    if len(head) < CPIO_BINARY_HEADER or head[:2] not in CPIO_BINARY:
        return False
    # two bytes are a weak sign: the name's size and its closing NUL must agree
    name_size = int.from_bytes(head[20:22], "little" if head[:2] == CPIO_BINARY[0] else "big")
    end = CPIO_BINARY_HEADER + name_size - 1
    return 1 < name_size <= 4096 and len(head) > end and head[end] == 0 \
        and 0 not in head[CPIO_BINARY_HEADER:end]


for _fmt in (
    Format("tar", Kind.CONTAINER, "tar archive or compressed stream (gzip, bzip2, xz, zstd)",
           lambda probe: is_tar(probe.head), "ingest.media.tar:CONTAINER"),
    Format("iso", Kind.CONTAINER, "ISO 9660 disc image",
           lambda probe: is_iso(probe.head), "ingest.media.iso:CONTAINER"),
    Format("7z", Kind.CONTAINER, "7-Zip archive",
           lambda probe: is_seven_zip(probe.head), "ingest.media.sevenzip:CONTAINER"),
    Format("zip", Kind.CONTAINER, "ZIP archive", is_zip_archive, "ingest.media.zip:CONTAINER"),
    Format("cpio", Kind.CONTAINER, "cpio archive (newc, crc, odc or old binary)",
           lambda probe: is_cpio(probe.head), "ingest.media.cpio:CONTAINER"),
):
    register(_fmt)
