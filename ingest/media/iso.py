"""CD images: ISO 9660, with Rock Ridge or Joliet names when the disc has them.

pycdlib parses the image from a BytesIO and each file is read into memory.
Names come from Rock Ridge (POSIX names), else Joliet (Windows names), else
the plain ISO 9660 names with their ``;1`` version suffix removed.
"""

from __future__ import annotations

import io
import stat
import struct

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

from ..errors import IngestError, MediaError
from ._base import Member, OpenContext
from ._formats import is_iso
from ._safety import Intake, read_capped

_FOREIGN = (PyCdlibException, EOFError, OSError, ValueError, KeyError, IndexError,
            struct.error, UnicodeError, RecursionError)
"""What pycdlib raises on a truncated or damaged image."""


class IsoContainer:
    """ISO 9660 images, recognised by the volume descriptor at sector 16."""

    kind = "ISO 9660 image"

    def sniff(self, head: bytes) -> bool:
        return is_iso(head)

    def open(self, member: Member, ctx: OpenContext) -> list[Member]:
        intake = Intake(member, ctx, self.kind)
        iso = pycdlib.PyCdlib()
        try:
            iso.open_fp(io.BytesIO(member.data))
            try:
                return _read_all(iso, _facade(iso), intake)
            finally:
                iso.close()
        except IngestError:
            raise
        except _FOREIGN:
            raise MediaError(f"{member.name}: the ISO image is truncated or damaged; ask the "
                             "sender to send the disc again") from None


def _facade(iso: pycdlib.PyCdlib) -> str:
    """Which name tree to use: the richest the disc carries."""
    if iso.has_rock_ridge():
        return "rr_path"
    if iso.has_joliet():
        return "joliet_path"
    return "iso_path"


def _read_all(iso: pycdlib.PyCdlib, facade: str, intake: Intake) -> list[Member]:
    members: list[Member] = []
    for root, dirs, files in iso.walk(**{facade: "/"}):
        dirs.sort()
        for entry in sorted(files):
            intake.count_entry()
            path = f"{root.rstrip('/')}/{entry}"
            found = _read_file(iso, facade, path, intake)
            if found is not None:
                members.append(found)
        intake.count_entry(len(dirs))
    return members


def _display(path: str, facade: str) -> str:
    """The name inside the image, without ISO 9660's ';1' version and bare-dot suffix."""
    if facade != "iso_path":
        return path.lstrip("/")
    parts = [p.split(";", 1)[0] for p in path.lstrip("/").split("/")]
    return "/".join(p[:-1] if p.endswith(".") and len(p) > 1 else p for p in parts)


def _read_file(iso: pycdlib.PyCdlib, facade: str, path: str,
               intake: Intake) -> Member | None:
    """One file into memory, after its type and declared size are checked."""
    raw = _display(path, facade)
    record = iso.get_record(**{facade: path})
    if record.is_symlink():
        intake.refuse_special(raw, "symbolic link")
    mode = iso.file_mode(rr_path=path) if facade == "rr_path" else None
    if mode is not None and stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        intake.refuse_special(raw, "device or special file")
    name = intake.name(raw)
    if name is None:
        return None
    size = record.get_data_length()
    _check_whole(iso, record.extent_location(), size, name, len(intake.container.data))
    intake.admit(name, size)
    if size == 0:
        return Member(name, b"")
    with iso.open_file_from_iso(**{facade: path}) as fh:
        data = read_capped(fh.read, name, intake, cap=size)
    if len(data) != size:
        raise MediaError(f"{name}: the ISO image ends inside this file; it is truncated, ask "
                         "the sender to send the disc again")
    return Member(name, data)


def _check_whole(iso: pycdlib.PyCdlib, extent: int, size: int, name: str,
                 image_size: int) -> None:
    """Refuse a file cut short by a truncated image.

    pycdlib silently shortens a file that runs past the end of the image (even
    to a negative length); such a file then ends exactly where the image ends,
    and the image is shorter than its volume descriptor says.
    """
    if size == 0:
        return
    declared = iso.pvd.space_size * iso.logical_block_size
    end = extent * iso.logical_block_size + size
    if size < 0 or (end >= image_size and image_size < declared):
        raise MediaError(f"{name}: the ISO image ends inside this file; it is truncated, ask "
                         "the sender to send the disc again")


CONTAINER = IsoContainer()
