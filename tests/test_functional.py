"""The readable ops of clearconv.functional agree with their loop-by-loop twins in reference.py.

(The faster algorithms of clearconv.kernels are held to the same checks in test_kernels.)

Float64 results must agree to rtol 1e-10 on Hypothesis-drawn shapes and hyper-parameters
(every padding form, strides, dilations, even and non-square kernels, ceil_mode, ...),
forward and every gradient; the float32 path must stay float32 and close to float64.
Bad inputs raise ValueError subclasses whose messages name the offending numbers, and
the fast op and its reference raise the same error.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import (  # noqa: E402  (tests/ is on sys.path under pytest)
    ATOL,
    FEW,
    PROPERTY,
    RTOL,
    ConvCase,
    PoolCase,
    assert_close32,
    assert_same,
    conv_cases,
    dilations,
    kernels,
    mentions,
    pool_cases,
    random_like,
    seeds,
    strides,
)

from clearconv import functional as F
from clearconv import reference as R
from clearconv.errors import ClearConvError, ShapeError
from clearconv.shapes import ceil_div, pair

# ------------------------------------------------------------------------ convolution


def check_conv(case: ConvCase, algorithm: str = "im2col") -> None:
    """conv2d by ``algorithm`` (default: functional's readable one) against the reference,
    forward and every gradient, in float64 to 1e-10."""
    args = (case.stride, case.padding, case.dilation, case.groups)
    y, cache = F.conv2d_forward(case.x, case.weight, case.bias, *args, algorithm=algorithm)
    assert cache.algorithm == algorithm
    y_ref, cache_ref = R.conv2d_forward(case.x, case.weight, case.bias, *args)
    assert_same(y, y_ref)
    dx, dw, db = F.conv2d_backward(case.dy, cache)
    dx_ref, dw_ref, db_ref = R.conv2d_backward(case.dy, cache_ref)
    assert_same(dx, dx_ref)
    assert dx.shape == case.x.shape
    assert_same(dw, dw_ref)
    if case.bias is None:
        assert db is None and db_ref is None
    else:
        assert_same(db, db_ref)
    no_dx, dw_only, _ = F.conv2d_backward(case.dy, cache, input_grad=False)
    assert no_dx is None
    assert_same(dw_only, dw_ref)


@PROPERTY
@given(conv_cases(grouped=True))
def test_conv2d_forward_and_gradients_match_reference(case):
    check_conv(case)


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, dilation", [
    ((2, 3, 7, 6), (2, 3, 3, 3), 1, 0, 1),                      # valid, odd kernel
    ((1, 2, 6, 6), (3, 2, 4, 2), 1, "same", 1),                 # 'same', even kernel
    ((1, 1, 7, 5), (2, 1, 2, 3), 2, "same", 1),                 # 'same', stride 2
    ((2, 2, 9, 8), (1, 2, 3, 2), (3, 2), "same", (2, 1)),       # 'same', stride+dilation
    ((1, 3, 5, 6), (2, 3, 3, 2), (2, 1), ((0, 2), (3, 1)), 1),  # asymmetric padding
    ((1, 4, 6, 7), (2, 4, 3, 3), 2, (1, 2), 2),                 # 4 channels, dilation 2
    ((1, 2, 8, 8), (1, 2, 2, 2), 3, 0, 1),                      # stride skips the last rows
    ((3, 1, 1, 1), (2, 1, 1, 1), 1, 0, 1),                      # 1x1 everything
    ((1, 1, 2, 3), (1, 1, 4, 4), 1, 1, 1),                      # kernel fits only padded
])
def test_conv2d_matches_reference_on_chosen_cases(x_shape, w_shape, stride, padding, dilation):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape)
    weight = rng.standard_normal(w_shape)
    y, _ = F.conv2d_forward(x, weight, None, stride, padding, dilation)
    dy = rng.standard_normal(y.shape)
    check_conv(ConvCase(x, weight, rng.standard_normal(w_shape[0]), stride, padding,
                        dilation, dy))


@FEW
@given(st.integers(1, 9), st.integers(1, 9), kernels, kernels, strides, dilations)
def test_conv2d_same_padding_gives_ceil_of_size_over_stride(h, w, kh, kw, stride, dilation):
    x = np.ones((1, 1, h, w))
    y, _ = F.conv2d_forward(x, np.ones((1, 1, kh, kw)), None, stride, "same", dilation)
    sh, sw = pair(stride, "stride")
    assert y.shape == (1, 1, ceil_div(h, sh), ceil_div(w, sw))


@FEW
@given(conv_cases())
def test_conv2d_float32_stays_float32_and_close_to_float64(case):
    args = (case.stride, case.padding, case.dilation)
    b32 = None if case.bias is None else case.bias.astype(np.float32)
    y32, c32 = F.conv2d_forward(case.x.astype(np.float32), case.weight.astype(np.float32),
                                b32, *args)
    y64, c64 = F.conv2d_forward(case.x, case.weight, case.bias, *args)
    assert_close32(y32, y64)
    grads32 = F.conv2d_backward(case.dy.astype(np.float32), c32)
    grads64 = F.conv2d_backward(case.dy, c64)
    for g32, g64 in zip(grads32, grads64, strict=True):
        if g64 is None:
            assert g32 is None
        else:
            assert_close32(g32, g64)


def test_conv2d_dtype_policy():
    rng = np.random.default_rng(1)
    w32 = rng.standard_normal((2, 1, 2, 2)).astype(np.float32)
    x8 = rng.integers(0, 256, (1, 1, 4, 4)).astype(np.uint8)
    for op in (F.conv2d_forward, R.conv2d_forward):
        assert op(x8.astype(np.float32), w32)[0].dtype == np.float32
        assert op(x8.astype(np.float32), w32.astype(np.float64))[0].dtype == np.float64
        assert op(x8, w32)[0].dtype == np.float64        # integers become float64
    assert_same(F.conv2d_forward(x8, w32)[0], R.conv2d_forward(x8, w32)[0])


# ---------------------------------------------------------------------------- pooling


def check_max_pool(case: PoolCase, algorithm: str = "views") -> None:
    """max_pool2d by ``algorithm`` (default: functional's readable one) against the
    reference, forward and gradient, for dy in both layouts."""
    args = (case.kernel_size, case.stride, case.padding, case.ceil_mode)
    y, cache = F.max_pool2d_forward(case.x, *args, algorithm=algorithm)
    assert cache.algorithm == algorithm
    y_ref, cache_ref = R.max_pool2d_forward(case.x, *args)
    assert_same(y, y_ref)
    for layout_last in (False, True):
        dy = random_like(case.dy_rng, y, layout_last)
        assert_same(F.max_pool2d_backward(dy, cache), R.max_pool2d_backward(dy, cache_ref))


def check_avg_pool(case: PoolCase, count_include_pad: bool) -> None:
    args = (case.kernel_size, case.stride, case.padding, case.ceil_mode, count_include_pad)
    y, cache = F.avg_pool2d_forward(case.x, *args)
    y_ref, cache_ref = R.avg_pool2d_forward(case.x, *args)
    assert_same(y, y_ref)
    for layout_last in (False, True):
        dy = random_like(case.dy_rng, y, layout_last)
        assert_same(F.avg_pool2d_backward(dy, cache), R.avg_pool2d_backward(dy, cache_ref))


@PROPERTY
@given(pool_cases())
def test_max_pool2d_matches_reference_on_tie_free_input(case):
    check_max_pool(case)


@PROPERTY
@given(pool_cases("ties"))
def test_max_pool2d_ties_go_to_the_first_maximum_as_in_reference(case):
    check_max_pool(case)
    # and each window passes its whole gradient to exactly one cell (no double counting)
    y, cache = F.max_pool2d_forward(case.x, case.kernel_size, case.stride, case.padding,
                                    case.ceil_mode)
    dx = F.max_pool2d_backward(np.ones_like(y), cache)
    np.testing.assert_array_equal(dx.sum(axis=(2, 3)), y[0, 0].size)


@FEW
@given(pool_cases("nonfinite"))
def test_max_pool2d_nan_and_inf_follow_the_reference(case):
    """PyTorch's rule: NaN wins (and propagates), -inf input beats padding."""
    check_max_pool(case)


@PROPERTY
@given(pool_cases(), st.booleans())
def test_avg_pool2d_matches_reference(case, count_include_pad):
    check_avg_pool(case, count_include_pad)


@pytest.mark.parametrize("x_hw, kernel_size, stride, padding, ceil_mode", [
    ((5, 5), 2, 2, 0, True),            # ceil_mode adds a partial last window
    ((7, 6), 3, 2, 1, True),            # ceil_mode and padding
    ((6, 6), 3, 1, 1, False),           # overlapping windows (stride < kernel)
    ((5, 7), (3, 2), (1, 2), (1, 1), True),
    ((4, 4), 4, None, 2, False),        # padding of half the window
    ((3, 8), (1, 4), (1, 3), (0, 2), True),
])
def test_pooling_matches_reference_on_chosen_cases(x_hw, kernel_size, stride, padding,
                                                   ceil_mode):
    rng = np.random.default_rng(0)
    x = rng.permutation(np.linspace(-1, 1, 2 * 2 * x_hw[0] * x_hw[1])).reshape(2, 2, *x_hw)
    case = PoolCase(x, kernel_size, stride, padding, ceil_mode, rng)
    check_max_pool(case)
    check_avg_pool(case, count_include_pad=True)
    check_avg_pool(case, count_include_pad=False)


@FEW
@given(pool_cases(), st.booleans())
def test_pooling_float32_stays_float32_and_close_to_float64(case, count_include_pad):
    args = (case.kernel_size, case.stride, case.padding, case.ceil_mode)
    x32 = case.x.astype(np.float32)
    for forward, backward, extra in (
        (F.max_pool2d_forward, F.max_pool2d_backward, ()),
        (F.avg_pool2d_forward, F.avg_pool2d_backward, (count_include_pad,)),
    ):
        y32, c32 = forward(x32, *args, *extra)
        y64, c64 = forward(case.x, *args, *extra)
        assert_close32(y32, y64)
        dy = case.dy_rng.standard_normal(y64.shape)
        assert_close32(backward(dy.astype(np.float32), c32), backward(dy, c64))


# ------------------------------------------------------------------------ activations

values = hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=4, max_side=4),
                    elements=st.floats(-40, 40, width=32, allow_subnormal=False))
