"""Dense, Flatten and Dropout."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ClearConvError, ShapeError
from ..functional import dropout_backward, dropout_forward, linear_backward, linear_forward
from ..shapes import dense_params, pair
from .base import Layer, _WeightLayer, as_rng, init_weight
from .parameter import Parameter


class Dense(_WeightLayer):
    """Fully connected layer, as PyTorch's ``nn.Linear``: ``y = x W^T + b``.

    Input (N, in_features) -> output (N, out_features); weight (out_features, in_features).

    >>> Dense(4, 2, rng=0).forward(np.ones((3, 4), np.float32)).shape
    (3, 2)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 init: str = "he", rng: np.random.Generator | int | None = None,
                 dtype: np.dtype | type | str = np.float32) -> None:
        self.in_features = pair(in_features, "in_features")[0]
        self.out_features = pair(out_features, "out_features")[0]
        self.init = init
        dtype = np.dtype(dtype)
        self.weight = Parameter(init_weight((self.out_features, self.in_features),
                                            self.in_features, self.out_features, init,
                                            as_rng(rng), dtype), "weight")
        self.bias = Parameter(np.zeros(self.out_features, dtype), "bias", decay=False) \
            if bias else None
        self._cache: Any = None

    _backward_op = staticmethod(linear_backward)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        y, cache = linear_forward(x, self.weight.value,
                                  None if self.bias is None else self.bias.value)
        self._cache = cache if training else None
        return y

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        if tuple(in_shape) != (self.in_features,):
            raise ShapeError(
                f"Dense({self.in_features}, {self.out_features}) expects {self.in_features} "
                f"input features, but receives shape {tuple(in_shape)}"
                + (" (add a Flatten layer before it)" if len(in_shape) > 1 else ""))
        return (self.out_features,)

    def n_params(self) -> int:
        return dense_params(self.in_features, self.out_features, self.bias is not None)

    def get_config(self) -> dict[str, Any]:
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias is not None, "init": self.init}


class Flatten(Layer):
    """Flatten the axes ``start_dim..end_dim`` (inclusive, counted with the batch axis 0;
    negative from the end) into one, row-major, as PyTorch's ``nn.Flatten``.

    The default ``Flatten()`` is (N, C, H, W) -> (N, C*H*W); ``Flatten(start_dim=2)`` is
    (N, C, H, W) -> (N, C, H*W). The batch axis stays: ``start_dim`` is >= 1.
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        for name, value in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ClearConvError(f"Flatten {name} must be an int, got {value!r}")
        if start_dim == 0:
            raise ClearConvError("Flatten start_dim=0 would merge the batch axis; the layers "
                                 "of a model keep it: use start_dim >= 1")
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)
        self._shape: tuple[int, ...] | None = None

    def _span(self, ndim: int) -> tuple[int, int]:
        """The axes (start, end) of an ndim-dimensional batch, checked."""
        start = self.start_dim + ndim if self.start_dim < 0 else self.start_dim
        end = self.end_dim + ndim if self.end_dim < 0 else self.end_dim
        if not (1 <= start < ndim and 0 <= end < ndim):
            raise ShapeError(f"Flatten(start_dim={self.start_dim}, end_dim={self.end_dim}) "
                             f"does not fit a batch of {ndim} dimensions (the batch axis "
                             f"is 0 and stays)")
        if start > end:
            raise ShapeError(f"Flatten start_dim={self.start_dim} comes after "
                             f"end_dim={self.end_dim} for a batch of {ndim} dimensions")
        return start, end

    def _flat(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        start, end = self._span(len(shape))
        return (*shape[:start], int(np.prod(shape[start:end + 1])), *shape[end + 1:])

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim < 2:
            raise ShapeError(f"Flatten expects a batch (N, ...), got shape {x.shape}")
        self._shape = x.shape if training else None
        if self.start_dim == 1 and self.end_dim == -1:
            return x.reshape(x.shape[0], -1)
        return x.reshape(self._flat(x.shape))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        shape = self._need_cache(self._shape)
        self._shape = None
        return dy.reshape(shape)

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return self._flat((1, *in_shape))[1:]

    def get_config(self) -> dict[str, Any]:
        if self.start_dim == 1 and self.end_dim == -1:
            return {}                 # the files of Flatten() stay as they were
        return {"start_dim": self.start_dim, "end_dim": self.end_dim}


class Dropout(Layer):
    """Inverted dropout: in training, zero each value with probability ``p`` and scale the
    rest by ``1/(1-p)``; at inference, the identity."""

    def __init__(self, p: float = 0.5, rng: np.random.Generator | int | None = None) -> None:
        if not 0.0 <= p < 1.0:
            raise ClearConvError(f"Dropout p must be in [0, 1), got {p}")
        self.p = float(p)
        self.rng = as_rng(rng) if rng is not None else None
        self._mask: Any = None
        self._active = False

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Drop values in a pass that records for backward (``training=True``) in training
        mode; the identity otherwise (inference, or after ``eval()``)."""
        self._active = training
        if not (training and self.training) or self.p == 0.0:
            self._mask = None
            return np.asarray(x)
        y, self._mask = dropout_forward(x, self.p, self.rng or as_rng(None))
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if not self._active:
            raise ClearConvError("Dropout.backward called before forward(training=True)")
        return dropout_backward(dy, self._mask)

    def get_config(self) -> dict[str, Any]:
        return {"p": self.p}


__all__ = ["Dense", "Dropout", "Flatten"]
