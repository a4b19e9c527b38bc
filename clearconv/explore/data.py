"""Every number the explorer page shows, computed by clearconv (MATH.md §7-11).

:func:`compute` runs one image through a model and returns an :class:`ExplorerData`:
JSON-able facts (layers, shapes, prediction, loss) and named arrays. The page never
computes a tensor value: it only looks values up in these arrays by index arithmetic
(which window cell of the input a kernel tap reads, which output a pool window wrote).

Where each array comes from:

- the feature maps of every layer and the gradients at every layer's output: the
  model's own layers, forward (training mode, dropout off) and backward of the loss of
  one chosen class (``model.layers[i].forward`` / ``.backward``, as ``Sequential``
  runs them unfused);
- the per-cell breakdowns, from :mod:`clearconv.reference`, the loop-by-loop twins:
  a conv output's window products, per-channel sums and Z
  (:func:`~clearconv.reference.conv2d_forward_steps`, MATH.md §6-7); max-pool winners
  (:func:`~clearconv.reference.max_pool2d_forward_steps`, §10); a kernel weight's dW
  terms and an input pixel's dA as the full convolution of the padded dZ with the
  kernel rotated 180° (:func:`~clearconv.reference.conv2d_backward_steps`, §9); a dense
  output's products ``x_i W[o, i]`` and the softmax's exponentials.

All arrays are float32 (int16/int32 for indices), batch axis dropped. The page rounds
them for display only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import reference as R
from ..errors import ClearConvError, ShapeError
from ..layers import (
    AvgPool2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from ..layers.conv import Conv1D
from ..shapes import conv2d_geometry
from ..train.sequential import Sequential

#: where each kind of layer is explained: (MATH.md section, the article's figure)
SECTIONS = {
    "input": ("2", "fig. 2"),
    "Conv2D": ("7", "fig. 7-8"),
    "activation": ("7", "fig. 8"),
    "MaxPool2D": ("10", "fig. 12"),
    "AvgPool2D": ("10", "fig. 12"),
    "Flatten": ("", ""),
    "Dense": ("", ""),
    "softmax": ("", ""),
    "conv-backward": ("9", "fig. 10-11"),
    "pool-backward": ("11", "fig. 13"),
}

_ACTIVATIONS = (ReLU, LeakyReLU, Sigmoid, Tanh, Softmax)


@dataclass
class ExplorerData:
    """What the page shows: ``meta`` (JSON-able) and ``arrays`` (name -> ndarray).

    ``meta["layers"][i]`` describes layer i: its ``kind`` ('conv', 'pool', 'dense',
    'activation', 'flatten', 'other'), ``type``, input and output shapes, its options,
    and ``arrays``, the names of its arrays (``out`` its output, ``grad`` dL/d(output),
    and the breakdowns its kind has).
    """

    meta: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    #: name -> the axis order an array is shipped in (see :mod:`.pack`)
    layout: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def add(self, name: str, array: np.ndarray, axes: tuple[int, ...] | None = None) -> str:
        a = np.asarray(array)
        if a.dtype.kind == "f":
            a = a.astype(np.float32)
        elif a.dtype.kind in "iub":
            a = a.astype(np.int16 if a.size and np.abs(a).max() < 2 ** 15 else np.int32)
        self.arrays[name] = np.ascontiguousarray(a)
        if axes is not None:
            self.layout[name] = tuple(axes)
        return name

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values())


def _check_model(model: Any) -> Sequential:
    if not isinstance(model, Sequential):
        raise ClearConvError(f"explore needs a clearconv Sequential model, got "
                             f"{type(model).__name__}")
    if model.input_shape is None or len(model.input_shape) != 3:
        raise ClearConvError("explore needs an image model with a known (C, H, W) input shape "
                             "(build it with input_shape=(C, H, W))")
    return model


def _layer_meta(i: int, layer: Any, in_shape: tuple[int, ...], out_shape: tuple[int, ...]
                ) -> dict[str, Any]:
    name = type(layer).__name__
    meta: dict[str, Any] = {"index": i, "type": name, "in_shape": list(in_shape),
                            "out_shape": list(out_shape), "arrays": {}}
    if isinstance(layer, Conv2D) and not isinstance(layer, Conv1D):
        meta["kind"] = "conv"
    elif isinstance(layer, MaxPool2D):
        meta["kind"] = "pool"
    elif isinstance(layer, AvgPool2D):
        meta["kind"] = "avgpool"
    elif isinstance(layer, Dense):
        meta["kind"] = "dense"
    elif isinstance(layer, _ACTIVATIONS):
        meta["kind"] = "activation"
    elif isinstance(layer, Flatten):
        meta["kind"] = "flatten"
    elif isinstance(layer, Dropout):
        meta["kind"] = "dropout"
    elif type(layer).__name__ == "BatchNorm2D" and getattr(layer, "running_mean", None) \
            is not None:
        meta["kind"] = "batchnorm"
    else:
        meta["kind"] = "other"
    section, figure = SECTIONS.get(name, SECTIONS["activation"] if meta["kind"] == "activation"
                                   else ("", ""))
    meta["section"], meta["figure"] = section, figure
    return meta


@contextmanager
def _as_in_inference(model: Sequential) -> Iterator[None]:
    """The model as ``predict`` runs it, while keeping the caches backward needs:
    dropout's ``p`` is 0 (the identity both ways) and every layer with a ``training``
    flag (batch normalisation) is in eval mode (the running statistics, which the pass
    leaves unchanged); everything is put back afterwards, blocks' inner layers too."""
    layers = [inner for layer in model.layers for inner in layer.walk()]
    dropouts = [(layer, layer.p) for layer in layers if isinstance(layer, Dropout)]
    flags = [(layer, layer.training) for layer in layers
             if isinstance(getattr(layer, "training", None), bool)]
    try:
        for layer, _ in dropouts:
            layer.p = 0.0
        for layer, _ in flags:
            layer.training = False
        yield
    finally:
        for layer, p in dropouts:
            layer.p = p
        for layer, flag in flags:
            layer.training = flag


