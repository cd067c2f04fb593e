"""The record of an indirect-inference estimate and its text form."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class IndirectResult:
    """Parameters of a simulator estimated by matching an auxiliary model.

    Attributes
    ----------
    estimate : the parameters, by name.
    vcov : their covariance (the Gourieroux-Monfort-Renault sandwich, with the
        ``1 + 1/n_sim`` factor for the simulation noise).
    observed, simulated : the auxiliary statistics on the observed data, and their
        mean over the ``n_sim`` simulations at the estimate.
    omega : the covariance of the auxiliary statistics at the estimate (from
        ``n_omega`` independent simulations).
    J, J_df, J_p : Hansen's test of the overidentifying restrictions (df = statistics
        - parameters; NaN p when the model is just identified).
    converged, message, iterations : the minimizer's verdict.
    n_sim, n_omega, seed : the simulations (common random numbers: stream ``(seed, s)``).
    auxiliary_fits : auxiliary fits run in all; dropped : replicates left out at the
        estimate because an auxiliary fit failed on them.
    """

    estimate: pd.Series
    vcov: pd.DataFrame
    observed: pd.Series
    simulated: pd.Series
    omega: pd.DataFrame
    J: float
    J_df: int
    J_p: float
    converged: bool
    message: str
    iterations: int
    n_sim: int
    n_omega: int
    seed: int
    auxiliary_fits: int
    dropped: int
    seconds: float
    auxiliary: str = "auxiliary"

    @property
    def se(self) -> pd.Series:
        return pd.Series(np.sqrt(np.maximum(np.diag(self.vcov.to_numpy()), 0.0)), index=self.estimate.index)

    def confint(self, level: float = 0.95) -> pd.DataFrame:
        """Wald intervals from the sandwich covariance."""
        from scipy.stats import norm

        z = float(norm.ppf(0.5 + level / 2))
        lo, hi = self.estimate - z * self.se, self.estimate + z * self.se
        pct = f"{100 * (1 - level) / 2:g} %", f"{100 * (1 + level) / 2:g} %"
        return pd.DataFrame({pct[0]: lo, pct[1]: hi})

    def table(self) -> pd.DataFrame:
        ci = self.confint()
        return pd.DataFrame({"Estimate": self.estimate, "Std. Error": self.se}).join(ci)

    def moments(self) -> pd.DataFrame:
        """Each auxiliary statistic: observed, simulated mean at the estimate, and their
        difference in units of its simulation SD (with the ``1 + 1/S`` factor)."""
        sd = np.sqrt(np.diag(self.omega.to_numpy()) * (1 + 1 / self.n_sim))
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (self.observed - self.simulated).to_numpy() / sd
        return pd.DataFrame({"observed": self.observed, "simulated": self.simulated, "z": z})

    def __str__(self) -> str:
        head = (
            f"Indirect inference ({self.auxiliary}); {self.n_sim} simulations per evaluation "
            f"(common random numbers, seed {self.seed}), covariance from {self.n_omega}"
        )
        verdict = "converged" if self.converged else f"NOT converged: {self.message}"
        lines = [
            head,
            f"{self.iterations} Gauss-Newton iterations, {self.auxiliary_fits} auxiliary fits; {verdict}",
        ]
        lines += ["", "Parameters:", self.table().to_string(float_format=lambda v: f"{v:.6g}")]
        lines += ["", "Auxiliary statistics:", self.moments().to_string(float_format=lambda v: f"{v:.5g}")]
        if self.J_df > 0:
            lines += [
                "",
                f"J test of the overidentifying restrictions: J = {self.J:.4g} on {self.J_df} df, "
                f"p = {self.J_p:.4g}",
            ]
        else:
            lines += ["", "Just identified (as many statistics as parameters): no J test"]
        if self.dropped:
            lines.append(f"{self.dropped} simulation(s) left out where the auxiliary fit failed")
        return "\n".join(lines)

    def __repr__(self) -> str:
        p = ", ".join(f"{k}={v:.4g}" for k, v in self.estimate.items())
        tail = "converged" if self.converged else "not converged"
        return f"<IndirectResult: {p}; J={self.J:.3g} on {self.J_df} df; {tail}>"

    def summary(self) -> str:
        return str(self)
