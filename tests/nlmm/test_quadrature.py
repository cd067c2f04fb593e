"""Adaptive quadrature: its log-likelihood is the marginal one (checked against a brute
force grid), one node is the Laplace approximation, and a mean linear in the random
effects makes every rule exact."""

from pathlib import Path

import numpy as np
import pytest

import multilevel
from multilevel.errors import ModelError
from multilevel.formula.expression import evaluate
from multilevel.nlmm.laplace import NlmmObjective

PARAMS = {"lKe": "1", "lKa": "1 + (1 | Subject)", "lCl": "1 + (1 | Subject)"}
FORMULA = "conc ~ SSfol(Dose, Time, lKe, lKa, lCl)"


def _brute_force_loglik(problem, beta, theta, sigma, half_width=7.0, points=401):
    """Sum over subjects of log of the integral over the two spherical effects on a
    trapezoid grid in z = u / sigma (standard normal prior)."""
    z = np.linspace(-half_width, half_width, points)
    Z1, Z2 = np.meshgrid(z, z, indexing="ij")
    zz = np.column_stack([Z1.ravel(), Z2.ravel()])
    dz = z[1] - z[0]
    blocks = problem.blocks
    codes = blocks[0].codes
    lam = problem.lambda_matrix(theta)
    total = 0.0
    for j in range(blocks[0].n_levels):
        rows = codes == j
        u = np.zeros((zz.shape[0], problem.q))
        for k, blk in enumerate(blocks):
            u[:, blk.offset + j * blk.q] = sigma * zz[:, k]
        b = u @ lam.T
        phi = np.einsum("knp,p->nk", problem.X[:, rows], beta)[None] + np.einsum(
            "knq,mq->mnk", problem.Z[:, rows], b
        )
        env = {c: v[rows][None] for c, v in problem.covariates.items()}
        env.update({name: phi[..., k] for k, name in enumerate(problem.param_names)})
        mu = evaluate(problem.mean.tree, env, np)
        rss = np.sum((problem.y[rows][None] - mu) ** 2, axis=1)
        n_j = rows.sum()
        log_f = -0.5 * n_j * np.log(2 * np.pi * sigma**2) - rss / (2 * sigma**2)
        log_prior = -0.5 * np.sum(zz**2, axis=1) - np.log(2 * np.pi)
        a = log_f + log_prior
        top = a.max()
        total += top + np.log(np.sum(np.exp(a - top)) * dz * dz)
    return total


@pytest.fixture(scope="module")
def agq_fit(theoph):
    return multilevel.nlfit(FORMULA, theoph, PARAMS, nagq=15)


@pytest.fixture(scope="module")
def agq_truth(agq_fit):
    est = agq_fit.estimate
    return _brute_force_loglik(agq_fit.problem, est.beta, est.theta, est.sigma)


def test_quadrature_loglik_is_the_marginal_one(agq_fit, agq_truth):
    truth = agq_truth
    assert agq_fit.loglik == pytest.approx(truth, abs=1e-4)
    assert "quadrature" in agq_fit.summary()


def test_quadrature_converges_to_the_brute_force_integral(agq_fit, agq_truth):
    obj = NlmmObjective(agq_fit.problem)
    est = agq_fit.estimate
    assert -0.5 * obj.agq(est.beta, est.theta, est.sigma, 25) == pytest.approx(agq_truth, abs=1e-6)


def test_quadrature_differs_from_laplace_here(agq_fit, theoph):
    lap = multilevel.nlfit(FORMULA, theoph, PARAMS)
    est = lap.estimate
    truth = _brute_force_loglik(lap.problem, est.beta, est.theta, est.sigma)
    # the Laplace value is an approximation of this marginal likelihood; quadrature is not
    assert abs(lap.loglik - truth) > 1e-2
    assert agq_fit.loglik >= truth - 1e-6  # the quadrature maximum is at least as high


def test_one_node_is_laplace(theoph):
    lap = multilevel.nlfit(FORMULA, theoph, PARAMS)
    obj = NlmmObjective(lap.problem)
    est = lap.estimate
    assert obj.agq(est.beta, est.theta, est.sigma, 1) == pytest.approx(lap.deviance, abs=1e-6)


def test_linear_in_the_random_effect_every_rule_is_exact(orange_fit):
    obj = NlmmObjective(orange_fit.problem)
    est = orange_fit.estimate
    values = [obj.agq(est.beta, est.theta, est.sigma, k) for k in (1, 3, 9)]
    np.testing.assert_allclose(values, orange_fit.deviance, atol=1e-8)


def test_quadrature_needs_one_grouping_factor(orange):
    d = orange.assign(Block=(orange["age"] > 700).astype(int))
    with pytest.raises(ModelError, match="one grouping factor"):
        multilevel.nlfit(
            "circumference ~ SSlogis(age, Asym, xmid, scal)",
            d,
            {"Asym": "1 + (1 | Tree)", "xmid": "1 + (1 | Block)"},
            nagq=3,
        )


@pytest.mark.parametrize(
    "formula, data_name, params, beta",
    [
        (
            "circumference ~ SSlogis(age, Asym, xmid, scal)",
            "Orange",
            {"Asym": "1 + (1 | Tree)"},
            [192.0, 728.0, 348.0],
        ),
        (
            "conc ~ SSfol(Dose, Time, lKe, lKa, lCl)",
            "Theoph",
            {"lKe": "1 + (1 | Subject)", "lKa": "1 + (1 | Subject)", "lCl": "1 + (1 | Subject)"},
            [-2.45, 0.47, -3.23],
        ),
        (
            "circumference ~ Asym / (1 + exp((xmid - age) / scal))",
            "Orange",
            {"Asym": "1 + (1 + age | Tree)", "xmid": "1", "scal": "1"},
            [192.0, 728.0, 348.0],
        ),
    ],
)
def test_numpy_laplace_gradient_equals_jax_autodiff(formula, data_name, params, beta):
    """The NumPy objective (second-order jets, the gradient written out) against the JAX
    objective's automatic derivative through the modes, at points off the optimum."""
    import pandas as pd

    from multilevel.model.nonlinear import build_problem
    from multilevel.nlmm.laplace import NlmmObjective
    from multilevel.nlmm.numpy_laplace import NumpyLaplace

    d = pd.read_csv(Path(__file__).parent.parent / "data" / f"{data_name}.csv")
    pr = build_problem(formula, d, params)
    rng = np.random.default_rng(3)
    for _ in range(2):
        theta = np.where(
            pr.theta_rows == pr.theta_cols, rng.uniform(0.2, 1.0, pr.n_theta), rng.normal(0, 0.01, pr.n_theta)
        )
        x = np.concatenate([np.asarray(beta) * (1 + rng.normal(0, 0.02, len(beta))), theta])
        vj, gj, _ = NlmmObjective(pr).laplace_and_gradient(x)
        vn, gn, ok = NumpyLaplace(pr).laplace_and_gradient(x)
        assert ok
        assert vn == pytest.approx(vj, rel=1e-10)
        np.testing.assert_allclose(gn, gj, rtol=1e-6, atol=1e-6 * np.max(np.abs(gj)))
