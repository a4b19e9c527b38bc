"""Image files in and out (MATH.md §2): every Pillow mode to uint8 (C, H, W), the
mappings to 0..255, atomic saving, tensors, and fitting a photo to a model."""

from __future__ import annotations

import os
import stat
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from clearconv.data.images import (
    border_pixels,
    decode_image,
    fit_to_model,
    image_to_tensor,
    load_image,
    read_image,
    save_image,
    to_image,
    to_uint8,
)
from clearconv.errors import ClearConvError, ShapeError

RNG = np.random.default_rng(7)


def _rgb(h: int = 12, w: int = 16) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _smooth_rgb(h: int = 32, w: int = 48) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 255 // (h + w - 2)],
                    axis=-1).astype(np.uint8)


# ---------------------------------------------------------------------- reading modes


def test_rgb_png_reads_as_3_channels_unchanged(tmp_path):
    a = _rgb()
    Image.fromarray(a).save(tmp_path / "x.png")
    out, steps = read_image(tmp_path / "x.png")
    assert out.dtype == np.uint8 and out.shape == (3, 12, 16)
    np.testing.assert_array_equal(out, a.transpose(2, 0, 1))
    assert steps == []


def test_grayscale_png_reads_as_1_channel(tmp_path):
    a = RNG.integers(0, 256, (9, 7), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "g.png")
    out, steps = read_image(str(tmp_path / "g.png"))
    np.testing.assert_array_equal(out, a[None])
    assert steps == []


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = [[0, 255, 128], [64, 255, 0]]
    Image.fromarray(rgba).save(tmp_path / "a.png")
    out, steps = read_image(tmp_path / "a.png")
    assert out.shape == (3, 2, 3)
    alpha = rgba[..., 3] / 255.0
    np.testing.assert_array_equal(out[0], np.rint(200 * alpha + 255 * (1 - alpha)))
    np.testing.assert_array_equal(out[1], np.rint(255 * (1 - alpha)))
    assert steps == ["RGBA -> RGB (alpha composited on white)"]


def test_la_is_composited_on_white_and_stays_gray(tmp_path):
    Image.new("LA", (5, 4), (10, 128)).save(tmp_path / "la.png")
    out, steps = read_image(tmp_path / "la.png")
    assert out.shape == (1, 4, 5)
    assert (out == round(10 * 128 / 255 + 255 * 127 / 255)).all()
    assert steps == ["LA -> grayscale (alpha composited on white)"]


