"""stable-baselines3 agents on the native vector env: PPO, SAC, TD3, DDPG, TQC, RecurrentPPO.

Hyperparameters use rl-baselines3-zoo's YAML format (``configs/<algo>.yml``, keyed by env id)
so ``python -m rl_zoo3.train --algo ppo --env hedgearena/ShortCall-v0 --gym-packages hedgearena
-conf configs/ppo.yml`` trains with the same settings. The keys this module reads like the zoo:

==================  ===============================================================================
key                 meaning
==================  ===============================================================================
``n_envs``          paths stepped together (one native :class:`VecHedgingEnv`, not n Python envs)
``n_timesteps``     training budget, env steps (decisions) summed over paths
``policy``          ``MlpPolicy`` (``MlpLstmPolicy`` for RecurrentPPO)
``normalize``       ``true``/``false`` or ``"{'norm_obs': True, 'norm_reward': False}"``
                    (:class:`~stable_baselines3.common.vec_env.VecNormalize`)
``policy_kwargs``   a dict or the zoo's string, e.g. ``"dict(net_arch=[64, 64])"``
``noise_type``      ``normal`` or ``ornstein-uhlenbeck`` action noise (SAC, TD3, DDPG, TQC), with
``noise_std``       its standard deviation (actions live in [-1, 1]; 0.1 if not given). Only
                    while training: evaluation and the arena use deterministic actions
anything else       a keyword of the algorithm's constructor (``learning_rate``, ``n_steps``...)
==================  ===============================================================================

Learning-rate schedules in the zoo's ``lin_<value>`` form are understood.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import NDArray
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from hedgearena.baselines.hedger import Hedger, State, check_agent_spaces
from hedgearena.envs.checks import is_integer, is_number
from hedgearena.envs.config import keywords
from hedgearena.envs.sb3_adapter import make_sb3_vec_env
from hedgearena.envs.vector_env import VecHedgingEnv
from hedgearena.yaml_io import load_yaml

ZOO_KEYS = ("n_envs", "n_timesteps", "policy", "normalize", "policy_kwargs", "noise_type",
            "noise_std")
"""Keys of a zoo hyperparameter block that are not constructor keywords."""


def algorithms() -> dict[str, type[BaseAlgorithm]]:
    """Algorithm name -> class (sb3-contrib's TQC and RecurrentPPO included)."""
    from sb3_contrib import TQC, RecurrentPPO
    from stable_baselines3 import DDPG, PPO, SAC, TD3

    return {"ppo": PPO, "sac": SAC, "td3": TD3, "ddpg": DDPG, "tqc": TQC,
            "recurrent_ppo": RecurrentPPO}


SB3_ALGOS = ("ppo", "sac", "td3", "ddpg", "tqc", "recurrent_ppo")
"""The stable-baselines3 agents this module trains."""
OFF_POLICY = ("sac", "td3", "ddpg", "tqc")
"""Agents with a replay buffer (saved with checkpoints)."""


def algorithm(name: str) -> type[BaseAlgorithm]:
    """The class of an algorithm name (ValueError naming the allowed ones)."""
    table = algorithms()
    if name not in table:
        raise ValueError(f"agent.algo must be one of {sorted(table)} or deep_hedging, "
                         f"got {name!r}")
    return table[name]


# --------------------------------------------------------------------------- hyperparameters
def zoo_file(algo: str, root: str | Path = "configs") -> Path:
    """The zoo hyperparameter file of ``algo`` (``configs/<algo>.yml``)."""
    return Path(root) / f"{algo}.yml"


def load_hyperparams(
    algo: str, env_id: str, path: str | Path | None = None,
    overrides: Mapping[str, Any] = MappingProxyType({}),
) -> dict[str, Any]:
    """The zoo hyperparameters of ``algo`` for ``env_id``, with ``overrides`` on top.

    Args:
        algo: a name of :data:`SB3_ALGOS`.
        env_id: the env id (the block of the YAML file).
        path: the YAML file (default: ``configs/<algo>.yml`` beside the project; missing file or
            block: the algorithm's defaults; a file without a block for ``env_id`` is warned
            about, as the zoo refuses it).
        overrides: keys replacing the file's (e.g. from ``agent.hyperparams`` of a run config).
    """
    source = Path(path) if path is not None else _default_zoo_file(algo)
    params: dict[str, Any] = {}
    if source is not None and source.is_file():
        document = load_yaml(source.read_text()) or {}
        if not isinstance(document, dict):
            raise ValueError(f"{source}: a zoo hyperparameter file maps env ids to settings")
        if env_id not in document:
            warnings.warn(
                f"{source} has no hyperparameters for {env_id} (its blocks: "
                f"{', '.join(map(str, document)) or 'none'}): {algo} trains with "
                "stable-baselines3's own defaults (no observation normalisation, gamma 0.99, "
                f"{algo}'s default rollout and batch sizes) and the run config's "
                "agent.hyperparams; add a block for the env to the file, or give its settings "
                "in agent.hyperparams",
                UserWarning, stacklevel=2,
            )
        params = dict(document.get(env_id) or {})
    elif path is not None:
        raise ValueError(f"hyperparameter file {str(path)!r} does not exist")
    params.update(dict(overrides))
    for key in COUNT_KEYS:  # 1e4 in YAML is the float 10000.0
        value = params.get(key)
        if isinstance(value, float) and value.is_integer():
            params[key] = int(value)
    return params


COUNT_KEYS = ("n_envs", "n_timesteps", "n_steps", "batch_size", "n_epochs", "buffer_size",
              "learning_starts", "gradient_steps", "train_freq")
"""Hyperparameters that are counts: an integral float (``1e4``) is read as the integer."""


def _default_zoo_file(algo: str) -> Path | None:
    here = Path(__file__).resolve().parent.parent / "configs" / f"{algo}.yml"
    return here if here.is_file() else None


def parse_policy_kwargs(value: Any) -> dict[str, Any]:
    """``policy_kwargs`` as a dict: given as one, or as the zoo's Python-expression string.

    The string is evaluated with only ``dict``, ``nn`` (``torch.nn``) and no builtins.

    Examples:
        >>> parse_policy_kwargs("dict(net_arch=[64, 64])")
        {'net_arch': [64, 64]}
    """
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str):
        import torch.nn as nn

        try:
            result = eval(value, {"__builtins__": {}}, {"dict": dict, "nn": nn})
        except Exception as error:
            raise ValueError(f"policy_kwargs {value!r} is not an expression: {error}") from None
        if isinstance(result, dict):
            return result
    raise ValueError(f"policy_kwargs must be a dict or a 'dict(...)' string, got {value!r}")


