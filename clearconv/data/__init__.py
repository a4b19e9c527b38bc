"""Datasets, conversion to float and minibatching.

The embedded default dataset (8x8 hand-written digits, no download) lives in
:mod:`clearconv.data.embedded`::

    from clearconv.data import load_digits, to_float, iterate_minibatches
    x, y = load_digits("train")              # uint8 (1438, 1, 8, 8), int64 (1438,)
    x = to_float(x, max_value=16)            # float32 in [0, 1]

Standard datasets from their original files, each uint8 NCHW images plus int64 labels
(use :func:`to_float` to scale to [0, 1] or standardise):

* :func:`load_mnist` (:mod:`~clearconv.data.idx`): MNIST, Fashion-MNIST, KMNIST from
  IDX files, ``.gz`` or not, read by the strict :func:`read_idx`; class names from
  :func:`idx_classes`;
* :func:`load_cifar10` (:mod:`~clearconv.data.cifar`): CIFAR-10 "python version"
  batches or the ``.tar.gz``, read without unpickling arbitrary objects;
  :data:`CIFAR10_CLASSES`;
* :func:`load_image_folder` (:mod:`~clearconv.data.folder`): one sub-folder per class,
  any format Pillow reads, returns the class names too;
* :func:`download` (:mod:`~clearconv.data.download`): fetch ``"mnist"``,
  ``"fashion-mnist"``, ``"kmnist"`` or ``"cifar10"`` into a cache folder, verified::

      x, y = load_mnist(download("mnist"), "train")     # (60000, 1, 28, 28)

Every dataset error is a :class:`DatasetError` (a ClearConvError); missing files raise
:class:`DatasetNotFoundError`, which is also a FileNotFoundError.
"""

from .augment import compose, random_flip, random_shift
from .cifar import CIFAR10_CLASSES, load_cifar10, read_cifar_batch
from .datasets import DATASET_NAMES, Dataset, load_dataset, train_val_split
from .download import DATASETS, data_home, default_root, download
from .embedded import (
    DIGITS_CLASSES,
    DIGITS_MAX_VALUE,
    iterate_minibatches,
    load_digits,
    to_float,
)
from .folder import SkippedFilesWarning, image_extensions, load_image_folder
from .idx import (
    FASHION_MNIST_CLASSES,
    IDX_KINDS,
    KMNIST_CLASSES,
    MNIST_CLASSES,
    DatasetError,
    DatasetNotFoundError,
    idx_classes,
    load_mnist,
    read_idx,
)

__all__ = [
    "CIFAR10_CLASSES",
    "DATASETS",
    "DATASET_NAMES",
    "DIGITS_CLASSES",
    "DIGITS_MAX_VALUE",
    "FASHION_MNIST_CLASSES",
    "IDX_KINDS",
    "KMNIST_CLASSES",
    "MNIST_CLASSES",
    "Dataset",
    "DatasetError",
    "DatasetNotFoundError",
    "SkippedFilesWarning",
    "compose",
    "data_home",
    "default_root",
    "download",
    "idx_classes",
    "image_extensions",
    "iterate_minibatches",
    "load_cifar10",
    "load_dataset",
    "load_digits",
    "load_image_folder",
    "load_mnist",
    "random_flip",
    "random_shift",
    "read_cifar_batch",
    "read_idx",
    "to_float",
    "train_val_split",
]
