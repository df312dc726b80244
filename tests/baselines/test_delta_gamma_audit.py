"""Audit of the hedgers that trade the listed hedging option: closed forms, a hand ledger, risk.

References: Hull, *Options, Futures and Other Derivatives*, the Greek letters chapter ("Gamma",
"Vega"): gamma neutral ``n = -Gamma_book / Gamma_opt``, vega neutral ``n = -V_book / V_opt``,
then delta neutral ``h = -(Delta_book + n Delta_opt)``; the Black-Scholes-Merton price and
greeks with a dividend yield (Merton 1973), recomputed here with scipy, not the env's pricer;
the env's accounting (README "Accounting", :mod:`hedgearena.envs.core`): wealth ``B + h S + g O
+ cash``, costs 1% of the stock traded and ``half_spread_vol * vega`` per option, interest on
cash and dividends on the stock each step, the book's settlement and the unwind at the end. A
discretely rebalanced delta hedge's error is driven by the book's gamma (Boyle and Emanuel
1980), so a gamma-neutral hedge leaves far less of it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.stats import norm

from hedgearena.baselines import DeltaGamma, DeltaVega, Hedger, run_hedger
from hedgearena.baselines.arena import run_arena
from hedgearena.baselines.delta import stack_positions
from hedgearena.baselines.hedger import State
from hedgearena.envs.book import HedgeOption
from hedgearena.envs.config import EnvConfig, make_config
from hedgearena.envs.episode import EpisodeBatch, build_episodes
from hedgearena.envs.vector_env import VecHedgingEnv

RATE, DIVIDEND, SIGMA = 0.03, 0.01, 0.2
N_PATHS = 32


def _bsm(spot: NDArray[np.float64], strike: float | NDArray[np.float64],
         tau: NDArray[np.float64]) -> dict[str, NDArray[np.float64]]:
    """Black-Scholes-Merton call price, delta, gamma and vega (per 1.0 of vol), with a yield."""
    root = SIGMA * np.sqrt(tau)
    d1 = (np.log(spot / strike) + (RATE - DIVIDEND + 0.5 * SIGMA**2) * tau) / root
    carry = np.exp(-DIVIDEND * tau)
    return {"price": spot * carry * norm.cdf(d1)
            - strike * np.exp(-RATE * tau) * norm.cdf(d1 - root),
            "delta": carry * norm.cdf(d1), "gamma": carry * norm.pdf(d1) / (spot * root),
            "vega": spot * carry * norm.pdf(d1) * np.sqrt(tau)}


@pytest.fixture(scope="module")
def paths() -> tuple[EnvConfig, EpisodeBatch]:
    """ShortCall (100 short ATM calls, 20 days, 1% costs) at r = 3%, q = 1%, with the default
    hedging option (ATM call expiring at step 90, 0.5 vol point half-spread)."""
    config = make_config("ShortCall", hedge_option=True,
                         market_kwargs={"rate": RATE, "dividend": DIVIDEND})
    return config, build_episodes(config, N_PATHS, np.random.default_rng(11))


Marks = dict[str, NDArray[np.float64]]


def _closed_form(
    spot: NDArray[np.float64], config: EnvConfig, neutral: str
) -> tuple[NDArray[np.float64], NDArray[np.float64], Marks]:
    """The hedge ratios at each decision of one path: ``(h, n)``, and the option's marks."""
    assert config.n_steps is not None
    n_steps, dt = config.n_steps, config.dt
    steps = np.arange(n_steps + 1)
    decided = steps[:-1]  # the decisions' steps: the book (100 short calls) before expiry
    book = {k: -100.0 * v for k, v in _bsm(spot[:-1], 100.0, (n_steps - decided) * dt).items()}
    option = _bsm(spot, spot[0], (90 - steps) * dt)
    units = -book[neutral] / option[neutral][:-1]
    assert np.all(option["vega"] / (spot * np.sqrt((90 - steps) * dt)) > 1e-4)  # usable
    units = np.clip(units, -1000.0, 1000.0)  # option_position_limit 10 x notional 100
    return -(book["delta"] + units * option["delta"][:-1]), units, option


