"""The result of a GEE fit, and the rule that picks its standard errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..family import Family
from ..model.design import Design
from ..model.spec import ModelSpec
from .correlation import WorkingCorrelation
from .estimate import GeeEstimate
from .variance import METHODS

MANY_CLUSTERS = 50
EQUAL_SIZES_CV = 0.3


def choose_se(se: str, sizes: np.ndarray, p: int) -> tuple[str, str]:
    """The SE method and the reason for it.

    ``auto``: with 50 or more clusters the robust sandwich is adequate; with fewer,
    Kauermann-Carroll when cluster sizes are roughly equal (CV <= 0.3; Li & Redden
    2015 found it holds the size at 10 clusters with a t reference), else
    Mancl-DeRouen, which keeps its size when sizes vary a lot (Li & Redden 2015).
    ``benchmarks/gee_size.py`` confirms both here: at 10 clusters KC-t rejects
    4.8-4.9% of true nulls with equal sizes, but 8-9% with CV 0.6, where MD-t
    rejects 3.6-5.0% (Fay-Graubard 6-7%). Corrected SEs use t on K - p df.
    """
    K = sizes.size
    if se != "auto":
        if se not in METHODS:
            raise ValueError(f"se must be 'auto' or one of {', '.join(METHODS)}")
        return se, "chosen by the user"
    cv = float(np.std(sizes) / np.mean(sizes))
    if K >= MANY_CLUSTERS:
        return "robust", f"{K} clusters: the robust (sandwich) SE is adequate with many clusters"
    if cv <= EQUAL_SIZES_CV:
        return "kc", (
            f"{K} clusters (< {MANY_CLUSTERS}) of similar size (CV {cv:.2f}): Kauermann-Carroll with "
            f"t on K - p = {K - p} df"
        )
    return "md", (
        f"{K} clusters (< {MANY_CLUSTERS}) of unequal size (CV {cv:.2f}): Mancl-DeRouen with t on "
        f"K - p = {K - p} df"
    )


@dataclass(frozen=True)
class GeeResult:
    """A fitted GEE: coefficients, working correlation, scale, and SEs by every method.

    :func:`multilevel.gee` returns it rendered as :class:`multilevel.present.gee.GeeFit`.
    """

    formula: str
    family: Family
    corr: WorkingCorrelation
    names: tuple[str, ...]
    spec: ModelSpec = field(repr=False)  # what new data needs (columns, levels, offset)
    design: Design = field(repr=False)  # the rows used, in the data's order
    estimate: GeeEstimate = field(repr=False)
    covs: dict[str, np.ndarray] = field(repr=False)
    se_method: str
    se_reason: str
    cluster_sizes: np.ndarray = field(repr=False)
    groups: str
    y: np.ndarray = field(repr=False)
    w: np.ndarray = field(repr=False)
    n_missing: int = 0
    qic: float = float("nan")

    @property
    def coef(self) -> pd.Series:
        return pd.Series(self.estimate.beta, index=list(self.names), name="Estimate")

    @property
    def se_all(self) -> pd.DataFrame:
        """SEs by every method: model, robust, md, kc, fg, jackknife."""
        return pd.DataFrame(
            {m: np.sqrt(np.maximum(np.diag(self.covs[m]), 0)) for m in METHODS}, index=list(self.names)
        )

    @property
    def se(self) -> pd.Series:
        return self.se_all[self.se_method].rename("Std. Error")

    @property
    def vcov(self) -> pd.DataFrame:
        return pd.DataFrame(self.covs[self.se_method], index=list(self.names), columns=list(self.names))

    @property
    def alpha(self) -> np.ndarray:
        return self.estimate.alpha

    @property
    def scale(self) -> float:
        return self.estimate.phi

    @property
    def n_clusters(self) -> int:
        return int(self.cluster_sizes.size)

    @property
    def nobs(self) -> int:
        return int(self.y.size)

    @property
    def df(self) -> float:
        """Reference df: K - p for the corrected SEs, infinite (z) for model/robust."""
        if self.se_method in ("model", "robust"):
            return float("inf")
        return float(self.n_clusters - len(self.names))

    @property
    def coef_table(self) -> pd.DataFrame:
        est, se = self.coef, self.se
        stat = est / se
        df = self.df
        if np.isinf(df):
            p = 2 * stats.norm.sf(np.abs(stat.to_numpy()))
            q = stats.norm.ppf(0.975)
        else:
            p = 2 * stats.t.sf(np.abs(stat.to_numpy()), df)
            q = stats.t.ppf(0.975, df)
        return pd.DataFrame(
            {
                "Estimate": est,
                "Std. Error": se,
                "z value" if np.isinf(df) else "t value": stat,
                "Pr(>|z|)" if np.isinf(df) else "Pr(>|t|)": p,
                "2.5 %": est - q * se,
                "97.5 %": est + q * se,
            }
        )

    @property
    def working_correlation(self) -> np.ndarray:
        """The working correlation of the largest cluster."""
        n = int(self.cluster_sizes.max())
        return (
            self.corr.matrix(np.arange(n))
            if self.corr.name != "unstructured"
            else self.corr.matrix(
                np.arange(self.corr.n_times)  # type: ignore[attr-defined]
            )
        )

    @property
    def fixed_spec(self) -> Any:
        """formulaic's spec of the fixed-effect design."""
        return self.spec.fixed_spec

    def predict(self, newdata: Any = None, *, type: str = "response", offset: Any = None) -> np.ndarray:
        """Marginal means (``type="response"``) or linear predictors (``"link"``).

        Without ``newdata``: the rows used in the fit, in their order in the data.
        ``newdata`` is encoded as the fitted data were (fitted levels matched by name,
        an unseen level is a ``DataError``), supplies the fitted ``offset=`` column and
        the formula's ``offset()`` terms, and needs no cluster column; rows with
        missing values get NaN. ``offset`` replaces the fitted ``offset=`` source for
        ``newdata`` (required when it was an array).
        """
        if type not in ("link", "response"):
            raise ValueError("type must be 'link' or 'response'")
        if newdata is None:
            if offset is not None:
                raise ValueError("offset= goes with newdata; the data used already have their offset")
            d = self.design
        else:
            from ..model.newdata import design_for

            d = design_for(self.spec, newdata, offset=offset, groups=False, na_action="pass")
        eta = d.X @ self.estimate.beta + (d.offset if d.offset is not None else 0.0)
        out = np.asarray(eta if type == "link" else self.family.link.inverse(eta))
        return out if newdata is None else d.to_input_rows(out)
