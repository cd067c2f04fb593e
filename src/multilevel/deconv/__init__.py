"""Deconvolution and empirical Bayes: the NPMLE of a mixing distribution, posterior summaries.

>>> import numpy as np
>>> from multilevel.deconv import npmle
>>> y = np.repeat([0.0, 2.0], [90, 10]) + np.random.default_rng(0).normal(size=100)
>>> fit = npmle(y, se=1.0, grid=50)
>>> bool(fit.kkt_max <= 1 + 1e-9), fit.support.shape[1]
(True, 2)
>>> fit.predict([0.0, 3.0]).columns.tolist()[:4]
['y', 'mean', 'sd', 'median']
"""

from .kernels import Kernel, get_kernel, register_kernel
from .npmle import npmle, npmle_em
from .result import NpmleResult

__all__ = ["Kernel", "NpmleResult", "get_kernel", "npmle", "npmle_em", "register_kernel"]
