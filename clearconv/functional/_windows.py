"""Window plumbing shared by conv and pooling: dtype policy, padding, kernel-offset views.

Nothing here is a formula of MATH.md by itself; it is the indexing that lets the
formulas run as whole-array operations instead of per-pixel loops.
"""

from __future__ import annotations

import numpy as np


def pad_nchw(x: np.ndarray, pads: tuple[tuple[int, int], tuple[int, int]],
             value: float = 0.0) -> np.ndarray:
    """Pad the H and W axes of ``x`` (N, C, H, W) by ``((top, bottom), (left, right))``.

    Returns ``x`` itself when there is nothing to pad (no copy).
    """
    (pt, pb), (pl, pr) = pads
    if pt == pb == pl == pr == 0:
        return x
    n, c, h, w = x.shape
    out = np.empty((n, c, h + pt + pb, w + pl + pr), dtype=x.dtype)
    if value == 0.0:
        # zero only the borders; the interior is overwritten just below
        out[:, :, :pt] = 0
        out[:, :, pt + h:] = 0
        out[:, :, pt:pt + h, :pl] = 0
        out[:, :, pt:pt + h, pl + w:] = 0
    else:
        out.fill(value)
    out[:, :, pt:pt + h, pl:pl + w] = x
    return out


def padded_nhwc(x: np.ndarray, pads: tuple[tuple[int, int], tuple[int, int]]) -> np.ndarray:
    """x (N, C, H, W) as a C-contiguous (N, H_pad, W_pad, C) array with zero borders
    ``((top, bottom), (left, right))``: A_pad of MATH.md §4, channels last (the input of
    channels-last im2col and Winograd). No copy when x is already such an array."""
    (pt, pb), (pl, pr) = pads
    n, c, h, w = x.shape
    xh = x.transpose(0, 2, 3, 1)
    if pt == pb == pl == pr == 0:
        return np.ascontiguousarray(xh)
    out = np.zeros((n, h + pt + pb, w + pl + pr, c), x.dtype)
    out[:, pt:pt + h, pl:pl + w] = xh
    return out


def crop_nchw(xp: np.ndarray, pads: tuple[tuple[int, int], tuple[int, int]]) -> np.ndarray:
    """Undo :func:`pad_nchw`: drop the padded border of ``xp``."""
    (pt, pb), (pl, pr) = pads
    if pt == pb == pl == pr == 0:
        return xp
    h, w = xp.shape[2] - pt - pb, xp.shape[3] - pl - pr
    return xp[:, :, pt:pt + h, pl:pl + w]


def is_channels_last(x: np.ndarray) -> bool:
    """True when the (N, C, H, W) array ``x`` is stored channels-last (NHWC in memory).

    Conv2d returns its output as an NCHW view of NHWC memory (what PyTorch calls the
    channels_last memory format); the ops below keep that layout so that the next
    conv's im2col reads contiguous channel runs.
    """
    return x.ndim == 4 and x.shape[1] > 1 and x.strides[1] == x.itemsize \
        and x.strides[3] == x.itemsize * x.shape[1]


def zeros_like_layout(shape: tuple[int, int, int, int], dtype: np.dtype,
                      channels_last: bool) -> np.ndarray:
    """Zeros of NCHW ``shape``, stored channels-last when asked (an NCHW view of NHWC)."""
    if channels_last:
        n, c, h, w = shape
        return np.zeros((n, h, w, c), dtype).transpose(0, 3, 1, 2)
    return np.zeros(shape, dtype)


def pad_like(x: np.ndarray, pads: tuple[tuple[int, int], tuple[int, int]],
             value: float) -> np.ndarray:
    """:func:`pad_nchw` that keeps a channels-last layout (returns ``x`` when no padding)."""
    (pt, pb), (pl, pr) = pads
    if pt == pb == pl == pr == 0:
        return x
    if not is_channels_last(x):
        return pad_nchw(x, pads, value)
    n, c, h, w = x.shape
    out = np.full((n, h + pt + pb, w + pl + pr, c), value, x.dtype).transpose(0, 3, 1, 2)
    out[:, :, pt:pt + h, pl:pl + w] = x
    return out


def offset_view(xp: np.ndarray, i: int, j: int, out_hw: tuple[int, int],
                stride: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> np.ndarray:
    """The (N, C, H_out, W_out) strided view of ``xp`` that kernel offset (i, j) touches:
    ``view[n, c, m, k] = xp[n, c, m*s_h + i*d_h, k*s_w + j*d_w]``."""
    r0, c0 = i * dilation[0], j * dilation[1]
    return xp[:, :, r0:r0 + stride[0] * (out_hw[0] - 1) + 1:stride[0],
              c0:c0 + stride[1] * (out_hw[1] - 1) + 1:stride[1]]