def parse_normalize(value: Any) -> dict[str, Any] | None:
    """VecNormalize keywords from the zoo's ``normalize`` (None: no normalisation).

    Raises:
        ValueError: not a boolean or a dict, or a key not in :data:`NORMALIZE_RULES` or a
            value it refuses (naming the key and what is allowed).

    Examples:
        >>> parse_normalize("{'norm_obs': True, 'norm_reward': False}")
        {'norm_obs': True, 'norm_reward': False}
        >>> parse_normalize(True)
        {}
    """
    if value in (None, False):
        return None
    if value is True:
        return {}
    if isinstance(value, str):
        value = load_yaml(value.replace("True", "true").replace("False", "false"))
    if not isinstance(value, Mapping):
        raise ValueError(f"normalize must be true, false or a dict, got {value!r}")
    unknown = sorted(str(key) for key in set(value) - set(NORMALIZE_RULES))
    if unknown:
        raise ValueError(f"unknown normalize key(s) {unknown}; allowed: {sorted(NORMALIZE_RULES)}"
                         " (its gamma is the algorithm's)")
    for key, item in value.items():
        if not NORMALIZE_RULES[key][0](item):
            raise ValueError(f"normalize.{key} must be {NORMALIZE_RULES[key][1]}, got {item!r}")
    return dict(value)


