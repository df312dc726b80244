"""Risk limits with circuit breakers: what a desk's risk manager watches, and what a breach does.

After every decision the envs measure the hedged book's exposures at the new step and compare
them with the limits of :class:`RiskLimits`. Each limit is optional (None = not watched):

========= ================================================================ ====================
limit     exposure measured                                                unit
========= ================================================================ ====================
delta     ``|book_delta + h + g option_delta| / N``                        multiples of N
gamma     ``|book_gamma + g option_gamma| * S * 1% / N``                   multiples of N
vega      ``|book_vega + g option_vega| * 1%``                             currency per vol pt
drawdown  ``max_{decisions so far} W - W``                                 currency
========= ================================================================ ====================

``N`` is the book's notional (units of the underlying), ``h`` and ``g`` the positions in the
underlying and the hedging option, ``S`` the spot and ``W`` the wealth (the peak includes the
episode's start). Gamma is the change of the net delta, in multiples of ``N``, for a 1% move of
the spot; vega the P&L of a one vol point (0.01) rise of implied vols.

A breach is edge-triggered: it counts when an exposure crosses its limit (``>``) on a decision,
and only again after the exposure has come back within the limit. Breaches are reported as a
bit mask (:data:`BREACH_FLAGS`); ``action`` says what a breach does: ``report`` (nothing more),
``flatten`` (the next decision trades to the model's position, delta neutral, or delta-gamma
neutral with a hedging option, whatever the action) or ``terminate`` (the episode ends there:
``terminated=True``, the positions sold when ``unwind`` is set).

The functions take Python floats (the single env) and numpy arrays (the vector env) alike.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import numpy as np

from hedgearena.envs.checks import is_number

LIMITS = ("delta", "gamma", "vega", "drawdown")
"""The limits, in the order of their bits and of the termination reason's priority."""
BREACH_FLAGS = {name: 1 << i for i, name in enumerate(LIMITS)}
"""Bit of each limit in ``info["breach"]``: delta 1, gamma 2, vega 4, drawdown 8."""
LIMIT_ACTIONS = ("report", "flatten", "terminate")
LIMIT_GREEKS = (
    "book_delta", "book_gamma", "book_vega", "option_delta", "option_gamma", "option_vega"
)
"""The greeks :func:`exposures` reads (fields of :class:`hedgearena.envs.episode.Features`)."""
GAMMA_MOVE = 0.01
"""The spot move (1%) of the gamma limit."""
VOL_POINT = 0.01
"""One vol point (the vega limit's unit)."""


@dataclass(frozen=True)
class RiskLimits:
    """Limits on the hedged book's exposures and what a breach does (see the module docstring).

    Attributes:
        delta: max ``|net delta|``, multiples of the notional; None = no limit.
        gamma: max ``|net gamma| * S * 1%``, multiples of the notional; None = no limit.
        vega: max ``|net vega|``, currency per vol point; None = no limit.
        drawdown: max fall of wealth below its peak in the episode, currency; None = no limit.
        action: ``report``, ``flatten`` or ``terminate``.

    Examples:
        >>> limits = RiskLimits.from_spec({"delta": 0.5, "action": "terminate"})
        >>> limits.delta, limits.action
        (0.5, 'terminate')
    """

    delta: float | None = None
    gamma: float | None = None
    vega: float | None = None
    drawdown: float | None = None
    action: str = "report"

    def __post_init__(self) -> None:
        for name in LIMITS:
            value = getattr(self, name)
            if value is not None and not is_number(value, ge=0.0):  # a bool is no limit
                raise ValueError(
                    f"risk_limits.{name} must be a finite number >= 0 or None, got {value!r}"
                )
        if self.action not in LIMIT_ACTIONS:
            raise ValueError(
                f"risk_limits.action must be one of {', '.join(LIMIT_ACTIONS)}; "
                f"got {self.action!r}"
            )

    @classmethod
    def from_spec(cls, spec: RiskLimits | dict[str, Any] | None) -> RiskLimits | None:
        """A :class:`RiskLimits` from itself, a dict of its fields, or None (no limits)."""
        if spec is None or isinstance(spec, RiskLimits):
            return spec
        if not isinstance(spec, dict):
            raise ValueError(
                f"risk_limits must be a RiskLimits, a dict or None, got {type(spec).__name__}"
            )
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(spec) - set(allowed))
        if unknown:
            raise ValueError(f"unknown risk_limits key(s) {unknown}; allowed: {allowed}")
        return cls(**spec)


class Exposures(NamedTuple):
    """The hedged book's exposures in the limits' units (floats or ``(n,)`` arrays)."""

    delta: Any
    gamma: Any
    vega: Any
    drawdown: Any


def exposures(
    greeks: dict[str, Any], spot: Any, hedge: Any, option: Any, drawdown: Any, notional: float
) -> Exposures:
    """The exposures that :class:`RiskLimits` bounds, absolute values in the limits' units.

    Args:
        greeks: ``book_delta`` (units, the book's stock included), ``book_gamma`` (units per
            currency), ``book_vega`` (currency per 1.00 of vol), ``option_delta``,
            ``option_gamma``, ``option_vega`` (of one unit of the hedging option).
        spot: the spot, currency.
        hedge: units of the underlying held.
        option: units of the hedging option held.
        drawdown: peak wealth minus wealth, currency.
        notional: the book's notional, units of the underlying.

    Examples:
        >>> g = dict(book_delta=-60.0, book_gamma=-5.0, book_vega=-20.0, option_delta=0.5,
        ...          option_gamma=0.05, option_vega=40.0)
        >>> exposures(g, 100.0, 40.0, 0.0, 3.0, 100.0)
        Exposures(delta=0.2, gamma=0.05, vega=0.2, drawdown=3.0)
    """
    delta = greeks["book_delta"] + hedge + option * greeks["option_delta"]
    gamma = greeks["book_gamma"] + option * greeks["option_gamma"]
    vega = greeks["book_vega"] + option * greeks["option_vega"]
    return Exposures(
        abs(delta) / notional,
        abs(gamma) * spot * (GAMMA_MOVE / notional),
        abs(vega) * VOL_POINT,
        drawdown,
    )


def over_limits(limits: RiskLimits, exposure: Exposures) -> Any:
    """Bit mask of the limits the exposures exceed (0 = none), an int or an int array."""
    mask = 0
    for name, flag in BREACH_FLAGS.items():
        limit = getattr(limits, name)
        if limit is not None:
            mask = mask + (getattr(exposure, name) > limit) * flag
    return mask


def new_breaches(over: Any, previous: Any) -> Any:
    """The limits crossed now: over now, within (or not watched) on the previous decision."""
    return over & ~previous


def count_breaches(mask: Any) -> Any:
    """Number of limits in a breach mask (an int, or an int array)."""
    return sum((mask & flag) != 0 for flag in BREACH_FLAGS.values())


def breach_names(mask: int) -> tuple[str, ...]:
    """The limits of a breach mask, in :data:`LIMITS` order.

    Examples:
        >>> breach_names(9)
        ('delta', 'drawdown')
    """
    return tuple(name for name, flag in BREACH_FLAGS.items() if mask & flag)


def first_breach(mask: Any) -> Any:
    """The first limit of a mask (the termination reason): a str, or a str array ("" = none)."""
    if isinstance(mask, np.ndarray):
        reason = np.full(mask.shape, "", dtype=f"<U{max(map(len, LIMITS))}")
        for name in reversed(LIMITS):
            reason[(mask & BREACH_FLAGS[name]) != 0] = name
        return reason
    names = breach_names(int(mask))
    return names[0] if names else ""
