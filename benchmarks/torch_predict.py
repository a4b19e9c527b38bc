"""The same prediction as ``clearconv predict MODEL IMAGE``, through PyTorch: the
baseline of :mod:`benchmarks.startup`.

``python benchmarks/torch_predict.py MODEL.npz IMAGE``: reads clearconv's model file with
NumPy alone (its JSON architecture and arrays), builds the ``nn.Sequential`` twin, turns
the picture into the model's input with Pillow (grayscale, inverted when its border is
light, padded to a square, resized), and prints the top 3 classes. It imports torch,
NumPy and Pillow only, so that its start-up is PyTorch's, not clearconv's.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import nn


def _layer(kind: str, cfg: dict) -> nn.Module:
    if kind == "Conv2D":
        pad = cfg["padding"]
        return nn.Conv2d(cfg["in_channels"], cfg["out_channels"], tuple(cfg["kernel_size"]),
                         stride=tuple(cfg["stride"]),
                         padding=pad.lower() if isinstance(pad, str) else pad,
                         bias=cfg["bias"])
    if kind == "Dense":
        return nn.Linear(cfg["in_features"], cfg["out_features"], bias=cfg["bias"])
    if kind == "MaxPool2D":
        return nn.MaxPool2d(tuple(cfg["kernel_size"]), tuple(cfg["stride"]))
    simple = {"ReLU": nn.ReLU, "Flatten": nn.Flatten, "Dropout": nn.Identity}
    return simple[kind]()


def main(model_path: str, image_path: str) -> None:
    with np.load(model_path, allow_pickle=False) as z:
        config = json.loads(z["__config__"].tobytes())["model"]
        state = {k: torch.from_numpy(np.array(z[k], np.float32)) for k in z.files
                 if k != "__config__"}
    net = nn.Sequential(*[_layer(s["type"], s["config"]) for s in config["layers"]])
    net.load_state_dict(state)
    net.eval()
    c, h, w = config["input_shape"]
    img = ImageOps.exif_transpose(Image.open(image_path)).convert("L")
    a = np.asarray(img)
    edge = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    if np.median(edge) >= 128:
        img = ImageOps.invert(img)
    side = max(img.size)
    square = Image.new("L", (side, side), 0)
    square.paste(img, ((side - img.size[0]) // 2, (side - img.size[1]) // 2))
    x = np.asarray(square.resize((w, h), Image.BILINEAR), np.float32)[None, None] / 255
    with torch.no_grad():
        probs = torch.softmax(net(torch.from_numpy(x)), dim=1)[0].numpy()
    classes = config.get("classes") or [str(i) for i in range(len(probs))]
    for k in np.argsort(-probs, kind="stable")[:3]:
        print(f"  {classes[k]:>12}  {probs[k]:.4f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
