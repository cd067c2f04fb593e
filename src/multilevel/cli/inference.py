"""``multilevel anova`` and ``multilevel fit --confint``: inference after the fit."""

from __future__ import annotations

import argparse
import json
import math
import warnings
from collections.abc import Callable
from typing import Any

from .common import _Elapsed, _fit_control, _read_table, add_laplace_option, laplace_flag, print_warnings


def add_boot_options(p: Any, nsim: int) -> None:
    """``--nsim``, ``--seed`` and (for intervals) ``--boot-type`` of the bootstrap."""
    p.add_argument("--nsim", type=int, default=nsim, help=f"bootstrap simulations (default {nsim})")
    p.add_argument("--seed", type=int, default=None, help="seed of the bootstrap simulations")
    if p.prog.split()[-1] != "anova":
        p.add_argument(
            "--boot-type",
            default="perc",
            choices=["perc", "basic", "norm"],
            help="bootstrap interval: percentile (default), basic or normal",
        )


def check_nsim(args: argparse.Namespace) -> None:
    from ..errors import ModelError

    if args.nsim < 1:
        raise ModelError(f"--nsim must be a positive number of simulations, got {args.nsim}")


def _check_confint(args: argparse.Namespace) -> tuple[str, float]:
    """``--confint`` and ``--level``, checked before any fitting (one-line errors)."""
    from ..errors import ModelError
    from ..model.profile import check_level, check_method

    try:
        level = float(args.level)
    except ValueError:
        msg = f"--level must be a number between 0 and 1 (e.g. 0.95), got {args.level!r}"
        raise ModelError(msg) from None
    if getattr(args, "nsim", None) is not None:
        check_nsim(args)
    try:
        return check_method(args.confint), check_level(level)
    except ModelError as exc:
        raise ModelError(f"--{str(exc).replace('method must', 'confint must', 1)}") from None


def _plain(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def fit_with_confint(args: argparse.Namespace, run: Callable[[], Any]) -> int:
    """Fit, then print the summary (or JSON) with the confidence intervals."""
    method, level = _check_confint(args)
    with warnings.catch_warnings(record=True) as caught, _Elapsed("fitting and profiling"):
        warnings.simplefilter("always")
        fit = run()
        if method == "boot":
            ci = fit.confint(
                level=level, method=method, nsim=args.nsim, seed=args.seed, boot_type=args.boot_type
            )
        else:
            ci = fit.confint(level=level, method=method)
        text = None if args.json else fit.summary()
    if args.json:
        d = fit.to_dict()
        d["confint"] = {
            "method": method,
            "level": level,
            "intervals": {
                name: {"lower": _plain(row["lower"]), "upper": _plain(row["upper"])}
                for name, row in ci.iterrows()
            },
        }
        print(json.dumps(d, indent=2, default=str))
    else:
        what = {"profile": "Profile", "wald": "Wald"}.get(method)
        if what is None:
            what = f"Parametric bootstrap ({args.boot_type}, {args.nsim} simulations)"
        print(text)
        print(f"\n{what} confidence intervals ({100 * level:g}%):")
        print(ci.to_string(float_format=lambda v: f"{v:.6g}", na_rep="NA"))
    print_warnings(caught)
    return 0


def _cmd_anova(args: argparse.Namespace) -> int:
    from ..api import anova, fit, is_linear_model
    from ..errors import ModelError

    if len(args.formulas) < 2:
        raise ModelError("anova compares two or more nested models: give two or more formulas")
    linear = is_linear_model(args.family, args.link)
    if linear and args.nagq is not None and args.nagq != 1:
        raise ModelError(f"--nagq {args.nagq} applies to generalized models (--family binomial, ...)")
    laplace = laplace_flag(args, linear)
    check_nsim(args)
    if args.test != "PB" and args.seed is not None:
        raise ModelError("--seed seeds the bootstrap simulations of --test PB; add --test PB or drop --seed")
    data = _read_table(args.data, getattr(args, "factors", None))
    control = _fit_control()
    with warnings.catch_warnings(record=True) as caught, _Elapsed("fitting"):
        warnings.simplefilter("always")
        fits = [
            fit(
                f,
                data,
                family=args.family,
                link=args.link,
                nagq=None if linear else args.nagq,
                na_action=args.na_action,
                control=control,
                laplace=laplace,
            )
            for f in args.formulas
        ]
    # checked and refitted outside the status line, so that an error is the only line
    with warnings.catch_warnings(record=True) as refit_caught, _Elapsed("bootstrap"):
        warnings.simplefilter("always")
        table = anova(
            *fits,
            refit=not args.no_refit,
            boundary=args.boundary,
            test=args.test,
            n=args.nsim,
            seed=args.seed,
        )
    caught = [*caught, *refit_caught]
    if args.json:
        print(json.dumps(table.to_dict(), indent=2))
    else:
        print(table)
    print_warnings(caught)
    return 0


def add_anova(sub: Any, family_help: str, epilog: str) -> None:
    """``multilevel anova DATA F0 F1 [...]``: likelihood-ratio tests of nested models."""
    p = sub.add_parser(
        "anova",
        help="likelihood-ratio tests of nested models (lme4's anova)",
        epilog='example: multilevel anova sleepstudy.csv "Reaction ~ 1 + (Days | Subject)" '
        '"Reaction ~ Days + (Days | Subject)"',
    )
    p.add_argument("data", help="CSV or Parquet file")
    p.add_argument("formulas", nargs="+", metavar="FORMULA", help="two or more nested model formulas")
    p.add_argument("--family", default="gaussian", help=family_help)
    p.add_argument("--link", default=None, help="link function (default: the family's canonical link)")
    p.add_argument(
        "--nagq", type=int, default=None, help="GLMMs: 1 = Laplace (default), up to 25 = quadrature"
    )
    add_laplace_option(p)
    p.add_argument(
        "--no-refit",
        action="store_true",
        help="compare REML fits as they are (same fixed effects only) instead of refitting them by ML",
    )
    p.add_argument(
        "--boundary",
        default="chisq",
        choices=["chisq", "chibar"],
        help="chibar: 50:50 chi-bar-square p-values for tests of one added random effect",
    )
    p.add_argument(
        "--test",
        default="Chisq",
        choices=["Chisq", "PB"],
        help="PB: also the parametric-bootstrap likelihood-ratio test (pbkrtest's PBmodcomp)",
    )
    add_boot_options(p, nsim=1000)
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.add_argument("--na-action", choices=["omit", "raise"], default="omit")
    p.set_defaults(func=_cmd_anova)
