"""Checkpoints, resume after an interruption or a kill, determinism, NaN guards."""

import gzip
import json
import signal
import subprocess
import sys

import numpy as np
import pytest

import clearconv as cc
from clearconv import optim
from clearconv.errors import NumericalError
from clearconv.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
from clearconv.train.checkpoint import load_checkpoint


def data(n=90, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 0.5, (n, 1, 8, 8)).astype(np.float32)
    for i, c in enumerate(y):
        x[i, 0, 2 * c:2 * c + 3, 2:5] += 1.5
    return x, y


def make_model(init_seed=0):
    g = np.random.default_rng(init_seed)
    return cc.Sequential(Conv2D(1, 4, 3, padding=1, rng=g), ReLU(), MaxPool2D(2), Flatten(),
                         Dropout(0.3), Dense(64, 3, rng=g), input_shape=(1, 8, 8))


class InterruptAt(cc.Callback):
    """Sends SIGINT to this process (as Ctrl-C would) after a given batch."""

    def __init__(self, epoch, step):
        self.at, self.epoch = (epoch, step), 0

    def on_epoch_end(self, epoch, logs):
        self.epoch = epoch + 1

    def on_batch_end(self, step, logs):
        if (self.epoch, step) == self.at:
            signal.raise_signal(signal.SIGINT)


def fit(model, tmp=None, resume=False, callbacks=(), epochs=4):
    x, y = data()
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return model.fit(x, y, epochs=epochs, batch_size=16, optimizer=opt, verbose=0, seed=11,
                     callbacks=callbacks, checkpoint_dir=tmp, resume=resume)


def test_same_seed_gives_bit_identical_weights():
    a, b = make_model(), make_model()
    fit(a)
    fit(b)
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(v, b.state_dict()[k])


def test_ctrl_c_saves_a_checkpoint_and_resume_matches_an_uninterrupted_run(tmp_path):
    reference = make_model()
    ref_hist = fit(reference)
    interrupted = make_model()
    with pytest.raises(KeyboardInterrupt, match=r"epoch 3, step 4/6.*checkpoint saved"):
        fit(interrupted, str(tmp_path), callbacks=[InterruptAt(2, 2)])
    ck = load_checkpoint(str(tmp_path))
    assert (ck.state.epoch, ck.state.step) == (2, 3)
    # a fresh process would rebuild the model with other initial weights: resume must not care
    resumed = make_model(init_seed=99)
    hist = fit(resumed, str(tmp_path), resume=True)
    for k, v in reference.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[k], v)
    assert hist.history["loss"] == ref_hist.history["loss"]


def test_checkpoint_after_each_epoch_records_position_and_history(tmp_path):
    model = make_model()
    fit(model, str(tmp_path), epochs=2)
    ck = load_checkpoint(str(tmp_path))
    assert (ck.state.epoch, ck.state.step) == (2, 0)
    assert len(ck.state.history["loss"]) == 2
    assert ck.optimizer_name == "sgd"
    np.testing.assert_array_equal(ck.model_state["0.weight"], model.state_dict()["0.weight"])
    # resuming a finished run trains the remaining epochs only
    hist = fit(model, str(tmp_path), resume=True, epochs=3)
    assert hist.epochs == 3 and load_checkpoint(str(tmp_path)).state.epoch == 3


def test_resume_refuses_another_optimizer(tmp_path):
    model = make_model()
    fit(model, str(tmp_path), epochs=1)
    x, y = data()
    with pytest.raises(ValueError, match="'sgd', not 'adam'"):
        model.fit(x, y, epochs=2, optimizer=optim.Adam(model.parameters()), verbose=0,
                  checkpoint_dir=str(tmp_path), resume=True)


class BlowUpAt(cc.Callback):
    """Records the weights at the end of epoch 1 and sets a Dense weight to inf after the
    first step of epoch 2, so that the second step of epoch 2 has a NaN loss."""

    def __init__(self):
        self.epoch, self.weights_after_epoch_1 = 0, None

    def on_epoch_end(self, epoch, logs):
        self.epoch = epoch + 1
        if epoch == 0:
            self.weights_after_epoch_1 = {k: v.copy() for k, v in self.model.state_dict().items()}

    def on_batch_end(self, step, logs):
        if (self.epoch, step) == (1, 0):
            self.model.layers[5].weight.value[0, 0] = np.inf


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_nan_names_the_layer_and_step_and_keeps_the_last_good_checkpoint(tmp_path):
    model = make_model()
    blow_up = BlowUpAt()
    with pytest.raises(NumericalError, match=r"epoch 2, step 2/6.*layer 5 \(Dense\)"):
        fit(model, str(tmp_path), callbacks=[blow_up])
    ck = load_checkpoint(str(tmp_path))
    assert (ck.state.epoch, ck.state.step) == (1, 0)
    for k, v in blow_up.weights_after_epoch_1.items():
        np.testing.assert_array_equal(ck.model_state[k], v)
    assert np.isinf(model.layers[5].weight.value[0, 0])   # the failing update was not applied


def _weights(path):
    return cc.load(str(path)).state_dict()


