"""Journey through what a training run leaves behind: TensorBoard scalars, training.json, resume.

An RL researcher reads a run's ``tb/`` beside its ``training.json``: every validation is one
point on TensorBoard's axis (env steps for SB3), the same numbers as the history, the best
objective the lowest of them, and a resumed run continues the axis. Each test names what the
old code did (the numbers in the docstrings are the old code's).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hedgearena.run_config import RunConfig

SAC_TINY = {"n_envs": 16, "learning_starts": 64, "batch_size": 32, "n_timesteps": 256,
            "buffer_size": 4096, "gradient_steps": 1}
"""A SAC run of 16 decisions of 16 paths (256 env steps)."""
PPO_TINY = {"n_envs": 16, "n_steps": 8, "batch_size": 64, "n_epochs": 1, "normalize": True,
            "n_timesteps": 256}
"""A PPO run of two rollouts of 8 steps x 16 paths (256 env steps)."""


def _config(tmp_path: Path, algo: str, hyperparams: dict[str, Any], name: str = "run",
            **agent: Any) -> RunConfig:
    return RunConfig.model_validate({
        "agent": {"algo": algo, "hyperparams": hyperparams, "eval_paths": 64, **agent},
        "arena": {"paths": 64, "hedgers": ["delta"]}, "out": str(tmp_path), "name": name})


def _scalars(folder: Path, tag: str) -> list[tuple[int, float]]:
    """``(step, value)`` of a TensorBoard tag over every event file under ``folder``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    points: list[tuple[float, int, float]] = []
    for events_file in sorted(folder.rglob("events.out.tfevents*")):
        events = EventAccumulator(str(events_file), size_guidance={"scalars": 0})
        events.Reload()
        if tag in events.Tags()["scalars"]:
            points += [(e.wall_time, e.step, e.value) for e in events.Scalars(tag)]
    return [(step, value) for _, step, value in sorted(points)]


def _sac_killed_at_160_steps(tmp_path: Path, train_until_killed: Callable[..., None]) -> Any:
    """Train SAC (evaluations every 64 steps, checkpoints every 128) until a crash at 160 env
    steps (the 10th decision of 16 paths); its config."""
    config = _config(tmp_path, "sac", SAC_TINY, eval_freq=64, checkpoint_freq=128)
    train_until_killed(config, 10)
    return config



@pytest.mark.usefixtures("torch_one_thread")
def test_an_off_policy_resume_after_a_crash_evaluates_each_step_once(
    tmp_path: Path, train_until_killed: Callable[..., None]
) -> None:
    """A SAC run validated every 64 env steps and checkpointed every 128 crashes at 160 steps;
    started again, it resumes from ``step_112`` (the steps its replay buffer held when the
    evaluation at 128 was taken beside it, README "Training and scoring").

    Before: the resume evaluated step 128 again: training.json's history read 64, 128, 128,
    192, 256 and TensorBoard held two hedge/objective points at step 128.
    """
    from hedgearena.training import train_run

    config = _sac_killed_at_160_steps(tmp_path, train_until_killed)
    run = tmp_path / "run"
    assert json.loads((run / "checkpoints" / "latest.json").read_text())["timesteps"] == 112
    _, info = train_run(config, False)
    assert info["resumed_from"] == 112
    history = [int(entry["timesteps"]) for entry in info["history"]]
    assert history == [64, 128, 192, 256]
    points = _scalars(run / "tb", "hedge/objective")
    assert [step for step, _ in points] == history
    assert [value for _, value in points] == pytest.approx(
        [entry["objective"] for entry in info["history"]], rel=1e-6)  # float32 on TensorBoard
    assert info["best_objective"] == min(entry["objective"] for entry in info["history"])


@pytest.mark.usefixtures("torch_one_thread")
def test_an_off_policy_resume_ending_on_its_last_evaluation_does_not_score_it_again(
    tmp_path: Path, train_until_killed: Callable[..., None]
) -> None:
    """The same crash, resumed with a budget of 128 steps: the run ends on the step already
    evaluated beside its checkpoint.

    Before: the end of training evaluated step 128 a second time (history 64, 128, 128).
    """
    from hedgearena.training import train_run

    _sac_killed_at_160_steps(tmp_path, train_until_killed)
    shorter = _config(tmp_path, "sac", {**SAC_TINY, "n_timesteps": 128}, eval_freq=64,
                      checkpoint_freq=128)
    _, info = train_run(shorter, False)
    assert info["timesteps"] == 128
    assert [int(entry["timesteps"]) for entry in info["history"]] == [64, 128]
    assert [step for step, _ in _scalars(tmp_path / "run" / "tb", "hedge/objective")] == [64, 128]


