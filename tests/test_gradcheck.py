"""Finite-difference checks (float64) of every functional op, and of the checker itself."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest

from clearconv import functional as F
from clearconv.errors import ClearConvError
from clearconv.gradcheck import (
    GradcheckError,
    GradcheckResult,
    check_model_gradients,
    gradcheck,
    numerical_gradient,
    numerical_gradient_array,
)
from clearconv.layers.parameter import Parameter


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def tie_free(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A shuffled linspace: distinct values at least 2/size apart (>> eps), no max-pool ties."""
    size = int(np.prod(shape))
    return rng(seed).permutation(np.linspace(-1.0, 1.0, size)).reshape(shape)


def away_from_zero(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Values with |v| >= 0.1, so that no finite-difference step crosses a ReLU kink."""
    u = rng(seed).standard_normal(shape)
    return np.sign(u) * (0.1 + np.abs(u))


def channels_last(a: np.ndarray) -> np.ndarray:
    """The same NCHW values stored NHWC in memory (what conv2d_forward returns)."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def assert_passes(result: GradcheckResult) -> None:
    assert isinstance(result, GradcheckResult)
    assert result.ok, str(result)


# ----------------------------------------------------------------------------- the checker

def test_docstring_examples_run():
    # the module itself: ``clearconv.gradcheck`` is the function, re-exported by the package
    module = importlib.import_module("clearconv.gradcheck")
    failed, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert tried >= 4 and failed == 0


def test_numerical_gradient_of_a_known_function_and_x_is_restored():
    x = rng().standard_normal((3, 4))
    before = x.copy()
    g = numerical_gradient(lambda a: float(np.sum(np.sin(a)) + a[0, 0] * a[1, 1]), x)
    expected = np.cos(before)
    expected[0, 0] += before[1, 1]
    expected[1, 1] += before[0, 0]
    np.testing.assert_allclose(g, expected, rtol=1e-8, atol=1e-9)
    assert np.array_equal(x, before)


def test_numerical_gradient_array_is_the_gradient_of_sum_f_times_dout():
    x = rng(1).standard_normal((2, 5))
    before = x.copy()
    dout = rng(2).standard_normal((2, 5))
    g = numerical_gradient_array(np.exp, x, dout)
    np.testing.assert_allclose(g, np.exp(before) * dout, rtol=1e-8, atol=1e-10)
    assert np.array_equal(x, before)


def test_numerical_gradient_restores_x_when_f_raises():
    x = np.array([1.0, 2.0])

    def f(a: np.ndarray) -> float:
        if a[0] != 1.0:
            raise RuntimeError("boom")
        return float(a.sum())

    with pytest.raises(RuntimeError):
        numerical_gradient(f, x)
    assert x.tolist() == [1.0, 2.0]


def test_numerical_gradient_refuses_non_float_arrays():
    with pytest.raises(ClearConvError, match="int64"):
        numerical_gradient(lambda a: float(a.sum()), np.arange(3))


def conv_case(seed: int = 0) -> dict[str, np.ndarray]:
    r = rng(seed)
    return {"x": r.standard_normal((2, 3, 5, 5)), "w": r.standard_normal((4, 3, 3, 3)),
            "b": r.standard_normal(4)}


def conv_fwd(x, w, b):
    return F.conv2d_forward(x, w, b, stride=2, padding=1)


def test_gradcheck_detects_a_gradient_one_percent_too_large():
    def wrong_backward(dy, cache):
        dx, dw, db = F.conv2d_backward(dy, cache)
        return dx, dw * 1.01, db

    result = gradcheck(conv_fwd, wrong_backward, conv_case())
    assert not result.ok
    assert result["x"].ok and result["b"].ok and not result["w"].ok
    assert result.max_rel_errors["w"] == pytest.approx(0.01 / 1.01, rel=1e-3)
    assert "FAIL w" in str(result) and "gradcheck FAILED" in str(result)


def test_gradcheck_detects_a_single_wrong_entry_and_names_it():
    def wrong_backward(dy, cache):
        dx, dw, db = F.conv2d_backward(dy, cache)
        dx = dx.copy()
        dx[1, 2, 3, 4] += 1e-3
        return dx, dw, db

    result = gradcheck(conv_fwd, wrong_backward, conv_case())
    assert not result.ok
    assert result["x"].worst_index == (1, 2, 3, 4)
    assert result["x"].max_abs_error == pytest.approx(1e-3, rel=1e-4)
    with pytest.raises(GradcheckError, match=r"'x'.*\(1, 2, 3, 4\)"):
        gradcheck(conv_fwd, wrong_backward, conv_case(), raise_on_failure=True)


def test_gradcheck_error_is_a_clearconv_error():
    assert issubclass(GradcheckError, ClearConvError)
    assert issubclass(GradcheckError, ValueError)


def test_gradcheck_detects_a_transposed_gradient():
    x = rng().standard_normal((3, 3))
    result = gradcheck(lambda a: (a * np.arange(9.0).reshape(3, 3), None),
                       lambda dy, _: dy * np.arange(9.0).reshape(3, 3).T, {"a": x})
    assert not result.ok


def test_gradcheck_reports_a_wrong_gradient_shape():
    with pytest.raises(GradcheckError, match=r"'x'.*\(3,\).*\(2, 3\)"):
        gradcheck(lambda x: (2 * x, None), lambda dy, _: dy[0], {"x": np.ones((2, 3))})


def test_gradcheck_needs_one_gradient_per_input():
    with pytest.raises(ClearConvError, match="1 gradient.*2 input"):
        gradcheck(lambda x, y: (x * y, (x, y)), lambda dy, c: dy * c[1],
                  [np.ones(3), np.ones(3)])


def test_gradcheck_result_api_and_sequence_inputs():
    r = rng(4)
    result = gradcheck(lambda x, w: F.linear_forward(x, w), F.linear_backward,
                       [r.standard_normal((3, 4)), r.standard_normal((2, 4))])
    assert result.ok and bool(result)
    assert [c.name for c in result.checks] == ["input0", "input1"]
    assert set(result.max_abs_errors) == {"input0", "input1"}
    assert result["input1"].checked == 8 and result["input1"].shape == (2, 4)
    assert all(e < 1e-7 for e in result.max_abs_errors.values())
    assert "gradcheck passed" in str(result) and "input1: shape (2, 4)" in str(result)
    with pytest.raises(KeyError, match="nope"):
        result["nope"]


def test_gradcheck_none_gradient_skips_the_input():
    r = rng(5)
    result = gradcheck(lambda x, w: F.conv2d_forward(x, w),
                       lambda dy, cache: F.conv2d_backward(dy, cache, input_grad=False),
                       {"x": r.standard_normal((1, 2, 4, 4)), "w": r.standard_normal((3, 2, 2, 2))})
    assert_passes(result)
    assert result.skipped == ("x",) and [c.name for c in result.checks] == ["w"]
    assert "skip x" in str(result)


def test_gradcheck_casts_inputs_to_float64_and_leaves_callers_arrays_alone():
    x32 = rng(6).standard_normal((2, 3)).astype(np.float32)
    seen = []

    def fwd(x):
        seen.append(x.dtype)
        return np.tanh(x), np.tanh(x)

    before = x32.copy()
    assert_passes(gradcheck(fwd, F.tanh_backward, {"x": x32}))
    assert set(seen) == {np.dtype(np.float64)}
    assert np.array_equal(x32, before)


def test_gradcheck_sampled_entries_are_reproducible():
    case = conv_case(7)
    a = gradcheck(conv_fwd, F.conv2d_backward, case, max_checks_per_input=5, seed=3)
    b = gradcheck(conv_fwd, F.conv2d_backward, case, max_checks_per_input=5, seed=3)
    assert a.ok and [c.checked for c in a.checks] == [5, 5, 4]
    assert a.max_abs_errors == b.max_abs_errors


# --------------------------------------------------------------- check_model_gradients

class TinyModel:
    """A duck-typed model (logits = x W^T + b, softmax cross-entropy) for the checker."""

    def __init__(self, dtype: str = "float64", bug: float = 1.0) -> None:
        r = rng(8)
        self.w = Parameter(r.standard_normal((4, 6)).astype(dtype), "0.weight")
        self.b = Parameter(r.standard_normal(4).astype(dtype), "0.bias", decay=False)
        self.bug = bug

    def parameters(self) -> list[Parameter]:
        return [self.w, self.b]

    def loss(self, x, y) -> float:
        return F.softmax_cross_entropy_forward(F.linear_forward(x, self.w.value,
                                                                self.b.value)[0], y)[0]

    def loss_and_backward(self, x, y) -> float:
        z, lin = F.linear_forward(x, self.w.value, self.b.value)
        loss, ce = F.softmax_cross_entropy_forward(z, y)
        _, dw, db = F.linear_backward(F.softmax_cross_entropy_backward(1.0, ce), lin)
        self.w.grad += dw * self.bug
        self.b.grad += db
        return loss


def test_check_model_gradients_on_a_duck_typed_model():
    model = TinyModel()
    before = model.w.value.copy()
    x, y = rng(9).standard_normal((5, 6)), np.array([0, 1, 2, 3, 1])
    result = check_model_gradients(model, x, y, max_checks_per_param=10)
    assert_passes(result)
    assert [(c.name, c.checked) for c in result.checks] == [("0.weight", 10), ("0.bias", 4)]
    assert np.array_equal(model.w.value, before)
    # stale gradients are cleared before the backward pass
    assert check_model_gradients(model, x, y).ok


def test_check_model_gradients_catches_a_broken_model():
    x, y = rng(9).standard_normal((5, 6)), np.array([0, 1, 2, 3, 1])
    result = check_model_gradients(TinyModel(bug=1.02), x, y)
    assert not result.ok and result["0.bias"].ok and not result["0.weight"].ok
    with pytest.raises(GradcheckError, match="0.weight"):
        check_model_gradients(TinyModel(bug=1.02), x, y, raise_on_failure=True)


def test_check_model_gradients_refuses_a_float32_model():
    with pytest.raises(ClearConvError, match="float64.*0.weight.*float32"):
        check_model_gradients(TinyModel("float32"), np.zeros((1, 6)), np.array([0]))


# ------------------------------------------------------------------------------- conv2d

CONV_CASES = [
    # x shape, w shape, stride, padding, dilation, bias
    ((2, 3, 5, 5), (4, 3, 3, 3), 1, 0, 1, True),
    ((2, 3, 5, 5), (4, 3, 3, 3), 1, 1, 1, False),
    ((2, 2, 7, 6), (3, 2, 3, 3), 2, 1, 1, True),
    ((1, 2, 7, 7), (2, 2, 3, 3), 3, 2, 1, True),
    ((1, 2, 6, 7), (3, 2, 3, 2), (2, 1), (1, 0), 1, True),
    ((2, 2, 5, 6), (3, 2, 3, 3), 1, ((0, 1), (2, 1)), 1, True),
    ((1, 2, 6, 5), (2, 2, 2, 3), 2, ((1, 0), (0, 2)), 1, False),
    ((2, 2, 5, 6), (3, 2, 4, 2), 1, "same", 1, True),        # even kernels: extra at end
    ((1, 3, 6, 6), (2, 3, 2, 2), 1, "same", 1, False),
    ((2, 2, 7, 6), (3, 2, 3, 3), 2, "same", 1, True),        # TF-style 'same', stride 2
    ((1, 2, 8, 7), (2, 2, 4, 4), 2, "same", 1, True),
    ((1, 2, 7, 7), (2, 2, 3, 3), 1, 2, 2, True),             # dilation
    ((1, 2, 9, 8), (2, 2, 3, 2), 2, "same", (2, 3), False),
    ((1, 2, 7, 7), (2, 2, 2, 2), 1, "valid", 2, True),
    ((2, 3, 4, 4), (5, 3, 1, 1), 1, 0, 1, True),             # 1x1
    ((1, 2, 6, 6), (3, 2, 2, 2), 2, 0, 1, True),             # even kernel, stride 2
    ((1, 1, 5, 5), (2, 1, 5, 5), 1, 0, 1, True),             # kernel covers the input
    ((2, 5, 5, 5), (3, 5, 3, 3), 1, 1, 1, True),             # C_in >= 4: the other im2col
    ((1, 6, 6, 5), (4, 6, 3, 2), 2, ((1, 0), (1, 1)), 1, False),
    ((1, 4, 6, 6), (2, 4, 2, 2), 1, "same", 2, True),
]


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, dilation, bias", CONV_CASES)
def test_conv2d_gradients(x_shape, w_shape, stride, padding, dilation, bias):
    r = rng(sum(x_shape) + sum(w_shape))
    inputs = {"x": r.standard_normal(x_shape), "w": r.standard_normal(w_shape)}
    if bias:
        inputs["b"] = r.standard_normal(w_shape[0])

    def forward(x, w, b=None):
        return F.conv2d_forward(x, w, b, stride=stride, padding=padding, dilation=dilation)

    assert_passes(gradcheck(forward, F.conv2d_backward, inputs))


@pytest.mark.parametrize("c_in", [2, 5])
def test_conv2d_gradients_with_channels_last_input_and_upstream_gradient(c_in):
    r = rng(c_in)
    inputs = {"x": channels_last(r.standard_normal((2, c_in, 5, 6))),
              "w": r.standard_normal((3, c_in, 3, 3)), "b": r.standard_normal(3)}

    def backward(dy, cache):
        return F.conv2d_backward(channels_last(dy), cache)

    assert_passes(gradcheck(lambda x, w, b: F.conv2d_forward(x, w, b, padding=1), backward,
                            inputs))


# ------------------------------------------------------------------------------ pooling

POOL_CASES = [
    # x shape, kernel, stride, padding, ceil_mode
    ((2, 2, 6, 6), 2, None, 0, False),
    ((2, 2, 7, 7), 3, 2, 0, False),            # overlapping
    ((1, 2, 6, 6), 3, 1, 1, False),            # overlapping, padding
    ((1, 2, 7, 6), 3, 2, 1, False),
    ((1, 2, 5, 5), 2, 2, 0, True),             # ceil_mode: a partial last window
    ((1, 2, 6, 7), 3, 2, 1, True),
    ((1, 2, 8, 7), 3, 3, 1, True),
    ((1, 2, 6, 9), (2, 3), (1, 2), (1, 0), False),
    ((1, 2, 7, 8), (3, 2), (2, 3), (0, 1), True),
    ((1, 1, 4, 4), 4, None, 0, False),         # one window: global pooling
]


@pytest.mark.parametrize("x_shape, kernel, stride, padding, ceil_mode", POOL_CASES)
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_max_pool2d_gradients_on_tie_free_input(x_shape, kernel, stride, padding, ceil_mode,
                                                layout):
    x = tie_free(x_shape, seed=sum(x_shape))
    to_layout = channels_last if layout == "channels_last" else np.asarray

    def forward(x):
        return F.max_pool2d_forward(x, kernel, stride, padding, ceil_mode)

    def backward(dy, cache):
        return F.max_pool2d_backward(to_layout(dy), cache)

    assert_passes(gradcheck(forward, backward, {"x": to_layout(x)}))


@pytest.mark.parametrize("x_shape, kernel, stride, padding, ceil_mode", POOL_CASES)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool2d_gradients(x_shape, kernel, stride, padding, ceil_mode, count_include_pad):
    x = rng(sum(x_shape)).standard_normal(x_shape)

    def forward(x):
        return F.avg_pool2d_forward(x, kernel, stride, padding, ceil_mode, count_include_pad)

    assert_passes(gradcheck(forward, F.avg_pool2d_backward, {"x": x}))


def test_avg_pool2d_gradients_channels_last():
    x = channels_last(rng(3).standard_normal((2, 3, 7, 7)))
    assert_passes(gradcheck(lambda x: F.avg_pool2d_forward(x, 3, 2, 1, True),
                            lambda dy, c: F.avg_pool2d_backward(channels_last(dy), c),
                            {"x": x}))


# -------------------------------------------------------------------------- activations

@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4, 4)])
def test_relu_gradients_away_from_the_kink(shape):
    assert_passes(gradcheck(F.relu_forward, F.relu_backward, {"z": away_from_zero(shape)}))


