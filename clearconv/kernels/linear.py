"""linear algorithm ``'split-rows'``: the readable products, their rows split between
clearconv's threads (each part's product single-threaded), the weight gradient summed
over the parts. Products under :data:`~clearconv.kernels.tuning.MIN_SPLIT_PRODUCT`
multiply-adds run in one piece."""

from __future__ import annotations

import numpy as np

from ..functional import linear as flinear
from . import registry, threads


def forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    y = threads.matmul(x, weight.T)
    if bias is not None:
        y += bias
    return y


def backward(dy: np.ndarray, cache: flinear.LinearCache, input_grad: bool
             ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    dx = threads.matmul(dy, cache.weight) if input_grad else None
    return dx, threads.matmul_t(dy, cache.x), (dy.sum(axis=0) if cache.has_bias else None)


def _any(call: flinear.LinearCall) -> tuple[bool, str]:
    return True, "any shape; large products split by rows between threads"


registry.register(registry.Algorithm(
    flinear.OP, "split-rows", _any, forward, backward,
    "the products' rows split between threads"))
