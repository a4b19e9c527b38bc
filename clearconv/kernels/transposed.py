"""conv_transpose2d algorithm ``'chunked'``: conv2d's input gradient, and its forward and
weight gradient, a few images at a time in cache-sized buffers.

A transposed convolution is conv2d's input gradient (MATH.md §9, issue 13 item 3; see
:func:`clearconv.functional.conv.conv_transpose2d_forward`): with its weight
``(C_in, C_out / groups, kh, kw)`` read as the weight of a conv2d from C_out to C_in
channels whose output has x's shape,

- **forward**: ``Y = col2im(X W)``, conv2d's input gradient taken at ``dZ = X``: each
  pixel's ``kh*kw*C_out`` products with the weight added back onto its window of the
  (padded) output, plus the bias;
- **backward**: ``dX = conv2d(dY, W)``, conv2d's *forward* (im2col columns of dY times
  the weight), and ``dW = X^T cols(dY)``, conv2d's *weight gradient* with dY as the
  input and X as dZ, from the same columns; ``db = 1^T dY``.

Those are the same functions as conv2d's readable path (:func:`~clearconv.functional.
conv.im2col`, :func:`~clearconv.functional.conv.col2im`, :func:`~clearconv.functional.
conv.weight_matrix`, :func:`~clearconv.functional.conv.crop`), only run on a chunk of
a few images at a time (:data:`~clearconv.kernels.tuning.CHUNK_BYTES` of products or
columns), so that the ``X W`` products the col2im reads, and the columns of dY that the
two backward products read, stay in the CPU's cache instead of going out to memory and
back (the whole batch's are 32 MiB for 64x64x16x16 -> 32 with a 4x4 kernel): per chunk,

- forward: rows of X (``(n'*H*W, C_in)``) times the weight matrix, then the col2im of
  those products into the chunk's padded output, which starts as the bias (compiled,
  Numba, where the kernel is not dilated along W; functional's col2im else);
- backward: dY's chunk copied into a zero-bordered channels-last buffer (compiled from
  NCHW memory), its im2col columns, then ``dX_chunk = cols W^T`` and
  ``dW += X_chunk^T cols``.

The batch is split between clearconv's threads (:mod:`clearconv.kernels.threads`), each
part's products single-threaded, the parts' dW added up after. Grouped convolutions
take one stack of products per chunk, group by group, as functional's (its
:func:`~clearconv.functional.conv.group_weights` and
:func:`~clearconv.functional.conv.group_columns`). 'auto' leaves ungrouped outputs of
fewer than :data:`~clearconv.kernels.tuning.FEW_CHANNELS` channels to ``'im2col-split'``.

The sub-pixel (phase) decomposition, s*s stride-1 correlations of x with the sub-kernels
and no scatter-add, was measured too (NumPy, 1 thread, CPU clock, 64x64x16x16 -> 32, 4x4
stride 2): its per-phase columns cost more than the col2im they save (19.7 ms for the
forward, chunked, against 11.4 ms here).
"""

from __future__ import annotations

import numpy as np

from ..functional.conv import (
    TRANSPOSED,
    ConvCall,
    ConvTranspose2dCache,
    col2im,
    crop,
    group_columns,
    group_weights,
    im2col,
    ungroup_columns,
    weight_from_matrix,
    weight_matrix,
    weights_from_groups,
)
from ..shapes import ConvGeometry
from . import jit, registry, threads, tuning
from .jit import compiled

NAME = "chunked"


