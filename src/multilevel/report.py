"""Self-contained HTML reports of fits: the model, its graph, the tables, the plots, the warnings.

Everything is embedded (figures as base64 PNG, the graph as inline SVG), so the
file can be mailed or archived as it is.
"""

from __future__ import annotations

import base64
import html
import io
import warnings
from pathlib import Path
from typing import Any

CSS = """
body { font-family: Helvetica, Arial, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; border-bottom: 1px solid #ccc; padding-bottom: .2em; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: .85em; }
table { border-collapse: collapse; font-size: .9em; }
td, th { padding: .25em .6em; border-bottom: 1px solid #ddd; }
.warn { background: #fff4e5; border-left: 4px solid #f0a030; padding: .5em 1em; }
figure { margin: 1em 0; } img { max-width: 100%; }
"""


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figures(fit: Any) -> list[tuple[str, str]]:
    out = []
    makers = [("Group effects", lambda: fit.plot_caterpillar())]
    if hasattr(fit, "sigma") and getattr(fit, "family", None) is None:
        makers.append(("Residual diagnostics", lambda: fit.plot_residuals()))
        if "Intercept" in fit.spec.groupings[0].columns:
            makers.append(("Shrinkage", lambda: fit.plot_shrinkage()))
    for title, make in makers:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out.append((title, _png(make())))
        except (ValueError, KeyError) as exc:  # a plot that does not apply to this model
            out.append((title, f"ERROR:{exc}"))
    return out


def fit_report(fit: Any, path: str | Path, *, title: str | None = None) -> Path:
    """Write the HTML report of a likelihood fit (LMM or GLMM) to ``path``."""
    path = Path(path)
    title = title or f"multilevel: {fit.spec.formula}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if fit.messages:
        items = "".join(f"<li>{html.escape(m)}</li>" for m in fit.messages)
        parts.append(f'<div class="warn"><strong>Warnings</strong><ul>{items}</ul></div>')
    parts.append("<h2>Model</h2>")
    parts.append(f"<pre>{html.escape(fit.summary())}</pre>")
    parts.append("<h2>The model as a graph</h2>")
    parts.append(fit.graph().to_svg())
    parts.append("<h2>Fixed effects</h2>")
    parts.append(fit.coef_table.to_html(float_format=lambda v: f"{v:.4g}", border=0))
    parts.append("<h2>Variance components</h2>")
    vc = fit.varcorr.astype({"term1": object, "term2": object})
    vc[["term1", "term2"]] = vc[["term1", "term2"]].where(vc[["term1", "term2"]].notna(), "")
    parts.append(vc.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0))
    parts.append("<h2>Plots</h2>")
    for fig_title, data in _figures(fit):
        if data.startswith("ERROR:"):
            parts.append(f"<p>{html.escape(fig_title)}: not drawn ({html.escape(data[6:])})</p>")
            continue
        parts.append(
            f'<figure><img alt="{html.escape(fig_title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(fig_title)}</figcaption></figure>"
        )
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
