"""``multilevel nlfit``: a nonlinear mixed model from the command line (``multilevel.nlfit``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .common import _read_table, _run_and_report


def _pairs(items: list[str] | None, flag: str, what: str, number: bool) -> dict[str, Any] | None:
    from ..errors import ModelError

    if not items:
        return None
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise ModelError(
                f"{flag} {item!r}: write it as NAME={what}, e.g. {flag} 'Asym=1 + (1 | Tree)'"
                if not number
                else f"{flag} {item!r}: write it as NAME=NUMBER, e.g. {flag} Asym=200"
            )
        if number:
            try:
                out[key] = float(value)
            except ValueError:
                raise ModelError(f"{flag} {item!r}: {value!r} is not a number") from None
        else:
            out[key] = value
    return out


def _cmd_nlfit(args: argparse.Namespace) -> int:
    from ..api import nlfit

    data = _read_table(args.data, getattr(args, "factors", None))
    params = _pairs(args.params, "--param", "FORMULA", number=False)
    start = _pairs(args.start, "--start", "NUMBER", number=True)

    def run() -> Any:
        return nlfit(
            args.formula,
            data,
            params,
            start=start,
            nagq=args.nagq,
            family=args.family,
            link=args.link,
            weights=args.weights,
            na_action=args.na_action,
        )

    if not args.confint:
        return _run_and_report(run, args.json)
    fit = run()
    ci = fit.confint(level=args.level)
    if args.json:
        out = fit.to_dict()
        out["confint"] = {
            k: {"lower": float(r["lower"]), "upper": float(r["upper"])} for k, r in ci.iterrows()
        }
        print(json.dumps(out, indent=2, default=str))
    else:
        print(fit.summary())
        print(f"\nProfile confidence intervals ({100 * args.level:g}%):")
        print(ci.to_string(float_format=lambda v: f"{v:.6g}"))
    return 0


def add_nonlinear_options(p: argparse.ArgumentParser) -> None:
    """``--param NAME=FORMULA`` and ``--start NAME=NUMBER`` (``nlfit``, ``sample``)."""
    p.add_argument(
        "--param",
        dest="params",
        action="append",
        metavar="NAME=FORMULA",
        help="a nonlinear parameter's mixed-model formula, e.g. 'Asym=1 + (1 | Tree)' (repeat; default 1)",
    )
    p.add_argument(
        "--start", action="append", metavar="NAME=NUMBER", help="a nonlinear parameter's start (repeat)"
    )


def add_nlfit(sub: Any) -> None:
    p = sub.add_parser(
        "nlfit",
        help="fit a nonlinear mixed model (Laplace or adaptive quadrature; Gaussian, binomial, Poisson)",
        epilog=(
            "example: multilevel nlfit Orange.csv 'circumference ~ SSlogis(age, Asym, xmid, scal)' "
            "--param 'Asym=1 + (1 | Tree)'"
        ),
    )
    p.add_argument("data", help="CSV or Parquet file")
    p.add_argument("formula", help="'response ~ expression' or a self-starting model, e.g. SSlogis(...)")
    add_nonlinear_options(p)
    p.add_argument("--family", default="gaussian", help="gaussian (default), binomial or poisson")
    p.add_argument("--link", default=None, help="link of a binomial or Poisson model (default logit / log)")
    p.add_argument("--weights", default=None, help="column of the binomial trials (proportions as response)")
    p.add_argument("--nagq", type=int, default=1, help="quadrature nodes per dimension (1: Laplace, default)")
    p.add_argument("--na-action", dest="na_action", default="omit", choices=["omit", "raise"])
    p.add_argument("--confint", action="store_true", help="also print likelihood-profile intervals")
    p.add_argument("--level", type=float, default=0.95, help="confidence level of --confint (default 0.95)")
    p.add_argument("--json", action="store_true", help="print the fit as JSON")
    p.set_defaults(func=_cmd_nlfit)
