"""Where a training step's time goes, op by op: ``python -m benchmarks.profile [options]``.

Runs ``model.train_step`` (the library's own, unchanged) on one repeated batch, or with
``--inference`` ``model.predict`` on it (one batch of ``--batch`` images: batch 1 is the
latency of one photo), and times, at the Python level on the calling thread, every part
of it:

- the model's ``forward``, ``backward``, ``zero_grad``, the loss (softmax cross-entropy
  forward and backward) and the optimizer's ``step``;
- each step of the model (a layer, or a run of layers the fusion pass made one op),
  forward and backward;
- inside them, each call of a registered algorithm (``op [algorithm] forward`` /
  ``backward``, :mod:`clearconv.kernels.registry`), the compiled layout copies
  (:mod:`clearconv.kernels.copies`) and each batch split between threads
  (``threads.map_split``: its wall time, the parts' own sections are not timed as they
  run on several threads at once);
- for the backward of a conv or dense op that computes its input gradient, the split
  into the weight gradient and the input gradient: on every other step (a *probe*
  step) the same backward runs first once more with ``input_grad=False`` on a copy of
  its cache, which times dW + db alone; dA is the full backward's median minus that.
  Probe steps give only those rows; every other row comes from the other steps. (A
  fused op's 'composed' algorithm is not probed itself: the conv inside it is.) dA is a
  difference of two medians: on a busy machine it can come out near zero or below.

cProfile cannot do this: it sees only the calling thread's Python frames, so a kernel
split between threads shows as time in a lock. The timers here are wrappers the tool
puts around those functions while it runs (the library's hot path has none) and removes
afterwards; they cost about a microsecond per call, some tens of calls per step.

Every row is the median over the steps, in milliseconds, with its share of the median
step; "(rest)" under a row is its time not covered by the rows below it (Python glue,
NumPy calls outside the registry: reshapes, bias adds, ReLU masks, finite checks, the
argmax of the accuracy count, the BLAS thread switch of the region).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

PROBE_OPS = ("conv2d", "conv2d_relu_max_pool2d", "conv_transpose2d", "linear")
PROBE = "dW+db only (probe, input_grad=False)"
DA = "dA (full backward - probe)"
REST = "(rest)"
STEP = "train_step"


class Profiler:
    """Nested wall-clock sections of the thread that made it, one dict per step.

    ``section(name)`` times a block as a child of the open one; the times of a path
    (the names from the outermost section) add up within a step. Sections opened on
    another thread, or inside a thread split (``suppress``), are not timed.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter, root: str = STEP
                 ) -> None:
        self.clock = clock
        self.root = root
        self.owner = threading.get_ident()
        self.stack: list[str] = []
        self.suppress = 0
        self.probing = False
        self.steps: list[dict[tuple[str, ...], float]] = []
        self.probe_steps: list[dict[tuple[str, ...], float]] = []
        self.current: dict[tuple[str, ...], float] | None = None
        self.calls: dict[tuple[str, ...], int] = {}

    def _timing(self) -> bool:
        return (self.current is not None and not self.suppress
                and threading.get_ident() == self.owner)

    @contextmanager
    def section(self, name: str, split: bool = False) -> Iterator[None]:
        """Time the block as ``name``; ``split=True``: sections inside it are not timed
        (they run on several threads)."""
        if not self._timing():
            yield
            return
        self.stack.append(name)
        path = tuple(self.stack)
        if split:
            self.suppress += 1
        t0 = self.clock()
        try:
            yield
        finally:
            dt = self.clock() - t0
            if split:
                self.suppress -= 1
            self.stack.pop()
            assert self.current is not None
            self.current[path] = self.current.get(path, 0.0) + dt
            if not self.probing:
                self.calls[path] = self.calls.get(path, 0) + 1

    def wrap(self, name: str, fn: Callable[..., Any], split: bool = False
             ) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.section(name, split):
                return fn(*args, **kwargs)
        timed.__wrapped__ = fn  # type: ignore[attr-defined]
        return timed

    @contextmanager
    def step(self, probe: bool) -> Iterator[None]:
        """One step (a training step, or a predict call): its sections go to ``steps``
        (or ``probe_steps``), under the root section ``self.root``."""
        self.current, self.probing = {}, probe
        try:
            with self.section(self.root):
                yield
        finally:
            (self.probe_steps if probe else self.steps).append(self.current)
            self.current, self.probing = None, False


