"""Zakamouline's band: a Whalley-Wilmott relative fitted to the exact utility-based hedge.

Zakamouline solved the exponential-utility hedging problem of Hodges and Neuberger (1989)
numerically ("European option pricing and hedging with both fixed and proportional transaction
costs", J. Economic Dynamics and Control 30(1), 2006) and fitted closed forms to the optimal
no-transaction band of an option position ("Efficient analytic approximation of the optimal
hedging strategy for a European call option with transaction costs", Quantitative Finance 6(5),
2006, 435-445; the working paper "Optimal hedging of options with transaction costs", EFMA
2005). Sinclair, *Volatility Trading*, 2nd ed., 2013, ch. 7, quotes the fits for desks. With
proportional cost rate ``lambda``, absolute risk aversion ``gamma``, spot ``S``, vol ``sigma``,
time to expiry ``T`` and the position's gamma ``Gamma``:

- the band is centred on the Black-Scholes delta at a modified vol, ``sigma_m^2 = sigma^2 (1 -
  K)`` for a short gamma position and ``sigma^2 (1 + K)`` for a long one, with
  ``K = -4.76 lambda^0.78 T^-0.02 (e^{-rT} / sigma)^0.25 (gamma S^2 |Gamma|)^0.15`` (``K < 0``:
  a writer hedges at a higher vol, as in Leland's);
- its half-width is ``H_0 + H_1``: ``H_0 = lambda / (gamma S sigma^2 T)`` (a part that does not
  depend on the position: a band even where gamma vanishes) and ``H_1 = 1.12 lambda^0.31
  T^0.05 (e^{-rT} / sigma)^0.25 (|Gamma| / gamma)^0.5``.

Where Whalley and Wilmott's asymptotic band grows like ``lambda^(1/3) |Gamma|^(2/3)``, the
fitted one grows like ``lambda^0.31 |Gamma|^0.5`` plus ``H_0``, and moves its centre. For a
book, ``Gamma`` is the book's total gamma: with exponential utility, ``n`` options at risk
aversion ``gamma`` are one option at ``n gamma`` scaled by ``n``, and these formulas are then
unchanged with ``Gamma = n Gamma_1``.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from hedgearena.baselines.bands import band_position, checked_risk_aversion
from hedgearena.baselines.delta import FloatArray, stack_positions
from hedgearena.baselines.hedger import State
from hedgearena.baselines.leland import BookSlots, RepricedDelta, book_is_short
from hedgearena.envs.checks import is_number

VOL_FLOOR = 1e-8
"""Vols below this are read as it (the formulas divide by ``sigma``)."""


def _check_inputs(cost_rate: FloatArray | float, risk_aversion: float) -> None:
    if not is_number(risk_aversion, gt=0.0):  # a string or None: this error, not a TypeError
        raise ValueError(f"risk_aversion must be a finite number > 0, got {risk_aversion!r}")
    if not np.all(np.asarray(cost_rate) >= 0):  # NaN fails too
        raise ValueError("cost_rate must be >= 0 (the proportional cost rate lambda)")


def _time_and_vol(
    vol: FloatArray | float, tau: FloatArray | float, rate: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``T`` (years, > 0 expected), ``sigma`` (floored) and ``(e^{-rT} / sigma)^0.25``."""
    tau = np.asarray(tau, dtype=np.float64)
    sigma = np.maximum(np.asarray(vol, dtype=np.float64), VOL_FLOOR)
    return tau, sigma, np.power(np.exp(-rate * tau) / sigma, 0.25)


def zakamouline_half_width(
    cost_rate: FloatArray | float,
    gamma: FloatArray | float,
    risk_aversion: float,
    spot: FloatArray | float,
    vol: FloatArray | float,
    tau: FloatArray | float,
    rate: float = 0.0,
) -> FloatArray:
    r"""Half-width ``H_0 + H_1`` of Zakamouline's (2006) band, units of the underlying.

    .. math::

        H_0 = \frac{\lambda}{\gamma S \sigma^2 T}, \qquad
        H_1 = 1.12\, \lambda^{0.31}\, T^{0.05} \left(\frac{e^{-rT}}{\sigma}\right)^{0.25}
              \left(\frac{|\Gamma|}{\gamma}\right)^{0.5}

    Args:
        cost_rate: ``lambda``, the proportional cost per unit of value traded (>= 0).
        gamma: the position's gamma, units per currency of spot move.
        risk_aversion: ``gamma`` of the exponential utility, per currency (> 0).
        spot: ``S``, currency.
        vol: ``sigma``, annualised.
        tau: ``T``, years to expiry (> 0).
        rate: ``r``, per year.

    Returns:
        The half-width, broadcast shape.

    Examples:
        Hand check (lambda = 1%, gamma = 0.01, S = 100, sigma = 0.2, T = 0.25, Gamma = 2):
        ``H_0 = 0.01 / (0.01 * 100 * 0.04 * 0.25) = 1``; ``H_1 = 1.12 * 0.01^0.31 *
        0.25^0.05 * 5^0.25 * 200^0.5 = 1.12 * 0.239883 * 0.933033 * 1.495349 * 14.142136 =
        5.301180``.

        >>> round(float(zakamouline_half_width(0.01, 2.0, 0.01, 100.0, 0.2, 0.25)), 6)
        6.30118
        >>> float(zakamouline_half_width(0.0, 2.0, 0.01, 100.0, 0.2, 0.25))  # no cost, no band
        0.0
    """
    _check_inputs(cost_rate, risk_aversion)
    lam = np.asarray(cost_rate, dtype=np.float64)
    tau, sigma, discount_vol = _time_and_vol(vol, tau, rate)
    # lambda / gamma first, and sqrt(|Gamma|) / sqrt(gamma): no 0 / 0 nor 0 * inf (NaN) for a
    # risk aversion near the ends of float64 at zero cost
    h0 = lam / risk_aversion / (np.asarray(spot) * sigma**2 * tau)
    h1 = (1.12 * np.power(lam, 0.31) * np.power(tau, 0.05) * discount_vol
          * (np.sqrt(np.abs(gamma)) / math.sqrt(risk_aversion)))
    return h0 + h1


