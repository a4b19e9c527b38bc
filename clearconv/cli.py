"""The ``clearconv`` command: argument parsing and printing over the Python API.

    clearconv train [--dataset digits|mnist|fashion-mnist|kmnist|cifar10|folder]
                    [--model NAME] [--data-dir D] [--download] [--image-size H W]
                    [--epochs N] [--batch-size 64] [--lr LR] [--optimizer adam] [--seed 0]
                    [--val-split 0.0] [--augment | --no-augment] [--out MODEL]
                    [--metrics metrics.json] [--quiet] [--checkpoint-dir D | --resume D]
    clearconv summary MODEL
    clearconv evaluate MODEL [--dataset ... --data-dir D]
    clearconv predict MODEL IMAGE... [--top 3] [--invert auto|yes|no] [--show-input PNG]
    clearconv filter IMAGE --kernel sobel --out OUT.png [--size 5 --sigma 1.0 ...]
    clearconv download mnist|fashion-mnist|kmnist|cifar10 [--dir D]
    clearconv explain TOPIC|all --out DIR [--image IMG] [--model MODEL [--dataset D]]
    clearconv export MODEL --onnx OUT.onnx [--opset 17]
    clearconv explore [MODEL] [--image IMG] [--out explorer.html] [--class K]
    clearconv serve [MODEL] [--host 127.0.0.1] [--port 8000]

Every option value is checked by its argparse type before anything loads; errors print
one line (exit 2).
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from .errors import ClearConvError

#: train flags that change the dataset's recipe (clearconv.train.recipes) when given
_RECIPE_FLAGS = ("model", "epochs", "lr", "optimizer", "batch_size", "val_split")

#: the input shape (C, H, W) of each dataset's images (folder: --image-size, channels
#: as the images have them)
_DATASET_SHAPES = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28),
                   "kmnist": (1, 28, 28), "cifar10": (3, 32, 32)}


# ----------------------------------------------------------- option values, checked first
def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= minimum, or an error naming the value."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _positive(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _fraction(text: str) -> float:
    value = _number(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _optimizer(text: str) -> str:
    from .train.optim import OPTIMIZERS

    name = text.strip().lower()
    if name not in OPTIMIZERS:
        raise argparse.ArgumentTypeError(
            f"unknown optimizer {text!r}{_did_you_mean(name, OPTIMIZERS)}; choose one of "
            f"{', '.join(OPTIMIZERS)}")
    return name


#: clearconv.explain.TOPICS, written out so that --help does not import the figure code
#: (tests/test_cli_validation.py holds the two equal)
TOPICS = ("image", "convolution", "filters", "padding", "stride", "volume", "sharing",
          "backward", "pooling", "pooling-backward", "model")


def _topic(text: str) -> str:
    name = text.strip().lower().replace("_", "-")
    if name not in (*TOPICS, "all"):
        raise argparse.ArgumentTypeError(
            f"unknown topic {text!r}{_did_you_mean(name, (*TOPICS, 'all'))}; topics: "
            f"{', '.join(TOPICS)}, or all for every figure and index.html")
    return name


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, each option's default appended where its help does not say
    it already (and the option has one worth showing)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text or default is None or default is False
                or default == argparse.SUPPRESS or isinstance(default, list)
                or isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction))):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


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


def _train_recipe(args: argparse.Namespace) -> Any:
    """The run's recipe: the dataset's, changed by the flags given; with ``--resume D`` the
    one saved in D's checkpoint, whose seed and data options then replace the flags'."""
    from .train import BackupAndRestore, Recipe, recipe

    if not args.resume:
        changes = {k: getattr(args, k) for k in _RECIPE_FLAGS if getattr(args, k) is not None}
        if args.augment is not None:          # --augment / --no-augment; else the recipe's
            changes["augment"] = args.augment
        return recipe(args.dataset, **changes)
    saved = BackupAndRestore.saved_options(args.resume)
    if not {"recipe", "seed", "data"} <= set(saved):
        raise ClearConvError(f"the checkpoint in {args.resume} holds no clearconv train options "
                             f"(written by a script, or by clearconv 0.1): resume it from there")
    r = _resumed_recipe(args, saved, Recipe)
    args.dataset, args.seed = r.dataset, saved["seed"]
    args.data_dir, args.image_size = saved["data"]["data_dir"], saved["data"]["image_size"]
    # the run's files: where the interrupted run would have written them, unless given now
    args.run_id = saved.get("run_id")
    args.out = args.out or saved.get("out")
    args.metrics = args.metrics or saved.get("metrics")
    return r


def _resumed_recipe(args: argparse.Namespace, saved: dict[str, Any], recipe_type: Any) -> Any:
    """The checkpoint's recipe, with --epochs applied where that is safe; any other option
    given beside --resume must agree with the checkpoint's run (ClearConvError naming
    those that do not)."""
    from ._runs import resume_conflicts

    if not isinstance(saved["recipe"], dict) or not isinstance(saved["data"], dict) or \
            isinstance(saved["seed"], bool) or not isinstance(saved["seed"], int) or \
            saved["seed"] < 0:
        raise ClearConvError(f"the checkpoint in {args.resume} holds damaged train options "
                             f"(recipe, seed or data)")
    r = recipe_type.from_dict(saved["recipe"])
    data = saved["data"]
    given = {k: getattr(args, k) for k in _RECIPE_FLAGS if getattr(args, k) is not None}
    stored = {**r.to_dict(), "dataset": r.dataset, "seed": saved["seed"],
              "data_dir": data.get("data_dir"), "image_size": data.get("image_size")}
    for name, default in (("dataset", "digits"), ("seed", 0)):
        if getattr(args, name) != default:
            given[name] = getattr(args, name)
    if args.data_dir is not None:
        given["data_dir"] = os.path.abspath(args.data_dir)
    if args.image_size is not None:
        given["image_size"] = list(args.image_size)
    epochs = given.pop("epochs", None)
    conflicts = resume_conflicts(given, stored)
    if args.augment is not None and args.augment != bool(r.augment):
        conflicts.append("--augment (the checkpoint's run trains without augmentation)"
                         if args.augment else
                         f"--no-augment (the checkpoint's run augments: "
                         f"{', '.join(r.augment)})")
    if epochs is not None and epochs != r.epochs and r.schedule is not None:
        conflicts.append(f"--epochs {epochs} (the checkpoint's run has {r.epochs} on a "
                         f"{r.schedule} schedule, which the epochs shape)")
    if conflicts:
        raise ClearConvError(f"--resume {args.resume} continues the run saved there; these "
                             f"options contradict it: {', '.join(conflicts)}. Leave them "
                             "out, or start a new run")
    return r if epochs is None else r.replace(epochs=epochs)


def _default_out(args: argparse.Namespace, r: Any) -> str:
    return args.out or (f"{r.dataset}-cnn.npz" if args.model is None
                        else f"{r.dataset}-{r.model}.npz")


def _run_folder(args: argparse.Namespace, backup_dir: str | None) -> Any:
    """The checkpoint folder held for this run (rank 0 only), or a no-op."""
    import contextlib

    from ._runs import RunFolder

    if not backup_dir or not args.group.root:
        return contextlib.nullcontext()
    return RunFolder(backup_dir, fresh=not args.resume, overwrite=args.overwrite)


def cmd_train(args: argparse.Namespace) -> int:
    group = args.group              # several MPI processes: each trains on its share
    if not group.root:              # rank 0 alone prints and writes the model
        args.verbose, args.metrics = False, None
    say = print if group.root else _silent
    r = _train_recipe(args)
    backup_dir = args.resume or args.checkpoint_dir
    if group.root:     # every file the run writes, checked before any data loads
        from ._runs import check_output_file

        check_output_file(_default_out(args, r), "model file")
        check_output_file(args.metrics, "metrics file")
    with _run_folder(args, backup_dir):
        return _train(args, r, backup_dir, say)


def _train(args: argparse.Namespace, r: Any, backup_dir: str | None, say: Any) -> int:
    from ._runs import new_run_id
    from .errors import NumericalError
    from .train.checkpoint import checkpoint_path

    group = args.group
    ds = _load_data(args)
    x, y, validation = r.split(ds.x_train, ds.y_train, seed=args.seed)
    model = r.build_model(ds.input_shape, len(ds.classes), seed=args.seed)
    model.classes = list(ds.classes)
    if args.verbose:
        print(f"dataset: {ds.source}: {len(x)} train"
              + (f" / {len(validation[0])} validation" if validation else "")
              + f" / {len(ds.x_test)} test, {len(ds.classes)} classes")
        model.summary()
    data = {"data_dir": os.path.abspath(args.data_dir) if args.data_dir else None,
            "image_size": args.image_size}
    out = _default_out(args, r)
    files = {"out": os.path.abspath(out),
             "metrics": os.path.abspath(args.metrics) if args.metrics else None,
             "run_id": getattr(args, "run_id", None) or new_run_id()}
    if group.root:     # the model's folder now, not after the training
        os.makedirs(os.path.dirname(files["out"]), exist_ok=True)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # an overflow shows as the NaN/Inf that the NumericalError below names
            warnings.filterwarnings("ignore", category=RuntimeWarning,
                                    message="(overflow|invalid value|divide by zero) encountered")
            history = r.fit(model, x, y, validation_data=validation, seed=args.seed,
                            verbose=1 if args.verbose else 0, backup_dir=backup_dir,
                            resume=bool(args.resume), options={"data": data, **files},
                            distributed=group if group.size > 1 else None)
    except KeyboardInterrupt as e:
        say(f"\nclearconv: {e or 'interrupted'}", file=sys.stderr)
        if backup_dir:
            say(f"resume with: clearconv train --resume {backup_dir}", file=sys.stderr)
        return 130
    except NumericalError as e:
        kept = (f" The last good checkpoint is kept in {backup_dir}." if backup_dir
                and os.path.exists(checkpoint_path(backup_dir)) else
                f" No checkpoint was written to {backup_dir}." if backup_dir else "")
        say(f"clearconv: training stopped: {e}{kept}", file=sys.stderr)
        return 3
    train_seconds = time.perf_counter() - t0
    result = group.evaluate(model, ds.x_test, r.targets(ds.x_test, ds.y_test), batch_size=256)
    # the file says what it was trained on, and how (explain --model draws the curves)
    model.trained_on, model.train_history = r.dataset, dict(history.history)
    if group.root:
        model.save(out)
    say(f"{_result_text(result)}  ({history.epochs} epochs, {train_seconds:.1f} s)")
    if group.size > 1:
        comm = sum(history.history.get("allreduce_seconds", []))
        steps = max(history.epochs, 1) * -(-len(x) // (group.size * r.batch_size))
        say(f"data-parallel: {group.size} processes x {r.batch_size} = global batch "
            f"{group.size * r.batch_size}; Allreduce {1e3 * comm / steps:.2f} ms per step, "
            f"{comm / max(sum(history.history['seconds']), 1e-9):.1%} of the training time "
            f"(waiting for the slowest process included)")
    say(f"model saved to {out}")
    if args.metrics:
        _write_json_atomic(args.metrics, {
            "dataset": r.dataset, "model": r.model, "loss": model.loss_fn.name,
            "test_accuracy": result.get("accuracy"),
            "test_loss": result["loss"], "epochs": history.epochs,
            "train_seconds": train_seconds,
            "seconds_per_epoch": (sum(history.history["seconds"]) / history.epochs
                                  if history.epochs else None),
            "epoch_seconds": list(history.history.get("seconds", [])),
            "batch_size": r.batch_size, "lr": r.lr, "optimizer": r.optimizer,
            "seed": args.seed, "augment": bool(r.augment), "val_split": r.val_split,
            "history": history.history,
        })
    return 0


def _result_text(result: dict[str, float]) -> str:
    """``test accuracy: A  test loss: L`` (the loss alone for a model without accuracy)."""
    loss = f"test loss: {result['loss']:.4f}"
    return f"test accuracy: {result['accuracy']:.4f}  {loss}" if "accuracy" in result else loss


def cmd_summary(args: argparse.Namespace) -> int:
    from .train.sequential import load

    load(args.model).summary()
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .train.recipes import evaluation_targets
    from .train.sequential import load

    model = load(args.model)
    _check_model_fits_dataset(model, args)
    ds = _load_data(args)
    _check_model_classes(model, ds, args)
    result = model.evaluate(ds.x_test, evaluation_targets(model, ds.x_test, ds.y_test))
    print(f"{_result_text(result)}  ({len(ds.y_test)} samples, {ds.source}, test split)")
    return 0


def _check_model_fits_dataset(model: Any, args: argparse.Namespace) -> None:
    """Before any data loads: the model's input shape against the dataset's, with the
    --dataset that fits (by shape, then by the model's class names) when it differs."""
    shape = tuple(model.input_shape or ())
    if args.dataset == "folder":
        size = tuple(args.image_size) if args.image_size else (32, 32)
        if len(shape) == 3 and shape[1:] != size:
            raise ClearConvError(f"{args.model} takes {shape[1]}x{shape[2]} images, "
                                 f"--dataset folder makes {size[0]}x{size[1]}: pass "
                                 f"--image-size {shape[1]} {shape[2]}")
        return
    expected = _DATASET_SHAPES.get(args.dataset)
    if not shape or expected is None or shape == expected:
        return
    fits = [name for name, s in _DATASET_SHAPES.items() if s == shape]
    named = [name for name in fits if list(_classes_of(name)) == list(model.classes or [])]
    fits = named or fits
    hint = (f": pass --dataset {' or --dataset '.join(fits)}" if fits else
            f"; for your own images pass --dataset folder --data-dir D --image-size "
            f"{shape[1]} {shape[2]}" if len(shape) == 3 else "")
    raise ClearConvError(f"{args.model} takes inputs of shape {shape}, --dataset "
                         f"{args.dataset} gives {expected}{hint}")


def _check_model_classes(model: Any, ds: Any, args: argparse.Namespace) -> None:
    """A classifier's class names (or, without names, its output count) against the
    dataset's: a 10-class model on a 2-class folder would report a meaningless accuracy."""
    if not model.loss_fn.classifier or model.input_shape is None:
        return
    names = list(model.classes) if model.classes else None
    if names is not None and names != list(ds.classes):
        raise ClearConvError(f"{args.model} was trained on the classes {names}, the dataset "
                             f"has {list(ds.classes)}: its accuracy there would mean nothing")
    outputs = model.build(model.input_shape)[-1]
    if names is None and tuple(outputs) != (len(ds.classes),):
        raise ClearConvError(f"{args.model} has {outputs} outputs, the dataset "
                             f"{len(ds.classes)} classes")


def _classes_of(dataset: str) -> tuple[str, ...]:
    from .data import CIFAR10_CLASSES, DIGITS_CLASSES, idx_classes

    if dataset == "digits":
        return tuple(DIGITS_CLASSES)
    if dataset == "cifar10":
        return tuple(CIFAR10_CLASSES)
    return tuple(idx_classes(dataset))


def cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from .data.images import fit_to_model, prepare_digit, read_image, save_image
    from .train.sequential import load

    model = load(args.model)
    if model.input_shape is None or len(model.input_shape) != 3:
        raise ClearConvError(f"{args.model}: predict needs an image model with a known "
                             f"(C, H, W) input shape")
    if not model.loss_fn.classifier:
        raise ClearConvError(f"{args.model}: predict needs a classifier; this model was "
                             f"trained with the {model.loss_fn.name} loss")
    c, h, w = model.input_shape
    classes = model.classes or [str(i) for i in range(10)]
    digits = is_digit_model(model)
    for i, path in enumerate(args.images):
        image, steps = read_image(path)
        if digits:   # MNIST's own preparation of a photographed digit
            ink = {"auto": "auto", True: "dark", False: "light"}[args.invert]
            x, more = prepare_digit(image, (h, w), ink=ink)
        elif model.trained_on == "folder" and args.invert == "auto":
            # as the folder's images were read for training (data/folder.py): no guess
            x, more = read_image(path, mode="L" if c == 1 else "RGB", size=(h, w))
            steps = ["read as the training folder's images were"]
        else:
            x, more = fit_to_model(image, c, (h, w), invert=args.invert)
        probs = model.predict_proba(x[None].astype(np.float32) / 255.0)[0]
        print(f"{path}: converted: {'; '.join(steps + more) or 'nothing to convert'}; "
              f"scaled to [0, 1]")
        if args.show_input:
            shown = _numbered(args.show_input, i, len(args.images))
            save_image(x, shown, mode="clip")
            print(f"  what the model sees ({w}x{h}): {shown}")
        for k in np.argsort(-probs, kind="stable")[:args.top]:
            print(f"  {classes[k]:>12}  {probs[k]:.4f}")
    return 0


def is_digit_model(model: Any) -> bool:
    """A grayscale model of the ten digits (MNIST's, the embedded digits' or the like):
    predict prepares photos for it as MNIST prepared its digits."""
    return (tuple(model.input_shape or ())[:1] == (1,)
            and (model.trained_on in ("mnist", "digits")
                 or list(model.classes or []) == [str(d) for d in range(10)]))


def _numbered(path: str, i: int, n: int) -> str:
    """``path`` for one image, ``stem-<i+1>.suffix`` for the i-th of several."""
    if n == 1:
        return path
    stem, dot, suffix = path.rpartition(".")
    return f"{stem}-{i + 1}.{suffix}" if dot else f"{path}-{i + 1}"


def cmd_filter(args: argparse.Namespace) -> int:
    from .data.images import read_image, save_image
    from .filters import MAX_FILTER_PIXELS, filter_image

    image, steps = read_image(args.image, mode=args.mode, max_pixels=MAX_FILTER_PIXELS)
    padding: Any = args.padding
    if padding.isdigit():
        padding = int(padding)
    result = filter_image(image, args.kernel, size=args.size, sigma=args.sigma,
                          padding=padding, stride=args.stride, correlate=args.correlate,
                          output=args.output, padding_mode=args.padding_mode)
    save_image(result.image, args.out, mode="clip")
    kind = "cross-correlation (kernel not flipped)" if args.correlate else \
        "true convolution (kernel rotated 180 degrees, docs/MATH.md §3)"
    print(f"{args.image} {image.shape[1]}x{image.shape[2]} (HxW, {image.shape[0]} channel(s)"
          f"{'; ' + '; '.join(steps) if steps else ''}) -> {args.out} "
          f"{result.image.shape[-2]}x{result.image.shape[-1]} (HxW)")
    print(f"kernel {args.kernel}: {kind}, padding {args.padding} ({args.padding_mode}), "
          f"stride {args.stride}")
    print(f"values to 0..255: {result.mapping}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from .data import download

    path = download(args.name, root=args.dir, progress=True, mirrors=args.mirror)
    print(f"{args.name}: files verified in {path}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from . import explain
    from ._runs import check_output_folder
    from .train.sequential import load

    check_output_folder(args.out, "output folder")   # before any figure is computed
    model = load(args.model) if args.model else None
    data = {"dataset": args.dataset, "data_dir": args.data_dir}
    if args.topic == "all":
        results = explain.explain_all(args.out, image=args.image, model=model, seed=args.seed,
                                      **data)
    else:
        results = [explain.run(args.topic, args.out, image=args.image, model=model,
                               seed=args.seed, **data)]
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


def cmd_explore(args: argparse.Namespace) -> int:
    from .explore import explore

    try:
        r = explore(args.model, image=args.image, out=args.out, target=args.target,
                    all_classes=True if args.all_classes else "auto", seed=args.seed)
    except IsADirectoryError as e:
        raise ClearConvError(f"cannot write {args.out}: it is a folder") from e
    except PermissionError as e:
        raise ClearConvError(f"cannot write {args.out}: {e.strerror}") from e
    cls = r.data.meta["classes"]
    print(f"{r.path}: {r.size_bytes / 1e6:.2f} MB; {r.model_source}; input: {r.input_source}; "
          f"prediction {cls[r.prediction]}; open it in a browser (no network needed)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .explore.server import serve

    def ready(server: Any) -> None:
        print(f"clearconv explorer: {server.url} (Ctrl-C stops it)", flush=True)

    if not 0 <= args.port <= 65535:
        raise ClearConvError(f"--port must be 0..65535, got {args.port}")
    try:
        serve(args.model, host=args.host, port=args.port, seed=args.seed, ready=ready)
    except (OSError, OverflowError) as e:           # address in use, unknown host, ...
        raise ClearConvError(f"cannot serve on {args.host}:{args.port}: {e}") from None
    return 0


def _add_data_options(p: argparse.ArgumentParser) -> None:
    from .data import DATASET_NAMES

    p.add_argument("--dataset", default="digits", choices=DATASET_NAMES,
                   help="default: the embedded 8x8 digits")
    p.add_argument("--data-dir", default=None,
                   help="folder with the dataset's files (or the image folder); default: the "
                        "download cache ($CLEARCONV_DATA or ~/.cache/clearconv)")
    p.add_argument("--image-size", type=_int_at_least(1), nargs=2, metavar=("H", "W"),
                   default=None, help="size of --dataset folder images (default 32 32)")
    p.add_argument("--seed", type=_int_at_least(0), default=0,
                   help="random seed of the initial weights, the shuffling and the splits")


def _recipe_defaults(field: str) -> str:
    """``'digits 20, mnist 5, ...'``: a recipe field's default for every dataset."""
    from .train.recipes import RECIPES

    def default(r: Any) -> str:
        value = f"{getattr(r, field)}"
        return f"{value} {r.schedule}" if field == "lr" and r.schedule else value

    return ", ".join(f"{name} {default(r)}" for name, r in RECIPES.items())


def _augmented_by_default() -> str:
    """``'mnist and fashion-mnist'``: the datasets whose recipe augments by default."""
    from .train.recipes import RECIPES

    names = [name for name, r in RECIPES.items() if r.augment]
    if len(names) > 1:
        return f"{', '.join(names[:-1])} and {names[-1]}"
    return names[0] if names else "none"


def _model_names() -> list[str]:
    from .train.recipes import MODELS

    return list(MODELS)


def _silent(*args: Any, **kwargs: Any) -> None:
    """print on the ranks other than 0 of a data-parallel run."""


def _group(args: argparse.Namespace) -> Any:
    """The processes ``clearconv train`` runs on: a DataParallel group when an MPI
    launcher started several, else one process."""
    from .train.distributed import DataParallel, SingleProcess, launched_by_mpi

    if args.command != "train" or not launched_by_mpi():
        return SingleProcess()
    group = DataParallel(lr_scaling=None if args.lr_scaling == "none" else args.lr_scaling,
                         warmup_epochs=args.warmup_epochs)
    sys.excepthook = lambda kind, error, tb: group.abort(error)  # one rank's crash ends all
    return group


def build_parser() -> argparse.ArgumentParser:
    from .data import DATASET_NAMES
    from .train.optim import OPTIMIZERS

    parser = argparse.ArgumentParser(
        prog="clearconv", description="A NumPy-only CNN library: train, inspect, predict, "
                                      "filter, explain, export. The math: docs/MATH.md.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                title="commands (clearconv COMMAND --help for each)")
    sub_parser = sub.add_parser

    def add_parser(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub_parser(name, formatter_class=_HelpFormatter, **kwargs)

    sub.add_parser = add_parser  # type: ignore[method-assign]

    p = sub.add_parser("train", help="train a CNN (default: the embedded digits)")
    _add_data_options(p)
    p.add_argument("--model", default=None, choices=_model_names(), metavar="NAME",
                   help=f"the architecture: {', '.join(_model_names())} (default: the "
                        f"dataset's recipe: {_recipe_defaults('model')}; conv-autoencoder "
                        f"trains with mse and reports the loss)")
    p.add_argument("--download", action="store_true",
                   help="download the dataset first if missing (checksums verified)")
    p.add_argument("--epochs", type=_int_at_least(1), default=None,
                   help=f"default: the dataset's recipe ({_recipe_defaults('epochs')})")
    p.add_argument("--batch-size", type=_int_at_least(1), default=None,
                   help="images per step (default 64)")
    p.add_argument("--lr", type=_positive, default=None,
                   help=f"default: the dataset's recipe ({_recipe_defaults('lr')})")
    p.add_argument("--optimizer", type=_optimizer, default=None, metavar="NAME",
                   help=f"{', '.join(OPTIMIZERS)} (default adam)")
    p.add_argument("--val-split", type=_fraction, default=None, metavar="F",
                   help="hold out this fraction of the training set for validation (default 0)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="random shifts of up to 2 pixels (and horizontal flips for "
                        "cifar10 and fashion-mnist); --no-augment trains without (default: "
                        f"the dataset's recipe, on for {_augmented_by_default()})")
    p.add_argument("--out", default=None, metavar="MODEL",
                   help="where to save the model (default DATASET-cnn.npz)")
    p.add_argument("--metrics", default=None, metavar="JSON",
                   help="write a JSON file with the results (README: the metrics file)")
    p.add_argument("--quiet", dest="verbose", action="store_false",
                   help="no progress bar or summary")
    p.add_argument("--checkpoint-dir", default=None,
                   help="save the whole run there (model, optimizer, schedule, RNG states, "
                        "position, options) when it starts, after every epoch and on Ctrl-C")
    p.add_argument("--resume", default=None, metavar="DIR",
                   help="continue the run checkpointed in DIR (its options are reused); "
                        "other options given must agree with the saved run's, except "
                        "--epochs (train on to that many epochs; not for a recipe with a "
                        "schedule), --out, --metrics and --quiet")
    p.add_argument("--overwrite", action="store_true",
                   help="start a new run in a --checkpoint-dir that holds another run's "
                        "checkpoint (replaced); without it such a folder is refused")
    p.add_argument("--lr-scaling", default="none", choices=("none", "linear"),
                   help="under mpiexec: multiply the learning rate by the number of processes "
                        "(the global batch grows with them); default none")
    p.add_argument("--warmup-epochs", type=_non_negative, default=0.0,
                   help="with --lr-scaling linear: reach the scaled rate over this many epochs")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("summary", help="print a saved model's layers, shapes and parameters")
    p.add_argument("model", help="a model file written by clearconv train (.npz)")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("evaluate", help="accuracy of a saved model on a dataset's test split")
    p.add_argument("model", help="a model file written by clearconv train (.npz)")
    _add_data_options(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="classify image files (PNG, JPEG, ...) with a model")
    p.add_argument("model", help="a model file written by clearconv train (.npz)")
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="image files (PNG, JPEG, ...), e.g. photos of handwritten digits")
    p.add_argument("--top", type=_int_at_least(1), default=3, help="how many classes to show")
    p.add_argument("--invert", default="auto", choices=("auto", "yes", "no"),
                   help="invert light-on-dark vs dark-on-light (auto: by the image border; "
                        "for digit models: yes = dark ink on light paper, no = light ink)")
    p.add_argument("--show-input", default=None, metavar="PNG",
                   help="write what the model sees (its input size) to this image file "
                        "(several images: PNG-1, PNG-2, ...)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("filter", help="apply a classic kernel to an image (docs/MATH.md §3)")
    p.add_argument("image", help="an image file (PNG, JPEG, ...)")
    p.add_argument("--kernel", required=True,
                   help="sobel-x, sobel-y, sobel, prewitt-x, prewitt-y, prewitt, laplacian, "
                        "sharpen, box, gaussian, emboss; or numbers '1,0,-1;2,0,-2;1,0,-1'; "
                        "or a .npy file")
    p.add_argument("--size", type=_int_at_least(1), default=None,
                   help="box/gaussian kernel size (default: 3 for box, 2*ceil(3 sigma)+1 for "
                        "gaussian)")
    p.add_argument("--sigma", type=_positive, default=1.0, help="gaussian sigma in pixels")
    p.add_argument("--padding", default="same", help="same, valid or a number of pixels")
    p.add_argument("--stride", type=_int_at_least(1), default=1,
                   help="keep every S-th output pixel")
    p.add_argument("--padding-mode", default="zeros",
                   choices=("zeros", "reflect", "replicate", "circular"),
                   help="what the padding holds (zeros, as docs/MATH.md §4; reflect avoids "
                        "a bright frame on photos)")
    p.add_argument("--correlate", action="store_true",
                   help="cross-correlate (as CNN layers do) instead of true convolution")
    p.add_argument("--output", default="auto", choices=("auto", "magnitude", "rescale", "clip"),
                   help="how values map to 0..255 (auto: magnitude for edges, clip for blurs)")
    p.add_argument("--mode", default=None, choices=("L", "RGB"),
                   help="read the image as grayscale or RGB (default: as it is)")
    p.add_argument("--out", required=True, help="the filtered image file (PNG, ...)")
    p.set_defaults(func=cmd_filter)

    p = sub.add_parser("download", help="download a dataset into the cache, verified")
    p.add_argument("name", choices=("mnist", "fashion-mnist", "kmnist", "cifar10"),
                   help="the dataset: mnist, fashion-mnist, kmnist or cifar10")
    p.add_argument("--dir", default=None, help="target folder (default: the cache)")
    p.add_argument("--mirror", action="append", default=None, metavar="URL",
                   help="a base URL to download from instead of the known mirrors (repeat "
                        "for several, tried in order; default: $CLEARCONV_MIRRORS, commas "
                        "between URLs, {name} for the dataset, else the known mirrors); "
                        "the published checksums and sizes are still checked")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("explain", help="the article's figures from real computations",
                       description="Write the figures of one topic (or all of them and "
                                   "index.html). Topics, in the article's order: "
                                   + ", ".join(TOPICS) + "; all: every one.")
    p.add_argument("topic", type=_topic, metavar="TOPIC",
                   help=f"one of {', '.join(TOPICS)}, or all")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--image", default=None, help="your own image for the photo topics")
    p.add_argument("--model", default=None,
                   help="a saved model for the 'model' topic (default: train the digits CNN)")
    p.add_argument("--dataset", default=None, choices=DATASET_NAMES,
                   help="the model's dataset: its test images are the input, the confusion "
                        "matrix and the saliency maps (default: the one the model file "
                        "names, else digits)")
    p.add_argument("--data-dir", default=None,
                   help="folder with the dataset's files (default: the download cache)")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="random seed")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("export", help="export a saved model to ONNX")
    p.add_argument("model", help="a model file written by clearconv train (.npz)")
    p.add_argument("--onnx", required=True, help="output .onnx file")
    p.add_argument("--opset", type=_int_at_least(1), default=17, help="ONNX opset version")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("explore", help="one HTML file: every number of the model on an image")
    p.add_argument("model", nargs="?", default=None,
                   help="a saved model (default: the digits CNN, trained here in seconds)")
    p.add_argument("--image", default=None, help="your image (default: a real digit)")
    p.add_argument("--out", default="explorer.html", help="the HTML file (default explorer.html)")
    p.add_argument("--class", dest="target", type=int, default=None, metavar="K",
                   help="the class the backward view back-propagates (default: the label, "
                        "else the prediction)")
    p.add_argument("--all-classes", action="store_true",
                   help="ship the backward pass of every class (default: when the file stays "
                        "under 3 MB)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_explore)

    p = sub.add_parser("serve", help="the explorer live: draw a digit, see every number")
    p.add_argument("model", nargs="?", default=None, help="a saved model (default: digits CNN)")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this computer only)")
    p.add_argument("--port", type=int, default=8000, help="default 8000 (0: any free port)")
    p.add_argument("--seed", type=int, default=0, help="picks the first digit shown")
    p.set_defaults(func=cmd_serve)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """parse_args, but an unknown option is reported by its subcommand's parser (its
    usage, and the closest option it has)."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        commands = next(a for a in parser._actions
                        if isinstance(a, argparse._SubParsersAction)).choices
        p = commands.get(args.command, parser)
        known = [s for a in p._actions for s in a.option_strings]
        hint = next((_did_you_mean(e.split("=")[0], known) for e in extra
                     if e.startswith("-") and _did_you_mean(e.split("=")[0], known)), "")
        p.error(f"unrecognized arguments: {' '.join(extra)}{hint}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(build_parser(), argv)
    if getattr(args, "invert", None) in ("yes", "no"):
        args.invert = args.invert == "yes"
    try:
        args.group = _group(args)
    except ClearConvError as e:
        print(f"clearconv: error: {e}", file=sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except (ClearConvError, OSError) as e:   # a missing file, a full disk: one line
        _fail_everywhere(args.group, e)
        print(f"clearconv: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:                # Ctrl-C at any point (loading data, ...)
        print("\nclearconv: interrupted", file=sys.stderr)
        return 130
    except ImportError as e:
        print(f"clearconv: error: {e} (install the optional extra, e.g. "
              f"pip install 'clearconv[explain]' or 'clearconv[onnx]')", file=sys.stderr)
        return 2


def _fail_everywhere(group: Any, error: BaseException) -> None:
    """In a data-parallel run, an error that only this rank may have met (a missing file)
    aborts the job, so that the other ranks do not wait for this one forever; errors every
    rank raises together (DistributedError, NumericalError) end each rank normally."""
    from .errors import DistributedError, NumericalError

    if group.size > 1 and not isinstance(error, (DistributedError, NumericalError)):
        group.abort(error)


if __name__ == "__main__":
    sys.exit(main())
