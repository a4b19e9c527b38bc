"""The pooling layers: every argument reaches the op, survives get_config/from_config
and a model file, and the layer's output shape is the op's."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clearconv import functional as F
from clearconv import reference as R
from clearconv.errors import ClearConvError, ShapeError
from clearconv.layers import (
    AdaptiveAvgPool1D,
    AdaptiveAvgPool2D,
    AdaptiveMaxPool1D,
    AdaptiveMaxPool2D,
    AvgPool1D,
    AvgPool2D,
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    GlobalMaxPool1D,
    GlobalMaxPool2D,
    Layer,
    MaxPool1D,
    MaxPool2D,
    MaxUnpool2D,
    Upsample,
)

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


NEW_LAYERS = [
    lambda: GlobalAvgPool2D(), lambda: GlobalAvgPool2D(flatten=True),
    lambda: GlobalMaxPool2D(), lambda: GlobalMaxPool2D(flatten=True),
    lambda: AdaptiveAvgPool2D((3, None)), lambda: AdaptiveAvgPool2D(4),
    lambda: AdaptiveMaxPool2D((2, 5)),
    lambda: Upsample(scale_factor=2), lambda: Upsample(size=(11, 5), mode="bilinear"),
    lambda: Upsample(scale_factor=(1.5, 2), mode="bilinear", align_corners=True),
]


@pytest.mark.parametrize("make", NEW_LAYERS)
def test_new_layers_round_trip_their_config_and_run_forward_and_backward(make):
    layer = make()
    config = json.loads(json.dumps(layer.get_config()))
    again = Layer.registry[type(layer).__name__].from_config(config)
    assert again.get_config() == layer.get_config()
    x = np.random.default_rng(2).standard_normal((2, 3, 9, 8))
    y = layer.forward(x, training=True)
    assert y.shape[1:] == layer.output_shape(x.shape[1:])
    np.testing.assert_array_equal(again.forward(x), y)
    dx = layer.backward(np.ones_like(y))
    assert dx.shape == x.shape
    with pytest.raises(ClearConvError, match="before forward"):
        layer.backward(np.ones_like(y))


def test_global_average_layer_is_the_mean_and_flatten_drops_the_unit_axes():
    x = np.random.default_rng(0).standard_normal((2, 4, 5, 5))
    np.testing.assert_allclose(GlobalAvgPool2D(flatten=True).forward(x), x.mean(axis=(2, 3)))
    assert GlobalAvgPool2D().output_shape((4, 5, 5)) == (4, 1, 1)


def test_max_unpool_layer_undoes_the_pool_where_the_maxima_were():
    x = np.random.default_rng(3).standard_normal((2, 3, 6, 8))
    pool, unpool = MaxPool2D(2, return_indices=True), MaxUnpool2D(2)
    y, indices = pool.forward(x)
    u = unpool.forward(y, indices, training=True)
    assert u.shape == x.shape and unpool.output_shape((3, 3, 4)) == (3, 6, 8)
    kept = u != 0
    np.testing.assert_array_equal(u[kept], x[kept])
    assert kept.sum() == y.size
    np.testing.assert_array_equal(unpool.backward(x), y)    # the gather of x at the maxima
    again = MaxUnpool2D.from_config(json.loads(json.dumps(unpool.get_config())))
    np.testing.assert_array_equal(again(y, indices), u)
    with pytest.raises(ShapeError, match="indices"):
        unpool.forward(y)


def test_pytorch_spellings_are_the_same_classes():
    import clearconv.layers as L

    assert L.GlobalAvgPool2d is GlobalAvgPool2D and L.MaxUnpool2d is MaxUnpool2D
    assert L.AdaptiveMaxPool2d is AdaptiveMaxPool2D and L.MaxPool2d is MaxPool2D


def test_bad_layer_arguments_raise_at_construction():
    with pytest.raises(ClearConvError, match="mode"):
        Upsample(scale_factor=2, mode="bicubic")
    with pytest.raises(ClearConvError, match="align_corners"):
        Upsample(scale_factor=2, align_corners=True)
    with pytest.raises(ClearConvError, match="exactly one"):
        Upsample()
    with pytest.raises(ClearConvError, match="output_size"):
        AdaptiveAvgPool2D(0)
    with pytest.raises(ClearConvError, match="divisor_override"):
        AvgPool2D(2, divisor_override=0)


@pytest.mark.parametrize("make", [
    lambda: MaxPool1D(3, 2, 1), lambda: MaxPool1D(2, 1, (1, 0), dilation=2, ceil_mode=True),
    lambda: AvgPool1D(3, 2, 1, count_include_pad=False), lambda: GlobalAvgPool1D(),
    lambda: GlobalAvgPool1D(flatten=True), lambda: AdaptiveAvgPool1D(4),
    lambda: GlobalMaxPool1D(flatten=True), lambda: AdaptiveMaxPool1D(5)])
def test_1d_layers_round_trip_and_match_their_ops(make):
    layer = make()
    again = Layer.registry[type(layer).__name__].from_config(
        json.loads(json.dumps(layer.get_config())))
    assert again.get_config() == layer.get_config()
    x = np.random.default_rng(4).standard_normal((2, 3, 11))
    y = layer.forward(x, training=True)
    assert y.shape[1:] == layer.output_shape(x.shape[1:])
    np.testing.assert_array_equal(again.forward(x), y)
    assert layer.backward(np.ones_like(y)).shape == x.shape


@pytest.mark.parametrize("model", ["2d", "1d"])
def test_gradcheck_of_a_small_model_through_every_new_layer(model):
    from clearconv.gradcheck import check_model_gradients
    from clearconv.layers import Conv1D, Conv2D, Dense, Tanh
    from clearconv.train import Sequential

    if model == "2d":
        net = Sequential(
            Conv2D(2, 3, 3, padding=1, rng=0), Tanh(),
            MaxPool2D(3, 1, ((1, 0), (0, 1)), dilation=2),
            Upsample(scale_factor=1.5, mode="bilinear"), AvgPool2D(2, 1, divisor_override=3),
            Upsample(size=(9, 8)), AdaptiveMaxPool2D((4, 3)), AdaptiveAvgPool2D((3, 2)),
            GlobalMaxPool2D(), GlobalAvgPool2D(flatten=True), Dense(3, 4, rng=1),
            input_shape=(2, 7, 6)).astype(np.float64)
        x = np.random.default_rng(0).standard_normal((3, 2, 7, 6))
    else:
        net = Sequential(
            Conv1D(2, 3, 3, padding=1, rng=0), Tanh(), MaxPool1D(2, 1, (1, 0), dilation=2),
            AvgPool1D(3, 2, 1, ceil_mode=True), AdaptiveAvgPool1D(3),
            GlobalAvgPool1D(flatten=True), Dense(3, 4, rng=1),
            input_shape=(2, 13)).astype(np.float64)
        x = np.random.default_rng(0).standard_normal((3, 2, 13))
    result = check_model_gradients(net, x, np.array([0, 3, 1]))
    assert result.ok, result


def test_model_file_and_summary_keep_every_new_layer(tmp_path):
    import clearconv as cc
    from clearconv.layers import Conv1D, Conv2D, Dense, ReLU
    from clearconv.train import Sequential

    net = Sequential(
        Conv2D(1, 4, 3, padding=1, rng=0), ReLU(), MaxPool2D(3, 2, ((1, 0), (0, 1)), dilation=2),
        Upsample(scale_factor=2, mode="bilinear", align_corners=True),
        AvgPool2D(2, divisor_override=3), AdaptiveMaxPool2D((3, None)), AdaptiveAvgPool2D(2),
        GlobalAvgPool2D(flatten=True), Dense(4, 3, rng=0), input_shape=(1, 12, 12))
    text = net.summary(print_fn=lambda *_: None)
    for name, shape in [("MaxPool2D", "(N, 4, 5, 5)"), ("Upsample", "(N, 4, 10, 10)"),
                        ("AdaptiveMaxPool2D", "(N, 4, 3, 5)"), ("GlobalAvgPool2D", "(N, 4)")]:
        assert any(name in line and shape in line for line in text.splitlines()), text
    net.save(str(tmp_path / "m.npz"))
    back = cc.load(str(tmp_path / "m.npz"))
    x = np.random.default_rng(0).standard_normal((2, 1, 12, 12)).astype(np.float32)
    np.testing.assert_array_equal(back.predict(x), net.predict(x))
    seq = Sequential(Conv1D(2, 4, 3, rng=0), MaxPool1D(2, dilation=2, padding=(1, 0)),
                     AvgPool1D(3, 1, 1), AdaptiveAvgPool1D(4), GlobalAvgPool1D(),
                     input_shape=(2, 15))
    seq.save(str(tmp_path / "s.npz"))
    x = np.random.default_rng(1).standard_normal((2, 2, 15)).astype(np.float32)
    np.testing.assert_array_equal(cc.load(str(tmp_path / "s.npz")).predict(x), seq.predict(x))


def test_fused_relu_and_pool_keep_dilation_and_asymmetric_padding():
    """The fusion pass runs Conv2D, ReLU, MaxPool2D(dilation, asymmetric padding) as one
    op: the same values and gradients as the layers one by one."""
    from clearconv.layers import Conv2D, Dense, Flatten, ReLU
    from clearconv.train import Sequential

    def make(fuse):
        return Sequential(Conv2D(2, 3, 3, padding=1, rng=0), ReLU(),
                          MaxPool2D(3, 2, ((1, 0), (0, 1)), dilation=2), ReLU(),
                          MaxPool2D(2, 1, dilation=(1, 2)), Flatten(), Dense(18, 2, rng=1),
                          input_shape=(2, 11, 10), fuse=fuse).astype(np.float64)

    fused, plain = make(True), make(False)
    assert len(fused.steps()) < len(plain.steps())
    x = np.random.default_rng(5).standard_normal((2, 2, 11, 10))
    np.testing.assert_allclose(fused.forward(x, training=True), plain.forward(x, training=True),
                               rtol=1e-12, atol=1e-12)
    dout = np.ones((2, 2))
    fused.backward(dout)
    plain.backward(dout)
    for a, b in zip(fused.parameters(), plain.parameters()):
        np.testing.assert_allclose(a.grad, b.grad, rtol=1e-12, atol=1e-12)
