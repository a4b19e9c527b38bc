"""The benchmark harness (benchmarks/): timing protocol, records, JSON file, table.

Runs the harness's own functions on tiny cases (a few seconds), not the whole suite.
"""

from __future__ import annotations

import json
import statistics

import numpy as np
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

    assert record["name"] == case.name and record["target"] == 1.0
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
    assert record["passed"] == (record["ratio_median"] <= 1.0)
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


# --------------------------------------------------------------------- issue 17: the floor
def test_mnist_cnn_multiply_adds_match_a_hand_count():
    from benchmarks.cases import arch_work

    conv1 = 64 * 32 * 28 * 28 * (1 * 3 * 3)       # N C_out H_out W_out (C_in kh kw)
    conv2 = 64 * 64 * 14 * 14 * (32 * 3 * 3)
    dense1 = 64 * 3136 * 128
    dense2 = 64 * 128 * 10
    forward = conv1 + conv2 + dense1 + dense2
    work = arch_work("mnist_cnn", 64, backward=False)
    assert (work.forward, work.backward_dw, work.backward_da) == (forward, 0, 0)
    step = arch_work("mnist_cnn", 64, backward=True)
    # dW once per forward product; dA too, except the first layer's (the images need none)
    assert (step.forward, step.backward_dw, step.backward_da) == (forward, forward,
                                                                  forward - conv1)
    assert step.flop == 2 * (3 * forward - conv1)
    assert step.record()["gflop"] == pytest.approx(1.5997, abs=1e-4)   # the issue's ~1.6


def test_lenet5_and_conv_case_multiply_adds_match_a_hand_count():
    from benchmarks.cases import arch_work, conv_work

    conv1 = 6 * 28 * 28 * (1 * 5 * 5)             # pad 2 keeps 28x28
    conv2 = 16 * 10 * 10 * (6 * 5 * 5)
    dense = 400 * 120 + 120 * 84 + 84 * 10
    assert arch_work("lenet5", 1, backward=False).forward == conv1 + conv2 + dense
    # stride 2: 32x32 -> 16x16 outputs
    work = conv_work(ConvShape(64, 64, 32, 32, 128, 3, 2, 1), backward=True)
    assert work.forward == work.backward_dw == work.backward_da == 64 * 128 * 16 * 16 * 64 * 9
    assert conv_work(ConvShape(64, 1, 28, 28, 6, 5, 1, 0), backward=False).backward_dw == 0


def test_grouped_transposed_and_block_multiply_adds():
    from benchmarks.flops import conv2d_macs, conv_transpose2d_macs, model_work
    from clearconv import Sequential
    from clearconv.layers import Conv2D, ConvTranspose2D, Dense, Flatten, ReLU, Residual

    assert conv2d_macs(2, 8, 5, 5, 8, 3, 3, groups=8) == 2 * 8 * 25 * 9      # depthwise
    assert conv_transpose2d_macs(2, 4, 3, 3, 6, 4, 4) == 2 * 4 * 9 * 6 * 16
    model = Sequential(Conv2D(3, 4, 3, padding=1), ReLU(),
                       Residual([Conv2D(4, 4, 3, padding=1)]),
                       ConvTranspose2D(4, 2, 2, stride=2), Flatten(), Dense(2 * 16 * 16, 5),
                       input_shape=(3, 8, 8))
    first = 4 * 64 * 27
    block = 4 * 64 * 36
    transposed = 4 * 64 * (2 * 2 * 2)             # every input element onto C_out kh kw
    dense = 512 * 5
    work = model_work(model, batch=3, backward=True)
    total = first + block + transposed + dense
    assert work.forward == work.backward_dw == 3 * total
    assert work.backward_da == 3 * (total - first)


def test_floor_is_flop_over_the_gemm_rate():
    from benchmarks.harness import add_floor

    record = {"work": {"gflop": 1.6}, "floor_target": 1.3,
              "clearconv": {"median_ms": 32.0}, "torch": {"median_ms": 20.0}}
    rate = {"dtype": "float32", "threads": 2, "size": 2048, "gflops": 100.0}
    floor = add_floor(record, rate)["floor"]
    assert floor["floor_ms"] == pytest.approx(16.0)          # 1.6 GFLOP at 100 GFLOP/s
    assert floor["fraction_clearconv"] == pytest.approx(0.5)
    assert floor["x_floor_clearconv"] == pytest.approx(2.0)
    assert floor["fraction_torch"] == pytest.approx(0.8)
    assert floor["passed"] is False                          # 2.0x > 1.3x
    assert floor["gemm"]["gflops"] == 100.0
    assert add_floor({"work": None}, rate)["floor"] is None   # nothing counted, no floor


def test_gemm_rate_is_two_n_cubed_over_the_median_call():
    from benchmarks.harness import gemm_rate

    ticks = iter(range(1000))
    rate = gemm_rate("float32", threads=1, size=32, repeats=3,
                     clock=lambda: 0.5 * next(ticks))        # every call "takes" 0.5 s
    assert rate["gflops"] == pytest.approx(2 * 32 ** 3 / 0.5 / 1e9)
    assert len(rate["gflops_samples"]) == 3
    assert (rate["dtype"], rate["threads"], rate["size"]) == ("float32", 1, 32)


