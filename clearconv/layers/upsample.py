"""Upsample: nearest or bilinear resizing of the planes, as PyTorch's ``nn.Upsample``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ClearConvError, ShapeError
from ..functional import (
    upsample_bilinear2d_backward,
    upsample_bilinear2d_forward,
    upsample_nearest2d_backward,
    upsample_nearest2d_forward,
)
from ..shapes import upsample_output_size
from .base import Layer


class Upsample(Layer):
    """Resize (N, C, H, W) to ``size`` or by ``scale_factor`` (exactly one of them), as
    ``torch.nn.Upsample`` (``torch.nn.functional.interpolate``).

    Parameters
    ----------
    size : int or (h, w)
    scale_factor : number or (sh, sw); the output is ``floor(H * sh)`` rows
    mode : 'nearest' (default) or 'bilinear'
    align_corners : bilinear only (default False): map the corner pixels' centres onto
        each other (``src = r * (H - 1)/(H_out - 1)``) instead of the pixel edges

    Examples
    --------
    >>> Upsample(scale_factor=2).forward(np.array([[[[1.0, 2.0]]]]))[0, 0]
    array([[1., 1., 2., 2.],
           [1., 1., 2., 2.]])
    """

    def __init__(self, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                 align_corners: bool | None = None) -> None:
        if mode not in ("nearest", "bilinear"):
            raise ClearConvError(f"Upsample: mode must be 'nearest' or 'bilinear', got "
                                 f"{mode!r}")
        if mode == "nearest" and align_corners is not None:
            raise ClearConvError("Upsample: align_corners only applies to mode='bilinear' "
                                 "(as in PyTorch)")
        upsample_output_size((1, 1), size, scale_factor, "Upsample")     # checks them
        self.size = size if size is None or isinstance(size, int) else tuple(size)
        self.scale_factor = scale_factor if scale_factor is None or \
            isinstance(scale_factor, (int, float)) else tuple(scale_factor)
        self.mode = mode
        self.align_corners = align_corners
        self._cache: Any = None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if self.mode == "nearest":
            y, cache = upsample_nearest2d_forward(x, self.size, self.scale_factor)
        else:
            y, cache = upsample_bilinear2d_forward(x, self.size, self.scale_factor,
                                                   bool(self.align_corners))
        self._cache = cache if training else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        cache = self._need_cache(self._cache)
        backward = upsample_nearest2d_backward if self.mode == "nearest" \
            else upsample_bilinear2d_backward
        self._cache = None
        return backward(dy, cache)

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(in_shape) != 3:
            raise ShapeError(f"Upsample expects per-sample input (C, H, W), got "
                             f"{tuple(in_shape)}")
        (ho, wo), _ = upsample_output_size(in_shape[1:], self.size, self.scale_factor,
                                           "Upsample")
        return (in_shape[0], ho, wo)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"mode": self.mode}
        for key in ("size", "scale_factor", "align_corners"):
            value = getattr(self, key)
            if value is not None:
                config[key] = list(value) if isinstance(value, tuple) else value
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})
