"""What users see of a likelihood fit: the result records of the methods plus rendering.

The methods (:mod:`multilevel.lmm`, :mod:`multilevel.glmm`) build result records
that hold estimates and what follows from them, and know nothing of text,
figures or reports. The mixin here adds that rendering; :mod:`multilevel.present.lmm_fit` and
:mod:`multilevel.present.glmm_fit` combine it with each method's record (one
module each, so that a linear fit loads nothing of the GLMM code);
:mod:`multilevel.api` asks the methods to build these, so ``multilevel.fit``
returns objects with ``summary()``, plots and ``report()`` while computation
never imports this layer.
"""

from __future__ import annotations

from typing import Any


class FitPresentation:
    """Summary text, JSON-able record, figures, report and model graph of a fit."""

    def summary(self) -> str:
        raise NotImplementedError

    def to_dict(self) -> dict:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.summary()

    def brief(self) -> str:
        """One line: the kind of fit, its formula, the observations, the criterion and status
        (what ``repr()`` shows; ``str()`` and ``summary()`` give the whole summary)."""
        fit: Any = self  # the result class this is mixed into has the fields
        crit = getattr(fit, "reml_criterion", None)
        what = f"REML criterion {crit:.4f}" if crit is not None else f"logLik {fit.loglik:.4f}"
        status = "converged" if fit.converged else "NOT converged"
        if fit.singular:
            status += ", singular"
        return f"<{type(fit).__name__}: {fit.spec.formula}; {fit.nobs} observations; {what}; {status}>"

    def report(self, path: Any, *, title: str | None = None) -> Any:
        """Write a self-contained HTML report (model, graph, tables, plots, warnings)."""
        from .report import fit_report

        return fit_report(self, path, title=title)

    def plot_caterpillar(self, group: str | None = None, *, level: float = 0.95) -> Any:
        """Sorted group effects with conditional-SD intervals (matplotlib figure)."""
        from .plots import caterpillar

        return caterpillar(self, group, level=level)

    def plot_shrinkage(self, group: str | None = None) -> Any:
        """No pooling vs partial pooling of group intercepts (matplotlib figure)."""
        from .plots import shrinkage

        return shrinkage(self, group)

    def plot_residuals(self) -> Any:
        """Residuals vs fitted and normal QQ plots (matplotlib figure)."""
        from .plots import residuals

        return residuals(self)

    def plot_profile(
        self, parm: Any = None, *, level: float = 0.95, points: int = 8, alphamax: float = 0.01
    ) -> Any:
        """lme4's profile zeta plots: one panel per parameter (or those in ``parm``: names,
        positions, ``"theta_"`` or ``"beta_"``), with the ``level`` interval's limits.

        The profile is :meth:`profile` (``points`` per side, out to lme4's
        ``alphamax`` cutoff); a matplotlib figure.

        Examples
        --------
        >>> import multilevel
        >>> m = multilevel.fit("Yield ~ 1 + (1 | Batch)", multilevel.load_dataset("Dyestuff"))
        >>> len(m.plot_profile().axes)
        3
        """
        from .profile_plots import zeta_plot

        prof = self.profile(parm, points=points, alphamax=alphamax)  # type: ignore[attr-defined]
        return zeta_plot(prof, level=level)

    def graph(self) -> Any:
        """The model's directed graphical model (:class:`multilevel.present.graph.ModelGraph`)."""
        from .graph import model_graph

        return model_graph(self.spec, getattr(self, "family", None))  # type: ignore[attr-defined]