# --------------------------------------------------------------------- instrumentation
def _patch_everywhere(stack: ExitStack, fn: Any, replacement: Any) -> int:
    """Bind ``replacement`` wherever a clearconv module holds ``fn`` as a global (its
    own module and every ``from ... import fn``); undone when ``stack`` closes."""
    patched = 0
    for name, module in list(sys.modules.items()):
        if not (name == "clearconv" or name.startswith("clearconv.")) or module is None:
            continue
        for attr, value in list(vars(module).items()):
            if value is fn:
                setattr(module, attr, replacement)
                stack.callback(setattr, module, attr, fn)
                patched += 1
    return patched


def _backward_wrapper(profiler: Profiler, label: str, fn: Callable[..., Any],
                      probe: bool) -> Callable[..., Any]:
    def timed(dy: Any, cache: Any, *args: Any, **kwargs: Any) -> Any:
        with profiler.section(label):
            input_grad = args[0] if args else kwargs.get("input_grad", True)
            if probe and input_grad and profiler.probing and profiler._timing():
                spare = copy.deepcopy(cache)      # the probe must not touch the real cache
                with profiler.section(PROBE):
                    fn(dy, spare, False)
            return fn(dy, cache, *args, **kwargs)
    return timed


def step_labels(model: Any) -> list[str]:
    """'[i] Layer' for each step of the model, '[i-j] Layer+Layer' for a fused run."""
    labels = []
    i = 0
    for step in model.steps():
        indices = sorted((getattr(step, "indices", None) or {}).values())
        if indices:
            names = "+".join(type(model.layers[j]).__name__ for j in indices)
            labels.append(f"[{indices[0]}-{indices[-1]}] {names}")
            i = indices[-1] + 1
        else:
            labels.append(f"[{i}] {type(step).__name__}")
            i += 1
    return labels


@contextmanager
def instrumented(model: Any, optimizer: Any, profiler: Profiler) -> Iterator[None]:
    """Timers around every part of ``model.train_step`` (see the module docstring);
    all removed on exit."""
    from clearconv.kernels import copies, registry, threads

    with ExitStack() as stack:
        for op in registry.ops():
            for algo in registry.algorithms(op):
                timed = dataclasses.replace(
                    algo, forward=profiler.wrap(f"{op} [{algo.name}] forward", algo.forward),
                    backward=None if algo.backward is None else _backward_wrapper(
                        profiler, f"{op} [{algo.name}] backward", algo.backward,
                        op in PROBE_OPS and algo.name != "composed"))
                registry.register(timed)
                stack.callback(registry.register, algo)
        for name in dir(copies):
            fn = getattr(copies, name)
            if callable(fn) and getattr(fn, "__module__", None) == copies.__name__:
                _patch_everywhere(stack, fn, profiler.wrap(f"copy {name}", fn))
        _patch_everywhere(stack, threads.map_split,
                          profiler.wrap("thread split (map_split)", threads.map_split,
                                        split=True))
        loss = getattr(model, "loss_fn", None)
        for method, label in (("forward", "loss forward"), ("backward", "loss backward")):
            if loss is not None:
                setattr(loss, method, profiler.wrap(label, getattr(loss, method)))
                stack.callback(delattr, loss, method)
            else:            # a library before loss objects: the module's functions
                from clearconv.train import sequential

                fn = getattr(sequential, f"softmax_cross_entropy_{method}")
                _patch_everywhere(stack, fn, profiler.wrap(label, fn))
        for step, label in zip(model.steps(), step_labels(model)):
            for method in ("forward", "backward"):
                setattr(step, method, profiler.wrap(f"{label} {method}", getattr(step, method)))
                stack.callback(delattr, step, method)
        for obj, method, label in ((model, "forward", "forward"),
                                   (model, "backward", "backward"),
                                   (model, "zero_grad", "zero_grad"),
                                   (optimizer, "step", "optimizer step")):
            setattr(obj, method, profiler.wrap(label, getattr(obj, method)))
            stack.callback(delattr, obj, method)
        yield


