"""The feature matrix of a table that arrives in parts, in bounded memory.

Equal to :func:`ingest.features.build` of the whole table (the same encoding,
arrays, dtypes and shape), but no more than a part is held at a time:

* with the encoding of an earlier delivery, each part is encoded as it comes
  and its CSR pieces (and label) go to age-sealed spills (:mod:`.spill`);
* without one, the encoding is fitted part by part (:class:`.fit.Fitting`) while
  each part's feature columns wait in a spill (Arrow IPC, sealed); once every
  part is in, they are read back a part at a time and encoded.

:meth:`BatchedMatrix.write` then streams the spilled pieces into the npz, each
array a member, decrypted a piece at a time into the archive's encryption.
Encoding is row by row (:func:`.matrix.encode`), so the parts' rows put one
after the other are the whole table's.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import polars as pl
import scipy.sparse as sp

from ..schema import Dataset
from .encoding import Encoding
from .fit import Fitting
from .matrix import (
    _check_columns,
    balanced_counts,
    check_multilabel,
    check_spec,
    encode,
    prepare,
    scaled,
)
from .spill import ArraySpill, Spill
from .store import Member, write_members

_INT32_MAX = 2**31 - 1
_LABEL_DTYPES: dict[str, type[np.generic]] = {"bool": np.int8, "category": np.int32,
                                              "float": np.float32}


def feature_sources(dataset: Dataset) -> list[str]:
    """The clean columns the feature matrix reads."""
    spec = dataset.features
    wanted = [*spec.labels, *spec.categorical, *spec.numeric]
    if spec.derived and dataset.derive is not None:
        names = {c.name for c in dataset.columns}
        exprs = dataset.derive()
        for name in spec.derived:
            if name in exprs:  # else derive() fails, and says so, as on the whole table
                wanted.extend(n for n in exprs[name].meta.root_names() if n in names)
    return list(dict.fromkeys(wanted))


class BatchedMatrix:
    """Parts of a cleaned table in, the encrypted feature outputs out.

    ``folder`` holds the spills (the staging folder); :meth:`close` deletes
    them, and must be called whatever happens.
    """

    def __init__(self, dataset: Dataset, previous: Encoding | None, folder: Path,
                 *, scale: list[str] | None = None) -> None:
        check_spec(dataset, previous)
        self._dataset = dataset
        self._folder = folder
        self._columns = feature_sources(dataset)
        self._encoding = previous
        self._fitting = Fitting(dataset, scaled(dataset, scale)) if previous is None else None
        self._checked = False
        self._spills: list[Spill | ArraySpill] = []
        self._sources = self._spill(Spill(folder, "feature-columns")) \
            if previous is None else None
        self._rows = 0
        self._x: dict[str, ArraySpill] = {}
        self._y: dict[str, ArraySpill] = {}
        self._nnz = self._y_nnz = 0
        self._counts: dict[str, np.ndarray] = {}

    def _spill(self, spill: Any) -> Any:
        self._spills.append(spill)
        return spill

    def add(self, accepted: pl.DataFrame) -> None:
        """The next part (accepted rows, before the column policies)."""
        if not self._checked:
            _check_columns(accepted, self._dataset)
            self._checked = True
        part = accepted.select(self._columns)
        if self._fitting is None:
            self._encode(part)
            return
        self._fitting.add(prepare(part, self._dataset))
        assert self._sources is not None
        out = io.BytesIO()
        part.write_ipc_stream(out, compression="lz4")
        self._sources.write(out.getvalue())

    def encoding(self) -> Encoding:
        """The encoding (fitted on every part, when there was none): once every part
        is in, the waiting parts are encoded."""
        if self._encoding is None:
            assert self._fitting is not None and self._sources is not None
            self._encoding = self._fitting.encoding()
            self._fitting = None
            for piece in self._sources.read():
                self._encode(pl.read_ipc_stream(io.BytesIO(piece)))
            self._sources.close()
        return self._encoding

    def _encode(self, part: pl.DataFrame) -> None:
        encoding = self._encoding
        assert encoding is not None
        if not self._x:
            self._open(encoding)
        X, labels = encode(prepare(part, self._dataset), encoding)
        self._x["data"].append(X.data)
        self._x["indices"].append(X.indices)
        self._x["indptr"].append(X.indptr[1:].astype(np.int64) + self._nnz)
        self._nnz += int(X.nnz)
        self._rows += int(X.shape[0])
        self._count(encoding, labels)
        if "y" in self._y:
            self._y["y"].append(labels[0])
        elif self._y:
            y = sp.csr_matrix(np.column_stack(labels), dtype=np.int8)
            self._y["y_data"].append(y.data)
            self._y["y_indices"].append(y.indices)
            self._y["y_indptr"].append(y.indptr[1:].astype(np.int64) + self._y_nnz)
            self._y_nnz += int(y.nnz)

    def _open(self, encoding: Encoding) -> None:
        self._x = {"data": self._spill(ArraySpill(self._folder, "data", np.float32)),
                   "indices": self._spill(ArraySpill(self._folder, "indices", np.int32)),
                   "indptr": self._spill(ArraySpill(self._folder, "indptr", np.int64))}
        if len(encoding.labels) == 1:
            kind = encoding.labels[0].kind
            self._y = {"y": self._spill(ArraySpill(self._folder, "y", _LABEL_DTYPES[kind]))}
        elif encoding.labels:
            check_multilabel(encoding.labels)
            self._y = {
                "y_data": self._spill(ArraySpill(self._folder, "y_data", np.int8)),
                "y_indices": self._spill(ArraySpill(self._folder, "y_indices", np.int32)),
                "y_indptr": self._spill(ArraySpill(self._folder, "y_indptr", np.int64))}

    def _count(self, encoding: Encoding, labels: list[np.ndarray]) -> None:
        """Each class's count, for the balanced class weights."""
        for lab, column in zip(encoding.labels, labels, strict=True):
            if lab.kind != "float" and column.size:
                counts = np.bincount(column)
                total = self._counts.get(lab.name, np.zeros(0, dtype=np.int64))
                if total.size < counts.size:
                    total = np.pad(total, (0, counts.size - total.size))
                total[:counts.size] += counts
                self._counts[lab.name] = total

    def write(self, recipient: object,
              open_sink: Callable[[str], AbstractContextManager[BinaryIO]]) -> None:
        """Write ``features.npz.age`` and ``features.json.age`` as
        :func:`ingest.features.write` writes those of the whole table's matrix."""
        encoding = self.encoding()
        if not self._x:  # no part at all
            self._open(encoding)
        labels = encoding.labels
        rows, width = self._rows, encoding.width
        blocks = len(encoding.offsets())
        # the index dtype scipy gives the whole table's matrix: int64 only past int32
        wide = max(rows, width, rows * blocks) > _INT32_MAX
        index = np.int64 if wide else np.int32
        members: list[Member] = [
            ("format", np.array(b"csr")), ("shape", np.array((rows, width), dtype=np.int64)),
            ("data", self._stream(self._x["data"], None)),
            ("indices", self._stream(self._x["indices"], index)),
            ("indptr", self._stream(self._x["indptr"], index, first=0))]
        weights: dict[Any, Any] = {}
        if len(labels) == 1:
            members.append(("y", self._stream(self._y["y"], None)))
            if labels[0].kind != "float":
                weights = balanced_counts(self._counts.get(labels[0].name,
                                                           np.zeros(0, dtype=np.int64)))
        elif labels:
            y_index = np.int64 if max(rows, len(labels), self._y_nnz) > _INT32_MAX \
                else np.int32
            members += [("y_data", self._stream(self._y["y_data"], None)),
                        ("y_indices", self._stream(self._y["y_indices"], y_index)),
                        ("y_indptr", self._stream(self._y["y_indptr"], y_index, first=0)),
                        ("y_shape", np.array((rows, len(labels)), dtype=np.int64))]
            weights = {lab.name: balanced_counts(self._counts.get(lab.name,
                                                                  np.zeros(0, np.int64)))
                       for lab in labels}
        write_members(members, (rows, width), list(encoding.feature_names), weights,
                      encoding, recipient, open_sink)

    def _stream(self, spill: ArraySpill, dtype: type[np.generic] | None,
                first: int | None = None) -> tuple[np.dtype, int, Iterator[np.ndarray]]:
        """A member's dtype, length and parts (``first``: a leading element, as
        ``indptr``'s 0)."""
        out = np.dtype(dtype) if dtype is not None else spill.dtype

        def parts() -> Iterator[np.ndarray]:
            if first is not None:
                yield np.array([first], dtype=out)
            yield from spill.parts(out)

        return out, spill.length + (first is not None), parts()

    def close(self) -> None:
        """Delete every spill."""
        for spill in self._spills:
            spill.close()
