"""The me() likelihood fit: the integral is exact (against the joint Gaussian of y and the
observed covariates), the optimum, the attenuation it removes, the failure paths."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import multilevel
from multilevel.api import Model
from multilevel.errors import ModelError
from multilevel.lmm.measurement import build_loglik

BRMS = Path(__file__).parent.parent / "data" / "brms"


def joint_loglik(model, x) -> float:
    """log N of (y, w_1, ..., w_K) stacked, with the true covariates a Gaussian vector."""
    d, infos, arrays = model.design, model.latent_info, model.latent_data
    n, p = d.X.shape
    beta = x[:p]
    at = p
    Q = sum(g.n_levels * g.q for g in model.spec.groupings)
    Z = np.zeros((n, Q))
    D = np.zeros((Q, Q))
    off = 0
    for g, gd in zip(model.spec.groupings, d.groups):
        r, c = np.tril_indices(g.q)
        T = np.zeros((g.q, g.q))
        T[r, c] = x[at : at + len(r)]
        at += len(r)
        for lev in range(g.n_levels):
            sl = slice(off + lev * g.q, off + (lev + 1) * g.q)
            D[sl, sl] = T @ T.T
        cols = off + gd.codes[:, None] * g.q + np.arange(g.q)
        np.put_along_axis(Z, cols, gd.values, axis=1)
        off += g.n_levels * g.q
    sigma = np.exp(x[at])
    K = len(infos)
    mu, tau = x[at + 1 : at + 1 + K], np.exp(x[at + 1 + K : at + 1 + 2 * K])
    Xo = d.X.copy()
    for li in infos:
        Xo[:, li.index] = 0.0
    mean_y = Xo @ beta + sum(beta[li.index] * mu[k] for k, li in enumerate(infos))
    cov_yy = Z @ D @ Z.T + sigma**2 * np.eye(n)
    blocks_mean, cross, ww = [mean_y], [], []
    for k, (li, a) in enumerate(zip(infos, arrays)):
        b = beta[li.index]
        cov_yy += b**2 * tau[k] ** 2 * np.eye(n)
        cross.append(b * tau[k] ** 2 * np.eye(n))
        ww.append(np.diag(tau[k] ** 2 + a["sd"] ** 2))
        blocks_mean.append(np.full(n, mu[k]))
    top = np.hstack([cov_yy, *cross])
    rows = [top]
    for k in range(K):
        row = [cross[k].T] + [ww[k] if j == k else np.zeros((n, n)) for j in range(K)]
        rows.append(np.hstack(row))
    V = np.vstack(rows)
    obs = np.concatenate([d.y, *(a["obs"] for a in arrays)])
    return float(stats.multivariate_normal(np.concatenate(blocks_mean), V).logpdf(obs))


@pytest.fixture(scope="module")
def two_me() -> pd.DataFrame:
    rng = np.random.default_rng(8)
    n = 48
    g = np.repeat(np.arange(8), 6)
    x1, x2, z = rng.normal(1, 1, n), rng.normal(-1, 0.5, n), rng.normal(size=n)
    s1, s2 = rng.uniform(0.2, 0.6, n), rng.uniform(0.1, 0.3, n)
    y = 0.3 + 0.8 * x1 - 0.5 * x2 + 0.2 * z + rng.normal(0, 0.4, 8)[g] + rng.normal(0, 0.5, n)
    return pd.DataFrame(
        {
            "y": y,
            "w1": x1 + rng.normal(0, s1),
            "s1": s1,
            "w2": x2 + rng.normal(0, s2),
            "s2": s2,
            "z": z,
            "g": g,
        }
    )


@pytest.mark.parametrize(
    "formula", ["y ~ me(w1, s1) + z + (1 | g)", "y ~ me(w1, s1) + me(w2, s2) + (1 + z | g)"]
)
def test_the_integral_and_its_gradient_are_exact(two_me, formula):
    """The value against the joint Gaussian of y and w; the NumPy gradient
    (multilevel.lmm.measurement_loglik) against central differences."""
    from multilevel.lmm.measurement_loglik import loglik_and_gradient

    m = Model(formula, two_me)
    loglik, data, _, _ = build_loglik(m)
    rng = np.random.default_rng(1)
    n_x = (
        m.design.X.shape[1] + sum(g.q * (g.q + 1) // 2 for g in m.spec.groupings) + 1 + 2 * len(m.latent_info)
    )
    for _ in range(3):
        x = rng.normal(0, 0.5, n_x)
        assert float(loglik(x, data)) == pytest.approx(joint_loglik(m, x), rel=1e-10)
        _, g = loglik_and_gradient(x, data)
        fd = np.empty(n_x)
        for j in range(n_x):
            e = np.zeros(n_x)
            e[j] = 1e-6
            fd[j] = (loglik(x + e, data) - loglik(x - e, data)) / 2e-6
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-5)


def test_fit_on_the_brms_data():
    d = pd.read_csv(BRMS / "me_data.csv")
    ref = json.loads((BRMS / "brms_refs.json").read_text())["me"]
    m = multilevel.fit("y ~ me(x, sdx) + (1 | g)", d)
    assert m.converged and m.estimate.gradient_max < 1e-4
    post = {r["variable"]: r for r in ref["summary"]}
    # the ML estimates sit within a fraction of a posterior SD of brms's posterior means
    # (weak priors, 200 rows); the SEs near the posterior SDs
    pairs = {
        "Intercept": ("b_Intercept", m.fixef["Intercept"], m.fixef_se["Intercept"]),
        "me(x, sdx)": ("bsp_mexsdx", m.fixef["me(x, sdx)"], m.fixef_se["me(x, sdx)"]),
        "meanme_x": ("meanme_mex", *m.latent_table().loc["meanme_x"]),
        "sdme_x": ("sdme_mex", *m.latent_table().loc["sdme_x"]),
    }
    for name, (theirs, est, se) in pairs.items():
        r = post[theirs]
        assert abs(est - r["mean"]) < 0.25 * r["sd"], name
        assert se == pytest.approx(r["sd"], rel=0.15), name
    # the attenuation: the naive slope is lme4's ML fit (0.7095); the truth is 1
    naive = next(f for f in ref["naive_lmer"]["fixef"] if f["term"] == "x")["estimate"]
    att = m.attenuation().loc["me(x, sdx)"]
    assert att["naive"] == pytest.approx(naive, rel=1e-6)
    assert abs(att["corrected"] - 1.0) < 2.5 * m.fixef_se["me(x, sdx)"]
    assert abs(att["naive"] - 1.0) > 5 * float(m.naive.fixef_se["x"])  # 6.3 of its SEs off the truth
    assert att["naive / corrected"] == pytest.approx(att["mean reliability"], abs=0.03)
    assert "Attenuation removed" in m.summary()
    json.dumps(m.to_dict())


def test_optimum_is_a_maximum(two_me):
    m = multilevel.fit("y ~ me(w1, s1) + z + (1 | g)", two_me)
    assert m.converged
    model = m.model
    loglik, data, _, _ = build_loglik(model)
    names = m.estimate.names
    x = np.concatenate(
        [
            m.estimate.beta,
            m.estimate.templates[0].ravel(),
            [np.log(m.sigma)],
            m.estimate.mu,
            np.log(m.estimate.tau),
        ]
    )
    assert len(x) == len(names)
    best = float(loglik(x, data))
    assert best == pytest.approx(m.loglik, abs=1e-8)
    rng = np.random.default_rng(2)
    for _ in range(20):
        assert float(loglik(x + rng.normal(0, 1e-3, x.size), data)) <= best + 1e-9


def test_failure_paths(two_me):
    d = two_me.assign(w3=np.where(np.arange(len(two_me)) % 5 == 0, np.nan, two_me["w1"]))
    with pytest.raises(ModelError, match="sample"):
        multilevel.fit("y ~ mi(w3) + (1 | g)", d)
    with pytest.raises(ModelError, match="maximum likelihood"):
        multilevel.fit("y ~ me(w1, s1) + (1 | g)", two_me, reml=True)
    with pytest.raises(ModelError, match="Gaussian"):
        multilevel.fit(
            "y ~ me(w1, s1) + (1 | g)", two_me.assign(y=(two_me["y"] > 0).astype(int)), family="binomial"
        )
