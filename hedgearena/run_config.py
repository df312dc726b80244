"""Run configs: one frozen, validated object per run, from YAML and command-line overrides.

A run config says which env (an id and keyword overrides), which agent (its algorithm and
hyperparameters), how it is scored (the arena) and where outputs go. Files are YAML::

    env:
      id: hedgearena/ShortCall-v0
      kwargs: {cost: 0.01}
    agent:
      algo: deep_hedging
      hyperparams: {epochs: 30}
    arena: {paths: 100000, hedgers: [no_hedge, delta, "ww:best"]}
    seed: 0

and any field can be overridden with ``--set dotted.key=value`` (the value is read as YAML:
``--set env.kwargs.cost=0.002 --set arena.hedgers=[delta,no_hedge]``). Unknown keys are errors
that name the key and list the allowed ones. Every run writes its resolved config
(``config.yaml``) beside its outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hedgearena.baselines.benchmark import DEFAULT_HEDGERS, BenchmarkSettings
from hedgearena.baselines.stress import DEFAULT_STRESS_COST, DEFAULT_STRESS_HEDGERS, StressSettings
from hedgearena.envs.config import EnvConfig, make_config

_STRICT = ConfigDict(extra="forbid", frozen=True)


class EnvSpec(BaseModel):
    """The env: a registered id and keyword overrides of its config (``EnvConfig`` fields)."""

    model_config = _STRICT
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


class AgentSpec(BaseModel):
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
        eval_paths: validation paths (fixed, seeded by ``arena.seed + 1``).
        checkpoint_freq: env steps between checkpoints (0: five per run).
    """

    model_config = _STRICT
    algo: str = "deep_hedging"
    hyperparams: dict[str, Any] = Field(default_factory=dict)
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    eval_freq: int = Field(0, ge=0)
    eval_paths: int = Field(4096, ge=1)
    checkpoint_freq: int = Field(0, ge=0)

    @field_validator("algo")
    @classmethod
    def _known_algo(cls, value: str) -> str:
        from hedgearena.agents.sb3 import SB3_ALGOS

        allowed = ("deep_hedging", *SB3_ALGOS)
        if value not in allowed:
            raise ValueError(f"agent.algo must be one of {allowed}, got {value!r}")
        return value

    @field_validator("env_kwargs")
    @classmethod
    def _agent_view_only(cls, value: dict[str, Any]) -> dict[str, Any]:
        from hedgearena.baselines.arena import ENV_OVERRIDES

        bad = sorted(set(value) - set(ENV_OVERRIDES))
        if bad:
            raise ValueError(f"agent.env_kwargs may only set {ENV_OVERRIDES}, got {bad}")
        return value


class ArenaSpec(BaseModel):
    """How hedgers are scored (see :class:`hedgearena.baselines.benchmark.BenchmarkSettings`)."""

    model_config = _STRICT
    paths: int = Field(100_000, ge=1)
    seed: int = 2024
    tune_paths: int = Field(20_000, ge=1)
    c: float = Field(1.5, ge=0)
    risk_aversion: float = Field(0.01, gt=0)
    n_boot: int = Field(200, ge=1)
    reference: str = "delta"
    hedgers: list[str] = Field(default_factory=lambda: list(DEFAULT_HEDGERS))
    frontier: bool = True

    def settings(self, progress: bool = True) -> BenchmarkSettings:
        """The benchmark settings of this spec."""
        return BenchmarkSettings(
            n_paths=self.paths, seed=self.seed,
            tune_paths=self.tune_paths, c=self.c, risk_aversion=self.risk_aversion,
            n_boot=self.n_boot, reference=self.reference, frontier=self.frontier,
            progress=progress,
        )


def _all_scenarios() -> list[str | dict[str, dict[str, Any]]]:
    from hedgearena.envs.scenarios import SCENARIOS

    return list(SCENARIOS)


