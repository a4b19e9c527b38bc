"""The batch split between threads (clearconv.functional._parallel): every row is done
once, results equal the unsplit computation, and the BLAS thread count is restored."""

from __future__ import annotations

import numpy as np
import pytest

from clearconv.functional import _parallel, conv2d_backward, conv2d_forward
from clearconv.functional import linear_backward, linear_forward

threadpoolctl = pytest.importorskip("threadpoolctl", reason="threadpoolctl not installed: "
                                                             "work is not split")


@pytest.fixture
def three_workers(monkeypatch):
    monkeypatch.setattr(_parallel, "_blas_threads", lambda: 3)
    monkeypatch.setattr(_parallel, "_MIN_SPLIT", 0)


def test_work_inside_a_split_is_not_split_again(three_workers):
    assert _parallel.map_split(lambda lo, hi: _parallel.workers(), 3) == [1, 1, 1]


def test_map_split_covers_every_index_once(three_workers):
    seen = np.zeros(10, int)

    def fn(lo, hi):
        seen[lo:hi] += 1
        return lo, hi

    parts = _parallel.map_split(fn, 10)
    assert [p[0] for p in parts] == [0, 3, 6] and parts[-1][1] == 10
    assert (seen == 1).all()
    assert _parallel.map_split(lambda lo, hi: (lo, hi), 2) == [(0, 1), (1, 2)]


def test_parts_no_worker_has_started_are_run_by_the_caller(three_workers):
    """Workers busy (here: blocked) -> the caller does their parts itself, in order, once;
    the workers later find them taken and skip them."""
    import threading

    _parallel.map_split(lambda lo, hi: None, 3)          # the pool exists
    release = threading.Event()
    blockers = [_parallel._executor.submit(release.wait) for _ in range(2)]
    try:
        seen = np.zeros(9, int)

        def fn(lo, hi):
            seen[lo:hi] += 1
            return threading.get_ident(), lo

        parts = _parallel.map_split(fn, 9)
        assert [lo for _, lo in parts] == [0, 3, 6] and (seen == 1).all()
        assert {ident for ident, _ in parts} == {threading.get_ident()}
        ran = []

        def failing(lo, hi):
            ran.append(lo)
            return 1 // (0 if lo else 1)                # the part from 3 fails

        with pytest.raises(ZeroDivisionError):          # a stolen part's error surfaces
            _parallel.map_split(failing, 9)
    finally:
        release.set()
        for b in blockers:
            b.result()
    _parallel._executor.submit(lambda: None).result()   # the workers' queue is drained
    # skipped parts ran nowhere else, and nothing ran after the failed call returned
    assert (seen == 1).all() and ran == [0, 3]


def test_blas_threads_are_restored():
    before = [p["num_threads"] for p in threadpoolctl.threadpool_info()
              if p["user_api"] == "blas"]
    with _parallel.blas_single_threaded():
        # the BLAS libraries loaded when clearconv first split work (NumPy's)
        inside = [lib.num_threads for lib in _parallel._blas().lib_controllers]
        _parallel.map_split(lambda lo, hi: None, 4)
    after = [p["num_threads"] for p in threadpoolctl.threadpool_info()
             if p["user_api"] == "blas"]
    assert after == before
    assert all(n == 1 for n in inside)


def test_split_products_equal_numpy(three_workers):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((37, 11)), rng.standard_normal((11, 5))
    np.testing.assert_allclose(_parallel.matmul(a, b), a @ b, rtol=1e-13)
    c = rng.standard_normal((37, 5))
    np.testing.assert_allclose(_parallel.matmul_t(a, c), a.T @ c, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("c_in", [1, 3, 8])
def test_conv_and_linear_split_equal_unsplit(c_in, monkeypatch):
    rng = np.random.default_rng(c_in)
    x = rng.standard_normal((5, c_in, 7, 6))
    w = rng.standard_normal((4, c_in, 3, 3))
    b = rng.standard_normal(4)

    def run():
        y, cache = conv2d_forward(x, w, b, padding=1, algorithm="im2col")
        dy = np.random.default_rng(9).standard_normal(y.shape)
        return (y, *conv2d_backward(dy, cache))

    def run_linear():
        xl = x.reshape(5, -1)
        wl = rng_l.standard_normal((3, xl.shape[1]))
        y, cache = linear_forward(xl, wl, b[:3])
        return (y, *linear_backward(np.ones_like(y), cache))

    one = run()
    rng_l = np.random.default_rng(1)
    one_l = run_linear()
    with monkeypatch.context() as m:
        m.setattr(_parallel, "_blas_threads", lambda: 3)
        m.setattr(_parallel, "_MIN_SPLIT", 0)
        three = run()
        rng_l = np.random.default_rng(1)
        three_l = run_linear()
    for a, b_ in zip(one + one_l, three + three_l):
        np.testing.assert_allclose(a, b_, rtol=1e-12, atol=1e-12)
