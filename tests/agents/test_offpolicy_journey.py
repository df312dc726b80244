"""Journey of the off-policy and recurrent SB3 agents: LSTM state, resume, noise, scoring.

Each test names what the old code did (the numbers in the docstrings are the old code's).
"""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from hedgearena.agents.sb3 import SB3Hedger, build_model, check_hyperparams, make_training_env
from hedgearena.envs.vector_env import VecHedgingEnv
from hedgearena.run_config import RunConfig

VIEW = {"action_mode": "band", "observe_pnl": True}
"""The agents' view of ShortCall-v0 (a no-trade band, the P&L so far observed)."""
N_ENVS = 16
TINY = {"n_envs": N_ENVS, "learning_starts": 64, "batch_size": 32, "n_timesteps": 256,
        "buffer_size": 4096}


def _recurrent(seed: int = 0) -> Any:
    """A small RecurrentPPO with random weights of a visible size (positions vary by path)."""
    venv = make_training_env("hedgearena/ShortCall-v0", VIEW, 4, 0, None)
    model = build_model("recurrent_ppo", venv, {
        "n_steps": 8, "batch_size": 32,
        "policy_kwargs": {"lstm_hidden_size": 8, "net_arch": [8]}}, seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.policy.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=generator))
    return model


@pytest.mark.usefixtures("torch_one_thread")
@pytest.mark.parametrize("mode", ["same_step", "next_step"])
def test_a_recurrent_hedger_starts_a_fresh_lstm_state_where_a_row_restarts(mode: str) -> None:
    """In a user's loop whose vector env restarts rows at different times (a drawdown limit
    ends some episodes early), the hedger's positions are, to the bit, those of stepping the
    model by hand with ``model.predict(obs, state, episode_start, deterministic=True)`` and
    ``episode_start`` as stable-baselines3 sets it in training (the previous step's done;
    with NEXT_STEP the step after, as the done step's observation is the last one).

    Before: the LSTM state ran on across episodes; positions differed by up to 6.8 units.
    """
    model, n = _recurrent(), 6
    env = VecHedgingEnv(num_envs=n, preset="ShortCall", autoreset_mode=mode, **VIEW,
                        risk_limits={"drawdown": 5.0, "action": "terminate"})
    hedger = SB3Hedger(model, None, VIEW)
    obs, _ = env.reset(seed=1)
    hedger.reset(env)
    lstm, done, done_before = None, np.zeros(n, bool), np.zeros(n, bool)
    staggered = 0
    for j in range(60):
        starts = np.ones(n, bool) if j == 0 else (done if mode == "same_step" else done_before)
        actions, lstm = model.predict(obs, state=lstm, episode_start=starts, deterministic=True)
        expected = env.positions_from_actions(actions.astype(np.float64))
        got = hedger.positions(env.state, obs)
        used = ~done if mode == "next_step" else np.ones(n, bool)  # NEXT_STEP ignores the rest
        np.testing.assert_array_equal(got[used], expected[used])
        obs, _, terminated, truncated, _ = env.step_targets(got)
        done_before, done = done, terminated | truncated
        staggered += int(0 < done.sum() < n)
    assert staggered >= 5  # rows restarted while others ran on


