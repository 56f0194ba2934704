"""Container formats end to end: tar tapes, ZIP, 7-Zip and ISO images, opened in memory.

Every failure must be our own exception, name the member, say what to do, and
carry neither the password nor any byte of the data.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import py7zr
import pycdlib
import pytest

from ingest.errors import ChecksumError, DecryptionError, IngestError, MediaError
from ingest.media import Delivery, Limits, Member, OpenContext, open_delivery, sevenzip
from ingest.media._safety import clean_name
from ingest.media.iso import CONTAINER as ISO
from ingest.media.sevenzip import CONTAINER as SEVENZIP
from ingest.media.tar import CONTAINER as TAR
from ingest.media.zip import CONTAINER as ZIP
from ingest.synth.packaging import make_7z, make_iso, make_tar, make_zip, write_sums

PASSWORD = "correct horse 9! battery"
SECRET = "P1A2B3C4D"


def _rows(n: int, seed: str) -> bytes:
    """CSV that compresses only about 2:1, so a byte in the middle of an archive is data."""
    lines = [f"CASE_ID,PERS_ID,CMNT\r\n0000000001,{SECRET},first\r\n"]
    for i in range(2, n):
        digest = hashlib.sha256(f"{seed}{i}".encode()).hexdigest()
        lines.append(f"{i:010d},P{digest[:8].upper()},{digest[8:40]}\r\n")
    return "".join(lines).encode()


FILES = {"cases.csv": _rows(1500, "a"), "lookup/counties.csv": _rows(200, "b")}


def tool(name: str) -> str:
    """The path of a command the delivery formats need; its absence is an install bug
    (``scripts/bootstrap`` installs it), so the test fails rather than skips."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run scripts/bootstrap")
    return path


def seven_zip() -> str:
    """The 7-Zip command our reader runs; it must be found."""
    path = sevenzip.seven_zip_command()
    if path is None:
        pytest.fail("7z is not installed: run scripts/bootstrap")
    return path


BUILDERS: dict[str, Callable[[dict[str, bytes]], bytes]] = {
    "plain.tar": lambda f: make_tar(f),
    "tape.tar.gz": lambda f: make_tar(f, "gz", "pax", blocking_factor=126),
    "tape.tar.bz2": lambda f: make_tar(f, "bz2", "gnu"),
    "tape.tar.xz": lambda f: make_tar(f, "xz", "pax"),
    "tape.tar.zst": lambda f: make_tar(f, "zst", "gnu", blocking_factor=126),
    "plain.zip": lambda f: make_zip(f),
    "aes.zip": lambda f: make_zip(f, PASSWORD),
    "ae1.zip": lambda f: make_zip(f, PASSWORD, aes_version=1),
    "zipcrypto.zip": lambda f: make_zip(f, PASSWORD, aes=False),
    "plain.7z": lambda f: make_7z(f),
    "aes.7z": lambda f: make_7z(f, PASSWORD),
    "names.7z": lambda f: make_7z(f, PASSWORD, encrypt_names=True),
    "disc.iso": lambda f: make_iso(f),
    "joliet.iso": lambda f: make_iso(f, rock_ridge=False),
    "plain9660.iso": lambda f: make_iso({k.upper(): v for k, v in f.items()}, joliet=False,
                                        rock_ridge=False),
}
ENCRYPTED = {"aes.zip", "ae1.zip", "zipcrypto.zip", "aes.7z", "names.7z"}


def deliver(tmp_path: Path, name: str, data: bytes, **kwargs: object) -> Delivery:
    path = tmp_path / name
    path.write_bytes(data)
    return open_delivery(path, **kwargs)  # type: ignore[arg-type]


def contents(delivery: Delivery) -> dict[str, bytes]:
    return {m.name: m.data for m in delivery.members}


def write_tree(folder: Path, files: dict[str, bytes]) -> None:
    """``files`` (relative path -> bytes) as real files under ``folder``."""
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


def prefixed(name: str, files: dict[str, bytes]) -> dict[str, bytes]:
    return {f"{name}/{inner}": data for inner, data in files.items()}


def refused(tmp_path: Path, name: str, data: bytes, error: type[IngestError],
            **kwargs: object) -> str:
    """Open and expect ``error``: a clear message, no secret, no foreign chain."""
    with pytest.raises(error) as caught:
        deliver(tmp_path, name, data, **kwargs)
    exc = caught.value
    if error is MediaError:
        assert not isinstance(exc, ChecksumError)
    message = str(exc)
    assert name in message
    assert PASSWORD not in message and SECRET not in message
    assert "CASE_ID" not in message and "0000000001" not in message
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__
    return message


