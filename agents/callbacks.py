"""stable-baselines3 callbacks: hedging metrics on a fixed validation set, and checkpoints.

:class:`HedgingEvalCallback` scores the agent like the arena scores any hedger (the same env,
the same accounting, fixed validation paths) every ``eval_freq`` env steps, logs the hedging
metrics next to SB3's losses (``hedge/objective``, ``hedge/mean_cost``, ``hedge/std_cost``,
``hedge/turnover`` and the delta and band baselines' objectives on the same paths) and keeps the
best model. :class:`CheckpointCallback` saves everything a resumed run needs.

Both count their intervals in env steps summed over the paths (SB3's ``num_timesteps``, which
grows by ``n_envs`` per call), not in calls as SB3's own ``EvalCallback`` does (whose
``eval_freq`` one divides by ``n_envs``). They act at the first call at or past each multiple
of the interval, so an interval that is not a multiple of ``n_envs`` does not drift: over
``N`` env steps there are ``N // eval_freq`` evaluations.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecNormalize

from hedgearena.agents.sb3 import OFF_POLICY, ObsNormalizer, SB3Hedger
from hedgearena.baselines import metrics
from hedgearena.baselines.arena import run_arena
from hedgearena.baselines.hedger import Hedger
from hedgearena.envs.config import EnvConfig

LATEST = "latest.json"
"""The file in a checkpoint folder naming the newest checkpoint and its step count."""
EVALUATION = "evaluation.json"
"""The file in a checkpoint holding the validation's best objective and history so far."""


def validation_scores(
    config: EnvConfig, hedgers: Sequence[Hedger], n_paths: int, seed: int, c: float
) -> dict[str, dict[str, float]]:
    """Mean and std of cost, the objective and turnover of each hedger on fixed paths.

    The objective is the arena's (:func:`metrics.cost_objective`, sample std ``ddof = 1``).
    No hedgers: no scores.
    """
    names = [hedger.name for hedger in hedgers]
    if not names:
        return {}
    result = run_arena(config, hedgers, n_paths=n_paths, seed=seed, progress=False,
                       totals_only=names)
    out = {}
    for name in names:
        totals, cost = result.totals(name), result.cost(name)
        out[name] = {
            "objective": float(metrics.cost_objective(cost, c)[0]),
            "mean_cost": float(cost.mean()),
            "std_cost": float(cost.std(ddof=1)) if cost.size > 1 else 0.0,
            "turnover": float(np.mean(totals["turnover"])),
        }
    return out


def reference_tags(names: Sequence[str]) -> dict[str, str]:
    """The TensorBoard tag suffix of each baseline: ``hedge/objective_<suffix>``.

    A baseline's first word (``delta``, ``band``) when no other baseline shares it, else its
    whole name made tag-safe (``band_0.1_edge``), so that no two baselines write one tag.

    Examples:
        >>> reference_tags(["delta", "band 0.1 (edge)"])
        {'delta': 'delta', 'band 0.1 (edge)': 'band'}
        >>> reference_tags(["delta", "delta every 5"])
        {'delta': 'delta', 'delta every 5': 'delta_every_5'}
    """
    first = [name.split(" ")[0].lower() for name in names]
    tags: dict[str, str] = {}
    for name, short in zip(names, first, strict=True):
        tag = short if first.count(short) == 1 else (
            re.sub(r"[^0-9a-z.]+", "_", name.lower()).strip("_") or "baseline")
        unique, k = tag, 2
        while unique in tags.values():
            unique, k = f"{tag}_{k}", k + 1
        tags[name] = unique
    return tags


def _due(now: int, last: int, freq: int) -> bool:
    """Whether ``now`` is at or past the first multiple of ``freq`` after ``last``."""
    return now // freq > last // freq


