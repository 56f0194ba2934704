"""Secrets for this process only, and where they come from.

A passphrase is never a function argument that an orchestrator could record:
the CLI resolves it once (file > environment > prompt) and parks it here; the
stages fetch it when they need it.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

from ..errors import KeyringError

PASSPHRASE_ENV = "INGEST_PASSPHRASE"
_session: dict[str, str] = {}


def read_passphrase_file(path: str | Path) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise KeyringError(f"cannot read the passphrase file {path}: "
                           f"{exc.strerror or 'unreadable'}") from None
    except UnicodeDecodeError:  # its message would quote a byte of the secret
        raise KeyringError(f"the passphrase file {path} is not UTF-8 text") from None
    value = text.rstrip("\r\n")
    if not value:
        raise KeyringError(f"the passphrase file {path} is empty")
    return value


def resolve_passphrase(file: str | Path | None = None, prompt: bool = False) -> str | None:
    """Passphrase from ``file``, else ``$INGEST_PASSPHRASE``, else a no-echo prompt."""
    if file:
        return read_passphrase_file(file)
    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV]
    if prompt:
        return getpass.getpass("Passphrase: ") or None
    return None


def set_passphrase(value: str | None) -> None:
    if value is None:
        _session.pop("passphrase", None)
    else:
        _session["passphrase"] = value


def set_keyring_passphrase(value: str | None) -> None:
    if value is None:
        _session.pop("keyring", None)
    else:
        _session["keyring"] = value


def keyring_passphrase() -> str | None:
    return _session.get("keyring")


def passphrase() -> str | None:
    """The passphrase set for this process, or the environment's."""
    return _session.get("passphrase") or os.environ.get(PASSPHRASE_ENV) or None
