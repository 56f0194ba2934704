"""ingest: confidential data deliveries in, validated encrypted data out.

The public API is small and stable::

    import ingest
    summary = ingest.run_delivery("cases.csv.gpg", schema="reference", out="out/")
    df = ingest.load("out/")                  # polars DataFrame of accepted rows
    delivery = ingest.open_delivery("disc.iso", passphrase=...)   # members in memory

Everything else may change. Heavy modules are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "load": "ingest.outputs",
    "load_arrow": "ingest.outputs",
    "scan": "ingest.outputs",
    "manifest": "ingest.outputs",
    "run_delivery": "ingest.pipeline",
    "RunSummary": "ingest.pipeline",
    "open_delivery": "ingest.media",
    "load_dataset": "ingest.schema",
    "load_settings": "ingest.settings",
    "Keyring": "ingest.keys",
    "IngestError": "ingest.errors",
}

if TYPE_CHECKING:
    from .errors import IngestError
    from .keys import Keyring
    from .media import open_delivery
    from .outputs import load, load_arrow, manifest, scan
    from .pipeline import RunSummary, run_delivery
    from .schema import load_dataset
    from .settings import load_settings


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ingest' has no attribute {name!r}")


__all__ = ["IngestError", "Keyring", "RunSummary", "load", "load_arrow", "load_dataset",
           "load_settings", "manifest", "open_delivery", "run_delivery", "scan"]
