"""The CLI under bad input and interruptions: named errors before anything is written.

- A resumed run may not ask for a smaller training budget than its checkpoint has trained.
- Ctrl-C exits with 130 from every command and says what it left where (a sweep: which trials
  finished).
- Every check of a config runs before a run folder is written: a refused config leaves no
  folder behind.
- A sweep checks every combination of its values, not each value alone.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from cli_refusal import refused as _refused

import hedgearena.training  # noqa: F401  (imported before any test patches what it imports)
from hedgearena.cli import main
from hedgearena.run_config import RunConfig, load_config

TINY_ARENA = ["--set", "arena.paths=256", "--set", "arena.tune_paths=128",
              "--set", "arena.hedgers=[delta,no_hedge]", "--set", "arena.frontier=false",
              "--set", "arena.n_boot=10", "--no-progress"]
DH_TINY = {"steps": 4, "batch_size": 32, "n_train": 64, "n_valid": 32, "eval_every": 2,
           "checkpoint_every": 2, "hidden": [4]}


def _train(out: Path, params: dict[str, Any], *extra: str) -> list[str]:
    return ["train", "--out", str(out), "--set", f"agent.hyperparams={json.dumps(params)}",
            *TINY_ARENA, *extra]


# ------------------------------------------------------------------ 1. budgets below progress
def test_a_deep_hedging_resume_with_fewer_steps_than_its_checkpoint_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(_train(tmp_path, DH_TINY))
    run = tmp_path / "deep_hedging-ShortCall-seed0"
    saved = (run / "config.yaml").read_text()
    err = _refused(_train(tmp_path, {**DH_TINY, "steps": 2}), capsys)
    assert "holds a checkpoint at 4 gradient steps" in err
    assert "the requested budget agent.hyperparams.steps is 2" in err
    assert "agent.hyperparams.steps >= 4" in err
    assert (run / "config.yaml").read_text() == saved  # the folder is left as it was
    main(_train(tmp_path, DH_TINY))  # the same budget again is fine (nothing to train)
    assert json.loads((run / "training.json").read_text())["steps"] == 4


def _sb3_folder(run_dir: Path, n_timesteps: int, progress: int,
                learner: str = "agent") -> RunConfig:
    """A run folder as an SB3 (or RLlib) run leaves it: config, zoo record, checkpoint pointer."""
    section = ({"rllib": {"n_timesteps": n_timesteps}} if learner == "rllib" else
               {"agent": {"algo": "ppo", "hyperparams": {"n_timesteps": n_timesteps}}})
    config = RunConfig.model_validate({**section, "out": str(run_dir.parent),
                                       "name": run_dir.name})
    config.dump(run_dir / "config.yaml")
    if learner == "agent":  # the resolved zoo hyperparameters it started with
        from hedgearena.agents.training import HYPERPARAMS_FILE, resolved_hyperparams
        from hedgearena.yaml_io import dump_yaml

        (run_dir / HYPERPARAMS_FILE).write_text(dump_yaml(resolved_hyperparams(config)))
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "latest.json").write_text(
        json.dumps({"path": f"step_{progress}", "timesteps": progress}))
    return config


def _with_budget(config: RunConfig, n_timesteps: int, learner: str = "agent") -> RunConfig:
    section = getattr(config, learner)
    update = ({"n_timesteps": n_timesteps} if learner == "rllib" else
              {"hyperparams": {**section.hyperparams, "n_timesteps": n_timesteps}})
    return config.model_copy(update={learner: section.model_copy(update=update)})


@pytest.mark.parametrize("learner", ["agent", "rllib"])
def test_an_sb3_or_rllib_resume_below_its_checkpoints_env_steps_is_refused(
    learner: str, tmp_path: Path
) -> None:
    from hedgearena.training import check_resumable

    run = tmp_path / "run"
    config = _sb3_folder(run, 512, 384, learner)
    name = "rllib.n_timesteps" if learner == "rllib" else "n_timesteps"
    with pytest.raises(ValueError, match=rf"checkpoint at 384 env steps, but the requested "
                                         rf"budget {name} is 256"):
        check_resumable(_with_budget(config, 256, learner), run, learner)
    check_resumable(_with_budget(config, 384, learner), run, learner)  # from where it is
    check_resumable(_with_budget(config, 1024, learner), run, learner)  # longer


def test_the_runs_own_budget_is_accepted_when_whole_rollouts_went_past_it(tmp_path: Path) -> None:
    """PPO with 128-step rollouts trains 256 steps for a budget of 200: the same command again
    changes nothing (and is not refused); a budget lowered below 256 is."""
    from hedgearena.training import check_resumable

    run = tmp_path / "run"
    config = _sb3_folder(run, 200, 256)
    check_resumable(config, run)
    with pytest.raises(ValueError, match="checkpoint at 256 env steps"):
        check_resumable(_with_budget(config, 150), run)


def test_a_corrupt_record_of_a_run_is_named_not_a_traceback(tmp_path: Path) -> None:
    from hedgearena.training import check_resumable

    run = tmp_path / "run"
    config = _sb3_folder(run, 512, 384)
    (run / "hyperparams.yaml").write_text("n_steps: 8\nn_steps: 16\n")
    with pytest.raises(ValueError, match=r"(?s)hyperparams.yaml is not valid YAML .*'n_steps'"):
        check_resumable(config, run)


# -------------------------------------------------------------------------------- 2. Ctrl-C
def test_an_interrupted_deep_hedging_run_exits_130_and_resumes_from_its_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hedgearena.agents.deep_hedging import DeepHedgingTrainer

    original = DeepHedgingTrainer._gradient_step

    def press_ctrl_c_at_step_3(self: DeepHedgingTrainer) -> float:
        if self.step == 3:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(DeepHedgingTrainer, "_gradient_step", press_ctrl_c_at_step_3)
    with pytest.raises(SystemExit) as stopped:
        main(_train(tmp_path, DH_TINY))
    assert stopped.value.code == 130
    run = tmp_path / "deep_hedging-ShortCall-seed0"
    err = capsys.readouterr().err
    assert f"the run folder {run}/ keeps its last checkpoint" in err
    assert (run / "config.yaml").is_file()
    assert (run / "checkpoints" / "last.pt").is_file()
    assert not (run / "training.json").exists()  # training did not finish
    monkeypatch.setattr(DeepHedgingTrainer, "_gradient_step", original)
    main(_train(tmp_path, DH_TINY))
    info = json.loads((run / "training.json").read_text())
    assert info["steps"] == 4
    assert [entry["step"] for entry in info["history"]] == [2.0, 4.0]  # resumed at 3


@pytest.mark.parametrize(("command", "target", "folder"), [
    (["benchmark"], "hedgearena.baselines.benchmark.benchmark", "benchmark-ShortCall-v0-seed2024"),
    (["stress", "--scenarios", "base"], "hedgearena.baselines.stress.stress_test",
     "stress-ShortCall-seed2024"),
    (["train"], "hedgearena.training.train_and_score", "deep_hedging-ShortCall-seed0"),
])
def test_every_command_exits_130_on_ctrl_c_naming_what_it_left(
    command: list[str], target: str, folder: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(target, interrupted)
    with pytest.raises(SystemExit) as stopped:
        main([*command, "--out", str(tmp_path), "--no-progress"])
    assert stopped.value.code == 130
    err = capsys.readouterr().err
    assert f"train.py {command[0]}: interrupted" in err
    assert str(tmp_path / folder) in err


def test_an_interrupted_evaluation_exits_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    RunConfig().dump(tmp_path / "config.yaml")

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("hedgearena.training.evaluate_run", interrupted)
    with pytest.raises(SystemExit) as stopped:
        main(["evaluate", str(tmp_path), "--no-progress"])
    assert stopped.value.code == 130
    assert f"the report in {tmp_path / 'evaluation'}/ may be incomplete" in capsys.readouterr().err


def test_an_interrupted_sweep_exits_130_naming_the_finished_trials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tune catches Ctrl-C and returns as if the sweep had ended: the command exited 1."""
    from hedgearena import sweep

    folder = tmp_path / "sweep"
    folder.mkdir()
    (folder / "results.md").write_text("| trial |\n")
    table = pd.DataFrame({"trial": ["a1", "b2", "c3"], "status": ["ok", "ok", "unfinished"]})

    def stopped_sweep(config: RunConfig, **kwargs: Any) -> sweep.SweepResult:
        return sweep.SweepResult(folder, table, {"md": folder / "results.md"}, interrupted=True)

    monkeypatch.setattr(sweep, "run_sweep", stopped_sweep)
    with pytest.raises(SystemExit) as stopped:
        main(["sweep", "--out", str(tmp_path), "--set", "sweep.space={seed: [1, 2, 3]}",
              "--no-progress"])
    assert stopped.value.code == 130
    out = " ".join(capsys.readouterr().out.split())
    assert "interrupted: 2 of 3 trial(s) finished (a1, b2)" in out
    assert f"{folder / 'trials'}/" in out
    assert "--resume" in out


