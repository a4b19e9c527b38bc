"""Losses (MATH.md "Around the math"), numerically stable, with PyTorch's semantics.

- :func:`softmax_cross_entropy_forward`: the plain mean cross-entropy of ``fit``'s default;
- :func:`cross_entropy_forward`: ``torch.nn.CrossEntropyLoss`` whole (class ``weight``,
  ``ignore_index``, ``label_smoothing``, ``reduction``, (N, C, d1, ...) logits, class
  probabilities as target);
- :func:`log_softmax_forward`; :func:`mse_forward` (``MSELoss``);
  :func:`binary_cross_entropy_with_logits_forward` (``BCEWithLogitsLoss``, ``pos_weight``).

Each ``*_forward`` returns ``(loss, cache)``: the loss is a float for ``reduction`` 'mean'
and 'sum', an array for 'none'; each ``*_backward(d_loss, cache)`` returns dL/d(input).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..shapes import (
    as_float,
    check_broadcasts,
    check_cross_entropy,
    check_logits_labels,
    check_reduction,
    check_same_shape,
)


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


# ------------------------------------------------------------------------ log-softmax


def log_softmax_forward(z: np.ndarray, axis: int = 1) -> tuple[np.ndarray, tuple[np.ndarray, int]]:
    """``log softmax(z)_i = (z_i - max z) - log sum_j exp(z_j - max z)`` along ``axis``
    (as ``torch.log_softmax(z, dim=axis)``); any shape, the output has z's shape."""
    z = as_float(z)
    with np.errstate(invalid="ignore"):  # inf - inf: NaN, as in PyTorch
        shifted = z - z.max(axis=axis, keepdims=True)
    out = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    return out, (out, axis)


def log_softmax_backward(d_out: np.ndarray, cache: tuple[np.ndarray, int]) -> np.ndarray:
    """``dz_i = d_i - softmax(z)_i * sum_j d_j`` along the axis."""
    out, axis = cache
    d = np.asarray(d_out, dtype=out.dtype)
    return d - np.exp(out) * d.sum(axis=axis, keepdims=True)


# --------------------------------------------------------------------- cross-entropy


class CrossEntropyCache(NamedTuple):
    probs: np.ndarray      # (M, C) softmax of the logits, one row per sample and position
    q: np.ndarray          # (M, C) the weighted target each row's log-probabilities meet
    scale: float | None    # 1/denominator ('mean'), 1 ('sum'), None ('none')
    shape: tuple[int, ...]  # the logits' shape (N, C, d1, ...)


def _rows(a: np.ndarray) -> np.ndarray:
    """(N, C, d1, ...) -> (N * d1 * ..., C): the class axis last, one row per prediction."""
    return np.moveaxis(a, 1, -1).reshape(-1, a.shape[1])


