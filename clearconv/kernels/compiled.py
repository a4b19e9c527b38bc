"""Optional compiled loops (Numba): what NumPy can only run as many passes.

Mostly the data movement around the matrix products is compiled here (the Winograd
tile transforms of :mod:`clearconv.kernels.winograd`, col2im, pooling, layout copies);
the products themselves stay NumPy/BLAS, except the direct convolution for few channels
(:func:`conv_direct_forward`), whose products are too narrow for the BLAS. The
algorithms of :mod:`clearconv.kernels` that use them are tested against the loop
reference and PyTorch, and the readable NumPy path of functional/ they stand in for.

Numba is a default dependency where it publishes wheels (else ``pip install
"clearconv[fast]"``); :mod:`clearconv.kernels.jit` imports this module at the first loop
called, not with clearconv. Without Numba, or with the
environment variable ``CLEARCONV_JIT=0``, :data:`AVAILABLE` is False and no algorithm
that needs these loops is registered as applying. Loops are compiled on first use and
cached on disk (``cache=True``), single-threaded (``nogil``):
:mod:`clearconv.kernels.threads` splits a batch between threads that each run a loop
on their images.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

try:   # the switch of jit.ENABLED (read here too: jit imports this module, not back)
    if os.environ.get("CLEARCONV_JIT", "1").strip().lower() in ("0", "false", "no", "off"):
        raise ImportError("disabled by CLEARCONV_JIT")
    import numba
except ImportError:  # pragma: no cover - exercised when numba is absent
    numba = None

#: True when Numba is importable and not disabled: the compiled kernels below can run.
AVAILABLE = numba is not None


def _njit(fn: Any) -> Any:
    return numba.njit(cache=True, nogil=True, error_model="numpy")(fn) if AVAILABLE else fn


# Winograd F(2x2, 3x3) (Lavin & Gray 2016). One 4x4 input tile d gives 2x2 outputs:
#   Y = A^T [ (G g G^T) . (B^T d B) ] A
# B^T = [[1, 0,-1, 0],    G = [[  1,   0,   0],    A^T = [[1, 1, 1, 0],
#        [0, 1, 1, 0],         [1/2, 1/2, 1/2],           [0, 1,-1,-1]]
#        [0,-1, 1, 0],         [1/2,-1/2, 1/2],
#        [0, 1, 0,-1]]         [  0,   0,   1]]
# Tiles are indexed t = (n*th + ty)*tw + tx; transformed tiles are stored (T, 16, C) so a
# kernel writes one contiguous 16*C block per tile.

@_njit
def winograd_input_tiles(xp: Any, th: int, tw: int, v: Any) -> None:
    """v[t, 4k+l, c] = (B^T d B)[k, l] for the 4x4 tile d = xp[n, 2ty:2ty+4, 2tx:2tx+4, c].

    xp: zero-padded input (N, 2*th+2, 2*tw+2, C), C-contiguous; v: (N*th*tw, 16, C).
    """
    n_img = xp.shape[0]
    c_in = xp.shape[3]
    for n in range(n_img):
        for ty in range(th):
            r = 2 * ty
            for tx in range(tw):
                q = 2 * tx
                t = (n * th + ty) * tw + tx
                for c in range(c_in):
                    d00 = xp[n, r, q, c]
                    d01 = xp[n, r, q + 1, c]
                    d02 = xp[n, r, q + 2, c]
                    d03 = xp[n, r, q + 3, c]
                    d10 = xp[n, r + 1, q, c]
                    d11 = xp[n, r + 1, q + 1, c]
                    d12 = xp[n, r + 1, q + 2, c]
                    d13 = xp[n, r + 1, q + 3, c]
                    d20 = xp[n, r + 2, q, c]
                    d21 = xp[n, r + 2, q + 1, c]
                    d22 = xp[n, r + 2, q + 2, c]
                    d23 = xp[n, r + 2, q + 3, c]
                    d30 = xp[n, r + 3, q, c]
                    d31 = xp[n, r + 3, q + 1, c]
                    d32 = xp[n, r + 3, q + 2, c]
                    d33 = xp[n, r + 3, q + 3, c]
                    # rows: B^T d
                    a0 = d00 - d20
                    a1 = d01 - d21
                    a2 = d02 - d22
                    a3 = d03 - d23
                    b0 = d10 + d20
                    b1 = d11 + d21
                    b2 = d12 + d22
                    b3 = d13 + d23
                    e0 = d20 - d10
                    e1 = d21 - d11
                    e2 = d22 - d12
                    e3 = d23 - d13
                    f0 = d10 - d30
                    f1 = d11 - d31
                    f2 = d12 - d32
                    f3 = d13 - d33
                    # columns: (B^T d) B
                    v[t, 0, c] = a0 - a2
                    v[t, 1, c] = a1 + a2
                    v[t, 2, c] = a2 - a1
                    v[t, 3, c] = a1 - a3
                    v[t, 4, c] = b0 - b2
                    v[t, 5, c] = b1 + b2
                    v[t, 6, c] = b2 - b1
                    v[t, 7, c] = b1 - b3
                    v[t, 8, c] = e0 - e2
                    v[t, 9, c] = e1 + e2
                    v[t, 10, c] = e2 - e1
                    v[t, 11, c] = e1 - e3
                    v[t, 12, c] = f0 - f2
                    v[t, 13, c] = f1 + f2
                    v[t, 14, c] = f2 - f1
                    v[t, 15, c] = f1 - f3


def _njit_inline(fn: Any) -> Any:
    return numba.njit(inline="always", error_model="numpy")(fn) if AVAILABLE else fn


@_njit_inline
def _output_block(m: Any, t: int, o: int, b: Any) -> tuple[Any, Any, Any, Any]:
    """(A^T m_t A) + b for channel o of tile t: the block's four outputs, row-major."""
    # rows: A^T m
    s0 = m[0, t, o] + m[4, t, o] + m[8, t, o]
    s1 = m[1, t, o] + m[5, t, o] + m[9, t, o]
    s2 = m[2, t, o] + m[6, t, o] + m[10, t, o]
    s3 = m[3, t, o] + m[7, t, o] + m[11, t, o]
    u0 = m[4, t, o] - m[8, t, o] - m[12, t, o]
    u1 = m[5, t, o] - m[9, t, o] - m[13, t, o]
    u2 = m[6, t, o] - m[10, t, o] - m[14, t, o]
    u3 = m[7, t, o] - m[11, t, o] - m[15, t, o]
    # columns: (A^T m) A
    return s0 + s1 + s2 + b, s1 - s2 - s3 + b, u0 + u1 + u2 + b, u1 - u2 - u3 + b


