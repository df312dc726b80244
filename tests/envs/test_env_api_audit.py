"""Audit of the envs' Gymnasium / stable-baselines3 API: time limits, shared episode batches."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

import hedgearena  # noqa: F401  (registers the ids)
from hedgearena.envs.episode import build_episodes
from hedgearena.envs.hedging_env import INFO_KEYS
from hedgearena.envs.sb3_adapter import make_sb3_vec_env
from hedgearena.envs.vector_env import VecHedgingEnv

ENV_ID = "hedgearena/ShortCall-v0"


def _same(a: Any, b: Any) -> None:
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float),
                               rtol=1e-9, atol=1e-9)


def _vanilla_time_limit() -> type:
    """Gymnasium's own ``TimeLimit`` (truncated also on a step that terminates at the limit).

    Importing rl_zoo3 (tests/agents/test_rl_zoo.py) replaces it everywhere in gymnasium with a
    subclass that truncates only episodes not otherwise over; the native env follows Gymnasium.
    """
    from gymnasium.wrappers import common

    return next(cls for cls in common.TimeLimit.__mro__ if cls.__module__ == common.__name__)


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
@pytest.mark.parametrize("limit", [3, 4])  # cuts the 4-step episodes; or ends with them
def test_make_vec_max_episode_steps_truncates_like_time_limit_on_the_single_env(
    mode: AutoresetMode, limit: int
) -> None:
    """Before: ``make_vec(..., vectorization_mode="vector_entry_point", max_episode_steps=k)``
    raised ValueError (unknown env keyword), though Gymnasium's ``make_vec`` passes it to vector
    entry points (and ``gym.make(..., max_episode_steps=k)`` works for the single env)."""
    kwargs = {"n_steps": 4, "action_mode": "trade"}
    native = gym.make_vec(ENV_ID, num_envs=1, vectorization_mode="vector_entry_point",
                          autoreset_mode=mode, max_episode_steps=limit, **kwargs)
    assert native.spec is not None
    assert native.spec.kwargs["max_episode_steps"] == limit
    sync = SyncVectorEnv([lambda: _vanilla_time_limit()(gym.make(ENV_ID, **kwargs), limit)],
                         autoreset_mode=mode)
    want, _ = sync.reset(seed=2)
    got, _ = native.reset(seed=2)
    _same(got, want)
    rng = np.random.default_rng(0)
    truncations = 0
    for _ in range(11):
        action = rng.uniform(-1, 1, (1, 1)).astype(np.float32)
        w_obs, w_rew, w_term, w_trunc, w_info = sync.step(action)
        g_obs, g_rew, g_term, g_trunc, g_info = native.step(action)
        _same(g_obs, w_obs)
        _same(g_rew, w_rew)
        np.testing.assert_array_equal(g_term, w_term)
        np.testing.assert_array_equal(g_trunc, w_trunc)
        truncations += int(g_trunc[0])
        for key in INFO_KEYS:
            if key != "termination_reason":
                _same(g_info[key], w_info[key])
        assert g_info["termination_reason"].tolist() == w_info["termination_reason"].tolist()
        assert ("totals" in g_info) == ("totals" in w_info)
        if mode == AutoresetMode.SAME_STEP and w_trunc[0]:
            _same(g_info["final_obs"][0], w_info["final_obs"][0])
            final = g_info["final_info"]
            assert ("totals" in final) == ("totals" in w_info["final_info"])
            assert final["_hedge"].tolist() == [True]
    assert truncations == (3 if limit == 3 else 2)


def test_sb3_adapter_reports_time_limits_like_dummy_vec_env_and_totals_only_of_ends() -> None:
    """A row cut by the time limit is ``TimeLimit.truncated`` (SB3 bootstraps it) with no
    episode totals; a row that terminates on the same step keeps its totals."""
    kwargs = {"n_steps": 4, "action_mode": "target", "max_episode_steps": 3,
              "risk_limits": {"delta": 0.6, "action": "terminate"}}
    adapter = make_sb3_vec_env(ENV_ID, num_envs=2, seed=0, **kwargs)
    adapter.reset()
    model = 0.5 / 1.5  # target about the model hedge (+0.5 N): within the delta limit
    for step in range(3):
        last = np.array([[model], [model if step < 2 else -1.0]], dtype=np.float32)
        _, _, dones, infos = adapter.step(last)
    assert dones.tolist() == [True, True]
    # row 1 goes short 1.5 N on the last step: the delta limit ends it (terminated)
    assert [info["TimeLimit.truncated"] for info in infos] == [True, False]
    assert infos[0]["hedge"] == {}  # cut by the time limit: no totals of an unfinished episode
    assert set(infos[1]["hedge"]) == {"pnl", "cost", "turnover", "trades", "terminal_pnl"}
    assert [info["episode"]["l"] for info in infos] == [3, 3]
    single = {key: value for key, value in kwargs.items() if key != "max_episode_steps"}
    reference = DummyVecEnv([lambda: Monitor(gym.make(ENV_ID, max_episode_steps=3, **single))])
    reference.seed(0)
    mine = make_sb3_vec_env(ENV_ID, num_envs=1, seed=0, **kwargs)
    np.testing.assert_allclose(mine.reset(), reference.reset(), rtol=1e-6)
    for _ in range(3):
        got = mine.step(np.array([[model]], dtype=np.float32))
        want = reference.step(np.array([[model]], dtype=np.float32))
        np.testing.assert_allclose(got[0], want[0], rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(got[2], want[2])
    assert got[3][0]["TimeLimit.truncated"] is want[3][0]["TimeLimit.truncated"] is True
    np.testing.assert_allclose(got[3][0]["terminal_observation"],
                               want[3][0]["terminal_observation"], rtol=1e-6, atol=1e-7)


def test_max_episode_steps_is_checked() -> None:
    with pytest.raises(ValueError, match="max_episode_steps must be None or an integer >= 1"):
        VecHedgingEnv(num_envs=2, preset="ShortCall", max_episode_steps=0)


def test_envs_reset_on_one_episode_batch_do_not_write_into_it_nor_into_each_other() -> None:
    """Before: the vector env wrote its hedge into the caller's ``options["episodes"]`` batch,
    so two envs on one batch (the arena's common random numbers) overwrote each other's
    returned observations (A's hedge entry read -0.75, B's, instead of its own +0.75) and the
    caller's batch (kept by the arena with ``keep_batches``) held the last env's positions."""
    a = VecHedgingEnv(num_envs=2, preset="ShortCall")
    b = VecHedgingEnv(num_envs=2, preset="ShortCall")
    batch = build_episodes(a.config, 2, np.random.default_rng(0))
    untouched = batch.observations.copy()
    a.reset(options={"episodes": batch})
    b.reset(options={"episodes": batch})
    obs_a, *_ = a.step(np.full((2, 1), 0.5))
    seen = obs_a.copy()
    obs_b, *_ = b.step(np.full((2, 1), -0.5))
    np.testing.assert_array_equal(obs_a, seen)
    np.testing.assert_allclose(obs_a[:, -1], 0.75)  # 0.5 of the 1.5 N target range
    np.testing.assert_allclose(obs_b[:, -1], -0.75)
    np.testing.assert_array_equal(batch.observations, untouched)


def test_same_step_final_observations_are_gymnasiums_object_array() -> None:
    """``final_obs`` is a ``(num_envs,)`` object array, as Gymnasium's own vector envs give it
    (``VectorEnv._add_info``): each ended row's last observation, None in the others (it was a
    float32 ``(num_envs, n_features)`` array with zeros there)."""
    env = VecHedgingEnv(num_envs=3, preset="ShortCall", n_steps=4, action_mode="trade",
                        autoreset_mode=AutoresetMode.SAME_STEP,
                        risk_limits={"delta": 0.6, "action": "terminate"})
    obs, _ = env.reset(seed=0)
    seen_partial = False
    for action in (0.9, 0.9, -0.9, 0.0, 0.9, 0.9, 0.0, 0.0):
        before = obs
        obs, _, term, trunc, info = env.step(np.array([[action], [0.0], [0.0]]))
        if "final_obs" not in info:
            continue
        done = term | trunc
        final = info["final_obs"]
        assert final.shape == (3,)
        assert final.dtype == object
        for i in range(3):
            assert (final[i] is None) == (not done[i])
            if done[i]:
                assert final[i].shape == before[i].shape
                assert final[i].dtype == np.float32
        seen_partial |= not done.all()
    assert seen_partial  # a row ended alone (its risk limit), the others ran on
