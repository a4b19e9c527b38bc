"""Classic image filters: MATH.md §3 (kernel convolution, the article's figure 4).

For an image f and a kernel h the filtered image is the true convolution

    G[m, n] = (f * h)[m, n] = sum_j sum_k h[j, k] f[m - j, n - k]

which is the cross-correlation that the library's conv layers compute,
``sum_j sum_k h[j, k] f[m + j, n + k]``, with the kernel rotated by 180 degrees.
:func:`apply_filter` computes it with :func:`clearconv.functional.conv2d_forward`
(the same code the ``Conv2D`` layer runs) on the rotated kernel; ``correlate=True``
skips the rotation and gives exactly what a conv layer with weight h computes. For the
symmetric kernels (Laplacian, box, Gaussian, sharpen) the two are the same; Sobel and
Prewitt change sign.

Kernels are written as in the textbooks, for true convolution: ``sobel-x`` is
``[[1, 0, -1], [2, 0, -2], [1, 0, -1]]`` and responds positively where the image gets
brighter to the right (``f[m, n+1] - f[m, n-1]``), ``sobel-y`` where it gets brighter
downwards (row index increasing). With ``correlate=True`` both signs flip.

Padding (MATH.md §4): ``"same"`` pads ``f - 1`` zeros in all per axis, ``(f - 1) // 2``
before and the rest after: for an odd f, ``p = (f - 1) / 2`` on both sides; for an even
f the extra row and column go at the bottom/right, as PyTorch does. So
``apply_filter(f, h) == apply_filter(f, h[::-1, ::-1], correlate=True)`` for every kernel.
For an even kernel this is where the kernel's origin sits:

- ``correlate=True``: the origin is kernel index ``(f - 1) // 2``, the same as
  ``scipy.signal.correlate2d(..., mode="same")``;
- true convolution: the origin is index ``f // 2``; ``scipy.signal.convolve2d(...,
  mode="same")`` puts it at ``(f - 1) // 2`` instead (one pixel to the top/left of
  ours). Both equal a slice of the "full" convolution: ours starts at ``f // 2``.

The padding is zeros by default (MATH.md §4); ``padding_mode`` "reflect", "replicate"
or "circular" fill it from the image instead, as PyTorch's ``Conv2d(padding_mode=...)``
(with zeros, a bright photo gets a bright line along its frame under edge filters).

Stride (MATH.md §5): the filtered image keeps every s-th pixel from pixel (0, 0):
the result is the stride-1 result subsampled ``[::s, ::s]``, of size
``floor((n + p_before + p_after - f) / s) + 1`` (``ceil(n / s)`` for "same").

Colour images are filtered one channel at a time (the channels go to the batch axis of
conv2d and the kernel is a ``(1, 1, f_h, f_w)`` weight).

    from clearconv.data.images import load_image, save_image
    from clearconv.filters import filter_image
    result, viewable, mapping = filter_image(load_image("photo.jpg"), "sobel")
    save_image(viewable, "edges.png")
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .data.images import to_uint8
from .errors import ClearConvError, ShapeError
from .functional import conv2d_forward
from .shapes import PaddingArg, conv_output_size, pair, resolve_padding

_FIXED: dict[str, list[list[float]]] = {
    # first derivatives, smoothed across (Sobel) or averaged (Prewitt)
    "sobel-x": [[1, 0, -1], [2, 0, -2], [1, 0, -1]],
    "sobel-y": [[1, 2, 1], [0, 0, 0], [-1, -2, -1]],
    "prewitt-x": [[1, 0, -1], [1, 0, -1], [1, 0, -1]],
    "prewitt-y": [[1, 1, 1], [0, 0, 0], [-1, -1, -1]],
    # second derivative: the 4-neighbour discrete Laplacian d²f/dx² + d²f/dy²,
    # and the 8-neighbour one that adds the diagonals
    "laplacian": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    "laplacian-8": [[1, 1, 1], [1, -8, 1], [1, 1, 1]],
    # identity + (-Laplacian): the image plus its edges
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "emboss": [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]],
}

#: every name :func:`get_kernel` knows
KERNEL_NAMES: tuple[str, ...] = (*_FIXED, "box", "gaussian")

#: gradient magnitudes ``sqrt(Gx² + Gy²)``, made of two kernels (see :func:`gradient_magnitude`)
MAGNITUDE_NAMES: tuple[str, ...] = ("sobel", "prewitt")

#: every name :func:`filter_image` takes (the choices of ``clearconv filter --kernel``)
FILTER_NAMES: tuple[str, ...] = (*KERNEL_NAMES, *MAGNITUDE_NAMES)

#: the mappings to 0..255 that :func:`filter_image` offers
OUTPUTS = ("auto", "magnitude", "rescale", "clip")

#: how the border is filled beyond the image (PyTorch's Conv2d ``padding_mode`` names),
#: as ``numpy.pad`` modes
PADDING_MODES: dict[str, str] = {
    "zeros": "constant",     # MATH.md §4: ... 0 0 | a b c | 0 0 ...
    "reflect": "reflect",    # mirrored without repeating the edge: c b | a b c | b a
    "replicate": "edge",     # the edge pixel repeated: a a | a b c | c c
    "circular": "wrap",      # the image tiled: b c | a b c | a b
}

#: largest im2col buffer (in values) one conv2d call of :func:`apply_filter` may build
_CHUNK_VALUES = 1 << 22
#: the largest padded canvas (H x W pixels, each of up to 3 channels) the filters take:
#: about 4 megapixels, so that a filter's float64 copies stay near 100 MB each; the CLI
#: refuses a larger file before decoding it. Resize a larger photo first, or raise this.
MAX_FILTER_PIXELS = 1 << 22
#: the largest kernel side a named kernel may have (``box``, ``gaussian``)
MAX_KERNEL_SIZE = 255


def _canonical(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def get_kernel(name: str, size: int | None = None, sigma: float = 1.0) -> np.ndarray:
    """A classic kernel as a float64 2-D array, written for true convolution (MATH.md §3).

    Parameters
    ----------
    name : one of :data:`KERNEL_NAMES` (case and ``_``/``-`` do not matter)
        ``sobel-x``, ``sobel-y``, ``prewitt-x``, ``prewitt-y``, ``laplacian`` (3x3,
        4-neighbour: ``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]``), ``laplacian-8`` (3x3,
        8-neighbour), ``sharpen`` (``[[0, -1, 0], [-1, 5, -1], [0, -1, 0]]``),
        ``emboss``, ``box`` (``ones((n, n)) / n²``), ``gaussian``
        (``exp(-(i² + j²) / (2 sigma²))`` for i, j from the centre, normalised to sum 1).
    size : n for ``box`` (default 3, any n >= 1; an even n is aligned as the module
        docstring says) and ``gaussian`` (odd, default ``2 * ceil(3 sigma) + 1``, which
        holds 99.7% of the bell per axis). The other kernels are fixed 3x3: ``size``
        must be None or 3.
    sigma : standard deviation of ``gaussian`` in pixels, > 0; ignored by the others.

    Examples
    --------
    >>> get_kernel("sobel-x")
    array([[ 1.,  0., -1.],
           [ 2.,  0., -2.],
           [ 1.,  0., -1.]])
    >>> get_kernel("gaussian", 5, sigma=1.0).sum().round(12)
    np.float64(1.0)
    """
    if not isinstance(name, str):
        raise ClearConvError(f"a kernel name must be a string, got {name!r}")
    key = _canonical(name)
    if size is not None and (isinstance(size, bool) or not hasattr(size, "__index__")
                             or size < 1):
        raise ClearConvError(f"kernel size must be an int >= 1, got {size!r}")
    if key in _FIXED:
        if size not in (None, 3):
            raise ClearConvError(
                f"{key} is a fixed 3x3 kernel; size {size} applies only to box and gaussian"
            )
        return np.array(_FIXED[key], dtype=np.float64)
    if size is not None and size > MAX_KERNEL_SIZE:
        raise ClearConvError(f"kernel size {size} is more than MAX_KERNEL_SIZE = "
                             f"{MAX_KERNEL_SIZE}")
    if key == "box":
        n = 3 if size is None else int(size)
        return np.full((n, n), 1.0 / (n * n))
    if key == "gaussian":
        if not (isinstance(sigma, (int, float, np.floating, np.integer))
                and math.isfinite(sigma) and sigma > 0):
            raise ClearConvError(f"gaussian sigma must be a number > 0, got {sigma!r}")
        n = 2 * math.ceil(3 * sigma) + 1 if size is None else int(size)
        if n > MAX_KERNEL_SIZE:
            raise ClearConvError(f"gaussian sigma {sigma} needs a {n}x{n} kernel, more than "
                                 f"MAX_KERNEL_SIZE = {MAX_KERNEL_SIZE}")
        if n % 2 == 0:
            raise ClearConvError(
                f"gaussian size must be odd (a centre pixel keeps the blur centred), got {n}"
            )
        t = np.arange(n, dtype=np.float64) - (n - 1) / 2
        g = np.exp(-(t ** 2) / (2.0 * float(sigma) ** 2))
        k = np.outer(g, g)
        return k / k.sum()
    if key in MAGNITUDE_NAMES:
        raise ClearConvError(
            f"{key!r} is the gradient magnitude of {key}-x and {key}-y, not one kernel: "
            f"use gradient_magnitude(image, {key!r}) or filter_image(image, {key!r})"
        )
    raise ClearConvError(f"unknown kernel {name!r}; known kernels: {', '.join(KERNEL_NAMES)}")


_EXAMPLE = "'1,0,-1; 2,0,-2; 1,0,-1'"


def parse_kernel(spec: str | os.PathLike | np.ndarray | list) -> np.ndarray:
    """A user's kernel as a float64 2-D array.

    ``spec`` is one of:

    - numbers as text, rows separated by ``;`` (or new lines), values by ``,`` or
      spaces: ``"1,0,-1; 2,0,-2; 1,0,-1"``; fractions are allowed: ``"1/9 1/9 1/9"``.
      One row gives a 1 x n kernel.
    - a path to a ``.npy`` file (read with ``allow_pickle=False``), or to a text file
      holding numbers as above;
    - an array or nested list.

    The kernel must be 2-D, non-empty and finite; anything else raises
    :class:`~clearconv.errors.ClearConvError` (a ``ValueError``) saying what is wrong.

    >>> parse_kernel("1 2 1")
    array([[1., 2., 1.]])
    """
    if isinstance(spec, (str, os.PathLike)):
        text = os.fspath(spec)
        path = Path(text)
        if text.lower().endswith(".npy") or (not _looks_numeric(text) and path.is_file()):
            return _check_kernel(_load_file(path), f"the kernel in {text!r}")
        if not _looks_numeric(text):
            raise ClearConvError(
                f"kernel {text!r} is not numbers like {_EXAMPLE} nor an existing file"
            )
        return _check_kernel(_parse_text(text), "the kernel")
    return _check_kernel(spec, "the kernel")


_NUMERIC = re.compile(r"^[\s0-9eE+\-.,;/]*[0-9][\s0-9eE+\-.,;/]*$")


def _looks_numeric(text: str) -> bool:
    return bool(_NUMERIC.match(text))


def _load_file(path: Path) -> np.ndarray:
    if not path.is_file():
        raise ClearConvError(f"kernel file {str(path)!r} does not exist")
    if path.suffix.lower() == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise ClearConvError(f"cannot read {str(path)!r} as a .npy array: {e}") from None
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ClearConvError(f"cannot read the kernel file {str(path)!r}: {e}") from None
    return _parse_text(text)


def _parse_text(text: str) -> np.ndarray:
    rows = [r for r in re.split(r"[;\n]", text) if r.strip()]
    if not rows:
        raise ClearConvError(f"the kernel text {text!r} holds no numbers; write e.g. {_EXAMPLE}")
    values: list[list[float]] = []
    for i, row in enumerate(rows, 1):
        tokens = [t for t in re.split(r"[,\s]+", row.strip()) if t]
        try:
            values.append([_number(t) for t in tokens])
        except (ValueError, ZeroDivisionError):
            raise ClearConvError(
                f"kernel row {i} ({row.strip()!r}) is not a list of numbers; write e.g. "
                f"{_EXAMPLE}"
            ) from None
        if len(values[-1]) != len(values[0]):
            raise ClearConvError(
                f"kernel rows must have the same length: row 1 has {len(values[0])} "
                f"values, row {i} has {len(values[-1])}"
            )
    return np.array(values, dtype=np.float64)


def _number(token: str) -> float:
    """``"2"``, ``"-0.5"``, ``"1e-3"`` or a fraction ``"1/9"`` as a float."""
    num, slash, den = token.partition("/")
    return float(num) / float(den) if slash else float(num)


def _check_kernel(kernel: object, what: str) -> np.ndarray:
    k = np.asarray(kernel)
    if k.dtype.kind not in "buif":
        raise ClearConvError(f"{what} must hold real numbers, got dtype {k.dtype}")
    if k.ndim != 2:
        raise ShapeError(
            f"{what} must be 2-D (kh, kw), got shape {k.shape}; a row kernel is (1, n)"
        )
    if k.size == 0:
        raise ShapeError(f"{what} is empty (shape {k.shape})")
    k = k.astype(np.float64)
    if not np.isfinite(k).all():
        raise ClearConvError(f"{what} holds NaN or infinite values")
    return k


def _check_canvas(shape: tuple[int, ...], pads: tuple[tuple[int, int], ...]) -> None:
    """Refuse, before any copy, an image whose padded canvas is more than
    :data:`MAX_FILTER_PIXELS` pixels or that has more than 3 channels."""
    if len(shape) not in (2, 3):
        return  # _as_image names the shape
    hi, wi = shape[-2:]
    c = shape[0] if len(shape) == 3 else 1
    (pt, pb), (pl, pr) = pads
    canvas = (hi + pt + pb) * (wi + pl + pr)
    if c > 4 or canvas > MAX_FILTER_PIXELS:
        raise ShapeError(f"the {hi}x{wi} image ({c} channel(s)) padded by {pads} is "
                         f"{hi + pt + pb}x{wi + pl + pr} pixels: more than "
                         f"clearconv.filters.MAX_FILTER_PIXELS = {MAX_FILTER_PIXELS} "
                         f"(resize it first)" if c <= 4 else
                         f"filters take at most 4 channels, got {c}")


def _as_image(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """(H, W) or (C, H, W) -> float64 (C, 1, H, W) and whether it was 2-D."""
    a = np.asarray(image)
    if a.dtype.kind not in "buif":
        raise ClearConvError(f"the image must be a numeric array, got dtype {a.dtype}")
    if a.ndim not in (2, 3):
        raise ShapeError(
            f"filters take an image of shape (H, W) or (C, H, W), got shape {a.shape}"
        )
    flat = a.ndim == 2
    a = a[None] if flat else a
    return a.astype(np.float64)[:, None], flat


def apply_filter(image: np.ndarray, kernel: np.ndarray | list, padding: PaddingArg = "same",
                 stride: int | tuple[int, int] = 1, correlate: bool = False,
                 padding_mode: str = "zeros") -> np.ndarray:
    """Filter an image with a kernel: ``G = f * h`` (MATH.md §3), each channel on its own.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (C, H, W), any real dtype (uint8 as 0..255)
    kernel : ndarray of shape (kh, kw) (see :func:`get_kernel`, :func:`parse_kernel`)
    padding : "same", "valid", an int, (ph, pw) or ((top, bottom), (left, right)) of zeros.
        "same" is ``(k - 1) // 2`` before and ``k // 2`` after per axis, whatever the
        stride (MATH.md §4; the module docstring has the even-kernel alignment).
    stride : int or (sh, sw); the stride-1 result subsampled from pixel (0, 0)
    correlate : False (default): true convolution, the kernel rotated 180° before the
        conv2d cross-correlation; True: cross-correlation, as a conv layer computes.
    padding_mode : what fills the padding, one of :data:`PADDING_MODES`: "zeros"
        (default, MATH.md §4; a bright image then gets a bright edge along its frame
        under edge filters), "reflect", "replicate" or "circular", as PyTorch's Conv2d.

    Returns
    -------
    ndarray of shape (H_out, W_out) or (C, H_out, W_out), float64, with
    ``H_out = floor((H + p_top + p_bottom - kh) / s_h) + 1`` (MATH.md §5).

    Size budget: the padded canvas may have at most :data:`MAX_FILTER_PIXELS` pixels,
    checked before anything is copied (ShapeError).

    Computed by :func:`clearconv.functional.conv2d_forward` with the channels in the
    batch axis and a ``(1, 1, kh, kw)`` weight, in strips of output rows so that large
    photos do not need a large im2col buffer.
    """
    h = _check_kernel(kernel, "the kernel")
    if padding_mode not in PADDING_MODES:
        raise ClearConvError(f"unknown padding_mode {padding_mode!r}: use one of "
                             f"{', '.join(PADDING_MODES)}")
    kh, kw = h.shape
    s = pair(stride, "stride")
    if isinstance(padding, str) and padding.lower() == "same":
        pads = resolve_padding("same", (kh, kw), (1, 1), (1, 1))
    else:
        pads = resolve_padding(padding, (kh, kw), s, (1, 1))
    (pt, pb), (pl, pr) = pads
    _check_canvas(np.shape(image), pads)
    x, flat = _as_image(image)
    c, _, hi, wi = x.shape
    try:
        ho = conv_output_size(hi, kh, s[0], pt, pb)
        wo = conv_output_size(wi, kw, s[1], pl, pr)
    except ShapeError as e:
        raise ShapeError(
            f"a {kh}x{kw} kernel does not fit a {hi}x{wi} image with padding {pads}: {e}"
        ) from None
    weight = (h if correlate else h[::-1, ::-1])[None, None]
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), mode=PADDING_MODES[padding_mode])
    rows = max(1, _CHUNK_VALUES // (kh * kw * c * wo))
    out = np.empty((c, ho, wo), dtype=np.float64)
    for r0 in range(0, ho, rows):
        r1 = min(ho, r0 + rows)
        strip = xp[:, :, r0 * s[0]:(r1 - 1) * s[0] + kh]
        y, _ = conv2d_forward(strip, weight, stride=s, padding=0)
        out[:, r0:r1] = y[:, 0]
    return out[0] if flat else out


def gradient_magnitude(image: np.ndarray, operator: str = "sobel", padding: PaddingArg = "same",
                       stride: int | tuple[int, int] = 1,
                       padding_mode: str = "zeros") -> np.ndarray:
    """``sqrt(Gx² + Gy²)`` with ``Gx = f * h_x`` and ``Gy = f * h_y`` (MATH.md §3).

    ``operator`` is "sobel" or "prewitt". The sign convention of convolution versus
    correlation does not matter here (it flips both signs). A colour image gives one
    magnitude per channel. Shapes, ``padding``, ``stride`` and ``padding_mode`` as
    :func:`apply_filter`.
    """
    key = _canonical(operator) if isinstance(operator, str) else operator
    if key not in MAGNITUDE_NAMES:
        raise ClearConvError(
            f"unknown gradient operator {operator!r}; use one of {', '.join(MAGNITUDE_NAMES)}"
        )
    gx = apply_filter(image, get_kernel(f"{key}-x"), padding, stride, False, padding_mode)
    gy = apply_filter(image, get_kernel(f"{key}-y"), padding, stride, False, padding_mode)
    return np.hypot(gx, gy)


def sobel_magnitude(image: np.ndarray, padding: PaddingArg = "same",
                    stride: int | tuple[int, int] = 1, padding_mode: str = "zeros") -> np.ndarray:
    """The Sobel gradient magnitude ``sqrt(Gx² + Gy²)``: :func:`gradient_magnitude` "sobel"."""
    return gradient_magnitude(image, "sobel", padding, stride, padding_mode)


class FilterResult(NamedTuple):
    """What :func:`filter_image` returns (unpacks as a 3-tuple)."""

    result: np.ndarray      # float64, (H_out, W_out) or (C, H_out, W_out): the filtered values
    image: np.ndarray       # uint8, same shape: result mapped to 0..255 for viewing
    mapping: str            # how result was mapped to 0..255, in words


def filter_image(image: np.ndarray, kernel: str | os.PathLike | np.ndarray | list,
                 size: int | None = None, sigma: float = 1.0, padding: PaddingArg = "same",
                 stride: int | tuple[int, int] = 1, correlate: bool = False,
                 output: str = "auto", padding_mode: str = "zeros") -> FilterResult:
    """Filter an image and make the result viewable: ``clearconv filter`` in one call.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (C, H, W); uint8 (0..255) or float
    kernel : a name from :data:`FILTER_NAMES` (``"sobel"`` and ``"prewitt"`` are
        gradient magnitudes), or a user kernel for :func:`parse_kernel` (numbers as text,
        a .npy or text file, an array)
    size, sigma : for named kernels, see :func:`get_kernel`
    padding, stride, correlate, padding_mode : see :func:`apply_filter` (``correlate``
        does not change a gradient magnitude)
    output : how the float result becomes 0..255 (see :func:`clearconv.data.images.to_uint8`):
        - ``"magnitude"``: ``|G|`` scaled so its maximum is 255 (0 stays black), one
          scale for all channels: edges of either sign show bright;
        - ``"rescale"``: ``min..max -> 0..255`` (0 becomes mid-grey for signed edges);
        - ``"clip"``: clipped to the image's value range and scaled to 0..255, the
          range being 0..255 for integer images and float images above 1, else 0..1;
        - ``"auto"`` (default): ``"magnitude"`` for gradient magnitudes and for kernels
          whose values sum to 0 (edge and Laplacian kernels: the result is a signed
          derivative), ``"clip"`` for the others (blurs, sharpen, emboss: the result is
          an image in the input's range).

    Returns
    -------
    :class:`FilterResult` ``(result, image, mapping)``; ``mapping`` starts with the
    output mode chosen, e.g. ``"magnitude: magnitude |x|, 0..1020 -> 0..255"``.
    """
    if output not in OUTPUTS:
        raise ClearConvError(f"unknown output {output!r}: use one of {', '.join(OUTPUTS)}")
    magnitude = isinstance(kernel, str) and _canonical(kernel) in MAGNITUDE_NAMES
    if magnitude:
        result = gradient_magnitude(image, _canonical(kernel), padding, stride, padding_mode)
        signed = True
    else:
        h = _resolve_kernel(kernel, size, sigma)
        result = apply_filter(image, h, padding, stride, correlate, padding_mode)
        signed = abs(h.sum()) <= 1e-9 * np.abs(h).sum()
    mode = ("magnitude" if signed else "clip") if output == "auto" else output
    max_value = None
    if mode == "clip":
        a = np.asarray(image)
        max_value = 1.0 if a.dtype.kind == "f" and a.size and float(a.max()) <= 1.0 else 255.0
    viewable, desc = to_uint8(result, mode, max_value=max_value)
    return FilterResult(result, viewable, f"{mode}: {desc}")


def _resolve_kernel(kernel: str | os.PathLike | np.ndarray | list, size: int | None,
                    sigma: float) -> np.ndarray:
    if isinstance(kernel, str) and not _looks_numeric(kernel):
        key = _canonical(kernel)
        if key in KERNEL_NAMES:
            return get_kernel(key, size, sigma)
        if not kernel.lower().endswith(".npy") and not Path(kernel).is_file():
            raise ClearConvError(
                f"unknown kernel {kernel!r}: use one of {', '.join(FILTER_NAMES)}, numbers "
                f"like {_EXAMPLE}, or a .npy file"
            )
    return parse_kernel(kernel)


__all__ = [
    "FILTER_NAMES",
    "KERNEL_NAMES",
    "MAGNITUDE_NAMES",
    "OUTPUTS",
    "PADDING_MODES",
    "FilterResult",
    "apply_filter",
    "filter_image",
    "get_kernel",
    "gradient_magnitude",
    "parse_kernel",
    "sobel_magnitude",
]
