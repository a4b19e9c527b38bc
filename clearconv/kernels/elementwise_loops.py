"""The compiled loops of add_relu's ``'compiled'`` algorithm
(:mod:`clearconv.kernels.elementwise`). A module of their own so that importing the
algorithm does not import Numba: it loads these at its first call."""

from __future__ import annotations

from typing import Any

from . import compiled

_njit = compiled._njit


@_njit
def _add_relu(a: Any, b: Any, lo: int, hi: int, y: Any) -> None:
    """y[i] = max(a[i] + b[i], 0) for i in lo..hi (NumPy's maximum: a NaN stays NaN);
    y may be a itself."""
    for i in range(lo, hi):
        v = a[i] + b[i]
        y[i] = 0 if v < 0 else v


@_njit
def _relu_mask(dy: Any, y: Any, lo: int, hi: int, g: Any) -> None:
    """g[i] = dy[i] (y[i] > 0) for i in lo..hi (ReLU's backward, as NumPy multiplies)."""
    for i in range(lo, hi):
        g[i] = dy[i] * (y[i] > 0)