@pytest.mark.usefixtures("torch_one_thread")
def test_sb3_scalars_are_the_history_and_a_seed_repeats_them(tmp_path: Path) -> None:
    """Two PPO runs of one seed: every hedge/* scalar the module docs promise, at env steps
    128 and 256 (strictly increasing, finite), equal to training.json's history at the same
    step; the best objective their lowest; the two runs' scalars and reports identical."""
    from hedgearena.training import train_run

    tags = ("hedge/objective", "hedge/mean_cost", "hedge/std_cost", "hedge/turnover",
            "hedge/objective_delta", "hedge/objective_band")
    runs = []
    for name in ("a", "b"):
        _, info = train_run(_config(tmp_path, "ppo", PPO_TINY, name=name), False)
        runs.append({tag: _scalars(tmp_path / name / "tb", tag) for tag in tags})
        history = info["history"]
        assert [int(entry["timesteps"]) for entry in history] == [128, 256]
        for tag in tags[:4]:
            key = tag.removeprefix("hedge/")
            assert [step for step, _ in runs[-1][tag]] == [128, 256]
            assert [v for _, v in runs[-1][tag]] == pytest.approx(
                [entry[key] for entry in history], rel=1e-6)
        assert all(math.isfinite(v) for points in runs[-1].values() for _, v in points)
        assert info["best_objective"] == min(entry["objective"] for entry in history)
        saved = json.loads((tmp_path / name / "training.json").read_text())
        assert saved["best_objective"] == info["best_objective"]
        assert (tmp_path / name / "config.yaml").is_file()
    assert runs[0] == runs[1]
    first, second = ({key: value for key, value in json.loads(
        (tmp_path / name / "training.json").read_text()).items() if key != "seconds"}
        for name in ("a", "b"))
    assert first == second


@pytest.mark.usefixtures("torch_one_thread")
def test_a_moved_run_folder_resumes_its_tensorboard_logs_in_place(tmp_path: Path) -> None:
    """A PPO run of 256 steps, its folder moved, resumed to 384 steps: the resumed session's
    evaluation (at 384) belongs in the moved folder's ``tb/``.

    Now: it is written into the old folder's ``tb/`` (recreated when it was deleted); the
    moved folder's TensorBoard ends at 256 while its training.json goes on to 384.
    """
    from hedgearena.training import train_run

    train_run(_config(tmp_path / "old", "ppo", PPO_TINY), False)
    shutil.move(tmp_path / "old" / "run", tmp_path / "run")
    _, info = train_run(_config(tmp_path, "ppo", {**PPO_TINY, "n_timesteps": 384}), False)
    assert info["resumed_from"] == 256
    steps = [step for step, _ in _scalars(tmp_path / "run" / "tb", "hedge/objective")]
    assert steps == [128, 256, 384]


def test_the_deep_hedgers_learning_rate_is_logged_at_every_gradient_step(monkeypatch) -> None:
    """``train/learning_rate`` beside ``train/loss`` at every step (it was logged at the
    validations only, every ``eval_every`` steps, which hid a resumed run's jump when a longer
    budget re-stretches the cosine decay): the rate of gradient step k at x = k."""
    from hedgearena.agents import deep_hedging
    from hedgearena.agents.deep_hedging import DeepHedgingTrainer, TrainerConfig
    from hedgearena.envs.config import make_config

    logged: dict[str, list[tuple[int, float]]] = {}

    class Writer:
        def add_scalar(self, tag: str, value: float, step: int) -> None:
            logged.setdefault(tag, []).append((int(step), float(value)))

        def close(self) -> None:
            pass

    monkeypatch.setattr(deep_hedging, "_summary_writer", lambda log_dir: Writer())
    config = TrainerConfig(steps=4, batch_size=32, n_train=64, n_valid=64, eval_every=2,
                           learning_rate=1e-2, final_learning_rate=1e-3, seed=1)
    trainer = DeepHedgingTrainer(make_config("ShortCall"), config=config, progress=False,
                                 hidden=(4,), log_dir="unused")
    trainer.train()
    rates = logged["train/learning_rate"]
    assert [x for x, _ in rates] == [x for x, _ in logged["train/loss"]] == [1, 2, 3, 4]
    assert [x for x, _ in logged["valid/objective"]] == [2, 4]
    # cosine from 1e-2 to 1e-3 over 4 steps, at steps 0..3 (the schedule's own formula)
    expected = [1e-3 + 0.5 * (1e-2 - 1e-3) * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    assert [v for _, v in rates] == pytest.approx(expected, rel=1e-12)
