"""Priors: parsing Stan-style strings, defaults scaled to the data, and who gets which.

Parameters fall in brms's classes: ``Intercept`` (the intercept of the model
with centred predictors), ``b`` (the other fixed effects), ``sd`` (random-effect
SDs), ``cor`` (their correlations, one LKJ prior per correlated term), ``sigma``
(the residual SD) and ``shape`` (the Gamma, inverse-Gaussian or negative-binomial
shape). A user prior can name a class (``"sd"``), a grouping factor
(``"sd_county"``, ``"cor_county"``) or one parameter (``"sd_county__basement"``,
``"basement"`` or ``"b_basement"``); the most specific one wins.

Strings follow Stan's names and parameterizations (``normal(mu, sigma)``,
``student_t(nu, mu, sigma)``, ``cauchy(mu, sigma)``, ``exponential(rate)``,
``gamma(shape, rate)``, ``lkj(eta)``, ...). On a positive parameter a prior
whose support is the real line is truncated at zero, as brms does:
``cauchy(0, 5)`` on an SD is the half-Cauchy with scale 5. NumPyro distribution
objects are used exactly as given (their support must fit the parameter).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any, ClassVar

import numpy as np

from ..errors import ModelError

_CALL = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)\s*$")

# name -> (number of arguments, real-line support?)
_STRING_PRIORS: dict[str, tuple[tuple[int, ...], bool]] = {
    "normal": ((2,), True),
    "student_t": ((3,), True),
    "cauchy": ((2,), True),
    "logistic": ((2,), True),
    "double_exponential": ((2,), True),
    "exponential": ((1,), False),
    "gamma": ((2,), False),
    "inv_gamma": ((2,), False),
    "lognormal": ((2,), False),
    "weibull": ((2,), False),
    "uniform": ((2,), False),
    "beta": ((2,), False),
    "half_normal": ((1, 2), False),
    "halfnormal": ((1, 2), False),
    "half_cauchy": ((1, 2), False),
    "halfcauchy": ((1, 2), False),
    "half_student_t": ((2, 3), False),
    "lkj": ((1,), False),
    "lkj_corr_cholesky": ((1,), False),
}


@dataclass(frozen=True)
class Prior:
    """A prior as used: the NumPyro distribution, how it prints, and where it came from."""

    dist: Any
    text: str
    source: str  # "default" or "user"
    from_object: bool = False  # given as a distribution object (its text does not determine it)


def half_student_t(df: float, scale: float) -> Any:
    """Student-t with location 0 truncated at 0 (brms's default on SDs), normalizer in closed form.

    Equal in law to NumPyro's ``TruncatedDistribution(StudentT(df, 0, scale), low=0)``,
    whose normalizer goes through the t CDF (an incomplete beta function) at every
    evaluation; here it is the constant ``log 2``.
    """
    import jax.numpy as jnp
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    class HalfStudentT(dist.Distribution):
        support = constraints.positive
        reparametrized_params: ClassVar[list[str]] = ["scale"]

        def __init__(self, df: float, scale: float) -> None:
            self.df = df
            self.scale = scale
            self._base = dist.StudentT(df, 0.0, scale)
            super().__init__(batch_shape=(), event_shape=())

        def sample(self, key: Any, sample_shape: tuple[int, ...] = ()) -> Any:
            return jnp.abs(self._base.sample(key, sample_shape))

        def log_prob(self, value: Any) -> Any:
            return self._base.log_prob(value) + jnp.log(2.0)

    return HalfStudentT(df, scale)


def lkj_cholesky(dim: int, eta: float) -> Any:
    """NumPyro's ``LKJCholesky(dim, eta)``, built in one compiled call.

    Its constructor runs a dozen array operations; run eagerly, each is compiled
    on its own (about 0.3 s on a small CPU), inside one ``jit`` they are one
    program. NumPyro distributions are pytrees, so the result is the same object.
    """
    import jax
    import numpyro.distributions as dist

    return jax.jit(lambda c: dist.LKJCholesky(dim, c))(float(eta))


def _args(text: str, name: str, body: str) -> list[float]:
    try:
        return [float(a) for a in body.split(",")] if body.strip() else []
    except ValueError:
        raise ModelError(
            f"prior {text!r}: arguments of {name}() must be numbers, e.g. 'normal(0, 5)'"
        ) from None


def _half(text: str, name: str, a: list[float], nargs: tuple[int, ...]) -> Any:
    """``half_normal`` / ``half_cauchy`` / ``half_student_t`` with location 0."""
    import numpyro.distributions as dist

    scale = a[-1]
    if len(a) == nargs[-1] and a[-2] != 0:
        raise ModelError(f"prior {text!r}: a half distribution has location 0")
    if scale <= 0:
        raise ModelError(f"prior {text!r}: the scale must be positive")
    if name in ("half_normal", "halfnormal"):
        return dist.HalfNormal(scale)
    if name in ("half_cauchy", "halfcauchy"):
        return dist.HalfCauchy(scale)
    return half_student_t(a[0], scale)


def parse_prior(text: str, *, positive: bool = False, correlation_dim: int | None = None) -> Any:
    """A NumPyro distribution from a Stan-style string.

    ``positive`` truncates real-line distributions at zero (priors on SDs,
    ``sigma`` and shapes); ``correlation_dim`` is the size of the correlation
    matrix an ``lkj(eta)`` prior is for (it becomes ``LKJCholesky``).

    Examples
    --------
    >>> parse_prior("cauchy(0, 5)", positive=True)  # doctest: +ELLIPSIS
    <numpyro.distributions.continuous.HalfCauchy object at ...>
    """
    import numpyro.distributions as dist

    m = _CALL.match(text)
    if not m:
        raise ModelError(f"cannot read the prior {text!r}: write it as a call such as 'normal(0, 5)'")
    name, body = m.group(1).lower(), m.group(2)
    if name not in _STRING_PRIORS:
        close = get_close_matches(name, list(_STRING_PRIORS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ModelError(
            f"unknown prior {name!r} in {text!r}{hint} Known: {', '.join(sorted(_STRING_PRIORS))}"
        )
    nargs, real_line = _STRING_PRIORS[name]
    a = _args(text, name, body)
    if len(a) not in nargs:
        raise ModelError(f"prior {text!r}: {name}() takes {' or '.join(map(str, nargs))} arguments")
    if name in ("lkj", "lkj_corr_cholesky"):
        if correlation_dim is None:
            raise ModelError(f"prior {text!r}: lkj() is a prior for correlations ('cor' classes) only")
        if a[0] <= 0:
            raise ModelError(f"prior {text!r}: the LKJ shape eta must be positive")
        return lkj_cholesky(correlation_dim, a[0])
    if correlation_dim is not None:
        raise ModelError(f"prior {text!r}: correlations take an lkj(eta) prior")
    scales = {
        "normal": 1,
        "student_t": 2,
        "cauchy": 1,
        "logistic": 1,
        "double_exponential": 1,
        "lognormal": 1,
    }
    if name in scales and a[scales[name]] <= 0:
        raise ModelError(f"prior {text!r}: the scale must be positive")
    if name.startswith("half"):
        return _half(text, name, a, nargs)
    base = {
        "normal": lambda: dist.Normal(a[0], a[1]),
        "student_t": lambda: dist.StudentT(a[0], a[1], a[2]),
        "cauchy": lambda: dist.Cauchy(a[0], a[1]),
        "logistic": lambda: dist.Logistic(a[0], a[1]),
        "double_exponential": lambda: dist.Laplace(a[0], a[1]),
        "exponential": lambda: dist.Exponential(a[0]),
        "gamma": lambda: dist.Gamma(a[0], a[1]),
        "inv_gamma": lambda: dist.InverseGamma(a[0], a[1]),
        "lognormal": lambda: dist.LogNormal(a[0], a[1]),
        "weibull": lambda: dist.Weibull(a[1], a[0]),  # Stan: weibull(shape, scale)
        "uniform": lambda: dist.Uniform(a[0], a[1]),
        "beta": lambda: dist.Beta(a[0], a[1]),
    }[name]()
    if not (positive and real_line):
        if positive and name == "uniform" and a[0] < 0:
            raise ModelError(f"prior {text!r} reaches below 0 on a positive parameter; use uniform(0, b)")
        return base
    loc = a[1] if name == "student_t" else a[0]
    if loc == 0 and name == "normal":
        return dist.HalfNormal(a[1])
    if loc == 0 and name == "cauchy":
        return dist.HalfCauchy(a[1])
    if loc == 0 and name == "student_t":
        return half_student_t(a[0], a[2])
    if name in ("logistic", "double_exponential"):
        raise ModelError(f"prior {text!r}: use normal, student_t or cauchy for a positive parameter")
    return dist.TruncatedDistribution(base, low=0.0)


POSITIVE_CLASSES = ("sd", "sigma", "shape", "sdme")


@dataclass(frozen=True)
class ParamInfo:
    """One parameter the priors address."""

    name: str  # brms name: "basement", "sd_county__Intercept", "cor_county__1", "sigma"
    cls: str  # "Intercept", "b", "sd", "cor", "sigma", "shape"
    group: str | None = None  # grouping factor of sd / cor parameters
    dim: int | None = None  # correlation matrix size for cor
    keys: tuple[str, ...] = ()  # the keys that address it, most specific first (else by class)


def _keys_for(p: ParamInfo) -> list[str]:
    """Keys a user may address this parameter by, most specific first."""
    if p.keys:
        return list(p.keys)
    if p.cls == "b":
        return [p.name, f"b_{p.name}", "b"]
    if p.cls == "Intercept":
        return ["Intercept", "b_Intercept"]
    if p.cls in ("sd", "cor"):
        return [p.name, f"{p.cls}_{p.group}", p.cls]
    return [p.name]


def resolve(
    params: list[ParamInfo],
    user: dict[str, Any] | None,
    defaults: dict[str, Prior] | Callable[[list[ParamInfo]], dict[str, Prior]],
) -> dict[str, Prior]:
    """The prior of every parameter: the most specific user key, else the default."""
    user = dict(user or {})
    valid: set[str] = set()
    for p in params:
        valid.update(_keys_for(p))
    for key in user:
        if key not in valid:
            close = get_close_matches(key, sorted(valid), n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ModelError(
                f"no parameter or class {key!r} in this model.{hint} Priors can be set on: "
                f"{', '.join(sorted(valid))}"
            )
    if callable(defaults):  # build defaults only for the parameters no user prior covers
        uncovered = [p for p in params if not any(k in user for k in _keys_for(p))]
        defaults = defaults(uncovered)
    out: dict[str, Prior] = {}
    for p in params:
        chosen = next((k for k in _keys_for(p) if k in user), None)
        if chosen is None:
            out[p.name] = defaults[p.name]
            continue
        value = user[chosen]
        positive = p.cls in POSITIVE_CLASSES
        if isinstance(value, str):
            d = parse_prior(value, positive=positive, correlation_dim=p.dim if p.cls == "cor" else None)
            text = value.strip()
            if positive and _STRING_PRIORS.get(value.split("(")[0].strip().lower(), ((), False))[1]:
                text += " [truncated at 0]"
        else:
            d = value
            text = type(value).__name__
            _check_support(p, d)
        out[p.name] = Prior(d, text, "user", from_object=not isinstance(value, str))
    return out


def _check_support(p: ParamInfo, d: Any) -> None:
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    if not isinstance(d, dist.Distribution):
        raise ModelError(
            f"prior for {p.name!r} must be a string such as 'normal(0, 5)' or a NumPyro distribution; "
            f"got {type(d).__name__}"
        )
    if d.batch_shape != ():
        raise ModelError(
            f"prior for {p.name!r} must be a scalar distribution, got batch shape {d.batch_shape}"
        )
    support = d.support
    if p.cls == "cor":
        if not isinstance(d, dist.LKJCholesky) or d.dimension != p.dim:
            raise ModelError(
                f"prior for {p.name!r} must be LKJCholesky({p.dim}, eta) or the string 'lkj(eta)'"
            )
        return
    if p.cls in POSITIVE_CLASSES:
        ok = support in (constraints.positive, constraints.nonnegative) or (
            isinstance(support, (constraints._GreaterThan, constraints._Interval))
            and float(getattr(support, "lower_bound", -1.0)) >= 0
        )
        if not ok:
            raise ModelError(
                f"prior for {p.name!r} has support {support}, but {p.name} is positive: use a positive "
                "distribution (HalfNormal, HalfCauchy, Exponential, ...) or a string such as "
                "'normal(0, 5)', which is truncated at 0"
            )
    elif support is not constraints.real:
        raise ModelError(f"prior for {p.name!r} must have real support, got {support}")


def mad(y: np.ndarray) -> float:
    """Median absolute deviation scaled to the normal SD (R's ``mad``)."""
    return float(1.4826 * np.median(np.abs(y - np.median(y))))


def default_priors(
    params: list[ParamInfo], *, y: np.ndarray, X: np.ndarray, names: tuple[str, ...], identity_gaussian: bool
) -> dict[str, Prior]:
    """Weakly informative defaults scaled to the data.

    Intercept (centred predictors) and SDs follow brms: ``student_t(3, median(y),
    s)`` and half ``student_t(3, 0, s)`` with ``s = max(2.5, mad(y))`` for a
    Gaussian response with identity link, ``s = 2.5`` on the link scale
    otherwise; ``sigma`` the same as SDs; correlations ``lkj(1)``; shapes
    ``gamma(0.01, 0.01)``. Other fixed effects, where brms leaves them flat, get
    rstanarm's autoscaled ``normal(0, 2.5 sd(y) / sd(x))`` (``sd(y) = 1`` for
    non-Gaussian families).
    """
    import numpyro.distributions as dist

    if identity_gaussian:
        s = max(2.5, mad(y))
        loc = float(np.median(y))
        sy = float(np.std(y)) or 1.0
    else:
        s, loc, sy = 2.5, 0.0, 1.0
    s = float(f"{s:.3g}")
    loc = float(f"{loc:.4g}")
    out: dict[str, Prior] = {}
    for p in params:
        if p.cls == "Intercept":
            out[p.name] = Prior(dist.StudentT(3.0, loc, s), f"student_t(3, {loc:g}, {s:g})", "default")
        elif p.cls == "b":
            x = X[:, names.index(p.name)]
            sx = float(np.std(x))
            scale = 2.5 * sy / sx if sx > 0 else 2.5 * sy
            scale = float(f"{scale:.3g}")
            out[p.name] = Prior(dist.Normal(0.0, scale), f"normal(0, {scale:g})", "default")
        elif p.cls in ("sd", "sigma"):
            out[p.name] = Prior(half_student_t(3.0, s), f"student_t(3, 0, {s:g}) [truncated at 0]", "default")
        elif p.cls == "cor":
            out[p.name] = Prior(lkj_cholesky(p.dim or 2, 1.0), "lkj(1)", "default")
        elif p.cls == "shape":
            out[p.name] = Prior(dist.Gamma(0.01, 0.01), "gamma(0.01, 0.01)", "default")
        else:  # pragma: no cover - every class is handled above
            raise ValueError(p.cls)
    return out
