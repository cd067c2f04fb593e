"""``multilevel deconvolve``: the distribution of true effects behind noisy estimates."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .common import _Elapsed, _read_table


def _column_or_number(df: Any, value: str | None, flag: str) -> Any:
    from ..errors import DataError

    if value is None:
        return None
    if value in df.columns:
        return df[value].to_numpy(dtype=float)
    try:
        return float(value)
    except ValueError:
        raise DataError(f"{flag} {value!r} is neither a column of the data nor a number") from None


def _cmd_deconvolve(args: argparse.Namespace) -> int:
    from ..api import deconvolve
    from ..errors import DataError
    from ..present.deconv import deconvolution_dict, format_deconvolution

    df = _read_table(args.data, getattr(args, "factors", None))
    if args.y not in df.columns:
        raise DataError(
            f"--y {args.y!r} is not a column of {args.data}; columns: {', '.join(map(str, df.columns))}"
        )
    y = df[args.y].to_numpy(dtype=float)
    se = _column_or_number(df, args.se, "--se")
    trials = _column_or_number(df, args.trials, "--trials")
    with _Elapsed("deconvolving"):
        result = deconvolve(y, se, family=args.family, trials=trials, method=args.method, grid=args.grid)
    if args.json:
        print(json.dumps(deconvolution_dict(result), indent=2))
    else:
        print(format_deconvolution(result))
    if args.output:
        out = df.copy()
        out["posterior_mean"] = result.posterior_mean()
        out.to_csv(args.output, index=False)
        print(f"posterior means written to {args.output}", file=sys.stderr)
    if args.report:
        from ..present.report import deconvolution_report

        deconvolution_report(result, args.report, y, se)
        print(f"report written to {args.report}", file=sys.stderr)
    if args.plot:
        from ..present.deconv_plots import prior_plot

        prior_plot(result, y).savefig(args.plot, dpi=120)
        print(f"prior plot written to {args.plot}", file=sys.stderr)
    return 0


def add_deconvolve(sub: Any) -> None:
    p = sub.add_parser(
        "deconvolve",
        help="estimate the distribution of true effects behind noisy estimates (NPMLE or g-model)",
        epilog="example: multilevel deconvolve hospitals.csv --y estimate --se se --output posterior.csv",
    )
    p.add_argument("data", help="CSV or Parquet file")
    p.add_argument("--y", required=True, help="column of the estimates (counts for poisson / binomial)")
    p.add_argument(
        "--se", default=None, help="column (or one number) of the known standard errors (gaussian)"
    )
    p.add_argument("--trials", default=None, help="column (or one number) of the trials (binomial)")
    p.add_argument("--family", default="gaussian", help="gaussian (default), poisson or binomial")
    p.add_argument("--method", default="npmle", choices=["npmle", "gmodel"], help="npmle (default) or gmodel")
    p.add_argument(
        "--grid", type=int, default=None, help="grid points (default: 300 for npmle, 101 for gmodel)"
    )
    p.add_argument("--json", action="store_true", help="print the prior as JSON")
    p.add_argument("--output", default=None, help="CSV of the data with each row's posterior mean")
    p.add_argument("--plot", default=None, help="PNG/SVG of the estimated prior over the data")
    p.add_argument("--report", default=None, help="a self-contained HTML report (summary and plots)")
    p.set_defaults(func=_cmd_deconvolve)
