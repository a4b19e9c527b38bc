"""Dense (fully connected) layer: ``y = x W^T + b`` with PyTorch's weight layout."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import ShapeError
from ..shapes import check_linear
from . import _parallel


class LinearCache(NamedTuple):
    x: np.ndarray
    weight: np.ndarray
    has_bias: bool


@_parallel.splits_its_own_work
def linear_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None
                   ) -> tuple[np.ndarray, LinearCache]:
    """Forward of a dense layer, ``y[n, o] = sum_i x[n, i] W[o, i] + b[o]``.

    Parameters
    ----------
    x : ndarray of shape (N, in_features)
    weight : ndarray of shape (out_features, in_features)
    bias : ndarray of shape (out_features,) or None

    Returns
    -------
    y : ndarray of shape (N, out_features)
    cache : LinearCache
    """
    x, weight = check_linear(x, weight)
    y = _parallel.matmul(x, weight.T)
    if bias is not None:
        bias = np.asarray(bias, dtype=x.dtype)
        if bias.shape != (weight.shape[0],):
            raise ShapeError(f"linear bias must have shape ({weight.shape[0]},), "
                             f"got {bias.shape}")
        y += bias
    return y, LinearCache(x, weight, bias is not None)


@_parallel.splits_its_own_work
def linear_backward(dy: np.ndarray, cache: LinearCache, input_grad: bool = True
                    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Backward of :func:`linear_forward`.

    ``dx = dy W`` (N, in), ``dW = dy^T x`` (out, in), ``db = sum_n dy`` (out,) or None.
    With ``input_grad=False`` dx is not computed (None).
    """
    x, weight, has_bias = cache
    dy = np.asarray(dy, dtype=weight.dtype)
    dx = _parallel.matmul(dy, weight) if input_grad else None
    return dx, _parallel.matmul_t(dy, x), (dy.sum(axis=0) if has_bias else None)
