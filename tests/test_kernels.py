"""Every registered algorithm is held to the loop reference (float64, 1e-10) and to
PyTorch (float32), forward and backward, on Hypothesis-drawn calls it applies to: the
property tests draw the algorithm, so Winograd, the direct loop, few-channel im2col and
each compiled pooling loop meet the same checks as the readable path of functional/.

Also: which algorithm 'auto' takes and why, the cache naming it, forced algorithms that
do not apply, the log switch, CLEARCONV_JIT=0, chunked inference, the fused conv + ReLU
+ pool op. Algorithms that need Numba skip with a reason where it is not installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import (
    FEW,
    PROPERTY,
    assert_conv_matches_torch,
    assert_same,
    channels_last,
    conv_cases,
    pool_cases,
    transposed_cases,
)
from test_functional import check_conv, check_max_pool

import clearconv as cc
from clearconv import functional as F
from clearconv import reference as R
from clearconv.errors import ClearConvError
from clearconv.functional.conv import ConvCall
from clearconv.functional.pool import PoolCall, layout_of
from clearconv.kernels import compiled, jit, registry, tuning
from clearconv.shapes import conv2d_geometry, conv_transpose2d_geometry, pool2d_geometry

NUMBA = compiled.AVAILABLE
needs_numba = pytest.mark.skipif(not NUMBA, reason="Numba not installed (or CLEARCONV_JIT=0):"
                                                   " the compiled algorithms are not checked")
CONV = [a.name for a in registry.algorithms("conv2d")]
POOL = [a.name for a in registry.algorithms("max_pool2d")]


def test_every_op_has_its_readable_algorithm_and_the_fast_ones_registered():
    assert set(CONV) == {"im2col", "im2col-split", "winograd", "winograd-4x4", "direct",
                         "direct-nhwc",
                         "depthwise"}
    assert [a.name for a in registry.algorithms("conv_transpose2d")] == [
        "chunked", "im2col-split", "im2col"]
    assert set(POOL) == {"views", "views-finite", "nchw-2x2", "nhwc", "nhwc-2x2"}
    assert [a.name for a in registry.algorithms("conv2d_relu_max_pool2d")] == [
        "direct-fused", "composed"]
    assert [a.name for a in registry.algorithms("linear")] == ["split-rows", "matmul"]
    # 'auto' tries the fast ones first, the readable one of functional/ last
    assert CONV[-1] == "im2col" and POOL[-1] == "views"


def _conv_call(case) -> ConvCall:
    geo = conv2d_geometry(case.x.shape, case.weight.shape, case.stride, case.padding,
                          case.dilation, case.groups)
    return ConvCall(geo, case.x.dtype)


# ------------------------------------------------------------------ conv2d vs reference
@PROPERTY
@given(st.sampled_from(CONV), st.integers(1, 3), conv_cases(winograd_shapes=True, grouped=True))
def test_every_conv_algorithm_matches_the_reference(algorithm, threads, case):
    """Drawn: the algorithm, the thread count of the split, and a call (half of them 3x3
    stride 1, so that Winograd and the direct loop apply often)."""
    ok, why = registry.get("conv2d", algorithm).supports(_conv_call(case))
    assume(ok)
    with _threads(threads), cc.parallel():
        check_conv(case, algorithm)


@FEW
@given(st.sampled_from(CONV), conv_cases(winograd_shapes=True, grouped=True))
def test_every_conv_algorithm_matches_torch_in_float32(algorithm, case):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: not checked")
    ok, _ = registry.get("conv2d", algorithm).supports(_conv_call(case))
    assume(ok)
    x, w = case.x.astype(np.float32), case.weight.astype(np.float32)
    b = None if case.bias is None else case.bias.astype(np.float32)
    y, cache = F.conv2d_forward(x, w, b, case.stride, case.padding, case.dilation,
                                case.groups, algorithm=algorithm)
    pads = cache.geometry.padding
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = None if b is None else torch.tensor(b, requires_grad=True)
    xp = torch.nn.functional.pad(xt, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
    yt = torch.nn.functional.conv2d(xp, wt, bt, cache.geometry.stride, 0,
                                    cache.geometry.dilation, case.groups)
    dy = case.dy.astype(np.float32)
    yt.backward(torch.tensor(np.ascontiguousarray(dy)))
    grads = F.conv2d_backward(dy, cache)
    assert_conv_matches_torch(y, grads, yt, xt, wt, bt)


@FEW
@given(st.sampled_from(CONV), st.integers(1, 3), conv_cases(winograd_shapes=True, grouped=True))
def test_inference_in_chunks_equals_the_training_forward(algorithm, threads, case):
    """need_backward=False keeps nothing and works in cache-sized chunks (forced tiny
    here, so that there are many): the same values, to rounding."""
    assume(registry.get("conv2d", algorithm).supports(_conv_call(case))[0])
    args = (case.x, case.weight, case.bias, case.stride, case.padding, case.dilation,
            case.groups)
    with _threads(threads), cc.parallel(), mock.patch.object(tuning, "CHUNK_BYTES", 1):
        y, cache = F.conv2d_forward(*args, algorithm=algorithm)
        y_inf, lean = F.conv2d_forward(*args, algorithm=algorithm, need_backward=False)
    assert lean.algorithm == algorithm and lean.saved is None
    np.testing.assert_allclose(y_inf, y, rtol=1e-12, atol=1e-12)
    with pytest.raises(ClearConvError, match="need_backward=False"):
        F.conv2d_backward(case.dy, lean)


# ------------------------------------------------------------------ 'auto' and its reasons
def _shapes(c_in, c_out, k=3):
    return (2, c_in, 8, 8), (c_out, c_in, k, k)


@pytest.mark.parametrize("c_in, c_out, k, stride, dtype, expected", [
    (32, 128, 3, 1, np.float32, "winograd"),        # (fewer channels: 'direct-nhwc')
    (32, 256, 3, 1, np.float64, "im2col-split"),    # Winograd only for float32 under auto
    (4, 64, 3, 1, np.float32, "im2col-split"),      # too few channels for Winograd
    (8, 64, 3, 2, np.float32, "im2col-split"),      # stride 2, few channels
    (1, 6, 5, 1, np.float32, "direct"),             # few in and out channels
    (3, 8, 3, 1, np.float64, "direct"),
    (1, 16, 3, 1, np.float32, "im2col-split"),      # 16 outputs: the product pays
    (1, 6, 5, 2, np.float32, "im2col-split"),
])
def test_auto_takes_the_first_algorithm_that_prefers_the_call(c_in, c_out, k, stride, dtype,
                                                              expected):
    x_shape, w_shape = _shapes(c_in, c_out, k)
    choice = F.conv2d_algorithm(x_shape, w_shape, stride, 1, dtype=dtype)
    if not NUMBA and expected in ("winograd", "direct"):
        expected = "im2col-split"
        assert "Numba" in str(choice)
    assert choice.name == expected
    assert choice.considered[-1][:2] == (expected, True)
    assert all(not ok for _, ok, _ in choice.considered[:-1])
    rng = np.random.default_rng(0)
    _, cache = F.conv2d_forward(rng.standard_normal(x_shape).astype(dtype),
                                rng.standard_normal(w_shape).astype(dtype), stride=stride,
                                padding=1)
    assert cache.algorithm == expected


def test_the_choice_says_why_each_candidate_was_passed_over():
    text = str(F.conv2d_algorithm((8, 4, 28, 28), (64, 4, 3, 3), stride=2, padding=1))
    assert text.splitlines()[0].startswith("conv2d: im2col-split")
    assert "winograd: needs a 3x3 kernel, stride 1 and dilation 1; got kernel (3, 3), " \
           "stride (2, 2)" in text
    assert ("direct: needs stride 1" in text) if NUMBA else ("direct: needs Numba" in text)


def test_forced_algorithms_that_do_not_apply_name_the_reason():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 2, 6, 6)), rng.standard_normal((2, 2, 3, 3))
    with pytest.raises(ClearConvError, match=r"algorithm='winograd' does not apply.*3x3.*"
                                             r"got kernel \(3, 3\), stride \(2, 2\)"):
        F.conv2d_forward(x, w, stride=2, algorithm="winograd")
    with pytest.raises(ClearConvError, match=r"algorithm='direct' does not apply.*"
                                             + (r"stride 1" if NUMBA else "Numba")):
        F.conv2d_forward(x, w, stride=2, algorithm="direct")
    with pytest.raises(ClearConvError, match=r"no algorithm 'fft'.*'auto', .*'im2col'"):
        F.conv2d_forward(x, w, algorithm="fft")
    with pytest.raises(ClearConvError, match="no algorithm 'fft'"):
        cc.layers.Conv2D(2, 2, 3, algorithm="fft")


def test_a_layer_runs_the_algorithm_it_was_given_and_saves_it(tmp_path):
    from clearconv.layers import Conv2D, Flatten

    layer = Conv2D(2, 3, 3, padding=1, rng=0, algorithm="im2col")
    x = np.random.default_rng(1).standard_normal((2, 2, 5, 5)).astype(np.float32)
    layer.forward(x, training=True)
    assert layer._cache.algorithm == "im2col"
    assert layer.algorithm_for((2, 5, 5)).name == "im2col"
    model = cc.Sequential(layer, Flatten(), input_shape=(2, 5, 5))
    model.save(str(tmp_path / "m.npz"))
    assert cc.load(str(tmp_path / "m.npz")).layers[0].algorithm == "im2col"
    rows = model.summary(print_fn=None).splitlines()
    assert rows[4].startswith("0: Conv2D") and rows[4].endswith("   im2col")


@pytest.mark.parametrize("arch", ["digits_cnn", "mnist_cnn", "lenet5"])
def test_summary_names_the_algorithms_the_training_step_runs(arch):
    """The summary's column is the registry's choice; a real training step records the
    same algorithms in its caches."""
    from clearconv.train import fusion, zoo

    model = getattr(zoo, arch)(rng=0)
    column = fusion.describe(model.steps(), model.input_shape, model.dtype)
    x = np.random.default_rng(0).random((4, *model.input_shape), dtype=np.float32)
    ran = {}
    with cc.parallel():
        h = x
        for step in model.steps():
            h = step.forward(h, training=True)
            if isinstance(step, (fusion.ConvReLUMaxPool2D, fusion.ReLUMaxPool2D)):
                first = min(step.indices.values())
                if step.algorithm == "composed":
                    conv_cache, pool_cache = step._cache.saved
                    ran[step.indices["conv"]] = conv_cache.algorithm
                    ran[step.indices["pool"]] = pool_cache.algorithm
                else:
                    ran[first if "conv" in step.indices else step.indices["pool"]] = \
                        step.algorithm
            elif hasattr(step, "_cache") and hasattr(step._cache, "algorithm") \
                    and not isinstance(step, cc.layers.Dense):
                ran[model.layers.index(step)] = step._cache.algorithm
    for i, name in ran.items():
        assert column[i].split(",")[0].split(":")[0] == name, (i, column[i], name)
    assert ran, "no conv or pooling layer ran"


def test_python_m_kernels_lists_every_algorithm():
    out = subprocess.run([sys.executable, "-m", "clearconv.kernels"], capture_output=True,
                         text=True, check=True).stdout
    for name in CONV + POOL + ["direct-fused", "composed", "split-rows", "matmul"]:
        assert f"  {name} " in out, name


def test_log_switch_prints_each_calls_choice():
    code = ("import numpy as np, clearconv.functional as F; "
            "F.conv2d_forward(np.ones((1, 1, 5, 5)), np.ones((2, 1, 3, 3)), stride=2)")
    env = {**os.environ, "CLEARCONV_LOG_KERNELS": "1"}
    err = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stderr
    assert "clearconv.kernels: conv2d x(1, 1, 5, 5) -> (1, 2, 2, 2)" in err
    assert "-> im2col-split" in err


def test_jit_switched_off_by_environment_leaves_the_numpy_algorithms():
    code = ("import numpy as np; from clearconv.kernels import compiled; "
            "import clearconv.functional as F; "
            "x = np.ones((1, 32, 4, 4), np.float32); w = np.ones((32, 32, 3, 3), np.float32); "
            "print(compiled.AVAILABLE, F.conv2d_forward(x, w, padding=1)[1].algorithm, "
            "F.max_pool2d_forward(x, 2)[1].algorithm)")
    env = {**os.environ, "CLEARCONV_JIT": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["False", "im2col-split", "views-finite"]


# ------------------------------------------------------------------ max pooling
def _pool_call(case, relu=False) -> PoolCall:
    geo = pool2d_geometry(case.x.shape, case.kernel_size, case.stride, case.padding,
                          case.ceil_mode)
    return PoolCall(geo, case.x.dtype, layout_of(case.x), relu)


@PROPERTY
@given(st.sampled_from(POOL), st.sampled_from(["tie_free", "ties", "nonfinite"]),
       st.integers(1, 3), st.data())
def test_every_max_pool_algorithm_matches_the_reference(algorithm, values, threads, data):
    """The rule of PyTorch (first maximum on ties, NaN propagates, padding never wins)
    in every algorithm, on channels-last and NCHW input, 2x2/2 windows drawn often."""
    case = data.draw(pool_cases(values, two_by_two=True))
    assume(registry.get("max_pool2d", algorithm).supports(_pool_call(case))[0])
    with _threads(threads), cc.parallel():
        check_max_pool(case, algorithm)


@PROPERTY
@given(st.sampled_from(POOL), st.data())
def test_fused_relu_pool_equals_relu_then_pool_in_every_algorithm(algorithm, data):
    """max_pool2d(relu=True) against ReLU then max pooling in the reference: values,
    mask and gradient (a window whose maximum is not > 0 passes none)."""
    case = data.draw(pool_cases("ties", two_by_two=True, negative=True))
    assume(registry.get("max_pool2d", algorithm).supports(_pool_call(case, True))[0])
    args = (case.kernel_size, case.stride, case.padding, case.ceil_mode)
    y, cache = F.max_pool2d_forward(case.x, *args, relu=True, algorithm=algorithm)
    a, relu_cache = R.relu_forward(case.x)
    y_ref, pool_cache = R.max_pool2d_forward(a, *args)
    assert_same(y, y_ref)
    dy = case.dy_rng.standard_normal(y.shape)
    dx_ref = R.relu_backward(R.max_pool2d_backward(dy, pool_cache), relu_cache)
    assert_same(F.max_pool2d_backward(dy, cache), dx_ref)


@FEW
@given(st.sampled_from(POOL), pool_cases("tie_free", two_by_two=True))
def test_every_max_pool_algorithm_matches_torch_in_float32(algorithm, case):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: not checked")
    x = case.x.astype(np.float32)
    x = channels_last(x) if layout_of(case.x) == "channels-last" else np.ascontiguousarray(x)
    geo = pool2d_geometry(x.shape, case.kernel_size, case.stride, case.padding,
                          case.ceil_mode)
    assume(registry.get("max_pool2d", algorithm).supports(
        PoolCall(geo, x.dtype, layout_of(x), False))[0])
    args = (case.kernel_size, case.stride, case.padding, case.ceil_mode)
    y, cache = F.max_pool2d_forward(x, *args, algorithm=algorithm)
    xt = torch.tensor(np.ascontiguousarray(x), requires_grad=True)
    stride = geo.stride
    yt = torch.nn.functional.max_pool2d(xt, geo.kernel, stride,
                                        (geo.padding[0][0], geo.padding[1][0]),
                                        ceil_mode=case.ceil_mode)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    dy = case.dy_rng.standard_normal(y.shape).astype(np.float32)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(F.max_pool2d_backward(dy, cache), xt.grad.numpy(),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("layout, c, kernel, expected", [
    ("NCHW", 6, 2, "nchw-2x2"),
    ("NCHW", 6, 3, "views-finite"),
    ("channels-last", 32, 3, "nhwc"),
    ("channels-last", 32, 2, "nhwc"),
    ("channels-last", 6, 2, "nhwc-2x2"),
    ("channels-last", 6, 3, "views-finite"),
    ("strided", 6, 2, "views-finite"),
])
def test_auto_pooling_follows_the_memory_layout(layout, c, kernel, expected):
    choice = F.max_pool2d_algorithm((2, c, 8, 8), kernel, layout=layout)
    assert choice.name == (expected if NUMBA else "views-finite"), str(choice)


# ------------------------------------------------------------------ conv + ReLU + pool
@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, c_out, kernel, padding", [
    ((4, 1, 28, 28), 6, (5, 5), 2),
    ((3, 2, 9, 7), 5, (3, 3), 1),       # odd conv output: the last row/column in no window
    ((2, 3, 6, 6), 4, (2, 2), 0),
])
def test_direct_fused_is_bit_identical_to_composed(x_shape, c_out, kernel, padding, dtype):
    rng = np.random.default_rng(11)
    x = rng.standard_normal(x_shape).astype(dtype) - 0.3   # many all-negative windows
    w = rng.standard_normal((c_out, x_shape[1], *kernel)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    y, cache = F.conv2d_relu_max_pool2d_forward(x, w, b, padding=padding)
    assert cache.algorithm == "direct-fused"
    y_ref, ref = F.conv2d_relu_max_pool2d_forward(x, w, b, padding=padding,
                                                  algorithm="composed")
    assert ref.saved[0].algorithm == "direct"
    np.testing.assert_array_equal(y, y_ref)
    dy = rng.standard_normal(y.shape).astype(dtype)
    for input_grad in (False, True):
        got = F.conv2d_relu_max_pool2d_backward(dy, cache, input_grad)
        want = F.conv2d_relu_max_pool2d_backward(dy, ref, input_grad)
        for a, r, name in zip(got, want, ("dx", "dweight", "dbias")):
            if r is None:
                assert a is None, name
            else:
                np.testing.assert_array_equal(a, r, err_msg=name)


@FEW
@given(st.sampled_from(["composed", "direct-fused"]), conv_cases(winograd_shapes=True),
       st.booleans())
def test_fused_op_matches_the_three_reference_ops(algorithm, case, two_by_two):
    pool = (2, 2, 0, False) if two_by_two else (3, 1, 1, True)
    geo = conv2d_geometry(case.x.shape, case.weight.shape, case.stride, case.padding,
                          case.dilation, case.groups)
    try:
        pgeo = pool2d_geometry(geo.out_shape, *pool)
    except ClearConvError:
        assume(False)
    from clearconv.functional.fused import FusedCall

    assume(registry.get("conv2d_relu_max_pool2d", algorithm).supports(
        FusedCall(geo, pgeo, case.x.dtype))[0])
    args = (case.stride, case.padding, case.dilation)
    y, cache = F.conv2d_relu_max_pool2d_forward(case.x, case.weight, case.bias, *args, *pool,
                                                groups=case.groups, algorithm=algorithm)
    z, zc = R.conv2d_forward(case.x, case.weight, case.bias, *args, case.groups)
    a, ac = R.relu_forward(z)
    y_ref, pc = R.max_pool2d_forward(a, *pool)
    assert_same(y, y_ref)
    dy = np.random.default_rng(0).standard_normal(y.shape)
    dx, dw, db = F.conv2d_relu_max_pool2d_backward(dy, cache)
    dx_ref, dw_ref, db_ref = R.conv2d_backward(
        R.relu_backward(R.max_pool2d_backward(dy, pc), ac), zc)
    assert_same(dx, dx_ref)
    assert_same(dw, dw_ref)
    if case.bias is not None:
        assert_same(db, db_ref)


# ------------------------------------------------------------------ linear
@FEW
@given(st.sampled_from(["matmul", "split-rows"]), st.integers(1, 40), st.integers(1, 30),
       st.integers(1, 9), st.booleans(), st.integers(1, 3))
def test_every_linear_algorithm_matches_the_reference(algorithm, n, fan_in, fan_out, bias,
                                                      threads):
    rng = np.random.default_rng(n * fan_in)
    x, w = rng.standard_normal((n, fan_in)), rng.standard_normal((fan_out, fan_in))
    b = rng.standard_normal(fan_out) if bias else None
    with _threads(threads), cc.parallel(), \
            mock.patch.object(tuning, "MIN_SPLIT_PRODUCT", 0):
        y, cache = F.linear_forward(x, w, b, algorithm=algorithm)
        dy = rng.standard_normal(y.shape)
        grads = F.linear_backward(dy, cache)
    y_ref, ref = R.linear_forward(x, w, b)
    assert cache.algorithm == algorithm
    assert_same(y, y_ref)
    for g, r in zip(grads, R.linear_backward(dy, ref)):
        if r is None:
            assert g is None
        else:
            assert_same(g, r)


# ------------------------------------------------------------------ helpers
class _threads:
    """``with _threads(n):`` clearconv splits into n threads inside, restored after."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __enter__(self) -> None:
        self.before = cc.get_num_threads()
        cc.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        cc.set_num_threads(self.before)


