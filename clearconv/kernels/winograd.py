"""conv2d algorithm ``'winograd'``: Winograd's minimal filtering F(2x2, 3x3), MATH.md
§7 and §9 with 2.25 times fewer multiplications.

The same ``Z = W * A + b`` as im2col (:mod:`clearconv.functional.conv`), for kernels
3x3, stride 1, dilation 1. The padded input is cut into 4x4 tiles that overlap by two
rows and columns; each tile ``d`` gives a 2x2 block of outputs as (Lavin & Gray, 2016)

    ``Y = A^T [ U . V ] A``,  ``U = G g G^T`` (4x4 per kernel),  ``V = B^T d B`` (4x4 per tile)

where ``.`` is elementwise per position, so over all tiles and channels it is 16 matrix
products ``M[k] = V[k] U[k]``, (tiles x C_in) @ (C_in x C_out): 16 products of size
4*C_in*C_out per 2x2 outputs instead of 36 (im2col).

Backward is the exact transpose of that computation (the chain rule through each linear
step): ``dM = A dY A^T`` per tile, ``dU[k] = V[k]^T dM[k]`` (so ``dW = G^T dU G``), and
``dV[k] = dM[k] U[k]^T`` (so ``dA`` gets ``B dV B^T`` added at each tile's window).

The transforms are pure data movement: :mod:`clearconv.kernels.compiled` runs them as
compiled loops when Numba is installed; the ``_*_numpy`` functions below are their
readable NumPy twins (many whole-array passes, slower) and the tests hold the two
together. Rounding differs from im2col's (different sums in a different order); the
tests hold both to the loop reference of MATH.md and to PyTorch at the same tolerance.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..functional.conv import OP, Conv2dCache, ConvCall
from ..shapes import ConvGeometry
from . import registry, threads, tuning
from .copies import padded_nhwc
from .jit import AVAILABLE as JIT_AVAILABLE
from .jit import compiled, worth

_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64)
_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64)
_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)
_GG = np.kron(_G, _G)     # (16, 9): [4a+b, 3i+j] = G[a, i] G[b, j]


class WinogradSaved(NamedTuple):
    """What the Winograd backward needs from the forward pass (``Conv2dCache.saved``).

    The padded input, not its transformed tiles V: V holds 16 values per 2x2 outputs
    and channel, 4x the input (312 of the 547 MiB a ResNet-20 training step at batch 128
    kept to its backward), so the backward transforms the tiles again, a few images at
    a time (in cache, as the forward did)."""

    xp: np.ndarray          # A_pad: (N, 2*th + 2, 2*tw + 2, C_in), channels-last, whole tiles
    u: np.ndarray           # U: (16, C_in, C_out), the transformed kernels
    jit: bool               # transforms compiled (Numba) or NumPy


def supports(call: ConvCall) -> tuple[bool, str]:
    """Whether F(2x2, 3x3) computes the call: a 3x3 kernel, stride 1, dilation 1."""
    geo = call.geometry
    if geo.groups != 1:
        return False, f"ungrouped convolutions only, got groups {geo.groups}"
    if geo.kernel == (3, 3) and geo.stride == (1, 1) and geo.dilation == (1, 1):
        return True, "3x3 kernel, stride 1, dilation 1"
    return False, (f"needs a 3x3 kernel, stride 1 and dilation 1; got kernel {geo.kernel}, "
                   f"stride {geo.stride}, dilation {geo.dilation}")


def prefer(call: ConvCall) -> tuple[bool, str]:
    """'auto' takes Winograd for float32 with compiled transforms and enough channels."""
    ok, why = supports(call)
    if not ok:
        return ok, why
    jit_ok, jit_why = worth(call.geometry.in_shape[0])
    if not jit_ok:
        return False, f"its NumPy transforms are slower than im2col: {jit_why}"
    if call.dtype != np.float32:
        return False, f"float32 only under 'auto', got {np.dtype(call.dtype).name}"
    c_in, c_out = call.geometry.in_shape[1], call.geometry.out_shape[1]
    if min(c_in, c_out) < tuning.WINOGRAD_MIN_CHANNELS:
        return False, (f"needs >= {tuning.WINOGRAD_MIN_CHANNELS} input and output channels, "
                       f"got {c_in} -> {c_out}")
    return True, f"3x3 stride 1, {c_in} -> {c_out} channels, float32, compiled transforms"


def _tile_counts(geo: ConvGeometry) -> tuple[int, int]:
    ho, wo = geo.out_shape[2:]
    return (ho + 1) // 2, (wo + 1) // 2


def transform_kernels(weight: np.ndarray, gg: np.ndarray) -> np.ndarray:
    """U = G g G^T for every (C_out, C_in) 3x3 kernel, with ``gg = kron(G, G)`` of shape
    (planes, 9): returns (planes, C_in, C_out) in weight's dtype (F(2x2) and F(4x4) alike)."""
    c_out, c_in = weight.shape[:2]
    # u[a, b, c, o] = sum_ij G[a, i] w[o, c, i, j] G[b, j]: the Kronecker product G (x) G
    # times every kernel's 9 taps, one (planes, 9) @ (9, C*O) product in float64 (at
    # batch 1 two tensordots cost more than the whole convolution), then rounded once
    taps = np.empty((9, c_in, c_out), np.float64)
    taps[...] = weight.reshape(c_out, c_in, 9).transpose(2, 1, 0)
    return (gg @ taps.reshape(9, -1)).astype(weight.dtype).reshape(-1, c_in, c_out)


