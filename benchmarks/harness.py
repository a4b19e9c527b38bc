"""Timing core: paired, interleaved samples (A/B/A/B) and their statistics.

A *pair* is one call of the clearconv function (A) followed at once by one call of the
PyTorch function (B). After a warm-up, ``measure_pair`` takes ``samples`` pairs in a
row, so both frameworks see the same machine state (frequency, caches, neighbours) and
each pair gives one ratio A/B. The summary reports the median and min/max of each side
and the median of the per-pair ratios.

The garbage collector is off while timing (as ``timeit`` does): a collection triggered by
one framework's garbage would otherwise land in the other's sample.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import numpy as np

from .flops import Work

TORCH_MISSING_NOTE = ("PyTorch is not installed: clearconv timings only, no ratios "
                      "(pip install torch to compare).")


def optional_torch() -> Any:
    """The ``torch`` module, or None when PyTorch (an optional dependency) is absent.

    Imported on demand, so that a clearconv-only process (an epoch measured for its
    memory) never loads PyTorch.
    """
    try:
        import torch
    except ImportError:
        return None
    return torch


@dataclass
class Pair:
    """The two sides of a case, ready to call.

    ``clearconv`` and ``torch`` each run the measured work once; ``torch`` is None when
    PyTorch is absent. ``compare`` (optional) runs both once more and returns how far
    their results are apart (e.g. ``{'max_rel_diff': 3e-7}``): a guard that both sides
    compute the same thing. ``details`` (optional), called after the timing, returns
    what else the record should keep (e.g. the fresh-process breakdown).
    """

    clearconv: Callable[[], Any]
    torch: Callable[[], Any] | None = None
    compare: Callable[[], dict[str, float]] | None = None
    details: Callable[[], dict[str, Any]] | None = None


@dataclass
class Case:
    """A benchmark case: its name, its group, the issue's target ratio, and a lazy setup.

    ``setup`` allocates the data and returns a :class:`Pair`; it runs only when the case is
    selected, and again inside a fresh process for ``--fresh-process``.

    ``work`` (optional) counts the case's multiply-adds (:mod:`benchmarks.flops`), from
    which the run derives its floor at the GEMM rate of ``dtype`` with the case's
    threads; ``floor_target`` is the issue's bound on clearconv's time / that floor.
    ``threads`` runs the case (setup included) with that many threads in both
    frameworks instead of the run's ``--threads``, restored after. ``settle=False``
    skips the untimed settling calls (a case whose every call is a new process has no
    spinning threads to wait for).
    """

    name: str
    group: str
    target: float | None
    setup: Callable[[], Pair] = field(repr=False)
    work: Callable[[], Work] | None = field(default=None, repr=False)
    dtype: str = "float32"
    threads: int | None = None
    floor_target: float | None = None
    settle: bool = True


def _time_call(fn: Callable[[], Any], clock: Callable[[], float] = time.perf_counter) -> float:
    t0 = clock()
    fn()
    return clock() - t0


@contextmanager
def _gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def measure_pair(a: Callable[[], Any], b: Callable[[], Any] | None, samples: int,
                 warmup: int = 2, settle: int = 0, settle_ms: float = 0.0,
                 clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Time ``a`` and ``b`` interleaved: first calls, ``warmup`` untimed pairs, then
    ``samples`` pairs.

    Untimed calls of the same side go before every timed call: at least ``settle`` of
    them, and more until ``settle_ms`` milliseconds have passed since the switch. After
    the switch from the other framework, its worker threads keep spinning for a while
    (PyTorch's OpenMP workers about 8 ms after each parallel op on this machine,
    OpenBLAS's after a multi-threaded product) and compete for the cores; once they
    sleep, the timed call runs as the next call of a training loop would.

    ``clock`` (seconds) times the calls and the settling (the tests pass a fake one).

    Returns seconds: ``{'first': (a, b), 'a': [...], 'b': [...]}`` (b entries None without b).
    The first call of each side is timed on its own (it includes lazy initialisation and
    the first touch of fresh memory: the cold number of a fresh process).
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    with _gc_paused():
        first_a = _time_call(a, clock)
        first_b = _time_call(b, clock) if b is not None else None
        for _ in range(warmup):
            a()
            if b is not None:
                b()
        times_a: list[float] = []
        times_b: list[float] = []
        for _ in range(samples):
            _settle(a, settle, settle_ms, clock)
            times_a.append(_time_call(a, clock))
            if b is not None:
                _settle(b, settle, settle_ms, clock)
                times_b.append(_time_call(b, clock))
    return {"first": (first_a, first_b), "a": times_a, "b": times_b if b is not None else None}


def _settle(fn: Callable[[], Any], calls: int, ms: float,
            clock: Callable[[], float] = time.perf_counter) -> None:
    """Call ``fn`` untimed at least ``calls`` times and until ``ms`` milliseconds have passed."""
    t0 = clock()
    done = 0
    while done < calls or (clock() - t0) * 1e3 < ms:
        fn()
        done += 1


def summarize(seconds: list[float]) -> dict[str, Any]:
    """Median, min and max in milliseconds, and every sample."""
    ms = [s * 1e3 for s in seconds]
    return {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms),
            "samples_ms": ms}


def pair_record(raw: dict[str, Any]) -> dict[str, Any]:
    """The JSON record of one :func:`measure_pair` result.

    ``ratios`` holds clearconv / PyTorch for each pair, ``ratio_median`` their median
    (None without PyTorch).
    """
    first_a, first_b = raw["first"]
    record: dict[str, Any] = {
        "samples": len(raw["a"]),
        "clearconv": {**summarize(raw["a"]), "first_call_ms": first_a * 1e3},
        "torch": None, "ratios": None, "ratio_median": None,
    }
    if raw["b"] is not None:
        record["torch"] = {**summarize(raw["b"]), "first_call_ms": first_b * 1e3}
        record["ratios"] = [a / b for a, b in zip(raw["a"], raw["b"])]
        record["ratio_median"] = statistics.median(record["ratios"])
    return record


def run_case(case: Case, samples: int, warmup: int, settle: int = 0,
             settle_ms: float = 0.0) -> dict[str, Any]:
    """Set a case up, time it, compare the two results; the JSON record of the case.

    A case with its own ``threads`` runs inside :func:`limit_threads` of that count.
    The record carries the case's ``work`` (multiply-adds and GFLOP) when it has one;
    the floor is added by :func:`add_floor` once the GEMM rate is known.
    """
    if case.threads is not None:
        with limit_threads(case.threads):
            record = run_case(replace(case, threads=None), samples, warmup, settle, settle_ms)
        record["threads"] = case.threads
        return record
    if not case.settle:
        settle, settle_ms = 0, 0.0
    pair = case.setup()
    record = {"name": case.name, "group": case.group, "target": case.target,
              "dtype": case.dtype, "threads": None,
              **pair_record(measure_pair(pair.clearconv, pair.torch, samples, warmup, settle,
                                         settle_ms))}
    record["passed"] = passes(record["ratio_median"], case.target)
    record["cpu_load"] = cpu_load()
    record["check"] = pair.compare() if pair.compare is not None and pair.torch else None
    record["details"] = pair.details() if pair.details is not None else None
    record["work"] = case.work().record() if case.work is not None else None
    record["floor_target"] = case.floor_target
    return record


# --------------------------------------------------------------------- the floor
#: the GEMM that sets the floor: (GEMM_SIZE, GEMM_SIZE) @ (GEMM_SIZE, GEMM_SIZE)
GEMM_SIZE = 2048
GEMM_REPEATS = 5


def gemm_rate(dtype: str = "float32", threads: int | None = None, size: int = GEMM_SIZE,
              repeats: int = GEMM_REPEATS,
              clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """GFLOP/s of ``np.matmul`` on two (size, size) matrices of ``dtype``: ``2 size^3``
    FLOP per call, the median of ``repeats`` calls after one untimed call.

    ``threads`` limits the BLAS (threadpoolctl) to that many threads for the
    measurement; None measures with the BLAS as it is (the run has already set it to
    ``--threads``). The record names the dtype, threads, size and every rate.
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    out = np.empty((size, size), dtype)
    limiter = None
    if threads is not None:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            pass
        else:
            limiter = threadpool_limits(limits=threads, user_api="blas")
    try:
        with _gc_paused():
            np.matmul(a, b, out=out)
            seconds = [_time_call(lambda: np.matmul(a, b, out=out), clock)
                       for _ in range(repeats)]
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
    flop = 2.0 * size ** 3
    rates = [flop / max(s, 1e-12) / 1e9 for s in seconds]
    return {"dtype": str(np.dtype(dtype)), "threads": threads, "size": size,
            "gflops": statistics.median(rates), "gflops_samples": rates}


