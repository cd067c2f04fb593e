"""The linear mixed model fit as users see it: :class:`LmmResult` plus rendering."""

from __future__ import annotations

from ..lmm.results import LmmResult
from .fits import FitPresentation


class LmmFit(LmmResult, FitPresentation):
    """A fitted linear mixed model (REML or ML), as :func:`multilevel.fit` returns it.

    Attributes mirror lme4 + lmerTest (see :class:`multilevel.lmm.results.LmmResult`).

    Examples
    --------
    >>> import multilevel
    >>> m = multilevel.fit("Reaction ~ Days + (Days | Subject)", multilevel.load_dataset("sleepstudy"))
    >>> print(m.summary().splitlines()[0])
    Linear mixed model fit by REML. t-tests use Satterthwaite's method
    """

    def __repr__(self) -> str:
        return self.brief()

    def summary(self) -> str:
        """The lme4 + lmerTest summary as text."""
        from .lmm_summary import format_summary

        return format_summary(self)

    def to_dict(self) -> dict:
        """Plain JSON-able data: everything ``summary()`` shows and more."""
        from .lmm_summary import fit_to_dict

        return fit_to_dict(self)
