"""Whether the compiled (Numba) loops of :mod:`clearconv.kernels.compiled` run, decided
without importing Numba.

``import clearconv`` does not import Numba (about 0.5 s, and LLVM's memory): the
algorithm modules reach the compiled loops through :data:`compiled`, which imports
:mod:`clearconv.kernels.compiled` (and Numba with it) at the first loop actually called.
:data:`AVAILABLE` says whether Numba is installed and not switched off
(``CLEARCONV_JIT=0``), from the installed packages alone.

Loading the kernels costs about 1 s once per process (Numba's import, then each loop from
its on-disk cache), more than they save on a small call: before they are loaded, 'auto'
takes the NumPy algorithms for calls on fewer than
:data:`clearconv.kernels.tuning.JIT_MIN_IMAGES` images (a ``predict`` of a few photos),
and the compiled ones from then on (:func:`worth`). Training loads them when it starts
(:func:`load`), so that every step of a run, resumed or not, takes the same algorithms.
"""

from __future__ import annotations

import importlib.util
import os
from types import ModuleType
from typing import Any

from . import tuning

#: False when the environment variable CLEARCONV_JIT is 0 (or false, no, off)
ENABLED = os.environ.get("CLEARCONV_JIT", "1").strip().lower() not in ("0", "false", "no", "off")

#: True when Numba is installed and not disabled: the compiled loops can run
AVAILABLE = ENABLED and importlib.util.find_spec("numba") is not None

_loaded = False


def load() -> ModuleType | None:
    """Import :mod:`clearconv.kernels.compiled` (and Numba) now; None without Numba. The
    loops themselves load from Numba's cache (or compile) at their first call."""
    global _loaded
    if not AVAILABLE:
        return None
    from . import compiled as module

    _loaded = True
    return module


def loaded() -> bool:
    """Whether this process has loaded the compiled kernels."""
    return _loaded


def worth(images: int) -> tuple[bool, str]:
    """Whether 'auto' should take a compiled loop for a call on ``images`` images, and why
    not: Numba absent, or the kernels not loaded yet and the call too small to pay for
    loading them."""
    if not AVAILABLE:
        return False, 'needs Numba (pip install "clearconv[fast]")'
    if _loaded or images >= tuning.JIT_MIN_IMAGES:
        return True, "compiled"
    return False, (f"{images} image(s), Numba not loaded yet: loading it costs more than it "
                   f"saves below {tuning.JIT_MIN_IMAGES} images")


class _Compiled:
    """:mod:`clearconv.kernels.compiled`, imported at the first attribute asked for."""

    def __getattr__(self, name: str) -> Any:
        module = load()
        if module is None:
            raise AttributeError(f"compiled loop {name!r} asked for without Numba "
                                 f"(CLEARCONV_JIT=0 or not installed)")
        return getattr(module, name)


#: the compiled loops, loaded on first use: ``compiled.max_pool_nhwc(...)``
compiled = _Compiled()
