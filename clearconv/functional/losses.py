"""Softmax cross-entropy loss (MATH.md "Around the math"), numerically stable."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import ShapeError
from ._windows import as_float


class SoftmaxCECache(NamedTuple):
    probs: np.ndarray    # (N, K) softmax of the logits
    labels: np.ndarray   # (N,) integer class indices


def check_logits_labels(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Check logits (N, K) against integer labels (N,) in [0, K); return the labels as ints.

    Float labels holding whole numbers are accepted (converted to int64).
    """
    if z.ndim != 2:
        raise ShapeError(f"logits must have shape (N, K), got {z.shape}")
    n, k = z.shape
    if labels.shape != (n,):
        raise ShapeError(f"labels must have shape ({n},) to match logits {z.shape}, "
                         f"got {labels.shape}")
    if labels.dtype.kind not in "iu":
        if labels.dtype.kind == "f" and np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
        else:
            raise ShapeError(f"labels must be integer class indices, got dtype {labels.dtype}")
    if n and (labels.min() < 0 or labels.max() >= k):
        bad = labels[(labels < 0) | (labels >= k)]
        raise ShapeError(f"labels must be in [0, {k}) for {k} classes, got {bad[:5].tolist()}")
    return labels


def softmax_cross_entropy_forward(logits: np.ndarray, labels: np.ndarray
                                  ) -> tuple[float, SoftmaxCECache]:
    """Mean cross-entropy of softmax(logits) against integer labels.

    ``L = (1/N) sum_n [ log sum_k exp(z_nk) - z_{n, y_n} ]``, computed with the
    log-sum-exp shift ``z - max z`` so that large logits do not overflow.

    Parameters
    ----------
    logits : ndarray of shape (N, K)
    labels : integer ndarray of shape (N,), values in [0, K)

    Returns
    -------
    loss : float
    cache : SoftmaxCECache for :func:`softmax_cross_entropy_backward`
    """
    z = as_float(logits)
    labels = check_logits_labels(z, np.asarray(labels))
    n = z.shape[0]
    with np.errstate(invalid="ignore"):  # inf - inf: a NaN loss, which callers check
        shifted = z - z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_probs = shifted - lse
    rows = np.arange(n)
    loss = -log_probs[rows, labels].mean() if n else z.dtype.type(0)
    return float(loss), SoftmaxCECache(np.exp(log_probs), labels)


def softmax_cross_entropy_backward(dloss: float, cache: SoftmaxCECache) -> np.ndarray:
    """``dL/dz = dloss * (softmax(z) - onehot(y)) / N``, shape (N, K)."""
    probs, labels = cache
    n = probs.shape[0]
    d = probs.copy()
    d[np.arange(n), labels] -= 1
    d *= probs.dtype.type(dloss / max(n, 1))
    return d
