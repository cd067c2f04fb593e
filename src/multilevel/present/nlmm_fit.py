"""The nonlinear mixed-model fit as users see it: :class:`NlmmResult` plus rendering."""

from __future__ import annotations

from typing import Any

from ..errors import ModelError
from ..nlmm.results import NlmmResult
from .fits import FitPresentation


class NlmmFit(NlmmResult, FitPresentation):
    """A fitted nonlinear mixed model, as :func:`multilevel.nlfit` returns it."""

    def __repr__(self) -> str:
        return self.brief()

    def brief(self) -> str:
        status = "converged" if self.converged else "NOT converged"
        if self.singular:
            status += ", singular"
        return f"<NlmmFit: {self.formula}; {self.nobs} observations; logLik {self.loglik:.4f}; {status}>"

    def summary(self) -> str:
        """The summary of ``nlmer`` / ``nlme`` as text."""
        from .nlmm_summary import format_nlmm_summary

        return format_nlmm_summary(self)

    def to_dict(self) -> dict:
        """Plain JSON-able data: everything ``summary()`` shows and more."""
        from .nlmm_summary import nlmm_to_dict

        return nlmm_to_dict(self)

    # ---- pictures: what applies to a nonlinear fit ------------------------
    def plot_residuals(self) -> Any:
        """Pearson residuals against fitted values, and their normal QQ plot (matplotlib)."""
        import matplotlib.pyplot as plt
        from scipy import stats

        r = self.pearson_residuals
        fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.8))
        a.scatter(self.fitted, r, s=12, alpha=0.7)
        a.axhline(0.0, color="grey", lw=0.8)
        a.set(xlabel="fitted (group level)", ylabel="Pearson residual", title="Residuals vs fitted")
        (osm, osr), (slope, icpt, _) = stats.probplot(r)
        b.scatter(osm, osr, s=12, alpha=0.7)
        b.plot(osm, slope * osm + icpt, color="grey", lw=0.8)
        b.set(xlabel="normal quantile", ylabel="Pearson residual", title="Normal QQ")
        fig.tight_layout()
        return fig

    def _not_for_nonlinear(self, what: str) -> Any:
        raise ModelError(
            f"{what} is not available for nonlinear fits yet; use summary(), to_dict(), ranef, "
            "plot_residuals() or plot_profile()"
        )

    def plot_caterpillar(self, group: str | None = None, *, level: float = 0.95) -> Any:
        return self._not_for_nonlinear("plot_caterpillar()")

    def plot_shrinkage(self, group: str | None = None) -> Any:
        return self._not_for_nonlinear("plot_shrinkage()")

    def graph(self) -> Any:
        return self._not_for_nonlinear("graph()")

    def report(self, path: Any, *, title: str | None = None) -> Any:
        return self._not_for_nonlinear("report()")
