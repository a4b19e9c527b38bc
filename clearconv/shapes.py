"""Shape arithmetic of MATH.md §4-6 and §10: output sizes, padding, parameter counts,
the geometry of a conv or pool call, and the argument checks at every op's boundary.

Pure functions, used by functional/, reference.py, layers/, ``summary`` and ``explain``,
so that the fast ops and their literal twins accept and refuse exactly the same input.
Every check here raises :class:`~clearconv.errors.ClearConvError` (a ``ValueError``)
with a message that names the offending numbers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import numpy as np

from .errors import ClearConvError, ShapeError

IntPair = int | tuple[int, int]
#: padding as accepted by conv2d: int, (ph, pw), ((top, bottom), (left, right)),
#: 'valid' or 'same'.
PaddingArg = int | str | tuple[int, int] | tuple[tuple[int, int], tuple[int, int]]
#: padding resolved to ((top, bottom), (left, right)).
Padding2D = tuple[tuple[int, int], tuple[int, int]]

_F = TypeVar("_F", bound=Callable[..., Any])
#: calls remembered per memoized function (then forgotten all at once)
MEMO_SIZE = 512


def _memoized(fn: _F) -> _F:
    """``fn`` (a pure geometry function returning an immutable NamedTuple) remembering
    its results for the arguments it has seen: a layer calls it with the same
    arguments every batch, and at batch 1 the checks cost as much as the arithmetic.
    Calls that raise are not remembered (they raise again)."""
    memo: dict[str, Any] = {}

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # the key is the arguments' repr: it tells apart values equal across types
        # (True from 1, 2.0 from 2, a list from a tuple), which the checks treat apart,
        # and costs a microsecond
        key = repr((args, kwargs))
        try:
            return memo[key]
        except KeyError:
            pass
        result = fn(*args, **kwargs)
        if len(memo) >= MEMO_SIZE:
            memo.clear()
        memo[key] = result
        return result

    wrapper.cache_clear = memo.clear  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def pair(value: IntPair, name: str, minimum: int = 1) -> tuple[int, int]:
    """Return ``value`` as an ``(h, w)`` pair of ints, each ``>= minimum``.

    >>> pair(3, "kernel_size")
    (3, 3)
    >>> pair((1, 2), "stride")
    (1, 2)
    """
    if isinstance(value, bool):
        raise ClearConvError(f"{name} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, (int,)) or (hasattr(value, "__index__") and not hasattr(value, "__len__")):
        out = (int(value), int(value))
    else:
        try:
            items = tuple(value)  # type: ignore[arg-type]
        except TypeError:
            raise ClearConvError(
                f"{name} must be an int or a pair of ints, got {value!r}"
            ) from None
        if len(items) != 2 or not all(
            hasattr(v, "__index__") and not isinstance(v, bool) for v in items
        ):
            raise ClearConvError(f"{name} must be an int or a pair of ints, got {value!r}")
        out = (int(items[0]), int(items[1]))
    if out[0] < minimum or out[1] < minimum:
        raise ClearConvError(f"{name} must be >= {minimum}, got {value!r}")
    return out


def _index(v: object) -> int:
    """``int(v)`` for an integer (not a bool, not a float); TypeError otherwise."""
    if isinstance(v, bool) or not hasattr(v, "__index__"):
        raise TypeError(f"{v!r} is not an int")
    return int(v)  # type: ignore[call-overload]


def _positive(**values: int) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not hasattr(v, "__index__") or v < 1:
            raise ClearConvError(f"{name} must be an int >= 1, got {v!r}")


def conv_output_size(n: int, f: int, s: int = 1, p_before: int = 0, p_after: int | None = None,
                     d: int = 1) -> int:
    """Output length along one axis of a convolution (MATH.md §5).

    ``n_out = floor((n + p_before + p_after - d*(f-1) - 1) / s) + 1``; with symmetric
    padding p and no dilation this is the article's ``floor((n + 2p - f)/s) + 1``.

    >>> conv_output_size(6, 3)            # valid: a 6x6 image and a 3x3 kernel give 4x4
    4
    >>> conv_output_size(7, 3, s=2, p_before=1)
    4
    """
    _positive(kernel_size=f, stride=s, dilation=d)
    if p_after is None:
        p_after = p_before
    if p_before < 0 or p_after < 0:
        raise ClearConvError(f"padding must be >= 0, got {p_before}, {p_after}")
    span = d * (f - 1) + 1
    padded = n + p_before + p_after
    if span > padded:
        raise ShapeError(
            f"kernel extent {span} (kernel {f}, dilation {d}) is larger than the padded "
            f"input {padded} (input {n} + padding {p_before}+{p_after})"
        )
    return (padded - span) // s + 1


def same_padding(n: int, f: int, s: int = 1, d: int = 1) -> tuple[int, int]:
    """Padding ``(before, after)`` for 'same' output size ``ceil(n / s)``.

    Stride 1: total ``d*(f-1)``, as PyTorch's ``padding='same'`` (MATH.md §4: ``p = (f-1)/2``
    for odd f). An odd total puts the extra row/column at the bottom/right.
    Stride > 1 follows TensorFlow's rule (PyTorch refuses 'same' there): output
    ``ceil(n/s)``, total ``max((ceil(n/s) - 1)*s + d*(f-1) + 1 - n, 0)``, the extra at
    the bottom/right.

    >>> same_padding(6, 3)
    (1, 1)
    >>> same_padding(6, 4)       # even kernel: one more at the end
    (1, 2)
    >>> same_padding(7, 3, s=2)  # TensorFlow rule: output ceil(7/2) = 4
    (1, 1)
    """
    _positive(kernel_size=f, stride=s, dilation=d)
    out = -(-n // s)
    total = max((out - 1) * s + d * (f - 1) + 1 - n, 0)
    before = total // 2
    return before, total - before


def resolve_padding(padding: PaddingArg, kernel: tuple[int, int], stride: tuple[int, int],
                    dilation: tuple[int, int], size: tuple[int, int] | None = None) -> Padding2D:
    """Turn any accepted padding form into ``((top, bottom), (left, right))``.

    Accepts an int, ``(ph, pw)``, ``((top, bottom), (left, right))``, ``'valid'`` or
    ``'same'``. ``'same'`` with stride > 1 needs the input ``size`` (H, W).
    """
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0), (0, 0)
        if mode == "same":
            if stride == (1, 1):
                tot_h, tot_w = dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1)
                return (tot_h // 2, tot_h - tot_h // 2), (tot_w // 2, tot_w - tot_w // 2)
            if size is None:
                raise ClearConvError("padding='same' with stride > 1 needs the input size")
            return (same_padding(size[0], kernel[0], stride[0], dilation[0]),
                    same_padding(size[1], kernel[1], stride[1], dilation[1]))
        raise ClearConvError(
            f"unknown padding {padding!r}: use 'valid', 'same', an int, (ph, pw) "
            f"or ((top, bottom), (left, right))"
        )
    if isinstance(padding, bool):
        raise ClearConvError(f"padding must not be a bool, got {padding!r}")
    if hasattr(padding, "__index__"):
        p = int(padding)  # type: ignore[arg-type]
        if p < 0:
            raise ClearConvError(f"padding must be >= 0, got {padding!r}")
        return (p, p), (p, p)
    try:
        items = tuple(padding)  # type: ignore[arg-type]
    except TypeError:
        raise ClearConvError(f"padding {padding!r} is not an int, a pair or a string") from None
    if len(items) != 2:
        raise ClearConvError(
            f"padding must have 2 entries (h, w) or ((top, bottom), (left, right)), "
            f"got {padding!r}"
        )
    if all(hasattr(v, "__index__") and not isinstance(v, bool) for v in items):
        ph, pw = (int(v) for v in items)
        if ph < 0 or pw < 0:
            raise ClearConvError(f"padding must be >= 0, got {padding!r}")
        return (ph, ph), (pw, pw)
    try:
        (t, b), (left, r) = ((_index(u), _index(v)) for u, v in items)
    except (TypeError, ValueError):
        raise ClearConvError(
            f"padding must be ((top, bottom), (left, right)) of ints, got {padding!r}"
        ) from None
    if min(t, b, left, r) < 0:
        raise ClearConvError(f"padding must be >= 0, got {padding!r}")
    return (t, b), (left, r)


def conv2d_output_shape(in_shape: tuple[int, int, int, int], out_channels: int,
                        kernel: IntPair, stride: IntPair = 1, padding: PaddingArg = 0,
                        dilation: IntPair = 1) -> tuple[int, int, int, int]:
    """(N, C_in, H, W) -> (N, C_out, H_out, W_out) of a conv2d (MATH.md §6)."""
    kh, kw = pair(kernel, "kernel_size")
    s = pair(stride, "stride")
    d = pair(dilation, "dilation")
    n, _, h, w = in_shape
    (pt, pb), (pl, pr) = resolve_padding(padding, (kh, kw), s, d, (h, w))
    return (n, out_channels, conv_output_size(h, kh, s[0], pt, pb, d[0]),
            conv_output_size(w, kw, s[1], pl, pr, d[1]))


def pool_output_size(n: int, k: int, s: int, p: int = 0, ceil_mode: bool = False,
                     p_after: int | None = None, d: int = 1) -> int:
    """Output length along one axis of a pooling window (MATH.md §10), PyTorch semantics.

    ``floor((n + p_before + p_after - d*(k-1) - 1)/s) + 1`` (the article's
    ``floor((n + 2p - k)/s) + 1`` for symmetric padding, no dilation); with ``ceil_mode``
    the division rounds up, but a last window that would start inside the bottom/right
    padding is dropped (as PyTorch does). Each side's padding is at most half the window.

    >>> pool_output_size(28, 2, 2)
    14
    >>> pool_output_size(5, 2, 2, ceil_mode=True)
    3
    >>> pool_output_size(7, 3, 1, 1, p_after=0, d=2)
    4
    """
    _positive(kernel_size=k, stride=s, dilation=d)
    p_after = p if p_after is None else p_after
    for side in (p, p_after):
        if side < 0:
            raise ClearConvError(f"pooling padding must be >= 0, got {side}")
        if 2 * side > k:
            raise ClearConvError(
                f"pooling padding {side} must be at most half the window size {k}"
            )
    span = d * (k - 1) + 1
    num = n + p + p_after - span
    out = (num + (s - 1 if ceil_mode else 0)) // s + 1   # floor division, also for num < 0
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    if out < 1:
        ext = f"window {k}" if d == 1 else f"window {k} dilated by {d} (extent {span})"
        raise ShapeError(
            f"pooling {ext} is larger than the padded input {n + p + p_after} "
            f"(input {n} + padding {p}+{p_after})"
        )
    return out


def pool_padding(padding: object, op: str = "pooling") -> Padding2D:
    """A pooling padding as ``((top, bottom), (left, right))``: an int, ``(ph, pw)`` or
    ``((top, bottom), (left, right))`` (no 'same'/'valid', as PyTorch's pooling)."""
    if isinstance(padding, str):
        raise ClearConvError(f"{op}: padding must be an int, (ph, pw) or ((top, bottom), "
                             f"(left, right)), got {padding!r}")
    return resolve_padding(padding, (1, 1), (1, 1), (1, 1))  # type: ignore[arg-type]


def plain_padding(pads: Padding2D) -> int | tuple[int, int] | Padding2D:
    """The shortest form of a resolved padding: an int, ``(ph, pw)`` or the full pairs."""
    (t, b), (left, r) = pads
    if t == b and left == r:
        return t if t == left else (t, left)
    return pads


def conv2d_params(in_channels: int, out_channels: int, kernel: IntPair, bias: bool = True,
                  groups: int = 1) -> int:
    """Parameter count of a conv layer: ``C_out * C_in/groups * f_h * f_w (+ C_out)``
    (MATH.md §8)."""
    kh, kw = pair(kernel, "kernel_size")
    _positive(in_channels=in_channels, out_channels=out_channels)
    g = check_groups(groups, in_channels, out_channels, "conv2d_params")
    return out_channels * (in_channels // g) * kh * kw + (out_channels if bias else 0)


def dense_params(in_features: int, out_features: int, bias: bool = True) -> int:
    """Parameter count of a dense layer: ``in * out (+ out)`` (MATH.md §1)."""
    _positive(in_features=in_features, out_features=out_features)
    return in_features * out_features + (out_features if bias else 0)


def ceil_div(a: int, b: int) -> int:
    """``ceil(a / b)`` on ints."""
    return -(-a // b)



# --------------------------------------------------------------------------- the geometry of a call
class ConvGeometry(NamedTuple):
    """Everything about a conv2d call except the arrays."""

    in_shape: tuple[int, int, int, int]      # (N, C_in, H, W)
    out_shape: tuple[int, int, int, int]     # (N, C_out, H_out, W_out)
    kernel: tuple[int, int]                  # (kh, kw)
    stride: tuple[int, int]
    padding: Padding2D                       # ((top, bottom), (left, right))
    dilation: tuple[int, int]
    groups: int = 1                          # input and output channels in this many groups


@_memoized
def conv2d_geometry(x_shape: tuple[int, ...], w_shape: tuple[int, ...],
                    stride: IntPair = 1, padding: PaddingArg = 0,
                    dilation: IntPair = 1, groups: int = 1) -> ConvGeometry:
    """Check shapes and hyper-parameters of a conv2d and work out its geometry.

    The weight is (C_out, C_in / groups, kh, kw): with ``groups`` g the input channels
    and the outputs are cut into g equal groups, output group k seeing input group k only
    (depthwise when g == C_in).

    Raises :class:`~clearconv.errors.ShapeError` / ``ClearConvError`` (both ``ValueError``)
    with the numbers: channel mismatch (MATH.md §6), kernel larger than the padded input,
    stride, dilation or kernel <= 0, unknown padding, channels not divisible by groups.
    """
    if len(w_shape) != 4:
        raise ShapeError(
            f"conv2d weight must have shape (C_out, C_in / groups, kh, kw), got "
            f"{tuple(w_shape)}"
        )
    n, c, h, w = x_shape
    c_out, c_in_g, kh, kw = w_shape
    g = check_groups(groups, c, c_out, "conv2d")
    if c != c_in_g * g:
        per = f" / groups {g} = {c // g}" if g > 1 else ""
        raise ShapeError(
            f"conv2d: input has {c} channels{per} but the kernel expects {c_in_g} "
            f"(input shape {tuple(x_shape)}, weight shape {tuple(w_shape)})"
        )
    if kh <= 0 or kw <= 0 or c_out <= 0:
        raise ShapeError(f"conv2d weight shape {tuple(w_shape)} has a zero dimension")
    s = pair(stride, "stride")
    d = pair(dilation, "dilation")
    pads = resolve_padding(padding, (kh, kw), s, d, (h, w))
    (pt, pb), (pl, pr) = pads
    try:
        ho = conv_output_size(h, kh, s[0], pt, pb, d[0])
        wo = conv_output_size(w, kw, s[1], pl, pr, d[1])
    except ShapeError as e:
        raise ShapeError(
            f"conv2d: kernel {kh}x{kw} (dilation {d}) does not fit the input {h}x{w} "
            f"with padding {pads}: {e}"
        ) from None
    return ConvGeometry((n, c, h, w), (n, c_out, ho, wo), (kh, kw), s, pads, d, g)


def check_groups(groups: object, c_in: int, c_out: int, op: str) -> int:
    """``groups`` checked: an int >= 1 that divides both channel counts."""
    if isinstance(groups, bool) or not hasattr(groups, "__index__") or int(groups) < 1:
        raise ClearConvError(f"{op}: groups must be an int >= 1, got {groups!r}")
    g = int(groups)
    if c_in % g or c_out % g:
        raise ShapeError(f"{op}: groups {g} must divide both the input channels ({c_in}) "
                         f"and the output channels ({c_out})")
    return g


def conv_transpose2d_geometry(x_shape: tuple[int, ...], w_shape: tuple[int, ...],
                              stride: IntPair = 1, padding: IntPair = 0,
                              output_padding: IntPair = 0, dilation: IntPair = 1,
                              groups: int = 1) -> ConvGeometry:
    """The geometry of a transposed conv, as the conv2d whose input gradient it is.

    A transposed convolution of x (N, C_in, H, W) with weight (C_in, C_out / groups, kh,
    kw) (PyTorch's layout) is the input gradient (MATH.md §9) of the conv2d with that
    weight whose output has x's shape: the returned geometry is that conv2d's, its
    ``in_shape`` the transposed conv's output (N, C_out, H_out, W_out) with, per axis,
    ``H_out = (H - 1)*s - 2p + d*(kh - 1) + output_padding + 1`` (PyTorch's rule) and its
    ``out_shape`` x's shape.

    ``padding`` is an int or (ph, pw) (symmetric, as PyTorch); ``output_padding`` adds
    that many rows (columns) at the bottom (right), each smaller than the stride.
    """
    if len(w_shape) != 4:
        raise ShapeError(f"conv_transpose2d weight must have shape (C_in, C_out / groups, "
                         f"kh, kw), got {tuple(w_shape)}")
    n, c, h, w = x_shape
    c_in, c_out_g, kh, kw = w_shape
    if c != c_in:
        raise ShapeError(f"conv_transpose2d: input has {c} channels but the weight expects "
                         f"{c_in} (input shape {tuple(x_shape)}, weight shape "
                         f"{tuple(w_shape)})")
    if kh <= 0 or kw <= 0 or c_out_g <= 0:
        raise ShapeError(f"conv_transpose2d weight shape {tuple(w_shape)} has a zero "
                         f"dimension")
    g = check_groups(groups, c_in, c_in, "conv_transpose2d")    # the output has C_out_g*g
    s = pair(stride, "stride")
    d = pair(dilation, "dilation")
    if isinstance(padding, str):
        raise ClearConvError(f"conv_transpose2d: padding must be an int or (ph, pw), got "
                             f"{padding!r}")
    p = pair(padding, "padding", minimum=0)
    op = pair(output_padding, "output_padding", minimum=0)
    if op[0] >= s[0] or op[1] >= s[1]:
        raise ClearConvError(f"conv_transpose2d: output_padding {op} must be smaller than "
                             f"the stride {s}")
    size = [(x - 1) * st - 2 * pp + dd * (k - 1) + o + 1
            for x, st, pp, dd, k, o in zip((h, w), s, p, d, (kh, kw), op)]
    if min(size) < 1:
        raise ShapeError(f"conv_transpose2d: the output of input {h}x{w} with kernel "
                         f"{kh}x{kw}, stride {s}, padding {p}, dilation {d} would be "
                         f"{size[0]}x{size[1]}")
    geo = conv2d_geometry((n, c_out_g * g, size[0], size[1]), (c_in, c_out_g, kh, kw), s,
                          p, d, g)
    assert geo.out_shape == (n, c, h, w), (geo, x_shape)
    return geo


def check_divisor_override(divisor_override: object, op: str = "avg_pool2d") -> int | None:
    """None, or ``divisor_override`` as a non-zero int (PyTorch refuses 0)."""
    if divisor_override is None:
        return None
    if isinstance(divisor_override, bool) or not hasattr(divisor_override, "__index__") \
            or int(divisor_override) == 0:
        raise ClearConvError(f"{op}: divisor_override must be a non-zero int or None, got "
                             f"{divisor_override!r}")
    return int(divisor_override)


def unpool_output_size(in_hw: tuple[int, int], kernel_size: IntPair, stride: IntPair | None,
                       padding: object, output_size: object, op: str = "max_unpool2d"
                       ) -> tuple[int, int]:
    """The (H_out, W_out) of a max unpooling, PyTorch's rule.

    Default ``H_out = (H - 1)*s - p_top - p_bottom + k`` (the input size of the pooling
    that made x); ``output_size`` ((h, w), or a shape ending in them) picks another size
    (as PyTorch, strictly within one stride of the default).
    """
    k = pair(kernel_size, "kernel_size")
    s = k if stride is None else pair(stride, "stride")
    pads = pool_padding(padding, op)
    default = tuple((n - 1) * st - p0 - p1 + kk
                    for n, st, (p0, p1), kk in zip(in_hw, s, pads, k))
    if output_size is None:
        size = default
    else:
        try:
            items = tuple(output_size)  # type: ignore[arg-type]
            size = tuple(_index(v) for v in (items[2:] if len(items) == 4 else items))
        except (TypeError, ValueError):
            raise ClearConvError(f"{op}: output_size must be (H, W), got "
                                 f"{output_size!r}") from None
        if len(size) != 2 or not all(d - st < v < d + st
                                     for v, d, st in zip(size, default, s)):
            raise ClearConvError(f"{op}: output_size {output_size!r} must be (H, W) within "
                                 f"one stride {s} of the default {default}")
    if min(size) < 1:
        raise ShapeError(f"{op}: the output of input {in_hw} would be {size}")
    return size  # type: ignore[return-value]


def adaptive_windows(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's windows of adaptive pooling along one axis: output i reads
    ``[floor(i*size/out), ceil((i+1)*size/out))``.

    >>> adaptive_windows(5, 3)
    [(0, 2), (1, 4), (3, 5)]
    """
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


def adaptive_output_size(in_hw: tuple[int, int], output_size: object, op: str
                         ) -> tuple[int, int]:
    """``output_size`` of adaptive pooling (an int, or (h, w) with None keeping that
    axis's input size) as two ints >= 1."""
    items = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * 2
    if len(items) != 2:
        raise ClearConvError(f"{op}: output_size must be an int or (h, w), got "
                             f"{output_size!r}")
    size = []
    for v, n in zip(items, in_hw):
        if v is None:
            size.append(n)
            continue
        try:
            size.append(_index(v))
        except TypeError:
            raise ClearConvError(f"{op}: output_size must be an int or (h, w) of ints or "
                                 f"None, got {output_size!r}") from None
        if size[-1] < 1:
            raise ClearConvError(f"{op}: output_size must be >= 1, got {output_size!r}")
    if min(in_hw) < 1:
        raise ShapeError(f"{op}: the input plane {in_hw[0]}x{in_hw[1]} is empty")
    return size[0], size[1]


def upsample_output_size(in_hw: tuple[int, ...], size: object, scale_factor: object, op: str
                         ) -> tuple[tuple[int, int], tuple[float | None, float | None]]:
    """The output (H_out, W_out) and the scale factors given (None where ``size`` was).

    Exactly one of ``size`` (int or (h, w)) and ``scale_factor`` (number or (sh, sw),
    > 0) must be given, as in ``torch.nn.functional.interpolate``.
    """
    if (size is None) == (scale_factor is None):
        raise ClearConvError(f"{op}: give exactly one of size and scale_factor, got "
                             f"size={size!r}, scale_factor={scale_factor!r}")
    if size is not None:
        items = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        if len(items) != 2 or not all(hasattr(v, "__index__") and not isinstance(v, bool)
                                      and int(v) >= 1 for v in items):
            raise ClearConvError(f"{op}: size must be an int or (h, w) of ints >= 1, got "
                                 f"{size!r}")
        return (int(items[0]), int(items[1])), (None, None)
    factors = tuple(scale_factor) if isinstance(scale_factor, (tuple, list)) \
        else (scale_factor, scale_factor)
    try:
        sf = tuple(float(f) for f in factors)
    except (TypeError, ValueError):
        raise ClearConvError(f"{op}: scale_factor must be a number or (sh, sw), got "
                             f"{scale_factor!r}") from None
    if len(sf) != 2 or not all(f > 0 and np.isfinite(f) for f in sf):
        raise ClearConvError(f"{op}: scale_factor must be > 0 (one or two numbers), got "
                             f"{scale_factor!r}")
    out = (int(np.floor(in_hw[0] * sf[0])), int(np.floor(in_hw[1] * sf[1])))
    if min(out) < 1:
        raise ShapeError(f"{op}: input {in_hw[0]}x{in_hw[1]} with scale_factor "
                         f"{scale_factor!r} gives an empty output {out[0]}x{out[1]}")
    return out, (sf[0], sf[1])


class PoolGeometry(NamedTuple):
    """Everything about a pooling call except the arrays."""

    in_shape: tuple[int, int, int, int]
    out_shape: tuple[int, int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[tuple[int, int], tuple[int, int]]  # incl. the extra of ceil_mode
    dilation: tuple[int, int] = (1, 1)       # window cell (i, j) reads (m*s + i*d, ...)
    ceil_extra: tuple[int, int] = (0, 0)     # rows, columns ceil_mode added bottom/right

    @property
    def user_padding(self) -> Padding2D:
        """The padding as asked for, without ceil_mode's extra bottom/right rows."""
        (t, b), (left, r) = self.padding
        return (t, b - self.ceil_extra[0]), (left, r - self.ceil_extra[1])


@_memoized
def pool2d_geometry(x_shape: tuple[int, ...], kernel_size: IntPair, stride: IntPair | None,
                    padding: object, ceil_mode: bool, op: str = "pool2d",
                    dilation: IntPair = 1) -> PoolGeometry:
    """Check a pooling call and work out its geometry (PyTorch rules).

    ``padding`` is an int, (ph, pw) or ((top, bottom), (left, right)), each side at most
    half the window; with ``ceil_mode`` the bottom/right are padded further so the last
    partial window exists. ``dilation`` spaces the window's cells (max pooling).
    """
    n, c, h, w = x_shape
    k = pair(kernel_size, "kernel_size")
    s = k if stride is None else pair(stride, "stride")
    d = pair(dilation, "dilation")
    try:
        (pt, pb), (pl, pr) = pool_padding(padding, op)
        ho = pool_output_size(h, k[0], s[0], pt, ceil_mode, pb, d[0])
        wo = pool_output_size(w, k[1], s[1], pl, ceil_mode, pr, d[1])
    except ClearConvError as e:
        raise type(e)(f"{op}: window {k} with padding {padding!r} on input {h}x{w}: "
                      f"{e}") from None
    extra_h = max(0, (ho - 1) * s[0] + d[0] * (k[0] - 1) + 1 - (h + pt + pb))
    extra_w = max(0, (wo - 1) * s[1] + d[1] * (k[1] - 1) + 1 - (w + pl + pr))
    pads = ((pt, pb + extra_h), (pl, pr + extra_w))
    return PoolGeometry((n, c, h, w), (n, c, ho, wo), k, s, pads, d, (extra_h, extra_w))


# ------------------------------------------------------------------ arrays at an op's boundary
# functional/ and reference.py call these, so the same bad input raises the same error in both
def as_float(a: np.ndarray) -> np.ndarray:
    """Return ``a`` as float32 or float64: those two stay, float16 becomes float32,
    integers and bools become float64 (exact for every uint8 image)."""
    a = np.asarray(a)
    if a.dtype == np.float32 or a.dtype == np.float64:
        return a
    if a.dtype == np.float16:
        return a.astype(np.float32)
    return a.astype(np.float64)


def check_nchw(x: np.ndarray, op: str) -> None:
    """Raise a ShapeError naming the shape unless ``x`` is 4-D (N, C, H, W)."""
    if x.ndim != 4:
        raise ShapeError(
            f"{op} expects input of shape (N, C, H, W) (4 dimensions), got shape "
            f"{tuple(x.shape)} ({x.ndim} dimensions); add a batch axis with x[None] "
            f"or a channel axis with x[:, None]"
        )


def check_cache(cache: object, kind: type, op: str, forward: str) -> None:
    """Raise a ClearConvError unless ``cache`` is what ``forward`` returned (a ``kind``):
    a backward called with None or another op's cache names both ops."""
    if not isinstance(cache, kind):
        raise ClearConvError(f"{op}: cache must be the {kind.__name__} that {forward} "
                             f"returned, got {type(cache).__name__}")


def check_channels(x: np.ndarray, op: str) -> None:
    """Raise a ShapeError for an (N, C, H, W) input with no channel or an empty plane
    (N = 0 is allowed, as PyTorch allows an empty batch)."""
    if x.shape[1] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
        raise ShapeError(f"{op} expects an input with at least one channel and a non-empty "
                         f"plane, got shape {tuple(x.shape)}")


def check_linear(x: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check x (N, in) against weight (out, in) and cast both to the common float dtype
    (float64 if either is float64, else float32)."""
    x = np.asarray(x)
    weight = np.asarray(weight)
    if x.ndim != 2 or weight.ndim != 2:
        raise ShapeError(f"linear expects x (N, in) and weight (out, in), got x {x.shape} "
                         f"and weight {weight.shape}")
    if x.shape[1] != weight.shape[1]:
        raise ShapeError(f"linear: input has {x.shape[1]} features but the weight expects "
                         f"{weight.shape[1]} (x {x.shape}, weight {weight.shape})")
    dtype = np.result_type(as_float(x[:0]).dtype, as_float(weight[:0]).dtype)
    return x.astype(dtype, copy=False), weight.astype(dtype, copy=False)


def check_logits_labels(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Check logits (N, K) against integer labels (N,) in [0, K); return the labels as ints.

    Float labels holding whole numbers are accepted (converted to int64).
    """
    if z.ndim != 2:
        raise ShapeError(f"logits must have shape (N, K), got {z.shape}")
    n, k = z.shape
    if labels.shape != (n,):
        raise ShapeError(f"labels must have shape ({n},) to match logits {z.shape}, "
                         f"got {labels.shape}")
    if labels.dtype.kind not in "iu":
        if labels.dtype.kind == "f" and np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
        else:
            raise ShapeError(f"labels must be integer class indices, got dtype {labels.dtype}")
    if n and (labels.min() < 0 or labels.max() >= k):
        bad = labels[(labels < 0) | (labels >= k)]
        raise ShapeError(f"labels must be in [0, {k}) for {k} classes, got {bad[:5].tolist()}")
    return labels



# ---------------------------------------------------------------- batch normalisation
def _per_channel(a: np.ndarray | None, c: int, dtype: np.dtype, what: str
                 ) -> np.ndarray | None:
    if a is None:
        return None
    a = np.asarray(a)
    if a.shape != (c,):
        raise ShapeError(f"batch_norm: {what} must have shape ({c},) (one value per channel "
                         f"of the input), got {a.shape}")
    return a.astype(dtype, copy=False)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def check_batch_norm(x: np.ndarray, gamma: Any, beta: Any, running_mean: Any,
                     running_var: Any, training: bool, momentum: float, eps: float,
                     op: str = "batch_norm2d", stats_given: bool = False
                     ) -> tuple[np.ndarray, Any, Any]:
    """The checks the op and its reference share: x 4-D float, per-channel arrays of
    shape (C,), both running arrays or neither, momentum in [0, 1], eps > 0, more than
    one value per channel in training (unless ``stats_given``: the batch's statistics
    come from elsewhere). Returns x, gamma and beta in x's float dtype."""
    x = as_float(x)
    check_nchw(x, op)
    c = x.shape[1]
    gamma = _per_channel(gamma, c, x.dtype, "weight (gamma)")
    beta = _per_channel(beta, c, x.dtype, "bias (beta)")
    for name, a in (("running_mean", running_mean), ("running_var", running_var)):
        if a is not None and (not isinstance(a, np.ndarray) or a.shape != (c,)
                              or a.dtype.kind != "f"):
            raise ShapeError(f"{op}: {name} must be a float ndarray of shape ({c},) (it is "
                             f"updated in place), got {getattr(a, 'shape', type(a).__name__)}")
    if (running_mean is None) != (running_var is None):
        raise ClearConvError(f"{op}: give both running_mean and running_var, or neither")
    if running_mean is None and not training and not stats_given:
        raise ClearConvError(f"{op}: evaluation (training=False) normalises with the running "
                             f"statistics: running_mean and running_var are needed")
    if momentum is None:
        raise ClearConvError(f"{op}: momentum must be a number in [0, 1]; PyTorch's None (a "
                             f"cumulative average) is the layer's: BatchNorm2D(momentum=None) "
                             f"passes 1 / num_batches_tracked")
    if not _is_real(momentum) or not 0.0 <= float(momentum) <= 1.0:
        raise ClearConvError(f"{op}: momentum must be in [0, 1], got {momentum!r}")
    if not _is_real(eps) or not float(eps) > 0.0:
        raise ClearConvError(f"{op}: eps must be > 0, got {eps!r}")
    if training and not stats_given and x.shape[0] * x.shape[2] * x.shape[3] <= 1:
        raise ClearConvError(f"{op}: training needs more than one value per channel to "
                             f"take a variance, got input shape {tuple(x.shape)}")
    return x, gamma, beta


#: the ``reduction`` values of the losses, as in ``torch.nn``
REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str) -> str:
    """Return ``reduction`` if it is 'mean', 'sum' or 'none', else raise naming it."""
    if reduction not in REDUCTIONS:
        raise ClearConvError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


class CrossEntropyTarget(NamedTuple):
    """A checked cross-entropy target (see :func:`check_cross_entropy`)."""
    target: np.ndarray            # int64 class indices (N, d1, ...) or probabilities like z
    weight: np.ndarray | None     # (C,) in z's dtype, or None
    probabilities: bool           # True: the target holds class probabilities


def check_cross_entropy(z: np.ndarray, target: np.ndarray, weight: np.ndarray | None,
                        ignore_index: int, reduction: str, label_smoothing: float
                        ) -> CrossEntropyTarget:
    """Check the arguments of a cross-entropy call as ``torch.nn.CrossEntropyLoss`` does.

    ``z`` (N, C) or (N, C, d1, ...) logits; ``target`` either class indices of shape
    (N,) or (N, d1, ...), each in [0, C) or equal to ``ignore_index`` (float arrays holding
    whole numbers are accepted), or class probabilities of z's shape (floats; then
    ``ignore_index`` must stay negative, as in PyTorch); ``weight`` None or (C,).
    """
    check_reduction(reduction)
    if isinstance(label_smoothing, bool) or not 0.0 <= float(label_smoothing) <= 1.0:
        raise ClearConvError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    if z.ndim < 2:
        raise ShapeError(f"logits must have shape (N, C) or (N, C, d1, ...), got {z.shape}")
    classes = z.shape[1]
    if weight is not None:
        weight = np.asarray(weight)
        if weight.shape != (classes,):
            raise ShapeError(f"weight must have shape ({classes},), one value per class, got "
                             f"{weight.shape}")
        weight = weight.astype(z.dtype)
    if target.shape == z.shape:
        if target.dtype.kind != "f":
            raise ShapeError(f"a target of the logits' shape {z.shape} holds class "
                             f"probabilities and must be float, got dtype {target.dtype}")
        if ignore_index >= 0:
            raise ClearConvError(f"ignore_index={ignore_index} is not supported with class "
                                 f"probabilities as target")
        return CrossEntropyTarget(target.astype(z.dtype, copy=False), weight, True)
    expected = (z.shape[0], *z.shape[2:])
    if target.shape != expected:
        raise ShapeError(f"target must hold class indices of shape {expected} or class "
                         f"probabilities of shape {z.shape} to match logits {z.shape}, got "
                         f"{target.shape}")
    if target.dtype.kind not in "iu":
        if target.dtype.kind == "f" and np.all(target == np.round(target)):
            target = target.astype(np.int64)
        else:
            raise ShapeError(f"class indices must be integers, got dtype {target.dtype}")
    target = target.astype(np.int64, copy=False)
    bad = target[((target < 0) | (target >= classes)) & (target != ignore_index)]
    if bad.size:
        raise ShapeError(f"class indices must be in [0, {classes}) for {classes} classes "
                         f"(or ignore_index={ignore_index}), got {bad[:5].tolist()}")
    return CrossEntropyTarget(target, weight, False)


def check_same_shape(x: np.ndarray, target: np.ndarray, op: str) -> None:
    """Raise a ShapeError naming both shapes unless the target has the input's shape."""
    if x.shape != target.shape:
        raise ShapeError(f"{op}: target must have the input's shape {x.shape}, got "
                         f"{target.shape}")


def check_broadcasts(a: np.ndarray | None, shape: tuple[int, ...], name: str, op: str) -> None:
    """Raise a ShapeError unless ``a`` (None passes) broadcasts to ``shape`` unchanged."""
    if a is None:
        return
    a_shape = np.shape(a)
    try:
        ok = np.broadcast_shapes(a_shape, shape) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        raise ShapeError(f"{op}: {name} of shape {a_shape} does not broadcast to the input's "
                         f"shape {tuple(shape)}")


__all__ = [
    "REDUCTIONS",
    "adaptive_output_size",
    "adaptive_windows",
    "ConvGeometry",
    "CrossEntropyTarget",
    "PoolGeometry",
    "as_float",
    "check_batch_norm",
    "check_broadcasts",
    "ceil_div",
    "check_linear",
    "check_cross_entropy",
    "check_logits_labels",
    "check_divisor_override",
    "check_groups",
    "check_nchw",
    "check_reduction",
    "check_same_shape",
    "conv2d_geometry",
    "conv_transpose2d_geometry",
    "conv2d_output_shape",
    "conv2d_params",
    "conv_output_size",
    "dense_params",
    "pair",
    "plain_padding",
    "pool2d_geometry",
    "pool_output_size",
    "pool_padding",
    "resolve_padding",
    "same_padding",
    "unpool_output_size",
    "upsample_output_size",
]
