"""Estimated marginal means after a GLMM fit, on the link or the response scale.

:class:`GlmmInferenceMixin` gives :class:`~multilevel.glmm.results.GlmmResult` its
``emmeans``: the Wald covariance of beta and asymptotic (infinite) df, as R's emmeans
uses for ``glmer`` fits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import ModelError
from ..model.emmeans import Emmeans, emmeans

if TYPE_CHECKING:
    from ..family import Family
    from ..model.design import Design
    from ..model.spec import ModelSpec


class GlmmInferenceMixin:
    spec: ModelSpec
    design: Design
    family: Family

    @property
    def fixef(self) -> pd.Series:
        raise NotImplementedError

    @property
    def vcov(self) -> pd.DataFrame:
        raise NotImplementedError

    def emmeans(
        self,
        specs: Any,
        *,
        by: Any = None,
        at: dict[str, Any] | None = None,
        weights: str = "equal",
        type: str = "link",
        level: float = 0.95,
    ) -> Emmeans:
        """Estimated marginal means on the reference grid (R's ``emmeans(fit, specs, type=)``).

        ``type="link"`` (default) gives the means of the linear predictor;
        ``type="response"`` back-transforms them (SEs by the delta method, limits
        back-transformed from the link scale). df are infinite (z tests), as emmeans's
        for ``glmer``. ``specs``, ``by``, ``at``, ``weights`` and ``level`` are as for
        :meth:`multilevel.lmm.after_fit.LmmInferenceMixin.emmeans`.

        Examples
        --------
        >>> import multilevel
        >>> g = multilevel.fit("cbind(incidence, size - incidence) ~ period + (1 | herd)",
        ...                    multilevel.load_dataset("cbpp"), family="binomial")
        >>> round(float(g.emmeans("period", type="response").table["response"][0]), 3)
        0.198
        """
        if self.design.frame is None:
            raise ModelError("this fit has no record of its rows' predictor columns (design.frame)")
        return emmeans(
            self.spec,
            self.design.frame,
            self.fixef.to_numpy(),
            self.vcov.to_numpy(),
            lambda K: np.full(K.shape[0], np.inf),
            specs,
            by=by,
            at=at,
            weights=weights,
            link=self.family.link,
            type=type,
            level=level,
            method="asymptotic",
        )
