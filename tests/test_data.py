"""Tests of clearconv.data: the embedded digits, to_float and minibatch indices."""

from __future__ import annotations

import hashlib
import re
from importlib import resources

import numpy as np
import pytest

from clearconv.data import (
    DIGITS_CLASSES,
    DIGITS_MAX_VALUE,
    iterate_minibatches,
    load_digits,
    to_float,
)
from clearconv.errors import ClearConvError

CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


# ---------------------------------------------------------------- embedded digits

def test_digits_shapes_dtypes_and_value_range() -> None:
    images, labels = load_digits()
    assert images.shape == (1797, 1, 8, 8)
    assert images.dtype == np.uint8
    assert labels.shape == (1797,)
    assert labels.dtype == np.int64
    assert images.min() == 0 and images.max() == DIGITS_MAX_VALUE == 16
    assert set(np.unique(labels).tolist()) == set(range(10))


def test_digits_class_counts() -> None:
    _, labels = load_digits()
    assert np.bincount(labels, minlength=10).tolist() == CLASS_COUNTS


def test_digits_first_image_is_a_zero() -> None:
    images, labels = load_digits()
    assert labels[0] == 0
    assert images[0, 0, 0].tolist() == [0, 0, 5, 13, 9, 1, 0, 0]


def test_digits_class_names() -> None:
    assert DIGITS_CLASSES == tuple("0123456789")


def test_returned_arrays_are_independent_copies() -> None:
    images, labels = load_digits()
    images[:] = 0
    labels[:] = 0
    images2, labels2 = load_digits()
    assert images2.max() == 16
    assert np.bincount(labels2).tolist() == CLASS_COUNTS


def test_packaged_file_matches_sha256_in_its_license() -> None:
    data = resources.files("clearconv.data")
    license_text = (data / "LICENSE-digits.txt").read_text(encoding="utf-8")
    match = re.search(r"sha256\(digits\.npz\) = ([0-9a-f]{64})", license_text)
    assert match is not None
    assert "CC BY 4.0" in license_text and "Alpaydin" in license_text
    assert hashlib.sha256((data / "digits.npz").read_bytes()).hexdigest() == match.group(1)


def test_train_and_test_together_are_the_whole_set() -> None:
    x_all, y_all = load_digits("all")
    x_tr, y_tr = load_digits("train")
    x_te, y_te = load_digits("test")
    assert len(y_tr) + len(y_te) == len(y_all)
    # Compare as multisets of (image, label) rows: duplicates in the data are fine.
    whole = sorted(map(bytes, np.c_[x_all.reshape(len(x_all), -1), y_all]))
    parts = sorted(map(bytes, np.r_[np.c_[x_tr.reshape(len(x_tr), -1), y_tr],
                                    np.c_[x_te.reshape(len(x_te), -1), y_te]]))
    assert whole == parts


def test_split_selects_disjoint_indices() -> None:
    from clearconv.data.embedded import _stratified_test_mask

    _, labels = load_digits()
    mask = _stratified_test_mask(labels, 0.2, 0)
    x_all, _ = load_digits()
    x_te, _ = load_digits("test")
    x_tr, _ = load_digits("train")
    np.testing.assert_array_equal(x_all[mask], x_te)
    np.testing.assert_array_equal(x_all[~mask], x_tr)


