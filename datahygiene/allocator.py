"""Tune glibc's allocator for large, short-lived numpy temporaries.

A scan allocates and frees arrays of tens of megabytes per list and per batch. By
default glibc serves every allocation over 32 MiB with a fresh ``mmap`` and returns
it to the kernel on free, so each such temporary is paid for again in page faults --
and on virtual machines whose memory is populated lazily, a first touch costs
milliseconds per megabyte (measured here: ~2-3 ms/MB; a 40 MB allocate-and-fill loop
ran 2.8x faster with this tuning). Raising the mmap and trim thresholds keeps freed
memory in the heap for reuse. The cost: the process keeps its peak memory until it
exits, which suits a batch command. Only the CLI calls this; library users decide.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_allocator(mmap_threshold: int = 1 << 30) -> bool:
    """Raise glibc's mmap/trim thresholds; return False where not applicable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok1 = libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)
        ok2 = libc.mallopt(_M_TRIM_THRESHOLD, 2 * mmap_threshold)
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    return bool(ok1 and ok2)


def freeze_startup_objects() -> None:
    """Move every object alive now (modules, classes, functions: hundreds of thousands
    after the imports of a scan) out of the cyclic garbage collector's reach.

    A scan allocates Python objects per batch, which triggers collections, and each
    older-generation collection walked all of those objects again (about 0.07 s of a
    20M-row benchmark scan, holding the GIL). Objects created later are collected as
    usual; freezing costs microseconds (no collection first: what import-time garbage
    it keeps is small). Only the CLI and the benchmark call this, after their imports."""
    import gc

    gc.freeze()
