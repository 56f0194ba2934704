"""OpenPGP through GnuPG: decrypt in memory, nothing written but by gpg's own keyring.

gpg reads the message from a memory file (its stdin), its plaintext is received
straight into one buffer while gpg is still working (:class:`ingest._fs.ChildOutput`),
and its status lines go to another memory file: nothing touches a disk, and no
pipe is drained 32 KiB at a time. The plaintext is discarded unless gpg
reports that it decrypted and that the integrity check passed: on a tampered
message gpg may already have written part of the plaintext before it notices.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

from .._fs import (
    child_environment,
    memory_file,
    private_dir,
    run_tool,
    secret_pipe,
    write_private,
)
from ..errors import DecryptionError, KeyringError, MediaError
from ..settings import stall_seconds

RECIPIENT_UID = "ingest recipient <recipient@ingest.invalid>"
_ARMOR = b"-----BEGIN PGP MESSAGE-----"
_STATUS_LIMIT = 1 << 20
"""Status and messages read back from gpg: far more than any real run writes."""
_OUTPUT_HINT = (16 << 20, 1 << 30)
"""Bounds of the first receive buffer, sized from the input (compression ~3-10x)."""


def is_openpgp(head: bytes) -> bool:
    """True for an OpenPGP message: ASCII armour, or a PKESK/SKESK first packet."""
    if head.lstrip()[: len(_ARMOR)] == _ARMOR:
        return True
    if not head or not head[0] & 0x80:
        return False
    first = head[0]
    tag = first & 0x3F if first & 0x40 else (first >> 2) & 0x0F
    if tag not in (1, 3):  # public-key or symmetric-key encrypted session key
        return False
    # the packet's version too: one byte alone is claimed by text in other code pages
    # (EBCDIC records starting with "A" or "C")
    if first & 0x40:
        size = head[1] if len(head) > 1 else 0
        body = 2 if size < 192 or 224 <= size < 255 else 3 if size < 224 else 6
    else:
        body = 1 + (1, 2, 4, 0)[first & 0x03]
    version = head[body] if len(head) > body else -1
    return version in ((3, 6) if tag == 1 else (4, 5, 6))


def _gpg() -> str:
    path = shutil.which("gpg")
    if not path:
        raise DecryptionError("GnuPG (gpg) is not installed: run the README's set-up command")
    return path


def _run(home: Path, args: list[str], data: bytes = b"",
         passphrase: str | None = None) -> tuple[int, bytes, list[str]]:
    """Run gpg on ``data``; the passphrase travels through a private pipe, never argv
    nor the environment."""
    low, high = _OUTPUT_HINT
    hint = min(max(8 * len(data), low), high)
    with contextlib.ExitStack() as stack:
        cmd, pass_fds = gpg_command(home, passphrase, stack)
        source = memory_file(data, "ingest-gpg-input")
        stack.callback(os.close, source)
        code, out, messages = run_tool(cmd + args, lambda output: output.receive_all(hint),
                                       stdin=source, pass_fds=pass_fds,
                                       env=child_environment(), messages_limit=_STATUS_LIMIT,
                                       stall_after=stall_seconds())
    return code, out, status_lines(messages)


def gpg_command(home: Path, passphrase: str | None,
                stack: contextlib.ExitStack) -> tuple[list[str], tuple[int, ...]]:
    """gpg's command line over ``home`` and the descriptors it must inherit.

    The passphrase travels through a private pipe (closed by ``stack``), never
    argv nor the environment.
    """
    _prepare_home(home)
    cmd = [_gpg(), "--homedir", str(home), "--batch", "--no-tty", "--yes",
           "--status-fd", "2", "--pinentry-mode", "loopback"]
    if passphrase is None:
        return cmd, ()
    secret = secret_pipe(passphrase)
    stack.callback(os.close, secret)
    return [*cmd, "--passphrase-fd", str(secret)], (secret,)


def status_lines(messages: bytes) -> list[str]:
    """gpg's machine-readable status lines, without their ``[GNUPG:] `` prefix."""
    return [line[9:] for line in messages.decode("utf-8", "replace").splitlines()
            if line.startswith("[GNUPG:] ")]


