"""``nlfit()``: nonlinear mixed models, the stages of :mod:`multilevel.nlmm` chained."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def nlfit(
    formula: str,
    data: Any,
    params: Mapping[str, str] | None = None,
    *,
    start: Mapping[str, Any] | None = None,
    nagq: int = 1,
    na_action: str = "omit",
    maxeval: int = 20_000,
    family: Any = "gaussian",
    link: Any = None,
    weights: Any = None,
) -> Any:
    """Fit a nonlinear mixed model by maximum likelihood (Laplace or adaptive quadrature).

    Parameters
    ----------
    formula:
        ``"response ~ expression"``: the mean as an expression of parameters and
        covariates (numbers, names, ``+ - * / **`` or ``^``, ``exp``, ``log``, ``sqrt``,
        ...), or a self-starting model: ``SSlogis(input, Asym, xmid, scal)``,
        ``SSasymp(input, Asym, R0, lrc)``, ``SSmicmen(input, Vm, K)``,
        ``SSfol(Dose, input, lKe, lKa, lCl)``, ``SSbiexp(input, A1, lrc1, A2, lrc2)``.
        The text is parsed, never evaluated as Python.
    data:
        pandas / polars DataFrame, pyarrow Table or dict of arrays.
    params:
        Each parameter's mixed-model formula (right-hand side), e.g.
        ``{"Asym": "1 + Treatment + (1 | Tree)", "xmid": "1"}``. Random effects of
        different parameters are independent unless their terms share an ID, as in
        brms: ``(1 | p | Tree)`` in two parameters' formulas gives their effects by
        tree one covariance matrix (nlme's ``pdSymm``); within one term they are
        correlated as in lme4 (``(1 + x | g)``; ``(1 + x || g)`` for uncorrelated). A
        self-starting model's parameters default to ``"1"``.
    start:
        Starting values per parameter (its intercept, or one value per coefficient);
        optional for self-starting models (R's ``getInitial``). Refined by nonlinear
        least squares of the population model before the mixed fit.
    nagq:
        1 (default): the Laplace approximation (lme4's ``nlmer``). More: adaptive
        Gauss-Hermite quadrature with ``nagq`` nodes per dimension, one grouping
        factor; its log-likelihood is the marginal one to quadrature accuracy.
    na_action:
        ``"omit"`` drops rows with missing values (counted in a warning and in
        ``n_missing``); ``"raise"`` refuses them.
    family, link, weights:
        ``"binomial"`` (0/1, or proportions with the trials in ``weights=``) or
        ``"poisson"`` responses: the expression is then the linear predictor, on the
        link's scale (default logit and log, as brms' nonlinear formulas), fitted by
        the Laplace approximation at the modes (or quadrature, ``nagq > 1``);
        ``start=`` is required (on that scale).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> age = np.tile([100.0, 300, 500, 700, 900, 1100, 1300], 6)
    >>> tree = np.repeat(np.arange(6), 7)
    >>> asym = 200 + rng.normal(0, 30, 6)[tree]
    >>> y = asym / (1 + np.exp((700 - age) / 350)) + rng.normal(0, 5, age.size)
    >>> d = pd.DataFrame({"y": y, "age": age, "tree": tree})
    >>> m = nlfit("y ~ SSlogis(age, Asym, xmid, scal)", d, {"Asym": "1 + (1 | tree)"})
    >>> m.converged, list(m.fixef.index)
    (True, ['Asym', 'xmid', 'scal'])
    """
    from ..model.nonlinear import build_problem
    from ..nlmm.fit import fit_problem
    from ..present.nlmm_fit import NlmmFit

    problem = build_problem(
        formula, data, params, na_action=na_action, family=family, link=link, weights=weights
    )
    estimate, info = fit_problem(problem, nagq=nagq, start=start, maxeval=maxeval)
    return NlmmFit(problem, estimate, nagq, info)


def sample_nonlinear(
    formula: str,
    data: Any,
    params: Mapping[str, str] | None,
    *,
    start: Mapping[str, Any] | None,
    priors: dict[str, Any] | None,
    control: Any,
    na_action: str,
    family: Any = "gaussian",
    link: Any = None,
    weights: Any = None,
) -> Any:
    """:func:`multilevel.sample` for a nonlinear formula: the chains start near the
    Laplace fit of :func:`nlfit` (its warnings kept on the result, not shown)."""
    import warnings

    from ..bayes.nonlinear import sample_problem
    from ..model.nonlinear import build_problem
    from ..nlmm.fit import fit_problem
    from ..present.nlmm_fit import NlmmFit
    from ..present.nlmm_posterior import NlPosterior

    problem = build_problem(
        formula, data, params, na_action=na_action, family=family, link=link, weights=weights
    )
    fitted: dict[str, Any] = {"fit": None, "messages": ()}

    def estimate() -> dict[str, Any] | None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                est, info = fit_problem(problem, nagq=1, start=start, maxeval=20_000)
                fit = NlmmFit(problem, est, 1, info)
            except Exception as exc:  # the sampler does not need it; say why it is missing
                fitted["messages"] = (f"likelihood fit failed ({exc}); chains start from NumPyro's default",)
                return None
        fitted["fit"], fitted["messages"] = fit, tuple(str(w.message) for w in caught)
        se = np.sqrt(np.maximum(np.diag(est.vcov), 0.0)) if est.vcov.size else np.zeros(0)
        return {"beta": est.beta, "se": se, "theta": est.theta, "sigma": est.sigma, "b": est.b}

    out = sample_problem(problem, estimate=estimate, priors=priors, control=control)
    return NlPosterior(problem, out, fit=fitted["fit"], fit_messages=fitted["messages"])
