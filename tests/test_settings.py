"""Settings: one object, the documented precedence, the limits configured in one place.

Precedence, highest first: argument > environment variable > ``$INGEST_HOME/config.toml``
> default. Each limit of :class:`ingest.settings.Limits` is a setting of its own
(``INGEST_MAX_EXPANDED_BYTES``, ...), and what is configured is what the media stage uses.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from ingest.errors import UsageError
from ingest.settings import Limits, Settings, load_settings
from ingest.synth import generate, to_delimited
from ingest.synth.packaging import make_zip

from conftest import DELIVERY_DATE, ROOT

LIMIT_FIELDS = [f.name for f in dataclasses.fields(Limits)]
# a value for each limit unlike its default, one for the config file and one for the
# environment, written as text the way a user writes them
CONFIGURED = {"max_expanded_bytes": ("1048576", "2097152"),
              "max_expansion_ratio": ("50.5", "75.0"),
              "max_nesting": ("2", "3"),
              "max_members": ("10", "20"),
              "max_quarantine_share": ("0.2", "0.3")}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for var in list(os.environ):
        if var.startswith("INGEST_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("INGEST_HOME", str(tmp_path))
    return tmp_path


def _value(settings: Settings, key: str) -> object:
    return getattr(settings.limits if key in LIMIT_FIELDS else settings, key)


def test_the_defaults_are_the_documented_ones(clean_env: Path) -> None:
    settings = load_settings()
    assert settings.home == clean_env.resolve()
    assert settings.max_quarantine_share == 0.05
    assert settings.limits == Limits()
    assert settings.limits.max_expanded_bytes == 16 * 2**30  # README: 16 GiB
    assert (settings.limits.max_expansion_ratio, settings.limits.max_nesting,
            settings.limits.max_members) == (1000.0, 6, 100_000)


def test_every_limit_is_a_setting_of_its_own() -> None:
    # a limit added to Limits is configurable by the same rule, and tested here
    assert sorted(CONFIGURED) == sorted([*LIMIT_FIELDS, "max_quarantine_share"])
    assert not {f.name for f in dataclasses.fields(Settings)} & set(LIMIT_FIELDS)


@pytest.mark.parametrize("key", sorted(CONFIGURED))
def test_argument_over_environment_over_config_file_over_default(
        clean_env: Path, monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    in_file, in_env = CONFIGURED[key]
    default = _value(load_settings(), key)
    kind = type(default)

    (clean_env / "config.toml").write_text(f"{key} = {in_file}\n")
    assert _value(load_settings(), key) == kind(in_file) != default

    monkeypatch.setenv(f"INGEST_{key.upper()}", in_env)
    assert _value(load_settings(), key) == kind(in_env)

    assert _value(load_settings(**{key: kind(7)}), key) == kind(7)
    others = {k for k in CONFIGURED if k != key}
    assert all(_value(load_settings(), k) == _value(Settings(), k) for k in others)


def test_a_whole_limits_argument_replaces_the_configured_limits(
        clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_MAX_NESTING", "2")
    assert load_settings(limits=Limits(max_members=5)).limits == Limits(max_members=5)
    assert load_settings(limits=Limits(max_members=5), max_nesting=1).limits == Limits(
        max_members=5, max_nesting=1)


@pytest.mark.parametrize(("where", "text"), [("env", "16GiB"), ("env", "2.5"),
                                             ("file", '"lots"'), ("file", "2.5")])
def test_a_value_that_is_not_a_number_names_the_setting(
        clean_env: Path, monkeypatch: pytest.MonkeyPatch, where: str, text: str) -> None:
    if where == "env":
        monkeypatch.setenv("INGEST_MAX_NESTING", text)
        named = "INGEST_MAX_NESTING"
    else:
        (clean_env / "config.toml").write_text(f"max_nesting = {text}\n")
        named = f"max_nesting in {clean_env / 'config.toml'}"
    with pytest.raises(UsageError, match="must be a whole number") as caught:
        load_settings()
    assert str(caught.value).startswith(named)


def test_a_config_file_that_is_not_toml_is_named(clean_env: Path) -> None:
    (clean_env / "config.toml").write_text("max_nesting 3\n")
    with pytest.raises(UsageError, match="is not valid TOML .*line 1"):
        load_settings()


def test_an_unknown_argument_is_refused(clean_env: Path) -> None:
    with pytest.raises(TypeError, match="max_nestin"):
        load_settings(max_nestin=3)


def test_media_uses_the_one_limits_type() -> None:
    from ingest.media import Limits as MediaLimits
    from ingest.media._base import OpenContext

    assert MediaLimits is Limits
    assert OpenContext().limits == Settings().limits


@pytest.mark.parametrize(("var", "value", "words"), [
    ("INGEST_MAX_NESTING", "0", "nested deeper than 0 levels"),
    ("INGEST_MAX_EXPANDED_BYTES", "1000", "1000 bytes"),
])
def test_a_limit_set_in_the_environment_stops_a_run(home: Path, tmp_path: Path, var: str,
                                                    value: str, words: str) -> None:
    frame, _ = generate(200, seed=3, delivery_date=DELIVERY_DATE)
    (tmp_path / "d.zip").write_bytes(make_zip({"cases.csv": to_delimited(frame)}))
    env = {**os.environ, "INGEST_HOME": str(home)}

    def run(**extra: str) -> subprocess.CompletedProcess[str]:
        out = tmp_path / f"out-{len(extra)}"
        return subprocess.run([str(ROOT / ".venv" / "bin" / "ingest"), "run",
                               str(tmp_path / "d.zip"), "--out", str(out), "--no-prefect",
                               "--delivery-date", DELIVERY_DATE.isoformat()],
                              env={**env, **extra}, capture_output=True, text=True,
                              check=False, timeout=300)

    refused = run(**{var: value})
    assert refused.returncode == 3, refused.stderr
    assert words in refused.stderr.strip().splitlines()[-1]
    accepted = run()
    assert accepted.returncode == 0, accepted.stderr
