"""The posterior of a nonlinear mixed model as users see it: the draws plus a brms-like printout."""

from __future__ import annotations

from ..bayes.nonlinear_posterior import NonlinearPosterior
from .posterior import posterior_tables


class NlPosterior(NonlinearPosterior):
    """NUTS draws of a nonlinear mixed model, as :func:`multilevel.sample` returns them
    for a nonlinear formula."""

    def summary_text(self, prob: float = 0.95) -> str:
        st, pr, s = self.structure, self.problem, self.settings
        summ = self.summary(group_effects=False, prob=prob)
        groups = {b.grouping: len(b.levels) for b in st.blocks}
        lines = [
            f"Family: {st.family} (link: {st.link})",
            f"Formula: {self.formula}",
            *(f"         {k} ~ {f}" for k, f in zip(pr.param_names, pr.param_formulas)),
            f"Data: {self.nobs} observations" + "".join(f", {g}: {n} levels" for g, n in groups.items()),
            f"Draws: {s['chains']} chains, each with {s['warmup']} warmup and {s['draws']} kept draws; "
            f"NUTS (non-centred); {s['seconds']:.1f} s",
        ]
        sections = [
            (
                f"Group-level effects: ~{g} ({n} levels)",
                [k for k in summ.index if k.startswith((f"sd_{g}__", f"cor_{g}__"))],
            )
            for g, n in groups.items()
        ]
        sections += [
            ("Population-level effects:", list(st.beta_names)),
            ("Family-specific parameters:", ["sigma"]),
        ]
        return "\n".join(lines + posterior_tables(self, summ, sections))

    def __str__(self) -> str:
        return self.summary_text()

    def __repr__(self) -> str:
        return (
            f"<NlPosterior {self.formula!r}: {self.chains} chains x {self.ndraws} draws, "
            f"{self.divergences} divergences>"
        )
