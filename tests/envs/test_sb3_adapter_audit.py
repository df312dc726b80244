"""Audit of the SB3 adapter against SB3's VecEnv contract and the native env's NEXT_STEP view."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.wrappers.vector import TransformReward
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecCheckNan, VecNormalize

import hedgearena  # noqa: F401  (registers the ids)
from hedgearena.envs.sb3_adapter import SB3VecEnv, make_sb3_vec_env

ENV_ID = "hedgearena/ShortCall-v0"


def native(n: int, mode: str, **kwargs: Any) -> Any:
    return gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point",
                        autoreset_mode=mode, **kwargs)


def rollout(adapter: SB3VecEnv, steps: int, seed: int = 0) -> list[Any]:
    """Everything the adapter hands SB3 over ``steps`` steps of random actions, copied."""
    rng = np.random.default_rng(seed)
    out: list[Any] = [adapter.reset().copy()]
    for _ in range(steps):
        actions = rng.uniform(-1, 1, (adapter.num_envs, 1)).astype(np.float32)
        obs, rewards, dones, infos = adapter.step(actions)
        out += [obs.copy(), rewards.copy(), dones.copy()]
        out += [info["terminal_observation"].copy() for info in infos if info]
    return out


def test_step_contract_dtypes_and_terminal_observation_against_next_step_mode() -> None:
    """The terminal observation is the true last one: the NEXT_STEP env's, to the bit."""
    adapter, reference = make_sb3_vec_env(ENV_ID, num_envs=5, seed=4), native(5, "next_step")
    first, _ = reference.reset(seed=4)
    obs = adapter.reset()
    assert isinstance(obs, np.ndarray)
    assert obs.dtype == np.float32
    assert obs.shape == (5, 12)
    np.testing.assert_array_equal(obs, first)
    rng = np.random.default_rng(1)
    total = np.zeros(5)
    for t in range(20):
        actions = rng.uniform(-1, 1, (5, 1)).astype(np.float32)
        want, want_r, terminated, _, _ = reference.step(actions)
        got, rewards, dones, infos = adapter.step(actions)
        total += want_r
        assert rewards.dtype == np.float32
        assert dones.dtype == bool
        assert isinstance(infos, list)
        assert len(infos) == 5
        assert all(isinstance(info, dict) for info in infos)
        np.testing.assert_allclose(rewards, want_r, rtol=1e-6)
        np.testing.assert_array_equal(dones, terminated)
        if t < 19:
            np.testing.assert_array_equal(got, want)
            assert infos == [{}] * 5
    assert dones.all()
    for i, info in enumerate(infos):
        np.testing.assert_array_equal(info["terminal_observation"], want[i])
        assert info["terminal_observation"].dtype == np.float32
        assert info["TimeLimit.truncated"] is False
        assert info["episode"]["l"] == 20
        assert info["episode"]["r"] == pytest.approx(total[i], rel=1e-12)
    np.testing.assert_array_equal(got, first)  # the new episodes' first observations


def test_same_seed_same_run_other_seed_other_run_no_nan() -> None:
    a = rollout(make_sb3_vec_env(ENV_ID, num_envs=3, seed=11), 45)
    b = rollout(make_sb3_vec_env(ENV_ID, num_envs=3, seed=11), 45)
    c = rollout(make_sb3_vec_env(ENV_ID, num_envs=3, seed=12), 45)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))
    assert all(np.isfinite(np.asarray(x, dtype=float)).all() for x in a)
    checked = VecCheckNan(make_sb3_vec_env(ENV_ID, num_envs=3, seed=1), raise_exception=True)
    checked.reset()
    for _ in range(25):
        checked.step(np.ones((3, 1), dtype=np.float32))


