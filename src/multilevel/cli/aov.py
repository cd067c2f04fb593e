"""``multilevel aov``: classical ANOVA with ``Error()`` strata (R's ``summary(aov())``)."""

from __future__ import annotations

import argparse
import json
import warnings
from typing import Any

from .common import _read_table, print_warnings


def _cmd_aov(args: argparse.Namespace) -> int:
    from ..api import aov
    from ..classical.text import format_aov
    from ..errors import DataError

    df = _read_table(args.data, getattr(args, "factors", None))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = aov(args.formula, df, level=args.level)
        except DataError as exc:
            col = getattr(exc, "column", None)
            if col is None:
                raise
            raise DataError(f"Error() stratum column {col!r} is numeric: add --factors {col}") from None
    print(json.dumps(result.to_dict(), indent=2, default=str) if args.json else format_aov(result))
    print_warnings(caught)
    return 0


def add_aov(sub: Any) -> None:
    p = sub.add_parser(
        "aov",
        help="classical ANOVA with Error() strata, expected mean squares and variance components",
        epilog='example: multilevel aov npk.csv "yield ~ N*P*K + Error(block)" --factors block,N,P,K',
    )
    p.add_argument("data", help="CSV or Parquet file")
    p.add_argument("formula", help='e.g. "yield ~ N*P*K + Error(block)" or "y ~ 1 + Error(batch/cask)"')
    p.add_argument(
        "--factors", default=None, help="comma-separated columns to treat as factors (numbers are covariates)"
    )
    p.add_argument("--level", type=float, default=0.95, help="level of the components' intervals (0.95)")
    p.add_argument("--json", action="store_true", help="print the tables as JSON")
    p.set_defaults(func=_cmd_aov)