# ------------------------------------------------------------------ transposed convolution
TRANSPOSED = [a.name for a in registry.algorithms("conv_transpose2d")]


def _transposed_args(case):
    return (case.stride, case.padding, case.output_padding, case.dilation, case.groups)


@PROPERTY
@given(st.sampled_from(TRANSPOSED), st.integers(1, 3), transposed_cases())
def test_every_transposed_conv_algorithm_matches_the_literal_scatter(algorithm, threads, case):
    """functional/ computes it as conv2d's input gradient; the reference scatters each
    input pixel times the kernel onto the output, from the definition alone."""
    geo = conv_transpose2d_geometry(case.x.shape, case.weight.shape, *_transposed_args(case))
    assume(registry.get("conv_transpose2d", algorithm).supports(ConvCall(geo, np.float64))[0])
    with _threads(threads), cc.parallel():
        y, cache = F.conv_transpose2d_forward(case.x, case.weight, case.bias,
                                              *_transposed_args(case), algorithm=algorithm)
        grads = F.conv_transpose2d_backward(case.dy, cache)
        no_dx = F.conv_transpose2d_backward(case.dy, cache, input_grad=False)
    y_ref, ref = R.conv_transpose2d_forward(case.x, case.weight, case.bias,
                                            *_transposed_args(case))
    assert cache.algorithm == algorithm
    assert_same(y, y_ref)
    ref_grads = R.conv_transpose2d_backward(case.dy, ref)
    for g, r in zip(grads, ref_grads):
        if r is None:
            assert g is None
        else:
            assert_same(g, r)
    assert no_dx[0] is None
    assert_same(no_dx[1], ref_grads[1])


