"""The command line validates first and says what it did (issue 15, item 5): one test per
item of the issue's list."""

from __future__ import annotations

import argparse
import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clearconv.cli import build_parser, main
from clearconv.data.datasets import FIRST_LABELS

ROOT = Path(__file__).resolve().parents[1]


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _fails(argv, capsys) -> str:
    """Run the command, expect argparse's exit 2, return what it printed on stderr."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    return capsys.readouterr().err


# ------------------------------------------------------------ options checked first
@pytest.mark.parametrize("flag, value, words", [
    ("--epochs", "0", "must be >= 1, got 0"),
    ("--epochs", "-1", "must be >= 1, got -1"),
    ("--batch-size", "0", "must be >= 1, got 0"),
    ("--lr", "0", "must be > 0, got 0"),
    ("--lr", "-0.1", "must be > 0, got -0.1"),
    ("--lr", "nan", "expected a finite number, got 'nan'"),
    ("--optimizer", "adm", "unknown optimizer 'adm' (did you mean adam?)"),
    ("--val-split", "1.5", "must be in [0, 1), got 1.5"),
])
def test_bad_options_are_refused_before_any_data_loads(flag, value, words, tmp_path, capsys):
    # the data folder does not exist: reaching the loader would fail differently
    err = _fails(["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "nowhere"),
                  flag, value], capsys)
    assert f"argument {flag}: {words}" in err
    assert "usage: clearconv train" in err and "nowhere" not in err


# ------------------------------------------------------ dataset files match their name
def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _idx_folder(root: Path, dataset: str) -> Path:
    """Small IDX files whose labels begin as the published files of ``dataset`` do."""
    root.mkdir()
    for split, prefix in (("train", "train"), ("test", "t10k")):
        labels = np.array(FIRST_LABELS[dataset][split] * 2)
        _write_idx(root / f"{prefix}-images-idx3-ubyte.gz",
                   np.zeros((len(labels), 28, 28), np.uint8))
        _write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return root


@pytest.mark.parametrize("files, asked", [("mnist", "fashion-mnist"),
                                          ("fashion-mnist", "mnist")])
def test_the_files_of_another_dataset_are_refused(files, asked, tmp_path, capsys):
    folder = _idx_folder(tmp_path / files, files)
    assert main(["train", "--quiet", "--dataset", asked, "--data-dir", str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"holds the {files} files, not {asked}'s" in err
    assert f"pass --dataset {files}" in err


def test_the_files_of_the_named_dataset_load(tmp_path):
    from clearconv.data import load_dataset

    ds = load_dataset("mnist", str(_idx_folder(tmp_path / "m", "mnist")))
    assert ds.x_train.shape == (24, 1, 28, 28)


# ----------------------------------------------------- resume keeps --out and --metrics
def test_resume_writes_the_model_and_metrics_where_the_run_said(tmp_path, monkeypatch):
    run, out, metrics = tmp_path / "run", tmp_path / "models" / "a.npz", tmp_path / "a.json"
    assert main(["train", "--quiet", "--epochs", "1", "--checkpoint-dir", str(run),
                 "--out", str(out), "--metrics", str(metrics)]) == 0
    out.unlink()
    metrics.unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["train", "--quiet", "--resume", str(run)]) == 0
    assert out.is_file() and metrics.is_file()
    assert list(elsewhere.iterdir()) == []          # no digits-cnn.npz in the cwd


# ---------------------------------------------------------- errors suggest the fix
def test_evaluate_names_the_dataset_the_model_fits_before_loading_data(tmp_path, capsys):
    from clearconv.train import recipe

    model = recipe("mnist").build_model((1, 28, 28), 10, seed=0)
    model.classes = [str(i) for i in range(10)]
    path = tmp_path / "mnist.npz"
    model.save(str(path))
    assert main(["evaluate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "takes inputs of shape (1, 28, 28), --dataset digits gives (1, 8, 8)" in err
    assert err.endswith("pass --dataset mnist")


def test_a_misspelled_flag_shows_its_subcommands_usage_and_the_closest_flag(capsys):
    err = _fails(["train", "--epocs", "3"], capsys)
    assert err.startswith("usage: clearconv train")
    assert "unrecognized arguments: --epocs 3 (did you mean --epochs?)" in err


def test_explain_suggests_topics_in_the_commands_words(capsys):
    from clearconv.explain import TOPICS

    err = _fails(["explain", "foo", "--out", "x"], capsys)
    assert "unknown topic 'foo'" in err and "explain_all" not in err
    assert all(t in err for t in TOPICS) and "or all" in err
    err = _fails(["explain", "pooling_backwards", "--out", "x"], capsys)
    assert "did you mean pooling-backward?" in err


# ------------------------------------------------------------------------ help texts
def test_every_positional_argument_has_help():
    for name, p in _subparsers().items():
        for action in p._actions:
            if not action.option_strings:
                assert action.help, f"clearconv {name}: {action.dest} has no help"


def test_explain_help_lists_the_topics(capsys):
    from clearconv.explain import TOPICS

    with pytest.raises(SystemExit):
        main(["explain", "--help"])
    out = capsys.readouterr().out
    assert "clearconv.explain.TOPICS" not in out
    assert all(t in out for t in TOPICS)


def test_help_shows_the_defaults():
    subs = _subparsers()
    text = {name: " ".join(p.format_help().split()) for name, p in subs.items()}
    assert "how many classes to show (default: 3)" in text["predict"]
    assert "keep every S-th output pixel (default: 1)" in text["filter"]
    assert "ONNX opset version (default: 17)" in text["export"]
    assert "(default: 0)" in text["train"]                  # --seed
    assert "default: True" not in text["train"]              # --quiet has none to show
    for name, p in subs.items():                             # each option says its default
        for a in p._actions:
            if a.option_strings and a.default not in (None, False, argparse.SUPPRESS) \
                    and not isinstance(a, argparse._HelpAction) and a.dest != "verbose":
                assert "default" in p.formatter_class(name)._get_help_string(a), a.dest


# ------------------------------------------------------------------- what it prints
def test_metrics_have_the_mean_and_each_epochs_seconds(tmp_path):
    metrics = tmp_path / "m.json"
    assert main(["train", "--quiet", "--epochs", "2", "--out", str(tmp_path / "m.npz"),
                 "--metrics", str(metrics)]) == 0
    m = json.loads(metrics.read_text())
    assert len(m["epoch_seconds"]) == 2 and m["epoch_seconds"] == m["history"]["seconds"]
    assert m["seconds_per_epoch"] == pytest.approx(sum(m["epoch_seconds"]) / 2)
    readme = (ROOT / "README.md").read_text()
    assert "`seconds_per_epoch` (the mean over the epochs)" in readme
    assert "`epoch_seconds`" in readme


def test_a_nan_stop_says_it_in_one_clean_line(tmp_path, capsys):
    rc = main(["train", "--quiet", "--epochs", "1", "--lr", "1e9", "--out",
               str(tmp_path / "m.npz"), "--checkpoint-dir", str(tmp_path / "run")])
    assert rc == 3
    err = capsys.readouterr().err.strip()
    assert "RuntimeWarning" not in err and ".;" not in err and err.count("\n") == 0
    assert err.startswith("clearconv: training stopped: epoch 1, step ")
    assert err.endswith(f"Try a lower learning rate. The last good checkpoint is kept in "
                        f"{tmp_path / 'run'}.")


def test_an_interrupt_says_interrupted_once(tmp_path, capsys, monkeypatch):
    from clearconv.train.recipes import Recipe

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt("interrupted at epoch 1, step 2/23; checkpoint saved in D")

    monkeypatch.setattr(Recipe, "fit", interrupted)
    assert main(["train", "--quiet", "--checkpoint-dir", str(tmp_path / "D")]) == 130
    err = capsys.readouterr().err
    assert err.count("interrupted") == 1
    assert "clearconv: interrupted at epoch 1, step 2/23" in err


def test_filter_prints_both_sizes_as_height_x_width(tmp_path, capsys):
    image = tmp_path / "wide.png"
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(image)
    assert main(["filter", str(image), "--kernel", "box", "--out",
                 str(tmp_path / "o.png")]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.count("20x30 (HxW") == 2, first


def test_the_readme_synopsis_lists_every_option_with_its_default():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Command line", 1)[1].split("```", 2)[1]
    assert "--val-split 0.0" in block and "--val-split 0.1" not in block
    for name, p in _subparsers().items():
        for a in p._actions:
            for flag in a.option_strings:
                if flag.startswith("--") and flag != "--help":
                    assert re.search(re.escape(flag) + r"\b", block), f"{name} {flag}"
    assert "(1438, 1, 8, 8)" in readme and "(1437" not in readme


def test_the_clis_topic_list_is_explains():
    import sys

    from clearconv import cli
    from clearconv.explain import TOPICS

    assert cli.TOPICS == TOPICS
    assert "clearconv.explain" in sys.modules    # (imported by this test, not by --help)