def _unrows(rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of :func:`_rows` for an array of logits' shape."""
    return np.moveaxis(rows.reshape(shape[0], *shape[2:], shape[1]), -1, 1)


def cross_entropy_forward(logits: np.ndarray, target: np.ndarray,
                          weight: np.ndarray | None = None, ignore_index: int = -100,
                          reduction: str = "mean", label_smoothing: float = 0.0
                          ) -> tuple[float | np.ndarray, CrossEntropyCache]:
    """Cross-entropy of softmax(logits) against a target, as ``torch.nn.CrossEntropyLoss``.

    Each prediction r (a sample, or a sample's position for (N, C, d1, ...) logits) with
    log-probabilities ``log p_r = log_softmax(z_r)`` meets a weighted target ``q_r``::

        l_r = - sum_c q_rc log p_rc
        class index y_r:  q_rc = [y_r != ignore] ((1 - eps) w_{y_r} [c == y_r] + eps w_c / C)
        probabilities t_r: q_rc = w_c ((1 - eps) t_rc + eps / C)

    with ``eps = label_smoothing`` and ``w`` the class weights (1 without ``weight``).
    ``reduction='sum'`` adds the l_r, ``'none'`` returns them (shape (N, d1, ...)),
    ``'mean'`` divides the sum by ``sum_r [y_r != ignore] w_{y_r}`` for class indices
    (PyTorch's weighted mean, the smoothing term included; a NaN loss with zero
    gradients when every target is ignored) and by the number of predictions for probabilities.

    Parameters
    ----------
    logits : ndarray of shape (N, C) or (N, C, d1, ...)
    target : integer class indices of shape (N,) / (N, d1, ...), or float probabilities
        of the logits' shape
    weight : optional ndarray (C,), a weight per class
    ignore_index : a class index whose predictions count for nothing (indices only)
    reduction : 'mean', 'sum' or 'none'
    label_smoothing : eps in [0, 1]

    Returns
    -------
    loss : float ('mean', 'sum') or ndarray (N, d1, ...) ('none')
    cache : CrossEntropyCache for :func:`cross_entropy_backward`
    """
    z = as_float(logits)
    checked = check_cross_entropy(z, np.asarray(target), weight, ignore_index, reduction,
                                  label_smoothing)
    classes = z.shape[1]
    log_p, _ = log_softmax_forward(_rows(z), axis=1)
    w = checked.weight if checked.weight is not None else np.ones(classes, z.dtype)
    eps = z.dtype.type(label_smoothing)
    if checked.probabilities:
        q = (_rows(checked.target) * (1 - eps) + eps / classes) * w
        denominator = float(len(q))
    else:
        y = checked.target.reshape(-1)
        kept = y != ignore_index
        y_kept = np.where(kept, y, 0)
        rows = np.arange(len(y))
        q = np.zeros_like(log_p)
        q[rows, y_kept] = (1 - eps) * w[y_kept]
        q += eps / classes * w
        q[~kept] = 0
        denominator = float((w[y_kept] * kept).sum())
    per_row = -(q * log_p).sum(axis=1)
    probs = np.exp(log_p)
    if reduction == "none":
        out = per_row.reshape(z.shape[0], *z.shape[2:])
        return out, CrossEntropyCache(probs, q, None, z.shape)
    total = float(per_row.sum())
    if reduction == "sum":
        return total, CrossEntropyCache(probs, q, 1.0, z.shape)
    if denominator == 0:   # every target ignored: a NaN loss and zero gradients, as PyTorch
        return float("nan"), CrossEntropyCache(probs, q, 0.0, z.shape)
    return total / denominator, CrossEntropyCache(probs, q, 1.0 / denominator, z.shape)


def cross_entropy_backward(d_loss: float | np.ndarray, cache: CrossEntropyCache) -> np.ndarray:
    """``dl_r/dz_rc = (sum_c' q_rc') p_rc - q_rc``, times ``d_loss`` and the reduction's
    scale (``d_loss[r]`` for 'none'); the logits' shape."""
    probs, q, scale, shape = cache
    if scale is None:
        factor = np.asarray(d_loss, dtype=probs.dtype).reshape(-1, 1)
    else:
        factor = probs.dtype.type(float(d_loss) * scale)
    d = (q.sum(axis=1, keepdims=True) * probs - q) * factor
    return _unrows(d, shape)


# ------------------------------------------------------------------ mean squared error


def _reduce(per_element: np.ndarray, reduction: str) -> float | np.ndarray:
    if reduction == "none":
        return per_element
    if reduction == "sum":
        return float(per_element.sum())
    with np.errstate(invalid="ignore"):      # an empty input: NaN, as in PyTorch
        return float(per_element.mean()) if per_element.size else float("nan")


def _scale(d_loss: float | np.ndarray, reduction: str, size: int, dtype: np.dtype
           ) -> np.ndarray | np.floating:
    if reduction == "none":
        return np.asarray(d_loss, dtype=dtype)
    return dtype.type(float(d_loss) / (size if reduction == "mean" else 1))


class ElementwiseLossCache(NamedTuple):
    grad: np.ndarray     # dl_i/dx_i of each element
    reduction: str


def mse_forward(x: np.ndarray, target: np.ndarray, reduction: str = "mean"
                ) -> tuple[float | np.ndarray, ElementwiseLossCache]:
    """Squared error ``l_i = (x_i - t_i)^2``, reduced as ``torch.nn.MSELoss`` ('mean': over
    every element). ``target`` has x's shape (any shape)."""
    check_reduction(reduction)
    x = as_float(x)
    t = np.asarray(target)
    check_same_shape(x, t, "mse")
    diff = x - t.astype(x.dtype, copy=False)
    return _reduce(diff * diff, reduction), ElementwiseLossCache(2 * diff, reduction)


def mse_backward(d_loss: float | np.ndarray, cache: ElementwiseLossCache) -> np.ndarray:
    """``dL/dx_i = 2 (x_i - t_i)``, times d_loss, divided by the element count for 'mean'."""
    grad, reduction = cache
    return grad * _scale(d_loss, reduction, grad.size, grad.dtype)


# ------------------------------------------------------------ binary cross-entropy


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    """``log sigmoid(x) = min(x, 0) - log(1 + exp(-|x|))``: no overflow for any x."""
    return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))


