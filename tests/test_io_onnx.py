"""ONNX export: every layer and padding form, checked by onnx.checker and run in onnxruntime.

Each model is exported, checked, loaded into an onnxruntime CPU session and fed random
inputs with batch sizes 1 and 5 (the batch dimension is dynamic): the outputs must equal
clearconv's ``forward`` within 1e-5 (float32).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import clearconv as cc
from clearconv.errors import ClearConvError
from clearconv.io.onnx import to_onnx
from clearconv.layers import (
    AdaptiveAvgPool1D,
    AdaptiveAvgPool2D,
    AdaptiveMaxPool1D,
    AdaptiveMaxPool2D,
    AvgPool1D,
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Concat,
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

onnx = pytest.importorskip("onnx", reason="onnx not installed (pip install clearconv[onnx]): "
                                          "ONNX export not checked")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install "
                                                "clearconv[onnx]): exported models not run")

TOL = {"rtol": 1e-5, "atol": 1e-5}


def _conv_head(conv: Conv2D, shape: tuple[int, int, int], k: int = 3) -> cc.Sequential:
    """conv -> ReLU -> Flatten -> Dense(k): a complete classifier around one conv."""
    feats = int(np.prod(conv.output_shape(shape)))
    return cc.Sequential(conv, ReLU(), Flatten(), Dense(feats, k, rng=1), input_shape=shape)


def _pool_model(pool: Layer, shape: tuple[int, int, int]) -> cc.Sequential:
    conv = Conv2D(shape[0], 3, 3, padding=1, rng=2)
    out = pool.output_shape(conv.output_shape(shape))
    return cc.Sequential(conv, Tanh(), pool, Flatten(), Dense(int(np.prod(out)), 4, rng=3),
                         input_shape=shape)


def _bn(layer: Layer, seed: int) -> Layer:
    """A batch-norm layer with random weight, bias and running statistics."""
    rng = np.random.default_rng(seed)
    c = layer.num_features
    if layer.affine:
        layer.weight.value[...] = rng.random(c) + 0.5
        layer.bias.value[...] = rng.standard_normal(c)
    layer.running_mean[...] = rng.standard_normal(c)
    layer.running_var[...] = rng.random(c) + 0.5
    return layer


MODELS: dict[str, Callable[[], cc.Sequential]] = {
    "conv-pad-int": lambda: _conv_head(Conv2D(2, 4, 3, padding=1, rng=0), (2, 7, 8)),
    "conv-pad-pair": lambda: _conv_head(Conv2D(2, 4, (3, 5), padding=(1, 2), rng=0),
                                        (2, 7, 8)),
    "conv-pad-asymmetric": lambda: _conv_head(
        Conv2D(2, 4, 3, padding=((0, 1), (2, 0)), rng=0), (2, 7, 8)),
    "conv-valid": lambda: _conv_head(Conv2D(2, 4, 3, padding="valid", rng=0), (2, 7, 8)),
    "conv-same-even-kernel": lambda: _conv_head(Conv2D(2, 4, 4, padding="same", rng=0),
                                                (2, 7, 8)),
    "conv-same-stride2-tf": lambda: _conv_head(
        Conv2D(2, 4, 3, stride=2, padding="same", rng=0), (2, 7, 8)),
    "conv-same-stride2-even-kernel": lambda: _conv_head(
        Conv2D(2, 4, 4, stride=(2, 3), padding="same", rng=0), (2, 9, 10)),
    "conv-dilation2": lambda: _conv_head(
        Conv2D(2, 4, 3, padding=2, dilation=2, stride=2, rng=0), (2, 9, 8)),
    "conv-same-dilation2": lambda: _conv_head(
        Conv2D(2, 4, 2, padding="same", dilation=2, rng=0), (2, 6, 7)),
    "conv-no-bias": lambda: _conv_head(Conv2D(2, 4, 3, bias=False, rng=0), (2, 6, 6)),
    "maxpool": lambda: _pool_model(MaxPool2D(2), (1, 8, 8)),
    "maxpool-ceil-padding": lambda: _pool_model(MaxPool2D(3, 2, 1, ceil_mode=True), (2, 8, 9)),
    "maxpool-ceil": lambda: _pool_model(MaxPool2D(2, ceil_mode=True), (1, 7, 5)),
    "avgpool": lambda: _pool_model(AvgPool2D((2, 3), (1, 2)), (2, 7, 9)),
    "avgpool-padding": lambda: _pool_model(AvgPool2D(3, 2, 1), (2, 7, 8)),
    "avgpool-ceil-padding": lambda: _pool_model(AvgPool2D(3, 2, 1, ceil_mode=True), (2, 8, 9)),
    "avgpool-ceil": lambda: _pool_model(AvgPool2D(2, ceil_mode=True), (1, 7, 5)),
    "avgpool-exclude-pad": lambda: _pool_model(
        AvgPool2D(3, 2, 1, count_include_pad=False), (2, 7, 8)),
    "avgpool-exclude-pad-ceil": lambda: _pool_model(
        AvgPool2D(3, 2, 1, ceil_mode=True, count_include_pad=False), (2, 8, 9)),
    "activations-dropout-softmax": lambda: cc.Sequential(
        Conv2D(1, 3, 3, padding="same", rng=4), LeakyReLU(0.2), MaxPool2D(2), Dropout(0.5),
        Conv2D(3, 3, 3, rng=5), Sigmoid(), Flatten(), Dense(18, 8, rng=6), Tanh(),
        Dense(8, 5, bias=False, rng=7), ReLU(), Softmax(axis=1), input_shape=(1, 8, 10)),
    "softmax-over-channels": lambda: cc.Sequential(
        Conv2D(2, 3, 1, rng=8), Softmax(axis=1), Flatten(), input_shape=(2, 3, 4)),
    "softmax-last-axis": lambda: cc.Sequential(
        Conv2D(2, 3, 1, rng=8), Softmax(axis=-1), input_shape=(2, 3, 4)),
    "grouped-depthwise-transposed-1d": lambda: cc.Sequential(
        Conv2D(2, 6, 3, padding=1, groups=2, rng=11), ReLU(),
        Conv2D(6, 6, 3, stride=2, padding="same", groups=6, rng=12),
        ConvTranspose2D(6, 4, 4, stride=2, padding=1, output_padding=1, groups=2, rng=13),
        Flatten(), input_shape=(2, 6, 7)),
    "conv1d": lambda: cc.Sequential(
        Conv1D(3, 4, 3, stride=2, padding=1, rng=14), ReLU(),
        Conv1D(4, 4, 5, padding="same", groups=4, rng=15), input_shape=(3, 11)),
    "residual-concat": lambda: cc.Sequential(
        Conv2D(2, 4, 3, padding=1, rng=16),
        Residual([Conv2D(4, 4, 3, padding=1, rng=17), ReLU()]),
        Residual([Conv2D(4, 6, 3, stride=2, padding=1, rng=18)], [Conv2D(4, 6, 1, stride=2,
                                                                          rng=19)]),
        Concat([], [Conv2D(6, 2, 1, rng=20)]), Flatten(), input_shape=(2, 6, 6)),
    "maxpool-dilated-asymmetric": lambda: _pool_model(
        MaxPool2D(3, 2, ((1, 0), (0, 1)), dilation=2), (2, 9, 8)),
    "maxpool-dilated-ceil": lambda: _pool_model(
        MaxPool2D(2, 2, 1, ceil_mode=True, dilation=(2, 1)), (1, 8, 7)),
    "avgpool-asymmetric-ceil": lambda: _pool_model(
        AvgPool2D(3, 2, ((1, 0), (0, 1)), ceil_mode=True), (2, 8, 9)),
    "avgpool-divisor-override": lambda: _pool_model(
        AvgPool2D(3, 2, 1, ceil_mode=True, divisor_override=4), (2, 8, 9)),
    "global-and-adaptive": lambda: cc.Sequential(
        Conv2D(2, 4, 3, padding=1, rng=21), ReLU(), AdaptiveMaxPool2D((4, 3)),
        AdaptiveAvgPool2D((2, 3)), GlobalMaxPool2D(), Upsample(scale_factor=2),
        GlobalAvgPool2D(flatten=True), Dense(4, 3, rng=22), input_shape=(2, 8, 9)),
    "upsample-nearest-size": lambda: cc.Sequential(
        Conv2D(2, 3, 1, rng=23), Upsample(size=(11, 7)), Flatten(), input_shape=(2, 5, 3)),
    "upsample-nearest-scale": lambda: cc.Sequential(
        Conv2D(2, 3, 1, rng=23), Upsample(scale_factor=(3, 2.5)), Flatten(),
        input_shape=(2, 5, 4)),
    "upsample-bilinear": lambda: cc.Sequential(
        Conv2D(2, 3, 1, rng=24), Upsample(size=(9, 13), mode="bilinear"),
        Upsample(scale_factor=1.5, mode="bilinear", align_corners=True), Flatten(),
        input_shape=(2, 5, 6)),
    "pool1d": lambda: cc.Sequential(
        Conv1D(2, 4, 3, padding=1, rng=25), ReLU(), MaxPool1D(3, 2, (1, 0), dilation=2),
        AvgPool1D(2, 1, 1, ceil_mode=True), AdaptiveAvgPool1D(2), GlobalAvgPool1D(),
        Flatten(), input_shape=(2, 17)),
    "pool1d-max": lambda: cc.Sequential(
        Conv1D(2, 4, 3, padding=1, rng=26), AdaptiveMaxPool1D(6), GlobalMaxPool1D(flatten=True),
        input_shape=(2, 12)),
    "batchnorm": lambda: cc.Sequential(
        Conv2D(2, 4, 3, padding=1, bias=False, rng=21), _bn(BatchNorm2D(4), 22), ReLU(),
        Residual([Conv2D(4, 4, 3, padding=1, rng=23), _bn(BatchNorm2D(4, affine=False), 24)]),
        Flatten(), Dense(4 * 5 * 6, 6, rng=25), _bn(BatchNorm1D(6, eps=1e-3), 26),
        input_shape=(2, 5, 6)),
    "flatten-start-dim": lambda: cc.Sequential(
        Conv2D(2, 3, 3, padding=1, rng=21), Flatten(start_dim=2), Softmax(axis=-1),
        Flatten(), input_shape=(2, 4, 5)),
    "dense-only": lambda: cc.Sequential(
        Dense(6, 5, rng=9), LeakyReLU(), Dropout(0.1), Dense(5, 3, rng=10),
        input_shape=(6,)),
}


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _inputs(model: cc.Sequential, batch: int, dtype: type = np.float32,
            seed: int = 0) -> np.ndarray:
    shape = (batch, *model.input_shape)
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("name", list(MODELS))
def test_onnxruntime_output_equals_forward(name: str, tmp_path: Path) -> None:
    model = MODELS[name]()
    path = tmp_path / "model.onnx"
    to_onnx(model, path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    sess = _session(path)
    for batch in (1, 5):
        x = _inputs(model, batch, seed=batch)
        (got,) = sess.run(None, {"input": x})
        want = model.forward(x)
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, **TOL, err_msg=f"{name}, batch {batch}")


def test_model_covers_every_layer_type() -> None:
    used = {type(layer) for make in MODELS.values() for layer in make().layers}
    every = {cls for name, cls in Layer.registry.items()
             if cls.__module__.startswith("clearconv.") and not name.startswith("_")}
    every.discard(MaxUnpool2D)  # two inputs (x, indices): no layer of a Sequential
    assert every <= used, f"layers without an export test: {every - used}"


@pytest.mark.parametrize("opset", [13, 17, 21])
def test_opsets(opset: int, tmp_path: Path) -> None:
    model = MODELS["avgpool-ceil-padding"]()
    path = tmp_path / "m.onnx"
    to_onnx(model, path, opset=opset)
    proto = onnx.load(str(path))
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [opset]
    x = _inputs(model, 3)
    np.testing.assert_allclose(_session(path).run(None, {"input": x})[0], model.forward(x), **TOL)


def test_names_dynamic_batch_and_initializers(tmp_path: Path) -> None:
    model = MODELS["activations-dropout-softmax"]()
    path = tmp_path / "m.onnx"
    to_onnx(model, path, batch_dim="batch", input_name="images", output_name="probs")
    proto = onnx.load(str(path))
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert inp.name == "images" and out.name == "probs"
    in_dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    out_dims = [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]
    assert in_dims == ["batch", 1, 8, 10] and out_dims == ["batch", 5]
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    state = model.state_dict()
    assert set(state) <= set(inits)
    for key, value in state.items():
        np.testing.assert_array_equal(inits[key], value)
    assert [n.op_type for n in proto.graph.node].count("Identity") == 1   # the Dropout
    assert proto.producer_name == "clearconv"
    sess = _session(path)
    x = _inputs(model, 7)
    np.testing.assert_allclose(sess.run(["probs"], {"images": x})[0], model.forward(x), **TOL)


def test_trained_model_exports(tmp_path: Path) -> None:
    model = MODELS["maxpool-ceil-padding"]()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 2, 8, 9)).astype(np.float32)
    y = rng.integers(0, 4, 16)
    model.fit(x, y, epochs=2, batch_size=8, optimizer=cc.optim.SGD(model.parameters(), lr=0.05),
              verbose=0, seed=0)
    path = tmp_path / "trained.onnx"
    to_onnx(model, path)
    np.testing.assert_allclose(_session(path).run(None, {"input": x})[0], model.predict(x),
                               **TOL)


def test_float64_model_exports_as_float64(tmp_path: Path) -> None:
    # LeakyReLU's slope is a float32 attribute in ONNX: 0.25 is exact in both dtypes
    model = cc.Sequential(Dropout(0.3), Dense(6, 5, rng=9, dtype=np.float64), LeakyReLU(0.25),
                          Flatten(), Dense(5, 4, rng=10, dtype=np.float64), Tanh(),
                          Softmax(axis=-1), input_shape=(6,))
    path = tmp_path / "m64.onnx"
    to_onnx(model, path)
    proto = onnx.load(str(path))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    assert all(t.data_type == onnx.TensorProto.DOUBLE for t in proto.graph.initializer)
    x = _inputs(model, 5, np.float64)
    (got,) = _session(path).run(None, {"input": x})
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, model.forward(x), rtol=1e-12, atol=1e-12)


def test_float64_conv_model_warns_and_exports_as_float32_on_request(tmp_path: Path) -> None:
    model = MODELS["avgpool-ceil-padding"]().astype(np.float64)
    with pytest.warns(UserWarning, match="dtype='float32'"):
        to_onnx(model, tmp_path / "m64.onnx")
    onnx.checker.check_model(onnx.load(str(tmp_path / "m64.onnx")), full_check=True)
    to_onnx(model, tmp_path / "m32.onnx", dtype="float32")
    x = _inputs(model, 5, np.float64)
    (got,) = _session(tmp_path / "m32.onnx").run(None, {"input": x.astype(np.float32)})
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, model.forward(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("layer", [GlobalAvgPool2D(), GlobalMaxPool2D(), AdaptiveAvgPool2D(2),
                                   Upsample(scale_factor=2, mode="bilinear"), AvgPool1D(2)])
def test_float64_export_warns_for_every_operator_onnxruntime_lacks_in_float64(
        layer: Layer, tmp_path: Path) -> None:
    shape = (2, 4, 6) if type(layer) is not AvgPool1D else (2, 6)
    with pytest.warns(UserWarning, match="dtype='float32'"):
        to_onnx(cc.Sequential(layer, input_shape=shape), tmp_path / "m64.onnx",
                dtype="float64")


def test_float64_max_pooling_runs_in_onnxruntime_in_float64(tmp_path: Path) -> None:
    import warnings

    model = cc.Sequential(MaxPool2D(2, 1, ((1, 0), (0, 1)), dilation=(1, 2)),
                          AdaptiveMaxPool2D((2, 5)), input_shape=(2, 4, 6))
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no float64 warning for these
        to_onnx(model, tmp_path / "m64.onnx", dtype="float64")
    x = _inputs(model, 3, np.float64)
    (got,) = _session(tmp_path / "m64.onnx").run(None, {"input": x})
    assert got.dtype == np.float64
    want = x
    for layer in model.layers:      # the layers themselves: a model without parameters
        want = layer.forward(want)  # computes in float32
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_unknown_input_shape_is_refused(tmp_path: Path) -> None:
    model = cc.Sequential(Dense(3, 2, rng=0))
    with pytest.raises(ClearConvError, match="build the model with input_shape.*or fit it"):
        to_onnx(model, tmp_path / "m.onnx")
    assert not os.listdir(tmp_path)


class _Doubler(Layer):
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return 2 * x


def test_unsupported_layer_is_named(tmp_path: Path) -> None:
    model = cc.Sequential(Dense(3, 2, rng=0), _Doubler(), input_shape=(3,))
    with pytest.raises(ClearConvError, match=r"layer 1 \(_Doubler\) has no ONNX export"):
        to_onnx(model, tmp_path / "m.onnx")
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("kwargs, match", [
    ({"opset": 12}, "opset must be in"),
    ({"opset": 10_000}, "opset must be in"),
    ({"dtype": "float16"}, "float32 and float64"),
])
def test_bad_arguments_are_refused(kwargs: dict, match: str, tmp_path: Path) -> None:
    with pytest.raises(ClearConvError, match=match):
        to_onnx(MODELS["dense-only"](), tmp_path / "m.onnx", **kwargs)


def test_missing_onnx_says_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ClearConvError, match=r"pip install clearconv\[onnx\]"):
        to_onnx(MODELS["dense-only"](), tmp_path / "m.onnx")


def test_write_is_atomic(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    to_onnx(MODELS["dense-only"](), path)
    assert os.listdir(tmp_path) == ["m.onnx"]
    assert (os.stat(path).st_mode & 0o777) == 0o640
    onnx.checker.check_model(onnx.load(str(path)))
    good = path.read_bytes()

    def failing_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        to_onnx(MODELS["conv-valid"](), path)
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["m.onnx"]
