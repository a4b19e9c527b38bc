"""Datasets, conversion to float and minibatching.

The embedded default dataset (8x8 hand-written digits, no download) lives in
:mod:`clearconv.data.embedded`::

    from clearconv.data import load_digits, to_float, iterate_minibatches
    x, y = load_digits("train")              # uint8 (1438, 1, 8, 8), int64 (1438,)
    x = to_float(x, max_value=16)            # float32 in [0, 1]
"""

from .embedded import (
    DIGITS_CLASSES,
    DIGITS_MAX_VALUE,
    iterate_minibatches,
    load_digits,
    to_float,
)

__all__ = [
    "DIGITS_CLASSES",
    "DIGITS_MAX_VALUE",
    "iterate_minibatches",
    "load_digits",
    "to_float",
]
