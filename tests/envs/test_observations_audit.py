"""Audit of what the agents observe: every entry against the manual's definition, from the state.

Independent references: each entry is recomputed in float64 from ``env.state`` (the unnormalised
numbers classical hedgers read) and the manual's table, then rounded to float32 once, and must
equal the observation exactly; the realised vol is checked against pandas' ``ewm``; look-ahead
by perturbing the market after a step; NaN/inf on extreme but valid configs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

import hedgearena  # noqa: F401  (registers the ids)
from hedgearena.baselines import Hedger
from hedgearena.baselines.arena import run_arena
from hedgearena.envs.book import Option, OptionBook
from hedgearena.envs.config import EnvConfig, make_config
from hedgearena.envs.episode import (
    EXOGENOUS_FEATURES,
    build_episodes,
    feature_names,
    observation_names,
)
from hedgearena.envs.market import MarketPaths
from hedgearena.envs.registered import (
    HistoricalReplayEnv,
    OptionBookEnv,
    PortfolioInsuranceEnv,
    ShortCallEnv,
)
from hedgearena.envs.scenarios import apply_scenario
from hedgearena.envs.vector_env import VecHedgingEnv

IDS = {
    "ShortCall": "hedgearena/ShortCall-v0",
    "OptionBook": "hedgearena/OptionBook-v0",
    "PortfolioInsurance": "hedgearena/PortfolioInsurance-v0",
    "HistoricalReplay": "hedgearena/HistoricalReplay-v0",
}


def expected(entries: Any, config: EnvConfig, s: dict[str, Any], strike: Any,
             pnl: Any) -> np.ndarray:
    """The manual's definitions (``entries``: the ``manual_entries`` fixture), float64, from the
    state ``s``; ``(..., n)`` in name order."""
    values = entries(config, s, strike, pnl)
    shape = np.asarray(s["spot"]).shape
    return np.stack(
        [np.broadcast_to(np.asarray(values[k], dtype=np.float64), shape)
         for k in observation_names(config)], axis=-1,
    )


def first_strike(config: EnvConfig, market: MarketPaths, rows: Any) -> Any:
    """K of ``log_moneyness``: the first initial option's strike, else the market's S_0."""
    s0 = market.spot[rows, 0]
    return config.book.options[0].moneyness * s0 if config.book.options else s0


CASES = [
    ("ShortCall", {}),
    ("ShortCall", {"hedge_option": True, "observe_pnl": True, "rebalance_every": 2,
                   "market_kwargs": {"rate": 0.03, "dividend": 0.02}}),
    ("ShortCall", {"permanent_impact": 0.1, "hedge_option": True, "execution": "twap",
                   "rebalance_every": 2}),
    ("OptionBook", {"hedge_option": True, "observe_pnl": True, "n_steps": 30}),
    ("OptionBook", {"permanent_impact": 0.05, "rebalance_every": 3, "n_steps": 30,
                    "market_kwargs": {"rate": 0.02, "dividend": 0.01}}),
    ("PortfolioInsurance", {"hedge_option": True, "rebalance_every": 3}),
    ("PortfolioInsurance", {"permanent_impact": 0.05, "observe_pnl": True}),
    ("HistoricalReplay", {"hedge_option": True, "observe_pnl": True,
                          "market_kwargs": {"rate": 0.02, "dividend": 0.01}}),
    ("HistoricalReplay", {"permanent_impact": 0.1, "rebalance_every": 3}),
]


@pytest.mark.parametrize(("preset", "kwargs"), CASES, ids=[f"{p}-{i}" for i, (p, _) in
                                                         enumerate(CASES)])
def test_every_entry_is_its_definition_from_the_state_rounded_once(
    preset: str, kwargs: dict[str, Any], manual_entries: Any
) -> None:
    """obs == float32(definition in float64), bit for bit, at every decision of two episodes.

    Under permanent impact the final observation is the documented exception (it shows the
    step as the last decision left it, before the unwind's sale moved the spot back).
    """
    env = gym.make(IDS[preset], **kwargs).unwrapped
    config, names = env.config, observation_names(env.config)
    rng = np.random.default_rng(0)
    for episode in range(2):
        obs, info = env.reset(seed=11 if episode == 0 else None)
        strike = first_strike(config, env._batch.market, env._row)
        wealth0, done = info["wealth"], False
        while True:
            want = expected(manual_entries, config, env.state, strike, (info["wealth"] - wealth0)
                            / env.reward_scale).astype(np.float32)
            assert obs.dtype == np.float32
            assert obs.shape == env.observation_space.shape
            assert np.isfinite(obs).all()
            exact = [i for i, n in enumerate(names) if n != "pnl"]
            if not (done and config.permanent_impact):
                np.testing.assert_array_equal(obs[exact], want[exact],
                                              err_msg=f"step {env._t}: {names}")
            if config.observe_pnl:
                assert obs[-1] == pytest.approx(want[-1], rel=1e-5, abs=1e-6)
            if done:
                break
            action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
            obs, _, done, _, info = env.step(action)


@pytest.mark.parametrize("mode", ["same_step", "next_step"])
def test_vector_rows_at_different_steps_observe_their_own_definitions(
    mode: str, manual_entries: Any
) -> None:
    """Rows ended by a risk limit restart while others go on: per-row steps and re-marks."""
    env = VecHedgingEnv(num_envs=6, preset="ShortCall", autoreset_mode=mode,
                        permanent_impact=0.1, hedge_option=True, observe_pnl=True,
                        risk_limits={"delta": 0.3, "action": "terminate"})
    config = env.config
    obs, _ = env.reset(seed=4)
    rng = np.random.default_rng(1)
    pnl, final, desynced = np.zeros(6), np.zeros(6, dtype=bool), 0
    for _ in range(30):
        s = env.state
        desynced += len(set(np.asarray(s["step"]).tolist())) > 1
        strike = first_strike(config, env.batch.market, env._rows)
        want = expected(manual_entries, config, s, strike, pnl / env.reward_scale)
        want = want.astype(np.float32)
        live = ~final  # a final observation (NEXT_STEP) is the documented exception
        np.testing.assert_array_equal(obs[live, :-1], want[live, :-1])
        np.testing.assert_allclose(obs[:, -1], want[:, -1], rtol=1e-5, atol=1e-6)
        obs, _, terminated, truncated, info = env.step(rng.uniform(-1, 1, (6, 2)))
        done = terminated | truncated
        if mode == "same_step":
            pnl = np.where(done, 0.0, pnl + info["pnl"])
        else:
            pnl = np.where(final, 0.0, pnl + info["pnl"])
            final = done
    assert desynced > 5


def _pandas_realised_vol(spot: np.ndarray, initial: np.ndarray, config: EnvConfig) -> np.ndarray:
    out = []
    for path, vol0 in zip(spot, initial, strict=True):
        x = np.concatenate([[vol0**2], np.diff(np.log(path)) ** 2 / config.dt])
        ewm = pd.Series(x).ewm(halflife=config.realised_vol_halflife, adjust=False).mean()
        out.append(np.sqrt(ewm.to_numpy()))
    return np.array(out)


@pytest.mark.parametrize(("preset", "kwargs"), [
    ("ShortCall", {"days_per_year": 365.0}),
    ("PortfolioInsurance", {"realised_vol_halflife": 3.5, "rebalance_every": 3}),
    ("HistoricalReplay", {"realised_vol_halflife": 0.3}),
])
def test_realised_vol_is_pandas_ewm_of_annualised_squared_returns(
    preset: str, kwargs: dict[str, Any]
) -> None:
    """Half-life in market steps, started at the initial implied vol, r^2 / dt (the env's days)."""
    config = make_config(preset, **kwargs)
    batch = build_episodes(config, 20, np.random.default_rng(2))
    f = batch.features
    want = _pandas_realised_vol(batch.market.spot, f.implied_vol[:, 0], config)
    np.testing.assert_allclose(f.realised_vol, want, rtol=1e-13)
    i = feature_names(False).index("realised_vol")
    np.testing.assert_array_equal(batch.observations[:, :, i], want.T.astype(np.float32))


@dataclasses.dataclass(frozen=True)
class FutureShock:
    """The base market with everything after step ``after`` perturbed (spot, vol, liquidity)."""

    base: Any
    after: int

    def simulate(self, n_paths: int, n_steps: int, dt: float,
                 rng: np.random.Generator) -> MarketPaths:
        paths = self.base.simulate(n_paths, n_steps, dt, rng)
        k, shock = self.after + 1, np.random.default_rng(99)
        spot = paths.spot.copy()
        spot[:, k:] *= np.exp(np.cumsum(shock.normal(0, 0.05, spot[:, k:].shape), axis=1))
        factor = np.exp(shock.normal(0, 0.3, spot[:, k:].shape))
        variance, level = paths.variance.copy(), paths.vol_state.copy()
        variance[:, k:] *= factor
        level[:, k:] *= factor if np.array_equal(level, paths.variance) else np.sqrt(factor)
        liquidity = np.array(paths.liquidity, copy=True)
        liquidity[:, k:] *= 3.0
        return dataclasses.replace(paths, spot=spot, variance=variance, vol_state=level,
                                   liquidity=liquidity)


@pytest.mark.parametrize(("preset", "kwargs"), [
    ("ShortCall", {"hedge_option": True, "market_kwargs": {"rate": 0.03, "dividend": 0.02},
                   "cost": {"proportional": 0.001, "spread": {"half_spread": 5e-4}}}),
    ("OptionBook", {"hedge_option": True, "n_steps": 30}),
    ("HistoricalReplay", {"hedge_option": True}),
])
def test_no_observation_depends_on_the_market_after_its_step(
    preset: str, kwargs: dict[str, Any]
) -> None:
    config = make_config(preset, **kwargs)
    assert config.n_steps is not None
    base = build_episodes(config, 32, np.random.default_rng(3))
    for after in (0, config.n_steps // 2, config.n_steps - 1):
        shocked = config.replace(market=FutureShock(config.market, after), market_kwargs={})
        other = build_episodes(shocked, 32, np.random.default_rng(3))
        np.testing.assert_array_equal(other.observations[: after + 1],
                                      base.observations[: after + 1])
        assert not np.array_equal(other.observations[after + 1:], base.observations[after + 1:])


@dataclasses.dataclass(frozen=True)
class Illiquid:
    """The base market with a liquidity multiplier of 0 (no spread, no impact) everywhere."""

    base: Any

    def simulate(self, n_paths: int, n_steps: int, dt: float,
                 rng: np.random.Generator) -> MarketPaths:
        paths = self.base.simulate(n_paths, n_steps, dt, rng)
        return dataclasses.replace(paths, liquidity=np.zeros_like(paths.spot))


def _extreme_configs() -> dict[str, EnvConfig]:
    call = make_config("ShortCall", hedge_option=True)
    configs = {
        "tiny vol, carry": make_config("ShortCall", hedge_option=True, market_kwargs={
            "sigma": 1e-6, "rate": 0.05, "dividend": 0.03}),
        "huge vol": make_config("ShortCall", hedge_option=True, market_kwargs={"sigma": 8.0}),
        "deep ITM put, OTM option": make_config(
            "ShortCall", book=OptionBook(options=(Option(1e4, 20, -1.0, is_call=False),)),
            hedge_option={"moneyness": 1e-4}),
        "deep OTM call": make_config(
            "ShortCall", book=OptionBook(options=(Option(1e4, 20, -1.0),)),
            hedge_option={"moneyness": 1e4}),
        "one step": make_config("PortfolioInsurance", n_steps=1, hedge_option={"expiry_steps": 2},
                                book=OptionBook(options=(Option(1.0, 1, -1.0),))),
        "one step, no option yet": make_config("OptionBook", n_steps=1, hedge_option=True),
        "zero liquidity": call.replace(market=Illiquid(call.market), market_kwargs={},
                                       cost={"spread": {"half_spread": 5e-4}}),
        "heston vol near 0": make_config("OptionBook", hedge_option=True, n_steps=20,
                                         market_kwargs={"v0": 1e-6}),
        "halflife 1e-6": make_config("ShortCall", realised_vol_halflife=1e-6),
    }
    replay = make_config("HistoricalReplay", hedge_option=True)
    for name in ("crisis_2008", "flash_crash_2010", "august_2011", "early_2018"):
        configs[name] = apply_scenario(replay, name)
    configs["flash crash (intraday)"] = apply_scenario(call, "flash_crash")
    return configs


EXTREME = _extreme_configs()


@pytest.mark.parametrize("name", sorted(EXTREME))
def test_no_nan_or_inf_on_extreme_valid_configs(name: str) -> None:
    config = EXTREME[name]
    batch = build_episodes(config, 64, np.random.default_rng(5))  # RuntimeWarnings are errors
    assert np.isfinite(batch.observations).all()
    env = VecHedgingEnv(num_envs=4, config=config.replace(observe_pnl=True))
    obs, _ = env.reset(seed=0)
    for _ in range(min(config.n_decisions, 5)):
        assert np.isfinite(obs).all()
        obs, *_ = env.step(np.full((4, config.action_dim), 0.5))
    assert np.isfinite(obs).all()


@pytest.mark.parametrize("env_class", [ShortCallEnv, OptionBookEnv, PortfolioInsuranceEnv,
                                       HistoricalReplayEnv])
def test_the_manuals_table_is_observation_names_in_order(env_class: type) -> None:
    """The manual's rows, in index order, are ``observation_names`` of the full layout."""
    manual = env_class.__doc__ or ""
    table = manual[manual.index("| index | name |"):]
    rows = [line.split("|")[2].strip().strip("`") for line in table.splitlines()[2:]
            if line.startswith("| ")]
    full = make_config("ShortCall", hedge_option=True, observe_pnl=True)
    assert tuple(rows) == observation_names(full)
    plain = observation_names(make_config("ShortCall"))
    assert plain == tuple(r for r in rows if r in plain)  # the option rows absent, else in order


def test_the_manual_says_which_implied_and_realised_vol_are_observed() -> None:
    """The table gives the implied vol's tenor and the realised vol's half-life and start.

    Without them the entries cannot be reproduced: ``implied_vol`` is the at-the-forward vol
    for the episode's time left (its tenor shrinks to one step), ``realised_vol`` an EWMA over
    market steps (not days on an intraday grid) of half-life ``realised_vol_halflife``,
    started at the initial implied vol.
    """
    text = dict(EXOGENOUS_FEATURES)
    assert "time left" in text["implied_vol"]
    assert "realised_vol_halflife" in text["realised_vol"]
    assert "initial implied vol" in text["realised_vol"]
    assert "daily" not in text["realised_vol"]
    manual = ShortCallEnv.__doc__ or ""
    assert text["realised_vol"] in manual
    assert text["implied_vol"] in manual


class _Spy(Hedger):
    """Holds half the model hedge and records what it observes."""

    uses_observations = True

    def __init__(self, view: dict[str, Any]) -> None:
        self.name, self.env_overrides, self.seen = "spy", view, []

    def reset(self, env: Any) -> None:
        self.env = env

    def positions(self, state: Any, obs: np.ndarray) -> np.ndarray:
        self.seen.append((obs.copy(), dict(state), self.env._totals["pnl"].copy()))
        return 0.5 * np.asarray(state["model_hedge"])[:, None]


def test_an_agents_view_observes_what_it_says(manual_entries: Any) -> None:
    """The arena gives a view (P&L observed, its own half-life) the entries of that view."""
    view = {"action_mode": "band", "reward_mode": "terminal_mean_variance",
            "observe_pnl": True, "risk_aversion": 1.0, "realised_vol_halflife": 3.0}
    config = make_config("ShortCall")
    spy = _Spy(view)
    run_arena(config, [spy], 16, seed=0, progress=False)
    seen = config.replace(**view)
    scale = spy.env.reward_scale
    for obs, state, pnl in spy.seen:
        strike = first_strike(seen, spy.env.batch.market, slice(None))
        want = expected(manual_entries, seen, state, strike, pnl / scale).astype(np.float32)
        assert obs.shape == (16, len(observation_names(seen)))
        np.testing.assert_array_equal(obs, want)
    assert any(np.any(obs[:, -1] != 0) for obs, _, _ in spy.seen)
    batch = spy.env.batch  # one block: the paths of every recorded decision
    realised = _pandas_realised_vol(batch.market.spot, batch.features.implied_vol[:, 0], seen)
    for _, state, _ in spy.seen:
        rows = np.arange(len(realised))
        np.testing.assert_allclose(state["realised_vol"], realised[rows, state["step"]],
                                   rtol=1e-13)
