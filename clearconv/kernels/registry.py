"""The algorithm registry: every way clearconv can compute an op, by name, with its rule.

An op of :mod:`clearconv.functional` (``conv2d``, ``conv2d_relu_max_pool2d``,
``max_pool2d``, ``linear``) has one readable NumPy algorithm, written in its functional
module and registered there, and optionally faster ones registered by the modules of
:mod:`clearconv.kernels`. Each :class:`Algorithm` is a name, predicates saying when it
can compute a call and when 'auto' takes it (and why, in words), its forward and its
backward.

``algorithm='auto'`` takes the first algorithm of the op's order
(:data:`clearconv.kernels.tuning.AUTO_ORDER`) that it prefers for the call; any other
value forces that algorithm and raises, naming the reason, where it cannot compute it.
The choice is never a guess:

- every cache records the ``algorithm`` that computed the forward (its backward runs
  the same algorithm);
- :func:`choose` (and the per-op ``clearconv.functional.conv2d_algorithm`` and
  ``max_pool2d_algorithm``) returns a :class:`Choice` that lists every candidate with
  the reason it was taken or passed over;
- ``CLEARCONV_LOG_KERNELS=1`` logs each call's choice to stderr through the
  ``clearconv.kernels`` logger (or configure that logger yourself).

This module imports nothing from the rest of clearconv but its errors, so that
functional/ can ask it and kernels/ can fill it without an import cycle.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..errors import ClearConvError

#: the logger the choices go to (INFO); CLEARCONV_LOG_KERNELS=1 prints it on stderr
log = logging.getLogger("clearconv.kernels")


@dataclass(frozen=True)
class Algorithm:
    """One way of computing an op.

    ``supports(call) -> (bool, why)`` says whether it can compute this call at all (a
    forced ``algorithm=name`` needs that); ``prefer(call) -> (bool, why)`` whether 'auto'
    takes it (default: wherever it is supported), each with the reason in a few words.
    ``forward`` and ``backward`` have the op's signature (see the op's functional
    module). ``summary`` is one line for tables and docs. ``layout`` is the memory layout
    of its output: 'channels-last' (an NCHW view of NHWC memory), 'NCHW', or 'input' (the
    input's); the next op's choice may depend on it (max pooling's does).
    """

    op: str
    name: str
    supports: Callable[[Any], tuple[bool, str]]
    forward: Callable[..., Any]
    backward: Callable[..., Any] | None
    summary: str
    prefer: Callable[[Any], tuple[bool, str]] | None = None
    layout: str = "input"

    def auto(self, call: Any) -> tuple[bool, str]:
        """Whether 'auto' takes this algorithm for ``call``, and why."""
        return (self.prefer or self.supports)(call)


class Choice(NamedTuple):
    """What :func:`choose` picked for a call, and why: ``considered`` holds
    ``(name, applies, why)`` for every algorithm looked at, in order."""

    op: str
    name: str
    reason: str
    considered: tuple[tuple[str, bool, str], ...]

    def __str__(self) -> str:
        lines = [f"{self.op}: {self.name} ({self.reason})"]
        for name, ok, why in self.considered:
            lines.append(f"  {'+' if ok else '-'} {name}: {why}")
        return "\n".join(lines)


_algorithms: dict[str, dict[str, Algorithm]] = {}
_order: dict[str, tuple[str, ...]] = {}
_ordered_memo: dict[str, tuple[str, ...]] = {}   # _ordered's answers until the next change


def register(algorithm: Algorithm) -> Algorithm:
    """Add an algorithm (a second one of the same op and name replaces the first)."""
    _algorithms.setdefault(algorithm.op, {})[algorithm.name] = algorithm
    _ordered_memo.clear()
    return algorithm


def set_auto_order(op: str, names: tuple[str, ...]) -> None:
    """The order 'auto' tries the op's algorithms in (the first that applies wins); the
    names not listed (the readable default among them) come after, in registration order."""
    _order[op] = tuple(names)
    _ordered_memo.clear()


def get(op: str, name: str) -> Algorithm:
    """The registered algorithm ``name`` of ``op``; ClearConvError listing the names."""
    try:
        return _algorithms[op][name]
    except KeyError:
        raise ClearConvError(f"{op}: no algorithm {name!r}; choose one of "
                             f"{names(op)}") from None


def names(op: str) -> tuple[str, ...]:
    """``('auto', ...)`` and the op's registered algorithms in 'auto' order."""
    return ("auto", *_ordered(op))


def _ordered(op: str) -> tuple[str, ...]:
    """The op's algorithm names in 'auto' order (remembered until the registry changes:
    every call of an op walks it)."""
    try:
        return _ordered_memo[op]
    except KeyError:
        pass
    registered = list(_algorithms.get(op, {}))
    first = [n for n in _order.get(op, ()) if n in registered]
    names = tuple(first + [n for n in registered if n not in first])
    _ordered_memo[op] = names
    return names


def check_name(op: str, name: str) -> str:
    """``name`` if it is 'auto' or a registered algorithm of ``op``, else ClearConvError."""
    if name != "auto":
        get(op, name)
    return name


def choose(op: str, requested: str, call: Any) -> Choice:
    """Resolve ``requested`` ('auto' or a name) for ``call`` (the op's call description,
    e.g. a ConvCall). Raises ClearConvError when a forced algorithm does not apply."""
    if requested != "auto":
        ok, why = get(op, requested).supports(call)
        if not ok:
            raise ClearConvError(f"{op}: algorithm={requested!r} does not apply here: {why}")
        return Choice(op, requested, "asked for", ((requested, True, why),))
    considered = []
    for name in _ordered(op):
        ok, why = _algorithms[op][name].auto(call)
        considered.append((name, ok, why))
        if ok:
            return Choice(op, name, why, tuple(considered))
    raise ClearConvError(f"{op}: no algorithm applies to {call}")  # pragma: no cover


def resolve(op: str, requested: str, call: Any) -> Algorithm:
    """:func:`choose`, returning the algorithm itself; logs the choice when
    :data:`log` is enabled for INFO."""
    if requested != "auto" or log.isEnabledFor(logging.INFO):
        choice = choose(op, requested, call)
        log.info("%s %s -> %s (%s)", op, call, choice.name, choice.reason)
        return _algorithms[op][choice.name]
    for name in _ordered(op):     # the same walk as choose(), without the bookkeeping
        algorithm = _algorithms[op][name]
        if algorithm.auto(call)[0]:
            return algorithm
    raise ClearConvError(f"{op}: no algorithm applies to {call}")  # pragma: no cover


def ops() -> list[str]:
    """Every op with a registered algorithm, sorted by name."""
    return sorted(_algorithms)


def algorithms(op: str) -> list[Algorithm]:
    """The registered algorithms of ``op`` in 'auto' order."""
    return [_algorithms[op][n] for n in _ordered(op)]


def table() -> str:
    """Every op's algorithms, one line each: what ``python -m clearconv.kernels`` prints."""
    lines = []
    for op in ops():
        lines.append(f"{op}:")
        lines.extend(f"  {a.name:<22} {a.summary}" for a in algorithms(op))
    return "\n".join(lines)


if os.environ.get("CLEARCONV_LOG_KERNELS", "").strip().lower() in ("1", "true", "yes", "on"):
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("clearconv.kernels: %(message)s"))
    log.addHandler(_handler)
    log.setLevel(logging.INFO)
