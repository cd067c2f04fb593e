"""Binomial responses in the forms R accepts.

0/1 numbers, booleans, a two-level factor or string column (the second level
is a success, as in R), proportions with ``weights=`` giving the trials, and
``cbind(successes, failures)`` in the formula. The result is always a
proportion ``y`` and a number of trials used as prior weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, DataWarning, warn


def binomial_response(
    response: str | None, cbind: tuple[str, str] | None, df: pd.DataFrame, evaluate: Any
) -> tuple[np.ndarray, np.ndarray | None]:
    """(proportion of successes, trials or None) for a binomial model.

    ``evaluate(expr)`` returns the values of a formula expression on ``df``.
    """
    if cbind is not None:
        s = np.asarray(evaluate(cbind[0]), dtype=float)
        f = np.asarray(evaluate(cbind[1]), dtype=float)
        if np.any(s < 0) or np.any(f < 0):
            raise DataError(
                f"cbind({cbind[0]}, {cbind[1]}): successes and failures must be non-negative; "
                "the second argument is the number of failures, not of trials"
            )
        n = s + f
        if np.any(n == 0):
            raise DataError(f"cbind({cbind[0]}, {cbind[1]}) has rows with zero trials; drop them")
        return s / n, n
    assert response is not None
    if response in df.columns:
        col = df[response]
        if (
            isinstance(col.dtype, pd.CategoricalDtype)
            or col.dtype == object
            or pd.api.types.is_string_dtype(col)
        ):
            levels = (
                list(col.cat.categories)
                if isinstance(col.dtype, pd.CategoricalDtype)
                else sorted(col.unique())
            )
            present = [lev for lev in levels if (col == lev).any()]
            if len(present) != 2:
                raise DataError(
                    f"binomial response {response!r} has {len(present)} levels "
                    f"({', '.join(map(str, present[:5]))}); "
                    "it needs exactly two (the second is counted as success)"
                )
            return (col == present[1]).to_numpy(dtype=float), None
        if pd.api.types.is_bool_dtype(col):
            return col.to_numpy(dtype=float), None
    y = np.asarray(evaluate(response), dtype=float)
    return y, None


def check_trials(
    response: str | None, y: np.ndarray, trials: np.ndarray | None, weights: np.ndarray | None
) -> None:
    """Refuse proportions without their numbers of trials, and warn (as R's glm does) when
    the successes, proportion times trials, are not whole numbers.

    A proportion without trials would count every row as one trial: the estimates are
    then those of the proportions, but the standard errors and the likelihood are wrong.
    """
    if trials is not None:  # cbind(successes, failures): whole by construction, or checked by R's rule below
        n = trials if weights is None else trials * weights
    elif weights is None:
        frac = (y > 0) & (y < 1)
        if np.any(frac):
            raise DataError(
                f"binomial response {response!r} holds proportions ({int(frac.sum())} rows strictly between "
                "0 and 1) but no numbers of trials; each row would count as one trial. Write "
                "cbind(successes, failures) in the formula, or give the trials with weights="
            )
        return
    else:
        n = weights
    successes = y * n
    if np.any(np.abs(successes - np.round(successes)) > 1e-3):
        warn(
            f"binomial response {response!r}: non-integer numbers of successes (response times weights); "
            "the weights of a binomial model are its numbers of trials",
            DataWarning,
        )
