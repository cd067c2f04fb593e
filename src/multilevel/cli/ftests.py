"""``multilevel emmeans`` and ``multilevel fit --anova``: F tests and marginal means on the command line."""

from __future__ import annotations

import argparse
import json
import warnings
from typing import Any

from .common import _Elapsed, _read_table, print_warnings


def add_emmeans(sub: Any, family_help: str) -> None:
    """The ``emmeans`` subcommand's flags."""
    p = sub.add_parser(
        "emmeans",
        help="fit, then estimated marginal means (and contrasts) on the reference grid",
        epilog='example: multilevel emmeans cake.csv "angle ~ recipe * temperature + (1 | recipe:replicate)" '
        "--specs recipe --contrast pairwise",
    )
    p.add_argument("data", help="CSV or Parquet file")
    p.add_argument("formula", help='model formula, e.g. "y ~ f + x + (1 | g)"')
    p.add_argument("--specs", required=True, help="factor(s) to estimate means for: 'recipe' or 'Cu*Evit'")
    p.add_argument("--by", default=None, help="comma-separated factor(s) to give the means within")
    p.add_argument(
        "--at", action="append", metavar="VAR=V1,V2", help="grid values, e.g. Time=4,8 (repeatable)"
    )
    p.add_argument("--weights", choices=["equal", "proportional"], default="equal")
    p.add_argument(
        "--ddf",
        default=None,
        help="linear models: kenward-roger (default for REML) or satterthwaite (default for --ml)",
    )
    p.add_argument("--type", choices=["link", "response"], default="link", help="GLMMs: the scale")
    p.add_argument("--contrast", default=None, choices=["pairwise", "revpairwise"], help="also contrasts")
    p.add_argument("--adjust", default=None, choices=["tukey", "holm", "bonferroni", "none"])
    p.add_argument("--level", type=float, default=0.95)
    p.add_argument("--family", default="gaussian", help=family_help)
    p.add_argument("--link", default=None, help="link function (default: the family's canonical link)")
    p.add_argument("--ml", action="store_true", help="linear models: maximum likelihood instead of REML")
    p.add_argument("--na-action", choices=["omit", "raise"], default="omit")
    p.add_argument("--json", action="store_true", help="print the tables as JSON")
    p.set_defaults(func=cmd_emmeans)


def _at(items: list[str] | None) -> dict[str, list[Any]]:
    from ..errors import ModelError

    out: dict[str, list[Any]] = {}
    for item in items or []:
        key, sep, values = item.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise ModelError(f"--at {item!r}: write it as VARIABLE=VALUE[,VALUE...], e.g. 'Time=4,8'")
        parsed: list[Any] = []
        for v in values.split(","):
            v = v.strip()
            try:
                parsed.append(float(v))
            except ValueError:
                parsed.append(v)
        out[key.strip()] = parsed
    return out


def _fit(args: argparse.Namespace) -> tuple[Any, list[Any]]:
    from ..api import fit, is_linear_model
    from ..errors import ModelError

    linear = is_linear_model(args.family, args.link)
    if not linear and (args.ml or args.ddf):
        raise ModelError("--ml and --ddf apply to linear mixed models; a GLMM's means use z tests (df = Inf)")
    data = _read_table(args.data, getattr(args, "factors", None))
    with warnings.catch_warnings(record=True) as caught, _Elapsed("fitting"):
        warnings.simplefilter("always")
        m = fit(
            args.formula,
            data,
            family=args.family,
            link=args.link,
            reml=False if args.ml else None,
            na_action=args.na_action,
        )
    return m, list(caught)


def cmd_emmeans(args: argparse.Namespace) -> int:
    from ..present.ftests import format_contrasts, format_emmeans, records

    m, caught = _fit(args)
    by = [b.strip() for b in args.by.split(",")] if args.by else None
    options: dict[str, Any] = {"by": by, "at": _at(args.at), "weights": args.weights, "level": args.level}
    if hasattr(m, "reml"):  # a linear mixed model: identity link, the response scale is the link's
        options["ddf"] = args.ddf
    else:
        options["type"] = args.type
    with _Elapsed("marginal means"):
        emm = m.emmeans(args.specs, **options)
        con = emm.contrast(args.contrast, adjust=args.adjust) if args.contrast else None
    if args.json:
        out: dict[str, Any] = {"formula": args.formula, "method": emm.method, "emmeans": records(emm.table)}
        if con is not None:
            out["contrasts"] = records(con)
            out["adjust"] = con.attrs.get("adjust")
        print(json.dumps(out, indent=2))
    else:
        print(format_emmeans(emm))
        if con is not None:
            print()
            print(format_contrasts(con, list(emm.by)))
    print_warnings(caught)
    return 0


def add_anova_option(p_fit: argparse.ArgumentParser) -> None:
    """``multilevel fit ... --anova satterthwaite|kenward-roger``."""
    p_fit.add_argument(
        "--anova",
        default=None,
        metavar="DDF",
        help="linear models: also print lmerTest's type III F table with satterthwaite or kenward-roger df",
    )
    p_fit.set_defaults(func=cmd_fit)


def cmd_fit(args: argparse.Namespace) -> int:
    """``fit``, with the F table when ``--anova`` asks for one."""
    from ..lmm.ftest import ddf_method
    from ..present.ftests import format_anova, records
    from .commands import _cmd_fit, _fitter

    if args.anova is None:
        return _cmd_fit(args)
    if getattr(args, "confint", None) is not None:
        from ..errors import ModelError

        raise ModelError("give --anova or --confint, not both (run the command twice for both tables)")
    method = ddf_method(args.anova)  # a bad name fails before the fit
    data = _read_table(args.data, getattr(args, "factors", None))
    with warnings.catch_warnings(record=True) as caught, _Elapsed("fitting"):
        warnings.simplefilter("always")
        m = _fitter(args, data)()
        if not hasattr(m, "anova"):
            from ..errors import ModelError

            raise ModelError("--anova applies to linear mixed models (family gaussian, identity link)")
        table = m.anova(ddf=method)
    if args.json:
        out = m.to_dict()
        out["anova"] = {"heading": table.attrs["heading"], "rows": records(table.reset_index(names="term"))}
        print(json.dumps(out, indent=2, default=str))
    else:
        print(m.summary())
        print()
        print(format_anova(table))
    print_warnings(caught)
    return 0
