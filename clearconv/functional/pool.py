"""Max and average pooling, forward and backward: MATH.md §10-11, PyTorch semantics.

Both work on the kh*kw strided views of the input, one per kernel offset (no window
copies). Max pooling keeps a running maximum and the offset where it was reached, by
PyTorch's rule: only real (unpadded) cells compete, a window starts at its first real
cell, and a cell wins when it is greater than the maximum so far or NaN. So ties go to
the first maximum in row-major window order, NaN propagates, padding never wins. Those
argmax offsets are the mask of MATH.md §11; backward writes each gradient to its
window's argmax through the same views, adding where windows overlap (stride < kernel).

This module is max pooling's readable algorithm, ``'views'``; faster ones (a NumPy
variant for finite input, compiled kernels) are registered by
:mod:`clearconv.kernels.pool` and chosen as for conv2d (:func:`max_pool2d_algorithm`
says which one 'auto' takes, and why; the cache records it).

Average pooling divides each window sum by the window size (``count_include_pad=True``:
padding zeros count, PyTorch's default; or by ``divisor_override``), and its backward
spreads ``dZ / f^2`` over the window.

Both take PyTorch's forms of the window: padding per side (``((top, bottom), (left,
right))``, as PyTorch gets with an explicit pad), ``ceil_mode``, and for max pooling
``dilation`` (window cell (i, j) at ``(m*s + i*d, k*s + j*d)``; the kernel-offset views
just start further apart). :func:`max_pool2d_indices` turns the argmax mask into
PyTorch's ``return_indices``, and :func:`max_unpool2d_forward` scatters values back to
them (the mask's routing of MATH.md §11 as a forward op).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..errors import ClearConvError, ShapeError
from ..kernels import registry
from ..shapes import (
    IntPair,
    PoolGeometry,
    as_float,
    check_cache,
    check_channels,
    check_divisor_override,
    check_nchw,
    pool2d_geometry,
    unpool_output_size,
)
from ._windows import (
    crop_nchw,
    is_channels_last,
    offset_view,
    pad_like,
    zeros_like_layout,
)

OP = "max_pool2d"


class PoolCall(NamedTuple):
    """What a max-pooling algorithm's predicate sees of a call."""

    geometry: PoolGeometry
    dtype: np.dtype
    layout: str             # 'NCHW' (C-contiguous), 'channels-last' or 'strided'
    relu: bool

    def __str__(self) -> str:
        g = self.geometry
        dil = f" dilation {g.dilation}" if g.dilation != (1, 1) else ""
        return (f"x{g.in_shape} ({self.layout}) -> {g.out_shape} window {g.kernel} stride "
                f"{g.stride} padding {g.padding}{dil}{' + relu' if self.relu else ''} "
                f"{np.dtype(self.dtype).name}")


def layout_of(x: np.ndarray) -> str:
    """'NCHW' for C-contiguous memory, 'channels-last' for an NCHW view of C-contiguous
    NHWC memory (what conv2d's im2col returns), else 'strided'."""
    if x.flags.c_contiguous:
        return "NCHW"
    if is_channels_last(x) and x.transpose(0, 2, 3, 1).flags.c_contiguous:
        return "channels-last"
    return "strided"


class MaxPool2dCache(NamedTuple):
    """What :func:`max_pool2d_backward` needs: the argmax mask and the geometry."""

    algorithm: str          # the algorithm that computed the forward (and runs backward)
    argmax: np.ndarray      # (N, C, H_out, W_out): offset i*kw + j of the max in its
                            # window (kh*kw: no gradient, where a fused ReLU output 0)
    dtype: np.dtype
    geometry: PoolGeometry


class AvgPool2dCache(NamedTuple):
    """What :func:`avg_pool2d_backward` needs: the divisor map and the geometry."""

    divisor: np.ndarray     # (H_out, W_out): what each window sum was divided by
    dtype: np.dtype
    geometry: PoolGeometry
    channels_last: bool = False   # x's memory layout, which dx takes


def offsets(geo: PoolGeometry) -> list[tuple[int, int]]:
    """Kernel offsets (i, j) in row-major window order."""
    return [(i, j) for i in range(geo.kernel[0]) for j in range(geo.kernel[1])]