def _forward_layers(model: Sequential, x: np.ndarray) -> list[np.ndarray]:
    """Each layer's output for a batch of one, every layer keeping its cache (call it
    inside :func:`_as_in_inference`)."""
    outs = []
    for layer in model.layers:
        x = layer.forward(x, training=True)
        outs.append(x)
    return outs


def _backward_layers(model: Sequential, dlogits: np.ndarray) -> tuple[list[np.ndarray],
                                                                       np.ndarray,
                                                                       dict[int, tuple]]:
    """dL/d(output) of every layer, dL/d(input), and each weight layer's (dW, db), by the
    layers' own backward (their gradients are taken out and the model's zeroed)."""
    saved = [p.grad.copy() for p in model.parameters()]
    for p in model.parameters():
        p.grad[...] = 0
    grads: list[np.ndarray] = [np.empty(0)] * len(model.layers)
    param_grads: dict[int, tuple] = {}
    dy = dlogits
    try:
        for i in range(len(model.layers) - 1, -1, -1):
            grads[i] = dy
            layer = model.layers[i]
            dy = layer.backward(dy)
            if isinstance(layer, (Conv2D, Dense)):
                param_grads[i] = (layer.weight.grad.copy(),
                                  None if layer.bias is None else layer.bias.grad.copy())
    finally:
        for p, g in zip(model.parameters(), saved):
            p.grad[...] = g
    return grads, dy, param_grads


