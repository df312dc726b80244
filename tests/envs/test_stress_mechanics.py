"""Execution and risk mechanics of the core: partial fills, child orders, permanent impact, limits.

Each mechanic is checked against its stated formula on hand-sized cases, then all of them
together against the invariants of the arena: the accounting identity on every path, finite
numbers, reproducibility by seed, and the single env equal to the vector env of one path.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import hedgearena  # noqa: F401  (registers the ids)
from hedgearena.baselines.hedger import Hedger, run_hedger
from hedgearena.envs.black_scholes import black_scholes_greeks
from hedgearena.envs.book import ClientFlow, HedgeOption, Option, OptionBook
from hedgearena.envs.config import make_config
from hedgearena.envs.core import (
    PNL_COMPONENTS,
    CoreConfig,
    Episode,
    HedgeState,
    StepResult,
    transition,
)
from hedgearena.envs.episode import Remarker, build_episodes, mark_step
from hedgearena.envs.execution import average_price_factor
from hedgearena.envs.gbm import GBM
from hedgearena.envs.hedging_env import INFO_KEYS
from hedgearena.envs.limits import BREACH_FLAGS, RiskLimits, breach_names, exposures
from hedgearena.envs.market import MarketPaths
from hedgearena.envs.source import copy_batch
from hedgearena.envs.vector_env import VecHedgingEnv

N = 100.0  # ShortCall's notional (one contract of 100)


@dataclass(frozen=True)
class DroughtMarket:
    """GBM paths with fill fractions and caps (a liquidity drought, for the tests).

    ``fraction`` and ``cap`` are numbers, or one value per grid point (the same on every path;
    on another grid, e.g. the reward scale's one-step probe, nothing is limited); ``cap`` in
    multiples of the notional.
    """

    fraction: Any = 1.0
    cap: Any = math.inf
    base: GBM = field(default_factory=lambda: GBM(mu=0.05, sigma=0.2, spot0=100.0))

    def simulate(self, n_paths: int, n_steps: int, dt: float, rng: np.random.Generator):
        paths = self.base.simulate(n_paths, n_steps, dt, rng)
        shape = paths.spot.shape

        def grid(value: Any, default: float) -> np.ndarray:
            values = np.asarray(value, dtype=float)
            if values.ndim and values.shape[-1] != shape[1]:
                values = np.asarray(default)
            return np.broadcast_to(values, shape).copy()

        return dataclasses.replace(
            paths, fill_fraction=grid(self.fraction, 1.0), fill_cap=grid(self.cap, math.inf)
        )


def short_call(num_envs: int = 4, **kwargs: Any) -> VecHedgingEnv:
    """The ShortCall vector env, reset with seed 0."""
    env = VecHedgingEnv(num_envs=num_envs, preset="ShortCall", **kwargs)
    env.reset(seed=0)
    return env


def hold(env: VecHedgingEnv, units: float) -> tuple[Any, ...]:
    """Step ``env`` to ``units`` of the underlying on every row."""
    return env.step_targets(np.full((env.num_envs, env.config.action_dim), units))


# ------------------------------------------------------------------------------ partial fills
def test_partial_fill_leaves_exactly_the_unfilled_exposure_and_costs_the_filled_part() -> None:
    env = short_call(market=DroughtMarket(fraction=0.4))
    spot0 = env.batch.episode.spot[0].copy()
    *_, info = hold(env, 50.0)
    np.testing.assert_allclose(info["hedge"], 0.0 + 0.4 * 50.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(info["trade"], 20.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(info["unfilled"], 30.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(info["cost"], 0.01 * spot0 * 20.0, rtol=1e-12)  # 1% of filled
    *_, info = hold(env, 50.0)  # the hedger sees the gap and sends the rest: 40% of 30 fills
    np.testing.assert_allclose(info["hedge"], 20.0 + 0.4 * 30.0, rtol=0, atol=1e-12)


def test_orders_past_the_cap_fill_nothing_all_or_nothing() -> None:
    env = short_call(market=DroughtMarket(fraction=0.5, cap=0.3))  # cap: 30 units
    *_, info = hold(env, 80.0)  # 40 after the fraction: past the cap
    np.testing.assert_array_equal(info["hedge"], 0.0)
    np.testing.assert_array_equal(info["cost"], 0.0)
    np.testing.assert_array_equal(info["unfilled"], 80.0)
    *_, info = hold(env, 60.0)  # 30: at the cap, fills
    np.testing.assert_allclose(info["hedge"], 30.0, rtol=0, atol=1e-12)


def test_an_unfilled_unwind_stays_held_and_marked_at_the_last_spot() -> None:
    fraction = np.ones(21)
    fraction[-1] = 0.0  # nothing fills at the last step
    env = short_call(market=DroughtMarket(fraction=fraction))
    sums = np.zeros(env.num_envs)
    for _ in range(20):
        _, _, terminated, _, info = hold(env, 40.0)
        sums += info["pnl"]
    assert terminated.all()
    np.testing.assert_allclose(info["hedge"], 40.0)  # still held
    np.testing.assert_allclose(info["unfilled"], -40.0)  # the unwind's sale did not fill
    ep = env.batch.episode
    np.testing.assert_allclose(info["wealth"], ep.book_value[20] + 40.0 * ep.spot[20]
                               + info["cash"], rtol=1e-12)
    np.testing.assert_allclose(sums, info["totals"]["terminal_pnl"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(info["totals"]["unfilled"], 40.0)


# ------------------------------------------------------------------------------ child orders
def _episode(rng: np.random.Generator, n_steps: int, n_paths: int) -> Episode:
    """A random time-major episode with proportional costs (``linear = 1% S``)."""
    shape = (n_steps + 1, n_paths)
    spot = rng.uniform(80, 120, shape)
    zeros = np.zeros(shape)
    return Episode(
        spot=spot, option_price=rng.uniform(1, 5, shape), model_hedge=rng.normal(0, 50, shape),
        model_option=zeros, book_value=rng.normal(0, 100, shape), option_mtm=zeros,
        cash_flow=zeros, spread_income=zeros, linear=0.01 * spot, quadratic=zeros,
        three_halves=zeros, fixed=zeros, option_linear=zeros, stock=np.zeros(n_paths),
        rate_growth=1.0, dividend_growth=1.0,
    )


def test_twap_children_sum_to_the_parent_each_paying_its_own_step() -> None:
    rng = np.random.default_rng(0)
    episode = _episode(rng, 8, 3)
    config = CoreConfig(rebalance_every=4, execution="twap", unwind=False)
    state = HedgeState(np.full(3, 10.0), np.zeros(3), np.full(3, 1000.0))
    result = transition(episode, 2, 8, state, np.full(3, 50.0), np.zeros(3), config)
    child = 40.0 / 4
    np.testing.assert_allclose(result.trade, 40.0)  # the children add up to the parent
    np.testing.assert_allclose(result.state.hedge, 50.0)
    spots = episode.spot[2:6]
    np.testing.assert_allclose(result.cost, (0.01 * spots * child).sum(axis=0), rtol=1e-12)
    executed_price = spots.mean(axis=0)  # equal children: the average of the steps' prices
    np.testing.assert_allclose(result.slippage, 40.0 * (executed_price - spots[0]), rtol=1e-12)
    np.testing.assert_allclose(result.unfilled, 0.0, atol=1e-12)
    # the position is built up over the interval: 10 + 10 k units over (2 + k, 3 + k]
    held = 10.0 + child * np.arange(1, 5)[:, None]
    np.testing.assert_allclose(
        result.hedge_pnl, (held * np.diff(episode.spot[2:7], axis=0)).sum(axis=0), rtol=1e-12
    )


def test_participation_caps_each_child_and_drops_the_rest_at_the_next_decision() -> None:
    env = short_call(1, execution="participation", execution_rate=0.1, rebalance_every=4)
    np.testing.assert_allclose(env.batch.episode.child_cap, 10.0 / env.batch.market.liquidity.T)
    *_, info = hold(env, 60.0)  # at most 10 units a step (liquidity 1): 40 of 60 in 4 steps
    np.testing.assert_allclose(info["hedge"], 40.0)
    np.testing.assert_allclose(info["unfilled"], 20.0)
    *_, info = hold(env, 60.0)  # the next decision sends the gap again
    np.testing.assert_allclose(info["hedge"], 60.0)
    np.testing.assert_allclose(info["unfilled"], 0.0)


def test_immediate_execution_through_the_stressed_path_equals_the_default_path() -> None:
    """Fills of 1 everywhere take the general (stressed) path: it must book the same numbers."""
    rng = np.random.default_rng(4)
    episode = _episode(rng, 6, 5)
    stressed = episode._replace(fill_fraction=np.ones((7, 5)))
    config = CoreConfig(rebalance_every=2, lot_size=0.5)
    state = HedgeState(*(rng.normal(0, 20, 5) for _ in range(3)))
    for step in (0, 2, 4):
        target = rng.normal(0, 50, 5)
        want = transition(episode, step, 6, state, target, np.zeros(5), config)
        got = transition(stressed, step, 6, state, target, np.zeros(5), config)
        for name, a, b in zip(StepResult._fields[1:], got[1:], want[1:], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-9, err_msg=name)
        state = want.state


# ------------------------------------------------------------------------- permanent impact
def test_a_sale_moves_the_spot_down_and_the_book_is_remarked_exactly() -> None:
    k, units = 0.1, -50.0
    env = short_call(cost=0.0, permanent_impact=k)
    market = env.batch.market
    spot0, cash0 = market.spot[:, 0].copy(), env.batch.initial_cash.copy()
    strike = env.batch.instruments.strike[:, 0]
    obs, *_, info = hold(env, units)
    move = k * units / N  # -0.05: the log spot, for the rest of the episode
    impacted = market.spot[:, 1] * math.exp(move)
    np.testing.assert_allclose(info["spot"], impacted, rtol=1e-14)
    assert np.all(info["spot"] < market.spot[:, 1])  # a sale pushes the price down
    tau = 19 / 250
    greeks = black_scholes_greeks(impacted, strike, tau, 0.2, select=("price", "delta"))
    np.testing.assert_allclose(env.batch.episode.book_value[1], -N * greeks.price, rtol=1e-12)
    np.testing.assert_allclose(info["model_hedge"], N * greeks.delta, rtol=1e-12)
    np.testing.assert_allclose(env.state["book_delta"], -N * greeks.delta, rtol=1e-12)
    np.testing.assert_allclose(obs[:, 1], np.log(impacted / strike), rtol=1e-6)  # moneyness
    np.testing.assert_allclose(obs[:, 2], -greeks.delta, rtol=1e-6)  # book delta / N
    # executed at the average price along its own move
    price = spot0 * average_price_factor(move)
    np.testing.assert_allclose(info["cash"], cash0 - units * price, rtol=1e-12)
    assert np.all((price < spot0) & (price > spot0 * math.exp(move)))
    hold(env, units)  # no further trade: the move stays
    np.testing.assert_allclose(env.state["spot"], market.spot[:, 2] * math.exp(move), rtol=1e-14)


def test_buying_pushes_the_price_up() -> None:
    env = short_call(permanent_impact=0.05)
    *_, info = hold(env, 100.0)
    np.testing.assert_allclose(info["spot"], env.batch.market.spot[:, 1] * math.exp(0.05))


def test_synthetic_put_sells_into_its_own_decline() -> None:
    """The crowding feedback: a sale lowers the spot, which lowers the synthetic put's hedge."""

    def model_hedge_after_a_sale(impact: float) -> np.ndarray:
        env = VecHedgingEnv(num_envs=8, preset="PortfolioInsurance", permanent_impact=impact)
        env.reset(seed=1)
        hold(env, -30.0)
        return env.state["model_hedge"]

    assert np.all(model_hedge_after_a_sale(0.05) < model_hedge_after_a_sale(0.0))


def test_remarking_at_the_market_spot_reproduces_the_batch() -> None:
    """``mark_step`` is the episode builder's marking, step by step: zero impact, same numbers."""
    config = make_config(
        None, market="heston", market_kwargs={"rate": 0.03, "dividend": 0.01}, n_steps=12,
        book=OptionBook(options=(Option(1.0, 8, -1.0), Option(0.9, 20, 2.0, is_call=False)),
                        stock=10.0, client_flow=ClientFlow(rate=500.0)),
        hedge_option=HedgeOption(expiry_steps=30),
        cost={"proportional": 1e-3, "spread": {"half_spread": 5e-4}},
    )
    batch = build_episodes(config, 5, np.random.default_rng(2))
    steps, rows = (x.ravel() for x in np.meshgrid(np.arange(13), np.arange(5), indexing="ij"))
    marks = mark_step(config, batch.market, batch.instruments, steps, rows,
                      batch.market.spot[rows, steps])
    ep = batch.episode
    for name, want in (("book_value", ep.book_value), ("model_hedge", ep.model_hedge),
                       ("model_option", ep.model_option), ("option_price", ep.option_price),
                       ("spread_income", ep.spread_income), ("option_linear", ep.option_linear)):
        np.testing.assert_allclose(getattr(marks, name), want[steps, rows], rtol=1e-12,
                                   atol=1e-10, err_msg=name)
    np.testing.assert_allclose(marks.premium + marks.settlement, ep.cash_flow[steps, rows],
                               rtol=1e-12, atol=1e-10)


def test_remarker_at_zero_impact_rewrites_the_same_batch() -> None:
    """Every array the re-marker writes comes back unchanged when the spot has not moved."""
    cost = {**HARD["cost"], "spread": {"half_spread": 5e-4}}
    config = make_config(None, **{**HARD, "cost": cost})
    batch = copy_batch(build_episodes(config, 6, np.random.default_rng(5)))
    reference = copy_batch(batch)
    remark = Remarker(config, batch)
    for step in range(1, config.n_steps + 1):
        remark(step, 0.0, True, True)
    remark(3, np.zeros(6), np.ones(6, dtype=bool), False)
    for group in ("episode", "features"):
        for name, want in getattr(reference, group)._asdict().items():
            if isinstance(want, np.ndarray):
                np.testing.assert_allclose(getattr(getattr(batch, group), name), want,
                                           rtol=1e-12, atol=1e-9, err_msg=f"{group}.{name}")
    np.testing.assert_allclose(batch.observations, reference.observations, rtol=1e-6,
                               atol=1e-6)


# ------------------------------------------------------------------------------ risk limits
def test_a_limit_breach_counts_once_per_crossing() -> None:
    """Unhedged short call: |net delta| ~ 0.5 N > 0.3 N. Stay out: one breach; back in and out
    again: a second one."""
    env = short_call(1, risk_limits={"delta": 0.3})
    breaches = []
    for units in (0.0, 0.0, 0.0, None, 0.0, 0.0):
        target = env.state["model_hedge"][0] if units is None else units
        *_, info = hold(env, target)
        breaches.append(int(info["breach"][0]))
    assert breaches == [1, 0, 0, 0, 1, 0]
    for _ in range(14):
        *_, info = hold(env, env.state["model_hedge"][0])
    assert info["totals"]["breaches"][0] == 2


def test_flatten_forces_the_model_position_at_the_next_decision() -> None:
    env = short_call(2, risk_limits={"delta": 0.3, "action": "flatten"})
    *_, info = hold(env, 0.0)
    assert np.all(info["breach"] == BREACH_FLAGS["delta"])
    model = env.state["model_hedge"].copy()
    *_, info = hold(env, 0.0)  # the action says 0: overridden
    np.testing.assert_allclose(info["hedge"], model)
    *_, info = hold(env, 0.0)  # obeyed again
    np.testing.assert_array_equal(info["hedge"], 0.0)


def test_terminate_ends_the_episode_naming_the_limit_and_sells_the_hedge() -> None:
    env = short_call(2, risk_limits={"delta": 0.3, "action": "terminate"})
    targets = np.array([[150.0], [50.0]])  # row 0: net delta ~ +1 N; row 1 within
    spot = env.batch.episode.spot[:2].copy()
    _, _, terminated, _, info = env.step_targets(targets)
    assert terminated.tolist() == [True, False]
    assert info["termination_reason"].tolist() == ["delta", ""]
    assert info["hedge"].tolist() == [0.0, 50.0]
    np.testing.assert_allclose(info["cost"][0], 0.01 * 150.0 * (spot[0, 0] + spot[1, 0]))
    episode = info["totals"]
    assert episode["breaches"][0] == 1
    np.testing.assert_allclose(episode["terminal_pnl"][0], info["pnl"][0], rtol=1e-12)
    _, rewards, terminated, _, info = env.step_targets(targets)  # row 0 resets (NEXT_STEP)
    assert info["step"].tolist() == [0.0, 2.0]
    assert rewards[0] == 0.0


def test_gamma_limit_sees_the_hedging_option() -> None:
    """ATM short call: gamma exposure ~0.07 N per 1%; a gamma-neutral option position clears it."""
    env = short_call(3, hedge_option=True, risk_limits={"gamma": 0.05})
    *_, info = hold(env, 0.0)
    assert np.all(info["breach"] == BREACH_FLAGS["gamma"])
    state = env.state
    *_, info = env.step_targets(np.stack([state["model_hedge"], state["model_option"]], axis=1))
    np.testing.assert_array_equal(info["breach"], 0)


def test_drawdown_limit_is_measured_from_the_episode_peak() -> None:
    env = VecHedgingEnv(num_envs=64, preset="ShortCall", risk_limits={"drawdown": 5.0})
    _, info = env.reset(seed=0)
    peak, over, count = info["wealth"].copy(), np.zeros(64, dtype=bool), 0
    for _ in range(10):
        *_, info = hold(env, 50.0)
        peak = np.maximum(peak, info["wealth"])
        now = peak - info["wealth"] > 5.0
        np.testing.assert_array_equal(info["breach"] != 0, now & ~over)
        count += int((now & ~over).sum())
        over = now
    assert count > 64  # every row breaches on the first trade's cost, some more than once


def test_exposures_in_the_limits_units() -> None:
    greeks = dict(book_delta=-50.0, book_gamma=-7.0, book_vega=-12.0, option_delta=0.5,
                  option_gamma=0.07, option_vega=20.0)
    got = exposures(greeks, 100.0, 30.0, 100.0, 5.0, N)
    assert got.delta == pytest.approx(abs(-50 + 30 + 50) / N)  # 0.3 N
    assert got.gamma == pytest.approx(0.0)  # gamma neutral
    assert got.vega == pytest.approx(abs(-12 + 2000) * 0.01)  # currency per vol point
    assert got.drawdown == 5.0
    assert breach_names(BREACH_FLAGS["vega"] | BREACH_FLAGS["delta"]) == ("delta", "vega")


# ----------------------------------------------------------------------- all modes together
HARD = {
    "market": "heston",
    "market_kwargs": {"kappa": 1.5, "theta": 0.05, "xi": 0.6, "rho": -0.6, "v0": 0.04,
                      "rate": 0.03, "dividend": 0.01},
    "book": OptionBook(options=(Option(1.0, 30, -2.0), Option(0.9, 10, 1.0, is_call=False)),
                       stock=50.0, client_flow=ClientFlow(rate=500.0, expiry_steps=(5, 15, 45))),
    "n_steps": 30,
    "rebalance_every": 2,
    "hedge_option": HedgeOption(expiry_steps=60),
    "cost": {"proportional": 0.002, "fixed": {"ticket": 1.0},
             "linear_impact": {"eta": 0.1, "daily_volume": 1e4}},
    "lot_size": 1.0,
}
"""The accounting test's hard case (rates, stock, expiries, client flow, a hedging option)."""
MODES = {
    "fills": {"market": DroughtMarket(fraction=0.6, cap=0.4)},
    "twap": {"execution": "twap"},
    "participation": {"execution": "participation", "execution_rate": 0.05},
    "impact": {"permanent_impact": 0.05},
    "impact_twap_fills": {"permanent_impact": 0.05, "execution": "twap",
                          "market": DroughtMarket(fraction=0.7)},
    "terminate": {"risk_limits": {"delta": 0.4, "drawdown": 200.0, "action": "terminate"},
                  "permanent_impact": 0.02},
    "flatten": {"risk_limits": {"delta": 0.4, "gamma": 0.05, "vega": 50.0, "action": "flatten"},
                "execution": "participation"},
}


def hard_env(mode: str, num_envs: int = 32) -> VecHedgingEnv:
    kwargs = {**HARD, **MODES[mode]}
    if isinstance(kwargs["market"], DroughtMarket):
        kwargs.pop("market_kwargs")  # the drought wraps GBM
    return VecHedgingEnv(num_envs=num_envs, **kwargs)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_accounting_identity_in_every_mode(mode: str) -> None:
    """Per-step components sum to each episode's wealth change, on every path, to 1e-9.

    Random actions over 40 decisions: rows a limit stops restart at once (next-step autoreset),
    so the rows run out of phase and every finished episode is checked.
    """
    env = hard_env(mode)
    env.reset(seed=3)
    rng = np.random.default_rng(3)
    sums, finished = np.zeros(env.num_envs), 0
    for _ in range(40):
        _, _, terminated, _, info = env.step(rng.uniform(-1, 1, (env.num_envs, 2)))
        components = sum(info[n] for n in PNL_COMPONENTS if n != "cost") - info["cost"]
        np.testing.assert_allclose(components, info["pnl"], rtol=1e-12, atol=1e-9)
        sums += info["pnl"]
        if terminated.any():
            rows = np.flatnonzero(terminated)
            terminal = info["totals"]["terminal_pnl"][rows]
            scale = np.maximum(np.abs(terminal), 1.0)
            np.testing.assert_array_less(np.abs(sums[rows] - terminal) / scale, 1e-9)
            finished += len(rows)
            sums[rows] = 0.0
    assert finished >= env.num_envs


@pytest.mark.parametrize("mode", sorted(MODES))
def test_single_env_equals_the_vector_env_of_one_path(mode: str) -> None:
    kwargs = {**HARD, **MODES[mode]}
    if isinstance(kwargs["market"], DroughtMarket):
        kwargs.pop("market_kwargs")
    single = gym.make("hedgearena/ShortCall-v0", **kwargs).unwrapped
    vector = VecHedgingEnv(num_envs=1, preset="ShortCall", **kwargs)
    rng = np.random.default_rng(5)
    o1, _ = single.reset(seed=11)
    o2, _ = vector.reset(seed=11)
    for _ in range(3):
        done = False
        while not done:
            action = rng.uniform(-1.2, 1.2, size=(2,)).astype(np.float32)
            o1, r1, t1, _, i1 = single.step(action)
            o2, r2, t2, _, i2 = vector.step(action[None])
            np.testing.assert_allclose(o1, o2[0], rtol=1e-6, atol=1e-7)
            assert r1 == pytest.approx(r2[0], rel=1e-9, abs=1e-12)
            assert t1 == t2[0]
            for key in INFO_KEYS:
                if key == "termination_reason":
                    assert i1[key] == i2[key][0]
                else:
                    assert i1[key] == pytest.approx(i2[key][0], rel=1e-9, abs=1e-9), key
            done = t1
        for key, value in i1["totals"].items():
            assert value == pytest.approx(i2["totals"][key][0], rel=1e-9, abs=1e-9), key
        o1, _ = single.reset()
        o2, *_ = vector.step(np.zeros((1, 2)))  # NEXT_STEP reset


@pytest.mark.parametrize("mode", sorted(MODES))
def test_no_nan_and_reproducible_by_seed(mode: str) -> None:
    def run(seed: int) -> np.ndarray:
        env = hard_env(mode, 8)
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(0)
        rewards = []
        for _ in range(20):
            obs, reward, _, _, info = env.step(rng.uniform(-3, 3, (8, 2)))
            assert np.isfinite(obs).all()
            assert np.isfinite(reward).all()
            assert all(np.isfinite(info[k]).all() for k in INFO_KEYS if k != "termination_reason")
            rewards.append(reward)
        return np.array(rewards)

    first = run(7)
    np.testing.assert_array_equal(first, run(7))
    assert not np.array_equal(first, run(8))


def test_info_keys_are_the_same_on_every_step() -> None:
    env = gym.make("hedgearena/ShortCall-v0", risk_limits={"delta": 0.3, "action": "terminate"})
    _, info = env.reset(seed=0)
    keys = set(info)
    assert set(INFO_KEYS) == keys
    done = False
    while not done:
        _, _, done, _, info = env.step(np.zeros(1, dtype=np.float32))
        assert set(info) - {"totals"} == keys
    assert info["termination_reason"] == "delta"


# ------------------------------------------------------------------------- settings, errors
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"execution": "vwap"}, "execution must be one of immediate, twap, participation"),
        ({"execution_rate": 0.0}, "execution_rate must be a finite number > 0"),
        ({"permanent_impact": -0.1}, "permanent_impact must be a finite number >= 0"),
        ({"permanent_impact": "big"}, "permanent_impact must be a finite number >= 0"),
        ({"risk_limits": {"delta": -1.0}}, r"risk_limits\.delta must be a finite number >= 0"),
        ({"risk_limits": {"theta": 1.0}}, "unknown risk_limits key"),
        ({"risk_limits": {"action": "panic"}}, "risk_limits.action must be one of report"),
        ({"risk_limits": 0.5}, "risk_limits must be a RiskLimits, a dict or None"),
    ],
)
def test_settings_are_validated_naming_the_field(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        gym.make("hedgearena/ShortCall-v0", **kwargs)


def test_settings_reach_the_vector_env_through_make_vec() -> None:
    venv = gym.make_vec("hedgearena/ShortCall-v0", num_envs=2,
                        vectorization_mode="vector_entry_point", permanent_impact=0.01,
                        execution="twap", risk_limits=RiskLimits(vega=10.0))
    config = venv.unwrapped.config
    assert (config.permanent_impact, config.execution) == (0.01, "twap")
    assert config.risk_limits == RiskLimits(vega=10.0)


def test_market_paths_validate_the_fill_arrays() -> None:
    paths = GBM().simulate(2, 3, 0.01, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"fill_fraction must lie in \[0, 1\]"):
        dataclasses.replace(paths, fill_fraction=np.full((2, 4), 1.5))
    with pytest.raises(ValueError, match="fill_cap must be >= 0"):
        dataclasses.replace(paths, fill_cap=np.full((2, 4), np.nan))
    with pytest.raises(ValueError, match="fill_cap must have shape"):
        dataclasses.replace(paths, fill_cap=np.ones((2, 3)))
    assert isinstance(dataclasses.replace(paths, fill_cap=np.full((2, 4), np.inf)), MarketPaths)


# ---------------------------------------------------------------------------------- torch
def test_fills_and_twap_on_torch_match_numpy_and_stay_differentiable() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    episode = _episode(rng, 4, 3)._replace(
        fill_fraction=rng.uniform(0.3, 1.0, (5, 3)), fill_cap=np.full((5, 3), 30.0)
    )
    tensors = Episode(*(torch.as_tensor(v) if isinstance(v, np.ndarray) else v for v in episode))
    config = CoreConfig(rebalance_every=2, execution="twap")
    state = HedgeState(*(rng.normal(0, 10, 3) for _ in range(3)))
    target = rng.normal(0, 40, 3)
    want = transition(episode, 2, 4, state, target, np.zeros(3), config)
    hedge = torch.tensor(target, requires_grad=True)
    got = transition(tensors, 2, 4, HedgeState(*(torch.as_tensor(x) for x in state)), hedge,
                     torch.zeros(3, dtype=torch.float64), config)
    for name, a, b in zip(StepResult._fields[1:], got[1:], want[1:], strict=True):
        np.testing.assert_allclose(torch.as_tensor(a).detach().numpy(), b, rtol=1e-12,
                                   atol=1e-9, err_msg=name)
    got.pnl.sum().backward()
    assert hedge.grad is not None
    assert torch.isfinite(hedge.grad).all()


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"permanent_impact": 0.01}, "permanent_impact is not supported on torch"),
     ({"risk_limits": RiskLimits(delta=1.0)}, "risk_limits are enforced by the envs")],
)
def test_impact_and_limits_on_torch_raise_clear_errors(settings: dict, message: str) -> None:
    torch = pytest.importorskip("torch")
    episode = _episode(np.random.default_rng(0), 2, 2)
    tensors = Episode(*(torch.as_tensor(v) if isinstance(v, np.ndarray) else v for v in episode))
    zeros = torch.zeros(2, dtype=torch.float64)
    with pytest.raises(ValueError, match=message):
        transition(tensors, 0, 2, HedgeState(zeros, zeros, zeros), zeros + 1.0, zeros,
                   CoreConfig(**settings))


