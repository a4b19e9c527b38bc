"""Keras-style callbacks for :meth:`clearconv.Sequential.fit`.

A callback sees ``on_train_begin()``, ``on_batch_end(step, logs)`` (``logs`` holds the
batch ``loss``), ``on_epoch_end(epoch, logs)`` (``logs`` holds ``loss``, ``accuracy`` (for
a classifier's loss), ``seconds`` and, with validation data, ``val_loss``, ``val_accuracy``;
a callback may add to it, as :class:`LearningRateScheduler` adds ``lr``, and the epoch's
:class:`~clearconv.train.loop.History` entry is taken after every callback has run) and
``on_train_end()``. It stops training by setting ``model.stop_training = True``. The loop
sets ``callback.model`` (the :class:`~clearconv.Sequential`) and ``callback.trainer`` (the
running :class:`~clearconv.train.loop.Trainer`: optimizer, position, history) first.

Every callback has ``state_dict()`` / ``load_state_dict(state)``, as PyTorch objects do:
what it must remember across a resume (a best value, a patience count, the schedule's
epoch). :class:`BackupAndRestore` stores the states of the other callbacks in its
checkpoint and restores them, so a resumed run is the uninterrupted run. A state is a
flat dict of numbers, arrays, strings, None or lists of numbers; numbers come back as
0-d arrays (as from ``np.load``).
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ClearConvError
from .checkpoint import FILENAME, checkpoint_path, load_checkpoint

if TYPE_CHECKING:
    from .loop import Trainer
    from .optim import LRScheduler
    from .sequential import Sequential


class Callback:
    """Base class: every hook does nothing and there is no state to keep."""

    model: Sequential
    trainer: Trainer

    def set_model(self, model: Sequential) -> None:
        self.model = model

    def set_trainer(self, trainer: Trainer) -> None:
        self.trainer = trainer

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        pass

    def on_batch_end(self, step: int, logs: dict[str, Any]) -> None:
        pass

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        """What this callback must remember across a resume (``{}``: nothing)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`."""
        _check_keys(self, state, set())


def _check_keys(cb: Callback, state: dict[str, Any], required: set[str],
                prefix: str | None = None) -> None:
    """ClearConvError naming the missing and unexpected keys of a callback's state
    (``prefix``: keys starting with it are allowed too)."""
    given = set(state)
    missing = sorted(required - given)
    unexpected = sorted(k for k in given - required if prefix is None or not k.startswith(prefix))
    if missing or unexpected:
        raise ClearConvError(f"{type(cb).__name__} state does not match: missing keys "
                             f"{missing}, unexpected keys {unexpected}")


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(np.asarray(value))


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
    State: ``best``, ``wait``, ``stopped_epoch`` and, with ``restore_best_weights``, the
    best weights as ``best_state.<parameter name>`` arrays.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False) -> None:
        self.monitor = monitor
        self.patience = int(patience)
        self.min_delta = abs(float(min_delta))
        self.mode = _better(mode, monitor)
        self.restore_best_weights = restore_best_weights
        self._reset()

    def _reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.best_state: dict[str, np.ndarray] | None = None
        self.stopped_epoch: int | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._reset()

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

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"best": self.best, "wait": self.wait,
                                 "stopped_epoch": self.stopped_epoch}
        for name, value in (self.best_state or {}).items():
            state[f"best_state.{name}"] = value.copy()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _check_keys(self, state, {"best", "wait", "stopped_epoch"}, prefix="best_state.")
        self.best = float(np.asarray(state["best"]))
        self.wait = int(np.asarray(state["wait"]))
        self.stopped_epoch = _optional_int(state["stopped_epoch"])
        weights = {k[len("best_state."):]: np.array(v) for k, v in state.items()
                   if k.startswith("best_state.")}
        self.best_state = weights or None


class ModelCheckpoint(Callback):
    """Save the model to ``filepath`` after each epoch (``{epoch}`` in the name is filled in).

    With ``save_best_only`` a save happens only when ``monitor`` improves. Each write is
    atomic (see :func:`clearconv.io.save_arrays`). State: ``best``.
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

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _check_keys(self, state, {"best"})
        self.best = float(np.asarray(state["best"]))


class TerminateOnNaN(Callback):
    """Stop training quietly (no exception) when a batch loss is NaN or Inf.

    Without this callback, :meth:`~clearconv.Sequential.fit` raises
    :class:`~clearconv.errors.NumericalError` instead. Either way the weights of the
    failing step are not applied. State: ``terminated_at`` and ``message``.
    """

    def __init__(self) -> None:
        #: (epoch, step), both from 0, of the failing step; None while training is fine
        self.terminated_at: tuple[int, int] | None = None
        #: what went wrong, naming the layer, epoch and step
        self.message: str | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.terminated_at = None
        self.message = None

    def state_dict(self) -> dict[str, Any]:
        at = None if self.terminated_at is None else list(self.terminated_at)
        return {"terminated_at": at, "message": self.message}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _check_keys(self, state, {"terminated_at", "message"})
        at = state["terminated_at"]
        self.terminated_at = None if at is None else (int(at[0]), int(at[1]))
        self.message = None if state["message"] is None else str(state["message"])


class LearningRateScheduler(Callback):
    """Step a :mod:`clearconv.optim` schedule (StepLR, CosineAnnealingLR) after every
    epoch and put the new rate in the epoch's logs as ``lr``.

    State: the schedule's own :meth:`~clearconv.optim.LRScheduler.state_dict`
    (``last_epoch``, ``base_lr`` and its hyper-parameters).
    """

    def __init__(self, scheduler: LRScheduler) -> None:
        self.scheduler = scheduler

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        self.scheduler.step()
        logs["lr"] = self.scheduler.get_last_lr()[0]

    def state_dict(self) -> dict[str, Any]:
        return dict(self.scheduler.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)


class BackupAndRestore(Callback):
    """Back the whole run up to ``backup_dir`` and resume from it (as Keras's callback).

    ``backup_dir/checkpoint.npz`` (:mod:`clearconv.train.checkpoint`, atomic, no pickle)
    holds the model, the optimizer, the state of every other callback (schedules
    included), the random generators, the position (epoch and step), the history and the
    run's ``options``. It is written

    * when a fresh run begins (its starting point, so that a run killed in its first
      epoch resumes too),
    * after every epoch, once the other callbacks have run, whatever this callback's
      place in the list,
    * every ``save_freq`` steps as well when ``save_freq`` is an int,
    * on Ctrl-C, between two steps; ``fit`` then raises KeyboardInterrupt.

    With ``resume=True`` and a checkpoint in ``backup_dir``, training continues from it:
    killed at any point (even ``kill -9``) and resumed with the same data, seed, batch size
    and callbacks, the final weights are bit-identical to those of an uninterrupted run.
    ``resume=False`` starts afresh and overwrites the folder's checkpoint.

    Parameters
    ----------
    backup_dir : the folder (created if missing)
    resume : continue from the folder's checkpoint if there is one (Keras's behaviour)
    save_freq : ``"epoch"``, or an int N to save after every N steps too
    options : JSON-able data saved with every checkpoint, e.g. what is needed to rebuild
        the run elsewhere (``clearconv train`` keeps its recipe and data options there);
        :meth:`saved_options` reads them back

    Notes
    -----
    Unlike Keras's callback, the checkpoint stays when training ends: a later run with
    more epochs continues it.
    """

    def __init__(self, backup_dir: str | os.PathLike[str], resume: bool = True,
                 save_freq: int | str = "epoch", options: dict[str, Any] | None = None) -> None:
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int)
                                     or save_freq < 1):
            raise ClearConvError(f"save_freq must be 'epoch' or an int >= 1, got {save_freq!r}")
        if options is not None and not isinstance(options, dict):
            raise ClearConvError(f"options must be a dict, got {type(options).__name__}")
        self.backup_dir = os.fspath(backup_dir)
        self.resume = bool(resume)
        self.save_freq = save_freq
        self.options = options
        #: (epoch, step), both from 0, where the run resumed; None for a fresh run
        self.resumed_from: tuple[int, int] | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.resumed_from = None
        if self.resume and os.path.exists(checkpoint_path(self.backup_dir)):
            self.trainer.restore(load_checkpoint(self.backup_dir))
            self.resumed_from = (self.trainer.state.epoch, self.trainer.state.step)
        else:
            self.backup()

    def on_batch_end(self, step: int, logs: dict[str, Any]) -> None:
        if isinstance(self.save_freq, int) and self.trainer.global_step % self.save_freq == 0:
            self.backup()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        self.backup()

    def backup(self) -> str:
        """Write the checkpoint now; returns its path."""
        return self.trainer.save_checkpoint(self.backup_dir, self.options)

    @staticmethod
    def saved_options(backup_dir: str | os.PathLike[str]) -> dict[str, Any]:
        """The ``options`` stored with the checkpoint in ``backup_dir`` (``{}`` if none).

        Raises ClearConvError when the folder holds no checkpoint, ModelFileError when
        its checkpoint is damaged.
        """
        directory = os.fspath(backup_dir)
        if not os.path.exists(checkpoint_path(directory)):
            raise ClearConvError(f"nothing to resume in {directory}: no {FILENAME} there (a run "
                                 f"with BackupAndRestore({directory!r}) writes one)")
        return dict(load_checkpoint(directory).options or {})
