"""Tests that kill mutants of the SB3 agent wrapper the suite let live (hand-made mutation testing
of ``agents/sb3.py``, ``agents/callbacks.py`` and ``agents/training.py``).

Each test names the code it pins and the mutations that survived every other test. Expected
numbers come from the hyperparameters given (what SB3 must receive), the documented defaults
(``eval_freq`` 0: ten validations per run, ``checkpoint_freq`` 0: five checkpoints, 64 paths
without ``n_envs``), the objective's formula ``mean + c std`` of the hedging cost (Cao, Chen,
Hull and Poulos 2021, eq. 3, sample std) computed here with numpy, and snapshots of the weights
taken here, not by the code under test. Training runs are tiny (a few hundred env steps).
"""

from __future__ import annotations

import copy
import json
import pickle
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from hedgearena.run_config import RunConfig

VIEW = {"action_mode": "band", "reward_mode": "pnl"}
PPO_TINY = {"n_envs": 16, "n_steps": 8, "batch_size": 64, "n_epochs": 1, "normalize": True}
"""A PPO of 128-step rollouts (8 steps x 16 paths), observations normalised."""


def _config(tmp_path: Path, hyperparams: dict[str, Any], **agent: Any) -> RunConfig:
    return RunConfig.model_validate({
        "agent": {"algo": "ppo", "hyperparams": hyperparams, "eval_paths": 64, **agent},
        "arena": {"paths": 64, "hedgers": ["delta"]}, "out": str(tmp_path), "name": "run"})


# ------------------------------------------------------------------------------ agents/sb3.py
def test_the_zoo_hyperparameters_reach_the_sb3_model() -> None:
    """build_model hands every zoo key to SB3 as the zoo means it: n_steps, batch_size,
    n_epochs, gamma as given; ``lin_1e-3`` and ``lin_0.3`` as linear schedules of the progress
    remaining p (1e-3 p and 0.3 p, held at 0 for p < 0); the ``dict(net_arch=[7, 5])`` string
    as two hidden layers of 7 and 5 units in both the policy and the value network; the seed
    as given. Mutants killed: clip_range left as the string (not a schedule), the seed shifted,
    policy_kwargs given as a dict dropped, the schedule not held at 0 or reversed."""
    from hedgearena.agents.sb3 import build_model, make_training_env

    venv = make_training_env("hedgearena/ShortCall-v0", VIEW, 4, 0, None)
    model = build_model("ppo", venv, {"n_steps": 8, "batch_size": 16, "n_epochs": 3,
                                      "gamma": 0.95, "learning_rate": "lin_1e-3",
                                      "clip_range": "lin_0.3",
                                      "policy_kwargs": {"net_arch": [7, 5]}}, seed=11)
    assert (model.n_steps, model.batch_size, model.n_epochs, model.gamma) == (8, 16, 3, 0.95)
    assert model.seed == 11
    for progress, rate in ((1.0, 1e-3), (0.25, 2.5e-4), (-0.5, 0.0)):
        assert model.lr_schedule(progress) == pytest.approx(rate, abs=1e-15)
        assert model.clip_range(progress) == pytest.approx(300 * rate, abs=1e-15)
    for net in (model.policy.mlp_extractor.policy_net, model.policy.mlp_extractor.value_net):
        layers = [m.out_features for m in net if isinstance(m, torch.nn.Linear)]
        assert layers == [7, 5]
    as_string = build_model("ppo", venv, {"policy_kwargs": "dict(net_arch=[3])"}, seed=0)
    assert [m.out_features for m in as_string.policy.mlp_extractor.policy_net
            if isinstance(m, torch.nn.Linear)] == [3]
    venv.close()


