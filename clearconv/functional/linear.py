"""Dense (fully connected) layer: ``y = x W^T + b`` with PyTorch's weight layout.

The readable algorithm, ``'matmul'``, is one matrix product each way; a faster one
(the rows split between clearconv's threads) is registered by :mod:`clearconv.kernels.linear`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..errors import ShapeError
from ..kernels import registry
from ..shapes import check_cache, check_linear

OP = "linear"


class LinearCall(NamedTuple):
    """What a linear algorithm's predicate sees: the product (m, k) @ (k, n)."""

    rows: int
    inner: int
    cols: int
    dtype: np.dtype

    def __str__(self) -> str:
        return f"({self.rows}, {self.inner}) @ ({self.inner}, {self.cols}) {self.dtype.name}"


class LinearCache(NamedTuple):
    algorithm: str
    x: np.ndarray
    weight: np.ndarray
    has_bias: bool


def linear_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
                   algorithm: str = "auto") -> tuple[np.ndarray, LinearCache]:
    """Forward of a dense layer, ``y[n, o] = sum_i x[n, i] W[o, i] + b[o]``.

    Parameters
    ----------
    x : ndarray of shape (N, in_features)
    weight : ndarray of shape (out_features, in_features)
    bias : ndarray of shape (out_features,) or None
    algorithm : 'auto', 'matmul' (here) or 'split-rows' (:mod:`clearconv.kernels.linear`)

    Returns
    -------
    y : ndarray of shape (N, out_features)
    cache : LinearCache
    """
    x, weight = check_linear(x, weight)
    if bias is not None:
        bias = np.asarray(bias, dtype=x.dtype)
        if bias.shape != (weight.shape[0],):
            raise ShapeError(f"linear bias must have shape ({weight.shape[0]},), "
                             f"got {bias.shape}")
    call = LinearCall(x.shape[0], x.shape[1], weight.shape[0], x.dtype)
    algo = registry.resolve(OP, algorithm, call)
    return algo.forward(x, weight, bias), LinearCache(algo.name, x, weight, bias is not None)


def linear_backward(dy: np.ndarray, cache: LinearCache, input_grad: bool = True
                    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Backward of :func:`linear_forward`.

    ``dx = dy W`` (N, in), ``dW = dy^T x`` (out, in), ``db = sum_n dy`` (out,) or None.
    With ``input_grad=False`` dx is not computed (None).
    """
    check_cache(cache, LinearCache, "linear_backward", "linear_forward")
    dy = np.asarray(dy, dtype=cache.weight.dtype)
    expected = (cache.x.shape[0], cache.weight.shape[0])
    if dy.shape != expected:
        raise ShapeError(f"linear_backward: dy has shape {dy.shape}, the forward output was "
                         f"{expected}")
    return registry.get(OP, cache.algorithm).backward(dy, cache, input_grad)


def matmul_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    y = x @ weight.T
    if bias is not None:
        y += bias
    return y


def matmul_backward(dy: np.ndarray, cache: LinearCache, input_grad: bool
                    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    dx = dy @ cache.weight if input_grad else None
    return dx, dy.T @ cache.x, (dy.sum(axis=0) if cache.has_bias else None)


def _supports_any(call: Any) -> tuple[bool, str]:
    return True, "any shape, one product"


registry.register(registry.Algorithm(
    OP, "matmul", _supports_any, matmul_forward, matmul_backward,
    "the readable path: y = x W^T + b as one matrix product"))