# --------------------------------------------------------------------- statistics
def _median(steps: list[dict[tuple[str, ...], float]], path: tuple[str, ...]) -> float:
    return statistics.median(s.get(path, 0.0) for s in steps)


def rows(profiler: Profiler) -> list[dict[str, Any]]:
    """The table: one row per path in call order (depth-first), median ms, share of the
    median step, calls per step; each row with children gets a "(rest)" row, each
    probed backward its dW and dA rows."""
    steps = profiler.steps
    if not steps:
        return []
    # a path enters a step's dict when its section ends: siblings in call order
    order: list[tuple[str, ...]] = []
    for s in steps:
        for path in s:
            if path not in order:
                order.append(path)
    total = _median(steps, (profiler.root,))
    n_steps = len(steps)
    out: list[dict[str, Any]] = []

    def row(path: tuple[str, ...], name: str, ms: float, calls: float | None) -> None:
        out.append({"path": list(path), "part": name, "depth": len(path) - 1,
                    "median_ms": ms * 1e3, "share": ms / total if total else None,
                    "calls_per_step": calls})

    def emit(path: tuple[str, ...]) -> None:
        own = _median(steps, path)
        row(path, path[-1], own, profiler.calls.get(path, 0) / n_steps)
        children = [p for p in order if len(p) == len(path) + 1 and p[:-1] == path]
        probe = path + (PROBE,)
        if profiler.probe_steps and any(probe in s for s in profiler.probe_steps):
            dw = _median(profiler.probe_steps, probe)
            row(probe, PROBE, dw, None)
            row(path + (DA,), DA, own - dw, None)
        for child in children:
            emit(child)
        if children:
            rest = statistics.median(s.get(path, 0.0) - sum(s.get(c, 0.0) for c in children)
                                     for s in steps)
            row(path + (REST,), REST, rest, None)

    emit((profiler.root,))
    return out


def format_rows(table: list[dict[str, Any]]) -> str:
    lines = [f"| {'part':<60} | median ms |  share | calls/step |",
             f"|{'-' * 62}|-----------|--------|------------|"]
    for r in table:
        name = "  " * r["depth"] + r["part"]
        share = "—" if r["share"] is None else f"{100 * r['share']:.1f}%"
        calls = "" if r["calls_per_step"] is None else f"{r['calls_per_step']:g}"
        lines.append(f"| {name:<60} | {r['median_ms']:9.3f} | {share:>6} | {calls:>10} |")
    return "\n".join(lines)


