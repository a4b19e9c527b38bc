"""The Winograd convolution and the compiled (Numba) kernels, held to the loop reference,
to the NumPy paths they replace, to PyTorch and to finite differences.

Tests of the compiled kernels skip when Numba is not installed (``pip install
"clearconv[fast]"``); the NumPy twins of the Winograd transforms are tested either way.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from clearconv import reference as R
from clearconv.errors import ClearConvError
from clearconv.functional import _jit, conv, pool, winograd
from clearconv.functional.conv import conv2d_backward, conv2d_forward, conv2d_geometry
from clearconv.gradcheck import gradcheck

needs_numba = pytest.mark.skipif(not _jit.AVAILABLE,
                                 reason="Numba not installed (or CLEARCONV_JIT=0): the "
                                        "compiled kernels are not checked")
JIT_MODES = [False, pytest.param(True, marks=needs_numba)]

# (x shape, C_out, padding): 3x3 stride-1 geometries, odd and even outputs, all paddings
WINOGRAD_CASES = [
    ((2, 3, 5, 7), 4, 1),
    ((3, 8, 6, 6), 5, 0),
    ((2, 4, 9, 4), 3, ((0, 2), (1, 0))),
    ((1, 2, 3, 3), 2, 1),
    ((1, 2, 3, 3), 2, 0),          # a single output pixel
    ((2, 5, 4, 5), 6, "same"),
    ((1, 3, 8, 8), 2, "valid"),
    ((2, 6, 7, 10), 3, ((2, 1), (0, 3))),
    ((1, 1, 4, 4), 1, 2),
]


def _arrays(x_shape, c_out, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = (rng.standard_normal((c_out, x_shape[1], 3, 3)) / np.sqrt(9 * x_shape[1])).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    return x, w, b


def _winograd(x, w, b, padding, jit):
    geo = conv2d_geometry(x.shape, w.shape, 1, padding)
    return winograd.winograd_conv2d_forward(x, w, b, geo, jit=jit)


# ----------------------------------------------------------------------------- Winograd
@pytest.mark.parametrize("jit", JIT_MODES)
@pytest.mark.parametrize("x_shape, c_out, padding", WINOGRAD_CASES)
def test_winograd_matches_the_loop_reference(x_shape, c_out, padding, jit):
    x, w, b = _arrays(x_shape, c_out, seed=sum(x_shape) + c_out)
    y, cache = _winograd(x, w, b, padding, jit)
    y_ref, cache_ref = R.conv2d_forward(x, w, b, padding=padding)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    for ours, ref, name in zip(conv2d_backward(dy, cache), R.conv2d_backward(dy, cache_ref),
                               ("dx", "dweight", "dbias")):
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-11, err_msg=name)


@pytest.mark.parametrize("jit", JIT_MODES)
def test_winograd_gradients_pass_finite_differences(jit):
    x, w, b = _arrays((2, 3, 5, 6), 4, seed=3)
    result = gradcheck(lambda x, w, b: _winograd(x, w, b, 1, jit), conv2d_backward,
                       {"x": x, "weight": w, "bias": b})
    assert result.ok, str(result)


@needs_numba
@pytest.mark.parametrize("x_shape, c_out, padding", WINOGRAD_CASES)
def test_compiled_transforms_match_their_numpy_twins(x_shape, c_out, padding):
    for dtype in (np.float32, np.float64):
        x, w, b = _arrays(x_shape, c_out, seed=7, dtype=dtype)
        y_jit, c_jit = _winograd(x, w, b, padding, True)
        y_np, c_np = _winograd(x, w, b, padding, False)
        tol = 1e-5 if dtype == np.float32 else 1e-13
        np.testing.assert_allclose(y_jit, y_np, rtol=tol, atol=tol)
        np.testing.assert_allclose(c_jit.tiles, c_np.tiles, rtol=tol, atol=tol)
        dy = np.random.default_rng(2).standard_normal(y_jit.shape).astype(dtype)
        for a, b_, name in zip(conv2d_backward(dy, c_jit), conv2d_backward(dy, c_np),
                               ("dx", "dweight", "dbias")):
            assert a.dtype == dtype, name
            np.testing.assert_allclose(a, b_, rtol=tol, atol=tol * 10, err_msg=name)


def test_winograd_float32_matches_torch():
    torch = pytest.importorskip("torch", reason="PyTorch not installed: Winograd vs torch "
                                                "not checked")
    x, w, b = _arrays((4, 32, 14, 14), 64, seed=5, dtype=np.float32)
    y, cache = conv2d_forward(x, w, b, padding=1, algorithm="winograd")
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.conv2d(xt, wt, bt, padding=1)
    dy = np.random.default_rng(0).standard_normal(y.shape).astype(np.float32)
    yt.backward(torch.tensor(dy))
    pairs = [("y", y, yt)] + list(zip(("dx", "dweight", "dbias"), conv2d_backward(dy, cache),
                                      (xt.grad, wt.grad, bt.grad)))
    for name, ours, theirs in pairs:
        theirs = theirs.detach().numpy()
        assert ours.dtype == np.float32, name
        scale = max(1.0, float(np.sqrt(np.mean(theirs.astype(np.float64) ** 2))))
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5 * scale, err_msg=name)


# ----------------------------------------------------------------------------- direct
# (x shape, C_out, kernel, padding): kernel widths 1..7 take the kernel's three-offset
# passes and the single-offset remainder in every mix
DIRECT_CASES = [
    ((2, 1, 9, 8), 6, (5, 5), 2),
    ((3, 1, 7, 7), 4, (3, 3), 1),
    ((2, 3, 6, 9), 5, (2, 4), 0),
    ((2, 2, 8, 5), 3, (1, 1), 0),
    ((1, 3, 10, 11), 2, (3, 7), ((1, 2), (3, 0))),
    ((2, 1, 5, 5), 3, (5, 5), 0),          # a single output pixel
    ((2, 2, 6, 6), 4, (4, 4), "same"),     # asymmetric 'same' padding
    ((2, 6, 6, 7), 3, (3, 2), 1),          # more channels, forced by algorithm='direct'
]


def _direct_arrays(x_shape, c_out, kernel, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((c_out, x_shape[1], *kernel)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    return x, w, b


@needs_numba
@pytest.mark.parametrize("x_shape, c_out, kernel, padding", DIRECT_CASES)
def test_direct_conv_matches_the_loop_reference(x_shape, c_out, kernel, padding):
    x, w, b = _direct_arrays(x_shape, c_out, kernel, seed=sum(x_shape) + c_out)
    for bias in (b, None):
        y, cache = conv2d_forward(x, w, bias, padding=padding, algorithm="direct")
        assert isinstance(cache, conv.DirectCache)
        y_ref, cache_ref = R.conv2d_forward(x, w, bias, padding=padding)
        np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
        dy = np.random.default_rng(1).standard_normal(y.shape)
        grads = conv2d_backward(dy, cache)
        for ours, ref, name in zip(grads, R.conv2d_backward(dy, cache_ref),
                                   ("dx", "dweight", "dbias")):
            if ref is None:
                assert ours is None, name
            else:
                np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-11, err_msg=name)
        y_inf, none = conv2d_forward(x, w, bias, padding=padding, algorithm="direct",
                                     need_backward=False)
        assert none is None
        np.testing.assert_array_equal(y_inf, y)


@needs_numba
def test_direct_conv_gradients_pass_finite_differences():
    x, w, b = _direct_arrays((2, 2, 6, 5), 3, (3, 4), seed=4)
    result = gradcheck(lambda x, w, b: conv2d_forward(x, w, b, padding=(1, 2),
                                                      algorithm="direct"),
                       conv2d_backward, {"x": x, "weight": w, "bias": b})
    assert result.ok, str(result)


@needs_numba
def test_direct_conv_float32_matches_im2col_and_torch():
    """LeNet-5's first layer (1 -> 6, 5x5, padding 2), which 'auto' runs directly."""
    x, w, b = _direct_arrays((16, 1, 28, 28), 6, (5, 5), seed=9, dtype=np.float32)
    y, cache = conv2d_forward(x, w, b, padding=2)
    assert isinstance(cache, conv.DirectCache) and y.dtype == np.float32
    y2, cache2 = conv2d_forward(x, w, b, padding=2, algorithm="im2col")
    dy = np.random.default_rng(3).standard_normal(y.shape).astype(np.float32)
    np.testing.assert_allclose(y, y2, rtol=1e-5, atol=1e-5)
    for a, b_, name in zip(conv2d_backward(dy, cache), conv2d_backward(dy, cache2),
                           ("dx", "dweight", "dbias")):
        assert a.dtype == np.float32, name
        np.testing.assert_allclose(a, b_, rtol=1e-4, atol=1e-4, err_msg=name)
    torch = pytest.importorskip("torch", reason="PyTorch not installed: direct conv vs "
                                                "torch not checked")
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.conv2d(xt, wt, bt, padding=2)
    yt.backward(torch.tensor(dy))
    pairs = [("y", y, yt)] + list(zip(("dx", "dweight", "dbias"), conv2d_backward(dy, cache),
                                      (xt.grad, wt.grad, bt.grad)))
    for name, ours, theirs in pairs:
        theirs = theirs.detach().numpy()
        scale = float(np.abs(theirs).max())
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5 * scale, err_msg=name)


