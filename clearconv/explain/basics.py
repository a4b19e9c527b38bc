"""Figures of MATH.md §2-5: digital images, kernel convolution, filters, padding, stride.

Every number drawn is computed by :mod:`clearconv.reference` (the literal loops:
conv2d_forward_steps, conv2d_backward), by :mod:`clearconv.filters` (the photo through
classic kernels) or read from the image; the figure code only places it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import reference as R
from ..filters import apply_filter, get_kernel
from ..shapes import conv_output_size
from . import _draw as D
from ._inputs import photo, shrink_to, small_gray, to_gray
from ._result import ExplainResult

# ------------------------------------------------------------------------------ image

CROP = 8


def _busiest_crop(gray: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the ``size`` x ``size`` crop with the most contrast (variance),
    away from the outer eighth of the image (a summed-area table gives every crop's
    sums at once)."""
    h, w = gray.shape
    if h <= size or w <= size:
        return 0, 0
    g = gray.astype(np.float64)
    sat = np.pad(g, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    sat2 = np.pad(g * g, ((1, 0), (1, 0))).cumsum(0).cumsum(1)

    def window_sums(t: np.ndarray) -> np.ndarray:
        return t[size:, size:] - t[:-size, size:] - t[size:, :-size] + t[:-size, :-size]

    n = size * size
    var = window_sums(sat2) / n - (window_sums(sat) / n) ** 2
    mr, mc = (h - size) // 8, (w - size) // 8
    inner = var[mr:var.shape[0] - mr, mc:var.shape[1] - mc]
    r, c = np.unravel_index(int(np.argmax(np.round(inner, 6))), inner.shape)
    return int(r + mr), int(c + mc)


def explain_image(out_dir: Path, image: Any = None, seed: int = 0) -> ExplainResult:
    """MATH.md §2 (article fig. 2): a crop of a real photo as its R, G, B matrices of bytes.

    Writes ``image.png``. ``numbers``: ``pixels_shape`` (C, H, W), ``crop_origin`` (row,
    col), ``crop`` uint8 (C, 8, 8) (the values drawn), ``channels``, ``source``.
    """
    from matplotlib.patches import ConnectionPatch, Rectangle

    pic = photo(image)
    pixels = pic.pixels
    c_count, h, w = pixels.shape
    r0, c0 = _busiest_crop(to_gray(pixels).astype(float), CROP)
    crop = pixels[:, r0:r0 + CROP, c0:c0 + CROP].copy()
    names = ["R", "G", "B"] if c_count == 3 else ["L"]

    cell = 0.36
    mat_w = CROP * cell
    width = max(11.0, len(names) * (mat_w + 0.75) + 0.6)
    fig = D.new_figure(width, 9.3)
    top = D.header(
        fig, "§2 Digital images: a picture is C matrices of bytes 0..255 (article fig. 2)",
        rf"$A[c, i, j] \in \{{0, \ldots, 255\}}$,   shape $(C, H, W) = ({c_count}, {h}, {w})$"
        rf"   (the article's $[n, n, n_c]$ is $[H, W, C] = [{h}, {w}, {c_count}]$)",
        note=pic.source)
    # the photo with the crop marked, and the crop enlarged
    box_w, box_h = 5.6, 3.3
    scale = min(box_w / w, box_h / h)
    pw, ph = w * scale, h * scale
    left = (width - (pw + 0.9 + box_h)) / 2
    ax_photo = D.axes_in(fig, left, top + 0.35, pw, ph)
    shown = pixels.transpose(1, 2, 0) if c_count == 3 else pixels[0]
    ax_photo.imshow(shown, cmap=None if c_count == 3 else "gray", vmin=0, vmax=255,
                    interpolation="antialiased")
    ax_photo.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), CROP, CROP, fill=False,
                                 edgecolor=D.FOCUS, linewidth=2.5))
    ax_photo.set_title(f"the whole image, {w}x{h} pixels (W x H)", fontsize=D.LABEL_SIZE)
    ax_zoom = D.axes_in(fig, left + pw + 0.9, top + 0.35 + (ph - box_h) / 2, box_h, box_h)
    ax_zoom.imshow(crop.transpose(1, 2, 0) if c_count == 3 else crop[0],
                   cmap=None if c_count == 3 else "gray", vmin=0, vmax=255,
                   interpolation="nearest")
    ax_zoom.set_title(f"the {CROP}x{CROP} crop at row {r0}, column {c0}",
                      fontsize=D.LABEL_SIZE)
    for spine in ax_zoom.spines.values():
        spine.set_edgecolor(D.FOCUS)
    for corner_photo, corner_zoom in (((c0 + CROP - 0.5, r0 - 0.5), (-0.5, -0.5)),
                                      ((c0 + CROP - 0.5, r0 + CROP - 0.5), (-0.5, CROP - 0.5))):
        fig.add_artist(ConnectionPatch(corner_photo, corner_zoom, "data", "data",
                                       axesA=ax_photo, axesB=ax_zoom, color=D.FOCUS, lw=1.2))
    # one matrix per channel
    mt = top + 0.35 + max(ph, box_h) + 0.95
    total = len(names) * mat_w + (len(names) - 1) * 0.75
    x = (width - total) / 2
    for i, name in enumerate(names):
        D.matrix_at(fig, x, mt, crop[i], D.CHANNELS.get(name, "gray"), 0, 255, cell,
                    decimals=0, title=f"{name} = A[{i}]   ({CROP}x{CROP}, uint8)",
                    row_labels=range(r0, r0 + CROP), col_labels=range(c0, c0 + CROP))
        x += mat_w + 0.75
    path = D.save_png(fig, out_dir / "image.png")
    what = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
    return ExplainResult(
        "image", [path],
        {"pixels_shape": tuple(int(s) for s in pixels.shape), "crop_origin": (r0, c0),
         "crop": crop, "channels": names, "source": pic.source},
        f"The {w}x{h} image ({pic.source}) is {c_count} "
        f"{'matrices' if c_count > 1 else 'matrix'} of bytes; the {CROP}x{CROP} "
        f"crop at row {r0}, column {c0} is shown as its {what} values "
        f"(here {int(crop.min())}..{int(crop.max())}).",
        {"image.png": f"An {CROP}x{CROP} crop of the image written out as its {what} matrices "
                      f"of 0..255 values."},
        "§2 Digital images")


