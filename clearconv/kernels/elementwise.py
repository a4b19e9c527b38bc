"""add_relu algorithm ``'compiled'``: a residual block's sum and its ReLU in one pass.

The readable algorithm (:func:`clearconv.functional.add_relu_forward`) adds the two
branches, then applies the ReLU in place on the sum: two passes over the block's output.
Here one compiled loop reads a and b and writes ``max(a + b, 0)`` once, over the memory
the operands share (NCHW, or channels-last as conv2d returns it), split between
threads; backward writes ``dy (y > 0)`` in one pass (NumPy's ``dy * (y > 0)`` makes the
boolean mask first). The values are NumPy's bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..functional.activations import ADD_RELU, AddReluCall, operand_layout, relu_backward
from . import registry, threads, tuning
from .jit import AVAILABLE, worth


def _loops() -> Any:
    """:mod:`clearconv.kernels.elementwise_loops`, imported (with Numba) at the first call."""
    from . import elementwise_loops

    return elementwise_loops


def _flat(a: np.ndarray) -> np.ndarray:
    """An NCHW or channels-last (N, C, H, W) array as the 1-D view of its memory."""
    return a.reshape(-1) if a.flags.c_contiguous else a.transpose(0, 2, 3, 1).reshape(-1)


def _run(loop: Any, x: np.ndarray, z: np.ndarray, out: np.ndarray) -> None:
    fx, fz, fo = _flat(x), _flat(z), _flat(out)
    threads.map_split(lambda lo, hi: loop(fx, fz, lo, hi, fo), fx.size,
                      fx.size >= tuning.MIN_SPLIT_COPY)


def forward(a: np.ndarray, b: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    y = np.empty_like(a) if out is None else out
    _run(_loops()._add_relu, a, b, y)
    return y


def backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    if dy.dtype != y.dtype or operand_layout(dy, y) == "mixed":
        return relu_backward(dy, y)            # NumPy's, in the layout it picks
    g = np.empty_like(y)
    _run(_loops()._relu_mask, dy, y, g)
    return g


def supports(call: AddReluCall) -> tuple[bool, str]:
    if not AVAILABLE:
        return False, "needs Numba (pip install clearconv[fast]; not disabled by CLEARCONV_JIT=0)"
    if len(call.shape) != 4 or call.layout == "mixed":
        return False, "needs (N, C, H, W) operands all NCHW or all channels-last"
    if call.dtype == np.dtype(object):
        return False, "needs operands of one dtype"
    return True, f"{call.layout} memory: one pass"


def prefer(call: AddReluCall) -> tuple[bool, str]:
    """'auto' takes it wherever it applies, once the compiled loops are worth loading."""
    ok, why = supports(call)
    if not ok:
        return ok, why
    return worth(call.shape[0])


registry.register(registry.Algorithm(
    ADD_RELU, "compiled", supports, forward, backward,
    "one compiled pass each way over the operands' shared memory layout; split between "
    "threads", prefer=prefer, layout="input"))


def warm_up(dtype: Any = np.float32) -> None:
    """Compile (or load from Numba's cache) the loops for ``dtype`` on tiny arrays."""
    a = np.zeros((1, 2, 2, 2), dtype)
    y = forward(a, a, None)
    backward(y, y)
