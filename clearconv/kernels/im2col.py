"""conv2d algorithm ``'im2col-split'``: functional's im2col, tuned for the machine.

The same columns, products and col2im as the readable ``'im2col'``
(:mod:`clearconv.functional.conv`), computed with:

- the batch split between clearconv's threads (:mod:`clearconv.kernels.threads`), each
  part's products single-threaded, the weight gradient summed over the parts;
- for fewer than :data:`~clearconv.kernels.tuning.FEW_CHANNELS` input channels, the
  columns stored transposed (one kernel offset copied at a time along long rows) and the
  bias riding in the product as a row of ones (backward gets db from the same product);
- at inference, a few images at a time through one cache-sized buffer per thread;
- the input gradient's col2im compiled (Numba) where the kernel is not dilated along W,
  each thread also making its images' share of dW (one hand-off for both);
- no transposing copy of an NCHW dZ: its products go image by image, the BLAS reading
  each image's (C_out, H_out*W_out) block transposed.

Output: an NCHW view of NHWC memory (channels-last), like the readable path.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..functional.conv import (
    OP,
    TRANSPOSED,
    Conv2dCache,
    ConvCall,
    ConvTranspose2dCache,
    col2im,
    crop,
    im2col,
    weight_from_matrix,
    weight_matrix,
)
from ..shapes import ConvGeometry
from . import copies, jit, registry, threads, tuning
from .jit import compiled


def _few(geo: ConvGeometry) -> bool:
    return geo.in_shape[1] < tuning.FEW_CHANNELS


def _offset(a: np.ndarray, i: int, j: int, geo: ConvGeometry) -> np.ndarray:
    """The view of ``a``'s last two axes that kernel offset (i, j) touches."""
    ho, wo = geo.out_shape[2:]
    (sh, sw), (dh, dw) = geo.stride, geo.dilation
    return a[..., i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]


def _columns_t(xph: np.ndarray, geo: ConvGeometry, out: np.ndarray) -> None:
    """im2col transposed, (kh*kw*C, n'*H_out*W_out) (possibly a column slice of a wider
    array): one kernel offset at a time along contiguous rows."""
    n, c = xph.shape[0], xph.shape[3]
    _, _, ho, wo = geo.out_shape
    kh, kw = geo.kernel
    dst = out.view()   # setting .shape raises rather than copying: writes must land in out
    dst.shape = (kh, kw, c, n, ho, wo)
    xpc = xph.transpose(3, 0, 1, 2)
    for i in range(kh):
        for j in range(kw):
            dst[i, j] = _offset(xpc, i, j, geo)


def forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, geo: ConvGeometry,
            need_backward: bool) -> tuple[np.ndarray, np.ndarray | None]:
    n, c, _, _ = geo.in_shape
    _, c_out, ho, wo = geo.out_shape
    kh, kw = geo.kernel
    dtype = x.dtype
    xph = copies.padded_nhwc(x, geo.padding)
    few = _few(geo)
    fold = few and bias is not None     # the bias as one more weight column
    k = kh * kw * c
    rows = ho * wo                       # im2col rows (or columns) per image
    y = np.empty((n * rows, c_out), dtype)
    w2 = weight_matrix(weight)
    if fold:
        w2 = np.concatenate([w2, bias[:, None]], axis=1)

    def columns(images: int) -> np.ndarray:
        out = np.empty((k + fold, images * rows) if few else (images * rows, k), dtype)
        if fold:
            out[k] = 1
        return out

    step = n if need_backward else max(1, tuning.CHUNK_BYTES // ((k + fold) * rows
                                                                  * dtype.itemsize))
    cols = columns(n) if need_backward else None

    def work(lo: int, hi: int) -> None:  # images lo..hi: their columns, then their outputs
        buf = cols if need_backward else columns(min(step, hi - lo))
        for a in range(lo, hi, step):
            b = min(a + step, hi)
            r = slice(a * rows, b * rows)
            c0 = a * rows if need_backward else 0
            cc = slice(c0, c0 + (b - a) * rows)
            if few:
                _columns_t(xph[a:b], geo, buf[:k, cc])
            else:
                im2col(xph[a:b], geo, buf[cc])
            np.matmul(buf[:, cc].T if few else buf[cc], w2.T, out=y[r])   # (rows, C_out)
            if bias is not None and not few:
                y[r] += bias

    threads.map_split(work, n)
    return y.reshape(n, ho, wo, c_out).transpose(0, 3, 1, 2), cols


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
    return threads.add_up(threads.map_split(lambda lo, hi: product(lo, hi).sum(axis=0), n))


def _compiled_col2im(geo: ConvGeometry) -> bool:
    return geo.dilation[1] == 1 and jit.worth(geo.in_shape[0])[0]


