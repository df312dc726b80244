"""The main job: train an agent on an env, then score it against the classical hedgers.

A run folder (``runs/<name>/``) holds:

==========================  ======================================================================
path                        content
==========================  ======================================================================
``config.yaml``             the resolved run config (what :func:`load_config` reads back)
``env.yaml``                the resolved env config
``checkpoints/``            periodic checkpoints (model, normaliser or optimiser, step count)
``model/``                  the final agent (the best on the validation paths)
``tb/``                     TensorBoard events: RL losses and the hedging metrics
``report/``                 the arena's tables (CSV, JSON, Markdown) and plots, agent included
``training.json``           training seconds (of the last command: a resume's own), steps,
                            validation history
==========================  ======================================================================

Run ``python train.py`` again with the same config to resume an interrupted run: it continues
from the last checkpoint and its step count.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from hedgearena.baselines.benchmark import (
    BenchmarkReport,
    BenchmarkSettings,
    benchmark,
    check_memory,
    is_dated,
    last_day_before,
    plain_data,
    report_note,
    split_configs,
    validation_split,
    validation_start,
)
from hedgearena.baselines.hedger import Hedger
from hedgearena.envs.config import EnvConfig
from hedgearena.run_config import RunConfig, fixed_view, load_config
from hedgearena.yaml_io import dump_yaml, load_yaml

DEEP_HEDGING = "deep_hedging"
BUDGET_KEYS = ("steps", "n_timesteps")
"""Hyperparameters a resumed run may change: its training budget (deep hedging's gradient
steps, an SB3 agent's env steps), so that an interrupted or finished run can train longer."""


def agent_name(config: RunConfig) -> str:
    """The agent's label in tables: ``"<algo> agent"``."""
    return f"{config.agent.algo.replace('_', ' ')} agent"


def _write_yaml(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_yaml(data))
    return path


def write_env_yaml(run_dir: Path, env_config: EnvConfig) -> Path:
    """Write the resolved env config as ``run_dir/env.yaml``."""
    return _write_yaml(run_dir / "env.yaml", plain_data(env_config.to_dict()))


def has_checkpoints(run_dir: Path) -> bool:
    """Whether ``run_dir/checkpoints`` holds anything (a run would resume from it)."""
    checkpoints = run_dir / "checkpoints"
    return checkpoints.is_dir() and any(checkpoints.iterdir())


def train_and_score(config: RunConfig, progress: bool = True) -> Path:
    """Train ``config``'s agent, save it and write the arena report; returns the run folder."""
    from hedgearena.baselines.report import wide_console

    console = wide_console()
    run_dir = config.run_dir

    def announce(resuming: bool) -> None:
        console.print(f"[bold]hedgearena[/]: training {agent_name(config)} on {config.env.id} "
                      f"-> {run_dir}/" + (" (resuming from its checkpoints)" if resuming else ""))

    config, info = train_run(config, progress, announce)
    console.print(f"trained in {info['seconds']:.0f} s; scoring on {config.arena.paths:,} paths")
    hedger = load_agent(run_dir, config)
    score_agent(config, config.env.config(), hedger, run_dir / "report", progress, console)
    return run_dir


def train_run(
    config: RunConfig, progress: bool = True, announce: Callable[[bool], None] | None = None,
) -> tuple[RunConfig, dict[str, Any]]:
    """Train ``config``'s agent into its run folder (resuming from its checkpoints).

    Writes the resolved ``config.yaml`` and ``env.yaml`` first, ``training.json`` (with the
    training ``seconds``) last. ``announce(resuming)`` is called once every check has passed,
    just before training (``resuming``: the folder holds checkpoints). Returns the resolved
    config and the training summary.
    """
    run_dir = config.run_dir
    env_config = config.env.config()  # bad settings are named before any checkpoint clash
    check_agent(config, env_config)  # every check runs before anything is written
    check_arena(config, env_config)
    learning = training_config(config)
    config = config.model_copy(update={"agent": resolve_agent_view(learning).agent})
    check_resumable(config)  # a refused start leaves the folder's config as it was
    if announce is not None:
        announce(has_checkpoints(run_dir))
    config.dump(run_dir / "config.yaml")
    write_env_yaml(run_dir, env_config)
    start = time.perf_counter()
    learning = learning.model_copy(update={"agent": config.agent})
    info = train_agent(learning, learning.env.config(), run_dir, progress)
    info["seconds"] = time.perf_counter() - start
    (run_dir / "training.json").write_text(json.dumps(info, indent=2, default=float) + "\n")
    return config, info


def training_config(config: RunConfig) -> RunConfig:
    """The run config an agent learns on: ``config``, its history cut before ``arena.split``.

    With ``arena.split`` (the historical replay), the agent learns, like the benchmark's tuned
    bands, on the history before the split only, and the arena scores it on the history from
    the split on (out of sample): the env's ``market_kwargs`` get ``end`` = the day before the
    split (or keep their own ``end`` if it is earlier). Without a split, ``config`` itself.

    Examples:
        >>> from hedgearena.run_config import RunConfig
        >>> config = RunConfig.model_validate({"env": {"id": "hedgearena/HistoricalReplay-v0"},
        ...                                     "arena": {"split": "2010-01-01"}})
        >>> training_config(config).env.kwargs
        {'market_kwargs': {'end': '2009-12-31'}}
    """
    split = config.arena.split
    return config if split is None else history_before(config, split)


def history_before(config: RunConfig, day: str) -> RunConfig:
    """``config`` with its env's history ending on the day before ``day``.

    The env's ``market_kwargs`` get ``end`` = that day, unless their own ``end`` is earlier.
    """
    last = last_day_before(day).date()
    kwargs = dict(config.env.kwargs)
    market_kwargs = dict(kwargs.get("market_kwargs") or {})
    own_end = market_kwargs.get("end")
    if own_end is None or pd.Timestamp(own_end).date() > last:
        market_kwargs["end"] = str(last)
    kwargs["market_kwargs"] = market_kwargs
    return config.model_copy(update={"env": config.env.model_copy(update={"kwargs": kwargs})})


def fitting_parts(
    config: RunConfig, env_config: EnvConfig, valid_history: float
) -> tuple[RunConfig, EnvConfig]:
    """The run config an SB3 or RLlib agent fits on and the env config it validates on.

    ``config`` is the config the agent learns on (:func:`training_config`) and ``env_config``
    its env. On a dated market (the replay) with ``valid_history > 0``, the agent fits on the
    days before :func:`~hedgearena.baselines.benchmark.validation_start` and validates on the
    days from it (no validation window shares a day with a training window), as deep hedging
    does; elsewhere it fits on ``config`` and validates on ``env_config`` (independent paths).

    Raises:
        ValueError: if a part of the history cannot hold an episode's window.
    """
    first = validation_start(env_config, valid_history)
    if first is None:
        return config, env_config
    return history_before(config, first), validation_split(env_config, valid_history)[1]


def check_resumable(config: RunConfig, run_dir: Path | None = None,
                    learner: str = "agent") -> None:
    """Refuse to resume a run folder's checkpoints under other training settings.

    ``run_dir`` is the folder (default: ``config.run_dir``); ``learner`` the config's section
    of the trained agent, ``agent`` or ``rllib``.

    A run resumes from the checkpoints of its folder; if the folder's ``config.yaml`` trained
    with another env, seed, algorithm, view or hyperparameters (the budget aside,
    :data:`BUDGET_KEYS`), the weights would silently carry on under the new settings; and a
    budget below the checkpoint's progress is refused (:func:`check_budget`).

    Raises:
        ValueError: naming the folder, the settings that differ (old -> new) or the budget and
            the checkpoint's progress, and the ways out.
    """
    run_dir = config.run_dir if run_dir is None else run_dir
    if not ((run_dir / "config.yaml").is_file() and has_checkpoints(run_dir)):
        return
    _check_settings(config, run_dir, learner)
    check_budget(config, run_dir, learner)


def _check_settings(config: RunConfig, run_dir: Path, learner: str) -> None:
    """Refuse checkpoints trained with other settings than ``config``'s (the budget aside)."""
    saved, checkpoints = run_dir / "config.yaml", run_dir / "checkpoints"
    old = _training_settings(_read_yaml(saved), learner)
    changed = _differences(old, _training_settings(config.model_dump(mode="json"), learner))
    changed += _changed_zoo_hyperparams(config, run_dir, learner)
    if any(line.startswith("env.") for line in changed) and _same_env(saved, config):
        changed = [line for line in changed if not line.startswith("env.")]
    if changed:
        calibrated = any(line.startswith(("agent.env_kwargs.risk_aversion",
                                          "agent.env_kwargs.pnl_reference")) for line in changed)
        why = (" (risk_aversion and pnl_reference set to auto are calibrated on the validation "
               "paths: arena.seed, arena.c and agent.eval_paths change them)") if calibrated else ""
        raise ValueError(
            f"{run_dir} holds checkpoints trained with other settings ({'; '.join(changed)})"
            f"{why}: resuming would carry those weights on. Give this run another name "
            f"(--name or --set name=...), or delete {checkpoints} to train from scratch"
        )


def _same_env(saved: Path, config: RunConfig) -> bool:
    """Whether the run config file ``saved`` and ``config`` build equal env configs.

    Keywords written out at their defaults (``cost: 0.01`` on ShortCall-v0) change no env; env
    configs compare by value (a replayed history compares by identity: never equal, so its
    keywords are compared as written). False if either cannot be built.
    """
    try:
        return bool(load_config(saved).env.config() == config.env.config())
    except (ValueError, TypeError, OSError):
        return False


def training_budget(config: RunConfig, learner: str = "agent") -> tuple[int, str]:
    """The training budget of ``config``'s learner and the setting that gives it.

    Deep hedging counts gradient steps (``agent.hyperparams.steps``), an SB3 agent env steps
    (``n_timesteps``: the zoo file's or ``agent.hyperparams``'), an RLlib agent env steps
    (``rllib.n_timesteps``).
    """
    if learner == "rllib":
        return config.rllib.n_timesteps, "rllib.n_timesteps"
    if config.agent.algo == DEEP_HEDGING:
        return deep_hedging_settings(config)[0].steps, "agent.hyperparams.steps"
    from hedgearena.agents.sb3 import timesteps
    from hedgearena.agents.training import DEFAULT_TIMESTEPS, run_hyperparams

    return timesteps(run_hyperparams(config), DEFAULT_TIMESTEPS), "n_timesteps"


def checkpoint_progress(config: RunConfig, run_dir: Path, learner: str = "agent") -> int | None:
    """How far the newest checkpoint of ``run_dir`` trained (None: no checkpoint).

    Gradient steps for deep hedging (``checkpoints/last.pt``), env steps for SB3 and RLlib
    agents (``checkpoints/latest.json``).
    """
    folder = run_dir / "checkpoints"
    if learner == "agent" and config.agent.algo == DEEP_HEDGING:
        from hedgearena.agents.deep_hedging import CHECKPOINT_FILE
        from hedgearena.agents.saved import loading

        path = folder / CHECKPOINT_FILE
        if not path.is_file():
            return None
        import torch

        with loading(path, "deep-hedging checkpoint"):
            return int(torch.load(path, weights_only=True)["step"])
    from hedgearena.agents.saved import read_json

    pointer = folder / "latest.json"
    if not pointer.is_file():
        return None
    return int(read_json(pointer, "checkpoint pointer", ("timesteps",))["timesteps"])


def _saved_budget(run_dir: Path, learner: str) -> int | None:
    """The budget the run folder's own config (and zoo record) trained with, if readable."""
    try:
        saved = load_config(run_dir / "config.yaml")
        if learner == "agent" and saved.agent.algo != DEEP_HEDGING:
            from hedgearena.agents.sb3 import timesteps
            from hedgearena.agents.training import DEFAULT_TIMESTEPS, HYPERPARAMS_FILE

            record = run_dir / HYPERPARAMS_FILE
            if record.is_file():
                return timesteps(_read_yaml(record), DEFAULT_TIMESTEPS)
        return training_budget(saved, learner)[0]
    except ValueError:
        return None


def check_budget(config: RunConfig, run_dir: Path | None = None, learner: str = "agent") -> None:
    """Refuse a training budget below the progress of the run folder's checkpoint.

    Training cannot go back: the run would stop where the checkpoint is, past the budget
    asked for, and report a model trained longer than its config says. The budget the run
    itself trained with is accepted even when the checkpoint went past it (SB3 and RLlib
    collect whole rollouts and batches, so a finished run may hold a few steps more): the same
    command started again changes nothing.

    Raises:
        ValueError: naming the checkpoint's progress, the requested budget and the ways out.
    """
    run_dir = config.run_dir if run_dir is None else run_dir
    progress = checkpoint_progress(config, run_dir, learner)
    budget, name = training_budget(config, learner)
    if progress is None or budget >= progress or budget == _saved_budget(run_dir, learner):
        return
    unit = "gradient steps" if name == "agent.hyperparams.steps" else "env steps"
    raise ValueError(
        f"{run_dir / 'checkpoints'} holds a checkpoint at {progress} {unit}, but the requested "
        f"budget {name} is {budget}: a resumed run cannot train less than it already has. "
        f"Give {name} >= {progress} to resume, or another name (--name) or delete "
        f"{run_dir / 'checkpoints'} to train {budget} {unit} from scratch")


def _changed_zoo_hyperparams(config: RunConfig, run_dir: Path, learner: str) -> list[str]:
    """The resolved SB3 hyperparameters (zoo file + overrides) that changed since the run began.

    An edited ``configs/<algo>.yml`` changes them without changing ``config.yaml``; the run's
    ``hyperparams.yaml`` holds those it started with (the budget aside, :data:`BUDGET_KEYS`).
    """
    if learner != "agent" or config.agent.algo == DEEP_HEDGING:
        return []
    from hedgearena.agents.training import HYPERPARAMS_FILE, resolved_hyperparams

    saved = run_dir / HYPERPARAMS_FILE
    if not saved.is_file():
        return []
    old, new = (
        {k: v for k, v in params.items() if k not in BUDGET_KEYS}
        for params in (_read_yaml(saved), resolved_hyperparams(config))
    )
    return [f"{HYPERPARAMS_FILE}: {line}" for line in _differences(old, new)]


def _read_yaml(path: Path) -> dict[str, Any]:
    """The mapping of a YAML file the run wrote, or ``ValueError`` naming the file."""
    try:
        data = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML ({error}): restore it, or delete the run "
                         "folder's checkpoints to train from scratch") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping, got {type(data).__name__}")
    return data


