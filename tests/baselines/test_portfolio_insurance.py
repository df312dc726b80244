"""Portfolio insurance: the env's framing and accounting, the synthetic put and CPPI."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import hedgearena  # noqa: F401  (registers the ids)
from hedgearena.baselines import CPPI, Hedger, NoHedge, SyntheticPut, run_hedger
from hedgearena.baselines.hedger import State
from hedgearena.baselines.portfolio_insurance import synthetic_put_units
from hedgearena.envs.registered import ENV_IDS
from hedgearena.envs.vector_env import VecHedgingEnv

ENV_ID = "hedgearena/PortfolioInsurance-v0"
N_UNITS, FLOOR, S0, RATE, SIGMA, T = 100.0, 0.9, 100.0, 0.02, 0.2, 63 / 252
LEPO_STRIKE = 1e-6 * S0  # the zero-strike call that carries the promise of N S_T


class Recorder(Hedger):
    """Runs a hedger and keeps a copy of every state it saw and every position it returned."""

    def __init__(self, inner: Hedger) -> None:
        self.inner, self.name = inner, inner.name
        self.states: list[dict[str, Any]] = []
        self.targets: list[np.ndarray] = []

    def reset(self, env: VecHedgingEnv) -> None:
        self.inner.reset(env)
        self.states, self.targets = [], []

    def positions(self, state: State, obs: np.ndarray) -> np.ndarray:
        out = self.inner.positions(state, obs)
        self.states.append({key: np.copy(value) for key, value in state.items()})
        self.targets.append(np.array(out, copy=True))
        return out


def _normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _put_price(spot: float, strike: float, tau: float, vol: float, rate: float) -> float:
    """Black-Scholes put, written out here as an independent reference (q = 0)."""
    d1 = (math.log(spot / strike) + (rate + 0.5 * vol * vol) * tau) / (vol * math.sqrt(tau))
    d2 = d1 - vol * math.sqrt(tau)
    return strike * math.exp(-rate * tau) * _normal_cdf(-d2) - spot * _normal_cdf(-d1)


def _promise(env: VecHedgingEnv) -> np.ndarray:
    """``N max(S_T, K)`` on every path of the env's current batch."""
    spot_t = env.batch.market.spot[:, -1]
    return N_UNITS * np.maximum(spot_t, FLOOR * S0)


def _terminal_assets(env: VecHedgingEnv, terminal_pnl: np.ndarray) -> np.ndarray:
    """The fund's assets at T from the env's P&L: wealth = assets - promise, and W_0 = 0."""
    return terminal_pnl + _promise(env) - N_UNITS * LEPO_STRIKE


def test_the_id_is_registered_with_both_entry_points() -> None:
    assert ENV_ID in ENV_IDS
    assert ENV_ID in gym.registry
    env = gym.make(ENV_ID)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32
    assert env.unwrapped.config.n_steps == 63
    assert "PortfolioInsurance" in (type(env.unwrapped).__doc__ or "")
    venv = gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point")
    assert isinstance(venv.unwrapped, VecHedgingEnv)


def test_the_cash_account_opens_with_the_fair_value_of_the_promise() -> None:
    env = VecHedgingEnv(num_envs=8, preset="PortfolioInsurance")
    env.reset(seed=0)
    state = env.state
    put = _put_price(S0, FLOOR * S0, T, SIGMA, RATE)
    lepo = S0 - LEPO_STRIKE * math.exp(-RATE * T)
    np.testing.assert_allclose(state["cash"], N_UNITS * (put + lepo), rtol=1e-9)
    wealth = env.batch.episode.book_value[0] + state["cash"]
    np.testing.assert_allclose(wealth, 0.0, atol=1e-8)  # the fund starts with no surplus
    # The model hedge is the synthetic put, N N(d1) units (q = 0).
    units = synthetic_put_units(S0, FLOOR * S0, T, SIGMA, N_UNITS, RATE)
    np.testing.assert_allclose(state["model_hedge"], units, rtol=1e-9)