@FEW
@given(st.sampled_from(TRANSPOSED), transposed_cases())
def test_every_transposed_conv_algorithm_matches_torch(algorithm, case):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: not checked")
    geo = conv_transpose2d_geometry(case.x.shape, case.weight.shape, *_transposed_args(case))
    assume(registry.get("conv_transpose2d", algorithm).supports(ConvCall(geo, np.float32))[0])
    for dtype, tol in ((np.float32, 1e-4), (np.float64, 1e-10)):
        x, w = case.x.astype(dtype), case.weight.astype(dtype)
        b = None if case.bias is None else case.bias.astype(dtype)
        y, cache = F.conv_transpose2d_forward(x, w, b, *_transposed_args(case),
                                              algorithm=algorithm)
        xt = torch.tensor(np.ascontiguousarray(x), requires_grad=True)
        wt = torch.tensor(w, requires_grad=True)
        bt = None if b is None else torch.tensor(b, requires_grad=True)
        yt = torch.nn.functional.conv_transpose2d(xt, wt, bt, case.stride, case.padding,
                                                  case.output_padding, case.groups,
                                                  case.dilation)
        dy = case.dy.astype(dtype)
        yt.backward(torch.tensor(dy))
        grads = F.conv_transpose2d_backward(dy, cache)
        assert_conv_matches_torch(y, grads, yt, xt, wt, bt, dtype, tol)


