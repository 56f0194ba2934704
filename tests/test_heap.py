"""The batched path holds glibc's allocation thresholds (where the C library is glibc):
a large block freed no longer makes the next large blocks come from the heap.

Each case runs in a fresh interpreter: in a long test session the heap may already
hold a free chunk large enough for the block, which glibc serves from the heap
whatever the threshold, and other threads map and free blocks of their own.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent("""
    import ctypes, ctypes.util, sys
    import numpy as np
    from ingest.stream.heap import hold_thresholds

    class Mallinfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.mallinfo2.restype = Mallinfo2
    if sys.argv[1] == "hold":
        assert hold_thresholds() is True
    big = np.ones(8 << 20, dtype=np.uint8)  # freed: glibc would raise its threshold to it
    del big
    mapped = libc.mallinfo2().hblks
    block = np.ones(1 << 20, dtype=np.uint8)  # 1 MiB
    print(libc.mallinfo2().hblks - mapped)
""")


def _mapped_blocks(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True,
                          text=True, check=True, timeout=120)
    return int(done.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_a_large_block_is_mapped_even_after_a_larger_one_was_freed() -> None:
    assert _mapped_blocks("hold") == 1  # a mapping of its own, returned when freed
    assert _mapped_blocks("default") == 0  # glibc's own way: from the heap