def binary_cross_entropy_with_logits_forward(
        logits: np.ndarray, target: np.ndarray, weight: np.ndarray | None = None,
        pos_weight: np.ndarray | None = None, reduction: str = "mean"
) -> tuple[float | np.ndarray, ElementwiseLossCache]:
    """Binary cross-entropy of sigmoid(x) against targets t in [0, 1], on the logits x,
    as ``torch.nn.BCEWithLogitsLoss``::

        l_i = -w_i [ pw t_i log sigmoid(x_i) + (1 - t_i) log(1 - sigmoid(x_i)) ]
            = w_i [ (1 - t_i) x_i - (1 + (pw - 1) t_i) log sigmoid(x_i) ]

    (the second form, PyTorch's, never takes the log of 0). ``weight`` broadcasts against
    x; ``pos_weight`` (the weight of positive targets, e.g. one per class) broadcasts
    against x's last axis. ``target`` has x's shape; 'mean' averages every element.
    """
    check_reduction(reduction)
    x = as_float(logits)
    t = np.asarray(target)
    check_same_shape(x, t, "binary_cross_entropy_with_logits")
    check_broadcasts(weight, x.shape, "weight", "binary_cross_entropy_with_logits")
    check_broadcasts(pos_weight, x.shape, "pos_weight", "binary_cross_entropy_with_logits")
    t = t.astype(x.dtype, copy=False)
    log_weight = 1 + (np.asarray(pos_weight, x.dtype) - 1) * t if pos_weight is not None else 1
    loss = (1 - t) * x - log_weight * _log_sigmoid(x)
    # dl/dx = (1 - t) - (1 + (pw - 1) t)(1 - sigmoid(x)), and 1 - sigmoid(x) = sigmoid(-x)
    grad = (1 - t) - log_weight * np.exp(_log_sigmoid(-x))
    if weight is not None:
        w = np.asarray(weight, x.dtype)
        loss, grad = loss * w, grad * w
    loss, grad = np.broadcast_to(loss, x.shape), np.broadcast_to(grad, x.shape)
    return _reduce(np.array(loss), reduction), ElementwiseLossCache(np.array(grad), reduction)


def binary_cross_entropy_with_logits_backward(d_loss: float | np.ndarray,
                                              cache: ElementwiseLossCache) -> np.ndarray:
    """``dL/dx_i = w_i [(1 - t_i) - (1 + (pw - 1) t_i) sigmoid(-x_i)]``, times d_loss,
    divided by the element count for 'mean'."""
    grad, reduction = cache
    return grad * _scale(d_loss, reduction, grad.size, grad.dtype)
