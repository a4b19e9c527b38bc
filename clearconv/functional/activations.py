"""Activations g of MATH.md §7 (``A = g(Z)``) and their derivatives for §9 (``dZ = dA ⊙ g'(Z)``).

Each is a forward/backward pair: ``<name>_forward(z) -> (a, cache)`` and
``<name>_backward(da, cache) -> dz``. Shapes are unchanged (any shape).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import ShapeError
from ..kernels import registry
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


class AddReluCall(NamedTuple):
    """What an add_relu algorithm's predicate sees of a call."""

    shape: tuple[int, ...]
    dtype: np.dtype    # of every operand (object where they differ)
    layout: str        # 'NCHW' / 'channels-last' where every operand has it, else 'mixed'

    def __str__(self) -> str:
        return f"x{self.shape} ({self.layout}) {np.dtype(self.dtype).name}"


class AddReluCache(NamedTuple):
    """What :func:`add_relu_backward` needs: the algorithm and the output (its mask)."""

    algorithm: str
    y: np.ndarray


def operand_layout(*arrays: np.ndarray | None) -> str:
    """The memory layout all the (N, C, H, W) arrays share, or 'mixed'."""
    kinds = set()
    for a in arrays:
        if a is None:
            continue
        if a.ndim == 4 and a.flags.c_contiguous:
            kinds.add("NCHW")
        elif a.ndim == 4 and a.transpose(0, 2, 3, 1).flags.c_contiguous:
            kinds.add("channels-last")
        else:
            kinds.add("mixed")
    return kinds.pop() if len(kinds) == 1 else "mixed"


def add_relu_forward(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None,
                     algorithm: str = "auto") -> tuple[np.ndarray, AddReluCache]:
    """``y = max(a + b, 0)``: a residual block's sum of its branches and the ReLU after it
    (MATH.md §7: the activation of the sum), a and b of one shape and dtype.

    ``out``: write y there (``out=a`` overwrites a, when the caller owns it). y keeps
    the memory layout the inputs share. ``algorithm``: 'auto', 'numpy' (here: the sum,
    then the ReLU in place on it) or 'compiled' (one pass,
    :mod:`clearconv.kernels.elementwise`). Returns y and the cache for
    :func:`add_relu_backward`.
    """
    a, b = as_float(a), as_float(b)
    if a.shape != b.shape:
        raise ShapeError(f"add_relu: a has shape {a.shape}, b {b.shape}; they must agree")
    dtypes = {a.dtype, b.dtype, a.dtype if out is None else out.dtype}
    call = AddReluCall(a.shape, a.dtype if len(dtypes) == 1 else np.dtype(object),
                       operand_layout(a, b, out))
    algo = registry.resolve(ADD_RELU, algorithm, call)
    y = algo.forward(a, b, out)
    return y, AddReluCache(algo.name, y)


def add_relu_backward(dy: np.ndarray, cache: AddReluCache) -> np.ndarray:
    """The gradient of a and of b alike (the sum passes it to both): ``dy`` where
    ``y > 0``, else 0 (as :func:`relu_backward`, MATH.md §9)."""
    dy = np.asarray(dy)
    if dy.shape != cache.y.shape:
        raise ShapeError(f"add_relu_backward: dy has shape {dy.shape}, the forward's output "
                         f"{cache.y.shape}")
    return registry.get(ADD_RELU, cache.algorithm).backward(dy, cache.y)


def _numpy_add_relu(a: np.ndarray, b: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    y = np.add(a, b, out=out)
    return np.maximum(y, 0, out=y)


def _supports_any(call: AddReluCall) -> tuple[bool, str]:
    return True, "any shape and layout, two whole-array NumPy passes"


ADD_RELU = "add_relu"
registry.register(registry.Algorithm(
    ADD_RELU, "numpy", _supports_any, _numpy_add_relu, relu_backward,
    "the readable path: np.add, then np.maximum in place; backward relu_backward"))
