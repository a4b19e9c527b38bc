"""Activations g of MATH.md §7 (``A = g(Z)``) and their derivatives for §9 (``dZ = dA ⊙ g'(Z)``).

Each is a forward/backward pair: ``<name>_forward(z) -> (a, cache)`` and
``<name>_backward(da, cache) -> dz``. Shapes are unchanged (any shape).
"""

from __future__ import annotations

import numpy as np

from ..shapes import as_float


def relu_forward(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a = max(z, 0)``; the cache is ``a`` (its sign is the mask of g')."""
    a = np.maximum(as_float(z), 0)
    return a, a


def relu_backward(da: np.ndarray, cache: np.ndarray) -> np.ndarray:
    """``dz = da`` where ``z > 0``, else 0 (g'(0) taken as 0, as PyTorch)."""
    return np.multiply(da, cache > 0, dtype=cache.dtype)


def leaky_relu_forward(z: np.ndarray, negative_slope: float = 0.01
                       ) -> tuple[np.ndarray, tuple[np.ndarray, float]]:
    """``a = z`` if ``z > 0`` else ``negative_slope * z``."""
    z = as_float(z)
    return np.where(z > 0, z, z * z.dtype.type(negative_slope)), (z, negative_slope)


def leaky_relu_backward(da: np.ndarray, cache: tuple[np.ndarray, float]) -> np.ndarray:
    """``dz = da`` where ``z > 0``, else ``negative_slope * da``."""
    z, slope = cache
    da = np.asarray(da, dtype=z.dtype)
    return np.where(z > 0, da, da * z.dtype.type(slope))


def sigmoid_forward(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a = 1 / (1 + exp(-z))``, computed without overflow for large ``|z|``."""
    z = as_float(z)
    e = np.exp(-np.abs(z))
    a = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
    return a, a


def sigmoid_backward(da: np.ndarray, cache: np.ndarray) -> np.ndarray:
    """``dz = da * a * (1 - a)``."""
    a = cache
    return np.asarray(da, dtype=a.dtype) * a * (1 - a)


def tanh_forward(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a = tanh(z)``."""
    a = np.tanh(as_float(z))
    return a, a


def tanh_backward(da: np.ndarray, cache: np.ndarray) -> np.ndarray:
    """``dz = da * (1 - a^2)``."""
    a = cache
    return np.asarray(da, dtype=a.dtype) * (1 - a * a)


def softmax_forward(z: np.ndarray, axis: int = -1) -> tuple[np.ndarray, tuple[np.ndarray, int]]:
    """``a_i = exp(z_i - max z) / sum_j exp(z_j - max z)`` along ``axis``."""
    z = as_float(z)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    a = e / e.sum(axis=axis, keepdims=True)
    return a, (a, axis)


def softmax_backward(da: np.ndarray, cache: tuple[np.ndarray, int]) -> np.ndarray:
    """``dz = a * (da - sum_j da_j a_j)`` along the softmax axis."""
    a, axis = cache
    da = np.asarray(da, dtype=a.dtype)
    return a * (da - (da * a).sum(axis=axis, keepdims=True))


def add_relu_forward(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``y = max(a + b, 0)``: a residual block's sum of its branches and the ReLU after
    it, the sum written once and the ReLU applied to it in place (y keeps the memory
    layout the inputs share). ``out``: write y there (``out=a`` overwrites a, when the
    caller owns it). The cache is ``y`` (its sign is the mask of g')."""
    y = np.add(a, b, out=out)
    return np.maximum(y, 0, out=y), y


def add_relu_backward(dy: np.ndarray, cache: np.ndarray) -> np.ndarray:
    """The gradient of a and of b alike (the sum passes it to both): ``dy`` where
    ``y > 0``, else 0 (:func:`relu_backward`)."""
    return relu_backward(dy, cache)
