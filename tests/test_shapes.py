"""Shape arithmetic (MATH.md §4-6, §10): hand values, brute force, PyTorch, error messages."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from clearconv.errors import ClearConvError, ShapeError
from clearconv.shapes import (
    ceil_div,
    conv2d_output_shape,
    conv2d_params,
    conv_output_size,
    dense_params,
    pair,
    pool_output_size,
    resolve_padding,
    same_padding,
)

# ---------------------------------------------------------------------- conv_output_size


@pytest.mark.parametrize("args, expected", [
    ((6, 3), 4),                      # MATH.md §4: 6x6 image, 3x3 kernel -> 4x4 (valid)
    ((6, 3, 1, 1), 6),                # 'same' with p = (f-1)/2
    ((7, 3, 2, 1), 4),                # MATH.md §5: floor((7 + 2 - 3)/2) + 1
    ((28, 5), 24),                    # LeNet's first layer
    ((28, 3, 1, 1), 28),
    ((32, 3, 2, 1), 16),
    ((14, 3, 1, 1), 14),
    ((8, 2, 2), 4),
    ((9, 2, 2), 4),                   # the last row is not reached
    ((5, 2, 2, 0, 1), 3),             # asymmetric: 0 before, 1 after
    ((5, 3, 1, 2, 0), 5),
    ((7, 3, 1, 0, 0, 2), 3),          # dilation 2: extent 5
    ((10, 3, 3, 2, 2, 2), 4),         # floor((14 - 5)/3) + 1
    ((3, 3), 1),                      # kernel covers the input
    ((1, 1), 1),
])
def test_conv_output_size_hand_values(args, expected):
    assert conv_output_size(*args) == expected


def brute_force_positions(n: int, f: int, s: int, pb: int, pa: int, d: int) -> int:
    """Count window positions literally: starts 0, s, 2s, ... whose extent fits."""
    span = d * (f - 1) + 1
    return sum(1 for start in range(0, n + pb + pa, s) if start + span <= n + pb + pa)


def test_conv_output_size_equals_a_count_of_window_positions():
    for n, f, s, pb, pa, d in itertools.product(range(1, 10), range(1, 5), range(1, 4),
                                                range(3), range(3), range(1, 3)):
        expected = brute_force_positions(n, f, s, pb, pa, d)
        if expected == 0:
            with pytest.raises(ShapeError):
                conv_output_size(n, f, s, pb, pa, d)
        else:
            assert conv_output_size(n, f, s, pb, pa, d) == expected, (n, f, s, pb, pa, d)


def test_conv_output_size_symmetric_padding_is_the_article_formula():
    for n, f, s, p in itertools.product(range(3, 12), range(1, 4), range(1, 4), range(2)):
        assert conv_output_size(n, f, s, p) == (n + 2 * p - f) // s + 1


def test_conv_output_size_error_names_the_numbers():
    with pytest.raises(ShapeError, match=r"extent 5 .*kernel 5.*padded input 3 \(input 3"):
        conv_output_size(3, 5)
    with pytest.raises(ShapeError, match=r"extent 7 \(kernel 3, dilation 3\).*input 6"):
        conv_output_size(4, 3, 1, 1, 1, 3)


# -------------------------------------------------------------------------- same_padding

@pytest.mark.parametrize("args, expected", [
    ((6, 3), (1, 1)),
    ((6, 5), (2, 2)),
    ((6, 1), (0, 0)),
    ((6, 4), (1, 2)),                 # even kernel: the extra goes after (bottom/right)
    ((5, 2), (0, 1)),
    ((7, 3, 1, 2), (2, 2)),           # dilation: total d*(f-1)
    ((7, 2, 1, 3), (1, 2)),
    ((7, 3, 2), (1, 1)),              # TensorFlow rule: out ceil(7/2) = 4, total 2
    ((8, 3, 2), (0, 1)),              # out 4, total 3*2 + 3 - 8 = 1: after
    ((32, 3, 2), (0, 1)),
    ((10, 5, 3), (2, 2)),             # out 4, total 9 + 5 - 10 = 4
    ((5, 1, 2), (0, 0)),
    ((4, 2, 4), (0, 0)),              # stride larger than the kernel: nothing to pad
])
def test_same_padding_hand_values(args, expected):
    assert same_padding(*args) == expected


def test_same_padding_gives_output_ceil_n_over_s_with_the_extra_after():
    for n, f, s, d in itertools.product(range(1, 14), range(1, 6), range(1, 5), range(1, 3)):
        before, after = same_padding(n, f, s, d)
        assert after - before in (0, 1), (n, f, s, d)
        assert conv_output_size(n, f, s, before, after, d) == math.ceil(n / s), (n, f, s, d)
        if s == 1:
            assert before + after == d * (f - 1)


# ----------------------------------------------------------------------- resolve_padding

@pytest.mark.parametrize("padding, kernel, stride, dilation, size, expected", [
    (0, (3, 3), (1, 1), (1, 1), None, ((0, 0), (0, 0))),
    (2, (3, 3), (1, 1), (1, 1), None, ((2, 2), (2, 2))),
    (np.int64(1), (3, 3), (1, 1), (1, 1), None, ((1, 1), (1, 1))),
    ((1, 2), (3, 3), (1, 1), (1, 1), None, ((1, 1), (2, 2))),
    (((0, 1), (2, 3)), (3, 3), (1, 1), (1, 1), None, ((0, 1), (2, 3))),
    ([[1, 0], [0, 1]], (3, 3), (1, 1), (1, 1), None, ((1, 0), (0, 1))),
    ("valid", (5, 5), (2, 2), (1, 1), None, ((0, 0), (0, 0))),
    ("same", (3, 3), (1, 1), (1, 1), None, ((1, 1), (1, 1))),
    ("SAME", (4, 3), (1, 1), (1, 1), None, ((1, 2), (1, 1))),
    ("same", (2, 2), (1, 1), (1, 1), None, ((0, 1), (0, 1))),
    ("same", (3, 2), (1, 1), (2, 3), None, ((2, 2), (1, 2))),
    ("same", (3, 3), (2, 2), (1, 1), (7, 8), ((1, 1), (0, 1))),
    ("same", (3, 3), (2, 1), (1, 1), (8, 8), ((0, 1), (1, 1))),
])
def test_resolve_padding_forms(padding, kernel, stride, dilation, size, expected):
    assert resolve_padding(padding, kernel, stride, dilation, size) == expected


@pytest.mark.parametrize("padding, message", [
    (-1, r"padding must be >= 0, got -1"),
    ((1, -2), r"padding must be >= 0, got \(1, -2\)"),
    (((0, 1), (-1, 0)), r"padding must be >= 0"),
    ("full", r"unknown padding 'full'.*'valid', 'same'"),
    (True, r"padding must not be a bool, got True"),
    (1.5, r"padding 1.5 is not an int"),
    ((1, 2, 3), r"2 entries.*got \(1, 2, 3\)"),
    (((1, 2), (3,)), r"\(\(top, bottom\), \(left, right\)\) of ints"),
])
def test_resolve_padding_errors_name_the_value(padding, message):
    with pytest.raises(ClearConvError, match=message):
        resolve_padding(padding, (3, 3), (1, 1), (1, 1))


def test_same_padding_with_stride_needs_the_input_size():
    with pytest.raises(ClearConvError, match="stride > 1 needs the input size"):
        resolve_padding("same", (3, 3), (2, 2), (1, 1))


# ---------------------------------------------------------------------- pool_output_size

@pytest.mark.parametrize("args, expected", [
    ((28, 2, 2), 14),
    ((32, 2, 2), 16),
    ((5, 2, 2), 2),
    ((5, 2, 2, 0, True), 3),          # ceil_mode: a partial last window
    ((7, 3, 2), 3),                   # overlapping
    ((7, 3, 2, 1), 4),
    ((6, 3, 2, 0, True), 3),
    ((6, 3, 2, 0, False), 2),
    ((5, 2, 2, 1, True), 3),          # ceil would give 4; that window starts in the pad
    ((10, 3, 3, 1, True), 4),
    ((4, 4, 4), 1),
    ((7, 1, 2, 0, True), 4),
])
def test_pool_output_size_hand_values(args, expected):
    assert pool_output_size(*args) == expected


def test_pool_output_size_floor_mode_is_the_article_formula():
    for n, k, s, p in itertools.product(range(2, 12), range(1, 4), range(1, 4), range(2)):
        if 2 * p <= k <= n + 2 * p:
            assert pool_output_size(n, k, s, p) == (n + 2 * p - k) // s + 1


def test_pool_output_size_errors_name_the_numbers():
    with pytest.raises(ClearConvError, match=r"padding 2 must be at most half the window size 3"):
        pool_output_size(8, 3, 1, 2)
    with pytest.raises(ClearConvError, match=r"padding must be >= 0, got -1"):
        pool_output_size(8, 3, 1, -1)
    with pytest.raises(ShapeError, match=r"window 5 is larger than the padded input 3"):
        pool_output_size(3, 5, 1)


# ------------------------------------------------------------------ shapes and counts

@pytest.mark.parametrize("in_shape, c_out, kernel, stride, padding, expected", [
    ((2, 1, 28, 28), 32, 3, 1, 1, (2, 32, 28, 28)),
    ((2, 32, 14, 14), 64, 3, 1, 1, (2, 64, 14, 14)),
    ((2, 3, 32, 32), 64, 3, 1, 1, (2, 64, 32, 32)),
    ((2, 64, 32, 32), 128, 3, 2, 1, (2, 128, 16, 16)),
    ((2, 1, 28, 28), 6, 5, 1, 0, (2, 6, 24, 24)),
    ((1, 3, 7, 8), 4, 3, 2, "same", (1, 4, 4, 4)),
    ((1, 3, 7, 8), 4, (4, 2), 1, "same", (1, 4, 7, 8)),
    ((1, 3, 9, 9), 2, (3, 1), (2, 1), ((1, 0), (0, 2)), (1, 2, 4, 11)),
])
def test_conv2d_output_shape_hand_values(in_shape, c_out, kernel, stride, padding, expected):
    assert conv2d_output_shape(in_shape, c_out, kernel, stride, padding) == expected


def test_conv2d_output_shape_with_dilation():
    assert conv2d_output_shape((1, 1, 10, 10), 3, 3, 1, 0, dilation=(2, 3)) == (1, 3, 6, 4)


@pytest.mark.parametrize("args, expected", [
    ((1, 32, 3), 320),
    ((32, 64, 3), 18_496),
    ((3, 64, 3), 1_792),
    ((64, 128, 3), 73_856),
    ((1, 6, 5), 156),
    ((3, 64, 3, False), 1_728),
    ((2, 3, (3, 5)), 93),
])
def test_conv2d_params(args, expected):
    assert conv2d_params(*args) == expected


@pytest.mark.parametrize("args, expected", [
    ((3136, 128), 401_536),
    ((128, 10), 1_290),
    ((84, 10, False), 840),
])
def test_dense_params(args, expected):
    assert dense_params(*args) == expected


def test_dense_versus_conv_parameter_comparison_of_math_section_1():
    # one dense neuron on a 1000x1000 RGB image needs 3 million weights ...
    assert dense_params(1000 * 1000 * 3, 1, bias=False) == 3_000_000
    # ... a 3x3 conv over the same image needs 27 per output channel
    assert conv2d_params(3, 1, 3, bias=False) == 27


def test_pair_and_ceil_div():
    assert pair(3, "kernel_size") == (3, 3)
    assert pair((1, 2), "stride") == (1, 2)
    assert pair(np.int64(2), "stride") == (2, 2)
    assert pair(0, "padding", minimum=0) == (0, 0)
    assert [ceil_div(a, 3) for a in range(7)] == [0, 1, 1, 1, 2, 2, 2]


@pytest.mark.parametrize("value, message", [
    (0, r"stride must be >= 1, got 0"),
    ((2, -1), r"stride must be >= 1, got \(2, -1\)"),
    (True, r"stride must be an int or a pair of ints, got True"),
    (2.0, r"got 2.0"),
    ((1, 2, 3), r"got \(1, 2, 3\)"),
    ("ab", r"got 'ab'"),
])
def test_pair_errors_name_the_value(value, message):
    with pytest.raises(ClearConvError, match=message):
        pair(value, "stride")


def test_conv2d_params_refuses_a_zero_kernel():
    with pytest.raises(ClearConvError, match=r"kernel_size must be >= 1, got 0"):
        conv2d_params(3, 4, 0)


@pytest.mark.parametrize("call, message", [
    (lambda: conv_output_size(5, 3, 0), r"stride must be an int >= 1, got 0"),
    (lambda: conv_output_size(5, 3, -1), r"stride must be an int >= 1, got -1"),
    (lambda: conv_output_size(5, 0), r"kernel_size must be an int >= 1, got 0"),
    (lambda: conv_output_size(5, 3, 1, 0, 0, 0), r"dilation must be an int >= 1, got 0"),
    (lambda: conv_output_size(5, 3, 1, -1), r"padding must be >= 0, got -1"),
    (lambda: pool_output_size(5, 2, 0), r"stride must be an int >= 1, got 0"),
    (lambda: pool_output_size(5, 0, 1), r"kernel_size must be an int >= 1, got 0"),
    (lambda: same_padding(5, 3, 0), r"stride must be an int >= 1, got 0"),
    (lambda: same_padding(5, 3, 1, 0), r"dilation must be an int >= 1, got 0"),
], ids=["conv_stride0", "conv_stride-1", "conv_kernel0", "conv_dilation0", "conv_pad-1",
        "pool_stride0", "pool_kernel0", "same_stride0", "same_dilation0"])
def test_per_axis_functions_refuse_bad_hyper_parameters(call, message):
    with pytest.raises(ClearConvError, match=message):
        call()


# -------------------------------------------------------------------- against PyTorch

def test_conv_output_shapes_match_torch():
    torch = pytest.importorskip("torch", reason="PyTorch not installed: shapes not compared")
    tf = torch.nn.functional
    w_cache: dict[tuple[int, int], object] = {}
    for n, f, s, p, d in itertools.product(range(1, 11), range(1, 5), range(1, 4), range(3),
                                           range(1, 3)):
        x = torch.zeros(1, 1, n, n + 1)
        w = w_cache.setdefault((f, f), torch.zeros(1, 1, f, f))
        try:
            expected = tuple(tf.conv2d(x, w, stride=s, padding=p, dilation=d).shape)
        except RuntimeError:
            with pytest.raises(ShapeError):
                conv2d_output_shape((1, 1, n, n + 1), 1, f, s, p, d)
            continue
        assert conv2d_output_shape((1, 1, n, n + 1), 1, f, s, p, d) == expected, (n, f, s, p, d)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_same_padding_stride_1_matches_torch():
    torch = pytest.importorskip("torch", reason="PyTorch not installed: shapes not compared")
    tf = torch.nn.functional
    for n, kh, kw, d in itertools.product(range(4, 10), range(1, 5), range(1, 5), range(1, 3)):
        x = torch.zeros(1, 1, n, n + 2)
        w = torch.zeros(1, 1, kh, kw)
        expected = tuple(tf.conv2d(x, w, padding="same", dilation=d).shape)
        assert conv2d_output_shape((1, 1, n, n + 2), 1, (kh, kw), 1, "same", d) == expected


def test_pool_output_sizes_match_torch():
    torch = pytest.importorskip("torch", reason="PyTorch not installed: shapes not compared")
    tf = torch.nn.functional
    for n, k, s, p, ceil in itertools.product(range(1, 12), range(1, 5), range(1, 5), range(3),
                                              (False, True)):
        x = torch.zeros(1, 1, n, 1)
        try:
            expected = tf.max_pool2d(x, (k, 1), (s, 1), (p, 0), ceil_mode=ceil).shape[2]
        except RuntimeError:
            with pytest.raises(ClearConvError):
                pool_output_size(n, k, s, p, ceil)
            continue
        assert pool_output_size(n, k, s, p, ceil) == expected, (n, k, s, p, ceil)


@pytest.mark.parametrize("n, k, s, p", [(2, 3, 2, 0), (1, 2, 2, 0), (1, 4, 2, 1), (3, 4, 4, 0)])
def test_ceil_mode_window_larger_than_the_input_gives_one_output(n, k, s, p):
    # PyTorch's ceil_mode keeps one partial window when the window overhangs the padded
    # input by less than the stride (2x2 input, kernel 3, stride 2 -> 1x1)
    assert pool_output_size(n, k, s, p, ceil_mode=True) == 1
    with pytest.raises(ShapeError, match=f"window {k} is larger"):
        pool_output_size(n, k, s, p, ceil_mode=False)


def test_geometry_is_remembered_per_argument_types_and_errors_are_not():
    from clearconv.shapes import conv2d_geometry, pool2d_geometry

    first = conv2d_geometry((2, 3, 9, 9), (4, 3, 3, 3), 1, 1)
    assert conv2d_geometry((2, 3, 9, 9), (4, 3, 3, 3), 1, 1) is first     # remembered
    # equal across types, but the checks tell them apart: True is no stride
    with pytest.raises(ClearConvError, match="stride must be an int"):
        conv2d_geometry((2, 3, 9, 9), (4, 3, 3, 3), True, 1)
    with pytest.raises(ClearConvError, match="stride must be an int"):
        conv2d_geometry((2, 3, 9, 9), (4, 3, 3, 3), (1, True), 1)
    # a refused call raises every time, and a list argument still works
    for _ in range(2):
        with pytest.raises(ClearConvError):
            conv2d_geometry((2, 3, 2, 2), (4, 3, 3, 3), 1, 0)
    assert conv2d_geometry((2, 3, 9, 9), (4, 3, 3, 3), [1, 1], 1) == first
    pooled = pool2d_geometry((2, 3, 8, 8), 2, None, 0, False)
    assert pool2d_geometry((2, 3, 8, 8), 2, None, 0, False) is pooled
    assert pool2d_geometry((2, 3, 8, 8), 2, None, 0, True) is not pooled   # another call
