"""End to end: the `clearconv` command on the embedded digits."""

import json
import subprocess
import sys

import pytest

from clearconv.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    model, metrics = d / "digits.npz", d / "metrics.json"
    rc = main(["train", "--quiet", "--out", str(model), "--metrics", str(metrics)])
    assert rc == 0
    return model, json.loads(metrics.read_text())


def test_train_reaches_97_percent_on_embedded_digits(trained):
    _, metrics = trained
    assert metrics["test_accuracy"] >= 0.97
    assert metrics["epochs"] == 20
    assert metrics["train_seconds"] > 0
    assert 0 < metrics["test_loss"] < 0.5
    assert len(metrics["history"]["loss"]) == 20


def test_evaluate_of_saved_model_gives_the_same_accuracy(trained, capsys):
    model, metrics = trained
    assert main(["evaluate", str(model)]) == 0
    out = capsys.readouterr().out
    assert f"test accuracy: {metrics['test_accuracy']:.4f}" in out


def test_summary_of_saved_model(trained, capsys):
    model, _ = trained
    assert main(["summary", str(model)]) == 0
    out = capsys.readouterr().out
    assert "Total params: 13,706" in out and "(N, 16, 8, 8)" in out


def test_console_entry_point_runs_as_a_module(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "clearconv.cli", "train", "--quiet",
                           "--epochs", "1", "--out", str(tmp_path / "m.npz")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy:" in proc.stdout and (tmp_path / "m.npz").exists()


def test_corrupt_model_file_gives_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"\x80\x04garbage")
    assert main(["summary", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("clearconv: error:") and "bad.npz" in err
    assert main(["evaluate", str(tmp_path / "missing.npz")]) == 2


def test_three_lines_of_python_give_the_weights_of_the_command(tmp_path):
    import numpy as np

    import clearconv as cc
    from clearconv.data import load_dataset
    from clearconv.train import recipe

    out = tmp_path / "cli.npz"
    assert main(["train", "--quiet", "--epochs", "2", "--lr", "0.01", "--augment",
                 "--val-split", "0.2", "--out", str(out)]) == 0
    ds = load_dataset("digits")
    model, _ = recipe("digits", epochs=2, lr=0.01, augment=True, val_split=0.2).train(
        ds, seed=0, verbose=0)
    cli_model = cc.load(str(out))
    assert cli_model.classes == model.classes
    for k, v in cli_model.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[k], v, err_msg=k)


def test_resume_of_an_empty_folder_says_there_is_nothing_to_resume(tmp_path, capsys):
    assert main(["train", "--quiet", "--resume", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"nothing to resume in {tmp_path}: no checkpoint.npz" in err


def test_resume_of_a_checkpoint_a_script_wrote_is_refused(tmp_path, capsys):
    import numpy as np

    from clearconv.train import zoo

    model = zoo.digits_cnn(rng=0)
    x, y = np.zeros((4, 1, 8, 8), np.float32), np.arange(4)
    model.fit(x, y, epochs=1, verbose=0, checkpoint_dir=str(tmp_path))
    assert main(["train", "--quiet", "--resume", str(tmp_path)]) == 2
    assert "holds no clearconv train options" in capsys.readouterr().err