NORMALIZE_RULES: dict[str, tuple[Any, str]] = {
    "norm_obs": (lambda v: isinstance(v, bool), "true or false"),
    "norm_reward": (lambda v: isinstance(v, bool), "true or false"),
    "clip_obs": (lambda v: is_number(v, gt=0.0), "a number > 0"),
    "clip_reward": (lambda v: is_number(v, gt=0.0), "a number > 0"),
    "epsilon": (lambda v: is_number(v, gt=0.0), "a number > 0"),
}
"""The VecNormalize keywords a zoo ``normalize`` may set, with what each allows."""


def linear_schedule(start: float) -> Callable[[float], float]:
    """The zoo's ``lin_<start>``: ``start`` times the progress remaining, never below 0.

    SB3's progress remaining, ``1 - num_timesteps / budget``, goes below 0 when the last
    rollout runs past the budget (PPO collects whole rollouts): held at 0 there, the rate
    and clip range end at 0 instead of turning negative (gradient ascent).

    Examples:
        >>> rate = linear_schedule(3e-4)
        >>> rate(1.0), rate(0.5), rate(-0.024)
        (0.0003, 0.00015, 0.0)
    """
    return lambda progress_remaining: max(progress_remaining, 0.0) * start


def _schedule(value: Any) -> Any:
    """The zoo's ``lin_<x>`` linear schedule (:func:`linear_schedule`), or the value itself."""
    if isinstance(value, str) and value.startswith("lin_"):
        return linear_schedule(float(value[4:]))
    return value


NOISE_TYPES = ("normal", "ornstein-uhlenbeck")
"""The zoo's ``noise_type`` values (action noise of the off-policy agents)."""
DEFAULT_NOISE_STD = 0.1
"""``noise_std`` when a ``noise_type`` comes without one (the zoo requires it)."""


def _action_noise(params: dict[str, Any], action_dim: int) -> Any:
    kind = params.pop("noise_type", None)
    std = params.pop("noise_std", None)
    std = DEFAULT_NOISE_STD if std is None else std
    if kind is None:
        return None
    mean, sigma = np.zeros(action_dim), float(std) * np.ones(action_dim)
    if kind == "normal":
        return NormalActionNoise(mean, sigma)
    if kind == "ornstein-uhlenbeck":
        return OrnsteinUhlenbeckActionNoise(mean, sigma)
    raise ValueError(f"noise_type must be 'normal' or 'ornstein-uhlenbeck', got {kind!r}")


# ------------------------------------------------------------------------------ environment
def make_training_env(
    env_id: str, env_kwargs: Mapping[str, Any], n_envs: int, seed: int,
    normalize: dict[str, Any] | None, gamma: float = 0.99,
) -> VecEnv:
    """The native vector env of ``env_id`` as an SB3 VecEnv, normalised when asked.

    Args:
        env_id: a registered id.
        env_kwargs: its keyword overrides (the case plus the agent's view: action and reward
            modes).
        n_envs: paths stepped together.
        seed: seed of the paths.
        normalize: VecNormalize keywords, or None.
        gamma: discount of the reward normaliser (the algorithm's).
    """
    venv: VecEnv = make_sb3_vec_env(env_id, n_envs, seed=seed, **dict(env_kwargs))
    if normalize is not None:
        venv = VecNormalize(venv, gamma=gamma, **{"norm_reward": False, **normalize})
    return venv


RESERVED = {
    "seed": "the seed is the run config's top-level `seed` (--seed)",
    "env": "the env is the run config's `env` section (--env)",
    "device": "agents train on the CPU",
    "verbose": "progress is the run's progress bar (--no-progress)",
    "tensorboard_log": "TensorBoard logs go to the run folder's tb/",
}
"""Model keywords hedgearena sets itself, with where to set them instead."""


