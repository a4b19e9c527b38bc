"""The fusion pass around batch norm (clearconv.train.fusion): BatchNorm2D + ReLU as one
op, a Conv2D's batch norm folded into its weights for inference, a Residual block's sum
and the ReLU after it in one pass. Held to the layers run one by one
(``Sequential(..., fuse=False)``: bit-identical in training, 1e-10 in float64 where the
fold rounds differently), to the loop reference, to PyTorch and to finite differences;
model files, state_dict and summary() see no fusion."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import FEW, assert_same, channels_last

import clearconv as cc
from clearconv import functional as F
from clearconv import reference as R
from clearconv.errors import ClearConvError
from clearconv.functional.normalization import layout_of
from clearconv.kernels import jit, registry
from clearconv.layers import (
    BatchNorm2D,
    Conv2D,
    Dense,
    Flatten,
    MaxPool2D,
    ReLU,
    Residual,
)
from clearconv.train import fusion, zoo

BN_ALGORITHMS = [a.name for a in registry.algorithms("batch_norm2d")
                 if a.supports(F.normalization.BatchNormCall(
                     (2, 2, 2, 2), np.dtype(np.float64), "NCHW", True))[0]]


def bn_net(dtype="float64", fuse=True, seed=0):
    """Every fused run: conv+BN+ReLU, conv+BN+ReLU+pool, BN+ReLU alone, residual blocks
    (identity and projection shortcut) each followed by a ReLU, one without."""
    g = np.random.default_rng(seed)
    return cc.Sequential(
        Conv2D(2, 4, 3, padding=1, bias=False, rng=g), BatchNorm2D(4), ReLU(),
        Residual([Conv2D(4, 4, 3, padding=1, bias=False, rng=g), BatchNorm2D(4), ReLU(),
                  Conv2D(4, 4, 3, padding=1, bias=False, rng=g), BatchNorm2D(4)]),
        ReLU(),
        Residual([Conv2D(4, 6, 3, stride=2, padding=1, rng=g), BatchNorm2D(6), ReLU(),
                  Conv2D(6, 6, 3, padding=1, rng=g), BatchNorm2D(6, momentum=None)],
                 [Conv2D(4, 6, 1, stride=2, rng=g), BatchNorm2D(6)]),
        ReLU(),
        Residual([Conv2D(6, 6, 3, padding=1, rng=g), BatchNorm2D(6)]),
        BatchNorm2D(6), ReLU(),
        Conv2D(6, 6, 3, padding=1, rng=g), BatchNorm2D(6, affine=False), ReLU(), MaxPool2D(2),
        Flatten(), Dense(6 * 2 * 2, 3, rng=g), input_shape=(2, 8, 8), fuse=fuse
    ).astype(dtype)


def warmed_pair(dtype="float64", steps=2):
    """A fused and an unfused copy of bn_net after ``steps`` identical SGD steps (so
    that the running statistics are not the initial ones)."""
    a, b = bn_net(dtype), bn_net(dtype, fuse=False)
    x, y = batch(dtype)
    oa = cc.optim.SGD(a.parameters(), lr=0.05, momentum=0.9)
    ob = cc.optim.SGD(b.parameters(), lr=0.05, momentum=0.9)
    for _ in range(steps):
        assert a.train_step(x, y, oa) == b.train_step(x, y, ob)
    return a, b


def batch(dtype="float64", n=6, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 2, 8, 8)).astype(dtype), rng.integers(0, 3, n)


def assert_states_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)


# --------------------------------------------------------------------------- the plan
def test_plan_fuses_each_run_and_fuse_false_runs_the_layers():
    kinds = [type(s).__name__ for s in bn_net().steps()]
    assert kinds == ["ConvBatchNorm", "ResidualReLU", "ResidualReLU", "ResidualReLU",
                     "BatchNormReLU", "ConvBatchNorm", "Flatten", "Dense"]
    steps = bn_net().steps()
    assert steps[0].relu and steps[5].pool is not None and not steps[3].relu
    inner = [type(s).__name__ for s in steps[1].branches()[0]]
    assert inner == ["ConvBatchNorm", "ConvBatchNorm"]
    plain = bn_net(fuse=False)
    assert plain.steps() == plain.layers
    resnet = [type(s).__name__ for s in zoo.resnet20(rng=0).steps()]
    assert resnet[:2] == ["ConvBatchNorm", "ResidualReLU"] and resnet.count("ResidualReLU") == 9


def test_a_subclass_or_a_ready_made_layer_order_is_not_fused():
    class MyBN(BatchNorm2D):
        pass

    model = cc.Sequential(Conv2D(1, 2, 3, rng=0), MyBN(2), ReLU(), input_shape=(1, 5, 5))
    assert [type(s) for s in model.steps()] == [Conv2D, MyBN, ReLU]


# ----------------------------------------------------------- batch norm + ReLU, the op
@st.composite
def bn_relu_cases(draw):
    n, c, h, w = (draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4)),
                  draw(st.integers(1, 4)))
    training = draw(st.booleans())
    if training and n * h * w == 1:
        n = 2
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, c, h, w)) * 2 + 0.5
    if draw(st.booleans()):
        x = channels_last(x)
    gamma = rng.standard_normal(c) if draw(st.booleans()) else None
    beta = rng.standard_normal(c) if draw(st.booleans()) else None
    stats = (rng.standard_normal(c), rng.random(c) + 0.1)
    dy = rng.standard_normal(x.shape)
    return x, gamma, beta, stats, training, dy


@pytest.mark.parametrize("algorithm", BN_ALGORITHMS)
@FEW
@given(case=bn_relu_cases())
def test_batch_norm_with_relu_is_relu_of_batch_norm_as_the_reference(algorithm, case):
    x, gamma, beta, (rm, rv), training, dy = case
    y, cache = F.batch_norm2d_forward(x, gamma, beta, rm.copy(), rv.copy(), training,
                                      algorithm=algorithm, relu=True)
    dx, dgamma, dbeta = F.batch_norm2d_backward(dy, cache)
    z, ref_cache = R.batch_norm2d_forward(x, gamma, beta, rm.copy(), rv.copy(), training)
    a, relu_cache = R.relu_forward(z)
    ref_dx, ref_dgamma, ref_dbeta = R.batch_norm2d_backward(R.relu_backward(dy, relu_cache),
                                                            ref_cache)
    assert_same(y, a)
    assert layout_of(y) == layout_of(x) or algorithm == "numpy"
    scale = max(1.0, float(np.sqrt(np.mean(np.square(ref_dx)))))
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-10, atol=1e-12 * scale)
    for got, ref in ((dgamma, ref_dgamma), (dbeta, ref_dbeta)):
        assert (got is None) == (ref is None)
        if ref is not None:
            np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12 * scale)


@pytest.mark.parametrize("algorithm", BN_ALGORITHMS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("last", [False, True])
def test_batch_norm_with_relu_is_bit_identical_to_the_two_ops(algorithm, dtype, last):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 5, 6, 7)).astype(dtype)
    x = channels_last(x) if last else x
    gamma, beta = rng.standard_normal(5).astype(dtype), rng.standard_normal(5).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    for training in (True, False):
        stats = (rng.standard_normal(5).astype(dtype), (rng.random(5) + .5).astype(dtype))
        z, c1 = F.batch_norm2d_forward(x, gamma, beta, *(s.copy() for s in stats), training,
                                       algorithm=algorithm)
        a, relu_cache = F.relu_forward(z)
        two = (a, *F.batch_norm2d_backward(F.relu_backward(dy, relu_cache), c1))
        y, c2 = F.batch_norm2d_forward(x, gamma, beta, *(s.copy() for s in stats), training,
                                       algorithm=algorithm, relu=True)
        one = (y, *F.batch_norm2d_backward(dy, c2))
        for got, ref in zip(one, two):
            np.testing.assert_array_equal(got, ref)


def test_batch_norm_with_relu_matches_finite_differences():
    from clearconv.gradcheck import gradcheck

    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 3, 3))
    gamma, beta = rng.standard_normal(2), rng.standard_normal(2)

    def fwd(x, gamma, beta):
        return F.batch_norm2d_forward(x, gamma, beta, None, None, True, relu=True)

    def bwd(dy, cache):
        return F.batch_norm2d_backward(dy, cache)

    result = gradcheck(fwd, bwd, (x, gamma, beta))
    assert result.ok, str(result)


# ------------------------------------------------------------------------ the fold
@FEW
@given(seed=st.integers(0, 2**32 - 1), c_in=st.integers(1, 3), c_out=st.integers(1, 4),
       k=st.sampled_from([1, 3]), stride=st.integers(1, 2), bias=st.booleans(),
       affine=st.booleans())
def test_a_folded_conv_is_the_conv_then_the_evaluation_batch_norm(seed, c_in, c_out, k,
                                                                  stride, bias, affine):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, c_in, 6, 5))
    w = rng.standard_normal((c_out, c_in, k, k))
    b = rng.standard_normal(c_out) if bias else None
    gamma, beta = (rng.standard_normal(c_out), rng.standard_normal(c_out)) if affine \
        else (None, None)
    mean, var = rng.standard_normal(c_out), rng.random(c_out) + 0.05
    z, _ = F.conv2d_forward(x, w, b, stride, k // 2)
    ref, _ = F.batch_norm2d_forward(z, gamma, beta, mean.copy(), var.copy(), False)
    wf, bf = F.batch_norm2d_fold(w, b, gamma, beta, mean, var)
    got, _ = F.conv2d_forward(x, wf, bf, stride, k // 2)
    assert wf.dtype == w.dtype and bf.shape == (c_out,)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12 * max(1.0, np.abs(ref).max()))


# --------------------------------------------------------- fused model = unfused model
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_training_steps_are_bit_identical_to_the_layers_one_by_one(dtype):
    a, b = warmed_pair(dtype, steps=3)
    assert_states_equal(a, b)


def test_inference_folds_and_agrees_with_the_layers_to_rounding():
    a, b = warmed_pair()
    x, y = batch(n=9, seed=5)
    for model in (a, b):
        model.eval()
    got, ref = a.predict(x), b.predict(x)
    assert a.steps()[0].folded and a.steps()[5].folded
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12 * np.abs(ref).max())
    ea, eb = a.evaluate(x, y), b.evaluate(x, y)
    assert ea["accuracy"] == eb["accuracy"]
    assert ea["loss"] == pytest.approx(eb["loss"], rel=1e-10)
    # predict runs in inference whatever the mode: the fold applies in training mode too
    a.train()
    b.train()
    np.testing.assert_allclose(a.predict(x), b.predict(x), rtol=1e-10,
                               atol=1e-12 * np.abs(ref).max())
    assert_states_equal(a, b)       # inference updated no statistic


def test_the_fold_follows_the_current_weights_and_statistics():
    a, b = warmed_pair()
    x, _ = batch(n=4, seed=2)
    a.predict(x)
    for model in (a, b):         # change every batch norm and conv in place
        for layer in (la for top in model.layers for la in top.walk()):
            if isinstance(layer, BatchNorm2D):
                layer.running_var[...] *= 1.7
                layer.running_mean[...] += 0.3
            if isinstance(layer, Conv2D):
                layer.weight.value[...] *= -0.5
    ref = b.predict(x)
    np.testing.assert_allclose(a.predict(x), ref, rtol=1e-10, atol=1e-12 * np.abs(ref).max())


def test_evaluation_mode_gradients_are_bit_identical_and_not_folded():
    a, b = warmed_pair()
    x, y = batch(seed=4)
    for model in (a, b):
        model.zero_grad()
    assert a.loss_and_backward(x, y) == b.loss_and_backward(x, y)
    assert not a.steps()[0].folded
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.grad, q.grad, err_msg=p.name)


def test_backward_after_an_inference_pass_is_refused():
    a, _ = warmed_pair()
    x, _ = batch()
    a.forward(x)
    with pytest.raises(ClearConvError, match="before forward"):
        a.backward(np.ones((6, 3)))


def test_input_gradients_match_the_layers_and_finite_differences():
    from clearconv.gradcheck import check_model_gradients

    a, b = warmed_pair()
    x, y = batch(n=3, seed=8)
    for model in (a, b):
        model.eval()
    outs = []
    for model in (a, b):
        model.zero_grad()
        out = model.forward(x, training=True)
        outs.append(model.backward(np.cos(out)))
    np.testing.assert_array_equal(outs[0], outs[1])
    result = check_model_gradients(a, x, y, seed=1)
    assert result.ok, str(result)


def test_torch_agrees_with_the_fused_model_in_training_and_inference():
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    from clearconv.io.torch import to_torch

    a, _ = warmed_pair()
    net = to_torch(a)
    x, y = batch(n=5, seed=9)
    net.eval()
    with torch.no_grad():
        theirs = net(torch.from_numpy(x)).numpy()
    a.eval()
    np.testing.assert_allclose(a.predict(x), theirs, rtol=1e-10, atol=1e-12)
    net.train()
    a.train()
    opt = cc.optim.SGD(a.parameters(), lr=0.1)
    topt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(2):
        a.train_step(x, y, opt)
        topt.zero_grad()
        torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y)
                                          ).backward()
        topt.step()
    for (name, value), tensor in zip(a.state_dict().items(), net.state_dict().values()):
        np.testing.assert_allclose(value, tensor.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)


# --------------------------------------------------------- nothing of it is saved
def test_model_files_state_dict_and_summary_see_no_fusion(tmp_path):
    a, b = warmed_pair()
    assert a.get_config()["layers"] == b.get_config()["layers"]
    assert "fuse" not in a.get_config()
    a.save(str(tmp_path / "m.npz"))
    back = cc.load(str(tmp_path / "m.npz"))
    assert_states_equal(back, a)
    x, _ = batch(n=3)
    np.testing.assert_array_equal(back.predict(x), a.predict(x))
    rows_a = a.summary(print_fn=None).splitlines()
    rows_b = b.summary(print_fn=None).splitlines()
    assert [r[:48] for r in rows_a] == [r[:48] for r in rows_b]
    text = "\n".join(rows_a)
    assert "1: BatchNorm2D" in text and "folded into 0 in inference" in text
    assert "in 1's batch norm" in text and "in 3's sum" in text


# ------------------------------------------------------------------------ layouts
@pytest.mark.skipif(not jit.AVAILABLE, reason="needs Numba (the channels-last kernels)")
def test_channels_last_memory_flows_through_conv_bn_relu_and_the_residual_sums():
    model = zoo.resnet20(rng=0)
    x = np.random.default_rng(0).standard_normal((64, 3, 32, 32)).astype(np.float32)
    seen = []
    with cc.parallel():
        for training in (True, False):
            h = x
            for step in model.steps():
                h = step.forward(h, training)
                if isinstance(step, (fusion.ConvBatchNorm, fusion.ResidualReLU)):
                    seen.append(layout_of(h))
    assert set(seen) == {"channels-last"}, seen


def test_zoo_bn_models_fuse_and_agree_with_their_unfused_twins():
    for make, shape in ((zoo.mnist_bn_cnn, (1, 28, 28)), (zoo.mobilenet_cnn, (1, 28, 28)),
                        (zoo.resnet20, (3, 32, 32))):
        a, b = make(rng=0, dtype="float64"), make(rng=0, dtype="float64")
        b.fuse = False
        for model in (a, b):
            for layer in model.layers:
                if hasattr(layer, "p"):
                    layer.p = 0.0        # dropout off: the two models draw no masks
        x = np.random.default_rng(0).standard_normal((4, *shape))
        y = np.arange(4) % 10
        oa, ob = cc.optim.SGD(a.parameters(), lr=0.05), cc.optim.SGD(b.parameters(), lr=0.05)
        assert a.train_step(x, y, oa) == b.train_step(x, y, ob)
        assert_states_equal(a, b)
        ref = b.predict(x)
        np.testing.assert_allclose(a.predict(x), ref, rtol=1e-10,
                                   atol=1e-12 * np.abs(ref).max())
        assert any(isinstance(s, fusion.ConvBatchNorm) for s in a.steps())


def test_a_projection_shortcut_and_a_relu_pool_tail_keep_their_shapes():
    model = cc.Sequential(Residual([Conv2D(1, 2, 3, padding=1, rng=0), BatchNorm2D(2)],
                                   [Conv2D(1, 2, 1, rng=1), BatchNorm2D(2)]), ReLU(),
                          MaxPool2D(2), input_shape=(1, 4, 4))
    # the ReLU goes with the pooling (one pass, no stored ReLU output); the block alone
    assert [type(s).__name__ for s in model.steps()] == ["ResidualReLU", "ReLUMaxPool2D"]
    assert not model.steps()[0].relu
    assert model.predict(np.ones((2, 1, 4, 4))).shape == (2, 2, 2, 2)


class _OneProcess:
    """The statistics reduction of a one-process job: the sums are the whole batch's."""

    def forward_sums(self, count, s1, s2):
        return float(count), s1, s2

    def backward_sums(self, g1, g2):
        return g1, g2


