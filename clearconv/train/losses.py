"""Loss objects for :meth:`Sequential.fit <clearconv.Sequential.fit>`, with PyTorch's names.

``fit(x, y, loss=...)`` takes one of these objects or its name:

- ``'cross_entropy'`` (the default), :class:`CrossEntropyLoss`: ``y`` holds class
  indices (N,) (or (N, d1, ...) for (N, C, d1, ...) outputs), or class probabilities of
  the output's shape;
- ``'mse'``, :class:`MSELoss`: ``y`` holds floats of the output's shape (``y = x`` for
  an autoencoder);
- ``'bce_with_logits'``, :class:`BCEWithLogitsLoss`: ``y`` holds floats in [0, 1] of the
  output's shape (one yes/no target per output).

Each object is called as in PyTorch, ``loss(output, target) -> value``, and holds the
pair ``forward(output, target) -> (value, cache)`` / ``backward(cache) -> dL/d(output)``
of :mod:`clearconv.functional.losses` that training runs. ``evaluate`` reports the loss
and, for cross-entropy (a classifier), the accuracy. ``get_config()`` is plain data, kept
in the model file and in checkpoints, so that a loaded model and a resumed run use the
same loss.

>>> import numpy as np
>>> loss = CrossEntropyLoss(label_smoothing=0.1)
>>> round(loss(np.zeros((2, 3)), np.array([0, 2])), 6)     # log 3
1.098612
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..errors import ClearConvError, ShapeError
from ..functional import losses as FL
from ..shapes import check_reduction

__all__ = ["BCEWithLogitsLoss", "CrossEntropyLoss", "LOSSES", "Loss", "MSELoss", "get_loss"]


class Loss:
    """Base class: a loss with its options, as a callable and as a forward/backward pair.

    Subclasses set ``name`` (the key of :data:`LOSSES`) and ``classifier`` (whether the
    model's outputs are class scores, so that accuracy means something).
    """

    name: ClassVar[str] = ""
    classifier: ClassVar[bool] = False

    def __init__(self, reduction: str = "mean") -> None:
        self.reduction = check_reduction(reduction)

    # ------------------------------------------------------------------ the math
    def forward(self, output: np.ndarray, target: np.ndarray) -> tuple[Any, Any]:
        """``(value, cache)``: the loss of ``output`` against ``target``."""
        raise NotImplementedError

    def backward(self, cache: Any, d_loss: Any = 1.0) -> np.ndarray:
        """``dL/d(output)`` for the cache of :meth:`forward` (times ``d_loss``)."""
        raise NotImplementedError

    def __call__(self, output: np.ndarray, target: np.ndarray) -> Any:
        return self.forward(output, target)[0]

    # ------------------------------------------------------------------ for fit
    def per_sample(self, value: float, n: int) -> float:
        """A batch's loss as a mean per sample (what ``fit`` and ``evaluate`` report):
        the value itself for ``reduction='mean'``, the value / n for 'sum'."""
        return value / n if self.reduction == "sum" and n else value

    def check_training(self) -> None:
        """Raise unless the loss gives one number to minimise ('mean' or 'sum')."""
        if self.reduction == "none":
            raise ClearConvError(f"{type(self).__name__}(reduction='none') gives one loss per "
                                 f"sample; training needs reduction='mean' or 'sum'")

    def check_target(self, y: np.ndarray, output_shape: tuple[int, ...]) -> np.ndarray:
        """Check training targets ``y`` (N, ...) against the model's per-sample output
        shape before any step runs; returns y (converted where needed)."""
        expected = (len(y), *output_shape)
        if y.shape != expected:
            raise ShapeError(f"{type(self).__name__} needs targets of the output's shape "
                             f"{expected}, got y of shape {y.shape}")
        if y.dtype.kind not in "fiub":
            raise ShapeError(f"{type(self).__name__} needs numeric targets, got dtype {y.dtype}")
        return y

    def correct(self, output: np.ndarray, target: np.ndarray) -> int | None:
        """How many samples of a batch are classified right (for the accuracy), None for a
        loss that is not a classifier's."""
        return None

    def reports_accuracy(self, output_shape: tuple[int, ...]) -> bool:
        """Whether ``fit`` and ``evaluate`` report an accuracy for a model with these
        per-sample outputs: for a classifier's loss on (N, C) outputs."""
        return self.classifier and len(output_shape) == 1

    # ------------------------------------------------------------------ as data
    def get_config(self) -> dict[str, Any]:
        """The options as JSON-able data (``{"name": ..., ...}``)."""
        return {"name": self.name, "reduction": self.reduction}

    @property
    def is_default(self) -> bool:
        """True for ``CrossEntropyLoss()`` with every option at its default."""
        return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Loss) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash(repr(self))

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({options})"


