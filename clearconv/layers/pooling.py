"""Pooling layers (MATH.md §10-11), PyTorch semantics: MaxPool2D, AvgPool2D, global and
adaptive pooling, MaxUnpool2D (PyTorch's spellings ``MaxPool2d`` ... are aliases)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ShapeError
from ..functional import (
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool2d_forward,
    adaptive_max_pool2d_backward,
    adaptive_max_pool2d_forward,
    adaptive_max_pool2d_indices,
    avg_pool2d_backward,
    avg_pool2d_forward,
    global_avg_pool2d_backward,
    global_avg_pool2d_forward,
    global_max_pool2d_backward,
    global_max_pool2d_forward,
    max_pool2d_algorithm,
    max_pool2d_backward,
    max_pool2d_forward,
    max_pool2d_indices,
    max_unpool2d_backward,
    max_unpool2d_forward,
)
from ..functional.pool1d import (
    adaptive_avg_pool1d_backward,
    adaptive_avg_pool1d_forward,
    adaptive_max_pool1d_backward,
    adaptive_max_pool1d_forward,
    avg_pool1d_backward,
    avg_pool1d_forward,
    global_avg_pool1d_backward,
    global_avg_pool1d_forward,
    global_max_pool1d_backward,
    global_max_pool1d_forward,
    max_pool1d_backward,
    max_pool1d_forward,
    padding_2d,
    window_1d,
)
from ..kernels import registry, tuning
from ..shapes import (
    adaptive_output_size,
    check_divisor_override,
    pair,
    plain_padding,
    pool2d_geometry,
    pool_padding,
    unpool_output_size,
)
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
        return max_pool2d_algorithm((tuning.PLAN_BATCH, *in_shape), self.kernel_size, self.stride,
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


# ------------------------------------------------------------------- global, adaptive
def _check_chw(layer: Layer, in_shape: tuple[int, ...]) -> None:
    if len(in_shape) != 3:
        raise ShapeError(f"{type(layer).__name__} expects per-sample input (C, H, W), got "
                         f"{tuple(in_shape)}")


class _GlobalPool(Layer):
    """A global pooling layer of ``_dims`` spatial dims (2: (N, C, H, W), 1: (N, C, L)):
    every window the whole plane or signal, so the output keeps size-1 dims, or none
    with ``flatten=True``."""

    _forward: Any
    _backward: Any
    _dims: int
    _per_sample: str

    def __init__(self, flatten: bool = False) -> None:
        self.flatten = bool(flatten)
        self._cache: Any = None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        y, cache = type(self)._forward(x)
        self._cache = cache if training else None
        return y.reshape(y.shape[:2]) if self.flatten else y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dy = np.asarray(dy)
        if self.flatten:
            dy = dy.reshape(dy.shape + (1,) * self._dims)
        dx = type(self)._backward(dy, self._need_cache(self._cache))
        self._cache = None
        return dx

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(in_shape) != 1 + self._dims:
            raise ShapeError(f"{type(self).__name__} expects per-sample input "
                             f"{self._per_sample}, got {tuple(in_shape)}")
        return (in_shape[0],) if self.flatten else (in_shape[0],) + (1,) * self._dims

    def get_config(self) -> dict[str, Any]:
        return {"flatten": True} if self.flatten else {}


class _GlobalPool2D(_GlobalPool):
    _dims = 2
    _per_sample = "(C, H, W)"


class GlobalAvgPool2D(_GlobalPool2D):
    """Global average pooling: the mean of each channel's plane (MATH.md §10 with one
    window), as ONNX's GlobalAveragePool and PyTorch's ``AdaptiveAvgPool2d(1)``.

    (N, C, H, W) -> (N, C, 1, 1), or (N, C) with ``flatten=True`` (Keras'
    GlobalAveragePooling2D).

    >>> GlobalAvgPool2D(flatten=True).forward(np.arange(8.0).reshape(1, 2, 2, 2))
    array([[1.5, 5.5]])
    """

    _forward = staticmethod(global_avg_pool2d_forward)
    _backward = staticmethod(global_avg_pool2d_backward)


class GlobalMaxPool2D(_GlobalPool2D):
    """Global max pooling: the maximum of each channel's plane, as ONNX's GlobalMaxPool
    and PyTorch's ``AdaptiveMaxPool2d(1)``; (N, C, H, W) -> (N, C, 1, 1), or (N, C) with
    ``flatten=True``. Backward sends each gradient to the plane's first maximum."""

    _forward = staticmethod(global_max_pool2d_forward)
    _backward = staticmethod(global_max_pool2d_backward)