@pytest.mark.usefixtures("torch_one_thread")
def test_recurrent_hedgers_in_the_arenas_blocks_match_predict_by_hand(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two recurrent agents and delta in one arena run of 12 paths in blocks of 5, 5 and 2:
    each agent's positions on every block are those of ``model.predict`` by hand from a
    fresh LSTM state at the block's start (nothing carried from block to block or hedger to
    hedger)."""
    from hedgearena.baselines import arena
    from hedgearena.baselines.delta import BlackScholesDelta
    from hedgearena.envs.config import make_config

    monkeypatch.setattr(arena, "PATH_BLOCK", 5)
    models = [_recurrent(0), _recurrent(1)]
    hedgers = [SB3Hedger(m, None, VIEW, name=f"lstm {k}") for k, m in enumerate(models)]
    config = make_config("ShortCall")
    result = arena.run_arena(config, [hedgers[0], BlackScholesDelta(), hedgers[1]], n_paths=12,
                             seed=3, progress=False, keep_batches=True)
    assert [len(b.initial_cash) for b in result.batches] == [5, 5, 2]
    for model, hedger in zip(models, hedgers, strict=True):
        recorded, lo = result.records[hedger.name].hedge, 0
        for batch in result.batches:
            size = len(batch.initial_cash)
            env = VecHedgingEnv(num_envs=size, config=config.replace(**VIEW))
            obs, _ = env.reset(options={"episodes": batch})
            lstm, starts = None, np.ones(size, bool)
            for k in range(config.n_decisions):
                actions, lstm = model.predict(obs, state=lstm, episode_start=starts,
                                              deterministic=True)
                starts = np.zeros(size, bool)
                targets = env.positions_from_actions(actions.astype(np.float64))
                np.testing.assert_allclose(recorded[k, lo:lo + size], targets[:, 0],
                                           rtol=0, atol=1e-12)
                obs, *_ = env.step_targets(targets)
            lo += size


def _config(tmp_path: Path, algo: str, hyperparams: dict[str, Any]) -> RunConfig:
    return RunConfig.model_validate({
        "agent": {"algo": algo, "hyperparams": hyperparams, "eval_paths": 32,
                  "checkpoint_freq": 64},
        "arena": {"paths": 32, "hedgers": ["delta"]}, "out": str(tmp_path), "name": "run"})


def _checkpoint(run: Path) -> tuple[Path, int, Any, Any]:
    """The newest checkpoint: folder, steps, its model's saved data, its replay buffer."""
    from stable_baselines3.common.save_util import load_from_zip_file

    latest = json.loads((run / "checkpoints" / "latest.json").read_text())
    folder = run / "checkpoints" / latest["path"]
    data, _, _ = load_from_zip_file(folder / "model.zip", device="cpu")
    with (folder / "replay_buffer.pkl").open("rb") as handle:
        buffer = pickle.load(handle)
    return folder, int(latest["timesteps"]), data, buffer


