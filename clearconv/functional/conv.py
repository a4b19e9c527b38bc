"""2-D convolution (cross-correlation, as PyTorch and ONNX): MATH.md §3-9.

Forward (§7)::

    Z[n, o, m, k] = sum_{c,i,j} W[o, c, i, j] * A_pad[n, c, m*s_h + i*d_h, k*s_w + j*d_w] + b[o]

Backward (§9):

- ``db[o] = sum_{n,m,k} dZ[n, o, m, k]``
- ``dW[o, c, i, j] = sum_{n,m,k} dZ[n, o, m, k] * A_pad[n, c, m*s_h + i*d_h, k*s_w + j*d_w]``
- ``dA_pad[n, c, r, q] = sum_{o,i,j} dZ[n, o, m, k] * W[o, c, i, j]`` over the windows
  (m, k) whose offset (i, j) lands on (r, q): the "full" convolution of dZ (spread out
  with s-1 zeros between its rows and columns) with the kernel rotated 180°; then the
  padding is cropped off.

This module is the readable algorithm, ``'im2col'`` (:func:`im2col_forward`,
:func:`im2col_backward`): the windows of ``A_pad`` copied once into columns, one matrix
product with the weight, and for the backward two more products with the same columns
and the same weight, the input gradient's columns added back onto their windows one
kernel offset at a time (col2im). It computes every geometry, in NumPy alone, exactly as
:mod:`clearconv.reference` writes it loop by loop (the tests hold the two together).

:func:`conv2d_forward` checks its arguments, asks the algorithm registry
(:mod:`clearconv.kernels.registry`) which algorithm computes the call ('auto': the first
of :data:`clearconv.kernels.tuning.AUTO_ORDER` that applies, this one when no faster
one does) and records the answer in the cache; :func:`conv2d_backward` runs the same
algorithm's backward. :func:`conv2d_algorithm` says which one 'auto' takes, and why.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..errors import ClearConvError, ShapeError
from ..kernels import registry
from ..shapes import ConvGeometry, IntPair, PaddingArg, as_float, check_nchw, conv2d_geometry
from ._windows import padded_nhwc

OP = "conv2d"


class ConvCall(NamedTuple):
    """What an algorithm's predicate sees of a conv2d call."""

    geometry: ConvGeometry
    dtype: np.dtype

    def __str__(self) -> str:
        g = self.geometry
        return (f"x{g.in_shape} -> {g.out_shape} kernel {g.kernel} stride {g.stride} "
                f"padding {g.padding} dilation {g.dilation} {np.dtype(self.dtype).name}")


class Conv2dCache(NamedTuple):
    """What :func:`conv2d_backward` needs from the forward pass."""

    algorithm: str          # the algorithm that computed the forward (and runs backward)
    weight: np.ndarray      # (C_out, C_in, kh, kw)
    has_bias: bool
    geometry: ConvGeometry
    saved: Any              # what that algorithm's backward needs ('im2col': the columns);
                            # None after need_backward=False


def conv2d_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
                   stride: IntPair = 1, padding: PaddingArg = 0, dilation: IntPair = 1,
                   algorithm: str = "auto", need_backward: bool = True
                   ) -> tuple[np.ndarray, Conv2dCache]:
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
    algorithm : 'auto' (default) or a registered name: 'im2col' (this module: any
        geometry, NumPy), 'im2col-split', 'winograd', 'direct' (see
        ``python -m clearconv.kernels`` for the list and :func:`conv2d_algorithm` for
        which one 'auto' takes and why). The same sums, rounded differently.
    need_backward : keep what :func:`conv2d_backward` needs (default). False (inference)
        keeps nothing (``cache.saved`` is None; the cache still names the algorithm).

    Returns
    -------
    y : ndarray of shape (N, C_out, H_out, W_out),
        ``H_out = floor((H + p_t + p_b - d*(kh-1) - 1)/s) + 1``
    cache : Conv2dCache for :func:`conv2d_backward`

    The result dtype is float64 if any input is float64, else float32.
    """
    x, weight, bias, geo = _checked(x, weight, bias, stride, padding, dilation)
    algo = registry.resolve(OP, algorithm, ConvCall(geo, x.dtype))
    y, saved = algo.forward(x, weight, bias, geo, need_backward)
    return y, Conv2dCache(algo.name, weight, bias is not None, geo,
                          saved if need_backward else None)


def conv2d_backward(dy: np.ndarray, cache: Conv2dCache, input_grad: bool = True
                    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Backward pass of :func:`conv2d_forward` (MATH.md §9), by the forward's algorithm.

    Parameters
    ----------
    dy : ndarray of shape (N, C_out, H_out, W_out), dL/dZ
    cache : from :func:`conv2d_forward` (with ``need_backward=True``)
    input_grad : compute dx (False skips it, e.g. for a network's first layer: dx is None)

    Returns
    -------
    dx : ndarray of shape (N, C_in, H, W), dL/dA of the layer input
    dweight : ndarray of shape (C_out, C_in, kh, kw)
    dbias : ndarray of shape (C_out,), or None when the forward had no bias
    """
    dy = _checked_grad(dy, cache, "conv2d_backward", cache.geometry.out_shape)
    return registry.get(OP, cache.algorithm).backward(dy, cache, input_grad)


