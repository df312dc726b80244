"""The Gymnasium envs: API checks, single/vector equivalence, autoreset, fuzzing, physics."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.vector import AutoresetMode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import hedgearena  # noqa: F401  (registers the ids)
from hedgearena.envs.black_scholes import black_scholes_vega
from hedgearena.envs.hedging_env import INFO_KEYS
from hedgearena.envs.registered import ENV_IDS
from hedgearena.envs.vector_env import VecHedgingEnv

IDS = sorted(ENV_IDS)


@pytest.mark.parametrize("env_id", IDS)
def test_gymnasium_and_sb3_check_env(env_id: str) -> None:
    env = gym.make(env_id)
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(gym.make(env_id), warn=True)


@pytest.mark.parametrize("env_id", IDS)
def test_make_vec_gives_native_vector_env(env_id: str) -> None:
    venv = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point")
    assert isinstance(venv.unwrapped, VecHedgingEnv)
    obs, info = venv.reset(seed=0)
    assert obs.shape == (3, *venv.single_observation_space.shape)
    assert obs.dtype == np.float32
    assert set(INFO_KEYS) <= set(info)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {
            "action_mode": "band",
            "rebalance_every": 2,
            "market_kwargs": {"sigma": 0.3, "rate": 0.02},
        },
        {"hedge_option": True, "action_mode": "fraction", "initial_hedge": "delta"},
        {"reward_mode": "mean_variance", "risk_aversion": 0.5, "lot_size": 10.0},
        # the agent view: the P&L so far observed, the terminal mean-variance reward
        {"observe_pnl": True, "reward_mode": "terminal_mean_variance", "risk_aversion": 4.0,
         "pnl_reference": -0.7, "action_mode": "band"},
        {"observe_pnl": True, "reward_mode": "terminal_mean_variance", "risk_aversion": 4.0,
         "hedge_option": True, "action_mode": "fraction", "initial_hedge": "delta"},
    ],
)
def test_vector_env_of_one_reproduces_single_env(kwargs: dict) -> None:
    """Same seed and actions: identical observations, rewards, flags and infos, step by step."""
    single = gym.make("hedgearena/ShortCall-v0", **kwargs).unwrapped
    vector = VecHedgingEnv(num_envs=1, preset="ShortCall", **kwargs)
    assert single.observation_space == vector.single_observation_space
    rng = np.random.default_rng(5)
    o1, _ = single.reset(seed=11)
    o2, _ = vector.reset(seed=11)
    for _ in range(3):
        np.testing.assert_allclose(o1, o2[0], rtol=1e-6, atol=1e-7)
        done = False
        while not done:
            action = rng.uniform(-1.2, 1.2, size=single.action_space.shape).astype(np.float32)
            o1, r1, t1, tr1, i1 = single.step(action)
            o2, r2, t2, tr2, i2 = vector.step(action[None])
            np.testing.assert_allclose(o1, o2[0], rtol=1e-6, atol=1e-7)
            assert r1 == pytest.approx(r2[0], rel=1e-9, abs=1e-12)
            assert (t1, tr1) == (t2[0], tr2[0])
            for key in INFO_KEYS:
                assert i1[key] == pytest.approx(i2[key][0], rel=1e-9, abs=1e-9), key
            done = t1
        assert i1["totals"]["terminal_pnl"] == pytest.approx(
            i2["totals"]["terminal_pnl"][0], rel=1e-9
        )
        o1, _ = single.reset()
        o2, *_ = vector.step(np.zeros((1, single.action_space.shape[0])))  # NEXT_STEP reset


def test_determinism_by_seed() -> None:
    def run(seed: int) -> list[float]:
        env = gym.make("hedgearena/OptionBook-v0")
        env.reset(seed=seed)
        out = []
        for i in range(60):
            _, r, term, _, _ = env.step(np.array([math.sin(i)], dtype=np.float32))
            out.append(r)
            if term:
                env.reset()
        return out

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_next_step_autoreset() -> None:
    env = VecHedgingEnv(num_envs=4, preset="ShortCall", autoreset_mode="next_step")
    env.reset(seed=0)
    zeros = np.zeros((4, 1))
    for _ in range(19):
        _, _, term, _, _ = env.step(zeros)
        assert not term.any()
    obs, _, term, _, info = env.step(zeros)
    assert term.all()
    assert "totals" in info
    assert info["_totals"].all()
    assert np.all(info["step"] == 20)
    obs, rewards, term, _, info = env.step(np.ones((4, 1)))  # reset step: action ignored
    assert not term.any()
    assert np.all(rewards == 0)
    assert np.all(info["step"] == 0)
    assert np.all(info["hedge"] == 0)
    np.testing.assert_allclose(obs[:, 0], 1.0)  # time_left


def test_same_step_autoreset() -> None:
    env = VecHedgingEnv(num_envs=4, preset="ShortCall", autoreset_mode=AutoresetMode.SAME_STEP)
    env.reset(seed=0)
    for _ in range(19):
        env.step(np.full((4, 1), 0.3))
    obs, _, term, _, info = env.step(np.full((4, 1), 0.3))
    assert term.all()
    assert info["_final_obs"].all()
    assert info["final_obs"].shape == (4,)  # one observation a row, as Gymnasium's
    assert info["final_obs"].dtype == object
    np.testing.assert_allclose(np.stack(info["final_obs"])[:, 0], 0.0)  # the ended episode's last
    np.testing.assert_allclose(obs[:, 0], 1.0)  # already the new episode's first obs
    assert "totals" in info["final_info"]
    assert np.all(info["step"] == 0)


def test_nan_and_wrong_shape_actions_raise_clear_errors() -> None:
    env = gym.make("hedgearena/ShortCall-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([np.nan], dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.array([0.1, 0.2], dtype=np.float32))
    venv = VecHedgingEnv(num_envs=2, preset="ShortCall")
    venv.reset(seed=0)
    with pytest.raises(ValueError, match="finite"):
        venv.step(np.array([[0.0], [np.inf]]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    preset=st.sampled_from(["ShortCall", "OptionBook"]),
    action_mode=st.sampled_from(["target", "trade", "fraction", "band"]),
    reward_mode=st.sampled_from(["pnl", "mean_variance", "terminal"]),
    sigma=st.floats(0.01, 1.5),
    cost=st.floats(0.0, 0.05),
    hedge_option=st.booleans(),
    seed=st.integers(0, 2**16),
    actions=st.lists(st.floats(-3.0, 3.0, allow_nan=False), min_size=1, max_size=8),
)
def test_fuzz_no_nan_leaves_the_env(
    preset, action_mode, reward_mode, sigma, cost, hedge_option, seed, actions
):
    """Random configs and (out-of-range) actions: observations, rewards and infos stay finite."""
    market_kwargs = (
        {"sigma": sigma} if preset == "ShortCall" else {"v0": sigma**2, "theta": sigma**2}
    )
    env = VecHedgingEnv(
        num_envs=3,
        preset=preset,
        action_mode=action_mode,
        reward_mode=reward_mode,
        cost=cost,
        risk_aversion=1.0,
        hedge_option={"expiry_steps": 200} if hedge_option else None,
        market_kwargs=market_kwargs,
        n_steps=20,
    )
    obs, _ = env.reset(seed=seed)
    assert np.isfinite(obs).all()
    dim = env.config.action_dim
    for i in range(25):
        a = np.full((3, dim), actions[i % len(actions)])
        obs, rewards, _, _, infos = env.step(a)
        assert np.isfinite(obs).all()
        assert np.isfinite(rewards).all()
        assert all(np.isfinite(infos[k]).all() for k in INFO_KEYS if k != "termination_reason")


def test_derman_kamal_hedging_error() -> None:
    """Zero-cost delta hedge of an ATM call rebalanced N = 252 times over a year.

    Derman and Kamal (1999), "When you cannot hedge continuously: the corrections of
    Black-Scholes", Risk 12(1): std(P&L) ~= sqrt(pi/4) * vega * sigma / sqrt(N). With 20,000
    paths the standard error of the sample std is std / sqrt(2n) = 0.5%, so the 5% tolerance
    is 10 standard errors wide around the asymptotic formula.
    """
    n_paths, n_steps, sigma = 20_000, 252, 0.2
    env = VecHedgingEnv(
        num_envs=n_paths,
        block=n_paths,
        market="gbm",
        market_kwargs={"mu": 0.0, "sigma": sigma},
        book={
            "options": [
                {"moneyness": 1.0, "expiry_steps": n_steps, "contracts": -1.0, "multiplier": 1.0}
            ]
        },
        cost=0.0,
        days_per_year=252.0,
        action_mode="fraction",
        initial_hedge="delta",
    )
    env.reset(seed=2024)
    ones = np.ones((n_paths, 1))
    for _ in range(n_steps):
        _, _, term, _, infos = env.step(ones)  # fraction 1 = all the way to the model delta
    assert term.all()
    pnl = infos["totals"]["terminal_pnl"]
    vega = float(black_scholes_vega(100.0, 100.0, 1.0, sigma))
    expected = math.sqrt(math.pi / 4) * vega * sigma / math.sqrt(n_steps)
    assert np.std(pnl) == pytest.approx(expected, rel=0.05)
    assert abs(np.mean(pnl)) < 4 * np.std(pnl) / math.sqrt(n_paths)  # a fair hedge: no drift


def test_rows_out_of_phase_keep_their_own_accounts() -> None:
    """Rows that reset at different steps (the vector env's per-row paths) book their P&L right.

    Two rows are reset early (white box: marked done), so from then on the rows sit at different
    steps; every finished episode's summed P&L must still equal its wealth change, and the step,
    the time-left entry and the reset rows' zero rewards must be each row's own.
    """
    n, n_steps = 6, 20
    env = VecHedgingEnv(num_envs=n, preset="ShortCall", hedge_option=True, lot_size=1.0)
    env.reset(seed=4)
    rng = np.random.default_rng(4)
    sums, finished, steps = np.zeros(n), 0, np.zeros(n, dtype=int)
    for i in range(70):
        if i == 3:
            env._done[[0, 2]] = True  # reset on the next step, mid-episode
            steps[[0, 2]] = -1
            sums[[0, 2]] = 0.0
        obs, rewards, terminated, _, infos = env.step(rng.uniform(-1, 1, (n, 2)))
        steps = np.where(steps < 0, 0, steps + 1)
        np.testing.assert_array_equal(infos["step"], steps)
        np.testing.assert_allclose(obs[:, 0], (n_steps - steps) / n_steps, rtol=1e-6)
        assert np.all(rewards[steps == 0] == 0.0)
        sums += infos["pnl"]
        if terminated.any():
            rows = np.flatnonzero(terminated)
            np.testing.assert_allclose(
                sums[rows], infos["totals"]["terminal_pnl"][rows], rtol=1e-9, atol=1e-6
            )
            finished += len(rows)
            sums[rows] = 0.0
            steps[rows] = -1
    assert finished >= 2 * n
    assert len(set(steps.tolist())) > 1  # still out of phase


@pytest.mark.parametrize("kwargs", [{}, {"permanent_impact": 1e-3}], ids=["views", "copies"])
def test_vector_state_is_a_read_only_snapshot(kwargs: dict) -> None:
    """``env.state`` cannot be written, and keeps its values when the env steps on.

    Without permanent impact its arrays are views of the batch and of the positions (which a
    step replaces, never writes); with it the batch is re-marked in place, so they are copies.
    """
    env = VecHedgingEnv(num_envs=8, preset="ShortCall", action_mode="target", **kwargs)
    env.reset(seed=0)
    env.step(np.full((8, 1), 0.3))
    state = env.state
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    before = {k: v.copy() for k, v in arrays.items()}
    assert {"spot", "hedge", "cash", "model_hedge", "book_gamma", "tau"} <= set(arrays)
    with pytest.raises(ValueError, match="read-only"):
        state["hedge"][0] = 1.0
    for _ in range(3):
        env.step(np.full((8, 1), -0.5))
    for key, value in arrays.items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)
    assert not np.array_equal(env.state["hedge"], before["hedge"])  # the env did move on


def test_market_kwargs_update_the_presets_market_and_another_market_starts_afresh() -> None:
    """A partial ``market_kwargs`` keeps the preset's other keywords (its drift, its rate)."""
    from hedgearena.envs.config import make_config
    from hedgearena.envs.heston import Heston

    insurance = gym.make("hedgearena/PortfolioInsurance-v0", market_kwargs={"sigma": 0.3})
    market = insurance.unwrapped.config.market
    assert (market.mu, market.sigma, market.rate) == (0.05, 0.3, 0.02)
    vec = gym.make_vec("hedgearena/ShortCall-v0", num_envs=2,
                       vectorization_mode="vector_entry_point", market_kwargs={"spot0": 50.0})
    assert (vec.unwrapped.config.market.mu, vec.unwrapped.config.market.spot0) == (0.05, 50.0)
    assert make_config("ShortCall", market="heston").market == Heston()
    assert make_config("ShortCall", market="gbm", market_kwargs={"mu": 0.0}).market.sigma == 0.2


@pytest.mark.parametrize("env_id", ["hedgearena/ShortCall-v0", "hedgearena/HistoricalReplay-v0"])
def test_target_mode_reaches_the_models_position_in_the_hedging_option(env_id: str) -> None:
    """The option's target range is option_position_limit notionals, the model's cap too."""
    env = gym.make_vec(env_id, num_envs=64, vectorization_mode="vector_entry_point",
                       hedge_option=True)
    env.reset(seed=4)
    core = env.unwrapped
    limit = core.config.option_position_limit * core.config.book.notional
    assert limit == 10.0 * 100.0
    model = core.batch.episode.model_option
    assert np.abs(model).max() <= limit
    assert np.abs(model).max() > 1.5 * 100.0  # beyond the underlying's range of +-1.5 N
    env.step(np.tile([0.0, 1.0], (64, 1)))
    np.testing.assert_allclose(core.state["option_position"], limit)
    narrow = gym.make("hedgearena/ShortCall-v0", hedge_option=True, option_position_limit=2.0)
    narrow.reset(seed=4)
    narrow.step(np.array([0.0, -1.0], dtype=np.float32))
    assert narrow.unwrapped.state["option_position"] == -200.0


def test_same_step_final_info_is_masked_to_the_rows_that_ended() -> None:
    """As Gymnasium's SyncVectorEnv: inside ``final_info`` the ``_key`` masks are True only for
    the rows that ended (a limit stops the even rows at the first step; the odd ones go on)."""
    env = VecHedgingEnv(num_envs=6, preset="ShortCall", autoreset_mode=AutoresetMode.SAME_STEP,
                        risk_limits={"delta": 0.5, "action": "terminate"})
    env.reset(seed=0)
    rows = np.arange(6)
    targets = np.where(rows % 2 == 0, 150.0, 50.0)[:, None]
    _, _, terminated, _, infos = env.step_targets(targets)
    np.testing.assert_array_equal(terminated, rows % 2 == 0)
    final = infos["final_info"]
    for key in ("_pnl", "_cost", "_totals"):
        np.testing.assert_array_equal(final[key], terminated, err_msg=key)
    np.testing.assert_array_equal(infos["_final_info"], terminated)


def test_gymnasiums_episode_statistics_wrap_the_envs() -> None:
    """The totals are ``info["totals"]``: ``"episode"`` is the wrappers' own key (it clashed:
    RecordEpisodeStatistics asserted on the last step, the vector one raised)."""
    from gymnasium.wrappers import RecordEpisodeStatistics
    from gymnasium.wrappers.vector import RecordEpisodeStatistics as VectorStatistics

    env = RecordEpisodeStatistics(gym.make("hedgearena/ShortCall-v0"))
    env.reset(seed=0)
    terminated = False
    while not terminated:
        _, _, terminated, _, info = env.step(np.zeros(1, np.float32))
    assert info["episode"]["l"] == 20
    assert info["totals"]["pnl"] == pytest.approx(info["episode"]["r"] * info["reward_scale"])
    venv = VectorStatistics(gym.make_vec("hedgearena/ShortCall-v0", num_envs=2,
                                         vectorization_mode="vector_entry_point"))
    venv.reset(seed=0)
    for _ in range(21):  # NEXT_STEP: the episodes end on step 20, reset on 21
        venv.step(np.zeros((2, 1), np.float32))
    assert list(venv.length_queue) == [20, 20]  # (it raised on the key clash)


def test_same_step_infos_keep_their_masks_when_rows_end() -> None:
    env = VecHedgingEnv(num_envs=3, preset="ShortCall", autoreset_mode="same_step")
    env.reset(seed=0)
    for _ in range(20):
        _, _, terminated, _, infos = env.step(np.zeros((3, 1)))
    assert terminated.all()
    for key in INFO_KEYS:
        assert infos["_" + key].all(), key


def test_a_reset_hedge_beyond_float32_is_refused() -> None:
    env = gym.make("hedgearena/ShortCall-v0")
    with pytest.raises(ValueError, match=r"options\['hedge'\] must be a finite number of units "
                                         r"within \+-1e\+15"):
        env.reset(seed=0, options={"hedge": 1e41})


@pytest.mark.parametrize("action", [np.array([True]), [True], b"\x01", "a", ["0.5"]])
def test_booleans_strings_and_bytes_are_not_actions(action: object) -> None:
    """np.array([True]) was a full position, b"\\x01" the action 1.0: refused now."""
    env = gym.make("hedgearena/ShortCall-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action must be an array of numbers of shape"):
        env.step(action)
    venv = VecHedgingEnv(num_envs=1, preset="ShortCall")
    venv.reset(seed=0)
    with pytest.raises(ValueError, match="action must be an array of numbers of shape"):
        venv.step(np.array([[True]]))
