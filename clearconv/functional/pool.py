"""Max and average pooling, forward and backward: MATH.md §10-11, PyTorch semantics.

Max pooling copies each window once into a contiguous (..., kh*kw) layout and takes
``argmax`` over the last axis: ties go to the first maximum in row-major window order,
as PyTorch does. The argmax indices are the mask of MATH.md §11; backward routes each
gradient to its window's argmax and adds the kh*kw kernel offsets back onto the input
with strided slices, so overlapping windows (stride < kernel) accumulate.

Average pooling divides each window sum by the window size (``count_include_pad=True``:
padding zeros count, PyTorch's default), and its backward spreads ``dZ / f^2`` over the
window.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import ClearConvError, ShapeError
from ..shapes import IntPair, pair, pool_output_size
from ._windows import as_float, check_nchw, col2im_add, crop_nchw, pad_nchw, sliding_windows


class PoolGeometry(NamedTuple):
    """Everything about a pooling call except the arrays."""

    in_shape: tuple[int, int, int, int]
    out_shape: tuple[int, int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[tuple[int, int], tuple[int, int]]  # incl. the extra of ceil_mode


class MaxPool2dCache(NamedTuple):
    """What :func:`max_pool2d_backward` needs: the argmax mask and the geometry."""

    argmax: np.ndarray      # (N, C, H_out, W_out): flat index of the max in its window
    dtype: np.dtype
    geometry: PoolGeometry


class AvgPool2dCache(NamedTuple):
    """What :func:`avg_pool2d_backward` needs: the divisor map and the geometry."""

    divisor: np.ndarray     # (H_out, W_out): what each window sum was divided by
    dtype: np.dtype
    geometry: PoolGeometry


def pool2d_geometry(x_shape: tuple[int, ...], kernel_size: IntPair, stride: IntPair | None,
                    padding: IntPair, ceil_mode: bool, op: str = "pool2d") -> PoolGeometry:
    """Check a pooling call and work out its geometry (PyTorch rules).

    ``padding`` is symmetric (int or (ph, pw)) and at most half the window; with
    ``ceil_mode`` the bottom/right are padded further so the last partial window exists.
    """
    n, c, h, w = x_shape
    k = pair(kernel_size, "kernel_size")
    s = k if stride is None else pair(stride, "stride")
    p = pair(padding, "padding", minimum=0)
    try:
        ho = pool_output_size(h, k[0], s[0], p[0], ceil_mode)
        wo = pool_output_size(w, k[1], s[1], p[1], ceil_mode)
    except ClearConvError as e:
        raise type(e)(f"{op}: window {k} with padding {p} on input {h}x{w}: {e}") from None
    extra_h = max(0, (ho - 1) * s[0] + k[0] - (h + 2 * p[0]))
    extra_w = max(0, (wo - 1) * s[1] + k[1] - (w + 2 * p[1]))
    pads = ((p[0], p[0] + extra_h), (p[1], p[1] + extra_w))
    return PoolGeometry((n, c, h, w), (n, c, ho, wo), k, s, pads)


def _windows(x: np.ndarray, geo: PoolGeometry, fill: float) -> np.ndarray:
    xp = pad_nchw(x, geo.padding, fill)
    return sliding_windows(xp, geo.kernel, geo.out_shape[2:], geo.stride)


def _route_back(dwin: np.ndarray, geo: PoolGeometry, dtype: np.dtype) -> np.ndarray:
    """Add window gradients ``dwin`` (N, C, H_out, W_out, kh, kw) onto the input."""
    n, c, h, w = geo.in_shape
    (pt, pb), (pl, pr) = geo.padding
    dxp = np.zeros((n, c, h + pt + pb, w + pl + pr), dtype=dtype)
    col2im_add(dxp, dwin.transpose(0, 1, 4, 5, 2, 3), geo.stride)
    return crop_nchw(dxp, geo.padding)


def max_pool2d_forward(x: np.ndarray, kernel_size: IntPair, stride: IntPair | None = None,
                       padding: IntPair = 0, ceil_mode: bool = False
                       ) -> tuple[np.ndarray, MaxPool2dCache]:
    """Max pooling (MATH.md §10): each output is the maximum of its window.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    kernel_size : int or (kh, kw)
    stride : int or (sh, sw); defaults to kernel_size
    padding : int or (ph, pw), at most half the window; padded cells count as -inf
    ceil_mode : round the output size up (PyTorch's rule)

    Returns
    -------
    y : ndarray of shape (N, C, H_out, W_out), ``H_out = floor((H + 2p - k)/s) + 1``
    cache : MaxPool2dCache holding the argmax mask (MATH.md §11)
    """
    x = as_float(x)
    check_nchw(x, "max_pool2d")
    geo = pool2d_geometry(x.shape, kernel_size, stride, padding, ceil_mode, "max_pool2d")
    n, c, ho, wo = geo.out_shape
    kh, kw = geo.kernel
    flat = _windows(x, geo, -np.inf).reshape(n, c, ho, wo, kh * kw)  # one copy
    idx = flat.argmax(axis=-1)
    y = np.take_along_axis(flat, idx[..., None], axis=-1)[..., 0]
    return y, MaxPool2dCache(idx, x.dtype, geo)


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
    n, c, ho, wo = geo.out_shape
    kh, kw = geo.kernel
    dwin = np.zeros((n, c, ho, wo, kh * kw), dtype=dtype)
    np.put_along_axis(dwin, idx[..., None], dy[..., None], axis=-1)
    return _route_back(dwin.reshape(n, c, ho, wo, kh, kw), geo, dtype)


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
    y = _windows(x, geo, 0.0).sum(axis=(-2, -1))
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
    dwin = np.broadcast_to(share[..., None, None], share.shape + geo.kernel)
    return _route_back(dwin, geo, dtype)
