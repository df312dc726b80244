"""Risk measures of the per-path hedging cost: the objectives a deep hedger minimises.

Every measure takes the hedging costs ``C`` of a batch of paths (a loss: larger is worse,
currency) and returns one number. Each is written once against the array API
(``array_api_compat.array_namespace``), so the same function scores a numpy array in a report
and a torch tensor inside a training step, where it is differentiable.

=================== ========================================= ==============================
name (spec)         value                                     source
=================== ========================================= ==============================
``mean_std:c``      ``E[C] + c Std[C]``                       Cao, Chen, Hull, Poulos (2021)
``entropic:a``      ``(1/a) log E[exp(a C)]``                 Föllmer and Schied (2002)
``cvar:alpha``      mean of the worst ``1 - alpha`` of ``C``  Rockafellar and Uryasev (2002)
``mean_variance:k`` ``E[C] + k/2 Var[C]``                     Markowitz (1952)
=================== ========================================= ==============================

Moments are those of the empirical distribution of the batch (``ddof = 0``).

The arena's reports (:mod:`hedgearena.baselines.metrics`) estimate some of these differently,
so a trainer's value and the report's differ slightly on the same sample of ``n`` paths:

- ``mean_std``: the arena's ``cost_objective`` uses the sample std (``ddof = 1``), larger by
  ``c * std * (sqrt(n / (n - 1)) - 1)``, about ``c std / (2 n)``;
- ``cvar``: the arena's ``expected_shortfall`` averages the ``floor(n (1 - alpha))`` worst
  (at least one); this one weighs the next path by the fraction left over (Rockafellar and
  Uryasev's minimum, exact for the empirical distribution). Equal when ``n (1 - alpha)`` is a
  whole number, never above the arena's otherwise;
- ``entropic``: the measure of the arena's ``entropic_risk``, on another input: here of
  ``-cost`` (``cost = premium - e^{-rT} P&L``), there of the terminal P&L itself. With
  ``r = 0`` the trainer's value is the report's plus the premium (the measure is cash
  additive); the arena's ``entropic_risk(-cost)`` is the trainer's.

The differences are of order ``1 / n`` of the spread (for ES, of the gap between the worst
paths): negligible on the arena's 100,000 paths, visible on a small validation batch, where
near-ties may rank differently. In float32 the entropic value loses about ``1e-7 / a`` to
rounding (its gradient, the softmax weights of the paths, does not).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from array_api_compat import array_namespace

Array = Any
"""A numpy array or a torch tensor of per-path costs, shape ``(n_paths,)``."""


def _check(name: str, value: float, ok: bool, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


def _costs_namespace(cost: Array) -> Any:
    """The array namespace of ``cost``, checked to be ``(n_paths,)`` with ``n_paths >= 1``.

    A column ``(n_paths, 1)`` would be scored wrongly (expected shortfall sorts along the last
    axis), an empty batch as NaN.
    """
    shape = tuple(cost.shape)
    if len(shape) != 1 or shape[0] < 1:
        raise ValueError(f"cost must be a 1-D array of per-path costs, shape (n_paths,) with "
                         f"n_paths >= 1, got shape {shape}")
    return array_namespace(cost)


def mean_std(cost: Array, c: float = 1.5) -> Array:
    """Mean plus ``c`` standard deviations of the hedging cost.

    ``Y = E[C] + c * sqrt(E[(C - E[C])^2])`` (population std, ``ddof = 0``): the objective of
    Cao, Chen, Hull and Poulos (2021), "Deep hedging of derivatives using reinforcement
    learning", J. Financial Data Science 3(1), eq. (5), with ``c = 1.5``.

    Args:
        cost: per-path hedging costs, ``(n_paths,)``.
        c: weight of the standard deviation (>= 0).

    Examples:
        >>> import numpy as np
        >>> float(mean_std(np.array([1.0, 3.0]), 1.5))  # 2 + 1.5 * 1
        3.5
    """
    _check("c", c, math.isfinite(c) and c >= 0, "a finite number >= 0")
    xp = _costs_namespace(cost)
    return xp.mean(cost) + c * xp.std(cost, correction=0)


def mean_variance(cost: Array, kappa: float) -> Array:
    """Mean plus ``kappa / 2`` times the variance of the hedging cost.

    ``Y = E[C] + kappa/2 Var[C]`` (``ddof = 0``): the mean-variance criterion (Markowitz 1952,
    "Portfolio selection", J. Finance 7(1)); the objective behind the ``mean_variance`` reward
    of Kolm and Ritter (2019). ``kappa`` is in units of 1 / currency.

    Args:
        cost: per-path hedging costs, ``(n_paths,)``.
        kappa: risk aversion (>= 0).

    Examples:
        >>> import numpy as np
        >>> float(mean_variance(np.array([1.0, 3.0]), 0.5))  # 2 + 0.25 * 1
        2.25
    """
    _check("kappa", kappa, math.isfinite(kappa) and kappa >= 0, "a finite number >= 0")
    xp = _costs_namespace(cost)
    return xp.mean(cost) + 0.5 * kappa * xp.var(cost, correction=0)


def entropic(cost: Array, a: float) -> Array:
    """The entropic risk measure of the hedging cost with risk aversion ``a``.

    ``rho(C) = (1/a) log E[exp(a C)]`` (Föllmer and Schied 2002, "Convex measures of risk and
    trading constraints", Finance Stoch. 6(4); the exponential-utility indifference price of
    Buehler et al. 2019, "Deep hedging", Quant. Finance 19(8), sec. 4.4). Computed as a
    log-sum-exp shifted by ``max(a C)``, so it does not overflow. Tends to ``E[C]`` as
    ``a -> 0`` and to ``max C`` as ``a -> inf``; ``a`` is in units of 1 / currency.

    Args:
        cost: per-path hedging costs, ``(n_paths,)``.
        a: risk aversion (> 0).

    Examples:
        >>> import numpy as np
        >>> round(float(entropic(np.array([0.0, 2.0]), 1.0)), 6)  # log((1 + e^2) / 2)
        1.433781
        >>> round(float(entropic(np.array([1000.0, 1002.0]), 1.0)) - 1000.0, 6)  # no overflow
        1.433781
    """
    _check("a", a, math.isfinite(a) and a > 0, "a finite number > 0")
    xp = _costs_namespace(cost)
    scaled = a * cost
    top = xp.max(scaled)
    return (top + xp.log(xp.mean(xp.exp(scaled - top)))) / a


def expected_shortfall(cost: Array, alpha: float) -> Array:
    """The expected shortfall (CVaR) at level ``alpha``: the mean of the worst ``1 - alpha``.

    For the empirical distribution of ``n`` costs sorted in decreasing order
    ``C_(1) >= C_(2) >= ...`` and ``m = n (1 - alpha)``::

        ES = (C_(1) + ... + C_(k) + (m - k) C_(k+1)) / m,   k = floor(m),

    which equals the Rockafellar-Uryasev form ``min_w w + E[(C - w)^+] / (1 - alpha)``
    (Rockafellar and Uryasev 2002, "Conditional value-at-risk for general loss distributions",
    J. Banking Finance 26(7); Acerbi and Tasche 2002). Sort-based, so it is differentiable
    almost everywhere (the gradient flows to the tail paths); a trainer could instead learn
    ``w`` as a parameter (Buehler et al. 2019, sec. 4.3).

    Args:
        cost: per-path hedging costs, ``(n_paths,)``.
        alpha: confidence level in ``(0, 1)`` (0.95 averages the worst 5%).

    Examples:
        >>> import numpy as np
        >>> float(expected_shortfall(np.array([1.0, 2.0, 3.0, 4.0]), 0.5))  # (4 + 3) / 2
        3.5
        >>> costs = np.array([1.0, 2.0, 3.0, 4.0])
        >>> round(float(expected_shortfall(costs, 0.6)), 12)  # (4 + 0.6 * 3) / 1.6
        3.625
    """
    _check("alpha", alpha, 0.0 < alpha < 1.0, "a number in (0, 1)")
    xp = _costs_namespace(cost)
    n = cost.shape[0]
    m = n * (1.0 - alpha)
    if round(m) >= 1 and abs(m - round(m)) < 1e-9:  # never snap a tiny tail to zero paths
        m = float(round(m))
    k = min(math.floor(m), n)
    ordered = xp.sort(cost)  # ascending: the worst paths last
    total = xp.sum(ordered[n - k :]) if k > 0 else xp.sum(ordered[:0])
    if m > k:
        total = total + (m - k) * ordered[n - k - 1]
    return total / m


OBJECTIVES: dict[str, Callable[[Array, float], Array]] = {
    "mean_std": mean_std,
    "entropic": entropic,
    "expected_shortfall": expected_shortfall,
    "cvar": expected_shortfall,
    "mean_variance": mean_variance,
}
"""Objective names (as in specs like ``"mean_std:1.5"``) -> risk measures."""

_PARAMETERS = {
    "mean_std": ("c", 1.5),
    "entropic": ("a", None),
    "expected_shortfall": ("alpha", None),
    "cvar": ("alpha", None),
    "mean_variance": ("kappa", None),
}


@dataclass(frozen=True)
class Objective:
    """A risk measure with its parameter: ``Objective("mean_std", 1.5)(cost)``.

    Attributes:
        name: a key of :data:`OBJECTIVES`.
        parameter: the measure's parameter (``c``, ``a``, ``alpha`` or ``kappa``).

    Examples:
        >>> import numpy as np
        >>> objective = parse_objective("mean_std:1.5")
        >>> str(objective), float(objective(np.array([1.0, 3.0])))
        ('mean_std:1.5', 3.5)
    """

    name: str
    parameter: float

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or self.name not in OBJECTIVES:  # a list: unhashable
            raise ValueError(
                f"objective must be one of {', '.join(OBJECTIVES)}; got {self.name!r}"
            )
        label = _PARAMETERS[self.name][0]
        if isinstance(self.parameter, bool) or not isinstance(self.parameter, numbers.Real):
            raise ValueError(f"{self.name}: {label} must be a number, got {self.parameter!r}")
        OBJECTIVES[self.name](np.zeros(2), self.parameter)  # validates the parameter

    def __call__(self, cost: Array) -> Array:
        """The risk of the per-path costs ``cost`` (a scalar of the input's namespace)."""
        return OBJECTIVES[self.name](cost, self.parameter)

    def __str__(self) -> str:
        text = repr(float(self.parameter))  # every digit: 'entropic:0.0123456789' round-trips
        return f"{self.name}:{text.removesuffix('.0')}"


def parse_objective(spec: str | Objective) -> Objective:
    """An :class:`Objective` from a spec ``"name:parameter"`` (or itself).

    ``mean_std`` may omit its parameter (``c = 1.5``, Cao et al.); the others need one:
    ``"entropic:0.01"``, ``"cvar:0.95"``, ``"mean_variance:0.01"``.

    Raises:
        ValueError: for an unknown name, a missing or non-numeric parameter or one out of range.

    Examples:
        >>> parse_objective("cvar:0.95")
        Objective(name='cvar', parameter=0.95)
        >>> parse_objective("mean_std").parameter
        1.5
    """
    if isinstance(spec, Objective):
        return spec
    if not isinstance(spec, str):
        raise ValueError(f"objective must be a string like 'mean_std:1.5', got {spec!r}")
    name, sep, value = spec.strip().partition(":")
    name = name.strip()
    if name not in OBJECTIVES:
        raise ValueError(
            f"objective {spec!r}: unknown name {name!r}; known: {', '.join(OBJECTIVES)} "
            "(specs look like 'mean_std:1.5', 'entropic:0.01', 'cvar:0.95')"
        )
    label, default = _PARAMETERS[name]
    if not sep or not value.strip():
        if default is None:
            raise ValueError(f"objective {spec!r}: {name} needs its {label}, e.g. '{name}:0.5'")
        return Objective(name, default)
    try:
        parameter = float(value)
    except ValueError:
        raise ValueError(
            f"objective {spec!r}: {label} must be a number, got {value.strip()!r}"
        ) from None
    try:
        return Objective(name, parameter)
    except ValueError as err:
        raise ValueError(f"objective {spec!r}: {err}") from None

