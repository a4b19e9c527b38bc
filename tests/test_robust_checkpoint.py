"""Issue 12, damaged checkpoint and run fields: a ModelFileError (or ClearConvError)
naming the field, never a raw traceback or a run that trains uphill or for extra epochs;
and the CLI's --seed -1 / --top -1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import clearconv
from clearconv import BackupAndRestore, ClearConvError, ModelFileError
from clearconv.io.files import load_arrays, save_arrays
from clearconv.layers import Dense, Flatten
from clearconv.train.checkpoint import load_checkpoint


def _fit(folder: Path, epochs: int = 1, resume: bool = False) -> Any:
    rng = np.random.default_rng(0)
    x, y = rng.random((12, 1, 2, 2), np.float32), rng.integers(0, 3, 12)
    model = clearconv.Sequential(Flatten(), Dense(4, 3, rng=0), input_shape=(1, 2, 2))
    return model.fit(x, y, epochs=epochs, batch_size=4, verbose=0, seed=0,
                     callbacks=[BackupAndRestore(str(folder), resume=resume)],
                     optimizer=clearconv.optim.SGD(model.parameters(), lr=0.1))


def _edit(folder: Path, change: Any) -> None:
    path = folder / "checkpoint.npz"
    config, arrays = load_arrays(path)
    change(config["checkpoint"], arrays)
    save_arrays(path, config, arrays)


@pytest.mark.parametrize("change, message", [
    (lambda ck, a: ck.pop("epoch"), r"missing fields \['epoch'\]"),
    (lambda ck, a: ck.update(epoch="3"), "epoch must be an int >= 0, got '3'"),
    (lambda ck, a: ck.update(epoch=-3), "epoch must be an int >= 0, got -3"),
    (lambda ck, a: ck.update(step=True), "step must be an int >= 0, got True"),
    (lambda ck, a: ck.update(history=[1]), "history must be an object"),
    (lambda ck, a: ck.update(totals=[0, 1]), "totals must be 3 numbers"),
    (lambda ck, a: a.update({"optim/lr": np.array(-0.5)}), "optim/lr must be one number >= 0"),
    (lambda ck, a: ck["optimizer"]["hyperparams"].update(lr=-0.5),
     "optimizer lr must be a number >= 0"),
    (lambda ck, a: a.update({"model/1.weight": np.full((3, 4), np.nan, np.float32)}),
     "model/1.weight must hold finite real numbers"),
    (lambda ck, a: ck.update(epoch_rng={"bit_generator": "os.system"}), "not one of PCG64"),
])
def test_damaged_checkpoint_fields_are_refused(tmp_path: Path, change: Any,
                                               message: str) -> None:
    # issue 12: missing keys, wrong types were raw tracebacks; a negative optim/lr trained
    # uphill; epoch -3 trained 6 extra epochs
    _fit(tmp_path)
    _edit(tmp_path, change)
    with pytest.raises(ModelFileError, match=message):
        _fit(tmp_path, epochs=2, resume=True)


def test_a_good_checkpoint_still_resumes(tmp_path: Path) -> None:
    _fit(tmp_path)
    history = _fit(tmp_path, epochs=2, resume=True)
    assert history.epochs == 2
    assert load_checkpoint(str(tmp_path)).state.epoch == 2


@pytest.mark.parametrize("options, message", [
    ({"recipe": "digits", "seed": 0, "data": {}}, "damaged train options"),
    ({"recipe": {}, "seed": -1, "data": {}}, "damaged train options"),
    ({"recipe": {"dataset": "digits"}, "seed": 0, "data": {}}, "not a recipe"),
])
def test_damaged_run_options_are_refused(tmp_path: Path, options: dict[str, Any],
                                         message: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    # issue 12: damaged run.json fields (the options kept with the checkpoint) were
    # raw tracebacks in clearconv train --resume
    from clearconv.cli import main

    _fit(tmp_path)
    _edit(tmp_path, lambda ck, a: ck.update(options=options))
    assert main(["train", "--quiet", "--resume", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize("argv, words", [
    (["train", "--seed", "-1"], "argument --seed: must be >= 0, got -1"),
    (["predict", "m.npz", "x.png", "--top", "-1"], "argument --top: must be >= 1, got -1"),
])
def test_negative_seed_and_top_are_refused(argv: list[str], words: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    # issue 12: --seed -1 was a raw traceback; --top -1 printed 9 classes
    from clearconv.cli import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and words in capsys.readouterr().err
    assert issubclass(ModelFileError, ClearConvError)