@pytest.mark.parametrize("slope", [0.01, 0.2, 1.5])
def test_leaky_relu_gradients_away_from_the_kink(slope):
    z = away_from_zero((2, 3, 4, 4), seed=1)
    assert_passes(gradcheck(lambda z: F.leaky_relu_forward(z, slope), F.leaky_relu_backward,
                            {"z": z}))


@pytest.mark.parametrize("scale", [1.0, 8.0])
def test_sigmoid_gradients(scale):
    z = scale * rng(2).standard_normal((2, 3, 4, 4))
    assert_passes(gradcheck(F.sigmoid_forward, F.sigmoid_backward, {"z": z}))


def test_sigmoid_is_stable_for_huge_inputs():
    z = np.array([-800.0, -40.0, 0.0, 40.0, 800.0])
    assert_passes(gradcheck(F.sigmoid_forward, F.sigmoid_backward, {"z": z}))


@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_tanh_gradients(scale):
    z = scale * rng(3).standard_normal((3, 2, 3, 3))
    assert_passes(gradcheck(F.tanh_forward, F.tanh_backward, {"z": z}))


@pytest.mark.parametrize("shape, axis", [((4, 6), -1), ((4, 6), 0), ((2, 3, 4, 4), 1),
                                         ((5,), 0)])
