"""Max and average pooling, forward and backward: MATH.md §10-11, PyTorch semantics.

Both work on the kh*kw strided views of the input, one per kernel offset (no window
copies). Max pooling keeps a running maximum and the offset where it was first reached:
ties go to the first maximum in row-major window order, as PyTorch does. Those argmax
offsets are the mask of MATH.md §11; backward writes each gradient to its window's
argmax through the same views, adding where windows overlap (stride < kernel).

Average pooling divides each window sum by the window size (``count_include_pad=True``:
padding zeros count, PyTorch's default), and its backward spreads ``dZ / f^2`` over the
window.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import ShapeError
from ..shapes import IntPair, PoolGeometry, as_float, check_nchw, pool2d_geometry
from . import _jit, _parallel
from ._windows import (
    crop_nchw,
    is_channels_last,
    offset_view,
    pad_like,
    zeros_like_layout,
)


class MaxPool2dCache(NamedTuple):
    """What :func:`max_pool2d_backward` needs: the argmax mask and the geometry."""

    argmax: np.ndarray      # (N, C, H_out, W_out): flat index of the max in its window
                            # (kh*kw: no gradient, where a fused ReLU output 0)
    dtype: np.dtype
    geometry: PoolGeometry


class AvgPool2dCache(NamedTuple):
    """What :func:`avg_pool2d_backward` needs: the divisor map and the geometry."""

    divisor: np.ndarray     # (H_out, W_out): what each window sum was divided by
    dtype: np.dtype
    geometry: PoolGeometry


def _offsets(geo: PoolGeometry) -> list[tuple[int, int]]:
    """Kernel offsets (i, j) in row-major window order."""
    return [(i, j) for i in range(geo.kernel[0]) for j in range(geo.kernel[1])]


def _overlapping(geo: PoolGeometry) -> bool:
    return geo.stride[0] < geo.kernel[0] or geo.stride[1] < geo.kernel[1]


def max_pool2d_forward(x: np.ndarray, kernel_size: IntPair, stride: IntPair | None = None,
                       padding: IntPair = 0, ceil_mode: bool = False, relu: bool = False
                       ) -> tuple[np.ndarray, MaxPool2dCache]:
    """Max pooling (MATH.md §10): each output is the maximum of its window.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    kernel_size : int or (kh, kw)
    stride : int or (sh, sw); defaults to kernel_size
    padding : int or (ph, pw), at most half the window; padded cells count as -inf
    ceil_mode : round the output size up (PyTorch's rule)
    relu : apply ReLU to the result, fused: ``relu(max(x)) = max(relu(x))`` exactly (ReLU
        is monotone), so this is also ReLU followed by max pooling; a window whose maximum
        is not > 0 outputs 0 (NaN stays NaN) and passes no gradient, as ReLU's g'.

    Returns
    -------
    y : ndarray of shape (N, C, H_out, W_out), ``H_out = floor((H + 2p - k)/s) + 1``
    cache : MaxPool2dCache holding the argmax mask (MATH.md §11)

    The maximum runs over the kh*kw strided views of the input, one per kernel offset,
    keeping a running maximum and the offset where it was first reached (a strict
    ``>`` keeps the earlier offset on ties: the first maximum in row-major order).
    """
    x = as_float(x)
    check_nchw(x, "max_pool2d")
    geo = pool2d_geometry(x.shape, kernel_size, stride, padding, ceil_mode, "max_pool2d")
    out_hw = geo.out_shape[2:]
    offsets = _offsets(geo)
    idx_dtype = np.uint8 if len(offsets) < 256 else np.int32
    if _jit.AVAILABLE and _compiled_pool_fits(x, geo):
        return _max_pool_compiled(x, geo, idx_dtype, relu)
    xp = pad_like(x, geo.padding, -np.inf)
    y = offset_view(xp, 0, 0, out_hw, geo.stride).copy(order="K")
    idx = np.zeros_like(y, dtype=idx_dtype)   # same memory layout as y (and x)
    better = np.empty_like(y, dtype=bool)
    for t, (i, j) in enumerate(offsets[1:], start=1):
        v = offset_view(xp, i, j, out_hw, geo.stride)
        np.greater(v, y, out=better)
        # idx < t everywhere so far, so max(idx, t*better) sets idx = t exactly where better
        np.maximum(idx, np.multiply(better, t, dtype=idx_dtype), out=idx)
        np.maximum(y, v, out=y)
    with np.errstate(over="ignore", invalid="ignore"):
        suspicious = not np.isfinite(np.add.reduce(y, axis=None))  # one cheap pass
    if suspicious and (np.isnan(y).any() or np.isneginf(y).any()):  # rare: exact torch rule
        y, idx = _max_pool_nonfinite(x, geo, idx.dtype)
    if relu:   # offset kh*kw (past the window) marks "no gradient"
        off = ~(y > 0)
        idx[off] = len(offsets)
        np.maximum(y, 0, out=y, where=off)   # 0 where y <= 0; NaN stays (a no-op there)
    return y, MaxPool2dCache(idx, x.dtype, geo)


#: the general compiled max pooling needs this many channels: with fewer, its innermost
#: (channel) loop is too short to pay; a 2x2/2 kernel without padding then has its own
_COMPILED_POOL_MIN_CHANNELS = 16


def _nhwc(a: np.ndarray) -> np.ndarray | None:
    """The NHWC memory of a channels-last (N, C, H, W) array as a C-contiguous
    (N, H, W, C) view; None for other layouts (the NumPy path then runs: for NCHW memory
    its whole-array passes beat a compiled loop with one channel innermost)."""
    if is_channels_last(a):
        v = a.transpose(0, 2, 3, 1)
        return v if v.flags.c_contiguous else None
    return None


def _is_2x2_unpadded(geo: PoolGeometry) -> bool:
    return geo.kernel == (2, 2) and geo.stride == (2, 2) and geo.padding == ((0, 0), (0, 0))


#: compiled pooling is split between threads from this many input values (below, the
#: hand-off costs more than it saves: LeNet-5's second pool, 64x16x10x10, took 0.14 ms
#: split and 0.09 ms in one thread; its first, 64x6x28x28, the same either way)
_POOL_MIN_SPLIT = 1 << 19


def _worth_splitting(x: np.ndarray) -> bool:
    return x.size >= _POOL_MIN_SPLIT


def _planes(a: np.ndarray, geo: PoolGeometry) -> np.ndarray | None:
    """NCHW memory as (N*C, H, W) planes for the compiled 2x2/2 kernels, else None."""
    if a.flags.c_contiguous and _is_2x2_unpadded(geo):
        return a.reshape(-1, *a.shape[2:])
    return None


def _compiled_pool_fits(x: np.ndarray, geo: PoolGeometry) -> bool:
    if _planes(x, geo) is not None:
        return True
    return _nhwc(x) is not None and (x.shape[1] >= _COMPILED_POOL_MIN_CHANNELS
                                     or _is_2x2_unpadded(geo))


def _max_pool_compiled(x: np.ndarray, geo: PoolGeometry, idx_dtype: type, relu: bool
                       ) -> tuple[np.ndarray, MaxPool2dCache]:
    """max_pool2d_forward in one compiled pass (Numba, :mod:`._jit`), in x's memory layout."""
    xp = _planes(x, geo)
    if xp is not None:   # NCHW memory, 2x2/2 unpadded: along the rows of each plane
        y = np.empty(geo.out_shape, x.dtype)
        idx = np.empty(geo.out_shape, idx_dtype)
        yp, ip = y.reshape(-1, *y.shape[2:]), idx.reshape(-1, *idx.shape[2:])
        _parallel.map_split(lambda lo, hi: _jit.max_pool_2x2_planes(
            xp[lo:hi], relu, yp[lo:hi], ip[lo:hi]), xp.shape[0], _worth_splitting(x))
        return y, MaxPool2dCache(idx, x.dtype, geo)
    xh = _nhwc(x)
    ho, wo = geo.out_shape[2:]
    y = np.empty((xh.shape[0], ho, wo, xh.shape[3]), x.dtype)
    idx = np.empty(y.shape, idx_dtype)
    (pt, _), (pl, _) = geo.padding
    if x.shape[1] < _COMPILED_POOL_MIN_CHANNELS:   # few channels: 2x2/2 unpadded
        _parallel.map_split(lambda lo, hi: _jit.max_pool_2x2_nhwc(
            xh[lo:hi], relu, y[lo:hi], idx[lo:hi]), xh.shape[0], _worth_splitting(x))
    else:
        _parallel.map_split(lambda lo, hi: _jit.max_pool_nhwc(
            xh[lo:hi], *geo.kernel, *geo.stride, pt, pl, relu, y[lo:hi], idx[lo:hi]),
            xh.shape[0], _worth_splitting(x))
    return y.transpose(0, 3, 1, 2), MaxPool2dCache(idx.transpose(0, 3, 1, 2), x.dtype, geo)


def _max_pool_nonfinite(x: np.ndarray, geo: PoolGeometry, idx_dtype: np.dtype
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Max pooling with PyTorch's rule for NaN and -inf, used when the fast path saw them.

    Only real (unpadded) cells compete; a window starts at its first real cell with
    value -inf, and a cell wins when it is greater or NaN (so NaN propagates, and its
    gradient goes to the last NaN of the window, as torch routes it).
    """
    out_hw = geo.out_shape[2:]
    xp = pad_like(x, geo.padding, -np.inf)
    real = pad_like(np.ones(x.shape, bool), geo.padding, 0.0)
    offsets = _offsets(geo)
    idx = np.zeros(geo.out_shape, idx_dtype)
    for t in reversed(range(len(offsets))):   # the first real cell of each window
        i, j = offsets[t]
        idx[offset_view(real, i, j, out_hw, geo.stride)] = t
    y = np.full(geo.out_shape, -np.inf, x.dtype)
    for t, (i, j) in enumerate(offsets):
        v = offset_view(xp, i, j, out_hw, geo.stride)
        better = offset_view(real, i, j, out_hw, geo.stride) & ((v > y) | np.isnan(v))
        y[better] = v[better]
        idx[better] = t
    return y, idx


def max_pool2d_backward(dy: np.ndarray, cache: MaxPool2dCache) -> np.ndarray:
    """Backward of max pooling (MATH.md §11): each window's gradient goes to its argmax.

    Parameters
    ----------
    dy : ndarray of shape (N, C, H_out, W_out)
    cache : from :func:`max_pool2d_forward`

    Returns
    -------
    dx : ndarray of shape (N, C, H, W); overlapping windows accumulate.
    """
    idx, dtype, geo = cache
    dy = np.asarray(dy, dtype=dtype)
    if dy.shape != geo.out_shape:
        raise ShapeError(
            f"max_pool2d_backward: dy has shape {dy.shape}, the forward output was "
            f"{geo.out_shape}"
        )
    n, c, h, w = geo.in_shape
    (pt, pb), (pl, pr) = geo.padding
    idx_p = _planes(idx, geo) if _jit.AVAILABLE else None
    if idx_p is not None:   # the forward ran on NCHW planes: so does its backward
        dy_p = np.ascontiguousarray(dy).reshape(idx_p.shape)
        dx = np.empty((n, c, h, w), dtype)
        dx_p = dx.reshape(-1, h, w)
        _parallel.map_split(lambda lo, hi: _jit.max_pool_2x2_planes_backward(
            dy_p[lo:hi], idx_p[lo:hi], dx_p[lo:hi]), idx_p.shape[0], _worth_splitting(dx))
        return dx
    idx_h = _nhwc(idx) if _jit.AVAILABLE else None
    if idx_h is not None:   # one compiled pass (Numba), channels-last like the forward
        dy_h = np.ascontiguousarray(dy.transpose(0, 2, 3, 1))
        dx_h = np.zeros((n, h, w, c), dtype)
        _parallel.map_split(lambda lo, hi: _jit.max_pool_backward_nhwc(
            dy_h[lo:hi], idx_h[lo:hi], *geo.kernel, *geo.stride, pt, pl, dx_h[lo:hi]), n,
            _worth_splitting(dx_h))
        return dx_h.transpose(0, 3, 1, 2)
    # dx in x's memory layout (which idx has), whatever dy's: the conv before it then
    # gets the same layout whether or not a ReLU ran between (its rounding follows it)
    dxp = zeros_like_layout((n, c, h + pt + pb, w + pl + pr), dtype, is_channels_last(idx))
    out_hw = geo.out_shape[2:]
    overlapping = _overlapping(geo)
    hit = np.empty(idx.shape, bool)
    for t, (i, j) in enumerate(_offsets(geo)):
        np.equal(idx, t, out=hit)
        view = offset_view(dxp, i, j, out_hw, geo.stride)
        if overlapping:
            view += dy * hit
        else:  # the views are disjoint: write, no accumulation needed
            np.multiply(dy, hit, out=view)
    return crop_nchw(dxp, geo.padding)


def _avg_divisor(geo: PoolGeometry, count_include_pad: bool) -> np.ndarray:
    """The (H_out, W_out) divisor of each window, as PyTorch computes it.

    Window rows ``[m*s - p, min(m*s - p + k, H + p))``: with ``count_include_pad`` the
    symmetric padding counts but the extra of ceil_mode does not; without it only real
    input cells count.
    """
    counts = []
    for axis in range(2):
        size = geo.in_shape[2 + axis]
        k, s = geo.kernel[axis], geo.stride[axis]
        p = geo.padding[axis][0]
        start = np.arange(geo.out_shape[2 + axis]) * s - p
        end = np.minimum(start + k, size + p)
        if count_include_pad:
            counts.append(end - start)
        else:
            counts.append(np.minimum(end, size) - np.maximum(start, 0))
    return np.outer(counts[0], counts[1])


def avg_pool2d_forward(x: np.ndarray, kernel_size: IntPair, stride: IntPair | None = None,
                       padding: IntPair = 0, ceil_mode: bool = False,
                       count_include_pad: bool = True) -> tuple[np.ndarray, AvgPool2dCache]:
    """Average pooling (MATH.md §10): each output is the mean of its window.

    Same arguments and output shape as :func:`max_pool2d_forward`; padded cells are
    zeros and count in the divisor when ``count_include_pad`` (PyTorch's default).
    """
    x = as_float(x)
    check_nchw(x, "avg_pool2d")
    geo = pool2d_geometry(x.shape, kernel_size, stride, padding, ceil_mode, "avg_pool2d")
    divisor = _avg_divisor(geo, count_include_pad).astype(x.dtype)
    xp = pad_like(x, geo.padding, 0.0)
    out_hw = geo.out_shape[2:]
    y = offset_view(xp, 0, 0, out_hw, geo.stride).copy(order="K")
    for i, j in _offsets(geo)[1:]:
        y += offset_view(xp, i, j, out_hw, geo.stride)
    y /= divisor
    return y, AvgPool2dCache(divisor, x.dtype, geo)


def avg_pool2d_backward(dy: np.ndarray, cache: AvgPool2dCache) -> np.ndarray:
    """Backward of average pooling (MATH.md §11): every cell of a window gets ``dZ / f^2``.

    Returns dx of shape (N, C, H, W); overlapping windows accumulate.
    """
    divisor, dtype, geo = cache
    dy = np.asarray(dy, dtype=dtype)
    if dy.shape != geo.out_shape:
        raise ShapeError(
            f"avg_pool2d_backward: dy has shape {dy.shape}, the forward output was "
            f"{geo.out_shape}"
        )
    share = dy / divisor
    n, c, h, w = geo.in_shape
    (pt, pb), (pl, pr) = geo.padding
    dxp = zeros_like_layout((n, c, h + pt + pb, w + pl + pr), dtype, is_channels_last(dy))
    for i, j in _offsets(geo):
        offset_view(dxp, i, j, geo.out_shape[2:], geo.stride)[...] += share
    return crop_nchw(dxp, geo.padding)
