"""Training stable-baselines3 agents for a run: the env, the callbacks, resume, save and load.

The agent trains on the run's env with its own view (``agent.env_kwargs``: action and reward
modes), through the native vector env and the SB3 adapter (normalised by VecNormalize when its
hyperparameters say so). Every ``eval_freq`` env steps it is scored on fixed validation paths
like any arena hedger, next to delta and a band (TensorBoard ``hedge/*``), and the best model
is kept; checkpoints let an interrupted run resume with its step count.
"""

from __future__ import annotations

import inspect
import json
import pickle
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from hedgearena.agents.callbacks import (
    EVALUATION,
    CheckpointCallback,
    HedgingEvalCallback,
    UpdateLogCallback,
    latest_checkpoint,
    write_agent,
)
from hedgearena.agents.saved import loading, read_json, replace_folder, required_file
from hedgearena.agents.sb3 import (
    OFF_POLICY,
    ObsNormalizer,
    SB3Hedger,
    algorithm,
    build_model,
    load_hyperparams,
    make_training_env,
    parse_normalize,
    timesteps,
)
from hedgearena.baselines.bands import FixedBand
from hedgearena.baselines.delta import BlackScholesDelta
from hedgearena.envs.config import EnvConfig
from hedgearena.envs.sb3_adapter import make_sb3_vec_env
from hedgearena.run_config import AUTO, AUTO_KEYS, RunConfig, fixed_view
from hedgearena.training import fitting_parts
from hedgearena.yaml_io import dump_yaml, load_yaml

CALIBRATION_BAND = 0.1
"""Tolerance (delta per unit of notional) of the band hedge ``auto`` is calibrated on."""
DEFAULT_VIEW: dict[str, Any] = {
    "action_mode": "band", "reward_mode": "terminal_mean_variance", "observe_pnl": True,
    "risk_aversion": AUTO, "pnl_reference": AUTO,
}
"""The view of an SB3 agent whose run config gives none: a no-trade band around the model delta,
the P&L so far observed, and the terminal mean-variance reward matched to ``mean + c std`` of
the hedging cost (see :func:`hedgearena.envs.core.reward`)."""
DEFAULT_TIMESTEPS = 200_000
"""The budget when neither the zoo file nor the run config gives ``n_timesteps``."""
AGENT_FILE = "agent.json"
"""Written beside a saved SB3 model: the algorithm and the agent's view of the env."""


def resolve_view(config: RunConfig) -> RunConfig:
    """``config`` (of an SB3 agent) with the agent's view complete (defaults, ``auto`` calibrated).

    A config whose ``agent.env_kwargs`` is empty gets :data:`DEFAULT_VIEW`.
    ``auto`` risk aversion and reference P&L match the episode's mean-variance criterion to
    ``mean + c std`` of the cost (``c = arena.c``) to first order around a good classical hedge:
    with ``X`` the episode P&L over the reward scale of the constant band of tolerance
    :data:`CALIBRATION_BAND` (the validation's band) on ``agent.eval_paths`` paths (seed
    ``arena.seed + 2``) of the history the agent fits on (:func:`fitting_parts`),
    ``pnl_reference = E[X]`` and ``risk_aversion = c / Std[X]``. The values are written into
    the returned config (so the run's ``config.yaml`` holds numbers); a config without ``auto``
    comes back unchanged.
    """
    agent = config.agent
    view = calibrated_view(dict(agent.env_kwargs) or dict(DEFAULT_VIEW), config, agent.eval_paths,
                           agent.valid_history)
    if view == agent.env_kwargs:
        return config
    return config.model_copy(update={"agent": agent.model_copy(update={"env_kwargs": view})})


def resolve_rllib_view(config: RunConfig) -> RunConfig:
    """``config`` with its RLlib agent's ``auto`` view calibrated as :func:`resolve_view` does.

    On ``rllib.eval_paths`` paths of the calibration band (seed ``arena.seed + 2``); a view
    without ``auto`` comes back unchanged.
    """
    spec = config.rllib
    view = calibrated_view(dict(spec.env_kwargs), config, spec.eval_paths, spec.valid_history)
    if view == spec.env_kwargs:
        return config
    return config.model_copy(update={"rllib": spec.model_copy(update={"env_kwargs": view})})


def calibrated_view(view: dict[str, Any], config: RunConfig, n_paths: int,
                    valid_history: float) -> dict[str, Any]:
    """``view`` with its ``auto`` ``risk_aversion`` / ``pnl_reference`` as numbers.

    ``pnl_reference = E[X]`` and ``risk_aversion = c / Std[X]`` (``c = arena.c``) of the scaled
    episode P&L ``X`` of the calibration band on ``n_paths`` paths of ``config``'s env with the
    view applied (seed ``arena.seed + 2``; on the replay, of the days before the validation's:
    :func:`fitting_parts` with ``valid_history``), rounded to 4 decimals (see
    :func:`resolve_view`).
    """
    auto = [key for key in AUTO_KEYS if view.get(key) == AUTO]
    if not auto:
        return view
    fitting = fitting_parts(config, config.env.config(), valid_history)[0]
    env_config = fitting.env.config().replace(**fixed_view(view))
    x = _band_scaled_pnl(env_config, n_paths, config.arena.seed + 2)
    calibrated = {"risk_aversion": config.arena.c / float(x.std(ddof=1)),
                  "pnl_reference": float(x.mean())}
    return {**view, **{key: round(calibrated[key], 4) for key in auto}}