def test_the_training_env_normalises_rewards_with_the_algorithms_gamma() -> None:
    """``normalize: {norm_reward: true}`` and ``gamma: 0.9`` give a VecNormalize that
    normalises rewards with the discount 0.9 (its return estimate must be the algorithm's);
    ``normalize: true`` normalises observations only; no ``n_envs``: 64 paths (the documented
    default). Mutants killed: the user's norm_reward overridden by the default False, the gamma
    not passed (0.99), training's ``_env`` reading a fixed 0.99, the default paths changed."""
    from stable_baselines3.common.vec_env import VecNormalize

    from hedgearena.agents.training import _env

    config = _config(Path("unused"), {})
    venv = _env(config, {"normalize": {"norm_reward": True}, "gamma": 0.9, "n_envs": 4},
                None, 1)
    assert isinstance(venv, VecNormalize)
    assert (venv.norm_obs, venv.norm_reward, venv.gamma, venv.num_envs) == (True, True, 0.9, 4)
    plain = _env(config, {"normalize": True}, None, 1)
    assert isinstance(plain, VecNormalize)
    assert (plain.norm_obs, plain.norm_reward, plain.num_envs) == (True, False, 64)
    venv.close()
    plain.close()
    clash = RunConfig.model_validate({
        "env": {"kwargs": {"action_mode": "target", "cost": 0.002}},
        "agent": {"algo": "ppo", "env_kwargs": {"action_mode": "band"}}})
    venv = _env(clash, {"n_envs": 2}, None, 1)
    (trained_on,) = {c.action_mode for c in venv.get_attr("config")}
    assert trained_on == "band"  # the agent's view over the case's kwargs
    assert venv.get_attr("config")[0].cost.rate == 0.002  # the case's cost kept
    venv.close()


