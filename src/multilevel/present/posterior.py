"""What users see of a posterior: the sampler's result plus its rendering.

:class:`Posterior` adds the brms-like printout, figures, the report and the
model graph to :class:`multilevel.bayes.posterior.PosteriorResult`, which the
sampler builds as this class when :func:`multilevel.sample` asks it to.
"""

from __future__ import annotations

from typing import Any

from ..bayes.posterior import PosteriorResult


def _fmt(v: float) -> str:
    return f"{v:.2f}" if abs(v) < 1e5 else f"{v:.3g}"


def posterior_tables(post: Any, summ: Any, sections: list[tuple[str, list[str]]]) -> list[str]:
    """The priors, then a table per section (title, parameter names), then the diagnostics."""
    lo_col, hi_col = summ.columns[3], summ.columns[4]
    lines = ["", "Priors:"]
    width = max([*(len(k) for k in post.priors), *(len(n) for _, names in sections for n in names)])
    for k, p in post.priors.items():
        lines.append(f"  {k:<{width}}  {p.text}{'' if p.source == 'user' else '  (default)'}")
    header = (
        f"{'':<{width}}  {'mean':>9} {'sd':>8} {lo_col:>9} {hi_col:>9} "
        f"{'R-hat':>6} {'ESS bulk':>8} {'ESS tail':>8}"
    )
    for title, names in sections:
        lines += ["", title, header]
        for n in names:
            r = summ.loc[n]
            lines.append(
                f"  {n:<{width}}{_fmt(r['mean']):>9} {_fmt(r['sd']):>8} {_fmt(r[lo_col]):>9} "
                f"{_fmt(r[hi_col]):>9} {r['r_hat']:>6.3f} {r['ess_bulk']:>8.0f} {r['ess_tail']:>8.0f}"
            )
    lines += [
        "",
        f"Divergent transitions: {post.divergences}; E-BFMI: {', '.join(f'{b:.2f}' for b in post.bfmi)}",
    ]
    lines += [f"warning: {m}" for m in post.messages]
    return lines


class Posterior(PosteriorResult):
    """Posterior draws of a mixed model, as :func:`multilevel.sample` returns them.

    Examples
    --------
    >>> import multilevel
    >>> post = multilevel.sample("y | se(sigma) ~ 1 + (1 | school)",
    ...                          multilevel.load_dataset("eight_schools"),
    ...                          chains=1, draws=200, warmup=200, progress=False)  # doctest: +SKIP
    >>> print(post)  # doctest: +SKIP
    """

    # ---- pictures and reports ----------------------------------------
    def plot_caterpillar(self, group: str | None = None, *, prob: float = 0.95) -> Any:
        """Sorted posterior means of group effects with central intervals (matplotlib figure)."""
        from .bayes_plots import caterpillar

        return caterpillar(self, group, prob=prob)

    def plot_point_estimates(self, params: list[str] | None = None, *, prob: float = 0.95) -> Any:
        """Posterior densities with the likelihood estimate, MAP, mean and median marked."""
        from .bayes_plots import point_estimates

        return point_estimates(self, params, prob=prob)

    def plot_trace(self, var_names: list[str] | None = None) -> Any:
        """ArviZ trace plot of the population-level parameters."""
        from .bayes_plots import trace

        return trace(self, var_names)

    def plot_rank(self, var_names: list[str] | None = None) -> Any:
        """ArviZ rank plots of the population-level parameters."""
        from .bayes_plots import rank

        return rank(self, var_names)

    def graph(self) -> Any:
        """The model's directed graphical model (:class:`multilevel.present.graph.ModelGraph`)."""
        from .graph import model_graph

        return model_graph(self.spec, self.structure.family)

    def report(self, path: Any, *, title: str | None = None) -> Any:
        """Write a self-contained HTML report (model, priors, graph, tables, plots, warnings)."""
        from .report import posterior_report

        return posterior_report(self, path, title=title)

    def summary_text(self, prob: float = 0.95) -> str:
        st = self.structure
        s = self.settings
        summ = self.summary(group_effects=False, prob=prob)
        lines = [
            f"Family: {st.family.name} (link: {st.family.link.name})",
            f"Formula: {self.model.formula if getattr(self.model, 'latent_info', ()) else self.spec.formula}",
            f"Data: {self.model.design.n} observations"
            + "".join(f", {g.name}: {g.n_levels} levels" for g in st.groups),
            f"Draws: {s['chains']} chains, each with {s['warmup']} warmup and {s['draws']} kept draws; "
            f"NUTS{' (random effects integrated out)' if st.marginal else ' (non-centred)'}; "
            f"{s['seconds']:.1f} s",
        ]
        sub_sds = {li.sub_sd(g) for li in st.latent for g, _ in li.sub_groups}  # in their sub-model's table
        sections = [
            (
                f"Group-level effects: ~{g.name} ({g.n_levels} levels)",
                [
                    n
                    for n in summ.index
                    if n.startswith((f"sd_{g.name}__", f"cor_{g.name}__")) and n not in sub_sds
                ],
            )
            for g in st.groups
        ]
        sections.append(("Population-level effects:", list(st.fixed_names)))
        if st.dispersion:
            sections.append(("Family-specific parameters:", [st.dispersion]))
        for li in st.latent:
            c = li.column
            if li.kind == "me":
                sections.append((f"Latent values of {li.label}:", [f"meanme_{c}", f"sdme_{c}"]))
            else:
                rows = [*li.sub_names, f"sigma_{c}", *(li.sub_sd(g) for g, _ in li.sub_groups)]
                sections.append((f"Sub-model of {li.label}: {li.sub_formula}", rows))
        return "\n".join(lines + posterior_tables(self, summ, sections))

    def __str__(self) -> str:
        return self.summary_text()

    def __repr__(self) -> str:
        return (
            f"<Posterior {self.spec.formula!r}: {self.chains} chains x {self.ndraws} draws, "
            f"{self.divergences} divergences>"
        )