def test_softmax_gradients(shape, axis):
    z = 3 * rng(4).standard_normal(shape)
    assert_passes(gradcheck(lambda z: F.softmax_forward(z, axis), F.softmax_backward,
                            {"z": z}))


@pytest.mark.parametrize("n, k, scale", [(1, 2, 1.0), (5, 10, 1.0), (8, 3, 5.0), (4, 7, 200.0)])
def test_softmax_cross_entropy_gradients(n, k, scale):
    r = rng(n * k)
    z = scale * r.standard_normal((n, k))
    labels = r.integers(0, k, n)
    result = gradcheck(lambda z: F.softmax_cross_entropy_forward(z, labels),
                       F.softmax_cross_entropy_backward, {"logits": z})
    assert_passes(result)


# ------------------------------------------------------------------ linear and dropout

@pytest.mark.parametrize("n, fin, fout, bias", [(1, 3, 2, True), (4, 7, 5, True),
                                                (3, 6, 4, False)])
def test_linear_gradients(n, fin, fout, bias):
    r = rng(n + fin + fout)
    inputs = {"x": r.standard_normal((n, fin)), "w": r.standard_normal((fout, fin))}
    if bias:
        inputs["b"] = r.standard_normal(fout)
    assert_passes(gradcheck(lambda x, w, b=None: F.linear_forward(x, w, b), F.linear_backward,
                            inputs))


