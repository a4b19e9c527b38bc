"""Fresh-process runs: ``python -m benchmarks.worker SPEC_JSON``.

``SPEC_JSON`` is a JSON object with a ``kind``:

- ``"case"``: one micro case (``name``, ``samples``, ``warmup``, ``threads``, and
  optionally ``settle``, ``settle_ms``) timed as in
  the main process, but in a process that has touched no memory before it;
- ``"epoch"``: one training epoch (see :func:`benchmarks.epoch.run_epoch`);
- ``"first_call"``: import one ``framework`` ('clearconv' or 'torch'), build the
  network of ``config`` (a clearconv config) and classify one image: what a
  fresh ``clearconv predict`` pays (:func:`first_call`).

The worker prints its result as one line ``BENCH-RESULT {json}`` on stdout.
:func:`run_fresh` is the parent's side: it starts the worker and reads that line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

MARKER = "BENCH-RESULT "
REPO_ROOT = Path(__file__).resolve().parents[1]


def run_fresh(spec: dict[str, Any], timeout: float = 1800.0) -> dict[str, Any]:
    """Run ``spec`` in a new Python process; its result, or ``{'error': ...}``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH"))
                                        if p)
    cmd = [sys.executable, "-m", "benchmarks.worker", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    return {"error": f"worker exited with status {proc.returncode}: " + " | ".join(tail)}


def first_call(spec: dict[str, Any]) -> dict[str, float]:
    """Import the framework, build the network, classify one image; milliseconds of
    each part, from the worker's start (the interpreter's own start is before it).

    clearconv builds ``Sequential.from_config`` (its own random initial weights) and
    calls ``predict``; PyTorch builds the twin (:mod:`benchmarks.torch_nets`, its own
    initial weights) and calls it under ``inference_mode``. ``threads`` (when not
    None) is set in the framework right after its import. Neither process imports
    the other framework.
    """
    import time

    t0 = time.perf_counter()
    threads = spec.get("threads")
    if spec["framework"] == "clearconv":
        import numpy as np

        import clearconv

        if threads is not None:
            clearconv.set_num_threads(threads)
        t1 = time.perf_counter()
        model = clearconv.Sequential.from_config(spec["config"])
        x = np.random.default_rng(0).random((1, *model.input_shape), dtype=np.float32)
        t2 = time.perf_counter()
        label = int(model.predict(x).argmax())
    elif spec["framework"] == "torch":
        import numpy as np
        import torch

        from .torch_nets import from_config

        if threads is not None:
            torch.set_num_threads(threads)
        t1 = time.perf_counter()
        net = from_config(spec["config"]).eval()
        shape = spec["config"]["input_shape"]
        x = torch.from_numpy(np.random.default_rng(0).random((1, *shape), dtype=np.float32))
        t2 = time.perf_counter()
        with torch.inference_mode():
            label = int(net(x).argmax())
    else:
        raise ValueError(f"unknown framework {spec['framework']!r}")
    t3 = time.perf_counter()
    return {"import_ms": (t1 - t0) * 1e3, "build_ms": (t2 - t1) * 1e3,
            "first_forward_ms": (t3 - t2) * 1e3, "total_ms": (t3 - t0) * 1e3,
            "label": label}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    spec = json.loads(args[0])
    if spec["kind"] == "case":
        from .cases import find_case
        from .harness import limit_threads, run_case

        with limit_threads(spec["threads"]):
            result = run_case(find_case(spec["name"]), spec["samples"], spec["warmup"],
                              spec.get("settle", 0), spec.get("settle_ms", 0.0))
    elif spec["kind"] == "epoch":
        from .epoch import run_epoch

        result = run_epoch(spec)
    elif spec["kind"] == "first_call":
        result = first_call(spec)
    else:
        raise ValueError(f"unknown worker kind {spec['kind']!r}")
    print(MARKER + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
