"""Classic filters (MATH.md §3, figure 4): kernel values, parsing, and apply_filter held
to scipy.signal.convolve2d / correlate2d and scipy.ndimage on random images."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.signal import convolve2d, correlate2d

from clearconv import filters
from clearconv.errors import ClearConvError, ShapeError
from clearconv.filters import (
    FILTER_NAMES,
    KERNEL_NAMES,
    FilterResult,
    apply_filter,
    filter_image,
    get_kernel,
    gradient_magnitude,
    parse_kernel,
    sobel_magnitude,
)

RNG = np.random.default_rng(1234)


def _image(*shape: int) -> np.ndarray:
    return RNG.random(shape)


# ---------------------------------------------------------------------- kernel values


def test_sobel_and_prewitt_are_the_textbook_kernels_and_sum_to_zero():
    sx = get_kernel("sobel-x")
    np.testing.assert_array_equal(sx, [[1, 0, -1], [2, 0, -2], [1, 0, -1]])
    np.testing.assert_array_equal(get_kernel("sobel-y"), sx.T)
    np.testing.assert_array_equal(get_kernel("prewitt-x"), [[1, 0, -1]] * 3)
    np.testing.assert_array_equal(get_kernel("prewitt-y"), get_kernel("prewitt-x").T)
    for name in ("sobel-x", "sobel-y", "prewitt-x", "prewitt-y", "laplacian", "laplacian-8"):
        k = get_kernel(name)
        assert k.dtype == np.float64 and k.shape == (3, 3)
        assert k.sum() == 0, name


def test_laplacian_is_4_neighbour_and_sharpen_is_identity_minus_laplacian():
    lap = get_kernel("laplacian")
    np.testing.assert_array_equal(lap, [[0, 1, 0], [1, -4, 1], [0, 1, 0]])
    identity = np.zeros((3, 3))
    identity[1, 1] = 1
    np.testing.assert_array_equal(get_kernel("sharpen"), identity - lap)
    assert get_kernel("laplacian-8")[1, 1] == -8
    assert get_kernel("emboss").sum() == 1


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7])
def test_box_is_uniform_and_sums_to_one(n):
    k = get_kernel("box", n)
    assert k.shape == (n, n)
    np.testing.assert_allclose(k, 1.0 / (n * n))
    assert k.sum() == pytest.approx(1.0)


def test_box_default_size_is_3():
    assert get_kernel("box").shape == (3, 3)


@pytest.mark.parametrize("size, sigma", [(3, 1.0), (5, 1.0), (9, 2.5), (1, 0.3)])
def test_gaussian_sums_to_one_is_symmetric_and_separable(size, sigma):
    k = get_kernel("gaussian", size, sigma)
    assert k.shape == (size, size)
    assert k.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(k, k.T)
    np.testing.assert_allclose(k, k[::-1, ::-1])
    assert k.argmax() == (size * size) // 2            # the peak is the centre
    t = np.arange(size) - (size - 1) / 2
    g = np.exp(-t ** 2 / (2 * sigma ** 2))
    np.testing.assert_allclose(k, np.outer(g, g) / np.outer(g, g).sum())


def test_gaussian_default_size_covers_three_sigma():
    assert get_kernel("gaussian", sigma=1.0).shape == (7, 7)
    assert get_kernel("gaussian", sigma=2.0).shape == (13, 13)


def test_names_ignore_case_and_underscores():
    np.testing.assert_array_equal(get_kernel("Sobel_X"), get_kernel("sobel-x"))


def test_every_listed_kernel_name_works():
    for name in KERNEL_NAMES:
        assert get_kernel(name).ndim == 2


def test_unknown_kernel_lists_the_known_names():
    with pytest.raises(ClearConvError, match="sobel-x.*gaussian"):
        get_kernel("sobelx")


def test_sobel_magnitude_name_is_not_a_single_kernel():
    with pytest.raises(ClearConvError, match="gradient magnitude"):
        get_kernel("sobel")


@pytest.mark.parametrize("name, size, message", [
    ("gaussian", 4, "odd"),
    ("sobel-x", 5, "fixed 3x3"),
    ("laplacian", 1, "fixed 3x3"),
    ("box", 0, ">= 1"),
    ("box", 2.5, "int"),
])
def test_bad_sizes_are_refused(name, size, message):
    with pytest.raises(ClearConvError, match=message):
        get_kernel(name, size)


@pytest.mark.parametrize("sigma", [0, -1.0, float("nan"), float("inf")])
def test_bad_gaussian_sigma_is_refused(sigma):
    with pytest.raises(ClearConvError, match="sigma"):
        get_kernel("gaussian", 5, sigma)


# ---------------------------------------------------------------------- parse_kernel


@pytest.mark.parametrize("text", [
    "1,0,-1;2,0,-2;1,0,-1",
    " 1, 0, -1 ; 2, 0, -2 ; 1, 0, -1 ; ",
    "1 0 -1\n2 0 -2\n1 0 -1\n",
    "1.0,0,-1e0;2,0,-2;1,0,-1",
])
def test_parse_kernel_reads_rows_of_numbers(text):
    np.testing.assert_array_equal(parse_kernel(text), get_kernel("sobel-x"))


def test_parse_kernel_fractions_and_single_row():
    np.testing.assert_allclose(parse_kernel("1/9,1/9,1/9;1/9 1/9 1/9;1/9,1/9,1/9"),
                               get_kernel("box"))
    k = parse_kernel("1 2 1")
    assert k.shape == (1, 3) and k.dtype == np.float64


def test_parse_kernel_accepts_arrays_and_lists():
    np.testing.assert_array_equal(parse_kernel([[1, 2], [3, 4]]), [[1.0, 2.0], [3.0, 4.0]])
    assert parse_kernel(np.eye(2, dtype=np.int32)).dtype == np.float64


@pytest.mark.parametrize("text, message", [
    ("1,2;3", "same length: row 1 has 2 values, row 2 has 1"),
    ("1,2;3,x", "is not numbers"),
    ("1,2;3,1/0", "row 2"),
    ("1,,2;;", None),                 # empty fields are skipped: a valid 1x2 kernel
    (";;", "is not numbers"),
    ("1e999", "NaN or infinite"),
])
def test_parse_kernel_text_errors(text, message):
    if message is None:
        assert parse_kernel(text).shape == (1, 2)
        return
    with pytest.raises(ClearConvError, match=message):
        parse_kernel(text)


def test_parse_kernel_reads_npy_files(tmp_path):
    path = tmp_path / "k.npy"
    np.save(path, np.arange(6, dtype=np.int16).reshape(2, 3))
    k = parse_kernel(path)
    assert k.dtype == np.float64 and k.shape == (2, 3)
    np.testing.assert_array_equal(parse_kernel(str(path)), k)


def test_parse_kernel_reads_text_files(tmp_path):
    path = tmp_path / "kernel.txt"
    path.write_text("0 1 0\n1 -4 1\n0 1 0\n")
    np.testing.assert_array_equal(parse_kernel(str(path)), get_kernel("laplacian"))


@pytest.mark.parametrize("array, message", [
    (np.arange(3.0), "must be 2-D"),
    (np.zeros((2, 2, 2)), "must be 2-D"),
    (np.zeros((0, 3)), "empty"),
    (np.array([[1.0, np.nan]]), "NaN"),
    (np.array([[1 + 1j]]), "real numbers"),
])
def test_parse_kernel_refuses_bad_npy_contents(tmp_path, array, message):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(ClearConvError, match=message):
        parse_kernel(path)


def test_parse_kernel_refuses_pickled_npy(tmp_path):
    path = tmp_path / "pickled.npy"
    np.save(path, np.array([[{"a": 1}]], dtype=object), allow_pickle=True)
    with pytest.raises(ClearConvError, match="cannot read"):
        parse_kernel(path)


def test_parse_kernel_missing_file_and_garbage(tmp_path):
    with pytest.raises(ClearConvError, match="does not exist"):
        parse_kernel(tmp_path / "missing.npy")
    with pytest.raises(ClearConvError, match="nor an existing file"):
        parse_kernel("not a kernel")


# ---------------------------------------------------------------------- apply_filter vs scipy

ODD_SHAPES = [(1, 1), (3, 3), (5, 5), (3, 5), (1, 7), (7, 1)]
EVEN_SHAPES = [(2, 2), (4, 4), (2, 3), (3, 4), (1, 2), (6, 5)]


@pytest.mark.parametrize("kshape", ODD_SHAPES)
@pytest.mark.parametrize("mode", ["same", "valid"])
def test_convolution_matches_scipy_convolve2d_for_odd_kernels(kshape, mode):
    f, h = _image(13, 17), RNG.standard_normal(kshape)
    out = apply_filter(f, h, padding=mode)
    expected = convolve2d(f, h, mode=mode, boundary="fill", fillvalue=0)
    assert out.dtype == np.float64 and out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kshape", ODD_SHAPES + EVEN_SHAPES)
@pytest.mark.parametrize("mode", ["same", "valid"])
def test_correlation_matches_scipy_correlate2d_even_kernels_included(kshape, mode):
    # correlate2d 'same' puts the kernel origin at (k - 1) // 2, as clearconv's 'same'
    # (the extra padding row/column at the bottom/right) does: they agree by construction
    f, h = _image(12, 15), RNG.standard_normal(kshape)
    out = apply_filter(f, h, padding=mode, correlate=True)
    np.testing.assert_allclose(out, correlate2d(f, h, mode=mode), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kshape", EVEN_SHAPES)
def test_even_kernel_convolution_is_the_full_result_from_k_over_2(kshape):
    # convolve2d 'same' takes full[(k-1)//2 :]; clearconv pads the extra at the
    # bottom/right, so its true convolution takes full[k//2 :] (one pixel further)
    f, h = _image(11, 14), RNG.standard_normal(kshape)
    full = convolve2d(f, h, mode="full")
    r, c = kshape[0] // 2, kshape[1] // 2
    np.testing.assert_allclose(apply_filter(f, h), full[r:r + 11, c:c + 14], atol=1e-12)
    np.testing.assert_allclose(apply_filter(f, h, "valid"), convolve2d(f, h, "valid"),
                               atol=1e-12)


@pytest.mark.parametrize("kshape", ODD_SHAPES + EVEN_SHAPES)
def test_convolution_is_correlation_with_the_rotated_kernel(kshape):
    f, h = _image(9, 10), RNG.standard_normal(kshape)
    np.testing.assert_allclose(apply_filter(f, h),
                               apply_filter(f, h[::-1, ::-1], correlate=True), atol=1e-12)


def test_rgb_is_filtered_per_channel():
    f, h = _image(3, 10, 12), RNG.standard_normal((3, 3))
    out = apply_filter(f, h)
    assert out.shape == (3, 10, 12)
    for c in range(3):
        np.testing.assert_allclose(out[c], convolve2d(f[c], h, mode="same"), atol=1e-12)
    assert apply_filter(f[:1], h).shape == (1, 10, 12)


def test_uint8_images_are_filtered_as_0_to_255():
    f = RNG.integers(0, 256, (3, 9, 9), dtype=np.uint8)
    h = get_kernel("sobel-y")
    out = apply_filter(f, h)
    assert out.dtype == np.float64
    for c in range(3):
        np.testing.assert_array_equal(out[c], convolve2d(f[c].astype(float), h, "same"))


def test_explicit_padding_forms_match_slices_of_the_full_result():
    f, h = _image(8, 9), RNG.standard_normal((3, 4))
    full = convolve2d(f, h, mode="full")
    np.testing.assert_allclose(apply_filter(f, h, padding=((2, 2), (3, 3))), full, atol=1e-12)
    # padding (1, 2): one row on each side, two columns on each side of the flipped kernel
    out = apply_filter(f, h, padding=(1, 2))
    np.testing.assert_allclose(out, full[1:1 + out.shape[0], 1:1 + out.shape[1]], atol=1e-12)
    assert out.shape == (8 + 2 - 3 + 1, 9 + 4 - 4 + 1)
    np.testing.assert_allclose(apply_filter(f, h, padding=0), convolve2d(f, h, "valid"),
                               atol=1e-12)


@pytest.mark.parametrize("stride", [2, 3, (2, 3)])
@pytest.mark.parametrize("mode", ["valid", "same"])
@pytest.mark.parametrize("kshape", [(3, 3), (4, 2), (5, 3)])
def test_stride_subsamples_the_stride_1_result(stride, mode, kshape):
    f, h = _image(2, 16, 19), RNG.standard_normal(kshape)
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    dense = apply_filter(f, h, padding=mode)
    out = apply_filter(f, h, padding=mode, stride=stride)
    np.testing.assert_allclose(out, dense[:, ::sh, ::sw], atol=1e-12)
    if mode == "same":      # MATH.md §5 with p = (f - 1)/2: ceil(n / s)
        assert out.shape[1:] == (-(-16 // sh), -(-19 // sw))


@pytest.mark.parametrize("padding_mode, scipy_mode", [
    ("zeros", "constant"), ("reflect", "mirror"), ("replicate", "nearest"),
    ("circular", "wrap"),
])
def test_padding_modes_match_scipy_ndimage(padding_mode, scipy_mode):
    f, h = _image(10, 13), RNG.standard_normal((3, 5))
    np.testing.assert_allclose(apply_filter(f, h, padding_mode=padding_mode),
                               ndimage.convolve(f, h, mode=scipy_mode), atol=1e-12)
    np.testing.assert_allclose(apply_filter(f, h, correlate=True, padding_mode=padding_mode),
                               ndimage.correlate(f, h, mode=scipy_mode), atol=1e-12)


def test_large_images_are_filtered_in_strips_with_the_same_result(monkeypatch):
    f, h = _image(3, 41, 23), RNG.standard_normal((5, 4))
    whole = apply_filter(f, h, stride=2)
    calls = []
    real = filters.conv2d_forward

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(filters, "conv2d_forward", counting)
    monkeypatch.setattr(filters, "_CHUNK_VALUES", 5 * 4 * 3 * 12 * 3)   # 3 output rows
    np.testing.assert_allclose(apply_filter(f, h, stride=2), whole, atol=1e-12)
    assert len(calls) == 7                      # 21 output rows, 3 per conv2d call
    assert all(shape[:2] == (3, 1) for shape in calls)    # channels in the batch axis


def test_sobel_sign_convention():
    ramp = np.tile(np.arange(6.0), (5, 1))               # brighter to the right
    assert (apply_filter(ramp, get_kernel("sobel-x"), "valid") == 8).all()
    assert (apply_filter(ramp, get_kernel("sobel-x"), "valid", correlate=True) == -8).all()
    assert (apply_filter(ramp.T, get_kernel("sobel-y"), "valid") == 8).all()   # downwards


def test_sobel_magnitude_is_the_hypotenuse_of_both_derivatives():
    f = _image(3, 12, 14)
    gx = np.stack([convolve2d(c, get_kernel("sobel-x"), "same") for c in f])
    gy = np.stack([convolve2d(c, get_kernel("sobel-y"), "same") for c in f])
    np.testing.assert_allclose(sobel_magnitude(f), np.sqrt(gx ** 2 + gy ** 2), atol=1e-12)
    assert gradient_magnitude(f, "prewitt").shape == f.shape
    with pytest.raises(ClearConvError, match="sobel, prewitt"):
        gradient_magnitude(f, "canny")


@pytest.mark.parametrize("image, kernel, padding, error, message", [
    (np.zeros((1, 1, 4, 4)), np.ones((3, 3)), "same", ShapeError, r"\(H, W\) or \(C, H, W\)"),
    (np.zeros((4, 4)), np.ones((5, 5)), "valid", ShapeError, "5x5 kernel does not fit a 4x4"),
    (np.zeros((4, 4)), np.ones(3), "same", ShapeError, "2-D"),
    (np.zeros((4, 4)), np.ones((3, 3)), "full", ClearConvError, "unknown padding"),
    (np.array([["a"]]), np.ones((1, 1)), "same", ClearConvError, "numeric"),
])
def test_apply_filter_errors(image, kernel, padding, error, message):
    with pytest.raises(error, match=message):
        apply_filter(image, kernel, padding=padding)


def test_apply_filter_bad_padding_mode_and_stride():
    with pytest.raises(ClearConvError, match="reflect"):
        apply_filter(np.zeros((4, 4)), np.ones((3, 3)), padding_mode="mirror")
    with pytest.raises(ClearConvError, match="stride"):
        apply_filter(np.zeros((4, 4)), np.ones((3, 3)), stride=0)


# ---------------------------------------------------------------------- filter_image


def test_filter_image_sobel_uses_the_magnitude_mapping():
    f = RNG.integers(0, 256, (3, 20, 24), dtype=np.uint8)
    res = filter_image(f, "sobel")
    assert isinstance(res, FilterResult)
    result, viewable, mapping = res
    np.testing.assert_allclose(result, sobel_magnitude(f))
    assert viewable.dtype == np.uint8 and viewable.shape == f.shape
    assert viewable.max() == 255
    assert mapping.startswith("magnitude:")
    np.testing.assert_array_equal(viewable, np.rint(result * 255 / result.max()))


@pytest.mark.parametrize("name", ["sobel-x", "laplacian", "prewitt-y", "prewitt"])
def test_filter_image_zero_sum_kernels_show_magnitudes(name):
    res = filter_image(RNG.integers(0, 256, (15, 15), dtype=np.uint8), name)
    assert res.mapping.startswith("magnitude:")
    np.testing.assert_array_equal(res.image,
                                  np.rint(np.abs(res.result) * 255 / np.abs(res.result).max()))


def test_filter_image_blurs_clip_to_the_input_range():
    f = RNG.integers(0, 256, (3, 16, 16), dtype=np.uint8)
    res = filter_image(f, "gaussian", size=5, sigma=1.0)
    assert res.mapping.startswith("clip:")
    np.testing.assert_array_equal(res.image, np.clip(np.rint(res.result), 0, 255))
    sharp = filter_image(f, "sharpen")
    assert sharp.image.min() == 0 or sharp.image.max() == 255
    unit = filter_image(f / 255.0, "box", size=3)
    assert unit.mapping.startswith("clip: clipped to 0..1")
    np.testing.assert_allclose(unit.image, filter_image(f, "box").image, atol=1)


def test_filter_image_user_kernels_and_options(tmp_path):
    f = _image(10, 12)
    res = filter_image(f, "1,0,-1;2,0,-2;1,0,-1", output="rescale", stride=2, padding="valid")
    np.testing.assert_allclose(res.result, apply_filter(f, get_kernel("sobel-x"), "valid", 2))
    assert res.mapping.startswith("rescale:") and res.image.min() == 0
    path = tmp_path / "k.npy"
    np.save(path, np.ones((2, 2)))
    corr = filter_image(f, str(path), correlate=True)
    np.testing.assert_allclose(corr.result, correlate2d(f, np.ones((2, 2)), "same"))
    np.testing.assert_allclose(filter_image(f, np.ones((2, 2)), correlate=True).result,
                               corr.result)


def test_filter_image_every_name_runs():
    f = RNG.integers(0, 256, (3, 9, 9), dtype=np.uint8)
    for name in FILTER_NAMES:
        res = filter_image(f, name)
        assert res.result.shape == res.image.shape == f.shape


def test_filter_image_errors_list_the_names():
    f = np.zeros((5, 5))
    with pytest.raises(ClearConvError, match="sobel-x.*sobel, prewitt"):
        filter_image(f, "sobelx")
    with pytest.raises(ClearConvError, match="magnitude, rescale, clip"):
        filter_image(f, "sobel", output="abs")
    with pytest.raises(ClearConvError, match="does not exist"):
        filter_image(f, "nothing-here.npy")
