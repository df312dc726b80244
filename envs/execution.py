"""Execution of the hedger's orders: partial fills, child orders and permanent price impact.

The formulas :func:`hedgearena.envs.core.transition` executes a decision with, written with
operators only, so they take Python floats (the single env), numpy arrays (the vector env) and
torch tensors (the deep-hedging trainer) alike.

- Partial fills (exogenous, from the market paths, e.g. a liquidity drought): an order ``q`` at
  step ``s`` fills ``q * fill_fraction_s``, and nothing at all when that is larger in size than
  ``fill_cap_s`` units (all or nothing past a size limit): :func:`filled_order`.
- Child orders: a decision's parent order is executed over the market steps of its interval,
  ``immediate`` (all at the decision step), ``twap`` (``1 / rebalance_every`` of it at every
  step) or ``participation`` (at most ``execution_rate * N / liquidity_s`` units a step, the
  rest carried to the next step of the interval and dropped at the next decision):
  :func:`child_order`.
- Permanent impact (the hedger's own trades move the price for the rest of the episode): a
  trade of ``q`` units moves the log spot by ``x = permanent_impact * q / N``; it executes at
  the average price along the move, ``S e^{I} (e^x - 1) / x`` (:func:`average_price_factor`),
  which makes a round trip cost nothing beyond the cost model's costs (no round-trip price
  manipulation pays; Huberman and Stanzl 2004, "Price manipulation and quasi-arbitrage",
  Econometrica 72). Options expiring at a step settle at the market's spot, which the hedger's
  trades do not move: settled at the moved spot, pushing the spot before an expiry and
  unwinding after it would pay (marking the close; about 120 a path for a short call's hedger
  at ``permanent_impact`` 0.01 without costs). The hedging option is quoted at the market's
  spot too: re-marked at the moved spot (it trades at its mark without impact of its own), a
  hedger could buy it, push the spot with the underlying, sell it at the pushed mark and then
  unwind the underlying (manipulation through a derivative, Jarrow 1994, "Derivative security
  markets, market manipulation, and option pricing theory", JFQA 29(2)): about 5,000 a path
  for 10 N of the at-the-money option and 1.5 N of the underlying at ``permanent_impact``
  0.05, costs included (tests/envs/test_frictions_audit_2.py). Positions are unwound at the
  end (``unwind=True`` is required with permanent impact): held, they would be marked at the
  spot their own buying pushed up. The moves are bounded by :data:`MAX_IMPACT_MOVE`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

EXECUTIONS = ("immediate", "twap", "participation")
MAX_IMPACT_MOVE = 100.0
"""Largest cumulative log move of the spot by the hedger's own trades, ``|I|`` (a factor of
``e^100``, about 2.7e43): past it the prices mean nothing and soon overflow float64 (``e^I``
itself at 709.8), so a trade that would go further raises (see :func:`check_impact`)."""


def filled_order(order: Any, fraction: Any, cap: Any) -> Any:
    """The part of an order that fills: ``order * fraction``, or 0 if that exceeds ``cap``.

    Args:
        order: signed order, units of the instrument.
        fraction: fraction that fills, in [0, 1].
        cap: the largest fill in absolute size, units (all or nothing past it; ``inf`` = none).

    Shape:
        The broadcast of the inputs (floats, arrays or tensors).

    Examples:
        >>> filled_order(10.0, 0.5, 6.0), filled_order(-20.0, 0.5, 6.0)
        (5.0, -0.0)
    """
    filled = order * fraction
    return filled * (abs(filled) <= cap)


def child_order(execution: str, remaining: Any, parent: Any, n_children: int, cap: Any) -> Any:
    """The order sent at one market step of a decision's interval.

    Args:
        execution: ``immediate``, ``twap`` or ``participation`` (see the module docstring).
        remaining: the part of the parent order not executed yet, units.
        parent: the decision's whole order, units.
        n_children: market steps of the interval (``rebalance_every``).
        cap: ``participation``'s largest child at this step, units (>= 0).

    Examples:
        >>> child_order("twap", 30.0, 40.0, 4, None)
        10.0
        >>> child_order("participation", -30.0, -40.0, 4, 25.0)
        -25.0
    """
    if execution == "twap":
        return parent / n_children
    if execution == "participation":
        return clip_size(remaining, cap)
    return remaining


def clip_size(order: Any, cap: Any) -> Any:
    """``order`` clipped into ``[-cap, cap]`` (floats, arrays or tensors)."""
    if isinstance(order, np.ndarray):
        return np.clip(order, -cap, cap)
    if isinstance(order, float):
        return min(max(order, -cap), cap)
    import torch

    return torch.minimum(torch.maximum(order, -cap), cap)


def check_impact(impact: Any, permanent_impact: float) -> None:
    """Raise ``ValueError`` naming ``permanent_impact`` if ``|impact|`` passes the bound.

    ``impact`` is the cumulative log move of the spot after a trade (a float or an array);
    the bound is :data:`MAX_IMPACT_MOVE`.

    Examples:
        >>> check_impact(np.array([3.0, -150.0]), 100.0)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: permanent_impact=100.0: ... move the log spot by -150 (the spot times e^-150)...
    """
    size = abs(impact)
    if isinstance(size, float) and size <= MAX_IMPACT_MOVE:  # the single env's fast path
        return
    if np.all(size <= MAX_IMPACT_MOVE):  # False for NaN too
        return
    flat = np.ravel(impact)
    worst = float(flat[np.argmax(np.where(np.isnan(flat), np.inf, np.abs(flat)))])
    raise ValueError(
        f"permanent_impact={permanent_impact!r}: the hedger's own trades would move the "
        f"log spot by {worst:.4g} (the spot times e^{worst:.4g}), beyond "
        f"+-{MAX_IMPACT_MOVE:g}, where prices overflow float64; give a smaller "
        f"permanent_impact or smaller positions"
    )


def average_price_factor(move: Any) -> Any:
    """``(e^x - 1) / x`` (1 at ``x = 0``): average price over a log move ``x``, per start price.

    A trade that moves the log price from ``I`` to ``I + x`` executes at
    ``S e^I (e^x - 1) / x``, the mean of ``S e^y`` for ``y`` in ``[I, I + x]``.

    Examples:
        >>> round(average_price_factor(-0.01), 8)  # selling: a bit below the start price
        0.99501663
        >>> average_price_factor(0.0)
        1.0
    """
    if isinstance(move, np.ndarray):
        nonzero = move != 0
        safe = np.where(nonzero, move, 1.0)
        return np.where(nonzero, np.expm1(safe) / safe, 1.0)
    return math.expm1(move) / move if move else 1.0
