"""Command line: ``multilevel fit DATA FORMULA [--ml] [--json]`` and ``multilevel example NAME``.

Errors in the input (paths, formulas, columns, data) print one line on stderr and
exit with status 2; no tracebacks.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

EXAMPLES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "sleepstudy": ("sleepstudy", "Reaction ~ Days + (Days | Subject)", {}),
    "penicillin": ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", {}),
    "pastes": ("Pastes", "strength ~ 1 + (1 | batch/cask)", {}),
    "radon": ("radon", "log_radon ~ basement + (basement | county)", {}),
    "insteval": ("InstEval", "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)", {"reml": False}),
    "cbpp": ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", {"family": "binomial"}),
    "grouseticks": (
        "grouseticks",
        "TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
        {"family": "poisson"},
    ),
    "verbagg": (
        "VerbAgg",
        "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)",
        {"family": "binomial"},
    ),
}

EPILOG = """examples:
  multilevel example sleepstudy
  multilevel fit sleepstudy.csv "Reaction ~ Days + (Days | Subject)"
  multilevel fit data.parquet "y ~ x + (1 | school/class)" --ml --json
  multilevel fit cbpp.csv "cbind(incidence, size - incidence) ~ period + (1 | herd)" \\
      --family binomial --nagq 25
"""


def _read_table(path: str) -> Any:
    import pandas as pd

    from .errors import DataError

    p = Path(path)
    if not p.exists():
        raise DataError(f"data file {path!r} does not exist")
    if p.is_dir():
        raise DataError(f"data path {path!r} is a directory; give a CSV or Parquet file")
    suffix = "".join(p.suffixes[-2:]).lower()
    try:
        if suffix.endswith(".parquet") or suffix.endswith(".pq"):
            return pd.read_parquet(p)
        if suffix.endswith((".csv", ".csv.gz", ".txt", ".tsv")):
            sep = "\t" if ".tsv" in suffix else ","
            return pd.read_csv(p, sep=sep)
    except Exception as exc:
        raise DataError(f"cannot read {path!r}: {exc}") from exc
    raise DataError(f"unknown file type {p.suffix!r} for {path!r}; use .csv or .parquet")


def _report(fit: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(fit.to_dict(), indent=2, default=str))
    else:
        print(fit.summary())


def _cmd_fit(args: argparse.Namespace) -> int:
    from .api import fit

    data = _read_table(args.data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = fit(
            args.formula,
            data,
            family=args.family,
            link=args.link,
            nagq=args.nagq,
            reml=not args.ml,
            na_action=args.na_action,
        )
    _report(m, args.json)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    return 0


def _cmd_gee(args: argparse.Namespace) -> int:
    from .marginal import gee

    data = _read_table(args.data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = gee(
            args.formula,
            data,
            groups=args.groups,
            family=args.family,
            link=args.link,
            corstr=args.corstr,
            time=args.time,
            se=args.se,
            na_action=args.na_action,
        )
    _report(m, args.json)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    return 0


def _cmd_example(args: argparse.Namespace) -> int:
    from .api import fit
    from .datasets import load_dataset

    if args.name not in EXAMPLES:
        from .errors import DataError

        raise DataError(f"unknown example {args.name!r}; choose one of {', '.join(EXAMPLES)}")
    dataset, formula, kwargs = EXAMPLES[args.name]
    kwargs = dict(kwargs)
    if args.ml:
        kwargs["reml"] = False
    if not args.json:
        extra = "".join(f", {k}={v!r}" for k, v in kwargs.items())
        print(f"# multilevel.fit({formula!r}, load_dataset({dataset!r}){extra})\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = fit(formula, load_dataset(dataset), **kwargs)
    _report(m, args.json)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multilevel",
        description="Hierarchical (mixed-effects) models from lme4-style formulas.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_fit = sub.add_parser(
        "fit",
        help="fit a linear mixed model to a CSV or Parquet file",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_fit.add_argument("data", help="CSV or Parquet file")
    p_fit.add_argument("formula", help='model formula, e.g. "y ~ x + (1 | g)"')
    p_fit.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    p_fit.add_argument("--json", action="store_true", help="print the fit as JSON")
    p_fit.add_argument(
        "--family",
        default="gaussian",
        help="gaussian (default), binomial, poisson, Gamma, inverse_gaussian, negative_binomial",
    )
    p_fit.add_argument("--link", default=None, help="link function (default: the family's canonical link)")
    p_fit.add_argument(
        "--nagq",
        type=int,
        default=1,
        help="GLMMs: 1 = Laplace (default), up to 25 = adaptive quadrature, 0 = PIRLS only",
    )
    p_fit.add_argument(
        "--na-action",
        choices=["omit", "raise"],
        default="omit",
        help="drop rows with missing values (with a warning) or refuse them",
    )
    p_fit.set_defaults(func=_cmd_fit)
    p_gee = sub.add_parser("gee", help="generalized estimating equations with small-sample SEs")
    p_gee.add_argument("data", help="CSV or Parquet file")
    p_gee.add_argument("formula", help='model formula without random effects, e.g. "y ~ arm + x"')
    p_gee.add_argument("--groups", required=True, help="column identifying the clusters")
    p_gee.add_argument("--family", default="gaussian", help="gaussian, binomial, poisson, Gamma, ...")
    p_gee.add_argument("--link", default=None, help="link function (default: canonical)")
    p_gee.add_argument(
        "--corstr",
        default="exchangeable",
        choices=["independence", "exchangeable", "ar1", "unstructured"],
        help="working correlation",
    )
    p_gee.add_argument("--time", default=None, help="time column (order within cluster for ar1)")
    p_gee.add_argument(
        "--se",
        default="auto",
        choices=["auto", "model", "robust", "md", "kc", "fg", "jackknife"],
        help="standard errors (auto: by number of clusters and size variation)",
    )
    p_gee.add_argument("--json", action="store_true", help="print the fit as JSON")
    p_gee.add_argument("--na-action", choices=["omit", "raise"], default="omit")
    p_gee.set_defaults(func=_cmd_gee)
    p_ex = sub.add_parser("example", help="fit a bundled example end to end")
    p_ex.add_argument("name", help=f"one of: {', '.join(EXAMPLES)}")
    p_ex.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    p_ex.add_argument("--json", action="store_true", help="print the fit as JSON")
    p_ex.set_defaults(func=_cmd_example)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .errors import FormulaError, MultilevelError

    try:
        return int(args.func(args))
    except FormulaError as exc:
        print(f"multilevel: error: {exc.one_line()}", file=sys.stderr)
        return 2
    except MultilevelError as exc:
        print(f"multilevel: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"multilevel: error: {exc}".splitlines()[0], file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
