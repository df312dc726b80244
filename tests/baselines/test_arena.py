"""The arena runner: common random numbers, batching, concatenation, overrides."""

from __future__ import annotations

import numpy as np
import pytest

from hedgearena.baselines.arena import PATH_BLOCK, batch_blocks, run_arena
from hedgearena.baselines.hedger import Hedger, run_hedger
from hedgearena.envs.config import make_config
from hedgearena.envs.vector_env import VecHedgingEnv


class Delta(Hedger):
    def __init__(self, name: str = "delta") -> None:
        self.name = name

    def positions(self, state, obs):
        return state["model_hedge"][:, None]


class Half(Hedger):
    name = "half delta"

    def positions(self, state, obs):
        return 0.5 * state["model_hedge"][:, None]


class Overriding(Hedger):
    name = "band agent"
    env_overrides = {"action_mode": "band"}  # noqa: RUF012

    def reset(self, env):
        self.mode = env.config.action_mode

    def positions(self, state, obs):
        return state["model_hedge"][:, None]


def test_paths_do_not_depend_on_the_batch_size() -> None:
    config = make_config("ShortCall")
    n = PATH_BLOCK + 1000
    small = run_arena(config, [Delta()], n_paths=n, batch_size=PATH_BLOCK, seed=3, progress=False)
    large = run_arena(config, [Delta()], n_paths=n, batch_size=10**6, seed=3, progress=False)
    for key, value in small.records["delta"].totals.items():
        np.testing.assert_array_equal(value, large.records["delta"].totals[key], err_msg=key)
    np.testing.assert_array_equal(small.batch.market.spot, large.batch.market.spot)
    np.testing.assert_array_equal(small.records["delta"].hedge, large.records["delta"].hedge)
    assert small.n_paths == n


def test_every_hedger_sees_the_same_paths_and_equals_a_direct_run() -> None:
    config = make_config("ShortCall", cost=0.002)
    result = run_arena(config, [Delta(), Half()], n_paths=2000, seed=5, progress=False)
    premium = {name: r.totals["initial_premium"] for name, r in result.records.items()}
    np.testing.assert_array_equal(premium["delta"], premium["half delta"])
    assert not np.allclose(result.records["delta"].totals["pnl"],
                           result.records["half delta"].totals["pnl"])
    # The arena's delta record is what run_hedger gives on the arena's own batch.
    env = VecHedgingEnv(num_envs=2000, config=config)
    direct = run_hedger(env, Delta(), episodes=result.batch)
    np.testing.assert_allclose(direct.totals["pnl"], result.records["delta"].totals["pnl"],
                               rtol=0, atol=1e-9)


def test_records_hold_positions_trades_and_costs() -> None:
    config = make_config("ShortCall", rebalance_every=5)
    result = run_arena(config, [Delta()], n_paths=300, seed=0, progress=False)
    record = result.records["delta"]
    assert record.hedge.shape == (4, 300)
    np.testing.assert_array_equal(record.steps, [0, 5, 10, 15])
    np.testing.assert_allclose(record.hedge, np.cumsum(record.trade, axis=0))
    np.testing.assert_allclose(record.cost.sum(axis=0), record.totals["cost"], rtol=1e-12)
    np.testing.assert_allclose(record.hedge[1], -result.batch.features.book_delta[:, 5], rtol=1e-12)


def test_env_overrides_apply_and_are_limited() -> None:
    config = make_config("ShortCall")
    hedger = Overriding()
    run_arena(config, [hedger], n_paths=100, progress=False)
    assert hedger.mode == "band"
    hedger.env_overrides = {"cost": 0.0}
    with pytest.raises(ValueError, match="env_overrides may only change"):
        run_arena(config, [hedger], n_paths=100, progress=False)


def test_bad_arguments_are_named() -> None:
    config = make_config("ShortCall")
    with pytest.raises(ValueError, match="names must be unique"):
        run_arena(config, [Delta(), Delta()], n_paths=10, progress=False)
    with pytest.raises(ValueError, match="n_paths and batch_size must be >= 1"):
        batch_blocks(0, 10)


class Broken(Hedger):
    name = "broken"

    def positions(self, state, obs):
        return np.full((len(state["spot"]), 1), np.nan)


def test_a_hedger_returning_nan_is_refused() -> None:
    with pytest.raises(ValueError, match="broken: positions must be finite"):
        run_arena(make_config("ShortCall"), [Broken()], n_paths=10, progress=False)
