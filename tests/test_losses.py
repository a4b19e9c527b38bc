"""The loss objects of clearconv.train.losses and ``fit(..., loss=...)``: names and
configs, training a regressor, a multi-label model and a smoothed classifier, evaluate's
report, target checks, the loss kept in model files and in checkpoints (resume)."""

from __future__ import annotations

import numpy as np
import pytest

import clearconv as cc
from clearconv import functional as F
from clearconv.errors import ClearConvError, ModelFileError, ShapeError
from clearconv.layers import Dense, ReLU
from clearconv.train.checkpoint import load_checkpoint
from clearconv.train.losses import (
    LOSSES,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    MSELoss,
    get_loss,
)

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None


def dense(out=3, seed=0, fin=4):
    return cc.Sequential(Dense(fin, 16, rng=seed), ReLU(), Dense(16, out, rng=seed + 1),
                         input_shape=(fin,))


def regression_data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    y = (x @ rng.standard_normal((4, 3)) + 0.5).astype(np.float32)
    return x, y


def classification_data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)


# ------------------------------------------------------------------ names and configs

def test_clearconv_losses_is_the_short_name_of_train_losses():
    import clearconv.losses

    import clearconv.train.losses

    assert clearconv.losses is clearconv.train.losses is cc.losses


def test_names_configs_and_objects_give_the_same_loss():
    assert set(LOSSES) == {"cross_entropy", "mse", "bce_with_logits"}
    assert get_loss(None) == CrossEntropyLoss() and get_loss(None).is_default
    assert get_loss("mse") == MSELoss()
    smooth = CrossEntropyLoss(weight=[1.0, 2.0, 3.0], ignore_index=1, label_smoothing=0.1)
    assert get_loss(smooth.get_config()) == smooth
    bce = BCEWithLogitsLoss(weight=np.ones((2, 3)), pos_weight=[1.0, 2.0, 3.0])
    again = get_loss(bce.get_config())
    assert again == bce and again.weight.shape == (2, 3)
    assert "label_smoothing=0.1" in repr(smooth)


@pytest.mark.parametrize("bad, match", [
    ("hinge", "unknown loss 'hinge'.*cross_entropy, mse, bce_with_logits"),
    (42, "must be a clearconv Loss"),
    ({"name": "mse", "size_average": True}, "invalid mse loss config"),
])
def test_unknown_losses_are_refused_by_name(bad, match):
    with pytest.raises(ClearConvError, match=match):
        get_loss(bad)


@pytest.mark.parametrize("make, match", [
    (lambda: CrossEntropyLoss(reduction="avg"), "'avg'"),
    (lambda: CrossEntropyLoss(label_smoothing=-0.1), "-0.1"),
    (lambda: CrossEntropyLoss(ignore_index=1.5), "1.5"),
    (lambda: CrossEntropyLoss(weight=np.ones((2, 2))), r"\(2, 2\)"),
    (lambda: MSELoss("average"), "'average'"),
])
def test_bad_options_raise_naming_the_value(make, match):
    with pytest.raises(ClearConvError, match=match):
        make()


def test_loss_objects_compute_what_the_functional_ops_do():
    rng = np.random.default_rng(1)
    z, y = rng.standard_normal((5, 3)), rng.integers(0, 3, 5)
    assert CrossEntropyLoss()(z, y) == F.softmax_cross_entropy_forward(z, y)[0]
    assert CrossEntropyLoss(label_smoothing=0.2)(z, y) == \
        F.cross_entropy_forward(z, y, label_smoothing=0.2)[0]
    t = rng.random((5, 3))
    assert MSELoss("sum")(z, t) == F.mse_forward(z, t, "sum")[0]
    np.testing.assert_array_equal(BCEWithLogitsLoss(reduction="none")(z, t),
                                  F.binary_cross_entropy_with_logits_forward(z, t,
                                                                             reduction="none")[0])


@pytest.mark.skipif(torch is None, reason="PyTorch not installed: not compared with torch.nn")
def test_loss_objects_match_torch_modules():
    rng = np.random.default_rng(2)
    z, y = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    w = rng.uniform(0.5, 2, 4)
    ours = CrossEntropyLoss(weight=w, label_smoothing=0.1, ignore_index=3)(z, y)
    theirs = torch.nn.CrossEntropyLoss(weight=torch.tensor(w), label_smoothing=0.1,
                                       ignore_index=3)(torch.tensor(z), torch.tensor(y))
    np.testing.assert_allclose(ours, theirs.item(), rtol=1e-10)


# ------------------------------------------------------------------ training with them

