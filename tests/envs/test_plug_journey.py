"""A researcher plugging the envs into Gymnasium's and stable-baselines3's tools, and a loop.

The autoreset semantics checked are Gymnasium 1.x's (https://farama.org/Vector-Autoreset-Mode):
with ``NEXT_STEP`` the step after a sub-env ends resets it (its action ignored, reward 0, both
flags False) and the ending step returns the last observation; with ``SAME_STEP`` the ending
step returns the reset observation and the last one in ``infos["final_obs"]``.
"""

from __future__ import annotations

import copy
import pickle
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers.vector import RecordEpisodeStatistics
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecNormalize

import hedgearena  # noqa: F401  (registers the ids)
from hedgearena.envs.sb3_adapter import make_sb3_vec_env

ENV_ID = "hedgearena/ShortCall-v0"  # 20 decisions an episode


def native(n: int, mode: str, env_id: str = ENV_ID, **kwargs: Any) -> Any:
    return gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point",
                        autoreset_mode=mode, **kwargs)


class Unhedged:
    """A policy for ``evaluate_policy``: action 0 (target position 0: no hedge)."""

    def predict(self, obs: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[np.ndarray, None]:
        return np.zeros((len(obs), 1), dtype=np.float32), None


def test_evaluate_policy_through_vecnormalize_reports_the_raw_returns() -> None:
    """Before: the adapter said no row was in a ``Monitor``, so ``evaluate_policy`` summed the
    rewards VecNormalize had scaled: 0.0017 (with a return variance of 100) for a raw 0.0171,
    while ``make_vec_env``'s Monitor-wrapped envs gave the raw returns through the same wrapper.
    """
    adapter = make_sb3_vec_env(ENV_ID, num_envs=4, seed=1)
    assert adapter.env_is_wrapped(Monitor) == [True] * 4  # its infos carry Monitor's "episode"
    assert adapter.env_is_wrapped(gym.wrappers.TimeLimit, indices=[1]) == [False]
    raw, _ = evaluate_policy(Unhedged(), make_sb3_vec_env(ENV_ID, num_envs=4, seed=1),
                             n_eval_episodes=8, warn=False)
    normalised = VecNormalize(adapter, norm_obs=False, training=False)
    normalised.ret_rms.var[...] = 100.0  # rewards scaled by 1/10
    through, _ = evaluate_policy(Unhedged(), normalised, n_eval_episodes=8, warn=False)
    assert through == pytest.approx(raw, rel=1e-6)
    assert abs(raw) > 1e-3
    # and as the single envs in Monitors that make_vec_env builds
    monitored = VecNormalize(make_vec_env(ENV_ID, n_envs=2, seed=1), norm_obs=False,
                             training=False)
    monitored.ret_rms.var[...] = 100.0
    mean, _ = evaluate_policy(Unhedged(), monitored, n_eval_episodes=4, warn=False)
    plain, _ = evaluate_policy(Unhedged(), make_vec_env(ENV_ID, n_envs=2, seed=1),
                               n_eval_episodes=4, warn=False)
    assert mean == pytest.approx(plain, rel=1e-6)


@pytest.mark.parametrize("seed", [[0, 1, 2], (0, 1, 2), np.arange(3)])
def test_a_list_of_seeds_is_refused_naming_what_is_allowed(seed: Any) -> None:
    """Before: gymnasium.error.Error "Seed must be a python integer" (not a ValueError, no hint
    that one int seeds the batch); also through a Gymnasium vector wrapper."""
    for env in (native(3, "next_step"), RecordEpisodeStatistics(native(3, "same_step"))):
        with pytest.raises(ValueError, match=r"seed must be an int or None.*one generator.*sync"):
            env.reset(seed=seed)
        assert env.reset(seed=7)[0].shape == (3, 12)


@pytest.mark.parametrize("env_id", [ENV_ID, "hedgearena/PortfolioInsurance-v0"])
@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_native_vector_env_is_gymnasiums_sync_vector_env_of_one(
    env_id: str, mode: AutoresetMode
) -> None:
    """One row and the same seed: observations, rewards, flags, final observations and totals
    of Gymnasium's own SyncVectorEnv (its autoreset) to the bit, time limits included."""
    for kwargs in ({}, {"max_episode_steps": 6}):
        sync = gym.make_vec(env_id, num_envs=1, vectorization_mode="sync",
                            vector_kwargs={"autoreset_mode": mode}, **kwargs)
        ours = native(1, mode.value, env_id, **kwargs)
        np.testing.assert_array_equal(sync.reset(seed=4)[0], ours.reset(seed=4)[0])
        rng, ends = np.random.default_rng(0), 0
        for _ in range(70):
            action = rng.uniform(-1, 1, ours.action_space.shape)
            a, b = sync.step(action), ours.step(action)
            for x, y in zip(a[:4], b[:4], strict=True):
                np.testing.assert_array_equal(x, y)
            if "final_obs" in a[4]:
                ends += 1
                np.testing.assert_array_equal(a[4]["final_obs"][0], b[4]["final_obs"][0])
            for infos in (a[4], a[4].get("final_info", {})):
                if "totals" in infos:
                    other = b[4] if infos is a[4] else b[4]["final_info"]
                    assert infos["totals"]["pnl"][0] == pytest.approx(other["totals"]["pnl"][0])
        length = kwargs.get("max_episode_steps", ours.unwrapped.config.n_steps)  # 20 or 63
        assert ends == (70 // length if mode == AutoresetMode.SAME_STEP else 0)


def test_async_vector_env_gives_the_sync_trajectories() -> None:
    """Subprocesses (the module-prefixed id imports hedgearena there): the same paths."""
    out = []
    for mode, name in (("sync", ENV_ID), ("async", f"hedgearena:{ENV_ID}")):
        env = gym.make_vec(name, num_envs=2, vectorization_mode=mode,
                           vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})
        rng, seen = np.random.default_rng(1), [env.reset(seed=3)[0]]
        for _ in range(25):
            obs, reward, terminated, _, infos = env.step(rng.uniform(-1, 1, (2, 1)))
            seen += [obs, reward, terminated]
            seen += [x for x in infos.get("final_obs", ()) if x is not None]
        env.close()
        out.append(seen)
    assert len(out[0]) == len(out[1]) == 1 + 3 * 25 + 2
    for x, y in zip(*out, strict=True):
        np.testing.assert_array_equal(x, y)


def test_a_cleanrl_style_ppo_loop_on_next_step_autoreset() -> None:
    """~40 lines: NEXT_STEP rollouts, the reset rows dropped, GAE cut at episode ends, one
    PPO update. Checks what the loop relies on against a SAME_STEP twin on the same paths:
    the observation with ``done`` is the last one (the twin's ``final_obs``), the next step's
    is the reset one, its reward 0; the kept rows' rewards sum to Gymnasium's episode returns;
    ``infos["totals"]`` comes on the ending step."""
    torch.manual_seed(0)
    n, horizon, gamma, lam = 4, 45, 0.99, 0.95
    envs = RecordEpisodeStatistics(native(n, "next_step", action_mode="band"))
    twin = native(n, "same_step", action_mode="band")
    actor = torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    critic = torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    log_std = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([*actor.parameters(), *critic.parameters(), log_std], lr=3e-4)
    obs, _ = envs.reset(seed=0)
    twin_obs, _ = twin.reset(seed=0)
    np.testing.assert_array_equal(obs, twin_obs)
    buf: dict[str, list[torch.Tensor]] = {k: [] for k in ("o", "a", "lp", "r", "v", "nv", "d", "k")}
    prev_done, returns, kept_sum, totals = np.zeros(n, bool), [], np.zeros(n), 0
    for _ in range(horizon):
        o = torch.as_tensor(obs)
        with torch.no_grad():
            dist = torch.distributions.Normal(actor(o), log_std.exp())
            a, v = dist.sample(), critic(o)[:, 0]
        obs, r, term, trunc, info = envs.step(a.numpy())
        with torch.no_grad():  # the obs of a done row is its last: bootstrap truncations
            nv = torch.where(torch.as_tensor(term), 0.0, critic(torch.as_tensor(obs))[:, 0])
        for key, x in zip(buf, (o, a, dist.log_prob(a).sum(-1), torch.as_tensor(r).float(), v,
                                nv, torch.as_tensor(term | trunc), torch.as_tensor(~prev_done)),
                          strict=True):
            buf[key].append(x)
        kept_sum += np.where(prev_done, 0.0, r)
        done = term | trunc
        if prev_done.any():  # the reset step (every row ends together here): no transition
            assert prev_done.all()
            assert (r == 0).all()
            assert not done.any()
            np.testing.assert_array_equal(obs, twin_obs)  # the twin reset in the ending step
        else:
            twin_obs, _, twin_term, _, twin_info = twin.step(a.numpy())
            assert twin_term.tolist() == term.tolist()
            if done.any():
                np.testing.assert_array_equal(np.stack(twin_info["final_obs"][done]), obs[done])
            else:
                np.testing.assert_array_equal(obs, twin_obs)
        if done.any():
            assert info["_totals"].tolist() == term.tolist()
            totals += int(info["_totals"].sum())
            returns += info["episode"]["r"][info["_episode"]].tolist()
            np.testing.assert_allclose(info["episode"]["r"][done], kept_sum[done])
            assert (info["episode"]["l"][done] == 20).all()
            kept_sum[done] = 0.0
        prev_done = done
    b = {k: torch.stack(x) for k, x in buf.items()}
    adv, last = torch.zeros(horizon, n), torch.zeros(n)
    for t in reversed(range(horizon)):
        nxt_reset = ~b["k"][t + 1] if t + 1 < horizon else torch.zeros(n, dtype=torch.bool)
        delta = b["r"][t] + gamma * b["nv"][t] - b["v"][t]
        last = delta + gamma * lam * (~(b["d"][t] | nxt_reset)).float() * last
        adv[t] = last
    keep = b["k"]
    assert int(keep.sum()) == horizon * n - n * (horizon // 21) == 45 * 4 - 8
    o, a, lp, adv = b["o"][keep], b["a"][keep], b["lp"][keep], adv[keep]
    ratio = (torch.distributions.Normal(actor(o), log_std.exp()).log_prob(a).sum(-1) - lp).exp()
    loss = -torch.min(ratio * adv, ratio.clamp(0.8, 1.2) * adv).mean() + 0.5 * (
        critic(o)[:, 0] - (adv + b["v"][keep])).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert len(returns) == totals == 2 * n


def test_the_adapter_and_dummy_vec_env_of_single_envs_agree_in_distribution() -> None:
    """The unhedged short call: P(OTM) = N(-d2) = 0.472 (d2 = (r - s^2/2) T / (s sqrt T) with
    drift 5%, s = 20%, T = 20/252: the premium kept, return 0.9972 = premium / scale), else the
    premium less the payoff. Both vector envs: the same atom share and mean within 4 s.e."""
    out = []
    for venv in (make_sb3_vec_env(ENV_ID, 16, seed=0), make_vec_env(ENV_ID, n_envs=16, seed=0)):
        venv.reset()
        episodes: list[float] = []
        while len(episodes) < 640:
            _, _, dones, infos = venv.step(np.zeros((16, 1), dtype=np.float32))
            episodes += [infos[i]["episode"]["r"] for i in np.flatnonzero(dones)]
        out.append(np.array(episodes))
    kept = [float(np.mean(np.abs(x - 0.997222) < 1e-5)) for x in out]
    assert kept == pytest.approx([0.472, 0.472], abs=4 * np.sqrt(0.25 / 640))
    se = np.hypot(*(x.std() / np.sqrt(len(x)) for x in out))
    assert abs(out[0].mean() - out[1].mean()) < 4 * se


@pytest.mark.parametrize("how", [copy.deepcopy, lambda e: pickle.loads(pickle.dumps(e))])
def test_copies_mid_episode_continue_identically(how: Any) -> None:
    """Single env and native vector env copied mid-episode: the copy steps like the original
    (through autoresets), and stepping it leaves the original alone."""
    rng = np.random.default_rng(2)
    actions = rng.uniform(-1, 1, (50, 3, 1))
    for env in (gym.make("hedgearena/PortfolioInsurance-v0", block=4),
                native(3, "same_step", max_episode_steps=7)):
        vector = hasattr(env, "num_envs")
        env.reset(seed=5)
        for a in actions[:4]:
            env.step(a if vector else a[0])
        twin = how(env)
        runs = []
        for e in (twin, env):
            seen = []
            for a in actions[4:]:
                obs, reward, terminated, truncated, _ = e.step(a if vector else a[0])
                seen += [obs, reward]
                if not vector and (terminated or truncated):
                    seen.append(e.reset()[0])
            runs.append(seen)
        for x, y in zip(*runs, strict=True):
            np.testing.assert_array_equal(x, y)