def _training_settings(tree: dict[str, Any], learner: str = "agent") -> dict[str, Any]:
    """What a run's weights depend on, from its config tree (the budget left out)."""
    agent = dict(tree.get(learner) or {})
    params = {k: v for k, v in (agent.get("hyperparams") or {}).items() if k not in BUDGET_KEYS}
    settings = {"env": tree.get("env"), "seed": tree.get("seed"),
                # the agent learns on the history before the split (training_config)
                "arena.split": (tree.get("arena") or {}).get("split"),
                f"{learner}.algo": agent.get("algo"),
                f"{learner}.env_kwargs": agent.get("env_kwargs"),
                f"{learner}.hyperparams": params}
    if learner == "rllib":  # the module's inputs: each runner's batch of paths
        settings["rllib.num_envs_per_env_runner"] = agent.get("num_envs_per_env_runner")
    return settings


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """``"key: old -> new"`` for every leaf where two config trees differ (dotted keys).

    Examples:
        >>> _differences({"env": {"id": "a", "kwargs": {"cost": 0.01}}},
        ...              {"env": {"id": "a", "kwargs": {"cost": 0.002}}})
        ['env.kwargs.cost: 0.01 -> 0.002']
    """
    if isinstance(old, dict) and isinstance(new, dict):
        return [line for key in sorted(set(old) | set(new), key=str)
                for line in _differences(old.get(key, _UNSET), new.get(key, _UNSET),
                                         f"{prefix}{key}.")]
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