def test_split_is_deterministic_given_seed() -> None:
    a = load_digits("test", seed=3)
    b = load_digits("test", seed=3)
    c = load_digits("test", seed=4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("test_fraction", [0.1, 0.2, 0.25, 0.5])
def test_split_is_stratified(test_fraction: float) -> None:
    _, y_te = load_digits("test", test_fraction=test_fraction)
    _, y_tr = load_digits("train", test_fraction=test_fraction)
    test_counts = np.bincount(y_te, minlength=10)
    assert np.all(np.abs(test_counts - np.array(CLASS_COUNTS) * test_fraction) <= 0.5)
    assert (test_counts + np.bincount(y_tr, minlength=10)).tolist() == CLASS_COUNTS


def test_default_split_sizes() -> None:
    assert len(load_digits("train")[1]) == 1438
    assert len(load_digits("test")[1]) == 359


@pytest.mark.parametrize(
    "kwargs",
    [{"split": "validation"}, {"test_fraction": 0.0}, {"test_fraction": 1.0},
     {"test_fraction": -0.1}, {"test_fraction": True}],
)
def test_bad_split_arguments_are_refused(kwargs: dict) -> None:
    with pytest.raises(ClearConvError):
        load_digits(**kwargs)


# ---------------------------------------------------------------- to_float

def test_to_float_scale_digits_into_unit_interval() -> None:
    images, _ = load_digits()
    x = to_float(images, max_value=DIGITS_MAX_VALUE)
    assert x.dtype == np.float32 and x.shape == images.shape
    assert x.min() == 0.0 and x.max() == 1.0


def test_to_float_scale_defaults_to_255() -> None:
    x = to_float(np.array([0, 51, 255], dtype=np.uint8))
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, [0.0, 0.2, 1.0], rtol=1e-7)


def test_to_float_standardize_has_zero_mean_unit_std() -> None:
    images, _ = load_digits()
    x = to_float(images, mode="standardize")
    assert x.dtype == np.float32 and x.shape == images.shape
    assert abs(float(x.mean(dtype=np.float64))) < 1e-5
    assert abs(float(x.std(dtype=np.float64)) - 1.0) < 1e-5


def test_to_float_standardize_constant_array_gives_zeros() -> None:
    x = to_float(np.full((2, 1, 3, 3), 7, dtype=np.uint8), mode="standardize")
    assert x.dtype == np.float32
    assert np.all(x == 0.0)


@pytest.mark.parametrize(
    "kwargs",
    [{"mode": "minmax"}, {"max_value": 0}, {"max_value": -1.0}, {"max_value": float("inf")},
     {"mode": "standardize", "max_value": 16}],
)
def test_to_float_bad_arguments_are_refused(kwargs: dict) -> None:
    with pytest.raises(ClearConvError):
        to_float(np.zeros(3, dtype=np.uint8), **kwargs)


def test_to_float_refuses_non_numeric_arrays() -> None:
    with pytest.raises(ClearConvError):
        to_float(np.array(["a", "b"]))


# ---------------------------------------------------------------- minibatches

@pytest.mark.parametrize(("n", "batch_size"), [(10, 3), (10, 5), (10, 10), (10, 32), (1797, 64)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_minibatches_cover_every_index_once_per_epoch(n: int, batch_size: int,
                                                      shuffle: bool) -> None:
    rng = np.random.default_rng(0)
    for _ in range(3):
        batches = list(iterate_minibatches(n, batch_size, shuffle, rng))
        sizes = [len(b) for b in batches]
        assert sizes[:-1] == [batch_size] * (len(batches) - 1)
        assert sizes[-1] == (n % batch_size or min(n, batch_size))
        order = np.concatenate(batches)
        assert order.dtype == np.int64
        assert sorted(order.tolist()) == list(range(n))
        if not shuffle:
            assert order.tolist() == list(range(n))


def test_minibatches_shuffle_is_reproducible_and_changes_between_epochs() -> None:
    a = np.concatenate(list(iterate_minibatches(100, 7, True, np.random.default_rng(5))))
    b = np.concatenate(list(iterate_minibatches(100, 7, True, np.random.default_rng(5))))
    np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(5)
    first = np.concatenate(list(iterate_minibatches(100, 7, True, rng)))
    second = np.concatenate(list(iterate_minibatches(100, 7, True, rng)))
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, np.arange(100))


def test_minibatches_empty_dataset_yields_nothing() -> None:
    assert list(iterate_minibatches(0, 4, shuffle=True)) == []


@pytest.mark.parametrize(("n", "batch_size"), [(-1, 4), (10, 0), (10, -2), (10, 2.5), (3.0, 1)])
def test_minibatches_bad_arguments_are_refused_at_the_call(n, batch_size) -> None:
    with pytest.raises(ClearConvError):
        iterate_minibatches(n, batch_size, shuffle=False)