def _conv_forward(data: ExplorerData, key: str, layer: Conv2D, a_in: np.ndarray,
                  details: bool) -> tuple[dict[str, Any], list[R.Conv2dSteps] | None]:
    """A conv layer's options, weights and forward steps (MATH.md §6-7) from reference.py:
    each output's window products and per-channel sums, and Z.

    A grouped conv (depthwise when groups = C_in) is ``groups`` plain convolutions side
    by side, group k's kernels on group k's input channels: each runs through
    ``conv2d_forward_steps`` and the results are put together along the channels (the
    products and sums of output o then run over the C_in / groups channels of its group).
    """
    w = layer.weight.value
    b = None if layer.bias is None else layer.bias.value
    g = layer.groups
    geo = conv2d_geometry(a_in.shape, w.shape, layer.stride, layer.padding, layer.dilation, g)
    info: dict[str, Any] = {
        "kernel": list(layer.kernel_size), "stride": list(layer.stride),
        "dilation": list(layer.dilation), "padding_arg": layer.padding,
        "padding": [list(p) for p in geo.padding], "has_bias": b is not None, "groups": g,
        "extent": [d * (f - 1) + 1 for d, f in zip(layer.dilation, layer.kernel_size)],
    }
    names: dict[str, str] = {"weight": data.add(f"{key}.weight", w)}
    if b is not None:
        names["bias"] = data.add(f"{key}.bias", b)
    info["arrays"] = names
    if not details:
        return info, None
    c_g, o_g = a_in.shape[1] // g, w.shape[0] // g
    steps = [R.conv2d_forward_steps(a_in[:, k * c_g:(k + 1) * c_g], w[k * o_g:(k + 1) * o_g],
                                    None if b is None else b[k * o_g:(k + 1) * o_g],
                                    layer.stride, layer.padding, layer.dilation)
             for k in range(g)]
    names["a_pad"] = data.add(f"{key}.a_pad", np.concatenate([s.a_pad[0] for s in steps]))
    names["z_ref"] = data.add(f"{key}.z_ref", np.concatenate([s.z[0] for s in steps]))
    # shipped with the kernel axis last: a window cell's products over all kernels together
    names["products"] = data.add(f"{key}.products",
                                 np.concatenate([s.products[0] for s in steps]),
                                 (1, 2, 3, 4, 5, 0))
    names["channel_sums"] = data.add(f"{key}.channel_sums",
                                     np.concatenate([s.channel_sums[0] for s in steps]))
    return info, steps


def _conv_backward(data: ExplorerData, key: str, steps: list[R.Conv2dSteps], dz: np.ndarray,
                   budget: dict[str, int]) -> dict[str, str]:
    """A conv layer's backward steps (MATH.md §9) from reference.py: each weight's dW
    terms, and dA as the full convolution of the padded dZ with the rotated kernel (per
    group for a grouped conv, put together along the channels)."""
    o_g = dz.shape[1] // len(steps)
    backs = [R.conv2d_backward_steps(dz[:, k * o_g:(k + 1) * o_g], s.cache)
             for k, s in enumerate(steps)]

    def joined(get: Any) -> np.ndarray:
        return np.concatenate([get(back) for back in backs])

    names = {"dw_ref": data.add(f"{key}.dw_ref", joined(lambda b: b.dw)),
             "dw_terms": data.add(f"{key}.dw_terms", joined(lambda b: b.dw_terms[0]))}
    if backs[0].db is not None:
        names["db_ref"] = data.add(f"{key}.db_ref", joined(lambda b: b.db))
    geo = steps[0].geometry
    (p_t, _), (p_l, _) = geo.padding
    h, w_in = geo.in_shape[2:]
    # dZ with its stride gaps inside a border of e - 1 zeros (steps 1-3 of §9's dA)
    names["dz_full"] = data.add(f"{key}.dz_full", joined(lambda b: b.input_gradient.dz_full[0]))
    names["dx_ref"] = data.add(f"{key}.dx_ref", joined(lambda b: b.input_gradient.dx[0]))
    # step 4 at the pixels of A (the padding's are cropped away in step 5): the products
    # (C_in, H, W, C_out / groups, e_h, e_w) and their sums per output channel of the group
    prods = joined(lambda b: b.input_gradient.products[0][:, p_t:p_t + h, p_l:p_l + w_in])
    names["da_channel_sums"] = data.add(f"{key}.da_channel_sums", prods.sum(axis=(4, 5)))
    if prods.size * 4 <= budget["da_products"]:
        names["da_products"] = data.add(f"{key}.da_products", prods)
    return names


