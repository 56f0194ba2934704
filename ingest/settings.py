"""One typed settings object.

Precedence, highest first: an explicit argument (a CLI flag) > an environment
variable > the config file ``$INGEST_HOME/config.toml`` > the default below.

Every field of :class:`Settings` but ``home``, and every field of its
:class:`Limits`, is read from ``INGEST_<FIELD NAME>`` in the environment and from
``<field name> = ...`` at the top level of the config file
(``INGEST_MAX_EXPANDED_BYTES``, ``max_expanded_bytes = 17179869184``).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import platformdirs

from .errors import UsageError


def default_home() -> Path:
    return Path(platformdirs.user_data_dir("ingest", appauthor=False))


@dataclass(frozen=True)
class Limits:
    """Bounds that stop hostile containers (bombs, deep nesting)."""

    max_expanded_bytes: int = 16 * 2**30
    """Refuse a delivery that expands beyond this in all (decompression bombs).
    Env: INGEST_MAX_EXPANDED_BYTES."""
    max_expansion_ratio: float = 1000.0
    """Refuse a member whose expansion ratio exceeds this. Env: INGEST_MAX_EXPANSION_RATIO."""
    max_nesting: int = 6
    """Containers nested deeper than this are refused. Env: INGEST_MAX_NESTING."""
    max_members: int = 100_000
    """Refuse a container holding more entries than this. Env: INGEST_MAX_MEMBERS."""


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=default_home)
    """Keyring, GnuPG home, Prefect home, audit log. Env: INGEST_HOME."""
    max_quarantine_share: float = 0.05
    """A delivery with a larger share of rejected rows is rejected whole.
    Env: INGEST_MAX_QUARANTINE_SHARE."""
    tool_stall_seconds: float = 300.0
    """A child tool (gpg, 7-Zip, mdbtools) whose output has not moved for this long is stopped
    and the run fails naming it; 0: never. Env: INGEST_TOOL_STALL_SECONDS."""
    prefect_database: str = ""
    """The database of the Prefect server ``ingest`` manages: a PostgreSQL URL
    (``postgresql+asyncpg://USER@HOST:PORT/DATABASE``) with no password in it (the
    password comes from a libpq password file, ``~/.pgpass`` or ``PGPASSFILE``, or
    ``PGPASSWORD``); empty: SQLite under the Prefect home. Env: INGEST_PREFECT_DATABASE."""
    stream_above_bytes: int = 256 * 2**20
    """A CSV, TSV or fixed-width delivery file larger than this is read, validated and
    written in record batches, in bounded memory (0: always). Env: INGEST_STREAM_ABOVE_BYTES."""
    stream_batch_bytes: int = 16 * 2**20
    """Plaintext bytes per record batch when streaming. Env: INGEST_STREAM_BATCH_BYTES."""
    limits: Limits = field(default_factory=Limits)
    """What a delivery's containers may expand to; each field is its own setting."""

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


# the kind of each setting read from text: its default's type
_OWN: dict[str, type] = {f.name: type(f.default) for f in fields(Settings)
                         if f.name not in ("home", "limits")}
_LIMITS: dict[str, type] = {f.name: type(f.default) for f in fields(Limits)}


def _parse(key: str, raw: object, where: str) -> int | float | str:
    kind = {**_OWN, **_LIMITS}[key]
    if kind is str:
        if not isinstance(raw, str):
            raise UsageError(f"{where} must be text (in quotes); correct it, or remove it "
                             "for the default")
        return raw.strip()
    whole = not isinstance(raw, float) or raw.is_integer()
    try:
        if isinstance(raw, bool) or (kind is int and not whole):
            raise ValueError
        value: int | float = kind(raw)
        return value
    except (TypeError, ValueError):
        raise UsageError(f"{where} must be {'a whole number' if kind is int else 'a number'}; "
                         "correct it, or remove it for the default") from None


def load_settings(**overrides: Any) -> Settings:
    """Settings from defaults < config file < environment < ``overrides`` (non-None).

    ``overrides`` are field names of :class:`Settings` or of :class:`Limits`
    (``max_nesting=3``), or ``limits=`` a whole :class:`Limits` (which replaces the
    configured limits; a limit's own field name given beside it wins over it).
    """
    env_home = os.environ.get("INGEST_HOME")
    given = overrides.get("home")
    home = Path(str(given)) if given else (
        Path(env_home) if env_home else default_home())
    values: dict[str, Any] = {}
    config = home / "config.toml"
    if config.is_file():
        with config.open("rb") as fh:
            try:
                configured = tomllib.load(fh)
            except tomllib.TOMLDecodeError as exc:
                # the parser's message gives a position, never the text found there
                raise UsageError(f"{config} is not valid TOML ({exc}); correct it") from None
        for key, raw in configured.items():
            if key in _OWN or key in _LIMITS:
                values[key] = _parse(key, raw, f"{key} in {config}")
    for key in (*_OWN, *_LIMITS):
        var = f"INGEST_{key.upper()}"
        if var in os.environ:
            values[key] = _parse(key, os.environ[var], var)
    limits = replace(Limits(), **{k: v for k, v in values.items() if k in _LIMITS})
    if overrides.get("limits") is not None:
        limits = overrides["limits"]
    for key, value in overrides.items():
        if key in ("home", "limits") or value is None:
            continue
        if key in _LIMITS:
            limits = replace(limits, **{key: value})
        elif key in _OWN:
            values[key] = value
        else:
            raise TypeError(f"load_settings() got an unexpected setting {key!r}")
    own = {k: v for k, v in values.items() if k in _OWN}
    return Settings(home=home.expanduser().resolve(), limits=limits, **own)


def stall_seconds() -> float | None:
    """How long a child tool may make no progress before it is stopped (None: never)."""
    return load_settings().tool_stall_seconds or None
