"""Pooling over signals and sequences (N, C, L): thin views over the 2-D ops.

A 1-D input (N, C, L) is the 2-D input (N, C, 1, L) (a view, no copy), a window k is
the window (1, k), and the 2-D op's result is viewed back as (N, C, L_out); the
backward does the same with the gradient. So every rule of the 2-D ops (PyTorch's
windows, ties, NaN, ceil_mode, the adaptive windows) holds here unchanged, and each
function below is a few lines of reshaping: the math is in :mod:`.pool` and
:mod:`.adaptive_pool` (MATH.md §10-11).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ClearConvError, ShapeError
from ..shapes import as_float
from .adaptive_pool import (
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool2d_forward,
    adaptive_max_pool2d_backward,
    adaptive_max_pool2d_forward,
    adaptive_max_pool2d_indices,
    global_avg_pool2d_backward,
    global_avg_pool2d_forward,
    global_max_pool2d_backward,
    global_max_pool2d_forward,
)
from .pool import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
    max_pool2d_indices,
)


def as_2d(x: np.ndarray, op: str) -> np.ndarray:
    """x (N, C, L) as a float (N, C, 1, L) view; ShapeError naming the shape otherwise."""
    x = as_float(x)
    if x.ndim != 3:
        raise ShapeError(f"{op} expects input of shape (N, C, L) (3 dimensions), got shape "
                         f"{tuple(x.shape)} ({x.ndim} dimensions)")
    return x[:, :, None, :]


def _scalar(value: Any, name: str, op: str) -> int:
    """A 1-D size as an int: an int, or a 1-tuple of one (PyTorch accepts both)."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise ClearConvError(f"{op}: {name} must be an int, got {value!r}")
    return int(value)


