"""batch_norm2d algorithm ``'compiled'``: two passes over memory each way.

The readable algorithm of :mod:`clearconv.functional.normalization` runs each formula as
a whole-array NumPy expression (x - mu, its square, the mean, xhat, gamma xhat + beta:
a pass over memory each, and a temporary array each). Here the same formulas run as
Numba loops over the input's own memory (NCHW, or channels-last as conv2d returns it):

forward
    one pass sums ``d = x - K[c]`` and ``d^2`` per channel in float64 (K[c] is the
    channel's first value: shifting by a value of the data keeps the one-pass variance
    ``var = E[d^2] - E[d]^2`` exact to rounding), then one pass writes
    ``y = (x - mu[c]) a[c] + beta[c]`` with ``a = gamma / sqrt(var + eps)``.
backward
    one pass sums ``dy`` and ``dy (x - mu)`` per channel (dbeta, and dgamma times
    sqrt(var + eps)), then one pass writes ``dx = A[c] dy + B[c] (x - mu[c]) + D[c]``,
    the module docstring's dx of functional/ with its per-channel factors gathered
    (``A = gamma invstd``, ``B = -A invstd^2 sum(dy (x - mu)) / M``, ``D = -A sum(dy) / M``).

With ``relu`` the output pass writes ``max(y, 0)``, and the backward's two passes take
``g = dy (y > 0)`` in place of dy (the ReLU's backward, read from the cached output):
batch norm and the ReLU after it in the passes of batch norm alone.

Nothing is cached but x itself (no xhat array) and, with ``relu``, the output. NCHW
input is split between threads by channels, channels-last input by rows of (N*H*W, C)
with per-thread partial sums.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..functional.normalization import OP, BatchNormCache, BatchNormCall
from . import registry, threads, tuning
from .jit import AVAILABLE, worth


def _loops() -> Any:
    """:mod:`clearconv.kernels.batchnorm_loops`, imported (with Numba) at the first call."""
    from . import batchnorm_loops

    return batchnorm_loops


def _flat(a: np.ndarray, channels_last: bool) -> np.ndarray:
    """x (N, C, H, W) as the 2-D or 3-D view the loops walk: (N*H*W, C) or (N, C, H*W)."""
    n, c, h, w = a.shape
    if channels_last:
        return a.transpose(0, 2, 3, 1).reshape(n * h * w, c)
    return a.reshape(n, c, h * w)


def _empty_like(x: np.ndarray, channels_last: bool) -> tuple[np.ndarray, np.ndarray]:
    """An (N, C, H, W) array in x's layout and its flat view."""
    n, c, h, w = x.shape
    if channels_last:
        out = np.empty((n, h, w, c), x.dtype)
        return out.transpose(0, 3, 1, 2), out.reshape(n * h * w, c)
    out = np.empty(x.shape, x.dtype)
    return out, out.reshape(n, c, h * w)


def _split(x: np.ndarray) -> bool:
    return x.size >= tuning.NORM_MIN_SPLIT


