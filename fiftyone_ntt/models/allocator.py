"""Let CPU inference reuse its large buffers instead of page-faulting them in again.

glibc serves every allocation above its mmap threshold (at most 32 MB by default) with a
fresh ``mmap`` and gives it back with ``munmap`` on free, and it trims freed memory at the top
of the heap above a trim threshold. CPU inference allocates the same large tensors again for
every block and every image (Hiera-L's MLP activations are ``4096 × 2304`` float32 = 37 MB),
so each of them is page-faulted in, and zeroed by the kernel, every time. With both thresholds
raised, freed buffers stay in the process heap and later tensors reuse them: the SAM 2
Hiera-L image encoder then took 11.2-11.6 s instead of 13.4 s on our 2-core machine
(docs/benchmarks.md, 2026-11-26). Reuse starts after the heap has grown for the first few
allocations (an aligned request does not fit the exact hole its predecessor left until
neighbouring holes merge). Results are unchanged (only where memory comes from); the cost is
memory kept for reuse (peak RSS +0.3-0.4 GB in that measurement).

Only on Linux with glibc; elsewhere, and with ``NTT_REUSE_LARGE_BUFFERS=0`` in the
environment, nothing changes. A long-lived process (the App's server, a delegated worker)
calls :func:`release_free_memory` after a run so the kept buffers go back to the system.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading

__all__ = ["ENV_SWITCH", "release_free_memory", "reuse_large_buffers"]

#: Set to ``0`` to keep glibc's default allocation behaviour.
ENV_SWITCH = "NTT_REUSE_LARGE_BUFFERS"

# mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Above every tensor size this pipeline allocates (glibc accepts up to INT_MAX here).
_THRESHOLD = 2**31 - 1

_lock = threading.Lock()
_applied: bool | None = None


def reuse_large_buffers() -> bool:
    """Raise glibc's mmap and trim thresholds once per process (idempotent, thread-safe).

    Returns:
        Whether the thresholds are raised in this process (``False`` off Linux/glibc or when
        :data:`ENV_SWITCH` is ``0``).
    """
    global _applied
    with _lock:
        if _applied is None:
            _applied = _apply()
        return _applied


def _apply() -> bool:
    if os.environ.get(ENV_SWITCH, "1").strip() == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # Trim first: raising the mmap threshold alone would still hand the top of the heap back.
    return bool(mallopt(_M_TRIM_THRESHOLD, _THRESHOLD)) and bool(
        mallopt(_M_MMAP_THRESHOLD, _THRESHOLD)
    )


def release_free_memory() -> bool:
    """Give the heap's free memory back to the system (glibc ``malloc_trim(0)``), e.g. after
    a run in a long-lived process. A no-op unless :func:`reuse_large_buffers` applied.

    Returns:
        Whether memory was given back.
    """
    if not _applied:
        return False
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    return bool(trim(0))
