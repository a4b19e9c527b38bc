"""IDX files (MNIST, Fashion-MNIST, KMNIST): a strict reader and the dataset loader.

The IDX format (LeCun et al., the MNIST distribution) is a big-endian header followed
by the raw array, row-major:

* a 4-byte magic number ``0x00 0x00 <dtype code> <ndim>``, for example ``0x00000803``
  (uint8, 3 dimensions: images) and ``0x00000801`` (uint8, 1 dimension: labels);
* ``ndim`` dimension sizes, each a big-endian uint32;
* exactly ``prod(dims) * itemsize`` bytes of data, nothing after them.

:func:`read_idx` checks every one of these facts and raises :class:`DatasetError`, with
the path and the byte counts in the message, on a truncated, over-long, corrupt or
foreign file: it never lets a bad file reach a ``reshape``. A gzip file is recognised
by its content (the bytes ``1f 8b``), whatever its name, and is decompressed as a
stream with a cap, so an absurd header allocates nothing.

Python API::

    from clearconv.data import load_mnist, read_idx, MNIST_CLASSES, FASHION_MNIST_CLASSES
    x, y = load_mnist("path/to/mnist", split="train")    # uint8 (60000, 1, 28, 28), int64
    x, y = load_mnist("path/to/fashion", split="test", kind="fashion-mnist")
    names = idx_classes("fashion-mnist")                  # ("T-shirt/top", "Trouser", ...)
    raw = read_idx("t10k-labels-idx1-ubyte.gz")           # any IDX file -> ndarray

This module also defines the errors of the dataset readers, :class:`DatasetError` and
:class:`DatasetNotFoundError`, re-exported from :mod:`clearconv.data`.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import Union

import numpy as np

from ..errors import DatasetError, DatasetNotFoundError
from ..io.files import open_regular
from .cache import data_home

PathLike = Union[str, "os.PathLike[str]"]




#: IDX type code -> NumPy dtype of the stored (big-endian) data.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
#: the largest data payload :func:`read_idx` accepts by default (2 GiB).
IDX_MAX_BYTES = 2**31
#: the most dimensions an IDX file may announce (MNIST's have 1 and 3)
IDX_MAX_NDIM = 8
#: the largest image (H x W pixels) :func:`load_mnist` accepts: MNIST's are 28 x 28,
#: and a model's input grows with it (a 4096 x 4096 image would need a model of GiBs)
IDX_MAX_IMAGE_PIXELS = 512 * 512
#: deflate cannot compress better than about 1032:1; a gzip file claiming more data
#: than ``_GZIP_MAX_RATIO * compressed size`` is refused before reading.
_GZIP_MAX_RATIO = 1100
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20

#: class names, index = label.
MNIST_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
#: Kuzushiji-MNIST (Clanuwat et al. 2018): the romanised hiragana of each class.
KMNIST_CLASSES: tuple[str, ...] = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
_IDX_CLASSES = {
    "mnist": MNIST_CLASSES,
    "fashion-mnist": FASHION_MNIST_CLASSES,
    "kmnist": KMNIST_CLASSES,
}
#: the dataset kinds :func:`load_mnist` knows; all share the MNIST file names.
IDX_KINDS: tuple[str, ...] = tuple(_IDX_CLASSES)
_SPLIT_PREFIX = {"train": "train", "test": "t10k"}


def idx_classes(kind: str) -> tuple[str, ...]:
    """Class names of an IDX dataset (``"mnist"``, ``"fashion-mnist"``, ``"kmnist"``)."""
    if kind not in _IDX_CLASSES:
        raise DatasetError(f"kind must be one of {IDX_KINDS}, got {kind!r}")
    return _IDX_CLASSES[kind]


def _parse_header(path: str, read) -> tuple[np.dtype, tuple[int, ...], int]:
    """Read and check the magic and the dims; return (dtype, dims, header bytes)."""
    magic = read(4)
    if len(magic) < 4:
        raise DatasetError(
            f"{path}: not an IDX file: {len(magic)} bytes, too short for the 4-byte magic number"
        )
    if magic[0] != 0 or magic[1] != 0 or magic[2] not in IDX_DTYPES or magic[3] == 0:
        raise DatasetError(
            f"{path}: not an IDX file: magic number 0x{magic.hex()}, expected "
            "0x0000<type><ndim> with type in "
            f"{{{', '.join(f'{c:02x}' for c in IDX_DTYPES)}}} and ndim >= 1 "
            "(0x00000803 for images, 0x00000801 for labels)"
        )
    dtype, ndim = IDX_DTYPES[magic[2]], magic[3]
    if ndim > IDX_MAX_NDIM:
        raise DatasetError(f"{path}: refusing an IDX header with {ndim} dimensions "
                           f"(magic 0x{magic.hex()}; at most {IDX_MAX_NDIM})")
    raw_dims = read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DatasetError(
            f"{path}: truncated IDX header: the magic 0x{magic.hex()} announces {ndim} "
            f"dimensions ({4 * ndim} bytes), the file holds {len(raw_dims)} after the magic"
        )
    dims = struct.unpack(f">{ndim}I", raw_dims)
    return dtype, dims, 4 + 4 * ndim


def _describe(dims: tuple[int, ...], dtype: np.dtype) -> str:
    return f"dims {'x'.join(map(str, dims))}, {dtype.name}"


def read_idx(path: PathLike, max_bytes: int = IDX_MAX_BYTES) -> np.ndarray:
    """Read one IDX file, gzip-compressed or not, strictly.

    Args:
        path: the file. Compression is recognised by content (gzip magic ``1f 8b``),
            so ``train-images-idx3-ubyte.gz`` and ``train-images.idx3-ubyte`` both work.
        max_bytes: refuse a header that announces more data bytes than this, before
            allocating anything (default 2**31); a header of more than
            :data:`IDX_MAX_NDIM` dimensions is refused too. This is the reader's size
            budget: nothing larger is ever allocated, and a gzip file is inflated in
            1 MiB chunks up to it.

    Returns:
        ndarray of shape ``dims`` from the header, in native byte order, with the dtype
        of the type code (uint8 for MNIST), writable and owned by the caller.

    Raises:
        DatasetNotFoundError: ``path`` does not exist.
        DatasetError: a wrong magic number, a truncated header, an absurd size, a data
            payload shorter or longer than ``prod(dims) * itemsize`` (the message names
            both byte counts), or a corrupt gzip stream.
    """
    path = os.fspath(path)
    try:
        with open_regular(path, DatasetError, "dataset file") as f:
            file_size = os.fstat(f.fileno()).st_size
            compressed = f.read(2) == _GZIP_MAGIC
            f.seek(0)
            if compressed:
                return _read_idx_gzip(path, f, file_size, max_bytes)
            return _read_idx_raw(path, f, file_size, max_bytes)
    except FileNotFoundError as exc:
        raise DatasetNotFoundError(f"{path}: no such file") from exc


def _check_size(path: str, dtype: np.dtype, dims: tuple[int, ...], max_bytes: int) -> int:
    expected = math.prod(dims) * dtype.itemsize
    if expected > max_bytes:
        raise DatasetError(
            f"{path}: refusing an absurd IDX header ({_describe(dims, dtype)}): it announces "
            f"{expected} bytes of data, more than the limit of {max_bytes}"
        )
    if math.prod(d for d in dims if d) * dtype.itemsize > max_bytes:  # NumPy: "too big"
        raise DatasetError(
            f"{path}: refusing an absurd IDX header ({_describe(dims, dtype)}): an empty "
            f"array whose other dims announce more than the limit of {max_bytes} bytes"
        )
    return expected


def _to_array(buffer: bytearray, dtype: np.dtype, dims: tuple[int, ...]) -> np.ndarray:
    array = np.frombuffer(buffer, dtype=dtype).reshape(dims)
    if dtype.itemsize > 1:
        array = array.astype(dtype.newbyteorder("="))
    return array


def _read_idx_raw(path: str, f, file_size: int, max_bytes: int) -> np.ndarray:
    dtype, dims, header = _parse_header(path, f.read)
    expected = _check_size(path, dtype, dims, max_bytes)
    actual = file_size - header
    if actual != expected:
        kind = "truncated" if actual < expected else "over-long"
        raise DatasetError(
            f"{path}: {kind} IDX file: the header ({_describe(dims, dtype)}) announces "
            f"{expected} bytes of data, the file holds {actual} after its {header}-byte header"
        )
    buffer = bytearray(expected)
    if f.readinto(buffer) != expected:
        raise DatasetError(f"{path}: the file changed size while it was being read")
    return _to_array(buffer, dtype, dims)


def _read_idx_gzip(path: str, f, file_size: int, max_bytes: int) -> np.ndarray:
    try:
        with gzip.GzipFile(fileobj=f, mode="rb") as g:
            dtype, dims, header = _parse_header(path, g.read)
            expected = _check_size(path, dtype, dims, max_bytes)
            if expected > _GZIP_MAX_RATIO * file_size + _CHUNK:
                raise DatasetError(
                    f"{path}: refusing an absurd IDX header ({_describe(dims, dtype)}): it "
                    f"announces {expected} bytes of data, which a gzip file of {file_size} "
                    "bytes cannot hold"
                )
            # Read at most expected + 1 bytes: one byte too many proves an over-long file.
            buffer = bytearray()
            while len(buffer) <= expected:
                chunk = g.read(min(_CHUNK, expected + 1 - len(buffer)))
                if not chunk:
                    break
                buffer += chunk
    except (OSError, EOFError, zlib.error) as exc:
        # gzip.BadGzipFile is an OSError; EOFError: the stream ends before its end marker.
        raise DatasetError(f"{path}: corrupt or truncated gzip stream: {exc}") from exc
    if len(buffer) < expected:
        raise DatasetError(
            f"{path}: truncated IDX file: the header ({_describe(dims, dtype)}) announces "
            f"{expected} bytes of data, the decompressed file holds {len(buffer)} after its "
            f"{header}-byte header"
        )
    if len(buffer) > expected:
        raise DatasetError(
            f"{path}: over-long IDX file: the header ({_describe(dims, dtype)}) announces "
            f"{expected} bytes of data, the decompressed file holds more after its "
            f"{header}-byte header"
        )
    return _to_array(buffer, dtype, dims)


def _images_budget(path: Path) -> int:
    """Check an images file's header (3 dims, images of at most IDX_MAX_IMAGE_PIXELS)
    before any data is read; return the data bytes it may hold."""
    with open_regular(path, DatasetError, "dataset file") as f:
        stream = gzip.GzipFile(fileobj=f, mode="rb") if f.read(2) == _GZIP_MAGIC else None
        f.seek(0)
        try:
            dtype, dims, _ = _parse_header(str(path), (stream or f).read)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetError(f"{path}: corrupt or truncated gzip stream: {exc}") from exc
    if len(dims) == 3 and dims[1] * dims[2] > IDX_MAX_IMAGE_PIXELS:
        raise DatasetError(f"{path}: images of {dims[1]}x{dims[2]} pixels are more than "
                           f"IDX_MAX_IMAGE_PIXELS = {IDX_MAX_IMAGE_PIXELS} (MNIST's are "
                           "28x28)")
    return IDX_MAX_BYTES


def _idx_candidates(prefix: str, what: str, ndim: int) -> tuple[str, ...]:
    """The file names tried, in order: the original .gz, then the common variants."""
    stem_dash, stem_dot = f"{prefix}-{what}-idx{ndim}-ubyte", f"{prefix}-{what}.idx{ndim}-ubyte"
    return (f"{stem_dash}.gz", stem_dash, stem_dot, f"{stem_dot}.gz")


def _find_idx_folder(root: Path, kind: str, names: tuple[str, ...]) -> Path:
    """``root`` itself, or ``root/<kind>`` when the files are there and not in root."""
    if not any((root / n).is_file() for n in names) and (root / kind).is_dir():
        return root / kind
    return root


def load_mnist(root: PathLike | None = None, split: str = "train",
               kind: str = "mnist") -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST, Fashion-MNIST or KMNIST from the original IDX files in a folder.

    Args:
        root: the folder holding the four files (``train-images-idx3-ubyte.gz``,
            ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``,
            ``t10k-labels-idx1-ubyte.gz``), or a folder with a ``<kind>/`` sub-folder
            holding them. The uncompressed names (``train-images-idx3-ubyte``,
            ``train-images.idx3-ubyte``) work too. None: the download cache,
            :func:`clearconv.data.data_home` / ``kind``.
        split: ``"train"`` (60000 samples) or ``"test"`` (10000, the ``t10k`` files).
        kind: ``"mnist"``, ``"fashion-mnist"`` or ``"kmnist"``: the class names
            (:func:`idx_classes`) and the sub-folder looked for; the format is the same.

    Returns:
        images: ndarray of shape ``(N, 1, H, W)`` (NCHW, 28x28 for these datasets),
            uint8, 0 = background, 255 = full ink; use ``to_float(images)`` for [0, 1].
        labels: ndarray of shape ``(N,)``, int64, values 0..9, names in
            ``idx_classes(kind)``.

    Raises:
        DatasetNotFoundError: a file is missing; the message lists the names expected.
        DatasetError: a corrupt file (see :func:`read_idx`), images that are not
            ``(N, H, W)`` uint8, labels that are not ``(N,)`` uint8 in 0..9, or image
            and label counts that differ.
    """
    if split not in _SPLIT_PREFIX:
        raise DatasetError(f"split must be one of {tuple(_SPLIT_PREFIX)}, got {split!r}")
    idx_classes(kind)
    if root is None:
        root = data_home() / kind
    prefix = _SPLIT_PREFIX[split]
    images_names = _idx_candidates(prefix, "images", 3)
    labels_names = _idx_candidates(prefix, "labels", 1)
    folder = _find_idx_folder(Path(root), kind, images_names + labels_names)
    images_path = next((folder / n for n in images_names if (folder / n).is_file()), None)
    labels_path = next((folder / n for n in labels_names if (folder / n).is_file()), None)
    if images_path is None or labels_path is None:
        missing = [names[0] for names, found in ((images_names, images_path),
                                                 (labels_names, labels_path)) if found is None]
        raise DatasetNotFoundError(
            f"{kind} {split} files not found in {folder}: missing {' and '.join(missing)} "
            f"(or the uncompressed {' / '.join(n for n in images_names[1:3])}). "
            f"Put the files in {folder}, or use --download."
        )
    images = read_idx(images_path, max_bytes=_images_budget(images_path))
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DatasetError(
            f"{images_path}: expected uint8 images of shape (N, H, W) (magic 0x00000803), "
            f"got {images.dtype} of shape {images.shape}"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DatasetError(
            f"{labels_path}: expected uint8 labels of shape (N,) (magic 0x00000801), "
            f"got {labels.dtype} of shape {labels.shape}"
        )
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
            f"{labels.shape[0]} labels"
        )
    n_classes = len(idx_classes(kind))
    if labels.size and int(labels.max()) >= n_classes:
        raise DatasetError(
            f"{labels_path}: label {int(labels.max())} out of range 0..{n_classes - 1}"
        )
    return images[:, None, :, :], labels.astype(np.int64)
