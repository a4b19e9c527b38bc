"""How many photos of handwritten digits a model gets right, through ``clearconv
predict``'s own preparation:

    python tools/eval_photos.py mnist.npz photos [--show-dir seen]

``photos`` is a folder written by ``tools/make_digit_photos.py`` (its ``labels.csv``:
``file,label,style``). Prints each wrong photo, the accuracy overall and per style, and
the mean top-1 probability; ``--show-dir`` writes what the model saw of each photo.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a digit model file (clearconv train --dataset mnist)")
    parser.add_argument("photos", help="a folder with labels.csv")
    parser.add_argument("--show-dir", default=None, help="write the model's inputs here")
    parser.add_argument("--mnist-dir", default=None,
                        help="MNIST's files: also say whether the model gets each wrong "
                             "photo's original test digit right")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import clearconv as cc
    from clearconv.cli import is_digit_model
    from clearconv.data.images import fit_to_model, prepare_digit, read_image, save_image
    from clearconv.errors import ClearConvError

    model = cc.load(args.model)
    c, h, w = model.input_shape
    digits = is_digit_model(model)
    rows = list(csv.DictReader(open(Path(args.photos) / "labels.csv")))
    original = None
    if args.mnist_dir:
        from clearconv.data import load_mnist

        original = load_mnist(args.mnist_dir, "test")[0]
    right, top1, by_style = 0, [], defaultdict(lambda: [0, 0])
    for row in rows:
        image, _ = read_image(Path(args.photos) / row["file"])
        try:
            x = (prepare_digit(image, (h, w))[0] if digits
                 else fit_to_model(image, c, (h, w))[0])
        except ClearConvError as e:
            print(f"{row['file']} ({row['style']}): label {row['label']}, refused: {e}")
            by_style[row["style"]][1] += 1
            top1.append(0.0)
            continue
        if args.show_dir:
            Path(args.show_dir).mkdir(parents=True, exist_ok=True)
            save_image(x, Path(args.show_dir) / (Path(row["file"]).stem + ".png"))
        probs = model.predict_proba(x[None].astype(np.float32) / 255)[0]
        pred, label = int(np.argmax(probs)), int(row["label"])
        ok = pred == label
        right += ok
        top1.append(float(probs[pred]))
        by_style[row["style"]][0] += ok
        by_style[row["style"]][1] += 1
        if not ok:
            also = ""
            if original is not None and "index" in row:
                raw = original[int(row["index"])][None].astype(np.float32) / 255
                raw_pred = int(model.predict_proba(raw)[0].argmax())
                also = (f"; its MNIST original is predicted {raw_pred}"
                        + (" too" if raw_pred == pred else ""))
            print(f"{row['file']} ({row['style']}): label {label}, predicted {pred} "
                  f"(p {probs[pred]:.2f}; p of {label}: {probs[label]:.2f}){also}")
    styles = ", ".join(f"{s} {a}/{n}" for s, (a, n) in sorted(by_style.items()))
    print(f"{right}/{len(rows)} right ({right / len(rows):.1%}); {styles}; mean top-1 "
          f"probability {np.mean(top1):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
