"""Keras-style callbacks for :meth:`clearconv.Sequential.fit`.

A callback sees ``on_train_begin(model)``, ``on_epoch_end(epoch, logs)`` (``logs`` holds
``loss``, ``accuracy`` and, with validation data, ``val_loss``, ``val_accuracy``),
``on_batch_end(step, logs)`` and ``on_train_end(logs)``. It stops training by setting
``model.stop_training = True``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ClearConvError

if TYPE_CHECKING:
    from .sequential import Sequential


class Callback:
    """Base class: every hook does nothing."""

    model: Sequential

    def set_model(self, model: Sequential) -> None:
        self.model = model

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        pass

    def on_batch_end(self, step: int, logs: dict[str, Any]) -> None:
        pass

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        pass


def _better(mode: str, monitor: str) -> str:
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    if mode not in ("min", "max"):
        raise ClearConvError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    return mode


def _monitored(logs: dict[str, Any], monitor: str, who: str) -> float:
    if monitor not in logs:
        raise ClearConvError(
            f"{who} monitors {monitor!r}, but the epoch logs only have {sorted(logs)} "
            f"(val_* needs validation_data)")
    return float(logs[monitor])


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    With ``restore_best_weights`` the model gets the weights of its best epoch back.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False) -> None:
        self.monitor = monitor
        self.patience = int(patience)
        self.min_delta = abs(float(min_delta))
        self.mode = _better(mode, monitor)
        self.restore_best_weights = restore_best_weights
        self.stopped_epoch: int | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.best_state: dict[str, np.ndarray] | None = None
        self.stopped_epoch = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        value = _monitored(logs, self.monitor, "EarlyStopping")
        improved = (value < self.best - self.min_delta if self.mode == "min"
                    else value > self.best + self.min_delta)
        if improved:
            self.best, self.wait = value, 0
            if self.restore_best_weights:
                self.best_state = {k: v.copy() for k, v in self.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_state is not None:
                self.model.load_state_dict(self.best_state)


class ModelCheckpoint(Callback):
    """Save the model to ``filepath`` after each epoch (``{epoch}`` in the name is filled in).

    With ``save_best_only`` a save happens only when ``monitor`` improves. Each write is
    atomic (see :func:`clearconv.io.save_arrays`).
    """

    def __init__(self, filepath: str, monitor: str = "val_loss", save_best_only: bool = False,
                 mode: str = "auto") -> None:
        self.filepath = str(filepath)
        self.monitor = monitor
        self.save_best_only = save_best_only
        self.mode = _better(mode, monitor)
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        path = self.filepath.format(epoch=epoch + 1, **{k: v for k, v in logs.items()
                                                        if isinstance(v, (int, float))})
        if self.save_best_only:
            value = _monitored(logs, self.monitor, "ModelCheckpoint")
            if not (value < self.best if self.mode == "min" else value > self.best):
                return
            self.best = value
        self.model.save(path)


class TerminateOnNaN(Callback):
    """Stop training quietly (no exception) when a batch loss is NaN or Inf.

    Without this callback, :meth:`~clearconv.Sequential.fit` raises
    :class:`~clearconv.errors.NumericalError` instead. Either way the weights of the
    failing step are not applied.
    """

    def __init__(self) -> None:
        #: (epoch, step), both from 0, of the failing step; None while training is fine
        self.terminated_at: tuple[int, int] | None = None
        #: what went wrong, naming the layer, epoch and step
        self.message: str | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.terminated_at = None
        self.message = None


class LearningRateScheduler(Callback):
    """Step a :mod:`clearconv.optim` schedule (StepLR, CosineAnnealingLR) after every epoch."""

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        self.scheduler.step()
        logs["lr"] = self.scheduler.get_last_lr()[0]