# --- kill -9 and resume, through the command line, with the cosine schedule ---------------
# The child process is the real `clearconv train`, with Trainer._update wrapped so that
# it reports a step on stdout and then holds still (reading stdin) until the test kills or
# releases it: the kill lands exactly where the test says, whatever the machine's load.

CHILD = r"""
import sys
from clearconv import cli
from clearconv.train.loop import Trainer

when, at = sys.argv[1], int(sys.argv[2])
count = 0
update = Trainer._update


def hold():
    print(f"holding {when} step {count}", flush=True)
    sys.stdin.read()


def reporting_update(self):
    global count
    count += 1
    if when == "before" and count == at:
        hold()
    update(self)
    if when == "after" and count == at:
        hold()


Trainer._update = reporting_update
sys.exit(cli.main(sys.argv[3:]))
"""

#: 64 training images, a quarter held out: 48 train, 3 steps of 16 per epoch, 3 epochs
STEPS_PER_EPOCH, EPOCHS = 3, 3


def write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    """A tiny MNIST-format folder: a bright stroke whose position is the class."""
    d = tmp_path_factory.mktemp("idx")
    rng = np.random.default_rng(0)
    for split, n in (("train", 64), ("t10k", 16)):
        y = rng.integers(0, 10, n)
        x = (rng.random((n, 28, 28)) * 40).astype(np.uint8)
        for i, c in enumerate(y):
            r, col = 2 + (c // 5) * 12, 2 + (c % 5) * 5
            x[i, r:r + 8, col:col + 4] = 250
        write_idx(d / f"{split}-images-idx3-ubyte.gz", x)
        write_idx(d / f"{split}-labels-idx1-ubyte.gz", y)
    return d


def _train_args(idx_dir, out, *more):
    return ["train", "--quiet", "--dataset", "mnist", "--data-dir", str(idx_dir),
            "--epochs", str(EPOCHS), "--batch-size", "16", "--val-split", "0.25", "--augment",
            "--out", str(out), "--metrics", str(out.with_suffix(".json")), *more]


def _held(when, at, args):
    """Start the command line in a child that holds still at step ``at`` (1-based, counted
    over the whole run), ``before`` or ``after`` that step's update; returns the child once
    it says it holds."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, when, str(at), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("holding"):
        proc.kill()
        pytest.fail(f"the child never reached step {at}: {line!r} {proc.communicate()}")
    return proc


def _run_cli(args):
    proc = subprocess.run([sys.executable, "-m", "clearconv.cli", *args], capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc


def _result(out):
    return _weights(out), json.loads(out.with_suffix(".json").read_text())["history"]


@pytest.fixture(scope="module")
def uninterrupted_idx(idx_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "ref.npz"
    _run_cli(_train_args(idx_dir, out))
    return _result(out)


def _assert_same_run(got, expected):
    (weights, history), (ref_weights, ref_history) = got, expected
    assert set(weights) == set(ref_weights)
    for k, v in ref_weights.items():
        np.testing.assert_array_equal(weights[k], v, err_msg=k)
    for key in ref_history:
        if key != "seconds":
            assert history[key] == ref_history[key], key


@pytest.mark.parametrize("when, at", [
    ("after", 2),                        # in epoch 1, before any epoch ended
    ("after", 5),                        # in epoch 2: resumes from the end of epoch 1
    ("after", 6),                        # epoch 2's steps done, its end not reached
    ("before", STEPS_PER_EPOCH + 1),     # between epochs 1 and 2
])
def test_sigkill_then_resume_gives_the_uninterrupted_run_with_a_cosine_schedule(
        when, at, idx_dir, tmp_path, uninterrupted_idx):
    ckdir = tmp_path / "ck"
    proc = _held(when, at, _train_args(idx_dir, tmp_path / "killed.npz",
                                       "--checkpoint-dir", str(ckdir)))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed.npz").exists()
    out = tmp_path / "resumed.npz"
    _run_cli(["train", "--quiet", "--resume", str(ckdir), "--out", str(out), "--metrics",
              str(out.with_suffix(".json"))])
    _assert_same_run(_result(out), uninterrupted_idx)


def test_sigint_saves_a_checkpoint_between_two_steps_and_resume_matches(
        idx_dir, tmp_path, uninterrupted_idx):
    ckdir = tmp_path / "ck"
    proc = _held("after", 5, _train_args(idx_dir, tmp_path / "m.npz",
                                         "--checkpoint-dir", str(ckdir)))
    proc.send_signal(signal.SIGINT)       # deferred: the update of step 5 is complete
    _out, err = proc.communicate(input="", timeout=120)   # release it: step 6 sees the flag
    assert proc.returncode == 130, err
    assert "interrupted at epoch 2, step 3/3" in err
    assert f"clearconv train --resume {ckdir}" in err
    ck = load_checkpoint(str(ckdir))
    assert (ck.state.epoch, ck.state.step) == (1, 2)
    out = tmp_path / "resumed.npz"
    _run_cli(["train", "--quiet", "--resume", str(ckdir), "--out", str(out), "--metrics",
              str(out.with_suffix(".json"))])
    _assert_same_run(_result(out), uninterrupted_idx)
