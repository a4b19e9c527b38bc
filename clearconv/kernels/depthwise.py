"""conv2d algorithm ``'depthwise'``: groups == C_in, each input channel its own kernels.

A depthwise convolution (MobileNet's) gives input channel c its own ``m = C_out / C_in``
kernels: ``Z[n, c*m + t, y, x] = b + sum_{i,j} W[c*m + t, 0, i, j] * A_pad[n, c, y*s + i*d,
x*s + j*d]``. The readable grouped im2col of functional/ runs that as C_in tiny matrix
products; here every output pixel sums its kh*kw taps over channels-last memory with the
channels innermost (contiguous, vectorised): a compiled loop
(:func:`~clearconv.kernels.compiled.depthwise_forward`, and its backward, which adds dW
and dA in the same pass) with Numba, else kh*kw whole-array multiply-adds, one per
kernel offset; the batch split between threads either way. Output: an NCHW view of NHWC
memory, like im2col's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..functional.conv import OP, Conv2dCache, ConvCall
from ..shapes import ConvGeometry
from . import copies, jit, registry, threads
from .jit import compiled


def supports(call: ConvCall) -> tuple[bool, str]:
    geo = call.geometry
    c_in = geo.in_shape[1]
    if geo.groups != c_in:
        return False, f"needs groups == C_in ({c_in}), got groups {geo.groups}"
    return True, f"groups == C_in == {c_in}: one kernel per channel (x{geo.out_shape[1] // c_in})"


def prefer(call: ConvCall) -> tuple[bool, str]:
    """'auto' takes it for real depthwise convolutions (more than one group): one input
    channel and groups 1 is a plain conv, for the algorithms of plain convs."""
    ok, why = supports(call)
    if ok and call.geometry.groups == 1:
        return False, "a single input channel: a plain convolution"
    return ok, why


def _view(xph: np.ndarray, i: int, j: int, geo: ConvGeometry) -> np.ndarray:
    """The (n, H_out, W_out, C) view of padded NHWC input that kernel offset (i, j) reads."""
    ho, wo = geo.out_shape[2:]
    (sh, sw), (dh, dw) = geo.stride, geo.dilation
    return xph[:, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]


def _taps(weight: np.ndarray, c: int) -> np.ndarray:
    """W (C*m, 1, kh, kw) as (kh, kw, C, m): the weights of offset (i, j) by channel."""
    c_out, _, kh, kw = weight.shape
    return np.ascontiguousarray(weight.reshape(c, c_out // c, kh, kw).transpose(2, 3, 0, 1))


def forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, geo: ConvGeometry,
            need_backward: bool) -> tuple[np.ndarray, np.ndarray]:
    n, c = geo.in_shape[:2]
    _, c_out, ho, wo = geo.out_shape
    m = c_out // c
    kh, kw = geo.kernel
    xph = copies.padded_nhwc(x, geo.padding)
    taps = _taps(weight, c)
    y = np.empty((n, ho, wo, c, m), x.dtype)
    if jit.worth(n)[0]:
        b = np.zeros(c_out, x.dtype) if bias is None else bias
        (sh, sw), (dh, dw) = geo.stride, geo.dilation
        flat_taps, flat_y = taps.reshape(kh, kw, c_out), y.reshape(n, ho, wo, c_out)
        threads.map_split(lambda lo, hi: compiled.depthwise_forward(
            xph[lo:hi], flat_taps, b, sh, sw, dh, dw, flat_y[lo:hi]), n)
        return y.reshape(n, ho, wo, c_out).transpose(0, 3, 1, 2), xph

    def work(lo: int, hi: int) -> None:
        out = y[lo:hi]
        out[...] = 0 if bias is None else bias.reshape(c, m)
        tmp = np.empty(out.shape, x.dtype)
        for i in range(kh):
            for j in range(kw):
                np.multiply(_view(xph[lo:hi], i, j, geo)[..., None], taps[i, j], out=tmp)
                out += tmp

    threads.map_split(work, n)
    return y.reshape(n, ho, wo, c_out).transpose(0, 3, 1, 2), xph


def backward(dy: np.ndarray, cache: Conv2dCache, input_grad: bool
             ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    geo, weight, xph = cache.geometry, cache.weight, cache.saved
    n, c, h, w = geo.in_shape
    _, c_out, ho, wo = geo.out_shape
    m = c_out // c
    (pt, _), (pl, _) = geo.padding
    dyh = np.ascontiguousarray(dy.transpose(0, 2, 3, 1)).reshape(n, ho, wo, c, m)
    taps = _taps(weight, c)
    dxph = np.zeros(xph.shape, dy.dtype) if input_grad else None
    work = _backward_compiled(xph, dyh, taps, geo, dxph) if jit.worth(n)[0] else \
        _backward_numpy(xph, dyh, taps, geo, dxph)
    dw = threads.add_up(threads.map_split(work, n))
    dweight = np.ascontiguousarray(dw.transpose(2, 3, 0, 1)).reshape(weight.shape)
    dz = dyh.reshape(-1, c_out)
    dbias = np.ones(dz.shape[0], dz.dtype) @ dz if cache.has_bias else None
    dx = dxph[:, pt:pt + h, pl:pl + w].transpose(0, 3, 1, 2) if dxph is not None else None
    return dx, dweight, dbias


def _backward_compiled(xph: np.ndarray, dyh: np.ndarray, taps: np.ndarray, geo: ConvGeometry,
                       dxph: np.ndarray | None) -> Callable[[int, int], np.ndarray]:
    """Images lo..hi's dx and share of dW in one compiled pass."""
    (sh, sw), (dh, dw) = geo.stride, geo.dilation
    kh, kw, c, m = taps.shape
    flat_taps = taps.reshape(kh, kw, c * m)
    flat_dy = dyh.reshape(*dyh.shape[:3], c * m)
    dummy = np.zeros((1, 1, 1, 1), dyh.dtype)

    def work(lo: int, hi: int) -> np.ndarray:
        dwt = np.zeros(flat_taps.shape, dyh.dtype)
        compiled.depthwise_backward(xph[lo:hi], flat_dy[lo:hi], flat_taps, sh, sw, dh, dw,
                                    dxph is not None,
                                    dxph[lo:hi] if dxph is not None else dummy, dwt)
        return dwt.reshape(kh, kw, c, m)

    return work


def _backward_numpy(xph: np.ndarray, dyh: np.ndarray, taps: np.ndarray, geo: ConvGeometry,
                    dxph: np.ndarray | None) -> Callable[[int, int], np.ndarray]:
    """Images lo..hi's dx and share of dW, one einsum per kernel offset."""
    kh, kw = geo.kernel
    c, m = taps.shape[2:]

    def work(lo: int, hi: int) -> np.ndarray:   # images lo..hi: their dx, their share of dW
        g = dyh[lo:hi]
        dw = np.empty((kh, kw, c, m), dyh.dtype)
        for i in range(kh):
            for j in range(kw):
                dw[i, j] = np.einsum("nyxct,nyxc->ct", g, _view(xph[lo:hi], i, j, geo))
                if dxph is not None:
                    _view(dxph[lo:hi], i, j, geo)[...] += np.einsum("nyxct,ct->nyxc", g,
                                                                     taps[i, j])
        return dw

    return work


registry.register(registry.Algorithm(
    OP, "depthwise", supports, forward, backward,
    "groups == C_in: one multiply-add over channels-last memory per kernel offset, the "
    "batch split between threads", prefer, layout="channels-last"))
