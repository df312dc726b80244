"""Second audit of the envs' API: infos that alias the env's state, copies, rendering's backend,
and the vector env against the single env on every preset with the stress mechanics on."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import numpy as np
import pytest

import hedgearena  # noqa: F401  (registers the ids)
from hedgearena.envs.config import EnvConfig, make_config
from hedgearena.envs.hedging_env import INFO_KEYS, HedgingEnv
from hedgearena.envs.scenarios import apply_scenario
from hedgearena.envs.vector_env import VecHedgingEnv


# ------------------------------------------------------------------ infos are the caller's
def _run(mode: str, write: bool) -> list[Any]:
    """Rewards, observations and totals of a fixed run; ``write``: scribble on every info."""
    env = VecHedgingEnv(num_envs=2, preset="ShortCall", autoreset_mode=mode, hedge_option=True,
                        market_kwargs={"rate": 0.05})
    env.reset(seed=1)
    out: list[Any] = []
    for i in range(45):
        obs, rewards, _, _, info = env.step(np.full((2, 2), 0.3 * np.sin(i)))
        out += [obs.copy(), rewards.copy()]
        if "totals" in info:
            out.append(info["totals"]["terminal_pnl"].copy())
        if write:  # e.g. a logger rescaling its infos in place
            for key in ("hedge", "option_position", "cash"):
                info[key] *= 1000.0
    return out


@pytest.mark.parametrize("mode", ["next_step", "same_step"])
def test_writing_into_the_infos_does_not_change_the_envs_positions_nor_cash(mode: str) -> None:
    """``infos["hedge"]``, ``["option_position"]`` and ``["cash"]`` were the env's own arrays:
    a caller scaling them in place changed the positions held and the P&L that followed."""
    for clean, written in zip(_run(mode, False), _run(mode, True), strict=True):
        np.testing.assert_array_equal(clean, written)


def test_copies_and_pickles_keep_the_shared_info_arrays_read_only() -> None:
    """The constant info arrays (zeros of the mechanics that are off, no breach, no reason) are
    shared by every step's infos, read-only so that no caller can change the later ones; a
    deepcopy or a pickle of the env made them writable."""
    env = VecHedgingEnv(num_envs=2, preset="ShortCall")
    env.reset(seed=0)
    for twin in (copy.deepcopy(env), pickle.loads(pickle.dumps(env))):
        _, _, _, _, info = twin.step(np.zeros((2, 1)))
        for key in ("unfilled", "slippage", "breach", "termination_reason"):
            with pytest.raises(ValueError, match="read-only"):
                info[key][0] = info[key][1]
        _, _, _, _, info = twin.step(np.zeros((2, 1)))
        assert np.all(info["unfilled"] == 0.0)


# ------------------------------------------------------------------------------ rendering
def test_rendering_leaves_the_callers_matplotlib_backend_alone() -> None:
    """``render()`` switched the whole process to Agg (``matplotlib.use``): a notebook's inline
    plots or a script's windows stopped showing after the first rendered frame."""
    import matplotlib
    import matplotlib.pyplot as plt

    original = matplotlib.get_backend()
    plt.switch_backend("svg")  # the caller's backend (non-interactive: runs headless)
    try:
        env = HedgingEnv(config=make_config("ShortCall"), render_mode="rgb_array")
        env.reset(seed=0)
        env.step(np.array([0.5], dtype=np.float32))
        frame = env.render()
        assert isinstance(frame, np.ndarray)
        assert frame.dtype == np.uint8
        assert frame.shape[2] == 3
        assert matplotlib.get_backend().lower() == "svg"
    finally:
        plt.switch_backend(original)


# ------------------------------------- one path of the vector env = the single env, all presets
def _stressed(preset: str) -> EnvConfig:
    """``preset`` with every stress mechanic on: fills (a liquidity drought), permanent impact,
    a ``terminate`` risk limit with the unwind's sale, a hedging option, ``rebalance_every`` 3,
    and the agent view (the P&L so far observed, the terminal mean-variance reward)."""
    steps = {"n_steps": 21} if preset == "ShortCall" else {}  # the others' divide by 3
    limits = {"delta": 0.3, "drawdown": 150.0, "action": "terminate"}
    config = make_config(preset, hedge_option=True, permanent_impact=0.02, rebalance_every=3,
                         risk_limits=limits, action_mode="trade", lot_size=1.0, observe_pnl=True,
                         reward_mode="terminal_mean_variance", risk_aversion=2.0, **steps)
    return apply_scenario(config, "liquidity_drought", start=1, length=8, fill_fraction=0.5,
                          fill_cap=0.3)


