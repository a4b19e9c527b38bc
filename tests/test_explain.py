"""clearconv.explain: every topic writes valid figures and returns the numbers the ops compute.

One ``explain_all`` run on the default inputs (module fixture) feeds one test per topic;
each test opens the files with Pillow (PNG, or GIF with the stated frame count) and holds
the returned numbers to clearconv.functional and clearconv.reference, recomputed here.
No test reads the clock.
"""

from __future__ import annotations

import ast
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

matplotlib = pytest.importorskip(
    "matplotlib",
    reason="clearconv.explain draws with matplotlib: pip install 'clearconv[explain]'")
Image = pytest.importorskip("PIL.Image", reason="clearconv.explain writes files with Pillow")
matplotlib.use("Agg")

import clearconv.explain
from clearconv import functional as F
from clearconv import reference as R
from clearconv.data import load_digits
from clearconv.errors import ClearConvError
from clearconv.explain import TOPICS, ExplainResult, explain_all, run
from clearconv.shapes import conv2d_params, conv_output_size, dense_params

ARTICLE_ORDER = ("image", "convolution", "filters", "padding", "stride", "volume", "sharing",
                 "backward", "pooling", "pooling-backward", "model")


@pytest.fixture(scope="module")
def explained(tmp_path_factory):
    out = tmp_path_factory.mktemp("explain_all")
    return out, {r.topic: r for r in explain_all(out, seed=0)}


def check_files(result: ExplainResult, out: Path, names: list[str],
                gif_frames: dict[str, int] | None = None) -> None:
    """The result lists exactly ``names`` in ``out``; each opens as the format its suffix
    says (GIFs with the stated number of frames), and has a caption."""
    assert [Path(f).name for f in result.files] == names
    for f in result.files:
        f = Path(f)
        assert f.parent == out and f.is_file() and f.stat().st_size > 0
        assert result.captions.get(f.name)
        with Image.open(f) as im:
            im.verify()
        with Image.open(f) as im:
            assert im.format == f.suffix[1:].upper()
            assert im.width >= 400 and im.height >= 300
            if im.format == "GIF":
                assert im.n_frames == (gif_frames or {})[f.name]
    assert result.description and result.title


def windows(a: np.ndarray, f: int, s: int = 1) -> dict[tuple[int, int], np.ndarray]:
    n_out = (a.shape[0] - f) // s + 1
    return {(m, k): a[m * s:m * s + f, k * s:k * s + f] for m in range(n_out)
            for k in range(n_out)}


def test_topics_in_article_order(explained):
    _, results = explained
    assert TOPICS == ARTICLE_ORDER
    assert list(results) == [*ARTICLE_ORDER, "index"]


