"""Forward and backward of every functional op against torch.nn.functional.

Each case runs clearconv and PyTorch on the same arrays (float32 and float64), checks
shape, dtype and values of the output, then feeds both the same random upstream gradient
(PyTorch through autograd) and compares every input gradient.

Tolerances: float32 rtol 1e-4, atol 1e-5; float64 rtol 1e-10, atol 1e-12. The atol is
taken relative to the RMS size of the reference array when that exceeds 1: a sum of K
terms (a weight gradient sums N*H_out*W_out products) carries a rounding error that
grows with the size of the terms, not with the size of the one entry that cancels to
near zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from clearconv import functional as F
from clearconv.shapes import same_padding

torch = pytest.importorskip("torch", reason="PyTorch not installed: conformance with "
                                            "torch.nn.functional not checked")
TF = torch.nn.functional
# torch warns that an even kernel with padding='same' costs it a padded copy: expected here
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")

DTYPES = [np.float32, np.float64]
TOL = {np.dtype(np.float32): {"rtol": 1e-4, "atol": 1e-5},
       np.dtype(np.float64): {"rtol": 1e-10, "atol": 1e-12}}


def assert_close(ours: Any, theirs: Any, dtype: Any, what: str) -> None:
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    ours = np.asarray(ours)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs torch {theirs.shape}"
    tol = TOL[np.dtype(dtype)]
    size = float(np.sqrt(np.mean(np.square(theirs, dtype=np.float64)))) if theirs.size else 0.0
    np.testing.assert_allclose(ours, theirs, rtol=tol["rtol"], atol=tol["atol"] * max(1.0, size),
                               err_msg=what)


def check_against_torch(ours_forward: Callable[..., tuple[Any, Any]],
                        ours_backward: Callable[[Any, Any], Any],
                        torch_forward: Callable[..., Any], inputs: Sequence[np.ndarray],
                        dtype: Any, seed: int = 0) -> tuple[np.ndarray, list[Any]]:
    """Run both libraries forward and backward on ``inputs`` (cast to ``dtype``).

    ``ours_backward`` returns a gradient or a tuple aligned with ``inputs`` (None entries
    are not compared). Returns our output and gradients.
    """
    arrays = [np.asarray(a, dtype=dtype) for a in inputs]
    out, cache = ours_forward(*arrays)
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    out_t = torch_forward(*tensors)
    if np.ndim(out):
        assert out.dtype == np.dtype(dtype), f"output dtype {out.dtype}, inputs {dtype}"
    assert_close(out, out_t, dtype, "forward")

    dout = np.random.default_rng(seed).standard_normal(np.shape(out)).astype(dtype)
    grads = ours_backward(float(dout) if dout.ndim == 0 else dout, cache)
    if isinstance(grads, np.ndarray):
        grads = (grads,)
    out_t.backward(torch.tensor(dout))
    for k, (g, t) in enumerate(zip(grads, tensors)):
        if g is not None:
            assert g.dtype == np.dtype(dtype), f"gradient {k} dtype {g.dtype}, inputs {dtype}"
            assert_close(g, t.grad, dtype, f"gradient of input {k}")
    return out, list(grads)


def normal(shape: Sequence[int], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


# ------------------------------------------------------------------------------- conv2d

CONV_CASES = [
    # x shape, (C_out, kh, kw), stride, padding, dilation, bias
    # the benchmark shapes, small batch
    ((2, 1, 28, 28), (32, 3, 3), 1, 1, 1, True),
    ((2, 32, 14, 14), (64, 3, 3), 1, 1, 1, True),
    ((2, 3, 32, 32), (64, 3, 3), 1, 1, 1, True),
    ((2, 64, 32, 32), (128, 3, 3), 2, 1, 1, True),
    ((2, 1, 28, 28), (6, 5, 5), 1, 0, 1, True),
    # strides, paddings, dilations, rectangles
    ((2, 3, 9, 9), (4, 3, 3), 1, 0, 1, False),
    ((2, 3, 9, 8), (4, 3, 3), 2, 0, 1, True),
    ((1, 4, 10, 11), (5, 3, 3), 3, 2, 1, True),
    ((2, 5, 8, 9), (3, 2, 2), 2, 0, 1, True),
    ((1, 2, 9, 10), (3, 3, 5), (2, 1), (1, 2), 1, True),
    ((1, 6, 11, 9), (4, 3, 3), 1, 2, 2, True),
    ((1, 3, 12, 12), (2, 3, 2), (1, 3), 0, (3, 2), False),
    ((2, 8, 7, 7), (16, 1, 1), 1, 0, 1, True),
    ((1, 2, 5, 5), (3, 5, 5), 1, 0, 1, True),
    ((1, 4, 5, 5), (2, 4, 4), 1, 3, 1, True),
    ((1, 7, 6, 6), (3, 3, 3), 2, 1, 1, False),
    # 'same' (stride 1): torch's own padding='same', incl. even kernels
    ((2, 3, 8, 8), (4, 3, 3), 1, "same", 1, True),
    ((2, 3, 7, 8), (4, 2, 2), 1, "same", 1, True),
    ((1, 5, 9, 7), (3, 4, 2), 1, "same", 1, False),
    ((1, 2, 10, 10), (2, 4, 4), 1, "same", 2, True),
    ((1, 6, 8, 9), (4, 3, 2), 1, "same", (2, 3), True),
    ((1, 3, 6, 6), (2, 3, 3), 1, "valid", 1, True),
    # asymmetric explicit padding ((top, bottom), (left, right))
    ((2, 3, 7, 8), (4, 3, 3), 1, ((0, 1), (2, 0)), 1, True),
    ((1, 5, 9, 9), (3, 2, 3), 2, ((1, 0), (0, 2)), 1, False),
    ((1, 2, 8, 8), (2, 3, 3), 1, ((2, 1), (1, 2)), 2, True),
]


def torch_padding(padding: Any) -> tuple[tuple[int, int, int, int], Any]:
    """``(F.pad amounts (left, right, top, bottom), padding for F.conv2d)``."""
    if (isinstance(padding, tuple) and isinstance(padding[0], tuple)):
        (t, b), (left, r) = padding
        return (left, r, t, b), 0
    return (0, 0, 0, 0), padding


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, kernel, stride, padding, dilation, bias", CONV_CASES)
def test_conv2d_matches_torch(x_shape, kernel, stride, padding, dilation, bias, dtype):
    c_out, kh, kw = kernel
    seed = sum(x_shape) + c_out
    fan_in = x_shape[1] * kh * kw   # He-like scale: outputs of order 1, as in a network
    inputs = [normal(x_shape, seed), normal((c_out, x_shape[1], kh, kw), seed + 1) / fan_in**0.5]
    if bias:
        inputs.append(normal((c_out,), seed + 2))
    pads, tpad = torch_padding(padding)

    def ours(x, w, b=None):
        return F.conv2d_forward(x, w, b, stride=stride, padding=padding, dilation=dilation)

    def theirs(x, w, b=None):
        return TF.conv2d(TF.pad(x, pads), w, b, stride=stride, padding=tpad, dilation=dilation)

    check_against_torch(ours, F.conv2d_backward, theirs, inputs, dtype, seed)


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_weight_gradient_without_input_gradient_matches_torch(dtype):
    inputs = [normal((2, 3, 9, 9), 1), normal((4, 3, 3, 3), 2), normal((4,), 3)]
    _, grads = check_against_torch(
        lambda x, w, b: F.conv2d_forward(x, w, b, stride=2, padding=1),
        lambda dy, cache: F.conv2d_backward(dy, cache, input_grad=False),
        lambda x, w, b: TF.conv2d(x, w, b, stride=2, padding=1), inputs, dtype)
    assert grads[0] is None


@pytest.mark.parametrize("h, w, kh, kw, dilation", [(7, 8, 2, 2, 1), (6, 6, 4, 3, 1),
                                                    (9, 7, 2, 4, 2), (5, 5, 3, 3, 1)])
def test_torch_same_padding_puts_the_extra_at_the_bottom_right_as_clearconv_does(h, w, kh, kw,
                                                                                dilation):
    x = torch.tensor(normal((1, 2, h, w), 4))
    wt = torch.tensor(normal((3, 2, kh, kw), 5))
    same = TF.conv2d(x, wt, padding="same", dilation=dilation)
    tot_h, tot_w = dilation * (kh - 1), dilation * (kw - 1)
    explicit = TF.conv2d(TF.pad(x, (tot_w // 2, tot_w - tot_w // 2, tot_h // 2,
                                    tot_h - tot_h // 2)), wt, dilation=dilation)
    torch.testing.assert_close(same, explicit, rtol=1e-12, atol=1e-12)
    ours, _ = F.conv2d_forward(x.numpy(), wt.numpy(), padding="same", dilation=dilation)
    assert_close(ours, same, np.float64, "same padding")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("h, w, kh, kw, stride, dilation", [
    (7, 7, 3, 3, 2, 1), (8, 8, 3, 3, 2, 1), (8, 7, 2, 2, 2, 1), (9, 10, 4, 3, 2, 1),
    (10, 9, 5, 5, 3, 1), (11, 11, 3, 3, (2, 3), 1), (12, 9, 3, 2, 2, 2), (5, 5, 1, 1, 2, 1),
    (32, 32, 3, 3, 2, 1),
])
def test_tf_style_same_with_stride_equals_torch_after_explicit_pad(h, w, kh, kw, stride,
                                                                   dilation, dtype):
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    pt, pb = same_padding(h, kh, sh, dh)
    pl, pr = same_padding(w, kw, sw, dw)
    assert pb - pt in (0, 1) and pr - pl in (0, 1)   # the extra goes to the bottom/right
    inputs = [normal((2, 3, h, w), h), normal((4, 3, kh, kw), w), normal((4,), kh)]
    out, _ = check_against_torch(
        lambda x, wt, b: F.conv2d_forward(x, wt, b, stride=stride, padding="same",
                                          dilation=dilation),
        F.conv2d_backward,
        lambda x, wt, b: TF.conv2d(TF.pad(x, (pl, pr, pt, pb)), wt, b, stride=stride,
                                   dilation=dilation),
        inputs, dtype)
    assert out.shape[2:] == (math.ceil(h / sh), math.ceil(w / sw))


# ------------------------------------------------------------------------------ pooling

POOL_CASES = [
    # x shape, kernel, stride, padding, ceil_mode
    ((2, 32, 28, 28), 2, None, 0, False),
    ((2, 64, 16, 16), 2, 2, 0, False),
    ((2, 3, 9, 9), 3, 2, 0, False),           # overlapping
    ((2, 3, 8, 8), 3, 1, 1, False),           # overlapping, padding
    ((1, 4, 7, 9), 3, 2, 1, False),
    ((1, 2, 5, 5), 2, 2, 0, True),            # ceil_mode
    ((1, 2, 7, 7), 3, 2, 0, True),
    ((1, 3, 8, 7), 3, 2, 1, True),
    ((1, 3, 10, 10), 3, 3, 1, True),          # ceil_mode drops a window starting in the pad
    ((1, 2, 6, 9), (2, 3), (1, 2), (1, 0), False),
    ((1, 2, 9, 8), (3, 2), (2, 3), (1, 1), True),
    ((2, 5, 4, 4), 4, None, 0, False),        # global
    ((1, 3, 7, 6), 1, 2, 0, True),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, kernel, stride, padding, ceil_mode", POOL_CASES)
def test_max_pool2d_matches_torch(x_shape, kernel, stride, padding, ceil_mode, dtype):
    check_against_torch(
        lambda x: F.max_pool2d_forward(x, kernel, stride, padding, ceil_mode),
        F.max_pool2d_backward,
        lambda x: TF.max_pool2d(x, kernel, stride, padding, ceil_mode=ceil_mode),
        [normal(x_shape, sum(x_shape))], dtype)


TIE_CASES = [
    ((2, 2, 6, 6), 2, None, 0, False),
    ((1, 2, 7, 7), 3, 2, 0, False),
    ((1, 2, 6, 6), 3, 1, 1, False),
    ((1, 2, 7, 8), 3, 2, 1, True),
    ((1, 1, 5, 5), 2, 2, 0, True),
    ((1, 2, 6, 9), (2, 3), (1, 2), (1, 0), False),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, kernel, stride, padding, ceil_mode", TIE_CASES)
@pytest.mark.parametrize("values", ["constant", "few_levels"])
def test_max_pool2d_ties_send_the_gradient_to_the_first_maximum_as_torch(
        x_shape, kernel, stride, padding, ceil_mode, values, dtype):
    if values == "constant":
        x = np.full(x_shape, -0.5)
    else:
        x = np.random.default_rng(sum(x_shape)).integers(0, 3, x_shape).astype(float)
    _, (dx,) = check_against_torch(
        lambda x: F.max_pool2d_forward(x, kernel, stride, padding, ceil_mode),
        F.max_pool2d_backward,
        lambda x: TF.max_pool2d(x, kernel, stride, padding, ceil_mode=ceil_mode),
        [x], dtype)
    if values == "constant" and stride is None and padding == 0 and not ceil_mode:
        # disjoint windows: exactly the top-left cell of each window gets a gradient
        k = kernel if isinstance(kernel, int) else kernel[0]
        hit = np.zeros(x_shape, bool)
        hit[:, :, ::k, ::k] = True
        assert np.all((dx != 0) == hit)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("x_shape, kernel, stride, padding, ceil_mode", POOL_CASES)
def test_avg_pool2d_matches_torch(x_shape, kernel, stride, padding, ceil_mode,
                                  count_include_pad, dtype):
    check_against_torch(
        lambda x: F.avg_pool2d_forward(x, kernel, stride, padding, ceil_mode,
                                       count_include_pad),
        F.avg_pool2d_backward,
        lambda x: TF.avg_pool2d(x, kernel, stride, padding, ceil_mode=ceil_mode,
                                count_include_pad=count_include_pad),
        [normal(x_shape, sum(x_shape) + 1)], dtype)


# ----------------------------------------------------------------- losses, activations

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, k, scale", [(1, 2, 1.0), (8, 10, 1.0), (16, 3, 4.0), (5, 7, 30.0)])
def test_cross_entropy_matches_torch(n, k, scale, dtype):
    labels = np.random.default_rng(n).integers(0, k, n)
    check_against_torch(
        lambda z: F.softmax_cross_entropy_forward(z, labels),
        F.softmax_cross_entropy_backward,
        lambda z: TF.cross_entropy(z, torch.tensor(labels)),
        [scale * normal((n, k), k)], dtype)


def with_zeros(shape: Sequence[int], seed: int) -> np.ndarray:
    """Normal values with some exact zeros: the kink of ReLU, where g'(0) = 0 as in torch."""
    x = normal(shape, seed)
    x.flat[::5] = 0.0
    return x


