"""The ready architectures of clearconv.train.zoo: shapes, the depthwise-separable blocks
of mobilenet_cnn, a conv_autoencoder that learns to reconstruct the embedded digits, and
the batch-norm ones, ResNet-20 (He et al. 2016) and the BN MNIST CNN: structure,
parameter counts, the recipes' names, training steps equal to their PyTorch twins
(float64, 1e-10), a model file round trip and the benchmark cases."""

from __future__ import annotations

import numpy as np
import pytest

import clearconv as cc
from clearconv import optim
from clearconv.data import load_digits, to_float
from clearconv.errors import ClearConvError
from clearconv.layers import (
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    ConvTranspose2D,
    GlobalAvgPool2D,
    ReLU,
    Residual,
)
from clearconv.train import recipes, zoo
from clearconv.train.losses import MSELoss


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 30, 30)])
def test_mobilenet_cnn_is_depthwise_separable_with_batch_norm_and_pools_globally(shape):
    model = zoo.mobilenet_cnn(shape, num_classes=7, rng=0)
    convs = [la for la in model.layers if isinstance(la, Conv2D)]
    depthwise = [la for la in convs if la.groups > 1]
    assert len(depthwise) == 4
    assert all(la.groups == la.in_channels == la.out_channels for la in depthwise)
    pointwise = [la for la in convs if la.kernel_size == (1, 1)]
    assert len(pointwise) == 4 and all(la.groups == 1 for la in pointwise)
    for i, layer in enumerate(model.layers):      # every conv: no bias, then BN and ReLU
        if isinstance(layer, Conv2D):
            assert layer.bias is None
            assert isinstance(model.layers[i + 1], BatchNorm2D)
            assert model.layers[i + 1].num_features == layer.out_channels
            assert isinstance(model.layers[i + 2], ReLU)
    assert isinstance(model.layers[-2], GlobalAvgPool2D)
    assert model.build(shape)[-1] == (7,)
    x = np.random.default_rng(0).random((2, *shape), dtype=np.float32)
    assert model.predict(x).shape == (2, 7)
    plain = zoo.mobilenet_cnn(shape, rng=0, batch_norm=False)
    assert not any(isinstance(la, BatchNorm2D) for la in plain.layers)
    assert all(la.bias is not None for la in plain.layers if isinstance(la, Conv2D))


def test_mobilenet_cnn_learns_the_digits_a_little():
    x, y = load_digits("train")
    x = to_float(x, max_value=16)
    model = zoo.mobilenet_cnn((1, 8, 8), rng=0)
    history = model.fit(x[:512], y[:512], epochs=3, batch_size=32, seed=0, verbose=0,
                        optimizer=cc.optim.Adam(model.parameters(), lr=3e-3))
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert history.history["accuracy"][-1] > 0.3


def test_autoencoder_sizes_that_do_not_divide_by_4_are_refused():
    with pytest.raises(ClearConvError, match="divide by 4.*30x30"):
        zoo.conv_autoencoder((1, 30, 30))


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
        got = to_torch(model).eval()(torch.from_numpy(x)).numpy()   # BN: running stats
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------- batch-norm architectures
def test_resnet20_has_the_papers_layers_and_272474_parameters():
    model = zoo.resnet20()
    assert sum(p.value.size for p in model.parameters()) == 272_474     # ~0.27 M
    blocks = [la for la in model.layers if isinstance(la, Residual)]
    assert len(blocks) == 9
    convs = [la for b in blocks for la in b.main if isinstance(la, Conv2D)]
    assert len(convs) == 18 and 1 + len(convs) + 1 == 20          # 19 convs + 1 dense
    projections = [b for b in blocks if b.shortcut]
    assert len(projections) == 2                                   # option B, twice
    for block in projections:
        conv, bn = block.shortcut
        assert conv.kernel_size == (1, 1) and conv.stride == (2, 2)
        assert isinstance(bn, BatchNorm2D)
    assert [b.main[0].out_channels for b in blocks] == [16] * 3 + [32] * 3 + [64] * 3
    assert model.build((3, 32, 32))[-1] == (10,)


def test_resnet20_exports_to_onnx_and_converts_to_torch(tmp_path):
    from clearconv.io.torch import to_torch

    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed: the export "
                                                    "not run")
    torch = pytest.importorskip("torch", reason="PyTorch not installed: to_torch not checked")
    model = zoo.resnet20(rng=0)
    model.fit(*_cifar_like(16), epochs=1, batch_size=8, verbose=0, seed=0)   # real stats
    x = _cifar_like(4, seed=1)[0]
    path = str(tmp_path / "resnet20.onnx")
    model.to_onnx(path)
    (got,) = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(
        None, {"input": x})
    np.testing.assert_allclose(got, model.predict(x), rtol=1e-4, atol=1e-4)
    model64 = model.astype("float64")
    net = to_torch(model64).eval()
    with torch.no_grad():
        theirs = net(torch.from_numpy(x.astype(np.float64))).numpy()
    np.testing.assert_allclose(theirs, model64.predict(x.astype(np.float64)), rtol=0,
                               atol=1e-10)


