"""Run configs: one frozen, validated object per run, from YAML and command-line overrides.

A run config says which env (an id and keyword overrides), which agent (its algorithm and
hyperparameters), how it is scored (the arena) and where outputs go. Files are YAML::

    env:
      id: hedgearena/ShortCall-v0
      kwargs: {cost: 0.01}
    agent:
      algo: deep_hedging
      hyperparams: {steps: 300}
    arena: {paths: 100000, hedgers: [no_hedge, delta, "ww:best"]}
    seed: 0

and any field can be overridden with ``--set dotted.key=value`` (the value is read as YAML:
``--set env.kwargs.cost=0.002 --set arena.hedgers=[delta,no_hedge]``). Unknown keys are errors
that name the key and list the allowed ones. Every run writes its resolved config
(``config.yaml``) beside its outputs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import to_jsonable_python

from hedgearena.baselines.benchmark import (
    DEFAULT_HEDGERS,
    BenchmarkSettings,
    named_by_spec,
    spec_name,
)
from hedgearena.baselines.stress import DEFAULT_STRESS_COST, DEFAULT_STRESS_HEDGERS, StressSettings
from hedgearena.envs.config import EnvConfig, make_config
from hedgearena.yaml_io import dump_yaml, load_yaml

_STRICT = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False,
                     ser_json_inf_nan="constants")
"""Unknown keys are errors, and so are infinite and NaN numbers in numeric fields (``arena.c:
.inf``); those of free mappings (``agent.hyperparams``) are written as ``.inf``, not null."""
SEED_LIMIT = 2**32
"""Seeds of training and of a sweep's draws are below this: numpy's legacy seeding (which
stable-baselines3, RLlib and Tune use) takes 0 .. 2**32 - 1."""
_NUMBERS = (int, float, int | None, float | None)


class _Section(BaseModel):
    """A config section: unknown keys are errors, and so are booleans or text given for numbers.

    Pydantic's lax mode would read ``seed: true`` as 1, ``paths: "100"`` (quoted: text) as 100
    and ``frontier: yes`` (a string in YAML 1.2) as true; a boolean or a quoted number where a
    number belongs, or anything but ``true``/``false`` where a boolean does, is a mistake,
    reported with the field's name (env kwargs refuse text for numbers alike). A whole float
    (``paths: 1e5``, which YAML reads as 100000.0) is still the integer.
    """

    model_config = _STRICT

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and field.annotation in _NUMBERS:
            if isinstance(value, bool):
                raise ValueError(f"must be a number, not a boolean ({value!r})")
            if isinstance(value, str):
                kind = "an integer" if field.annotation in (int, int | None) else "a number"
                raise ValueError(f"must be {kind}, not text: got {value!r} (write the number "
                                 "without quotes)")
        if field is not None and field.annotation is bool and not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {value!r}")
        return value


class EnvSpec(_Section):
    """The env: a registered id and keyword overrides of its config (``EnvConfig`` fields)."""

    id: str = "hedgearena/ShortCall-v0"
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _known_id(cls, value: str) -> str:
        from hedgearena.envs.registered import ENV_IDS

        if value not in ENV_IDS:
            raise ValueError(f"env.id must be one of {sorted(ENV_IDS)}, got {value!r}")
        return value

    def config(self) -> EnvConfig:
        """The env's resolved config (its preset with the overrides), validated."""
        from hedgearena.envs.registered import ENV_IDS

        return make_config(ENV_IDS[self.id][0].preset, **self.kwargs)


class _LearnerSpec(_Section):
    """What every trained agent's section holds (see :class:`AgentSpec`)."""

    algo: str
    hyperparams: dict[str, Any] = Field(default_factory=dict)
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    eval_freq: int = Field(default=0, ge=0)
    eval_paths: int = Field(default=4096, ge=2)  # validation scores a std: 2 paths or more
    valid_history: float = Field(default=0.2, ge=0, lt=1)
    checkpoint_freq: int = Field(default=0, ge=0)
    section: ClassVar[str] = "agent"
    """The section's name in error messages."""

    @field_validator("env_kwargs")
    @classmethod
    def _agent_view_only(cls, value: dict[str, Any]) -> dict[str, Any]:
        from hedgearena.baselines.arena import ENV_OVERRIDES

        bad = sorted(set(value) - set(ENV_OVERRIDES))
        if bad:
            raise ValueError(f"{cls.section}.env_kwargs may only set {ENV_OVERRIDES}, got {bad}")
        return value


