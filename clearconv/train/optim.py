"""Optimizers and learning-rate schedules, with PyTorch's exact update rules.

Each optimizer updates ``Parameter.value`` in place from ``Parameter.grad``, in the
parameter's own dtype (float32 stays float32), and matches ``torch.optim`` step for
step: same constructor arguments, same state names, same arithmetic.

One difference from PyTorch's parameter groups: weight decay applies only to the
parameters whose ``decay`` flag is True (weights, not biases). The PyTorch equivalent
puts the biases in a second parameter group with ``weight_decay=0``.

Example
-------
>>> import numpy as np
>>> from clearconv.layers.parameter import Parameter
>>> w = Parameter(np.ones(3))
>>> opt = Adam([w], lr=0.1)
>>> sched = StepLR(opt, step_size=10, gamma=0.5)
>>> w.grad[:] = 1.0
>>> opt.step(); sched.step()
>>> w.value.round(4).tolist()
[0.9, 0.9, 0.9]

State saves as a flat dict of arrays and numbers (``np.savez`` needs no pickle), and
``load_state_dict`` restores it so that training resumes bit-identically.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..errors import ClearConvError
from ..layers.parameter import Parameter

__all__ = [
    "OPTIMIZERS",
    "SGD",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "LRScheduler",
    "Optimizer",
    "RMSprop",
    "StepLR",
    "make_optimizer",
]

StateDict = dict[str, "np.ndarray | float | int"]


def _check_nonnegative(name: str, value: float) -> float:
    value = float(value)
    if not value >= 0.0:  # also rejects NaN
        raise ClearConvError(f"{name} must be >= 0, got {value}")
    return value


def _check_unit_interval(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise ClearConvError(f"{name} must be in [0, 1), got {value}")
    return value


class Optimizer:
    """Base class: holds the parameters, the learning rate and the per-parameter state.

    Parameters
    ----------
    params : iterable of Parameter
        The parameters to update (materialised into a list; must not be empty).
    lr : float
        Learning rate, > 0. The attribute ``lr`` stays mutable: schedules set it.

    Attributes
    ----------
    params : list of Parameter
    lr : float
    step_count : int
        Number of ``step()`` calls so far (``"step"`` in the state dict).
    defaults : dict
        The constructor's hyper-parameters, as given (``hyperparams()`` returns a copy).
    state : dict of str to list of ndarray
        Per-parameter buffers by PyTorch's names (``"momentum_buffer"``, ``"exp_avg"``,
        ...); ``state[name][i]`` has the shape and dtype of ``params[i].value``.

    Subclasses set ``name``, declare their buffers in ``_buffer_names`` and implement
    ``_update(i, p, lr)``, which updates one parameter in place.
    """

    name: str = ""

    def __init__(self, params: Iterable[Parameter], lr: float) -> None:
        if isinstance(params, Parameter):
            raise ClearConvError(
                "params must be an iterable of Parameter, got a single Parameter "
                f"({params.name!r}); wrap it in a list"
            )
        self.params: list[Parameter] = list(params)
        if not self.params:
            raise ClearConvError("params is empty: the optimizer has nothing to update")
        for i, p in enumerate(self.params):
            if not isinstance(p, Parameter):
                raise ClearConvError(f"params[{i}] must be a Parameter, got {type(p).__name__}")
        if len({id(p) for p in self.params}) != len(self.params):
            raise ClearConvError("params holds the same Parameter twice")
        lr = float(lr)
        if not lr > 0.0:
            raise ClearConvError(f"lr must be > 0, got {lr}")
        self.lr = lr
        self.step_count = 0
        self.defaults: dict[str, Any] = {"lr": lr}
        self.state: dict[str, list[np.ndarray]] = {
            key: [np.zeros_like(p.value) for p in self.params] for key in self._buffer_names()
        }

    def _buffer_names(self) -> list[str]:
        """Names of the per-parameter buffers this configuration needs."""
        return []

    def _update(self, i: int, p: Parameter, lr: float) -> None:
        raise NotImplementedError

    def zero_grad(self) -> None:
        """Set every parameter's gradient to zero."""
        for p in self.params:
            p.zero_grad()

    def step(self) -> None:
        """Update every parameter once from its current gradient."""
        lr = float(self.lr)  # a NumPy float64 lr would promote float32 updates
        for i, p in enumerate(self.params):
            self._update(i, p, lr)
        self.step_count += 1

    def _decayed_grad(self, p: Parameter, weight_decay: float) -> np.ndarray:
        """``g + weight_decay * w`` (L2 penalty) when ``p.decay``, else ``g`` itself."""
        if weight_decay == 0.0 or not p.decay:
            return p.grad
        g = np.multiply(p.value, weight_decay)
        g += p.grad
        return g

    def hyperparams(self) -> dict[str, Any]:
        """The constructor's arguments, JSON-able: ``type(self)(params, **hyperparams())``
        rebuilds this optimizer (before ``load_state_dict`` restores its state)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.defaults.items()}

    def state_dict(self) -> StateDict:
        """A snapshot of the state: ``"step"`` (int), ``"lr"`` (float) and one array per
        buffer and parameter, keyed ``"<buffer>.<index>"`` (``"exp_avg.3"``).

        Arrays are copies; nothing in the dict needs pickle to save.
        """
        out: StateDict = {"step": int(self.step_count), "lr": float(self.lr)}
        for key, bufs in self.state.items():
            for i, buf in enumerate(bufs):
                out[f"{key}.{i}"] = buf.copy()
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a ``state_dict()`` of an optimizer of the same kind and parameters.

        Scalars may come back as 0-d arrays (as from ``np.load``); arrays are copied into
        the existing buffers, cast to the parameters' dtype.
        """
        expected = set(self.state_dict())
        given = set(state_dict)
        if given != expected:
            missing = sorted(expected - given)
            unexpected = sorted(given - expected)
            raise ClearConvError(
                f"{type(self).__name__} state dict does not match: "
                f"missing keys {missing}, unexpected keys {unexpected}"
            )
        for key, bufs in self.state.items():
            for i, buf in enumerate(bufs):
                src = np.asarray(state_dict[f"{key}.{i}"])
                if src.shape != buf.shape:
                    raise ClearConvError(
                        f"state {key}.{i} has shape {src.shape}, "
                        f"parameter {self.params[i].name!r} has shape {buf.shape}"
                    )
        step = int(np.asarray(state_dict["step"]))
        if step < 0:
            raise ClearConvError(f"state step must be >= 0, got {step}")
        for key, bufs in self.state.items():
            for i, buf in enumerate(bufs):
                np.copyto(buf, np.asarray(state_dict[f"{key}.{i}"]), casting="same_kind")
        self.step_count = step
        self.lr = float(np.asarray(state_dict["lr"]))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.defaults.items())
        return f"{type(self).__name__}({len(self.params)} params, {args})"