def test_a_ctrl_c_that_tune_caught_is_told_apart_from_a_finished_run() -> None:
    """Tune's own SIGINT handler (the one ``fit()`` installs) swallows the first Ctrl-C."""
    pytest.importorskip("ray.tune")
    from ray.tune.tune import _setup_signal_catching

    from hedgearena.sweep import interruption

    before = signal.getsignal(signal.SIGINT)
    with interruption() as interrupted:
        _setup_signal_catching()  # as Tune's fit() does; the run ends normally
    assert not interrupted()
    assert signal.getsignal(signal.SIGINT) is before
    with interruption() as interrupted:
        event = _setup_signal_catching()
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C during the run
        assert event.wait(5)
    assert interrupted()
    assert signal.getsignal(signal.SIGINT) is before


# ------------------------------------------------------- 3. checks before anything is written
@pytest.mark.parametrize(("args", "message"), [
    (["--set", "agent.hyperparams={activation: sigmoid, steps: 2}"],
     "activation must be one of"),
    (["--set", "env.kwargs={permanent_impact: 0.01}"], "permanent_impact=0.01 is not supported"),
    (["--set", "agent.hyperparams={hidden: [0]}"], "hidden"),
    (["--agent", "ppo", "--set", "agent.hyperparams={seed: 1, n_timesteps: 64}"],
     "top-level `seed`"),
    (["--agent", "ppo", "--set", "agent.hyperparams={policy_kwargs: 'dict(net_arch=['}"],
     "policy_kwargs"),
    (["--agent", "sac", "--set", "agent.hyperparams={noise_type: gaussian}"],
     "noise_type must be one of"),
    (["--agent", "ppo", "--set", "agent.hyperparams={normalize: 3}"], "normalize must be"),
    (["--agent", "ppo", "--set", "agent.hyperparams={policy: CnnLstmPolicy}"],
     "policy must be one of"),
    (["--agent", "ppo", "--set", "agent.env_kwargs={action_mode: sideways}"], "sideways"),
    (["--set", "arena.split=2010-01-01"], "split (2010-01-01) cuts a dated market's history"),
    (["--env", "hedgearena/HistoricalReplay-v0", "--set", "arena.split=2018-12-28"],
     "the history from it cannot hold an episode of 21 steps"),
    # two specs of one hedger: the arena refused them after training, leaving a run unscored
    (["--hedgers", "delta", "delta:1"],
     "arena.hedgers: 'delta:1' is the same hedger as 'delta' ('delta'): give each hedger once"),
    (["--set", "arena.hedgers=[delta, ww:best, no_hedge, ww:best]"],
     "'ww:best' is the same hedger as 'ww:best'"),
    # YAML 1.2 reads yes as a string, which pydantic's lax mode took for true
    (["--set", "arena.frontier=yes"], "arena.frontier: Value error, must be true or false"),
])
def test_a_refused_train_config_leaves_no_run_folder(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs"
    err = _refused(["train", "--out", str(out), *args, "--no-progress"], capsys)
    assert message in err
    assert not out.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "rllib.hyperparams={learning_rate_typo: 0.1}"],
     "unknown rllib.hyperparams ['learning_rate_typo']"),
    (["--num-cpus", "1", "--set", "rllib.num_env_runners=2"],
     "rllib.num_env_runners needs 2 CPUs at once, but the local Ray instance has 1"),
    (["--set", "rllib.hyperparams={minibatch_size: 100000, train_batch_size_per_learner: 1000}"],
     "RLlib refuses them: `minibatch_size` (100000) must be <="),
    (["--set", "rllib.env_kwargs={action_mode: sideways}"], "sideways"),
    (["--set", "arena.split=2010-01-01"], "split (2010-01-01) cuts a dated market's history"),
])
def test_a_refused_rllib_config_leaves_no_run_folder(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("ray.rllib")
    out = tmp_path / "runs"
    err = _refused(["rllib", "--out", str(out), *args, "--no-progress"], capsys)
    assert message in err
    assert not out.exists()


@pytest.mark.parametrize("command", [["benchmark"], ["train"], ["stress", "--scenarios", "base"]])
def test_a_baseline_that_cannot_hedge_the_env_is_named_before_anything_is_written(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """delta_vega needs a hedging option: it failed when the arena scored it, after training."""
    out = tmp_path / "runs"
    key = "stress.hedgers" if command[0] == "stress" else "arena.hedgers"
    err = _refused([*command, "--out", str(out), "--set", f"{key}=[delta, delta_vega]",
                    "--no-progress"], capsys)
    assert f"{key}: 'delta_vega' cannot hedge this env: DeltaVega hedges with a listed" in err
    assert not out.exists()


def test_a_benchmark_with_one_hedger_twice_leaves_no_folder_and_names_the_two(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It left run_config.yaml behind, and the error listed every frontier member's name."""
    out = tmp_path / "runs"
    err = _refused(["benchmark", "--env", "hedgearena/PortfolioInsurance-v0", "--out", str(out),
                    "--hedgers", "delta", "cppi", "cppi:4", "--no-progress"], capsys)
    assert "'cppi:4' is the same hedger as 'cppi' ('CPPI 4')" in err
    assert not out.exists()


def test_a_sweep_needing_more_cpus_than_there_are_leaves_no_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("ray.tune")
    out = tmp_path / "runs"
    err = _refused(["sweep", "--out", str(out), "--num-cpus", "1", "--set",
                    "sweep.cpus_per_trial=2", "--set", "sweep.space={seed: [1, 2]}",
                    "--no-progress"], capsys)
    assert "sweep.cpus_per_trial needs 2 CPUs at once, but the local Ray instance has 1" in err
    assert not out.exists()


def test_a_refused_stress_leaves_no_report_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs"
    err = _refused(["stress", "--out", str(out), "--agent", str(tmp_path / "nowhere")], capsys)
    assert "not a run folder" in err
    err = _refused(["stress", "--out", str(out), "--env", "hedgearena/OptionBook-v0",
                    "--scenarios", "base", "vol_spike", "flash_crash_2010",
                    "--set", "stress.skip_inapplicable=false"], capsys)
    assert "these scenarios cannot stress the env: vol_spike:" in err
    assert "flash_crash_2010:" in err
    assert not out.exists()


# ------------------------------------------------------------------ 4. sweep combinations
def test_a_sweep_refuses_every_invalid_combination_at_once_before_it_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each value is valid alone (seed 5 with arena.seed 2024, arena.seed 5 with seed 0), two
    combinations are not: the deep hedger would train on the scoring paths."""
    out = tmp_path / "runs"
    space = "sweep.space={seed: [5, 6], arena.seed: [5, 6, 100]}"
    err = _refused(["sweep", "--out", str(out), "--set", space, "--no-progress"], capsys)
    assert "sweep.space: 2 of 6 combinations of values are invalid" in err
    assert "seed=5, arena.seed=5: the deep hedger's seed equals arena.seed (5)" in err
    assert "seed=6, arena.seed=6: the deep hedger's seed equals arena.seed (6)" in err
    assert "arena.seed=100" not in err
    assert not out.exists()


def test_a_sweep_checks_the_corners_of_its_ranges_together() -> None:
    from hedgearena.sweep import check_space, space_points

    config = load_config(None, [
        "agent.hyperparams={steps: 2}",
        "sweep.space={agent.hyperparams.batch_size: [32, 256], "
        "agent.hyperparams.n_train: {randint: [64, 1024]}}"])
    assert len(space_points(config.sweep)) == 4
    with pytest.raises(ValueError, match=r"1 of 4 combinations") as error:
        check_space(config)
    assert "n_train (64) must be >= batch_size (256)" in str(error.value)


# ------------------------------------------------------------------------- found in the audit
def test_a_key_given_twice_in_a_config_file_is_an_error_not_the_last_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "run.yml"
    path.write_text("env:\n  kwargs:\n    cost: 0.01\n    cost: 0.002\n")
    # arena.paths=0 is refused too, after the file is read: a regression fails at once (the
    # config then loads and is refused for its paths), rather than benchmarking or training
    err = _refused(["benchmark", "--config", str(path), "--set", "arena.paths=0",
                    "--out", str(tmp_path / "runs")], capsys)
    assert "is not valid YAML" in err
    assert "found the key 'cost' twice (first on line 3)" in err


def test_an_out_that_is_a_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "runs").write_text("")
    err = _refused(["benchmark", "--out", str(tmp_path / "runs")], capsys)
    assert "out" in err
    assert "is a file, not a folder" in err


def test_benchmark_refuses_two_different_seeds_for_its_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--seed`` and ``--arena-seed`` both set the benchmark's arena.seed: one was dropped."""
    err = _refused(["benchmark", "--out", str(tmp_path), "--seed", "1", "--arena-seed", "2"],
                   capsys)
    assert "--seed (1) and --arena-seed (2) both set the scoring paths' seed" in err
    assert not any(tmp_path.iterdir())
