"""Finding a schema: a path, a module, INGEST_SCHEMA_PATH, an entry point; the order
between them, the errors, and what the manifest records of the schema that ran."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest import catalog
from ingest.errors import UsageError
from ingest.schema import Dataset, load_dataset

ROOT = Path(__file__).resolve().parents[1]


def tiny(version: str, name: str = "tiny") -> str:
    """A schema module's source; its version says which copy was loaded."""
    return f'''
from dataclasses import dataclass

import pandera.polars as pa

from ingest.schema import Column, Dataset


@dataclass(frozen=True)
class Marker:  # a dataclass needs its module in sys.modules while it is made
    where: str


MARKER = Marker({version!r})
DATASET = Dataset({name!r}, {version!r}, (Column("A", "a", "string"),),
                  rules=lambda when: pa.DataFrameSchema({{"a": pa.Column(str)}}))
'''


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(catalog.ENV, raising=False)
    # Python as a user runs it writes bytecode beside what it imports (this
    # machine's environment may say otherwise): loading a schema must not
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:  # modules the test made importable
        if name.startswith(("acme", "ingest_schema_", "userpkg")):
            del sys.modules[name]


def write(folder: Path, name: str, source: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(source)
    return path


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# -- each way ------------------------------------------------------------------------

def test_a_shipped_name_and_its_module_name(clean_env: None) -> None:
    by_name = load_dataset("reference")
    assert by_name.name == "reference"
    assert load_dataset("schemas.reference") is by_name
    source = (ROOT / "schemas" / "reference.py").read_bytes()
    record = catalog.describe(by_name)
    assert record == {"name": "reference", "version": by_name.version,
                      "source": "module schemas.reference",
                      "sha256": hashlib.sha256(source).hexdigest()}


def test_a_module_of_the_users_own_package(clean_env: None, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "userpkg", "__init__.py", "")
    mod = write(tmp_path / "userpkg", "cases.py", tiny("pkg"))
    monkeypatch.syspath_prepend(str(tmp_path))
    dataset = load_dataset("userpkg.cases")
    assert isinstance(dataset, Dataset) and dataset.version == "pkg"
    origin = catalog.origin_of(dataset)
    assert origin is not None and origin.how == "module" and origin.module == "userpkg.cases"
    assert origin.sha256 == hashlib.sha256(mod.read_bytes()).hexdigest()
    assert "__pycache__" not in listing(tmp_path / "userpkg")
    assert sys.dont_write_bytecode is False  # the interpreter's setting is put back


def test_a_path_absolute_or_relative_writes_no_bytecode(clean_env: None, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    file = write(tmp_path / "mine", "cases.py", tiny("file"))
    before = listing(tmp_path)
    dataset = load_dataset(str(file))
    assert dataset.version == "file"
    monkeypatch.chdir(tmp_path)
    assert load_dataset("mine/cases.py") is dataset  # the same file, unchanged: loaded once
    assert listing(tmp_path) == before  # no __pycache__ beside a user's schema
    record = catalog.describe(dataset)
    assert record["sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    assert record["source"] == "file cases.py"  # no folder of the user's in the manifest
    # the hash is of the bytes that ran: an edited file is loaded again, as edited
    file.write_text(tiny("edited"))
    edited = load_dataset(str(file))
    assert edited.version == "edited"
    assert catalog.describe(edited)["sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()


def test_a_path_is_made_absolute_for_a_flow_run(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert catalog.absolute("mine/cases.py") == str(tmp_path / "mine" / "cases.py")
    assert catalog.absolute("cases.py") == str(tmp_path / "cases.py")
    assert catalog.absolute("reference") == "reference"
    assert catalog.absolute("acme.cases") == "acme.cases"


def test_a_name_on_ingest_schema_path_first_folder_wins(clean_env: None, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    write(second, "cases.py", tiny("second"))
    write(first, "other.py", tiny("other"))
    monkeypatch.setenv(catalog.ENV, os.pathsep.join([str(first), str(second)]))
    assert load_dataset("cases").version == "second"
    write(first, "cases.py", tiny("first"))
    assert load_dataset("cases").version == "first"
    assert catalog.origin_of(load_dataset("cases")).how == "schema-path"  # type: ignore[union-attr]
    assert "__pycache__" not in listing(tmp_path)


def _dist_info(site: Path, dist: str, points: dict[str, str]) -> None:
    """An installed distribution as importlib.metadata sees one: a dist-info folder
    with METADATA and entry_points.txt on sys.path."""
    info = site / f"{dist}-1.0.dist-info"
    write(info, "METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    write(info, "entry_points.txt", "[ingest.schemas]\n"
          + "".join(f"{k} = {v}\n" for k, v in points.items()))


def test_an_entry_point(clean_env: None, tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    write(site, "acme_cases.py", tiny("entry"))
    write(site, "acme_lookups.py", tiny("object", "lookups"))
    _dist_info(site, "acme_schemas", {"cases": "acme_cases",
                                      "lookups": "acme_lookups:DATASET"})
    monkeypatch.syspath_prepend(str(site))
    dataset = load_dataset("cases")
    assert dataset.version == "entry"
    origin = catalog.origin_of(dataset)
    assert origin is not None and origin.how == "entry-point"
    assert origin.sha256 == hashlib.sha256((site / "acme_cases.py").read_bytes()).hexdigest()
    assert load_dataset("lookups").version == "object"  # module:attribute
    assert "__pycache__" not in listing(site)


# -- the order -----------------------------------------------------------------------

def test_a_path_is_only_a_path(clean_env: None, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """``reference.py`` is a file, never the shipped schema of that name."""
    write(tmp_path, "reference.py", tiny("mine", "reference"))
    monkeypatch.chdir(tmp_path)
    assert load_dataset("reference.py").version == "mine"
    assert load_dataset("./reference.py").version == "mine"
    assert load_dataset("reference").version != "mine"  # the shipped one
    with pytest.raises(UsageError, match="no schema file"):
        load_dataset("elsewhere/reference.py")


def test_a_dotted_name_is_only_a_module(clean_env: None, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "acme.py", tiny("folder"))
    monkeypatch.setenv(catalog.ENV, str(tmp_path))
    with pytest.raises(UsageError, match="no schema module 'acme.cases'"):
        load_dataset("acme.cases")


@pytest.mark.parametrize("where", ["schema-path", "entry-point"])
def test_a_bare_name_held_by_two_places_is_refused(clean_env: None, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   where: str) -> None:
    """``reference`` shipped with ingest and ``reference`` from the environment:
    which rules a delivery passes must not depend on the environment silently."""
    if where == "schema-path":
        write(tmp_path, "reference.py", tiny("shadow", "reference"))
        monkeypatch.setenv(catalog.ENV, str(tmp_path))
    else:
        write(tmp_path, "acme_shadow.py", tiny("shadow", "reference"))
        _dist_info(tmp_path, "acme_shadow", {"reference": "acme_shadow"})
        monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UsageError) as err:
        load_dataset("reference")
    message = str(err.value)
    assert "more than one place" in message and "schemas/reference.py" in message
    assert ("reference.py" if where == "schema-path" else "entry point") in message
    # either one is still reachable by the spec that names it alone
    assert load_dataset("schemas.reference").version != "shadow"
    chosen = str(tmp_path / ("reference.py" if where == "schema-path" else "acme_shadow.py"))
    assert load_dataset(chosen).version == "shadow"


def test_a_folder_and_an_entry_point_holding_one_name_are_refused(
        clean_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "folder", "cases.py", tiny("folder"))
    write(tmp_path / "site", "acme_two.py", tiny("entry"))
    _dist_info(tmp_path / "site", "acme_two", {"cases": "acme_two"})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv(catalog.ENV, str(tmp_path / "folder"))
    with pytest.raises(UsageError, match="more than one place"):
        load_dataset("cases")


# -- errors --------------------------------------------------------------------------

def test_an_unknown_name_says_where_it_looked(clean_env: None, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError) as err:
        load_dataset("nosuch")
    message = str(err.value)
    for place in ("schemas/nosuch.py", "INGEST_SCHEMA_PATH (not set)",
                  "entry point 'nosuch' of group ingest.schemas"):
        assert place in message
    monkeypatch.setenv(catalog.ENV, os.pathsep.join([str(tmp_path / "a"),
                                                     str(tmp_path / "b")]))
    with pytest.raises(UsageError) as err:
        load_dataset("nosuch")
    assert f"nosuch.py in INGEST_SCHEMA_PATH ({tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'})" \
        in str(err.value)


@pytest.mark.parametrize(("source", "expected"), [
    ("import acme_not_installed\n", "failed to load: ModuleNotFoundError"),
    ("x = (\n", "failed to load (line 1): SyntaxError"),
    ("raise RuntimeError('broken on purpose')\n", "failed to load: RuntimeError"),
    ("VALUE = 1\n", "defines no DATASET"),
    ("DATASET = 'reference'\n", "DATASET is a str, not an ingest.schema.Dataset"),
])
def test_a_broken_schema_is_our_usage_error(clean_env: None, tmp_path: Path, source: str,
                                            expected: str) -> None:
    file = write(tmp_path, "broken.py", source)
    with pytest.raises(UsageError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load_dataset(str(file))


def test_bad_specs(clean_env: None, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no schema module 'acme_missing.cases'"):
        load_dataset("acme_missing.cases")
    with pytest.raises(UsageError, match="neither a module name"):
        load_dataset("acme.9cases")
    with pytest.raises(UsageError, match="not a schema name"):
        load_dataset("ca-ses")
    with pytest.raises(UsageError, match="empty"):
        load_dataset(" ")
    write(tmp_path, "notes.txt", "")
    with pytest.raises(UsageError, match="ending in .py"):
        load_dataset(str(tmp_path / "notes.txt"))


def test_the_cli_reports_an_unknown_schema_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "ingest.cli", "inspect", str(tmp_path),
                           "--schema", "nosuch"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "INGEST_HOME": str(tmp_path)})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "INGEST_SCHEMA_PATH" in done.stderr


# -- the manifest --------------------------------------------------------------------

def test_the_manifest_records_the_schema_that_ran(home: Path, tmp_path: Path, pgp_delivery,
                                                  monkeypatch, capsys) -> None:  # noqa: ANN001
    """A run with a schema given as a path records its name, version and the SHA-256
    of that file; ingest verify and ingest status read such a manifest."""
    from ingest.synth import generate

    frame, truth = generate(300, seed=3)
    delivery, _ = pgp_delivery(frame, truth)
    source = (ROOT / "schemas" / "reference.py").read_text().replace(
        'version="1"', 'version="7-local"')
    schema = write(tmp_path / "own", "my_reference.py", source)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "ingest.cli", "run", str(delivery),
                           "--schema", "own/my_reference.py", "--out", str(out),
                           "--no-prefect", "--json"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    manifest = json.loads((Path(summary["output_dir"]) / "manifest.json").read_text())
    assert manifest["schema"] == {
        "name": "reference", "version": "7-local", "source": "file my_reference.py",
        "sha256": hashlib.sha256(schema.read_bytes()).hexdigest()}
    assert listing(tmp_path / "own") == ["my_reference.py"]
    from ingest.cli import main

    capsys.readouterr()
    assert main(["verify", str(out)]) == 0
    assert "outputs verified" in capsys.readouterr().out
    assert main(["status", "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["schema"] == "reference"


def test_the_flow_takes_the_same_spec(home: Path, tmp_path: Path, pgp_delivery) -> None:  # noqa: ANN001
    """``ingest run`` through the Prefect flow (the managed local server) with a
    relative path: the CLI hands the flow an absolute one, so a flow run started
    in another folder (a worker's) finds the same file."""
    from ingest.cli import _parser
    from ingest.synth import generate

    frame, truth = generate(200, seed=5)
    delivery, _ = pgp_delivery(frame, truth)
    schema = write(tmp_path / "own", "flow_reference.py",
                   (ROOT / "schemas" / "reference.py").read_text())
    parsed = _parser().parse_args(["run", "d", "--out", "o", "--schema", "flow_reference.py"])
    given = parsed.schema if isinstance(parsed.schema, list) else [parsed.schema]
    assert given == [str(Path.cwd() / "flow_reference.py")]  # made absolute
    env = {**os.environ, "INGEST_HOME": str(home)}
    try:
        done = subprocess.run([sys.executable, "-m", "ingest.cli", "run", str(delivery),
                               "--schema", "flow_reference.py", "--out",
                               str(tmp_path / "out"), "--json"], capture_output=True,
                              text=True, timeout=600, env=env, cwd=schema.parent)
    finally:
        subprocess.run([sys.executable, "-m", "ingest.cli", "server", "stop"], env=env,
                       capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((Path(json.loads(done.stdout)["output_dir"]) / "manifest.json")
                          .read_text())
    assert manifest["schema"]["source"] == "file flow_reference.py"
    assert manifest["schema"]["sha256"] == hashlib.sha256(schema.read_bytes()).hexdigest()