# ------------------------------------------------------------------------ convolution

SOBEL = "sobel_x"
#: the :func:`clearconv.filters.get_kernel` name of each kernel drawn (all 3x3)
KERNEL_NAMES = {"sobel_x": "sobel-x", "sobel_y": "sobel-y", "laplacian": "laplacian",
                "sharpen": "sharpen", "gaussian_blur": "gaussian"}


def kernel(name: str) -> np.ndarray:
    """A classic 3x3 kernel of :mod:`clearconv.filters` by its key in :data:`KERNEL_NAMES`."""
    return get_kernel(KERNEL_NAMES[name], size=3)


def explain_convolution(out_dir: Path, image: Any = None, seed: int = 0,
                        size: int = 6) -> ExplainResult:
    """MATH.md §3-4 (article fig. 3): a 3x3 kernel sliding over a small image, step by step.

    Writes ``convolution.gif``: one frame per position of the 'same' convolution (``size``²
    frames); the 'valid' convolution runs beside it on the same windows (its kernel must
    stay inside the image, so it has ``(size - 2)``² positions). Each frame shows the
    window, the 9 products ``h[j, k] f[m + j, n + k]`` and their sum, and the outputs
    filling in.

    ``numbers`` (all from :func:`clearconv.reference.conv2d_forward_steps`): ``image``
    (size, size), ``kernel`` (3, 3), ``padded`` (size+2, size+2), ``same_output`` /
    ``valid_output``, ``same_positions`` (F, 2), ``same_products`` (F, 3, 3), ``same_sums``
    (F,), the same three for ``valid_*``, ``frames`` F.
    """
    img, source, vmax_pix = small_gray(image, size, seed)
    k = kernel(SOBEL)
    f = k.shape[0]
    x = img.astype(np.float64)[None, None]
    valid = R.conv2d_forward_steps(x, k[None, None], padding="valid")
    same = R.conv2d_forward_steps(x, k[None, None], padding="same")
    z_valid, z_same = valid.z[0, 0], same.z[0, 0]
    pads = same.geometry.padding
    (pt, _), (pl, _) = pads
    padded = same.a_pad[0, 0]
    # every step: the window's products and their sum, output pixel by output pixel
    positions = [(m, n) for m in range(z_same.shape[0]) for n in range(z_same.shape[1])]
    same_products = same.products[0, 0, :, :, 0].reshape(-1, f, f)
    same_sums = same.channel_sums[0, 0, :, :, 0].ravel()
    valid_positions = [(m, n) for m in range(z_valid.shape[0]) for n in range(z_valid.shape[1])]
    valid_products = valid.products[0, 0, :, :, 0].reshape(-1, f, f)
    valid_sums = valid.channel_sums[0, 0, :, :, 0].ravel()

    n_frames = len(positions)
    cell = 0.38
    pix_cmap = D.PIXELS if vmax_pix == 16 else "gray"
    out_lim = D.sym_limit(z_same, z_valid)
    prod_lim = D.sym_limit(same_products)
    k_lim = D.sym_limit(k)
    hp, wp = padded.shape
    prod_chars = max(D.max_chars(same_products, 2), 2)
    out_chars = max(D.max_chars(z_same, 2), 2)
    width = 0.6 + wp * cell + 0.8 + f * cell + 0.7 + f * cell + 0.9 + wp * cell + 0.4
    row_h = {"valid": size * cell + 1.15, "same": hp * cell + 1.15}
    fig = D.new_figure(width, 1.45 + row_h["valid"] + row_h["same"])
    top = D.header(
        fig, "§3 Kernel convolution, step by step: valid (top) and same (bottom, with §4's "
             "padding) (article fig. 3)",
        r"$G[m, n] = \sum_j \sum_k h[j, k]\ f[m + j,\ n + k]$"
        rf"   valid: $n_{{out}} = n - f + 1 = {z_valid.shape[0]}$;"
        rf"  same: $p = (f - 1)/2 = {pt}$, $n_{{out}} = n = {z_same.shape[0]}$",
        note=f"{source}; kernel h = Sobel x (cross-correlation, as the layers compute it)")

    views: dict[str, Any] = {}
    dynamic: list[Any] = []
    for mode in ("valid", "same"):
        y0 = top + 0.4 + (row_h["valid"] if mode == "same" else 0)
        arr = img.astype(float) if mode == "valid" else padded
        xoff = pl if mode == "same" else 0
        in_left = 0.6 + (wp - arr.shape[1]) * cell / 2
        y_in = y0
        rows_h = arr.shape[0]
        labels = list(range(-xoff, arr.shape[1] - xoff))
        v_in = D.matrix_at(fig, in_left, y_in, arr, pix_cmap, 0, vmax_pix, cell, decimals=0,
                           title=f"f: {size}x{size} image" + (f", zero padding p = {pt}"
                                                               if mode == "same" else ""),
                           row_labels=labels, col_labels=labels, chars=3)
        if mode == "same":
            D.shade_padding(v_in.ax, arr.shape, pads)
        xk = 0.6 + wp * cell + 0.8
        ym = y0 + (rows_h - f) * cell / 2
        D.operator(fig, xk - 0.4, ym + f * cell / 2, "\u2299")
        D.matrix_at(fig, xk, ym, k, D.SIGNED, -k_lim, k_lim, cell, decimals=2,
                    title="h (3x3)", col_labels=[], row_labels=[], chars=prod_chars)
        xp = xk + f * cell + 0.7
        D.operator(fig, xp - 0.35, ym + f * cell / 2, "=")
        v_prod = D.matrix_at(fig, xp, ym, np.zeros((f, f)), D.SIGNED, -prod_lim, prod_lim,
                             cell, decimals=2, title="products", col_labels=[],
                             row_labels=[], chars=prod_chars)
        sum_text = D.text_in(fig, xp + f * cell / 2, ym + f * cell + 0.35, "",
                             fontsize=D.LABEL_SIZE + 1)
        z = z_valid if mode == "valid" else z_same
        xo = xp + f * cell + 0.9 + (wp - z.shape[1]) * cell / 2
        D.operator(fig, xp + f * cell + 0.45, ym + f * cell / 2, "\u2192")
        v_out = D.matrix_at(fig, xo, y0 + (rows_h - z.shape[0]) * cell / 2, z, D.SIGNED,
                            -out_lim, out_lim, cell, decimals=2,
                            title=f"G, {mode}: {z.shape[0]}x{z.shape[1]}", chars=out_chars,
                            shown=np.zeros(z.shape, bool))
        win = D.outline(v_in.ax, 0, 0, f, f)
        cur = D.outline(v_out.ax, 0, 0, 1, 1)
        views[mode] = (v_prod, sum_text, v_out, win, cur, z)
        dynamic += [*v_prod.artists(), *v_out.artists(), sum_text, win, cur]

    valid_index = {p: i for i, p in enumerate(valid_positions)}
    # how many valid outputs exist once the same-frame t is drawn
    valid_done = np.cumsum([(m - pt, n - pl) in valid_index for m, n in positions])

    def draw(t: int) -> None:
        m, n = positions[t]
        # the 'same' window at output (m, n) and the 'valid' one share the centre pixel
        # (m, n) of the image: valid output (m - 1, n - 1) when the kernel fits inside
        for mode in ("same", "valid"):
            v_prod, sum_text, v_out, win, cur, z = views[mode]
            if mode == "same":
                i, pos, prods, total = t, (m, n), same_products[t], same_sums[t]
                win.set_xy((n - 0.5, m - 0.5))
            else:
                pos = (m - pt, n - pl)
                i = valid_index.get(pos, -1)
                prods = valid_products[i] if i >= 0 else np.full((f, f), np.nan)
                total = valid_sums[i] if i >= 0 else np.nan
                win.set_xy((n - pl - 0.5, m - pt - 0.5))
                win.set_visible(i >= 0)
            done = np.zeros(z.shape, bool)
            if mode == "same":
                done.ravel()[:t + 1] = True
            else:
                done.ravel()[:valid_done[t]] = True
            v_prod.update(prods, None if i >= 0 else np.zeros((f, f), bool))
            v_out.update(z, done)
            cur.set_visible(i >= 0)
            if i >= 0:
                cur.set_xy((pos[1] - 0.5, pos[0] - 0.5))
                sum_text.set_text(f"sum = {D.fmt_num(total)} = G[{pos[0]}, {pos[1]}]")
                sum_text.set_color("black")
            else:
                sum_text.set_text("kernel would leave\nthe image: no output")
                sum_text.set_color("#888888")

    path = out_dir / "convolution.gif"
    D.save_gif(fig, path, n_frames, draw, dynamic, frame_ms=700, last_ms=3000)
    return ExplainResult(
        "convolution", [path],
        {"image": img, "kernel": k, "padded": padded, "padding": pads,
         "same_output": z_same, "valid_output": z_valid,
         "same_positions": np.array(positions), "same_products": same_products,
         "same_sums": same_sums, "valid_positions": np.array(valid_positions),
         "valid_products": valid_products, "valid_sums": valid_sums, "frames": n_frames,
         "source": source},
        f"A 3x3 Sobel kernel slides over a {size}x{size} image ({source}): 'valid' gives "
        f"{z_valid.shape[0]}x{z_valid.shape[1]} outputs, 'same' (p = {pt}) gives "
        f"{z_same.shape[0]}x{z_same.shape[1]}; each of the {n_frames} frames sums 9 products "
        f"to one output of conv2d_forward.",
        {"convolution.gif": f"{n_frames} frames: the kernel's window, its 9 products and their "
                            f"sum filling in the valid (top) and same (bottom) outputs."},
        "§3 Kernel convolution")


