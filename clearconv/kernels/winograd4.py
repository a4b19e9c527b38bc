"""conv2d algorithm ``'winograd-4x4'``: Winograd's F(4x4, 3x3), for inference, MATH.md §7.

The same ``Z = W * A + b`` as im2col (:mod:`clearconv.functional.conv`) and as
F(2x2, 3x3) (:mod:`clearconv.kernels.winograd`, whose docstring derives the method), for
kernels 3x3, stride 1, dilation 1, with bigger tiles: the padded input is cut into 6x6
tiles that overlap by two rows and columns, and each gives a 4x4 block of outputs as

    ``Y = A^T [ U . V ] A``,  ``U = G g G^T`` (6x6 per kernel),  ``V = B^T d B`` (6x6 per tile)

(the matrices are written out in :mod:`clearconv.kernels.compiled`), so over all tiles
and channels 36 matrix products ``M[k] = V[k] U[k]``, (tiles x C_in) @ (C_in x C_out):
36 products per 16 outputs, 2.25 per output against F(2x2, 3x3)'s 4 and im2col's 9.

Inference only (``need_backward=False``): it keeps nothing for a backward, and training
takes F(2x2, 3x3), whose backward exists and whose rounding is closer to the direct
sum's. The transform constants (up to 8 in A, 5 in B, 1/24 in G) round more than
F(2x2, 3x3)'s: in float32 the outputs differ from the direct sum by about 1e-6 of their
scale (F(2x2, 3x3): a few 1e-7), far inside the tests' tolerance against PyTorch.
The transforms are compiled loops only (no NumPy twin: without Numba the algorithm does
not apply, and 'auto' takes the others).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..functional.conv import OP, ConvCall
from ..shapes import ConvGeometry
from . import registry, threads, tuning
from .copies import padded_nhwc
from .jit import AVAILABLE, compiled, worth
from .winograd import transform_kernels

_G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
               [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float64)
_GG = np.kron(_G, _G)     # (36, 9): [6a+b, 3i+j] = G[a, i] G[b, j]
PLANES = 36


def supports(call: ConvCall) -> tuple[bool, str]:
    """Whether F(4x4, 3x3) computes the call: 3x3, stride 1, dilation 1, ungrouped, an
    inference forward (nothing kept for a backward), compiled transforms."""
    geo = call.geometry
    if geo.groups != 1:
        return False, f"ungrouped convolutions only, got groups {geo.groups}"
    if not (geo.kernel == (3, 3) and geo.stride == (1, 1) and geo.dilation == (1, 1)):
        return False, (f"needs a 3x3 kernel, stride 1 and dilation 1; got kernel "
                       f"{geo.kernel}, stride {geo.stride}, dilation {geo.dilation}")
    if call.need_backward:
        return False, "inference only (need_backward=False): it has no backward"
    if not AVAILABLE:
        return False, "its transforms are compiled loops only: needs Numba"
    return True, "3x3 kernel, stride 1, dilation 1, inference, compiled transforms"


def prefer(call: ConvCall) -> tuple[bool, str]:
    """'auto' takes it for float32 inference with enough channels and outputs."""
    ok, why = supports(call)
    if not ok:
        return ok, why
    if call.dtype != np.float32:
        return False, f"float32 only under 'auto', got {np.dtype(call.dtype).name}"
    jit_ok, jit_why = worth(call.geometry.in_shape[0])
    if not jit_ok:
        return False, jit_why
    geo = call.geometry
    c_in, c_out = geo.in_shape[1], geo.out_shape[1]
    if min(c_in, c_out) < tuning.WINOGRAD_MIN_CHANNELS:
        return False, (f"needs >= {tuning.WINOGRAD_MIN_CHANNELS} input and output channels, "
                       f"got {c_in} -> {c_out}")
    ho, wo = geo.out_shape[2:]
    th, tw = _tile_counts(geo)
    waste = 16 * th * tw / (ho * wo)
    if waste > tuning.WINOGRAD4_MAX_WASTE:
        return False, (f"its 4x4 tiles cover {waste:.2f}x the {ho}x{wo} outputs (more than "
                       f"{tuning.WINOGRAD4_MAX_WASTE:g}x: F(2x2, 3x3) is faster)")
    return True, (f"3x3 stride 1 inference, {c_in} -> {c_out} channels, {ho}x{wo} outputs, "
                  f"float32")


def _tile_counts(geo: ConvGeometry) -> tuple[int, int]:
    ho, wo = geo.out_shape[2:]
    return (ho + 3) // 4, (wo + 3) // 4


def kernel_transform(weight: np.ndarray) -> np.ndarray:
    """F(4x4, 3x3)'s U = G g G^T for every kernel, as (36, C_in, C_out)."""
    return transform_kernels(weight, _GG)


def _staggered(t: int, cols: int, dtype: np.dtype) -> np.ndarray:
    """An empty (36, t, cols) array whose planes start 256 bytes apart modulo 4 KiB, so
    that reading all 36 planes of one tile does not hit one L1 cache set 36 times (see
    :func:`clearconv.kernels.winograd._staggered`)."""
    isz = np.dtype(dtype).itemsize
    plane = t * cols * isz
    step = plane + (256 - plane) % 4096
    buf = np.empty((PLANES - 1) * step // isz + t * cols, dtype)
    return as_strided(buf, (PLANES, t, cols), (step, cols * isz, isz))


def forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, geo: ConvGeometry,
            need_backward: bool) -> tuple[np.ndarray, None]:
    """The 3x3 stride-1 convolution of checked, same-dtype inputs (see conv2d_forward), a
    few images at a time per thread so that each chunk's tiles and products stay in
    cache. Returns y (N, C_out, H_out, W_out) as an NCHW view of NHWC memory."""
    n, c, h, w = x.shape
    c_out = weight.shape[0]
    ho, wo = geo.out_shape[2:]
    th, tw = _tile_counts(geo)
    per = th * tw
    (pt, _), (pl, _) = geo.padding   # padded further at the bottom/right to whole tiles
    xp = padded_nhwc(x, ((pt, 4 * th + 2 - pt - h), (pl, 4 * tw + 2 - pl - w)))
    u = kernel_transform(weight)
    y = np.empty((n, ho, wo, c_out), x.dtype)
    b = np.zeros(c_out, x.dtype) if bias is None else bias
    width = max(c, c_out)
    step = max(1, tuning.CHUNK_BYTES // (PLANES * width * x.dtype.itemsize * per))

    def work(lo: int, hi: int) -> None:
        size = min(step, hi - lo)          # a part of fewer images needs less buffer
        v_buf = np.empty((size * per, PLANES, c), x.dtype)
        m_buf = _staggered(size * per, c_out, x.dtype)
        for n0 in range(lo, hi, step):
            n1 = min(n0 + step, hi)
            k = (n1 - n0) * per
            v_c = v_buf[:k]
            compiled.winograd4_input_tiles(xp[n0:n1], th, tw, v_c)
            m_c = m_buf[:, :k]
            np.matmul(v_c.transpose(1, 0, 2), u, out=m_c)               # (36, t, C_out)
            compiled.winograd4_output_tiles(m_c, b, th, tw, y[n0:n1])

    threads.map_split(work, n)
    return y.transpose(0, 3, 1, 2), None


registry.register(registry.Algorithm(
    OP, "winograd-4x4", supports, forward, None,
    "Winograd F(4x4, 3x3) for inference: 3x3 stride-1 kernels, 4x fewer multiplications "
    "than im2col; compiled tile transforms (Numba)", prefer, layout="channels-last"))