class AgentSpec(_LearnerSpec):
    """The agent: its algorithm, hyperparameters and view of the env.

    Attributes:
        algo: ``deep_hedging`` or a stable-baselines3 agent (``ppo``, ``sac``, ``td3``,
            ``ddpg``, ``tqc``, ``recurrent_ppo``).
        hyperparams: the algorithm's keys (for SB3: rl-zoo keys on top of
            ``configs/<algo>.yml``; for deep hedging: trainer and policy fields).
        env_kwargs: how an SB3 agent sees the env (``action_mode``, ``reward_mode``,
            ``risk_aversion``, limits...): fields that change its actions and rewards, never
            the market, book or costs (the arena scores it on the run's env).
        eval_freq: env steps between validations (0: ten per run).
        eval_paths: validation paths (fixed, seeded by ``arena.seed + 1``; at least 2).
        valid_history: on a dated market (the replay), the share of the history's last days
            (of the days the agent may learn on: before ``arena.split``) the validation paths
            replay, in [0, 1); the agent trains on the days before them
            (:func:`hedgearena.training.fitting_parts`). 0: validation replays training days
            (their windows overlap: the best model is picked in sample). Simulated markets
            ignore it.
        checkpoint_freq: env steps between checkpoints (0: five per run).
    """

    algo: str = "deep_hedging"

    @field_validator("algo")
    @classmethod
    def _known_algo(cls, value: str) -> str:
        from hedgearena.agents.sb3 import SB3_ALGOS

        allowed = ("deep_hedging", *SB3_ALGOS)
        if value not in allowed:
            raise ValueError(f"agent.algo must be one of {allowed}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _deep_hedging_fields(self) -> AgentSpec:
        """Refuse values of the SB3 fields the deep hedger does not read (they were ignored)."""
        if self.algo != "deep_hedging":
            return self
        instead = {"env_kwargs": "its policy's hyperparams (outputs, features)",
                   "eval_freq": "agent.hyperparams.eval_every",
                   "eval_paths": "agent.hyperparams.n_valid",
                   "valid_history": "agent.hyperparams.valid_history",
                   "checkpoint_freq": "agent.hyperparams.checkpoint_every"}
        fields = type(self).model_fields
        given = [name for name in instead
                 if getattr(self, name) != fields[name].get_default(call_default_factory=True)]
        if given:
            raise ValueError(
                f"agent.{given[0]} is for SB3 agents; the deep hedger does not read it (use "
                f"{instead[given[0]]})")
        return self



def hedger_name(spec: str) -> str:
    """The name of the hedger of a spec, checked ("" for ``family:best``, named by tuning).

    :func:`hedgearena.baselines.benchmark.spec_name`, which the reports read too.

    Raises:
        ValueError: naming the spec and what is allowed.
    """
    return spec_name(spec)


class ArenaSpec(_Section):
    """How hedgers are scored (see :class:`hedgearena.baselines.benchmark.BenchmarkSettings`)."""

    paths: int = Field(default=100_000, ge=1)
    seed: int = Field(default=2024, ge=0)
    tune_paths: int = Field(default=20_000, ge=1)
    c: float = Field(default=1.5, ge=0)
    risk_aversion: float = Field(default=0.01, gt=0)
    n_boot: int = Field(default=200, ge=1)
    reference: str = "delta"
    hedgers: list[str] = Field(default_factory=lambda: list(DEFAULT_HEDGERS))
    frontier: bool = True
    split: str | None = None

    @field_validator("hedgers")
    @classmethod
    def _known_hedgers(cls, value: list[str]) -> list[str]:
        for spec in value:
            hedger_name(spec)  # raises naming the spec and what is allowed
        return value

    @field_validator("split", mode="before")
    @classmethod
    def _split_date(cls, value: Any) -> str | None:
        from hedgearena.baselines.benchmark import split_date

        return None if value is None else split_date(value)  # YAML reads 2010-01-01 as a date

    @model_validator(mode="after")
    def _known_reference(self) -> ArenaSpec:
        names = [hedger_name(spec) for spec in self.hedgers]
        if (self.reference in (*self.hedgers, *names) or self.reference.endswith("agent")
                or named_by_spec(self.reference) in names):  # ww:0.10 is ww:0.1's hedger
            return self
        raise ValueError(f"arena.reference {self.reference!r} must be one of the hedgers, by "
                         f"spec {self.hedgers} or name {[n for n in names if n]}, or the agent: "
                         f"add it to arena.hedgers or name another (--set arena.reference=...)")

    def settings(self, progress: bool = True) -> BenchmarkSettings:
        """The benchmark settings of this spec."""
        return BenchmarkSettings(
            n_paths=self.paths, seed=self.seed,
            tune_paths=self.tune_paths, c=self.c, risk_aversion=self.risk_aversion,
            n_boot=self.n_boot, reference=self.reference, frontier=self.frontier,
            progress=progress, split=self.split,
        )


def _scenario_objects(items: list[str | dict[str, dict[str, Any]]]) -> list[Any]:
    """The scenarios of ``stress.scenarios`` items: names, or ``{name: {parameters}}``."""
    from hedgearena.envs.scenarios import make_scenario

    out = []
    for item in items:
        if isinstance(item, dict) and len(item) != 1:
            raise ValueError(f"a scenario with parameters is {{name: {{...}}}}, got {item!r}")
        name, params = (item, {}) if isinstance(item, str) else next(iter(item.items()))
        out.append(make_scenario(name, **(params or {})))
    return out


def _all_scenarios() -> list[str | dict[str, dict[str, Any]]]:
    from hedgearena.envs.scenarios import SCENARIOS

    return list(SCENARIOS)


class StressSpec(_Section):
    """The stress report (``train.py stress``; see :mod:`hedgearena.baselines.stress`).

    Attributes:
        paths: paths per hedger and scenario.
        seed: seed of the paths (the same in every scenario) and of the bootstrap.
        tune_paths: tuning paths of ``:best`` hedgers (on the unstressed env).
        c: weight of the cost's std in the objective.
        risk_aversion: of the entropic risk, per currency.
        n_boot: bootstrap resamples.
        reference: the hedger the others are compared with, path by path.
        hedgers: baseline hedger specs (saved agents come from ``--agent RUN_DIR``).
        scenarios: names of ``hedgearena.envs.scenarios.SCENARIOS``, or one-key mappings of a
            name to its parameters (``{gap: {size: -0.3}}``); a ``label`` among them names the
            scenario in the report, so one scenario can run at several sizes
            (``{gap: {size: -0.1, label: gap -10%}}``). Each name once.
        cost: the env's cost during the stress (spreads and impact that scale with the
            scenarios' liquidity, by default); null keeps the env's own.
        risk_limits: the env's risk limits (``hedgearena.envs.limits.RiskLimits`` fields), or
            null for the env's own.
        worst_paths: draw every hedger's worst path in every scenario.
        skip_inapplicable: leave out (and list in the report) the scenarios that cannot
            stress the env, e.g. a historical window shorter than its episode or a vol spike
            on Heston, instead of failing on them. A scenario given with parameters
            (``{gap: {step: 100}}``) is never left out: parameters that do not fit the env
            are refused.
    """

    paths: int = Field(default=20_000, ge=1)
    seed: int = Field(default=2024, ge=0)
    tune_paths: int = Field(default=20_000, ge=1)
    c: float = Field(default=1.5, ge=0)
    risk_aversion: float = Field(default=0.01, gt=0)
    n_boot: int = Field(default=100, ge=1)
    reference: str = "delta"
    hedgers: list[str] = Field(default_factory=lambda: list(DEFAULT_STRESS_HEDGERS))
    scenarios: list[str | dict[str, dict[str, Any]]] = Field(default_factory=_all_scenarios)
    cost: Any = Field(default_factory=lambda: dict(DEFAULT_STRESS_COST))
    risk_limits: dict[str, Any] | None = None
    worst_paths: bool = True
    skip_inapplicable: bool = True

    @field_validator("scenarios")
    @classmethod
    def _known_scenarios(
        cls, value: list[str | dict[str, dict[str, Any]]]
    ) -> list[str | dict[str, dict[str, Any]]]:
        from hedgearena.baselines.stress import resolve_scenarios

        if not value:
            raise ValueError("stress.scenarios must name at least one scenario")
        # raises naming the scenario or parameter; one name (and file name) each, refused
        # before a run folder is written
        resolve_scenarios(_scenario_objects(value))
        return value

    def scenario_objects(self) -> list[Any]:
        """The :class:`hedgearena.envs.scenarios.Scenario` objects of :attr:`scenarios`."""
        return _scenario_objects(self.scenarios)

    def env_config(self, env: EnvSpec) -> EnvConfig:
        """The unstressed env config of the stress: ``env``'s, with :attr:`cost` if set."""
        config = env.config()
        return config if self.cost is None else config.replace(cost=self.cost)

    def settings(self, progress: bool = True) -> StressSettings:
        """The stress settings of this spec."""
        return StressSettings(
            n_paths=self.paths, seed=self.seed,
            tune_paths=self.tune_paths, c=self.c, risk_aversion=self.risk_aversion,
            n_boot=self.n_boot, reference=self.reference, risk_limits=self.risk_limits,
            worst_paths=self.worst_paths, progress=progress,
        )


# ------------------------------------------------------------------ scaling out (Ray extra)
SEARCH_ALGOS = ("grid", "random", "optuna")
"""``sweep.search``: Tune's grid/random variant generator, or Optuna's TPE sampler."""
DISTRIBUTIONS = ("grid", "choice", "uniform", "loguniform", "randint")
"""The kinds of a ``sweep.space`` axis (``{kind: values}``; a bare list is a grid)."""
NOT_SWEPT = ("sweep", "ray", "out", "name", "rllib", "stress")
"""Top-level sections no trial may change: the sweep's own settings and folders, and what a
trial (which trains ``agent`` and scores it in ``arena``) does not use."""


_EXPONENT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def _number(value: Any) -> Any:
    """``"1e-4"`` -> ``0.0001``: YAML 1.1 reads exponents without a dot as strings.

    Examples:
        >>> _number("1e-4"), _number("band"), _number(3)
        (0.0001, 'band', 3)
    """
    return float(value) if isinstance(value, str) and _EXPONENT.match(value) else value


def _check_axis(key: str, axis: Any) -> dict[str, list[Any]]:
    """One axis of ``sweep.space`` as ``{kind: values}``, checked (errors name the key)."""
    if isinstance(axis, list):
        axis = {"grid": axis}
    if not (isinstance(axis, dict) and len(axis) == 1 and next(iter(axis)) in DISTRIBUTIONS):
        raise ValueError(f"sweep.space.{key} must be a list (a grid) or one of "
                         f"{{kind: values}} with kind in {DISTRIBUTIONS}, got {axis!r}")
    kind, values = next(iter(axis.items()))
    if not isinstance(values, list) or not values:
        raise ValueError(f"sweep.space.{key}.{kind} must be a non-empty list, got {values!r}")
    values = [_number(v) for v in values]
    if kind in ("uniform", "loguniform", "randint"):
        numbers = len(values) == 2 and all(isinstance(v, int | float) and math.isfinite(v)
                                           for v in values)
        if not (numbers and values[0] < values[1]) or (kind == "loguniform" and values[0] <= 0):
            low = "0 < low" if kind == "loguniform" else "low"
            raise ValueError(f"sweep.space.{key}.{kind} must be [low, high], finite numbers with "
                             f"{low} < high, got {values!r}")
        if kind == "randint" and not all(isinstance(v, int) for v in values):
            raise ValueError(f"sweep.space.{key}.randint takes integers [low, high), "
                             f"got {values!r}")
    return {kind: values}


def _check_dotted_key(key: str) -> None:
    """Raise ValueError unless ``key`` names a run-config field a trial may set."""
    model: type[BaseModel] = RunConfig
    parts = key.split(".")
    if parts[0] in NOT_SWEPT:
        raise ValueError(f"sweep.space: {key!r} cannot be swept (the sections {NOT_SWEPT} "
                         "belong to the sweep)")
    for depth, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields:
            where = ".".join(parts[:depth]) or "the run config"
            raise ValueError(f"sweep.space: {key!r}: {part!r} is not a field of {where}; "
                             f"allowed: {sorted(set(fields) - set(NOT_SWEPT))}")
        annotation = fields[part].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
            continue
        free = get_origin(annotation) is dict  # env.kwargs, agent.hyperparams...: any key
        if depth < len(parts) - 1 and not free:
            raise ValueError(f"sweep.space: {key!r}: {part!r} is a value, not a section")
        return
    raise ValueError(f"sweep.space: {key!r} is a section: name one of its fields")


class SweepSpec(_Section):
    """A Ray Tune sweep of training runs (``train.py sweep``; see :mod:`hedgearena.sweep`).

    Attributes:
        space: dotted run-config keys (as for ``--set``) -> their values: ``{grid: [...]}``
            (every value), ``{choice: [...]}``, ``{uniform: [low, high]}``,
            ``{loguniform: [low, high]}``, ``{randint: [low, high]}`` (high excluded); a
            bare list is a grid. E.g. ``seed: [0, 1, 2]``, ``env.kwargs.cost: [0.001, 0.01]``,
            ``agent.hyperparams.lr: {loguniform: [1e-4, 1e-2]}``.
        search: ``grid`` (every combination of the grids, each ``num_samples`` times with the
            other axes drawn at random), ``random`` (``num_samples`` trials, grids drawn like
            choices) or ``optuna`` (``num_samples`` trials proposed by Optuna's TPE sampler
            from the results so far; grids are choices).
        num_samples: see ``search``.
        metric: what the search optimises and the table sorts by (a key of
            :data:`hedgearena.sweep.TRIAL_METRICS`).
        mode: ``min`` or ``max`` of the metric.
        max_concurrent: trials running at once (0: as many as the CPUs allow).
        cpus_per_trial: CPUs reserved by each trial (its torch threads).
        max_failures: retries of a failed trial before it is reported as failed.
        seed: seed of the random draws of the search.
    """

    space: dict[str, dict[str, list[Any]]] = Field(default_factory=dict)
    search: str = "grid"
    num_samples: int = Field(default=1, ge=1)
    metric: str = "objective"
    mode: str = "min"
    max_concurrent: int = Field(default=0, ge=0)
    cpus_per_trial: float = Field(default=1.0, gt=0)
    max_failures: int = Field(default=1, ge=0)
    seed: int = Field(default=0, ge=0, lt=SEED_LIMIT)

    @field_validator("space", mode="before")
    @classmethod
    def _known_axes(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError(f"sweep.space maps dotted keys to values, got {value!r}")
        for key in value:
            _check_dotted_key(str(key))
        return {str(key): _check_axis(str(key), axis) for key, axis in value.items()}

    @field_validator("search")
    @classmethod
    def _known_search(cls, value: str) -> str:
        if value not in SEARCH_ALGOS:
            raise ValueError(f"sweep.search must be one of {SEARCH_ALGOS}, got {value!r}")
        return value

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        from hedgearena.sweep import TRIAL_METRICS

        if value not in TRIAL_METRICS:
            raise ValueError(f"sweep.metric must be one of {sorted(TRIAL_METRICS)}, "
                             f"got {value!r}")
        return value

    @field_validator("mode")
    @classmethod
    def _known_mode(cls, value: str) -> str:
        if value not in ("min", "max"):
            raise ValueError(f"sweep.mode must be 'min' or 'max', got {value!r}")
        return value



AUTO = "auto"
"""A view's ``risk_aversion`` / ``pnl_reference`` calibrated when training starts
(``hedgearena.agents.training.calibrated_view``)."""
AUTO_KEYS = ("risk_aversion", "pnl_reference")
"""The view's keys that may be ``auto``."""


def fixed_view(view: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of an agent's view of the env that are not ``auto`` (yet to be calibrated).

    Examples:
        >>> fixed_view({"action_mode": "band", "risk_aversion": "auto"})
        {'action_mode': 'band'}
    """
    return {key: value for key, value in view.items() if value != AUTO}


class RllibSpec(_LearnerSpec):
    """An RLlib agent (``train.py rllib``; see :mod:`hedgearena.agents.rllib`).

    Attributes:
        algo: the RLlib algorithm (``PPO``).
        hyperparams: keys of the algorithm's ``training()`` (``lr``, ``gamma``, ``lambda_``,
            ``clip_param``, ``train_batch_size_per_learner``, ``minibatch_size``,
            ``num_epochs``...), of ``env_runners()`` (``rollout_fragment_length``...) and of
            the default model (``fcnet_hiddens``, ``fcnet_activation``, ``vf_share_layers``...).
        env_kwargs: the agent's view of the env (``action_mode``, ``reward_mode``...), as
            ``agent.env_kwargs``; ``auto`` ``risk_aversion`` / ``pnl_reference`` are calibrated
            on ``eval_paths`` paths when training starts, as an SB3 agent's.
        n_timesteps: training budget, env steps summed over paths and runners.
        num_env_runners: sampling actors (one CPU each; 0 samples in the driver).
        num_envs_per_env_runner: paths of each runner's native vector env.
        eval_freq: env steps between validations (0: ten per run).
        eval_paths: validation paths (fixed, seeded by ``arena.seed + 1``; at least 2).
        valid_history: on the replay, the share of the learning history's last days the
            validation paths replay (as ``agent.valid_history``).
        checkpoint_freq: env steps between checkpoints (0: five per run).
        normalize_obs: standardise the observations the module reads with each entry's mean
            and standard deviation on the calibration band's paths (``eval_paths`` paths, seed
            ``arena.seed + 2``), fitted once when training starts and frozen
            (:class:`hedgearena.agents.rllib.ObservationNormalizer`): stable-baselines3's
            ``normalize: {norm_obs: True}``, whose statistics run instead.
    """

    algo: str = "PPO"
    n_timesteps: int = Field(default=200_000, ge=1)
    normalize_obs: bool = True
    num_env_runners: int = Field(default=2, ge=0)
    num_envs_per_env_runner: int = Field(default=64, ge=1)
    section: ClassVar[str] = "rllib"

    @field_validator("algo")
    @classmethod
    def _known_algo(cls, value: str) -> str:
        if value not in ("PPO",):
            raise ValueError(f"rllib.algo must be one of ('PPO',), got {value!r}")
        return value

    @field_validator("env_kwargs")
    @classmethod
    def _auto_calibrated_only(cls, value: dict[str, Any]) -> dict[str, Any]:
        auto = sorted(key for key, item in value.items() if item == AUTO
                      and key not in AUTO_KEYS)
        if auto:
            raise ValueError(f"rllib.env_kwargs {auto}: 'auto' calibrates risk_aversion and "
                             "pnl_reference only; give values")
        return value



class RaySpec(_Section):
    """Where Ray runs (``sweep`` and ``rllib``).

    Attributes:
        address: an existing Ray cluster (``auto``, ``ray://head:10001``, ``head:6379``); null
            starts a local Ray instance for the command and stops it at the end.
        num_cpus: CPUs of that local instance (null: all cores); ignored with ``address``.
    """

    address: str | None = None
    num_cpus: int | None = Field(default=None, ge=1)


class RunConfig(_Section):
    """Everything that defines a run.

    Attributes:
        env: the env id and its keyword overrides.
        agent: the agent's algorithm and hyperparameters.
        arena: the scoring of the agent against the baselines.
        stress: the stress report (``train.py stress``).
        sweep: a Ray Tune sweep of runs (``train.py sweep``, the ``ray`` extra).
        rllib: an RLlib agent (``train.py rllib``, the ``ray`` extra).
        ray: where Ray runs (a local instance, or a cluster's address).
        seed: seed of training (the arena's paths have their own, ``arena.seed``).
        out: parent folder of run folders.
        name: the run's folder name (default: ``<algo>-<env>-seed<seed>``).
    """

    env: EnvSpec = Field(default_factory=EnvSpec)
    agent: AgentSpec = Field(default_factory=AgentSpec)
    arena: ArenaSpec = Field(default_factory=ArenaSpec)
    stress: StressSpec = Field(default_factory=StressSpec)
    sweep: SweepSpec = Field(default_factory=SweepSpec)
    rllib: RllibSpec = Field(default_factory=RllibSpec)
    ray: RaySpec = Field(default_factory=RaySpec)
    seed: int = Field(default=0, ge=0, lt=SEED_LIMIT)
    out: str = "runs"
    name: str | None = None

    @field_validator("name", mode="before")
    @classmethod
    def _one_folder(cls, value: Any) -> Any:
        """A run's name is one folder inside ``out`` (no path separators, not ``.`` or ``..``).

        An integer is its folder name too (``--set name=2024``, as ``--name 2024``); any other
        value that is not text (``name: 1e3``, which YAML reads as the float 1000.0) is refused:
        quoted, it is the folder's name as written. The name is at most :data:`NAME_BYTES`
        bytes (UTF-8) without control characters (:func:`folder_name_problem`).
        """
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"name must be text, a folder name (quote it to keep it as "
                             f"written, e.g. name: '1e3'), got {value!r}")
        if isinstance(value, str) and (not value or value in (".", "..") or "/" in value
                                       or "\\" in value):
            raise ValueError(f"name must be a folder name inside out (no '/', '\\' or '..'), "
                             f"got {value!r}")
        problem = None if value is None else folder_name_problem(value)
        if problem:
            raise ValueError(f"name must be a folder name inside out: {problem}")
        return value

    @field_validator("out")
    @classmethod
    def _folder_path(cls, value: str) -> str:
        """``out`` is a folder path: no NUL byte, each folder name at most :data:`NAME_BYTES`."""
        if "\0" in value:
            raise ValueError(f"out must be a folder path without NUL bytes, got {value!r}")
        for part in Path(value).parts:
            problem = folder_name_problem(part, control=False)
            if problem:
                raise ValueError(f"out must be a folder path: its folder {part[:40]!r}... "
                                 f"{problem}")
        return value

    @property
    def run_name(self) -> str:
        """The run's folder name; its seed is the training's (a deep hedger's own, if given)."""
        if self.name:
            return self.name
        env = self.env.id.split("/")[-1].removesuffix("-v0")
        seed = (self.agent.hyperparams.get("seed", self.seed)
                if self.agent.algo == "deep_hedging" else self.seed)
        return f"{self.agent.algo}-{env}-seed{seed}"

    @property
    def run_dir(self) -> Path:
        """The run's output folder."""
        return Path(self.out) / self.run_name

    def dump(self, path: str | Path) -> Path:
        """Write the config as YAML (what :func:`load_config` reads back)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(dump_yaml(self.model_dump(mode="json")))
        return target


NAME_BYTES = 255
"""The longest file or folder name the usual file systems take (ext4, APFS, NTFS), in bytes."""


def folder_name_problem(name: str, control: bool = True) -> str | None:
    r"""What keeps ``name`` from being a folder name, or None: too long, or control characters.

    Longer than :data:`NAME_BYTES` bytes as UTF-8; a NUL byte or (``control``) another control
    character (a newline, a tab...).

    Examples:
        >>> folder_name_problem("run-1"), folder_name_problem("a" * 256)
        (None, 'it is 256 bytes long (UTF-8), longer than file systems allow (255 bytes)')
        >>> folder_name_problem("a" + chr(0) + "b").split(" (")[0]
        "it holds the control character '\\x00'"
    """
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > NAME_BYTES:
        return (f"it is {size} bytes long (UTF-8), longer than file systems allow "
                f"({NAME_BYTES} bytes)")
    bad = [c for c in name if c == "\0" or (control and (ord(c) < 32 or ord(c) == 127))]
    if bad:
        return f"it holds the control character {bad[0]!r} (got {name!r})"
    return None


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ValueError(f"--set {dotted}: {key!r} is not a section")
        node = child
    node[keys[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``"a.b=value"`` -> ``("a.b", value)`` with the value read as YAML.

    Examples:
        >>> parse_override("env.kwargs.cost=0.002")
        ('env.kwargs.cost', 0.002)
        >>> parse_override("arena.hedgers=[delta, 'ww:best']")
        ('arena.hedgers', ['delta', 'ww:best'])
    """
    key, sep, raw = text.partition("=")
    if not sep or not all(part.strip() for part in key.split(".")):
        raise ValueError(f"an override is key=value with a dotted key (e.g. "
                         f"env.kwargs.cost=0.002), got {text!r}")
    try:
        value = load_yaml(raw)
    except yaml.YAMLError as error:
        raise ValueError(f"override {text!r}: the value is not valid YAML ({error})") from None
    return key.strip(), value


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None, **fields: Any
) -> RunConfig:
    """A validated run config from a YAML file, ``key=value`` overrides and keyword fields.

    Args:
        path: a YAML file (None: the defaults).
        overrides: ``dotted.key=value`` strings, applied in order after the file.
        **fields: dotted keys with ``__`` for dots (``env__id="..."``), applied last.

    Raises:
        ValueError: naming the file, the key and what is allowed.
    """
    tree = {} if path is None else _read_config_file(Path(path))
    given: dict[str, Any] = {}  # dotted key -> value, set on top of the file
    for text in overrides or []:
        key, value = parse_override(text)
        _set(tree, key, value)
        given[key] = value
    for key, value in fields.items():
        if value is not None:
            _set(tree, key.replace("__", "."), value)
            given[key.replace("__", ".")] = value
    try:  # YAML's dates as the ISO text they are written back as: a config equals its file's
        # (JSON-plain: mapping keys become text, which every field of a run config's keys are)
        return RunConfig.model_validate(_plain(tree, path))
    except ValidationError as error:
        raise ValueError(_explain(error, path, given)) from None


def _plain(tree: dict[str, Any], path: str | Path | None) -> Any:
    """``tree`` JSON-plain; a value that holds itself (a YAML anchor used inside itself) named."""
    try:
        return to_jsonable_python(tree)
    except ValueError as error:  # pydantic's "Circular reference detected (id repeated)"
        where = f"config file {str(path)!r}" if path else "the run config"
        key = _cycle_key(tree) or "?"
        raise ValueError(f"{where}: {key} holds itself (a YAML anchor used inside its own "
                         f"value, e.g. a: &x [*x]); write the value out ({error})") from None


def _cycle_key(node: Any, key: str = "", above: tuple[int, ...] = ()) -> str | None:
    """The dotted key of the first value in ``node`` that contains itself, or None.

    Examples:
        >>> tree = {"a": {"b": []}}
        >>> tree["a"]["b"].append(tree["a"]["b"])
        >>> _cycle_key(tree)
        'a.b'
    """
    if id(node) in above:
        return key.rsplit(".", 1)[0] if "." in key else key
    items = (node.items() if isinstance(node, dict)
             else enumerate(node) if isinstance(node, list) else ())
    for name, child in items:
        found = _cycle_key(child, f"{key}.{name}" if key else str(name), (*above, id(node)))
        if found:
            return found
    return None


def _read_config_file(source: Path) -> dict[str, Any]:
    """The mapping of a YAML config file; ``ValueError`` naming the file and what is wrong."""
    if not source.is_file():
        what = "is a folder, not a file" if source.is_dir() else "does not exist"
        raise ValueError(f"config file {str(source)!r} {what}")
    try:
        tree = load_yaml(source.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"config file {str(source)!r} is not valid YAML: {error}") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"config file {str(source)!r} is not UTF-8 text ({error})") from None
    except OSError as error:  # unreadable (permissions): named, not a traceback
        raise ValueError(f"config file {str(source)!r} cannot be read: "
                         f"{error.strerror or error}") from None
    if not isinstance(tree, dict):
        raise ValueError(f"config file {str(source)!r} must hold a mapping at the top")
    return tree


_NESTED = {
    "env": ("kwargs", "one of the env's own fields (cost, market, book, action_mode, ...)"),
    "agent": ("hyperparams", "one of the algorithm's settings (n_timesteps, learning_rate, ...: "
              "rl-zoo keys for SB3, the deep hedger's own)"),
}
"""Sections whose free-form settings sit one level down: section -> (that key, what it holds)."""


def _nesting_hint(loc: tuple[Any, ...]) -> list[str]:
    """A line saying where an unknown key of ``env`` or ``agent`` belongs if it is a setting.

    Examples:
        >>> _nesting_hint(("agent", "n_timesteps"))[0].endswith(
        ...     "set it as agent.hyperparams.n_timesteps")
        True
        >>> _nesting_hint(("arena", "pathz")), _nesting_hint(("env", "kwargs", "x"))
        ([], [])
    """
    if len(loc) != 2 or loc[0] not in _NESTED:
        return []
    section, key = loc
    inner, holds = _NESTED[section]
    return [f"  {section}.{key}: if it is {holds}, set it as {section}.{inner}.{key}"]


def _explain(
    error: ValidationError, path: str | Path | None, given: Mapping[str, Any] | None = None
) -> str:
    """The validation error as lines ``key: message (got value)``.

    A key set on top of the file (``given``: ``--set`` overrides and the command's shortcuts
    such as ``--paths``, which set ``arena.paths``) is named as such, so the file is not blamed
    for a value the command line gave.
    """
    given = given or {}
    where = f" in {str(path)!r}" if path else ""
    lines = [f"invalid run config{where}:"]
    sections = set()
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"])
        value = repr(item.get("input"))
        whole = isinstance(item.get("input"), dict)  # a section's own check: its message says
        shown = "" if whole or f"got {value}" in item["msg"] else f" (got {value})"  # not twice
        setter = next((k for k in given if key == k or key.startswith(f"{k}.")), None)
        origin = (f" [given on the command line as {setter}={given[setter]!r} (--set or a "
                  "shortcut such as --paths), not in the file]" if path and setter else "")
        lines.append(f"  {key}: {item['msg']}{shown}{origin}")
        if item["type"] == "extra_forbidden":  # an unknown key: list the allowed ones
            sections.add(str(item["loc"][0]) if len(item["loc"]) > 1 else "")
            lines.extend(_nesting_hint(item["loc"]))
    for section in sorted(sections):
        model = RunConfig.model_fields[section].annotation if section else RunConfig
        fields = getattr(model, "model_fields", {})
        lines.append(f"  allowed keys of {section or 'the config'}: {sorted(fields)}")
    return "\n".join(lines)


def apply_overrides(config: RunConfig, values: Mapping[str, Any], **fields: Any) -> RunConfig:
    """A copy of ``config`` with dotted keys set, as ``--set`` sets them (a sweep's trials).

    Args:
        config: the base config.
        values: dotted keys -> values (``{"env.kwargs.cost": 0.002, "seed": 1}``).
        **fields: dotted keys with ``__`` for dots, applied last.

    Raises:
        ValueError: naming the key and what is allowed.

    Examples:
        >>> apply_overrides(RunConfig(), {"env.kwargs.cost": 0.002}, seed=3).env.kwargs
        {'cost': 0.002}
    """
    tree = config.model_dump(mode="json")
    for key, value in values.items():
        _set(tree, key, value)
    for key, value in fields.items():
        _set(tree, key.replace("__", "."), value)
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as error:
        raise ValueError(_explain(error, None)) from None
