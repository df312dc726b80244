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
    """The agent: its algorithm and hyperparameters (the algorithm's own keys)."""

    model_config = _STRICT
    algo: str = "deep_hedging"
    hyperparams: dict[str, Any] = Field(default_factory=dict)


class ArenaSpec(BaseModel):
    """How hedgers are scored (see :class:`hedgearena.baselines.benchmark.BenchmarkSettings`)."""

    model_config = _STRICT
    paths: int = Field(100_000, ge=1)
    batch_size: int = Field(50_000, ge=1)
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
            n_paths=self.paths, batch_size=self.batch_size, seed=self.seed,
            tune_paths=self.tune_paths, c=self.c, risk_aversion=self.risk_aversion,
            n_boot=self.n_boot, reference=self.reference, frontier=self.frontier,
            progress=progress,
        )


class RunConfig(BaseModel):
    """Everything that defines a run.

    Attributes:
        env: the env id and its keyword overrides.
        agent: the agent's algorithm and hyperparameters.
        arena: the scoring of the agent against the baselines.
        seed: seed of training (the arena's paths have their own, ``arena.seed``).
        out: parent folder of run folders.
        name: the run's folder name (default: ``<algo>-<env>-seed<seed>``).
    """

    model_config = _STRICT
    env: EnvSpec = Field(default_factory=EnvSpec)
    agent: AgentSpec = Field(default_factory=AgentSpec)
    arena: ArenaSpec = Field(default_factory=ArenaSpec)
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