class _Unset:
    """A key one config tree lacks (shown as ``unset``)."""

    def __repr__(self) -> str:
        return "unset"


_UNSET = _Unset()


def train_agent(
    config: RunConfig, env_config: EnvConfig, run_dir: Path, progress: bool
) -> dict[str, Any]:
    """Train the agent of ``config`` into ``run_dir/model`` (resuming from checkpoints).

    An SB3 agent's view is completed first (``agents.training.resolve_view``).
    """
    if config.agent.algo == DEEP_HEDGING:
        return _train_deep_hedging(config, env_config, run_dir, progress)
    from hedgearena.agents.training import resolve_view, train_sb3

    return train_sb3(resolve_view(config), env_config, run_dir, progress)


def check_agent(config: RunConfig, env_config: EnvConfig | None = None) -> None:
    """Raise ``ValueError`` naming a bad hyperparameter, budget, view or seed of the agent.

    Everything training reads from the config is checked here, before a run writes anything:
    deep hedging's trainer settings and policy fields (e.g. ``activation``) against the env;
    an SB3 agent's hyperparameters (the zoo file's and the overrides), its view of the env
    (``agent.env_kwargs`` applied to the env, ``auto`` aside) and its seeds; on a dated
    market, that both parts of the history cut for validation hold an episode
    (``valid_history``). ``env_config`` is ``config.env.config()`` (built if not given).
    """
    env_config = config.env.config() if env_config is None else env_config
    check_scoring_seed(config, config.arena.seed, "arena.seed")
    if config.agent.algo == DEEP_HEDGING:
        from hedgearena.agents.deep_hedging import check_setup

        trainer, policy = deep_hedging_settings(config)
        check_setup(env_config, **policy)
        validation_split(learning_env(config, env_config), trainer.valid_history)
        return
    validation_split(learning_env(config, env_config), config.agent.valid_history)
    env_config.replace(**fixed_view(config.agent.env_kwargs))
    for offset, paths in ((1, "validation"), (2, "view's calibration")):
        if config.seed == config.arena.seed + offset:  # the SB3 training env's seed
            raise ValueError(
                f"seed ({config.seed}) equals arena.seed + {offset}: the training env would draw "
                f"the {paths} paths (numpy's seed sequences [s] and [s, 0] are one stream); "
                "choose a seed away from arena.seed")
    from hedgearena.agents.sb3 import check_hyperparams, timesteps
    from hedgearena.agents.training import DEFAULT_TIMESTEPS, run_hyperparams

    params = run_hyperparams(config)
    check_hyperparams(config.agent.algo, params)
    timesteps(params, DEFAULT_TIMESTEPS)
    check_sb3_policy(config, env_config, params)


