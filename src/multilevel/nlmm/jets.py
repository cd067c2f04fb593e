"""The mean expression with its first and second derivatives, in NumPy.

A :class:`Jet` carries, per row, the value, the gradient with respect to the K
parameters (n, K) and their Hessian (n, K, K); the parsed tree
(:mod:`multilevel.formula.expression`) is evaluated on jets by the chain rule, so a
Laplace fit needs no tracing or compilation: its first call costs what the others do.

Examples
--------
>>> import numpy as np
>>> from multilevel.formula.expression import parse_expression
>>> tree, _ = parse_expression("a * exp(b * t)")
>>> j = mean_jet(tree, ("a", "b"), np.array([[2.0, 0.5]]), {"t": np.array([1.0])})
>>> np.round([j.value[0], *j.grad[0], *j.hess[0].ravel()], 4).tolist()
[3.2974, 1.6487, 3.2974, 0.0, 1.6487, 1.6487, 3.2974]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..formula.expression import BinOp, Call, Name, Num, Unary


@dataclass
class Jet:
    """Value and derivatives in the K parameters (constants stay plain arrays, not jets)."""

    value: np.ndarray  # (n,)
    grad: np.ndarray  # (n, K)
    hess: Any  # (n, K, K); inside the evaluation None where it is zero (linear in the parameters)


def _outer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[:, :, None] * b[:, None, :]


def _hsum(a: Any, b: Any) -> Any:
    """The sum of two Hessians, None standing for zero."""
    if a is None:
        return b
    return a if b is None else a + b


def _hscale(c: Any, h: Any) -> Any:
    return None if h is None else c * h


def _chain(a: Jet, f: np.ndarray, d1: np.ndarray, d2: np.ndarray) -> Jet:
    """``F(a)`` from ``F``, ``F'`` and ``F''`` at ``a.value``."""
    curv = d2[:, None, None] * _outer(a.grad, a.grad)
    return Jet(f, d1[:, None] * a.grad, _hsum(_hscale(d1[:, None, None], a.hess), curv))


def _function(name: str, a: Jet) -> Jet:
    v = a.value
    if name == "exp":
        e = np.exp(v)
        return _chain(a, e, e, e)
    if name == "log":
        return _chain(a, np.log(v), 1.0 / v, -1.0 / v**2)
    if name == "sqrt":
        s = np.sqrt(v)
        return _chain(a, s, 0.5 / s, -0.25 / (s * v))
    if name == "log1p":
        return _chain(a, np.log1p(v), 1.0 / (1.0 + v), -1.0 / (1.0 + v) ** 2)
    if name == "expm1":
        e = np.exp(v)
        return _chain(a, np.expm1(v), e, e)
    if name == "sin":
        return _chain(a, np.sin(v), np.cos(v), -np.sin(v))
    if name == "cos":
        return _chain(a, np.cos(v), -np.sin(v), -np.cos(v))
    if name == "tanh":
        t = np.tanh(v)
        return _chain(a, t, 1.0 - t * t, -2.0 * t * (1.0 - t * t))
    if name == "abs":
        return _chain(a, np.abs(v), np.sign(v), np.zeros_like(v))
    raise ValueError(f"no derivative rule for {name}")  # pragma: no cover - the parser allows only these


def _mul(a: Jet, b: Jet) -> Jet:
    g = a.value[:, None] * b.grad + b.value[:, None] * a.grad
    h = _hsum(_hscale(a.value[:, None, None], b.hess), _hscale(b.value[:, None, None], a.hess))
    cross = _outer(a.grad, b.grad)
    return Jet(a.value * b.value, g, _hsum(h, cross + np.swapaxes(cross, 1, 2)))


def _scale(a: Jet, c: Any) -> Jet:
    """``a * c`` for a constant (number or per-row array) ``c``."""
    c = np.asarray(c, dtype=float)
    cg = c[..., None] if c.ndim else c
    ch = c[..., None, None] if c.ndim else c
    return Jet(a.value * c, a.grad * cg, _hscale(ch, a.hess))


def _shift(a: Jet, c: Any) -> Jet:
    return Jet(a.value + c, a.grad, a.hess)


def _recip(b: Jet) -> Jet:
    r = 1.0 / b.value
    return _chain(b, r, -r * r, 2.0 * r * r * r)


def _neg(a: Jet) -> Jet:
    return Jet(-a.value, -a.grad, _hscale(-1.0, a.hess))


def _pow(a: Jet, b: Any, b_const: bool) -> Jet:
    if b_const:
        p = np.asarray(b, dtype=float)
        v = a.value
        return _chain(a, v**p, p * v ** (p - 1), p * (p - 1) * v ** (p - 2))
    return _function("exp", _mul(b, _function("log", a)))


_PLAIN = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "**": np.power}


