"""Seed and hyperparameter sweeps on Ray Tune: ``python train.py sweep --config sweep.yml``.

A sweep is a Tune experiment whose trials are ordinary hedgearena training runs: each trial
takes the run config with its own values of the swept keys (dotted keys, as ``--set``: ``seed``,
``env.kwargs.cost``, ``agent.hyperparams.learning_rate``...), trains and scores the agent with
:func:`hedgearena.training.train_and_score` and reports the arena's numbers to Tune
(:data:`TRIAL_METRICS`: the agent's objective, mean and std of cost..., and delta's on the same
paths). The run config's ``sweep`` section (:class:`hedgearena.run_config.SweepSpec`) holds the
space, the search (``grid``, ``random`` or ``optuna``), the metric, concurrency, CPUs per trial
and retries; its ``ray`` section says where Ray runs (a local instance started for the command,
or ``address`` of a cluster). Ray is an optional extra (``pip install "hedgearena[ray]"``),
imported only when a sweep runs.

The sweep folder (``<out>/<name>/``, by default ``runs/sweep-<algo>-<env>/``) holds:

=======================  ==========================================================================
path                     content
=======================  ==========================================================================
``config.yaml``          the resolved run config of the sweep (its ``sweep`` section included)
``trials/<trial>/``      each trial's run folder (config, model, report...), ``trial.log`` (its
                         output) and ``attempts.json`` (how often it was started)
``tune/``                Tune's experiment state (what ``--resume`` restores) and trial results
``results.csv/.json``    one row per trial: status, attempts, the swept values, the metrics,
                         the training seconds
``results.md``           the same as a Markdown table, the best trial first
``summary.csv/.md``      one row per setting (the swept values but the seed): its finished
                         trials' mean metrics and the spread of their objective over the seeds
                         (:func:`summary_table`; also under ``summary`` in ``results.json``)
``sweep.png``            the agent's and delta's objective against each swept key
=======================  ==========================================================================

A failed trial is retried ``sweep.max_failures`` times (resuming from its checkpoints), then
reported in the table with its error. ``--resume`` continues an interrupted sweep: finished
trials are kept as they are, unfinished and failed ones run again.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import json
import logging
import math
import os
import signal
import threading
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hedgearena.run_config import RaySpec, RunConfig, SweepSpec, apply_overrides, load_config

RAY_EXTRA = 'pip install "hedgearena[ray]"'
"""How to install what sweeps and RLlib need."""
AGENT_METRICS = ("objective", "objective_se", "mean_cost", "std_cost", "expected_shortfall_95",
                 "mean_transaction_cost", "mean_turnover")
"""Columns of the agent's row of ``report/scores.json`` a trial reports under the same name."""
REFERENCE = "delta"
"""The hedger whose objective, mean and std of cost a trial reports as ``delta_*``."""
REFERENCE_METRICS = ("objective", "mean_cost", "std_cost")
TRIAL_METRICS = {
    "objective": "the agent's objective Y = mean(cost) + c std(cost), currency per episode",
    "objective_se": "its standard error",
    "mean_cost": "the agent's mean hedging cost",
    "std_cost": "the std of the agent's hedging cost",
    "expected_shortfall_95": "the agent's expected shortfall of the loss at 95%",
    "mean_transaction_cost": "the agent's mean transaction cost",
    "mean_turnover": "the agent's mean turnover, units of the underlying",
    "delta_objective": "Black-Scholes delta's objective on the same paths",
    "delta_mean_cost": "delta's mean hedging cost",
    "delta_std_cost": "the std of delta's hedging cost",
    "objective_vs_delta": "the agent's objective minus delta's (negative: the agent is better)",
}
"""What every trial reports to Tune (``sweep.metric`` is one of these keys)."""
RUN_COLUMNS = {
    "train_seconds": "wall-clock seconds of the trial's training (its run folder's "
                     "training.json; a resumed trial's: the last command's)",
}
"""What the results table reads from each trial's run folder besides its metrics."""
SUMMARY_MARKDOWN = ("trials", "objective", "objective_sd", "objective_min", "objective_max",
                    "objective_se", "objective_vs_delta", "mean_cost", "std_cost",
                    "train_seconds")
"""The columns of ``summary.md`` after the group's keys (:func:`summary_table` has more)."""
TUNE_DIR = "tune"
TRIALS_DIR = "trials"
ATTEMPTS_FILE = "attempts.json"


class MissingRayError(ImportError):
    """Ray (or Optuna) is not installed: the ``ray`` extra is missing."""