class _AdaptivePool2D(Layer):
    def __init__(self, output_size: Any) -> None:
        items = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * 2
        adaptive_output_size((1, 1), tuple(items), type(self).__name__)   # checks it
        self.output_size = tuple(None if v is None else int(v) for v in items)
        self._cache: Any = None

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        _check_chw(self, in_shape)
        return (in_shape[0], *adaptive_output_size(in_shape[1:], self.output_size,
                                                   type(self).__name__))

    def get_config(self) -> dict[str, Any]:
        return {"output_size": list(self.output_size)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        return cls(**{**config, "output_size": tuple(config["output_size"])})


class AdaptiveAvgPool2D(_AdaptivePool2D):
    """Adaptive average pooling to ``output_size`` (int or (h, w); None keeps that
    axis), as PyTorch's ``nn.AdaptiveAvgPool2d``: output row i averages input rows
    ``[floor(i*H/h), ceil((i+1)*H/h))``, the same for columns.

    >>> AdaptiveAvgPool2D((1, 2)).forward(np.arange(6.0).reshape(1, 1, 2, 3))[0, 0]
    array([[2. , 3.5]])
    """

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        y, cache = adaptive_avg_pool2d_forward(x, self.output_size)
        self._cache = cache if training else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx = adaptive_avg_pool2d_backward(dy, self._need_cache(self._cache))
        self._cache = None
        return dx


class AdaptiveMaxPool2D(_AdaptivePool2D):
    """Adaptive max pooling to ``output_size``, as PyTorch's ``nn.AdaptiveMaxPool2d``
    (windows of :class:`AdaptiveAvgPool2D`; first maximum wins ties).
    ``return_indices``: forward returns ``(y, indices)`` (flat index in the plane)."""

    def __init__(self, output_size: Any, return_indices: bool = False) -> None:
        super().__init__(output_size)
        self.return_indices = bool(return_indices)

    def forward(self, x: np.ndarray, training: bool = False) -> Any:
        y, cache = adaptive_max_pool2d_forward(x, self.output_size)
        self._cache = cache if training else None
        return (y, adaptive_max_pool2d_indices(cache)) if self.return_indices else y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx = adaptive_max_pool2d_backward(dy, self._need_cache(self._cache))
        self._cache = None
        return dx

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        if self.return_indices:
            config["return_indices"] = True
        return config


class MaxUnpool2D(Layer):
    """Max unpooling, as PyTorch's ``nn.MaxUnpool2d``: ``forward(x, indices,
    output_size=None)`` puts each value of x back at its index (from
    ``MaxPool2D(..., return_indices=True)``), zeros elsewhere.

    Like PyTorch's, it takes two inputs: a layer for your own forward code (a
    ``Sequential`` passes one array). (N, C, H, W) -> (N, C, H_out, W_out) with
    ``H_out = (H - 1)*s - 2p + k`` unless ``output_size`` says otherwise.

    >>> pool, unpool = MaxPool2D(2, return_indices=True), MaxUnpool2D(2)
    >>> y, indices = pool.forward(np.array([[[[1.0, 5.0], [3.0, 4.0]]]]))
    >>> unpool.forward(y, indices)[0, 0]
    array([[0., 5.],
           [0., 0.]])
    """

    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None, padding: Any = 0) -> None:
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else pair(stride, "stride")
        self.padding = pool_padding(padding, "MaxUnpool2D")
        self._cache: Any = None

    def __call__(self, x: np.ndarray, indices: Any = None, output_size: Any = None,
                 training: bool = False) -> np.ndarray:
        return self.forward(x, indices, output_size, training)

    def forward(self, x: np.ndarray, indices: Any = None, output_size: Any = None,
                training: bool = False) -> np.ndarray:
        if indices is None or isinstance(indices, bool):
            raise ShapeError("MaxUnpool2D.forward(x, indices, output_size=None) needs the "
                             "indices of a MaxPool2D(..., return_indices=True)")
        y, cache = max_unpool2d_forward(x, indices, self.kernel_size, self.stride,
                                        self.padding, output_size)
        self._cache = cache if training else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx = max_unpool2d_backward(dy, self._need_cache(self._cache))
        self._cache = None
        return dx

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        _check_chw(self, in_shape)
        return (in_shape[0], *unpool_output_size(in_shape[1:], self.kernel_size,
                                                 self.stride, self.padding, None))

    def get_config(self) -> dict[str, Any]:
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": [list(p) for p in self.padding]}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        return cls(**{k: _tuples(v) for k, v in config.items()})