ACTIVATIONS = [("relu", ()), ("leaky_relu", ()), ("leaky_relu", (0.2,)), ("sigmoid", ()),
               ("tanh", ())]


@pytest.mark.parametrize("name, args", ACTIVATIONS)
@FEW
@given(z=values, seed=seeds)
def test_activations_match_reference(name, args, z, seed):
    fast_f, fast_b = getattr(F, f"{name}_forward"), getattr(F, f"{name}_backward")
    ref_f, ref_b = getattr(R, f"{name}_forward"), getattr(R, f"{name}_backward")
    a, cache = fast_f(z, *args)
    a_ref, cache_ref = ref_f(z, *args)
    assert_same(a, a_ref)
    da = np.random.default_rng(seed).standard_normal(z.shape)
    assert_same(fast_b(da, cache), ref_b(da, cache_ref))
    a32, cache32 = fast_f(z.astype(np.float32), *args)
    assert_close32(a32, a)
    assert_close32(fast_b(da.astype(np.float32), cache32), fast_b(da, cache))


@FEW
@given(z=values, data=st.data())
def test_softmax_matches_reference(z, data):
    axis = data.draw(st.integers(-z.ndim, z.ndim - 1))
    a, cache = F.softmax_forward(z, axis)
    a_ref, cache_ref = R.softmax_forward(z, axis)
    assert_same(a, a_ref)
    np.testing.assert_allclose(a.sum(axis=axis), 1.0, rtol=1e-12)
    da = np.random.default_rng(data.draw(seeds)).standard_normal(z.shape)
    assert_same(F.softmax_backward(da, cache), R.softmax_backward(da, cache_ref))


