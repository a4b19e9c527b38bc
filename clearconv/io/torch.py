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
MaxPool2d (no indices)                 MaxPool2D (dilation too)
AvgPool2d                              AvgPool2D (divisor_override too)
Linear                                 Dense (weight (out, in) in both)
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
    AvgPool2D,
    Concat,
    Conv1D,
    Conv2D,
    ConvTranspose2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Residual,
    Sigmoid,
    Softmax,
    Tanh,
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
    for name, module in modules:
        kind = type(module).__name__
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


def _flatten_from_torch(module: Any, name: str, dtype: np.dtype) -> Layer:
    if module.start_dim == 0:
        raise _refuse(name, module, "start_dim=0 (merging the batch axis) is not supported")
    return Flatten(module.start_dim, module.end_dim)


def _softmax_from_torch(module: Any, name: str, dtype: np.dtype) -> Layer:
    if module.dim is None:
        raise _refuse(name, module, "dim=None (PyTorch's implicit, deprecated choice) is not "
                                    "supported: give the dim, e.g. nn.Softmax(dim=1)")
    return Softmax(axis=module.dim)


_FROM_TORCH: dict[str, Any] = {
    "ConvTranspose2d": _conv_transpose_from_torch,
    "Conv1d": _conv1d_from_torch,
    "MaxPool2d": _max_pool_from_torch,
    "AvgPool2d": _avg_pool_from_torch,
    "Linear": _linear_from_torch,
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
        elif kind in _SIMPLE_TO_TORCH:
            modules.append(_SIMPLE_TO_TORCH[kind](nn, layer))
        else:
            supported = ", ".join(c.__name__ for c in (Conv2D, ConvTranspose2D, Conv1D,
                                                      MaxPool2D, AvgPool2D, Dense, Residual,
                                                      Concat, *_SIMPLE_TO_TORCH))
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


_SIMPLE_TO_TORCH: dict[type, Any] = {
    Flatten: lambda nn, la: nn.Flatten(la.start_dim, la.end_dim),
    ReLU: lambda nn, la: nn.ReLU(),
    LeakyReLU: lambda nn, la: nn.LeakyReLU(la.negative_slope),
    Sigmoid: lambda nn, la: nn.Sigmoid(),
    Tanh: lambda nn, la: nn.Tanh(),
    Softmax: lambda nn, la: nn.Softmax(dim=la.axis),
    Dropout: lambda nn, la: nn.Dropout(la.p),
}
