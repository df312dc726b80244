"""RLlib agents on the native vector env: ``python train.py rllib --config configs/rllib_ppo.yml``.

RLlib's new API stack samples with env runners (Ray actors), each stepping a Gymnasium vector
env with NEXT_STEP autoreset. :func:`register_rllib_envs` registers every hedgearena id with
``ray.tune.registry.register_env`` under its own name: the env creator returns the native
:class:`~hedgearena.envs.vector_env.VecHedgingEnv` (``gym.make_vec(id, num_envs,
vectorization_mode="vector_entry_point", autoreset_mode="next_step")``), and the config sets
``env_runners(gym_env_vectorize_mode="vector_entry_point")`` so RLlib asks the creator for the
whole vector (``num_envs_per_env_runner`` paths stepped as arrays) instead of wrapping
single envs::

    from ray.rllib.algorithms.ppo import PPOConfig
    from hedgearena.agents.rllib import register_rllib_envs

    register_rllib_envs()
    config = (PPOConfig().environment("hedgearena/ShortCall-v0", env_config={"cost": 0.002})
              .env_runners(num_env_runners=2, num_envs_per_env_runner=64,
                           gym_env_vectorize_mode="vector_entry_point"))

:func:`train_and_score_rllib` is the ``rllib`` command: it trains the run config's ``rllib``
section (:class:`hedgearena.run_config.RllibSpec`) with validation on fixed paths (the best
module is kept), checkpoints and resume, then scores the agent in the arena against the
baselines on the same paths, like any hedger: :class:`RLlibHedger` feeds the observations to
the RLlib module and turns its deterministic actions into positions with
:meth:`VecHedgingEnv.positions_from_actions`. The run folder
(``runs/rllib_ppo-<env>-seed<seed>/``) is laid out like :mod:`hedgearena.training`'s, with the
RLlib module in ``model/module/`` and ``model/rllib.json``. With ``rllib.normalize_obs`` (the
default) the module reads standardised observations, as an SB3 agent behind ``VecNormalize``
does: :class:`ObservationNormalizer`, fitted before training and frozen, applied by the env
runners' env and by :class:`RLlibHedger`, saved in ``rllib.json``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray

from hedgearena.agents.saved import check_saved_agent, loading, read_json, replace_folder
from hedgearena.baselines.benchmark import validation_split
from hedgearena.baselines.hedger import Hedger, State, check_agent_spaces
from hedgearena.envs.config import EnvConfig
from hedgearena.envs.vector_env import VecHedgingEnv
from hedgearena.run_config import SEED_LIMIT, RllibSpec, RunConfig, fixed_view, load_config
from hedgearena.sweep import ray_session, require
from hedgearena.training import (
    check_arena,
    check_evaluation_config,
    check_resumable,
    check_scoring_split,
    fitting_parts,
    learning_env,
    score_agent,
    training_config,
    write_env_yaml,
)

AGENT_FILE = "rllib.json"
"""Written beside a saved RLlib module: the algorithm and the agent's view of the env."""
LATEST = "latest.json"
"""The checkpoint folder's pointer to its newest checkpoint and step count."""
OBS_NORMALIZER = "observation_normalizer"
"""The key of the frozen observation normaliser in ``rllib.json``, ``latest.json`` and the env
runners' env config (:func:`make_vector_env` pops it there)."""
MIN_STD = 1e-8
"""An entry whose standard deviation is below this is constant: it is shifted, not scaled."""


