"""Max-pooling algorithms faster than functional's readable ``'views'``.

- ``'views-finite'``: the same running maximum over the offset views with a plain
  ``>`` and ``np.maximum`` (two passes per offset instead of five). For finite input
  that is PyTorch's rule exactly (the first maximum wins ties, padding at -inf never
  wins); one cheap reduction of the output checks that, and where the output holds NaN
  or -inf the readable ``'views'`` computes the call again.
- ``'nchw-2x2'``: 2x2 windows, stride 2, unpadded, on NCHW memory seen as planes: each
  output row reads two input rows (compiled).
- ``'nhwc'``: any window on channels-last memory (what conv2d's im2col and Winograd
  return), the channels innermost (compiled), from
  :data:`~clearconv.kernels.tuning.COMPILED_POOL_MIN_CHANNELS` channels.
- ``'nhwc-2x2'``: 2x2/2 unpadded on channels-last memory with few channels, the output
  width innermost (compiled).

Every compiled loop uses the one window rule of
:func:`~clearconv.kernels.compiled._wins`. Outputs keep the input's memory layout.
"""

from __future__ import annotations

import numpy as np

from ..functional import pool as fpool
from ..functional._windows import offset_view, pad_like
from ..shapes import PoolGeometry
from . import jit, registry, threads, tuning
from .jit import compiled


# ------------------------------------------------------------------------ views-finite
def finite_forward(x: np.ndarray, geo: PoolGeometry, relu: bool
                   ) -> tuple[np.ndarray, np.ndarray]:
    out_hw = geo.out_shape[2:]
    xp = pad_like(x, geo.padding, -np.inf)
    y = offset_view(xp, 0, 0, out_hw, geo.stride).copy(order="K")
    idx = np.zeros_like(y, dtype=fpool.argmax_dtype(geo))   # same memory layout as y (and x)
    better = np.empty_like(y, dtype=bool)
    for t, (i, j) in enumerate(fpool.offsets(geo)[1:], start=1):
        v = offset_view(xp, i, j, out_hw, geo.stride, geo.dilation)
        np.greater(v, y, out=better)
        # idx < t everywhere so far, so max(idx, t*better) sets idx = t exactly where better
        np.maximum(idx, np.multiply(better, t, dtype=idx.dtype), out=idx)
        np.maximum(y, v, out=y)
    with np.errstate(over="ignore", invalid="ignore"):
        suspicious = not np.isfinite(np.add.reduce(y, axis=None))  # one cheap pass
    if suspicious and (np.isnan(y).any() or np.isneginf(y).any()):
        return fpool.views_forward(x, geo, relu)      # the readable rule, step by step
    if relu:
        fpool.relu_of_max(y, idx, geo)
    return y, idx


def _any(call: fpool.PoolCall) -> tuple[bool, str]:
    return True, "any geometry and layout; rechecked by 'views' where NaN or -inf wins"


registry.register(registry.Algorithm(
    fpool.OP, "views-finite", _any, finite_forward, fpool.views_backward,
    "the offset views with plain comparisons, exact for finite input ('views' reruns "
    "the rest)"))


# --------------------------------------------------------------------------- compiled
def _is_2x2(geo: PoolGeometry) -> bool:
    return (geo.kernel == (2, 2) and geo.stride == (2, 2)
            and geo.padding == ((0, 0), (0, 0)) and geo.dilation == (1, 1))


def _worth_splitting(size: int) -> bool:
    return size >= tuning.POOL_MIN_SPLIT


def _needs(call: fpool.PoolCall, layout: str, two_by_two: bool) -> tuple[bool, str]:
    if not jit.AVAILABLE:
        return False, 'needs Numba (pip install "clearconv[fast]")'
    if call.layout != layout:
        return False, f"needs {layout} memory, the input is {call.layout}"
    if call.geometry.dilation != (1, 1):
        return False, f"undilated windows only, got dilation {call.geometry.dilation}"
    if two_by_two and not _is_2x2(call.geometry):
        return False, (f"2x2 windows, stride 2, unpadded only; got window "
                       f"{call.geometry.kernel}, stride {call.geometry.stride}, padding "
                       f"{call.geometry.padding}")
    return True, f"{layout} memory" + (", 2x2/2 unpadded" if two_by_two else "")


def _worth(supported: tuple[bool, str], call: fpool.PoolCall) -> tuple[bool, str]:
    """'auto' takes a supported compiled loop once it pays (:func:`jit.worth`)."""
    if not supported[0]:
        return supported
    ok, why = jit.worth(call.geometry.in_shape[0])
    return supported if ok else (ok, why)


def planes_supports(call: fpool.PoolCall) -> tuple[bool, str]:
    return _needs(call, "NCHW", True)


def planes_prefer(call: fpool.PoolCall) -> tuple[bool, str]:
    return _worth(planes_supports(call), call)


def planes_forward(x: np.ndarray, geo: PoolGeometry, relu: bool
                   ) -> tuple[np.ndarray, np.ndarray]:
    xp = x.reshape(-1, *x.shape[2:])
    y = np.empty(geo.out_shape, x.dtype)
    idx = np.empty(geo.out_shape, fpool.argmax_dtype(geo))
    yp, ip = y.reshape(-1, *y.shape[2:]), idx.reshape(-1, *idx.shape[2:])
    threads.map_split(lambda lo, hi: compiled.max_pool_2x2_planes(
        xp[lo:hi], relu, yp[lo:hi], ip[lo:hi]), xp.shape[0], _worth_splitting(x.size))
    return y, idx


