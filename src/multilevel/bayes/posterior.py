"""The posterior: draws under brms's names, diagnostics, ArviZ output, predictions.

Names: fixed effects by their coefficient names (``Intercept``, ``basement``),
``sd_county__Intercept``, ``cor_county__Intercept__basement``, ``sigma`` (or
``shape``) and group effects ``r_county[<level>,Intercept]``.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ModelError, SamplingWarning, warn
from .draws import PosteriorDraws
from .priors import Prior
from .program import Structure, sd_and_cor, sd_name


class PosteriorResult(PosteriorDraws):
    """Posterior draws of a mixed model: draws, diagnostics, ArviZ data, predictions.

    :func:`multilevel.sample` returns it rendered as
    :class:`multilevel.present.posterior.Posterior` (summary text, plots, report).
    """

    def __init__(
        self,
        *,
        model: Any,
        structure: Structure,
        priors: dict[str, Prior],
        program: Any,
        data: dict[str, Any],
        values: dict[str, np.ndarray],
        beta: np.ndarray,
        roots: list[np.ndarray],
        group_effects: list[np.ndarray],
        sample_stats: dict[str, np.ndarray],
        fit: Any,
        fit_messages: tuple[str, ...],
        settings: dict[str, Any],
    ) -> None:
        self.model = model
        self.spec = model.spec
        self.structure = structure
        self.priors = priors
        self.program = program
        self.data = data
        self.values = values
        self.beta = beta  # (chains, draws, p)
        self.roots = roots  # per group (chains, draws, q, q)
        self.group_effects = group_effects  # per group (chains, draws, levels, q)
        self.sample_stats = sample_stats
        self.fit = fit
        self.fit_messages = fit_messages
        self.settings = settings
        self._summaries: dict[tuple[bool, float], pd.DataFrame] = {}
        self._modes: dict[bool, dict[str, float]] = {}
        self.messages = self._check()
        for m in self.messages:
            warn(m, SamplingWarning)

    # ---- draws under brms names --------------------------------------
    def _covariance_draws(self) -> list[np.ndarray]:
        return [S @ np.swapaxes(S, -1, -2) for S in self.roots]

    @cached_property
    def _population(self) -> dict[str, np.ndarray]:
        """Every population-level parameter as a (chains, draws) array, in display order."""
        st = self.structure
        out: dict[str, np.ndarray] = {}
        for i, nm in enumerate(st.fixed_names):
            out[nm] = self.beta[..., i]
        out.update(sd_and_cor(st, self._covariance_draws()))
        if st.dispersion:
            out[st.dispersion] = self.values[st.dispersion]
        for li in st.latent:
            c = li.column
            names = (
                [f"meanme_{c}", f"sdme_{c}"]
                if li.kind == "me"
                else [*li.sub_names, f"sigma_{c}", *(li.sub_sd(g) for g, _ in li.sub_groups)]
            )
            out.update({nm: self.values[nm] for nm in names})
        return out

    def _group_names(self) -> list[tuple[str, int, int, int]]:
        out = []
        for k, g in enumerate(self.structure.groups):
            for li, lev in enumerate(g.levels):
                for j, col in enumerate(g.columns):
                    out.append((f"r_{g.name}[{lev},{col}]", k, li, j))
        return out

    def draws(self, group_effects: bool = True) -> dict[str, np.ndarray]:
        """Every parameter's draws as (chains, draws) arrays, keyed by brms name."""
        out = dict(self._population)
        if group_effects:
            for name, k, li, j in self._group_names():
                out[name] = self.group_effects[k][:, :, li, j]
            for lat in self.structure.latent:
                if lat.kind == "mi":
                    rows = self.model.latent_rows[lat.column]
                    for i, row in enumerate(rows):
                        out[f"{lat.site}[{row}]"] = self.values[lat.site][:, :, i]
                    for g, levels in lat.sub_groups:
                        r = self.values[f"r_{g}__{lat.column}"]
                        for i, lev in enumerate(levels):
                            out[f"r_{g}__{lat.column}[{lev},Intercept]"] = r[:, :, i]
        return out

    # ---- ArviZ -------------------------------------------------------
    @cached_property
    def inference_data(self) -> Any:
        """ArviZ ``InferenceData``: posterior (named dims), sample stats, observed data."""
        import arviz as az

        st = self.structure
        post: dict[str, np.ndarray] = {"b": self.beta}
        coords: dict[str, list[str]] = {"coef": list(st.fixed_names)}
        dims: dict[str, list[str]] = {"b": ["coef"]}
        pop = self._population
        for k, g in enumerate(st.groups):
            term_dim = f"{g.name}__term"
            coords[term_dim] = list(g.columns)
            coords[g.name] = list(g.levels)
            post[f"sd_{g.name}"] = np.stack([pop[sd_name(g.name, c)] for c in g.columns], axis=-1)
            dims[f"sd_{g.name}"] = [term_dim]
            pairs = [n for n in pop if n.startswith(f"cor_{g.name}__")]
            if pairs:
                pair_dim = f"{g.name}__pair"
                coords[pair_dim] = [n[len(f"cor_{g.name}__") :] for n in pairs]
                post[f"cor_{g.name}"] = np.stack([pop[n] for n in pairs], axis=-1)
                dims[f"cor_{g.name}"] = [pair_dim]
            post[f"r_{g.name}"] = self.group_effects[k]
            dims[f"r_{g.name}"] = [g.name, term_dim]
        if st.dispersion:
            post[st.dispersion] = pop[st.dispersion]
        stats = {
            "diverging": self.sample_stats["diverging"],
            "energy": self.sample_stats["energy"],
            "n_steps": self.sample_stats["num_steps"],
            "tree_depth": np.floor(np.log2(self.sample_stats["num_steps"] + 1)).astype(int),
            "acceptance_rate": self.sample_stats["accept_prob"],
        }
        n = self.model.design.n
        coords["obs"] = [str(i) for i in range(n)]
        obs = {"y": self.model.design.y}
        ppc = None
        if n * self.chains * self.ndraws <= 50_000_000:
            ppc = {"y": self.predict_draws(kind="response").reshape(self.chains, self.ndraws, n)}
        return az.from_dict(
            posterior=post,
            sample_stats=stats,
            posterior_predictive=ppc,
            observed_data=obs,
            coords=coords,
            dims={**dims, "y": ["obs"]},
            attrs={"formula": self.spec.formula, "family": st.family.name, "inference_library": "multilevel"},
        )

    # ---- prediction --------------------------------------------------
    def _dispersion_draws(self) -> np.ndarray:
        st = self.structure
        if st.dispersion is None:
            return np.ones(self.chains * self.ndraws)
        return np.asarray(st.disp_from(self.values[st.dispersion].reshape(-1)))

    def _group_part(self, k: int, g: Any, new_levels: str, rng: np.random.Generator) -> np.ndarray:
        """``Z_k b_k`` for every draw (draws, rows); unseen levels (codes -1, -2, ...) get
        effects drawn from each draw's covariance (``"sample"``) or 0."""
        S_total = self.chains * self.ndraws
        b = self.group_effects[k].reshape(S_total, -1, g.values.shape[1])
        codes = g.codes
        if codes.size and codes.min() < 0:
            n_new = int(-codes.min())
            if new_levels == "sample":
                roots = self.roots[k].reshape(S_total, b.shape[2], b.shape[2])
                z = rng.standard_normal((S_total, n_new, b.shape[2]))
                new = np.einsum("snj,sij->sni", z, roots)
            else:
                new = np.zeros((S_total, n_new, b.shape[2]))
            codes = np.where(codes < 0, b.shape[1] - 1 - codes, codes)
            b = np.concatenate([b, new], axis=1)
        out = np.empty((S_total, codes.size))
        step = max(1, 4_000_000 // max(codes.size * b.shape[2], 1))  # bound the (draws, rows, q) block
        for s in range(0, S_total, step):
            out[s : s + step] = np.einsum("snj,nj->sn", b[s : s + step, codes], g.values)
        return out

    def predict_draws(
        self,
        newdata: Any = None,
        *,
        kind: str = "mean",
        new_levels: str = "sample",
        re: bool = True,
        seed: int = 0,
    ) -> np.ndarray:
        """Draws (chains x draws, rows) of the prediction for ``newdata`` (default: the data).

        ``kind="linear"`` (the linear predictor), ``"mean"`` (the mean response) or
        ``"response"`` (new observations: the posterior predictive). Levels not in the
        data: ``new_levels="sample"`` draws their effects from the fitted distribution
        in each draw, ``"population"`` sets them to 0, ``"error"`` refuses. ``re=False``
        predicts at the population level.
        """
        from ..model.newdata import design_for

        if kind not in ("linear", "mean", "response"):
            raise ModelError(f"kind must be 'linear', 'mean' or 'response', got {kind!r}")
        if new_levels not in ("sample", "population", "error"):
            raise ModelError(f"new_levels must be 'sample', 'population' or 'error', got {new_levels!r}")
        d = self.model.design if newdata is None else design_for(self.spec, newdata)
        rng = np.random.default_rng(seed)
        S_total = self.chains * self.ndraws
        beta = self.beta.reshape(S_total, -1)
        eta = beta @ d.X.T
        if d.offset is not None:
            eta = eta + d.offset
        if re:
            unknown = [g for g in d.groups if g.codes.size and g.codes.min() < 0]
            if unknown and new_levels == "error":
                raise ModelError(
                    "newdata has levels not seen in the data; pass new_levels='sample' (draw their "
                    "effects) or 'population' (set them to 0)"
                )
            for k, g in enumerate(d.groups):
                eta += self._group_part(k, g, new_levels, rng)
        if kind == "linear":
            return eta
        fam = self.structure.family
        mu = fam.link.inverse(eta)
        if kind == "mean":
            return mu
        w = d.residual_weights if fam.known_se else d.weights
        w = np.ones(d.n) if w is None else w
        disp = self._dispersion_draws()
        if self.spec.parsed.se is not None and d.se is None:
            raise ModelError("kind='response' needs the known SEs: newdata must have the se() column")
        return fam.random(mu, w, disp[:, None], rng)

    def predict(
        self,
        newdata: Any = None,
        *,
        kind: str = "mean",
        new_levels: str = "sample",
        re: bool = True,
        prob: float = 0.95,
        seed: int = 0,
    ) -> pd.DataFrame:
        """Posterior mean, SD and central interval of the prediction per row (see :meth:`predict_draws`)."""
        dr = self.predict_draws(newdata, kind=kind, new_levels=new_levels, re=re, seed=seed)
        return self._prediction_table(dr, prob)

    # ---- modes against expectations ----------------------------------
    def point_estimates(self, prob: float = 0.95, group_effects: bool = False) -> pd.DataFrame:
        """Likelihood estimate, posterior mode (MAP), mean, median and interval side by side.

        The MAP is the mode of the posterior density of the population parameters
        with the random effects integrated out (exactly for Gaussian models, by the
        Laplace approximation otherwise), in the parameterization the priors are
        stated in. ``flag`` marks rows whose MAP or likelihood estimate lies
        outside the central ``prob`` interval.
        """
        from .mode import likelihood_estimates, posterior_mode

        if self.structure.latent:
            raise ModelError(
                "point_estimates() compares the posterior with the likelihood fit, which for a model "
                "with me() or mi() terms is not the same model; use summary()"
            )
        summ = self.summary(group_effects=group_effects, prob=prob)
        lo_col, hi_col = summ.columns[3], summ.columns[4]
        mle = likelihood_estimates(self)
        if group_effects not in self._modes:  # an optimization: once per posterior
            self._modes[group_effects] = posterior_mode(self, group_effects=group_effects)
        mode = self._modes[group_effects]
        method = "REML" if self.structure.marginal and self.fit is not None and self.fit.reml else "ML"
        if self.fit is not None and not self.structure.marginal:
            method = "Laplace" if getattr(self.fit, "nagq", 1) <= 1 else f"AGQ{self.fit.nagq}"
        table = pd.DataFrame(
            {
                method: [mle.get(k, np.nan) for k in summ.index],
                "MAP": [mode.get(k, np.nan) for k in summ.index],
                "mean": summ["mean"],
                "median": summ["median"],
                lo_col: summ[lo_col],
                hi_col: summ[hi_col],
            },
            index=summ.index,
        )
        flags = []
        for k in summ.index:
            lo, hi = table.at[k, lo_col], table.at[k, hi_col]
            f = []
            if not lo <= table.at[k, "MAP"] <= hi:
                f.append("MAP outside interval")
            if not lo <= table.at[k, method] <= hi and np.isfinite(table.at[k, method]):
                f.append(f"{method} outside interval")
            flags.append("; ".join(f))
        table["flag"] = flags
        table.attrs["interval"] = prob
        table.attrs["method"] = method
        return table

    # ---- text --------------------------------------------------------
    def to_dict(self, group_effects: bool = False) -> dict[str, Any]:
        """JSON-ready record: model, settings, priors, summary table, diagnostics, warnings."""
        return {
            "model": "bayes",
            "formula": self.spec.formula,
            "family": self.structure.family.name,
            "link": self.structure.family.link.name,
            "nobs": self.model.design.n,
            "sampler": "NUTS (random effects integrated out)"
            if self.structure.marginal
            else "NUTS (non-centred)",
            **self._draws_record(group_effects),
        }