@dataclasses.dataclass(frozen=True)
class ObservationNormalizer:
    """A frozen standardisation of observations: ``clip((obs - mean) / std, -clip, clip)``.

    The RLlib agent's counterpart of stable-baselines3's ``VecNormalize(norm_obs=True)``
    (``rllib.normalize_obs``), with statistics fitted once before training
    (:func:`fit_observation_normalizer`) instead of running ones: the env runners
    (:func:`make_vector_env`) and the arena's :class:`RLlibHedger` apply the same map, it is
    saved with the module, and a resumed run fits the same numbers. (RLlib's own
    ``MeanStdFilter`` connector merges its runners' statistics wrongly in Ray 2.60: a mean
    near zero, a standard deviation near the root mean square.)

    Attributes:
        mean: each entry's mean, ``(obs_dim,)``, in the observation's units.
        std: each entry's standard deviation, ``(obs_dim,)``; 1 for a constant entry.
        clip: bound of the standardised entries (SB3's ``clip_obs``).

    Examples:
        >>> ObservationNormalizer(mean=(1.0, 0.5), std=(2.0, 1.0))(np.array([[3.0, 40.0]]))
        array([[ 1., 10.]], dtype=float32)
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    clip: float = 10.0

    def __call__(self, obs: NDArray[np.floating]) -> NDArray[np.float32]:
        """Standardised observations, float32, the shape of ``obs`` (``(..., obs_dim)``)."""
        z = (np.asarray(obs, dtype=np.float64) - np.asarray(self.mean)) / np.asarray(self.std)
        return np.clip(z, -self.clip, self.clip).astype(np.float32)

    @classmethod
    def fit(cls, observations: NDArray[np.floating]) -> ObservationNormalizer:
        """Each entry's mean and (population) standard deviation of ``(n_rows, obs_dim)``."""
        rows = np.asarray(observations, dtype=np.float64)
        std = rows.std(axis=0)
        std[std < MIN_STD] = 1.0
        return cls(mean=tuple(rows.mean(axis=0).tolist()), std=tuple(std.tolist()))

    def to_json(self) -> dict[str, Any]:
        """Plain lists and a number (``rllib.json``, ``latest.json``, RLlib's env config)."""
        return {"mean": list(self.mean), "std": list(self.std), "clip": self.clip}

    @classmethod
    def from_json(cls, data: Any, where: str) -> ObservationNormalizer:
        """The normaliser of :meth:`to_json`'s dict; ``where`` names its source in errors.

        Raises:
            ValueError: not such a dict: naming what is wrong and what is expected.
        """
        expected = ("a mapping {mean: [m_1, ..., m_d], std: [s_1, ..., s_d], clip: c} of "
                    "finite numbers, stds and c > 0")
        if not isinstance(data, Mapping) or set(data) != {"mean", "std", "clip"}:
            raise ValueError(f"{where}: {OBS_NORMALIZER} must be {expected}, got {data!r}")
        try:
            mean, std = (np.asarray(data[key], dtype=np.float64) for key in ("mean", "std"))
            clip = float(data["clip"])
        except (TypeError, ValueError):
            raise ValueError(f"{where}: {OBS_NORMALIZER} must be {expected}, got {data!r}") \
                from None
        valid = (mean.ndim == 1 and mean.shape == std.shape and mean.size > 0
                 and np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()
                 and math.isfinite(clip) and clip > 0)
        if not valid:
            raise ValueError(f"{where}: {OBS_NORMALIZER} must be {expected}, got {data!r}")
        return cls(mean=tuple(mean.tolist()), std=tuple(std.tolist()), clip=clip)


def make_vector_env(env_id: str, env_config: Mapping[str, Any]) -> gym.vector.VectorEnv:
    """The native vector env of ``env_id`` for an RLlib env runner (NEXT_STEP autoreset).

    Args:
        env_id: a registered hedgearena id.
        env_config: RLlib's env config: ``num_envs`` (set by the env runner), keyword
            overrides of the env's config (``cost``, ``action_mode``...) and optionally
            :data:`OBS_NORMALIZER` (an :meth:`ObservationNormalizer.to_json` dict): the
            observations are then standardised by it.
    """
    import hedgearena  # noqa: F401  (registers the ids in the env runner's process)

    kwargs = dict(env_config)
    num_envs = int(kwargs.pop("num_envs", 1))
    normalizer = kwargs.pop(OBS_NORMALIZER, None)
    env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                       autoreset_mode="next_step", **kwargs)
    if normalizer is None:
        return env
    return gym.wrappers.vector.TransformObservation(
        env, ObservationNormalizer.from_json(normalizer, "the env config"),
        observation_space=env.observation_space,
        single_observation_space=env.single_observation_space)


def register_rllib_envs() -> list[str]:
    """Register every hedgearena id for RLlib (``config.environment("hedgearena/...")``)."""
    from hedgearena.envs.registered import ENV_IDS

    register_env = require("ray.tune.registry").register_env
    for env_id in ENV_IDS:
        register_env(env_id, functools.partial(make_vector_env, env_id))
    return sorted(ENV_IDS)


# ------------------------------------------------------------------------ the algorithm
def _keywords(method: Any) -> set[str]:
    return {p.name for p in inspect.signature(method).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY}


OLD_STACK_KEYS = {
    "model": "the flat model keys (fcnet_hiddens, fcnet_activation, vf_share_layers...)",
    "observation_filter": "nothing: the observations are normalised by the env",
    "exploration_config": "nothing: PPO explores by sampling its Gaussian",
    "sample_collector": "nothing", "remote_worker_envs": "nothing",
    "remote_env_batch_wait_ms": "nothing", "preprocessor_pref": "nothing",
    "enable_tf1_exec_eagerly": "nothing", "sampler_perf_stats_ema_coef": "nothing",
    "num_sgd_iter": "num_epochs", "num_rollout_workers": "rllib.num_env_runners",
    "num_envs_per_worker": "rllib.num_envs_per_env_runner",
}
"""Keywords of ``training()`` / ``env_runners()`` that only RLlib's old API stack reads, or that
RLlib renamed: the new stack, which trains here, ignores the former without a word
(``model: {fcnet_hiddens: [8]}`` trained the default 256 x 256 network). Key -> what to use
instead (other keywords RLlib marks deprecated are refused too)."""


def _deprecated(method: Any) -> set[str]:
    """Keywords of ``method`` whose default is RLlib's ``DEPRECATED_VALUE``.

    E.g. ``num_sgd_iter`` or ``training(vf_share_layers=...)``: accepted, then ignored or renamed.
    """
    try:
        from ray._common.deprecation import DEPRECATED_VALUE
    except ImportError:  # a private module: without it no keyword is known as deprecated
        return set()
    return {p.name for p in inspect.signature(method).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is DEPRECATED_VALUE}