def add_floor(record: dict[str, Any], rate: dict[str, Any]) -> dict[str, Any]:
    """Add ``record['floor']``: the case's floor at ``rate`` (a :func:`gemm_rate` record)
    and how close each framework came to it.

    ``floor_ms`` = GFLOP / (GFLOP/s); ``fraction`` = floor / median time (1.0: the case
    ran at the GEMM rate); ``x_floor`` = median time / floor, the quantity the issue's
    ``floor_target`` bounds. Records without work or without timings get none.
    """
    work = record.get("work")
    if not work or "error" in record or not work["gflop"]:
        record["floor"] = None
        return record
    floor_ms = work["gflop"] / rate["gflops"] * 1e3
    floor: dict[str, Any] = {"gemm": {k: rate[k] for k in ("dtype", "threads", "size",
                                                           "gflops")},
                             "floor_ms": floor_ms}
    for side in ("clearconv", "torch"):
        timing = record.get(side)
        floor[f"fraction_{side}"] = floor_ms / timing["median_ms"] if timing else None
        floor[f"x_floor_{side}"] = timing["median_ms"] / floor_ms if timing else None
    floor["target_x_floor"] = record.get("floor_target")
    floor["passed"] = passes(floor["x_floor_clearconv"], floor["target_x_floor"])
    record["floor"] = floor
    return record


