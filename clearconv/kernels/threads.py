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
  may run on (``os.sched_getaffinity``), or the ``CLEARCONV_NUM_THREADS`` variable.
- Work is split only inside a :func:`region`, which the entry points open: every
  ``Sequential`` forward, backward, train step, ``fit``, ``evaluate`` and ``predict``,
  and the CLI. A user calling the stateless ops of :mod:`clearconv.functional` directly
  opens one with ``with clearconv.parallel(): ...``; outside one an op runs in the
  calling thread, and NumPy's BLAS parallelises its products as the user configured it.
- While any region is open in the process, NumPy's BLAS runs one thread (otherwise its
  spinning workers compete with clearconv's for the cores: conv2d forward+backward of
  (64, 64, 32, 32) -> 128, stride 2, took 104 ms instead of 63 ms after one
  multi-threaded bias-gradient product). The first region to open sets it, the last to
  close restores the count it found, with one counter for the whole process: two Python
  threads training at once leave the BLAS as the user set it. Setting it is one call into
  the BLAS library (threadpoolctl's controller, looked up once), not a threadpoolctl
  scan per call.

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
_local = threading.local()          # .depth: regions open in this thread; .in_worker
_num_threads: int | None = None
_controller: Any = None             # threadpoolctl's controller of the BLAS libraries
_open_regions = 0                   # regions open in the whole process
_saved_blas: list[tuple[Any, int]] | None = None   # (library, thread count) to restore
_executor: ThreadPoolExecutor | None = None
_blas_thread: ThreadPoolExecutor | None = None   # where the BLAS thread count is changed


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
    ``set_num_threads(1)`` runs everything in the calling thread and leaves the BLAS alone.
    """
    if isinstance(n, bool) or not hasattr(n, "__index__") or int(n) < 1:
        raise ClearConvError(f"set_num_threads needs an int >= 1, got {n!r}")
    global _num_threads
    _num_threads = int(n)


def get_num_threads() -> int:
    """How many threads clearconv splits its work between (see :func:`set_num_threads`)."""
    if _num_threads is None:
        return _default_num_threads()
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


def _set_blas(settings: list[tuple[Any, int]]) -> None:
    """Set each BLAS library's thread count, in :data:`_blas_thread`.

    OpenBLAS (0.3.31, NumPy's wheel) ignores a raise of its thread count asked by another
    thread than the one that lowered it while that one is alive: restored from the thread
    that happens to close the last region, the count could stay at one. Every change is
    therefore made by one long-lived thread of clearconv's (a hand-off of ~20-50 us, at
    the first region's opening and the last one's closing only).
    """
    def apply() -> None:
        for lib, threads in settings:
            lib.set_num_threads(threads)

    global _blas_thread
    if _blas_thread is None:
        _blas_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clearconv-blas")
    _blas_thread.submit(apply).result()


def _open() -> None:
    global _open_regions, _saved_blas
    with _lock:
        if _open_regions == 0 and get_num_threads() > 1:
            libs = _controller.lib_controllers if _controller is not None else []
            saved = [(lib, lib.num_threads) for lib in libs]
            _saved_blas = [(lib, n) for lib, n in saved if n != 1]
            if _saved_blas:
                _set_blas([(lib, 1) for lib, _ in _saved_blas])
        _open_regions += 1


def _close() -> None:
    global _open_regions, _saved_blas
    with _lock:
        _open_regions -= 1
        if _open_regions == 0 and _saved_blas:
            _set_blas(_saved_blas)
        if _open_regions == 0:
            _saved_blas = None


@contextlib.contextmanager
def region() -> Iterator[None]:
    """Within the block, ops split their work between :func:`get_num_threads` threads and
    NumPy's BLAS runs one thread (restored when the last region in the process closes).

    Regions nest (an inner one costs a thread-local counter) and may be open in several
    Python threads at once. Exposed as ``clearconv.parallel()``.
    """
    depth = getattr(_local, "depth", 0)
    if depth == 0:
        _blas()             # looked up outside the lock, once per process
        _open()
    _local.depth = depth + 1
    try:
        yield
    finally:
        _local.depth = depth
        if depth == 0:
            _close()


def workers() -> int:
    """How many threads :func:`map_split` uses here: :func:`get_num_threads` inside a
    region, 1 outside one, inside a split (work there is not split again) and without
    threadpoolctl (the BLAS could not be kept to one thread)."""
    if getattr(_local, "in_worker", False) or not getattr(_local, "depth", 0):
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
    """Whether the product of a (m, k) and b (k, n) is worth splitting over a's rows."""
    m, k = a.shape
    return workers() > 1 and m >= 2 and m * k * b.shape[1] >= tuning.MIN_SPLIT_PRODUCT


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` (2-D) with a's rows split between the worker threads."""
    m = a.shape[0]
    if out is None:
        out = np.empty((m, b.shape[1]), np.result_type(a, b))
    if not _split_pays(a, b):
        return np.matmul(a, b, out=out)
    map_split(lambda lo, hi: np.matmul(a[lo:hi], b, out=out[lo:hi]), m)
    return out


def matmul_t(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a.T @ b`` (2-D, a sum over their shared rows), the rows split between the worker
    threads and the partial products added."""
    if not _split_pays(a, b):
        return a.T @ b
    return add_up(map_split(lambda lo, hi: a[lo:hi].T @ b[lo:hi], a.shape[0]))
