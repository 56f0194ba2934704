"""Feature outputs, encrypted: ``features.npz.age`` and ``features.json.age``.

Both are standard formats sealed with age (X25519, via pyrage), so a holder of
the identity can also open them without this package::

    age -d -i identity features.npz.age > /encrypted/volume/features.npz
    scipy.sparse.load_npz(...)             # X; y is in the same archive

The npz is streamed into the encryption in memory: no plaintext touches disk.
It uses scipy's own key names for X (``data``, ``indices``, ``indptr``,
``shape``, ``format``), so ``scipy.sparse.load_npz`` reads X directly; the
label is stored beside it as ``y`` (one label) or ``y_data``/``y_indices``/
``y_indptr``/``y_shape`` (several).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import threading
import zipfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyrage
import scipy.sparse as sp

from .._fs import widen_pipe
from ..errors import DecryptionError, OutputError, UsageError
from ..writers.jsonl import encrypt_into
from .encoding import Encoding
from .matrix import FeatureMatrix

NPZ = "features.npz.age"
JSON = "features.json.age"
FORMAT = "ingest-features/1"


def save(fm: FeatureMatrix, recipient: object) -> dict[str, bytes]:
    """The two encrypted outputs, by file name.

    ``recipient`` is an age recipient (``Keyring.age_recipient()``).
    """
    files: dict[str, bytes] = {}

    @contextlib.contextmanager
    def in_memory(name: str) -> Iterator[BinaryIO]:
        sink = io.BytesIO()
        yield sink
        files[name] = sink.getvalue()

    write(fm, recipient, in_memory)
    return files


def write(fm: FeatureMatrix, recipient: object,
          open_sink: Callable[[str], AbstractContextManager[BinaryIO]]) -> None:
    """Write the two encrypted outputs, each into the sink ``open_sink(name)`` gives
    (the publisher's staging file).

    The npz is made in a thread and streamed through a pipe into age's
    encryption: neither the npz nor its ciphertext is ever held whole (at
    millions of rows each is hundreds of MB).
    """
    write_members(list(_arrays(fm).items()), fm.shape, fm.feature_names, fm.class_weight,
                  fm.encoding, recipient, open_sink)


Member = tuple[str, "np.ndarray | tuple[np.dtype, int, Iterator[np.ndarray]]"]
"""An npz member: its name (no ``.npy``) and the array, or its dtype, length and
parts (one-dimensional, written one after the other)."""


def write_members(members: list[Member], shape: tuple[int, int], feature_names: list[str],
                  class_weight: dict[Any, Any], encoding: Encoding, recipient: object,
                  open_sink: Callable[[str], AbstractContextManager[BinaryIO]]) -> None:
    """As :func:`write`, of a matrix given as its npz members: the arrays that
    :func:`write` would save, each whole or in parts (so never held whole)."""
    with open_sink(NPZ) as sink:
        _encrypt_npz(lambda out: _savez(out, members), recipient, sink)
    labels = [lab.name for lab in encoding.labels]
    with open_sink(JSON) as sink:
        sink.write(pyrage.encrypt(_meta(shape, feature_names, labels, class_weight,
                                        encoding), [recipient]))


def _savez(out: BinaryIO, members: list[Member]) -> None:
    """The archive ``np.savez`` makes (stored ``.npy`` members, zip64), its members'
    parts written as they come."""
    with zipfile.ZipFile(out, mode="w", compression=zipfile.ZIP_STORED,
                         allowZip64=True) as archive:
        for name, member in members:
            with archive.open(f"{name}.npy", "w", force_zip64=True) as fid:
                if isinstance(member, np.ndarray):
                    np.lib.format.write_array(fid, member, allow_pickle=False)
                    continue
                dtype, length, parts = member
                np.lib.format.write_array_header_1_0(fid, {
                    "descr": np.lib.format.dtype_to_descr(dtype),
                    "fortran_order": False, "shape": (length,)})
                written = 0
                for part in parts:
                    fid.write(np.ascontiguousarray(part, dtype=dtype).tobytes())
                    written += int(part.size)
                if written != length:
                    raise OutputError(f"features: the {name} array came out with another "
                                      "length than announced; nothing was published")


def _encrypt_npz(produce_npz: Callable[[BinaryIO], None], recipient: object,
                 sink: BinaryIO) -> None:
    read_end, write_end = os.pipe()
    widen_pipe(write_end)
    failed: list[BaseException] = []

    def produce() -> None:
        try:
            with open(write_end, "wb") as out:
                produce_npz(out)
        except BrokenPipeError:
            pass  # the encryption stopped first, and says why
        except BaseException as exc:  # noqa: BLE001 - re-raised by the consumer
            failed.append(exc)

    producer = threading.Thread(target=produce, name="features-npz", daemon=True)
    try:
        producer.start()
    except BaseException:
        os.close(write_end)
        os.close(read_end)
        raise
    try:
        with open(read_end, "rb") as npz:
            encrypt_into(npz, recipient, sink)
    finally:
        producer.join()  # the read end is closed: a blocked write fails and ends it
    if failed:  # the npz is incomplete: its ciphertext must not be published
        # the cause is not chained: like every foreign error here, its text is withheld
        raise OutputError("features: the matrix could not be serialised "
                          f"({type(failed[0]).__name__})") from None


def _arrays(fm: FeatureMatrix) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {
        "format": np.array(b"csr"), "shape": np.array(fm.X.shape, dtype=np.int64),
        "data": fm.X.data, "indices": fm.X.indices, "indptr": fm.X.indptr,
    }
    if isinstance(fm.y, np.ndarray):
        arrays["y"] = fm.y
    elif fm.y is not None:
        y = sp.csr_matrix(fm.y)
        arrays |= {"y_data": y.data, "y_indices": y.indices, "y_indptr": y.indptr,
                   "y_shape": np.array(y.shape, dtype=np.int64)}
    return arrays


def _meta(shape: tuple[int, int], feature_names: list[str], labels: list[str],
          class_weight: dict[Any, Any], encoding: Encoding) -> bytes:
    doc = {
        "format": FORMAT,
        "shape": list(shape),
        "feature_names": feature_names,
        "labels": labels,
        # JSON keys are strings: keep the class values' types as pairs
        "class_weight": _weights_to_json(class_weight, several=len(labels) > 1),
        "encoding": encoding.to_json(),
    }
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


def load(path: str | Path, identity: object | None = None,
         table: str | None = None) -> FeatureMatrix:
    """The feature matrix of one delivery.

    ``path`` is a delivery's output folder, the output root when it holds a
    single delivery, or the ``features.npz.age`` file. Without ``identity`` the
    age identity of the keyring (``INGEST_HOME``) is used. ``table``: that
    table's matrix in a delivery of several (``<table>.features.npz.age``).
    """
    npz_path = _locate(Path(path), f"{table}.{NPZ}" if table else NPZ)
    json_path = npz_path.with_name(npz_path.name.removesuffix(NPZ) + JSON)
    if not json_path.is_file():
        raise UsageError(f"{json_path.parent}: {NPZ} has no {JSON} beside it; both are needed")
    if identity is None:
        from ..keys import Keyring
        from ..settings import load_settings

        identity = Keyring.open(load_settings()).age_identity()
    plain_npz = _decrypt(npz_path, identity)
    doc = json.loads(_decrypt(json_path, identity))
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise OutputError(f"{json_path.name}: not a feature description ({FORMAT})")
    try:
        with np.load(io.BytesIO(plain_npz), allow_pickle=False) as z:
            X = sp.csr_matrix((z["data"], z["indices"], z["indptr"]),
                              shape=tuple(int(v) for v in z["shape"]))
            y: np.ndarray | sp.csr_matrix | None = None
            if "y" in z:
                y = z["y"]
            elif "y_data" in z:
                y = sp.csr_matrix((z["y_data"], z["y_indices"], z["y_indptr"]),
                                  shape=tuple(int(v) for v in z["y_shape"]))
    except (KeyError, ValueError, OSError):
        raise OutputError(f"{npz_path.name}: the archive is incomplete or damaged") from None
    encoding = Encoding.from_json(doc["encoding"])
    names = list(doc["feature_names"])
    if X.shape[1] != len(names) or names != list(encoding.feature_names):
        raise OutputError(f"{npz_path.parent}: {NPZ} and {JSON} do not belong together "
                          "(feature counts differ)")
    weights = _weights_from_json(doc["class_weight"], several=len(doc["labels"]) > 1)
    return FeatureMatrix(X, y, names, weights, encoding)


def _locate(path: Path, npz: str = NPZ) -> Path:
    if path.is_file():
        return path if path.name.endswith(NPZ) else path.with_name(npz)
    if (path / npz).is_file():
        return path / npz
    from ..outputs import output_dirs

    folders = output_dirs(path)
    if len(folders) > 1:
        raise UsageError(f"{path} holds {len(folders)} deliveries; give the folder of one "
                         "(each delivery has its own feature matrix)")
    found = folders[0] / npz
    if not found.is_file():
        several = sorted(p.name.removesuffix(f".{NPZ}") for p in folders[0].glob(f"*.{NPZ}"))
        if several and npz == NPZ:
            raise UsageError(f"{folders[0]}: a delivery of several tables; say which "
                             "table's features: " + ", ".join(several))
        raise UsageError(f"{folders[0]}: no {npz}; this delivery was published without "
                         "these features")
    return found


def _encoding_file(folder: Path, doc: dict[str, Any], table: str | None) -> Path | None:
    if table is not None and (folder / f"{table}.{JSON}").is_file():
        return folder / f"{table}.{JSON}"
    if (folder / JSON).is_file() and (table is None or doc["schema"]["name"] == table):
        return folder / JSON
    return None


def _decrypt(path: Path, identity: object) -> bytes:
    try:
        return pyrage.decrypt(path.read_bytes(), [identity])
    except pyrage.DecryptError:
        raise DecryptionError(f"{path.name}: cannot be decrypted: wrong identity, tampered "
                              "or truncated") from None


def _weights_to_json(weights: dict[Any, Any], several: bool) -> Any:
    if several:
        return {label: [[k, v] for k, v in w.items()] for label, w in weights.items()}
    return [[k, v] for k, v in weights.items()]


def _weights_from_json(doc: Any, several: bool) -> dict[Any, Any]:
    if several:
        return {label: {k: v for k, v in pairs} for label, pairs in doc.items()}
    return {k: v for k, v in doc}


def latest_encoding(root: str | Path, identity: object, exclude: str | None = None,
                    table: str | None = None) -> Encoding | None:
    """The encoding of the most recent earlier delivery under ``root``, if any.

    Reusing it keeps the feature columns of every delivery aligned: a category
    first seen later goes to its column's unseen bucket instead of shifting columns.
    ``table``: that table's encoding, from a delivery of several tables
    (``<table>.features.json.age``) or of that table alone.
    """
    from ..outputs import manifest

    root = Path(root)
    if not root.is_dir():
        return None
    earlier = []
    for folder in root.iterdir():
        if folder.name == exclude or folder.name.startswith("."):
            continue
        try:
            doc = manifest(folder)
            file = _encoding_file(folder, doc, table)
            if file is not None:
                earlier.append((doc["run"]["finished"], str(file)))
        except (OSError, KeyError, ValueError, TypeError):
            continue
    if not earlier:
        return None
    doc = json.loads(_decrypt(Path(max(earlier)[1]), identity))
    return Encoding.from_json(doc["encoding"])
