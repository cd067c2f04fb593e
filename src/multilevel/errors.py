"""One exception and warning hierarchy for the whole package.

Every message names the input at fault, what was expected, and what to do next.
A message names an argument of the Python API as ``name=`` or ``name='value'`` (the
fix ``pass na_action='omit'``) and an entry point as ``crt.analyze()``; the command
line prints the same message with its own flags (``pass --na-action omit``: see
:func:`multilevel.cli.common.in_cli_terms`), so one message serves both.
"""

from __future__ import annotations

from typing import Any


class MultilevelError(Exception):
    """Base class of every error raised by multilevel."""


class FormulaError(MultilevelError, ValueError):
    """A model formula that cannot be parsed or does not describe a mixed model.

    ``formula`` and ``span`` (start, end) locate the offending part; ``str()``
    shows the formula with a caret line under that part.
    """

    def __init__(self, message: str, formula: str = "", span: tuple[int, int] | None = None):
        self.message = message
        self.formula = formula
        self.span = span
        super().__init__(self._render())

    def one_line(self) -> str:
        """The message and the offending part of the formula on one line."""
        if not self.formula or self.span is None:
            return self.message
        start, end = self.span
        return f"{self.message} (at {self.formula[start:end]!r}, column {start + 1} of {self.formula!r})"

    def _render(self) -> str:
        if not self.formula or self.span is None:
            return self.message
        start, end = self.span
        width = max(end - start, 1)
        pointer = " " * start + "^" * width
        return f"{self.message}\n    {self.formula}\n    {pointer}"


class DataError(MultilevelError, ValueError):
    """Data that cannot be used for the model (missing columns, bad values, ...)."""


class ModelError(MultilevelError, ValueError):
    """A model that is not identifiable or not estimable from the data given."""


class FamilyError(ModelError):
    """A family or link name that is not registered, or a link the family does not take.

    Raised when the model is specified (``fit``, ``Model``, ``gee``, ``sample``),
    before any data are read; the message lists the valid names and suggests the
    closest ones. A subclass of :class:`ModelError` (the model asked for does not
    exist), not of :class:`DataError`: the data are not at fault.
    """


class ConvergenceError(MultilevelError, RuntimeError):
    """The optimizer failed outright (as opposed to a convergence *warning*)."""


class MultilevelWarning(UserWarning):
    """Base class of every warning issued by multilevel."""


class MissingDataWarning(MultilevelWarning):
    """Rows were dropped because of missing values (the count is in the message)."""


class RankDeficiencyWarning(MultilevelWarning):
    """Fixed-effect columns were dropped because the design is rank deficient."""


class ConvergenceWarning(MultilevelWarning):
    """The optimum failed a gradient or Hessian check."""


class SingularFitWarning(MultilevelWarning):
    """A variance estimate is zero or a correlation is +-1 (boundary fit)."""


class SeparationWarning(MultilevelWarning):
    """Fitted probabilities of 0 or 1: complete or quasi-complete separation."""


class DataWarning(MultilevelWarning):
    """The data are usable but suspicious (for example few levels in a grouping factor)."""


class SamplingWarning(MultilevelWarning):
    """MCMC diagnostics that call the draws into question (divergences, R-hat, ESS, E-BFMI)."""


def warn(message: str, category: type[Warning]) -> None:
    """Issue a warning attributed to the caller's code, the first frame outside multilevel.

    Stages sit at different depths under :func:`multilevel.fit`, ``Model.fit``,
    the CRT analysis or the command line; a fixed ``stacklevel`` would point
    at one of our own frames for some of them.
    """
    import os
    import sys
    import warnings

    here = os.path.dirname(os.path.abspath(__file__))
    level = 2  # stacklevel 1 is this function, 2 its caller
    frame: Any = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(here):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
