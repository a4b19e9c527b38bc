"""Batch normalisation (Ioffe & Szegedy 2015), forward and backward, as ``torch.nn.BatchNorm2d``.

Each channel c of x (N, C, H, W) is normalised over its M = N*H*W values, then scaled and
shifted by the learned gamma[c], beta[c]::

    mu[c]    = 1/M sum_{n,h,w} x[n, c, h, w]
    var[c]   = 1/M sum_{n,h,w} (x[n, c, h, w] - mu[c])^2            (biased)
    xhat     = (x - mu[c]) / sqrt(var[c] + eps)
    y        = gamma[c] * xhat + beta[c]

In training (``training=True``) mu and var are the batch's, and the running statistics
are updated in place with the batch mean and the UNBIASED variance::

    running_mean = (1 - momentum) running_mean + momentum mu
    running_var  = (1 - momentum) running_var  + momentum var * M / (M - 1)

In evaluation mu and var are the running statistics, and nothing is updated.

The backward of training mode is the full one: mu and var depend on every x of the
channel, so (with ``g = dy * gamma`` and sums over n, h, w)::

    dbeta[c]  = sum dy
    dgamma[c] = sum dy * xhat
    dx        = gamma / sqrt(var + eps) * (dy - dbeta/M - xhat * dgamma/M)

(the two subtracted terms are the paths through mu and through var). In evaluation the
statistics are constants and ``dx = dy * gamma / sqrt(var + eps)``.

With ``relu=True`` the op is ``max(y, 0)`` in the same pass (the model's fusion pass
runs a BatchNorm2D followed by a ReLU so): the cache keeps that output, whose sign is
the ReLU's mask, and backward first sets dy to 0 where ``y <= 0`` (MATH.md §9, ``dZ = dA
⊙ g'(Z)``), then runs the formulas above.

In evaluation the op is an affine map per channel, ``y = s[c] x + (beta[c] - s[c] mu[c])``
with ``s = gamma / sqrt(var + eps)``: a convolution before it folds it into its weights
(:func:`batch_norm2d_fold`, ``W' = s[o] W[o]``, ``b' = s (b - mu) + beta``), which the
fusion pass does for inference.

This module is the op's readable algorithm, ``'numpy'``; a compiled one (one pass for the
statistics, one for the output, with the channels split between threads) is registered
by :mod:`clearconv.kernels.batchnorm`. The 1-D form (:func:`batch_norm1d_forward`) is a
view of the 2-D op: (N, C) and (N, C, L) inputs become (N, C, L, 1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ..errors import ClearConvError, ShapeError
from ..kernels import registry
from ..shapes import as_float, check_batch_norm
from .activations import relu_backward

OP = "batch_norm2d"


class BatchNormCall(NamedTuple):
    """What a batch-norm algorithm's predicate sees of a call."""

    shape: tuple[int, int, int, int]
    dtype: np.dtype
    layout: str             # 'NCHW' (C-contiguous), 'channels-last' or 'strided'
    batch_stats: bool       # normalise with the batch's statistics (training)

    def __str__(self) -> str:
        mode = "batch statistics" if self.batch_stats else "running statistics"
        return f"x{self.shape} ({self.layout}) {mode} {np.dtype(self.dtype).name}"


class BatchNormCache(NamedTuple):
    """What :func:`batch_norm2d_backward` needs from the forward pass."""

    algorithm: str              # the algorithm that computed the forward (and runs backward)
    saved: Any                  # 'numpy': xhat; the compiled one: x itself
    mean: np.ndarray            # (C,) the mu used (batch or running)
    invstd: np.ndarray          # (C,) 1 / sqrt(var + eps)
    gamma: np.ndarray | None    # (C,) or None (no affine parameters)
    batch_stats: bool           # training mode: backward goes through mu and var
    has_beta: bool
    relu_out: np.ndarray | None = None   # relu=True: the output max(y, 0) (its mask)


def layout_of(x: np.ndarray) -> str:
    """'NCHW' for C-contiguous memory, 'channels-last' for an NCHW view of C-contiguous
    NHWC memory (what conv2d returns), else 'strided'."""
    if x.flags.c_contiguous:
        return "NCHW"
    if x.transpose(0, 2, 3, 1).flags.c_contiguous:
        return "channels-last"
    return "strided"


