"""Keep the C heap from holding on to what the batches free.

glibc serves a large allocation with its own mapping, returned to the system
when freed, but raises that size limit (the mmap threshold, 128 KiB at first)
to the size of every large block freed, up to 32 MiB. In the batched path each
batch frees blocks of many MB, so after a few batches they all come from the
heap, where the freed ones are kept and fragment: the resident size grows with
the batches (at 4M rows, 723 MB where 608-623 MB with the thresholds held; 400k: 569
and 540 MB). Fixing the thresholds at glibc's first values keeps them there, for
a few per cent more system time (pages mapped and zeroed again).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_THRESHOLD = 128 * 1024
"""glibc's own starting value for both."""


@functools.cache
def hold_thresholds() -> bool:
    """Fix glibc's mmap and trim thresholds (once per process); False where the C
    library is not glibc (nothing to do there)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _THRESHOLD)) and \
        bool(mallopt(_M_TRIM_THRESHOLD, _THRESHOLD))