def padding_2d(padding: Any, op: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """A 1-D padding (int, or (left, right)) as the 2-D ((0, 0), (left, right))."""
    if isinstance(padding, (tuple, list)) and len(padding) == 2:
        return (0, 0), (_scalar(padding[0], "padding", op), _scalar(padding[1], "padding", op))
    p = _scalar(padding, "padding", op)
    return (0, 0), (p, p)


def window_1d(kernel_size: Any, stride: Any, dilation: Any, op: str
              ) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """A 1-D window (kernel, stride, dilation) checked, as the 2-D (1, k), (1, s), (1, d)."""
    k = _scalar(kernel_size, "kernel_size", op)
    s = k if stride is None else _scalar(stride, "stride", op)
    d = _scalar(dilation, "dilation", op)
    for name, v in (("kernel_size", k), ("stride", s), ("dilation", d)):
        if v < 1:
            raise ClearConvError(f"{op}: {name} must be >= 1, got {v}")
    return (1, k), (1, s), (1, d)


def max_pool1d_forward(x: np.ndarray, kernel_size: int, stride: int | None = None,
                       padding: Any = 0, ceil_mode: bool = False, dilation: int = 1,
                       algorithm: str = "auto") -> tuple[np.ndarray, Any]:
    """Max pooling over L: :func:`~clearconv.functional.max_pool2d_forward` of the
    (N, C, 1, L) view with window (1, k). x (N, C, L) -> y (N, C, L_out),
    ``L_out = floor((L + p_left + p_right - d*(k - 1) - 1)/s) + 1``."""
    k, s, d = window_1d(kernel_size, stride, dilation, "max_pool1d")
    y, cache = max_pool2d_forward(as_2d(x, "max_pool1d"), k, s, padding_2d(padding,
                                  "max_pool1d"), ceil_mode, algorithm=algorithm, dilation=d)
    return y[:, :, 0, :], cache


def max_pool1d_backward(dy: np.ndarray, cache: Any) -> np.ndarray:
    """dx (N, C, L): each window's gradient to its maximum."""
    return max_pool2d_backward(np.asarray(dy)[:, :, None, :], cache)[:, :, 0, :]


def max_pool1d_indices(cache: Any) -> np.ndarray:
    """PyTorch's ``return_indices`` of a 1-D max pooling: the position in L of each
    window's maximum, int64 (N, C, L_out)."""
    return max_pool2d_indices(cache)[:, :, 0, :]


def avg_pool1d_forward(x: np.ndarray, kernel_size: int, stride: int | None = None,
                       padding: Any = 0, ceil_mode: bool = False,
                       count_include_pad: bool = True) -> tuple[np.ndarray, Any]:
    """Average pooling over L: :func:`~clearconv.functional.avg_pool2d_forward` of the
    (N, C, 1, L) view. x (N, C, L) -> y (N, C, L_out)."""
    k, s, _ = window_1d(kernel_size, stride, 1, "avg_pool1d")
    y, cache = avg_pool2d_forward(as_2d(x, "avg_pool1d"), k, s,
                                  padding_2d(padding, "avg_pool1d"), ceil_mode,
                                  count_include_pad)
    return y[:, :, 0, :], cache


def avg_pool1d_backward(dy: np.ndarray, cache: Any) -> np.ndarray:
    """dx (N, C, L): each window's gradient spread over its cells."""
    return avg_pool2d_backward(np.asarray(dy)[:, :, None, :], cache)[:, :, 0, :]


def adaptive_avg_pool1d_forward(x: np.ndarray, output_size: int) -> tuple[np.ndarray, Any]:
    """Adaptive average pooling of L to ``output_size`` (PyTorch's windows)."""
    size = _scalar(output_size, "output_size", "adaptive_avg_pool1d")
    y, cache = adaptive_avg_pool2d_forward(as_2d(x, "adaptive_avg_pool1d"), (1, size))
    return y[:, :, 0, :], cache


def adaptive_avg_pool1d_backward(dy: np.ndarray, cache: Any) -> np.ndarray:
    return adaptive_avg_pool2d_backward(np.asarray(dy)[:, :, None, :], cache)[:, :, 0, :]


def adaptive_max_pool1d_forward(x: np.ndarray, output_size: int) -> tuple[np.ndarray, Any]:
    """Adaptive max pooling of L to ``output_size`` (PyTorch's windows and ties)."""
    size = _scalar(output_size, "output_size", "adaptive_max_pool1d")
    y, cache = adaptive_max_pool2d_forward(as_2d(x, "adaptive_max_pool1d"), (1, size))
    return y[:, :, 0, :], cache


def adaptive_max_pool1d_backward(dy: np.ndarray, cache: Any) -> np.ndarray:
    return adaptive_max_pool2d_backward(np.asarray(dy)[:, :, None, :], cache)[:, :, 0, :]


def adaptive_max_pool1d_indices(cache: Any) -> np.ndarray:
    """The position in L of each window's maximum, int64 (N, C, L_out)."""
    return adaptive_max_pool2d_indices(cache)[:, :, 0, :]


def global_avg_pool1d_forward(x: np.ndarray) -> tuple[np.ndarray, Any]:
    """The mean over L: x (N, C, L) -> y (N, C, 1)."""
    y, cache = global_avg_pool2d_forward(as_2d(x, "global_avg_pool1d"))
    return y[:, :, 0, :], cache


def global_avg_pool1d_backward(dy: np.ndarray, cache: Any) -> np.ndarray:
    return global_avg_pool2d_backward(np.asarray(dy)[:, :, None, :], cache)[:, :, 0, :]


def global_max_pool1d_forward(x: np.ndarray) -> tuple[np.ndarray, Any]:
    """The maximum over L: x (N, C, L) -> y (N, C, 1)."""
    y, cache = global_max_pool2d_forward(as_2d(x, "global_max_pool1d"))
    return y[:, :, 0, :], cache


def global_max_pool1d_backward(dy: np.ndarray, cache: Any) -> np.ndarray:
    return global_max_pool2d_backward(np.asarray(dy)[:, :, None, :], cache)[:, :, 0, :]