def test_palette_images(tmp_path):
    colour = Image.fromarray(_rgb()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    colour.save(tmp_path / "p.png")
    out, steps = read_image(tmp_path / "p.png")
    np.testing.assert_array_equal(out, np.asarray(colour.convert("RGB")).transpose(2, 0, 1))
    assert steps == ["P -> RGB"]
    gray = Image.fromarray(RNG.integers(0, 256, (6, 6), dtype=np.uint8)).convert("P")
    gray.putpalette([v for i in range(256) for v in (i, i, i)])
    gray.save(tmp_path / "pg.gif")
    out, steps = read_image(tmp_path / "pg.gif")
    assert out.shape == (1, 6, 6) and steps == ["P -> grayscale (grey palette)"]


def test_palette_with_a_transparent_index(tmp_path):
    p = Image.new("P", (4, 4), 1)
    p.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    p.putpixel((0, 0), 0)
    p.save(tmp_path / "t.png", transparency=0)
    out, steps = read_image(tmp_path / "t.png")
    assert out[:, 0, 0].tolist() == [255, 255, 255]          # transparent -> white
    assert out[:, 1, 1].tolist() == [255, 0, 0]
    assert steps == ["P -> RGB (alpha composited on white)"]


def test_a_transparent_pixel_is_white_whatever_colour_it_hides(tmp_path):
    rgba = np.array([[[200, 0, 0, 0], [0, 0, 0, 0], [13, 200, 7, 0]]], np.uint8)
    Image.fromarray(rgba).save(tmp_path / "hidden.png")
    out, _ = read_image(tmp_path / "hidden.png")
    assert (out == 255).all()


def test_premultiplied_and_palette_alpha_modes_are_composited_on_white():
    # RGBa stores c * a; Pillow un-premultiplies it, then the same rule applies
    out, steps = read_image(Image.new("RGBA", (2, 1), (200, 100, 0, 128)).convert("RGBa"))
    assert out[:, 0, 0].tolist() == [(200 * 128 + 255 * 127 + 127) // 255,
                                      (100 * 128 + 255 * 127 + 127) // 255, 127]
    assert steps == ["RGBa -> RGB (alpha composited on white)"]
    pa = Image.new("PA", (2, 1))
    pa.putpalette([0, 0, 0, 10, 10, 10] + [0] * 762)
    pa.putpixel((0, 0), (1, 255))
    pa.putpixel((1, 0), (1, 0))
    out, steps = read_image(pa)
    assert out.tolist() == [[[10, 255]]]
    assert steps == ["PA -> grayscale (alpha composited on white)"]


def test_a_png_transparent_colour_is_white(tmp_path):
    rgb = np.array([[[1, 2, 3], [4, 5, 6]]], np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png", transparency=(1, 2, 3))
    out, steps = read_image(tmp_path / "c.png")
    assert out[:, 0].T.tolist() == [[255, 255, 255], [4, 5, 6]]
    assert steps == ["RGB -> RGB (alpha composited on white)"]
    Image.fromarray(np.array([[9, 50]], np.uint8)).save(tmp_path / "g.png", transparency=9)
    out, steps = read_image(tmp_path / "g.png")
    assert out.tolist() == [[[255, 50]]]
    assert steps == ["L -> grayscale (alpha composited on white)"]


def test_palette_with_partly_transparent_entries(tmp_path):
    p = Image.new("P", (3, 1), 0)
    p.putpalette([255, 0, 0, 0, 0, 255, 0, 128, 0] + [0] * 759)
    p.putpixel((1, 0), 1)
    p.putpixel((2, 0), 2)
    p.save(tmp_path / "p.png", transparency=bytes([255, 64, 0]))   # alpha per entry
    out, steps = read_image(tmp_path / "p.png")
    blue = [(255 * 191 + 127) // 255, (255 * 191 + 127) // 255,
            (255 * 64 + 255 * 191 + 127) // 255]
    assert out[:, 0].T.tolist() == [[255, 0, 0], blue, [255, 255, 255]]
    assert steps == ["P -> RGB (alpha composited on white)"]


def _png16(path, samples: np.ndarray, colour_type: int) -> None:
    """Write a 16-bit PNG by hand (Pillow writes 16-bit grey only): ``samples`` (H, W, C)
    of uint16, colour type 0 grey, 2 RGB, 4 grey + alpha, 6 RGBA (PNG spec, 11.2.2)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    h, w = samples.shape[:2]
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in samples)
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


#: 16-bit levels and their high byte; round(v / 257) would give 1 for 255 and 254 for 65280
LEVELS_16 = np.array([[0, 255, 256, 32767], [32768, 32834, 65280, 65535]], np.uint16)
HIGH_BYTE = np.array([[0, 0, 1, 127], [128, 128, 255, 255]], np.uint8)


def test_16_bit_grey_png_keeps_the_high_byte(tmp_path):
    img = Image.fromarray(LEVELS_16)
    assert img.mode == "I;16"
    img.save(tmp_path / "d.png")
    out, steps = read_image(tmp_path / "d.png")
    np.testing.assert_array_equal(out, HIGH_BYTE[None])
    assert steps == ["I;16 (16-bit) -> 8-bit grayscale (high byte: value >> 8)"]


def test_16_bit_big_endian_tiff_and_pgm_keep_the_high_byte(tmp_path):
    big = Image.fromarray(LEVELS_16.astype(">u2"))
    assert big.mode == "I;16B"
    out, _ = read_image(big)
    np.testing.assert_array_equal(out, HIGH_BYTE[None])
    big.save(tmp_path / "b.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "b.tif")[0], HIGH_BYTE[None])
    h, w = LEVELS_16.shape
    (tmp_path / "d.pgm").write_bytes(f"P5\n{w} {h}\n65535\n".encode()
                                     + LEVELS_16.astype(">u2").tobytes())
    assert Image.open(tmp_path / "d.pgm").mode == "I"
    out, steps = read_image(tmp_path / "d.pgm")
    np.testing.assert_array_equal(out, HIGH_BYTE[None])
    assert steps == ["I (16-bit) -> 8-bit grayscale (high byte: value >> 8)"]


def test_16_bit_colour_and_grey_alpha_pngs_get_the_same_rule(tmp_path):
    rgb = np.stack([LEVELS_16, LEVELS_16[::-1], 65535 - LEVELS_16], axis=-1)
    _png16(tmp_path / "rgb.png", rgb, 2)
    out, _ = read_image(tmp_path / "rgb.png")
    np.testing.assert_array_equal(out, (rgb >> 8).astype(np.uint8).transpose(2, 0, 1))
    opaque = np.full(LEVELS_16.shape + (1,), 65535, np.uint16)
    _png16(tmp_path / "rgba.png", np.concatenate([rgb, opaque], axis=-1), 6)
    out, _ = read_image(tmp_path / "rgba.png")
    np.testing.assert_array_equal(out, (rgb >> 8).astype(np.uint8).transpose(2, 0, 1))
    _png16(tmp_path / "la.png", np.stack([LEVELS_16, opaque[..., 0]], axis=-1), 4)
    out, _ = read_image(tmp_path / "la.png")         # Pillow opens it as RGBA: 3 equal planes
    np.testing.assert_array_equal(out, np.stack([HIGH_BYTE] * 3))


def test_16_bit_transparent_level_is_white(tmp_path):
    Image.fromarray(LEVELS_16).save(tmp_path / "t.png", transparency=32834)
    out, steps = read_image(tmp_path / "t.png")
    expected = HIGH_BYTE.copy()
    expected[1, 1] = 255
    np.testing.assert_array_equal(out, expected[None])
    assert steps[-1] == "transparent level 32834 -> white"


def test_32_bit_and_float_grayscale(tmp_path):
    wide = np.array([[-5, 0], [10, 95]], dtype=np.int32)
    Image.fromarray(wide).save(tmp_path / "i.tif")
    out, steps = read_image(tmp_path / "i.tif")
    np.testing.assert_array_equal(out[0], [[0, 13], [38, 255]])         # rescaled -5..95
    assert steps == ["I -> 8-bit grayscale (rescaled -5..95 -> 0..255)"]
    unit = np.array([[0.0, 0.5], [0.25, 1.0]], dtype=np.float32)
    out, steps = read_image(Image.fromarray(unit))
    np.testing.assert_array_equal(out[0], [[0, 128], [64, 255]])
    assert steps == ["F -> 8-bit grayscale (values in [0, 1] times 255)"]
    with pytest.raises(ClearConvError, match="NaN"):
        read_image(Image.fromarray(np.array([[np.nan, 1.0]], np.float32)))


def test_bilevel(tmp_path):
    bits = Image.new("1", (3, 2))
    bits.putpixel((1, 1), 1)
    bits.save(tmp_path / "b.png")
    out, steps = read_image(tmp_path / "b.png")
    np.testing.assert_array_equal(out[0], [[0, 0, 0], [0, 255, 0]])
    assert steps == ["1-bit -> grayscale (0/255)"]


#: CMYK colours and their RGB: R = round((255 - C)(255 - K) / 255), G from M, B from Y
CMYK_TO_RGB = {(0, 255, 255, 0): (255, 0, 0), (100, 30, 200, 50): (125, 181, 44),
               (0, 0, 0, 0): (255, 255, 255), (0, 0, 0, 255): (0, 0, 0),
               (255, 0, 64, 10): (0, 245, 184), (37, 201, 90, 77): (152, 38, 115)}


@pytest.mark.parametrize("ext", ["tif", "jpg"])
def test_cmyk_tiff_and_jpeg_to_rgb(tmp_path, ext):
    for (c, m, y, k), rgb in CMYK_TO_RGB.items():       # the table is the formula
        assert rgb == tuple(round((255 - v) * (255 - k) / 255) for v in (c, m, y))
    for i, (cmyk, rgb) in enumerate(CMYK_TO_RGB.items()):
        Image.new("CMYK", (16, 8), cmyk).save(tmp_path / f"{i}.{ext}")   # flat: JPEG exact
        out, steps = read_image(tmp_path / f"{i}.{ext}")
        assert out.shape == (3, 8, 16) and steps == ["CMYK -> RGB"]
        assert (out == np.array(rgb, np.uint8)[:, None, None]).all(), (cmyk, out[:, 0, 0])


@pytest.mark.parametrize("pil_mode", ["L", "RGB", "RGBA", "P", "I;16", "LA", "CMYK", "1",
                                      "I", "F", "YCbCr"])
@pytest.mark.parametrize("mode, channels", [(None, None), ("L", 1), ("RGB", 3)])
def test_every_mode_gives_uint8_of_the_requested_channels(tmp_path, pil_mode, mode, channels):
    base = Image.fromarray(_rgb(10, 14))
    img = base.convert(pil_mode) if pil_mode != "I;16" else Image.fromarray(
        RNG.integers(0, 65536, (10, 14), dtype=np.uint16))
    out = load_image(img, mode=mode, size=(6, 5))
    expected = channels or (3 if pil_mode in ("RGB", "RGBA", "P", "CMYK", "YCbCr") else 1)
    assert out.dtype == np.uint8 and out.shape == (expected, 6, 5)
    assert out.flags.writeable and out.flags.c_contiguous


def test_mode_conversions_are_stated(tmp_path):
    a = _rgb()
    out, steps = read_image(Image.fromarray(a), mode="L")
    np.testing.assert_array_equal(out[0], np.asarray(Image.fromarray(a).convert("L")))
    assert steps == ["RGB -> grayscale (ITU-R 601-2 luma)"]
    g = RNG.integers(0, 256, (4, 5), dtype=np.uint8)
    out, steps = read_image(Image.fromarray(g), mode="RGB")
    np.testing.assert_array_equal(out, np.stack([g] * 3))
    assert steps == ["grayscale -> RGB (grey copied to 3 channels)"]


def test_resize_is_stated_width_by_height():
    out, steps = read_image(Image.fromarray(_rgb(427, 640)), size=(28, 30))
    assert out.shape == (3, 28, 30)
    assert steps == ["resized 640x427 -> 30x28 (WxH, bilinear)"]
    assert read_image(Image.fromarray(_rgb(28, 30)), size=(28, 30))[1] == []


#: what a viewer shows for each EXIF orientation, from the pixels as stored (EXIF 2.3,
#: tag 0x0112: 6 is "rotate 90 degrees clockwise to view", 8 counter-clockwise)
UPRIGHT = {
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1), 8: lambda a: np.rot90(a, 1),
}


def _with_orientation(img: Image.Image, orientation: int) -> Image.Exif:
    exif = img.getexif()
    exif[0x0112] = orientation
    return exif


@pytest.mark.parametrize("orientation", sorted(UPRIGHT))
def test_exif_orientation_is_applied_exactly(tmp_path, orientation):
    a = np.arange(3 * 5 * 3, dtype=np.uint8).reshape(3, 5, 3) * 5   # no two pixels alike
    img = Image.fromarray(a)
    img.save(tmp_path / "o.png", exif=_with_orientation(img, orientation))
    out, steps = read_image(tmp_path / "o.png")
    np.testing.assert_array_equal(out, UPRIGHT[orientation](a).transpose(2, 0, 1))
    assert steps == [f"rotated/flipped upright (EXIF orientation {orientation})"]


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_rotation_of_a_phone_jpeg_is_applied_once(tmp_path, orientation):
    a = np.zeros((16, 24, 3), np.uint8)
    a[:, :8] = 255                                   # left third white as stored
    a[:8, 16:] = (0, 0, 200)
    img = Image.fromarray(a)
    img.save(tmp_path / "phone.jpg", exif=_with_orientation(img, orientation), quality=90)
    with Image.open(tmp_path / "phone.jpg") as raw:          # the pixels as stored
        stored = np.asarray(raw.convert("RGB"))
    decoded, steps = decode_image(tmp_path / "phone.jpg")
    np.testing.assert_array_equal(np.asarray(decoded), UPRIGHT[orientation](stored))
    assert steps == [f"rotated/flipped upright (EXIF orientation {orientation})"]
    again, more = decode_image(decoded)                      # the tag went with the turn
    assert again.size == (16, 24) and more == []
    np.testing.assert_array_equal(np.asarray(again), np.asarray(decoded))


@pytest.mark.parametrize("orientation", [0, 1, 9, 65535])
def test_orientation_values_that_are_not_rotations_are_ignored(tmp_path, orientation):
    a = _rgb(3, 4)
    img = Image.fromarray(a)
    img.save(tmp_path / "o.png", exif=_with_orientation(img, orientation))
    out, steps = read_image(tmp_path / "o.png")
    np.testing.assert_array_equal(out, a.transpose(2, 0, 1))
    assert steps == []


def test_animated_gif_reads_the_first_frame(tmp_path):
    frames = [Image.new("L", (5, 5), v) for v in (10, 200)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    out, steps = read_image(tmp_path / "anim.gif")
    assert (out == 10).all() and steps[0] == "first frame of 2 read"


def test_reading_errors(tmp_path):
    (tmp_path / "not.png").write_bytes(b"this is not an image")
    with pytest.raises(ClearConvError, match="cannot read .*not.png"):
        load_image(tmp_path / "not.png")
    Image.fromarray(_rgb(40, 40)).save(tmp_path / "cut.png")
    data = (tmp_path / "cut.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ClearConvError, match="cannot decode"):
        load_image(tmp_path / "cut.png")
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ClearConvError, match="mode must be"):
        load_image(tmp_path / "cut.png", mode="CMYK")
    with pytest.raises(ClearConvError, match="size must be"):
        load_image(tmp_path / "cut.png", size=(0, 3))


# ---------------------------------------------------------------------- to 0..255


def test_to_uint8_clip():
    u8, desc = to_uint8(np.array([-0.5, 0.0, 0.5, 1.0, 2.0]), "clip")
    assert u8.tolist() == [0, 0, 128, 255, 255]
    assert "clipped to 0..1" in desc and "20.0% of values below 0, 20.0% above 1" in desc
    assert to_uint8(np.array([-3, 100, 300], np.int16), "clip")[0].tolist() == [0, 100, 255]
    a = RNG.integers(0, 256, 10, dtype=np.uint8)
    np.testing.assert_array_equal(to_uint8(a, "clip")[0], a)
    assert to_uint8(np.array([0.0, 100.0, 255.0]), "clip", max_value=255)[0].tolist() == \
        [0, 100, 255]


def test_to_uint8_rescale_and_magnitude():
    u8, desc = to_uint8(np.array([-2.0, 0.0, 2.0]), "rescale")
    assert u8.tolist() == [0, 128, 255] and desc == "rescaled -2..2 -> 0..255"
    assert to_uint8(np.full(4, 7.0), "rescale")[0].tolist() == [0] * 4
    u8, desc = to_uint8(np.array([-4.0, 1.0, 2.0]), "magnitude")
    assert u8.tolist() == [255, 64, 128] and desc.startswith("magnitude |x|, 0..4")
    assert to_uint8(np.zeros(3), "magnitude")[0].tolist() == [0, 0, 0]


@pytest.mark.parametrize("array, expected, word", [
    (np.array([0, 7, 255], np.uint8), [0, 7, 255], "as they are"),
    (np.array([0, 7, 255], np.int64), [0, 7, 255], "as they are"),
    (np.array([0.0, 0.5, 1.0]), [0, 128, 255], "times 255"),
    (np.array([-1.0, 0.0, 3.0]), [0, 64, 255], "rescaled"),
    (np.array([0, 1000], np.uint16), [0, 255], "rescaled"),
    (np.array([True, False]), [255, 0], "0/255"),
])
def test_to_uint8_auto(array, expected, word):
    u8, desc = to_uint8(array)
    assert u8.dtype == np.uint8 and u8.tolist() == expected and word in desc


def test_to_uint8_errors():
    with pytest.raises(ClearConvError, match="NaN"):
        to_uint8(np.array([0.0, np.nan]))
    with pytest.raises(ClearConvError, match="auto, clip, rescale, magnitude"):
        to_uint8(np.zeros(2), "abs")
    with pytest.raises(ClearConvError, match="dtype"):
        to_uint8(np.array(["a"]))


def test_to_image_shapes_and_modes():
    assert to_image(np.zeros((4, 5))).mode == "L"
    assert to_image(np.zeros((1, 4, 5))).size == (5, 4)
    img = to_image(np.zeros((1, 3, 4, 5), np.uint8))
    assert img.mode == "RGB" and img.size == (5, 4)
    chw = RNG.random((3, 4, 5)) * 10 - 5
    rescaled = np.asarray(to_image(chw, "rescale")).transpose(2, 0, 1)
    np.testing.assert_array_equal(rescaled, to_uint8(chw, "rescale")[0])   # one range for all
    with pytest.raises(ShapeError, match=r"channels last\? pass array.transpose\(2, 0, 1\)"):
        to_image(np.zeros((4, 5, 3)))
    with pytest.raises(ShapeError, match="C = 1 or 3"):
        to_image(np.zeros((2, 4, 5)))
    with pytest.raises(ShapeError, match="empty"):
        to_image(np.zeros((0, 5)))


# ---------------------------------------------------------------------- saving


def test_png_round_trip_is_exact(tmp_path):
    for a in (RNG.integers(0, 256, (3, 9, 11), dtype=np.uint8),
              RNG.integers(0, 256, (1, 9, 11), dtype=np.uint8)):
        assert save_image(a, tmp_path / "r.png") == "uint8 values as they are"
        np.testing.assert_array_equal(load_image(tmp_path / "r.png"), a)
    save_image(RNG.integers(0, 256, (9, 11), dtype=np.uint8), tmp_path / "r.bmp")
    assert load_image(tmp_path / "r.bmp").shape == (1, 9, 11)


def test_jpeg_round_trip_is_close(tmp_path):
    a = _smooth_rgb().transpose(2, 0, 1)
    save_image(a, tmp_path / "r.jpg")
    back = load_image(tmp_path / "r.jpg")
    assert back.shape == a.shape
    assert np.abs(back.astype(int) - a).mean() < 3


def test_save_float_states_the_mapping(tmp_path):
    desc = save_image(np.array([[-1.0, 1.0]]), tmp_path / "f.png", mode="magnitude")
    assert desc.startswith("magnitude")
    assert load_image(tmp_path / "f.png")[0].tolist() == [[255, 255]]


def test_save_is_atomic_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "out.png"
    save_image(np.zeros((4, 4), np.uint8), path)
    save_image(np.full((4, 4), 9, np.uint8), path)           # replaces the old file
    assert (load_image(path) == 9).all()
    assert os.listdir(tmp_path) == ["out.png"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "keep.png"
    save_image(np.full((4, 4), 3, np.uint8), path)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        save_image(np.zeros((4, 4), np.uint8), path)
    monkeypatch.undo()
    assert (load_image(path) == 3).all()
    assert os.listdir(tmp_path) == ["keep.png"]


def test_save_refuses_an_unknown_extension(tmp_path):
    with pytest.raises(ClearConvError, match=r"\.png or \.jpg"):
        save_image(np.zeros((4, 4), np.uint8), tmp_path / "out.xyz")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------- to a model


def test_image_to_tensor_unit():
    a = np.array([[[0, 51, 255]]], np.uint8)
    x = image_to_tensor(a)
    assert x.dtype == np.float32 and x.shape == (1, 1, 1, 3)
    np.testing.assert_allclose(x.ravel(), [0.0, 0.2, 1.0])
    assert image_to_tensor(np.zeros((5, 6), np.uint8)).shape == (1, 1, 5, 6)


def test_image_to_tensor_standardize():
    a = RNG.integers(0, 256, (3, 8, 8), dtype=np.uint8)
    x = image_to_tensor(a, "standardize")
    assert x.mean() == pytest.approx(0, abs=1e-5) and x.std() == pytest.approx(1, abs=1e-5)
    y = image_to_tensor(a, "standardize", mean=[10, 20, 30], std=[2, 4, 5])
    np.testing.assert_allclose(y[0, 1], (a[1] - 20.0) / 4, rtol=1e-6)
    np.testing.assert_allclose(image_to_tensor(a, "standardize", mean=33.0, std=3.0)[0],
                               (a - 33.0) / 3, rtol=1e-6)
    assert (image_to_tensor(np.full((2, 2), 9, np.uint8), "standardize") == 0).all()


def test_image_to_tensor_errors():
    a = np.zeros((3, 4, 4), np.uint8)
    with pytest.raises(ShapeError, match="one per channel"):
        image_to_tensor(a, "standardize", mean=[1.0, 2.0])
    with pytest.raises(ClearConvError, match="std must be > 0"):
        image_to_tensor(a, "standardize", mean=0.0, std=0.0)
    with pytest.raises(ClearConvError, match="standardize' only"):
        image_to_tensor(a, mean=1.0)
    with pytest.raises(ClearConvError, match="'unit' or 'standardize'"):
        image_to_tensor(a, "scale")


def _paper_digit(h: int = 60, w: int = 40) -> np.ndarray:
    """A photographed digit: a dark '1' and a bar, on slightly uneven white paper, RGB."""
    paper = 215 + RNG.integers(0, 30, (h, w))
    paper[10:50, 18:23] = 30                       # the stroke
    paper[45:50, 12:30] = 35
    return np.stack([paper] * 3).astype(np.uint8)


def test_fit_to_model_inverts_a_dark_on_light_digit_for_an_mnist_model():
    out, steps = fit_to_model(_paper_digit(), channels=1, size=(28, 28))
    assert out.shape == (1, 28, 28) and out.dtype == np.uint8
    assert border_pixels(out[0]).mean() < 40       # dark background, as in MNIST
    assert out[0, 14, 14] > 180                    # the stroke is now bright
    assert steps[0] == "RGB -> grayscale (ITU-R 601-2 luma)"
    assert steps[1].startswith("inverted: v -> 255 - v (border median")
    assert "light background, the model expects dark" in steps[1]
    assert steps[2] == "resized 40x60 -> 19x28 (WxH, bilinear, aspect ratio kept)"
    assert steps[3].startswith("padded 19x28 -> 28x28 (WxH) with the border colour")


def test_fit_to_model_keeps_an_mnist_style_image():
    mnist_like = 255 - _paper_digit()[:1]
    out, steps = fit_to_model(mnist_like, channels=1, size=(28, 28))
    assert steps[0].startswith("not inverted (border median")
    assert border_pixels(out[0]).mean() < 40


def test_fit_to_model_explicit_choices():
    digit = _paper_digit()[:1]
    kept, steps = fit_to_model(digit, 1, (60, 40), invert=False)
    np.testing.assert_array_equal(kept, digit)
    assert steps == []
    flipped, steps = fit_to_model(digit, 1, (60, 40), invert=True)
    np.testing.assert_array_equal(flipped, 255 - digit)
    assert steps == ["inverted: v -> 255 - v"]
    light, steps = fit_to_model(digit, 1, (60, 40), background="light")
    np.testing.assert_array_equal(light, digit)
    assert "as the model expects" in steps[0]


def test_fit_to_model_never_auto_inverts_for_rgb_models_by_default():
    out, steps = fit_to_model(_paper_digit(), channels=3, size=(32, 32))
    assert out.shape == (3, 32, 32)
    assert steps[0] == "not inverted (the model's background is unknown)"
    assert border_pixels(out[0]).mean() > 200


def test_fit_to_model_stretches_without_keep_aspect_and_converts_channels():
    gray = _paper_digit()[:1]
    out, steps = fit_to_model(gray, 3, (28, 28), keep_aspect=False, background="dark")
    assert out.shape == (3, 28, 28)
    np.testing.assert_array_equal(out[0], out[2])
    assert steps[0] == "grayscale -> RGB (grey copied to 3 channels)"
    assert steps[-1] == "resized 40x60 -> 28x28 (WxH, bilinear)"
    assert not any(s.startswith("padded") for s in steps)


def test_fit_to_model_maps_float_input_first():
    out, steps = fit_to_model(np.zeros((8, 8)), 1, (8, 8), invert=False)
    assert out.dtype == np.uint8
    assert steps == ["values mapped to 0..255: values in [0, 1] times 255"]


def test_fit_to_model_errors():
    digit = _paper_digit()
    with pytest.raises(ClearConvError, match="channels must be 1 or 3"):
        fit_to_model(digit, 2, (28, 28))
    with pytest.raises(ClearConvError, match="invert must be"):
        fit_to_model(digit, 1, (28, 28), invert="yes")
    with pytest.raises(ClearConvError, match="background must be"):
        fit_to_model(digit, 1, (28, 28), background="white")
    with pytest.raises(ClearConvError, match="size must be"):
        fit_to_model(digit, 1, 28)


def test_border_pixels_takes_a_strip_along_the_edges():
    g = np.zeros((40, 60))
    g[2:-2, 2:-2] = 1
    assert border_pixels(g).max() == 0             # strip of round(0.05 * 40) = 2 pixels
    assert border_pixels(g).size == 40 * 60 - 36 * 56
    assert border_pixels(np.ones((1, 3))).size == 3