# ---------------------------------------------------------------------------- filters

FILTERS = (("identity", "identity: G = f"), ("sobel_x", "Sobel x (vertical edges)"),
           ("sobel_y", "Sobel y (horizontal edges)"), ("laplacian", "Laplacian (all edges)"),
           ("sharpen", "sharpen"), ("gaussian_blur", "Gaussian blur (sigma 1)"))
SIGNED_FILTERS = ("sobel_x", "sobel_y", "laplacian")


def explain_filters(out_dir: Path, image: Any = None, seed: int = 0) -> ExplainResult:
    """MATH.md §3 (article fig. 4): a real photo through classic kernels (true convolution).

    Writes ``filters.png``. ``numbers``: ``gray`` uint8 (H, W), ``kernels`` and
    ``outputs`` (name -> array, each output the 'same' convolution of ``gray`` by
    :func:`clearconv.filters.apply_filter`).
    """
    pic = photo(image)
    pixels, resized = shrink_to(pic.pixels, 480)
    gray = to_gray(pixels)
    kernels = {"identity": np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], float)}
    kernels.update({name: kernel(name) for name, _ in FILTERS[1:]})
    outputs = {name: apply_filter(gray.astype(np.float64), kernels[name], padding="same")
               for name, _ in FILTERS}

    h, w = gray.shape
    box_w, box_h = 3.6, 2.5
    scale = min(box_w / w, box_h / h)
    iw, ih = w * scale, h * scale
    kcell = 0.42
    panel_w = 3 * kcell + 0.55 + iw + 0.75
    width = 2 * panel_w + 0.9
    row_h = max(ih, 3 * kcell) + 0.85
    fig = D.new_figure(width, 1.6 + 3 * row_h)
    top = D.header(
        fig, "§3 Classic kernels on a photo: true convolution, zero 'same' padding "
             "(article fig. 4)",
        r"true convolution: $G[m, n] = \sum_j \sum_k h[j, k]\ f[m - j,\ n - k]"
        r" = (f * \mathrm{rot}_{180}(h))[m, n]$",
        note=f"{pic.source}{resized}, as grayscale; red > 0 > blue for the edge detectors"
             f"\n{D.STAR}: '*rot' beside each h below"
             f"\nthe frame along the border is the zero padding (§4): outside the photo the "
             f"kernel reads 0, an edge against black (clearconv filter --padding-mode "
             f"reflect avoids it)")
    for i, (name, label) in enumerate(FILTERS):
        col, row = i % 2, i // 2
        x0 = 0.45 + col * panel_w
        y0 = top + 0.3 + row * row_h
        k = kernels[name]
        ints, denom = D.kernel_fraction(k)
        kl = D.sym_limit(k)
        D.matrix_at(fig, x0, y0 + (ih - 3 * kcell) / 2, ints, D.SIGNED, -kl * denom,
                    kl * denom, kcell, decimals=2, col_labels=[], row_labels=[],
                    title="h" if denom == 1 else f"h = 1/{denom} x", title_size=10)
        D.operator(fig, x0 + 3 * kcell + 0.27, y0 + ih / 2, "*rot", size=11)
        ax = D.axes_in(fig, x0 + 3 * kcell + 0.55, y0, iw, ih)
        g = outputs[name]
        if name in SIGNED_FILTERS:
            lim = float(np.percentile(np.abs(g), 99.5)) or 1.0
            im = ax.imshow(g, cmap=D.SIGNED, vmin=-lim, vmax=lim)
            clipped = bool(np.abs(g).max() > lim)
            shown = f"colours clipped at ±{D.fmt_num(lim, 0)} (99.5% of |G|)"
        else:
            im = ax.imshow(g, cmap="gray", vmin=0, vmax=255)
            clipped = bool(g.min() < 0 or g.max() > 255)
            shown = "shown clipped to 0..255"
        ax.set_title(f"{label}:  G in [{D.fmt_num(g.min(), 0)}, {D.fmt_num(g.max(), 0)}]"
                     + (f"\n{shown}" if clipped else ""), fontsize=D.LABEL_SIZE)
        cax = D.axes_in(fig, x0 + 3 * kcell + 0.55 + iw + 0.1, y0, 0.14, ih, frame=True)
        cb = fig.colorbar(im, cax=cax, extend="both" if clipped else "neither")
        cb.ax.tick_params(labelsize=D.INDEX_SIZE)
    path = D.save_png(fig, out_dir / "filters.png")
    return ExplainResult(
        "filters", [path],
        {"gray": gray, "kernels": kernels, "outputs": outputs, "source": pic.source + resized},
        f"The {w}x{h} grayscale image ({pic.source}) is convolved with {len(FILTERS) - 1} "
        f"classic 3x3 kernels (Sobel x/y, Laplacian, sharpen, Gaussian blur) and the identity.",
        {"filters.png": "The photo through the identity, Sobel x, Sobel y, Laplacian, sharpen "
                        "and Gaussian blur kernels, each kernel drawn beside its result."},
        "§3 Classic kernels")


