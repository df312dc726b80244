"""stable-baselines3 callbacks: hedging metrics on a fixed validation set, and checkpoints.

:class:`HedgingEvalCallback` scores the agent like the arena scores any hedger (the same env,
the same accounting, fixed validation paths) every ``eval_freq`` env steps, logs the hedging
metrics next to SB3's losses (``hedge/objective``, ``hedge/mean_cost``, ``hedge/std_cost``,
``hedge/turnover`` and the delta and band baselines' objectives on the same paths) and keeps the
best model. :class:`CheckpointCallback` saves everything a resumed run needs.

Both count their intervals in env steps summed over the paths (SB3's ``num_timesteps``, which
grows by ``n_envs`` per call), not in calls as SB3's own ``EvalCallback`` does (whose
``eval_freq`` one divides by ``n_envs``). They act at the first chance at or past each multiple
of the interval, so an interval that is not a multiple of ``n_envs`` does not drift: over
``N`` env steps there are ``N // eval_freq`` evaluations (fewer for an on-policy agent when
the interval is shorter than a rollout).

They act where the model has learnt from every step counted (:class:`PeriodicCallback`): an
on-policy agent (PPO, RecurrentPPO), whose weights change only between rollouts, at the start
of a rollout, right after its update (a checkpoint taken inside a rollout would count steps a
resume loses); an off-policy agent after an env step (a checkpoint then counts the steps
whose transitions are in the replay buffer: stable-baselines3 stores a step's after its
callbacks). Their files are written whole or not at all
(:func:`~hedgearena.agents.saved.replace_folder`): an interrupted write leaves the previous
checkpoint and best model as they were.
"""

from __future__ import annotations

import copy
import json
import math
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import VecNormalize

from hedgearena.agents.saved import read_json, replace_folder, required_file, write_json
from hedgearena.agents.sb3 import OFF_POLICY, ObsNormalizer, SB3Hedger
from hedgearena.baselines import metrics
from hedgearena.baselines.arena import run_arena
from hedgearena.baselines.hedger import Hedger
from hedgearena.envs.config import EnvConfig

LATEST = "latest.json"
"""The file in a checkpoint folder naming the newest checkpoint and its step count."""
EVALUATION = "evaluation.json"
"""The file in a checkpoint holding the validation's best objective and history so far."""
BEST = "best"
"""The folder in a checkpoint holding a copy of the best model so far."""


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


def learns_by_rollouts(model: Any) -> bool:
    """Whether ``model`` is on-policy (PPO, RecurrentPPO): its weights change between rollouts."""
    return isinstance(model, OnPolicyAlgorithm)


def _budget(model: Any) -> float:
    """The env steps the model's current ``learn()`` runs to (unknown: infinity)."""
    return float(getattr(model, "_total_timesteps", 0) or math.inf)


class PeriodicCallback(BaseCallback):
    """Act (:meth:`act`) every ``freq`` env steps, where the model has learnt from them all.

    An on-policy model acts at the start of a rollout, right after the update on the previous
    one (``num_timesteps`` are then the steps its weights learnt from); an off-policy model
    after an env step but the budget's last, which the end of training covers (after the final
    update). Either way, no two actions fall on one step.
    """

    def __init__(self, freq: int) -> None:
        super().__init__()
        self.freq = freq
        self._last = 0

    def _on_training_start(self) -> None:
        self._last = self.num_timesteps

    def _on_rollout_start(self) -> None:
        self.num_timesteps = self.model.num_timesteps  # SB3 updates it in on_step only
        if learns_by_rollouts(self.model):
            self._act_if_due()

    def _on_step(self) -> bool:
        if not learns_by_rollouts(self.model) and self.num_timesteps < _budget(self.model):
            self._act_if_due()
        return True

    def _act_if_due(self) -> None:
        if _due(self.num_timesteps, self._last, self.freq):
            self._last = self.num_timesteps
            self.act()

    def act(self) -> None:
        """What the callback does every ``freq`` env steps."""
        raise NotImplementedError


class UpdateLogCallback(BaseCallback):
    """Write an on-policy model's ``train/*`` logs at the env step of the update that made them.

    SB3 records them in ``train()``, after a rollout, and writes them with the next rollout's
    logs (or whenever a callback dumps the logger): on TensorBoard's x-axis a rollout late, the
    learning rate beside a step it was not used at. Written at the next rollout's start, they
    sit at the steps the update learnt from, as the evaluations of its weights do.
    """

    def _on_rollout_start(self) -> None:
        if learns_by_rollouts(self.model) and self.logger.name_to_value:
            self.logger.dump(self.model.num_timesteps)

    def _on_step(self) -> bool:
        return True


