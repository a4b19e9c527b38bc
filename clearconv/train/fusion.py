"""The model's fusion pass: runs of layers that compute as one op, built explicitly.

ReLU is monotone, so ``relu(max(z)) = max(relu(z))``, and a window whose maximum is not
> 0 passes no gradient either way (MATH.md §9, §11):

- a ReLU next to a MaxPool2D (either order) runs as :class:`ReLUMaxPool2D`:
  ``max_pool2d_forward(relu=True)``, one pass over the input instead of three;
- a Conv2D followed by such a pair runs as :class:`ConvReLUMaxPool2D`:
  :func:`~clearconv.functional.conv2d_relu_max_pool2d_forward`, whose 'auto' takes
  ``'direct-fused'`` where the conv would take its direct loop (each output plane pooled
  as it is made, the conv output never stored) and ``'composed'`` (the three ops in
  turn) elsewhere. Values and gradients are bit-identical to the layers one by one.

Batch norm and the residual blocks around it:

- a BatchNorm2D followed by a ReLU runs as :class:`BatchNormReLU`:
  ``batch_norm2d_forward(relu=True)``, the ReLU written by batch norm's output pass and
  its mask applied inside batch norm's backward passes (bit-identical);
- a Conv2D followed by a BatchNorm2D (and a ReLU, or a ReLU and a MaxPool2D) runs as
  :class:`ConvBatchNorm`. In a pass that records nothing for backward and in which the
  batch norm uses its running statistics (inference: ``predict``, ``evaluate``,
  ``model(x)``), the batch norm is an affine map per channel and is folded into the
  conv's weights (:func:`~clearconv.functional.normalization.batch_norm2d_fold`,
  recomputed from the current weights at every such pass: C_out x C_in x kh x kw
  multiplies), the ReLU applied in place on the conv's output (or the
  ``conv2d_relu_max_pool2d`` op run on the folded weights): equal to the layers one by
  one to rounding. Every other pass runs the conv, then the batch norm (with its ReLU:
  :class:`BatchNormReLU`), bit-identical;
- a Residual block runs as :class:`ResidualReLU`, its branches planned by these same
  rules, and the ReLU after it (if any) applied in the pass that adds the branches
  (:func:`~clearconv.functional.add_relu_forward`), in training and inference alike
  (bit-identical).

Measured with the two pooling rules off against both on (paired, the same process, float32, batch
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

from ..errors import ClearConvError, ShapeError
from ..functional import (
    add_relu_backward,
    add_relu_forward,
    conv2d_forward,
    conv2d_relu_max_pool2d_algorithm,
    conv2d_relu_max_pool2d_backward,
    conv2d_relu_max_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from ..functional.normalization import BatchNormCall, batch_norm2d_fold
from ..kernels import registry, tuning
from ..layers import BatchNorm2D, Conv2D, ConvTranspose2D, Layer, MaxPool2D, ReLU, Residual
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


class BatchNormReLU:
    """A BatchNorm2D followed by a ReLU, as one op: ``bn.forward(x, training, relu=True)``."""

    skips_input_grad = False
    op = "batch_norm2d"

    def __init__(self, bn: BatchNorm2D, indices: dict[str, int] | None = None) -> None:
        self.bn = bn
        self.indices = indices or {}   # the model's layer index of its 'bn' and 'relu'

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return self.bn.forward(x, training, relu=True)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return self.bn.backward(dy)

    def parameters(self) -> list[Parameter]:
        return self.bn.parameters()


def _folded(conv: Conv2D, bn: BatchNorm2D) -> tuple[np.ndarray, np.ndarray]:
    """The conv's weight and bias with the batch norm's running statistics folded in."""
    return batch_norm2d_fold(
        conv.weight.value, None if conv.bias is None else conv.bias.value,
        None if bn.weight is None else bn.weight.value,
        None if bn.bias is None else bn.bias.value, bn.running_mean, bn.running_var, bn.eps)


class ConvBatchNorm:
    """A Conv2D followed by a BatchNorm2D, and a ReLU (``relu``) or a ReLU and a max
    pooling (``pool``), as one step: in inference one conv with the batch norm folded
    into its weights, else the layers in turn (see the module docstring)."""

    skips_input_grad = True
    op = "conv2d"

    def __init__(self, conv: Conv2D, bn: BatchNorm2D, relu: bool = False,
                 pool: ReLUMaxPool2D | None = None, indices: dict[str, int] | None = None
                 ) -> None:
        self.conv = conv
        self.bn = bn
        self.relu = relu
        self.pool = pool
        self.indices = indices or {}   # the model's layer index of 'conv', 'bn', ...
        self.folded = False            # whether the last forward ran folded

    def folds(self, training: bool) -> bool:
        """Whether a forward with this ``training`` flag runs the folded conv: it records
        nothing for backward and the batch norm uses its running statistics."""
        return not training and not self.bn.uses_batch_stats(False) \
            and self.bn.num_features == self.conv.out_channels  # (else BN's error)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.folded = self.folds(training)
        if not self.folded:
            y = self.conv.forward(x, training)
            y = self.bn.forward(y, training, relu=self.relu)
            return y if self.pool is None else self.pool.forward(y, training)
        c, p = self.conv, self.pool
        weight, bias = _folded(c, self.bn)
        if p is not None and c.algorithm == "auto" and p.pool.algorithm == "auto":
            q = p.pool
            y, _ = conv2d_relu_max_pool2d_forward(
                x, weight, bias, c.stride, c.padding, c.dilation, q.kernel_size, q.stride,
                q.padding, q.ceil_mode, c.groups, need_backward=False,
                pool_dilation=q.dilation)
            return y
        y, _ = conv2d_forward(x, weight, bias, c.stride, c.padding, c.dilation, c.groups,
                              algorithm=c.algorithm, need_backward=False)
        if p is not None:
            return p.forward(y, False)
        return np.maximum(y, 0, out=y) if self.relu else y    # y is the conv's own

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        if self.folded:
            raise ClearConvError("ConvBatchNorm.backward called before forward(training=True)")
        if self.pool is not None:
            dy = self.pool.backward(dy)
        return self.conv.backward(self.bn.backward(dy), input_grad)

    def parameters(self) -> list[Parameter]:
        return [*self.conv.parameters(), *self.bn.parameters()]


def _run(steps: Sequence[Any], x: np.ndarray, training: bool) -> np.ndarray:
    for step in steps:
        x = step.forward(x, training)
    return x


def _back(steps: Sequence[Any], dy: np.ndarray) -> np.ndarray:
    for step in reversed(steps):
        dy = step.backward(dy)
    return dy


def _owns_output(steps: Sequence[Any]) -> bool:
    """Whether the last output of a branch is an array no one else holds: a folded
    conv's (inference), made by its last forward and kept by no cache."""
    last = steps[-1] if steps else None
    return isinstance(last, ConvBatchNorm) and last.folded and last.pool is None


