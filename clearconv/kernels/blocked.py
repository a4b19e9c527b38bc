"""conv2d algorithm ``'direct-nhwc'``: a register-blocked direct convolution on
channels-last memory, for the mid-size layers (16-128 channels) whose products are too
narrow for the BLAS.

The same sum as MATH.md §7, with no columns and no transforms::

    Z[n, m, k, o] = b[o] + sum_{i,j,c} W[o, c, i, j] * A_pad[n, m*s_h + i*d_h, k*s_w + j*d_w, c]

The input is read as channels-last memory (NHWC, as conv2d hands it between layers: no
copy then) and never padded: a tap that falls on the zero padding is left out of the sum
(the border pixels are made one at a time, their in-range taps only). The
weight is repacked once per call into blocks of 16 output channels, ``(C_out / 16, kh, kw,
C_in, 16)`` (zeros up to a multiple of 16). The compiled loop
(:func:`~clearconv.kernels.blocked_loops.forward`) keeps 8 output pixels (4 on AVX2
CPUs) x 16 output channels of sums in vector registers and, for each kernel tap and input
channel, loads one 16-wide weight vector and adds it times each pixel's input value (one
16-lane fused multiply-add per pixel); on AVX-512 CPUs, in float32, two such blocks of 16
channels at once (16 registers of sums, each input value loaded once for 32 channels);
the batch is split between threads
(:mod:`~clearconv.kernels.threads`).

Backward (MATH.md §9), with the same loops:

- dA: the input gradient of a stride-1 convolution is the convolution of dZ, zero-padded
  by ``k - 1 - p`` on each side, with the kernel rotated 180° and its input and output
  channels swapped (:func:`rotated_kernel`), computed by the forward loop (other strides
  and dilations: col2im of dZ W, as 'im2col-split' makes it);
- dW and db: :func:`~clearconv.kernels.blocked_loops.weight_grad` sums
  ``A_pad[n, m*s_h + i*d_h, k*s_w + j*d_w, c] * dZ[n, m, k, o]`` over each image's pixels, 8 input
  channels (4 on AVX2) x 16 output channels (AVX-512, float32: x 32) of sums in registers,
  from the input the
  forward kept (each tap's sum over the outputs whose tap lies inside it).

Output: an NCHW view of channels-last memory.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import NamedTuple

import numpy as np

from ..functional.conv import OP, Conv2dCache, ConvCall
from ..shapes import ConvGeometry
from . import jit, registry, threads, tuning
from .copies import padded_nhwc
from .im2col import input_gradient as columns_input_gradient

#: output channels per block of the compiled loops (blocked_loops.LANES, without
#: importing Numba to read it)
LANES = 16


def _loops() -> ModuleType:
    """:mod:`clearconv.kernels.blocked_loops`, imported (with Numba) at the first call."""
    from . import blocked_loops

    return blocked_loops


class BlockedSaved(NamedTuple):
    """What the backward needs: the channels-last input (no padding: the loops leave the
    padding's taps out)."""

    xh: np.ndarray          # (N, H, W, C_in), C-contiguous


def supports(call: ConvCall) -> tuple[bool, str]:
    """Whether the blocked loop computes the call: ungrouped, with Numba."""
    geo = call.geometry
    if geo.groups != 1:
        return False, f"ungrouped convolutions only, got groups {geo.groups}"
    if not jit.AVAILABLE:
        return False, 'needs Numba (pip install "clearconv[fast]")'
    return True, "any stride and dilation, compiled register-blocked loop"


@functools.cache
def wide_registers() -> bool:
    """Whether this CPU has AVX-512 (32 vector registers of 16 float32), by NumPy's own
    CPU detection (Numba not imported): the blocked loop's float64 thresholds differ."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:         # pragma: no cover - NumPy 1.x
        from numpy.core._multiarray_umath import __cpu_features__ as features
    return bool(features.get("AVX512F", False))


def prefer(call: ConvCall) -> tuple[bool, str]:
    """'auto' takes the blocked loop where it was measured faster than Winograd and the
    split im2col (:mod:`~clearconv.kernels.tuning`): 3x3 convolutions, stride 1 or 2,
    dilation 1, output channels a multiple of 16, input and output channels from
    BLOCKED_MIN_CHANNELS to BLOCKED_MAX_CHANNELS in training and
    BLOCKED_MAX_CHANNELS_INFERENCE in inference (stride 1, above
    BLOCKED_MAX_CHANNELS_ANY_WIDTH channels output widths that are a multiple of
    BLOCKED_WIDTH_MULTIPLE; BLOCKED_MAX_CHANNELS_STRIDED for stride 2,
    BLOCKED_MAX_CHANNELS_STRIDED_TRAINING_AVX2 in
    training without AVX-512) in float32, up to
    BLOCKED_MAX_CHANNELS_FLOAT64 in float64 (BLOCKED_MAX_CHANNELS_FLOAT64_AVX2 without
    AVX-512)."""
    ok, why = supports(call)
    if not ok:
        return ok, why
    geo = call.geometry
    if call.dtype not in (np.float32, np.float64):
        return False, f"float32 and float64 only, got {np.dtype(call.dtype).name}"
    if geo.kernel != (3, 3) or geo.stride not in ((1, 1), (2, 2)) or geo.dilation != (1, 1):
        return False, (f"3x3 kernels, stride 1 or 2, dilation 1 under 'auto'; got kernel "
                       f"{geo.kernel}, stride {geo.stride}, dilation {geo.dilation}")
    c_in, c_out = geo.in_shape[1], geo.out_shape[1]
    if c_out % LANES:
        return False, f"needs a multiple of {LANES} output channels, got {c_out}"
    lo = tuning.BLOCKED_MIN_CHANNELS
    if call.dtype == np.float64 and not wide_registers():
        hi, mode = tuning.BLOCKED_MAX_CHANNELS_FLOAT64_AVX2, "float64 without AVX-512"
    elif call.dtype == np.float64:  # against im2col-split's float64 products
        hi, mode = tuning.BLOCKED_MAX_CHANNELS_FLOAT64, "float64"
    elif geo.stride == (2, 2) and call.need_backward and not wide_registers():
        hi, mode = tuning.BLOCKED_MAX_CHANNELS_STRIDED_TRAINING_AVX2, \
            "stride-2 training without AVX-512"
    elif geo.stride == (2, 2):
        hi, mode = tuning.BLOCKED_MAX_CHANNELS_STRIDED, "stride 2"
    elif call.need_backward:
        hi, mode = tuning.BLOCKED_MAX_CHANNELS, "training"
    else:
        hi, mode = tuning.BLOCKED_MAX_CHANNELS_INFERENCE, "inference"
    if not (lo <= c_in <= hi and lo <= c_out <= hi):
        return False, (f"for {lo} to {hi} input and output channels in {mode}, got "
                       f"{c_in} -> {c_out}")
    wide, wo = tuning.BLOCKED_MAX_CHANNELS_ANY_WIDTH, geo.out_shape[3]
    if (call.dtype == np.float32 and geo.stride == (1, 1) and max(c_in, c_out) > wide
            and wo % tuning.BLOCKED_WIDTH_MULTIPLE):
        return False, (f"above {wide} channels, for output widths that are a multiple of "
                       f"{tuning.BLOCKED_WIDTH_MULTIPLE}, got {c_in} -> {c_out} channels, "
                       f"width {wo}")
    ok, why = jit.worth(geo.in_shape[0])
    if not ok:
        return ok, why
    return True, (f"3x3 stride {geo.stride[0]}, {c_in} -> {c_out} channels, "
                  f"{np.dtype(call.dtype).name}: products too narrow for the BLAS, "
                  f"register-blocked loop")


def weight_blocks(weight: np.ndarray) -> np.ndarray:
    """W (C_out, C_in, kh, kw) as (ceil(C_out / 16), kh, kw, C_in, 16): block g, lane o
    holds output channel 16*g + o (zeros past C_out)."""
    c_out, c_in, kh, kw = weight.shape
    groups = -(-c_out // LANES)
    wb = np.zeros((groups * LANES, kh, kw, c_in), weight.dtype)
    wb[:c_out] = weight.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(wb.reshape(groups, LANES, kh, kw, c_in).transpose(0, 2, 3, 4, 1))


def weight_from_blocks(wb: np.ndarray, c_out: int) -> np.ndarray:
    """The inverse of :func:`weight_blocks`: (G, kh, kw, C_in, 16) -> (C_out, C_in, kh, kw)."""
    groups, kh, kw, c_in, _ = wb.shape
    w = wb.transpose(0, 4, 3, 1, 2).reshape(groups * LANES, c_in, kh, kw)
    return np.ascontiguousarray(w[:c_out])


def rotated_kernel(weight: np.ndarray) -> np.ndarray:
    """W' (C_in, C_out, kh, kw) with ``W'[c, o, i, j] = W[o, c, kh-1-i, kw-1-j]``: the kernel
    whose stride-1 convolution of padded dZ is dA (MATH.md §9)."""
    return weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)


def _bias_blocks(bias: np.ndarray | None, c_out: int, dtype: np.dtype) -> np.ndarray:
    b = np.zeros((-(-c_out // LANES), LANES), dtype)
    if bias is not None:
        b.reshape(-1)[:c_out] = bias
    return b


def _steps(geo: ConvGeometry) -> tuple[int, int, int, int]:
    """(s_h, s_w, d_h, d_w): the loops' stride and dilation."""
    return (*geo.stride, *geo.dilation)


def channels_last(x: np.ndarray) -> np.ndarray:
    """x (N, C, H, W) as C-contiguous (N, H, W, C): a view where x is channels-last memory
    (as conv2d's and batch norm's outputs are), else a copy (split between threads)."""
    xh = x.transpose(0, 2, 3, 1)
    return xh if xh.flags.c_contiguous else padded_nhwc(x, ((0, 0), (0, 0)))


def _pads(geo: ConvGeometry) -> tuple[int, int]:
    """(top, left): the zero rows above and columns left of the input; the loops read
    only the input itself and leave the padding's taps out of the sums."""
    (pt, _), (pl, _) = geo.padding
    return pt, pl


def _conv(xh: np.ndarray, wb: np.ndarray, b: np.ndarray, out_hw: tuple[int, int],
          c_out: int, steps: tuple[int, int, int, int] = (1, 1, 1, 1),
          pads: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The blocked loop on NHWC ``xh`` with ``pads = (top, left)`` rows and columns of
    (virtual) zeros, the batch split between threads: an NCHW view of the
    (N, H_out, W_out, C_out) channels-last result."""
    n = xh.shape[0]
    ho, wo = out_hw
    y = np.empty((n, ho, wo, wb.shape[0], LANES), xh.dtype)
    loops = _loops()
    threads.map_split(lambda lo, hi: loops.forward(xh[lo:hi], wb, b, steps, pads, y[lo:hi]), n)
    y = y.reshape(n, ho, wo, -1)
    if y.shape[3] != c_out:
        y = y[..., :c_out]
    return y.transpose(0, 3, 1, 2)


def forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, geo: ConvGeometry,
            need_backward: bool) -> tuple[np.ndarray, BlockedSaved | None]:
    """Z = W * A + b by the blocked loop: y (N, C_out, H_out, W_out), an NCHW view of
    channels-last memory, and the channels-last input for the backward."""
    c_out = weight.shape[0]
    xh = channels_last(x)
    y = _conv(xh, weight_blocks(weight), _bias_blocks(bias, c_out, x.dtype),
              geo.out_shape[2:], c_out, _steps(geo), _pads(geo))
    return y, (BlockedSaved(xh) if need_backward else None)


def _output_grad(dy: np.ndarray, groups: int) -> np.ndarray:
    """dZ as C-contiguous (N, H_out, W_out, groups, 16), zeros past C_out (free when dy is
    already channels-last with a multiple of 16 channels)."""
    n, c_out, ho, wo = dy.shape
    if c_out == groups * LANES:
        return channels_last(dy).reshape(n, ho, wo, groups, LANES)
    dz = np.zeros((n, ho, wo, groups * LANES), dy.dtype)
    dz[..., :c_out] = dy.transpose(0, 2, 3, 1)
    return dz.reshape(n, ho, wo, groups, LANES)


def input_gradient(dy: np.ndarray, weight: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """dA of a stride-1, dilation-1 convolution (MATH.md §9): the blocked forward loop on
    dZ, zero-padded by ``k - 1 - p`` at each side (rows or columns cropped off where the
    padding exceeds k - 1), with :func:`rotated_kernel`. (N, C_in, H, W), an NCHW view of
    channels-last memory."""
    kh, kw = geo.kernel
    (pt, pb), (pl, pr) = geo.padding
    pads = [kh - 1 - pt, kh - 1 - pb, kw - 1 - pl, kw - 1 - pr]
    _, _, ho, wo = dy.shape
    dy = dy[:, :, max(0, -pads[0]):ho - max(0, -pads[1]), max(0, -pads[2]):wo - max(0, -pads[3])]
    c_in = geo.in_shape[1]
    return _conv(channels_last(dy), weight_blocks(rotated_kernel(weight)),
                 _bias_blocks(None, c_in, dy.dtype), geo.in_shape[2:], c_in,
                 pads=(max(0, pads[0]), max(0, pads[2])))


def backward(dy: np.ndarray, cache: Conv2dCache, input_grad: bool
             ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """(dx, dweight, dbias) as conv2d_backward: dW and db by the blocked weight-gradient
    loop (each thread its images, then the sums added); dA by :func:`input_gradient` for
    stride 1 and dilation 1, else as 'im2col-split' makes it (col2im of dZ W)."""
    geo, weight = cache.geometry, cache.weight
    xh = cache.saved.xh
    c_out, c_in, kh, kw = weight.shape
    groups = -(-c_out // LANES)
    dz = _output_grad(dy, groups)
    loops = _loops()

    def part(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        dwb = np.zeros((groups, kh, kw, c_in, LANES), weight.dtype)
        db = np.zeros((groups, LANES), weight.dtype)
        loops.weight_grad(xh[lo:hi], dz[lo:hi], _steps(geo), _pads(geo), dwb, db)
        return dwb, db

    parts = threads.map_split(part, geo.in_shape[0])
    dweight = weight_from_blocks(threads.add_up([dwb for dwb, _ in parts]), c_out)
    dbias = threads.add_up([db for _, db in parts]).reshape(-1)[:c_out] if cache.has_bias else None
    if not input_grad:
        return None, dweight, dbias
    if geo.stride == geo.dilation == (1, 1):
        return input_gradient(dy, weight, geo), dweight, dbias
    return columns_input_gradient(dy, geo, weight), dweight, dbias   # as 'im2col-split'



registry.register(registry.Algorithm(
    OP, "direct-nhwc", supports, forward, backward,
    "a register-blocked direct loop on channels-last memory, 8 (AVX2: 4) pixels x 16 "
    "channels of sums in vector registers (Numba)", prefer, layout="channels-last"))