def overlapping(geo: PoolGeometry) -> bool:
    """Whether neighbouring windows may share cells (stride < the window's extent
    ``d*(k-1) + 1`` along an axis)."""
    return any(s < d * (k - 1) + 1 for s, d, k in zip(geo.stride, geo.dilation, geo.kernel))


def geometry_args(geo: PoolGeometry) -> dict[str, Any]:
    """The keyword arguments of :func:`max_pool2d_forward` that give ``geo`` again."""
    return {"kernel_size": geo.kernel, "stride": geo.stride, "padding": geo.user_padding,
            "ceil_mode": geo.ceil_extra != (0, 0), "dilation": geo.dilation}


def argmax_dtype(geo: PoolGeometry) -> type:
    """uint8 for windows of fewer than 255 cells (kh*kw itself marks "no gradient")."""
    return np.uint8 if geo.kernel[0] * geo.kernel[1] < 255 else np.int32


def max_pool2d_forward(x: np.ndarray, kernel_size: IntPair, stride: IntPair | None = None,
                       padding: Any = 0, ceil_mode: bool = False, relu: bool = False,
                       algorithm: str = "auto", dilation: IntPair = 1
                       ) -> tuple[np.ndarray, MaxPool2dCache]:
    """Max pooling (MATH.md §10): each output is the maximum of its window.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    kernel_size : int or (kh, kw)
    stride : int or (sh, sw); defaults to kernel_size
    padding : int, (ph, pw) or ((top, bottom), (left, right)), each side at most half the
        window; padded cells never win (a window of padding only outputs -inf and passes
        no gradient; only dilation makes one)
    ceil_mode : round the output size up (PyTorch's rule)
    relu : apply ReLU to the result, fused: ``relu(max(x)) = max(relu(x))`` exactly (ReLU
        is monotone), so this is also ReLU followed by max pooling; a window whose maximum
        is not > 0 outputs 0 (NaN stays NaN) and passes no gradient, as ReLU's g'.
    algorithm : 'auto' (default) or a registered name ('views', the readable one here;
        ``python -m clearconv.kernels`` lists the others)
    dilation : int or (dh, dw): window cell (i, j) reads ``(m*s_h + i*d_h, k*s_w + j*d_w)``

    Returns
    -------
    y : ndarray of shape (N, C, H_out, W_out),
        ``H_out = floor((H + p_top + p_bottom - d*(k - 1) - 1)/s) + 1``, in x's memory layout
    cache : MaxPool2dCache holding the argmax mask (MATH.md §11); PyTorch's
        ``return_indices`` are :func:`max_pool2d_indices` of it
    """
    x = as_float(x)
    check_nchw(x, "max_pool2d")
    check_channels(x, "max_pool2d")
    geo = pool2d_geometry(x.shape, kernel_size, stride, padding, ceil_mode, "max_pool2d",
                          dilation)
    algo = registry.resolve(OP, algorithm, PoolCall(geo, x.dtype, layout_of(x), bool(relu)))
    y, idx = algo.forward(x, geo, bool(relu))
    return y, MaxPool2dCache(algo.name, idx, x.dtype, geo)


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
    check_cache(cache, MaxPool2dCache, "max_pool2d_backward", "max_pool2d_forward")
    dy = np.asarray(dy, dtype=cache.dtype)
    if dy.shape != cache.geometry.out_shape:
        raise ShapeError(
            f"max_pool2d_backward: dy has shape {dy.shape}, the forward output was "
            f"{cache.geometry.out_shape}"
        )
    return registry.get(OP, cache.algorithm).backward(dy, cache)