def _cifar_like(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 3, 32, 32), dtype=np.float32), rng.integers(0, 10, n)


def test_resnet20_takes_other_classes_and_channels():
    model = zoo.resnet20(num_classes=100, in_channels=1)
    assert model.input_shape == (1, 32, 32)
    assert model.build((1, 32, 32))[-1] == (100,)


def test_mnist_bn_cnn_normalises_every_conv_and_the_dense_layer():
    model = zoo.mnist_bn_cnn(rng=0)
    kinds = [type(la).__name__ for la in model.layers]
    assert kinds.count("BatchNorm2D") == 4 and kinds.count("BatchNorm1D") == 1
    assert all(not la.bias for la in model.layers if isinstance(la, Conv2D))
    assert model.build((1, 28, 28))[-1] == (10,)


def test_recipes_know_the_bn_models_by_name():
    assert zoo.ARCHITECTURES["resnet20"] is zoo.resnet20
    assert zoo.ARCHITECTURES["mnist-bn-cnn"] is zoo.mnist_bn_cnn
    a = recipes.MODELS["resnet20"]((3, 32, 32), 10, 0)
    assert sum(p.value.size for p in a.parameters()) == 272_474
    b = recipes.MODELS["mnist-bn-cnn"]((1, 28, 28), 10, 0)
    assert isinstance(b.layers[1], BatchNorm2D)
    with pytest.raises(cc.ClearConvError, match="square"):
        recipes.MODELS["resnet20"]((3, 32, 16), 10, 0)


def test_resnet20_trains_and_its_file_keeps_every_buffer(tmp_path):
    model = zoo.resnet20(rng=0, size=8)
    rng = np.random.default_rng(0)
    x = rng.random((8, 3, 8, 8), dtype=np.float32)
    y = rng.integers(0, 10, 8)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = [model.train_step(x, y, opt) for _ in range(8)]
    assert losses[-1] < losses[0]
    path = str(tmp_path / "resnet20.npz")
    model.save(path)
    loaded = cc.load(path)
    assert len(loaded.state_dict()) == len(model.state_dict())
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


# --------------------------------------------------------------------------- PyTorch
def _torch_twin(model):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: the zoo's twins "
                                                "not checked")
    from benchmarks import torch_nets

    net = torch_nets.from_config(model.get_config()).double()
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in
                         model.state_dict().items()})
    return net


@pytest.mark.parametrize("build, shape", [
    (lambda: zoo.resnet20(rng=0, size=8, dtype="float64"), (3, 8, 8)),
    (lambda: zoo.mnist_bn_cnn(rng=0, size=12, dtype="float64", dropout=0.0), (1, 12, 12)),
])
def test_training_steps_equal_the_pytorch_twins(build, shape):
    """Three SGD steps (momentum 0.9) in training mode, float64: weights, running
    statistics and inference outputs to 1e-10."""
    model = build()
    net = _torch_twin(model)
    import torch

    rng = np.random.default_rng(1)
    x = rng.random((6, *shape))
    y = rng.integers(0, 10, 6)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    topt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    net.train()
    for _ in range(3):
        model.train_step(x, y, opt)
        topt.zero_grad()
        torch.nn.functional.cross_entropy(net(torch.from_numpy(x)),
                                          torch.from_numpy(y)).backward()
        topt.step()
    theirs = net.state_dict()
    for k, v in model.state_dict().items():
        np.testing.assert_allclose(v, theirs[k].numpy(), rtol=0, atol=1e-10, err_msg=k)
    net.eval()
    with torch.no_grad():
        np.testing.assert_allclose(model.predict(x), net(torch.from_numpy(x)).numpy(),
                                   rtol=0, atol=1e-10)


def test_bn_benchmark_cases_are_listed():
    from benchmarks.cases import all_cases

    names = {c.name for c in all_cases()}
    assert {"train step resnet20 b128", "train step mnist_bn_cnn b64",
            "batch norm fwd+bwd 64x64x32x32", "inference resnet20 b1000"} <= names


def test_bn_layers_inside_resnet20_switch_modes_with_the_model():
    model = zoo.resnet20()
    norms = [la for layer in model.layers for la in layer.walk()
             if isinstance(la, (BatchNorm2D, BatchNorm1D))]
    assert len(norms) == 1 + 18 + 2
    model.eval()
    assert not any(n.training for n in norms)
