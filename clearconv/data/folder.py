"""A folder of images, one sub-folder per class (the layout of torchvision's ImageFolder).

::

    root/
      cat/  001.png  002.jpg  more/003.webp ...
      dog/  a.jpeg  b.bmp ...

Class names are the sub-folder names, sorted (``"cat"`` is label 0, ``"dog"`` label 1);
each class folder is searched recursively. The formats read are those of
:data:`clearconv.data.images.FORMATS` (PNG, JPEG, GIF, BMP, TIFF, WebP, PPM/PGM).

Python API::

    from clearconv.data import load_image_folder
    x, y, classes = load_image_folder("photos", size=(32, 32), mode="RGB")
    # x: uint8 (N, 3, 32, 32), y: int64 (N,), classes: ("cat", "dog")

Each file is decoded by :func:`clearconv.data.images.decode_image`, the decoder that
``clearconv predict`` uses too, so a model is trained on the pixels it is later shown:
EXIF rotation applied, transparency composited on white, 16-bit levels reduced to their
high byte, palettes and CMYK to RGB (the rule is in :mod:`clearconv.data.images`).
Then every image gets one channel count and one size:

* ``mode="L"``: one channel, colour by Pillow's ITU-R 601-2 luma
  ``L = R*299/1000 + G*587/1000 + B*114/1000``; ``mode="RGB"``: three, grey repeated.
* ``mode=None`` picks ``"RGB"`` if any decoded image has colour (some pixel with R, G,
  B not all equal), else ``"L"``; the result is the same array as with that mode given.
* Resizing is bilinear (Pillow's, which filters when it shrinks) to ``size = (H, W)``,
  after the channel conversion, as :func:`clearconv.data.images.read_image` does.

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

from ..errors import ImageFileError
from .idx import DatasetError, DatasetNotFoundError

PathLike = Union[str, "os.PathLike[str]"]

_MODES = ("L", "RGB")
#: the most bytes the loaded images may take (N x 3 x H x W with a size given), checked
#: before any file is decoded; raise it to load a larger folder
MAX_FOLDER_BYTES = 2 * 1024 ** 3

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
    """The file extensions of the formats clearconv reads
    (:data:`clearconv.data.images.FORMATS`), lower case with the dot (``".png"``)."""
    Image = _pillow()
    from .images import FORMATS

    Image.init()
    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items()
                     if fmt in FORMATS and fmt in Image.OPEN)


def _read(path: Path, mode: str | None, hw: tuple[int, int] | None) -> tuple[np.ndarray, bool]:
    """One file as uint8 (C, H, W) through the shared decoder, and whether it has colour.

    ``mode`` None keeps the decoder's channels (1 for a grey file, 3 otherwise) and looks
    for colour; with a mode given, colour is not looked for (False).
    """
    _pillow()
    from .images import decode_image, read_image

    try:
        image, _ = decode_image(path)
    except FileNotFoundError as exc:
        raise DatasetNotFoundError(f"{path}: the file went away while the folder was read") \
            from exc
    except ImageFileError as exc:      # its message names the file
        raise DatasetError(str(exc)) from exc
    colour = mode is None and image.mode == "RGB" and _has_colour(np.asarray(image))
    # the decoded image is upright, opaque and 8-bit: only the channels and size change
    return read_image(image, mode, hw)[0], colour


def _has_colour(rgb: np.ndarray) -> bool:
    """True for an (H, W, 3) array with a pixel whose channels differ."""
    return bool((rgb[..., 0] != rgb[..., 1]).any() or (rgb[..., 1] != rgb[..., 2]).any())


def _to_channels(image: np.ndarray, mode: str) -> np.ndarray:
    """A decoded (C, H, W) image with the channels of ``mode``, for ``mode=None`` once the
    dataset's mode is known: grey to RGB copies the grey level (as Pillow's conversion),
    and an RGB image of a dataset without colour has R = G = B, which is its L exactly
    (the luma weights 299 + 587 + 114 sum to 1000)."""
    if mode == "RGB" and image.shape[0] == 1:
        return np.repeat(image, 3, axis=0)
    if mode == "L" and image.shape[0] == 3:
        return image[:1]
    return image


def _walk_files(folder: Path, seen: dict[tuple[int, int], Path],
                skipped: list[Path]) -> list[Path]:
    """All files under ``folder``, sorted, skipping hidden files and folders.

    Symbolic links to folders inside a class folder are not followed (they are added to
    ``skipped``): a link out of the tree, back into it (``ln -s .. a/sub``) or to another
    class would read files twice, under the wrong label, or loop forever. A class folder
    may itself be a link, but no folder is read twice: ``seen`` maps each folder read
    (device, inode) to its path, and a second visit is a DatasetError naming both.
    """
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        here = os.stat(dirpath)
        key = (here.st_dev, here.st_ino)
        if key in seen:
            raise DatasetError(f"{dirpath} is the folder {seen[key]} again (a link between "
                               "class folders?): each image folder must be read once")
        seen[key] = Path(dirpath)
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        skipped.extend(Path(dirpath) / d for d in sorted(links) if not d.startswith("."))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in links)
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
                  f"extension), not in a class folder, or links to folders (never "
                  f"followed): {shown}{more}",
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
            hidden files (``.DS_Store``), files directly in ``root`` and symbolic links
            to folders inside a class folder (never followed: no loop, no file read
            twice or under another label) are skipped too.

    Returns:
        images: ndarray of shape ``(N, C, H, W)`` (NCHW), uint8, C = 1 or 3.
        labels: ndarray of shape ``(N,)``, int64, the index of the class folder.
        classes: tuple of the class names (folder names, sorted), index = label.

    Files come class by class, each class in sorted path order.

    Size budget: with ``size`` given, ``N x 3 x H x W`` bytes must be at most
    :data:`MAX_FOLDER_BYTES`, checked before any file is decoded; each file is bounded
    by the decoder's pixel budget (:func:`clearconv.data.images.decode_image`).

    Raises:
        DatasetNotFoundError: ``root`` is not a folder.
        DatasetError: no class folder, a class folder with no image, a file with an
            image extension that Pillow cannot read, differing sizes with
            ``size=None``, or a bad ``size`` / ``mode``.
    """
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
    seen: dict[tuple[int, int], Path] = {}
    for label, name in enumerate(classes):
        members = _walk_files(root / name, seen, skipped)
        images = [p for p in members if p.suffix.lower() in allowed]
        skipped.extend(p for p in members if p.suffix.lower() not in allowed)
        if not images:
            raise DatasetError(f"{root / name}: class folder {name!r} holds no image "
                               f"(extensions {', '.join(sorted(allowed))})")
        files.extend((p, label) for p in images)
    if skipped:
        _warn_skipped(root, skipped)
    if hw is not None and len(files) * 3 * hw[0] * hw[1] > MAX_FOLDER_BYTES:
        raise DatasetError(f"{root}: {len(files)} images of {hw[0]}x{hw[1]} would take "
                           f"{len(files) * 3 * hw[0] * hw[1]} bytes, more than "
                           f"clearconv.data.folder.MAX_FOLDER_BYTES = {MAX_FOLDER_BYTES}: "
                           "choose a smaller size")

    arrays: list[np.ndarray] = []
    colour = False
    for path, _ in files:
        array, has_colour = _read(path, mode, hw)
        arrays.append(array)
        colour = colour or has_colour
    if mode is None:
        mode = "RGB" if colour else "L"
        arrays = [_to_channels(a, mode) for a in arrays]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        first = arrays[0].shape[1:]
        other = next((p, a.shape[1:]) for (p, _), a in zip(files, arrays)
                     if a.shape[1:] != first)
        raise DatasetError(f"{root}: images differ in size ({files[0][0]} is {first[0]}x"
                           f"{first[1]}, {other[0]} is {other[1][0]}x{other[1][1]} as HxW); "
                           "pass size=(H, W) to resize them")
    labels = np.array([label for _, label in files], dtype=np.int64)
    return np.stack(arrays), labels, classes
