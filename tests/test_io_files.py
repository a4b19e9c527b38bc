"""Tests of clearconv.io: round trip, atomic writes, and refusing damaged or unsafe files."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from clearconv.errors import ClearConvError, ModelFileError
from clearconv.io import files as cio
from clearconv.io import load_arrays, save_arrays

CONFIG = {
    "layers": [{"type": "Conv2D", "in_channels": 1, "out_channels": 4, "kernel_size": [3, 3]},
               {"type": "Dense", "units": 10}],
    "lr": 0.01,
    "name": "ünïcode ✓",
    "flag": True,
    "nothing": None,
}


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "conv.weight": rng.standard_normal((4, 1, 3, 3)).astype(np.float32),
        "conv.bias": rng.standard_normal(4).astype(np.float32),
        "dense.weight": rng.standard_normal((36, 10)),  # float64
        "dense/bias": np.array([np.pi, -0.0, 1e-300, np.finfo(np.float64).max]),
        "steps": np.array(12345678901, dtype=np.int64),
        "mask": np.array([[True, False]]),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }


def _listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "model.npz"
    save_arrays(path, CONFIG, _arrays())
    return path


def _assert_refused(path: Path, *fragments: str) -> None:
    with pytest.raises(ModelFileError) as info:
        load_arrays(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


# ---------------------------------------------------------------- round trip

def test_round_trip_keeps_dtypes_shapes_and_exact_values(saved: Path) -> None:
    _, arrays = load_arrays(saved)
    expected = _arrays()
    assert set(arrays) == set(expected)
    for key, want in expected.items():
        got = arrays[key]
        assert got.dtype == want.dtype, key
        assert got.shape == want.shape, key
        assert got.tobytes() == want.tobytes(), key  # bit-exact, signed zero included


def test_round_trip_returns_the_config_without_the_format_tag(saved: Path) -> None:
    config, _ = load_arrays(saved)
    assert config == CONFIG


def test_file_holds_config_as_uint8_json_with_format_tag(saved: Path) -> None:
    with np.load(saved, allow_pickle=False) as npz:
        raw = npz["__config__"]
    assert raw.dtype == np.uint8 and raw.ndim == 1
    stored = json.loads(raw.tobytes().decode("utf-8"))
    assert stored["format"] == "clearconv-model"
    assert stored["version"] == 1
    assert stored["lr"] == CONFIG["lr"]


def test_path_is_used_as_given_and_str_paths_work(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    save_arrays(str(path), {}, {"w": np.ones(3)})
    assert _listing(tmp_path) == ["weights.bin"]
    config, arrays = load_arrays(str(path))
    assert config == {}
    np.testing.assert_array_equal(arrays["w"], np.ones(3))


def test_overwrite_replaces_the_old_contents(saved: Path) -> None:
    save_arrays(saved, {"second": 2}, {"w": np.zeros(2, dtype=np.float32)})
    config, arrays = load_arrays(saved)
    assert config == {"second": 2}
    assert list(arrays) == ["w"]
    assert _listing(saved.parent) == ["model.npz"]


def test_new_file_gets_ordinary_permissions(saved: Path) -> None:
    if os.name != "posix":
        pytest.skip("POSIX permission bits")
    umask = os.umask(0o022)
    os.umask(umask)
    assert saved.stat().st_mode & 0o777 == 0o666 & ~umask


# ---------------------------------------------------------------- refusing bad input

def test_object_arrays_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    path = tmp_path / "model.npz"
    with pytest.raises(ClearConvError, match="objects"):
        save_arrays(path, {}, {"bad": np.array([{"a": 1}, None], dtype=object)})
    assert _listing(tmp_path) == []


@pytest.mark.parametrize(
    ("config", "arrays"),
    [
        ({"f": object()}, {}),                      # not JSON serialisable
        ({"x": float("nan")}, {}),                  # NaN is not JSON
        ({"format": "other"}, {}),                  # reserved key
        ({}, {"__config__": np.zeros(1)}),          # reserved array key
        ({}, {"": np.zeros(1)}),                    # empty key
    ],
)
def test_bad_config_or_keys_are_refused(tmp_path: Path, config: dict, arrays: dict) -> None:
    with pytest.raises(ClearConvError):
        save_arrays(tmp_path / "m.npz", config, arrays)
    assert _listing(tmp_path) == []


# ---------------------------------------------------------------- atomicity

def test_failure_during_write_leaves_original_file_and_no_temp_files(
    saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = saved.read_bytes()
    real_savez = np.savez

    def savez_then_fail(file, *args, **kwds):
        real_savez(file, *args, **kwds)       # a whole archive is already in the temp file
        file.write(b"half-written garbage")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(np, "savez", savez_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_arrays(saved, {"new": True}, {"w": np.ones((100, 100))})
    assert saved.read_bytes() == before
    assert _listing(saved.parent) == ["model.npz"]
    config, _ = load_arrays(saved)
    assert config == CONFIG


def test_failure_on_first_write_leaves_no_file_and_no_temp_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def savez_fail(file, *args, **kwds):
        file.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", savez_fail)
    with pytest.raises(KeyboardInterrupt):
        save_arrays(tmp_path / "model.npz", {}, {"w": np.ones(3)})
    assert _listing(tmp_path) == []


def test_failure_in_replace_leaves_original_file(
    saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = saved.read_bytes()

    def replace_fail(src, dst):
        raise PermissionError("simulated")

    monkeypatch.setattr(cio.os, "replace", replace_fail)
    with pytest.raises(PermissionError):
        save_arrays(saved, {}, {"w": np.ones(3)})
    assert saved.read_bytes() == before
    assert _listing(saved.parent) == ["model.npz"]


# ---------------------------------------------------------------- damaged or foreign files

def test_missing_file_raises_file_not_found_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_arrays(path)


@pytest.mark.parametrize("keep", [0, 10, 100, 0.5, -30, -1])
def test_truncated_file_is_refused(saved: Path, keep: float) -> None:
    data = saved.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep
    saved.write_bytes(data[:cut])
    _assert_refused(saved)


def test_random_bytes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "random.npz"
    path.write_bytes(np.random.default_rng(1).bytes(4096))
    _assert_refused(path, "not an .npz archive")


def test_non_zip_file_is_not_called_pickled(tmp_path: Path) -> None:
    # issue 12: a text file given as a model was reported as "contains pickled data"
    path = tmp_path / "notes.npz"
    path.write_bytes(b"hello, this is not a model\n" * 10)
    with pytest.raises(ModelFileError) as info:
        load_arrays(path)
    assert "not an .npz archive" in str(info.value) and "pickle" not in str(info.value)


def test_corrupted_member_bytes_are_refused(saved: Path) -> None:
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as zf:
        info = zf.getinfo("dense.weight.npy")
    start = info.header_offset + 30 + len(info.filename) + 200  # inside the stored data
    data[start:start + 16] = bytes(16)
    saved.write_bytes(bytes(data))
    _assert_refused(saved, "dense.weight")


def test_zip_without_config_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plain.npz"
    with path.open("wb") as f:
        np.savez(f, w=np.ones(3))
    _assert_refused(path, "__config__")


def test_bare_npy_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "array.npy"
    np.save(path, np.ones(3))
    _assert_refused(path, ".npy")


def test_npy_holding_a_pickled_object_array_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pickled.npy"
    np.save(path, np.array([{"evil": 1}, None], dtype=object), allow_pickle=True)
    _assert_refused(path)


def test_npz_with_a_pickled_member_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pickled.npz"
    config = np.frombuffer(
        json.dumps({"format": "clearconv-model", "version": 1}).encode(), dtype=np.uint8
    )
    with path.open("wb") as f:
        np.savez(f, __config__=config, evil=np.array([object()], dtype=object))
    _assert_refused(path, "evil")


def test_plain_pickle_is_refused(tmp_path: Path) -> None:
    import pickle

    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"w": np.ones(3)}))
    _assert_refused(path)


def test_zip_member_that_is_not_npy_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.npz"
    buf = io.BytesIO()
    np.savez(buf, __config__=np.frombuffer(
        json.dumps({"format": "clearconv-model", "version": 1}).encode(), dtype=np.uint8))
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr("readme.txt", "hello")
    path.write_bytes(buf.getvalue())
    _assert_refused(path, "readme.txt")


def _write_with_config(path: Path, config_bytes: bytes | np.ndarray) -> None:
    raw = (np.frombuffer(config_bytes, dtype=np.uint8)
           if isinstance(config_bytes, bytes) else config_bytes)
    with path.open("wb") as f:
        np.savez(f, __config__=raw, w=np.ones(2))


@pytest.mark.parametrize(
    ("config_bytes", "fragment"),
    [
        (json.dumps({"format": "keras", "version": 1}).encode(), "format"),
        (json.dumps({"version": 1}).encode(), "format"),
        (json.dumps({"format": "clearconv-model", "version": 99}).encode(), "version"),
        (json.dumps({"format": "clearconv-model"}).encode(), "version"),
        (b"{not json", "JSON"),
        (b"\xff\xfe\x00", "JSON"),
        (json.dumps([1, 2]).encode(), "JSON object"),
        (np.zeros(4, dtype=np.float32), "uint8"),
    ],
)
def test_bad_config_entry_is_refused(tmp_path: Path, config_bytes, fragment: str) -> None:
    path = tmp_path / "model.npz"
    _write_with_config(path, config_bytes)
    _assert_refused(path, fragment)


def test_refusals_are_value_errors_for_callers_that_catch_broadly(tmp_path: Path) -> None:
    path = tmp_path / "junk.npz"
    path.write_bytes(b"junk")
    with pytest.raises(ValueError):
        load_arrays(path)