def update_running_stats(running_mean: np.ndarray, running_var: np.ndarray, mean: np.ndarray,
                         var: np.ndarray, count: int, momentum: float) -> None:
    """``r = (1 - momentum) r + momentum s`` in place, with the unbiased variance
    ``var * M / (M - 1)`` (as PyTorch), in the running arrays' own dtype."""
    m = float(momentum)
    unbiased = var.astype(np.float64) * (count / (count - 1))
    running_mean[...] = (1.0 - m) * running_mean.astype(np.float64) + m * mean
    running_var[...] = (1.0 - m) * running_var.astype(np.float64) + m * unbiased


def batch_norm2d_forward(x: np.ndarray, gamma: np.ndarray | None, beta: np.ndarray | None,
                         running_mean: np.ndarray | None, running_var: np.ndarray | None,
                         training: bool, momentum: float = 0.1, eps: float = 1e-5,
                         algorithm: str = "auto",
                         batch_stats: tuple[np.ndarray, np.ndarray] | None = None,
                         relu: bool = False) -> tuple[np.ndarray, BatchNormCache]:
    """Batch normalisation of x over (N, H, W), per channel (see the module docstring).

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W), float32 or float64
    gamma, beta : ndarray of shape (C,), or None (scale 1, shift 0: ``affine=False``)
    running_mean, running_var : float ndarray of shape (C,), or both None (no running
        statistics: only training mode, which then updates nothing). Updated IN PLACE in
        training mode.
    training : normalise with the batch statistics (and update the running ones), else
        with the running statistics
    momentum : weight of the batch in the running update (PyTorch's; 1 keeps the last batch)
    eps : added to the variance under the square root
    algorithm : 'auto', 'numpy' (here) or 'compiled' (:mod:`clearconv.kernels.batchnorm`)
    batch_stats : (mean, biased var) of the whole batch, each (C,), when x is one piece of
        a batch split between processes (synchronised batch norm): training mode
        normalises with these instead of x's own. The running statistics are the
        caller's to update (from the whole batch's count); backward then needs
        ``reduce`` (:func:`batch_norm2d_backward`).
    relu : return ``max(y, 0)``, computed in the same pass (the ReLU after a batch norm);
        backward then is the gradient of that

    Returns
    -------
    y : ndarray of shape (N, C, H, W), the dtype and memory layout of x
    cache : BatchNormCache
    """
    x, gamma, beta = check_batch_norm(x, gamma, beta, running_mean, running_var, training,
                                      momentum, eps, stats_given=batch_stats is not None)
    call = BatchNormCall(x.shape, x.dtype, layout_of(x), bool(training))
    algo = registry.resolve(OP, algorithm, call)
    if batch_stats is not None:
        stats = tuple(np.asarray(s, np.float64) for s in batch_stats)
        running_mean = None         # the caller updates them, from the whole batch
    else:
        stats = None if training else (np.asarray(running_mean), np.asarray(running_var))
    y, mean, var, saved = algo.forward(x, gamma, beta, stats, float(eps), bool(relu))
    if training and running_mean is not None:
        count = x.shape[0] * x.shape[2] * x.shape[3]
        update_running_stats(running_mean, running_var, mean, var, count, momentum)
    invstd = (1.0 / np.sqrt(var.astype(np.float64) + eps)).astype(x.dtype)
    return y, BatchNormCache(algo.name, saved, mean.astype(x.dtype), invstd, gamma,
                             bool(training), beta is not None, y if relu else None)


