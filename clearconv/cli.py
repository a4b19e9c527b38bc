"""The ``clearconv`` command: argument parsing and printing over the Python API.

    clearconv train [--epochs 20 --batch-size 64 --lr 0.003 --optimizer adam --seed 0
                     --out digits-cnn.npz --metrics metrics.json]
    clearconv summary MODEL
    clearconv evaluate MODEL
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from .errors import ClearConvError


def _write_json_atomic(path: str, data: dict[str, Any]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".metrics-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


_RUN_FILE = "run.json"
#: train options a resumed run takes from the interrupted one
_RESUMED = ("epochs", "batch_size", "lr", "optimizer", "seed")


def cmd_train(args: argparse.Namespace) -> int:
    from . import optim, zoo
    from .callbacks import TerminateOnNaN
    from .data import load_digits, to_float

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
    x_train, y_train = load_digits("train", seed=args.seed)
    x_test, y_test = load_digits("test", seed=args.seed)
    x_train, x_test = to_float(x_train, max_value=16), to_float(x_test, max_value=16)
    model = zoo.digits_cnn(rng=args.seed)
    model.classes = [str(i) for i in range(10)]
    if args.verbose:
        print(f"dataset: embedded 8x8 digits (UCI), {len(x_train)} train / {len(x_test)} test")
        model.summary()
    opt = optim.make_optimizer(args.optimizer, model.parameters(), lr=args.lr)
    if args.checkpoint_dir and not args.resume:
        _write_json_atomic(os.path.join(args.checkpoint_dir, _RUN_FILE),
                           {key: getattr(args, key) for key in _RESUMED})
    nan_guard = TerminateOnNaN()
    t0 = time.perf_counter()
    try:
        history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                            optimizer=opt, verbose=1 if args.verbose else 0, seed=args.seed,
                            callbacks=[nan_guard], checkpoint_dir=args.checkpoint_dir,
                            resume=bool(args.resume))
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
    result = model.evaluate(x_test, y_test)
    model.save(args.out)
    print(f"test accuracy: {result['accuracy']:.4f}  test loss: {result['loss']:.4f}  "
          f"({history.epochs} epochs, {train_seconds:.1f} s)")
    print(f"model saved to {args.out}")
    if args.metrics:
        _write_json_atomic(args.metrics, {
            "dataset": "digits", "test_accuracy": result["accuracy"],
            "test_loss": result["loss"], "epochs": history.epochs,
            "train_seconds": train_seconds, "batch_size": args.batch_size, "lr": args.lr,
            "optimizer": args.optimizer, "seed": args.seed, "history": history.history,
        })
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from .model import load

    load(args.model).summary()
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .data import load_digits, to_float
    from .model import load

    model = load(args.model)
    x, y = load_digits("test", seed=args.seed)
    result = model.evaluate(to_float(x, max_value=16), y)
    print(f"test accuracy: {result['accuracy']:.4f}  test loss: {result['loss']:.4f}  "
          f"({len(y)} samples, embedded digits test split)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clearconv", description="A NumPy-only CNN library: train, inspect, evaluate.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train the default CNN on the embedded digits dataset")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--optimizer", default="adam",
                   help="sgd, momentum, nesterov, rmsprop, adam, adamw (default adam)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="digits-cnn.npz", help="where to save the model")
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

    p = sub.add_parser("evaluate", help="accuracy of a saved model on the digits test split")
    p.add_argument("model")
    p.add_argument("--seed", type=int, default=0, help="the split seed used for training")
    p.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ClearConvError, FileNotFoundError) as e:
        print(f"clearconv: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
