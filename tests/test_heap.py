"""The batched path holds glibc's allocation thresholds (where the C library is glibc):
a large block freed no longer makes the next large blocks come from the heap."""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

import numpy as np
import pytest

from ingest.stream.heap import hold_thresholds


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_a_large_block_is_mapped_even_after_a_larger_one_was_freed() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.mallinfo2.restype = _Mallinfo2
    assert hold_thresholds() is True
    big = np.ones(8 << 20, dtype=np.uint8)  # freed: glibc would raise its threshold to it
    del big
    mapped = libc.mallinfo2().hblks
    block = np.ones(1 << 20, dtype=np.uint8)  # 1 MiB: mapped of its own, not heap
    assert libc.mallinfo2().hblks == mapped + 1
    del block