def _band_scaled_pnl(env_config: EnvConfig, n_paths: int, seed: int) -> Any:
    """Episode P&L of the calibration band over the reward scale, ``(n_paths,)``."""
    from hedgearena.baselines.arena import run_arena
    from hedgearena.envs.hedging_env import reward_scale

    band = FixedBand(CALIBRATION_BAND)
    result = run_arena(env_config, [band], n_paths, seed=seed, progress=False,
                       totals_only=[band.name])
    return result.totals(band.name)["pnl"] / reward_scale(env_config)


def run_hyperparams(config: RunConfig) -> dict[str, Any]:
    """The zoo hyperparameters of the run's agent (``configs/<algo>.yml`` + overrides)."""
    return load_hyperparams(config.agent.algo, config.env.id,
                            overrides=config.agent.hyperparams)


HYPERPARAMS_FILE = "hyperparams.yaml"
"""The resolved hyperparameters of an SB3 run (zoo file + overrides), written at its start."""


def resolved_hyperparams(config: RunConfig) -> dict[str, Any]:
    """The run's hyperparameters as written to :data:`HYPERPARAMS_FILE` (YAML-plain values)."""
    return load_yaml(dump_yaml(_jsonable(run_hyperparams(config)))) or {}


def resume_seed(seed: int, timesteps: int) -> int:
    """The training env's and SB3's seed when a run resumes at ``timesteps`` env steps.

    A fresh stream of ``SeedSequence([seed, timesteps])``: a resumed run does not replay the
    paths of its first rollouts (a loaded model has no last observation, so SB3 resets the env),
    and two resumes from one checkpoint train alike. It is not the uninterrupted run's stream.

    Examples:
        >>> resume_seed(0, 20480) == resume_seed(0, 20480) != resume_seed(0, 40960)
        True
    """
    return int(np.random.SeedSequence([seed, timesteps]).generate_state(1)[0])


def _env(
    config: RunConfig, params: dict[str, Any], folder: Path | None, seed: int
) -> VecEnv:
    """The training env; with ``folder``, the normaliser's statistics are loaded from it."""
    kwargs = {**config.env.kwargs, **config.agent.env_kwargs}
    n_envs = _n_envs(params)
    normalize = parse_normalize(params.get("normalize"))
    gamma = float(params.get("gamma", 0.99))
    if folder is None or normalize is None:
        return make_training_env(config.env.id, kwargs, n_envs, seed, normalize, gamma)
    raw = make_sb3_vec_env(config.env.id, n_envs, seed=seed, **kwargs)
    return VecNormalize.load(str(folder / "vecnormalize.pkl"), raw)


