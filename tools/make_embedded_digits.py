"""One-off: build ``clearconv/data/digits.npz`` from the copy scikit-learn ships.

Reads ``sklearn/datasets/data/digits.csv.gz`` (1797 rows of 64 pixel values in 0..16
followed by the label) and writes

* ``clearconv/data/digits.npz`` (``np.savez_compressed``): ``images`` uint8 of shape
  ``(1797, 1, 8, 8)`` in NCHW, values 0..16, and ``labels`` uint8 of shape ``(1797,)``;
* ``clearconv/data/LICENSE-digits.txt``: the source, the licence and the sha256 of the
  npz.

scikit-learn is needed only to run this script, never by clearconv itself::

    python tools/make_embedded_digits.py
"""

from __future__ import annotations

import gzip
import hashlib
from importlib import resources
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent.parent / "clearconv" / "data"
NPZ_NAME = "digits.npz"
LICENSE_NAME = "LICENSE-digits.txt"

LICENSE_TEMPLATE = """\
clearconv/data/{npz_name}: the UCI ML hand-written digits data set (8x8 version)

Source
  "Optical Recognition of Handwritten Digits" data set, UCI Machine Learning
  Repository, https://doi.org/10.24432/C50P49
  https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits
  E. Alpaydin and C. Kaynak (1998), Department of Computer Engineering,
  Bogazici University, Istanbul, Turkey.
  Taken from the copy distributed with scikit-learn
  (sklearn/datasets/data/digits.csv.gz, the test part of the original data set:
  1797 images of 8x8 pixels, values 0..16, classes 0..9).

Licence
  Creative Commons Attribution 4.0 International (CC BY 4.0),
  https://creativecommons.org/licenses/by/4.0/
  Changes: the 64 values of each row were reshaped to one 8x8 channel (NCHW,
  shape (1797, 1, 8, 8)) and stored as uint8 with the labels as uint8; no values
  were changed.

Contents
  images  uint8 (1797, 1, 8, 8), values 0..16
  labels  uint8 (1797,), values 0..9

sha256({npz_name}) = {sha256}
"""


def read_sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images, labels)`` from scikit-learn's bundled ``digits.csv.gz``.

    Returns:
        images: ndarray of shape ``(1797, 1, 8, 8)``, uint8, values 0..16.
        labels: ndarray of shape ``(1797,)``, uint8, values 0..9.
    """
    source = resources.files("sklearn.datasets.data") / "digits.csv.gz"
    with source.open("rb") as raw, gzip.open(raw, "rt") as text:
        table = np.loadtxt(text, delimiter=",", dtype=np.int64)
    if table.shape != (1797, 65):
        raise SystemExit(f"unexpected shape {table.shape} in {source}, expected (1797, 65)")
    pixels, labels = table[:, :64], table[:, 64]
    if pixels.min() < 0 or pixels.max() > 16 or labels.min() < 0 or labels.max() > 9:
        raise SystemExit(f"values out of range in {source}")
    images = pixels.reshape(-1, 1, 8, 8).astype(np.uint8)
    return images, labels.astype(np.uint8)


def main() -> None:
    """Write the npz and its licence file next to ``clearconv/data/__init__.py``."""
    images, labels = read_sklearn_digits()
    npz_path = DATA_DIR / NPZ_NAME
    with npz_path.open("wb") as f:
        np.savez_compressed(f, images=images, labels=labels)
    sha256 = hashlib.sha256(npz_path.read_bytes()).hexdigest()
    (DATA_DIR / LICENSE_NAME).write_text(
        LICENSE_TEMPLATE.format(npz_name=NPZ_NAME, sha256=sha256), encoding="utf-8"
    )
    print(f"wrote {npz_path} ({npz_path.stat().st_size} bytes, sha256 {sha256})")
    print(f"class counts: {np.bincount(labels, minlength=10).tolist()}")


if __name__ == "__main__":
    main()
