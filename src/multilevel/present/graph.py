"""A model as its directed graphical model (plate diagram).

:func:`model_graph` turns a :class:`~multilevel.model.spec.ModelSpec` into nodes, edges
and plates: hyperparameters (the covariance of each grouping factor's effects,
the residual SD or dispersion), fixed effects, group-level effects in a plate per
grouping factor (plates of nested factors inside their parents' plates, crossed
factors side by side), and the observation plate with the linear predictor and
the observed (shaded) response. :class:`ModelGraph` renders to Graphviz DOT text,
and to SVG through Graphviz's ``dot`` when it is installed, else with a small
pure-Python layered layout.
"""

from __future__ import annotations

import html
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..family import get_family
from ..model.spec import ModelSpec


@dataclass(frozen=True)
class Node:
    id: str
    label: str
    kind: str  # "hyper", "fixed", "group", "deterministic", "observed"
    plate: str | None = None


@dataclass(frozen=True)
class Plate:
    id: str
    label: str
    size: int
    parent: str | None = None


@dataclass(frozen=True)
class ModelGraph:
    nodes: tuple[Node, ...]
    edges: tuple[tuple[str, str], ...]
    plates: tuple[Plate, ...] = field(default_factory=tuple)

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.id == node_id)

    def plate(self, plate_id: str) -> Plate:
        return next(p for p in self.plates if p.id == plate_id)

    # ---- DOT ---------------------------------------------------------------
    def to_dot(self) -> str:
        """Graphviz DOT text; plates are nested ``cluster`` subgraphs."""
        lines = ["digraph model {", "  rankdir=TB;", '  node [fontname="Helvetica"];']

        def node_line(n: Node, indent: str) -> str:
            style = {
                "observed": 'shape=ellipse, style=filled, fillcolor="#d9d9d9"',
                "deterministic": "shape=ellipse, style=dashed",
                "hyper": "shape=ellipse",
                "fixed": "shape=ellipse",
                "group": "shape=ellipse",
            }[n.kind]
            return f'{indent}"{n.id}" [label="{n.label}", {style}];'

        def emit(plate_id: str | None, indent: str) -> None:
            for n in self.nodes:
                if n.plate == plate_id:
                    lines.append(node_line(n, indent))
            for p in self.plates:
                if p.parent == plate_id:
                    lines.append(f'{indent}subgraph "cluster_{p.id}" {{')
                    lines.append(f'{indent}  label="{p.label} ({p.size})"; labeljust=r; labelloc=b;')
                    emit(p.id, indent + "  ")
                    lines.append(f"{indent}}}")

        emit(None, "  ")
        for a, b in self.edges:
            lines.append(f'  "{a}" -> "{b}";')
        lines.append("}")
        return "\n".join(lines)

    # ---- SVG ---------------------------------------------------------------
    def to_svg(self, *, engine: str = "auto") -> str:
        """SVG text: Graphviz's ``dot`` when available (``engine="auto"`` or ``"dot"``),
        otherwise (or with ``engine="python"``) the built-in layout."""
        if engine in ("auto", "dot") and shutil.which("dot"):
            out = subprocess.run(["dot", "-Tsvg"], input=self.to_dot(), capture_output=True, text=True)
            if out.returncode == 0:
                return out.stdout
        if engine == "dot":
            raise RuntimeError("Graphviz 'dot' is not installed; use engine='python'")
        return _python_svg(self)

    def save(self, path: str | Path) -> Path:
        """Write ``.dot``, ``.svg`` or ``.png`` (PNG through matplotlib's SVG-free drawing)."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix in (".dot", ".gv"):
            path.write_text(self.to_dot())
        elif suffix == ".svg":
            path.write_text(self.to_svg())
        elif suffix == ".png":
            _png(self, path)
        else:
            raise ValueError(f"unknown graph file type {suffix!r}; use .dot, .svg or .png")
        return path


LEVELS = {"hyper": 0, "fixed": 1, "group": 1, "deterministic": 2, "observed": 3}
NODE_W, NODE_H, GAP_X, GAP_Y = 120, 44, 36, 92
PLATE_PAD = 18


def _path(g: ModelGraph, plate: str | None) -> tuple[str, ...]:
    out: list[str] = []
    while plate is not None:
        out.append(plate)
        plate = g.plate(plate).parent
    return tuple(reversed(out))


def _layout(g: ModelGraph) -> dict[str, tuple[float, float]]:
    """Rows by node kind; columns in blocks by plate path, so every plate's members
    (its own nodes and its nested plates') are contiguous and boxes never overlap."""
    paths = {n.id: _path(g, n.plate) for n in g.nodes}
    cells: dict[tuple[tuple[str, ...], int], list[Node]] = {}
    for n in g.nodes:
        cells.setdefault((paths[n.id], LEVELS[n.kind]), []).append(n)
    blocks = sorted({p for p, _ in cells})
    pos: dict[str, tuple[float, float]] = {}
    x = float(GAP_X)
    prev: tuple[str, ...] = ()
    for b in blocks:
        # leave room for the plate borders that open between the previous block and this one
        common = 0
        while common < min(len(prev), len(b)) and prev[common] == b[common]:
            common += 1
        x += PLATE_PAD * ((len(prev) - common) + (len(b) - common))
        width = max(len(v) for (p, _), v in cells.items() if p == b)
        for (p, level), members in cells.items():
            if p != b:
                continue
            for i, n in enumerate(sorted(members, key=lambda n: n.id)):
                pos[n.id] = (
                    x + i * (NODE_W + GAP_X) + NODE_W / 2,
                    40 + level * (NODE_H + GAP_Y) + NODE_H / 2,
                )
        x += width * (NODE_W + GAP_X)
        prev = b
    return pos


def _plate_boxes(
    g: ModelGraph, pos: dict[str, tuple[float, float]]
) -> dict[str, tuple[float, float, float, float]]:
    boxes: dict[str, tuple[float, float, float, float]] = {}

    def members(pid: str) -> list[str]:
        out = [n.id for n in g.nodes if n.plate == pid]
        for p in g.plates:
            if p.parent == pid:
                out += members(p.id)
        return out

    depth = {p.id: 0 for p in g.plates}
    for p in g.plates:
        d, q = 0, p
        while q.parent is not None:
            d += 1
            q = g.plate(q.parent)
        depth[p.id] = d
    for p in sorted(g.plates, key=lambda p: -depth[p.id]):
        ids = members(p.id)
        if not ids:
            continue
        pad = 12 + PLATE_PAD * (max(depth.values()) - depth[p.id]) // 2
        xs = [pos[i][0] for i in ids]
        ys = [pos[i][1] for i in ids]
        boxes[p.id] = (
            min(xs) - NODE_W / 2 - pad,
            min(ys) - NODE_H / 2 - pad,
            max(xs) + NODE_W / 2 + pad,
            max(ys) + NODE_H / 2 + pad + 16 + 18 * (max(depth.values()) - depth[p.id]),
        )
    return boxes


def _python_svg(g: ModelGraph) -> str:
    pos = _layout(g)
    boxes = _plate_boxes(g, pos)
    w = max(x for x, _ in pos.values()) + NODE_W
    h = max(y for _, y in pos.values()) + NODE_H + 40
    for _, _, x1, y1 in boxes.values():
        w, h = max(w, x1 + 10), max(h, y1 + 10)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0f}" height="{h:.0f}" '
        f'viewBox="0 0 {w:.0f} {h:.0f}" font-family="Helvetica, Arial, sans-serif" font-size="13">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#333"/></marker></defs>',
    ]
    for pid, (x0, y0, x1, y1) in boxes.items():
        p = g.plate(pid)
        out.append(
            f'<rect class="plate" x="{x0:.1f}" y="{y0:.1f}" width="{x1 - x0:.1f}" height="{y1 - y0:.1f}" '
            'rx="6" fill="none" stroke="#555"/>'
        )
        out.append(
            f'<text x="{x1 - 6:.1f}" y="{y1 - 6:.1f}" text-anchor="end" fill="#555">'
            f"{html.escape(p.label)} ({p.size})</text>"
        )
    for a, b in g.edges:
        (x0, y0), (x1, y1) = pos[a], pos[b]
        out.append(
            f'<line class="edge" x1="{x0:.1f}" y1="{y0 + NODE_H / 2:.1f}" x2="{x1:.1f}" '
            f'y2="{y1 - NODE_H / 2:.1f}" stroke="#333" marker-end="url(#arrow)"/>'
        )
    for n in g.nodes:
        x, y = pos[n.id]
        fill = "#d9d9d9" if n.kind == "observed" else "white"
        dash = ' stroke-dasharray="4 3"' if n.kind == "deterministic" else ""
        out.append(
            f'<ellipse class="node {n.kind}" cx="{x:.1f}" cy="{y:.1f}" '
            f'rx="{NODE_W / 2:.1f}" ry="{NODE_H / 2:.1f}" fill="{fill}" stroke="#222"{dash}/>'
        )
        out.append(f'<text x="{x:.1f}" y="{y + 4:.1f}" text-anchor="middle">{html.escape(n.label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _png(g: ModelGraph, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse, FancyBboxPatch

    pos = _layout(g)
    boxes = _plate_boxes(g, pos)
    w = max(max(x for x, _ in pos.values()) + NODE_W, max((b[2] for b in boxes.values()), default=0) + 10)
    h = max(
        max(y for _, y in pos.values()) + NODE_H + 40, max((b[3] for b in boxes.values()), default=0) + 10
    )
    fig, ax = plt.subplots(figsize=(w / 80, h / 80), dpi=100)
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.axis("off")
    for pid, (x0, y0, x1, y1) in boxes.items():
        p = g.plate(pid)
        ax.add_patch(
            FancyBboxPatch(
                (x0, y0),
                x1 - x0,
                y1 - y0,
                boxstyle="round,pad=0,rounding_size=6",
                fill=False,
                edgecolor="#555",
            )
        )
        ax.text(x1 - 6, y1 - 6, f"{p.label} ({p.size})", ha="right", va="bottom", color="#555", fontsize=9)
    for a, b in g.edges:
        (x0, y0), (x1, y1) = pos[a], pos[b]
        ax.annotate(
            "",
            xy=(x1, y1 - NODE_H / 2),
            xytext=(x0, y0 + NODE_H / 2),
            arrowprops={"arrowstyle": "->", "color": "#333"},
        )
    for n in g.nodes:
        x, y = pos[n.id]
        ax.add_patch(
            Ellipse(
                (x, y),
                NODE_W,
                NODE_H,
                facecolor="#d9d9d9" if n.kind == "observed" else "white",
                edgecolor="#222",
                linestyle="--" if n.kind == "deterministic" else "-",
            )
        )
        ax.text(x, y, n.label, ha="center", va="center", fontsize=9)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def _nested_in(inner: tuple[str, ...], outer: tuple[str, ...]) -> bool:
    return len(inner) > len(outer) and set(outer) <= set(inner)


def model_graph(spec: ModelSpec, family: Any = None) -> ModelGraph:
    """The directed graphical model of a fitted or unfitted model.

    ``family``: the family object (its declarations label the dispersion node);
    by default the registered family named in the spec.

    Examples
    --------
    >>> from multilevel.datasets import load_dataset
    >>> from multilevel.model.design import build_model
    >>> spec, _ = build_model("strength ~ 1 + (1 | batch/cask)", load_dataset("Pastes"))
    >>> g = model_graph(spec)
    >>> g.plate("cask:batch").parent
    'batch'
    """
    nodes: list[Node] = []
    edges: list[tuple[str, str]] = []
    plates: list[Plate] = []
    groupings = list(spec.groupings)
    # plates: a factor's plate sits inside the plate of the largest factor it is nested in
    for g in groupings:
        parents = [h for h in groupings if _nested_in(g.factors, h.factors)]
        parent = max(parents, key=lambda h: len(h.factors)).name if parents else None
        plates.append(Plate(g.name, g.name, g.n_levels, parent))
    # observations sit inside the innermost plate when the factors form a nesting chain
    chain = all(
        _nested_in(a.factors, b.factors) or _nested_in(b.factors, a.factors) or a is b
        for a in groupings
        for b in groupings
    )
    innermost = max(groupings, key=lambda h: (len(h.factors), h.n_levels)).name if chain else None
    plates.append(Plate("obs", "observations", spec.nobs, innermost))
    nodes.append(Node("beta", f"β ({spec.p})", "fixed"))
    nodes.append(Node("eta", "η", "deterministic", "obs"))
    edges.append(("beta", "eta"))
    for g in groupings:
        hyper = f"Sigma_{g.name}"
        label = f"σ {g.name}" if g.q == 1 else f"Σ {g.name} ({g.q}x{g.q})"
        nodes.append(Node(hyper, label, "hyper"))
        b = f"b_{g.name}"
        nodes.append(Node(b, f"b {g.name}" + (f" ({g.q})" if g.q > 1 else ""), "group", g.name))
        edges.append((hyper, b))
        edges.append((b, "eta"))
    nodes.append(Node("y", spec.response, "observed", "obs"))
    edges.append(("eta", "y"))
    family = get_family(spec.family) if family is None else family
    if family.has_dispersion:
        nodes.append(Node("sigma", family.dispersion_symbol, "hyper"))
        edges.append(("sigma", "y"))
    return ModelGraph(tuple(nodes), tuple(edges), tuple(plates))
