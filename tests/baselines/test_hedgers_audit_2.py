"""Second audit of the classical hedgers: the defects it found, each pinned by a test.

- AdaptiveBand and CPPI fixed their per-path references (the start's spot and vol; the insured
  floor ``N K``) at ``reset`` only: in a loop of the user's over a vector env that resets its
  rows itself (autoreset), the new episodes kept the old paths' references. On the replayed
  S&P 500 (start levels from 700 to 2,900) the adaptive band started a new episode at 4.0 to 8.4
  units instead of its base of 5, and CPPI put a row all in cash (a floor of 183,029 against
  assets of 119,414) or all in the index.
- Bad constructor arguments raised TypeError or IndexError (a string, None, a short tuple)
  instead of a ValueError naming the field; booleans passed as numbers (``FixedBand(True)``,
  ``BlackScholesDelta(True)``) and infinite band exponents were accepted.
- Zakamouline's formulas gave NaN at zero cost for a risk aversion near the ends of float64
  (``0 / 0`` in ``H_0``, ``0 * inf`` in ``K``), which the hedger turned into a misleading error.

And one check of the repriced hedges that passes: Leland's hedge on rows out of phase (an
autoreset after a risk limit ended some episodes early), against QuantLib's deltas.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import QuantLib as ql  # noqa: N813  (the conventional alias)

from hedgearena.baselines import (
    CPPI,
    AdaptiveBand,
    BlackScholesDelta,
    FixedBand,
    Leland,
    Zakamouline,
    run_hedger,
)
from hedgearena.baselines.bands import whalley_wilmott_half_width
from hedgearena.baselines.leland import leland_volatility
from hedgearena.baselines.zakamouline import zakamouline_half_width, zakamouline_vol
from hedgearena.envs.config import make_config
from hedgearena.envs.vector_env import VecHedgingEnv


def _no_obs(env: VecHedgingEnv) -> np.ndarray:
    """The empty observations a state-only env returns (these hedgers read the state)."""
    return np.zeros((env.num_envs, 0), np.float32)


def _next_episode(env: VecHedgingEnv, hedger: Any) -> None:
    """Step ``env`` (NEXT_STEP autoreset) through one episode with ``hedger``, then the reset."""
    for _ in range(env.config.n_decisions + 1):  # the last step resets every row
        env.step_targets(hedger.positions(env.state, _no_obs(env)))


def test_adaptive_band_takes_new_references_when_an_autoreset_restarts_a_row() -> None:
    """At the start of an episode the book is N at-the-money calls, so the band is its base
    (0.05 x 100 = 5 units, to 1%: d1 = sigma sqrt(T) / 2 moves the gamma off n(0), 0.14% at a
    vol of 45%) on every episode, the autoreset ones included. The old code kept the first
    windows' references: 4.0 to 8.4 units on the second episode of seed 0's rows."""
    env = VecHedgingEnv(num_envs=4, preset="HistoricalReplay", observations=False)
    env.reset(seed=0)
    hedger = AdaptiveBand(base=0.05)
    hedger.reset(env)
    first = env.state["spot"].copy()
    np.testing.assert_allclose(hedger.half_width(env.state), 5.0, rtol=0.01)
    _next_episode(env, hedger)
    state = env.state
    assert np.all(state["step"] == 0)
    assert np.all(np.abs(state["spot"] / first - 1.0) > 0.05)  # other windows, other levels
    hedger.positions(state, _no_obs(env))  # the hedger sees the new episodes' first state
    np.testing.assert_allclose(hedger.half_width(state), 5.0, rtol=0.01)
    fresh = AdaptiveBand(base=0.05)
    fresh.reset(env)
    np.testing.assert_array_equal(hedger.positions(state, _no_obs(env)),
                                  fresh.positions(state, _no_obs(env)))


def test_cppi_takes_the_new_floor_when_an_autoreset_restarts_a_row() -> None:
    """The floor is ``N K = 100 x 0.9 S_0`` of each episode's own start: after an autoreset the
    positions are those of a CPPI reset on the new episodes (``m (A - F) / S``, at most the
    assets). The old code kept the first windows' ``S_0``: 0 units (all cash) on a row whose
    level had fallen, the whole assets on others."""
    config = make_config("PortfolioInsurance", market="historical")
    env = VecHedgingEnv(num_envs=4, config=config, observations=False)
    env.reset(seed=0)
    hedger = CPPI()
    hedger.reset(env)
    _next_episode(env, hedger)
    state = env.state
    assert np.all(state["step"] == 0)
    fresh = CPPI()
    fresh.reset(env)
    got = hedger.positions(state, _no_obs(env))
    np.testing.assert_array_equal(got, fresh.positions(state, _no_obs(env)))
    # by hand: F = N K e^{-r tau}, K = 0.9 S_0, tau = 63 days; 4 x the cushion, capped at A
    assets = state["cash"] + state["hedge"] * state["spot"]
    floor = 100.0 * 0.9 * state["spot"] * np.exp(-state["rate"] * 63 / 252)
    want = np.clip(4.0 * (assets - floor), 0.0, assets) / state["spot"]
    np.testing.assert_allclose(got[:, 0], want, rtol=1e-12)
    assert np.all(got[:, 0] > 0)  # a new start is never below its own floor


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: FixedBand("0.05"), "tolerance must be >= 0"),
        (lambda: FixedBand(None), "tolerance must be >= 0"),
        (lambda: FixedBand(True), "tolerance must be >= 0"),
        (lambda: AdaptiveBand(base=None), "base must be > 0"),
        (lambda: AdaptiveBand(base="0.05"), "base must be > 0"),
        (lambda: AdaptiveBand(base=True), "base must be > 0"),
        (lambda: AdaptiveBand(gamma_power="2/3"), "gamma_power and vol_power"),
        (lambda: AdaptiveBand(vol_power=math.inf), "gamma_power and vol_power"),
        (lambda: AdaptiveBand(scale_range=4.0), "scale_range must be a pair"),
        (lambda: AdaptiveBand(scale_range=(0.25,)), "scale_range must be a pair"),
        (lambda: AdaptiveBand(scale_range=(0.25, "4")), "scale_range must be a pair"),
        (lambda: BlackScholesDelta(True), "every must be an integer"),
        (lambda: whalley_wilmott_half_width(1.0, 2.0, "0.75"), "risk_aversion must be"),
        (lambda: whalley_wilmott_half_width(1.0, 2.0, None), "risk_aversion must be"),
        (lambda: leland_volatility(0.2, 0.02, "1/250"), "interval must be"),
        (lambda: zakamouline_vol(0.2, 0.01, 2.0, "0.01", 100.0, 0.25), "risk_aversion must be"),
        (lambda: zakamouline_half_width(0.01, 2.0, None, 100.0, 0.2, 0.25),
         "risk_aversion must be"),
    ],
)
def test_bad_arguments_raise_a_value_error_naming_the_field(factory: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        factory()


def test_good_arguments_still_pass() -> None:
    """Integral floats and numpy numbers stay accepted; an uncapped scale (high = inf) too."""
    assert BlackScholesDelta(np.int64(3)).every == 3
    assert BlackScholesDelta(2.0).every == 2
    assert FixedBand(np.float64(0.05)).tolerance == 0.05
    assert AdaptiveBand(scale_range=(0.0, math.inf)).scale_range == (0.0, math.inf)
    assert AdaptiveBand(scale_range=[0.5, 2.0]).scale_range == (0.5, 2.0)


@pytest.mark.parametrize("risk_aversion", [1e306, 1e-320])
def test_zakamouline_without_cost_is_the_delta_hedge_at_any_risk_aversion(
    risk_aversion: float,
) -> None:
    """At zero cost ``K = 0`` and ``H_0 = H_1 = 0``: the vol is sigma and the band collapses,
    whatever the risk aversion. The old code computed ``(gamma S^2 |Gamma|)^0.15`` from an
    overflowing product (``0 * inf``) and ``lambda / (gamma S sigma^2 T)`` from an underflowing
    one (``0 / 0``): NaN, and the hedger failed with "vol must be finite" or "half_width NaN"."""
    assert float(zakamouline_vol(0.2, 0.0, 2.0, risk_aversion, 100.0, 0.25)) == 0.2
    assert float(zakamouline_half_width(0.0, 2.0, risk_aversion, 100.0, 0.2, 0.25)) == 0.0
    env = VecHedgingEnv(num_envs=8, preset="ShortCall", cost=0.0, observations=False)
    zak = run_hedger(env, Zakamouline(risk_aversion), seed=4)
    delta = run_hedger(env, BlackScholesDelta(), seed=4)
    np.testing.assert_allclose(zak.hedge, delta.hedge, rtol=0, atol=1e-9)


def _quantlib_delta(spot: float, strike: float, tau: float, vol: float, rate: float,
                    dividend: float, is_call: bool) -> float:
    """Black-Scholes-Merton delta from QuantLib's BlackCalculator (forward and discount)."""
    payoff = ql.PlainVanillaPayoff(ql.Option.Call if is_call else ql.Option.Put, strike)
    forward = spot * math.exp((rate - dividend) * tau)
    calculator = ql.BlackCalculator(payoff, forward, vol * math.sqrt(tau), math.exp(-rate * tau))
    return float(calculator.delta(spot))


