"""The Layer protocol and the helpers parametric layers share (initialisation, seeds)."""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np

from ..errors import ClearConvError
from .parameter import Parameter

_default_rng = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seed the generator that layers use when built without ``rng``, like ``torch.manual_seed``."""
    global _default_rng
    _default_rng = np.random.default_rng(seed)


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """A Generator from a seed, a Generator, or None (the module default, see manual_seed)."""
    if rng is None:
        return _default_rng
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


#: the weights that may still be drawn in this context: [left, what], or None (no bound)
_weight_budget: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
    "clearconv_weight_budget", default=None)


@contextlib.contextmanager
def weight_budget(limit: int, what: str) -> Iterator[None]:
    """Within the block, layers may draw at most ``limit`` weights in all: a layer whose
    weight would pass it raises :class:`ClearConvError` naming ``what`` and the shape,
    before anything is allocated. Model loading and the recipes' builders use it, so
    that a size written in any form (``40000``, ``[40000, 1]``) is bounded as built.

    >>> with weight_budget(10, "a test"):  # doctest: +ELLIPSIS
    ...     init_weight((20,), 1, 1, "he", np.random.default_rng(0), np.float32)
    Traceback (most recent call last):
    clearconv.errors.ClearConvError: a test: a weight of shape (20,) (20 values) is more ...
    """
    token = _weight_budget.set([int(limit), what])
    try:
        yield
    finally:
        _weight_budget.reset(token)


def _spend_weights(shape: tuple[int, ...]) -> None:
    budget = _weight_budget.get()
    n = math.prod(int(v) for v in shape)
    if budget is not None:
        if n > budget[0]:
            raise ClearConvError(f"{budget[1]}: a weight of shape {tuple(shape)} ({n} values) "
                                 f"is more than the {budget[0]} values left")
        budget[0] -= n


def init_weight(shape: tuple[int, ...], fan_in: int, fan_out: int, init: str,
                rng: np.random.Generator, dtype: np.dtype) -> np.ndarray:
    """Draw initial weights.

    ``'he'`` (Kaiming normal, for ReLU nets): ``N(0, 2/fan_in)``.
    ``'glorot'`` (Xavier uniform): ``U(-a, a)``, ``a = sqrt(6/(fan_in + fan_out))``.
    ``'torch'`` (PyTorch's default for Conv2d/Linear): ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

    Inside :func:`weight_budget`, a shape beyond what is left is refused first.
    """
    _spend_weights(shape)
    if init == "he":
        w = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    elif init == "glorot":
        a = np.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-a, a, shape)
    elif init == "torch":
        a = 1.0 / np.sqrt(fan_in)
        w = rng.uniform(-a, a, shape)
    else:
        raise ClearConvError(f"unknown init {init!r}: use 'he', 'glorot' or 'torch'")
    return w.astype(dtype)


class Layer:
    """Base class of every layer.

    A layer maps a batch ``x`` to ``y = forward(x, training)``, remembers what its
    backward needs, and ``backward(dy)`` returns ``dx`` while ADDING the parameter
    gradients into each ``Parameter.grad`` (zero them with ``optimizer.zero_grad()``).
    ``output_shape`` works on per-sample shapes (no batch axis).
    """

    #: True for layers whose backward takes ``input_grad=False`` to skip computing dx
    #: (the model uses it for its first layer during training)
    skips_input_grad: ClassVar[bool] = False
    #: registry of layer classes by name, for loading saved models
    registry: ClassVar[dict[str, type[Layer]]] = {}
    #: the mode (PyTorch's ``module.training``), set by :meth:`train` / :meth:`eval`: a
    #: forward that records for backward (``training=True``) behaves as in training
    #: (dropout on, batch norm with the batch's statistics) only in training mode
    training: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # base classes and private helpers are not saved, so never loaded
        if not cls.__dict__.get("_abstract", False) and not cls.__name__.startswith("_"):
            Layer.registry[cls.__name__] = cls

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return self.forward(x, training)

    def parameters(self) -> list[Parameter]:
        """The trainable parameters, in a fixed order (empty for parameter-free layers)."""
        return []

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        """``[(local_name, Parameter), ...]``, e.g. ``[('weight', ...), ('bias', ...)]``."""
        return []

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Per-sample output shape for a per-sample input shape; raises on a mismatch."""
        return tuple(in_shape)

    def sublayers(self) -> list[tuple[str, Layer]]:
        """The layers inside this one, ``[(dotted name, layer), ...]`` (blocks; empty
        for a plain layer)."""
        return []

    def walk(self) -> list[Layer]:
        """This layer and every layer inside it, depth first."""
        return [self, *(inner for _, layer in self.sublayers() for inner in layer.walk())]

    def named_buffers(self) -> list[tuple[str, np.ndarray]]:
        """State that is saved but not trained, ``[(local_name, array), ...]`` (batch
        norm's running statistics; empty for most layers). The arrays are live: updated
        in place, so views stay valid."""
        return []

    def train(self, mode: bool = True) -> Layer:
        """Training mode (``mode=True``) or evaluation mode for this layer and every layer
        inside it, as PyTorch's ``module.train(mode)``; returns self."""
        for layer in self.walk():
            layer.training = bool(mode)
        return self

    def eval(self) -> Layer:
        """Evaluation mode: ``train(False)``. Dropout is the identity and batch norm uses
        its running statistics, also in passes that record for backward."""
        return self.train(False)

    def get_config(self) -> dict[str, Any]:
        """JSON-able constructor arguments (what ``from_config`` needs)."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        return cls(**config)

    def astype(self, dtype: np.dtype | type) -> Layer:
        """Convert the parameters to ``dtype`` in place (e.g. float64 for gradient checks)."""
        for p in self.parameters():
            p.value = p.value.astype(dtype)
            p.grad = np.zeros_like(p.value)
        return self

    def _need_cache(self, cache: Any) -> Any:
        if cache is None:
            raise ClearConvError(
                f"{type(self).__name__}.backward called before forward(training=True)"
            )
        return cache

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class _WeightLayer(Layer):
    """A layer with a ``weight`` and an optional ``bias`` Parameter whose functional
    backward returns ``(dx, dweight, dbias)`` and can skip dx (Conv2D, Dense)."""

    skips_input_grad = True
    weight: Parameter
    bias: Parameter | None
    _cache: Any
    #: the functional backward: ``(dy, cache, input_grad) -> (dx, dweight, dbias)``
    _backward_op: ClassVar[Callable[..., tuple[Any, np.ndarray, Any]]]

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        dx, dw, db = type(self)._backward_op(dy, self._need_cache(self._cache), input_grad)
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        self._cache = None
        return dx

    def parameters(self) -> list[Parameter]:
        return [self.weight] if self.bias is None else [self.weight, self.bias]

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        # the local names, not ``p.name``: a model renames its parameters '0.weight', ...
        return [(local, p) for local, p in (("weight", self.weight), ("bias", self.bias))
                if p is not None]
