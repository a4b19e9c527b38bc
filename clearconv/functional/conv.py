"""2-D convolution (cross-correlation, as PyTorch and ONNX): MATH.md §3-9.

Forward (§7): ``Z[n, o, m, k] = sum_{c,i,j} W[o, c, i, j] * A_pad[n, c, m*s_h + i*d_h, k*s_w + j*d_w] + b[o]``

computed as one matrix product per image: the windows of ``A_pad`` are copied once into
columns (``im2col``, shape (C_in*kh*kw, H_out*W_out)) and multiplied by the weight
reshaped to (C_out, C_in*kh*kw).

Backward (§9):

- ``db[o] = sum_{n,m,k} dZ[n, o, m, k]``
- ``dW[o, c, i, j] = sum_{n,m,k} dZ[n, o, m, k] * A_pad[n, c, m*s_h + i*d_h, k*s_w + j*d_w]``
  (a product of dZ with the same columns)
- ``dA_pad = sum_{m,k} W * dZ[m, k]`` placed on each window: the "full" convolution of dZ
  (scattered with s-1 gaps) with the kernel rotated 180°; computed as ``W^T dZ`` per
  image followed by col2im, which adds the kh*kw kernel offsets with strided slices.
  The padding is then cropped off.

``reference.conv2d_backward`` writes the same backward literally as the full
convolution with the rotated kernel; the tests hold the two together.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import ShapeError
from ..shapes import IntPair, Padding2D, PaddingArg, conv_output_size, pair, resolve_padding
from ._windows import as_float, check_nchw, col2im_add, crop_nchw, pad_nchw, sliding_windows


class ConvGeometry(NamedTuple):
    """Everything about a conv2d call except the arrays."""

    in_shape: tuple[int, int, int, int]      # (N, C_in, H, W)
    out_shape: tuple[int, int, int, int]     # (N, C_out, H_out, W_out)
    kernel: tuple[int, int]                  # (kh, kw)
    stride: tuple[int, int]
    padding: Padding2D                       # ((top, bottom), (left, right))
    dilation: tuple[int, int]


class Conv2dCache(NamedTuple):
    """What :func:`conv2d_backward` needs from the forward pass."""

    cols: np.ndarray        # (N, C_in*kh*kw, H_out*W_out): the im2col of the padded input
    weight: np.ndarray      # (C_out, C_in, kh, kw)
    has_bias: bool
    geometry: ConvGeometry


def conv2d_geometry(x_shape: tuple[int, ...], w_shape: tuple[int, ...],
                    stride: IntPair = 1, padding: PaddingArg = 0,
                    dilation: IntPair = 1) -> ConvGeometry:
    """Check shapes and hyper-parameters of a conv2d and work out its geometry.

    Raises :class:`~clearconv.errors.ShapeError` / ``ClearConvError`` (both ``ValueError``)
    with the numbers: channel mismatch (MATH.md §6), kernel larger than the padded input,
    stride, dilation or kernel <= 0, unknown padding.
    """
    if len(w_shape) != 4:
        raise ShapeError(
            f"conv2d weight must have shape (C_out, C_in, kh, kw), got {tuple(w_shape)}"
        )
    n, c, h, w = x_shape
    c_out, c_in, kh, kw = w_shape
    if c != c_in:
        raise ShapeError(
            f"conv2d: input has {c} channels but the kernel expects {c_in} "
            f"(input shape {tuple(x_shape)}, weight shape {tuple(w_shape)})"
        )
    if kh <= 0 or kw <= 0 or c_out <= 0:
        raise ShapeError(f"conv2d weight shape {tuple(w_shape)} has a zero dimension")
    s = pair(stride, "stride")
    d = pair(dilation, "dilation")
    pads = resolve_padding(padding, (kh, kw), s, d, (h, w))
    (pt, pb), (pl, pr) = pads
    try:
        ho = conv_output_size(h, kh, s[0], pt, pb, d[0])
        wo = conv_output_size(w, kw, s[1], pl, pr, d[1])
    except ShapeError as e:
        raise ShapeError(
            f"conv2d: kernel {kh}x{kw} (dilation {d}) does not fit the input {h}x{w} "
            f"with padding {pads}: {e}"
        ) from None
    return ConvGeometry((n, c, h, w), (n, c_out, ho, wo), (kh, kw), s, pads, d)


def conv2d_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
                   stride: IntPair = 1, padding: PaddingArg = 0,
                   dilation: IntPair = 1) -> tuple[np.ndarray, Conv2dCache]:
    """Forward pass of a 2-D convolution layer's linear part, ``Z = W * A + b`` (MATH.md §7).

    Parameters
    ----------
    x : ndarray of shape (N, C_in, H, W)
    weight : ndarray of shape (C_out, C_in, kh, kw)
    bias : ndarray of shape (C_out,) or None
    stride, dilation : int or (h, w)
    padding : int, (ph, pw), ((top, bottom), (left, right)), 'valid' or 'same'.
        'same' with stride 1 is PyTorch's (total ``d*(k-1)``, the odd extra row/column at
        the bottom/right); with stride > 1 it follows TensorFlow's rule (output
        ``ceil(n/s)``, extra at the bottom/right), which PyTorch refuses.

    Returns
    -------
    y : ndarray of shape (N, C_out, H_out, W_out), ``H_out = floor((H + p_t + p_b - d*(kh-1) - 1)/s) + 1``
    cache : Conv2dCache for :func:`conv2d_backward`

    The result dtype is float64 if any input is float64, else float32.
    """
    x = np.asarray(x)
    weight = np.asarray(weight)
    check_nchw(x, "conv2d")
    geo = conv2d_geometry(x.shape, weight.shape, stride, padding, dilation)
    dtype = np.result_type(as_float(x[:0]).dtype, as_float(weight[:0]).dtype)
    x = x.astype(dtype, copy=False)
    weight = weight.astype(dtype, copy=False)
    c_out = weight.shape[0]
    if bias is not None:
        bias = np.asarray(bias, dtype=dtype)
        if bias.shape != (c_out,):
            raise ShapeError(f"conv2d bias must have shape ({c_out},), got {bias.shape}")
    n, c, _, _ = geo.in_shape
    _, _, ho, wo = geo.out_shape
    kh, kw = geo.kernel
    xp = pad_nchw(x, geo.padding)
    win = sliding_windows(xp, geo.kernel, (ho, wo), geo.stride, geo.dilation)
    # im2col: (N, C, Ho, Wo, kh, kw) -> (N, C, kh, kw, Ho, Wo) -> (N, C*kh*kw, Ho*Wo)
    cols = np.ascontiguousarray(win.transpose(0, 1, 4, 5, 2, 3)).reshape(n, c * kh * kw, ho * wo)
    y = np.matmul(weight.reshape(c_out, c * kh * kw), cols)
    if bias is not None:
        y += bias[:, None]
    return y.reshape(n, c_out, ho, wo), Conv2dCache(cols, weight, bias is not None, geo)


def conv2d_backward(dy: np.ndarray, cache: Conv2dCache
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Backward pass of :func:`conv2d_forward` (MATH.md §9).

    Parameters
    ----------
    dy : ndarray of shape (N, C_out, H_out, W_out), dL/dZ
    cache : from :func:`conv2d_forward`

    Returns
    -------
    dx : ndarray of shape (N, C_in, H, W), dL/dA of the layer input
    dweight : ndarray of shape (C_out, C_in, kh, kw)
    dbias : ndarray of shape (C_out,), or None when the forward had no bias
    """
    cols, weight, has_bias, geo = cache
    dy = np.asarray(dy, dtype=weight.dtype)
    if dy.shape != geo.out_shape:
        raise ShapeError(
            f"conv2d_backward: dy has shape {dy.shape}, the forward output was {geo.out_shape}"
        )
    n, c, h, w = geo.in_shape
    c_out = weight.shape[0]
    kh, kw = geo.kernel
    ho, wo = geo.out_shape[2:]
    dy3 = dy.reshape(n, c_out, ho * wo)
    dbias = dy3.sum(axis=(0, 2)) if has_bias else None
    w2 = weight.reshape(c_out, c * kh * kw)
    # dW = sum_n dZ_n @ cols_n^T
    dweight = np.matmul(dy3, cols.transpose(0, 2, 1)).sum(axis=0).reshape(weight.shape)
    # dcols = W^T dZ, then col2im (the full convolution with the rotated kernel)
    dcols = np.matmul(w2.T, dy3).reshape(n, c, kh, kw, ho, wo)
    (pt, pb), (pl, pr) = geo.padding
    dxp = np.zeros((n, c, h + pt + pb, w + pl + pr), dtype=weight.dtype)
    col2im_add(dxp, dcols, geo.stride, geo.dilation)
    return crop_nchw(dxp, geo.padding), dweight, dbias
