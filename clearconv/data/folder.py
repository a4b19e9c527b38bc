"""A folder of images, one sub-folder per class (the layout of torchvision's ImageFolder).

::

    root/
      cat/  001.png  002.jpg  more/003.webp ...
      dog/  a.jpeg  b.bmp ...

Class names are the sub-folder names, sorted (``"cat"`` is label 0, ``"dog"`` label 1);
each class folder is searched recursively. Any format Pillow reads works; every image is
converted to one mode and resized to one size with Pillow, so the result is one array.

Python API::

    from clearconv.data import load_image_folder
    x, y, classes = load_image_folder("photos", size=(32, 32), mode="RGB")
    # x: uint8 (N, 3, 32, 32), y: int64 (N,), classes: ("cat", "dog")

Conversions (all by Pillow): ``mode="L"`` uses the ITU-R 601-2 luma
``L = R*299/1000 + G*587/1000 + B*114/1000``; ``mode="RGB"`` repeats a grey channel three
times; an alpha channel is dropped (RGBA, LA, P with transparency); CMYK uses Pillow's
plain conversion; 16-bit greyscale keeps its 8 high bits. ``mode=None`` picks ``"RGB"``
if any image has colour (some pixel with R, G, B not all equal), else ``"L"``.
Resizing is bilinear (Pillow's, which filters when it shrinks) to ``size = (H, W)``.
Pillow is needed (``pip install pillow``); it is imported on the first call.
"""

from __future__ import annotations

import operator
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Union

import numpy as np

from .idx import DatasetError, DatasetNotFoundError

PathLike = Union[str, "os.PathLike[str]"]

_MODES = ("L", "RGB")
_GREY_MODES = ("1", "L", "LA", "La", "I", "F")
#: how many skipped files a warning names before it only counts the rest.
_WARN_NAMES = 10


class SkippedFilesWarning(UserWarning):
    """Files in an image folder that were skipped because they are not images."""


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - Pillow is a dependency
        raise DatasetError("reading image files needs Pillow: pip install pillow") from exc
    return Image


def image_extensions() -> frozenset[str]:
    """The file extensions Pillow can open here, lower case with the dot (``".png"``)."""
    Image = _pillow()
    Image.init()
    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items()
                     if fmt in Image.OPEN)


def _is_16bit(mode: str) -> bool:
    return mode.startswith("I;16")


