"""Issue 12, model files: crafted files are refused within a bound, with a clear error.

Each test builds its crafted file here (a few KB at most) and names the finding.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clearconv import ModelFileError, Sequential, load
from clearconv.io import files
from clearconv.io.files import load_arrays, save_arrays
from clearconv.layers import Dense, Flatten, ReLU


def _model() -> Sequential:
    model = Sequential(Flatten(), Dense(4, 3, rng=0), input_shape=(1, 2, 2))
    model.classes = ["a", "b", "c"]
    return model


def _write(path: Path, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
    save_arrays(path, {"model": config}, arrays)
    return path


def _crafted(tmp_path: Path, change: Any, arrays: Any = None) -> Path:
    model = _model()
    config = copy.deepcopy(model.get_config())
    change(config)
    state = {k: v.copy() for k, v in model.state_dict().items()}
    if arrays is not None:
        arrays(state)
    return _write(tmp_path / "crafted.npz", config, state)


@pytest.mark.parametrize("sizes", [
    {"in_features": [40000, 1], "out_features": [40000, 1]},
    {"in_features": [100000, 1], "out_features": [1000000, 1]},
])
def test_layer_sizes_written_as_lists_count_against_the_file(tmp_path: Path,
                                                             sizes: dict[str, Any]) -> None:
    # issue 12: sizes such as [40000, 1] counted as 0 weights: 1.7 GB (or 745 GiB asked)
    def change(c: dict[str, Any]) -> None:
        c["layers"][1]["config"].update(sizes)
        c["input_shape"] = None
    path = _crafted(tmp_path, change)
    with pytest.raises(ModelFileError, match="larger than the 15 weights the file holds"):
        load(str(path))


def test_members_are_bounded_before_inflating(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # issue 12: a 1.1 MB member of 1 GiB zeros was inflated before any shape check
    import zipfile

    path = tmp_path / "zeros.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("0.weight.npy", "w") as f:
            np.lib.format.write_array(f, np.zeros(1 << 18, np.float32))
    assert path.stat().st_size < 10_000
    monkeypatch.setattr(files, "MAX_MODEL_BYTES", 1 << 20)
    with pytest.raises(ModelFileError, match="more than clearconv.io.files.MAX_MODEL_BYTES"):
        load_arrays(path)


@pytest.mark.parametrize("value, message", [
    (np.full((3, 4), np.nan, np.float32), "NaN or infinite"),
    (np.full((3, 4), np.inf, np.float32), "NaN or infinite"),
    (np.ones((3, 4), np.complex64) * 1j, "dtype complex64"),
    (np.ones((3, 4), bool), "dtype bool"),
    (np.full((3, 4), "w"), "dtype <U1"),
    (np.ones((3, 4), np.int32), "dtype int32"),
])
def test_weights_that_are_no_real_numbers_are_refused(tmp_path: Path, value: np.ndarray,
                                                      message: str) -> None:
    # issue 12: complex weights lost their imaginary part, NaN/Inf printed nan,
    # strings and bools gave raw tracebacks
    def arrays(state: dict[str, np.ndarray]) -> None:
        state["1.weight"] = value
    path = _crafted(tmp_path, lambda c: None, arrays)
    with pytest.raises(ModelFileError, match=message):
        load(str(path))


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(layers=[]), "non-empty list of layers"),
    (lambda c: c.update(layers="Dense"), "non-empty list of layers"),
    (lambda c: c["layers"].insert(1, {"type": "_WeightLayer", "config": {}}),
     "unknown layer type '_WeightLayer'"),
    (lambda c: c["layers"].insert(0, {"type": "_Pool2D", "config": {"kernel_size": 2}}),
     "unknown layer type '_Pool2D'"),
    (lambda c: c.update(classes=["a", "b"]), "names 2 classes but the model has 3 outputs"),
    (lambda c: c.update(classes="abc"), "'classes' must be a list of strings"),
    (lambda c: c.update(classes=[1, 2, 3]), "'classes' must be a list of strings"),
    (lambda c: c["layers"].append({"type": "Softmax", "config": {"axis": 7}}),
     "Softmax axis must be an int in -5..4.*got 7"),
    (lambda c: c["layers"].append(7), "each layer must be"),
    (lambda c: c.update(input_shape=None, layers=[
        {"type": "BatchNorm2D", "config": {"num_features": 10**12}}] + c["layers"]),
     "larger than the 15 weights"),
])
def test_damaged_architectures_are_clear_errors(tmp_path: Path, change: Any,
                                                message: str) -> None:
    # issue 12: each of these was a raw traceback (or accepted)
    path = _crafted(tmp_path, change)
    with pytest.raises(ModelFileError, match=message):
        load(str(path))


def test_folder_as_model_is_a_clear_error(tmp_path: Path) -> None:
    # issue 12: a directory as the model gave a raw IsADirectoryError traceback
    with pytest.raises(ModelFileError, match="a folder, not a model file"):
        load(str(tmp_path))


def test_fifo_as_model_is_refused_not_waited_on(tmp_path: Path) -> None:
    # issue 12: a FIFO given as the model hung at open
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    path = tmp_path / "model.npz"
    os.mkfifo(path)
    with pytest.raises(ModelFileError, match="a FIFO"):
        load(str(path))


def test_a_good_model_still_loads(tmp_path: Path) -> None:
    model = Sequential(Flatten(), Dense(4, 3, rng=0), ReLU(), input_shape=(1, 2, 2))
    model.save(str(tmp_path / "m.npz"))
    again = load(str(tmp_path / "m.npz"))
    x = np.random.default_rng(0).random((2, 1, 2, 2), np.float32)
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