def check_sb3_policy(config: RunConfig, env_config: EnvConfig, params: dict[str, Any]) -> None:
    """Build the SB3 agent's policy on its view's spaces (``policy_kwargs``), before writing.

    The view is ``agent.env_kwargs`` (the default view if empty, ``auto`` aside: it changes no
    space); ``params`` are the run's hyperparameters (zoo file and overrides).
    """
    from hedgearena.agents.sb3 import check_policy, zoo_file
    from hedgearena.agents.training import DEFAULT_VIEW
    from hedgearena.envs.hedging_env import action_space, observation_space

    algo = config.agent.algo
    view = env_config.replace(**fixed_view(dict(config.agent.env_kwargs) or DEFAULT_VIEW))
    where = ("agent.hyperparams.policy_kwargs" if "policy_kwargs" in config.agent.hyperparams
             else f"policy_kwargs of {zoo_file(algo)} ({config.env.id})")
    check_policy(algo, params, observation_space(view), action_space(view), where)


def learning_env(config: RunConfig, env_config: EnvConfig) -> EnvConfig:
    """The env of the history ``config``'s agent may learn on (before ``arena.split``).

    ``env_config`` is ``config.env.config()``; it comes back unless ``arena.split`` cuts a
    dated market (an undated one with a split is named by :func:`check_arena`).
    """
    if config.arena.split and is_dated(env_config.market):
        return training_config(config).env.config()
    return env_config


