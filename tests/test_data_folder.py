"""Tests of clearconv.data.folder: class folders of generated PNG/JPEG/BMP files."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clearconv.data import (
    DatasetError,
    DatasetNotFoundError,
    SkippedFilesWarning,
    image_extensions,
    load_image_folder,
)


def grey(value: int, size: tuple[int, int] = (6, 4)) -> Image.Image:
    """A uniform greyscale image; ``size`` is Pillow's (W, H)."""
    return Image.new("L", size, value)


def save(image: Image.Image, path: Path, **kwargs: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


def test_classes_are_sorted_folders_and_labels_follow(tmp_path: Path) -> None:
    save(grey(10), tmp_path / "zebra" / "a.png")
    save(grey(20), tmp_path / "apple" / "b.png")
    save(grey(30), tmp_path / "apple" / "a.png")
    save(grey(40), tmp_path / "apple" / "deeper" / "c.png")
    x, y, classes = load_image_folder(tmp_path)
    assert classes == ("apple", "zebra")
    assert x.shape == (4, 1, 4, 6) and x.dtype == np.uint8
    assert y.dtype == np.int64 and y.tolist() == [0, 0, 0, 1]
    # apple/a.png, apple/b.png, apple/deeper/c.png, zebra/a.png
    assert x[:, 0, 0, 0].tolist() == [30, 20, 40, 10]


def test_mixed_modes_and_formats_auto_mode_is_rgb(tmp_path: Path) -> None:
    save(Image.new("RGB", (8, 8), (255, 0, 0)), tmp_path / "a" / "red.png")
    save(Image.new("RGBA", (8, 8), (0, 255, 0, 128)), tmp_path / "a" / "green.png")
    save(grey(100, (8, 8)), tmp_path / "b" / "grey.jpg", quality=95)
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([0, 0, 255] + [0] * 765)
    save(palette, tmp_path / "b" / "blue.gif")
    save(Image.new("CMYK", (8, 8), (0, 0, 0, 0)), tmp_path / "b" / "white.jpg")
    save(Image.new("LA", (8, 8), (50, 255)), tmp_path / "c" / "la.png")
    save(Image.new("1", (8, 8), 1), tmp_path / "c" / "bw.bmp")
    x, _, classes = load_image_folder(tmp_path, size=(4, 4))
    assert classes == ("a", "b", "c") and x.shape == (7, 3, 4, 4)
    pixels = x[:, :, 2, 2].tolist()
    assert pixels[0] == [127, 255, 127]        # a/green.png (alpha 128 on white)
    assert pixels[1] == [255, 0, 0]            # a/red.png
    assert pixels[2] == [0, 0, 255]            # b/blue.gif (palette)
    assert all(abs(v - 100) <= 2 for v in pixels[3])  # b/grey.jpg, grey repeated
    assert all(v >= 250 for v in pixels[4])    # b/white.jpg (CMYK)
    assert pixels[5] == [255, 255, 255]        # c/bw.bmp
    assert pixels[6] == [50, 50, 50]           # c/la.png


def test_grey_content_in_rgb_files_gives_mode_l(tmp_path: Path) -> None:
    save(Image.new("RGB", (5, 5), (70, 70, 70)), tmp_path / "a" / "x.png")
    save(grey(90, (5, 5)), tmp_path / "b" / "y.png")
    x, _, _ = load_image_folder(tmp_path)
    assert x.shape == (2, 1, 5, 5)
    assert x[:, 0, 0, 0].tolist() == [70, 90]


def test_forced_modes(tmp_path: Path) -> None:
    save(Image.new("RGB", (5, 5), (255, 0, 0)), tmp_path / "a" / "x.png")
    x, _, _ = load_image_folder(tmp_path, mode="L")
    assert x.shape == (1, 1, 5, 5) and x[0, 0, 0, 0] == 76  # 255 * 299 / 1000
    save(grey(90, (5, 5)), tmp_path / "a" / "y.png")
    x, _, _ = load_image_folder(tmp_path, mode="RGB")
    assert x.shape == (2, 3, 5, 5) and x[1, :, 0, 0].tolist() == [90, 90, 90]


def test_resize_is_bilinear_to_h_w(tmp_path: Path) -> None:
    gradient = np.tile(np.linspace(0, 255, 40).astype(np.uint8), (20, 1))  # H=20, W=40
    save(Image.fromarray(gradient), tmp_path / "a" / "g.png")
    save(grey(0, (7, 13)), tmp_path / "a" / "h.png")
    x, _, _ = load_image_folder(tmp_path, size=(10, 30))
    assert x.shape == (2, 1, 10, 30)
    expected = np.asarray(Image.fromarray(gradient).resize((30, 10), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(x[0, 0], expected)
    assert np.all(np.diff(x[0, 0, 5].astype(int)) >= 0)


def test_16_bit_greyscale_keeps_high_byte(tmp_path: Path) -> None:
    array = np.array([[0x8042, 255], [65280, 65535]], dtype=np.uint16)
    save(Image.fromarray(array), tmp_path / "a" / "deep.png")
    x, _, _ = load_image_folder(tmp_path)
    assert x.shape == (1, 1, 2, 2) and x[0, 0].tolist() == [[0x80, 0], [255, 255]]


def test_transparency_is_composited_on_white_not_its_hidden_colour(tmp_path: Path) -> None:
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[...] = (200, 0, 0, 0)                   # transparent, hiding red
    rgba[1, 1] = (0, 0, 255, 255)
    rgba[0, 1] = (0, 0, 255, 51)                 # alpha 0.2
    save(Image.fromarray(rgba), tmp_path / "a" / "logo.png")
    palette = Image.new("P", (2, 2), 0)
    palette.putpalette([200, 0, 0, 0, 0, 255] + [0] * 762)
    palette.putpixel((1, 1), 1)
    save(palette, tmp_path / "a" / "logo.gif", transparency=0)
    x, _, _ = load_image_folder(tmp_path)
    assert x.shape == (2, 3, 2, 2)
    faint = (255 * 204 + 127) // 255
    assert x[0].transpose(1, 2, 0).tolist() == [[[255, 255, 255], [255, 255, 255]],
                                                [[255, 255, 255], [0, 0, 255]]]    # .gif
    assert x[1].transpose(1, 2, 0).tolist() == [[[255, 255, 255], [faint, faint, 255]],
                                                [[255, 255, 255], [0, 0, 255]]]    # .png


@pytest.mark.parametrize("orientation, turn", [(6, -1), (8, 1)])
def test_exif_rotation_is_applied(tmp_path: Path, orientation: int, turn: int) -> None:
    a = np.zeros((4, 6), np.uint8)
    a[:, :3] = 255                               # stored: left half white
    img = Image.fromarray(a)
    exif = img.getexif()
    exif[0x0112] = orientation
    save(img, tmp_path / "a" / "phone.png", exif=exif)
    save(Image.fromarray(np.rot90(a, turn)), tmp_path / "b" / "upright.png")
    x, _, _ = load_image_folder(tmp_path)
    assert x.shape == (2, 1, 6, 4)
    np.testing.assert_array_equal(x[0], x[1])


@pytest.mark.parametrize("size", [None, (6, 4)])
def test_auto_mode_gives_the_arrays_of_the_mode_it_picks(tmp_path: Path, size) -> None:
    rng = np.random.default_rng(3)
    grey_rgb = np.repeat(rng.integers(0, 256, (9, 7, 1), dtype=np.uint8), 3, axis=2)
    save(Image.fromarray(grey_rgb), tmp_path / "a" / "grey-rgb.png")
    save(Image.fromarray(rng.integers(0, 256, (9, 7), dtype=np.uint8)), tmp_path / "b" / "l.png")
    auto, _, _ = load_image_folder(tmp_path, size=size)
    assert auto.shape[1] == 1                    # no colour anywhere: one channel
    np.testing.assert_array_equal(auto, load_image_folder(tmp_path, size=size, mode="L")[0])
    colour = rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)
    save(Image.fromarray(colour), tmp_path / "c" / "colour.png")
    auto, _, _ = load_image_folder(tmp_path, size=size)
    assert auto.shape[:2] == (3, 3)              # one colour image: three channels for all
    np.testing.assert_array_equal(auto, load_image_folder(tmp_path, size=size, mode="RGB")[0])


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_an_image_over_the_pixel_budget_is_refused_naming_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save(grey(1, (8, 8)), tmp_path / "a" / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 63)
    with pytest.raises(DatasetError, match=r"big.png.*8x8 pixels.*MAX_IMAGE_PIXELS = 63"):
        load_image_folder(tmp_path)


def test_non_images_are_skipped_with_one_warning(tmp_path: Path) -> None:
    save(grey(1), tmp_path / "a" / "x.png")
    (tmp_path / "a" / "notes.txt").write_text("hello")
    (tmp_path / "a" / ".DS_Store").write_bytes(b"\x00")
    (tmp_path / "README.md").write_text("top level")
    (tmp_path / ".hidden").mkdir()
    with pytest.warns(SkippedFilesWarning) as record:
        x, _, classes = load_image_folder(tmp_path)
    assert len(record) == 1
    message = str(record[0].message)
    assert "notes.txt" in message and "README.md" in message and ".DS_Store" not in message
    assert classes == ("a",) and x.shape[0] == 1


def test_no_warning_when_everything_is_an_image(tmp_path: Path) -> None:
    save(grey(1), tmp_path / "a" / "x.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_image_folder(tmp_path)


def test_extensions_filter(tmp_path: Path) -> None:
    save(grey(1), tmp_path / "a" / "x.png")
    save(grey(2), tmp_path / "a" / "y.BMP")
    with pytest.warns(SkippedFilesWarning, match="x.png"):
        x, _, _ = load_image_folder(tmp_path, extensions=["bmp"])
    assert x[:, 0, 0, 0].tolist() == [2]


def test_empty_class_folder_is_an_error(tmp_path: Path) -> None:
    save(grey(1), tmp_path / "a" / "x.png")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "readme.txt").write_text("no images here")
    with pytest.raises(DatasetError, match="class folder 'b' holds no image"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_image_folder(tmp_path)


def test_no_class_folders_is_an_error(tmp_path: Path) -> None:
    save(grey(1), tmp_path / "x.png")
    with pytest.raises(DatasetError, match="no class folders"):
        load_image_folder(tmp_path)


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="no such folder"):
        load_image_folder(tmp_path / "nope")


def test_corrupt_image_names_the_file(tmp_path: Path) -> None:
    save(grey(1), tmp_path / "a" / "x.png")
    (tmp_path / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(DatasetError, match="cannot .*broken.jpg"):
        load_image_folder(tmp_path)


def test_differing_sizes_need_size(tmp_path: Path) -> None:
    save(grey(1, (4, 4)), tmp_path / "a" / "x.png")
    save(grey(1, (5, 4)), tmp_path / "a" / "y.png")
    with pytest.raises(DatasetError, match=r"differ in size .* pass size=\(H, W\)"):
        load_image_folder(tmp_path)
    assert load_image_folder(tmp_path, size=(3, 3))[0].shape == (2, 1, 3, 3)


@pytest.mark.parametrize("size", [(0, 3), (3,), "ab", (2.5, 3), (3, 3, 3)])
def test_bad_size(tmp_path: Path, size: object) -> None:
    save(grey(1), tmp_path / "a" / "x.png")
    with pytest.raises(DatasetError, match="size must be"):
        load_image_folder(tmp_path, size=size)  # type: ignore[arg-type]


def test_bad_mode(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="mode must be"):
        load_image_folder(tmp_path, mode="CMYK")


def test_image_extensions_cover_the_common_formats() -> None:
    assert {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".webp"} <= image_extensions()
