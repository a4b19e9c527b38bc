"""Tests of clearconv.optim: conformance with torch.optim, state round trips, dtypes."""

from __future__ import annotations

import io
import itertools
import json
import math

import numpy as np
import pytest
from clearconv.optim import (
    OPTIMIZERS,
    SGD,
    Adam,
    AdamW,
    CosineAnnealingLR,
    Optimizer,
    RMSprop,
    StepLR,
    make_optimizer,
)

from clearconv.errors import ClearConvError
from clearconv.layers.parameter import Parameter

SHAPES = {"conv.weight": (2, 3, 3, 3), "conv.bias": (2,), "fc.weight": (4, 5), "fc.bias": (4,)}

CONFIGS = [
    (SGD, {}),
    (SGD, {"momentum": 0.9}),
    (SGD, {"momentum": 0.9, "dampening": 0.5}),
    (SGD, {"momentum": 0.9, "nesterov": True}),
    (SGD, {"weight_decay": 0.1}),
    (SGD, {"momentum": 0.8, "nesterov": True, "weight_decay": 0.05}),
    (SGD, {"momentum": 0.5, "dampening": 0.1, "weight_decay": 0.01}),
    (RMSprop, {}),
    (RMSprop, {"momentum": 0.9}),
    (RMSprop, {"centered": True}),
    (RMSprop, {"centered": True, "momentum": 0.5, "weight_decay": 0.1}),
    (RMSprop, {"alpha": 0.9, "eps": 1e-6, "weight_decay": 0.02}),
    (Adam, {}),
    (Adam, {"amsgrad": True}),
    (Adam, {"weight_decay": 0.1}),
    (Adam, {"betas": (0.8, 0.99), "eps": 1e-6, "amsgrad": True, "weight_decay": 0.05}),
    (AdamW, {}),
    (AdamW, {"weight_decay": 0.1, "amsgrad": True}),
    (AdamW, {"weight_decay": 0.0, "betas": (0.5, 0.9)}),
]
CONFIG_IDS = [f"{cls.__name__}-{kw}" for cls, kw in CONFIGS]


def make_params(dtype: type = np.float64, seed: int = 0) -> list[Parameter]:
    """Weights (decay) and biases (no decay) of a small conv + dense model."""
    rng = np.random.default_rng(seed)
    return [
        Parameter(rng.standard_normal(shape).astype(dtype), name, decay=name.endswith("weight"))
        for name, shape in SHAPES.items()
    ]


def gradients(n_steps: int, dtype: type = np.float64, seed: int = 1) -> list[list[np.ndarray]]:
    """Fixed random gradients: ``grads[step][param]``."""
    rng = np.random.default_rng(seed)
    return [
        [rng.standard_normal(shape).astype(dtype) for shape in SHAPES.values()]
        for _ in range(n_steps)
    ]


def run(opt: Optimizer, grads: list[list[np.ndarray]]) -> None:
    for step_grads in grads:
        for p, g in zip(opt.params, step_grads):
            p.grad[...] = g
        opt.step()


# --- conformance with torch.optim -------------------------------------------------


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS, ids=CONFIG_IDS)
def test_matches_torch_optim_for_five_steps(cls: type[Optimizer], kwargs: dict) -> None:
    torch = pytest.importorskip(
        "torch", reason="PyTorch not installed: conformance with torch.optim not checked"
    )
    lr = 0.05
    params = make_params()
    tparams = [torch.tensor(p.value.copy(), requires_grad=True) for p in params]
    decay = [t for p, t in zip(params, tparams) if p.decay]
    no_decay = [t for p, t in zip(params, tparams) if not p.decay]
    opt = cls(params, lr=lr, **kwargs)
    topt = getattr(torch.optim, cls.__name__)(
        [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}], lr=lr, **kwargs
    )
    for step, step_grads in enumerate(gradients(5)):
        if step == 3:  # a schedule changing lr mid-run
            opt.lr = lr / 2
            for group in topt.param_groups:
                group["lr"] = lr / 2
        for p, t, g in zip(params, tparams, step_grads):
            p.grad[...] = g
            t.grad = torch.from_numpy(g.copy())
        opt.step()
        topt.step()
        for p, t in zip(params, tparams):
            np.testing.assert_allclose(p.value, t.detach().numpy(), rtol=1e-10, atol=1e-14)

    state = opt.state_dict()
    assert state["step"] == 5
    buffer_names = {key.rsplit(".", 1)[0] for key in state if "." in key}
    for i, t in enumerate(tparams):
        for name in buffer_names:
            np.testing.assert_allclose(
                state[f"{name}.{i}"], topt.state[t][name].numpy(), rtol=1e-10, atol=1e-14
            )


