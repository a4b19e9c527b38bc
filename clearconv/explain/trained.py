"""The ``model`` topic: a trained CNN seen from inside (MATH.md §1 and §7-11 at work).

Its learned first-layer kernels, the feature maps of one input through every layer,
the training curves, the confusion matrix on the test split and saliency maps: the
gradient of the predicted class score with respect to the input pixels, computed by
back-propagating through the model (``Sequential.backward``), as Simonyan et al. (2013)
define it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..data import DIGITS_MAX_VALUE, load_digits, to_float
from ..errors import ClearConvError
from ..layers import Conv2D, Dropout
from ..train.sequential import History, Sequential, load
from . import _draw as D
from ._inputs import load_picture, resize
from ._result import ExplainResult

DIGITS_SHAPE = (1, 8, 8)
#: at most this many channels of a layer are drawn
MAX_CHANNELS = 32
TILES_PER_ROW = 16


def train_default(seed: int = 0, epochs: int = 6) -> tuple[Sequential, History, float]:
    """The default digits CNN trained on the embedded train split (Adam, batch 32, seeded).

    Returns the model, its History (with validation on the test split) and the seconds
    training took.
    """
    from ..train.zoo import digits_cnn

    x, y = load_digits("train")
    xt, yt = load_digits("test")
    model = digits_cnn(rng=seed)
    t0 = time.perf_counter()
    history = model.fit(to_float(x, max_value=DIGITS_MAX_VALUE), y, epochs=epochs, batch_size=32,
                        validation_data=(to_float(xt, max_value=DIGITS_MAX_VALUE), yt),
                        verbose=0, seed=seed)
    return model, history, time.perf_counter() - t0


def _resolve_model(model: Any, seed: int, epochs: int
                   ) -> tuple[Sequential, History | None, str]:
    if model is None:
        m, history, seconds = train_default(seed, epochs)
        return m, history, (f"the default digits CNN, trained here for {epochs} epochs "
                            f"({seconds:.1f} s, seed {seed})")
    if isinstance(model, Sequential):
        return model, None, "the given model"
    path = Path(model)
    if not path.is_file():
        raise ClearConvError(f"model file not found: {path}")
    return load(str(path)), None, f"the model {path.name}"


class _TestSet:
    """The test split the model topic draws from: images in [0, 1], labels, class names."""

    def __init__(self, name: str, x: np.ndarray, y: np.ndarray, classes: tuple[str, ...],
                 source: str) -> None:
        self.name, self.x, self.y, self.classes, self.source = name, x, y, classes, source


def _test_set(model: Sequential, shape: tuple[int, ...], dataset: str | None,
              data_dir: str | None, image: Any) -> _TestSet | None:
    """The model's own dataset's test split: ``dataset`` if given, else the one the model
    file says it was trained on, else the embedded digits for an (1, 8, 8) model. None
    when there is none and an image is given; an error naming the fix otherwise."""
    name = dataset or model.trained_on or ("digits" if shape == DIGITS_SHAPE else None)
    if name is None:
        if image is not None:
            return None
        raise ClearConvError(
            f"the model takes {shape} inputs and its file does not say which dataset it was "
            f"trained on: pass --dataset NAME (and --data-dir D) so that explain shows its "
            f"own test images, or --image PATH for one picture")
    if name == "digits":
        xt, yt = load_digits("test")
        ds = _TestSet("digits", to_float(xt, max_value=DIGITS_MAX_VALUE), yt,
                      tuple(str(i) for i in range(10)), "the embedded digits' test split")
    else:
        from ..data import load_dataset

        loaded = load_dataset(name, data_dir)
        ds = _TestSet(name, loaded.x_test, loaded.y_test, tuple(loaded.classes),
                      f"the test split of {loaded.source}")
    if tuple(ds.x.shape[1:]) != shape:
        raise ClearConvError(f"the model takes {shape} inputs, {name}'s images are "
                             f"{tuple(ds.x.shape[1:])}: pass the --dataset it was trained on")
    return ds


def _input_for(model_shape: tuple[int, ...], image: Any, seed: int,
               test: _TestSet | None = None) -> tuple[np.ndarray, str, int | None]:
    """One input of the model's shape (C, H, W) as float in [0, 1], its source, its label:
    the image given, else a test image of the model's dataset picked by ``seed``."""
    c, h, w = model_shape
    if image is not None:
        pic = load_picture(image, mode="L" if c == 1 else "RGB")
        pix = resize(pic.pixels, h, w)
        return pix.astype(np.float32) / 255, f"{pic.source} resized to {w}x{h}", None
    if test is not None:
        idx = int(np.random.default_rng(seed).integers(len(test.x)))
        label = int(test.y[idx])
        return (test.x[idx].astype(np.float32), f"{test.name} test image #{idx} (a "
                f"'{test.classes[label]}')", label)
    x, y = load_digits("test")
    idx = int(np.random.default_rng(seed).integers(len(x)))
    digit = x[idx]
    if (c, h, w) != DIGITS_SHAPE:
        digit = np.repeat(resize((digit * 15).astype(np.uint8), h, w) // 15, c, axis=0)
    return (digit.astype(np.float32) / DIGITS_MAX_VALUE,
            f"embedded test digit #{idx} (a '{y[idx]}')", int(y[idx]))


def _with_caches(model: Sequential, x: np.ndarray) -> np.ndarray:
    """Forward pass that keeps every layer's cache for backward, with dropout off
    (its ``p`` is set to 0 for the pass, so it is the identity both ways)."""
    saved = [(layer, layer.p) for layer in model.layers if isinstance(layer, Dropout)]
    try:
        for layer, _ in saved:
            layer.p = 0.0
        return model.forward(x, training=True)
    finally:
        for layer, p in saved:
            layer.p = p


def saliency(model: Sequential, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The gradient of each sample's predicted class score (logit) with respect to its pixels.

    Forward with caches, then ``model.backward`` of a one-hot ``dL/dlogits`` (one 1 per
    row, at the predicted class). Returns (gradients (N, C, H, W), predicted classes (N,),
    softmax probabilities (N, K)). The model's parameter gradients are zeroed afterwards.
    """
    from ..functional import softmax_forward

    logits = _with_caches(model, x)
    pred = logits.argmax(axis=1)
    dout = np.zeros_like(logits)
    dout[np.arange(len(pred)), pred] = 1
    grads = model.backward(dout)
    model.zero_grad()
    probs = softmax_forward(logits, axis=1)[0]
    return np.asarray(grads), pred, probs


def _strip_cols(size: int) -> int:
    """Values per row when a vector is drawn as a strip of cells."""
    return min(size, 64 if size <= 256 else 128)


def _mosaic(maps: np.ndarray, tile: int) -> np.ndarray:
    """Channels (C, h, w) as one image: TILES_PER_ROW tiles per row, each resized (nearest)
    to tile x tile, one NaN pixel between tiles."""
    c, h, w = maps.shape
    ri = np.arange(tile) * h // tile
    ci = np.arange(tile) * w // tile
    rows = -(-c // TILES_PER_ROW)
    cols = min(c, TILES_PER_ROW)
    out = np.full((rows * (tile + 1) - 1, cols * (tile + 1) - 1), np.nan)
    for k in range(c):
        r, q = divmod(k, TILES_PER_ROW)
        out[r * (tile + 1):r * (tile + 1) + tile, q * (tile + 1):q * (tile + 1) + tile] = \
            maps[k][np.ix_(ri, ci)]
    return out


def _draw_features(model: Sequential, x: np.ndarray, source: str, outs: list[np.ndarray],
                   path: Path) -> Path:
    from matplotlib import colormaps
    from matplotlib.patches import Rectangle

    names = [f"{i} {type(layer).__name__}" for i, layer in enumerate(model.layers)]
    rows: list[tuple[str, np.ndarray | None, str]] = [("input", x[0], "input")]
    rows += [(n, o[0], "layer") for n, o in zip(names, outs)]
    ax_w = 11.0
    pitch = ax_w / TILES_PER_ROW
    heights = []
    for _, a, _ in rows:
        if a.ndim == 3:
            tiles = min(a.shape[0], MAX_CHANNELS)
            heights.append(-(-tiles // TILES_PER_ROW) * pitch)
        else:
            cols = _strip_cols(a.size)
            heights.append(min(1.0, max(0.22, -(-a.size // cols) * ax_w / cols)))
    heights[-1] = 1.5   # the output: a bar chart
    gap = 0.45
    fig = D.new_figure(ax_w + 4.0, 1.6 + sum(heights) + gap * len(rows) + 0.3)
    top = D.header(fig, "The feature maps of one input through every layer of the model",
                   r"$A^{[l]} = g(W^{[l]} * A^{[l-1]} + b^{[l]})$, pooling, flatten, dense:"
                   r" each row is one layer's output $A^{[l]}$ (channels side by side)",
                   note=f"input: {source}; colours: red > 0 > blue, scaled per layer "
                        f"(the number on the right is the layer's max |value|); {D.STAR}")
    y = top + 0.25
    cm = colormaps[D.SIGNED].with_extremes(bad="white")
    for (name, a, kind), h in zip(rows, heights):
        shape = "(" + ", ".join(str(s) for s in a.shape) + ")"
        D.text_in(fig, 1.25, y + h / 2, f"{name}\n{shape}", fontsize=D.LABEL_SIZE - 1,
                  ha="center")
        ax = D.axes_in(fig, 2.5, y, ax_w, h)
        last = (name, a) == (rows[-1][0], rows[-1][1]) and a.ndim == 1
        if last:
            ax.set_axis_on()
            k = a.size
            ax.bar(np.arange(k), a, color=["#d62728" if v == a.max() else "#9ecae1" for v in a])
            ax.set_xticks(np.arange(k))
            ax.set_xlim(-0.5, k - 0.5)
            ax.tick_params(labelsize=D.INDEX_SIZE + 1)
            ax.set_ylabel("logit", fontsize=D.LABEL_SIZE - 1)
            ax.axhline(0, color="black", lw=0.8)
            ax.set_xlabel(f"class (predicted: {int(a.argmax())})", fontsize=D.LABEL_SIZE - 1)
        elif a.ndim == 3:
            shown = a[:MAX_CHANNELS]
            tile = max(8, max(shown.shape[1:]))
            if kind == "input" and shown.shape[0] == 3:
                ax.imshow(shown.transpose(1, 2, 0), vmin=0, vmax=1, interpolation="nearest")
                ax.set_anchor("W")
            elif kind == "input":
                ax.imshow(np.ma.masked_invalid(_mosaic(shown, tile)), cmap=D.PIXELS, vmin=0,
                          vmax=1, interpolation="nearest")
                ax.set_anchor("W")
                ax.add_patch(Rectangle((-0.5, -0.5), tile, tile, fill=False, lw=1,
                                       edgecolor="#666666"))
            else:
                mos = _mosaic(shown, tile)
                lim = D.sym_limit(shown)
                ax.imshow(np.ma.masked_invalid(mos), cmap=cm, vmin=-lim, vmax=lim,
                          interpolation="nearest")
                ax.set_anchor("W")
                extra = f"\n{MAX_CHANNELS} of {a.shape[0]}\nshown" \
                    if a.shape[0] > MAX_CHANNELS else ""
                D.text_in(fig, 2.5 + ax_w + 0.6, y + h / 2, f"{lim:.3g}{extra}",
                          fontsize=D.LABEL_SIZE - 1, ha="center")
        else:
            cols = _strip_cols(a.size)
            strip = np.full(-(-a.size // cols) * cols, np.nan)
            strip[:a.size] = a
            lim = D.sym_limit(a)
            ax.imshow(np.ma.masked_invalid(strip.reshape(-1, cols)), cmap=cm, vmin=-lim,
                      vmax=lim, interpolation="nearest", aspect="auto")
            D.text_in(fig, 2.5 + ax_w + 0.6, y + h / 2, f"{lim:.3g}",
                      fontsize=D.LABEL_SIZE - 1, ha="center")
        y += h + gap
    return D.save_png(fig, path)


def _draw_kernels(weight: np.ndarray, layer_index: int, path: Path) -> Path:
    c_out, c_in, kh, kw = weight.shape
    shown = min(c_out, MAX_CHANNELS)
    per_row = min(shown, 8)
    n_rows = -(-shown // per_row)
    cell = 0.36 if kh <= 5 else 1.8 / kh
    kernel_w = kw * cell
    block_h = c_in * kh * cell + 0.55
    width = max(8.0, per_row * (kernel_w + 0.55) + 2.2)
    fig = D.new_figure(width, 1.55 + n_rows * block_h + 0.3)
    top = D.header(fig, f"Learned kernels of the first conv layer (layer {layer_index}): "
                        f"W ({c_out}, {c_in}, {kh}, {kw})",
                   r"$Z[o, m, k] = \sum_c \sum_i \sum_j W[o, c, i, j]\ A[c, m + i, k + j] + b[o]$"
                   r"   (§7): each W[o] is one feature detector",
                   note="red > 0 > blue, one colour scale for all kernels"
                        + (f"; the first {shown} of {c_out}" if shown < c_out else ""))
    lim = D.sym_limit(weight[:shown])
    image = None
    for o in range(shown):
        r, q = divmod(o, per_row)
        x = 0.6 + q * (kernel_w + 0.55)
        for c in range(c_in):
            y = top + 0.3 + r * block_h + c * kh * cell
            v = D.matrix_at(fig, x, y, weight[o, c], D.SIGNED, -lim, lim, cell, numbers=False,
                            col_labels=[], row_labels=[],
                            title=f"W[{o}]" if c == 0 else None, title_size=10)
            image = v.image
    cax = D.axes_in(fig, width - 1.2, top + 0.3, 0.18, n_rows * block_h - 0.55, frame=True)
    cb = fig.colorbar(image, cax=cax)
    cb.ax.tick_params(labelsize=D.INDEX_SIZE + 1)
    return D.save_png(fig, path)


def _draw_curves(history: History | dict[str, list[float]], path: Path, title_note: str,
                 val_label: str = "test") -> Path:
    fig = D.new_figure(11.0, 4.9)
    top = D.header(fig, "Training curves: mean softmax cross-entropy and accuracy per epoch",
                   r"$L = -\frac{1}{N}\sum_n \log\ \mathrm{softmax}(z_n)_{y_n}$,"
                   r"   accuracy = share of $\arg\max_k z_{n,k} = y_n$", note=title_note)
    h = history.history if isinstance(history, History) else history
    epochs = np.arange(1, len(h["loss"]) + 1)
    for i, (key, label) in enumerate((("loss", "loss"), ("accuracy", "accuracy"))):
        ax = D.axes_in(fig, 0.9 + i * 5.3, top + 0.2, 4.4, 4.9 - top - 0.85, frame=True)
        ax.plot(epochs, h[key], "o-", label=f"train {label}", color="#1f77b4")
        if f"val_{key}" in h:
            ax.plot(epochs, h[f"val_{key}"], "s--", label=f"{val_label} {label}",
                    color="#ff7f0e")
        ax.set_xlabel("epoch", fontsize=D.LABEL_SIZE)
        ax.set_ylabel(label, fontsize=D.LABEL_SIZE)
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=D.LABEL_SIZE - 1)
    return D.save_png(fig, path)


def _draw_confusion(cm: np.ndarray, accuracy: float, n: int, path: Path,
                    source: str = "the test split", classes: tuple[str, ...] = ()) -> Path:
    k = cm.shape[0]
    cell = 0.5 if n < 1000 else 0.62
    width = max(8.5, k * cell + 3.0)
    named = classes and any(c != str(i) for i, c in enumerate(classes))
    note = ("classes: " + ", ".join(f"{i} {c}" for i, c in enumerate(classes))) if named else None
    fig = D.new_figure(max(width, 11.0 if named else width),
                       2.0 + 0.55 + k * cell + 0.35 + (0.3 if named else 0))
    top = D.header(fig, f"Confusion matrix on {source}",
                   "row = true class, column = predicted class\n"
                   rf"accuracy = trace / N = {int(np.trace(cm))} / {n} = {accuracy:.3f}",
                   note=note)
    left = (fig.get_size_inches()[0] - k * cell) / 2
    v = D.matrix_at(fig, left, top + 0.5, cm, D.COUNTS, 0, float(cm.max()), cell, decimals=0)
    v.ax.tick_params(labelsize=D.LABEL_SIZE, labelcolor="black")
    v.ax.set_xlabel("predicted class", fontsize=D.LABEL_SIZE)
    v.ax.xaxis.set_label_position("top")
    v.ax.set_ylabel("true class", fontsize=D.LABEL_SIZE)
    return D.save_png(fig, path)


def _draw_saliency(x: np.ndarray, grads: np.ndarray, labels: list[int | None],
                   pred: np.ndarray, probs: np.ndarray, path: Path) -> Path:
    n = len(x)
    size = 1.05 if n > 4 else 2.4
    width = max(11.5, n * (size + 0.2) + 1.6)
    left = (width - n * (size + 0.2) + 0.2) / 2
    fig = D.new_figure(width, 1.6 + 2 * (size + 0.6) + 0.1)
    top = D.header(fig, "Saliency: the gradient of the predicted class score with respect to "
                        "the input",
                   r"$S_c(A^{[0]}) = z_c$,   saliency $= \partial z_c / \partial A^{[0]}$"
                   r"   by backpropagation through every layer (§9, §11)",
                   note="top: the input (red title: a mistake); bottom: the gradient (red: "
                        "brighter pixels would raise the score, blue: lower it)")
    for i in range(n):
        xi = left + i * (size + 0.2)
        ax = D.axes_in(fig, xi, top + 0.45, size, size, frame=True)
        img = x[i].transpose(1, 2, 0) if x[i].shape[0] == 3 else x[i, 0]
        ax.imshow(img, cmap=None if x[i].shape[0] == 3 else D.PIXELS, vmin=0, vmax=1,
                  interpolation="nearest")
        true = "" if labels[i] is None else f"true {labels[i]}, "
        wrong = labels[i] is not None and labels[i] != pred[i]
        ax.set_title(f"{true}pred {pred[i]}\np = {probs[i, pred[i]]:.2f}",
                     fontsize=D.INDEX_SIZE + 1, color="#d62728" if wrong else "black",
                     weight="bold" if wrong else "normal")
        ax2 = D.axes_in(fig, xi, top + 0.45 + size + 0.35, size, size, frame=True)
        for a_ in (ax, ax2):
            a_.set_xticks([])
            a_.set_yticks([])
        g = grads[i].sum(axis=0)
        lim = D.sym_limit(g)
        ax2.imshow(g, cmap=D.SIGNED, vmin=-lim, vmax=lim, interpolation="nearest")
    D.text_in(fig, left - 0.5, top + 0.45 + size / 2, "input", rotation=90, weight="bold")
    D.text_in(fig, left - 0.5, top + 0.8 + 1.5 * size, "dz_c / dA", rotation=90, weight="bold")
    return D.save_png(fig, path)


def explain_model(out_dir: Path, image: Any = None, model: Any = None, seed: int = 0,
                  epochs: int = 6, dataset: str | None = None,
                  data_dir: str | None = None) -> ExplainResult:
    """A trained CNN from inside: kernels, feature maps, curves, confusion, saliency.

    ``model``: None (train the default digits CNN here for ``epochs`` epochs, seeded), a
    path to a file saved by ``Sequential.save``, or a Sequential. ``dataset`` (and
    ``data_dir``, as :func:`clearconv.data.load_dataset` takes them): the model's own
    dataset, whose test split gives the input (unless ``image`` is given), the confusion
    matrix and the saliency maps; default: the dataset the model file says it was trained
    on (``clearconv train`` records it), else the embedded digits for a (1, 8, 8) model.
    ``image``: the input whose feature maps are drawn instead of a test image picked by
    ``seed``.

    Writes ``model_kernels.png`` (when the model has a Conv2D), ``model_features.png``,
    ``model_curves.png`` (when the model was trained here, or its file carries its
    training history), ``model_confusion.png`` and ``model_saliency.png`` (on the test
    split; without a dataset, the saliency of the single image). ``numbers``:
    ``kernels``, ``input``, ``feature_maps`` [(layer name, output)], ``history`` (dict or
    None), ``confusion``, ``accuracy``, ``saliency_inputs``, ``saliency``,
    ``saliency_pred``, ``saliency_labels``, ``model_source``, ``dataset``.
    """
    m, history, model_source = _resolve_model(model, seed, epochs)
    if not m.loss_fn.classifier:
        raise ClearConvError(f"the model topic explains a classifier; {model_source} was "
                             f"trained with the {m.loss_fn.name} loss")
    if m.input_shape is None:
        raise ClearConvError("the model has no recorded input shape: build it with "
                             "input_shape=(C, H, W) before explaining it")
    shape = tuple(m.input_shape)
    test = _test_set(m, shape, dataset, data_dir, image)
    x, source, label = _input_for(shape, image, seed, test)
    x = x[None].astype(m.dtype)
    files, captions, nums = [], {}, {"model_source": model_source, "input": x[0],
                                     "input_source": source}
    conv = next(((i, layer) for i, layer in enumerate(m.layers) if isinstance(layer, Conv2D)),
                None)
    nums["kernels"] = None
    if conv is not None:
        nums["kernels"] = conv[1].weight.value.copy()
        files.append(_draw_kernels(nums["kernels"], conv[0], out_dir / "model_kernels.png"))
        captions["model_kernels.png"] = (f"The {nums['kernels'].shape[0]} learned kernels of "
                                         f"the first conv layer, on one colour scale.")
    outs, a = [], x
    for layer in m.layers:
        a = layer.forward(a, training=False)
        outs.append(a.copy())
    nums["feature_maps"] = [(f"{i} {type(layer).__name__}", o[0])
                            for i, (layer, o) in enumerate(zip(m.layers, outs))]
    files.append(_draw_features(m, x, source, outs, out_dir / "model_features.png"))
    captions["model_features.png"] = ("The output of every layer for one input, channels side "
                                      "by side, ending with the 10 class scores.")
    curves = history.history if history is not None else m.train_history
    nums["history"] = curves
    if curves:
        trained_here = history is not None
        files.append(_draw_curves(curves, out_dir / "model_curves.png",
                                  model_source if trained_here else
                                  f"{model_source}: the history saved in the model file",
                                  "test" if trained_here else "validation"))
        captions["model_curves.png"] = ("Loss and accuracy per epoch on the train split and "
                                        + ("the test split." if trained_here else
                                           "the validation split (if the run held one out)."))
    k = outs[-1].shape[-1]
    nums["confusion"], nums["accuracy"], nums["dataset"] = None, None, None
    if test is not None and int(test.y.max()) < k:
        xt, yt = test.x.astype(m.dtype), test.y
        pred = m.predict_classes(xt)
        cm = np.zeros((k, k), dtype=int)
        np.add.at(cm, (yt, pred), 1)
        acc = float((pred == yt).mean())
        nums["confusion"], nums["accuracy"], nums["dataset"] = cm, acc, test.name
        files.append(_draw_confusion(cm, acc, len(yt), out_dir / "model_confusion.png",
                                     test.source, test.classes))
        captions["model_confusion.png"] = (f"Counts of true versus predicted class on the "
                                           f"{len(yt)} images of {test.source} (accuracy "
                                           f"{acc:.3f}).")
        rng = np.random.default_rng(seed)
        present = [c for c in range(min(k, 10)) if np.any(yt == c)]
        picks = [int(rng.choice(np.flatnonzero(yt == c))) for c in present]
        sal_x = xt[picks]
        sal_labels: list[int | None] = [int(yt[i]) for i in picks]
    else:
        sal_x, sal_labels = x, [label]
    grads, sal_pred, probs = saliency(m, sal_x)
    nums.update({"saliency_inputs": sal_x, "saliency": grads, "saliency_pred": sal_pred,
                 "saliency_labels": sal_labels})
    files.append(_draw_saliency(sal_x, grads, sal_labels, sal_pred, probs,
                                out_dir / "model_saliency.png"))
    captions["model_saliency.png"] = ("Inputs and the gradient of their predicted class score "
                                      "with respect to every pixel, by backpropagation.")
    acc_text = f"; test accuracy {nums['accuracy']:.3f}" if nums["accuracy"] is not None else ""
    return ExplainResult(
        "model", files, nums,
        f"Inside {model_source}: {len(m.layers)} layers from input {shape} to "
        f"{outs[-1].shape[-1]} scores{acc_text}; saliency by backpropagation to the pixels.",
        captions, "All together: a trained CNN from inside")


__all__ = ["explain_model", "saliency", "train_default"]
