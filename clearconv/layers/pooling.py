"""Pooling layers (MATH.md §10-11): MaxPool2D and AvgPool2D, PyTorch semantics."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ShapeError
from ..functional import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    conv2d_relu_max_pool2d,
    max_pool2d_backward,
    max_pool2d_forward,
    pool2d_geometry,
)
from ..functional.conv import DirectPoolCache, direct_loop_applies
from ..shapes import pair
from .base import Layer


class _Pool2D(Layer):
    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0, ceil_mode: bool = False) -> None:
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else pair(stride, "stride")
        self.padding = pair(padding, "padding", minimum=0)
        self.ceil_mode = bool(ceil_mode)
        self._cache: Any = None

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(in_shape) != 3:
            raise ShapeError(f"{type(self).__name__} expects per-sample input (C, H, W), "
                             f"got {tuple(in_shape)}")
        geo = pool2d_geometry((1, *in_shape), self.kernel_size, self.stride, self.padding,
                              self.ceil_mode, type(self).__name__)
        return geo.out_shape[1:]

    def get_config(self) -> dict[str, Any]:
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding), "ceil_mode": self.ceil_mode}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        cfg = dict(config)
        for key in ("kernel_size", "stride", "padding"):
            cfg[key] = tuple(cfg[key])
        return cls(**cfg)


class MaxPool2D(_Pool2D):
    """Max pooling, as PyTorch's ``nn.MaxPool2d`` (stride defaults to kernel_size).

    (N, C, H, W) -> (N, C, H_out, W_out), ``H_out = floor((H + 2p - k)/s) + 1``
    (rounded up with ``ceil_mode``). Backward routes each gradient to its window's
    first maximum (MATH.md §11).

    >>> MaxPool2D(2).forward(np.arange(16.0).reshape(1, 1, 4, 4))[0, 0]
    array([[ 5.,  7.],
           [13., 15.]])
    """

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return self._pool(x, training, relu=False)

    def _pool(self, x: np.ndarray, training: bool, relu: bool) -> np.ndarray:
        y, cache = max_pool2d_forward(x, self.kernel_size, self.stride, self.padding,
                                      self.ceil_mode, relu=relu)
        self._cache = cache if training else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx = max_pool2d_backward(dy, self._need_cache(self._cache))
        self._cache = None
        return dx


class _MaxPoolReLU:
    """A MaxPool2D and a ReLU next to each other (either order), run as one fused op.

    ``relu(max(x)) = max(relu(x))`` exactly and the gradients agree (a window whose
    maximum is not > 0 passes none either way), so the pair is one pass over the input
    instead of three (see ``max_pool2d_forward(relu=True)``). The ReLU layer keeps no
    cache; the pool's cache carries the mask. Used by ``Sequential`` when it runs.
    """

    skips_input_grad = False

    def __init__(self, pool: MaxPool2D) -> None:
        self.pool = pool

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return self.pool._pool(x, training, relu=True)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return self.pool.backward(dy)


class _ConvMaxPoolReLU:
    """A Conv2D followed by a fused MaxPool2D(2) + ReLU pair, run as one op where the conv
    takes its direct loop (:func:`~clearconv.functional.conv2d_relu_max_pool2d`: a first
    layer with few channels): the conv output is pooled as it is made and its gradient
    never stored. Values and gradients are bit-identical to the three ops one by one,
    which run instead where the direct loop does not apply. Used by ``Sequential``.
    """

    skips_input_grad = True

    def __init__(self, conv: Any, pool: MaxPool2D) -> None:
        self.conv = conv
        self.pool = pool

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        c = self.conv
        fused = None
        if direct_loop_applies(c.in_channels, c.out_channels, c.stride, c.dilation):
            fused = conv2d_relu_max_pool2d(x, c.weight.value,
                                           None if c.bias is None else c.bias.value,
                                           c.stride, c.padding, c.dilation,
                                           need_backward=training)
        if fused is None:
            return self.pool._pool(c.forward(x, training), training, relu=True)
        y, c._cache = fused            # conv2d_backward takes the pooled gradient for it
        self.pool._cache = None
        return y

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        if not isinstance(self.conv._cache, DirectPoolCache):
            dy = self.pool.backward(dy)
        return self.conv.backward(dy, input_grad)

    @staticmethod
    def fits(pool: MaxPool2D) -> bool:
        """Whether the pool is the 2x2, stride 2, unpadded, floor-mode pooling the fused
        kernel does."""
        return (pool.kernel_size == (2, 2) and pool.stride == (2, 2)
                and pool.padding == (0, 0) and not pool.ceil_mode)


class AvgPool2D(_Pool2D):
    """Average pooling, as PyTorch's ``nn.AvgPool2d`` (``count_include_pad=True`` default)."""

    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        y, cache = avg_pool2d_forward(x, self.kernel_size, self.stride, self.padding,
                                      self.ceil_mode, self.count_include_pad)
        self._cache = cache if training else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx = avg_pool2d_backward(dy, self._need_cache(self._cache))
        self._cache = None
        return dx

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "count_include_pad": self.count_include_pad}