def test_weight_decay_skips_parameters_without_decay_flag() -> None:
    params = make_params()
    before = [p.value.copy() for p in params]
    opt = AdamW(params, lr=0.1, weight_decay=0.5)
    opt.step()  # zero gradients: only the decoupled decay moves anything
    for p, b in zip(params, before):
        expected = b * (1 - 0.1 * 0.5) if p.decay else b
        np.testing.assert_array_equal(p.value, expected)


def test_sgd_step_is_plain_gradient_descent() -> None:
    p = Parameter(np.array([1.0, -2.0]))
    p.grad[...] = [0.5, 4.0]
    SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p.value, [0.95, -2.4], rtol=1e-15)


# --- state_dict -------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS, ids=CONFIG_IDS)
def test_state_dict_round_trip_resumes_bit_identically(cls: type[Optimizer], kwargs: dict) -> None:
    grads = gradients(6)
    params = make_params()
    opt = cls(params, lr=0.05, **kwargs)
    run(opt, grads[:3])
    opt.lr = 0.03
    saved_values = [p.value.copy() for p in params]
    state = opt.state_dict()

    # Through np.savez / np.load without pickle, as io.py saves it.
    buffer = io.BytesIO()
    np.savez(buffer, **state)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as npz:
        loaded = {key: npz[key] for key in npz.files}

    run(opt, grads[3:])

    resumed_params = make_params(seed=99)
    for p, v in zip(resumed_params, saved_values):
        p.value[...] = v
    resumed = make_optimizer(opt.name, resumed_params, **json.loads(json.dumps(opt.hyperparams())))
    assert type(resumed) is cls
    resumed.load_state_dict(loaded)
    assert resumed.lr == 0.03
    assert resumed.step_count == 3
    run(resumed, grads[3:])
    for p, q in zip(params, resumed_params):
        np.testing.assert_array_equal(p.value, q.value)
    for key, value in opt.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[key], value)


def test_state_dict_is_flat_snapshot_of_arrays_and_numbers() -> None:
    params = make_params()
    opt = Adam(params, lr=0.01, amsgrad=True)
    run(opt, gradients(2))
    state = opt.state_dict()
    assert all(isinstance(v, (np.ndarray, float, int)) for v in state.values())
    expected = {"step", "lr"} | {
        f"{name}.{i}"
        for name in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
        for i in range(len(params))
    }
    assert set(state) == expected
    copy = state["exp_avg.0"].copy()
    run(opt, gradients(1, seed=5))
    np.testing.assert_array_equal(state["exp_avg.0"], copy)  # later steps do not alias it
    assert state["step"] == 2


def test_sgd_without_momentum_has_no_buffers() -> None:
    assert set(SGD(make_params(), lr=0.1).state_dict()) == {"step", "lr"}


def test_load_state_dict_rejects_missing_keys_and_wrong_shapes() -> None:
    opt = SGD(make_params(), lr=0.1, momentum=0.9)
    state = opt.state_dict()
    missing = {k: v for k, v in state.items() if k != "momentum_buffer.2"}
    with pytest.raises(ClearConvError, match=r"momentum_buffer\.2"):
        opt.load_state_dict(missing)
    wrong = dict(state, **{"momentum_buffer.1": np.zeros((3, 3))})
    with pytest.raises(ClearConvError, match=r"momentum_buffer\.1.*\(3, 3\)"):
        opt.load_state_dict(wrong)
    with pytest.raises(ClearConvError, match="exp_avg"):
        Adam(make_params(), lr=0.1).load_state_dict(state)


