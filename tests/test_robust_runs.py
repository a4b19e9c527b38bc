"""Issue 12, runs never lost or mixed: outputs checked before training, one run per
checkpoint folder, --resume refusing contradictions, true messages, atomic figures."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clearconv import cli
from clearconv.cli import main

TRAIN = ["train", "--epochs", "1", "--quiet"]


def _no_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make loading the data fail the test: the check must come before it."""
    def refuse(args: Any) -> Any:
        raise AssertionError("the data were loaded before the outputs were checked")
    monkeypatch.setattr(cli, "_load_data", refuse)


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("where, message", [
    ("folder", "it is a folder"),
    ("under-a-file", "is a file, not a folder"),
])
def test_a_bad_out_is_refused_before_any_data_loads(tmp_path: Path, where: str, message: str,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # issue 12: a bad --out was noticed after training, the model thrown away
    (tmp_path / "f").write_text("x")
    out = {"folder": tmp_path, "under-a-file": tmp_path / "f" / "m.npz"}[where]
    _no_data(monkeypatch)
    assert main([*TRAIN, "--out", str(out)]) == 2
    err = _err(capsys)
    assert message in err and str(out) in err and ".tmp" not in err


def test_a_bad_metrics_path_is_refused_before_any_data_loads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    _no_data(monkeypatch)
    assert main([*TRAIN, "--out", str(tmp_path / "m.npz"), "--metrics", str(tmp_path)]) == 2
    assert "metrics file" in _err(capsys)


def test_a_full_disk_is_refused_before_any_data_loads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from clearconv import _runs

    monkeypatch.setattr(_runs, "MIN_FREE_BYTES", 1 << 62)
    _no_data(monkeypatch)
    assert main([*TRAIN, "--out", str(tmp_path / "m.npz")]) == 2
    assert "bytes free" in _err(capsys)


def test_a_failed_write_names_the_users_path_not_the_temporary_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # issue 12: the message named the hidden temp file (.o.npz.xxo1h_dy.tmp)
    from clearconv.io.files import atomic_write

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match=r"cannot write .*o\.npz: No space left") as info:
        with atomic_write(tmp_path / "o.npz") as f:
            f.write(b"data")
    assert ".tmp" not in str(info.value)
    assert os.listdir(tmp_path) == []