# ------------------------------------------------------------------------ loss, linear


@FEW
@given(n=st.integers(1, 5), k=st.integers(1, 6), scale=st.sampled_from([1.0, 30.0, 1000.0]),
       dloss=st.floats(-3, 3), seed=seeds, float_labels=st.booleans())
def test_softmax_cross_entropy_matches_reference(n, k, scale, dloss, seed, float_labels):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, k)) * scale
    labels = rng.integers(0, k, n)
    if float_labels:
        labels = labels.astype(np.float64)
    loss, cache = F.softmax_cross_entropy_forward(logits, labels)
    loss_ref, cache_ref = R.softmax_cross_entropy_forward(logits, labels)
    assert np.isfinite(loss)
    np.testing.assert_allclose(loss, loss_ref, rtol=RTOL, atol=ATOL)
    assert_same(F.softmax_cross_entropy_backward(dloss, cache),
                R.softmax_cross_entropy_backward(dloss, cache_ref))
    loss32, cache32 = F.softmax_cross_entropy_forward(logits.astype(np.float32), labels)
    np.testing.assert_allclose(loss32, loss, rtol=1e-4, atol=1e-4)
    assert_close32(F.softmax_cross_entropy_backward(dloss, cache32),
                   F.softmax_cross_entropy_backward(dloss, cache))


