"""The arrays of a nonlinear mixed model: one mixed-model design per parameter.

Each parameter ``phi_k`` of the mean has its own formula (``"1 + Treatment + (1 | Tree)"``),
materialized by the core (:func:`multilevel.model.design.build_model`) on the
complete rows, so that ``phi_k = X_k beta_k + Z_k b_k``. The problem stacks them:
``X`` (K, n, p) with each parameter's columns in its own slice of beta, ``Z`` (K, n, q)
with each random term's effects in its own slice of ``u``, and the places of theta in
the relative covariance factor ``Lambda`` (q, q) (lme4's layout: per level the
term's lower-triangular template). Random effects of different parameters are
independent; a term's own effects are correlated as its template allows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError, ModelError
from ..formula import parse_formula
from ..formula.expression import MeanExpression, evaluate, parse_mean
from ..formula.selfstart import SELF_START
from .data import check_finite, complete_rows, to_pandas
from .design import Design, build_model, data_name, used_columns
from .response import check_trials
from .spec import ModelSpec


@dataclass(frozen=True)
class RandomBlock:
    """One grouping block of one parameter: where its effects sit in ``u``."""

    param: int
    grouping: str
    offset: int  # first element of the block in u
    q: int  # effects per level
    n_levels: int
    codes: np.ndarray = field(repr=False, compare=False)  # (n,) each row's level


@dataclass(frozen=True)
class NlmmProblem:
    """Everything the objective needs; arrays are NumPy (the JAX side copies them)."""

    mean: MeanExpression
    param_names: tuple[str, ...]
    param_formulas: tuple[str, ...]
    specs: tuple[ModelSpec, ...] = field(repr=False)
    y: np.ndarray = field(repr=False)
    covariates: dict[str, np.ndarray] = field(repr=False)
    X: np.ndarray = field(repr=False)  # (K, n, p)
    Z: np.ndarray = field(repr=False)  # (K, n, q)
    beta_slices: tuple[slice, ...]
    blocks: tuple[RandomBlock, ...]
    theta_blocks: np.ndarray  # (n_theta,) index of each theta's block
    theta_rows: np.ndarray
    theta_cols: np.ndarray
    beta_names: tuple[str, ...]
    theta_names: tuple[str, ...]
    n_missing: int = 0
    data_name: str = "data"
    rows: np.ndarray | None = field(default=None, repr=False)
    family: Any = None  # None: Gaussian responses; else a non-Gaussian family (the mean is eta)
    weights: np.ndarray | None = field(default=None, repr=False)  # binomial trials, prior weights

    @property
    def gaussian(self) -> bool:
        return self.family is None

    @property
    def n(self) -> int:
        return int(self.y.size)

    @property
    def p(self) -> int:
        return int(self.X.shape[2])

    @property
    def q(self) -> int:
        return int(self.Z.shape[2])

    @property
    def n_theta(self) -> int:
        return int(self.theta_rows.size)

    def theta_lower(self) -> np.ndarray:
        return np.where(self.theta_rows == self.theta_cols, 0.0, -np.inf)

    def theta_initial(self) -> np.ndarray:
        return np.where(self.theta_rows == self.theta_cols, 1.0, 0.0)

    def lambda_index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, col, theta index) of every nonzero of Lambda."""
        rows, cols, idx = [], [], []
        for i, (b, r, c) in enumerate(zip(self.theta_blocks, self.theta_rows, self.theta_cols)):
            blk = self.blocks[int(b)]
            base = blk.offset + np.arange(blk.n_levels) * blk.q
            rows.append(base + r)
            cols.append(base + c)
            idx.append(np.full(blk.n_levels, i))
        if not rows:
            empty = np.zeros(0, np.int64)
            return empty, empty, empty
        return np.concatenate(rows), np.concatenate(cols), np.concatenate(idx)

    def lambda_matrix(self, theta: np.ndarray) -> np.ndarray:
        r, c, i = self.lambda_index()
        out = np.zeros((self.q, self.q))
        out[r, c] = np.asarray(theta, dtype=float)[i]
        return out

    def phi(self, beta: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        """Parameter values per row (n, K) for fixed effects and random effects ``b``."""
        out = np.einsum("knp,p->nk", self.X, beta)
        if b is not None and self.q:
            out = out + np.einsum("knq,q->nk", self.Z, b)
        return out

    def mean_numpy(self, phi: np.ndarray, covariates: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        env = dict(self.covariates if covariates is None else covariates)
        env.update({k: phi[:, i] for i, k in enumerate(self.param_names)})
        return np.broadcast_to(np.asarray(evaluate(self.mean.tree, env, np), dtype=float), (phi.shape[0],))


def _param_formulas(
    mean: MeanExpression, params: Mapping[str, str] | None, columns: set[str]
) -> dict[str, str]:
    """Each parameter's formula: as given, and "1" for a self-starting model's parameters
    without one; every name checked."""
    given = dict(params or {})
    for k, v in given.items():
        if not isinstance(v, str):
            raise FormulaError(f"params[{k!r}] must be a formula string such as '1 + (1 | g)', got {v!r}")
    if mean.selfstart is not None:
        model = SELF_START[mean.selfstart.model]
        for role, arg in zip(model.args, mean.selfstart.args):
            if role in model.params:
                given.setdefault(arg.name, "1")
    for k in given:
        if k not in mean.names:
            raise FormulaError(
                f"params= gives a formula for {k!r}, which the nonlinear formula does not use; "
                f"the formula's names are {', '.join(mean.names)}. Remove it or fix its name",
                mean.formula,
                (0, len(mean.formula)),
            )
        if k in columns:
            raise FormulaError(
                f"{k!r} is both a parameter (in params=) and a column of the data; rename one of them",
                mean.formula,
                (0, len(mean.formula)),
            )
    if mean.response in mean.names:
        at = mean.formula.find(mean.response, mean.formula.index("~"))
        raise FormulaError(
            f"the response {mean.response!r} appears in its own mean expression; the mean must be a "
            "function of the parameters and the covariates only",
            mean.formula,
            (at, at + len(mean.response)),
        )
    unknown = [nm for nm in mean.names if nm not in given and nm not in columns]
    if unknown:
        nm = unknown[0]
        at = mean.formula.find(nm, mean.formula.index("~"))
        raise FormulaError(
            f"{nm!r} in the nonlinear formula is neither a column of the data nor a parameter; "
            f"give it a formula (params={{{nm!r}: '1'}}) or add the column",
            mean.formula,
            (at, at + len(nm)) if at >= 0 else (0, len(mean.formula)),
        )
    if not given:
        raise FormulaError(
            "the nonlinear formula has no parameters; give params=", mean.formula, (0, len(mean.formula))
        )
    return {k: given[k] for k in mean.names if k in given}


def _complete(
    df: pd.DataFrame, mean: MeanExpression, formulas: dict[str, str], na_action: str, extra: list[str]
) -> tuple[pd.DataFrame, np.ndarray]:
    cols = {str(c) for c in df.columns}
    used = [mean.response, *extra, *(nm for nm in mean.names if nm in cols and nm not in formulas)]
    for rhs in formulas.values():
        used += used_columns(parse_formula(f"{mean.response} ~ {rhs}"), df)
    if mean.response not in cols:
        raise DataError(f"the response {mean.response!r} is not a column of the data")
    mask, _ = complete_rows(df, list(dict.fromkeys(used)), na_action)
    if not mask.any():
        raise DataError("no complete rows left after removing missing values")
    return df.loc[mask].reset_index(drop=True), mask


def _random_blocks(specs: list[ModelSpec], designs: list[Design], n: int) -> tuple[Any, ...]:
    blocks: list[RandomBlock] = []
    z_parts: list[tuple[int, int, np.ndarray]] = []
    t_blocks: list[np.ndarray] = []
    t_rows: list[np.ndarray] = []
    t_cols: list[np.ndarray] = []
    t_names: list[str] = []
    offset = 0
    for k, (spec, design) in enumerate(zip(specs, designs)):
        first = len(blocks)
        for g, gd in zip(spec.groupings, design.groups):
            blocks.append(RandomBlock(k, g.name, offset, g.q, g.n_levels, gd.codes))
            z = np.zeros((n, g.size))
            cols = gd.codes[:, None] * g.q + np.arange(g.q)[None, :]
            np.put_along_axis(z, cols, gd.values, axis=1)
            z_parts.append((k, offset, z))
            offset += g.size
        tm = spec.theta_map
        t_blocks.append(tm.block + first)
        t_rows.append(tm.row)
        t_cols.append(tm.col)
        t_names += [f"{spec_name}" for spec_name in spec.theta_names]
    Z = np.zeros((len(specs), n, offset))
    for k, off, z in z_parts:
        Z[k, :, off : off + z.shape[1]] = z

    def cat(xs: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(xs).astype(np.int64) if xs else np.zeros(0, np.int64)

    return tuple(blocks), Z, cat(t_blocks), cat(t_rows), cat(t_cols), t_names


def _family_of(family: Any, link: Any) -> Any:
    """None for a Gaussian identity model; the family otherwise (binomial, Poisson)."""
    from ..family import get_family

    fam = get_family(family, link)
    if fam.is_lmm:
        return None
    if fam.name not in ("binomial", "poisson"):
        raise ModelError(
            f"nonlinear models take Gaussian, binomial or Poisson responses; got family {fam.name!r}"
        )
    return fam


def _stack_fixed(
    names: tuple[str, ...], specs: list[ModelSpec], designs: list[Design], n: int
) -> tuple[np.ndarray, list[slice], list[str]]:
    """X (K, n, p) with each parameter's columns in its own slice of beta, and their names."""
    X = np.zeros((len(names), n, sum(s.p for s in specs)))
    slices: list[slice] = []
    beta_names: list[str] = []
    at = 0
    for j, (spec, design) in enumerate(zip(specs, designs)):
        X[j, :, at : at + spec.p] = design.X
        slices.append(slice(at, at + spec.p))
        only = spec.fixed_names == ("Intercept",)
        beta_names += [names[j] if only else f"{names[j]}.{f}" for f in spec.fixed_names]
        at += spec.p
    return X, slices, beta_names


def _weight_columns(fam: Any, weights: Any, df: pd.DataFrame) -> list[str]:
    if fam is None and weights is not None:
        raise ModelError("weights= applies to binomial and Poisson nonlinear models; drop it")
    extra = [weights] if isinstance(weights, str) else []
    if extra and weights not in df.columns:
        raise DataError(f"weights={weights!r} is not a column of the data")
    return extra


def _glm_weights(
    fam: Any, weights: Any, sub: pd.DataFrame, mask: np.ndarray, y: np.ndarray, response: str
) -> np.ndarray | None:
    """The binomial trials or prior weights of the complete rows, checked with the response."""
    n = len(sub)
    w = None
    if isinstance(weights, str):
        w = sub[weights].to_numpy(dtype=float)
    elif weights is not None:
        w = np.asarray(weights, dtype=float)[mask] if np.ndim(weights) else np.full(n, float(weights))
    if w is not None:
        check_finite("weights", w)
        if np.any(w <= 0):
            raise DataError("weights= must be positive (the binomial trials or prior weights)")
    if fam.name == "binomial":
        check_trials(response, y, None, w)
    fam.check(y, np.ones(n) if w is None else w)
    return w


def build_problem(
    formula: str,
    data: Any,
    params: Mapping[str, str] | None = None,
    *,
    na_action: str = "omit",
    family: Any = "gaussian",
    link: Any = None,
    weights: Any = None,
) -> NlmmProblem:
    """Parse the nonlinear formula and the parameters' formulas and materialize them.
    For a binomial or Poisson ``family`` the expression is the linear predictor (on
    the link scale, as brms' nonlinear formulas); ``weights`` the binomial trials (a
    column name or an array) when the response is a proportion.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.read_csv("tests/data/Orange.csv")
    >>> pr = build_problem("circumference ~ SSlogis(age, Asym, xmid, scal)", d,
    ...                    {"Asym": "1 + (1 | Tree)"})
    >>> pr.param_names, pr.beta_names, pr.X.shape, pr.Z.shape
    (('Asym', 'xmid', 'scal'), ('Asym', 'xmid', 'scal'), (3, 35, 3), (3, 35, 5))
    """
    mean = parse_mean(formula)
    fam = _family_of(family, link)
    df = to_pandas(data)
    formulas = _param_formulas(mean, params, {str(c) for c in df.columns})
    sub, mask = _complete(df, mean, formulas, na_action, _weight_columns(fam, weights, df))
    names = tuple(formulas)
    specs, designs = [], []
    for k in names:
        spec, design = build_model(
            f"{mean.response} ~ {formulas[k]}", sub, na_action="raise", random_required=False
        )
        specs.append(spec)
        designs.append(design)
    n = len(sub)
    y = designs[0].y
    w = None if fam is None else _glm_weights(fam, weights, sub, mask, y, mean.response)
    covariates = {nm: sub[nm].to_numpy(dtype=float) for nm in mean.names if nm not in formulas}
    for nm, v in covariates.items():
        check_finite(f"covariate {nm!r}", v)
    X, slices, beta_names = _stack_fixed(names, specs, designs, n)
    if any(s.p == 0 for s in specs):
        bad = names[[s.p for s in specs].index(0)]
        raise ModelError(
            f"parameter {bad!r} has no fixed effect; its formula needs an intercept or a covariate"
        )
    blocks, Z, tb, tr, tc, tn = _random_blocks(specs, designs, n)
    theta_names = tuple(f"{names[blocks[int(b)].param]}: {nm}" for b, nm in zip(tb, tn))
    if not blocks:
        raise FormulaError(
            "no parameter has a random-effects term such as (1 | group); this is not a mixed model. "
            "Add one to a parameter's formula in params=",
            formula,
            (0, len(formula)),
        )
    return NlmmProblem(
        mean,
        names,
        tuple(formulas.values()),
        tuple(specs),
        y,
        covariates,
        X,
        Z,
        tuple(slices),
        blocks,
        tb,
        tr,
        tc,
        tuple(beta_names),
        theta_names,
        int((~mask).sum()),
        data_name(data),
        np.flatnonzero(mask),
        fam,
        w,
    )