def _pool_forward(data: ExplorerData, key: str, layer: MaxPool2D, a_in: np.ndarray
                  ) -> tuple[dict[str, Any], R.MaxPool2dSteps]:
    """Each max-pool window's winner (MATH.md §10) from reference.py."""
    dilation = tuple(getattr(layer, "dilation", (1, 1)))     # (dilated pooling: issue 13)
    more = () if dilation == (1, 1) else (dilation,)
    steps = R.max_pool2d_forward_steps(a_in, layer.kernel_size, layer.stride, layer.padding,
                                       layer.ceil_mode, *more)
    return {"kernel": list(layer.kernel_size), "stride": list(layer.stride),
            "dilation": list(dilation),
            "padding": [list(p) for p in steps.geometry.padding],
            "arrays": {"argmax": data.add(f"{key}.argmax", steps.argmax[0]),
                       "z_ref": data.add(f"{key}.z_ref", steps.z[0])}}, steps


def _avgpool_forward(data: ExplorerData, key: str, layer: AvgPool2D, a_in: np.ndarray
                     ) -> dict[str, Any]:
    override = getattr(layer, "divisor_override", None)
    more = () if override is None else (override,)
    z, cache = R.avg_pool2d_forward(a_in, layer.kernel_size, layer.stride, layer.padding,
                                    layer.ceil_mode, layer.count_include_pad, *more)
    geo = cache.geometry
    divisors = np.array([[override or R.avg_window_divisor(m, k, geo, layer.count_include_pad)
                          for k in range(geo.out_shape[3])] for m in range(geo.out_shape[2])])
    return {"kernel": list(layer.kernel_size), "stride": list(layer.stride),
            "padding": [list(p) for p in geo.padding],
            "arrays": {"z_ref": data.add(f"{key}.z_ref", z[0]),
                       "divisors": data.add(f"{key}.divisors", divisors)}}


def _batchnorm_forward(data: ExplorerData, key: str, layer: Any, a_in: np.ndarray
                       ) -> dict[str, Any]:
    """Batch normalisation as predict runs it (the running statistics), value by value
    from reference.batch_norm2d_forward: ``xhat = (x - mu) invstd``, ``y = gamma xhat +
    beta`` with ``invstd = 1 / sqrt(var + eps)``."""
    gamma = None if layer.weight is None else layer.weight.value
    beta = None if layer.bias is None else layer.bias.value
    mean, var = layer.running_mean.copy(), layer.running_var.copy()   # (left unchanged)
    y, cache = R.batch_norm2d_forward(a_in, gamma, beta, mean, var, False, eps=layer.eps)
    c = a_in.shape[1]
    return {"eps": layer.eps, "arrays": {
        "mean": data.add(f"{key}.mean", mean), "var": data.add(f"{key}.var", var),
        "invstd": data.add(f"{key}.invstd", cache.invstd),
        "gamma": data.add(f"{key}.gamma", np.ones(c) if gamma is None else gamma),
        "beta": data.add(f"{key}.beta", np.zeros(c) if beta is None else beta),
        "xhat": data.add(f"{key}.xhat", cache.xhat[0]), "y_ref": data.add(f"{key}.y_ref", y[0])}}


def _dense_forward(data: ExplorerData, key: str, layer: Dense, a_in: np.ndarray,
                   details: bool) -> dict[str, Any]:
    """A dense output as its sum ``y_o = sum_i x_i W[o, i] + b_o``: the products and
    reference.linear_forward's y."""
    w = layer.weight.value
    b = None if layer.bias is None else layer.bias.value
    names = {"weight": data.add(f"{key}.weight", w)}
    if b is not None:
        names["bias"] = data.add(f"{key}.bias", b)
    if details:
        y, _ = R.linear_forward(a_in, w, b)
        # (out, in), shipped as (in, out): the products of one input value side by side
        names["products"] = data.add(f"{key}.products", a_in[0][None, :] * w, (1, 0))
        names["y_ref"] = data.add(f"{key}.y_ref", y[0])
    return {"has_bias": b is not None, "arrays": names}


