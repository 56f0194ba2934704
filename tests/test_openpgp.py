"""OpenPGP through the real GnuPG: good, wrong, tampered and truncated messages."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ingest.crypto.openpgp import (
    decrypt_openpgp,
    encrypt_openpgp,
    export_public_key,
    import_key,
    is_openpgp,
)
from ingest.errors import DecryptionError, KeyringError

PLAIN = b"CASE_ID,PERS_ID\r\n" + b"0000000001,PCANARY01\r\n" * 2000


@pytest.fixture
def gnupg(home: Path) -> Path:
    return home / "gnupg"


@pytest.mark.parametrize("armor", [False, True])
@pytest.mark.parametrize("compress", [False, True])
def test_to_our_key(gnupg: Path, tmp_path: Path, armor: bool, compress: bool) -> None:
    cipher = encrypt_openpgp(PLAIN, tmp_path, recipient_key=export_public_key(gnupg),
                             armor=armor, compress=compress)
    assert is_openpgp(cipher[:64])
    assert decrypt_openpgp(cipher, gnupg) == PLAIN


def test_with_a_passphrase(gnupg: Path, tmp_path: Path) -> None:
    cipher = encrypt_openpgp(PLAIN, tmp_path, passphrase="correct horse")
    assert decrypt_openpgp(cipher, gnupg, "correct horse") == PLAIN
    with pytest.raises(DecryptionError, match="wrong passphrase") as err:
        decrypt_openpgp(cipher, gnupg, "wrong horse", member="cases.csv.gpg")
    assert "wrong horse" not in str(err.value) and "cases.csv.gpg" in str(err.value)
    with pytest.raises(DecryptionError, match="passphrase"):
        decrypt_openpgp(cipher, gnupg, None)


def test_to_a_key_we_do_not_hold(tmp_path: Path, gnupg: Path) -> None:
    other = tmp_path / "other"
    from ingest.crypto.openpgp import ensure_recipient_key

    ensure_recipient_key(other)
    cipher = encrypt_openpgp(PLAIN, tmp_path / "s", recipient_key=export_public_key(other))
    with pytest.raises(DecryptionError, match="import it with 'ingest keys import-pgp"):
        decrypt_openpgp(cipher, gnupg)


@pytest.mark.parametrize("where", ["header", "middle", "end"])
def test_tampered_message_fails_and_yields_nothing(gnupg: Path, tmp_path: Path,
                                                   where: str) -> None:
    cipher = bytearray(encrypt_openpgp(PLAIN, tmp_path, recipient_key=export_public_key(gnupg),
                                       compress=False))
    pos = {"header": 20, "middle": len(cipher) // 2, "end": len(cipher) - 5}[where]
    cipher[pos] ^= 0x01
    with pytest.raises(DecryptionError) as err:
        decrypt_openpgp(bytes(cipher), gnupg, member="cases.csv.gpg")
    assert "CANARY" not in str(err.value)


def test_truncated_message(gnupg: Path, tmp_path: Path) -> None:
    cipher = encrypt_openpgp(PLAIN, tmp_path, recipient_key=export_public_key(gnupg))
    with pytest.raises(DecryptionError):
        decrypt_openpgp(cipher[: len(cipher) // 2], gnupg)


def test_import_a_passphrase_protected_secret_key(tmp_path: Path) -> None:
    import subprocess

    sender = tmp_path / "agency"
    sender.mkdir(mode=0o700)
    subprocess.run(["gpg", "--homedir", str(sender), "--batch", "--pinentry-mode", "loopback",
                    "--passphrase", "key-pass", "--quick-gen-key", "Recipient <r@x.invalid>",
                    "future-default", "default", "never"], check=True, capture_output=True)
    secret = subprocess.run(["gpg", "--homedir", str(sender), "--batch", "--pinentry-mode",
                             "loopback", "--passphrase", "key-pass", "--armor",
                             "--export-secret-keys"], check=True, capture_output=True).stdout
    public = subprocess.run(["gpg", "--homedir", str(sender), "--armor", "--export"],
                            check=True, capture_output=True).stdout
    mine = tmp_path / "mine"
    import_key(mine, secret, "key-pass")
    cipher = encrypt_openpgp(PLAIN, tmp_path / "s", recipient_key=public)
    assert decrypt_openpgp(cipher, mine, "key-pass") == PLAIN
    with pytest.raises(DecryptionError, match="wrong passphrase"):
        decrypt_openpgp(cipher, mine, "nope")
    with pytest.raises(KeyringError):
        import_key(tmp_path / "third", b"not a key")


def test_output_larger_than_the_first_buffer(gnupg: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The plaintext is received into one buffer sized from the input; more is appended."""
    from ingest.crypto import openpgp

    cipher = encrypt_openpgp(PLAIN, tmp_path, recipient_key=export_public_key(gnupg))
    monkeypatch.setattr(openpgp, "_OUTPUT_HINT", (1000, 1000))
    assert decrypt_openpgp(cipher, gnupg) == PLAIN


