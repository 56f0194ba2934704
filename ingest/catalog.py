"""Where a dataset schema comes from: ``--schema SPEC`` to the module defining it.

A spec is resolved in this order, and the first rule that applies decides:

1. **A path** (it contains ``/`` or ends in ``.py``): that file, and nothing else.
   ``--schema ./cases.py``, ``--schema /srv/schemas/cases.py``.
2. **A dotted module name** (``pkg.mod``): that importable module, and nothing else.
   ``--schema acme_schemas.cases``, ``--schema schemas.reference``.
3. **A bare name** (``cases``) is looked for in three places:

   - ``schemas/<name>.py`` in this package (the schemas shipped with ingest);
   - ``<name>.py`` in the folders of ``INGEST_SCHEMA_PATH`` (separated by
     ``os.pathsep``; the first folder holding it wins, as on ``PATH``);
   - the entry point ``<name>`` of the group ``ingest.schemas`` of an installed
     distribution (``[project.entry-points."ingest.schemas"] cases = "acme.cases"``).

   A top-level module of one's own is given by its path, or made reachable
   under a dotted name or an entry point: a bare name never imports an
   arbitrary module (``--schema os``).

   Exactly one of the three may hold the name. If two do, the run stops and
   names both: which rules a confidential delivery passes must never depend on
   an environment variable or on which packages happen to be installed. Give the
   path or the module name to choose.

A name found nowhere gives one error listing every place looked in.

The module must define ``DATASET`` (an entry point may also name the object
itself, ``"acme.cases:DATASET"``). What :func:`describe` records in the manifest:
the dataset's name and version, where it came from, and the SHA-256 of the
source file that was run.

Loading a schema never writes bytecode (``__pycache__``) beside it: a schema
file is compiled from the very bytes that were hashed, so the hash names what
ran and not a stale cache, and a schema kept with a user's own project, perhaps
in a read-only or version-controlled folder, is left exactly as it was. Modules
are imported with ``sys.dont_write_bytecode`` set for the same reason.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import UsageError

ENV = "INGEST_SCHEMA_PATH"
GROUP = "ingest.schemas"
SHIPPED = "schemas"


@dataclass(frozen=True)
class Origin:
    """Where a schema was found, and the fingerprint of its source."""

    spec: str
    """The spec as given."""
    how: str
    """``path``, ``module``, ``shipped``, ``schema-path`` or ``entry-point``."""
    module: str
    """The module's name (a file's is ``ingest_schema_<sha256 prefix>``)."""
    file: str | None
    """The source file that was run (None: the module has no source file)."""
    sha256: str | None


@dataclass(frozen=True)
class Found:
    value: Any
    """What the module defines as ``DATASET`` (or the entry point's object)."""
    origin: Origin


_lock = threading.Lock()
_origins: dict[int, tuple[Any, Origin]] = {}
"""id(dataset) -> (dataset, origin); the dataset is held so its id stays its own."""


def is_path(spec: str) -> bool:
    return "/" in spec or os.sep in spec or spec.endswith(".py")


def absolute(spec: str) -> str:
    """The spec, a path made absolute: it then means the same file to a flow run
    started in another folder (a Prefect worker on this machine)."""
    return str(Path(spec).expanduser().resolve()) if is_path(spec) else spec


def find(spec: str) -> Found:
    """The ``DATASET`` value of the schema ``spec`` names (see the module docstring)."""
    spec = spec.strip()
    if not spec:
        raise UsageError("an empty --schema: give a schema name, a module name or a .py file")
    if is_path(spec):
        found = _from_file(Path(spec).expanduser(), spec, "path")
    elif "." in spec:
        if not all(part.isidentifier() for part in spec.split(".")):
            raise UsageError(f"'{spec}' is neither a module name (pkg.mod), nor a schema "
                             "name, nor a path to a .py file")
        found = _from_module(spec, spec, "module")
    else:
        found = _from_name(spec)
    with _lock:
        _origins[id(found.value)] = (found.value, found.origin)
    return found


def origin_of(dataset: Any) -> Origin | None:
    """Where ``dataset`` was loaded from; for one built in Python and handed over
    directly, the module defining it as ``DATASET`` if any (else None)."""
    with _lock:
        known = _origins.get(id(dataset))
    if known is not None and known[0] is dataset:
        return known[1]
    for name, module in list(sys.modules.items()):
        if getattr(module, "DATASET", None) is dataset:
            file = getattr(module, "__file__", None)
            return Origin(name, "module", name, file, _sha256_of(file))
    return None


def describe(dataset: Any) -> dict[str, Any]:
    """The manifest's ``schema`` entry: name, version, where from, source SHA-256."""
    origin = origin_of(dataset)
    return {"name": dataset.name, "version": dataset.version,
            "source": _shown(origin) if origin else None,
            "sha256": origin.sha256 if origin else None}


def _shown(origin: Origin) -> str:
    """The origin without the folders of a user's file (the manifest travels)."""
    if origin.how in ("path", "schema-path") and origin.file:
        return f"file {Path(origin.file).name}"
    if origin.how == "entry-point":
        return f"entry point {origin.spec} ({origin.module})"
    return f"module {origin.module}"


# -- the three ways ------------------------------------------------------------------

def _from_name(name: str) -> Found:
    if not name.isidentifier():
        raise UsageError(f"'{name}' is not a schema name (letters, digits and _), a module "
                         "name (pkg.mod) or a path to a .py file")
    candidates: list[tuple[str, Any]] = []
    looked: list[str] = []

    shipped = f"{SHIPPED}.{name}"
    looked.append(f"{SHIPPED}/{name}.py of ingest")
    if _module_exists(shipped):
        candidates.append((f"{SHIPPED}/{name}.py of ingest",
                           lambda: _from_module(shipped, name, "shipped")))

    folders = [f for f in os.environ.get(ENV, "").split(os.pathsep) if f]
    if folders:
        looked.append(f"{name}.py in {ENV} ({os.pathsep.join(folders)})")
    else:
        looked.append(f"{ENV} (not set)")
    for folder in folders:
        file = Path(folder).expanduser() / f"{name}.py"
        if file.is_file():
            candidates.append((str(file), lambda f=file: _from_file(f, name, "schema-path")))
            break

    points = [ep for ep in importlib.metadata.entry_points(group=GROUP) if ep.name == name]
    looked.append(f"entry point '{name}' of group {GROUP}")
    if len(points) > 1:
        raise UsageError(f"schema '{name}': several installed distributions define entry "
                         f"point '{name}' of group {GROUP} ("
                         + ", ".join(ep.value for ep in points)
                         + "); give the module name instead")
    if points:
        candidates.append((f"entry point '{name}' ({points[0].value})",
                           lambda: _from_entry_point(points[0], name)))

    if not candidates:
        raise UsageError(f"no schema '{name}': looked for " + "; ".join(looked)
                         + ". Give a path to a .py file, a module name (pkg.mod), or put "
                         f"{name}.py in a folder listed in {ENV}")
    if len(candidates) > 1:
        raise UsageError(f"schema '{name}' is defined in more than one place: "
                         + " and ".join(where for where, _ in candidates)
                         + "; give the path of the .py file or the module name to choose")
    return candidates[0][1]()


def _from_file(path: Path, spec: str, how: str) -> Found:
    if not path.is_file():
        raise UsageError(f"no schema file {path}: give the path of a .py file defining "
                         "DATASET")
    if path.suffix != ".py":
        raise UsageError(f"{path}: a schema file is Python source ending in .py")
    source = path.read_bytes()
    sha = hashlib.sha256(source).hexdigest()
    resolved = path.resolve()
    name = f"ingest_schema_{sha[:16]}"
    with _lock:
        module = sys.modules.get(name)
    if module is None or getattr(module, "__file__", None) != str(resolved):
        module = ModuleType(name)
        module.__file__ = str(resolved)
        # registered before it runs: dataclasses and pandera models look their
        # module up in sys.modules while the class bodies execute
        sys.modules[name] = module
        try:
            code = compile(source, str(resolved), "exec", dont_inherit=True)
            exec(code, module.__dict__)  # noqa: S102 - the user's own schema, by design
        except Exception as exc:  # noqa: BLE001 - the schema's own failure, as ours
            sys.modules.pop(name, None)
            raise _failed(str(path), exc) from None
    origin = Origin(spec, how, name, str(resolved), sha)
    return Found(_dataset_of(module, str(path)), origin)


def _from_module(module_name: str, spec: str, how: str) -> Found:
    module = _import(module_name)
    file = getattr(module, "__file__", None)
    origin = Origin(spec, how, module_name, file, _sha256_of(file))
    return Found(_dataset_of(module, module_name), origin)


def _from_entry_point(point: importlib.metadata.EntryPoint, name: str) -> Found:
    module = _import(point.module)
    value: Any = module
    for attr in (point.attr or "").split("."):
        if attr:
            value = getattr(value, attr, None)
    if isinstance(value, ModuleType):
        value = _dataset_of(value, point.value)
    if value is None:
        raise UsageError(f"entry point '{name}' of group {GROUP} names {point.value}, "
                         "which does not exist")
    file = getattr(module, "__file__", None)
    return Found(value, Origin(name, "entry-point", point.module, file, _sha256_of(file)))


# -- helpers ---------------------------------------------------------------------------

def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _import(name: str) -> ModuleType:
    before = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise UsageError(f"no schema module '{name}': it is not importable from this "
                             "Python (check the name, or install the package that holds "
                             "it)") from None
        raise _failed(name, exc) from None
    except Exception as exc:  # noqa: BLE001 - the schema's own failure, reported as ours
        raise _failed(name, exc) from None
    finally:
        sys.dont_write_bytecode = before


def _failed(where: str, exc: BaseException) -> UsageError:
    """A schema that fails to load. Its source is the schema's author's own code,
    never delivery data, so the error's own text is shown."""
    line = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) and exc.lineno else ""
    return UsageError(f"schema {where} failed to load{line}: {type(exc).__name__}: {exc}")


def _dataset_of(module: ModuleType, where: str) -> Any:
    value = getattr(module, "DATASET", None)
    if value is None:  # a bundle: the tables of one delivery (ingest.pipeline.datasets_of)
        value = getattr(module, "DATASETS", None)
    if value is None:
        raise UsageError(f"schema {where} defines no DATASET (nor DATASETS, a bundle)")
    return value


def _sha256_of(file: str | None) -> str | None:
    if not file or not file.endswith(".py"):
        return None
    try:
        return hashlib.sha256(Path(file).read_bytes()).hexdigest()
    except OSError:
        return None
