"""The compiled loops of conv2d's ``'direct-nhwc'`` algorithm (:mod:`clearconv.kernels.blocked`,
whose docstring gives the formulas). A module of their own so that importing the algorithm
does not import Numba: it loads these at its first call, as :mod:`clearconv.kernels.jit`
loads the other compiled loops.

Each loop keeps a block of outputs in a small array on the stack (:func:`_stack_like`):
LLVM then knows that no input array overlaps it, keeps it in vector registers for the
whole sum, and turns the 16-lane loops over output channels into vector FMAs (with a heap
array, or an output channel index it cannot prove in range, it writes every partial sum
back to memory or gathers the weights one lane at a time, 10x slower).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from . import compiled

#: compiled as the other loops (:func:`clearconv.kernels.compiled._njit`), with
#: ``contract``: a multiply and the add after it are one fused multiply-add (rounded once)
_njit = ((lambda fn: numba.njit(cache=True, nogil=True, error_model="numpy",
                                fastmath={"contract"})(fn))
         if compiled.AVAILABLE else (lambda fn: fn))
_inline = compiled._njit_inline

#: output channels per block: one AVX-512 register (two AVX2 ones) of float32
LANES = 16
#: output pixels per block of the forward loop: 4 x 16 float32 sums are 8 AVX2 registers
#: of 16 (AVX-512: 32), room left for the weights and the broadcast input value
PIXELS = 4
#: input channels per block of the weight-gradient loop (4 x 16 sums, as PIXELS)
CHANNELS = 4


@intrinsic
def _stack_like(typingctx: Any, size: Any, like: Any) -> Any:
    """A pointer to ``size`` (a literal int) uninitialised values of ``like``'s dtype on
    the calling function's stack (allocated once, in its entry block)."""
    if not isinstance(size, types.IntegerLiteral) or not isinstance(like, types.Array):
        return None
    count = size.literal_value

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        value_type = context.get_value_type(like.dtype)
        return cgutils.alloca_once(builder, value_type, size=ir.Constant(ir.IntType(64), count))

    return types.CPointer(like.dtype)(size, like), codegen


@_inline
def _four_pixels(xp: Any, wb: Any, bg: Any, n: int, m: int, g: int, k0: int, acc: Any) -> None:
    """acc[p, o] = bg[o] + sum_{i,j,c} wb[g, i, j, c, o] * xp[n, m + i, k0 + p + j, c] for
    the 4 pixels p of a block: one weight vector, four fused multiply-adds."""
    kh, kw, c_in = wb.shape[1], wb.shape[2], wb.shape[3]
    for o in range(LANES):
        acc[0, o] = bg[o]
        acc[1, o] = bg[o]
        acc[2, o] = bg[o]
        acc[3, o] = bg[o]
    for i in range(kh):
        xr = xp[n, m + i]
        for j in range(kw):
            wij = wb[g, i, j]
            for c in range(c_in):
                x0 = xr[k0 + j, c]
                x1 = xr[k0 + j + 1, c]
                x2 = xr[k0 + j + 2, c]
                x3 = xr[k0 + j + 3, c]
                wv = wij[c]
                for o in range(LANES):
                    acc[0, o] += x0 * wv[o]
                    acc[1, o] += x1 * wv[o]
                    acc[2, o] += x2 * wv[o]
                    acc[3, o] += x3 * wv[o]


@_inline
def _one_pixel(xp: Any, wb: Any, bg: Any, n: int, m: int, g: int, k: int, acc: Any) -> None:
    """acc[0, o] = bg[o] + sum_{i,j,c} wb[g, i, j, c, o] * xp[n, m + i, k + j, c]: a row
    of fewer than 4 pixels, one at a time."""
    kh, kw, c_in = wb.shape[1], wb.shape[2], wb.shape[3]
    for o in range(LANES):
        acc[0, o] = bg[o]
    for i in range(kh):
        xr = xp[n, m + i]
        for j in range(kw):
            wij = wb[g, i, j]
            for c in range(c_in):
                x0 = xr[k + j, c]
                wv = wij[c]
                for o in range(LANES):
                    acc[0, o] += x0 * wv[o]


@_njit
def forward(xp: Any, wb: Any, b: Any, y: Any) -> None:
    """y[n, m, k, g, o] = b[g, o] + sum_{i,j,c} wb[g, i, j, c, o] * xp[n, m + i, k + j, c].

    xp: zero-padded input (N, H_pad, W_pad, C_in), C-contiguous; wb: the weight in blocks
    of 16 output channels (output channel 16*g + o), (C_out_pad / 16, kh, kw, C_in, 16);
    b: (C_out_pad / 16, 16); y: (N, H_out, W_out, C_out_pad / 16, 16), C-contiguous.
    Stride 1, dilation 1. Each output is summed in (i, j, c) order, starting from the
    bias: 4 pixels x 16 channels at a time (a row whose width is not a multiple of 4
    ends with a block that overlaps the one before it).
    """
    n_img, ho, wo, groups = y.shape[0], y.shape[1], y.shape[2], y.shape[3]
    acc = numba.carray(_stack_like(64, y), (PIXELS, LANES))   # PIXELS * LANES
    for n in range(n_img):
        for m in range(ho):
            yr = y[n, m]
            for g in range(groups):
                for k0 in range(0, wo - PIXELS + 1, PIXELS):
                    _four_pixels(xp, wb, b[g], n, m, g, k0, acc)
                    for p in range(PIXELS):
                        yp = yr[k0 + p, g]
                        for o in range(LANES):
                            yp[o] = acc[p, o]
                if wo % PIXELS and wo >= PIXELS:   # the row's last 4 pixels, again
                    k0 = wo - PIXELS                 # (the same sums: the same values)
                    _four_pixels(xp, wb, b[g], n, m, g, k0, acc)
                    for p in range(PIXELS):
                        yp = yr[k0 + p, g]
                        for o in range(LANES):
                            yp[o] = acc[p, o]
                elif wo < PIXELS:
                    for k in range(wo):
                        _one_pixel(xp, wb, b[g], n, m, g, k, acc)
                        yp = yr[k, g]
                        for o in range(LANES):
                            yp[o] = acc[0, o]


