"""Nearest and bilinear upsampling, forward and backward, with the semantics of
``torch.nn.functional.interpolate`` (modes 'nearest' and 'bilinear').

The output size is ``size`` or ``floor(H * scale_factor)``. Output row ``r`` reads
source coordinate ``src(r)``; the same rule, separately, for columns:

- nearest: ``src(r) = min(floor(r * scale), H - 1)`` with ``scale = 1/scale_factor``
  when a scale factor is given, else ``H / H_out``, computed in float32 as PyTorch
  does (so that both pick the same rows);
- bilinear, ``align_corners=False``: ``src(r) = max((r + 0.5) * scale - 0.5, 0)``;
  ``align_corners=True``: ``src(r) = r * (H - 1)/(H_out - 1)``. Row r is
  ``(1 - l) * X[h0] + l * X[h1]`` with ``h0 = floor(src)``, ``h1 = min(h0 + 1, H - 1)``,
  ``l = src - h0``.

Both are separable: the forward interpolates along H (whole rows gathered), then along
W (whole columns), no per-pixel loop. The backward is the transpose: each output
row's gradient added back into the source rows it was made of (the output rows that
read one source row are a run; the t-th rows of all runs are added at once), then the
same for columns.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..errors import ShapeError
from ..shapes import as_float, check_nchw, upsample_output_size


class UpsampleCache(NamedTuple):
    """What the backward of an upsampling needs: each axis's sources and weights."""

    rows: tuple[np.ndarray, ...]   # nearest: (h_src,); bilinear: (h0, h1, l1)
    cols: tuple[np.ndarray, ...]
    in_shape: tuple[int, int, int, int]
    dtype: np.dtype


def nearest_sources(size: int, out: int, scale_factor: float | None) -> np.ndarray:
    """The source index of each output position along one axis (module docstring)."""
    if out == size:
        return np.arange(out)
    if out == 2 * size:
        return np.arange(out) // 2
    scale = np.float32(1.0 / scale_factor) if scale_factor else \
        np.float32(size) / np.float32(out)
    src = np.floor(np.arange(out, dtype=np.float32) * scale).astype(np.int64)
    return np.minimum(src, size - 1)


