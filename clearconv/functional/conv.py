"""2-D convolution (cross-correlation, as PyTorch and ONNX): MATH.md §3-9.

Forward (§7): ``Z[n, o, m, k] = sum_{c,i,j} W[o, c, i, j] * A_pad[n, c, m*s_h + i*d_h, k*s_w + j*d_w] + b[o]``

computed as one matrix product: the windows of ``A_pad`` are copied once into columns
(``im2col``, shape (N*H_out*W_out, kh*kw*C_in), channels innermost) and multiplied by
the weight reshaped to (kh*kw*C_in, C_out). The result is returned as an NCHW view of
NHWC memory (PyTorch's ``channels_last`` format): shapes and values are NCHW, and the
next conv reads its channels contiguously without a transpose copy. For few input and
output channels a compiled direct loop (``algorithm='direct'``) sums each output over its
window instead, without columns, and returns NCHW memory.

Backward (§9):

- ``db[o] = sum_{n,m,k} dZ[n, o, m, k]``
- ``dW[o, c, i, j] = sum_{n,m,k} dZ[n, o, m, k] * A_pad[n, c, m*s_h + i*d_h, k*s_w + j*d_w]``
  (a product of dZ with the same columns)
- ``dA_pad = sum_{m,k} W * dZ[m, k]`` placed on each window: the "full" convolution of dZ
  (scattered with s-1 gaps) with the kernel rotated 180°; computed as ``dZ W`` (one
  matrix product) followed by col2im, which adds the kh*kw kernel offsets with strided
  slices.
  The padding is then cropped off.

``reference.conv2d_backward`` writes the same backward literally as the full
convolution with the rotated kernel; the tests hold the two together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..errors import ClearConvError, ShapeError
from ..shapes import ConvGeometry, IntPair, PaddingArg, as_float, check_nchw, conv2d_geometry
from . import _jit, _parallel, winograd
from ._windows import padded_nhwc

#: conv2d ``algorithm`` values: 'auto' picks Winograd for float32 3x3 stride-1 convs with
#: at least this many input and output channels when the compiled transforms are available
ALGORITHMS = ("auto", "im2col", "winograd", "direct")
_WINOGRAD_MIN_CHANNELS = 8


class DirectCache(NamedTuple):
    """What :func:`conv2d_backward` needs from a direct (``algorithm='direct'``) forward."""

    xf: np.ndarray          # the zero-padded input, (N, C_in, H_pad*W_pad) C-contiguous
    weight: np.ndarray      # (C_out, C_in, kh, kw)
    has_bias: bool
    geometry: ConvGeometry


class Conv2dCache(NamedTuple):
    """What :func:`conv2d_backward` needs from the forward pass."""

    cols: np.ndarray        # im2col of the padded input: (N*H_out*W_out, kh*kw*C_in), or
                            # its transpose (kh*kw*C_in, N*H_out*W_out) when C_in < 4,
                            # then with a last row of ones when there is a bias
    weight: np.ndarray      # (C_out, C_in, kh, kw)
    has_bias: bool
    geometry: ConvGeometry


@_parallel.splits_its_own_work
def conv2d_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
                   stride: IntPair = 1, padding: PaddingArg = 0,
                   dilation: IntPair = 1, algorithm: str = "auto", need_backward: bool = True
                   ) -> tuple[np.ndarray, Conv2dCache | winograd.WinogradCache | None]:
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
    algorithm : 'auto' (default), 'im2col', 'winograd' or 'direct'
        How to compute it: the same sums, rounded differently. 'im2col' copies the windows
        into columns and makes one matrix product (any geometry); 'winograd' uses
        F(2x2, 3x3) (:mod:`clearconv.functional.winograd`; 3x3 kernels, stride 1,
        dilation 1 only), 2.25x fewer multiplications; 'direct' sums each output over its
        window in a compiled loop (stride 1, dilation 1, needs Numba): no columns, for
        inputs with few channels, where the columns are kh*kw times the input and their
        product is too narrow for the BLAS. 'auto' takes Winograd for float32 3x3
        stride-1 convs with at least 8 input and output channels and 'direct' for
        stride-1 convs with fewer than 4 input and 16 output channels, both when Numba
        is installed, else im2col.
    need_backward : keep what :func:`conv2d_backward` needs (default). False (inference)
        returns ``cache=None`` and works through the batch a few images at a time, so the
        intermediate columns stay in cache instead of filling memory.

    Returns
    -------
    y : ndarray of shape (N, C_out, H_out, W_out), ``H_out = floor((H + p_t + p_b - d*(kh-1) - 1)/s) + 1``
    cache : Conv2dCache for :func:`conv2d_backward`

    The result dtype is float64 if any input is float64, else float32.
    """
    x, weight, bias, geo = _checked(x, weight, bias, stride, padding, dilation)
    dtype, c_out = x.dtype, weight.shape[0]
    if _use_winograd(algorithm, geo, dtype):
        return winograd.winograd_conv2d_forward(x, weight, bias, geo,
                                                need_backward=need_backward)
    if _use_direct(algorithm, geo):
        return _direct_forward(x, weight, bias, geo, need_backward)
    n, c, _, _ = geo.in_shape
    _, _, ho, wo = geo.out_shape
    kh, kw = geo.kernel
    # im2col in channels-last order: cols[(n, m, k), (i, j, c)] = A_pad[n, c, m*s+i*d, k*s+j*d]
    xph = padded_nhwc(x, geo.padding)
    few = c < _FEW_CHANNELS
    # with few channels the bias rides in the product: a row of ones in the columns and
    # the bias as one more weight column (saves a pass over the output, and backward
    # gets db = sum dZ from the same product as dW)
    fold = few and bias is not None
    k = kh * kw * c
    rows = ho * wo                       # im2col rows (or columns) per image
    y = np.empty((n * rows, c_out), dtype)
    w2 = weight.transpose(0, 2, 3, 1).reshape(c_out, k)              # (C_out, kh*kw*C_in)
    if fold:
        w2 = np.concatenate([w2, bias[:, None]], axis=1)

    def columns(images: int) -> np.ndarray:
        out = np.empty((k + fold, images * rows) if few else (images * rows, k), dtype)
        if fold:
            out[k] = 1
        return out

    # inference: a few images at a time through one cache-sized buffer per thread
    step = n if need_backward else max(1, _CHUNK_BYTES // ((k + fold) * rows * dtype.itemsize))
    cols = columns(n) if need_backward else None

    def work(lo: int, hi: int) -> None:  # images lo..hi: their columns, then their outputs
        buf = cols if need_backward else columns(min(step, hi - lo))
        for a in range(lo, hi, step):
            b = min(a + step, hi)
            r = slice(a * rows, b * rows)
            c0 = a * rows if need_backward else 0
            cc = slice(c0, c0 + (b - a) * rows)
            _im2col_into(xph[a:b], geo, buf[:k, cc] if few else buf[cc], few)
            np.matmul(buf[:, cc].T if few else buf[cc], w2.T, out=y[r])   # (rows, C_out)
            if bias is not None and not few:
                y[r] += bias

    _parallel.map_split(work, n)
    # an NCHW view of NHWC memory (channels_last): no copy
    y = y.reshape(n, ho, wo, c_out).transpose(0, 3, 1, 2)
    if not need_backward:
        return y, None
    return y, Conv2dCache(cols, weight, bias is not None, geo)


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


#: inference works through a batch in chunks of about this many bytes of columns
_CHUNK_BYTES = 1 << 20


def _use_winograd(algorithm: str, geo: ConvGeometry, dtype: np.dtype) -> bool:
    """Resolve conv2d's ``algorithm`` argument for this call (see conv2d_forward)."""
    if algorithm in ("im2col", "direct"):
        return False
    if algorithm == "winograd":
        if not winograd.supports(geo):
            raise ClearConvError(
                f"conv2d: algorithm='winograd' needs a 3x3 kernel, stride 1 and dilation 1; "
                f"got kernel {geo.kernel}, stride {geo.stride}, dilation {geo.dilation}")
        return True
    if algorithm != "auto":
        raise ClearConvError(f"conv2d: algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    return (_jit.AVAILABLE and dtype == np.float32 and winograd.supports(geo)
            and min(geo.in_shape[1], geo.out_shape[1]) >= _WINOGRAD_MIN_CHANNELS)


def _use_direct(algorithm: str, geo: ConvGeometry) -> bool:
    """Whether this call runs :func:`_direct_forward` (after :func:`_use_winograd` said no)."""
    fits = geo.stride == (1, 1) and geo.dilation == (1, 1)
    if algorithm == "direct":
        if not fits or not _jit.AVAILABLE:
            raise ClearConvError(
                f"conv2d: algorithm='direct' needs stride 1, dilation 1 and Numba "
                f"(pip install \"clearconv[fast]\"); got stride {geo.stride}, dilation "
                f"{geo.dilation}, Numba {'available' if _jit.AVAILABLE else 'not available'}")
        return True
    return algorithm == "auto" and direct_loop_applies(geo.in_shape[1], geo.out_shape[1],
                                                       geo.stride, geo.dilation)


def direct_loop_applies(c_in: int, c_out: int, stride: tuple[int, int],
                        dilation: tuple[int, int]) -> bool:
    """Whether conv2d's 'auto' takes the compiled direct loop for this layer: stride 1,
    dilation 1, fewer than 4 input and 16 output channels, Numba installed."""
    return (_jit.AVAILABLE and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1)
            and c_in < _FEW_CHANNELS and c_out < _DIRECT_MAX_OUT)