def planes_backward(dy: np.ndarray, cache: fpool.MaxPool2dCache) -> np.ndarray:
    n, c, h, w = cache.geometry.in_shape
    idx_p = cache.argmax.reshape(-1, *cache.argmax.shape[2:])
    dy_p = np.ascontiguousarray(dy).reshape(idx_p.shape)
    dx = np.empty((n, c, h, w), cache.dtype)
    dx_p = dx.reshape(-1, h, w)
    threads.map_split(lambda lo, hi: compiled.max_pool_2x2_planes_backward(
        dy_p[lo:hi], idx_p[lo:hi], dx_p[lo:hi]), idx_p.shape[0], _worth_splitting(dx.size))
    return dx


registry.register(registry.Algorithm(
    fpool.OP, "nchw-2x2", planes_supports, planes_forward, planes_backward,
    "2x2/2 windows on NCHW planes, along the rows (Numba)", planes_prefer))


def nhwc_supports(call: fpool.PoolCall) -> tuple[bool, str]:
    return _needs(call, "channels-last", False)


def nhwc_prefer(call: fpool.PoolCall) -> tuple[bool, str]:
    ok, why = nhwc_supports(call)
    c = call.geometry.in_shape[1]
    if ok and c < tuning.COMPILED_POOL_MIN_CHANNELS:
        return False, (f"its channel loop pays from {tuning.COMPILED_POOL_MIN_CHANNELS} "
                       f"channels, got {c}")
    return _worth((ok, why), call)


def nhwc_2x2_supports(call: fpool.PoolCall) -> tuple[bool, str]:
    return _needs(call, "channels-last", True)


def nhwc_2x2_prefer(call: fpool.PoolCall) -> tuple[bool, str]:
    return _worth(nhwc_2x2_supports(call), call)


def _nhwc_forward(two_by_two: bool):  # noqa: ANN202 - a forward of the op's signature
    def forward(x: np.ndarray, geo: PoolGeometry, relu: bool) -> tuple[np.ndarray, np.ndarray]:
        xh = x.transpose(0, 2, 3, 1)
        ho, wo = geo.out_shape[2:]
        y = np.empty((xh.shape[0], ho, wo, xh.shape[3]), x.dtype)
        idx = np.empty(y.shape, fpool.argmax_dtype(geo))
        (pt, _), (pl, _) = geo.padding
        split = _worth_splitting(x.size)
        if two_by_two:              # few channels: the width innermost
            threads.map_split(lambda lo, hi: compiled.max_pool_2x2_nhwc(
                xh[lo:hi], relu, y[lo:hi], idx[lo:hi]), xh.shape[0], split)
        elif _is_2x2(geo):          # the general algorithm's 2x2/2 windows: channels inner
            threads.map_split(lambda lo, hi: compiled.max_pool_2x2_nhwc_channels(
                xh[lo:hi], relu, y[lo:hi], idx[lo:hi]), xh.shape[0], split)
        else:
            threads.map_split(lambda lo, hi: compiled.max_pool_nhwc(
                xh[lo:hi], *geo.kernel, *geo.stride, pt, pl, relu, y[lo:hi], idx[lo:hi]),
                xh.shape[0], split)
        return y.transpose(0, 3, 1, 2), idx.transpose(0, 3, 1, 2)
    return forward


def nhwc_backward(dy: np.ndarray, cache: fpool.MaxPool2dCache) -> np.ndarray:
    geo = cache.geometry
    n, c, h, w = geo.in_shape
    (pt, _), (pl, _) = geo.padding
    idx_h = cache.argmax.transpose(0, 2, 3, 1)
    dy_t = dy.transpose(0, 2, 3, 1)
    dx_h = np.empty((n, h, w, c), cache.dtype)

    two_by_two = _is_2x2(geo)

    def part(lo: int, hi: int) -> None:
        # each thread makes its own images' dx (the copy of dy, and the zeros, in cache)
        dy_part = np.ascontiguousarray(dy_t[lo:hi])
        if two_by_two:              # windows apart: each dx value written once, no zeros
            compiled.max_pool_2x2_backward_nhwc(dy_part, idx_h[lo:hi], dx_h[lo:hi])
            return
        dx_h[lo:hi] = 0
        compiled.max_pool_backward_nhwc(dy_part, idx_h[lo:hi], *geo.kernel, *geo.stride,
                                        pt, pl, dx_h[lo:hi])

    threads.map_split(part, n, _worth_splitting(dx_h.size))
    return dx_h.transpose(0, 3, 1, 2)


registry.register(registry.Algorithm(
    fpool.OP, "nhwc", nhwc_supports, _nhwc_forward(False), nhwc_backward,
    "any window on channels-last memory, channels innermost (Numba)", nhwc_prefer))
registry.register(registry.Algorithm(
    fpool.OP, "nhwc-2x2", nhwc_2x2_supports, _nhwc_forward(True), nhwc_backward,
    "2x2/2 windows on channels-last memory, the width innermost: for few channels (Numba)",
    nhwc_2x2_prefer))
