"""The posterior of a nonlinear mixed model: draws under brms's names, diagnostics,
ArviZ output, predictions (see :mod:`multilevel.bayes.nonlinear` for the model)."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, ModelError, SamplingWarning, warn
from ..model.data import to_pandas
from ..model.nonlinear import NlmmProblem
from .draws import PosteriorDraws
from .nonlinear import NlStructure


class NonlinearPosterior(PosteriorDraws):
    """NUTS draws of a nonlinear mixed model, as :func:`multilevel.sample` returns them
    for a nonlinear formula (``params=``)."""

    def __init__(
        self,
        problem: NlmmProblem,
        out: dict[str, Any],
        *,
        fit: Any = None,
        fit_messages: tuple[str, ...] = (),
    ) -> None:
        self.problem = problem
        self.structure: NlStructure = out["structure"]
        self.priors = out["priors"]
        self.values = out["values"]  # constrained parameters, (chains, draws, ...)
        self.group_effects = out["effects"]  # per block (chains, draws, levels, q)
        self.sample_stats = out["sample_stats"]
        self.settings = out["settings"]
        self.fit = fit
        self.fit_messages = fit_messages
        self._summaries: dict[tuple[bool, float], pd.DataFrame] = {}
        self.messages = self._check()
        for m in self.messages:
            warn(m, SamplingWarning)

    @property
    def formula(self) -> str:
        return self.problem.mean.formula

    @property
    def nobs(self) -> int:
        return self.problem.n

    # ---- draws under brms names --------------------------------------
    def _cor_draws(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for b in self.structure.blocks:
            for t in b.terms:
                if not t.cor:
                    continue
                L = self.values[t.cor]
                R = L @ np.swapaxes(L, -1, -2)
                base = f"cor_{b.grouping}__"
                for i in range(len(t.columns)):
                    for j in range(i):
                        out[f"{base}{t.columns[j]}__{t.columns[i]}"] = R[..., i, j]
        return out

    @cached_property
    def _population(self) -> dict[str, np.ndarray]:
        st = self.structure
        out = {nm: self.values[nm] for nm in st.beta_names}
        for b in st.blocks:
            out.update({nm: self.values[nm] for nm in b.sd_names()})
        out.update(self._cor_draws())
        if self.structure.gaussian:
            out["sigma"] = self.values["sigma"]
        return out

    def draws(self, group_effects: bool = True) -> dict[str, np.ndarray]:
        """Every parameter's draws as (chains, draws) arrays, keyed by brms name."""
        out = dict(self._population)
        if group_effects:
            for b, r in zip(self.structure.blocks, self.group_effects):
                for m in b.members:
                    for li, lev in enumerate(b.levels):
                        for j, col in enumerate(m.columns):
                            out[f"r_{b.grouping}__{m.param_name}[{lev},{col}]"] = r[:, :, li, m.start + j]
        return out

    # ---- ArviZ -------------------------------------------------------
    @cached_property
    def inference_data(self) -> Any:
        """ArviZ ``InferenceData``: population parameters and group effects, sample stats,
        observed data and the posterior predictive."""
        import arviz as az

        post: dict[str, np.ndarray] = dict(self._population)
        coords: dict[str, list[str]] = {"obs": [str(i) for i in range(self.nobs)]}
        dims: dict[str, list[str]] = {"y": ["obs"]}
        for b, r in zip(self.structure.blocks, self.group_effects):
            name = f"r_{b.grouping}__{'_'.join(m.param_name for m in b.members)}"
            coords[f"{name}__level"] = list(b.levels)
            coords[f"{name}__term"] = list(b.labels)
            post[name] = r
            dims[name] = [f"{name}__level", f"{name}__term"]
        stats = {
            "diverging": self.sample_stats["diverging"],
            "energy": self.sample_stats["energy"],
            "n_steps": self.sample_stats["num_steps"],
            "acceptance_rate": self.sample_stats["accept_prob"],
        }
        ppc = None
        if self.nobs * self.chains * self.ndraws <= 50_000_000:
            ppc = {"y": self.predict_draws(kind="response").reshape(self.chains, self.ndraws, self.nobs)}
        return az.from_dict(
            posterior=post,
            sample_stats=stats,
            posterior_predictive=ppc,
            observed_data={"y": self.problem.y},
            coords=coords,
            dims=dims,
            attrs={
                "formula": self.formula,
                "family": self.structure.family,
                "inference_library": "multilevel",
            },
        )

    # ---- prediction --------------------------------------------------
    def _phi_draws(
        self, newdata: Any, re: bool, new_levels: str, rng: np.random.Generator
    ) -> tuple[Any, ...]:
        """Parameters per draw and row (draws, n, K) and the covariates of the rows."""
        from ..model.newdata import design_for

        pr, st = self.problem, self.structure
        S_total = self.chains * self.ndraws
        beta = np.stack([self.values[nm].reshape(S_total) for nm in st.beta_names], axis=1)
        if newdata is None:
            df, covs = None, pr.covariates
        else:
            df = to_pandas(newdata)
            missing = [c for c in pr.covariates if c not in df.columns]
            if missing:
                raise DataError(
                    f"newdata lacks the covariate column(s) {', '.join(missing)} of the nonlinear formula"
                )
            covs = {c: df[c].to_numpy(dtype=float) for c in pr.covariates}
        n = pr.n if df is None else len(df)
        phi = np.zeros((S_total, n, len(pr.param_names)))
        designs = []
        for k, spec in enumerate(pr.specs):
            design = None if df is None else design_for(spec, df, groups=re and bool(spec.groupings))
            designs.append(design)
            X = pr.X[k] if design is None else design.X
            sl = pr.beta_slices[k]
            phi[:, :, k] = beta[:, sl] @ X[:, sl].T if design is None else beta[:, sl] @ X.T
        if re:
            for gi in range(len(st.blocks)):
                codes, vals = self._group_rows(gi, designs)
                part = self._group_part(gi, codes, vals, rng, new_levels)
                for m in st.blocks[gi].members:
                    phi[:, :, m.param] += part[m.param]
        return phi, covs

    def _group_rows(self, gi: int, designs: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        """Each row's level and the group's effect columns (members side by side)."""
        pr = self.problem
        members = pr.groups[gi]
        parts, codes = [], None
        for b in members:
            blk = pr.blocks[b]
            design = designs[blk.param]
            if design is None:
                codes = blk.codes
                cols = blk.offset + codes[:, None] * blk.q + np.arange(blk.q)[None, :]
                parts.append(np.take_along_axis(pr.Z[blk.param], cols, axis=1))
            else:
                names = [g.name for g in pr.specs[blk.param].groupings]
                g = design.groups[names.index(blk.grouping)]
                codes = g.codes
                parts.append(g.values)
        assert codes is not None
        return codes, np.concatenate(parts, axis=1)

    def _group_part(
        self, gi: int, codes: np.ndarray, vals: np.ndarray, rng: np.random.Generator, new_levels: str
    ) -> dict[int, np.ndarray]:
        """``Z b`` of one covariance group for every draw, per member parameter (draws, rows);
        unseen levels drawn from each draw's covariance, or zero."""
        b = self.structure.blocks[gi]
        S_total = self.chains * self.ndraws
        r = self.group_effects[gi].reshape(S_total, len(b.levels), b.q)
        unseen = codes < 0
        if unseen.any():
            if new_levels == "error":
                raise DataError(
                    f"newdata has {int(unseen.sum())} row(s) with levels of {b.grouping!r} not in the "
                    "data; pass new_levels='sample' (draw their effects) or 'population' (set them to 0)"
                )
            n_new = int(-codes.min())
            new = np.zeros((S_total, n_new, b.q))
            if new_levels == "sample":
                sd = np.stack([self.values[nm].reshape(S_total) for nm in b.sd_names()], axis=1)
                new = rng.standard_normal(new.shape) * sd[:, None, :]  # the terms' correlations aside
                for t in b.terms:
                    if t.cor:
                        q = len(t.columns)
                        sl = slice(t.start, t.start + q)
                        L = self.values[t.cor].reshape(S_total, q, q)
                        z = rng.standard_normal((S_total, n_new, q))
                        new[:, :, sl] = np.einsum("snj,sij->sni", z, L) * sd[:, None, sl]
            r = np.concatenate([r, new], axis=1)
            codes = np.where(unseen, len(b.levels) - 1 - codes, codes)
        rows = r[:, codes] * vals[None]
        return {m.param: rows[:, :, m.start : m.start + len(m.columns)].sum(axis=2) for m in b.members}

    def predict_draws(
        self,
        newdata: Any = None,
        *,
        kind: str = "mean",
        re: bool = True,
        new_levels: str = "sample",
        seed: int = 0,
    ) -> np.ndarray:
        """Draws (chains x draws, rows) of the mean (``kind="mean"``) or of new observations
        (``"response"``); ``re=False`` at the population level; levels not in the data
        drawn from each draw's distribution (``new_levels="sample"``), set to 0
        (``"population"``) or refused (``"error"``)."""
        if kind not in ("mean", "response"):
            raise ModelError(f"kind must be 'mean' or 'response', got {kind!r}")
        if new_levels not in ("sample", "population", "error"):
            raise ModelError(f"new_levels must be 'sample', 'population' or 'error', got {new_levels!r}")
        rng = np.random.default_rng(seed)
        phi, covs = self._phi_draws(newdata, re, new_levels, rng)
        S_total, n, _ = phi.shape
        mu = np.stack([self.problem.mean_numpy(phi[s], covs) for s in range(S_total)])
        st = self.structure
        if not st.gaussian:
            mu = np.asarray(st.family_object().link.inverse(mu))
        if kind == "mean":
            return mu
        if st.gaussian:
            sigma = self.values["sigma"].reshape(S_total, 1)
            return mu + sigma * rng.standard_normal((S_total, n))
        if newdata is not None and self.problem.weights is not None:
            raise ModelError("kind='response' for new data of a binomial model with trials is not available")
        w = self.problem.weights if self.problem.weights is not None else np.ones(n)
        return np.asarray(st.family_object().random(mu, w, 1.0, rng))

    def predict(
        self,
        newdata: Any = None,
        *,
        kind: str = "mean",
        re: bool = True,
        new_levels: str = "sample",
        prob: float = 0.95,
        seed: int = 0,
    ) -> pd.DataFrame:
        """Posterior mean, SD and central interval of the prediction per row."""
        dr = self.predict_draws(newdata, kind=kind, re=re, new_levels=new_levels, seed=seed)
        return self._prediction_table(dr, prob)

    # ---- the likelihood fit beside the posterior -------------------------------
    def likelihood_estimates(self) -> dict[str, float]:
        """The Laplace fit the chains started from, under the posterior's names (empty
        where that fit failed)."""
        fit, st = self.fit, self.structure
        if fit is None:
            return {}
        out = dict(zip(st.beta_names, map(float, fit.estimate.beta)))
        for b, T in zip(st.blocks, fit._templates()):
            S = fit.estimate.sigma**2 * (T @ T.T)
            sd = np.sqrt(np.maximum(np.diag(S), 0.0))
            out.update(zip(b.sd_names(), map(float, sd)))
            for t in b.terms:
                if not t.cor:
                    continue
                for i in range(len(t.columns)):
                    for j in range(i):
                        a, c = t.start + i, t.start + j
                        den = sd[a] * sd[c]
                        name = f"cor_{b.grouping}__{t.columns[j]}__{t.columns[i]}"
                        out[name] = float(S[a, c] / den) if den > 0 else float("nan")
        if st.gaussian:
            out["sigma"] = float(fit.sigma)
        return out

    def point_estimates(self, prob: float = 0.95) -> pd.DataFrame:
        """The likelihood estimate (Laplace, the fit the chains started from) beside the
        posterior mean, median and central interval; ``flag`` marks estimates outside it.
        (The mixed models' table also has the MAP of the marginal posterior; here the
        random effects are sampled, so no such marginal mode is at hand.)"""
        summ = self.summary(group_effects=False, prob=prob)
        lo_col, hi_col = summ.columns[3], summ.columns[4]
        mle = self.likelihood_estimates()
        method = "Laplace" if self.fit is None or self.fit.nagq == 1 else f"AGQ{self.fit.nagq}"
        table = pd.DataFrame(
            {
                method: [mle.get(k, np.nan) for k in summ.index],
                "mean": summ["mean"],
                "median": summ["median"],
                lo_col: summ[lo_col],
                hi_col: summ[hi_col],
            },
            index=summ.index,
        )
        inside = (table[method] >= table[lo_col]) & (table[method] <= table[hi_col])
        table["flag"] = np.where(inside | table[method].isna(), "", f"{method} outside interval")
        table.attrs["interval"] = prob
        table.attrs["method"] = method
        return table

    # ---- text --------------------------------------------------------
    def to_dict(self, group_effects: bool = False) -> dict[str, Any]:
        """JSON-ready record: model, settings, priors, summary table, diagnostics, warnings."""
        return {
            "model": "bayes-nonlinear",
            "formula": self.formula,
            "params": dict(zip(self.problem.param_names, self.problem.param_formulas)),
            "family": self.structure.family,
            "link": self.structure.link,
            "nobs": self.nobs,
            "n_missing": self.problem.n_missing,
            "sampler": "NUTS (non-centred)",
            **self._draws_record(group_effects),
        }