def test_cpu_kind_and_blas_kernel_text():
    from benchmarks.harness import blas_kernels, cpu_flags, cpu_kind

    assert cpu_kind(["AVX", "AVX2", "AVX512F"]) == "AVX-512"
    assert cpu_kind(["AVX", "AVX2"]) == "AVX2"
    assert cpu_kind([]) == "no AVX2"
    assert set(cpu_flags()) <= {"AVX", "AVX2", "FMA3", "AVX512F", "AVX512BW", "AVX512VL",
                                "AVX512VNNI", "AVX512BF16", "AVX512FP16"}
    pools = [{"user_api": "blas", "internal_api": "openblas", "version": "0.3.27",
              "architecture": "Haswell", "threading_layer": "pthreads"},
             {"user_api": "openmp", "internal_api": "openmp", "version": None}]
    assert blas_kernels(pools) == "openblas 0.3.27 (Haswell, pthreads)"


def test_issue_17_cases_and_targets():
    from benchmarks.cases import all_cases

    cases = {c.name: c for c in all_cases()}
    for arch in ("mnist_cnn", "lenet5"):
        step = cases[f"train step {arch} b64"]
        assert (step.target, step.floor_target) == (0.7, 1.3)
        assert cases[f"train step {arch} b64 float64"].dtype == "float64"
        assert cases[f"train step {arch} b64 float64"].target == 1.0
        assert cases[f"train step {arch} b64 1 thread"].threads == 1
        assert cases[f"train step {arch} b64 1 thread"].target == 1.0
        assert cases[f"inference {arch} b1000"].target == 0.7
        assert cases[f"inference {arch} b1"].target == 1.0
        assert f"inference {arch} b8" in cases
    fresh = [c for c in cases.values() if c.group == "fresh process"]
    assert len(fresh) == 1 and fresh[0].target == 1.0 and not fresh[0].settle
    for c in cases.values():
        if c.group.startswith("conv"):
            assert c.target == 1.0 and c.work is not None
    assert cases["maxpool 2x2/2 fwd+bwd 64x32x28x28"].target == 0.5


def test_a_case_with_its_own_threads_runs_with_them_and_restores_the_run_s():
    import clearconv
    from benchmarks.harness import Case, Pair

    seen = {}

    def setup() -> Pair:
        seen["clearconv"] = clearconv.get_num_threads()
        torch = optional_torch()
        if torch is not None:
            seen["torch"] = torch.get_num_threads()
        return Pair(lambda: None)

    before = clearconv.get_num_threads()
    record = run_case(Case("one thread", "test", None, setup, threads=1), samples=1, warmup=0)
    assert seen["clearconv"] == 1 and seen.get("torch", 1) == 1
    assert record["threads"] == 1
    assert clearconv.get_num_threads() == before


def test_first_call_worker_reports_its_parts():
    from benchmarks.worker import run_fresh
    from clearconv.train import zoo

    spec = {"kind": "first_call", "framework": "clearconv", "threads": 1,
            "config": zoo.mnist_cnn(rng=0).get_config()}
    frameworks = ["clearconv"] + (["torch"] if optional_torch() is not None else [])
    for framework in frameworks:
        result = run_fresh({**spec, "framework": framework})
        assert "error" not in result, result
        assert 0 <= result["label"] < 10
        parts = result["import_ms"] + result["build_ms"] + result["first_forward_ms"]
        assert result["total_ms"] == pytest.approx(parts)


