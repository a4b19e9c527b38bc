"""The compiled loops of batch_norm2d's ``'compiled'`` algorithm
(:mod:`clearconv.kernels.batchnorm`, whose docstring gives their formulas). A module of
their own so that importing the algorithm does not import Numba: it loads these at its
first call, as :mod:`clearconv.kernels.jit` loads the other compiled loops."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import compiled

_njit = compiled._njit
_njit_reassoc = compiled._njit_reassoc


# --------------------------------------------------------------------------- NCHW (N, C, S)
@_njit_reassoc
def _sums_planes(x: Any, lo: int, hi: int, shift: Any, s1: Any, s2: Any) -> None:
    """s1[c] = sum (x - shift[c]), s2[c] = sum (x - shift[c])^2 over x[:, c, :], c in lo..hi."""
    n_img, _, size = x.shape
    for c in range(lo, hi):
        k = np.float64(shift[c])
        a1 = 0.0
        a2 = 0.0
        for n in range(n_img):
            for s in range(size):
                d = np.float64(x[n, c, s]) - k
                a1 += d
                a2 += d * d
        s1[c] = a1
        s2[c] = a2


@_njit
def _affine_planes(x: Any, m: Any, a: Any, b: Any, relu: bool, lo: int, hi: int, y: Any
                   ) -> None:
    """y[:, c, :] = (x[:, c, :] - m[c]) a[c] + b[c] for c in lo..hi; max(y, 0) with relu
    (NumPy's maximum: a NaN stays NaN)."""
    n_img, _, size = x.shape
    for n in range(n_img):
        for c in range(lo, hi):
            mc = m[c]
            ac = a[c]
            bc = b[c]
            if relu:
                for s in range(size):
                    v = (x[n, c, s] - mc) * ac + bc
                    y[n, c, s] = 0 if v < 0 else v
            else:
                for s in range(size):
                    y[n, c, s] = (x[n, c, s] - mc) * ac + bc


@_njit_reassoc
def _grad_sums_planes(dy: Any, x: Any, y: Any, relu: bool, mean: Any, lo: int, hi: int,
                      s1: Any, s2: Any) -> None:
    """s1[c] = sum g, s2[c] = sum g (x - mean[c]) over channel c, c in lo..hi, where g is
    dy, or with relu dy where the output y > 0 (else 0: ReLU's backward, ``dy (y > 0)``)."""
    n_img, _, size = x.shape
    for c in range(lo, hi):
        m = np.float64(mean[c])
        a1 = 0.0
        a2 = 0.0
        for n in range(n_img):
            if relu:
                for s in range(size):
                    g = np.float64(dy[n, c, s]) * (y[n, c, s] > 0)
                    a1 += g
                    a2 += g * (np.float64(x[n, c, s]) - m)
            else:
                for s in range(size):
                    g = np.float64(dy[n, c, s])
                    a1 += g
                    a2 += g * (np.float64(x[n, c, s]) - m)
        s1[c] = a1
        s2[c] = a2


@_njit
def _grad_planes(dy: Any, x: Any, y: Any, relu: bool, m: Any, a: Any, b: Any, d: Any,
                 lo: int, hi: int, dx: Any) -> None:
    """dx[:, c, :] = a[c] g + b[c] (x - m[c]) + d[c] for c in lo..hi (g as in
    :func:`_grad_sums_planes`)."""
    n_img, _, size = x.shape
    for n in range(n_img):
        for c in range(lo, hi):
            mc = m[c]
            ac = a[c]
            bc = b[c]
            dc = d[c]
            if relu:
                for s in range(size):
                    g = dy[n, c, s] * (y[n, c, s] > 0)
                    dx[n, c, s] = ac * g + bc * (x[n, c, s] - mc) + dc
            else:
                for s in range(size):
                    dx[n, c, s] = ac * dy[n, c, s] + bc * (x[n, c, s] - mc) + dc


# --------------------------------------------------------------- channels-last (R, C)
@_njit_reassoc
def _sums_rows(x: Any, lo: int, hi: int, shift: Any, s1: Any, s2: Any) -> None:
    """s1[c] += sum_r (x[r, c] - shift[c]), s2[c] += its squares, rows lo..hi."""
    channels = x.shape[1]
    k = np.empty(channels, np.float64)
    for c in range(channels):
        k[c] = shift[c]
    for r in range(lo, hi):
        for c in range(channels):
            d = np.float64(x[r, c]) - k[c]
            s1[c] += d
            s2[c] += d * d


@_njit
def _affine_rows(x: Any, m: Any, a: Any, b: Any, relu: bool, lo: int, hi: int, y: Any
                 ) -> None:
    channels = x.shape[1]
    if relu:
        for r in range(lo, hi):
            for c in range(channels):
                v = (x[r, c] - m[c]) * a[c] + b[c]
                y[r, c] = 0 if v < 0 else v
    else:
        for r in range(lo, hi):
            for c in range(channels):
                y[r, c] = (x[r, c] - m[c]) * a[c] + b[c]


@_njit_reassoc
def _grad_sums_rows(dy: Any, x: Any, y: Any, relu: bool, mean: Any, lo: int, hi: int,
                    s1: Any, s2: Any) -> None:
    channels = x.shape[1]
    m = np.empty(channels, np.float64)
    for c in range(channels):
        m[c] = mean[c]
    if relu:
        for r in range(lo, hi):
            for c in range(channels):
                g = np.float64(dy[r, c]) * (y[r, c] > 0)
                s1[c] += g
                s2[c] += g * (np.float64(x[r, c]) - m[c])
    else:
        for r in range(lo, hi):
            for c in range(channels):
                g = np.float64(dy[r, c])
                s1[c] += g
                s2[c] += g * (np.float64(x[r, c]) - m[c])


@_njit
def _grad_rows(dy: Any, x: Any, y: Any, relu: bool, m: Any, a: Any, b: Any, d: Any, lo: int,
               hi: int, dx: Any) -> None:
    channels = x.shape[1]
    if relu:
        for r in range(lo, hi):
            for c in range(channels):
                g = dy[r, c] * (y[r, c] > 0)
                dx[r, c] = a[c] * g + b[c] * (x[r, c] - m[c]) + d[c]
    else:
        for r in range(lo, hi):
            for c in range(channels):
                dx[r, c] = a[c] * dy[r, c] + b[c] * (x[r, c] - m[c]) + d[c]


# ------------------------------------------------------------------------ the algorithm
