"""Start-up and one-image prediction, wall time of whole processes:
``python -m benchmarks.startup [--model M.npz] [--image IMG] [--repeat 5]``.

Each command runs ``--repeat`` times in a fresh Python process, the commands interleaved
(A, B, C, ..., A, B, C, ...), and the median and min-max of the wall times are printed:

- ``python -c "import clearconv"`` and ``python -m clearconv --help`` (neither imports
  Numba, matplotlib, onnx or torch);
- ``python -m clearconv predict MODEL IMAGE``, as installed (with Numba when it is) and
  with ``CLEARCONV_JIT=0``;
- the same prediction through PyTorch (:mod:`benchmarks.torch_predict`), when torch is
  installed, and ``python -c "import torch"`` alone.

Without ``--model`` the MNIST recipe's CNN is built untrained (its prediction takes the
same time as a trained one's); without ``--image`` a 160x200 picture of a stroke is
written. Machine load shows in the min-max: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _inputs(tmp: Path, model: str | None, image: str | None) -> tuple[str, str]:
    if model is None:
        from clearconv.train import recipe

        m = recipe("mnist").build_model((1, 28, 28), 10, seed=0)
        model = str(tmp / "mnist-untrained.npz")
        m.save(model)
    if image is None:
        import numpy as np
        from PIL import Image

        a = np.full((200, 160), 230, np.uint8)
        a[50:150, 70:90] = 20
        image = str(tmp / "stroke.png")
        Image.fromarray(a).save(image)
    return model, image


def commands(model: str, image: str) -> dict[str, tuple[list[str], dict[str, str]]]:
    py, env = sys.executable, dict(os.environ)
    cmds = {
        "import clearconv": ([py, "-c", "import clearconv"], env),
        "clearconv --help": ([py, "-m", "clearconv", "--help"], env),
        "clearconv predict": ([py, "-m", "clearconv", "predict", model, image], env),
        "clearconv predict, CLEARCONV_JIT=0": ([py, "-m", "clearconv", "predict", model, image],
                                               {**env, "CLEARCONV_JIT": "0"}),
    }
    if importlib.util.find_spec("torch") is not None:
        cmds["torch predict"] = ([py, str(ROOT / "benchmarks" / "torch_predict.py"), model,
                                  image], env)
        cmds["import torch"] = ([py, "-c", "import torch"], env)
    return cmds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a model file (default: MNIST CNN)")
    parser.add_argument("--image", default=None, help="an image file (default: written)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each command")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        model, image = _inputs(Path(tmp), args.model, args.image)
        cmds = commands(model, image)
        times: dict[str, list[float]] = {name: [] for name in cmds}
        for _ in range(args.repeat):
            for name, (cmd, env) in cmds.items():
                t0 = time.perf_counter()
                subprocess.run(cmd, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
                times[name].append(time.perf_counter() - t0)
    print(f"wall seconds over {args.repeat} fresh processes each ({sys.executable}):")
    for name, ts in times.items():
        print(f"  {name:<36} median {statistics.median(ts):.3f}  "
              f"min {min(ts):.3f}  max {max(ts):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
