"""The Kiefer-Wolfowitz NPMLE of a mixing distribution: the driver over the stages.

check and merge the data (:mod:`.data`) -> the grid -> the row-scaled likelihood
matrix (:mod:`.problem`, densities from :mod:`.kernels`) -> a primal-dual interior
point on a subgrid (:mod:`.ipm`) -> active-set Newton on the whole grid to the
KKT certificate (:mod:`.activeset`) -> :class:`.result.NpmleResult`.
"""

from __future__ import annotations

import time

import numpy as np
from scipy import special

from multilevel.errors import ModelError
from multilevel.linalg.threads import blas_threads

from .activeset import polish
from .data import DeconvData, bin_rows, make_grid, prepare_data
from .em import em_iterations
from .ipm import interior_point
from .kernels import Kernel, get_kernel
from .problem import Problem, subgrid
from .result import NpmleResult

# the interior point works on a subgrid of at most this many columns (its cost grows
# as rows x columns^2 per step); the active-set stage then works on the whole grid
_IPM_COLUMNS = 100
_IPM_WORK = 2e7


# the automatic binning: continuous observations, more distinct rows than this
_BIN_ROWS = 200_000
DEFAULT_BIN_WIDTH = 1e-3


def _setup(
    family: str,
    y: object,
    se: object,
    trials: object,
    grid: object,
    weights: object,
    bins: object,
    width: float,
) -> tuple[Kernel, DeconvData, DeconvData, np.ndarray, Problem]:
    """The kernel, the merged data, the rows solved (binned or those), the grid, the problem."""
    kernel = get_kernel(family)
    data = prepare_data(kernel, y, se=se, trials=trials, weights=weights)
    g = make_grid(kernel, data, grid)
    if bins and not kernel.binnable:
        raise ModelError(
            f"family={kernel.name!r} has discrete observations: equal rows are merged, never binned"
        )
    if not width > 0:
        raise ModelError(f"bin_width must be positive (in units of se); got {width!r}")
    binned = bool(bins) if bins is not None else kernel.binnable and data.rows_y.size > _BIN_ROWS
    solved = bin_rows(data, width) if binned else data
    logp = kernel.log_density(solved.rows_y, solved.rows_scale, g)
    return kernel, data, solved, g, Problem.from_log_density(logp, solved.rows_weight)


def _exact_loglik(kernel: Kernel, data: DeconvData, grid: np.ndarray, f: np.ndarray) -> float:
    """The log-likelihood of the unbinned rows (over the support atoms only: cheap)."""
    keep = f > 0
    logp = kernel.log_density(data.rows_y, data.rows_scale, grid[keep]) + np.log(f[keep])[None, :]
    return float(data.rows_weight @ special.logsumexp(logp, axis=1))


def _result(
    kernel: Kernel,
    data: DeconvData,
    solved: DeconvData,
    grid: np.ndarray,
    problem: Problem,
    f: np.ndarray,
    **record: object,
) -> NpmleResult:
    D = problem.gradient(f)
    j = int(np.argmax(D))
    binned = solved is not data
    return NpmleResult(
        family=kernel.name,
        grid=grid,
        weights=f,
        loglik=_exact_loglik(kernel, data, grid, f) if binned else problem.loglik(f),
        kkt_max=float(D[j]),
        kkt_argmax=float(grid[j]),
        gap_bound=problem.total * max(float(D[j]) - 1.0, 0.0),
        n=int(data.y.size),
        rows=int(solved.rows_y.size),
        binned=binned,
        y=data.y,
        scale=data.scale,
        **record,  # type: ignore[arg-type]
    )


