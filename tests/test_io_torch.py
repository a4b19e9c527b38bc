"""PyTorch interop: from_torch and to_torch give the same outputs and train the same.

Converted models must give the same outputs (float64 atol 1e-10, float32 1e-5) and,
after identical SGD steps on the same batch (softmax cross-entropy, lr 0.1, momentum
0.9), the same weights (float64, 1e-10), in both directions; with weight decay, the
PyTorch side puts the biases in a parameter group with ``weight_decay=0``, as
clearconv's optimizers skip them. Round trips copy the weights exactly.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

import clearconv as cc
from clearconv.errors import ClearConvError
from clearconv.io.torch import from_torch, to_torch, torch_blocks
from clearconv.layers import (
    AdaptiveAvgPool1D,
    AdaptiveAvgPool2D,
    AdaptiveMaxPool1D,
    AdaptiveMaxPool2D,
    AvgPool1D,
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Conv1D,
    Conv2D,
    ConvTranspose2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    GlobalMaxPool1D,
    GlobalMaxPool2D,
    Layer,
    LeakyReLU,
    MaxPool1D,
    MaxPool2D,
    MaxUnpool2D,
    ReLU,
    Residual,
    Sigmoid,
    Softmax,
    Tanh,
    Upsample,
)

torch = pytest.importorskip("torch", reason="PyTorch not installed (pip install "
                                            "clearconv[torch]): interop not checked")
nn = torch.nn
# torch warns that an even kernel with padding='same' costs it a padded copy: expected here
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")

SHAPE = (2, 9, 8)
TOL = {np.dtype(np.float32): {"rtol": 1e-5, "atol": 1e-5},
       np.dtype(np.float64): {"rtol": 0.0, "atol": 1e-10}}
TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


# ------------------------------------------------------------------ models
def _torch_head(*trunk: Any, classes: int = 3, softmax: bool = False) -> Any:
    """trunk -> Flatten -> Linear(classes) (-> Softmax), the Linear sized from SHAPE."""
    body = nn.Sequential(*trunk)
    with torch.no_grad():    # in eval mode: batch norm cannot train on one sample
        feats = body.eval()(torch.zeros(1, *SHAPE)).numel()
    body.train()
    tail = [nn.Flatten(), nn.Linear(feats, classes)] + ([nn.Softmax(dim=1)] if softmax else [])
    return nn.Sequential(*trunk, *tail)


def _cc_head(*trunk: Layer, classes: int = 3, softmax: bool = False) -> cc.Sequential:
    """trunk -> Flatten -> Dense(classes) (-> Softmax), built for SHAPE."""
    shape: tuple[int, ...] = SHAPE
    for layer in trunk:
        shape = layer.output_shape(shape)
    tail: list[Layer] = [Flatten(), Dense(int(np.prod(shape)), classes, rng=99)]
    return cc.Sequential(*trunk, *tail, *([Softmax(axis=1)] if softmax else []),
                         input_shape=SHAPE)


def _bn(module: Any) -> Any:
    """A torch batch-norm module with random weight, bias and running statistics (a fresh
    one normalises with mean 0, variance 1: too easy to agree on)."""
    c = module.num_features
    with torch.no_grad():
        if module.affine:
            module.weight.copy_(torch.rand(c) + 0.5)
            module.bias.copy_(torch.randn(c))
        if module.track_running_stats:
            module.running_mean.copy_(torch.randn(c))
            module.running_var.copy_(torch.rand(c) + 0.5)
            module.num_batches_tracked.fill_(3)
    return module


def _cc_bn(layer: Any, seed: int) -> Any:
    """The same for a clearconv batch-norm layer."""
    rng = np.random.default_rng(seed)
    c = layer.num_features
    if layer.affine:
        layer.weight.value[...] = rng.random(c) + 0.5
        layer.bias.value[...] = rng.standard_normal(c)
    if layer.track_running_stats:
        layer.running_mean[...] = rng.standard_normal(c)
        layer.running_var[...] = rng.random(c) + 0.5
        layer.num_batches_tracked[...] = 3
    return layer


TORCH_MODELS: dict[str, Callable[[], Any]] = {
    "conv-int-maxpool": lambda: _torch_head(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(),
                                            nn.MaxPool2d(2)),
    "conv-tuple-stride-avgpool": lambda: _torch_head(
        nn.Conv2d(2, 4, (3, 5), stride=(2, 1), padding=(1, 2)), nn.LeakyReLU(0.1),
        nn.AvgPool2d(2)),
    "conv-same-even-kernel": lambda: _torch_head(
        nn.Conv2d(2, 4, 4, padding="same"), nn.Tanh(), nn.MaxPool2d(3, 2, 1, ceil_mode=True)),
    "conv-same-dilation-no-bias": lambda: _torch_head(
        nn.Conv2d(2, 3, 3, padding="same", dilation=2, bias=False), nn.Sigmoid(),
        nn.AvgPool2d(3, 2, 1, ceil_mode=True)),
    "conv-valid-avg-exclude-pad": lambda: _torch_head(
        nn.Conv2d(2, 4, 3, padding="valid"), nn.ReLU(),
        nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), softmax=True),
    "zeropad-conv": lambda: _torch_head(
        nn.ZeroPad2d((0, 1, 2, 0)), nn.Conv2d(2, 4, 3, padding=1, stride=2), nn.ReLU()),
    "nested-identity-dropout": lambda: _torch_head(
        nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU()), nn.Identity(), nn.Dropout(0.3),
        nn.MaxPool2d(2, stride=1)),
    "grouped-depthwise-transposed": lambda: _torch_head(
        nn.Conv2d(2, 6, 3, padding=1, groups=2), nn.ReLU(),
        nn.Conv2d(6, 6, 3, stride=2, padding=1, groups=6),
        nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1, groups=2)),
    "pooling-forms-upsample": lambda: _torch_head(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 1, 1, dilation=2),
        nn.Upsample(scale_factor=1.5, mode="bilinear"), nn.AvgPool2d(2, divisor_override=3),
        nn.Upsample(size=(7, 5)), nn.AdaptiveMaxPool2d((4, 3)), nn.AdaptiveAvgPool2d(2)),
    "batchnorm-residual": lambda: _torch_head(
        nn.Conv2d(2, 4, 3, padding=1, bias=False), _bn(nn.BatchNorm2d(4)), nn.ReLU(),
        torch_blocks()[0](nn.Sequential(nn.Conv2d(4, 4, 3, padding=1),
                                        _bn(nn.BatchNorm2d(4, momentum=None)), nn.ReLU()),
                          nn.Sequential(nn.Conv2d(4, 4, 1), _bn(nn.BatchNorm2d(4, affine=False)))),
        nn.Flatten(), _bn(nn.BatchNorm1d(4 * 9 * 8, eps=1e-3, momentum=0.3))),
}

CC_MODELS: dict[str, Callable[[], cc.Sequential]] = {
    "pad-int": lambda: _cc_head(Conv2D(2, 4, 3, padding=1, rng=0), ReLU(), MaxPool2D(2)),
    "pad-pair-stride": lambda: _cc_head(
        Conv2D(2, 4, (3, 5), stride=(2, 1), padding=(1, 2), rng=0), LeakyReLU(0.1),
        AvgPool2D(2)),
    "pad-asymmetric": lambda: _cc_head(
        Conv2D(2, 4, 3, padding=((0, 1), (2, 0)), rng=0), Tanh(),
        MaxPool2D(3, 2, 1, ceil_mode=True)),
    "valid": lambda: _cc_head(Conv2D(2, 4, 3, padding="valid", rng=0), Sigmoid(),
                              AvgPool2D(3, 2, 1, ceil_mode=True)),
    "same-even-kernel": lambda: _cc_head(
        Conv2D(2, 4, 4, padding="same", rng=0), ReLU(),
        AvgPool2D(3, 2, 1, ceil_mode=True, count_include_pad=False)),
    "same-stride2-tf": lambda: _cc_head(Conv2D(2, 4, 3, stride=2, padding="same", rng=0),
                                        ReLU(), softmax=True),
    "same-stride2-even-kernel": lambda: _cc_head(
        Conv2D(2, 3, 4, stride=(2, 3), padding="same", bias=False, rng=0), ReLU()),
    "dilation2": lambda: _cc_head(Conv2D(2, 4, 3, padding=2, dilation=2, rng=0), ReLU()),
    "dropout": lambda: _cc_head(Conv2D(2, 4, 3, rng=0), ReLU(), Dropout(0.3)),
    "grouped-depthwise-transposed": lambda: _cc_head(
        Conv2D(2, 6, 3, padding=1, groups=2, rng=0), ReLU(),
        Conv2D(6, 6, 3, stride=2, padding=1, groups=6, rng=1),
        ConvTranspose2D(6, 4, 4, stride=2, padding=1, dilation=(1, 2), groups=2, rng=2)),
    "pooling-forms-global": lambda: _cc_head(
        Conv2D(2, 4, 3, padding=1, rng=0), ReLU(), MaxPool2D(2, 1, ((1, 0), (0, 1))),
        AvgPool2D(3, 1, ((0, 1), (1, 1)), divisor_override=5),
        Upsample(size=(11, 9), mode="bilinear", align_corners=True),
        AdaptiveMaxPool2D((5, None)), AdaptiveAvgPool2D(3), Upsample(scale_factor=2),
        GlobalMaxPool2D()),
    "global-average-flatten": lambda: cc.Sequential(
        Conv2D(2, 4, 3, padding=1, rng=0), ReLU(), GlobalAvgPool2D(flatten=True),
        Dense(4, 3, rng=1), input_shape=SHAPE),
    "batchnorm-residual": lambda: _cc_head(
        Conv2D(2, 4, 3, padding=1, bias=False, rng=0), _cc_bn(BatchNorm2D(4), 1), ReLU(),
        Residual([Conv2D(4, 4, 3, padding=1, rng=2), _cc_bn(BatchNorm2D(4, momentum=None), 3),
                  ReLU()],
                 [Conv2D(4, 4, 1, stride=1, rng=4), _cc_bn(BatchNorm2D(4, affine=False), 5)]),
        Flatten(), _cc_bn(BatchNorm1D(4 * 9 * 8, eps=1e-3, momentum=0.3), 6)),
}
TORCH_TRAINABLE = [k for k in TORCH_MODELS if "dropout" not in k]
CC_TRAINABLE = [k for k in CC_MODELS if "dropout" not in k]


def _torch_model(name: str, dtype: Any) -> Any:
    torch.manual_seed(0)
    return TORCH_MODELS[name]().to(TORCH_DTYPE[np.dtype(dtype)])


def _batch(dtype: Any, n: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *SHAPE)).astype(dtype), rng.integers(0, 3, n)


def _torch_forward(net: Any, x: np.ndarray) -> np.ndarray:
    net.eval()
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


def _assert_same_weights(model: cc.Sequential, net: Any, **tol: float) -> None:
    ours = [p.value for p in model.parameters()]
    theirs = [p.detach().numpy() for p in net.parameters()]
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, **tol)


def _train_both(model: cc.Sequential, net: Any, weight_decay: float = 0.0,
                steps: int = 3) -> None:
    """The same SGD steps on the same batch, in clearconv and in PyTorch."""
    x, y = _batch(model.dtype, seed=1)
    opt = cc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=weight_decay)
    decay = [p for n, p in net.named_parameters() if n.endswith("weight")]
    no_decay = [p for n, p in net.named_parameters() if not n.endswith("weight")]
    torch_opt = torch.optim.SGD([{"params": decay, "weight_decay": weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=0.1, momentum=0.9)
    net.train()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(steps):
        model.train_step(x, y, opt)
        torch_opt.zero_grad()
        nn.functional.cross_entropy(net(xt), yt).backward()
        torch_opt.step()


# ------------------------------------------------------------------ from_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(TORCH_MODELS))
def test_from_torch_gives_same_outputs(name: str, dtype: Any) -> None:
    net = _torch_model(name, dtype)
    model = from_torch(net, input_shape=SHAPE)
    assert model.dtype == np.dtype(dtype)
    x, _ = _batch(dtype)
    got = model.forward(x)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got, _torch_forward(net, x), **TOL[np.dtype(dtype)])


@pytest.mark.parametrize("name", TORCH_TRAINABLE)
def test_from_torch_same_weights_after_sgd(name: str) -> None:
    net = _torch_model(name, np.float64)
    model = from_torch(net, input_shape=SHAPE)
    _train_both(model, net)
    _assert_same_weights(model, net, rtol=0, atol=1e-10)


def test_from_torch_same_weights_after_sgd_with_weight_decay() -> None:
    net = _torch_model("conv-same-even-kernel", np.float64)
    model = from_torch(net, input_shape=SHAPE)
    _train_both(model, net, weight_decay=0.05)
    _assert_same_weights(model, net, rtol=0, atol=1e-10)


def test_from_torch_maps_layers_and_settings() -> None:
    net = _torch_model("zeropad-conv", np.float64)
    model = from_torch(net)
    assert model.input_shape is None
    conv = model.layers[0]
    assert isinstance(conv, Conv2D) and conv.stride == (2, 2)
    # ZeroPad2d((left 0, right 1, top 2, bottom 0)) merged with the conv's padding 1
    assert conv.padding == [[3, 1], [1, 2]]
    assert [type(la) for la in from_torch(_torch_model("nested-identity-dropout", np.float32))
            .layers] == [Conv2D, ReLU, Dropout, MaxPool2D, Flatten, Dense]


def test_from_torch_copies_the_weights() -> None:
    net = _torch_model("conv-int-maxpool", np.float32)
    model = from_torch(net)
    with torch.no_grad():
        net[0].weight.add_(1.0)
    assert not np.allclose(model.layers[0].weight.value, net[0].weight.detach().numpy())


def test_to_torch_of_from_torch_keeps_weights_exactly() -> None:
    for name in TORCH_MODELS:
        for dtype in (np.float32, np.float64):
            net = _torch_model(name, dtype)
            back = to_torch(from_torch(net))
            ours = list(back.parameters())
            theirs = list(net.parameters())
            assert len(ours) == len(theirs), name
            for a, b in zip(ours, theirs):
                assert a.dtype == b.dtype and torch.equal(a, b), name
            x, _ = _batch(dtype)
            np.testing.assert_allclose(_torch_forward(back, x), _torch_forward(net, x),
                                       **TOL[np.dtype(dtype)])


# ------------------------------------------------------------------ to_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(CC_MODELS))
def test_to_torch_gives_same_outputs(name: str, dtype: Any) -> None:
    model = CC_MODELS[name]().astype(dtype)
    net = to_torch(model)
    assert all(p.dtype == TORCH_DTYPE[np.dtype(dtype)] for p in net.parameters())
    x, _ = _batch(dtype)
    got = _torch_forward(net, x)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got, model.forward(x), **TOL[np.dtype(dtype)])


@pytest.mark.parametrize("name", CC_TRAINABLE)
def test_to_torch_same_weights_after_sgd(name: str) -> None:
    model = CC_MODELS[name]().astype(np.float64)
    net = to_torch(model)
    _train_both(model, net)
    _assert_same_weights(model, net, rtol=0, atol=1e-10)


def test_to_torch_same_weights_after_sgd_with_weight_decay() -> None:
    model = CC_MODELS["pad-asymmetric"]().astype(np.float64)
    net = to_torch(model)
    _train_both(model, net, weight_decay=0.05)
    _assert_same_weights(model, net, rtol=0, atol=1e-10)


def test_to_torch_asymmetric_padding_becomes_zeropad_and_conv() -> None:
    net = to_torch(CC_MODELS["pad-asymmetric"]())
    assert isinstance(net[0], nn.ZeroPad2d) and tuple(net[0].padding) == (2, 0, 0, 1)
    assert isinstance(net[1], nn.Conv2d) and tuple(net[1].padding) == (0, 0)
    net = to_torch(CC_MODELS["pad-pair-stride"]())
    assert isinstance(net[0], nn.Conv2d) and tuple(net[0].padding) == (1, 2)


def test_to_torch_leaves_torch_rng_alone() -> None:
    state = torch.get_rng_state()
    to_torch(CC_MODELS["pad-int"]())
    assert torch.equal(state, torch.get_rng_state())


def test_from_torch_of_to_torch_keeps_weights_exactly() -> None:
    for name, make in CC_MODELS.items():
        for dtype in (np.float32, np.float64):
            model = make().astype(dtype)
            back = from_torch(to_torch(model), input_shape=SHAPE)
            assert back.dtype == np.dtype(dtype)
            for a, b in zip(back.parameters(), model.parameters(), strict=True):
                np.testing.assert_array_equal(a.value, b.value, err_msg=name)
            x, _ = _batch(dtype)
            np.testing.assert_allclose(back.forward(x), model.forward(x), **TOL[np.dtype(dtype)])


# ------------------------------------------------------------------ refusals
@pytest.mark.parametrize("module, match", [
    (lambda: nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect"), "padding_mode='reflect'"),
    (lambda: nn.MaxPool2d(2, return_indices=True), "return_indices"),
    (lambda: nn.Flatten(start_dim=0), "start_dim=0"),
    (lambda: nn.Softmax(), "dim=None"),
    (lambda: nn.InstanceNorm2d(2), r"\(InstanceNorm2d\) has no clearconv equivalent"),
    (lambda: nn.Dropout2d(0.2), r"\(Dropout2d\) has no clearconv equivalent"),
    (lambda: type("MyReLU", (nn.ReLU,), {})(), r"\(MyReLU\) has no clearconv equivalent"),
])
def test_from_torch_refuses_what_it_cannot_convert(module: Callable[[], Any],
                                                    match: str) -> None:
    net = nn.Sequential(nn.Identity(), module())
    with pytest.raises(ClearConvError, match=r"module 1 .*" + match):
        from_torch(net)


@pytest.mark.parametrize("net, match", [
    (lambda: nn.Sequential(nn.ZeroPad2d(1), nn.ReLU()), "only right before a Conv2d"),
    (lambda: nn.Sequential(nn.Conv2d(2, 2, 1), nn.ZeroPad2d(1)), "ends the model"),
    (lambda: nn.Sequential(nn.ZeroPad2d(-1), nn.Conv2d(2, 2, 1)), "negative padding"),
    (lambda: nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2).double()), "mixes parameter"),
    (lambda: nn.Sequential(nn.Linear(2, 2).half()), "torch.float16"),
    (lambda: nn.ModuleList([nn.ReLU()]), "expects a torch.nn.Sequential"),
])
def test_from_torch_refuses_bad_models(net: Callable[[], Any], match: str) -> None:
    with pytest.raises(ClearConvError, match=match):
        from_torch(net())


class _Doubler(Layer):
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return 2 * x


def test_to_torch_refuses_unknown_layers_and_unknown_sizes() -> None:
    with pytest.raises(ClearConvError, match=r"layer 1 \(_Doubler\) has no torch equivalent"):
        to_torch(cc.Sequential(Dense(3, 2, rng=0), _Doubler()))
    tf_same = cc.Sequential(Conv2D(1, 2, 3, stride=2, padding="same", rng=0))
    with pytest.raises(ClearConvError, match="layer 0 .*build the model with input_shape"):
        to_torch(tf_same)
    tf_same.build((1, 7, 7))
    assert isinstance(to_torch(tf_same)[0], nn.Conv2d)   # 7 -> 4 needs (1, 1): symmetric


@pytest.mark.parametrize("convert, arg", [(from_torch, "net"), (to_torch, "model")])
def test_missing_torch_says_what_to_install(convert: Callable[[Any], Any], arg: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    given: dict[str, Sequence[Any]] = {"net": nn.Sequential(nn.ReLU()),
                                       "model": cc.Sequential(ReLU())}
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ClearConvError, match=r"pip install clearconv\[torch\]"):
        convert(given[arg])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv1d_round_trips_with_the_same_outputs(dtype: Any) -> None:
    net = nn.Sequential(nn.Conv1d(3, 4, 3, stride=2, padding=1), nn.ReLU(),
                        nn.Conv1d(4, 4, 5, padding="same", groups=4)).to(TORCH_DTYPE[
                            np.dtype(dtype)])
    model = from_torch(net, input_shape=(3, 11))
    assert [type(layer) for layer in model.layers] == [Conv1D, ReLU, Conv1D]
    x = np.random.default_rng(0).standard_normal((2, 3, 11)).astype(dtype)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.predict(x), want, **TOL[np.dtype(dtype)])
    back = to_torch(model)
    with torch.no_grad():
        np.testing.assert_allclose(back(torch.from_numpy(x)).numpy(), want,
                                   **TOL[np.dtype(dtype)])


# ------------------------------------------------------------------ 1-D pooling
def test_1d_pooling_round_trips_through_torch_with_the_same_outputs() -> None:
    model = cc.Sequential(
        Conv1D(2, 4, 3, padding=1, rng=0), ReLU(), MaxPool1D(3, 2, 1, dilation=2),
        AvgPool1D(2, 1, (1, 0)), AdaptiveAvgPool1D(5), AdaptiveMaxPool1D(4),
        GlobalMaxPool1D(), GlobalAvgPool1D(flatten=True), Dense(4, 3, rng=1),
        input_shape=(2, 19)).astype(np.float64)
    net = to_torch(model)
    x = np.random.default_rng(0).standard_normal((3, 2, 19))
    np.testing.assert_allclose(net(torch.tensor(x)).detach().numpy(), model.forward(x),
                               rtol=0, atol=1e-10)
    back = from_torch(net, input_shape=(2, 19))
    np.testing.assert_allclose(back.forward(x), model.forward(x), rtol=0, atol=1e-10)


@pytest.mark.parametrize("layer, match", [
    (MaxUnpool2D(2), "MaxUnpool2D"),
    (MaxPool2D(2, return_indices=True), "indices"),
    (AdaptiveMaxPool2D(2, return_indices=True), "indices"),
    (MaxPool2D(3, 2, ((1, 0), (0, 1)), ceil_mode=True), "ceil_mode"),
    (AvgPool2D(3, 2, ((1, 0), (0, 1)), count_include_pad=False), "count_include_pad"),
])
def test_to_torch_refuses_the_pooling_forms_torch_lacks(layer: Layer, match: str) -> None:
    with pytest.raises(ClearConvError, match=match):
        to_torch(cc.Sequential(layer))


@pytest.mark.parametrize("module, match", [
    (lambda: nn.Upsample(scale_factor=2, mode="bicubic"), "bicubic"),
    (lambda: nn.AdaptiveMaxPool2d(2, return_indices=True), "return_indices"),
    (lambda: nn.MaxPool1d(2, return_indices=True), "return_indices"),
])
def test_from_torch_refuses_the_resampling_forms_it_lacks(module: Callable[[], Any],
                                                          match: str) -> None:
    with pytest.raises(ClearConvError, match=match):
        from_torch(nn.Sequential(module()))
@pytest.mark.parametrize("start_dim, end_dim", [(2, -1), (1, 2), (-2, -1)])
def test_flatten_dims_round_trip_with_the_same_outputs(start_dim: int, end_dim: int) -> None:
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.Flatten(start_dim, end_dim)).double()
    model = from_torch(net, input_shape=(2, 4, 5))
    assert (model.layers[1].start_dim, model.layers[1].end_dim) == (start_dim, end_dim)
    x = np.random.default_rng(1).standard_normal((2, 2, 4, 5))
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.predict(x), want, rtol=1e-10, atol=1e-12)
    back = to_torch(model)
    assert (back[1].start_dim, back[1].end_dim) == (start_dim, end_dim)
