"""Indirect inference: a simulator's parameters from matching an auxiliary model.

:mod:`~multilevel.indirect_inference.binding` simulates with common random numbers and runs
the auxiliary model; :mod:`~multilevel.indirect_inference.estimate` minimizes the distance
of the auxiliary estimates and gives the sandwich covariance and the J test;
:mod:`~multilevel.indirect_inference.driver` chains the two steps; the record is
:class:`~multilevel.indirect_inference.result.IndirectResult`. The public call is
:func:`multilevel.indirect`.
"""

from .binding import Auxiliary, Binding
from .driver import estimate
from .estimate import Settings
from .result import IndirectResult

__all__ = ["Auxiliary", "Binding", "IndirectResult", "Settings", "estimate"]