def build_model(
    algo: str, venv: VecEnv, hyperparams: Mapping[str, Any], seed: int,
    tensorboard_log: str | None = None,
) -> BaseAlgorithm:
    """A new model of ``algo`` on ``venv`` from zoo hyperparameters.

    Raises:
        ValueError: the hyperparameters set a key hedgearena sets itself (:data:`RESERVED`),
            or a key that is neither a zoo key nor a keyword of the algorithm.
    """
    reserved = sorted(set(hyperparams) & set(RESERVED))
    if reserved:
        raise ValueError(f"hyperparameter(s) {reserved} are set by hedgearena: "
                         + "; ".join(RESERVED[key] for key in reserved))
    check_hyperparams(algo, hyperparams)
    params = {k: v for k, v in hyperparams.items() if k not in ("n_envs", "n_timesteps",
                                                                 "normalize")}
    policy = params.pop("policy", "MlpLstmPolicy" if algo == "recurrent_ppo" else "MlpPolicy")
    params["policy_kwargs"] = parse_policy_kwargs(params.get("policy_kwargs"))
    assert venv.action_space.shape is not None  # the env's Box
    noise = _action_noise(params, int(np.prod(venv.action_space.shape)))
    if noise is not None:
        params["action_noise"] = noise
    for key in ("learning_rate", "clip_range"):
        if key in params:
            params[key] = _schedule(params[key])
    cls = algorithm(algo)
    try:
        return cls(policy, venv, seed=seed, device="cpu", verbose=0,
                   tensorboard_log=tensorboard_log, **params)
    except (TypeError, AssertionError, ValueError, RuntimeError) as error:  # SB3's, unnamed
        raise ValueError(f"{algo} rejected its hyperparameters {dict(hyperparams)}: "
                         f"{error or type(error).__name__}") from None