def zakamouline_vol(
    vol: FloatArray | float,
    cost_rate: FloatArray | float,
    gamma: FloatArray | float,
    risk_aversion: float,
    spot: FloatArray | float,
    tau: FloatArray | float,
    rate: float = 0.0,
    short: NDArray[np.bool_] | bool = True,
) -> FloatArray:
    r"""The modified vol ``sigma_m`` at which Zakamouline's band is centred.

    .. math::

        K = -4.76\, \frac{\lambda^{0.78}}{T^{0.02}} \left(\frac{e^{-rT}}{\sigma}\right)^{0.25}
            (\gamma S^2 |\Gamma|)^{0.15}, \qquad
        \sigma_m^2 = \sigma^2 (1 \mp K)

    with ``-`` (a larger vol) for a short gamma position and ``+`` for a long one, clipped at 0
    as :func:`~hedgearena.baselines.leland.leland_volatility` is. Arguments as in
    :func:`zakamouline_half_width`; ``short`` broadcasts.

    Examples:
        Same inputs: ``K = -4.76 * 0.01^0.78 / 0.25^0.02 * 5^0.25 * (0.01 * 1e4 * 2)^0.15
        = -4.76 * 0.027542 / 0.972655 * 1.495349 * 2.213882 = -0.446216``, so a short position
        hedges at ``0.2 sqrt(1.446216) = 0.240517`` and a long one at ``0.2 sqrt(0.553784) =
        0.148833``.

        >>> round(float(zakamouline_vol(0.2, 0.01, 2.0, 0.01, 100.0, 0.25)), 6)
        0.240517
        >>> round(float(zakamouline_vol(0.2, 0.01, 2.0, 0.01, 100.0, 0.25, short=False)), 6)
        0.148833
    """
    _check_inputs(cost_rate, risk_aversion)
    lam = np.asarray(cost_rate, dtype=np.float64)
    tau, sigma, discount_vol = _time_and_vol(vol, tau, rate)
    # (gamma S^2 |Gamma|)^0.15 as a product of powers: the product itself overflows for a
    # large risk aversion (0 * inf = NaN at zero cost, an infinite vol otherwise)
    k = (-4.76 * np.power(lam, 0.78) / np.power(tau, 0.02) * discount_vol
         * (risk_aversion**0.15 * np.power(np.square(spot) * np.abs(gamma), 0.15)))
    sign = np.where(short, -1.0, 1.0)
    return np.sqrt(np.maximum(sigma * sigma * (1.0 + sign * k), 0.0))


class Zakamouline(RepricedDelta):
    """Zakamouline's band: the previous hedge clipped into ``centre +- (H_0 + H_1)``.

    On each path, at each decision: ``lambda = cost_linear / S`` (the step's linear cost per
    unit over the spot; quadratic and fixed cost terms are not in the formulas), ``Gamma`` the
    book's gamma, ``sigma`` the at-the-money implied vol and ``T`` the time left (floored at the
    env's ``dt``) for the half-width (:func:`zakamouline_half_width`); the centre is minus the
    book's delta with each option at its :func:`zakamouline_vol` (its own implied vol and time
    to expiry, the book's net gamma and sign; :class:`~hedgearena.baselines.leland.Leland`'s
    repricing). At zero cost the band collapses to minus the book's delta (the model hedge
    without a hedging option). It hedges with the underlying only: with a hedging option it
    holds none.

    Args:
        risk_aversion: absolute risk aversion of the exponential utility, per currency (> 0).
            Larger = narrower band, more trading.
    """

    def __init__(self, risk_aversion: float) -> None:
        self.risk_aversion = checked_risk_aversion(risk_aversion)
        self.name = f"Zakamouline {risk_aversion:g}"

    def _cost_rate(self, state: State) -> FloatArray:
        return np.asarray(state["cost_linear"] / state["spot"], dtype=np.float64)

    def hedging_vols(self, state: State, slots: BookSlots, implied: FloatArray) -> FloatArray:
        """The modified vols of the book's ``slots`` of ``implied`` vols, ``(k,)``."""
        path = slots.path
        return zakamouline_vol(
            implied, self._cost_rate(state)[path], state["book_gamma"][path], self.risk_aversion,
            state["spot"][path], np.maximum(slots.tau, self.config.dt), state["rate"],
            book_is_short(state)[path],
        )

    def half_width(self, state: State) -> FloatArray:
        """``H_0 + H_1`` on each path, units of the underlying."""
        return zakamouline_half_width(
            self._cost_rate(state), state["book_gamma"], self.risk_aversion, state["spot"],
            state["implied_vol"], np.maximum(state["tau"], self.config.dt), state["rate"],
        )

    def positions(self, state: State, obs: NDArray[np.float32]) -> FloatArray:
        """The previous hedge clipped into the band around the repriced delta."""
        hedge = band_position(state["hedge"], self.repriced_hedge(state), self.half_width(state))
        return stack_positions(hedge, np.zeros_like(hedge), self.config.action_dim)
