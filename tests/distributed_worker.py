"""The program each rank runs in the data-parallel tests (tests/test_distributed.py).

``mpiexec -n N python tests/distributed_worker.py SCENARIO OUT [ARGS...]``; every rank
writes what it saw to ``OUT/rank<r>.json`` (and rank 0 the weights to ``OUT/<name>.npz``).
The test process imports :func:`data`, :func:`model` and :func:`run` to train the same
thing in one process.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import Any

import numpy as np

import clearconv as cc
from clearconv import optim
from clearconv.data import random_shift
from clearconv.errors import ClearConvError
from clearconv.layers import (
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPool2D,
    ReLU,
    Residual,
)
from clearconv.train.callbacks import BackupAndRestore, Callback
from clearconv.train.losses import CrossEntropyLoss

SAMPLES = 100


def data(samples: int = SAMPLES, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Float64 8x8 images of 3 classes: a bright square's position is the class."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, samples)
    x = rng.normal(0.0, 0.3, (samples, 1, 8, 8))
    for i, label in enumerate(y):
        x[i, 0, 2 * label:2 * label + 3, 2:5] += 1.0
    return x, y


def bn_model(dense_bn: bool = True) -> cc.Sequential:
    """Batch norm after convs (one inside a residual block, one with a cumulative
    average) and, with ``dense_bn``, after a Dense layer."""
    layers = [Conv2D(1, 4, 3, padding=1, bias=False, rng=1), BatchNorm2D(4), ReLU(),
              Residual([Conv2D(4, 4, 3, padding=1, rng=3), BatchNorm2D(4, momentum=None)]),
              MaxPool2D(2), Flatten(), Dense(4 * 4 * 4, 6, rng=4)]
    layers += [BatchNorm1D(6), ReLU()] if dense_bn else [ReLU()]
    layers.append(Dense(6, 3, rng=2))
    return cc.Sequential(*layers, input_shape=(1, 8, 8)).astype(np.float64)


def model(dropout: bool = False) -> cc.Sequential:
    layers = [Conv2D(1, 4, 3, padding=1, rng=1), ReLU(), MaxPool2D(2), Flatten()]
    if dropout:
        layers.append(Dropout(0.3))
    layers.append(Dense(4 * 4 * 4, 3, rng=2))
    return cc.Sequential(*layers, input_shape=(1, 8, 8)).astype(np.float64)


def run(batch_size: int, epochs: int, augment: bool = False, distributed: Any = None,
        callbacks: tuple = (), optimizer: str = "adam", dropout: bool = False,
        x: np.ndarray | None = None, loss: str = "plain", bn: str | None = None
        ) -> tuple[cc.Sequential, Any]:
    """One training run; the same in one process and on every rank. ``loss``: 'plain'
    (the default cross-entropy), 'mse' (on one-hot targets) or 'sum' (a summed,
    label-smoothed cross-entropy). ``bn``: None (the plain model), 'all' or '2d'
    (:func:`bn_model` with or without its BatchNorm1D)."""
    if x is None:
        x, y = data()
    else:
        y = data()[1]
    xv, yv = data(37, seed=1)
    loss_fn = None
    if loss == "mse":
        loss_fn, y, yv = "mse", np.eye(3)[y], np.eye(3)[yv]
    elif loss == "sum":
        loss_fn = CrossEntropyLoss(reduction="sum", label_smoothing=0.1)
    net = model(dropout) if bn is None else bn_model(bn == "all")
    opt = (optim.Adam(net.parameters(), lr=1e-2) if optimizer == "adam"
           else optim.SGD(net.parameters(), lr=0.05, momentum=0.9))
    history = net.fit(x, y, epochs=epochs, batch_size=batch_size, optimizer=opt, seed=3,
                      verbose=0, augment=random_shift(1) if augment else None,
                      validation_data=(xv, yv), callbacks=list(callbacks),
                      distributed=distributed, loss=loss_fn)
    return net, history


def _write(out: str, rank: int, report: dict[str, Any]) -> None:
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(report, f)


def _weights_crc(net: cc.Sequential) -> str:
    import zlib
    crc = 0
    for p in net.parameters():
        crc = zlib.crc32(np.ascontiguousarray(p.value).view(np.uint8), crc)
    return str(crc)


class _AtStep(Callback):
    """Calls ``action()`` on one rank after its ``step``-th step (counted over the run)."""

    def __init__(self, rank: int, step: int, action: Any) -> None:
        self.rank, self.step, self.action, self.count = rank, step, action, 0

    def on_batch_end(self, step: int, logs: dict[str, Any]) -> None:
        self.count += 1
        if self.count == self.step and self.trainer.group.rank == self.rank:
            self.action()


def main(argv: list[str]) -> None:
    from mpi4py import MPI

    from clearconv.train.distributed import DataParallel

    scenario, out, args = argv[0], argv[1], argv[2:]
    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    report: dict[str, Any] = {"rank": rank, "size": comm.Get_size()}

    if scenario == "exact":
        # ARGS: per-rank batch size, epochs, then run names "plain", "augment", "sgd"
        batch, epochs = int(args[0]), int(args[1])
        for name in args[2:]:
            net, history = run(batch, epochs, augment=name == "augment",
                               optimizer="sgd" if name == "sgd" else "adam",
                               distributed=DataParallel(comm),
                               loss=name if name in ("mse", "sum") else "plain")
            report[name] = {"crc": _weights_crc(net), "history": history.history}
            if rank == 0:
                np.savez(os.path.join(out, f"{name}.npz"), **net.state_dict())
    elif scenario == "syncbn":
        # ARGS: per-rank batch size, epochs, 'all' or '2d', then run names "sync", "local"
        batch, epochs, kind = int(args[0]), int(args[1]), args[2]
        for name in args[3:]:
            net, history = run(batch, epochs, optimizer="sgd", bn=kind,
                               distributed=DataParallel(comm,
                                                        sync_batch_norm=name == "sync"))
            report[name] = {"crc": _weights_crc(net), "history": history.history}
            if rank == 0:
                np.savez(os.path.join(out, f"{name}.npz"), **net.state_dict())
    elif scenario == "dropout":
        net, history = run(int(args[0]), 2, dropout=True, distributed=DataParallel(comm))
        report["crc"] = _weights_crc(net)
        report["masks"] = _first_dropout_masks(comm)
    elif scenario == "nan":
        x, _ = data()
        # the sample at this position of epoch 1's order is NaN: it is trained on by the
        # rank whose piece of the step's global batch holds it
        order = np.random.default_rng(3).permutation(len(x))
        x[order[int(args[0])]] = np.nan
        try:
            run(int(args[1]), 2, distributed=DataParallel(comm), x=x)
            report["error"] = None
        except cc.NumericalError as e:
            report["error"] = str(e)
    elif scenario == "mismatch":
        x, _ = data(seed=rank)              # every rank loads other images
        try:
            run(5, 1, distributed=DataParallel(comm), x=x if rank == 1 else None)
            report["error"] = None
        except ClearConvError as e:
            report["error"] = f"{type(e).__name__}: {e}"
    elif scenario == "raise":
        def fail() -> None:
            raise RuntimeError("a failure on one rank only")
        run(5, 2, distributed=DataParallel(comm), callbacks=(_AtStep(1, 3, fail),))
    elif scenario in ("hold", "resume", "interrupt"):
        # ARGS: checkpoint dir, per-rank batch, epochs, [rank to act on, step, fifo]
        ckdir, batch, epochs = args[0], int(args[1]), int(args[2])
        callbacks: list[Callback] = [BackupAndRestore(ckdir, resume=scenario == "resume",
                                                      save_freq=2)]
        if scenario == "hold":
            fifo = args[5]

            def hold() -> None:
                with open(fifo, "w") as f:     # the test reads the pid, then kills us
                    f.write(f"{os.getpid()}\n")
                threading.Event().wait()       # holds still until killed
            callbacks.append(_AtStep(int(args[3]), int(args[4]), hold))
        if scenario == "interrupt":
            callbacks.append(_AtStep(int(args[3]), int(args[4]),
                                     lambda: os.kill(os.getpid(), signal.SIGINT)))
        try:
            net, history = run(batch, epochs, distributed=DataParallel(comm),
                               callbacks=tuple(callbacks))
            report["crc"] = _weights_crc(net)
            report["history"] = history.history
            report["resumed_from"] = callbacks[0].resumed_from
            if rank == 0:
                np.savez(os.path.join(out, "weights.npz"), **net.state_dict())
        except KeyboardInterrupt as e:
            report["interrupted"] = str(e)
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    _write(out, rank, report)


def _first_dropout_masks(comm: Any) -> list[int]:
    """Each rank's first dropout draw at (seed, epoch 0, step 0), as a checksum."""
    from clearconv.train.distributed import DataParallel

    group = DataParallel(comm)
    layer = Dropout(0.5)
    group.seed_dropouts({"4": layer}, 3, 0, 0)
    return [int(v) for v in (layer.rng.random(8) < 0.5)]


if __name__ == "__main__":
    main(sys.argv[1:])