@needs_torch
def test_table_has_the_floor_columns_and_the_machine_line(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["--quick", "--cases", "conv fwd 64x1x28x28->6", "--threads", "1",
                 "--gemm-size", "128", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    (record,) = data["cases"]
    assert record["work"]["gflop"] == pytest.approx(2 * 64 * 6 * 24 * 24 * 25 / 1e9)
    floor = record["floor"]
    assert floor["gemm"]["size"] == 128 and floor["gemm"]["dtype"] == "float32"
    assert floor["floor_ms"] == pytest.approx(
        record["work"]["gflop"] / floor["gemm"]["gflops"] * 1e3)
    assert floor["fraction_clearconv"] == pytest.approx(
        floor["floor_ms"] / record["clearconv"]["median_ms"])
    assert set(data["gemm_rates"]) == {"float32 1 thread"}
    env = data["environment"]
    assert env["cpu_kind"] in ("AVX-512", "AVX2", "no AVX2") and "blas" in env

    printed = capsys.readouterr().out.splitlines()
    header = next(line for line in printed if line.startswith("| case"))
    for column in ("GFLOP", "floor ms", "floor reached cc / torch", "floor target"):
        assert column in header
    assert any(line.startswith("CPU kind ") and "BLAS " in line and "sgemm 128^3" in line
               for line in printed)


# --------------------------------------------------------------------- the per-op profile
def test_profiler_rows_nest_with_rest_and_probe_split():
    from benchmarks.profile import DA, PROBE, REST, STEP, Profiler, rows

    clock = FakeClock()
    prof = Profiler(clock=clock)
    for i in range(4):
        probe = i % 2 == 1
        with prof.step(probe):
            with prof.section("forward"):
                clock.advance(3.0)
            with prof.section("backward"):
                if probe:
                    with prof.section(PROBE):
                        clock.advance(2.0)
                clock.advance(5.0)
            clock.advance(1.0)
    assert len(prof.steps) == len(prof.probe_steps) == 2
    table = {tuple(r["path"]): r for r in rows(prof)}
    assert table[(STEP,)]["median_ms"] == pytest.approx(9.0)
    assert table[(STEP, "forward")]["share"] == pytest.approx(3 / 9)
    assert table[(STEP, REST)]["median_ms"] == pytest.approx(1.0)
    assert table[(STEP, "backward", PROBE)]["median_ms"] == pytest.approx(2.0)
    assert table[(STEP, "backward", DA)]["median_ms"] == pytest.approx(3.0)
    assert table[(STEP, "backward")]["calls_per_step"] == 1


def test_profile_step_times_every_part_and_leaves_the_model_as_it_was():
    from clearconv.optim import SGD

    from benchmarks.profile import PROBE, STEP, profile_step, rows
    from clearconv.kernels import registry
    from clearconv.train import zoo

    before = {(op, a.name): a for op in registry.ops() for a in registry.algorithms(op)}
    prof, model = profile_step("lenet5", batch=4, steps=4, warmup=1)
    table = rows(prof)
    parts = {r["part"] for r in table}
    for part in ("forward", "backward", "zero_grad", "loss forward", "loss backward",
                 "optimizer step", PROBE):
        assert part in parts
    assert any(p.startswith("conv2d") and p.endswith("forward") for p in parts)
    assert any(p.startswith("[9] Dense") for p in parts)      # a step of the model
    assert table[0]["path"] == [STEP] and table[0]["share"] == pytest.approx(1.0)
    # every timer is gone: registry entries, the model's and the steps' methods
    after = {(op, a.name): a for op in registry.ops() for a in registry.algorithms(op)}
    assert after == before and all(after[k] is before[k] for k in before)
    assert "forward" not in vars(model)
    assert all("forward" not in vars(s) for s in model.steps())
    # the probes ran on copies: the same 5 steps without the profiler give the same weights
    from benchmarks.cases import LR, MOMENTUM, SEED, _batch

    twin = zoo.lenet5(rng=SEED)
    opt = SGD(twin.parameters(), lr=LR, momentum=MOMENTUM)
    x, y = _batch(4)
    for _ in range(5):
        twin.train_step(x, y, opt)
    for a, b in zip(model.parameters(), twin.parameters()):
        np.testing.assert_allclose(a.value, b.value, rtol=1e-6, atol=1e-7)


def test_profile_command_prints_the_table(tmp_path, capsys):
    from benchmarks.profile import main as profile_main

    out = tmp_path / "profile.json"
    assert profile_main(["--arch", "lenet5", "--batch", "4", "--steps", "2", "--warmup", "0",
                         "--threads", "1", "--clock", "cpu", "--gemm-size", "64",
                         "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| part" in printed and "median ms" in printed and "share" in printed
    assert "x the floor" in printed and "cpu clock" in printed
    with pytest.raises(SystemExit):                      # CPU time misses other threads
        profile_main(["--threads", "2", "--clock", "cpu"])
    data = json.loads(out.read_text())
    assert data["rows"][0]["part"] == "train_step" and data["work"]["gflop"] > 0


def test_the_peak_rss_epochs_include_resnet20_on_its_own_input(tmp_path):
    """`--cases "peak RSS"` runs both memory epochs; ResNet-20's trains on synthetic
    3x32x32 images at batch 128 (issue 13's memory target), here 2 steps of 2 images."""
    from benchmarks.epoch import run_epoch, synthetic
    from benchmarks.run import MEMORY_EPOCHS, _epoch_base, parse_args

    assert len([n for n in MEMORY_EPOCHS if selected(n, "peak RSS")]) == 2
    (name,) = [n for n in MEMORY_EPOCHS if selected(n, "peak RSS*resnet20")]
    arch, batch, samples, _ = MEMORY_EPOCHS[name]
    assert (arch, batch, samples) == ("resnet20", 128, 20 * 128)
    assert synthetic(3, 0, (3, 32, 32))[0].shape == (3, 3, 32, 32)
    base = _epoch_base(parse_args(["--threads", "1"]), tmp_path, arch, 2)
    assert base["config"]["input_shape"] == [3, 32, 32]
    sides = ["clearconv"] + (["torch"] if optional_torch() is not None else [])
    for framework in sides:
        result = run_epoch({**base, "framework": framework, "data": "synthetic",
                            "n_train": 4})
        assert (result["samples"], result["steps"]) == (4, 2)
        assert result["peak_rss_mib"] >= result["baseline_rss_mib"] > 0
        assert np.isfinite(result["mean_loss"])
