"""Third audit of the envs' inputs: settings whose huge values overflowed the observations or the
rewards into inf or NaN, sizes that ended in numpy's MemoryError, and raw errors of secondary
entry points (``block``, ``EnvConfig.replace``, ``render_mode="human"``, ``observations``)."""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import hedgearena  # noqa: F401  (registers the ids)
from hedgearena.envs import memory
from hedgearena.envs.config import MIN_REWARD_SCALE, make_config
from hedgearena.envs.core import MAX_LIMIT, MAX_PNL_REFERENCE, MAX_RISK_AVERSION
from hedgearena.envs.hedging_env import MAX_POSITION
from hedgearena.envs.registered import ENV_IDS
from hedgearena.envs.vector_env import VecHedgingEnv

ID = "hedgearena/ShortCall-v0"


def _vec(n: int = 1, **kwargs: Any) -> VecHedgingEnv:
    return VecHedgingEnv(num_envs=n, preset="ShortCall", **kwargs)


def _assert_finite_episode(env: VecHedgingEnv, action: float) -> None:
    """Run one episode at a constant action: every observation and reward finite."""
    obs, _ = env.reset(seed=0)
    assert np.isfinite(obs).all()
    actions = np.full((env.num_envs, env.config.action_dim), action)
    terminated = np.zeros(env.num_envs, dtype=bool)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "overflow encountered in cast" too
        while not terminated.all():
            obs, rewards, terminated, _, _ = env.step(actions)
            assert np.isfinite(obs).all()
            assert np.isfinite(rewards).all()


# ---------------------------------------------------------------- #6: settings that overflowed
OVERFLOWING = [
    # inf in the observation from reset on
    (dict(position_limit=1e100), r"position_limit must be <= 1e\+09 notionals .*float32"),
    (dict(hedge_option=True, option_position_limit=1e100),
     r"option_position_limit must be <= 1e\+09 notionals"),
    # NaN reward at step 0
    (dict(action_mode="trade", trade_limit=1e308), r"trade_limit must be <= 1e\+09 notionals"),
    (dict(action_mode="band", band_limit=1e308), r"band_limit must be <= 1e\+09 notionals"),
    # every reward NaN (0 * inf before the last decision)
    (dict(reward_mode="terminal_mean_variance", risk_aversion=1.0, pnl_reference=1e160),
     r"pnl_reference must be <= 1e\+12 in absolute value .*terminal_mean_variance"),
    (dict(reward_mode="terminal_mean_variance", risk_aversion=1.0, pnl_reference=-1e160),
     r"pnl_reference must be <= 1e\+12 in absolute value"),
    (dict(reward_mode="mean_variance", risk_aversion=1e300),
     r"risk_aversion must be <= 1e\+15 \(larger values overflow the mean-variance rewards\)"),
    # inf, then NaN rewards
    (dict(reward_scale=1e-320), r"reward_scale must be >= 1e-09 \(currency per unit of reward"),
    # the book's delta in notionals overflowed the float32 observation
    (dict(book={"options": [{}], "stock": 1e300}),
     r"the book's stock must be within \+-1e\+09 notionals \(\|stock\| <= 1e\+11 units for this "
     r"book's notional of 100; .*\), got 1e\+300"),
]


