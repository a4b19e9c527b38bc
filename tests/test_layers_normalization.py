"""BatchNorm2D / BatchNorm1D layers: PyTorch's module semantics step by step, train and
eval modes (nested in blocks), buffers in state_dict, model files and checkpoints,
gradient checks of a BN model, fusion, summary and the errors."""

from __future__ import annotations

import numpy as np
import pytest

import clearconv as cc
from clearconv import optim
from clearconv.errors import ClearConvError, ShapeError
from clearconv.gradcheck import check_model_gradients, numerical_gradient
from clearconv.layers import (
    BatchNorm1D,
    BatchNorm1d,
    BatchNorm2D,
    BatchNorm2d,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPool2D,
    ReLU,
    Residual,
)
from clearconv.train.checkpoint import load_checkpoint


def bn_model(seed=0, dtype="float32", fuse=True):
    g = np.random.default_rng(seed)
    return cc.Sequential(
        Conv2D(1, 4, 3, padding=1, bias=False, rng=g), BatchNorm2D(4), ReLU(),
        Residual([Conv2D(4, 4, 3, padding=1, rng=g), BatchNorm2D(4, momentum=None), ReLU()],
                 [Conv2D(4, 4, 1, rng=g), BatchNorm2D(4)]),
        MaxPool2D(2), Flatten(), Dropout(0.2, rng=1), Dense(64, 8, rng=g), BatchNorm1D(8),
        ReLU(), Dense(8, 3, rng=g), input_shape=(1, 8, 8), fuse=fuse).astype(dtype)


def data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 0.5, (n, 1, 8, 8)).astype(np.float32)
    for i, c in enumerate(y):
        x[i, 0, 2 * c:2 * c + 3, 2:5] += 1.5
    return x, y


def bn_layers(model):
    return [la for layer in model.layers for la in layer.walk()
            if isinstance(la, (BatchNorm2D, BatchNorm1D))]


# ------------------------------------------------------------------- the layer itself
def test_pytorch_spellings_are_the_same_classes():
    assert BatchNorm2d is BatchNorm2D and BatchNorm1d is BatchNorm1D


def test_new_layer_holds_ones_zeros_and_fresh_statistics():
    bn = BatchNorm2D(3)
    np.testing.assert_array_equal(bn.weight.value, 1)
    np.testing.assert_array_equal(bn.bias.value, 0)
    assert [n for n, _ in bn.named_buffers()] == ["running_mean", "running_var",
                                                  "num_batches_tracked"]
    assert bn.num_batches_tracked.shape == () and bn.num_batches_tracked.dtype == np.int64
    assert not bn.weight.decay and not bn.bias.decay
    assert BatchNorm2D(3, affine=False).parameters() == []
    assert BatchNorm2D(3, track_running_stats=False).named_buffers() == []


def test_inference_uses_running_statistics_and_updates_nothing():
    bn = BatchNorm2D(2)
    bn.running_mean[...] = [1.0, -1.0]
    bn.running_var[...] = [4.0, 1.0]
    x = np.ones((3, 2, 2, 2), np.float32)
    y = bn.forward(x)                        # training=False: inference
    np.testing.assert_allclose(y[:, 0], 0, atol=1e-6)
    np.testing.assert_allclose(y[:, 1], 2 / np.sqrt(1 + 1e-5), rtol=1e-6)
    assert bn.num_batches_tracked == 0


def test_without_running_statistics_every_pass_uses_the_batch():
    bn = BatchNorm2D(2, track_running_stats=False)
    x = np.random.default_rng(0).normal(3, 2, (4, 2, 3, 3))
    y = bn.forward(x)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)


# --------------------------------------------------------------------------- PyTorch
def _torch():
    return pytest.importorskip("torch", reason="PyTorch not installed: the layers are not "
                                               "compared with torch.nn.BatchNorm2d")


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("cls, torch_cls, shape", [
    (BatchNorm2D, "BatchNorm2d", (4, 3, 5, 5)), (BatchNorm1D, "BatchNorm1d", (6, 3)),
    (BatchNorm1D, "BatchNorm1d", (4, 3, 7))])
def test_steps_of_training_then_eval_match_torch_module(momentum, cls, torch_cls, shape):
    """Three training passes (running statistics, cumulative with momentum=None), then
    inference, forward and backward, float64 1e-10."""
    torch = _torch()
    ours = cls(3, momentum=momentum, dtype=np.float64)
    theirs = getattr(torch.nn, torch_cls)(3, momentum=momentum).double()
    rng = np.random.default_rng(0)
    for step in range(3):
        x = rng.normal(step, 1 + step, shape)
        dy = rng.standard_normal(shape)
        y = ours.forward(x, training=True)
        dx = ours.backward(dy)
        xt = torch.tensor(x, requires_grad=True)
        yt = theirs(xt)
        yt.backward(torch.tensor(dy))
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(ours.bias.grad, theirs.bias.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), atol=1e-12)
    np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), atol=1e-12)
    assert int(ours.num_batches_tracked) == int(theirs.num_batches_tracked) == 3
    theirs.eval()
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(ours.forward(x), theirs(torch.tensor(x)).detach().numpy(),
                               rtol=1e-10, atol=1e-12)


