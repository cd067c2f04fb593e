"""The profiled criterion of a one-block LMM, its analytic gradient, and the optimizer.

Most small LMMs have one grouping block (``(Days | Subject)``, ``(1 | Batch)``, a
bootstrap replicate of either). For them the whole fit can run on the per-level
cross-products ``A11[l] = Z_l'WZ_l`` and ``A1R[l] = Z_l'W[X y]`` and on ``ARR``:
with the template ``T`` (``Lambda = I (x) T``), ``M_l = T'A11[l]T + I = L_l L_l'``,
``E_l = L_l^{-1} T'A11[l]`` and ``C_l = L_l^{-1} T'A1R[l]``, the Schur complement of
``[X y]`` is ``ARR - sum_l C_l'C_l``, whose factor gives ``log|R_X|^2``, ``beta``
and the penalized RSS ``r2`` (Bates et al. 2015). In the marginal form
``H = I + Z T T'Z'`` the gradient needs no inverse of ``T`` (so it holds on the
boundary too): with ``A_l = Z_l'H^{-1}Z_l = A11[l] - E_l'E_l``,
``B_l = Z_l'H^{-1}X_l``, ``s_l = Z_l'H^{-1}(y_l - X_l beta)`` and
``C = X'H^{-1}X``,

    d criterion / d T[a, b] = 2 [G T]_{ab},
    G = sum_l A_l - [REML] sum_l B_l C^{-1} B_l' - (nu / r2) sum_l s_l s_l'.

The criterion depends on ``T`` only through ``T T'``, so it is unchanged when a
column of ``T`` changes sign: the optimizer (BFGS with a backtracking line
search) runs without bounds, and the columns are turned to non-negative
diagonals at the end, which is the bounded problem solved exactly.

Plain Python over NumPy arrays: :mod:`multilevel.linalg.one_block_compiled`
compiles this same file with Numba (:func:`evaluate` is then the loops of
:func:`evaluate_loops`; interpreted, the batched NumPy of :func:`evaluate_batched`).
The one-pass cross-products, the start and the final factor are here too, for the
compiled fits.

Why this is long: Numba compiles the file as one module, and its kernels call
each other (a split would need a second compiled module importing the first).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: set to Numba's ``njit`` by :mod:`multilevel.linalg.one_block_compiled` before it
#: executes this file as its own module; the identity here
kernel: Any = globals().get("_KERNEL_DECORATOR") or (lambda f: f)

LOG_2PI = math.log(2.0 * math.pi)

#: return codes of :func:`minimize`
CONVERGED, MAX_ITERATIONS, LINE_SEARCH_FAILED, NOT_FINITE = 0, 1, 2, 3

#: relative size of the criterion's rounding: a step predicted to gain less ends the search
NOISE = 1e-14


@kernel
def _cholesky(M: np.ndarray) -> bool:  # pragma: no cover - also compiled
    """Lower Cholesky factor of a small SPD matrix, in place; False if not PD."""
    q = M.shape[0]
    for j in range(q):
        d = M[j, j]
        for k in range(j):
            d -= M[j, k] * M[j, k]
        if not d > 0.0:
            return False
        d = math.sqrt(d)
        M[j, j] = d
        for i in range(j + 1, q):
            s = M[i, j]
            for k in range(j):
                s -= M[i, k] * M[j, k]
            M[i, j] = s / d
        for i in range(j):
            M[i, j] = 0.0
    return True


@kernel
def _forward(L: np.ndarray, B: np.ndarray) -> None:  # pragma: no cover - also compiled
    """``B <- L^{-1} B`` for lower-triangular ``L`` (q x q) and ``B`` (q x c)."""
    q, c = B.shape
    for i in range(q):
        r = 1.0 / L[i, i]
        for j in range(c):
            s = B[i, j]
            for k in range(i):
                s -= L[i, k] * B[k, j]
            B[i, j] = s * r


@kernel
def _mirror(M: np.ndarray) -> None:  # pragma: no cover - also compiled
    """Copy the lower triangle of a square matrix to the upper."""
    for i in range(M.shape[0]):
        for j in range(i):
            M[j, i] = M[i, j]


@kernel
def _level_pass(T: np.ndarray, A11: np.ndarray, A1R: np.ndarray, ws: Any) -> float:  # pragma: no cover
    """Per level: factor ``M_l = L1[l] L1[l]'``, store ``E_l`` and ``C_l``, subtract
    ``C_l'C_l`` from ``S`` and add ``A_l`` to ``G`` (lower triangles; the arrays of the
    work space ``ws``); the return is ``log|M|`` (NaN if one is not PD)."""
    S, G, E, C, L1 = ws[1], ws[2], ws[3], ws[4], ws[7]
    n1, q, _ = A11.shape
    m = A1R.shape[2]
    logdet = 0.0
    for lev in range(n1):
        A, L, El, Cl = A11[lev], L1[lev], E[lev], C[lev]
        for i in range(q):  # E_l = T'A (then L^{-1} of it), C_l = T'A1R
            for j in range(q):
                s = 0.0
                for a in range(q):
                    s += T[a, i] * A[a, j]
                El[i, j] = s
            for j in range(m):
                s = 0.0
                for a in range(q):
                    s += T[a, i] * A1R[lev, a, j]
                Cl[i, j] = s
        for i in range(q):  # M = (T'A) T + I
            for j in range(i + 1):
                s = 1.0 if i == j else 0.0
                for a in range(q):
                    s += El[i, a] * T[a, j]
                L[i, j] = s
        if not _cholesky(L):
            return math.nan
        for i in range(q):
            logdet += 2.0 * math.log(L[i, i])
        _forward(L, El)
        _forward(L, Cl)
        for i in range(m):
            for j in range(i + 1):
                s = 0.0
                for a in range(q):
                    s += Cl[a, i] * Cl[a, j]
                S[i, j] -= s
        for i in range(q):
            for j in range(i + 1):
                s = 0.0
                for a in range(q):
                    s += El[a, i] * El[a, j]
                G[i, j] += A[i, j] - s
    return logdet


@kernel
def _level_pass2(T: np.ndarray, A11: np.ndarray, A1R: np.ndarray, ws: Any) -> float:  # pragma: no cover
    """:func:`_level_pass` for two columns per level (a random intercept and slope),
    written out: the same operations without the loops over the columns."""
    S, G, E, C, L1 = ws[1], ws[2], ws[3], ws[4], ws[7]
    n1 = A11.shape[0]
    m = A1R.shape[2]
    t00, t10, t11 = T[0, 0], T[1, 0], T[1, 1]
    logdet = 0.0
    for lev in range(n1):
        a00, a10, a11 = A11[lev, 0, 0], A11[lev, 1, 0], A11[lev, 1, 1]
        # K = T'A (rows of E before the solve); M = K T + I
        k00, k01 = t00 * a00 + t10 * a10, t00 * a10 + t10 * a11
        k10, k11 = t11 * a10, t11 * a11
        m00 = k00 * t00 + k01 * t10 + 1.0
        m10 = k10 * t00 + k11 * t10
        m11 = k11 * t11 + 1.0
        if not m00 > 0.0:
            return math.nan
        l00 = math.sqrt(m00)
        l10 = m10 / l00
        d = m11 - l10 * l10
        if not d > 0.0:
            return math.nan
        l11 = math.sqrt(d)
        L1[lev, 0, 0], L1[lev, 0, 1], L1[lev, 1, 0], L1[lev, 1, 1] = l00, 0.0, l10, l11
        logdet += 2.0 * (math.log(l00) + math.log(l11))
        r0, r1 = 1.0 / l00, 1.0 / l11
        e00, e01 = k00 * r0, k01 * r0
        e10, e11 = (k10 - l10 * e00) * r1, (k11 - l10 * e01) * r1
        E[lev, 0, 0], E[lev, 0, 1], E[lev, 1, 0], E[lev, 1, 1] = e00, e01, e10, e11
        for j in range(m):
            b0, b1 = A1R[lev, 0, j], A1R[lev, 1, j]
            c0 = (t00 * b0 + t10 * b1) * r0
            C[lev, 0, j] = c0
            C[lev, 1, j] = (t11 * b1 - l10 * c0) * r1
        for i in range(m):
            ci0, ci1 = C[lev, 0, i], C[lev, 1, i]
            for j in range(i + 1):
                S[i, j] -= ci0 * C[lev, 0, j] + ci1 * C[lev, 1, j]
        G[0, 0] += a00 - (e00 * e00 + e10 * e10)
        G[1, 0] += a10 - (e01 * e00 + e11 * e10)
        G[1, 1] += a11 - (e01 * e01 + e11 * e11)
    return logdet


@kernel
def _fixed_part(
    S: np.ndarray, p: int, beta: np.ndarray, Cinv: np.ndarray, LX: np.ndarray, c: np.ndarray, Linv: np.ndarray
) -> tuple[float, float]:  # pragma: no cover - also compiled
    """Factor the Schur complement ``S`` of ``[X y]``: ``beta``, ``C^{-1} =
    (X'H^{-1}X)^{-1}``, and ``(log|R_X|^2, r2)``; r2 NaN if not PD. ``LX``, ``c``
    and ``Linv`` are work space."""
    LX[:, :] = S[:p, :p]
    if not _cholesky(LX):
        return 0.0, math.nan
    c[:, 0] = S[:p, p]
    _forward(LX, c)
    r2 = S[p, p]
    logdet = 0.0
    for i in range(p):
        r2 -= c[i, 0] * c[i, 0]
        logdet += 2.0 * math.log(LX[i, i])
    for i in range(p - 1, -1, -1):  # beta = LX^{-T} c
        s = c[i, 0]
        for k in range(i + 1, p):
            s -= LX[k, i] * beta[k]
        beta[i] = s / LX[i, i]
    _inverse_from_factor(LX, Linv, Cinv)
    return logdet, r2


@kernel
def _inverse_from_factor(L: np.ndarray, Linv: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    """``out = (L L')^{-1}`` from the lower Cholesky factor ``L`` (``Linv``: work space)."""
    k = L.shape[0]
    Linv[:, :] = 0.0
    for i in range(k):
        Linv[i, i] = 1.0
    _forward(L, Linv)
    for i in range(k):
        for j in range(k):
            s = 0.0
            for a in range(k):
                s += Linv[a, i] * Linv[a, j]
            out[i, j] = s


@kernel
def _gradient_terms(
    A1R: np.ndarray,
    E: np.ndarray,
    C: np.ndarray,
    beta: np.ndarray,
    Cinv: np.ndarray,
    w_r2: float,
    reml: bool,
    G: np.ndarray,
    B: np.ndarray,
    t: np.ndarray,
    zr: np.ndarray,
) -> None:  # pragma: no cover - also compiled
    """Subtract the REML term ``B_l C^{-1} B_l'`` and ``(nu / r2) s_l s_l'`` from ``G``
    (``B``, ``t``, ``zr``: work space)."""
    n1, q, m = C.shape
    p = m - 1
    for lev in range(n1):
        for i in range(q):
            zr[i] = A1R[lev, i, p]
            t[i] = C[lev, i, p]
            for j in range(p):
                zr[i] -= A1R[lev, i, j] * beta[j]
                t[i] -= C[lev, i, j] * beta[j]
        for i in range(q):
            s_i = zr[i]
            for a in range(q):
                s_i -= E[lev, a, i] * t[a]
            zr[i] = s_i  # now s_l
            for j in range(p):
                s = A1R[lev, i, j]
                for a in range(q):
                    s -= E[lev, a, i] * C[lev, a, j]
                B[i, j] = s
        for i in range(q):
            for j in range(q):
                G[i, j] -= w_r2 * zr[i] * zr[j]
                if reml:
                    s = 0.0
                    for a in range(p):
                        for b in range(p):
                            s += B[i, a] * Cinv[a, b] * B[j, b]
                    G[i, j] -= s


@kernel
def _fixed_criterion(
    S: np.ndarray, logdet_z: float, ws: Any, n: float, reml: bool, slw: float
) -> tuple[float, float, float]:  # pragma: no cover - also compiled
    """From the Schur complement ``S`` of ``[X y]``: ``(criterion, nu, r2)``, the
    criterion inf where a factor is not positive definite (``logdet_z`` NaN or ``S``
    not PD); ``beta`` and ``C^{-1}`` go to the work space."""
    p = S.shape[0] - 1
    if math.isnan(logdet_z):
        return math.inf, 0.0, math.nan
    logdet_x, r2 = _fixed_part(S, p, ws[5], ws[6], ws[8], ws[9], ws[10])
    if not r2 > 0.0:
        return math.inf, 0.0, r2
    nu = n - p if reml else n
    return _criterion(logdet_z, logdet_x, r2, nu, reml, slw), nu, r2


@kernel
def _criterion(
    logdet_z: float, logdet_x: float, r2: float, nu: float, reml: bool, slw: float
) -> float:  # pragma: no cover
    """The profiled REML criterion or -2 log-likelihood
    (:func:`multilevel.linalg.criteria.profiled_deviance`)."""
    f = logdet_z + nu * (1.0 + LOG_2PI + math.log(r2 / nu)) - slw
    return f + logdet_x if reml else f


@kernel
def workspace(n1: int, q: int, p: int) -> Any:  # pragma: no cover - also compiled
    """The arrays one evaluation writes, allocated once per search."""
    m = p + 1
    T, S, G, L1 = np.zeros((q, q)), np.empty((m, m)), np.empty((q, q)), np.empty((n1, q, q))
    E, C, beta, Cinv = np.empty((n1, q, q)), np.empty((n1, q, m)), np.empty(p), np.empty((p, p))
    LX, c, Linv, B = np.empty((p, p)), np.empty((p, 1)), np.empty((p, p)), np.empty((q, p))
    return (T, S, G, E, C, beta, Cinv, L1, LX, c, Linv, B, np.empty(q), np.empty(q))


@kernel
def evaluate_loops(
    theta: np.ndarray, data: Any, grad: np.ndarray, ws: Any
) -> float:  # pragma: no cover - also compiled
    """The profiled criterion at ``theta`` (inf where a factor is not PD), its
    gradient written to ``grad``. ``data`` is ``(rows, cols, A11, A1R, ARR, n, reml,
    sum log w)`` (``A1R``: ``(n1, q, p + 1)``); ``ws`` is :func:`workspace`'s. Loops
    over levels: what the compiled module runs."""
    rows, cols, A11, A1R, ARR, n, reml, slw = data
    T, S, G, E, C, beta, Cinv, B, t, zr = (
        ws[0],
        ws[1],
        ws[2],
        ws[3],
        ws[4],
        ws[5],
        ws[6],
        ws[11],
        ws[12],
        ws[13],
    )
    q = A11.shape[1]
    T[:, :] = 0.0
    for i in range(theta.size):
        T[rows[i], cols[i]] = theta[i]
    S[:, :] = ARR
    G[:, :] = 0.0
    logdet_z = _level_pass2(T, A11, A1R, ws) if q == 2 else _level_pass(T, A11, A1R, ws)
    _mirror(S)
    _mirror(G)
    f, nu, r2 = _fixed_criterion(S, logdet_z, ws, n, reml, slw)
    if not f < math.inf:
        grad[:] = 0.0
        return math.inf
    _gradient_terms(A1R, E, C, beta, Cinv, nu / r2, reml, G, B, t, zr)
    for k in range(theta.size):
        s = 0.0
        for j in range(q):
            s += G[rows[k], j] * T[j, cols[k]]
        grad[k] = 2.0 * s
    return f


def evaluate_batched(theta: np.ndarray, data: Any, grad: np.ndarray, ws: Any) -> float:
    """:func:`evaluate_loops` as batched NumPy operations over the levels (what the
    interpreted module runs: a few dozen array operations per evaluation)."""
    rows, cols, A11, A1R, ARR, n, reml, slw = data
    q = A11.shape[1]
    p = ARR.shape[0] - 1
    T = np.zeros((q, q))
    T[rows, cols] = theta
    TA = np.matmul(T.T, A11)
    try:
        L = np.linalg.cholesky(np.matmul(TA, T) + np.eye(q))
    except np.linalg.LinAlgError:
        grad[:] = 0.0
        return math.inf
    E = np.linalg.solve(L, TA)
    C = np.linalg.solve(L, np.matmul(T.T, A1R))
    S = ARR - np.einsum("lai,laj->ij", C, C)
    diag = np.diagonal(L, axis1=1, axis2=2)
    logdet_z = 2.0 * float(np.log(diag).sum())
    f, nu, r2 = _fixed_criterion(S, logdet_z, ws, n, reml, slw)
    if not f < math.inf:
        grad[:] = 0.0
        return math.inf
    beta, Cinv = ws[5], ws[6]
    ET = np.swapaxes(E, 1, 2)
    s = A1R[:, :, p] - A1R[:, :, :p] @ beta
    s -= np.einsum("lia,la->li", ET, C[:, :, p] - C[:, :, :p] @ beta)
    G = A11.sum(axis=0) - np.einsum("lai,laj->ij", E, E) - (nu / r2) * (s.T @ s)
    if reml and p:
        B = A1R[:, :, :p] - np.matmul(ET, C[:, :, :p])
        G -= np.einsum("lia,ab,ljb->ij", B, Cinv, B)
    grad[:] = 2.0 * (G @ T)[rows, cols]
    return f


#: the interpreted module evaluates in batched NumPy, the compiled one in loops
evaluate = evaluate_loops if "_KERNEL_DECORATOR" in globals() else evaluate_batched


@kernel
def _bfgs_update(Hi: np.ndarray, s: np.ndarray, y: np.ndarray, sy: float) -> None:  # pragma: no cover
    """Inverse-Hessian BFGS update ``(I - rho s y') Hi (I - rho y s') + rho s s'``."""
    k = s.size
    rho = 1.0 / sy
    Hy = Hi @ y
    yHy = y @ Hy
    for i in range(k):
        for j in range(k):
            Hi[i, j] += rho * ((1.0 + rho * yHy) * s[i] * s[j] - Hy[i] * s[j] - s[i] * Hy[j])


@kernel
def _normalize_columns(theta: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> bool:  # pragma: no cover
    """Turn every template column with a negative diagonal (the same ``T T'``); True if
    one was."""
    turned = False
    for c in range(theta.size):
        if rows[c] == cols[c] and theta[c] < 0.0:
            turned = True
            for i in range(theta.size):
                if cols[i] == cols[c]:
                    theta[i] = -theta[i]
    return turned


@kernel
def _fd_hessian(
    x: np.ndarray, g: np.ndarray, data: Any, ws: Any, H: np.ndarray
) -> bool:  # pragma: no cover - also compiled
    """Forward differences of the analytic gradient ``g`` (at ``x``), symmetrized, into
    ``H``; False if a step leaves the region where the criterion is finite."""
    k = x.size
    gp = np.empty(k)
    xt = x.copy()
    for i in range(k):
        h = 1e-4 * max(abs(x[i]), 1e-2)
        xt[i] = x[i] + h
        f = evaluate(xt, data, gp, ws)
        xt[i] = x[i]
        if not math.isfinite(f):
            return False
        for j in range(k):
            H[j, i] = (gp[j] - g[j]) / h
    for i in range(k):
        for j in range(i):
            v = 0.5 * (H[i, j] + H[j, i])
            H[i, j] = v
            H[j, i] = v
    return True


@kernel
def _spd_inverse(H: np.ndarray, out: np.ndarray) -> bool:  # pragma: no cover - also compiled
    """``out = H^{-1}`` for symmetric positive-definite ``H``; False if it is not."""
    L = H.copy()
    if not _cholesky(L):
        return False
    _inverse_from_factor(L, np.empty_like(L), out)
    return True


@kernel
def minimize(
    x: np.ndarray,
    data: Any,
    gtol: float,
    max_iter: int,
    g: np.ndarray,
    H: np.ndarray,
    final: bool,
    L1: np.ndarray,
    LS: np.ndarray,
    beta: np.ndarray,
    u: np.ndarray,
    Cinv: np.ndarray,
    stats: np.ndarray,
) -> tuple[float, int, int]:  # pragma: no cover - also compiled
    """BFGS from ``x`` (overwritten by the optimum, columns normalized; ``g`` and ``H``:
    the gradient and the finite-difference Hessian there): ``(criterion, evaluations,
    return code)``. The inverse Hessian starts from finite differences at ``x``.
    ``data`` is :func:`evaluate_loops`'s. ``stats[3]`` is the Newton step of
    :func:`_newton_step`; with ``final`` (the compiled loops) the factor and solution
    at the optimum go to ``L1`` ... ``stats`` (:func:`_final_into`).

    Why this is long: the line search and the update share the iteration's state.
    """
    k = x.size
    rows, cols, A11 = data[0], data[1], data[2]
    ws = workspace(A11.shape[0], A11.shape[1], data[4].shape[0] - 1)
    f = evaluate(x, data, g, ws)
    evals = 1
    if not math.isfinite(f):
        return f, evals, NOT_FINITE
    Hi = np.eye(k)
    evals += k
    if not (_fd_hessian(x, g, data, ws, H) and _spd_inverse(H, Hi)):
        Hi = np.eye(k)
    scaled = not np.all(Hi == np.eye(k))
    gn = np.empty(k)
    xn = np.empty(k)
    code = MAX_ITERATIONS
    stale = True  # the work space holds a point other than x (a difference, a rejected trial)
    for _ in range(max_iter):
        gmax = np.max(np.abs(g))
        if gmax <= gtol:
            code = CONVERGED
            break
        d = -(Hi @ g)
        if not scaled:  # an identity start: at most 0.5 in any coordinate
            d *= min(1.0, 0.5 / max(np.max(np.abs(d)), 1e-300))
        slope = g @ d
        if not slope < 0.0:  # not a descent direction: restart from the gradient
            Hi = np.eye(k)
            scaled = False
            d = -g * min(1.0, 0.5 / gmax)
            slope = g @ d
        if -slope <= NOISE * (1.0 + abs(f)):  # the predicted decrease is below rounding
            code = CONVERGED
            break
        t, fn, accepted = 1.0, math.inf, False
        for _ in range(60):
            xn[:] = x + t * d
            fn = evaluate(xn, data, gn, ws)
            evals += 1
            if fn <= f + 1e-4 * t * slope:
                accepted = True
                break
            if math.isfinite(fn):  # minimum of the quadratic through f, slope and fn
                t_q = -slope * t * t / (2.0 * (fn - f - slope * t))
                t = min(max(t_q, 0.1 * t), 0.5 * t)
            else:
                t *= 0.25
        if not accepted:
            code = CONVERGED if gmax <= 1e3 * gtol else LINE_SEARCH_FAILED
            stale = True
            break
        stale = False
        s = xn - x
        yv = gn - g
        sy = s @ yv
        if not scaled and sy > 0.0:
            Hi = np.eye(k) * (sy / (yv @ yv))
            scaled = True
        if sy > 1e-12 * math.sqrt((s @ s) * (yv @ yv)):
            _bfgs_update(Hi, s, yv, sy)
        decrease = f - fn
        x[:] = xn
        g[:] = gn
        f = fn
        if decrease <= 1e-15 * (1.0 + abs(f)) and np.max(np.abs(s)) <= 1e-12 * (1.0 + np.max(np.abs(x))):
            code = CONVERGED
            break
    # the state at x (the work space may hold a rejected trial's, the columns may turn)
    if _normalize_columns(x, rows, cols) or stale:
        f = evaluate(x, data, g, ws)
        evals += 1
    if final and math.isfinite(f):
        _final_into(ws, L1, LS, beta, u, Cinv, stats)
    if not _fd_hessian(x, g, data, ws, H):
        H[:, :] = math.nan
    stats[3] = _newton_step(x, rows, cols, g, H)
    return f, evals + k, code


@kernel
def _final_into(
    ws: Any,
    L1: np.ndarray,
    LS: np.ndarray,
    beta: np.ndarray,
    u: np.ndarray,
    Cinv: np.ndarray,
    stats: np.ndarray,
) -> None:  # pragma: no cover - also compiled
    """From the work space of :func:`evaluate_loops` at the optimum: the levels'
    factors ``L1``, the bordered dense factor ``LS = [[L_XX, 0], [c_X', sqrt(r2)]]``,
    ``beta``, the spherical effects ``u`` (``L_l' u_l = C_l (e_y - beta)``),
    ``C^{-1}`` and ``stats[:3] = (log|L_Z|^2, log|L_XX|^2, r2)`` (the layout of
    :class:`multilevel.linalg.factor.Factor`)."""
    S, C, b, L, LX, c, Ci = ws[1], ws[4], ws[5], ws[7], ws[8], ws[9], ws[6]
    n1, q, _ = L.shape
    p = b.size
    L1[:, :, :] = L
    Cinv[:, :] = Ci
    logdet_z = 0.0
    for lev in range(n1):
        for i in range(q):
            logdet_z += 2.0 * math.log(L[lev, i, i])
    r2 = S[p, p]
    logdet_x = 0.0
    LS[:, :] = 0.0
    for i in range(p):
        beta[i] = b[i]
        r2 -= c[i, 0] * c[i, 0]
        logdet_x += 2.0 * math.log(LX[i, i])
        LS[p, i] = c[i, 0]
        for j in range(i + 1):
            LS[i, j] = LX[i, j]
    LS[p, p] = math.sqrt(r2)
    for lev in range(n1):  # back substitution L_l' u_l = C_l[:, p] - C_l[:, :p] beta
        for i in range(q - 1, -1, -1):
            s = C[lev, i, p]
            for j in range(p):
                s -= C[lev, i, j] * b[j]
            for k in range(i + 1, q):
                s -= L[lev, k, i] * u[lev, k]
            u[lev, i] = s / L[lev, i, i]
    stats[0], stats[1], stats[2] = logdet_z, logdet_x, r2


@kernel
def _newton_step(
    x: np.ndarray, rows: np.ndarray, cols: np.ndarray, g: np.ndarray, H: np.ndarray
) -> float:  # pragma: no cover
    """``max |H_ff^{-1} g_f|`` over the parameters not on their bound (a template
    diagonal at 0): inf where ``H_ff`` is not positive definite, 0 if none is free
    (what :func:`multilevel.lmm.inference.convergence_verdict` judges)."""
    k = x.size
    free = np.empty(k, np.int64)
    nf = 0
    for i in range(k):
        if not (rows[i] == cols[i] and x[i] <= 1e-6):
            free[nf] = i
            nf += 1
    if nf == 0:
        return 0.0
    Hf = np.empty((nf, nf))
    step = np.empty((nf, 1))
    for a in range(nf):
        step[a, 0] = g[free[a]]
        for b in range(nf):
            Hf[a, b] = H[free[a], free[b]]
    if not _cholesky(Hf):
        return math.inf
    _forward(Hf, step)
    worst = 0.0
    for i in range(nf - 1, -1, -1):  # L' step = L^{-1} g
        s = step[i, 0]
        for j in range(i + 1, nf):
            s -= Hf[j, i] * step[j, 0]
        step[i, 0] = s / Hf[i, i]
        worst = max(worst, abs(step[i, 0]))
    return worst


@kernel
def crossproducts(
    codes: np.ndarray,
    V: np.ndarray,
    X: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    A11: np.ndarray,
    A1R: np.ndarray,
    ARR: np.ndarray,
) -> None:  # pragma: no cover - also compiled
    """One pass over the rows: ``A11[l] = sum w v v'``, ``A1R[l] = sum w v [x y]'`` and
    ``ARR = sum w [x y][x y]'`` (``v``: the row's term values, ``l``: its level)."""
    n, q = V.shape
    p = X.shape[1]
    A11[:, :, :] = 0.0
    A1R[:, :, :] = 0.0
    ARR[:, :] = 0.0
    d = np.empty(p + 1)
    for r in range(n):
        lev, wr = codes[r], w[r]
        for j in range(p):
            d[j] = X[r, j]
        d[p] = y[r]
        for a in range(q):
            va = wr * V[r, a]
            for b in range(q):
                A11[lev, a, b] += va * V[r, b]
            for j in range(p + 1):
                A1R[lev, a, j] += va * d[j]
        for j in range(p + 1):
            dj = wr * d[j]
            for k in range(j + 1):
                ARR[j, k] += dj * d[k]
    for j in range(p + 1):
        for k in range(j):
            ARR[k, j] = ARR[j, k]


@kernel
def moment_start(
    x: np.ndarray,
    k: int,
    a: int,
    A11: np.ndarray,
    A1R: np.ndarray,
    ARR: np.ndarray,
    n: float,
    lo: float,
    hi: float,
) -> None:  # pragma: no cover - also compiled
    """``x[k]`` (the template diagonal of the intercept, column ``a``) from one-way
    ANOVA moments on the residuals of the fixed-effect fit, clipped to ``[lo, hi]``:
    :func:`multilevel.lmm.start.moment_start` on one block. ``x`` stays where the
    moments do not apply."""
    n1 = A11.shape[0]
    p = ARR.shape[0] - 1
    LX = ARR[:p, :p].copy()
    if not _cholesky(LX):
        return
    c = ARR[:p, p:].copy()
    _forward(LX, c)
    beta = np.empty(p)
    for i in range(p - 1, -1, -1):
        s = c[i, 0]
        for j in range(i + 1, p):
            s -= LX[j, i] * beta[j]
        beta[i] = s / LX[i, i]
    rss = ARR[p, p]
    for i in range(p):
        rss -= beta[i] * ARR[i, p]
    if not (math.isfinite(rss) and rss > 0.0):
        return
    used, ssb, sq = 0, 0.0, 0.0
    for lev in range(n1):
        cnt = A11[lev, a, a]
        if cnt > 0.0:
            s = A1R[lev, a, p]
            for j in range(p):
                s -= A1R[lev, a, j] * beta[j]
            used += 1
            ssb += s * s / cnt
            sq += cnt * cnt
    if used < 2 or n <= used:
        return
    msw = max(rss - ssb, 0.0) / (n - used)
    n0 = (n - sq / n) / (used - 1)
    between = max((ssb / (used - 1) - msw) / n0, 0.0)
    resid = max(rss / n - between, 0.1 * rss / n)
    x[k] = min(max(math.sqrt(between / resid), lo), hi)