@pytest.mark.parametrize(("kwargs", "message"), OVERFLOWING)
def test_settings_that_overflowed_the_observations_or_rewards_are_refused_with_the_bound(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        gym.make(ID, **kwargs)
    with pytest.raises(ValueError, match=message):
        _vec(2, **kwargs)


EDGES = [
    (dict(position_limit=MAX_LIMIT), 1.0),
    (dict(hedge_option=True, option_position_limit=MAX_LIMIT), -1.0),
    (dict(action_mode="trade", trade_limit=MAX_LIMIT), 1.0),
    (dict(action_mode="trade", trade_limit=MAX_LIMIT), -1.0),
    (dict(action_mode="band", band_limit=MAX_LIMIT), 1.0),
    (dict(reward_mode="terminal_mean_variance", risk_aversion=MAX_RISK_AVERSION,
          pnl_reference=-MAX_PNL_REFERENCE, observe_pnl=True), 1.0),
    (dict(reward_mode="mean_variance", risk_aversion=MAX_RISK_AVERSION, position_limit=1e6), 1.0),
    (dict(reward_scale=MIN_REWARD_SCALE, observe_pnl=True, position_limit=1e6), 1.0),
    (dict(book={"options": [{}], "stock": MAX_LIMIT * 100.0}, observe_pnl=True), -1.0),
]


@pytest.mark.parametrize(("kwargs", "action"), EDGES)
def test_every_setting_at_its_bound_leaves_finite_observations_and_rewards(
    kwargs: dict[str, Any], action: float
) -> None:
    """The bounds are where the refusal starts: a setting at its bound runs whole episodes
    with finite observations and rewards (no numpy overflow warning), 10 times it is refused."""
    _assert_finite_episode(_vec(3, **kwargs), action)
    name, value = next((k, v) for k, v in kwargs.items() if k in {
        "position_limit", "option_position_limit", "trade_limit", "band_limit", "pnl_reference",
        "risk_aversion", "reward_scale", "book"})
    if name == "book":
        beyond: Any = {**value, "stock": value["stock"] * 10}
    else:
        beyond = value / 10 if name == "reward_scale" else value * 10
    with pytest.raises(ValueError, match="must be"):
        _vec(1, **{**kwargs, name: beyond})


def test_the_bounds_add_a_message_of_their_own_and_keep_the_others() -> None:
    """Past a bound the message states the bound; non-numbers and values <= 0 read as before."""
    for kwargs, message in [
        (dict(position_limit=2e9),
         r"position_limit must be <= 1e\+09 notionals \(far past any book.*\), got 2000000000.0"),
        (dict(position_limit="1"), r"position_limit must be a finite number > 0, got '1'"),
        (dict(risk_aversion=-1.0), r"risk_aversion must be a finite number >= 0, got -1.0"),
        (dict(pnl_reference=float("nan")), r"pnl_reference must be a finite number \(episode"),
        (dict(reward_scale=0.0), r"reward_scale must be > 0 or None, got 0.0"),
    ]:
        with pytest.raises(ValueError, match=message):
            make_config("ShortCall", **kwargs)


# ---------------------------------------------------------- #6: step_targets beyond the cap
def test_step_targets_beyond_the_reset_cap_are_refused_not_turned_into_inf() -> None:
    """1e300 units went into the observation as inf; the reset's cap on ``options["hedge"]``
    (1e15 units) now holds for the targets too. At the cap the observations stay finite."""
    env = _vec(3)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"targets must be positions within \+-1e\+15 units "
                                         r"\(.*float32.*\), got \[1e\+300\]"):
        env.step_targets(np.array([[1e300], [1.0], [2.0]]))
    with pytest.raises(ValueError, match=r"targets must be finite positions"):
        env.step_targets(np.array([[np.nan], [1.0], [2.0]]))
    obs, rewards, *_ = env.step_targets(np.array([[MAX_POSITION], [-MAX_POSITION], [2.0]]))
    assert np.isfinite(obs).all()
    assert np.isfinite(rewards).all()
    with pytest.raises(ValueError, match=r"got \[-2000000000000000.0\]"):
        env.step_targets(np.array([[1.0], [-2 * MAX_POSITION], [2.0]]))


def test_step_targets_checks_the_hedging_options_column_too() -> None:
    env = _vec(2, hedge_option=True)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"targets must be positions within .*got \[1e\+200\]"):
        env.step_targets(np.array([[0.0, 1e200], [0.0, 0.0]]))


# ---------------------------------------------------------------- #7: sizes beyond the memory
def test_n_steps_beyond_the_memory_is_refused_before_anything_is_allocated() -> None:
    """``n_steps=10**9`` raised numpy's MemoryError at the first reset (1.86 TiB). Not even one
    path fits, so the message leads with n_steps (the arena's probe env of 2 paths named its
    ``num_envs=2``, a setting the user never gave)."""
    with pytest.raises(ValueError, match=r"^n_steps=1,000,000,000 market steps are too many for "
                                         r"this machine: one path would take at least 119.2 GiB "
                                         r"\(128 bytes a step\), more than half its [\d,.]+ GiB of "
                                         r"memory: give fewer n_steps$"):
        gym.make(ID, n_steps=10**9)