def test_state_dict_keys_are_torchs_and_load_both_ways():
    torch = _torch()
    model = bn_model(dtype="float64")
    from clearconv.io.torch import to_torch

    net = to_torch(model)
    assert list(model.state_dict()) == list(net.state_dict())
    model.fit(*data(), epochs=1, batch_size=16, verbose=0, seed=0)
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in
                         model.state_dict().items()})
    fresh = bn_model(seed=5, dtype="float64")
    fresh.load_state_dict({k: v.numpy() for k, v in net.state_dict().items()})
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[k], v)
    net.eval()
    x = data()[0][:5].astype(np.float64)
    np.testing.assert_allclose(fresh.predict(x), net(torch.from_numpy(x)).detach().numpy(),
                               rtol=0, atol=1e-10)


def test_running_statistics_match_torch_after_the_same_sgd_steps():
    torch = _torch()
    from clearconv.io.torch import to_torch

    model = bn_model(dtype="float64", fuse=False)
    model.layers[6].p = 0.0           # dropout off: the two sides cannot share masks
    net = to_torch(model)
    net[6].p = 0.0
    x, y = data()
    x = x.astype(np.float64)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for i in range(3):
        xb, yb = x[16 * i:16 * i + 16], y[16 * i:16 * i + 16]
        model.train_step(xb, yb, opt)
        topt.zero_grad()
        torch.nn.functional.cross_entropy(net(torch.from_numpy(xb)),
                                          torch.from_numpy(yb)).backward()
        topt.step()
    for k, v in net.state_dict().items():
        np.testing.assert_allclose(model.state_dict()[k], v.numpy(), rtol=0, atol=1e-10,
                                   err_msg=k)


# ------------------------------------------------------------------------- the modes
def test_train_and_eval_reach_every_layer_inside_blocks():
    model = bn_model()
    assert model.training and all(la.training for la in bn_layers(model))
    assert model.eval() is model
    assert not model.training
    assert not any(la.training for layer in model.layers for la in layer.walk())
    model.train()
    assert all(la.training for layer in model.layers for la in layer.walk())


def test_a_training_step_in_eval_mode_keeps_the_running_statistics():
    model = bn_model()
    x, y = data()
    model.eval()
    before = {k: v.copy() for k, v in model.state_dict().items() if "running" in k}
    model.train_step(x[:16], y[:16], optim.SGD(model.parameters(), lr=0.1))
    for k, v in before.items():
        np.testing.assert_array_equal(model.state_dict()[k], v)
    model.train()
    model.train_step(x[:16], y[:16], optim.SGD(model.parameters(), lr=0.1))
    assert not np.array_equal(model.state_dict()["1.running_mean"], before["1.running_mean"])


def test_fit_trains_in_training_mode_and_puts_the_mode_back():
    model = bn_model()
    x, y = data()
    model.eval()
    hist = model.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=0,
                     validation_data=(x[:8], y[:8]))
    assert not model.training and len(hist.history["val_loss"]) == 2
    assert int(model.layers[1].num_batches_tracked) == 2 * 3


def test_predict_and_evaluate_leave_the_statistics_alone():
    model = bn_model()
    x, y = data()
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, seed=0)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    p1 = model.predict(x)
    model.evaluate(x, y)
    p2 = model.predict(x[:7])
    # (other batch sizes may take other conv algorithms: equal up to float32 rounding)
    np.testing.assert_allclose(p1[:7], p2, rtol=1e-5, atol=1e-5)
    for k, v in before.items():
        np.testing.assert_array_equal(model.state_dict()[k], v)


# ------------------------------------------------------------------ files and resume
def test_save_and_load_keep_the_running_statistics(tmp_path):
    model = bn_model()
    model.fit(*data(), epochs=1, batch_size=16, verbose=0, seed=0)
    path = str(tmp_path / "bn.npz")
    model.save(path)
    loaded = cc.load(path)
    for k, v in model.state_dict().items():
        got = loaded.state_dict()[k]
        assert got.shape == v.shape and got.dtype == v.dtype
        np.testing.assert_array_equal(got, v)
    x = data()[0][:9]
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


class InterruptAt(cc.Callback):
    def __init__(self, epoch, step):
        self.at, self.epoch = (epoch, step), 0

    def on_epoch_end(self, epoch, logs):
        self.epoch = epoch + 1

    def on_batch_end(self, step, logs):
        if (self.epoch, step) == self.at:
            raise KeyboardInterrupt


def _fit(model, tmp=None, resume=False, callbacks=()):
    x, y = data()
    return model.fit(x, y, epochs=3, batch_size=16, verbose=0, seed=3, callbacks=callbacks,
                     optimizer=optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                     checkpoint_dir=tmp, resume=resume)


