"""Command line: ``multilevel fit | sample | report | graph | gee | crt | example``.

Errors in the input (paths, formulas, columns, data) print one line on stderr and
exit with status 2; no tracebacks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

EXAMPLES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "eight_schools": ("eight_schools", "y | se(sigma) ~ 1 + (1 | school)", {}),
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
  multilevel sample schools.csv "y | se(sigma) ~ 1 + (1 | school)" \\
      --prior "Intercept=normal(0, 5)" --prior "sd=cauchy(0, 5)"
  multilevel example eight_schools
"""

# the eight-schools example: the priors of the reference posterior
EIGHT_SCHOOLS_PRIORS = {"Intercept": "normal(0, 5)", "sd": "cauchy(0, 5)"}


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


class _Elapsed:
    """A status line on stderr with the elapsed time, shown only once a step takes over a second."""

    def __init__(self, desc: str) -> None:
        self.desc = desc

    def __enter__(self) -> _Elapsed:
        import threading

        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=None, desc=self.desc, delay=1.0, bar_format="{desc}: {elapsed}", file=sys.stderr
        )
        self.stop = threading.Event()

        def tick() -> None:
            while not self.stop.wait(0.25):
                self.bar.refresh()

        self.thread = threading.Thread(target=tick, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.bar.close()


def _run_and_report(run: Callable[[], Any], as_json: bool) -> int:
    """Fit with warnings collected, print the summary or JSON, then the warnings on stderr."""
    with warnings.catch_warnings(record=True) as caught, _Elapsed("fitting"):
        warnings.simplefilter("always")
        fit = run()
        if not as_json and hasattr(fit, "df"):
            fit.df  # noqa: B018 - Satterthwaite df for the summary, inside the timed step
    if as_json:
        print(json.dumps(fit.to_dict(), indent=2, default=str))
    else:
        print(fit.summary())
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    return 0


def _fitter(args: argparse.Namespace, data: Any) -> Callable[[], Any]:
    """``multilevel.fit`` with the fitting options shared by ``fit`` and ``report``, to
    call later (the import happens now, outside any timed status line)."""
    from .api import fit

    return lambda: fit(
        args.formula,
        data,
        family=args.family,
        link=args.link,
        nagq=args.nagq,
        reml=not args.ml,
        na_action=args.na_action,
    )


def _cmd_fit(args: argparse.Namespace) -> int:
    data = _read_table(args.data)
    return _run_and_report(
        _fitter(args, data),
        args.json,
    )


def _priors(items: list[str] | None) -> dict[str, str] | None:
    from .errors import ModelError

    if not items:
        return None
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ModelError(
                f"--prior {item!r}: write it as CLASS_OR_PARAMETER=DISTRIBUTION, e.g. 'sd=cauchy(0, 5)'"
            )
        out[key.strip()] = value.strip()
    return out


def _sample_report(post: Any, as_json: bool, point_estimates: bool) -> int:
    if as_json:
        d = post.to_dict()
        if point_estimates:
            pe = post.point_estimates()
            d["point_estimates"] = {
                k: {c: (v if isinstance(v, str) else float(v)) for c, v in row.items()}
                for k, row in pe.to_dict("index").items()
            }
        print(json.dumps(d, indent=2, default=str))
        return 0
    print(post.summary_text())
    if point_estimates:
        import pandas as pd

        pe = post.point_estimates()
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(
                f"\nExpectations and modes ({pe.attrs['method']} estimate, MAP, posterior mean and median):"
            )
            print(pe.to_string(float_format=lambda v: f"{v:.4g}"))
    return 0


def _sample(args: argparse.Namespace, data: Any, progress: bool) -> Any:
    """``multilevel.sample`` with the sampling options shared by ``sample`` and ``report --bayes``."""
    from .bayes.sampler import sample

    return sample(
        args.formula,
        data,
        family=args.family,
        link=args.link,
        priors=_priors(args.prior),
        chains=args.chains,
        draws=args.draws,
        warmup=args.warmup,
        seed=args.seed,
        progress=progress and not args.no_progress,
        target_accept=args.target_accept,
        na_action=args.na_action,
    )


def _cmd_sample(args: argparse.Namespace) -> int:
    data = _read_table(args.data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        post = _sample(args, data, progress=not args.json)
    _sample_report(post, args.json, args.point_estimates)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    return 0


def _cmd_gee(args: argparse.Namespace) -> int:
    from .marginal import gee

    data = _read_table(args.data)
    return _run_and_report(
        lambda: gee(
            args.formula,
            data,
            groups=args.groups,
            family=args.family,
            link=args.link,
            corstr=args.corstr,
            time=args.time,
            se=args.se,
            na_action=args.na_action,
        ),
        args.json,
    )


def _cmd_graph(args: argparse.Namespace) -> int:
    from .api import Model

    model = Model(args.formula, _read_table(args.data), family=args.family)
    g = model.graph()
    if args.output:
        print(g.save(args.output))
    else:
        print(g.to_dot())
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    import contextlib

    data = _read_table(args.data)
    fit = _fitter(args, data)

    # sampling shows its own progress bar
    status = contextlib.nullcontext() if args.bayes else _Elapsed("fitting and writing the report")
    with warnings.catch_warnings(), status:
        warnings.simplefilter("ignore")
        if args.bayes:
            m = _sample(args, data, progress=True)
        else:
            m = fit()
        path = m.report(args.output)
    print(path)
    return 0


def _cmd_crt_power(args: argparse.Namespace) -> int:
    from . import crt
    from .errors import DataError

    if args.outcome == "continuous":
        sc = crt.continuous(args.delta, args.sd, args.icc, cv=args.cv)
    elif args.outcome == "binary":
        sc = crt.binary(args.p1, args.p2, args.icc, cv=args.cv)
    else:
        sc = crt.rate(args.rate1, args.rate2, args.between_cv)
    ref: Literal["t", "z"] = "z" if args.z else "t"
    out: dict[str, Any] = {"outcome": args.outcome, "reference": ref, "alpha": args.alpha}
    if args.clusters and args.size:
        out["power"] = crt.power(sc, args.clusters, args.size, alpha=args.alpha, reference=ref)
        out.update(clusters_per_arm=args.clusters, cluster_size=args.size)
    elif args.size:
        out["clusters_per_arm"] = crt.clusters_needed(
            sc, args.size, target=args.target, alpha=args.alpha, reference=ref
        )
        out["cluster_size"] = args.size
    elif args.clusters:
        out["cluster_size"] = crt.cluster_size_needed(
            sc, args.clusters, target=args.target, alpha=args.alpha, reference=ref
        )
        out["clusters_per_arm"] = args.clusters
    else:
        raise DataError("give --clusters and/or --size (one of them is solved for when the other is missing)")
    if "power" not in out:
        out["power"] = crt.power(
            sc, out["clusters_per_arm"], out["cluster_size"], alpha=args.alpha, reference=ref
        )
        out["target"] = args.target
    if args.outcome != "rate":
        out["design_effect"] = crt.design_effect(out["cluster_size"], args.icc, args.cv)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k:>18}: {v:.4g}" if isinstance(v, float) else f"{k:>18}: {v}")
    return 0


def _cmd_crt_analyze(args: argparse.Namespace) -> int:
    from . import crt

    data = _read_table(args.data)
    cov = [c for c in (args.covariates or "").split(",") if c]
    alts = [c for c in (args.alternatives or "").split(",") if c]
    res = crt.analyze(
        data,
        outcome=args.outcome,
        arm=args.arm,
        cluster=args.cluster,
        covariates=cov,
        method=args.method,
        alternatives=alts,
    )
    print(json.dumps(res.to_dict(), indent=2) if args.json else res.report())
    return 0


def _cmd_example(args: argparse.Namespace) -> int:
    from .api import fit
    from .datasets import load_dataset

    if args.name not in EXAMPLES:
        from .errors import DataError

        raise DataError(f"unknown example {args.name!r}; choose one of {', '.join(EXAMPLES)}")
    dataset, formula, kwargs = EXAMPLES[args.name]
    if args.name == "eight_schools":
        return _example_eight_schools(args, dataset, formula)
    kwargs = dict(kwargs)
    if args.ml:
        kwargs["reml"] = False
    if not args.json:
        extra = "".join(f", {k}={v!r}" for k, v in kwargs.items())
        print(f"# multilevel.fit({formula!r}, load_dataset({dataset!r}){extra})\n")
    return _run_and_report(lambda: fit(formula, load_dataset(dataset), **kwargs), args.json)


def _example_eight_schools(args: argparse.Namespace, dataset: str, formula: str) -> int:
    """REML next to full Bayes: the mode of tau at 0, its posterior mean near 3.6."""
    from .bayes.sampler import sample
    from .datasets import load_dataset

    if not args.json:
        print(
            f"# multilevel.sample({formula!r}, load_dataset({dataset!r}), priors={EIGHT_SCHOOLS_PRIORS!r})\n"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        post = sample(formula, load_dataset(dataset), priors=EIGHT_SCHOOLS_PRIORS, progress=not args.json)
    _sample_report(post, args.json, point_estimates=True)
    for w in caught:
        if "Sampling" in type(w.message).__name__:
            print(f"warning: {w.message}", file=sys.stderr)
    return 0


def _add_sampling_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--prior",
        action="append",
        metavar="KEY=DIST",
        help="a prior, e.g. 'sd=cauchy(0, 5)' or 'b=normal(0, 1)' (repeatable); keys: Intercept, b, sd, "
        "cor, sigma, shape, sd_GROUP, cor_GROUP or a parameter name",
    )
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--draws", type=int, default=1000, help="kept draws per chain")
    p.add_argument("--warmup", type=int, default=1000, help="warmup draws per chain")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--target-accept", type=float, default=0.8, help="NUTS target acceptance (0.8)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--link", default=None, help="link function (default: the family's canonical link)")
    p.add_argument("--na-action", choices=["omit", "raise"], default="omit")


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
    p_smp = sub.add_parser(
        "sample",
        help="full Bayes: draw from the posterior with NumPyro's NUTS",
        epilog='example: multilevel sample schools.csv "y | se(sigma) ~ 1 + (1 | school)" '
        '--prior "sd=cauchy(0, 5)" --point-estimates',
    )
    p_smp.add_argument("data", help="CSV or Parquet file")
    p_smp.add_argument("formula", help='model formula, e.g. "y ~ x + (1 | g)"')
    p_smp.add_argument("--family", default="gaussian")
    _add_sampling_options(p_smp)
    p_smp.add_argument(
        "--point-estimates", action="store_true", help="also print REML/ML, MAP, mean and median side by side"
    )
    p_smp.add_argument("--json", action="store_true", help="print the posterior summary as JSON")
    p_smp.set_defaults(func=_cmd_sample)
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
    p_graph = sub.add_parser(
        "graph",
        help="the model as a plate diagram (DOT on stdout, or -o file.svg/.png/.dot)",
        epilog='example: multilevel graph pastes.csv "strength ~ 1 + (1 | batch/cask)" -o pastes.svg',
    )
    p_graph.add_argument("data", help="CSV or Parquet file")
    p_graph.add_argument("formula")
    p_graph.add_argument("--family", default="gaussian")
    p_graph.add_argument(
        "-o", "--output", default=None, help="write .svg, .png or .dot instead of printing DOT"
    )
    p_graph.set_defaults(func=_cmd_graph)
    p_rep = sub.add_parser(
        "report",
        help="fit and write a self-contained HTML report",
        epilog='example: multilevel report sleep.csv "Reaction ~ Days + (Days | Subject)" -o report.html',
    )
    p_rep.add_argument("data", help="CSV or Parquet file")
    p_rep.add_argument("formula")
    p_rep.add_argument("-o", "--output", default="report.html")
    p_rep.add_argument("--family", default="gaussian")
    p_rep.add_argument("--nagq", type=int, default=1)
    p_rep.add_argument("--ml", action="store_true")
    p_rep.add_argument("--bayes", action="store_true", help="sample the posterior and report it instead")
    _add_sampling_options(p_rep)
    p_rep.set_defaults(func=_cmd_report)
    p_crt = sub.add_parser("crt", help="cluster randomized trials: power and analysis")
    crt_sub = p_crt.add_subparsers(dest="crt_command", required=True)
    p_pow = crt_sub.add_parser(
        "power",
        help="power, clusters per arm or cluster size for a two-arm CRT",
        epilog="example: multilevel crt power --outcome continuous --delta 0.3 --sd 1 --icc 0.05 --size 20",
    )
    p_pow.add_argument("--outcome", choices=["continuous", "binary", "rate"], default="continuous")
    p_pow.add_argument("--delta", type=float, default=0.0, help="continuous: difference in means")
    p_pow.add_argument("--sd", type=float, default=1.0, help="continuous: outcome SD")
    p_pow.add_argument("--p1", type=float, default=0.5, help="binary: control proportion")
    p_pow.add_argument("--p2", type=float, default=0.5, help="binary: intervention proportion")
    p_pow.add_argument("--rate1", type=float, default=1.0, help="rate: control rate")
    p_pow.add_argument("--rate2", type=float, default=1.0, help="rate: intervention rate")
    p_pow.add_argument("--between-cv", type=float, default=0.0, help="rate: CV of true cluster rates")
    p_pow.add_argument("--icc", type=float, default=0.0)
    p_pow.add_argument("--cv", type=float, default=0.0, help="CV of cluster sizes")
    p_pow.add_argument("--clusters", type=int, default=None, help="clusters per arm")
    p_pow.add_argument("--size", type=float, default=None, help="cluster size (person-time for rates)")
    p_pow.add_argument("--target", type=float, default=0.8)
    p_pow.add_argument("--alpha", type=float, default=0.05)
    p_pow.add_argument("--z", action="store_true", help="normal reference instead of t on 2k - 2 df")
    p_pow.add_argument("--json", action="store_true")
    p_pow.set_defaults(func=_cmd_crt_power)
    p_an = crt_sub.add_parser("analyze", help="analyse a parallel two-arm CRT")
    p_an.add_argument("data", help="CSV or Parquet file")
    p_an.add_argument("--outcome", required=True)
    p_an.add_argument("--arm", required=True)
    p_an.add_argument("--cluster", required=True)
    p_an.add_argument("--covariates", default="", help="comma-separated covariates")
    p_an.add_argument("--method", choices=["auto", "lmm", "gee", "glmm", "cluster_t"], default="auto")
    p_an.add_argument("--alternatives", default="", help="comma-separated extra analyses")
    p_an.add_argument("--json", action="store_true")
    p_an.set_defaults(func=_cmd_crt_analyze)
    p_ex = sub.add_parser(
        "example",
        help="fit a bundled example end to end (eight_schools: REML beside full Bayes)",
        epilog="example: multilevel example eight_schools",
    )
    p_ex.add_argument("name", help=f"one of: {', '.join(EXAMPLES)}")
    p_ex.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    p_ex.add_argument("--json", action="store_true", help="print the fit as JSON")
    p_ex.set_defaults(func=_cmd_example)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .errors import FormulaError, MultilevelError

    # one fit per process: Numba's start-up (~0.5 s) would cost more than its
    # kernels save, unless the user asked for them
    numba_default = "MULTILEVEL_NUMBA" not in os.environ
    if numba_default:
        os.environ["MULTILEVEL_NUMBA"] = "0"
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
    finally:
        if numba_default:
            os.environ.pop("MULTILEVEL_NUMBA", None)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
