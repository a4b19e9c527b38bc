"""The explorer's numbers (clearconv.explore.data), their packing and the HTML file.

The page only looks values up; these tests hold what it ships to clearconv's own ops:
the model's forward/backward, the functional ops and the loop reference.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from clearconv import functional as F
from clearconv.cli import main
from clearconv.errors import ClearConvError, ShapeError
from clearconv.explore import explore, render
from clearconv.explore.data import compute
from clearconv.explore.pack import pack, unpack
from clearconv.layers import AvgPool2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Tanh
from clearconv.train import Sequential, zoo


@pytest.fixture(scope="module")
def digits():
    model = zoo.digits_cnn(rng=0)
    x = np.random.default_rng(1).random((1, 8, 8)).astype(np.float32)
    return model, x, compute(model, x, label=3)


def _close(a, b, tol=1e-5):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1e-3, np.abs(b).max()))


def test_maps_are_the_models_forward(digits):
    model, x, d = digits
    logits = model.predict(x[None])
    _close(d.arrays[d.meta["layers"][-1]["arrays"]["out"]], logits[0])
    _close(d.arrays["softmax.probs"], model.predict_proba(x[None])[0])
    assert d.meta["prediction"] == int(logits[0].argmax())
    assert d.meta["target"] == 3 and d.meta["label"] == 3


def test_conv_breakdown_adds_up_to_the_feature_map(digits):
    model, x, d = digits
    for layer in d.meta["layers"]:
        if layer["kind"] != "conv":
            continue
        n = layer["conv"]["arrays"]
        prods, sums = d.arrays[n["products"]], d.arrays[n["channel_sums"]]
        _close(prods.sum(axis=(4, 5)), sums, 1e-4)
        _close(sums.sum(axis=3) + d.arrays[n["bias"]][:, None, None], d.arrays[n["z_ref"]], 1e-4)
        _close(d.arrays[n["z_ref"]], d.arrays[layer["arrays"]["out"]], 1e-4)
        # a product is the kernel tap times the window cell it reads (stride 1 here)
        a_pad, w = d.arrays[n["a_pad"]], d.arrays[n["weight"]]
        o, m, k, c, u, v = 1, 2, 1, 0, 2, 1
        assert prods[o, m, k, c, u, v] == np.float32(w[o, c, u, v] * a_pad[c, m + u, k + v])


def test_backward_matches_conv2d_backward(digits):
    model, x, d = digits
    t = d.meta["backward"]["3"]
    values = [x[None]] + [None] * len(model.layers)
    for i, layer in enumerate(model.layers):
        values[i + 1] = layer.forward(values[i])
    for i, layer in enumerate(d.meta["layers"]):
        if layer["kind"] != "conv":
            continue
        names = t["layers"][i]
        dz = d.arrays[names["grad"]][None]
        conv = model.layers[i]
        _, cache = F.conv2d_forward(values[i], conv.weight.value, conv.bias.value,
                                    padding=conv.padding)
        dx, dw, db = F.conv2d_backward(dz, cache)
        _close(d.arrays[names["dw_ref"]], dw, 1e-4)
        _close(d.arrays[names["dw"]], dw, 1e-4)
        _close(d.arrays[names["dw_terms"]].sum(axis=(1, 2)), dw, 1e-4)
        _close(d.arrays[names["db_ref"]], db, 1e-4)
        _close(d.arrays[names["dx_ref"]], dx[0], 1e-4)
        _close(d.arrays[names["da_channel_sums"]].sum(axis=3), dx[0], 1e-4)
        grad_in = t["grad_input"] if i == 0 else t["layers"][i - 1]["grad"]
        _close(d.arrays[grad_in], dx[0], 1e-4)


def test_pool_winners_and_routing(digits):
    model, x, d = digits
    t = d.meta["backward"]["3"]
    for i, layer in enumerate(d.meta["layers"]):
        if layer["kind"] != "pool":
            continue
        src = d.arrays[d.meta["layers"][i - 1]["arrays"]["out"]]
        am = d.arrays[layer["pool"]["arrays"]["argmax"]]
        out = d.arrays[layer["arrays"]["out"]]
        c, h, w = out.shape
        for cc in range(c):
            for m in range(h):
                for k in range(w):
                    assert src[cc, am[cc, m, k, 0], am[cc, m, k, 1]] == out[cc, m, k]
        _close(d.arrays[t["layers"][i]["dx_ref"]], d.arrays[t["layers"][i - 1]["grad"]])


def test_dense_and_softmax_sums(digits):
    model, x, d = digits
    for layer in d.meta["layers"]:
        if layer["kind"] == "dense":
            n = layer["dense"]["arrays"]
            _close(d.arrays[n["products"]].sum(axis=1) + d.arrays[n["bias"]], d.arrays[n["y_ref"]],
                   1e-4)
            _close(d.arrays[n["y_ref"]], d.arrays[layer["arrays"]["out"]], 1e-4)
    s = d.meta["softmax"]
    _close(d.arrays[s["arrays"]["exps"]] / s["sum"], d.arrays[s["arrays"]["probs"]])
    loss = F.softmax_cross_entropy_forward(model.predict(x[None]), np.array([3]))[0]
    assert d.meta["backward"]["3"]["loss"] == pytest.approx(loss, rel=1e-5)


def test_compute_leaves_the_models_gradients_alone():
    model = zoo.digits_cnn(rng=2)
    for p in model.parameters():
        p.grad[...] = 0.5
    compute(model, np.zeros((1, 8, 8), np.float32))
    assert all(np.all(p.grad == 0.5) for p in model.parameters())


def test_every_class_and_the_fast_update():
    model = zoo.digits_cnn(rng=0)
    x = np.random.default_rng(3).random((1, 8, 8)).astype(np.float32)
    every = compute(model, x, all_targets=True)
    assert sorted(every.meta["backward"], key=int) == [str(k) for k in range(10)]
    fast = compute(model, x, details=False)
    assert not any(".products" in name or ".dw_terms" in name for name in fast.arrays)
    _close(fast.arrays["out.9"], every.arrays["out.9"], 0)
    assert fast.meta["target"] == every.meta["prediction"]


def test_other_layers_show_their_maps():
    model = Sequential(Conv2D(1, 3, 3, rng=0), Tanh(), AvgPool2D(2), Flatten(), Dropout(0.5),
                       Dense(3 * 3 * 3, 4, rng=0), input_shape=(1, 8, 8))
    d = compute(model, np.random.default_rng(0).random((1, 8, 8)))
    kinds = [layer["kind"] for layer in d.meta["layers"]]
    assert kinds == ["conv", "activation", "avgpool", "flatten", "dropout", "dense"]
    pool = d.meta["layers"][2]["pool"]["arrays"]
    _close(d.arrays[pool["z_ref"]], d.arrays["out.2"])


@pytest.mark.parametrize("x, error, match", [
    (np.zeros((1, 9, 8)), ShapeError, r"\(1, 8, 8\)"),
    (np.full((1, 8, 8), np.nan), ClearConvError, "NaN"),
])
def test_bad_inputs_are_named(x, error, match):
    with pytest.raises(error, match=match):
        compute(zoo.digits_cnn(rng=0), x)


def test_bad_class_and_model():
    with pytest.raises(ClearConvError, match="out of range"):
        compute(zoo.digits_cnn(rng=0), np.zeros((1, 8, 8)), target=10)
    with pytest.raises(ClearConvError, match="Sequential"):
        compute(object(), np.zeros((1, 8, 8)))
    no_shape = Sequential(Conv2D(1, 2, 3), ReLU(), MaxPool2D(2))
    with pytest.raises(ClearConvError, match="input shape"):
        compute(no_shape, np.zeros((1, 8, 8)))


def test_pack_round_trip(digits):
    _, _, d = digits
    packed = pack(d)
    back = unpack(packed)
    assert back.keys() == d.arrays.keys()
    for name, a in d.arrays.items():
        assert back[name].dtype == a.dtype and np.array_equal(back[name], a)


def test_page_is_one_file_without_network(digits):
    _, _, d = digits
    text = render(d, "t")
    assert "<script src" not in text and "<link" not in text
    assert not re.search(r"(src|href)=\"https?:", text)
    assert text.count("</script>") == 3          # data, blob, the script itself


def test_explore_default_writes_a_small_file(tmp_path):
    out = tmp_path / "sub" / "explorer.html"
    r = explore(out=out)
    assert out.read_text(encoding="utf-8") == r.html
    assert r.size_bytes <= 3 * 1024 * 1024
    assert "embedded test digit" in r.input_source and r.data.meta["label"] is not None


def test_cli_explore(tmp_path, capsys):
    model = zoo.digits_cnn(rng=0)
    path = tmp_path / "m.npz"
    model.save(str(path))
    out = tmp_path / "e.html"
    assert main(["explore", str(path), "--out", str(out), "--class", "2"]) == 0
    assert "prediction" in capsys.readouterr().out and out.stat().st_size > 0
    assert main(["explore", str(tmp_path / "missing.npz"), "--out", str(out)]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["explore", str(path), "--out", str(out), "--class", "12"]) == 2
    assert "out of range" in capsys.readouterr().err
    assert main(["explore", str(path), "--out", str(tmp_path)]) == 2      # a folder
    assert "is a folder" in capsys.readouterr().err
    (tmp_path / "not-an-image.png").write_bytes(b"hello")
    for image in ("missing.png", str(tmp_path / "not-an-image.png")):
        assert main(["explore", str(path), "--image", image, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("clearconv: error:") and err.count("\n") == 1


def _readme_commands() -> list[list[str]]:
    import shlex

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = next(b for b in re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
                 if "clearconv explore" in b)
    return [shlex.split(line.split("#")[0]) for line in block.splitlines() if line.strip()]


def test_readme_explore_and_serve_commands_run(tmp_path, monkeypatch):
    import subprocess
    import sys
    import urllib.request

    from PIL import Image

    explore_cmd, serve_cmd = _readme_commands()
    assert explore_cmd[:2] == ["clearconv", "explore"] and serve_cmd[:2] == ["clearconv", "serve"]
    monkeypatch.chdir(tmp_path)
    zoo.digits_cnn(rng=0).save("digits-cnn.npz")           # what `clearconv train` writes
    digit = np.zeros((40, 40), np.uint8)
    digit[5:35, 18:23] = 255
    Image.fromarray(255 - digit).save("my-digit.png")        # dark ink on paper
    assert main(explore_cmd[1:]) == 0
    assert (tmp_path / "explorer.html").stat().st_size > 0
    import clearconv

    root = str(Path(clearconv.__file__).resolve().parents[1])     # this checkout's clearconv
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "clearconv", *serve_cmd[1:], "--port", "0"],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
        with urllib.request.urlopen(url, timeout=60) as reply:
            assert reply.status == 200 and b"clearconv explorer" in reply.read()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_dilated_pool_winners():
    import inspect

    if "dilation" not in inspect.signature(MaxPool2D).parameters:
        pytest.skip("this MaxPool2D has no dilation (dilated pooling: issue 13)")
    model = Sequential(Conv2D(1, 2, 3, padding=1, rng=0), ReLU(),
                       MaxPool2D(2, stride=1, dilation=2), Flatten(), Dense(2 * 6 * 6, 3, rng=0),
                       input_shape=(1, 8, 8))
    d = compute(model, np.random.default_rng(0).random((1, 8, 8)))
    am = d.arrays[d.meta["layers"][2]["pool"]["arrays"]["argmax"]]
    src, out = d.arrays["out.1"], d.arrays["out.2"]
    assert d.meta["layers"][2]["pool"]["dilation"] == [2, 2]
    assert all(src[c, am[c, m, k, 0], am[c, m, k, 1]] == out[c, m, k]
               for c in range(2) for m in range(6) for k in range(6))


def test_a_page_over_the_size_budget_leaves_out_the_da_products():
    model = zoo.digits_cnn(rng=0)
    full = explore(model, max_bytes=10 ** 9, all_classes=False)
    small = explore(model, max_bytes=1, all_classes=False)
    assert any(".da_products" in n for n in full.data.arrays)
    assert not any(".da_products" in n for n in small.data.arrays)
    assert any(".da_channel_sums" in n for n in small.data.arrays)
    assert small.size_bytes < full.size_bytes


def test_default_digit_for_a_larger_model_is_drawn_as_mnist_draws_digits():
    r = explore(zoo.mnist_cnn(rng=0))
    x = r.data.arrays["input"]
    assert x.shape == (1, 28, 28) and np.all(x[:, :4] == 0) and np.all(x[:, :, -4:] == 0)
    assert r.size_bytes <= 15_000_000


@pytest.mark.parametrize("groups", [2, 4])
def test_grouped_and_depthwise_conv_breakdowns(groups):
    model = Sequential(Conv2D(4, 4, 3, padding=1, groups=groups, rng=0), ReLU(), Flatten(),
                       Dense(4 * 5 * 5, 3, rng=0), input_shape=(4, 5, 5))
    x = np.random.default_rng(0).random((4, 5, 5)).astype(np.float32)
    d = compute(model, x, label=1)
    layer = d.meta["layers"][0]
    assert layer["kind"] == "conv" and layer["conv"]["groups"] == groups
    n = layer["conv"]["arrays"]
    _close(d.arrays[n["z_ref"]], d.arrays["out.0"], 1e-4)
    _close(d.arrays[n["channel_sums"]].sum(axis=3) + d.arrays[n["bias"]][:, None, None],
           d.arrays[n["z_ref"]], 1e-4)
    t = d.meta["backward"]["1"]["layers"][0]
    conv = model.layers[0]
    _, cache = F.conv2d_forward(x[None], conv.weight.value, conv.bias.value, padding=1,
                                groups=groups)
    dx, dw, _ = F.conv2d_backward(d.arrays[t["grad"]][None], cache)
    _close(d.arrays[t["dw_ref"]], dw, 1e-4)
    _close(d.arrays[t["dw_terms"]].sum(axis=(1, 2)), dw, 1e-4)
    _close(d.arrays[t["dx_ref"]], dx[0], 1e-4)
    assert d.arrays[t["da_channel_sums"]].shape == (4, 5, 5, 4 // groups)
    _close(d.arrays[t["da_channel_sums"]].sum(axis=3), dx[0], 1e-4)


def test_the_pages_math_links_point_to_sections_of_docs_math():
    root = Path(__file__).resolve().parents[1]
    math = (root / "docs" / "MATH.md").read_text(encoding="utf-8")
    # GitHub's anchors: the heading in lower case, punctuation dropped, spaces as dashes
    slugs = {re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", h.strip().lower()))
             for h in re.findall(r"^#+ (.*)$", math, flags=re.M)}
    static = root / "clearconv" / "explore" / "static"
    text = (static / "explorer.html").read_text() + (static / "explorer.js").read_text()
    used = set(re.findall(r"__MATH__#([\w-]+)", text)) | set(
        re.findall(r'"\d+": "(\d+-[\w-]+)"', text))
    assert used and used <= slugs, f"anchors missing from docs/MATH.md: {used - slugs}"


def test_small_models_ship_every_class_by_default():
    r = explore()
    assert sorted(r.data.meta["backward"], key=int) == [str(k) for k in range(10)]
    assert r.size_bytes <= 3_000_000
    one = explore(zoo.digits_cnn(rng=0), all_classes=False)
    assert list(one.data.meta["backward"]) == [str(one.data.meta["target"])]


def test_batch_norm_runs_as_in_predict_and_keeps_its_statistics():
    from clearconv import layers

    if not hasattr(layers, "BatchNorm2D"):
        pytest.skip("no BatchNorm2D in this clearconv")
    model = Sequential(Conv2D(1, 3, 3, padding=1, rng=0), layers.BatchNorm2D(3), ReLU(),
                       Flatten(), Dropout(0.5), Dense(3 * 8 * 8, 4, rng=0), input_shape=(1, 8, 8))
    bn = model.layers[1]
    bn.running_mean[...] = [0.1, -0.2, 0.3]
    bn.running_var[...] = [2.0, 0.5, 1.5]
    before = (bn.running_mean.copy(), bn.running_var.copy())
    x = np.random.default_rng(0).random((1, 8, 8)).astype(np.float32)
    d = compute(model, x)
    _close(d.arrays["out.5"], model.predict(x[None])[0], 1e-5)
    assert np.array_equal(bn.running_mean, before[0]) and np.array_equal(bn.running_var, before[1])
    assert bn.training and model.layers[4].p == 0.5
    b = d.meta["layers"][1]["batchnorm"]["arrays"]
    _close(d.arrays[b["y_ref"]], d.arrays["out.1"], 1e-5)
    xhat = (d.arrays["out.0"] - before[0][:, None, None]) / np.sqrt(before[1] + 1e-5)[:, None, None]
    _close(d.arrays[b["xhat"]], xhat, 1e-5)


def test_the_default_digits_label_is_dropped_for_a_model_without_that_class():
    model = Sequential(Conv2D(1, 2, 3, rng=0), ReLU(), Flatten(), Dense(2 * 6 * 6, 4, rng=0),
                       input_shape=(1, 8, 8))
    r = explore(model)                                      # the default digit is an '8'
    assert r.data.meta["label"] is None and r.data.meta["target"] == r.prediction


def test_serve_refuses_a_bad_address_in_one_line(tmp_path, capsys):
    import socket

    model = tmp_path / "m.npz"
    zoo.digits_cnn(rng=0).save(str(model))
    assert main(["serve", str(model), "--port", "70000"]) == 2
    assert "--port must be" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", str(model), "--port", str(port)]) == 2
        err = capsys.readouterr().err
        assert "cannot serve on 127.0.0.1" in err and err.count("\n") == 1


def test_dense_backward_terms_add_up_to_the_models_gradient(digits):
    _, _, d = digits
    t = d.meta["backward"]["3"]["layers"]
    for i, layer in enumerate(d.meta["layers"]):
        if layer["kind"] == "dense":
            terms = d.arrays[t[i]["dx_terms"]]
            _close(terms.sum(axis=0), d.arrays[t[i - 1]["grad"]], 1e-4)
            _close(d.arrays[t[i]["dx_ref"]], d.arrays[t[i - 1]["grad"]], 1e-4)
