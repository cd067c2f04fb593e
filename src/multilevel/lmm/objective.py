"""The profiled REML / ML criterion of a linear mixed model as a function of theta.

Reads only the cross-products (:mod:`multilevel.linalg.crossprod`), so an evaluation
costs nothing that grows with the number of rows; it is a composition

    objective(theta) = criterion(factor(system, templates(theta)))

of the model's map from theta to the templates (:class:`~multilevel.model.spec.ThetaMap`),
the blocked Cholesky of :mod:`multilevel.linalg.factor` and the criteria of
:mod:`multilevel.linalg.criteria`, on the NumPy backend (the fits) or the JAX one
(jit-compiled, and differentiated by ``jax.grad``).

With known residual standard errors (``y | se(s) ~ ...``, brms's syntax) the
weights are ``1 / s^2`` and the residual scale is fixed at 1 rather than
profiled: the criterion is :meth:`LmmObjective.deviance_at` with ``sigma = 1``
and theta is on the absolute scale of the random-effect SDs.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from ..errors import ModelError
from ..linalg import criteria
from ..linalg.backends import backend as linalg_backend
from ..linalg.blocked import SchurForm
from ..linalg.crossprod import CrossProducts
from ..linalg.factor import Factor
from ..model.spec import ModelSpec

__all__ = ["Factor", "LmmObjective"]


class ThetaPlaces(NamedTuple):
    """Where theta goes in the templates (hashable: a static argument of the compiled
    JAX functions, which are shared by every objective with the same places)."""

    block: tuple[int, ...]
    row: tuple[int, ...]
    col: tuple[int, ...]
    qs: tuple[int, ...]


class Criterion(NamedTuple):
    """Which criterion a compiled JAX function computes (static, as :class:`ThetaPlaces`)."""

    places: ThetaPlaces
    p: int
    reml: bool
    sigma_fixed: float | None


def jax_templates(theta: Any, places: ThetaPlaces) -> tuple[Any, ...]:
    """The templates at theta, traceable by JAX."""
    import jax.numpy as jnp

    block, row, col = (np.asarray(a, dtype=int) for a in places[:3])
    out = []
    for k, q in enumerate(places.qs):
        i = np.flatnonzero(block == k)
        out.append(jnp.zeros((q, q)).at[row[i], col[i]].set(theta[i]))
    return tuple(out)


def criterion_of(xp: Any, f: Factor, n: Any, p: int, slw: Any, reml: bool, sigma_fixed: float | None) -> Any:
    """The criterion from a factor: profiled over sigma, or at a known residual scale."""
    if sigma_fixed is not None:
        return criteria.deviance_at(xp, f, sigma_fixed, n, p, slw, reml)
    return criteria.profiled_deviance(xp, f, n, p, slw, reml)


_JAX: dict[str, Any] = {}


def _jax_functions() -> dict[str, Any]:
    """The compiled JAX functions of (theta, system, n, sum log w), shared by every
    objective of the same shape (built on first use: JAX is imported here)."""
    if not _JAX:
        import jax
        import jax.numpy as jnp

        from ..linalg import jax_backend

        def factor(theta: Any, system: Any, places: ThetaPlaces) -> Factor:
            return jax_backend.factor(system, jax_templates(theta, places))

        def value(theta: Any, system: Any, n: Any, slw: Any, crit: Criterion) -> Any:
            f = factor(theta, system, crit.places)
            return criterion_of(jnp, f, n, crit.p, slw, crit.reml, crit.sigma_fixed)

        _JAX.update(
            solve=jax.jit(jax_backend.solve),
            vcov_beta=jax.jit(jax_backend.vcov_beta),
            conditional_variances=jax.jit(jax_backend.conditional_variances),
            factor=jax.jit(factor, static_argnums=2),
            criterion=jax.jit(value, static_argnums=4),
            value_and_grad=jax.jit(jax.value_and_grad(value), static_argnums=4),
        )
    return _JAX


class LmmObjective:
    """Callable profiled deviance ``theta -> REML criterion or -2 log-likelihood``.

    ``backend="jax"`` evaluates it with the JAX factor, compiled, and gives its
    gradient by ``jax.grad`` (:meth:`value_and_grad`); the default NumPy backend
    is what the fits use (its gradient is :mod:`multilevel.lmm.gradient`).

    Examples
    --------
    >>> from multilevel.datasets import load_dataset
    >>> from multilevel.model.design import build_model
    >>> from multilevel.linalg.crossprod import compute_crossprods
    >>> spec, d = build_model("Yield ~ 1 + (1 | Batch)", load_dataset("Dyestuff"))
    >>> obj = LmmObjective(spec, compute_crossprods(d, [6]), reml=True)
    >>> round(obj([0.8]), 3) > 0
    True
    """

    def __init__(
        self,
        spec: ModelSpec,
        cp: CrossProducts,
        reml: bool = True,
        pattern: SchurForm | None = None,
        backend: str = "numpy",
        device: str = "cpu",
    ) -> None:
        if reml and cp.n <= len(spec.fixed_names) and spec.parsed.se is None:
            raise ModelError(
                f"REML needs more observations than fixed effects: {cp.n} rows for "
                f"{len(spec.fixed_names)} fixed effects leave no residual degrees of freedom; "
                "drop fixed effects or fit by maximum likelihood (reml=False)"
            )
        self.spec = spec
        self.cp = cp
        self.reml = reml
        # known residual SEs: the residual scale is 1, not a parameter
        self.sigma_fixed: float | None = 1.0 if spec.parsed.se is not None else None
        self.layout = cp.layout
        self.backend = linalg_backend(backend)
        self._xp = self.backend.SCALARS
        self._crit: Criterion | None = None
        self._wide: Any = None  # the wide design's JAX factor (multilevel.linalg.jax_wide)
        self.system: Any  # the backend's system (NumpySystem, JaxSystem or JaxWideSystem)
        self.device = device
        if self.backend.NAME == "jax":
            import jax

            from ..linalg.jax_setup import jax_device
            from ..linalg.wide import RestBorder

            dev = jax_device(device)
            if isinstance(cp.ARR, RestBorder):  # two scalar blocks, a wide rest: A1R stays sparse
                from ..linalg import jax_wide

                self._wide, self._xp = jax_wide, math
                self.system = jax_wide.system(cp, dev)
                return
            self.system = jax.device_put(self.backend.system(cp), dev)
            tm = spec.theta_map
            places = ThetaPlaces(
                tuple(tm.block.tolist()), tuple(tm.row.tolist()), tuple(tm.col.tolist()), spec.block_qs
            )
            self._crit = Criterion(places, self.p, reml, self.sigma_fixed)
        else:
            # ``pattern``: a precomputed form of the Schur update
            self.system = self.backend.system(cp, pattern)

    @property
    def n(self) -> int:
        return self.cp.n

    @property
    def p(self) -> int:
        return self.layout.p

    @property
    def pattern(self) -> SchurForm | None:
        """The form of the Schur update (NumPy backend; None on JAX)."""
        return getattr(self.system, "pattern", None)

    def linalg(self, name: str) -> Any:
        """The backend's ``solve``, ``vcov_beta`` or ``conditional_variances`` (compiled on JAX)."""
        if self._wide is not None:
            return getattr(self._wide, name)
        if self._crit is not None:
            return _jax_functions()[name]
        return getattr(self.backend, name)

    def factor(self, theta: Any) -> Factor:
        """Blocked Cholesky at ``theta``; raises ``LinAlgError`` if not positive definite
        (the JAX factor holds NaN instead)."""
        if self._wide is not None:
            return self._wide.factor(self.system, self.spec.templates(theta))
        if self._crit is not None:
            return _jax_functions()["factor"](np.asarray(theta, dtype=float), self.system, self._crit.places)
        return self.backend.factor(self.system, self.spec.templates(theta))

    @property
    def has_gradient(self) -> bool:
        """Whether the criterion has an exact gradient (analytic, or by ``jax.grad``); the
        wide design's JAX criterion has central differences only."""
        return self._wide is None

    def criterion(self, f: Factor, reml: bool | None = None) -> Any:
        """Profiled deviance (REML criterion if ``reml``) from a factor."""
        reml = self.reml if reml is None else reml
        return criterion_of(self._xp, f, self.n, self.p, self.cp.sum_log_weights, reml, self.sigma_fixed)

    def deviance_at(self, f: Factor, sigma: Any, reml: bool | None = None) -> Any:
        """Deviance at (theta, sigma) with beta profiled: lmerTest's ``devfun_vp``."""
        reml = self.reml if reml is None else reml
        return criteria.deviance_at(self._xp, f, sigma, self.n, self.p, self.cp.sum_log_weights, reml)

    def sigma(self, f: Factor) -> float:
        if self.sigma_fixed is not None:
            return self.sigma_fixed
        nu = self.n - self.p if self.reml else self.n
        return math.sqrt(f.r2 / nu)

    def __call__(self, theta: np.ndarray) -> float:
        if self._wide is not None:
            value = self.criterion(self._wide.factor(self.system, self.spec.templates(theta), keep=False))
            return value if math.isfinite(value) else math.inf
        if self._crit is not None:
            value = float(self._jax("criterion", theta))
            return value if math.isfinite(value) else math.inf
        try:
            return self.criterion(self.factor(theta))
        except np.linalg.LinAlgError:
            return math.inf

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Criterion and its gradient by ``jax.grad`` (JAX backend); ``(inf, 0)`` where
        the factorization fails."""
        theta = np.asarray(theta, dtype=float)
        if self._wide is not None:
            return self._central_differences(theta)
        if self._crit is None:
            raise TypeError("value_and_grad needs backend='jax'; see multilevel.lmm.gradient for NumPy")
        value, grad = self._jax("value_and_grad", theta)
        value, grad = float(value), np.asarray(grad)
        if not (math.isfinite(value) and np.all(np.isfinite(grad))):
            return math.inf, np.zeros_like(theta)
        return value, grad

    def _central_differences(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """The criterion and its gradient by central differences (steps of 1e-4 relative):
        the criterion is even in each scalar theta, so the difference at 0 is 0."""
        from ..optim.numdiff import central_jacobian

        value = self(theta)
        steps = 1e-4 * np.maximum(np.abs(theta), 1e-2)
        grad = central_jacobian(lambda t: np.array([self(t)]), theta, steps)[0]
        if not (math.isfinite(value) and np.all(np.isfinite(grad))):
            return math.inf, np.zeros_like(theta)
        return value, grad

    def _jax(self, name: str, theta: Any) -> Any:
        fn = _jax_functions()[name]
        cp = self.cp
        return fn(np.asarray(theta, dtype=float), self.system, float(cp.n), cp.sum_log_weights, self._crit)