@pytest.mark.usefixtures("torch_one_thread")
def test_an_off_policy_run_stopped_at_a_checkpoint_resumes_where_it_stood(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TD3 (normal noise 0.2) with 16 paths, learning from 64 steps, 4 gradient steps per
    step, a checkpoint every 64 steps, Ctrl-C inside the validation at 112 steps, then
    resumed to 256.

    Checked: the checkpoint's replay buffer holds exactly the transitions its step count
    counts, its model the updates of every step counted, the action noise, learning_starts
    and target networks of the stopped model; the resumed run ends with the updates of the
    uninterrupted one (4 per step past learning_starts: 4 x 12 = 48) and all 256 steps'
    transitions.

    Before: a checkpoint fell inside the step's callbacks, before stable-baselines3 stored the
    step's transitions and trained on them, and counted the step: the Ctrl-C checkpoint of 112
    steps held 96 steps' transitions (and 8 updates of 12), the periodic one of 64 steps 48,
    and the resumed run ended with 44 updates and 240 steps' transitions.
    """
    from stable_baselines3.common.noise import NormalActionNoise

    from hedgearena.agents.callbacks import CheckpointCallback, HedgingEvalCallback
    from hedgearena.training import train_run

    config = _config(tmp_path, "td3", {**TINY, "noise_type": "normal", "noise_std": 0.2})
    run = tmp_path / "run"
    evaluate, write, calls = HedgingEvalCallback.evaluate, CheckpointCallback._write, [0]
    saved: dict[int, Any] = {}

    def stop_in_the_fourth_validation(self: HedgingEvalCallback) -> Any:
        calls[0] += 1
        if calls[0] == 4:  # at 112 steps (every 25: 32, 64, 80, 112)
            raise KeyboardInterrupt
        return evaluate(self)

    def keep_state(self: CheckpointCallback, folder: Path) -> None:
        model = self.model
        saved[int(model.num_timesteps)] = (
            copy.deepcopy(model.critic_target.state_dict()),
            copy.deepcopy(model.actor_target.state_dict()), model._n_updates,
            model.replay_buffer.size())
        write(self, folder)

    monkeypatch.setattr(HedgingEvalCallback, "evaluate", stop_in_the_fourth_validation)
    monkeypatch.setattr(CheckpointCallback, "_write", keep_state)
    with pytest.raises(KeyboardInterrupt):
        train_run(config, False)
    # the periodic checkpoint due at 64 steps and the Ctrl-C one at 112, each of the steps
    # before (the step's transitions are stored after its callbacks)
    assert sorted(saved) == [48, 96]
    assert [saved[48][3], saved[96][3]] == [48 // N_ENVS, 96 // N_ENVS]  # buffer rows = steps
    folder, steps, data, buffer = _checkpoint(run)
    assert steps == 96
    assert buffer.size() * N_ENVS == steps  # the transitions of the steps counted
    assert data["num_timesteps"] == steps
    assert data["learning_starts"] == 64
    assert data["_n_updates"] == 4 * (96 - 64) // N_ENVS == saved[96][2]
    noise = data["action_noise"]
    assert isinstance(noise.base_noise, NormalActionNoise)
    np.testing.assert_array_equal(noise.base_noise._sigma, [0.2])

    from stable_baselines3 import TD3

    loaded = TD3.load(folder / "model.zip", device="cpu")
    for name, state in (("critic_target", saved[96][0]), ("actor_target", saved[96][1])):
        for key, value in getattr(loaded, name).state_dict().items():
            torch.testing.assert_close(value, state[key], rtol=0, atol=0)
    critic = loaded.critic.state_dict()
    assert any(not torch.equal(critic[k], v) for k, v in saved[96][0].items())  # polyak, not a copy

    monkeypatch.setattr(HedgingEvalCallback, "evaluate", evaluate)
    _, info = train_run(config, False)
    assert (info["resumed_from"], info["timesteps"]) == (96, 256)
    _, steps, data, buffer = _checkpoint(run)
    assert steps == 256
    assert buffer.size() * N_ENVS == 256
    assert data["_n_updates"] == 4 * (256 - 64) // N_ENVS  # the uninterrupted run's 48


def test_action_noise_is_parsed_as_the_zoo_documents_it() -> None:
    """``noise_type`` / ``noise_std`` give SB3's action noise of that kind and std."""
    from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

    venv = make_training_env("hedgearena/ShortCall-v0", VIEW, 2, 0, None)
    for algo, kind, cls in (("td3", "ornstein-uhlenbeck", OrnsteinUhlenbeckActionNoise),
                            ("ddpg", "normal", NormalActionNoise),
                            ("sac", "normal", NormalActionNoise)):
        model = build_model(algo, venv, {"noise_type": kind, "noise_std": 0.3,
                                         "learning_starts": 0}, 0)
        assert isinstance(model.action_noise, cls)
        np.testing.assert_array_equal(model.action_noise._sigma, [0.3])
    model = build_model("td3", venv, {"noise_type": "normal"}, 0)
    np.testing.assert_array_equal(model.action_noise._sigma, [0.1])  # the documented default
    assert build_model("tqc", venv, {"use_sde": True}, 0).use_sde  # gSDE passes through
    venv.close()


@pytest.mark.parametrize(
    ("algo", "hyperparams", "message"),
    [
        ("ppo", {"noise_type": "normal"},
         r"ppo hyperparameter\(s\) \['noise_type'\]: action noise is for the off-policy "
         r"agents \(sac, td3, ddpg, tqc\)"),
        ("recurrent_ppo", {"noise_std": 0.2}, r"recurrent_ppo hyperparameter\(s\) \['noise_std'\]"),
        ("td3", {"noise_std": 0.2}, r"noise_std 0.2 without noise_type adds no noise"),
        ("td3", {"action_noise": "normal"}, r"action_noise is set by noise_type"),
        ("td3", {"noise_type": "gaussian"}, r"noise_type must be one of \('normal', 'ornstein"),
        ("ddpg", {"noise_type": "normal", "noise_std": -0.1},
         r"noise_std must be a finite number >= 0, got -0.1"),
        ("td3", {"use_sde": True}, r"unknown td3 hyperparameter\(s\) \['use_sde'\]"),
    ],
)
def test_bad_noise_settings_are_named_with_what_is_allowed(
    algo: str, hyperparams: dict[str, Any], message: str
) -> None:
    """Before: PPO's noise_type passed the checks and failed in SB3's constructor as
    ``unexpected keyword argument 'action_noise'`` (after the run folder was written); a
    noise_std without noise_type trained without noise, silently; ``action_noise`` reached
    SB3 as a string."""
    with pytest.raises(ValueError, match=message):
        check_hyperparams(algo, hyperparams)


def test_a_null_noise_std_is_the_default_for_the_check_as_for_the_model() -> None:
    """YAML's ``noise_std: ~`` is the default std where the model is built (0.1); the check
    refused it ("must be a finite number >= 0, got None") while ``_action_noise`` took it."""
    check_hyperparams("td3", {"noise_type": "normal", "noise_std": None})
    check_hyperparams("ppo", {"noise_std": None})  # no noise asked: nothing for PPO to refuse
    venv = make_training_env("hedgearena/ShortCall-v0", VIEW, 2, 0, None)
    model = build_model("td3", venv, {"noise_type": "normal", "noise_std": None}, 0)
    np.testing.assert_array_equal(model.action_noise._sigma, [0.1])
    venv.close()


@pytest.mark.usefixtures("torch_one_thread")
@pytest.mark.parametrize("algo", ["td3", "sac"])
def test_scoring_uses_deterministic_actions_and_repeats_to_the_bit(algo: str) -> None:
    """An agent trained with action noise (TD3's normal 0.5; SAC's own sampling) is scored on
    its deterministic action: the arena's positions are the actor's mean action's, and two
    runs give identical costs."""
    from hedgearena.baselines.arena import run_arena
    from hedgearena.envs.config import make_config

    venv = make_training_env("hedgearena/ShortCall-v0", VIEW, 2, 0, None)
    params = {"noise_type": "normal", "noise_std": 0.5} if algo == "td3" else {}
    model = build_model(algo, venv, {**params, "policy_kwargs": {"net_arch": [8]}}, 0)
    hedger = SB3Hedger(model, None, VIEW, name=algo)
    config = make_config("ShortCall")
    first, second = (run_arena(config, [hedger], n_paths=64, seed=5, progress=False,
                               keep_batches=True) for _ in range(2))
    np.testing.assert_array_equal(first.cost(algo), second.cost(algo))
    env = VecHedgingEnv(num_envs=64, config=config.replace(**VIEW))
    obs, _ = env.reset(options={"episodes": first.batches[0]})
    with torch.no_grad():  # the actor's mean action, without noise or sampling
        x = torch.as_tensor(obs)
        mean = model.actor(x, deterministic=True) if algo == "sac" else model.actor(x)
    expected = env.positions_from_actions(mean.numpy().astype(np.float64))
    np.testing.assert_allclose(first.records[algo].hedge[0], expected[:, 0], rtol=0, atol=1e-6)
    venv.close()


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_sde_sample_freq_without_use_sde_is_refused(algo: str) -> None:
    """stable-baselines3 ignores sde_sample_freq unless use_sde is true: it was accepted and did
    nothing."""
    from hedgearena.agents.sb3 import check_hyperparams

    with pytest.raises(ValueError, match=r"sde_sample_freq 4 does nothing without use_sde: true"):
        check_hyperparams(algo, {"sde_sample_freq": 4})
    with pytest.raises(ValueError, match=r"sde_sample_freq"):
        check_hyperparams(algo, {"sde_sample_freq": 4, "use_sde": False})
    check_hyperparams(algo, {"sde_sample_freq": 4, "use_sde": True})
