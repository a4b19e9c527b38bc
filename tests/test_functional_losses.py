"""The losses of functional/losses.py: against their loop twins in reference.py
(float64, 1e-10, Hypothesis-drawn shapes and options), against torch.nn (float32 1e-4,
float64 1e-10, forward and backward), against finite differences, and their errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import PROPERTY, assert_same

from clearconv import functional as F
from clearconv import reference as R
from clearconv.errors import ClearConvError, ShapeError
from clearconv.gradcheck import gradcheck

try:
    import torch
except ImportError:  # pragma: no cover - the conformance tests skip
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch not installed: conformance "
                                                       "with torch.nn losses not checked")
DTYPES = [np.float32, np.float64]
TOL = {np.dtype(np.float32): (1e-4, 1e-5), np.dtype(np.float64): (1e-10, 1e-12)}


def close(ours, theirs, dtype, what):
    theirs = theirs.detach().numpy() if torch is not None and isinstance(theirs, torch.Tensor) \
        else np.asarray(theirs)
    ours = np.asarray(ours)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs {theirs.shape}"
    rtol, atol = TOL[np.dtype(dtype)]
    scale = max(1.0, float(np.sqrt(np.mean(np.square(theirs, dtype=np.float64)))))
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol * scale, err_msg=what)


# ------------------------------------------------------------------- drawn cases

@st.composite
def ce_cases(draw):
    """Logits (N, C) or (N, C, d1[, d2]) with class-index or probability targets and every
    option of torch.nn.CrossEntropyLoss."""
    n, c = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    extra = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, c, *extra)) * draw(st.sampled_from([0.5, 3.0, 30.0]))
    probabilities = draw(st.booleans())
    kwargs = {"reduction": draw(st.sampled_from(["mean", "sum", "none"])),
              "label_smoothing": draw(st.sampled_from([0.0, 0.1, 1.0, 0.37]))}
    if draw(st.booleans()):
        kwargs["weight"] = rng.uniform(0.1, 3.0, c)
    if probabilities:
        t = rng.random(z.shape)
        target = t / t.sum(axis=1, keepdims=True)
    else:
        target = rng.integers(0, c, (n, *extra))
        if draw(st.booleans()):
            ignore = draw(st.integers(0, c - 1))
            kwargs["ignore_index"] = ignore
            # keep one prediction that counts, unless all are to be ignored on purpose
            if not draw(st.booleans()) and (target == ignore).all() and c > 1:
                target.reshape(-1)[0] = (ignore + 1) % c
    return z, target, kwargs


@st.composite
def elementwise_cases(draw):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=4)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal(shape) * draw(st.sampled_from([1.0, 5.0, 40.0]))
    reduction = draw(st.sampled_from(["mean", "sum", "none"]))
    kwargs = {"reduction": reduction}
    if draw(st.booleans()):
        kwargs["weight"] = rng.uniform(0.1, 2.0, shape[-1:] if draw(st.booleans()) else shape)
    if draw(st.booleans()):
        kwargs["pos_weight"] = rng.uniform(0.1, 4.0, shape[-1:])
    return x, rng.random(shape), kwargs


def d_out_for(loss, seed=1):
    if isinstance(loss, np.ndarray):
        return np.random.default_rng(seed).standard_normal(loss.shape).astype(loss.dtype)
    return 0.7


def assert_loss_same(fast, ref):
    if isinstance(ref, np.ndarray):
        assert_same(fast, ref)
    elif np.isnan(ref):
        assert np.isnan(fast)
    else:
        np.testing.assert_allclose(fast, ref, rtol=1e-10, atol=1e-12)


@PROPERTY
@given(ce_cases())
def test_cross_entropy_matches_reference(case):
    z, target, kwargs = case
    out, cache = F.cross_entropy_forward(z, target, **kwargs)
    ref, ref_cache = R.cross_entropy_forward(z, target, **kwargs)
    assert_loss_same(out, ref)
    d = d_out_for(out)
    assert_same(F.cross_entropy_backward(d, cache), R.cross_entropy_backward(d, ref_cache))


@PROPERTY
@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.integers(0, 3),
       st.integers(0, 2**32 - 1))
def test_log_softmax_matches_reference(shape, axis, seed):
    axis = axis % len(shape)
    z = np.random.default_rng(seed).standard_normal(shape) * 10
    out, cache = F.log_softmax_forward(z, axis)
    ref, ref_cache = R.log_softmax_forward(z, axis)
    assert_same(out, ref)
    d = np.random.default_rng(seed + 1).standard_normal(shape)
    assert_same(F.log_softmax_backward(d, cache), R.log_softmax_backward(d, ref_cache))


@PROPERTY
@given(elementwise_cases())
def test_mse_and_bce_with_logits_match_reference(case):
    x, t, kwargs = case
    out, cache = F.binary_cross_entropy_with_logits_forward(x, t, **kwargs)
    ref, ref_cache = R.binary_cross_entropy_with_logits_forward(x, t, **kwargs)
    assert_loss_same(out, ref)
    d = d_out_for(out)
    assert_same(F.binary_cross_entropy_with_logits_backward(d, cache),
                R.binary_cross_entropy_with_logits_backward(d, ref_cache))
    reduction = kwargs["reduction"]
    out, cache = F.mse_forward(x, t, reduction)
    ref, ref_cache = R.mse_forward(x, t, reduction)
    assert_loss_same(out, ref)
    assert_same(F.mse_backward(d, cache), R.mse_backward(d, ref_cache))


def test_the_plain_cross_entropy_is_the_softmax_cross_entropy_of_fit():
    rng = np.random.default_rng(3)
    z, y = rng.standard_normal((9, 4)), rng.integers(0, 4, 9)
    plain, plain_cache = F.softmax_cross_entropy_forward(z, y)
    out, cache = F.cross_entropy_forward(z, y)
    np.testing.assert_allclose(out, plain, rtol=1e-14)
    np.testing.assert_allclose(F.cross_entropy_backward(1.0, cache),
                               F.softmax_cross_entropy_backward(1.0, plain_cache), rtol=1e-14)


def test_every_target_ignored_gives_a_nan_loss_and_zero_gradients_as_torch():
    z = np.zeros((2, 3))
    out, cache = F.cross_entropy_forward(z, np.array([1, 1]), ignore_index=1)
    assert np.isnan(out)
    assert (F.cross_entropy_backward(1.0, cache) == 0).all()
    assert np.isnan(R.cross_entropy_forward(z, np.array([1, 1]), ignore_index=1)[0])
    assert F.cross_entropy_forward(z, np.array([1, 1]), ignore_index=1, reduction="sum")[0] == 0


def test_large_logits_stay_finite():
    z = np.array([[1e4, -1e4, 0.0]], np.float32)
    loss, cache = F.cross_entropy_forward(z, np.array([1]), label_smoothing=0.2)
    assert np.isfinite(loss) and np.isfinite(F.cross_entropy_backward(1.0, cache)).all()
    x = np.array([-1e4, 1e4, 80.0, -80.0], np.float32)
    bce, bcache = F.binary_cross_entropy_with_logits_forward(x, np.array([1.0, 0.0, 1.0, 0.0]),
                                                             reduction="none")
    np.testing.assert_allclose(bce, [1e4, 1e4, 0.0, 0.0], atol=1e-6)
    assert np.isfinite(F.binary_cross_entropy_with_logits_backward(1.0, bcache)).all()


# ------------------------------------------------------------------- finite differences

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("probabilities", [False, True])
def test_cross_entropy_gradients(reduction, probabilities):
    rng = np.random.default_rng(5)
    z = rng.standard_normal((3, 4, 2)) * 2
    if probabilities:
        t = rng.random(z.shape)
        target, kwargs = t / t.sum(axis=1, keepdims=True), {}
    else:
        target, kwargs = np.array([[0, 3], [2, 2], [1, 0]]), {"ignore_index": 2}
    kwargs.update(weight=rng.uniform(0.5, 2.0, 4), label_smoothing=0.1, reduction=reduction)
    result = gradcheck(lambda z: F.cross_entropy_forward(z, target, **kwargs),
                       F.cross_entropy_backward, {"logits": z})
    assert result.ok, str(result)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_bce_and_log_softmax_gradients(reduction):
    rng = np.random.default_rng(6)
    x, t = rng.standard_normal((3, 5)) * 3, rng.random((3, 5))
    weight = rng.uniform(size=5)
    checks = [
        gradcheck(lambda x: F.mse_forward(x, t, reduction), F.mse_backward, {"x": x}),
        gradcheck(lambda x: F.binary_cross_entropy_with_logits_forward(
            x, t, weight=weight, pos_weight=np.arange(1.0, 6.0),
            reduction=reduction), F.binary_cross_entropy_with_logits_backward, {"x": x}),
        gradcheck(lambda x: F.log_softmax_forward(x, axis=1), F.log_softmax_backward, {"x": x}),
    ]
    for result in checks:
        assert result.ok, str(result)


# ------------------------------------------------------------------- PyTorch

def torch_check(ours_forward, ours_backward, torch_loss, x, dtype):
    x = np.asarray(x, dtype)
    out, cache = ours_forward(x)
    xt = torch.tensor(x, requires_grad=True)
    out_t = torch_loss(xt)
    if isinstance(out, np.ndarray):
        assert out.dtype == np.dtype(dtype)
    close(out, out_t, dtype, "forward")
    d = d_out_for(out)
    d = np.asarray(d, dtype) if isinstance(d, np.ndarray) else d
    grad = ours_backward(d, cache)
    out_t.backward(torch.tensor(d, dtype=out_t.dtype))
    assert grad.dtype == np.dtype(dtype)
    close(grad, xt.grad, dtype, "gradient")


CE_CASES = [
    ((8, 10), "index", {}),
    ((6, 4), "index", {"reduction": "sum", "label_smoothing": 0.1}),
    ((6, 4), "index", {"weight": True, "ignore_index": 2, "label_smoothing": 0.2}),
    ((6, 4), "index", {"weight": True, "reduction": "none", "ignore_index": 0}),
    ((3, 5, 4, 2), "index", {"weight": True, "label_smoothing": 0.3, "ignore_index": 1}),
    ((3, 5, 4), "index", {"reduction": "none", "label_smoothing": 0.05}),
    ((6, 4), "probabilities", {"weight": True, "label_smoothing": 0.1}),
    ((2, 3, 4, 4), "probabilities", {"reduction": "sum"}),
    ((5, 3), "probabilities", {"reduction": "none", "weight": True}),
]


@needs_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, kind, options", CE_CASES)
def test_cross_entropy_matches_torch(shape, kind, options, dtype):
    rng = np.random.default_rng(sum(shape))
    c = shape[1]
    kwargs = dict(options)
    if kwargs.pop("weight", False):
        kwargs["weight"] = rng.uniform(0.2, 3.0, c).astype(dtype)
    if kind == "index":
        target = rng.integers(0, c, (shape[0], *shape[2:]))
        target_t = torch.tensor(target)
    else:
        t = rng.random(shape)
        target = (t / t.sum(axis=1, keepdims=True)).astype(dtype)
        target_t = torch.tensor(target)
    torch_kwargs = {**kwargs, **({"weight": torch.tensor(kwargs["weight"])}
                                 if "weight" in kwargs else {})}
    loss_t = torch.nn.CrossEntropyLoss(**torch_kwargs)
    torch_check(lambda z: F.cross_entropy_forward(z, target, **kwargs),
                F.cross_entropy_backward, lambda zt: loss_t(zt, target_t),
                rng.standard_normal(shape) * 3, dtype)


@needs_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_matches_torch(reduction, dtype):
    rng = np.random.default_rng(2)
    t = rng.standard_normal((4, 3, 5, 5)).astype(dtype)
    torch_check(lambda x: F.mse_forward(x, t, reduction), F.mse_backward,
                lambda xt: torch.nn.MSELoss(reduction=reduction)(xt, torch.tensor(t)),
                rng.standard_normal(t.shape), dtype)


@needs_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_bce_with_logits_matches_torch(reduction, weighted, dtype):
    rng = np.random.default_rng(4)
    t = rng.random((6, 4)).astype(dtype)
    kwargs = {"weight": rng.uniform(0.1, 2, 4).astype(dtype),
              "pos_weight": rng.uniform(0.5, 3, 4).astype(dtype)} if weighted else {}
    loss_t = torch.nn.BCEWithLogitsLoss(reduction=reduction,
                                        **{k: torch.tensor(v) for k, v in kwargs.items()})
    torch_check(lambda x: F.binary_cross_entropy_with_logits_forward(x, t, reduction=reduction,
                                                                     **kwargs),
                F.binary_cross_entropy_with_logits_backward,
                lambda xt: loss_t(xt, torch.tensor(t)), rng.standard_normal(t.shape) * 4, dtype)


@needs_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [1, -1])
def test_log_softmax_matches_torch(axis, dtype):
    torch_check(lambda z: F.log_softmax_forward(z, axis), F.log_softmax_backward,
                lambda zt: torch.log_softmax(zt, dim=axis),
                np.random.default_rng(7).standard_normal((4, 6, 3)) * 5, dtype)


# ------------------------------------------------------------------- bad input

@pytest.mark.parametrize("call, match", [
    (lambda: F.cross_entropy_forward(np.zeros((2, 3)), np.array([0, 3])), r"\[0, 3\).*\[3\]"),
    (lambda: F.cross_entropy_forward(np.zeros((2, 3)), np.array([0])), r"\(2,\)"),
    (lambda: F.cross_entropy_forward(np.zeros((2, 3)), np.array([0, 1]), weight=np.ones(2)),
     r"\(3,\)"),
    (lambda: F.cross_entropy_forward(np.zeros((2, 3)), np.array([0, 1]), reduction="avg"),
     "'avg'"),
    (lambda: F.cross_entropy_forward(np.zeros((2, 3)), np.array([0, 1]), label_smoothing=1.5),
     "1.5"),
    (lambda: F.cross_entropy_forward(np.zeros((2, 3)), np.array([0.5, 1])), "integers"),
    (lambda: F.cross_entropy_forward(np.zeros((2, 3)), np.zeros((2, 3)), ignore_index=0),
     "ignore_index=0"),
    (lambda: F.cross_entropy_forward(np.zeros(3), np.array([0])), r"\(3,\)"),
    (lambda: F.mse_forward(np.zeros((2, 3)), np.zeros((3, 2))), r"\(2, 3\).*\(3, 2\)"),
    (lambda: F.binary_cross_entropy_with_logits_forward(np.zeros((2, 3)), np.zeros((2, 3)),
                                                        pos_weight=np.ones(2)), "pos_weight"),
])
def test_bad_input_raises_a_clear_error(call, match):
    with pytest.raises(ClearConvError, match=match):
        call()


def test_the_reference_refuses_the_same_input():
    with pytest.raises(ShapeError, match=r"\[0, 3\)"):
        R.cross_entropy_forward(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ShapeError, match="pos_weight"):
        R.binary_cross_entropy_with_logits_forward(np.zeros((2, 3)), np.zeros((2, 3)),
                                                   pos_weight=np.ones(2))