@_njit
def winograd_output_tiles(m: Any, bias: Any, th: int, tw: int, y: Any) -> None:
    """y[n, 2ty+i, 2tx+j, o] = (A^T m_t A)[i, j] + bias[o], cropped to y's (H_out, W_out).

    m: (16, N*th*tw, C_out), the 16 products; y: (N, H_out, W_out, C_out), C-contiguous.
    """
    n_img, h_out, w_out, c_out = y.shape
    for n in range(n_img):
        for ty in range(th):
            r = 2 * ty
            for tx in range(tw):
                q = 2 * tx
                t = (n * th + ty) * tw + tx
                if r + 1 < h_out and q + 1 < w_out:
                    # a whole 2x2 block: no bounds tests in the loop, so it vectorizes
                    # (twice as fast as the checked loop below)
                    for o in range(c_out):
                        y00, y01, y10, y11 = _output_block(m, t, o, bias[o])
                        y[n, r, q, o] = y00
                        y[n, r, q + 1, o] = y01
                        y[n, r + 1, q, o] = y10
                        y[n, r + 1, q + 1, o] = y11
                    continue
                for o in range(c_out):   # a tile on the bottom or right edge: cropped
                    y00, y01, y10, y11 = _output_block(m, t, o, bias[o])
                    y[n, r, q, o] = y00
                    if q + 1 < w_out:
                        y[n, r, q + 1, o] = y01
                    if r + 1 < h_out:
                        y[n, r + 1, q, o] = y10
                        if q + 1 < w_out:
                            y[n, r + 1, q + 1, o] = y11


@_njit
def winograd_output_grad_tiles(dy: Any, th: int, tw: int, dm: Any, dbias: Any) -> None:
    """dm[t, 4k+l, o] = (A dY_t A^T)[k, l]: dL/dm for the 2x2 gradient tile dY_t of dy;
    also adds every dy value into ``dbias[o]`` (float64 accumulators).

    dy: (N, 2*th, 2*tw, C_out), C-contiguous (zero-padded to whole tiles);
    dm: (N*th*tw, 16, C_out); dbias: zeros (C_out,) float64.
    """
    n_img = dy.shape[0]
    c_out = dy.shape[3]
    for n in range(n_img):
        for ty in range(th):
            r = 2 * ty
            for tx in range(tw):
                q = 2 * tx
                t = (n * th + ty) * tw + tx
                for o in range(c_out):
                    g00 = dy[n, r, q, o]
                    g01 = dy[n, r, q + 1, o]
                    g10 = dy[n, r + 1, q, o]
                    g11 = dy[n, r + 1, q + 1, o]
                    # rows: A dY (A = (A^T)^T, 4x2)
                    p0 = g00 + g10
                    p1 = g01 + g11
                    n0 = g00 - g10
                    n1 = g01 - g11
                    # columns: (A dY) A^T
                    dm[t, 0, o] = g00
                    dm[t, 1, o] = g00 + g01
                    dm[t, 2, o] = g00 - g01
                    dm[t, 3, o] = -g01
                    dm[t, 4, o] = p0
                    dm[t, 5, o] = p0 + p1
                    dm[t, 6, o] = p0 - p1
                    dm[t, 7, o] = -p1
                    dm[t, 8, o] = n0
                    dm[t, 9, o] = n0 + n1
                    dm[t, 10, o] = n0 - n1
                    dm[t, 11, o] = -n1
                    dm[t, 12, o] = -g10
                    dm[t, 13, o] = -g10 - g11
                    dm[t, 14, o] = g11 - g10
                    dm[t, 15, o] = g11
                    dbias[o] += np.float64(p0) + np.float64(p1)


@_njit
def winograd_input_grad_tiles(dv: Any, th: int, tw: int, dxp: Any) -> None:
    """dxp[n, 2ty:2ty+4, 2tx:2tx+4, c] += (B dV_t B^T): dL/d(tile), added where tiles overlap.

    dv: (16, N*th*tw, C); dxp: zeros (N, 2*th+2, 2*tw+2, C), C-contiguous.
    """
    n_img = dxp.shape[0]
    c_in = dxp.shape[3]
    for n in range(n_img):
        for ty in range(th):
            r = 2 * ty
            for tx in range(tw):
                q = 2 * tx
                t = (n * th + ty) * tw + tx
                for c in range(c_in):
                    # rows: B dV (B[a, k] = B^T[k, a])
                    w0 = dv[0, t, c]
                    w1 = dv[1, t, c]
                    w2 = dv[2, t, c]
                    w3 = dv[3, t, c]
                    x0 = dv[4, t, c]
                    x1 = dv[5, t, c]
                    x2 = dv[6, t, c]
                    x3 = dv[7, t, c]
                    y0 = dv[8, t, c]
                    y1 = dv[9, t, c]
                    y2 = dv[10, t, c]
                    y3 = dv[11, t, c]
                    z0 = dv[12, t, c]
                    z1 = dv[13, t, c]
                    z2 = dv[14, t, c]
                    z3 = dv[15, t, c]
                    r00 = w0
                    r01 = w1
                    r02 = w2
                    r03 = w3
                    r10 = x0 - y0 + z0
                    r11 = x1 - y1 + z1
                    r12 = x2 - y2 + z2
                    r13 = x3 - y3 + z3
                    r20 = -w0 + x0 + y0
                    r21 = -w1 + x1 + y1
                    r22 = -w2 + x2 + y2
                    r23 = -w3 + x3 + y3
                    r30 = -z0
                    r31 = -z1
                    r32 = -z2
                    r33 = -z3
                    # columns: (B dV) B^T, added into the (overlapping) 4x4 window
                    dxp[n, r, q, c] += r00
                    dxp[n, r, q + 1, c] += r01 - r02 + r03
                    dxp[n, r, q + 2, c] += -r00 + r01 + r02
                    dxp[n, r, q + 3, c] += -r03
                    dxp[n, r + 1, q, c] += r10
                    dxp[n, r + 1, q + 1, c] += r11 - r12 + r13
                    dxp[n, r + 1, q + 2, c] += -r10 + r11 + r12
                    dxp[n, r + 1, q + 3, c] += -r13
                    dxp[n, r + 2, q, c] += r20
                    dxp[n, r + 2, q + 1, c] += r21 - r22 + r23
                    dxp[n, r + 2, q + 2, c] += -r20 + r21 + r22
                    dxp[n, r + 2, q + 3, c] += -r23
                    dxp[n, r + 3, q, c] += r30
                    dxp[n, r + 3, q + 1, c] += r31 - r32 + r33
                    dxp[n, r + 3, q + 2, c] += -r30 + r31 + r32
                    dxp[n, r + 3, q + 3, c] += -r33