def test_explain_takes_its_conv_and_pool_numbers_from_the_reference():
    """explain/ draws what clearconv.reference computes, the formulas loop by loop: no
    module of it imports a conv, pooling or activation op from functional/ (only the model
    topic's softmax of the real model's logits), none re-derives one with einsum or
    strided views, and the topics that draw the formulas import the reference."""
    root = Path(clearconv.explain.__file__).parent
    allowed = {("trained.py", "softmax_forward")}
    imports_reference = set()
    for path in sorted(root.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 2:
                names = {a.name for a in node.names}
                if node.module is None and "functional" in names:
                    pytest.fail(f"{path.name} imports clearconv.functional")
                if node.module is None and "reference" in names:
                    imports_reference.add(path.name)
                if node.module == "functional":
                    assert {(path.name, n) for n in names} <= allowed, path.name
            if isinstance(node, ast.Attribute | ast.Name):
                name = node.attr if isinstance(node, ast.Attribute) else node.id
                assert name not in {"einsum", "tensordot", "as_strided",
                                    "sliding_window_view"}, f"{path.name}: {name}"
    assert imports_reference >= {"basics.py", "volume.py", "backprop.py"}


def test_image_splits_a_photo_crop_into_channel_matrices(explained):
    out, results = explained
    r = results["image"]
    check_files(r, out, ["image.png"])
    crop, (r0, c0) = r.numbers["crop"], r.numbers["crop_origin"]
    c, h, w = r.numbers["pixels_shape"]
    assert crop.dtype == np.uint8 and crop.shape == (c, 8, 8)
    assert r.numbers["channels"] == (["R", "G", "B"] if c == 3 else ["L"])
    assert 0 <= r0 <= h - 8 and 0 <= c0 <= w - 8


def test_image_from_a_file_shows_its_own_pixels(tmp_path):
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, size=(40, 56, 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(tmp_path / "mine.png")
    r = run("image", tmp_path / "figs", image=tmp_path / "mine.png")
    r0, c0 = r.numbers["crop_origin"]
    assert r.numbers["pixels_shape"] == (3, 40, 56)
    np.testing.assert_array_equal(r.numbers["crop"],
                                  pixels[r0:r0 + 8, c0:c0 + 8].transpose(2, 0, 1))
    assert "mine.png" in r.description


def test_convolution_every_frame_sums_to_conv2d_forward(explained):
    out, results = explained
    r = results["convolution"]
    nums = r.numbers
    img, k = nums["image"].astype(float), nums["kernel"]
    n, f = img.shape[0], k.shape[0]
    assert nums["frames"] == n * n == len(nums["same_sums"])
    check_files(r, out, ["convolution.gif"], {"convolution.gif": nums["frames"]})
    same, _ = F.conv2d_forward(img[None, None], k[None, None], padding="same")
    valid, _ = F.conv2d_forward(img[None, None], k[None, None], padding="valid")
    same_ref, _ = R.conv2d_forward(img[None, None], k[None, None], padding="same")
    np.testing.assert_allclose(same, same_ref)
    padded = np.pad(img, (f - 1) // 2)
    for (m, q), prods, total in zip(nums["same_positions"], nums["same_products"],
                                    nums["same_sums"]):
        np.testing.assert_allclose(prods, padded[m:m + f, q:q + f] * k)
        assert total == pytest.approx(prods.sum())
        assert total == pytest.approx(same[0, 0, m, q])
    assert len(nums["valid_sums"]) == (n - f + 1) ** 2
    for (m, q), prods, total in zip(nums["valid_positions"], nums["valid_products"],
                                    nums["valid_sums"]):
        np.testing.assert_allclose(prods, img[m:m + f, q:q + f] * k)
        assert total == pytest.approx(valid[0, 0, m, q])
    np.testing.assert_allclose(nums["same_output"], same[0, 0])
    np.testing.assert_allclose(nums["valid_output"], valid[0, 0])


def test_filters_are_true_convolutions_of_the_photo(explained):
    out, results = explained
    r = results["filters"]
    check_files(r, out, ["filters.png"])
    gray = r.numbers["gray"].astype(float)
    np.testing.assert_allclose(r.numbers["outputs"]["identity"], gray, atol=1e-9)
    assert set(r.numbers["outputs"]) >= {"sobel_x", "sobel_y", "laplacian", "sharpen",
                                         "gaussian_blur"}
    for name, k in r.numbers["kernels"].items():
        # true convolution (MATH.md §3) = cross-correlation with the kernel rotated 180°
        expected, _ = F.conv2d_forward(gray[None, None], k[::-1, ::-1][None, None].copy(),
                                       padding="same")
        np.testing.assert_allclose(r.numbers["outputs"][name], expected[0, 0], atol=1e-6)


def analytic_counts(n: int, f: int, before: int, after: int, s: int = 1) -> np.ndarray:
    """How many windows cover each input index along one axis, counted window by window."""
    n_out = (n + before + after - f) // s + 1
    per_axis = np.zeros(n, int)
    for m in range(n_out):
        for i in range(f):
            r = m * s + i - before
            if 0 <= r < n:
                per_axis[r] += 1
    return np.outer(per_axis, per_axis)


def test_padding_map_equals_the_analytic_counts(explained):
    out, results = explained
    r = results["padding"]
    check_files(r, out, ["padding.png"])
    size = r.numbers["size"]
    cases = r.numbers["cases"]
    assert [(c["name"], c["f"]) for c in cases] == [("valid", 3), ("same", 3), ("same", 4)]
    assert [c["padding"] for c in cases] == [((0, 0), (0, 0)), ((1, 1), (1, 1)),
                                              ((1, 2), (1, 2))]
    for c in cases:
        (pt, pb), _ = c["padding"]
        np.testing.assert_array_equal(c["counts"], analytic_counts(size, c["f"], pt, pb))
        assert c["n_out"] == conv_output_size(size, c["f"], 1, pt, pb)
        # every output position reads f*f pixels (padding included)
        assert c["counts"].sum() <= c["n_out"] ** 2 * c["f"] ** 2
    assert cases[0]["counts"][0, 0] == 1 and cases[0]["counts"][2, 2] == 9


def test_stride_positions_counts_and_output_size(explained):
    out, results = explained
    r = results["stride"]
    check_files(r, out, ["stride.png"])
    size, f = r.numbers["size"], r.numbers["f"]
    assert r.numbers["strides"] == [1, 2, 3]
    for c in r.numbers["cases"]:
        s = c["stride"]
        n_out = (size + 0 - f) // s + 1
        z, _ = F.conv2d_forward(np.zeros((1, 1, size, size)), np.ones((1, 1, f, f)), stride=s)
        assert c["n_out"] == c["formula"] == n_out == z.shape[-1]
        np.testing.assert_array_equal(
            c["positions"], [(m * s, k * s) for m in range(n_out) for k in range(n_out)])
        np.testing.assert_array_equal(c["counts"], analytic_counts(size, f, 0, 0, s))
    assert (r.numbers["cases"][2]["counts"] == 0).sum() == 13   # s = 3 skips a row and a column


def test_volume_stacks_one_map_per_kernel(explained):
    out, results = explained
    r = results["volume"]
    check_files(r, out, ["volume.png", "volume_shapes.png"])
    a, w, b = r.numbers["A"], r.numbers["W"], r.numbers["b"]
    assert a.shape == (3, 5, 5) and w.shape == (2, 3, 3, 3) and b.shape == (2,)
    z, _ = R.conv2d_forward(a[None], w, b)
    np.testing.assert_allclose(r.numbers["Z"], z[0])
    np.testing.assert_allclose(r.numbers["A_out"], np.maximum(z[0], 0))
    parts = r.numbers["channel_parts"]
    np.testing.assert_allclose(parts.sum(axis=1) + b[:, None, None], z[0])
    assert r.numbers["shapes"]["Z"] == (1, 2, 3, 3)
    first_layer = r.numbers["layers"][1]
    assert (first_layer["A"], first_layer["W"], first_layer["Z"]) == \
        ((1, 8, 8), (16, 1, 3, 3), (16, 8, 8))


def test_sharing_edges_weights_and_parameter_counts(explained):
    out, results = explained
    r = results["sharing"]
    check_files(r, out, ["sharing.png"])
    nums = r.numbers
    edges = nums["edges"]
    assert len(edges) == nums["conv_connections"] == 16
    assert len({(src, dst) for src, dst, _ in edges}) == 16
    for (row, col), (m, k), (i, j) in edges:
        assert (row, col) == (m + i, k + j)
    for tap in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        assert sum(1 for *_, t in edges if t == tap) == 4   # every weight on 4 edges
    assert nums["conv_params"] == conv2d_params(1, 1, 2) == 4 + 1
    assert nums["dense_params"] == dense_params(9, 4) == 36 + 4
    assert nums["dense_connections"] == 36
    z, cache = R.conv2d_forward(nums["A"][None, None], nums["W"][None, None],
                                np.array([nums["b"]]))
    np.testing.assert_allclose(nums["Z"], z[0, 0])
    _, dw, db = R.conv2d_backward(nums["dZ"][None, None], cache)
    np.testing.assert_allclose(nums["dW"], dw[0, 0])
    np.testing.assert_allclose(nums["db"], db)
    w00 = sum(nums["A"][src] * nums["dZ"][dst] for src, dst, t in edges if t == (0, 0))
    assert nums["dW"][0, 0] == pytest.approx(w00)


def test_backward_step_by_step_da_equals_conv2d_backward(explained):
    out, results = explained
    r = results["backward"]
    nums = r.numbers
    full = nums["full"]
    n = nums["A_prev"].shape[0]
    assert nums["frames"] == n * n == len(full["sums"])
    check_files(r, out, ["backward.png", "backward.gif"], {"backward.gif": nums["frames"]})
    a_prev, w, b = nums["A_prev"], nums["W"], nums["b"]
    z, cache = F.conv2d_forward(a_prev[None, None], w[None, None], np.array([b]))
    np.testing.assert_allclose(nums["Z"], z[0, 0])
    np.testing.assert_allclose(nums["A"], np.maximum(z[0, 0], 0))
    np.testing.assert_allclose(nums["dZ"], nums["dA"] * (z[0, 0] > 0))
    da_prev, dw, db = F.conv2d_backward(nums["dZ"][None, None], cache)
    np.testing.assert_allclose(full["dA"], da_prev[0, 0])
    np.testing.assert_allclose(nums["dA_prev"], da_prev[0, 0])
    np.testing.assert_allclose(nums["dW"], dw[0, 0])
    assert nums["db"] == pytest.approx(db[0])
    _, ref_cache = R.conv2d_forward(a_prev[None, None], w[None, None], np.array([b]))
    np.testing.assert_allclose(full["dA"], R.conv2d_input_gradient(
        nums["dZ"][None, None], w[None, None], ref_cache.geometry)[0, 0])
    # each frame: the rotated kernel on one window of the padded dZ
    np.testing.assert_array_equal(full["w_rot"], w[::-1, ::-1])
    f = w.shape[0]
    np.testing.assert_array_equal(full["dz_full"], np.pad(nums["dZ"], f - 1))
    for (row, col), prods, total in zip(full["positions"], full["products"], full["sums"]):
        np.testing.assert_allclose(prods, full["dz_full"][row:row + f, col:col + f] * w[::-1, ::-1])
        assert total == pytest.approx(da_prev[0, 0, row, col])
    assert 0 < (z > 0).sum() < z.size   # the ReLU mask shows both cases


def test_pooling_max_and_average_of_each_window(explained):
    out, results = explained
    r = results["pooling"]
    check_files(r, out, ["pooling.png"])
    a, f, s = r.numbers["A"], r.numbers["f"], r.numbers["s"]
    mx, _ = F.max_pool2d_forward(a[None, None], f, s)
    np.testing.assert_array_equal(r.numbers["max"], mx[0, 0])
    assert r.numbers["n_out"] == conv_output_size(a.shape[0], f, s) == mx.shape[-1]
    for (m, k), win in windows(a, f, s).items():
        assert r.numbers["max"][m, k] == win.max()
        assert r.numbers["avg"][m, k] == pytest.approx(win.mean())
        row, col = r.numbers["argmax"][m, k]
        assert a[row, col] == win.max()
        assert m * s <= row < m * s + f and k * s <= col < k * s + f
        # ties: the first maximum in row-major order (MATH.md §11)
        first = np.argmax(win.ravel())
        assert (row - m * s, col - k * s) == divmod(int(first), f)


def test_pooling_backward_mask_is_what_max_pool2d_backward_routes(explained):
    out, results = explained
    r = results["pooling-backward"]
    check_files(r, out, ["pooling_backward.png"])
    a = r.numbers["A"]
    assert sorted(a.ravel()) == list(range(1, 17))   # tie-free
    cases = {c["name"]: c for c in r.numbers["cases"]}
    assert [(c["kind"], c["f"], c["s"]) for c in cases.values()] == \
        [("max", 2, 2), ("max", 2, 1), ("avg", 2, 2)]
    for c in cases.values():
        assert c["dA"].sum() == pytest.approx(c["dZ"].sum())   # routing keeps the total
        x = a[None, None]
        if c["kind"] == "max":
            _, cache = F.max_pool2d_forward(x, c["f"], c["s"])
            n_out = c["Z"].shape[0]
            for m in range(n_out):
                for k in range(n_out):
                    one = np.zeros((1, 1, n_out, n_out))
                    one[0, 0, m, k] = 1
                    routed = F.max_pool2d_backward(one, cache)[0, 0]
                    expected = np.zeros_like(a)
                    expected[tuple(c["argmax"][m, k])] = 1
                    np.testing.assert_array_equal(routed, expected)
            _, ref_cache = R.max_pool2d_forward(x, c["f"], c["s"])
            np.testing.assert_allclose(c["dA"], R.max_pool2d_backward(
                c["dZ"][None, None], ref_cache)[0, 0])
            wins = np.zeros_like(a)
            for pos in c["argmax"].reshape(-1, 2):
                wins[tuple(pos)] += 1
            np.testing.assert_array_equal(c["wins"], wins)
            assert c["share"] is None
        else:
            _, ref_cache = R.avg_pool2d_forward(x, c["f"], c["s"])
            np.testing.assert_allclose(c["dA"], R.avg_pool2d_backward(
                c["dZ"][None, None], ref_cache)[0, 0])
            np.testing.assert_allclose(c["dA"][:2, :2], c["dZ"][0, 0] / 4)
            np.testing.assert_array_equal(c["share"], np.full((4, 4), 1 / c["f"] ** 2))
            assert c["wins"] is None and c["argmax"] is None
    overlapping = cases["max, overlapping windows"]
    assert overlapping["wins"].max() > 1   # a pixel wins several windows: gradients add


def test_model_trained_here(explained):
    out, results = explained
    r = results["model"]
    names = ["model_kernels.png", "model_features.png", "model_curves.png",
             "model_confusion.png", "model_saliency.png"]
    check_files(r, out, names)
    nums = r.numbers
    hist = nums["history"]
    assert len(hist["loss"]) == len(hist["val_accuracy"]) >= 2
    assert hist["loss"][-1] < hist["loss"][0]
    _, yt = load_digits("test")
    cm = nums["confusion"]
    assert cm.shape == (10, 10) and cm.sum() == len(yt)
    np.testing.assert_array_equal(cm.sum(axis=1), np.bincount(yt, minlength=10))
    assert nums["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert nums["accuracy"] == pytest.approx(hist["val_accuracy"][-1])
    assert nums["accuracy"] > 0.8
    assert nums["kernels"].shape == (16, 1, 3, 3)
    maps = dict(nums["feature_maps"])
    assert [v.shape for v in maps.values()] == [(16, 8, 8), (16, 8, 8), (16, 4, 4), (32, 4, 4),
                                                (32, 4, 4), (32, 2, 2), (128,), (64,), (64,),
                                                (10,)]
    np.testing.assert_array_equal(maps["1 ReLU"], np.maximum(maps["0 Conv2D"], 0))
    pooled, _ = F.max_pool2d_forward(maps["1 ReLU"][None], 2)
    np.testing.assert_array_equal(maps["2 MaxPool2D"], pooled[0])
    np.testing.assert_array_equal(maps["6 Flatten"], maps["5 MaxPool2D"].ravel())
    assert nums["saliency"].shape == (10, 1, 8, 8)
    assert sorted(nums["saliency_labels"]) == list(range(10))


def test_model_from_a_file_saliency_is_the_input_gradient(tmp_path):
    from clearconv import load
    from clearconv.explain.trained import saliency
    from clearconv.train.zoo import digits_cnn

    path = tmp_path / "net.npz"
    digits_cnn(rng=3, dtype="float64").save(str(path))
    r = run("model", tmp_path / "figs", model=path, seed=1)
    check_files(r, tmp_path / "figs", ["model_kernels.png", "model_features.png",
                                       "model_confusion.png", "model_saliency.png"])
    assert r.numbers["history"] is None
    model = load(str(path))
    x = r.numbers["saliency_inputs"]
    logits = model.forward(x)
    np.testing.assert_array_equal(r.numbers["saliency_pred"], logits.argmax(axis=1))
    cm = r.numbers["confusion"]
    assert r.numbers["accuracy"] == pytest.approx(cm.trace() / cm.sum())
    grads, pred, _ = saliency(model, x)
    np.testing.assert_array_equal(r.numbers["saliency"], grads)
    np.testing.assert_array_equal(r.numbers["saliency_pred"], pred)
    # central differences of the predicted logit on a tie-free input (a digit plus noise:
    # max pooling has no gradient where a window holds equal values), every pixel
    noisy = x[3:4] + np.random.default_rng(0).uniform(-0.01, 0.01, x[3:4].shape)
    grad, (c,), _ = saliency(model, noisy)
    eps = 1e-6
    numeric = np.zeros((8, 8))
    for i in range(8):
        for j in range(8):
            plus, minus = noisy.copy(), noisy.copy()
            plus[0, 0, i, j] += eps
            minus[0, 0, i, j] -= eps
            numeric[i, j] = (model.forward(plus)[0, c] - model.forward(minus)[0, c]) / (2 * eps)
    np.testing.assert_allclose(grad[0, 0], numeric, atol=1e-6)
    # the feature maps are the layers applied in turn
    a = r.numbers["input"][None]
    for (name, fmap), layer in zip(r.numbers["feature_maps"], model.layers):
        a = layer.forward(a)
        np.testing.assert_allclose(fmap, a[0], err_msg=name)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.sections: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        elif tag == "a" and "href" in attrs:
            self.links.append(attrs["href"])
        elif tag == "section":
            self.sections.append(attrs["id"])


def test_index_links_every_figure_in_article_order(explained):
    out, results = explained
    r = results["index"]
    assert r.files == [out / "index.html"]
    parser = _Links()
    parser.feed((out / "index.html").read_text(encoding="utf-8"))
    parser.close()
    assert parser.sections == list(ARTICLE_ORDER)
    figures = [Path(f).name for t in ARTICLE_ORDER for f in results[t].files]
    assert parser.images == figures
    assert r.numbers["figures"] == len(figures)
    for src in parser.images:
        assert "/" not in src and (out / src).is_file()   # relative, beside the page
    assert all(link.startswith("#") or (out / link).is_file() for link in parser.links)


def test_same_seed_same_numbers_other_seed_other_numbers(tmp_path):
    first = run("sharing", tmp_path / "a", seed=4).numbers
    again = run("sharing", tmp_path / "b", seed=4).numbers
    other = run("sharing", tmp_path / "c", seed=5).numbers
    for key in ("A", "W", "Z", "dZ", "dW"):
        np.testing.assert_array_equal(first[key], again[key])
    assert not all(np.array_equal(first[k], other[k]) for k in ("A", "W", "dZ"))
    p1 = run("pooling_backward", tmp_path / "a", seed=4).numbers
    p2 = run("pooling-backward", tmp_path / "b", seed=4).numbers
    for c1, c2 in zip(p1["cases"], p2["cases"]):
        np.testing.assert_array_equal(c1["dA"], c2["dA"])


def test_unknown_topic_names_the_choices(tmp_path):
    with pytest.raises(ClearConvError, match="convolution"):
        run("convolutions", tmp_path)
    with pytest.raises(ClearConvError, match="not found"):
        run("image", tmp_path, image=tmp_path / "missing.png")


# ------------------------------------------------- the model topic on its own dataset
def _write_idx(path, array):
    import gzip

    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def mnist_like(tmp_path_factory):
    """A tiny MNIST-format folder (bright bars whose position is the class) and a model
    trained on it by ``clearconv train``, which records the dataset and the history."""
    from clearconv.cli import main

    d = tmp_path_factory.mktemp("mnist_like")
    rng = np.random.default_rng(0)
    for split, n in (("train", 200), ("t10k", 50)):
        y = np.tile(np.arange(10), n // 10)
        x = (rng.random((n, 28, 28)) * 40).astype(np.uint8)
        for i, c in enumerate(y):
            r, col = 2 + 2 * (c // 5) * 6, 2 + (c % 5) * 5
            x[i, r:r + 8, col:col + 4] = 250
        _write_idx(d / f"{split}-images-idx3-ubyte.gz", x)
        _write_idx(d / f"{split}-labels-idx1-ubyte.gz", y)
    model = d / "model.npz"
    assert main(["train", "--quiet", "--dataset", "mnist", "--data-dir", str(d), "--epochs",
                 "2", "--val-split", "0.1", "--out", str(model)]) == 0
    return d, model


def test_a_model_file_carries_its_dataset_and_history(mnist_like):
    from clearconv import load

    _, path = mnist_like
    model = load(str(path))
    assert model.trained_on == "mnist"
    assert len(model.train_history["loss"]) == len(model.train_history["val_loss"]) == 2


def test_model_topic_uses_the_models_own_test_images_and_draws_its_curves(mnist_like,
                                                                       tmp_path, capsys):
    from clearconv import load
    from clearconv.cli import main

    folder, path = mnist_like
    assert main(["explain", "model", "--model", str(path), "--dataset", "mnist",
                 "--data-dir", str(folder), "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "model_curves.png" in printed and "model_confusion.png" in printed
    r = run("model", tmp_path / "again", model=path, data_dir=str(folder), seed=0)
    nums = r.numbers
    assert nums["dataset"] == "mnist"                     # the file names its dataset
    assert nums["input_source"].startswith("mnist test image #")
    assert nums["input"].shape == (1, 28, 28)
    from clearconv.data import load_mnist

    xt, yt = load_mnist(str(folder), "test")
    # the input is one of the real test images, as the model sees them
    assert any(np.allclose(nums["input"][0], xt[i, 0] / 255, atol=1e-6) for i in range(len(xt)))
    cm = nums["confusion"]
    assert cm.shape == (10, 10) and cm.sum() == len(yt)
    np.testing.assert_array_equal(cm.sum(axis=1), np.bincount(yt, minlength=10))
    model = load(str(path))
    assert nums["accuracy"] == pytest.approx(model.evaluate(xt / np.float32(255), yt)["accuracy"])
    assert nums["history"] == model.train_history
    assert sorted(nums["saliency_labels"]) == list(range(10))
    assert nums["saliency_inputs"].shape == (10, 1, 28, 28)


def test_a_model_without_its_dataset_asks_for_it(tmp_path):
    from clearconv.train import recipe

    model = recipe("mnist").build_model((1, 28, 28), 10, seed=0)
    with pytest.raises(ClearConvError, match="pass --dataset NAME"):
        run("model", tmp_path, model=model)
    with pytest.raises(ClearConvError, match="digits's images are"):
        run("model", tmp_path, model=model, dataset="digits")


def test_figures_state_one_convention_for_the_star():
    import inspect

    from clearconv.explain import _draw, backprop, basics, trained, volume

    assert "cross-correlation" in _draw.STAR
    for module in (basics, backprop, trained, volume):   # each writes * in a figure
        assert "D.STAR" in inspect.getsource(module), module.__name__
    filters = inspect.getsource(basics.explain_filters)
    assert r"\mathrm{rot}_{180}(h)" in filters and "colours clipped at" in filters
    assert "zero padding (§4)" in filters
    assert "full convolution of $dZ$ with $W$ rotated" not in inspect.getsource(backprop)


def test_index_titles_follow_the_sections_in_order(explained):
    import re

    _, results = explained
    numbers = []
    for topic in ARTICLE_ORDER[:-1]:
        m = re.match(r"§(\d+)", results[topic].title)
        assert m, results[topic].title
        numbers.append(int(m.group(1)))
    assert numbers == sorted(numbers), numbers
