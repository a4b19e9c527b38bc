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
    max_pool2d_indices,
)
from ..kernels import registry
from ..shapes import check_divisor_override, pair, plain_padding, pool2d_geometry, pool_padding
from .base import Layer


class _Pool2D(Layer):
    dilation: tuple[int, int] = (1, 1)     # max pooling's may be larger

    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None,
                 padding: Any = 0, ceil_mode: bool = False) -> None:
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else pair(stride, "stride")
        # an int's or a pair's padding stays that (ph, pw); ((top, bottom), (left, right))
        # stays the pairs
        self.padding = plain_padding(pool_padding(padding, type(self).__name__))
        if isinstance(self.padding, int):
            self.padding = (self.padding, self.padding)
        self.ceil_mode = bool(ceil_mode)
        self._cache: Any = None

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(in_shape) != 3:
            raise ShapeError(f"{type(self).__name__} expects per-sample input (C, H, W), "
                             f"got {tuple(in_shape)}")
        geo = pool2d_geometry((1, *in_shape), self.kernel_size, self.stride, self.padding,
                              self.ceil_mode, type(self).__name__, self.dilation)
        return geo.out_shape[1:]

    def get_config(self) -> dict[str, Any]:
        padding = [list(p) for p in self.padding] if isinstance(self.padding[0], tuple) \
            else list(self.padding)
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": padding, "ceil_mode": self.ceil_mode}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        cfg = dict(config)
        for key in ("kernel_size", "stride", "padding", "dilation"):
            if key in cfg:
                cfg[key] = _tuples(cfg[key])
        return cls(**cfg)


def _tuples(value: Any) -> Any:
    """JSON lists back to (nested) tuples."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


class MaxPool2D(_Pool2D):
    """Max pooling, as PyTorch's ``nn.MaxPool2d`` (stride defaults to kernel_size).

    (N, C, H, W) -> (N, C, H_out, W_out),
    ``H_out = floor((H + p_top + p_bottom - dilation*(k - 1) - 1)/s) + 1`` (rounded up
    with ``ceil_mode``). ``padding``: an int, (ph, pw) or ((top, bottom), (left, right)),
    each side at most half the window. Backward routes each gradient to its window's
    first maximum (MATH.md §11). ``return_indices``: forward returns ``(y, indices)``,
    PyTorch's flat index of each maximum in its input plane, for :class:`MaxUnpool2D`
    (such a layer is for your own forward code, as in PyTorch; a Sequential passes one
    array). ``algorithm``: 'auto' or a registered name of ``max_pool2d``
    (``python -m clearconv.kernels``).

    >>> MaxPool2D(2).forward(np.arange(16.0).reshape(1, 1, 4, 4))[0, 0]
    array([[ 5.,  7.],
           [13., 15.]])
    """

    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None,
                 padding: Any = 0, ceil_mode: bool = False,
                 algorithm: str = "auto", dilation: int | tuple[int, int] = 1,
                 return_indices: bool = False) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.algorithm = registry.check_name("max_pool2d", algorithm)
        self.dilation = pair(dilation, "dilation")
        self.return_indices = bool(return_indices)

    def forward(self, x: np.ndarray, training: bool = False) -> Any:
        y, cache = max_pool2d_forward(x, self.kernel_size, self.stride, self.padding,
                                      self.ceil_mode, algorithm=self.algorithm,
                                      dilation=self.dilation)
        self._cache = cache if training else None
        if self.return_indices:
            return y, max_pool2d_indices(cache)
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
                                    self.algorithm, self.dilation)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        if self.algorithm != "auto":
            config["algorithm"] = self.algorithm
        if self.dilation != (1, 1):
            config["dilation"] = list(self.dilation)
        if self.return_indices:
            config["return_indices"] = True
        return config


class AvgPool2D(_Pool2D):
    """Average pooling, as PyTorch's ``nn.AvgPool2d`` (``count_include_pad=True`` default).

    ``padding`` as :class:`MaxPool2D`'s; ``divisor_override``: divide every window sum
    by this int instead of the window size.
    """

    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None,
                 padding: Any = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        self.divisor_override = check_divisor_override(divisor_override, "AvgPool2D")

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        y, cache = avg_pool2d_forward(x, self.kernel_size, self.stride, self.padding,
                                      self.ceil_mode, self.count_include_pad,
                                      self.divisor_override)
        self._cache = cache if training else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx = avg_pool2d_backward(dy, self._need_cache(self._cache))
        self._cache = None
        return dx

    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(), "count_include_pad": self.count_include_pad}
        if self.divisor_override is not None:
            config["divisor_override"] = self.divisor_override
        return config
