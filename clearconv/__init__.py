"""clearconv: a NumPy-only convolutional neural network library, built from the math up.

Exact (every fast op has a loop-by-loop reference twin and a gradient check), fast
(sliding windows and matrix products), explained (MATH.md notation throughout).

>>> import clearconv as cc
>>> from clearconv.layers import Conv2D, ReLU, MaxPool2D, Flatten, Dense
>>> model = cc.Sequential(Conv2D(1, 8, 3, padding="same"), ReLU(), MaxPool2D(2),
...                       Flatten(), Dense(8 * 4 * 4, 10), input_shape=(1, 8, 8))

The package is grouped by purpose, each group using only the ones before it:
``errors``, ``shapes``, ``reference``, ``functional``, ``kernels``, ``layers``,
``train``, ``io``, ``data``, ``filters``, ``gradcheck``, ``explain``, ``cli``
(docs/ARCHITECTURE.md).
"""

from typing import Any

from . import _moved, functional, kernels, layers, shapes
from ._version import __version__
from .errors import ClearConvError, ModelFileError, NumericalError, ShapeError
from .gradcheck import gradcheck
from .kernels import get_num_threads, set_num_threads
from .kernels import region as parallel
from .layers import manual_seed
from .train import (
    BackupAndRestore,
    Callback,
    EarlyStopping,
    History,
    ModelCheckpoint,
    Sequential,
    TerminateOnNaN,
    load,
    losses,
    optim,
)

__all__ = [
    "BackupAndRestore",
    "Callback",
    "ClearConvError",
    "EarlyStopping",
    "History",
    "ModelCheckpoint",
    "ModelFileError",
    "NumericalError",
    "Sequential",
    "ShapeError",
    "TerminateOnNaN",
    "__version__",
    "functional",
    "get_num_threads",
    "gradcheck",
    "kernels",
    "layers",
    "load",
    "losses",
    "manual_seed",
    "optim",
    "parallel",
    "set_num_threads",
    "shapes",
]

from .kernels import algorithms  # noqa: E402, F401  (registers the fast algorithms)

_moved.install()


def __getattr__(name: str) -> Any:
    """``clearconv.zoo`` and the other moved modules as attributes (see clearconv._moved)."""
    if name in _moved.MOVED:
        return _moved.resolve(name)
    raise AttributeError(f"module 'clearconv' has no attribute {name!r}")