def check_arena(config: RunConfig, env_config: EnvConfig | None = None, n_agents: int = 1) -> None:
    """Raise ``ValueError`` naming an ``arena`` setting the env cannot be scored with.

    Its hedgers (:func:`check_hedgers`, :func:`check_fit`), its ``split`` (a dated market,
    both parts longer than an episode: :func:`hedgearena.baselines.benchmark.split_configs`)
    and its ``paths`` and ``tune_paths``: the scoring run (``arena.hedgers`` and ``n_agents``
    agents: 1 for a run, 0 for ``train.py benchmark``) and each ``family:best``'s tuning run
    must fit in memory (:func:`hedgearena.baselines.benchmark.check_memory`, the bound the
    arena enforces when it scores, checked without simulating). ``env_config`` is
    ``config.env.config()`` (built if not given).
    """
    env_config = config.env.config() if env_config is None else env_config
    check_hedgers(env_config, config.arena.hedgers)
    tuning = split_configs(env_config, config.arena.split)[0]
    settings = config.arena.settings(False)
    check_fit(tuning, config.arena.hedgers, settings)
    check_memory(env_config, config.arena.hedgers, settings, ("arena.paths", "arena.tune_paths"),
                 n_agents)


FIT_TRIAL_PATHS = 256
"""Tuning paths of :func:`check_fit`'s trial fit (a few milliseconds on ShortCall-v0)."""


