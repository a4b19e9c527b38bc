"""Per-dataset training recipes: what ``clearconv train --dataset NAME`` does, as data.

A :class:`Recipe` names the model (from :mod:`~clearconv.train.zoo`), the optimizer and
its learning rate, the schedule, the augmentation, the epochs, the batch size and the
validation split; :func:`recipe` gives the defaults for a dataset, with your changes.
The command line is this module plus printing, so three lines of Python train the same
model to the same weights:

>>> from clearconv.data import load_dataset
>>> ds = load_dataset("digits")                # or load_dataset("mnist", "~/mnist")
>>> model, history = recipe("digits", epochs=1).train(ds, seed=0, verbose=0)
>>> history.epochs
1

=============  ===============  ======  =============================  ==================
dataset        model            epochs  optimizer, lr, schedule        augmentation
=============  ===============  ======  =============================  ==================
digits         digits-cnn       20      Adam 3e-3, constant            (shift)
mnist          mnist-bn-cnn     15      Adam 2e-3, cosine over epochs  **shift**
fashion-mnist  mnist-bn-cnn     15      Adam 1e-3, cosine over epochs  **shift, flip**
kmnist         small-image-cnn  10      Adam 1e-3, cosine over epochs  (shift)
cifar10        small-image-cnn  20      Adam 1e-3, cosine over epochs  (shift, flip)
folder         small-image-cnn  20      Adam 1e-3, cosine over epochs  (shift)
=============  ===============  ======  =============================  ==================

Augmentation in bold is on by default (MNIST and Fashion-MNIST: the batch-norm CNN
with it reaches 99.6-99.7% and 93.9-94.2% in 15 epochs, against 99.25% and 92.7% for
small-image-cnn); in brackets, what ``augment=True`` (``--augment``) switches on.
``augment=False`` (``--no-augment``) switches it off everywhere. A reconstruction
model (``model="conv-autoencoder"``) trains without the default augmentation.

``model`` may name any of :data:`MODELS` (``recipe("mnist", model="mobilenet-cnn")``,
``clearconv train --model NAME``):

================  ===========================================================
model             what it is
================  ===========================================================
digits-cnn        the default for the 8x8 digits (:func:`~.zoo.digits_cnn`)
small-image-cnn   the default for 28x28 to 32x32 images (:func:`~.zoo.small_image_cnn`)
mnist-cnn         the MNIST CNN of the benchmark, any square size (:func:`~.zoo.mnist_cnn`)
lenet5            LeNet-5, 1x28x28 (:func:`~.zoo.lenet5`)
mobilenet-cnn     depthwise-separable blocks with batch norm (:func:`~.zoo.mobilenet_cnn`)
conv-autoencoder  reconstructs its input (:func:`~.zoo.conv_autoencoder`): trained on
                  ``(x, x)`` with ``loss='mse'``, evaluated by its reconstruction loss
mnist-bn-cnn      the batch-norm CNN for 28x28 digits (:func:`~.zoo.mnist_bn_cnn`)
resnet20          ResNet-20 for 32x32 images (:func:`~.zoo.resnet20`)
================  ===========================================================

Batch size 64 and no validation split everywhere; ``shift`` is
:func:`~clearconv.data.random_shift` by up to 2 pixels, ``flip``
:func:`~clearconv.data.random_flip`; ``cosine`` is
:class:`~clearconv.optim.CosineAnnealingLR` with ``T_max = epochs``, stepped after each
epoch by :class:`~clearconv.train.callbacks.LearningRateScheduler`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.augment import Augmenter, compose, random_flip, random_shift
from ..data.datasets import train_val_split
from ..errors import ClearConvError
from ..layers.base import weight_budget
from . import zoo
from .callbacks import BackupAndRestore, Callback, LearningRateScheduler
from .optim import OPTIMIZERS, CosineAnnealingLR, LRScheduler, Optimizer, make_optimizer

if TYPE_CHECKING:
    from ..data.datasets import Dataset
    from .loop import History
    from .sequential import Sequential

__all__ = ["AUGMENTATIONS", "MODELS", "RECIPES", "RECONSTRUCTION_MODELS", "SCHEDULES", "Recipe",
           "evaluation_targets", "recipe"]


def _fixed(name: str, shape: tuple[int, int, int], classes: int,
           build: Callable[[Any], Sequential]) -> Callable[..., Sequential]:
    """A builder for an architecture with a fixed input shape and class count."""

    def builder(input_shape: Sequence[int], num_classes: int, rng: Any) -> Sequential:
        if tuple(input_shape) != shape or num_classes != classes:
            raise ClearConvError(f"the {name} model takes {'x'.join(map(str, shape))} inputs "
                                 f"and {classes} classes, got {tuple(input_shape)} and "
                                 f"{num_classes}")
        return build(rng)

    return builder


def _mnist_cnn(input_shape: Sequence[int], num_classes: int, rng: Any) -> Sequential:
    c, h = zoo.square_input(tuple(input_shape), "mnist-cnn")
    return zoo.mnist_cnn(rng=rng, in_channels=c, size=h, num_classes=num_classes)


def _mnist_bn_cnn(input_shape: Sequence[int], num_classes: int, rng: Any) -> Sequential:
    c, h = zoo.square_input(tuple(input_shape), "mnist-bn-cnn")
    return zoo.mnist_bn_cnn(rng=rng, in_channels=c, size=h, num_classes=num_classes)


def _resnet20(input_shape: Sequence[int], num_classes: int, rng: Any) -> Sequential:
    c, h = zoo.square_input(tuple(input_shape), "resnet20")
    return zoo.resnet20(num_classes, c, rng=rng, size=h)


#: model name -> ``builder(input_shape (C, H, W), num_classes, rng) -> Sequential``
MODELS: dict[str, Callable[[Sequence[int], int, Any], Sequential]] = {
    "digits-cnn": _fixed("digits-cnn", (1, 8, 8), 10, lambda rng: zoo.digits_cnn(rng=rng)),
    "small-image-cnn": lambda shape, k, rng: zoo.small_image_cnn(tuple(shape), k, rng=rng),
    "mnist-cnn": _mnist_cnn,
    "lenet5": _fixed("lenet5", (1, 28, 28), 10, lambda rng: zoo.lenet5(rng=rng)),
    "mobilenet-cnn": lambda shape, k, rng: zoo.mobilenet_cnn(tuple(shape), k, rng=rng),
    "conv-autoencoder": lambda shape, k, rng: zoo.conv_autoencoder(tuple(shape), rng=rng),
    "mnist-bn-cnn": _mnist_bn_cnn,
    "resnet20": _resnet20,
}

#: the models of :data:`MODELS` that reconstruct their input: trained on ``(x, x)`` with
#: ``loss='mse'`` (the labels unused), evaluated by that loss
RECONSTRUCTION_MODELS = frozenset({"conv-autoencoder"})

#: the most weights a recipe's model may have (its largest, for CIFAR-10, has about 0.5 M):
#: a folder of --image-size 4096 4096 or an IDX file of huge images is refused up front
MAX_RECIPE_WEIGHTS = 1 << 25

#: augmentation name -> a fresh augmenter
AUGMENTATIONS: dict[str, Callable[[], Augmenter]] = {
    "shift": lambda: random_shift(2),
    "flip": random_flip,
}

#: schedule name -> ``make(optimizer, epochs) -> LRScheduler``
SCHEDULES: dict[str, Callable[[Optimizer, int], LRScheduler]] = {
    "cosine": lambda optimizer, epochs: CosineAnnealingLR(optimizer, T_max=epochs),
}


@dataclass(frozen=True)
class Recipe:
    """How to train a model for one dataset; every field is plain data (``to_dict``).

    Parameters
    ----------
    dataset : the dataset it is meant for (a name of :data:`clearconv.data.DATASET_NAMES`)
    model : a key of :data:`MODELS`
    epochs : the number of epochs, >= 1
    lr : the (initial) learning rate, > 0
    optimizer : a name :func:`~clearconv.optim.make_optimizer` knows
    batch_size : >= 1
    schedule : a key of :data:`SCHEDULES`, or None for a constant learning rate
    augment : names of :data:`AUGMENTATIONS`, applied in order to each training batch
    val_split : the fraction of the training set held out for validation, in [0, 1)
    """

    dataset: str
    model: str
    epochs: int
    lr: float
    optimizer: str = "adam"
    batch_size: int = 64
    schedule: str | None = None
    augment: tuple[str, ...] = ()
    val_split: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.dataset, str):
            raise ClearConvError(f"dataset must be a name, got {self.dataset!r:.60}")
        if not isinstance(self.augment, (list, tuple)):
            raise ClearConvError(f"augment must be a list of augmentation names, got "
                                 f"{self.augment!r:.60}")
        _check_name("model", self.model, MODELS)
        _check_name("optimizer", self.optimizer, OPTIMIZERS)
        if self.schedule is not None:
            _check_name("schedule", self.schedule, SCHEDULES)
        object.__setattr__(self, "augment", tuple(self.augment))
        for name in self.augment:
            _check_name("augmentation", name, AUGMENTATIONS)
        if self.augment and self.model in RECONSTRUCTION_MODELS:
            raise ClearConvError(f"the {self.model} model reconstructs its input: augmentation "
                                 f"would change the input but not the target; train it "
                                 f"without augment")
        for field_name in ("epochs", "batch_size"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ClearConvError(f"{field_name} must be an int >= 1, got {value!r}")
        if not (_is_number(self.lr) and 0 < self.lr < float("inf")):
            raise ClearConvError(f"lr must be a number > 0, got {self.lr!r}")
        if not (_is_number(self.val_split) and 0.0 <= self.val_split < 1.0):
            raise ClearConvError(f"val_split must be a number in [0, 1), got {self.val_split!r}")

    # ------------------------------------------------------------------ the parts
    @property
    def reconstructs(self) -> bool:
        """True for an autoencoder (:data:`RECONSTRUCTION_MODELS`): its targets are its
        inputs and its loss is 'mse'."""
        return self.model in RECONSTRUCTION_MODELS

    def targets(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """What the model learns to output for x: x itself for an autoencoder, else the
        labels y."""
        return x if self.reconstructs else y

    def build_model(self, input_shape: Sequence[int], num_classes: int,
                    seed: int | np.random.Generator | None = None) -> Sequential:
        """A fresh model for per-sample inputs ``(C, H, W)`` and ``num_classes`` classes,
        initialised from ``seed``. A model of more than :data:`MAX_RECIPE_WEIGHTS`
        weights (inputs far larger than the recipe is made for) is refused with a
        ClearConvError before its weights are allocated."""
        with weight_budget(MAX_RECIPE_WEIGHTS, f"the {self.model!r} model for inputs of "
                                               f"shape {tuple(input_shape)} is too large "
                                               f"(MAX_RECIPE_WEIGHTS = {MAX_RECIPE_WEIGHTS}; "
                                               f"use a smaller --image-size)"):
            return MODELS[self.model](tuple(input_shape), int(num_classes), seed)

    def build_optimizer(self, model: Sequential) -> Optimizer:
        return make_optimizer(self.optimizer, model.parameters(), lr=self.lr)

    def build_scheduler(self, optimizer: Optimizer) -> LRScheduler | None:
        """The schedule on ``optimizer``, or None for a constant learning rate."""
        return None if self.schedule is None else SCHEDULES[self.schedule](optimizer, self.epochs)

    def build_augment(self) -> Augmenter | None:
        """The batch augmenter for ``fit(augment=...)``, or None."""
        if not self.augment:
            return None
        return compose(*(AUGMENTATIONS[name]() for name in self.augment))

    def build_callbacks(self, optimizer: Optimizer) -> list[Callback]:
        """The callbacks the recipe itself needs: the schedule's, if any."""
        scheduler = self.build_scheduler(optimizer)
        return [] if scheduler is None else [LearningRateScheduler(scheduler)]

    def split(self, x: np.ndarray, y: np.ndarray, seed: int = 0
              ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
        """``(x_train, y_train, validation_data)``: ``val_split`` of the samples held out
        at random (by ``seed``), or all of them kept and None."""
        if not self.val_split:
            return x, y, None
        x_tr, y_tr, x_val, y_val = train_val_split(x, y, self.val_split, seed)
        return x_tr, y_tr, (x_val, y_val)

    # ------------------------------------------------------------------ training
    def fit(self, model: Sequential, x: np.ndarray, y: np.ndarray, *, seed: int = 0,
            validation_data: tuple[np.ndarray, np.ndarray] | None = None,
            callbacks: Iterable[Callback] = (), verbose: int = 1,
            backup_dir: str | os.PathLike[str] | None = None, resume: bool = True,
            options: dict[str, Any] | None = None, distributed: Any = None) -> History:
        """Train ``model`` on (x, y) with this recipe's optimizer, schedule, augmentation,
        epochs and batch size: :meth:`Sequential.fit` with those arguments.

        ``backup_dir`` adds a :class:`~clearconv.train.callbacks.BackupAndRestore` there
        (``resume``: continue from its checkpoint if there is one), whose options hold
        this recipe (``"recipe"``), the ``seed`` and your ``options``. ``distributed``
        trains data-parallel (:mod:`clearconv.train.distributed`): ``batch_size`` is then
        per process. An autoencoder (:attr:`reconstructs`) trains on ``(x, x)`` (and
        validates on ``(x_val, x_val)``) with ``loss='mse'``.
        """
        y = self.targets(x, y)
        if validation_data is not None:
            validation_data = (validation_data[0], self.targets(*validation_data))
        optimizer = self.build_optimizer(model)
        everything = [*self.build_callbacks(optimizer), *callbacks]
        if backup_dir is not None:
            saved = {"recipe": self.to_dict(), "seed": seed, **(options or {})}
            everything.append(BackupAndRestore(backup_dir, resume=resume, options=saved))
        return model.fit(x, y, epochs=self.epochs, batch_size=self.batch_size,
                         optimizer=optimizer, validation_data=validation_data,
                         callbacks=everything, verbose=verbose, seed=seed,
                         augment=self.build_augment(), distributed=distributed,
                         loss="mse" if self.reconstructs else None)

    def train(self, dataset: Dataset, *, seed: int = 0, callbacks: Iterable[Callback] = (),
              verbose: int = 1, backup_dir: str | os.PathLike[str] | None = None,
              resume: bool = True, distributed: Any = None) -> tuple[Sequential, History]:
        """Split, build and fit on a :class:`~clearconv.data.Dataset`, as ``clearconv
        train`` does; returns ``(model, history)``. The model knows the class names."""
        x, y, validation = self.split(dataset.x_train, dataset.y_train, seed)
        model = self.build_model(dataset.input_shape, len(dataset.classes), seed)
        model.classes = list(dataset.classes)
        history = self.fit(model, x, y, seed=seed, validation_data=validation,
                           callbacks=callbacks, verbose=verbose, backup_dir=backup_dir,
                           resume=resume, distributed=distributed)
        return model, history

    # ------------------------------------------------------------------ as data
    def replace(self, **changes: Any) -> Recipe:
        """A copy with some fields changed (checked like a new recipe)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-able data (``augment`` as a list)."""
        return {**dataclasses.asdict(self), "augment": list(self.augment)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        """The recipe of :meth:`to_dict` output; ClearConvError naming wrong keys."""
        fields = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING}
        missing, unexpected = sorted(required - set(data)), sorted(set(data) - fields)
        if missing or unexpected:
            raise ClearConvError(f"not a recipe: missing keys {missing}, unexpected keys "
                                 f"{unexpected}")
        return cls(**data)


def evaluation_targets(model: Sequential, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The targets to evaluate a (saved) model on: x for a model that reconstructs its
    input (a loss that is not a classifier's, and outputs of the input's shape), else the
    labels y."""
    if model.loss_fn.classifier or model.input_shape is None:
        return y
    return x if tuple(model.build(model.input_shape)[-1]) == tuple(model.input_shape) else y


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_name(kind: str, name: Any, known: dict[str, Any]) -> None:
    if not isinstance(name, str) or name not in known:     # a list from a damaged file too
        raise ClearConvError(f"unknown {kind} {name!r:.60}; known: {', '.join(known)}")


def _cosine(dataset: str, epochs: int, lr: float, model: str = "small-image-cnn",
            augment: tuple[str, ...] = ()) -> Recipe:
    return Recipe(dataset, model, epochs, lr, schedule="cosine", augment=augment)


#: the defaults of ``clearconv train --dataset NAME``, by dataset
RECIPES: dict[str, Recipe] = {
    "digits": Recipe("digits", "digits-cnn", 20, 3e-3),
    # issue 13, item 9: the batch-norm CNN with augmentation, 15 epochs (seeds 0-2: MNIST
    # 99.62-99.68%, Fashion-MNIST 93.91-94.15%; small-image-cnn 99.25% and 92.68%)
    "mnist": _cosine("mnist", 15, 2e-3, "mnist-bn-cnn", ("shift",)),
    "fashion-mnist": _cosine("fashion-mnist", 15, 1e-3, "mnist-bn-cnn", ("shift", "flip")),
    "kmnist": _cosine("kmnist", 10, 1e-3),
    "cifar10": _cosine("cifar10", 20, 1e-3),
    "folder": _cosine("folder", 20, 1e-3),
}

#: what ``augment=True`` means for a dataset (``shift`` where not listed). Clothes and
#: CIFAR's photos keep their class in a mirror (a left shoe mirrored is a right shoe, still
#: a sneaker); digits and characters do not.
_AUGMENT_ON = {"cifar10": ("shift", "flip"), "fashion-mnist": ("shift", "flip")}


def recipe(dataset: str, **changes: Any) -> Recipe:
    """The recipe of ``clearconv train --dataset DATASET``, with ``changes`` to its fields
    (``recipe("mnist", epochs=2, lr=1e-3)``).

    ``augment=True`` switches the dataset's augmentation on (random shifts, plus flips
    for CIFAR-10 and Fashion-MNIST), ``augment=False`` off; a tuple of names sets it exactly.
    Not given (or None), it is the recipe's default (on for MNIST and Fashion-MNIST),
    except for a ``model`` of :data:`RECONSTRUCTION_MODELS`, which trains without it.
    """
    if dataset not in RECIPES:
        raise ClearConvError(f"no recipe for dataset {dataset!r}; recipes exist for "
                             f"{', '.join(RECIPES)}")
    augment = changes.pop("augment", None)
    if isinstance(augment, bool):
        changes["augment"] = _AUGMENT_ON.get(dataset, ("shift",)) if augment else ()
    elif augment is not None:
        changes["augment"] = augment
    elif changes.get("model") in RECONSTRUCTION_MODELS:
        changes["augment"] = ()     # the default augmentation is for classifiers
    return RECIPES[dataset].replace(**changes)
