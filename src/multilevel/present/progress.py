"""Progress of long fits on stderr: rows read by a data pass, the optimizer's evaluations.

The computation reports through plain callbacks (``rows(k)``, ``evaluation(n, best)``);
this module draws them with tqdm, as the command line's status line does. A
``Progress(False)`` draws nothing, so callers need no branches.
"""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    """tqdm bars for one fit: a data pass (rows read of a known total) and the optimizer.

    Examples
    --------
    >>> p = Progress(False)
    >>> p.start_pass("reading rows", 100); p.rows(100); p.end_pass()
    >>> p.evaluation(1, 2.5); p.close()
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = bool(enabled)
        self._pass: Any = None
        self._opt: Any = None

    def _bar(self, **kw: Any) -> Any:
        from tqdm.auto import tqdm

        return tqdm(file=sys.stderr, leave=True, **kw)

    def start_pass(self, desc: str, total: int, unit: str = "rows") -> None:
        if self.enabled:
            self._pass = self._bar(desc=desc, total=total, unit=f" {unit}", unit_scale=True)

    def rows(self, k: int) -> None:
        if self._pass is not None:
            self._pass.update(k)

    def end_pass(self) -> None:
        if self._pass is not None:
            self._pass.close()
            self._pass = None

    def evaluation(self, n: int, best: float) -> None:
        """The optimizer's ``n``-th evaluation; ``best``: the lowest criterion so far."""
        if not self.enabled:
            return
        if self._opt is None:
            self._opt = self._bar(desc="optimizing", unit=" evaluations")
        self._opt.update(n - self._opt.n)
        self._opt.set_postfix_str(f"criterion {best:.10g}", refresh=False)

    def passes(self, n: int) -> None:
        """The ``n``-th pass over rows kept on a cluster (a GLMM's PIRLS iterations)."""
        if not self.enabled:
            return
        if self._opt is None:
            self._opt = self._bar(desc="passes over the rows", unit=" passes")
        self._opt.update(n - self._opt.n)

    def close(self) -> None:
        self.end_pass()
        if self._opt is not None:
            self._opt.close()
            self._opt = None
