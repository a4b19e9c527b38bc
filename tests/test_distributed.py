"""Data-parallel training (clearconv.train.distributed): the rules without MPI, then the
real thing under ``mpiexec`` (tests/distributed_worker.py runs on every rank).

The MPI tests need mpi4py and an ``mpiexec`` (``pip install "clearconv[mpi]"``); without
them they skip. They bound every launch (a hang would fail, not block the suite) but
never assert a duration.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import clearconv as cc
from clearconv._runs import LOCK_NAME
from clearconv.errors import ClearConvError
from clearconv.train.callbacks import BackupAndRestore, Callback
from clearconv.train.distributed import (
    SingleProcess,
    as_group,
    launched_by_mpi,
    linear_scaling,
    piece,
)

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import distributed_worker as worker  # noqa: E402

LAUNCH_LIMIT = 300      # seconds: a bound on a hang, far above any healthy launch


# ---------------------------------------------------------------------- rules, no MPI
@pytest.mark.parametrize("n, size", [(10, 2), (12, 3), (11, 3), (1, 3), (0, 2), (100, 7)])
def test_pieces_are_array_split_of_the_global_batch(n, size):
    pieces = [np.arange(n)[piece(n, r, size)] for r in range(size)]
    expected = np.array_split(np.arange(n), size)
    for got, want in zip(pieces, expected):
        np.testing.assert_array_equal(got, want)


def test_linear_scaling_ramps_from_one_to_the_number_of_ranks():
    assert linear_scaling(0, 10, 4, 2.0) == 1.0
    assert linear_scaling(10, 10, 4, 2.0) == 2.5          # half-way through the warm-up
    assert linear_scaling(20, 10, 4, 2.0) == 4.0
    assert linear_scaling(500, 10, 4, 2.0) == 4.0
    assert linear_scaling(0, 10, 4, 0.0) == 4.0           # no warm-up: scaled at once


def test_distributed_argument_is_checked():
    assert isinstance(as_group(None), SingleProcess)
    with pytest.raises(ClearConvError, match="DataParallel or an mpi4py communicator"):
        as_group("world")


def test_launched_by_mpi_reads_the_launchers_variables(monkeypatch):
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"):
        monkeypatch.delenv(name, raising=False)
    assert not launched_by_mpi()
    monkeypatch.setenv("PMI_SIZE", "1")
    assert not launched_by_mpi()
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert launched_by_mpi()


class _Pretend(SingleProcess):
    """One process standing for ``size`` ranks: it trains on the whole global batch of
    ``batch_size * size`` samples, which is what that many ranks compute together."""

    def __init__(self, size: int) -> None:
        self.size = size


class _Stop(Callback):
    def __init__(self, after: int) -> None:
        self.after, self.count = after, 0

    def on_batch_end(self, step, logs):
        self.count += 1
        if self.count == self.after:
            raise KeyboardInterrupt("stopped by the test")


def test_resume_with_another_number_of_ranks_trains_each_sample_once(tmp_path):
    """Checkpointed mid-epoch by "2 ranks" (global batch 10), resumed by "3 ranks"
    (global batch 15): the interrupted epoch goes on from the same sample of its order,
    so every sample of every epoch is trained on exactly once."""
    x, y = worker.data()
    net = worker.model()
    with pytest.raises(KeyboardInterrupt):
        net.fit(x, y, epochs=2, batch_size=5, seed=3, verbose=0, distributed=_Pretend(2),
                callbacks=[BackupAndRestore(tmp_path, save_freq=1), _Stop(13)])
    net = worker.model()
    seen = []
    original = net.compute_gradients

    def spy(xb, yb):
        seen.append(xb.copy())
        return original(xb, yb)

    net.compute_gradients = spy
    history = net.fit(x, y, epochs=2, batch_size=5, seed=3, verbose=0,
                      distributed=_Pretend(3), callbacks=[BackupAndRestore(tmp_path)])
    assert history.epochs == 2
    # stopped in step 13 before its checkpoint: the one of step 12 holds epoch 2 after 2
    # steps of 10 samples; its other 80 come in batches of 15
    assert [len(b) for b in seen] == [15, 15, 15, 15, 15, 5]
    shuffling = np.random.default_rng(3)      # fit's shuffling generator, seed 3
    shuffling.permutation(100)                 # epoch 1's order
    epoch2 = shuffling.permutation(100)
    np.testing.assert_array_equal(np.concatenate(seen), x[epoch2[20:]])


# ---------------------------------------------------------------------- under mpiexec
def _mpiexec() -> str:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        pytest.skip("mpi4py is not installed (pip install 'clearconv[mpi]')")
    exe = shutil.which("mpiexec")
    if exe is None:
        pytest.skip("no mpiexec on PATH (pip install 'clearconv[mpi]' brings MPICH's)")
    return exe


def _env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(HERE.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env


def launch(ranks: int, scenario: str, out: Path, *args: str, check: bool = True,
           **popen) -> subprocess.CompletedProcess:
    """``mpiexec -n ranks python distributed_worker.py scenario out args``."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [_mpiexec(), "-n", str(ranks), sys.executable, str(HERE / "distributed_worker.py"),
           scenario, str(out), *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=LAUNCH_LIMIT,
                          env=_env(), **popen)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def reports(out: Path, ranks: int) -> list[dict]:
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(ranks)]


