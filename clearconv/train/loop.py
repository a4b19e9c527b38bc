"""The training loop behind :meth:`Sequential.fit`: one :class:`Trainer` per run.

``model.fit(x, y, ...)`` is ``Trainer(model, x, y, ...).run()``. The trainer holds what
the run is (model, data, optimizer, callbacks, settings) and where it stands (a
:class:`~clearconv.train.checkpoint.TrainState`: epoch, step, the shuffling generator's
state at the start of the epoch, the running totals), and it writes all of that to a
checkpoint and takes it back (:meth:`Trainer.save_checkpoint`, :meth:`Trainer.restore`);
:class:`~clearconv.train.callbacks.BackupAndRestore` decides when.

One epoch, in order:

1. the batch order, a permutation drawn from the shuffling generator restored from
   ``state.epoch_rng`` (so a resumed epoch draws the same one);
2. each step: if Ctrl-C was pressed (with a backup callback), save and raise
   KeyboardInterrupt; the batch ``x[order[step*B:(step+1)*B]]``; ``augment(batch, rng)``
   with a generator seeded by (seed, epoch, step); ``model.train_step``; the running
   loss and accuracy; every callback's ``on_batch_end``, then the backups';
3. the epoch's logs (``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``,
   ``seconds``) and the progress line; every callback's ``on_epoch_end`` (which may add
   to the logs, e.g. ``lr``); the :class:`History` entry; the position moved to the next
   epoch; then the backups' ``on_epoch_end``, so their checkpoint holds all of the above.
"""

from __future__ import annotations

import copy
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ClearConvError, ModelFileError, NumericalError, ShapeError
from ..kernels import jit
from ..kernels.allocator import tune_allocator
from ..kernels.threads import region
from .callbacks import BackupAndRestore, Callback, TerminateOnNaN
from .checkpoint import (
    Checkpoint,
    TrainState,
    checkpoint_path,
    generator_from_state,
    generator_state,
    save_checkpoint,
)
from .distributed import as_group
from .losses import Loss, get_loss
from .optim import Adam, Optimizer

if TYPE_CHECKING:
    from .sequential import Sequential


@dataclass
class History:
    """What :meth:`Sequential.fit` returns: per-epoch metrics.

    ``history`` maps ``'loss'``, ``'accuracy'`` (and ``'val_loss'``, ``'val_accuracy'``
    with validation data, ``'seconds'``, and what callbacks add such as ``'lr'``) to
    lists with one value per epoch.
    """

    history: dict[str, list[float]] = field(default_factory=dict)
    epochs: int = 0

    def append(self, logs: dict[str, float]) -> None:
        for k, v in logs.items():
            self.history.setdefault(k, []).append(float(v))
        self.epochs += 1

    @classmethod
    def from_dict(cls, history: dict[str, list[float]]) -> History:
        """A History holding ``history`` (as saved in a checkpoint)."""
        values = {k: [float(v) for v in vs] for k, vs in history.items()}
        return cls(values, max((len(vs) for vs in values.values()), default=0))


