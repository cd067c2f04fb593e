"""What every subcommand shares: reading the data file, the status line, printing a fit,
and the library's messages in the command line's own terms."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from pathlib import Path
from typing import Any

# The library's messages name an argument as ``name=`` or ``name='value'`` and an entry
# point as ``crt.analyze()`` (see multilevel.errors); the command line prints them with
# the running command's flags instead. FLAGS holds that command's ``dest -> --flag``.
FLAGS: ContextVar[dict[str, str] | None] = ContextVar("FLAGS", default=None)
_ARG = re.compile(r"(?<![\w.-])([a-z_][a-z0-9_]*)=(?:'([^']*)'|\"([^\"]*)\"|([\w.+-]+))?")
# arguments the command line spells as a switch, and Python calls that are commands here
# (argument, value) -> (the switch's dest, what to print)
_SWITCHES = {
    ("reml", "False"): ("ml", "--ml"),
    ("reml", "True"): ("ml", "REML (no --ml)"),
    ("reml", None): ("ml", "--ml"),
    ("refit", "False"): ("no_refit", "--no-refit"),
    ("refit", "True"): ("no_refit", "no --no-refit"),
}
# library phrases the command line says with one of its flags: phrase -> (dest, what to print)
_PHRASES = {
    "control=FitControl(max_seconds=...)": ("max_seconds", "--max-seconds SECONDS"),
}
_CALLS = {
    "multilevel.sample": "multilevel sample",
    "multilevel.fit": "multilevel fit",
    "multilevel.gee": "multilevel gee",
    "crt.analyze()": "multilevel crt analyze",
}


def command_flags(parser: argparse.ArgumentParser) -> dict[str, str]:
    """``dest -> --flag`` for the options of one (sub)command."""
    out = {}
    for action in parser._actions:
        long = [o for o in action.option_strings if o.startswith("--")]
        if long and action.dest != "help":
            out[action.dest] = long[0]
    return out


# ``params={'Asym': '1 + (1 | Tree)'}``: a one-entry mapping of a flag given as NAME=VALUE
_PAIR = re.compile(r"(?<![\w.-])([a-z_]+)=\{'([^']*)': ('[^']*'|[-\w.+]+)\}")


def in_cli_terms(text: str) -> str:
    """``text`` with the Python arguments it names written as the running command's flags
    (``na_action='omit'`` -> ``--na-action omit``); names without a flag stay as they are."""
    flags = FLAGS.get()
    if not flags:
        return text

    def flag(m: re.Match[str]) -> str:
        name = m.group(1)
        value = next((g for g in m.groups()[1:] if g is not None), None)
        dest, switch = _SWITCHES.get((name, value), ("", ""))
        if dest in flags:
            return switch
        if name not in flags:
            return m.group(0)
        if value is None:  # ``at={...}`` -> ``--at {...}``
            glued = m.end() < len(m.string) and m.string[m.end()] in "{[("
            return flags[name] + (" " if glued else "")
        return f"{flags[name]} {value}"

    for phrase, (dest, said) in _PHRASES.items():
        if dest in flags:
            text = text.replace(phrase, said)

    def pair(m: re.Match[str]) -> str:
        name, key, value = m.group(1), m.group(2), m.group(3).strip("'")
        return f"{flags[name]} '{key}={value}'" if name in flags else m.group(0)

    text = _PAIR.sub(pair, text)
    text = _ARG.sub(flag, text)
    for call, command in _CALLS.items():
        text = text.replace(call, command)
    return text


def print_warnings(caught: Iterable[warnings.WarningMessage]) -> None:
    """Each caught warning on a line of its own on stderr, in the command line's terms."""
    for w in caught:
        print(f"warning: {in_cli_terms(str(w.message))}", file=sys.stderr)


def _read_table(path: str, factors: str | None = None) -> Any:
    """The table at ``path``, with the comma-separated ``factors`` columns (``--factors``)
    made categorical (a column of numbers is otherwise a numeric predictor)."""
    df = _read_file(path)
    names = [c.strip() for c in (factors or "").split(",") if c.strip()]
    for col in names:
        if col not in df.columns:
            from ..errors import DataError

            raise DataError(
                f"--factors: {col!r} is not a column of {path}; columns: {', '.join(map(str, df.columns))}"
            )
        df[col] = df[col].astype(str).astype("category")
    return df