def test_returned_arrays_are_not_changed_by_later_steps() -> None:
    """SB3's rollout buffer stores ``_last_obs`` after the next step: it must not move."""
    adapter = make_sb3_vec_env(ENV_ID, num_envs=2, seed=0, observe_pnl=True)
    obs = adapter.reset()
    held = [(obs, obs.copy())]
    rng = np.random.default_rng(2)
    for _ in range(41):
        obs, rewards, _, infos = adapter.step(rng.uniform(-1, 1, (2, 1)).astype(np.float32))
        held += [(x, x.copy()) for x in (obs, rewards)]
        held += [(i["terminal_observation"], i["terminal_observation"].copy()) for i in infos if i]
    assert len(held) == 1 + 2 * 41 + 2 * 2
    for returned, copied in held:
        np.testing.assert_array_equal(returned, copied)


def test_seed_env_method_get_set_attr_env_is_wrapped() -> None:
    adapter = make_sb3_vec_env(ENV_ID, num_envs=3)
    assert adapter.seed(5) == [5, 6, 7]  # SB3's convention: seed + row (the first seeds all)
    first = adapter.reset()
    adapter.seed(5)
    np.testing.assert_array_equal(adapter.reset(), first)
    assert adapter.get_attr("num_envs") == [3, 3, 3]
    assert adapter.get_attr("num_envs", indices=1) == [3]
    assert adapter.get_attr("num_envs", indices=[0, 2]) == [3, 3]
    adapter.set_attr("curriculum_level", 2)  # an attribute of the user's own
    assert adapter.get_attr("curriculum_level") == [2] * 3
    scale = adapter.get_attr("reward_scale")
    with pytest.raises(ValueError, match=r"set_attr\('reward_scale'\) would overwrite .* reads "
                                         r"its settings when it is built"):
        adapter.set_attr("reward_scale", 2.0)  # it set the attribute, the rewards kept theirs
    assert adapter.get_attr("reward_scale") == scale
    assert adapter.env_is_wrapped(Monitor) == [True, True, True]  # its infos are Monitor's
    assert adapter.env_is_wrapped(Monitor, indices=[1]) == [True]
    assert adapter.env_method("reset", seed=5)[0][0].shape == (3, 12)
    normalised = VecNormalize(adapter)  # SB3's wrappers go on the adapter
    assert normalised.reset().shape == (3, 12)


def test_a_gymnasium_wrapper_is_refused_not_bypassed() -> None:
    """Before: the adapter stepped ``env.unwrapped`` and silently dropped the wrapper."""
    wrapped = TransformReward(native(2, "same_step"), lambda r: 1000.0 * r)
    with pytest.raises(TypeError, match="would bypass the wrapper TransformReward"):
        SB3VecEnv(wrapped)


def test_terminated_and_truncated_row_is_not_reported_as_a_time_limit() -> None:
    """SB3 bootstraps rows with ``TimeLimit.truncated``: not those that also terminated."""
    adapter = make_sb3_vec_env(ENV_ID, num_envs=2, seed=0)
    step = adapter.venv.step

    def truncate_at_expiry(actions: np.ndarray) -> Any:
        obs, rewards, terminated, _truncated, infos = step(actions)
        return obs, rewards, terminated, terminated & np.array([False, True]), infos

    adapter.venv.step = truncate_at_expiry  # type: ignore[method-assign]
    adapter.reset()
    for _ in range(20):
        _, _, dones, infos = adapter.step(np.zeros((2, 1), dtype=np.float32))
    assert dones.all()
    assert [info["TimeLimit.truncated"] for info in infos] == [False, False]


def test_rgb_array_rendering_through_sb3s_render() -> None:
    """Before: ``get_images`` gave None for every row and SB3's ``render`` crashed tiling them."""
    adapter = make_sb3_vec_env(ENV_ID, num_envs=4, seed=0, render_mode="rgb_array",
                               render_envs=2)
    adapter.reset()
    adapter.step(np.zeros((4, 1), dtype=np.float32))
    images = adapter.get_images()
    assert len(images) == 4
    assert images[2] is None
    assert images[3] is None
    assert images[0] is not None
    assert images[0].ndim == 3
    assert images[0].dtype == np.uint8
    picture = adapter.render()
    assert isinstance(picture, np.ndarray)
    assert picture.ndim == 3
    assert picture.shape[0] >= images[0].shape[0]
    assert make_sb3_vec_env(ENV_ID, num_envs=2, seed=0).get_images() == [None, None]
