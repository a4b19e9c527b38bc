"""``clearconv train --model NAME``: the zoo by name, the autoencoder trained with mse and
reported by its loss, and the recipe of the Python API that does the same."""

from __future__ import annotations

import json

import numpy as np
import pytest

import clearconv as cc
from clearconv.cli import build_parser, main
from clearconv.data import load_dataset
from clearconv.errors import ClearConvError
from clearconv.train import recipe
from clearconv.train.losses import CrossEntropyLoss, MSELoss
from clearconv.train.recipes import MODELS, RECONSTRUCTION_MODELS, evaluation_targets


def test_train_help_lists_every_model(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in MODELS:
        assert name in text.replace("- ", "-")
    assert "mobilenet-cnn" in MODELS and "conv-autoencoder" in RECONSTRUCTION_MODELS


def test_an_unknown_model_is_refused_by_argparse(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--model", "resnet-1000"])
    assert e.value.code == 2
    assert "invalid choice: 'resnet-1000'" in capsys.readouterr().err


def test_train_model_mobilenet_names_the_file_after_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--quiet", "--model", "mobilenet-cnn", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "test accuracy:" in out and "digits-mobilenet-cnn.npz" in out
    model = cc.load(str(tmp_path / "digits-mobilenet-cnn.npz"))
    assert any(getattr(la, "groups", 1) > 1 for la in model.layers)
    assert model.loss_fn == CrossEntropyLoss()


def test_train_conv_autoencoder_trains_with_mse_and_reports_the_loss(tmp_path, capsys):
    out, metrics = tmp_path / "ae.npz", tmp_path / "ae.json"
    assert main(["train", "--quiet", "--model", "conv-autoencoder", "--epochs", "4",
                 "--val-split", "0.1", "--out", str(out), "--metrics", str(metrics)]) == 0
    printed = capsys.readouterr().out
    assert "test loss:" in printed and "accuracy" not in printed
    report = json.loads(metrics.read_text())
    assert report["model"] == "conv-autoencoder" and report["loss"] == "mse"
    assert report["test_accuracy"] is None
    history = report["history"]
    assert set(history) >= {"loss", "val_loss"} and "accuracy" not in history
    assert history["loss"][-1] < history["loss"][0]
    model = cc.load(str(out))
    assert model.loss_fn == MSELoss()
    # evaluate of the saved file reconstructs the test images, as train reported
    assert main(["evaluate", str(out)]) == 0
    assert f"test loss: {report['test_loss']:.4f}" in capsys.readouterr().out
    # predict needs a classifier
    assert main(["predict", str(out), str(out)]) == 2
    assert "predict needs a classifier" in capsys.readouterr().err


def test_autoencoder_with_augment_is_refused_in_one_line(capsys):
    assert main(["train", "--quiet", "--model", "conv-autoencoder", "--augment"]) == 2
    err = capsys.readouterr().err
    assert "reconstructs its input" in err and len(err.strip().splitlines()) == 1


def test_the_autoencoder_recipe_in_python_gives_the_weights_of_the_command(tmp_path):
    out = tmp_path / "ae.npz"
    assert main(["train", "--quiet", "--model", "conv-autoencoder", "--epochs", "2",
                 "--out", str(out)]) == 0
    ds = load_dataset("digits")
    model, history = recipe("digits", model="conv-autoencoder", epochs=2).train(ds, verbose=0)
    saved = cc.load(str(out))
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(saved.state_dict()[k], v)
    assert "accuracy" not in history.history
    np.testing.assert_array_equal(evaluation_targets(model, ds.x_test, ds.y_test), ds.x_test)
    np.testing.assert_array_equal(evaluation_targets(saved, ds.x_test, ds.y_test), ds.x_test)
    classifier = recipe("digits").build_model(ds.input_shape, 10)
    assert evaluation_targets(classifier, ds.x_test, ds.y_test) is ds.y_test


def test_the_autoencoder_resumes_with_mse_from_its_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--quiet", "--model", "conv-autoencoder", "--epochs", "2",
                 "--checkpoint-dir", str(run), "--out", str(tmp_path / "a.npz")]) == 0
    capsys.readouterr()
    # the saved recipe says 2 epochs: resuming a finished run trains nothing more and
    # keeps the loss
    assert main(["train", "--quiet", "--resume", str(run), "--out", str(tmp_path / "c.npz")]) == 0
    assert "test loss:" in capsys.readouterr().out
    assert cc.load(str(tmp_path / "c.npz")).loss_fn == MSELoss()


def test_recipe_refuses_augmenting_an_autoencoder():
    with pytest.raises(ClearConvError, match="reconstructs its input"):
        recipe("mnist", model="conv-autoencoder", augment=True)


def test_explain_model_refuses_an_autoencoder_in_one_line(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="matplotlib not installed: explain not run")
    out = tmp_path / "ae.npz"
    assert main(["train", "--quiet", "--model", "conv-autoencoder", "--epochs", "1",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["explain", "model", "--out", str(tmp_path / "fig"), "--model", str(out)]) == 2
    assert "explains a classifier" in capsys.readouterr().err


def test_a_recipe_naming_no_model_by_a_string_is_refused_by_name():
    from clearconv.train import Recipe

    with pytest.raises(ClearConvError, match=r"unknown model \['resnet20'\]"):
        Recipe("digits", ["resnet20"], 1, 1e-3)