@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 0.9])
def test_dropout_gradients_with_a_fixed_mask(p):
    x = rng(5).standard_normal((3, 2, 4, 4))

    def forward(x):
        # the same seed every call: the same mask at x + eps and x - eps
        return F.dropout_forward(x, p, np.random.default_rng(11))

    _, mask = forward(x)
    if p:
        assert 0 < np.count_nonzero(mask) < mask.size
    assert_passes(gradcheck(forward, F.dropout_backward, {"x": x}))


# ------------------------------------------------------------------------------ kinks
def _digits_case(n=64):
    from clearconv.data import load_digits, to_float

    x, y = load_digits("train")
    return to_float(x[:n], max_value=16).astype(np.float64), y[:n]


def test_the_digits_cnn_at_its_initial_weights_reports_kinks_not_failures():
    """The issue's example: zero biases on images with many zero pixels put ReLU inputs
    exactly at 0, where the central difference averages the two sides."""
    from clearconv.train import zoo

    x, y = _digits_case()
    result = check_model_gradients(zoo.digits_cnn(rng=0).astype("float64"), x, y)
    assert result.ok, str(result)
    bias = result["0.bias"]
    assert bias.ok and len(bias.kinks) == bias.checked == 16
    assert "layer 1 (ReLU)" in bias.kink_cause and "cross 0 inside the step" in bias.kink_cause
    assert "kink 0.bias" in str(result) and "FAILED" not in str(result)
    assert "16 entries at a kink" in str(result).splitlines()[0]
    assert not result["0.weight"].kinks          # smooth where the pixels are not zero


