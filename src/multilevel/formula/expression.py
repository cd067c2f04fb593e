"""The mean of a nonlinear model: a formula's right-hand side parsed safely into a tree.

Python's :mod:`ast` reads the text; only numbers, names, ``+ - * / **``, unary minus
and a short list of functions are accepted (nothing is ever evaluated as Python).
Self-starting models (``SSlogis(age, Asym, xmid, scal)``) are expanded here into
their expressions, keeping a note of the call for the automatic start. A tree is
evaluated by :func:`evaluate` against any array namespace (NumPy or ``jax.numpy``),
so the same tree is the JAX mean function and the NumPy one.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import FormulaError
from .selfstart import SELF_START

#: functions an expression may call, each by its name in the array namespace
FUNCTIONS = ("exp", "log", "sqrt", "log1p", "expm1", "sin", "cos", "tanh", "abs")


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Name:
    name: str


@dataclass(frozen=True)
class Unary:
    arg: Any


@dataclass(frozen=True)
class BinOp:
    op: str  # one of + - * / **
    left: Any
    right: Any


@dataclass(frozen=True)
class Call:
    func: str  # one of FUNCTIONS
    arg: Any


Node = Num | Name | Unary | BinOp | Call

_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}


@dataclass(frozen=True)
class SelfStartCall:
    """One self-starting model in the formula: its name and the argument trees."""

    model: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class MeanExpression:
    """A parsed nonlinear formula: response column, mean tree, the names it reads."""

    formula: str
    response: str
    tree: Any
    names: tuple[str, ...]  # every Name in the tree, in order of first appearance
    selfstart: SelfStartCall | None = None


def _error(message: str, formula: str, node: ast.AST | None = None, offset: int = 0) -> FormulaError:
    if node is None or not hasattr(node, "col_offset"):
        return FormulaError(message, formula, (0, len(formula)))
    start = offset + node.col_offset
    end = offset + (getattr(node, "end_col_offset", None) or node.col_offset + 1)
    return FormulaError(message, formula, (start, end))


class _Converter:
    """ast -> Node, refusing everything not on the whitelist."""

    def __init__(self, formula: str, offset: int) -> None:
        self.formula = formula
        self.offset = offset
        self.selfstart: SelfStartCall | None = None

    def error(self, message: str, node: ast.AST) -> FormulaError:
        return _error(message, self.formula, node, self.offset)

    def convert(self, node: ast.AST) -> Any:
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, int | float)
            and not isinstance(node.value, bool)
        ):
            return Num(float(node.value))
        if isinstance(node, ast.Name):
            return Name(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            arg = self.convert(node.operand)
            return Unary(arg) if isinstance(node.op, ast.USub) else arg
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return BinOp(_OPS[type(node.op)], self.convert(node.left), self.convert(node.right))
        if isinstance(node, ast.Call):
            return self.call(node)
        raise self.error(
            f"{type(node).__name__} is not allowed in a nonlinear formula; use numbers, names, "
            f"+ - * / ** (or ^) and the functions {', '.join(FUNCTIONS)} or a self-starting model",
            node,
        )

    def call(self, node: ast.Call) -> Any:
        if not isinstance(node.func, ast.Name) or node.keywords:
            raise self.error("only plain calls such as exp(x) are allowed", node)
        name = node.func.id
        if name in FUNCTIONS:
            if len(node.args) != 1:
                raise self.error(f"{name}() takes one argument, got {len(node.args)}", node)
            return Call(name, self.convert(node.args[0]))
        if name in SELF_START:
            return self.expand(name, node)
        raise self.error(
            f"unknown function {name!r}; allowed are {', '.join(FUNCTIONS)} and the self-starting "
            f"models {', '.join(SELF_START)}",
            node,
        )

    def expand(self, name: str, node: ast.Call) -> Any:
        model = SELF_START[name]
        if len(node.args) != len(model.args):
            raise self.error(f"{name}({', '.join(model.args)}) takes {len(model.args)} arguments", node)
        args = tuple(self.convert(a) for a in node.args)
        for a, role in zip(args, model.args):
            if role in model.params and not isinstance(a, Name):
                raise self.error(f"{name}'s argument {role!r} must be a parameter name", node)
        if self.selfstart is not None:
            raise self.error("a formula may use one self-starting model", node)
        self.selfstart = SelfStartCall(name, args)
        return substitute(parse_expression(model.text)[0], dict(zip(model.args, args)))


def substitute(tree: Any, mapping: Mapping[str, Any]) -> Any:
    """The tree with the names in ``mapping`` replaced by trees."""
    if isinstance(tree, Name):
        return mapping.get(tree.name, tree)
    if isinstance(tree, Unary):
        return Unary(substitute(tree.arg, mapping))
    if isinstance(tree, BinOp):
        return BinOp(tree.op, substitute(tree.left, mapping), substitute(tree.right, mapping))
    if isinstance(tree, Call):
        return Call(tree.func, substitute(tree.arg, mapping))
    return tree


def names_of(tree: Any) -> tuple[str, ...]:
    """Every name the tree reads, in order of first appearance."""
    out: dict[str, None] = {}

    def walk(t: Any) -> None:
        if isinstance(t, Name):
            out[t.name] = None
        elif isinstance(t, Unary | Call):
            walk(t.arg)
        elif isinstance(t, BinOp):
            walk(t.left)
            walk(t.right)

    walk(tree)
    return tuple(out)


def parse_expression(
    text: str, formula: str | None = None, offset: int = 0
) -> tuple[Any, SelfStartCall | None]:
    """The tree of one expression (R's ``^`` read as ``**``) and its self-starting call."""
    formula = text if formula is None else formula
    try:
        module = ast.parse(text.replace("^", "**"), mode="eval")
    except SyntaxError as e:
        col = max((e.offset or 1) - 1, 0)
        raise FormulaError(
            f"cannot parse the nonlinear formula: {e.msg}", formula, (offset + col, offset + col + 1)
        ) from None
    conv = _Converter(formula, offset)
    return conv.convert(module.body), conv.selfstart


def parse_mean(formula: str) -> MeanExpression:
    """Parse ``"response ~ expression"``.

    Examples
    --------
    >>> m = parse_mean("circumference ~ SSlogis(age, Asym, xmid, scal)")
    >>> m.response, m.names, m.selfstart.model
    ('circumference', ('Asym', 'xmid', 'age', 'scal'), 'SSlogis')
    """
    if formula.count("~") != 1:
        raise FormulaError(
            "a nonlinear formula has one '~': 'response ~ expression of parameters and covariates'",
            formula,
            (0, len(formula)),
        )
    lhs, rhs = formula.split("~")
    response = lhs.strip()
    if not response.isidentifier():
        raise FormulaError("the response must be a column name", formula, (0, len(lhs)))
    offset = len(lhs) + 1 + (len(rhs) - len(rhs.lstrip()))
    tree, ss = parse_expression(rhs.strip(), formula, offset)
    return MeanExpression(formula, response, tree, names_of(tree), ss)


def evaluate(tree: Any, env: Mapping[str, Any], xp: Any) -> Any:
    """The value of ``tree`` with names from ``env``, computed with the namespace ``xp``."""
    if isinstance(tree, Num):
        return tree.value
    if isinstance(tree, Name):
        return env[tree.name]
    if isinstance(tree, Unary):
        return -evaluate(tree.arg, env, xp)
    if isinstance(tree, Call):
        return getattr(xp, tree.func)(evaluate(tree.arg, env, xp))
    a, b = evaluate(tree.left, env, xp), evaluate(tree.right, env, xp)
    if tree.op == "+":
        return a + b
    if tree.op == "-":
        return a - b
    if tree.op == "*":
        return a * b
    if tree.op == "/":
        return a / b
    return a**b