def conv2d_algorithm(x_shape: tuple[int, ...], weight_shape: tuple[int, ...],
                     stride: IntPair = 1, padding: PaddingArg = 0, dilation: IntPair = 1,
                     dtype: Any = np.float32, algorithm: str = "auto") -> registry.Choice:
    """Which algorithm :func:`conv2d_forward` takes for these shapes, and why.

    >>> print(conv2d_algorithm((64, 1, 28, 28), (32, 1, 3, 3), padding=1).name)  # doctest: +SKIP
    im2col-split

    ``str()`` of the result lists every candidate with the reason it was taken or not.
    """
    geo = conv2d_geometry(tuple(x_shape), tuple(weight_shape), stride, padding, dilation)
    return registry.choose(OP, algorithm, ConvCall(geo, np.dtype(dtype)))


def _checked(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: IntPair,
             padding: PaddingArg, dilation: IntPair
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, ConvGeometry]:
    """conv2d's arguments checked and cast to their common float dtype, and the geometry."""
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
    return x, weight, bias, geo


def _checked_grad(dy: np.ndarray, cache: Any, op: str, shape: tuple[int, ...]) -> np.ndarray:
    """dy as the forward's dtype, checked against the forward's output shape and cache."""
    if cache.saved is None:
        raise ClearConvError(f"{op}: the forward ran with need_backward=False and kept "
                             f"nothing to differentiate")
    dy = np.asarray(dy, dtype=cache.weight.dtype)
    if dy.shape != tuple(shape):
        raise ShapeError(f"{op}: dy has shape {dy.shape}, the forward output was {shape}")
    return dy


# ----------------------------------------------------------------- the readable algorithm
def weight_matrix(weight: np.ndarray) -> np.ndarray:
    """W (C_out, C_in, kh, kw) as the (C_out, kh*kw*C_in) matrix that multiplies the
    columns of :func:`im2col` (channels innermost, like the columns)."""
    c_out = weight.shape[0]
    return weight.transpose(0, 2, 3, 1).reshape(c_out, -1)


def weight_from_matrix(dw2: np.ndarray, shape: tuple[int, int, int, int]) -> np.ndarray:
    """The inverse of :func:`weight_matrix`: (C_out, kh*kw*C_in) -> (C_out, C_in, kh, kw)."""
    c_out, c, kh, kw = shape
    return np.ascontiguousarray(dw2.reshape(c_out, kh, kw, c).transpose(0, 3, 1, 2))


