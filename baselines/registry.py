"""Hedgers by name: the specs the command line and the configs use.

A spec is ``name`` or ``name:arg[:arg]``:

============================ ==================================================================
spec                         hedger
============================ ==================================================================
``no_hedge``                 :class:`~hedgearena.baselines.delta.NoHedge`
``delta`` / ``delta:K``      :class:`~hedgearena.baselines.delta.BlackScholesDelta` every K
``band:TOL`` / ``:centre``   :class:`~hedgearena.baselines.bands.FixedBand`, TOL in delta per
                             notional, to the edge (default) or the centre
``ww:A``                     :class:`~hedgearena.baselines.bands.WhalleyWilmott`, risk
                             aversion A per currency
``adaptive`` / ``adaptive:B`` :class:`~hedgearena.baselines.bands.AdaptiveBand`, base B
``leland``                   :class:`~hedgearena.baselines.leland.Leland`
``zakamouline:A``            :class:`~hedgearena.baselines.zakamouline.Zakamouline`, risk
                             aversion A per currency
``delta_gamma``              :class:`~hedgearena.baselines.delta_gamma.DeltaGamma`
``delta_vega``               :class:`~hedgearena.baselines.delta_gamma.DeltaVega`
``mv_delta:A:B:C``           :class:`~hedgearena.baselines.minimum_variance.MinimumVarianceDelta`,
                             Hull and White's minimum-variance delta with coefficients a, b, c
``realised_delta``           :class:`~hedgearena.baselines.realised_delta.RealisedVolDelta`, the
                             delta at the path's realised vol
``model_delta``              :class:`~hedgearena.baselines.model_delta.ModelDelta`, the model's
                             own minimum-variance delta (Heston, SABR, Merton; GBM: ``C_S``)
``synthetic_put`` / ``:K``   :class:`~hedgearena.baselines.portfolio_insurance.SyntheticPut`,
                             rebalanced every K decisions
``cppi[:M[:F[:L]]]``         :class:`~hedgearena.baselines.portfolio_insurance.CPPI`, multiplier M
                             (default 4), floor F (K / S_0; default the book's put), leverage L
``python:mod.Class[:a...]``  a :class:`~hedgearena.baselines.hedger.Hedger` subclass of your own,
                             ``mod.Class(a, ...)`` (arguments read as integers, numbers or words);
                             ``mod`` must be importable (installed, or on ``PYTHONPATH``)
============================ ==================================================================

``ww:best``, ``zakamouline:best`` and ``band:best`` name the member of the family with the
lowest objective on tuning paths, and ``mv_delta:fit`` the minimum-variance delta with the
coefficients regressed on them (``mv_delta:fit:E1[:E2...]``: one set a maturity bucket, the
edges E in years to expiry, ``T <= E1 < T <= E2 ... < T``; see
:mod:`hedgearena.baselines.benchmark` and
:func:`~hedgearena.baselines.minimum_variance.fit_spec_edges`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from hedgearena.baselines.bands import AdaptiveBand, FixedBand, WhalleyWilmott
from hedgearena.baselines.delta import BlackScholesDelta, NoHedge
from hedgearena.baselines.delta_gamma import DeltaGamma, DeltaVega
from hedgearena.baselines.hedger import Hedger
from hedgearena.baselines.leland import Leland
from hedgearena.baselines.minimum_variance import MinimumVarianceDelta, fit_spec_edges
from hedgearena.baselines.model_delta import ModelDelta
from hedgearena.baselines.portfolio_insurance import CPPI, SyntheticPut
from hedgearena.baselines.realised_delta import RealisedVolDelta
from hedgearena.baselines.zakamouline import Zakamouline


def _number(spec: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"hedger spec {spec!r}: {text!r} is not a number") from None
    if not np.isfinite(value):
        raise ValueError(f"hedger spec {spec!r}: {text!r} is not a finite number")
    return value


def _integer(spec: str, text: str) -> int:
    value = _number(spec, text)
    if value != int(value):
        raise ValueError(f"hedger spec {spec!r}: {text!r} is not an integer")
    return int(value)


def _band(spec: str, args: list[str]) -> Hedger:
    return FixedBand(_number(spec, args[0]), *(args[1:2] or ["edge"]))


def _mv_delta(spec: str, args: list[str]) -> Hedger:
    """``mv_delta:a:b:c``, named by its coefficients: two sets are two hedgers of a report.

    Examples:
        >>> _mv_delta("mv_delta:-0.10:0.2:0", ["-0.10", "0.2", "0"]).name
        'MV delta -0.1:0.2:0'
    """
    a, b, c = (_number(spec, x) for x in args)
    return MinimumVarianceDelta(a, b, c, name=f"MV delta {a:.15g}:{b:.15g}:{c:.15g}")


def _argument(text: str) -> int | float | str:
    """A spec argument: an integer, else a number, else the word itself.

    Examples:
        >>> _argument("5"), _argument("0.8"), _argument("1e-3"), _argument("centre")
        (5, 0.8, 0.001, 'centre')
    """
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _import_hedger_module(spec: str, module_name: str) -> Any:
    """The module of a ``python:`` spec; any error at its import named with the file.

    Raises:
        ValueError: the module cannot be found, or its code fails as it is imported (a syntax
            error, an exception it raises...), naming the spec, the module's file and the error.
    """
    try:
        return importlib.import_module(module_name)
    except Exception as error:  # the user's code: any error at import is named, with its file
        missing = error.name if isinstance(error, ModuleNotFoundError) else None
        if missing and f"{module_name}.".startswith(f"{missing}."):  # it or its package
            raise ValueError(f"hedger spec {spec!r}: cannot import {module_name!r} ({error}); "
                             "the module must be importable (installed, or on PYTHONPATH)"
                             ) from None
        where = getattr(error, "filename", None) if isinstance(error, SyntaxError) else None
        line = f", line {error.lineno}" if isinstance(error, SyntaxError) else ""
        raise ValueError(f"hedger spec {spec!r}: importing {module_name!r} "
                         f"({where or _module_file(module_name)}{line}) failed: "
                         f"{type(error).__name__}: {error}") from None


def _module_file(module_name: str) -> str:
    """The file of a module that may fail to import (``?`` if it cannot be found)."""
    import importlib.util

    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return "?"
    return str(found.origin) if found is not None and found.origin else "?"


def _python_hedger(spec: str, args: list[str]) -> Hedger:
    """``python:module.Class[:arg...]``: ``module.Class(*args)``, a :class:`Hedger` subclass."""
    path, *values = args
    module_name, _, class_name = path.rpartition(".")
    if not module_name or not class_name:
        raise ValueError(f"hedger spec {spec!r}: name the class as module.Class, e.g. "
                         "python:my_hedgers.PartialDelta:0.8")
    module = _import_hedger_module(spec, module_name)
    cls = getattr(module, class_name, None)
    if cls is None:
        defined = sorted(name for name, value in vars(module).items()
                         if isinstance(value, type) and issubclass(value, Hedger)
                         and value.__module__ == module.__name__)
        raise ValueError(f"hedger spec {spec!r}: module {module_name} "
                         f"({getattr(module, '__file__', '?')}) has no {class_name!r}; the "
                         f"Hedger subclasses it defines: {', '.join(defined) or 'none'}")
    if not (isinstance(cls, type) and issubclass(cls, Hedger)):
        raise ValueError(f"hedger spec {spec!r}: {path} is not a Hedger subclass "
                         "(hedgearena.baselines.Hedger)")
    try:
        return cls(*(_argument(value) for value in values))
    except TypeError as error:  # the wrong number or kind of arguments
        raise ValueError(f"hedger spec {spec!r}: {class_name}(...) refused its arguments "
                         f"{values}: {error}") from None


BUILDERS: dict[str, tuple[Callable[[str, list[str]], Hedger], str]] = {
    "no_hedge": (lambda s, a: NoHedge(), "no_hedge"),
    "delta": (lambda s, a: BlackScholesDelta(_integer(s, a[0]) if a else 1), "delta[:every]"),
    "band": (_band, "band:tolerance[:edge|centre]"),
    "ww": (lambda s, a: WhalleyWilmott(_number(s, a[0])), "ww:risk_aversion"),
    "adaptive": (lambda s, a: AdaptiveBand(_number(s, a[0])) if a else AdaptiveBand(),
                 "adaptive[:base]"),
    "leland": (lambda s, a: Leland(), "leland"),
    "zakamouline": (lambda s, a: Zakamouline(_number(s, a[0])), "zakamouline:risk_aversion"),
    "delta_gamma": (lambda s, a: DeltaGamma(), "delta_gamma"),
    "delta_vega": (lambda s, a: DeltaVega(), "delta_vega"),
    "mv_delta": (_mv_delta, "mv_delta:a:b:c"),
    "realised_delta": (lambda s, a: RealisedVolDelta(), "realised_delta"),
    "model_delta": (lambda s, a: ModelDelta(), "model_delta"),
    "synthetic_put": (lambda s, a: SyntheticPut(_integer(s, a[0]) if a else 1),
                      "synthetic_put[:every]"),
    "cppi": (lambda s, a: CPPI(*(_number(s, x) for x in a)),
             "cppi[:multiplier[:floor[:leverage]]]"),
    "python": (_python_hedger, "python:module.Class[:arg...]"),
}
"""name -> (builder from the spec and its arguments, usage)."""

def is_fitted(spec: str) -> bool:
    """Whether ``spec`` is fitted by the benchmark on its tuning paths.

    ``mv_delta:fit`` (pooled) or ``mv_delta:fit:edge...`` (by maturity bucket:
    :func:`~hedgearena.baselines.minimum_variance.fit_spec_edges`).

    Raises:
        ValueError: for a fitted spec of bad edges, naming the spec.

    Examples:
        >>> is_fitted("mv_delta:fit"), is_fitted(" mv_delta:fit "), is_fitted("mv_delta:0:0:0")
        (True, True, False)
        >>> is_fitted("mv_delta:fit:0.08:0.16")
        True
    """
    return fit_spec_edges(spec) is not None

RISK_AVERSION_GRID = tuple(float(x) for x in np.round(np.geomspace(1e-4, 10.0, 11), 6))
"""Risk aversions (per currency) swept by the utility-based band families."""

FAMILIES: dict[str, tuple[str, tuple[float, ...]]] = {
    "ww": ("Whalley-Wilmott", RISK_AVERSION_GRID),
    "zakamouline": ("Zakamouline", RISK_AVERSION_GRID),
    "band": ("fixed band", (0.01, 0.02, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3, 0.4)),
}
"""Band families swept for the frontier and for ``:best``: name -> (label, parameter grid)."""


def parse_hedger(spec: str) -> Hedger:
    """The hedger of a spec (see the module docstring).

    Examples:
        >>> parse_hedger("delta:5").name
        'delta every 5'
        >>> parse_hedger("ww:0.1").name
        'Whalley-Wilmott 0.1'
    """
    if not isinstance(spec, str):
        raise ValueError(f"a hedger spec is a string such as 'delta:5', got {spec!r}")
    name, *args = spec.strip().split(":")
    if name not in BUILDERS:
        usage = ", ".join(usage for _, usage in BUILDERS.values())
        tuned = ", ".join(f"{family}:best" for family in FAMILIES)
        raise ValueError(f"unknown hedger {name!r} in {spec!r}; known: {usage}; and, resolved by "
                         f"the benchmark on its tuning paths: {tuned} (tuned), "
                         "mv_delta:fit[:edge...] (fitted)")
    if args and args[0] == "best":
        raise ValueError(f"{spec!r}: ':best' is resolved by the benchmark (tuning), not here")
    if is_fitted(spec):
        raise ValueError(f"{spec!r}: ':fit' is resolved by the benchmark (a regression on its "
                         "tuning paths), not here; give the coefficients (mv_delta:a:b:c) or "
                         "fit them with hedgearena.baselines.minimum_variance."
                         "fit_minimum_variance")
    builder, usage = BUILDERS[name]
    low, high = arity(usage)
    if not low <= len(args) <= high:
        takes = ("no argument" if high == 0 else f"{low}" if low == high
                 else f"{low} or more" if high == sys.maxsize else f"{low} to {high}")
        raise ValueError(
            f"hedger spec {spec!r} has {len(args)} argument(s); {name} takes {takes}: {usage}"
        )
    try:
        return builder(spec, args)
    except ValueError as error:
        if repr(spec) in str(error):
            raise
        raise ValueError(f"hedger spec {spec!r}: {error}") from None


def arity(usage: str) -> tuple[int, int]:
    """The fewest and most arguments of a spec's usage (optional ones in brackets).

    Examples:
        >>> arity("delta[:every]"), arity("band:tolerance[:edge|centre]"), arity("leland")
        ((0, 1), (1, 2), (0, 0))
        >>> arity("python:module.Class[:arg...]")[0]
        1
    """
    required, _, optional = usage.partition("[")
    if "..." in optional:  # any number of them
        return required.count(":"), sys.maxsize
    return required.count(":"), required.count(":") + optional.count(":")


def family_member(family: str, parameter: float) -> Hedger:
    """The hedger of ``family`` (a key of :data:`FAMILIES`) at ``parameter``."""
    return parse_hedger(f"{family}:{parameter:g}")


def describe(hedger: Hedger) -> dict[str, Any]:
    """A plain description of a hedger for saved configs: its class and public attributes."""
    fields = {
        key: value for key, value in vars(hedger).items()
        if not key.startswith("_") and isinstance(value, int | float | str | bool | tuple)
    }
    return {"class": type(hedger).__name__, **fields}
