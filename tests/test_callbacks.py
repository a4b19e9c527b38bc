"""Callbacks: their state survives a checkpoint file, BackupAndRestore resumes a crashed run."""

import math
import os

import numpy as np
import pytest

import clearconv as cc
from clearconv import optim
from clearconv.errors import ClearConvError
from clearconv.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
from clearconv.train import (
    BackupAndRestore,
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    TerminateOnNaN,
)
from clearconv.train.checkpoint import TrainState, load_checkpoint, save_checkpoint


def data(n=60, seed=0):
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


def assert_same_state(a, b):
    assert set(a) == set(b)
    for key in a:
        if a[key] is None or isinstance(a[key], (str, list)):
            assert a[key] == b[key], key
        else:
            np.testing.assert_array_equal(np.asarray(b[key]), np.asarray(a[key]), err_msg=key)


def _early_stopping():
    es = EarlyStopping(monitor="val_loss", patience=4, restore_best_weights=True)
    es.set_model(make_model())
    es.on_epoch_end(0, {"val_loss": 0.75})
    es.on_epoch_end(1, {"val_loss": 0.8})
    return es


def _model_checkpoint():
    return ModelCheckpoint("unused-{epoch}.npz", monitor="loss")   # best is still inf


def _terminated():
    cb = TerminateOnNaN()
    cb.terminated_at, cb.message = (2, 5), "epoch 3, step 6/9: the loss is nan"
    return cb


def _schedule():
    sched = optim.CosineAnnealingLR(optim.SGD(make_model().parameters(), lr=0.1), T_max=7)
    sched.step()
    sched.step()
    return LearningRateScheduler(sched)


def _fresh(cb):
    if isinstance(cb, LearningRateScheduler):
        return LearningRateScheduler(optim.CosineAnnealingLR(
            optim.SGD(make_model().parameters(), lr=0.5), T_max=7))
    if isinstance(cb, EarlyStopping):
        return EarlyStopping(monitor="val_loss", patience=4, restore_best_weights=True)
    return type(cb)() if isinstance(cb, TerminateOnNaN) else ModelCheckpoint("x", monitor="loss")


@pytest.mark.parametrize("make", [_early_stopping, _model_checkpoint, _terminated, _schedule],
                         ids=["EarlyStopping", "ModelCheckpoint", "TerminateOnNaN",
                              "LearningRateScheduler"])
def test_a_callback_state_comes_back_exactly_from_a_checkpoint_file(make, tmp_path):
    cb = make()
    state = cb.state_dict()
    model = make_model()
    save_checkpoint(str(tmp_path), model, optim.SGD(model.parameters(), lr=0.1), TrainState(),
                    callbacks={"cb": state})
    loaded = load_checkpoint(str(tmp_path)).callbacks["cb"]
    other = _fresh(cb)
    other.load_state_dict(loaded)
    assert_same_state(state, other.state_dict())


def test_early_stopping_state_holds_the_best_weights_and_infinities():
    es = _early_stopping()
    state = es.state_dict()
    assert state["best"] == 0.75 and state["wait"] == 1 and state["stopped_epoch"] is None
    assert {k for k in state if k.startswith("best_state.")} == {
        "best_state.0.weight", "best_state.0.bias", "best_state.5.weight", "best_state.5.bias"}
    assert _model_checkpoint().state_dict() == {"best": math.inf}


def test_a_resumed_schedule_goes_on_from_its_epoch():
    cb = _schedule()
    other = _fresh(cb)
    other.load_state_dict(cb.state_dict())
    for _ in range(3):
        cb.scheduler.step()
        other.scheduler.step()
        assert other.scheduler.get_last_lr() == cb.scheduler.get_last_lr()
    assert other.scheduler.last_epoch == 5


@pytest.mark.parametrize(("cb", "state", "pattern"), [
    (EarlyStopping(), {"best": 1.0, "wait": 0}, r"missing keys \['stopped_epoch'\]"),
    (ModelCheckpoint("x"), {"best": 1.0, "oops": 2}, r"unexpected keys \['oops'\]"),
    (TerminateOnNaN(), {}, r"missing keys \['message', 'terminated_at'\]"),
    (cc.Callback(), {"anything": 1}, r"Callback state does not match.*\['anything'\]"),
])
def test_load_state_dict_names_the_missing_and_unexpected_keys(cb, state, pattern):
    with pytest.raises(ClearConvError, match=pattern):
        cb.load_state_dict(state)


def test_a_plain_callback_keeps_no_state():
    cb = cc.Callback()
    assert cb.state_dict() == {}
    cb.load_state_dict({})


@pytest.mark.parametrize("save_freq", [0, -3, 2.5, "batch", True])
def test_backup_refuses_a_bad_save_freq_naming_it(save_freq, tmp_path):
    with pytest.raises(ClearConvError, match=f"save_freq must be 'epoch' or an int >= 1, got "
                                             f"{save_freq!r}"):
        BackupAndRestore(tmp_path, save_freq=save_freq)


def test_backup_refuses_options_that_are_not_a_dict(tmp_path):
    with pytest.raises(ClearConvError, match="options must be a dict, got list"):
        BackupAndRestore(tmp_path, options=["a"])


# --- a run that crashes, and resumes ---------------------------------------------------------
class Crash(Exception):
    pass


class CrashAt(cc.Callback):
    """Raises after the update of a given step (counted over the run, from 1), before any
    backup of that step: what a kill -9 at that point leaves on disk."""

    def __init__(self, at):
        self.at, self.count = at, 0

    def on_batch_end(self, step, logs):
        self.count += 1
        if self.count == self.at:
            raise Crash