def windows(xph: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """The (N, H_out, W_out, kh, kw, C) read-only view of padded NHWC input ``xph`` whose
    ``[n, m, k]`` is the window of output (m, k): ``A_pad[n, :, m*s + i*d, k*s + j*d]``."""
    n, _, _, c = xph.shape
    _, _, ho, wo = geo.out_shape
    kh, kw = geo.kernel
    sn, sh, sw, sc = xph.strides
    return as_strided(xph, shape=(n, ho, wo, kh, kw, c),
                      strides=(sn, sh * geo.stride[0], sw * geo.stride[1],
                               sh * geo.dilation[0], sw * geo.dilation[1], sc),
                      writeable=False)


def im2col(xph: np.ndarray, geo: ConvGeometry, out: np.ndarray | None = None) -> np.ndarray:
    """im2col: ``cols[(n, m, k), (i, j, c)] = A_pad[n, c, m*s_h + i*d_h, k*s_w + j*d_w]``,
    each window of padded NHWC input ``xph`` copied into one row: (n*H_out*W_out,
    kh*kw*C). Written into ``out`` when given (which must be C-contiguous)."""
    win = windows(xph, geo)
    if out is None:
        return win.reshape(-1, int(np.prod(win.shape[3:])))     # a copy: one pass
    dst = out.view()   # setting .shape raises rather than copying: writes must land in out
    dst.shape = win.shape
    dst[...] = win
    return out


def col2im(dcols: np.ndarray, geo: ConvGeometry, dxph: np.ndarray) -> np.ndarray:
    """The transpose of :func:`im2col`: add each row of ``dcols`` (n*H_out*W_out,
    kh*kw*C) back onto its window of ``dxph``, zeros (n, H_pad, W_pad, C), one kernel
    offset (i, j) at a time: ``dA_pad[n, m*s + i*d, k*s + j*d, :] += dcols[(n, m, k), (i, j, :)]``.

    With dcols = dZ W this is MATH.md §9's full convolution of dZ with the rotated
    kernel: the output pixel (m, k) sends ``dZ[m, k] * W[:, :, i, j]`` to input pixel
    (m*s + i*d, k*s + j*d), which is the rotated kernel's offset (kh-1-i, kw-1-j) sliding
    over dZ spread out with s-1 zeros. Returns ``dxph``.
    """
    n, _, _, c = dxph.shape
    _, _, ho, wo = geo.out_shape
    kh, kw = geo.kernel
    (sh, sw), (dh, dw) = geo.stride, geo.dilation
    d = dcols.reshape(n, ho, wo, kh, kw, c)
    for i in range(kh):
        for j in range(kw):
            dxph[:, i * dh:i * dh + sh * (ho - 1) + 1:sh,
                 j * dw:j * dw + sw * (wo - 1) + 1:sw] += d[:, :, :, i, j]
    return dxph


def crop(dxph: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """dA from dA_pad: the padded NHWC gradient cropped to the input, seen as NCHW."""
    (pt, _), (pl, _) = geo.padding
    _, _, h, w = geo.in_shape
    return dxph[:, pt:pt + h, pl:pl + w].transpose(0, 3, 1, 2)


def im2col_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
                   geo: ConvGeometry, need_backward: bool
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Z = W * A + b as one matrix product of the im2col columns with the weight.

    Returns y as an NCHW view of NHWC memory (PyTorch's ``channels_last`` format: the
    next conv's im2col reads its channels contiguously, without a transpose copy) and
    the columns, which the backward multiplies again.
    """
    n, c_out, ho, wo = geo.out_shape
    cols = im2col(padded_nhwc(x, geo.padding), geo)       # (N*Ho*Wo, kh*kw*C_in)
    z = cols @ weight_matrix(weight).T                       # (N*Ho*Wo, C_out)
    if bias is not None:
        z += bias
    return z.reshape(n, ho, wo, c_out).transpose(0, 3, 1, 2), cols


def im2col_backward(dy: np.ndarray, cache: Conv2dCache, input_grad: bool
                    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """MATH.md §9 with the forward's columns: dW = dZ^T cols, db = 1^T dZ,
    dA = col2im(dZ W)."""
    geo, weight, cols = cache.geometry, cache.weight, cache.saved
    c_out = weight.shape[0]
    dz = dy.transpose(0, 2, 3, 1).reshape(-1, c_out)        # (N*Ho*Wo, C_out), rows (n, m, k)
    dweight = weight_from_matrix(dz.T @ cols, weight.shape)
    # db = 1^T dZ: a product sums blocked, more exactly than a running sum down the rows
    dbias = np.ones(dz.shape[0], dz.dtype) @ dz if cache.has_bias else None
    if not input_grad:
        return None, dweight, dbias
    n, c, h, w = geo.in_shape
    (pt, pb), (pl, pr) = geo.padding
    dxph = np.zeros((n, h + pt + pb, w + pl + pr, c), dy.dtype)
    col2im(dz @ weight_matrix(weight), geo, dxph)           # dcols = dZ W
    return crop(dxph, geo), dweight, dbias


def _supports_any(call: ConvCall) -> tuple[bool, str]:
    return True, "any geometry, NumPy only"


registry.register(registry.Algorithm(
    OP, "im2col", _supports_any, im2col_forward, im2col_backward,
    "the readable path: im2col columns and one matrix product (MATH.md §7, §9)",
    layout="channels-last"))
