"""Blocks that branch: a residual connection and a concatenation of branches.

A branch is a chain of layers run in order. Both blocks are layers themselves, so they
nest inside ``Sequential`` and inside each other: a ResNet is a stack of ``Residual``
blocks, an Inception module a ``Concat`` of chains, a U-Net level a ``Concat`` of the
identity and (down, the levels below, up).

The backward rule where branches meet (MATH.md §9, the chain rule through a fork):
the input x fed every branch, so its gradient is the SUM of the gradients each branch
sends back::

    y = main(x) + shortcut(x)       dL/dx = main'(x)^T dy + shortcut'(x)^T dy
    y = concat(b_1(x), ..., b_k(x))  dL/dx = sum_i b_i'(x)^T dy_i   (dy split by channels)

``Residual`` sends the same dy down both branches (an addition passes it unchanged);
``Concat`` cuts dy into the channel ranges of its branches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ClearConvError, ShapeError
from .base import Layer
from .parameter import Parameter

Chain = list[Layer]


def _chain(branch: Layer | Sequence[Layer] | Any | None, what: str) -> Chain:
    """A branch as a list of layers: a layer, a list of layers, or a Sequential's layers."""
    if branch is None:
        return []
    layers = getattr(branch, "layers", branch)     # a Sequential gives its layers
    if isinstance(layers, Layer):
        return [layers]
    try:
        chain = list(layers)
    except TypeError:
        raise ClearConvError(f"{what} must be a layer or a list of layers, got "
                             f"{type(branch).__name__}") from None
    for i, layer in enumerate(chain):
        if not isinstance(layer, Layer):
            raise ClearConvError(f"{what}[{i}] is not a clearconv Layer: {layer!r}")
    return chain


def _run(chain: Chain, x: np.ndarray, training: bool) -> np.ndarray:
    for layer in chain:
        x = layer.forward(x, training)
    return x


def _back(chain: Chain, dy: np.ndarray) -> np.ndarray:
    for layer in reversed(chain):
        dy = layer.backward(dy)
    return dy


def _shape(chain: Chain, shape: tuple[int, ...], what: str) -> tuple[int, ...]:
    for i, layer in enumerate(chain):
        try:
            shape = tuple(layer.output_shape(shape))
        except ClearConvError as e:
            raise ShapeError(f"{what}[{i}] ({type(layer).__name__}): {e}") from None
    return shape


def _config(chain: Chain) -> list[dict[str, Any]]:
    return [{"type": type(layer).__name__, "config": layer.get_config()} for layer in chain]


def _from_config(specs: list[dict[str, Any]]) -> Chain:
    layers = []
    for spec in specs:
        kind = spec["type"]
        if kind not in Layer.registry:
            raise ClearConvError(f"unknown layer type {kind!r}")
        layers.append(Layer.registry[kind].from_config(spec["config"]))
    return layers


class _Block(Layer):
    """A layer made of named branches (chains of layers)."""

    _abstract = True

    def branches(self) -> dict[str, Chain]:
        raise NotImplementedError

    def parameters(self) -> list[Parameter]:
        return [p for chain in self.branches().values() for layer in chain
                for p in layer.parameters()]

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        return [(f"{name}.{i}.{local}", p) for name, chain in self.branches().items()
                for i, layer in enumerate(chain) for local, p in layer.named_parameters()]

    def named_buffers(self) -> list[tuple[str, np.ndarray]]:
        return [(f"{name}.{i}.{local}", b) for name, chain in self.branches().items()
                for i, layer in enumerate(chain) for local, b in layer.named_buffers()]

    def sublayers(self) -> list[tuple[str, Layer]]:
        """``[('main.0', layer), ...]``: every layer of every branch, named as in the
        parameter names (for summaries and interop)."""
        return [(f"{name}.{i}", layer) for name, chain in self.branches().items()
                for i, layer in enumerate(chain)]

    def astype(self, dtype: np.dtype | type) -> Layer:
        for _, layer in self.sublayers():
            layer.astype(dtype)
        return self


