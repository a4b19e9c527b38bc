"""Tests of clearconv.data.idx: the strict IDX reader and load_mnist, on generated files."""

from __future__ import annotations

import gzip
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from clearconv.data import (
    FASHION_MNIST_CLASSES,
    KMNIST_CLASSES,
    MNIST_CLASSES,
    DatasetError,
    DatasetNotFoundError,
    idx_classes,
    load_mnist,
    read_idx,
)
from clearconv.errors import ClearConvError

_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
          np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of ``array``: magic, big-endian dims, big-endian data."""
    code = _CODES[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path: Path, data: bytes, compress: bool) -> Path:
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def make_mnist_folder(folder: Path, n_train: int = 12, n_test: int = 5, compress: bool = True,
                      dotted: bool = False, seed: int = 0) -> dict[str, np.ndarray]:
    """Write the four MNIST files of random data; return the arrays written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        for what, ndim, array in (("images", 3, images), ("labels", 1, labels)):
            sep = "." if dotted else "-"
            name = f"{prefix}-{what}{sep}idx{ndim}-ubyte" + (".gz" if compress else "")
            write(folder / name, idx_bytes(array), compress)
            arrays[f"{prefix}-{what}"] = array
    return arrays


# ---------------------------------------------------------------- read_idx: good files

@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", list(_CODES))
def test_read_idx_round_trips_every_type_code(tmp_path: Path, compress: bool,
                                              dtype: np.dtype) -> None:
    rng = np.random.default_rng(1)
    array = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    path = write(tmp_path / "a.idx", idx_bytes(array), compress)
    got = read_idx(path)
    assert got.dtype == dtype and got.dtype.isnative
    assert got.shape == (3, 4, 5)
    np.testing.assert_array_equal(got, array)
    got[0] = 0  # writable, owned by the caller


def test_read_idx_recognises_gzip_by_content_not_name(tmp_path: Path) -> None:
    labels = np.arange(7, dtype=np.uint8)
    gz_named_raw = write(tmp_path / "raw.gz", idx_bytes(labels), compress=False)
    raw_named_gz = write(tmp_path / "labels-idx1-ubyte", idx_bytes(labels), compress=True)
    np.testing.assert_array_equal(read_idx(gz_named_raw), labels)
    np.testing.assert_array_equal(read_idx(raw_named_gz), labels)


def test_read_idx_empty_array(tmp_path: Path) -> None:
    path = write(tmp_path / "e", idx_bytes(np.zeros((0, 28, 28), np.uint8)), compress=True)
    assert read_idx(path).shape == (0, 28, 28)


# ---------------------------------------------------------------- read_idx: bad files

@pytest.mark.parametrize("compress", [False, True])
def test_truncated_payload_names_path_and_byte_counts(tmp_path: Path, compress: bool) -> None:
    data = idx_bytes(np.zeros((4, 28, 28), np.uint8))
    path = write(tmp_path / "short", data[:-100], compress)
    with pytest.raises(DatasetError, match="truncated") as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message and "3136" in message and "3036" in message
    assert "dims 4x28x28" in message and "reshape" not in message


@pytest.mark.parametrize("compress", [False, True])
def test_over_long_payload_is_refused(tmp_path: Path, compress: bool) -> None:
    data = idx_bytes(np.zeros((2, 3), np.uint8)) + b"\x00junk"
    path = write(tmp_path / "long", data, compress)
    with pytest.raises(DatasetError, match="over-long") as info:
        read_idx(path)
    assert str(path) in str(info.value) and "6 bytes" in str(info.value)


@pytest.mark.parametrize("magic", [b"\x00\x00\x08\x00", b"\x00\x00\x07\x01",
                                   b"\x01\x00\x08\x01", b"PK\x03\x04", b"\x00\x00\x08\x03"[::-1]])
@pytest.mark.parametrize("compress", [False, True])
def test_wrong_magic_is_refused(tmp_path: Path, magic: bytes, compress: bool) -> None:
    path = write(tmp_path / "m", magic + b"\x00" * 64, compress)
    with pytest.raises(DatasetError, match="not an IDX file: magic number") as info:
        read_idx(path)
    assert str(path) in str(info.value) and "0x00000803" in str(info.value)


@pytest.mark.parametrize("data", [b"", b"\x00\x00", b"\x00\x00\x08\x03\x00\x00\x00\x01"])
def test_too_short_header_is_refused(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path / "h", data, compress=False)
    with pytest.raises(DatasetError, match="too short|truncated IDX header"):
        read_idx(path)


@pytest.mark.parametrize("compress", [False, True])
def test_absurd_header_is_refused_at_once(tmp_path: Path, compress: bool) -> None:
    header = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2**31, 2**16, 2**16)
    path = write(tmp_path / "huge", header + b"\x00" * 100, compress)
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match="absurd") as info:
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"{peak} bytes allocated before refusing"   # at once: nothing read
    assert str(2**63) in str(info.value)