def bilinear_sources(size: int, out: int, scale_factor: float | None, align_corners: bool
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(h0, h1, l1)`` along one axis: output r is ``(1 - l1) X[h0] + l1 X[h1]``."""
    r = np.arange(out, dtype=np.float64)
    if out == size:
        idx = np.arange(out)
        return idx, idx, np.zeros(out)
    if align_corners:
        src = r * ((size - 1) / (out - 1) if out > 1 else 0.0)
    else:
        scale = 1.0 / scale_factor if scale_factor else size / out
        src = np.maximum((r + 0.5) * scale - 0.5, 0.0)
    h0 = np.minimum(np.floor(src).astype(np.int64), size - 1)
    l1 = np.clip(src - h0, 0.0, 1.0)
    h1 = h0 + (h0 < size - 1)
    return h0, h1, l1


def _as_slice(index: np.ndarray) -> slice | np.ndarray:
    """``index`` as a slice where it is an arithmetic progression (a view instead of a
    gather: the integer scale factors), else itself."""
    if len(index) == 1:
        return slice(int(index[0]), int(index[0]) + 1)
    step = int(index[1] - index[0])
    if step > 0 and np.array_equal(np.diff(index), np.full(len(index) - 1, step)):
        return slice(int(index[0]), int(index[-1]) + 1, step)
    return index


def _sum_into(values: np.ndarray, index: np.ndarray, size: int, axis: int) -> np.ndarray:
    """``out[..., j, ...] = sum of values[..., k, ...] over k with index[k] == j`` along
    ``axis``. ``index`` is non-decreasing, so each j's terms are one run of k: the t-th
    terms of every run are added at once, for t up to the longest run (2 passes for a
    scale factor of 2, each a strided view where the runs are regular)."""
    starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
    lengths = np.diff(np.r_[starts, len(index)])
    targets = index[starts]
    shape = list(values.shape)
    shape[axis] = size
    out = np.zeros(shape, values.dtype)
    lead = (slice(None),) * axis
    for t in range(int(lengths.max())):
        has = lengths > t
        out[lead + (_as_slice(targets[has]),)] += values[lead + (_as_slice(starts[has] + t),)]
    return out


def _weights(l1: np.ndarray, dtype: np.dtype, axis: int) -> tuple[np.ndarray, np.ndarray]:
    shape = [1, 1, 1, 1]
    shape[axis] = -1
    return (1 - l1).astype(dtype).reshape(shape), l1.astype(dtype).reshape(shape)


# ---------------------------------------------------------------------------- nearest
def upsample_nearest2d_forward(x: np.ndarray, size: Any = None, scale_factor: Any = None
                               ) -> tuple[np.ndarray, UpsampleCache]:
    """Nearest-neighbour upsampling (``interpolate(mode='nearest')``):
    ``Y[n, c, r, q] = X[n, c, src_h(r), src_w(q)]``, a gather of rows, then of columns.

    x (N, C, H, W) -> y (N, C, H_out, W_out); ``size`` int or (h, w), or
    ``scale_factor`` number or (sh, sw) (module docstring).
    """
    x = as_float(x)
    check_nchw(x, "upsample_nearest2d")
    (ho, wo), (fh, fw) = upsample_output_size(x.shape[2:], size, scale_factor,
                                              "upsample_nearest2d")
    rows = nearest_sources(x.shape[2], ho, fh)
    cols = nearest_sources(x.shape[3], wo, fw)
    y = np.take(np.take(x, rows, axis=2), cols, axis=3)
    return y, UpsampleCache((rows,), (cols,), x.shape, x.dtype)


def upsample_nearest2d_backward(dy: np.ndarray, cache: UpsampleCache) -> np.ndarray:
    """``dX[n, c, h, w]`` = the sum of ``dY`` over the outputs that copied (h, w):
    rows first, then columns. Returns dx (N, C, H, W)."""
    (rows,), (cols,), (n, c, h, w), dtype = cache
    dy = _grad(dy, cache, "upsample_nearest2d_backward")
    return _sum_into(_sum_into(dy, rows, h, 2), cols, w, 3)


def _grad(dy: np.ndarray, cache: UpsampleCache, op: str) -> np.ndarray:
    n, c = cache.in_shape[:2]
    shape = (n, c, len(cache.rows[0]), len(cache.cols[0]))
    dy = np.asarray(dy, dtype=cache.dtype)
    if dy.shape != shape:
        raise ShapeError(f"{op}: dy has shape {dy.shape}, the forward output was {shape}")
    return dy


# --------------------------------------------------------------------------- bilinear
def upsample_bilinear2d_forward(x: np.ndarray, size: Any = None, scale_factor: Any = None,
                                align_corners: bool = False
                                ) -> tuple[np.ndarray, UpsampleCache]:
    """Bilinear upsampling (``interpolate(mode='bilinear', align_corners=...)``): along
    H, ``T[r] = (1 - l1[r]) X[h0[r]] + l1[r] X[h1[r]]``; then the same along W.

    x (N, C, H, W) -> y (N, C, H_out, W_out); ``size`` or ``scale_factor`` as
    :func:`upsample_nearest2d_forward`; the source coordinates of the module docstring.
    """
    x = as_float(x)
    check_nchw(x, "upsample_bilinear2d")
    (ho, wo), (fh, fw) = upsample_output_size(x.shape[2:], size, scale_factor,
                                              "upsample_bilinear2d")
    rows = bilinear_sources(x.shape[2], ho, fh, bool(align_corners))
    cols = bilinear_sources(x.shape[3], wo, fw, bool(align_corners))
    a0, a1 = _weights(rows[2], x.dtype, 2)
    b0, b1 = _weights(cols[2], x.dtype, 3)
    t = np.take(x, rows[0], axis=2) * a0 + np.take(x, rows[1], axis=2) * a1   # along H
    y = np.take(t, cols[0], axis=3) * b0 + np.take(t, cols[1], axis=3) * b1   # along W
    return y, UpsampleCache(rows, cols, x.shape, x.dtype)


def upsample_bilinear2d_backward(dy: np.ndarray, cache: UpsampleCache) -> np.ndarray:
    """The forward transposed: ``dT[.., w] += (1 - l1) dY`` at ``w0`` and ``l1 dY`` at
    ``w1``, then ``dX[.., h] +=`` the same along H. Returns dx (N, C, H, W)."""
    (h0, h1, lh), (w0, w1, lw), (n, c, h, w), dtype = cache
    dy = _grad(dy, cache, "upsample_bilinear2d_backward")
    a0, a1 = _weights(lh, dtype, 2)
    b0, b1 = _weights(lw, dtype, 3)
    dt = _sum_into(dy * b0, w0, w, 3) + _sum_into(dy * b1, w1, w, 3)
    return _sum_into(dt * a0, h0, h, 2) + _sum_into(dt * a1, h1, h, 2)