@pytest.mark.parametrize(("hedger", "neutral"), [(DeltaGamma, "gamma"), (DeltaVega, "vega")])
def test_hedge_ratios_and_one_paths_pnl_match_a_hand_ledger(
    paths: tuple[EnvConfig, EpisodeBatch], hedger: type[Hedger], neutral: str,
) -> None:
    """Positions equal the closed forms (1e-9 units) and every path's P&L equals a cash ledger
    kept by hand (1e-8 currency): premium received, each trade of both instruments at
    ``S_t``, ``O_t`` plus its cost, interest and dividends, the short calls' settlement and
    the unwind (measured: 1.5e-11 and 7e-12)."""
    config, batch = paths
    env = VecHedgingEnv(num_envs=N_PATHS, config=config)
    record = run_hedger(env, hedger(), episodes=batch)
    assert config.n_steps is not None
    dt, n_steps = config.dt, config.n_steps
    grow, yield_ = math.exp(RATE * dt) - 1.0, math.exp(DIVIDEND * dt) - 1.0
    for p in range(N_PATHS):
        spot = batch.market.spot[p]
        hedge, units, option = _closed_form(spot, config, neutral)
        np.testing.assert_allclose(record.hedge[:, p], hedge, rtol=0, atol=1e-9)
        np.testing.assert_allclose(record.option[:, p], units, rtol=0, atol=1e-9)
        premium = 100.0 * _bsm(spot[0], 100.0, n_steps * dt)["price"]
        cash, held, held_option, paid = premium, 0.0, 0.0, 0.0
        for t in range(n_steps):
            trade, option_trade = hedge[t] - held, units[t] - held_option
            cost = 0.01 * spot[t] * abs(trade) + 0.005 * option["vega"][t] * abs(option_trade)
            cash -= trade * spot[t] + option_trade * option["price"][t] + cost
            held, held_option, paid = hedge[t], units[t], paid + cost
            cash += cash * grow + held * spot[t] * yield_
        cash -= 100.0 * max(spot[-1] - 100.0, 0.0)  # the short calls settle
        unwind = 0.01 * spot[-1] * abs(held) + 0.005 * option["vega"][-1] * abs(held_option)
        cash += held * spot[-1] + held_option * option["price"][-1] - unwind
        assert record.totals["initial_premium"][p] == pytest.approx(premium, abs=1e-9)
        assert record.totals["cost"][p] == pytest.approx(paid + unwind, abs=1e-8)
        assert record.totals["terminal_pnl"][p] == pytest.approx(cash, abs=1e-8)  # W_0 = 0


class DeltaOnly(Hedger):
    """The book's delta in the underlying, none of the hedging option."""

    name = "delta only"
    uses_observations = False

    def positions(self, state: State, obs: NDArray[np.float32]) -> NDArray[np.float64]:
        return stack_positions(-np.asarray(state["book_delta"]), np.zeros(len(state["spot"])), 2)


def test_without_costs_delta_gamma_leaves_a_quarter_of_delta_only_std() -> None:
    """ShortCall with free trading (no cost, no option spread), 4,000 paths of seed 5: std of
    P&L 9.8 for delta-gamma against 42.4 for delta only, ratio 0.232 with a delta-method
    standard error of 0.007 (0.233 +- 0.003 on 20,000 paths; bootstrap SE the same). The
    bound 0.3 is 10 standard errors above it: a hedge that stopped cancelling gamma (ratio
    near 1) fails it."""
    config = make_config("ShortCall", hedge_option=HedgeOption(half_spread_vol=0.0), cost=0.0)
    result = run_arena(config, [DeltaOnly(), DeltaGamma()], n_paths=4_000, seed=5,
                       progress=False)
    gamma = result.totals("delta-gamma")["terminal_pnl"]
    delta = result.totals("delta only")["terminal_pnl"]
    assert np.all(result.totals("delta-gamma")["cost"] == 0.0)
    ratio = gamma.std(ddof=1) / delta.std(ddof=1)
    va, vb = gamma.var(), delta.var()
    influence = ((gamma - gamma.mean())**2 - va) / va - ((delta - delta.mean())**2 - vb) / vb
    se = ratio * 0.5 * influence.std(ddof=1) / math.sqrt(gamma.size)
    assert se < 0.01
    assert ratio < 0.3
