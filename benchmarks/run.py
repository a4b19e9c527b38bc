"""clearconv against PyTorch on the CPU: ``python -m benchmarks.run [options]``.

Runs, in one invocation and with the same thread count for both frameworks:

1. the micro cases of :mod:`benchmarks.cases` (conv2d, max pooling, training steps,
   inference), each as paired samples interleaved A/B/A/B after a warm-up, in this
   process and, with ``--fresh-process``, once more in a new process each;
2. the peak memory of one training epoch of the MNIST CNN, and of ResNet-20 (20 batches
   of 128 on 3x32x32: the peak comes with the first step), each framework in its own
   process;
3. one epoch of the MNIST CNN on real MNIST (``--mnist-dir``), each framework in its own
   process, ``--epoch-rounds`` times alternating (clearconv, torch, clearconv, ...):
   seconds per epoch (median and min-max over the rounds; ratio = median of the
   per-round ratios) and test accuracy.

Each case with a count of its arithmetic (:mod:`benchmarks.flops`) also gets its floor:
its FLOP over the GEMM rate measured at the start of the same run (``np.matmul`` of
2048x2048 matrices, float32 or float64 as the case, with the case's threads), and the
fraction of that floor each framework reached. The table's title names the CPU's SIMD
extensions (AVX2, AVX-512) and the kernel the BLAS picked for them.

It writes every sample and the machine description to a JSON file and prints the table
last. Ratios are clearconv / PyTorch (below 1: clearconv is faster or smaller).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import datetime
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import numpy as np

from .cases import LR, MOMENTUM, SEED, all_cases
from .epoch import mnist_available
from .harness import (
    GEMM_REPEATS,
    GEMM_SIZE,
    TORCH_MISSING_NOTE,
    Case,
    add_floor,
    environment,
    gemm_rate,
    limit_threads,
    optional_torch,
    passes,
    run_case,
)
from .worker import REPO_ROOT, run_fresh

TARGET_MEMORY = 1.5          # peak RSS of a training epoch, clearconv / PyTorch
TARGET_EPOCH_SECONDS = 0.7   # real MNIST epoch, clearconv / PyTorch (issue 17)
TARGET_ACCURACY_POINTS = 0.3  # |accuracy difference| in percentage points
EPOCH_ARCH = "mnist_cnn"
EPOCH_BATCH = 64
#: the peak-RSS epochs: architecture (clearconv.train.zoo), batch size, samples (and with
#: --quick); every step of an epoch needs the same memory, so ResNet-20's 20 batches
#: show the peak of its 391 on CIFAR-10 (issue 13: <= 1.5x PyTorch's)
MEMORY_EPOCHS = {
    f"peak RSS, 1 epoch {EPOCH_ARCH} synthetic b{EPOCH_BATCH}": (EPOCH_ARCH, EPOCH_BATCH,
                                                                 10_000, 640),
    "peak RSS, 1 epoch resnet20 synthetic b128 (20 batches)": ("resnet20", 128, 2560, 256),
}
CHECK_TOLERANCE = 1e-3       # a larger max_rel_diff means the two sides disagree
BUSY_PRESSURE = 20.0         # % of time some task waited for a CPU: the machine was shared


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Benchmark clearconv against PyTorch (CPU, float32), side by side.")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 3 samples, no extra warm-up, short epochs (under a "
                        "minute on an idle machine); not a valid measurement")
    p.add_argument("--samples", type=int, default=None,
                   help="paired samples per case (default 9; at least 7 unless --quick)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed pairs after the timed first calls, before the samples "
                        "(default 2, 0 with --quick)")
    p.add_argument("--threads", type=int, default=2,
                   help="threads for PyTorch and NumPy's BLAS (default 2)")
    p.add_argument("--cases", metavar="PATTERN", default=None,
                   help="run only the cases whose name contains one of these comma-separated "
                        "glob patterns, e.g. 'conv fwd+bwd*' or 'train,inference'")
    p.add_argument("--json", metavar="PATH", type=Path, default=None,
                   help="where to write the results (default bench-results/bench-<timestamp>.json)")
    p.add_argument("--mnist-dir", type=Path, default=REPO_ROOT.parent / "shared/data/mnist",
                   help="MNIST IDX .gz files for the real-data epoch (default "
                        "../shared/data/mnist from the repository root); skipped when absent")
    p.add_argument("--fresh-process", action="store_true",
                   help="also run each micro case in a fresh process (cold numbers beside warm)")
    p.add_argument("--settle", type=int, default=None,
                   help="untimed calls of the same framework before each timed one, so the "
                        "other framework's spinning worker threads are out of the way "
                        "(default 1, --quick 0)")
    p.add_argument("--settle-ms", type=float, default=None,
                   help="...and more of them until this many milliseconds have passed since "
                        "the switch (default 25: PyTorch's OpenMP workers spin ~8 ms after "
                        "each parallel op here; --quick 0)")
    p.add_argument("--gemm-size", type=int, default=GEMM_SIZE,
                   help=f"side of the square matrices whose product sets the floor's GEMM "
                        f"rate (default {GEMM_SIZE})")
    p.add_argument("--epoch-rounds", type=int, default=None,
                   help="real-MNIST epoch pairs, alternating (default 3, --quick 1)")
    args = p.parse_args(argv)
    if args.settle is None:
        args.settle = 0 if args.quick else 1
    if args.settle_ms is None:
        args.settle_ms = 0.0 if args.quick else 25.0
    if args.epoch_rounds is None:
        args.epoch_rounds = 1 if args.quick else 3
    if args.samples is None:
        args.samples = 3 if args.quick else 9
    if args.warmup is None:
        args.warmup = 0 if args.quick else 2
    if args.samples < (1 if args.quick else 7):
        p.error(f"--samples must be at least 7 (got {args.samples}); use --quick for less")
    if args.threads < 1 or args.warmup < 0 or args.gemm_size < 1:
        p.error("--threads, --gemm-size must be >= 1 and --warmup >= 0")
    if args.json is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        args.json = REPO_ROOT / "bench-results" / f"bench-{stamp}.json"
    return args


def selected(name: str, pattern: str | None) -> bool:
    """Whether ``name`` matches one of the comma-separated glob patterns (substring match)."""
    if not pattern:
        return True
    return any(fnmatch(name.lower(), f"*{p.strip().lower()}*")
               for p in pattern.split(",") if p.strip())


# --------------------------------------------------------------------- the floor
def _rate_key(dtype: str, threads: int) -> str:
    return f"{dtype} {threads} thread" + ("s" if threads != 1 else "")


def measure_rates(cases: list[Case], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The GEMM rate of every (dtype, threads) the selected cases' floors need, float32
    at the run's threads always (the title shows it)."""
    needed = {("float32", args.threads)}
    needed |= {(c.dtype, c.threads or args.threads) for c in cases if c.work is not None}
    rates = {}
    for dtype, threads in sorted(needed):
        print(f"[gemm] {dtype} {args.gemm_size}^3, {threads} thread(s) ...", flush=True)
        # the run's own threads are already set (limit_threads); others for this call
        rate = gemm_rate(dtype, None if threads == args.threads else threads,
                         size=args.gemm_size, repeats=3 if args.quick else GEMM_REPEATS)
        rate["threads"] = threads
        rates[_rate_key(dtype, threads)] = rate
    return rates