def test_fit_with_mse_trains_a_regressor_and_evaluate_reports_only_the_loss():
    x, y = regression_data()
    model = dense()
    before = MSELoss()(model.predict(x), y)
    history = model.fit(x, y, epochs=30, batch_size=16, loss="mse", seed=0, verbose=0,
                        optimizer=cc.optim.Adam(model.parameters(), lr=1e-2),
                        validation_data=(x[:32], y[:32]))
    after = model.evaluate(x, y)
    assert set(after) == {"loss"}           # evaluate uses the loss the model was given
    assert after["loss"] < 0.1 * before
    assert set(history.history) == {"loss", "val_loss", "seconds"}
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert isinstance(model.loss_fn, MSELoss)


def test_fit_with_bce_with_logits_trains_a_multi_label_model():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((128, 4)).astype(np.float32)
    y = (x[:, :3] > 0).astype(np.float32)              # three independent yes/no labels
    model = dense()
    model.fit(x, y, epochs=40, batch_size=32, seed=0, verbose=0,
              loss=BCEWithLogitsLoss(pos_weight=[1.0, 2.0, 1.0]),
              optimizer=cc.optim.Adam(model.parameters(), lr=1e-2))
    assert ((model.predict(x) > 0) == (y > 0.5)).mean() > 0.9


def test_fit_with_label_smoothing_reports_accuracy_and_the_smoothed_loss():
    x, y = classification_data()
    model = dense()
    history = model.fit(x, y, epochs=20, batch_size=16, seed=0, verbose=0,
                        loss=CrossEntropyLoss(label_smoothing=0.2),
                        optimizer=cc.optim.Adam(model.parameters(), lr=1e-2))
    assert history.history["accuracy"][-1] > 0.85
    result = model.evaluate(x, y)
    assert result["loss"] == pytest.approx(
        CrossEntropyLoss(label_smoothing=0.2)(model.predict(x), y), rel=1e-6)
    assert result["accuracy"] > 0.85


def test_class_probability_targets_train_and_count_accuracy_by_their_argmax():
    x, y = classification_data()
    soft = np.full((len(y), 3), 0.05, np.float32)
    soft[np.arange(len(y)), y] = 0.9
    model = dense()
    history = model.fit(x, soft, epochs=10, batch_size=16, seed=0, verbose=0,
                        optimizer=cc.optim.Adam(model.parameters(), lr=1e-2))
    assert history.history["accuracy"][-1] > 0.8


def test_sum_reduction_reports_the_loss_per_sample():
    x, y = regression_data(n=32)
    model = dense()
    expected = MSELoss("sum")(model.predict(x), y) / 32    # one step: the loss before it
    history = model.fit(x, y, epochs=1, batch_size=32, verbose=0, loss=MSELoss("sum"),
                        optimizer=cc.optim.SGD(model.parameters(), lr=1e-3))
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-5)


def test_reduction_none_cannot_train():
    x, y = regression_data(n=8)
    with pytest.raises(ClearConvError, match="reduction='none'.*'mean' or 'sum'"):
        dense().fit(x, y, loss=MSELoss("none"), verbose=0)


@pytest.mark.parametrize("loss, y, match", [
    ("mse", np.zeros((96, 2), np.float32), r"MSELoss needs targets of the output's shape "
                                           r"\(96, 3\), got y of shape \(96, 2\)"),
    ("mse", np.zeros(96, np.int64), r"\(96, 3\).*\(96,\)"),
    ("bce_with_logits", np.array(["a"] * 96 * 3).reshape(96, 3), "numeric targets"),
    ("cross_entropy", np.zeros((96, 2), np.int64), r"class indices of shape \(96,\)"),
])
def test_targets_are_checked_against_the_outputs_before_training(loss, y, match):
    x, _ = regression_data()
    model = dense()
    before = model.state_dict()["0.weight"].copy()
    with pytest.raises(ShapeError, match=match):
        model.fit(x, y, loss=loss, verbose=0)
    np.testing.assert_array_equal(model.state_dict()["0.weight"], before)


# ------------------------------------------------------------------ files and resume

def test_the_model_file_keeps_the_loss(tmp_path):
    x, y = regression_data(n=16)
    model = dense()
    model.fit(x, y, loss="mse", verbose=0)
    model.save(str(tmp_path / "m.npz"))
    loaded = cc.load(str(tmp_path / "m.npz"))
    assert loaded.loss_fn == MSELoss()
    assert loaded.evaluate(x, y) == model.evaluate(x, y)
    plain = dense()
    assert "loss" not in plain.get_config()     # the default leaves the file as it was


def test_a_bad_loss_in_a_model_file_is_a_model_file_error(tmp_path):
    config = dense().get_config()
    config["loss"] = {"name": "hinge"}
    with pytest.raises(ModelFileError, match="hinge"):
        cc.Sequential.from_config(config)


def fit_mse(model, directory, epochs, **kwargs):
    x, y = regression_data()
    return model.fit(x, y, epochs=epochs, batch_size=16, seed=0, verbose=0,
                     optimizer=cc.optim.SGD(model.parameters(), lr=0.01),
                     checkpoint_dir=directory, **kwargs)


