"""The ready architectures of clearconv.train.zoo: shapes, the depthwise-separable blocks
of mobilenet_cnn, and a conv_autoencoder that learns to reconstruct the embedded digits."""

from __future__ import annotations

import numpy as np
import pytest

import clearconv as cc
from clearconv.data import load_digits, to_float
from clearconv.errors import ClearConvError
from clearconv.layers import AvgPool2D, Conv2D, ConvTranspose2D
from clearconv.train import zoo
from clearconv.train.losses import MSELoss


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_mobilenet_cnn_is_depthwise_separable_and_pools_globally(shape):
    model = zoo.mobilenet_cnn(shape, num_classes=7, rng=0)
    convs = [la for la in model.layers if isinstance(la, Conv2D)]
    depthwise = [la for la in convs if la.groups > 1]
    assert len(depthwise) == 4
    assert all(la.groups == la.in_channels == la.out_channels for la in depthwise)
    pointwise = [la for la in convs if la.kernel_size == (1, 1)]
    assert len(pointwise) == 4 and all(la.groups == 1 for la in pointwise)
    pool = next(la for la in model.layers if isinstance(la, AvgPool2D))
    assert pool.kernel_size == (shape[1] // 4, shape[2] // 4)
    assert model.build(shape)[-1] == (7,)
    x = np.random.default_rng(0).random((2, *shape), dtype=np.float32)
    assert model.predict(x).shape == (2, 7)


def test_mobilenet_cnn_learns_the_digits_a_little():
    x, y = load_digits("train")
    x = to_float(x, max_value=16)
    model = zoo.mobilenet_cnn((1, 8, 8), rng=0)
    history = model.fit(x[:512], y[:512], epochs=3, batch_size=32, seed=0, verbose=0,
                        optimizer=cc.optim.Adam(model.parameters(), lr=3e-3))
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert history.history["accuracy"][-1] > 0.3


@pytest.mark.parametrize("make", [zoo.mobilenet_cnn, zoo.conv_autoencoder])
def test_sizes_that_do_not_divide_by_4_are_refused(make):
    with pytest.raises(ClearConvError, match="divide by 4.*30x30"):
        make((1, 30, 30))


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_conv_autoencoder_outputs_images_of_the_input_shape(shape):
    model = zoo.conv_autoencoder(shape, rng=0)
    assert sum(isinstance(la, ConvTranspose2D) for la in model.layers) == 2
    out = model.predict(np.random.default_rng(1).random((2, *shape), dtype=np.float32))
    assert out.shape == (2, *shape) and (out > 0).all() and (out < 1).all()


def test_a_few_epochs_on_the_digits_lower_the_reconstruction_loss():
    (x, _), (x_test, _) = load_digits("train"), load_digits("test")
    x, x_test = to_float(x, max_value=16), to_float(x_test, max_value=16)
    model = zoo.conv_autoencoder((1, 8, 8), rng=0)
    before = MSELoss()(model.predict(x_test), x_test)
    history = model.fit(x, x, epochs=5, batch_size=64, loss="mse", seed=0, verbose=0,
                        optimizer=cc.optim.Adam(model.parameters(), lr=3e-3),
                        validation_data=(x_test, x_test))
    after = model.evaluate(x_test, x_test)
    assert set(after) == {"loss"}
    assert after["loss"] < 0.5 * before
    assert history.history["val_loss"][-1] < history.history["val_loss"][0]
    # better than the best constant image (the mean digit)
    assert after["loss"] < MSELoss()(np.broadcast_to(x.mean(axis=0), x_test.shape), x_test)


NEW_MODELS = [lambda: zoo.mobilenet_cnn((1, 28, 28), rng=0),
              lambda: zoo.conv_autoencoder((1, 28, 28), rng=0)]


def _outputs(make):
    model = make()
    x = np.random.default_rng(2).random((3, 1, 28, 28), dtype=np.float32)
    return model, x, model.predict(x)


@pytest.mark.parametrize("make", NEW_MODELS)
def test_the_new_models_run_in_onnxruntime_with_the_same_outputs(make, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed: ONNX not run")
    pytest.importorskip("onnx", reason="onnx not installed: ONNX not exported")
    model, x, want = _outputs(make)
    model.to_onnx(str(tmp_path / "m.onnx"))
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x})[0], want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("make", NEW_MODELS)
def test_the_new_models_convert_to_torch_with_the_same_outputs(make):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: to_torch not run")
    from clearconv.io.torch import to_torch

    model, x, want = _outputs(make)
    with torch.no_grad():
        got = to_torch(model)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
