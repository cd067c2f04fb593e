"""The argument parser: subcommands, their flags and help."""

from __future__ import annotations

import argparse
from typing import Any

from .aov import add_aov
from .commands import EPILOG, EXAMPLES, _cmd_example, _cmd_fit, _cmd_gee, _cmd_graph, _cmd_report, _cmd_sample
from .common import add_device_options, add_laplace_option, add_time_limit_option
from .crt import _cmd_crt_analyze, _cmd_crt_power
from .deconv import add_deconvolve
from .ftests import add_anova_option, add_emmeans
from .inference import add_anova, add_boot_options
from .nonlinear import add_nlfit, add_nonlinear_options


def _family_help() -> str:
    """The registry's family names (a wrong name is refused when the model is built, in one line)."""
    from ..family import family_names

    return "response family: " + ", ".join(family_names()) + " (default: gaussian)"


def _add_sampling_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--prior",
        dest="priors",  # sample()'s argument: its messages then name the flag
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
    p.add_argument(
        "--weights",
        default=None,
        metavar="COLUMN",
        help="prior weights; binomial: the numbers of trials of a proportion response",
    )


def _add_fit(sub: Any) -> None:
    """``multilevel fit``: a likelihood fit (LMM by REML/ML, GLMM by Laplace/quadrature)."""
    p_fit = sub.add_parser(
        "fit",
        help="fit a linear (REML/ML) or generalized (Laplace/quadrature) mixed model to a CSV/Parquet file",
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
        help=_family_help(),
    )
    p_fit.add_argument("--link", default=None, help="link function (default: the family's canonical link)")
    p_fit.add_argument(
        "--nagq",
        type=int,
        default=None,
        help="GLMMs: 1 = Laplace (default), up to 25 = adaptive quadrature, 0 = PIRLS only",
    )
    add_laplace_option(p_fit)
    add_time_limit_option(p_fit)
    add_device_options(p_fit)
    p_fit.add_argument(
        "--na-action",
        choices=["omit", "raise"],
        default="omit",
        help="drop rows with missing values (with a warning) or refuse them",
    )
    p_fit.add_argument(
        "--confint",
        default=None,
        metavar="METHOD",
        help="also print confidence intervals: profile (likelihood profile, as lme4), wald, or boot "
        "(parametric bootstrap; see --nsim, --boot-type, --seed)",
    )
    p_fit.add_argument(
        "--weights",
        default=None,
        metavar="COLUMN",
        help="prior weights; binomial: the numbers of trials of a proportion response",
    )
    p_fit.add_argument("--level", default="0.95", help="confidence level of --confint (default 0.95)")
    p_fit.add_argument(
        "--partitioned",
        action="store_true",
        help="linear mixed models: DATA is Parquet (a file, a directory or a quoted glob such as "
        "'data/*.parquet') read on a Dask cluster, never into this process (needs multilevel[scale])",
    )
    p_fit.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="with --partitioned: the dask.distributed scheduler to use (default: a local cluster "
        "started for the fit)",
    )
    p_fit.add_argument(
        "--progress",
        action="store_true",
        help="linear mixed models: show the rows read and the optimizer's evaluations on stderr",
    )
    add_boot_options(p_fit, nsim=500)
    p_fit.set_defaults(func=_cmd_fit)
    add_anova_option(p_fit)


def _add_sample(sub: Any) -> None:
    """``multilevel sample``: full Bayes with NUTS."""
    p_smp = sub.add_parser(
        "sample",
        help="full Bayes: draw from the posterior with NumPyro's NUTS",
        epilog='example: multilevel sample schools.csv "y | se(sigma) ~ 1 + (1 | school)" '
        '--prior "sd=cauchy(0, 5)" --point-estimates',
    )
    p_smp.add_argument("data", help="CSV or Parquet file")
    p_smp.add_argument("formula", help='model formula, e.g. "y ~ x + (1 | g)"')
    p_smp.add_argument("--family", default="gaussian", help=_family_help())
    _add_sampling_options(p_smp)
    p_smp.add_argument(
        "--point-estimates", action="store_true", help="also print REML/ML, MAP, mean and median side by side"
    )
    add_nonlinear_options(p_smp)
    p_smp.add_argument(
        "--mi",
        action="append",
        metavar="NAME=FORMULA",
        help="the sub-model of an mi(NAME) term, e.g. 'x=~ z' (default '~ 1')",
    )
    p_smp.add_argument("--json", action="store_true", help="print the posterior summary as JSON")
    p_smp.set_defaults(func=_cmd_sample)


def _add_gee(sub: Any) -> None:
    """``multilevel gee``: generalized estimating equations."""
    p_gee = sub.add_parser("gee", help="generalized estimating equations with small-sample SEs")
    p_gee.add_argument("data", help="CSV or Parquet file")
    p_gee.add_argument("formula", help='model formula without random effects, e.g. "y ~ arm + x"')
    p_gee.add_argument("--groups", required=True, help="column identifying the clusters")
    p_gee.add_argument("--family", default="gaussian", help=_family_help())
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
    p_gee.add_argument(
        "--weights",
        default=None,
        metavar="COLUMN",
        help="prior weights; binomial: the numbers of trials of a proportion response",
    )
    p_gee.set_defaults(func=_cmd_gee)


