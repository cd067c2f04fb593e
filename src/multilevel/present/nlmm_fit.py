"""The nonlinear mixed-model fit as users see it: :class:`NlmmResult` plus rendering."""

from __future__ import annotations

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