ACTIVATIONS = {
    "relu": (F.relu_forward, F.relu_backward, TF.relu),
    "leaky_relu_0.01": (F.leaky_relu_forward, F.leaky_relu_backward, TF.leaky_relu),
    "leaky_relu_0.2": (lambda z: F.leaky_relu_forward(z, 0.2), F.leaky_relu_backward,
                       lambda z: TF.leaky_relu(z, 0.2)),
    "sigmoid": (F.sigmoid_forward, F.sigmoid_backward, torch.sigmoid),
    "tanh": (F.tanh_forward, F.tanh_backward, torch.tanh),
    "softmax_last": (F.softmax_forward, F.softmax_backward, lambda z: TF.softmax(z, dim=-1)),
    "softmax_channels": (lambda z: F.softmax_forward(z, 1), F.softmax_backward,
                         lambda z: TF.softmax(z, dim=1)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 10), (2, 3, 5, 5)])
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_matches_torch(name, shape, dtype):
    ours_f, ours_b, theirs = ACTIVATIONS[name]
    scale = 10.0 if name == "sigmoid" else 2.0    # sigmoid: include saturated values
    check_against_torch(ours_f, ours_b, theirs, [scale * with_zeros(shape, len(shape))], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, fin, fout, bias", [(2, 3136, 128, True), (8, 128, 10, True),
                                                (1, 7, 5, False), (5, 20, 3, True)])
