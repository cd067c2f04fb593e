"""Full Bayes from the same formula: NumPyro's NUTS on the model spec of the likelihood fits.

:func:`multilevel.sample` (in :mod:`multilevel.api`) builds the model and calls
:func:`~multilevel.bayes.sampler.sample_model`, which returns a
:class:`~multilevel.bayes.posterior.PosteriorResult` (rendered as
:class:`multilevel.present.posterior.Posterior`). Gaussian models are sampled
with the random effects integrated out (exactly, from the cross-products) and
the effects drawn afterwards from their conditional; other families use a
non-centred parameterization. JAX and NumPyro are imported on first use only.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PosteriorResult", "parse_prior", "sample_model"]


def __getattr__(name: str) -> Any:
    if name == "sample_model":
        from .sampler import sample_model

        return sample_model
    if name == "PosteriorResult":
        from .posterior import PosteriorResult

        return PosteriorResult
    if name == "parse_prior":
        from .priors import parse_prior

        return parse_prior
    raise AttributeError(f"module 'multilevel.bayes' has no attribute {name!r}")
