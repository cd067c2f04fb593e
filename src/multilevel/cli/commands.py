"""The subcommands: each turns parsed flags into one call of the public API."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable
from typing import Any

from .common import _Elapsed, _fit_control, _read_table, _run_and_report, laplace_flag, print_warnings

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


def _fitter(args: argparse.Namespace, data: Any) -> Callable[[], Any]:
    """``multilevel.fit`` with the fitting options shared by ``fit`` and ``report``, to
    call later (the import happens now, outside any timed status line)."""
    from ..api import fit, is_linear_model
    from ..errors import ModelError

    linear = is_linear_model(args.family, getattr(args, "link", None))
    if linear and args.nagq is not None and args.nagq != 1:
        raise ModelError(
            f"--nagq {args.nagq} applies to generalized models (--family binomial, poisson, ...); "
            "a linear mixed model's likelihood is exact: drop --nagq"
        )
    if not linear and args.ml:
        raise ModelError(
            f"--ml applies to linear mixed models; a --family {args.family} model is fitted by maximum "
            "likelihood already (Laplace, or quadrature with --nagq): drop --ml"
        )
    laplace = laplace_flag(args, linear)
    control = _fit_control(
        getattr(args, "max_seconds", None), getattr(args, "device", "cpu"), getattr(args, "backend", "auto")
    )
    progress = bool(getattr(args, "progress", False))
    if progress and not linear and not getattr(args, "partitioned", False):
        raise ModelError(
            f"--progress applies to linear mixed models and --partitioned data for now: drop it for "
            f"--family {args.family}"
        )
    return lambda: fit(
        args.formula,
        data,
        family=args.family,
        link=getattr(args, "link", None),
        nagq=args.nagq if not linear else None,
        reml=False if args.ml else None,
        weights=getattr(args, "weights", None),
        na_action=args.na_action,
        control=control,
        laplace=laplace,
        progress=progress,
    )


def _partitioned_data(args: argparse.Namespace) -> str:
    """``--partitioned``: the Parquet path or glob, handed to the Dask path unread."""
    from ..errors import ModelError

    if getattr(args, "factors", None):
        raise ModelError(
            "--factors reads columns in this process; with --partitioned store those columns as "
            "strings or categories in the Parquet files instead"
        )
    if getattr(args, "confint", None) is not None:
        raise ModelError("--confint needs the rows in memory; drop --partitioned or --confint")
    return str(args.data)


def _fit_partitioned(args: argparse.Namespace) -> int:
    data = _partitioned_data(args)
    fitter = _fitter(args, data)
    if args.scheduler is None:
        return _run_and_report(fitter, args.json)
    from ..api.distributed import connected

    with connected(args.scheduler):
        return _run_and_report(fitter, args.json)


def _cmd_fit(args: argparse.Namespace) -> int:
    if getattr(args, "partitioned", False):
        return _fit_partitioned(args)
    if getattr(args, "scheduler", None) is not None:
        from ..errors import ModelError

        raise ModelError("--scheduler applies with --partitioned (Parquet data on a Dask cluster)")
    if getattr(args, "confint", None) is not None:
        from .inference import _check_confint, fit_with_confint

        _check_confint(args)
        return fit_with_confint(args, _fitter(args, _read_table(args.data, getattr(args, "factors", None))))
    data = _read_table(args.data, getattr(args, "factors", None))
    return _run_and_report(
        _fitter(args, data),
        args.json,
    )


def _priors(items: list[str] | None) -> dict[str, str] | None:
    from ..errors import ModelError

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
                f"\nExpectations and modes ({pe.attrs['method']} estimate"
                + (", MAP" if "MAP" in pe.columns else "")
                + ", posterior mean and median):"
            )
            print(pe.to_string(float_format=lambda v: f"{v:.4g}"))
    return 0


def _sample(args: argparse.Namespace, data: Any, progress: bool) -> Any:
    """``multilevel.sample`` with the sampling options shared by ``sample`` and ``report --bayes``."""
    from ..api import sample
    from .nonlinear import _pairs

    extra: dict[str, Any] = {}
    params = _pairs(getattr(args, "params", None), "--param", "FORMULA", number=False)
    if params is not None:  # a nonlinear model (sample()'s params=, start=)
        extra["params"] = params
        extra["start"] = _pairs(getattr(args, "start", None), "--start", "NUMBER", number=True)
    elif getattr(args, "start", None):
        from ..errors import ModelError

        raise ModelError("--start applies to nonlinear models: give their parameters with --param")
    mi = _pairs(getattr(args, "mi", None), "--mi", "FORMULA", number=False)
    if mi is not None:
        extra["mi"] = mi
    return sample(
        args.formula,
        data,
        family=args.family,
        link=args.link,
        priors=_priors(args.priors),
        weights=args.weights,
        na_action=args.na_action,
        control=_sample_control(args, progress),
        **extra,
    )


SAMPLE_FLAGS = {"chains": "--chains", "draws": "--draws", "warmup": "--warmup", "seed": "--seed"}
SAMPLE_FLAGS["target_accept"] = "--target-accept"


def _sample_control(args: argparse.Namespace, progress: bool) -> Any:
    """The sampler's settings from the flags; a bad value is reported by its flag."""
    from ..control import SampleControl
    from ..errors import ModelError

    values = {name: getattr(args, name) for name in SAMPLE_FLAGS}
    try:
        return SampleControl(progress=progress and not args.no_progress, **values)
    except ModelError as exc:
        msg = str(exc)
        for name, flag in SAMPLE_FLAGS.items():
            if msg.startswith(f"{name} "):
                raise ModelError(flag + msg[len(name) :]) from None
        raise