# Max pooling over channels-last memory: x is (N, H, W, C) (an NCHW array stored NHWC
# seen through ``x.transpose(0, 2, 3, 1)``, or NCHW memory seen as (N*C, H, W, 1)).
# PyTorch's rule, in one pass: only real (unpadded) cells compete; a window starts at its
# first real cell with -inf; a cell wins when it is greater than the running maximum or
# NaN. So ties keep the first maximum in row-major window order, NaN propagates (its
# gradient goes to the window's last NaN), and padding never wins.

@_njit_inline
def _wins(v: Any, best: Any) -> bool:
    """PyTorch's max-pooling rule, once for every compiled pooling loop: a cell replaces
    the running maximum when it is greater or NaN (so ties keep the first maximum and
    NaN propagates)."""
    return (v > best) | (v != v)


@_njit
def max_pool_nhwc(x: Any, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int,
                  relu: bool, y: Any, idx: Any) -> None:
    """y[n, m, k, c] = max of window (m, k); idx = its offset i*kw + j in the window.

    With ``relu``, y = relu(max) and idx = kh*kw (no gradient) where the max is not > 0.
    x: (N, H, W, C); y: (N, H_out, W_out, C); idx: same shape as y (uint8 or int32).
    """
    n_img, h, w, c_n = x.shape
    h_out, w_out = y.shape[1], y.shape[2]
    neg_inf = -np.inf
    for n in range(n_img):
        for m in range(h_out):
            r0 = m * sh - ph
            i0 = max(0, -r0)
            i1 = min(kh, h - r0)
            for k in range(w_out):
                q0 = k * sw - pw
                j0 = max(0, -q0)
                j1 = min(kw, w - q0)
                first = i0 * kw + j0
                for c in range(c_n):
                    y[n, m, k, c] = neg_inf
                    idx[n, m, k, c] = first
                for i in range(i0, i1):
                    for j in range(j0, j1):
                        t = i * kw + j
                        for c in range(c_n):
                            v = x[n, r0 + i, q0 + j, c]
                            if _wins(v, y[n, m, k, c]):
                                y[n, m, k, c] = v
                                idx[n, m, k, c] = t
                if relu:
                    for c in range(c_n):
                        v = y[n, m, k, c]
                        if not v > 0:
                            idx[n, m, k, c] = kh * kw
                            if v == v:
                                y[n, m, k, c] = 0


@_njit_inline
def _max_of_4(v0: Any, v1: Any, v2: Any, v3: Any, relu: bool, zero: Any
              ) -> tuple[Any, int]:
    """(maximum, its offset 0..3) of a 2x2 window in row-major order, branch-free: the
    first maximum wins ties, NaN wins (:func:`_wins`); with ``relu``, (0, 4) where the
    maximum is not > 0 (NaN stays, with offset 4: no gradient)."""
    best = v0
    bi = 0
    g = _wins(v1, best)
    best = v1 if g else best
    bi = 1 if g else bi
    g = _wins(v2, best)
    best = v2 if g else best
    bi = 2 if g else bi
    g = _wins(v3, best)
    best = v3 if g else best
    bi = 3 if g else bi
    if relu:
        off = not best > 0
        bi = 4 if off else bi
        best = zero if (off and best == best) else best
    return best, bi


@_njit
def max_pool_2x2_nhwc(x: Any, relu: bool, y: Any, idx: Any) -> None:
    """:func:`max_pool_nhwc` for 2x2 windows, stride 2, no padding, with the output width
    innermost (channel outside) and branch-free selects: for few channels, where the
    general kernel's innermost channel loop is too short to pay for itself (6 channels:
    0.4 ms instead of 1.5 ms on 64x6x28x28).
    """
    n_img = x.shape[0]
    c_n = x.shape[3]
    h_out, w_out = y.shape[1], y.shape[2]
    zero = y.dtype.type(0)
    for n in range(n_img):
        for m in range(h_out):
            r = 2 * m
            for c in range(c_n):
                for k in range(w_out):
                    q = 2 * k
                    v0 = x[n, r, q, c]
                    v1 = x[n, r, q + 1, c]
                    v2 = x[n, r + 1, q, c]
                    v3 = x[n, r + 1, q + 1, c]
                    best, bi = _max_of_4(v0, v1, v2, v3, relu, zero)
                    y[n, m, k, c] = best
                    idx[n, m, k, c] = bi


@_njit
def max_pool_2x2_nhwc_channels(x: Any, relu: bool, y: Any, idx: Any) -> None:
    """:func:`max_pool_nhwc` for 2x2 windows, stride 2, no padding, with the channels
    innermost and branch-free selects: each window's four input rows of C values are read
    along memory and LLVM vectorises the loop over c (64x32x28x28, AVX2, one thread:
    0.5 ms, against 7.5 ms for the general kernel, whose data-dependent branches it cannot
    vectorise). Same rule as the others: the first maximum wins ties, NaN wins.
    x: (N, H, W, C); y, idx: (N, H // 2, W // 2, C).
    """
    n_img = x.shape[0]
    c_n = x.shape[3]
    h_out, w_out = y.shape[1], y.shape[2]
    zero = y.dtype.type(0)
    for n in range(n_img):
        for m in range(h_out):
            r = 2 * m
            for k in range(w_out):
                q = 2 * k
                a = x[n, r, q]
                b = x[n, r, q + 1]
                c_ = x[n, r + 1, q]
                d = x[n, r + 1, q + 1]
                yo = y[n, m, k]
                io = idx[n, m, k]
                for c in range(c_n):
                    best, bi = _max_of_4(a[c], b[c], c_[c], d[c], relu, zero)
                    yo[c] = best
                    io[c] = bi


