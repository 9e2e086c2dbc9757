"""Keep freed tensor memory in the process, so that the next pass does not page-fault it back in.

A forward pass of an SR net allocates a few MB per activation and frees it a layer later. glibc
hands such blocks back to the kernel when it frees them (``munmap`` for blocks above its mmap
threshold; trimming the heap's top once more than its trim threshold lies free there) and the
next allocation of that size then faults on every 4 KiB page it touches, thousands of faults
per pass of the demo net, as costly as some of its convolutions (``bench/bench_allocator.py``;
docs/performance.md, "Figures behind the code"). glibc adapts its
thresholds to what it frees, but the interleaved sizes of a network's activations keep it
handing memory back.

:func:`keep_freed_memory` fixes both thresholds (``mallopt``): blocks up to 32 MiB (an
activation of the interactive passes: 128 channels at 256x256 is 32 MiB) come from the heap, and
up to 256 MiB of free memory at the heap's top stays mapped. The cost is that much resident memory the process keeps
after a peak instead of returning it; blocks above 32 MiB (FAIG's batched passes) are still
mapped and unmapped on their own. ``faig-gui`` calls it once at start; it does nothing off glibc.
"""
from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1   # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 256 << 20


def keep_freed_memory(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Set glibc's mmap and trim thresholds; True when both were set (False off glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):   # (a libc without mallopt, e.g. some musl builds)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(M_MMAP_THRESHOLD, int(mmap_threshold)) == 1
    ok = mallopt(M_TRIM_THRESHOLD, int(trim_threshold)) == 1 and ok
    if not ok:
        log.debug("mallopt refused the allocator thresholds (%d, %d)", mmap_threshold, trim_threshold)
    return ok
