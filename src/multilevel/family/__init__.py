"""Response families and links, chosen by name from registries.

>>> from multilevel.family import get_family
>>> fam = get_family("poisson")
>>> fam.link.name, fam.has_dispersion, fam.kernel_code
('log', False, 1)

Importing this package registers the built-in links and families (one module
each). See :mod:`multilevel.family.base` for what a family declares and
:mod:`multilevel.family.registry` for adding one.
"""

from __future__ import annotations

from . import links as links
from .base import Dispersion, Family, Link

# isort: off
# registration order, which is the order names are listed in (help, error messages)
from .gaussian import Gaussian
from .binomial import Binomial
from .poisson import Poisson
from .gamma import Gamma
from .inverse_gaussian import InverseGaussian
from .negative_binomial import NegativeBinomial

# isort: on
from .registry import (
    family_class,
    family_names,
    get_family,
    get_link,
    link_names,
    register_family,
    register_link,
    unregister_family,
)

__all__ = [
    "Binomial",
    "Dispersion",
    "Family",
    "Gamma",
    "Gaussian",
    "InverseGaussian",
    "Link",
    "NegativeBinomial",
    "Poisson",
    "family_class",
    "family_names",
    "get_family",
    "get_link",
    "link_names",
    "register_family",
    "register_link",
    "unregister_family",
]