def _prepare_home(home: Path) -> None:
    """A private GnuPG home whose agent never caches a passphrase: each run must
    present it again, and nothing lingers in the agent's memory."""
    private_dir(home)
    conf = home / "gpg-agent.conf"
    if not conf.exists():
        write_private(conf, b"default-cache-ttl 0\nmax-cache-ttl 0\nallow-loopback-pinentry\n")


_SIG_BAD = {"BADSIG", "EXPKEYSIG", "REVKEYSIG"}
"""A signature checked and found bad, or made by an expired or revoked key."""


def _unverified_signers(status: list[str]) -> list[str]:
    """Key ids of signatures gpg could not check because it lacks the signer's key."""
    return sorted({p[1] for p in (line.split() for line in status)
                   if len(p) > 1 and p[0] in ("ERRSIG", "NO_PUBKEY")})


def decrypt_openpgp(data: bytes, home: Path, passphrase: str | None = None,
                    member: str = "delivery", warnings: list[str] | None = None) -> bytes:
    """Decrypt an OpenPGP message to our key (in ``home``) or with a passphrase."""
    code, plain, status = _run(home, ["--decrypt"], data, passphrase)
    words = {line.split(" ", 1)[0] for line in status}
    # gpg exits 2 when the message is also signed by a key this keyring does not hold
    # (ERRSIG / NO_PUBKEY): the decryption and its integrity check still succeeded, so
    # the message opens, and the unverified signature is reported beside the run.
    # A signature that is checked and bad is a tampered message and is refused.
    unverified = _unverified_signers(status)
    exit_ok = code == 0 or (code == 2 and bool(unverified))
    if words & _SIG_BAD:
        del plain
        raise DecryptionError(f"{member}: the OpenPGP signature is bad, or made by a revoked "
                              "or expired key: the message may have been altered or its "
                              "sender's key compromised; ask the sender to send it again")
    ok = exit_ok and "DECRYPTION_OKAY" in words and "DECRYPTION_FAILED" not in words
    if ok and ("GOODMDC" in words or "DECRYPTION_INFO" in words):
        if unverified and warnings is not None:
            warnings.append(f"{member}: signed by OpenPGP key {', '.join(unverified)}, which "
                            "this keyring does not hold: the signature was not verified "
                            "(import the sender's public key to verify it)")
        return plain
    del plain  # possibly partial plaintext of a tampered message: never used
    raise DecryptionError(_explain(member, status, words, passphrase is not None))


def _explain(member: str, status: list[str], words: set[str], had_passphrase: bool) -> str:
    missing = [line.split()[1] for line in status if line.startswith("NO_SECKEY")]
    # "ERROR pkdecrypt_failed <code>": the low 16 bits are gpg-error's code; 11 is
    # GPG_ERR_BAD_PASSPHRASE (the secret key's passphrase was wrong)
    codes = {int(p[2]) & 0xFFFF for p in (line.split() for line in status)
             if len(p) == 3 and p[0] == "ERROR" and p[2].isdigit()}
    symmetric_failed = "DECRYPTION_FAILED" in words and "NEED_PASSPHRASE_SYM" in words
    if "BAD_PASSPHRASE" in words or 11 in codes or symmetric_failed:
        return (f"{member}: wrong passphrase for the OpenPGP message or its key; "
                "check --passphrase-file or INGEST_PASSPHRASE")
    if missing and "DECRYPTION_OKAY" not in words:
        return (f"{member}: encrypted to OpenPGP key {', '.join(missing)}, which this keyring "
                "does not hold; import it with 'ingest keys import-pgp FILE'")
    if "NEED_PASSPHRASE_SYM" in words and not had_passphrase:
        return f"{member}: encrypted with a passphrase; give it with --passphrase-file"
    if "BADMDC" in words or "DECRYPTION_FAILED" in words:
        return (f"{member}: OpenPGP integrity check failed: the file is tampered or "
                "damaged; ask the sender to send it again")
    if "NODATA" in words:
        return f"{member}: not an OpenPGP message, or it is truncated"
    return (f"{member}: OpenPGP decryption failed (truncated or damaged file); "
            "ask the sender to send it again")


