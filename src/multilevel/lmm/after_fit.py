"""Inference after an LMM fit: F tests (Satterthwaite, Kenward-Roger) and anova tables.

:class:`LmmInferenceMixin` gives :class:`~multilevel.lmm.results.LmmResult` its
``test``, ``anova``, ``krmodcomp``, ``vcov_kr`` and ``emmeans``; the computations live
in :mod:`~multilevel.lmm.satterthwaite`, :mod:`~multilevel.lmm.kenward_roger`,
:mod:`~multilevel.model.hypotheses` and :mod:`~multilevel.model.emmeans`.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import ModelError
from ..linalg.threads import blas_threads
from ..model.emmeans import Emmeans, emmeans
from ..model.hypotheses import contrast_matrix, term_hypotheses
from .ftest import FTest, ddf_method
from .kenward_roger import KrAdjustment, kr_adjustment, kr_ddf, kr_modcomp, kr_test, row_basis
from .satterthwaite import VarparDerivatives, contrast_df, satterthwaite_test, varpar_derivatives

if TYPE_CHECKING:
    from ..model.design import Design
    from ..model.spec import ModelSpec
    from .objective import Factor, LmmObjective
    from .solution import Solution

HEADINGS = {"satterthwaite": "Satterthwaite's", "kenward-roger": "Kenward-Roger's"}


class LmmInferenceMixin:
    spec: ModelSpec
    design: Design
    objective: LmmObjective
    factor: Factor
    solution: Solution
    reml: bool

    @property
    def theta(self) -> np.ndarray:
        raise NotImplementedError

    @property
    def sigma(self) -> float:
        raise NotImplementedError

    @cached_property
    def _varpar_derivatives(self) -> VarparDerivatives:
        with blas_threads(self.objective.layout.m):
            return varpar_derivatives(self.objective, self.theta, self.sigma)

    @cached_property
    def _kr(self) -> KrAdjustment:
        with blas_threads(self.objective.layout.m):
            return kr_adjustment(self.objective, self.factor, self.sigma)

    @property
    def vcov_kr(self) -> pd.DataFrame:
        """Kenward-Roger's adjusted covariance of the fixed effects (pbkrtest's ``vcovAdj``; REML fits)."""
        names = list(self.spec.fixed_names)
        return pd.DataFrame(self._kr.vcov_adjusted, index=names, columns=names)

    def test(self, L: Any, *, ddf: str = "satterthwaite", rhs: Any = 0.0) -> FTest:
        """F test of ``L beta = rhs`` with Satterthwaite's or Kenward-Roger's denominator df.

        Parameters
        ----------
        L:
            Contrast rows over the fixed effects: an array with one column per coefficient,
            a DataFrame / Series / dict keyed by coefficient names, or a term name (all its
            coefficients zero).
        ddf:
            ``"satterthwaite"`` (lmerTest's default) or ``"kenward-roger"`` (REML fits).
        rhs:
            The hypothesised value(s) of ``L beta``.

        Examples
        --------
        >>> import multilevel
        >>> m = multilevel.fit("Weight ~ Time + Cu + (1 | Pig)", multilevel.load_dataset("dietox"))
        >>> t = m.test([[0, 0, 1, 0], [0, 0, 0, 1]], ddf="kenward-roger")
        >>> t.num_df, round(t.den_df, 2), round(t.F, 4)
        (2, 69.0, 1.0464)
        """
        method = ddf_method(ddf)
        A = contrast_matrix(self.spec, L)
        beta = self.solution.beta
        try:
            rhs_v = np.broadcast_to(np.asarray(rhs, dtype=float), (A.shape[0],))
        except ValueError:
            n = A.shape[0]
            raise ModelError(f"rhs must be one value or one per row of L ({n}), got {rhs!r}") from None
        if method == "kenward-roger":
            return kr_test(A, beta, self._kr, self.sigma, rhs_v)
        return satterthwaite_test(A, beta, self._varpar_derivatives, self.sigma, rhs_v)

    def anova(self, *, ddf: str = "satterthwaite", type: int = 3) -> pd.DataFrame:
        """lmerTest's ``anova(m, ddf = ...)``: an F test per fixed-effect term.

        Type III (default; type I when the model has a single term, as lmerTest) for
        treatment-coded factors; the columns are ``Sum Sq``, ``Mean Sq``, ``NumDF``,
        ``DenDF``, ``F value`` and ``Pr(>F)``, one row per term, and ``attrs["heading"]``
        names the table.

        Examples
        --------
        >>> import multilevel
        >>> m = multilevel.fit("Weight ~ Time + Cu + (1 | Pig)", multilevel.load_dataset("dietox"))
        >>> tab = m.anova(ddf="kenward-roger")
        >>> tab.loc["Cu", ["NumDF", "DenDF"]].round(2).tolist()
        [2.0, 69.0]
        """
        method = ddf_method(ddf)
        hyps = term_hypotheses(self.spec, self.design.X, self.design.frame, type=type)
        rows = {name: self.test(L, ddf=method).as_row() for name, L in hyps.items()}
        table = pd.DataFrame.from_dict(rows, orient="index")
        kind = "III" if type == 3 and len(hyps) > 1 else "I"
        table.attrs["heading"] = f"Type {kind} Analysis of Variance Table with {HEADINGS[method]} method"
        return table

    def krmodcomp(self, other: Any) -> FTest:
        """Kenward-Roger F test against a nested model of the same data (pbkrtest's ``KRmodcomp``).

        Examples
        --------
        >>> import multilevel
        >>> d = multilevel.load_dataset("dietox")
        >>> big = multilevel.fit("Weight ~ Time + Cu + (1 | Pig)", d)
        >>> round(big.krmodcomp(multilevel.fit("Weight ~ Time + (1 | Pig)", d)).den_df, 2)
        69.0
        """
        return kr_modcomp(self, other)

    def emmeans(
        self,
        specs: Any,
        *,
        by: Any = None,
        at: dict[str, Any] | None = None,
        weights: str = "equal",
        ddf: str | None = None,
        level: float = 0.95,
    ) -> Emmeans:
        """Estimated marginal means on the reference grid (R's ``emmeans(fit, specs)``).

        Parameters
        ----------
        specs:
            The factor(s) to estimate means for: ``"recipe"``, ``["Cu", "Evit"]`` or
            ``"~ recipe | temperature"``.
        by:
            Factor(s) to give the means within (``"temperature"``).
        at:
            Values for the grid: ``{"Time": [4, 8]}`` (numeric predictors are at their
            means otherwise), or a subset of a factor's levels.
        weights:
            ``"equal"`` (default) or ``"proportional"`` averaging over the other factors.
        ddf:
            ``"kenward-roger"`` (emmeans's default: the adjusted covariance and pbkrtest's
            df; the default for REML fits) or ``"satterthwaite"`` (the default for ML fits).
        level:
            Confidence level of the limits.

        Examples
        --------
        >>> import multilevel
        >>> m = multilevel.fit("angle ~ recipe * temperature + (1 | recipe:replicate)",
        ...                    multilevel.load_dataset("cake"))
        >>> e = m.emmeans("recipe")
        >>> e.table.round(3).to_dict("records")[0]
        {'recipe': 'A', 'emmean': 33.122, 'SE': 1.737, 'df': 42.0, 'lower.CL': 29.617, 'upper.CL': 36.627}
        """
        method = ddf_method(ddf if ddf is not None else ("kenward-roger" if self.reml else "satterthwaite"))
        if method == "kenward-roger":
            V = self._kr.vcov_adjusted
        else:
            V = self._varpar_derivatives.vcov
        frame = self._frame()
        return emmeans(
            self.spec,
            frame,
            self.solution.beta,
            V,
            lambda K: self.contrast_dfs(K, method),
            specs,
            by=by,
            at=at,
            weights=weights,
            level=level,
            method=method,
        )

    def _frame(self) -> pd.DataFrame:
        if self.design.frame is None:
            raise ModelError("this fit has no record of its rows' predictor columns (design.frame)")
        return self.design.frame

    def contrast_dfs(self, L: np.ndarray, ddf: str) -> np.ndarray:
        """The denominator df of each row of ``L`` as a single contrast."""
        method = ddf_method(ddf)
        if method == "kenward-roger":
            return np.array([kr_ddf(row_basis(row[None]), self._kr).ddf for row in L])
        d = self._varpar_derivatives
        return np.array([contrast_df(row, d) for row in L])
