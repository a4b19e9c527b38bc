"""Activation layers: ``A = g(Z)`` of MATH.md §7 and ``dZ = dA ⊙ g'(Z)`` of §9."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import functional as F
from ..errors import ClearConvError, ShapeError
from .base import Layer


class Activation(Layer):
    """Base class of the elementwise activations: ``forward`` is ``_fwd``, ``backward``
    ``_bwd`` with the forward's cache (MATH.md §7, §9)."""

    _abstract = True
    _fwd: Callable[..., tuple[np.ndarray, Any]]
    _bwd: Callable[..., np.ndarray]

    def __init__(self) -> None:
        self._cache: Any = None

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        return type(self)._fwd(x)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        y, cache = self._forward(x)
        self._cache = cache if training else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx = type(self)._bwd(dy, self._need_cache(self._cache))
        self._cache = None
        return dx


class ReLU(Activation):
    """``max(z, 0)``."""

    _fwd = F.relu_forward
    _bwd = F.relu_backward


class Sigmoid(Activation):
    """``1 / (1 + exp(-z))``."""

    _fwd = F.sigmoid_forward
    _bwd = F.sigmoid_backward


class Tanh(Activation):
    """``tanh(z)``."""

    _fwd = F.tanh_forward
    _bwd = F.tanh_backward


class LeakyReLU(Activation):
    """``z`` if ``z > 0`` else ``negative_slope * z``."""

    _bwd = F.leaky_relu_backward

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = float(negative_slope)

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        return F.leaky_relu_forward(x, self.negative_slope)

    def get_config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}


class Softmax(Activation):
    """Softmax over ``axis`` (default 1, the class axis of (N, K) logits).

    Do not put it before the training loss: ``fit`` applies softmax cross-entropy to
    the model's raw outputs (logits); use it, if at all, for inference-only models.
    """

    _bwd = F.softmax_backward

    def __init__(self, axis: int = 1) -> None:
        super().__init__()
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) \
                or not -5 <= axis <= 4:
            raise ClearConvError(f"Softmax axis must be an int in -5..4 (an axis of a batch "
                                 f"of at most 5 dimensions), got {axis!r}")
        self.axis = int(axis)

    def _check_axis(self, ndim: int) -> None:
        if not -ndim <= self.axis < ndim:
            raise ShapeError(f"Softmax axis {self.axis} is not an axis of a batch with "
                             f"{ndim} dimensions")

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        self._check_axis(len(in_shape) + 1)
        return tuple(in_shape)

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        self._check_axis(np.ndim(x))
        return F.softmax_forward(x, self.axis)

    def get_config(self) -> dict[str, Any]:
        return {"axis": self.axis}