class HedgingEvalCallback(PeriodicCallback):
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
        super().__init__(eval_freq)
        self.config, self.baselines, self.make_hedger = config, list(baselines), make_hedger
        self.eval_freq, self.n_paths, self.seed, self.c = eval_freq, n_paths, seed, c
        self.best_dir = best_dir
        self.best = float("inf")
        self.history: list[dict[str, float]] = []
        self._reference: dict[str, dict[str, float]] = {}

    def _on_training_start(self) -> None:
        self._reference = validation_scores(self.config, self.baselines, self.n_paths, self.seed,
                                            self.c)
        super()._on_training_start()
        # A resumed off-policy run's checkpoint counts the steps its replay buffer holds, one
        # env step behind the evaluation taken beside it (whose score, and best model, the
        # checkpoint holds): that step is not evaluated again (twice in the history and on
        # TensorBoard's axis).
        self._last = max(self._last, self._evaluated())

    def _evaluated(self) -> int:
        """The env steps of the last evaluation in the history (0 without one)."""
        return int(self.history[-1]["timesteps"]) if self.history else 0

    def act(self) -> None:
        """Evaluate (every ``eval_freq`` env steps)."""
        self.evaluate()

    def _on_training_end(self) -> None:
        if self.num_timesteps > self._evaluated():  # not the step evaluated before a resume
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

    def restore(self, checkpoint: Path) -> None:
        """Continue from a checkpoint: its :meth:`state` and its copy of the best model.

        ``best_dir`` becomes the checkpoint's best model: one saved after the checkpoint by
        a run that then crashed belongs to a branch of training the resume does not take,
        its objective to no history. A checkpoint without a copy (written before copies
        were kept, or before any evaluation) leaves ``best_dir`` as it is. The resumed run
        does not evaluate again a step its history holds (an off-policy checkpoint is one env
        step behind the evaluation taken beside it), so each step is one point on TensorBoard.
        """
        state = read_json(checkpoint / EVALUATION, "checkpoint evaluation", ("best", "history"))
        self.best = float(state["best"])
        self.history = [dict(entry) for entry in state["history"]]
        copy = checkpoint / BEST
        if (copy / "model.zip").is_file():
            replace_folder(self.best_dir,
                           lambda folder: shutil.copytree(copy, folder, dirs_exist_ok=True))


def save_agent(model: Any, venv: Any, folder: Path) -> Path:
    """Save the model (``model.zip``) and its normaliser (``vecnormalize.pkl``) as ``folder``.

    The folder is replaced whole (:func:`~hedgearena.agents.saved.replace_folder`).
    """
    return replace_folder(folder, lambda partial: write_agent(model, venv, partial))


def write_agent(model: Any, venv: Any, folder: Path) -> None:
    """Write ``model.zip`` and (a VecNormalize's) ``vecnormalize.pkl`` into ``folder``, in place."""
    model.save(folder / "model.zip")
    if isinstance(venv, VecNormalize):
        venv.save(str(folder / "vecnormalize.pkl"))


