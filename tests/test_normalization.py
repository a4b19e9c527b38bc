"""Batch normalisation (clearconv.functional.normalization and its compiled algorithm)
against its loop twin in reference.py (float64 1e-10, Hypothesis-drawn shapes, both
memory layouts, training and evaluation), PyTorch (forward, backward and the running
statistics; float32 1e-4, float64 1e-10) and finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import ATOL, FEW, PROPERTY, RTOL, assert_same, channels_last, mentions

from clearconv import functional as F
from clearconv import reference as R
from clearconv.errors import ClearConvError, ShapeError
from clearconv.gradcheck import gradcheck
from clearconv.kernels import jit, registry

ALGORITHMS = [a.name for a in registry.algorithms("batch_norm2d")
              if a.supports(F.normalization.BatchNormCall((2, 2, 2, 2), np.dtype(np.float64),
                                                          "NCHW", True))[0]]


class BNCase:
    """A batch-norm call: x, gamma, beta, running stats, mode, momentum, eps, dy."""

    def __init__(self, x, gamma, beta, rmean, rvar, training, momentum, eps, dy):
        self.x, self.gamma, self.beta = x, gamma, beta
        self.rmean, self.rvar = rmean, rvar
        self.training, self.momentum, self.eps, self.dy = training, momentum, eps, dy

    def args(self):
        """The op's arguments, with fresh copies of the running statistics."""
        rm = None if self.rmean is None else self.rmean.copy()
        rv = None if self.rvar is None else self.rvar.copy()
        return (self.x, self.gamma, self.beta, rm, rv, self.training, self.momentum, self.eps)


@st.composite
def bn_cases(draw, dtype=np.float64):
    n, c, h, w = (draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 5)),
                  draw(st.integers(1, 5)))
    training = draw(st.booleans())
    if training and n * h * w == 1:
        n = 2
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    # channel means up to 50 spreads away from 0: normalising subtracts numbers that
    # agree in their leading digits, which costs any algorithm ~log10(50) digits
    spread = draw(st.sampled_from([1e-2, 1.0, 10.0]))
    offset = spread * draw(st.sampled_from([0.0, 3.0, -50.0]))
    x = (rng.standard_normal((n, c, h, w)) * spread + offset).astype(dtype)
    last = draw(st.booleans())
    if last:
        x = channels_last(x)
    affine = draw(st.booleans())
    gamma = rng.standard_normal(c).astype(dtype) if affine else None
    beta = rng.standard_normal(c).astype(dtype) if affine and draw(st.booleans()) else None
    tracked = not training or draw(st.booleans())
    rmean = rng.standard_normal(c).astype(dtype) if tracked else None
    rvar = (rng.random(c) + 0.1).astype(dtype) if tracked else None
    momentum = draw(st.sampled_from([0.1, 0.5, 1.0, 0.0]))
    eps = draw(st.sampled_from([1e-5, 1e-3]))
    dy = rng.standard_normal(x.shape).astype(dtype)
    if last:
        dy = channels_last(dy)
    return BNCase(x, gamma, beta, rmean, rvar, training, momentum, eps, dy)


def run(module, case, **kwargs):
    """y, dx, dgamma, dbeta, running mean and var after one forward and backward."""
    args = case.args()
    y, cache = module.batch_norm2d_forward(*args, **kwargs)
    dx, dgamma, dbeta = module.batch_norm2d_backward(case.dy, cache)
    return y, dx, dgamma, dbeta, args[3], args[4]


def same_or_none(fast, ref):
    """assert_same (rtol 1e-10), with atol 1e-12 taken relative to the RMS of the
    reference (as in test_torch_conformance): an output entry near 0 carries the rounding
    of the terms that cancelled there, which scale with the whole output."""
    if ref is None:
        assert fast is None
        return
    assert fast.shape == ref.shape and fast.dtype == ref.dtype
    scale = max(1.0, float(np.sqrt(np.mean(np.square(ref)))) if ref.size else 1.0)
    np.testing.assert_allclose(fast, ref, rtol=RTOL, atol=ATOL * scale)


# ------------------------------------------------------------------- the loop reference
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@PROPERTY
@given(case=bn_cases())
def test_batch_norm2d_matches_reference(algorithm, case):
    fast = run(F, case, algorithm=algorithm)
    ref = run(R, case)
    for f, r in zip(fast, ref):
        same_or_none(f, r)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@FEW
