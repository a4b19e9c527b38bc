"""Residual and Concat (clearconv.layers.blocks): values, the gradient rule where
branches meet (held to finite differences and to PyTorch), nesting, names, files,
summary, ONNX and torch interop."""

from __future__ import annotations

import numpy as np
import pytest

import clearconv as cc
from clearconv.errors import ClearConvError, ShapeError
from clearconv.gradcheck import check_model_gradients
from clearconv.layers import (
    Concat,
    Conv2D,
    ConvTranspose2D,
    Dense,
    Flatten,
    MaxPool2D,
    ReLU,
    Residual,
)


def small_resnet(dtype: str = "float64") -> cc.Sequential:
    """Residual blocks (identity and projection), a Concat with an identity branch and a
    U-Net-like down/up branch, nested: every kind of meeting point."""
    g = np.random.default_rng(0)
    down_up = [Conv2D(6, 6, 3, stride=2, padding=1, rng=g), ReLU(),
               ConvTranspose2D(6, 3, 4, stride=2, padding=1, rng=g)]
    return cc.Sequential(
        Conv2D(2, 6, 3, padding=1, rng=g, dtype=dtype), ReLU(),
        Residual([Conv2D(6, 6, 3, padding=1, rng=g), ReLU(), Conv2D(6, 6, 3, padding=1, rng=g)]),
        Residual([Conv2D(6, 6, 3, padding=1, rng=g),
                  Residual([Conv2D(6, 6, 1, rng=g)])]),                  # nested
        Concat([], down_up, [Conv2D(6, 2, 1, rng=g)]),                  # 6 + 3 + 2
        Residual([Conv2D(11, 8, 3, stride=2, padding=1, rng=g)],
                 [Conv2D(11, 8, 1, stride=2, rng=g)]),                 # projection shortcut
        MaxPool2D(2), Flatten(), Dense(8 * 2 * 2, 3, rng=g),
        input_shape=(2, 8, 8)).astype(dtype)


def test_gradients_through_every_branch_pass_finite_differences():
    model = small_resnet()
    x = np.random.default_rng(1).standard_normal((3, 2, 8, 8))
    y = np.array([0, 1, 2])
    result = check_model_gradients(model, x, y)
    assert result.ok, str(result)


def test_residual_is_main_plus_shortcut_and_sends_dy_down_both():
    g = np.random.default_rng(2)
    main, short = Conv2D(3, 4, 3, padding=1, rng=g, dtype="float64"), \
        Conv2D(3, 4, 1, rng=g, dtype="float64")
    block = Residual([main], [short])
    x = g.standard_normal((2, 3, 5, 5))
    expected = main.forward(x) + short.forward(x)
    y = block.forward(x, training=True)
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    dy = g.standard_normal(y.shape)
    dx = block.backward(dy)
    main.forward(x, training=True)
    short.forward(x, training=True)
    np.testing.assert_allclose(dx, main.backward(dy) + short.backward(dy), rtol=1e-12)


def test_concat_splits_dy_by_channels_and_adds_the_branches_gradients():
    g = np.random.default_rng(3)
    a, b = Conv2D(3, 2, 1, rng=g, dtype="float64"), Conv2D(3, 5, 3, padding=1, rng=g,
                                                          dtype="float64")
    block = Concat([a], [], [b])
    x = g.standard_normal((2, 3, 4, 4))
    y = block.forward(x, training=True)
    assert y.shape == (2, 10, 4, 4)
    np.testing.assert_array_equal(y[:, 2:5], x)         # the identity branch
    dy = g.standard_normal(y.shape)
    dx = block.backward(dy)
    a.forward(x, training=True)
    b.forward(x, training=True)
    expected = a.backward(dy[:, :2]) + dy[:, 2:5] + b.backward(dy[:, 5:])
    np.testing.assert_allclose(dx, expected, rtol=1e-12)


def test_parameter_names_nest_and_the_model_file_round_trips(tmp_path):
    model = small_resnet("float32")
    names = [p.name for p in model.parameters()]
    assert "2.main.0.weight" in names and "3.main.1.main.0.bias" in names
    assert "4.1.2.weight" in names and "5.shortcut.0.weight" in names
    path = tmp_path / "res.npz"
    model.save(str(path))
    loaded = cc.load(str(path))
    x = np.random.default_rng(4).random((2, 2, 8, 8), dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_a_model_with_blocks_trains():
    model = small_resnet("float32")
    rng = np.random.default_rng(5)
    x = rng.random((32, 2, 8, 8), dtype=np.float32)
    y = (x[:, 0].mean(axis=(1, 2)) > x[:, 1].mean(axis=(1, 2))).astype(int)
    opt = cc.optim.Adam(model.parameters(), lr=3e-3)
    first = model.evaluate(x, y)["loss"]
    model.fit(x, y, epochs=15, batch_size=16, optimizer=opt, verbose=0, seed=0)
    assert model.evaluate(x, y)["loss"] < 0.5 * first


def test_summary_shows_the_branches():
    text = small_resnet().summary(print_fn=None)
    assert "  2.main.0: Conv2D" in text
    assert "    3.main.1.main.0: Conv2D" in text       # nested, indented further
    assert "  4.0: identity" in text and "  4.1.2: ConvTranspose2D" in text
    assert "4: Concat" in text and "(N, 11, 8, 8)" in text


def test_mismatched_branches_are_refused_with_the_shapes():
    with pytest.raises(ShapeError, match=r"main branch gives \(4, 5, 5\), the shortcut "
                                         r"\(3, 5, 5\)"):
        cc.Sequential(Residual([Conv2D(3, 4, 3, padding=1)]), input_shape=(3, 5, 5))
    with pytest.raises(ShapeError, match="all but the channels must agree"):
        cc.Sequential(Concat([Conv2D(3, 4, 3)], []), input_shape=(3, 5, 5))
    with pytest.raises(ClearConvError, match="at least one layer"):
        Residual([])
    with pytest.raises(ClearConvError, match=r"Residual main\[1\] is not a clearconv Layer"):
        Residual([ReLU(), "relu"])


def test_onnx_export_runs_in_onnxruntime_with_the_same_outputs(tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    pytest.importorskip("onnx", reason="onnx not installed")
    model = small_resnet("float32")
    path = tmp_path / "res.onnx"
    model.to_onnx(str(path))
    x = np.random.default_rng(6).random((3, 2, 8, 8), dtype=np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {"input": x})[0]
    np.testing.assert_allclose(out, model.predict(x), rtol=1e-4, atol=1e-5)


def test_torch_round_trip_gives_the_same_outputs_and_the_same_steps():
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    from clearconv.io.torch import from_torch, to_torch

    model = small_resnet("float64")
    net = to_torch(model)
    x = np.random.default_rng(7).standard_normal((3, 2, 8, 8))
    with torch.no_grad():
        theirs = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(theirs, model.predict(x), rtol=1e-10, atol=1e-12)
    back = from_torch(net, input_shape=(2, 8, 8))
    assert [p.name for p in back.parameters()] == [p.name for p in model.parameters()]
    np.testing.assert_allclose(back.predict(x), model.predict(x), rtol=1e-10, atol=1e-12)
    # identical SGD steps give identical weights
    y = np.array([0, 1, 2])
    opt = cc.optim.SGD(model.parameters(), lr=0.1)
    topt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(2):
        model.train_step(x, y, opt)
        topt.zero_grad()
        torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y)
                                          ).backward()
        topt.step()
    for (name, value), tensor in zip(model.state_dict().items(), net.state_dict().values()):
        np.testing.assert_allclose(value, tensor.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)
