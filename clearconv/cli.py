"""The ``clearconv`` command: argument parsing and printing over the Python API.

    clearconv train [--dataset digits|mnist|fashion-mnist|kmnist|cifar10|folder]
                    [--data-dir D] [--download] [--epochs N] [--batch-size B] [--lr LR]
                    [--optimizer adam] [--seed 0] [--val-split F] [--augment]
                    [--out MODEL] [--metrics metrics.json]
                    [--checkpoint-dir D | --resume D]
    clearconv summary MODEL
    clearconv evaluate MODEL [--dataset ... --data-dir D]
    clearconv predict MODEL IMAGE... [--top 3]
    clearconv filter IMAGE --kernel sobel --out OUT.png [--size 5 --sigma 1.0 ...]
    clearconv download mnist|fashion-mnist|kmnist|cifar10 [--dir D]
    clearconv explain TOPIC|all --out DIR [--image IMG] [--model MODEL]
    clearconv export MODEL --onnx OUT.onnx
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from .errors import ClearConvError

_RUN_FILE = "run.json"
#: train options a resumed run takes from the interrupted one
_RESUMED = ("dataset", "data_dir", "image_size", "epochs", "batch_size", "lr", "optimizer",
            "seed", "val_split", "augment")
#: per-dataset defaults: (epochs, learning rate)
_DEFAULTS = {"digits": (20, 3e-3), "mnist": (5, 2e-3), "fashion-mnist": (10, 1e-3),
             "kmnist": (10, 1e-3), "cifar10": (20, 1e-3), "folder": (20, 1e-3)}


def _write_json_atomic(path: str, data: dict[str, Any]) -> None:
    from .io.files import atomic_write

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_write(path) as f:
        f.write((json.dumps(data, indent=2) + "\n").encode())


def _load_data(args: argparse.Namespace) -> Any:
    from .data import load_dataset

    size = tuple(args.image_size) if args.image_size else (32, 32)
    return load_dataset(args.dataset, args.data_dir, getattr(args, "download", False),
                        image_size=size, seed=args.seed)


def cmd_train(args: argparse.Namespace) -> int:
    from .train import optim, zoo
    from .train.callbacks import LearningRateScheduler, TerminateOnNaN
    from .data import compose, random_flip, random_shift, train_val_split

    if args.resume:
        run_file = os.path.join(args.resume, _RUN_FILE)
        if not os.path.exists(run_file):
            raise ClearConvError(f"nothing to resume in {args.resume}: no {_RUN_FILE} "
                                 f"(start with clearconv train --checkpoint-dir DIR)")
        with open(run_file) as f:
            saved = json.load(f)
        for key in _RESUMED:
            setattr(args, key, saved[key])
        args.checkpoint_dir = args.resume
    default_epochs, default_lr = _DEFAULTS[args.dataset]
    args.epochs = args.epochs or default_epochs
    args.lr = args.lr or default_lr
    if args.out is None:
        args.out = f"{args.dataset}-cnn.npz"
    ds = _load_data(args)
    x_train, y_train = ds.x_train, ds.y_train
    validation = None
    if args.val_split:
        x_train, y_train, x_val, y_val = train_val_split(x_train, y_train, args.val_split,
                                                         args.seed)
        validation = (x_val, y_val)
    model = zoo.default_model(args.dataset, ds.input_shape, len(ds.classes), rng=args.seed)
    model.classes = list(ds.classes)
    augment = None
    if args.augment:
        augment = compose(random_shift(2), random_flip()) if args.dataset == "cifar10" \
            else random_shift(2)
    if args.verbose:
        print(f"dataset: {ds.source}: {len(x_train)} train"
              + (f" / {len(validation[0])} validation" if validation else "")
              + f" / {len(ds.x_test)} test, {len(ds.classes)} classes")
        model.summary()
    opt = optim.make_optimizer(args.optimizer, model.parameters(), lr=args.lr)
    schedule = optim.CosineAnnealingLR(opt, T_max=args.epochs) if args.dataset != "digits" \
        else None
    if args.checkpoint_dir and not args.resume:
        _write_json_atomic(os.path.join(args.checkpoint_dir, _RUN_FILE),
                           {key: getattr(args, key) for key in _RESUMED})
    nan_guard = TerminateOnNaN()
    callbacks: list[Any] = [nan_guard]
    if schedule is not None:
        callbacks.append(LearningRateScheduler(schedule))
    t0 = time.perf_counter()
    try:
        history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                            optimizer=opt, validation_data=validation,
                            verbose=1 if args.verbose else 0, seed=args.seed,
                            callbacks=callbacks, checkpoint_dir=args.checkpoint_dir,
                            resume=bool(args.resume), augment=augment)
    except KeyboardInterrupt as e:
        where = f" {e}" if str(e) else ""
        print(f"\nclearconv: interrupted.{where}", file=sys.stderr)
        if args.checkpoint_dir:
            print(f"resume with: clearconv train --resume {args.checkpoint_dir}", file=sys.stderr)
        return 130
    train_seconds = time.perf_counter() - t0
    if nan_guard.message is not None:
        kept = (f"; the last good checkpoint is kept in {args.checkpoint_dir}"
                if args.checkpoint_dir else "")
        print(f"clearconv: training stopped: {nan_guard.message}{kept}", file=sys.stderr)
        return 3
    result = model.evaluate(ds.x_test, ds.y_test)
    model.save(args.out)
    epochs_run = max(history.epochs, 1)
    print(f"test accuracy: {result['accuracy']:.4f}  test loss: {result['loss']:.4f}  "
          f"({history.epochs} epochs, {train_seconds:.1f} s)")
    print(f"model saved to {args.out}")
    if args.metrics:
        _write_json_atomic(args.metrics, {
            "dataset": args.dataset, "test_accuracy": result["accuracy"],
            "test_loss": result["loss"], "epochs": history.epochs,
            "train_seconds": train_seconds,
            "seconds_per_epoch": history.history.get("seconds", [train_seconds])[-1]
            if history.epochs else train_seconds / epochs_run,
            "batch_size": args.batch_size, "lr": args.lr, "optimizer": args.optimizer,
            "seed": args.seed, "augment": bool(args.augment), "val_split": args.val_split,
            "history": history.history,
        })
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from .train.sequential import load

    load(args.model).summary()
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .train.sequential import load

    model = load(args.model)
    ds = _load_data(args)
    result = model.evaluate(ds.x_test, ds.y_test)
    print(f"test accuracy: {result['accuracy']:.4f}  test loss: {result['loss']:.4f}  "
          f"({len(ds.y_test)} samples, {ds.source}, test split)")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from .data.images import fit_to_model, read_image
    from .train.sequential import load

    model = load(args.model)
    if model.input_shape is None or len(model.input_shape) != 3:
        raise ClearConvError(f"{args.model}: predict needs an image model with a known "
                             f"(C, H, W) input shape")
    c, h, w = model.input_shape
    classes = model.classes or [str(i) for i in range(10)]
    for path in args.images:
        image, steps = read_image(path)
        x, more = fit_to_model(image, c, (h, w), invert=args.invert)
        probs = model.predict_proba(x[None].astype(np.float32) / 255.0)[0]
        print(f"{path}: converted: {'; '.join(steps + more) or 'nothing to convert'}; "
              f"scaled to [0, 1]")
        for k in np.argsort(-probs, kind="stable")[:args.top]:
            print(f"  {classes[k]:>12}  {probs[k]:.4f}")
    return 0


def cmd_filter(args: argparse.Namespace) -> int:
    from .filters import filter_image
    from .data.images import read_image, save_image

    image, steps = read_image(args.image, mode=args.mode)
    padding: Any = args.padding
    if padding.isdigit():
        padding = int(padding)
    result = filter_image(image, args.kernel, size=args.size, sigma=args.sigma,
                          padding=padding, stride=args.stride, correlate=args.correlate,
                          output=args.output, padding_mode=args.padding_mode)
    save_image(result.image, args.out, mode="clip")
    kind = "cross-correlation (kernel not flipped)" if args.correlate else \
        "true convolution (kernel rotated 180 degrees, MATH.md section 3)"
    print(f"{args.image} {image.shape[1]}x{image.shape[2]} ({image.shape[0]} channel(s)"
          f"{'; ' + '; '.join(steps) if steps else ''}) -> {args.out} "
          f"{result.image.shape[-1]}x{result.image.shape[-2]}")
    print(f"kernel {args.kernel}: {kind}, padding {args.padding} ({args.padding_mode}), "
          f"stride {args.stride}")
    print(f"values to 0..255: {result.mapping}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from .data import download

    path = download(args.name, root=args.dir, progress=True)
    print(f"{args.name}: files verified in {path}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from . import explain
    from .train.sequential import load

    model = load(args.model) if args.model else None
    if args.topic == "all":
        results = explain.explain_all(args.out, image=args.image, model=model, seed=args.seed)
    else:
        results = [explain.run(args.topic, args.out, image=args.image, model=model,
                               seed=args.seed)]
    for r in results:
        for f in r.files:
            print(f)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .train.sequential import load

    model = load(args.model)
    model.to_onnx(args.onnx, opset=args.opset)
    print(f"{args.model} -> {args.onnx} (ONNX opset {args.opset}, checked by onnx.checker)")
    return 0


def _add_data_options(p: argparse.ArgumentParser) -> None:
    from .data import DATASET_NAMES

    p.add_argument("--dataset", default="digits", choices=DATASET_NAMES,
                   help="default: the embedded 8x8 digits")
    p.add_argument("--data-dir", default=None,
                   help="folder with the dataset's files (or the image folder); default: the "
                        "download cache ($CLEARCONV_DATA or ~/.cache/clearconv)")
    p.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), default=None,
                   help="size of --dataset folder images (default 32 32)")
    p.add_argument("--seed", type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clearconv", description="A NumPy-only CNN library: train, inspect, predict, "
                                      "filter, explain, export.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a CNN (default: the embedded digits)")
    _add_data_options(p)
    p.add_argument("--download", action="store_true",
                   help="download the dataset first if missing (checksums verified)")
    p.add_argument("--epochs", type=int, default=None,
                   help="default 20 for digits, 5 for mnist, 10 for fashion-mnist/kmnist")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=None,
                   help="default 0.003 for digits, 0.002 for mnist, else 0.001 (cosine-annealed)")
    p.add_argument("--optimizer", default="adam",
                   help="sgd, momentum, nesterov, rmsprop, adam, adamw (default adam)")
    p.add_argument("--val-split", type=float, default=0.0,
                   help="hold out this fraction of the training set for validation")
    p.add_argument("--augment", action="store_true",
                   help="random shifts of up to 2 pixels (and horizontal flips for cifar10)")
    p.add_argument("--out", default=None, help="where to save the model (default DATASET-cnn.npz)")
    p.add_argument("--metrics", default=None, help="write a JSON file with the results")
    p.add_argument("--quiet", dest="verbose", action="store_false",
                   help="no progress bar or summary")
    p.add_argument("--checkpoint-dir", default=None,
                   help="save model, optimizer and RNG state there after every epoch and on "
                        "Ctrl-C")
    p.add_argument("--resume", default=None, metavar="DIR",
                   help="continue the run checkpointed in DIR (its options are reused)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("summary", help="print a saved model's layers, shapes and parameters")
    p.add_argument("model")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("evaluate", help="accuracy of a saved model on a dataset's test split")
    p.add_argument("model")
    _add_data_options(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="classify image files (PNG, JPEG, ...) with a model")
    p.add_argument("model")
    p.add_argument("images", nargs="+")
    p.add_argument("--top", type=int, default=3, help="how many classes to show")
    p.add_argument("--invert", default="auto", choices=("auto", "yes", "no"),
                   help="invert light-on-dark vs dark-on-light (auto: by the image border)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("filter", help="apply a classic kernel to an image (MATH.md section 3)")
    p.add_argument("image")
    p.add_argument("--kernel", required=True,
                   help="sobel-x, sobel-y, sobel, prewitt-x, prewitt-y, prewitt, laplacian, "
                        "sharpen, box, gaussian, emboss; or numbers '1,0,-1;2,0,-2;1,0,-1'; "
                        "or a .npy file")
    p.add_argument("--size", type=int, default=None, help="box/gaussian kernel size")
    p.add_argument("--sigma", type=float, default=1.0, help="gaussian sigma")
    p.add_argument("--padding", default="same", help="same, valid or a number")
    p.add_argument("--stride", type=int, default=1)
    p.add_argument("--padding-mode", default="zeros",
                   choices=("zeros", "reflect", "replicate", "circular"),
                   help="what the padding holds (zeros, as MATH.md section 4; reflect avoids "
                        "a bright frame on photos)")
    p.add_argument("--correlate", action="store_true",
                   help="cross-correlate (as CNN layers do) instead of true convolution")
    p.add_argument("--output", default="auto", choices=("auto", "magnitude", "rescale", "clip"),
                   help="how values map to 0..255 (auto: magnitude for edges, clip for blurs)")
    p.add_argument("--mode", default=None, choices=("L", "RGB"),
                   help="read the image as grayscale or RGB (default: as it is)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_filter)

    p = sub.add_parser("download", help="download a dataset into the cache, verified")
    p.add_argument("name", choices=("mnist", "fashion-mnist", "kmnist", "cifar10"))
    p.add_argument("--dir", default=None, help="target folder (default: the cache)")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("explain", help="the article's figures from real computations")
    p.add_argument("topic", help="a topic name or 'all' (see clearconv.explain.TOPICS)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--image", default=None, help="your own image for the photo topics")
    p.add_argument("--model", default=None, help="a saved model for the 'model' topic")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("export", help="export a saved model to ONNX")
    p.add_argument("model")
    p.add_argument("--onnx", required=True, help="output .onnx file")
    p.add_argument("--opset", type=int, default=17)
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "invert", None) in ("yes", "no"):
        args.invert = args.invert == "yes"
    try:
        return int(args.func(args))
    except (ClearConvError, FileNotFoundError) as e:
        print(f"clearconv: error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        print(f"clearconv: error: {e} (install the optional extra, e.g. "
              f"pip install 'clearconv[explain]' or 'clearconv[onnx]')", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