def split_hyperparams(algo_cls: Any, hyperparams: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
    """Split flat hyperparameters into ``training()``, ``env_runners()`` and model keywords.

    The fields of RLlib's ``DefaultModelConfig`` go to the model first: ``vf_share_layers`` is
    also a deprecated keyword of ``PPOConfig.training()``, which ignores it.

    Raises:
        ValueError: a key of none of them (the allowed ones listed), or one that only RLlib's
            old API stack reads, or a deprecated one (each named with what to use instead).
    """
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    model = {f.name for f in dataclasses.fields(DefaultModelConfig)}
    deprecated = (_deprecated(algo_cls.training) | _deprecated(AlgorithmConfig.training)
                  | _deprecated(AlgorithmConfig.env_runners)) - model
    old = sorted(key for key in hyperparams if key in OLD_STACK_KEYS or key in deprecated)
    if old:
        instead = "; ".join(f"{key}: use {OLD_STACK_KEYS.get(key, 'nothing (deprecated)')}"
                            for key in old)
        raise ValueError(f"rllib.hyperparams {old}: keys of RLlib's old API stack or deprecated, "
                         f"which the new stack that trains here ignores ({instead})")
    training = (_keywords(algo_cls.training) | _keywords(AlgorithmConfig.training)) - model
    runners = _keywords(AlgorithmConfig.env_runners) - model - {
        "num_env_runners", "num_envs_per_env_runner", "gym_env_vectorize_mode"}
    unknown = sorted(set(hyperparams) - training - runners - model)
    if unknown:
        raise ValueError(f"unknown rllib.hyperparams {unknown}; allowed: training keys "
                         f"{sorted(training - deprecated - set(OLD_STACK_KEYS))}, env runner "
                         f"keys {sorted(runners - deprecated - set(OLD_STACK_KEYS))}, model keys "
                         f"{sorted(model)}")
    parts = ({k: v for k, v in hyperparams.items() if k in keys}
             for keys in (training, runners - training, model))
    return tuple(parts)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_count(value: Any) -> bool:
    return _is_number(value) and float(value).is_integer() and value >= 1


HYPERPARAM_RANGES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "lr": ("a number > 0 (or a schedule [[step, lr], ...])",
           lambda v: isinstance(v, list) or (_is_number(v) and v > 0)),
    "gamma": ("a number in [0, 1]", lambda v: _is_number(v) and 0 <= v <= 1),
    "lambda_": ("a number in [0, 1]", lambda v: _is_number(v) and 0 <= v <= 1),
    "clip_param": ("a number > 0", lambda v: _is_number(v) and v > 0),
    "vf_clip_param": ("a number > 0", lambda v: _is_number(v) and v > 0),
    "vf_loss_coeff": ("a number >= 0", lambda v: _is_number(v) and v >= 0),
    "kl_coeff": ("a number >= 0", lambda v: _is_number(v) and v >= 0),
    "entropy_coeff": ("a number >= 0 (or a schedule [[step, coeff], ...])",
                      lambda v: isinstance(v, list) or (_is_number(v) and v >= 0)),
    "num_epochs": ("an integer >= 1", _is_count),
    "minibatch_size": ("an integer >= 1", _is_count),
    "train_batch_size_per_learner": ("an integer >= 1", _is_count),
    "rollout_fragment_length": ("an integer >= 1 or 'auto'", lambda v: v == "auto" or _is_count(v)),
}
"""What the common PPO hyperparameters must be: RLlib takes ``num_epochs: -1`` (no update at
all) or ``gamma: 2`` without a word."""


def check_hyperparam_values(hyperparams: Mapping[str, Any]) -> None:
    """Refuse values of :data:`HYPERPARAM_RANGES`' keys outside their ranges.

    Raises:
        ValueError: naming every such key, its value and what it must be.
    """
    bad = [f"{key} must be {what}, got {hyperparams[key]!r}"
           for key, (what, ok) in HYPERPARAM_RANGES.items()
           if key in hyperparams and not ok(hyperparams[key])]
    if bad:
        raise ValueError("rllib.hyperparams: " + "; ".join(bad))


def algorithm_config(spec: RllibSpec, env_id: str, env_kwargs: Mapping[str, Any],
                     seed: int) -> Any:
    """The RLlib ``AlgorithmConfig`` of ``spec`` on the native vector env of ``env_id``."""
    from ray.rllib.algorithms.ppo import PPOConfig

    algo_cls = {"PPO": PPOConfig}[spec.algo]
    training, runners, model = split_hyperparams(algo_cls, spec.hyperparams)
    return (
        algo_cls()
        .environment(env_id, env_config=dict(env_kwargs))
        .env_runners(num_env_runners=spec.num_env_runners,
                     num_envs_per_env_runner=spec.num_envs_per_env_runner,
                     gym_env_vectorize_mode="vector_entry_point", **runners)
        .training(**training)
        .rl_module(model_config=dict(model))  # only the keys given: PPO's defaults stand
        .debugging(seed=seed)
    )