def test_auto_picks_winograd_only_where_it_pays():
    big = _arrays((1, 32, 6, 6), 32, seed=0, dtype=np.float32)
    _, cache = conv2d_forward(*big, padding=1)
    assert isinstance(cache, winograd.WinogradCache) == _jit.AVAILABLE
    # float64, few channels, stride 2, 5x5: im2col
    _, cache = conv2d_forward(*(a.astype(np.float64) for a in big), padding=1)
    assert isinstance(cache, conv.Conv2dCache)
    _, cache = conv2d_forward(*_arrays((1, 3, 6, 6), 32, 0, np.float32), padding=1)
    assert isinstance(cache, conv.Conv2dCache)
    # few input and output channels, stride 1: the direct loop (with Numba)
    small = _arrays((1, 3, 6, 6), 6, 0, np.float32)
    _, cache = conv2d_forward(*small, padding=1)
    assert isinstance(cache, conv.DirectCache) == _jit.AVAILABLE
    _, cache = conv2d_forward(*small, stride=2, padding=1)
    assert isinstance(cache, conv.Conv2dCache)
    _, cache = conv2d_forward(*big, stride=2, padding=1)
    assert isinstance(cache, conv.Conv2dCache)
    _, cache = conv2d_forward(*big, padding=1, algorithm="im2col")
    assert isinstance(cache, conv.Conv2dCache)


