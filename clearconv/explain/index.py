"""``index.html``: every figure in article order, with a short explanation each.

One self-contained page (inline CSS, no script, no web fonts); the images sit beside it
and are linked by relative paths, so the folder can be copied or opened offline.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from ..io.files import atomic_write
from ._result import ExplainResult

#: what each topic teaches, in two or three sentences (the numbers come from the result)
EXPLANATIONS = {
    "image": "A digital image is a grid of numbers: one matrix for a grayscale image, three "
             "(red, green, blue) for a colour one, each entry a byte from 0 to 255. clearconv "
             "stores an image channels-first, as (C, H, W); the article writes [n, n, n_c].",
    "convolution": "A kernel slides over the image; at every position its values multiply the "
                   "pixels under it and the products are summed into one output number. "
                   "Without padding ('valid') the kernel must stay inside the image and the "
                   "output shrinks; zero padding ('same') keeps the size. The layers compute "
                   "this cross-correlation, as PyTorch does.",
    "filters": "Hand-made kernels already find structure in a photo: Sobel kernels respond to "
               "vertical or horizontal edges, the Laplacian to all edges, sharpen boosts "
               "detail, a Gaussian blurs. This is the true convolution of §3 (the kernel "
               "flipped), as image processing defines it.",
    "padding": "Without padding, border pixels take part in fewer products than central ones "
               "and the output shrinks by f - 1. A border of p = (f - 1)/2 zeros fixes both; an "
               "even kernel needs one more row and column at the bottom/right.",
    "stride": "With stride s the kernel jumps s pixels at a time, and the output size is "
              "floor((n + 2p - f)/s) + 1. When the division is not exact, the last pixels are "
              "never read.",
    "volume": "A colour image has depth: every kernel has as many channels as its input, sums "
              "over all of them, and gives one 2-D map. n_f kernels give n_f maps, stacked into "
              "the next layer's channels; a bias and a nonlinearity g complete the layer.",
    "sharing": "Each output depends on a small patch only (sparse connections), and every "
               "output of a channel uses the same kernel values (shared weights). A weight "
               "therefore sits on many edges, and its gradient sums over all of them.",
    "backward": "Backward through a conv layer: dZ = dA ⊙ g'(Z); dW collects input patches "
                "weighted by dZ; db sums dZ; and dA[l-1], the gradient for the previous layer, "
                "is dZ, padded by f - 1 ('full'), cross-correlated with the kernel rotated by "
                "180°: the true convolution of §3 of dZ with the kernel.",
    "pooling": "Pooling shrinks each channel on its own: max pooling keeps the largest value "
               "of every window, average pooling its mean. It has no parameters.",
    "pooling-backward": "Max pooling remembers where each maximum was (the mask); backward "
                        "sends each gradient only there, adding up where windows overlap. "
                        "Average pooling shares each gradient equally over its window.",
    "model": "All of it together in a trained network: the kernels it learned, what every "
             "layer makes of one input, how the loss fell, which digits it confuses, and which "
             "pixels its decision depends on (the gradient of the class score with respect to "
             "the image, computed by the same backpropagation).",
}

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #222; background: #fafafa; line-height: 1.5; }
main { max-width: 1200px; margin: 0 auto; padding: 1.5em 2em 4em; }
h1 { font-size: 1.8em; margin-bottom: 0.2em; }
h2 { margin-top: 2.2em; border-bottom: 2px solid #ddd; padding-bottom: 0.2em; }
nav ol { columns: 2; }
p.numbers { background: #eef4fa; border-left: 4px solid #1f77b4; padding: 0.5em 0.8em; }
figure { margin: 1.2em 0; background: white; border: 1px solid #e2e2e2; padding: 0.8em; }
figure img { max-width: 100%; height: auto; display: block; margin: 0 auto; }
figcaption { font-size: 0.95em; color: #444; margin-top: 0.5em; }
footer { margin-top: 3em; font-size: 0.9em; color: #666; }
code { background: #eee; padding: 0 0.25em; }
"""


def write_index(out_dir: Path, results: Sequence[ExplainResult], settings: str) -> Path:
    """Write ``out_dir/index.html`` for ``results`` (in the order given) and return its path.

    ``settings`` is one line saying how the figures were made (command, seed, inputs).
    """
    esc = html.escape
    toc = "\n".join(f'<li><a href="#{esc(r.topic)}">{esc(r.title or r.topic)}</a></li>'
                    for r in results)
    sections = []
    for r in results:
        figures = []
        for f in r.files:
            name = Path(f).name
            caption = r.captions.get(name, "")
            figures.append(
                f'<figure><a href="{esc(name)}"><img src="{esc(name)}" '
                f'alt="{esc(caption or name)}" loading="lazy"></a>'
                f"<figcaption><code>{esc(name)}</code>: {esc(caption)}</figcaption></figure>")
        sections.append(
            f'<section id="{esc(r.topic)}">\n<h2>{esc(r.title or r.topic)}</h2>\n'
            f"<p>{esc(EXPLANATIONS.get(r.topic, ''))}</p>\n"
            f'<p class="numbers">{esc(r.description)}</p>\n' + "\n".join(figures)
            + "\n</section>")
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>clearconv explained: the math of convolutional networks on real numbers</title>
<style>{_CSS}</style>
</head>
<body>
<main>
<h1>The math behind convolutional networks, on real numbers</h1>
<p>Each figure below follows a section of the article "Gentle Dive into Math Behind
Convolutional Neural Networks" (section numbers as in <code>docs/MATH.md</code> of the
clearconv repository, which names the function computing each formula). Every number
drawn was computed by clearconv on a real input: the formulas by the literal, loop-by-loop
operations of <code>clearconv.reference</code> (the oracle the fast
<code>clearconv.functional</code> is tested against), the trained model by its own
layers, so each figure is also a check of the library.</p>
<p>{esc(settings)}</p>
<nav><ol>
{toc}
</ol></nav>
{chr(10).join(sections)}
<footer>Made by <code>clearconv explain all</code>; open the images directly for full
size. GIFs play the step-by-step computations.</footer>
</main>
</body>
</html>
"""
    path = Path(out_dir) / "index.html"
    with atomic_write(path) as f:   # the old page or the whole new one
        f.write(page.encode("utf-8"))
    return path


__all__ = ["EXPLANATIONS", "write_index"]
