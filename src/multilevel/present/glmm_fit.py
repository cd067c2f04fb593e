"""The GLMM fit as users see it: :class:`GlmmResult` plus rendering."""

from __future__ import annotations

from ..glmm.results import GlmmResult
from .fits import FitPresentation


class GlmmFit(GlmmResult, FitPresentation):
    """A fitted GLMM (Laplace or adaptive quadrature), as :func:`multilevel.fit` returns it."""

    def __repr__(self) -> str:
        return self.brief()

    def summary(self) -> str:
        """The lme4 ``glmer`` summary as text."""
        from .glmm_summary import format_glmm_summary

        return format_glmm_summary(self)

    def to_dict(self) -> dict:
        """Plain JSON-able data: everything ``summary()`` shows and more."""
        from .glmm_summary import glmm_to_dict

        return glmm_to_dict(self)