class ResidualReLU:
    """A Residual block, its branches run as this module plans them, and the ReLU after
    it (``relu``) in the pass that adds the branches: ``y = max(main(x) + shortcut(x), 0)``.

    Backward (the rule of :mod:`clearconv.layers.blocks`): the ReLU's mask on dy, the
    masked gradient down both branches, their input gradients added."""

    skips_input_grad = False
    op = "add_relu"

    def __init__(self, block: Residual, relu: bool = False,
                 indices: dict[str, int] | None = None) -> None:
        self.block = block
        self.relu = relu
        self.indices = indices or {}   # the model's layer index of its 'block' ('relu')
        self._plan: tuple[tuple[int, ...], list[Any], list[Any]] | None = None
        self._cache: Any = None

    def branches(self) -> tuple[list[Any], list[Any]]:
        """The steps of the main branch and of the shortcut (planned again when a branch's
        layers change)."""
        key = (*map(id, self.block.main), -1, *map(id, self.block.shortcut))
        if self._plan is None or self._plan[0] != key:
            self._plan = (key, plan(self.block.main), plan(self.block.shortcut))
        return self._plan[1], self._plan[2]

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        main, shortcut = self.branches()
        a = _run(main, x, training)
        s = _run(shortcut, x, training)
        if a.shape != s.shape:
            raise ShapeError(f"Residual: the main branch gives {a.shape}, the shortcut "
                             f"{s.shape}; give the shortcut a projection that matches")
        # a folded conv's output is this step's own: the sum may overwrite it
        own = a if _owns_output(main) else s if _owns_output(shortcut) else None
        if not self.relu:
            self._cache = True if training else None
            return a + s if own is None else np.add(a, s, out=own)
        y, cache = add_relu_forward(a, s, out=own)
        self._cache = cache if training else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise ClearConvError("ResidualReLU.backward called before forward(training=True)")
        g = add_relu_backward(dy, self._cache) if self.relu else dy
        self._cache = None
        main, shortcut = self.branches()
        # x fed both branches: their gradients add
        return _back(main, g) + _back(shortcut, g)

    def parameters(self) -> list[Parameter]:
        return self.block.parameters()


Step = Any   # a Layer or one of the fused steps above: forward / backward


