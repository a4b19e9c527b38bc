"""Dense, Flatten and Dropout (clearconv/layers/core.py): Flatten's dims as torch.nn.Flatten."""

from __future__ import annotations

import numpy as np
import pytest

import clearconv as cc
from clearconv.errors import ClearConvError, ShapeError
from clearconv.layers import Conv2D, Dense, Flatten

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None


@pytest.mark.parametrize("start_dim, end_dim, out", [
    (1, -1, (2, 60)), (2, -1, (2, 3, 20)), (1, 2, (2, 12, 5)), (2, 2, (2, 3, 4, 5)),
    (-2, -1, (2, 3, 20)), (3, 3, (2, 3, 4, 5)), (1, -2, (2, 12, 5)),
])
def test_flatten_dims_as_torch(start_dim, end_dim, out):
    x = np.arange(120.0).reshape(2, 3, 4, 5)
    layer = Flatten(start_dim, end_dim)
    y = layer.forward(x, training=True)
    assert y.shape == out == (2, *layer.output_shape((3, 4, 5)))
    if torch is not None:
        np.testing.assert_array_equal(
            y, torch.nn.Flatten(start_dim, end_dim)(torch.from_numpy(x)).numpy())
    np.testing.assert_array_equal(layer.backward(y), x)


def test_default_flatten_keeps_its_config_and_a_model_with_start_dim_saves(tmp_path):
    assert Flatten().get_config() == {}
    model = cc.Sequential(Conv2D(1, 2, 3, padding=1, rng=0), Flatten(start_dim=2),
                          Flatten(), Dense(2 * 16, 3, rng=1), input_shape=(1, 4, 4))
    model.save(str(tmp_path / "m.npz"))
    loaded = cc.load(str(tmp_path / "m.npz"))
    assert loaded.layers[1].start_dim == 2
    x = np.random.default_rng(0).standard_normal((3, 1, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


@pytest.mark.parametrize("make, shape, match", [
    (lambda: Flatten(0), None, "start_dim=0 would merge the batch axis"),
    (lambda: Flatten(1.5), None, "start_dim must be an int, got 1.5"),
    (lambda: Flatten(3, 1), (3, 4, 5), "start_dim=3 comes after end_dim=1"),
    (lambda: Flatten(4), (3, 4, 5), r"Flatten\(start_dim=4, end_dim=-1\) does not fit a batch "
                                    r"of 4 dimensions"),
])
def test_flatten_refuses_dims_that_do_not_fit(make, shape, match):
    with pytest.raises(ClearConvError, match=match):
        make().output_shape(shape)


def test_flatten_dims_are_checked_when_the_model_is_built():
    with pytest.raises(ShapeError, match="layer 0 .*Flatten"):
        cc.Sequential(Flatten(3), input_shape=(4, 5))