def _normalise_mode(image: Any, Image: Any) -> Any:
    """The image in ``"L"`` (greyscale content) or ``"RGB"`` (anything else)."""
    if _is_16bit(image.mode):
        return Image.fromarray((np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    return image.convert("L" if image.mode in _GREY_MODES else "RGB")


def _has_colour(image: Any) -> bool:
    """True for an RGB image with a pixel whose channels differ."""
    if image.mode != "RGB":
        return False
    a = np.asarray(image)
    return bool((a[..., 0] != a[..., 1]).any() or (a[..., 1] != a[..., 2]).any())


def _open(path: Path, Image: Any) -> Any:
    try:
        with Image.open(path) as image:
            limit = Image.MAX_IMAGE_PIXELS  # Pillow only warns up to twice this, then decodes
            if limit is not None and image.width * image.height > limit:
                raise DatasetError(f"{path}: {image.width}x{image.height} pixels is more than "
                                   f"PIL.Image.MAX_IMAGE_PIXELS = {limit} (a decompression "
                                   "bomb?); raise that limit to read it")
            image.load()
            return _normalise_mode(image, Image)
    except DatasetError:
        raise
    except Exception as exc:  # Pillow's decoders raise many types on damaged data
        raise DatasetError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") \
            from exc


def _walk_files(folder: Path) -> list[Path]:
    """All files under ``folder``, sorted, skipping hidden files and folders."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith("."))
    return found


def _check_size(size: Iterable[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    try:
        h, w = (operator.index(v) for v in size)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"size must be (H, W), two ints >= 1, got {size!r}") from exc
    if h < 1 or w < 1:
        raise DatasetError(f"size must be (H, W), two ints >= 1, got {size!r}")
    return h, w


def _warn_skipped(root: Path, skipped: list[Path]) -> None:
    names = [str(p.relative_to(root)) for p in skipped]
    shown = ", ".join(names[:_WARN_NAMES])
    more = f" and {len(names) - _WARN_NAMES} more" if len(names) > _WARN_NAMES else ""
    warnings.warn(f"{root}: skipped {len(names)} file(s) that are not images (by their "
                  f"extension) or not in a class folder: {shown}{more}",
                  SkippedFilesWarning, stacklevel=3)


def load_image_folder(root: PathLike, size: Iterable[int] | None = None,
                      mode: str | None = None, extensions: Iterable[str] | None = None,
                      ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Load a folder of images laid out one sub-folder per class.

    Args:
        root: the folder; each non-hidden sub-folder is a class, searched recursively.
        size: ``(H, W)`` to resize every image to (bilinear). None: keep the sizes,
            which must then all be equal.
        mode: ``"L"`` (1 channel), ``"RGB"`` (3 channels) or None (``"RGB"`` if any
            image has colour, else ``"L"``). See the module docstring for conversions.
        extensions: the file extensions taken as images (``".png"`` or ``"png"``, any
            case); default every extension Pillow can open (:func:`image_extensions`).
            Other files are skipped with one :class:`SkippedFilesWarning` naming them;
            hidden files (``.DS_Store``) and files directly in ``root`` are skipped too.

    Returns:
        images: ndarray of shape ``(N, C, H, W)`` (NCHW), uint8, C = 1 or 3.
        labels: ndarray of shape ``(N,)``, int64, the index of the class folder.
        classes: tuple of the class names (folder names, sorted), index = label.

    Files come class by class, each class in sorted path order.

    Raises:
        DatasetNotFoundError: ``root`` is not a folder.
        DatasetError: no class folder, a class folder with no image, a file with an
            image extension that Pillow cannot read, differing sizes with
            ``size=None``, or a bad ``size`` / ``mode``.
    """
    Image = _pillow()
    root = Path(root)
    hw = _check_size(size)
    if mode not in (*_MODES, None):
        raise DatasetError(f"mode must be one of {_MODES} or None, got {mode!r}")
    if not root.is_dir():
        raise DatasetNotFoundError(f"{root}: no such folder (expected one sub-folder per class)")
    if extensions is None:
        allowed = image_extensions()
    else:
        allowed = frozenset(("" if e.startswith(".") else ".") + e.lower() for e in extensions)
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    classes = tuple(p.name for p in entries if p.is_dir())
    if not classes:
        raise DatasetError(f"{root}: no class folders (expected one sub-folder per class)")
    skipped = [p for p in entries if not p.is_dir()]
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        members = _walk_files(root / name)
        images = [p for p in members if p.suffix.lower() in allowed]
        skipped.extend(p for p in members if p.suffix.lower() not in allowed)
        if not images:
            raise DatasetError(f"{root / name}: class folder {name!r} holds no image "
                               f"(extensions {', '.join(sorted(allowed))})")
        files.extend((p, label) for p in images)
    if skipped:
        _warn_skipped(root, skipped)

    if mode is None:
        mode = "RGB" if any(_has_colour(_open(p, Image)) for p, _ in files) else "L"
    arrays = []
    for path, _ in files:
        image = _open(path, Image).convert(mode)
        if hw is not None and image.size != (hw[1], hw[0]):
            image = image.resize((hw[1], hw[0]), Image.Resampling.BILINEAR)
        arrays.append(np.asarray(image, dtype=np.uint8))
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        first = arrays[0].shape[:2]
        other = next((p, a.shape[:2]) for (p, _), a in zip(files, arrays)
                     if a.shape[:2] != first)
        raise DatasetError(f"{root}: images differ in size ({files[0][0]} is {first[0]}x"
                           f"{first[1]}, {other[0]} is {other[1][0]}x{other[1][1]} as HxW); "
                           "pass size=(H, W) to resize them")
    stacked = np.stack(arrays)
    images_nchw = stacked[:, None] if mode == "L" else stacked.transpose(0, 3, 1, 2)
    labels = np.array([label for _, label in files], dtype=np.int64)
    return np.ascontiguousarray(images_nchw), labels, classes
