"""Photos of handwritten digits prepared as MNIST prepared its digits (issue 15, item 1):
``clearconv.data.images.prepare_digit`` on photos from ``tools/make_digit_photos.py``
(pen, pencil, marker on paper with a table around it, chalk on a board), and
``clearconv predict --show-input``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clearconv.cli import main
from clearconv.data import load_digits
from clearconv.data.images import prepare_digit, read_image
from clearconv.errors import ClearConvError

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("make_digit_photos",
                                                  ROOT / "tools" / "make_digit_photos.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _digit(i: int) -> np.ndarray:
    """An embedded 8x8 digit as a 28x28 MNIST-like picture (light on black, 20x20 box)."""
    x, y = load_digits("test")
    small = Image.fromarray((x[i, 0] * 16).clip(0, 255).astype(np.uint8))
    out = np.zeros((28, 28), np.uint8)
    out[4:24, 4:24] = np.asarray(small.resize((20, 20), Image.Resampling.BICUBIC))
    return out


@pytest.fixture(scope="module")
def photos():
    gen = _generator()
    rng = np.random.default_rng(3)
    made = []
    while len({style for style, _ in made}) < 3 or len(made) < 4:
        photo, style = gen.make_photo(_digit(len(made)), rng)
        made.append((style, np.asarray(photo).transpose(2, 0, 1).copy()))
    return made


def test_a_photo_becomes_an_mnist_style_digit(photos):
    for style, photo in photos:
        x, steps = prepare_digit(photo)
        assert x.shape == (1, 28, 28) and x.dtype == np.uint8, style
        a = x[0].astype(float)
        corners = np.concatenate([a[:3, :3].ravel(), a[:3, -3:].ravel(), a[-3:, :3].ravel(),
                                  a[-3:, -3:].ravel()])
        assert corners.max() == 0 and (a == 0).mean() > 0.5, style   # paper is 0
        assert a.max() >= 250, style                          # the stroke's core 255
        rows, cols = np.nonzero(a > 40)
        assert np.ptp(rows) <= 21 and np.ptp(cols) <= 21, style   # the 20x20 box
        cy = (a.sum(1) * np.arange(28)).sum() / a.sum()
        cx = (a.sum(0) * np.arange(28)).sum() / a.sum()
        assert abs(cy - 13.5) <= 1 and abs(cx - 13.5) <= 1, style   # centre of mass
        assert any("ink" in s for s in steps) and steps[-1].startswith("fitted in"), steps


def test_light_ink_on_a_dark_board_is_found_either_way(photos):
    chalk = [p for style, p in photos if style == "chalk"]
    pen = [p for style, p in photos if style != "chalk"]
    if chalk:
        assert any("light ink" in s for s in prepare_digit(chalk[0])[1])
        np.testing.assert_array_equal(prepare_digit(chalk[0])[0],
                                      prepare_digit(chalk[0], ink="light")[0])
    assert any("dark ink" in s for s in prepare_digit(pen[0])[1])


def test_an_empty_page_is_refused():
    page = np.full((3, 400, 300), 220, np.uint8)
    with pytest.raises(ClearConvError, match="no ink"):
        prepare_digit(page)
    with pytest.raises(ClearConvError, match="ink must be"):
        prepare_digit(page, ink="blue")


def test_predict_prepares_photos_for_digit_models_and_shows_what_the_model_sees(
        photos, tmp_path, capsys):
    from clearconv.train import recipe

    model = recipe("mnist").build_model((1, 28, 28), 10, seed=0)
    model.classes = [str(i) for i in range(10)]
    model.trained_on = "mnist"
    path = tmp_path / "mnist.npz"
    model.save(str(path))
    files = []
    for i, (_, photo) in enumerate(photos[:2]):
        files.append(tmp_path / f"p{i}.jpg")
        Image.fromarray(photo.transpose(1, 2, 0)).save(files[-1], quality=90)
    shown = tmp_path / "seen.png"
    assert main(["predict", str(path), *map(str, files), "--show-input", str(shown)]) == 0
    out = capsys.readouterr().out
    assert "paper estimated by" in out and "centre of mass at the centre" in out
    for i, f in enumerate(files):
        written = tmp_path / f"seen-{i + 1}.png"
        assert f"what the model sees (28x28): {written}" in out
        seen = np.asarray(Image.open(written))
        image, _ = read_image(f)
        np.testing.assert_array_equal(seen, prepare_digit(image)[0][0])


def test_a_folder_model_gets_its_photos_as_its_training_images_were_read(tmp_path, capsys):
    """No inversion and no padding guessed: the folder loader's own conversion."""
    from clearconv.data.images import read_image
    from clearconv.layers import Conv2D, Dense, Flatten, ReLU
    from clearconv.train import Sequential

    model = Sequential(Conv2D(1, 2, 3, rng=0), ReLU(), Flatten(), Dense(2 * 14 * 14, 2, rng=0),
                       input_shape=(1, 16, 16))
    model.classes, model.trained_on = ["cat", "dog"], "folder"
    path = tmp_path / "folder.npz"
    model.save(str(path))
    photo = tmp_path / "wide.png"
    Image.fromarray(np.tile(np.arange(60, dtype=np.uint8) * 4, (30, 1))).save(photo)
    shown = tmp_path / "seen.png"
    assert main(["predict", str(path), str(photo), "--show-input", str(shown)]) == 0
    out = capsys.readouterr().out
    assert "read as the training folder's images were" in out and "inverted" not in out
    expected, _ = read_image(photo, mode="L", size=(16, 16))
    np.testing.assert_array_equal(np.asarray(Image.open(shown)), expected[0])