# --------------------------------------------------------------------------- the hedger
class RLlibHedger(Hedger):
    """A trained RLlib module as an arena hedger (deterministic actions).

    The module's action distribution is read at its mode (the Gaussian's mean for PPO), the
    actions clipped to [-1, 1] and turned into positions by the env with the action mode the
    agent was trained with (``env_overrides``).

    Args:
        module: the RLlib ``RLModule`` (torch).
        env_overrides: the agent's view of the env (``action_mode``, ``reward_mode``...).
        name: the label in tables.
        normalizer: the observations' standardisation the module was trained with
            (``rllib.normalize_obs``), applied before the module reads them; None: raw.
    """

    def __init__(self, module: Any, env_overrides: Mapping[str, Any],
                 name: str = "rllib ppo agent",
                 normalizer: ObservationNormalizer | None = None) -> None:
        self.module, self.name, self.normalizer = module, name, normalizer
        self.env_overrides = dict(env_overrides)
        self._env: VecHedgingEnv | None = None

    def reset(self, env: VecHedgingEnv) -> None:
        """Check that the module fits ``env``; remember it (its action mode makes positions)."""
        spaces = (getattr(self.module, "observation_space", None),
                  getattr(self.module, "action_space", None))
        if all(space is not None for space in spaces):
            check_agent_spaces(self.name, *spaces, env)
        self._env = env

    def actions(self, obs: NDArray[np.float32]) -> NDArray[np.float64]:
        """The module's deterministic actions in [-1, 1], ``(n_paths, action_dim)``."""
        import torch

        seen = obs if self.normalizer is None else self.normalizer(obs)
        with torch.no_grad():
            out = self.module.forward_inference({"obs": torch.as_tensor(seen, dtype=torch.float32)})
            dist = self.module.get_inference_action_dist_cls().from_logits(
                out["action_dist_inputs"])
            actions = dist.to_deterministic().sample().cpu().numpy()
        return np.clip(np.asarray(actions, dtype=np.float64).reshape(len(obs), -1), -1.0, 1.0)

    def positions(self, state: State, obs: NDArray[np.float32]) -> NDArray[np.float64]:
        """The agent's deterministic actions as positions (units)."""
        if self._env is None:
            raise RuntimeError(f"{self.name}: call reset(env) before positions()")
        return self._env.positions_from_actions(self.actions(obs))


def normalizer_json(normalizer: ObservationNormalizer | None) -> dict[str, Any] | None:
    """``normalizer`` as written in ``rllib.json`` and ``latest.json`` (null: raw inputs)."""
    return None if normalizer is None else normalizer.to_json()


def read_normalizer(data: Mapping[str, Any], where: str) -> ObservationNormalizer | None:
    """The normaliser of a ``rllib.json`` or ``latest.json`` dict, ``where`` naming the file.

    None for null, or for a file written before ``rllib.normalize_obs`` existed (no key).
    """
    saved = data.get(OBS_NORMALIZER)
    return None if saved is None else ObservationNormalizer.from_json(saved, where)


class _ObservationRecorder(Hedger):
    """Hedges as ``hedger`` does and keeps a copy of every observation it is given."""

    def __init__(self, hedger: Hedger) -> None:
        self.hedger, self.name = hedger, hedger.name
        self.rows: list[NDArray[np.float32]] = []

    def reset(self, env: VecHedgingEnv) -> None:
        """Reset the hedger it follows."""
        self.hedger.reset(env)

    def positions(self, state: State, obs: NDArray[np.float32]) -> NDArray[np.float64]:
        """The followed hedger's positions; ``obs`` kept."""
        self.rows.append(obs.copy())
        return self.hedger.positions(state, obs)


def fit_observation_normalizer(env_config: EnvConfig, n_paths: int,
                               seed: int) -> ObservationNormalizer:
    """The normaliser of the observations at the calibration band's decisions.

    The band (:data:`hedgearena.agents.training.CALIBRATION_BAND`, the one ``auto``
    ``risk_aversion`` is calibrated on) hedges ``n_paths`` paths of ``env_config`` (the agent's
    view applied) with ``seed``; every observation it is given, ``(n_paths * decisions,
    obs_dim)``, is fitted by :meth:`ObservationNormalizer.fit`.
    """
    from hedgearena.agents.training import CALIBRATION_BAND
    from hedgearena.baselines.arena import run_arena
    from hedgearena.baselines.bands import FixedBand

    recorder = _ObservationRecorder(FixedBand(CALIBRATION_BAND))
    run_arena(env_config, [recorder], n_paths, seed=seed, progress=False,
              totals_only=[recorder.name])
    return ObservationNormalizer.fit(np.concatenate(recorder.rows))


def agent_name(spec: RllibSpec) -> str:
    """The agent's label in tables: ``"rllib <algo> agent"``."""
    return f"rllib {spec.algo.lower()} agent"


