"""Portfolio insurance: deliver ``N max(S_T, K)`` by trading the index and cash.

A fund promises its investors ``N max(S_T, K)`` at ``T``: the upside of ``N`` units of an equity
index with a floor ``K``. On ``hedgearena/PortfolioInsurance-v0`` the promise is the env's book
(what the fund owes) and the hedger's positions are the fund's assets: ``hedge`` units of the
index and the cash account, which starts with the investors' money (the promise's fair value).
The episode's P&L is the terminal assets minus ``N max(S_T, K)``: how far the strategy missed.

- :class:`SyntheticPut`: replicate the promise, ``N e^{-q tau} N(d1)`` units of the index, the
  synthetic put of Rubinstein and Leland (1981), "Replicating options with positions in stock
  and cash", Financial Analysts Journal 37(4).
- :class:`CPPI`: constant proportion portfolio insurance (Perold 1986, "Constant proportion
  portfolio insurance", Harvard Business School; Black and Jones 1987, "Simplifying portfolio
  insurance", J. Portfolio Management 14(1)): exposure ``m`` times the cushion above the
  discounted floor, whatever the option model says.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from hedgearena.baselines.delta import BlackScholesDelta, EnvHedger, FloatArray, stack_positions
from hedgearena.baselines.hedger import State
from hedgearena.envs.black_scholes import black_scholes_greeks
from hedgearena.envs.checks import is_number
from hedgearena.envs.vector_env import VecHedgingEnv


def synthetic_put_units(
    spot: FloatArray | float,
    floor: FloatArray | float,
    tau: FloatArray | float,
    vol: FloatArray | float,
    units: float,
    rate: float = 0.0,
    dividend: float = 0.0,
) -> FloatArray:
    r"""Units of the index that replicate ``N max(S_T, K)``: ``N e^{-q tau} N(d1)``.

    ``N max(S_T, K) = N S_T + N (K - S_T)^+``: the index plus a put, whose delta together is
    ``N e^{-q tau} (1 + N(d1) - 1)``, with ``d1 = (ln(S / K) + (r - q + sigma^2 / 2) tau) /
    (sigma sqrt(tau))``; the rest of the assets sits in cash (Rubinstein and Leland 1981).

    Args:
        spot: index level, currency.
        floor: ``K``, the insured level per unit of the index, currency.
        tau: years to the promise's date.
        vol: the index's volatility, annualised.
        units: ``N``, units of the index promised.
        rate: risk-free rate, per year.
        dividend: dividend yield of the index, per year.

    Returns:
        Units of the index to hold (broadcast shape).

    Examples:
        Hand check: ``S = K = 100``, ``tau = 1``, ``sigma = 20%``, ``r = q = 0``: ``d1 = 0.1``
        and ``N(0.1) = 0.53983`` (normal table), so 100 units need 53.983 in the index.

        >>> round(float(synthetic_put_units(100.0, 100.0, 1.0, 0.2, units=100.0)), 3)
        53.983
    """
    delta = black_scholes_greeks(spot, floor, tau, vol, rate, dividend, True, select=("delta",))
    return units * np.asarray(delta.delta, dtype=np.float64)


def cppi_exposure(
    assets: FloatArray | float,
    floor_value: FloatArray | float,
    multiplier: float,
    max_exposure: FloatArray | float = math.inf,
) -> FloatArray:
    """CPPI's exposure to the risky asset: ``clip(m (A - F), 0, E_max)``, currency.

    ``A - F`` is the cushion of the assets above the floor's present value; ``m`` the
    multiplier; ``E_max`` the cap (the assets themselves without leverage). While the index
    does not fall more than ``1/m`` between two rebalances the assets stay above the floor
    (Black and Jones 1987; Perold and Sharpe 1988).

    Args:
        assets: ``A``, the portfolio's value, currency.
        floor_value: ``F``, the floor's present value, currency.
        multiplier: ``m`` (> 0).
        max_exposure: ``E_max``, currency.

    Returns:
        The currency amount to hold in the risky asset (broadcast shape).

    Examples:
        ``A = 100``, ``F = 85``: ``4 x 15 = 60``; ``8 x 15 = 120`` capped at the assets;
        below the floor, nothing.

        >>> cppi_exposure(np.array([100.0, 100.0, 80.0]), 85.0, np.array([4.0, 8.0, 4.0]), 100.0)
        array([ 60., 100.,   0.])
    """
    return np.clip(multiplier * (np.asarray(assets) - floor_value), 0.0, max_exposure)


def _book_put(env: VecHedgingEnv) -> tuple[float, int] | None:
    """The floor (strike / initial spot) and expiry step of the book's first put, or None.

    The put is the fund's promise on hedgearena/PortfolioInsurance-v0.
    """
    for option in env.config.book.options:
        if not option.is_call:
            return float(option.moneyness), int(option.expiry_steps)
    return None


class SyntheticPut(BlackScholesDelta):
    """Replicate the insured payoff: hold minus the book's delta every ``every`` decisions.

    On the portfolio-insurance book that is the env's model hedge, :func:`synthetic_put_units`
    at the market's implied vol; in between rebalances the position is held.

    Args:
        every: decisions per rebalance (an integer >= 1).
    """

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.name = "synthetic put" if self.every == 1 else f"synthetic put every {self.every}"


class CPPI(EnvHedger):
    """Constant proportion portfolio insurance: ``m`` times the cushion in the index.

    Assets ``A = cash + hedge * S`` (the hedger's side of the env's accounting), floor value
    ``F = N K e^{-r tau}`` with ``N`` the book's notional, ``K = floor * S_0`` and ``tau`` the
    time left to the promise's date (the book's put's expiry; the episode's end without a put);
    the hedger holds :func:`cppi_exposure` ``/ S`` units of the index, the rest in cash.
    Without leverage the exposure is capped at the assets (no borrowing); ``leverage`` lets it
    reach that multiple of the assets. The strategy sets its own opening position: the env must
    start flat (``initial_hedge="zero"``), and the assets must exceed the floor's value then.

    The arena scores it, like every hedger, against the book's liability ``N max(S_T, K)``,
    which CPPI does not replicate: it gives up part of the upside by design, so its P&L and
    hedging cost count that as well as any shortfall below the floor (a fall of more than
    ``1 / m`` between two rebalances, where nothing is clipped).

    Args:
        multiplier: ``m`` (> 0); a fall of more than ``1 / m`` between two rebalances breaks
            the floor.
        floor: ``K / S_0`` (> 0); None reads it from the book's put (the env's promise).
        leverage: cap of the exposure as a multiple of the assets (> 0; 1 = no borrowing).
    """

    uses_observations = False  # reads the state only

    def __init__(
        self, multiplier: float = 4.0, floor: float | None = None, leverage: float = 1.0
    ) -> None:
        # is_number first: a string or None must fail with the field's name, not a TypeError
        if not is_number(multiplier, gt=0.0):
            raise ValueError(f"multiplier must be > 0, got {multiplier!r}")
        if floor is not None and not is_number(floor, gt=0.0):
            raise ValueError(f"floor must be > 0 (K / S_0) or None, got {floor!r}")
        if not is_number(leverage, gt=0.0):
            raise ValueError(f"leverage must be > 0 (a multiple of the assets), got {leverage!r}")
        self.multiplier, self.floor, self.leverage = float(multiplier), floor, float(leverage)
        self.name = f"CPPI {multiplier:g}" + (
            "" if floor is None else f" floor {floor:g}") + (
            "" if leverage == 1 else f" leverage {leverage:g}")

    def reset(self, env: VecHedgingEnv) -> None:
        """Fix the insured amount ``N K`` of each path from its initial spot, and its date.

        Raises:
            ValueError: if the env opens at a position of its own (``initial_hedge`` not
                ``"zero"``), if ``floor=None`` and the book has no put, or if the floor's value
                is not below the assets at the start (nothing to insure).
        """
        super().reset(env)
        if env.config.initial_hedge != "zero":
            raise ValueError(
                f"{self.name} sets its own opening position: it needs initial_hedge='zero', got "
                f"{env.config.initial_hedge!r} (which would open at the model's position)"
            )
        put = _book_put(env)
        if self.floor is None and put is None:
            raise ValueError(
                "CPPI(floor=None) reads the floor from the book's put (as on "
                "hedgearena/PortfolioInsurance-v0), but the book has none: give the floor as a "
                "fraction of the initial spot, CPPI(floor=0.9) in Python or the hedger spec "
                "cppi:4:0.9 (multiplier 4, floor 0.9)"
            )
        floor = put[0] if self.floor is None else self.floor  # type: ignore[index]
        config, state = env.config, env.state
        assert config.n_steps is not None
        # the promise's date, from the episode's time left: the put's expiry (else the end)
        self._to_promise = 0.0 if put is None else (put[1] - config.n_steps) * config.dt
        self._floor_fraction = float(floor)  # K / S_0
        (self._insured,) = self._insured_amount(state)
        assets, floor_value = self.assets(state), self.floor_value(state)
        if not (assets > floor_value).all():
            worst = int(np.argmax(floor_value - assets))
            raise ValueError(
                f"{self.name}: the floor's value ({floor_value[worst]:.6g}) is not below the "
                f"assets ({assets[worst]:.6g}) at the start: nothing to insure; give a lower "
                "floor (K / S_0)"
            )

    def _insured_amount(self, state: State) -> tuple[FloatArray]:
        """``N K`` of each path, from its spot at its episode's start (``K = floor S_0``)."""
        return (self.config.book.notional * self._floor_fraction * state["spot"],)

    def floor_value(self, state: State) -> FloatArray:
        """``F = N K e^{-r tau}`` on each path, currency (``tau``: years to the promise)."""
        tau = np.maximum(state["tau"] + self._to_promise, 0.0)
        return self._insured * np.exp(-state["rate"] * tau)

    def assets(self, state: State) -> FloatArray:
        """``A = cash + hedge * S`` on each path, currency (before the decision's trade)."""
        return state["cash"] + state["hedge"] * state["spot"]

    def positions(self, state: State, obs: NDArray[np.float32]) -> FloatArray:
        """``m (A - F)`` (capped) in the index, in units."""
        (self._insured,) = self.restart_references(state, (self._insured,), self._insured_amount)
        assets = self.assets(state)
        cap = self.leverage * np.maximum(assets, 0.0)
        exposure = cppi_exposure(assets, self.floor_value(state), self.multiplier, cap)
        hedge = exposure / state["spot"]
        return stack_positions(hedge, np.zeros_like(hedge), self.config.action_dim)
