"""The delta hedge at the realised vol (Ahmad and Wilmott 2005, "Which free lunch would you like
today, Sir?", Wilmott Magazine): positions against closed-form Black-Scholes, by hand."""

import math

import numpy as np
import pytest

from hedgearena.baselines.arena import run_arena
from hedgearena.baselines.delta import BlackScholesDelta
from hedgearena.baselines.realised_delta import RealisedVolDelta
from hedgearena.baselines.registry import parse_hedger
from hedgearena.envs.config import make_config
from hedgearena.envs.vector_env import VecHedgingEnv


def call_delta(spot, strike, tau, vol, rate, dividend):
    """``e^{-q tau} N(d1)``, d1 = (ln(S/K) + (r - q + vol^2 / 2) tau) / (vol sqrt(tau))."""
    drift = (rate - dividend + vol * vol / 2) * tau
    d1 = (math.log(spot / strike) + drift) / (vol * math.sqrt(tau))
    return math.exp(-dividend * tau) * 0.5 * (1 + math.erf(d1 / math.sqrt(2)))


def test_the_hedge_is_the_calls_delta_at_the_paths_realised_vol():
    # Short 1 call on 100 shares, struck at S0 = 100, expiring with the episode: the hedge holds
    # 100 e^{-q tau} N(d1) at the path's EWMA realised vol, which differs from path to path.
    config = make_config("ShortCall", market_kwargs={"rate": 0.03, "dividend": 0.01})
    env = VecHedgingEnv(num_envs=4, config=config)
    env.reset(seed=7)
    hedger = RealisedVolDelta()
    hedger.reset(env)
    for decision in range(5):
        state = env.state
        positions = hedger.positions(state, np.zeros((4, 0), np.float32))
        expected = [100.0 * call_delta(state["spot"][p], 100.0, state["tau"][p],
                                       state["realised_vol"][p], 0.03, 0.01) for p in range(4)]
        np.testing.assert_allclose(positions[:, 0], expected, rtol=1e-10)
        if decision:
            assert np.ptp(state["realised_vol"]) > 0.005  # the paths' vols differ
        env.step_targets(positions)


def test_it_opens_at_the_delta_hedge_and_holds_no_hedging_option():
    # The realised vol starts at the initial implied vol: on GBM's flat surface the first
    # decision is the Black-Scholes delta's; the hedging option is sold, as delta sells it.
    config = make_config("ShortCall", hedge_option=True)
    result = run_arena(config, [BlackScholesDelta(), RealisedVolDelta()], 64, seed=3,
                       progress=False)
    delta, realised = result.records["delta"], result.records["delta at realised vol"]
    np.testing.assert_allclose(realised.hedge[0], delta.hedge[0], rtol=1e-12)
    assert np.abs(realised.hedge[5] - delta.hedge[5]).max() > 0.1
    np.testing.assert_array_equal(realised.option, np.zeros_like(realised.option))


def test_where_the_implied_vol_is_the_actual_one_the_estimate_only_adds_noise():
    # GBM at sigma 20%, marked at 20%, no costs: the implied vol is the actual vol, so hedging at
    # an estimate of it adds the estimate's error to the delta hedge's: the P&L's variance rises
    # (43.0 -> 44.0 std on 20,000 paths), the paired difference over 5 standard errors, while
    # the mean stays at 0 within 3 standard errors.
    config = make_config("ShortCall", cost=0.0)
    result = run_arena(config, [BlackScholesDelta(), RealisedVolDelta()], 20_000, seed=0,
                       progress=False)
    bs, rv = (result.records[n].totals["pnl"] for n in ("delta", "delta at realised vol"))
    squares = (rv - rv.mean()) ** 2 - (bs - bs.mean()) ** 2
    assert squares.mean() > 5 * squares.std(ddof=1) / math.sqrt(squares.size)
    assert abs(rv.mean()) < 3 * rv.std(ddof=1) / math.sqrt(rv.size)


def test_the_spec():
    assert isinstance(parse_hedger("realised_delta"), RealisedVolDelta)
    with pytest.raises(ValueError, match="realised_delta takes no argument"):
        parse_hedger("realised_delta:5")