def save_module(module: Any, folder: Path, spec: RllibSpec,
                normalizer: ObservationNormalizer | None = None,
                env: Mapping[str, Any] | None = None) -> Path:
    """Save the module (``folder/module``) and ``rllib.json`` (algorithm, view, normaliser, env).

    ``rllib.json``'s normaliser is null without one; ``env`` is the env the module trained on
    (:func:`hedgearena.agents.saved.env_record`), which scoring the saved agent checks (left out
    when not given). The folder is replaced whole
    (:func:`~hedgearena.agents.saved.replace_folder`): an interruption leaves either the
    previous folder, or none, never half a module.
    """
    view = {"algo": spec.algo, "env_kwargs": spec.env_kwargs,
            OBS_NORMALIZER: normalizer_json(normalizer), **({"env": env} if env else {})}

    def write(partial: Path) -> None:
        module.save_to_path(str((partial / "module").resolve()))
        (partial / AGENT_FILE).write_text(json.dumps(view, indent=2) + "\n")

    return replace_folder(folder, write)


def load_rllib_hedger(model_dir: Path, name: str | None = None) -> RLlibHedger:
    """The saved RLlib agent of ``model_dir`` as an arena hedger (no Ray instance needed)."""
    view = read_json(model_dir / AGENT_FILE, "RLlib agent description", ("algo", "env_kwargs"))
    rl_module = require("ray.rllib.core.rl_module.rl_module")
    with loading(model_dir / "module", "RLlib module checkpoint"):
        module = rl_module.RLModule.from_checkpoint(str((model_dir / "module").resolve()))
    normalizer = read_normalizer(view, str(model_dir / AGENT_FILE))
    return RLlibHedger(module, view["env_kwargs"],
                       name or f"rllib {view['algo'].lower()} agent", normalizer)


def load_rllib_run(run_dir: Path, config: RunConfig, name: str | None = None) -> RLlibHedger:
    """The RLlib agent of a run folder as an arena hedger, named as its run's by default.

    Raises:
        ValueError: a ``model/`` that is not ``config``'s agent
            (:func:`hedgearena.agents.saved.check_saved_agent`), or a corrupt file (named).
    """
    check_saved_agent(run_dir, config)
    return load_rllib_hedger(run_dir / "model", name or agent_name(config.rllib))


# ----------------------------------------------------------------------------- training
def runner_seeds(config: RunConfig) -> range:
    """The seeds the env runners reset with: ``seed + k``, k = 0 .. num_env_runners."""
    return range(config.seed, config.seed + max(config.rllib.num_env_runners, 1) + 1)


def check_rllib_seeds(config: RunConfig) -> None:
    """Refuse training seeds whose runners would sample the validation or arena paths.

    Env runner ``k`` resets its env with ``seed + k`` (k = 0 .. num_env_runners); the
    validation paths come from ``arena.seed + 1`` and the arena's from ``arena.seed``.
    """
    runners = runner_seeds(config)
    if runners.stop - 1 >= SEED_LIMIT:
        raise ValueError(
            f"seed {config.seed}: the env runners' seeds {runners.start}..{runners.stop - 1} "
            f"pass numpy's largest seed ({SEED_LIMIT - 1}); give seed <= "
            f"{SEED_LIMIT - runners.stop + config.seed}")
    clash = sorted({config.arena.seed, config.arena.seed + 1} & set(runners))
    if clash:
        raise ValueError(
            f"seed {config.seed}: the env runners' seeds {runners.start}..{runners.stop - 1} "
            f"include {clash}, the arena's ({config.arena.seed}) or the validation's "
            f"({config.arena.seed + 1}); choose a seed away from arena.seed")


def check_rllib_scoring_seed(config: RunConfig, seed: int, name: str) -> None:
    """Refuse scoring ``config``'s RLlib agent on paths of ``seed`` that its runners sampled.

    ``name`` is the setting that gave ``seed`` (``arena.seed``, ``stress.seed``).
    """
    runners = runner_seeds(config)
    if seed in runners:
        raise ValueError(
            f"{name} ({seed}) is one of the RLlib agent's env runner seeds "
            f"({runners.start}..{runners.stop - 1}): the scoring paths would be paths it trained "
            f"on; choose another {name}")


def rllib_run_dir(config: RunConfig) -> Path:
    """The run folder: ``<out>/<name>``, by default ``<out>/rllib_<algo>-<env>-seed<seed>``."""
    env = config.env.id.split("/")[-1].removesuffix("-v0")
    return Path(config.out) / (config.name or
                               f"rllib_{config.rllib.algo.lower()}-{env}-seed{config.seed}")


@dataclasses.dataclass
class _Progress:
    """What the training loop carries: step count, validation history, the best objective."""

    steps: int = 0
    iterations: int = 0
    best: float = float("inf")
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)
    last_eval: int = 0
    last_checkpoint: int = 0