def test_a_synchronised_batch_norm_with_its_relu_is_the_plain_one_to_rounding():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 4, 5, 5)) + 1.0
    dy = rng.standard_normal(x.shape)
    out = []
    for sync in (None, _OneProcess()):
        bn = BatchNorm2D(4, dtype="float64")
        bn.weight.value[...] = rng.standard_normal(4) if sync is None else out[0][3]
        bn.sync = sync
        y = bn.forward(x, training=True, relu=True)
        dx = bn.backward(dy)
        out.append((y, dx, bn.running_var.copy(), bn.weight.value.copy(), bn.weight.grad.copy()))
    assert (out[1][0] >= 0).all()
    for got, ref in zip(out[1], out[0]):
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


def test_a_batch_norm_of_the_wrong_width_after_a_conv_is_refused_by_name():
    from clearconv.errors import ShapeError

    model = cc.Sequential(Conv2D(1, 3, 3, rng=0), BatchNorm2D(4), ReLU())
    for mode in ("train", "eval"):
        getattr(model, mode)()
        with pytest.raises(ShapeError, match="BatchNorm2D\\(4\\) expects 4 channels"):
            model.predict(np.ones((2, 1, 5, 5), np.float32))


# ------------------------------------------------------------ add_relu, the op
ADD_RELU_ALGORITHMS = [a.name for a in registry.algorithms("add_relu")
                       if a.supports(F.activations.AddReluCall(
                           (2, 2, 2, 2), np.dtype(np.float64), "NCHW"))[0]]


