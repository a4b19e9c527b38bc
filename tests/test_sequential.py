"""Sequential: structure, summary, training API, callbacks, state and files."""

import numpy as np
import pytest

import clearconv as cc
from clearconv.errors import ModelFileError, NumericalError, ShapeError
from clearconv.layers import AvgPool2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Tanh
from clearconv.train import optim, zoo


def small_model(dtype="float32", seed=0):
    g = np.random.default_rng(seed)
    return cc.Sequential(
        Conv2D(2, 3, 3, padding="same", rng=g, dtype=dtype), ReLU(), MaxPool2D(2),
        Conv2D(3, 4, (2, 3), stride=(1, 2), padding=((0, 1), (1, 1)), rng=g, dtype=dtype),
        Tanh(), AvgPool2D(2, stride=1), Flatten(), Dense(4 * 2 * 1, 5, rng=g, dtype=dtype),
        input_shape=(2, 6, 6),
    )


def blobs(n=120, seed=0):
    """Three classes of 1x8x8 images, told apart by where a bright square sits."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 0.3, (n, 1, 8, 8)).astype(np.float32)
    for i, c in enumerate(y):
        x[i, 0, 2 * c:2 * c + 3, 2:5] += 2.0
    return x, y


def test_summary_lists_shapes_and_parameter_counts():
    text = zoo.digits_cnn(rng=0).summary(print_fn=None)
    assert "(N, 16, 8, 8)" in text and "(N, 32, 2, 2)" in text and "(N, 10)" in text
    expected = (cc.shapes.conv2d_params(1, 16, 3) + cc.shapes.conv2d_params(16, 32, 3)
                + cc.shapes.dense_params(128, 64) + cc.shapes.dense_params(64, 10))
    assert f"Total params: {expected:,}" in text
    assert expected == 13_706


def test_channel_mismatch_is_reported_at_construction_with_both_numbers():
    with pytest.raises(ValueError,
                       match=r"layer 2 \(Conv2D\).*expects 4 input channels.*receives 3"):
        cc.Sequential(Conv2D(1, 3, 3), ReLU(), Conv2D(4, 8, 3), input_shape=(1, 10, 10))


def test_dense_without_flatten_is_reported():
    with pytest.raises(ShapeError, match="Flatten"):
        cc.Sequential(Conv2D(1, 2, 3), Dense(2 * 6 * 6, 3), input_shape=(1, 8, 8))


def test_wrong_input_shape_names_both_shapes():
    model = zoo.digits_cnn(rng=0)
    with pytest.raises(ShapeError, match=r"\(N, 1, 8, 8\).*\(4, 1, 9, 9\)"):
        model.predict(np.zeros((4, 1, 9, 9)))


def test_whole_model_gradients_match_finite_differences():
    from clearconv.gradcheck import check_model_gradients

    model = small_model("float64")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, 6, 6))
    y = rng.integers(0, 5, 3)
    result = check_model_gradients(model, x, y, eps=1e-6, max_checks_per_param=30)
    assert result.ok, str(result)


def test_gradient_of_a_broken_model_is_caught():
    from clearconv.gradcheck import check_model_gradients

    model = small_model("float64")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, 6, 6))
    y = rng.integers(0, 5, 3)
    layer = model.layers[7]
    original = layer.backward

    def wrong_backward(dy):
        dx = original(dy)
        layer.weight.grad *= 1.05
        return dx

    layer.backward = wrong_backward
    assert not check_model_gradients(model, x, y, max_checks_per_param=30).ok


def test_fit_learns_and_is_deterministic_for_a_seed():
    x, y = blobs()
    runs = []
    for _ in range(2):
        model = cc.Sequential(Conv2D(1, 4, 3, padding=1, rng=3), ReLU(), MaxPool2D(2),
                              Flatten(), Dense(64, 3, rng=4))
        hist = model.fit(x, y, epochs=6, batch_size=16, verbose=0, seed=7,
                         optimizer=optim.Adam(model.parameters(), lr=0.01))
        runs.append((hist, model.state_dict()))
    (h1, s1), (h2, s2) = runs
    assert h1.history["loss"][-1] < h1.history["loss"][0] / 3
    assert h1.history["accuracy"][-1] > 0.95
    assert h1.history["loss"] == h2.history["loss"]
    for k in s1:
        np.testing.assert_array_equal(s1[k], s2[k])


def test_fit_visits_every_sample_once_per_epoch():
    x, y = blobs(50)
    model = cc.Sequential(Flatten(), Dense(64, 3, rng=0))
    seen = []
    original = model.compute_gradients

    def spy(xb, yb):
        seen.append(xb.copy())
        return original(xb, yb)

    model.compute_gradients = spy
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=0,
              optimizer=optim.SGD(model.parameters(), lr=0.0 + 1e-9))
    sizes = [len(b) for b in seen]
    assert sizes == [16, 16, 16, 2] * 2
    for epoch in range(2):
        batch = np.concatenate(seen[4 * epoch:4 * epoch + 4])
        order = np.lexsort(batch.reshape(50, -1).T)
        ref = np.lexsort(x.reshape(50, -1).T)
        np.testing.assert_array_equal(batch[order], x[ref])
    assert not np.array_equal(np.concatenate(seen[:4]), np.concatenate(seen[4:]))


def test_validation_metrics_and_evaluate_agree():
    x, y = blobs(60)
    model = cc.Sequential(Flatten(), Dense(64, 3, rng=0))
    hist = model.fit(x, y, epochs=2, batch_size=32, validation_data=(x, y), verbose=0, seed=0)
    ev = model.evaluate(x, y, batch_size=7)
    assert hist.history["val_loss"][-1] == pytest.approx(ev["loss"], rel=1e-5)
    assert hist.history["val_accuracy"][-1] == ev["accuracy"]


def test_predict_in_batches_equals_one_forward():
    model = zoo.digits_cnn(rng=0).astype("float64")
    x = np.random.default_rng(0).random((37, 1, 8, 8))
    np.testing.assert_allclose(model.predict(x, batch_size=5), model.forward(x), rtol=1e-12)
    proba = model.predict_proba(x)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(model.predict_classes(x), model.forward(x).argmax(axis=1))


def test_nan_loss_raises_and_applies_no_update():
    x, y = blobs(20)
    model = cc.Sequential(Flatten(), Dense(64, 3, rng=0))
    before = {k: v.copy() for k, v in model.state_dict().items()}
    x_bad = x.copy()
    x_bad[3, 0, 0, 0] = np.nan
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(NumericalError, match="nan"):
        model.train_step(x_bad, y, opt)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    with pytest.raises(NumericalError, match=r"epoch 1, step 1/1"):
        model.fit(x_bad, y, epochs=1, batch_size=32, verbose=0, optimizer=opt)


def test_terminate_on_nan_stops_quietly():
    x, y = blobs(20)
    x[:, 0, 0, 0] = np.inf
    model = cc.Sequential(Flatten(), Dense(64, 3, rng=0))
    cb = cc.TerminateOnNaN()
    hist = model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[cb])
    assert cb.terminated_at == (0, 0)
    assert hist.epochs == 0


def test_early_stopping_restores_best_weights():
    x, y = blobs(60)
    model = cc.Sequential(Flatten(), Dense(64, 3, rng=0))
    es = cc.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    # a huge learning rate makes validation loss go up after the first epochs
    hist = model.fit(x, y, epochs=30, batch_size=60, verbose=0, callbacks=[es], seed=0,
                     validation_data=(x, y), optimizer=optim.SGD(model.parameters(), lr=50.0))
    assert es.stopped_epoch is not None and hist.epochs < 30
    best = min(hist.history["val_loss"])
    assert model.evaluate(x, y)["loss"] == pytest.approx(best, rel=1e-5)


def test_model_checkpoint_saves_best_only(tmp_path):
    x, y = blobs(40)
    model = cc.Sequential(Flatten(), Dense(64, 3, rng=0))
    path = tmp_path / "ck-{epoch}.npz"
    cb = cc.ModelCheckpoint(str(path), monitor="loss", save_best_only=True)
    model.fit(x, y, epochs=3, batch_size=40, verbose=0, callbacks=[cb],
              optimizer=optim.SGD(model.parameters(), lr=0.1))
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["ck-1.npz", "ck-2.npz", "ck-3.npz"]
    restored = cc.load(str(tmp_path / "ck-3.npz"))
    np.testing.assert_array_equal(restored.predict(x), model.predict(x))


def test_save_and_load_round_trip(tmp_path):
    model = small_model("float64")
    model.classes = ["a", "b", "c", "d", "e"]
    path = tmp_path / "m.npz"
    model.save(str(path))
    loaded = cc.load(str(path))
    assert loaded.dtype == np.float64 and loaded.input_shape == (2, 6, 6)
    assert loaded.classes == model.classes
    x = np.random.default_rng(0).standard_normal((4, 2, 6, 6))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.get_config() == model.get_config()


def test_load_rejects_foreign_and_corrupt_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(ModelFileError, match="bad.npz"):
        cc.load(str(bad))
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(ModelFileError):
        cc.load(str(other))
    # a valid file whose weights do not fit its architecture
    good = tmp_path / "good.npz"
    zoo.digits_cnn(rng=0).save(str(good))
    from clearconv import io

    config, arrays = io.load_arrays(str(good))
    arrays["0.weight"] = np.zeros((2, 2))
    io.save_arrays(str(good), config, arrays)
    with pytest.raises(ModelFileError, match="0.weight"):
        cc.load(str(good))


def test_load_state_dict_strict_names_missing_and_unexpected_keys():
    model = zoo.digits_cnn(rng=0)
    state = dict(model.state_dict())
    state.pop("0.bias")
    state["99.weight"] = np.zeros(1)
    with pytest.raises(ValueError,
                       match=r"missing keys \['0.bias'\].*unexpected keys \['99.weight'\]"):
        model.load_state_dict(state)
    model.load_state_dict(state, strict=False)
    with pytest.raises(ShapeError, match=r"0.weight.*\(1, 2\)"):
        model.load_state_dict({"0.weight": np.zeros((1, 2))}, strict=False)


def test_dropout_only_in_training_and_seeded_by_fit():
    layer = Dropout(0.5, rng=0)
    x = np.ones((1000,), np.float32)
    np.testing.assert_array_equal(layer.forward(x), x)
    y = layer.forward(x, training=True)
    assert set(np.unique(y)) == {0.0, 2.0}
    assert 0.4 < (y == 0).mean() < 0.6
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), y)


def test_parameters_are_named_and_optimizer_updates_them_in_place():
    model = zoo.digits_cnn(rng=0)
    names = [p.name for p in model.parameters()]
    assert names == ["0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias",
                     "9.weight", "9.bias"]
    view = model.state_dict()["0.weight"]
    before = view.copy()
    x, y = blobs(8)
    model.train_step(x, y % 10, optim.SGD(model.parameters(), lr=0.1))
    assert not np.array_equal(view, before)


def _assert_fused_run_equals_literal_order(model, x, y):
    """Sequential's run (fused ops) gives bit for bit the loss and gradients of running
    model.layers one by one."""
    loss = model.loss_and_backward(x, y, training=True)
    grads = {p.name: p.grad.copy() for p in model.parameters()}
    model.zero_grad()
    h = x                                        # the literal order, layer by layer,
    with cc.parallel():                          # split between threads as the model is
        for layer in model.layers:
            h = layer.forward(h, training=True)
        ref_loss, cache = cc.functional.softmax_cross_entropy_forward(h, y)
        d = cc.functional.softmax_cross_entropy_backward(1.0, cache)
        for layer in reversed(model.layers):
            d = layer.backward(d)
    assert loss == ref_loss
    for p in model.parameters():
        np.testing.assert_array_equal(p.grad, grads[p.name], err_msg=p.name)


@pytest.mark.parametrize("c_in", [1, 8])   # the direct loop (with Numba), then not
def test_conv_relu_maxpool_run_fused_with_identical_values_and_gradients(c_in):
    from clearconv.kernels import compiled
    from clearconv.train.fusion import ConvReLUMaxPool2D

    g = np.random.default_rng(c_in)
    model = cc.Sequential(Conv2D(c_in, 4, 5, padding=2, rng=g), ReLU(), MaxPool2D(2),
                          Conv2D(4, 3, 3, rng=g), MaxPool2D(2), ReLU(), Flatten(),
                          Dense(3, 2, rng=g), input_shape=(c_in, 9, 8))
    steps = model.steps()
    assert [type(s) for s in steps[:2]] == [ConvReLUMaxPool2D, ConvReLUMaxPool2D]
    assert steps[0].indices == {"conv": 0, "relu": 1, "pool": 2}
    assert steps[1].indices == {"conv": 3, "pool": 4, "relu": 5}
    x = g.standard_normal((5, c_in, 9, 8)).astype(np.float32) - 0.2
    y = g.integers(0, 2, 5)
    _assert_fused_run_equals_literal_order(model, x, y)
    model.forward(x, training=True)
    direct = c_in == 1 and compiled.AVAILABLE
    assert [s.algorithm for s in steps[:2]] == ["direct-fused" if direct else "composed",
                                                 "composed"]
    # the fused steps keep their own caches: the layers' are untouched
    assert all(layer._cache is None for layer in model.layers[:6])
    # input gradients (saliency) through the fused first layer too
    model.zero_grad()
    dx = model.backward(np.ones((5, 2), np.float32))
    assert dx.shape == x.shape and np.isfinite(dx).all() and np.abs(dx).max() > 0


def test_fuse_false_runs_every_layer_on_its_own():
    g = np.random.default_rng(0)
    layers = [Conv2D(1, 4, 3, padding=1, rng=g), ReLU(), MaxPool2D(2), Flatten(),
              Dense(4 * 4 * 4, 2, rng=g)]
    model = cc.Sequential(*layers, fuse=False, input_shape=(1, 8, 8))
    assert model.steps() == layers
    assert cc.Sequential.from_config(model.get_config()).fuse is False
    fused = cc.Sequential(*layers, input_shape=(1, 8, 8))
    x = g.standard_normal((3, 1, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(model.forward(x), fused.forward(x))


@pytest.mark.parametrize("pool_first", [False, True])
def test_relu_and_maxpool_run_fused_with_identical_values_and_gradients(pool_first):
    g = np.random.default_rng(5)
    pair = [ReLU(), MaxPool2D(2, padding=1, ceil_mode=True)]
    model = cc.Sequential(Conv2D(2, 3, 3, padding=1, rng=g, dtype="float64"),
                          *(pair[::-1] if pool_first else pair), Flatten(),
                          Dense(3 * 4 * 4, 4, rng=g, dtype="float64"), input_shape=(2, 6, 6))
    assert [type(la).__name__ for la in model.steps()][:2] == ["ConvReLUMaxPool2D", "Flatten"]
    x = g.standard_normal((3, 2, 6, 6)) - 0.5     # many windows with a negative maximum
    y = g.integers(0, 4, 3)
    _assert_fused_run_equals_literal_order(model, x, y)


def test_repr_html_is_the_summary_as_a_table():
    model = cc.Sequential(Conv2D(1, 4, 3, padding="same", rng=0), ReLU(), MaxPool2D(2), Flatten(),
                          Dense(4 * 4 * 4, 10, rng=0), input_shape=(1, 8, 8))
    page = model._repr_html_()
    assert page.count("<tr>") == 1 + 5 and "(N, 4, 8, 8)" in page and "Total params: 690" in page
    assert "Total params: 690" in model.summary(print_fn=None)
    unbuilt = cc.Sequential(Conv2D(1, 4, 3), ReLU())
    page = unbuilt._repr_html_()
    assert "input shape not set" in page and page.count("<li>") == 2