def add_floors(records: list[dict[str, Any]], rates: dict[str, dict[str, Any]],
               args: argparse.Namespace) -> None:
    for rec in records:
        key = _rate_key(rec.get("dtype", "float32"), rec.get("threads") or args.threads)
        if key in rates:
            add_floor(rec, rates[key])
        else:
            rec["floor"] = None


# --------------------------------------------------------------------- micro cases
def run_micro(cases: list[Case], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Time every case in this process (and in a fresh one with --fresh-process)."""
    records = []
    for i, case in enumerate(cases, 1):
        t0 = time.perf_counter()
        try:
            record = run_case(case, args.samples, args.warmup, args.settle, args.settle_ms)
        except Exception as e:  # noqa: BLE001  (one broken case must not lose the others)
            record = {"name": case.name, "group": case.group, "target": case.target,
                      "error": f"{type(e).__name__}: {e}"}
        if args.fresh_process:
            record["fresh"] = run_fresh({"kind": "case", "name": case.name,
                                         "samples": args.samples, "warmup": args.warmup,
                                         "settle": args.settle, "settle_ms": args.settle_ms,
                                         "threads": args.threads})
        print(f"[{i:2d}/{len(cases)}] {case.name}: {_progress(record)} "
              f"({time.perf_counter() - t0:.1f} s)", flush=True)
        records.append(record)
    return records


def _progress(record: dict[str, Any]) -> str:
    if "error" in record:
        return f"ERROR {record['error']}"
    text = f"clearconv {_ms(record['clearconv']['median_ms'])} ms"
    if record["torch"] is not None:
        text += (f", torch {_ms(record['torch']['median_ms'])} ms, "
                 f"ratio {record['ratio_median']:.2f}")
    return text


# --------------------------------------------------------------------- epochs
def _frameworks() -> list[str]:
    return ["clearconv", "torch"] if optional_torch() is not None else ["clearconv"]


def _epoch_pair(base: dict[str, Any]) -> dict[str, Any]:
    """The same epoch in each framework, each in its own fresh process."""
    out = {}
    for framework in _frameworks():
        print(f"        {framework} ...", flush=True)
        out[framework] = run_fresh({**base, "kind": "epoch", "framework": framework})
    return out


def _epoch_base(args: argparse.Namespace, workdir: Path, arch: str = EPOCH_ARCH,
                batch: int = EPOCH_BATCH) -> dict[str, Any]:
    """Architecture, initial weights (written to ``workdir``) and optimizer of the epochs."""
    from clearconv.train import zoo

    model = getattr(zoo, arch)(rng=SEED)
    weights = workdir / f"initial-weights-{arch}.npz"
    np.savez(weights, **model.state_dict())
    return {"config": model.get_config(), "weights": str(weights), "batch_size": batch,
            "lr": LR, "momentum": MOMENTUM, "seed": SEED, "threads": args.threads}


def _ok(result: dict[str, Any] | None) -> bool:
    return result is not None and "error" not in result


def run_memory(args: argparse.Namespace, workdir: Path, name: str) -> dict[str, Any]:
    arch, batch, n_full, n_quick = MEMORY_EPOCHS[name]
    n = n_quick if args.quick else n_full
    base = _epoch_base(args, workdir, arch, batch)
    sides = _epoch_pair({**base, "data": "synthetic", "n_train": n})
    record: dict[str, Any] = {"name": name, "group": "memory", "target": TARGET_MEMORY,
                              "arch": arch, "batch_size": batch, "samples": n, **sides,
                              "ratio": None, "passed": None}
    if _ok(sides.get("clearconv")) and _ok(sides.get("torch")):
        record["ratio"] = (sides["clearconv"]["epoch_rss_mib"]
                           / max(sides["torch"]["epoch_rss_mib"], 1e-9))
        record["passed"] = passes(record["ratio"], TARGET_MEMORY)
    return record


def run_mnist(args: argparse.Namespace, base: dict[str, Any], name: str) -> dict[str, Any]:
    record: dict[str, Any] = {"name": name, "group": "mnist", "mnist_dir": str(args.mnist_dir),
                              "target_seconds_ratio": TARGET_EPOCH_SECONDS,
                              "target_accuracy_points": TARGET_ACCURACY_POINTS}
    if not mnist_available(args.mnist_dir):
        record["skipped"] = f"MNIST not found in {args.mnist_dir}: real-data epoch skipped"
        print(f"        {record['skipped']}", flush=True)
        return record
    limits = {"n_train": 1920, "n_test": 1000} if args.quick else {"n_train": None,
                                                                    "n_test": None}
    rounds = []
    for r in range(args.epoch_rounds):
        print(f"        round {r + 1} of {args.epoch_rounds}", flush=True)
        rounds.append(_epoch_pair({**base, "data": "mnist", "mnist_dir": str(args.mnist_dir),
                                   **limits}))
    record["rounds"] = rounds
    record.update(rounds[0])   # errors show from the first round; summaries replace below
    record.update(seconds_ratio=None, accuracy_diff_points=None,
                  passed_seconds=None, passed_accuracy=None)
    done = [r for r in rounds if _ok(r.get("clearconv")) and _ok(r.get("torch"))]
    if done:
        for fw in ("clearconv", "torch"):
            secs = [r[fw]["seconds"] for r in done]
            record[fw] = {**done[0][fw], "seconds": float(np.median(secs)),
                          "seconds_min": min(secs), "seconds_max": max(secs),
                          "test_accuracy": float(np.median([r[fw]["test_accuracy"]
                                                            for r in done]))}
        cc, pt = record["clearconv"], record["torch"]
        record["seconds_ratios"] = [r["clearconv"]["seconds"] / r["torch"]["seconds"]
                                    for r in done]
        record["seconds_ratio"] = float(np.median(record["seconds_ratios"]))
        record["accuracy_diff_points"] = 100 * (cc["test_accuracy"] - pt["test_accuracy"])
        record["passed_seconds"] = passes(record["seconds_ratio"], TARGET_EPOCH_SECONDS)
        record["passed_accuracy"] = abs(record["accuracy_diff_points"]) <= TARGET_ACCURACY_POINTS
    return record


# --------------------------------------------------------------------- the table
HEADER = ["case", "GFLOP", "clearconv ms median [min-max]", "torch ms median [min-max]",
          "ratio", "target", "result", "floor ms", "floor reached cc / torch", "floor target"]
FRESH_HEADER = ["fresh ratio", "fresh first call ms cc / torch"]
FRESH_AT = 5          # the fresh columns go after the ratio


def _ms(v: float) -> str:
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _spread(side: dict[str, Any] | None) -> str:
    if side is None:
        return "—"
    return f"{_ms(side['median_ms'])} [{_ms(side['min_ms'])}-{_ms(side['max_ms'])}]"


def _verdict(passed: bool | None) -> str:
    return "—" if passed is None else "pass" if passed else "FAIL"


def _target(target: float | None) -> str:
    return "—" if target is None else f"<= {target:g}"


def _ratio(r: float | None) -> str:
    return "—" if r is None else f"{r:.2f}"


def _gflop(rec: dict[str, Any]) -> str:
    work = rec.get("work")
    if not work or not work["gflop"]:
        return "—"
    g = work["gflop"]
    return f"{g:.3f}" if g < 1 else f"{g:.2f}"


def _percent(fraction: float | None) -> str:
    return "—" if fraction is None else f"{100 * fraction:.0f}%"


def floor_cells(rec: dict[str, Any]) -> list[str]:
    """floor ms, the fraction of it each side reached, and the floor target's verdict."""
    floor = rec.get("floor")
    if not floor:
        return ["—", "—", "—"]
    reached = _percent(floor["fraction_clearconv"])
    if floor["fraction_torch"] is not None:
        reached += " / " + _percent(floor["fraction_torch"])
    target = "—"
    if floor["target_x_floor"] is not None:
        target = (f"<= {floor['target_x_floor']:g}x (>= {100 / floor['target_x_floor']:.0f}%) "
                  f"{_verdict(floor['passed'])}")
    floor_ms = floor["floor_ms"]
    return [_ms(floor_ms) if floor_ms >= 1 else f"{floor_ms:.3f}", reached, target]


def micro_row(rec: dict[str, Any], fresh: bool) -> list[str]:
    if "error" in rec:
        row = [rec["name"], _gflop(rec), "error: " + rec["error"][:60], "", "",
               _target(rec["target"]), "—", "—", "—", "—"]
    else:
        row = [rec["name"], _gflop(rec), _spread(rec["clearconv"]), _spread(rec["torch"]),
               _ratio(rec["ratio_median"]), _target(rec["target"]), _verdict(rec["passed"]),
               *floor_cells(rec)]
    if fresh:
        f = rec.get("fresh") or {}
        if "error" in f or not f:
            row[FRESH_AT:FRESH_AT] = ["error", f.get("error", "")[:40]]
        else:
            first = _ms(f["clearconv"]["first_call_ms"])
            if f["torch"] is not None:
                first += " / " + _ms(f["torch"]["first_call_ms"])
            row[FRESH_AT:FRESH_AT] = [_ratio(f["ratio_median"]), first]
    return row


def _side(result: dict[str, Any] | None, key: str, fmt: str) -> str:
    if result is None:
        return "—"
    if "error" in result:
        return "error"
    text = fmt.format(result[key])
    if f"{key}_min" in result and result[f"{key}_min"] != result[f"{key}_max"]:
        text += f" [{fmt.format(result[key + '_min'])}-{fmt.format(result[key + '_max'])}]"
    return text


def epoch_rows(rec: dict[str, Any], fresh: bool) -> list[list[str]]:
    pad = ["", ""] if fresh else []
    nothing = ["—", "—", "—"]          # no floor for an epoch (data loading, shuffling)
    if rec["group"] == "memory":
        return [[rec["name"], "—", _side(rec.get("clearconv"), "epoch_rss_mib", "{:.0f} MiB"),
                 _side(rec.get("torch"), "epoch_rss_mib", "{:.0f} MiB"), _ratio(rec["ratio"]),
                 *pad, _target(rec["target"]), _verdict(rec["passed"]), *nothing]]
    if "skipped" in rec:
        return [[rec["name"], "—", "skipped (no MNIST)", "", "", *pad, "", "—", *nothing]]
    diff = rec["accuracy_diff_points"]
    return [
        [rec["name"] + ": seconds", "—", _side(rec.get("clearconv"), "seconds", "{:.1f} s"),
         _side(rec.get("torch"), "seconds", "{:.1f} s"), _ratio(rec["seconds_ratio"]),
         *pad, _target(rec["target_seconds_ratio"]), _verdict(rec["passed_seconds"]),
         *nothing],
        [rec["name"] + ": test accuracy", "—",
         _side(rec.get("clearconv"), "test_accuracy", "{:.2%}"),
         _side(rec.get("torch"), "test_accuracy", "{:.2%}"),
         "—" if diff is None else f"{diff:+.2f} pt", *pad,
         f"diff within ±{rec['target_accuracy_points']:g} pt", _verdict(rec["passed_accuracy"]),
         *nothing],
    ]


def format_table(rows: list[list[str]], header: list[str]) -> str:
    """A Markdown table, columns padded to line up in a terminal."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    """The closing table and its notes."""
    header = HEADER[:FRESH_AT] + (FRESH_HEADER if args.fresh_process else []) + \
        HEADER[FRESH_AT:]
    rows = [micro_row(r, args.fresh_process) for r in results["cases"]]
    for rec in results["epochs"]:
        rows += epoch_rows(rec, args.fresh_process)
    env = results["environment"]
    jit = f"Numba {env['numba']}" if env.get("clearconv_jit") else "no Numba (pure NumPy)"
    title = (f"clearconv vs PyTorch {env['torch'] or '(absent)'}, NumPy {env['numpy']}, "
             f"{jit}, {env['threads']} threads, {env['cpu_model']}, {args.samples} paired samples "
             f"after {args.warmup} warm-up, each timed call after >= {args.settle} untimed call(s) "
             f"and {args.settle_ms:g} ms of the same framework; "
             f"ratio = median of per-pair clearconv/torch")
    lines = [title, machine_line(results), "", format_table(rows, header), ""]
    verdicts = [r.get("passed") for r in results["cases"]]
    verdicts += [(r.get("floor") or {}).get("passed") for r in results["cases"]]
    for rec in results["epochs"]:
        verdicts += [rec.get(k) for k in ("passed", "passed_seconds", "passed_accuracy")]
    judged = [v for v in verdicts if v is not None]
    lines.append(f"targets met: {sum(judged)} of {len(judged)}")
    lines += [f"note: {n}" for n in results["notes"]]
    return "\n".join(lines)


def machine_line(results: dict[str, Any]) -> str:
    """The CPU kind and flags, the BLAS and its kernel, the GEMM rates of the floors."""
    env = results["environment"]
    flags = " ".join(env.get("cpu_flags") or []) or "unknown"
    text = f"CPU kind {env.get('cpu_kind', '?')} ({flags})"
    if env.get("torch_cpu_capability"):
        text += f", PyTorch kernels {env['torch_cpu_capability']}"
    text += f"; BLAS {env.get('blas', '?')}"
    rates = results.get("gemm_rates") or {}
    if rates:
        text += "; floor = GFLOP / GEMM rate, " + ", ".join(
            f"{'s' if r['dtype'] == 'float32' else 'd'}gemm {r['size']}^3 "
            f"{r['threads']} thread{'s' if r['threads'] != 1 else ''} "
            f"{r['gflops']:.0f} GFLOP/s" for r in rates.values())
    return text


def _pressure(rec: dict[str, Any]) -> float:
    return (rec.get("cpu_load") or {}).get("cpu_pressure_avg10_pct") or 0.0


def _notes(results: dict[str, Any], args: argparse.Namespace,
           thread_note: str | None) -> list[str]:
    notes = []
    if results["environment"]["torch"] is None:
        notes.append(TORCH_MISSING_NOTE)
    if thread_note:
        notes.append(thread_note)
    if args.quick:
        notes.append("--quick: few samples and short epochs, a smoke test, not a measurement")
    for rec in results["cases"]:
        for key, value in (rec.get("check") or {}).items():
            if value > CHECK_TOLERANCE:
                notes.append(f"{rec['name']}: clearconv and torch disagree ({key} = {value:.2g})")
    runs = results["cases"] + [{**rec[fw], "name": f"{rec['name']} ({fw})"}
                               for rec in results["epochs"] for fw in ("clearconv", "torch")
                               if isinstance(rec.get(fw), dict) and "error" not in rec[fw]]
    busy = [run["name"] for run in runs if _pressure(run) > BUSY_PRESSURE]
    if busy:
        notes.append(f"other processes competed for the CPU (pressure > {BUSY_PRESSURE:g}% "
                     f"of the last 10 s) during {len(busy)} of {len(runs)} runs, their "
                     f"numbers are noisy (cpu_load in the JSON): {'; '.join(busy)}")
    for rec in results["epochs"]:
        if "skipped" in rec:
            notes.append(rec["skipped"])
        for fw in ("clearconv", "torch"):
            if isinstance(rec.get(fw), dict) and "error" in rec[fw]:
                notes.append(f"{rec['name']} ({fw}): {rec[fw]['error']}")
    for rec in results["epochs"]:
        ours, theirs = rec.get("clearconv"), rec.get("torch")
        if rec.get("group") == "memory" and _ok(ours) and ours.get("jit"):
            whole = (f"; whole process peak {ours['peak_rss_mib']:.0f} vs "
                     f"{theirs['peak_rss_mib']:.0f} MiB" if _ok(theirs) else "")
            notes.append(f"{rec['name']}: clearconv's Numba kernels are loaded with the "
                         f"imports, before the baseline (+{ours['jit_load_rss_mib']:.0f} MiB "
                         f"once per process, like torch's own kernels){whole}")
    if args.fresh_process:
        notes.append("fresh: each case again in a new process; first call = its first, "
                     "un-warmed call there (clearconv's runs before torch's)")
    return notes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cases = [c for c in all_cases() if selected(c.name, args.cases)]
    mnist_name = f"MNIST epoch {EPOCH_ARCH} b{EPOCH_BATCH} SGD m{MOMENTUM}"
    epochs = [n for n in (*MEMORY_EPOCHS, mnist_name) if selected(n, args.cases)]
    if not cases and not epochs:
        print(f"no case matches {args.cases!r}")
        return 2
    if optional_torch() is None:
        print(f"note: {TORCH_MISSING_NOTE}", flush=True)
    with limit_threads(args.threads) as threads:
        import clearconv  # noqa: F401  (loaded before threadpool_info is read)

        rates = measure_rates(cases, args)
        results: dict[str, Any] = {
            "environment": environment(args.threads),
            "gemm_rates": rates,
            "settings": {"samples": args.samples, "warmup": args.warmup,
                         "settle": args.settle, "settle_ms": args.settle_ms,
                         "threads": args.threads, "quick": args.quick,
                         "fresh_process": args.fresh_process, "cases": args.cases,
                         "gemm_size": args.gemm_size,
                         "mnist_dir": str(args.mnist_dir)},
            "cases": run_micro(cases, args),
            "epochs": [],
        }
        add_floors(results["cases"], rates, args)
        with tempfile.TemporaryDirectory() as tmp:
            for name in epochs:
                print(f"[epoch] {name}", flush=True)
                if name in MEMORY_EPOCHS:
                    results["epochs"].append(run_memory(args, Path(tmp), name))
                else:
                    results["epochs"].append(run_mnist(args, _epoch_base(args, Path(tmp)),
                                                       name))
    results["notes"] = _notes(results, args, threads["note"])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    print(f"\nresults: {args.json}\n")
    print(report(results, args), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