class Residual(_Block):
    """``y = main(x) + shortcut(x)`` (He et al. 2016): the shortcut is the identity (None)
    or a projection (e.g. a 1x1 Conv2D with stride and a BatchNorm2D) where the shapes
    differ.

    >>> from clearconv.layers import Conv2D, ReLU
    >>> block = Residual([Conv2D(4, 4, 3, padding=1, rng=0), ReLU()])
    >>> block.forward(np.ones((2, 4, 5, 5), np.float32)).shape
    (2, 4, 5, 5)
    """

    def __init__(self, main: Layer | Sequence[Layer] | Any,
                 shortcut: Layer | Sequence[Layer] | Any | None = None) -> None:
        self.main = _chain(main, "Residual main")
        self.shortcut = _chain(shortcut, "Residual shortcut")
        if not self.main:
            raise ClearConvError("Residual needs at least one layer in its main branch")

    def branches(self) -> dict[str, Chain]:
        return {"main": self.main, "shortcut": self.shortcut}

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        y = _run(self.main, x, training)
        s = _run(self.shortcut, x, training)
        if y.shape != s.shape:
            raise ShapeError(f"Residual: the main branch gives {y.shape}, the shortcut "
                             f"{s.shape}; give the shortcut a projection that matches")
        return y + s

    def backward(self, dy: np.ndarray) -> np.ndarray:
        # the sum passes dy unchanged to both branches; x fed both: their gradients add
        return _back(self.main, dy) + _back(self.shortcut, dy)

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        out = _shape(self.main, tuple(in_shape), "main")
        short = _shape(self.shortcut, tuple(in_shape), "shortcut")
        if out != short:
            raise ShapeError(f"Residual: the main branch gives {out}, the shortcut {short} "
                             f"(per sample); give the shortcut a projection that matches")
        return out

    def get_config(self) -> dict[str, Any]:
        return {"main": _config(self.main), "shortcut": _config(self.shortcut)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Residual:
        return cls(_from_config(config["main"]), _from_config(config["shortcut"]))

    def __repr__(self) -> str:
        return f"Residual(main={self.main!r}, shortcut={self.shortcut!r})"


class Concat(_Block):
    """``y = concatenate([b_1(x), ..., b_k(x)], axis=1)``: the branches' outputs side by
    side along the channels (an empty branch passes x itself, a U-Net skip).

    >>> from clearconv.layers import Conv2D
    >>> block = Concat([Conv2D(3, 2, 1, rng=0)], [Conv2D(3, 5, 3, padding=1, rng=1)], [])
    >>> block.forward(np.ones((1, 3, 4, 4), np.float32)).shape
    (1, 10, 4, 4)
    """

    def __init__(self, *branches: Layer | Sequence[Layer] | Any) -> None:
        if not branches:
            raise ClearConvError("Concat needs at least one branch")
        self.chains = [_chain(b, f"Concat branch {i}") for i, b in enumerate(branches)]
        self._widths: list[int] = []

    def branches(self) -> dict[str, Chain]:
        return {str(i): chain for i, chain in enumerate(self.chains)}

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        outs = [_run(chain, x, training) for chain in self.chains]
        rest = {o.shape[:1] + o.shape[2:] for o in outs}
        if len(rest) != 1:
            raise ShapeError(f"Concat: the branches give {[o.shape for o in outs]}; all but "
                             f"the channels (axis 1) must agree")
        self._widths = [o.shape[1] for o in outs]
        return np.concatenate(outs, axis=1)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if not self._widths:
            raise ClearConvError("Concat.backward called before forward")
        bounds = np.cumsum([0, *self._widths])
        # each branch gets its channels of dy; x fed them all: their gradients add
        parts = [_back(chain, dy[:, lo:hi]) for chain, lo, hi
                 in zip(self.chains, bounds[:-1], bounds[1:])]
        return sum(parts[1:], parts[0])

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        outs = [_shape(chain, tuple(in_shape), f"branch {i}")
                for i, chain in enumerate(self.chains)]
        if len({o[1:] for o in outs}) != 1:
            raise ShapeError(f"Concat: the branches give {outs} (per sample); all but the "
                             f"channels must agree")
        return (sum(o[0] for o in outs), *outs[0][1:])

    def get_config(self) -> dict[str, Any]:
        return {"branches": [_config(chain) for chain in self.chains]}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Concat:
        return cls(*(_from_config(specs) for specs in config["branches"]))

    def __repr__(self) -> str:
        return f"Concat({', '.join(repr(c) for c in self.chains)})"