def train_rllib(config: RunConfig, env_config: EnvConfig, run_dir: Path,
                progress: bool = True) -> dict[str, Any]:
    """Train (or resume) the run's RLlib agent; the best validated module goes to ``model/``.

    Needs a Ray instance (see :func:`hedgearena.sweep.ray_session`). A resumed run samples
    with a fresh seed (:func:`rllib_resume_seed`), not the paths of its first iterations again.
    ``env_config`` is the env of ``config``; on the replay the agent trains on its days before
    the validation's and is validated on the rest (:func:`hedgearena.training.fitting_parts`).

    Returns:
        A summary: algorithm, env steps, iterations, the validation history, the best objective.
    """
    spec = config.rllib
    register_rllib_envs()
    fitting, env_config = fitting_parts(config, env_config, spec.valid_history)
    env_kwargs = {**fitting.env.kwargs, **spec.env_kwargs}
    normalizer = None
    if spec.normalize_obs:  # on the paths 'auto' is calibrated on
        normalizer = fit_observation_normalizer(
            fitting.env.config().replace(**fixed_view(spec.env_kwargs)), spec.eval_paths,
            config.arena.seed + 2)
        env_kwargs[OBS_NORMALIZER] = normalizer.to_json()
    seed = rllib_resume_seed(config, _checkpointed_steps(run_dir / "checkpoints"))
    algo = algorithm_config(spec, config.env.id, env_kwargs, seed).build_algo()
    try:
        state = _resume(algo, run_dir / "checkpoints", normalizer)
    except BaseException:
        algo.stop()  # its env runners are Ray actors
        raise
    resumed_from = state.steps or None
    eval_freq = spec.eval_freq or max(spec.n_timesteps // 10, 1)
    checkpoint_freq = spec.checkpoint_freq or max(spec.n_timesteps // 5, 1)
    writer = _tensorboard(run_dir / "tb")
    bar = _bar(progress, spec.n_timesteps, state.steps)
    try:
        while state.steps < spec.n_timesteps:
            result = algo.train()
            state.iterations += 1
            state.steps = int(result["env_runners"]["num_env_steps_sampled_lifetime"])
            _log_iteration(writer, bar, result, state.steps)
            if state.steps - state.last_eval >= eval_freq:
                _validate(algo, config, env_config, run_dir, state, writer, normalizer)
            if state.steps - state.last_checkpoint >= checkpoint_freq:
                _checkpoint(algo, run_dir / "checkpoints", state, normalizer)
        if state.last_eval < state.steps or not (run_dir / "best").is_dir():
            _validate(algo, config, env_config, run_dir, state, writer, normalizer)
        if state.last_checkpoint < state.steps:
            _checkpoint(algo, run_dir / "checkpoints", state, normalizer)
    except KeyboardInterrupt:
        if state.last_checkpoint < state.steps:  # resume from here, not the last periodic one
            _checkpoint(algo, run_dir / "checkpoints", state, normalizer)
        raise
    finally:
        bar.close()
        writer.close()
        algo.stop()
    _publish(run_dir)
    return {"algo": f"rllib_{spec.algo.lower()}", "timesteps": state.steps,
            "iterations": state.iterations, "resumed_from": resumed_from,
            "best_objective": state.best, "history": state.history}


def _checkpointed_steps(folder: Path) -> int:
    """The env steps of the newest checkpoint in ``folder`` (0 without one)."""
    pointer = folder / LATEST
    return int(json.loads(pointer.read_text())["timesteps"]) if pointer.is_file() else 0


def rllib_resume_seed(config: RunConfig, timesteps: int) -> int:
    """The seed of the algorithm (env runner ``k`` resets with it + ``k``) at ``timesteps``.

    ``config.seed`` for a fresh run. A run resuming at ``timesteps`` gets a fresh stream
    (:func:`hedgearena.agents.training.resume_seed`), as SB3 runs do: RLlib seeds its env
    runners' first reset only, so a restored algorithm's runners would replay the paths of
    the run's first iterations. The seeds stay within numpy's range and away from the arena's
    and the validation's (``arena.seed``, ``+ 1``).
    """
    if timesteps <= 0:
        return config.seed
    from hedgearena.agents.training import resume_seed

    span = max(config.rllib.num_env_runners, 1) + 1
    room = SEED_LIMIT - span
    seed = resume_seed(config.seed, timesteps) % room
    while {config.arena.seed, config.arena.seed + 1} & set(range(seed, seed + span)):
        seed = (seed + span) % room
    return seed


def _resume(algo: Any, folder: Path, normalizer: ObservationNormalizer | None) -> _Progress:
    """Restore the newest checkpoint of ``folder`` into ``algo`` (if any); its progress.

    Raises:
        ValueError: the checkpoint's state does not fit ``algo`` (another network), or its
            module read observations normalised otherwise than ``normalizer`` would.
    """
    pointer = folder / LATEST
    if not pointer.is_file():
        return _Progress()
    data = json.loads(pointer.read_text())
    saved = read_normalizer(data, str(pointer))
    if saved != normalizer:
        before = ("raw" if saved is None else "normalised" if normalizer is None
                  else "normalised by other statistics")
        raise ValueError(
            f"cannot resume from {folder / data['path']}: its module read observations "
            f"{before}, this config "
            f"{'normalises them' if normalizer is not None else 'gives them raw'} "
            "(rllib.normalize_obs; runs checkpointed before it existed read them raw): set "
            "rllib.normalize_obs as the run had it, or train into a new folder (--name)")
    try:
        algo.restore_from_path(str((folder / data["path"]).resolve()))
    except (RuntimeError, ValueError, KeyError) as error:  # torch: a state of another shape
        reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise ValueError(
            f"cannot resume from {folder / data['path']}: its state does not fit the algorithm "
            f"this config builds ({reason}). A checkpoint of another network cannot be resumed "
            "(runs before hedgearena honoured rllib.hyperparams.vf_share_layers trained a value "
            "function sharing the policy's layers whatever it said): train into a new folder "
            "(--name)") from None
    steps = int(data["timesteps"])
    return _Progress(steps=steps, iterations=int(data["iterations"]), best=float(data["best"]),
                     history=list(data["history"]), last_eval=steps, last_checkpoint=steps)


def _checkpoint(algo: Any, folder: Path, state: _Progress,
                normalizer: ObservationNormalizer | None) -> Path:
    """Save the whole algorithm (learner, optimiser, env runners) as ``step_<n>``."""
    target = folder / f"step_{state.steps}"
    algo.save_to_path(str(target.resolve()))
    state.last_checkpoint = state.steps
    pointer = {"path": target.name, "timesteps": state.steps, "iterations": state.iterations,
               "best": state.best, "history": state.history,
               OBS_NORMALIZER: normalizer_json(normalizer)}
    partial = folder / (LATEST + ".tmp")
    partial.write_text(json.dumps(pointer, default=float) + "\n")
    partial.replace(folder / LATEST)  # atomic: an interruption never leaves half a pointer
    return target


def _validate(algo: Any, config: RunConfig, env_config: EnvConfig, run_dir: Path,
              state: _Progress, writer: Any,
              normalizer: ObservationNormalizer | None) -> dict[str, float]:
    """Score the current module on the fixed validation paths; keep it if it is the best."""
    from hedgearena.agents.callbacks import validation_scores
    from hedgearena.agents.saved import env_record

    spec = config.rllib
    hedger = RLlibHedger(algo.get_module(), spec.env_kwargs, name="agent",
                         normalizer=normalizer)
    current = validation_scores(env_config, [hedger], spec.eval_paths, config.arena.seed + 1,
                                config.arena.c)["agent"]
    for key, value in current.items():
        writer.add_scalar(f"hedge/{key}", value, state.steps)
    state.history.append({"timesteps": float(state.steps), **current})
    state.last_eval = state.steps
    if current["objective"] < state.best or not (run_dir / "best").is_dir():
        save_module(algo.get_module(), run_dir / "best", spec, normalizer, env_record(config))
        state.best = current["objective"]  # once saved: a checkpoint's best is that of best/
    return current


def _publish(run_dir: Path) -> None:
    """Copy the best validated module to ``run_dir/model``.

    The folder is replaced whole (:func:`~hedgearena.agents.saved.replace_folder`), as SB3
    runs publish theirs.
    """
    replace_folder(run_dir / "model",
                   lambda folder: shutil.copytree(run_dir / "best", folder, dirs_exist_ok=True))


def _tensorboard(folder: Path) -> Any:
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(folder / "rllib"))


LEARNER_STATS = ("total_loss", "policy_loss", "vf_loss", "entropy", "mean_kl_loss")


def _log_iteration(writer: Any, bar: Any, result: Mapping[str, Any], steps: int) -> None:
    """Episode return and learner losses to TensorBoard; the progress bar to ``steps``."""
    runners = result.get("env_runners", {})
    episode_return = runners.get("episode_return_mean")
    if episode_return is not None and np.isfinite(episode_return):
        writer.add_scalar("rllib/episode_return_mean", float(episode_return), steps)
        bar.set_postfix(episode_return=f"{episode_return:.3g}", refresh=False)
    learner = result.get("learners", {}).get("default_policy", {})
    for key in LEARNER_STATS:
        if key in learner:
            writer.add_scalar(f"rllib/{key}", float(learner[key]), steps)
    bar.update(max(steps - bar.n, 0))


def _bar(progress: bool, total: int, initial: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="rllib", unit="step", disable=not progress)


# ------------------------------------------------------------------ the command and scoring
def check_rllib(config: RunConfig, env_config: EnvConfig | None = None) -> None:
    """Check the ``rllib`` section as training would use it, without starting Ray.

    The seeds (:func:`check_rllib_seeds`), the validation's part of a dated history
    (``rllib.valid_history``), the agent's view of the env (``rllib.env_kwargs``
    applied to ``env_config``), the hyperparameters' names (:func:`split_hyperparams`) and the
    algorithm's own validation of the config (``AlgorithmConfig.validate``: e.g. a
    ``minibatch_size`` above the train batch), and the CPUs the env runners need
    against the local Ray instance's (:func:`hedgearena.sweep.check_cpus`).

    Raises:
        ValueError: naming the setting, its value and what is allowed.
    """
    from hedgearena.sweep import check_cpus

    spec = config.rllib
    check_rllib_seeds(config)
    env_config = config.env.config() if env_config is None else env_config
    validation_split(learning_env(config, env_config), spec.valid_history)  # an episode each
    view = fixed_view(spec.env_kwargs)  # auto: calibrated when training starts
    env_config.replace(**view)
    algo_config = algorithm_config(spec, config.env.id, {**config.env.kwargs, **view},
                                   config.seed)  # unknown names raise here
    check_hyperparam_values(spec.hyperparams)
    try:
        algo_config.validate()
    except (TypeError, ValueError) as error:
        reason = str(error).strip().splitlines()[0]
        raise ValueError(f"rllib.hyperparams {spec.hyperparams}: RLlib refuses them: "
                         f"{reason}") from None
    check_module(algo_config, env_config.replace(**view), spec)
    check_cpus(config.ray, spec.num_env_runners, "rllib.num_env_runners")


def check_module(algo_config: Any, view: EnvConfig, spec: RllibSpec) -> None:
    """Build the algorithm's RL module on the agent's view of the env, as training would.

    The model keys (``fcnet_hiddens: 64``, ``fcnet_activation: banana``) are otherwise found
    only once Ray has started and the run folder is written. Building a small network takes a
    few milliseconds and no Ray instance.

    Raises:
        ValueError: naming the model keys and why RLlib cannot build the module.
    """
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    env = VecHedgingEnv(1, config=view)
    try:
        module_spec = algo_config.get_default_rl_module_spec()
        module_spec.observation_space = env.single_observation_space
        module_spec.action_space = env.single_action_space
        module_spec.model_config = algo_config.model_config
        module_spec.build()
    except Exception as error:  # RLlib raises what its layers raise (TypeError, ValueError...)
        fields = {f.name for f in dataclasses.fields(DefaultModelConfig)}
        model = {k: v for k, v in spec.hyperparams.items() if k in fields}
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"rllib.hyperparams: RLlib cannot build the model of {model}: "
                         f"{reason}") from None
    finally:
        env.close()


