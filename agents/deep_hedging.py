"""Deep hedging: a torch policy trained through the simulated P&L of batches of paths.

Buehler, Gonon, Teichmann and Wood (2019), "Deep hedging", Quant. Finance 19(8): minimise a
risk measure of the hedging cost over the policy's parameters by gradient descent through the
P&L of simulated paths. Here the paths are the env's (:func:`build_episodes`), and the P&L is
booked by the env's own core (:func:`hedgearena.envs.core.transition` on torch tensors): there
is no second simulator, and :class:`DeepHedger` scores the trained policy through
:func:`~hedgearena.baselines.hedger.run_hedger` exactly like the classical hedgers.

The hedging cost of a path is ``C = initial_premium - exp(-r T) * P&L`` (Cao, Chen, Hull and
Poulos 2021), ``P&L = W_T - W_0`` the sum of the decisions' P&L, ``initial_premium`` the cash
the book brought in at the start; the objective is a risk measure of ``C``
(:mod:`hedgearena.agents.objectives`, ``mean_std:1.5`` by default).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from hedgearena.agents.objectives import parse_objective
from hedgearena.agents.policies import HedgingPolicy, PolicySpec, pnl_input
from hedgearena.agents.saved import loading, read_json, required_file
from hedgearena.baselines.hedger import Hedger, State
from hedgearena.envs.checks import is_integer, is_number
from hedgearena.envs.config import EnvConfig
from hedgearena.envs.core import (
    CoreConfig,
    Episode,
    HedgeState,
    episode_rows,
    transition,
    wealth,
)
from hedgearena.envs.episode import EpisodeBatch, build_episodes, feature_names
from hedgearena.envs.vector_env import VecHedgingEnv

DTYPES = {"float32": torch.float32, "float64": torch.float64}
WEIGHTS_FILE, SETTINGS_FILE, CHECKPOINT_FILE = "policy.pt", "settings.json", "last.pt"
_TRAIN, _VALID, _FRESH, _ORDER = 0, 1, 2, 3  # streams of the seed sequence


# ------------------------------------------------------------------------------------ paths
class PathTensors(NamedTuple):
    """A batch of episodes as torch tensors: what a rollout needs.

    ``episode`` holds the core's time-major ``(n_steps + 1, n_paths)`` tensors (constant
    fields as stride-0 views); ``observations`` is ``(n_steps + 1, n_paths, n_features)``;
    ``initial_cash`` is ``(n_paths,)``; ``discount`` is ``exp(-r T)``.
    """

    episode: Episode
    observations: Tensor
    initial_cash: Tensor
    discount: float

    @property
    def n_paths(self) -> int:
        """Number of paths."""
        return int(self.initial_cash.shape[0])


def path_tensors(batch: EpisodeBatch, config: EnvConfig, dtype: torch.dtype) -> PathTensors:
    """The tensors of an :class:`EpisodeBatch` (a copy, in ``dtype``)."""
    fields = {}
    for name, value in batch.episode._asdict().items():
        fields[name] = _tensor(value, dtype) if isinstance(value, np.ndarray) else value
    assert config.n_steps is not None
    discount = math.exp(-batch.market.rate * config.n_steps * config.dt)
    return PathTensors(
        Episode(**fields),
        torch.as_tensor(batch.observations).to(dtype),
        torch.as_tensor(batch.initial_cash).to(dtype),
        discount,
    )


def _tensor(value: NDArray[np.float64], dtype: torch.dtype) -> Tensor:
    """A tensor of ``value``; a constant 2-d array becomes a stride-0 view of one number."""
    if value.ndim == 2 and value.size and (value == value.flat[0]).all():
        return torch.full((1, 1), float(value.flat[0]), dtype=dtype).expand(value.shape)
    return torch.as_tensor(value).to(dtype)


def _take(value: Any, rows: Tensor) -> Any:
    """Columns ``rows`` of a time-major tensor (stride-0 views stay views)."""
    if not isinstance(value, Tensor):
        return value
    if value.ndim == 1:
        return value[rows]
    if value.stride(-1) == 0:
        return value[:, :1].expand(value.shape[0], rows.shape[0])
    return value[:, rows]


def take_paths(paths: PathTensors, rows: Tensor) -> PathTensors:
    """The paths ``rows`` of ``paths``."""
    episode = Episode(**{k: _take(v, rows) for k, v in paths.episode._asdict().items()})
    return PathTensors(episode, paths.observations[:, rows], paths.initial_cash[rows],
                       paths.discount)


def concat_paths(parts: list[PathTensors]) -> PathTensors:
    """One batch of paths from several (joined along the paths)."""
    if len(parts) == 1:
        return parts[0]
    fields = {}
    for name in Episode._fields:
        values = [getattr(p.episode, name) for p in parts]
        if not isinstance(values[0], Tensor):
            fields[name] = values[0]
        elif values[0].ndim == 1:
            fields[name] = torch.cat(values)
        elif all(v.stride(-1) == 0 for v in values) and len({float(v[0, 0]) for v in values}) == 1:
            fields[name] = values[0][:, :1].expand(values[0].shape[0],
                                                   sum(v.shape[1] for v in values))
        else:
            fields[name] = torch.cat([v.contiguous() for v in values], dim=1)
    return PathTensors(
        Episode(**fields),
        torch.cat([p.observations for p in parts], dim=1),
        torch.cat([p.initial_cash for p in parts]),
        parts[0].discount,
    )


def simulate_paths(
    config: EnvConfig, n_paths: int, seed_key: list[int], dtype: torch.dtype,
    chunk: int = 2**15,
) -> PathTensors:
    """``n_paths`` episodes of ``config`` as tensors, built in chunks of at most ``chunk``.

    Chunk ``i`` comes from ``default_rng(SeedSequence([*seed_key, i]))``.
    """
    parts = []
    for index, lo in enumerate(range(0, n_paths, chunk)):
        rng = np.random.default_rng(np.random.SeedSequence([*seed_key, index]))
        batch = build_episodes(config, min(chunk, n_paths - lo), rng)
        parts.append(path_tensors(batch, config, dtype))
    return concat_paths(parts)


# ---------------------------------------------------------------------------------- rollout
class Rollout(NamedTuple):
    """What a policy did on a batch of paths (tensors, ``(n_paths,)`` unless stated).

    Attributes:
        pnl: the episode's P&L ``W_T - W_0`` (currency), the sum of the decisions' ``pnl``.
        hedging_cost: ``initial_premium - exp(-r T) * pnl`` (a loss).
        cost: transaction costs paid (the unwind's included).
        turnover: sum of ``|trade|`` in the underlying over the decisions (units).
        hedge: positions in the underlying after each decision, ``(n_decisions, n_paths)``.
        option: positions in the hedging option after each decision, same shape.
    """

    pnl: Tensor
    hedging_cost: Tensor
    cost: Tensor
    turnover: Tensor
    hedge: Tensor
    option: Tensor


def rollout(
    policy: HedgingPolicy, paths: PathTensors, config: EnvConfig,
    record: bool = False,
) -> Rollout:
    """Run ``policy`` on ``paths`` through the env's core and book the P&L (differentiable).

    Follows :class:`~hedgearena.envs.vector_env.VecHedgingEnv` step for step: a decision at
    every ``rebalance_every``-th market step, the first target replaced by the model hedge when
    ``initial_hedge == "delta"``, the unwind at the end when ``unwind`` is set.

    Args:
        policy: the policy (its positions in the dtype of ``paths``).
        paths: the batch.
        config: the env config the paths were built for.
        record: keep the positions after each decision (else ``hedge`` and ``option`` are
            empty).
    """
    assert config.n_steps is not None
    episode, n_steps, core = paths.episode, config.n_steps, _core(config)
    zeros = paths.initial_cash * 0.0
    state = HedgeState(zeros, zeros, paths.initial_cash)
    hidden = policy.initial_hidden(paths.n_paths)
    wealth0 = wealth(episode, 0, state) if policy.uses_pnl else None
    pnl = cost = turnover = zeros
    hedges, options = [], []
    for t in range(0, n_steps, core.rebalance_every):
        model_hedge, model_option = episode.model_hedge[t], episode.model_option[t]
        so_far = (None if wealth0 is None
                  else pnl_input(wealth(episode, t, state), wealth0, episode.spot[0]))
        hedge, option, hidden = policy.step(paths.observations[t], state.hedge, state.option,
                                            model_hedge, model_option, hidden, so_far)
        if t == 0 and config.initial_hedge == "delta":
            hedge, option = model_hedge, model_option
        result = transition(episode, t, n_steps, state, hedge, option, core)
        if record:  # held after the trade, before any unwind (as the env records)
            hedges.append((state.hedge + result.trade).detach())
            options.append((state.option + result.option_trade).detach())
        state = result.state
        pnl, cost = pnl + result.pnl, cost + result.cost
        turnover = turnover + abs(result.trade)
    empty = zeros.detach()[None, :0]
    return Rollout(
        pnl,
        paths.initial_cash - paths.discount * pnl,
        cost,
        turnover,
        torch.stack(hedges) if record else empty,
        torch.stack(options) if record else empty,
    )


def _core(config: EnvConfig) -> CoreConfig:
    return config.core(1.0)


def cost_summary(run: Rollout, objective: Any) -> dict[str, float]:
    """Objective, mean and std of the hedging cost, mean turnover and mean transaction cost."""
    c = run.hedging_cost.detach().to(torch.float64)
    return {
        "objective": float(parse_objective(objective)(c)),
        "cost_mean": float(c.mean()),
        "cost_std": float(c.std(correction=0)),
        "turnover": float(run.turnover.detach().mean()),
        "transaction_cost": float(run.cost.detach().mean()),
    }


# ---------------------------------------------------------------------------------- trainer
@dataclass(frozen=True)
class TrainerConfig:
    """Settings of :class:`DeepHedgingTrainer` (all plain data, saved as JSON).

    Attributes:
        objective: the risk measure of the hedging cost (see :func:`parse_objective`).
        steps: gradient steps in all.
        batch_size: paths per gradient step.
        n_train: paths of the fixed training set (minibatches are drawn from it without
            replacement, reshuffled every epoch); ignored with ``fresh_batches``.
        fresh_batches: simulate a new batch for every step instead.
        n_valid: paths of the fixed validation set (at least 2: its objective has a std).
        valid_history: on a dated market (the historical replay), the fraction of the history's last
            days the validation paths replay, in [0, 1); training replays the days before them, so
            no training window shares a day with a validation window
            (:func:`hedgearena.baselines.benchmark.validation_split`). 0: both replay the whole
            history, and as windows of one history overlap, the validation set repeats training
            windows (the best weights are picked in sample). On the S&P replay with ``arena.split``
            2010 (300 steps), 0.2 trains on 1999-2007 and validates on 2008-2009: the agent scores Y
            5,111 +- 435 from 2010 on, 0 gives 5,254 +- 576 (delta 5,093 +- 434). Simulated markets
            ignore it (their sets are independent draws).
        learning_rate: Adam's initial step size.
        final_learning_rate: the step size at the end (cosine decay in between).
        max_grad_norm: clip the gradient's norm to it (None: no clipping).
        eval_every: steps between validations (the best weights are kept).
        checkpoint_every: steps between checkpoints (with a checkpoint directory).
        seed: seed of the weights, the paths and the minibatch order (>= 0; not the arena's
            seed: the training set's first chunk, ``SeedSequence([seed, 0, 0])``, is one
            stream with the arena's first block of that seed, ``SeedSequence([seed, 0])``).
        dtype: ``float32`` or ``float64`` (paths, weights and accounting).
        build_chunk: paths simulated at once when building a fixed set.
    """

    objective: str = "mean_std:1.5"
    steps: int = 500
    batch_size: int = 8192
    n_train: int = 2**17
    fresh_batches: bool = False
    n_valid: int = 2**15
    valid_history: float = 0.2
    learning_rate: float = 3e-3
    final_learning_rate: float = 1e-4
    max_grad_norm: float | None = None
    eval_every: int = 50
    checkpoint_every: int = 100
    seed: int = 0
    dtype: str = "float32"
    build_chunk: int = 2**15

    def __post_init__(self) -> None:
        object.__setattr__(self, "objective", str(parse_objective(self.objective)))
        counts = ("steps", "batch_size", "n_valid", "eval_every", "checkpoint_every",
                  "build_chunk", *(() if self.fresh_batches else ("n_train",)))
        for name in counts:
            value = getattr(self, name)
            if not (is_integer(value, integral_floats=True) and value >= 1):
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
            object.__setattr__(self, name, int(value))  # 8192.0 (YAML) is 8192
        if self.n_valid < 2:  # as agent.eval_paths for SB3 agents
            raise ValueError(f"n_valid must be an integer >= 2 (the validation objective has a "
                             f"std: 2 paths or more), got {self.n_valid!r}")
        if not isinstance(self.fresh_batches, bool):
            raise ValueError(f"fresh_batches must be true or false, got {self.fresh_batches!r}")
        if not self.fresh_batches and self.n_train < self.batch_size:
            raise ValueError(
                f"n_train ({self.n_train}) must be >= batch_size ({self.batch_size}) "
                "(or set fresh_batches=True)"
            )
        self._check_steps_sizes()
        if not (is_integer(self.seed) and self.seed >= 0):
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        share = self.valid_history
        if not (is_number(share) and 0.0 <= share < 1.0):
            raise ValueError(f"valid_history must be a number in [0, 1) (the share of a dated "
                             f"history's last days kept for validation), got {share!r}")
        if not isinstance(self.dtype, str) or self.dtype not in DTYPES:  # [..] is unhashable
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {self.dtype!r}")

    def _check_steps_sizes(self) -> None:
        """The learning rates (decaying) and the gradient clip, named when wrong."""
        for name in ("learning_rate", "final_learning_rate"):
            value = getattr(self, name)
            if not is_number(value, gt=0.0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if self.final_learning_rate > self.learning_rate:
            raise ValueError(f"final_learning_rate ({self.final_learning_rate}) must be <= "
                             f"learning_rate ({self.learning_rate}): the step size decays")
        norm = self.max_grad_norm
        if norm is not None and not is_number(norm, gt=0.0):
            raise ValueError(f"max_grad_norm must be a finite number > 0 or None, got {norm!r}")

    def learning_rate_at(self, step: int) -> float:
        """The cosine-decayed step size of gradient step ``step``."""
        progress = min(step / self.steps, 1.0)
        return self.final_learning_rate + 0.5 * (
            self.learning_rate - self.final_learning_rate
        ) * (1.0 + math.cos(math.pi * progress))


class TrainingResult(NamedTuple):
    """The outcome of :meth:`DeepHedgingTrainer.train`.

    Attributes:
        step: gradient steps done in all (resumed runs included).
        best_step: the step of the best validation objective.
        best: the validation summary of the best weights (see :func:`cost_summary`).
        history: one dict per validation (``step``, ``loss`` and the summary).
        seconds: wall-clock seconds of this call (building the paths included).
    """

    step: int
    best_step: int
    best: dict[str, float]
    history: list[dict[str, float]]
    seconds: float


class DeepHedgingTrainer:
    """Trains a :class:`HedgingPolicy` on an env config by gradient descent through its P&L.

    Args:
        env_config: the env (market, book, costs, conventions) to hedge.
        policy: a policy, a :class:`PolicySpec`, or None for ``PolicySpec.for_env(env_config,
            **policy_fields)`` (built after ``torch.manual_seed(config.seed)``).
        config: the training settings.
        log_dir: TensorBoard directory (None: no logs).
        checkpoint_dir: where ``last.pt`` is written every ``checkpoint_every`` steps and at
            the end; :meth:`train` resumes from it when it exists.
        progress: show a tqdm progress bar.
        **policy_fields: fields of the :class:`PolicySpec` when ``policy`` is None.

    Resuming from ``checkpoint_dir`` continues the weights, the optimiser and the step count;
    it does not compare the checkpoint's objective or env with this trainer's (``train.py``
    refuses a run folder trained under other settings; a library user keeps one folder per
    setting). Stopping with ``train(until=k)`` validates at ``k`` too, so a stopped-and-resumed
    run can keep another best model than a straight one, and a larger ``steps`` stretches the
    cosine schedule from the step reached. A given policy's input normaliser is fitted again on
    the training set (fine-tuning starts from the refitted policy).

    Examples:
        >>> from hedgearena.envs.config import make_config
        >>> trainer = DeepHedgingTrainer(make_config("ShortCall", n_steps=5, book={"options": [
        ...     {"moneyness": 1.0, "expiry_steps": 5, "contracts": -1.0}]}),
        ...     config=TrainerConfig(steps=2, batch_size=64, n_train=128, n_valid=64),
        ...     progress=False)
        >>> trainer.train().step
        2
    """

    def __init__(
        self,
        env_config: EnvConfig,
        policy: HedgingPolicy | PolicySpec | None = None,
        config: TrainerConfig | None = None,
        *,
        log_dir: str | Path | None = None,
        checkpoint_dir: str | Path | None = None,
        progress: bool = True,
        **policy_fields: Any,
    ) -> None:
        self.env_config = env_config
        self.config = config or TrainerConfig()
        from hedgearena.baselines.benchmark import validation_split  # (matplotlib: lazily)

        self._train_config, self._valid_config = validation_split(
            env_config, self.config.valid_history
        )
        self.dtype = DTYPES[self.config.dtype]
        self.objective = parse_objective(self.config.objective)
        torch.manual_seed(self.config.seed)
        if policy is None:
            policy = check_setup(env_config, **policy_fields)
        elif policy_fields:
            raise ValueError("give policy fields only when policy is None")
        if isinstance(policy, PolicySpec):
            policy = HedgingPolicy(policy)
        _check_compatible(policy.spec, env_config)
        _check_trainable(env_config)
        self.policy = policy.to(self.dtype)
        self.optimizer = torch.optim.Adam(self.policy.parameters(),
                                          lr=self.config.learning_rate)
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.progress = progress
        self.step = 0
        self.best_value = math.inf
        self.best_step = 0
        self.best_summary: dict[str, float] = {}
        self.history: list[dict[str, float]] = []
        self._best_state: dict[str, Tensor] | None = None
        self._working_state: dict[str, Tensor] | None = None
        self._train: PathTensors | None = None
        self._valid: PathTensors | None = None
        self._normalised = False

    # ------------------------------------------------------------------------------- data
    def _seed_key(self, stream: int) -> list[int]:
        return [int(self.config.seed), stream]

    @property
    def validation_paths(self) -> PathTensors:
        """The fixed validation set (built on first use)."""
        if self._valid is None:
            self._valid = simulate_paths(self._valid_config, self.config.n_valid,
                                         self._seed_key(_VALID), self.dtype,
                                         self.config.build_chunk)
        return self._valid

    @property
    def training_paths(self) -> PathTensors:
        """The fixed training set (built on first use; not used with ``fresh_batches``)."""
        if self._train is None:
            self._train = simulate_paths(self._train_config, self.config.n_train,
                                         self._seed_key(_TRAIN), self.dtype,
                                         self.config.build_chunk)
        return self._train

    def minibatch(self, step: int) -> PathTensors:
        """The paths of gradient step ``step`` (a pure function of the seed and the step)."""
        cfg = self.config
        if cfg.fresh_batches:
            return simulate_paths(self._train_config, cfg.batch_size,
                                  [*self._seed_key(_FRESH), step], self.dtype, cfg.batch_size)
        per_epoch = cfg.n_train // cfg.batch_size
        epoch, index = divmod(step, per_epoch)
        rng = np.random.default_rng(np.random.SeedSequence([*self._seed_key(_ORDER), epoch]))
        order = rng.permutation(cfg.n_train)[index * cfg.batch_size : (index + 1) * cfg.batch_size]
        return take_paths(self.training_paths, torch.as_tensor(order))

    def _fit_normalizer(self) -> None:
        if self._normalised or self.step > 0:
            return
        paths = self.minibatch(0) if self.config.fresh_batches else self.training_paths
        self.policy.fit_normalizer(paths.observations[:-1, : self.config.build_chunk])
        self._normalised = True

    # ---------------------------------------------------------------------------- training
    def evaluate(self, paths: PathTensors | None = None) -> dict[str, float]:
        """The cost summary of the current weights on ``paths`` (the validation set)."""
        paths = self.validation_paths if paths is None else paths
        with torch.no_grad():
            return cost_summary(rollout(self.policy, paths, self.env_config), self.objective)

    def loss(self, paths: PathTensors) -> Tensor:
        """The objective of the hedging cost on ``paths`` (differentiable)."""
        return self.objective(rollout(self.policy, paths, self.env_config).hedging_cost)

    def train(self, until: int | None = None) -> TrainingResult:
        """Train up to gradient step ``until`` (default ``config.steps``), then keep the best.

        Resumes from ``checkpoint_dir/last.pt`` when it exists (weights, optimiser, step count,
        best weights and history). On return, :attr:`policy` holds the best validated weights;
        a later call continues from the last ones.
        """
        start = time.perf_counter()
        until = self.config.steps if until is None else min(int(until), self.config.steps)
        self._resume()
        self._fit_normalizer()
        writer = _summary_writer(self.log_dir)
        loss_value = math.nan
        try:
            with _bar(self.progress, until, self.step) as bar:
                while self.step < until:
                    loss_value = self._gradient_step()
                    self.step += 1
                    bar.update(1)
                    if writer is not None:  # the step size the step was taken with, too
                        writer.add_scalar("train/loss", loss_value, self.step)
                        writer.add_scalar("train/learning_rate",
                                          self.config.learning_rate_at(self.step - 1), self.step)
                    if self.step % self.config.eval_every == 0 or self.step == until:
                        self._validate(loss_value, writer)
                        bar.set_postfix(loss=f"{loss_value:.4g}",
                                        valid=f"{self.history[-1]['objective']:.4g}")
                    if self.step % self.config.checkpoint_every == 0:
                        self.checkpoint()
        finally:
            self.checkpoint()
            if writer is not None:
                writer.close()
        if not self.history:
            self._validate(loss_value, None)
        self._working_state = _copy_state(self.policy)
        if self._best_state is not None:
            self.policy.load_state_dict(self._best_state)
        return TrainingResult(self.step, self.best_step, dict(self.best_summary),
                              list(self.history), time.perf_counter() - start)

    def _gradient_step(self) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.learning_rate_at(self.step)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(self.minibatch(self.step))
        loss.backward()
        if self.config.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        return float(loss.detach())

    def _validate(self, loss_value: float, writer: Any) -> None:
        summary = self.evaluate()
        self.history.append({"step": float(self.step), "loss": loss_value, **summary})
        if summary["objective"] < self.best_value:
            self.best_value, self.best_step = summary["objective"], self.step
            self.best_summary = summary
            self._best_state = _copy_state(self.policy)
        if writer is not None:
            for key, value in summary.items():
                writer.add_scalar(f"valid/{key}", value, self.step)

    # ------------------------------------------------------------------------ checkpoints
    def checkpoint(self) -> Path | None:
        """Write ``checkpoint_dir/last.pt`` (None without a checkpoint directory)."""
        if self.checkpoint_dir is None:
            return None
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        target = self.checkpoint_dir / CHECKPOINT_FILE
        payload = {
            "step": self.step,
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "best_value": self.best_value,
            "best_step": self.best_step,
            "best_summary": self.best_summary,
            "best_state": self._best_state,
            "history": self.history,
            "settings": json.dumps(self.settings()),
        }
        partial = target.with_suffix(".tmp")
        torch.save(payload, partial)
        partial.replace(target)  # atomic: an interruption never leaves half a checkpoint
        return target

    def _resume(self) -> None:
        """Continue from the in-memory working weights or from ``checkpoint_dir/last.pt``."""
        if self._working_state is not None:
            self.policy.load_state_dict(self._working_state)
            self._working_state = None
            return
        path = None if self.checkpoint_dir is None else self.checkpoint_dir / CHECKPOINT_FILE
        if self.step > 0 or path is None or not path.exists():
            return
        payload = torch.load(path, weights_only=True)
        saved = json.loads(payload["settings"])
        if PolicySpec.from_dict(saved["policy"]) != self.policy.spec:
            raise ValueError(f"checkpoint {path} is of another policy: {saved['policy']}")
        self.policy.load_state_dict(payload["policy"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.step = int(payload["step"])
        self.best_value, self.best_step = float(payload["best_value"]), int(payload["best_step"])
        self.best_summary = dict(payload["best_summary"])
        self._best_state = payload["best_state"]
        self.history = list(payload["history"])
        self._normalised = True

    def settings(self) -> dict[str, Any]:
        """The policy's and the trainer's settings and the env config (plain data)."""
        return {
            "policy": self.policy.spec.to_dict(),
            "trainer": dataclasses.asdict(self.config),
            "env": self.env_config.to_dict(),
            "step": self.step,
            "best_step": self.best_step,
        }

    def save(self, path: str | Path) -> Path:
        """Write the current policy weights and the settings to the directory ``path``."""
        return save_policy(self.policy, path, self.settings())

    def hedger(self, name: str = "deep hedging") -> DeepHedger:
        """The current policy as an arena hedger."""
        return DeepHedger(self.policy, name=name)


def check_setup(env_config: EnvConfig, **policy_fields: Any) -> PolicySpec:
    """The policy spec a trainer of ``env_config`` would build, checked; nothing is built.

    Raises:
        ValueError: a bad policy field (``activation``, ``hidden``, ``output``...), a policy
            that cannot hedge the env, or env settings the trainer cannot step (named).
    """
    spec = PolicySpec.for_env(env_config, **policy_fields)
    _check_compatible(spec, env_config)
    _check_trainable(env_config)
    return spec


def _check_compatible(spec: PolicySpec, config: EnvConfig) -> None:
    """Raise a ValueError if a policy cannot hedge ``config``'s env."""
    observation = feature_names(config.hedge_option is not None)
    if tuple(spec.observation) != observation:
        missing = [name for name in observation if name not in spec.observation]
        extra = [name for name in spec.observation if name not in observation]
        option_entries = set(feature_names(True)) - set(feature_names(False))
        hint = ""
        if missing and set(missing) <= option_entries:
            hint = (" (the env has a hedging option, the policy was trained on an env without "
                    "one)")
        elif extra and set(extra) <= option_entries:
            hint = (" (the policy was trained with a hedging option, the env has none: set "
                    "hedge_option)")
        raise ValueError(
            f"the policy reads observations {spec.observation}, the env gives {observation}: "
            f"the env's {missing} are not the policy's, and the policy's {extra} not the env's"
            f"{hint}; score a policy on the env it was trained on"
        )
    if spec.action_dim != config.action_dim:
        raise ValueError(
            f"the policy trades {spec.action_dim} instrument(s), the env {config.action_dim}"
        )
    if spec.notional != config.book.notional:
        raise ValueError(
            f"the policy's notional is {spec.notional}, the env's {config.book.notional}"
        )


def _check_trainable(config: EnvConfig) -> None:
    """Raise a ValueError for env settings the torch core cannot step.

    Permanent impact re-marks the book with the numpy pricer, and risk limits are enforced by
    the envs, not the core: a trainer would optimise another game than the env scores.
    """
    if getattr(config, "permanent_impact", 0.0):
        raise ValueError(
            f"permanent_impact={config.permanent_impact} is not supported by the deep-hedging "
            "trainer (the book is re-marked by the numpy pricer); use permanent_impact=0"
        )
    if getattr(config, "risk_limits", None) is not None:
        raise ValueError(
            "risk_limits are enforced by the envs, not by the core the trainer steps; train "
            "with risk_limits=None (the DeepHedger may still be scored on an env with limits)"
        )


def _copy_state(module: torch.nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _summary_writer(log_dir: Path | None) -> Any:
    if log_dir is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(log_dir))


class _bar:  # noqa: N801  (a context manager used like a function)
    """A tqdm bar over gradient steps (a no-op one when disabled)."""

    def __init__(self, enabled: bool, total: int, initial: int) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=initial, disable=not enabled, desc="deep hedging",
                        unit="step", leave=False)

    def __enter__(self) -> Any:
        return self.bar

    def __exit__(self, *exc: object) -> None:
        self.bar.close()


# -------------------------------------------------------------------------------- save/load
def save_policy(policy: HedgingPolicy, path: str | Path,
                settings: dict[str, Any] | None = None) -> Path:
    """Write ``policy.pt`` (weights) and ``settings.json`` into the directory ``path``."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(policy.state_dict(), folder / WEIGHTS_FILE)
    data = dict(settings or {})
    data["policy"] = policy.spec.to_dict()
    data["dtype"] = str(policy.input_mean.dtype).removeprefix("torch.")
    (folder / SETTINGS_FILE).write_text(json.dumps(data, indent=2, default=repr))
    return folder


def load_policy(path: str | Path) -> HedgingPolicy:
    """The policy saved by :func:`save_policy` (bit-identical positions).

    Raises:
        FileNotFoundError: ``policy.pt`` or ``settings.json`` is missing (named).
        ValueError: either file is corrupt or does not describe a policy (named).
    """
    folder = Path(path)
    settings_file = folder / SETTINGS_FILE
    settings = read_json(settings_file, "deep-hedging settings", ("policy",))
    weights = required_file(folder / WEIGHTS_FILE, "deep-hedging weights")
    with loading(settings_file, "deep-hedging settings"):
        policy = HedgingPolicy(PolicySpec.from_dict(settings["policy"]))
        policy = policy.to(DTYPES[settings.get("dtype", "float32")])
    with loading(weights, "deep-hedging weights"):
        policy.load_state_dict(torch.load(weights, weights_only=True))
    return policy.eval()


# ----------------------------------------------------------------------------------- hedger
class DeepHedger(Hedger):
    """A trained :class:`HedgingPolicy` as an arena hedger, scored like the baselines.

    At each decision it feeds the env's observation, with the positions written in from the
    env's state (float64), to :meth:`HedgingPolicy.step`; the recurrent state is reset in
    :meth:`reset`. A policy that reads ``pnl`` gets ``W_t - W_0`` from the env's batch and
    state by the core's :func:`~hedgearena.envs.core.wealth`, read at a spot of 100
    (:func:`~hedgearena.agents.policies.pnl_input`), as in training. The band's clamp
    is computed in float64 on the env's positions, so a hedge inside the band trades exactly
    nothing.

    Args:
        policy: the trained policy.
        name: the label in tables.
    """

    def __init__(self, policy: HedgingPolicy, name: str = "deep hedging") -> None:
        self.policy = policy
        self.name = name
        self._hidden: Tensor | None = None
        self._env: VecHedgingEnv | None = None
        self._wealth0: Tensor | None = None
        self._spot0: Tensor | None = None

    @classmethod
    def load(cls, path: str | Path, name: str = "deep hedging") -> DeepHedger:
        """The hedger of a policy saved with :func:`save_policy`."""
        return cls(load_policy(path), name=name)

    def reset(self, env: VecHedgingEnv) -> None:
        """Check that the policy fits ``env``, clear the recurrent state, note ``W_0``."""
        _check_compatible(self.policy.spec, env.config)
        self._hidden = None
        self._env = env
        self._wealth0 = self._wealth(env.state) if self.policy.uses_pnl else None
        self._spot0 = torch.as_tensor(env.batch.episode.spot[0])  # S_0 of every row

    def _wealth(self, state: State) -> Tensor:
        """Wealth ``B + h S + g O + cash`` of every row, by the core's formula (float64)."""
        assert self._env is not None, "call reset(env) first"
        episode = self._env.batch.episode
        rows = np.arange(len(state["step"]))
        held = HedgeState(state["hedge"], state["option_position"], state["cash"])
        return torch.as_tensor(wealth(episode_rows(episode, rows), state["step"], held))

    def positions(self, state: State, obs: NDArray[np.float32]) -> NDArray[np.float64]:
        """The policy's positions ``(n_paths, action_dim)``, units."""
        tensor = _float64_state(state)
        pnl = (None if self._wealth0 is None
               else pnl_input(self._wealth(state), self._wealth0, self._spot0))
        with torch.no_grad():
            hedge, option, self._hidden = self.policy.step(
                torch.as_tensor(obs), tensor["hedge"], tensor["option_position"],
                tensor["model_hedge"], tensor["model_option"], self._hidden, pnl,
            )
        out = torch.stack([hedge, option], dim=1)[:, : self.policy.spec.action_dim]
        return out.to(torch.float64).numpy()


def _float64_state(state: State) -> dict[str, Tensor]:
    """The policy's inputs of the state as float64 tensors (copied: the state is read-only)."""
    keys = ("hedge", "option_position", "model_hedge", "model_option")
    return {k: torch.tensor(np.asarray(state[k]), dtype=torch.float64) for k in keys}