#: 'auto' takes the direct loop below this many output channels (with < 4 input channels):
#: from 16 on, the im2col product is wide enough for the BLAS to win (paired, 64 images
#: of 28x28 or 32x32, forward: 5x5 1->6 0.53x the im2col time, 1->16 1.22x; 3x3 3->8
#: 0.50x, 3->16 0.85x, 1->16 1.44x)
_DIRECT_MAX_OUT = 16


def _direct_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
                    geo: ConvGeometry, need_backward: bool
                    ) -> tuple[np.ndarray, DirectCache | None]:
    """conv2d_forward by :func:`_jit.conv_direct_forward`, the batch split between threads."""
    n, c_out, ho, wo = geo.out_shape
    xf, wp, b = _direct_inputs(x, bias, geo)
    # NCHW memory (the im2col path returns channels-last): its rows come out of the
    # kernel whole, and the max pooling that usually follows reads planes
    y = np.empty((n, c_out, ho, wo), x.dtype)
    _parallel.map_split(lambda lo, hi: _jit.conv_direct_forward(xf[lo:hi], weight, b, wp,
                                                                y[lo:hi]), n)
    return y, (DirectCache(xf, weight, bias is not None, geo) if need_backward else None)


def _direct_inputs(x: np.ndarray, bias: np.ndarray | None, geo: ConvGeometry
                   ) -> tuple[np.ndarray, int, np.ndarray]:
    """(xf, W_pad, b) for the direct kernels: the zero-padded input as flat planes
    (N, C, H_pad*W_pad), its row width, and the bias (zeros for none)."""
    n, c, h, w = geo.in_shape
    (pt, pb), (pl, pr) = geo.padding
    hp, wp = h + pt + pb, w + pl + pr
    xp = np.zeros((n, c, hp, wp), x.dtype)
    xp[:, :, pt:pt + h, pl:pl + w] = x
    b = bias if bias is not None else np.zeros(geo.out_shape[1], x.dtype)
    return xp.reshape(n, c, hp * wp), wp, b