# ------------------------------------------------------------------------------- run_hedger
class _Overhedger(Hedger):
    """Holds 150 units on even rows (a delta breach), the model hedge on odd rows."""

    name = "overhedger"

    def positions(self, state: Any, obs: np.ndarray) -> np.ndarray:
        rows = np.arange(len(state["spot"]))
        return np.where(rows % 2 == 0, 150.0, state["model_hedge"])[:, None]


def test_run_hedger_records_the_new_keys_and_episodes_a_limit_ends_early() -> None:
    env = VecHedgingEnv(num_envs=6, preset="ShortCall",
                        risk_limits={"delta": 0.5, "action": "terminate"},
                        market=DroughtMarket(fraction=0.9))
    record = run_hedger(env, _Overhedger(), seed=0)
    even, odd = slice(0, None, 2), slice(1, None, 2)
    np.testing.assert_array_equal(record.totals["breaches"][even], 1.0)
    assert np.all(record.breach[0, even] == BREACH_FLAGS["delta"])
    assert np.all(record.trade[1:, even] == 0.0)  # ended after the first decision
    # 10% of the order did not fill, nor 10% of the sale of the 135 units that did
    np.testing.assert_allclose(record.unfilled[0, even], 150.0 * 0.1 - 135.0 * 0.1)
    np.testing.assert_allclose(record.hedge[0, even], 135.0)
    assert np.all(record.totals["unfilled"][odd] > 0)
    for key in ("impact_pnl", "slippage", "option_unfilled"):
        assert key in record.totals
    pnl = sum(record.totals[n] for n in PNL_COMPONENTS if n != "cost") - record.totals["cost"]
    np.testing.assert_allclose(pnl, record.totals["terminal_pnl"], rtol=1e-9, atol=1e-9)