class SGD(Optimizer):
    r"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay.

    Same rule as ``torch.optim.SGD``. For each parameter :math:`w` with gradient
    :math:`g`, at step :math:`t`:

    .. math::

        g &\leftarrow g + \lambda w \quad \text{(if } \lambda \ne 0 \text{ and w.decay)} \\
        b_t &= \begin{cases} g & t = 1 \\ \mu b_{t-1} + (1 - \tau) g & t > 1 \end{cases} \\
        d &= \begin{cases} g + \mu b_t & \text{nesterov} \\ b_t & \text{otherwise}
             \end{cases} \quad (d = g \text{ if } \mu = 0) \\
        w &\leftarrow w - \eta\, d

    with :math:`\eta` = ``lr``, :math:`\mu` = ``momentum``, :math:`\tau` = ``dampening``,
    :math:`\lambda` = ``weight_decay``. Nesterov momentum (Sutskever et al., 2013) needs
    ``momentum > 0`` and ``dampening == 0``.

    State: ``momentum_buffer`` (:math:`b`), when ``momentum != 0``.
    """

    name = "sgd"

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 0.01,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        self.momentum = _check_nonnegative("momentum", momentum)
        self.dampening = float(dampening)
        self.weight_decay = _check_nonnegative("weight_decay", weight_decay)
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum <= 0.0 or self.dampening != 0.0):
            raise ClearConvError(
                "nesterov momentum requires momentum > 0 and dampening == 0, "
                f"got momentum={self.momentum}, dampening={self.dampening}"
            )
        super().__init__(params, lr)
        self.defaults.update(
            momentum=self.momentum,
            dampening=self.dampening,
            weight_decay=self.weight_decay,
            nesterov=self.nesterov,
        )

    def _buffer_names(self) -> list[str]:
        return ["momentum_buffer"] if self.momentum != 0.0 else []

    def _update(self, i: int, p: Parameter, lr: float) -> None:
        g = self._decayed_grad(p, self.weight_decay)
        if self.momentum != 0.0:
            buf = self.state["momentum_buffer"][i]
            if self.step_count == 0:
                np.copyto(buf, g)
            else:
                buf *= self.momentum
                if self.dampening == 0.0:
                    buf += g
                else:
                    buf += (1.0 - self.dampening) * g
            if self.nesterov:
                d = np.multiply(buf, self.momentum)
                d += g
                g = d
            else:
                g = buf
        p.value -= lr * g


class RMSprop(Optimizer):
    r"""RMSProp (Hinton, Lecture 6e of *Neural Networks for Machine Learning*, 2012).

    Same rule as ``torch.optim.RMSprop``. For each parameter :math:`w` with gradient
    :math:`g`:

    .. math::

        g &\leftarrow g + \lambda w \quad \text{(if } \lambda \ne 0 \text{ and w.decay)} \\
        v &\leftarrow \alpha v + (1 - \alpha) g^2 \\
        \bar g &\leftarrow \alpha \bar g + (1 - \alpha) g \quad \text{(centered only)} \\
        s &= \sqrt{v - \bar g^2} + \epsilon \ \text{(centered)}, \quad
             \sqrt{v} + \epsilon \ \text{(otherwise)} \\
        b &\leftarrow \mu b + g / s, \quad w \leftarrow w - \eta b
             \quad \text{(if } \mu > 0\text{, else } w \leftarrow w - \eta g / s)

    with all buffers starting at zero, :math:`\eta` = ``lr``, :math:`\alpha` = ``alpha``,
    :math:`\mu` = ``momentum``, :math:`\lambda` = ``weight_decay``.

    State: ``square_avg`` (:math:`v`), ``momentum_buffer`` (:math:`b`, if momentum > 0),
    ``grad_avg`` (:math:`\bar g`, if centered).
    """

    name = "rmsprop"

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 0.01,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        self.alpha = _check_nonnegative("alpha", alpha)
        self.eps = _check_nonnegative("eps", eps)
        self.weight_decay = _check_nonnegative("weight_decay", weight_decay)
        self.momentum = _check_nonnegative("momentum", momentum)
        self.centered = bool(centered)
        super().__init__(params, lr)
        self.defaults.update(
            alpha=self.alpha,
            eps=self.eps,
            weight_decay=self.weight_decay,
            momentum=self.momentum,
            centered=self.centered,
        )

    def _buffer_names(self) -> list[str]:
        names = ["square_avg"]
        if self.momentum > 0.0:
            names.append("momentum_buffer")
        if self.centered:
            names.append("grad_avg")
        return names

    def _update(self, i: int, p: Parameter, lr: float) -> None:
        g = self._decayed_grad(p, self.weight_decay)
        square_avg = self.state["square_avg"][i]
        square_avg *= self.alpha
        s = np.multiply(g, g)  # scratch, later the denominator
        s *= 1.0 - self.alpha
        square_avg += s
        if self.centered:
            grad_avg = self.state["grad_avg"][i]
            np.subtract(g, grad_avg, out=s)  # torch's lerp: avg + (1 - alpha) (g - avg)
            s *= 1.0 - self.alpha
            grad_avg += s
            np.multiply(grad_avg, grad_avg, out=s)
            np.subtract(square_avg, s, out=s)
            np.sqrt(s, out=s)
        else:
            np.sqrt(square_avg, out=s)
        s += self.eps
        np.divide(g, s, out=s)
        if self.momentum > 0.0:
            buf = self.state["momentum_buffer"][i]
            buf *= self.momentum
            buf += s
            np.multiply(buf, lr, out=s)
        else:
            s *= lr
        p.value -= s


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015), with optional AMSGrad (Reddi et al., 2018).

    Same rule as ``torch.optim.Adam``. For each parameter :math:`w` with gradient
    :math:`g`, at step :math:`t = 1, 2, \dots`:

    .. math::

        g &\leftarrow g + \lambda w \quad \text{(L2 penalty, if } \lambda \ne 0
             \text{ and w.decay)} \\
        m &\leftarrow \beta_1 m + (1 - \beta_1) g \\
        v &\leftarrow \beta_2 v + (1 - \beta_2) g^2 \\
        \hat v &\leftarrow \max(\hat v, v) \ \text{(amsgrad)}, \quad
             \hat v = v \ \text{(otherwise)} \\
        w &\leftarrow w - \frac{\eta}{1 - \beta_1^t} \,
             \frac{m}{\sqrt{\hat v} / \sqrt{1 - \beta_2^t} + \epsilon}

    with :math:`m, v, \hat v` starting at zero, :math:`\eta` = ``lr``,
    :math:`(\beta_1, \beta_2)` = ``betas``, :math:`\lambda` = ``weight_decay``.

    State: ``exp_avg`` (:math:`m`), ``exp_avg_sq`` (:math:`v`), ``max_exp_avg_sq``
    (:math:`\hat v`, if amsgrad); the step count :math:`t` is ``"step"``.
    """

    name = "adam"
    _decoupled = False

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: Sequence[float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        if len(betas) != 2:
            raise ClearConvError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (
            _check_unit_interval("beta1", betas[0]),
            _check_unit_interval("beta2", betas[1]),
        )
        self.eps = _check_nonnegative("eps", eps)
        self.weight_decay = _check_nonnegative("weight_decay", weight_decay)
        self.amsgrad = bool(amsgrad)
        super().__init__(params, lr)
        self.defaults.update(
            betas=self.betas,
            eps=self.eps,
            weight_decay=self.weight_decay,
            amsgrad=self.amsgrad,
        )

    def _buffer_names(self) -> list[str]:
        return ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if self.amsgrad else [])

    def _update(self, i: int, p: Parameter, lr: float) -> None:
        beta1, beta2 = self.betas
        t = self.step_count + 1
        if self._decoupled:
            if self.weight_decay != 0.0 and p.decay:
                p.value *= 1.0 - lr * self.weight_decay
            g = p.grad
        else:
            g = self._decayed_grad(p, self.weight_decay)
        exp_avg = self.state["exp_avg"][i]
        exp_avg_sq = self.state["exp_avg_sq"][i]
        s = np.subtract(g, exp_avg)  # scratch; torch's lerp: m + (1 - beta1) (g - m)
        s *= 1.0 - beta1
        exp_avg += s
        exp_avg_sq *= beta2
        np.multiply(g, g, out=s)
        s *= 1.0 - beta2
        exp_avg_sq += s
        if self.amsgrad:
            v_hat = self.state["max_exp_avg_sq"][i]
            np.maximum(v_hat, exp_avg_sq, out=v_hat)
        else:
            v_hat = exp_avg_sq
        bias_correction1 = 1.0 - beta1**t
        bias_correction2_sqrt = math.sqrt(1.0 - beta2**t)
        np.sqrt(v_hat, out=s)
        s /= bias_correction2_sqrt
        s += self.eps
        np.divide(exp_avg, s, out=s)
        s *= lr / bias_correction1
        p.value -= s


