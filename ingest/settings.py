"""One typed settings object.

Precedence, highest first: an explicit argument (a CLI flag) > an environment
variable > the config file ``$INGEST_HOME/config.toml`` > the default below.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

import platformdirs


def default_home() -> Path:
    return Path(platformdirs.user_data_dir("ingest", appauthor=False))


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=default_home)
    """Keyring, GnuPG home, Prefect home, audit log. Env: INGEST_HOME."""
    max_quarantine_share: float = 0.05
    """A delivery with a larger share of rejected rows is rejected whole.
    Env: INGEST_MAX_QUARANTINE_SHARE."""
    max_expanded_bytes: int = 16 * 2**30
    """Refuse containers that expand beyond this (decompression bombs).
    Env: INGEST_MAX_EXPANDED_BYTES."""
    max_expansion_ratio: float = 1000.0
    """Refuse a member whose expansion ratio exceeds this. Env: INGEST_MAX_EXPANSION_RATIO."""
    max_nesting: int = 6
    """Containers nested deeper than this are refused."""

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def gnupg_home(self) -> Path:
        return self.home / "gnupg"

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"

    @property
    def audit_log(self) -> Path:
        return self.home / "audit.log"


_ENV = {
    "home": ("INGEST_HOME", Path),
    "max_quarantine_share": ("INGEST_MAX_QUARANTINE_SHARE", float),
    "max_expanded_bytes": ("INGEST_MAX_EXPANDED_BYTES", int),
    "max_expansion_ratio": ("INGEST_MAX_EXPANSION_RATIO", float),
    "max_nesting": ("INGEST_MAX_NESTING", int),
}


def load_settings(**overrides: object) -> Settings:
    """Settings from defaults < config file < environment < ``overrides`` (non-None)."""
    env_home = os.environ.get("INGEST_HOME")
    given = overrides.get("home")
    home = Path(str(given)) if given else (
        Path(env_home) if env_home else default_home())
    values: dict[str, object] = {"home": home.expanduser().resolve()}
    config = home / "config.toml"
    if config.is_file():
        with config.open("rb") as fh:
            for key, value in tomllib.load(fh).items():
                if key in _ENV and key != "home":
                    values[key] = _ENV[key][1](value)
    for key, (var, kind) in _ENV.items():
        if key != "home" and var in os.environ:
            values[key] = kind(os.environ[var])
    for key, value in overrides.items():
        if value is not None and key != "home":
            values[key] = value
    return replace(Settings(), **values)  # type: ignore[arg-type]
