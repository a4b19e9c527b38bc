"""The convolution layers beyond Conv2D: grouped and depthwise Conv2D, ConvTranspose2D and
Conv1D as layers (gradients through a model, configs, shapes, errors)."""

from __future__ import annotations

import numpy as np
import pytest

import clearconv as cc
from clearconv.errors import ClearConvError
from clearconv.gradcheck import check_model_gradients
from clearconv.layers import Conv1D, Conv2D, ConvTranspose2D, Dense, Flatten, ReLU


def test_a_grouped_depthwise_transposed_model_passes_gradient_checks_and_round_trips(tmp_path):
    g = np.random.default_rng(0)
    model = cc.Sequential(
        Conv2D(2, 4, 3, padding=1, groups=2, rng=g), ReLU(),
        Conv2D(4, 8, 3, stride=2, padding=1, groups=4, rng=g),        # depthwise, x2
        ConvTranspose2D(8, 4, 3, stride=2, padding=1, output_padding=1, groups=2, rng=g),
        Flatten(), Dense(4 * 6 * 6, 3, rng=g), input_shape=(2, 6, 6)).astype("float64")
    x = g.standard_normal((2, 2, 6, 6))
    result = check_model_gradients(model, x, np.array([0, 2]))
    assert result.ok, str(result)
    model.save(str(tmp_path / "m.npz"))
    again = cc.load(str(tmp_path / "m.npz"))
    assert again.layers[2].get_config() == model.layers[2].get_config()
    np.testing.assert_array_equal(again.predict(x), model.predict(x))


def test_conv1d_is_a_conv2d_over_one_row():
    g = np.random.default_rng(1)
    layer = Conv1D(3, 4, 5, stride=2, padding=(1, 3), dilation=1, groups=1, rng=g,
                   dtype="float64")
    assert layer.weight.value.shape == (4, 3, 5)
    model = cc.Sequential(layer, ReLU(), Flatten(), Dense(4 * 6, 2, rng=g),
                          input_shape=(3, 11)).astype("float64")
    x = g.standard_normal((3, 3, 11))
    assert model.predict(x).shape == (3, 2)
    result = check_model_gradients(model, x, np.array([0, 1, 1]))
    assert result.ok, str(result)
    w2d = model.layers[0].weight.value[:, :, None, :]
    y2d, _ = cc.functional.conv2d_forward(x[:, :, None, :], w2d, model.layers[0].bias.value,
                                          (1, 2), ((0, 0), (1, 3)))
    np.testing.assert_allclose(model.layers[0].forward(x), y2d[:, :, 0], rtol=1e-12)
    assert Conv1D.from_config(layer.get_config()).get_config() == layer.get_config()


def test_conv_transpose_output_size_is_torchs_rule():
    layer = ConvTranspose2D(4, 2, (3, 4), stride=(2, 3), padding=(1, 0),
                            output_padding=(1, 2), dilation=(2, 1), rng=0)
    # (H - 1)*s - 2p + d*(k - 1) + output_padding + 1
    assert layer.output_shape((4, 5, 6)) == (2, (5 - 1) * 2 - 2 + 2 * 2 + 1 + 1,
                                             (6 - 1) * 3 + 1 * 3 + 2 + 1)


def test_bad_layer_arguments_name_the_values():
    with pytest.raises(ClearConvError, match=r"groups 3 must divide both the input channels "
                                             r"\(4\) and the output channels \(6\)"):
        Conv2D(4, 6, 3, groups=3)
    with pytest.raises(ClearConvError, match=r"output_padding \(2, 2\) must be smaller"):
        ConvTranspose2D(2, 2, 3, stride=2, output_padding=2)
    with pytest.raises(ClearConvError, match="kernel_size of a 1-D layer must be an int"):
        Conv1D(2, 2, (3, 3))
    with pytest.raises(ClearConvError, match=r"Conv1D expects per-sample input \(C, L\)"):
        cc.Sequential(Conv1D(2, 2, 3), input_shape=(2, 5, 5))