class StressSpec(BaseModel):
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
            name to its parameters (``{gap: {size: -0.3}}``).
        cost: the env's cost during the stress (spreads and impact that scale with the
            scenarios' liquidity, by default); null keeps the env's own.
        risk_limits: the env's risk limits (``hedgearena.envs.limits.RiskLimits`` fields), or
            null for the env's own.
        worst_paths: draw every hedger's worst path in every scenario.
    """

    model_config = _STRICT
    paths: int = Field(20_000, ge=1)
    seed: int = 2024
    tune_paths: int = Field(20_000, ge=1)
    c: float = Field(1.5, ge=0)
    risk_aversion: float = Field(0.01, gt=0)
    n_boot: int = Field(100, ge=1)
    reference: str = "delta"
    hedgers: list[str] = Field(default_factory=lambda: list(DEFAULT_STRESS_HEDGERS))
    scenarios: list[str | dict[str, dict[str, Any]]] = Field(default_factory=_all_scenarios)
    cost: Any = Field(default_factory=lambda: dict(DEFAULT_STRESS_COST))
    risk_limits: dict[str, Any] | None = None
    worst_paths: bool = True

    @field_validator("scenarios")
    @classmethod
    def _known_scenarios(
        cls, value: list[str | dict[str, dict[str, Any]]]
    ) -> list[str | dict[str, dict[str, Any]]]:
        from hedgearena.envs.scenarios import make_scenario

        if not value:
            raise ValueError("stress.scenarios must name at least one scenario")
        for item in value:
            if isinstance(item, dict) and len(item) != 1:
                raise ValueError(f"a scenario with parameters is {{name: {{...}}}}, got {item!r}")
            name, params = (item, {}) if isinstance(item, str) else next(iter(item.items()))
            make_scenario(name, **(params or {}))  # raises naming the scenario or parameter
        return value

    def scenario_objects(self) -> list[Any]:
        """The :class:`hedgearena.envs.scenarios.Scenario` objects of :attr:`scenarios`."""
        from hedgearena.envs.scenarios import make_scenario

        out = []
        for item in self.scenarios:
            name, params = (item, {}) if isinstance(item, str) else next(iter(item.items()))
            out.append(make_scenario(name, **(params or {})))
        return out

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


class RunConfig(BaseModel):
    """Everything that defines a run.

    Attributes:
        env: the env id and its keyword overrides.
        agent: the agent's algorithm and hyperparameters.
        arena: the scoring of the agent against the baselines.
        stress: the stress report (``train.py stress``).
        seed: seed of training (the arena's paths have their own, ``arena.seed``).
        out: parent folder of run folders.
        name: the run's folder name (default: ``<algo>-<env>-seed<seed>``).
    """

    model_config = _STRICT
    env: EnvSpec = Field(default_factory=EnvSpec)
    agent: AgentSpec = Field(default_factory=AgentSpec)
    arena: ArenaSpec = Field(default_factory=ArenaSpec)
    stress: StressSpec = Field(default_factory=StressSpec)
    seed: int = 0
    out: str = "runs"
    name: str | None = None

    @property
    def run_name(self) -> str:
        """The run's folder name."""
        if self.name:
            return self.name
        env = self.env.id.split("/")[-1].removesuffix("-v0")
        return f"{self.agent.algo}-{env}-seed{self.seed}"

    @property
    def run_dir(self) -> Path:
        """The run's output folder."""
        return Path(self.out) / self.run_name

    def dump(self, path: str | Path) -> Path:
        """Write the config as YAML (what :func:`load_config` reads back)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False))
        return target


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
    if not sep or not key.strip():
        raise ValueError(f"an override is key=value (e.g. env.kwargs.cost=0.002), got {text!r}")
    try:
        value = yaml.safe_load(raw)
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
    tree: dict[str, Any] = {}
    if path is not None:
        source = Path(path)
        if not source.is_file():
            raise ValueError(f"config file {str(source)!r} does not exist")
        try:
            tree = yaml.safe_load(source.read_text()) or {}
        except yaml.YAMLError as error:
            raise ValueError(f"config file {str(source)!r} is not valid YAML: {error}") from None
        if not isinstance(tree, dict):
            raise ValueError(f"config file {str(source)!r} must hold a mapping at the top")
    for text in overrides or []:
        _set(tree, *parse_override(text))
    for key, value in fields.items():
        if value is not None:
            _set(tree, key.replace("__", "."), value)
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as error:
        raise ValueError(_explain(error, path)) from None


def _explain(error: ValidationError, path: str | Path | None) -> str:
    where = f" in {str(path)!r}" if path else ""
    lines = [f"invalid run config{where}:"]
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"])
        lines.append(f"  {key}: {item['msg']} (got {item.get('input')!r})")
    lines.append(f"  allowed top-level keys: {sorted(RunConfig.model_fields)}")
    return "\n".join(lines)
