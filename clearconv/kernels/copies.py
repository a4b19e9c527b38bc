"""Layout copies: A_pad channels-last from NCHW memory, compiled and split between threads.

The same array as :func:`clearconv.functional._windows.padded_nhwc` (the readable
NumPy copy), made by :func:`~clearconv.kernels.compiled.nchw_to_nhwc` one image row at a
time where the input is NCHW memory: NumPy's transposing copy steps through memory
H*W values apart for every output value (1.5x slower).
"""

from __future__ import annotations

import numpy as np

from ..functional._windows import padded_nhwc as padded_nhwc_numpy
from . import jit, threads, tuning
from .jit import compiled


def padded_nhwc(x: np.ndarray, pads: tuple[tuple[int, int], tuple[int, int]]) -> np.ndarray:
    """x (N, C, H, W) as a C-contiguous (N, H_pad, W_pad, C) array with zero borders."""
    n, c, h, w = x.shape
    if not (c > 1 and x.flags.c_contiguous and jit.worth(n)[0]):
        return padded_nhwc_numpy(x, pads)
    (pt, pb), (pl, pr) = pads
    padded = not pt == pb == pl == pr == 0
    out = (np.zeros if padded else np.empty)((n, h + pt + pb, w + pl + pr, c), x.dtype)
    inner = out[:, pt:pt + h, pl:pl + w]
    threads.map_split(lambda lo, hi: compiled.nchw_to_nhwc(x[lo:hi], inner[lo:hi]), n,
                      x.size >= tuning.MIN_SPLIT_COPY)
    return out
