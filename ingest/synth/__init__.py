"""Synthetic deliveries, for rehearsal, tests, the demo and benchmarks: the reference
table (:func:`generate`) and a second example of another shape, hospital admissions
with a ward lookup table (:mod:`ingest.synth.admissions`)."""

from . import admissions
from .forms import to_delimited
from .table import BAD_KINDS, EXPECTED_REASON, Truth, generate

__all__ = ["BAD_KINDS", "EXPECTED_REASON", "Truth", "admissions", "generate", "to_delimited"]
