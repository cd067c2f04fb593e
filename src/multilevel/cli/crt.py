"""``multilevel crt power | analyze``: cluster randomized trials."""

from __future__ import annotations

import argparse
import json
import warnings
from typing import Any, Literal

from .common import _read_table, print_warnings


def _cmd_crt_power(args: argparse.Namespace) -> int:
    from .. import crt
    from ..errors import DataError

    needed = {
        "continuous": ("delta", "icc"),
        "binary": ("p1", "p2", "icc"),
        "rate": ("rate1", "rate2", "between_cv"),
    }
    missing = [f"--{k.replace('_', '-')}" for k in needed[args.outcome] if getattr(args, k) is None]
    if missing:
        raise DataError(f"a {args.outcome} outcome needs {', '.join(missing)} (no default is assumed)")
    if args.outcome == "continuous":
        sc = crt.continuous(args.delta, args.sd, args.icc, cv=args.cv)
    elif args.outcome == "binary":
        sc = crt.binary(args.p1, args.p2, args.icc, cv=args.cv)
    else:
        sc = crt.rate(args.rate1, args.rate2, args.between_cv)
    ref: Literal["t", "z"] = "z" if args.z else "t"
    inputs = {k: getattr(args, k) for k in needed[args.outcome]}
    if args.outcome != "rate":
        inputs["cv"] = args.cv
    if args.outcome == "continuous":
        inputs["sd"] = args.sd
    out: dict[str, Any] = {"outcome": args.outcome, **inputs, "reference": ref, "alpha": args.alpha}
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
    from .. import crt

    data = _read_table(args.data, getattr(args, "factors", None))
    cov = [c for c in (args.covariates or "").split(",") if c]
    alts = [c for c in (args.alternatives or "").split(",") if c]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
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
    print_warnings(caught)
    return 0
