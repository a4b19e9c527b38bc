"""Training checkpoints: the whole state of a run of ``fit``, in one file.

A checkpoint is ``DIR/checkpoint.npz`` written atomically by :func:`clearconv.io.save_arrays`
(no pickle): the JSON part holds the model architecture, the optimizer's name and
hyper-parameters, the epoch and step reached, the random generators' states, the history
so far, the run's settings and options, and the JSON-able part of each callback's state;
the arrays are the model's parameters (``model/<name>``), the optimizer's buffers
(``optim/<key>``) and the numbers and arrays of the callbacks' states
(``callbacks/<callback>/<key>``, numbers as 0-d arrays, so that ``inf`` and every float
come back exactly). Resuming from it continues the same run: with the same data, seed,
library versions and thread count, the final weights are bit-identical to those of an
uninterrupted run. :class:`~clearconv.train.callbacks.BackupAndRestore` writes and reads it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ModelFileError
from ..io import files as io

FILENAME = "checkpoint.npz"


@dataclass
class TrainState:
    """Where a run of ``fit`` stands.

    ``epoch`` and ``step`` index the next mini-batch to train on; ``epoch_rng`` is the
    shuffling generator's state at the start of that epoch (the batch order is drawn
    again from it); ``layer_rngs`` are the dropout generators' states now; ``totals``
    the running sums of the epoch so far; ``extra["fit"]`` the settings a resumed run
    must share (batch size, sample count, shuffle, seed).
    """

    epoch: int = 0
    step: int = 0
    epoch_rng: dict[str, Any] | None = None
    layer_rngs: dict[str, Any] = field(default_factory=dict)
    totals: tuple[float, int, int] = (0.0, 0, 0)    # loss sum, correct, seen this epoch
    history: dict[str, list[float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def checkpoint_path(directory: str) -> str:
    return os.path.join(directory, FILENAME)


def save_checkpoint(directory: str, model: Any, optimizer: Any, state: TrainState,
                    callbacks: dict[str, dict[str, Any]] | None = None,
                    options: dict[str, Any] | None = None) -> str:
    """Write ``DIR/checkpoint.npz`` atomically; returns its path.

    ``callbacks`` maps a callback's key (its class name, ``#2`` etc. for repeats) to its
    ``state_dict()``; ``options`` is JSON-able data kept with the checkpoint.
    """
    os.makedirs(directory, exist_ok=True)
    arrays = {f"model/{k}": np.asarray(v, order="C") for k, v in model.state_dict().items()}
    arrays.update({f"optim/{k}": np.asarray(v) for k, v in optimizer.state_dict().items()})
    callback_json: dict[str, dict[str, Any]] = {}
    for key, cb_state in (callbacks or {}).items():
        callback_json[key] = {}
        for name, value in cb_state.items():
            if _is_array_value(value):
                arrays[f"callbacks/{key}/{name}"] = np.asarray(value)
            else:
                callback_json[key][name] = value
    config = {"checkpoint": {
        "model": model.get_config(),
        "optimizer": {"name": optimizer.name, "hyperparams": optimizer.hyperparams()},
        "epoch": state.epoch, "step": state.step, "epoch_rng": state.epoch_rng,
        "layer_rngs": state.layer_rngs, "totals": list(state.totals),
        "history": state.history, "extra": state.extra,
        "callbacks": callback_json, "options": options,
    }}
    path = checkpoint_path(directory)
    io.save_arrays(path, config, arrays)
    return path


def _is_array_value(value: Any) -> bool:
    """Numbers and arrays of a callback's state go to the arrays (exact, inf included);
    strings, None, booleans and lists go to the JSON part."""
    if isinstance(value, (bool, np.bool_)):
        return False
    return isinstance(value, (int, float, np.number, np.ndarray))


@dataclass
class Checkpoint:
    """A loaded checkpoint: the raw parts, for :meth:`clearconv.train.loop.Trainer.restore`."""

    path: str
    model_config: dict[str, Any]
    optimizer_name: str
    optimizer_hyperparams: dict[str, Any]
    model_state: dict[str, np.ndarray]
    optimizer_state: dict[str, np.ndarray]
    state: TrainState
    #: each callback's state by its key (numbers as 0-d arrays)
    callbacks: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the ``options`` given to :func:`save_checkpoint` (None if none)
    options: dict[str, Any] | None = None


def _count(value: Any, what: str) -> int:
    """An int >= 0 (not a bool) from a checkpoint field, else ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be an int >= 0, got {value!r:.60}")
    return value