def cpu_load() -> dict[str, float | None]:
    """How busy the machine was lately: the 1-minute load average and the share of the
    last 10 s in which some task waited for a CPU (Linux PSI, /proc/pressure/cpu).

    A high pressure while a case ran means other processes competed with it: its
    samples are noisier (the paired ratios less so, as both sides share the noise).
    """
    pressure = None
    try:
        with open("/proc/pressure/cpu") as f:
            fields = dict(kv.split("=") for kv in f.readline().split()[1:])
        pressure = float(fields["avg10"])
    except (OSError, KeyError, ValueError):
        pass
    return {"loadavg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "cpu_pressure_avg10_pct": pressure}


def passes(ratio: float | None, target: float | None) -> bool | None:
    """True/False against the target ratio; None when there is nothing to judge."""
    if ratio is None or target is None:
        return None
    return ratio <= target


def max_rel_diff(ours: np.ndarray, theirs: np.ndarray) -> float:
    """max |ours - theirs| / max |theirs|: how far apart two results of the same math are."""
    ours = np.asarray(ours, np.float64)
    theirs = np.asarray(theirs, np.float64)
    scale = max(float(np.abs(theirs).max(initial=0.0)), 1e-30)
    return float(np.abs(ours - theirs).max(initial=0.0)) / scale


# --------------------------------------------------------------------- threads
@contextmanager
def limit_threads(threads: int, with_torch: bool = True,
                  with_clearconv: bool = True) -> Iterator[dict[str, Any]]:
    """Run with ``threads`` threads in PyTorch (``set_num_threads``), in clearconv
    (``clearconv.set_num_threads``: its batch split, the BLAS at one thread inside it) and
    in every BLAS / OpenMP pool that threadpoolctl finds (NumPy's OpenBLAS included, for
    the products clearconv does not split); restores all after.

    With clearconv the allocator is tuned as clearconv's training entry points tune it
    (:func:`clearconv.kernels.tune_allocator`, once per process).
    ``with_torch=False`` leaves PyTorch unimported, ``with_clearconv=False`` clearconv.
    Yields a dict with a ``note`` when threadpoolctl is missing (NumPy's BLAS then runs
    with its own default).
    """
    info: dict[str, Any] = {"threads": threads, "note": None}
    torch = optional_torch() if with_torch else None
    old_torch = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(threads)
    if with_clearconv:
        import clearconv
        from clearconv.kernels import tune_allocator

        old_clearconv = clearconv.get_num_threads()
        clearconv.set_num_threads(threads)
        # what fit, train_step and the CLI do once per process: glibc keeps freed memory
        # (the op cases would otherwise get it only after the first training step)
        info["allocator_tuned"] = tune_allocator()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        info["note"] = ("threadpoolctl is not installed: NumPy's BLAS threads are not "
                        "limited (pip install threadpoolctl)")
        limiter = None
    else:
        limiter = threadpool_limits(limits=threads)
    try:
        yield info
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
        if old_torch is not None:
            torch.set_num_threads(old_torch)
        if with_clearconv:
            clearconv.set_num_threads(old_clearconv)


# --------------------------------------------------------------------- machine
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: the SIMD extensions that decide which kernels the BLAS, PyTorch and Numba pick
SIMD_FLAGS = ("AVX", "AVX2", "FMA3", "AVX512F", "AVX512BW", "AVX512VL", "AVX512VNNI",
              "AVX512BF16", "AVX512FP16")


def cpu_flags() -> list[str]:
    """The SIMD extensions of this CPU among :data:`SIMD_FLAGS`: NumPy's runtime
    detection (``__cpu_features__``) where it is found, else the ``flags`` line of
    /proc/cpuinfo (upper-cased, AVX-512 names as NumPy writes them)."""
    features: dict[str, bool] | None = None
    for module in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            features = dict(__import__(module, fromlist=["__cpu_features__"]).__cpu_features__)
            break
        except (ImportError, AttributeError):
            continue
    if features is None:
        features = {}
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("flags"):
                        for flag in line.split(":", 1)[1].split():
                            name = "FMA3" if flag == "fma" else flag.upper()
                            features[name.replace("AVX512_", "AVX512")] = True
                        break
        except OSError:
            pass
    return [flag for flag in SIMD_FLAGS if features.get(flag)]


def cpu_kind(flags: list[str]) -> str:
    """'AVX-512', 'AVX2' or 'no AVX2': the two CPU kinds the issue's targets name."""
    return "AVX-512" if "AVX512F" in flags else "AVX2" if "AVX2" in flags else "no AVX2"


def blas_kernels(pools: Any) -> str:
    """The BLAS libraries threadpoolctl found, each with its version, the kernel it
    picked for this CPU (OpenBLAS's ``architecture``) and its threading layer."""
    if not isinstance(pools, list):
        return str(pools)
    names = []
    for pool in pools:
        if pool.get("user_api") != "blas":
            continue
        text = f"{pool.get('internal_api')} {pool.get('version') or ''}".strip()
        extra = [v for v in (pool.get("architecture"), pool.get("threading_layer")) if v]
        names.append(text + (f" ({', '.join(extra)})" if extra else ""))
    return "; ".join(names) or "no BLAS found by threadpoolctl"


def environment(threads: int) -> dict[str, Any]:
    """What the JSON file records about the machine and the libraries."""
    torch = optional_torch()
    try:
        from threadpoolctl import threadpool_info
        pools = threadpool_info()
    except ImportError:
        pools = "threadpoolctl not installed"
    import clearconv
    from clearconv.kernels import compiled
    flags = cpu_flags()
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "threads": threads,
        "cpu_model": _cpu_model(),
        "cpu_flags": flags,
        "cpu_kind": cpu_kind(flags),
        "blas": blas_kernels(pools),
        "torch_cpu_capability": (torch.backends.cpu.get_cpu_capability()
                                 if torch is not None and hasattr(torch.backends, "cpu")
                                 else None),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "numba": compiled.numba.__version__ if compiled.AVAILABLE else None,
        "clearconv_jit": compiled.AVAILABLE,
        "clearconv_threads": clearconv.get_num_threads(),
        "threadpool_info": pools,
        "openblas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS")},
        "thread_env": {k: v for k, v in os.environ.items()
                       if k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
    }
