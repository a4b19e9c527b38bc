"""Training: the model, its loop, optimizers, callbacks, checkpoints, recipes, ready models.

* :mod:`~clearconv.train.sequential`: :class:`Sequential` (forward, backward, summary,
  ``fit`` / ``evaluate`` / ``predict``, save) and :func:`load`;
* :mod:`~clearconv.train.loop`: the loop of ``fit`` (:class:`~clearconv.train.loop.Trainer`)
  and its :class:`History`;
* :mod:`~clearconv.train.optim`: optimizers and learning-rate schedules;
* :mod:`~clearconv.train.losses`: the losses ``fit`` trains with (``CrossEntropyLoss``,
  ``MSELoss``, ``BCEWithLogitsLoss``; also ``clearconv.losses``);
* :mod:`~clearconv.train.callbacks`: Keras-style callbacks, :class:`BackupAndRestore`
  (checkpoint and resume) among them;
* :mod:`~clearconv.train.checkpoint`: the checkpoint file of a run;
* :mod:`~clearconv.train.recipes`: per-dataset defaults, :func:`recipe` (what
  ``clearconv train`` does, in Python);
* :mod:`~clearconv.train.zoo`: ready architectures (digits CNN, MNIST CNN, LeNet-5).
"""

from . import callbacks, losses, optim, recipes, zoo
from .callbacks import (
    BackupAndRestore,
    Callback,
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    TerminateOnNaN,
)
from .loop import History, Trainer
from .recipes import Recipe, recipe
from .sequential import Sequential, load

__all__ = ["BackupAndRestore", "Callback", "EarlyStopping", "History", "LearningRateScheduler",
           "ModelCheckpoint", "Recipe", "Sequential", "TerminateOnNaN", "Trainer", "callbacks",
           "load", "losses", "optim", "recipe", "recipes", "zoo"]
