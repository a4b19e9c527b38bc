"""Shape arithmetic of MATH.md §4-6 and §10: output sizes, padding, parameter counts.

Pure functions on ints, used by functional/, layers/, ``summary`` and ``explain``.
Every check here raises :class:`~clearconv.errors.ClearConvError` (a ``ValueError``)
with a message that names the offending numbers.
"""

from __future__ import annotations

from .errors import ClearConvError, ShapeError

IntPair = int | tuple[int, int]
#: padding as accepted by conv2d: int, (ph, pw), ((top, bottom), (left, right)),
#: 'valid' or 'same'.
PaddingArg = int | str | tuple[int, int] | tuple[tuple[int, int], tuple[int, int]]
#: padding resolved to ((top, bottom), (left, right)).
Padding2D = tuple[tuple[int, int], tuple[int, int]]


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


def pool_output_size(n: int, k: int, s: int, p: int = 0, ceil_mode: bool = False) -> int:
    """Output length along one axis of a pooling window (MATH.md §10), PyTorch semantics.

    ``floor((n + 2p - k)/s) + 1``; with ``ceil_mode`` the division rounds up, but a last
    window that would start inside the right padding is dropped (as PyTorch does).

    >>> pool_output_size(28, 2, 2)
    14
    >>> pool_output_size(5, 2, 2, ceil_mode=True)
    3
    """
    _positive(kernel_size=k, stride=s)
    if p < 0:
        raise ClearConvError(f"pooling padding must be >= 0, got {p}")
    if 2 * p > k:
        raise ClearConvError(
            f"pooling padding {p} must be at most half the window size {k}"
        )
    num = n + 2 * p - k
    out = (num + (s - 1 if ceil_mode else 0)) // s + 1   # floor division, also for num < 0
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    if out < 1:
        raise ShapeError(
            f"pooling window {k} is larger than the padded input {n + 2 * p} "
            f"(input {n} + padding 2*{p})"
        )
    return out


def conv2d_params(in_channels: int, out_channels: int, kernel: IntPair, bias: bool = True) -> int:
    """Parameter count of a conv layer: ``C_out * C_in * f_h * f_w (+ C_out)`` (MATH.md §8)."""
    kh, kw = pair(kernel, "kernel_size")
    _positive(in_channels=in_channels, out_channels=out_channels)
    return out_channels * in_channels * kh * kw + (out_channels if bias else 0)


def dense_params(in_features: int, out_features: int, bias: bool = True) -> int:
    """Parameter count of a dense layer: ``in * out (+ out)`` (MATH.md §1)."""
    _positive(in_features=in_features, out_features=out_features)
    return in_features * out_features + (out_features if bias else 0)


def ceil_div(a: int, b: int) -> int:
    """``ceil(a / b)`` on ints."""
    return -(-a // b)


__all__ = [
    "ceil_div",
    "conv2d_output_shape",
    "conv2d_params",
    "conv_output_size",
    "dense_params",
    "pair",
    "pool_output_size",
    "resolve_padding",
    "same_padding",
]
