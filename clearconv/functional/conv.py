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
from ..shapes import (
    ConvGeometry,
    IntPair,
    PaddingArg,
    as_float,
    check_cache,
    check_nchw,
    conv2d_geometry,
    conv_transpose2d_geometry,
)
from ._windows import padded_nhwc

OP = "conv2d"


class ConvCall(NamedTuple):
    """What an algorithm's predicate sees of a conv2d call."""

    geometry: ConvGeometry
    dtype: np.dtype
    need_backward: bool = True    # False: an inference forward (nothing kept for backward)

    def __str__(self) -> str:
        g = self.geometry
        groups = f" groups {g.groups}" if g.groups != 1 else ""
        mode = "" if self.need_backward else " inference"
        return (f"x{g.in_shape} -> {g.out_shape} kernel {g.kernel} stride {g.stride} "
                f"padding {g.padding} dilation {g.dilation}{groups} "
                f"{np.dtype(self.dtype).name}{mode}")


class Conv2dCache(NamedTuple):
    """What :func:`conv2d_backward` needs from the forward pass."""

    algorithm: str          # the algorithm that computed the forward (and runs backward)
    weight: np.ndarray      # (C_out, C_in / groups, kh, kw)
    has_bias: bool
    geometry: ConvGeometry
    saved: Any              # what that algorithm's backward needs ('im2col': the columns);
                            # None after need_backward=False


def conv2d_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
                   stride: IntPair = 1, padding: PaddingArg = 0, dilation: IntPair = 1,
                   groups: int = 1, algorithm: str = "auto", need_backward: bool = True
                   ) -> tuple[np.ndarray, Conv2dCache]:
    """Forward pass of a 2-D convolution layer's linear part, ``Z = W * A + b`` (MATH.md §7).

    Parameters
    ----------
    x : ndarray of shape (N, C_in, H, W)
    weight : ndarray of shape (C_out, C_in / groups, kh, kw)
    bias : ndarray of shape (C_out,) or None
    stride, dilation : int or (h, w)
    padding : int, (ph, pw), ((top, bottom), (left, right)), 'valid' or 'same'.
        'same' with stride 1 is PyTorch's (total ``d*(k-1)``, the odd extra row/column at
        the bottom/right); with stride > 1 it follows TensorFlow's rule (output
        ``ceil(n/s)``, extra at the bottom/right), which PyTorch refuses.
    groups : the channels in this many groups, output group k computed from input group
        k alone (PyTorch's rule; depthwise when groups == C_in).
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
    x, weight, bias, geo = _checked(x, weight, bias, stride, padding, dilation, groups)
    algo = registry.resolve(OP, algorithm, ConvCall(geo, x.dtype, need_backward))
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
    dweight : ndarray of shape (C_out, C_in / groups, kh, kw)
    dbias : ndarray of shape (C_out,), or None when the forward had no bias
    """
    check_cache(cache, Conv2dCache, "conv2d_backward", "conv2d_forward")
    dy = _checked_grad(dy, cache, "conv2d_backward", cache.geometry.out_shape)
    return registry.get(OP, cache.algorithm).backward(dy, cache, input_grad)


def conv2d_algorithm(x_shape: tuple[int, ...], weight_shape: tuple[int, ...],
                     stride: IntPair = 1, padding: PaddingArg = 0, dilation: IntPair = 1,
                     groups: int = 1, dtype: Any = np.float32, algorithm: str = "auto",
                     need_backward: bool = True) -> registry.Choice:
    """Which algorithm :func:`conv2d_forward` takes for these shapes, and why
    (``need_backward=False``: for an inference forward).

    >>> print(conv2d_algorithm((64, 1, 28, 28), (32, 1, 3, 3), padding=1).name)  # doctest: +SKIP
    im2col-split

    ``str()`` of the result lists every candidate with the reason it was taken or not.
    """
    geo = conv2d_geometry(tuple(x_shape), tuple(weight_shape), stride, padding, dilation,
                          groups)
    return registry.choose(OP, algorithm, ConvCall(geo, np.dtype(dtype), need_backward))


