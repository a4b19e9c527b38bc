"""Softmax cross-entropy loss (MATH.md "Around the math"), numerically stable."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..shapes import as_float, check_logits_labels


class SoftmaxCECache(NamedTuple):
    probs: np.ndarray    # (N, K) softmax of the logits
    labels: np.ndarray   # (N,) integer class indices


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
