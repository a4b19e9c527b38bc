"""conv2d algorithm ``'direct'`` and its fused twin ``'direct-fused'``: a compiled loop
that sums each output over its window, with no im2col columns.

For inputs with few channels the columns are kh*kw times the input and their product
is too narrow for the BLAS; :func:`~clearconv.kernels.compiled.conv_direct_forward`
computes ``Z[n, o, m, k] = b[o] + sum_{c,i,j} W[o, c, i, j] * A_pad[n, c, m + i, k + j]``
(MATH.md §7) along long contiguous runs of each padded input plane instead, the batch
split between threads. Backward: dW and db by the compiled dot products of dZ with the
same runs; dA (rare: the direct loop is for first layers) as ``'im2col-split'`` makes
it (:func:`~clearconv.kernels.im2col.input_gradient`).

``'direct-fused'`` computes ``max_pool2d(relu(conv2d(x)), 2, 2)``
(:mod:`clearconv.functional.fused`) in the same loop: each output plane is pooled as it
is made (the pooling's rule of :func:`~clearconv.kernels.compiled._max_of_4`) and never
stored, and backward routes the pooled gradient straight into dW. The values and
gradients are bit-identical to ``'direct'`` followed by the compiled 2x2 pooling.

Output: NCHW memory (each output row comes out of the loop whole).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..functional import conv as fconv
from ..functional import fused
from ..shapes import ConvGeometry, PoolGeometry
from . import jit, registry, threads, tuning
from .im2col import input_gradient
from .jit import compiled


def supports(call: fconv.ConvCall) -> tuple[bool, str]:
    geo = call.geometry
    if geo.groups != 1:
        return False, f"ungrouped convolutions only, got groups {geo.groups}"
    if not jit.AVAILABLE:
        return False, 'needs Numba (pip install "clearconv[fast]")'
    if geo.stride != (1, 1) or geo.dilation != (1, 1):
        return False, (f"needs stride 1 and dilation 1, got stride {geo.stride}, dilation "
                       f"{geo.dilation}")
    return True, "stride 1, dilation 1, compiled loop"


def prefer(call: fconv.ConvCall) -> tuple[bool, str]:
    """'auto' takes the direct loop for few input and output channels."""
    ok, why = supports(call)
    if not ok:
        return ok, why
    c_in, c_out = call.geometry.in_shape[1], call.geometry.out_shape[1]
    if c_in >= tuning.DIRECT_MAX_IN or c_out >= tuning.DIRECT_MAX_OUT:
        return False, (f"for fewer than {tuning.DIRECT_MAX_IN} input and "
                       f"{tuning.DIRECT_MAX_OUT} output channels, got {c_in} -> {c_out}")
    ok, why = jit.worth(call.geometry.in_shape[0])
    if not ok:
        return ok, why
    return True, f"stride 1, {c_in} -> {c_out} channels: the columns would not pay"


class DirectSaved:
    """What the direct backward needs: the zero-padded input as flat planes."""

    __slots__ = ("xf", "argmax")

    def __init__(self, xf: np.ndarray, argmax: np.ndarray | None = None) -> None:
        self.xf = xf                # (N, C_in, H_pad*W_pad), C-contiguous
        self.argmax = argmax        # direct-fused: (N, C_out, H_pool, W_pool) uint8


def _inputs(x: np.ndarray, bias: np.ndarray | None, geo: ConvGeometry
            ) -> tuple[np.ndarray, int, np.ndarray]:
    """(xf, W_pad, b) for the direct loops: the zero-padded input as flat planes
    (N, C, H_pad*W_pad), its row width, and the bias (zeros for none)."""
    n, c, h, w = geo.in_shape
    (pt, pb), (pl, pr) = geo.padding
    hp, wp = h + pt + pb, w + pl + pr
    xp = np.zeros((n, c, hp, wp), x.dtype)
    xp[:, :, pt:pt + h, pl:pl + w] = x
    b = bias if bias is not None else np.zeros(geo.out_shape[1], x.dtype)
    return xp.reshape(n, c, hp * wp), wp, b


def forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, geo: ConvGeometry,
            need_backward: bool) -> tuple[np.ndarray, DirectSaved]:
    xf, wp, b = _inputs(x, bias, geo)
    y = np.empty(geo.out_shape, x.dtype)
    threads.map_split(lambda lo, hi: compiled.conv_direct_forward(xf[lo:hi], weight, b, wp,
                                                                  y[lo:hi]), geo.in_shape[0])
    return y, DirectSaved(xf)


def _partials(kernel: Callable[[int, int, np.ndarray, np.ndarray], None],
              weight: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(dW, db) summed over images by ``kernel(lo, hi, dw, db)``, which adds images
    lo..hi's shares into zeroed dw and db; each thread its images, then the sums added."""
    def part(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        dw = np.zeros(weight.shape, weight.dtype)
        db = np.zeros(weight.shape[0], weight.dtype)
        kernel(lo, hi, dw, db)
        return dw, db

    parts = threads.map_split(part, n)
    return threads.add_up([dw for dw, _ in parts]), threads.add_up([db for _, db in parts])


def backward(dy: np.ndarray, cache: fconv.Conv2dCache, input_grad: bool
             ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    geo, weight, xf = cache.geometry, cache.weight, cache.saved.xf
    kh, kw = geo.kernel
    wp = geo.in_shape[3] + sum(geo.padding[1])
    dyp = np.ascontiguousarray(dy)       # NCHW memory, like the forward's output
    dweight, dbias = _partials(lambda lo, hi, dw, db: compiled.conv_direct_weight_grad(
        xf[lo:hi], dyp[lo:hi], wp, kh, kw, dw, db), weight, geo.in_shape[0])
    dx = input_gradient(dy, geo, weight) if input_grad else None
    return dx, dweight, (dbias if cache.has_bias else None)


registry.register(registry.Algorithm(
    fconv.OP, "direct", supports, forward, backward,
    "a compiled loop summing each output over its window, no columns (stride 1; Numba)",
    prefer, layout="NCHW"))


# ------------------------------------------------------------------- conv, ReLU and pool
def _pool_is_2x2(pool: PoolGeometry) -> bool:
    return (pool.kernel == (2, 2) and pool.stride == (2, 2)
            and pool.padding == ((0, 0), (0, 0)) and pool.dilation == (1, 1))


def fused_supports(call: fused.FusedCall) -> tuple[bool, str]:
    ok, why = supports(fconv.ConvCall(call.conv, call.dtype))
    if not ok:
        return ok, why
    if not _pool_is_2x2(call.pool):
        return False, (f"pools 2x2 windows, stride 2, unpadded only; got window "
                       f"{call.pool.kernel}, stride {call.pool.stride}, padding "
                       f"{call.pool.padding}")
    return True, "stride-1 conv, 2x2/2 pooling: one compiled pass"


def fused_prefer(call: fused.FusedCall) -> tuple[bool, str]:
    """'auto' fuses where the conv alone would take its direct loop."""
    ok, why = fused_supports(call)
    if not ok:
        return ok, why
    ok, why = prefer(fconv.ConvCall(call.conv, call.dtype))
    return ok, why if not ok else f"{why}; 2x2/2 pooling in the same pass"


def fused_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
                  geo: ConvGeometry, pool: PoolGeometry, need_backward: bool
                  ) -> tuple[np.ndarray, DirectSaved]:
    _, _, ho, wo = geo.out_shape
    xf, wp, b = _inputs(x, bias, geo)
    y = np.empty(pool.out_shape, x.dtype)
    idx = np.empty(y.shape, np.uint8)      # 2i + j of the window's maximum, 4 = none
    threads.map_split(lambda lo, hi: compiled.conv_direct_relu_pool_forward(
        xf[lo:hi], weight, b, wp, ho, wo, y[lo:hi], idx[lo:hi]), geo.in_shape[0])
    return y, DirectSaved(xf, idx)


def fused_backward(dy: np.ndarray, cache: fused.FusedCache, input_grad: bool
                   ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    geo, weight, saved = cache.geometry, cache.weight, cache.saved
    n, _, ho, wo = geo.out_shape
    idx = saved.argmax
    if input_grad:   # rare (first layers): the conv output's gradient, then as 'direct'
        dz = np.empty(geo.out_shape, dy.dtype)
        compiled.max_pool_2x2_planes_backward(
            np.ascontiguousarray(dy).reshape(-1, *idx.shape[2:]),
            idx.reshape(-1, *idx.shape[2:]), dz.reshape(-1, ho, wo))
        conv_cache = fconv.Conv2dCache("direct", weight, cache.has_bias, geo,
                                       DirectSaved(saved.xf))
        return backward(dz, conv_cache, input_grad)
    kh, kw = geo.kernel
    wp = geo.in_shape[3] + sum(geo.padding[1])
    dyp = np.ascontiguousarray(dy)
    dweight, dbias = _partials(lambda lo, hi, dw, db: compiled.conv_direct_pool_weight_grad(
        saved.xf[lo:hi], dyp[lo:hi], idx[lo:hi], wp, kh, kw, ho, wo, dw, db), weight, n)
    return None, dweight, (dbias if cache.has_bias else None)


registry.register(registry.Algorithm(
    fused.OP, "direct-fused", fused_supports, fused_forward, fused_backward,
    "the direct loop with ReLU and 2x2/2 max pooling in the same pass, the conv output "
    "never stored (Numba)", fused_prefer, layout="NCHW"))
