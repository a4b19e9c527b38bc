"""The oracle itself: reference.py against hand-worked examples of MATH.md, against its
own formulas (finite differences, strides as subsampling, dilation as zero-inserted
kernels), and against PyTorch when it is installed, independently of functional/.

The step functions that explain/ draws (``*_steps``) are held to the plain reference ops
bit for bit and, as the one place here that uses it, to functional/ (float64, 1e-10)."""

from __future__ import annotations

import numpy as np
import pytest

from clearconv import functional as F
from clearconv import reference as R
from clearconv.errors import ShapeError


def image(values) -> np.ndarray:
    """A single-channel image (1, 1, H, W) from a 2-D list."""
    return np.array(values, dtype=np.float64)[None, None]


def numerical_gradient(loss, a: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``loss()`` with respect to every entry of ``a``."""
    grad = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        old = a[idx]
        a[idx] = old + eps
        plus = loss()
        a[idx] = old - eps
        minus = loss()
        a[idx] = old
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


def assert_gradient(loss, a, analytic):
    np.testing.assert_allclose(analytic, numerical_gradient(loss, a), rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------ convolution: MATH.md §3-6


def test_valid_convolution_of_6x6_image_with_3x3_kernel_gives_4x4():
    """§4: 16 positions; each output is the sum of the products over its window."""
    x = image(np.arange(36).reshape(6, 6))
    y, _ = R.conv2d_forward(x, np.ones((1, 1, 3, 3)))
    assert y.shape == (1, 1, 4, 4)
    assert y[0, 0, 0, 0] == 0 + 1 + 2 + 6 + 7 + 8 + 12 + 13 + 14
    assert y[0, 0, 3, 3] == 21 + 22 + 23 + 27 + 28 + 29 + 33 + 34 + 35


def test_padding_of_one_keeps_6x6_and_equals_same():
    """§4: p = (f - 1)/2 = 1 for a 3x3 kernel keeps the size."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 1, 6, 6)), rng.standard_normal((1, 1, 3, 3))
    y1, _ = R.conv2d_forward(x, w, padding=1)
    y_same, _ = R.conv2d_forward(x, w, padding="same")
    assert y1.shape == (1, 1, 6, 6)
    np.testing.assert_array_equal(y1, y_same)
    # the centre of the padded result is the valid result
    y_valid, _ = R.conv2d_forward(x, w)
    np.testing.assert_allclose(y1[:, :, 1:5, 1:5], y_valid, rtol=1e-15)


def test_border_pixels_take_part_in_fewer_products():
    """Figure 5: how many products each pixel of a 6x6 image takes part in (3x3, valid).

    Backward of an all-ones kernel and an all-ones dZ counts exactly that.
    """
    _, cache = R.conv2d_forward(np.zeros((1, 1, 6, 6)), np.ones((1, 1, 3, 3)))
    dx, _, _ = R.conv2d_backward(np.ones((1, 1, 4, 4)), cache)
    per_axis = np.array([1, 2, 3, 3, 2, 1])
    np.testing.assert_array_equal(dx[0, 0], np.outer(per_axis, per_axis))


def test_hand_worked_3x3_input_and_2x2_kernel():
    """Forward and §9 backward of x = [[1,2,3],[4,5,6],[7,8,9]], W = [[1,2],[3,4]], b = 1.

    Z[0,0] = 1*1 + 2*2 + 3*4 + 4*5 + 1 = 38, Z[0,1] = 1*2 + 2*3 + 3*5 + 4*6 + 1 = 48,
    Z[1,0] = 1*4 + 2*5 + 3*7 + 4*8 + 1 = 68, Z[1,1] = 1*5 + 2*6 + 3*8 + 4*9 + 1 = 78.

    With dZ = [[1,-1],[2,0]]:
    db = 1 - 1 + 2 + 0 = 2;
    dW[i,j] = sum_mk dZ[m,k] x[m+i, k+j]: dW[0,0] = 1 - 2 + 2*4 = 7, dW[0,1] = 2 - 3 + 2*5 = 9,
    dW[1,0] = 4 - 5 + 2*7 = 13, dW[1,1] = 5 - 6 + 2*8 = 15;
    dA[r,q] = sum_mk dZ[m,k] W[r-m, q-k] (full convolution, kernel rotated):
    dA[0] = [1, 2 - 1, -2] = [1, 1, -2]; dA[1] = [3 + 2, 4 - 3 + 4, -4] = [5, 5, -4];
    dA[2] = [2*3, 2*4, 0] = [6, 8, 0].
    """
    x = image([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    w = image([[1, 2], [3, 4]])
    y, cache = R.conv2d_forward(x, w, np.array([1.0]))
    np.testing.assert_array_equal(y, image([[38, 48], [68, 78]]))
    dx, dw, db = R.conv2d_backward(image([[1, -1], [2, 0]]), cache)
    np.testing.assert_array_equal(db, [2])
    np.testing.assert_array_equal(dw, image([[7, 9], [13, 15]]))
    np.testing.assert_array_equal(dx, image([[1, 1, -2], [5, 5, -4], [6, 8, 0]]))


def test_cross_correlation_is_true_convolution_with_the_kernel_rotated():
    """§3: G[m, n] = sum_j sum_k h[j, k] f[m - j, n - k] equals cross-correlation with h
    rotated by 180°, at the positions where the kernel lies inside the image."""
    rng = np.random.default_rng(1)
    f, h = rng.standard_normal((5, 6)), rng.standard_normal((3, 2))
    fh, fw = h.shape
    true_conv = np.zeros((5 - fh + 1, 6 - fw + 1))
    for m in range(fh - 1, 5):
        for n in range(fw - 1, 6):
            true_conv[m - fh + 1, n - fw + 1] = sum(
                h[j, k] * f[m - j, n - k] for j in range(fh) for k in range(fw))
    y, _ = R.conv2d_forward(f[None, None], h[::-1, ::-1][None, None])
    np.testing.assert_allclose(y[0, 0], true_conv, rtol=1e-13)


def test_stride_gives_floor_formula_and_subsamples_the_stride_one_map():
    """§5: n_out = floor((n + 2p - f)/s) + 1, per axis; the strided map is the stride-1
    map read every s-th row and column."""
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((2, 2, 7, 9)), rng.standard_normal((3, 2, 3, 2))
    y, _ = R.conv2d_forward(x, w, stride=(2, 3), padding=1)
    assert y.shape == (2, 3, (7 + 2 - 3) // 2 + 1, (9 + 2 - 2) // 3 + 1)
    y1, _ = R.conv2d_forward(x, w, stride=1, padding=1)
    np.testing.assert_allclose(y, y1[:, :, ::2, ::3], rtol=1e-14)


def test_dilation_equals_a_kernel_with_zeros_between_its_taps():
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((1, 2, 8, 7)), rng.standard_normal((2, 2, 2, 3))
    w_holes = np.zeros((2, 2, 3, 7))
    w_holes[:, :, ::2, ::3] = w
    y, cache = R.conv2d_forward(x, w, stride=(1, 2), padding=(1, 0), dilation=(2, 3))
    y_holes, cache_holes = R.conv2d_forward(x, w_holes, stride=(1, 2), padding=(1, 0))
    np.testing.assert_allclose(y, y_holes, rtol=1e-13)
    dy = rng.standard_normal(y.shape)
    dx, dw, _ = R.conv2d_backward(dy, cache)
    dx_holes, dw_holes, _ = R.conv2d_backward(dy, cache_holes)
    np.testing.assert_allclose(dx, dx_holes, rtol=1e-13)
    np.testing.assert_allclose(dw, dw_holes[:, :, ::2, ::3], rtol=1e-13)


def test_even_kernel_same_padding_puts_the_extra_row_and_column_at_bottom_right():
    """§4: a 2x2 kernel needs 1 row of padding in all: PyTorch puts it at the bottom."""
    x = image(np.arange(16).reshape(4, 4))
    y, _ = R.conv2d_forward(x, np.ones((1, 1, 2, 2)), padding="same")
    assert y.shape == (1, 1, 4, 4)
    assert y[0, 0, 0, 0] == 0 + 1 + 4 + 5
    assert y[0, 0, 0, 3] == 3 + 7            # the right column reads padding
    assert y[0, 0, 3, 3] == 15               # the corner sees a single pixel


def test_three_dimensions_one_map_per_kernel_summed_over_channels():
    """§6: [6, 6, 3] * [3, 3, 3] with n_f = 2 kernels gives [4, 4, 2]; each map is the sum
    over channels of the single-channel correlations, plus its bias."""
    rng = np.random.default_rng(4)
    x, w, b = (rng.standard_normal((1, 3, 6, 6)), rng.standard_normal((2, 3, 3, 3)),
               rng.standard_normal(2))
    y, _ = R.conv2d_forward(x, w, b)
    assert y.shape == (1, 2, 4, 4)
    for o in range(2):
        per_channel = sum(R.conv2d_forward(x[:, c:c + 1], w[o:o + 1, c:c + 1])[0]
                          for c in range(3))
        np.testing.assert_allclose(y[:, o:o + 1], per_channel + b[o], rtol=1e-13)


# --------------------------------------------------- convolution backward: MATH.md §9


@pytest.mark.parametrize("hw, kernel, stride, counts", [
    (5, 3, 2, [1, 1, 2, 1, 1]),        # windows at 0 and 2 overlap on pixel 2
    (6, 2, 3, [1, 1, 0, 1, 1, 0]),     # pixels 2 and 5: no window reaches them
    (7, 1, 3, [1, 0, 0, 1, 0, 0, 1]),
])
def test_stride_scatters_the_gradient_with_gaps(hw, kernel, stride, counts):
    _, cache = R.conv2d_forward(np.zeros((1, 1, hw, hw)), np.ones((1, 1, kernel, kernel)),
                                stride=stride)
    out = (hw - kernel) // stride + 1
    dx, _, _ = R.conv2d_backward(np.ones((1, 1, out, out)), cache)
    np.testing.assert_array_equal(dx[0, 0], np.outer(counts, counts))


def test_padding_is_cropped_from_the_input_gradient():
    """A 3x3 kernel with padding 1 on 4x4: border pixels are reached by 2 windows per axis."""
    _, cache = R.conv2d_forward(np.zeros((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), padding=1)
    dx, _, _ = R.conv2d_backward(np.ones((1, 1, 4, 4)), cache)
    assert dx.shape == (1, 1, 4, 4)
    np.testing.assert_array_equal(dx[0, 0], np.outer([2, 3, 3, 2], [2, 3, 3, 2]))


def test_dilated_kernel_gradient_counts():
    _, cache = R.conv2d_forward(np.zeros((1, 1, 5, 5)), np.ones((1, 1, 2, 2)), dilation=2)
    dx, _, _ = R.conv2d_backward(np.ones((1, 1, 3, 3)), cache)
    np.testing.assert_array_equal(dx[0, 0], np.outer([1, 1, 2, 1, 1], [1, 1, 2, 1, 1]))


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, dilation", [
    ((2, 2, 5, 4), (3, 2, 3, 2), 1, 0, 1),
    ((1, 2, 6, 7), (2, 2, 2, 3), (2, 3), ((1, 0), (2, 1)), 1),
    ((1, 1, 7, 6), (2, 1, 3, 2), 2, "same", (1, 2)),
    ((1, 3, 5, 5), (1, 3, 4, 4), 1, "same", 1),
])
def test_conv2d_gradients_match_finite_differences(x_shape, w_shape, stride, padding, dilation):
    rng = np.random.default_rng(5)
    x, w, b = (rng.standard_normal(x_shape), rng.standard_normal(w_shape),
               rng.standard_normal(w_shape[0]))
    y, cache = R.conv2d_forward(x, w, b, stride, padding, dilation)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = R.conv2d_backward(dy, cache)

    def loss():
        return np.sum(R.conv2d_forward(x, w, b, stride, padding, dilation)[0] * dy)

    assert_gradient(loss, x, dx)
    assert_gradient(loss, w, dw)
    assert_gradient(loss, b, db)


def test_conv2d_without_bias_has_no_bias_gradient_and_can_skip_dx():
    _, cache = R.conv2d_forward(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)))
    dx, dw, db = R.conv2d_backward(np.ones((1, 1, 2, 2)), cache, input_grad=False)
    assert dx is None and db is None
    np.testing.assert_array_equal(dw, np.full((1, 1, 2, 2), 4.0))


# ----------------------------------------------------------- pooling: MATH.md §10-11


def test_max_pool_keeps_each_window_maximum_and_routes_the_gradient_through_the_mask():
    """Figures 12 and 13: 2x2 windows, stride 2; dZ goes only where the maximum was."""
    x = image([[1, 3, 2, 1],
               [4, 6, 5, 0],
               [7, 2, 9, 8],
               [1, 3, 4, 6]])
    y, cache = R.max_pool2d_forward(x, 2)
    np.testing.assert_array_equal(y, image([[6, 5], [7, 9]]))
    dx = R.max_pool2d_backward(image([[1, 2], [3, 4]]), cache)
    np.testing.assert_array_equal(dx, image([[0, 0, 0, 0],
                                             [0, 1, 2, 0],
                                             [3, 0, 4, 0],
                                             [0, 0, 0, 0]]))


def test_first_max_mask_picks_the_first_maximum_in_row_major_order():
    np.testing.assert_array_equal(R.first_max_mask(np.array([[1.0, 7.0], [7.0, 2.0]])),
                                  [[False, True], [False, False]])
    np.testing.assert_array_equal(R.first_max_mask(np.full((2, 3), 4.0)),
                                  [[True, False, False], [False, False, False]])
    np.testing.assert_array_equal(R.first_max_mask(np.array([[0.0, 1.0], [5.0, 5.0]])),
                                  [[False, False], [True, False]])
    np.testing.assert_array_equal(  # padding (in_input False) never competes
        R.first_max_mask(np.full((2, 2), -np.inf),
                         np.array([[False, True], [True, True]])),
        [[False, True], [False, False]])
    np.testing.assert_array_equal(  # a NaN beats every number; of several, the last
        R.first_max_mask(np.array([[np.nan, 9.0], [np.nan, 1.0]])),
        [[False, False], [True, False]])


def test_max_pool_ties_send_the_gradient_to_one_cell_only():
    """§11: exactly one element per window receives dZ, the first maximum (as PyTorch)."""
    x = image([[5, 5, 0, 2],
               [5, 5, 2, 2]])
    y, cache = R.max_pool2d_forward(x, 2)
    np.testing.assert_array_equal(y, image([[5, 2]]))
    dx = R.max_pool2d_backward(image([[10, 20]]), cache)
    np.testing.assert_array_equal(dx, image([[10, 0, 0, 20],
                                             [0, 0, 0, 0]]))


def test_overlapping_max_pool_windows_accumulate():
    """§11, s < f: the centre is the maximum of all four 2x2 windows of a 3x3 input."""
    x = image([[1, 2, 3], [4, 9, 5], [6, 7, 8]])
    y, cache = R.max_pool2d_forward(x, 2, stride=1)
    np.testing.assert_array_equal(y, image([[9, 9], [9, 9]]))
    dx = R.max_pool2d_backward(image([[1, 2], [3, 4]]), cache)
    np.testing.assert_array_equal(dx, image([[0, 0, 0], [0, 10, 0], [0, 0, 0]]))


def test_max_pool_padding_never_wins():
    x = image([[-3, -1], [-2, -4]])
    y, cache = R.max_pool2d_forward(x, 2, stride=1, padding=1)
    np.testing.assert_array_equal(y, image([[-3, -1, -1], [-2, -1, -1], [-2, -2, -4]]))
    dx = R.max_pool2d_backward(np.ones((1, 1, 3, 3)), cache)
    np.testing.assert_array_equal(dx, image([[1, 4], [3, 1]]))


def test_max_pool_nan_wins_and_minus_inf_input_beats_padding():
    """PyTorch's rule for non-finite input: only input pixels compete (so an input of
    -inf still takes the gradient, never the padding), and a NaN beats every number."""
    x = image([[-np.inf, -np.inf], [-np.inf, -np.inf]])
    y, cache = R.max_pool2d_forward(x, 2, stride=1, padding=1)
    assert np.all(y == -np.inf)
    dx = R.max_pool2d_backward(np.ones((1, 1, 3, 3)), cache)
    np.testing.assert_array_equal(dx, image([[4, 2], [2, 1]]))   # first input pixel of each

    x = image([[1, np.nan], [3, 2]])
    y, cache = R.max_pool2d_forward(x, 2, stride=1, padding=1)
    np.testing.assert_array_equal(y, image([[1, np.nan, np.nan],
                                            [3, np.nan, np.nan],
                                            [3, 3, 2]]))
    dx = R.max_pool2d_backward(np.ones((1, 1, 3, 3)), cache)
    np.testing.assert_array_equal(dx, image([[1, 4], [3, 1]]))


def test_average_pool_means_and_spreads_dz_over_f_squared():
    """§10-11: each output is the window mean; backward gives each cell dZ / f² = dZ / 4."""
    x = image([[1, 3, 2, 2],
               [5, 7, 0, 4],
               [1, 1, 8, 8],
               [1, 1, 8, 8]])
    y, cache = R.avg_pool2d_forward(x, 2)
    np.testing.assert_array_equal(y, image([[4, 2], [1, 8]]))
    dx = R.avg_pool2d_backward(image([[4, 8], [-4, 0]]), cache)
    np.testing.assert_array_equal(dx, image([[1, 1, 2, 2],
                                             [1, 1, 2, 2],
                                             [-1, -1, 0, 0],
                                             [-1, -1, 0, 0]]))


def test_average_pool_border_divisors():
    """x = [[1,2,3],[4,5,6],[7,8,9]], 2x2 windows, stride 2, padding 1: the windows hold
    {1}, {2,3}, {4,7}, {5,6,8,9} plus padding; the divisor is 4 with count_include_pad,
    else the number of real pixels."""
    x = image([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    y_in, _ = R.avg_pool2d_forward(x, 2, 2, 1, count_include_pad=True)
    np.testing.assert_array_equal(y_in, image([[1 / 4, 5 / 4], [11 / 4, 28 / 4]]))
    y_ex, cache = R.avg_pool2d_forward(x, 2, 2, 1, count_include_pad=False)
    np.testing.assert_array_equal(y_ex, image([[1, 5 / 2], [11 / 2, 7]]))
    dx = R.avg_pool2d_backward(np.ones((1, 1, 2, 2)), cache)
    np.testing.assert_array_equal(dx, image([[1, 1 / 2, 1 / 2],
                                             [1 / 2, 1 / 4, 1 / 4],
                                             [1 / 2, 1 / 4, 1 / 4]]))


@pytest.mark.parametrize("count_include_pad", [True, False])
def test_average_pool_ceil_mode_never_counts_its_extra_padding(count_include_pad):
    """3x3 input, 2x2 windows, stride 2, ceil_mode: a 2x2 output whose last row and column
    of windows hang over the edge; they divide by the pixels they hold (PyTorch)."""
    x = image([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    y, cache = R.avg_pool2d_forward(x, 2, 2, 0, ceil_mode=True,
                                    count_include_pad=count_include_pad)
    np.testing.assert_array_equal(y, image([[12 / 4, 9 / 2], [15 / 2, 9]]))
    dx = R.avg_pool2d_backward(np.ones((1, 1, 2, 2)), cache)
    np.testing.assert_array_equal(dx, image([[1 / 4, 1 / 4, 1 / 2],
                                             [1 / 4, 1 / 4, 1 / 2],
                                             [1 / 2, 1 / 2, 1]]))


def test_max_pool_ceil_mode_output_size():
    y, _ = R.max_pool2d_forward(image(np.arange(25).reshape(5, 5)), 2, ceil_mode=True)
    np.testing.assert_array_equal(y, image([[6, 8, 9], [16, 18, 19], [21, 23, 24]]))


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("kernel_size, stride, padding, ceil_mode", [
    (2, None, 0, False), (3, 1, 1, False), ((2, 3), (2, 1), (1, 1), True), (3, 2, 0, True),
])
def test_pooling_gradients_match_finite_differences(kind, kernel_size, stride, padding,
                                                    ceil_mode):
    rng = np.random.default_rng(6)
    x = rng.permutation(np.linspace(-1, 1, 2 * 2 * 5 * 6)).reshape(2, 2, 5, 6)
    forward = R.max_pool2d_forward if kind == "max" else R.avg_pool2d_forward
    backward = R.max_pool2d_backward if kind == "max" else R.avg_pool2d_backward
    y, cache = forward(x, kernel_size, stride, padding, ceil_mode)
    dy = rng.standard_normal(y.shape)
    assert_gradient(lambda: np.sum(forward(x, kernel_size, stride, padding, ceil_mode)[0] * dy),
                    x, backward(dy, cache))


# ------------------------------------------- step by step: what explain/ draws


STEP_CASES = [   # x shape, w shape, stride, padding, dilation, bias
    ((2, 3, 6, 5), (2, 3, 3, 2), 1, 0, 1, True),
    ((1, 2, 7, 6), (3, 2, 3, 3), 2, 1, 1, False),                 # stride 2, padding
    ((1, 2, 7, 8), (2, 2, 2, 3), (2, 1), ((1, 0), (2, 1)), (2, 1), True),   # dilation
    ((1, 1, 6, 6), (1, 1, 3, 3), 1, "same", 2, True),
    ((2, 1, 6, 6), (2, 1, 2, 2), 3, 0, 1, True),                  # a row no window reaches
]


def conv_case(x_shape, w_shape, bias, seed=7):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(x_shape), rng.standard_normal(w_shape),
            rng.standard_normal(w_shape[0]) if bias else None, rng)


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, dilation, bias", STEP_CASES)
def test_conv2d_forward_steps_are_the_plain_forward_window_by_window(
        x_shape, w_shape, stride, padding, dilation, bias):
    x, w, b, _ = conv_case(x_shape, w_shape, bias)
    steps = R.conv2d_forward_steps(x, w, b, stride, padding, dilation)
    z, cache = R.conv2d_forward(x, w, b, stride, padding, dilation)
    np.testing.assert_array_equal(steps.z, z)                      # bit for bit
    np.testing.assert_array_equal(steps.cache.a_pad, cache.a_pad)
    assert steps.cache.geometry == cache.geometry and steps.cache.has_bias == bias
    z_fast, _ = F.conv2d_forward(x, w, b, stride, padding, dilation)
    np.testing.assert_allclose(steps.z, z_fast, rtol=1e-10, atol=1e-10)
    geo = steps.geometry
    (s_h, s_w), (d_h, d_w) = geo.stride, geo.dilation
    h_out, w_out = geo.out_shape[2:]
    np.testing.assert_array_equal(steps.rows, [[m * s_h + i * d_h for i in range(w_shape[2])]
                                               for m in range(h_out)])
    np.testing.assert_array_equal(steps.cols, [[k * s_w + j * d_w for j in range(w_shape[3])]
                                               for k in range(w_out)])
    for m in range(h_out):
        for k in range(w_out):
            np.testing.assert_array_equal(
                steps.windows[:, m, k], steps.a_pad[:, :, steps.rows[m][:, None],
                                                    steps.cols[k][None, :]])
    np.testing.assert_array_equal(steps.products,
                                  steps.windows[:, None] * w[None, :, None, None])
    np.testing.assert_allclose(steps.channel_sums, steps.products.sum(axis=(-2, -1)),
                               rtol=1e-10, atol=1e-10)
    bias_or_zero = np.zeros(w_shape[0]) if b is None else b
    np.testing.assert_allclose(steps.channel_sums.sum(axis=-1)
                               + bias_or_zero[None, :, None, None], z, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, dilation, bias", STEP_CASES)
def test_conv2d_backward_steps_are_the_plain_backward_term_by_term(
        x_shape, w_shape, stride, padding, dilation, bias):
    x, w, b, rng = conv_case(x_shape, w_shape, bias)
    forward = R.conv2d_forward_steps(x, w, b, stride, padding, dilation)
    dy = rng.standard_normal(forward.z.shape)
    steps = R.conv2d_backward_steps(dy, forward.cache)
    dx, dw, db = R.conv2d_backward(dy, forward.cache)
    np.testing.assert_array_equal(steps.dx, dx)                    # bit for bit
    np.testing.assert_array_equal(steps.dw, dw)
    assert (steps.db is None) == (db is None) == (not bias)
    if bias:
        np.testing.assert_array_equal(steps.db, db)
        np.testing.assert_allclose(steps.db, dy.sum(axis=(0, 2, 3)), rtol=1e-10)
    _, fast_cache = F.conv2d_forward(x, w, b, stride, padding, dilation)
    for ours, theirs in zip((steps.dx, steps.dw, steps.db),
                            F.conv2d_backward(dy, fast_cache), strict=True):
        if ours is not None:
            np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)
    # dW: the input slice under each window, weighted by dZ there, summed over the windows
    np.testing.assert_array_equal(
        steps.dw_terms, forward.windows[:, None] * dy[:, :, :, :, None, None, None])
    np.testing.assert_allclose(steps.dw, steps.dw_terms.sum(axis=(0, 2, 3)),
                               rtol=1e-10, atol=1e-10)
    # dA: the full convolution of the gapped dZ with the rotated, dilated kernel
    g = steps.input_gradient
    (s_h, s_w), (d_h, d_w) = forward.geometry.stride, forward.geometry.dilation
    gaps = np.ones(g.dz_gapped.shape, bool)
    gaps[:, :, ::s_h, ::s_w] = False
    np.testing.assert_array_equal(g.dz_gapped[:, :, ::s_h, ::s_w], dy)
    assert not g.dz_gapped[gaps].any()
    np.testing.assert_array_equal(g.w_rot, w[:, :, ::-1, ::-1])
    holes = np.ones(g.w_rot_dilated.shape, bool)
    holes[:, :, ::d_h, ::d_w] = False
    np.testing.assert_array_equal(g.w_rot_dilated[:, :, ::d_h, ::d_w], g.w_rot)
    assert not g.w_rot_dilated[holes].any()
    e_h, e_w = g.w_rot_dilated.shape[2:]
    np.testing.assert_array_equal(
        g.dz_full, np.pad(g.dz_gapped, ((0, 0), (0, 0), (e_h - 1,) * 2, (e_w - 1,) * 2)))
    reach_h, reach_w = g.products.shape[2:4]
    for r in range(reach_h):
        for q in range(reach_w):
            np.testing.assert_array_equal(
                g.products[:, :, r, q],
                g.dz_full[:, None, :, r:r + e_h, q:q + e_w] * np.moveaxis(g.w_rot_dilated, 1, 0))
    np.testing.assert_allclose(g.da_pad[:, :, :reach_h, :reach_w],
                               g.products.sum(axis=(-3, -2, -1)), rtol=1e-10, atol=1e-10)
    assert not g.da_pad[:, :, reach_h:].any() and not g.da_pad[:, :, :, reach_w:].any()
    (p_t, _), (p_l, _) = forward.geometry.padding
    np.testing.assert_array_equal(g.dx, g.da_pad[:, :, p_t:p_t + x_shape[2],
                                                 p_l:p_l + x_shape[3]])
    np.testing.assert_array_equal(
        R.conv2d_input_gradient_steps(dy, w, forward.geometry).dx,
        R.conv2d_input_gradient(dy, w, forward.geometry))


def test_conv2d_steps_of_the_hand_worked_example():
    """The example of test_hand_worked_3x3_input_and_2x2_kernel, one step at a time:
    Z[0, 0] = sum([[1*1, 2*2], [3*4, 4*5]]) + 1 = 38; dA[0, 0] is the rotated kernel
    [[4, 3], [2, 1]] on the top-left 2x2 of dZ padded by 1, [[0, 0], [0, 1]]: 1."""
    forward = R.conv2d_forward_steps(image([[1, 2, 3], [4, 5, 6], [7, 8, 9]]),
                                     image([[1, 2], [3, 4]]), np.array([1.0]))
    np.testing.assert_array_equal(forward.products[0, 0, 0, 0, 0], [[1, 4], [12, 20]])
    assert forward.channel_sums[0, 0, 0, 0, 0] == 37 and forward.z[0, 0, 0, 0] == 38
    back = R.conv2d_backward_steps(image([[1, -1], [2, 0]]), forward.cache)
    g = back.input_gradient
    np.testing.assert_array_equal(g.w_rot[0, 0], [[4, 3], [2, 1]])
    np.testing.assert_array_equal(g.dz_full[0, 0], [[0, 0, 0, 0], [0, 1, -1, 0],
                                                    [0, 2, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(g.products[0, 0, 0, 0, 0], [[0, 0], [0, 1]])
    np.testing.assert_array_equal(back.dx, image([[1, 1, -2], [5, 5, -4], [6, 8, 0]]))
    np.testing.assert_array_equal(back.dw_terms[0, 0, 1, 0, 0], 2 * np.array([[4, 5], [7, 8]]))


def test_a_stride_of_2_scatters_dz_with_one_zero_between_entries():
    _, cache = R.conv2d_forward(np.zeros((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), stride=2)
    g = R.conv2d_backward_steps(image([[1, 2], [3, 4]]), cache).input_gradient
    np.testing.assert_array_equal(g.dz_gapped[0, 0], [[1, 0, 2], [0, 0, 0], [3, 0, 4]])
    assert g.dz_full.shape == (1, 1, 3 + 2 * 2, 3 + 2 * 2)


POOL_CASES = [(2, None, 0, False), (3, 1, 1, False), ((2, 3), (2, 1), (1, 1), True),
              (3, 2, 0, True)]


@pytest.mark.parametrize("kernel_size, stride, padding, ceil_mode", POOL_CASES)
def test_max_pool2d_steps_are_the_plain_pooling_window_by_window(kernel_size, stride, padding,
                                                                 ceil_mode):
    rng = np.random.default_rng(8)
    x = rng.integers(0, 5, size=(2, 2, 5, 6)).astype(np.float64)   # many ties
    steps = R.max_pool2d_forward_steps(x, kernel_size, stride, padding, ceil_mode)
    z, cache = R.max_pool2d_forward(x, kernel_size, stride, padding, ceil_mode)
    np.testing.assert_array_equal(steps.z, z)
    np.testing.assert_array_equal(steps.cache.a_pad, cache.a_pad)
    z_fast, fast_cache = F.max_pool2d_forward(x, kernel_size, stride, padding, ceil_mode)
    np.testing.assert_allclose(steps.z, z_fast, rtol=1e-10, atol=1e-10)
    assert (steps.masks.sum(axis=(-2, -1)) == 1).all()             # one cell per window
    np.testing.assert_array_equal(steps.windows[steps.masks], z.ravel())
    n, c, m, k = np.indices(z.shape)
    rows, cols = steps.argmax[..., 0], steps.argmax[..., 1]
    assert (0 <= rows).all() and (rows < 5).all() and (0 <= cols).all() and (cols < 6).all()
    np.testing.assert_array_equal(x[n, c, rows, cols], z)         # the max is an input pixel
    geo = steps.geometry
    top, left = m * geo.stride[0] - geo.padding[0][0], k * geo.stride[1] - geo.padding[1][0]
    assert ((top <= rows) & (rows < top + geo.kernel[0])).all()    # ... of its own window
    assert ((left <= cols) & (cols < left + geo.kernel[1])).all()
    dy = rng.standard_normal(z.shape)
    back = R.max_pool2d_backward_steps(dy, steps.cache)
    np.testing.assert_array_equal(back.dx, R.max_pool2d_backward(dy, cache))
    np.testing.assert_allclose(back.dx, F.max_pool2d_backward(dy, fast_cache),
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(back.masks, steps.masks)
    np.testing.assert_array_equal(back.routed, dy[..., None, None] * steps.masks)
    routed_to_argmax = np.zeros_like(x)                            # dZ goes to the argmax
    np.add.at(routed_to_argmax, (n, c, rows, cols), dy)
    np.testing.assert_allclose(back.dx, routed_to_argmax, rtol=1e-10, atol=1e-10)


def test_max_pool2d_steps_mark_the_first_maximum_of_tied_windows():
    steps = R.max_pool2d_forward_steps(image([[5, 5, 0, 2], [5, 5, 2, 2]]), 2)
    np.testing.assert_array_equal(steps.argmax[0, 0], [[[0, 0], [0, 3]]])
    np.testing.assert_array_equal(steps.masks[0, 0, 0, 1], [[False, True], [False, False]])
    back = R.max_pool2d_backward_steps(image([[10, 20]]), steps.cache)
    np.testing.assert_array_equal(back.routed[0, 0, 0, 1], [[0, 20], [0, 0]])


def test_step_functions_raise_what_the_plain_ones_raise():
    x, w = np.zeros((1, 1, 4, 4)), np.ones((1, 1, 3, 3))
    with pytest.raises(ShapeError, match="bias must have shape"):
        R.conv2d_forward_steps(x, w, np.zeros(2))
    with pytest.raises(ShapeError, match="expects input of shape"):
        R.conv2d_forward_steps(x[0], w)
    with pytest.raises(ShapeError, match="conv2d_backward: dy has shape"):
        R.conv2d_backward_steps(np.zeros((1, 1, 3, 3)), R.conv2d_forward_steps(x, w).cache)
    with pytest.raises(ShapeError, match="max_pool2d_backward: dy has shape"):
        R.max_pool2d_backward_steps(np.zeros((1, 1, 3, 3)),
                                    R.max_pool2d_forward_steps(x, 2).cache)


# ------------------------------------------------------- activations, loss, linear


def test_activations_by_hand():
    z = np.array([-2.0, 0.0, 3.0])
    a, cache = R.relu_forward(z)
    np.testing.assert_array_equal(a, [0, 0, 3])
    np.testing.assert_array_equal(R.relu_backward(np.array([5.0, 5.0, 5.0]), cache), [0, 0, 5])
    a, cache = R.leaky_relu_forward(z, 0.1)
    np.testing.assert_allclose(a, [-0.2, 0, 3])
    np.testing.assert_allclose(R.leaky_relu_backward(np.ones(3), cache), [0.1, 0.1, 1])
    a, cache = R.sigmoid_forward(np.array([0.0, np.log(3.0), -800.0, 800.0]))
    np.testing.assert_allclose(a, [0.5, 0.75, 0.0, 1.0])
    np.testing.assert_allclose(R.sigmoid_backward(np.ones(4), cache), [0.25, 0.1875, 0, 0])
    a, cache = R.tanh_forward(np.array([0.0, np.log(2.0)]))
    np.testing.assert_allclose(a, [0.0, 0.6])                        # (4 - 1) / (4 + 1)
    np.testing.assert_allclose(R.tanh_backward(np.ones(2), cache), [1.0, 0.64])


def test_softmax_by_hand_and_through_its_jacobian():
    a, cache = R.softmax_forward(np.array([[0.0, np.log(3.0)], [1000.0, 1000.0]]))
    np.testing.assert_allclose(a, [[0.25, 0.75], [0.5, 0.5]])
    # dz_i = a_i (da_i - sum_j da_j a_j): da = (1, 0) gives 0.25 * (1 - 0.25), 0.75 * (0 - 0.25)
    dz = R.softmax_backward(np.array([[1.0, 0.0], [0.0, 0.0]]), cache)
    np.testing.assert_allclose(dz, [[0.1875, -0.1875], [0.0, 0.0]])


def test_softmax_along_another_axis():
    z = np.random.default_rng(7).standard_normal((3, 4, 2))
    a, _ = R.softmax_forward(z, axis=1)
    np.testing.assert_allclose(a.sum(axis=1), 1.0)
    np.testing.assert_allclose(a[:, :, 0], R.softmax_forward(z[:, :, 0])[0])


def test_cross_entropy_by_hand():
    """Logits (0, log 3) give probabilities (1/4, 3/4): L = -log(3/4) for label 1 and
    -log(1/4) for label 0; the mean is the loss, (p - onehot)/N the gradient."""
    logits = np.array([[0.0, np.log(3.0)], [0.0, np.log(3.0)]])
    loss, cache = R.softmax_cross_entropy_forward(logits, np.array([1, 0]))
    np.testing.assert_allclose(loss, (-np.log(0.75) - np.log(0.25)) / 2)
    np.testing.assert_allclose(R.softmax_cross_entropy_backward(1.0, cache),
                               [[0.125, -0.125], [-0.375, 0.375]])


def test_cross_entropy_of_huge_logits_is_finite():
    loss, _ = R.softmax_cross_entropy_forward(np.array([[1000.0, 0.0]]), np.array([1]))
    np.testing.assert_allclose(loss, 1000.0)


def test_linear_by_hand():
    x = np.array([[1.0, 2.0]])
    w = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y, cache = R.linear_forward(x, w, np.array([0.0, 0.0, 1.0]))
    np.testing.assert_array_equal(y, [[1, 2, 4]])
    dx, dw, db = R.linear_backward(np.array([[1.0, -1.0, 2.0]]), cache)
    np.testing.assert_array_equal(dx, [[3, 1]])
    np.testing.assert_array_equal(dw, [[1, 2], [-1, -2], [2, 4]])
    np.testing.assert_array_equal(db, [1, -1, 2])


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "sigmoid", "tanh", "softmax"])
def test_activation_gradients_match_finite_differences(name):
    rng = np.random.default_rng(8)
    z = rng.standard_normal((3, 4))
    z[np.abs(z) < 0.01] = 0.5          # keep away from relu's kink
    da = rng.standard_normal(z.shape)
    forward, backward = getattr(R, f"{name}_forward"), getattr(R, f"{name}_backward")
    _, cache = forward(z)
    assert_gradient(lambda: np.sum(forward(z)[0] * da), z, backward(da, cache))


def test_loss_and_linear_gradients_match_finite_differences():
    rng = np.random.default_rng(9)
    logits, labels = rng.standard_normal((4, 5)) * 3, np.array([0, 4, 2, 2])
    _, cache = R.softmax_cross_entropy_forward(logits, labels)
    assert_gradient(lambda: R.softmax_cross_entropy_forward(logits, labels)[0], logits,
                    R.softmax_cross_entropy_backward(1.0, cache))
    x, w, b = rng.standard_normal((3, 4)), rng.standard_normal((2, 4)), rng.standard_normal(2)
    y, cache = R.linear_forward(x, w, b)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = R.linear_backward(dy, cache)

    def loss():
        return np.sum(R.linear_forward(x, w, b)[0] * dy)

    assert_gradient(loss, x, dx)
    assert_gradient(loss, w, dw)
    assert_gradient(loss, b, db)


def test_dropout_keeps_with_probability_one_minus_p_and_rescales():
    x = np.ones((200, 50))
    y, mask = R.dropout_forward(x, 0.25, np.random.default_rng(0))
    assert set(np.unique(y)) == {0.0, 4 / 3}
    assert abs((y == 0).mean() - 0.25) < 0.02
    np.testing.assert_array_equal(R.dropout_backward(np.ones_like(x), mask), mask)


# ------------------------------------------------------------------ against PyTorch


@pytest.mark.parametrize("seed", range(4))
def test_reference_agrees_with_pytorch(seed):
    """An independent check of the oracle, where PyTorch is installed."""
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, 7, 6))
    w, b = rng.standard_normal((2, 3, 3, 2)), rng.standard_normal(2)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    stride, padding, dilation = (2, 1), (1, 2), (1, 2)
    y, cache = R.conv2d_forward(x, w, b, stride, padding, dilation)
    yt = tf.conv2d(xt, wt, bt, stride, padding, dilation)
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    for ours, theirs in zip((y, *R.conv2d_backward(dy, cache)), (yt, xt.grad, wt.grad, bt.grad),
                            strict=True):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-10, atol=1e-12)

    xp = rng.permutation(np.linspace(-1, 1, x.size)).reshape(x.shape)
    ceil_mode, count_include_pad = bool(seed % 2), seed < 2
    for kind in ("max", "avg"):
        xt = torch.tensor(xp, requires_grad=True)
        if kind == "max":
            y, cache = R.max_pool2d_forward(xp, 3, 2, 1, ceil_mode)
            yt = tf.max_pool2d(xt, 3, 2, 1, ceil_mode=ceil_mode)
            backward = R.max_pool2d_backward
        else:
            y, cache = R.avg_pool2d_forward(xp, (3, 2), (2, 1), 1, ceil_mode, count_include_pad)
            yt = tf.avg_pool2d(xt, (3, 2), (2, 1), 1, ceil_mode=ceil_mode,
                               count_include_pad=count_include_pad)
            backward = R.avg_pool2d_backward
        dy = rng.standard_normal(y.shape)
        yt.backward(torch.tensor(dy))
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(backward(dy, cache), xt.grad.numpy(), rtol=1e-12, atol=1e-14)