@given(case=bn_cases())
def test_batch_norm2d_keeps_the_memory_layout_of_its_input(algorithm, case):
    y, dx, *_ = run(F, case, algorithm=algorithm)
    assert F.normalization.layout_of(y) == F.normalization.layout_of(case.x) or \
        algorithm == "numpy"
    assert dx.shape == case.x.shape


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@FEW
@given(case=bn_cases(), data=st.data())
def test_batch_norm2d_float32_stays_float32_and_close_to_float64(algorithm, case, data):
    f64 = run(F, case, algorithm=algorithm)
    case32 = BNCase(*(a.astype(np.float32) if isinstance(a, np.ndarray) else a
                      for a in (case.x, case.gamma, case.beta, case.rmean, case.rvar)),
                    case.training, case.momentum, case.eps, case.dy.astype(np.float32))
    f32 = run(F, case32, algorithm=algorithm)
    for a32, a64 in zip(f32, f64):
        if a64 is None:
            assert a32 is None
            continue
        # a channel of tiny spread amplifies float32 rounding by 1/std: compare relative
        # to the result's own scale
        scale = max(1.0, float(np.abs(a64).max(initial=0.0)))
        assert a32.dtype == np.float32
        np.testing.assert_allclose(a32, a64, rtol=2e-3, atol=2e-3 * scale)


@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 7)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm1d_matches_reference(shape, training):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape) * 3 + 1
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    dy = rng.standard_normal(shape)
    out = []
    for module in (F, R):
        rm, rv = np.zeros(3), np.ones(3)
        y, cache = module.batch_norm1d_forward(x, gamma, beta, rm, rv, training, 0.1, 1e-5)
        out.append((y, *module.batch_norm1d_backward(dy, cache), rm, rv))
    for f, r in zip(*out):
        assert f.shape == r.shape
        assert_same(f, r)
    assert out[0][0].shape == shape


def test_batch_norm2d_normalises_each_channel_to_mean_0_and_variance_1():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3, 4, 4)) * np.array([1, 10, 0.1])[:, None, None] + 5
    y, _ = F.batch_norm2d_forward(x, None, None, None, None, True, eps=1e-12)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, rtol=1e-9)


def test_running_statistics_take_the_unbiased_variance_and_momentum_1_keeps_the_batch():
    x = np.arange(8, dtype=np.float64).reshape(2, 1, 2, 2)
    rm, rv = np.zeros(1), np.ones(1)
    F.batch_norm2d_forward(x, None, None, rm, rv, True, momentum=1.0)
    assert rm[0] == pytest.approx(3.5)
    assert rv[0] == pytest.approx(np.var(np.arange(8), ddof=1))
    F.batch_norm2d_forward(x + 1, None, None, rm, rv, True, momentum=0.25)
    assert rm[0] == pytest.approx(0.75 * 3.5 + 0.25 * 4.5)


def test_evaluation_uses_the_running_statistics_and_updates_nothing():
    x = np.ones((2, 2, 3, 3))
    rm, rv = np.array([1.0, 0.0]), np.array([4.0, 1.0])
    y, _ = F.batch_norm2d_forward(x, np.array([2.0, 1.0]), np.array([0.0, 1.0]), rm, rv,
                                  False, eps=1e-12)
    np.testing.assert_allclose(y[:, 0], 0.0, atol=1e-12)
    np.testing.assert_allclose(y[:, 1], 2.0)
    np.testing.assert_array_equal(rm, [1.0, 0.0])


# --------------------------------------------------------------------- finite differences
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("last", [False, True])
def test_batch_norm2d_gradients_match_finite_differences(algorithm, training, last):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 2, 3, 2)) * 2 + 1
    x = channels_last(x) if last else x
    stats = (rng.standard_normal(2), rng.random(2) + 0.5)

    def forward(x, gamma, beta):
        # fresh running statistics each call: the forward updates them in place
        return F.batch_norm2d_forward(x, gamma, beta, stats[0].copy(), stats[1].copy(),
                                      training, algorithm=algorithm)

    result = gradcheck(forward, F.batch_norm2d_backward,
                       {"x": x, "gamma": rng.standard_normal(2), "beta": rng.standard_normal(2)},
                       rtol=1e-6, atol=1e-8)
    assert result.ok, str(result)


