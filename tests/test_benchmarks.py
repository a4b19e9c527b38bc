"""The benchmark harness (benchmarks/): timing protocol, records, JSON file, table.

Runs the harness's own functions on tiny cases (a few seconds), not the whole suite.
"""

from __future__ import annotations

import json
import statistics

import pytest

from benchmarks.cases import ConvShape, conv_case
from benchmarks.harness import measure_pair, optional_torch, run_case
from benchmarks.run import main, selected

needs_torch = pytest.mark.skipif(optional_torch() is None,
                                 reason="PyTorch is not installed: nothing to compare against")


def test_pairs_are_interleaved_after_first_calls_and_warmup():
    calls: list[str] = []
    raw = measure_pair(lambda: calls.append("a"), lambda: calls.append("b"),
                       samples=7, warmup=2)
    assert calls == ["a", "b"] * (1 + 2 + 7)   # first calls, warm-up, samples: A/B/A/B
    assert len(raw["a"]) == len(raw["b"]) == 7
    assert all(t >= 0 for t in raw["a"] + raw["b"])


class FakeClock:
    """A clock that advances only when a call says so: no test depends on real time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, ms: float) -> None:
        self.now += ms / 1e3


def test_settling_calls_go_before_each_timed_call_until_the_time_is_up():
    clock = FakeClock()
    calls: list[str] = []

    def side(name: str):
        def call() -> None:
            calls.append(name)
            clock.advance(4.0)          # each call "takes" 4 ms
        return call

    raw = measure_pair(side("a"), side("b"), samples=3, warmup=0, settle=1, settle_ms=10,
                       clock=clock)
    assert len(raw["a"]) == len(raw["b"]) == 3
    assert raw["a"] == pytest.approx([0.004] * 3) and raw["b"] == pytest.approx([0.004] * 3)
    runs = []            # the calls grouped into runs of the same side
    for name in calls:
        if runs and runs[-1][0] == name:
            runs[-1][1] += 1
        else:
            runs.append([name, 1])
    # first calls, then per sample: settling calls until >= 10 ms have passed (3 calls of
    # 4 ms: 4, 8, 12), then the timed one
    assert [r[0] for r in runs] == ["a", "b"] * 4
    assert runs[0][1] == runs[1][1] == 1
    assert all(n == 4 for _, n in runs[2:])


def test_settling_makes_at_least_the_asked_number_of_calls():
    clock = FakeClock()
    calls: list[str] = []
    measure_pair(lambda: calls.append("a"), None, samples=2, warmup=0, settle=3,
                 settle_ms=0.0, clock=clock)
    assert calls == ["a"] + ["a"] * (3 + 1) * 2


def test_case_filter_matches_substrings_and_globs():
    assert selected("conv fwd+bwd 64x1x28x28->32 k3 s1 p1", "fwd+bwd")
    assert selected("train step lenet5 b64", "inference,train")
    assert selected("conv fwd 64x1x28x28->32 k3 s1 p1", "conv fwd 64*")
    assert not selected("conv fwd 64x1x28x28->32 k3 s1 p1", "train")
    assert selected("anything", None)


@needs_torch
def test_tiny_conv_case_record():
    case = conv_case(ConvShape(2, 3, 8, 8, 4, 3, 1, 1), backward=True)
    record = json.loads(json.dumps(run_case(case, samples=7, warmup=1)))  # JSON-able

    assert record["name"] == case.name and record["target"] == 1.5
    assert record["samples"] == 7
    cc, pt = record["clearconv"], record["torch"]
    for side in (cc, pt):
        assert len(side["samples_ms"]) == 7
        assert side["min_ms"] <= side["median_ms"] <= side["max_ms"]
        assert side["median_ms"] == pytest.approx(statistics.median(side["samples_ms"]))
        assert side["first_call_ms"] > 0
    per_pair = [a / b for a, b in zip(cc["samples_ms"], pt["samples_ms"])]
    assert record["ratios"] == pytest.approx(per_pair)
    assert record["ratio_median"] == pytest.approx(statistics.median(per_pair))
    assert record["passed"] == (record["ratio_median"] <= 1.5)
    # both sides computed the same gradients
    assert set(record["check"]) == {"max_rel_diff_dx", "max_rel_diff_dw", "max_rel_diff_db"}
    assert max(record["check"].values()) < 1e-4


@needs_torch
def test_run_writes_json_and_prints_table_last(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["--cases", "conv fwd 64x1x28x28->6", "--samples", "7", "--warmup", "1",
                 "--threads", "1", "--json", str(out)]) == 0

    data = json.loads(out.read_text())
    env = data["environment"]
    assert env["threads"] == 1
    for key in ("threadpool_info", "openblas_env", "numpy", "torch", "cpu_model", "date"):
        assert key in env
    assert data["settings"]["samples"] == 7
    assert data["epochs"] == []               # filtered out: no subprocess epochs here
    (record,) = data["cases"]
    assert record["name"] == "conv fwd 64x1x28x28->6 k5 s1 p0"
    assert len(record["ratios"]) == 7
    assert record["check"]["max_rel_diff"] < 1e-4

    printed = capsys.readouterr().out.rstrip().splitlines()
    table = [line for line in printed if line.startswith("|")]
    assert "clearconv ms median [min-max]" in table[0]
    assert table[-1].startswith("| conv fwd 64x1x28x28->6 k5 s1 p0")
    # the table, its summary and its notes come last
    assert [line for line in printed if not line.startswith("note:")][-1].startswith(
        "targets met:")


def test_too_few_samples_is_refused():
    with pytest.raises(SystemExit):
        main(["--samples", "3"])