@contextlib.contextmanager
def no_disk_writes() -> Iterator[None]:
    """Fail on any attempt to create or write a file, temporary or not."""
    real_open, real_os_open = builtins.open, os.open
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT

    def guarded_open(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        assert not set(mode) & set("wax+"), f"file opened for writing: {file}"
        return real_open(file, mode, *args, **kwargs)  # type: ignore[call-overload]

    def guarded_os_open(path: object, flags: int, *args: object, **kwargs: object) -> int:
        assert not flags & writing, f"file opened for writing: {path}"
        return real_os_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    def no_temp(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a temporary file was requested")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(builtins, "open", guarded_open)
        patch.setattr(os, "open", guarded_os_open)
        for name in ("TemporaryFile", "NamedTemporaryFile", "SpooledTemporaryFile", "mkstemp",
                     "mkdtemp", "TemporaryDirectory"):
            patch.setattr(tempfile, name, no_temp)
        yield


# --- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BUILDERS))
def test_round_trip(tmp_path: Path, name: str) -> None:
    delivery = deliver(tmp_path, name, BUILDERS[name](FILES), passphrase=PASSWORD)
    expected = FILES if name != "plain9660.iso" else {k.upper(): v for k, v in FILES.items()}
    assert contents(delivery) == prefixed(name, expected)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_nothing_is_written_to_disk(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(BUILDERS[name](FILES))
    with no_disk_writes():
        delivery = open_delivery(path, passphrase=PASSWORD)
    assert len(delivery.members) == 2


@pytest.mark.parametrize("name", list(BUILDERS))
def test_each_format_is_sniffed_by_its_own_container_only(name: str) -> None:
    head = BUILDERS[name](FILES)[:65536]
    claimed = [c.kind for c in (TAR, ISO, SEVENZIP, ZIP) if c.sniff(head)]
    own = next(c for suffix, c in ((".tar", TAR), (".zip", ZIP), (".7z", SEVENZIP),
                                   (".iso", ISO)) if name.endswith(suffix) or suffix + "." in name)
    assert claimed == [own.kind]


@pytest.mark.parametrize("compression", [None, "gz", "bz2", "xz", "zst"])
@pytest.mark.parametrize("fmt", ["gnu", "pax"])
@pytest.mark.parametrize("blocking", [1, 20, 126])
def test_tar_formats_and_blocking(tmp_path: Path, compression: str | None, fmt: str,
                                  blocking: int) -> None:
    files = {**FILES, "a/long/" + "deep_" * 30 + "name.csv": b"x\r\n"}  # > 100 chars
    data = make_tar(files, compression, fmt, blocking)  # type: ignore[arg-type]
    assert contents(deliver(tmp_path, "t.tar", data)) == prefixed("t.tar", files)


@pytest.mark.parametrize("suffix,flag", [(".tar", None), (".tar.gz", "-z"), (".tar.bz2", "-j"),
                                         (".tar.xz", "-J"), (".tar.zst", "--zstd")])
@pytest.mark.parametrize("fmt", ["gnu", "pax"])
def test_tape_written_by_gnu_tar(tmp_path: Path, suffix: str, flag: str | None,
                                 fmt: str) -> None:
    tar = tool("tar")
    if flag == "--zstd":
        tool("zstd")
    src = tmp_path / "src"
    write_tree(src, FILES)
    out = tmp_path / f"tape{suffix}"
    subprocess.run([tar, "-b", "126", f"--format={fmt}", *([flag] if flag else []), "-cf",
                    str(out), "-C", str(src), "."], check=True)
    delivery = open_delivery(out)
    assert contents(delivery) == prefixed(out.name, FILES)


def test_compressed_lone_file_is_one_member(tmp_path: Path) -> None:
    import gzip

    delivery = deliver(tmp_path, "cases.csv.gz", gzip.compress(FILES["cases.csv"]))
    assert contents(delivery) == {"cases.csv.gz/cases.csv": FILES["cases.csv"]}


def test_7z_written_by_7zip_with_encrypted_names(tmp_path: Path) -> None:
    seven = tool("7z")
    src = tmp_path / "src"
    write_tree(src, FILES)
    out = tmp_path / "cases.7z"
    subprocess.run([seven, "a", "-mhe=on", f"-p{PASSWORD}", str(out), "."], cwd=src,
                   check=True, capture_output=True)
    assert contents(open_delivery(out, passphrase=PASSWORD)) == prefixed("cases.7z", FILES)
    message = refused(tmp_path, "cases.7z", out.read_bytes(), DecryptionError,
                      passphrase="wrong")
    assert "--passphrase-file" in message


def test_zip_aes256_written_by_7zip(tmp_path: Path) -> None:
    seven = tool("7z")
    src = tmp_path / "src"
    src.mkdir()
    (src / "cases.csv").write_bytes(FILES["cases.csv"])
    out = tmp_path / "cases.zip"
    subprocess.run([seven, "a", "-tzip", "-mem=AES256", f"-p{PASSWORD}", str(out), "cases.csv"],
                   cwd=src, check=True, capture_output=True)
    delivery = open_delivery(out, passphrase=PASSWORD)
    assert contents(delivery) == {"cases.zip/cases.csv": FILES["cases.csv"]}
    assert delivery.warnings == []


def test_iso_written_by_xorriso(tmp_path: Path) -> None:
    xorriso = tool("xorriso")
    src = tmp_path / "src"
    write_tree(src, FILES)
    out = tmp_path / "disc.iso"
    subprocess.run([xorriso, "-as", "mkisofs", "-R", "-J", "-o", str(out), str(src)],
                   check=True, capture_output=True)
    assert contents(open_delivery(out)) == prefixed("disc.iso", FILES)


@pytest.mark.parametrize("switch,password,expected",
                         [("-mhe=off", PASSWORD, None), ("-mhe=off", "wrong", DecryptionError),
                          ("-mhe=off", None, DecryptionError), ("-mhe=on", None, DecryptionError)])
def test_7z_written_by_7zip_passwords(tmp_path: Path, switch: str, password: str | None,
                                      expected: type[IngestError] | None) -> None:
    """7-Zip's own AES-256 archive, names in the clear or hidden: read with the right
    password, a clear error naming the cause with a wrong or missing one."""
    src = tmp_path / "src"
    write_tree(src, FILES)
    out = tmp_path / "cases.7z"
    subprocess.run([tool("7z"), "a", switch, f"-p{PASSWORD}", str(out), "."], cwd=src,
                   check=True, capture_output=True)
    if expected is None:
        delivery = open_delivery(out, passphrase=password)
        assert contents(delivery) == prefixed("cases.7z", FILES)
        return
    message = refused(tmp_path, "again.7z", out.read_bytes(), expected, passphrase=password)
    assert ("password" in message.lower() or "passphrase" in message.lower()), message


def test_gnu_tar_inside_a_xorriso_iso_with_sha256sum(tmp_path: Path) -> None:
    """A tape made by GNU tar on a disc made by xorriso, vouched for by coreutils'
    sha256sum: every layer written by the tool a sender uses."""
    src, disc = tmp_path / "src", tmp_path / "disc"
    write_tree(src, FILES)
    disc.mkdir()
    subprocess.run([tool("tar"), "--format=gnu", "-czf", str(disc / "cases.tar.gz"), "-C",
                    str(src), "."], check=True)
    sums = subprocess.run([tool("sha256sum"), "cases.tar.gz"], cwd=disc, check=True,
                          capture_output=True).stdout
    (disc / "SHA256SUMS").write_bytes(sums)
    out = tmp_path / "disc.iso"
    subprocess.run([tool("xorriso"), "-as", "mkisofs", "-J", "-o", str(out), str(disc)],
                   check=True, capture_output=True)
    delivery = open_delivery(out)
    assert contents(delivery) == prefixed("disc.iso/cases.tar.gz", FILES)
    assert delivery.checksums_verified == 1
    (disc / "SHA256SUMS").write_bytes(sums.replace(sums[:1], b"0" if sums[:1] != b"0" else b"1",
                                                   1))
    subprocess.run([tool("xorriso"), "-as", "mkisofs", "-J", "-o", str(out), str(disc)],
                   check=True, capture_output=True)
    refused(tmp_path, "bad.iso", out.read_bytes(), ChecksumError)


def test_gnu_tar_cut_short_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_tree(src, FILES)
    out = tmp_path / "tape.tar"
    subprocess.run([tool("tar"), "--format=pax", "-cf", str(out), "-C", str(src), "."],
                   check=True)
    data = out.read_bytes()
    refused(tmp_path, "cut.tar", data[:len(data) // 2], MediaError)


def test_zipcrypto_is_read_with_a_warning(tmp_path: Path) -> None:
    delivery = deliver(tmp_path, "old.zip", make_zip(FILES, PASSWORD, aes=False),
                       passphrase=PASSWORD)
    assert contents(delivery) == prefixed("old.zip", FILES)
    assert any("ZipCrypto" in w and "AES-256" in w for w in delivery.warnings)


def test_aes_zip_has_no_warning(tmp_path: Path) -> None:
    delivery = deliver(tmp_path, "new.zip", make_zip(FILES, PASSWORD), passphrase=PASSWORD)
    assert delivery.warnings == []


def test_empty_files_and_folders(tmp_path: Path) -> None:
    files = {"empty.csv": b"", "a/b/c.csv": b"1"}
    for name, build in BUILDERS.items():
        if name == "plain9660.iso":
            continue
        assert contents(deliver(tmp_path, name, build(files), passphrase=PASSWORD)) == \
            prefixed(name, files), name


# --- nesting and checksums ------------------------------------------------------------------


def test_7z_inside_an_iso_with_checksums(tmp_path: Path) -> None:
    archive = make_7z({**FILES, "SHA256SUMS": write_sums(FILES)}, PASSWORD, encrypt_names=True)
    disc = make_iso({"cases.7z": archive, "SHA256SUMS": write_sums({"cases.7z": archive})})
    delivery = deliver(tmp_path, "disc.iso", disc, passphrase=PASSWORD)
    assert contents(delivery) == prefixed("disc.iso/cases.7z", FILES)
    assert delivery.checksums_verified == 3


def test_zip_inside_a_tar(tmp_path: Path) -> None:
    digest = hashlib.md5(FILES["cases.csv"]).hexdigest().encode()
    inner = make_zip({**FILES, "cases.csv.md5": digest}, PASSWORD)
    tape = make_tar({"delivery/cases.zip": inner}, "gz")
    delivery = deliver(tmp_path, "tape.tgz", tape, passphrase=PASSWORD)
    assert contents(delivery) == prefixed("tape.tgz/delivery/cases.zip", FILES)
    assert delivery.checksums_verified == 1


@pytest.mark.parametrize("name", ["plain.tar", "disc.iso", "aes.zip", "names.7z"])
def test_checksum_mismatch_inside_a_container(tmp_path: Path, name: str) -> None:
    sums = write_sums({**FILES, "cases.csv": b"something else"})
    data = BUILDERS[name]({**FILES, "SHA256SUMS": sums})
    message = refused(tmp_path, name, data, ChecksumError, passphrase=PASSWORD)
    assert f"{name}/cases.csv" in message


def test_too_deep_nesting(tmp_path: Path) -> None:
    data = make_zip(FILES)
    for level in range(5):
        data = make_zip({f"level{level}.zip": data})
    with pytest.raises(MediaError, match="nested deeper"):
        deliver(tmp_path, "deep.zip", data, limits=Limits(max_nesting=3))


# --- passwords ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ENCRYPTED))
def test_wrong_password(tmp_path: Path, name: str) -> None:
    message = refused(tmp_path, name, BUILDERS[name](FILES), DecryptionError,
                      passphrase="not the password")
    assert "--passphrase-file" in message


@pytest.mark.parametrize("name", sorted(ENCRYPTED))
def test_missing_password(tmp_path: Path, name: str) -> None:
    message = refused(tmp_path, name, BUILDERS[name](FILES), DecryptionError)
    assert "--passphrase-file" in message


# --- damage ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BUILDERS))
def test_truncated(tmp_path: Path, name: str) -> None:
    data = BUILDERS[name](FILES)
    message = refused(tmp_path, name, data[: len(data) // 2], MediaError, passphrase=PASSWORD)
    assert "again" in message


FLIP_EXPECTS: dict[str, type[IngestError]] = {
    "tape.tar.gz": MediaError, "tape.tar.bz2": MediaError, "tape.tar.xz": MediaError,
    "tape.tar.zst": MediaError, "plain.zip": MediaError, "plain.7z": MediaError,
    # AES-CBC in 7-Zip has no MAC: a damaged archive and a wrong password look alike
    "aes.7z": DecryptionError, "names.7z": DecryptionError,
    "aes.zip": DecryptionError, "ae1.zip": DecryptionError, "zipcrypto.zip": DecryptionError,
}


@pytest.mark.parametrize("name", sorted(FLIP_EXPECTS))
def test_flipped_byte(tmp_path: Path, name: str) -> None:
    data = bytearray(BUILDERS[name](FILES))
    data[len(data) // 2] ^= 0x20
    refused(tmp_path, name, bytes(data), FLIP_EXPECTS[name], passphrase=PASSWORD)


@pytest.mark.parametrize("name", ["plain.tar", "disc.iso"])
def test_flipped_byte_without_integrity_is_caught_by_checksums(tmp_path: Path, name: str) -> None:
    files = {**FILES, "SHA256SUMS": write_sums(FILES)}
    data = bytearray(BUILDERS[name](files))
    at = bytes(data).index(FILES["cases.csv"][1000:1040])
    data[at] ^= 0x20
    refused(tmp_path, name, bytes(data), ChecksumError)


def test_tar_with_a_damaged_second_header(tmp_path: Path) -> None:
    data = bytearray(make_tar(FILES))
    second = 512 + -(-len(FILES["cases.csv"]) // 512) * 512
    data[second + 10] ^= 0x01  # tarfile would stop there quietly and lose the member
    refused(tmp_path, "t.tar", bytes(data), MediaError)


def test_truncated_zstd_stream(tmp_path: Path) -> None:
    data = make_tar(FILES, "zst")
    refused(tmp_path, "t.tar.zst", data[:-8], MediaError)


# --- hostile archives -----------------------------------------------------------------------


def _tar_with(*infos: tuple[tarfile.TarInfo, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in infos:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


def _zip_with(*entries: tuple[zipfile.ZipInfo | str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return out.getvalue()


@pytest.mark.parametrize("evil", ["../x.csv", "a/../../x.csv", "/etc/x.csv", "C:/x.csv",
                                  "..\\x.csv"])
def test_path_traversal_in_tar(tmp_path: Path, evil: str) -> None:
    data = _tar_with((_entry("ok.csv"), b"1"), (_entry(evil), b"2"))
    message = refused(tmp_path, "t.tar", data, MediaError)
    assert "refused" in message


@pytest.mark.parametrize("evil", ["../x.csv", "a/../../x.csv", "/etc/x.csv", "C:\\x.csv"])
def test_path_traversal_in_zip(tmp_path: Path, evil: str) -> None:
    info = zipfile.ZipInfo("placeholder")
    info.filename = evil  # zipfile would otherwise normalise some of these away
    data = _zip_with(("ok.csv", b"1"), (info, b"2"))
    refused(tmp_path, "t.zip", data, MediaError)


@pytest.mark.parametrize("kind,what", [(tarfile.SYMTYPE, "symbolic link"),
                                       (tarfile.LNKTYPE, "hard link"),
                                       (tarfile.CHRTYPE, "character device"),
                                       (tarfile.BLKTYPE, "block device"),
                                       (tarfile.FIFOTYPE, "fifo")])
def test_links_and_devices_in_tar(tmp_path: Path, kind: bytes, what: str) -> None:
    data = _tar_with((_entry("cases.csv"), b"1"), (_entry("link.csv", kind, "/etc/passwd"), b""))
    message = refused(tmp_path, "t.tar", data, MediaError)
    assert what in message and "t.tar/link.csv" in message


def test_symlink_in_zip(tmp_path: Path) -> None:
    info = zipfile.ZipInfo("link.csv")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    message = refused(tmp_path, "t.zip", _zip_with(("ok.csv", b"1"), (info, b"/etc/passwd")),
                      MediaError)
    assert "symbolic link" in message


def _7z_with_a_symlink(tmp_path: Path) -> bytes:
    src = tmp_path / "src"
    src.mkdir()
    (src / "cases.csv").write_bytes(b"1")
    (src / "link.csv").symlink_to("/etc/passwd")
    out = io.BytesIO()
    with py7zr.SevenZipFile(out, "w") as archive:
        archive.write(src / "cases.csv", "cases.csv")
        archive.write(src / "link.csv", "link.csv")
    return out.getvalue()


def test_symlink_in_7z(tmp_path: Path) -> None:
    message = refused(tmp_path, "t.7z", _7z_with_a_symlink(tmp_path), MediaError)
    assert "symbolic link" in message


def test_symlink_in_iso(tmp_path: Path) -> None:
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, rock_ridge="1.09")
    iso.add_fp(io.BytesIO(b"1"), 1, "/CASES.CSV;1", rr_name="cases.csv")
    iso.add_symlink("/LINK.CSV;1", "link.csv", "/etc/passwd")
    out = io.BytesIO()
    iso.write_fp(out)
    message = refused(tmp_path, "d.iso", out.getvalue(), MediaError)
    assert "symbolic link" in message


def test_duplicate_names_in_tar(tmp_path: Path) -> None:
    data = _tar_with((_entry("cases.csv"), b"1"), (_entry("./cases.csv"), b"2"))
    message = refused(tmp_path, "t.tar", data, MediaError)
    assert "two members" in message


def test_duplicate_names_in_zip(tmp_path: Path) -> None:
    with pytest.warns(UserWarning):
        data = _zip_with(("a/cases.csv", b"1"), ("a//cases.csv", b"2"), ("a/cases.csv", b"3"))
    message = refused(tmp_path, "t.zip", data, MediaError)
    assert "two members" in message


def test_hidden_files_are_skipped(tmp_path: Path) -> None:
    files = {**FILES, ".DS_Store": b"x", "__MACOSX/._cases.csv": b"x", "a/.hidden": b"x"}
    for name in ("plain.tar", "plain.zip", "plain.7z", "disc.iso"):
        assert contents(deliver(tmp_path, name, BUILDERS[name](files))) == prefixed(name, FILES)


# --- bombs and limits -----------------------------------------------------------------------


def test_zip_bomb_by_ratio(tmp_path: Path) -> None:
    data = make_zip({"zeros.csv": bytes(20 * 2**20)})
    message = refused(tmp_path, "bomb.zip", data, MediaError,
                      limits=Limits(max_expansion_ratio=100))
    assert "decompression bomb" in message


def test_tar_xz_bomb_by_ratio_with_default_limits(tmp_path: Path) -> None:
    data = make_tar({"zeros.csv": bytes(48 * 2**20)}, "xz")
    message = refused(tmp_path, "bomb.tar.xz", data, MediaError)
    assert "decompression bomb" in message


def test_zstd_bomb_stops_while_decompressing(tmp_path: Path) -> None:
    import zstandard

    data = zstandard.ZstdCompressor().compress(bytes(256 * 2**20))
    message = refused(tmp_path, "bomb.csv.zst", data, MediaError)
    assert "decompression bomb" in message


def test_7z_bomb_by_ratio(tmp_path: Path) -> None:
    data = make_7z({"zeros.csv": bytes(32 * 2**20)})
    refused(tmp_path, "bomb.7z", data, MediaError)


@pytest.mark.parametrize("name", ["plain.tar", "tape.tar.gz", "plain.zip", "names.7z",
                                  "disc.iso"])
def test_total_size_limit(tmp_path: Path, name: str) -> None:
    message = refused(tmp_path, name, BUILDERS[name](FILES), MediaError, passphrase=PASSWORD,
                      limits=Limits(max_expanded_bytes=50_000))
    assert "limit" in message


@pytest.mark.parametrize("name", ["plain.tar", "plain.zip", "plain.7z", "disc.iso"])
def test_member_count_limit(tmp_path: Path, name: str) -> None:
    files = {f"f{i}.csv": b"1" for i in range(10)}
    message = refused(tmp_path, name, BUILDERS[name](files), MediaError,
                      limits=Limits(max_members=5))
    assert "entries" in message


def test_limits_count_across_the_delivery() -> None:
    ctx = OpenContext(limits=Limits(max_expanded_bytes=len(FILES["cases.csv"]) * 3))
    archive = Member("a.zip", make_zip(FILES))
    ZIP.open(archive, ctx)
    ZIP.open(Member("b.zip", archive.data), ctx)
    with pytest.raises(MediaError, match="limit"):
        ZIP.open(Member("c.zip", archive.data), ctx)


# --- what is not a container ----------------------------------------------------------------


def _xlsx() -> bytes:
    import xlsxwriter

    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    book.add_worksheet().write(0, 0, "CASE_ID")
    book.close()
    return out.getvalue()


def _ods() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.spreadsheet")
        zf.writestr("content.xml", "<office:document-content/>")
    return out.getvalue()


def _openpyxl() -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    book.active["A1"] = "CASE_ID"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.mark.parametrize("make", [_xlsx, _ods, _openpyxl])
def test_office_zips_are_not_containers(tmp_path: Path, make: Callable[[], bytes]) -> None:
    data = make()
    assert not ZIP.sniff(data[:65536])
    assert contents(deliver(tmp_path, "book.xlsx", data)) == {"book.xlsx": data}


def test_workbook_inside_a_zip_is_a_leaf(tmp_path: Path) -> None:
    book = _xlsx()
    delivery = deliver(tmp_path, "d.zip", make_zip({"book.xlsx": book}, PASSWORD),
                       passphrase=PASSWORD)
    assert contents(delivery) == {"d.zip/book.xlsx": book}


def test_stored_workbook_does_not_hide_the_delivery_zip() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("book.xlsx", _xlsx())
    assert ZIP.sniff(out.getvalue()[:65536])


# --- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize("raw,clean", [("./a/b.csv", "a/b.csv"), ("a//b.csv", "a/b.csv"),
                                       ("a\\b.csv", "a/b.csv"), ("a/./b.csv", "a/b.csv")])
def test_clean_names(raw: str, clean: str) -> None:
    assert clean_name(raw, "c.zip") == clean


@pytest.mark.parametrize("raw", ["../x", "a/../../x", "a/..", "/etc/x", "\\\\server\\x", "C:x",
                                 "d:/x", "x\x00y", "a\nb", "", ".", "./"])
def test_unsafe_names(raw: str) -> None:
    with pytest.raises(MediaError, match="c.zip"):
        clean_name(raw, "c.zip")


def test_iso_cut_inside_its_last_file(tmp_path: Path) -> None:
    data = make_iso(FILES)
    tail = FILES["cases.csv"][-64:]
    end = data.index(tail) + len(tail)
    refused(tmp_path, "disc.iso", data[: end - 10], MediaError)


# --- 7-Zip through the 7z command and through py7zr ---------------------------------------

SEVENZIPS = ["plain.7z", "aes.7z", "names.7z"]


@pytest.fixture(params=["7z command", "py7zr"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Which way 7-Zip members are decompressed; the list records each way taken."""
    taken: list[str] = []
    if request.param == "py7zr":
        monkeypatch.setattr(sevenzip, "seven_zip_command", lambda: None)
    else:
        seven_zip()
    for name, label in (("_extract_with_command", "7z command"), ("_extract", "py7zr")):
        real = getattr(sevenzip, name)

        def spy(*args: object, _real: Callable[..., object] = real, _label: str = label) -> object:
            taken.append(_label)
            return _real(*args)

        monkeypatch.setattr(sevenzip, name, spy)
    taken.append(request.param)  # first entry: the way expected
    return taken


def _took(engine: list[str]) -> None:
    assert set(engine[1:]) == {engine[0]}, engine


@pytest.mark.parametrize("name", SEVENZIPS)
def test_7z_round_trip_in_memory_both_ways(tmp_path: Path, name: str, engine: list[str]) -> None:
    path = tmp_path / name
    path.write_bytes(BUILDERS[name](FILES))
    with no_disk_writes():
        delivery = open_delivery(path, passphrase=PASSWORD)
    assert contents(delivery) == prefixed(name, FILES)
    _took(engine)


@pytest.mark.parametrize("name", ["aes.7z", "names.7z"])
def test_7z_wrong_and_missing_password_both_ways(tmp_path: Path, name: str,
                                                 engine: list[str]) -> None:
    data = BUILDERS[name](FILES)
    assert "--passphrase-file" in refused(tmp_path, name, data, DecryptionError,
                                          passphrase="not the password")
    assert "--passphrase-file" in refused(tmp_path, name, data, DecryptionError)


@pytest.mark.parametrize("name", SEVENZIPS)
def test_7z_truncated_and_flipped_both_ways(tmp_path: Path, name: str,
                                            engine: list[str]) -> None:
    data = BUILDERS[name](FILES)
    assert "again" in refused(tmp_path, name, data[: len(data) // 2], MediaError,
                              passphrase=PASSWORD)
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0x20
    refused(tmp_path, name, bytes(flipped), FLIP_EXPECTS[name], passphrase=PASSWORD)


def test_7z_empty_hidden_and_special_members_both_ways(tmp_path: Path,
                                                       engine: list[str]) -> None:
    files = {"empty.csv": b"", "a/b/c.csv": b"1", ".DS_Store": b"x", "a/.hidden": b"x"}
    for name in SEVENZIPS:
        delivery = deliver(tmp_path, name, BUILDERS[name](files), passphrase=PASSWORD)
        assert contents(delivery) == prefixed(name, {"empty.csv": b"", "a/b/c.csv": b"1"})
    only_empty = make_7z({"empty.csv": b""}, PASSWORD)
    assert contents(deliver(tmp_path, "e.7z", only_empty, passphrase=PASSWORD)) == \
        {"e.7z/empty.csv": b""}
    assert "symbolic link" in refused(tmp_path, "t.7z", _7z_with_a_symlink(tmp_path), MediaError)


def test_7z_limits_both_ways(tmp_path: Path, engine: list[str]) -> None:
    refused(tmp_path, "bomb.7z", make_7z({"zeros.csv": bytes(32 * 2**20)}), MediaError)
    assert "limit" in refused(tmp_path, "names.7z", BUILDERS["names.7z"](FILES), MediaError,
                              passphrase=PASSWORD, limits=Limits(max_expanded_bytes=50_000))
    many = make_7z({f"f{i}.csv": b"1" for i in range(10)})
    assert "entries" in refused(tmp_path, "m.7z", many, MediaError,
                                limits=Limits(max_members=5))
    ctx = OpenContext(limits=Limits(max_expanded_bytes=len(FILES["cases.csv"]) * 3))
    archive = Member("a.7z", make_7z(FILES, PASSWORD, encrypt_names=True))
    ctx.passphrase = PASSWORD
    SEVENZIP.open(archive, ctx)
    SEVENZIP.open(Member("b.7z", archive.data), ctx)
    with pytest.raises(MediaError, match="limit"):
        SEVENZIP.open(Member("c.7z", archive.data), ctx)


@pytest.mark.parametrize("shift,expect", [(-1, "more data than the 7-Zip header declares"),
                                          (+1, "did not yield")])
def test_7z_command_output_must_match_the_declared_sizes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shift: int, expect: str) -> None:
    """Were 7-Zip to write more or less than py7zr read in the header, nothing is used."""
    seven_zip()
    real_plan = sevenzip._plan

    def misplan(archive: object, intake: object) -> list[object]:
        planned = real_plan(archive, intake)  # type: ignore[arg-type]
        last = planned[-1]
        return [*planned[:-1], type(last)(last.key, last.name, last.size + shift, last.hidden)]

    monkeypatch.setattr(sevenzip, "_plan", misplan)
    message = refused(tmp_path, "names.7z", BUILDERS["names.7z"](FILES), MediaError,
                      passphrase=PASSWORD)
    assert expect in message


@pytest.mark.parametrize("password", ["  pä ss€ -p @list  ", "-p", '"quoted" \\ back'])
def test_7z_command_reads_any_one_line_password(tmp_path: Path, password: str,
                                                engine: list[str]) -> None:
    data = make_7z(FILES, password, encrypt_names=True)
    delivery = deliver(tmp_path, "p.7z", data, passphrase=password)
    assert contents(delivery) == prefixed("p.7z", FILES)
    _took(engine)


def test_7z_password_on_several_lines_goes_to_py7zr(tmp_path: Path, engine: list[str]) -> None:
    password = "first line\nsecond line"
    data = make_7z(FILES, password, encrypt_names=True)
    assert contents(deliver(tmp_path, "p.7z", data, passphrase=password)) == \
        prefixed("p.7z", FILES)
    assert engine[1:] == ["py7zr"]


def _recording_wrapper(tmp_path: Path, real: str) -> tuple[Path, Path]:
    """A stand-in for a command that saves its own /proc cmdline and environ, then runs it."""
    seen = tmp_path / "seen"
    wrapper = tmp_path / "bin" / Path(real).name
    wrapper.parent.mkdir()
    wrapper.write_text(f"#!/bin/sh\ncat /proc/$$/cmdline /proc/$$/environ >> '{seen}'\n"
                       f"exec '{real}' \"$@\"\n")
    wrapper.chmod(0o700)
    return wrapper, seen


def test_the_7z_password_is_never_on_a_command_line_nor_in_an_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = seven_zip()
    wrapper, seen = _recording_wrapper(tmp_path, real)
    monkeypatch.setattr(sevenzip, "seven_zip_command", lambda: str(wrapper))
    monkeypatch.setenv("INGEST_PASSPHRASE", PASSWORD)  # in our environment, not the child's
    for name in ("aes.7z", "names.7z"):
        delivery = deliver(tmp_path, name, BUILDERS[name](FILES), passphrase=PASSWORD)
        assert contents(delivery) == prefixed(name, FILES)
    recorded = seen.read_bytes()
    assert recorded.count(b"/proc/self/fd/") == 2  # both ran through the wrapper
    assert PASSWORD.encode() not in recorded
    assert b"INGEST_" not in recorded


def test_7z_command_stopped_midway_leaves_no_process(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A limit reached while 7-Zip is still writing: the command is ended, nothing hangs."""
    import psutil

    from ingest.media import _safety

    seven_zip()

    def over_the_limit(self: _safety.Intake, name: str, n: int) -> None:
        raise MediaError(f"{name}: the delivery expands past the limit; refused")

    monkeypatch.setattr(_safety.Intake, "take", over_the_limit)
    big = {"cases.csv": _rows(40_000, "c"), "more.csv": _rows(40_000, "d")}
    refused(tmp_path, "names.7z", make_7z(big, PASSWORD, encrypt_names=True), MediaError,
            passphrase=PASSWORD)
    assert psutil.Process().children() == []
