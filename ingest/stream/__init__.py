"""Bounded memory at any delivery size: CSV, TSV and fixed-width deliveries in record
batches.

:func:`streamable` says whether a delivery takes this path (one table, one
plain or OpenPGP file over the ``stream_above_bytes`` setting);
:func:`run_streamed` runs it, with the outputs, manifest and summary of the
in-memory path, or raises :class:`Fallback` (nothing published) for a delivery
that path must read.
"""

from .run import Fallback, run_streamed, streamable

__all__ = ["Fallback", "run_streamed", "streamable"]