@FEW
@given(n=st.integers(1, 4), fan_in=st.integers(1, 6), fan_out=st.integers(1, 4),
       with_bias=st.booleans(), seed=seeds)
def test_linear_matches_reference(n, fan_in, fan_out, with_bias, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, fan_in))
    weight = rng.standard_normal((fan_out, fan_in))
    bias = rng.standard_normal(fan_out) if with_bias else None
    y, cache = F.linear_forward(x, weight, bias)
    y_ref, cache_ref = R.linear_forward(x, weight, bias)
    assert_same(y, y_ref)
    dy = rng.standard_normal(y.shape)
    for fast, ref in zip(F.linear_backward(dy, cache), R.linear_backward(dy, cache_ref),
                         strict=True):
        if ref is None:
            assert fast is None
        else:
            assert_same(fast, ref)
    assert F.linear_backward(dy, cache, input_grad=False)[0] is None
    y32, cache32 = F.linear_forward(x.astype(np.float32), weight.astype(np.float32),
                                    None if bias is None else bias.astype(np.float32))
    assert_close32(y32, y)
    assert_close32(F.linear_backward(dy.astype(np.float32), cache32)[1],
                   F.linear_backward(dy, cache)[1])


@pytest.mark.parametrize("p", [0.0, 0.3, 0.9])
def test_dropout_matches_reference_for_the_same_generator_state(p):
    x = np.random.default_rng(5).standard_normal((2, 3, 4, 4))
    y, mask = F.dropout_forward(x, p, np.random.default_rng(7))
    y_ref, mask_ref = R.dropout_forward(x, p, np.random.default_rng(7))
    assert_same(y, y_ref)
    dy = np.random.default_rng(8).standard_normal(x.shape)
    assert_same(F.dropout_backward(dy, mask), R.dropout_backward(dy, mask_ref))
    if p:
        assert_same(mask, mask_ref)
    else:
        assert mask is None and mask_ref is None


# ------------------------------------------------------------------------- bad inputs

BOTH = pytest.mark.parametrize("ops", [F, R], ids=["functional", "reference"])


@BOTH
def test_conv2d_channel_mismatch_names_both_counts(ops):
    with pytest.raises(ShapeError, match=mentions("3 channels", "expects 5")):
        ops.conv2d_forward(np.zeros((2, 3, 8, 8)), np.zeros((4, 5, 2, 2)))