@_inline
def _four_channels(xp: Any, dz: Any, n: int, g: int, i: int, j: int, c0: int, acc: Any
                   ) -> None:
    """acc[t, o] = sum_{m,k} xp[n, m + i, k + j, c0 + t] * dz[n, m, k, g, o] for the 4
    input channels t of a block: one gradient vector, four fused multiply-adds."""
    ho, wo = dz.shape[1], dz.shape[2]
    zero = dz.dtype.type(0)
    for o in range(LANES):
        acc[0, o] = zero
        acc[1, o] = zero
        acc[2, o] = zero
        acc[3, o] = zero
    for m in range(ho):
        xr = xp[n, m + i]
        for k in range(wo):
            gv = dz[n, m, k, g]
            x0 = xr[k + j, c0]
            x1 = xr[k + j, c0 + 1]
            x2 = xr[k + j, c0 + 2]
            x3 = xr[k + j, c0 + 3]
            for o in range(LANES):
                acc[0, o] += x0 * gv[o]
                acc[1, o] += x1 * gv[o]
                acc[2, o] += x2 * gv[o]
                acc[3, o] += x3 * gv[o]


@_inline
def _one_channel(xp: Any, dz: Any, n: int, g: int, i: int, j: int, c: int, acc: Any
                 ) -> None:
    """acc[0, o] = sum_{m,k} xp[n, m + i, k + j, c] * dz[n, m, k, g, o]: the last 1-3
    input channels, one at a time."""
    ho, wo = dz.shape[1], dz.shape[2]
    for o in range(LANES):
        acc[0, o] = dz.dtype.type(0)
    for m in range(ho):
        xr = xp[n, m + i]
        for k in range(wo):
            gv = dz[n, m, k, g]
            xv = xr[k + j, c]
            for o in range(LANES):
                acc[0, o] += xv * gv[o]


@_njit
def weight_grad(xp: Any, dz: Any, dwb: Any, db: Any) -> None:
    """dwb[g, i, j, c, o] += sum_{n,m,k} xp[n, m + i, k + j, c] * dz[n, m, k, g, o] and
    db[g, o] += sum_{n,m,k} dz[n, m, k, g, o].

    xp: as :func:`forward`'s; dz: the output gradient (N, H_out, W_out, C_out_pad / 16, 16),
    C-contiguous; dwb: (C_out_pad / 16, kh, kw, C_in, 16) like forward's weight; db:
    (C_out_pad / 16, 16). Each image's sums are made in (m, k) order, 4 input channels x
    16 output channels at a time, then added to dwb and db (images in order).
    """
    n_img, ho, wo, groups = dz.shape[0], dz.shape[1], dz.shape[2], dz.shape[3]
    kh, kw, c_in = dwb.shape[1], dwb.shape[2], dwb.shape[3]
    acc = numba.carray(_stack_like(64, dz), (CHANNELS, LANES))   # CHANNELS * LANES
    whole = c_in - c_in % CHANNELS
    for n in range(n_img):
        for g in range(groups):
            for o in range(LANES):
                acc[0, o] = dz.dtype.type(0)
            for m in range(ho):
                for k in range(wo):
                    gv = dz[n, m, k, g]
                    for o in range(LANES):
                        acc[0, o] += gv[o]
            for o in range(LANES):
                db[g, o] += acc[0, o]
            for i in range(kh):
                for j in range(kw):
                    for c0 in range(0, whole, CHANNELS):
                        _four_channels(xp, dz, n, g, i, j, c0, acc)
                        for t in range(CHANNELS):
                            dw = dwb[g, i, j, c0 + t]
                            for o in range(LANES):
                                dw[o] += acc[t, o]
                    for c in range(whole, c_in):
                        _one_channel(xp, dz, n, g, i, j, c, acc)
                        dw = dwb[g, i, j, c]
                        for o in range(LANES):
                            dw[o] += acc[0, o]


def warm_up(dtype: Any = np.float32) -> None:
    """Load (or compile) both loops for ``dtype`` on tiny arrays."""
    xp = np.zeros((1, 3, 6, 1), dtype)
    w = np.zeros((1, 1, 1, 1, LANES), dtype)
    b = np.zeros((1, LANES), dtype)
    y = np.zeros((1, 3, 6, 1, LANES), dtype)
    forward(xp, w, b, y)
    weight_grad(xp, y, w, b)