def test_linear_matches_torch(n, fin, fout, bias, dtype):
    inputs = [normal((n, fin), fin), normal((fout, fin), fout) / np.sqrt(fin)]
    if bias:
        inputs.append(normal((fout,), n))
    check_against_torch(lambda x, w, b=None: F.linear_forward(x, w, b), F.linear_backward,
                        lambda x, w, b=None: TF.linear(x, w, b), inputs, dtype)


# ----------------------------------------------------------------- same errors as torch

@pytest.mark.parametrize("x_shape, w_shape, kwargs", [
    ((1, 3, 8, 8), (4, 2, 3, 3), {}),                       # channel mismatch
    ((1, 3, 4, 4), (4, 3, 5, 5), {}),                       # kernel larger than input
    ((1, 3, 4, 4), (4, 3, 3, 3), {"stride": 0}),
    ((1, 3, 4, 4), (4, 3, 3, 3), {"padding": -1}),
    ((1, 3, 4, 4), (4, 3, 3, 3), {"padding": "full"}),
])
def test_conv2d_refuses_what_torch_refuses(x_shape, w_shape, kwargs):
    x, w = normal(x_shape, 0), normal(w_shape, 1)
    with pytest.raises((RuntimeError, ValueError)):
        TF.conv2d(torch.tensor(x), torch.tensor(w), **kwargs)
    with pytest.raises(ValueError):
        F.conv2d_forward(x, w, **kwargs)