def _softmax(data: ExplorerData, logits: np.ndarray) -> dict[str, Any]:
    """The softmax of the logits, term by term: ``e_k = exp(z_k - max z)``,
    ``p_k = e_k / sum_j e_j`` (reference.softmax_forward gives p)."""
    z = logits[0].astype(np.float64)
    exps = np.exp(z - z.max())
    probs, _ = R.softmax_forward(logits, axis=1)
    return {"max": float(z.max()), "sum": float(exps.sum()),
            "arrays": {"exps": data.add("softmax.exps", exps),
                       "probs": data.add("softmax.probs", probs[0])}}


#: bytes of float32 the dA products of one layer may take (else: per-channel sums only)
DEFAULT_BUDGET = {"da_products": 4 * 1024 * 1024}


def _input_batch(model: Sequential, x: np.ndarray) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim == 3:
        a = a[None]
    if a.shape != (1, *model.input_shape):
        raise ShapeError(f"explore: the model takes one input of shape "
                         f"{tuple(model.input_shape)}, got {tuple(np.shape(x))}")
    if not np.all(np.isfinite(a)):
        raise ClearConvError("explore: the input holds NaN or Inf values")
    return a.astype(model.dtype)


def _forward_part(data: ExplorerData, model: Sequential, shapes: list[tuple[int, ...]],
                  values: list[np.ndarray], details: bool
                  ) -> tuple[list[dict[str, Any]], dict[int, list[R.Conv2dSteps]],
                             dict[int, R.MaxPool2dSteps]]:
    """Each layer's facts, output and forward breakdowns; ``values`` is the input
    followed by every layer's output. Returns the layers' meta and the reference steps
    the backward part reuses."""
    layers: list[dict[str, Any]] = []
    conv_steps: dict[int, list[R.Conv2dSteps]] = {}
    pool_steps: dict[int, R.MaxPool2dSteps] = {}
    for i, layer in enumerate(model.layers):
        a_in = values[i]
        meta = _layer_meta(i, layer, shapes[i], shapes[i + 1])
        meta["arrays"]["out"] = data.add(f"out.{i}", values[i + 1][0])
        key = f"L{i}"
        if meta["kind"] == "conv":
            meta["conv"], steps = _conv_forward(data, key, layer, a_in, details)
            if steps is not None:
                conv_steps[i] = steps
        elif meta["kind"] == "pool" and details:
            meta["pool"], pool_steps[i] = _pool_forward(data, key, layer, a_in)
        elif meta["kind"] == "avgpool" and details:
            meta["pool"] = _avgpool_forward(data, key, layer, a_in)
        elif meta["kind"] == "dense":
            meta["dense"] = _dense_forward(data, key, layer, a_in, details)
        elif meta["kind"] == "batchnorm" and details:
            meta["batchnorm"] = _batchnorm_forward(data, key, layer, a_in)
        elif meta["kind"] == "activation":
            meta["activation"] = type(layer).__name__
        layers.append(meta)
    return layers, conv_steps, pool_steps


def compute(model: Sequential, x: np.ndarray, label: int | None = None,
            target: int | None = None, all_targets: bool = False, details: bool = True,
            budget: dict[str, int] | None = None) -> ExplorerData:
    """Everything the explorer shows for one input.

    Parameters
    ----------
    model : a Sequential with ``input_shape`` (C, H, W) ending in (N, K) logits
    x : ndarray of shape (C, H, W) or (1, C, H, W), the input as the model takes it
    label : the true class, if known
    target : the class whose loss ``-log p_target`` is back-propagated (default:
        ``label``, else the prediction)
    all_targets : back-propagate every class too (the page's class picker offers them)
    details : the per-cell breakdowns of reference.py too; False gives the maps, the
        prediction and the gradient maps only (live mode's fast update)
    budget : byte limits, see :data:`DEFAULT_BUDGET`

    Returns
    -------
    ExplorerData: ``meta["layers"][i]`` layer i, ``meta["backward"][str(t)]`` the
    backward pass of class t (its loss, dL/dlogits, the arrays of each layer);
    ``arrays['input']`` (C, H, W), ``arrays['out.<i>']`` layer i's output.
    """
    model = _check_model(model)
    budget = {**DEFAULT_BUDGET, **(budget or {})}
    a = _input_batch(model, x)
    with _as_in_inference(model):
        return _compute(model, a, label, target, all_targets, details, budget)


