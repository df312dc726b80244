"""The arena runner: common random numbers, batching, concatenation, overrides."""

from __future__ import annotations

import numpy as np
import pytest

from hedgearena.baselines.arena import PATH_BLOCK, path_blocks, run_arena
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


def test_blocks_are_seeded_independently_and_joined_in_order() -> None:
    config = make_config("ShortCall", n_steps=5, book={"options": [
        {"moneyness": 1.0, "expiry_steps": 5, "contracts": -1.0}]})
    n = PATH_BLOCK + 1000
    result = run_arena(config, [Delta()], n_paths=n, seed=3, progress=False, keep_batches=True)
    first = run_arena(config, [Delta()], n_paths=PATH_BLOCK, seed=3, progress=False)
    assert result.n_paths == n
    assert len(result.batches) == 2
    # The first block's paths are the same whatever the number of paths after it.
    np.testing.assert_array_equal(result.spot[:PATH_BLOCK], first.spot)
    for key, value in first.records["delta"].totals.items():
        np.testing.assert_array_equal(value, result.records["delta"].totals[key][:PATH_BLOCK])
    np.testing.assert_array_equal(result.spot, result.batch.market.spot)
    np.testing.assert_array_equal(result.model_hedge, result.batch.episode.model_hedge.T)
    assert path_blocks(n) == [(0, PATH_BLOCK), (1, 1000)]


def test_attribution_is_the_metrics_on_the_kept_paths() -> None:
    from hedgearena.baselines.metrics import pnl_attribution

    result = run_arena(make_config("ShortCall"), [Half()], n_paths=700, seed=1, progress=False,
                       keep_batches=True)
    expected = pnl_attribution(result.records["half delta"], result.batch)
    for term, values in expected.items():
        np.testing.assert_allclose(result.attribution["half delta"][term], values, rtol=1e-12,
                                   atol=1e-9, err_msg=term)


def test_the_full_paths_are_refused_when_not_kept() -> None:
    result = run_arena(make_config("ShortCall"), [Delta()], n_paths=10, progress=False)
    with pytest.raises(ValueError, match="keep_batches=True"):
        _ = result.batch


def test_every_hedger_sees_the_same_paths_and_equals_a_direct_run() -> None:
    config = make_config("ShortCall", cost=0.002)
    result = run_arena(config, [Delta(), Half()], n_paths=2000, seed=5, progress=False,
                       keep_batches=True)
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
    result = run_arena(config, [Delta()], n_paths=300, seed=0, progress=False,
                       keep_batches=True)
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
    with pytest.raises(ValueError, match="n_paths must be an integer >= 1"):
        path_blocks(0)


class Broken(Hedger):
    name = "broken"

    def positions(self, state, obs):
        return np.full((len(state["spot"]), 1), np.nan)


def test_a_hedger_returning_nan_is_refused() -> None:
    with pytest.raises(ValueError, match="broken: positions must be finite"):
        run_arena(make_config("ShortCall"), [Broken()], n_paths=10, progress=False)
