"""Training: the model, its loop, optimizers, callbacks, checkpoints and ready models.

* :mod:`~clearconv.train.sequential`: :class:`Sequential` (forward, backward, summary,
  ``fit`` / ``evaluate`` / ``predict``, save) and :func:`load`;
* :mod:`~clearconv.train.optim`: optimizers and learning-rate schedules;
* :mod:`~clearconv.train.callbacks`: Keras-style callbacks;
* :mod:`~clearconv.train.checkpoint`: the checkpoint file of a run;
* :mod:`~clearconv.train.zoo`: ready architectures (digits CNN, MNIST CNN, LeNet-5).
"""

from . import callbacks, optim, zoo
from .callbacks import Callback, EarlyStopping, LearningRateScheduler, ModelCheckpoint, TerminateOnNaN
from .sequential import History, Sequential, load

__all__ = ["Callback", "EarlyStopping", "History", "LearningRateScheduler", "ModelCheckpoint",
           "Sequential", "TerminateOnNaN", "callbacks", "load", "optim", "zoo"]