# PyTorch's spellings of the same classes
MaxPool2d = MaxPool2D
AvgPool2d = AvgPool2D
GlobalAvgPool2d = GlobalAvgPool2D
GlobalMaxPool2d = GlobalMaxPool2D
AdaptiveAvgPool2d = AdaptiveAvgPool2D
AdaptiveMaxPool2d = AdaptiveMaxPool2D
MaxUnpool2d = MaxUnpool2D


# --------------------------------------------------------------------------------- 1-D
class _Pool1D(Layer):
    """A 1-D pooling layer over (N, C, L): the 2-D op on the (N, C, 1, L) view."""

    def __init__(self, kernel_size: int, stride: int | None = None, padding: Any = 0,
                 ceil_mode: bool = False) -> None:
        name = type(self).__name__
        k, s, _ = window_1d(kernel_size, stride, 1, name)
        self.kernel_size, self.stride = k[1], s[1]
        self.padding = padding_1d_plain(padding, name)
        self.ceil_mode = bool(ceil_mode)
        self._cache: Any = None

    dilation: int = 1

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(in_shape) != 2:
            raise ShapeError(f"{type(self).__name__} expects per-sample input (C, L), got "
                             f"{tuple(in_shape)}")
        geo = pool2d_geometry((1, in_shape[0], 1, in_shape[1]), (1, self.kernel_size),
                              (1, self.stride), padding_2d(self.padding, "pool1d"),
                              self.ceil_mode, type(self).__name__, (1, self.dilation))
        return (in_shape[0], geo.out_shape[3])

    def get_config(self) -> dict[str, Any]:
        padding = list(self.padding) if isinstance(self.padding, tuple) else self.padding
        return {"kernel_size": self.kernel_size, "stride": self.stride, "padding": padding,
                "ceil_mode": self.ceil_mode}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        return cls(**{k: _tuples(v) for k, v in config.items()})


def padding_1d_plain(padding: Any, op: str) -> int | tuple[int, int]:
    """A 1-D padding checked: an int, or (left, right) when the two differ."""
    _, (left, right) = padding_2d(padding, op)
    return left if left == right else (left, right)


