"""The pooling layers: every argument reaches the op, survives get_config/from_config
and a model file, and the layer's output shape is the op's."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clearconv import functional as F
from clearconv import reference as R
from clearconv.layers import AvgPool2D, Layer, MaxPool2D

POOL_LAYERS = [
    lambda: MaxPool2D(3, 2, ((1, 0), (0, 1)), dilation=(2, 1)),
    lambda: MaxPool2D(2, 1, 1, ceil_mode=True, dilation=2),
    lambda: AvgPool2D(3, 2, ((1, 0), (0, 1)), count_include_pad=False),
    lambda: AvgPool2D(2, 2, 1, ceil_mode=True, divisor_override=3),
]


@pytest.mark.parametrize("make", POOL_LAYERS)
def test_pool_layer_config_round_trips_and_computes_as_the_reference(make):
    layer = make()
    config = json.loads(json.dumps(layer.get_config()))
    again = Layer.registry[type(layer).__name__].from_config(config)
    assert again.get_config() == layer.get_config()
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 8))
    y = layer.forward(x, training=True)
    assert y.shape[1:] == layer.output_shape(x.shape[1:])
    np.testing.assert_array_equal(again.forward(x), y)
    cfg = layer.get_config()
    if isinstance(layer, MaxPool2D):
        y_ref, cache_ref = R.max_pool2d_forward(x, layer.kernel_size, layer.stride,
                                                layer.padding, layer.ceil_mode,
                                                layer.dilation)
        dx_ref = R.max_pool2d_backward(np.ones_like(y), cache_ref)
    else:
        y_ref, cache_ref = R.avg_pool2d_forward(
            x, layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode,
            cfg["count_include_pad"], cfg.get("divisor_override"))
        dx_ref = R.avg_pool2d_backward(np.ones_like(y), cache_ref)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.backward(np.ones_like(y)), dx_ref, rtol=1e-10,
                               atol=1e-12)


def test_max_pool_layer_returns_indices_as_torch():
    x = np.random.default_rng(1).standard_normal((1, 2, 6, 6))
    y, indices = MaxPool2D(2, return_indices=True).forward(x)
    _, cache = F.max_pool2d_forward(x, 2)
    np.testing.assert_array_equal(indices, F.max_pool2d_indices(cache))
    assert MaxPool2D(2, return_indices=True).get_config()["return_indices"] is True


def test_old_config_without_the_new_keys_still_loads():
    layer = MaxPool2D.from_config({"kernel_size": [2, 2], "stride": [2, 2],
                                   "padding": [0, 0], "ceil_mode": False})
    assert layer.dilation == (1, 1) and layer.padding == (0, 0)