def _add_graph(sub: Any) -> None:
    """``multilevel graph``: the model as a plate diagram."""
    p_graph = sub.add_parser(
        "graph",
        help="the model as a plate diagram (DOT on stdout, or -o file.svg/.png/.dot)",
        epilog='example: multilevel graph pastes.csv "strength ~ 1 + (1 | batch/cask)" -o pastes.svg',
    )
    p_graph.add_argument("data", help="CSV or Parquet file")
    p_graph.add_argument("formula")
    p_graph.add_argument("--family", default="gaussian", help=_family_help())
    p_graph.add_argument(
        "-o", "--output", default=None, help="write .svg, .png or .dot instead of printing DOT"
    )
    p_graph.set_defaults(func=_cmd_graph)


def _add_report(sub: Any) -> None:
    """``multilevel report``: a self-contained HTML report."""
    p_rep = sub.add_parser(
        "report",
        help="fit and write a self-contained HTML report",
        epilog='example: multilevel report sleep.csv "Reaction ~ Days + (Days | Subject)" -o report.html',
    )
    p_rep.add_argument("data", help="CSV or Parquet file")
    p_rep.add_argument("formula")
    p_rep.add_argument("-o", "--output", default="report.html")
    p_rep.add_argument("--family", default="gaussian", help=_family_help())
    p_rep.add_argument(
        "--nagq", type=int, default=None, help="GLMMs: 1 = Laplace (default), up to 25 = quadrature"
    )
    add_laplace_option(p_rep)
    add_time_limit_option(p_rep)
    p_rep.add_argument("--ml", action="store_true")
    p_rep.add_argument("--bayes", action="store_true", help="sample the posterior and report it instead")
    _add_sampling_options(p_rep)
    p_rep.set_defaults(func=_cmd_report)


def _add_crt(sub: Any) -> None:
    """``multilevel crt power | analyze``."""
    p_crt = sub.add_parser("crt", help="cluster randomized trials: power and analysis")
    crt_sub = p_crt.add_subparsers(dest="crt_command", required=True)
    p_pow = crt_sub.add_parser(
        "power",
        help="power, clusters per arm or cluster size for a two-arm CRT",
        epilog="example: multilevel crt power --outcome continuous --delta 0.3 --sd 1 --icc 0.05 --size 20",
    )
    p_pow.add_argument("--outcome", choices=["continuous", "binary", "rate"], default="continuous")
    p_pow.add_argument("--delta", type=float, default=None, help="continuous: difference in means (required)")
    p_pow.add_argument("--sd", type=float, default=1.0, help="continuous: outcome SD (default 1)")
    p_pow.add_argument("--p1", type=float, default=None, help="binary: control proportion (required)")
    p_pow.add_argument("--p2", type=float, default=None, help="binary: intervention proportion (required)")
    p_pow.add_argument("--rate1", type=float, default=None, help="rate: control rate (required)")
    p_pow.add_argument("--rate2", type=float, default=None, help="rate: intervention rate (required)")
    p_pow.add_argument(
        "--between-cv", type=float, default=None, help="rate: CV of true cluster rates (required)"
    )
    p_pow.add_argument(
        "--icc", type=float, default=None, help="continuous, binary: intracluster correlation (required)"
    )
    p_pow.add_argument("--cv", type=float, default=0.0, help="CV of cluster sizes (default 0: equal sizes)")
    p_pow.add_argument("--clusters", type=int, default=None, help="clusters per arm")
    p_pow.add_argument("--size", type=float, default=None, help="cluster size (person-time for rates)")
    p_pow.add_argument("--target", type=float, default=0.8, help="power to reach when solving (default 0.8)")
    p_pow.add_argument("--alpha", type=float, default=0.05, help="two-sided level (default 0.05)")
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


def _add_example(sub: Any) -> None:
    """``multilevel example``: a bundled example end to end."""
    p_ex = sub.add_parser(
        "example",
        help="fit a bundled example end to end (eight_schools: REML beside full Bayes)",
        epilog="example: multilevel example eight_schools",
    )
    p_ex.add_argument("name", help=f"one of: {', '.join(EXAMPLES)}")
    p_ex.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    p_ex.add_argument("--json", action="store_true", help="print the fit as JSON")
    p_ex.set_defaults(func=_cmd_example)


def _mark_commands(parser: argparse.ArgumentParser) -> None:
    """Each (sub)command records its own parser: messages are printed with its flags."""
    parser.set_defaults(command_parser=parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for p in action.choices.values():
                _mark_commands(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multilevel",
        description="Hierarchical (mixed-effects) models from lme4-style formulas.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"multilevel {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_fit(sub)
    add_anova(sub, _family_help(), EPILOG)
    add_emmeans(sub, _family_help())
    _add_sample(sub)
    _add_gee(sub)
    _add_graph(sub)
    _add_report(sub)
    _add_crt(sub)
    _add_example(sub)
    add_deconvolve(sub)
    add_aov(sub)
    add_nlfit(sub)
    _mark_commands(parser)
    for p in sub.choices.values():  # every command that reads a table can declare factors
        has_data = any(a.dest == "data" for a in p._actions)
        if has_data and not any(a.dest == "factors" for a in p._actions):
            p.add_argument(
                "--factors",
                default=None,
                metavar="COLS",
                help="comma-separated columns to read as factors (numbers are otherwise numeric)",
            )
    return parser