# --------------------------------------------------------------------- the command
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile",
                                description="Per-op profile of a clearconv training step.")
    p.add_argument("--arch", default="mnist_cnn", help="a zoo network (default mnist_cnn)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=40,
                   help="timed steps (default 40; half of them probe dW)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--threads", type=int, default=2,
                   help="clearconv threads (and the BLAS outside its regions)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--inference", action="store_true",
                   help="profile model.predict on one batch instead of a training step")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall (default) or cpu: the calling thread's CPU time, which other "
                        "processes on a busy machine do not inflate; only with --threads 1, "
                        "where every part runs on the calling thread")
    p.add_argument("--no-fuse", action="store_true",
                   help="Sequential(fuse=False): every layer its own step")
    p.add_argument("--gemm-size", type=int, default=2048,
                   help="GEMM whose rate sets the step's floor (0: no floor)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = p.parse_args(argv)
    if args.steps < 2 or args.batch < 1 or args.threads < 1 or args.warmup < 0:
        p.error("--steps must be >= 2, --batch and --threads >= 1, --warmup >= 0")
    if args.clock == "cpu" and args.threads != 1:
        p.error("--clock cpu needs --threads 1 (other threads' work would not be counted)")
    return args


def profile_step(arch: str = "mnist_cnn", batch: int = 64, steps: int = 40, warmup: int = 5,
                 dtype: str = "float32", fuse: bool = True, inference: bool = False,
                 clock: Callable[[], float] = time.perf_counter) -> tuple[Profiler, Any]:
    """Profile ``steps`` training steps (SGD, momentum 0.9) of a zoo network on one
    repeated batch, or ``steps`` calls of ``predict`` on it (``inference``); returns the
    profiler and the model. Threads as the caller set them."""
    from clearconv.optim import SGD

    from clearconv.train import zoo

    from .cases import LR, MOMENTUM, SEED, _batch

    model = getattr(zoo, arch)(rng=SEED, dtype=dtype)
    model.fuse = fuse
    x, y = _batch(batch, dtype=dtype, shape=tuple(model.input_shape))
    opt = SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    if inference:
        from clearconv.kernels import jit, tune_allocator

        tune_allocator()                  # as the CLI does once per process
        jit.load()                        # the steady state of a serving process
    for _ in range(warmup):
        model.predict(x, batch_size=batch) if inference else model.train_step(x, y, opt)
    profiler = Profiler(clock=clock, root="predict" if inference else STEP)
    with instrumented(model, opt, profiler):
        for i in range(steps):
            if inference:
                with profiler.step(probe=False):
                    model.predict(x, batch_size=batch)
                continue
            with profiler.step(probe=i % 2 == 1):
                model.train_step(x, y, opt)
    return profiler, model


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from .flops import model_work
    from .harness import cpu_flags, cpu_kind, gemm_rate, limit_threads

    with limit_threads(args.threads, with_torch=False):
        profiler, model = profile_step(args.arch, args.batch, args.steps, args.warmup,
                                       args.dtype, fuse=not args.no_fuse,
                                       inference=args.inference,
                                       clock=time.thread_time if args.clock == "cpu"
                                       else time.perf_counter)
        clock = time.thread_time if args.clock == "cpu" else time.perf_counter
        rate = gemm_rate(args.dtype, size=args.gemm_size, clock=clock) \
            if args.gemm_size else None
    table = rows(profiler)
    step_ms = table[0]["median_ms"]
    work = model_work(model, args.batch, backward=not args.inference)
    what = "inference (predict)" if args.inference else "training step"
    head = (f"{args.arch} {what}, batch {args.batch}, {args.dtype}, {args.threads} "
            f"thread(s), {args.clock} clock, fuse={not args.no_fuse}; medians of "
            f"{len(profiler.steps)} steps "
            f"(+{len(profiler.probe_steps)} probe steps) after {args.warmup} warm-up; "
            f"CPU kind {cpu_kind(cpu_flags())}")
    floor = ""
    if rate is not None:
        floor_ms = work.flop / rate["gflops"] / 1e6
        floor = (f"{work.flop / 1e9:.3f} GFLOP; floor {floor_ms:.2f} ms at "
                 f"{rate['gflops']:.0f} GFLOP/s ({args.dtype} GEMM {args.gemm_size}^3): "
                 f"this {what} {step_ms / floor_ms:.2f}x the floor")
    print(head)
    if floor:
        print(floor)
    print()
    print(format_rows(table))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"settings": vars(args) | {"json": str(args.json)},
                                         "gemm": rate, "work": work.record(),
                                         "rows": table}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