def ensure_recipient_key(home: Path) -> str:
    """The fingerprint of this keyring's own OpenPGP key, generated on first use."""
    fpr = recipient_fingerprint(home)
    if fpr:
        return fpr
    code, _, _ = _run(home, ["--passphrase", "", "--quick-gen-key", RECIPIENT_UID,
                             "future-default", "default", "never"])
    fpr = recipient_fingerprint(home)
    if code != 0 or not fpr:
        raise KeyringError(f"could not create the OpenPGP key in {home}{_socket_hint(home)}")
    return fpr


SOCKET_PATH_MAX = 107
"""The longest path a Unix socket may have (``sun_path``: 108 bytes, the last a NUL)."""


def _socket_hint(home: Path) -> str:
    """Why gpg-agent could not start, when it is its sockets' paths: gpg puts them in
    the keyring's folder where the system has no ``/run/user`` folder for them."""
    proc = subprocess.run([shutil.which("gpgconf") or "gpgconf", "--homedir", str(home),
                           "--list-dirs", "socketdir"], capture_output=True, check=False,
                          env=child_environment())
    longest = len(proc.stdout.strip()) + len(b"/S.gpg-agent.browser")
    if proc.returncode != 0 or longest <= SOCKET_PATH_MAX:
        return ""
    return (f": gpg-agent's sockets there would have paths of up to {longest} bytes, and a "
            f"socket's path holds at most {SOCKET_PATH_MAX}; choose a shorter INGEST_HOME")


def recipient_fingerprint(home: Path) -> str | None:
    if not home.exists():
        return None
    proc = subprocess.run([_gpg(), "--homedir", str(home), "--batch", "--with-colons",
                           "--list-secret-keys"], capture_output=True, check=False,
                          env=child_environment())
    for line in proc.stdout.decode().splitlines():
        if line.startswith("fpr:"):
            return line.split(":")[9]
    return None


def export_public_key(home: Path) -> bytes:
    code, out, _ = _run(home, ["--armor", "--export", RECIPIENT_UID])
    if code != 0 or not out:
        raise KeyringError("no OpenPGP key to export: run 'ingest keys init'")
    return out


def import_key(home: Path, key_data: bytes, passphrase: str | None = None) -> list[str]:
    """Import a (possibly passphrase-protected) secret key; returns fingerprints."""
    code, _, status = _run(home, ["--import"], key_data, passphrase)
    fprs = [line.split()[2] for line in status if line.startswith("IMPORT_OK")]
    if code != 0 or not fprs:
        raise KeyringError("the OpenPGP key could not be imported (wrong passphrase, or "
                           "not a key file)")
    return sorted(set(fprs))


def encrypt_openpgp(data: bytes, home: Path, *, recipient_key: bytes | None = None,
                    passphrase: str | None = None, armor: bool = False,
                    compress: bool = True) -> bytes:
    """Encrypt as a sender would: to a public key, or symmetrically with a passphrase.

    Used by the delivery generator; ``home`` is the sender's own GnuPG home.
    """
    args = ["--trust-model", "always", "-z", "6" if compress else "0"]
    if armor:
        args.append("--armor")
    if passphrase is not None:
        code, out, _ = _run(home, [*args, "--symmetric", "--cipher-algo", "AES256"],
                            data, passphrase)
    else:
        if recipient_key is None:
            raise KeyringError("encrypt_openpgp needs a recipient key or a passphrase")
        imported = import_key(home, recipient_key)
        code, out, _ = _run(home, [*args, "--encrypt", "--recipient", imported[0]], data)
    if code != 0:
        raise DecryptionError("gpg could not encrypt the delivery")
    return out


def open_openpgp(name: str, data: bytes, passphrase: str | None,
                 gnupg_home: Path | None,
                 warnings: list[str] | None = None) -> tuple[str, bytes]:
    """The decrypted member: its name without the ``.gpg`` suffix, and its plaintext."""
    if gnupg_home is None:
        raise MediaError(f"{name}: OpenPGP-encrypted, but no GnuPG home was given")
    plain = decrypt_openpgp(data, gnupg_home, passphrase, name, warnings)
    inner = name
    for suffix in (".gpg", ".pgp", ".asc"):
        if inner.lower().endswith(suffix):
            inner = inner[: -len(suffix)]
            break
    return (inner if inner != name else name + ".decrypted"), plain
