"""What the model's fusion pass buys: ``python -m benchmarks.fusion``.

A training step and batch-1000 inference of the MNIST CNN and LeNet-5, each model with
the fusion pass on (``Sequential(fuse=True)``, the default) and off, timed as paired,
interleaved samples in one process (the harness of :mod:`benchmarks.harness`, with its
settling calls). Prints the medians and the median of the per-pair ratios
unfused / fused (above 1: fusion saves that fraction), with the CPU, the thread count
and the BLAS, so the note that decides to keep the pass can cite this run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

import numpy as np

from .cases import LR, MOMENTUM, _batch, build_models
from .harness import environment, limit_threads, measure_pair


def _pair(arch: str, kind: str) -> tuple[Any, Any, dict[str, Any]]:
    from clearconv.optim import SGD

    import clearconv as cc

    fused, _ = build_models(arch)
    plain = cc.Sequential.from_config({**fused.get_config(), "fuse": False})
    plain.load_state_dict(fused.state_dict())
    assert plain.steps() == plain.layers and fused.steps() != fused.layers
    x, y = _batch(64 if kind == "train" else 1000)
    if kind == "train":
        opt_f = SGD(fused.parameters(), lr=LR, momentum=MOMENTUM)
        opt_p = SGD(plain.parameters(), lr=LR, momentum=MOMENTUM)
        return (lambda: fused.train_step(x, y, opt_f)), (lambda: plain.train_step(x, y, opt_p)), \
            {"steps": [type(s).__name__ for s in fused.steps()]}
    np.testing.assert_array_equal(fused.predict(x, 1000), plain.predict(x, 1000))
    return (lambda: fused.predict(x, 1000)), (lambda: plain.predict(x, 1000)), {}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fusion", description=__doc__)
    p.add_argument("--samples", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--settle-ms", type=float, default=25.0)
    args = p.parse_args(argv)
    with limit_threads(args.threads, with_torch=False):
        env = environment(args.threads)
        blas = [(i.get("internal_api"), i.get("architecture"), i.get("num_threads"))
                for i in env["threadpool_info"]] if isinstance(env["threadpool_info"], list) \
            else env["threadpool_info"]
        print(f"{env['cpu_model']}, {env['cpu_count']} CPUs, clearconv threads "
              f"{env['clearconv_threads']}, numba {env['numba']}, BLAS {blas}, "
              f"OPENBLAS_* {env['openblas_env'] or 'unset'}")
        print(f"{'case':<28} {'fused ms':>9} {'unfused ms':>11} {'unfused/fused':>14}")
        for arch in ("mnist_cnn", "lenet5"):
            for kind in ("train", "inference"):
                fused, plain, _ = _pair(arch, kind)
                raw = measure_pair(fused, plain, args.samples, warmup=2, settle=1,
                                   settle_ms=args.settle_ms)
                ratios = [b / a for a, b in zip(raw["a"], raw["b"])]
                print(f"{kind + ' ' + arch:<28} {statistics.median(raw['a']) * 1e3:>9.2f} "
                      f"{statistics.median(raw['b']) * 1e3:>11.2f} "
                      f"{statistics.median(ratios):>8.2f} [{min(ratios):.2f}-{max(ratios):.2f}]",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