def _check_fields(ck: Any, arrays: dict[str, np.ndarray]) -> None:
    """The types and ranges of a checkpoint's fields, checked before any is used: a
    damaged or edited checkpoint is a ModelFileError naming the field, never a run that
    trains uphill (a negative lr) or for extra epochs (a negative epoch)."""
    if not isinstance(ck, dict):
        raise ValueError(f"'checkpoint' must be an object, got {type(ck).__name__}")
    missing = [k for k in ("model", "optimizer", "epoch", "step", "epoch_rng", "layer_rngs",
                           "totals", "history", "extra") if k not in ck]
    if missing:
        raise ValueError(f"missing fields {missing}")
    _count(ck["epoch"], "epoch")
    _count(ck["step"], "step")
    for key, kind in (("model", dict), ("optimizer", dict), ("layer_rngs", dict),
                      ("history", dict), ("extra", dict), ("totals", list)):
        if not isinstance(ck[key], kind):
            raise ValueError(f"{key} must be {'an object' if kind is dict else 'a list'}, "
                             f"got {type(ck[key]).__name__}")
    if ck["epoch_rng"] is not None and not isinstance(ck["epoch_rng"], dict):
        raise ValueError(f"epoch_rng must be an object, got {type(ck['epoch_rng']).__name__}")
    if len(ck["totals"]) != 3 or not all(isinstance(v, (int, float)) and not isinstance(
            v, bool) for v in ck["totals"]):
        raise ValueError(f"totals must be 3 numbers, got {ck['totals']!r:.60}")
    for name, values in ck["history"].items():
        if not isinstance(values, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise ValueError(f"history[{name!r}] must be a list of numbers")
    _check_optimizer(ck["optimizer"], arrays)
    options = ck.get("options")
    if options is not None and not isinstance(options, dict):
        raise ValueError(f"options must be an object, got {type(options).__name__}")
    callbacks = ck.get("callbacks", {})
    if not isinstance(callbacks, dict) or not all(isinstance(v, dict)
                                                  for v in callbacks.values()):
        raise ValueError("callbacks must be an object of objects")


def _check_optimizer(opt: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """The optimizer's name, hyper-parameters and arrays (finite; lr and step >= 0)."""
    if not isinstance(opt.get("name"), str) or not isinstance(opt.get("hyperparams"), dict):
        raise ValueError("optimizer must be {'name': str, 'hyperparams': {...}}")
    for key, value in opt["hyperparams"].items():
        if key == "lr" and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                and np.isfinite(value) and value >= 0):
            raise ValueError(f"optimizer lr must be a number >= 0, got {value!r:.40}")
    for key, value in arrays.items():
        if key.startswith("optim/") or key.startswith("model/"):
            if value.dtype.kind not in "fiu" or (value.dtype.kind == "f"
                                                 and not np.isfinite(value).all()):
                raise ValueError(f"{key} must hold finite real numbers")
    lr = arrays.get("optim/lr")
    if lr is not None and (lr.ndim != 0 or float(lr) < 0):
        raise ValueError(f"optim/lr must be one number >= 0, got {lr!r:.40}")
    step = arrays.get("optim/step")
    if step is not None and (step.ndim != 0 or float(step) < 0):
        raise ValueError(f"optim/step must be one number >= 0, got {step!r:.40}")


def load_checkpoint(directory: str) -> Checkpoint:
    """Read ``DIR/checkpoint.npz``; ModelFileError if it is damaged or not a checkpoint
    (every field's type and range is checked first: see ``_check_fields``)."""
    path = checkpoint_path(directory)
    config, arrays = io.load_arrays(path)
    try:
        ck = config["checkpoint"]
        _check_fields(ck, arrays)
        state = TrainState(epoch=int(ck["epoch"]), step=int(ck["step"]),
                           epoch_rng=ck["epoch_rng"], layer_rngs=dict(ck["layer_rngs"]),
                           totals=(float(ck["totals"][0]), int(ck["totals"][1]),
                                   int(ck["totals"][2])),
                           history={k: list(v) for k, v in ck["history"].items()},
                           extra=dict(ck["extra"]))
        options = ck.get("options")
        return Checkpoint(
            path, ck["model"], ck["optimizer"]["name"], dict(ck["optimizer"]["hyperparams"]),
            {k[6:]: v for k, v in arrays.items() if k.startswith("model/")},
            {k[6:]: v for k, v in arrays.items() if k.startswith("optim/")}, state,
            _callback_states(ck.get("callbacks", {}), arrays),
            None if options is None else dict(options))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise ModelFileError(f"{path}: not a valid clearconv checkpoint ({e})") from None


def _callback_states(json_part: dict[str, Any], arrays: dict[str, np.ndarray]
                     ) -> dict[str, dict[str, Any]]:
    """Join each callback's JSON part and its ``callbacks/<key>/<name>`` arrays."""
    states = {str(key): dict(part) for key, part in json_part.items()}
    for name, value in arrays.items():
        if name.startswith("callbacks/"):
            _, key, entry = name.split("/", 2)
            states.setdefault(key, {})[entry] = value
    return states


def generator_state(g: np.random.Generator) -> dict[str, Any]:
    """A generator's state as JSON-able data."""
    return g.bit_generator.state


#: the bit generators a checkpoint may name
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def generator_from_state(state: dict[str, Any]) -> np.random.Generator:
    """Rebuild a generator from :func:`generator_state` output; ModelFileError for a
    damaged state."""
    kind = state.get("bit_generator", "PCG64") if isinstance(state, dict) else None
    if kind not in _BIT_GENERATORS:
        raise ModelFileError(f"a checkpoint's random generator state names {kind!r}, not "
                             f"one of {', '.join(_BIT_GENERATORS)}")
    bitgen = getattr(np.random, kind)()
    try:
        bitgen.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as e:
        raise ModelFileError(f"a checkpoint's random generator state is damaged ({e})") \
            from None
    return np.random.Generator(bitgen)
