"""Conv2D, ReLU and max pooling as one op: ``max_pool2d(relu(conv2d(x)))``.

``relu(max(z)) = max(relu(z))`` exactly (ReLU is monotone), so the three ops of a
conv block are one function of x, and its gradient the three backwards in turn
(MATH.md §9, §11). This module is its readable algorithm, ``'composed'``: exactly
:func:`~clearconv.functional.conv.conv2d_forward` followed by
:func:`~clearconv.functional.pool.max_pool2d_forward` with ``relu=True``, each choosing
its own algorithm. :mod:`clearconv.kernels.direct` registers ``'direct-fused'``, which
pools each conv output plane as it is made (never storing it) where the conv would take
its direct loop; the values and gradients are bit-identical to the composed ones.

The model's fusion pass (:mod:`clearconv.train.fusion`) runs a Conv2D, ReLU, MaxPool2D
sequence through this op.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..kernels import registry
from ..shapes import (
    ConvGeometry,
    IntPair,
    PaddingArg,
    PoolGeometry,
    conv2d_geometry,
    pool2d_geometry,
)
from .conv import Conv2dCache, _checked, _checked_grad, conv2d_backward, conv2d_forward
from .pool import MaxPool2dCache, geometry_args, max_pool2d_backward, max_pool2d_forward

OP = "conv2d_relu_max_pool2d"


class FusedCall(NamedTuple):
    """What a fused algorithm's predicate sees: the conv's and the pool's geometry."""

    conv: ConvGeometry
    pool: PoolGeometry
    dtype: np.dtype

    def __str__(self) -> str:
        return (f"conv x{self.conv.in_shape} -> {self.conv.out_shape} kernel "
                f"{self.conv.kernel} stride {self.conv.stride}, relu, pool window "
                f"{self.pool.kernel} stride {self.pool.stride} -> {self.pool.out_shape} "
                f"{np.dtype(self.dtype).name}")


class FusedCache(NamedTuple):
    """What :func:`conv2d_relu_max_pool2d_backward` needs."""

    algorithm: str
    weight: np.ndarray
    has_bias: bool
    geometry: ConvGeometry      # the conv's
    pool: PoolGeometry
    saved: Any                  # 'composed': (Conv2dCache, MaxPool2dCache)


def conv2d_relu_max_pool2d_forward(
        x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
        stride: IntPair = 1, padding: PaddingArg = 0, dilation: IntPair = 1,
        pool_size: IntPair = 2, pool_stride: IntPair | None = None, pool_padding: IntPair = 0,
        ceil_mode: bool = False, groups: int = 1, algorithm: str = "auto",
        need_backward: bool = True, pool_dilation: IntPair = 1
        ) -> tuple[np.ndarray, FusedCache]:
    """``max_pool2d(relu(conv2d(x, weight, bias, ...)), pool_size, ...)`` as one op.

    Parameters: those of :func:`~clearconv.functional.conv2d_forward` (x (N, C_in, H, W),
    weight (C_out, C_in, kh, kw), bias (C_out,)) and of
    :func:`~clearconv.functional.max_pool2d_forward` for the pooling (``pool_*``,
    ``ceil_mode``, ``pool_dilation``; ``pool_padding`` in any of its forms); ``algorithm``
    'auto', 'composed' or 'direct-fused'.

    Returns y (N, C_out, H_pool, W_pool) and the cache for
    :func:`conv2d_relu_max_pool2d_backward`.
    """
    x, weight, bias, geo = _checked(x, weight, bias, stride, padding, dilation, groups)
    pool = pool2d_geometry(geo.out_shape, pool_size, pool_stride, pool_padding, ceil_mode,
                           "conv2d_relu_max_pool2d", pool_dilation)
    algo = registry.resolve(OP, algorithm, FusedCall(geo, pool, x.dtype))
    y, saved = algo.forward(x, weight, bias, geo, pool, need_backward)
    return y, FusedCache(algo.name, weight, bias is not None, geo, pool,
                         saved if need_backward else None)


def conv2d_relu_max_pool2d_backward(dy: np.ndarray, cache: FusedCache, input_grad: bool = True
                                    ) -> tuple[np.ndarray | None, np.ndarray,
                                               np.ndarray | None]:
    """Backward of :func:`conv2d_relu_max_pool2d_forward`: (dx, dweight, dbias) from the
    pooled output's gradient dy (N, C_out, H_pool, W_pool), as conv2d_backward returns them."""
    dy = _checked_grad(dy, cache, "conv2d_relu_max_pool2d_backward", cache.pool.out_shape)
    return registry.get(OP, cache.algorithm).backward(dy, cache, input_grad)


def conv2d_relu_max_pool2d_algorithm(
        x_shape: tuple[int, ...], weight_shape: tuple[int, ...], stride: IntPair = 1,
        padding: PaddingArg = 0, dilation: IntPair = 1, pool_size: IntPair = 2,
        pool_stride: IntPair | None = None, pool_padding: IntPair = 0, ceil_mode: bool = False,
        groups: int = 1, dtype: Any = np.float32, algorithm: str = "auto",
        pool_dilation: IntPair = 1) -> registry.Choice:
    """Which algorithm :func:`conv2d_relu_max_pool2d_forward` takes for these shapes, and why."""
    geo = conv2d_geometry(tuple(x_shape), tuple(weight_shape), stride, padding, dilation,
                          groups)
    pool = pool2d_geometry(geo.out_shape, pool_size, pool_stride, pool_padding, ceil_mode,
                           "conv2d_relu_max_pool2d", pool_dilation)
    return registry.choose(OP, algorithm, FusedCall(geo, pool, np.dtype(dtype)))


def composed_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
                     geo: ConvGeometry, pool: PoolGeometry, need_backward: bool
                     ) -> tuple[np.ndarray, tuple[Conv2dCache, MaxPool2dCache]]:
    """The conv, then ReLU and pooling in one pass over its output."""
    z, conv_cache = conv2d_forward(x, weight, bias, geo.stride, geo.padding, geo.dilation,
                                   geo.groups, need_backward=need_backward)
    y, pool_cache = max_pool2d_forward(z, relu=True, **geometry_args(pool))
    return y, (conv_cache, pool_cache)


def composed_backward(dy: np.ndarray, cache: FusedCache, input_grad: bool
                      ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    conv_cache, pool_cache = cache.saved
    return conv2d_backward(max_pool2d_backward(dy, pool_cache), conv_cache, input_grad)


def _supports_any(call: FusedCall) -> tuple[bool, str]:
    return True, "any geometry: conv2d, then max_pool2d(relu=True)"


registry.register(registry.Algorithm(
    OP, "composed", _supports_any, composed_forward, composed_backward,
    "the readable path: conv2d_forward, then max_pool2d_forward(relu=True)"))
