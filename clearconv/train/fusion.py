"""The model's fusion pass: runs of layers that compute as one op, built explicitly.

Two rules, both exact. ReLU is monotone, so ``relu(max(z)) = max(relu(z))``, and a
window whose maximum is not > 0 passes no gradient either way (MATH.md §9, §11):

- a ReLU next to a MaxPool2D (either order) runs as :class:`ReLUMaxPool2D`:
  ``max_pool2d_forward(relu=True)``, one pass over the input instead of three;
- a Conv2D followed by such a pair runs as :class:`ConvReLUMaxPool2D`:
  :func:`~clearconv.functional.conv2d_relu_max_pool2d_forward`, whose 'auto' takes
  ``'direct-fused'`` where the conv would take its direct loop (each output plane pooled
  as it is made, the conv output never stored) and ``'composed'`` (the three ops in
  turn) elsewhere. Values and gradients are bit-identical to the layers one by one.

Measured with both rules off against both on (paired, the same process, float32, batch
64, 2 threads): a LeNet-5 training step took 1.11-1.16x as long without them, the
MNIST CNN's 1.02-1.05x; ``python -m benchmarks.run --cases "train step"`` measures the
fused steps against PyTorch.

:func:`plan` is the only place that decides to fuse. A fused step holds the layers it
stands for: it reads their hyper-parameters, adds into their Parameters' ``grad`` (the
optimizer's public state) and keeps its own cache; it touches no layer's private
state. The layers stay what the model saves, exports and shows. ``Sequential(...,
fuse=False)`` runs every layer on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ClearConvError
from ..functional import (
    conv2d_relu_max_pool2d_algorithm,
    conv2d_relu_max_pool2d_backward,
    conv2d_relu_max_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from ..functional.normalization import BatchNormCall
from ..kernels import registry, tuning
from ..layers import BatchNorm2D, Conv2D, ConvTranspose2D, Layer, MaxPool2D, ReLU
from ..layers.activations import Activation
from ..layers.parameter import Parameter


class ReLUMaxPool2D:
    """A MaxPool2D and a ReLU next to each other (either order), as one op."""

    skips_input_grad = False
    op = "max_pool2d"

    def __init__(self, pool: MaxPool2D, indices: dict[str, int] | None = None) -> None:
        self.pool = pool
        self.indices = indices or {}   # the model's layer index of its 'relu' and 'pool'
        self.algorithm: str | None = None   # of the last forward
        self._cache: Any = None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        p = self.pool
        y, cache = max_pool2d_forward(x, p.kernel_size, p.stride, p.padding, p.ceil_mode,
                                      relu=True, algorithm=p.algorithm, dilation=p.dilation)
        self._cache = cache if training else None
        self.algorithm = cache.algorithm
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise ClearConvError("ReLUMaxPool2D.backward called before forward(training=True)")
        dx = max_pool2d_backward(dy, self._cache)
        self._cache = None
        return dx

    def parameters(self) -> list[Parameter]:
        return []


class ConvReLUMaxPool2D:
    """A Conv2D followed by a ReLU and a MaxPool2D (in either order), as one op."""

    skips_input_grad = True
    op = "conv2d_relu_max_pool2d"

    def __init__(self, conv: Conv2D, pool: MaxPool2D, indices: dict[str, int] | None = None
                 ) -> None:
        self.conv = conv
        self.pool = pool
        self.indices = indices or {}   # the model's layer index of its 'conv', 'relu', 'pool'
        self.algorithm: str | None = None   # of the last forward
        self._cache: Any = None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        c, p = self.conv, self.pool
        y, cache = conv2d_relu_max_pool2d_forward(
            x, c.weight.value, None if c.bias is None else c.bias.value, c.stride, c.padding,
            c.dilation, p.kernel_size, p.stride, p.padding, p.ceil_mode, c.groups,
            need_backward=training, pool_dilation=p.dilation)
        self._cache = cache if training else None
        self.algorithm = cache.algorithm
        return y

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        if self._cache is None:
            raise ClearConvError("ConvReLUMaxPool2D.backward called before "
                                 "forward(training=True)")
        dx, dw, db = conv2d_relu_max_pool2d_backward(dy, self._cache, input_grad)
        self.conv.weight.grad += dw
        if self.conv.bias is not None:
            self.conv.bias.grad += db
        self._cache = None
        return dx

    def parameters(self) -> list[Parameter]:
        return self.conv.parameters()


Step = Any   # a Layer, ReLUMaxPool2D or ConvReLUMaxPool2D: forward / backward


def _relu_pool_pair(layers: Sequence[Layer], i: int) -> dict[str, int] | None:
    """The indices of a (ReLU, MaxPool2D) or (MaxPool2D, ReLU) pair at i, if any."""
    if i + 1 >= len(layers) or {type(layers[i]), type(layers[i + 1])} != {ReLU, MaxPool2D}:
        return None
    if any(type(la) is MaxPool2D and la.return_indices for la in layers[i:i + 2]):
        return None     # its (y, indices) output is not a fused op's
    return {"pool": i, "relu": i + 1} if type(layers[i]) is MaxPool2D else \
        {"relu": i, "pool": i + 1}


def plan(layers: Sequence[Layer], fuse: bool = True) -> list[Step]:
    """The steps a model runs for ``layers``: the layers themselves, with the two rules
    of this module applied when ``fuse`` (exact layer types only: a subclass may
    compute something else)."""
    if not fuse:
        return list(layers)
    steps: list[Step] = []
    i = 0
    while i < len(layers):
        pair = _relu_pool_pair(layers, i)
        if pair is None:
            steps.append(layers[i])
            i += 1
            continue
        pool: MaxPool2D = layers[pair["pool"]]  # type: ignore[assignment]
        prev = steps[-1] if steps else None
        if type(prev) is Conv2D and prev.algorithm == "auto" and pool.algorithm == "auto":
            steps[-1] = ConvReLUMaxPool2D(prev, pool, {"conv": i - 1, **pair})
        else:
            steps.append(ReLUMaxPool2D(pool, pair))
        i += 2
    return steps



#: layers whose output keeps the memory layout of their input (elementwise, in place of
#: NumPy's 'K' order); any other layer's output is C-contiguous
_KEEPS_LAYOUT = (Activation, BatchNorm2D)


def _layout(op: str, algorithm: str, before: str) -> str:
    """The memory layout of an op's output, from its algorithm's declared layout."""
    declared = registry.get(op, algorithm).layout
    return before if declared == "input" else declared


def describe(steps: Sequence[Step], input_shape: tuple[int, ...], dtype: np.dtype
             ) -> dict[int, str]:
    """The algorithm column of ``Sequential.summary``: for each layer index, what runs
    it for per-sample input ``input_shape``: the registry's choice for those shapes, with
    the memory layout each op hands the next followed along."""
    column: dict[int, str] = {}
    shape, layout, index = tuple(input_shape), "NCHW", 0
    for step in steps:
        if isinstance(step, ConvReLUMaxPool2D):
            c, p, at = step.conv, step.pool, step.indices
            choice = conv2d_relu_max_pool2d_algorithm(
                (1, *shape), c.weight.value.shape, c.stride, c.padding, c.dilation,
                p.kernel_size, p.stride, p.padding, p.ceil_mode, c.groups, dtype,
                pool_dilation=p.dilation)
            if choice.name == "composed":      # as a conv, then a ReLUMaxPool2D
                conv = c.algorithm_for(shape, dtype)
                layout = _layout("conv2d", conv.name, layout)
                pool = p.algorithm_for(c.output_shape(shape), dtype, layout, relu=True)
                layout = _layout("max_pool2d", pool.name, layout)
                column[at["conv"]] = conv.name
                column[at["pool"]] = f"{pool.name}, with {at['relu']}"
                column[at["relu"]] = f"in {at['pool']}'s pooling"
            else:
                last = max(at.values())
                column[at["conv"]] = f"{choice.name}: {at['conv']}-{last} as one op"
                column[at["relu"]] = column[at["pool"]] = f"in {at['conv']}'s op"
                layout = _layout(ConvReLUMaxPool2D.op, choice.name, layout)
            shape = p.output_shape(c.output_shape(shape))
            index = max(at.values()) + 1
            continue
        if isinstance(step, ReLUMaxPool2D):
            at = step.indices
            pool = step.pool.algorithm_for(shape, dtype, layout, relu=True)
            column[at["pool"]] = f"{pool.name}, with {at['relu']}"
            column[at["relu"]] = f"in {at['pool']}'s pooling"
            layout = _layout("max_pool2d", pool.name, layout)
            shape = step.pool.output_shape(shape)
            index = max(at.values()) + 1
            continue
        if isinstance(step, Conv2D):
            name = step.algorithm_for(shape, dtype).name
            column[index] = name
            layout = _layout("conv2d", name, layout)
        elif isinstance(step, ConvTranspose2D):
            name = step.algorithm_for(shape, dtype).name
            column[index] = name
            layout = _layout("conv_transpose2d", name, layout)
        elif isinstance(step, MaxPool2D):
            name = step.algorithm_for(shape, dtype, layout).name
            column[index] = name
            layout = _layout("max_pool2d", name, layout)
        elif isinstance(step, BatchNorm2D):
            call = BatchNormCall((tuning.PLAN_BATCH, *shape), np.dtype(dtype), layout, True)
            column[index] = registry.choose("batch_norm2d", "auto", call).name
        elif not isinstance(step, _KEEPS_LAYOUT):
            layout = "NCHW"
        shape = tuple(step.output_shape(shape))
        index += 1
    return column