def test_a_resumed_run_uses_the_saved_loss_and_matches_an_uninterrupted_run(tmp_path):
    reference = dense()
    fit_mse(reference, str(tmp_path / "ref"), 3, loss="mse")
    first = dense()
    fit_mse(first, str(tmp_path / "run"), 2, loss="mse")
    assert load_checkpoint(str(tmp_path / "run")).state.extra["fit"]["loss"]["name"] == "mse"
    resumed = dense(seed=7)                     # a fresh process: the default loss, other weights
    fit_mse(resumed, str(tmp_path / "run"), 3, resume=True)
    assert resumed.loss_fn == MSELoss()
    for k, v in reference.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[k], v)


def test_resuming_with_another_loss_is_refused(tmp_path):
    fit_mse(dense(), str(tmp_path), 1, loss="mse")
    with pytest.raises(ClearConvError, match="loss"):
        fit_mse(dense(), str(tmp_path), 2, resume=True, loss=MSELoss("sum"))


# ------------------------------------------------------------------ against PyTorch training

TORCH_LOSSES = {
    "cross_entropy": (lambda w: CrossEntropyLoss(weight=w, ignore_index=1, label_smoothing=0.1),
                      lambda w: torch.nn.CrossEntropyLoss(weight=torch.tensor(w), ignore_index=1,
                                                          label_smoothing=0.1)),
    "mse": (lambda w: MSELoss(), lambda w: torch.nn.MSELoss()),
    "bce_with_logits": (lambda w: BCEWithLogitsLoss(pos_weight=w),
                        lambda w: torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(w))),
}


@pytest.mark.skipif(torch is None, reason="PyTorch not installed: training not compared")
@pytest.mark.parametrize("name", list(TORCH_LOSSES))
def test_fit_with_a_loss_gives_the_weights_of_torch_after_the_same_sgd_steps(name):
    from clearconv.io.torch import to_torch

    rng = np.random.default_rng(4)
    x = rng.standard_normal((24, 4))
    if name == "cross_entropy":
        y = rng.integers(0, 3, 24)
    else:
        y = rng.random((24, 3)) if name == "mse" else (rng.random((24, 3)) > 0.5) * 1.0
    w = rng.uniform(0.5, 2.0, 3)
    ours, theirs = TORCH_LOSSES[name]
    model = dense().astype("float64")
    net = to_torch(model)
    model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0, loss=ours(w),
              optimizer=cc.optim.SGD(model.parameters(), lr=0.1))
    opt, loss_t = torch.optim.SGD(net.parameters(), lr=0.1), theirs(w)
    target = torch.tensor(y)
    for _ in range(2):
        for i in range(0, 24, 8):
            opt.zero_grad()
            loss_t(net(torch.tensor(x[i:i + 8])), target[i:i + 8]).backward()
            opt.step()
    for p, t in zip(model.parameters(), net.parameters(), strict=True):
        np.testing.assert_allclose(p.value, t.detach().numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=p.name)


@pytest.mark.parametrize("loss", ["mse", "bce_with_logits",
                                  CrossEntropyLoss(label_smoothing=0.3, weight=[1, 2, 3])])
def test_model_gradients_with_each_loss_agree_with_finite_differences(loss):
    from clearconv.gradcheck import check_model_gradients

    rng = np.random.default_rng(8)
    x = rng.standard_normal((6, 4))
    y = rng.integers(0, 3, 6) if isinstance(loss, CrossEntropyLoss) else rng.random((6, 3))
    model = dense().astype("float64")
    model.loss_fn = get_loss(loss)
    result = check_model_gradients(model, x, y, max_checks_per_param=20)
    assert result.ok, str(result)


def test_per_pixel_cross_entropy_trains_a_fully_convolutional_model():
    from clearconv.layers import Conv2D

    rng = np.random.default_rng(9)
    x = rng.standard_normal((32, 2, 6, 6)).astype(np.float32)
    y = (x[:, 0] > x[:, 1]).astype(np.int64)            # (N, H, W): a class per pixel
    y[:, 0, 0] = 255                                    # some pixels unlabelled
    model = cc.Sequential(Conv2D(2, 8, 3, padding=1, rng=0), ReLU(),
                          Conv2D(8, 2, 1, rng=1), input_shape=(2, 6, 6))
    history = model.fit(x, y, epochs=15, batch_size=8, seed=0, verbose=0,
                        loss=CrossEntropyLoss(ignore_index=255),
                        optimizer=cc.optim.Adam(model.parameters(), lr=1e-2))
    assert "accuracy" not in history.history              # no per-sample accuracy here
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    pixels = model.predict(x).argmax(axis=1) == y
    assert pixels[y != 255].mean() > 0.9


def test_the_module_docstring_example_runs():
    import doctest

    import clearconv.train.losses as module

    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
