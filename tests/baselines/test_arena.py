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


# ---------------------------------------------------------------- state-only hedgers and envs
class ObsReader(Hedger):
    """Reads its observations (the default ``uses_observations``) and keeps them."""

    name = "obs reader"

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def positions(self, state, obs):
        self.seen.append(np.array(obs))
        return state["model_hedge"][:, None]


def _state_only_hedgers():
    from hedgearena.baselines.bands import WhalleyWilmott
    from hedgearena.baselines.delta import BlackScholesDelta, NoHedge

    return [BlackScholesDelta(), WhalleyWilmott(0.1), NoHedge()]


def test_classical_baselines_read_no_observations_and_others_do() -> None:
    from hedgearena.baselines.delta import BlackScholesDelta
    from hedgearena.baselines.hedger import uses_observations

    class Reader(BlackScholesDelta):  # a subclass whose positions may read observations
        def positions(self, state, obs):
            return super().positions(state, obs)

    class Quiet(Reader):
        uses_observations = False

    assert not any(uses_observations(h) for h in _state_only_hedgers())
    assert uses_observations(Delta())
    assert uses_observations(ObsReader())
    assert uses_observations(Reader())
    assert not uses_observations(Quiet())
    told = Reader()
    told.uses_observations = False
    assert not uses_observations(told)


def test_state_only_arena_equals_one_with_observations_built() -> None:
    config = make_config("ShortCall", cost=1e-3)
    n = PATH_BLOCK + 300
    lean = run_arena(config, _state_only_hedgers(), n_paths=n, seed=2, progress=False)
    built = run_arena(config, [*_state_only_hedgers(), ObsReader()], n_paths=n, seed=2,
                      progress=False)
    np.testing.assert_array_equal(lean.spot, built.spot)
    for name, record in lean.records.items():
        other = built.records[name]
        for key, value in record.totals.items():
            np.testing.assert_array_equal(value, other.totals[key], err_msg=f"{name} {key}")
        for field in ("steps", "hedge", "option", "trade", "cost", "unfilled", "slippage",
                      "breach"):
            np.testing.assert_array_equal(getattr(record, field), getattr(other, field))
        for term, value in lean.attribution[name].items():
            np.testing.assert_array_equal(value, built.attribution[name][term], err_msg=term)