def kernel_transform(weight: np.ndarray) -> np.ndarray:
    """F(2x2, 3x3)'s U = G g G^T for every kernel, as (16, C_in, C_out)."""
    return transform_kernels(weight, _GG)


def kernel_transform_backward(du: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """dW = G^T dU G: (16, C_in, C_out) -> (C_out, C_in, 3, 3)."""
    c_in, c_out = du.shape[1:]
    # dw[o, c, i, j] = sum_ab G[a, i] du[a, b, c, o] G[b, j]: (G (x) G)^T times dU
    dw = _GG.T @ du.reshape(16, c_in * c_out).astype(np.float64)       # (9, C*O)
    return np.ascontiguousarray(dw.reshape(3, 3, c_in, c_out).transpose(3, 2, 0, 1),
                                dtype=dtype)


def _staggered(t: int, cols: int, dtype: np.dtype) -> np.ndarray:
    """An empty (16, t, cols) array whose 16 planes start 256 bytes apart modulo 4 KiB.

    A kernel that reads or writes all 16 planes of one tile at once would otherwise, when
    a plane's size is a multiple of 4 KiB, hit one L1 cache set 16 times (8 ways):
    padding the planes apart made the tile transforms 4-6x faster.
    """
    isz = np.dtype(dtype).itemsize
    plane = t * cols * isz
    step = plane + (256 - plane) % 4096
    buf = np.empty(15 * step // isz + t * cols, dtype)
    return as_strided(buf, (16, t, cols), (step, cols * isz, isz))


# ------------------------------------------------------------ NumPy twins of the kernels
def _input_tiles_numpy(xp: np.ndarray, th: int, tw: int) -> np.ndarray:
    n, _, _, c = xp.shape
    sn, sh, sw, sc = xp.strides
    d = as_strided(xp, (n, th, tw, 4, 4, c), (sn, 2 * sh, 2 * sw, sh, sw, sc),
                   writeable=False)
    v = np.einsum("ka,lb,ntsabc->ntsklc", _BT.astype(xp.dtype), _BT.astype(xp.dtype), d)
    return v.reshape(n * th * tw, 16, c)


def _output_tiles_numpy(m: np.ndarray, bias: np.ndarray, th: int, tw: int,
                        y: np.ndarray) -> None:
    n, ho, wo, c_out = y.shape
    at = _AT.astype(m.dtype)
    blocks = np.einsum("ia,jb,abto->tijo", at, at, m.reshape(4, 4, -1, c_out))
    full = blocks.reshape(n, th, tw, 2, 2, c_out).transpose(0, 1, 3, 2, 4, 5)
    y[...] = full.reshape(n, 2 * th, 2 * tw, c_out)[:, :ho, :wo] + bias


def _output_grad_tiles_numpy(full: np.ndarray, th: int, tw: int) -> np.ndarray:
    n, c_out = full.shape[0], full.shape[3]
    g = full.reshape(n, th, 2, tw, 2, c_out).transpose(0, 1, 3, 2, 4, 5)
    at = _AT.astype(full.dtype)
    dm = np.einsum("ik,jl,ntsijo->ntsklo", at, at, g)      # A dY A^T with A = (A^T)^T
    return dm.reshape(n * th * tw, 16, c_out)


def _input_grad_tiles_numpy(dv: np.ndarray, th: int, tw: int, dxp: np.ndarray) -> None:
    n, c = dxp.shape[0], dxp.shape[3]
    bt = _BT.astype(dv.dtype)
    dd = np.einsum("ka,lb,kltc->tabc", bt, bt, dv.reshape(4, 4, -1, c))   # B dV B^T
    dd = dd.reshape(n, th, tw, 4, 4, c)
    for a in range(4):
        for b in range(4):
            dxp[:, a:a + 2 * th:2, b:b + 2 * tw:2] += dd[:, :, :, a, b]


# ------------------------------------------------------------ forward and backward
def _images_per_chunk(tiles_per_image: int, width: int, dtype: np.dtype) -> int:
    return max(1, tuning.CHUNK_BYTES // (16 * width * np.dtype(dtype).itemsize * tiles_per_image))


def winograd_conv2d_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
                            geo: ConvGeometry, jit: bool | None = None,
                            need_backward: bool = True
                            ) -> tuple[np.ndarray, WinogradSaved | None]:
    """The 3x3 stride-1 convolution of checked, same-dtype inputs (see conv2d_forward).

    Returns y (N, C_out, H_out, W_out) as an NCHW view of NHWC memory, like im2col.
    ``jit`` picks the compiled transforms (default: when Numba is available); they run
    a few images at a time, so that each chunk's 16 product planes stay in cache, the
    batch split between threads (:mod:`clearconv.kernels.threads`).
    """
    jit = JIT_AVAILABLE if jit is None else jit
    n, c, h, w = x.shape
    c_out = weight.shape[0]
    ho, wo = geo.out_shape[2:]
    th, tw = _tile_counts(geo)
    per = th * tw
    (pt, _), (pl, _) = geo.padding   # padded further at the bottom/right to whole tiles
    xp = padded_nhwc(x, ((pt, 2 * th + 2 - pt - h), (pl, 2 * tw + 2 - pl - w)))
    u = kernel_transform(weight)
    y = np.empty((n, ho, wo, c_out), x.dtype)
    b = np.zeros(c_out, x.dtype) if bias is None else bias
    if not jit:
        v = _input_tiles_numpy(xp, th, tw)
        _output_tiles_numpy(np.matmul(v.transpose(1, 0, 2), u), b, th, tw, y)
    else:
        # each chunk's V in cache (the backward makes them again from xp)
        step = _images_per_chunk(per, c_out, x.dtype)

        def work(lo: int, hi: int) -> None:
            size = min(step, hi - lo)      # a part of fewer images needs less buffer
            m_buf = _staggered(size * per, c_out, x.dtype)
            v_buf = np.empty((size * per, 16, c), x.dtype)
            for n0 in range(lo, hi, step):
                n1 = min(n0 + step, hi)
                v_c = v_buf[:(n1 - n0) * per]
                compiled.winograd_input_tiles(xp[n0:n1], th, tw, v_c)
                m_c = m_buf[:, :(n1 - n0) * per]
                np.matmul(v_c.transpose(1, 0, 2), u, out=m_c)           # (16, t, C_out)
                compiled.winograd_output_tiles(m_c, b, th, tw, y[n0:n1])

        threads.map_split(work, n)
    if not need_backward:
        return y.transpose(0, 3, 1, 2), None
    return y.transpose(0, 3, 1, 2), WinogradSaved(xp, u, jit)


def winograd_conv2d_backward(dy: np.ndarray, cache: Conv2dCache, input_grad: bool = True
                             ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Backward of :func:`winograd_conv2d_forward`: (dx, dweight, dbias) as conv2d_backward."""
    xp, u, jit = cache.saved
    weight, has_bias, geo = cache.weight, cache.has_bias, cache.geometry
    n, c, h, w = geo.in_shape
    th, tw = _tile_counts(geo)
    per = th * tw
    ho, wo = geo.out_shape[2:]
    c_out = weight.shape[0]
    dyh = dy.transpose(0, 2, 3, 1)
    if (ho, wo) == (2 * th, 2 * tw):
        dyh = np.ascontiguousarray(dyh)                               # free if channels-last
    else:                                                             # zero-pad to whole tiles
        full = np.zeros((n, 2 * th, 2 * tw, c_out), dy.dtype)
        full[:, :ho, :wo] = dyh
        dyh = full
    dxp = np.zeros((n, 2 * th + 2, 2 * tw + 2, c), dy.dtype) if input_grad else None
    u_t = u.transpose(0, 2, 1)                                        # (16, C_out, C_in)
    if not jit:
        v = _input_tiles_numpy(xp, th, tw)                            # V again, (T, 16, C_in)
        dm = _output_grad_tiles_numpy(dyh, th, tw).transpose(1, 0, 2)   # (16, T, C_out)
        du = np.matmul(v.transpose(1, 2, 0), dm)                    # (16, C_in, C_out)
        dbias = dyh.sum(axis=(0, 1, 2)) if has_bias else None
        if input_grad:
            _input_grad_tiles_numpy(np.matmul(dm, u_t), th, tw, dxp)
    else:
        step = _images_per_chunk(per, max(c, c_out), dy.dtype)

        def work(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
            du_part = np.zeros((16, c, c_out), dy.dtype)
            du_c = np.empty_like(du_part)
            db_part = np.zeros(c_out, np.float64)
            size = min(step, hi - lo)
            dm_buf = np.empty((size * per, 16, c_out), dy.dtype)
            dv_buf = _staggered(size * per, c, dy.dtype)
            v_buf = np.empty((size * per, 16, c), dy.dtype)
            for n0 in range(lo, hi, step):
                n1 = min(n0 + step, hi)
                k = (n1 - n0) * per
                dm_c = dm_buf[:k]
                compiled.winograd_output_grad_tiles(dyh[n0:n1], th, tw, dm_c, db_part)
                dmk = dm_c.transpose(1, 0, 2)                          # (16, t, C_out)
                v_c = v_buf[:k]
                compiled.winograd_input_tiles(xp[n0:n1], th, tw, v_c)   # V again, in cache
                np.matmul(v_c.transpose(1, 2, 0), dmk, out=du_c)
                du_part += du_c
                if input_grad:
                    dv_c = dv_buf[:, :k]
                    np.matmul(dmk, u_t, out=dv_c)                      # (16, t, C_in)
                    compiled.winograd_input_grad_tiles(dv_c, th, tw, dxp[n0:n1])
            return du_part, db_part

        parts = threads.map_split(work, n)
        du = parts[0][0] if len(parts) == 1 else np.sum([p[0] for p in parts], axis=0)
        dbias = np.sum([p[1] for p in parts], axis=0).astype(dy.dtype) if has_bias else None
    dweight = kernel_transform_backward(du, weight.dtype)
    if not input_grad:
        return None, dweight, dbias
    (pt, _), (pl, _) = geo.padding
    return dxp[:, pt:pt + h, pl:pl + w].transpose(0, 3, 1, 2), dweight, dbias


def _forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, geo: ConvGeometry,
             need_backward: bool) -> tuple[np.ndarray, WinogradSaved | None]:
    return winograd_conv2d_forward(x, weight, bias, geo, need_backward=need_backward)


registry.register(registry.Algorithm(
    OP, "winograd", supports, _forward, winograd_conv2d_backward,
    "Winograd F(2x2, 3x3): 3x3 stride-1 kernels, 2.25x fewer multiplications; compiled "
    "tile transforms with Numba, NumPy twins without", prefer, layout="channels-last"))
