"""A synthetic reference delivery, for rehearsal, tests, the demo and benchmarks."""

from .forms import to_delimited
from .table import BAD_KINDS, EXPECTED_REASON, Truth, generate

__all__ = ["BAD_KINDS", "EXPECTED_REASON", "Truth", "generate", "to_delimited"]