def test_a_budget_shorter_than_one_rollout_is_warned_about_too() -> None:
    """100 env steps of 128-step rollouts (8 x 16) train 128 (mutant: only budgets above one
    rollout warned); a whole number of rollouts draws no warning."""
    import warnings

    from hedgearena.agents.training import _warn_partial_rollout

    with pytest.warns(UserWarning, match=r"n_timesteps 100 .* \(n_steps x n_envs = 128\).* "
                                         r"train 128 steps"):
        _warn_partial_rollout("ppo", {"n_steps": 8, "n_envs": 16}, 100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_partial_rollout("recurrent_ppo", {"n_steps": 8, "n_envs": 16}, 384)


def test_a_resumed_training_env_continues_the_checkpoints_normaliser(tmp_path: Path) -> None:
    """On a resume, ``_env`` loads the checkpoint's VecNormalize statistics (mean 3, variance
    4, count 500 written here) instead of starting from SB3's prior (mean 0, variance 1).
    Mutant killed: a fresh normaliser on resume (the agent's inputs would be rescaled under
    it)."""
    from hedgearena.agents.sb3 import make_training_env
    from hedgearena.agents.training import _env

    saved = make_training_env("hedgearena/ShortCall-v0", VIEW, 2, 0, {})
    shape = saved.obs_rms.mean.shape
    saved.obs_rms.mean, saved.obs_rms.var = np.full(shape, 3.0), np.full(shape, 4.0)
    saved.obs_rms.count = 500.0
    saved.save(str(tmp_path / "vecnormalize.pkl"))
    venv = _env(_config(tmp_path, {}), {"normalize": True, "n_envs": 2}, tmp_path, 5)
    np.testing.assert_array_equal(venv.obs_rms.mean, 3.0)
    np.testing.assert_array_equal(venv.obs_rms.var, 4.0)
    assert venv.obs_rms.count == 500.0
    saved.close()
    venv.close()


# ------------------------------------------------------------------------ agents/callbacks.py
def test_validation_scores_are_the_cost_statistics_of_the_arena_paths() -> None:
    """validation_scores on 64 paths of seed 3 with c = 2: the objective is mean + 2 std
    (sample std, ddof 1: Cao, Chen, Hull and Poulos 2021, eq. 3) of the arena's hedging cost
    on the same paths, mean_cost the mean, std_cost the sample std, turnover the mean per path,
    all computed here with numpy. Mutants killed: ddof 0, the summed turnover, c replaced by 1,
    the median for the mean."""
    from hedgearena.agents.callbacks import validation_scores
    from hedgearena.baselines.arena import run_arena
    from hedgearena.baselines.delta import BlackScholesDelta
    from hedgearena.envs.config import make_config

    config = make_config("ShortCall")
    scores = validation_scores(config, [BlackScholesDelta(every=2)], 64, 3, 2.0)
    hedger = BlackScholesDelta(every=2)
    result = run_arena(config, [hedger], n_paths=64, seed=3, progress=False)
    cost = np.asarray(result.cost(hedger.name), dtype=np.float64)
    turnover = np.asarray(result.totals(hedger.name)["turnover"], dtype=np.float64)
    n = cost.size
    mean = cost.sum() / n
    std = np.sqrt(((cost - mean) ** 2).sum() / (n - 1))
    got = scores[hedger.name]
    assert got["mean_cost"] == pytest.approx(mean, rel=1e-12)
    assert got["std_cost"] == pytest.approx(std, rel=1e-12)
    assert got["objective"] == pytest.approx(mean + 2.0 * std, rel=1e-12)
    assert got["turnover"] == pytest.approx(turnover.sum() / n, rel=1e-12)
    assert std > 0.0  # the mutants differ
    assert abs(np.median(cost) - mean) > 1e-6 * abs(mean)


def test_an_off_policy_checkpoint_counts_the_rows_of_a_wrapped_replay_buffer(
    tmp_path: Path
) -> None:
    """_stored_steps of a replay buffer of 4 rows (16 paths each) that wrapped inside the
    rollout: the rollout started at 256 env steps with the buffer at row 3; the buffer is now
    at row 1 (rows 3, 0 stored: 2 steps of 16 paths), so the checkpoint counts 256 + 32 = 288
    of the 304 counted (the step in progress is not stored yet). Mutant killed: the position
    difference taken without the modulo (-2 rows: 224 steps)."""
    from hedgearena.agents.callbacks import CheckpointCallback

    buffer = SimpleNamespace(pos=3, buffer_size=4)
    model = SimpleNamespace(num_timesteps=256, replay_buffer=buffer,
                            get_env=lambda: SimpleNamespace(num_envs=16))
    callback = CheckpointCallback(tmp_path, save_freq=10**6, algo="sac")
    callback.init_callback(model)  # type: ignore[arg-type]
    callback._rollout_start, callback._buffer_start = 256, 3
    buffer.pos, model.num_timesteps = 1, 304
    assert callback._stored_steps() == 288


@pytest.mark.usefixtures("torch_one_thread")
def test_a_ctrl_c_inside_a_ppo_update_saves_the_weights_and_optimizer_it_started_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PPO with 128-step rollouts, 2 epochs of 2 minibatches (4 optimizer steps an update),
    stopped by Ctrl-C before the 6th optimizer step (inside the second update, after one of
    its steps moved the weights). The checkpoint holds the weights and the Adam state the
    second update started from (snapshots taken here when ``train()`` was called) with the
    128 steps they learnt from. Mutants killed: the weights, or the optimizer, not rolled
    back; the snapshot kept by reference (state_dict shares the parameters' storage)."""
    from stable_baselines3 import PPO

    from hedgearena.agents.callbacks import CheckpointCallback
    from hedgearena.agents.sb3 import build_model, make_training_env

    venv = make_training_env("hedgearena/ShortCall-v0", VIEW, 16, 0, None)
    model = build_model("ppo", venv, {"n_steps": 8, "batch_size": 64, "n_epochs": 2}, seed=0)
    snapshots: list[tuple[dict[str, Any], dict[str, Any]]] = []
    train = model.train

    def spied_train() -> None:
        snapshots.append((copy.deepcopy(model.policy.state_dict()),
                          copy.deepcopy(model.policy.optimizer.state_dict())))
        train()

    monkeypatch.setattr(model, "train", spied_train)
    optimizer, step, calls = model.policy.optimizer, model.policy.optimizer.step, [0]

    def stopping_step(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 6:
            raise KeyboardInterrupt
        return step(*args, **kwargs)

    monkeypatch.setattr(optimizer, "step", stopping_step)
    callback = CheckpointCallback(tmp_path, save_freq=10**6, algo="ppo")
    with pytest.raises(KeyboardInterrupt):
        model.learn(1024, callback=callback)
    assert len(snapshots) == 2
    weights, adam = snapshots[1]
    live = model.policy.state_dict()
    assert any(not torch.equal(weights[k], live[k]) for k in weights)  # the 5th step moved them
    folder = callback.save_interrupted()
    assert json.loads((tmp_path / "latest.json").read_text())["timesteps"] == 128
    saved = PPO.load(folder / "model.zip", device="cpu")
    assert saved.num_timesteps == 128
    now = saved.policy.state_dict()
    for key, value in weights.items():
        torch.testing.assert_close(now[key], value, rtol=0, atol=0)
    state = saved.policy.optimizer.state_dict()["state"]
    for index, entry in adam["state"].items():
        assert float(state[index]["step"]) == float(entry["step"]) == 4.0
        torch.testing.assert_close(state[index]["exp_avg"], entry["exp_avg"], rtol=0, atol=0)
    venv.close()


# ------------------------------------------------------------------------- agents/training.py
def test_the_default_intervals_and_the_validation_paths() -> None:
    """_callbacks of a budget of 1,000 env steps without eval_freq / checkpoint_freq:
    validations every 100 steps (ten per run) and checkpoints every 200 (five per run), as
    run_config documents; the validation on eval_paths paths of seed arena.seed + 1 with the
    arena's c (here 2.5). Mutants killed: the two defaults swapped for other fractions, the
    validation seeded with arena.seed (the scoring paths), c replaced by 1."""
    from hedgearena.agents.training import _callbacks

    config = RunConfig.model_validate({"agent": {"algo": "ppo", "eval_paths": 96},
                                       "arena": {"seed": 40, "c": 2.5}})
    evaluation, checkpoints = _callbacks(config, config.env.config(), Path("unused"), 1000)
    assert (evaluation.eval_freq, checkpoints.save_freq) == (100, 200)
    assert (evaluation.n_paths, evaluation.seed, evaluation.c) == (96, 41, 2.5)
    assert checkpoints.evaluation is evaluation
    given = config.model_copy(update={"agent": config.agent.model_copy(
        update={"eval_freq": 30, "checkpoint_freq": 70})})
    evaluation, checkpoints = _callbacks(given, config.env.config(), Path("unused"), 1000)
    assert (evaluation.eval_freq, checkpoints.save_freq) == (30, 70)


@pytest.mark.usefixtures("torch_one_thread")
def test_resumes_repeat_and_the_published_model_scores_the_best_objective(
    tmp_path: Path
) -> None:
    """A PPO run of one rollout (128 steps) copied, and both copies resumed to 256 steps:

    - the two resumes train alike (same checkpoint, same resume seed: identical weights);
    - the published model, loaded from disk with its saved normaliser, scores on the
      validation paths (eval_paths 64 of seed arena.seed + 1) exactly the best objective of
      the history, mean + c std (ddof 1) of its cost computed here;
    - only the newest checkpoint keeps a copy of the best model.

    Mutants killed: the resume's SB3 seed not set (torch kept the run's first seed, 0, whose
    stream the first rollouts drew), the hyperparameters left out of training.json,
    the validation scoring the agent without its normaliser, the normaliser not loaded with
    the published model, old checkpoints keeping their best/ copies.
    """
    from hedgearena.agents.training import load_sb3_hedger, resume_seed
    from hedgearena.baselines.arena import run_arena
    from hedgearena.training import train_run

    train_run(_config(tmp_path / "a", {**PPO_TINY, "n_timesteps": 128}), False)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    infos = {}
    for name in ("a", "b"):
        config, infos[name] = train_run(_config(tmp_path / name, {**PPO_TINY,
                                                                    "n_timesteps": 256}), False)
        assert infos[name]["resumed_from"] == 128
        assert torch.initial_seed() == resume_seed(config.seed, 128)  # SB3's seed: a fresh one
    weights = [load_sb3_hedger(tmp_path / name / "run" / "model", config, "agent")
               .model.policy.state_dict() for name in ("a", "b")]
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key], rtol=0, atol=0)
    info = infos["a"]
    assert {key: info["hyperparams"][key] for key in PPO_TINY} == PPO_TINY  # training.json's
    assert info["hyperparams"]["n_timesteps"] == 256
    assert [int(entry["timesteps"]) for entry in info["history"]] == [128, 256]
    run = tmp_path / "a" / "run"
    hedger = load_sb3_hedger(run / "model", config, "agent")
    assert hedger.normalizer is not None
    result = run_arena(config.env.config(), [hedger], n_paths=64, seed=config.arena.seed + 1,
                       progress=False)
    cost = np.asarray(result.cost("agent"), dtype=np.float64)
    objective = cost.mean() + config.arena.c * cost.std(ddof=1)
    assert objective == pytest.approx(info["best_objective"], rel=1e-9)
    assert info["best_objective"] == min(entry["objective"] for entry in info["history"])
    with_best = sorted(p.parent.name for p in (run / "checkpoints").glob("step_*/best"))
    newest = json.loads((run / "checkpoints" / "latest.json").read_text())["path"]
    assert with_best == [newest]


def test_zoo_files_are_read_with_counts_as_integers_and_overrides_on_top(tmp_path: Path) -> None:
    """load_hyperparams of a zoo file as rl-zoo writes it (``!!float 1e4`` budgets): the counts
    of COUNT_KEYS come back as ints (10,000, not 10000.0, which SB3's buffers and range()
    refuse), other floats stay floats (gamma 1.0), the run's overrides replace the file's; a
    file without the env's block is warned about naming its blocks (the zoo refuses it), and
    a file that does not exist is named. Mutants killed: the integral-float conversion
    dropped, the warning dropped, the missing file accepted as "no hyperparameters"."""
    import warnings

    from hedgearena.agents.sb3 import load_hyperparams

    path = tmp_path / "sac.yml"
    path.write_text("hedgearena/ShortCall-v0:\n  n_timesteps: !!float 1e4\n"
                    "  buffer_size: !!float 5e3\n  batch_size: 64.0\n  gamma: 1.0\n"
                    "  learning_rate: !!float 3e-4\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        params = load_hyperparams("sac", "hedgearena/ShortCall-v0", path, {"batch_size": 32.0})
    assert params == {"n_timesteps": 10_000, "buffer_size": 5_000, "batch_size": 32,
                      "gamma": 1.0, "learning_rate": 3e-4}
    assert [type(params[k]) for k in ("n_timesteps", "buffer_size", "batch_size", "gamma")] == [
        int, int, int, float]
    with pytest.warns(UserWarning, match=r"sac.yml has no hyperparameters for "
                                         r"hedgearena/OptionBook-v0 \(its blocks: "
                                         r"hedgearena/ShortCall-v0\)"):
        assert load_hyperparams("sac", "hedgearena/OptionBook-v0", path, {"gamma": 0.9}) == {
            "gamma": 0.9}
    with pytest.raises(ValueError, match=r"hyperparameter file '.*nowhere.yml' does not exist"):
        load_hyperparams("sac", "hedgearena/ShortCall-v0", tmp_path / "nowhere.yml")


def test_the_documented_special_values_of_hyperparameters_are_accepted_and_bad_ones_named(
) -> None:
    """check_hyperparams lets through what SB3 documents: ``gradient_steps: -1`` (as many
    gradient steps as env steps), ``ent_coef: auto_0.1`` (learnt, starting at 0.1) for SAC,
    ``n_steps: 1`` and ``learning_starts: 0``; it names ``auto_x`` (not a number) and a
    budget below 1 (``n_timesteps: 0``) and a ``clip_obs`` of 0 (VecNormalize would clip every
    observation to 0). Mutants killed: -1 refused, ``auto_<anything>`` accepted, a zero budget
    accepted, clip_obs 0 accepted."""
    from hedgearena.agents.sb3 import check_hyperparams, timesteps

    check_hyperparams("sac", {"gradient_steps": -1, "ent_coef": "auto_0.1", "learning_starts": 0})
    check_hyperparams("ppo", {"n_steps": 1, "batch_size": 1})
    with pytest.raises(ValueError, match=r"sac hyperparameter ent_coef must be a number >= 0 "
                                         r"\(or auto / auto_<number> for SAC and TQC\), "
                                         r"got 'auto_x'"):
        check_hyperparams("sac", {"ent_coef": "auto_x"})
    with pytest.raises(ValueError, match=r"normalize.clip_obs must be a number > 0, got 0"):
        check_hyperparams("ppo", {"normalize": {"clip_obs": 0}})  # every observation 0
    check_hyperparams("ppo", {"normalize": {"clip_obs": 5, "clip_reward": 1e-3}})
    assert timesteps({"n_timesteps": 1}, 5) == 1
    assert timesteps({"n_timesteps": 1e4}, 5) == 10_000
    assert timesteps({}, 5) == 5
    with pytest.raises(ValueError, match=r"n_timesteps must be a whole number >= 1 "
                                         r"\(env steps\), got 0"):
        timesteps({"n_timesteps": 0}, 5)


@pytest.mark.parametrize("budget", [True, 100.5, float("inf"), "1e4"])
def test_a_budget_that_is_no_whole_number_of_steps_is_named(budget: Any) -> None:
    """Before: ``n_timesteps: true`` trained 1 env step and ``100.5`` trained 100, silently
    (``timesteps`` took any finite number >= 1 and truncated it); train.py's checks passed
    both. A budget is a whole number of env steps (``1e4``, read as 10000.0, is one)."""
    from hedgearena.agents.sb3 import timesteps

    with pytest.raises(ValueError, match=r"n_timesteps must be a whole number >= 1 "
                                         r"\(env steps\), got "):
        timesteps({"n_timesteps": budget}, 5)


def test_the_frozen_normaliser_is_vecnormalizes_formula_with_its_epsilon_and_clip() -> None:
    """ObsNormalizer against VecNormalize.normalize_obs, ``clip((obs - mean) / sqrt(var + eps),
    -clip, clip)`` (stable-baselines3's formula, eps 1e-8): an entry of variance 3e-8 (above
    CONSTANT_VARIANCE, so scaled) is divided by sqrt(4e-8) = 2e-4, not sqrt(3e-8); an entry
    50 stds away is clipped at 10; a VecNormalize that does not normalise observations gives
    no normaliser. Mutants killed: epsilon dropped, the clip dropped, norm_obs ignored."""
    import gymnasium as gym
    from stable_baselines3.common.running_mean_std import RunningMeanStd
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    import hedgearena  # noqa: F401  (registers the ids)
    from hedgearena.agents.sb3 import ObsNormalizer

    venv = VecNormalize(DummyVecEnv([lambda: gym.make("hedgearena/ShortCall-v0")]),
                        norm_reward=False, clip_obs=10.0, epsilon=1e-8)
    rms = RunningMeanStd(shape=(2,))
    rms.mean, rms.var, rms.count = np.array([1.0, 0.0]), np.array([3e-8, 1.0]), 1e9
    venv.obs_rms = rms
    normalizer = ObsNormalizer.of(venv)
    assert normalizer is not None
    obs = np.array([[1.0 + 1e-4, -50.0]], dtype=np.float32)
    out = normalizer(obs)
    moved = float(np.float32(1.0 + 1e-4)) - 1.0  # float32 rounding of the move
    assert out[0, 0] == pytest.approx(moved / 2e-4, rel=1e-5)  # 0.5, not 0.577
    assert out[0, 1] == -10.0
    np.testing.assert_allclose(out, venv.normalize_obs(obs), rtol=1e-5)
    raw = VecNormalize(DummyVecEnv([lambda: gym.make("hedgearena/ShortCall-v0")]),
                       norm_obs=False, norm_reward=True)
    assert ObsNormalizer.of(raw) is None
    venv.close()
    raw.close()


@pytest.mark.usefixtures("torch_one_thread")
def test_an_off_policy_runs_last_validation_scores_its_final_weights(tmp_path: Path) -> None:
    """SAC, 256 env steps (16 paths), a validation due at 256 (every 25 steps): the budget's
    last step is validated at the end of training, after its gradient step, so the history's
    last objective is the score of the final checkpoint's weights (loaded from step_256 and
    scored here on the validation paths). Mutant killed: the last step validated in its
    callback, before the final update (the budget's step let through ``<=``)."""
    from stable_baselines3 import SAC

    from hedgearena.agents.sb3 import ObsNormalizer, SB3Hedger
    from hedgearena.baselines.arena import run_arena
    from hedgearena.training import train_run

    hyperparams = {"n_envs": 16, "learning_starts": 64, "batch_size": 32, "n_timesteps": 256}
    config = _config(tmp_path, hyperparams)
    config = config.model_copy(update={"agent": config.agent.model_copy(update={"algo": "sac"})})
    config, info = train_run(config, False)
    assert [int(e["timesteps"]) for e in info["history"]][-2:] == [240, 256]
    final = tmp_path / "run" / "checkpoints" / "step_256"
    model = SAC.load(final / "model.zip", device="cpu")
    with (final / "vecnormalize.pkl").open("rb") as handle:  # configs/sac.yml normalises
        normalizer = ObsNormalizer.of(pickle.load(handle))
    assert normalizer is not None
    hedger = SB3Hedger(model, normalizer, config.agent.env_kwargs, name="final")
    result = run_arena(config.env.config(), [hedger], n_paths=64, seed=config.arena.seed + 1,
                       progress=False)
    cost = np.asarray(result.cost("final"), dtype=np.float64)
    objective = cost.mean() + config.arena.c * cost.std(ddof=1)
    assert info["history"][-1]["objective"] == pytest.approx(objective, rel=1e-9)


@pytest.mark.usefixtures("torch_one_thread")
def test_a_ctrl_c_after_the_last_update_keeps_the_trained_weights(tmp_path: Path) -> None:
    """PPO, two rollouts of 128 steps, stopped by Ctrl-C in the end-of-training callbacks (the
    final validation), after the second update finished all its epochs: the checkpoint holds
    the final weights (snapshot taken here when the Ctrl-C comes) with all 256 steps. Mutant
    killed: an update whose epochs are all done taken for one stopped inside (rolled back to
    the weights before it, with 128 steps: a whole rollout lost)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    from hedgearena.agents.callbacks import CheckpointCallback
    from hedgearena.agents.sb3 import build_model, make_training_env

    venv = make_training_env("hedgearena/ShortCall-v0", VIEW, 16, 0, None)
    model = build_model("ppo", venv, {"n_steps": 8, "batch_size": 64, "n_epochs": 2}, seed=0)
    final: list[dict[str, Any]] = []

    class CtrlCAtTheEnd(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_training_end(self) -> None:
            final.append(copy.deepcopy(self.model.policy.state_dict()))
            raise KeyboardInterrupt

    checkpoints = CheckpointCallback(tmp_path, save_freq=10**6, algo="ppo")
    with pytest.raises(KeyboardInterrupt):
        model.learn(256, callback=[checkpoints, CtrlCAtTheEnd()])
    folder = checkpoints.save_interrupted()
    assert json.loads((tmp_path / "latest.json").read_text())["timesteps"] == 256
    saved = PPO.load(folder / "model.zip", device="cpu").policy.state_dict()
    for key, value in final[0].items():
        torch.testing.assert_close(saved[key], value, rtol=0, atol=0)
    venv.close()


def test_the_baselines_are_scored_on_the_agents_validation_paths(tmp_path: Path) -> None:
    """HedgingEvalCallback (8 paths of seed 3, c = 1.5), the agent stood in for by delta
    every 2 decisions: hedge/objective_delta is delta's mean + 1.5 std of the cost on the
    arena's paths of seed 3, and hedge/objective the stand-in's on the same paths (both
    computed here with numpy), logged at the callback's step. Mutant killed: the baselines
    scored on other paths (seed 4) than the agent."""
    from stable_baselines3.common.logger import KVWriter, Logger

    from hedgearena.agents.callbacks import HedgingEvalCallback
    from hedgearena.baselines.arena import run_arena
    from hedgearena.baselines.delta import BlackScholesDelta
    from hedgearena.envs.config import make_config

    rows: list[tuple[int, dict[str, Any]]] = []

    class Capture(KVWriter):
        def write(self, key_values: dict[str, Any], key_excluded: Any, step: int = 0) -> None:
            rows.append((step, dict(key_values)))

    config = make_config("ShortCall")
    callback = HedgingEvalCallback(config, [BlackScholesDelta()],
                                   lambda model, normalizer: BlackScholesDelta(every=2),
                                   eval_freq=10, n_paths=8, seed=3, c=1.5,
                                   best_dir=tmp_path / "best")
    model = SimpleNamespace(num_timesteps=40, logger=Logger(None, [Capture()]),
                            get_env=lambda: SimpleNamespace(),
                            save=lambda path: Path(path).write_bytes(b"zip"))
    callback.init_callback(model)  # type: ignore[arg-type]
    callback.on_training_start({}, {})
    callback.evaluate()
    delta, every = BlackScholesDelta(), BlackScholesDelta(every=2)
    result = run_arena(config, [delta, every], n_paths=8, seed=3, progress=False)

    def objective(name: str) -> float:
        cost = np.asarray(result.cost(name), dtype=np.float64)
        return float(cost.mean() + 1.5 * cost.std(ddof=1))

    step, logged = rows[-1]
    assert step == 40
    assert logged["hedge/objective_delta"] == pytest.approx(objective(delta.name), rel=1e-12)
    assert logged["hedge/objective"] == pytest.approx(objective(every.name), rel=1e-12)
    assert objective(delta.name) != pytest.approx(objective(every.name), rel=1e-6)