def test_leland_on_rows_out_of_phase_matches_quantlib_deltas() -> None:
    """OptionBook-v0 (Heston, client calls and puts) with a drawdown limit that ends some
    episodes early: after the autoreset the rows are at different steps and on a copied batch.
    Leland's hedge ``-(sum_i q_i delta_i(sigma_L,i) + stock)`` at every decision against
    QuantLib's delta at ``sigma_L,i`` from each option's surface vol, ``k = 2 cost_linear / S``
    and the book's net gamma; to 1e-9 units."""
    config = make_config("OptionBook", n_steps=12, market_kwargs={"rate": 0.03, "dividend": 0.01},
                         risk_limits={"drawdown": 50.0, "action": "terminate"})
    env = VecHedgingEnv(num_envs=8, config=config, observations=False)
    env.reset(seed=1)
    hedger = Leland()
    hedger.reset(env)
    dt, phases, checked = config.dt, 1, 0
    for _ in range(24):
        state, batch = env.state, env.batch
        book, market = batch.instruments, batch.market
        phases = max(phases, len(set(state["step"].tolist())))
        got = hedger.positions(state, _no_obs(env))[:, 0]
        for path in range(env.num_envs):
            step, spot = int(state["step"][path]), float(state["spot"][path])
            short = state["book_gamma"][path] <= 0
            k = 2.0 * state["cost_linear"][path] / spot
            total = 0.0
            for i in np.flatnonzero(book.quantity[path]):
                if not book.start[path, i] <= step < book.expiry[path, i]:
                    continue
                tau = (book.expiry[path, i] - step) * dt
                vol = float(market.surface.implied_vol(
                    spot, book.strike[path, i], tau, market.vol_state[path, step],
                    market.spot[path, 0], market.rate, market.dividend))
                leland = vol**2 * (1 + (1 if short else -1) * math.sqrt(2 / math.pi) * k
                                   / (vol * math.sqrt(dt)))
                total += book.quantity[path, i] * _quantlib_delta(
                    spot, book.strike[path, i], tau, math.sqrt(max(leland, 0.0)), 0.03, 0.01,
                    bool(book.is_call[path, i]))
                checked += 1
            assert got[path] == pytest.approx(-total, abs=1e-9)
        env.step_targets(got[:, None])
    assert phases >= 3  # rows were out of phase (up to 6 distinct steps at once)
    assert checked > 500
