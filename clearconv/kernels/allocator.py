"""The allocator setting of the training entry points (fit, train_step, the CLI).

NumPy allocates a fresh array for almost every intermediate result. On Linux, glibc's
malloc serves large blocks with ``mmap`` and gives them back to the kernel on ``free``,
so every training step pays page faults to touch the same amount of fresh memory
again (the first write to new memory is several times slower than to memory already
touched). :func:`tune_allocator` asks glibc to keep freed memory for reuse instead.
It changes only how much memory the process keeps mapped, never a computed value.

``Sequential.fit``, ``train_step`` and the ``clearconv`` command call it (threads
faulting in fresh pages at once also contend for the kernel's memory lock); no
stateless op does. It acts once per process. Set the environment variable
``CLEARCONV_TUNE_MALLOC=0`` to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

_state: dict[str, bool] = {}


def tune_allocator(mmap_threshold: int = 32 * 2**20, trim_threshold: int = 2**30,
                   top_pad: int = 64 * 2**20) -> bool:
    """Keep freed memory in the process for reuse (glibc only; elsewhere a no-op).

    Blocks up to ``mmap_threshold`` bytes (glibc caps it at 32 MiB) come from the heap
    instead of ``mmap``; the heap is trimmed only above ``trim_threshold`` free bytes;
    it grows ``top_pad`` bytes at a time. Returns True when the settings were applied.
    Runs once per process; later calls return the first result.
    """
    if "done" in _state:
        return _state["done"]
    ok = False
    if sys.platform.startswith("linux") and os.environ.get("CLEARCONV_TUNE_MALLOC", "1") != "0":
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
            mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            ok = bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) \
                & bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold)) \
                & bool(mallopt(_M_TOP_PAD, top_pad))
        except (OSError, AttributeError):
            ok = False
    _state["done"] = ok
    return ok
