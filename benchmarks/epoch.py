"""One training epoch in one framework, meant to run alone in a fresh process.

Used twice by the suite:

- peak memory: one epoch of the MNIST CNN on synthetic 28x28 data, and a shorter one
  (20 batches of 128) of ResNet-20 on synthetic 3x32x32 data; the peak RSS during
  the epoch minus the RSS after the imports, the model and the data: what the epoch
  itself needed. On Linux the peak is VmHWM, reset just before the epoch
  (``ru_maxrss`` is recorded too, but it inherits the parent's RSS across fork + exec,
  so in a child of the benchmark process it reads the parent's 700+ MiB);
- real data: one epoch on MNIST (``--mnist-dir``), then the accuracy on its 10,000 test
  images.

Both frameworks get the same architecture (a clearconv config), the same initial weights
(an ``.npz`` of clearconv's state dict), the same optimizer (SGD, momentum 0.9), the same
batch size, the same thread count and the same shuffling order (a permutation drawn from
one seed). A clearconv process never imports PyTorch and a PyTorch process never imports
clearconv, so neither carries the other's memory.
"""

from __future__ import annotations

import gzip
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .harness import cpu_load, limit_threads

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
EVAL_BATCH = 1000


# --------------------------------------------------------------------- data
def read_idx(path: Path, limit: int | None = None) -> np.ndarray:
    """A gzip-compressed IDX file as the uint8 array its header describes.

    ``limit`` reads only the first ``limit`` items (images or labels) of the file.
    """
    with gzip.open(path, "rb") as f:
        magic = f.read(4)
        if len(magic) < 4 or magic[:2] != b"\x00\x00" or magic[2] != 0x08:
            raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {magic.hex()})")
        shape = [int(d) for d in np.frombuffer(f.read(4 * magic[3]), ">u4")]
        if limit is not None:
            shape[0] = min(shape[0], limit)
        data = f.read(int(np.prod(shape)))
    if len(data) != np.prod(shape):
        raise ValueError(f"{path}: truncated ({len(data)} bytes for shape {tuple(shape)})")
    return np.frombuffer(data, np.uint8).reshape(shape)


def mnist_available(directory: Path) -> bool:
    return all((Path(directory) / name).is_file()
               for files in MNIST_FILES.values() for name in files)


def load_mnist(directory: Path, split: str, limit: int | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """MNIST ``split`` ('train' or 'test'): float32 (N, 1, 28, 28) scaled by 1/255, int64 labels."""
    images, labels = (read_idx(Path(directory) / name, limit) for name in MNIST_FILES[split])
    x = images.reshape(len(images), 1, 28, 28).astype(np.float32)
    x *= np.float32(1 / 255)
    return x, labels.astype(np.int64)


def synthetic(n: int, seed: int, shape: tuple[int, ...] = (1, 28, 28)
              ) -> tuple[np.ndarray, np.ndarray]:
    """n random float32 images of ``shape`` (C, H, W) in [0, 1) (like scaled MNIST or
    CIFAR) and labels 0..9."""
    rng = np.random.default_rng(seed)
    return (rng.random((n, *shape), dtype=np.float32),
            rng.integers(0, 10, n).astype(np.int64))


# --------------------------------------------------------------------- memory
def _status_mib(field: str) -> float | None:
    """A ``Vm*`` line of /proc/self/status in MiB (None off Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def ru_maxrss_mib() -> float:
    """``getrusage(RUSAGE_SELF).ru_maxrss`` in MiB (KiB on Linux, bytes on macOS).

    On Linux it starts at the *parent's* RSS at fork (it survives fork + exec), so a
    child started by a big benchmark process cannot use it alone: see :func:`memory_probe`.
    """
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def reset_peak() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def memory_probe() -> tuple[float, float, str]:
    """(current RSS, peak RSS so far, how) in MiB.

    Linux: VmRSS and VmHWM of /proc/self/status (the peak belongs to this process image
    alone, and :func:`reset_peak` can reset it); elsewhere the current RSS is unknown and
    both numbers are ``ru_maxrss``.
    """
    rss, hwm = _status_mib("VmRSS"), _status_mib("VmHWM")
    if rss is None or hwm is None:
        peak = ru_maxrss_mib()
        return peak, peak, "ru_maxrss"
    return rss, hwm, "VmHWM"


# --------------------------------------------------------------------- trainers
class Trainer(NamedTuple):
    """One framework's model behind two calls: a training step and the test accuracy."""

    step: Callable[[np.ndarray, np.ndarray], float]
    accuracy: Callable[[np.ndarray, np.ndarray], float]
    setup: dict[str, Any] = {}


def clearconv_trainer(config: dict[str, Any], weights: dict[str, np.ndarray],
                      lr: float, momentum: float) -> Trainer:
    from clearconv.optim import SGD

    from clearconv import Sequential
    from clearconv.kernels import load_compiled_kernels

    # Numba's compiled kernels (clearconv[fast]) are loaded with the imports, as PyTorch's
    # are: a fixed cost of the process (recorded as jit_load_rss_mib), not of the epoch
    before, _, _ = memory_probe()
    jit = load_compiled_kernels()
    setup = {"jit": jit, "jit_load_rss_mib": memory_probe()[0] - before}
    model = Sequential.from_config(config)
    model.load_state_dict(weights)
    opt = SGD(model.parameters(), lr=lr, momentum=momentum)

    def step(x: np.ndarray, y: np.ndarray) -> float:
        return model.train_step(x, y, opt)

    def accuracy(x: np.ndarray, y: np.ndarray) -> float:
        return model.evaluate(x, y, batch_size=EVAL_BATCH)["accuracy"]

    return Trainer(step, accuracy, setup)


def torch_trainer(config: dict[str, Any], weights: dict[str, np.ndarray],
                  lr: float, momentum: float) -> Trainer:
    import torch
    import torch.nn.functional as F

    from . import torch_nets

    net = torch_nets.load_weights(torch_nets.from_config(config), weights)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)

    def step(x: np.ndarray, y: np.ndarray) -> float:
        opt.zero_grad()
        loss = F.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        opt.step()
        return loss.item()

    def accuracy(x: np.ndarray, y: np.ndarray) -> float:
        net.eval()
        correct = 0
        with torch.inference_mode():
            for i in range(0, len(x), EVAL_BATCH):
                pred = net(torch.from_numpy(x[i:i + EVAL_BATCH])).argmax(dim=1).numpy()
                correct += int((pred == y[i:i + EVAL_BATCH]).sum())
        net.train()
        return correct / len(x)

    return Trainer(step, accuracy)


