"""pbkrtest's Kenward-Roger algebra with V as an n x n matrix: the check on the blocked one."""

import numpy as np


def dense_z(fit):
    """Z (n, q) in the blocked coordinates: blocks in spec order, each level-major."""
    d = fit.design
    n = d.n
    cols, start = [], 0
    for g, gd in zip(fit.spec.groupings, d.groups):
        Zk = np.zeros((n, g.size))
        for a in range(g.q):
            Zk[np.arange(n), gd.codes * g.q + a] = gd.values[:, a]
        cols.append(Zk)
        start += g.size
    return np.hstack(cols)


def dense_products(fit):
    """P_i, Q_ij, K_ij as pbkrtest's vcovAdj builds them (G for the residual: W^{-1})."""
    from multilevel.lmm.kr_products import covariance_parameters

    obj = fit.objective
    Z, X = dense_z(fit), fit.design.X
    w = fit.design.residual_weights
    n = X.shape[0]
    w = np.ones(n) if w is None else w
    Ts = fit.factor.templates
    s2 = 1.0 if obj.sigma_fixed is not None else fit.sigma**2
    blocks, start = [], 0
    for g in fit.spec.groupings:
        blocks.append((start, g.n_levels, g.q))
        start += g.size
    Lam = np.zeros((start, start))
    for (off, nl, q), T in zip(blocks, Ts):
        for lev in range(nl):
            sl = slice(off + lev * q, off + (lev + 1) * q)
            Lam[sl, sl] = T
    V = s2 * (Z @ Lam @ Lam.T @ Z.T + np.diag(1.0 / w))
    Vi = np.linalg.inv(V)
    G = []
    for par in covariance_parameters(obj):
        if par.block < 0:
            G.append(np.diag(1.0 / w))
            continue
        off, nl, q = blocks[par.block]
        E = np.zeros((start, start))
        for a, b in par.pairs:
            E[off + np.arange(nl) * q + a, off + np.arange(nl) * q + b] = 1.0
        G.append(Z @ E @ Z.T)
    H = [Gi @ Vi for Gi in G]
    O = [h @ X for h in H]
    T = Vi @ X
    g = len(G)
    P = np.array([-(o.T @ T) for o in O])
    Q = np.array([[O[i].T @ Vi @ O[j] for j in range(g)] for i in range(g)])
    K = np.array([[np.sum(H[i].T * H[j]) for j in range(g)] for i in range(g)])
    return P, Q, K
