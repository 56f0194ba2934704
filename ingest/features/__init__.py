"""Sparse feature matrices for training, and their encrypted outputs.

    fm = ingest.features.build(ingest.load("out/<id>"), dataset)
    files = ingest.features.save(fm, keyring.age_recipient())   # name -> ciphertext
    ingest.features.write(fm, recipient, open_sink)              # streamed into sinks
    fm = ingest.features.load("out/<id>")                        # keyring's identity
    next_fm = ingest.features.build(next_table, dataset, encoding=fm.encoding)

    matrix = ingest.features.BatchedMatrix(dataset, previous, folder)  # bounded memory:
    matrix.add(part) ...; matrix.write(recipient, open_sink); matrix.close()

``fm.X`` is CSR float32, ``fm.y`` the label, ``fm.feature_names`` the columns,
``fm.class_weight`` balanced weights, ``fm.encoding`` the fitted, reusable
:class:`Encoding` (JSON-serialisable).
"""

from .batched import BatchedMatrix
from .encoding import UNSEEN, CategoricalSpec, Encoding, LabelSpec, NumericSpec
from .matrix import FeatureMatrix, balanced, build
from .store import JSON, NPZ, latest_encoding, load, save, write

__all__ = ["JSON", "NPZ", "UNSEEN", "BatchedMatrix", "CategoricalSpec", "Encoding",
           "FeatureMatrix", "LabelSpec", "NumericSpec", "balanced", "build",
           "latest_encoding", "load", "save", "write"]
