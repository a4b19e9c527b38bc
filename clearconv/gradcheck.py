"""Numerical gradient checking: analytic gradients against central finite differences.

MATH.md ("Around the math") asks that every gradient agree with finite differences.
For a scalar function ``f`` and a small step ``eps`` the central difference

    df/dx_i ~= (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)

has error ``O(eps^2)`` (plus rounding ``~ 1e-16 |f| / eps``), which is why every check
here works in float64. For an array-valued op ``y = f(x)`` and an upstream gradient
``dy`` the scalar checked is ``sum(f(x) * dy)``, whose gradient is exactly what an op's
``backward(dy, cache)`` returns (CS231n's ``eval_numerical_gradient_array``).

Three levels:

- :func:`numerical_gradient` and :func:`numerical_gradient_array`: the raw numbers;
- :func:`gradcheck`: any ``*_forward`` / ``*_backward`` pair of :mod:`clearconv.functional`
  (or your own), every input, every entry;
- :func:`check_model_gradients`: a whole model's parameter gradients, at sampled entries.

An entry passes when ``|analytic - numerical| <= atol + rtol * |numerical|`` (the rule of
``numpy.allclose``). The reported relative error is ``|a - n| / max(|a|, |n|)``; it is
large for entries that are nearly zero, which is why it is reported but not the pass rule.

Kinks. A central difference is an estimate of the derivative only where the function is
differentiable on the whole step ``[x - eps, x + eps]``. A ReLU input at (or within the
step of) 0, or a max-pooling window whose two largest entries are (nearly) tied, puts a
kink there: a CNN with zero biases on images with many zero pixels (the embedded digits)
has many ReLU inputs exactly at 0. At such an entry the two one-sided differences

    forward = (f(x + eps) - f(x)) / eps,   backward = (f(x) - f(x - eps)) / eps

disagree by more than the tolerance (on a smooth function they agree to ``eps |f''|``),
and a correct analytic gradient is one of them or lies between (the derivative on one
side of the kink; ReLU'(0) = 0 is the left one). An entry that fails the central rule,
whose one-sided differences disagree, and whose analytic gradient lies between them
(within the tolerance) is reported as a **kink**, not compared, and does not fail the
check; a wrong gradient at a smooth point, or outside the one-sided range, still fails.
:func:`check_model_gradients` also names the layer whose ReLU inputs cross 0 (or whose
pooling windows change their maximum) inside the step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ClearConvError, GradcheckError

__all__ = [
    "GradcheckError",
    "GradcheckResult",
    "InputCheck",
    "check_model_gradients",
    "gradcheck",
    "numerical_gradient",
    "numerical_gradient_array",
]



@dataclass(frozen=True)
class InputCheck:
    """The comparison for one input (or one model parameter).

    Attributes
    ----------
    name : str
        The input's name (a key of ``inputs``, ``"input0"``, ... or a parameter name).
    shape : tuple of int
        The input's shape.
    checked : int
        How many entries were compared (all of them, or a random sample).
    max_abs_error : float
        ``max |analytic - numerical|`` over the checked entries.
    max_rel_error : float
        ``max |analytic - numerical| / max(|analytic|, |numerical|)`` (0 where both are 0).
    worst_index : tuple of int
        The entry that is furthest outside the tolerance (or closest to it when all pass).
    analytic, numerical : float
        The two gradients at ``worst_index``.
    ok : bool
        Every checked entry not at a kink satisfies ``|a - n| <= atol + rtol * |n|``.
    kinks : tuple of index tuples
        The checked entries at a kink (see the module docstring): not compared.
    kink_cause : str
        What makes the first kink, in words (e.g. ``"layer 1 (ReLU): 12 inputs cross 0
        inside the step"``), or "" when none was found or looked for.
    """

    name: str
    shape: tuple[int, ...]
    checked: int
    max_abs_error: float
    max_rel_error: float
    worst_index: tuple[int, ...]
    analytic: float
    numerical: float
    ok: bool
    kinks: tuple[tuple[int, ...], ...] = ()
    kink_cause: str = ""

    def __str__(self) -> str:
        status = "FAIL" if not self.ok else ("kink" if self.kinks and
                                             len(self.kinks) == self.checked else "ok  ")
        text = (f"{status} {self.name}: shape {self.shape}, {self.checked} checked")
        if self.kinks:
            text += (f", {len(self.kinks)} at a kink (not differentiable inside the step, "
                     f"not compared{': ' + self.kink_cause if self.kink_cause else ''})")
        if len(self.kinks) == self.checked:
            return text
        return (f"{text}, max abs err {self.max_abs_error:.3e}, max rel err "
                f"{self.max_rel_error:.3e}, worst at {self.worst_index}: analytic "
                f"{self.analytic:.10g} vs numerical {self.numerical:.10g}")


@dataclass(frozen=True)
class GradcheckResult:
    """The outcome of :func:`gradcheck` or :func:`check_model_gradients`.

    ``result.ok`` is True when every checked input passes; ``result["w"]`` is the
    :class:`InputCheck` of input ``"w"``; ``str(result)`` prints one line per input.

    Attributes
    ----------
    checks : tuple of InputCheck
        One per input whose gradient was compared, in input order.
    skipped : tuple of str
        Inputs whose backward gradient was None (not compared).
    eps, rtol, atol : float
        The settings used.
    """

    checks: tuple[InputCheck, ...]
    skipped: tuple[str, ...]
    eps: float
    rtol: float
    atol: float

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def kinks(self) -> dict[str, tuple[tuple[int, ...], ...]]:
        """``{name: indices at a kink}`` for every input that has some."""
        return {c.name: c.kinks for c in self.checks if c.kinks}

    @property
    def max_abs_errors(self) -> dict[str, float]:
        """``{name: max |analytic - numerical|}`` per checked input."""
        return {c.name: c.max_abs_error for c in self.checks}

    @property
    def max_rel_errors(self) -> dict[str, float]:
        """``{name: max relative error}`` per checked input."""
        return {c.name: c.max_rel_error for c in self.checks}

    def __getitem__(self, name: str) -> InputCheck:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no gradient check named {name!r}; checked: "
                       f"{[c.name for c in self.checks]}")

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        kinks = sum(len(c.kinks) for c in self.checks)
        head = (f"gradcheck {'passed' if self.ok else 'FAILED'} "
                f"(eps={self.eps:g}, rtol={self.rtol:g}, atol={self.atol:g})"
                + (f"; {kinks} entries at a kink (ReLU at 0, tied maxima) not compared"
                   if kinks else ""))
        lines = [head] + [f"  {c}" for c in self.checks]
        lines += [f"  skip {name}: no gradient returned" for name in self.skipped]
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        """Raise :class:`GradcheckError` naming the first failing input and its worst entry."""
        for c in self.checks:
            if not c.ok:
                raise GradcheckError(
                    f"gradient of {c.name!r} (shape {c.shape}) disagrees with finite "
                    f"differences at index {c.worst_index}: analytic {c.analytic:.10g}, "
                    f"numerical {c.numerical:.10g} (|diff| {abs(c.analytic - c.numerical):.3e} "
                    f"> atol {self.atol:g} + rtol {self.rtol:g} * |numerical|; eps={self.eps:g})"
                )


def _check_float_array(x: Any, what: str) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        raise ClearConvError(
            f"{what} must be a floating-point ndarray that f reads (it is perturbed in "
            f"place), got {type(x).__name__}"
            + (f" of dtype {x.dtype}" if isinstance(x, np.ndarray) else "")
        )
    if not x.flags.writeable:
        raise ClearConvError(f"{what} must be writeable (it is perturbed in place)")
    return x


def _all_indices(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    return [tuple(int(i) for i in idx) for idx in np.ndindex(*shape)]


def _sample_indices(shape: tuple[int, ...], limit: int | None,
                    rng: np.random.Generator) -> list[tuple[int, ...]]:
    """All indices of ``shape`` in row-major order, or ``limit`` distinct random ones."""
    size = int(np.prod(shape, dtype=np.int64))
    if limit is None or limit >= size:
        return _all_indices(shape)
    flat = np.sort(rng.choice(size, size=limit, replace=False))
    return [tuple(int(i) for i in idx) for idx in zip(*np.unravel_index(flat, shape))]


def _central_difference(f: Callable[[], Any], x: np.ndarray, idx: tuple[int, ...],
                        eps: float) -> tuple[Any, Any]:
    """``(f() at x[idx] + eps, f() at x[idx] - eps)``; x[idx] is restored exactly."""
    old = x[idx]
    try:
        x[idx] = old + eps
        pos = f()
        x[idx] = old - eps
        neg = f()
    finally:
        x[idx] = old
    return pos, neg


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray,
                       eps: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of a scalar function ``f`` at ``x``.

    ``grad[i] = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)`` for every entry i. Each
    entry of ``x`` is perturbed in place (``f`` must read ``x``, not a copy taken
    earlier) and restored exactly afterwards.

    Parameters
    ----------
    f : callable, ``f(x) -> float``
    x : ndarray of floats, any shape; float64 recommended (float32 rounds a step of
        1e-6 away)
    eps : float
        The step.

    Returns
    -------
    grad : ndarray of float64, the shape of ``x``

    Examples
    --------
    >>> import numpy as np
    >>> from clearconv.gradcheck import numerical_gradient
    >>> x = np.array([1.0, -2.0, 3.0])
    >>> g = numerical_gradient(lambda a: float(np.sum(a ** 2)), x)
    >>> np.allclose(g, 2 * x)
    True
    """
    _check_float_array(x, "x")
    grad = np.zeros(x.shape, dtype=np.float64)
    for idx in _all_indices(x.shape):
        pos, neg = _central_difference(lambda: float(f(x)), x, idx, eps)
        grad[idx] = (pos - neg) / (2 * eps)
    return grad


def numerical_gradient_array(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                             dout: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of ``sum(f(x) * dout)`` for an array-valued ``f``.

    This is what an op's backward computes from an upstream gradient ``dout``
    (CS231n's ``eval_numerical_gradient_array``). Each entry is
    ``sum((f(x + eps e_i) - f(x - eps e_i)) * dout) / (2 eps)``: the difference is taken
    before the sum, so outputs that do not depend on ``x_i`` cancel exactly and add no
    rounding error. ``x`` is perturbed in place and restored.

    Parameters
    ----------
    f : callable, ``f(x) -> ndarray`` (or a scalar)
    x : ndarray of floats, any shape (float64 recommended)
    dout : ndarray of the shape of ``f(x)``, the upstream gradient
    eps : float
        The step.

    Returns
    -------
    grad : ndarray of float64, the shape of ``x``

    Examples
    --------
    >>> import numpy as np
    >>> from clearconv.gradcheck import numerical_gradient_array
    >>> x = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> dout = np.array([[1.0, 0.5], [0.0, -1.0]])
    >>> g = numerical_gradient_array(lambda a: a ** 2, x, dout)
    >>> np.allclose(g, 2 * x * dout)
    True
    """
    _check_float_array(x, "x")
    dout = np.asarray(dout, dtype=np.float64)
    grad = np.zeros(x.shape, dtype=np.float64)

    def value() -> np.ndarray:
        return np.array(f(x), dtype=np.float64, copy=True)

    for idx in _all_indices(x.shape):
        pos, neg = _central_difference(value, x, idx, eps)
        grad[idx] = np.sum((pos - neg) * dout) / (2 * eps)
    return grad


def _at_kinks(analytic: np.ndarray, numerical: np.ndarray, forward: np.ndarray,
              backward: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    """Which entries are at a kink: failing the central rule, one-sided differences that
    disagree, and the analytic gradient between them (each within the tolerance)."""
    allowed = atol + rtol * np.abs(numerical)
    fails = ~(np.abs(analytic - numerical) <= allowed)
    sides_differ = np.abs(forward - backward) > allowed
    lo, hi = np.minimum(forward, backward), np.maximum(forward, backward)
    between = (analytic >= lo - allowed) & (analytic <= hi + allowed)
    return fails & sides_differ & between


def _compare(name: str, analytic: np.ndarray, numerical: np.ndarray,
             indices: list[tuple[int, ...]], shape: tuple[int, ...],
             rtol: float, atol: float, kink: np.ndarray | None = None,
             kink_cause: str = "") -> InputCheck:
    """Compare the gradients at ``indices`` (arrays aligned with ``indices``); the entries
    where ``kink`` is True are reported, not compared."""
    kinks = tuple(idx for idx, k in zip(indices, kink) if k) if kink is not None else ()
    if kink is not None and kink.any():
        keep = ~kink
        analytic, numerical = analytic[keep], numerical[keep]
        indices = [idx for idx, k in zip(indices, keep) if k]
    if not indices:
        return InputCheck(name, shape, len(kinks), 0.0, 0.0, (), 0.0, 0.0, True, kinks,
                          kink_cause)
    diff = np.abs(analytic - numerical)
    scale = np.maximum(np.abs(analytic), np.abs(numerical))
    rel = np.divide(diff, scale, out=np.zeros_like(diff), where=scale > 0)
    allowed = atol + rtol * np.abs(numerical)
    # a NaN anywhere fails (diff <= allowed is False for NaN) and is the worst entry
    passed = bool(np.all(diff <= allowed))
    ratio = np.divide(diff, allowed, out=np.where(diff > 0, np.inf, 0.0), where=allowed > 0)
    ratio[np.isnan(diff)] = np.inf
    worst = int(np.argmax(ratio))
    return InputCheck(
        name=name, shape=shape, checked=len(indices) + len(kinks),
        max_abs_error=float(np.max(diff)), max_rel_error=float(np.max(rel)),
        worst_index=indices[worst], analytic=float(analytic[worst]),
        numerical=float(numerical[worst]), ok=passed, kinks=kinks, kink_cause=kink_cause,
    )


def _named_inputs(inputs: Mapping[str, Any] | Sequence[Any] | np.ndarray
                  ) -> tuple[list[str], list[np.ndarray]]:
    """Names and float64 copies (memory layout kept) of the inputs."""
    if isinstance(inputs, np.ndarray):
        inputs = (inputs,)
    if isinstance(inputs, Mapping):
        names = [str(k) for k in inputs]
        values = list(inputs.values())
    else:
        values = list(inputs)
        names = [f"input{i}" for i in range(len(values))]
    arrays = [np.array(v, dtype=np.float64, copy=True) for v in values]
    return names, arrays


def _aligned_gradients(grads: Any, names: list[str]) -> list[np.ndarray | None]:
    """Backward's result as one entry per input: a single array or a tuple aligned with inputs.

    Trailing extra entries are allowed when they are None (e.g. conv2d's dbias when the
    forward had no bias).
    """
    if grads is None or isinstance(grads, np.ndarray) or np.isscalar(grads):
        grads = (grads,)
    grads = list(grads)
    if len(grads) < len(names) or any(g is not None for g in grads[len(names):]):
        raise ClearConvError(
            f"backward returned {len(grads)} gradient(s) for {len(names)} input(s) "
            f"{names}; return one per input, in input order (None for an input not to check)"
        )
    return grads[:len(names)]


def gradcheck(forward: Callable[..., tuple[Any, Any]], backward: Callable[[Any, Any], Any],
              inputs: Mapping[str, np.ndarray] | Sequence[np.ndarray], eps: float = 1e-6,
              rtol: float = 1e-5, atol: float = 1e-7, seed: int = 0,
              raise_on_failure: bool = False,
              max_checks_per_input: int | None = None) -> GradcheckResult:
    """Check an op's backward against central finite differences of its forward.

    The op is a functional pair as in :mod:`clearconv.functional`:
    ``forward(*inputs) -> (out, cache)`` and ``backward(dout, cache) -> gradient(s)``.
    A random upstream gradient ``dout`` (standard normal, from ``seed``) is drawn; the
    analytic gradients ``backward(dout, cache)`` are compared entry by entry with
    :func:`numerical_gradient_array` of ``out`` for each input (MATH.md §9 says what the
    conv and pooling gradients are; this checks them).

    Parameters
    ----------
    forward : callable, ``forward(*inputs) -> (out, cache)``
        Bind hyper-parameters with a lambda or ``functools.partial``. ``out`` may be an
        array or a scalar (a loss).
    backward : callable, ``backward(dout, cache)``
        Returns a single array (one input) or a tuple aligned with ``inputs``; a None
        entry skips that input (e.g. integer labels). Trailing extra None entries are
        ignored.
    inputs : dict of name -> ndarray, a sequence of ndarrays (named ``input0``, ...), or
        one ndarray. Passed to ``forward`` positionally, in order. Each is copied (its
        memory layout kept) and cast to float64.
    eps : float
        Finite-difference step.
    rtol, atol : float
        Entry i passes when ``|a_i - n_i| <= atol + rtol * |n_i|``.
    seed : int
        Seed of ``dout`` (and of the sampled entries with ``max_checks_per_input``).
    raise_on_failure : bool
        Raise :class:`GradcheckError` (naming the input and its worst index) instead of
        returning a failed result.
    max_checks_per_input : int or None
        Compare only this many random entries per input (None: all of them).

    Returns
    -------
    GradcheckResult
        ``.ok``, per-input ``max_abs_errors`` / ``max_rel_errors``, a readable ``str``.

    Raises
    ------
    GradcheckError
        With ``raise_on_failure=True`` when an input fails; always when backward returns
        a gradient whose shape differs from its input's.

    Examples
    --------
    >>> import numpy as np
    >>> from clearconv import functional as F
    >>> from clearconv.gradcheck import gradcheck
    >>> rng = np.random.default_rng(0)
    >>> res = gradcheck(lambda x, w, b: F.conv2d_forward(x, w, b, stride=2, padding=1),
    ...                 F.conv2d_backward,
    ...                 {"x": rng.standard_normal((2, 3, 5, 5)),
    ...                  "w": rng.standard_normal((4, 3, 3, 3)),
    ...                  "b": rng.standard_normal(4)})
    >>> res.ok
    True
    >>> print(res)                                      # doctest: +ELLIPSIS
    gradcheck passed (eps=1e-06, rtol=1e-05, atol=1e-07)
      ok   x: shape (2, 3, 5, 5), 150 checked, max abs err ...
      ok   w: shape (4, 3, 3, 3), 108 checked, max abs err ...
      ok   b: shape (4,), 4 checked, max abs err ...
    """
    names, arrays = _named_inputs(inputs)
    rng = np.random.default_rng(seed)
    out, cache = forward(*[a.copy() for a in arrays])
    dout = rng.standard_normal(np.shape(out))
    # a scalar output (a loss) gets a float upstream gradient, an array one an array
    grads = _aligned_gradients(backward(float(dout) if dout.ndim == 0 else dout.copy(), cache),
                               names)

    def output() -> np.ndarray:
        # the inputs are perturbed in place, so forward sees the current values
        return np.array(forward(*arrays)[0], dtype=np.float64, copy=True)

    base = output()

    checks, skipped = [], []
    for name, x, g in zip(names, arrays, grads):
        if g is None:
            skipped.append(name)
            continue
        g = np.asarray(g, dtype=np.float64)
        if g.shape != x.shape:
            raise GradcheckError(
                f"backward's gradient for {name!r} has shape {g.shape}, the input has "
                f"shape {x.shape}"
            )
        indices = _sample_indices(x.shape, max_checks_per_input, rng)
        numerical, ahead, behind = (np.empty(len(indices)) for _ in range(3))
        for t, idx in enumerate(indices):
            pos, neg = _central_difference(output, x, idx, eps)
            numerical[t] = np.sum((pos - neg) * dout) / (2 * eps)
            ahead[t] = np.sum((pos - base) * dout) / eps
            behind[t] = np.sum((base - neg) * dout) / eps
        analytic = np.array([g[idx] for idx in indices])
        kink = _at_kinks(analytic, numerical, ahead, behind, rtol, atol)
        checks.append(_compare(name, analytic, numerical, indices, x.shape, rtol, atol, kink))
    result = GradcheckResult(tuple(checks), tuple(skipped), eps, rtol, atol)
    if raise_on_failure:
        result.raise_if_failed()
    return result


def check_model_gradients(model: Any, x: np.ndarray, y: np.ndarray, eps: float = 1e-6,
                          max_checks_per_param: int | None = 20, seed: int = 0,
                          rtol: float = 1e-5, atol: float = 1e-7,
                          raise_on_failure: bool = False) -> GradcheckResult:
    """Check every parameter gradient of a model against finite differences of its loss.

    Runs ``model.loss_and_backward(x, y)`` once (forward without dropout, softmax
    cross-entropy, backward into every ``Parameter.grad``), then for up to
    ``max_checks_per_param`` random entries of each parameter compares ``.grad`` with
    ``(model.loss(x, y) at value + eps - model.loss(x, y) at value - eps) / (2 eps)``.
    Parameter values are perturbed in place and restored exactly; the ``.grad`` arrays
    are left holding the analytic gradients.

    The model must be float64 (``model.astype("float64")``): in float32 a step of 1e-6
    is lost to rounding and the check is meaningless. Dropout must be off (the model's
    ``loss`` and ``loss_and_backward`` run in inference mode), or the two losses would
    see different masks. With ReLU or max pooling an entry can sit on a kink (a ReLU
    input within the step of 0, as zero biases on zero pixels give, or two window
    entries tied): such entries are found by their one-sided differences, reported as
    kinks with the layer that makes them, and not compared (the module docstring has
    the rule).

    Parameters
    ----------
    model : object with ``parameters()``, ``loss_and_backward(x, y)`` and ``loss(x, y)``
        e.g. :class:`clearconv.Sequential`.
    x : ndarray of shape (N, C, H, W)
    y : integer ndarray of shape (N,)
    eps : float
        Finite-difference step.
    max_checks_per_param : int or None
        Random entries compared per parameter (None: all of them; slow for big layers).
    seed : int
        Seed of the sampled entries.
    rtol, atol : float
        Entry i passes when ``|a_i - n_i| <= atol + rtol * |n_i|``.
    raise_on_failure : bool
        Raise :class:`GradcheckError` instead of returning a failed result.

    Returns
    -------
    GradcheckResult
        One :class:`InputCheck` per parameter, named by ``Parameter.name``.

    Examples
    --------
    >>> import numpy as np
    >>> import clearconv as cc
    >>> from clearconv.layers import Conv2D, ReLU, Flatten, Dense
    >>> from clearconv.gradcheck import check_model_gradients
    >>> model = cc.Sequential(Conv2D(1, 2, 3, rng=0), ReLU(), Flatten(), Dense(2 * 4 * 4, 3, rng=1),
    ...                       input_shape=(1, 6, 6)).astype("float64")
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.standard_normal((2, 1, 6, 6)), np.array([0, 2])
    >>> check_model_gradients(model, x, y).ok
    True
    """
    params = list(model.parameters())
    for i, p in enumerate(params):
        if not isinstance(p.value, np.ndarray) or p.value.dtype != np.float64:
            name = getattr(p, "name", "") or f"param{i}"
            dtype = getattr(p.value, "dtype", type(p.value).__name__)
            raise ClearConvError(
                f"check_model_gradients needs a float64 model; parameter {name!r} is "
                f"{dtype} (convert with model.astype('float64'))"
            )
    for p in params:
        p.zero_grad()
    model.loss_and_backward(x, y)
    analytic_grads = [np.array(p.grad, dtype=np.float64, copy=True) for p in params]
    rng = np.random.default_rng(seed)
    names = _unique_names([getattr(p, "name", "") for p in params])
    checks = []
    base = float(model.loss(x, y))
    for name, p, g in zip(names, params, analytic_grads):
        indices = _sample_indices(p.value.shape, max_checks_per_param, rng)
        numerical, ahead, behind = (np.empty(len(indices)) for _ in range(3))
        for t, idx in enumerate(indices):
            pos, neg = _central_difference(lambda: float(model.loss(x, y)), p.value, idx, eps)
            numerical[t] = (pos - neg) / (2 * eps)
            ahead[t], behind[t] = (pos - base) / eps, (base - neg) / eps
        analytic = np.array([g[idx] for idx in indices])
        kink = _at_kinks(analytic, numerical, ahead, behind, rtol, atol)
        cause = _kink_cause(model, x, p.value, indices[int(np.argmax(kink))], eps) \
            if kink.any() else ""
        checks.append(_compare(name, analytic, numerical, indices, p.value.shape, rtol, atol,
                               kink, cause))
    result = GradcheckResult(tuple(checks), (), eps, rtol, atol)
    if raise_on_failure:
        result.raise_if_failed()
    return result


def _kink_patterns(layers: Sequence[Any], x: np.ndarray) -> list[np.ndarray | None]:
    """Per top-level layer, what decides its derivative: the sign of a ReLU's (or leaky
    ReLU's) input, the argmax of a max pooling's windows; None for the other layers."""
    patterns: list[np.ndarray | None] = []
    a = x
    for layer in layers:
        kind = type(layer).__name__
        if kind in ("ReLU", "LeakyReLU"):
            patterns.append(a > 0)
        if kind == "MaxPool2D":
            out = layer.forward(a, training=True)
            patterns.append(np.array(layer._cache.argmax, copy=True))
            layer._cache = None
            a = out
            continue
        if kind not in ("ReLU", "LeakyReLU"):
            patterns.append(None)
        a = layer.forward(a, training=False)
    return patterns


def _kink_cause(model: Any, x: np.ndarray, value: np.ndarray, idx: tuple[int, ...],
                eps: float) -> str:
    """Which layer's ReLU inputs cross 0, or pooling maxima change, between
    ``value[idx] - eps`` and ``value[idx] + eps`` (a model with ``layers``); ""."""
    layers = getattr(model, "layers", None)
    if not layers:
        return ""
    x = np.asarray(x, dtype=np.float64)
    old = value[idx]
    try:
        value[idx] = old + eps
        ahead = _kink_patterns(layers, x)
        value[idx] = old - eps
        behind = _kink_patterns(layers, x)
    finally:
        value[idx] = old
    for i, (a, b) in enumerate(zip(ahead, behind)):
        if a is not None and b is not None and not np.array_equal(a, b):
            n = int(np.sum(a != b))
            kind = type(layers[i]).__name__
            what = (f"{n} input(s) cross 0" if kind != "MaxPool2D"
                    else f"{n} window(s) change their maximum")
            return f"at {idx}, layer {i} ({kind}): {what} inside the step"
    return ""


def _unique_names(names: list[str]) -> list[str]:
    """Parameter names, with ``param{i}`` for empty ones and ``#k`` suffixes on repeats."""
    out: list[str] = []
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        name = name or f"param{i}"
        if name in seen:
            seen[name] += 1
            name = f"{name}#{seen[name]}"
        else:
            seen[name] = 0
        out.append(name)
    return out
