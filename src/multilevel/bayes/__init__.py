"""Full Bayes from the same formula: NumPyro's NUTS on the model spec of the likelihood fits.

``sample(formula, data, ...)`` returns a :class:`Posterior`. Gaussian models are
sampled with the random effects integrated out (exactly, from the cross-products)
and the effects drawn afterwards from their conditional; other families use a
non-centred parameterization. JAX and NumPyro are imported on first use only.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Posterior", "parse_prior", "sample", "sample_model"]


def __getattr__(name: str) -> Any:
    if name in ("sample", "sample_model"):
        from . import sampler as _sampler

        return getattr(_sampler, name)
    if name == "Posterior":
        from .posterior import Posterior

        return Posterior
    if name == "parse_prior":
        from .priors import parse_prior

        return parse_prior
    raise AttributeError(f"module 'multilevel.bayes' has no attribute {name!r}")