def max_pool2d_algorithm(x_shape: tuple[int, ...], kernel_size: IntPair,
                         stride: IntPair | None = None, padding: Any = 0,
                         ceil_mode: bool = False, relu: bool = False, dtype: Any = np.float32,
                         layout: str = "NCHW", algorithm: str = "auto", dilation: IntPair = 1
                         ) -> registry.Choice:
    """Which algorithm :func:`max_pool2d_forward` takes for such an input, and why.

    ``layout`` is the input's memory layout: 'NCHW' (C-contiguous), 'channels-last'
    (what conv2d's im2col and Winograd return) or 'strided' (see :func:`layout_of`).
    """
    geo = pool2d_geometry(tuple(x_shape), kernel_size, stride, padding, ceil_mode,
                          "max_pool2d", dilation)
    return registry.choose(OP, algorithm, PoolCall(geo, np.dtype(dtype), layout, relu))


# ----------------------------------------------------------------- the readable algorithm
def first_real_offset(geo: PoolGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Where each window starts by PyTorch's rule: ``real[t, m, k]`` says whether offset
    t of window (m, k) is a cell of the input (not padding), ``first[m, k]`` the first
    such offset."""
    out_hw = geo.out_shape[2:]
    inside = pad_like(np.ones((1, 1, *geo.in_shape[2:]), bool), geo.padding, 0.0)
    real = np.stack([offset_view(inside, i, j, out_hw, geo.stride, geo.dilation)[0, 0]
                     for i, j in offsets(geo)])
    return real, real.argmax(axis=0)


def relu_of_max(y: np.ndarray, idx: np.ndarray, geo: PoolGeometry) -> None:
    """The fused ReLU, in place: where the maximum is not > 0 the output is 0 (NaN stays)
    and the offset is kh*kw, past the window: no gradient."""
    off = ~(y > 0)
    idx[off] = geo.kernel[0] * geo.kernel[1]
    np.maximum(y, 0, out=y, where=off)   # 0 where y <= 0; NaN stays (a no-op there)


def views_forward(x: np.ndarray, geo: PoolGeometry, relu: bool
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The running maximum over the kh*kw offset views, PyTorch's rule at every step."""
    out_hw = geo.out_shape[2:]
    xp = pad_like(x, geo.padding, 0.0)       # padded cells are never real: never compared
    real, first = first_real_offset(geo)
    y = np.empty_like(offset_view(xp, 0, 0, out_hw, geo.stride))   # x's memory layout
    y.fill(-np.inf)
    idx = np.empty_like(y, dtype=argmax_dtype(geo))
    idx[...] = first
    for t, (i, j) in enumerate(offsets(geo)):
        v = offset_view(xp, i, j, out_hw, geo.stride, geo.dilation)
        wins = ((v > y) | np.isnan(v)) & real[t]    # greater than the maximum so far, or NaN
        np.copyto(y, v, where=wins)
        np.copyto(idx, t, where=wins, casting="unsafe")
    if relu:
        relu_of_max(y, idx, geo)
    return y, idx


def views_backward(dy: np.ndarray, cache: MaxPool2dCache) -> np.ndarray:
    """dA_pad[window (m, k) at offset idx[m, k]] += dZ[m, k] through the offset views,
    then the padding cropped; dx in x's memory layout (which idx has)."""
    idx, geo = cache.argmax, cache.geometry
    n, c, h, w = geo.in_shape
    (pt, pb), (pl, pr) = geo.padding
    dxp = zeros_like_layout((n, c, h + pt + pb, w + pl + pr), cache.dtype,
                            is_channels_last(idx))
    out_hw = geo.out_shape[2:]
    hit = np.empty(idx.shape, bool)
    for t, (i, j) in enumerate(offsets(geo)):
        np.equal(idx, t, out=hit)
        view = offset_view(dxp, i, j, out_hw, geo.stride, geo.dilation)
        if overlapping(geo):
            view += dy * hit
        else:  # the views are disjoint: write, no accumulation needed
            np.multiply(dy, hit, out=view)
    return crop_nchw(dxp, geo.padding)


def _supports_any(call: PoolCall) -> tuple[bool, str]:
    return True, "any geometry and layout, NumPy only"


registry.register(registry.Algorithm(
    OP, "views", _supports_any, views_forward, views_backward,
    "the readable path: a running maximum over the kernel-offset views (MATH.md §10-11)"))


def _avg_divisor(geo: PoolGeometry, count_include_pad: bool) -> np.ndarray:
    """The (H_out, W_out) divisor of each window, as PyTorch computes it.

    Window rows ``[m*s - p_top, min(m*s - p_top + k, H + p_bottom))``: with
    ``count_include_pad`` the padding asked for counts but the extra of ceil_mode does
    not; without it only real input cells count.
    """
    counts = []
    for axis in range(2):
        size = geo.in_shape[2 + axis]
        k, s = geo.kernel[axis], geo.stride[axis]
        before, after = geo.user_padding[axis]
        start = np.arange(geo.out_shape[2 + axis]) * s - before
        end = np.minimum(start + k, size + after)
        if count_include_pad:
            counts.append(end - start)
        else:
            counts.append(np.minimum(end, size) - np.maximum(start, 0))
    return np.outer(counts[0], counts[1])


def avg_pool2d_forward(x: np.ndarray, kernel_size: IntPair, stride: IntPair | None = None,
                       padding: Any = 0, ceil_mode: bool = False,
                       count_include_pad: bool = True, divisor_override: int | None = None
                       ) -> tuple[np.ndarray, AvgPool2dCache]:
    """Average pooling (MATH.md §10): each output is the mean of its window.

    Same arguments and output shape as :func:`max_pool2d_forward` (no dilation, as
    PyTorch); padded cells are zeros and count in the divisor when ``count_include_pad``
    (PyTorch's default; an asymmetric padding counts as asked, ceil_mode's extra never).
    ``divisor_override``: divide every window sum by this int instead.
    """
    x = as_float(x)
    check_nchw(x, "avg_pool2d")
    check_channels(x, "avg_pool2d")
    geo = pool2d_geometry(x.shape, kernel_size, stride, padding, ceil_mode, "avg_pool2d")
    override = check_divisor_override(divisor_override)
    if override is None:
        divisor = _avg_divisor(geo, count_include_pad).astype(x.dtype)
    else:
        divisor = np.full(geo.out_shape[2:], override, x.dtype)
    xp = pad_like(x, geo.padding, 0.0)
    out_hw = geo.out_shape[2:]
    y = offset_view(xp, 0, 0, out_hw, geo.stride).copy(order="K")
    for i, j in offsets(geo)[1:]:
        y += offset_view(xp, i, j, out_hw, geo.stride)
    y /= divisor
    return y, AvgPool2dCache(divisor, x.dtype, geo, is_channels_last(x))


def avg_pool2d_backward(dy: np.ndarray, cache: AvgPool2dCache) -> np.ndarray:
    """Backward of average pooling (MATH.md §11): every cell of a window gets ``dZ / f^2``.

    Returns dx of shape (N, C, H, W); overlapping windows accumulate.
    """
    check_cache(cache, AvgPool2dCache, "avg_pool2d_backward", "avg_pool2d_forward")
    divisor, dtype, geo, last = cache
    dy = np.asarray(dy, dtype=dtype)
    if dy.shape != geo.out_shape:
        raise ShapeError(
            f"avg_pool2d_backward: dy has shape {dy.shape}, the forward output was "
            f"{geo.out_shape}"
        )
    share = dy / divisor
    n, c, h, w = geo.in_shape
    (pt, pb), (pl, pr) = geo.padding
    dxp = zeros_like_layout((n, c, h + pt + pb, w + pl + pr), dtype,
                            last or is_channels_last(dy))
    for i, j in offsets(geo):
        offset_view(dxp, i, j, geo.out_shape[2:], geo.stride)[...] += share
    return crop_nchw(dxp, geo.padding)


# ------------------------------------------------------------------------ max unpooling
def max_pool2d_indices(cache: MaxPool2dCache) -> np.ndarray:
    """PyTorch's ``return_indices`` of a max pooling: where each window's maximum is.

    ``indices[n, c, m, k] = row * W + col``, the flat position of the maximum of window
    (m, k) in its input plane (N, C, H, W), from the argmax offsets of the cache
    (offset ``t = i*kw + j`` sits at ``row = m*s_h - p_top + i*d_h``,
    ``col = k*s_w - p_left + j*d_w``); -1 for a window of padding only (which dilation
    can make). int64, shape (N, C, H_out, W_out).
    """
    geo = cache.geometry
    kh, kw = geo.kernel
    t = cache.argmax.astype(np.int64)
    if t.size and int(t.max()) >= kh * kw:
        raise ClearConvError("max_pool2d_indices: this forward ran with a fused ReLU, some "
                             "windows have no maximum to point at; pool with relu=False")
    i, j = np.divmod(t, kw)
    (pt, _), (pl, _) = geo.padding
    ho, wo = geo.out_shape[2:]
    rows = (np.arange(ho) * geo.stride[0] - pt)[:, None] + i * geo.dilation[0]
    cols = (np.arange(wo) * geo.stride[1] - pl)[None, :] + j * geo.dilation[1]
    h, w = geo.in_shape[2:]
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)  # not, only for a window
    return np.where(inside, rows * w + cols, -1)                   # of padding (dilation)