def train_and_score_rllib(config: RunConfig, progress: bool = True) -> Path:
    """Train the run's RLlib agent on Ray, save it and write the arena report; the run folder.

    Ray runs where ``config.ray`` says (a local instance started for the command, or a
    cluster); running the command again resumes from the last checkpoint.
    """
    from hedgearena.baselines.report import wide_console

    require("ray.rllib")  # before anything is written
    console = wide_console()
    from hedgearena.agents.training import resolve_rllib_view

    run_dir = rllib_run_dir(config)
    env_config = config.env.config()
    check_rllib(config, env_config)  # every check before anything is written
    check_arena(config, env_config)
    # an auto view calibrated on the history the agent learns on, as an SB3 agent's
    config = config.model_copy(update={"rllib": resolve_rllib_view(training_config(config)).rllib})
    check_resumable(config, run_dir, "rllib")  # before the folder's config is replaced
    config.dump(run_dir / "config.yaml")
    write_env_yaml(run_dir, env_config)
    spec = config.rllib
    console.print(f"[bold]hedgearena[/]: training {agent_name(spec)} on {config.env.id} with "
                  f"{spec.num_env_runners} env runners x {spec.num_envs_per_env_runner} paths "
                  f"-> {run_dir}/")
    start = time.perf_counter()
    with ray_session(config.ray, config.rllib.num_env_runners, "rllib.num_env_runners"):
        learning = training_config(config)  # the history before arena.split, if set
        info = train_rllib(learning, learning.env.config(), run_dir, progress)
    info["seconds"] = time.perf_counter() - start
    (run_dir / "training.json").write_text(json.dumps(info, indent=2, default=float) + "\n")
    console.print(f"trained in {info['seconds']:.0f} s; scoring on {config.arena.paths:,} paths")
    hedger = load_rllib_hedger(run_dir / "model", agent_name(spec))
    score_agent(config, env_config, hedger, run_dir / "report", progress, console)
    return run_dir


def is_rllib_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` is a run folder of an RLlib agent."""
    return (run_dir / "model" / AGENT_FILE).is_file()


def evaluate_rllib_run(run_dir: Path, config: RunConfig, progress: bool = True) -> Path:
    """Score a saved RLlib agent again, into ``run_dir/evaluation/`` (same paths, same numbers).

    Raises:
        ValueError: a config whose env or agent differs from the run's.
    """
    saved = load_config(run_dir / "config.yaml")
    check_evaluation_config(saved, config)
    check_rllib_scoring_seed(saved, config.arena.seed, "arena.seed")
    check_scoring_split(saved, config)
    check_arena(config)
    hedger = load_rllib_run(run_dir, config)
    out_dir = run_dir / "evaluation"
    config.dump(out_dir / "run_config.yaml")  # config.yaml is the report's own
    score_agent(config, config.env.config(), hedger, out_dir, progress)
    return out_dir