def batch_norm2d_backward(dy: np.ndarray, cache: BatchNormCache,
                          reduce: Callable[[np.ndarray, np.ndarray],
                                           tuple[np.ndarray, np.ndarray]] | None = None
                          ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Backward of :func:`batch_norm2d_forward`: ``(dx, dgamma, dbeta)``.

    dx has the shape of x (N, C, H, W); dgamma and dbeta shape (C,), each None when the
    forward had no gamma (beta). Training mode's dx goes through the batch mean and
    variance (the module docstring's formula), evaluation's through the constant scale.

    ``reduce`` (synchronised batch norm, where the forward had ``batch_stats``): maps this
    piece's ``(sum dy, sum dy xhat)`` to those sums over the whole batch, each piece's
    weighted by its share of the batch (the mean loss's gradient of the whole batch is
    that weighted sum); dx is then the formula with those sums in place of the piece's,
    divided by the piece's share (what the weighted gradient average restores).
    dgamma and dbeta stay the piece's own.
    """
    dtype = cache.invstd.dtype
    dy = np.asarray(dy, dtype=dtype)
    if dy.ndim != 4 or dy.shape[1] != cache.invstd.shape[0]:
        raise ShapeError(f"batch_norm2d_backward: dy has shape {dy.shape}, the forward had "
                         f"{cache.invstd.shape[0]} channels (N, C, H, W)")
    if reduce is not None:
        if cache.relu_out is not None:
            dy = relu_backward(dy, cache.relu_out)
        return _synced_backward(dy, cache, reduce)
    dx, dgamma, dbeta = registry.get(OP, cache.algorithm).backward(dy, cache)
    return (dx, dgamma if cache.gamma is not None else None,
            dbeta if cache.has_beta else None)


def batch_norm2d_fold(weight: np.ndarray, bias: np.ndarray | None, gamma: np.ndarray | None,
                      beta: np.ndarray | None, running_mean: np.ndarray,
                      running_var: np.ndarray, eps: float = 1e-5
                      ) -> tuple[np.ndarray, np.ndarray]:
    """A convolution followed by an evaluation-mode batch norm as one convolution.

    ``bn(conv(x, W, b)) = conv(x, W', b')`` with, per output channel o,
    ``s[o] = gamma[o] / sqrt(running_var[o] + eps)``, ``W'[o] = s[o] W[o]`` and
    ``b'[o] = s[o] (b[o] - running_mean[o]) + beta[o]`` (b, gamma, beta None: 0, 1, 0).
    weight (C_out, ...) any conv weight layout with the output channels first; returns
    (W', b') in the weight's dtype, computed in float64 (each a correctly rounded
    product: the folded conv equals conv then batch norm to rounding).
    """
    c = weight.shape[0]
    scale = 1.0 / np.sqrt(np.asarray(running_var, np.float64) + eps)
    if gamma is not None:
        scale = scale * gamma
    shift = -np.asarray(running_mean, np.float64) if bias is None \
        else bias.astype(np.float64) - running_mean
    shift = shift * scale + (0.0 if beta is None else beta.astype(np.float64))
    w = (weight.astype(np.float64) * scale.reshape(c, *(1,) * (weight.ndim - 1)))
    return w.astype(weight.dtype), shift.astype(weight.dtype)


def batch_norm2d_sums(x: np.ndarray, shift: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """``(M, sum (x - shift), sum (x - shift)^2)`` per channel of x (N, C, H, W), in
    float64: what a batch split between processes adds up to get its statistics
    (``mu = shift + S1 / M``, ``var = S2 / M - (S1 / M)^2``; a shift near the mean, the
    same on every process, keeps that difference exact to rounding)."""
    d = x.astype(np.float64) - np.asarray(shift, np.float64)[:, None, None]
    return x.shape[0] * x.shape[2] * x.shape[3], d.sum(axis=AXES), np.square(d).sum(axis=AXES)


def _synced_backward(dy: np.ndarray, cache: BatchNormCache,
                     reduce: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
                     ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    if cache.algorithm != "numpy" or not cache.batch_stats:
        raise ClearConvError("batch_norm2d_backward(reduce=...) needs a training-mode forward "
                             "by algorithm='numpy' with batch_stats")
    xhat = cache.saved
    dbeta = dy.sum(axis=AXES)
    dgamma = (dy * xhat).sum(axis=AXES)
    total_dbeta, total_dgamma = reduce(dbeta.astype(np.float64), dgamma.astype(np.float64))
    m = dy.size // dy.shape[1]                  # this piece's values per channel
    scale = cache.invstd if cache.gamma is None else cache.gamma * cache.invstd
    g1 = (total_dbeta / m).astype(dy.dtype)[:, None, None]
    g2 = (total_dgamma / m).astype(dy.dtype)[:, None, None]
    dx = (dy - g1 - xhat * g2) * scale[:, None, None]
    return (dx, dgamma if cache.gamma is not None else None,
            dbeta if cache.has_beta else None)


# ------------------------------------------------------------------ the readable algorithm
AXES = (0, 2, 3)     # what a channel's statistics sum over: the batch and the pixels


def numpy_forward(x: np.ndarray, gamma: np.ndarray | None, beta: np.ndarray | None,
                  stats: tuple[np.ndarray, np.ndarray] | None, eps: float,
                  relu: bool = False
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(y, mu, var, xhat)``: the batch's mu and biased var when ``stats`` is None, else
    the given (running) ones; y is ``max(y, 0)`` with ``relu``."""
    if stats is None:
        mean = x.mean(axis=AXES)
        var = np.square(x - mean[:, None, None]).mean(axis=AXES)
    else:
        mean, var = (s.astype(x.dtype, copy=False) for s in stats)
    invstd = (1.0 / np.sqrt(var.astype(np.float64) + eps)).astype(x.dtype)
    xhat = (x - mean[:, None, None]) * invstd[:, None, None]
    y = xhat if gamma is None else xhat * gamma[:, None, None]
    if beta is not None:
        y = y + beta[:, None, None]
    if relu:
        y = np.maximum(y, 0, out=y) if y is not xhat else np.maximum(y, 0)
    return y, mean, var, xhat


def numpy_backward(dy: np.ndarray, cache: BatchNormCache
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xhat, invstd = cache.saved, cache.invstd
    if cache.relu_out is not None:        # the ReLU's backward first (MATH.md §9)
        dy = relu_backward(dy, cache.relu_out)
    dbeta = dy.sum(axis=AXES)
    dgamma = (dy * xhat).sum(axis=AXES)
    scale = invstd if cache.gamma is None else cache.gamma * invstd
    if not cache.batch_stats:          # running statistics: constants
        return dy * scale[:, None, None], dgamma, dbeta
    m = dy.size // dy.shape[1]
    dx = (dy - (dbeta / m)[:, None, None] - xhat * (dgamma / m)[:, None, None]) \
        * scale[:, None, None]
    return dx, dgamma, dbeta


def _supports_any(call: Any) -> tuple[bool, str]:
    return True, "any shape and layout, whole-array NumPy"


registry.register(registry.Algorithm(
    OP, "numpy", _supports_any, numpy_forward, numpy_backward,
    "the readable path: the statistics and the output as whole-array NumPy expressions"))


# ------------------------------------------------------------------------------ 1-D form
class BatchNorm1dCache(NamedTuple):
    shape: tuple[int, ...]      # x's shape: (N, C) or (N, C, L)
    cache: BatchNormCache       # of the 2-D op on x as (N, C, L, 1)


def _as_2d(x: np.ndarray, op: str) -> np.ndarray:
    if x.ndim not in (2, 3):
        raise ShapeError(f"{op} expects input of shape (N, C) or (N, C, L), got shape "
                         f"{tuple(x.shape)} ({x.ndim} dimensions)")
    return x.reshape(x.shape[0], x.shape[1], -1, 1)


def batch_norm1d_forward(x: np.ndarray, gamma: np.ndarray | None, beta: np.ndarray | None,
                         running_mean: np.ndarray | None, running_var: np.ndarray | None,
                         training: bool, momentum: float = 0.1, eps: float = 1e-5,
                         algorithm: str = "auto", relu: bool = False
                         ) -> tuple[np.ndarray, BatchNorm1dCache]:
    """Batch normalisation of Dense outputs (N, C) or signals (N, C, L), as
    ``torch.nn.BatchNorm1d``: :func:`batch_norm2d_forward` on the view (N, C, L, 1)
    (statistics over N, or over N and L; ``relu`` as there). Returns y of x's shape and
    the cache."""
    x = as_float(x)
    y, cache = batch_norm2d_forward(_as_2d(x, "batch_norm1d"), gamma, beta, running_mean,
                                    running_var, training, momentum, eps, algorithm,
                                    relu=relu)
    return y.reshape(x.shape), BatchNorm1dCache(tuple(x.shape), cache)


def batch_norm1d_backward(dy: np.ndarray, cache: BatchNorm1dCache
                          ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Backward of :func:`batch_norm1d_forward`: ``(dx, dgamma, dbeta)``, dx of x's shape."""
    dy = np.asarray(dy)
    if dy.shape != cache.shape:
        raise ShapeError(f"batch_norm1d_backward: dy has shape {dy.shape}, the forward input "
                         f"was {cache.shape}")
    dx, dgamma, dbeta = batch_norm2d_backward(_as_2d(dy, "batch_norm1d_backward"), cache.cache)
    return dx.reshape(cache.shape), dgamma, dbeta
