"""Hypothesis strategies and checks shared by the tests of functional/ and kernels/:
conv2d and pooling calls drawn over every padding form, stride, dilation and layout."""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np
from hypothesis import assume, settings
from hypothesis import strategies as st

from clearconv.errors import ShapeError
from clearconv.shapes import pair, pool_output_size, resolve_padding

RTOL, ATOL = 1e-10, 1e-12
PROPERTY = settings(max_examples=100, deadline=None)
FEW = settings(max_examples=50, deadline=None)


def assert_same(fast, ref):
    """Fast result equals the reference result: same shape and dtype, values to rtol 1e-10."""
    assert fast.shape == ref.shape
    assert fast.dtype == ref.dtype
    np.testing.assert_allclose(fast, ref, rtol=RTOL, atol=ATOL)


def assert_conv_matches_torch(y, grads, yt, xt, wt, bt, dtype=np.float32, tol=1e-4):
    """A conv forward+backward (y, (dx, dw, db)) equals torch's autograd results (yt and
    the leaves' .grad) to ``tol``, absolute ``tol / 10`` times each result's scale; ours of
    ``dtype``; db None both sides when there is no bias."""
    for name, ours, theirs in [("y", y, yt), ("dx", grads[0], xt.grad),
                               ("dw", grads[1], wt.grad),
                               ("db", grads[2], None if bt is None else bt.grad)]:
        if theirs is None:
            assert ours is None
            continue
        theirs = theirs.detach().numpy()
        assert ours.dtype == dtype, name
        scale = max(1.0, float(np.sqrt(np.mean(theirs.astype(np.float64) ** 2))))
        np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol * 0.1 * scale,
                                   err_msg=f"{name} {np.dtype(dtype).name}")

def assert_close32(a32, a64):
    """A float32 result is float32 and close to the float64 one (relative to its scale)."""
    assert a32.dtype == np.float32
    scale = max(1.0, float(np.abs(a64).max(initial=0.0)))
    np.testing.assert_allclose(a32, a64, rtol=1e-4, atol=1e-4 * scale)


