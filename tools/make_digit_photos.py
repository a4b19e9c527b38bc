"""Realistic photos of handwritten digits, for testing ``clearconv predict`` on photos.

    python tools/make_digit_photos.py --mnist-dir ~/mnist --out photos --count 60

Each photo is one MNIST *test* digit (real handwriting the model never trained on)
written on a page and photographed: 1200x1600 JPEG; the digit redrawn as a pen, pencil or
marker stroke (its width varied), on paper with texture and fibres, ruled lines (some
pages), a lighting gradient, a soft shadow, the page rotated (-8..8 degrees) and seen in
perspective with the table around it in the corners, the digit off-centre; one photo in
five is light on dark (chalk on a board). ``labels.csv`` holds ``file,label,style,index``
(``index``: the digit's position in MNIST's test split).
Deterministic for a given ``--seed``. NumPy and Pillow only.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

W, H = 1200, 1600


def _noise(rng: np.random.Generator, shape: tuple[int, int], blur: float) -> np.ndarray:
    """Smooth noise in about [-1, 1]."""
    n = rng.standard_normal((shape[0] // 4 + 1, shape[1] // 4 + 1)).astype(np.float32)
    img = Image.fromarray(((n * 40) + 128).clip(0, 255).astype(np.uint8))
    img = img.resize((shape[1], shape[0]), Image.Resampling.BICUBIC)
    img = img.filter(ImageFilter.GaussianBlur(blur))
    return (np.asarray(img, np.float32) - 128) / 40


def _stroke_alpha(digit: np.ndarray, height: int, rng: np.random.Generator,
                  width_level: float) -> np.ndarray:
    """The MNIST digit (28x28, 0..255) as a smooth stroke mask ``height`` pixels tall."""
    img = Image.fromarray(digit).resize((height, height), Image.Resampling.BICUBIC)
    img = img.filter(ImageFilter.GaussianBlur(height / 120))
    a = np.asarray(img, np.float32) / 255
    # a higher level thins the stroke (a fine pen), a lower one thickens it (a marker)
    edge = 0.06
    return np.clip((a - width_level) / edge + 0.5, 0, 1)


def make_photo(digit: np.ndarray, rng: np.random.Generator) -> tuple[Image.Image, str]:
    """One photo of ``digit`` (28x28 uint8, MNIST's light on dark) and its style."""
    chalk = rng.random() < 0.2
    style = "chalk" if chalk else str(rng.choice(["pen", "pen", "pencil", "marker"]))
    # the page
    if chalk:
        base = rng.uniform(35, 70)
        page = np.full((H, W), base, np.float32) + 6 * _noise(rng, (H, W), 6)
    else:
        base = rng.uniform(185, 240)
        page = np.full((H, W), base, np.float32)
        page += 5 * _noise(rng, (H, W), 2) + 3 * rng.standard_normal((H, W)).astype(np.float32)
    tint = np.array([1.0, rng.uniform(0.96, 1.0), rng.uniform(0.88, 1.0)], np.float32)
    rgb = page[..., None] * tint
    lined = not chalk and rng.random() < 0.6
    if lined:
        im = Image.fromarray(rgb.clip(0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(im)
        gap = int(rng.integers(60, 95))
        colour = (int(base * 0.72), int(base * 0.8), int(base * 0.95))
        for y in range(int(rng.integers(40, 120)), H, gap):
            draw.line([(0, y), (W, y)], fill=colour, width=int(rng.integers(2, 5)))
        if rng.random() < 0.5:
            x = int(rng.integers(100, 200))
            draw.line([(x, 0), (x, H)], fill=(200, 110, 110), width=3)
        rgb = np.asarray(im, np.float32)
    # the digit, off-centre
    height = int(rng.integers(380, 820))
    level = {"pen": rng.uniform(0.45, 0.7), "pencil": rng.uniform(0.45, 0.65),
             "marker": rng.uniform(0.2, 0.35), "chalk": rng.uniform(0.3, 0.5)}[style]
    alpha = _stroke_alpha(digit, height, rng, level)
    y0 = int(rng.integers(150, H - height - 150))
    x0 = int(rng.integers(120, max(121, W - height - 120)))
    region = rgb[y0:y0 + height, x0:x0 + height]
    if style == "chalk":
        ink = np.array([230, 230, 225], np.float32) * rng.uniform(0.8, 1.0)
        alpha = alpha * np.clip(0.75 + 0.25 * rng.standard_normal(alpha.shape), 0, 1)
    elif style == "pencil":
        ink = np.full(3, rng.uniform(70, 120), np.float32)
        alpha = alpha * np.clip(0.8 + 0.3 * rng.standard_normal(alpha.shape), 0, 1)
    else:
        ink = np.array(rng.choice([[25, 25, 30], [20, 30, 90], [40, 40, 40]]), np.float32)
        ink *= rng.uniform(0.8, 1.3)
    a = alpha[..., None]
    rgb[y0:y0 + height, x0:x0 + height] = region * (1 - a) + ink * a
    # light: a gradient across the page and a soft shadow
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx / W + np.sin(angle) * yy / H)
    light = rng.uniform(0.55, 0.8) + rng.uniform(0.3, 0.5) * (ramp - ramp.min()) / np.ptp(ramp)
    if rng.random() < 0.6:
        cy, cx = rng.uniform(0, H), rng.uniform(0, W)
        r = rng.uniform(300, 700)
        light *= 1 - rng.uniform(0.25, 0.45) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / r ** 2)
    rgb *= light[..., None]
    page_img = Image.fromarray(rgb.clip(0, 255).astype(np.uint8))
    # the photo: the page rotated and in perspective on a table
    table = np.full((H, W, 3), rng.uniform(20, 80), np.float32) * np.array(
        [1.0, rng.uniform(0.7, 0.9), rng.uniform(0.5, 0.8)], np.float32)
    table += 8 * _noise(rng, (H, W), 3)[..., None]
    photo = Image.fromarray(table.clip(0, 255).astype(np.uint8))
    turned = page_img.rotate(float(rng.uniform(3, 8) * rng.choice([-1, 1])),
                             Image.Resampling.BICUBIC, expand=False,
                             fillcolor=None)
    mask = Image.new("L", (W, H), 255).rotate(0)
    j = rng.uniform(0.02, 0.07, 8) * np.array([W, H] * 4)
    quad = (j[0], j[1], j[2], H - j[3], W - j[4], H - j[5], W - j[6], j[7])
    # output pixel (x, y) takes the page at the quad's bilinear position
    warped = turned.transform((W, H), Image.Transform.QUAD, quad, Image.Resampling.BICUBIC)
    mask = turned.convert("L").point(lambda v: 255).transform(
        (W, H), Image.Transform.QUAD, quad, Image.Resampling.BILINEAR)
    shrink = float(rng.uniform(0.86, 0.95))
    size = (int(W * shrink), int(H * shrink))
    warped, mask = warped.resize(size), mask.resize(size)
    photo.paste(warped, ((W - size[0]) // 2 + int(rng.integers(-30, 30)),
                         (H - size[1]) // 2 + int(rng.integers(-30, 30))), mask)
    photo = photo.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
    noisy = np.asarray(photo, np.float32) + rng.normal(0, 3, (H, W, 3)).astype(np.float32)
    return Image.fromarray(noisy.clip(0, 255).astype(np.uint8)), style


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-dir", required=True, help="folder with MNIST's t10k files")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--count", type=int, default=60, help="how many photos (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from clearconv.data import load_mnist

    x, y = load_mnist(args.mnist_dir, "test")
    rng = np.random.default_rng(args.seed)
    picks = rng.choice(len(x), args.count, replace=False)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "label", "style", "index"])
        for i, idx in enumerate(picks):
            photo, style = make_photo(x[idx, 0], rng)
            name = f"photo-{i:03d}.jpg"
            photo.save(out / name, quality=int(rng.integers(75, 93)))
            writer.writerow([name, int(y[idx]), style, int(idx)])
    print(f"{args.count} photos in {out} (labels.csv)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