def _callbacks(
    config: RunConfig, env_config: EnvConfig, run_dir: Path, budget: int
) -> tuple[HedgingEvalCallback, CheckpointCallback]:
    agent = config.agent
    view = dict(agent.env_kwargs)

    def make_hedger(model: Any, normalizer: ObsNormalizer | None) -> SB3Hedger:
        return SB3Hedger(model, normalizer, view, name="agent")

    baselines = [BlackScholesDelta(), FixedBand(CALIBRATION_BAND)]
    evaluation = HedgingEvalCallback(
        env_config, baselines, make_hedger, agent.eval_freq or max(budget // 10, 1),
        agent.eval_paths, config.arena.seed + 1, config.arena.c, run_dir / "best",
    )
    checkpoints = CheckpointCallback(run_dir / "checkpoints",
                                     agent.checkpoint_freq or max(budget // 5, 1), agent.algo,
                                     evaluation)
    return evaluation, checkpoints


def train_sb3(
    config: RunConfig, env_config: EnvConfig, run_dir: Path, progress: bool
) -> dict[str, Any]:
    """Train (or resume) the run's SB3 agent; the best validated model goes to ``run_dir/model``.

    ``env_config`` is the env of ``config`` (the history the agent may learn on); on the replay
    the agent trains on its days before the validation's and is validated on the rest
    (:func:`fitting_parts`, ``agent.valid_history``).

    Returns:
        A summary: algorithm, env steps, the validation history and the best objective.
    """
    params = run_hyperparams(config)
    budget = timesteps(params, DEFAULT_TIMESTEPS)
    _warn_partial_rollout(config.agent.algo, params, budget)
    resume = latest_checkpoint(run_dir / "checkpoints")
    seed = config.seed if resume is None else resume_seed(config.seed, resume[1])
    fitting, env_config = fitting_parts(config, env_config, config.agent.valid_history)
    venv = _env(fitting, params, resume[0] if resume else None, seed)
    if resume is None:
        (run_dir / HYPERPARAMS_FILE).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / HYPERPARAMS_FILE).write_text(dump_yaml(resolved_hyperparams(config)))
        model = build_model(config.agent.algo, venv, params, config.seed, str(run_dir / "tb"))
    else:
        model = algorithm(config.agent.algo).load(  # logs in this folder (it may have moved)
            resume[0] / "model.zip", env=venv, device="cpu", tensorboard_log=str(run_dir / "tb"))
        model.set_random_seed(seed)
        if config.agent.algo in OFF_POLICY and (resume[0] / "replay_buffer.pkl").is_file():
            model.load_replay_buffer(resume[0] / "replay_buffer.pkl")
    evaluation, checkpoints = _callbacks(config, env_config, run_dir, budget)
    if resume is not None and (resume[0] / EVALUATION).is_file():
        evaluation.restore(resume[0])
    remaining = max(budget - model.num_timesteps, 0)
    if remaining:  # a finished run started again changes nothing
        try:
            model.learn(remaining, callback=[evaluation, checkpoints, UpdateLogCallback()],
                        progress_bar=progress, reset_num_timesteps=resume is None,
                        tb_log_name=config.agent.algo)
        except KeyboardInterrupt:
            checkpoints.save_interrupted()  # resume from here, not from the last periodic one
            raise
        checkpoints.save()
    _publish(run_dir, config, model, venv)
    return {"algo": config.agent.algo, "timesteps": int(model.num_timesteps),
            "resumed_from": resume[1] if resume else None, "best_objective": evaluation.best,
            "history": evaluation.history, "hyperparams": _jsonable(params)}


def _warn_partial_rollout(algo: str, params: dict[str, Any], budget: int) -> None:
    """Warn when an on-policy budget is not whole rollouts (SB3 trains the last one whole)."""
    if algo in OFF_POLICY:
        return
    default = inspect.signature(algorithm(algo)).parameters["n_steps"].default  # SB3's own
    n_steps = params.get("n_steps", default)
    rollout = int(n_steps) * _n_envs(params)
    if budget % rollout:
        whole = -(-budget // rollout) * rollout
        warnings.warn(
            f"n_timesteps {budget} is not a whole number of rollouts (n_steps x n_envs = "
            f"{rollout}): {algo} collects whole rollouts and will train {whole} steps",
            stacklevel=3,
        )


DEFAULT_N_ENVS = 64
"""Paths of the training env when the hyperparameters give no ``n_envs``."""


def _n_envs(params: dict[str, Any]) -> int:
    """The training env's paths (``n_envs``, or :data:`DEFAULT_N_ENVS`)."""
    return int(params.get("n_envs", DEFAULT_N_ENVS))


def _publish(run_dir: Path, config: RunConfig, model: Any, venv: VecEnv) -> None:
    """Copy the best validated model (or the last one) to ``run_dir/model`` with agent.json.

    ``agent.json`` holds the algorithm, the agent's view of the env and the env it trained on
    (as ``env.yaml`` records it), which scoring the saved agent checks.

    ``model/`` is replaced whole (:func:`~hedgearena.agents.saved.replace_folder`).
    """
    from hedgearena.agents.saved import env_record

    best = run_dir / "best"
    view = {"algo": config.agent.algo, "env_kwargs": config.agent.env_kwargs,
            "env": env_record(config)}  # the env it trained on, before its view

    def write(folder: Path) -> None:
        if (best / "model.zip").is_file():
            shutil.copytree(best, folder, dirs_exist_ok=True)
        else:
            write_agent(model, venv, folder)
        (folder / AGENT_FILE).write_text(json.dumps(view, indent=2) + "\n")

    replace_folder(run_dir / "model", write)


def load_sb3_hedger(model_dir: Path, config: RunConfig, name: str) -> SB3Hedger:
    """The saved SB3 agent of ``model_dir`` as an arena hedger (deterministic actions)."""
    view = read_json(model_dir / AGENT_FILE, "SB3 agent description", ("algo", "env_kwargs"))
    cls = algorithm(view["algo"])
    weights = required_file(model_dir / "model.zip", "SB3 model")
    with loading(weights, "SB3 model"):
        model = cls.load(weights, device="cpu")
    normalizer = None
    stats = model_dir / "vecnormalize.pkl"
    if stats.is_file():
        with loading(stats, "SB3 normaliser"), stats.open("rb") as handle:
            normalizer = ObsNormalizer.of(pickle.load(handle))  # our own file
    return SB3Hedger(model, normalizer, view["env_kwargs"], name=name)


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, int | float | str | bool | type(None) | list | dict) else repr(v)
            for k, v in params.items()}