def test_algorithm_errors_name_the_problem():
    x, w, b = _arrays((1, 2, 6, 6), 2, seed=0)
    with pytest.raises(ClearConvError, match=r"winograd.*3x3.*stride 1.*got kernel \(3, 3\), "
                                             r"stride \(2, 2\)"):
        conv2d_forward(x, w, b, stride=2, algorithm="winograd")
    with pytest.raises(ClearConvError, match=r"direct.*stride 1.*got stride \(2, 2\)"):
        conv2d_forward(x, w, b, stride=2, algorithm="direct")
    with pytest.raises(ClearConvError, match="algorithm must be one of.*'fft'"):
        conv2d_forward(x, w, b, algorithm="fft")


def test_jit_can_be_switched_off_by_environment():
    code = ("from clearconv.functional import _jit, conv2d_forward; import numpy as np; "
            "x = np.ones((1, 32, 4, 4), np.float32); w = np.ones((32, 32, 3, 3), np.float32); "
            "print(_jit.AVAILABLE, type(conv2d_forward(x, w, padding=1)[1]).__name__)")
    env = {**os.environ, "CLEARCONV_JIT": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["False", "Conv2dCache"]


# ----------------------------------------------------------------------------- col2im
@needs_numba
@pytest.mark.parametrize("x_shape, c_out, kernel, stride, padding, dilation", [
    ((2, 6, 14, 14), 16, 5, 1, 0, 1),
    ((2, 8, 9, 10), 5, 3, 2, 1, 1),
    ((1, 5, 11, 9), 4, (3, 2), (2, 3), ((1, 0), (2, 1)), (2, 1)),
    ((2, 4, 7, 7), 3, 1, 1, 0, 1),
])
def test_compiled_col2im_matches_numpy_path(x_shape, c_out, kernel, stride, padding, dilation,
                                            monkeypatch):
    rng = np.random.default_rng(sum(x_shape))
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal((c_out, x_shape[1], kh, kw))
    y, cache = conv2d_forward(x, w, stride=stride, padding=padding, dilation=dilation,
                              algorithm="im2col")
    dy = rng.standard_normal(y.shape)
    dx = conv2d_backward(dy, cache)[0]
    with monkeypatch.context() as m:
        m.setattr(_jit, "AVAILABLE", False)
        dx_np = conv2d_backward(dy, cache)[0]
    _, cache_ref = R.conv2d_forward(x, w, stride=stride, padding=padding, dilation=dilation)
    np.testing.assert_allclose(dx, dx_np, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, R.conv2d_backward(dy, cache_ref)[0], rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- max pooling
POOL_CASES = [
    # x shape (N, C, H, W), kernel, stride, padding, ceil_mode (C >= 16: compiled path)
    ((2, 16, 8, 8), 2, 2, 0, False),
    ((2, 17, 7, 9), 3, 2, 1, False),
    ((1, 20, 7, 7), 2, 2, 0, True),
    ((1, 16, 9, 8), (3, 2), (1, 2), (1, 1), True),
    ((2, 18, 5, 5), 3, 1, 1, False),       # overlapping windows
    ((1, 16, 6, 7), (2, 3), (3, 1), 0, False),
    ((2, 6, 8, 8), 2, 2, 0, False),         # few channels, 2x2/2: its own kernel
    ((1, 3, 7, 9), 2, 2, 0, False),
]


def _channels_last(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


@needs_numba
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("values", ["normal", "ties", "nonfinite"])
@pytest.mark.parametrize("x_shape, kernel, stride, padding, ceil_mode", POOL_CASES)
def test_compiled_max_pool_matches_numpy_path(x_shape, kernel, stride, padding, ceil_mode,
                                              values, relu, monkeypatch):
    rng = np.random.default_rng(sum(x_shape))
    if values == "normal":
        x = rng.standard_normal(x_shape)
    else:
        x = rng.integers(-1, 2, x_shape).astype(np.float64)   # many ties
        if values == "nonfinite":
            x[rng.random(x_shape) < 0.2] = np.nan
            x[rng.random(x_shape) < 0.2] = -np.inf
    x = _channels_last(x.astype(np.float32))
    y, cache = pool.max_pool2d_forward(x, kernel, stride, padding, ceil_mode, relu)
    assert y.strides[1] == 4, "the compiled path keeps the channels-last layout"
    dy = _channels_last(rng.standard_normal(y.shape).astype(np.float32))
    dx = pool.max_pool2d_backward(dy, cache)
    with monkeypatch.context() as m:
        m.setattr(_jit, "AVAILABLE", False)
        y_np, cache_np = pool.max_pool2d_forward(x, kernel, stride, padding, ceil_mode, relu)
        dx_np = pool.max_pool2d_backward(dy, cache_np)
    np.testing.assert_array_equal(y, y_np)
    np.testing.assert_array_equal(cache.argmax, cache_np.argmax)
    np.testing.assert_allclose(dx, dx_np, rtol=1e-6, atol=1e-6)
    y_ref, cache_ref = R.max_pool2d_forward(x.astype(np.float64), kernel, stride, padding,
                                            ceil_mode)
    if values != "nonfinite" and not relu:   # the reference follows MATH.md, not torch's NaN rule
        np.testing.assert_array_equal(y, y_ref.astype(np.float32))
        np.testing.assert_allclose(dx, R.max_pool2d_backward(dy.astype(np.float64), cache_ref),
                                   rtol=1e-6, atol=1e-6)


@needs_numba
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("values", ["normal", "ties", "nonfinite"])
@pytest.mark.parametrize("x_shape", [(2, 6, 8, 8), (1, 3, 7, 9), (2, 1, 5, 6), (3, 16, 4, 4)])
def test_compiled_2x2_pool_on_nchw_planes_matches_numpy_path(x_shape, values, relu,
                                                             monkeypatch):
    """NCHW memory (what the direct conv returns), 2x2/2: the plane kernels run (spied),
    odd last rows/columns get no gradient, dy may come in either layout."""
    rng = np.random.default_rng(sum(x_shape) + 1)
    x = rng.standard_normal(x_shape) if values == "normal" else \
        rng.integers(-1, 2, x_shape).astype(np.float64)
    if values == "nonfinite":
        x[rng.random(x_shape) < 0.2] = np.nan
        x[rng.random(x_shape) < 0.2] = -np.inf
    x = x.astype(np.float32)
    calls = []
    for name in ("max_pool_2x2_planes", "max_pool_2x2_planes_backward"):
        kernel = getattr(_jit, name)
        monkeypatch.setattr(_jit, name, lambda *a, _k=kernel, _n=name: (calls.append(_n),
                                                                        _k(*a))[1])
    y, cache = pool.max_pool2d_forward(x, 2, 2, 0, False, relu)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    for dy_layout in (dy, _channels_last(dy)):
        dx = pool.max_pool2d_backward(dy_layout, cache)
        assert dx.flags.c_contiguous
        with monkeypatch.context() as m:
            m.setattr(_jit, "AVAILABLE", False)
            y_np, cache_np = pool.max_pool2d_forward(x, 2, 2, 0, False, relu)
            dx_np = pool.max_pool2d_backward(dy_layout, cache_np)
        np.testing.assert_array_equal(y, y_np)
        np.testing.assert_array_equal(cache.argmax, cache_np.argmax)
        np.testing.assert_array_equal(dx, dx_np)
    assert set(calls) == {"max_pool_2x2_planes", "max_pool_2x2_planes_backward"}


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("x_shape, kernel, stride, padding, ceil_mode", POOL_CASES)
def test_fused_relu_max_pool_equals_relu_then_max_pool(x_shape, kernel, stride, padding,
                                                       ceil_mode, layout):
    """max_pool2d(relu=True) against the two ops in the literal order (values and
    gradients, bit for bit), on whichever path the layout takes (NumPy for NCHW)."""
    from clearconv.functional import relu_backward, relu_forward

    rng = np.random.default_rng(sum(x_shape) + 1)
    x = rng.integers(-2, 2, x_shape).astype(np.float32)   # ties and all-negative windows
    x[rng.random(x_shape) < 0.1] = np.nan
    if layout == "channels_last":
        x = _channels_last(x)
    y, cache = pool.max_pool2d_forward(x, kernel, stride, padding, ceil_mode, relu=True)
    a, relu_cache = relu_forward(x)
    y_ref, pool_cache = pool.max_pool2d_forward(a, kernel, stride, padding, ceil_mode)
    np.testing.assert_array_equal(y, y_ref)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = pool.max_pool2d_backward(dy, cache)
    dx_ref = relu_backward(pool.max_pool2d_backward(dy, pool_cache), relu_cache)
    np.testing.assert_array_equal(dx, dx_ref)


# ----------------------------------------------------------------------------- inference
@pytest.mark.parametrize("algorithm, c_in", [("im2col", 1), ("im2col", 5), ("winograd", 8)])
def test_inference_forward_in_chunks_equals_training_forward(algorithm, c_in, monkeypatch):
    """need_backward=False works through the batch in cache-sized chunks (forced tiny
    here, so there are many) and keeps no cache; the output is the same up to rounding
    (the BLAS blocks a smaller product differently)."""
    monkeypatch.setattr(conv, "_CHUNK_BYTES", 1)
    monkeypatch.setattr(winograd, "_CHUNK_BYTES", 1)
    rng = np.random.default_rng(c_in)
    x = rng.standard_normal((7, c_in, 9, 8)).astype(np.float32)
    w = rng.standard_normal((8, c_in, 3, 3)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    y, cache = conv2d_forward(x, w, b, padding=1, algorithm=algorithm)
    y_inf, none = conv2d_forward(x, w, b, padding=1, algorithm=algorithm, need_backward=False)
    assert cache is not None and none is None
    np.testing.assert_allclose(y_inf, y, rtol=1e-5, atol=1e-5)


@needs_numba
@pytest.mark.parametrize("pads", [((0, 0), (0, 0)), ((1, 1), (1, 1)), ((2, 0), (0, 3))])
@pytest.mark.parametrize("shape", [(3, 5, 7, 6), (2, 1, 4, 4), (64, 16, 16, 16)])
def test_compiled_nchw_to_padded_nhwc_copy(shape, pads, monkeypatch):
    """padded_nhwc transposes NCHW memory with a compiled, threaded copy (forced here
    for small arrays too); the result equals NumPy's transposing copy exactly."""
    from clearconv.functional import _windows

    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    calls = []
    kernel = _jit.nchw_to_nhwc
    monkeypatch.setattr(_jit, "nchw_to_nhwc", lambda *a: (calls.append(1), kernel(*a)))
    monkeypatch.setattr(_windows, "_SPLIT_COPY", 1)
    out = _windows.padded_nhwc(x, pads)
    (pt, pb), (pl, pr) = pads
    expected = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr))).transpose(0, 2, 3, 1)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, expected)
    assert bool(calls) == (shape[1] > 1)