def test_a_hedger_reading_observations_gets_them_next_to_state_only_ones() -> None:
    from hedgearena.baselines.arena import block_generator
    from hedgearena.envs.episode import build_episodes, feature_names

    config = make_config("ShortCall", cost=1e-3)
    reader = ObsReader()
    run_arena(config, [*_state_only_hedgers(), reader], n_paths=500, seed=4, progress=False)
    direct = ObsReader()
    batch = build_episodes(config, 500, block_generator(4, 0))
    run_hedger(VecHedgingEnv(num_envs=500, config=config), direct, episodes=batch)
    assert reader.seen[0].shape == (500, len(feature_names(False)))
    assert len(reader.seen) == len(direct.seen) == config.n_decisions
    for ours, theirs in zip(reader.seen, direct.seen, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_state_only_env_steps_like_the_full_one() -> None:
    config = make_config("ShortCall", cost=1e-3)
    full, lean = (VecHedgingEnv(num_envs=64, config=config, observations=o) for o in (True, False))
    obs, _ = full.reset(seed=7)
    empty, _ = lean.reset(seed=7)
    assert obs.shape == (64, len(full.single_observation_space.low))
    assert empty.shape == (64, 0)
    for _ in range(config.n_decisions + 2):  # across an autoreset
        targets = full.state["model_hedge"][:, None]
        one = full.step_targets(targets)
        two = lean.step_targets(targets)
        assert two[0].shape == (64, 0)
        for a, b in zip(one[1:4], two[1:4], strict=True):
            np.testing.assert_array_equal(a, b)
        for key, value in one[4].items():
            if key != "totals":
                np.testing.assert_array_equal(value, two[4][key], err_msg=key)
        for key, value in full.state.items():
            np.testing.assert_array_equal(value, lean.state[key], err_msg=key)


def test_an_env_builds_the_observations_a_batch_lacks() -> None:
    from hedgearena.envs.episode import build_episodes, has_observations

    config = make_config("ShortCall", cost=1e-3)
    batch = build_episodes(config, 50, np.random.default_rng(3), observations=False)
    assert not has_observations(batch)
    assert batch.observations.shape == (config.n_steps + 1, 50, 0)
    built = build_episodes(config, 50, np.random.default_rng(3))
    env, reference = VecHedgingEnv(num_envs=50, config=config), VecHedgingEnv(50, config=config)
    obs, _ = env.reset(options={"episodes": batch})
    expected, _ = reference.reset(options={"episodes": built})
    np.testing.assert_array_equal(obs, expected)
    for _ in range(3):
        targets = env.state["model_hedge"][:, None]
        np.testing.assert_array_equal(env.step_targets(targets)[0],
                                      reference.step_targets(targets)[0])
    assert not has_observations(batch)  # the given batch is left as it was


def test_lean_infos_are_the_full_ones_run_hedger_reads() -> None:
    config = make_config("ShortCall", cost=1e-3)
    full, lean = VecHedgingEnv(num_envs=32, config=config), VecHedgingEnv(32, config=config)
    full.reset(seed=1)
    lean.reset(seed=1)
    for _ in range(config.n_decisions):
        targets = 0.5 * full.state["model_hedge"][:, None]
        infos = full.step_targets(targets)[4]
        few = lean.step_targets(targets, full_infos=False)[4]
        assert set(few) < set(infos)
        for key, value in few.items():
            if key == "totals":
                for total, array in value.items():
                    np.testing.assert_array_equal(array, infos[key][total], err_msg=total)
            else:
                np.testing.assert_array_equal(value, infos[key], err_msg=key)
    assert "totals" in few


def test_run_hedger_writes_into_given_arrays() -> None:
    from hedgearena.baselines.hedger import record_arrays

    config = make_config("ShortCall", cost=1e-3)
    arrays = record_arrays((config.n_decisions, 40))
    env = VecHedgingEnv(num_envs=30, config=config)
    record = run_hedger(env, Half(), seed=0, out=[a[:, 5:35] for a in arrays])
    fresh = run_hedger(VecHedgingEnv(num_envs=30, config=config), Half(), seed=0)
    np.testing.assert_array_equal(arrays[2][:, 5:35], fresh.trade)
    np.testing.assert_array_equal(record.hedge, fresh.hedge)
    assert not arrays[2][:, :5].any()
    assert not arrays[2][:, 35:].any()
    with pytest.raises(ValueError, match="7 arrays"):
        run_hedger(env, Half(), seed=0, out=arrays)


def test_attribution_with_shared_market_terms_is_the_same() -> None:
    from hedgearena.baselines.metrics import market_attribution, pnl_attribution

    config = make_config("ShortCall", cost=1e-3)
    result = run_arena(config, [Half()], n_paths=200, seed=1, progress=False, keep_batches=True)
    record, batch = result.records["half delta"], result.batch
    shared = pnl_attribution(record, batch, market_attribution(batch))
    for term, value in pnl_attribution(record, batch).items():
        np.testing.assert_array_equal(shared[term], value, err_msg=term)
        np.testing.assert_array_equal(result.attribution["half delta"][term], value)


def test_a_re_marking_env_leaves_a_given_batch_without_observations_as_it_was() -> None:
    from hedgearena.envs.episode import build_episodes, has_observations

    config = make_config("ShortCall", cost=1e-3, permanent_impact=0.05)
    batch = build_episodes(config, 20, np.random.default_rng(5), observations=False)
    spot = batch.episode.spot.copy()
    env = VecHedgingEnv(num_envs=20, config=config)
    env.reset(options={"episodes": batch})
    for _ in range(3):
        obs = env.step_targets(np.full((20, 1), 80.0))[0]
    assert np.isfinite(obs).all()
    assert not np.array_equal(env.batch.episode.spot, spot)  # the env re-marked its own copy
    np.testing.assert_array_equal(batch.episode.spot, spot)
    assert not has_observations(batch)


def test_totals_only_hedgers_keep_their_totals_and_nothing_else(monkeypatch) -> None:
    """Same totals as a full run on every path (two blocks, so the scratch is reused and
    re-zeroed), no records over all paths, no attribution; unknown names are refused."""
    monkeypatch.setattr("hedgearena.baselines.arena.PATH_BLOCK", 600)
    config = make_config("ShortCall", cost=0.002)
    hedgers = [Delta(), Half(), Delta("delta again")]
    full = run_arena(config, hedgers, n_paths=1000, seed=3, progress=False)
    lean = run_arena(config, hedgers, n_paths=1000, seed=3, progress=False,
                     totals_only=["half delta", "delta again"])
    assert set(lean.records) == set(lean.attribution) == {"delta"}
    assert set(lean.totals_only) == {"half delta", "delta again"}
    for name in ("delta", "half delta", "delta again"):
        for key, values in full.records[name].totals.items():
            np.testing.assert_array_equal(lean.totals(name)[key], values, err_msg=key)
    np.testing.assert_array_equal(lean.records["delta"].hedge, full.records["delta"].hedge)
    with pytest.raises(ValueError, match=r"totals_only names hedgers that are not run: \['x'\]"):
        run_arena(config, hedgers, n_paths=10, progress=False, totals_only=["x"])


def test_attribution_stops_where_a_risk_limit_ended_the_episode() -> None:
    """Paths a drawdown limit stops early: the record keeps the last positions, but the P&L
    stops at the stop; the attribution's terms do too (the delta term is the direct sum
    ``sum_{s < end} (book_delta_s + h_s) dS_s``) and the residual stays as small as on full
    paths (it was ten times larger when the terms ran on to expiry)."""
    from hedgearena.baselines.delta import BlackScholesDelta

    config = make_config("ShortCall", risk_limits={"drawdown": 150.0, "action": "terminate"})
    result = run_arena(config, [BlackScholesDelta()], n_paths=4_000, seed=0, progress=False,
                       keep_batches=True)
    record, batch = result.records["delta"], result.batch
    end = record.totals["end_step"]
    early = end < config.n_steps
    assert 0.1 < early.mean() < 0.9
    live = np.arange(config.n_steps)[:, None] < end[None, :]
    d_spot = np.diff(batch.episode.spot, axis=0)
    direct = ((batch.features.book_delta.T[:-1] + record.hedge) * d_spot * live).sum(axis=0)
    terms = result.attribution["delta"]
    np.testing.assert_allclose(terms["delta"], direct, rtol=1e-12, atol=1e-9)
    residual = np.abs(terms["residual"])
    assert residual[early].mean() < 2.0 * residual[~early].mean()
    np.testing.assert_allclose(sum(terms.values()), record.totals["terminal_pnl"], atol=1e-8)


def test_a_hedger_with_another_realised_vol_halflife_sees_its_own_feature() -> None:
    """The one override that changes a feature: the hedger's observations equal those of a
    batch built from scratch with its half-life (and the others keep the base's)."""
    from hedgearena.baselines.arena import block_generator
    from hedgearena.envs.episode import build_episodes

    class Spy(Hedger):
        def __init__(self, name: str, halflife: float | None) -> None:
            self.name, self.seen = name, []
            self.env_overrides = {} if halflife is None else {"realised_vol_halflife": halflife}

        def positions(self, state, obs):  # type: ignore[no-untyped-def]
            self.seen.append(obs.copy())
            return np.zeros((len(obs), 1))

    config = make_config("ShortCall")
    short, base = Spy("short", 2.0), Spy("base", None)
    run_arena(config, [short, base], n_paths=300, seed=0, progress=False)
    for spy, halflife in ((short, 2.0), (base, config.realised_vol_halflife)):
        direct = build_episodes(config.replace(realised_vol_halflife=halflife), 300,
                                block_generator(0, 0), True)
        for step, obs in enumerate(spy.seen):
            np.testing.assert_array_equal(obs, direct.observations[step])
    assert not np.array_equal(short.seen[5], base.seen[5])
