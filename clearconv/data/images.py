"""Image files in and out: MATH.md §2 (digital images) as a user meets them.

A grayscale image is one H x W matrix, an RGB image three, each entry 0..255 stored as
a byte. This module turns any image file Pillow reads into such a uint8 array in the
project's channels-first layout, ``(C, H, W)`` with C = 1 (grayscale) or 3 (RGB), and
turns arrays (uint8 or float, e.g. a feature map) back into viewable images.

The article writes one image as ``[n, n, n_c]`` (channels last); here it is
``(n_c, n, n)``, and a batch of one is ``(1, n_c, n, n)`` (NCHW, as PyTorch and ONNX):
``array_chw = array_hwc.transpose(2, 0, 1)``.

Every function that changes an image says how, as short English strings, so that a
command line can state the conversion it applied::

    arr, steps = read_image("photo.jpg", mode="L", size=(28, 28))
    # steps == ['RGB -> grayscale (ITU-R 601-2 luma)', 'resized 640x427 -> 28x28 (WxH, bilinear)']
    x = image_to_tensor(arr)                 # float32 (1, 1, 28, 28) in [0, 1]
    save_image(feature_map, "out.png", mode="rescale")

Sizes in these strings are written ``width x height`` as image viewers do; array
shapes and ``size`` arguments are ``(H, W)`` as everywhere else in the library.

One decoder, one rule
---------------------
:func:`decode_image` is the only place where a file becomes pixels. ``read_image`` and
``load_image`` (behind ``clearconv predict``, ``clearconv filter`` and explain's
``--image``) and :func:`clearconv.data.load_image_folder` (``train --dataset folder``)
all call it, so a model is trained and asked on the same view of a picture; each reader
then applies only its own choice of channels and size. The rule, in the order applied:

1. **Size budget.** A file announcing more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels is
   refused before a pixel is decoded (Pillow itself only warns up to twice that limit).
   Of an animated or multi-page file the first frame is read.
2. **EXIF orientation** (values 2..8) is applied once, by ``ImageOps.exif_transpose``,
   which also deletes the tag: the picture is upright as a viewer shows it, and decoding
   the result again leaves it as it is.
3. **16 bits keep their high byte**, ``v >> 8`` (``floor(v / 256)``): grey ``I;16``,
   ``I;16L``, ``I;16B`` and ``I`` whose values fit in 0..65535 (16-bit PGM). Pillow's own
   decoders reduce 16-bit colour and grey-with-alpha PNGs this way before any code here
   sees them (the latter to RGBA, three equal channels), so it is the one rule that
   every 16-bit file can get. It is also torchvision's ``to_dtype(..., scale=True)`` and
   scikit-image's ``img_as_ubyte``, and an 8-bit picture stored in 16 bits (``v * 257``)
   comes back exactly. Other ``I`` (32-bit) and float ``F`` images: values in [0, 1]
   times 255, anything else rescaled min..max -> 0..255 (see :func:`to_uint8`).
4. **Transparency is composited on white**: an alpha channel (RGBA, LA, PA, RGBa, La), a
   palette with transparent entries, a PNG's transparent colour or grey level all become
   ``c' = round(c a + 255 (1 - a))`` with ``a = alpha / 255``. A fully transparent pixel
   has no colour of its own: what it stores (black in canvas exports, anything in an
   editor's) is what nobody sees, so dropping alpha would train on hidden colours. White
   is what a browser or a page shows behind it and the paper that ink is drawn on: a
   digit drawn in black on a transparent layer stays visible (on black it would vanish),
   and ``predict`` then inverts it to MNIST's light-on-dark like any photo of ink on paper
   (:func:`fit_to_model`). Save a light-on-dark drawing opaque, on black.
5. **Other modes**: a palette (``P``) becomes its colours, one grey channel when every
   colour it shows is grey; bilevel ``1`` becomes 0/255; ``CMYK`` becomes RGB by Pillow's
   conversion, ``R = round((255 - C)(255 - K) / 255)`` (G from M, B from Y; an embedded
   ICC profile is not applied); ``YCbCr``, ``LAB``, ``HSV`` by Pillow's conversions.

The result is an 8-bit Pillow image: ``"L"`` (C = 1) for a grey file (a grey mode or a
grey palette), ``"RGB"`` (C = 3) for every other one; a folder dataset then gives all
its images one channel count (:func:`clearconv.data.load_image_folder`). Errors:
:class:`ImageFileError` (a ``ValueError``) naming the file for anything that is not a
readable image, or too large; ``FileNotFoundError`` for a missing file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from ..errors import ClearConvError, ImageFileError, ShapeError
from ..io.files import atomic_write, open_regular

#: where :func:`load_image` can read from: a path, an open binary file, or a Pillow image
ImageSource = str | os.PathLike | IO[bytes] | Image.Image

#: the array -> 0..255 mappings of :func:`to_uint8` (and to_image, save_image)
MAPPINGS = ("auto", "clip", "rescale", "magnitude")

#: the image formats clearconv opens (Pillow's names); any other file, whatever its
#: extension, is refused before a Pillow plugin parses it (EPS and PS, which would run
#: Ghostscript, among them)
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM")

#: the grey level transparency is composited on (rule 4 of the module docstring): white
ALPHA_BACKGROUND = 255

#: the 8-bit grey modes that may carry transparency: one channel once it is composited
_GRAY_MODES = ("L", "LA", "La")


# --------------------------------------------------------------------------- reading

def decode_image(source: ImageSource,
                 max_pixels: int | None = None) -> tuple[Image.Image, list[str]]:
    """Decode an image into an upright, opaque, 8-bit Pillow image: the one decoder.

    Every reader of image files calls this (see the module docstring for the rule it
    applies and why), then chooses channels and size itself.

    Parameters
    ----------
    source : path, open binary file, or ``PIL.Image.Image``
        One of :data:`FORMATS`: PNG, JPEG, GIF, BMP, TIFF, WebP, PPM/PGM; any other
        file is refused whatever its extension, and a path must name a regular file
        (a FIFO or device is refused, not waited on). A Pillow image is normalised the
        same way (without the size budget: it is already in memory).

    Returns
    -------
    image : ``PIL.Image.Image`` of mode ``"L"`` (grey) or ``"RGB"``; decoding it again
        returns it unchanged.
    conversions : list of str, one per change, in the order applied (empty for an 8-bit
        grey or RGB file without transparency or rotation).

    Raises :class:`ImageFileError` (a :class:`~clearconv.errors.ClearConvError`, so a
    ``ValueError``) naming the file for one that is not an image, is corrupt or
    truncated, or has more pixels than ``PIL.Image.MAX_IMAGE_PIXELS``;
    ``FileNotFoundError`` for a missing file.

    Size budget: the announced width x height must be at most
    ``PIL.Image.MAX_IMAGE_PIXELS``, checked before any pixel is decoded.
    """
    steps: list[str] = []
    if isinstance(source, Image.Image):
        return _normalise(source, steps), steps
    with contextlib.ExitStack() as stack:
        stream: str | os.PathLike | IO[bytes] = source
        if isinstance(source, (str, os.PathLike)):
            stream = stack.enter_context(open_regular(source, ImageFileError, "image file"))
        return _decode(stream, source, steps, max_pixels)
    raise AssertionError("unreachable")  # pragma: no cover


def _decode(stream: IO[bytes] | str | os.PathLike, source: ImageSource,
            steps: list[str], max_pixels: int | None) -> tuple[Image.Image, list[str]]:
    Image.init()  # registers every plugin (MPO, WebP, ...); only FORMATS may open
    try:
        with Image.open(stream, formats=FORMATS) as opened:
            _check_pixels(opened, source, max_pixels)
            frames = getattr(opened, "n_frames", 1)
            if frames > 1:
                steps.append(f"first frame of {frames} read")
            return _normalise(opened, steps), steps
    except (FileNotFoundError, ImageFileError):
        raise
    except UnidentifiedImageError:
        raise ImageFileError(f"cannot read {_name(source)} as an image: not one of the "
                             f"formats clearconv reads ({', '.join(FORMATS)})") from None
    except Exception as e:  # noqa: BLE001 - Pillow raises many types on damaged data
        raise ImageFileError(f"cannot decode the image {_name(source)}: "
                             f"{type(e).__name__}: {e}") from None


def read_image(source: ImageSource, mode: str | None = None,
               size: tuple[int, int] | None = None,
               max_pixels: int | None = None) -> tuple[np.ndarray, list[str]]:
    """Read an image into a uint8 array ``(C, H, W)`` and say what was converted.

    The file is decoded by :func:`decode_image` (EXIF rotation, 16 bits, transparency on
    white, palettes, CMYK: the rule of the module docstring); then ``mode`` and ``size``
    apply.

    Parameters
    ----------
    source : path, open binary file, or ``PIL.Image.Image``
        Any format Pillow reads (PNG, JPEG, GIF, BMP, TIFF, WebP, ...). Of an animated or
        multi-page file the first frame is read.
    mode : None, "L" or "RGB"
        ``None`` keeps the image's nature: grayscale files give C = 1, colour files
        C = 3. ``"L"`` gives C = 1 (colour converted with Pillow's ITU-R 601-2 luma,
        ``L = 0.299 R + 0.587 G + 0.114 B``), ``"RGB"`` gives C = 3 (grey copied to the
        three channels).
    size : None or (H, W)
        Resize to exactly this size (bilinear, antialiased when shrinking; the aspect
        ratio is not kept: see :func:`fit_to_model` for that).
    max_pixels : None or int
        Refuse (ImageFileError) a file announcing more pixels than this, before
        decoding; ``PIL.Image.MAX_IMAGE_PIXELS`` applies always.

    Returns
    -------
    array : ndarray of shape (C, H, W), uint8
    conversions : list of str, one per change, in the order applied (empty when the
        file was already what was asked).

    Raises the errors of :func:`decode_image`, and ``ClearConvError`` for an unknown
    ``mode`` or a bad ``size`` (checked before the file is read).
    """
    if mode not in (None, "L", "RGB"):
        raise ClearConvError(f"mode must be None, 'L' or 'RGB', got {mode!r}")
    hw = None if size is None else _check_size(size)
    img, steps = decode_image(source, max_pixels)
    if mode == "L" and img.mode == "RGB":
        img = img.convert("L")
        steps.append("RGB -> grayscale (ITU-R 601-2 luma)")
    elif mode == "RGB" and img.mode == "L":
        img = img.convert("RGB")
        steps.append("grayscale -> RGB (grey copied to 3 channels)")
    if hw is not None and (img.height, img.width) != hw:
        steps.append(f"resized {img.width}x{img.height} -> {hw[1]}x{hw[0]} (WxH, bilinear)")
        img = img.resize((hw[1], hw[0]), Image.Resampling.BILINEAR)
    return _pil_to_chw(img), steps


def load_image(source: ImageSource, mode: str | None = None,
               size: tuple[int, int] | None = None) -> np.ndarray:
    """Read an image into a uint8 array ``(C, H, W)``: :func:`read_image` without the
    list of conversions.

    >>> load_image(Image.new("RGBA", (4, 2), (255, 0, 0, 0))).shape   # alpha on white
    (3, 2, 4)
    """
    return read_image(source, mode, size)[0]


def _check_pixels(img: Image.Image, source: object, max_pixels: int | None = None) -> None:
    """Refuse, before decoding, an image larger than Pillow's decompression-bomb limit
    (Pillow itself only warns up to twice that limit, then decodes), or than
    ``max_pixels`` (a reader's own, smaller budget)."""
    if max_pixels is not None and img.width * img.height > max_pixels:
        raise ImageFileError(f"refusing {_name(source)}: {img.width}x{img.height} pixels is "
                             f"more than the {max_pixels} this command reads")
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and img.width * img.height > limit:
        raise ImageFileError(
            f"refusing {_name(source)}: {img.width}x{img.height} pixels is more than "
            f"PIL.Image.MAX_IMAGE_PIXELS = {limit} (a decompression bomb?); raise that limit "
            "to read it"
        )


def _normalise(img: Image.Image, steps: list[str]) -> Image.Image:
    """Upright, 8-bit, opaque: an "L" or "RGB" image (rules 2 to 5 of the module
    docstring), recording each change."""
    img.load()
    orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
    if orientation in range(2, 9):              # 1 is upright, other values mean nothing
        img = ImageOps.exif_transpose(img)      # also deletes the tag: applied once
        steps.append(f"rotated/flipped upright (EXIF orientation {orientation})")
    src = img.mode
    if src in ("L", "RGB") and not img.has_transparency_data:
        return img
    if src in ("I", "F") or src.startswith("I;16"):
        return _deep_to_l(img, steps)
    if src == "1":
        steps.append("1-bit -> grayscale (0/255)")
        return img.convert("L")
    if img.has_transparency_data:
        return _on_white(img, steps)
    if src == "P" and _all_grey(np.asarray(img.convert("RGB"))):
        steps.append(f"{src} -> grayscale (grey palette)")
        return img.convert("L")
    steps.append(f"{src} -> RGB")
    return img.convert("RGB")


def _on_white(img: Image.Image, steps: list[str]) -> Image.Image:
    """Composite any transparency on :data:`ALPHA_BACKGROUND` (rule 4); one channel for a
    grey mode, or a palette whose composited colours are all grey."""
    # c' = round(c a + 255 (1 - a)), a = alpha / 255, in integers: exactly
    # (c alpha + 255 (255 - alpha) + 127) // 255 (never a tie: 255 is odd), with a
    # quarter of the memory of float64 (an image may have up to 89 M pixels)
    rgba = np.asarray(img.convert("RGBA"))      # Pillow applies palettes and tRNS here
    alpha = rgba[..., 3:].astype(np.uint32)
    out = rgba[..., :3].astype(np.uint32)
    out *= alpha
    out += ALPHA_BACKGROUND * (255 - alpha) + 127
    out //= 255
    out = out.astype(np.uint8)
    if img.mode in _GRAY_MODES or (img.mode in ("P", "PA") and _all_grey(out)):
        steps.append(f"{img.mode} -> grayscale (alpha composited on white)")
        return Image.fromarray(np.ascontiguousarray(out[..., 0]))
    steps.append(f"{img.mode} -> RGB (alpha composited on white)")
    return Image.fromarray(out)


def _all_grey(rgb: np.ndarray) -> bool:
    """Whether every pixel of an (H, W, 3) array has R = G = B."""
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def _deep_to_l(img: Image.Image, steps: list[str]) -> Image.Image:
    """16-bit, 32-bit integer or float grey -> 8-bit "L" (rule 3 of the module docstring);
    a transparent grey level (a 16-bit PNG's tRNS) becomes white (rule 4)."""
    src = img.mode
    a = np.asarray(img)
    lo, hi = _range(a)
    if src.startswith("I;16") or (src == "I" and lo >= 0 and hi <= 65535):
        out = (a >> 8).astype(np.uint8)
        steps.append(f"{src} (16-bit) -> 8-bit grayscale (high byte: value >> 8)")
    else:
        out, how = to_uint8(a, "auto")
        steps.append(f"{src} -> 8-bit grayscale ({how})")
    transparent = img.info.get("transparency")
    if isinstance(transparent, int) and src != "F":
        out[a == transparent] = ALPHA_BACKGROUND
        steps.append(f"transparent level {transparent} -> white")
    return Image.fromarray(out)


def _pil_to_chw(img: Image.Image) -> np.ndarray:
    """A Pillow "L" or "RGB" image as a new, writable uint8 array (C, H, W)."""
    a = np.asarray(img, dtype=np.uint8)
    return (a[None] if a.ndim == 2 else a.transpose(2, 0, 1)).copy()


def _name(source: object) -> str:
    if isinstance(source, (str, os.PathLike)):
        return repr(os.fspath(source))
    return repr(getattr(source, "name", "the stream"))


def _check_size(size: object) -> tuple[int, int]:
    try:
        h, w = size  # type: ignore[misc]
        ok = all(hasattr(v, "__index__") and not isinstance(v, bool) and v >= 1 for v in (h, w))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ClearConvError(f"size must be (H, W) of ints >= 1, got {size!r}")
    return int(h), int(w)


# --------------------------------------------------------------------------- to 0..255

def to_uint8(array: np.ndarray, mode: str = "auto",
             max_value: float | None = None) -> tuple[np.ndarray, str]:
    """Map an array of any numeric dtype to uint8 0..255 and say how.

    Parameters
    ----------
    array : ndarray of any shape
    mode : one of :data:`MAPPINGS`
        - ``"clip"``: the values are taken to be in ``0..max_value`` and clipped there,
          then scaled by ``255 / max_value``. ``max_value`` defaults by dtype: 255 for
          integer arrays (so uint8 passes unchanged), 1 for float arrays.
        - ``"rescale"``: ``min..max -> 0..255`` (a constant array gives 0).
        - ``"magnitude"``: ``|x|``, then ``0..max|x| -> 0..255`` (0 stays black; an
          all-zero array gives 0). For edge maps, whose sign is only a direction.
        - ``"auto"``: uint8 unchanged; bool as 0/255; other integers within 0..255
          unchanged; floats within [0, 1] times 255; anything else ``"rescale"``.
    max_value : the white level for ``"clip"`` (see above).

    Returns
    -------
    image : ndarray of the shape of ``array``, uint8 (values rounded to nearest)
    description : str, e.g. ``"rescaled -3.2..4.1 -> 0..255"``

    NaN or infinite values raise :class:`~clearconv.errors.ClearConvError`.

    >>> to_uint8(np.array([-1.0, 0.0, 3.0]), "magnitude")[0]
    array([ 85,   0, 255], dtype=uint8)
    """
    a = np.asarray(array)
    if a.dtype.kind not in "buif":
        raise ClearConvError(f"cannot map an array of dtype {a.dtype} to 0..255")
    if mode not in MAPPINGS:
        raise ClearConvError(f"unknown mapping {mode!r}: use one of {', '.join(MAPPINGS)}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ClearConvError("the array holds NaN or infinite values; cannot map to 0..255")
    if a.dtype.kind == "b":
        return a.astype(np.uint8) * np.uint8(255), "booleans as 0/255"
    if mode == "auto":
        as_is = _auto(a)
        if as_is is not None:
            return as_is
        mode = "rescale"
    x = a.astype(np.float64)
    if mode == "clip":
        return _clip(a, x, max_value)
    if mode == "rescale":
        lo, hi = _range(x)
        if hi > lo:
            return _finish((x - lo) * (255.0 / (hi - lo))), f"rescaled {lo:.4g}..{hi:.4g} -> 0..255"
        return np.zeros(a.shape, np.uint8), f"constant {lo:.4g} -> 0"
    mag = np.abs(x)
    peak = float(mag.max()) if mag.size else 0.0
    if peak > 0:
        return _finish(mag * (255.0 / peak)), f"magnitude |x|, 0..{peak:.4g} -> 0..255"
    return np.zeros(a.shape, np.uint8), "magnitude |x|: all zero -> 0"


def _auto(a: np.ndarray) -> tuple[np.ndarray, str] | None:
    """``"auto"``'s mappings that keep the values' meaning, or None (then: rescale)."""
    if a.dtype == np.uint8:
        return a.copy(), "uint8 values as they are"
    lo, hi = _range(a)
    if a.dtype.kind in "iu" and lo >= 0 and hi <= 255:
        return a.astype(np.uint8), "integer values 0..255 as they are"
    if a.dtype.kind == "f" and lo >= 0 and hi <= 1:
        return _finish(a.astype(np.float64) * 255.0), "values in [0, 1] times 255"
    return None


def _clip(a: np.ndarray, x: np.ndarray, max_value: float | None) -> tuple[np.ndarray, str]:
    """``"clip"``: 0..max_value (by dtype: 255 for integers, 1 for floats) to 0..255."""
    top = float(max_value) if max_value is not None else (255.0 if a.dtype.kind in "iu"
                                                          else 1.0)
    if not np.isfinite(top) or top <= 0:
        raise ClearConvError(f"max_value must be a positive number, got {max_value!r}")
    if a.dtype == np.uint8 and top == 255.0:
        return a.copy(), "uint8 values as they are"
    # count only the values that clipping changes by half a grey level or more
    half = 0.5 * top / 255.0
    below = float((x < -half).mean()) if x.size else 0.0
    above = float((x > top + half).mean()) if x.size else 0.0
    desc = f"clipped to 0..{top:g}"
    if top != 255.0:
        desc += f", times {255.0 / top:g}"
    if below or above:
        desc += f" ({below:.1%} of values below 0, {above:.1%} above {top:g})"
    return _finish(np.clip(x, 0.0, top) * (255.0 / top)), desc


def _range(a: np.ndarray) -> tuple[float, float]:
    return (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)


def _finish(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _as_chw(array: np.ndarray, what: str) -> np.ndarray:
    """(H, W), (C, H, W) or (1, C, H, W) with C in {1, 3} -> (C, H, W)."""
    a = np.asarray(array)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[0] not in (1, 3):
        hint = ""
        if a.ndim == 3 and a.shape[-1] in (1, 3):
            hint = " (channels last? pass array.transpose(2, 0, 1))"
        raise ShapeError(
            f"{what} expects an image of shape (H, W), (C, H, W) or (1, C, H, W) with "
            f"C = 1 or 3, got shape {tuple(np.shape(array))}{hint}"
        )
    if a.shape[1] < 1 or a.shape[2] < 1:
        raise ShapeError(f"{what}: the image of shape {tuple(np.shape(array))} is empty")
    return a


# --------------------------------------------------------------------------- writing

def to_image(array: np.ndarray, mode: str = "auto") -> Image.Image:
    """An array as a Pillow image ("L" for one channel, "RGB" for three).

    ``array`` has shape (H, W), (C, H, W) or (1, C, H, W) with C in {1, 3}; channels
    last (H, W, C) is refused rather than guessed. Values are mapped to 0..255 by
    :func:`to_uint8` with ``mode`` (one of :data:`MAPPINGS`); with ``"rescale"`` and
    ``"magnitude"`` one range is used for all channels, so colours keep their balance.

    >>> to_image(np.zeros((3, 2, 5))).size          # Pillow sizes are (width, height)
    (5, 2)
    """
    return _to_image(array, mode)[0]


def _to_image(array: np.ndarray, mode: str) -> tuple[Image.Image, str]:
    chw = _as_chw(array, "to_image")
    u8, desc = to_uint8(chw, mode)
    if u8.shape[0] == 1:
        return Image.fromarray(np.ascontiguousarray(u8[0])), desc
    return Image.fromarray(np.ascontiguousarray(u8.transpose(1, 2, 0))), desc


def save_image(array: np.ndarray, path: str | os.PathLike, mode: str = "auto",
               quality: int = 95) -> str:
    """Write an array as an image file, atomically; return how values were mapped.

    The format follows the file extension (``.png``, ``.jpg``, ``.bmp``, ``.tif``, ...).
    The image is written to a temporary file in the target folder and moved into place
    with ``os.replace``, so ``path`` is either the old file or the complete new one,
    never half written. ``array`` and ``mode`` as for :func:`to_image`; ``quality`` is
    used by JPEG and WebP.

    Returns the mapping's description (see :func:`to_uint8`), for a command line to
    print.
    """
    img, desc = _to_image(array, mode)
    target = Path(path)
    ext = target.suffix.lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None or fmt not in Image.SAVE:
        raise ClearConvError(
            f"cannot tell an image format Pillow writes from the extension of {str(path)!r}; "
            f"use e.g. .png or .jpg"
        )
    with atomic_write(target) as f:
        options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
        img.save(f, format=fmt, **options)
    return desc


# --------------------------------------------------------------------------- to a model

def image_to_tensor(image: np.ndarray, scale: str = "unit",
                    mean: float | Sequence[float] | None = None,
                    std: float | Sequence[float] | None = None) -> np.ndarray:
    """A uint8 image ``(C, H, W)`` (or ``(H, W)``) as a float32 batch of one, ``(1, C, H, W)``.

    scale:
      - ``"unit"``: ``x / 255``, into [0, 1] (as ``clearconv.data.to_float`` mode "scale").
      - ``"standardize"``: ``(x - mean) / std`` on the pixel values 0..255. Without
        ``mean``/``std`` the image's own mean and standard deviation are used (one scalar
        each, as ``clearconv.data.to_float``; a constant image gives zeros). To match a
        model trained on standardised data, pass the training set's mean and std, in
        pixel units, as scalars or one value per channel.
    """
    a = np.asarray(image)
    if a.dtype.kind not in "buif":
        raise ClearConvError(f"image must be a numeric array, got dtype {a.dtype}")
    x = _as_chw(a, "image_to_tensor").astype(np.float64)
    if scale == "unit":
        if mean is not None or std is not None:
            raise ClearConvError("mean and std apply to scale='standardize' only")
        return (x / 255.0)[None].astype(np.float32)
    if scale != "standardize":
        raise ClearConvError(f"scale must be 'unit' or 'standardize', got {scale!r}")
    c = x.shape[0]
    m = np.asarray(x.mean() if mean is None else mean, np.float64)
    s = np.asarray(x.std() if std is None else std, np.float64)
    for name, v in (("mean", m), ("std", s)):
        if v.ndim > 1 or (v.ndim == 1 and v.shape[0] not in (1, c)):
            raise ShapeError(f"{name} must be a scalar or {c} values (one per channel), "
                             f"got shape {v.shape}")
    m, s = m.reshape(-1, 1, 1), s.reshape(-1, 1, 1)
    if std is not None and not (s > 0).all():
        raise ClearConvError(f"std must be > 0, got {std!r}")
    s = np.where(s > 0, s, 1.0)
    return ((x - m) / s)[None].astype(np.float32)


def border_pixels(gray: np.ndarray, fraction: float = 0.05) -> np.ndarray:
    """The pixels of a strip along the four edges of a 2-D image, as a 1-D array.

    The strip is ``max(1, round(fraction * min(H, W)))`` pixels wide.
    """
    g = np.asarray(gray)
    h, w = g.shape
    k = max(1, round(fraction * min(h, w)))
    if 2 * k >= min(h, w):
        return g.ravel()
    return np.concatenate([g[:k].ravel(), g[-k:].ravel(), g[k:-k, :k].ravel(),
                           g[k:-k, -k:].ravel()])


def fit_to_model(image: np.ndarray, channels: int, size: tuple[int, int],
                 invert: bool | str = "auto", background: str | None = "auto",
                 keep_aspect: bool = True) -> tuple[np.ndarray, list[str]]:
    """Convert a user's picture to what a model takes: ``channels`` x ``size``.

    Parameters
    ----------
    image : uint8 ndarray of shape (C, H, W) or (H, W), C in {1, 3}, e.g. from
        :func:`load_image` (other dtypes are mapped with :func:`to_uint8` "auto" first)
    channels : 1 or 3, the model's input channels
    size : (H, W), the model's input size
    invert : True, False or "auto"
        Replace each value v by 255 - v. ``"auto"`` inverts when the picture's background
        is the opposite of the model's (see ``background``).
    background : "dark", "light", None or "auto"
        The background the model was trained on. MNIST, Fashion-MNIST and the embedded
        digits are light strokes on a dark background, while a photo of a digit written
        on paper is dark on light: it must be inverted to look like the training data.
        ``"auto"`` means ``"dark"`` for a 1-channel model and None (unknown, never
        inverted automatically) for a 3-channel one, whose natural photos have no
        usual background.
    keep_aspect : resize the picture to fit inside ``size`` with its aspect ratio kept,
        then pad it to ``size`` with its border colour (no stretching; resizing comes
        first, so no canvas is larger than the picture or ``size``); False stretches it.

    Notes
    -----
    The heuristic for ``invert="auto"``: take a strip along the four edges of the
    picture (5% of its shorter side, at least one pixel), in grayscale; the picture's
    background is called light when the median of that strip is >= 128 (more than half
    the border is brighter than mid-grey), dark otherwise. A digit photographed on
    white paper has a light border; an MNIST-style image has a black one.

    Returns
    -------
    array : uint8 ndarray of shape (channels, H, W); pass it to :func:`image_to_tensor`
    conversions : list of str, one per step applied (or decided against), in order
    """
    if channels not in (1, 3):
        raise ClearConvError(f"channels must be 1 or 3, got {channels!r}")
    hw = _check_size(size)
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and hw[0] * hw[1] > limit:
        raise ImageFileError(f"size {hw[0]}x{hw[1]} is more than PIL.Image.MAX_IMAGE_PIXELS "
                             f"= {limit} pixels")
    if invert not in (True, False, "auto"):
        raise ClearConvError(f"invert must be True, False or 'auto', got {invert!r}")
    if background == "auto":
        background = "dark" if channels == 1 else None
    if background not in ("dark", "light", None):
        raise ClearConvError(f"background must be 'dark', 'light', None or 'auto', "
                             f"got {background!r}")
    chw = _as_chw(image, "fit_to_model")
    steps: list[str] = []
    if chw.dtype != np.uint8:
        chw, desc = to_uint8(chw, "auto")
        steps.append(f"values mapped to 0..255: {desc}")
    img = _chw_to_pil(chw)
    if channels == 1 and img.mode == "RGB":
        img = img.convert("L")
        steps.append("RGB -> grayscale (ITU-R 601-2 luma)")
    elif channels == 3 and img.mode == "L":
        img = img.convert("RGB")
        steps.append("grayscale -> RGB (grey copied to 3 channels)")
    if invert is True:
        img = ImageOps.invert(img)
        steps.append("inverted: v -> 255 - v")
    elif invert == "auto" and background is None:
        steps.append("not inverted (the model's background is unknown)")
    elif invert == "auto":
        median = float(np.median(border_pixels(np.asarray(img.convert("L")))))
        seen = "light" if median >= 128 else "dark"
        if seen != background:
            img = ImageOps.invert(img)
            steps.append(f"inverted: v -> 255 - v (border median {median:.0f}: {seen} "
                         f"background, the model expects {background})")
        else:
            steps.append(f"not inverted (border median {median:.0f}: {seen} background, "
                         f"as the model expects)")
    if keep_aspect:
        img = _fit_and_pad(img, hw, steps)
    elif (img.height, img.width) != hw:
        steps.append(f"resized {img.width}x{img.height} -> {hw[1]}x{hw[0]} (WxH, bilinear)")
        img = img.resize((hw[1], hw[0]), Image.Resampling.BILINEAR)
    return _pil_to_chw(img), steps


def _chw_to_pil(chw: np.ndarray) -> Image.Image:
    if chw.shape[0] == 1:
        return Image.fromarray(np.ascontiguousarray(chw[0]))
    return Image.fromarray(np.ascontiguousarray(chw.transpose(1, 2, 0)))


def _fit_and_pad(img: Image.Image, hw: tuple[int, int], steps: list[str]) -> Image.Image:
    """Resize ``img`` to fit inside H x W with its aspect ratio kept, then pad it evenly
    on two sides to H x W with its border colour. Resizing comes first, so that no canvas
    is ever larger than the picture or the model's input (a 60000x1 strip is never padded
    to 60000x60000)."""
    w, h = img.size
    scale = min(hw[0] / h, hw[1] / w)
    fit_w, fit_h = max(1, min(hw[1], round(w * scale))), max(1, min(hw[0], round(h * scale)))
    a = np.asarray(img)
    planes = a[..., None] if a.ndim == 2 else a
    fill = tuple(int(np.median(border_pixels(planes[..., c]))) for c in range(planes.shape[2]))
    if (fit_h, fit_w) != (h, w):
        steps.append(f"resized {w}x{h} -> {fit_w}x{fit_h} (WxH, bilinear, aspect ratio "
                     f"kept)")
        img = img.resize((fit_w, fit_h), Image.Resampling.BILINEAR)
    if (fit_h, fit_w) == hw:
        return img
    canvas = Image.new(img.mode, (hw[1], hw[0]), fill[0] if img.mode == "L" else fill)
    canvas.paste(img, ((hw[1] - fit_w) // 2, (hw[0] - fit_h) // 2))
    colour = fill[0] if len(fill) == 1 else fill
    steps.append(f"padded {fit_w}x{fit_h} -> {hw[1]}x{hw[0]} (WxH) with the border colour "
                 f"{colour} to keep the aspect ratio")
    return canvas


# ----------------------------------------------------------- photos of handwritten digits
#: MNIST's preparation (LeCun et al.): the digit fitted in a 20x20 box of a 28x28 image
DIGIT_BOX_FRACTION = 20 / 28
#: the long side of the working copy a photo is analysed at (pixels)
_WORK_SIDE = 400


def _sliding(a: np.ndarray, k: int, reduce: str) -> np.ndarray:
    """Max or min over a k x k window (separable, edge-padded), same shape as ``a``."""
    from numpy.lib.stride_tricks import sliding_window_view

    r = k // 2
    out = a
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (r, k - 1 - r)
        win = sliding_window_view(np.pad(out, pad, mode="edge"), k, axis=axis)
        out = win.max(axis=-1) if reduce == "max" else win.min(axis=-1)
    return out


def _box_blur(a: np.ndarray, k: int) -> np.ndarray:
    """Mean over a k x k window (edge-padded): two cumulative sums."""
    r = k // 2
    p = np.pad(a, ((r, k - 1 - r), (r, k - 1 - r)), mode="edge")
    c = np.cumsum(np.cumsum(np.pad(p, ((1, 0), (1, 0))), axis=0), axis=1)
    h, w = a.shape
    return (c[k:k + h, k:k + w] - c[:h, k:k + w] - c[k:k + h, :w] + c[:h, :w]) / (k * k)


def _components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected components of a small boolean mask: (labels 1..n, 0 outside; n)."""
    labels = np.zeros(mask.shape, np.int32)
    h, w = mask.shape
    n = 0
    for r0, c0 in zip(*np.nonzero(mask)):
        if labels[r0, c0]:
            continue
        n += 1
        labels[r0, c0] = n
        stack = [(int(r0), int(c0))]
        while stack:
            r, c = stack.pop()
            for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                if 0 <= rr < h and 0 <= cc < w and mask[rr, cc] and not labels[rr, cc]:
                    labels[rr, cc] = n
                    stack.append((rr, cc))
    return labels, n


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold of 0..255 values: the split that maximises the between-class
    variance."""
    hist = np.bincount(np.clip(values, 0, 255).astype(np.int64).ravel(), minlength=256)
    p = hist / max(hist.sum(), 1)
    omega, mu = np.cumsum(p), np.cumsum(p * np.arange(256))
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu[-1] * omega - mu) ** 2 / (omega * (1 - omega))
    if not np.isfinite(between).any():     # one grey level: no split
        return float(mu[-1])
    return float(np.nanargmax(between))


def _pooled(mask: np.ndarray, f: int) -> np.ndarray:
    """Any True in each f x f block (the mask padded to whole blocks)."""
    hh, ww = -(-mask.shape[0] // f) * f, -(-mask.shape[1] // f) * f
    m = np.pad(mask, ((0, hh - mask.shape[0]), (0, ww - mask.shape[1])))
    return m.reshape(hh // f, f, ww // f, f).any(axis=(1, 3))


def _page(g: np.ndarray) -> np.ndarray:
    """Where the page is: everything but the dark surroundings (a table) reached from
    the picture's border through pixels darker than Otsu's threshold."""
    f = 4
    dark = _pooled(g < _otsu(g), f)
    labels, _ = _components(dark)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    outside = np.isin(labels, edge[edge > 0])
    # only the picture's outer band can be surroundings: a shadow reaching the middle
    # of the page stays page
    band = np.ones_like(outside)
    bh, bw = max(1, outside.shape[0] * 3 // 20), max(1, outside.shape[1] * 3 // 20)
    band[bh:-bh, bw:-bw] = False
    outside &= band
    return ~outside.repeat(f, 0).repeat(f, 1)[:g.shape[0], :g.shape[1]]


def _deskew_angle(ink: np.ndarray) -> float:
    """The angle (degrees) that makes ruled lines horizontal: the rotation whose row
    profile of the ink is the most peaked; 0 when no line stands out."""
    img = Image.fromarray(np.clip(ink * 255, 0, 255).astype(np.uint8))
    best, best_angle = 0.0, 0.0
    for angle in np.arange(-10.0, 10.5, 0.5):
        rows = np.asarray(img.rotate(float(angle), Image.Resampling.BILINEAR), np.float32).sum(1)
        score = float(np.sort(rows)[-3:].mean() / (np.median(rows) + 1e-6))
        if score > best:
            best, best_angle = score, float(angle)
    rows = np.asarray(img, np.float32).sum(1)
    flat = float(np.sort(rows)[-3:].mean() / (np.median(rows) + 1e-6))
    return best_angle if best > 1.3 * flat and best > 8 else 0.0


def prepare_digit(image: np.ndarray, size: tuple[int, int] = (28, 28),
                  ink: str = "auto") -> tuple[np.ndarray, list[str]]:
    """A photo of one handwritten digit as MNIST prepared its digits: (1, H, W) uint8.

    For models trained on MNIST-style digits (light strokes on black, the digit fitted
    in a 20x20 box and centred by its centre of mass in 28x28). The steps, each said in
    the returned list:

    1. grayscale, analysed on a copy whose long side is 400 pixels;
    2. which way the ink goes (``ink``: 'dark' on light paper, 'light' on a dark board;
       'auto': the middle of the picture is mostly paper, and the far tail of its values,
       the 1% beyond the median's side that reaches further, is ink);
    3. the page: what is not the dark surroundings (a table) reached from the picture's
       border through pixels darker than Otsu's threshold;
    4. the paper, a morphological closing of the picture (a max then a min filter wider
       than a stroke, blurred): lighting gradients, shadows and paper texture are paper,
       not ink; ink = how much darker than its own local paper a pixel is, relative to
       that paper (0..1);
    5. the strokes: ink above a third of the strongest (and 6 robust sigmas of the
       paper's noise), kept where it is within 2 pixels of ink above half the strongest
       (faint ruled lines and texture fall away, pencil strokes stay whole);
    6. ruled lines: the page is turned so that its most peaked row profile is horizontal
       (which also undoes a rotated photo), and rows whose ink runs across more than 60%
       of the page are dropped;
    7. the digit: the largest connected piece of ink (pieces a few pixels apart count as
       one) with the pieces near it of at least 15% of its ink, none that touches the
       edge unless nothing else is there;
    8. contrast stretched so that paper is 0 and the stroke's core 255, strokes
       thickened (or thinned) to MNIST's width, about 13% of the digit's height;
    9. fitted in a box of 20/28 of the model's size keeping its aspect ratio, placed so
       that its centre of mass is the image's centre.

    Parameters
    ----------
    image : uint8 (C, H, W) or (H, W), e.g. from :func:`read_image`
    size : (H, W) of the model's input
    ink : 'auto', 'dark' (dark ink on light paper) or 'light'

    Returns
    -------
    array : uint8 (1, H, W), light strokes on 0
    steps : list of str, what was done, in order
    """
    if ink not in ("auto", "dark", "light"):
        raise ClearConvError(f"ink must be 'auto', 'dark' or 'light', got {ink!r}")
    hw = _check_size(size)
    chw = _as_chw(image, "prepare_digit")
    if chw.dtype != np.uint8:
        chw, _ = to_uint8(chw, "auto")
    steps: list[str] = []
    darkness, page, threshold = _ink_map(chw, ink, steps)
    digit = _digit_strokes(darkness, page, threshold, steps)
    return _as_mnist(digit, hw, steps), steps


def _ink_map(chw: np.ndarray, ink: str, steps: list[str]
             ) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Steps 1-4 of :func:`prepare_digit`: (ink 0..1, page mask, (low, high) thresholds)."""
    img = _chw_to_pil(chw)
    if img.mode != "L":
        img = img.convert("L")
        steps.append("RGB -> grayscale")
    scale = min(1.0, _WORK_SIDE / max(img.size))
    if scale < 1.0:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.BOX)
    g = np.asarray(img, np.float32)
    h, w = g.shape
    middle = g[h // 5:h - h // 5, w // 5:w - w // 5]
    lo, mid, hi = np.percentile(middle, [1, 50, 99])
    if ink == "auto":    # the paper is the most of the middle; the ink, its far tail
        ink = "dark" if mid - lo >= hi - mid else "light"
        side = "darker" if ink == "dark" else "lighter"
        steps.append(f"{ink} ink (the middle of the picture is mostly paper, its far tail "
                     f"{side}: ink)")
    steps.append("inverted: dark ink becomes MNIST's light strokes on black" if ink == "dark"
                 else "light strokes on dark kept as MNIST's")
    if ink == "light":
        g = 255.0 - g
    page = _page(g)
    if page.mean() < 0.3:        # no page stands out: the whole picture is the page
        page[:] = True
    elif page.mean() < 0.999:
        steps.append(f"the page: {page.mean():.0%} of the picture (the rest is its "
                     f"surroundings)")
    kp = max(9, (min(h, w) // 6) | 1)      # wider than a stroke, as local as it can be
    paper = _box_blur(_sliding(_sliding(g, kp, "max"), kp, "min"), max(3, kp // 2) | 1)
    darkness = np.where(page, np.clip((paper - g) / np.maximum(paper, 16.0), 0.0, 1.0), 0.0)
    steps.append(f"paper estimated by a {kp}x{kp} closing (lighting, shadows and texture "
                 f"are paper); ink = darkness relative to the local paper")
    inside = darkness[page]
    noise = 1.4826 * float(np.median(np.abs(inside - np.median(inside))))
    strong = float(np.percentile(inside, 99.7))
    return darkness.astype(np.float32), page, (max(6 * noise, strong / 3, 0.04), strong / 2)


def _digit_strokes(darkness: np.ndarray, page: np.ndarray, thresholds: tuple[float, float],
                   steps: list[str]) -> np.ndarray:
    """Steps 5-7 of :func:`prepare_digit`: the digit's ink (0..1), cropped to it."""
    low, high = thresholds
    near_strong = _sliding((darkness > max(high, low)).astype(np.uint8), 5, "max") > 0
    mask = (darkness > low) & near_strong
    angle = _deskew_angle(darkness * mask)
    if angle:
        darkness = np.asarray(Image.fromarray(darkness).rotate(
            angle, Image.Resampling.BILINEAR), np.float32)
        page = np.asarray(Image.fromarray(page.astype(np.uint8) * 255).rotate(
            angle, Image.Resampling.NEAREST)) > 0
        mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).rotate(
            angle, Image.Resampling.NEAREST)) > 0
        steps.append(f"turned {angle:+.1f} degrees to make the ruled lines horizontal")
    lines = mask.sum(axis=1) / np.maximum(page.sum(axis=1), 1) > 0.6
    if lines.any():
        lines = _sliding(lines[:, None].astype(np.uint8), 3, "max")[:, 0].astype(bool)
        mask[lines] = False
        steps.append(f"{int(lines.sum())} rows of ruled lines removed")
    f = 4   # the pieces of ink, on a copy pooled 4x4 and grown by a block (gaps close)
    blocks = _pooled(mask, f)
    labels, n = _components(_sliding(blocks.astype(np.uint8), 3, "max") > 0)
    labels = labels * blocks
    if n == 0 or not blocks.any():
        raise ClearConvError("no ink found in the picture: is there a digit on it?")
    mass_img = np.pad(darkness * mask, ((0, blocks.shape[0] * f - mask.shape[0]),
                                        (0, blocks.shape[1] * f - mask.shape[1])))
    mass = np.bincount(labels.ravel(), mass_img.reshape(blocks.shape[0], f, blocks.shape[1], f)
                       .sum(axis=(1, 3)).ravel(), minlength=n + 1)[1:]
    edge = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])))
    order = [i + 1 for i in np.argsort(-mass) if (i + 1) not in edge and mass[i] > 0]
    order = order or [int(np.argmax(mass)) + 1]
    keep = _near_pieces(labels, order, mass)
    chosen = np.isin(labels, keep).repeat(f, 0).repeat(f, 1)[:mask.shape[0], :mask.shape[1]]
    digit = np.where(chosen & mask, darkness, 0.0)
    rr, cc = np.nonzero(digit)
    digit = digit[rr.min():rr.max() + 1, cc.min():cc.max() + 1]
    steps.append(f"the digit: {len(keep)} piece(s) of ink, {digit.shape[1]}x{digit.shape[0]} "
                 f"pixels (WxH) of the {mask.shape[1]}x{mask.shape[0]} copy")
    return digit


def _near_pieces(labels: np.ndarray, order: list[int], mass: np.ndarray) -> list[int]:
    """The largest piece and those near it with at least 15% of its ink."""
    main = order[0]
    rr, cc = np.nonzero(labels == main)
    r0, r1, c0, c1 = rr.min(), rr.max(), cc.min(), cc.max()
    mh, mw = r1 - r0 + 1, c1 - c0 + 1
    keep = [main]
    for lab in order[1:]:
        if mass[lab - 1] < 0.15 * mass[main - 1]:
            continue
        r2, c2 = np.nonzero(labels == lab)
        if (r2.min() >= r0 - mh // 2 and r2.max() <= r1 + mh // 2
                and c2.min() >= c0 - mw and c2.max() <= c1 + mw):
            keep.append(lab)
    return keep


def _as_mnist(digit: np.ndarray, hw: tuple[int, int], steps: list[str]) -> np.ndarray:
    """Steps 8-9 of :func:`prepare_digit`: stretched, MNIST's stroke width, boxed, centred."""
    core = float(np.percentile(digit[digit > 0], 90))
    digit = np.clip(digit / max(core, 1e-6), 0.0, 1.0)
    stroke = digit > 0.5     # its width: 2 area / perimeter, against MNIST's
    perimeter = np.count_nonzero(stroke ^ _sliding(stroke.astype(np.uint8), 3, "min").astype(bool))
    width_now = 2.0 * stroke.sum() / max(perimeter, 1)
    target = 0.13 * max(digit.shape)
    if width_now < 0.7 * target:
        digit = _sliding(digit, int(round(target - width_now)) | 1, "max")
        steps.append(f"strokes thickened from about {width_now:.0f} to {target:.0f} pixels")
    elif width_now > 1.6 * target:
        digit = _sliding(digit, int(round(width_now - target)) | 1, "min")
        steps.append(f"strokes thinned from about {width_now:.0f} to {target:.0f} pixels")
    steps.append("contrast stretched: paper 0, the stroke's core 255")
    box = max(1, round(min(hw) * DIGIT_BOX_FRACTION)) if min(hw) >= 16 else min(hw)
    s = box / max(digit.shape)
    dh, dw = max(1, round(digit.shape[0] * s)), max(1, round(digit.shape[1] * s))
    small = np.asarray(Image.fromarray((digit * 255).astype(np.uint8)).resize(
        (dw, dh), Image.Resampling.LANCZOS), np.float32).clip(0, None)
    small *= 255.0 / max(float(small.max()), 1.0)      # the core 255 after resizing too
    total = small.sum()
    cy = float((small.sum(axis=1) * np.arange(dh)).sum() / total) if total else dh / 2
    cx = float((small.sum(axis=0) * np.arange(dw)).sum() / total) if total else dw / 2
    top = int(np.clip(round((hw[0] - 1) / 2 - cy), 0, hw[0] - dh))
    left = int(np.clip(round((hw[1] - 1) / 2 - cx), 0, hw[1] - dw))
    out = np.zeros(hw, np.float32)
    out[top:top + dh, left:left + dw] = small
    steps.append(f"fitted in {dw}x{dh} of a {hw[1]}x{hw[0]} image (WxH), its centre of mass "
                 f"at the centre")
    return np.clip(out, 0, 255).astype(np.uint8)[None]


__all__ = [
    "ALPHA_BACKGROUND",
    "DIGIT_BOX_FRACTION",
    "FORMATS",
    "MAPPINGS",
    "ImageFileError",
    "ImageSource",
    "border_pixels",
    "decode_image",
    "fit_to_model",
    "image_to_tensor",
    "load_image",
    "prepare_digit",
    "read_image",
    "save_image",
    "to_image",
    "to_uint8",
]