# ---------------------------------------------------------------------------- padding

def usage_counts(n: int, f: int, padding: Any, stride: int = 1
                 ) -> tuple[np.ndarray, R.Conv2dSteps]:
    """How many output positions read each input pixel of an ``n`` x ``n`` input under an
    ``f`` x ``f`` kernel: :func:`clearconv.reference.conv2d_backward` of ``dZ = 1`` with a
    kernel of ones (each window adds 1 to every pixel it covers). Returns (counts (n, n),
    the steps of that convolution: its geometry and the windows it visited)."""
    steps = R.conv2d_forward_steps(np.zeros((1, 1, n, n)), np.ones((1, 1, f, f)),
                                   stride=stride, padding=padding)
    counts, _, _ = R.conv2d_backward(np.ones_like(steps.z), steps.cache)
    return np.rint(counts[0, 0]).astype(int), steps


def explain_padding(out_dir: Path, seed: int = 0, size: int = 6) -> ExplainResult:
    """MATH.md §4 (article fig. 5): how many outputs use each input pixel, valid vs same.

    Writes ``padding.png`` with three cases on a ``size`` x ``size`` input: valid (f = 3,
    p = 0), same (f = 3, p = 1) and same with an even kernel (f = 4: padding (1, 2), the
    extra row/column at the bottom/right as PyTorch). ``numbers``: ``cases``, a list of
    dicts with ``name``, ``f``, ``padding`` ((top, bottom), (left, right)), ``counts``
    (size, size) and ``n_out``.
    """
    cases = []
    for name, f, pad in (("valid", 3, "valid"), ("same", 3, "same"), ("same", 4, "same")):
        counts, steps = usage_counts(size, f, pad)
        cases.append({"name": name, "f": f, "padding": steps.geometry.padding,
                      "counts": counts, "n_out": steps.geometry.out_shape[2]})
    cell = 0.4
    widths = [(size + sum(c["padding"][1])) * cell for c in cases]
    gap = 0.9
    width = sum(widths) + gap * (len(cases) - 1) + 1.0
    tallest = max((size + sum(c["padding"][0])) * cell for c in cases)
    fig = D.new_figure(width, 1.55 + 0.45 + tallest + 1.1)
    top = D.header(
        fig, "§4 Valid and same convolution: how many outputs use each pixel (article fig. 5)",
        r"$n_{out} = n + 2p - f + 1$;   same: $p = (f - 1)/2$ (f odd; for f even the extra "
        r"row/column goes bottom/right)",
        note=f"a {size}x{size} input; each number is how many kernel positions read that "
             f"pixel; hatched: zero padding, (1, 2) = 1 before, 2 after")
    vmax = max(int(c["counts"].max()) for c in cases)
    x = 0.5
    for case, wd in zip(cases, widths):
        (pt, pb), (pl, pr) = case["padding"]
        shown = np.full((size + pt + pb, size + pl + pr), np.nan)
        shown[pt:pt + size, pl:pl + size] = case["counts"]
        y = top + 0.45 + (tallest - shown.shape[0] * cell) / 2
        labels = list(range(-pl, size + pr))
        v = D.matrix_at(fig, x, y, shown, D.COUNTS, 0, vmax, cell, decimals=0,
                        title=f"{case['name']}: f = {case['f']}, "
                              + (f"p = {pt}" if (pt, pl) == (pb, pr) else
                                 f"p = ({pt}, {pb})"),
                        row_labels=list(range(-pt, size + pb)), col_labels=labels)
        D.shade_padding(v.ax, shown.shape, case["padding"])
        c = case["counts"]
        n_out = case["n_out"]
        D.text_in(fig, x + wd / 2, top + 0.45 + tallest + 0.4,
                  f"output {n_out}x{n_out} = {n_out * n_out} positions", fontsize=D.LABEL_SIZE)
        D.text_in(fig, x + wd / 2, top + 0.45 + tallest + 0.75,
                  f"corner used {c[0, 0]}x, centre {c[size // 2, size // 2]}x",
                  fontsize=D.LABEL_SIZE)
        x += wd + gap
    path = D.save_png(fig, out_dir / "padding.png")
    v0, v1 = cases[0]["counts"], cases[1]["counts"]
    return ExplainResult(
        "padding", [path], {"size": size, "cases": cases},
        f"On a {size}x{size} input a 3x3 kernel reads the corner pixel {v0[0, 0]}x and a "
        f"centre pixel {v0[size // 2, size // 2]}x without padding ({cases[0]['n_out']}x"
        f"{cases[0]['n_out']} outputs); with p = 1 the corner is read {v1[0, 0]}x and the "
        f"output stays {size}x{size}.",
        {"padding.png": "Usage count of every input pixel for valid (f = 3), same (f = 3) and "
                        "same with an even kernel (f = 4, asymmetric padding); hatched cells "
                        "are zero padding."},
        "§4 Valid and same convolution")