def channels_last(a):
    """The same values as ``a`` (N, C, H, W), stored NHWC in memory (as conv2d returns them)."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def mentions(*items) -> str:
    """A ``match`` pattern that needs every item somewhere in the message, not inside a
    longer number (``mentions(3, 5)`` matches "3 channels ... expects 5")."""
    return "".join(rf"(?=[\s\S]*(?<!\d){re.escape(str(i))}(?!\d))" for i in items)


# ------------------------------------------------------------------------ strategies

counts = st.integers(1, 3)
sizes = st.integers(1, 9)
kernels = st.integers(1, 4)
strides = st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3)))
dilations = st.one_of(st.integers(1, 2), st.tuples(st.integers(1, 2), st.integers(1, 2)))
pad_widths = st.integers(0, 3)
paddings = st.one_of(
    pad_widths,
    st.tuples(pad_widths, pad_widths),
    st.tuples(st.tuples(pad_widths, pad_widths), st.tuples(pad_widths, pad_widths)),
    st.sampled_from(["valid", "same", "SAME"]),
)
seeds = st.integers(0, 2**32 - 1)


class ConvCase(NamedTuple):
    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray | None
    stride: object
    padding: object
    dilation: object
    dy: np.ndarray
    groups: int = 1


@st.composite
def conv_cases(draw, winograd_shapes: bool = False, grouped: bool = False):
    """A conv2d call whose (dilated) kernel fits the padded input.

    C_in goes up to 5 so that both of the fast path's im2col layouts (fewer than 4
    input channels, and 4 or more) are exercised. ``winograd_shapes``: half of the calls
    are 3x3, stride 1, dilation 1 (what Winograd and the direct loop compute).
    ``grouped``: half of the calls have groups > 1, a third of those depthwise.
    """
    n, c_in, c_out = draw(counts), draw(st.integers(1, 5)), draw(counts)
    groups = 1
    if grouped and draw(st.booleans()):
        groups = draw(st.integers(2, 4))
        c_in = groups * draw(st.integers(1, 2)) if not draw(st.booleans()) else groups
        c_out = groups * draw(st.integers(1, 2))
    h, w, kh, kw = draw(sizes), draw(sizes), draw(kernels), draw(kernels)
    stride, padding, dilation = draw(strides), draw(paddings), draw(dilations)
    if winograd_shapes and draw(st.booleans()):
        kh = kw = 3
        stride = dilation = 1
    (pt, pb), (pl, pr) = resolve_padding(padding, (kh, kw), pair(stride, "stride"),
                                         pair(dilation, "dilation"), (h, w))
    dh, dw = pair(dilation, "dilation")
    assume(dh * (kh - 1) + 1 <= h + pt + pb and dw * (kw - 1) + 1 <= w + pl + pr)
    rng = np.random.default_rng(draw(seeds))
    x = rng.standard_normal((n, c_in, h, w))
    if draw(st.booleans()):
        x = channels_last(x)
    weight = rng.standard_normal((c_out, c_in // groups, kh, kw))
    bias = rng.standard_normal(c_out) if draw(st.booleans()) else None
    sh, sw = pair(stride, "stride")
    ho = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    wo = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    dy = rng.standard_normal((n, c_out, ho, wo))
    if draw(st.booleans()):
        dy = channels_last(dy)
    return ConvCase(x, weight, bias, stride, padding, dilation, dy, groups)


class PoolCase(NamedTuple):
    x: np.ndarray
    kernel_size: object
    stride: object
    padding: object
    ceil_mode: bool
    dy_rng: np.random.Generator


@st.composite
def pool_cases(draw, values: str = "tie_free", two_by_two: bool = False,
               negative: bool = False):
    """A pooling call whose windows the geometry accepts (asked of clearconv.shapes).

    ``values``: "tie_free" (a shuffled linspace), "ties" (only 0, 1 and 2, so that most
    windows have tied maxima) or "nonfinite" (ties plus NaN, -inf and +inf).
    ``two_by_two``: half of the calls are 2x2 windows, stride 2, unpadded (what the
    compiled 2x2 loops compute), with up to 20 channels. ``negative``: values shifted
    by -2, so that many windows have a maximum <= 0 (for a fused ReLU).
    """
    n, c, h, w = draw(counts), draw(counts), draw(sizes), draw(sizes)
    if two_by_two:
        c = draw(st.sampled_from([1, 2, 3, 6, 16, 20]))
    kh, kw = draw(kernels), draw(kernels)
    kernel_size = draw(st.sampled_from([(kh, kw), kh]))
    kh, kw = pair(kernel_size, "kernel_size")
    stride = draw(st.one_of(st.none(), strides))
    sh, sw = (kh, kw) if stride is None else pair(stride, "stride")
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    padding = ph if ph == pw and draw(st.booleans()) else (ph, pw)
    ceil_mode = draw(st.booleans())
    if two_by_two and draw(st.booleans()):
        kernel_size, stride, padding, ceil_mode = 2, None, 0, False
        kh = kw = sh = sw = 2
        ph = pw = 0
    try:
        pool_output_size(h, kh, sh, ph, ceil_mode)
        pool_output_size(w, kw, sw, pw, ceil_mode)
    except ShapeError:
        assume(False)
    rng = np.random.default_rng(draw(seeds))
    if values == "tie_free":
        x = rng.permutation(np.linspace(-1.0, 1.0, n * c * h * w)).reshape(n, c, h, w)
    else:
        x = rng.integers(0, 3, (n, c, h, w)).astype(np.float64)
    if negative:
        x -= 2
    if values == "nonfinite":
        special = rng.random(x.shape) < 0.3
        x[special] = rng.choice([np.nan, -np.inf, np.inf], size=int(special.sum()))
    if draw(st.booleans()):
        x = channels_last(x)
    return PoolCase(x, kernel_size, stride, padding, ceil_mode, rng)


def random_like(rng, y, layout_last: bool):
    dy = rng.standard_normal(y.shape)
    return channels_last(dy) if layout_last else dy


class TransposedCase(NamedTuple):
    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray | None
    stride: tuple[int, int]
    padding: tuple[int, int]
    output_padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    dy: np.ndarray


@st.composite
def transposed_cases(draw):
    """A conv_transpose2d call PyTorch accepts: groups dividing both channel counts,
    output_padding below the stride, a positive output size."""
    from clearconv.errors import ClearConvError
    from clearconv.shapes import conv_transpose2d_geometry

    groups = draw(st.integers(1, 3))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    n, h, w = draw(counts), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    kernel = (draw(kernels), draw(kernels))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    output_padding = tuple(draw(st.integers(0, s - 1)) for s in stride)
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    try:
        geo = conv_transpose2d_geometry((n, c_in, h, w), (c_in, c_out // groups, *kernel),
                                        stride, padding, output_padding, dilation, groups)
    except (ShapeError, ClearConvError):
        assume(False)
    rng = np.random.default_rng(draw(seeds))
    x = rng.standard_normal((n, c_in, h, w))
    if draw(st.booleans()):
        x = channels_last(x)
    weight = rng.standard_normal((c_in, c_out // groups, *kernel))
    bias = rng.standard_normal(c_out) if draw(st.booleans()) else None
    dy = rng.standard_normal(geo.in_shape)
    return TransposedCase(x, weight, bias, stride, padding, output_padding, dilation, groups,
                          dy)


class PoolCaseMore(NamedTuple):
    """A pooling call with every form pooling takes: dilation (max), asymmetric padding
    ((top, bottom), (left, right)), ceil_mode, divisor_override (average)."""

    x: np.ndarray
    kernel_size: object
    stride: object
    padding: object
    ceil_mode: bool
    dilation: object
    divisor_override: int | None
    dy_rng: np.random.Generator


@st.composite
def pool_cases_more(draw, values: str = "tie_free", dilated: bool = True):
    """A pooling call (asked of clearconv.shapes) drawing dilation (when ``dilated``),
    asymmetric padding and divisor_override on top of :func:`pool_cases`' forms."""
    n, c, h, w = draw(counts), draw(counts), draw(sizes), draw(sizes)
    kh, kw = draw(kernels), draw(kernels)
    kernel_size = draw(st.sampled_from([(kh, kw), kh]))
    kh, kw = pair(kernel_size, "kernel_size")
    stride = draw(st.one_of(st.none(), strides))
    sh, sw = (kh, kw) if stride is None else pair(stride, "stride")
    dilation = draw(dilations) if dilated else 1
    dh, dw = pair(dilation, "dilation")
    pads = ((draw(st.integers(0, kh // 2)), draw(st.integers(0, kh // 2))),
            (draw(st.integers(0, kw // 2)), draw(st.integers(0, kw // 2))))
    padding = draw(st.sampled_from([pads, (pads[0][0], pads[1][0]), pads[0][0]]))
    (pt, pb), (pl, pr) = resolve_padding(padding, (1, 1), (1, 1), (1, 1))
    ceil_mode = draw(st.booleans())
    try:
        pool_output_size(h, kh, sh, pt, ceil_mode, pb, dh)
        pool_output_size(w, kw, sw, pl, ceil_mode, pr, dw)
    except ValueError:      # a window larger than the input, a side over half the window
        assume(False)
    divisor_override = draw(st.one_of(st.none(), st.integers(-3, 7).filter(bool)))
    rng = np.random.default_rng(draw(seeds))
    if values == "tie_free":
        x = rng.permutation(np.linspace(-1.0, 1.0, n * c * h * w)).reshape(n, c, h, w)
    else:
        x = rng.integers(0, 3, (n, c, h, w)).astype(np.float64)
    if draw(st.booleans()):
        x = channels_last(x)
    return PoolCaseMore(x, kernel_size, stride, padding, ceil_mode, dilation,
                        divisor_override, rng)


class ResizeCase(NamedTuple):
    """An input and the size arguments of an adaptive pooling or an upsampling."""

    x: np.ndarray
    output_size: object          # adaptive: int, (h, w), with None entries
    size: object                 # upsampling: size or None
    scale_factor: object         # upsampling: scale_factor or None
    dy_rng: np.random.Generator


@st.composite
def resize_cases(draw, values: str = "tie_free"):
    """An (N, C, H, W) input with an adaptive output size (smaller, equal or larger
    than the input, dividing it or not) and an upsampling size or scale factor.
    ``values``: "tie_free", "ties" (0, 1, 2) or "nonfinite" (ties plus NaN, +-inf)."""
    n, c, h, w = draw(counts), draw(counts), draw(sizes), draw(sizes)
    rng = np.random.default_rng(draw(seeds))
    if values == "tie_free":
        x = rng.permutation(np.linspace(-1.0, 1.0, n * c * h * w)).reshape(n, c, h, w)
    else:
        x = rng.integers(0, 3, (n, c, h, w)).astype(np.float64)
    if values == "nonfinite":
        special = rng.random(x.shape) < 0.3
        x[special] = rng.choice([np.nan, -np.inf, np.inf], size=int(special.sum()))
    out = st.integers(1, 12)
    output_size = draw(st.one_of(out, st.tuples(st.one_of(st.none(), out),
                                                st.one_of(st.none(), out))))
    factor = st.sampled_from([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 1.7, 0.75])
    if draw(st.booleans()):
        size, scale_factor = draw(st.one_of(out, st.tuples(out, out))), None
    else:
        size = None
        scale_factor = draw(st.one_of(factor, st.tuples(factor, factor)))
        sh, sw = scale_factor if isinstance(scale_factor, tuple) else (scale_factor,) * 2
        assume(int(np.floor(h * sh)) >= 1 and int(np.floor(w * sw)) >= 1)
    if draw(st.booleans()):
        x = channels_last(x)
    return ResizeCase(x, output_size, size, scale_factor, rng)


class Pool1dCase(NamedTuple):
    x: np.ndarray              # (N, C, L)
    kernel_size: int
    stride: int | None
    padding: object            # int or (left, right)
    ceil_mode: bool
    dilation: int
    dy_rng: np.random.Generator


@st.composite
def pool1d_cases(draw):
    """A 1-D pooling call over (N, C, L), tie-free values, whose windows fit."""
    n, c, length = draw(counts), draw(counts), draw(st.integers(1, 12))
    k = draw(kernels)
    stride = draw(st.one_of(st.none(), st.integers(1, 3)))
    dilation = draw(st.integers(1, 2))
    left, right = draw(st.integers(0, k // 2)), draw(st.integers(0, k // 2))
    padding = left if left == right and draw(st.booleans()) else (left, right)
    ceil_mode = draw(st.booleans())
    try:
        pool_output_size(length, k, k if stride is None else stride, left, ceil_mode, right,
                         dilation)
    except ValueError:
        assume(False)
    rng = np.random.default_rng(draw(seeds))
    x = rng.permutation(np.linspace(-1.0, 1.0, n * c * length)).reshape(n, c, length)
    return Pool1dCase(x, k, stride, padding, ceil_mode, dilation, rng)
