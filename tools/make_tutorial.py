"""Write docs/tutorial.ipynb: the article, section by section, computed with clearconv.

    python tools/make_tutorial.py        # rewrites docs/tutorial.ipynb (no outputs)

The notebook is kept as the source of truth in this script so that its cells stay
reviewable as Python; tests/test_tutorial.py executes the written notebook (nbclient).
"""

from __future__ import annotations

from pathlib import Path

import nbformat

CELLS: list[tuple[str, str]] = [
    ("md", """# A gentle dive into the math of CNNs, computed with clearconv

This notebook walks the article *Gentle Dive into Math Behind Convolutional Neural Networks*
section by section (the numbers follow `docs/MATH.md`). Each formula is computed on real data
by clearconv: the loop-by-loop `clearconv.reference`, the fast `clearconv.functional`, and a
model trained here. Every cell runs in a few seconds on a laptop."""),
    ("code", """import numpy as np
import clearconv as cc
from clearconv import functional as F
from clearconv import reference as R
from clearconv import shapes
from clearconv.data import load_digits, to_float

np.set_printoptions(precision=3, suppress=True, linewidth=110)
x_train, y_train = load_digits("train")          # real hand-written digits, 8x8, values 0..16
x_test, y_test = load_digits("test")
digit = to_float(x_test[:1], max_value=16)       # (1, 1, 8, 8) in [0, 1]
print("label", y_test[0]); print(x_test[0, 0])"""),
    ("md", """## 1. Why convolutions
A dense layer on a 1000x1000 RGB photo needs 3 million weights per neuron; a 3x3 convolution
with 64 kernels shares 1,792 parameters across the whole image."""),
    ("code", """print("dense, one neuron on 1000x1000x3:", f"{shapes.dense_params(1000 * 1000 * 3, 1):,}")
print("conv 3 -> 64, 3x3:               ", f"{shapes.conv2d_params(3, 64, 3):,}")"""),
    ("md", """## 2. Digital images
A grayscale image is one H x W matrix of bytes; clearconv keeps images as `(C, H, W)` and
batches as `(N, C, H, W)` (the article's `[n, n, n_c]` is `x[i].transpose(1, 2, 0)`)."""),
    ("code", """print(x_test.dtype, x_test.shape, "->", digit.dtype, digit.shape, digit.min(), digit.max())"""),
    ("md", """## 3. Kernel convolution
`G[m, n] = sum_j sum_k h[j, k] f[m - j, n - k]`. CNN layers compute the cross-correlation
(`f[m + j, n + k]`), the same with the kernel rotated by 180°."""),
    ("code", """sobel = np.array([[1., 0, -1], [2, 0, -2], [1, 0, -1]])
cross, _ = R.conv2d_forward(digit, sobel[None, None])                  # what a layer computes
true, _ = R.conv2d_forward(digit, sobel[::-1, ::-1][None, None].copy())  # kernel rotated 180°
print("cross-correlation:\\n", cross[0, 0]); print("true convolution = -cross here:", np.allclose(true, -cross))"""),
    ("md", """## 4. Valid and same convolution
A 6x6 image and a 3x3 kernel give 4x4 (valid); padding `p = (f - 1)/2` keeps the size."""),
    ("code", """print("valid:", shapes.conv_output_size(6, 3), " same padding for f=3:", shapes.same_padding(6, 3),
      " even f=4:", shapes.same_padding(6, 4))
same, _ = F.conv2d_forward(digit, sobel[None, None], padding="same")
print(same.shape)"""),
    ("md", """## 5. Strided convolution
`n_out = floor((n + 2p - f)/s) + 1`."""),
    ("code", """n, f, p, s = 8, 3, 1, 2
print(f"floor(({n} + 2*{p} - {f}) / {s}) + 1 =", (n + 2 * p - f) // s + 1,
      "| clearconv:", shapes.conv_output_size(n, f, s, p),
      "| computed:", F.conv2d_forward(digit, sobel[None, None], stride=s, padding=p)[0].shape)"""),
    ("md", """## 6. Into three dimensions
Kernel and image share the channel count; each kernel gives one map, the per-channel sums
add up. `conv2d_forward_steps` keeps every window, product and per-channel sum."""),
    ("code", """rgb = np.random.default_rng(0).random((1, 3, 6, 6))
w = np.random.default_rng(1).standard_normal((2, 3, 3, 3))
steps = R.conv2d_forward_steps(rgb, w)
print("Z shape", steps.z.shape, "(n_f = 2 kernels)")
print("output (0, 0) of kernel 0: channel sums", steps.channel_sums[0, 0, 0, 0],
      "-> Z =", steps.z[0, 0, 0, 0], "=", steps.channel_sums[0, 0, 0, 0].sum())"""),
    ("md", """## 7. Convolution layer
`Z = W * A + b`, `A = g(Z)`."""),
    ("code", """layer = cc.layers.Conv2D(1, 4, 3, padding="same", rng=0)
z = layer.forward(digit)
a = cc.layers.ReLU().forward(z)
z_ref, _ = R.conv2d_forward(digit, layer.weight.value, layer.bias.value, padding="same")
print(z.shape, "max |fast - reference| =", np.abs(z - z_ref).max(), "| A >= 0:", (a >= 0).all())"""),
    ("md", """## 8. Sparse connections and parameter sharing
One kernel value touches every output of its map, so its gradient is a sum over all of them."""),
    ("code", """dz = np.random.default_rng(2).standard_normal(z.shape)
back = R.conv2d_backward_steps(dz, R.conv2d_forward_steps(digit, layer.weight.value, layer.bias.value,
                                                          padding="same").cache)
print("dW[0, 0, 1, 1] is a sum of", back.dw_terms[0, 0, :, :, 0, 1, 1].size, "terms:",
      back.dw_terms[0, 0, :, :, 0, 1, 1].sum(), "=", back.dw[0, 0, 1, 1])"""),
    ("md", """## 9. Convolution backpropagation
`dA` is the full convolution of the padded `dZ` with the kernel rotated 180°; `dW` sums the
input slices weighted by `dZ`; a finite-difference check confirms both."""),
    ("code", """_, cache = F.conv2d_forward(digit.astype(np.float64), layer.weight.value.astype(np.float64),
                            layer.bias.value.astype(np.float64), padding="same")
dx, dw, db = F.conv2d_backward(dz, cache)
print("dA (functional) == full convolution with the rotated kernel (reference):",
      np.allclose(dx, back.input_gradient.dx, atol=1e-5))
print(cc.gradcheck(lambda x, w: F.conv2d_forward(x, w, padding="same"),
                   lambda d, c: F.conv2d_backward(d, c)[:2],
                   {"x": digit.astype(np.float64), "w": layer.weight.value.astype(np.float64)}))"""),
    ("md", """## 10. Pooling layer
Max pooling keeps each window's maximum."""),
    ("code", """pool = R.max_pool2d_forward_steps(a, 2)
print("window (0, 0) of channel 0:\\n", pool.windows[0, 0, 0, 0], "\\n-> max", pool.z[0, 0, 0, 0],
      "at input", tuple(int(v) for v in pool.argmax[0, 0, 0, 0]))"""),
    ("md", """## 11. Pooling backpropagation
A mask remembers the winner; the gradient goes only there."""),
    ("code", """dpool = np.ones_like(pool.z)
routed = R.max_pool2d_backward_steps(dpool, pool.cache)
print("mask of window (0, 0):\\n", routed.masks[0, 0, 0, 0].astype(int))
print("each window sends its 1 to one cell:", routed.dx.sum() == dpool.size)"""),
    ("md", """## Around the math: a whole CNN
Train the digits CNN (the progress bar is the notebook's own, `tqdm.auto`), look at its
summary (a model shows itself as a table), and write the interactive explorer of one test
digit: every number of the forward and backward pass, one click away."""),
    ("code", """from clearconv.train import zoo

model = zoo.digits_cnn(rng=0)
history = model.fit(to_float(x_train, max_value=16), y_train, epochs=6, batch_size=32, verbose=1, seed=0)
print(model.evaluate(to_float(x_test, max_value=16), y_test))
model"""),
    ("code", """from clearconv.explore import explore

result = explore(model, image=digit[0], label=int(y_test[0]), out="explorer.html")
print(result.path, f"{result.size_bytes / 1e6:.2f} MB, prediction", result.prediction)"""),
]


def build() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell(src) if kind == "md" else
                nbformat.v4.new_code_cell(src) for kind, src in CELLS]
    return nb


def main() -> None:
    path = Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"
    nbformat.write(build(), str(path))
    print(path)


if __name__ == "__main__":
    main()