def npmle(
    y: object,
    se: object = None,
    family: str = "gaussian",
    trials: object = None,
    grid: object = None,
    weights: object = None,
    *,
    tol: float = 1e-10,
    bins: bool | None = None,
    bin_width: float = DEFAULT_BIN_WIDTH,
) -> NpmleResult:
    """The Kiefer-Wolfowitz NPMLE of the mixing distribution of theta in y_i ~ p(y | theta_i).

    Maximizes sum_i w_i log sum_j f_j p(y_i | theta_j) over prior weights f >= 0,
    sum f = 1 on a grid, by a primal-dual interior point method (Koenker and
    Mizera's convex program) and an active-set Newton polish, to the certificate
    max_theta D(theta) <= 1 + ``tol``.

    Parameters
    ----------
    y : observations: estimates (Gaussian), counts (Poisson) or success counts (binomial).
    se : the Gaussian standard errors, a scalar or one per observation.
    family : ``"gaussian"`` (y ~ N(theta, se^2)), ``"poisson"`` (y ~ Poisson(theta)),
        ``"binomial"`` (y ~ Binomial(trials, theta)).
    trials : the binomial trial counts, a scalar or one per observation.
    grid : the grid of theta values, or its size (default 300 points evenly from the
        data's min to max; binomial: from 0 to 1).
    weights : observation weights (counts of each observation; default 1).
    tol : the certificate's tolerance on max D - 1.
    bins, bin_width : bin Gaussian observations of equal se into bins of ``bin_width * se``,
        each solved as one row at its weighted mean y (an approximation; ``binned`` on the
        result says so). ``None`` (default): bin when there are over 200,000 distinct rows.
        Binned, ``loglik`` is still that of every observation; ``kkt_max`` that of the bins.

    Returns
    -------
    NpmleResult

    Examples
    --------
    >>> import numpy as np
    >>> from multilevel.deconv import npmle
    >>> rng = np.random.default_rng(1)
    >>> y = np.repeat([0.0, 2.0], [180, 20]) + rng.normal(size=200)
    >>> fit = npmle(y, se=1.0, grid=100)
    >>> fit.converged, bool(fit.kkt_max <= 1 + 1e-9), bool(abs(fit.weights.sum() - 1) < 1e-12)
    (True, True, True)
    >>> fit.posterior_mean().shape
    (200,)
    """
    start = time.perf_counter()
    kernel, data, solved, g, problem = _setup(family, y, se, trials, grid, weights, bins, bin_width)
    rows, m = problem.At.shape
    size = int(np.clip(np.sqrt(_IPM_WORK / rows), 20, _IPM_COLUMNS))
    # every dense system here is small (<= 100 columns): one BLAS thread (see linalg.threads)
    with blas_threads(size):
        f0, iterations, _ = interior_point(problem, subgrid(m, size), tol=1e-8)
        f, rounds, converged = polish(problem, f0, tol=tol)
    return _result(
        kernel,
        data,
        solved,
        g,
        problem,
        f,
        method="interior-point + active-set",
        iterations=iterations,
        polish_rounds=rounds,
        seconds=time.perf_counter() - start,
        converged=converged,
    )


def npmle_em(
    y: object,
    se: object = None,
    family: str = "gaussian",
    trials: object = None,
    grid: object = None,
    weights: object = None,
    *,
    iterations: int = 1000,
    tol: float = 1e-10,
) -> NpmleResult:
    """Plain EM for the same problem (f <- f * D(f) from uniform weights 1/m): the baseline.

    EM converges sublinearly; after ``iterations`` steps it is usually well short of
    the optimum (``converged`` says whether the certificate ``kkt_max <= 1 + tol`` holds).

    Examples
    --------
    >>> import numpy as np
    >>> from multilevel.deconv import npmle, npmle_em
    >>> y = np.random.default_rng(1).normal(size=100)
    >>> bool(npmle_em(y, grid=50, iterations=200).loglik <= npmle(y, grid=50).loglik + 1e-9)
    True
    """
    if not isinstance(iterations, (int, np.integer)) or iterations < 0:
        raise ModelError(f"iterations must be a non-negative integer; got {iterations!r}")
    start = time.perf_counter()
    kernel, data, solved, g, problem = _setup(family, y, se, trials, grid, weights, False, DEFAULT_BIN_WIDTH)
    with blas_threads(0):  # matrix-vector products only: memory-bound
        f = em_iterations(problem, int(iterations))
    D = problem.gradient(f)
    return _result(
        kernel,
        data,
        solved,
        g,
        problem,
        f,
        method="em",
        iterations=int(iterations),
        polish_rounds=0,
        seconds=time.perf_counter() - start,
        converged=bool(D.max() <= 1 + tol),
    )