def check_hyperparams(algo: str, hyperparams: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming a hyperparameter of ``algo`` that training would refuse.

    Everything :func:`build_model` and :func:`make_training_env` read from the hyperparameters
    is checked here without building anything, so that ``train.py`` names a bad key or value
    before it writes the run folder: keys hedgearena sets itself (:data:`RESERVED`), keys that
    are neither zoo keys nor ``algo``'s keywords, the values of :data:`VALUE_RULES`, and the
    zoo's ``policy``, ``policy_kwargs``, ``normalize`` and ``noise_type``.
    """
    reserved = sorted(set(hyperparams) & set(RESERVED))
    if reserved:
        raise ValueError(f"hyperparameter(s) {reserved} are set by hedgearena: "
                         + "; ".join(RESERVED[key] for key in reserved))
    own = {k for k in keywords(algorithm(algo)) if not k.startswith("_")}
    allowed = sorted((own | set(ZOO_KEYS)) - set(RESERVED))
    unknown = sorted(str(key) for key in set(hyperparams) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {algo} hyperparameter(s) {unknown}; allowed: {allowed}")
    for key, value in hyperparams.items():
        if key in VALUE_RULES and not VALUE_RULES[key][0](value):
            raise ValueError(f"{algo} hyperparameter {key} must be {VALUE_RULES[key][1]}, "
                             f"got {value!r}")
    ent_coef = hyperparams.get("ent_coef")
    if isinstance(ent_coef, str) and algo not in AUTO_ENT_COEF:
        raise ValueError(f"{algo} hyperparameter ent_coef must be a number >= 0 (auto is for "
                         f"{' and '.join(AUTO_ENT_COEF)}), got {ent_coef!r}")
    _check_zoo_values(algo, hyperparams)


AUTO_ENT_COEF = ("sac", "tqc")
"""The algorithms whose ``ent_coef`` may be ``auto`` (learnt)."""


def _check_zoo_values(algo: str, hyperparams: Mapping[str, Any]) -> None:
    """The zoo keys that are not constructor keywords: ``policy``, ``policy_kwargs``...

    Raises:
        ValueError: naming the key, the value and what is allowed.
    """
    policy = hyperparams.get("policy")
    policies = tuple(policy_classes(algo))
    if policy is not None and not (isinstance(policy, str) and policy in policies):
        raise ValueError(f"{algo} hyperparameter policy must be one of {policies} (the "
                         f"observations are a flat vector), got {policy!r}")
    policy_class = policy_classes(algo)[policy or policies[0]]
    policy_kwargs = parse_policy_kwargs(hyperparams.get("policy_kwargs"))
    allowed = sorted(set(keywords(policy_class)) - {"observation_space", "action_space",
                                                    "lr_schedule"})
    unknown = sorted(str(key) for key in set(policy_kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {algo} policy_kwargs key(s) {unknown} (of "
                         f"{policy_class.__name__}); allowed: {allowed}")
    parse_normalize(hyperparams.get("normalize"))
    _check_noise(algo, hyperparams)
    if "sde_sample_freq" in hyperparams and hyperparams.get("use_sde") is not True:
        raise ValueError(f"{algo} hyperparameter sde_sample_freq "
                         f"{hyperparams['sde_sample_freq']!r} does nothing without use_sde: "
                         "true (generalised state-dependent exploration); set both, or drop it")


def check_policy(
    algo: str, hyperparams: Mapping[str, Any], observation_space: Any, action_space: Any,
    where: str = "agent.hyperparams.policy_kwargs",
) -> None:
    """Build ``algo``'s policy with ``policy_kwargs`` on the env's spaces, without training.

    What stable-baselines3 would refuse only once the run has begun (a ``net_arch`` that is not
    layer widths, an ``activation_fn`` that is not a torch module class, a keyword of the wrong
    kind) is named here, before a run writes anything. ``where`` names the setting in the error
    (``agent.hyperparams.policy_kwargs``, or the zoo file's). Keys are checked by
    :func:`check_hyperparams`; without ``policy_kwargs`` nothing is built.

    Raises:
        ValueError: naming ``where``, the value, what is wrong and what is allowed.
    """
    given = hyperparams.get("policy_kwargs")
    policy_kwargs = parse_policy_kwargs(given)
    if not policy_kwargs:
        return
    _check_net_arch(algo, policy_kwargs.get("net_arch"), given, where)
    activation = policy_kwargs.get("activation_fn")
    if "activation_fn" in policy_kwargs and not _is_module_class(activation):
        raise ValueError(
            f"{where} {given!r}: activation_fn must be a torch.nn activation class, got "
            f"{activation!r}; give policy_kwargs as the zoo's string to name one, e.g. "
            "\"dict(activation_fn=nn.Tanh, net_arch=[64, 64])\"")
    policy = hyperparams.get("policy") or next(iter(policy_classes(algo)))
    cls = policy_classes(algo)[policy]
    use_sde = hyperparams.get("use_sde", False)
    explicit = {"use_sde": use_sde} if algo not in OFF_POLICY else {}  # as SB3 passes them
    implied = {"use_sde": use_sde} if algo in ("sac", "tqc") else {}
    kwargs = {**({"n_critics": 1} if algo == "ddpg" else {}), **policy_kwargs, **implied}
    try:
        cls(observation_space, action_space, lambda _: 3e-4, **explicit, **kwargs)
    except (TypeError, AssertionError, ValueError, RuntimeError, KeyError,
            AttributeError) as error:  # torch's and SB3's, unnamed
        raise ValueError(f"{where} {given!r} is refused by {algo}'s {cls.__name__}: "
                         f"{error or type(error).__name__}") from None


def _is_module_class(value: Any) -> bool:
    import torch.nn as nn

    return isinstance(value, type) and issubclass(value, nn.Module)


def _check_net_arch(algo: str, net_arch: Any, given: Any, where: str) -> None:
    """``net_arch``: layer widths (integers >= 1), or a dict of them by network."""
    if net_arch is None:
        return
    networks = ("pi", "qf") if algo in OFF_POLICY else ("pi", "vf")
    allowed = (f"a list of layer widths (integers >= 1, e.g. [64, 64]) or a dict "
               f"{{{networks[0]}: [...], {networks[1]}: [...]}} of them")

    def widths(value: Any) -> bool:
        return isinstance(value, list | tuple) and all(is_integer(v) and v >= 1 for v in value)

    if isinstance(net_arch, Mapping):
        keys = set(map(str, net_arch))
        required = set(networks) if algo in OFF_POLICY else set()
        ok = keys <= set(networks) and required <= keys and all(map(widths, net_arch.values()))
    else:
        ok = widths(net_arch)
    if not ok:
        raise ValueError(f"{where} {given!r}: net_arch must be {allowed} for {algo}, got "
                         f"{net_arch!r}")


def _check_noise(algo: str, hyperparams: Mapping[str, Any]) -> None:
    """The zoo's ``noise_type`` and ``noise_std`` (action noise of the off-policy agents).

    Raises:
        ValueError: ``action_noise`` given itself, noise for an on-policy agent (which
            explores by its policy's own std), an unknown ``noise_type``, a ``noise_std``
            that is not a number >= 0, or a ``noise_std`` without a ``noise_type`` (it would
            do nothing).
    """
    if "action_noise" in hyperparams:
        raise ValueError(f"{algo} hyperparameter action_noise is set by noise_type (one of "
                         f"{NOISE_TYPES}) and noise_std, as in rl-baselines3-zoo, got "
                         f"{hyperparams['action_noise']!r}")
    kind = hyperparams.get("noise_type")
    given = [key for key in ("noise_type", "noise_std") if hyperparams.get(key) is not None]
    if given and algo not in OFF_POLICY:
        raise ValueError(
            f"{algo} hyperparameter(s) {given}: action noise is for the off-policy agents "
            f"({', '.join(OFF_POLICY)}); {algo} explores by its policy's own std "
            "(policy_kwargs log_std_init, or use_sde)")
    if kind is not None and kind not in NOISE_TYPES:
        raise ValueError(f"noise_type must be one of {NOISE_TYPES}, got {kind!r}")
    std = hyperparams.get("noise_std")
    std = DEFAULT_NOISE_STD if std is None else std  # null: the default, as _action_noise reads
    if not is_number(std, ge=0.0):
        raise ValueError(f"noise_std must be a finite number >= 0, got {std!r}")
    if kind is None and hyperparams.get("noise_std") is not None:
        raise ValueError(f"noise_std {std!r} without noise_type adds no noise: give noise_type "
                         f"(one of {NOISE_TYPES}) too, or leave noise_std out")


def policy_classes(algo: str) -> dict[str, type]:
    """The policies of ``algo`` for flat vector observations: name -> class.

    ``MlpPolicy`` (``MlpLstmPolicy`` for RecurrentPPO), the first being the default.
    """
    aliases = getattr(algorithm(algo), "policy_aliases", {})
    return {name: cls for name, cls in aliases.items() if name.startswith("Mlp")}


def _count(low: int) -> Any:
    return lambda v: is_integer(v, integral_floats=True) and v >= low


def _positive_number(text: str) -> bool:
    try:
        return is_number(float(text), gt=0.0)
    except ValueError:
        return False


def _rate(v: Any) -> bool:
    if isinstance(v, str) and v.startswith("lin_"):
        return _positive_number(v[4:])
    return is_number(v, gt=0.0)


def _fraction(v: Any) -> bool:
    return is_number(v, gt=0.0, le=1.0)


def _train_freq(v: Any) -> bool:
    if isinstance(v, list | tuple) and len(v) == 2:
        return _count(1)(v[0]) and v[1] in ("step", "episode")
    return _count(1)(v)


def _gradient_steps(v: Any) -> bool:
    return v == -1 or _count(1)(v)


def _ent_coef(v: Any) -> bool:
    if isinstance(v, str):
        return v == "auto" or (v.startswith("auto_") and _positive_number(v[5:]))
    return is_number(v, ge=0.0)


VALUE_RULES: dict[str, tuple[Any, str]] = {
    "n_envs": (_count(1), "an integer >= 1"),
    "n_steps": (_count(1), "an integer >= 1"),
    "batch_size": (_count(1), "an integer >= 1"),
    "n_epochs": (_count(1), "an integer >= 1"),
    "buffer_size": (_count(1), "an integer >= 1"),
    "learning_starts": (_count(0), "an integer >= 0"),
    "learning_rate": (_rate, "a number > 0 or a linear schedule lin_<number>"),
    "clip_range": (_rate, "a number > 0 or a linear schedule lin_<number>"),
    "gamma": (_fraction, "a number in (0, 1]"),
    "gae_lambda": (_fraction, "a number in (0, 1]"),
    "tau": (_fraction, "a number in (0, 1]"),
    "ent_coef": (_ent_coef, "a number >= 0 (or auto / auto_<number> for SAC and TQC)"),
    "vf_coef": (lambda v: is_number(v, ge=0.0), "a number >= 0"),
    "max_grad_norm": (lambda v: is_number(v, gt=0.0), "a number > 0"),
    "train_freq": (_train_freq, "an integer >= 1 or [integer >= 1, step or episode]"),
    "gradient_steps": (_gradient_steps, "an integer >= 1, or -1 (as many as env steps)"),
    "policy_delay": (_count(1), "an integer >= 1"),
    "target_policy_noise": (lambda v: is_number(v, ge=0.0), "a number >= 0"),
    "target_noise_clip": (lambda v: is_number(v, ge=0.0), "a number >= 0"),
}
"""Checks of the common hyperparameters' values, with what is allowed (SB3's own checks are
asserts without the key's name)."""


# ------------------------------------------------------------------------------- the hedger
CONSTANT_VARIANCE = 1e-8
"""An observation entry whose training variance is below this (a std of 1e-4), beyond what
VecNormalize's starting statistics leak into it, was constant in training (the GBM presets'
implied vol, cost rate and liquidity: their spread is float32 rounding); :class:`ObsNormalizer`
centres it without scaling it."""

RMS_PRIOR_COUNT = 1e-4
"""The weight of stable-baselines3's ``RunningMeanStd`` starting statistics (mean 0, variance
1): after ``count`` observations of a constant ``c`` its variance is still about
``1e-4 (1 + c^2) / count`` (2.7e-7 for the implied vol after 384 steps, above
:data:`CONSTANT_VARIANCE`)."""


class ObsNormalizer:
    """A frozen copy of VecNormalize's observation statistics (what the agent was trained on).

    Entries that were constant in training (variance below :data:`CONSTANT_VARIANCE` plus the
    starting statistics' leak, :data:`RMS_PRIOR_COUNT`) are centred, not scaled: divided by
    their rounding-noise std (about 1e-4), a stress scenario's move (a vol spike's implied vol,
    a drought's liquidity) hit the clip at 10, whereas in training they were 0 either way. The
    deep-hedging policy's inputs get std 1 alike (``fit_normalizer`` of
    :mod:`hedgearena.agents.policies`). ``count`` is the statistics' number of observations
    (``RunningMeanStd.count``; infinite: no leak).
    """

    def __init__(self, mean: NDArray[np.float64], var: NDArray[np.float64], clip: float,
                 epsilon: float, count: float = np.inf) -> None:
        self.mean, self.var, self.clip, self.epsilon = mean, var, clip, epsilon
        leak = 1.01 * RMS_PRIOR_COUNT * (1.0 + mean * mean) / count  # 1% slack for rounding
        self.scale = np.where(var < CONSTANT_VARIANCE + leak, 1.0, np.sqrt(var + epsilon))

    @classmethod
    def of(cls, venv: VecEnv | None) -> ObsNormalizer | None:
        """The statistics of ``venv`` if it is a VecNormalize normalising observations."""
        if not isinstance(venv, VecNormalize) or not venv.norm_obs:
            return None
        rms = venv.obs_rms
        assert isinstance(rms, RunningMeanStd)  # a Box observation space's (not a Dict's)
        return cls(rms.mean.copy(), rms.var.copy(), float(venv.clip_obs), float(venv.epsilon),
                   float(rms.count))

    def __call__(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        """Normalised observations, as VecNormalize.normalize_obs computes them.

        But for the entries constant in training: centred only (:data:`CONSTANT_VARIANCE`).
        """
        scaled = (obs - self.mean) / self.scale
        return np.clip(scaled, -self.clip, self.clip).astype(np.float32)


class SB3Hedger(Hedger):
    """A trained stable-baselines3 agent as an arena hedger.

    Its actions are read with the action mode it was trained with (``env_overrides``), turned
    into positions by the env (:meth:`VecHedgingEnv.positions_from_actions`) and traded like
    any hedger's; observations are normalised with the training statistics; recurrent agents
    carry their LSTM state over the episode and start a fresh one where a row starts a new
    episode (:meth:`episode_starts`). Deterministic actions.

    Args:
        model: the trained model.
        normalizer: the observation statistics (None if the agent saw raw observations).
        env_overrides: the config fields of the agent's view of the env (action mode, reward).
        name: the label in tables.
    """

    def __init__(self, model: BaseAlgorithm, normalizer: ObsNormalizer | None,
                 env_overrides: Mapping[str, Any], name: str = "agent") -> None:
        self.model, self.normalizer, self.name = model, normalizer, name
        self.env_overrides = dict(env_overrides)
        self._env: VecHedgingEnv | None = None
        self._lstm: Any = None
        self._start: NDArray[np.bool_] | None = None

    def reset(self, env: VecHedgingEnv) -> None:
        """Check that the agent fits ``env``; remember it; recurrent agents start a new LSTM state.

        Raises:
            ValueError: the env's observations or actions are not those the agent was trained
                on (another env, a hedging option added or removed, ``observe_pnl`` changed).
        """
        check_agent_spaces(self.name, self.model.observation_space, self.model.action_space, env)
        self._env, self._lstm = env, None
        self._start = np.ones(env.num_envs, dtype=bool)

    def positions(self, state: State, obs: NDArray[np.float32]) -> NDArray[np.float64]:
        """The agent's deterministic actions as positions."""
        if self._env is None or self._start is None:
            raise RuntimeError(f"{self.name}: call reset(env) before positions()")
        x = self.normalizer(obs) if self.normalizer is not None else obs
        actions, self._lstm = self.model.predict(x, state=self._lstm,
                                                 episode_start=self.episode_starts(state),
                                                 deterministic=True)
        self._start = np.zeros_like(self._start)
        return self._env.positions_from_actions(np.asarray(actions, dtype=np.float64))

    def episode_starts(self, state: State) -> NDArray[np.bool_]:
        """The rows whose observation is the first of an episode, ``(n_paths,)`` booleans.

        Every row after :meth:`reset`, and any row at market step 0 (``state["step"]``): a row
        the vector env restarted, in either autoreset mode (``SAME_STEP``: the step that ended
        the episode returned the new one's first observation; ``NEXT_STEP``: the step after
        it). A recurrent agent starts a fresh LSTM state there, as stable-baselines3 does in
        training (``episode_start`` is the previous step's ``done``); other agents ignore it.
        """
        assert self._start is not None  # set by reset
        step = state.get("step") if isinstance(state, Mapping) else None
        if step is None:
            return self._start
        return self._start | (np.asarray(step).reshape(-1) == 0)


def timesteps(hyperparams: Mapping[str, Any], default: int) -> int:
    """The training budget of zoo hyperparameters (``n_timesteps``), env steps.

    Raises:
        ValueError: not a whole number >= 1 (``1e4`` is; ``true`` and ``100.5`` are not).
    """
    value = hyperparams.get("n_timesteps", default)
    if not (is_integer(value, integral_floats=True) and value >= 1):
        raise ValueError(f"n_timesteps must be a whole number >= 1 (env steps), got {value!r}")
    return int(value)
