"""Draws of any posterior: summaries, convergence diagnostics and their warnings.

:class:`PosteriorDraws` is what every sampled model shares (the mixed models of
:mod:`multilevel.bayes.posterior`, the nonlinear ones of
:mod:`multilevel.bayes.nonlinear`): a subclass supplies ``draws()``, ``settings``
(``chains``, ``draws``, ``max_tree_depth``) and ``sample_stats`` (``diverging``,
``energy``, ``num_steps``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

RHAT_MAX = 1.01
BFMI_MIN = 0.3
ESS_PER_CHAIN = 100


class PosteriorDraws:
    """Summaries and diagnostics of a posterior's draws (see the module docstring)."""

    settings: dict[str, Any]
    sample_stats: dict[str, np.ndarray]
    _summaries: dict[tuple[bool, float], pd.DataFrame]
    priors: dict[str, Any]  # parameter -> multilevel.bayes.priors.Prior
    messages: tuple[str, ...]

    def draws(self, group_effects: bool = True) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def chains(self) -> int:
        return int(self.settings["chains"])

    @property
    def ndraws(self) -> int:
        return int(self.settings["draws"])

    def draws_frame(self, group_effects: bool = False) -> pd.DataFrame:
        """Draws as a DataFrame: one row per draw, with ``chain`` and ``draw`` columns."""
        d = self.draws(group_effects)
        c, n = self.chains, self.ndraws
        frame = pd.DataFrame({k: v.reshape(c * n) for k, v in d.items()})
        frame.insert(0, "draw", np.tile(np.arange(n), c))
        frame.insert(0, "chain", np.repeat(np.arange(c), n))
        return frame

    # ---- diagnostics and summaries -----------------------------------
    @staticmethod
    def _diagnostics(stack: np.ndarray) -> dict[str, np.ndarray]:
        """Bulk / tail ESS, rank-normalized R-hat and MCSE of the mean for (chains, draws, k)."""
        import arviz as az
        import xarray as xr

        ds = xr.Dataset({"x": (("chain", "draw", "k"), stack)})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return {
                "ess_bulk": az.ess(ds, method="bulk")["x"].to_numpy(),
                "ess_tail": az.ess(ds, method="tail")["x"].to_numpy(),
                "r_hat": az.rhat(ds)["x"].to_numpy(),
                "mcse_mean": az.mcse(ds, method="mean")["x"].to_numpy(),
            }

    def summary(self, group_effects: bool = True, prob: float = 0.95) -> pd.DataFrame:
        """Mean, SD, median, central interval, MCSE, bulk and tail ESS and R-hat per parameter."""
        key = (group_effects, prob)
        if key not in self._summaries:  # the draws never change: compute each table once
            self._summaries[key] = self._summary(group_effects, prob)
        return self._summaries[key].copy()

    def _summary(self, group_effects: bool, prob: float) -> pd.DataFrame:
        d = self.draws(group_effects)
        names = list(d)
        stack = np.stack([d[k] for k in names], axis=-1)
        lo, hi = (1 - prob) / 2, 1 - (1 - prob) / 2
        flat = stack.reshape(-1, stack.shape[-1])
        diag = self._diagnostics(stack)
        return pd.DataFrame(
            {
                "mean": flat.mean(axis=0),
                "sd": flat.std(axis=0, ddof=1) if flat.shape[0] > 1 else np.nan,
                "median": np.median(flat, axis=0),
                f"q{100 * lo:g}": np.quantile(flat, lo, axis=0),
                f"q{100 * hi:g}": np.quantile(flat, hi, axis=0),
                "mcse_mean": diag["mcse_mean"],
                "ess_bulk": diag["ess_bulk"],
                "ess_tail": diag["ess_tail"],
                "r_hat": diag["r_hat"],
            },
            index=pd.Index(names, name="parameter"),
        )

    @property
    def divergences(self) -> int:
        return int(np.sum(self.sample_stats["diverging"]))

    @property
    def bfmi(self) -> np.ndarray:
        """E-BFMI per chain."""
        e = self.sample_stats["energy"]
        num = np.mean(np.diff(e, axis=1) ** 2, axis=1)
        den = np.var(e, axis=1)
        return np.asarray(num / np.where(den > 0, den, np.nan))

    def _check(self) -> tuple[str, ...]:
        """Messages (with advice) for divergences, tree depth, R-hat, ESS and E-BFMI."""
        msgs = []
        n_div = self.divergences
        if n_div:
            msgs.append(
                f"{n_div} divergent transitions after warmup: the draws may be biased. Raise "
                "target_accept (e.g. 0.95), give weakly informative priors on SDs, or simplify the "
                "random-effects structure"
            )
        depth = self.settings["max_tree_depth"]
        steps = self.sample_stats.get("num_steps")
        if steps is not None:
            hit = int(np.sum(steps >= 2**depth - 1))
            if hit:
                msgs.append(
                    f"{hit} transitions reached the maximum tree depth ({depth}): sampling is "
                    "inefficient; rescale predictors or give tighter priors"
                )
        summ = self.summary(group_effects=False)
        rhat = summ["r_hat"].to_numpy()
        if self.chains > 1 and np.nanmax(rhat, initial=0) > RHAT_MAX:
            worst = summ["r_hat"].idxmax()
            msgs.append(
                f"R-hat up to {np.nanmax(rhat):.3f} ({worst}) exceeds {RHAT_MAX}: the chains disagree. "
                "Run more warmup and draws, or check the priors and the model"
            )
        ess = np.minimum(summ["ess_bulk"].to_numpy(), summ["ess_tail"].to_numpy())
        need = ESS_PER_CHAIN * self.chains
        if np.nanmin(ess, initial=np.inf) < need:
            worst = summ.index[int(np.nanargmin(ess))]
            msgs.append(
                f"effective sample size as low as {np.nanmin(ess):.0f} ({worst}), under {need} "
                f"({ESS_PER_CHAIN} per chain): means and intervals are unreliable; run more draws"
            )
        bf = self.bfmi
        low = np.where(bf < BFMI_MIN)[0]
        if low.size:
            msgs.append(
                f"E-BFMI below {BFMI_MIN} in chain(s) {', '.join(map(str, low))}: the sampler explores "
                "the energy poorly (heavy tails or a funnel); reparameterize or give tighter priors"
            )
        return tuple(msgs)

    @staticmethod
    def _prediction_table(dr: np.ndarray, prob: float) -> pd.DataFrame:
        """Mean, SD and central ``prob`` interval per row of prediction draws (draws, rows)."""
        lo, hi = (1 - prob) / 2, 1 - (1 - prob) / 2
        return pd.DataFrame(
            {
                "mean": dr.mean(axis=0),
                "sd": dr.std(axis=0, ddof=1),
                f"q{100 * lo:g}": np.quantile(dr, lo, axis=0),
                f"q{100 * hi:g}": np.quantile(dr, hi, axis=0),
            }
        )

    def prior_table(self) -> pd.DataFrame:
        return pd.DataFrame(
            [(k, p.text, p.source) for k, p in self.priors.items()], columns=["parameter", "prior", "source"]
        ).set_index("parameter")

    def _draws_record(self, group_effects: bool) -> dict[str, Any]:
        """The JSON-ready part every posterior shares: settings, priors, summary table,
        diagnostics and warnings."""
        summ = self.summary(group_effects=group_effects)
        return {
            "settings": {k: (float(v) if isinstance(v, float) else v) for k, v in self.settings.items()},
            "priors": {k: {"prior": p.text, "source": p.source} for k, p in self.priors.items()},
            "summary": {
                name: {col: float(v) for col, v in row.items()} for name, row in summ.to_dict("index").items()
            },
            "divergences": self.divergences,
            "bfmi": [float(b) for b in self.bfmi],
            "messages": list(self.messages),
        }