def _channel_sums(run: Any, rows: int, channels: int, channels_last: bool, parallel: bool
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Two float64 (C,) sums, ``run(lo, hi, s1, s2)`` adding the part lo..hi into them:
    the channels split between threads (NCHW), or the rows with one pair of partial sums
    per thread, added up (channels-last)."""
    if channels_last:
        def part(lo: int, hi: int) -> np.ndarray:
            s = np.zeros((2, channels))
            run(lo, hi, s[0], s[1])
            return s
        s = threads.add_up(threads.map_split(part, rows, parallel))
    else:
        s = np.zeros((2, channels))
        threads.map_split(lambda lo, hi: run(lo, hi, s[0], s[1]), channels, parallel)
    return s[0], s[1]


def forward(x: np.ndarray, gamma: np.ndarray | None, beta: np.ndarray | None,
            stats: tuple[np.ndarray, np.ndarray] | None, eps: float, relu: bool = False
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n, c, h, w = x.shape
    last = not x.flags.c_contiguous
    flat = _flat(x, last)
    parallel = _split(x)
    if stats is None:
        count = n * h * w
        shift = np.ascontiguousarray(x[0, :, 0, 0], np.float64)
        loops = _loops()
        sums = loops._sums_rows if last else loops._sums_planes
        s1, s2 = _channel_sums(lambda lo, hi, t1, t2: sums(flat, lo, hi, shift, t1, t2),
                               flat.shape[0], c, last, parallel)
        mean_shifted = s1 / count
        mean = shift + mean_shifted
        var = np.maximum(s2 / count - mean_shifted * mean_shifted, 0.0)
    else:
        mean, var = (s.astype(np.float64) for s in stats)
    invstd = 1.0 / np.sqrt(var + eps)
    a = invstd if gamma is None else gamma * invstd
    b = np.zeros(c) if beta is None else beta
    m, a, b = mean.astype(x.dtype), a.astype(x.dtype), b.astype(x.dtype)
    y, yflat = _empty_like(x, last)
    loops = _loops()
    apply = loops._affine_rows if last else loops._affine_planes
    threads.map_split(lambda lo, hi: apply(flat, m, a, b, relu, lo, hi, yflat),
                      flat.shape[0] if last else c, parallel)
    return y, mean, var, x


def backward(dy: np.ndarray, cache: BatchNormCache
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = cache.saved
    n, c, h, w = x.shape
    last = not x.flags.c_contiguous
    flat = _flat(x, last)
    dyv = dy if dy.strides == x.strides else _like(dy, last)
    dflat = _flat(dyv, last)
    relu = cache.relu_out is not None
    out = cache.relu_out if relu else x       # (not read without relu)
    yflat = _flat(out if out.strides == x.strides else _like(out, last), last)
    parallel = _split(x)
    mean = cache.mean.astype(np.float64)
    invstd = cache.invstd.astype(np.float64)
    loops = _loops()
    sums = loops._grad_sums_rows if last else loops._grad_sums_planes
    s1, s2 = _channel_sums(lambda lo, hi, t1, t2: sums(dflat, flat, yflat, relu, mean, lo, hi,
                                                        t1, t2),
                           flat.shape[0], c, last, parallel)
    dbeta, dgamma = s1, s2 * invstd
    a = invstd if cache.gamma is None else cache.gamma * invstd
    if cache.batch_stats:
        count = n * h * w
        b = -a * invstd * dgamma / count
        d = -a * dbeta / count
    else:
        b = np.zeros(c)
        d = np.zeros(c)
    m, a, b, d = (v.astype(x.dtype) for v in (mean, a, b, d))
    dx, dxflat = _empty_like(x, last)
    grad = loops._grad_rows if last else loops._grad_planes
    threads.map_split(lambda lo, hi: grad(dflat, flat, yflat, relu, m, a, b, d, lo, hi,
                                          dxflat),
                      flat.shape[0] if last else c, parallel)
    return dx, dgamma.astype(x.dtype), dbeta.astype(x.dtype)


def _like(a: np.ndarray, channels_last: bool) -> np.ndarray:
    """``a`` copied into the layout the forward's x had."""
    out, _ = _empty_like(a, channels_last)
    out[...] = a
    return out


def supports(call: BatchNormCall) -> tuple[bool, str]:
    if not AVAILABLE:
        return False, "needs Numba (pip install clearconv[fast]; not disabled by CLEARCONV_JIT=0)"
    if call.layout == "strided":
        return False, "needs NCHW or channels-last memory, got a strided view"
    return True, f"{call.layout} memory: one pass for the sums, one for the output"


def prefer(call: BatchNormCall) -> tuple[bool, str]:
    """'auto' takes it wherever it applies, once the compiled loops are worth loading."""
    ok, why = supports(call)
    if not ok:
        return ok, why
    return worth(call.shape[0])


registry.register(registry.Algorithm(
    OP, "compiled", supports, forward, backward,
    "compiled loops: the per-channel sums in one pass (float64), the output in another; "
    "split between threads", prefer=prefer, layout="input"))


def warm_up(dtype: Any = np.float32) -> None:
    """Compile (or load from Numba's cache) the loops for ``dtype`` on tiny arrays."""
    x = np.zeros((1, 2, 2, 2), dtype)
    for arr in (x, x.transpose(0, 2, 3, 1).copy().transpose(0, 3, 1, 2)):
        for relu in (False, True):
            y, mean, var, _ = forward(arr, None, None, None, 1e-5, relu)
            backward(y, BatchNormCache("compiled", arr, mean.astype(dtype),
                                       (1 / np.sqrt(var + 1e-5)).astype(dtype), None, True,
                                       False, y if relu else None))