def test_hyperparams_are_json_and_rebuild_the_same_optimizer() -> None:
    opt = make_optimizer("adamw", make_params(), lr=0.002, betas=(0.8, 0.95), amsgrad=True)
    hp = json.loads(json.dumps(opt.hyperparams()))
    assert hp == {
        "lr": 0.002,
        "betas": [0.8, 0.95],
        "eps": 1e-8,
        "weight_decay": 0.01,
        "amsgrad": True,
    }
    rebuilt = make_optimizer(opt.name, make_params(), **hp)
    assert isinstance(rebuilt, AdamW)
    assert rebuilt.betas == (0.8, 0.95)
    assert rebuilt.hyperparams() == hp


# --- dtypes and in-place updates --------------------------------------------------


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS, ids=CONFIG_IDS)
def test_float32_stays_float32_and_updates_in_place(cls: type[Optimizer], kwargs: dict) -> None:
    params = make_params(np.float32)
    arrays = [p.value for p in params]
    views = [p.value.reshape(-1) for p in params]
    opt = cls(params, lr=0.05, **kwargs)
    start = [v.copy() for v in arrays]
    run(opt, gradients(3, np.float32))
    opt.lr = np.float64(0.01)  # a NumPy scalar lr must not promote either
    run(opt, gradients(1, np.float32))
    for p, array, view, s in zip(params, arrays, views, start):
        assert p.value is array
        assert p.value.dtype == np.float32
        assert not np.array_equal(p.value, s)
        np.testing.assert_array_equal(view, p.value.reshape(-1))
    for key, value in opt.state_dict().items():
        if isinstance(value, np.ndarray):
            assert value.dtype == np.float32, key


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS, ids=CONFIG_IDS)
def test_float32_follows_float64_trajectory(cls: type[Optimizer], kwargs: dict) -> None:
    p64, p32 = make_params(np.float64), make_params(np.float32)
    opt64, opt32 = cls(p64, lr=0.05, **kwargs), cls(p32, lr=0.05, **kwargs)
    grads = gradients(5)
    run(opt64, grads)
    run(opt32, [[g.astype(np.float32) for g in step] for step in grads])
    for a, b in zip(p64, p32):
        np.testing.assert_allclose(b.value, a.value, rtol=1e-4, atol=1e-5)


def test_step_does_not_modify_gradients() -> None:
    params = make_params()
    opt = SGD(params, lr=0.1, momentum=0.9, weight_decay=0.1, nesterov=True)
    run(opt, gradients(2))
    np.testing.assert_array_equal(params[0].grad, gradients(2)[1][0])


def test_zero_grad_clears_every_gradient() -> None:
    params = make_params()
    opt = RMSprop(params)
    for p in params:
        p.grad[...] = 1.0
    opt.zero_grad()
    assert all(not p.grad.any() for p in params)


# --- factory ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cls", "attrs"),
    [
        ("sgd", SGD, {"momentum": 0.0, "nesterov": False}),
        ("momentum", SGD, {"momentum": 0.9, "nesterov": False}),
        ("nesterov", SGD, {"momentum": 0.9, "nesterov": True}),
        ("rmsprop", RMSprop, {"alpha": 0.99, "centered": False}),
        ("adam", Adam, {"betas": (0.9, 0.999), "weight_decay": 0.0}),
        ("AdamW", AdamW, {"weight_decay": 0.01}),
    ],
)
def test_make_optimizer_builds_named_optimizer(name: str, cls: type, attrs: dict) -> None:
    opt = make_optimizer(name, make_params())
    assert type(opt) is cls
    assert opt.name == cls.name
    for attr, value in attrs.items():
        assert getattr(opt, attr) == value


def test_make_optimizer_kwargs_override_presets() -> None:
    opt = make_optimizer("momentum", make_params(), lr=0.3, momentum=0.5)
    assert (opt.lr, opt.momentum) == (0.3, 0.5)
    assert set(OPTIMIZERS) == {"sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw"}


