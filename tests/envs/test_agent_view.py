"""The agent-view settings ``observe_pnl`` and ``reward_mode="terminal_mean_variance"``.

Both are off by default; when on, the single env and the one-path vector env stay identical,
the observation's ``pnl`` entry is the P&L so far, the rewards of an episode sum to the
mean-variance utility of its P&L, both env checkers pass and the arena scores such agents.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import hedgearena  # noqa: F401  (registers the ids)
from hedgearena.baselines.arena import ENV_OVERRIDES, run_arena
from hedgearena.baselines.delta import BlackScholesDelta
from hedgearena.envs.config import make_config
from hedgearena.envs.core import REWARD_MODES, CoreConfig, reward
from hedgearena.envs.episode import feature_names, observation_names
from hedgearena.envs.registered import ShortCallEnv
from hedgearena.envs.vector_env import VecHedgingEnv

VIEW = {"observe_pnl": True, "reward_mode": "terminal_mean_variance", "risk_aversion": 4.0,
        "pnl_reference": -0.7}


def test_defaults_leave_the_env_unchanged() -> None:
    config = make_config("ShortCall")
    assert config.observe_pnl is False
    assert config.pnl_reference == 0.0
    assert observation_names(config) == feature_names(False)
    env = gym.make("hedgearena/ShortCall-v0")
    assert env.observation_space.shape == (len(feature_names(False)),)
    assert "terminal_mean_variance" in REWARD_MODES
    assert {"observe_pnl", "pnl_reference"} <= set(ENV_OVERRIDES)


def test_the_manual_lists_the_pnl_entry_and_the_reward() -> None:
    manual = ShortCallEnv.__doc__ or ""
    for word in ("`pnl`", "observe_pnl", "terminal_mean_variance", "pnl_reference"):
        assert word in manual


def test_pnl_entry_is_the_pnl_so_far_over_the_reward_scale() -> None:
    env = gym.make("hedgearena/ShortCall-v0", observe_pnl=True, action_mode="band").unwrapped
    assert observation_names(env.config)[-1] == "pnl"
    assert env.observation_space.shape == (len(feature_names(False)) + 1,)
    obs, info = env.reset(seed=3)
    assert obs[-1] == 0.0
    wealth0 = info["wealth"]
    total, terminated = 0.0, False
    while not terminated:
        obs, _, terminated, _, info = env.step(np.array([-0.5], dtype=np.float32))
        total += info["pnl"]
        assert obs[-1] == pytest.approx(total / env.reward_scale, rel=1e-6, abs=1e-7)
        assert obs[-1] == pytest.approx((info["wealth"] - wealth0) / env.reward_scale,
                                        rel=1e-5, abs=1e-6)
    assert obs[-1] == pytest.approx(info["totals"]["terminal_pnl"] / env.reward_scale, rel=1e-6)


@pytest.mark.parametrize("kind", ["single", "vector"])
def test_terminal_mean_variance_rewards_sum_to_the_utility_of_the_episode_pnl(kind: str) -> None:
    """Sum of rewards = X - kappa/2 (X - m)^2, X the scaled episode P&L; x before the end."""
    kappa, m = VIEW["risk_aversion"], VIEW["pnl_reference"]
    env = VecHedgingEnv(num_envs=5, preset="ShortCall", **VIEW) if kind == "vector" else (
        gym.make("hedgearena/ShortCall-v0", **VIEW).unwrapped)
    n = 5 if kind == "vector" else 1
    env.reset(seed=1)
    rng = np.random.default_rng(0)
    rewards, steps = np.zeros(n), 0
    while True:
        actions = rng.uniform(-1, 1, size=(n, 1))
        if kind == "vector":
            _, r, terminated, _, info = env.step(actions)
            done, totals = bool(terminated.all()), info.get("totals")
        else:
            _, r, done, _, info = env.step(actions[0].astype(np.float32))
            totals = info.get("totals")
        if not done:
            np.testing.assert_allclose(r, np.asarray(info["pnl"]) / env.reward_scale, rtol=1e-12)
        rewards += r
        steps += 1
        if done:
            break
    assert steps == env.config.n_decisions
    x = np.asarray(totals["pnl"]) / env.reward_scale
    np.testing.assert_allclose(rewards, x - kappa / 2 * (x - m) ** 2, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(totals["pnl"], totals["terminal_pnl"], rtol=1e-9, atol=1e-9)


def test_reward_formula() -> None:
    config = CoreConfig(reward_mode="terminal_mean_variance", risk_aversion=2.0,
                        pnl_reference=0.5, reward_scale=10.0)
    assert reward(config, 3.0, 8.0, False) == pytest.approx(0.3)
    assert reward(config, 3.0, 8.0, True) == pytest.approx(0.3 - 0.09)  # X = 0.8, gap 0.3
    done = np.array([False, True])
    np.testing.assert_allclose(
        reward(config, np.array([3.0, 3.0]), np.array([8.0, 8.0]), done), [0.3, 0.21]
    )


@pytest.mark.parametrize("env_id", ["hedgearena/ShortCall-v0", "hedgearena/OptionBook-v0"])
def test_gymnasium_and_sb3_check_env_with_the_agent_view(env_id: str) -> None:
    gym_check_env(gym.make(env_id, **VIEW).unwrapped, skip_render_check=True)
    sb3_check_env(gym.make(env_id, **VIEW), warn=True)


def test_same_step_autoreset_reports_the_final_pnl_and_restarts_at_zero() -> None:
    env = VecHedgingEnv(num_envs=4, preset="ShortCall", autoreset_mode=AutoresetMode.SAME_STEP,
                        **VIEW)
    env.reset(seed=0)
    for _ in range(env.config.n_decisions - 1):
        env.step(np.full((4, 1), 0.3))
    obs, _, terminated, _, info = env.step(np.full((4, 1), 0.3))
    assert terminated.all()
    np.testing.assert_allclose(
        np.stack(info["final_obs"])[:, -1], info["final_info"]["totals"]["pnl"] / env.reward_scale,
        rtol=1e-6,
    )
    np.testing.assert_array_equal(obs[:, -1], 0.0)


def test_rows_out_of_phase_keep_their_own_pnl() -> None:
    """Rows reset at different steps (white box: marked done) each observe their own P&L."""
    env = VecHedgingEnv(num_envs=3, preset="ShortCall", **VIEW)
    env.reset(seed=0)
    rng = np.random.default_rng(1)
    sums = np.zeros(3)
    for i in range(50):
        if i == 4:
            env._done[0] = True  # reset on the next step, mid-episode
        resetting = env._done.copy()
        obs, _, terminated, _, info = env.step(rng.uniform(-1, 1, (3, 1)))
        sums = np.where(resetting, 0.0, sums + info["pnl"])
        np.testing.assert_allclose(obs[:, -1], sums / env.reward_scale, rtol=1e-6, atol=1e-7)
        sums[terminated] = 0.0
    assert len(set(env._t.tolist())) > 1  # still out of phase


def test_bad_values_fail_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="observe_pnl"):
        make_config("ShortCall", observe_pnl="yes")
    with pytest.raises(ValueError, match="pnl_reference"):
        make_config("ShortCall", pnl_reference=float("nan"))
    with pytest.raises(ValueError, match="reward_mode"):
        make_config("ShortCall", reward_mode="terminal_variance")


class _Reader(BlackScholesDelta):
    """Delta, reading the pnl entry of its observations (as an agent with the view would)."""

    def __init__(self) -> None:
        super().__init__()
        self.env_overrides = {"observe_pnl": True}
        self.name = "reader"
        self.seen: list[np.ndarray] = []

    def positions(self, state, obs):  # type: ignore[no-untyped-def]
        self.seen.append(np.array(obs[:, -1]))
        return super().positions(state, obs)


def test_the_arena_gives_the_pnl_entry_to_hedgers_that_ask_for_it() -> None:
    config = make_config("ShortCall")
    reader = _Reader()
    result = run_arena(config, [BlackScholesDelta(), reader], n_paths=64, seed=0, progress=False)
    assert len(reader.seen) == config.n_decisions
    np.testing.assert_array_equal(reader.seen[0], 0.0)
    assert np.abs(reader.seen[-1]).max() > 0
    np.testing.assert_allclose(  # the same decisions as delta: the same P&L
        result.records["reader"].totals["terminal_pnl"],
        result.records["delta"].totals["terminal_pnl"], rtol=1e-12,
    )