class MaxPool1D(_Pool1D):
    """Max pooling over (N, C, L), as PyTorch's ``nn.MaxPool1d``: :class:`MaxPool2D`'s
    op on the (N, C, 1, L) view with window (1, k). ``padding``: int or (left, right).

    >>> MaxPool1D(2).forward(np.array([[[1.0, 3.0, 2.0, 0.0]]]))
    array([[[3., 2.]]])
    """

    def __init__(self, kernel_size: int, stride: int | None = None, padding: Any = 0,
                 ceil_mode: bool = False, dilation: int = 1, algorithm: str = "auto") -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.dilation = window_1d(1, 1, dilation, "MaxPool1D")[2][1]
        self.algorithm = registry.check_name("max_pool2d", algorithm)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        y, cache = max_pool1d_forward(x, self.kernel_size, self.stride, self.padding,
                                      self.ceil_mode, self.dilation, self.algorithm)
        self._cache = cache if training else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx = max_pool1d_backward(dy, self._need_cache(self._cache))
        self._cache = None
        return dx

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        if self.dilation != 1:
            config["dilation"] = self.dilation
        if self.algorithm != "auto":
            config["algorithm"] = self.algorithm
        return config


class AvgPool1D(_Pool1D):
    """Average pooling over (N, C, L), as PyTorch's ``nn.AvgPool1d``
    (``count_include_pad=True`` default): :class:`AvgPool2D`'s op on the (N, C, 1, L)
    view."""

    def __init__(self, kernel_size: int, stride: int | None = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        y, cache = avg_pool1d_forward(x, self.kernel_size, self.stride, self.padding,
                                      self.ceil_mode, self.count_include_pad)
        self._cache = cache if training else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx = avg_pool1d_backward(dy, self._need_cache(self._cache))
        self._cache = None
        return dx

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "count_include_pad": self.count_include_pad}


class _GlobalPool1D(_GlobalPool):
    _dims = 1
    _per_sample = "(C, L)"


class GlobalAvgPool1D(_GlobalPool1D):
    """The mean over L of each channel: (N, C, L) -> (N, C, 1), or (N, C) with
    ``flatten=True`` (PyTorch's ``AdaptiveAvgPool1d(1)``)."""

    _forward = staticmethod(global_avg_pool1d_forward)
    _backward = staticmethod(global_avg_pool1d_backward)


class GlobalMaxPool1D(_GlobalPool1D):
    """The maximum over L of each channel: (N, C, L) -> (N, C, 1), or (N, C) with
    ``flatten=True`` (PyTorch's ``AdaptiveMaxPool1d(1)``)."""

    _forward = staticmethod(global_max_pool1d_forward)
    _backward = staticmethod(global_max_pool1d_backward)


class _AdaptivePool1D(Layer):
    _forward: Any
    _backward: Any

    def __init__(self, output_size: int) -> None:
        self.output_size = window_1d(output_size, 1, 1, type(self).__name__)[0][1]
        self._cache: Any = None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        y, cache = type(self)._forward(x, self.output_size)
        self._cache = cache if training else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx = type(self)._backward(dy, self._need_cache(self._cache))
        self._cache = None
        return dx

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(in_shape) != 2:
            raise ShapeError(f"{type(self).__name__} expects per-sample input (C, L), got "
                             f"{tuple(in_shape)}")
        return (in_shape[0], self.output_size)

    def get_config(self) -> dict[str, Any]:
        return {"output_size": self.output_size}


class AdaptiveAvgPool1D(_AdaptivePool1D):
    """Adaptive average pooling of L to ``output_size``, as ``nn.AdaptiveAvgPool1d``."""

    _forward = staticmethod(adaptive_avg_pool1d_forward)
    _backward = staticmethod(adaptive_avg_pool1d_backward)


class AdaptiveMaxPool1D(_AdaptivePool1D):
    """Adaptive max pooling of L to ``output_size``, as ``nn.AdaptiveMaxPool1d``."""

    _forward = staticmethod(adaptive_max_pool1d_forward)
    _backward = staticmethod(adaptive_max_pool1d_backward)


MaxPool1d = MaxPool1D
AvgPool1d = AvgPool1D
AdaptiveAvgPool1d = AdaptiveAvgPool1D
AdaptiveMaxPool1d = AdaptiveMaxPool1D
