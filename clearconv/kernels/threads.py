"""clearconv's one thread policy: a batch split between its own threads, the BLAS at one.

A multi-threaded BLAS splits each matrix product between its own threads; for the many
small products of a chunked computation (Winograd works a few images at a time so that
each chunk's products stay in cache) that split is poor. clearconv splits the batch
instead: :func:`map_split` runs contiguous parts of it in :func:`get_num_threads`
threads, each part's products single-threaded. The kernels release the GIL (Numba
``nogil``, NumPy's matmul and copies), so the threads run in parallel.

The policy, set once per process:

- :func:`set_num_threads` / :func:`get_num_threads`, as ``torch.set_num_threads``:
  how many threads clearconv splits its work between. Default: the cores this process
  may run on (``os.sched_getaffinity``), or the ``CLEARCONV_NUM_THREADS`` variable,
  read at the first op.
- Work is split only inside a :func:`region`, which the entry points open: every
  ``Sequential`` forward, backward, train step, ``fit``, ``evaluate`` and ``predict``,
  and the CLI. A user calling the stateless ops of :mod:`clearconv.functional` directly
  opens one with ``with clearconv.parallel(): ...``; outside one an op runs in the
  calling thread, and NumPy's BLAS parallelises its products as the user configured it.
- While a region of the main thread is open, NumPy's BLAS runs one thread (otherwise
  its spinning workers compete with clearconv's for the cores: conv2d forward+backward
  of (64, 64, 32, 32) -> 128, stride 2, took 104 ms instead of 63 ms after one
  multi-threaded bias-gradient product); the outermost one sets it and gives the count
  back when it closes, one call into the BLAS library each (threadpoolctl's controller,
  looked up once). Only the main thread changes it: OpenBLAS (0.3.31, NumPy's wheel)
  obeys only the first thread that ever set its count, the user's, and ignores the
  others. A region in another Python thread splits its work only while the BLAS runs
  one thread. So two Python threads training at once leave the BLAS as the user set it.

No stateless op changes a process-wide setting; the allocator is tuned by the training
entry points only (:mod:`clearconv.kernels.allocator`).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any, TypeVar

import numpy as np

from ..errors import ClearConvError
from . import tuning

T = TypeVar("T")

try:
    from threadpoolctl import ThreadpoolController
except ImportError:  # pragma: no cover - exercised when threadpoolctl is absent
    ThreadpoolController = None

_lock = threading.Lock()
_local = threading.local()          # .depth: regions open in this thread; .split: whether
                                    # its outermost one may split; .in_worker
_num_threads: int | None = None
_controller: Any = None             # threadpoolctl's controller of the BLAS libraries
_executor: ThreadPoolExecutor | None = None


def _default_num_threads() -> int:
    env = os.environ.get("CLEARCONV_NUM_THREADS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n < 1:
            raise ClearConvError(f"CLEARCONV_NUM_THREADS must be an int >= 1, got {env!r}")
        return n
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def set_num_threads(n: int) -> None:
    """Split clearconv's work between ``n`` threads from now on (``n >= 1``).

    Takes effect at the next op; a region already open keeps the BLAS single-threaded.
    ``set_num_threads(1)`` runs everything in the calling thread, its products on one BLAS
    thread too: one core, as ``torch.set_num_threads(1)``. (Leaving the BLAS its own
    threads there made two 1-thread trainings on a 2-core machine 3x slower each: both
    processes' spinning BLAS workers fought for the cores.)
    """
    if isinstance(n, bool) or not hasattr(n, "__index__") or int(n) < 1:
        raise ClearConvError(f"set_num_threads needs an int >= 1, got {n!r}")
    global _num_threads
    _num_threads = int(n)


def get_num_threads() -> int:
    """How many threads clearconv splits its work between (see :func:`set_num_threads`).
    The default is looked up once (every op asks) and kept until ``set_num_threads``."""
    global _num_threads
    if _num_threads is None:
        _num_threads = _default_num_threads()
    return _num_threads


def _blas() -> Any:
    """threadpoolctl's controller of the BLAS libraries, looked up once (None without
    threadpoolctl)."""
    global _controller
    if ThreadpoolController is None:
        return None
    with _lock:
        if _controller is None:
            _controller = ThreadpoolController().select(user_api="blas")
    return _controller


def _lower_blas() -> list[tuple[Any, int]]:
    """Set every BLAS library to one thread; the (library, count) pairs it changed.

    Each change is read back: OpenBLAS (0.3.31, NumPy's wheel) obeys only the first thread
    that ever set its count, and ignores the others' calls.
    """
    changed = []
    for lib in _controller.lib_controllers if _controller is not None else []:
        before = lib.num_threads
        if before != 1:
            lib.set_num_threads(1)
            if lib.num_threads == 1:
                changed.append((lib, before))
    return changed


def _blas_single_threaded() -> bool:
    libs = _controller.lib_controllers if _controller is not None else []
    return all(lib.num_threads == 1 for lib in libs)


@contextlib.contextmanager
def region() -> Iterator[None]:
    """Within the block, ops split their work between :func:`get_num_threads` threads,
    each part's products single-threaded. Exposed as ``clearconv.parallel()``.

    In the main thread the outermost region sets NumPy's BLAS to one thread and gives it
    its count back when it closes. A region in another Python thread leaves the BLAS
    alone (OpenBLAS lets one thread only change it, the first that did: the user's main
    thread), and splits its work only while the BLAS runs one thread, inside a region of
    the main thread or where the user set it so. Regions nest (an inner one costs a
    thread-local counter) and may be open in several Python threads at once; none ever
    leaves the BLAS other than the user set it.
    """
    depth = getattr(_local, "depth", 0)
    if depth:
        _local.depth = depth + 1
        try:
            yield
        finally:
            _local.depth = depth
        return
    _blas()                         # looked up once per process
    split = get_num_threads() > 1
    changed: list[tuple[Any, int]] = []
    if threading.current_thread() is threading.main_thread():
        changed = _lower_blas()         # with one clearconv thread too: one core in all
    _local.split = split and _blas_single_threaded()
    _local.depth = 1
    try:
        yield
    finally:
        _local.depth = 0
        _local.split = False
        for lib, threads in changed:
            lib.set_num_threads(threads)


def workers() -> int:
    """How many threads :func:`map_split` uses here: :func:`get_num_threads` inside a
    region whose BLAS runs one thread; 1 outside a region, inside a split (work there is
    not split again) and without threadpoolctl (the BLAS could not be checked)."""
    if getattr(_local, "in_worker", False) or not getattr(_local, "split", False):
        return 1
    if ThreadpoolController is None:
        return 1
    return get_num_threads()


def map_split(fn: Callable[[int, int], T], n: int, parallel: bool = True) -> list[T]:
    """``[fn(lo, hi) ...]`` over a split of ``range(n)`` into contiguous parts, one per
    worker thread (:func:`workers`); ``[fn(0, n)]`` in the calling thread when there is
    one worker or ``parallel`` is False (work too small to pay for a hand-off: waking a
    worker and waiting for it costs ~20-80 us).

    The calling thread runs the first part, then any part no worker has started yet (a
    worker's wake-up is sometimes late by 1-2 ms on a busy machine, far longer than the
    part itself). An exception in any part reaches the caller as raised, after every
    part already running has finished; no part starts after the call has failed.
    """
    k = min(workers(), n) if parallel else 1
    if k <= 1:
        return [fn(0, n)]
    executor = _pool(k - 1)
    bounds = [n * i // k for i in range(k + 1)]
    parts = [_Part(fn, bounds[i], bounds[i + 1]) for i in range(1, k)]
    futures = [executor.submit(part.run_in_worker) for part in parts]
    _local.in_worker = True
    try:
        results = [fn(bounds[0], bounds[1])]
        for part in parts:
            part.run_here_if_unclaimed()
    except BaseException:
        # take the parts no worker has started; wait for those a worker is running
        running = [f for part, f in zip(parts, futures)
                   if not part.claim.acquire(blocking=False) and not part.here]
        wait_futures(running)
        raise
    finally:
        _local.in_worker = False
    for part, future in zip(parts, futures):
        if not part.here:
            future.result()         # waits for the worker; re-raises its exception
        results.append(part.result)
    return results


def _forget_threads_after_fork() -> None:
    """In a forked child the pool's threads do not exist: start afresh there."""
    global _executor, _lock
    _executor = None
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_threads_after_fork)


