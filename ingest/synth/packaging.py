"""Package files the way a sender's tools do: tar tapes, ZIP, 7-Zip, ISO images, SHA256SUMS.

For tests, the demo and benchmarks: every builder works in memory and returns
bytes. The one exception is legacy ZipCrypto, which no Python library writes:
it is made by the ``7z`` command in a temporary folder, acceptable only because
these inputs are synthetic and not confidential.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Literal

import py7zr
import pycdlib
import pyzipper
import zstandard

_TAR_FORMATS = {"gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT}
_COMPRESSORS = {
    "gz": lambda data: gzip.compress(data, mtime=0),
    "bz2": bz2.compress,
    "xz": lzma.compress,
    "zst": lambda data: zstandard.ZstdCompressor(write_checksum=True).compress(data),
}
_ALIASES = {"gzip": "gz", "bzip2": "bz2", "zstd": "zst", "lzma": "xz"}
_MTIME = 1_782_777_600  # 2026-06-30, the reference delivery date: same inputs, same bytes


def make_tar(files: dict[str, bytes], compression: str | None = None,
             format: Literal["gnu", "pax"] = "gnu", blocking_factor: int = 20) -> bytes:
    """A tar as ``tar -b N`` writes it: padded with zeros to whole records of N blocks.

    ``compression`` is None, 'gz', 'bz2', 'xz' or 'zst' (or gzip, bzip2, zstd).
    """
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=_TAR_FORMATS[format]) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o640
            info.mtime = _MTIME
            tar.addfile(info, io.BytesIO(data))
    record = blocking_factor * tarfile.BLOCKSIZE
    data = raw.getvalue()
    data += bytes(-len(data) % record)
    if compression is None:
        return data
    return _COMPRESSORS[_ALIASES.get(compression, compression)](data)


def make_zip(files: dict[str, bytes], password: str | None = None, aes: bool = True,
             aes_version: int = 2) -> bytes:
    """A ZIP: plain, WinZip AES-256 (``aes=True``; AE-1 or AE-2), or legacy ZipCrypto."""
    if password is not None and not aes:
        return _zipcrypto(files, password)
    out = io.BytesIO()
    encryption = pyzipper.WZ_AES if password is not None else None
    with pyzipper.AESZipFile(out, "w", compression=pyzipper.ZIP_DEFLATED,
                             encryption=encryption) as zf:
        if password is not None:
            zf.setpassword(password.encode())
            zf.setencryption(pyzipper.WZ_AES, nbits=256, force_wz_aes_version=aes_version)
        for name, data in files.items():
            zf.writestr(name, data)
    return out.getvalue()


def _zipcrypto(files: dict[str, bytes], password: str) -> bytes:
    """ZipCrypto through the 7z command (p7zip-full); synthetic inputs only."""
    seven = shutil.which("7z")
    if seven is None:
        raise RuntimeError("ZipCrypto test archives need the 7z command (apt: p7zip-full)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp, "in")
        for name, data in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        target = Path(tmp, "out.zip")
        subprocess.run([seven, "a", "-tzip", "-mem=ZipCrypto", f"-p{password}", str(target),
                        *files], cwd=root, check=True, capture_output=True)
        return target.read_bytes()


def make_7z(files: dict[str, bytes], password: str | None = None,
            encrypt_names: bool = False) -> bytes:
    """A 7-Zip archive, AES-256 with ``password``; ``encrypt_names`` hides the file list."""
    out = io.BytesIO()
    with py7zr.SevenZipFile(out, "w", password=password,
                            header_encryption=encrypt_names and password is not None) as z:
        for name, data in files.items():
            z.writestr(data, name)
    return out.getvalue()


def make_iso(files: dict[str, bytes], joliet: bool = True, rock_ridge: bool = True) -> bytes:
    """An ISO 9660 image as a disc-burning tool writes it, with Joliet and Rock Ridge names."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3 if joliet else None,
            rock_ridge="1.09" if rock_ridge else None, vol_ident="DELIVERY")
    made: set[str] = set()
    for name, data in files.items():
        parts = name.split("/")
        for depth in range(1, len(parts)):
            folder = parts[:depth]
            iso_dir = "/" + "/".join(_iso_part(p, is_dir=True) for p in folder)
            if iso_dir not in made:
                made.add(iso_dir)
                iso.add_directory(iso_dir, rr_name=folder[-1] if rock_ridge else None,
                                  joliet_path="/" + "/".join(folder) if joliet else None)
        iso_path = "/" + "/".join(_iso_part(p, is_dir=True) for p in parts[:-1])
        iso_path = iso_path.rstrip("/") + "/" + _iso_part(parts[-1], is_dir=False) + ";1"
        iso.add_fp(io.BytesIO(data), len(data), iso_path,
                   rr_name=parts[-1] if rock_ridge else None,
                   joliet_path="/" + name if joliet else None)
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue()


def _iso_part(part: str, *, is_dir: bool) -> str:
    """An ISO 9660 name: upper-case d-characters, one dot for files, at most 30 long."""
    stem, dot, ext = part.rpartition(".") if not is_dir and "." in part else (part, "", "")
    stem = re.sub(r"[^A-Z0-9_]", "_", stem.upper())[:30 - len(ext) - 1 if ext else 30]
    ext = re.sub(r"[^A-Z0-9_]", "_", ext.upper())
    return f"{stem}.{ext}" if dot else (stem if is_dir else stem + ".")


def write_sums(files: dict[str, bytes]) -> bytes:
    """A SHA256SUMS file as ``sha256sum`` writes it, for the files given."""
    lines = [f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in files.items()]
    return "".join(lines).encode()


__all__ = ["make_7z", "make_iso", "make_tar", "make_zip", "write_sums"]
