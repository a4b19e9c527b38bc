"""Issue 12, API misuse: each one a clear ClearConvError (a ValueError) naming the value,
never a raw traceback from deep inside."""

from __future__ import annotations

import numpy as np
import pytest

from clearconv import ClearConvError, Sequential, ShapeError
from clearconv.functional import avg_pool2d_forward, conv2d_backward, max_pool2d_forward
from clearconv.functional.linear import linear_backward
from clearconv.functional.pool import avg_pool2d_backward, max_pool2d_backward
from clearconv.layers import Dense, Flatten, Softmax


def _model() -> Sequential:
    return Sequential(Flatten(), Dense(4, 3, rng=0), input_shape=(1, 2, 2))


def test_forward_on_an_empty_batch() -> None:
    # issue 12: forward on a 0-size batch was a raw traceback
    with pytest.raises(ShapeError, match="empty batch"):
        _model().forward(np.zeros((0, 1, 2, 2), np.float32))


def test_backward_with_a_wrongly_shaped_gradient() -> None:
    # issue 12: backward with a wrongly shaped gradient was a raw traceback
    model = _model()
    model.forward(np.zeros((5, 1, 2, 2), np.float32), training=True)
    with pytest.raises(ShapeError, match=r"gradient has shape \(5, 4\).*output had \(5, 3\)"):
        model.backward(np.zeros((5, 4), np.float32))


def test_fit_with_a_fractional_batch_size() -> None:
    # issue 12: fit(batch_size=32.5) was a raw traceback
    x, y = np.zeros((4, 1, 2, 2), np.float32), np.zeros(4, np.int64)
    with pytest.raises(ClearConvError, match="batch_size must be an int >= 1, got 32.5"):
        _model().fit(x, y, batch_size=32.5, verbose=0)


@pytest.mark.parametrize("backward", [conv2d_backward, linear_backward, max_pool2d_backward,
                                      avg_pool2d_backward])
def test_backward_without_a_cache(backward: object) -> None:
    # issue 12: conv2d_backward(dy, None) was an AttributeError
    with pytest.raises(ClearConvError, match="cache must be the .*Cache that .* returned, "
                                             "got NoneType"):
        backward(np.zeros((1, 1, 2, 2)), None)  # type: ignore[operator]


@pytest.mark.parametrize("pool", [max_pool2d_forward, avg_pool2d_forward])
def test_pooling_an_input_without_channels(pool: object) -> None:
    # issue 12: pooling (1, 0, 50, 32) returned an empty array (PyTorch refuses it)
    with pytest.raises(ShapeError, match=r"at least one channel.*\(1, 0, 50, 32\)"):
        pool(np.zeros((1, 0, 50, 32), np.float32), 2)  # type: ignore[operator]
    out, _ = pool(np.zeros((0, 2, 4, 4), np.float32), 2)  # type: ignore[operator]
    assert out.shape == (0, 2, 2, 2)                       # an empty batch is fine


def test_softmax_axis_out_of_range() -> None:
    # issue 12: Softmax axis 7 was a raw AxisError at forward
    with pytest.raises(ClearConvError, match=r"Softmax axis must be an int in -5..4 .*got 7"):
        Softmax(axis=7)
    with pytest.raises(ShapeError, match="Softmax axis 3 is not an axis of a batch with 2"):
        Softmax(axis=3).forward(np.zeros((2, 3), np.float32))
