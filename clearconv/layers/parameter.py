"""A trainable array and its gradient: what optimizers update."""

from __future__ import annotations

import numpy as np


class Parameter:
    """A trainable tensor.

    Attributes
    ----------
    value : ndarray
        The current value (updated in place by optimizers, so views stay valid).
    grad : ndarray of the same shape and dtype
        dL/d(value), accumulated by the owning layer's backward pass.
    name : str
        A dotted name such as ``"0.weight"``, set by the model.
    decay : bool
        Whether weight decay applies (True for weights, False for biases).
    """

    __slots__ = ("decay", "grad", "name", "value")

    def __init__(self, value: np.ndarray, name: str = "", decay: bool = True) -> None:
        self.value = value
        self.grad = np.zeros_like(value)
        self.name = name
        self.decay = decay

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    def zero_grad(self) -> None:
        self.grad.fill(0)

    def __repr__(self) -> str:
        return f"Parameter(name={self.name!r}, shape={self.value.shape}, dtype={self.value.dtype})"