def test_transposed_conv_gradients_pass_finite_differences():
    from clearconv.gradcheck import gradcheck

    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((2, 4, 3, 4)), rng.standard_normal((4, 3, 3, 2)), \
        rng.standard_normal(6)
    result = gradcheck(lambda x, w, b: F.conv_transpose2d_forward(x, w, b, 2, 1, 1, (1, 2), 2),
                       F.conv_transpose2d_backward, {"x": x, "weight": w, "bias": b})
    assert result.ok, str(result)


def test_grouped_and_depthwise_gradients_pass_finite_differences():
    from clearconv.gradcheck import gradcheck

    rng = np.random.default_rng(4)
    for groups, c_out in ((2, 4), (4, 8)):
        x, w, b = rng.standard_normal((2, 4, 5, 4)), \
            rng.standard_normal((c_out, 4 // groups, 3, 3)), rng.standard_normal(c_out)
        for algorithm in ("im2col", "depthwise" if groups == 4 else "im2col"):
            result = gradcheck(lambda x, w, b, a=algorithm, g=groups: F.conv2d_forward(
                x, w, b, 2, 1, groups=g, algorithm=a), F.conv2d_backward,
                {"x": x, "weight": w, "bias": b})
            assert result.ok, str(result)


def test_auto_takes_depthwise_for_a_depthwise_conv_and_says_why():
    choice = F.conv2d_algorithm((2, 32, 8, 8), (64, 1, 3, 3), padding=1, groups=32)
    assert choice.name == "depthwise"
    assert "winograd: ungrouped convolutions only, got groups 32" in str(choice)
    assert F.conv2d_algorithm((2, 32, 8, 8), (64, 16, 3, 3), padding=1,
                              groups=2).name == "im2col"


def test_groups_errors_name_the_numbers():
    x, w = np.ones((1, 6, 5, 5)), np.ones((4, 3, 3, 3))
    with pytest.raises(ClearConvError, match=r"groups 4 must divide both the input channels "
                                             r"\(6\) and the output channels \(4\)"):
        F.conv2d_forward(x, np.ones((4, 1, 3, 3)), groups=4)
    with pytest.raises(ClearConvError, match=r"input has 6 channels / groups 2 = 3 but the "
                                             r"kernel expects 2"):
        F.conv2d_forward(x, np.ones((4, 2, 3, 3)), groups=2)
    with pytest.raises(ClearConvError, match="groups must be an int >= 1, got 0"):
        F.conv2d_forward(x, w, groups=0)
    with pytest.raises(ClearConvError, match=r"output_padding \(2, 2\) must be smaller than "
                                             r"the stride \(2, 2\)"):
        F.conv_transpose2d_forward(np.ones((1, 2, 3, 3)), np.ones((2, 2, 3, 3)), stride=2,
                                   output_padding=2)


# ------------------------------------------------------------------ Winograd F(4x4, 3x3)
def _inference_call(case) -> ConvCall:
    return ConvCall(_conv_call(case).geometry, case.x.dtype, need_backward=False)


@needs_numba
@PROPERTY
@given(st.integers(1, 3), st.booleans(), conv_cases(winograd_shapes=True))
def test_winograd_4x4_inference_matches_the_reference(threads, chunks, case):
    """F(4x4, 3x3) (inference only) against the loop reference, float64 to 1e-10: drawn
    threads, and tiny chunks (many of them, each image apart) or the default."""
    assume(registry.get("conv2d", "winograd-4x4").supports(_inference_call(case))[0])
    args = (case.stride, case.padding, case.dilation)
    chunk = 1 if chunks else tuning.CHUNK_BYTES
    with _threads(threads), cc.parallel(), mock.patch.object(tuning, "CHUNK_BYTES", chunk):
        y, cache = F.conv2d_forward(case.x, case.weight, case.bias, *args,
                                    algorithm="winograd-4x4", need_backward=False)
    assert cache.algorithm == "winograd-4x4" and cache.saved is None
    y_ref, _ = R.conv2d_forward(case.x, case.weight, case.bias, *args)
    assert_same(y, y_ref)


@needs_numba
@FEW
@given(conv_cases(winograd_shapes=True))
def test_winograd_4x4_inference_matches_torch_in_float32(case):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: not checked")
    assume(registry.get("conv2d", "winograd-4x4").supports(_inference_call(case))[0])
    x, w = case.x.astype(np.float32), case.weight.astype(np.float32)
    b = None if case.bias is None else case.bias.astype(np.float32)
    y, cache = F.conv2d_forward(x, w, b, case.stride, case.padding, case.dilation,
                                algorithm="winograd-4x4", need_backward=False)
    pads = cache.geometry.padding
    xp = torch.nn.functional.pad(torch.tensor(x), (pads[1][0], pads[1][1], pads[0][0],
                                                   pads[0][1]))
    yt = torch.nn.functional.conv2d(xp, torch.tensor(w), None if b is None else
                                    torch.tensor(b)).numpy()
    assert y.dtype == np.float32
    scale = max(1.0, float(np.sqrt(np.mean(yt.astype(np.float64) ** 2))))
    # F(4x4)'s transforms (entries up to 8) amplify float32 rounding more than F(2x2)'s:
    # Hypothesis found an output near 0 off by 1.2e-5 of the scale, so the absolute
    # tolerance is the issue's float32 1e-4 of the output's scale, as assert_close32's
    np.testing.assert_allclose(y, yt, rtol=1e-4, atol=1e-4 * scale)


@needs_numba
def test_winograd_4x4_on_a_wide_layer_stays_close_to_torch_in_float32():
    """Many channels (the sums the transforms' constants round the most), whole and
    cropped tiles."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed: not checked")
    rng = np.random.default_rng(3)
    for hw in (16, 15):
        x = rng.standard_normal((2, 64, hw, hw)).astype(np.float32)
        w = (rng.standard_normal((32, 64, 3, 3)) / 24).astype(np.float32)
        b = rng.standard_normal(32).astype(np.float32)
        y, _ = F.conv2d_forward(x, w, b, padding=1, algorithm="winograd-4x4",
                                need_backward=False)
        yt = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b),
                                        padding=1).numpy()
        scale = float(np.abs(yt).max())
        assert float(np.abs(y - yt).max()) <= 2e-5 * scale


def test_inference_takes_winograd_4x4_where_its_tiles_fit_and_training_never():
    x_shape, w_shape = (2, 32, 16, 16), (128, 32, 3, 3)    # too many for 'direct-nhwc'
    train = F.conv2d_algorithm(x_shape, w_shape, padding=1)
    infer = F.conv2d_algorithm(x_shape, w_shape, padding=1, need_backward=False)
    assert train.name == ("winograd" if NUMBA else "im2col-split")
    assert "winograd-4x4: inference only" in str(train)
    assert infer.name == ("winograd-4x4" if NUMBA else "im2col-split")
    cropped = F.conv2d_algorithm((2, 32, 14, 14), w_shape, padding=1, need_backward=False)
    assert cropped.name == ("winograd" if NUMBA else "im2col-split")
    if NUMBA:
        assert "cover 1.31x the 14x14 outputs" in str(cropped)
    with pytest.raises(ClearConvError, match=r"'winograd-4x4' does not apply.*inference only"):
        F.conv2d_forward(np.zeros(x_shape), np.zeros(w_shape), padding=1,
                         algorithm="winograd-4x4")


@needs_numba
def test_a_model_predicts_with_winograd_4x4_what_it_computes_in_training():
    rng = np.random.default_rng(0)
    model = cc.Sequential(cc.layers.Conv2D(3, 16, 3, padding=1, rng=rng), cc.layers.ReLU(),
                          cc.layers.Conv2D(16, 48, 3, padding=1, rng=rng),  # not 'direct-nhwc'
                          cc.layers.Flatten(), cc.layers.Dense(48 * 16 * 16, 4, rng=rng),
                          input_shape=(3, 16, 16))
    x = rng.standard_normal((5, 3, 16, 16)).astype(np.float32)
    with mock.patch.object(registry, "log") as log:
        log.isEnabledFor.return_value = True
        inferred = model.predict(x)
    assert any("winograd-4x4" in str(c) for c in log.info.call_args_list)
    trained = model.forward(x, training=True)
    np.testing.assert_allclose(inferred, trained, rtol=1e-4, atol=1e-5)


def test_the_remembered_auto_order_follows_every_change_of_the_registry():
    names = registry.names("linear")
    extra = registry.Algorithm("linear", "test-only", lambda call: (False, "never"),
                               registry.get("linear", "matmul").forward, None, "a test entry")
    saved = dict(registry._order)
    try:
        registry.register(extra)
        assert registry.names("linear") == (*names, "test-only")
        registry.set_auto_order("linear", ("test-only", "split-rows"))
        assert registry.names("linear")[:3] == ("auto", "test-only", "split-rows")
    finally:
        del registry._algorithms["linear"]["test-only"]
        registry._order.clear()
        registry._order.update(saved)
        registry._ordered_memo.clear()
    assert registry.names("linear") == names


@needs_numba
@pytest.mark.parametrize("algorithm", ["nhwc", "nhwc-2x2", "nchw-2x2"])
@pytest.mark.parametrize("h, w", [(8, 6), (7, 9)])     # odd: a row / column no window covers
@pytest.mark.parametrize("relu", [False, True])
def test_2x2_backward_writes_every_value_once(algorithm, h, w, relu):
    """The 2x2/2 loops ('nhwc' runs its channels-innermost one on channels-last memory,
    'nchw-2x2' zeroes each plane and stores each window's gradient at its maximum),
    forward and backward, against the reference."""
    rng = np.random.default_rng(h * w)
    x = rng.permutation(np.linspace(-1, 1, 2 * 5 * h * w)).reshape(2, 5, h, w)
    if algorithm != "nchw-2x2":
        x = channels_last(x)
    y, cache = F.max_pool2d_forward(x, 2, 2, relu=relu, algorithm=algorithm)
    dy = rng.standard_normal(y.shape)
    got = F.max_pool2d_backward(dy, cache)
    if relu:
        z, relu_cache = R.relu_forward(x)
        y_ref, pool_cache = R.max_pool2d_forward(z, 2, 2)
        want = R.relu_backward(R.max_pool2d_backward(dy, pool_cache), relu_cache)
    else:
        y_ref, pool_cache = R.max_pool2d_forward(x, 2, 2)
        want = R.max_pool2d_backward(dy, pool_cache)
    assert_same(y, y_ref)
    assert_same(got, want)
    assert not got[:, :, 2 * (h // 2):].any() and not got[:, :, :, 2 * (w // 2):].any()


@pytest.mark.parametrize("compiled_loops", [False, pytest.param(True, marks=needs_numba)])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("chunk_bytes", [1, 8000])
@pytest.mark.parametrize("geometry", [
    dict(stride=2, padding=1),                                      # the U-Net upsampling
    dict(stride=(2, 3), padding=(0, 1), output_padding=(1, 2), dilation=(1, 2)),
    dict(stride=2, padding=1, groups=3),
])
@pytest.mark.parametrize("layout", ["nchw", "channels-last"])
def test_chunked_transposed_conv_over_several_chunks_matches_the_reference(
        compiled_loops, threads, chunk_bytes, geometry, layout):
    """Hypothesis' small calls fit one chunk: here each chunk is 1 or 2 of 5 images
    (the last one shorter), split between threads, with the NumPy copies and col2im and
    with the compiled ones (as once Numba is loaded; a kernel dilated along W still
    takes functional's col2im)."""
    rng = np.random.default_rng(3)
    groups = geometry.get("groups", 1)
    x = rng.standard_normal((5, 3, 4, 5))
    if layout == "channels-last":
        x = channels_last(x)
    w = rng.standard_normal((3, 2, 3, 4))
    b = rng.standard_normal(2 * groups)
    with mock.patch.object(tuning, "CHUNK_BYTES", chunk_bytes), \
            mock.patch.object(jit, "_loaded", compiled_loops), _threads(threads), cc.parallel():
        y, cache = F.conv_transpose2d_forward(x, w, b, algorithm="chunked", **geometry)
        dy = rng.standard_normal(y.shape)
        if layout == "channels-last":
            dy = channels_last(dy)
        grads = F.conv_transpose2d_backward(dy, cache)
    y_ref, ref = R.conv_transpose2d_forward(x, w, b, **geometry)
    assert_same(y, y_ref)
    for g, r in zip(grads, R.conv_transpose2d_backward(dy, ref)):
        assert_same(g, r)


def test_auto_takes_chunked_for_transposed_convs_but_few_output_channels():
    choice = F.conv_transpose2d_algorithm((64, 64, 16, 16), (64, 32, 4, 4), stride=2,
                                          padding=1)
    assert choice.name == "chunked"
    assert F.conv_transpose2d_algorithm((8, 4, 3, 3), (4, 2, 2, 2), groups=2).name == "chunked"
    few = F.conv_transpose2d_algorithm((64, 16, 14, 14), (16, 1, 4, 4), stride=2, padding=1)
    assert few.name == "im2col-split"
    assert "chunked: 1 output channel(s), fewer than 4" in str(few)


@needs_numba
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("layout", ["nchw", "channels-last"])
def test_winograd_keeps_the_padded_input_and_remakes_its_tiles_chunk_by_chunk(threads, layout):
    """The backward transforms the input tiles again from the saved padded input (4x
    smaller than the tiles), one image at a time here (CHUNK_BYTES 1): the same
    gradients as the reference, float64 to 1e-10."""
    from strategies import ConvCase

    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, 3, 7, 6))
    if layout == "channels-last":
        x = channels_last(x)
    case = ConvCase(x, rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4), 1, 1, 1,
                    rng.standard_normal((5, 4, 7, 6)))
    with mock.patch.object(tuning, "CHUNK_BYTES", 1), _threads(threads), cc.parallel():
        check_conv(case, "winograd")
        _, cache = F.conv2d_forward(case.x, case.weight, case.bias, padding=1,
                                    algorithm="winograd")
    assert cache.saved.xp.shape == (5, 2 * 4 + 2, 2 * 3 + 2, 3)    # whole 2x2 tiles, padded
