"""clearconv's thread policy (clearconv.kernels.threads): set once per process, work split
only inside a region, the BLAS at one thread while any region is open and restored after
the last, every row done once, errors crossing threads intact.

No test waits on the clock: threads meet at events and barriers (with a generous bound
only so that a broken build fails instead of hanging).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import clearconv as cc
from clearconv.errors import ClearConvError
from clearconv.kernels import threads

threadpoolctl = pytest.importorskip("threadpoolctl", reason="threadpoolctl not installed: "
                                                             "work is not split")
BOUND = 60.0   # seconds a barrier waits before the test fails instead of hanging


def blas_threads() -> list[int]:
    """NumPy's BLAS thread count (Numba may load SciPy's BLAS too: not clearconv's)."""
    return [p["num_threads"] for p in threadpoolctl.threadpool_info()
            if p["user_api"] == "blas" and "numpy" in p["filepath"]]


@pytest.fixture
def three_threads():
    before = cc.get_num_threads()
    cc.set_num_threads(3)
    yield
    cc.set_num_threads(before)


@pytest.fixture
def blas_at_two():
    """NumPy's BLAS at 2 threads, as a user may have set it (restored after)."""
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        yield


def test_default_is_the_cores_this_process_may_use(monkeypatch):
    import os

    monkeypatch.setattr(threads, "_num_threads", None)
    monkeypatch.delenv("CLEARCONV_NUM_THREADS", raising=False)
    assert cc.get_num_threads() == len(os.sched_getaffinity(0))
    assert threads._num_threads == len(os.sched_getaffinity(0))      # looked up once
    monkeypatch.setattr(threads, "_num_threads", None)
    monkeypatch.setenv("CLEARCONV_NUM_THREADS", "5")
    assert cc.get_num_threads() == 5
    monkeypatch.setattr(threads, "_num_threads", None)
    monkeypatch.setenv("CLEARCONV_NUM_THREADS", "zero")
    with pytest.raises(ClearConvError, match="CLEARCONV_NUM_THREADS.*'zero'"):
        cc.get_num_threads()


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "2"])
def test_set_num_threads_refuses_what_is_not_a_count(bad):
    with pytest.raises(ClearConvError, match="set_num_threads needs an int >= 1"):
        cc.set_num_threads(bad)


def test_work_is_split_only_inside_a_region(three_threads):
    assert threads.workers() == 1
    with cc.parallel():
        assert threads.workers() == 3
        with cc.parallel():            # nested: the same
            assert threads.workers() == 3
        # work inside a split is not split again
        assert threads.map_split(lambda lo, hi: threads.workers(), 3) == [1, 1, 1]
    assert threads.workers() == 1


def test_map_split_covers_every_index_once(three_threads):
    seen = np.zeros(10, int)

    def fn(lo, hi):
        seen[lo:hi] += 1
        return lo, hi

    with cc.parallel():
        parts = threads.map_split(fn, 10)
        assert threads.map_split(lambda lo, hi: (lo, hi), 2) == [(0, 1), (1, 2)]
    assert [p[0] for p in parts] == [0, 3, 6] and parts[-1][1] == 10
    assert (seen == 1).all()


def test_the_blas_runs_one_thread_inside_and_is_restored_after(three_threads, blas_at_two):
    assert blas_threads() == [2]
    with cc.parallel():
        assert blas_threads() == [1]
        with cc.parallel():
            assert blas_threads() == [1]
        assert blas_threads() == [1]
    assert blas_threads() == [2]


def test_one_thread_means_one_core_the_blas_too(blas_at_two):
    """set_num_threads(1): nothing split, and the products on one BLAS thread (two such
    trainings on a 2-core machine otherwise fight with their spinning BLAS workers)."""
    before = cc.get_num_threads()
    cc.set_num_threads(1)
    try:
        with cc.parallel():
            assert blas_threads() == [1]
            assert threads.workers() == 1
        assert blas_threads() == [2]
    finally:
        cc.set_num_threads(before)


def test_stateless_ops_outside_a_region_leave_the_blas_alone(three_threads, blas_at_two):
    x = np.ones((4, 8, 6, 6), np.float32)
    w = np.ones((8, 8, 3, 3), np.float32)
    seen = []
    real = threads._lower_blas
    threads._lower_blas = lambda: (seen.append(1), real())[1]
    try:
        y, cache = cc.functional.conv2d_forward(x, w, padding=1)
        cc.functional.conv2d_backward(np.ones_like(y), cache)
        cc.functional.max_pool2d_forward(x, 2)
        seen_blas = blas_threads()
    finally:
        threads._lower_blas = real
    assert seen == [] and seen_blas == [2]


