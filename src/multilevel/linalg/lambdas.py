"""Products with the relative covariance factor of the dense rest, for NumPy or JAX.

The rest of the blocked system is ``[Z_2 ... Z_K, X, y]``; its factor is
``Lt = blockdiag(Lambda_2, ..., Lambda_K, I)`` with ``Lambda_k = I_{n_k} (x) T_k``
(one lower-triangular template ``T_k`` repeated over the block's ``n_k`` levels).
Every product with it goes through :func:`times_lambda`; the layout of the rest
is ``Layout.rest``, so no model specification is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np


def all_scalar(templates: Sequence[Any]) -> bool:
    """Whether every template is 1 x 1 (``Lt`` is then diagonal)."""
    return all(T.shape[0] == 1 for T in templates)


def lambda_diagonal(xp: Any, templates: Sequence[Any], blocks: Sequence[tuple[int, int]], size: int) -> Any:
    """The diagonal of ``Lt`` (length ``size``, ones past the random effects) when
    every template is 1 x 1."""
    values = xp.asarray([T[0, 0] for T in templates] + [1.0])
    return values[_owner(tuple(nl for nl, _ in blocks), size)]


@lru_cache(maxsize=64)
def _owner(levels: tuple[int, ...], size: int) -> np.ndarray:
    """For every position of the rest, the index of its block (``len(levels)`` past them)."""
    counts = [*levels, size - sum(levels)]
    return np.repeat(np.arange(len(counts)), counts)


def times_lambda(
    xp: Any,
    M: Any,
    templates: Sequence[Any],
    blocks: Sequence[tuple[int, int]],
    *,
    transpose: bool = False,
) -> Any:
    """``M @ Lt`` (``M @ Lt'`` with ``transpose``) on the last axis of ``M``.

    The last axis holds the rest's random effects (level-major, as in
    ``Layout.rest``), optionally followed by other columns (X, y), which are left
    alone. For a vector ``x``, ``times_lambda(xp, x, ..., transpose=True)`` is
    ``Lt x``.

    Parameters
    ----------
    xp:
        The array namespace (``numpy`` or ``jax.numpy``).
    M:
        Array ``(..., size)`` with ``size >= sum(levels * q)``.
    templates:
        ``T_2 ... T_K``, one ``(q, q)`` array per block of ``blocks``.
    blocks:
        ``(levels, q)`` of every rest block.

    Examples
    --------
    >>> import numpy as np
    >>> times_lambda(np, np.ones((1, 3)), [np.array([[2.0]])], [(2, 1)]).tolist()
    [[2.0, 2.0, 1.0]]
    """
    size = M.shape[-1]
    if not blocks:
        return M
    if all_scalar(templates):
        return M * lambda_diagonal(xp, templates, blocks, size)
    lead = M.shape[:-1]
    parts, start = [], 0
    for (nl, q), T in zip(blocks, templates):
        blk = M[..., start : start + nl * q].reshape((*lead, nl, q))
        parts.append((blk @ (T.T if transpose else T)).reshape((*lead, nl * q)))
        start += nl * q
    if start < size:
        parts.append(M[..., start:])
    return xp.concatenate(parts, axis=-1)


def lambda_sandwich(
    xp: Any,
    G: Any,
    templates: Sequence[Any],
    blocks: Sequence[tuple[int, int]],
    *,
    transpose: bool = False,
) -> Any:
    """``Lt' G Lt`` for a symmetric ``G`` (``Lt G Lt'`` with ``transpose``)."""
    return times_lambda(
        xp,
        times_lambda(xp, G, templates, blocks, transpose=transpose).T,
        templates,
        blocks,
        transpose=transpose,
    )