@pytest.mark.parametrize("algorithm", ADD_RELU_ALGORITHMS)
@FEW
@given(seed=st.integers(0, 2**32 - 1), shape=st.tuples(*(st.integers(1, 4),) * 4),
       last=st.booleans(), in_place=st.booleans())
def test_add_relu_matches_its_loop_twin_bit_for_bit(algorithm, seed, shape, last, in_place):
    rng = np.random.default_rng(seed)
    a, b, dy = (rng.standard_normal(shape) for _ in range(3))
    a[0, 0, 0, 0] = np.nan
    if last:
        a, b, dy = channels_last(a), channels_last(b), channels_last(dy)
    ref, ref_cache = R.add_relu_forward(a, b)
    ref_dx = R.add_relu_backward(dy, ref_cache)
    target = a.copy(order="K") if in_place else None
    y, cache = F.add_relu_forward(a if target is None else target, b, out=target,
                                  algorithm=algorithm)
    np.testing.assert_array_equal(y, ref)
    assert target is None or y is target
    assert layout_of(y) == layout_of(a) or min(shape[1:]) == 1
    np.testing.assert_array_equal(F.add_relu_backward(dy, cache), ref_dx)


def test_add_relu_of_mixed_layouts_or_dtypes_takes_numpy_and_names_a_shape_mismatch():
    from clearconv.errors import ShapeError

    a = np.ones((2, 3, 4, 5), np.float32)
    assert F.add_relu_forward(a, channels_last(a))[1].algorithm == "numpy"
    assert F.add_relu_forward(a, a.astype(np.float64))[1].algorithm == "numpy"
    with pytest.raises(ShapeError, match="(2, 3, 4, 5).*(2, 3, 4, 4)".replace("(", "\\(")
                       .replace(")", "\\)")):
        F.add_relu_forward(a, a[..., :4])