def _array_or_none(value: Any) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=np.float64)


def _listed(value: np.ndarray | None) -> list[float] | None:
    return None if value is None else [float(v) for v in np.asarray(value).reshape(-1)]


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy on logits, as ``torch.nn.CrossEntropyLoss``
    (:func:`clearconv.functional.cross_entropy_forward` has the formulas).

    Parameters
    ----------
    weight : optional (C,) weight per class
    ignore_index : targets equal to it count for nothing (default -100)
    reduction : 'mean' (the weighted mean, as PyTorch), 'sum' or 'none'
    label_smoothing : in [0, 1]

    With every option at its default this is the plain mean softmax cross-entropy of
    :func:`~clearconv.functional.softmax_cross_entropy_forward`, which it then runs (the
    numbers ``fit`` has always produced).
    """

    name = "cross_entropy"
    classifier = True

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__(reduction)
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
            raise ClearConvError(f"ignore_index must be an int, got {ignore_index!r}")
        if isinstance(label_smoothing, bool) or not 0.0 <= float(label_smoothing) <= 1.0:
            raise ClearConvError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
        self.weight = _array_or_none(weight)
        if self.weight is not None and self.weight.ndim != 1:
            raise ShapeError(f"weight must be 1-D, one value per class, got shape "
                             f"{self.weight.shape}")
        self.ignore_index = int(ignore_index)
        self.label_smoothing = float(label_smoothing)

    @property
    def is_default(self) -> bool:
        return (self.weight is None and self.ignore_index == -100 and self.reduction == "mean"
                and self.label_smoothing == 0.0)

    def _plain(self, output: np.ndarray, target: np.ndarray) -> bool:
        return (self.is_default and output.ndim == 2 and target.shape == output.shape[:1]
                and (target.dtype.kind in "iu" or not (target == -100).any()))

    def forward(self, output: np.ndarray, target: np.ndarray) -> tuple[Any, Any]:
        target = np.asarray(target)
        if self._plain(np.asarray(output), target):
            loss, cache = FL.softmax_cross_entropy_forward(output, target)
            return loss, ("plain", cache)
        loss, cache = FL.cross_entropy_forward(output, target, self.weight, self.ignore_index,
                                               self.reduction, self.label_smoothing)
        return loss, ("full", cache)

    def backward(self, cache: Any, d_loss: Any = 1.0) -> np.ndarray:
        kind, inner = cache
        if kind == "plain":
            return FL.softmax_cross_entropy_backward(d_loss, inner)
        return FL.cross_entropy_backward(d_loss, inner)

    def check_target(self, y: np.ndarray, output_shape: tuple[int, ...]) -> np.ndarray:
        if y.shape == (len(y), *output_shape) and y.dtype.kind == "f":
            return y                               # class probabilities
        expected = (len(y), *output_shape[1:])
        if y.shape != expected:
            raise ShapeError(f"cross-entropy needs class indices of shape {expected} (or class "
                             f"probabilities of shape {(len(y), *output_shape)}) for outputs "
                             f"{('N', *output_shape)}, got y of shape {y.shape}")
        return y

    def correct(self, output: np.ndarray, target: np.ndarray) -> int | None:
        """Samples whose highest score is their class (the class of highest probability
        for probability targets; ignored targets count as wrong); None unless the
        outputs are (N, C)."""
        if output.ndim != 2:
            return None
        predicted = output.argmax(axis=1)
        if target.shape == output.shape:
            return int((predicted == target.argmax(axis=1)).sum())
        return int((predicted == target).sum())

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "weight": _listed(self.weight),
                "ignore_index": self.ignore_index, "reduction": self.reduction,
                "label_smoothing": self.label_smoothing}


class MSELoss(Loss):
    """Mean squared error, as ``torch.nn.MSELoss``: ``mean((output - target)^2)`` over
    every element ('mean'), the sum ('sum') or each element ('none'). For regression
    and reconstruction (an autoencoder trains with ``loss='mse'`` and ``y = x``)."""

    name = "mse"

    def forward(self, output: np.ndarray, target: np.ndarray) -> tuple[Any, Any]:
        return FL.mse_forward(output, target, self.reduction)

    def backward(self, cache: Any, d_loss: Any = 1.0) -> np.ndarray:
        return FL.mse_backward(d_loss, cache)


class BCEWithLogitsLoss(Loss):
    """Binary cross-entropy on logits, as ``torch.nn.BCEWithLogitsLoss`` (a sigmoid and
    the binary cross-entropy in one stable formula, :func:`clearconv.functional.
    binary_cross_entropy_with_logits_forward`); for several independent yes/no outputs
    (multi-label) or one.

    Parameters
    ----------
    weight : optional weight of each element, broadcast against the output
    reduction : 'mean', 'sum' or 'none'
    pos_weight : optional weight of the positive targets, broadcast against the
        output's last axis (one per class)
    """

    name = "bce_with_logits"

    def __init__(self, weight: Any = None, reduction: str = "mean", pos_weight: Any = None
                 ) -> None:
        super().__init__(reduction)
        self.weight = _array_or_none(weight)
        self.pos_weight = _array_or_none(pos_weight)

    def _cast(self, value: np.ndarray | None, output: np.ndarray) -> np.ndarray | None:
        dtype = output.dtype if output.dtype in (np.float32, np.float64) else np.float64
        return None if value is None else value.astype(dtype)

    def forward(self, output: np.ndarray, target: np.ndarray) -> tuple[Any, Any]:
        output = np.asarray(output)
        return FL.binary_cross_entropy_with_logits_forward(
            output, target, self._cast(self.weight, output), self._cast(self.pos_weight, output),
            self.reduction)

    def backward(self, cache: Any, d_loss: Any = 1.0) -> np.ndarray:
        return FL.binary_cross_entropy_with_logits_backward(d_loss, cache)

    def get_config(self) -> dict[str, Any]:
        shape = None if self.weight is None else list(self.weight.shape)
        pos_shape = None if self.pos_weight is None else list(self.pos_weight.shape)
        return {"name": self.name, "weight": _listed(self.weight), "weight_shape": shape,
                "reduction": self.reduction, "pos_weight": _listed(self.pos_weight),
                "pos_weight_shape": pos_shape}


#: name -> loss class (``fit(loss=NAME)``)
LOSSES: dict[str, type[Loss]] = {
    "cross_entropy": CrossEntropyLoss,
    "mse": MSELoss,
    "bce_with_logits": BCEWithLogitsLoss,
}


def get_loss(loss: Loss | str | dict[str, Any] | None) -> Loss:
    """A :class:`Loss` from an object (returned as is), a name of :data:`LOSSES`, a
    :meth:`Loss.get_config` dict, or None (``CrossEntropyLoss()``)."""
    if loss is None:
        return CrossEntropyLoss()
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ClearConvError(f"unknown loss {loss!r}; known: {', '.join(LOSSES)}")
        return LOSSES[loss]()
    if isinstance(loss, dict):
        return _from_config(loss)
    raise ClearConvError(f"loss must be a clearconv Loss, one of {', '.join(LOSSES)} or a "
                         f"loss config, got {loss!r}")


def _from_config(config: dict[str, Any]) -> Loss:
    options = dict(config)
    name = options.pop("name", None)
    if name not in LOSSES:
        raise ClearConvError(f"unknown loss {name!r} in a loss config; known: "
                             f"{', '.join(LOSSES)}")
    for key in ("weight", "pos_weight"):
        shape = options.pop(f"{key}_shape", None)
        if options.get(key) is not None and shape is not None:
            options[key] = np.asarray(options[key], np.float64).reshape(shape)
    try:
        return LOSSES[name](**options)
    except TypeError as e:
        raise ClearConvError(f"invalid {name} loss config {config!r}: {e}") from None