class Trainer:
    """One run of mini-batch training; :meth:`Sequential.fit` documents the arguments.

    Attributes
    ----------
    model, optimizer : what trains and how
    steps : mini-batches per epoch, ``ceil(N / batch_size)``
    state : :class:`~clearconv.train.checkpoint.TrainState`, where the run stands
    history : :class:`History` of the epochs done so far
    callbacks, backups : the callbacks, the :class:`BackupAndRestore` ones apart (they
        run after the others)
    """

    def __init__(self, model: Sequential, x: np.ndarray, y: np.ndarray, *, epochs: int = 1,
                 batch_size: int = 32, optimizer: Optimizer | None = None,
                 validation_data: tuple[np.ndarray, np.ndarray] | None = None,
                 shuffle: bool = True, callbacks: Iterable[Callback] = (), verbose: int = 1,
                 seed: int | None = None, augment: Any = None, distributed: Any = None,
                 loss: Loss | str | None = None) -> None:
        self.x, self.y = _checked_data(model, x, y, epochs, batch_size)
        self.model = model
        #: True when ``fit`` named the loss (a resumed run then checks it is the saved one)
        self.loss_given = loss is not None
        if loss is not None:
            model.loss_fn = get_loss(loss)
        self._check_loss()
        self.group = as_group(distributed)
        self.epochs, self.batch_size = int(epochs), int(batch_size)
        self.optimizer = optimizer if optimizer is not None else Adam(model.parameters(), lr=1e-3)
        self.validation_data = validation_data
        self.shuffle, self.seed, self.augment = shuffle, seed, augment
        self.verbose = verbose if self.group.root else 0
        #: the global batch: ``batch_size`` samples on each of the group's ranks
        self.global_batch = self.batch_size * self.group.size
        self.steps = -(-len(self.x) // self.global_batch)
        _check_last_batch(model, len(self.x), self.batch_size, self.group.size,
                          synced=getattr(self.group, "sync_batch_norm", False))
        callbacks = list(callbacks)
        self.backups = [cb for cb in callbacks if isinstance(cb, BackupAndRestore)]
        self.callbacks = [cb for cb in callbacks if not isinstance(cb, BackupAndRestore)]
        self._nan_stop = next((cb for cb in self.callbacks if isinstance(cb, TerminateOnNaN)),
                              None)
        rng = np.random.default_rng(seed)
        self.dropouts = _seed_dropouts(model, rng)
        self.state = TrainState(epoch_rng=generator_state(rng))
        self.history = History()
        self._started = False    # True while the epochs run (checkpoints wait at a barrier)

    def _check_loss(self) -> None:
        """Check the model's loss and the targets against it; set ``self.loss``."""
        model = self.model
        self.loss = model.loss_fn
        self.loss.check_training()
        out_shape = tuple(model.build(model.input_shape)[-1]) if model.layers \
            else tuple(model.input_shape)
        self.y = self.loss.check_target(self.y, out_shape)
        #: whether the epochs' logs hold an ``accuracy``
        self.accuracy = self.loss.reports_accuracy(out_shape)

    @property
    def global_step(self) -> int:
        """Steps trained so far in the whole run."""
        return self.state.epoch * self.steps + self.state.step

    @property
    def epoch_offset(self) -> int:
        """Where this epoch's steps start in its batch order: 0, except in an epoch resumed
        with another global batch (another number of ranks) than it began with."""
        return int(self.state.extra.get("epoch_offset", 0))

    def steps_in_epoch(self) -> int:
        """The steps of the current epoch (``steps`` unless it began at an offset)."""
        return -(-(len(self.x) - self.epoch_offset) // self.global_batch)

    # ------------------------------------------------------------------ the loop
    def run(self) -> History:
        """Train the remaining epochs; returns the History of the whole run."""
        everyone = self.callbacks + self.backups
        for cb in everyone:
            cb.set_model(self.model)
            cb.set_trainer(self)
        group = self.group
        # the backups last: a restore overrides the others' fresh state
        group.together(lambda: [cb.on_train_begin() for cb in everyone])
        group.begin(self)    # several ranks: all take rank 0's state
        self._started = True
        self.model.stop_training = False
        interrupt = _DeferredInterrupt(active=bool(self.backups) or group.size > 1)
        interrupt.install()
        tune_allocator()
        jit.load()   # every step of a run (resumed or not) takes the same algorithms
        try:
            # the thread policy once for the run, not per step
            with group.running(self), region():
                while self.state.epoch < self.epochs and self._run_epoch(interrupt):
                    pass
        finally:
            interrupt.restore()
            self._started = False
        for cb in everyone:
            cb.on_train_end()
        return self.history

    def _run_epoch(self, interrupt: _DeferredInterrupt) -> bool:
        """Train the rest of the current epoch; False when training must stop."""
        epoch, t0 = self.state.epoch, time.perf_counter()
        rng = generator_from_state(self.state.epoch_rng)  # type: ignore[arg-type]
        order = rng.permutation(len(self.x)) if self.shuffle else np.arange(len(self.x))
        steps = self.steps_in_epoch()
        bar = _progress(steps, epoch, self.epochs, self.verbose, self.state.step)
        while self.state.step < steps:
            if self.group.interrupted(interrupt.flag):
                self._save_and_stop(bar)
            if not self._train_batch(order, bar, t0, interrupt.flag):
                return False   # TerminateOnNaN stopped it: the failed epoch is not recorded
        logs = self._epoch_logs(t0)
        _report(bar, logs, epoch, self.epochs, self.verbose)
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)
        self.history.append(logs)
        self.group.end_epoch(self)
        st = self.state
        st.epoch, st.step, st.epoch_rng, st.totals = epoch + 1, 0, generator_state(rng), (0.0, 0, 0)
        st.extra.pop("epoch_offset", None)
        for cb in self.backups:
            cb.on_epoch_end(epoch, logs)
        return not self.model.stop_training

    def _train_batch(self, order: np.ndarray, bar: Any, t0: float, interrupted: bool) -> bool:
        """One step: batch, augmentation, gradients (averaged over the ranks), update,
        totals, callbacks. False after a NaN that TerminateOnNaN turns into a quiet stop."""
        st, group = self.state, self.group
        epoch, step = st.epoch, st.step
        start = self.epoch_offset + step * self.global_batch
        idx = order[start:start + self.global_batch]     # the global batch
        mine = group.piece(len(idx))                     # this rank's part of it
        if self.augment is not None:   # drawn for the global batch: the same whatever the ranks
            xb = self.augment(self.x[idx], np.random.default_rng([self.seed or 0, epoch, step]))
            xb = xb[mine]
        else:
            xb = self.x[idx[mine]]
        yb = self.y[idx[mine]]
        group.seed_dropouts(self.dropouts, int(st.extra.get("dropout_seed", 0)), epoch, step)
        if len(yb):
            loss, problem = self.model.compute_gradients(xb, yb)
            loss = self.loss.per_sample(loss, len(yb))
            correct = self.model._last_correct or 0
        else:                          # a rank with no sample of a short last batch
            self.model.zero_grad()
            loss, problem, correct = 0.0, None, 0
        totals = group.reduce_step(self.model, loss, correct, len(yb), len(idx), problem,
                                   interrupted)
        if totals.problem is not None:
            self._numerical_stop(NumericalError(f"{totals.problem}; no update was applied"), bar)
            return False
        self._update()
        total_loss, correct, seen = st.totals
        st.totals = (total_loss + totals.loss * totals.seen, correct + totals.correct,
                     seen + totals.seen)
        st.step += 1
        _advance(bar, st.totals, t0, self.accuracy)
        for cb in self.callbacks + self.backups:
            cb.on_batch_end(step, {"loss": totals.loss})
        return True

    def _update(self) -> None:
        """The optimizer's step, at the group's learning-rate factor (1 in one process)."""
        factor = self.group.lr_factor(self.global_step, self.steps)
        if factor == 1.0:
            self.optimizer.step()
            return
        lr = self.optimizer.lr
        self.optimizer.lr = lr * factor
        try:
            self.optimizer.step()
        finally:
            self.optimizer.lr = lr

    def _epoch_logs(self, t0: float) -> dict[str, float]:
        total_loss, correct, seen = self.state.totals
        logs = {"loss": total_loss / max(seen, 1)}
        if self.accuracy:
            logs["accuracy"] = correct / max(seen, 1)
        if self.validation_data is not None:
            val = self.group.evaluate(self.model, *self.validation_data,
                                      batch_size=max(self.batch_size, 256))
            logs["val_loss"] = val["loss"]
            if "accuracy" in val:
                logs["val_accuracy"] = val["accuracy"]
        logs["seconds"] = time.perf_counter() - t0
        if self.group.comm_seconds is not None:
            logs["allreduce_seconds"] = self.group.comm_seconds
        return logs

    def _numerical_stop(self, error: NumericalError, bar: Any) -> None:
        """Raise NumericalError naming the epoch and step, or stop quietly with
        TerminateOnNaN. The failing step's update was not applied."""
        _close(bar)
        st = self.state
        message = (f"epoch {st.epoch + 1}, step {st.step + 1}/{self.steps_in_epoch()}: {error}. "
                   f"Try a lower learning rate.")
        if self._nan_stop is None:
            raise NumericalError(message) from None
        self._nan_stop.terminated_at = (st.epoch, st.step)
        self._nan_stop.message = message
        self.model.stop_training = True

    def _save_and_stop(self, bar: Any) -> None:
        _close(bar)
        for cb in self.backups:
            cb.backup()
        folders = ", ".join(cb.backup_dir for cb in self.backups)
        if not self.backups:
            raise KeyboardInterrupt(f"interrupted at epoch {self.state.epoch + 1}, step "
                                    f"{self.state.step + 1}/{self.steps_in_epoch()}")
        raise KeyboardInterrupt(f"interrupted at epoch {self.state.epoch + 1}, step "
                                f"{self.state.step + 1}/{self.steps_in_epoch()}; checkpoint "
                                f"saved in {folders}")

    # ------------------------------------------------------------------ checkpoints
    def settings(self) -> dict[str, Any]:
        """What a resumed run must share with the interrupted one (besides the data); the
        number of ranks (recorded when there are several) may change."""
        settings = {"batch_size": self.batch_size, "samples": len(self.x),
                    "shuffle": bool(self.shuffle), "seed": self.seed}
        if not self.loss.is_default:
            settings["loss"] = self.loss.get_config()
        if self.group.size > 1:
            settings["ranks"] = self.group.size
        return settings

    def callback_states(self) -> dict[str, dict[str, Any]]:
        """``{key: state_dict()}`` of the callbacks that keep a state (backups aside)."""
        return {key: state for key, cb in _keyed(self.callbacks).items()
                if (state := cb.state_dict())}

    def save_checkpoint(self, directory: str, options: dict[str, Any] | None = None) -> str:
        """Write the whole run to ``directory/checkpoint.npz`` (atomic); returns its path.
        With several ranks, rank 0 writes it, after a barrier once training runs."""
        st = self.state
        st.layer_rngs = {k: generator_state(layer.rng) for k, layer in self.dropouts.items()}
        st.history = self.history.history
        st.extra["fit"] = self.settings()
        if self._started:
            self.group.barrier()
        if not self.group.root:
            return checkpoint_path(directory)
        return save_checkpoint(directory, self.model, self.optimizer, st,
                               self.callback_states(), options)

    def snapshot(self) -> Checkpoint:
        """The whole run in memory, as :meth:`restore` takes it (for the ranks' start)."""
        st = self.state
        st.layer_rngs = {k: generator_state(layer.rng) for k, layer in self.dropouts.items()}
        st.history = self.history.history
        st.extra["fit"] = self.settings()
        return Checkpoint("rank 0's state", self.model.get_config(), self.optimizer.name,
                          self.optimizer.hyperparams(),
                          {k: v.copy() for k, v in self.model.state_dict().items()},
                          self.optimizer.state_dict(), copy.deepcopy(st),
                          copy.deepcopy(self.callback_states()))

    def adopt(self, snapshot: Checkpoint) -> None:
        """Take another rank's :meth:`snapshot` (the whole run, as :meth:`restore`)."""
        self.restore(snapshot)

    def restore(self, ck: Checkpoint) -> None:
        """Continue from a checkpoint: model, optimizer, callbacks, generators, position
        and history. Everything is checked before anything changes."""
        if ck.optimizer_name != self.optimizer.name:
            raise ClearConvError(f"the checkpoint was trained with {ck.optimizer_name!r}, "
                                 f"not {self.optimizer.name!r}")
        self._check_compatible(ck)
        _rebase_position(ck.state, self.global_batch)
        self.model.load_state_dict(ck.model_state)
        self.optimizer.load_state_dict(ck.optimizer_state)
        keyed = _keyed(self.callbacks)
        for key, cb_state in ck.callbacks.items():
            keyed[key].load_state_dict(cb_state)
        for key, rng_state in ck.state.layer_rngs.items():
            self.dropouts[key].rng = generator_from_state(rng_state)
        self.state = ck.state
        self.history = History.from_dict(ck.state.history)

    def _check_compatible(self, ck: Checkpoint) -> None:
        """ClearConvError naming what differs between the checkpoint's run and this one."""
        if ck.state.epoch_rng is None:
            raise ModelFileError(f"{ck.path}: the checkpoint holds no shuffling generator state")
        saved = ck.state.extra.get("fit")
        if saved is not None and not self.loss_given:   # fit named no loss: the saved one
            self._adopt_loss(get_loss(saved.get("loss")))
        now = self.settings()
        if saved is not None:    # the number of ranks may change (see _rebase_position)
            saved = {k: v for k, v in saved.items() if k != "ranks"}
            now.pop("ranks", None)
        if saved is not None and saved != now:
            diff = ", ".join(f"{k} {saved.get(k)!r} there, {v!r} here" for k, v in now.items()
                             if saved.get(k) != v)
            raise ClearConvError(f"{ck.path} is from a run with other settings ({diff}): resume "
                                 f"with the same data, batch size, shuffle, seed and loss")
        stateful = set(self.callback_states())
        if set(ck.callbacks) != stateful:
            raise ClearConvError(f"resume with the callbacks of the interrupted run: the "
                                 f"checkpoint holds the state of {sorted(ck.callbacks)}, this "
                                 f"run's callbacks keep {sorted(stateful)}")
        if set(ck.state.layer_rngs) != set(self.dropouts):
            raise ClearConvError(f"the checkpoint has random generators for layers "
                                 f"{sorted(ck.state.layer_rngs)}, the model has them for "
                                 f"{sorted(self.dropouts)}")

    def _adopt_loss(self, loss: Loss) -> None:
        """Train on with ``loss`` (a resumed run's), the targets checked against it."""
        if loss != self.loss:
            previous = self.model.loss_fn
            self.model.loss_fn = loss
            try:
                self._check_loss()
            except ClearConvError:
                self.model.loss_fn = previous
                self._check_loss()
                raise


def _rebase_position(state: TrainState, global_batch: int) -> None:
    """Express a checkpoint's position in the epoch in this run's global batch.

    A run with another number of ranks than the checkpoint's has another global batch: it
    continues the interrupted epoch from the same sample of the batch order (recorded as
    ``extra["epoch_offset"]``), with its own batch size from there on."""
    fit = state.extra.get("fit") or {}
    saved_batch = int(fit.get("batch_size", 0)) * int(fit.get("ranks", 1))
    if saved_batch in (0, global_batch) or state.step == 0 and "epoch_offset" not in state.extra:
        return
    done = int(state.extra.get("epoch_offset", 0)) + state.step * saved_batch
    state.step = 0
    if done:
        state.extra["epoch_offset"] = done
    else:
        state.extra.pop("epoch_offset", None)


def _check_last_batch(model: Sequential, samples: int, batch_size: int, processes: int = 1,
                      synced: bool = False) -> None:
    """Refuse, before the first step, a run whose last batch would give a process a single
    sample while the model has a BatchNorm1D: in training mode it needs two values per
    feature to take a variance (as torch.nn.BatchNorm1d), and would stop the run at the end
    of its first epoch instead. ``processes`` share each global batch of ``batch_size``
    samples each; with synchronised batch norm (``synced``) they normalise the last batch
    as one."""
    from ..layers.normalization import BatchNorm1D

    rest = samples % (batch_size * processes)
    if not rest or not any(isinstance(layer, BatchNorm1D)
                           for top in model.layers for layer in top.walk()):
        return
    from .distributed import piece

    groups = 1 if synced else processes      # the groups that normalise apart
    shares = [part.stop - part.start for part in (piece(rest, r, groups) for r in range(groups))]
    if 1 in shares:
        raise ClearConvError(
            f"the last batch of each epoch would hold {rest} of the {samples} samples "
            f"(batch_size {batch_size}{f' on {processes} processes' if processes > 1 else ''}), "
            f"a single sample for a process, and the model's BatchNorm1D needs at least 2 "
            f"in training; choose another batch size (or validation split)")


def _checked_data(model: Sequential, x: Any, y: Any, epochs: int, batch_size: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ShapeError(f"x has {len(x)} samples but y has {len(y)} labels")
    if len(x) == 0:
        raise ShapeError("fit needs at least one sample, got 0")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ClearConvError(f"{name} must be an int >= 1, got {value!r}")
    if model.input_shape is None:
        model.build(x.shape[1:])
    if x.shape[1:] != tuple(model.input_shape):
        raise ShapeError(f"model expects input of shape (N, "
                         f"{', '.join(map(str, model.input_shape))}), got x of shape {x.shape}")
    return x, y


def _seed_dropouts(model: Sequential, rng: np.random.Generator) -> dict[str, Any]:
    """The layers with a generator (dropout) by index; those without one get a generator
    drawn from the run's ``rng``."""
    named = [(str(i), layer) for i, layer in enumerate(model.layers)]
    named += [(f"{i}.{sub}", inner) for i, layer in enumerate(model.layers)
              for sub, inner in _nested(layer)]
    dropouts = {key: layer for key, layer in named if hasattr(layer, "rng")}
    for layer in dropouts.values():
        if layer.rng is None:
            layer.rng = np.random.default_rng(rng.integers(2**63))
    return dropouts


def _nested(layer: Any) -> list[tuple[str, Any]]:
    """Every layer inside a block, by dotted name (``main.0``, ``main.0.main.1``, ...)."""
    return [(name, inner) for name, sub in layer.sublayers()
            for name, inner in [(name, sub), *((f"{name}.{n}", i) for n, i in _nested(sub))]]


def _keyed(callbacks: list[Callback]) -> dict[str, Callback]:
    """Callbacks by key: the class name, with ``#2``, ``#3``, ... for repeats."""
    keyed: dict[str, Callback] = {}
    counts: dict[str, int] = {}
    for cb in callbacks:
        name = type(cb).__name__
        counts[name] = counts.get(name, 0) + 1
        keyed[name if counts[name] == 1 else f"{name}#{counts[name]}"] = cb
    return keyed


# ---------------------------------------------------------------------- progress output
def _progress(steps: int, epoch: int, epochs: int, verbose: int, initial: int = 0) -> Any:
    """A tqdm bar for the epoch with ``verbose=1``, else None."""
    if verbose != 1:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=steps, initial=initial, desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
                leave=True, dynamic_ncols=True)


def _advance(bar: Any, totals: tuple[float, int, int], t0: float, accuracy: bool) -> None:
    if bar is None:
        return
    total_loss, correct, seen = totals
    elapsed = time.perf_counter() - t0
    acc = f"acc={correct / seen:.4f} " if accuracy else ""
    bar.set_postfix_str(f"loss={total_loss / seen:.4f} {acc}{seen / elapsed:,.0f} samples/s",
                        refresh=False)
    bar.update(1)


def _report(bar: Any, logs: dict[str, float], epoch: int, epochs: int, verbose: int) -> None:
    """The epoch's metrics: on the bar (verbose 1) or as one line (verbose 2)."""
    if bar is not None:
        bar.set_postfix_str(" ".join(f"{k}={v:.4f}" for k, v in logs.items()
                                     if k != "seconds"), refresh=True)
        bar.close()
    elif verbose == 2:
        print(f"epoch {epoch + 1}/{epochs} " + " ".join(f"{k}={v:.4f}" for k, v in logs.items()),
              flush=True)


def _close(bar: Any) -> None:
    if bar is not None:
        bar.close()


class _DeferredInterrupt:
    """While a backup callback is there to write a checkpoint, Ctrl-C sets ``flag``
    instead of raising mid-update; the loop saves a consistent checkpoint between two
    steps and then stops. A second Ctrl-C stops at once. Only the main thread can
    handle signals: elsewhere Ctrl-C keeps its usual effect."""

    def __init__(self, active: bool) -> None:
        self.active = active
        self.flag = False
        self._installed = False
        self._previous: Any = None

    def install(self) -> None:
        if self.active and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
            self._installed = True

    def _handler(self, signum: int, frame: Any) -> None:
        if self.flag:
            raise KeyboardInterrupt
        self.flag = True

    def restore(self) -> None:
        if self._installed:
            previous = self._previous if self._previous is not None else signal.default_int_handler
            signal.signal(signal.SIGINT, previous)
            self._installed = False
