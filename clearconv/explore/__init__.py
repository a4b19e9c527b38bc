"""The interactive explorer: your model, your image, every number one click away.

:func:`explore` writes one self-contained HTML file (inline style, script and data; no
network, no build step; it opens from file://): the feature maps of every layer ending
with the class probabilities; a click on any conv output shows its window in every input
channel, the kernel, the products, the per-channel sums, the bias, Z and the activation
(MATH.md §6-7); a pooled value its window and winner (§10); a dense output or a
probability its sum. The backward view shows the loss of one class, dZ of every layer,
dW of any kernel weight as its sum of terms and dA of any input pixel as the full
convolution of the padded dZ with the kernel rotated 180° (§9), and the max-pool mask
routing (§11). A shape playground works out the output-size formula (§4-5).

Every tensor value on the page is computed here by clearconv (:mod:`.data`): the maps by
the model's own layers, the breakdowns by :mod:`clearconv.reference`; the page's script
only looks them up. :mod:`.server` serves the same page live (``clearconv serve``)::

    from clearconv.explore import explore
    result = explore("digits-cnn.npz", image="my-digit.png", out="explorer.html")
    result.path, result.prediction, result.size_bytes
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ClearConvError
from ..io.files import atomic_write
from ..train.sequential import Sequential, load
from .data import ExplorerData, compute
from .page import payload, render


@dataclass
class ExploreResult:
    """What :func:`explore` wrote: the file, its numbers and where they came from."""

    path: Path | None
    html: str
    data: ExplorerData
    model_source: str
    input_source: str

    @property
    def prediction(self) -> int:
        return int(self.data.meta["prediction"])

    @property
    def size_bytes(self) -> int:
        return len(self.html.encode("utf-8"))


def resolve_model(model: Any, seed: int = 0, epochs: int = 6) -> tuple[Sequential, str]:
    """A Sequential and its description from None (the digits CNN trained here for a few
    seconds on the embedded digits), a path saved by ``Sequential.save``, or a Sequential."""
    if model is None:
        from ..explain.trained import train_default

        m, _, seconds = train_default(seed, epochs)
        acc = m.evaluate(*_digits_test())["accuracy"]
        return m, (f"the digits CNN trained here for {epochs} epochs ({seconds:.1f} s, seed "
                   f"{seed}, test accuracy {acc:.3f})")
    if isinstance(model, Sequential):
        return model, "the given model"
    path = Path(model)
    if not path.is_file():
        raise ClearConvError(f"model file not found: {path}")
    return load(str(path)), f"the model {path.name}"


def _digits_test() -> tuple[np.ndarray, np.ndarray]:
    from ..data import DIGITS_MAX_VALUE, load_digits, to_float

    x, y = load_digits("test")
    return to_float(x, max_value=DIGITS_MAX_VALUE), y


def resolve_input(model: Sequential, image: Any, seed: int = 0, invert: bool | str = "auto",
                  decoded: list[str] | None = None, name: str | None = None
                  ) -> tuple[np.ndarray, str, int | None]:
    """The model's input (C, H, W) in [0, 1], where it came from, and its label if known.

    ``image``: None (a real digit of the embedded test split, picked by ``seed``), a path
    to an image file (read and converted as ``clearconv predict`` does: channels, size,
    dark-on-light inverted for 1-channel models), a uint8 array (H, W) / (C, H, W)
    converted the same way, or a float array of the model's input shape used as it is.
    ``decoded`` (what the decoder already did to an array) and ``name`` go into the
    returned description.
    """
    from ..data.images import fit_to_model, read_image
    from ..explain.trained import _input_for

    c, h, w = model.input_shape
    if image is None:
        x, source, label = _input_for((c, h, w), None, seed)
        if (h, w) != (8, 8) and min(h, w) >= 16:
            x, source = _digit_as_mnist(x, source, c, h, w)
        return x, source, label
    if isinstance(image, np.ndarray) and image.dtype.kind == "f":
        if image.shape != (c, h, w):
            raise ClearConvError(f"a float image must have the model's input shape "
                                 f"{(c, h, w)}, got {image.shape}")
        return image.astype(np.float32), f"your array {image.shape}", None
    if isinstance(image, np.ndarray):
        pixels, steps = image, list(decoded or [])
        source = name or f"your array {image.shape}"
    else:
        pixels, steps = read_image(image)
        source = f"your image {Path(image).name}"
    x, more = fit_to_model(pixels, c, (h, w), invert=invert)
    conv = "; ".join(steps + more) or "nothing to convert"
    return x.astype(np.float32) / 255.0, f"{source} ({conv}; scaled to [0, 1])", None


def _digit_as_mnist(x: np.ndarray, source: str, c: int, h: int, w: int
                    ) -> tuple[np.ndarray, str]:
    """The 8x8 digit as MNIST draws its digits: in a box of 20/28 of the frame, centred,
    on black (rather than stretched over the whole frame)."""
    from ..explain._inputs import resize

    bh, bw = round(h * 20 / 28), round(w * 20 / 28)
    box = resize(np.round(x[:1] * 255).astype(np.uint8), bh, bw)
    out = np.zeros((c, h, w), np.float32)
    top, left = (h - bh) // 2, (w - bw) // 2
    out[:, top:top + bh, left:left + bw] = box[0] / 255.0
    return out, f"{source}, enlarged to {bw}x{bh} and centred in {w}x{h} as MNIST draws digits"


#: with ``all_classes='auto'``, every class's backward pass is shipped when the page
#: stays under this many bytes (the issue's target for the digits CNN)
AUTO_ALL_BYTES = 3_000_000


#: the largest explorer file :func:`explore` writes before it leaves out the dA products
#: (the per-output-channel sums stay): the issue's target for the MNIST CNN, in bytes
MAX_BYTES = 15_000_000


def explore(model: Any = None, image: Any = None, out: str | os.PathLike | None = None,
            label: int | None = None, target: int | None = None,
            all_classes: bool | str = "auto",
            seed: int = 0, invert: bool | str = "auto", math_href: str = "docs/MATH.md",
            max_bytes: int = MAX_BYTES) -> ExploreResult:
    """Write (and return) the explorer of ``model`` on ``image``.

    Parameters
    ----------
    model : None (the digits CNN, trained here in a few seconds), a saved model's path,
        or a Sequential with ``input_shape`` (C, H, W)
    image : None (a real digit), an image file, or an array (see :func:`resolve_input`)
    out : the HTML file to write (atomically); None writes nothing
    label : the true class of ``image`` (known for the default digit)
    target : the class whose loss the backward view shows (default: the label, else the
        prediction)
    all_classes : ship the backward pass of every class (the page's class picker then
        switches between them; the file grows about K times in its backward part);
        ``'auto'`` (default) does when the page stays under 3 MB (the digits CNN), else
        only ``target``'s is shipped (``clearconv serve`` computes any class)
    seed : picks the default digit and seeds the default model's training
    invert : as ``clearconv predict --invert`` for image files
    math_href : where the page's "MATH.md §n" links point
    max_bytes : a page larger than this is made again without the products of dA (the
        dA view then shows each output channel's sum, not its terms)

    Returns
    -------
    ExploreResult with ``path``, ``html``, ``data`` (the arrays shipped) and ``prediction``.
    """
    if all_classes not in (True, False, "auto"):
        raise ClearConvError(f"all_classes must be True, False or 'auto', got {all_classes!r}")
    m, model_source = resolve_model(model, seed)
    if m.input_shape is None or len(m.input_shape) != 3:
        raise ClearConvError("explore needs an image model with a known (C, H, W) input shape")
    x, input_source, known = resolve_input(m, image, seed, invert)
    out_shape = m.build(m.input_shape)[-1]
    if known is not None and not (len(out_shape) == 1 and known < out_shape[0]):
        known = None                  # the default digit's label is no class of this model
    label = known if label is None else label
    every = all_classes is True
    data = compute(m, x, label=label, target=target, all_targets=every)
    text = render(data, "clearconv explorer", model_source, input_source, math_href)
    if all_classes == "auto" and len(data.meta["classes"]) > 1 and len(text) < AUTO_ALL_BYTES:
        every_data = compute(m, x, label=label, target=target, all_targets=True)
        every_text = render(every_data, "clearconv explorer", model_source, input_source,
                            math_href)
        if len(every_text) <= AUTO_ALL_BYTES:
            every, data, text = True, every_data, every_text
    if len(text) > max_bytes and any(".da_products" in name for name in data.arrays):
        data = compute(m, x, label=label, target=target, all_targets=every,
                       budget={"da_products": 0})
        text = render(data, "clearconv explorer", model_source, input_source, math_href)
    path = None
    if out is not None:
        path = Path(out)
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as f:
            f.write(text.encode("utf-8"))
    return ExploreResult(path, text, data, model_source, input_source)


__all__ = ["ExploreResult", "ExplorerData", "compute", "explore", "payload", "render",
           "resolve_input", "resolve_model"]
