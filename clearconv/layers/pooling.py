"""Pooling layers (MATH.md §10-11): MaxPool2D and AvgPool2D, PyTorch semantics."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ShapeError
from ..functional import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_algorithm,
    max_pool2d_backward,
    max_pool2d_forward,
)
from ..kernels import registry
from ..shapes import pair, pool2d_geometry
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
    first maximum (MATH.md §11). ``algorithm``: 'auto' or a registered name of
    ``max_pool2d`` (``python -m clearconv.kernels``).

    >>> MaxPool2D(2).forward(np.arange(16.0).reshape(1, 1, 4, 4))[0, 0]
    array([[ 5.,  7.],
           [13., 15.]])
    """

    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0, ceil_mode: bool = False,
                 algorithm: str = "auto") -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.algorithm = registry.check_name("max_pool2d", algorithm)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        y, cache = max_pool2d_forward(x, self.kernel_size, self.stride, self.padding,
                                      self.ceil_mode, algorithm=self.algorithm)
        self._cache = cache if training else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx = max_pool2d_backward(dy, self._need_cache(self._cache))
        self._cache = None
        return dx

    def algorithm_for(self, in_shape: tuple[int, ...], dtype: Any = np.float32,
                      layout: str = "NCHW", relu: bool = False) -> Any:
        """Which max_pool2d algorithm this layer runs on per-sample input ``in_shape`` in
        memory ``layout`` ('NCHW', 'channels-last'), and why."""
        return max_pool2d_algorithm((1, *in_shape), self.kernel_size, self.stride,
                                    self.padding, self.ceil_mode, relu, dtype, layout,
                                    self.algorithm)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        if self.algorithm != "auto":
            config["algorithm"] = self.algorithm
        return config


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
