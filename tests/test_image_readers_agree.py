"""Every reader of image files sees the same pixels: ``predict`` (read_image, then
fit_to_model, as ``clearconv.cli.cmd_predict`` calls them), the folder dataset of
``train --dataset folder`` (load_image_folder) and explain's ``load_picture``.

A model trained on a folder must be shown, at predict time, the picture it was trained
on. Each file here is one that the readers once decoded differently: a transparent pixel
hiding a colour, 16-bit grey levels whose high byte and nearest 8-bit level differ, a
phone photo with an EXIF rotation, a palette with a transparent entry, CMYK.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clearconv.data import load_image_folder
from clearconv.data.images import fit_to_model, read_image
from clearconv.explain._inputs import load_picture


def _rgba(path: Path) -> None:
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[...] = (10, 20, 30, 255)
    rgba[0, 0] = (200, 0, 0, 0)            # fully transparent, hiding red
    rgba[1, 2] = (0, 0, 255, 128)          # half transparent blue
    rgba[3, 5] = (0, 255, 0, 1)
    Image.fromarray(rgba).save(path)


def _deep(path: Path) -> None:
    # 255 and 65280: the high byte (0, 255) and round(v / 257) (1, 254) differ
    a = np.array([[0, 255, 65280, 32834, 65535], [128, 383, 1000, 40000, 7]], np.uint16)
    Image.fromarray(a).save(path)


def _phone(path: Path) -> None:
    a = np.zeros((8, 16, 3), np.uint8)
    a[:, :8] = (250, 250, 250)
    a[:4, 8:] = (30, 60, 200)
    img = Image.fromarray(a)
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(path, exif=exif, quality=95)


def _palette(path: Path) -> None:
    p = Image.new("P", (5, 3), 1)
    p.putpalette([200, 0, 0, 0, 120, 250, 40, 40, 40] + [0] * 759)
    p.putpixel((0, 0), 0)
    p.putpixel((4, 2), 2)
    p.save(path, transparency=0)


def _cmyk(path: Path) -> None:
    c = Image.new("CMYK", (4, 4), (100, 30, 200, 50))
    c.putpixel((1, 1), (0, 255, 255, 0))
    c.save(path)


def _la(path: Path) -> None:
    la = np.zeros((3, 3, 2), np.uint8)
    la[..., 0] = 90
    la[..., 1] = [[0, 255, 128], [255, 255, 255], [7, 255, 200]]
    Image.fromarray(la, mode="LA").save(path)


FILES: dict[str, Callable[[Path], None]] = {
    "rgba.png": _rgba, "deep.png": _deep, "phone.jpg": _phone, "palette.png": _palette,
    "cmyk.tif": _cmyk, "la.png": _la,
}


def _write(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """The file alone in a one-class folder: (root, path)."""
    path = tmp_path / "root" / "only" / name
    path.parent.mkdir(parents=True)
    FILES[name](path)
    return tmp_path / "root", path


@pytest.mark.parametrize("name", sorted(FILES))
@pytest.mark.parametrize("channels", [1, 3])
def test_predict_folder_and_explain_see_the_same_pixels(tmp_path, name, channels):
    root, path = _write(tmp_path, name)
    mode = "L" if channels == 1 else "RGB"
    trained_on = load_image_folder(root, mode=mode)[0][0]
    h, w = trained_on.shape[1:]
    image, _ = read_image(path)                         # as cmd_predict does
    predicted_on, _ = fit_to_model(image, channels, (h, w), invert=False)
    np.testing.assert_array_equal(predicted_on, trained_on)
    np.testing.assert_array_equal(load_picture(path, mode=mode).pixels, trained_on)


@pytest.mark.parametrize("name", sorted(FILES))
def test_the_folder_keeps_the_channels_the_decoder_gives(tmp_path, name):
    root, path = _write(tmp_path, name)
    np.testing.assert_array_equal(load_image_folder(root)[0][0], read_image(path)[0])