def _compute(model: Sequential, a: np.ndarray, label: int | None, target: int | None,
             all_targets: bool, details: bool, budget: dict[str, int]) -> ExplorerData:
    from ..functional import softmax_cross_entropy_backward, softmax_cross_entropy_forward

    shapes = [tuple(model.input_shape), *model.build(model.input_shape)]
    outs = _forward_layers(model, a)
    logits = outs[-1]
    if logits.ndim != 2:
        raise ShapeError(f"explore needs a classifier whose last layer gives (N, K) logits, "
                         f"got {logits.shape}")
    k_classes = logits.shape[1]
    classes = model.classes or [str(k) for k in range(k_classes)]
    pred = int(logits[0].argmax())
    if target is None:
        target = label if label is not None else pred
    if not 0 <= int(target) < k_classes:
        raise ClearConvError(f"class {target} is out of range: the model has {k_classes} "
                             f"classes (0..{k_classes - 1})")
    target = int(target)

    data = ExplorerData({})
    data.add("input", a[0])
    layers, conv_steps, pool_steps = _forward_part(data, model, shapes, [a, *outs], details)
    backward: dict[str, Any] = {}
    for t in (range(k_classes) if all_targets else [target]):
        if backward:                      # the layers' caches went with the last backward
            _forward_layers(model, a)
        loss, ce_cache = softmax_cross_entropy_forward(logits, np.array([t]))
        dlogits = softmax_cross_entropy_backward(1.0, ce_cache)
        grads, dx, param_grads = _backward_layers(model, dlogits)
        key = f"T{t}"
        per_layer: list[dict[str, str]] = []
        for i in range(len(model.layers)):
            names = {"grad": data.add(f"{key}.grad.{i}", grads[i][0])}
            if i in param_grads and isinstance(model.layers[i], Conv2D):   # (shown: conv)
                dw, db = param_grads[i]
                names["dw"] = data.add(f"{key}.L{i}.dw", dw)
                if db is not None:
                    names["db"] = data.add(f"{key}.L{i}.db", db)
            if i in conv_steps:
                names.update(_conv_backward(data, f"{key}.L{i}", conv_steps[i], grads[i],
                                            budget))
            if i in pool_steps:
                back = R.max_pool2d_backward_steps(grads[i], pool_steps[i].cache)
                names["dx_ref"] = data.add(f"{key}.L{i}.dx_ref", back.dx[0])
            if details and isinstance(model.layers[i], Dense):
                # dx[i] = sum_o dy[o] W[o, i]: the terms (out, in), shipped as (in, out)
                terms = grads[i][0][:, None] * model.layers[i].weight.value
                names["dx_terms"] = data.add(f"{key}.L{i}.dx_terms", terms, (1, 0))
                names["dx_ref"] = data.add(f"{key}.L{i}.dx_ref", terms.sum(axis=0))
            per_layer.append(names)
        backward[str(t)] = {"loss": float(loss), "dlogits": [float(v) for v in dlogits[0]],
                            "grad_input": data.add(f"{key}.grad.input", dx[0]),
                            "layers": per_layer}
    data.meta.update({
        "input_shape": list(model.input_shape), "classes": list(map(str, classes)),
        "label": label, "prediction": pred, "target": target,
        "probs": [float(p) for p in softmax_forward_probs(logits)],
        "layers": layers, "softmax": _softmax(data, logits), "details": details,
        "backward": backward, "dtype": str(model.dtype),
    })
    return data


def softmax_forward_probs(logits: np.ndarray) -> np.ndarray:
    """The class probabilities of one row of logits (N=1), as the model's predict_proba."""
    from ..functional import softmax_forward

    return softmax_forward(logits, axis=1)[0][0]
