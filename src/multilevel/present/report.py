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


def _render(make: Any) -> str:
    """A figure as base64 PNG, or ``ERROR:<reason>`` for a plot that does not apply."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _png(make())
    except (ValueError, KeyError) as exc:
        return f"ERROR:{exc}"


def _figures(fit: Any) -> list[tuple[str, str]]:
    makers = [("Group effects", lambda: fit.plot_caterpillar())]
    if hasattr(fit, "sigma") and getattr(fit, "family", None) is None:
        makers.append(("Residual diagnostics", lambda: fit.plot_residuals()))
        if "Intercept" in fit.spec.groupings[0].columns:
            makers.append(("Shrinkage", lambda: fit.plot_shrinkage()))
        if len(fit.spec.groupings) == 1 and fit.spec.groupings[0].q == 1:
            makers.append(("Group effects without the normal assumption (NPMLE)", lambda: _npmle_figure(fit)))
    return [(title, _render(make)) for title, make in makers]


def _npmle_figure(fit: Any) -> Any:
    """The groups' unshrunk estimates deconvolved by the NPMLE, beside the fitted normal."""
    from ..deconv import npmle
    from ..errors import ModelError
    from ..model.group_effects import group_effects
    from .deconv_plots import prior_plot

    try:
        ge = group_effects(fit)
    except ModelError as exc:
        raise ValueError(str(exc)) from None
    return prior_plot(npmle(ge.estimate, se=ge.se), ge.estimate, normal=(0.0, ge.tau))


def _page(
    title: str, messages: tuple[str, ...], sections: list[tuple[str, str]], figures: list[tuple[str, str]]
) -> str:
    """The HTML of a report: title, warnings, (heading, html) sections, then the figures."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if messages:
        items = "".join(f"<li>{html.escape(m)}</li>" for m in messages)
        parts.append(f'<div class="warn"><strong>Warnings</strong><ul>{items}</ul></div>')
    for heading, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.append(body)
    parts.append("<h2>Plots</h2>")
    for fig_title, data in figures:
        if data.startswith("ERROR:"):
            parts.append(f"<p>{html.escape(fig_title)}: not drawn ({html.escape(data[6:])})</p>")
            continue
        parts.append(
            f'<figure><img alt="{html.escape(fig_title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(fig_title)}</figcaption></figure>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def fit_report(fit: Any, path: str | Path, *, title: str | None = None) -> Path:
    """Write the HTML report of a likelihood fit (LMM or GLMM) to ``path``."""
    path = Path(path)
    title = title or f"multilevel: {fit.spec.formula}"
    vc = fit.varcorr.astype({"term1": object, "term2": object})
    vc[["term1", "term2"]] = vc[["term1", "term2"]].where(vc[["term1", "term2"]].notna(), "")
    sections = [
        ("Model", f"<pre>{html.escape(fit.summary())}</pre>"),
        ("The model as a graph", fit.graph().to_svg()),
        ("Fixed effects", fit.coef_table.to_html(float_format=lambda v: f"{v:.4g}", border=0)),
        ("Variance components", vc.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0)),
    ]
    path.write_text(_page(title, tuple(fit.messages), sections, _figures(fit)), encoding="utf-8")
    return path


def posterior_report(post: Any, path: str | Path, *, title: str | None = None) -> Path:
    """Write the HTML report of a posterior (``multilevel.sample``) to ``path``."""
    path = Path(path)
    title = title or f"multilevel (Bayes): {post.model.formula}"
    fmt = lambda v: f"{v:.4g}"  # noqa: E731
    # the likelihood fit of a model with me() / mi() terms is another model: no comparison
    compare = not post.structure.latent
    sections = [
        ("Model and posterior", f"<pre>{html.escape(post.summary_text())}</pre>"),
        ("The model as a graph", post.graph().to_svg()),
    ]
    if compare:
        pe = post.point_estimates()
        sections.append(
            (
                f"Expectations and modes ({pe.attrs['method']} estimate, MAP, posterior mean and median)",
                pe.to_html(float_format=fmt, border=0),
            )
        )
    sections += [
        ("Posterior summary", post.summary(group_effects=False).to_html(float_format=fmt, border=0)),
        ("Priors", post.prior_table().to_html(border=0)),
    ]
    figures = []
    if compare:
        figures.append(
            (
                "Posterior densities with the likelihood estimate, MAP, mean and median",
                _render(post.plot_point_estimates),
            )
        )
    figures += [
        ("Group effects (posterior means and intervals)", _render(post.plot_caterpillar)),
        ("Traces", _render(post.plot_trace)),
    ]
    messages = tuple(post.messages) + tuple(post.fit_messages)
    path.write_text(_page(title, messages, sections, figures), encoding="utf-8")
    return path


def deconvolution_report(
    result: Any, path: str | Path, y: Any = None, se: Any = None, *, title: str | None = None
) -> Path:
    """Write the HTML report of a deconvolution (NPMLE or g-model): the summary, the
    prior over the data and the shrinkage plot (``y``, ``se``: the data it was fitted to)."""
    from .deconv import format_deconvolution
    from .deconv_plots import prior_plot, shrinkage_plot

    path = Path(path)
    figures = [
        ("The estimated prior over the data", _render(lambda: prior_plot(result, y, se))),
        ("Estimates and their posterior means", _render(lambda: shrinkage_plot(result, y, se))),
    ]
    sections = [("Estimate", f"<pre>{html.escape(format_deconvolution(result))}</pre>")]
    page = _page(title or "multilevel: deconvolution", (), sections, figures)
    path.write_text(page, encoding="utf-8")
    return path