def test_one_run_per_checkpoint_folder(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    # issue 12: two trainings in one folder ran unlocked; a new run reused an old folder
    from clearconv._runs import RunFolder
    from clearconv.train import BackupAndRestore

    ck, out = tmp_path / "ck", str(tmp_path / "m.npz")
    assert main([*TRAIN, "--out", out, "--checkpoint-dir", str(ck)]) == 0
    run_id = BackupAndRestore.saved_options(str(ck))["run_id"]
    assert len(run_id) == 32
    capsys.readouterr()
    # a new run in the used folder asks for --overwrite
    assert main([*TRAIN, "--out", out, "--checkpoint-dir", str(ck)]) == 2
    assert "--overwrite" in _err(capsys)
    # a second run while the first one holds the folder is refused
    with RunFolder(str(ck), fresh=False):
        assert main(["train", "--quiet", "--resume", str(ck)]) == 2
        assert "another training" in _err(capsys)
    # the resumed run keeps the run's id; --overwrite starts a new one
    assert main(["train", "--quiet", "--resume", str(ck), "--epochs", "2"]) == 0
    assert BackupAndRestore.saved_options(str(ck))["run_id"] == run_id
    assert main([*TRAIN, "--out", out, "--checkpoint-dir", str(ck), "--overwrite"]) == 0
    assert BackupAndRestore.saved_options(str(ck))["run_id"] != run_id


def test_resume_refuses_contradicting_options(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # issue 12: `--resume D --lr 0.5 --epochs 4` was silently ignored
    from clearconv.train import BackupAndRestore

    ck = tmp_path / "ck"
    assert main([*TRAIN, "--out", str(tmp_path / "m.npz"), "--checkpoint-dir", str(ck)]) == 0
    capsys.readouterr()
    assert main(["train", "--quiet", "--resume", str(ck), "--lr", "0.5", "--epochs", "4"]) == 2
    err = _err(capsys)
    assert "--lr 0.5" in err and "contradict" in err and "--epochs" not in err
    assert main(["train", "--quiet", "--resume", str(ck), "--seed", "7"]) == 2
    assert "--seed 7" in _err(capsys)
    assert main(["train", "--quiet", "--resume", str(ck), "--epochs", "3"]) == 0  # safe
    assert BackupAndRestore.saved_options(str(ck))["recipe"]["epochs"] == 3
    assert "(3 epochs" in capsys.readouterr().out


def test_stale_temporaries_of_a_killed_checkpoint_write_are_removed(tmp_path: Path) -> None:
    # issue 12: kill -9 during a checkpoint write left .checkpoint.npz.*.tmp forever
    ck = tmp_path / "ck"
    assert main([*TRAIN, "--out", str(tmp_path / "m.npz"), "--checkpoint-dir", str(ck)]) == 0
    stale = ck / ".checkpoint.npz.k1ll3d.tmp"
    stale.write_bytes(b"half a checkpoint")
    assert main(["train", "--quiet", "--resume", str(ck), "--epochs", "2"]) == 0
    assert not stale.exists()


def test_the_nan_stop_message_is_true_about_checkpoints(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # issue 12: "the last good checkpoint is kept in D" when D held no checkpoint
    from clearconv.errors import NumericalError
    from clearconv.train.recipes import Recipe

    def nan(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise NumericalError("the loss is nan")
    monkeypatch.setattr(Recipe, "fit", nan)
    ck = tmp_path / "ck"
    assert main([*TRAIN, "--out", str(tmp_path / "m.npz"), "--checkpoint-dir", str(ck)]) == 3
    err = capsys.readouterr().err
    assert "No checkpoint was written" in err and "kept" not in err


def test_ctrl_c_while_the_data_load_exits_130(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    # issue 12: Ctrl-C during data loading gave a traceback and exit -2, not 130
    def interrupted(args: Any) -> Any:
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "_load_data", interrupted)
    assert main([*TRAIN, "--out", str(tmp_path / "m.npz")]) == 130
    assert "interrupted" in capsys.readouterr().err


def _folder(root: Path, counts: dict[str, int]) -> Path:
    from PIL import Image

    for k, (name, n) in enumerate(counts.items()):
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.new("L", (8, 8), 30 * k + i).save(root / name / f"{i}.png")
    return root


def test_one_image_per_class_is_refused_before_training(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # issue 12: such folders trained fully, then failed in evaluate, and saved no model
    root = _folder(tmp_path / "imgs", {"a": 1, "b": 3})
    code = main([*TRAIN, "--dataset", "folder", "--data-dir", str(root),
                 "--out", str(tmp_path / "m.npz")])
    assert code == 2 and "'a' hold one image" in _err(capsys)


def test_huge_image_size_is_refused_before_decoding(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # issue 12: --image-size 100000 100000 was a raw MemoryError
    root = _folder(tmp_path / "imgs", {"a": 2, "b": 2})
    code = main([*TRAIN, "--dataset", "folder", "--data-dir", str(root),
                 "--image-size", "100000", "100000", "--out", str(tmp_path / "m.npz")])
    assert code == 2 and "MAX_FOLDER_BYTES" in _err(capsys)


def test_evaluate_compares_the_class_names(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    # issue 12: a 10-class digits model on a 2-class folder reported "accuracy 0.5000"
    from clearconv.train.recipes import recipe

    model = recipe("folder").build_model((1, 32, 32), 10, seed=0)
    model.classes = [str(i) for i in range(10)]
    model.save(str(tmp_path / "m.npz"))
    root = _folder(tmp_path / "imgs", {"a": 2, "b": 2})
    code = main(["evaluate", str(tmp_path / "m.npz"), "--dataset", "folder",
                 "--data-dir", str(root)])
    assert code == 2 and "trained on the classes" in _err(capsys)


def test_explain_figures_are_written_atomically(tmp_path: Path) -> None:
    # issue 12: on a full disk the previous image.png was left truncated (once 0 bytes)
    matplotlib = pytest.importorskip("matplotlib", reason="explain needs the explain extra "
                                                          "(pip install 'clearconv[explain]')")

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from clearconv.explain._draw import save_png

    path = tmp_path / "image.png"
    fig = plt.figure(figsize=(1, 1))
    save_png(fig, path)
    before = path.read_bytes()

    def full(self: Any, fname: Any, **kwargs: Any) -> None:
        fname.write(b"\x89PNG half")
        raise OSError(errno.ENOSPC, "No space left on device")
    original = type(fig).savefig
    type(fig).savefig = full  # type: ignore[method-assign]
    try:
        with pytest.raises(OSError, match="No space left"):
            save_png(fig, path)
    finally:
        type(fig).savefig = original  # type: ignore[method-assign]
        plt.close(fig)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["image.png"]
    assert np.frombuffer(before[:8], np.uint8).tolist() == [137, 80, 78, 71, 13, 10, 26, 10]


def test_explain_out_is_checked_before_any_figure(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    # issue 12: every output path, explain --out too, checked before the work starts
    (tmp_path / "f").write_text("x")
    assert main(["explain", "all", "--out", str(tmp_path / "f")]) == 2
    assert "is a file, not a folder" in _err(capsys)


def test_stale_temporaries_of_a_killed_model_write_are_removed(tmp_path: Path) -> None:
    # issue 12: stale .tmp files of killed writes are cleaned on the next run
    old, fresh = tmp_path / ".m.npz.k1ll3d.tmp", tmp_path / ".m.npz.wr1t1ng.tmp"
    for p in (old, fresh):
        p.write_bytes(b"half a model")
    two_hours_ago = os.path.getmtime(old) - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    assert main([*TRAIN, "--out", str(tmp_path / "m.npz")]) == 0
    assert not old.exists() and fresh.exists()   # a write in progress elsewhere is kept


@pytest.mark.parametrize("first, contradicting, agreeing, message", [
    ([], "--augment", "--no-augment",
     "--augment (the checkpoint's run trains without augmentation)"),
    (["--augment"], "--no-augment", "--augment",
     "--no-augment (the checkpoint's run augments: shift)"),
])
def test_resume_refuses_an_augment_flag_that_contradicts_the_saved_run(
        first: list[str], contradicting: str, agreeing: str, message: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    ck = tmp_path / "ck"
    assert main([*TRAIN, *first, "--out", str(tmp_path / "m.npz"),
                 "--checkpoint-dir", str(ck)]) == 0
    capsys.readouterr()
    assert main(["train", "--quiet", "--resume", str(ck), contradicting]) == 2
    err = _err(capsys)
    assert message in err and "contradict" in err
    # the flag that agrees, or none: no conflict (the finished run trains no more)
    assert main(["train", "--quiet", "--resume", str(ck), agreeing]) == 0
    assert main(["train", "--quiet", "--resume", str(ck)]) == 0