@pytest.mark.parametrize("x_shape, kernel, stride, padding", [
    ((1, 2, 4, 4), 2, 2, 2),        # padding more than half the window
    ((1, 2, 3, 3), 5, 1, 0),        # window larger than the input
    ((1, 2, 4, 4), 2, 0, 0),        # stride 0
])
def test_pooling_refuses_what_torch_refuses(x_shape, kernel, stride, padding):
    x = normal(x_shape, 0)
    for theirs, ours in [(TF.max_pool2d, F.max_pool2d_forward),
                         (TF.avg_pool2d, F.avg_pool2d_forward)]:
        with pytest.raises((RuntimeError, ValueError)):
            theirs(torch.tensor(x), kernel, stride, padding)
        with pytest.raises(ValueError):
            ours(x, kernel, stride, padding)


NONFINITE_CASES = {
    "nan_in_window": (np.where(np.arange(16).reshape(1, 1, 4, 4) == 5, np.nan,
                               np.arange(16.0).reshape(1, 1, 4, 4)), 2, 2, 0, False),
    "all_neg_inf_with_padding": (np.full((1, 1, 3, 3), -np.inf), 2, 2, 1, False),
    "two_nans_and_neg_inf": (np.array([[[[np.nan, 1, np.nan, 2], [3, np.nan, 0, 0],
                                         [-np.inf, -np.inf, 5, 5],
                                         [-np.inf, -np.inf, 5, 5]]]]), 2, 2, 0, False),
    "neg_inf_ceil_mode_overlap": (np.full((1, 2, 5, 5), -np.inf), 3, 2, 1, True),
}


@pytest.mark.parametrize("case", sorted(NONFINITE_CASES))
def test_max_pool2d_nan_and_neg_inf_route_like_torch(case):
    x, k, s, p, ceil = NONFINITE_CASES[case]
    y, cache = F.max_pool2d_forward(x, k, s, p, ceil)
    dy = np.arange(1, y.size + 1, dtype=np.float64).reshape(y.shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.max_pool2d(xt, k, s, p, ceil_mode=ceil)
    yt.backward(torch.tensor(dy))
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(F.max_pool2d_backward(dy, cache), xt.grad.numpy())
