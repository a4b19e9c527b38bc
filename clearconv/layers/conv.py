"""Convolution layers: Conv2D (``Z = W * A + b`` of MATH.md §7; its ``g`` is a separate
layer), ConvTranspose2D (its input gradient as a layer) and Conv1D (a view over Conv2D)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ShapeError
from ..functional import (
    conv2d_algorithm,
    conv2d_backward,
    conv2d_forward,
    conv_transpose2d_algorithm,
    conv_transpose2d_backward,
    conv_transpose2d_forward,
)
from ..kernels import registry, tuning
from ..shapes import (
    PaddingArg,
    check_groups,
    conv2d_output_shape,
    conv2d_params,
    conv_transpose2d_geometry,
    pair,
    resolve_padding,
)
from .base import _WeightLayer, as_rng, init_weight
from .parameter import Parameter


class Conv2D(_WeightLayer):
    """2-D convolution (cross-correlation, as PyTorch's ``nn.Conv2d``).

    Input (N, C_in, H, W) -> output (N, C_out, H_out, W_out) with, per axis,
    ``H_out = floor((H + p_top + p_bottom - dilation*(kh-1) - 1) / stride) + 1``.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (kh, kw)
    stride, dilation : int or (h, w)
    padding : int, (ph, pw), ((top, bottom), (left, right)), 'valid' or 'same'
        ('same' with stride > 1 follows TensorFlow: output ceil(H/stride)).
    groups : the channels in this many groups (PyTorch's rule): the weight is
        (C_out, C_in / groups, kh, kw); ``groups == in_channels`` is a depthwise conv
    bias : bool
    algorithm : 'auto' (default) or a registered conv2d algorithm ('im2col',
        'im2col-split', 'winograd', 'direct'; ``python -m clearconv.kernels`` lists them):
        how the layer computes; see :func:`clearconv.functional.conv2d_algorithm`
    init : 'he' (default), 'glorot' or 'torch'
    rng : seed or Generator for the initial weights (default: see ``manual_seed``)
    dtype : float32 (default) or float64

    Attributes
    ----------
    weight : Parameter of shape (C_out, C_in / groups, kh, kw)
    bias : Parameter of shape (C_out,), or None

    Examples
    --------
    >>> layer = Conv2D(1, 8, 3, padding="same", rng=0)
    >>> layer.forward(np.zeros((2, 1, 28, 28), np.float32)).shape
    (2, 8, 28, 28)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: PaddingArg = 0,
                 dilation: int | tuple[int, int] = 1, groups: int = 1, bias: bool = True,
                 init: str = "he", rng: np.random.Generator | int | None = None,
                 dtype: np.dtype | type | str = np.float32, algorithm: str = "auto") -> None:
        self.in_channels = int(pair(in_channels, "in_channels")[0])
        self.out_channels = int(pair(out_channels, "out_channels")[0])
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        self.dilation = pair(dilation, "dilation")
        self.padding = padding if isinstance(padding, str) else _plain(padding)
        # validate the padding form now (size-independent forms resolve fully)
        if not (isinstance(padding, str) and padding.lower() == "same"):
            resolve_padding(padding, self.kernel_size, self.stride, self.dilation)
        self.init = init
        self.algorithm = registry.check_name("conv2d", algorithm)
        self.groups = check_groups(groups, self.in_channels, self.out_channels, "Conv2D")
        kh, kw = self.kernel_size
        c_g = self.in_channels // self.groups
        fan_in, fan_out = c_g * kh * kw, self.out_channels // self.groups * kh * kw
        g = as_rng(rng)
        dtype = np.dtype(dtype)
        self.weight = Parameter(
            init_weight((self.out_channels, c_g, kh, kw), fan_in, fan_out, init, g, dtype),
            "weight")
        self.bias = Parameter(np.zeros(self.out_channels, dtype), "bias", decay=False) \
            if bias else None
        self._cache: Any = None

    _backward_op = staticmethod(conv2d_backward)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        y, cache = conv2d_forward(x, self.weight.value,
                                  None if self.bias is None else self.bias.value,
                                  self.stride, self.padding, self.dilation, self.groups,
                                  algorithm=self.algorithm, need_backward=training)
        self._cache = cache if training else None
        return y

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(in_shape) != 3:
            raise ShapeError(f"Conv2D expects per-sample input (C, H, W), got {tuple(in_shape)}")
        if in_shape[0] != self.in_channels:
            raise ShapeError(
                f"Conv2D({self.in_channels}, {self.out_channels}) expects {self.in_channels} "
                f"input channels, but receives {in_shape[0]} (input shape {tuple(in_shape)})")
        _, c, h, w = conv2d_output_shape((1, *in_shape), self.out_channels, self.kernel_size,
                                         self.stride, self.padding, self.dilation)
        return (c, h, w)

    def algorithm_for(self, in_shape: tuple[int, ...], dtype: np.dtype | str | None = None
                      ) -> Any:
        """Which conv2d algorithm this layer runs on per-sample input ``in_shape`` in a
        training batch (``tuning.PLAN_BATCH`` images), and why: a
        :class:`~clearconv.kernels.registry.Choice`."""
        dtype = self.weight.value.dtype if dtype is None else dtype
        return conv2d_algorithm((tuning.PLAN_BATCH, *in_shape), self.weight.value.shape,
                                self.stride, self.padding, self.dilation, self.groups, dtype,
                                self.algorithm)

    def n_params(self) -> int:
        return conv2d_params(self.in_channels, self.out_channels, self.kernel_size,
                             self.bias is not None, self.groups)

    def get_config(self) -> dict[str, Any]:
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": self.padding, "dilation": list(self.dilation),
                "bias": self.bias is not None, "init": self.init,
                **({"groups": self.groups} if self.groups != 1 else {}),
                **({"algorithm": self.algorithm} if self.algorithm != "auto" else {})}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Conv2D:
        cfg = dict(config)
        for key in ("kernel_size", "stride", "dilation"):
            cfg[key] = tuple(cfg[key])
        if not isinstance(cfg["padding"], (str, int)):
            cfg["padding"] = _plain(cfg["padding"])
        return cls(**cfg)


