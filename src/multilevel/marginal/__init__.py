"""Marginal models: generalized estimating equations with small-sample corrected SEs."""

from .model import gee

__all__ = ["gee"]