# ----------------------------------------------------------------------------- conv + pool
@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, c_out, kernel, padding", [
    ((4, 1, 28, 28), 6, (5, 5), 2),
    ((3, 2, 9, 7), 5, (3, 3), 1),       # odd conv output: the last row/column in no window
    ((2, 3, 6, 6), 4, (2, 2), 0),
])
def test_fused_conv_relu_pool_is_bit_identical_to_the_three_ops(x_shape, c_out, kernel,
                                                                 padding, dtype):
    from clearconv.functional import conv2d_relu_max_pool2d

    x, w, b = _direct_arrays(x_shape, c_out, kernel, seed=11, dtype=dtype)
    x -= 0.3                               # many windows with a negative maximum
    y, cache = conv2d_relu_max_pool2d(x, w, b, padding=padding)
    z, z_cache = conv2d_forward(x, w, b, padding=padding)
    y_ref, p_cache = pool.max_pool2d_forward(z, 2, 2, relu=True)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(cache.argmax, p_cache.argmax)
    dy = np.random.default_rng(2).standard_normal(y.shape).astype(dtype)
    for input_grad in (False, True):
        got = conv2d_backward(dy, cache, input_grad)
        ref = conv2d_backward(pool.max_pool2d_backward(dy, p_cache), z_cache, input_grad)
        for a, r, name in zip(got, ref, ("dx", "dweight", "dbias")):
            if r is None:
                assert a is None, name
            else:
                np.testing.assert_array_equal(a, r, err_msg=name)
    assert conv2d_relu_max_pool2d(x, w, b, padding=padding, need_backward=False)[1] is None


def test_fused_conv_relu_pool_declines_where_the_direct_loop_does_not_run():
    from clearconv.functional import conv2d_relu_max_pool2d

    x, w, b = _direct_arrays((2, 8, 6, 6), 4, (3, 3), seed=1)   # 8 input channels
    assert conv2d_relu_max_pool2d(x, w, b, padding=1) is None
    x, w, b = _direct_arrays((2, 1, 6, 6), 4, (3, 3), seed=1)
    assert conv2d_relu_max_pool2d(x, w, b, stride=2, padding=1) is None
    assert (conv2d_relu_max_pool2d(x, w, b, padding=1) is None) == (not _jit.AVAILABLE)
    with pytest.raises(Exception, match="channels"):
        conv2d_relu_max_pool2d(x[:, :0], w, b)