def backward(dy: np.ndarray, cache: Conv2dCache, input_grad: bool
             ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    weight, geo, cols = cache.weight, cache.geometry, cache.saved
    n = geo.in_shape[0]
    c_out = weight.shape[0]
    hw = geo.out_shape[2] * geo.out_shape[3]
    # dZ per image as rows (m, k) x columns C_out: a view of channels-last and of NCHW
    # memory alike; flattened to (N*H_out*W_out, C_out) rows only when that is free
    dz = dy.transpose(0, 2, 3, 1).reshape(n, hw, c_out)
    dyr = _flat_rows(dz)
    if _few(geo):
        dweight, dbias = _weight_grad_t(dz, dyr, cols, cache)
        dx = _input_grad_t(dz, geo, weight) if input_grad else None
        return dx, dweight, dbias
    dzt, cols3 = dz.transpose(0, 2, 1), cols.reshape(n, hw, -1)

    def dw_part(lo: int, hi: int) -> np.ndarray:   # images lo..hi's share of dZ^T cols
        if dyr is not None:
            return dyr[lo * hw:hi * hw].T @ cols[lo * hw:hi * hw]
        return np.matmul(dzt[lo:hi], cols3[lo:hi]).sum(axis=0)

    # db = 1^T dZ: a product sums blocked (more exactly) and ~10x faster than a NumPy
    # sum over the rows of dZ
    dbias = None
    if cache.has_bias:
        dbias = (np.ones(dyr.shape[0], dyr.dtype) @ dyr if dyr is not None
                 else np.matmul(dzt, np.ones(hw, dz.dtype)).sum(axis=0))
    if input_grad and _compiled_col2im(geo):
        dx, dw2 = _input_grad_compiled(dz, geo, weight, dw_part)
        return dx, weight_from_matrix(dw2, weight.shape), dbias
    dw2 = (threads.matmul_t(dyr, cols) if dyr is not None
           else threads.add_up(threads.map_split(dw_part, n)))
    dweight = weight_from_matrix(dw2, weight.shape)
    dx = _input_grad_numpy(dz, geo, weight) if input_grad else None
    return dx, dweight, dbias


def _weight_grad_t(dz: np.ndarray, dyr: np.ndarray | None, cols: np.ndarray,
                   cache: Conv2dCache) -> tuple[np.ndarray, np.ndarray | None]:
    """dW (and db, from the ones row) of the transposed columns (kh*kw*C [+ 1], N*Ho*Wo):
    prod = cols dZ."""
    n, hw = dz.shape[:2]
    k = cols.shape[0] - cache.has_bias
    if dyr is not None:
        prod = threads.matmul_t(cols.T, dyr)
    else:
        cols3 = cols.reshape(-1, n, hw).transpose(1, 0, 2)
        prod = _sum_over_images(lambda lo, hi: np.matmul(cols3[lo:hi], dz[lo:hi]), n)
    dbias = np.ascontiguousarray(prod[k]) if cache.has_bias else None
    return weight_from_matrix(prod[:k].T, cache.weight.shape), dbias


def _padded_zeros(geo: ConvGeometry, dtype: np.dtype, nchw: bool) -> np.ndarray:
    n, c, h, w = geo.in_shape
    (pt, pb), (pl, pr) = geo.padding
    shape = (n, c, h + pt + pb, w + pl + pr) if nchw else (n, h + pt + pb, w + pl + pr, c)
    return np.zeros(shape, dtype)


def _input_grad_t(dz: np.ndarray, geo: ConvGeometry, weight: np.ndarray) -> np.ndarray:
    """Few channels: per image dcols = W^T dZ^T, (kh, kw, C, Ho, Wo), added onto NCHW
    dA_pad one kernel offset at a time."""
    n, c = geo.in_shape[:2]
    kh, kw = geo.kernel
    ho, wo = geo.out_shape[2:]
    w2 = weight_matrix(weight)
    dxp = _padded_zeros(geo, dz.dtype, nchw=True)

    def work(lo: int, hi: int) -> None:   # images lo..hi (their dx do not overlap)
        dcols = np.matmul(w2.T, dz[lo:hi].transpose(0, 2, 1))
        dcols = dcols.reshape(hi - lo, kh, kw, c, ho, wo)
        for i in range(kh):
            for j in range(kw):
                _offset(dxp[lo:hi], i, j, geo)[...] += dcols[:, i, j]

    threads.map_split(work, n)
    return crop(dxp.transpose(0, 2, 3, 1), geo)


def _input_grad_compiled(dz: np.ndarray, geo: ConvGeometry, weight: np.ndarray,
                         dw_part: Callable[[int, int], np.ndarray] | None
                         ) -> tuple[np.ndarray, np.ndarray | None]:
    """One product dcols = dZ W (rows (n, m, k), columns (i, j, c)), then the compiled
    col2im, which adds each window row's kw*C values back in one run; each thread also
    makes its images' share of dW with ``dw_part``. Returns (dx, dW as
    (C_out, kh*kw*C), or None without ``dw_part``)."""
    n, c = geo.in_shape[:2]
    kh, kw = geo.kernel
    ho, wo = geo.out_shape[2:]
    w2 = weight_matrix(weight)
    dxph = _padded_zeros(geo, dz.dtype, nchw=False)
    hp, wp = dxph.shape[1:3]

    def work(lo: int, hi: int) -> np.ndarray:   # images lo..hi (their dx do not overlap)
        dcols = _rows_times(dz[lo:hi], w2).reshape(hi - lo, ho, wo, kh, kw * c)
        compiled.col2im_nhwc(dcols, geo.stride[0], geo.stride[1], geo.dilation[0], c,
                             dxph[lo:hi].reshape(hi - lo, hp, wp * c))
        return dw_part(lo, hi) if dw_part is not None else None

    parts = threads.map_split(work, n)
    return crop(dxph, geo), (threads.add_up(parts) if dw_part is not None else None)


def input_gradient(dy: np.ndarray, geo: ConvGeometry, weight: np.ndarray) -> np.ndarray:
    """dA alone (MATH.md §9: col2im of dcols = dZ W) from dy (N, C_out, H_out, W_out), as
    this algorithm makes it: NCHW offset adds for few channels, else the compiled col2im
    where it applies, else functional's col2im, the images split between threads. The
    direct loop's backward uses it too."""
    n, c_out, ho, wo = geo.out_shape
    dz = dy.transpose(0, 2, 3, 1).reshape(n, ho * wo, c_out)   # a view, as in backward
    if _few(geo):
        return _input_grad_t(dz, geo, weight)
    if _compiled_col2im(geo):
        return _input_grad_compiled(dz, geo, weight, None)[0]
    return _input_grad_numpy(dz, geo, weight)


def _input_grad_numpy(dz: np.ndarray, geo: ConvGeometry, weight: np.ndarray) -> np.ndarray:
    """functional's col2im of dcols = dZ W, the images split between threads."""
    n = geo.in_shape[0]
    w2 = weight_matrix(weight)
    dxph = _padded_zeros(geo, dz.dtype, nchw=False)

    def work(lo: int, hi: int) -> None:   # images lo..hi (their dx do not overlap)
        col2im(_rows_times(dz[lo:hi], w2), geo, dxph[lo:hi])

    threads.map_split(work, n)
    return crop(dxph, geo)


def _supports_any(call: ConvCall) -> tuple[bool, str]:
    if call.geometry.groups != 1:
        return False, f"ungrouped convolutions only, got groups {call.geometry.groups}"
    return True, "any ungrouped geometry; the batch split between threads"


registry.register(registry.Algorithm(
    OP, "im2col-split", _supports_any, forward, backward,
    "im2col with the batch split between threads, cache-sized inference chunks and a "
    "compiled col2im (Numba, when installed)", layout="channels-last"))


# ------------------------------------------------------------- transposed convolution
def transposed_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
                       geo: ConvGeometry) -> np.ndarray:
    """conv2d's input gradient at dZ = x, made as this algorithm makes it."""
    y = input_gradient(x, geo, weight)
    if bias is not None:
        y += bias[:, None, None]
    return y


def transposed_backward(dy: np.ndarray, cache: ConvTranspose2dCache, input_grad: bool
                        ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """dX = conv2d(dY, W) by :func:`forward` (the batch split, the columns kept) and dW
    from those columns with X as dZ by :func:`backward`."""
    geo, weight, x = cache.geometry, cache.weight, cache.saved
    dx, cols = forward(dy, weight, None, geo, need_backward=True)
    as_conv = Conv2dCache("im2col-split", weight, False, geo, cols)
    _, dweight, _ = backward(np.ascontiguousarray(x), as_conv, input_grad=False)
    dz = dy.transpose(0, 2, 3, 1).reshape(-1, dy.shape[1])
    dbias = np.ones(dz.shape[0], dz.dtype) @ dz if cache.has_bias else None
    return (dx if input_grad else None), dweight, dbias


registry.register(registry.Algorithm(
    TRANSPOSED, "im2col-split", _supports_any, transposed_forward, transposed_backward,
    "conv2d's input gradient by im2col-split (compiled col2im, the batch split); "
    "backward: its forward and weight gradient", layout="channels-last"))