TRAINERS = {"clearconv": clearconv_trainer, "torch": torch_trainer}


# --------------------------------------------------------------------- the epoch
def run_epoch(spec: dict[str, Any]) -> dict[str, Any]:
    """Train one epoch as ``spec`` says; seconds, peak memory, losses, test accuracy.

    ``spec`` keys: ``framework`` ('clearconv' | 'torch'), ``config`` (a clearconv model
    config), ``weights`` (path of an .npz state dict), ``data`` ('synthetic' | 'mnist'),
    ``n_train`` (sample count, or a limit for MNIST; None = all), ``n_test`` (MNIST),
    ``mnist_dir``, ``batch_size``, ``lr``, ``momentum``, ``seed`` (shuffling),
    ``threads``.
    """
    framework = spec["framework"]
    with limit_threads(spec["threads"], with_torch=framework == "torch",
                       with_clearconv=framework == "clearconv"):
        with np.load(spec["weights"]) as f:
            weights = {k: f[k] for k in f.files}
        trainer = TRAINERS[framework](spec["config"], weights, spec["lr"], spec["momentum"])
        if spec["data"] == "mnist":
            x, y = load_mnist(spec["mnist_dir"], "train", spec.get("n_train"))
            x_test, y_test = load_mnist(spec["mnist_dir"], "test", spec.get("n_test"))
        else:
            x, y = synthetic(spec["n_train"], spec["seed"],
                             tuple(spec["config"].get("input_shape") or (1, 28, 28)))
            x_test = y_test = None
        order = np.random.default_rng(spec["seed"]).permutation(len(x))
        batch = spec["batch_size"]
        # baseline: the RSS after imports, model and data; then the peak starts from there
        baseline_mib, _, probe = memory_probe()
        peak_reset = reset_peak()

        losses = []
        t0 = time.perf_counter()
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            losses.append(trainer.step(x[idx], y[idx]))
        seconds = time.perf_counter() - t0
        _, peak_mib, _ = memory_probe()

        result = {"framework": framework, "samples": len(x), "steps": len(losses),
                  "seconds": seconds, "baseline_rss_mib": baseline_mib,
                  "peak_rss_mib": peak_mib, "epoch_rss_mib": peak_mib - baseline_mib,
                  "memory_probe": probe, "peak_reset": peak_reset,
                  "ru_maxrss_mib": ru_maxrss_mib(), "cpu_load": cpu_load(),
                  **trainer.setup,
                  "first_loss": losses[0], "mean_loss": float(np.mean(losses)),
                  "last_loss": losses[-1]}
        if x_test is not None:
            t0 = time.perf_counter()
            result["test_accuracy"] = trainer.accuracy(x_test, y_test)
            result["test_samples"] = len(x_test)
            result["eval_seconds"] = time.perf_counter() - t0
    return result