def _in_thread(fn):
    """Run fn in a new Python thread; its result (or its exception, raised here)."""
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            out["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    t.join(BOUND)
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out.get("result")


def test_two_python_threads_leave_the_blas_as_the_user_set_it(three_threads, blas_at_two):
    """The measured bug: the main thread and another one inside regions at once, the main
    one closing first. With a save/restore per call the other one restored the main's 1
    for the rest of the process."""
    b_open, main_closed, b_done = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def b() -> None:
        with cc.parallel():
            seen["b_inside"] = blas_threads()
            seen["b_splits"] = threads.workers()
            b_open.set()
            assert main_closed.wait(BOUND)
            seen["b_after_main_closed"] = blas_threads()
        b_done.set()

    with cc.parallel():
        t = threading.Thread(target=b)
        t.start()
        assert b_open.wait(BOUND)
        seen["main_inside"] = blas_threads()
    main_closed.set()
    assert b_done.wait(BOUND)
    t.join(BOUND)
    assert seen["main_inside"] == seen["b_inside"] == [1]
    assert seen["b_splits"] == 3                       # the BLAS ran one thread: split
    assert seen["b_after_main_closed"] == [2]          # the main thread gave it back
    assert blas_threads() == [2]


def test_a_region_in_another_thread_leaves_the_blas_alone_and_does_not_split(three_threads,
                                                                             blas_at_two):
    def inside() -> tuple[list[int], int]:
        with cc.parallel():
            return blas_threads(), threads.workers()

    assert _in_thread(inside) == ([2], 1)
    assert blas_threads() == [2]


def test_two_python_threads_training_at_once_get_the_single_thread_results(three_threads,
                                                                           blas_at_two):
    from clearconv.train import optim, zoo

    rng = np.random.default_rng(0)
    x = rng.random((16, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 16)

    def train() -> np.ndarray:
        model = zoo.lenet5(rng=1)
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        for _ in range(3):
            model.train_step(x, y, opt)
        return model.predict(x)

    alone = _in_thread(train)          # the same conditions: a thread that is not main
    start = threading.Barrier(2, timeout=BOUND)
    results: list[np.ndarray] = []

    def worker() -> None:
        start.wait()
        results.append(train())

    ts = [threading.Thread(target=worker) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(BOUND)
    assert len(results) == 2
    for r in results:
        np.testing.assert_array_equal(r, alone)
    assert blas_threads() == [2]


def test_an_error_in_a_worker_reaches_the_caller_as_raised(three_threads):
    claimed = threading.Event()

    def fn(lo, hi):
        if lo == 0:                   # the calling thread waits until a worker runs its part
            assert claimed.wait(BOUND)
            return "caller"
        claimed.set()
        raise ValueError(f"bad part {lo}")

    with cc.parallel(), pytest.raises(ValueError, match="bad part"):
        threads.map_split(fn, 2)


def test_an_error_in_the_caller_waits_for_running_workers_then_surfaces(three_threads):
    """Today's suppress() bug made this a TypeError; the worker also finishes first."""
    started, finished = threading.Event(), threading.Event()
    release = threading.Event()

    def fn(lo, hi):
        if lo == 0:
            assert started.wait(BOUND)
            release.set()
            raise KeyError("caller failed")
        started.set()
        assert release.wait(BOUND)
        finished.set()
        return lo

    with cc.parallel(), pytest.raises(KeyError, match="caller failed"):
        threads.map_split(fn, 2)
    assert finished.is_set()


def test_parts_no_worker_has_started_are_run_by_the_caller(three_threads):
    """Workers busy (here: blocked) -> the caller does their parts itself, in order, once;
    the workers later find them taken and skip them; a failing part's error surfaces and
    no part runs after the failed call returned."""
    with cc.parallel():
        threads.map_split(lambda lo, hi: None, 3)          # the pool exists
        release = threading.Event()
        blockers = [threads._executor.submit(release.wait) for _ in range(2)]
        try:
            seen = np.zeros(9, int)

            def fn(lo, hi):
                seen[lo:hi] += 1
                return threading.get_ident(), lo

            parts = threads.map_split(fn, 9)
            assert [lo for _, lo in parts] == [0, 3, 6] and (seen == 1).all()
            assert {ident for ident, _ in parts} == {threading.get_ident()}
            ran = []

            def failing(lo, hi):
                ran.append(lo)
                return 1 // (0 if lo else 1)                # the part from 3 fails

            with pytest.raises(ZeroDivisionError):
                threads.map_split(failing, 9)
        finally:
            release.set()
            for b in blockers:
                b.result()
        threads._executor.submit(lambda: None).result()     # the workers' queue is drained
    assert (seen == 1).all() and ran == [0, 3]


def test_split_products_equal_numpy(three_threads, monkeypatch):
    from clearconv.kernels import tuning

    monkeypatch.setattr(tuning, "MIN_SPLIT_PRODUCT", 0)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((37, 11)), rng.standard_normal((11, 5))
    c = rng.standard_normal((37, 5))
    with cc.parallel():
        np.testing.assert_allclose(threads.matmul(a, b), a @ b, rtol=1e-13)
        np.testing.assert_allclose(threads.matmul_t(a, c), a.T @ c, rtol=1e-12, atol=1e-13)
        # few rows against many columns (a dense layer's batch against its weight): the
        # split goes over the columns, and a.T @ c needs no sum of parts
        wide, batch = rng.standard_normal((11, 40)), rng.standard_normal((4, 11))
        np.testing.assert_allclose(threads.matmul(batch, wide), batch @ wide, rtol=1e-13)
        dy, x = rng.standard_normal((6, 20)), rng.standard_normal((6, 300))
        np.testing.assert_allclose(threads.matmul_t(dy, x), dy.T @ x, rtol=1e-12, atol=1e-13)
