"""A researcher's journey with learned hedgers on HistoricalReplay-v0 and PortfolioInsurance-v0.

PPO and deep hedging on the S&P 500 replay, trained before ``arena.split`` and scored after it,
and on the fund's insured payoff against the synthetic put and CPPI. The tests marked "Before:"
failed on the code before their fix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from hedgearena.agents.sb3 import load_hyperparams
from hedgearena.run_config import RunConfig

pytestmark = pytest.mark.usefixtures("torch_one_thread")

REPLAY, INSURANCE = "hedgearena/HistoricalReplay-v0", "hedgearena/PortfolioInsurance-v0"
ROLLOUT = 128
"""Env steps per PPO rollout of :data:`PPO_TINY` (n_steps x n_envs)."""
PPO_TINY = {"n_envs": 16, "n_steps": 8, "batch_size": 16, "n_epochs": 2, "normalize": True}


def _config(tmp_path: Path, env: str = "hedgearena/ShortCall-v0", algo: str = "ppo",
            hyperparams: dict[str, Any] | None = None, **arena: Any) -> RunConfig:
    agent: dict[str, Any] = {"algo": algo, "hyperparams": hyperparams or {}}
    if algo != "deep_hedging":
        agent["eval_paths"] = 64
    return RunConfig.model_validate({
        "env": {"id": env}, "agent": agent,
        "arena": {"paths": 64, "tune_paths": 64, "hedgers": ["delta"], **arena},
        "out": str(tmp_path), "name": "run"})


# ------------------------------------------------------------------- the zoo's blocks
@pytest.mark.parametrize("env_id", [REPLAY, INSURANCE])
def test_ppo_has_a_whole_episode_block_for_the_env(env_id: str) -> None:
    """Before: no block; PPO trained with SB3's defaults (2,048-step rollouts across episodes,
    minibatches of 64: 4.5 minutes an update on the replay) after a warning."""
    import warnings

    from hedgearena.envs.sb3_adapter import make_sb3_vec_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        params = load_hyperparams("ppo", env_id)
    venv = make_sb3_vec_env(env_id, 2, seed=0)
    venv.reset()
    decisions, done = 0, np.zeros(2, bool)
    while not done.any():
        _, _, done, _ = venv.step(np.zeros((2, 1), np.float32))
        decisions += 1
    venv.close()
    assert params["n_steps"] == decisions  # one whole episode per env and rollout
    rollout = params["n_envs"] * params["n_steps"]
    assert rollout % params["batch_size"] == 0
    assert params["n_timesteps"] % rollout == 0  # whole rollouts
    assert params["normalize"]
    assert params["gamma"] == 1.0


# ------------------------------------------------------------------ Ctrl-C and resume
def test_a_ppo_run_interrupted_inside_its_update_saves_the_weights_it_started_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: Ctrl-C inside PPO's update (its epochs: nearly all of the time with SB3's
    default minibatches, 4.5 minutes a rollout on the replay) saved the half-updated weights
    as having learnt the whole rollout (262,144 steps after 2 rollouts); the resume skipped the
    rest of the update."""
    from stable_baselines3 import PPO

    from hedgearena.training import train_run

    budget = 4 * ROLLOUT
    config = _config(tmp_path, hyperparams={**PPO_TINY, "n_timesteps": budget})
    train, calls, before = PPO.train, [0], {}

    def ctrl_c_in_the_third_update(self: PPO) -> None:
        calls[0] += 1
        if calls[0] == 3:
            before.update({k: v.clone() for k, v in self.policy.state_dict().items()})
            with torch.no_grad():  # the first of its 2 epochs done
                for p in self.policy.parameters():
                    p.add_(0.5)
            self._n_updates += 1
            raise KeyboardInterrupt
        train(self)

    monkeypatch.setattr(PPO, "train", ctrl_c_in_the_third_update)
    with pytest.raises(KeyboardInterrupt):
        train_run(config, False)
    run = tmp_path / "run"
    latest = json.loads((run / "checkpoints" / "latest.json").read_text())
    assert latest["timesteps"] == 2 * ROLLOUT  # the weights learnt from 256 steps
    saved = PPO.load(run / "checkpoints" / latest["path"] / "model.zip", device="cpu")
    for key, value in saved.policy.state_dict().items():
        torch.testing.assert_close(value, before[key])
    monkeypatch.setattr(PPO, "train", train)
    _, info = train_run(config, False)
    assert (info["resumed_from"], info["timesteps"]) == (2 * ROLLOUT, budget)


# ------------------------------------------------------------------ out of sample
@pytest.mark.parametrize("algo", ["ppo", "deep_hedging"])
def test_with_a_split_every_path_the_training_sees_is_dated_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, algo: str
) -> None:
    """The view's calibration, the validation and the training paths of an agent trained with
    ``arena.split`` all end before the split (the arena alone scores after it)."""
    from hedgearena.envs.historical import HistoricalReplay
    from hedgearena.training import train_run

    window, last = HistoricalReplay.window, []

    def recording(self: HistoricalReplay, starts: Any, n_steps: int, dt: float) -> Any:
        paths = window(self, starts, n_steps, dt)
        last.append(np.asarray(paths.dates).max())
        return paths

    monkeypatch.setattr(HistoricalReplay, "window", recording)
    # check_arena resets the arena's hedgers on 2 paths of the whole history (scoring nothing)
    monkeypatch.setattr("hedgearena.training.check_arena", lambda *args: None)
    hyperparams = ({**PPO_TINY, "n_steps": 21, "n_timesteps": 2 * 16 * 21} if algo == "ppo"
                   else {"steps": 2, "batch_size": 32, "n_train": 64, "n_valid": 64,
                         "eval_every": 1, "checkpoint_every": 1, "seed": 5})
    config = _config(tmp_path, REPLAY, algo, hyperparams, split="2010-01-01")
    train_run(config, False)
    assert len(last) >= 2  # validation and training
    assert max(last) <= np.datetime64("2009-12-31")


def test_a_ppo_run_interrupted_in_the_validation_after_an_update_keeps_that_update(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in the validation at a rollout's start (after the update on the one before) keeps
    the finished update and its steps (a guard on the fix above: not rolled back)."""
    from stable_baselines3 import PPO

    from hedgearena.agents.callbacks import HedgingEvalCallback
    from hedgearena.training import train_run

    config = _config(tmp_path, hyperparams={**PPO_TINY, "n_timesteps": 4 * ROLLOUT})
    act, calls, after = HedgingEvalCallback.act, [0], {}

    def ctrl_c_in_the_second_validation(self: HedgingEvalCallback) -> None:
        calls[0] += 1
        if calls[0] == 2:  # at 256 steps, the second update done
            after.update({k: v.clone() for k, v in self.model.policy.state_dict().items()})
            raise KeyboardInterrupt
        act(self)

    monkeypatch.setattr(HedgingEvalCallback, "act", ctrl_c_in_the_second_validation)
    with pytest.raises(KeyboardInterrupt):
        train_run(config, False)
    latest = json.loads((tmp_path / "run" / "checkpoints" / "latest.json").read_text())
    assert latest["timesteps"] == 2 * ROLLOUT
    saved = PPO.load(tmp_path / "run" / "checkpoints" / latest["path"] / "model.zip",
                     device="cpu")
    for key, value in saved.policy.state_dict().items():
        torch.testing.assert_close(value, after[key])
