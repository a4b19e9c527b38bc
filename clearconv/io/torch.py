"""PyTorch interop: convert between ``torch.nn.Sequential`` and clearconv's ``Sequential``.

Both directions copy the weights exactly (same values, same dtype) and map each module
to the layer with the same arithmetic, so a converted model gives the same outputs and,
after the same optimizer steps, the same weights:

=====================================  ==============================================
torch.nn                               clearconv.layers
=====================================  ==============================================
Conv2d (groups=1, padding_mode         Conv2D (padding int, (ph, pw), 'same', 'valid')
'zeros')
ZeroPad2d followed by Conv2d           Conv2D with the sum of both paddings
ConstantPad2d/1d followed by a         the pooling with that asymmetric padding
pooling (-inf before max, 0 before     (what to_torch writes for one)
average, the pooling unpadded)
MaxPool2d (no indices)                 MaxPool2D (dilation too)
AvgPool2d                              AvgPool2D (divisor_override too)
MaxPool1d (no indices), AvgPool1d      MaxPool1D, AvgPool1D
AdaptiveAvgPool2d, AdaptiveAvgPool1d,  AdaptiveAvgPool2D, AdaptiveAvgPool1D,
AdaptiveMaxPool2d, AdaptiveMaxPool1d   AdaptiveMaxPool2D, AdaptiveMaxPool1D (the
(no indices)                           Global*Pool2D/1D layers go to Adaptive*Pool(1),
                                       and a Flatten after it if they flatten)
Upsample ('nearest', 'bilinear')       Upsample
Linear                                 Dense (weight (out, in) in both)
BatchNorm2d, BatchNorm1d               BatchNorm2D, BatchNorm1D (weight, bias and the
                                       buffers running_mean, running_var,
                                       num_batches_tracked; eps, momentum, affine,
                                       track_running_stats)
Flatten (start_dim >= 1, end_dim)      Flatten
ReLU, LeakyReLU, Sigmoid, Tanh         ReLU, LeakyReLU, Sigmoid, Tanh
Softmax (dim given)                    Softmax (axis=dim)
Dropout                                Dropout (same p)
Identity                               (dropped)
=====================================  ==============================================

Going to PyTorch, a Conv2D whose padding is asymmetric (``((0, 1), (2, 0))``, 'same'
with an even kernel, or TensorFlow-style 'same' at stride > 1) becomes
``nn.ZeroPad2d((left, right, top, bottom))`` followed by ``nn.Conv2d(padding=0)``;
symmetric padding stays inside the ``nn.Conv2d``. TensorFlow-style 'same' depends on the
input size, so that case needs ``model.input_shape``.

Training matches too: clearconv's optimizers follow ``torch.optim``'s rules, except that
weight decay skips biases, which in PyTorch means a second parameter group with
``weight_decay=0``.

>>> import torch                                                    # doctest: +SKIP
>>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
...                           torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 10))  # doctest: +SKIP
>>> model = from_torch(net, input_shape=(1, 8, 8))                  # doctest: +SKIP
>>> back = to_torch(model)                                          # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ClearConvError
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
from ..layers.parameter import Parameter
from ..shapes import resolve_padding
from ..train.sequential import Sequential

__all__ = ["from_torch", "to_torch", "torch_blocks"]

_DTYPES = {"torch.float32": np.dtype(np.float32), "torch.float64": np.dtype(np.float64)}


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise ClearConvError("PyTorch interop needs torch: pip install clearconv[torch] "
                             "(or pip install torch)") from None
    return torch


# ------------------------------------------------------------------ torch -> clearconv
def from_torch(torch_sequential: Any, input_shape: Sequence[int] | None = None) -> Sequential:
    """A clearconv :class:`~clearconv.train.sequential.Sequential` with the modules and weights of
    a ``torch.nn.Sequential``.

    Parameters
    ----------
    torch_sequential : torch.nn.Sequential
        Nested ``nn.Sequential`` blocks are flattened. Supported modules are listed in
        this module's docstring; ``nn.Identity`` is dropped.
    input_shape : (C, H, W), optional
        Per-sample input shape, passed to ``Sequential`` (checks every layer now).

    Returns
    -------
    Sequential whose parameters hold copies of the torch parameters, in their dtype
    (float32 or float64; all parameters must share it).

    Raises
    ------
    ClearConvError
        A module with no clearconv equivalent, or a setting clearconv lacks
        (``groups``, a non-zero ``padding_mode``, pooling ``dilation``,
        ``return_indices``, ``divisor_override``, ``Flatten`` dims, ``Softmax(dim=None)``),
        naming the module and its index; or torch not installed.
    """
    torch = _import_torch()
    if not isinstance(torch_sequential, torch.nn.Sequential):
        raise ClearConvError(f"from_torch expects a torch.nn.Sequential, got "
                             f"{type(torch_sequential).__name__}")
    dtypes = {str(p.dtype) for p in torch_sequential.parameters()}
    if len(dtypes) > 1:
        raise ClearConvError(f"the torch model mixes parameter dtypes {sorted(dtypes)}; "
                             f"convert it with .float() or .double() first")
    dtype_name = dtypes.pop() if dtypes else "torch.float32"
    if dtype_name not in _DTYPES:
        raise ClearConvError(f"clearconv holds float32 or float64 parameters, the torch model "
                             f"has {dtype_name}; convert it with .float() or .double() first")
    dtype = _DTYPES[dtype_name]

    return Sequential(*_layers_from_torch(torch, torch_sequential, "", dtype),
                      input_shape=input_shape)


def _layers_from_torch(torch: Any, seq: Any, prefix: str, dtype: np.dtype) -> list[Layer]:
    """The clearconv layers of a torch Sequential (nested ones flattened, the blocks of
    :func:`torch_blocks` converted branch by branch)."""
    residual, concat = torch_blocks()
    modules = list(_flatten(torch, seq, prefix))
    layers: list[Layer] = []
    pending_pad: tuple[str, tuple[int, int, int, int]] | None = None
    skip = False
    for at, (name, module) in enumerate(modules):
        if skip:
            skip = False
            continue
        kind = type(module).__name__
        merged = _pad_then_pool(torch, module, modules[at + 1][1] if at + 1 < len(modules)
                                else None)
        if merged is not None:
            layers.append(merged)
            skip = True
            continue
        if type(module) is residual:
            layers.append(Residual(_layers_from_torch(torch, module.main, f"{name}.main.",
                                                      dtype),
                                   _layers_from_torch(torch, module.shortcut,
                                                      f"{name}.shortcut.", dtype)))
            continue
        if type(module) is concat:
            layers.append(Concat(*(_layers_from_torch(torch, b, f"{name}.{k}.", dtype)
                                   for k, b in enumerate(module.branches))))
            continue
        if pending_pad is not None and not isinstance(module, torch.nn.Conv2d):
            raise ClearConvError(f"module {pending_pad[0]} (ZeroPad2d) is supported only right "
                                 f"before a Conv2d, but module {name} is {kind}")
        if isinstance(module, torch.nn.ZeroPad2d):
            pending_pad = (name, _zero_pad(module, name))
            continue
        if type(module) is torch.nn.Conv2d:
            extra = pending_pad[1] if pending_pad is not None else (0, 0, 0, 0)
            layers.append(_conv_from_torch(module, name, extra, dtype))
            pending_pad = None
            continue
        convert = _FROM_TORCH.get(kind)
        if convert is None or type(module) is not getattr(torch.nn, kind, None):
            raise ClearConvError(f"module {name} ({kind}) has no clearconv equivalent; "
                                 f"supported: {', '.join(_SUPPORTED)}")
        layer = convert(module, name, dtype)
        if layer is not None:
            layers.append(layer)
    if pending_pad is not None:
        raise ClearConvError(f"module {pending_pad[0]} (ZeroPad2d) is supported only right "
                             f"before a Conv2d, but it ends the model")
    return layers


def _pad_then_pool(torch: Any, pad: Any, pool: Any) -> Layer | None:
    """A ConstantPad2d (ConstantPad1d) right before a MaxPool2d (MaxPool1d) padding -inf,
    or an AvgPool2d (AvgPool1d) padding zeros, both without padding or ceil_mode of their
    own: one clearconv pooling with that (asymmetric) padding, what :func:`to_torch`
    writes for one. None for anything else."""
    nn = torch.nn
    pairs = {(nn.ConstantPad2d, nn.MaxPool2d), (nn.ConstantPad2d, nn.AvgPool2d),
             (nn.ConstantPad1d, nn.MaxPool1d), (nn.ConstantPad1d, nn.AvgPool1d)}
    if pool is None or (type(pad), type(pool)) not in pairs:
        return None
    is_max = type(pool) in (nn.MaxPool2d, nn.MaxPool1d)
    if pad.value != (-float("inf") if is_max else 0.0) or pool.ceil_mode \
            or pool.padding not in (0, (0,), (0, 0)) or getattr(pool, "return_indices", False):
        return None
    stride = pool.kernel_size if pool.stride is None else pool.stride
    if type(pad) is nn.ConstantPad2d:
        left, right, top, bottom = pad.padding
        pads = ((top, bottom), (left, right))
        if is_max:
            return MaxPool2D(pool.kernel_size, stride, pads, dilation=pool.dilation)
        return AvgPool2D(pool.kernel_size, stride, pads,
                         divisor_override=pool.divisor_override)
    if is_max:
        return MaxPool1D(pool.kernel_size, stride, tuple(pad.padding),
                         dilation=pool.dilation)
    return AvgPool1D(pool.kernel_size, stride, tuple(pad.padding))


def _flatten(torch: Any, seq: Any, prefix: str) -> Any:
    """(dotted name, module) of every leaf, nested ``nn.Sequential`` blocks opened."""
    for key, module in seq.named_children():
        name = f"{prefix}{key}"
        if type(module) is torch.nn.Sequential:
            yield from _flatten(torch, module, f"{name}.")
        else:
            yield name, module


def _refuse(name: str, module: Any, why: str) -> ClearConvError:
    return ClearConvError(f"module {name} ({type(module).__name__}): {why}")


def _array(tensor: Any, dtype: np.dtype) -> np.ndarray:
    return np.array(tensor.detach().cpu().numpy(), dtype=dtype, copy=True)


def _set(param: Parameter | None, value: np.ndarray, name: str, module: Any) -> None:
    if param is None or param.value.shape != value.shape:
        raise _refuse(name, module, f"a parameter of shape {value.shape} does not fit the "
                                    f"module's settings")
    param.value[...] = value


def _zero_pad(module: Any, name: str) -> tuple[int, int, int, int]:
    left, right, top, bottom = (int(p) for p in module.padding)
    if min(left, right, top, bottom) < 0:
        raise _refuse(name, module, f"negative padding (cropping) {tuple(module.padding)} "
                                    f"is not supported")
    return left, right, top, bottom


def _conv_from_torch(module: Any, name: str, extra: tuple[int, int, int, int],
                     dtype: np.dtype) -> Conv2D:
    if module.padding_mode != "zeros":
        raise _refuse(name, module, f"padding_mode={module.padding_mode!r} is not supported "
                                    f"(only 'zeros')")
    kernel = tuple(int(k) for k in module.kernel_size)
    stride = tuple(int(s) for s in module.stride)
    dilation = tuple(int(d) for d in module.dilation)
    if isinstance(module.padding, str):
        padding: Any = module.padding
    else:
        padding = (int(module.padding[0]), int(module.padding[1]))
    if any(extra):
        left, right, top, bottom = extra
        (pt, pb), (pl, pr) = resolve_padding(padding, kernel, stride, dilation)  # type: ignore
        padding = ((pt + top, pb + bottom), (pl + left, pr + right))
    conv = Conv2D(module.in_channels, module.out_channels, kernel, stride=stride,
                  padding=padding, dilation=dilation, groups=module.groups,
                  bias=module.bias is not None, rng=0, dtype=dtype)
    _set(conv.weight, _array(module.weight, dtype), name, module)
    if module.bias is not None:
        _set(conv.bias, _array(module.bias, dtype), name, module)
    return conv


def _conv_transpose_from_torch(module: Any, name: str, dtype: np.dtype) -> Layer:
    if module.padding_mode != "zeros":
        raise _refuse(name, module, f"padding_mode={module.padding_mode!r} is not supported")
    conv = ConvTranspose2D(module.in_channels, module.out_channels,
                           tuple(int(k) for k in module.kernel_size),
                           tuple(int(s) for s in module.stride),
                           tuple(int(p) for p in module.padding),
                           tuple(int(p) for p in module.output_padding), module.groups,
                           module.bias is not None, tuple(int(d) for d in module.dilation),
                           rng=0, dtype=dtype)
    _set(conv.weight, _array(module.weight, dtype), name, module)
    if module.bias is not None:
        _set(conv.bias, _array(module.bias, dtype), name, module)
    return conv


def _conv1d_from_torch(module: Any, name: str, dtype: np.dtype) -> Layer:
    if module.padding_mode != "zeros":
        raise _refuse(name, module, f"padding_mode={module.padding_mode!r} is not supported")
    padding = module.padding if isinstance(module.padding, str) else int(module.padding[0])
    conv = Conv1D(module.in_channels, module.out_channels, int(module.kernel_size[0]),
                  int(module.stride[0]), padding, int(module.dilation[0]), module.groups,
                  module.bias is not None, rng=0, dtype=dtype)
    _set(conv.weight, _array(module.weight, dtype), name, module)
    if module.bias is not None:
        _set(conv.bias, _array(module.bias, dtype), name, module)
    return conv


def _pool_args(module: Any) -> dict[str, Any]:
    stride = module.kernel_size if module.stride is None else module.stride
    return {"kernel_size": module.kernel_size, "stride": stride, "padding": module.padding,
            "ceil_mode": bool(module.ceil_mode)}


def _max_pool_from_torch(module: Any, name: str, dtype: np.dtype) -> Layer:
    if module.return_indices:
        raise _refuse(name, module, "return_indices=True is not supported (a Sequential "
                                    "passes one array)")
    return MaxPool2D(**_pool_args(module), dilation=module.dilation)


def _avg_pool_from_torch(module: Any, name: str, dtype: np.dtype) -> Layer:
    return AvgPool2D(**_pool_args(module), count_include_pad=bool(module.count_include_pad),
                     divisor_override=module.divisor_override)


def _linear_from_torch(module: Any, name: str, dtype: np.dtype) -> Layer:
    dense = Dense(module.in_features, module.out_features, bias=module.bias is not None,
                  rng=0, dtype=dtype)
    _set(dense.weight, _array(module.weight, dtype), name, module)
    if module.bias is not None:
        _set(dense.bias, _array(module.bias, dtype), name, module)
    return dense


def _batch_norm_from_torch(module: Any, name: str, dtype: np.dtype) -> Layer:
    cls = BatchNorm2D if type(module).__name__ == "BatchNorm2d" else BatchNorm1D
    layer = cls(module.num_features, module.eps, module.momentum, module.affine,
                module.track_running_stats, dtype=dtype)
    if module.affine:
        _set(layer.weight, _array(module.weight, dtype), name, module)
        _set(layer.bias, _array(module.bias, dtype), name, module)
    if module.track_running_stats:
        layer.running_mean[...] = _array(module.running_mean, dtype)
        layer.running_var[...] = _array(module.running_var, dtype)
        layer.num_batches_tracked[...] = int(module.num_batches_tracked)
    return layer


def _flatten_from_torch(module: Any, name: str, dtype: np.dtype) -> Layer:
    if module.start_dim == 0:
        raise _refuse(name, module, "start_dim=0 (merging the batch axis) is not supported")
    return Flatten(module.start_dim, module.end_dim)


def _softmax_from_torch(module: Any, name: str, dtype: np.dtype) -> Layer:
    if module.dim is None:
        raise _refuse(name, module, "dim=None (PyTorch's implicit, deprecated choice) is not "
                                    "supported: give the dim, e.g. nn.Softmax(dim=1)")
    return Softmax(axis=module.dim)


def _no_indices(module: Any, name: str) -> None:
    if getattr(module, "return_indices", False):
        raise _refuse(name, module, "return_indices=True is not supported (a Sequential "
                                    "passes one array)")


def _adaptive_max_from_torch(module: Any, name: str, dtype: np.dtype) -> Layer:
    _no_indices(module, name)
    return AdaptiveMaxPool2D(module.output_size)


def _adaptive_max1d_from_torch(module: Any, name: str, dtype: np.dtype) -> Layer:
    _no_indices(module, name)
    return AdaptiveMaxPool1D(module.output_size)


def _upsample_from_torch(module: Any, name: str, dtype: np.dtype) -> Layer:
    if module.mode not in ("nearest", "bilinear"):
        raise _refuse(name, module, f"mode={module.mode!r} is not supported (only 'nearest' "
                                    f"and 'bilinear')")
    if module.recompute_scale_factor:
        raise _refuse(name, module, "recompute_scale_factor=True is not supported")
    return Upsample(module.size, module.scale_factor, module.mode, module.align_corners)


def _max_pool1d_from_torch(module: Any, name: str, dtype: np.dtype) -> Layer:
    _no_indices(module, name)
    return MaxPool1D(module.kernel_size, module.stride, module.padding,
                     bool(module.ceil_mode), module.dilation)


_FROM_TORCH: dict[str, Any] = {
    "AdaptiveAvgPool2d": lambda m, name, dtype: AdaptiveAvgPool2D(m.output_size),
    "AdaptiveMaxPool2d": _adaptive_max_from_torch,
    "AdaptiveAvgPool1d": lambda m, name, dtype: AdaptiveAvgPool1D(m.output_size),
    "AdaptiveMaxPool1d": _adaptive_max1d_from_torch,
    "Upsample": _upsample_from_torch,
    "MaxPool1d": _max_pool1d_from_torch,
    "AvgPool1d": lambda m, name, dtype: AvgPool1D(m.kernel_size, m.stride, m.padding,
                                                  bool(m.ceil_mode),
                                                  bool(m.count_include_pad)),
    "ConvTranspose2d": _conv_transpose_from_torch,
    "Conv1d": _conv1d_from_torch,
    "MaxPool2d": _max_pool_from_torch,
    "AvgPool2d": _avg_pool_from_torch,
    "Linear": _linear_from_torch,
    "BatchNorm2d": _batch_norm_from_torch,
    "BatchNorm1d": _batch_norm_from_torch,
    "Flatten": _flatten_from_torch,
    "ReLU": lambda m, name, dtype: ReLU(),
    "LeakyReLU": lambda m, name, dtype: LeakyReLU(m.negative_slope),
    "Sigmoid": lambda m, name, dtype: Sigmoid(),
    "Tanh": lambda m, name, dtype: Tanh(),
    "Softmax": _softmax_from_torch,
    "Dropout": lambda m, name, dtype: Dropout(m.p),
    "Identity": lambda m, name, dtype: None,
}
_SUPPORTED = ["Conv2d", "ZeroPad2d (before a Conv2d)", *_FROM_TORCH]


# ------------------------------------------------------------------ clearconv -> torch
def to_torch(model: Sequential) -> Any:
    """A ``torch.nn.Sequential`` with the layers and weights of a clearconv model.

    Parameters
    ----------
    model : Sequential

    Returns
    -------
    torch.nn.Sequential with copies of the weights, in the model's dtype (float32 or
    float64), in training mode as every new torch module (call ``.eval()`` for
    inference: Dropout). A Conv2D with asymmetric padding becomes two modules,
    ``ZeroPad2d`` and ``Conv2d(padding=0)``.

    Raises
    ------
    ClearConvError
        A layer type with no torch equivalent (named with its index), TensorFlow-style
        'same' at stride > 1 without ``model.input_shape``, or torch not installed.
    """
    torch = _import_torch()
    nn = torch.nn
    dtype = {np.dtype(np.float32): torch.float32,
             np.dtype(np.float64): torch.float64}.get(np.dtype(model.dtype))
    if dtype is None:
        raise ClearConvError(f"to_torch supports float32 and float64 models, got {model.dtype}")
    return nn.Sequential(*_layers_to_torch(torch, model.layers, "", model.input_shape)
                         ).to(dtype)


def _layers_to_torch(torch: Any, layers: Sequence[Layer], prefix: str,
                     shape: Sequence[int] | None) -> list[Any]:
    """The torch modules of a chain of layers (``shape``: its per-sample input, when
    known); a block becomes one of :func:`torch_blocks` with its branches as
    ``nn.Sequential``."""
    nn = torch.nn
    residual, concat = torch_blocks()
    modules: list[Any] = []
    for j, layer in enumerate(layers):
        i = f"{prefix}{j}"
        kind = type(layer)
        if kind is Residual:
            modules.append(residual(
                nn.Sequential(*_layers_to_torch(torch, layer.main, f"{i}.main.", shape)),
                nn.Sequential(*_layers_to_torch(torch, layer.shortcut, f"{i}.shortcut.",
                                                shape))))
        elif kind is Concat:
            modules.append(concat(*(nn.Sequential(*_layers_to_torch(torch, c, f"{i}.{k}.",
                                                                    shape))
                                    for k, c in enumerate(layer.chains))))
        elif kind is Conv2D:
            modules += _conv_to_torch(nn, layer, i, shape)
        elif kind is ConvTranspose2D:
            modules.append(_with_params(torch, nn.ConvTranspose2d, layer, layer.in_channels,
                                        layer.out_channels, layer.kernel_size, layer.stride,
                                        layer.padding, layer.output_padding, layer.groups,
                                        layer.bias is not None, layer.dilation))
        elif kind is Conv1D:
            modules.append(_with_params(torch, nn.Conv1d, layer, layer.in_channels,
                                        layer.out_channels, layer.kernel_size[1],
                                        layer.stride[1], _conv1d_padding(layer, i),
                                        layer.dilation[1], layer.groups,
                                        layer.bias is not None))
        elif kind in (MaxPool2D, AvgPool2D):
            modules += _pool_to_torch(nn, layer, i)
        elif kind is Dense:
            modules.append(_with_params(torch, nn.Linear, layer, layer.in_features,
                                        layer.out_features, bias=layer.bias is not None))
        elif kind in (BatchNorm2D, BatchNorm1D):
            modules.append(_batch_norm_to_torch(torch, layer))
        elif kind in _SIMPLE_TO_TORCH:
            modules.append(_SIMPLE_TO_TORCH[kind](nn, layer))
        elif kind in _RESAMPLE_TO_TORCH:
            modules += _RESAMPLE_TO_TORCH[kind](nn, layer, i)
        else:
            supported = ", ".join(c.__name__ for c in (Conv2D, ConvTranspose2D, Conv1D,
                                                      MaxPool2D, AvgPool2D, Dense,
                                                      BatchNorm2D, BatchNorm1D, Residual,
                                                      Concat, *_SIMPLE_TO_TORCH,
                                                      *_RESAMPLE_TO_TORCH))
            raise ClearConvError(f"layer {i} ({kind.__name__}) has no torch equivalent; "
                                 f"supported: {supported}")
        if shape is not None:
            shape = tuple(layer.output_shape(shape))
    return modules


def _pool_to_torch(nn: Any, layer: MaxPool2D | AvgPool2D, i: str) -> list[Any]:
    """nn.MaxPool2d / nn.AvgPool2d; an asymmetric padding as a ConstantPad2d before it
    (-inf for max pooling: padding never wins; zeros for an average that counts them)."""
    padding: Any = layer.padding
    pads: list[Any] = []
    if isinstance(padding[0], tuple):
        (t, b), (left, r) = padding
        if layer.ceil_mode:
            raise ClearConvError(f"layer {i} ({type(layer).__name__}): asymmetric padding "
                                 f"with ceil_mode has no torch equivalent (torch would "
                                 f"treat the padding as input for the last window)")
        if type(layer) is AvgPool2D and not layer.count_include_pad:
            raise ClearConvError(f"layer {i} (AvgPool2D): asymmetric padding with "
                                 f"count_include_pad=False has no torch equivalent")
        value = -float("inf") if type(layer) is MaxPool2D else 0.0
        pads, padding = [nn.ConstantPad2d((left, r, t, b), value)], 0
    args = {"kernel_size": layer.kernel_size, "stride": layer.stride, "padding": padding,
            "ceil_mode": layer.ceil_mode}
    if type(layer) is MaxPool2D:
        if layer.return_indices:
            raise ClearConvError(f"layer {i} (MaxPool2D) returns indices: not in a torch "
                                 f"Sequential either")
        return [*pads, nn.MaxPool2d(**args, dilation=layer.dilation)]
    return [*pads, nn.AvgPool2d(**args, count_include_pad=layer.count_include_pad,
                                divisor_override=layer.divisor_override)]


_BLOCKS: list[Any] = []


def torch_blocks() -> tuple[Any, Any]:
    """The torch twins of clearconv's :class:`~clearconv.layers.Residual` and
    :class:`~clearconv.layers.Concat` (``torch.nn.Module`` subclasses with the same
    forward: ``main(x) + shortcut(x)``; ``cat([b(x) ...], dim=1)``), made once."""
    if not _BLOCKS:
        nn = _import_torch().nn

        class Residual(nn.Module):  # noqa: D401 - a torch module
            """``main(x) + shortcut(x)`` (clearconv.layers.Residual)."""

            def __init__(self, main: Any, shortcut: Any) -> None:
                super().__init__()
                self.main, self.shortcut = main, shortcut

            def forward(self, x: Any) -> Any:
                return self.main(x) + self.shortcut(x)

        class Concat(nn.Module):
            """``cat([b(x) for b in branches], dim=1)`` (clearconv.layers.Concat)."""

            def __init__(self, *branches: Any) -> None:
                super().__init__()
                self.branches = nn.ModuleList(branches)

            def forward(self, x: Any) -> Any:
                return _import_torch().cat([b(x) for b in self.branches], dim=1)

        _BLOCKS.extend((Residual, Concat))
    return _BLOCKS[0], _BLOCKS[1]


def _conv_to_torch(nn: Any, layer: Conv2D, i: str, in_shape: Sequence[int] | None
                   ) -> list[Any]:
    size = None if in_shape is None else (int(in_shape[1]), int(in_shape[2]))
    try:
        (pt, pb), (pl, pr) = resolve_padding(layer.padding, layer.kernel_size, layer.stride,
                                             layer.dilation, size)
    except ClearConvError as e:
        raise ClearConvError(f"layer {i} (Conv2D, padding={layer.padding!r}): {e}; build the "
                             f"model with input_shape or fit it first") from None
    symmetric = pt == pb and pl == pr
    conv = _with_params(_import_torch(), nn.Conv2d, layer, layer.in_channels,
                        layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=(pt, pl) if symmetric else 0, dilation=layer.dilation,
                        groups=layer.groups, bias=layer.bias is not None)
    return [conv] if symmetric else [nn.ZeroPad2d((pl, pr, pt, pb)), conv]


def _conv1d_padding(layer: Conv1D, i: str) -> Any:
    """A Conv1D's padding as torch's Conv1d takes it (symmetric, or 'same'/'valid' at
    stride 1); anything else is refused, naming the layer."""
    padding = layer.padding_1d
    if isinstance(padding, str) and (padding.lower() == "valid" or layer.stride[1] == 1):
        return padding.lower()
    if isinstance(padding, int):
        return padding
    if isinstance(padding, list) and len(padding) == 2 and padding[0] == padding[1]:
        return int(padding[0])
    raise ClearConvError(f"layer {i} (Conv1D, padding={padding!r}) has no torch Conv1d "
                         f"equivalent: torch pads both sides equally")


def _with_params(torch: Any, cls: Any, layer: Conv2D | Dense, *args: Any, **kwargs: Any
                 ) -> Any:
    """``cls(*args, **kwargs)`` holding copies of the layer's weight and bias.

    ``skip_init`` builds the module without its random initialisation, so converting
    leaves torch's global random state untouched.
    """
    module = torch.nn.utils.skip_init(cls, *args, **kwargs)
    module.weight = torch.nn.Parameter(torch.from_numpy(np.ascontiguousarray(
        layer.weight.value).copy()))
    if layer.bias is not None:
        module.bias = torch.nn.Parameter(torch.from_numpy(layer.bias.value.copy()))
    return module


def _batch_norm_to_torch(torch: Any, layer: BatchNorm2D | BatchNorm1D) -> Any:
    """nn.BatchNorm2d / 1d with copies of the parameters and the running statistics."""
    cls = torch.nn.BatchNorm2d if type(layer) is BatchNorm2D else torch.nn.BatchNorm1d
    module = cls(layer.num_features, layer.eps, layer.momentum, layer.affine,
                 layer.track_running_stats)
    with torch.no_grad():
        if layer.affine:
            module.weight = torch.nn.Parameter(torch.from_numpy(layer.weight.value.copy()))
            module.bias = torch.nn.Parameter(torch.from_numpy(layer.bias.value.copy()))
        if layer.track_running_stats:
            module.running_mean = torch.from_numpy(layer.running_mean.copy())
            module.running_var = torch.from_numpy(layer.running_var.copy())
            module.num_batches_tracked = torch.tensor(int(layer.num_batches_tracked))
    return module


_SIMPLE_TO_TORCH: dict[type, Any] = {
    Flatten: lambda nn, la: nn.Flatten(la.start_dim, la.end_dim),
    ReLU: lambda nn, la: nn.ReLU(),
    LeakyReLU: lambda nn, la: nn.LeakyReLU(la.negative_slope),
    Sigmoid: lambda nn, la: nn.Sigmoid(),
    Tanh: lambda nn, la: nn.Tanh(),
    Softmax: lambda nn, la: nn.Softmax(dim=la.axis),
    Dropout: lambda nn, la: nn.Dropout(la.p),
}


def _flattened(nn: Any, module: Any, flatten: bool) -> list[Any]:
    return [module, nn.Flatten()] if flatten else [module]


def _pool1d_to_torch(nn: Any, layer: MaxPool1D | AvgPool1D, i: str) -> list[Any]:
    """nn.MaxPool1d / nn.AvgPool1d; (left, right) padding as a ConstantPad1d before it."""
    padding: Any = layer.padding
    pads: list[Any] = []
    is_max = type(layer) is MaxPool1D
    if isinstance(padding, tuple):
        if layer.ceil_mode or (not is_max and not layer.count_include_pad):
            raise ClearConvError(f"layer {i} ({type(layer).__name__}): padding {padding} "
                                 f"(left != right) with ceil_mode or count_include_pad=False "
                                 f"has no torch equivalent")
        pads, padding = [nn.ConstantPad1d(padding, -float("inf") if is_max else 0.0)], 0
    if is_max:
        return [*pads, nn.MaxPool1d(layer.kernel_size, layer.stride, padding, layer.dilation,
                                    ceil_mode=layer.ceil_mode)]
    return [*pads, nn.AvgPool1d(layer.kernel_size, layer.stride, padding, layer.ceil_mode,
                                layer.count_include_pad)]


def _adaptive_max_to_torch(nn: Any, layer: AdaptiveMaxPool2D, i: str) -> list[Any]:
    if layer.return_indices:
        raise ClearConvError(f"layer {i} (AdaptiveMaxPool2D) returns indices: not in a torch "
                             f"Sequential either")
    return [nn.AdaptiveMaxPool2d(layer.output_size)]


#: layers that become one or two torch modules: ``(nn, layer, index) -> [modules]``
_RESAMPLE_TO_TORCH: dict[type, Any] = {
    GlobalAvgPool2D: lambda nn, la, i: _flattened(nn, nn.AdaptiveAvgPool2d(1), la.flatten),
    GlobalMaxPool2D: lambda nn, la, i: _flattened(nn, nn.AdaptiveMaxPool2d(1), la.flatten),
    GlobalAvgPool1D: lambda nn, la, i: _flattened(nn, nn.AdaptiveAvgPool1d(1), la.flatten),
    GlobalMaxPool1D: lambda nn, la, i: _flattened(nn, nn.AdaptiveMaxPool1d(1), la.flatten),
    AdaptiveAvgPool2D: lambda nn, la, i: [nn.AdaptiveAvgPool2d(la.output_size)],
    AdaptiveMaxPool2D: _adaptive_max_to_torch,
    AdaptiveAvgPool1D: lambda nn, la, i: [nn.AdaptiveAvgPool1d(la.output_size)],
    AdaptiveMaxPool1D: lambda nn, la, i: [nn.AdaptiveMaxPool1d(la.output_size)],
    Upsample: lambda nn, la, i: [nn.Upsample(la.size, la.scale_factor, la.mode,
                                             la.align_corners)],
    MaxPool1D: _pool1d_to_torch,
    AvgPool1D: _pool1d_to_torch,
}
