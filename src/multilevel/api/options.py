"""The checks of ``fit``'s method options, the same for rows in memory and on a cluster.

A linear mixed model takes ``reml=`` and ``optimizer=``; a GLMM takes ``nagq=`` and
``laplace=``. Each refuses the other's with a message that names the option and what
to do, so that a user learns the same thing whichever data they pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..control import FitControl
from ..errors import ModelError


def lmm_options(nagq: Any, laplace: Any) -> None:
    """A linear mixed model's fit: no quadrature, no Laplace approximation."""
    if nagq is not None and nagq != 1:
        raise ModelError(
            f"nagq={nagq!r} applies to generalized models; a linear mixed model's likelihood "
            "is exact (choose REML or ML with reml=)"
        )
    if laplace is not None:
        raise ModelError(
            f"laplace={laplace!r} applies to generalized models; a linear mixed model's "
            "likelihood is exact, with no Laplace approximation: drop laplace"
        )


def glmm_options(family: Any, reml: Any, control: FitControl, nagq: Any, laplace: Any) -> tuple[int, str]:
    """A GLMM's fit: no REML, no choice of optimizer; ``nagq`` and ``laplace`` checked and
    defaulted (1, ``"observed"``)."""
    from ..glmm.pirls import check_laplace

    laplace = check_laplace(laplace)
    if reml is not None:
        raise ModelError(
            f"reml applies to linear mixed models; a {family.name} GLMM is fitted by maximum "
            "likelihood (Laplace or quadrature, nagq=): drop reml"
        )
    if control.optimizer != FitControl().optimizer:
        raise ModelError(
            "optimizer applies to linear mixed models; a GLMM runs BOBYQA and then the gradient "
            "path itself: drop optimizer"
        )
    if control.device != "cpu" or control.backend != "auto":
        raise ModelError(
            "device= and backend= apply to linear mixed models; a GLMM's penalized IRLS runs on the "
            "CPU with NumPy: drop device= and backend="
        )
    nagq = 1 if nagq is None else nagq
    if isinstance(nagq, bool) or not isinstance(nagq, (int, np.integer)):
        raise ModelError(f"nagq must be an integer (0, 1 or a number of quadrature nodes), got {nagq!r}")
    return int(nagq), laplace
