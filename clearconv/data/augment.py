"""Data augmentation for training batches: random shifts/crops and horizontal flips.

Each augmenter is a callable ``aug(x, rng) -> x'`` on a float batch (N, C, H, W), for
``Sequential.fit(augment=...)``; ``fit`` hands it a generator seeded by (seed, epoch,
step), so augmented runs stay reproducible and resumable.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Augmenter = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def random_shift(max_shift: int = 2) -> Augmenter:
    """Shift each image by up to ``max_shift`` pixels in each direction, filling with 0
    (equivalently: zero-pad by ``max_shift`` and take a random crop of the original size)."""

    def aug(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n, c, h, w = x.shape
        p = max_shift
        padded = np.zeros((n, c, h + 2 * p, w + 2 * p), x.dtype)
        padded[:, :, p:p + h, p:p + w] = x
        dy = rng.integers(0, 2 * p + 1, n)
        dx = rng.integers(0, 2 * p + 1, n)
        rows = dy[:, None] + np.arange(h)[None, :]          # (N, H)
        cols = dx[:, None] + np.arange(w)[None, :]          # (N, W)
        return padded[np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None],
                      rows[:, None, :, None], cols[:, None, None, :]]

    return aug


def random_flip() -> Augmenter:
    """Mirror each image left-right with probability 1/2."""

    def aug(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        flip = rng.random(len(x)) < 0.5
        out = x.copy()
        out[flip] = x[flip, :, :, ::-1]
        return out

    return aug


def compose(*augmenters: Augmenter) -> Augmenter:
    """Apply augmenters in order."""

    def aug(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for a in augmenters:
            x = a(x, rng)
        return x

    return aug
