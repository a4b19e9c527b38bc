"""The embedded default dataset, float conversion and minibatch indices.

The default dataset is the UCI ML hand-written digits set (8x8 images, values 0..16,
1797 samples, classes 0..9) as distributed with scikit-learn, stored inside the package
as ``digits.npz`` (see ``LICENSE-digits.txt``: CC BY 4.0, Alpaydin & Kaynak 1998). It
needs no download and no scikit-learn; ``tools/make_embedded_digits.py`` made it.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from importlib import resources

import numpy as np

from ..errors import ClearConvError

#: class names of the digits dataset, index = label.
DIGITS_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
#: the largest pixel value of the digits images (a count of "on" pixels in a 4x4 block).
DIGITS_MAX_VALUE = 16

_DIGITS_FILE = "digits.npz"
_SPLITS = ("all", "train", "test")
_MODES = ("scale", "standardize")


@lru_cache(maxsize=1)
def _read_digits() -> tuple[np.ndarray, np.ndarray]:
    """Read the packaged npz once; the arrays are made read-only and shared."""
    source = resources.files(__package__) / _DIGITS_FILE
    with source.open("rb") as f, np.load(f, allow_pickle=False) as npz:
        images = np.array(npz["images"], dtype=np.uint8)
        labels = np.array(npz["labels"], dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _stratified_test_mask(labels: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of shape ``(N,)``, True for the test samples.

    Each class ``c`` with ``n_c`` samples sends ``floor(n_c * test_fraction + 0.5)`` of
    them, drawn without replacement by ``np.random.default_rng(seed)``, to the test
    part, so both parts keep the class proportions of the whole set.
    """
    rng = np.random.default_rng(seed)
    mask = np.zeros(labels.shape[0], dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n_test = int(np.floor(members.size * test_fraction + 0.5))
        mask[rng.permutation(members)[:n_test]] = True
    return mask


def load_digits(split: str = "all", test_fraction: float = 0.2,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Load the embedded 8x8 hand-written digits (UCI, as shipped by scikit-learn).

    Args:
        split: ``"all"`` (1797 samples), ``"train"`` or ``"test"``.
        test_fraction: share of each class put in the test part, in ``(0, 1)``.
        seed: seed of the stratified split; the same ``(test_fraction, seed)`` always
            gives the same split, and ``"train"`` and ``"test"`` never overlap.

    Returns:
        images: ndarray of shape ``(N, 1, 8, 8)`` (NCHW), uint8, values 0..16
            (:data:`DIGITS_MAX_VALUE`); use ``to_float(images, max_value=16)``.
        labels: ndarray of shape ``(N,)``, int64, values 0..9
            (names in :data:`DIGITS_CLASSES`).

    Samples keep the order of the file. Class counts of the whole set are
    ``[178, 182, 177, 183, 181, 182, 181, 179, 174, 180]``.

    >>> x, y = load_digits("train")
    >>> x.shape, x.dtype, y.dtype
    ((1438, 1, 8, 8), dtype('uint8'), dtype('int64'))
    """
    if split not in _SPLITS:
        raise ClearConvError(f"split must be one of {_SPLITS}, got {split!r}")
    if isinstance(test_fraction, bool) or not 0.0 < float(test_fraction) < 1.0:
        raise ClearConvError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    images, labels = _read_digits()
    if split == "all":
        return images.copy(), labels.copy()
    test = _stratified_test_mask(labels, float(test_fraction), seed)
    keep = test if split == "test" else ~test
    return images[keep], labels[keep]


def to_float(images: np.ndarray, mode: str = "scale",
             max_value: float | None = None) -> np.ndarray:
    """Convert integer images to float32 for training.

    Args:
        images: ndarray of any shape, e.g. ``(N, C, H, W)``.
        mode: ``"scale"``: ``x / max_value``, into ``[0, 1]`` for values in
            ``0..max_value``; ``"standardize"``: ``(x - mean) / std`` with the mean and
            standard deviation of ``images`` itself (one scalar each; a constant array
            gives zeros).
        max_value: the largest possible pixel value, for ``"scale"`` only; default
            255 (8-bit images). Pass 16 (:data:`DIGITS_MAX_VALUE`) for the digits.

    Returns:
        ndarray of the shape of ``images``, float32. Memory: the result and an 8 MiB
        float64 working chunk (never a float64 copy of the whole array).

    >>> to_float(np.array([0, 8, 16], dtype=np.uint8), max_value=16)
    array([0. , 0.5, 1. ], dtype=float32)
    """
    x = np.asarray(images)
    if x.dtype.kind not in "buif":
        raise ClearConvError(f"images must be a numeric array, got dtype {x.dtype}")
    if mode not in _MODES:
        raise ClearConvError(f"mode must be one of {_MODES}, got {mode!r}")
    if mode == "scale":
        scale = 255.0 if max_value is None else float(max_value)
        if not np.isfinite(scale) or scale <= 0:
            raise ClearConvError(f"max_value must be a positive number, got {max_value!r}")
        return _chunked_float32(x, 0.0, scale)
    if max_value is not None:
        raise ClearConvError("max_value applies to mode='scale' only")
    if x.size == 0:
        return x.astype(np.float32)
    mean = float(np.mean(x, dtype=np.float64))
    flat = x.reshape(-1)
    squares = sum(float(np.square(flat[i:i + _CHUNK].astype(np.float64) - mean).sum())
                  for i in range(0, flat.size, _CHUNK))
    std = (squares / flat.size) ** 0.5
    return _chunked_float32(x, mean, std if std > 0 else 1.0)


#: elements converted at a time: the float64 working copy stays at 8 MiB
_CHUNK = 1 << 20


def _chunked_float32(x: np.ndarray, shift: float, scale: float) -> np.ndarray:
    """``((x - shift) / scale).astype(float32)``, computed in float64 a chunk at a time
    (the values of a float64 computation, in the memory of the float32 result only)."""
    out = np.empty(x.shape, np.float32)
    src, dst = x.reshape(-1), out.reshape(-1)
    for i in range(0, src.size, _CHUNK):
        chunk = src[i:i + _CHUNK].astype(np.float64)
        if shift:
            chunk -= shift
        chunk /= scale
        dst[i:i + _CHUNK] = chunk
        del chunk  # freed before the next one is made
    return out


def iterate_minibatches(n: int, batch_size: int, shuffle: bool = True,
                        rng: np.random.Generator | None = None) -> Iterator[np.ndarray]:
    """Yield the sample indices of one epoch, ``batch_size`` at a time.

    Parameters
    ----------
    n : number of samples.
    batch_size : indices per batch, ``>= 1``; the last batch holds the
        ``n % batch_size`` left over, if any.
    shuffle : visit the samples in a random order (a permutation: every index once
        per epoch) instead of ``0..n-1``.
    rng : the generator of the permutation; a fresh ``np.random.default_rng()`` if
        None.

    Returns
    -------
    batches : an iterator of ndarrays of shape ``(b,)``, int64, with ``b = batch_size``
        except maybe the last.

    Examples
    --------
    >>> [b.tolist() for b in iterate_minibatches(5, 2, shuffle=False)]
    [[0, 1], [2, 3], [4]]
    """
    if isinstance(n, bool) or not hasattr(n, "__index__") or int(n) < 0:
        raise ClearConvError(f"n must be an int >= 0, got {n!r}")
    if isinstance(batch_size, bool) or not hasattr(batch_size, "__index__") or batch_size < 1:
        raise ClearConvError(f"batch_size must be an int >= 1, got {batch_size!r}")
    n, batch_size = int(n), int(batch_size)
    if shuffle:
        order = (np.random.default_rng() if rng is None else rng).permutation(n)
    else:
        order = np.arange(n)
    # The arguments are checked above, at the call, not at the first next().
    return _batches(order.astype(np.int64, copy=False), batch_size)


def _batches(order: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Yield consecutive slices of ``order`` of length ``batch_size`` (the last shorter)."""
    for start in range(0, order.shape[0], batch_size):
        yield order[start:start + batch_size]