# ----------------------------------------------------------------------------- stride

def explain_stride(out_dir: Path, seed: int = 0, size: int = 7, f: int = 3) -> ExplainResult:
    """MATH.md §5 (article fig. 6): the positions a 3x3 kernel visits with stride 1, 2, 3.

    Writes ``stride.png``. ``numbers``: ``strides`` [1, 2, 3] and, per stride, ``n_out``
    (from reference.conv2d_forward_steps), ``formula`` (conv_output_size), ``positions``
    (top-left corners of the windows it visited, row-major) and ``counts`` (size, size)
    (how many windows read each pixel; 0 = skipped).
    """
    from matplotlib.patches import Rectangle

    strides = [1, 2, 3]
    per = []
    for s in strides:
        counts, steps = usage_counts(size, f, 0, stride=s)
        n_out = steps.geometry.out_shape[2]
        positions = [(int(steps.rows[m, 0]), int(steps.cols[k, 0]))
                     for m in range(n_out) for k in range(n_out)]
        per.append({"stride": s, "n_out": n_out, "formula": conv_output_size(size, f, s),
                    "positions": np.array(positions), "counts": counts})
    cell = 0.42
    gap = 0.85
    mat = size * cell
    width = len(strides) * mat + (len(strides) - 1) * gap + 1.0
    out_max = max(p["n_out"] for p in per) * cell
    fig = D.new_figure(width, 1.55 + 0.45 + mat + 1.25 + out_max + 0.35)
    top = D.header(
        fig, "§5 Strided convolution: the kernel jumps s pixels (article fig. 6)",
        r"$n_{out} = \lfloor (n + 2p - f) / s \rfloor + 1$"
        rf"   with $n = {size}$, $f = {f}$, $p = 0$",
        note="numbers: how many windows read each pixel (red 0: never read); dots: window "
             "centres; outlines: the first two windows, s apart")
    vmax = max(int(p["counts"].max()) for p in per)
    x = 0.5
    for p in per:
        s, n_out = p["stride"], p["n_out"]
        y = top + 0.45
        v = D.matrix_at(fig, x, y, p["counts"], D.COUNTS, 0, vmax, cell, decimals=0,
                        title=f"stride s = {s}: {n_out * n_out} positions")
        for r, c in p["positions"]:
            v.ax.plot(c + f // 2 + 0.3, r + f // 2 - 0.3, "o", color=D.FOCUS, ms=5,
                      markeredgecolor="black", markeredgewidth=0.6, zorder=6)
        D.outline(v.ax, 0, 0, f, f, color=D.FOCUS, lw=3)
        if n_out > 1:
            D.outline(v.ax, 0, s, f, f, color=D.SECOND, lw=2.5, linestyle="--")
        zero = p["counts"] == 0
        for r, c in zip(*np.nonzero(zero)):
            v.ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor="#f6c6c6",
                                     edgecolor="#d62728", linewidth=1, zorder=2.5))
        D.text_in(fig, x + mat / 2, y + mat + 0.4,
                  rf"$n_{{out}} = \lfloor ({size} + 0 - {f}) / {s} \rfloor + 1 = {p['formula']}$",
                  fontsize=D.FORMULA_SIZE)
        out_cell = cell
        ow = n_out * out_cell
        order = np.arange(1, n_out * n_out + 1).reshape(n_out, n_out)
        D.matrix_at(fig, x + (mat - ow) / 2, y + mat + 1.25, order, D.COUNTS, 0,
                    order.max() * 4, out_cell, decimals=0,
                    title=f"output {n_out}x{n_out} (visit order)")
        x += mat + gap
    path = D.save_png(fig, out_dir / "stride.png")
    skipped = int((per[2]["counts"] == 0).sum())
    return ExplainResult(
        "stride", [path], {"size": size, "f": f, "strides": strides, "cases": per},
        f"A {f}x{f} kernel on a {size}x{size} input visits "
        + ", ".join(f"{p['n_out']}x{p['n_out']}" for p in per)
        + f" positions with stride 1, 2, 3; with s = 3 the floor leaves {skipped} pixels "
          f"never read.",
        {"stride.png": "Windows visited, pixel usage counts and the output-size formula for "
                       "stride 1, 2 and 3 (red: pixels no window reads)."},
        "§5 Strided convolution")


__all__ = ["explain_convolution", "explain_filters", "explain_image", "explain_padding",
           "explain_stride", "kernel", "usage_counts"]