class HedgingEvalCallback(BaseCallback):
    """Score the agent on fixed validation paths every ``eval_freq`` env steps; keep the best.

    Args:
        config: the env config the agent is scored on (the run's case).
        baselines: hedgers scored once on the same paths for reference (e.g. delta, a band).
        make_hedger: builds the agent's hedger from the model and its normaliser.
        eval_freq: env steps (summed over paths) between evaluations (see the module docs).
        n_paths: validation paths.
        seed: seed of the validation paths (fixed: every evaluation sees the same paths).
        c: weight of the std in the objective.
        best_dir: where the best model (and normaliser) are saved.
    """

    def __init__(
        self, config: EnvConfig, baselines: Sequence[Hedger],
        make_hedger: Callable[[Any, ObsNormalizer | None], SB3Hedger], eval_freq: int,
        n_paths: int, seed: int, c: float, best_dir: Path,
    ) -> None:
        super().__init__()
        self.config, self.baselines, self.make_hedger = config, list(baselines), make_hedger
        self.eval_freq, self.n_paths, self.seed, self.c = eval_freq, n_paths, seed, c
        self.best_dir = best_dir
        self.best = float("inf")
        self.history: list[dict[str, float]] = []
        self._reference: dict[str, dict[str, float]] = {}
        self._last = 0

    def _on_training_start(self) -> None:
        self._reference = validation_scores(self.config, self.baselines, self.n_paths, self.seed,
                                            self.c)
        self._last = self.num_timesteps

    def _on_step(self) -> bool:
        if _due(self.num_timesteps, self._last, self.eval_freq):
            self._last = self.num_timesteps
            self.evaluate()
        return True

    def _on_training_end(self) -> None:
        self.evaluate()

    def evaluate(self) -> dict[str, float]:
        """Score the current model, log the metrics and save it if it is the best so far."""
        hedger = self.make_hedger(self.model, ObsNormalizer.of(self.training_env))
        scores = validation_scores(self.config, [hedger], self.n_paths, self.seed, self.c)
        current = scores[hedger.name]
        for key, value in current.items():
            self.logger.record(f"hedge/{key}", value)
        tags = reference_tags(list(self._reference))
        for name, reference in self._reference.items():
            self.logger.record(f"hedge/objective_{tags[name]}", reference["objective"])
        self.logger.dump(self.num_timesteps)
        self.history.append({"timesteps": float(self.num_timesteps), **current})
        if current["objective"] < self.best:
            self.best = current["objective"]
            save_agent(self.model, self.training_env, self.best_dir)
        return current

    def state(self) -> dict[str, Any]:
        """The best objective and the history so far (saved with each checkpoint)."""
        return {"best": self.best, "history": self.history}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint's :meth:`state` (a resumed run keeps its best model)."""
        self.best = float(state["best"])
        self.history = [dict(entry) for entry in state["history"]]


def save_agent(model: Any, venv: Any, folder: Path) -> Path:
    """Save the model (``model.zip``) and its normaliser (``vecnormalize.pkl``) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.zip")
    if isinstance(venv, VecNormalize):
        venv.save(str(folder / "vecnormalize.pkl"))
    return folder


class CheckpointCallback(BaseCallback):
    """Save model, normaliser, replay buffer and step count every ``save_freq`` env steps.

    Checkpoints go to ``folder/step_<n>/``; ``folder/latest.json`` names the newest, which is
    what :func:`latest_checkpoint` returns for a resume. With ``evaluation`` each checkpoint
    also holds its best objective and history (:data:`EVALUATION`). An off-policy agent's
    replay buffer (about 100 MB) is kept in the newest checkpoint only.
    """

    def __init__(
        self, folder: Path, save_freq: int, algo: str,
        evaluation: HedgingEvalCallback | None = None,
    ) -> None:
        super().__init__()
        self.folder, self.save_freq, self.algo = folder, save_freq, algo
        self.evaluation = evaluation
        self._last = 0

    def _on_training_start(self) -> None:
        self._last = self.num_timesteps

    def _on_step(self) -> bool:
        if _due(self.num_timesteps, self._last, self.save_freq):
            self._last = self.num_timesteps
            self.save()
        return True

    def save(self) -> Path:
        """Write a checkpoint now."""
        folder = self.folder / f"step_{self.num_timesteps}"
        target = save_agent(self.model, self.training_env, folder)
        if self.evaluation is not None:
            (target / EVALUATION).write_text(json.dumps(self.evaluation.state()))
        if self.algo in OFF_POLICY:
            assert isinstance(self.model, OffPolicyAlgorithm)  # SAC, TD3, DDPG and TQC all are
            self.model.save_replay_buffer(target / "replay_buffer.pkl")
        (self.folder / LATEST).write_text(json.dumps({"path": target.name,
                                                      "timesteps": self.num_timesteps}))
        for older in self.folder.glob("step_*/replay_buffer.pkl"):
            if older.parent != target:
                older.unlink()
        return target


def latest_checkpoint(folder: Path) -> tuple[Path, int] | None:
    """The newest checkpoint in ``folder`` and its step count, or None."""
    pointer = folder / LATEST
    if not pointer.is_file():
        return None
    data = json.loads(pointer.read_text())
    return folder / data["path"], int(data["timesteps"])