def _relu_pool_pair(layers: Sequence[Layer], i: int) -> dict[str, int] | None:
    """The indices of a (ReLU, MaxPool2D) or (MaxPool2D, ReLU) pair at i, if any."""
    if i + 1 >= len(layers) or {type(layers[i]), type(layers[i + 1])} != {ReLU, MaxPool2D}:
        return None
    if any(type(la) is MaxPool2D and la.return_indices for la in layers[i:i + 2]):
        return None     # its (y, indices) output is not a fused op's
    return {"pool": i, "relu": i + 1} if type(layers[i]) is MaxPool2D else \
        {"relu": i, "pool": i + 1}


def _is(layers: Sequence[Layer], i: int, kind: type) -> bool:
    return i < len(layers) and type(layers[i]) is kind


def plan(layers: Sequence[Layer], fuse: bool = True) -> list[Step]:
    """The steps a model runs for ``layers``: the layers themselves, with the rules of
    this module applied when ``fuse`` (exact layer types only: a subclass may compute
    something else)."""
    if not fuse:
        return list(layers)
    steps: list[Step] = []
    i = 0
    while i < len(layers):
        if _is(layers, i, Conv2D) and _is(layers, i + 1, BatchNorm2D):
            conv, bn = layers[i], layers[i + 1]
            at = {"conv": i, "bn": i + 1}
            tail = _relu_pool_pair(layers, i + 2)
            if tail is not None:
                pool = ReLUMaxPool2D(layers[tail["pool"]], tail)  # type: ignore[arg-type]
                steps.append(ConvBatchNorm(conv, bn, pool=pool, indices={**at, **tail}))
                i += 4
            elif _is(layers, i + 2, ReLU):
                steps.append(ConvBatchNorm(conv, bn, relu=True, indices={**at, "relu": i + 2}))
                i += 3
            else:
                steps.append(ConvBatchNorm(conv, bn, indices=at))
                i += 2
            continue
        if _is(layers, i, BatchNorm2D) and _is(layers, i + 1, ReLU) \
                and _relu_pool_pair(layers, i + 1) is None:
            steps.append(BatchNormReLU(layers[i], {"bn": i, "relu": i + 1}))
            i += 2
            continue
        if _is(layers, i, Residual):
            relu = _is(layers, i + 1, ReLU) and _relu_pool_pair(layers, i + 1) is None
            at = {"block": i, "relu": i + 1} if relu else {"block": i}
            steps.append(ResidualReLU(layers[i], relu, at))  # type: ignore[arg-type]
            i += 2 if relu else 1
            continue
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
        if isinstance(step, (BatchNormReLU, ConvBatchNorm, ResidualReLU)):
            shape, layout = _describe_bn_steps(step, shape, layout, dtype, column)
            index = max(step.indices.values()) + 1
            continue
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
            column[index] = _bn_name(shape, layout, dtype)
        elif not isinstance(step, _KEEPS_LAYOUT):
            layout = "NCHW"
        shape = tuple(step.output_shape(shape))
        index += 1
    return column


def _bn_name(shape: tuple[int, ...], layout: str, dtype: np.dtype) -> str:
    call = BatchNormCall((tuning.PLAN_BATCH, *shape), np.dtype(dtype), layout, True)
    return registry.choose("batch_norm2d", "auto", call).name


def _describe_bn_steps(step: Step, shape: tuple[int, ...], layout: str, dtype: np.dtype,
                       column: dict[int, str]) -> tuple[tuple[int, ...], str]:
    """:func:`describe` for a BatchNormReLU, ConvBatchNorm or ResidualReLU step: fills
    the column, returns the shape and layout after it."""
    at = step.indices
    if isinstance(step, BatchNormReLU):
        column[at["bn"]] = f"{_bn_name(shape, layout, dtype)}, with {at['relu']}"
        column[at["relu"]] = f"in {at['bn']}'s batch norm"
        return shape, layout
    if isinstance(step, ResidualReLU):
        if step.relu:
            column[at["relu"]] = f"in {at['block']}'s sum"
        return tuple(step.block.output_shape(shape)), "NCHW"
    c = step.conv
    name = c.algorithm_for(shape, dtype).name
    column[at["conv"]] = name
    layout = _layout("conv2d", name, layout)
    shape = c.output_shape(shape)
    bn = _bn_name(shape, layout, dtype)
    if step.relu:
        bn = f"{bn}, with {at['relu']}"
        column[at["relu"]] = f"in {at['bn']}'s batch norm"
    column[at["bn"]] = f"{bn}; folded into {at['conv']} in inference"
    if step.pool is not None:
        pool = step.pool.pool.algorithm_for(shape, dtype, layout, relu=True)
        column[at["pool"]] = f"{pool.name}, with {at['relu']}"
        column[at["relu"]] = f"in {at['pool']}'s pooling"
        layout = _layout("max_pool2d", pool.name, layout)
        shape = step.pool.pool.output_shape(shape)
    return shape, layout