class MaxUnpool2dCache(NamedTuple):
    """What :func:`max_unpool2d_backward` needs: where each input value went."""

    flat: np.ndarray        # (N*C, H*W): each input value's flat index in its output plane
    in_shape: tuple[int, int, int, int]
    out_shape: tuple[int, int, int, int]
    dtype: np.dtype


def max_unpool2d_forward(x: np.ndarray, indices: np.ndarray, kernel_size: IntPair,
                         stride: IntPair | None = None, padding: Any = 0,
                         output_size: Any = None) -> tuple[np.ndarray, MaxUnpool2dCache]:
    """Max unpooling, PyTorch's ``max_unpool2d``: each value back where its maximum was.

    ``y[n, c].flat[indices[n, c, m, k]] = x[n, c, m, k]``, zeros elsewhere: the scatter
    of MATH.md §11's mask, as a forward op (the backward of max pooling applied to x).

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W), e.g. a max pooling's output
    indices : integer ndarray of x's shape, :func:`max_pool2d_indices` of that pooling
    kernel_size, stride, padding : the pooling's
    output_size : (H_out, W_out), default ``(H - 1)*s - 2p + k``

    Returns
    -------
    y : ndarray of shape (N, C, H_out, W_out)
    cache : MaxUnpool2dCache
    """
    x = as_float(x)
    check_nchw(x, "max_unpool2d")
    indices = np.asarray(indices)
    if indices.shape != x.shape or indices.dtype.kind not in "iu":
        raise ShapeError(f"max_unpool2d: indices must be integers of x's shape {x.shape}, "
                         f"got {indices.dtype} of shape {indices.shape}")
    n, c, h, w = x.shape
    ho, wo = unpool_output_size((h, w), kernel_size, stride, padding, output_size)
    flat = indices.reshape(n * c, h * w).astype(np.int64)
    if flat.size and (flat.min() < 0 or flat.max() >= ho * wo):
        bad = flat[(flat < 0) | (flat >= ho * wo)][0]
        raise ShapeError(f"max_unpool2d: index {bad} is outside the output plane "
                         f"{ho}x{wo} (0 <= index < {ho * wo})")
    y = np.zeros((n * c, ho * wo), x.dtype)
    y[np.arange(n * c)[:, None], flat] = x.reshape(n * c, h * w)
    return y.reshape(n, c, ho, wo), MaxUnpool2dCache(flat, (n, c, h, w), (n, c, ho, wo),
                                                     x.dtype)


def max_unpool2d_backward(dy: np.ndarray, cache: MaxUnpool2dCache) -> np.ndarray:
    """Backward of max unpooling: each input value's gradient is read where it went,
    ``dx[n, c, m, k] = dy[n, c].flat[indices[n, c, m, k]]`` (a gather).

    Returns dx of shape (N, C, H, W).
    """
    dy = np.asarray(dy, dtype=cache.dtype)
    if dy.shape != cache.out_shape:
        raise ShapeError(f"max_unpool2d_backward: dy has shape {dy.shape}, the forward "
                         f"output was {cache.out_shape}")
    n, c = cache.in_shape[:2]
    planes = dy.reshape(n * c, -1)
    return planes[np.arange(n * c)[:, None], cache.flat].reshape(cache.in_shape)