def _chunk(images_bytes: int) -> int:
    """Images per chunk: as many as fit :data:`tuning.CHUNK_BYTES`, at least one."""
    return max(1, tuning.CHUNK_BYTES // max(1, images_bytes))


def _rows_nhwc(a: np.ndarray) -> np.ndarray:
    """(n, C, h, w) as channels-last rows (n*h*w, C): a view of channels-last memory,
    else one transposing copy (of a chunk: it stays in cache)."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).reshape(-1, a.shape[1])


def _compiled_col2im(geo: ConvGeometry) -> bool:
    return geo.dilation[1] == 1 and jit.worth(geo.in_shape[0])[0]


def forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
            geo: ConvGeometry) -> np.ndarray:
    """Y = col2im(X W) + b (conv2d's input gradient at dZ = X), chunk by chunk.

    x: (N, C_in, H, W); weight (C_in, C_out, kh, kw); returns (N, C_out, H_out, W_out),
    an NCHW view of channels-last memory.
    """
    n, c_out, h_out, w_out = geo.in_shape
    (pt, pb), (pl, pr) = geo.padding
    hp, wp = h_out + pt + pb, w_out + pl + pr
    h, w = geo.out_shape[2:]
    kh, kw = geo.kernel
    k = kh * kw * c_out
    dtype = x.dtype
    g = geo.groups
    w2 = weight_matrix(weight) if g == 1 else group_weights(weight, g)
    ypad = np.empty((n, hp, wp, c_out), dtype)
    fill = bias if bias is not None else dtype.type(0)
    use_compiled = _compiled_col2im(geo)
    step = _chunk(h * w * k * dtype.itemsize)

    def work(lo: int, hi: int) -> None:   # images lo..hi (their outputs do not overlap)
        prod = np.empty((min(step, hi - lo) * h * w, k), dtype)
        for a in range(lo, hi, step):
            b = min(a + step, hi)
            p = prod[:(b - a) * h * w]
            _times_weight(_rows_nhwc(x[a:b]), w2, g, kh * kw, p)   # (n'*H*W, kh*kw*C_out)
            ypad[a:b] = fill                             # the bias, then the windows' sums
            if use_compiled:
                compiled.col2im_nhwc(p.reshape(b - a, h, w, kh, kw * c_out),
                                     geo.stride[0], geo.stride[1], geo.dilation[0], c_out,
                                     ypad[a:b].reshape(b - a, hp, wp * c_out))
            else:
                col2im(p, geo, ypad[a:b])

    threads.map_split(work, n)
    return crop(ypad, geo)


def _times_weight(rows: np.ndarray, w2: np.ndarray, groups: int, taps: int,
                  out: np.ndarray) -> None:
    """out = X W: rows (r, C_in) times the weight matrix (C_in, kh*kw*C_out), or group by
    group (w2 then :func:`~clearconv.functional.conv.group_weights`' stack) with the
    columns put back in the ungrouped order (kernel offset, then channel)."""
    if groups == 1:
        np.matmul(rows, w2, out=out)
        return
    rows_g = rows.reshape(rows.shape[0], groups, -1).transpose(1, 0, 2)   # (g, r, C_in/g)
    out[...] = ungroup_columns(np.matmul(rows_g, w2), taps)


def _fill_nhwc(dst: np.ndarray, src: np.ndarray) -> None:
    """dst (n, h, w, C) = src (n, C, h, w): compiled from NCHW memory, NumPy else."""
    if src.flags.c_contiguous and src.shape[1] > 1 and jit.worth(src.shape[0])[0]:
        compiled.nchw_to_nhwc(src, dst)
    else:
        dst[...] = src.transpose(0, 2, 3, 1)


def backward(dy: np.ndarray, cache: ConvTranspose2dCache, input_grad: bool
             ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """dX = conv2d(dY, W) (conv2d's forward: dY's im2col columns times the weight) and
    dW = X^T cols (conv2d's weight gradient, dY as its input, X as its dZ), chunk by
    chunk from the same columns; db = 1^T dY."""
    geo, weight, x = cache.geometry, cache.weight, cache.saved
    n, c_out, h_out, w_out = geo.in_shape
    _, c_in, h, w = geo.out_shape
    (pt, pb), (pl, pr) = geo.padding
    hp, wp = h_out + pt + pb, w_out + pl + pr
    kh, kw = geo.kernel
    k = kh * kw * c_out
    rows = h * w                                         # columns' rows per image
    dtype = dy.dtype
    g, taps = geo.groups, kh * kw
    w2 = weight_matrix(weight) if g == 1 else group_weights(weight, g)
    dx = np.empty((n * rows, c_in), dtype) if input_grad else None
    step = _chunk(rows * k * dtype.itemsize)

    def work(lo: int, hi: int) -> np.ndarray:   # images lo..hi: their dX, their share of dW
        m = min(step, hi - lo)
        dyp = np.zeros((m, hp, wp, c_out), dtype)       # the borders stay zero
        cols = np.empty((m * rows, k), dtype)
        dw2 = np.zeros((c_in, k) if g == 1 else (g, c_in // g, k // g), dtype)
        for a in range(lo, hi, step):
            b = min(a + step, hi)
            cc = cols[:(b - a) * rows]
            _fill_nhwc(dyp[:b - a, pt:pt + h_out, pl:pl + w_out], dy[a:b])
            im2col(dyp[:b - a], geo, cc)                 # (n'*H*W, kh*kw*C_out)
            xa = _rows_nhwc(x[a:b])                      # (n'*H*W, C_in)
            if g == 1:
                if dx is not None:
                    np.matmul(cc, w2.T, out=dx[a * rows:b * rows])
                dw2 += xa.T @ cc
                continue
            cols_g = group_columns(cc, g, taps)          # (g, n'*H*W, kh*kw*C_out/g)
            x_g = xa.reshape(xa.shape[0], g, -1).transpose(1, 0, 2)   # (g, n'*H*W, C_in/g)
            if dx is not None:
                dx_g = np.matmul(cols_g, w2.transpose(0, 2, 1))
                dx[a * rows:b * rows] = dx_g.transpose(1, 0, 2).reshape(-1, c_in)
            dw2 += np.matmul(x_g.transpose(0, 2, 1), cols_g)
        return dw2

    dw = threads.add_up(threads.map_split(work, n))
    dweight = (weight_from_matrix(dw, weight.shape) if g == 1
               else weights_from_groups(dw, weight.shape))
    dbias = _bias_grad(dy) if cache.has_bias else None
    if dx is not None:
        dx = dx.reshape(n, h, w, c_in).transpose(0, 3, 1, 2)
    return dx, dweight, dbias


def _bias_grad(dy: np.ndarray) -> np.ndarray:
    """db = 1^T dY over (N, H, W), as products (a blocked sum, more exact than a running
    one), without a transposing copy of NCHW or channels-last memory."""
    n, c, h, w = dy.shape
    rows = dy.transpose(0, 2, 3, 1)
    if rows.flags.c_contiguous:                           # channels-last memory
        flat = rows.reshape(-1, c)
        return np.ones(flat.shape[0], dy.dtype) @ flat
    planes = np.ascontiguousarray(dy).reshape(n, c, h * w)   # NCHW: a view when it is
    return (planes @ np.ones(h * w, dy.dtype)).sum(axis=0)


def _supports(call: ConvCall) -> tuple[bool, str]:
    return True, "any geometry and groups, a few images at a time in cache-sized buffers"


def _prefer(call: ConvCall) -> tuple[bool, str]:
    ok, why = _supports(call)
    c_out = call.geometry.in_shape[1]
    if ok and call.geometry.groups == 1 and c_out < tuning.FEW_CHANNELS:
        # 64x16x14x14 -> 1, 4x4 stride 2 (an autoencoder's last layer), fwd+bwd, 1 thread,
        # CPU clock: 2.4 ms here, 1.9 ms by im2col-split (torch 3.5 ms)
        return False, (f"{c_out} output channel(s), fewer than {tuning.FEW_CHANNELS}: "
                       f"im2col-split's transposed columns copy whole rows instead of "
                       f"{c_out} value(s) at a time")
    if call.geometry.groups != 1:
        # one stack of products per chunk; functional's im2col makes the same stack for the
        # whole batch: 32x64x16x16 -> 64, 4x4 stride 2, fwd+bwd, 1 thread, CPU clock:
        # groups 2 52 ms against 106, groups 64 57 against 340 (torch 36 and 27)
        return True, "grouped: one stack of group products per cache-sized chunk"
    return ok, why


registry.register(registry.Algorithm(
    TRANSPOSED, NAME, _supports, forward, backward,
    "conv2d's input gradient (X W, col2im) and, backward, its forward and weight "
    "gradient from dY's columns, a few images at a time in cache-sized buffers",
    _prefer, layout="channels-last"))
