"""The architecture checks itself: module and function sizes, no import cycles.

The layer contracts live in pyproject.toml and run as ``lint-imports`` in
``.ci/run``; the checks here are the ones import-linter has no contract for.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "multilevel"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
# a longer module or function says why in its docstring, with this phrase
EXCUSE = "Why this is long:"


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _excused(node: ast.AST) -> bool:
    doc = ast.get_docstring(node)  # type: ignore[arg-type]
    return bool(doc and EXCUSE in doc)


def test_no_module_is_too_long():
    long = []
    for path in _modules():
        text = path.read_text()
        n = text.count("\n")
        if n > MAX_MODULE_LINES and not _excused(ast.parse(text)):
            long.append(f"{path.relative_to(PACKAGE)}: {n} lines")
    assert not long, f"modules over {MAX_MODULE_LINES} lines without {EXCUSE!r}: {long}"


def test_no_function_is_too_long():
    long = []
    for path in _modules():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_FUNCTION_LINES and not _excused(node):
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}: {n} lines")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines without {EXCUSE!r}: {long}"


def _cycles(adj: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in adj[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for m in sorted(adj):
            if m not in index:
                visit(m)
    finally:
        sys.setrecursionlimit(limit)
    return out


def test_no_import_cycles():
    """No module reaches itself through imports (function-level imports included)."""
    grimp = pytest.importorskip("grimp")
    g = grimp.build_graph("multilevel", exclude_type_checking_imports=True)
    adj = {m: set(g.find_modules_directly_imported_by(m)) for m in g.modules}
    assert _cycles(adj) == []


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_layer_contract_is_declared():
    """The contract ``.ci/run`` checks names every top-level package of multilevel."""
    import tomllib

    conf = tomllib.loads((PACKAGE.parent.parent / "pyproject.toml").read_text())
    layers = conf["tool"]["importlinter"]["contracts"][0]["layers"]
    named = {name.strip().split(".")[1] for layer in layers for name in layer.split("|")}
    top = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or p.is_dir()}
    missing = sorted(top - named - {"__init__", "__pycache__"})
    assert not missing, f"packages outside every layer of the import contract: {missing}"
