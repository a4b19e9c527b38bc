"""End to end: train on IDX files, predict images, filter images, export ONNX."""

import gzip
import json

import numpy as np
import pytest
from PIL import Image

from clearconv.cli import main


def write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    """A tiny MNIST-format folder: bright strokes whose position is the class."""
    d = tmp_path_factory.mktemp("mnist")
    rng = np.random.default_rng(0)
    for split, n in (("train", 200), ("t10k", 60)):
        y = rng.integers(0, 10, n)
        x = (rng.random((n, 28, 28)) * 40).astype(np.uint8)
        for i, c in enumerate(y):
            r, col = 2 + 2 * (c // 5) * 6, 2 + (c % 5) * 5
            x[i, r:r + 8, col:col + 4] = 250
        write_idx(d / f"{split}-images-idx3-ubyte.gz", x)
        write_idx(d / f"{split}-labels-idx1-ubyte.gz", y)
    return d


@pytest.fixture(scope="module")
def trained(mnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("m") / "mnist.npz"
    metrics = out.with_suffix(".json")
    rc = main(["train", "--quiet", "--dataset", "mnist", "--data-dir", str(mnist_dir),
               "--epochs", "2", "--val-split", "0.1", "--augment", "--out", str(out),
               "--metrics", str(metrics)])
    assert rc == 0
    return out, json.loads(metrics.read_text())


def test_train_on_idx_files_with_validation_and_augmentation(trained):
    _, metrics = trained
    assert metrics["dataset"] == "mnist" and metrics["epochs"] == 2 and metrics["augment"]
    assert len(metrics["history"]["val_accuracy"]) == 2
    assert metrics["seconds_per_epoch"] > 0
    assert 0.0 <= metrics["test_accuracy"] <= 1.0


def test_evaluate_on_the_dataset(trained, mnist_dir, capsys):
    model, metrics = trained
    assert main(["evaluate", model.as_posix(), "--dataset", "mnist", "--data-dir",
                 str(mnist_dir)]) == 0
    assert f"test accuracy: {metrics['test_accuracy']:.4f}" in capsys.readouterr().out


def test_predict_a_photo_states_the_conversion_and_top_classes(trained, tmp_path, capsys):
    model, _ = trained
    photo = np.full((90, 60, 3), 235, np.uint8)       # dark ink on light paper, RGB
    photo[20:70, 25:35] = 20
    Image.fromarray(photo).save(tmp_path / "digit.jpg")
    assert main(["predict", str(model), str(tmp_path / "digit.jpg"), "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "digit.jpg: converted:" in out and "invert" in out.lower()
    probs = [float(line.split()[-1]) for line in out.splitlines()[1:3]]
    assert len(probs) == 2 and probs[0] >= probs[1] and 0 < sum(probs) <= 1.0 + 1e-6


def test_filter_writes_the_sobel_magnitude(tmp_path, capsys):
    img = np.zeros((20, 30), np.uint8)
    img[:, 15:] = 200
    Image.fromarray(img).save(tmp_path / "step.png")
    out = tmp_path / "edges.png"
    assert main(["filter", str(tmp_path / "step.png"), "--kernel", "sobel", "--out",
                 str(out)]) == 0
    text = capsys.readouterr().out
    assert "true convolution" in text and "magnitude" in text
    edges = np.asarray(Image.open(out))
    assert edges.shape == (20, 30)
    assert edges[10, 14:16].min() >= 200 and edges[10, 1:12].max() == 0


def test_filter_with_a_user_kernel_and_valid_padding(tmp_path):
    img = (np.arange(100).reshape(10, 10) * 2).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "ramp.png")
    assert main(["filter", str(tmp_path / "ramp.png"), "--kernel", "0,0,0;0,1,0;0,0,0",
                 "--padding", "valid", "--output", "clip", "--out",
                 str(tmp_path / "same.png")]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "same.png")), img[1:-1, 1:-1])


def test_export_onnx_runs_in_onnxruntime(trained, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    import clearconv as cc

    model, _ = trained
    out = tmp_path / "m.onnx"
    assert main(["export", str(model), "--onnx", str(out)]) == 0
    x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, cc.load(str(model)).predict(x), rtol=1e-5, atol=1e-5)


def test_missing_dataset_files_give_a_clear_message(tmp_path, capsys):
    assert main(["train", "--quiet", "--dataset", "fashion-mnist", "--data-dir",
                 str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "clearconv: error:" in err and str(tmp_path) in err


def test_explain_a_topic_from_the_command_line(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="matplotlib not installed: explain not checked")
    assert main(["explain", "pooling-backward", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed and all(p.startswith(str(tmp_path)) for p in printed)
    with Image.open(printed[0]) as im:
        assert im.format == "PNG" and im.size[0] > 400


# ------------------------------------------ the default model for MNIST (issue 13, item 9)
def test_the_default_mnist_run_trains_the_batch_norm_cnn_with_augmentation(mnist_dir,
                                                                           tmp_path):
    import clearconv as cc
    from clearconv.layers import BatchNorm1D, BatchNorm2D

    out, metrics = tmp_path / "m.npz", tmp_path / "m.json"
    assert main(["train", "--quiet", "--dataset", "mnist", "--data-dir", str(mnist_dir),
                 "--epochs", "1", "--out", str(out), "--metrics", str(metrics)]) == 0
    report = json.loads(metrics.read_text())
    assert (report["model"], report["epochs"], report["augment"]) == ("mnist-bn-cnn", 1, True)
    kinds = [type(layer) for layer in cc.load(str(out)).layers]
    assert kinds.count(BatchNorm2D) == 4 and kinds.count(BatchNorm1D) == 1


def _recipe_of(*argv):
    from clearconv import cli

    return cli._train_recipe(cli.build_parser().parse_args(["train", *argv]))


@pytest.mark.parametrize("dataset, default", [("mnist", ("shift",)),
                                              ("fashion-mnist", ("shift", "flip"))])
def test_augment_is_on_by_default_for_mnist_and_no_augment_switches_it_off(dataset, default):
    r = _recipe_of("--dataset", dataset)
    assert (r.model, r.epochs, r.augment) == ("mnist-bn-cnn", 15, default)
    assert _recipe_of("--dataset", dataset, "--augment").augment == default
    off = _recipe_of("--dataset", dataset, "--no-augment")
    assert off.augment == () and off.replace(augment=default) == r
    # another model keeps the dataset's augmentation; an autoencoder drops it
    assert _recipe_of("--dataset", dataset, "--model", "small-image-cnn").augment == default
    assert _recipe_of("--dataset", dataset, "--model", "conv-autoencoder").augment == ()


@pytest.mark.parametrize("dataset, asked", [("digits", ("shift",)), ("kmnist", ("shift",)),
                                            ("cifar10", ("shift", "flip"))])
def test_augment_switches_it_on_where_the_recipe_has_none(dataset, asked):
    assert _recipe_of("--dataset", dataset).augment == ()
    assert _recipe_of("--dataset", dataset, "--no-augment").augment == ()
    assert _recipe_of("--dataset", dataset, "--augment").augment == asked
