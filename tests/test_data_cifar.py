"""Tests of clearconv.data.cifar: safe reading of generated CIFAR-10 batches."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clearconv.data import (
    CIFAR10_CLASSES,
    DatasetError,
    DatasetNotFoundError,
    load_cifar10,
    read_cifar_batch,
)

BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def batch_dict(n: int, seed: int) -> dict[bytes, Any]:
    """A fake batch with the keys and types of the original pickles."""
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"testing batch 1 of 1",
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


def make_batches(folder: Path, n: int = 4) -> dict[str, dict[bytes, Any]]:
    folder.mkdir(parents=True, exist_ok=True)
    batches = {}
    for i, name in enumerate(BATCHES):
        batches[name] = batch_dict(n + i, seed=i)
        (folder / name).write_bytes(pickle.dumps(batches[name], protocol=2))
    meta = {b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return batches


class Gadget:
    """Unpickling this runs ``os.system("touch <marker>")``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (f"touch {self.marker}",)


def test_read_batch_layout_is_nchw(tmp_path: Path) -> None:
    batch = batch_dict(3, seed=0)
    path = tmp_path / "b"
    path.write_bytes(pickle.dumps(batch, protocol=2))
    images, labels = read_cifar_batch(path)
    assert images.shape == (3, 3, 32, 32) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and labels.tolist() == batch[b"labels"]
    # Row layout: 1024 red, 1024 green, 1024 blue, each 32x32 row-major.
    row = batch[b"data"][1]
    assert images[1, 0, 0, 1] == row[1]
    assert images[1, 1, 2, 3] == row[1024 + 2 * 32 + 3]
    assert images[1, 2, 31, 31] == row[3071]
    images[0] = 0  # writable


@pytest.mark.parametrize("protocol", [2, 4])
def test_load_cifar10_from_folder(tmp_path: Path, protocol: int) -> None:
    batches = make_batches(tmp_path / "cifar-10-batches-py")
    if protocol != 2:
        for name in BATCHES:
            (tmp_path / "cifar-10-batches-py" / name).write_bytes(
                pickle.dumps(batches[name], protocol=protocol))
    x, y = load_cifar10(tmp_path, "train")
    assert x.shape == (4 + 5 + 6 + 7 + 8, 3, 32, 32) and y.shape == (30,)
    expected = np.concatenate([batches[n][b"data"] for n in BATCHES[:5]])
    np.testing.assert_array_equal(x.reshape(30, -1), expected)
    x, y = load_cifar10(tmp_path / "cifar-10-batches-py", "test")
    assert x.shape == (9, 3, 32, 32)
    assert y.tolist() == batches["test_batch"][b"labels"]


def test_load_cifar10_from_tar_gz_without_extracting(tmp_path: Path) -> None:
    batches = make_batches(tmp_path / "src" / "cifar-10-batches-py")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    root = tmp_path / "dl"
    root.mkdir()
    archive.rename(root / archive.name)
    x, y = load_cifar10(root, "test")
    assert y.tolist() == batches["test_batch"][b"labels"]
    x, y = load_cifar10(root / archive.name, "train")
    assert x.shape == (30, 3, 32, 32)
    assert sorted(p.name for p in root.iterdir()) == [archive.name]


def test_archive_missing_a_batch(tmp_path: Path) -> None:
    make_batches(tmp_path / "src" / "cifar-10-batches-py")
    (tmp_path / "src" / "cifar-10-batches-py" / "data_batch_3").unlink()
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    with pytest.raises(DatasetError, match="missing cifar-10-batches-py/data_batch_3"):
        load_cifar10(archive, "train")


def test_os_system_gadget_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    batch = batch_dict(2, seed=0)
    batch[b"labels"] = Gadget(marker)
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DatasetError, match=r"refusing to load the global (posix|os|nt)\.system"):
        read_cifar_batch(path)
    assert not marker.exists()
    # The same pickle through the plain unpickler does run it: the test is meaningful.
    pickle.loads(path.read_bytes())
    assert marker.exists()


@pytest.mark.parametrize("payload", [
    pickle.dumps(eval, protocol=2),          # builtins.eval
    pickle.dumps(np.load, protocol=2),       # a numpy function other than the allowed ones
    pickle.dumps(np.array([1, 2], dtype=object), protocol=2),   # object arrays need builtins
    b"cos\nsystem\n(S'true'\ntR.",            # protocol 0 GLOBAL + REDUCE
])
def test_other_globals_are_refused(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "evil"
    path.write_bytes(payload)
    with pytest.raises(DatasetError, match="refusing"):
        read_cifar_batch(path)


def test_codecs_encode_is_limited_to_latin1() -> None:
    payload = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x04\x00\x00\x00zlib\x86R."
    with pytest.raises(DatasetError, match="encoding 'zlib'"):
        read_cifar_batch(io.BytesIO(payload), name="p")


@pytest.mark.parametrize("mutate, message", [
    (lambda b: [b], "expected a dict"),
    (lambda b: {**b, b"data": b[b"data"].astype(np.int16)}, "uint8 array"),
    (lambda b: {**b, b"data": b[b"data"][:, :100]}, r"shape \(N, 3072\)"),
    (lambda b: {k: v for k, v in b.items() if k != b"data"}, "b'data'"),
    (lambda b: {**b, b"labels": b[b"labels"][:-1]}, "3 images but 2 labels"),
    (lambda b: {**b, b"labels": [0, 1, 10]}, r"labels must be in 0\.\.9"),
    (lambda b: {**b, b"labels": [0, 1, "2"]}, "list of ints"),
    (lambda b: {**b, b"labels": np.array([0, 1, 2])}, "list of ints"),
])
def test_wrong_contents_are_refused(tmp_path: Path, mutate: Any, message: str) -> None:
    path = tmp_path / "b"
    path.write_bytes(pickle.dumps(mutate(batch_dict(3, seed=0)), protocol=2))
    with pytest.raises(DatasetError, match=message):
        read_cifar_batch(path)


@pytest.mark.parametrize("data", [b"", b"not a pickle", b"\x80\x02}q\x00(X"])
def test_garbage_and_truncated_pickles(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "b"
    path.write_bytes(data)
    with pytest.raises(DatasetError, match="not a readable CIFAR batch") as info:
        read_cifar_batch(path)
    assert str(path) in str(info.value)


def test_truncated_real_sized_batch(tmp_path: Path) -> None:
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps(batch_dict(50, seed=1), protocol=2)[:-5000])
    with pytest.raises(DatasetError, match="not a readable CIFAR batch"):
        read_cifar_batch(path)


def test_missing_dataset_message(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_cifar10(tmp_path, "train")
    assert "cifar-10-python.tar.gz" in str(info.value)
    assert f"Put the files in {tmp_path}, or use --download" in str(info.value)


def test_missing_batch_in_folder(tmp_path: Path) -> None:
    make_batches(tmp_path)
    (tmp_path / "data_batch_5").unlink()
    with pytest.raises(DatasetNotFoundError, match="data_batch_5"):
        load_cifar10(tmp_path, "train")


def test_bad_split(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="split"):
        load_cifar10(tmp_path, "val")


def test_class_names() -> None:
    assert len(CIFAR10_CLASSES) == 10
    assert CIFAR10_CLASSES[0] == "airplane" and CIFAR10_CLASSES[9] == "truck"
