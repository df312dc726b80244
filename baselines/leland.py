"""Leland's hedge: the Black-Scholes delta at a volatility adjusted for transaction costs.

Leland (1985), "Option pricing and replication with transactions costs", J. Finance 40(5),
1283-1301: rebalancing every ``dt`` years with a round-trip proportional cost ``k``, a short
option is replicated (the costs included) by the Black-Scholes hedge at the larger volatility

    sigma_L^2 = sigma^2 (1 + sqrt(2 / pi) k / (sigma sqrt(dt)))

and a long one at the smaller ``sigma^2 (1 - ...)``; ``Le = sqrt(2 / pi) k / (sigma sqrt(dt))``
is the Leland number. Costs act like extra volatility for a hedger who is short gamma (each
rebalance buys high and sells low, plus the spread) and like less for one who is long gamma.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from hedgearena.baselines.delta import EnvHedger, FloatArray, stack_positions
from hedgearena.baselines.hedger import State
from hedgearena.envs.black_scholes import black_scholes_greeks
from hedgearena.envs.book import held_quantity


def leland_volatility(
    vol: FloatArray | float,
    cost_round_trip: FloatArray | float,
    interval: float,
    short: NDArray[np.bool_] | bool = True,
) -> FloatArray:
    r"""Leland's (1985) cost-adjusted volatility.

    .. math::

        \sigma_L^2 = \sigma^2 \left(1 \pm \sqrt{2/\pi}\, \frac{k}{\sigma \sqrt{\Delta t}}\right)

    with ``+`` for a short option (the writer's hedge) and ``-`` for a long one. When the
    Leland number exceeds 1 for a long option, ``sigma_L^2 <= 0``: there is no real adjusted
    vol (Leland's replication breaks down; Hoggard, Whalley and Wilmott 1994 show the pricing
    equation is then ill-posed). We clip ``sigma_L^2`` at 0: the delta becomes its zero-vol
    limit ``e^{-q tau} 1{F > K}`` (for a call), a stop-loss hedge that buys as the forward
    crosses the strike, the limit of Leland's delta as ``sigma_L -> 0``.

    Args:
        vol: ``sigma``, annualised (> 0).
        cost_round_trip: ``k``, the round-trip proportional cost (twice the one-way rate:
            ``2 * cost_linear / S`` in the env's terms).
        interval: ``Delta t``, years between rebalances (> 0).
        short: True where the position is short the option (broadcast).

    Returns:
        ``sigma_L`` (>= 0), broadcast shape.

    Examples:
        Hand check (sigma = 20%, k = 2%, daily on 250 days): ``Le = 0.797885 * 0.02 /
        (0.2 * 0.0632456) = 1.261566``, ``sigma_L = 0.2 sqrt(2.261566) = 0.300770``.

        >>> round(float(leland_volatility(0.2, 0.02, 1 / 250)), 6)
        0.30077
        >>> float(leland_volatility(0.2, 0.02, 1 / 250, short=False))  # Le > 1: clipped to 0
        0.0

        Long, k = 0.2%: ``Le = 0.1261566``, ``sigma_L = 0.2 sqrt(0.8738434) = 0.186959``.

        >>> round(float(leland_volatility(0.2, 0.002, 1 / 250, short=False)), 6)
        0.186959
    """
    if not (math.isfinite(interval) and interval > 0):
        raise ValueError(f"interval must be a finite number of years > 0, got {interval!r}")
    if not (np.all(np.asarray(vol) >= 0) and np.all(np.asarray(cost_round_trip) >= 0)):
        raise ValueError("vol and cost_round_trip must be >= 0 (a NaN or negative was given)")
    sign = np.where(short, 1.0, -1.0)
    vol = np.asarray(vol, dtype=np.float64)
    # sigma^2 Le = sqrt(2 / pi) k sigma / sqrt(dt): written without dividing by sigma.
    extra = math.sqrt(2.0 / math.pi) * np.asarray(cost_round_trip) * vol / math.sqrt(interval)
    return np.sqrt(np.maximum(vol * vol + sign * extra, 0.0))


class RepricedDelta(EnvHedger):
    """Minus the book's delta with each option valued at a vol of the subclass's choosing.

    The base of hedgers that move the model's delta by changing the volatility it is computed
    at (Leland; Zakamouline's band centre): :meth:`volatilities` gives each instrument's implied
    vol (the surface that marks the book) and the vol to hedge it at; :meth:`repriced_hedge` is
    ``-(sum_i q_i delta_i(sigma_i') + stock)`` over the instruments held.
    """

    uses_observations = False  # reads the state only

    def volatilities(self, state: State) -> tuple[FloatArray, FloatArray]:
        """The implied and hedging vols of every instrument, ``(n_paths, n_instruments)`` each."""
        raise NotImplementedError

    def repriced_hedge(self, state: State) -> FloatArray:
        """Minus the book's delta at the hedging vols (the book's own stock included), units."""
        batch = self.env.batch
        market, book = batch.market, batch.instruments
        step = np.asarray(state["step"])[:, None]
        held = held_quantity(step, book.start, book.expiry, book.quantity)
        _, vol = self.volatilities(state)
        delta = black_scholes_greeks(
            state["spot"][:, None],
            book.strike,
            self.time_to_expiry(state),
            vol,
            market.rate,
            market.dividend,
            book.is_call,
            select=("delta",),
        ).delta
        book_delta = np.sum(held * delta, axis=1)
        return -(book_delta + batch.episode.stock)

    def time_to_expiry(self, state: State) -> FloatArray:
        """Years to each instrument's expiry, ``(n_paths, n_instruments)`` (0 once expired)."""
        market, book = self.env.batch.market, self.env.batch.instruments
        dt = float(market.times[1] - market.times[0])
        now = market.times[np.asarray(state["step"])][:, None]
        return np.maximum(book.expiry * dt - now, 0.0)

    def implied_vols(self, state: State, tau: FloatArray) -> FloatArray:
        """The surface's vol of every instrument, as the book is marked."""
        market, book = self.env.batch.market, self.env.batch.instruments
        step = np.asarray(state["step"])
        level = market.vol_state[np.arange(len(step)), step][:, None]
        return np.asarray(
            market.surface.implied_vol(
                state["spot"][:, None],
                book.strike,
                tau,
                level,
                market.spot[:, :1],
                market.rate,
                market.dividend,
            ),
            dtype=np.float64,
        )


def book_is_short(state: State) -> NDArray[np.bool_]:
    """Paths whose book is short gamma (or flat: the writer's side), ``(n_paths, 1)``.

    A portfolio's costs follow its net gamma (Hoggard, Whalley and Wilmott 1994), so the sign
    of a cost-adjusted vol is the whole book's, not each option's.
    """
    return (state["book_gamma"] <= 0)[:, None]


class Leland(RepricedDelta):
    """Minus the book's delta with every option valued at its Leland volatility.

    Per instrument ``i`` held on the path: its implied vol ``sigma_i`` (the surface that marks
    the book), ``sigma_L,i`` from :func:`leland_volatility` with ``k = 2 * cost_linear / S``
    (``cost_linear / S`` is the proportional cost rate lambda of the step), ``dt`` the env's
    rebalancing interval (``config.dt * config.rebalance_every``) and the sign of the whole
    book's gamma on the path (short or no gamma: ``+``, long: ``-``; Hoggard, Whalley and Wilmott
    1994, "Hedging option portfolios in the presence of transaction costs", Advances in Futures
    and Options Research 7: a portfolio's costs follow its net gamma, so offsetting options
    keep offsetting); the hedge is ``-(sum_i q_i delta_i(sigma_L,i) + stock)``. Leland's hedge
    uses the underlying only: with a hedging option it holds none.
    """

    name = "Leland"

    def volatilities(self, state: State) -> tuple[FloatArray, FloatArray]:
        """The implied and Leland vols of every instrument, ``(n_paths, n_instruments)`` each."""
        vol = self.implied_vols(state, self.time_to_expiry(state))
        cost_round_trip = 2.0 * state["cost_linear"][:, None] / state["spot"][:, None]
        interval = self.config.dt * self.config.rebalance_every
        return vol, leland_volatility(vol, cost_round_trip, interval, book_is_short(state))

    def positions(self, state: State, obs: NDArray[np.float32]) -> FloatArray:
        """Minus the book's Leland delta (the book's own stock included)."""
        hedge = self.repriced_hedge(state)
        return stack_positions(hedge, np.zeros_like(hedge), self.config.action_dim)
