"""Training checkpoints: model, optimizer state, RNG state and position, in one file.

A checkpoint is ``DIR/checkpoint.npz`` written atomically by :func:`clearconv.io.save_arrays`
(no pickle): the JSON part holds the model architecture, the optimizer's name and
hyper-parameters, the epoch and step reached, the random generators' states and the
history so far; the arrays are the model's parameters (``model/<name>``) and the
optimizer's buffers (``optim/<key>``). Resuming from it continues the same run: with
the same data, seed, library versions and thread count, the final weights are
bit-identical to those of an uninterrupted run.
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
    again from it); ``layer_rngs`` are the dropout generators' states now.
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


def save_checkpoint(directory: str, model: Any, optimizer: Any, state: TrainState) -> str:
    """Write ``DIR/checkpoint.npz`` atomically; returns its path."""
    os.makedirs(directory, exist_ok=True)
    arrays = {f"model/{k}": np.ascontiguousarray(v) for k, v in model.state_dict().items()}
    arrays.update({f"optim/{k}": np.asarray(v) for k, v in optimizer.state_dict().items()})
    config = {"checkpoint": {
        "model": model.get_config(),
        "optimizer": {"name": optimizer.name, "hyperparams": optimizer.hyperparams()},
        "epoch": state.epoch, "step": state.step, "epoch_rng": state.epoch_rng,
        "layer_rngs": state.layer_rngs, "totals": list(state.totals),
        "history": state.history, "extra": state.extra,
    }}
    path = checkpoint_path(directory)
    io.save_arrays(path, config, arrays)
    return path


@dataclass
class Checkpoint:
    """A loaded checkpoint: the raw parts, for :meth:`Sequential.fit` to restore."""

    path: str
    model_config: dict[str, Any]
    optimizer_name: str
    optimizer_hyperparams: dict[str, Any]
    model_state: dict[str, np.ndarray]
    optimizer_state: dict[str, np.ndarray]
    state: TrainState


def load_checkpoint(directory: str) -> Checkpoint:
    """Read ``DIR/checkpoint.npz``; ModelFileError if it is damaged or not a checkpoint."""
    path = checkpoint_path(directory)
    config, arrays = io.load_arrays(path)
    try:
        ck = config["checkpoint"]
        state = TrainState(epoch=int(ck["epoch"]), step=int(ck["step"]),
                           epoch_rng=ck["epoch_rng"], layer_rngs=dict(ck["layer_rngs"]),
                           totals=(float(ck["totals"][0]), int(ck["totals"][1]),
                                   int(ck["totals"][2])),
                           history={k: list(v) for k, v in ck["history"].items()},
                           extra=dict(ck["extra"]))
        return Checkpoint(
            path, ck["model"], ck["optimizer"]["name"], dict(ck["optimizer"]["hyperparams"]),
            {k[6:]: v for k, v in arrays.items() if k.startswith("model/")},
            {k[6:]: v for k, v in arrays.items() if k.startswith("optim/")}, state)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise ModelFileError(f"{path}: not a valid clearconv checkpoint ({e!r})") from None


def generator_state(g: np.random.Generator) -> dict[str, Any]:
    """A generator's state as JSON-able data."""
    return g.bit_generator.state


def generator_from_state(state: dict[str, Any]) -> np.random.Generator:
    """Rebuild a generator from :func:`generator_state` output."""
    kind = state.get("bit_generator", "PCG64")
    bitgen = getattr(np.random, kind)()
    bitgen.state = state
    return np.random.Generator(bitgen)