def test_resume_of_a_bn_model_is_bit_identical(tmp_path):
    reference = bn_model()
    ref_hist = _fit(reference)
    with pytest.raises(KeyboardInterrupt):
        _fit(bn_model(), str(tmp_path), callbacks=[InterruptAt(1, 1)])
    ck = load_checkpoint(str(tmp_path))
    assert "1.running_mean" in ck.model_state
    resumed = bn_model(seed=99)
    hist = _fit(resumed, str(tmp_path), resume=True)
    for k, v in reference.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[k], v, err_msg=k)
    assert hist.history["loss"] == ref_hist.history["loss"]


# ------------------------------------------------------------------ gradient checks
def test_gradcheck_of_a_bn_model_in_evaluation_mode():
    model = bn_model(dtype="float64")
    model.fit(*data(), epochs=1, batch_size=16, verbose=0, seed=0)   # non-trivial stats
    x, y = data(6, seed=2)
    result = check_model_gradients(model, x.astype(np.float64), y, seed=1)
    assert result.ok, str(result)
    assert model.training        # put back


def test_training_mode_gradients_of_a_bn_model_match_finite_differences():
    model = bn_model(dtype="float64")
    model.layers[6].p = 0.0
    x, y = data(6, seed=2)
    x = x.astype(np.float64)
    model.zero_grad()
    model.loss_and_backward(x, y, training=True)

    def loss():
        from clearconv.functional import softmax_cross_entropy_forward

        return softmax_cross_entropy_forward(model.forward(x, training=True), y)[0]

    rng = np.random.default_rng(0)
    for p in model.parameters():
        analytic = p.grad.copy()
        for _ in range(3):
            idx = tuple(int(rng.integers(s)) for s in p.value.shape)
            numeric = numerical_gradient(lambda v, idx=idx, p=p: _at(p, idx, v, loss),
                                         np.array(p.value[idx]))
            assert abs(analytic[idx] - numeric) <= 1e-7 + 1e-5 * abs(numeric), p.name


def _at(p, idx, v, loss):
    old = p.value[idx]
    p.value[idx] = v
    try:
        return loss()
    finally:
        p.value[idx] = old


def test_fused_and_unfused_bn_models_agree_bit_for_bit():
    a, b = bn_model(fuse=True), bn_model(fuse=False)
    x, y = data()
    for m in (a, b):
        m.layers[6].p = 0.0
        m.fit(x, y, epochs=1, batch_size=16, verbose=0, seed=0)
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[k], v, err_msg=k)


def test_summary_shows_bn_rows_with_their_parameters_and_algorithm():
    text = bn_model().summary(print_fn=None)
    assert "1: BatchNorm2D" in text and "3.main.1: BatchNorm2D" in text
    assert "8: BatchNorm1D" in text
    row = next(line for line in text.splitlines() if line.startswith("1: BatchNorm2D"))
    assert " 8 " in row + " "


# ------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("make, shape, numbers", [
    (lambda: BatchNorm2D(3), (2, 4, 5, 5), (3, 4)),
    (lambda: BatchNorm2D(3), (2, 3), ("(N, C, H, W)",)),
    (lambda: BatchNorm1D(3), (2, 3, 4, 4), ("(N, C)",)),
])
def test_wrong_input_is_refused_naming_the_numbers(make, shape, numbers):
    from strategies import mentions

    with pytest.raises(ShapeError, match=mentions(*numbers)):
        make().forward(np.zeros(shape), training=True)


@pytest.mark.parametrize("kwargs, word", [({"num_features": 0}, "num_features"),
                                          ({"num_features": 2, "momentum": 2.0}, "momentum"),
                                          ({"num_features": 2, "eps": -1.0}, "eps")])
def test_bad_settings_are_refused(kwargs, word):
    with pytest.raises(ClearConvError, match=word):
        BatchNorm2D(**kwargs)


def test_model_shape_check_names_the_bn_layer():
    with pytest.raises(ShapeError, match="layer 1 .BatchNorm2D"):
        cc.Sequential(Conv2D(1, 4, 3), BatchNorm2D(5), input_shape=(1, 6, 6))


def test_onnx_export_refuses_bn_without_running_statistics(tmp_path):
    pytest.importorskip("onnx", reason="onnx not installed: export not checked")
    model = cc.Sequential(Conv2D(1, 2, 3), BatchNorm2D(2, track_running_stats=False),
                          input_shape=(1, 5, 5))
    with pytest.raises(ClearConvError, match="track_running_stats"):
        model.to_onnx(str(tmp_path / "m.onnx"))


def test_dense_bn_layer_sits_after_dense_outputs():
    model = cc.Sequential(Dense(5, 4, rng=0), BatchNorm1D(4), ReLU(), Dense(4, 2, rng=1),
                          input_shape=(5,))
    x = np.random.default_rng(0).standard_normal((10, 5)).astype(np.float32)
    loss = model.train_step(x, np.arange(10) % 2, optim.SGD(model.parameters(), lr=0.1))
    assert np.isfinite(loss) and int(model.layers[1].num_batches_tracked) == 1
