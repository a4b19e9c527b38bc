"""Export a :class:`~clearconv.train.sequential.Sequential` to ONNX, to run it in
onnxruntime and elsewhere.

Each layer becomes one ONNX operator (two for average pooling with both ``ceil_mode``
and ``count_include_pad``), with the weights stored as initializers named by the
model's ``state_dict`` keys (``'0.weight'``, ``'0.bias'``, ...):

=================  ==========================================================
clearconv          ONNX (opset >= 13)
=================  ==========================================================
Conv2D             Conv, explicit ``pads`` [top, left, bottom, right]: every
                   padding form, asymmetric and TensorFlow-style 'same' included;
                   ``group`` for grouped and depthwise convolutions
ConvTranspose2D    ConvTranspose, ``pads`` and ``output_padding``, ``group``
Conv1D             Conv on one spatial axis
Residual           its branches, then Add
Concat             its branches, then Concat (axis 1)
MaxPool2D          MaxPool, ``ceil_mode`` folded into the bottom/right pads,
                   asymmetric pads, ``dilations``
AvgPool2D          AveragePool (a Pad first when the padding counts and
                   ``ceil_mode`` adds a partial window; a Mul after it for
                   ``divisor_override``)
GlobalAvgPool2D,    GlobalAveragePool, GlobalMaxPool (a Flatten after them with
GlobalMaxPool2D,   ``flatten=True``)
GlobalAvgPool1D,
GlobalMaxPool1D
AdaptiveAvgPool2D, AveragePool / MaxPool with window = stride = input / output
AdaptiveMaxPool2D  where the sizes divide (Global*Pool for 1x1); refused otherwise
Upsample           Resize: nearest 'asymmetric' + 'floor', bilinear 'linear' with
                   'pytorch_half_pixel' or 'align_corners' (PyTorch's rules)
MaxPool1D,         Unsqueeze, their 2-D twin on (N, C, 1, L), Squeeze
AvgPool1D,
AdaptiveAvgPool1D,
AdaptiveMaxPool1D
Dense              Gemm, ``transB=1`` (weight (out, in), as ``nn.Linear``)
BatchNorm2D,       BatchNormalization (inference: the running statistics; scale
BatchNorm1D        1 and bias 0 without ``affine``)
Flatten            Flatten, ``axis=1`` (other dims: Reshape, batch axis kept)
ReLU, Sigmoid,     Relu, Sigmoid, Tanh, LeakyRelu (``alpha``), Softmax (``axis``)
Tanh, LeakyReLU,
Softmax
Dropout            Identity (dropout is the identity at inference)
=================  ==========================================================

ONNX stores float attributes in float32: a float64 model's LeakyReLU slope is rounded to
float32 unless it is exact there (0.25, 0.125, ...).

Pooling never sets ONNX's ``ceil_mode``: how a runtime rounds the last window has
changed between ONNX versions (opset 19) and runtimes, while explicit pads leave no
doubt. Per axis, PyTorch's (and clearconv's) ``ceil_mode`` keeps a last window that
starts inside the input or its left padding (MATH.md §10); the export pads the
bottom/right by exactly the overhang of that window, ``extra < kernel - padding``, and
the overhang never counts in an average.

Example
-------
>>> import clearconv as cc                                          # doctest: +SKIP
>>> from clearconv.io.onnx import to_onnx                       # doctest: +SKIP
>>> to_onnx(model, "model.onnx")                                    # doctest: +SKIP
>>> import onnxruntime as ort                                       # doctest: +SKIP
>>> sess = ort.InferenceSession("model.onnx")                       # doctest: +SKIP
>>> logits = sess.run(None, {"input": x.astype("float32")})[0]      # doctest: +SKIP
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import ClearConvError
from ..functional import pool2d_geometry
from ..layers import (
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
    ReLU,
    Residual,
    Sigmoid,
    Softmax,
    Tanh,
    Upsample,
)
from ..shapes import resolve_padding
from .files import atomic_write

__all__ = ["MIN_OPSET", "to_onnx"]

#: Softmax takes a true per-axis ``axis`` from opset 13 on (before, it flattened to 2-D)
MIN_OPSET = 13


#: operators onnxruntime's CPU provider has no float64 kernel for (1.32)
_NO_FLOAT64_IN_ORT = {"Conv", "ConvTranspose", "AveragePool", "GlobalAveragePool",
                      "GlobalMaxPool", "Resize"}


def to_onnx(model: Any, path: str | os.PathLike[str], opset: int = 17, batch_dim: str = "N",
            input_name: str = "input", output_name: str = "logits",
            dtype: np.dtype | type | str | None = None) -> None:
    """Write ``model`` as an ONNX file at ``path`` (atomically), checked by ``onnx.checker``.

    Parameters
    ----------
    model : Sequential
        Must know its per-sample input shape (C, H, W) (or (features,) for a dense-only
        model): built with ``input_shape=...`` or fitted.
    path : str or PathLike
        Written through a temporary file in the same folder and ``os.replace``: a failed
        export leaves an existing file untouched.
    opset : int
        ONNX opset of the default domain, from 13 (Softmax with a per-axis ``axis``) to the
        newest that the installed ``onnx`` knows. Default 17.
    batch_dim : str
        Name of the dynamic batch dimension of the input and the output: the graph takes
        any batch size.
    input_name, output_name : str
        Names of the graph's input (N, *input_shape) and output (N, *output_shape).
    dtype : None, 'float32' or 'float64'
        Element type of the graph (weights, input, output). None keeps the model's dtype.
        A float64 model exports as float64, faithfully; but onnxruntime's CPU provider
        has no float64 Conv, AveragePool, global pooling or Resize kernel (1.32), so such
        a model warns and runs
        there only when exported with ``dtype='float32'``.

    Raises
    ------
    ClearConvError
        Unknown input shape, a layer type with no ONNX equivalent (named), an opset out of
        range, a dtype other than float32/float64, or ``onnx`` not installed.
    """
    onnx = _import_onnx()
    from onnx import TensorProto, helper

    if model.input_shape is None:
        raise ClearConvError("to_onnx needs the model's input shape: build the model with "
                             "input_shape=(C, H, W) or fit it first")
    opset = int(opset)
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise ClearConvError(f"opset must be in [{MIN_OPSET}, {newest}] (the newest that onnx "
                             f"{onnx.__version__} knows), got {opset}")
    dt = np.dtype(model.dtype if dtype is None else dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ClearConvError(f"ONNX export supports float32 and float64, got dtype {dt}")
    elem = TensorProto.DOUBLE if dt == np.float64 else TensorProto.FLOAT

    graph = _Graph(dt)
    shape = tuple(int(s) for s in model.input_shape)
    current = input_name
    for i, layer in enumerate(model.layers):
        export = _EXPORTERS.get(type(layer))
        if export is None:
            supported = ", ".join(sorted(cls.__name__ for cls in _EXPORTERS))
            raise ClearConvError(f"layer {i} ({type(layer).__name__}) has no ONNX export; "
                                 f"supported layers: {supported}")
        out = output_name if i == len(model.layers) - 1 else f"{i}.out"
        try:
            export(graph, layer, f"{i}", current, out, shape)
            shape = tuple(layer.output_shape(shape))
        except ClearConvError as e:
            raise ClearConvError(f"layer {i} ({type(layer).__name__}): {e}") from None
        current = out
    if not model.layers:
        graph.node("Identity", [input_name], [output_name], "identity")
    lacking = sorted({n.op_type for n in graph.nodes} & _NO_FLOAT64_IN_ORT)
    if dt == np.float64 and lacking:
        warnings.warn(f"exporting a float64 model with {', '.join(lacking)}: onnxruntime's "
                      f"CPU provider has no float64 kernels for them; pass dtype='float32' "
                      f"to run the file there", UserWarning, stacklevel=2)

    from .._version import __version__

    onnx_graph = helper.make_graph(
        graph.nodes, "clearconv_sequential",
        [helper.make_tensor_value_info(input_name, elem, [batch_dim, *model.input_shape])],
        [helper.make_tensor_value_info(output_name, elem, [batch_dim, *shape])],
        graph.initializers)
    proto = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="clearconv", producer_version=__version__,
                              doc_string=f"clearconv Sequential, {len(model.layers)} layers")
    # the oldest IR version that carries this opset: runtimes refuse IR versions newer
    # than they know, and onnx itself writes its newest
    proto.ir_version = helper.find_min_ir_version_for(list(proto.opset_import))
    onnx.checker.check_model(proto, full_check=True)
    _write_bytes_atomic(os.fspath(path), proto.SerializeToString())


class _Graph:
    """Nodes and initializers collected layer by layer."""

    def __init__(self, dtype: np.dtype) -> None:
        from onnx import numpy_helper

        self.dtype = dtype
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._from_array = numpy_helper.from_array

    def node(self, op: str, inputs: list[str], outputs: list[str], name: str,
             **attrs: Any) -> None:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, outputs, name=name, **attrs))

    def constant(self, name: str, value: np.ndarray) -> str:
        """Add an initializer (float arrays cast to the graph's dtype); return its name."""
        value = np.ascontiguousarray(value)
        if value.dtype.kind == "f":
            value = value.astype(self.dtype)
        self.initializers.append(self._from_array(value, name))
        return name


def _conv(g: _Graph, layer: Conv2D, i: str, x: str, y: str, shape: tuple[int, ...]) -> None:
    (pt, pb), (pl, pr) = resolve_padding(layer.padding, layer.kernel_size, layer.stride,
                                         layer.dilation, (shape[1], shape[2]))
    inputs = [x, g.constant(f"{i}.weight", layer.weight.value)]
    if layer.bias is not None:
        inputs.append(g.constant(f"{i}.bias", layer.bias.value))
    g.node("Conv", inputs, [y], f"{i}.Conv2D", kernel_shape=list(layer.kernel_size),
           strides=list(layer.stride), dilations=list(layer.dilation), pads=[pt, pl, pb, pr],
           group=layer.groups)


def _conv_transpose(g: _Graph, layer: ConvTranspose2D, i: str, x: str, y: str,
                    shape: tuple[int, ...]) -> None:
    """ConvTranspose with PyTorch's semantics: symmetric ``pads``, ``output_padding``."""
    inputs = [x, g.constant(f"{i}.weight", layer.weight.value)]
    if layer.bias is not None:
        inputs.append(g.constant(f"{i}.bias", layer.bias.value))
    (ph, pw), (oh, ow) = layer.padding, layer.output_padding
    g.node("ConvTranspose", inputs, [y], f"{i}.ConvTranspose2D",
           kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
           dilations=list(layer.dilation), pads=[ph, pw, ph, pw], output_padding=[oh, ow],
           group=layer.groups)


def _conv1d(g: _Graph, layer: Conv1D, i: str, x: str, y: str, shape: tuple[int, ...]) -> None:
    """A 1-D Conv (ONNX's Conv takes any number of spatial axes)."""
    (_, _), (pl, pr) = resolve_padding(layer.padding, layer.kernel_size, layer.stride,
                                       layer.dilation, (1, shape[1]))
    inputs = [x, g.constant(f"{i}.weight", np.ascontiguousarray(layer.weight.value))]
    if layer.bias is not None:
        inputs.append(g.constant(f"{i}.bias", layer.bias.value))
    g.node("Conv", inputs, [y], f"{i}.Conv1D", kernel_shape=[layer.kernel_size[1]],
           strides=[layer.stride[1]], dilations=[layer.dilation[1]], pads=[pl, pr],
           group=layer.groups)


def _pool_geometry(layer: MaxPool2D | AvgPool2D, shape: tuple[int, ...]) -> Any:
    """The layer's pooling geometry: ``padding`` holds ``ceil_mode``'s overhang at the
    bottom/right, ``user_padding`` the padding asked for."""
    return pool2d_geometry((1, *shape), layer.kernel_size, layer.stride, layer.padding,
                           layer.ceil_mode, type(layer).__name__, layer.dilation)


def _max_pool(g: _Graph, layer: MaxPool2D, i: str, x: str, y: str,
              shape: tuple[int, ...]) -> None:
    # ONNX MaxPool ignores padded cells (as -inf): the same as PyTorch's implicit padding
    if layer.return_indices:
        raise ClearConvError(f"{i} (MaxPool2D) returns indices: no ONNX export of a "
                             f"two-output layer")
    (pt, pb), (pl, pr) = _pool_geometry(layer, shape).padding
    kh, kw = layer.kernel_size
    if max(pt, pb) >= kh or max(pl, pr) >= kw:
        # ONNX wants pads < kernel; a dilated window's ceil_mode overhang can reach it:
        # pad with -inf explicitly (padding never wins either way)
        pads = g.constant(f"{i}.pads", np.array([0, 0, pt, pl, 0, 0, pb, pr], np.int64))
        fill = g.constant(f"{i}.fill", np.array(-np.inf))
        g.node("Pad", [x, pads, fill], [f"{i}.padded"], f"{i}.Pad", mode="constant")
        x, (pt, pb), (pl, pr) = f"{i}.padded", (0, 0), (0, 0)
    g.node("MaxPool", [x], [y], f"{i}.MaxPool2D", kernel_shape=list(layer.kernel_size),
           strides=list(layer.stride), pads=[pt, pl, pb, pr], ceil_mode=0,
           dilations=list(layer.dilation))


def _avg_pool(g: _Graph, layer: AvgPool2D, i: str, x: str, y: str,
              shape: tuple[int, ...]) -> None:
    geo = _pool_geometry(layer, shape)
    (pt, pb), (pl, pr) = geo.padding
    (ut, ub), (ul, ur) = geo.user_padding
    common = {"kernel_shape": list(layer.kernel_size), "strides": list(layer.stride),
              "ceil_mode": 0}
    if layer.divisor_override is not None:
        # every window sum over the (zero-)padded input divided by the override: the
        # average over the whole window (all pads counted) times kh*kw / override
        kh, kw = layer.kernel_size
        g.node("AveragePool", [x], [f"{i}.mean"], f"{i}.AvgPool2D", pads=[pt, pl, pb, pr],
               count_include_pad=1, **common)
        scale = g.constant(f"{i}.scale", np.array(kh * kw / layer.divisor_override))
        g.node("Mul", [f"{i}.mean", scale], [y], f"{i}.divisor_override")
    elif not layer.count_include_pad:
        # the divisor counts input cells only: padding and overhang alike excluded
        g.node("AveragePool", [x], [y], f"{i}.AvgPool2D", pads=[pt, pl, pb, pr],
               count_include_pad=0, **common)
    elif geo.ceil_extra == (0, 0):
        # no ceil_mode overhang: zero padding, all counted
        g.node("AveragePool", [x], [y], f"{i}.AvgPool2D", pads=[pt, pl, pb, pr],
               count_include_pad=1, **common)
    else:
        # the padding counts but ceil_mode's overhang does not (PyTorch's divisor is the
        # window clipped to the padded input): zero-pad explicitly, then average with the
        # overhang excluded
        pads = g.constant(f"{i}.pads", np.array([0, 0, ut, ul, 0, 0, ub, ur], np.int64))
        g.node("Pad", [x, pads], [f"{i}.padded"], f"{i}.Pad", mode="constant")
        g.node("AveragePool", [f"{i}.padded"], [y], f"{i}.AvgPool2D",
               pads=[0, 0, pb - ub, pr - ur], count_include_pad=0, **common)


def _flatten_after(g: _Graph, flatten: bool, i: str, op: str, x: str, y: str,
                   name: str) -> None:
    """``op`` from x, then a Flatten(axis=1) into y where the layer flattens."""
    g.node(op, [x], [f"{i}.pooled" if flatten else y], f"{i}.{name}")
    if flatten:
        g.node("Flatten", [f"{i}.pooled"], [y], f"{i}.Flatten", axis=1)


def _global_pool(op: str) -> Callable[..., None]:
    def export(g: _Graph, layer: Any, i: str, x: str, y: str, shape: tuple[int, ...]) -> None:
        _flatten_after(g, layer.flatten, i, op, x, y, type(layer).__name__)
    return export


def _adaptive(g: _Graph, layer: AdaptiveAvgPool2D | AdaptiveMaxPool2D, i: str, x: str,
              y: str, shape: tuple[int, ...]) -> None:
    """An adaptive pooling whose output size divides the input's is a plain pooling with
    window = stride = input / output (ONNX has no adaptive operator)."""
    ho, wo = layer.output_shape(shape)[1:]
    h, w = shape[1:]
    average = type(layer) is AdaptiveAvgPool2D
    if (ho, wo) == (1, 1):
        g.node("GlobalAveragePool" if average else "GlobalMaxPool", [x], [y],
               f"{i}.{type(layer).__name__}")
        return
    if h % ho or w % wo:
        raise ClearConvError(f"adaptive pooling of {h}x{w} to {ho}x{wo}: ONNX has no "
                             f"adaptive pooling, and these sizes do not divide (windows of "
                             f"unequal size)")
    window = [h // ho, w // wo]
    g.node("AveragePool" if average else "MaxPool", [x], [y], f"{i}.{type(layer).__name__}",
           kernel_shape=window, strides=window)


def _upsample(g: _Graph, layer: Upsample, i: str, x: str, y: str,
              shape: tuple[int, ...]) -> None:
    """Resize with PyTorch's coordinate rules: nearest as 'asymmetric' + 'floor',
    bilinear as 'pytorch_half_pixel' (or 'align_corners'); the scale factors as scales,
    a size as the full sizes (the batch and channels read off the input)."""
    if layer.mode == "nearest":
        attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
                 "nearest_mode": "floor"}
    else:
        attrs = {"mode": "linear", "coordinate_transformation_mode":
                 "align_corners" if layer.align_corners else "pytorch_half_pixel"}
    if layer.scale_factor is not None:
        sf = layer.scale_factor if isinstance(layer.scale_factor, tuple) \
            else (layer.scale_factor, layer.scale_factor)
        scales = f"{i}.scales"      # float32 in every graph (ONNX's type for scales)
        g.initializers.append(g._from_array(np.array([1.0, 1.0, *sf], np.float32), scales))
        g.node("Resize", [x, "", scales], [y], f"{i}.Upsample", **attrs)
        return
    ho, wo = layer.output_shape(shape)[1:]
    g.node("Shape", [x], [f"{i}.shape"], f"{i}.Shape")
    starts = g.constant(f"{i}.starts", np.array([0], np.int64))
    ends = g.constant(f"{i}.ends", np.array([2], np.int64))
    g.node("Slice", [f"{i}.shape", starts, ends], [f"{i}.nc"], f"{i}.Slice")
    hw = g.constant(f"{i}.hw", np.array([ho, wo], np.int64))
    g.node("Concat", [f"{i}.nc", hw], [f"{i}.sizes"], f"{i}.Concat", axis=0)
    g.node("Resize", [x, "", "", f"{i}.sizes"], [y], f"{i}.Upsample", **attrs)


def _as_2d(make_2d: Callable[[Any], Layer]) -> Callable[..., None]:
    """A 1-D layer as its 2-D twin on the (N, C, 1, L) view: Unsqueeze, the 2-D export,
    Squeeze (as the 1-D ops compute)."""
    def export(g: _Graph, layer: Any, i: str, x: str, y: str, shape: tuple[int, ...]) -> None:
        axes = g.constant(f"{i}.axes", np.array([2], np.int64))
        g.node("Unsqueeze", [x, axes], [f"{i}.2d"], f"{i}.Unsqueeze")
        twin = make_2d(layer)
        _EXPORTERS[type(twin)](g, twin, f"{i}.2d", f"{i}.2d", f"{i}.2d.out",
                               (shape[0], 1, shape[1]))
        g.node("Squeeze", [f"{i}.2d.out", axes], [y], f"{i}.Squeeze")
    return export


def _pads_1d(layer: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    p = layer.padding
    return (0, 0), (p, p) if isinstance(p, int) else tuple(p)


def _dense(g: _Graph, layer: Dense, i: str, x: str, y: str, shape: tuple[int, ...]) -> None:
    inputs = [x, g.constant(f"{i}.weight", layer.weight.value)]
    if layer.bias is not None:
        inputs.append(g.constant(f"{i}.bias", layer.bias.value))
    g.node("Gemm", inputs, [y], f"{i}.Dense", transB=1)


def _batch_norm(g: _Graph, layer: BatchNorm2D | BatchNorm1D, i: str, x: str, y: str,
                shape: tuple[int, ...]) -> None:
    """BatchNormalization in inference mode: ``(x - running_mean) / sqrt(running_var +
    eps) * scale + B``, what clearconv's inference computes."""
    if not layer.track_running_stats:
        raise ClearConvError("track_running_stats=False normalises every batch with its own "
                             "statistics; ONNX's BatchNormalization needs running ones")
    c = layer.num_features
    scale = layer.weight.value if layer.weight is not None else np.ones(c)
    bias = layer.bias.value if layer.bias is not None else np.zeros(c)
    inputs = [x, g.constant(f"{i}.weight", scale), g.constant(f"{i}.bias", bias),
              g.constant(f"{i}.running_mean", layer.running_mean),
              g.constant(f"{i}.running_var", layer.running_var)]
    g.node("BatchNormalization", inputs, [y], f"{i}.{type(layer).__name__}",
           epsilon=layer.eps)


def _flatten(g: _Graph, layer: Flatten, i: str, x: str, y: str,
              shape: tuple[int, ...]) -> None:
    """Flatten (axis 1) for the default layer; otherwise a Reshape to the per-sample
    output shape, the batch axis copied (a 0 in ONNX's shape)."""
    if layer.start_dim == 1 and layer.end_dim == -1:
        g.node("Flatten", [x], [y], f"{i}.Flatten", axis=1)
        return
    target = np.array([0, *layer.output_shape(shape)], np.int64)
    g.node("Reshape", [x, g.constant(f"{i}.shape", target)], [y], f"{i}.Flatten")


def _simple(op: str, **attrs: Callable[[Any], Any]) -> Callable[..., None]:
    """An exporter for a one-input operator whose attributes read off the layer."""

    def export(g: _Graph, layer: Layer, i: str, x: str, y: str, shape: tuple[int, ...]) -> None:
        g.node(op, [x], [y], f"{i}.{type(layer).__name__}",
               **{k: f(layer) for k, f in attrs.items()})

    return export


def _chain(g: _Graph, chain: list[Layer], prefix: str, x: str, shape: tuple[int, ...]
           ) -> tuple[str, tuple[int, ...]]:
    """Export a branch's layers in turn; the name and per-sample shape of its output."""
    for j, layer in enumerate(chain):
        export = _EXPORTERS.get(type(layer))
        if export is None:
            raise ClearConvError(f"{prefix}.{j} ({type(layer).__name__}) has no ONNX export")
        out = f"{prefix}.{j}.out"
        export(g, layer, f"{prefix}.{j}", x, out, shape)
        x, shape = out, tuple(layer.output_shape(shape))
    return x, shape


def _residual(g: _Graph, layer: Residual, i: str, x: str, y: str,
              shape: tuple[int, ...]) -> None:
    """Add of the two branches (the shortcut may be the input itself)."""
    main, _ = _chain(g, layer.main, f"{i}.main", x, shape)
    short, _ = _chain(g, layer.shortcut, f"{i}.shortcut", x, shape)
    g.node("Add", [main, short], [y], f"{i}.Add")


def _concat(g: _Graph, layer: Concat, i: str, x: str, y: str, shape: tuple[int, ...]) -> None:
    """Concat of the branches along the channels."""
    outs = [_chain(g, chain, f"{i}.{k}", x, shape)[0] for k, chain in enumerate(layer.chains)]
    g.node("Concat", outs, [y], f"{i}.Concat", axis=1)


_EXPORTERS: dict[type, Callable[..., None]] = {
    Residual: _residual,
    Concat: _concat,
    Conv2D: _conv,
    ConvTranspose2D: _conv_transpose,
    Conv1D: _conv1d,
    MaxPool2D: _max_pool,
    AvgPool2D: _avg_pool,
    GlobalAvgPool2D: _global_pool("GlobalAveragePool"),
    GlobalMaxPool2D: _global_pool("GlobalMaxPool"),
    GlobalAvgPool1D: _global_pool("GlobalAveragePool"),
    GlobalMaxPool1D: _global_pool("GlobalMaxPool"),
    AdaptiveAvgPool2D: _adaptive,
    AdaptiveMaxPool2D: _adaptive,
    Upsample: _upsample,
    MaxPool1D: _as_2d(lambda la: MaxPool2D((1, la.kernel_size), (1, la.stride), _pads_1d(la),
                                           la.ceil_mode, dilation=(1, la.dilation))),
    AvgPool1D: _as_2d(lambda la: AvgPool2D((1, la.kernel_size), (1, la.stride), _pads_1d(la),
                                           la.ceil_mode, la.count_include_pad)),
    AdaptiveAvgPool1D: _as_2d(lambda la: AdaptiveAvgPool2D((1, la.output_size))),
    AdaptiveMaxPool1D: _as_2d(lambda la: AdaptiveMaxPool2D((1, la.output_size))),
    Dense: _dense,
    BatchNorm2D: _batch_norm,
    BatchNorm1D: _batch_norm,
    Flatten: _flatten,
    ReLU: _simple("Relu"),
    LeakyReLU: _simple("LeakyRelu", alpha=lambda la: la.negative_slope),
    Sigmoid: _simple("Sigmoid"),
    Tanh: _simple("Tanh"),
    Softmax: _simple("Softmax", axis=lambda la: la.axis),
    Dropout: _simple("Identity"),
}


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ClearConvError("ONNX export needs the onnx package: pip install clearconv[onnx] "
                             "(or pip install onnx onnxruntime)") from None
    return onnx


def _write_bytes_atomic(path: str, data: bytes) -> None:
    with atomic_write(path) as f:
        f.write(data)
