"""The arithmetic a case does, counted, and the floor it sets at the machine's GEMM rate.

Only the multiply-adds (MACs) of the convolutions and the dense layers are counted: they
are nearly all the arithmetic of a CNN (the MNIST CNN's step: 0.81 G multiply-adds
against about 10 M elementwise operations for bias, ReLU, pooling, loss and SGD, which
are memory-bound and not counted). One multiply-add is 2 floating-point operations
(FLOP), as a GEMM of (m, k) by (k, n) is ``2 m n k`` FLOP.

For a layer with weight ``W``, a batch of ``N`` and per-sample input shape ``in`` and
output shape ``out`` (MATH.md §4-§9)::

    Conv2D, Conv1D, Dense   forward MACs = N * prod(out) * prod(W.shape[1:])
                            (each output element sums C_in/groups * kh * kw products,
                            a Dense output in_features of them)
    ConvTranspose2D         forward MACs = N * prod(in) * prod(W.shape[1:])
                            (each input element is spread onto C_out/groups * kh * kw
                            outputs)
    backward dW             the same count as the forward (each forward product appears
                            once in dL/dW = sum over the batch of dZ times the input)
    backward dA             the same count again (once in dL/dA, the full correlation of
                            dZ with the weights)

In a training step the first layer's dA is not counted: nothing needs the gradient of
the input images, and both clearconv (``backward(input_grad=False)``) and PyTorch (an
input without ``requires_grad``) skip it. A block (Residual, Concat) counts the layers
of its branches.

The *floor* of a case is its FLOP divided by the rate of one large GEMM
(``np.matmul`` of two 2048x2048 matrices, float32 for float32 cases, float64 for
float64 ones) at the case's thread count, measured in the same run
(:func:`benchmarks.harness.gemm_rate`): the time the case would take if all its
arithmetic ran as fast as the BLAS's best kernel. Winograd (which clearconv uses for
3x3 convolutions) needs fewer multiplications than this count, so a case can beat
its floor.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from math import prod
from typing import Any


@dataclass(frozen=True)
class Work:
    """Multiply-adds of one case: forward, backward dW (weight gradient), backward dA
    (gradient of the layer's input)."""

    forward: int
    backward_dw: int = 0
    backward_da: int = 0

    @property
    def macs(self) -> int:
        return self.forward + self.backward_dw + self.backward_da

    @property
    def flop(self) -> int:
        """2 FLOP per multiply-add."""
        return 2 * self.macs

    def __add__(self, other: Work) -> Work:
        return Work(self.forward + other.forward, self.backward_dw + other.backward_dw,
                    self.backward_da + other.backward_da)

    def record(self) -> dict[str, Any]:
        """The JSON form: each part in MACs, the total in GFLOP."""
        return {"forward_macs": self.forward, "backward_dw_macs": self.backward_dw,
                "backward_da_macs": self.backward_da, "gflop": self.flop / 1e9}


def with_backward(forward_macs: int, input_grad: bool = True) -> Work:
    """Forward, dW and (unless ``input_grad`` is False) dA of a layer doing
    ``forward_macs`` multiply-adds forward."""
    return Work(forward_macs, forward_macs, forward_macs if input_grad else 0)


def conv2d_macs(n: int, c_in: int, h_out: int, w_out: int, c_out: int, kh: int, kw: int,
                groups: int = 1) -> int:
    """Forward multiply-adds of a conv2d: ``N * C_out * H_out * W_out * (C_in/groups) *
    kh * kw``."""
    return n * c_out * h_out * w_out * (c_in // groups) * kh * kw


def conv_transpose2d_macs(n: int, c_in: int, h_in: int, w_in: int, c_out: int, kh: int,
                          kw: int, groups: int = 1) -> int:
    """Forward multiply-adds of a transposed conv2d: ``N * C_in * H_in * W_in *
    (C_out/groups) * kh * kw``."""
    return n * c_in * h_in * w_in * (c_out // groups) * kh * kw


def linear_macs(n: int, in_features: int, out_features: int) -> int:
    """Forward multiply-adds of a dense layer: ``N * in_features * out_features``."""
    return n * in_features * out_features


def layer_macs(layer: Any, in_shape: Sequence[int], out_shape: Sequence[int],
               batch: int) -> int:
    """Forward multiply-adds of one clearconv layer (0 for a layer without a weight)."""
    weight = getattr(layer, "weight", None)
    if weight is None:
        return 0
    per_element = prod(weight.value.shape[1:])
    if type(layer).__name__ == "ConvTranspose2D":
        return batch * prod(in_shape) * per_element
    return batch * prod(out_shape) * per_element


def _chain_work(layers: Iterable[Any], shape: tuple[int, ...], batch: int, backward: bool,
                input_grad: bool) -> tuple[Work, tuple[int, ...]]:
    total = Work(0)
    for layer in layers:
        branches = getattr(layer, "branches", None)
        out = tuple(layer.output_shape(shape))
        if callable(branches):
            for chain in branches().values():
                total += _chain_work(chain, shape, batch, backward, input_grad)[0]
        else:
            macs = layer_macs(layer, shape, out, batch)
            total += with_backward(macs, input_grad) if backward else Work(macs)
        if total.macs:
            input_grad = True     # past the first weight layer every input needs dA
        shape = out
    return total, shape


def model_work(model: Any, batch: int, backward: bool = False,
               input_shape: Sequence[int] | None = None) -> Work:
    """Multiply-adds of ``model`` (a clearconv Sequential) on a batch of ``batch``:
    forward only, or forward and backward as in a training step (no dA for the layer
    that sees the input images; see the module docstring)."""
    shape = tuple(input_shape if input_shape is not None else model.input_shape)
    return _chain_work(model.layers, shape, batch, backward, input_grad=False)[0]
