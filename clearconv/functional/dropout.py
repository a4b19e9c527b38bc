"""Inverted dropout: zero each activation with probability p, scale the rest by 1/(1-p)."""

from __future__ import annotations

import numpy as np

from ..errors import ClearConvError
from ..shapes import as_float


def dropout_forward(x: np.ndarray, p: float, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray | None]:
    """Training-time dropout. Returns ``(y, mask)`` with ``y = x * mask``.

    ``mask`` is 0 with probability ``p`` and ``1/(1-p)`` otherwise (same shape as x),
    so the expected value of y equals x and inference needs no rescaling.
    """
    if not 0.0 <= p < 1.0:
        raise ClearConvError(f"dropout probability must be in [0, 1), got {p}")
    x = as_float(x)
    if p == 0.0:
        return x, None
    mask = (rng.random(x.shape, dtype=x.dtype) >= p).astype(x.dtype)
    mask *= x.dtype.type(1.0 / (1.0 - p))
    return x * mask, mask


def dropout_backward(dy: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """``dx = dy * mask`` (identity when p was 0)."""
    return dy if mask is None else dy * mask
