"""Global and adaptive pooling, forward and backward: MATH.md §10-11 with the window
chosen by the output size instead of a kernel (PyTorch's ``adaptive_*_pool2d``).

Adaptive pooling to (h_out, w_out) gives output row i the input rows
``[floor(i*H/h_out), ceil((i+1)*H/h_out))`` (PyTorch's rule; windows of neighbouring
rows may overlap, or differ in size, where h_out does not divide H), and the same for
columns. Global pooling is the one window of the whole plane.

- Average: the window mean is separable, so ``Y = A X B^T`` per plane, with ``A`` the
  (h_out, H) matrix whose row i holds ``1 / (end - start)`` over window i (``B`` the
  same for columns); backward ``dX = A^T dY B``. Global average pooling is one mean.
- Max: each window's maximum by PyTorch's rule (first maximum in row-major order wins
  ties, NaN wins); the cache holds its flat index in the plane, where backward sends
  the window's gradient (accumulating where windows overlap).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..errors import ShapeError
from ..shapes import adaptive_output_size, adaptive_windows, as_float, check_nchw
from ._windows import is_channels_last, zeros_like_layout


class GlobalAvgPool2dCache(NamedTuple):
    in_shape: tuple[int, int, int, int]
    dtype: np.dtype
    channels_last: bool = False     # x's memory layout, which dx takes


class MaxIndexCache(NamedTuple):
    """Global and adaptive max pooling: where each output's maximum is in its plane."""

    flat: np.ndarray        # (N, C, h_out, w_out) int64: row * W + col of the maximum
    in_shape: tuple[int, int, int, int]
    dtype: np.dtype


class AdaptiveAvgPool2dCache(NamedTuple):
    rows: np.ndarray        # (h_out, H): the averaging matrix A
    cols: np.ndarray        # (w_out, W): B
    in_shape: tuple[int, int, int, int]
    dtype: np.dtype


def _checked_grad(dy: np.ndarray, dtype: np.dtype, shape: tuple[int, ...], op: str
                  ) -> np.ndarray:
    dy = np.asarray(dy, dtype=dtype)
    if dy.shape != shape:
        raise ShapeError(f"{op}: dy has shape {dy.shape}, the forward output was {shape}")
    return dy


# ------------------------------------------------------------------------------ global
def global_avg_pool2d_forward(x: np.ndarray) -> tuple[np.ndarray, GlobalAvgPool2dCache]:
    """Global average pooling: ``Y[n, c, 0, 0] = mean over (h, w) of X[n, c, h, w]``.

    x (N, C, H, W) -> y (N, C, 1, 1), one reduction (as ``adaptive_avg_pool2d(x, 1)``).
    """
    x = as_float(x)
    check_nchw(x, "global_avg_pool2d")
    return x.mean(axis=(2, 3), keepdims=True), GlobalAvgPool2dCache(x.shape, x.dtype,
                                                                    is_channels_last(x))


def global_avg_pool2d_backward(dy: np.ndarray, cache: GlobalAvgPool2dCache) -> np.ndarray:
    """Every cell of a plane gets ``dY / (H * W)``: dx (N, C, H, W), one pass."""
    n, c, h, w = cache.in_shape
    dy = _checked_grad(dy, cache.dtype, (n, c, 1, 1), "global_avg_pool2d_backward")
    dx = zeros_like_layout(cache.in_shape, cache.dtype, cache.channels_last)
    np.copyto(dx, dy / (h * w))
    return dx


def _first_max(planes: np.ndarray) -> np.ndarray:
    """Index of each row's maximum (..., K) -> (...), PyTorch's rule: the first maximum,
    unless the row holds NaN: then the last NaN (each NaN beats what came before)."""
    idx = planes.argmax(axis=-1)
    nan = np.isnan(planes)
    has_nan = nan.any(axis=-1)
    if has_nan.any():
        last_nan = planes.shape[-1] - 1 - nan[..., ::-1].argmax(axis=-1)
        idx = np.where(has_nan, last_nan, idx)
    return idx


def global_max_pool2d_forward(x: np.ndarray) -> tuple[np.ndarray, MaxIndexCache]:
    """Global max pooling: ``Y[n, c, 0, 0] = max over (h, w) of X[n, c, h, w]``.

    x (N, C, H, W) -> y (N, C, 1, 1); the cache holds where each maximum is.
    """
    x = as_float(x)
    check_nchw(x, "global_max_pool2d")
    n, c, h, w = x.shape
    planes = x.reshape(n, c, h * w)
    flat = _first_max(planes)[:, :, None, None]
    y = np.take_along_axis(planes, flat[:, :, :, 0], axis=2)[:, :, :, None]
    return y, MaxIndexCache(flat, x.shape, x.dtype)