class DirectPoolCache(NamedTuple):
    """What :func:`conv2d_backward` needs from :func:`conv2d_relu_max_pool2d`."""

    xf: np.ndarray          # the zero-padded input, (N, C_in, H_pad*W_pad)
    weight: np.ndarray
    has_bias: bool
    geometry: ConvGeometry  # the conv's
    argmax: np.ndarray      # (N, C_out, H_out // 2, W_out // 2) uint8: 2i + j, 4 = none


@_parallel.splits_its_own_work
def conv2d_relu_max_pool2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
                           stride: IntPair = 1, padding: PaddingArg = 0,
                           dilation: IntPair = 1, need_backward: bool = True
                           ) -> tuple[np.ndarray, DirectPoolCache | None] | None:
    """``max_pool2d(relu(conv2d(x)), 2, 2)`` in one compiled pass, where ``conv2d_forward``
    would take its direct loop ('auto': stride 1, dilation 1, < 4 input and < 16 output
    channels, Numba): each output plane is pooled as it is made, never stored, and
    backward routes the pooled gradient straight into dW. None where that does not
    apply: then run the three ops (the values are the same either way).

    Returns y (N, C_out, H_out // 2, W_out // 2) and the cache for
    :func:`conv2d_backward` (which then takes dL/dy of the pooled output), or None.
    """
    x, weight, bias, geo = _checked(x, weight, bias, stride, padding, dilation)
    n, c_out, ho, wo = geo.out_shape
    if not _use_direct("auto", geo) or ho < 2 or wo < 2:
        return None
    xf, wp, b = _direct_inputs(x, bias, geo)
    y = np.empty((n, c_out, ho // 2, wo // 2), x.dtype)
    idx = np.empty(y.shape, np.uint8)
    _parallel.map_split(lambda lo, hi: _jit.conv_direct_relu_pool_forward(
        xf[lo:hi], weight, b, wp, ho, wo, y[lo:hi], idx[lo:hi]), n)
    return y, (DirectPoolCache(xf, weight, bias is not None, geo, idx) if need_backward
               else None)


def _direct_pool_backward(dy: np.ndarray, cache: DirectPoolCache, input_grad: bool
                          ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """conv2d_backward of :func:`conv2d_relu_max_pool2d`, from the pooled gradient."""
    geo, idx = cache.geometry, cache.argmax
    if dy.shape != idx.shape:
        raise ShapeError(f"conv2d_backward: dy has shape {dy.shape}, the fused conv, ReLU "
                         f"and pooling output was {idx.shape}")
    n, c_out, ho, wo = geo.out_shape
    if input_grad:   # rare (the direct loop is for first layers): the conv output's gradient
        dz = np.empty(geo.out_shape, dy.dtype)
        _jit.max_pool_2x2_planes_backward(np.ascontiguousarray(dy).reshape(-1, *idx.shape[2:]),
                                          idx.reshape(-1, *idx.shape[2:]),
                                          dz.reshape(-1, ho, wo))
        return conv2d_backward(dz, DirectCache(cache.xf, cache.weight, cache.has_bias, geo))
    kh, kw = geo.kernel
    wp = geo.in_shape[3] + sum(geo.padding[1])
    dyp = np.ascontiguousarray(dy)
    dweight, dbias = _direct_partials(lambda lo, hi, dw, db: _jit.conv_direct_pool_weight_grad(
        cache.xf[lo:hi], dyp[lo:hi], idx[lo:hi], wp, kh, kw, ho, wo, dw, db), cache.weight, n)
    return None, dweight, (dbias if cache.has_bias else None)


def _direct_partials(kernel: Callable[[int, int, np.ndarray, np.ndarray], None],
                     weight: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(dW, db) summed over images by ``kernel(lo, hi, dw, db)``, which adds images
    lo..hi's shares into zeroed dw and db; each thread its images, then the sums added."""
    def part(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        dw = np.zeros(weight.shape, weight.dtype)
        db = np.zeros(weight.shape[0], weight.dtype)
        kernel(lo, hi, dw, db)
        return dw, db

    parts = _parallel.map_split(part, n)
    return (_parallel.add_up([dw for dw, _ in parts]),
            _parallel.add_up([db for _, db in parts]))


def _direct_weight_grad(dy: np.ndarray, cache: DirectCache
                        ) -> tuple[np.ndarray, np.ndarray | None]:
    """(dweight, dbias) of a direct forward by :func:`_jit.conv_direct_weight_grad`."""
    geo = cache.geometry
    kh, kw = geo.kernel
    wp = geo.in_shape[3] + sum(geo.padding[1])
    dyp = np.ascontiguousarray(dy)       # NCHW memory, like the forward's output
    dweight, dbias = _direct_partials(lambda lo, hi, dw, db: _jit.conv_direct_weight_grad(
        cache.xf[lo:hi], dyp[lo:hi], wp, kh, kw, dw, db), cache.weight, geo.in_shape[0])
    return dweight, (dbias if cache.has_bias else None)


#: below this many input channels, im2col is stored transposed: (kh*kw*C, N*Ho*Wo)
_FEW_CHANNELS = 4


def _im2col_into(xph: np.ndarray, geo: ConvGeometry, out: np.ndarray, few: bool) -> None:
    """Copy the windows of padded NHWC input (n' images) into im2col columns ``out``.

    ``out`` is (n'*H_out*W_out, kh*kw*C) with channels innermost, or for fewer than
    ``_FEW_CHANNELS`` channels its transpose (kh*kw*C, n'*H_out*W_out) (possibly a
    column slice of a wider array), which copies one kernel offset at a time along long
    contiguous rows instead of C values at a time.
    """
    n, c = xph.shape[0], xph.shape[3]
    _, _, ho, wo = geo.out_shape
    kh, kw = geo.kernel
    dst = out.view()   # setting .shape raises rather than copying: writes must land in out
    if few:
        dst.shape = (kh, kw, c, n, ho, wo)
        xpc = xph.transpose(3, 0, 1, 2)
        for i in range(kh):
            for j in range(kw):
                dst[i, j] = _offset(xpc, i, j, geo)
        return
    sn, sh, sw, sc = xph.strides
    win = as_strided(xph, shape=(n, ho, wo, kh, kw, c),
                     strides=(sn, sh * geo.stride[0], sw * geo.stride[1],
                              sh * geo.dilation[0], sw * geo.dilation[1], sc), writeable=False)
    dst.shape = (n, ho, wo, kh, kw, c)
    dst[...] = win


def _flat_rows(a: np.ndarray) -> np.ndarray | None:
    """(n, r, c) as (n*r, c) when that is a view (rows evenly spaced in memory), else None."""
    n, r, _ = a.shape
    if n > 1 and r > 1 and a.strides[0] != r * a.strides[1]:
        return None
    return a.reshape(n * r, a.shape[2])


def _rows_times(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, r, c) @ (c, d) as (n*r, d): one product when a's rows flatten for free, else
    one per leading index (no copy of a)."""
    rows = _flat_rows(a)
    if rows is not None:
        return rows @ b
    return np.matmul(a, b).reshape(-1, b.shape[1])


def _sum_over_images(product: Callable[[int, int], np.ndarray], n: int) -> np.ndarray:
    """sum over images of ``product(lo, hi)`` (a stack (hi - lo, p, q) of per-image
    products), the images split between the worker threads."""
    return _parallel.add_up(_parallel.map_split(lambda lo, hi: product(lo, hi).sum(axis=0), n))


def _weight_layout(dw2: np.ndarray, shape: tuple[int, int, int, int]) -> np.ndarray:
    """dW from (C_out, kh*kw*C_in) columns order to (C_out, C_in, kh, kw)."""
    c_out, c, kh, kw = shape
    return np.ascontiguousarray(dw2.reshape(c_out, kh, kw, c).transpose(0, 3, 1, 2))


def _fused_col2im(input_grad: bool, geo: ConvGeometry) -> bool:
    """Whether conv2d_backward's input gradient (channels >= 4) takes the compiled
    col2im, which also makes dW in its split."""
    return input_grad and _jit.AVAILABLE and geo.dilation[1] == 1


def _offset(a: np.ndarray, i: int, j: int, geo: ConvGeometry) -> np.ndarray:
    """The view of ``a``'s last two axes that kernel offset (i, j) touches."""
    ho, wo = geo.out_shape[2:]
    (sh, sw), (dh, dw) = geo.stride, geo.dilation
    return a[..., i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]


@_parallel.splits_its_own_work
def conv2d_backward(dy: np.ndarray, cache: Conv2dCache | winograd.WinogradCache,
                    input_grad: bool = True
                    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Backward pass of :func:`conv2d_forward` (MATH.md §9).

    Parameters
    ----------
    dy : ndarray of shape (N, C_out, H_out, W_out), dL/dZ
    cache : from :func:`conv2d_forward` (or from :func:`conv2d_relu_max_pool2d`, and then
        dy is the gradient of its pooled output)
    input_grad : compute dx (False skips it, e.g. for a network's first layer: dx is None)

    Returns
    -------
    dx : ndarray of shape (N, C_in, H, W), dL/dA of the layer input
    dweight : ndarray of shape (C_out, C_in, kh, kw)
    dbias : ndarray of shape (C_out,), or None when the forward had no bias
    """
    weight, geo = cache.weight, cache.geometry
    dy = np.asarray(dy, dtype=weight.dtype)
    if isinstance(cache, DirectPoolCache):   # dy is the pooled output's gradient
        return _direct_pool_backward(dy, cache, input_grad)
    if dy.shape != geo.out_shape:
        raise ShapeError(
            f"conv2d_backward: dy has shape {dy.shape}, the forward output was {geo.out_shape}"
        )
    if isinstance(cache, winograd.WinogradCache):
        return winograd.winograd_conv2d_backward(dy, cache, input_grad)
    n, c, h, w = geo.in_shape
    c_out = weight.shape[0]
    kh, kw = geo.kernel
    ho, wo = geo.out_shape[2:]
    hw, k = ho * wo, kh * kw * c
    transposed = c < _FEW_CHANNELS
    if isinstance(cache, DirectCache):
        dweight, dbias = _direct_weight_grad(dy, cache)
        if not input_grad:
            return None, dweight, dbias
    # dZ per image as rows (m, k) x columns C_out: a view of channels-last and of NCHW
    # memory alike; flattened to (N*H_out*W_out, C_out) rows only when that is free
    # (channels-last). For NCHW dZ the products go image by image, the BLAS reading
    # each image's (C_out, H_out*W_out) block transposed: no transposing copy of dZ,
    # which NumPy makes at a fraction of a plain copy's speed.
    dz = dy.transpose(0, 2, 3, 1).reshape(n, hw, c_out)
    dyr = _flat_rows(dz)
    dw_in_split = False     # dW made in the input gradient's split (below)
    if not isinstance(cache, DirectCache):
        # dW = dZ^T cols, reordered from (C_out, kh, kw, C_in) to (C_out, C_in, kh, kw)
        cols, has_bias = cache.cols, cache.has_bias
        if transposed:   # cols (kh*kw*C_in [+ 1], N*H_out*W_out): prod = cols dZ
            if dyr is not None:
                prod = _parallel.matmul_t(cols.T, dyr)
            else:
                cols3 = cols.reshape(-1, n, hw).transpose(1, 0, 2)
                prod = _sum_over_images(lambda lo, hi: np.matmul(cols3[lo:hi], dz[lo:hi]), n)
            dw2 = prod[:k].T
            # the ones row of the columns gives db = sum over rows of dZ
            dbias = np.ascontiguousarray(prod[k]) if has_bias else None
            dweight = _weight_layout(dw2, weight.shape)
        else:
            dzt, cols3 = dz.transpose(0, 2, 1), cols.reshape(n, hw, k)

            def dw_part(lo: int, hi: int) -> np.ndarray:   # images lo..hi's share of dW
                if dyr is not None:
                    return dyr[lo * hw:hi * hw].T @ cols[lo * hw:hi * hw]
                return np.matmul(dzt[lo:hi], cols3[lo:hi]).sum(axis=0)

            # db = 1^T dZ: a product sums blocked (more exactly) and ~10x faster than
            # a NumPy sum over the rows of dZ
            if dyr is not None:
                dbias = np.ones(dyr.shape[0], dyr.dtype) @ dyr if has_bias else None
            else:
                dbias = (np.matmul(dzt, np.ones(hw, dz.dtype)).sum(axis=0) if has_bias
                         else None)
            dw_in_split = _fused_col2im(input_grad, geo)
            if dw_in_split:
                dw2 = None
            elif dyr is not None:
                dw2 = _parallel.matmul_t(dyr, cols)
            else:
                dw2 = _parallel.add_up(_parallel.map_split(dw_part, n))
            if dw2 is not None:
                dweight = _weight_layout(dw2, weight.shape)
    if not input_grad:
        return None, dweight, dbias
    # dcols = dZ W, then col2im: the full convolution of dZ with the rotated kernel
    (pt, pb), (pl, pr) = geo.padding
    hp, wp = h + pt + pb, w + pl + pr
    w2 = weight.transpose(0, 2, 3, 1).reshape(c_out, k)     # (C_out, kh*kw*C_in)
    if transposed:   # per image dcols = W^T dZ^T, (kh, kw, C, Ho, Wo); dx in NCHW memory
        dxp = np.zeros((n, c, hp, wp), dtype=weight.dtype)

        def work_t(lo: int, hi: int) -> None:   # images lo..hi (their dx do not overlap)
            dcols = np.matmul(w2.T, dz[lo:hi].transpose(0, 2, 1))
            dcols = dcols.reshape(hi - lo, kh, kw, c, ho, wo)
            for i in range(kh):
                for j in range(kw):
                    _offset(dxp[lo:hi], i, j, geo)[...] += dcols[:, i, j]

        _parallel.map_split(work_t, n)
    elif _fused_col2im(input_grad, geo):
        # one product dcols = dZ W (rows (n, m, k), columns (i, j, c)), then a compiled
        # col2im that adds each window row's kw*C values back in one run; each thread
        # also makes its images' share of dW (one hand-off for both)
        dxph = np.zeros((n, hp, wp, c), dtype=weight.dtype)

        def work(lo: int, hi: int) -> np.ndarray | None:   # images lo..hi (disjoint dx)
            dcols = _rows_times(dz[lo:hi], w2).reshape(hi - lo, ho, wo, kh, kw * c)
            _jit.col2im_nhwc(dcols, geo.stride[0], geo.stride[1], geo.dilation[0], c,
                             dxph[lo:hi].reshape(hi - lo, hp, wp * c))
            return dw_part(lo, hi) if dw_in_split else None

        parts = _parallel.map_split(work, n)
        if dw_in_split:
            dweight = _weight_layout(_parallel.add_up(parts), weight.shape)
        dxp = dxph.transpose(0, 3, 1, 2)
    else:            # one product per kernel offset: dcols[i, j] = dZ W[:, :, i, j], (N, Ho, Wo, C)
        w_off = weight.transpose(2, 3, 0, 1).reshape(kh * kw, c_out, c)
        dxph = np.zeros((n, hp, wp, c), dtype=weight.dtype)
        xpc = dxph.transpose(0, 3, 1, 2)   # the same memory seen as NCHW

        def work_np(lo: int, hi: int) -> None:   # images lo..hi (their dx do not overlap)
            rows = dz[lo:hi].reshape((hi - lo) * hw, c_out)   # a copy for NCHW dZ
            dcols = np.matmul(rows, w_off).reshape(kh, kw, hi - lo, ho, wo, c)
            for i in range(kh):
                for j in range(kw):
                    # added in NHWC index order so rows of W_out*C values stay contiguous
                    _offset(xpc[lo:hi], i, j, geo).transpose(0, 2, 3, 1)[...] += dcols[i, j]

        _parallel.map_split(work_np, n)
        dxp = xpc
    return dxp[:, :, pt:pt + h, pl:pl + w], dweight, dbias