# Max pooling 2x2, stride 2, no padding, on NCHW memory seen as planes (N*C, H, W):
# each output row reads two input rows and the loops run along them (the channels-last
# kernels above would step C values at a time). Same rule (first maximum, NaN wins).

@_njit
def max_pool_2x2_planes(x: Any, relu: bool, y: Any, idx: Any) -> None:
    """y[p, m, k] = max of x[p, 2m:2m+2, 2k:2k+2]; idx = its offset 2i + j (4 where a
    fused ReLU outputs 0). x: (P, H, W); y, idx: (P, H // 2, W // 2)."""
    n_planes = x.shape[0]
    h_out, w_out = y.shape[1], y.shape[2]
    zero = y.dtype.type(0)
    # the offsets go to a row of int32 first, then to idx: a loop storing (u)int8 offsets
    # beside float32 maxima is not vectorised (64x32x28x28, AVX2, one thread: 6.6 ms,
    # against 3.4 ms this way; 64x16x56x56 2.8 against 3.0)
    offsets = np.empty(w_out, np.int32)
    for p in range(n_planes):
        for m in range(h_out):
            r0 = x[p, 2 * m]
            r1 = x[p, 2 * m + 1]
            yr = y[p, m]
            for k in range(w_out):
                v0 = r0[2 * k]
                v1 = r0[2 * k + 1]
                v2 = r1[2 * k]
                v3 = r1[2 * k + 1]
                best, bi = _max_of_4(v0, v1, v2, v3, relu, zero)
                yr[k] = best
                offsets[k] = bi
            ir = idx[p, m]
            for k in range(w_out):
                ir[k] = offsets[k]


@_njit
def max_pool_2x2_planes_backward(dy: Any, idx: Any, dx: Any) -> None:
    """dx[p, 2m + i, 2k + j] = dy[p, m, k] where idx[p, m, k] == 2i + j, else 0, every
    cell of dx written (a last odd row or column, in no window, gets 0).
    dy, idx: (P, H_out, W_out); dx: (P, H, W).

    Each plane is zeroed first (a vectorised fill), then each window's gradient is stored
    at its maximum: one store per output. Selecting among four values per window along
    the rows instead does not vectorise (stride 2): 64x32x28x28, AVX2, one thread, 4.1 ms
    against 1.1 ms this way."""
    n_planes = dy.shape[0]
    h_out, w_out = dy.shape[1], dy.shape[2]
    h, w = dx.shape[1], dx.shape[2]
    zero = dx.dtype.type(0)
    for p in range(n_planes):
        d = dx[p]
        for r in range(h):
            for q in range(w):
                d[r, q] = zero
        for m in range(h_out):
            g = dy[p, m]
            t = idx[p, m]
            for k in range(w_out):
                tk = t[k]
                if tk < 4:                  # 4: a fused ReLU's zero, no gradient
                    d[2 * m + (tk >> 1), 2 * k + (tk & 1)] = g[k]


