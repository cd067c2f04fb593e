"""``sample()``: the posterior of a model a formula describes, routed to its sampler: the
mixed models' (:mod:`multilevel.bayes.sampler`), with latent covariates (``me()``,
``mi()``), or the nonlinear models' (:mod:`multilevel.bayes.nonlinear`)."""

from __future__ import annotations

import re
from typing import Any

from ..control import SampleControl
from ..errors import ModelError
from .core import Model, _sample_control


def sample(
    formula: str,
    data: Any,
    *,
    family: Any = "gaussian",
    link: Any = None,
    priors: dict[str, Any] | None = None,
    weights: Any = None,
    offset: Any = None,
    na_action: str = "omit",
    control: SampleControl | None = None,
    params: dict[str, str] | None = None,
    start: dict[str, Any] | None = None,
    mi: dict[str, str] | None = None,
    **settings: Any,
) -> Any:
    """Draw from the posterior of a mixed model with NumPyro's NUTS.

    Parameters
    ----------
    formula, data, family, link, weights, offset, na_action:
        As for :func:`fit`; ``y | se(s) ~ ...`` gives known residual SDs.
    priors:
        ``{"b": "normal(0, 1)", "sd_county": numpyro.distributions.HalfNormal(1.0), ...}``:
        keys are classes (``Intercept``, ``b``, ``sd``, ``cor``, ``sigma``, ``shape``),
        grouping factors (``sd_county``, ``cor_county``) or parameters
        (``sd_county__basement``, ``basement``); values are Stan-style strings or
        NumPyro distributions. See :mod:`multilevel.bayes.priors` for the defaults.
    params, start:
        A nonlinear model (see :func:`multilevel.nlfit`): the formula's right-hand side
        is the mean as an expression of parameters, ``params`` gives each parameter's
        mixed-model formula (brms' ``nl = TRUE``), ``start`` optional starting values
        for the likelihood fit the chains start from. The coefficients need priors, per
        parameter (``{"b_Asym": "normal(200, 50)"}``) or per coefficient
        (``Asym_Intercept``); SDs (``sd_Tree``, ``sd_Asym``, ``sd``) and ``sigma`` have
        brms's defaults. Gaussian responses, or binomial / Poisson (``family=``,
        ``weights=`` the trials) with the expression as the linear predictor. Returns a
        :class:`multilevel.present.nlmm_posterior.NlPosterior`.
    mi:
        Latent covariates, as brms: ``me(x, sdx)`` in the formula makes ``x`` a covariate
        measured with known SDs ``sdx`` (its true values latent, ``N(meanme_x, sdme_x)``);
        ``mi(x)`` models ``x``'s missing values, with the sub-model ``mi={"x": "~ z"}``
        (default ``"~ 1"``; brms' ``bf(x | mi() ~ z)``). Both enter as main effects; the
        posterior has ``meanme_x``, ``sdme_x``, the sub-model's ``x_Intercept``, ``x_z``,
        ``sigma_x`` and the imputed values ``Ymi_x[<row>]`` (see
        :mod:`multilevel.bayes.latent`).
    control, **settings:
        A :class:`multilevel.control.SampleControl`, or its fields as keywords:
        ``chains=4, draws=1000, warmup=1000, seed=0, progress=True,
        target_accept=0.8, max_tree_depth=10``.

    Returns
    -------
    :class:`multilevel.present.posterior.Posterior`

    Examples
    --------
    >>> import multilevel
    >>> post = multilevel.sample("y | se(sigma) ~ 1 + (1 | school)",
    ...                          multilevel.load_dataset("eight_schools"),
    ...                          chains=1, draws=200, warmup=200, progress=False)  # doctest: +SKIP
    """
    if params is not None or _is_self_start(formula):
        return _sample_nonlinear(formula, data, params, start, family, link, weights, offset, locals())
    m = Model(
        formula, data, family=family, link=link, weights=weights, offset=offset, na_action=na_action, mi=mi
    )
    return m.sample(priors=priors, control=control, **settings)


def _is_self_start(formula: Any) -> bool:
    return isinstance(formula, str) and re.search(r"~\s*SS[a-z]+\s*\(", formula) is not None


def _sample_nonlinear(
    formula: str,
    data: Any,
    params: Any,
    start: Any,
    family: Any,
    link: Any,
    weights: Any,
    offset: Any,
    args: dict[str, Any],
) -> Any:
    from .nonlinear import sample_nonlinear

    if offset is not None:
        raise ModelError("offset= is not taken by nonlinear models; put it in the mean expression")
    ctl = _sample_control(args["control"], args["settings"])
    return sample_nonlinear(
        formula,
        data,
        params,
        start=start,
        priors=args["priors"],
        control=ctl,
        na_action=args["na_action"],
        family=family,
        link=link,
        weights=weights,
    )
