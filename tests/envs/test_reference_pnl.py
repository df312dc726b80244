"""The env's terminal P&L against an independent, from-scratch cash account in plain numpy.

The reference below takes only the env's simulated spot paths (``env.batch.market.spot``) and
recomputes everything else itself: the Black-Scholes premium and delta (``scipy.stats.norm``,
not the project's pricer), the hedges, the trades and their costs, the interest and dividends,
the unwind and the option's settlement. It does not call ``hedgearena.envs.core``.

Conventions checked (from the README's "Accounting", ``hedgearena.envs.core``, ``EnvConfig``
and the ``ShortCall-v0`` manual):

- Book: short 1 ATM call on ``N = 100`` units (1 contract x multiplier 100), strike ``K = S_0``,
  expiry 20 market steps, ``dt = 1 / 250`` years (the preset's day count), flat vol 20%.
- Start: cash = the premium received, ``N * C_BS(S_0, K, T)``; the hedge is 0 shares
  (``initial_hedge="zero"``); initial wealth ``W_0 = -N C_0 + N C_0 = 0``.
- A decision at market step ``t`` trades ``q = h_new - h_old`` units at ``S_t`` and pays
  ``c |q| S_t`` (``cost=c``, proportional to the traded value): ``cash -= q S_t + c |q| S_t``.
  With ``initial_hedge="delta"`` the first target is the model delta whatever the hedger asks
  (and its cost is paid).
- Each market step ``(s, s+1]`` held: ``cash <- cash e^{r dt} + h S_s (e^{q dt} - 1)``: the
  cash earns continuously compounded interest, and the hedge earns the dividend yield on its
  value at the step's start, paid into cash at the step's end (no interest on it that step).
- ``rebalance_every = m``: decisions at steps ``0, m, 2m, ...``, the hedge held in between.
- At expiry (step 20): the hedge is sold at ``S_T`` paying ``c |h| S_T`` (the unwind), and the
  short call settles in cash, ``-N max(S_T - K, 0)``.
- Terminal P&L = final cash (no positions left) ``- W_0``, compared with
  ``infos["totals"]["terminal_pnl"]`` on every path to ``rtol=1e-9, atol=1e-8`` currency.
- Model delta of the hedge: ``N e^{-q tau} N(d1)``, ``tau`` = time left to expiry,
  ``d1 = (ln(S/K) + (r - q + sigma^2/2) tau) / (sigma sqrt(tau))``; checked against the env's
  ``state["model_hedge"]`` at every decision (1e-9 relative).

Cases: daily delta at r = q = 0 (driven through ``env.step`` in ``action_mode="target"``,
action = units / (position_limit N)); daily delta at r = 5%, q = 2%; delta every 2 steps
(``rebalance_every=2``) opening at the model delta (``initial_hedge="delta"``; the hedger asks
for 0 shares at the first decision, the env must override it) at r = 5%, q = 2%; a band hedger,
``h_t = clip(h_{t-1}, delta_t - 10, delta_t + 10)`` units, at zero rates and at r = 5%, q = 2%.
All but the first are driven through ``env.step_targets`` (units).

Each term can fail the test. Perturbing the reference by hand (not left in) gave these largest
misses on 64 paths: no unwind cost 103-114 currency (every case); no trading cost 173-294;
no settlement 1441; no interest 32-36 and no dividends 14-15 (the cases with carry);
dividends on ``S_{s+1}`` instead of ``S_s`` 0.09; dividends earning interest in their own step
0.003; simple interest ``1 + r dt`` 0.0036; no ``r`` in the premium's discount 20; the delta
without ``e^{-q tau}`` 0.08 (model-hedge check); 252 days a year 0.004-0.01 (model-hedge
check); case 3 opening at zero shares 249.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pytest
from scipy.stats import norm

from hedgearena.envs.vector_env import VecHedgingEnv

N_PATHS = 64
NOTIONAL = 100.0  # 1 contract x multiplier 100
EXPIRY = 20  # market steps
DAYS = 250.0  # ShortCall's days_per_year
SIGMA = 0.2
COST = 0.01


@dataclass(frozen=True)
class Case:
    """One hedging setup: market carry, decision grid, initial hedge and the hedger's rule."""

    rate: float = 0.0
    dividend: float = 0.0
    every: int = 1  # rebalance_every
    initial: str = "zero"  # initial_hedge
    band: float | None = None  # half-width in units (None: trade to the delta)
    via_actions: bool = False  # drive with env.step(actions) in action_mode="target"


CASES = {
    "daily_delta_zero_rates": Case(via_actions=True),
    "daily_delta_with_rate_and_dividend": Case(rate=0.05, dividend=0.02),
    "delta_every_2_from_model_delta": Case(rate=0.05, dividend=0.02, every=2, initial="delta"),
    "band_10_units": Case(band=10.0),
    "band_10_units_with_rate_and_dividend": Case(rate=0.05, dividend=0.02, band=10.0),
}


