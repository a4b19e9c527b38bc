"""One entry point for every dataset the command line trains on.

:func:`load_dataset` returns float32 images scaled to [0, 1] (NCHW), int64 labels and
the class names, for the embedded digits, MNIST, Fashion-MNIST, KMNIST, CIFAR-10 or a
folder of images, so that ``clearconv train --dataset NAME`` is three lines of Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cifar import CIFAR10_CLASSES, load_cifar10
from .download import download as download_files
from .embedded import DIGITS_CLASSES, DIGITS_MAX_VALUE, load_digits, to_float
from .folder import load_image_folder
from .idx import DatasetError, idx_classes, load_mnist

#: dataset names ``load_dataset`` knows
DATASET_NAMES = ("digits", "mnist", "fashion-mnist", "kmnist", "cifar10", "folder")

#: the first 12 labels of the published train and test files: MNIST's and
#: Fashion-MNIST's files have the same names, sizes and shapes, and these tell them apart
FIRST_LABELS = {
    "mnist": {"train": (5, 0, 4, 1, 9, 2, 1, 3, 1, 4, 3, 5),
              "test": (7, 2, 1, 0, 4, 1, 4, 9, 5, 9, 0, 6)},
    "fashion-mnist": {"train": (9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9),
                      "test": (9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5)},
}


def check_files_match(name: str, split: str, labels: np.ndarray, where: str) -> None:
    """Refuse the published files of another dataset loaded under ``name`` (MNIST's files
    given as Fashion-MNIST, or the other way round), recognised by their first labels;
    DatasetError naming the dataset the files are and the option that loads them."""
    start = tuple(int(v) for v in labels[:12])
    for other, firsts in FIRST_LABELS.items():
        if other != name and start == firsts[split]:
            raise DatasetError(f"{where} holds the {other} files, not {name}'s (its {split} "
                               f"labels begin as {other}'s do): pass --dataset {other}, or "
                               f"--data-dir a folder with the {name} files")


@dataclass
class Dataset:
    """Train and test splits as float32 in [0, 1] (NCHW) with int64 labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    source: str   # where the data came from, in words

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]


def load_dataset(name: str = "digits", data_dir: str | None = None, download: bool = False,
                 image_size: tuple[int, int] = (32, 32), test_fraction: float = 0.2,
                 seed: int = 0) -> Dataset:
    """Load a dataset by name, scaled to [0, 1].

    Parameters
    ----------
    name : one of :data:`DATASET_NAMES`
    data_dir : folder with the original files (IDX ``.gz`` for the MNIST family, the
        CIFAR-10 python batches or their ``.tar.gz``), or the image folder for
        ``"folder"``; None uses the download cache (``$CLEARCONV_DATA`` or
        ``~/.cache/clearconv``)
    download : fetch the files first when they are missing (checksums verified)
    image_size : (H, W) for ``"folder"`` images
    test_fraction, seed : the stratified test split of ``"digits"`` and ``"folder"``
        (the other datasets come with their own test split)
    """
    if name == "digits":
        xtr, ytr = load_digits("train", test_fraction, seed)
        xte, yte = load_digits("test", test_fraction, seed)
        return Dataset(name, to_float(xtr, max_value=DIGITS_MAX_VALUE), ytr,
                       to_float(xte, max_value=DIGITS_MAX_VALUE), yte, tuple(DIGITS_CLASSES),
                       "embedded UCI 8x8 digits")
    if name in ("mnist", "fashion-mnist", "kmnist"):
        root = download_files(name, root=data_dir) if download else data_dir
        xtr, ytr = load_mnist(root, "train", name)
        xte, yte = load_mnist(root, "test", name)
        where = root or "the download cache"
        check_files_match(name, "train", ytr, str(where))
        check_files_match(name, "test", yte, str(where))
        return Dataset(name, to_float(xtr), ytr, to_float(xte), yte, tuple(idx_classes(name)),
                       f"{name} IDX files in {root or 'the download cache'}")
    if name == "cifar10":
        root = download_files(name, root=data_dir) if download else data_dir
        xtr, ytr = load_cifar10(root, "train")
        xte, yte = load_cifar10(root, "test")
        return Dataset(name, to_float(xtr), ytr, to_float(xte), yte, tuple(CIFAR10_CLASSES),
                       f"CIFAR-10 batches in {root or 'the download cache'}")
    if name == "folder":
        if data_dir is None:
            raise DatasetError("--dataset folder needs --data-dir: a folder with one "
                               "sub-folder of images per class")
        x, y, classes = load_image_folder(data_dir, size=image_size)
        counts = np.bincount(y, minlength=len(classes))
        lonely = [c for c, n in zip(classes, counts) if n < 2]
        if lonely:   # a test split needs an image of each class besides the training ones
            raise DatasetError(f"{data_dir}: class folder(s) {', '.join(map(repr, lonely))} "
                               f"hold one image: each class needs at least 2 (one for "
                               f"training, one for the test split)")
        test = _stratified_test(y, test_fraction, seed)
        xf = to_float(x)
        return Dataset(name, xf[~test], y[~test], xf[test], y[test], tuple(classes),
                       f"image folder {Path(data_dir)} ({len(classes)} classes)")
    raise DatasetError(f"unknown dataset {name!r}: use one of {', '.join(DATASET_NAMES)}")


def _stratified_test(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = int(np.floor(len(idx) * fraction + 0.5)) if len(idx) > 1 else 0
        test[rng.permutation(idx)[:k]] = True
    return test


def train_val_split(x: np.ndarray, y: np.ndarray, fraction: float, seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hold out a random ``fraction`` of (x, y) for validation: (x_tr, y_tr, x_val, y_val)."""
    if not 0.0 < fraction < 1.0:
        raise DatasetError(f"validation fraction must be in (0, 1), got {fraction}")
    order = np.random.default_rng(seed).permutation(len(x))
    k = max(1, round(len(x) * fraction))
    val, tr = order[:k], order[k:]
    return x[tr], y[tr], x[val], y[val]
