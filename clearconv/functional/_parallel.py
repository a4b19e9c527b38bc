"""Run a batch in a few threads, each on its own rows or images, with a single-threaded BLAS.

A multi-threaded BLAS splits each matrix product between its own threads; for the many
small products of a chunked computation (the Winograd path works a few images at a
time so that each chunk's products stay in cache) that split is poor. Here the batch is
split instead: as many threads as the BLAS was allowed (threadpoolctl's view, e.g.
``threadpool_limits(2)``), each running its part with the BLAS limited to one thread.
The kernels release the GIL (Numba ``nogil``, NumPy's matmul and copies), so the threads
run in parallel.

OpenBLAS keeps its worker threads spinning for a while after a multi-threaded product;
they then compete with these threads for the cores. ``Sequential`` therefore runs its
steps inside :func:`blas_single_threaded`, so that all parallel work in a step comes
from here. Without threadpoolctl (a dependency of clearconv, but the code runs without
it) everything runs in the calling thread with the BLAS as configured.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

try:
    from threadpoolctl import ThreadpoolController
except ImportError:  # pragma: no cover - exercised when threadpoolctl is absent
    ThreadpoolController = None

_lock = threading.Lock()
_controller: Any = None
_executor: ThreadPoolExecutor | None = None
_state = threading.local()


def _blas() -> Any:
    """threadpoolctl's controller of the BLAS libraries (None without threadpoolctl)."""
    global _controller
    if ThreadpoolController is None:
        return None
    with _lock:
        if _controller is None:
            _controller = ThreadpoolController().select(user_api="blas")
    return _controller


def workers() -> int:
    """How many threads to split work between: the BLAS's thread count outside any
    :func:`blas_single_threaded` block (1 without threadpoolctl or a BLAS)."""
    if getattr(_state, "in_worker", False):   # work inside a split is not split again
        return 1
    pinned = getattr(_state, "workers", None)
    return _blas_threads() if pinned is None else pinned


def _blas_threads() -> int:
    """The BLAS's current thread count (1 without threadpoolctl or a BLAS)."""
    blas = _blas()
    if blas is None or not blas.lib_controllers:
        return 1
    return max(1, min(lib.num_threads for lib in blas.lib_controllers))


@contextlib.contextmanager
def blas_single_threaded() -> Iterator[None]:
    """Within the block the BLAS uses one thread and :func:`map_split` keeps splitting
    work between as many threads as the BLAS had before."""
    if getattr(_state, "workers", None) is not None or _blas() is None:
        yield
        return
    _state.workers = workers()
    try:
        with _blas().limit(limits=1):
            yield
    finally:
        _state.workers = None


def splits_its_own_work(fn: Callable[..., T]) -> Callable[..., T]:
    """Run ``fn`` inside :func:`blas_single_threaded` (a no-op within one, as in a
    ``Sequential`` step): an op called on its own then also gets its parallelism from
    :func:`map_split` only. A multi-threaded BLAS call between its splits (even a
    matrix-vector product) would leave OpenBLAS's workers spinning against the split's
    threads: conv2d fwd+bwd of (64, 64, 32, 32) -> 128, stride 2, took 104 ms instead of
    63 ms after one 2-thread bias-gradient product."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        with blas_single_threaded():
            return fn(*args, **kwargs)
    return wrapper


def step_context() -> contextlib.AbstractContextManager[None]:
    """What ``Sequential`` runs a forward, backward or training step in: a
    :func:`blas_single_threaded` block, so that all parallel work in the step comes from
    :func:`map_split` and no BLAS worker spins between its ops (with or without Numba:
    the MNIST CNN step without Numba took 31.5 ms inside such a block, 37.3 ms outside)."""
    return blas_single_threaded()


def map_split(fn: Callable[[int, int], T], n: int, parallel: bool = True) -> list[T]:
    """``[fn(lo, hi) ...]`` over a split of ``range(n)`` into contiguous parts, one per
    worker thread, with the BLAS single-threaded meanwhile; in the calling thread
    (``[fn(0, n)]``) when there is one worker or ``parallel`` is False (work too small
    to pay for a hand-off: waking a worker and waiting for it costs ~20-80 us)."""
    from ..runtime import tune_allocator

    tune_allocator()
    k = min(workers(), n) if parallel else 1
    if k <= 1:
        return [fn(0, n)]
    global _executor
    with _lock:
        if _executor is None or _executor._max_workers < k - 1:  # noqa: SLF001
            _executor = ThreadPoolExecutor(max_workers=k - 1, thread_name_prefix="clearconv")
        executor = _executor
    bounds = [n * i // k for i in range(k + 1)]
    with blas_single_threaded():
        # the calling thread does the first part itself: one hand-off fewer
        parts = [_Part(fn, bounds[i], bounds[i + 1]) for i in range(1, k)]
        futures = [executor.submit(part.run_in_worker) for part in parts]
        _state.in_worker = True
        try:
            results = [fn(bounds[0], bounds[1])]
            # a part no worker has started yet is done here: a worker's wake-up is
            # sometimes late by 1-2 ms on a busy machine (measured in LeNet-5 steps),
            # far longer than the part itself
            for part in parts:
                part.run_here_if_unclaimed()
        except BaseException:
            # no part may run after this call has failed: take the unstarted ones,
            # wait for those running in a worker
            for part, future in zip(parts, futures):
                if not part.claim.acquire(blocking=False) and not part.here:
                    contextlib.suppress(BaseException)(future.result)()
            raise
        finally:
            _state.in_worker = False
        for part, future in zip(parts, futures):
            if not part.here:
                future.result()         # waits for the worker; re-raises its exception
            results.append(part.result)
        return results


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
            _state.in_worker = True
            self.result = self.fn(self.lo, self.hi)

    def run_here_if_unclaimed(self) -> bool:
        """Run the part in this thread unless a worker has claimed it; whether it ran."""
        if not self.claim.acquire(blocking=False):
            return False
        self.here = True
        self.result = self.fn(self.lo, self.hi)
        return True


#: products smaller than this many multiply-adds are not worth a thread hand-off
_MIN_SPLIT = 1 << 22


def _split_pays(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether the product of a (m, k) and b (k, n) is worth splitting over a's rows."""
    m, k = a.shape
    return workers() > 1 and m >= 2 and m * k * b.shape[1] >= _MIN_SPLIT


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


def add_up(parts: list[np.ndarray]) -> np.ndarray:
    """The sum of the partial results of a :func:`map_split`, added into the first."""
    total = parts[0]
    for p in parts[1:]:
        total += p
    return total