@BOTH
@pytest.mark.parametrize("x_hw, kernel, padding, dilation, numbers", [
    ((4, 4), (6, 6), 0, 1, (6, 4)),             # kernel 6 > input 4
    ((4, 4), (7, 7), 1, 1, (7, 6)),             # kernel 7 > padded input 6
    ((6, 9), (3, 3), 0, 3, (7, 6)),             # dilated extent 7 > input 6
    ((5, 2), (1, 4), ((0, 0), (1, 0)), 1, (4, 3)),
])
def test_conv2d_kernel_larger_than_padded_input(ops, x_hw, kernel, padding, dilation, numbers):
    with pytest.raises(ShapeError, match=mentions(*numbers)):
        ops.conv2d_forward(np.zeros((1, 1, *x_hw)), np.zeros((1, 1, *kernel)),
                           padding=padding, dilation=dilation)


@BOTH
@pytest.mark.parametrize("stride, shown", [(0, "0"), (-2, "-2"), ((1, 0), "(1, 0)")])
def test_conv2d_and_pooling_refuse_stride_below_one(ops, stride, shown):
    with pytest.raises(ClearConvError, match=mentions("stride", shown)):
        ops.conv2d_forward(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 2, 2)), stride=stride)
    with pytest.raises(ClearConvError, match=mentions("stride", shown)):
        ops.max_pool2d_forward(np.zeros((1, 1, 5, 5)), 2, stride=stride)
    with pytest.raises(ClearConvError, match=mentions("stride", shown)):
        ops.avg_pool2d_forward(np.zeros((1, 1, 5, 5)), 2, stride=stride)


@BOTH
def test_kernel_of_size_zero_is_refused(ops):
    with pytest.raises(ShapeError, match=mentions("(1, 1, 0, 3)")):
        ops.conv2d_forward(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 0, 3)))
    with pytest.raises(ClearConvError, match=mentions("kernel_size", 0)):
        ops.max_pool2d_forward(np.zeros((1, 1, 5, 5)), 0)
    with pytest.raises(ClearConvError, match=mentions("kernel_size", "(2, 0)")):
        ops.avg_pool2d_forward(np.zeros((1, 1, 5, 5)), (2, 0))


@BOTH
def test_dilation_below_one_is_refused(ops):
    with pytest.raises(ClearConvError, match=mentions("dilation", 0)):
        ops.conv2d_forward(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 2, 2)), dilation=0)


@BOTH
@pytest.mark.parametrize("padding", ["full", "causal", ""])
def test_unknown_padding_string_is_named(ops, padding):
    with pytest.raises(ClearConvError, match=re.escape(repr(padding))):
        ops.conv2d_forward(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 2, 2)), padding=padding)


@BOTH
@pytest.mark.parametrize("padding, shown", [(-1, "-1"), ((0, -2), "-2"),
                                            (((0, 1), (-3, 0)), "-3")])
def test_negative_padding_is_refused(ops, padding, shown):
    with pytest.raises(ClearConvError, match=mentions(shown)):
        ops.conv2d_forward(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 2, 2)), padding=padding)


@BOTH
@pytest.mark.parametrize("shape", [(3, 8, 8), (8, 8), (1, 1, 1, 8, 8)])
def test_wrong_input_rank_names_the_shape(ops, shape):
    x = np.zeros(shape)
    shown = re.escape(str(shape))
    with pytest.raises(ShapeError, match=shown):
        ops.conv2d_forward(x, np.zeros((1, 3, 2, 2)))
    with pytest.raises(ShapeError, match=shown):
        ops.max_pool2d_forward(x, 2)
    with pytest.raises(ShapeError, match=shown):
        ops.avg_pool2d_forward(x, 2)


@BOTH
@pytest.mark.parametrize("x_hw, kernel_size, padding, numbers", [
    ((3, 4), 5, 0, (5, 3)),                 # window 5 > input 3
    ((6, 2), (2, 4), 0, (4, 2)),            # window 4 > input 2 (width)
    ((1, 5), (4, 2), (1, 0), (4, 3)),       # window 4 > padded input 1 + 2*1
])
def test_pooling_window_larger_than_padded_input(ops, x_hw, kernel_size, padding, numbers):
    x = np.zeros((1, 1, *x_hw))
    for forward in (ops.max_pool2d_forward, ops.avg_pool2d_forward):
        with pytest.raises(ShapeError, match=mentions("window", *numbers)):
            forward(x, kernel_size, padding=padding)