def _checked(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: IntPair,
             padding: PaddingArg, dilation: IntPair, groups: int = 1
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, ConvGeometry]:
    """conv2d's arguments checked and cast to their common float dtype, and the geometry."""
    x = np.asarray(x)
    weight = np.asarray(weight)
    check_nchw(x, "conv2d")
    geo = conv2d_geometry(x.shape, weight.shape, stride, padding, dilation, groups)
    return _cast(x, weight, bias, geo, "conv2d")


def _cast(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, geo: ConvGeometry,
          op: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, ConvGeometry]:
    """x, weight and bias in their common float dtype (float64 if any is), the bias
    checked against the channels of the output (the transposed conv's: geo.in_shape)."""
    dtype = np.result_type(as_float(x[:0]).dtype, as_float(weight[:0]).dtype)
    x = x.astype(dtype, copy=False)
    weight = weight.astype(dtype, copy=False)
    c_out = geo.out_shape[1] if op == "conv2d" else geo.in_shape[1]
    if bias is not None:
        bias = np.asarray(bias, dtype=dtype)
        if bias.shape != (c_out,):
            raise ShapeError(f"{op} bias must have shape ({c_out},), got {bias.shape}")
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


def group_weights(weight: np.ndarray, groups: int) -> np.ndarray:
    """W (C_out, C_in/g, kh, kw) as g matrices (g, C_out/g, kh*kw*C_in/g): output group
    k's :func:`weight_matrix` (one matrix, a view, when g is 1)."""
    c_out, c_g, kh, kw = weight.shape
    w = weight.reshape(groups, c_out // groups, c_g, kh, kw).transpose(0, 1, 3, 4, 2)
    return w.reshape(groups, c_out // groups, kh * kw * c_g)


def weights_from_groups(dw: np.ndarray, shape: tuple[int, int, int, int]) -> np.ndarray:
    """The inverse of :func:`group_weights`: (g, C_out/g, kh*kw*C_in/g) -> (C_out, C_in/g,
    kh, kw)."""
    c_out, c_g, kh, kw = shape
    return np.ascontiguousarray(
        dw.reshape(c_out, kh, kw, c_g).transpose(0, 3, 1, 2))


def group_columns(cols: np.ndarray, groups: int, taps: int) -> np.ndarray:
    """im2col columns (M, kh*kw*C) as g stacks (g, M, kh*kw*C/g): each group's channels
    of every window (a view when g is 1, a copy else). ``taps`` is kh*kw."""
    m = cols.shape[0]
    c_g = cols.shape[1] // (taps * groups)
    return cols.reshape(m, taps, groups, c_g).transpose(2, 0, 1, 3).reshape(groups, m, -1)


def ungroup_columns(cols_g: np.ndarray, taps: int) -> np.ndarray:
    """The inverse of :func:`group_columns`: (g, M, kh*kw*C/g) -> (M, kh*kw*C)."""
    groups, m, k = cols_g.shape
    return cols_g.reshape(groups, m, taps, k // taps).transpose(1, 2, 0, 3).reshape(m, -1)


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


def _rows(dy: np.ndarray) -> np.ndarray:
    """dZ (N, C_out, H_out, W_out) as rows (N*H_out*W_out, C_out), rows (n, m, k)."""
    return dy.transpose(0, 2, 3, 1).reshape(-1, dy.shape[1])   # a copy for NCHW dZ


def input_gradient(dy: np.ndarray, weight: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """dA = col2im(dZ W) (MATH.md §9): each group's rows of dZ times its weight matrix give
    the columns' gradient, added back onto the windows. (N, C_in, H, W), an NCHW view of
    NHWC memory. This is also the transposed convolution's forward."""
    n, c, h, w = geo.in_shape
    (pt, pb), (pl, pr) = geo.padding
    kh, kw = geo.kernel
    g = geo.groups
    dz_g = _rows(dy).reshape(-1, g, weight.shape[0] // g).transpose(1, 0, 2)  # (g, M, O_g)
    dcols = ungroup_columns(np.matmul(dz_g, group_weights(weight, g)), kh * kw)
    dxph = np.zeros((n, h + pt + pb, w + pl + pr, c), dy.dtype)
    return crop(col2im(dcols, geo, dxph), geo)


def im2col_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
                   geo: ConvGeometry, need_backward: bool
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Z = W * A + b as one matrix product of the im2col columns with the weight (one
    per group, as a stack: groups never see each other's channels).

    Returns y as an NCHW view of NHWC memory (PyTorch's ``channels_last`` format: the
    next conv's im2col reads its channels contiguously, without a transpose copy) and
    the columns, which the backward multiplies again.
    """
    cols = im2col(padded_nhwc(x, geo.padding), geo)          # (N*Ho*Wo, kh*kw*C_in)
    return times_weight(cols, weight, bias, geo), cols


def times_weight(cols: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
                 geo: ConvGeometry) -> np.ndarray:
    """Z = cols W^T + b, group by group: (N, C_out, H_out, W_out) as an NCHW view of
    NHWC memory."""
    n, c_out, ho, wo = geo.out_shape
    kh, kw = geo.kernel
    cols_g = group_columns(cols, geo.groups, kh * kw)         # (g, M, kh*kw*C_in/g)
    z_g = np.matmul(cols_g, group_weights(weight, geo.groups).transpose(0, 2, 1))
    z = z_g.transpose(1, 0, 2).reshape(-1, c_out)            # (N*Ho*Wo, C_out)
    if bias is not None:
        z += bias
    return z.reshape(n, ho, wo, c_out).transpose(0, 3, 1, 2)


def im2col_backward(dy: np.ndarray, cache: Conv2dCache, input_grad: bool
                    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """MATH.md §9 with the forward's columns: dW = dZ^T cols, db = 1^T dZ,
    dA = col2im(dZ W), each group with its own columns and weights."""
    geo, weight, cols = cache.geometry, cache.weight, cache.saved
    c_out, g = weight.shape[0], geo.groups
    kh, kw = geo.kernel
    dz = _rows(dy)                                            # (N*Ho*Wo, C_out)
    dz_g = dz.reshape(-1, g, c_out // g).transpose(1, 0, 2)   # (g, M, C_out/g)
    dw_g = np.matmul(dz_g.transpose(0, 2, 1), group_columns(cols, g, kh * kw))
    dweight = weights_from_groups(dw_g, weight.shape)
    # db = 1^T dZ: a product sums blocked, more exactly than a running sum down the rows
    dbias = np.ones(dz.shape[0], dz.dtype) @ dz if cache.has_bias else None
    if not input_grad:
        return None, dweight, dbias
    return input_gradient(dy, weight, geo), dweight, dbias


def _supports_any(call: ConvCall) -> tuple[bool, str]:
    return True, "any geometry and groups, NumPy only"


registry.register(registry.Algorithm(
    OP, "im2col", _supports_any, im2col_forward, im2col_backward,
    "the readable path: im2col columns and one matrix product (MATH.md §7, §9)",
    layout="channels-last"))


# ------------------------------------------------------------- transposed convolution
TRANSPOSED = "conv_transpose2d"


class ConvTranspose2dCache(NamedTuple):
    """What :func:`conv_transpose2d_backward` needs."""

    algorithm: str
    weight: np.ndarray      # (C_in, C_out / groups, kh, kw)
    has_bias: bool
    geometry: ConvGeometry  # the conv2d whose input gradient this is (its in_shape: y's)
    saved: Any              # x, the transposed conv's input; None after need_backward=False


def conv_transpose2d_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
                             stride: IntPair = 1, padding: IntPair = 0,
                             output_padding: IntPair = 0, dilation: IntPair = 1,
                             groups: int = 1, algorithm: str = "auto",
                             need_backward: bool = True
                             ) -> tuple[np.ndarray, ConvTranspose2dCache]:
    """Transposed convolution (PyTorch's ``conv_transpose2d``): conv2d's input gradient.

    The convolution whose weight this is (``(C_in, C_out / groups, kh, kw)``, read as a
    conv2d weight from C_out to C_in channels) has an output of x's shape; its input
    gradient (MATH.md §9: ``col2im(dZ W)``, the full convolution with the rotated
    kernel) taken at ``dZ = x`` is the transposed convolution of x. So its forward is
    :func:`input_gradient`, and its backward is conv2d's forward and weight gradient:
    ``dX = conv2d(dY, W)`` and ``dW`` is conv2d's dW with dY as the input and X as dZ.

    Parameters
    ----------
    x : ndarray of shape (N, C_in, H, W)
    weight : ndarray of shape (C_in, C_out / groups, kh, kw)
    bias : ndarray of shape (C_out,) or None
    stride, dilation : int or (h, w)
    padding : int or (ph, pw), removed from each side of the output (PyTorch's meaning)
    output_padding : int or (h, w), extra rows/columns at the bottom/right, < stride
    groups : as conv2d's
    algorithm : 'auto', 'im2col' (this module), 'im2col-split' or 'chunked'
        (:mod:`clearconv.kernels.transposed`: the same products a few images at a time)

    Returns
    -------
    y : ndarray of shape (N, C_out, H_out, W_out) with
        ``H_out = (H - 1)*s - 2p + d*(kh - 1) + output_padding + 1``
    cache : ConvTranspose2dCache for :func:`conv_transpose2d_backward`
    """
    x = np.asarray(x)
    weight = np.asarray(weight)
    check_nchw(x, "conv_transpose2d")
    geo = conv_transpose2d_geometry(x.shape, weight.shape, stride, padding, output_padding,
                                    dilation, groups)
    x, weight, bias, geo = _cast(x, weight, bias, geo, TRANSPOSED)
    algo = registry.resolve(TRANSPOSED, algorithm, ConvCall(geo, x.dtype))
    y = algo.forward(x, weight, bias, geo)
    return y, ConvTranspose2dCache(algo.name, weight, bias is not None, geo,
                                   x if need_backward else None)


def conv_transpose2d_algorithm(x_shape: tuple[int, ...], weight_shape: tuple[int, ...],
                               stride: IntPair = 1, padding: IntPair = 0,
                               output_padding: IntPair = 0, dilation: IntPair = 1,
                               groups: int = 1, dtype: Any = np.float32,
                               algorithm: str = "auto") -> registry.Choice:
    """Which algorithm :func:`conv_transpose2d_forward` takes for these shapes, and why."""
    geo = conv_transpose2d_geometry(tuple(x_shape), tuple(weight_shape), stride, padding,
                                    output_padding, dilation, groups)
    return registry.choose(TRANSPOSED, algorithm, ConvCall(geo, np.dtype(dtype)))


def conv_transpose2d_backward(dy: np.ndarray, cache: ConvTranspose2dCache,
                              input_grad: bool = True
                              ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Backward of :func:`conv_transpose2d_forward`: (dx, dweight, dbias), dy of shape
    (N, C_out, H_out, W_out)."""
    check_cache(cache, ConvTranspose2dCache, "conv_transpose2d_backward",
                "conv_transpose2d_forward")
    dy = _checked_grad(dy, cache, "conv_transpose2d_backward", cache.geometry.in_shape)
    return registry.get(TRANSPOSED, cache.algorithm).backward(dy, cache, input_grad)


def transposed_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
                       geo: ConvGeometry) -> np.ndarray:
    """The readable transposed conv: conv2d's input gradient at dZ = x, plus the bias."""
    y = input_gradient(x, weight, geo)
    if bias is not None:
        y += bias[:, None, None]
    return y


def transposed_backward(dy: np.ndarray, cache: ConvTranspose2dCache, input_grad: bool
                        ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """dX = conv2d(dY, W) and dW = conv2d's weight gradient with dY as the input and X as
    dZ, from the same columns of dY; db = 1^T dY."""
    geo, weight, x = cache.geometry, cache.weight, cache.saved
    cols = im2col(padded_nhwc(dy, geo.padding), geo)          # dY's windows
    as_conv = Conv2dCache("im2col", weight, False, geo, cols)
    _, dweight, _ = im2col_backward(x, as_conv, input_grad=False)
    rows = _rows(dy)
    dbias = np.ones(rows.shape[0], rows.dtype) @ rows if cache.has_bias else None
    dx = times_weight(cols, weight, None, geo) if input_grad else None
    return dx, dweight, dbias


registry.register(registry.Algorithm(
    TRANSPOSED, "im2col", _supports_any, transposed_forward, transposed_backward,
    "the readable path: conv2d's input gradient (col2im of x W); backward: conv2d's "
    "forward and weight gradient", layout="channels-last"))
