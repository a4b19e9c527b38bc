"""Pooling beyond the plain window (issue 13): dilation, asymmetric padding,
divisor_override, PyTorch's return_indices and max unpooling, global and adaptive
pooling, nearest and bilinear upsampling, against the loop twins of
reference.py (float64, 1e-10) on Hypothesis-drawn calls, against finite differences,
and with the bad input each refuses.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import (  # noqa: E402  (tests/ is on sys.path under pytest)
    FEW,
    PROPERTY,
    assert_same,
    mentions,
    pool1d_cases,
    pool_cases_more,
    random_like,
    resize_cases,
)

from clearconv import functional as F
from clearconv import reference as R
from clearconv.errors import ClearConvError, ShapeError
from clearconv.functional.pool import PoolCall, layout_of
from clearconv.kernels import registry
from clearconv.shapes import pool2d_geometry

MAX_POOL = [a.name for a in registry.algorithms("max_pool2d")]


def _max_args(case):
    return dict(kernel_size=case.kernel_size, stride=case.stride, padding=case.padding,
                ceil_mode=case.ceil_mode, dilation=case.dilation)


def _avg_args(case, count_include_pad):
    return dict(kernel_size=case.kernel_size, stride=case.stride, padding=case.padding,
                ceil_mode=case.ceil_mode, count_include_pad=count_include_pad,
                divisor_override=case.divisor_override)


def numerical_gradient(f, x, dy, eps=1e-6):
    """d(sum(f(x) * dy))/dx by central differences, one element at a time."""
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        plus = np.sum(f(x) * dy)
        x[idx] = old - eps
        minus = np.sum(f(x) * dy)
        x[idx] = old
        g[idx] = (plus - minus) / (2 * eps)
    return g


# ------------------------------------------------------------------ max pooling, more forms
@PROPERTY
@given(st.sampled_from(MAX_POOL), st.sampled_from(["tie_free", "ties"]), st.data())
def test_every_max_pool_algorithm_meets_the_reference_with_dilation_and_asymmetric_padding(
        algorithm, values, data):
    case = data.draw(pool_cases_more(values))
    geo = pool2d_geometry(case.x.shape, case.kernel_size, case.stride, case.padding,
                          case.ceil_mode, dilation=case.dilation)
    assume(registry.get("max_pool2d", algorithm).supports(
        PoolCall(geo, case.x.dtype, layout_of(case.x), False))[0])
    y, cache = F.max_pool2d_forward(case.x, **_max_args(case), algorithm=algorithm)
    assert cache.algorithm == algorithm
    y_ref, cache_ref = R.max_pool2d_forward(case.x, **_max_args(case))
    assert_same(y, y_ref)
    np.testing.assert_array_equal(F.max_pool2d_indices(cache), R.max_pool2d_indices(cache_ref))
    for layout_last in (False, True):
        dy = random_like(case.dy_rng, y, layout_last)
        assert_same(F.max_pool2d_backward(dy, cache), R.max_pool2d_backward(dy, cache_ref))


@pytest.mark.parametrize("algorithm", [a for a in MAX_POOL if a not in ("views",
                                                                         "views-finite")])
def test_compiled_max_pool_algorithms_decline_dilation_with_the_reason(algorithm):
    x = np.zeros((1, 32, 8, 8), np.float32)
    for layout in ("NCHW", "channels-last"):
        choice = F.max_pool2d_algorithm(x.shape, 2, 2, 0, layout=layout, dilation=2)
        assert choice.name in ("views-finite", "views")
        with pytest.raises(ClearConvError, match=algorithm):
            F.max_pool2d_algorithm(x.shape, 2, 2, 0, layout=layout, dilation=2,
                                   algorithm=algorithm)
    call = PoolCall(pool2d_geometry(x.shape, 2, 2, 0, False, dilation=2), x.dtype,
                    "channels-last", False)
    ok, why = registry.get("max_pool2d", algorithm).supports(call)
    assert not ok and why


def test_a_window_of_padding_only_gives_minus_inf_and_no_gradient():
    """Only dilation makes one: cells -1 and 1 of a 1-pixel row padded by 1 each side."""
    x = np.array([[[[3.0]]]])
    y, cache = F.max_pool2d_forward(x, (1, 2), padding=((0, 0), (1, 1)), dilation=(1, 2))
    y_ref, cache_ref = R.max_pool2d_forward(x, (1, 2), padding=((0, 0), (1, 1)),
                                            dilation=(1, 2))
    assert y.shape == (1, 1, 1, 1) and y[0, 0, 0, 0] == -np.inf == y_ref[0, 0, 0, 0]
    assert F.max_pool2d_backward(np.ones_like(y), cache)[0, 0, 0, 0] == 0
    assert R.max_pool2d_backward(np.ones_like(y), cache_ref)[0, 0, 0, 0] == 0


def test_max_pool_dilation_hand_example():
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    y, cache = F.max_pool2d_forward(x, 2, 1, dilation=2)      # cells (m, k) .. (m+2, k+2)
    np.testing.assert_array_equal(y[0, 0], x[0, 0, 2:, 2:])
    np.testing.assert_array_equal(F.max_pool2d_indices(cache)[0, 0],
                                  (np.arange(2, 5)[:, None] * 5 + np.arange(2, 5)))


def test_fused_relu_keeps_dilation_and_asymmetric_padding():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 9, 8))
    args = dict(kernel_size=3, stride=2, padding=((1, 0), (0, 1)), dilation=2)
    y, cache = F.max_pool2d_forward(x, relu=True, **args)
    y_ref, pool_cache = R.max_pool2d_forward(np.maximum(x, 0), **args)
    assert_same(y, y_ref)
    w = rng.standard_normal((4, 3, 3, 3))
    y2, c2 = F.conv2d_relu_max_pool2d_forward(x, w, None, 1, 1, 1, 3, 2, ((1, 0), (0, 1)),
                                              pool_dilation=2)
    z, zc = R.conv2d_forward(x, w, None, 1, 1)
    y2_ref, _ = R.max_pool2d_forward(np.maximum(z, 0), **args)
    assert_same(y2, y2_ref)
    with pytest.raises(ClearConvError, match="relu"):
        F.max_pool2d_indices(cache)


# ---------------------------------------------------------------------------- average
@PROPERTY
@given(pool_cases_more(dilated=False), st.booleans())
def test_avg_pool2d_meets_the_reference_with_asymmetric_padding_and_divisor_override(
        case, count_include_pad):
    y, cache = F.avg_pool2d_forward(case.x, **_avg_args(case, count_include_pad))
    y_ref, cache_ref = R.avg_pool2d_forward(case.x, **_avg_args(case, count_include_pad))
    assert_same(y, y_ref)
    for layout_last in (False, True):
        dy = random_like(case.dy_rng, y, layout_last)
        assert_same(F.avg_pool2d_backward(dy, cache), R.avg_pool2d_backward(dy, cache_ref))


@FEW
@given(pool_cases_more(dilated=False), st.booleans())
def test_avg_pool2d_gradient_matches_finite_differences(case, count_include_pad):
    x = np.ascontiguousarray(case.x)
    assume(x.size <= 60)
    kwargs = _avg_args(case, count_include_pad)
    y, cache = F.avg_pool2d_forward(x, **kwargs)
    dy = case.dy_rng.standard_normal(y.shape)
    numeric = numerical_gradient(lambda a: F.avg_pool2d_forward(a, **kwargs)[0], x.copy(), dy)
    np.testing.assert_allclose(F.avg_pool2d_backward(dy, cache), numeric, rtol=1e-6,
                               atol=1e-8)


def test_avg_pool_counts_asymmetric_padding_as_asked_and_never_ceil_modes_extra():
    x = np.ones((1, 1, 4, 4))
    # top 1, bottom 0: the first window row holds one padding row, counted (divisor 4)
    y, _ = F.avg_pool2d_forward(x, 2, 2, ((1, 0), (0, 0)), ceil_mode=True)
    assert y.shape == (1, 1, 3, 2)
    np.testing.assert_allclose(y[0, 0, 0], 0.5)      # 2 ones / 4 cells
    np.testing.assert_allclose(y[0, 0, 2], 1.0)      # ceil's extra row does not count
    y, _ = F.avg_pool2d_forward(x, 2, 2, divisor_override=3)
    np.testing.assert_allclose(y, 4 / 3)


# ---------------------------------------------------------------- indices and unpooling
@PROPERTY
@given(pool_cases_more(), st.data())
def test_max_unpool2d_meets_the_reference_forward_and_backward(case, data):
    x = case.x
    y, cache = F.max_pool2d_forward(x, **_max_args(case))
    assume(np.isfinite(y).all())
    indices = F.max_pool2d_indices(cache)
    k, s, p = case.kernel_size, case.stride, case.padding
    size = None if data.draw(st.booleans()) else x.shape[2:]
    try:        # x's size may be outside one stride of the default; indices outside it
        u, ucache = F.max_unpool2d_forward(y, indices, k, s, p, output_size=size)
    except ClearConvError:
        assume(False)
    u_ref, ucache_ref = R.max_unpool2d_forward(y, indices, k, s, p, output_size=u.shape)
    if case.dilation in (1, (1, 1)) and not _overlapping(case):
        assert_same(u, u_ref)       # duplicate indices (overlapping windows) aside
    du = case.dy_rng.standard_normal(u.shape)
    assert_same(F.max_unpool2d_backward(du, ucache), R.max_unpool2d_backward(du, ucache_ref))


def _overlapping(case) -> bool:
    geo = pool2d_geometry(case.x.shape, case.kernel_size, case.stride, case.padding,
                          case.ceil_mode, dilation=case.dilation)
    return any(s < k for s, k in zip(geo.stride, geo.kernel))


def test_unpool_puts_each_maximum_back_and_its_gradient_is_a_gather():
    x = np.array([[[[1.0, 5.0, 2.0, 0.0], [3.0, 4.0, 8.0, 7.0]]]])
    y, cache = F.max_pool2d_forward(x, 2)
    idx = F.max_pool2d_indices(cache)
    np.testing.assert_array_equal(idx, [[[[1, 6]]]])
    u, ucache = F.max_unpool2d_forward(y, idx, 2)
    np.testing.assert_array_equal(u, [[[[0, 5, 0, 0], [0, 0, 8, 0]]]])
    du = np.arange(8.0).reshape(u.shape)
    np.testing.assert_array_equal(F.max_unpool2d_backward(du, ucache), [[[[1.0, 6.0]]]])
    numeric = numerical_gradient(lambda a: F.max_unpool2d_forward(a, idx, 2)[0], y.copy(), du)
    np.testing.assert_allclose(F.max_unpool2d_backward(du, ucache), numeric, atol=1e-8)


# ------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("module", [F, R], ids=["functional", "reference"])
def test_bad_pooling_arguments_raise_clear_errors(module):
    x = np.zeros((1, 1, 6, 6))
    with pytest.raises(ClearConvError, match=mentions("divisor_override", 0)):
        module.avg_pool2d_forward(x, 2, divisor_override=0)
    with pytest.raises(ClearConvError, match=mentions(2, 3)):
        module.max_pool2d_forward(x, 3, padding=((0, 2), (0, 0)))
    with pytest.raises(ShapeError, match=mentions("dilated", 3, 7)):
        module.max_pool2d_forward(x, 3, dilation=3)
    with pytest.raises(ClearConvError, match="dilation"):
        module.max_pool2d_forward(x, 2, dilation=0)
    y = np.ones((1, 1, 3, 3))
    with pytest.raises(ShapeError, match=mentions(36, "6x6")):
        module.max_unpool2d_forward(y, np.full((1, 1, 3, 3), 36), 2)
    with pytest.raises(ClearConvError, match=mentions(9, "(6, 6)")):
        module.max_unpool2d_forward(y, np.zeros((1, 1, 3, 3), int), 2, output_size=(9, 9))
    with pytest.raises(ClearConvError, match="padding"):
        module.max_pool2d_forward(x, 2, padding="same")


def test_unpool_refuses_indices_of_another_shape():
    with pytest.raises(ShapeError, match=mentions(2, 3)):
        F.max_unpool2d_forward(np.ones((1, 1, 2, 2)), np.zeros((1, 1, 3, 3), int), 2)
    with pytest.raises(ShapeError, match="float64"):
        F.max_unpool2d_forward(np.ones((1, 1, 2, 2)), np.zeros((1, 1, 2, 2)), 2)


# ------------------------------------------------------------- global and adaptive
@PROPERTY
@given(resize_cases())
def test_adaptive_pooling_meets_the_reference(case):
    for forward, backward, name in (
            (F.adaptive_avg_pool2d_forward, F.adaptive_avg_pool2d_backward, "avg"),
            (F.adaptive_max_pool2d_forward, F.adaptive_max_pool2d_backward, "max")):
        ref_forward = getattr(R, f"adaptive_{name}_pool2d_forward")
        ref_backward = getattr(R, f"adaptive_{name}_pool2d_backward")
        y, cache = forward(case.x, case.output_size)
        y_ref, cache_ref = ref_forward(case.x, case.output_size)
        assert_same(y, y_ref)
        dy = case.dy_rng.standard_normal(y.shape)
        assert_same(backward(dy, cache), ref_backward(dy, cache_ref))
        if name == "max":
            np.testing.assert_array_equal(F.adaptive_max_pool2d_indices(cache),
                                          R.adaptive_max_pool2d_indices(cache_ref))


@FEW
@given(st.sampled_from(["ties", "nonfinite"]).flatmap(resize_cases))
def test_adaptive_and_global_max_send_ties_to_the_first_maximum_as_the_reference(case):
    """PyTorch's rule, as max pooling's: the first maximum wins ties, NaN wins."""
    y, cache = F.adaptive_max_pool2d_forward(case.x, case.output_size)
    y_ref, cache_ref = R.adaptive_max_pool2d_forward(case.x, case.output_size)
    assert_same(y, y_ref)
    dy = case.dy_rng.standard_normal(y.shape)
    assert_same(F.adaptive_max_pool2d_backward(dy, cache),
                R.adaptive_max_pool2d_backward(dy, cache_ref))
    g, gcache = F.global_max_pool2d_forward(case.x)
    g_ref, gcache_ref = R.global_max_pool2d_forward(case.x)
    assert_same(g, g_ref)
    dg = case.dy_rng.standard_normal(g.shape)
    assert_same(F.global_max_pool2d_backward(dg, gcache),
                R.global_max_pool2d_backward(dg, gcache_ref))


@PROPERTY
@given(resize_cases())
def test_global_average_pooling_meets_the_reference(case):
    y, cache = F.global_avg_pool2d_forward(case.x)
    y_ref, cache_ref = R.global_avg_pool2d_forward(case.x)
    assert_same(y, y_ref)
    assert y.shape == (*case.x.shape[:2], 1, 1)
    dy = case.dy_rng.standard_normal(y.shape)
    assert_same(F.global_avg_pool2d_backward(dy, cache),
                R.global_avg_pool2d_backward(dy, cache_ref))


def test_global_max_pooling_lets_nan_win_as_max_pooling_does():
    x = np.array([[[[1.0, np.nan], [np.nan, 5.0]]]])
    y, cache = F.global_max_pool2d_forward(x)
    assert np.isnan(y[0, 0, 0, 0])
    _, pool_cache = F.max_pool2d_forward(x, 2)
    np.testing.assert_array_equal(F.adaptive_max_pool2d_indices(cache),
                                  F.max_pool2d_indices(pool_cache))


def test_adaptive_windows_follow_torch_rule_on_sizes_that_do_not_divide():
    x = np.arange(5.0).reshape(1, 1, 1, 5)
    y, _ = F.adaptive_avg_pool2d_forward(x, (1, 3))     # windows [0,2) [1,4) [3,5)
    np.testing.assert_allclose(y[0, 0, 0], [0.5, 2.0, 3.5])


@FEW
@given(resize_cases())
def test_adaptive_average_pooling_gradient_matches_finite_differences(case):
    x = np.ascontiguousarray(case.x)
    assume(x.size <= 60)
    y, cache = F.adaptive_avg_pool2d_forward(x, case.output_size)
    dy = case.dy_rng.standard_normal(y.shape)
    numeric = numerical_gradient(
        lambda a: F.adaptive_avg_pool2d_forward(a, case.output_size)[0], x.copy(), dy)
    np.testing.assert_allclose(F.adaptive_avg_pool2d_backward(dy, cache), numeric,
                               rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------------ upsampling
@PROPERTY
@given(resize_cases(), st.sampled_from(["nearest", False, True]))
def test_upsampling_meets_the_reference(case, mode):
    """mode: 'nearest', or bilinear with align_corners False / True."""
    if mode == "nearest":
        forward, backward = F.upsample_nearest2d_forward, F.upsample_nearest2d_backward
        ref_forward, ref_backward = R.upsample_nearest2d_forward, R.upsample_nearest2d_backward
        extra = {}
    else:
        forward, backward = F.upsample_bilinear2d_forward, F.upsample_bilinear2d_backward
        ref_forward = R.upsample_bilinear2d_forward
        ref_backward = R.upsample_bilinear2d_backward
        extra = {"align_corners": mode}
    y, cache = forward(case.x, case.size, case.scale_factor, **extra)
    y_ref, cache_ref = ref_forward(case.x, case.size, case.scale_factor, **extra)
    assert_same(y, y_ref)
    for layout_last in (False, True):
        dy = random_like(case.dy_rng, y, layout_last)
        assert_same(backward(dy, cache), ref_backward(dy, cache_ref))


@FEW
@given(resize_cases(), st.booleans())
def test_bilinear_upsampling_gradient_matches_finite_differences(case, align_corners):
    x = np.ascontiguousarray(case.x)
    assume(x.size <= 40)
    kwargs = dict(size=case.size, scale_factor=case.scale_factor,
                  align_corners=align_corners)
    y, cache = F.upsample_bilinear2d_forward(x, **kwargs)
    dy = case.dy_rng.standard_normal(y.shape)
    numeric = numerical_gradient(lambda a: F.upsample_bilinear2d_forward(a, **kwargs)[0],
                                 x.copy(), dy)
    np.testing.assert_allclose(F.upsample_bilinear2d_backward(dy, cache), numeric,
                               rtol=1e-6, atol=1e-8)


def test_float32_stays_float32_in_the_new_ops():
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 6)).astype(np.float32)
    for y, _ in (F.global_avg_pool2d_forward(x), F.global_max_pool2d_forward(x),
                 F.adaptive_avg_pool2d_forward(x, 3), F.adaptive_max_pool2d_forward(x, 4),
                 F.upsample_nearest2d_forward(x, scale_factor=2),
                 F.upsample_bilinear2d_forward(x, size=(7, 9))):
        assert y.dtype == np.float32


@pytest.mark.parametrize("module", [F, R], ids=["functional", "reference"])
def test_bad_resize_arguments_raise_clear_errors(module):
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ClearConvError, match="exactly one"):
        module.upsample_nearest2d_forward(x)
    with pytest.raises(ClearConvError, match="exactly one"):
        module.upsample_bilinear2d_forward(x, size=3, scale_factor=2)
    with pytest.raises(ClearConvError, match=mentions("scale_factor", -2)):
        module.upsample_nearest2d_forward(x, scale_factor=-2)
    with pytest.raises(ShapeError, match="empty"):
        module.upsample_nearest2d_forward(x, scale_factor=0.1)
    with pytest.raises(ClearConvError, match=mentions("output_size", 0)):
        module.adaptive_avg_pool2d_forward(x, 0)
    with pytest.raises(ClearConvError, match="output_size"):
        module.adaptive_max_pool2d_forward(x, (1, 2, 3))
    with pytest.raises(ShapeError, match="4 dimensions"):
        module.global_avg_pool2d_forward(np.zeros((1, 4, 4)))


# ------------------------------------------------------------------------------- 1-D
@PROPERTY
@given(pool1d_cases(), st.integers(1, 9))
def test_1d_pooling_meets_the_reference_as_views_of_the_2d_ops(case, out):
    args = (case.kernel_size, case.stride, case.padding, case.ceil_mode)
    y, cache = F.max_pool1d_forward(case.x, *args, case.dilation)
    y_ref, cache_ref = R.max_pool1d_forward(case.x, *args, case.dilation)
    assert_same(y, y_ref)
    assert y.ndim == 3
    dy = case.dy_rng.standard_normal(y.shape)
    assert_same(F.max_pool1d_backward(dy, cache), R.max_pool1d_backward(dy, cache_ref))
    y, cache = F.avg_pool1d_forward(case.x, *args)
    y_ref, cache_ref = R.avg_pool1d_forward(case.x, *args)
    assert_same(y, y_ref)
    dy = case.dy_rng.standard_normal(y.shape)
    assert_same(F.avg_pool1d_backward(dy, cache), R.avg_pool1d_backward(dy, cache_ref))
    for name in ("avg", "max"):
        y, cache = getattr(F, f"adaptive_{name}_pool1d_forward")(case.x, out)
        y_ref, cache_ref = getattr(R, f"adaptive_{name}_pool1d_forward")(case.x, out)
        assert_same(y, y_ref)
        dy = case.dy_rng.standard_normal(y.shape)
        assert_same(getattr(F, f"adaptive_{name}_pool1d_backward")(dy, cache),
                    getattr(R, f"adaptive_{name}_pool1d_backward")(dy, cache_ref))


def test_1d_global_pooling_and_indices():
    x = np.array([[[1.0, 4.0, 2.0, 4.0, 0.0]]])
    y, cache = F.global_max_pool1d_forward(x)
    np.testing.assert_array_equal(y, [[[4.0]]])
    np.testing.assert_array_equal(F.global_max_pool1d_backward(np.ones_like(y), cache),
                                  [[[0, 1, 0, 0, 0]]])
    y, cache = F.global_avg_pool1d_forward(x)
    np.testing.assert_allclose(y, [[[2.2]]])
    np.testing.assert_allclose(F.global_avg_pool1d_backward(np.ones_like(y), cache), 0.2)
    _, cache = F.max_pool1d_forward(x, 2)
    np.testing.assert_array_equal(F.max_pool1d_indices(cache), [[[1, 3]]])
    _, cache = F.adaptive_max_pool1d_forward(x, 2)
    np.testing.assert_array_equal(F.adaptive_max_pool1d_indices(cache), [[[1, 3]]])
    with pytest.raises(ShapeError, match="3 dimensions"):
        F.max_pool1d_forward(np.zeros((1, 1, 4, 4)), 2)
    with pytest.raises(ClearConvError, match="stride"):
        F.avg_pool1d_forward(x, 2, 0)
