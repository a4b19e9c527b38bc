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


# --------------------------------------------------------------- issue 12: budgets

def test_ndarray_from_the_unpickler_is_refused_no_uninitialised_memory() -> None:
    # issue 12: GLOBAL numpy.ndarray + REDUCE ((2, 3072), 'B') returned np.ndarray(...):
    # uninitialised process memory as pixels, from a 61-byte file
    payload = (b"\x80\x02}(C\x04datacnumpy\nndarray\nK\x02M\x00\x0c\x86X\x01\x00\x00\x00B"
               b"\x86RC\x06labels](K\x00K\x00eu.")
    assert len(payload) < 61
    with pytest.raises(DatasetError, match="refusing to call numpy.ndarray"):
        read_cifar_batch(io.BytesIO(payload), name="p")


def test_array_state_must_hold_its_bytes() -> None:
    # issue 12: a 100 KB batch became a 307 MB array; here the BUILD state announces
    # (100000, 3072) uint8 and holds 10 bytes
    good = pickle.dumps(np.zeros(10, np.uint8), protocol=2)
    bad = good.replace(b"K\n\x85", b"J\xa0\x86\x01\x00M\x00\x0c\x86")
    assert bad != good
    with pytest.raises(DatasetError, match="needs 307200000 bytes, the pickle holds 10"):
        read_cifar_batch(io.BytesIO(bad), name="p")


def test_build_on_an_allowed_global_is_refused() -> None:
    # issue 12: BUILD on _codecs.encode set clearconv's function defaults for the process
    from clearconv.data import cifar

    before = cifar._latin1_encode.__defaults__
    payload = (b"\x80\x02c_codecs\nencode\nN}X\x0c\x00\x00\x00__defaults__"
               b"X\x05\x00\x00\x00rot13\x85s\x86b.")
    with pytest.raises(DatasetError, match="refusing BUILD on the global _codecs.encode"):
        read_cifar_batch(io.BytesIO(payload), name="p")
    assert cifar._latin1_encode.__defaults__ == before


def test_batch_file_larger_than_the_budget_is_refused_unread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clearconv.data import cifar

    monkeypatch.setattr(cifar, "MAX_BATCH_BYTES", 1000)
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps(batch_dict(1, seed=0), protocol=2))
    with pytest.raises(DatasetError, match="larger than MAX_BATCH_BYTES = 1000"):
        read_cifar_batch(path)


def _gnu_sparse_member(name: str, real_size: int) -> bytes:
    """A GNU old-style sparse header (type 'S') whose one 1-byte data block sits at
    the end of a ``real_size``-byte file: 512 header bytes + 512 data bytes."""
    info = tarfile.TarInfo(name)
    info.size, info.type = 1, tarfile.GNUTYPE_SPARSE
    header = bytearray(info.tobuf(format=tarfile.GNU_FORMAT))
    header[386:398] = b"%011o\0" % (real_size - 1)   # sparse map entry 0: offset
    header[398:410] = b"%011o\0" % 1                 # and length
    header[483:495] = b"%011o\0" % real_size         # the real size
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header) + b"x".ljust(512, b"\0")


def test_gnu_sparse_member_is_refused_before_reading(tmp_path: Path) -> None:
    # issue 12: a 330-byte .tar.gz with a GNU-sparse 6 GB member forced a 6 GB read
    import gzip

    raw = _gnu_sparse_member("cifar-10-batches-py/test_batch", 6 << 30) + b"\0" * 1024
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(gzip.compress(raw))
    assert archive.stat().st_size < 400
    with tarfile.open(archive) as tar:   # the member really reads as 6 GB
        assert tar.getmembers()[0].size == 6 << 30
    with pytest.raises(DatasetError, match="a sparse member"):
        load_cifar10(archive, "test")


def test_oversized_archive_member_is_refused(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from clearconv.data import cifar

    make_batches(tmp_path / "src" / "cifar-10-batches-py", n=3)
    archive = tmp_path / "c.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setattr(cifar, "MAX_BATCH_BYTES", 2000)
    with pytest.raises(DatasetError, match="a member of \\d+ bytes"):
        load_cifar10(archive, "test")


def test_fifo_as_batch_is_refused_not_waited_on(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    path = tmp_path / "test_batch"
    os.mkfifo(path)
    with pytest.raises(DatasetError, match="a FIFO"):
        read_cifar_batch(path)