def check_fit(tuning: EnvConfig, specs: list[str], settings: BenchmarkSettings,
              setting: str = "arena") -> None:
    """Refuse a spec ``mv_delta:fit[:edge...]`` that cannot be fitted, before a run writes.

    The benchmark fits it on its tuning paths (``tuning``, the first config of
    :func:`~hedgearena.baselines.benchmark.split_configs`) after an agent has trained: fewer than
    two tuning paths, or paths on which its regression cannot be solved (one decision an
    episode: every path's delta is the initial one), are named now, by a trial fit on up to
    :data:`FIT_TRIAL_PATHS` of them (each spec's maturity buckets, ``mv_delta:fit:edge...``, too:
    a bucket no option reaches), and so are more tuning paths than the fit can keep in memory
    (:func:`~hedgearena.baselines.minimum_variance.check_fit_memory`). No fitted spec: nothing
    to check.

    Raises:
        ValueError: naming the setting and why.
    """
    from hedgearena.baselines.minimum_variance import (
        check_fit_memory,
        fit_minimum_variance,
        fit_spec_edges,
    )

    fitted = {spec: edges for spec in specs if (edges := fit_spec_edges(spec)) is not None}
    if not fitted:
        return
    if settings.tune_paths < 2:
        raise ValueError(f"{setting}.tune_paths must be >= 2 to fit 'mv_delta:fit' (Hull and "
                         f"White's regression on the tuning paths), got {settings.tune_paths}")
    for spec, edges in fitted.items():
        try:  # the fit on all of them must fit in memory, not only the trial's
            check_fit_memory(settings.tune_paths, len(edges) + 1)
        except ValueError as error:
            raise ValueError(f"{setting}.tune_paths: {spec.strip()!r} is fitted on all of "
                             f"them: {error}") from None
        trial = min(settings.tune_paths, FIT_TRIAL_PATHS)
        try:
            fit_minimum_variance(tuning, trial, settings.tuning_seed, maturity_edges=edges)
        except ValueError as error:
            raise ValueError(f"{setting}.hedgers: {spec.strip()!r} cannot be fitted on the "
                             f"tuning paths: {error} (a trial fit on the first {trial:,} of "
                             f"them, seed {settings.tuning_seed})") from None


def check_hedgers(env_config: EnvConfig, specs: list[str], setting: str = "arena.hedgers") -> None:
    """Refuse baseline hedgers that cannot hedge the env, before a run writes or trains.

    Each hedger of ``specs`` (``family:best`` aside: the bands hedge any env) is reset on two
    paths of the env, where it checks what it needs (a hedging option for ``delta_vega``, a flat
    start for ``cppi``, a book that holds options for ``mv_delta``...): found now, not after
    training when the arena scores it. Two specs of one hedger (``delta`` and ``delta:1``, or
    ``ww:best`` twice) are refused too: the arena needs unique names.

    Raises:
        ValueError: naming the setting, the spec and why.
    """
    from hedgearena.baselines.arena import hedger_config
    from hedgearena.baselines.benchmark import tuned_family
    from hedgearena.baselines.minimum_variance import MinimumVarianceDelta, fit_spec_edges
    from hedgearena.baselines.registry import parse_hedger
    from hedgearena.envs.vector_env import VecHedgingEnv

    envs: dict[int, VecHedgingEnv] = {}  # one env per view (hedgers' env_overrides)
    seen: dict[str, str] = {}  # hedger name (or tuned family) -> its first spec
    try:
        for spec in specs:
            family, edges = tuned_family(spec), fit_spec_edges(spec)
            hedger = (None if family is not None
                      else MinimumVarianceDelta.awaiting_fit(edges) if edges is not None
                      else parse_hedger(spec))  # a fitted one checks the book before its fit
            name = f"{family} (tuned)" if hedger is None else hedger.name
            if name in seen:
                raise ValueError(f"{setting}: {spec!r} is the same hedger as {seen[name]!r} "
                                 f"({name!r}): give each hedger once")
            seen[name] = spec
            if hedger is None:
                continue
            view = hedger_config(env_config, hedger)
            if id(view) not in envs:
                envs[id(view)] = VecHedgingEnv(2, config=view, block=2)
                envs[id(view)].reset(seed=0)
            try:
                hedger.reset(envs[id(view)])
            except ValueError as error:
                raise ValueError(f"{setting}: {spec!r} cannot hedge this env: {error}") from None
    finally:
        for env in envs.values():
            env.close()