def test_make_optimizer_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ClearConvError, match="'adagrad'") as info:
        make_optimizer("adagrad", make_params())
    for name in OPTIMIZERS:
        assert name in str(info.value)


# --- argument errors --------------------------------------------------------------


@pytest.mark.parametrize("cls", [SGD, RMSprop, Adam, AdamW])
@pytest.mark.parametrize("lr", [0.0, -0.25])
def test_nonpositive_lr_is_rejected_with_its_value(cls: type[Optimizer], lr: float) -> None:
    with pytest.raises(ClearConvError, match=f"lr must be > 0, got {lr}"):
        cls(make_params(), lr=lr)


def test_nan_lr_is_rejected() -> None:
    with pytest.raises(ClearConvError, match="nan"):
        Adam(make_params(), lr=float("nan"))


def test_empty_params_are_rejected() -> None:
    with pytest.raises(ClearConvError, match="empty"):
        SGD(iter([]), lr=0.1)


def test_params_must_be_an_iterable_of_distinct_parameters() -> None:
    p = make_params()[0]
    with pytest.raises(ClearConvError, match="single Parameter"):
        SGD(p, lr=0.1)  # type: ignore[arg-type]
    with pytest.raises(ClearConvError, match="twice"):
        SGD([p, p], lr=0.1)
    with pytest.raises(ClearConvError, match=r"params\[0\].*ndarray"):
        SGD([np.zeros(3)], lr=0.1)  # type: ignore[list-item]


def test_generator_of_params_is_materialised() -> None:
    params = make_params()
    opt = SGD((p for p in params), lr=0.1)
    assert opt.params == params


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda ps: SGD(ps, nesterov=True), "nesterov.*momentum=0.0"),
        (lambda ps: SGD(ps, momentum=0.9, dampening=0.1, nesterov=True), "dampening=0.1"),
        (lambda ps: SGD(ps, momentum=-0.5), "momentum must be >= 0, got -0.5"),
        (lambda ps: Adam(ps, betas=(0.9, 1.0)), r"beta2 must be in \[0, 1\), got 1.0"),
        (lambda ps: Adam(ps, betas=(0.9,)), "betas must be a pair"),
        (lambda ps: AdamW(ps, weight_decay=-1e-3), "weight_decay must be >= 0, got -0.001"),
        (lambda ps: RMSprop(ps, eps=-1.0), "eps must be >= 0, got -1.0"),
    ],
)
def test_bad_hyperparameters_are_rejected_with_their_value(make, pattern: str) -> None:
    with pytest.raises(ClearConvError, match=pattern):
        make(make_params())


# --- learning-rate schedules ------------------------------------------------------