def _cmd_sample(args: argparse.Namespace) -> int:
    data = _read_table(args.data, getattr(args, "factors", None))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        post = _sample(args, data, progress=not args.json)
    _sample_report(post, args.json, args.point_estimates)
    print_warnings(caught)
    return 0


def _cmd_gee(args: argparse.Namespace) -> int:
    from ..api import gee

    data = _read_table(args.data, getattr(args, "factors", None))
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
            weights=args.weights,
            na_action=args.na_action,
        ),
        args.json,
    )


def _cmd_graph(args: argparse.Namespace) -> int:
    from ..api import Model

    model = Model(args.formula, _read_table(args.data, getattr(args, "factors", None)), family=args.family)
    g = model.graph()
    if args.output:
        print(g.save(args.output))
    else:
        print(g.to_dot())
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    import contextlib
    from pathlib import Path

    data = _read_table(args.data, getattr(args, "factors", None))
    fit = _fitter(args, data)
    existed = Path(args.output).exists()

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
    if existed:
        print(f"note: {path} existed and was replaced", file=sys.stderr)
    return 0


def _cmd_example(args: argparse.Namespace) -> int:
    from ..api import fit
    from ..datasets import load_dataset

    if args.name not in EXAMPLES:
        from ..errors import DataError

        raise DataError(f"unknown example {args.name!r}; choose one of {', '.join(EXAMPLES)}")
    dataset, formula, kwargs = EXAMPLES[args.name]
    if args.name == "eight_schools":
        return _example_eight_schools(args, dataset, formula)
    kwargs = dict(kwargs)
    if args.ml and "family" in kwargs:
        from ..errors import ModelError

        raise ModelError(
            f"--ml applies to linear mixed models; the {args.name} example is a GLMM, fitted by maximum "
            "likelihood already: drop --ml"
        )
    if args.ml:
        kwargs["reml"] = False
    if not args.json:
        extra = "".join(f", {k}={v!r}" for k, v in kwargs.items())
        print(f"# multilevel.fit({formula!r}, load_dataset({dataset!r}){extra})\n")
    control = _fit_control()
    return _run_and_report(lambda: fit(formula, load_dataset(dataset), control=control, **kwargs), args.json)


def _example_eight_schools(args: argparse.Namespace, dataset: str, formula: str) -> int:
    """REML next to full Bayes: the mode of tau at 0, its posterior mean near 3.6."""
    from ..api import sample
    from ..datasets import load_dataset

    if not args.json:
        print(
            f"# multilevel.sample({formula!r}, load_dataset({dataset!r}), priors={EIGHT_SCHOOLS_PRIORS!r})\n"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        post = sample(formula, load_dataset(dataset), priors=EIGHT_SCHOOLS_PRIORS, progress=not args.json)
    _sample_report(post, args.json, point_estimates=True)
    print_warnings(w for w in caught if "Sampling" in type(w.message).__name__)
    return 0
