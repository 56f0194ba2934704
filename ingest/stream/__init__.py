"""Bounded memory at any delivery size: CSV, TSV and fixed-width deliveries in record
batches.

:func:`streamable` says whether a delivery takes this path (one table, one
plain or OpenPGP file over the ``stream_above_bytes`` setting);
:func:`stream_stage` reads, validates and writes every output of it into the
staging folder (``ingest.pipeline`` composes it with the other stages), with the
outputs of the in-memory path, or raises :class:`Fallback` (nothing published)
for a delivery that path must read.
"""

from .run import Counted, Fallback, Streamed, stream_stage, streamable
from .source import Source

__all__ = ["Counted", "Fallback", "Source", "Streamed", "stream_stage", "streamable"]
