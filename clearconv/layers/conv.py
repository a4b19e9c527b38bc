"""Conv2D: the convolution layer ``Z = W * A + b`` of MATH.md §7 (its ``g`` is a separate layer)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ShapeError
from ..functional import conv2d_algorithm, conv2d_backward, conv2d_forward
from ..kernels import registry
from ..shapes import PaddingArg, conv2d_output_shape, conv2d_params, pair, resolve_padding
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
    bias : bool
    algorithm : 'auto' (default) or a registered conv2d algorithm ('im2col',
        'im2col-split', 'winograd', 'direct'; ``python -m clearconv.kernels`` lists them):
        how the layer computes; see :func:`clearconv.functional.conv2d_algorithm`
    init : 'he' (default), 'glorot' or 'torch'
    rng : seed or Generator for the initial weights (default: see ``manual_seed``)
    dtype : float32 (default) or float64

    Attributes: ``weight`` Parameter (C_out, C_in, kh, kw), ``bias`` Parameter (C_out,) or None.

    >>> layer = Conv2D(1, 8, 3, padding="same", rng=0)
    >>> layer.forward(np.zeros((2, 1, 28, 28), np.float32)).shape
    (2, 8, 28, 28)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: PaddingArg = 0,
                 dilation: int | tuple[int, int] = 1, bias: bool = True, init: str = "he",
                 rng: np.random.Generator | int | None = None,
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
        kh, kw = self.kernel_size
        fan_in, fan_out = self.in_channels * kh * kw, self.out_channels * kh * kw
        g = as_rng(rng)
        dtype = np.dtype(dtype)
        self.weight = Parameter(
            init_weight((self.out_channels, self.in_channels, kh, kw), fan_in, fan_out, init, g,
                        dtype), "weight")
        self.bias = Parameter(np.zeros(self.out_channels, dtype), "bias", decay=False) \
            if bias else None
        self._cache: Any = None

    _backward_op = staticmethod(conv2d_backward)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        y, cache = conv2d_forward(x, self.weight.value,
                                  None if self.bias is None else self.bias.value,
                                  self.stride, self.padding, self.dilation,
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
        """Which conv2d algorithm this layer runs on per-sample input ``in_shape`` (any batch
        size), and why: a :class:`~clearconv.kernels.registry.Choice`."""
        dtype = self.weight.value.dtype if dtype is None else dtype
        return conv2d_algorithm((1, *in_shape), self.weight.value.shape, self.stride,
                                self.padding, self.dilation, dtype, self.algorithm)

    def n_params(self) -> int:
        return conv2d_params(self.in_channels, self.out_channels, self.kernel_size,
                             self.bias is not None)

    def get_config(self) -> dict[str, Any]:
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": self.padding, "dilation": list(self.dilation),
                "bias": self.bias is not None, "init": self.init,
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
