"""The SB3 adapter: the native vector env as a stable-baselines3 VecEnv.

With one row it must be what SB3 builds itself from the single env (``DummyVecEnv`` of a
``Monitor``-wrapped env): the same observations, rewards, dones, ``terminal_observation``,
``TimeLimit.truncated`` and ``episode`` statistics, step by step over whole episodes.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

import hedgearena  # noqa: F401  (registers the ids)
from hedgearena.envs.sb3_adapter import make_sb3_vec_env

ENV_ID = "hedgearena/ShortCall-v0"


def test_one_row_steps_like_sb3s_own_vec_env_of_the_single_env() -> None:
    adapter = make_sb3_vec_env(ENV_ID, num_envs=1, seed=7)
    reference = DummyVecEnv([lambda: Monitor(gym.make(ENV_ID))])
    reference.seed(7)
    np.testing.assert_allclose(adapter.reset(), reference.reset(), rtol=1e-6)
    actions = np.random.default_rng(0).uniform(-1, 1, (45, 1, 1)).astype(np.float32)
    episodes = 0
    for action in actions:
        got, want = adapter.step(action), reference.step(action)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-6, atol=1e-7)  # observations
        np.testing.assert_allclose(got[1], want[1], rtol=1e-6, atol=1e-9)  # rewards
        np.testing.assert_array_equal(got[2], want[2])  # dones
        if want[2][0]:
            episodes += 1
            mine, theirs = got[3][0], want[3][0]
            np.testing.assert_allclose(mine["terminal_observation"],
                                       theirs["terminal_observation"], rtol=1e-6, atol=1e-7)
            assert mine["TimeLimit.truncated"] == theirs["TimeLimit.truncated"]
            assert mine["episode"]["l"] == theirs["episode"]["l"]
            assert mine["episode"]["r"] == pytest.approx(theirs["episode"]["r"], rel=1e-6)
    assert episodes == 2  # two 20-step episodes in 45 steps


def test_reset_options_reach_the_native_env_and_subsets_of_rows_are_refused() -> None:
    adapter = make_sb3_vec_env(ENV_ID, num_envs=4, seed=0)
    adapter.set_options({"hedge": 50.0})
    adapter.reset()
    np.testing.assert_array_equal(adapter.venv.state["hedge"], 50.0)
    with pytest.raises(ValueError, match="whole batch of 4 rows; indices must be None"):
        adapter.env_method("reset", indices=[0])
    with pytest.raises(ValueError, match="whole batch"):
        adapter.set_attr("reward_scale", 1.0, indices=[2])
    assert len(adapter.env_method("reset", indices=[0, 1, 2, 3])) == 4
    assert adapter.get_attr("num_envs") == [4, 4, 4, 4]


def test_the_module_prefixed_id_makes_envs_in_fresh_processes() -> None:
    """The README's recipe for process-based vector envs: a forkserver child has not imported
    hedgearena, so ``hedgearena/ShortCall-v0`` is unknown there; ``hedgearena:`` before the id
    makes Gymnasium import it first. Same paths as in-process envs of the same seeds."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    remote = make_vec_env("hedgearena:hedgearena/ShortCall-v0", n_envs=2, seed=3,
                          vec_env_cls=SubprocVecEnv, vec_env_kwargs={"start_method": "forkserver"})
    local = make_vec_env("hedgearena/ShortCall-v0", n_envs=2, seed=3)
    try:
        np.testing.assert_array_equal(remote.reset(), local.reset())
        actions = np.zeros((2, 1), np.float32)
        for _ in range(3):  # DummyVecEnv keeps rewards in float32, SubprocVecEnv in float64
            np.testing.assert_allclose(remote.step(actions)[1], local.step(actions)[1],
                                       rtol=1e-6)
    finally:
        remote.close()