def _binary(op: str, a: Any, b: Any) -> Any:
    ja, jb = isinstance(a, Jet), isinstance(b, Jet)
    if not ja and not jb:
        return _PLAIN[op](a, b)
    if op == "+":
        if ja and jb:
            return Jet(a.value + b.value, a.grad + b.grad, _hsum(a.hess, b.hess))
        return _shift(a, b) if ja else _shift(b, a)
    if op == "-":
        if ja and jb:
            return Jet(a.value - b.value, a.grad - b.grad, _hsum(a.hess, _hscale(-1.0, b.hess)))
        return _shift(a, -np.asarray(b)) if ja else _shift(_neg(b), a)
    if op == "*":
        return _mul(a, b) if ja and jb else (_scale(a, b) if ja else _scale(b, a))
    if op == "/":
        if not jb:
            return _scale(a, 1.0 / np.asarray(b, dtype=float))
        inv = _recip(b)
        return _mul(a, inv) if ja else _scale(inv, a)
    if ja and not jb:
        return _pow(a, b, True)
    if not ja:  # c ** b = exp(b log c)
        return _function("exp", _scale(b, np.log(np.asarray(a, dtype=float))))
    return _pow(a, b, False)


@lru_cache(maxsize=256)
def program(tree: Any) -> tuple[tuple[Any, ...], ...]:
    """The tree as straight-line steps, each distinct subexpression once (``exp(lKa)``
    twice in ``SSfol`` is computed once): ``(kind, payload, operand steps)``."""
    steps: list[tuple[Any, ...]] = []
    seen: dict[Any, int] = {}

    def visit(node: Any) -> int:
        if node in seen:
            return seen[node]
        if isinstance(node, Num):
            step: tuple[Any, ...] = ("num", node.value, ())
        elif isinstance(node, Name):
            step = ("name", node.name, ())
        elif isinstance(node, Unary):
            step = ("neg", None, (visit(node.arg),))
        elif isinstance(node, Call):
            step = ("call", node.func, (visit(node.arg),))
        else:
            assert isinstance(node, BinOp)
            step = ("bin", node.op, (visit(node.left), visit(node.right)))
        steps.append(step)
        seen[node] = len(steps) - 1
        return seen[node]

    visit(tree)
    return tuple(steps)


def plain_value(steps: tuple[tuple[Any, ...], ...], env: Mapping[str, Any]) -> Any:
    """The value of a :func:`program` on arrays and numbers (no derivatives)."""
    vals: list[Any] = []
    for kind, payload, args in steps:
        if kind == "num":
            vals.append(payload)
        elif kind == "name":
            vals.append(env[payload])
        elif kind == "neg":
            vals.append(-vals[args[0]])
        elif kind == "call":
            vals.append(getattr(np, payload)(vals[args[0]]))
        else:
            vals.append(_PLAIN[payload](vals[args[0]], vals[args[1]]))
    return vals[-1]


def evaluate_jet(tree: Any, env: Mapping[str, Any], steps: tuple[tuple[Any, ...], ...] | None = None) -> Any:
    """The tree on jets (parameters) and arrays or numbers (covariates, constants); a
    plain array where nothing below depends on the parameters (``steps``: the tree's
    :func:`program`, if the caller keeps it)."""
    vals: list[Any] = []
    for kind, payload, args in steps if steps is not None else program(tree):
        if kind == "num":
            vals.append(payload)
        elif kind == "name":
            vals.append(env[payload])
        elif kind == "neg":
            a = vals[args[0]]
            vals.append(_neg(a) if isinstance(a, Jet) else -a)
        elif kind == "call":
            a = vals[args[0]]
            vals.append(_function(payload, a) if isinstance(a, Jet) else getattr(np, payload)(a))
        else:
            vals.append(_binary(payload, vals[args[0]], vals[args[1]]))
    return vals[-1]


def mean_jet(
    tree: Any,
    params: tuple[str, ...],
    phi: np.ndarray,
    covariates: Mapping[str, Any],
    seeds: list[np.ndarray] | None = None,
    steps: tuple[tuple[Any, ...], ...] | None = None,
) -> Jet:
    """The mean and its derivatives in the parameters ``phi`` (n, K) at every row
    (``seeds``: the unit gradients (n, K) of the parameters, and ``steps`` the tree's
    :func:`program`, if the caller keeps them)."""
    n, K = phi.shape
    env: dict[str, Any] = dict(covariates)
    if seeds is None:
        seeds = [np.ascontiguousarray(np.broadcast_to(np.eye(K)[k], (n, K))) for k in range(K)]
    for k, name in enumerate(params):
        env[name] = Jet(phi[:, k], seeds[k], None)  # a parameter's Hessian is zero
    out = evaluate_jet(tree, env, steps)
    if not isinstance(out, Jet):
        v = np.broadcast_to(np.asarray(out, dtype=float), (n,))
        return Jet(v, np.zeros((n, K)), np.zeros((n, K, K)))
    if out.hess is None:
        return Jet(out.value, out.grad, np.zeros((n, K, K)))
    return out
