#!/usr/bin/env python
"""The long fuzzing run of clearconv's file loaders (issue 6, item 5).

Runs the Hypothesis fuzzers of ``tests/test_fuzz.py`` (the same seeds, mutations, limits
and documented-error contracts as the short CI run) with many more inputs, randomised
instead of derandomised, and without stopping at the first failure: every input that ends
in anything but success or a documented error (another exception type, a hang past the
time limit, a memory blow-up) is counted and saved. Usage::

    python tools/fuzz.py --examples 10000               # every target, one after another
    python tools/fuzz.py --examples 10000 --jobs 3      # targets in parallel processes
    python tools/fuzz.py --examples 2000 --target cifar --target idx --seed 1

Targets: model (``clearconv.load``), arrays (``clearconv.io.load_arrays``), idx
(``read_idx``), cifar (``read_cifar_batch``), image (``images.load_image``), folder
(``load_image_folder``), archive (``load_cifar10`` on a crafted ``.tar.gz``), checkpoint
(resuming from a crafted checkpoint, and the ``--resume`` options read from it) and
download (``download`` from a local HTTP server answering as the input says). It prints,
per target, the inputs tried, the outcomes (success, documented errors by type), the
failures found, the slowest input and the target's peak RSS (each target runs in a
fresh process with ``--jobs`` > 1), and exits 1 if any failure was found.
Each failing input is written to ``--crash-dir`` (default: a new temporary folder) as
``<target>/<kind>-<sha1>.bin`` with a ``.txt`` beside it holding the traceback; copy the
``.bin`` into ``tests/fuzz_corpus/<target>/`` once fixed, and the test suite replays it.

Needs the test extras (``pip install -e .[test]``: pytest and Hypothesis) and Pillow for
the image targets. A 10,000-input run takes a few minutes per target.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def load_fuzz_module() -> Any:
    """``tests/test_fuzz.py`` as a module (tests/ is not a package)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    spec = importlib.util.spec_from_file_location("clearconv_test_fuzz",
                                                  ROOT / "tests" / "test_fuzz.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_target(name: str, examples: int, seed: int | None, crash_dir: str,
               trace_memory: bool = True) -> dict[str, Any]:
    """Fuzz one target; return its totals as a JSON-able dict."""
    fuzz = load_fuzz_module()
    target = fuzz.TARGETS[name]
    totals: dict[str, Any] = {
        "target": name, "call": target.call, "tried": 0, "success": 0, "documented": 0,
        "documented_types": collections.Counter(), "failures": 0, "distinct_failures": {},
        "saved": [], "slowest_s": 0.0, "seconds": 0.0,
    }
    if target.needs_pillow and fuzz.Image is None:
        totals["skipped"] = "Pillow is not installed"
        return totals

    def record(case: Any, outcome: Any) -> None:
        totals["tried"] += 1
        totals["slowest_s"] = max(totals["slowest_s"], outcome.seconds)
        if outcome.kind == "success":
            totals["success"] += 1
        elif outcome.kind == "documented":
            totals["documented"] += 1
            totals["documented_types"][outcome.detail] += 1
        else:
            totals["failures"] += 1
            # distinct: the exception type and where it was raised, or the limit broken
            key = outcome.detail.split(": ", 1)[0]
            if key not in totals["distinct_failures"]:
                totals["distinct_failures"][key] = outcome.detail
                totals["saved"].append(str(fuzz.save_crash(Path(crash_dir), target, case,
                                                           outcome)))

    run = fuzz.fuzzer(target, examples, record, derandomize=False, deadline_ms=None,
                      trace_memory=trace_memory, seed=seed)
    t0 = time.perf_counter()
    try:
        run()
    except Exception as exc:  # noqa: BLE001 - a bug of the fuzzer itself, reported
        totals["fuzzer_error"] = f"{type(exc).__name__}: {str(exc)[:500]}"
    totals["seconds"] = round(time.perf_counter() - t0, 1)
    totals["peak_rss_mib"] = round(fuzz._rss_peak() / 2**20, 1)
    totals["slowest_s"] = round(totals["slowest_s"], 3)
    totals["documented_types"] = dict(totals["documented_types"])
    return totals


def report(results: list[dict[str, Any]], crash_dir: str) -> str:
    lines = [(f"{'target':<10} {'inputs':>7} {'success':>8} {'documented':>11} {'failures':>9} "
             f"{'distinct':>9} {'slowest':>8} {'peak RSS':>9} {'time':>7}  call")]
    for r in results:
        if "skipped" in r:
            lines.append(f"{r['target']:<10} skipped: {r['skipped']}")
            continue
        lines.append(f"{r['target']:<10} {r['tried']:>7} {r['success']:>8} "
                     f"{r['documented']:>11} {r['failures']:>9} "
                     f"{len(r['distinct_failures']):>9} {r['slowest_s']:>7.2f}s "
                     f"{r.get('peak_rss_mib', 0):>6.0f}MiB {r['seconds']:>6.0f}s  {r['call']}")
    lines.append("")
    for r in results:
        if r.get("documented_types"):
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(r["documented_types"].items()))
            lines.append(f"{r['target']}: documented errors: {kinds}")
        if r.get("fuzzer_error"):
            lines.append(f"{r['target']}: FUZZER ERROR (run incomplete) {r['fuzzer_error']}")
        for detail in r.get("distinct_failures", {}).values():
            lines.append(f"{r['target']}: FAILURE {detail}")
    total = sum(r.get("tried", 0) for r in results)
    failures = sum(r.get("failures", 0) for r in results)
    lines.append(f"total: {total} inputs, {failures} failures"
                 + (f" (inputs and tracebacks in {crash_dir})" if failures else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=10000,
                        help="inputs per target (default 10000)")
    parser.add_argument("--target", action="append", default=None,
                        help="a target to fuzz (repeatable; default all): model, arrays, "
                             "idx, cifar, image, folder, archive, checkpoint, download")
    parser.add_argument("--seed", type=int, default=None,
                        help="Hypothesis random seed, for a reproducible run")
    parser.add_argument("--jobs", type=int, default=1, help="targets run in parallel processes")
    parser.add_argument("--crash-dir", default=None,
                        help="where failing inputs are written (default: a new temp folder)")
    parser.add_argument("--no-trace-memory", action="store_true",
                        help="skip the tracemalloc peak check (faster; RSS is still checked)")
    parser.add_argument("--json", default=None, help="also write the totals to this JSON file")
    args = parser.parse_args(argv)

    fuzz = load_fuzz_module()
    names = args.target or list(fuzz.TARGETS)
    unknown = [n for n in names if n not in fuzz.TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {unknown}; choose from {list(fuzz.TARGETS)}")
    crash_dir = args.crash_dir or tempfile.mkdtemp(prefix="clearconv-fuzz-crashes-")
    job_args = [(n, args.examples, args.seed, crash_dir, not args.no_trace_memory)
                for n in names]
    if args.jobs > 1:
        with concurrent.futures.ProcessPoolExecutor(args.jobs, max_tasks_per_child=1) as pool:
            futures = [pool.submit(run_target, *a) for a in job_args]
            results = []
            for future in futures:
                results.append(future.result())
                print(f"done: {results[-1]['target']}", flush=True)
    else:
        results = []
        for a in job_args:
            results.append(run_target(*a))
            r = results[-1]
            print(f"done: {r['target']}: {r.get('tried', 0)} inputs, {r.get('failures', 0)} "
                  "failures", flush=True)
    print(report(results, crash_dir))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 1 if any(r.get("failures") or r.get("fuzzer_error") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
