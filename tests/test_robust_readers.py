"""Issue 12, image files and folders: crafted inputs stay within a bound.

Each crafted input is generated here, small; each test names its finding.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clearconv.data import load_image_folder
from clearconv.data.images import fit_to_model, read_image
from clearconv.errors import ClearConvError, ImageFileError


def _folder(root: Path, per_class: int = 3) -> Path:
    for k, name in enumerate(("a", "b")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.new("L", (4, 4), 40 * k + i).save(root / name / f"{i}.png")
    return root


def test_folder_symlink_loops_are_not_followed(tmp_path: Path) -> None:
    # issue 12: two `ln -s .. a/sub` loops hung training (os.walk(followlinks=True))
    root = _folder(tmp_path / "root")
    os.symlink("..", root / "a" / "sub")
    os.symlink("..", root / "b" / "sub")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x, y, classes = load_image_folder(root)
    assert classes == ("a", "b") and y.tolist() == [0, 0, 0, 1, 1, 1]
    assert any("links to folders" in str(w.message) for w in caught)


def test_a_link_to_another_class_does_not_relabel_its_images(tmp_path: Path) -> None:
    # issue 12: one loop relabelled class b's images as class a
    root = _folder(tmp_path / "root")
    os.symlink(os.path.join("..", "b"), root / "a" / "more")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x, y, _ = load_image_folder(root)
    assert y.tolist() == [0, 0, 0, 1, 1, 1]
    assert sorted(x[:3, 0, 0, 0].tolist()) == [0, 1, 2]


def test_two_class_folders_that_are_one_folder_are_refused(tmp_path: Path) -> None:
    root = _folder(tmp_path / "root")
    os.symlink("a", root / "c")
    with pytest.raises(ClearConvError, match="each image folder must be read once"):
        load_image_folder(root)


def test_a_long_strip_is_resized_before_it_is_padded(tmp_path: Path) -> None:
    # issue 12: predict padded a 60000x1 PNG to 60000x60000 (3.6 GB, 29 s) before resizing
    Image.new("L", (60000, 1), 255).save(tmp_path / "strip.png")
    assert (tmp_path / "strip.png").stat().st_size < 1000
    image, _ = read_image(tmp_path / "strip.png")
    out, steps = fit_to_model(image, 1, (28, 28))
    assert out.shape == (1, 28, 28)
    assert "resized 60000x1 -> 28x1 (WxH, bilinear, aspect ratio kept)" in steps
    assert any(s.startswith("padded 28x1 -> 28x28") for s in steps)


def test_the_canvas_is_bounded_too() -> None:
    with pytest.raises(ImageFileError, match="MAX_IMAGE_PIXELS"):
        fit_to_model(np.zeros((1, 4, 4), np.uint8), 1, (100000, 100000))


def test_eps_renamed_png_never_reaches_the_eps_plugin(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # issue 12: an EPS file renamed .png reached Pillow's EPS plugin (Ghostscript)
    from PIL import EpsImagePlugin

    opened: list[bool] = []
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open",
                        lambda self: opened.append(True) or (_ for _ in ()).throw(OSError))
    path = tmp_path / "photo.png"
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(ImageFileError, match="not one of the formats clearconv reads"):
        read_image(path)
    assert opened == []


def test_fifo_as_image_is_refused_not_waited_on(tmp_path: Path) -> None:
    # issue 12: a FIFO given as an image hung at open
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    os.mkfifo(tmp_path / "x.png")
    with pytest.raises(ImageFileError, match="a FIFO"):
        read_image(tmp_path / "x.png")


# --------------------------------------------------------------- IDX and to_float

def _idx(path: Path, dims: tuple[int, ...], data: bytes = b"", code: int = 0x08,
         ndim: int | None = None, compress: bool = False) -> Path:
    import gzip
    import struct

    raw = bytes([0, 0, code, len(dims) if ndim is None else ndim])
    raw += struct.pack(f">{len(dims)}I", *dims) + data
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def test_to_float_never_makes_a_float64_copy_of_the_whole_array() -> None:
    # issue 12: to_float went through float64: 1.37 M zero images (a 1 MB gzip) -> 8 GiB
    import tracemalloc

    from clearconv.data import to_float

    x = np.zeros((5000, 1, 28, 28), np.uint8)
    tracemalloc.start()
    try:
        out = to_float(x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.dtype == np.float32 and out.shape == x.shape
    assert peak < out.nbytes + (10 << 20)          # the result and one 8 MiB chunk
    y = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(to_float(y), (y.astype(np.float64) / 255).astype(np.float32))
    s = to_float(y, "standardize")
    expect = ((y - y.mean()) / y.std()).astype(np.float32)
    np.testing.assert_allclose(s, expect, rtol=1e-6)


def test_idx_images_too_large_for_a_model_are_refused(tmp_path: Path) -> None:
    # issue 12: a 16 KB file of one 4096x4096 image made the model build ask 64 GiB
    from clearconv.data import DatasetError, load_mnist

    _idx(tmp_path / "t10k-images-idx3-ubyte.gz", (1, 4096, 4096), bytes(4096 * 4096),
         compress=True)
    _idx(tmp_path / "t10k-labels-idx1-ubyte.gz", (1,), b"\0", compress=True)
    assert (tmp_path / "t10k-images-idx3-ubyte.gz").stat().st_size < 20_000
    with pytest.raises(DatasetError, match="4096x4096 pixels are more than IDX_MAX_IMAGE"):
        load_mnist(tmp_path, "test")


def test_recipe_model_for_huge_inputs_is_refused_before_allocating() -> None:
    # issue 12: the model build asked 64 GiB (and --image-size 100000 100000 more)
    from clearconv.train.recipes import recipe

    with pytest.raises(ClearConvError, match="is too large .MAX_RECIPE_WEIGHTS"):
        recipe("folder").build_model((3, 4096, 4096), 10, seed=0)


@pytest.mark.parametrize("dims, ndim, message", [
    ((1,) * 255, 255, "with 255 dimensions"),
    ((0, 2**31, 2**30), None, "empty array whose other dims announce"),
])
def test_idx_headers_numpy_cannot_hold_are_clear_errors(tmp_path: Path, dims: tuple[int, ...],
                                                        ndim: int | None, message: str) -> None:
    # issue 12: ndim=255 or dims (0, 2^31, 2^30) gave raw NumPy errors
    from clearconv.data import DatasetError, read_idx

    path = _idx(tmp_path / "x.idx", dims, ndim=ndim)
    with pytest.raises(DatasetError, match=message):
        read_idx(path)


# --------------------------------------------------------------- filter

@pytest.mark.parametrize("mode", ["L", "RGBA"])
def test_filter_refuses_a_large_image_before_decoding(tmp_path: Path, mode: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    # issue 12: a 79 KB 9000x9000 PNG reached 2.7 GB; its RGBA twin a raw MemoryError
    from clearconv.cli import main

    Image.new(mode, (3000, 3000)).save(tmp_path / "big.png")
    code = main(["filter", str(tmp_path / "big.png"), "--kernel", "sobel",
                 "--out", str(tmp_path / "o.png")])
    err = capsys.readouterr().err
    assert code == 2 and "3000x3000 pixels is more than the 4194304" in err
    assert err.count("\n") == 1 and not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("option, message", [
    (["--kernel", "box", "--size", "100001"], "more than MAX_KERNEL_SIZE = 255"),
    (["--kernel", "gaussian", "--sigma", "100000"], "more than MAX_KERNEL_SIZE = 255"),
    (["--kernel", "sobel-x", "--padding", "100000"], "MAX_FILTER_PIXELS"),
])
def test_filter_size_and_padding_are_bounded(tmp_path: Path, option: list[str], message: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    # issue 12: --size 100001 and --padding 100000 were raw MemoryErrors
    from clearconv.cli import main

    Image.new("L", (8, 8), 100).save(tmp_path / "s.png")
    code = main(["filter", str(tmp_path / "s.png"), *option, "--out", str(tmp_path / "o.png")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
