"""Pooling, unpooling, adaptive pooling and upsampling against torch.nn.functional,
forward and backward (float32 1e-4, float64 1e-10), as tests/test_torch_conformance.py
does for the other ops (its helpers, its tolerances)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import pool_cases_more  # noqa: E402
from test_torch_conformance import DTYPES, check_against_torch, normal  # noqa: E402

from clearconv import functional as F
from clearconv.shapes import pool_padding

torch = pytest.importorskip("torch", reason="PyTorch not installed: conformance with "
                                            "torch.nn.functional not checked")
TF = torch.nn.functional


def torch_pads(padding):
    """F.pad amounts (left, right, top, bottom) of ((top, bottom), (left, right))."""
    (t, b), (left, r) = padding
    return (left, r, t, b)


# ------------------------------------------------------------ max pooling: dilation, indices
DILATED = [
    # x shape, kernel, stride, padding, dilation, ceil_mode
    ((2, 3, 9, 9), 3, 1, 1, 2, False),
    ((1, 2, 10, 8), 2, 2, 1, 3, True),
    ((1, 4, 11, 12), (3, 2), (2, 1), (1, 0), (2, 3), False),
    ((2, 2, 7, 7), 3, 2, 0, 2, True),
    ((1, 32, 8, 8), 2, 2, 0, 2, False),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, kernel, stride, padding, dilation, ceil_mode", DILATED)
def test_dilated_max_pool2d_and_its_indices_match_torch(x_shape, kernel, stride, padding,
                                                        dilation, ceil_mode, dtype):
    x = normal(x_shape, sum(x_shape))
    y, _ = check_against_torch(
        lambda a: F.max_pool2d_forward(a, kernel, stride, padding, ceil_mode,
                                       dilation=dilation),
        F.max_pool2d_backward,
        lambda a: TF.max_pool2d(a, kernel, stride, padding, dilation, ceil_mode),
        [x], dtype)
    _, cache = F.max_pool2d_forward(x.astype(dtype), kernel, stride, padding, ceil_mode,
                                    dilation=dilation)
    _, idx_t = TF.max_pool2d(torch.tensor(x.astype(dtype)), kernel, stride, padding, dilation,
                             ceil_mode, return_indices=True)
    np.testing.assert_array_equal(F.max_pool2d_indices(cache), idx_t.numpy())


ASYMMETRIC = [
    # x shape, kernel, stride, ((top, bottom), (left, right))
    ((2, 3, 8, 8), 3, 2, ((1, 0), (0, 1))),
    ((1, 2, 7, 9), (2, 3), (1, 2), ((0, 1), (1, 1))),
    ((1, 3, 6, 6), 2, 2, ((1, 0), (1, 0))),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, kernel, stride, padding", ASYMMETRIC)
def test_asymmetric_padding_matches_torch_on_an_explicitly_padded_input(
        x_shape, kernel, stride, padding, dtype):
    """Torch pools asymmetric padding only through F.pad: -inf for max pooling (padding
    never wins), zeros for average pooling counting the padding. (With ceil_mode torch's
    rule for the last window would see F.pad's cells as input: held to the reference
    in test_functional_pool instead.)"""
    pads = torch_pads(padding)
    x = normal(x_shape, sum(x_shape) + 2)
    check_against_torch(
        lambda a: F.max_pool2d_forward(a, kernel, stride, padding),
        F.max_pool2d_backward,
        lambda a: TF.max_pool2d(TF.pad(a, pads, value=-float("inf")), kernel, stride),
        [x], dtype)
    check_against_torch(
        lambda a: F.avg_pool2d_forward(a, kernel, stride, padding),
        F.avg_pool2d_backward,
        lambda a: TF.avg_pool2d(TF.pad(a, pads), kernel, stride),
        [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("divisor", [1, 3, -2, 7])
@pytest.mark.parametrize("x_shape, kernel, stride, padding, ceil_mode", [
    ((2, 3, 8, 8), 2, 2, 0, False), ((1, 2, 7, 7), 3, 2, 1, True)])
def test_divisor_override_matches_torch(x_shape, kernel, stride, padding, ceil_mode,
                                        divisor, dtype):
    check_against_torch(
        lambda a: F.avg_pool2d_forward(a, kernel, stride, padding, ceil_mode,
                                       divisor_override=divisor),
        F.avg_pool2d_backward,
        lambda a: TF.avg_pool2d(a, kernel, stride, padding, ceil_mode,
                                divisor_override=divisor),
        [normal(x_shape, divisor + 10)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, kernel, stride, padding, output_size", [
    ((2, 3, 8, 8), 2, None, 0, None),
    ((1, 2, 9, 7), 3, 3, 1, (9, 7)),
    ((1, 4, 6, 10), (2, 3), (2, 3), (1, 0), (1, 4, 6, 10)),
])
def test_max_unpool2d_matches_torch(x_shape, kernel, stride, padding, output_size, dtype):
    x = normal(x_shape, sum(x_shape) + 5).astype(dtype)
    y, cache = F.max_pool2d_forward(x, kernel, stride, padding)
    indices = F.max_pool2d_indices(cache)
    idx_t = torch.tensor(indices)
    check_against_torch(
        lambda a: F.max_unpool2d_forward(a, indices, kernel, stride, padding, output_size),
        F.max_unpool2d_backward,
        lambda a: TF.max_unpool2d(a, idx_t, kernel, stride, padding, output_size),
        [y], dtype)


# ----------------------------------------------------------- global and adaptive pooling
ADAPTIVE = [
    # x shape, output size
    ((2, 3, 8, 8), 1), ((2, 3, 7, 10), (3, 4)), ((1, 4, 5, 5), (2, None)),
    ((1, 2, 6, 9), (6, 9)), ((1, 2, 4, 5), (7, 8)), ((2, 16, 14, 14), 7),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, output_size", ADAPTIVE)
def test_adaptive_pooling_matches_torch(x_shape, output_size, dtype):
    x = normal(x_shape, sum(x_shape))
    check_against_torch(lambda a: F.adaptive_avg_pool2d_forward(a, output_size),
                        F.adaptive_avg_pool2d_backward,
                        lambda a: TF.adaptive_avg_pool2d(a, output_size), [x], dtype)
    check_against_torch(lambda a: F.adaptive_max_pool2d_forward(a, output_size),
                        F.adaptive_max_pool2d_backward,
                        lambda a: TF.adaptive_max_pool2d(a, output_size), [x], dtype)
    _, cache = F.adaptive_max_pool2d_forward(x.astype(dtype), output_size)
    _, idx_t = TF.adaptive_max_pool2d(torch.tensor(x.astype(dtype)), output_size,
                                      return_indices=True)
    np.testing.assert_array_equal(F.adaptive_max_pool2d_indices(cache), idx_t.numpy())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape", [(2, 3, 8, 8), (1, 5, 7, 3), (4, 64, 1, 1)])
def test_global_pooling_matches_torch_adaptive_pooling_to_one(x_shape, dtype):
    x = normal(x_shape, sum(x_shape) + 1)
    check_against_torch(F.global_avg_pool2d_forward, F.global_avg_pool2d_backward,
                        lambda a: TF.adaptive_avg_pool2d(a, 1), [x], dtype)
    check_against_torch(F.global_max_pool2d_forward, F.global_max_pool2d_backward,
                        lambda a: TF.adaptive_max_pool2d(a, 1), [x], dtype)


# ---------------------------------------------------------------------------- upsampling
UPSAMPLE = [
    # x shape, size, scale_factor
    ((2, 3, 5, 7), None, 2), ((2, 3, 5, 7), (11, 4), None), ((1, 2, 4, 4), None, (1.7, 3)),
    ((1, 2, 6, 5), (3, 12), None), ((1, 1, 1, 3), (4, 1), None), ((1, 4, 8, 8), None, 0.5),
    ((1, 2, 3, 3), None, 3), ((1, 2, 7, 5), 7, None), ((2, 2, 5, 6), None, (2.5, 1.5)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, size, scale_factor", UPSAMPLE)
@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bilinear-align-corners"])
def test_upsampling_matches_torch_interpolate(x_shape, size, scale_factor, mode, dtype):
    x = normal(x_shape, sum(x_shape) + 3)
    if mode == "nearest":
        check_against_torch(
            lambda a: F.upsample_nearest2d_forward(a, size, scale_factor),
            F.upsample_nearest2d_backward,
            lambda a: TF.interpolate(a, size, scale_factor, mode="nearest"), [x], dtype)
        return
    align = mode == "bilinear-align-corners"
    check_against_torch(
        lambda a: F.upsample_bilinear2d_forward(a, size, scale_factor, align),
        F.upsample_bilinear2d_backward,
        lambda a: TF.interpolate(a, size, scale_factor, mode="bilinear",
                                 align_corners=align), [x], dtype)


# ----------------------------------------------------------------------------------- 1-D
POOL1D = [
    # x shape, kernel, stride, padding, dilation, ceil_mode
    ((2, 3, 20), 3, 2, 1, 1, False), ((1, 4, 17), 2, None, 0, 1, True),
    ((2, 2, 15), 3, 1, 1, 2, False), ((1, 3, 9), 4, 3, 2, 1, True),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, kernel, stride, padding, dilation, ceil_mode", POOL1D)
def test_1d_pooling_matches_torch(x_shape, kernel, stride, padding, dilation, ceil_mode,
                                  dtype):
    x = normal(x_shape, sum(x_shape))
    check_against_torch(
        lambda a: F.max_pool1d_forward(a, kernel, stride, padding, ceil_mode, dilation),
        F.max_pool1d_backward,
        lambda a: TF.max_pool1d(a, kernel, stride, padding, dilation, ceil_mode), [x], dtype)
    _, cache = F.max_pool1d_forward(x.astype(dtype), kernel, stride, padding, ceil_mode,
                                    dilation)
    _, idx_t = TF.max_pool1d(torch.tensor(x.astype(dtype)), kernel, stride, padding, dilation,
                             ceil_mode, return_indices=True)
    np.testing.assert_array_equal(F.max_pool1d_indices(cache), idx_t.numpy())
    for count_include_pad in (True, False):
        check_against_torch(
            lambda a, cip=count_include_pad: F.avg_pool1d_forward(
                a, kernel, stride, padding, ceil_mode, cip),
            F.avg_pool1d_backward,
            lambda a, cip=count_include_pad: TF.avg_pool1d(a, kernel, stride, padding,
                                                           ceil_mode, cip), [x], dtype)
    for out in (1, 4, x_shape[2] + 3):
        check_against_torch(lambda a, o=out: F.adaptive_avg_pool1d_forward(a, o),
                            F.adaptive_avg_pool1d_backward,
                            lambda a, o=out: TF.adaptive_avg_pool1d(a, o), [x], dtype)
        check_against_torch(lambda a, o=out: F.adaptive_max_pool1d_forward(a, o),
                            F.adaptive_max_pool1d_backward,
                            lambda a, o=out: TF.adaptive_max_pool1d(a, o), [x], dtype)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.one_of(
    st.integers(1, 90).map(lambda n: ("size", n)),
    st.floats(0.3, 7.0, allow_nan=False).map(lambda f: ("scale", round(f, 3)))),
    st.booleans())
def test_upsampling_picks_the_rows_torch_picks_for_any_size_and_factor(h, target, bilinear):
    """The source rule in float32 as PyTorch computes it (1/scale_factor, or H/H_out),
    on many sizes and factors: the rows picked are the same, not only close."""
    kind, value = target
    kwargs = {"size": (value, 1)} if kind == "size" else {"scale_factor": (value, 1.0)}
    assume(kind == "size" or int(np.floor(h * value)) >= 1)
    x = np.arange(h, dtype=np.float64).reshape(1, 1, h, 1)
    if bilinear:
        y, _ = F.upsample_bilinear2d_forward(x, **kwargs)
        yt = TF.interpolate(torch.tensor(x), mode="bilinear", **kwargs)
        np.testing.assert_allclose(y, yt.numpy(), rtol=1e-12, atol=1e-12)
    else:
        y, _ = F.upsample_nearest2d_forward(x, **kwargs)
        yt = TF.interpolate(torch.tensor(x), mode="nearest", **kwargs)
        np.testing.assert_array_equal(y, yt.numpy())


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 30), st.integers(1, 30), st.integers(1, 35), st.integers(1, 35))
def test_adaptive_windows_are_torch_windows_for_any_sizes(h, w, ho, wo):
    x = np.random.default_rng(h * 31 + w).permutation(h * w).reshape(1, 1, h, w) * 1.0
    y, cache = F.adaptive_max_pool2d_forward(x, (ho, wo))
    yt, it = TF.adaptive_max_pool2d(torch.tensor(x), (ho, wo), return_indices=True)
    np.testing.assert_array_equal(y, yt.numpy())
    np.testing.assert_array_equal(F.adaptive_max_pool2d_indices(cache), it.numpy())
    ya, _ = F.adaptive_avg_pool2d_forward(x, (ho, wo))
    np.testing.assert_allclose(ya, TF.adaptive_avg_pool2d(torch.tensor(x), (ho, wo)).numpy(),
                               rtol=1e-12, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(pool_cases_more())
def test_dilated_max_pooling_is_torch_on_hypothesis_drawn_calls(case):
    """Every symmetric padding, stride, dilation and ceil_mode drawn: the same output
    shape, values, indices and gradient as torch (float64)."""
    (pt, pb), (pl, pr) = pool_padding(case.padding)
    assume(pt == pb and pl == pr)
    args = (case.kernel_size, case.stride, (pt, pl), case.ceil_mode)
    x = np.ascontiguousarray(case.x)
    y, cache = F.max_pool2d_forward(x, *args, dilation=case.dilation)
    xt = torch.tensor(x, requires_grad=True)
    yt, it = TF.max_pool2d(xt, case.kernel_size, case.stride or case.kernel_size, (pt, pl),
                           case.dilation, case.ceil_mode, return_indices=True)
    assume(np.isfinite(y).all())          # torch's index for a window of padding only
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(F.max_pool2d_indices(cache), it.numpy())
    dy = case.dy_rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(F.max_pool2d_backward(dy, cache), xt.grad.numpy(),
                               rtol=1e-12, atol=1e-12)