def test_all_cash_earns_the_rate_and_the_pnl_is_the_miss_on_the_promise() -> None:
    """No index held: assets = investors' money e^{rT}; the P&L is that minus N max(S_T, K)."""
    env = VecHedgingEnv(num_envs=200, preset="PortfolioInsurance")
    record = run_hedger(env, NoHedge(), seed=1)
    deposit = record.totals["initial_premium"]
    expected = deposit * math.exp(RATE * T) - _promise(env) + N_UNITS * LEPO_STRIKE
    np.testing.assert_allclose(record.totals["terminal_pnl"], expected, rtol=1e-9)
    np.testing.assert_allclose(record.totals["pnl"], record.totals["terminal_pnl"], rtol=1e-9)


def test_synthetic_put_delivers_the_promise_at_zero_cost() -> None:
    """Daily replication over 63 days misses N max(S_T, K) by a discrete-hedging error only.

    Its standard deviation is about ``sqrt(pi / 4) * vega * sigma / sqrt(n)`` (Derman and Kamal
    1999; Boyle and Emanuel 1980): ``0.89 * 10.3 * 0.2 / sqrt(63) = 0.23`` per unit for the 90%
    put (vega 10.3), 23 on N = 100 units, 0.23% of N S_0 (26 measured). The error is
    fat-tailed (paths that end near the floor cross it with a large gamma in the last days),
    so the tolerance is 1.5% of N S_0 = 150, about 6 standard deviations and at most 1.7% of
    the promise (>= N K = 9000): 99% of the paths must be within it, and the mean miss within
    0.1% of N S_0 (the error has mean ~0).
    """
    env = VecHedgingEnv(num_envs=1000, preset="PortfolioInsurance", cost=0.0)
    record = run_hedger(env, SyntheticPut(), seed=2)
    assets = _terminal_assets(env, record.totals["terminal_pnl"])
    miss = assets - _promise(env)
    tolerance = 0.015 * N_UNITS * S0
    assert np.mean(np.abs(miss) <= tolerance) >= 0.99
    assert abs(miss.mean()) <= 0.001 * N_UNITS * S0
    # Rebalancing every 5 days misses by more (the error grows like sqrt(interval)).
    weekly = run_hedger(env, SyntheticPut(every=5), seed=2).totals["terminal_pnl"]
    assert weekly.std() > 1.5 * record.totals["terminal_pnl"].std()


def test_synthetic_put_under_costs_pays_for_its_trades() -> None:
    env = VecHedgingEnv(num_envs=200, preset="PortfolioInsurance")  # 0.1% of traded value
    record = run_hedger(env, SyntheticPut(), seed=3)
    assert np.all(record.totals["cost"] > 0)
    # The opening purchase alone costs 0.1% of N N(d1) S_0 = 8.76.
    np.testing.assert_allclose(record.cost[0], 0.001 * 87.5669 * S0, rtol=1e-4)


@pytest.mark.parametrize("multiplier", [3.0, 5.0])
def test_cppi_assets_stay_above_the_discounted_floor_without_gaps(multiplier: float) -> None:
    env = VecHedgingEnv(num_envs=500, preset="PortfolioInsurance", cost=0.0)
    hedger = CPPI(multiplier)
    recorder = Recorder(hedger)
    record = run_hedger(env, recorder, seed=4)
    spot = env.batch.market.spot
    no_gap = np.all(spot[:, 1:] / spot[:, :-1] > 1.0 - 1.0 / multiplier, axis=1)
    assert no_gap.all()  # GBM with 20% vol has no daily fall of 1/m
    for state, target in zip(recorder.states, recorder.targets, strict=True):
        assets, floor = hedger.assets(state), hedger.floor_value(state)
        assert np.all(assets[no_gap] > floor[no_gap])
        exposure = target[:, 0] * state["spot"]
        assert np.all(exposure >= 0)
        assert np.all(exposure <= assets * (1 + 1e-12))
    assets_t = _terminal_assets(env, record.totals["terminal_pnl"])
    assert np.all(assets_t[no_gap] >= N_UNITS * FLOOR * S0)


