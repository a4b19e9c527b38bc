"""The training loop of fit: Trainer, History, progress output, Ctrl-C handling."""

import signal

import numpy as np
import pytest

import clearconv as cc
from clearconv import optim
from clearconv.errors import ClearConvError, ShapeError
from clearconv.layers import Dense, Flatten
from clearconv.train import History, LearningRateScheduler, Trainer


def data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 0.5, (n, 1, 4, 4)).astype(np.float32)
    x[np.arange(n), 0, y, 0] += 2.0
    return x, y


def make_model():
    return cc.Sequential(Flatten(), Dense(16, 3, rng=0), input_shape=(1, 4, 4))


def test_fit_is_a_trainer_run():
    x, y = data()
    a, b = make_model(), make_model()
    ha = a.fit(x, y, epochs=3, batch_size=8, verbose=0, seed=5)
    trainer = Trainer(b, x, y, epochs=3, batch_size=8, verbose=0, seed=5)
    hb = trainer.run()
    assert ha.history["loss"] == hb.history["loss"]
    np.testing.assert_array_equal(a.state_dict()["1.weight"], b.state_dict()["1.weight"])
    assert trainer.steps == 5 and trainer.global_step == 15
    assert (trainer.state.epoch, trainer.state.step) == (3, 0)


def test_history_takes_the_logs_after_the_callbacks_so_it_holds_the_lr():
    x, y = data()
    model = make_model()
    opt = optim.SGD(model.parameters(), lr=0.4)
    sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    history = model.fit(x, y, epochs=4, batch_size=8, optimizer=opt, verbose=0,
                        callbacks=[LearningRateScheduler(sched)])
    assert history.history["lr"] == [0.4, 0.2, 0.2, 0.1]
    assert history.epochs == 4 and len(history.history["seconds"]) == 4


def test_history_from_dict_counts_the_epochs():
    h = History.from_dict({"loss": [1.0, 0.5], "lr": [0.1, 0.05]})
    assert h.epochs == 2 and h.history["loss"] == [1.0, 0.5]
    h.append({"loss": 0.25, "lr": 0.025})
    assert h.epochs == 3 and h.history["lr"] == [0.1, 0.05, 0.025]
    assert History.from_dict({}).epochs == 0


def test_verbose_2_prints_one_line_per_epoch(capsys):
    x, y = data()
    make_model().fit(x, y, epochs=2, batch_size=8, verbose=2, seed=0)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [["epoch", "1/2"], ["epoch", "2/2"]]
    assert "loss=" in lines[0] and "accuracy=" in lines[0] and "seconds=" in lines[0]


def test_verbose_0_prints_nothing(capsys):
    x, y = data()
    make_model().fit(x, y, epochs=2, batch_size=8, verbose=0, seed=0)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_the_ctrl_c_handler_is_put_back_after_a_run_with_checkpoints(tmp_path):
    x, y = data()
    before = signal.getsignal(signal.SIGINT)
    make_model().fit(x, y, epochs=1, verbose=0, checkpoint_dir=str(tmp_path))
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.parametrize(("kwargs", "error", "pattern"), [
    ({"x": np.zeros((3, 1, 4, 4)), "y": np.zeros(2, int)}, ShapeError,
     "x has 3 samples but y has 2 labels"),
    ({"x": np.zeros((0, 1, 4, 4)), "y": np.zeros(0, int)}, ShapeError, "got 0"),
    ({"epochs": 0}, ClearConvError, "epochs must be an int >= 1, got 0"),
    ({"batch_size": 0}, ClearConvError, "batch_size must be an int >= 1, got 0"),
    ({"batch_size": 32.5}, ClearConvError, "batch_size must be an int >= 1, got 32.5"),
    ({"x": np.zeros((3, 1, 5, 5)), "y": np.zeros(3, int)}, ShapeError,
     r"expects input of shape \(N, 1, 4, 4\), got x of shape \(3, 1, 5, 5\)"),
])
def test_bad_arguments_are_refused_naming_the_values(kwargs, error, pattern):
    x, y = data()
    args = {"x": x, "y": y, **kwargs}
    with pytest.raises(error, match=pattern):
        make_model().fit(verbose=0, **args)


def test_resume_without_a_folder_is_refused():
    x, y = data()
    with pytest.raises(ClearConvError, match="resume=True needs checkpoint_dir"):
        make_model().fit(x, y, resume=True, verbose=0)