EVALUATION_FIELDS = ("arena", "out", "name")
"""The run-config sections ``evaluate`` may change (the rest is what the agent was trained on)."""


def check_evaluation_config(saved: RunConfig, config: RunConfig) -> None:
    """Refuse an evaluation config that differs from the run's outside :data:`EVALUATION_FIELDS`.

    Raises:
        ValueError: naming the settings that differ.
    """
    changed = sorted(
        name for name in type(config).model_fields
        if name not in EVALUATION_FIELDS and getattr(saved, name) != getattr(config, name)
    )
    if changed:
        run, given = saved.model_dump(), config.model_dump()
        differences = [line for name in changed
                       for line in _differences(run[name], given[name], f"{name}.")]
        raise ValueError(
            f"evaluate scores the run's own agent on its own env: change only arena.* (paths, "
            f"seed, hedgers) when evaluating, not {', '.join(changed)} ("
            + "; ".join(differences[:6]) + ("; ..." if len(differences) > 6 else "") + ")")


def check_scoring_split(saved: RunConfig, config: RunConfig) -> None:
    """Refuse scoring a run's agent on history it learnt on (``arena.split``, the replay).

    An agent trained with ``arena.split`` learnt on the history before it
    (:func:`training_config`); scoring it with no split, or an earlier one, would replay days it
    trained on. A later split, or the same, is out of sample. A run trained without a split
    learnt on the whole history: any scoring on it is in sample, as in its own report.

    Raises:
        ValueError: naming both splits and what is allowed.
    """
    trained, scored = saved.arena.split, config.arena.split
    if trained is not None and (scored is None or scored < trained):
        raise ValueError(
            f"the agent learnt on the history before arena.split = {trained}: scoring it with "
            f"arena.split = {scored} would replay days it trained on; set arena.split to "
            f"{trained} or later"
        )


def check_scoring_seed(config: RunConfig, seed: int, name: str) -> None:
    """Refuse scoring ``config``'s agent on paths of ``seed`` that it trained on.

    Block ``k`` of a run with seed ``s`` is numpy's seed sequence ``[s, k]``, the same stream as
    the deep hedger's training chunk ``[s, 0, 0]`` and as an SB3 training env seeded with ``s``
    (``[s]``): with ``seed`` equal to the agent's, the scoring paths would be (or begin with) its
    training paths. ``name`` is the setting that gave ``seed`` (``arena.seed``, ``stress.seed``).
    """
    if config.agent.algo == DEEP_HEDGING:
        trained, what = deep_hedging_settings(config)[0].seed, "the deep hedger's seed"
    else:
        trained, what = config.seed, "the SB3 training env's seed"
    if trained == seed:
        raise ValueError(
            f"{what} equals {name} ({seed}): the scoring paths would be the agent's training "
            "paths (numpy's seed sequences [s], [s, 0] and [s, 0, 0] are one stream); choose "
            f"another {name} or train with another seed")


def resolve_agent_view(config: RunConfig) -> RunConfig:
    """``config`` with its SB3 agent's view resolved (see ``agents.training.resolve_view``)."""
    if config.agent.algo == DEEP_HEDGING:
        return config
    from hedgearena.agents.training import resolve_view

    return resolve_view(config)


def load_agent(run_dir: Path, config: RunConfig) -> Hedger:
    """The trained agent of a run folder as an arena hedger.

    Raises:
        ValueError: no ``model/``, or one that is not ``config``'s agent
            (:func:`hedgearena.agents.saved.check_saved_agent`).
    """
    from hedgearena.agents.saved import check_saved_agent

    model_dir = run_dir / "model"
    if not model_dir.is_dir():
        raise ValueError(f"{run_dir} has no trained model (model/ is missing): train it first")
    check_saved_agent(run_dir, config)
    if config.agent.algo == DEEP_HEDGING:
        from hedgearena.agents.deep_hedging import DeepHedger

        return DeepHedger.load(model_dir, name=agent_name(config))
    from hedgearena.agents.training import load_sb3_hedger

    return load_sb3_hedger(model_dir, config, agent_name(config))