LIVE_CASES = {
    "default": ({}, set()),
    "hedging option": ({"hedge_option": True}, {"option"}),
    "twap": ({"execution": "twap", "rebalance_every": 2}, {"unfilled", "slippage"}),
    "permanent impact": ({"permanent_impact": 0.01}, {"unfilled", "slippage"}),
    "fills": ({"market": DroughtMarket(fraction=0.6)}, {"unfilled", "slippage"}),
    "limits": ({"risk_limits": {"delta": 0.3, "action": "flatten"}},
               {"unfilled", "slippage", "breach"}),
}


@pytest.mark.parametrize("case", sorted(LIVE_CASES))
def test_record_fields_of_mechanics_that_are_off_are_the_zeros_they_would_hold(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """live_records skips exactly the fields the env books as zeros (checked by writing all)."""
    from hedgearena.baselines import hedger as hedger_module
    from hedgearena.baselines.delta import BlackScholesDelta
    from hedgearena.baselines.delta_gamma import DeltaGamma

    kwargs, extra = LIVE_CASES[case]
    always = {"hedge", "trade", "cost"}

    def hedger() -> Any:  # one that uses the mechanic: trades the option when there is one
        if "risk_limits" in kwargs:
            return _Overhedger()
        return DeltaGamma() if "hedge_option" in kwargs else BlackScholesDelta()

    lean = run_hedger(VecHedgingEnv(num_envs=8, preset="ShortCall", **kwargs), hedger(), seed=3)
    monkeypatch.setattr(hedger_module, "live_records",
                        lambda *_: dict.fromkeys(hedger_module.RECORD_FIELDS, True))
    full = run_hedger(VecHedgingEnv(num_envs=8, preset="ShortCall", **kwargs), hedger(), seed=3)
    for name in hedger_module.RECORD_FIELDS:
        np.testing.assert_array_equal(getattr(lean, name), getattr(full, name), err_msg=name)
        shared = getattr(lean, name).strides == (0, 0)
        assert shared == (name not in always | extra), name
    assert np.any(getattr(full, "option" if "option" in extra else "hedge") != 0)


def test_pushing_the_spot_before_expiry_does_not_pay_settlements_use_the_markets_spot() -> None:
    """Marking the close: at its last decision a hedger dumps 250 units to push the spot down
    under its short in-the-money call, and unwinds after the settlement (a free round trip
    under linear permanent impact, no costs). Settled at the moved spot this paid about 120 a
    path more than delta (delta itself lost 51 to its own impact at settlement); settled at the
    market's spot neither gains from its own impact (mu = 0: means within 3 standard errors).
    """
    from hedgearena.baselines.arena import run_arena
    from hedgearena.baselines.delta import BlackScholesDelta

    class Manipulator(Hedger):
        name = "manipulator"
        uses_observations = False

        def positions(self, state: Any, obs: np.ndarray) -> np.ndarray:
            push = (state["tau"] <= 1.5 * state["dt"]) & (state["model_hedge"] > 50.0)
            return np.where(push, -150.0, state["model_hedge"])[:, None]

    results = {}
    for impact in (0.0, 0.01):
        config = make_config("ShortCall", cost=0.0, permanent_impact=impact,
                             market_kwargs={"mu": 0.0})
        results[impact] = run_arena(config, [BlackScholesDelta(), Manipulator()],
                                    n_paths=8_000, seed=0, progress=False)
    for name in ("delta", "manipulator"):
        gain = (results[0.01].totals(name)["terminal_pnl"]
                - results[0.0].totals(name)["terminal_pnl"])
        assert abs(gain.mean()) < 3.0 * gain.std() / np.sqrt(gain.size) + 0.5, name
