"""Figures of MATH.md §6-8: convolution over volume, the conv layer's shapes, and sparse
connections with shared parameters.

Every number drawn is computed by :mod:`clearconv.reference` (conv2d_forward_steps,
conv2d_backward) or read from the input and the model's layers; the figure code only
places it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import reference as R
from ..shapes import conv2d_output_shape, conv2d_params, dense_params
from . import _draw as D
from ._inputs import default_digit, photo, to_gray
from ._result import ExplainResult
from .basics import _busiest_crop

# ----------------------------------------------------------------------------- volume

N_IN, N_F, F = 5, 2, 3


def _volume_numbers(image: Any, seed: int) -> dict[str, Any]:
    """A 3x5x5 crop of a real photo through 2 kernels of 3x3x3 (reference.conv2d_forward_steps,
    ReLU)."""
    pic = photo(image)
    pixels = pic.pixels if pic.pixels.shape[0] == 3 else np.repeat(pic.pixels, 3, axis=0)
    r0, c0 = _busiest_crop(to_gray(pixels).astype(float), N_IN)
    a = pixels[:, r0:r0 + N_IN, c0:c0 + N_IN].astype(np.float64)
    rng = np.random.default_rng(seed)
    for _ in range(100):   # kernels whose maps have both signs, so that ReLU shows
        w = rng.integers(-1, 2, size=(N_F, 3, F, F)).astype(np.float64)
        b = rng.integers(-20, 21, size=N_F).astype(np.float64)
        steps = R.conv2d_forward_steps(a[None], w, b)
        z = steps.z
        if all((z[0, o] > 0).any() and (z[0, o] < 0).any() for o in range(N_F)):
            break
    a_out, _ = R.relu_forward(z)
    # the share of each input channel in each output: (kernel o, channel c, m, k)
    parts = np.moveaxis(steps.channel_sums[0], -1, 1)
    return {"A": a, "W": w, "b": b, "Z": z[0], "A_out": a_out[0], "channel_parts": parts,
            "crop_origin": (r0, c0), "source": pic.source,
            "shapes": {"A": (1, 3, N_IN, N_IN), "W": w.shape, "b": b.shape,
                       "Z": tuple(steps.geometry.out_shape)}}


def _draw_volume_numbers(nums: dict[str, Any], path: Path) -> Path:
    a, w, b, z, a_out = nums["A"], nums["W"], nums["b"], nums["Z"], nums["A_out"]
    parts = nums["channel_parts"]
    n_out = z.shape[-1]
    cell, zcell = 0.4, 0.5
    row_h = N_IN * cell + 0.75
    width = 13.3
    fig = D.new_figure(width, 1.6 + 1.15 + 3 * row_h + 0.6)
    top = D.header(
        fig, "§6-7 Convolution over volume: n_c channels in, one map per kernel, n_f maps out "
             "(article fig. 7, 8)",
        r"$Z[o, m, k] = \sum_c \sum_i \sum_j W[o, c, i, j]\ A[c, m + i, k + j] + b[o]$,"
        r"   $A^{[l]} = g(Z)$;   $[n, n, n_c] * [f, f, n_c] \times n_f = [n_{out}, n_{out}, n_f]$",
        note=f"A: a {N_IN}x{N_IN} crop of the {nums['source']} (rows {nums['crop_origin'][0]}.., "
             f"cols {nums['crop_origin'][1]}..); W, b: small integers (seeded); {D.STAR}")
    x_a, x_w0 = 1.0, 1.0 + N_IN * cell + 0.9
    x_w1 = x_w0 + F * cell + 0.55
    x_z = x_w1 + F * cell + 1.35
    x_act = x_z + n_out * zcell + 1.25
    y0 = top + 1.15
    w_head = (f"W: (n_f, n_c, f, f) = ({N_F}, 3, {F}, {F})\n"
              f"{N_F} kernels of [f, f, n_c] = [{F}, {F}, 3]")
    heads = [
        (x_a + N_IN * cell / 2,
         f"A[l-1]: (n_c, n, n) = (3, {N_IN}, {N_IN})\narticle [n, n, n_c] = [{N_IN}, {N_IN}, 3]"),
        ((x_w0 + x_w1 + F * cell) / 2, w_head),
        (x_z + n_out * zcell / 2,
         f"Z = W * A + b\n(n_f, n_out, n_out) = ({N_F}, {n_out}, {n_out})"),
        (x_act + n_out * zcell / 2, f"A[l] = g(Z) = ReLU(Z)\n({N_F}, {n_out}, {n_out})"),
    ]
    for x, s in heads:
        D.text_in(fig, x, y0 - 0.8, s, fontsize=D.LABEL_SIZE, weight="bold")
    wl = D.sym_limit(w)
    for c, name in enumerate("RGB"):
        y = y0 + c * row_h
        v = D.matrix_at(fig, x_a, y, a[c], D.CHANNELS[name], 0, 255, cell, decimals=0,
                        title=f"A[{c}] (channel {name})", chars=3)
        D.outline(v.ax, 0, 0, F, F, lw=3)
        D.operator(fig, x_w0 - 0.45, y + N_IN * cell / 2, "*")
        for o, x in enumerate((x_w0, x_w1)):
            D.matrix_at(fig, x, y + (N_IN - F) * cell / 2, w[o, c], D.SIGNED, -wl, wl,
                        cell, decimals=0, title=f"W[{o}, {c}]", chars=2)
    zl = D.sym_limit(z, a_out)
    zchars = max(D.max_chars(z, 0), 3)
    for o in range(N_F):
        y = y0 + 0.35 + o * (row_h * 1.45)
        vz = D.matrix_at(fig, x_z, y, z[o], D.SIGNED, -zl, zl, zcell, decimals=0,
                         title=f"Z[{o}]  (+ b[{o}] = {D.fmt_num(b[o])})", chars=zchars)
        if o == 0:
            D.outline(vz.ax, 0, 0, 1, 1, lw=3)
        D.operator(fig, x_z + n_out * zcell + 0.62, y + n_out * zcell / 2, "\u2192")
        D.text_in(fig, x_z + n_out * zcell + 0.62, y + n_out * zcell / 2 + 0.35, "g",
                  fontsize=D.LABEL_SIZE)
        D.matrix_at(fig, x_act, y, a_out[o], D.SIGNED, -zl, zl, zcell, decimals=0,
                    title=f"A[l][{o}]", chars=zchars)
    D.operator(fig, x_z - 0.7, y0 + 1.5 * row_h, "=")
    # the worked example: one output is a sum over all channels
    terms = " + ".join(f"{name}: {D.fmt_num(parts[0, c, 0, 0])}" for c, name in enumerate("RGB"))
    D.text_in(fig, width / 2, y0 + 3 * row_h - 0.1,
              f"Z[0, 0, 0] = sum over the orange windows of all 3 channels: "
              f"{terms}  + b[0]: {D.fmt_num(b[0])}  =  {D.fmt_num(z[0, 0, 0])}",
              fontsize=D.LABEL_SIZE + 1)
    return D.save_png(fig, path)


def _box(ax: Any, x: float, y: float, w: float, h: float, d: float, color: str,
         labels: tuple[str, str, str], slices: int = 0) -> None:
    """A cuboid in oblique projection: front face w x h at (x, y), depth d up and right;
    ``labels`` (width, height, depth) written along the edges; ``slices`` depth lines."""
    from matplotlib.patches import Polygon

    dx, dy = 0.55 * d, 0.4 * d
    front = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    topf = [(x, y + h), (x + w, y + h), (x + w + dx, y + h + dy), (x + dx, y + h + dy)]
    side = [(x + w, y), (x + w + dx, y + dy), (x + w + dx, y + h + dy), (x + w, y + h)]
    for pts, shade in ((side, 0.75), (topf, 0.88), (front, 1.0)):
        from matplotlib.colors import to_rgb

        rgb = tuple(min(1.0, v * shade) for v in to_rgb(color))
        ax.add_patch(Polygon(pts, closed=True, facecolor=rgb, edgecolor="black", lw=1.2))
    for t in range(1, slices):
        f = t / slices
        ax.plot([x + f * dx, x + w + f * dx], [y + h + f * dy, y + h + f * dy], color="black",
                lw=0.5, alpha=0.6)
        ax.plot([x + w + f * dx, x + w + f * dx], [y + f * dy, y + h + f * dy], color="black",
                lw=0.5, alpha=0.6)
    kw = {"fontsize": D.LABEL_SIZE, "ha": "center", "va": "center"}
    ax.text(x + w / 2, y - 0.35, labels[0], **kw)
    ax.text(x - 0.3, y + h / 2, labels[1], rotation=90, **kw)
    ax.text(x + w + dx + 0.12, y + h + dy, labels[2], **{**kw, "ha": "left"})


def _draw_volume_shapes(nums: dict[str, Any], layer_rows: list[dict[str, Any]],
                        path: Path) -> Path:
    """Figure 8: the tensors of ``Z = W * A + b``, ``A = g(Z)`` as boxes, every side labelled."""
    width, height = 13.0, 1.6 + 3.3 * len(layer_rows) + 0.2
    fig = D.new_figure(width, height)
    top = D.header(fig, "§7 The convolution layer: the shape of every tensor (article fig. 8)",
                   r"$Z^{[l]} = W^{[l]} * A^{[l-1]} + b^{[l]}$,   $A^{[l]} = g^{[l]}(Z^{[l]})$;"
                   r"   box sides: width $W$, height $H$, depth = channels")
    for r, row in enumerate(layer_rows):
        ax = D.axes_in(fig, 0.2, top + 0.1 + r * 3.3, width - 0.4, 3.2)
        ax.set_xlim(0, 26)
        ax.set_ylim(-1.3, 5.1)
        ax.set_aspect("equal")
        u = row["unit"]
        c_in, n, _ = row["A"]
        n_f, c_in_w, f, _ = row["W"]
        _, n_out, _ = row["Z"]
        x = 1.0
        _box(ax, x, 0, n * u, n * u, c_in * row["depth_unit"], "#9ecae1",
             (f"W = {n}", f"H = {n}", f"C = {c_in}"), slices=min(c_in, 16))
        ax.text(x + n * u / 2, 4.6, f"A[l-1]\n(N, {c_in}, {n}, {n})", ha="center",
                fontsize=D.LABEL_SIZE, weight="bold", va="center")
        x += n * u + c_in * row["depth_unit"] * 0.55 + 1.0
        ax.text(x, n * u / 2, "*", fontsize=24, ha="center", va="center")
        x += 0.7
        _box(ax, x, 0.5, f * u, f * u, c_in_w * row["depth_unit"], "#fdae6b",
             (f"f = {f}", f"f = {f}", f"C = {c_in_w}"), slices=min(c_in_w, 16))
        ax.text(x + f * u / 2 + 0.4, 4.6, f"W: {n_f} kernels\n({n_f}, {c_in_w}, {f}, {f})",
                ha="center", fontsize=D.LABEL_SIZE, weight="bold", va="center")
        ax.text(x + f * u + c_in_w * row["depth_unit"] * 0.55 + 0.5, 0.2, f"x {n_f}",
                fontsize=D.LABEL_SIZE + 2, ha="left")
        x += f * u + c_in_w * row["depth_unit"] * 0.55 + 2.1
        ax.text(x, n * u / 2, f"+ b ({n_f},)", fontsize=D.LABEL_SIZE + 2, ha="center",
                va="center")
        x += 1.3
        ax.text(x, n * u / 2, "=", fontsize=24, ha="center", va="center")
        x += 1.0
        for name, color, label in (("Z[l]", "#c7e9c0", "Z[l]"),
                                   ("A[l]", "#a1d99b", "A[l] = g(Z[l])")):
            _box(ax, x, 0, n_out * u, n_out * u, n_f * row["depth_unit"], color,
                 (f"W = {n_out}", f"H = {n_out}", f"C = {n_f}"), slices=min(n_f, 16))
            ax.text(x + n_out * u / 2, 4.6, f"{label}\n(N, {n_f}, {n_out}, {n_out})",
                    ha="center", fontsize=D.LABEL_SIZE, weight="bold", va="center")
            x += n_out * u + n_f * row["depth_unit"] * 0.55 + 0.9
            if name == "Z[l]":
                ax.text(x + 0.3, n_out * u / 2, "\u2192 g \u2192", fontsize=D.LABEL_SIZE + 3,
                        ha="center", va="center")
                x += 1.5
        ax.text(26, -1.1, row["caption"], ha="right", fontsize=D.LABEL_SIZE, color="#444444",
                style="italic")
    return D.save_png(fig, path)


def explain_volume(out_dir: Path, image: Any = None, seed: int = 0) -> ExplainResult:
    """MATH.md §6-7 (article fig. 7, 8): a 3-channel input, 2 kernels, a stacked output.

    Writes ``volume.png`` (every number of ``Z = W * A + b`` and ``A = ReLU(Z)`` for a real
    5x5x3 photo crop, with the per-channel shares of ``Z[0, 0, 0]``) and
    ``volume_shapes.png`` (the same layer and the first conv layer of the default digits
    CNN as labelled boxes). ``numbers``: ``A`` (3, 5, 5), ``W`` (2, 3, 3, 3), ``b`` (2,),
    ``Z`` and ``A_out`` (2, 3, 3), ``channel_parts`` (2, 3, 3, 3) (each input channel's
    share of each output, ``channel_sums`` of reference.conv2d_forward_steps: they sum,
    with b, to Z), ``shapes``, ``layers`` (the boxed layers).
    """
    from ..train.zoo import digits_cnn

    nums = _volume_numbers(image, seed)
    first = digits_cnn(rng=seed).layers[0]
    digits_in = (1, 1, 8, 8)
    layers = [
        {"A": (3, N_IN, N_IN), "W": tuple(nums["W"].shape), "Z": tuple(nums["Z"].shape),
         "unit": 0.55, "depth_unit": 0.55,
         "caption": f"the layer of volume.png: {conv2d_params(3, N_F, F)} parameters"},
        {"A": digits_in[1:], "W": tuple(first.weight.value.shape),
         "Z": conv2d_output_shape(digits_in, first.out_channels, first.kernel_size,
                                  first.stride, first.padding)[1:],
         "unit": 0.4, "depth_unit": 0.16,
         "caption": f"the first layer of the digits CNN ('same' padding): "
                    f"{conv2d_params(1, first.out_channels, first.kernel_size)} parameters"},
    ]
    files = [_draw_volume_numbers(nums, out_dir / "volume.png"),
             _draw_volume_shapes(nums, layers, out_dir / "volume_shapes.png")]
    nums["layers"] = layers
    z = nums["Z"]
    return ExplainResult(
        "volume", files, nums,
        f"A 3x{N_IN}x{N_IN} photo crop convolved with {N_F} kernels of 3x3x3 gives a "
        f"{z.shape[0]}x{z.shape[1]}x{z.shape[2]} output (NCHW {nums['shapes']['Z']}); "
        f"Z[0, 0, 0] = {D.fmt_num(z[0, 0, 0])} is the sum of the three channels' shares plus "
        f"the bias.",
        {"volume.png": "Every number of Z = W * A + b and A = ReLU(Z) for a 5x5 RGB crop and "
                       "two 3x3x3 kernels, with the channel shares of one output.",
         "volume_shapes.png": "The tensors of a conv layer as labelled boxes: the example "
                              "layer and the first layer of the digits CNN."},
        "§6-7 Convolution over volume")


# ---------------------------------------------------------------------------- sharing

WEIGHT_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")


def _factor(v: float) -> str:
    """A number as a factor of a product: negative ones in parentheses."""
    s = D.fmt_num(v)
    return f"({s})" if v < 0 else s


def sharing_edges(steps: R.Conv2dSteps) -> list[tuple[tuple[int, int], tuple[int, int],
                                                        tuple[int, int]]]:
    """Which weight joins which input pixel to which output (MATH.md §8), read off the
    windows of :func:`clearconv.reference.conv2d_forward_steps`: tap (i, j) of output
    (m, k) multiplies input pixel ``(rows[m, i] - p_top, cols[k, j] - p_left)``.

    Returns [(input (r, c), output (m, k), weight (i, j)), ...] for sample 0 in the order
    (m, k, i, j).
    """
    (p_t, _), (p_l, _) = steps.geometry.padding
    h_out, f_h = steps.rows.shape
    w_out, f_w = steps.cols.shape
    return [((int(steps.rows[m, i]) - p_t, int(steps.cols[k, j]) - p_l), (m, k), (i, j))
            for m in range(h_out) for k in range(w_out) for i in range(f_h) for j in range(f_w)]


def explain_sharing(out_dir: Path, image: Any = None, seed: int = 0) -> ExplainResult:
    """MATH.md §8 (article fig. 9): sparse connections and shared weights of a 3x3 input,
    2x2 kernel, 2x2 output, against a dense layer with the same inputs and outputs.

    Writes ``sharing.png``. ``numbers``: ``A`` (3, 3) (a real digit crop), ``W`` (2, 2),
    ``b``, ``Z`` (2, 2), ``edges`` (16 (input, output, weight) triples, :func:`sharing_edges`),
    ``dZ`` (2, 2), ``dW`` (2, 2), ``db`` (reference.conv2d_backward), ``conv_params`` and
    ``dense_params`` (shapes.conv2d_params / dense_params), ``conv_connections``,
    ``dense_connections``.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    digit, _, source = default_digit(seed)
    a = digit[2:5, 2:5].astype(np.float64)
    rng = np.random.default_rng(seed)
    w = rng.choice([-2.0, -1.0, 1.0, 2.0], size=(2, 2))
    b = float(rng.integers(-3, 4))
    steps = R.conv2d_forward_steps(a[None, None], w[None, None], np.array([b]))
    z = steps.z
    dz = rng.permutation(np.array([-2.0, -1.0, 1.0, 3.0])).reshape(2, 2)
    _, dw, db = R.conv2d_backward(dz[None, None], steps.cache, input_grad=False)
    edges = sharing_edges(steps)
    conv_p, dense_p = conv2d_params(1, 1, 2), dense_params(9, 4)
    z, dw = z[0, 0], dw[0, 0]

    width, height = 13.0, 9.4
    fig = D.new_figure(width, height)
    top = D.header(
        fig, "§8 Sparse connections and parameter sharing (article fig. 9)",
        r"$Z[m, k] = \sum_i \sum_j W[i, j]\ A[m + i, k + j] + b$;    "
        r"$dW[i, j] = \sum_m \sum_k A[m + i, k + j]\ dZ[m, k]$",
        note=f"A: the centre 3x3 of the {source}; W, b, dZ: small integers (seeded)")
    cell = 0.55
    y = top + 0.5
    x = 0.9
    D.matrix_at(fig, x, y, a, D.PIXELS, 0, 16, cell, decimals=0, title="A (3x3)", chars=2)
    D.operator(fig, x + 3 * cell + 0.4, y + 1.5 * cell, "*")
    vw = D.matrix_at(fig, x + 3 * cell + 0.8, y + 0.5 * cell, w, D.SIGNED, -2, 2, cell,
                     decimals=0, title="W (2x2)", chars=2)
    for i in range(2):
        for j in range(2):
            vw.ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=WEIGHT_COLORS[2 * i + j],
                                      edgecolor="white", lw=1, zorder=2.5))
            vw.texts[i][j].set_color("white")
    D.text_in(fig, x + 5 * cell + 1.55, y + 1.5 * cell, f"+ b ({D.fmt_num(b)})  =",
              fontsize=D.LABEL_SIZE + 3)
    zl = D.sym_limit(z)
    D.matrix_at(fig, x + 5 * cell + 2.45, y + 0.5 * cell, z, D.SIGNED, -zl, zl, cell,
                decimals=0, title="Z (2x2)", chars=3)
    # the backward of the same layer: the gradient of a shared weight is a sum
    xb = 8.0
    dzl = D.sym_limit(dz, dw)
    D.matrix_at(fig, xb, y + 0.5 * cell, dz, D.SIGNED, -dzl, dzl, cell, decimals=0,
                title="dZ (given)", chars=3)
    D.operator(fig, xb + 2 * cell + 0.45, y + 1.5 * cell, "\u2192")
    D.matrix_at(fig, xb + 2 * cell + 0.9, y + 0.5 * cell, dw, D.SIGNED, -dzl, dzl, cell,
                decimals=0, title="dW (conv2d_backward)", chars=3)
    w00 = [(src, out) for src, out, tap in edges if tap == (0, 0)]
    terms = " + ".join(f"{_factor(a[src])}\u00b7{_factor(dz[out])}" for src, out in w00)
    D.text_in(fig, xb + 2 * cell + 0.45, y + 3 * cell + 0.35,
              f"dW[0, 0] = {terms} = {D.fmt_num(dw[0, 0])}", fontsize=D.LABEL_SIZE)
    D.text_in(fig, xb + 2 * cell + 0.45, y + 3 * cell + 0.7,
              f"db = sum of dZ = {D.fmt_num(db[0])}", fontsize=D.LABEL_SIZE)

    # the two graphs
    gy = y + 3 * cell + 1.35
    gh = height - gy - 0.2
    node = {"marker": "o", "ms": 24, "markeredgecolor": "black", "zorder": 3, "ls": "none"}
    for g, dense in enumerate((False, True)):
        ax = D.axes_in(fig, 0.3 + g * 6.4, gy, 6.0, gh)
        ax.set_xlim(-1.3, 6.0)
        ax.set_ylim(-8.6, 1.7)
        in_pos = {(r, c): (0.0, -(3 * r + c)) for r in range(3) for c in range(3)}
        out_pos = {(m, k): (3.8, -1.0 - 2.0 * (2 * m + k)) for m in range(2) for k in range(2)}
        if dense:
            for src in in_pos.values():
                for dst in out_pos.values():
                    ax.plot([src[0], dst[0]], [src[1], dst[1]], color="#9a9a9a", lw=0.9)
            ax.set_title(f"dense 9 \u2192 4: {len(in_pos) * len(out_pos)} connections, "
                         f"{dense_p} parameters (36 weights + 4 biases)",
                         fontsize=D.LABEL_SIZE)
        else:
            for src, out, (i, j) in edges:
                (x0, y0), (x1, y1) = in_pos[src], out_pos[out]
                ax.plot([x0, x1], [y0, y1], color=WEIGHT_COLORS[2 * i + j], lw=2.2)
            ax.set_title(f"convolution: {len(edges)} connections, {conv_p} parameters "
                         f"(4 shared weights + 1 bias)", fontsize=D.LABEL_SIZE)
            handles = [Line2D([], [], color=WEIGHT_COLORS[2 * i + j], lw=3,
                              label=f"W[{i}, {j}] = {D.fmt_num(w[i, j])}")
                       for i in range(2) for j in range(2)]
            ax.legend(handles=handles, loc="upper center", ncol=4, fontsize=D.LABEL_SIZE - 1,
                      frameon=False, bbox_to_anchor=(0.5, 1.0), handlelength=1.5,
                      columnspacing=1.0)
        for (r, c), (px, py) in in_pos.items():
            ax.plot([px], [py], markerfacecolor="white", **node)
            ax.text(px, py, D.fmt_num(a[r, c]), ha="center", va="center", zorder=4,
                    fontsize=D.LABEL_SIZE)
            ax.text(px - 0.4, py, f"A[{r},{c}]", ha="right", va="center",
                    fontsize=D.INDEX_SIZE + 1)
        for (m, k), (px, py) in out_pos.items():
            ax.plot([px], [py], markerfacecolor="#e8e8e8", **node)
            if not dense:
                ax.text(px, py, D.fmt_num(z[m, k]), ha="center", va="center", zorder=4,
                        fontsize=D.LABEL_SIZE - 1)
            ax.text(px + 0.4, py, f"Z[{m},{k}]", ha="left", va="center",
                    fontsize=D.INDEX_SIZE + 1)
    path = D.save_png(fig, out_dir / "sharing.png")
    return ExplainResult(
        "sharing", [path],
        {"A": a, "W": w, "b": b, "Z": z, "edges": edges, "dZ": dz, "dW": dw, "db": db,
         "conv_params": conv_p, "dense_params": dense_p, "conv_connections": len(edges),
         "dense_connections": 9 * 4, "source": source},
        f"A 3x3 input and a 2x2 kernel give a 2x2 output through {len(edges)} connections "
        f"that share 4 weights ({conv_p} parameters with the bias), where a dense layer "
        f"needs 36 connections and {dense_p} parameters; dW[0, 0] = {D.fmt_num(dw[0, 0])} "
        f"sums over the 4 edges of that weight.",
        {"sharing.png": "Which kernel weight sits on which input-output edge (colours), the "
                        "dense alternative, and a shared weight's gradient as a sum."},
        "§8 Parameter sharing")


__all__ = ["explain_sharing", "explain_volume", "sharing_edges"]
