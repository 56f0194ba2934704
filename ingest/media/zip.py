"""ZIP archives, plain or encrypted (WinZip AES-256; legacy ZipCrypto with a warning).

pyzipper reads both encryptions from a BytesIO; every member is read into
memory. OOXML workbooks and OpenDocument files are ZIPs too, but they are
spreadsheets for the readers: :func:`is_zip_archive` leaves them alone.
"""

from __future__ import annotations

import io
import lzma
import stat
import struct
import zlib

import pyzipper
from pyzipper import BadZipFile, LargeZipFile

from ..errors import DecryptionError, IngestError, MediaError
from ..formats import Probe
from ._base import Member, OpenContext
from ._formats import is_zip_archive
from ._safety import Intake, read_capped

_UNIX_CREATORS = {3, 19}  # Unix, OS X: external_attr holds a POSIX mode
_ENCRYPTED, _DESCRIPTOR, _STRONG = 0x1, 0x8, 0x40

_FOREIGN = (BadZipFile, LargeZipFile, RuntimeError, EOFError, OSError, zlib.error,
            lzma.LZMAError, ValueError, NotImplementedError, struct.error, UnicodeError)
"""What pyzipper and the decompressors raise on a wrong password or damaged data."""


class ZipContainer:
    """ZIP archives, but not the OOXML and OpenDocument files built on ZIP."""

    kind = "ZIP archive"

    def sniff(self, data: bytes) -> bool:
        """Whether ``data`` (the whole member) is a ZIP archive, as the registry decides."""
        return is_zip_archive(Probe(data))

    def open(self, member: Member, ctx: OpenContext) -> list[Member]:
        intake = Intake(member, ctx, self.kind)
        try:
            archive = pyzipper.AESZipFile(io.BytesIO(member.data))
        except _FOREIGN:
            raise MediaError(f"{member.name}: the ZIP archive is truncated or damaged (its "
                             "table of contents is unreadable); ask the sender to send it "
                             "again") from None
        with archive:
            entries = _plan(archive, intake)
            return [_read(archive, info, name, intake) for info, name in entries]


def _plan(archive: pyzipper.AESZipFile, intake: Intake) -> list[tuple[pyzipper.ZipInfo, str]]:
    """Check every entry before reading any: names, types, encryption."""
    entries = []
    weak = False
    for info in archive.infolist():
        intake.count_entry()
        if info.is_dir() or info.filename.endswith("\\"):  # some Windows tools end folders so
            continue
        mode = info.external_attr >> 16
        if info.create_system in _UNIX_CREATORS and stat.S_IFMT(mode) not in (0, stat.S_IFREG):
            intake.refuse_special(info.filename, _special_kind(mode))
        name = intake.name(info.filename)
        if name is None:
            continue
        if info.flag_bits & _STRONG:
            raise MediaError(f"{name}: uses PKWARE strong encryption, which is not supported; "
                             "ask the sender for WinZip AES-256 or 7-Zip AES-256")
        if info.flag_bits & _ENCRYPTED:
            if intake.ctx.passphrase is None:
                raise DecryptionError(f"{name}: the ZIP member is encrypted; give the password "
                                      "with --passphrase-file")
            weak = weak or getattr(info, "wz_aes_version", None) is None
        entries.append((info, name))
    if weak:
        intake.ctx.warnings.append(f"{intake.container.name}: uses legacy ZipCrypto, which is "
                                   "weak; ask the sender for AES-256")
    return entries


def _special_kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISFIFO(mode):
        return "fifo"
    return "special file"


def _read(archive: pyzipper.AESZipFile, info: pyzipper.ZipInfo, name: str,
          intake: Intake) -> Member:
    """One member into memory; the CRC (or AES HMAC) is checked by pyzipper at the end."""
    encrypted = bool(info.flag_bits & _ENCRYPTED)
    password = intake.ctx.passphrase
    pwd = password.encode() if encrypted and password is not None else None
    intake.admit(name, info.file_size, info.compress_size)
    try:
        with archive.open(info, pwd=pwd) as fh:
            data = read_capped(fh.read, name, intake, cap=info.file_size)
    except IngestError:
        raise
    except NotImplementedError:
        raise MediaError(f"{name}: the ZIP member uses a compression method that is not "
                         "supported; ask the sender to use Deflate") from None
    except RuntimeError:
        if encrypted:
            raise DecryptionError(f"{name}: wrong password for the ZIP member (or its "
                                  "encryption header is damaged); give the right password "
                                  "with --passphrase-file") from None
        raise MediaError(f"{name}: the ZIP member could not be read; ask the sender to send "
                         "it again") from None
    except _FOREIGN:
        if encrypted:
            raise DecryptionError(f"{name}: the ZIP member could not be decrypted: the "
                                  "password is wrong or the file is damaged; check "
                                  "--passphrase-file, else ask the sender to send it again"
                                  ) from None
        raise MediaError(f"{name}: the ZIP member is truncated or damaged (CRC check failed); "
                         "ask the sender to send it again") from None
    if len(data) != info.file_size:
        raise MediaError(f"{name}: the ZIP member is shorter than declared; it is truncated, "
                         "ask the sender to send it again")
    return Member(name, data)


CONTAINER = ZipContainer()