def _plain(padding: Any) -> Any:
    """Padding as JSON-friendly nested lists of ints (ints stay ints)."""
    if isinstance(padding, (list, tuple)):
        return [_plain(p) for p in padding]
    return int(padding)


class ConvTranspose2D(_WeightLayer):
    """2-D transposed convolution, as PyTorch's ``nn.ConvTranspose2d`` (the decoder half
    of an autoencoder or a U-Net): conv2d's input gradient as a layer (MATH.md §9).

    Input (N, C_in, H, W) -> output (N, C_out, H_out, W_out) with, per axis,
    ``H_out = (H - 1)*stride - 2*padding + dilation*(kh - 1) + output_padding + 1``.
    Weight (C_in, C_out / groups, kh, kw), PyTorch's layout.

    >>> ConvTranspose2D(8, 4, 4, stride=2, padding=1, rng=0).forward(
    ...     np.zeros((2, 8, 7, 7), np.float32)).shape
    (2, 4, 14, 14)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 output_padding: int | tuple[int, int] = 0, groups: int = 1,
                 bias: bool = True, dilation: int | tuple[int, int] = 1, init: str = "he",
                 rng: np.random.Generator | int | None = None,
                 dtype: np.dtype | type | str = np.float32, algorithm: str = "auto") -> None:
        self.in_channels = int(pair(in_channels, "in_channels")[0])
        self.out_channels = int(pair(out_channels, "out_channels")[0])
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        self.padding = pair(padding, "padding", minimum=0)
        self.output_padding = pair(output_padding, "output_padding", minimum=0)
        self.dilation = pair(dilation, "dilation")
        self.groups = check_groups(groups, self.in_channels, self.out_channels,
                                   "ConvTranspose2D")
        if any(o >= s for o, s in zip(self.output_padding, self.stride)):
            raise ShapeError(f"ConvTranspose2D: output_padding {self.output_padding} must be "
                             f"smaller than the stride {self.stride}")
        self.init = init
        self.algorithm = registry.check_name("conv_transpose2d", algorithm)
        kh, kw = self.kernel_size
        o_g = self.out_channels // self.groups
        # fans as PyTorch counts them for this weight layout
        fan_in, fan_out = o_g * kh * kw, self.in_channels // self.groups * kh * kw
        dtype = np.dtype(dtype)
        self.weight = Parameter(init_weight((self.in_channels, o_g, kh, kw), fan_in, fan_out,
                                            init, as_rng(rng), dtype), "weight")
        self.bias = Parameter(np.zeros(self.out_channels, dtype), "bias", decay=False) \
            if bias else None
        self._cache: Any = None

    _backward_op = staticmethod(conv_transpose2d_backward)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        y, cache = conv_transpose2d_forward(
            x, self.weight.value, None if self.bias is None else self.bias.value,
            self.stride, self.padding, self.output_padding, self.dilation, self.groups,
            algorithm=self.algorithm, need_backward=training)
        self._cache = cache if training else None
        return y

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(in_shape) != 3:
            raise ShapeError(f"ConvTranspose2D expects per-sample input (C, H, W), got "
                             f"{tuple(in_shape)}")
        if in_shape[0] != self.in_channels:
            raise ShapeError(
                f"ConvTranspose2D({self.in_channels}, {self.out_channels}) expects "
                f"{self.in_channels} input channels, but receives {in_shape[0]} (input shape "
                f"{tuple(in_shape)})")
        geo = conv_transpose2d_geometry((1, *in_shape), self.weight.value.shape, self.stride,
                                        self.padding, self.output_padding, self.dilation,
                                        self.groups)
        return tuple(geo.in_shape[1:])

    def algorithm_for(self, in_shape: tuple[int, ...], dtype: np.dtype | str | None = None
                      ) -> Any:
        """Which conv_transpose2d algorithm this layer runs on per-sample input
        ``in_shape``, and why."""
        dtype = self.weight.value.dtype if dtype is None else dtype
        return conv_transpose2d_algorithm((tuning.PLAN_BATCH, *in_shape), self.weight.value.shape,
                                          self.stride, self.padding, self.output_padding,
                                          self.dilation, self.groups, dtype, self.algorithm)

    def n_params(self) -> int:
        return conv2d_params(self.in_channels, self.out_channels, self.kernel_size,
                             self.bias is not None, self.groups)

    def get_config(self) -> dict[str, Any]:
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding), "output_padding": list(self.output_padding),
                "groups": self.groups, "bias": self.bias is not None,
                "dilation": list(self.dilation), "init": self.init,
                **({"algorithm": self.algorithm} if self.algorithm != "auto" else {})}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ConvTranspose2D:
        cfg = dict(config)
        for key in ("kernel_size", "stride", "padding", "output_padding", "dilation"):
            cfg[key] = tuple(cfg[key])
        return cls(**cfg)


class Conv1D(Conv2D):
    """1-D convolution over (N, C, L), as PyTorch's ``nn.Conv1d``: a Conv2D over
    (N, C, 1, L) with a (1, k) kernel, whose weight Parameter is (C_out, C_in / groups, k)
    and a view of the 2-D one.

    ``padding``: an int, (left, right), 'valid' or 'same'.

    >>> Conv1D(2, 4, 3, padding="same", rng=0).forward(np.zeros((5, 2, 9), np.float32)).shape
    (5, 4, 9)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int = 1, padding: Any = 0, dilation: int = 1, groups: int = 1,
                 bias: bool = True, init: str = "he",
                 rng: np.random.Generator | int | None = None,
                 dtype: np.dtype | type | str = np.float32, algorithm: str = "auto") -> None:
        self.padding_1d = padding if isinstance(padding, str) else _plain(padding)
        k = _scalar(kernel_size, "kernel_size")
        super().__init__(in_channels, out_channels, (1, k), (1, _scalar(stride, "stride")),
                         _padding_2d(padding), (1, _scalar(dilation, "dilation")), groups,
                         bias, init, rng, dtype, algorithm)
        self.weight = Parameter(self.weight.value[:, :, 0, :], "weight")   # a view
        self._weight_2d = self.weight.value[:, :, None, :]

    def _as_2d(self) -> None:
        """The 2-D view of the weight for the op (the Parameter may have been replaced)."""
        w = self.weight.value
        self._weight_2d = w[:, :, None, :]

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = _check_ncl(x, "Conv1D")
        self._as_2d()
        y, cache = conv2d_forward(x[:, :, None, :], self._weight_2d,
                                  None if self.bias is None else self.bias.value,
                                  self.stride, self.padding, self.dilation, self.groups,
                                  algorithm=self.algorithm, need_backward=training)
        self._cache = cache if training else None
        return y[:, :, 0, :]

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        dx, dw, db = conv2d_backward(np.asarray(dy)[:, :, None, :],
                                     self._need_cache(self._cache), input_grad)
        self.weight.grad += dw[:, :, 0, :]
        if self.bias is not None:
            self.bias.grad += db
        self._cache = None
        return None if dx is None else dx[:, :, 0, :]

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(in_shape) != 2:
            raise ShapeError(f"Conv1D expects per-sample input (C, L), got {tuple(in_shape)}")
        c, _, length = super().output_shape((in_shape[0], 1, in_shape[1]))
        return (c, length)

    def algorithm_for(self, in_shape: tuple[int, ...], dtype: np.dtype | str | None = None
                      ) -> Any:
        self._as_2d()
        dtype = self.weight.value.dtype if dtype is None else dtype
        return conv2d_algorithm((tuning.PLAN_BATCH, in_shape[0], 1, in_shape[1]),
                                self._weight_2d.shape,
                                self.stride, self.padding, self.dilation, self.groups, dtype,
                                self.algorithm)

    def get_config(self) -> dict[str, Any]:
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": self.kernel_size[1], "stride": self.stride[1],
                "padding": self.padding_1d, "dilation": self.dilation[1],
                "bias": self.bias is not None, "init": self.init,
                **({"groups": self.groups} if self.groups != 1 else {}),
                **({"algorithm": self.algorithm} if self.algorithm != "auto" else {})}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Conv1D:
        return cls(**config)


def _scalar(value: Any, name: str) -> int:
    """A 1-D size: an int (or a 1-tuple, as torch accepts)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ShapeError(f"{name} of a 1-D layer must be an int, got {value!r}")
        value = value[0]
    return pair(value, name)[0]


def _padding_2d(padding: Any) -> Any:
    """Conv1D padding as the Conv2D padding of the (1, L) plane."""
    if isinstance(padding, str):
        return padding
    if isinstance(padding, (tuple, list)):
        if len(padding) != 2:
            raise ShapeError(f"Conv1D padding must be an int, (left, right), 'valid' or "
                             f"'same', got {padding!r}")
        return ((0, 0), (int(padding[0]), int(padding[1])))
    return ((0, 0), (int(padding), int(padding)))


def _check_ncl(x: np.ndarray, op: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 3:
        raise ShapeError(f"{op} expects input of shape (N, C, L) (3 dimensions), got shape "
                         f"{tuple(x.shape)}")
    return x