def require(module: str) -> Any:
    """Import an optional module of the ``ray`` extra, or fail naming the extra.

    Raises:
        MissingRayError: the module is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingRayError(
            f"{module} is not installed: sweeps and RLlib need the optional extra "
            f"`ray` ({RAY_EXTRA}); missing module {error.name!r}"
        ) from None


@contextlib.contextmanager
def ray_session(spec: RaySpec, cpus: float = 0.0, what: str = "") -> Iterator[Any]:
    """Ray for the duration of a command: connect to ``spec.address`` or start a local instance.

    ``cpus`` is what one unit of the work needs at once (``what`` names the setting): a local
    instance with fewer CPUs is refused (Ray would wait for them for ever); a cluster, which may
    grow, is not checked.

    Without an address a private local instance is started (``spec.num_cpus`` CPUs, no
    dashboard; ``address="local"``, so a cluster started on this machine with ``ray start`` is
    neither joined nor an obstacle) and shut down at the end; an instance already initialised
    in this process (a notebook's, a test's) is used and left alone.

    Yields:
        The ``ray`` module.
    """
    ray = require("ray")
    started = not ray.is_initialized()
    if started and spec.address:
        ray.init(address=spec.address)
    elif started:
        ray.init(address="local", num_cpus=spec.num_cpus, include_dashboard=False)
    try:
        if not spec.address:
            _check_enough(cpus, float(ray.cluster_resources().get("CPU", 0.0)), what)
        yield ray
    finally:
        if started:
            ray.shutdown()


def _check_enough(cpus: float, have: float, what: str) -> None:
    if cpus > have:
        raise ValueError(f"{what} needs {cpus:g} CPUs at once, but the local Ray instance "
                         f"has {have:g} (ray.num_cpus / --num-cpus): lower {what}")


def local_cpus(spec: RaySpec) -> float | None:
    """The CPUs :func:`ray_session` would have: None on a cluster (``spec.address``).

    The running instance's if Ray is initialised in this process, else ``spec.num_cpus`` or
    the cores Ray detects (which respects containers' limits).
    """
    if spec.address:
        return None
    ray = require("ray")
    if ray.is_initialized():
        return float(ray.cluster_resources().get("CPU", 0.0))
    if spec.num_cpus is not None:
        return float(spec.num_cpus)
    try:
        from ray._private.utils import get_num_cpus

        return float(get_num_cpus())
    except Exception:  # a private helper: fall back on the machine's count
        return float(os.cpu_count() or 1)


def check_cpus(spec: RaySpec, cpus: float, what: str) -> None:
    """Refuse work needing more CPUs at once than the local Ray instance will have.

    The check :func:`ray_session` makes once Ray runs, made before Ray starts and before a
    command writes its folder (a cluster, which may grow, is not checked).

    Raises:
        ValueError: naming the setting (``what``), the CPUs it needs and those there are.
    """
    have = local_cpus(spec)
    if have is not None:
        _check_enough(cpus, have, what)


def sweep_dir(config: RunConfig) -> Path:
    """The sweep's folder: ``<out>/<name>``, by default ``<out>/sweep-<algo>-<env>``."""
    env = config.env.id.split("/")[-1].removesuffix("-v0")
    return Path(config.out) / (config.name or f"sweep-{config.agent.algo}-{env}")


# ---------------------------------------------------------------------------- the search
def search_space(spec: SweepSpec) -> dict[str, Any]:
    """Tune's ``param_space`` of ``spec.space`` (flat: dotted keys -> Tune domains).

    Grids are ``tune.grid_search`` with ``search: grid`` and ``tune.choice`` otherwise.
    """
    tune = require("ray.tune")
    space = {}
    for key, axis in spec.space.items():
        kind, values = next(iter(axis.items()))
        if kind == "grid":
            space[key] = tune.grid_search(values) if spec.search == "grid" else tune.choice(values)
        elif kind == "choice":
            space[key] = tune.choice(values)
        elif kind == "randint":
            space[key] = tune.randint(*values)
        else:
            space[key] = getattr(tune, kind)(*values)  # uniform, loguniform
    return space


def search_algorithm(spec: SweepSpec) -> Any:
    """Tune's variant generator (``grid``, ``random``) or Optuna's sampler, seeded.

    The variant generator limits concurrency itself; Optuna is limited by Tune
    (``max_concurrent_trials``, see :func:`make_tuner`).
    """
    if spec.search == "optuna":
        require("optuna")
        return require("ray.tune.search.optuna").OptunaSearch(seed=spec.seed)
    basic = require("ray.tune.search.basic_variant")
    return basic.BasicVariantGenerator(max_concurrent=spec.max_concurrent,
                                       random_state=spec.seed)


# ------------------------------------------------------------------------------- a trial
def trial_config(base: Mapping[str, Any], params: Mapping[str, Any], trials_dir: Path,
                 trial: str) -> RunConfig:
    """The run config of one trial: ``base`` with the trial's values, in ``trials_dir/trial``.

    The ``sweep`` and ``ray`` sections go back to their defaults (a trial is a plain run).
    """
    config = RunConfig.model_validate({k: v for k, v in base.items() if k not in ("sweep", "ray")})
    values = {key: _plain(value) for key, value in params.items()}
    return apply_overrides(config, values, out=str(trials_dir), name=trial)


INTERIOR = 0.3819660112501051
"""Where in a ``uniform`` or ``loguniform`` range :func:`axis_values` tries a value (``2 - phi``:
a fraction, so the value is not a whole number, as Tune's draws are not)."""


def axis_values(axis: Mapping[str, list[Any]]) -> list[Any]:
    """The values of an axis a check tries: every grid or choice value, a range's ends.

    A ``uniform`` or ``loguniform`` range adds a value inside it that is not a whole number
    (:data:`INTERIOR` of the way, on a log scale for ``loguniform``): Tune draws such values,
    which an integer field (a seed, a count of steps or paths) refuses, while its ends may be
    whole numbers it takes.

    Examples:
        >>> axis_values({"grid": [1, 2]}), axis_values({"randint": [0, 5]})
        ([1, 2], [0, 4])
        >>> [round(v, 3) for v in axis_values({"uniform": [0, 10]})]
        [0, 3.82, 10]
        >>> [round(v, 3) for v in axis_values({"loguniform": [1, 100]})]
        [1, 5.807, 100]
    """
    kind, values = next(iter(axis.items()))
    if kind == "randint":
        return [values[0], values[1] - 1]  # the high end is excluded
    if kind in ("uniform", "loguniform"):
        low, high = float(values[0]), float(values[1])
        inside = (low + INTERIOR * (high - low) if kind == "uniform"
                  else low * (high / low) ** INTERIOR)
        if inside.is_integer():  # a whole number by chance: the next float up is not
            inside = math.nextafter(inside, high)
        return [values[0], inside, values[1]]
    return list(values)


def space_points(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every combination of the axes' :func:`axis_values` (dotted keys -> values).

    The trials of a grid are these combinations; a random or Optuna search draws its trials
    among them (choices) or between them (ranges: the corners of the box).
    """
    keys = list(spec.space)
    values = [axis_values(spec.space[key]) for key in keys]
    return [dict(zip(keys, point, strict=True)) for point in itertools.product(*values)]


def check_trial(config: RunConfig, hedgers_checked: set[str] | None = None) -> None:
    """Check a trial's run config as its run would, without writing or training anything.

    ``hedgers_checked`` holds the envs and arena settings (hedgers, split) already found able to
    score them (checked once per combination; see :func:`hedgearena.training.check_arena`).
    """
    from hedgearena.training import check_agent, check_arena

    env_config = config.env.config()
    check_agent(config, env_config)
    key = json.dumps([config.env.model_dump(mode="json"), config.arena.hedgers,
                      config.arena.split], sort_keys=True)
    if hedgers_checked is None or key not in hedgers_checked:
        check_arena(config, env_config)
        if hedgers_checked is not None:
            hedgers_checked.add(key)


def check_space(config: RunConfig) -> None:
    """Check every combination of the sweep's values as a trial would use it, before Ray starts.

    Each combination of :func:`space_points` is applied to the base config
    (:func:`trial_config`) and checked like a run (:func:`check_trial`: the env is built, the
    agent's settings and seeds checked): two values valid alone can be invalid together (a
    ``seed`` equal to a swept ``arena.seed``, a ``batch_size`` above a swept ``n_train``), and a
    bad seed, env id, env keyword or hyperparameter is named now, not as a failed trial after
    Ray has started.

    Raises:
        ValueError: listing every invalid combination, its values and what is wrong.
    """
    base = config.model_dump(mode="json")
    points = space_points(config.sweep)
    failures = []
    checked: set[str] = set()
    for point in points:
        try:
            check_trial(trial_config(base, point, Path("."), "check"), checked)
        except ValueError as error:
            failures.append((point, str(error)))
    if not failures:
        return
    if len(points) == 1 or len(config.sweep.space) == 1:  # one axis: name its value
        lines = [f"sweep.space.{key}: the value {value!r} fails: {error}"
                 for point, error in failures for key, value in point.items()]
    else:
        lines = [f"{_describe(point)}: {error}" for point, error in failures]
    head = (f"sweep.space: {len(failures)} of {len(points)} combinations of values are invalid "
            "(nothing was run):\n") if len(points) > 1 else ""
    message = head + "\n".join(_indent(line) if head else line for line in lines)
    ranges = sorted(key for key, axis in config.sweep.space.items()
                    if next(iter(axis)) in ("uniform", "loguniform"))
    if ranges and any(_whole_numbers_only(error) for _, error in failures):
        message += (f"\n(uniform and loguniform draw fractional numbers, here for {ranges}; an "
                    "integer field is swept with randint: [low, high) or a grid)")
    raise ValueError(message)


def _whole_numbers_only(error: str) -> bool:
    """Whether a check's error says a field takes whole numbers only."""
    return any(words in error for words in ("fractional part", "valid integer", "an integer",
                                            "whole number"))


def check_repeats(spec: SweepSpec) -> None:
    """Refuse identical trials: a grid value twice, or repeats of a grid with nothing random.

    A grid value given twice, or ``num_samples`` > 1 repeats of a grid search that draws nothing
    at random: each repeat of a grid point would be the same trial (the same values and
    ``seed``, so the same paths and weights): replicates are a swept ``seed``.

    Raises:
        ValueError: naming the axis and its repeated value, or ``sweep.num_samples``, and the
            way to replicate.
    """
    for key, axis in spec.space.items():
        kind, values = next(iter(axis.items()))
        twice = [value for k, value in enumerate(values) if _same_value(value, values[:k])]
        if kind == "grid" and twice:
            replicates = "" if key == "seed" else " (for replicates, sweep the seed)"
            raise ValueError(
                f"sweep.space.{key} lists {twice[0]!r} more than once ({values!r}): its trials "
                f"would be identical (the same config: the same paths and weights); give each "
                f"value once{replicates}")
    grids_only = all(next(iter(axis)) == "grid" for axis in spec.space.values())
    if spec.search == "grid" and spec.num_samples > 1 and grids_only:
        raise ValueError(
            f"sweep.num_samples = {spec.num_samples} repeats every grid point, but the space "
            "draws nothing at random: the repeats would be identical trials (the same values "
            "and seed). For replicates sweep the seed (e.g. seed: [0, 1, 2]) with "
            "num_samples: 1")


def _same_value(value: Any, others: Sequence[Any]) -> bool:
    """Whether ``value`` equals one of ``others``.

    ``1`` and ``1.0`` alike; ``True`` is not ``1`` (a config tells booleans from numbers).
    """
    return any(value == other and isinstance(value, bool) == isinstance(other, bool)
               for other in others)


def _describe(point: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in point.items())


def _indent(text: str) -> str:
    return "  " + text.replace("\n", "\n    ")


def _plain(value: Any) -> Any:
    """Tune's draws (numpy scalars) as Python numbers, for pydantic and YAML."""
    return value.item() if isinstance(value, np.generic) else value


def trial_metrics(scores_json: Path, agent: str) -> dict[str, float]:
    """The numbers a trial reports (:data:`TRIAL_METRICS`) from its ``report/scores.json``."""
    records = {r["hedger"]: r for r in json.loads(scores_json.read_text())["records"]}
    if agent not in records:
        raise ValueError(f"{scores_json} has no row {agent!r} (rows: {sorted(records)})")
    out = {key: _number(records[agent].get(key)) for key in AGENT_METRICS}
    reference = records.get(REFERENCE, {})
    for key in REFERENCE_METRICS:
        out[f"delta_{key}"] = _number(reference.get(key))
    out["objective_vs_delta"] = out["objective"] - out["delta_objective"]
    return out


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


def count_attempt(run_dir: Path) -> int:
    """Add one to the trial's ``attempts.json`` (created at 1); returns the new count."""
    path = run_dir / ATTEMPTS_FILE
    attempts = json.loads(path.read_text())["attempts"] + 1 if path.is_file() else 1
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"attempts": attempts}) + "\n")
    return attempts