class AdamW(Adam):
    r"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    Same rule as ``torch.optim.AdamW``: Adam's update of :class:`Adam` with
    :math:`\lambda = 0` in the gradient, preceded by a decay of the weight itself,

    .. math::

        w \leftarrow w (1 - \eta \lambda) \quad \text{(if w.decay)},

    with :math:`\eta` = ``lr`` (the current one, so schedules scale the decay too) and
    :math:`\lambda` = ``weight_decay``.
    """

    name = "adamw"
    _decoupled = True

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: Sequence[float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


class LRScheduler:
    """Base class of the learning-rate schedules: one ``step()`` per epoch.

    At construction the schedule records ``base_lr = optimizer.lr``, sets
    ``last_epoch = 0`` and the optimizer's lr to ``lr_at(0)``; each ``step()`` then
    advances ``last_epoch`` by one and sets ``optimizer.lr = lr_at(last_epoch)``, the
    closed form of the schedule (PyTorch's semantics, without the chained rounding).

    Subclasses implement ``lr_at(epoch)``.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise ClearConvError(
                f"optimizer must be a clearconv Optimizer, got {type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        self.base_lr = float(optimizer.lr)
        self.last_epoch = -1
        self._last_lr = [self.base_lr]
        self.step()

    def lr_at(self, epoch: int) -> float:
        """The learning rate of epoch ``epoch`` (0 = the first)."""
        raise NotImplementedError

    def _hyperparams(self) -> dict[str, float | int]:
        return {}

    def step(self) -> None:
        """Advance one epoch and set the optimizer's learning rate."""
        self.last_epoch += 1
        lr = self.lr_at(self.last_epoch)
        self.optimizer.lr = lr
        self._last_lr = [lr]

    def get_last_lr(self) -> list[float]:
        """The learning rate set by the last ``step()``, as a one-element list (as in
        PyTorch, one entry per parameter group; clearconv has one group)."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, float | int]:
        """``last_epoch``, ``base_lr`` and the schedule's hyper-parameters."""
        return {"last_epoch": self.last_epoch, "base_lr": self.base_lr, **self._hyperparams()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a ``state_dict()``. As in PyTorch, the optimizer's lr is left alone:
        restore it with the optimizer's own ``load_state_dict``."""
        expected = set(self.state_dict())
        if set(state_dict) != expected:
            raise ClearConvError(
                f"{type(self).__name__} state dict keys {sorted(state_dict)} "
                f"do not match {sorted(expected)}"
            )
        for key, current in self.state_dict().items():
            setattr(self, key, type(current)(np.asarray(state_dict[key])))
        self._last_lr = [self.lr_at(self.last_epoch)]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._hyperparams().items())
        return f"{type(self).__name__}({args}, last_epoch={self.last_epoch})"


class StepLR(LRScheduler):
    r"""Multiply the learning rate by ``gamma`` every ``step_size`` epochs.

    .. math::

        \eta_e = \eta_0 \, \gamma^{\lfloor e / \text{step\_size} \rfloor}

    Same schedule as ``torch.optim.lr_scheduler.StepLR``.
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        if int(step_size) != step_size or step_size < 1:
            raise ClearConvError(f"step_size must be an integer >= 1, got {step_size}")
        self.step_size = int(step_size)
        self.gamma = _check_nonnegative("gamma", gamma)
        super().__init__(optimizer)

    def _hyperparams(self) -> dict[str, float | int]:
        return {"step_size": self.step_size, "gamma": self.gamma}

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    r"""Cosine annealing from the initial learning rate down to ``eta_min`` in ``T_max``
    epochs (Loshchilov & Hutter, SGDR, 2017; without restarts).

    .. math::

        \eta_e = \eta_{min} + (\eta_0 - \eta_{min})
                 \frac{1 + \cos(\pi e / T_{max})}{2}

    Past ``T_max`` the curve climbs back, with period ``2 T_max``, as in
    ``torch.optim.lr_scheduler.CosineAnnealingLR``.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        if int(T_max) != T_max or T_max < 1:
            raise ClearConvError(f"T_max must be an integer >= 1, got {T_max}")
        self.T_max = int(T_max)
        self.eta_min = _check_nonnegative("eta_min", eta_min)
        super().__init__(optimizer)

    def _hyperparams(self) -> dict[str, float | int]:
        return {"T_max": self.T_max, "eta_min": self.eta_min}

    def lr_at(self, epoch: int) -> float:
        cos = 1.0 + math.cos(math.pi * epoch / self.T_max)
        return self.eta_min + (self.base_lr - self.eta_min) * cos / 2


OPTIMIZERS: dict[str, tuple[type[Optimizer], dict[str, Any]]] = {
    "sgd": (SGD, {}),
    "momentum": (SGD, {"momentum": 0.9}),
    "nesterov": (SGD, {"momentum": 0.9, "nesterov": True}),
    "rmsprop": (RMSprop, {}),
    "adam": (Adam, {}),
    "adamw": (AdamW, {}),
}
"""Names accepted by :func:`make_optimizer`: the class and its preset arguments."""


def make_optimizer(name: str, params: Iterable[Parameter], **kwargs: Any) -> Optimizer:
    """Build an optimizer by name (case-insensitive).

    ``"sgd"``, ``"momentum"`` (SGD, momentum 0.9), ``"nesterov"`` (SGD, Nesterov
    momentum 0.9), ``"rmsprop"``, ``"adam"``, ``"adamw"``. Keyword arguments go to the
    constructor and override the presets (``make_optimizer("momentum", ps,
    momentum=0.5)``).

    Example
    -------
    >>> opt = make_optimizer("adam", model_params, lr=3e-4)  # doctest: +SKIP
    >>> same = make_optimizer(opt.name, model_params, **opt.hyperparams())  # doctest: +SKIP
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in OPTIMIZERS:
        raise ClearConvError(f"unknown optimizer {name!r}; valid names: {', '.join(OPTIMIZERS)}")
    cls, preset = OPTIMIZERS[key]
    return cls(params, **{**preset, **kwargs})
