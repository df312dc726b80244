"""The single env's fast step is bit for bit the general computation.

:class:`HedgingEnv` takes shortcuts on its per-step path (actions within [-1, 1] without the
finiteness and clipping checks, observations handed out as rows of the episode's own copy, the
step's result unpacked once into the info).
Each test here runs the single env and the native vector env of one path
(:class:`VecHedgingEnv`, which takes none of these shortcuts: it always calls the core's
``target_position``, ``transition`` and ``reward`` on arrays) on the same seed and actions, and
requires every observation, reward, flag, info entry and total to be equal with ``==`` (no
tolerance), under every action and reward mode and every stress mechanic.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import hedgearena  # noqa: F401  (registers the ids)
from hedgearena.envs.core import ACTION_MODES, REWARD_MODES
from hedgearena.envs.gbm import GBM
from hedgearena.envs.hedging_env import INFO_KEYS, TOTAL_KEYS
from hedgearena.envs.scenarios import LiquidityDrought, StressWindow
from hedgearena.envs.vector_env import VecHedgingEnv

DROUGHT = LiquidityDrought(GBM(mu=0.05, sigma=0.2, spot0=100.0),
                           window=StressWindow(5.0, 0.4, 0.3), start=3, length=8)
"""Partial fills and refused orders at steps 3..10 (the stressed path of a fills episode)."""

CASES: list[tuple[str, dict[str, Any]]] = [
    *(("ShortCall", {"action_mode": mode, "reward_mode": reward, "risk_aversion": 0.7,
                     "pnl_reference": -0.3})
      for mode in ACTION_MODES for reward in REWARD_MODES),
    ("ShortCall", {"hedge_option": True}),  # target mode with a hedging option: the general path
    ("ShortCall", {"observe_pnl": True}),
    ("ShortCall", {"observe_pnl": True, "hedge_option": True, "action_mode": "band"}),
    ("ShortCall", {"initial_hedge": "delta", "rebalance_every": 2, "lot_size": 0.5,
                   "unwind": False}),
    ("ShortCall", {"market_kwargs": {"rate": 0.03, "dividend": 0.01}}),
    ("ShortCall", {"risk_limits": {"delta": 0.3, "drawdown": 0.5, "action": "report"}}),
    ("ShortCall", {"risk_limits": {"delta": 0.3, "action": "flatten"}}),
    ("ShortCall", {"risk_limits": {"delta": 1.2, "drawdown": 1.0, "action": "terminate"}}),
    ("ShortCall", {"permanent_impact": 0.01}),  # the path's values are numpy floats
    ("ShortCall", {"permanent_impact": 0.01, "observe_pnl": True, "reward_mode": "terminal"}),
    ("ShortCall", {"execution": "twap", "rebalance_every": 2}),
    ("ShortCall", {"execution": "participation", "rebalance_every": 4, "execution_rate": 0.05}),
    ("ShortCall", {"market": DROUGHT}),
    ("OptionBook", {"hedge_option": True, "n_steps": 12}),
    ("OptionBook", {"n_steps": 10}),
    ("PortfolioInsurance", {"n_steps": 12}),
    ("HistoricalReplay", {}),
]


def _same(got: Any, want: Any) -> bool:
    """``==`` with NaN equal to itself (bit-identical floats; no tolerance)."""
    return bool(got == want or (isinstance(got, float) and math.isnan(got) and math.isnan(want)))


def _check_info(info: dict[str, Any], vector_info: dict[str, Any], where: str) -> None:
    """The single env's info equals the vector env's row 0, key by key, in :data:`INFO_KEYS`
    order (``totals`` last on a terminal step)."""
    keys = list(INFO_KEYS) + (["totals"] if "totals" in info else [])
    assert list(info) == keys, where
    for key in INFO_KEYS:
        assert _same(info[key], vector_info[key][0]), f"{where}: info[{key!r}]"
    if "totals" in info:
        totals = info["totals"]
        assert list(totals) == [*TOTAL_KEYS, "terminal_pnl", "initial_premium"], where
        for key, value in totals.items():
            assert _same(value, vector_info["totals"][key][0]), f"{where}: totals[{key!r}]"


def _run_both(preset: str, kwargs: dict[str, Any], episodes: int = 3) -> int:
    """Step the single env (through ``gym.make``) and the vector env of one path in lockstep.

    Actions are seeded, a quarter outside [-1, 1] (clipped), as float32, float64 arrays and
    lists. Returns the number of steps compared.
    """
    single = gym.make(f"hedgearena/{preset}-v0", **kwargs)
    vector = VecHedgingEnv(num_envs=1, preset=preset, **kwargs)
    rng = np.random.default_rng(5)
    obs, info = single.reset(seed=11)
    vector_obs, vector_info = vector.reset(seed=11)
    steps = 0
    seen: list[tuple[np.ndarray, np.ndarray]] = []  # every observation handed out, and a copy
    for episode in range(episodes):
        assert obs.dtype == np.float32
        assert obs.shape == single.observation_space.shape
        assert obs.tobytes() == vector_obs[0].tobytes(), f"episode {episode}: reset obs"
        _check_info(info, vector_info, f"episode {episode}: reset")
        seen.append((obs, obs.copy()))
        terminated = False
        while not terminated:
            action = rng.uniform(-1.3, 1.3, single.action_space.shape)
            given = (action.astype(np.float32), action, action.tolist())[steps % 3]
            obs, reward, terminated, truncated, info = single.step(given)
            exact = np.asarray(given, dtype=np.float64)[None]  # the float32 values, exactly
            vector_obs, vector_reward, vector_term, _, vector_info = vector.step(exact)
            where = f"episode {episode}, step {info['step']}"
            assert type(reward) is float, where
            assert type(terminated) is bool, where
            assert truncated is False, where
            assert obs.dtype == np.float32
            assert obs.shape == single.observation_space.shape
            assert obs.tobytes() == vector_obs[0].tobytes(), f"{where}: obs"
            assert _same(reward, vector_reward[0]), f"{where}: reward"
            assert terminated == vector_term[0], where
            _check_info(info, vector_info, where)
            seen.append((obs, obs.copy()))
            steps += 1
        obs, info = single.reset()
        zeros = np.zeros((1, vector.single_action_space.shape[0]))
        vector_obs, *_, vector_info = vector.step(zeros)  # the NEXT_STEP reset
    # each observation handed out kept its values through the later steps and episodes
    for i, (handed_out, at_the_time) in enumerate(seen):
        assert handed_out.tobytes() == at_the_time.tobytes(), f"observation {i}"
    return steps


@pytest.mark.parametrize(("preset", "kwargs"), CASES,
                         ids=[f"{p}-{'-'.join(f'{k}={v}' for k, v in kw.items())}"[:80]
                              for p, kw in CASES])
def test_single_env_is_the_vector_env_of_one_path_bit_for_bit(
    preset: str, kwargs: dict[str, Any]
) -> None:
    """Observations, rewards, flags, infos and totals equal with ``==``, step by step."""
    assert _run_both(preset, kwargs) >= 3


def test_the_stress_cases_take_their_mechanics() -> None:
    """The stressed cases above do exercise breaches, early ends, unfilled orders and impact
    (else the identity would not cover those branches)."""
    seen: dict[str, float] = dict.fromkeys(("breach", "unfilled", "impact_pnl"), 0.0)
    reasons = set()
    for kwargs in ({"risk_limits": {"delta": 1.2, "drawdown": 1.0, "action": "terminate"}},
                   {"market": DROUGHT}, {"permanent_impact": 0.01}):
        env = gym.make("hedgearena/ShortCall-v0", **kwargs)
        env.reset(seed=11)
        rng = np.random.default_rng(5)
        for _ in range(40):
            _, _, terminated, _, info = env.step(rng.uniform(-1.3, 1.3, 1))
            for key in seen:
                seen[key] += abs(info[key])
            if terminated:
                reasons.add(info["termination_reason"])
                env.reset()
    assert all(value > 0 for value in seen.values()), seen
    assert reasons - {"expiry"}, reasons  # a limit ended an episode early


def test_observations_are_not_shared_between_steps_or_with_the_env() -> None:
    """Writing into a returned observation changes no other observation, nor the next steps."""
    def run(scribble: bool) -> list[bytes]:
        env = gym.make("hedgearena/ShortCall-v0", observe_pnl=True)
        obs, _ = env.reset(seed=3)
        out = [obs.tobytes()]
        for i in range(30):
            if scribble:
                obs[:] = np.nan
            obs, _, terminated, _, _ = env.step(np.array([math.sin(i)], np.float32))
            out.append(obs.tobytes())
            if terminated:
                obs, _ = env.reset()
                out.append(obs.tobytes())
        return out

    assert run(scribble=True) == run(scribble=False)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_actions_still_raise(bad: float) -> None:
    env = gym.make("hedgearena/ShortCall-v0").unwrapped
    env.reset(seed=0)
    for action in (np.array([bad], np.float32), [bad], np.array([bad])):
        with pytest.raises(ValueError, match=r"action must be finite numbers in \[-1, 1\]"):
            env.step(action)


def test_out_of_range_actions_are_clipped_and_in_range_ones_kept() -> None:
    """An action past [-1, 1] acts as the bound (documented clipping); -0.0 as 0."""
    def first_step(action: Any, **kwargs: Any) -> tuple[Any, Any, dict[str, Any]]:
        env = gym.make("hedgearena/ShortCall-v0", **kwargs)
        env.reset(seed=0)
        obs, reward, _, _, info = env.step(action)
        return obs, reward, info

    for mode in ("target", "trade"):
        for far, bound in ((5.0, 1.0), (-7.5, -1.0), (1.0 + 1e-7, 1.0)):
            got, want = first_step([far], action_mode=mode), first_step([bound], action_mode=mode)
            assert got[0].tobytes() == want[0].tobytes()
            assert got[1] == want[1]
            assert got[2] == want[2]
    got, want = first_step(np.array([-0.0])), first_step(np.array([0.0]))
    assert got[0].tobytes() == want[0].tobytes()
    assert got[1] == want[1]


def test_step_before_reset_and_after_the_end_raise() -> None:
    env = gym.make("hedgearena/ShortCall-v0").unwrapped
    with pytest.raises(RuntimeError, match=r"call reset\(\) before step\(\)"):
        env.step(np.zeros(1, np.float32))
    env.reset(seed=0)
    terminated = False
    while not terminated:
        _, _, terminated, _, _ = env.step(np.zeros(1, np.float32))
    with pytest.raises(RuntimeError, match=r"the episode has ended: call reset\(\)"):
        env.step(np.zeros(1, np.float32))