def test_gzip_claiming_more_than_it_can_hold_is_refused(tmp_path: Path) -> None:
    # 1.9 GB announced (under the 2**31 cap) in a gzip file of a few dozen bytes.
    header = bytes([0, 0, 0x08, 1]) + struct.pack(">I", 1_900_000_000)
    path = write(tmp_path / "bomb.gz", header, compress=True)
    with pytest.raises(DatasetError, match="cannot hold"):
        read_idx(path)


def test_max_bytes_caps_the_payload(tmp_path: Path) -> None:
    path = write(tmp_path / "a", idx_bytes(np.zeros(100, np.uint8)), compress=False)
    with pytest.raises(DatasetError, match="absurd"):
        read_idx(path, max_bytes=99)
    assert read_idx(path, max_bytes=100).shape == (100,)


def test_corrupt_gzip_stream(tmp_path: Path) -> None:
    compressed = bytearray(gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8))))
    compressed[-6] ^= 0xFF  # the CRC32 trailer
    path = tmp_path / "crc.gz"
    path.write_bytes(bytes(compressed))
    with pytest.raises(DatasetError, match="corrupt or truncated gzip"):
        read_idx(path)


def test_truncated_gzip_stream(tmp_path: Path) -> None:
    data = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)
    compressed = gzip.compress(idx_bytes(data))
    path = tmp_path / "cut.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(DatasetError, match=r"gzip|truncated") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_missing_file_is_a_file_not_found_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        read_idx(tmp_path / "nope.gz")
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, ClearConvError) and isinstance(info.value, ValueError)


# ---------------------------------------------------------------- load_mnist

@pytest.mark.parametrize("compress, dotted", [(True, False), (False, False), (False, True)])
def test_load_mnist_reads_both_splits_and_name_variants(tmp_path: Path, compress: bool,
                                                        dotted: bool) -> None:
    arrays = make_mnist_folder(tmp_path, compress=compress, dotted=dotted)
    x, y = load_mnist(tmp_path, "train")
    assert x.shape == (12, 1, 28, 28) and x.dtype == np.uint8
    assert y.shape == (12,) and y.dtype == np.int64
    np.testing.assert_array_equal(x[:, 0], arrays["train-images"])
    np.testing.assert_array_equal(y, arrays["train-labels"])
    x, y = load_mnist(tmp_path, "test")
    assert x.shape == (5, 1, 28, 28)
    np.testing.assert_array_equal(y, arrays["t10k-labels"])


def test_load_mnist_finds_the_kind_sub_folder(tmp_path: Path) -> None:
    make_mnist_folder(tmp_path / "fashion-mnist", n_train=3)
    x, _ = load_mnist(tmp_path, "train", kind="fashion-mnist")
    assert x.shape == (3, 1, 28, 28)


def test_load_mnist_default_root_is_the_cache(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLEARCONV_DATA", str(tmp_path))
    make_mnist_folder(tmp_path / "kmnist", n_test=4)
    x, _ = load_mnist(split="test", kind="kmnist")
    assert x.shape == (4, 1, 28, 28)


def test_load_mnist_missing_files_lists_expected_names(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_mnist(tmp_path, "test")
    message = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in message and "t10k-labels-idx1-ubyte.gz" in message
    assert f"Put the files in {tmp_path}, or use --download" in message


def test_load_mnist_count_mismatch(tmp_path: Path) -> None:
    make_mnist_folder(tmp_path)
    write(tmp_path / "train-labels-idx1-ubyte.gz", idx_bytes(np.zeros(11, np.uint8)), True)
    with pytest.raises(DatasetError, match="12 images but .* 11 labels"):
        load_mnist(tmp_path, "train")


def test_load_mnist_swapped_files_are_refused(tmp_path: Path) -> None:
    arrays = make_mnist_folder(tmp_path)
    write(tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(arrays["train-labels"]), True)
    with pytest.raises(DatasetError, match=r"expected uint8 images of shape \(N, H, W\)"):
        load_mnist(tmp_path, "train")


def test_load_mnist_label_out_of_range(tmp_path: Path) -> None:
    make_mnist_folder(tmp_path)
    write(tmp_path / "t10k-labels-idx1-ubyte.gz",
          idx_bytes(np.array([0, 1, 2, 3, 10], np.uint8)), True)
    with pytest.raises(DatasetError, match="label 10 out of range"):
        load_mnist(tmp_path, "test")


def test_load_mnist_truncated_file_gives_the_strict_message(tmp_path: Path) -> None:
    make_mnist_folder(tmp_path, compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DatasetError, match="truncated IDX file"):
        load_mnist(tmp_path, "train")


def test_load_mnist_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="split"):
        load_mnist(tmp_path, "valid")
    with pytest.raises(DatasetError, match="kind"):
        load_mnist(tmp_path, "train", kind="emnist")


def test_class_names() -> None:
    assert idx_classes("mnist") == MNIST_CLASSES == tuple("0123456789")
    assert idx_classes("fashion-mnist") == FASHION_MNIST_CLASSES
    assert FASHION_MNIST_CLASSES[0] == "T-shirt/top" and FASHION_MNIST_CLASSES[9] == "Ankle boot"
    assert idx_classes("kmnist") == KMNIST_CLASSES and len(KMNIST_CLASSES) == 10