def read_attempts(run_dir: Path) -> int:
    """How often a trial was started (0 if never)."""
    path = run_dir / ATTEMPTS_FILE
    return int(json.loads(path.read_text())["attempts"]) if path.is_file() else 0


def run_trial(params: dict[str, Any], base: dict[str, Any], trials_dir: str,
              threads: int, workdir: str | None = None) -> None:
    """Tune's trainable: one hedgearena run with the trial's ``params``, reported to Tune.

    Args:
        params: the trial's values of the swept keys (Tune's config).
        base: the sweep's run config as a dict.
        trials_dir: the folder of the trials' run folders.
        threads: torch threads of the trial (its CPUs).
        workdir: the sweep command's working directory, where the trial runs (Tune starts
            it in its own folder, where a relative path such as a replay's CSV would not be).
    """
    import torch

    if workdir is not None:
        os.chdir(workdir)

    from hedgearena.training import agent_name, train_and_score

    tune = require("ray.tune")
    trial = tune.get_context().get_trial_id()
    run_dir = Path(trials_dir) / trial  # trial_config's run_dir, known before it can fail
    attempts = count_attempt(run_dir)
    torch.set_num_threads(max(1, threads))
    with _output_to(run_dir / "trial.log"):
        try:  # a config the trial's values make invalid fails here, counted and logged
            config = trial_config(base, params, Path(trials_dir), trial)
            train_and_score(config, progress=False)
        except Exception:  # the log holds why (Tune keeps only the message for the table)
            traceback.print_exc()
            raise
    metrics = trial_metrics(run_dir / "report" / "scores.json", agent_name(config))
    tune.report({**metrics, "attempts": attempts})


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Send stdout and stderr to ``path`` (a trial's tables and logs stay in its folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle, contextlib.redirect_stdout(handle), \
            contextlib.redirect_stderr(handle):
        yield


def trial_dirname(trial: Any) -> str:
    """A trial's folder name in ``tune/`` (and ``trials/``): its id."""
    return str(trial.trial_id)


# ------------------------------------------------------------------------------ the sweep
@dataclass
class SweepResult:
    """A finished (or stopped) sweep.

    Attributes:
        folder: the sweep folder.
        table: one row per trial (see :func:`results_table`).
        files: name -> path of the files written.
        interrupted: Ctrl-C stopped it (finished trials are in the table).
    """

    folder: Path
    table: pd.DataFrame
    files: dict[str, Path] = field(default_factory=dict)
    interrupted: bool = False
    """Whether Ctrl-C (SIGINT) stopped the sweep (Tune saved its state: ``--resume``)."""


def run_sweep(config: RunConfig, resume: bool = False, progress: bool = True,
              callbacks: Sequence[Any] = (), check_values: bool = True) -> SweepResult:
    """Run (or resume) the sweep of ``config.sweep`` on Ray Tune; write its table and plot.

    Args:
        config: the run config: its ``sweep`` section and the base of every trial.
        resume: continue the sweep in the folder (finished trials are not run again).
        progress: show Tune's progress table.
        callbacks: ``ray.tune.Callback`` objects (e.g. Tune's MLflow or W&B loggers); kept in
            the sweep's state, so a resumed sweep has them too.
        check_values: check every value of the space before Ray starts (:func:`check_space`);
            False lets a bad value fail as a trial (retried, then reported in the table).

    Raises:
        ValueError: an empty space, repeats of a grid that would be identical trials
            (:func:`check_repeats`), a folder that holds another sweep (or none to resume).
        MissingRayError: the ``ray`` extra is not installed.
    """
    if not config.sweep.space:
        raise ValueError("sweep.space is empty: name at least one key to sweep, e.g. "
                         "sweep: {space: {seed: [0, 1, 2], env.kwargs.cost: [0.001, 0.01]}}")
    check_repeats(config.sweep)
    if check_values:
        check_space(config)
    folder = sweep_dir(config).resolve()
    _check_folder(folder, config, resume)
    check_cpus(config.ray, config.sweep.cpus_per_trial, "sweep.cpus_per_trial")
    config.dump(folder / "config.yaml")
    with ray_session(config.ray, config.sweep.cpus_per_trial, "sweep.cpus_per_trial"):
        with interruption() as interrupted:
            results = make_tuner(config, folder, resume, progress, callbacks).fit()
        configs = trial_configs(results.experiment_path)
    table = results_table(results, configs, config.sweep, folder / TRIALS_DIR)
    return SweepResult(folder, table, write_results(table, config, folder),
                       interrupted=interrupted())


@contextlib.contextmanager
def interruption() -> Iterator[Any]:
    """Tell whether Ctrl-C stopped the Tune run inside the block; yields ``() -> bool``.

    Tune catches the first SIGINT itself: it stops the trials, saves the experiment's state and
    returns from ``fit()`` as if the sweep had ended, then puts back the handler it found. Here
    that handler is one of ours (a second Ctrl-C, or any Ctrl-C when Tune's handler is off,
    raises ``KeyboardInterrupt`` as Python's does), so finding it back in place after the block
    means Tune was interrupted. The handler from before the block is restored on the way out
    (Tune leaves its own in place after an uninterrupted run). Outside the main thread, where
    handlers cannot be set, the block runs as it is and counts as not interrupted.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    before = signal.getsignal(signal.SIGINT)

    def ours(signum: int, frame: Any) -> None:
        if callable(before):  # Python's own raises KeyboardInterrupt
            before(signum, frame)
        elif before != signal.SIG_IGN:
            raise KeyboardInterrupt

    state = {"interrupted": False}
    signal.signal(signal.SIGINT, ours)
    try:
        yield lambda: state["interrupted"]
        state["interrupted"] = signal.getsignal(signal.SIGINT) is ours
    finally:
        signal.signal(signal.SIGINT, before)


def _check_folder(folder: Path, config: RunConfig, resume: bool) -> None:
    tune = require("ray.tune")
    exists = tune.Tuner.can_restore(str(folder / TUNE_DIR))
    if resume and not exists:
        raise ValueError(f"--resume: {folder} holds no sweep to resume")
    if not resume and exists:
        raise ValueError(f"{folder} already holds a sweep: pass --resume to continue it "
                         "(finished trials are not run again), or choose another --name")
    if resume:  # out and name only name the folder, which may be spelt another way
        free = {"ray", "out", "name"}
        saved = load_config(folder / "config.yaml").model_dump(mode="json", exclude=free)
        current = config.model_dump(mode="json", exclude=free)
        if saved != current:
            changed = sorted(k for k in saved if saved[k] != current[k])
            raise ValueError(f"--resume continues the sweep of {folder / 'config.yaml'} as it "
                             f"was: the config differs in {changed} (only ray.* may change)")


def make_tuner(config: RunConfig, folder: Path, resume: bool, progress: bool,
               callbacks: Sequence[Any] = ()) -> Any:
    """The Tune experiment of the sweep in ``folder`` (restored from ``folder/tune`` to resume)."""
    tune = require("ray.tune")
    spec = config.sweep
    trials_dir = str(folder / TRIALS_DIR)
    optuna_limit = spec.max_concurrent or None if spec.search == "optuna" else None
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, base=config.model_dump(mode="json"),
                             trials_dir=trials_dir, threads=math.ceil(spec.cpus_per_trial),
                             workdir=str(Path.cwd())),
        {"cpu": spec.cpus_per_trial},
    )
    if resume:
        return tune.Tuner.restore(str(folder / TUNE_DIR), trainable, resume_errored=True)
    return tune.Tuner(
        trainable,
        param_space=search_space(spec),
        tune_config=tune.TuneConfig(
            metric=spec.metric, mode=spec.mode, search_alg=search_algorithm(spec),
            num_samples=spec.num_samples,
            max_concurrent_trials=optuna_limit,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=TUNE_DIR, storage_path=str(folder), callbacks=list(callbacks),
            verbose=1 if progress else 0,
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        ),
    )


# ----------------------------------------------------------------------------- the table
def trial_configs(experiment_path: str) -> dict[str, dict[str, Any]]:
    """Trial id -> its Tune config (the swept keys' values), for every trial, started or not."""
    logger = logging.getLogger("ray.tune.analysis.experiment_analysis")
    level = logger.level
    logger.setLevel(logging.ERROR)  # not warn about the metrics of trials not started yet
    try:
        return require("ray.tune").ExperimentAnalysis(experiment_path).get_all_configs()
    finally:
        logger.setLevel(level)


def results_table(results: Any, configs: Mapping[str, Mapping[str, Any]], spec: SweepSpec,
                  trials_dir: Path) -> pd.DataFrame:
    """One row per trial of a Tune ``ResultGrid``, the best (by ``spec.metric``) first.

    Args:
        results: the ``ResultGrid``.
        configs: trial id -> its values of the swept keys (``ExperimentAnalysis``'s configs).
        spec: the sweep.
        trials_dir: the folder of the trials' run folders.

    Returns:
        Columns ``trial``, ``status`` (``ok``, ``failed`` or ``unfinished``), ``attempts``, the
        swept keys, :data:`TRIAL_METRICS`, :data:`RUN_COLUMNS`, ``error`` (its last line) and
        ``run_dir``.
    """
    rows = []
    for result in results:
        trial = Path(result.path).name
        metrics = result.metrics or {}
        status = "failed" if result.error else "ok" if "objective" in metrics else "unfinished"
        params = configs.get(trial) or {}
        rows.append({
            "trial": trial, "status": status, "attempts": read_attempts(trials_dir / trial),
            **{key: _plain(params.get(key)) for key in spec.space},
            **{key: _number(metrics.get(key)) for key in TRIAL_METRICS},
            "train_seconds": training_seconds(trials_dir / trial),
            "error": _last_line(result.error), "run_dir": str(trials_dir / trial),
        })
    table = pd.DataFrame(rows, columns=["trial", "status", "attempts", *spec.space,
                                        *TRIAL_METRICS, *RUN_COLUMNS, "error", "run_dir"])
    return table.sort_values([spec.metric, "trial"], ascending=[spec.mode == "min", True],
                             na_position="last", ignore_index=True)


def training_seconds(run_dir: Path) -> float:
    """The training seconds a run folder's ``training.json`` records (NaN: none yet)."""
    try:
        return _number(json.loads((run_dir / "training.json").read_text()).get("seconds"))
    except (OSError, ValueError, TypeError, AttributeError):
        return float("nan")


def summary_keys(spec: SweepSpec) -> list[str]:
    """The swept keys a summary groups by: all but ``seed`` (seeds are replicates)."""
    return [key for key in spec.space if key != "seed"]


def summary_table(table: pd.DataFrame, spec: SweepSpec) -> pd.DataFrame:
    """Each group of finished trials (same values of :func:`summary_keys`) in one row.

    Seeds are replicates of a setting: a sweep of algorithms or hyperparameters over several
    seeds is read by each setting's mean objective and its spread over the seeds, beside the
    arena's standard error of one trial's objective (a part of that spread).

    Args:
        table: the results (:func:`results_table`); only ``ok`` trials count.
        spec: the sweep.

    Returns:
        One row per group, the best first (by the mean of ``spec.metric``, ``spec.mode``): the
        group's keys, ``trials`` (finished), the mean over its trials of every metric
        (:data:`TRIAL_METRICS`, :data:`RUN_COLUMNS`), and ``objective_sd`` (the sample std of
        the trials' objectives, ddof 1; NaN for one trial), ``objective_min`` and
        ``objective_max``. With no key but ``seed`` swept: one row, of every finished trial.

    Examples:
        >>> from hedgearena.run_config import SweepSpec
        >>> spec = SweepSpec(space={"agent.algo": ["ppo", "sac"], "seed": [0, 1]})
        >>> results = pd.DataFrame({
        ...     "status": ["ok", "ok", "ok", "failed"], "agent.algo": ["ppo", "ppo", "sac", "sac"],
        ...     "seed": [0, 1, 0, 1], "objective": [500.0, 510.0, 490.0, float("nan")],
        ...     **{k: [1.0] * 4 for k in [*TRIAL_METRICS, *RUN_COLUMNS] if k != "objective"}})
        >>> summary = summary_table(results, spec)
        >>> summary[["agent.algo", "trials", "objective", "objective_sd"]].values.tolist()
        [['sac', 1, 490.0, nan], ['ppo', 2, 505.0, 7.0710678118654755]]
    """
    keys = summary_keys(spec)
    done = table[table["status"] == "ok"]
    done = done.assign(**{key: done[key].map(_groupable) for key in keys})
    groups = done.groupby(keys, sort=False, dropna=False) if keys else done.groupby(
        np.zeros(len(done), dtype=int))
    spread = groups["objective"].agg(["size", "std", "min", "max"]).rename(columns={
        "size": "trials", "std": "objective_sd", "min": "objective_min",
        "max": "objective_max"})
    means = groups[[*TRIAL_METRICS, *RUN_COLUMNS]].mean()
    summary = pd.concat([spread, means], axis=1).reset_index(drop=not keys)
    columns = [*keys, *SUMMARY_MARKDOWN, *(c for c in means.columns if c not in
                                           SUMMARY_MARKDOWN)]
    return summary[columns].sort_values(spec.metric, ascending=spec.mode == "min",
                                        na_position="last", ignore_index=True)


def _groupable(value: Any) -> Any:
    """A swept value as a group key: a list or mapping by its JSON text (lists are unhashable)."""
    return json.dumps(value, default=str) if isinstance(value, list | dict | tuple) else value


def _last_line(error: BaseException | None) -> str:
    if error is None:
        return ""
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(error).__name__


def write_results(table: pd.DataFrame, config: RunConfig, folder: Path) -> dict[str, Path]:
    """Write ``results.csv/.json/.md``, ``summary.csv/.md`` and ``sweep.png`` in ``folder``."""
    spec = config.sweep
    files = {"csv": folder / "results.csv", "json": folder / "results.json",
             "md": folder / "results.md"}
    table.to_csv(files["csv"], index=False)
    document: dict[str, Any] = {
        "metadata": {"metric": spec.metric, "mode": spec.mode, "search": spec.search,
                     "space": spec.space, "c": config.arena.c, "units": "currency per episode",
                     "metrics": {**TRIAL_METRICS, **RUN_COLUMNS}},
        "records": _json_records(table)}
    summary = summary_table(table, spec)
    document["summary"] = _json_records(summary)
    files["json"].write_text(json.dumps(document, indent=2, default=str) + "\n")
    files["md"].write_text(markdown_results(table, spec, config.arena.c))
    files["summary_csv"] = folder / "summary.csv"
    summary.to_csv(files["summary_csv"], index=False)
    files["summary_md"] = folder / "summary.md"
    files["summary_md"].write_text(markdown_summary(summary, spec, config.arena.c))
    files["plot"] = plot_sweep(table, spec, folder / "sweep.png", config.arena.c)
    return files


def _json_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The table's rows as JSON objects (NaN and infinities as null)."""
    return [{str(k): (None if isinstance(v, float) and not math.isfinite(v) else _plain(v))
             for k, v in row.items()} for row in table.to_dict(orient="records")]


MARKDOWN_METRICS = ("objective", "mean_cost", "std_cost", "delta_objective", "delta_mean_cost",
                    "delta_std_cost", "objective_vs_delta", "train_seconds")


def markdown_results(table: pd.DataFrame, spec: SweepSpec, c: float) -> str:
    """The results as a Markdown table (the best trial first) with a caption."""
    columns = ["trial", "status", "attempts", *spec.space, *MARKDOWN_METRICS, "error"]
    lines = _markdown_rows(table, columns)
    ok = int((table["status"] == "ok").sum())
    caption = (f"\n{len(table)} trials ({ok} ok), sorted by {spec.metric} ({spec.mode}). "
               f"Currency per episode; objective Y = mean(cost) + {c:g} std(cost), lower is "
               "better; delta_* is Black-Scholes delta on the same paths.\n")
    return "\n".join(lines) + "\n" + caption


def markdown_summary(summary: pd.DataFrame, spec: SweepSpec, c: float) -> str:
    """The summary (:func:`summary_table`) as a Markdown table with a caption."""
    extra = [] if spec.metric in SUMMARY_MARKDOWN else [spec.metric]
    lines = _markdown_rows(summary, [*summary_keys(spec), *SUMMARY_MARKDOWN, *extra])
    group = ", ".join(summary_keys(spec)) or "all trials"
    caption = (f"\nFinished trials by {group}, sorted by the mean {spec.metric} ({spec.mode}). "
               f"objective: the mean over the trials of Y = mean(cost) + {c:g} std(cost), "
               "currency per episode, lower is better; objective_sd, _min and _max: its "
               "spread over them (the seeds); objective_se: one trial's standard error on its "
               "arena paths (mean); the other columns are means; train_seconds: training "
               "time. summary.csv has the mean of every metric.\n")
    return "\n".join(lines) + "\n" + caption


def _markdown_rows(table: pd.DataFrame, columns: list[str]) -> list[str]:
    """The header, the rule and a line per row of ``table``'s ``columns`` (numbers formatted)."""
    from hedgearena.baselines.report import format_number

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(_cell(row[col], format_number) for col in columns)
                     + " |")
    return lines


def _cell(value: Any, fmt: Any) -> str:
    if isinstance(value, float):
        return fmt(value) if math.isfinite(value) else "-"
    return str(value).replace("|", "/")


# ------------------------------------------------------------------------------ the plot
def plot_sweep(table: pd.DataFrame, spec: SweepSpec, path: Path, c: float) -> Path:
    """The agent's and delta's objective against each swept key (one panel per key).

    Seeds are replicates: they get a panel only when nothing else is swept. Delta is drawn
    against the keys that can change it (``env.*``, ``arena.*``). Where a value repeats (grids,
    seeds), a line joins the mean objective at each value (over the trials with that value: a
    marginal mean when other keys are swept too).
    """
    from hedgearena.baselines.report import _save
    from hedgearena.envs.rendering import agg_figure

    keys = summary_keys(spec) or list(spec.space)
    cols = min(len(keys), 3)
    rows = math.ceil(len(keys) / cols)
    fig = agg_figure(figsize=(5.6 * cols, 4.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    done = table[table["status"] == "ok"]
    for ax, key in zip(axes.flat, keys, strict=False):
        kind = next(iter(spec.space[key]))
        _objective_panel(ax, done, key, log=_log_axis(kind, done[key]))
    for ax in list(axes.flat)[len(keys):]:
        ax.set_visible(False)
    fig.suptitle(f"objective Y = mean(cost) + {c:g} std(cost) per trial, lower is better\n"
                 f"({len(done)} of {len(table)} trials ok)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _log_axis(kind: str, values: pd.Series) -> bool:
    numbers = pd.to_numeric(values, errors="coerce").dropna()
    if kind == "loguniform":
        return True
    return bool(len(numbers) and (numbers > 0).all() and numbers.max() >= 20 * numbers.min())


def _objective_panel(ax: Any, done: pd.DataFrame, key: str, log: bool) -> None:
    """Points of each trial and the mean per value (grids), for the agent and delta.

    A key of categories (an algorithm's name) has its values ordered by the agent's mean
    objective, each mean drawn as a tick with the trials' sample std as its bar. Delta, on the
    keys that cannot change it, is one dashed line where it is the same on every trial.
    """
    x, labels = _positions(done[key], done["objective"])
    series = [("objective", "agent", "o", "C0")]
    if key.split(".")[0] in ("env", "arena"):  # delta does not depend on the agent or its seed
        series.append(("delta_objective", "delta", "^", "C1"))
    else:
        _reference_line(ax, done["delta_objective"], "delta (the same paths)", "C1")
    for column, label, marker, color in series:
        y = done[column].to_numpy(dtype=float)
        ax.scatter(x, y, marker=marker, alpha=0.75, color=color, label=label)
        if labels is None:
            _mean_line(ax, x, y, color)
        else:
            _mean_ticks(ax, x, y, color)
    if labels is not None:
        ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize=8)
    elif log:
        from matplotlib.ticker import NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    elif np.all(x == np.round(x)):  # seeds, counts: no ticks between whole numbers
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(key)
    ax.set_ylabel("objective (currency per episode)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def _positions(values: pd.Series, objective: pd.Series | None = None
               ) -> tuple[np.ndarray, list[str] | None]:
    """Numeric x of the values, or category positions and their labels.

    Categories are ordered by the mean of ``objective`` over their trials (best, lowest, first)
    when it is given, else by name.
    """
    numbers = pd.to_numeric(values, errors="coerce")
    if len(values) and not numbers.isna().any():
        return numbers.to_numpy(dtype=float), None
    names = values.astype(str)
    if objective is None:
        labels = sorted(set(names))
    else:
        means = pd.Series(objective.to_numpy(dtype=float)).groupby(names.to_numpy()).mean()
        labels = sorted(means.index, key=lambda name: (means[name], name))
    return np.array([labels.index(v) for v in names], dtype=float), labels


def _mean_line(ax: Any, x: np.ndarray, y: np.ndarray, color: Any) -> None:
    """Connect the mean objective at each distinct x when values repeat (grids, seeds)."""
    distinct = np.unique(x)
    if len(distinct) < 2 or len(distinct) == len(x):
        return
    means = [np.nanmean(y[x == value]) for value in distinct]
    ax.plot(distinct, means, color=color, lw=1.2, alpha=0.8)


def _mean_ticks(ax: Any, x: np.ndarray, y: np.ndarray, color: Any) -> None:
    """Each category's mean as a tick, its trials' sample std as a bar (two or more finite)."""
    distinct = np.unique(x)
    if len(distinct) == len(x):
        return
    groups = [y[(x == value) & np.isfinite(y)] for value in distinct]
    means = np.array([g.mean() if g.size else np.nan for g in groups])
    spread = np.array([g.std(ddof=1) if g.size > 1 else 0.0 for g in groups])
    ax.errorbar(distinct + 0.18, means, yerr=spread, fmt="_", markersize=14, capsize=3,
                color=color, lw=1.2, label="mean ± std over trials")


def _reference_line(ax: Any, values: pd.Series, label: str, color: Any) -> None:
    """A dashed horizontal line at ``values`` where they are one value (NaN left out)."""
    finite = values.dropna().unique()
    if len(finite) == 1:
        ax.axhline(float(finite[0]), ls="--", lw=1.0, color=color, label=label)
