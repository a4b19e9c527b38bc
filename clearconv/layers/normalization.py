"""Batch normalisation layers, as PyTorch's ``nn.BatchNorm2d`` and ``nn.BatchNorm1d``.

A batch-norm layer holds the learned scale and shift (``weight`` = gamma, ``bias`` = beta,
Parameters) and the running statistics (``running_mean``, ``running_var``,
``num_batches_tracked``: buffers, saved with the model and checkpointed, but not
trained). The math is :mod:`clearconv.functional.normalization`.

Which statistics a forward uses follows PyTorch: a pass that records for backward
(``forward(x, training=True)``: ``train_step``, ``fit``) in a layer in training mode
(``layer.train()``, the default) normalises with the batch's statistics and updates the
running ones; every other pass (``predict``, ``evaluate``, ``model(x)``, or any pass
after ``model.eval()``) with the running statistics. ``track_running_stats=False``
keeps no running statistics and always uses the batch's.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..errors import ClearConvError, ShapeError
from ..functional import (
    batch_norm1d_backward,
    batch_norm1d_forward,
    batch_norm2d_backward,
    batch_norm2d_forward,
)
from ..functional.normalization import batch_norm2d_sums, update_running_stats
from .base import Layer, _spend_weights
from .parameter import Parameter


class _SyncedCache(NamedTuple):
    shape: tuple[int, ...]       # x's shape
    cache: Any                   # batch_norm2d_forward's, of x as (N, C, H, W)
    share: float                 # this piece's part of the whole batch


class _BatchNorm(Layer):
    """What BatchNorm2D and BatchNorm1D share: parameters, buffers, modes, config."""

    _abstract = True
    _forward_op: Any
    _backward_op: Any
    #: set by :class:`~clearconv.train.distributed.DataParallel` with
    #: ``sync_batch_norm=True``: adds up the batch statistics over the processes
    #: (``forward_sums(count, s1, s2)`` and ``backward_sums(g1, g2)``)
    sync: Any = None

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 dtype: np.dtype | type | str = np.float32) -> None:
        if isinstance(num_features, bool) or not isinstance(num_features, (int, np.integer)) \
                or num_features < 1:
            raise ClearConvError(f"{type(self).__name__}: num_features must be a positive "
                                 f"integer, got {num_features!r}")
        if not float(eps) > 0:
            raise ClearConvError(f"{type(self).__name__}: eps must be > 0, got {eps}")
        if momentum is not None and not 0.0 <= float(momentum) <= 1.0:
            raise ClearConvError(f"{type(self).__name__}: momentum must be in [0, 1] or None "
                                 f"(a cumulative average), got {momentum}")
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        dtype = np.dtype(dtype)
        c = self.num_features
        _spend_weights((4, c))   # scale, shift and the two running statistics
        # BN's scale and shift take no weight decay (as a bias does): decay would pull
        # the scale of each channel towards 0, which normalisation makes meaningless
        self.weight = Parameter(np.ones(c, dtype), "weight", decay=False) if affine else None
        self.bias = Parameter(np.zeros(c, dtype), "bias", decay=False) if affine else None
        self.running_mean: np.ndarray | None = None
        self.running_var: np.ndarray | None = None
        self.num_batches_tracked: np.ndarray | None = None
        if self.track_running_stats:
            self.running_mean = np.zeros(c, dtype)
            self.running_var = np.ones(c, dtype)
            self.num_batches_tracked = np.zeros((), np.int64)
        self._cache: Any = None

    # ------------------------------------------------------------------ the math
    def _check(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim < 2 or x.shape[1] != self.num_features:
            raise ShapeError(f"{type(self).__name__}({self.num_features}) expects "
                             f"{self.num_features} channels (axis 1), got input of shape "
                             f"{tuple(x.shape)}")
        return x

    def uses_batch_stats(self, training: bool) -> bool:
        """Whether a forward with this ``training`` flag normalises with the batch's
        statistics (and updates the running ones): when it records for backward in
        training mode, or always without running statistics; else it uses the running
        statistics, a fixed affine map per channel."""
        return (training and self.training) or not self.track_running_stats

    def forward(self, x: np.ndarray, training: bool = False, relu: bool = False
                ) -> np.ndarray:
        """Normalise x. ``training`` records for backward; the batch's statistics are used
        (and the running ones updated) when it is set and the layer is in training mode,
        or when the layer keeps no running statistics (:meth:`uses_batch_stats`).

        ``relu``: return ``max(y, 0)`` from the same pass, and let backward take the
        gradient of that (the model's fusion pass runs a batch norm and the ReLU after
        it so: :mod:`clearconv.train.fusion`)."""
        x = self._check(x)
        batch_stats = self.uses_batch_stats(training)
        momentum = self.momentum
        if batch_stats and self.track_running_stats:
            assert self.num_batches_tracked is not None
            self.num_batches_tracked += 1
            if momentum is None:      # a cumulative average of every batch so far
                momentum = 1.0 / float(self.num_batches_tracked)
        if batch_stats and self.sync is not None:
            return self._synced_forward(x, training, 0.0 if momentum is None else momentum,
                                        relu)
        y, cache = type(self)._forward_op(
            x, None if self.weight is None else self.weight.value,
            None if self.bias is None else self.bias.value,
            self.running_mean, self.running_var, batch_stats,
            0.0 if momentum is None else momentum, self.eps, relu=relu)
        self._cache = cache if training else None
        return y

    def _synced_forward(self, x: np.ndarray, training: bool, momentum: float,
                        relu: bool = False) -> np.ndarray:
        """Training with the statistics of the whole batch, split between processes: the
        per-channel count, sum and sum of squares of this piece are added up over the
        processes by ``self.sync`` (one reduction), the running statistics updated from
        the totals (the same on every process), and backward adds up the two gradient
        sums the same way (:func:`~clearconv.functional.batch_norm2d_backward`'s
        ``reduce``)."""
        shape = x.shape
        x4 = x.reshape(shape[0], shape[1], -1, 1) if x.ndim != 4 else x
        x4 = np.asarray(x4, dtype=np.result_type(x4.dtype, np.float32))
        count, s1, s2 = batch_norm2d_sums(x4, self._shift())
        mean, var, total = self._global_stats(count, s1, s2, momentum)
        y, cache = batch_norm2d_forward(
            x4, None if self.weight is None else self.weight.value,
            None if self.bias is None else self.bias.value, None, None, True,
            eps=self.eps, algorithm="numpy", batch_stats=(mean, var), relu=relu)
        share = count / total           # this piece's part of the batch
        self._cache = _SyncedCache(shape, cache, share) if training else None
        return y.reshape(shape)

    def _shift(self) -> np.ndarray:
        """The running mean (equal on every process: they update it alike), or zeros."""
        return np.asarray(self.running_mean, np.float64) if self.running_mean is not None \
            else np.zeros(self.num_features)

    def _global_stats(self, count: int, s1: np.ndarray, s2: np.ndarray, momentum: float
                      ) -> tuple[np.ndarray, np.ndarray, float]:
        """The whole batch's mean and biased variance from this piece's sums (added up by
        ``self.sync``), the running statistics updated from them; and the total count."""
        shift = self._shift()
        total, t1, t2 = self.sync.forward_sums(count, s1, s2)
        mean_shifted = t1 / total
        mean = shift + mean_shifted
        var = np.maximum(t2 / total - mean_shifted * mean_shifted, 0.0)
        if self.track_running_stats:
            update_running_stats(self.running_mean, self.running_var, mean, var, int(total),
                                 momentum)
        return mean, var, total

    def synced_idle_step(self) -> None:
        """A training step in which this process has no sample: take part in the batch
        statistics' reduction with nothing, and update the running statistics (and
        ``num_batches_tracked``) from the whole batch's, as the other processes do."""
        momentum = self.momentum
        if self.track_running_stats:
            self.num_batches_tracked += 1
            if momentum is None:
                momentum = 1.0 / float(self.num_batches_tracked)
        zeros = np.zeros(self.num_features)
        self._global_stats(0, zeros, zeros, 0.0 if momentum is None else momentum)

    def _synced_backward(self, dy: np.ndarray) -> tuple[Any, Any, Any]:
        shape, cache, share = self._need_cache(self._cache)
        dy4 = np.asarray(dy).reshape(cache.saved.shape)
        dx, dgamma, dbeta = batch_norm2d_backward(
            dy4, cache, reduce=lambda a, b: self.sync.backward_sums(share * a, share * b))
        return dx.reshape(shape), dgamma, dbeta

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if isinstance(self._cache, _SyncedCache):
            dx, dgamma, dbeta = self._synced_backward(dy)
        else:
            dx, dgamma, dbeta = type(self)._backward_op(dy, self._need_cache(self._cache))
        if self.weight is not None:
            self.weight.grad += dgamma
        if self.bias is not None:
            self.bias.grad += dbeta
        self._cache = None
        return dx

    # ------------------------------------------------------------ state and config
    def parameters(self) -> list[Parameter]:
        return [p for p in (self.weight, self.bias) if p is not None]

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        return [(local, p) for local, p in (("weight", self.weight), ("bias", self.bias))
                if p is not None]

    def named_buffers(self) -> list[tuple[str, np.ndarray]]:
        """``[('running_mean', ...), ('running_var', ...), ('num_batches_tracked', ...)]``
        (PyTorch's names; empty with ``track_running_stats=False``)."""
        if not self.track_running_stats:
            return []
        return [("running_mean", self.running_mean), ("running_var", self.running_var),
                ("num_batches_tracked", self.num_batches_tracked)]

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches tracked (as PyTorch)."""
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def astype(self, dtype: np.dtype | type) -> Layer:
        super().astype(dtype)
        if self.track_running_stats:
            self.running_mean = self.running_mean.astype(dtype)
            self.running_var = self.running_var.astype(dtype)
        return self

    def n_params(self) -> int:
        return 2 * self.num_features if self.affine else 0

    def get_config(self) -> dict[str, Any]:
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum,
                "affine": self.affine, "track_running_stats": self.track_running_stats}


class BatchNorm2D(_BatchNorm):
    """Batch normalisation of (N, C, H, W) input over N, H and W, per channel, as
    ``torch.nn.BatchNorm2d``: ``y = (x - mu) / sqrt(var + eps) * weight + bias``.

    Parameters
    ----------
    num_features : C, the channels of the input
    eps : added to the variance under the square root
    momentum : weight of each batch in the running statistics (PyTorch's convention:
        ``running = (1 - momentum) running + momentum batch``); None: the cumulative
        average of every batch so far
    affine : learn a scale ``weight`` (ones) and shift ``bias`` (zeros) per channel
    track_running_stats : keep ``running_mean`` / ``running_var`` for evaluation; without
        them every pass normalises with its batch's statistics

    Examples
    --------
    >>> bn = BatchNorm2D(3)
    >>> y = bn.forward(np.random.default_rng(0).normal(5, 2, (8, 3, 4, 4)), training=True)
    >>> bool(abs(y.mean()) < 1e-5), bn.num_batches_tracked.item()
    (True, 1)
    """

    _forward_op = staticmethod(batch_norm2d_forward)
    _backward_op = staticmethod(batch_norm2d_backward)

    def _check(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 4:
            raise ShapeError(f"BatchNorm2D expects input of shape (N, C, H, W), got shape "
                             f"{tuple(x.shape)} ({x.ndim} dimensions)")
        return super()._check(x)

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(in_shape) != 3 or in_shape[0] != self.num_features:
            raise ShapeError(f"BatchNorm2D({self.num_features}) expects per-sample input "
                             f"({self.num_features}, H, W), got {tuple(in_shape)}")
        return tuple(in_shape)


class BatchNorm1D(_BatchNorm):
    """Batch normalisation of Dense outputs (N, C) or signals (N, C, L), per feature, as
    ``torch.nn.BatchNorm1d`` (statistics over N, or over N and L). Same parameters as
    :class:`BatchNorm2D`.

    >>> BatchNorm1D(4).forward(np.ones((2, 4), np.float32)).shape
    (2, 4)
    """

    _forward_op = staticmethod(batch_norm1d_forward)
    _backward_op = staticmethod(batch_norm1d_backward)

    def _check(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim not in (2, 3):
            raise ShapeError(f"BatchNorm1D expects input of shape (N, C) or (N, C, L), got "
                             f"shape {tuple(x.shape)} ({x.ndim} dimensions)")
        return super()._check(x)

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(in_shape) not in (1, 2) or in_shape[0] != self.num_features:
            raise ShapeError(f"BatchNorm1D({self.num_features}) expects per-sample input "
                             f"({self.num_features},) or ({self.num_features}, L), got "
                             f"{tuple(in_shape)}")
        return tuple(in_shape)


#: PyTorch's spelling of the names
BatchNorm2d = BatchNorm2D
BatchNorm1d = BatchNorm1D

__all__ = ["BatchNorm1D", "BatchNorm1d", "BatchNorm2D", "BatchNorm2d"]