def test_passphrase_is_never_on_a_command_line_nor_in_an_environment(
        gnupg: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from ingest.crypto import openpgp

    cipher = encrypt_openpgp(PLAIN, tmp_path / "sender", passphrase="correct horse")
    real = shutil.which("gpg")
    assert real is not None
    seen = tmp_path / "seen"
    wrapper = tmp_path / "gpg"
    wrapper.write_text(f"#!/bin/sh\ncat /proc/$$/cmdline /proc/$$/environ >> '{seen}'\n"
                       f"exec '{real}' \"$@\"\n")
    wrapper.chmod(0o700)
    monkeypatch.setattr(openpgp, "_gpg", lambda: str(wrapper))
    monkeypatch.setenv("INGEST_PASSPHRASE", "correct horse")  # ours, not gpg's
    assert decrypt_openpgp(cipher, gnupg, "correct horse") == PLAIN
    with pytest.raises(DecryptionError, match="wrong passphrase"):
        decrypt_openpgp(cipher, gnupg, "wrong horse")
    recorded = seen.read_bytes()
    assert recorded.count(b"--decrypt") == 2
    assert b"horse" not in recorded and b"INGEST_" not in recorded


def test_output_without_splice(gnupg: Path, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the kernel cannot splice a pipe into a socket, the output is copied."""
    import errno
    import os

    def no_splice(*_args: object) -> int:
        raise OSError(errno.EINVAL, "splice")

    cipher = encrypt_openpgp(PLAIN, tmp_path, recipient_key=export_public_key(gnupg))
    monkeypatch.setattr(os, "splice", no_splice)
    assert decrypt_openpgp(cipher, gnupg) == PLAIN


def test_stopping_midway_ends_gpg(gnupg: Path, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """An error while the plaintext streams in: gpg is ended, nothing hangs or lingers."""
    import os

    import psutil

    from ingest._fs import ChildOutput

    big = os.urandom(1 << 20) * 12  # more than the pipe and the socket hold
    cipher = encrypt_openpgp(big, tmp_path, recipient_key=export_public_key(gnupg),
                             compress=False)

    def interrupted(self: ChildOutput, hint: int) -> bytes:
        self.receive(1 << 16)
        raise KeyboardInterrupt

    monkeypatch.setattr(ChildOutput, "receive_all", interrupted)
    with pytest.raises(KeyboardInterrupt):
        decrypt_openpgp(cipher, gnupg)
    assert psutil.Process().children() == []


# -- messages made by the gpg command itself, as a sender makes them -------------------------

def _gpg(home: Path, *args: str, stdin: bytes = b"") -> bytes:
    home.mkdir(mode=0o700, exist_ok=True)
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", "--yes", "--no-tty",
                           *args], input=stdin, check=True, capture_output=True).stdout


@pytest.mark.parametrize("options", [[], ["--armor"], ["-z", "0"], ["--cipher-algo", "AES128"],
                                     ["--cipher-algo", "CAMELLIA256", "--compress-algo", "bzip2"]])
def test_encrypted_by_gpg_to_our_key(gnupg: Path, tmp_path: Path, options: list[str]) -> None:
    """``gpg --encrypt -r`` by a sender who imported our exported public key."""
    from ingest.crypto.openpgp import recipient_fingerprint

    sender = tmp_path / "sender"
    _gpg(sender, "--import", stdin=export_public_key(gnupg))
    fingerprint = recipient_fingerprint(gnupg)
    assert fingerprint
    cipher = _gpg(sender, "--trust-model", "always", *options, "--encrypt", "-r", fingerprint,
                  stdin=PLAIN)
    assert decrypt_openpgp(cipher, gnupg) == PLAIN


def test_signed_and_encrypted_by_gpg(gnupg: Path, tmp_path: Path) -> None:
    """A sender who signs as well: the message still opens with our key alone."""
    from ingest.crypto.openpgp import recipient_fingerprint

    sender = tmp_path / "sender"
    _gpg(sender, "--passphrase", "", "--quick-gen-key", "Agency <agency@x.invalid>",
         "future-default", "default", "never")
    _gpg(sender, "--import", stdin=export_public_key(gnupg))
    cipher = _gpg(sender, "--trust-model", "always", "--sign", "--encrypt", "-r",
                  str(recipient_fingerprint(gnupg)), stdin=PLAIN)
    warnings: list[str] = []
    assert decrypt_openpgp(cipher, gnupg, member="cases.csv.gpg", warnings=warnings) == PLAIN
    assert len(warnings) == 1 and "signature was not verified" in warnings[0]
    # the note reaches the opened delivery (and so the run's warnings)
    from ingest.media import open_delivery

    (tmp_path / "cases.csv.gpg").write_bytes(cipher)
    opened = open_delivery(tmp_path / "cases.csv.gpg", gnupg_home=gnupg)
    assert [m.data for m in opened.members] == [PLAIN]
    assert any("signature was not verified" in w for w in opened.warnings)
    # once the sender's key is known, the signature is checked: a good one opens quietly
    _gpg(gnupg, "--import", stdin=_gpg(sender, "--export"))
    warnings.clear()
    assert decrypt_openpgp(cipher, gnupg, warnings=warnings) == PLAIN
    assert warnings == []


def test_a_signature_by_a_revoked_key_is_refused(gnupg: Path, tmp_path: Path) -> None:
    """A message signed by a key its owner has since revoked is refused, never opened."""
    from ingest.crypto.openpgp import recipient_fingerprint

    sender = tmp_path / "sender"
    _gpg(sender, "--passphrase", "", "--quick-gen-key", "Revoked <revoked@x.invalid>",
         "future-default", "default", "never")
    _gpg(sender, "--import", stdin=export_public_key(gnupg))
    cipher = _gpg(sender, "--trust-model", "always", "--sign", "--encrypt", "-r",
                  str(recipient_fingerprint(gnupg)), stdin=PLAIN)
    # gpg keeps a revocation certificate for every key it makes; its first line is
    # commented out so that it is not imported by accident
    (certificate,) = (sender / "openpgp-revocs.d").glob("*.rev")
    _gpg(sender, "--import", stdin=certificate.read_bytes().replace(b":-----BEGIN", b"-----BEGIN"))
    _gpg(gnupg, "--import", stdin=_gpg(sender, "--export"))
    with pytest.raises(DecryptionError, match="signature is bad") as err:
        decrypt_openpgp(cipher, gnupg, member="cases.csv.gpg")
    assert "cases.csv.gpg" in str(err.value)


@pytest.mark.parametrize("options", [[], ["--armor"], ["--cipher-algo", "AES", "-z", "0"],
                                     ["--s2k-digest-algo", "SHA512", "--s2k-count", "65011712"]])
def test_symmetric_by_gpg(gnupg: Path, tmp_path: Path, options: list[str]) -> None:
    """``gpg --symmetric``: the right passphrase reads exactly; a wrong or missing one is
    a clear error naming the cause, never quoting the passphrase."""
    secret = tmp_path / "pass"
    secret.write_text("sender's pass phrase 7")
    cipher = _gpg(tmp_path / "sender", "--pinentry-mode", "loopback", "--passphrase-file",
                  str(secret), *options, "--symmetric", stdin=PLAIN)
    assert decrypt_openpgp(cipher, gnupg, "sender's pass phrase 7") == PLAIN
    with pytest.raises(DecryptionError, match="wrong passphrase") as err:
        decrypt_openpgp(cipher, gnupg, "sender's pass phrase 8", member="cases.csv.gpg")
    assert "phrase 8" not in str(err.value) and "cases.csv.gpg" in str(err.value)
    with pytest.raises(DecryptionError, match="encrypted with a passphrase"):
        decrypt_openpgp(cipher, gnupg, None)


def test_gpg_message_to_another_key_names_it(gnupg: Path, tmp_path: Path) -> None:
    sender = tmp_path / "sender"
    _gpg(sender, "--passphrase", "", "--quick-gen-key", "Other <other@x.invalid>",
         "future-default", "default", "never")
    cipher = _gpg(sender, "--trust-model", "always", "--encrypt", "-r", "other@x.invalid",
                  stdin=PLAIN)
    with pytest.raises(DecryptionError, match="does not hold"):
        decrypt_openpgp(cipher, gnupg)


def test_a_keyring_folder_too_deep_for_gpg_agent_s_sockets_is_named(tmp_path: Path) -> None:
    from ingest.crypto.openpgp import SOCKET_PATH_MAX, ensure_recipient_key

    home = tmp_path / ("k" * (SOCKET_PATH_MAX - len(str(tmp_path)) - 10))
    home.mkdir(mode=0o700)
    socketdir = subprocess.run(["gpgconf", "--homedir", str(home), "--list-dirs", "socketdir"],
                               capture_output=True, text=True, check=True).stdout.strip()
    if socketdir != str(home):  # a system with a /run/user folder puts the sockets there
        assert ensure_recipient_key(home)
        return
    longest = len(str(home)) + len("/S.gpg-agent.browser")
    assert longest > SOCKET_PATH_MAX
    with pytest.raises(KeyringError) as caught:
        ensure_recipient_key(home)
    assert str(caught.value) == (
        f"could not create the OpenPGP key in {home}: gpg-agent's sockets there would have "
        f"paths of up to {longest} bytes, and a socket's path holds at most {SOCKET_PATH_MAX}; "
        "choose a shorter INGEST_HOME")