def test_batch_norm1d_gradients_match_finite_differences():
    rng = np.random.default_rng(4)
    result = gradcheck(lambda x, g, b: F.batch_norm1d_forward(x, g, b, None, None, True),
                       F.batch_norm1d_backward,
                       {"x": rng.standard_normal((5, 3)), "gamma": rng.standard_normal(3),
                        "beta": rng.standard_normal(3)}, rtol=1e-6, atol=1e-8)
    assert result.ok, str(result)


# ---------------------------------------------------------------------------- bad input
BAD = [
    ((2, 3, 4), {}, ShapeError, ("(N, C, H, W)", 3)),
    ((2, 3, 4, 4), {"gamma": np.ones(2)}, ShapeError, ("gamma", 3, 2)),
    ((2, 3, 4, 4), {"running_mean": np.zeros(3)}, ClearConvError, ("running_var",)),
    ((2, 3, 4, 4), {"training": False}, ClearConvError, ("running_mean",)),
    ((1, 3, 1, 1), {}, ClearConvError, ("more than one value", 1, 3)),
    ((2, 3, 4, 4), {"momentum": 1.5}, ClearConvError, ("momentum", 1.5)),
    ((2, 3, 4, 4), {"eps": 0.0}, ClearConvError, ("eps",)),
    ((2, 3, 4, 4), {"eps": "small"}, ClearConvError, ("eps", "small")),
    ((2, 3, 4, 4), {"momentum": None}, ClearConvError, ("momentum", "num_batches_tracked")),
    ((2, 3, 4, 4), {"running_mean": np.zeros(4), "running_var": np.ones(4)}, ShapeError,
     ("running_mean", 3)),
]


@pytest.mark.parametrize("module", [F, R], ids=["functional", "reference"])
@pytest.mark.parametrize("shape, kwargs, error, numbers", BAD)
def test_bad_input_raises_a_clear_error_naming_the_values(module, shape, kwargs, error, numbers):
    args = {"x": np.zeros(shape), "gamma": None, "beta": None, "running_mean": None,
            "running_var": None, "training": True, **kwargs}
    with pytest.raises(error, match=mentions(*numbers)):
        module.batch_norm2d_forward(**args)


def test_batch_norm1d_refuses_4d_input():
    with pytest.raises(ShapeError, match=mentions("(N, C)", "(N, C, L)")):
        F.batch_norm1d_forward(np.zeros((2, 3, 4, 4)), None, None, None, None, True)


def test_backward_refuses_a_gradient_of_another_shape():
    _, cache = F.batch_norm2d_forward(np.ones((2, 3, 2, 2)), None, None, None, None, True)
    with pytest.raises(ShapeError, match=mentions(3)):
        F.batch_norm2d_backward(np.ones((2, 4, 2, 2)), cache)


@pytest.mark.skipif(not jit.AVAILABLE, reason="Numba absent or CLEARCONV_JIT=0: the "
                    "compiled batch norm is not registered as applying")
def test_auto_takes_the_compiled_algorithm_and_the_numpy_one_for_strided_views():
    x = np.ones((2, 3, 4, 4), np.float32)
    assert F.batch_norm2d_forward(x, None, None, None, None, True)[1].algorithm == "compiled"
    view = x[:, :, ::2]
    assert F.batch_norm2d_forward(view, None, None, None, None, True)[1].algorithm == "numpy"


# ------------------------------------------------------------------------------- PyTorch
torch = pytest.importorskip("torch", reason="PyTorch not installed: batch norm not "
                                            "compared with torch.nn.functional.batch_norm")

TOL = {np.float32: (1e-4, 1e-4), np.float64: (1e-10, 1e-12)}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, layout", [
    ((4, 3, 5, 5), "NCHW"), ((16, 8, 7, 9), "NCHW"), ((2, 3, 1, 1), "NCHW"),
    ((4, 3, 5, 5), "channels-last"), ((16, 8, 7, 9), "channels-last"),
    ((6, 4), "NCHW"), ((5, 2, 9), "NCHW")])
