"""The likelihood fit of a model with ``me()`` terms as users see it
(:mod:`multilevel.lmm.measurement` fits it)."""

from __future__ import annotations

import math
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..model.fitted import InformationCriteria


class MeasurementFit(InformationCriteria):
    """ML fit of a linear mixed model whose ``me(x, sdx)`` covariates are integrated out.

    ``fixef`` / ``coef_table()`` (the ``me()`` slopes under their terms' names),
    ``covariances`` and ``varcorr()``, ``sigma``, ``latent_table()`` (the true
    covariates' means and SDs), ``loglik``, ``aic``, ``bic``; ``naive`` is the ML fit
    with the covariates as observed and ``attenuation()`` sets the two side by side.
    """

    def __init__(self, model: Any, estimate: Any) -> None:
        self.model = model
        self.spec = model.spec
        self.estimate = estimate
        self.naive = estimate.naive
        self.messages = estimate.messages

    # ---- numbers -----------------------------------------------------
    @property
    def formula(self) -> str:
        return str(self.model.formula)

    @property
    def nobs(self) -> int:
        return int(self.model.design.n)

    @property
    def loglik(self) -> float:
        return float(self.estimate.loglik)

    @property
    def n_params(self) -> int:
        return int(self.estimate.n_params)

    @property
    def converged(self) -> bool:
        return bool(self.estimate.converged)

    @property
    def sigma(self) -> float:
        return float(self.estimate.sigma)

    @property
    def method(self) -> str:
        return "ML, latent covariates integrated out"

    @cached_property
    def fixef(self) -> pd.Series:
        p = self.estimate.beta.size
        return pd.Series(self.estimate.beta, index=list(self.estimate.names[:p]), name="Estimate")

    @cached_property
    def vcov(self) -> pd.DataFrame:
        p = self.estimate.beta.size
        names = list(self.estimate.names[:p])
        return pd.DataFrame(self.estimate.vcov[:p, :p], index=names, columns=names)

    @property
    def fixef_se(self) -> pd.Series:
        return pd.Series(np.sqrt(np.diag(self.vcov.to_numpy())), index=self.fixef.index, name="Std. Error")

    def coef_table(self) -> pd.DataFrame:
        """Estimates, SEs (inverse Hessian), Wald z and two-sided p-values."""
        est, se = self.fixef, self.fixef_se
        z = est / se
        return pd.DataFrame(
            {"Estimate": est, "Std. Error": se, "z value": z, "Pr(>|z|)": 2 * stats.norm.sf(np.abs(z))}
        )

    @cached_property
    def covariances(self) -> dict[str, pd.DataFrame]:
        out = {}
        for g, T in zip(self.spec.groupings, self.estimate.templates):
            out[g.name] = pd.DataFrame(T @ T.T, index=list(g.columns), columns=list(g.columns))
        return out

    def varcorr(self) -> pd.DataFrame:
        rows = []
        for name, C in self.covariances.items():
            var = np.diag(C.to_numpy())
            for i, col in enumerate(C.index):
                rows.append((name, col, float(var[i]), math.sqrt(max(float(var[i]), 0.0))))
        rows.append(("Residual", "", self.sigma**2, self.sigma))
        return pd.DataFrame(rows, columns=["group", "term", "variance", "sd"])

    def latent_table(self) -> pd.DataFrame:
        """Each latent covariate's mean and SD with SEs (the SD's by the delta method)."""
        e = self.estimate
        names = list(e.names)
        rows = []
        for k, li in enumerate(self.model.latent_info):
            i = names.index(f"meanme_{li.column}")
            j = names.index(f"log(sdme_{li.column})")
            se_mu = math.sqrt(max(e.vcov[i, i], 0.0))
            se_tau = float(e.tau[k]) * math.sqrt(max(e.vcov[j, j], 0.0))
            rows.append((f"meanme_{li.column}", float(e.mu[k]), se_mu))
            rows.append((f"sdme_{li.column}", float(e.tau[k]), se_tau))
        return pd.DataFrame(rows, columns=["parameter", "Estimate", "Std. Error"]).set_index("parameter")

    def reliability(self) -> pd.Series:
        """Mean reliability ``tau^2 / (tau^2 + sdx^2)`` of each me() covariate."""
        out = {}
        for k, (li, a) in enumerate(zip(self.model.latent_info, self.model.latent_data)):
            t2 = float(self.estimate.tau[k]) ** 2
            out[li.label] = float(np.mean(t2 / (t2 + np.asarray(a["sd"]) ** 2)))
        return pd.Series(out, name="reliability")

    def attenuation(self) -> pd.DataFrame:
        """The naive slope (covariate as observed) beside the corrected one."""
        rel = self.reliability()
        rows = []
        for li in self.model.latent_info:
            naive = float(self.naive.fixef.iloc[li.index])
            corrected = float(self.fixef.iloc[li.index])
            rows.append((li.label, naive, corrected, naive / corrected, rel[li.label]))
        return pd.DataFrame(
            rows, columns=["term", "naive", "corrected", "naive / corrected", "mean reliability"]
        ).set_index("term")

    # ---- text --------------------------------------------------------
    def summary(self) -> str:
        e = self.estimate
        lines = [
            "Linear mixed model with measurement error, fit by ML (latent covariates integrated out)",
            f" Formula: {self.formula}",
            f" logLik {self.loglik:.4f}   AIC {self.aic:.2f}   BIC {self.bic:.2f}   "
            f"({self.nobs} observations, {self.n_params} parameters)",
            "",
            "Random effects:",
            self.varcorr().to_string(index=False),
            "",
            "Fixed effects:",
            self.coef_table().to_string(float_format=lambda v: f"{v:.6g}"),
            "",
            "Latent covariates (true values ~ N(meanme, sdme)):",
            self.latent_table().to_string(float_format=lambda v: f"{v:.6g}"),
            "",
            "Attenuation removed (naive: the ML fit with the covariates as observed):",
            self.attenuation().to_string(float_format=lambda v: f"{v:.4f}"),
            "",
            f"optimizer: BFGS on the exact gradient, {e.n_evals} evaluations, {e.seconds:.2f} s; "
            f"{'converged' if self.converged else 'NOT converged'} (max |gradient| {e.gradient_max:.2g})",
        ]
        lines += [f"warning: {m}" for m in self.messages]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        status = "converged" if self.converged else "NOT converged"
        return (
            f"<MeasurementFit: {self.formula}; {self.nobs} observations; logLik {self.loglik:.4f}; {status}>"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": "lmm-measurement-error",
            "formula": self.formula,
            "method": self.method,
            "nobs": self.nobs,
            "loglik": self.loglik,
            "aic": self.aic,
            "bic": self.bic,
            "converged": self.converged,
            "fixef": {k: float(v) for k, v in self.fixef.items()},
            "fixef_se": {k: float(v) for k, v in self.fixef_se.items()},
            "sigma": self.sigma,
            "varcorr": self.varcorr().to_dict("records"),
            "latent": {k: float(v) for k, v in self.latent_table()["Estimate"].items()},
            "attenuation": self.attenuation().reset_index().to_dict("records"),
            "messages": list(self.messages),
        }