def score_agent(
    config: RunConfig, env_config: EnvConfig, hedger: Hedger, out_dir: Path, progress: bool,
    console: Any = None,
) -> BenchmarkReport:
    """Score the agent and the baselines of ``config.arena`` on the same paths; write the report."""
    from hedgearena.baselines.report import print_table

    specs: list[str | Hedger] = [*config.arena.hedgers, hedger]
    title = (f"{config.env.id}: {hedger.name} vs baselines, {config.arena.paths:,} paths, "
             f"seed {config.arena.seed}")
    settings = config.arena.settings(progress)
    result = benchmark(env_config, specs, settings, out_dir, title)
    print_table(result.table, title, console, c=config.arena.c,
                risk_aversion=config.arena.risk_aversion,
                note=report_note(result, settings))
    return result


def evaluate_run(run_dir: Path, config: RunConfig, progress: bool = True) -> Path:
    """Score a run's saved agent again, into ``run_dir/evaluation/``.

    The same arena settings give the same numbers as the run's own report.
    """
    if not run_dir.is_dir():
        raise ValueError(f"run folder {str(run_dir)!r} does not exist")
    saved = load_config(run_dir / "config.yaml")
    check_evaluation_config(saved, config)
    check_scoring_seed(saved, config.arena.seed, "arena.seed")
    check_scoring_split(saved, config)
    check_arena(config)
    hedger = load_agent(run_dir, config)
    out_dir = run_dir / "evaluation"
    config.dump(out_dir / "run_config.yaml")  # config.yaml is the report's own
    score_agent(config, config.env.config(), hedger, out_dir, progress)
    return out_dir


# ----------------------------------------------------------------------------- deep hedging
def deep_hedging_settings(config: RunConfig) -> tuple[Any, dict[str, Any]]:
    """The deep hedger's ``TrainerConfig`` and policy fields, from ``agent.hyperparams``.

    The trainer's seed is the run's unless the hyperparameters give one; errors name the keys.
    """
    from hedgearena.agents.deep_hedging import TrainerConfig

    trainer_params, policy_fields = split_deep_hedging_params(dict(config.agent.hyperparams))
    trainer_params.setdefault("seed", config.seed)
    seed = trainer_params["seed"]
    if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 2**64:
        raise ValueError(f"agent.hyperparams.seed must be below 2**64 (torch's largest seed is "
                         f"2**64 - 1), got {seed}")
    return TrainerConfig(**trainer_params), policy_fields


def split_deep_hedging_params(hyperparams: dict[str, Any]) -> tuple[dict[str, Any],
                                                                     dict[str, Any]]:
    """Split flat hyperparameters into trainer settings and policy fields (errors name keys)."""
    from hedgearena.agents.deep_hedging import TrainerConfig
    from hedgearena.agents.policies import PolicySpec

    trainer_keys = {f.name for f in dataclasses.fields(TrainerConfig)}
    policy_keys = {f.name for f in dataclasses.fields(PolicySpec)} - {
        "observation", "action_dim", "notional"}
    unknown = sorted(set(hyperparams) - trainer_keys - policy_keys)
    if unknown:
        raise ValueError(f"unknown deep_hedging hyperparameter(s) {unknown}; allowed: "
                         f"{sorted(trainer_keys | policy_keys)}")
    trainer = {k: v for k, v in hyperparams.items() if k in trainer_keys}
    policy = {k: tuple(v) if isinstance(v, list) else v for k, v in hyperparams.items()
              if k in policy_keys}
    return trainer, policy


def _train_deep_hedging(
    config: RunConfig, env_config: EnvConfig, run_dir: Path, progress: bool
) -> dict[str, Any]:
    from hedgearena.agents.deep_hedging import DeepHedgingTrainer

    trainer_config, policy_fields = deep_hedging_settings(config)
    trainer = DeepHedgingTrainer(
        env_config, config=trainer_config, log_dir=run_dir / "tb",
        checkpoint_dir=run_dir / "checkpoints", progress=progress, **policy_fields,
    )
    result = trainer.train()
    trainer.save(run_dir / "model")
    return {"algo": DEEP_HEDGING, "steps": result.step, "best_step": result.best_step,
            "best_validation": result.best, "history": result.history}