def _record_vector_run(
    config: EnvConfig, mode: str, n: int = 4, steps: int = 30
) -> dict[int, list[Any]]:
    """Per path (in the order the env drew them): its first observation, then per decision the
    action, observation, reward, ``terminated``, info and totals, with the rows out of phase."""
    env = VecHedgingEnv(num_envs=n, config=config, autoreset_mode=mode)
    obs, _ = env.reset(seed=7)
    rng = np.random.default_rng(7)
    paths = {row: [obs[row].copy()] for row in range(n)}
    current, drawn = list(range(n)), n
    resetting = np.zeros(n, dtype=bool)
    for _ in range(steps):
        actions = rng.uniform(-1.3, 1.3, (n, config.action_dim)).astype(np.float32)
        obs, rewards, terminated, truncated, info = env.step(actions)
        final = info.get("final_info", info)
        for row in range(n):
            if resetting[row]:  # NEXT_STEP: this step reset the row, ignoring its action
                current[row], drawn = drawn, drawn + 1
                paths[current[row]] = [obs[row].copy()]
                continue
            ended = mode == "same_step" and terminated[row]
            source = final if ended else info
            last = info["final_obs"][row] if ended else obs[row]
            totals = {k: v[row] for k, v in source["totals"].items()} if terminated[row] else None
            paths[current[row]].append((actions[row], last.copy(), rewards[row], terminated[row],
                                        {k: source[k][row] for k in INFO_KEYS}, totals))
            if ended:
                current[row], drawn = drawn, drawn + 1
                paths[current[row]] = [obs[row].copy()]
        resetting = (terminated | truncated) if mode == "next_step" else resetting
    return paths


@pytest.mark.parametrize("mode", ["next_step", "same_step"])
@pytest.mark.parametrize("preset",
                         ["ShortCall", "OptionBook", "PortfolioInsurance", "HistoricalReplay"])
def test_every_vector_row_is_the_single_env_on_its_path_all_presets_stressed(
    preset: str, mode: str
) -> None:
    """Rows out of phase (a limit ends some episodes early) under every stress mechanic: each
    row's path, replayed on the single env with the same seed, gives the same observations,
    rewards, flags, infos and totals (the single env serves the same paths in the same order)."""
    config = _stressed(preset)
    paths = _record_vector_run(config, mode)
    single = HedgingEnv(config=config)
    ended = stopped = 0
    for index in range(len(paths)):
        obs, _ = single.reset(seed=7) if index == 0 else single.reset()
        np.testing.assert_allclose(obs, paths[index][0], rtol=1e-6, atol=1e-7)
        for action, want_obs, want_r, want_t, want_info, want_totals in paths[index][1:]:
            obs, r, t, _, info = single.step(action)
            np.testing.assert_allclose(obs, want_obs, rtol=1e-6, atol=1e-6)
            assert r == pytest.approx(want_r, rel=1e-9, abs=1e-12)
            assert t == want_t
            for key in INFO_KEYS:
                if key == "termination_reason":
                    assert info[key] == want_info[key]
                else:
                    assert info[key] == pytest.approx(want_info[key], rel=1e-9, abs=1e-9), key
            if t:
                ended += 1
                stopped += info["termination_reason"] != "expiry"
                for key, value in info["totals"].items():
                    assert value == pytest.approx(want_totals[key], rel=1e-9, abs=1e-9), key
    assert ended >= 4
    assert stopped >= 1  # a limit ended an episode early: the rows ran out of phase


@pytest.mark.parametrize("mode", ["next_step", "same_step"])
def test_unfilled_totals_count_each_order_of_every_row(mode: str) -> None:
    """``totals["unfilled"]`` (and the option's) = the decisions' unfilled units plus, on a
    step that sells the positions (the unwind, a ``terminate`` limit), the sale's: the units
    left after it, ``|left|``, and the decision's ``|unfilled + left|`` (the info's
    ``unfilled`` is their signed sum), row by row with the rows out of phase."""
    config = apply_scenario(
        make_config("ShortCall", hedge_option=True,
                    risk_limits={"delta": 0.4, "action": "terminate"}),
        "liquidity_drought", start=0, length=30, fill_fraction=0.5, fill_cap=0.5)
    env = VecHedgingEnv(num_envs=6, config=config, autoreset_mode=mode)
    env.reset(seed=2)
    rng = np.random.default_rng(1)
    sums, checked = np.zeros((6, 2)), 0
    resetting = np.zeros(6, dtype=bool)
    pairs = (("unfilled", "hedge"), ("option_unfilled", "option_position"))
    for _ in range(40):
        _, _, terminated, truncated, info = env.step(rng.uniform(-1, 1, (6, 2)))
        final = info.get("final_info", info)
        for row in np.flatnonzero(~resetting):
            source = final if terminated[row] else info
            for j, (unfilled, held) in enumerate(pairs):
                left = source[held][row] if terminated[row] else 0.0
                sums[row, j] += abs(source[unfilled][row] + left) + abs(left)
            if terminated[row]:
                totals = source["totals"]
                assert totals["unfilled"][row] == pytest.approx(sums[row, 0], rel=1e-12)
                assert totals["option_unfilled"][row] == pytest.approx(sums[row, 1], rel=1e-12)
                assert totals["unfilled"][row] > 0.0
                sums[row], checked = 0.0, checked + 1
        resetting = (terminated | truncated) if mode == "next_step" else resetting
        sums[resetting] = 0.0
    assert checked >= 10