def test_cppi_leverage_lets_the_exposure_exceed_the_assets() -> None:
    env = VecHedgingEnv(num_envs=100, preset="PortfolioInsurance", cost=0.0)
    env.reset(seed=5)
    state = env.state
    plain, levered = CPPI(10.0), CPPI(10.0, leverage=2.0)
    for hedger in (plain, levered):
        hedger.reset(env)
    assets = plain.assets(state)
    cushion = assets - plain.floor_value(state)  # about 11% of the assets
    obs = np.zeros((100, 12), np.float32)
    np.testing.assert_allclose(plain.positions(state, obs)[:, 0] * S0, assets)
    np.testing.assert_allclose(levered.positions(state, obs)[:, 0] * S0, 10.0 * cushion)
    assert np.all(10.0 * cushion > assets)


def test_cppi_floor_must_come_from_somewhere() -> None:
    env = VecHedgingEnv(num_envs=4, preset="ShortCall")
    with pytest.raises(ValueError, match="floor"):
        run_hedger(env, CPPI(4.0), seed=0)
    with pytest.raises(ValueError, match="nothing to insure"):  # a premium of about 2
        run_hedger(env, CPPI(4.0, floor=0.9), seed=0)
    for bad, name in (
        ({"multiplier": 0.0}, "multiplier"),
        ({"multiplier": 4.0, "floor": -1.0}, "floor"),
        ({"multiplier": 4.0, "leverage": 0.0}, "leverage"),
    ):
        with pytest.raises(ValueError, match=name):
            CPPI(**bad)


def test_cppi_refuses_an_env_that_opens_at_the_model_position() -> None:
    """initial_hedge="delta" would replace CPPI's opening position by the synthetic put's."""
    env = VecHedgingEnv(num_envs=4, preset="PortfolioInsurance", initial_hedge="delta")
    with pytest.raises(ValueError, match="needs initial_hedge='zero', got 'delta'"):
        run_hedger(env, CPPI(4.0), seed=0)


def test_cppi_refuses_a_floor_worth_more_than_the_assets() -> None:
    env = VecHedgingEnv(num_envs=4, preset="PortfolioInsurance")
    for floor in (1.2, 5.0):
        with pytest.raises(ValueError, match=r"CPPI 4 floor .*: the floor's value .* is not "
                                             r"below the assets .* nothing to insure"):
            run_hedger(env, CPPI(4.0, floor=floor), seed=0)


def test_cppi_discounts_the_floor_to_the_puts_expiry() -> None:
    """An episode longer than the promise: the floor is discounted over the put's 63 days."""
    env = VecHedgingEnv(num_envs=2, preset="PortfolioInsurance", n_steps=126)
    env.reset(seed=0)
    hedger = CPPI(4.0)
    hedger.reset(env)
    rate = env.state["rate"]
    np.testing.assert_allclose(
        hedger.floor_value(env.state), N_UNITS * FLOOR * S0 * math.exp(-rate * 63 / 252),
        rtol=1e-14,
    )


def test_cppis_that_differ_in_floor_or_leverage_have_their_own_names() -> None:
    from hedgearena.baselines.arena import run_arena
    from hedgearena.baselines.registry import parse_hedger
    from hedgearena.envs.config import make_config

    hedgers = [parse_hedger(spec) for spec in ("cppi:4", "cppi:4:0.85", "cppi:4:0.85:2")]
    assert [h.name for h in hedgers] == [
        "CPPI 4", "CPPI 4 floor 0.85", "CPPI 4 floor 0.85 leverage 2"
    ]
    result = run_arena(make_config("PortfolioInsurance"), hedgers, n_paths=50, progress=False)
    assert sorted(result.records) == sorted(h.name for h in hedgers)