def _pool(size: int) -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None or _executor._max_workers < size:  # noqa: SLF001
            _executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="clearconv")
        return _executor


class _Part:
    """One part of a :func:`map_split`: run once, by whichever thread claims it first."""

    __slots__ = ("fn", "lo", "hi", "claim", "here", "result")

    def __init__(self, fn: Callable[[int, int], Any], lo: int, hi: int) -> None:
        self.fn, self.lo, self.hi = fn, lo, hi
        self.claim = threading.Lock()
        self.here = False          # claimed by the calling thread
        self.result: Any = None

    def run_in_worker(self) -> None:
        if self.claim.acquire(blocking=False):
            _local.in_worker = True
            self.result = self.fn(self.lo, self.hi)

    def run_here_if_unclaimed(self) -> bool:
        """Run the part in this thread unless a worker has claimed it; whether it ran."""
        if not self.claim.acquire(blocking=False):
            return False
        self.here = True
        self.result = self.fn(self.lo, self.hi)
        return True


def add_up(parts: list[np.ndarray]) -> np.ndarray:
    """The sum of the partial results of a :func:`map_split`, added into the first."""
    total = parts[0]
    for p in parts[1:]:
        total += p
    return total


def _split_pays(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether the product of a (m, k) and b (k, n) is worth splitting between threads."""
    m, k = a.shape
    n = b.shape[1]
    return workers() > 1 and max(m, n) >= 2 and m * k * n >= tuning.MIN_SPLIT_PRODUCT


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` (2-D), split between the worker threads over a's rows or b's columns,
    whichever makes each thread read less: a row part reads a's rows and all of b, a
    column part all of a and b's columns (a dense layer's batch of 64 against its weight
    of 3136 x 128: the columns, each thread reading half the weight)."""
    m = a.shape[0]
    n = b.shape[1]
    if out is None:
        out = np.empty((m, n), np.result_type(a, b))
    if not _split_pays(a, b):
        return np.matmul(a, b, out=out)
    if m >= n:
        map_split(lambda lo, hi: np.matmul(a[lo:hi], b, out=out[lo:hi]), m)
    else:
        map_split(lambda lo, hi: np.matmul(a, b[:, lo:hi], out=out[:, lo:hi]), n)
    return out


def matmul_t(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a.T @ b`` (2-D, a sum over their shared rows), split between the worker threads:
    over the shared rows (each part's partial product, added up after) or over b's
    columns (no sum, each part reading all of a), whichever moves less memory."""
    if not _split_pays(a.T, b):
        return a.T @ b
    r, p = a.shape
    q = b.shape[1]
    w = workers()
    by_rows = (p + q) * r / w + p * q * w          # the parts' reads, then their sum
    by_columns = r * p + r * q / w
    if by_columns < by_rows and q >= 2:
        out = np.empty((p, q), np.result_type(a, b))
        map_split(lambda lo, hi: np.matmul(a.T, b[:, lo:hi], out=out[:, lo:hi]), q)
        return out
    return add_up(map_split(lambda lo, hi: a[lo:hi].T @ b[lo:hi], r))