def max_index_backward(dy: np.ndarray, cache: MaxIndexCache, op: str) -> np.ndarray:
    """Each output's gradient to the cell of its maximum, added where windows share one."""
    n, c, h, w = cache.in_shape
    dy = _checked_grad(dy, cache.dtype, cache.flat.shape, op)
    # the cell of each maximum, counted over the whole (N, C, H, W) array
    cell = cache.flat + (np.arange(n * c) * (h * w)).reshape(n, c, 1, 1)
    dx = np.bincount(cell.reshape(-1), weights=dy.reshape(-1), minlength=n * c * h * w)
    return dx.astype(cache.dtype, copy=False).reshape(cache.in_shape)


def global_max_pool2d_backward(dy: np.ndarray, cache: MaxIndexCache) -> np.ndarray:
    """dx (N, C, H, W): each plane's gradient at its maximum, zeros elsewhere."""
    return max_index_backward(dy, cache, "global_max_pool2d_backward")


# ---------------------------------------------------------------------------- adaptive
def _averaging_matrix(size: int, out: int, dtype: np.dtype) -> np.ndarray:
    """(out, size): row i is 1/(end - start) over window i of PyTorch's rule."""
    a = np.zeros((out, size), dtype)
    for i, (start, end) in enumerate(adaptive_windows(size, out)):
        a[i, start:end] = 1.0 / (end - start)
    return a


def adaptive_avg_pool2d_forward(x: np.ndarray, output_size: Any
                                ) -> tuple[np.ndarray, AdaptiveAvgPool2dCache]:
    """Adaptive average pooling to ``output_size`` (int, (h, w); None keeps that size).

    ``Y[n, c] = A X[n, c] B^T`` with the averaging matrices of the module docstring:
    window (i, j) of PyTorch's rule, averaged. x (N, C, H, W) -> y (N, C, h, w).
    """
    x = as_float(x)
    check_nchw(x, "adaptive_avg_pool2d")
    n, c, h, w = x.shape
    ho, wo = adaptive_output_size((h, w), output_size, "adaptive_avg_pool2d")
    a, b = _averaging_matrix(h, ho, x.dtype), _averaging_matrix(w, wo, x.dtype)
    y = a @ x @ b.T
    return y, AdaptiveAvgPool2dCache(a, b, x.shape, x.dtype)


def adaptive_avg_pool2d_backward(dy: np.ndarray, cache: AdaptiveAvgPool2dCache
                                 ) -> np.ndarray:
    """``dX[n, c] = A^T dY[n, c] B``: each window's gradient spread over its cells."""
    a, b, (n, c, _, _), dtype = cache
    dy = _checked_grad(dy, dtype, (n, c, a.shape[0], b.shape[0]),
                       "adaptive_avg_pool2d_backward")
    return np.ascontiguousarray(a.T @ dy @ b)


def adaptive_max_pool2d_forward(x: np.ndarray, output_size: Any
                                ) -> tuple[np.ndarray, MaxIndexCache]:
    """Adaptive max pooling to ``output_size`` (int, (h, w); None keeps that size).

    Output (i, j) is the maximum of window (i, j) of PyTorch's rule (module docstring),
    one window at a time over the whole batch (h*w NumPy steps). x (N, C, H, W) -> y
    (N, C, h, w); the cache holds each maximum's flat index in its plane (PyTorch's
    ``return_indices``).
    """
    x = as_float(x)
    check_nchw(x, "adaptive_max_pool2d")
    n, c, h, w = x.shape
    ho, wo = adaptive_output_size((h, w), output_size, "adaptive_max_pool2d")
    y = np.empty((n, c, ho, wo), x.dtype)
    flat = np.empty((n, c, ho, wo), np.int64)
    for i, (r0, r1) in enumerate(adaptive_windows(h, ho)):
        for j, (q0, q1) in enumerate(adaptive_windows(w, wo)):
            window = x[:, :, r0:r1, q0:q1].reshape(n, c, -1)
            at = _first_max(window)
            y[:, :, i, j] = np.take_along_axis(window, at[:, :, None], axis=2)[:, :, 0]
            flat[:, :, i, j] = (r0 + at // (q1 - q0)) * w + q0 + at % (q1 - q0)
    return y, MaxIndexCache(flat, x.shape, x.dtype)


def adaptive_max_pool2d_backward(dy: np.ndarray, cache: MaxIndexCache) -> np.ndarray:
    """dx (N, C, H, W): each window's gradient at its maximum, added where windows
    overlap."""
    return max_index_backward(dy, cache, "adaptive_max_pool2d_backward")


def adaptive_max_pool2d_indices(cache: MaxIndexCache) -> np.ndarray:
    """PyTorch's ``return_indices`` of a global or adaptive max pooling: ``row * W +
    col`` of each maximum in its input plane, int64 (N, C, h_out, w_out)."""
    return cache.flat.copy()