@_njit
def max_pool_backward_nhwc(dy: Any, idx: Any, kh: int, kw: int, sh: int, sw: int, ph: int,
                           pw: int, dx: Any) -> None:
    """dx[n, m*sh - ph + i, k*sw - pw + j, c] += dy[n, m, k, c] for (i, j) = idx's offset.

    dy, idx: (N, H_out, W_out, C); dx: zeros (N, H, W, C). Overlapping windows add up;
    an offset of kh*kw or more (a fused ReLU's zero) passes no gradient.
    """
    n_img, h_out, w_out, c_n = dy.shape
    n_off = kh * kw
    for n in range(n_img):
        for m in range(h_out):
            r0 = m * sh - ph
            for k in range(w_out):
                q0 = k * sw - pw
                for c in range(c_n):
                    t = idx[n, m, k, c]
                    if t < n_off:
                        dx[n, r0 + t // kw, q0 + t % kw, c] += dy[n, m, k, c]


@_njit
def max_pool_2x2_backward_nhwc(dy: Any, idx: Any, dx: Any) -> None:
    """:func:`max_pool_backward_nhwc` for 2x2 windows, stride 2, no padding: the windows
    do not overlap, so every dx value is written once (its window's gradient where the
    offset points at it, else 0) with branch-free selects, and dx needs no zeros first;
    a bottom row or right column that no window covers (odd H or W) is set to 0.

    dy, idx: (N, H_out, W_out, C); dx: (N, H, W, C), any contents.
    """
    n_img, h_out, w_out, c_n = dy.shape
    h, w = dx.shape[1], dx.shape[2]
    zero = dx.dtype.type(0)
    for n in range(n_img):
        for m in range(h_out):
            r = 2 * m
            for k in range(w_out):
                q = 2 * k
                g = dy[n, m, k]
                t = idx[n, m, k]
                # one loop per output row of C values: each vectorises (one loop writing
                # all four did not: 3.7 ms against 0.4 ms on 64x32x28x28, AVX2)
                d = dx[n, r, q]
                for c in range(c_n):
                    d[c] = g[c] if t[c] == 0 else zero
                d = dx[n, r, q + 1]
                for c in range(c_n):
                    d[c] = g[c] if t[c] == 1 else zero
                d = dx[n, r + 1, q]
                for c in range(c_n):
                    d[c] = g[c] if t[c] == 2 else zero
                d = dx[n, r + 1, q + 1]
                for c in range(c_n):
                    d[c] = g[c] if t[c] == 3 else zero
            for q in range(2 * w_out, w):
                for c in range(c_n):
                    dx[n, r, q, c] = zero
                    dx[n, r + 1, q, c] = zero
        for r in range(2 * h_out, h):
            for q in range(w):
                for c in range(c_n):
                    dx[n, r, q, c] = zero



@_njit
def col2im_nhwc(d: Any, sh: int, sw: int, dh: int, c_n: int, dxp: Any) -> None:
    """dxp[n, m*sh + i*dh, (k*sw + j)*C + c] += d[n, m, k, i, j*C + c]: each window's
    column gradient added back onto the padded input (col2im of conv2d's input gradient),
    for a kernel dilated only along H (width dilation 1): a window row is then one run
    of kw*C contiguous values in both arrays.

    d: (N, H_out, W_out, kh, kw*C), C-contiguous; dxp: zeros (N, H_pad, W_pad*C).

    The runs of neighbouring windows overlap (when sw < kw); added one after the other,
    each would load what the previous one has just stored, and the CPU stalls on every
    such partial overlap. So a row of windows is added in ceil(kw/sw) passes, each
    taking every ceil(kw/sw)-th window, whose runs are disjoint (2-2.6x faster).
    """
    n_img, h_out, w_out, kh, run = d.shape
    kw = run // c_n
    passes = max(1, -(-kw // sw))
    for n in range(n_img):
        for m in range(h_out):
            for i in range(kh):
                row = dxp[n, m * sh + i * dh]
                for k0 in range(passes):
                    for k in range(k0, w_out, passes):
                        q = k * sw * c_n
                        src = d[n, m, k, i]
                        dst = row[q:q + run]
                        for t in range(run):
                            dst[t] += src[t]


# Direct convolution for few input channels (stride 1, dilation 1), on "wide" rows: an
# image channel's padded plane is one flat array of H_pad*W_pad values, and the output of
# channel o is computed on the grid q = m*W_pad + k (W_pad - W_out junk columns per row,
# never stored), so that kernel offset (i, j) reads the contiguous run starting at
# i*W_pad + j: Z_wide[q] += W[o, c, i, j] * A_flat[c, q + i*W_pad + j]. Each offset is
# then one long vectorised loop, with no im2col columns in memory.

_njit_reassoc = ((lambda fn: numba.njit(cache=True, nogil=True, error_model="numpy",
                                        fastmath={"reassoc", "contract"})(fn))
                 if AVAILABLE else (lambda fn: fn))


@_njit_inline
def _direct_plane(xf: Any, w: Any, n: int, o: int, bo: Any, wp: int, acc: Any) -> None:
    """acc[q] = bo + sum_{c,i,j} w[o, c, i, j] * xf[n, c, q + i*wp + j] for the wide
    positions q of output channel o of image n, summed in (c, i, j) order."""
    c_in, kh, kw = w.shape[1], w.shape[2], w.shape[3]
    run = acc.shape[0]
    for q in range(run):
        acc[q] = bo
    for c in range(c_in):
        xc = xf[n, c]
        for i in range(kh):
            j = 0
            while j + 3 <= kw:    # three offsets per pass over acc
                w0 = w[o, c, i, j]
                w1 = w[o, c, i, j + 1]
                w2 = w[o, c, i, j + 2]
                xs = xc[i * wp + j:i * wp + j + run + 2]
                for q in range(run):
                    a = acc[q]
                    a += w0 * xs[q]
                    a += w1 * xs[q + 1]
                    a += w2 * xs[q + 2]
                    acc[q] = a
                j += 3
            if j + 2 <= kw:       # then two, then one
                w0 = w[o, c, i, j]
                w1 = w[o, c, i, j + 1]
                xs = xc[i * wp + j:i * wp + j + run + 1]
                for q in range(run):
                    a = acc[q]
                    a += w0 * xs[q]
                    a += w1 * xs[q + 1]
                    acc[q] = a
                j += 2
            if j < kw:
                w0 = w[o, c, i, j]
                xs = xc[i * wp + j:i * wp + j + run]
                for q in range(run):
                    acc[q] += w0 * xs[q]


@_njit
def conv_direct_forward(xf: Any, w: Any, b: Any, wp: int, y: Any) -> None:
    """y[n, o, m, k] = b[o] + sum_{c,i,j} w[o, c, i, j] * A_pad[n, c, m + i, k + j].

    xf: zero-padded input, (N, C, H_pad*W_pad) C-contiguous, rows of width ``wp``;
    w: (O, C, kh, kw); b: (O,) (zeros for no bias); y: (N, O, H_out, W_out).
    Each output is summed in (c, i, j) order, starting from the bias.
    """
    c_out = w.shape[0]
    n_img, ho, wo = y.shape[0], y.shape[2], y.shape[3]
    acc = np.empty((ho - 1) * wp + wo, y.dtype)   # wide positions up to the last output
    for n in range(n_img):
        for o in range(c_out):
            _direct_plane(xf, w, n, o, b[o], wp, acc)
            for m in range(ho):
                y[n, o, m] = acc[m * wp:m * wp + wo]


@_njit
def conv_direct_relu_pool_forward(xf: Any, w: Any, b: Any, wp: int, ho: int, wo: int,
                                  y: Any, idx: Any) -> None:
    """:func:`conv_direct_forward` of an (H_out, W_out) output followed by ReLU and 2x2
    max pooling, stride 2 (as :func:`max_pool_2x2_planes` with ``relu``), the conv
    output never stored: y, idx: (N, O, H_out // 2, W_out // 2)."""
    c_out = w.shape[0]
    n_img, hq, wq = y.shape[0], y.shape[2], y.shape[3]
    acc = np.empty((ho - 1) * wp + wo, y.dtype)
    zero = y.dtype.type(0)
    for n in range(n_img):
        for o in range(c_out):
            _direct_plane(xf, w, n, o, b[o], wp, acc)
            for m in range(hq):
                r0 = acc[2 * m * wp:2 * m * wp + 2 * wq]
                r1 = acc[(2 * m + 1) * wp:(2 * m + 1) * wp + 2 * wq]
                yr = y[n, o, m]
                ir = idx[n, o, m]
                for k in range(wq):
                    best, bi = _max_of_4(r0[2 * k], r0[2 * k + 1], r1[2 * k], r1[2 * k + 1],
                                         True, zero)
                    yr[k] = best
                    ir[k] = bi


@_njit_inline
def _direct_dots(xf: Any, g: Any, n: int, o: int, wp: int, kh: int, kw: int, dw: Any
                 ) -> None:
    """dw[o, c, i, j] += sum_q g[q] * xf[n, c, q + i*wp + j]: one image's share of the
    weight gradient of output channel o, from its gradient g on the wide positions
    (junk positions 0). Inlined into kernels compiled with reassociation: each dot
    product is summed in vector lanes, like a BLAS dot."""
    c_in = xf.shape[1]
    run = g.shape[0]
    zero = dw.dtype.type(0)
    for c in range(c_in):
        xc = xf[n, c]
        for i in range(kh):
            j = 0
            while j + 3 <= kw:    # three offsets per pass over g
                xs = xc[i * wp + j:i * wp + j + run + 2]
                s0 = zero
                s1 = zero
                s2 = zero
                for q in range(run):
                    gq = g[q]
                    s0 += gq * xs[q]
                    s1 += gq * xs[q + 1]
                    s2 += gq * xs[q + 2]
                dw[o, c, i, j] += s0
                dw[o, c, i, j + 1] += s1
                dw[o, c, i, j + 2] += s2
                j += 3
            if j + 2 <= kw:       # then two, then one
                xs = xc[i * wp + j:i * wp + j + run + 1]
                s0 = zero
                s1 = zero
                for q in range(run):
                    gq = g[q]
                    s0 += gq * xs[q]
                    s1 += gq * xs[q + 1]
                dw[o, c, i, j] += s0
                dw[o, c, i, j + 1] += s1
                j += 2
            if j < kw:
                xs = xc[i * wp + j:i * wp + j + run]
                s0 = zero
                for q in range(run):
                    s0 += g[q] * xs[q]
                dw[o, c, i, j] += s0


@_njit_reassoc
def conv_direct_weight_grad(xf: Any, dy: Any, wp: int, kh: int, kw: int, dw: Any,
                            db: Any) -> None:
    """dw[o, c, i, j] += sum_{n,m,k} dy[n, o, m, k] * A_pad[n, c, m + i, k + j] and
    db[o] += sum_{n,m,k} dy[n, o, m, k], on :func:`conv_direct_forward`'s wide rows.

    xf: (N, C, H_pad*W_pad) as there; dy: (N, O, H_out, W_out); dw: (O, C, kh, kw);
    db: (O,). Images add up in order.
    """
    n_img, c_out, ho, wo = dy.shape
    g = np.zeros((ho - 1) * wp + wo, dy.dtype)   # dy of one channel, wide; junk = 0
    zero = dw.dtype.type(0)
    for n in range(n_img):
        for o in range(c_out):
            for m in range(ho):
                g[m * wp:m * wp + wo] = dy[n, o, m]
            s = zero
            for q in range(g.shape[0]):
                s += g[q]
            db[o] += s
            _direct_dots(xf, g, n, o, wp, kh, kw, dw)


@_njit_reassoc
def conv_direct_pool_weight_grad(xf: Any, dy: Any, idx: Any, wp: int, kh: int, kw: int,
                                 ho: int, wo: int, dw: Any, db: Any) -> None:
    """:func:`conv_direct_weight_grad` of :func:`conv_direct_relu_pool_forward`: the
    pooled gradient dy (N, O, H_out // 2, W_out // 2) goes to the conv output position
    its window's idx names (none for idx 4, where the ReLU output 0), on the wide rows
    directly: the conv output's gradient is never stored."""
    n_img, c_out, hq, wq = dy.shape
    g = np.zeros((ho - 1) * wp + wo, dy.dtype)
    zero = dw.dtype.type(0)
    for n in range(n_img):
        for o in range(c_out):
            for m in range(hq):
                g0 = g[2 * m * wp:2 * m * wp + 2 * wq]
                g1 = g[(2 * m + 1) * wp:(2 * m + 1) * wp + 2 * wq]
                d = dy[n, o, m]
                t = idx[n, o, m]
                for q in range(2 * wq):
                    gk = d[q >> 1]
                    tk = t[q >> 1]
                    j = q & 1
                    g0[q] = gk if tk == j else zero
                    g1[q] = gk if tk == j + 2 else zero
            s = zero
            for q in range(g.shape[0]):   # as conv_direct_weight_grad sums it
                s += g[q]
            db[o] += s
            _direct_dots(xf, g, n, o, wp, kh, kw, dw)


@_njit
def nchw_to_nhwc(src: Any, dst: Any) -> None:
    """dst[n, r, q, c] = src[n, c, r, q]: NCHW memory into a channels-last array (which
    may be the interior of a padded one). One image row at a time: its C input rows
    and its W*C outputs stay in L1 (NumPy's transposing copy steps through memory
    H*W values apart for every output value: 1.5x slower here)."""
    n_img, c_n, h, w = src.shape
    for n in range(n_img):
        for r in range(h):
            out = dst[n, r]
            for c in range(c_n):
                row = src[n, c, r]
                for q in range(w):
                    out[q, c] = row[q]


# Depthwise convolution over channels-last memory (groups == C_in, m kernels per channel):
# x is the zero-padded input (N, H_pad, W_pad, C), the taps w (kh, kw, C, m), y (N, H_out,
# W_out, C, m). The channel (and multiplier) loops are innermost: contiguous, vectorised.

@_njit
def depthwise_forward(xp: Any, w: Any, b: Any, sh: int, sw: int, dh: int, dw: int,
                      y: Any) -> None:
    """y[n, r, q, k] = b[k] + sum_{i,j} w[i, j, k] * xp[n, r*sh + i*dh, q*sw + j*dw, k // m]
    over the flat output channels k = c*m + t (m = y's channels / xp's)."""
    n_img, ho, wo, k_n = y.shape
    kh, kw = w.shape[0], w.shape[1]
    m_n = k_n // xp.shape[3]
    for n in range(n_img):
        for r in range(ho):
            for q in range(wo):
                out = y[n, r, q]
                for k in range(k_n):
                    out[k] = b[k]
                for i in range(kh):
                    for j in range(kw):
                        px = xp[n, r * sh + i * dh, q * sw + j * dw]
                        tap = w[i, j]
                        if m_n == 1:
                            for k in range(k_n):
                                out[k] += tap[k] * px[k]
                        else:
                            for k in range(k_n):
                                out[k] += tap[k] * px[k // m_n]


@_njit
def depthwise_backward(xp: Any, dy: Any, w: Any, sh: int, sw: int, dh: int, dw: int,
                       input_grad: bool, dxp: Any, dwt: Any) -> None:
    """dwt[i, j, k] += sum dy[n, r, q, k] * xp[n, r*sh + i*dh, q*sw + j*dw, k // m] and, with
    ``input_grad``, dxp[n, r*sh + i*dh, q*sw + j*dw, k // m] += dy[n, r, q, k] * w[i, j, k]
    (dxp zeros, padded like xp; k = c*m + t as in :func:`depthwise_forward`)."""
    n_img, ho, wo, k_n = dy.shape
    kh, kw = w.shape[0], w.shape[1]
    m_n = k_n // xp.shape[3]
    for n in range(n_img):
        for r in range(ho):
            for q in range(wo):
                g = dy[n, r, q]
                for i in range(kh):
                    for j in range(kw):
                        px = xp[n, r * sh + i * dh, q * sw + j * dw]
                        acc = dwt[i, j]
                        tap = w[i, j]
                        dpx = dxp[n, r * sh + i * dh, q * sw + j * dw] if input_grad \
                            else dxp[0, 0, 0]
                        if m_n == 1 and input_grad:     # the common case, vectorised
                            for k in range(k_n):
                                acc[k] += g[k] * px[k]
                                dpx[k] += g[k] * tap[k]
                        elif m_n == 1:
                            for k in range(k_n):
                                acc[k] += g[k] * px[k]
                        else:
                            for k in range(k_n):
                                acc[k] += g[k] * px[k // m_n]
                            if input_grad:
                                for k in range(k_n):
                                    dpx[k // m_n] += g[k] * tap[k]


# Winograd F(4x4, 3x3) (Lavin & Gray 2016), inference only (clearconv.kernels.winograd4).
# One 6x6 input tile d gives 4x4 outputs: Y = A^T [ (G g G^T) . (B^T d B) ] A with
# B^T = [[4, 0,-5, 0, 1, 0],   A^T = [[1, 1, 1, 1, 1, 0],
#        [0,-4,-4, 1, 1, 0],          [0, 1,-1, 2,-2, 0],
#        [0, 4,-4,-1, 1, 0],          [0, 1, 1, 4, 4, 0],
#        [0,-2,-1, 2, 1, 0],          [0, 1,-1, 8,-8, 1]]
#        [0, 2,-1,-2, 1, 0],
#        [0, 4, 0,-5, 0, 1]]
# The products by 2, 4 and 8 are written as sums, so that float32 stays float32 (a
# float literal would promote the whole expression to float64).
@_njit_inline
def _bt6(d0: Any, d1: Any, d2: Any, d3: Any, d4: Any, d5: Any
         ) -> tuple[Any, Any, Any, Any, Any, Any]:
    """B^T (d0, ..., d5): the six rows of B^T times a column of a 6x6 tile."""
    a = d0 - d2
    b = d1 + d2
    c = d1 - d2
    e = d3 - d1
    f = d1 - d3
    a2, b2, c2, e2, f2 = a + a, b + b, c + c, e + e, f + f
    return (a2 + a2 - d2 + d4, d3 + d4 - (b2 + b2), c2 + c2 + d4 - d3,
            e2 + d4 - d2, f2 + d4 - d2, f2 + f2 - d3 + d5)


@_njit_inline
def _at6(m0: Any, m1: Any, m2: Any, m3: Any, m4: Any, m5: Any
         ) -> tuple[Any, Any, Any, Any]:
    """A^T (m0, ..., m5): the four rows of A^T times a column of a 6x6 product tile."""
    s12 = m1 + m2
    d12 = m1 - m2
    s34 = m3 + m4
    d34 = m3 - m4
    s2 = s34 + s34
    d2 = d34 + d34
    d4 = d2 + d2
    return s12 + s34 + m0, d12 + d2, s12 + s2 + s2, d12 + d4 + d4 + m5


@_njit
def winograd4_input_tiles(xp: Any, th: int, tw: int, v: Any) -> None:
    """v[t, 6k+l, c] = (B^T d B)[k, l] for the 6x6 tile d = xp[n, 4ty:4ty+6, 4tx:4tx+6, c].

    xp: zero-padded input (N, 4*th+2, 4*tw+2, C), C-contiguous; v: (N*th*tw, 36, C).
    """
    n_img = xp.shape[0]
    c_in = xp.shape[3]
    col = np.empty((6, 6, c_in), xp.dtype)     # col[k, j] = (B^T d)[k, j]
    for n in range(n_img):
        for ty in range(th):
            r = 4 * ty
            for tx in range(tw):
                q = 4 * tx
                t = (n * th + ty) * tw + tx
                for j in range(6):
                    for c in range(c_in):
                        k0, k1, k2, k3, k4, k5 = _bt6(
                            xp[n, r, q + j, c], xp[n, r + 1, q + j, c],
                            xp[n, r + 2, q + j, c], xp[n, r + 3, q + j, c],
                            xp[n, r + 4, q + j, c], xp[n, r + 5, q + j, c])
                        col[0, j, c] = k0
                        col[1, j, c] = k1
                        col[2, j, c] = k2
                        col[3, j, c] = k3
                        col[4, j, c] = k4
                        col[5, j, c] = k5
                for k in range(6):
                    s = 6 * k
                    for c in range(c_in):
                        l0, l1, l2, l3, l4, l5 = _bt6(col[k, 0, c], col[k, 1, c],
                                                      col[k, 2, c], col[k, 3, c],
                                                      col[k, 4, c], col[k, 5, c])
                        v[t, s, c] = l0
                        v[t, s + 1, c] = l1
                        v[t, s + 2, c] = l2
                        v[t, s + 3, c] = l3
                        v[t, s + 4, c] = l4
                        v[t, s + 5, c] = l5


@_njit
def winograd4_output_tiles(m: Any, bias: Any, th: int, tw: int, y: Any) -> None:
    """y[n, 4ty+i, 4tx+j, o] = (A^T m_t A)[i, j] + bias[o], cropped to y's (H_out, W_out).

    m: (36, N*th*tw, C_out), the 36 products; y: (N, H_out, W_out, C_out), C-contiguous.
    Two passes per tile over contiguous channel rows (short loop bodies vectorize):
    ``row[k, l] = (A^T m_t)[k, l]``, then ``y = row A``.
    """
    n_img, h_out, w_out, c_out = y.shape
    row = np.empty((4, 6, c_out), y.dtype)
    for n in range(n_img):
        for ty in range(th):
            r = 4 * ty
            for tx in range(tw):
                q = 4 * tx
                t = (n * th + ty) * tw + tx
                for j in range(6):
                    for o in range(c_out):
                        k0, k1, k2, k3 = _at6(m[j, t, o], m[6 + j, t, o], m[12 + j, t, o],
                                              m[18 + j, t, o], m[24 + j, t, o],
                                              m[30 + j, t, o])
                        row[0, j, o] = k0
                        row[1, j, o] = k1
                        row[2, j, o] = k2
                        row[3, j, o] = k3
                for i in range(min(4, h_out - r)):
                    if q + 3 < w_out:                  # a whole row of the block
                        for o in range(c_out):
                            y0, y1, y2, y3 = _at6(row[i, 0, o], row[i, 1, o], row[i, 2, o],
                                                  row[i, 3, o], row[i, 4, o], row[i, 5, o])
                            b = bias[o]
                            y[n, r + i, q, o] = y0 + b
                            y[n, r + i, q + 1, o] = y1 + b
                            y[n, r + i, q + 2, o] = y2 + b
                            y[n, r + i, q + 3, o] = y3 + b
                        continue
                    wj = w_out - q                     # the right edge: cropped
                    for o in range(c_out):
                        y0, y1, y2, y3 = _at6(row[i, 0, o], row[i, 1, o], row[i, 2, o],
                                              row[i, 3, o], row[i, 4, o], row[i, 5, o])
                        b = bias[o]
                        y[n, r + i, q, o] = y0 + b
                        if wj > 1:
                            y[n, r + i, q + 1, o] = y1 + b
                        if wj > 2:
                            y[n, r + i, q + 2, o] = y2 + b


def warm_up() -> bool:
    """Load (or compile) the kernels of float32 training now, on tiny arrays (other
    dtypes load at their first use).

    Numba compiles a kernel, or loads it from its on-disk cache, at its first call; that
    costs time (about 0.4 s from the cache, seconds to compile) and memory (LLVM, about
    60 MiB) once per process. Calling this at start-up moves that fixed cost out of the
    first training step. Returns whether there were kernels to load.
    """
    if not AVAILABLE:
        return False
    for dt in (np.float32,):
        xp = np.zeros((1, 4, 4, 2), dt)
        v = np.zeros((1, 16, 2), dt)
        winograd_input_tiles(xp, 1, 1, v)
        winograd_output_tiles(np.zeros((16, 1, 2), dt), np.zeros(2, dt), 1, 1,
                              np.zeros((1, 2, 2, 2), dt))
        winograd_output_grad_tiles(np.zeros((1, 2, 2, 2), dt), 1, 1, v, np.zeros(2))
        winograd_input_grad_tiles(np.zeros((16, 1, 2), dt), 1, 1, xp)
        col2im_nhwc(np.zeros((1, 2, 2, 3, 6), dt), 1, 1, 1, 2, np.zeros((1, 4, 8), dt))
        nchw_to_nhwc(np.zeros((1, 2, 4, 4), dt), np.zeros((1, 4, 4, 2), dt))
        winograd4_input_tiles(np.zeros((1, 6, 6, 2), dt), 1, 1, np.zeros((1, 36, 2), dt))
        winograd4_output_tiles(np.zeros((36, 1, 2), dt), np.zeros(2, dt), 1, 1,
                               np.zeros((1, 4, 4, 2), dt))
        y = np.zeros((1, 2, 2, 2), dt)
        conv_direct_forward(np.zeros((1, 1, 16), dt), np.zeros((2, 1, 3, 3), dt),
                            np.zeros(2, dt), 4, y)
        planes = np.zeros((2, 4, 4), dt)
        idx8 = np.zeros((2, 2, 2), np.uint8)
        max_pool_2x2_planes(planes, True, y[0], idx8)
        max_pool_2x2_planes_backward(y[0], idx8, planes)
        conv_direct_weight_grad(np.zeros((1, 1, 16), dt), y, 4, 3, 3,
                                np.zeros((2, 1, 3, 3), dt), np.zeros(2, dt))
        pooled = np.zeros((1, 2, 1, 1), dt)
        idx1 = np.zeros((1, 2, 1, 1), np.uint8)
        conv_direct_relu_pool_forward(np.zeros((1, 1, 16), dt), np.zeros((2, 1, 3, 3), dt),
                                      np.zeros(2, dt), 4, 2, 2, pooled, idx1)
        conv_direct_pool_weight_grad(np.zeros((1, 1, 16), dt), pooled, idx1, 4, 3, 3, 2, 2,
                                     np.zeros((2, 1, 3, 3), dt), np.zeros(2, dt))
        for idx_dtype in (np.uint8,):
            y = np.zeros((1, 2, 2, 2), dt)
            idx = np.zeros((1, 2, 2, 2), idx_dtype)
            max_pool_nhwc(xp, 2, 2, 2, 2, 0, 0, True, y, idx)
            max_pool_2x2_nhwc(xp, True, y, idx)
            max_pool_2x2_nhwc_channels(xp, True, y, idx)
            max_pool_backward_nhwc(y, idx, 2, 2, 2, 2, 0, 0, np.zeros((1, 4, 4, 2), dt))
            max_pool_2x2_backward_nhwc(y, idx, np.zeros((1, 4, 4, 2), dt))
    return True