@BOTH
def test_pooling_padding_over_half_the_window_is_refused(ops):
    with pytest.raises(ClearConvError, match=mentions(2, 3)):
        ops.max_pool2d_forward(np.zeros((1, 1, 6, 6)), 3, padding=2)


@BOTH
@pytest.mark.parametrize("labels, bad", [([0, 3], "[3]"), ([-1, 2], "[-1]"), ([5, 7], "[5, 7]")])
def test_labels_out_of_range_are_named(ops, labels, bad):
    with pytest.raises(ShapeError, match=mentions("[0, 3)", bad)):
        ops.softmax_cross_entropy_forward(np.zeros((2, 3)), np.array(labels))


@BOTH
def test_loss_shape_mismatches(ops):
    with pytest.raises(ShapeError, match=mentions("(2,)", "(3,)")):
        ops.softmax_cross_entropy_forward(np.zeros((2, 4)), np.array([0, 1, 2]))
    with pytest.raises(ShapeError, match=mentions("(2, 3, 1)")):
        ops.softmax_cross_entropy_forward(np.zeros((2, 3, 1)), np.array([0, 1]))
    with pytest.raises(ShapeError, match="integer"):
        ops.softmax_cross_entropy_forward(np.zeros((2, 3)), np.array([0.5, 1.0]))


@BOTH
def test_linear_feature_mismatch_names_both_counts(ops):
    with pytest.raises(ShapeError, match=mentions("7 features", "expects 6")):
        ops.linear_forward(np.zeros((2, 7)), np.zeros((3, 6)))
    with pytest.raises(ShapeError, match=mentions("(4,)", "(3,)")):
        ops.linear_forward(np.zeros((2, 6)), np.zeros((3, 6)), np.zeros(4))


@BOTH
def test_conv2d_bias_of_wrong_shape(ops):
    with pytest.raises(ShapeError, match=mentions("(2,)", "(3,)")):
        ops.conv2d_forward(np.zeros((1, 1, 4, 4)), np.zeros((2, 1, 2, 2)), np.zeros(3))


@BOTH
def test_backward_with_wrong_gradient_shape_names_both_shapes(ops):
    _, cache = ops.conv2d_forward(np.zeros((1, 1, 4, 4)), np.zeros((2, 1, 2, 2)))
    with pytest.raises(ShapeError, match=mentions("(1, 2, 3, 3)", "(1, 2, 4, 4)")):
        ops.conv2d_backward(np.zeros((1, 2, 4, 4)), cache)
    _, cache = ops.max_pool2d_forward(np.zeros((1, 1, 4, 4)), 2)
    with pytest.raises(ShapeError, match=mentions("(1, 1, 2, 2)", "(1, 1, 3, 3)")):
        ops.max_pool2d_backward(np.zeros((1, 1, 3, 3)), cache)
    _, cache = ops.avg_pool2d_forward(np.zeros((1, 1, 4, 4)), 2)
    with pytest.raises(ShapeError, match=mentions("(1, 1, 2, 2)", "(1, 1, 3, 3)")):
        ops.avg_pool2d_backward(np.zeros((1, 1, 3, 3)), cache)


@BOTH
@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_dropout_probability_out_of_range(ops, p):
    with pytest.raises(ClearConvError, match=mentions(p)):
        ops.dropout_forward(np.zeros(3), p, np.random.default_rng(0))


def test_all_errors_are_value_errors():
    assert issubclass(ShapeError, ValueError) and issubclass(ClearConvError, ValueError)
    with pytest.raises(ValueError):
        F.conv2d_forward(np.zeros((1, 2, 4, 4)), np.zeros((1, 3, 2, 2)))