SCHEDULES = [
    (StepLR, {"step_size": 3, "gamma": 0.5}, lambda base, e: base * 0.5 ** (e // 3)),
    (StepLR, {"step_size": 1}, lambda base, e: base * 0.1**e),
    (
        CosineAnnealingLR,
        {"T_max": 7},
        lambda base, e: base * (1 + math.cos(math.pi * e / 7)) / 2,
    ),
    (
        CosineAnnealingLR,
        {"T_max": 5, "eta_min": 0.01},
        lambda base, e: 0.01 + (base - 0.01) * (1 + math.cos(math.pi * e / 5)) / 2,
    ),
]
SCHEDULE_IDS = [f"{cls.__name__}-{kw}" for cls, kw, _ in SCHEDULES]


@pytest.mark.parametrize(("cls", "kwargs", "formula"), SCHEDULES, ids=SCHEDULE_IDS)
def test_schedule_follows_closed_form(cls, kwargs: dict, formula) -> None:
    base = 0.2
    opt = SGD(make_params(), lr=base)
    sched = cls(opt, **kwargs)
    for epoch in range(20):
        expected = formula(base, epoch)
        assert sched.last_epoch == epoch
        assert sched.get_last_lr() == [pytest.approx(expected, rel=1e-14, abs=1e-17)]
        assert opt.lr == sched.get_last_lr()[0]
        sched.step()


def test_cosine_reaches_eta_min_at_t_max_and_comes_back() -> None:
    opt = Adam(make_params(), lr=0.1)
    sched = CosineAnnealingLR(opt, T_max=4, eta_min=0.001)
    lrs = [sched.get_last_lr()[0]]
    for _ in range(8):
        sched.step()
        lrs.append(opt.lr)
    assert lrs[0] == 0.1
    assert lrs[4] == pytest.approx(0.001, abs=1e-17)
    assert lrs[8] == pytest.approx(0.1, rel=1e-15)
    assert all(a > b for a, b in itertools.pairwise(lrs[:5]))


@pytest.mark.parametrize(("cls", "kwargs", "formula"), SCHEDULES, ids=SCHEDULE_IDS)
def test_schedule_matches_torch_scheduler(cls, kwargs: dict, formula) -> None:
    torch = pytest.importorskip(
        "torch", reason="PyTorch not installed: conformance with torch schedulers not checked"
    )
    del formula
    base = 0.2
    opt = SGD(make_params(), lr=base)
    sched = cls(opt, **kwargs)
    weight = torch.zeros(3, requires_grad=True)
    topt = torch.optim.SGD([weight], lr=base)
    tsched = getattr(torch.optim.lr_scheduler, cls.__name__)(topt, **kwargs)
    for _ in range(25):
        np.testing.assert_allclose(
            sched.get_last_lr(), tsched.get_last_lr(), rtol=1e-12, atol=1e-15
        )
        assert opt.lr == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12, abs=1e-15)
        topt.step()  # no gradient: a no-op that keeps torch's call-order check quiet
        tsched.step()
        sched.step()


@pytest.mark.parametrize(("cls", "kwargs", "formula"), SCHEDULES, ids=SCHEDULE_IDS)
def test_schedule_state_dict_round_trip(cls, kwargs: dict, formula) -> None:
    del formula
    opt = SGD(make_params(), lr=0.2)
    sched = cls(opt, **kwargs)
    for _ in range(4):
        sched.step()
    state = sched.state_dict()
    assert state["last_epoch"] == 4
    assert json.loads(json.dumps(state)) == state

    other_opt = SGD(make_params(), lr=0.9)
    other = cls(other_opt, **kwargs)
    other.load_state_dict({k: np.asarray(v) for k, v in state.items()})  # as from np.load
    assert other.last_epoch == 4
    assert other.base_lr == 0.2
    assert other.get_last_lr() == sched.get_last_lr()
    for _ in range(6):
        sched.step()
        other.step()
        assert other_opt.lr == opt.lr


def test_schedule_load_state_dict_rejects_wrong_keys() -> None:
    sched = StepLR(SGD(make_params(), lr=0.1), step_size=2)
    with pytest.raises(ClearConvError, match="T_max"):
        sched.load_state_dict({"last_epoch": 1, "base_lr": 0.1, "T_max": 3, "eta_min": 0.0})


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda opt: StepLR(opt, step_size=0), "step_size must be an integer >= 1, got 0"),
        (lambda opt: StepLR(opt, step_size=2.5), "got 2.5"),
        (lambda opt: CosineAnnealingLR(opt, T_max=0), "T_max must be an integer >= 1, got 0"),
        (lambda opt: CosineAnnealingLR(opt, T_max=3, eta_min=-0.1), "eta_min.*-0.1"),
    ],
)
def test_bad_schedule_arguments_are_rejected_with_their_value(make, pattern: str) -> None:
    with pytest.raises(ClearConvError, match=pattern):
        make(SGD(make_params(), lr=0.1))


def test_schedule_drives_training_lr() -> None:
    p = Parameter(np.zeros(1))
    opt = SGD([p], lr=1.0)
    sched = StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(3):
        p.grad[...] = -1.0
        opt.step()
        sched.step()
    np.testing.assert_array_equal(p.value, [1.0 + 0.5 + 0.25])