def run(model, callbacks=(), epochs=5):
    """Adam with a cosine schedule, early stopping on validation loss, dropout, shuffling and
    augmentation: every kind of state a run carries."""
    x, y = data()
    opt = optim.Adam(model.parameters(), lr=0.01)
    sched = optim.CosineAnnealingLR(opt, T_max=epochs)
    es = EarlyStopping(monitor="val_loss", patience=10, restore_best_weights=True)

    def jitter(xb, rng):
        return xb + rng.normal(0, 0.05, xb.shape).astype(xb.dtype)

    history = model.fit(x[:45], y[:45], epochs=epochs, batch_size=8, optimizer=opt,
                        validation_data=(x[45:], y[45:]), verbose=0, seed=3, augment=jitter,
                        callbacks=[LearningRateScheduler(sched), es, *callbacks])
    return history, es


@pytest.fixture(scope="module")
def uninterrupted():
    model = make_model()
    history, es = run(model)
    return model.state_dict(), history, es.state_dict()


@pytest.mark.parametrize(("crash_at", "save_freq", "resumed_from"), [
    (9, "epoch", (1, 0)),    # epoch 2 (6 steps an epoch): back to the end of epoch 1
    (12, "epoch", (1, 0)),   # the last step of epoch 2 done, its end never reached
    (9, 4, (1, 2)),          # saved after step 8 of the run: epoch 2, step 3 comes next
    (3, 2, (0, 2)),          # in epoch 1, from the save after step 2
    (2, "epoch", (0, 0)),    # in epoch 1, from the starting point written at train begin
])
def test_backup_and_restore_resumes_a_crashed_run_bit_identically(
        crash_at, save_freq, resumed_from, tmp_path, uninterrupted):
    with pytest.raises(Crash):
        run(make_model(), [CrashAt(crash_at), BackupAndRestore(tmp_path, save_freq=save_freq)])
    backup = BackupAndRestore(tmp_path, save_freq=save_freq)
    resumed = make_model(init_seed=99)   # a new process would draw other initial weights
    history, es = run(resumed, [backup])
    assert backup.resumed_from == resumed_from
    weights, ref_history, ref_es = uninterrupted
    for k, v in weights.items():
        np.testing.assert_array_equal(resumed.state_dict()[k], v, err_msg=k)
    assert history.epochs == ref_history.epochs == 5
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        assert history.history[key] == ref_history.history[key], key
    assert_same_state(ref_es, es.state_dict())


def test_the_backup_saves_after_the_other_callbacks_whatever_its_place(tmp_path):
    model = make_model()
    x, y = data()
    opt = optim.SGD(model.parameters(), lr=0.1)
    sched = optim.StepLR(opt, step_size=1, gamma=0.5)
    model.fit(x, y, epochs=2, batch_size=30, optimizer=opt, verbose=0, seed=0,
              callbacks=[BackupAndRestore(tmp_path), LearningRateScheduler(sched)])
    ck = load_checkpoint(str(tmp_path))
    assert (ck.state.epoch, ck.state.step) == (2, 0)
    assert int(ck.callbacks["LearningRateScheduler"]["last_epoch"]) == 2
    assert float(ck.optimizer_state["lr"]) == 0.025
    assert ck.state.history["lr"] == [0.05, 0.025]


def test_resume_with_other_callbacks_is_refused_naming_them(tmp_path):
    model = make_model()
    with pytest.raises(Crash):
        run(model, [CrashAt(3), BackupAndRestore(tmp_path)])
    x, y = data()
    with pytest.raises(ClearConvError, match=r"callbacks of the interrupted run.*"
                                             r"\['EarlyStopping', 'LearningRateScheduler'\].*"
                                             r"\['EarlyStopping', 'EarlyStopping#2'\]"):
        model.fit(x[:45], y[:45], epochs=2, optimizer=optim.Adam(model.parameters()),
                  verbose=0, batch_size=8, seed=3, callbacks=[EarlyStopping(), EarlyStopping(),
                                                   BackupAndRestore(tmp_path)])


def test_resume_with_another_batch_size_or_seed_is_refused_naming_both(tmp_path):
    model = make_model()
    x, y = data()
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, seed=0, checkpoint_dir=str(tmp_path))
    with pytest.raises(ClearConvError, match=r"batch_size 16 there, 32 here, seed 0 there, "
                                             r"1 here"):
        model.fit(x, y, epochs=2, batch_size=32, verbose=0, seed=1,
                  checkpoint_dir=str(tmp_path), resume=True)


def test_a_fresh_run_writes_its_starting_point_and_options(tmp_path):
    model = make_model()
    x, y = data()
    options = {"dataset": "blobs", "image_size": [8, 8]}
    with pytest.raises(Crash):
        model.fit(x, y, epochs=2, verbose=0, seed=0,
                  callbacks=[CrashAt(1), BackupAndRestore(tmp_path, resume=False,
                                                          options=options)])
    ck = load_checkpoint(str(tmp_path))
    assert (ck.state.epoch, ck.state.step) == (0, 0)
    assert BackupAndRestore.saved_options(tmp_path) == options


def test_saved_options_of_an_empty_folder_says_there_is_nothing_to_resume(tmp_path):
    with pytest.raises(ClearConvError, match=f"nothing to resume in {tmp_path}: no "
                                             f"checkpoint.npz"):
        BackupAndRestore.saved_options(tmp_path)
    assert not os.listdir(tmp_path)