class CheckpointCallback(PeriodicCallback):
    """Save model, normaliser, replay buffer and step count every ``save_freq`` env steps.

    Checkpoints go to ``folder/step_<n>/``; ``folder/latest.json`` names the newest, which is
    what :func:`latest_checkpoint` returns for a resume. With ``evaluation`` each checkpoint
    also holds its best objective and history (:data:`EVALUATION`) and a copy of the best
    model so far (``best/``: a resume continues from the checkpoint's best, not from one a
    crashed run saved after it). An off-policy agent's replay buffer (about 100 MB) and the
    best model's copy are kept in the newest checkpoint only. A checkpoint is written whole
    before ``latest.json`` names it, and ``latest.json`` is replaced whole.

    An off-policy agent's checkpoint counts the env steps whose transitions its replay buffer
    holds (:meth:`_stored_steps`): stable-baselines3 counts a step before the step's callbacks
    and stores its transitions after them, so a checkpoint taken there is of the step before,
    whose updates (and target networks) the weights have had; a resume collects the step again
    and continues where the uninterrupted run stood.
    """

    def __init__(
        self, folder: Path, save_freq: int, algo: str,
        evaluation: HedgingEvalCallback | None = None,
    ) -> None:
        super().__init__(save_freq)
        self.folder, self.save_freq, self.algo = folder, save_freq, algo
        self.evaluation = evaluation
        self._rollout_start: int | None = None
        self._before_update: tuple[int, dict[str, Any], dict[str, Any]] | None = None
        self._buffer_start: int | None = None  # the replay buffer's position at rollout start

    def _on_rollout_start(self) -> None:
        self._rollout_start = self.model.num_timesteps
        self._before_update = None
        if isinstance(self.model, OffPolicyAlgorithm) and self.model.replay_buffer is not None:
            self._buffer_start = int(self.model.replay_buffer.pos)
        super()._on_rollout_start()

    def _stored_steps(self) -> int:
        """The env steps whose transitions are in the replay buffer (an off-policy model's).

        All steps up to the rollout's start, and the rollout's steps stored since: the buffer's
        position has moved by one row per step of ``n_envs`` transitions (modulo its size).
        """
        model, start = self.model, self._rollout_start
        buffer = getattr(model, "replay_buffer", None)
        if start is None or self._buffer_start is None or buffer is None:
            return int(model.num_timesteps)
        rows = (int(buffer.pos) - self._buffer_start) % int(buffer.buffer_size)
        return min(int(model.num_timesteps), start + rows * self.training_env.num_envs)

    def _on_rollout_end(self) -> None:
        # The update on this rollout comes next (PPO's train(), which counts its epochs in
        # _n_updates): keep the weights it starts from, so that a Ctrl-C inside it saves
        # them with the steps they learnt from.
        if learns_by_rollouts(self.model):
            policy = self.model.policy
            self._before_update = (int(self.model._n_updates),
                                   copy.deepcopy(policy.state_dict()),
                                   copy.deepcopy(policy.optimizer.state_dict()))

    def act(self) -> None:
        """Save (every ``save_freq`` env steps)."""
        self.save()

    def save_interrupted(self) -> Path:
        """Write a checkpoint when training is interrupted (Ctrl-C).

        An on-policy model stopped inside a rollout has not learnt from the rollout's steps,
        which a resume cannot recover: its checkpoint counts the steps up to the rollout's
        start (its weights are still those of then), so that a resume trains them again
        instead of skipping them. Stopped inside the update that follows a rollout (PPO's
        epochs, most of its time with small minibatches), the weights have learnt from part of
        it: the checkpoint holds the weights (and optimizer state) the update started from,
        again with the steps up to the rollout's start.

        An off-policy model stopped after stable-baselines3 counted an env step but before it
        stored the step's transitions (in the step's callbacks: a validation) is saved with
        the steps its replay buffer holds (:meth:`save`), one env step fewer.
        """
        if learns_by_rollouts(self.model) and self._rollout_start is not None:
            update = self._before_update
            if update is None:  # inside the rollout
                self.model.num_timesteps = self._rollout_start
            elif self.model._n_updates - update[0] < getattr(self.model, "n_epochs", 1):
                # inside its update
                self.model.policy.load_state_dict(update[1])
                self.model.policy.optimizer.load_state_dict(update[2])
                self.model.num_timesteps = self._rollout_start
            # else its epochs are done (a Ctrl-C in the next rollout start's validation; an
            # update stopped early by target_kl is rolled back and done again on the resume)
        return self.save()

    def save(self) -> Path:
        """Write a checkpoint now, of ``model.num_timesteps`` env steps.

        An off-policy model's is of the steps whose transitions are stored
        (:meth:`_stored_steps`).
        """
        counted = int(self.model.num_timesteps)
        steps = self.num_timesteps = (
            counted if learns_by_rollouts(self.model) else self._stored_steps())
        self.model.num_timesteps = steps  # what model.zip records
        try:
            target = replace_folder(self.folder / f"step_{steps}", self._write)
        finally:
            self.model.num_timesteps = counted
        write_json(self.folder / LATEST, {"path": target.name, "timesteps": steps})
        for older in self.folder.glob("step_*"):
            if older != target:
                (older / "replay_buffer.pkl").unlink(missing_ok=True)
                shutil.rmtree(older / BEST, ignore_errors=True)
        return target

    def _write(self, folder: Path) -> None:
        write_agent(self.model, self.training_env, folder)
        if self.evaluation is not None:
            (folder / EVALUATION).write_text(json.dumps(self.evaluation.state()))
            if (self.evaluation.best_dir / "model.zip").is_file():
                shutil.copytree(self.evaluation.best_dir, folder / BEST)
        if self.algo in OFF_POLICY:
            assert isinstance(self.model, OffPolicyAlgorithm)  # SAC, TD3, DDPG and TQC all are
            self.model.save_replay_buffer(folder / "replay_buffer.pkl")


def latest_checkpoint(folder: Path) -> tuple[Path, int] | None:
    """The newest checkpoint in ``folder`` and its step count, or None.

    Raises:
        ValueError: ``latest.json`` is unreadable.
        FileNotFoundError: the checkpoint it names has no model (naming the file).
    """
    pointer = folder / LATEST
    if not pointer.is_file():
        return None
    data = read_json(pointer, "checkpoint pointer", ("path", "timesteps"))
    checkpoint = folder / str(data["path"])
    required_file(checkpoint / "model.zip", "checkpoint model")
    return checkpoint, int(data["timesteps"])
