"""The arrays of a nonlinear mixed model: one mixed-model design per parameter.

Each parameter ``phi_k`` of the mean has its own formula (``"1 + Treatment + (1 | Tree)"``),
materialized by the core (:func:`multilevel.model.design.build_model`) on the
complete rows, so that ``phi_k = X_k beta_k + Z_k b_k``. The problem stacks them:
``X`` (K, n, p) with each parameter's columns in its own slice of beta, ``Z`` (K, n, q)
with each random term's effects in its own slice of ``u``, and the places of theta in
the relative covariance factor ``Lambda`` (q, q) (lme4's layout: per level the
term's lower-triangular template). Random effects of different parameters are
independent unless an ID joins their blocks into one covariance group
(:mod:`multilevel.model.nonlinear_cov`); a term's own effects are correlated as its
template allows.
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
from .nonlinear_cov import covariance_groups, full_template, strip_ids
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
    theta_blocks: np.ndarray  # (n_theta,) each theta's covariance group (cov_groups)
    theta_rows: np.ndarray  # its row and column in the group's template
    theta_cols: np.ndarray
    beta_names: tuple[str, ...]
    theta_names: tuple[str, ...]
    n_missing: int = 0
    data_name: str = "data"
    rows: np.ndarray | None = field(default=None, repr=False)
    family: Any = None  # None: Gaussian responses; else a non-Gaussian family (the mean is eta)
    weights: np.ndarray | None = field(default=None, repr=False)  # binomial trials, prior weights
    # blocks sharing one covariance (brms' |ID|, multilevel.model.nonlinear_cov); () = each alone
    cov_groups: tuple[tuple[int, ...], ...] = ()

    @property
    def groups(self) -> tuple[tuple[int, ...], ...]:
        """The covariance groups: block indices sharing one covariance matrix."""
        return self.cov_groups or tuple((b,) for b in range(len(self.blocks)))

    def group_q(self, g: int) -> int:
        return sum(self.blocks[b].q for b in self.groups[g])

    def joint(self, g: int, j: int) -> tuple[int, int]:
        """(block, column in the block) of column ``j`` of covariance group ``g``."""
        for b in self.groups[g]:
            q = self.blocks[b].q
            if j < q:
                return b, j
            j -= q
        raise IndexError(j)

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
        for i, (g, r, c) in enumerate(zip(self.theta_blocks, self.theta_rows, self.theta_cols)):
            (ba, ra), (bb, cb) = self.joint(int(g), int(r)), self.joint(int(g), int(c))
            A, B = self.blocks[ba], self.blocks[bb]
            levels = np.arange(A.n_levels)
            rows.append(A.offset + levels * A.q + ra)
            cols.append(B.offset + levels * B.q + cb)
            idx.append(np.full(A.n_levels, i))
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


def _random_blocks(
    specs: list[ModelSpec],
    designs: list[Design],
    n: int,
    ids: dict[int, list[tuple[str, str]]],
    names: tuple[str, ...],
) -> tuple[Any, ...]:
    """The blocks (one per parameter and grouping), Z, the covariance groups and theta's
    layout over them (group, row, column, name)."""
    blocks: list[RandomBlock] = []
    z_parts: list[tuple[int, int, np.ndarray]] = []
    own: list[list[tuple[int, int, str]]] = []  # per block: its spec's template entries
    n_terms: dict[tuple[int, str], int] = {}
    offset = 0
    for k, (spec, design) in enumerate(zip(specs, designs)):
        first = len(blocks)
        for g, gd in zip(spec.groupings, design.groups):
            blocks.append(RandomBlock(k, g.name, offset, g.q, g.n_levels, gd.codes))
            n_terms[(k, g.name)] = len(g.terms)
            own.append([])
            z = np.zeros((n, g.size))
            cols = gd.codes[:, None] * g.q + np.arange(g.q)[None, :]
            np.put_along_axis(z, cols, gd.values, axis=1)
            z_parts.append((k, offset, z))
            offset += g.size
        tm = spec.theta_map
        for b, r, c, nm in zip(tm.block, tm.row, tm.col, spec.theta_names):
            own[first + int(b)].append((int(r), int(c), f"{names[k]}: {nm}"))
    Z = np.zeros((len(specs), n, offset))
    for k, off, z in z_parts:
        Z[k, :, off : off + z.shape[1]] = z
    groups = covariance_groups([(blk.param, blk.grouping) for blk in blocks], ids, n_terms)
    tg, tr, tc, tn = [], [], [], []
    for gi, members in enumerate(groups):
        if len(members) == 1:
            entries = own[members[0]]
        else:
            labels = [
                f"{names[blocks[b].param]}:{c}"
                for b in members
                for c in specs[blocks[b].param]
                .groupings[[g.name for g in specs[blocks[b].param].groupings].index(blocks[b].grouping)]
                .columns
            ]
            rr, cc = full_template(len(labels))
            entries = [
                (int(r), int(c), f"{blocks[members[0]].grouping}: {labels[r]}.{labels[c]}")
                for r, c in zip(rr, cc)
            ]
        for r, c, nm in entries:
            tg.append(gi)
            tr.append(r)
            tc.append(c)
            tn.append(nm)

    def arr(xs: list[int]) -> np.ndarray:
        return np.asarray(xs, np.int64)

    return tuple(blocks), Z, tuple(groups), arr(tg), arr(tr), arr(tc), tuple(tn)


def _family_of(family: Any, link: Any) -> Any:
    """None for a Gaussian identity model; the family otherwise (binomial, Poisson)."""
    from ..family import get_family

    fam = get_family(family, link)
    if fam.is_lmm:
        return None
    if fam.has_dispersion:  # the Laplace fit and the sampler carry no dispersion parameter
        raise ModelError(
            f"nonlinear models take Gaussian, binomial or Poisson responses; got family {fam.name!r}"
        )
    return fam


def _param_designs(
    response: str, formulas: dict[str, str], sub: pd.DataFrame
) -> tuple[list[ModelSpec], list[Design]]:
    """Each parameter's mixed-model formula materialized on the complete rows."""
    specs, designs = [], []
    for k, rhs in formulas.items():
        spec, design = build_model(f"{response} ~ {rhs}", sub, na_action="raise", random_required=False)
        if spec.p == 0:
            raise ModelError(
                f"parameter {k!r} has no fixed effect; its formula needs an intercept or a covariate"
            )
        specs.append(spec)
        designs.append(design)
    return specs, designs


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
    if fam.trials_response:
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
    stripped, ids = {}, {}
    for k, f in formulas.items():
        stripped[k], ids[k] = strip_ids(f)
    sub, mask = _complete(df, mean, stripped, na_action, _weight_columns(fam, weights, df))
    names = tuple(formulas)
    specs, designs = _param_designs(mean.response, stripped, sub)
    n = len(sub)
    y = designs[0].y
    w = None if fam is None else _glm_weights(fam, weights, sub, mask, y, mean.response)
    covariates = {nm: sub[nm].to_numpy(dtype=float) for nm in mean.names if nm not in formulas}
    for nm, v in covariates.items():
        check_finite(f"covariate {nm!r}", v)
    X, slices, beta_names = _stack_fixed(names, specs, designs, n)
    by_index = {names.index(k): v for k, v in ids.items()}
    blocks, Z, groups, tb, tr, tc, theta_names = _random_blocks(specs, designs, n, by_index, names)
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
        groups,
    )