@pytest.mark.parametrize("training, momentum", [(True, 0.1), (True, 0.7), (False, 0.1)])
def test_batch_norm_matches_torch(algorithm, dtype, shape, training, momentum, layout):
    rng = np.random.default_rng(sum(shape))
    c = shape[1]
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    if layout == "channels-last":
        x = channels_last(x)
    gamma, beta = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    rm, rv = rng.standard_normal(c).astype(dtype), (rng.random(c) + 0.5).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    ours_rm, ours_rv = rm.copy(), rv.copy()
    op = (F.batch_norm2d_forward, F.batch_norm2d_backward) if len(shape) == 4 else \
        (F.batch_norm1d_forward, F.batch_norm1d_backward)
    y, cache = op[0](x, gamma, beta, ours_rm, ours_rv, training, momentum, 1e-5,
                     algorithm=algorithm)
    dx, dgamma, dbeta = op[1](dy, cache)

    xt, gt, bt = (torch.tensor(np.ascontiguousarray(a), requires_grad=True)
                  for a in (x, gamma, beta))
    rmt, rvt = torch.tensor(rm), torch.tensor(rv)
    yt = torch.nn.functional.batch_norm(xt, rmt, rvt, gt, bt, training, momentum, 1e-5)
    yt.backward(torch.tensor(dy))
    rtol, atol = TOL[dtype]
    for ours, theirs, what in [(y, yt, "y"), (dx, xt.grad, "dx"), (dgamma, gt.grad, "dgamma"),
                               (dbeta, bt.grad, "dbeta"), (ours_rm, rmt, "running_mean"),
                               (ours_rv, rvt, "running_var")]:
        theirs = theirs.detach().numpy()
        assert ours.dtype == dtype, what
        scale = max(1.0, float(np.sqrt(np.mean(np.square(theirs, dtype=np.float64)))))
        np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol * scale, err_msg=what)


def test_batch_norm_float32_on_a_large_batch_matches_torch():
    """64x64x32x32 float32, the benchmark's size: float64 sums keep 1e-4."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((64, 64, 32, 32)) * 2 + 3).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    gamma, beta = np.ones(64, np.float32) * 1.5, np.zeros(64, np.float32)
    y, cache = F.batch_norm2d_forward(x, gamma, beta, None, None, True)
    dx, dgamma, _ = F.batch_norm2d_backward(dy, cache)
    xt, gt = torch.tensor(x, requires_grad=True), torch.tensor(gamma, requires_grad=True)
    yt = torch.nn.functional.batch_norm(xt, None, None, gt, torch.tensor(beta), True)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dgamma, gt.grad.numpy(), rtol=1e-4, atol=1e-4 * 1024)



# ------------------------------------------------------ a batch split between processes
def test_two_pieces_with_summed_statistics_equal_the_whole_batch():
    """What synchronised batch norm computes, in one process: each piece's sums added up
    give the whole batch's statistics, and the weighted gradient sums its dx (float64)."""
    from clearconv.functional.normalization import batch_norm2d_sums

    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 3, 4, 5)) * 2 + 1
    dy = rng.standard_normal(x.shape)
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    y_all, cache_all = F.batch_norm2d_forward(x, gamma, beta, None, None, True)
    dx_all, dgamma_all, dbeta_all = F.batch_norm2d_backward(dy, cache_all)

    pieces = [slice(0, 4), slice(4, 6)]
    shift = np.full(3, 0.5)
    sums = [batch_norm2d_sums(x[p], shift) for p in pieces]
    total = sum(s[0] for s in sums)
    mean_shifted = sum(s[1] for s in sums) / total
    mean = shift + mean_shifted
    var = sum(s[2] for s in sums) / total - mean_shifted ** 2
    shares = [s[0] / total for s in sums]
    caches = []
    for p in pieces:
        y, cache = F.batch_norm2d_forward(x[p], gamma, beta, None, None, True,
                                          algorithm="numpy", batch_stats=(mean, var))
        assert_same(y, y_all[p])
        caches.append(cache)
    # each piece back-propagates its own mean loss's gradient: the whole one / its share
    local_dy = [dy[p] / w for p, w in zip(pieces, shares)]
    local = [(g.sum(axis=(0, 2, 3)), (g * c.saved).sum(axis=(0, 2, 3)))
             for g, c in zip(local_dy, caches)]
    totals = tuple(sum(w * part[k] for w, part in zip(shares, local)) for k in range(2))
    dgamma, dbeta = 0, 0
    for p, w, g, c in zip(pieces, shares, local_dy, caches):
        dx, dg, db = F.batch_norm2d_backward(g, c, reduce=lambda a, b: totals)
        assert_same(w * dx, dx_all[p])          # the gradient average weights it by w
        dgamma, dbeta = dgamma + w * dg, dbeta + w * db
    np.testing.assert_allclose(dgamma, dgamma_all, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dbeta, dbeta_all, rtol=1e-10, atol=1e-12)