def _read_file(path: str) -> Any:
    import pandas as pd

    from ..errors import DataError

    p = Path(path)
    if not p.exists():
        raise DataError(f"data file {path!r} does not exist")
    if p.is_dir():
        raise DataError(f"data path {path!r} is a directory; give a CSV or Parquet file")
    suffix = "".join(p.suffixes[-2:]).lower()
    try:
        if suffix.endswith(".parquet") or suffix.endswith(".pq"):
            return _named(pd.read_parquet(p), p.name)
        if suffix.endswith((".csv", ".csv.gz", ".txt", ".tsv")):
            sep = "\t" if ".tsv" in suffix else ","
            return _named(pd.read_csv(p, sep=sep), p.name)
    except Exception as exc:
        raise DataError(f"cannot read {path!r}: {exc}") from exc
    raise DataError(f"unknown file type {p.suffix!r} for {path!r}; use .csv or .parquet")


def _fit_control(max_seconds: float | None = None, device: str = "cpu", backend: str = "auto") -> Any:
    """The command line fits once per process: Numba's start-up (~0.5 s) would cost more
    than its kernels save, so they are off unless ``MULTILEVEL_NUMBA`` asks for them.
    ``max_seconds``: ``--max-seconds``, the optimizers' time limit; ``device`` and
    ``backend``: ``--device`` and ``--backend``."""
    from ..control import FitControl

    return FitControl(
        compiled_kernels=None if "MULTILEVEL_NUMBA" in os.environ else False,
        max_seconds=max_seconds,
        device=device,
        backend=backend,
    )


def add_device_options(p: Any) -> None:
    """``--device {cpu,gpu}`` and ``--backend {auto,numpy,jax}`` of a linear mixed model fit."""
    p.add_argument(
        "--device",
        choices=["cpu", "gpu"],
        default="cpu",
        help="linear mixed models: evaluate the criterion on the CPU (default) or on JAX's first "
        "GPU, in double precision (needs JAX with CUDA: pip install 'multilevel[gpu]')",
    )
    p.add_argument(
        "--backend",
        choices=["auto", "numpy", "jax"],
        default="auto",
        help="linear mixed models: the criterion's arrays: auto (NumPy on the CPU, JAX on a GPU), "
        "numpy, or jax (on the CPU, what a GPU would run)",
    )


def add_time_limit_option(p: Any) -> None:
    """``--max-seconds``: the optimizers' time limit (default 6 s under 1,000 rows, else none)."""
    p.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop the optimizers after this long (converged=False, with a warning); default: "
        "6 s for models under 1,000 rows, no limit for larger ones",
    )


def add_laplace_option(p: Any) -> None:
    """``--laplace {observed,expected}``: the curvature of a GLMM's Laplace approximation."""
    p.add_argument(
        "--laplace",
        choices=["observed", "expected"],
        default=None,
        help="GLMMs: the Laplace approximation's curvature: observed information (default, as "
        "glmmTMB) or expected information (as lme4's glmer); they agree for canonical links. "
        "For Gamma, inverse Gaussian and Gaussian with a non-identity link, expected is lme4's "
        "glmer criterion (the dispersion out of the Laplace part), not the Laplace likelihood",
    )


def laplace_flag(args: Any, linear: bool) -> str | None:
    """The ``laplace=`` of a fit from ``--laplace``; an error for a linear mixed model."""
    value = getattr(args, "laplace", None)
    if linear and value is not None:
        from ..errors import ModelError

        raise ModelError(
            f"--laplace {value} applies to generalized models (--family binomial, poisson, ...); "
            "a linear mixed model's likelihood is exact, with no Laplace approximation: drop --laplace"
        )
    return None if linear else value


def _named(df: Any, name: str) -> Any:
    df.attrs["name"] = name  # the summary's Data: line
    return df


DELAY = 1.0  # seconds before the status line appears


class _Elapsed:
    """A status line on stderr with the elapsed time, shown only once a step takes over a
    second, and only on a terminal (in a log or a pipe it would be noise)."""

    def __init__(self, desc: str) -> None:
        self.desc = desc

    def __enter__(self) -> _Elapsed:
        import threading

        self.live = bool(getattr(sys.stderr, "isatty", lambda: False)())
        if not self.live:
            return self

        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=None, desc=self.desc, delay=DELAY, bar_format="{desc}: {elapsed}", file=sys.stderr
        )
        self.stop = threading.Event()
        self.drawn = False

        def tick() -> None:
            # refresh() draws the line even inside tqdm's delay: wait for it first
            if self.stop.wait(DELAY):
                return
            self.drawn = True
            self.bar.refresh()
            while not self.stop.wait(0.25):
                self.bar.refresh()

        self.thread = threading.Thread(target=tick, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.live:
            return
        self.stop.set()
        self.thread.join()
        self.bar.close()
        if self.drawn:
            # tqdm leaves its status line open: what follows on stderr (warnings, an
            # error) starts on a line of its own
            sys.stderr.write("\n")
            sys.stderr.flush()


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
    print_warnings(caught)
    return 0