def bs_call(spot: np.ndarray, strike: np.ndarray, tau: float, r: float, q: float) -> np.ndarray:
    """Black-Scholes-Merton call price of one unit (tau > 0)."""
    s = SIGMA * math.sqrt(tau)
    d1 = (np.log(spot / strike) + (r - q) * tau) / s + 0.5 * s
    d2 = d1 - s
    return spot * math.exp(-q * tau) * norm.cdf(d1) - strike * math.exp(-r * tau) * norm.cdf(d2)


def bs_call_delta(
    spot: np.ndarray, strike: np.ndarray, tau: float, r: float, q: float
) -> np.ndarray:
    """Black-Scholes-Merton call delta of one unit (tau > 0)."""
    s = SIGMA * math.sqrt(tau)
    d1 = (np.log(spot / strike) + (r - q) * tau) / s + 0.5 * s
    return math.exp(-q * tau) * norm.cdf(d1)


def make_env(case: Case) -> VecHedgingEnv:
    return VecHedgingEnv(
        num_envs=N_PATHS,
        preset="ShortCall",
        market_kwargs={
            "mu": 0.05,
            "sigma": SIGMA,
            "spot0": 100.0,
            "rate": case.rate,
            "dividend": case.dividend,
        },
        cost=COST,
        rebalance_every=case.every,
        initial_hedge=case.initial,
        action_mode="target",
        observations=False,
    )


class Reference(NamedTuple):
    """The reference's results, per path; the lists hold one ``(n_paths,)`` array a decision."""

    pnl: np.ndarray  # terminal P&L, currency
    asked: list[np.ndarray]  # the hedger's targets, units
    deltas: list[np.ndarray]  # the model hedge N e^{-q tau} N(d1), units


def reference_pnl(spot: np.ndarray, case: Case) -> Reference:
    """Terminal P&L of every path from a plain cash account (``spot``: ``(n_paths, 21)``)."""
    r, q, dt = case.rate, case.dividend, 1.0 / DAYS
    strike = spot[:, 0] * 1.0  # at the money
    premium = NOTIONAL * bs_call(spot[:, 0], strike, EXPIRY * dt, r, q)
    cash = premium  # received for the call
    wealth0 = -premium + cash  # the short call marked at its premium: 0
    hedge = np.zeros(len(spot))
    asked, deltas = [], []
    for t in range(0, EXPIRY, case.every):
        s_t = spot[:, t]
        delta = NOTIONAL * bs_call_delta(s_t, strike, (EXPIRY - t) * dt, r, q)
        deltas.append(delta)
        if case.band is None:
            target = delta
        else:
            target = np.clip(hedge, delta - case.band, delta + case.band)
        if t == 0 and case.initial == "delta":
            # initial_hedge="delta": the env opens at the model delta whatever is asked; ask
            # for 0 shares so that the test sees the override.
            target = delta
            asked.append(np.zeros_like(delta))
        else:
            asked.append(target)
        trade = target - hedge
        cash = cash - trade * s_t - COST * np.abs(trade) * s_t
        hedge = target
        for s in range(t, t + case.every):
            cash = cash * math.exp(r * dt) + hedge * spot[:, s] * (math.exp(q * dt) - 1.0)
    s_end = spot[:, EXPIRY]
    cash = cash + hedge * s_end - COST * np.abs(hedge) * s_end  # the unwind, paying its cost
    cash = cash - NOTIONAL * np.maximum(s_end - strike, 0.0)  # the short call settles
    return Reference(cash - wealth0, asked, deltas)


def run_env(env: VecHedgingEnv, reference: Reference, via_actions: bool) -> np.ndarray:
    """Drive ``env`` with the hedger's targets (units); return the episode's terminal P&L.

    At each decision the env's model hedge (``state["model_hedge"]``, what its classical
    hedgers and ``initial_hedge="delta"`` use) is checked against the reference's delta.
    """
    scale = env.config.position_limit * env.config.book.notional
    terminated = np.zeros(N_PATHS, dtype=bool)
    infos: dict = {}
    for k, (target, delta) in enumerate(zip(reference.asked, reference.deltas, strict=True)):
        assert not terminated.any()
        state = env.state
        np.testing.assert_array_equal(state["step"], k * env.config.rebalance_every)
        np.testing.assert_allclose(state["model_hedge"], delta, rtol=1e-9, atol=1e-9)
        if via_actions:
            assert np.abs(target).max() < scale  # inside the action range: no clipping
            _, _, terminated, _, infos = env.step((target / scale)[:, None])
        else:
            _, _, terminated, _, infos = env.step_targets(target[:, None])
    assert terminated.all()
    np.testing.assert_array_equal(infos["hedge"], 0.0)  # unwound
    return infos["totals"]["terminal_pnl"]


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_terminal_pnl_matches_independent_cash_account(case: Case) -> None:
    env = make_env(case)
    env.reset(seed=7)
    spot = np.array(env.batch.market.spot, dtype=np.float64)  # the env's own paths only
    assert spot.shape == (N_PATHS, EXPIRY + 1)
    reference = reference_pnl(spot, case)
    got = run_env(env, reference, case.via_actions)
    np.testing.assert_allclose(got, reference.pnl, rtol=1e-9, atol=1e-8)
    # The comparison is not vacuous: the P&L varies across paths by far more than the tolerance.
    assert np.ptp(reference.pnl) > 10.0