def test_a_real_backward_bug_still_fails_next_to_kinks(monkeypatch):
    """A Dense layer whose backward doubles its weight gradient: the model still has its
    ReLU kinks, and the wrong layer still FAILS."""
    from clearconv.layers.core import Dense
    from clearconv.train import zoo

    correct = Dense.backward

    def doubled(self, dy):
        before = [p.grad.copy() for p in self.parameters()]
        dx = correct(self, dy)
        self.weight.grad += self.weight.grad - before[0]
        return dx

    monkeypatch.setattr(Dense, "backward", doubled)
    x, y = _digits_case()
    result = check_model_gradients(zoo.digits_cnn(rng=0).astype("float64"), x, y)
    assert not result.ok
    assert not result["7.weight"].ok and not result["9.weight"].ok
    assert result["7.bias"].ok and result["0.bias"].kinks
    assert "FAIL 7.weight" in str(result) and "gradcheck FAILED" in str(result)


def test_relu_at_exactly_zero_is_a_kink_and_a_wrong_slope_is_a_failure():
    x = np.array([[-1.0, 0.0, 2.0], [0.0, 3.0, -0.5]])
    result = gradcheck(F.relu_forward, F.relu_backward, {"z": x})
    assert result.ok and result.kinks == {"z": ((0, 1), (1, 0))}
    # the identity as ReLU's backward: wrong at the negative inputs, smooth points
    result = gradcheck(F.relu_forward, lambda dy, cache: dy, {"z": x})
    assert not result.ok and result["z"].worst_index in ((0, 0), (1, 2))


def test_tied_maxima_are_kinks_for_max_pooling():
    x = np.zeros((1, 1, 2, 4))
    x[0, 0, :, 2:] = [[1.0, 2.0], [0.5, -1.0]]     # window 1 distinct, window 0 all tied
    result = gradcheck(lambda a: F.max_pool2d_forward(a, 2), F.max_pool2d_backward, {"x": x})
    assert result.ok
    assert {idx[2:] for idx in result["x"].kinks} <= {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert result["x"].kinks and result["x"].checked == 8