def test_num_envs_beyond_the_memory_is_refused_naming_it() -> None:
    """``num_envs=10**9`` raised numpy's MemoryError (44.7 GiB) inside the constructor."""
    with pytest.raises(ValueError, match=r"num_envs=1,000,000,000 paths of n_steps=20 market "
                                         r"steps would take at least [\d,.]+ GiB .* give fewer "
                                         r"paths or steps \(about [\d,]+ paths"):
        gym.make_vec(ID, num_envs=10**9, vectorization_mode="vector_entry_point")


def test_the_memory_bound_counts_paths_and_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Against a machine of 1 MiB: 256 paths of 21 steps (688 kB at 128 bytes a path and step)
    fit, 512 do not; the block (when larger than num_envs) is named; no bound where the system
    does not say its memory."""
    monkeypatch.setattr(memory, "physical_memory", lambda: 2**20)
    _vec(256)
    with pytest.raises(ValueError, match=r"num_envs=512 paths of n_steps=20 market steps .*"
                                         r"\(about 195 paths of these steps fit in half of it"):
        _vec(512)
    with pytest.raises(ValueError, match=r"block=1,024 paths of n_steps=20"):
        _vec(4, block=1024)
    with pytest.raises(ValueError, match=r"block=1,024 paths of n_steps=20"):
        gym.make(ID, block=1024)
    ENV_IDS[ID][0](block=256)
    monkeypatch.setattr(memory, "physical_memory", lambda: None)
    _vec(512)


# ----------------------------------------------------------------- #11: secondary entry points
@pytest.mark.parametrize("block", ["x", None, 2.5, True, -5, 0])
def test_a_bad_block_is_refused_naming_it(block: Any) -> None:
    """``block="x"`` and None raised a raw TypeError, 2.5 blamed GBM.simulate.n_paths, -5 was
    accepted."""
    with pytest.raises(ValueError, match=r"^block must be (an integer )?>= 1"):
        gym.make_vec(ID, num_envs=1, vectorization_mode="vector_entry_point", block=block)
    with pytest.raises(ValueError, match=r"^block must be (an integer )?>= 1"):
        gym.make(ID, block=block)


def test_an_integral_float_block_is_an_int() -> None:
    env = _vec(2, block=8.0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2, env.single_observation_space.shape[0])


def test_replace_names_unknown_fields_and_lists_the_allowed() -> None:
    """``replace(foo=1)`` raised dataclasses' TypeError; make_config named them already."""
    config = make_config("ShortCall")
    with pytest.raises(ValueError, match=r"unknown env keyword\(s\) \['foo', 'zap'\]; allowed: "
                                         r"\['action_mode', 'band_limit', 'book', "):
        config.replace(foo=1, zap=2, cost=0.002)
    assert config.replace(cost=0.002).cost.rate == 0.002


def test_the_env_itself_names_its_render_modes_and_the_wrappers_for_others() -> None:
    """``gym.make`` applies Gymnasium's own wrappers for ``human`` (HumanRendering, pygame) and
    the ``_list`` modes (RenderCollection) from the class's metadata, as for any Gymnasium env;
    an env built without ``gym.make`` names its modes and the wrapper to apply."""
    with pytest.raises(ValueError, match=r"render_mode must be one of \['ansi', 'rgb_array'\], "
                                         r"got 'human'; for a window, wrap .*HumanRendering"):
        ENV_IDS[ID][0](render_mode="human")
    with pytest.raises(ValueError, match=r"got 'rgb_array_list'; .*RenderCollection"):
        ENV_IDS[ID][0](render_mode="rgb_array_list")
    env = gym.make(ID, render_mode="rgb_array_list")  # Gymnasium's RenderCollection
    env.reset(seed=0)
    env.step(env.action_space.sample())
    frames = env.render()
    assert len(frames) == 2
    assert frames[0].ndim == 3


@pytest.mark.parametrize("value", ["no", 1, None])
def test_observations_must_be_a_bool(value: Any) -> None:
    """``observations="no"`` built the observations (a truthy string)."""
    with pytest.raises(ValueError, match=r"VecHedgingEnv.observations must be True or False"):
        _vec(2, observations=value)
    assert _vec(2, observations=np.bool_(False)).reset(seed=0)[0].shape == (2, 0)
