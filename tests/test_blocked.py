"""conv2d's register-blocked channels-last direct loop, 'direct-nhwc' (kernels/blocked.py),
forced on Hypothesis-drawn calls (every stride and dilation): against the loop reference
in float64 (1e-10) forward and backward, against PyTorch in float32, split between
threads; where 'auto' takes it, and that it says it needs Numba where Numba is off.

The shapes are drawn across the loop's blocks: output channels across multiples of 16
(the lanes of one block), input channels across multiples of 4 (the weight gradient's
block), output widths across multiples of 4 (the forward's pixel block) and below it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import FEW, PROPERTY, assert_conv_matches_torch, assert_same, channels_last

import clearconv as cc
from clearconv import functional as F
from clearconv import reference as R
from clearconv.errors import ClearConvError
from clearconv.kernels import blocked, compiled
from clearconv.shapes import resolve_padding

NUMBA = compiled.AVAILABLE
needs_numba = pytest.mark.skipif(not NUMBA, reason="Numba not installed (or CLEARCONV_JIT=0):"
                                                   " 'direct-nhwc' needs it (checked below)")

pad_widths = st.integers(0, 3)
paddings = st.one_of(pad_widths, st.tuples(pad_widths, pad_widths),
                     st.tuples(st.tuples(pad_widths, pad_widths),
                               st.tuples(pad_widths, pad_widths)),
                     st.sampled_from(["valid", "same"]))


@st.composite
def blocked_cases(draw):
    """(x, weight, bias, stride, padding, dilation, dy): any kernel that fits, half of the
    calls stride 1 and dilation 1 (the loops' own input gradient), the others strided or
    dilated."""
    n = draw(st.integers(1, 3))
    c_in = draw(st.integers(1, 9))
    c_out = draw(st.sampled_from([1, 3, 15, 16, 17, 32, 33]))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 13))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = dilation = (1, 1)
    if draw(st.booleans()):
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(paddings)
    (pt, pb), (pl, pr) = resolve_padding(padding, (kh, kw), stride, dilation, (h, w))
    (sh, sw), (dh, dw) = stride, dilation
    assume(dh * (kh - 1) < h + pt + pb and dw * (kw - 1) < w + pl + pr)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, c_in, h, w))
    if draw(st.booleans()):
        x = channels_last(x)
    weight = rng.standard_normal((c_out, c_in, kh, kw))
    bias = rng.standard_normal(c_out) if draw(st.booleans()) else None
    ho = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    wo = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    dy = rng.standard_normal((n, c_out, ho, wo))
    if draw(st.booleans()):
        dy = channels_last(dy)
    return x, weight, bias, stride, padding, dilation, dy


@contextmanager
def _threads(n):
    before = cc.get_num_threads()
    cc.set_num_threads(n)
    try:
        with cc.parallel():
            yield
    finally:
        cc.set_num_threads(before)


@needs_numba
@PROPERTY
@given(blocked_cases(), st.integers(1, 3))
def test_direct_nhwc_matches_the_reference_forward_and_backward(case, threads):
    x, weight, bias, stride, padding, dilation, dy = case
    with _threads(threads):
        y, cache = F.conv2d_forward(x, weight, bias, stride, padding, dilation,
                                    algorithm="direct-nhwc")
        dx, dw, db = F.conv2d_backward(dy, cache)
    assert cache.algorithm == "direct-nhwc"
    ry, rcache = R.conv2d_forward(x, weight, bias, stride, cache.geometry.padding, dilation)
    assert_same(y, ry)
    rdx, rdw, rdb = R.conv2d_backward(dy, rcache)
    assert_same(dx, rdx)
    assert_same(dw, rdw)
    if bias is None:
        assert db is None
    else:
        assert_same(db, rdb)


@needs_numba
@PROPERTY
@given(blocked_cases())
def test_direct_nhwc_inference_equals_its_training_forward(case):
    x, weight, bias, stride, padding, dilation, _ = case
    args = (x, weight, bias, stride, padding, dilation)
    y, _ = F.conv2d_forward(*args, algorithm="direct-nhwc")
    y_inf, lean = F.conv2d_forward(*args, algorithm="direct-nhwc", need_backward=False)
    assert lean.saved is None
    np.testing.assert_array_equal(y_inf, y)


@needs_numba
@FEW
@given(blocked_cases())
def test_direct_nhwc_matches_torch_in_float32(case):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: not checked")
    x, weight, bias, stride, padding, dilation, dy = (
        a.astype(np.float32) if isinstance(a, np.ndarray) else a for a in case)
    y, cache = F.conv2d_forward(x, weight, bias, stride, padding, dilation,
                                algorithm="direct-nhwc")
    grads = F.conv2d_backward(dy, cache)
    (pt, pb), (pl, pr) = cache.geometry.padding
    xt = torch.tensor(np.ascontiguousarray(x), requires_grad=True)
    wt = torch.tensor(weight, requires_grad=True)
    bt = None if bias is None else torch.tensor(bias, requires_grad=True)
    yt = torch.nn.functional.conv2d(torch.nn.functional.pad(xt, (pl, pr, pt, pb)), wt, bt,
                                    stride, 0, dilation)
    yt.backward(torch.tensor(np.ascontiguousarray(dy)))
    assert_conv_matches_torch(y, grads, yt, xt, wt, bt)


@needs_numba
def test_a_resnet_sized_layer_matches_torch_in_float32():
    """Many blocks of 16 channels and 4 pixels, sums over 9 * 32 terms (dW over a batch)."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed: not checked")
    rng = np.random.default_rng(0)
    x = channels_last(rng.standard_normal((8, 32, 14, 14)).astype(np.float32))
    w = (rng.standard_normal((32, 32, 3, 3)) * 0.1).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    dy = channels_last(rng.standard_normal((8, 32, 14, 14)).astype(np.float32))
    with cc.parallel():
        y, cache = F.conv2d_forward(x, w, b, padding=1, algorithm="direct-nhwc")
        dx, dw, db = F.conv2d_backward(dy, cache)
    xt, wt, bt = (torch.tensor(np.ascontiguousarray(a), requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.conv2d(xt, wt, bt, padding=1)
    yt.backward(torch.tensor(np.ascontiguousarray(dy)))
    for ours, theirs in [(y, yt), (dx, xt.grad), (dw, wt.grad), (db, bt.grad)]:
        theirs = theirs.detach().numpy()
        scale = float(np.abs(theirs).max())
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5 * scale)


@needs_numba
def test_weight_blocks_round_trip_and_the_rotated_kernel():
    w = np.arange(17 * 3 * 2 * 3, dtype=np.float64).reshape(17, 3, 2, 3)
    wb = blocked.weight_blocks(w)
    assert wb.shape == (2, 2, 3, 3, 16)
    assert wb[1, 1, 2, 0, 0] == w[16, 0, 1, 2] and not wb[1, ..., 1:].any()
    np.testing.assert_array_equal(blocked.weight_from_blocks(wb, 17), w)
    r = blocked.rotated_kernel(w)
    assert r.shape == (3, 17, 2, 3) and r[2, 5, 0, 0] == w[5, 2, 1, 2]


@needs_numba
@pytest.mark.parametrize("x_shape, w_shape, stride, dtype, training, expected", [
    ((64, 16, 32, 32), (16, 16, 3, 3), 1, np.float32, True, "direct-nhwc"),  # ResNet-20
    ((64, 16, 32, 32), (16, 16, 3, 3), 1, np.float32, False, "direct-nhwc"),
    ((64, 32, 16, 16), (32, 32, 3, 3), 1, np.float32, False, "direct-nhwc"),
    ((64, 64, 8, 8), (64, 64, 3, 3), 1, np.float32, True, "direct-nhwc"),
    ((64, 64, 14, 14), (64, 64, 3, 3), 1, np.float32, True, "winograd"),  # width 14
    ((64, 64, 8, 8), (64, 64, 3, 3), 1, np.float32, False, "winograd-4x4"),  # F(4x4) wins
    ((64, 64, 16, 16), (128, 64, 3, 3), 1, np.float32, True, "winograd"),  # about even
    ((64, 16, 32, 32), (16, 16, 3, 3), 1, np.float64, True, "direct-nhwc"),  # float64
    ((64, 64, 14, 14), (128, 64, 3, 3), 1, np.float64, False, "direct-nhwc"),
    ((64, 64, 14, 14), (256, 64, 3, 3), 1, np.float64, True, "im2col-split"),
    ((64, 16, 32, 32), (32, 16, 3, 3), 2, np.float32, True, "direct-nhwc"),  # stride 2
    ((64, 64, 32, 32), (128, 64, 3, 3), 2, np.float32, False, "direct-nhwc"),
    ((64, 16, 32, 32), (16, 16, 3, 3), 3, np.float32, True, "im2col-split"),  # stride 3
    ((64, 16, 32, 32), (16, 16, 1, 1), 2, np.float32, True, "im2col-split"),  # 1x1
    ((64, 16, 32, 32), (16, 16, 5, 5), 1, np.float32, True, "im2col-split"),  # 3x3 only
    ((64, 16, 32, 32), (24, 16, 3, 3), 1, np.float32, True, "winograd"),  # not 16-blocks
])
def test_auto_takes_direct_nhwc_where_it_was_measured_faster(x_shape, w_shape, stride, dtype,
                                                             training, expected, monkeypatch):
    monkeypatch.setattr(blocked, "wide_registers", lambda: True)    # measured on AVX-512
    choice = F.conv2d_algorithm(x_shape, w_shape, stride, 1, dtype=dtype,
                                need_backward=training)
    assert choice.name == expected, str(choice)
    if expected != "direct-nhwc":
        assert any(name == "direct-nhwc" and not ok for name, ok, _ in choice.considered)


@needs_numba
@pytest.mark.parametrize("x_shape, w_shape, expected", [
    ((64, 16, 32, 32), (16, 16, 3, 3), "direct-nhwc"),
    ((64, 32, 16, 16), (32, 32, 3, 3), "direct-nhwc"),
    ((64, 32, 14, 14), (64, 32, 3, 3), "im2col-split"),    # its 16 float64 sums would spill
    ((64, 64, 8, 8), (64, 64, 3, 3), "im2col-split"),
])
def test_without_avx512_float64_takes_direct_nhwc_up_to_32_channels(x_shape, w_shape, expected,
                                                                    monkeypatch):
    monkeypatch.setattr(blocked, "wide_registers", lambda: False)
    choice = F.conv2d_algorithm(x_shape, w_shape, 1, 1, dtype=np.float64)
    assert choice.name == expected, str(choice)
    if expected != "direct-nhwc":
        assert "float64 without AVX-512" in str(choice)


@needs_numba
@pytest.mark.parametrize("w_shape, training, expected", [
    ((128, 64, 3, 3), True, "im2col-split"),       # its weight gradient loses on AVX2
    ((128, 64, 3, 3), False, "direct-nhwc"),       # its forward still wins
    ((64, 32, 3, 3), True, "direct-nhwc"),
])
def test_without_avx512_stride_2_training_takes_direct_nhwc_up_to_64_channels(
        w_shape, training, expected, monkeypatch):
    monkeypatch.setattr(blocked, "wide_registers", lambda: False)
    choice = F.conv2d_algorithm((64, w_shape[1], 32, 32), w_shape, 2, 1, need_backward=training)
    assert choice.name == expected, str(choice)


def test_wide_registers_agrees_with_the_cpu_flags():
    if not os.path.exists("/proc/cpuinfo"):
        pytest.skip("no /proc/cpuinfo on this system")
    with open("/proc/cpuinfo") as f:
        flags = next((line for line in f if line.startswith("flags")), "").split()
    if not flags:
        pytest.skip("no /proc/cpuinfo flags line on this system")
    assert blocked.wide_registers() == ("avx512f" in flags)


@needs_numba
def test_forced_direct_nhwc_names_why_it_does_not_apply():
    x = np.zeros((1, 2, 6, 6), np.float32)
    with pytest.raises(ClearConvError, match=r"'direct-nhwc' does not apply.*groups 2"):
        F.conv2d_forward(x, np.zeros((16, 1, 3, 3), np.float32), groups=2,
                         algorithm="direct-nhwc")


def test_without_numba_direct_nhwc_says_it_needs_it_and_auto_passes_it_over():
    code = ("import numpy as np, clearconv.functional as F\n"
            "c = F.conv2d_algorithm((64, 16, 32, 32), (16, 16, 3, 3), padding=1)\n"
            "print(c.name, [why for name, ok, why in c.considered if name == 'direct-nhwc'])\n"
            "x, w = np.zeros((1, 16, 4, 4), np.float32), np.zeros((16, 16, 3, 3), np.float32)\n"
            "try:\n"
            "    F.conv2d_forward(x, w, algorithm='direct-nhwc')\n"
            "except Exception as e:\n"
            "    print(type(e).__name__, e)\n")
    env = {**os.environ, "CLEARCONV_JIT": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.startswith("im2col-split ['needs Numba"), out
    assert "ClearConvError" in out and "needs Numba" in out


@needs_numba
def test_the_avx2_blocks_match_the_reference_too(tmp_path):
    """The loops' blocks are 8 pixels (channels) wide on AVX-512 CPUs and 4 on AVX2 ones;
    the other width is compiled here in a fresh process (its own Numba cache) and checked."""
    code = ("import numpy as np\n"
            "from clearconv.kernels import blocked_loops as L\n"
            "L.PIXELS = L.CHANNELS = 12 - L.PIXELS\n"
            "from clearconv import functional as F, reference as R\n"
            "rng = np.random.default_rng(0)\n"
            "for c, o, w, s in [(5, 17, 3, 1), (9, 32, 6, 2), (4, 16, 13, 1), (3, 16, 19, 2)]:\n"
            "    x = rng.standard_normal((2, c, 5, w)); k = rng.standard_normal((o, c, 3, 3))\n"
            "    y, cache = F.conv2d_forward(x, k, None, s, 1, algorithm='direct-nhwc')\n"
            "    dy = rng.standard_normal(y.shape)\n"
            "    ry, rc = R.conv2d_forward(x, k, None, s, 1)\n"
            "    for a, b in zip((y, *F.conv2d_backward(dy, cache)[:2]),\n"
            "                    (ry, *R.conv2d_backward(dy, rc)[:2])):\n"
            "        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)\n"
            "print('ok', L.PIXELS)\n")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[0] == "ok" and out[1] in ("4", "8")


@needs_numba
def test_the_paired_blocks_match_the_reference_in_float64(tmp_path):
    """On AVX-512 CPUs the float32 loops make two blocks of 16 output channels at once
    (an odd last block alone); compiled here in a fresh process for float64 too, on any
    CPU, and held to the reference: 2, 3 and 4 blocks, rows wider and narrower than a
    pixel block, stride 1 and 2."""
    code = ("import numpy as np\n"
            "from clearconv.kernels import blocked_loops as L\n"
            "L.PAIRS, L.PAIR_ITEMSIZE = True, 8\n"
            "from clearconv import functional as F, reference as R\n"
            "rng = np.random.default_rng(1)\n"
            "for c, o, w, s in [(5, 32, 9, 1), (9, 33, 13, 1), (8, 48, 17, 2), (3, 64, 6, 1),\n"
            "                   (16, 64, 20, 2)]:\n"
            "    x = rng.standard_normal((2, c, 5, w)); k = rng.standard_normal((o, c, 3, 3))\n"
            "    b = rng.standard_normal(o)\n"
            "    y, cache = F.conv2d_forward(x, k, b, s, 1, algorithm='direct-nhwc')\n"
            "    dy = rng.standard_normal(y.shape)\n"
            "    ry, rc = R.conv2d_forward(x, k, b, s, 1)\n"
            "    for a, e in zip((y, *F.conv2d_backward(dy, cache)),\n"
            "                    (ry, *R.conv2d_backward(dy, rc))):\n"
            "        np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-12)\n"
            "print('ok', L.PIXELS)\n")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[0] == "ok" and out[1] in ("4", "8")
