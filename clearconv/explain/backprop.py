"""Figures of MATH.md §9-11: convolution backpropagation, pooling and its backward pass.

Every number drawn is computed by :mod:`clearconv.reference` (conv2d_backward_steps,
max_pool2d_forward_steps, ...); the figure code only places it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import reference as R
from ..shapes import pool_output_size
from . import _draw as D
from ._inputs import default_digit, small_gray
from ._result import ExplainResult

# --------------------------------------------------------------------------- backward


def full_convolution_frames(steps: R.ConvInputGradientSteps) -> dict[str, np.ndarray]:
    """The frames of ``backward.gif``: dA of sample 0, input channel 0, of a layer with one
    kernel, as :func:`clearconv.reference.conv2d_input_gradient_steps` computed it
    (MATH.md §9: the rotated kernel slides over dZ padded by ``f - 1``; one position per
    pixel of dA).

    Returns ``dz_full`` (the padded dZ), ``w_rot`` (the kernel rotated 180°),
    ``positions`` (P, 2), ``products`` (P, f, f) and ``sums`` (P,) of each position, and
    ``dA`` assembled from the sums.
    """
    reach_h, reach_w, _, e_h, e_w = steps.products.shape[2:]
    positions = [(r, q) for r in range(reach_h) for q in range(reach_w)]
    sums = steps.da_pad[0, 0, :reach_h, :reach_w]
    return {"dz_full": steps.dz_full[0, 0], "w_rot": steps.w_rot[0, 0],
            "positions": np.array(positions),
            "products": steps.products[0, 0, :, :, 0].reshape(-1, e_h, e_w),
            "sums": sums.ravel(), "dA": sums.copy()}


def _backward_numbers(image: Any, seed: int, size: int) -> dict[str, Any]:
    a_prev, source, vmax = small_gray(image, size, seed)
    a_prev = a_prev.astype(np.float64)
    rng = np.random.default_rng(seed)
    for _ in range(200):   # a kernel whose output has both signs, so that g' shows
        w = rng.choice([-2.0, -1.0, 0.0, 1.0, 2.0], size=(3, 3))
        b = float(rng.integers(-5, 6))
        z, cache = R.conv2d_forward(a_prev[None, None], w[None, None], np.array([b]))
        positive = int((z > 0).sum())
        if 3 <= positive <= z.size - 3:
            break
    a, relu_cache = R.relu_forward(z)
    da = rng.choice([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0], size=z.shape)
    dz = R.relu_backward(da, relu_cache)
    g_prime = R.relu_backward(np.ones_like(z), relu_cache)   # dZ/dA = g'(Z), cell by cell
    back = R.conv2d_backward_steps(dz, cache)
    return {"A_prev": a_prev, "W": w, "b": b, "Z": z[0, 0], "A": a[0, 0], "dA": da[0, 0],
            "g_prime": g_prime[0, 0], "dZ": dz[0, 0], "dW": back.dw[0, 0],
            "db": float(back.db[0]), "dA_prev": back.dx[0, 0],
            "full": full_convolution_frames(back.input_gradient), "source": source,
            "vmax": vmax}


def _draw_backward_tensors(nums: dict[str, Any], path: Path) -> Path:
    a_prev, w, z, a, da = nums["A_prev"], nums["W"], nums["Z"], nums["A"], nums["dA"]
    gp, dz, dw, da_prev = nums["g_prime"], nums["dZ"], nums["dW"], nums["dA_prev"]
    n = a_prev.shape[0]
    cell = 0.48
    big = n * cell
    width = 15.0
    fig = D.new_figure(width, 1.75 + 2 * (big + 1.1) + 0.1)
    top = D.header(
        fig, "§9 Backpropagation through a conv layer: every tensor and its shape "
             "(article fig. 10, 11)",
        r"$Z = W * A^{[l-1]} + b$,  $A = g(Z)$;   $dZ = dA \odot g'(Z)$,  "
        r"$dW = \sum_m \sum_n A^{[l-1]}_{slice(m,n)}\, dZ[m, n]$,  $db = \sum_m \sum_n dZ[m, n]$,"
        "\n"
        r"$dA^{[l-1]} = dZ_{full} * \mathrm{rot}_{180}(W)$ (the true convolution of §3 of "
        r"$dZ$ with $W$)   (g = ReLU; shapes of dW, db, dA equal those of W, b, A)",
        note=f"A[l-1]: {nums['source']}; W, b and the incoming dA: small integers (seeded); "
             f"{D.STAR}")
    pix = D.PIXELS if nums["vmax"] == 16 else "gray"
    lim_f = D.sym_limit(z, a)
    lim_b = D.sym_limit(da, dz)
    chars = max(D.max_chars(np.concatenate([z.ravel(), dw.ravel(), da_prev.ravel()]), 0), 3)
    rows = [
        ("forward", [("A[l-1]", a_prev, pix, 0, nums["vmax"]), ("*", None),
                     ("W", w, D.SIGNED, -2, 2), (f"+ b ({D.fmt_num(nums['b'])}) =", None),
                     ("Z", z, D.SIGNED, -lim_f, lim_f), ("\u2192 g \u2192", None),
                     ("A[l] = ReLU(Z)", a, D.SIGNED, -lim_f, lim_f)]),
        ("backward", [("dA[l] (incoming)", da, D.SIGNED, -lim_b, lim_b), ("\u2299", None),
                      ("g'(Z)", gp, D.SIGNED, -1, 1), ("=", None),
                      ("dZ", dz, D.SIGNED, -lim_b, lim_b), ("\u2192", None),
                      ("dW", dw, D.SIGNED, -D.sym_limit(dw), D.sym_limit(dw)),
                      (f"db = {D.fmt_num(nums['db'])}", None),
                      ("dA[l-1]", da_prev, D.SIGNED, -D.sym_limit(da_prev),
                       D.sym_limit(da_prev))]),
    ]
    for r, (label, items) in enumerate(rows):
        y = top + 0.6 + r * (big + 1.1)
        D.text_in(fig, 0.35, y + big / 2, label, rotation=90, fontsize=D.LABEL_SIZE + 2,
                  weight="bold")
        x = 0.75
        for item in items:
            if item[1] is None:
                s = item[0]
                wid = 0.65 if len(s) <= 3 else 0.3 + 0.11 * len(s)
                D.text_in(fig, x + wid / 2, y + big / 2, s,
                          fontsize=D.LABEL_SIZE + (8 if len(s) <= 3 else 2))
                x += wid
                continue
            name, arr, cmap, lo, hi = item
            h_, w_ = arr.shape
            x += 0.25   # room for the row indices
            D.matrix_at(fig, x, y + (big - h_ * cell) / 2, arr, cmap, lo, hi, cell, decimals=0,
                        title=f"{name}\n{h_}x{w_}", chars=chars)
            x += w_ * cell + 0.2
    return D.save_png(fig, path)


def explain_backward(out_dir: Path, image: Any = None, seed: int = 0,
                     size: int = 5) -> ExplainResult:
    """MATH.md §9 (article fig. 10, 11): one conv layer forward and backward.

    A ``size`` x ``size`` input (a real digit crop), a 3x3 kernel, ReLU and an incoming
    gradient. Writes ``backward.png`` (every tensor with its shape) and ``backward.gif``
    (dA[l-1] as the padded dZ cross-correlated with the kernel rotated 180°: one frame per
    pixel of dA[l-1], size² frames). ``numbers`` (from :mod:`clearconv.reference`):
    ``A_prev``, ``W``, ``b``, ``Z``, ``A``, ``dA``, ``g_prime``, ``dZ``, ``dW``, ``db``,
    ``dA_prev`` (conv2d_backward_steps) and ``full`` (:func:`full_convolution_frames`:
    ``dz_full``, ``w_rot``, ``positions``, ``products``, ``sums``, ``dA``), ``frames``.
    """
    nums = _backward_numbers(image, seed, size)
    png = _draw_backward_tensors(nums, out_dir / "backward.png")
    full = nums["full"]
    dz, w, dz_full, w_rot = nums["dZ"], nums["W"], full["dz_full"], full["w_rot"]
    f = w.shape[0]
    n = nums["A_prev"].shape[0]
    cell = 0.44
    hp = dz_full.shape[0]
    lim = D.sym_limit(dz_full, full["products"], full["sums"])
    chars = max(D.max_chars(np.concatenate([full["products"].ravel(), full["sums"]]), 0), 3)
    width = 0.7 + hp * cell + 0.9 + f * cell + 0.7 + f * cell + 1.0 + n * cell + 0.5
    width = max(width, 12.5)
    below = (hp - f) * cell / 2 + f * cell + 0.75 + 0.8 * f * cell
    fig = D.new_figure(width, 1.75 + 0.6 + max(hp * cell, below) + 0.3)
    top = D.header(
        fig, "§9 dA[l-1]: dZ padded by f - 1 ('full'), cross-correlated with the kernel "
             "rotated 180° (article fig. 11)",
        r"$dA^{[l-1]}[r, q] = \sum_i \sum_j W_{rot}[i, j]\ dZ_{full}[r + i,\ q + j]$,"
        r"   $W_{rot}[i, j] = W[f-1-i,\ f-1-j]$,   $dZ_{full}$ = dZ padded by $f - 1$",
        note="each frame: one pixel of dA[l-1]; the last one equals conv2d_backward's dA")
    y = top + 0.6
    x_in = 0.7
    labels = list(range(-(f - 1), hp - (f - 1)))
    v_in = D.matrix_at(fig, x_in, y, dz_full, D.SIGNED, -lim, lim, cell, decimals=0,
                       title=f"dZ ({dz.shape[0]}x{dz.shape[1]}) padded by f - 1 = {f - 1}",
                       row_labels=labels, col_labels=labels, chars=chars)
    D.shade_padding(v_in.ax, dz_full.shape, ((f - 1, f - 1), (f - 1, f - 1)))
    xk = x_in + hp * cell + 0.9
    ym = y + (hp - f) * cell / 2
    D.operator(fig, xk - 0.45, ym + f * cell / 2, "\u2299")
    D.matrix_at(fig, xk, ym, w_rot, D.SIGNED, -2, 2, cell, decimals=0,
                title="W rotated 180°", col_labels=[], row_labels=[], chars=chars)
    D.matrix_at(fig, xk, ym + f * cell + 0.75, w, D.SIGNED, -2, 2, cell * 0.8, decimals=0,
                title="W before rotation", col_labels=[], row_labels=[], chars=chars,
                title_size=9)
    xp = xk + f * cell + 0.7
    D.operator(fig, xp - 0.35, ym + f * cell / 2, "=")
    v_prod = D.matrix_at(fig, xp, ym, np.zeros((f, f)), D.SIGNED, -lim, lim, cell, decimals=0,
                         title="products", col_labels=[], row_labels=[], chars=chars)
    sum_text = D.text_in(fig, xp + f * cell / 2, ym + f * cell + 0.35, "",
                         fontsize=D.LABEL_SIZE + 1)
    xo = xp + f * cell + 1.0
    D.operator(fig, xo - 0.5, ym + f * cell / 2, "\u2192")
    da_full = full["dA"]
    v_out = D.matrix_at(fig, xo, y + (hp - n) * cell / 2, da_full, D.SIGNED, -lim, lim, cell,
                        decimals=0, title=f"dA[l-1] ({n}x{n})", chars=chars,
                        shown=np.zeros(da_full.shape, bool))
    win = D.outline(v_in.ax, 0, 0, f, f)
    cur = D.outline(v_out.ax, 0, 0, 1, 1)
    positions = full["positions"]

    def draw(t: int) -> None:
        r, q = positions[t]
        win.set_xy((q - 0.5, r - 0.5))
        cur.set_xy((q - 0.5, r - 0.5))
        v_prod.update(full["products"][t])
        done = np.zeros(da_full.shape, bool)
        done.ravel()[:t + 1] = True
        v_out.update(da_full, done)
        sum_text.set_text(f"sum = {D.fmt_num(full['sums'][t])} = dA[l-1][{r}, {q}]")

    gif = out_dir / "backward.gif"
    frames = D.save_gif(fig, gif, len(positions), draw,
                        [*v_prod.artists(), *v_out.artists(), win, cur, sum_text],
                        frame_ms=700, last_ms=3000)
    nums["frames"] = frames
    return ExplainResult(
        "backward", [png, gif], nums,
        f"A {n}x{n} input, a 3x3 kernel and ReLU give a {nums['Z'].shape[0]}x"
        f"{nums['Z'].shape[1]} output; backward gives dW (3x3), db = {D.fmt_num(nums['db'])} "
        f"and dA[l-1] ({n}x{n}), whose {frames} pixels are the {frames} steps of the full "
        f"convolution of dZ with the rotated kernel.",
        {"backward.png": "Forward (A[l-1], W, b, Z, A) and backward (dA, g'(Z), dZ, dW, db, "
                         "dA[l-1]) tensors of one conv layer with their shapes.",
         "backward.gif": f"{frames} frames: the rotated kernel slides over the zero-padded dZ "
                         f"and each sum of products fills one pixel of dA[l-1]."},
        "§9 Convolution backpropagation")


# ---------------------------------------------------------------------------- pooling

def explain_pooling(out_dir: Path, image: Any = None, seed: int = 0) -> ExplainResult:
    """MATH.md §10 (article fig. 12): max and average pooling (2x2 windows, stride 2) of a
    real 8x8 digit.

    Writes ``pooling.png``. ``numbers``: ``A`` (8, 8), ``max`` and ``argmax`` (4, 4, 2)
    (where each max came from) from reference.max_pool2d_forward_steps, ``avg`` (4, 4)
    from reference.avg_pool2d_forward, ``f``, ``s``, ``n_out``.
    """
    if image is None:
        a, _, source = default_digit(seed)
        vmax = 16
    else:
        a, source, vmax = small_gray(image, 8, seed)
    a = a.astype(np.float64)
    f = s = 2
    max_steps = R.max_pool2d_forward_steps(a[None, None], f, s)
    av, _ = R.avg_pool2d_forward(a[None, None], f, s)
    mx, av = max_steps.z[0, 0], av[0, 0]
    where = max_steps.argmax[0, 0]
    n, n_out = a.shape[0], mx.shape[0]
    cell = 0.44
    width = 0.7 + n * cell + 1.2 + 2 * (n_out * 0.6 + 1.2) + 0.3
    fig = D.new_figure(max(width, 11.5), 1.7 + 0.55 + n * cell + 0.35)
    top = D.header(
        fig, "§10 Pooling: max and average over 2x2 windows, stride 2 (article fig. 12)",
        r"max: $Z[m, k] = \max_{i, j < f} A[m s + i,\ k s + j]$;   "
        r"average: $Z[m, k] = \frac{1}{f^2} \sum_i \sum_j A[m s + i,\ k s + j]$;   "
        rf"$n_{{out}} = \lfloor ({n} + 0 - {f}) / {s} \rfloor + 1 = {n_out}$",
        note=f"A: {source}; orange: the maximum of each window (the first one on ties)")
    pix = D.PIXELS if vmax == 16 else "gray"
    y = top + 0.55
    x = 0.7 + (max(width, 11.5) - width) / 2
    v = D.matrix_at(fig, x, y, a, pix, 0, vmax, cell, decimals=0, title=f"A ({n}x{n})", chars=3)
    for b in range(1, n_out):
        v.ax.axhline(b * f - 0.5, color="black", lw=2.2)
        v.ax.axvline(b * f - 0.5, color="black", lw=2.2)
    for r, c in where.reshape(-1, 2):
        D.outline(v.ax, r, c, 1, 1, lw=2.5)
    x += n * cell + 1.2
    ocell = 0.6
    yo = y + (n * cell - n_out * ocell) / 2
    D.operator(fig, x - 0.6, yo + n_out * ocell / 2, "\u2192")
    for arr, title in ((mx, "max pooling"), (av, "average pooling\n(the same windows)")):
        D.matrix_at(fig, x, yo, arr, pix, 0, vmax, ocell, decimals=2,
                    title=f"{title}\n({n_out}x{n_out})", chars=max(2, D.max_chars(arr, 2)))
        x += n_out * ocell + 1.2
    path = D.save_png(fig, out_dir / "pooling.png")
    best = tuple(int(i) for i in np.unravel_index(int(np.argmax(av)), av.shape))
    return ExplainResult(
        "pooling", [path],
        {"A": a, "max": mx, "avg": av, "argmax": where, "f": f, "s": s, "n_out": n_out,
         "source": source},
        f"An {n}x{n} image ({source}) pooled with 2x2 windows and stride 2 gives "
        f"{n_out}x{n_out} maps: max keeps each window's largest value, average its mean "
        f"(e.g. window {best}: max {D.fmt_num(mx[best])}, mean {D.fmt_num(av[best])}).",
        {"pooling.png": "The 2x2 windows of a digit, each window's maximum marked, and the "
                        "max-pooled and average-pooled 4x4 results."},
        "§10 Pooling")


def explain_pooling_backward(out_dir: Path, image: Any = None, seed: int = 0) -> ExplainResult:
    """MATH.md §11 (article fig. 13): the max-pooling mask and the routed gradient.

    A tie-free 4x4 input (a seeded permutation of 1..16) through three cases: max pooling
    2x2/stride 2 (windows apart), max pooling 2x2/stride 1 (overlapping windows: a pixel
    can win several windows and its gradients add up) and average pooling 2x2/stride 2
    (every cell gets dZ / f²). Writes ``pooling_backward.png``. ``numbers``, all from
    :mod:`clearconv.reference`: ``A`` and, per case in ``cases``, ``name``, ``f``, ``s``,
    ``Z``, ``argmax`` (H_out, W_out, 2) (the mask, max_pool2d_forward_steps), ``wins``
    (4, 4) (how many windows each pixel won), ``share`` (4, 4) (average: each cell's share
    of its window's dZ), ``dZ`` and ``dA`` (max_pool2d_backward_steps /
    avg_pool2d_backward).
    """
    rng = np.random.default_rng(seed)
    a = rng.permutation(np.arange(1, 17)).reshape(4, 4).astype(np.float64)
    cases = []
    for name, kind, f, s in (("max, windows apart", "max", 2, 2),
                             ("max, overlapping windows", "max", 2, 1),
                             ("average", "avg", 2, 2)):
        n_out = pool_output_size(4, f, s)
        dz = rng.integers(1, 10, size=(n_out, n_out)).astype(np.float64)
        if kind == "max":
            steps = R.max_pool2d_forward_steps(a[None, None], f, s)
            z, where = steps.z, steps.argmax[0, 0]
            da = R.max_pool2d_backward_steps(dz[None, None], steps.cache).dx[0, 0]
            # every window sends a gradient of 1 to its maximum: the windows each pixel won
            wins = R.max_pool2d_backward(np.ones_like(z), steps.cache)[0, 0]
            share = None
        else:
            z, cache = R.avg_pool2d_forward(a[None, None], f, s)
            da = R.avg_pool2d_backward(dz[None, None], cache)[0, 0]
            # every window sends a gradient of 1, shared out: what each cell gets of it
            share = R.avg_pool2d_backward(np.ones_like(z), cache)[0, 0]
            where, wins = None, None
        cases.append({"name": name, "kind": kind, "f": f, "s": s, "Z": z[0, 0],
                      "argmax": where, "wins": wins, "share": share, "dZ": dz, "dA": da})

    cell = 0.44
    widest = max(c["Z"].shape[0] for c in cases) * cell
    width = 0.75 + 3 * 4 * cell + 2 * widest + 0.75 + 0.9 + 0.9 + 0.75 + 0.4 + 2.5
    row_h = 4 * cell + 1.15
    fig = D.new_figure(width, 1.75 + 3 * row_h + 0.1)
    top = D.header(
        fig, "§11 Pooling backward: the mask routes each gradient to its window's maximum "
             "(article fig. 13)",
        r"max: $dA[window(m, k)]\ {+}{=}\ dZ[m, k] \cdot mask(m, k)$"
        r"   (overlapping windows add up);"
        r"   average: every cell of the window gets $dZ[m, k] / f^2$",
        note="A: a seeded permutation of 1..16 (no ties); dZ: small integers; orange: the "
             "mask (the argmax stored by the forward pass)")
    lim = max(float(np.abs(c["dA"]).max()) for c in cases)
    for r, case in enumerate(cases):
        y = top + 0.6 + r * row_h
        n_out = case["Z"].shape[0]
        D.text_in(fig, 0.3, y + 2 * cell, f"{case['name']}\nf = {case['f']}, s = {case['s']}",
                  rotation=90, fontsize=D.LABEL_SIZE, weight="bold")
        x = 0.75
        v = D.matrix_at(fig, x, y, a, D.PIXELS, 0, 20, cell, decimals=0, title="A (4x4)",
                        chars=2)
        if case["argmax"] is not None:
            for rr, cc in case["argmax"].reshape(-1, 2):
                D.outline(v.ax, rr, cc, 1, 1, lw=2.5)
        else:
            for b in (1.5,):
                v.ax.axhline(b, color="black", lw=2.2)
                v.ax.axvline(b, color="black", lw=2.2)
        x += 4 * cell + 0.75
        yo = y + (4 - n_out) * cell / 2
        D.operator(fig, x - 0.4, yo + n_out * cell / 2, "\u2192")
        D.matrix_at(fig, x, yo, case["Z"], D.PIXELS, 0, 20, cell, decimals=2,
                    title=f"Z ({n_out}x{n_out})", chars=max(2, D.max_chars(case["Z"], 2)))
        x += n_out * cell + 0.9
        if case["kind"] == "max":
            D.matrix_at(fig, x, y, case["wins"], D.COUNTS, 0, 4, cell, decimals=0,
                        title="mask: windows won", chars=2)
        else:
            D.matrix_at(fig, x, y, case["share"], D.COUNTS, 0, 1, cell, decimals=2,
                        title="share 1/f² of each window", chars=4)
        x += 4 * cell + 0.9
        D.matrix_at(fig, x, yo, case["dZ"], D.SIGNED, -lim, lim, cell, decimals=0,
                    title=f"dZ ({n_out}x{n_out})", chars=2)
        x += n_out * cell + 0.75
        D.operator(fig, x - 0.4, yo + n_out * cell / 2, "\u2192")
        vd = D.matrix_at(fig, x, y, case["dA"], D.SIGNED, -lim, lim, cell, decimals=2,
                         title="dA (4x4)", chars=max(2, D.max_chars(case["dA"], 2)))
        if case["argmax"] is not None:
            for rr, cc in case["argmax"].reshape(-1, 2):
                D.outline(vd.ax, rr, cc, 1, 1, lw=2.5)
        x += 4 * cell + 0.4
        if case["kind"] == "max" and case["wins"].max() > 1:
            rr, cc = np.unravel_index(int(np.argmax(case["wins"])), case["wins"].shape)
            won = [tuple(p) for p in np.argwhere((case["argmax"] == (rr, cc)).all(-1))]
            terms = " + ".join(D.fmt_num(case["dZ"][p]) for p in won)
            note = (f"A[{rr}, {cc}] = {D.fmt_num(a[rr, cc])} wins\n{len(won)} windows:\n"
                    f"dA = {terms}\n= {D.fmt_num(case['dA'][rr, cc])}")
        elif case["kind"] == "max":
            note = "each window sends\nits dZ to one pixel;\nthe other 3 get 0"
        else:
            note = (f"dZ[0, 0] = {D.fmt_num(case['dZ'][0, 0])}\nspread over 4 cells:\n"
                    f"{D.fmt_num(case['dZ'][0, 0])} / 4 = {D.fmt_num(case['dA'][0, 0])} each")
        D.text_in(fig, x + 0.05, y + 2 * cell, note, ha="left", fontsize=D.LABEL_SIZE)
    path = D.save_png(fig, out_dir / "pooling_backward.png")
    over = cases[1]
    return ExplainResult(
        "pooling-backward", [path], {"A": a, "cases": cases},
        f"Max pooling sends each dZ to the one pixel its mask marks (window maxima of a "
        f"4x4 input); with overlapping 2x2 windows (stride 1) pixel "
        f"{tuple(int(v) for v in np.unravel_index(int(np.argmax(over['wins'])), (4, 4)))} "
        f"wins {int(over['wins'].max())} windows and sums their gradients; average pooling "
        f"spreads dZ / 4.",
        {"pooling_backward.png": "The argmax mask and the gradient it routes for max pooling "
                                 "(windows apart, then overlapping), and the even spread of "
                                 "average pooling."},
        "§11 Pooling backward")


__all__ = ["explain_backward", "explain_pooling", "explain_pooling_backward",
           "full_convolution_frames"]