def _max_difference(a: dict, b: dict) -> float:
    assert set(a) == set(b)
    return max(float(np.abs(np.asarray(a[k]) - np.asarray(b[k])).max()) for k in a)


@pytest.mark.parametrize("ranks, batch, epochs", [
    (2, 5, 2),      # global batch 10: 10 even steps per epoch, 20 steps
    (3, 4, 3),      # global batch 12: 9 steps per epoch, the last one 4 = 2 + 1 + 1
    (3, 11, 7),     # global batch 33: the last step has 1 sample, ranks 1 and 2 none
])
def test_n_ranks_give_the_weights_of_one_process_at_n_times_the_batch(
        tmp_path, ranks, batch, epochs):
    """Float64, Adam and SGD with momentum, with and without augmentation, with the
    default cross-entropy, MSE and a summed cross-entropy, >= 20 steps: N ranks at batch
    b end where one process at batch N*b ends, to 1e-10; the history (global loss,
    accuracy, validation) too; every rank holds the same weights."""
    names = ["plain", "augment", "sgd", "mse", "sum"]
    launch(ranks, "exact", tmp_path, batch, epochs, *names)
    ranked = reports(tmp_path, ranks)
    for name in names:
        assert len({r[name]["crc"] for r in ranked}) == 1, f"{name}: ranks' weights differ"
        net, history = worker.run(batch * ranks, epochs, augment=name == "augment",
                                  optimizer="sgd" if name == "sgd" else "adam",
                                  loss=name if name in ("mse", "sum") else "plain")
        steps = epochs * -(-worker.SAMPLES // (batch * ranks))
        assert steps >= 20
        mine = dict(np.load(tmp_path / f"{name}.npz"))
        assert _max_difference(mine, net.state_dict()) < 1e-10, name
        theirs = ranked[0][name]["history"]
        keys = ("loss", "val_loss") if name == "mse" else ("loss", "accuracy", "val_loss",
                                                            "val_accuracy")
        assert set(keys) <= set(history.history)
        assert ("accuracy" in theirs) == (name != "mse"), name
        for key in keys:
            np.testing.assert_allclose(theirs[key], history.history[key], rtol=0, atol=1e-10,
                                       err_msg=f"{name} {key}")
        assert len(theirs["allreduce_seconds"]) == epochs


@pytest.mark.parametrize("ranks, batch, epochs, kind", [
    (2, 5, 2, "all"),     # global batch 10: 20 even steps
    (3, 4, 2, "all"),     # global batch 12: the last step 4 = 2 + 1 + 1 (pieces of 1)
    (3, 11, 1, "2d"),     # global batch 33: the last step 1 sample, ranks 1 and 2 idle
])
def test_sync_batch_norm_gives_one_process_at_n_times_the_batch(tmp_path, ranks, batch,
                                                                 epochs, kind):
    """Float64, SGD with momentum: with sync_batch_norm, N ranks at batch b end where one
    process at batch N*b ends, weights and running statistics to 1e-10, history too;
    without it each rank normalises its own piece and the result differs (where it can
    run: a piece of one sample has no variance of its own for the BatchNorm1D)."""
    local = ranks == 2
    launch(ranks, "syncbn", tmp_path, batch, epochs, kind, "sync", *(["local"] if local else []))
    ranked = reports(tmp_path, ranks)
    net, history = worker.run(batch * ranks, epochs, optimizer="sgd", bn=kind)
    single = net.state_dict()
    assert "1.running_mean" in single
    synced = dict(np.load(tmp_path / "sync.npz"))
    assert len({r["sync"]["crc"] for r in ranked}) == 1
    assert _max_difference(synced, single) < 1e-10
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(ranked[0]["sync"]["history"][key], history.history[key],
                                   rtol=0, atol=1e-10, err_msg=key)
    if local:
        own = dict(np.load(tmp_path / "local.npz"))
        assert len({r["local"]["crc"] for r in ranked}) == 1    # the weights still agree
        assert _max_difference(own, single) > 1e-6


def test_dropout_masks_differ_between_ranks(tmp_path):
    launch(2, "dropout", tmp_path, 5)
    first, second = reports(tmp_path, 2)
    assert first["crc"] == second["crc"]          # the weights still agree
    assert first["masks"] != second["masks"]      # but each rank drew its own mask


def test_a_nan_on_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    # position 17 of epoch 1's order: step 2 (samples 10..19), rank 1's piece (15..19)
    launch(2, "nan", tmp_path, 17, 5)
    messages = [r["error"] for r in reports(tmp_path, 2)]
    assert messages[0] == messages[1]
    assert messages[0].startswith("epoch 1, step 2/10: on rank 1 of 2, the loss is nan")
    assert "the input batch holds NaN/Inf" in messages[0]


def test_ranks_with_other_data_are_told_before_training(tmp_path):
    launch(2, "mismatch", tmp_path)
    messages = [r["error"] for r in reports(tmp_path, 2)]
    assert messages[0] == messages[1]
    assert messages[0].startswith("DistributedError: rank 1 runs another training than "
                                  "rank 0 (images")


def test_an_exception_on_one_rank_aborts_the_whole_job(tmp_path):
    proc = launch(2, "raise", tmp_path, check=False)
    assert proc.returncode != 0
    assert "clearconv: rank 1 of 2 failed: RuntimeError: a failure on one rank only" \
        in proc.stderr
    assert "aborting all 2 processes" in proc.stderr
    assert not (tmp_path / "rank0.json").exists()    # rank 0 did not finish either


def test_ctrl_c_on_one_rank_stops_all_at_the_same_step_and_resumes_bit_identical(tmp_path):
    launch(2, "resume", tmp_path / "whole", tmp_path / "ck-whole", 5, 3)
    launch(2, "interrupt", tmp_path / "cut", tmp_path / "ck", 5, 3, 1, 13)
    messages = [r["interrupted"] for r in reports(tmp_path / "cut", 2)]
    assert messages[0] == messages[1]
    assert messages[0].startswith("interrupted at epoch 2, step 5/10; checkpoint saved")
    launch(2, "resume", tmp_path / "again", tmp_path / "ck", 5, 3)
    whole, again = reports(tmp_path / "whole", 2), reports(tmp_path / "again", 2)
    assert again[0]["resumed_from"] == [1, 4]
    assert again[0]["crc"] == again[1]["crc"] == whole[0]["crc"]
    np.testing.assert_array_equal(
        np.load(tmp_path / "again" / "weights.npz")["0.weight"],
        np.load(tmp_path / "whole" / "weights.npz")["0.weight"])


@pytest.mark.parametrize("victim", [0, 1])
def test_kill_9_of_a_rank_stops_the_job_and_resume_continues(tmp_path, victim):
    """A rank killed at step 13 (epoch 2): mpiexec ends the job and says which process
    died; resumed on 2 ranks the run ends bit-identical to an uninterrupted one, resumed on
    3 ranks it ends too (from the same sample of epoch 2, with a global batch of 15)."""
    exe = _mpiexec()
    launch(2, "resume", tmp_path / "whole", tmp_path / "ck-whole", 5, 3)
    fifo = tmp_path / "pid.fifo"
    os.mkfifo(fifo)
    out = tmp_path / "killed"
    out.mkdir()
    cmd = [exe, "-n", "2", sys.executable, str(HERE / "distributed_worker.py"), "hold",
           str(out), str(tmp_path / "ck"), "5", "3", str(victim), "13", str(fifo)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=_env())
    try:
        with open(fifo) as f:            # blocks until the victim holds at step 13
            pid = int(f.readline())
        os.kill(pid, 9)
        output, _ = proc.communicate(timeout=LAUNCH_LIMIT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert "BAD TERMINATION" in output and "signal 9" in output
    shutil.copytree(tmp_path / "ck", tmp_path / "ck3")
    launch(2, "resume", tmp_path / "two", tmp_path / "ck", 5, 3)
    two, whole = reports(tmp_path / "two", 2), reports(tmp_path / "whole", 2)
    assert two[0]["resumed_from"] == [1, 2]          # the checkpoint after step 12
    assert two[0]["crc"] == whole[0]["crc"]
    launch(3, "resume", tmp_path / "three", tmp_path / "ck3", 5, 3)
    three = reports(tmp_path / "three", 3)
    assert len({r["crc"] for r in three}) == 1
    assert len(three[0]["history"]["loss"]) == 3


def test_clearconv_train_under_mpiexec_prints_once_and_saves_once(tmp_path):
    exe = _mpiexec()
    cmd = [exe, "-n", "2", sys.executable, "-c", "import sys; from clearconv.cli import main; "
           "sys.exit(main(sys.argv[1:]))", "train", "--epochs", "2", "--out",
           str(tmp_path / "digits.npz"), "--quiet", "--checkpoint-dir", str(tmp_path / "ck")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=LAUNCH_LIMIT,
                          env=_env(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("test accuracy:") == 1
    assert "data-parallel: 2 processes x 64 = global batch 128" in proc.stdout
    model = cc.load(str(tmp_path / "digits.npz"))
    assert model.classes is not None
    # one checkpoint, written by rank 0 alone (beside the run's lock file, whose flock
    # the system released when the job ended)
    assert sorted(os.listdir(tmp_path / "ck")) == sorted(["checkpoint.npz", LOCK_NAME])


def test_the_readme_example_runs_under_mpiexec(tmp_path):
    exe = _mpiexec()
    readme = (HERE.parent / "README.md").read_text()
    marker = "<!-- mpi-example"
    assert marker in readme
    block = readme.split(marker, 1)[1].split("```py\n", 1)[1].split("```", 1)[0]
    script = tmp_path / "script.py"
    script.write_text(block)
    proc = subprocess.run([exe, "-n", "2", sys.executable, "-m", "mpi4py", str(script)],
                          capture_output=True, text=True, timeout=LAUNCH_LIMIT, env=_env(),
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("on 2 processes") == 1
    assert cc.load(str(tmp_path / "digits-mpi.npz")) is not None
