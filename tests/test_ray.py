"""Scaling out with Ray: sweeps on Tune, RLlib PPO on the native vector env, the missing extra.

The Ray tests share one local Ray instance with 2 CPUs (a module fixture) and run the real
entry point on tiny budgets; they are skipped when the ``ray`` extra is not installed.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hedgearena.cli import main
from hedgearena.run_config import load_config

DH_TINY = {"steps": 4, "batch_size": 64, "n_train": 128, "n_valid": 64, "eval_every": 2,
           "checkpoint_every": 2, "hidden": [8]}
TINY_ARENA = {"paths": 512, "tune_paths": 256, "hedgers": ["delta", "no_hedge"],
              "frontier": False, "n_boot": 20}


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    pytest.importorskip("optuna")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _write_config(folder: Path, sweep: dict, **extra) -> Path:
    document = {"agent": {"algo": "deep_hedging", "hyperparams": DH_TINY},
                "arena": TINY_ARENA, "out": str(folder / "runs"), "sweep": sweep, **extra}
    path = folder / "sweep.yml"
    path.write_text(yaml.safe_dump(document))
    return path


def _table(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "results.csv").set_index("trial")


GRID = {"space": {"seed": [0, 1], "env.kwargs.cost": {"grid": [0.001, 0.01]}},
        "max_failures": 0}


def test_a_sweep_of_four_trials_runs_on_two_cpus_and_gathers_its_table(ray_instance, tmp_path):
    config = _write_config(tmp_path, GRID)
    main(["sweep", "--config", str(config), "--no-progress"])
    folder = tmp_path / "runs" / "sweep-deep_hedging-ShortCall"
    for name in ("config.yaml", "results.csv", "results.json", "results.md", "summary.csv",
                 "summary.md", "sweep.png"):
        assert (folder / name).is_file(), name
    table = _table(folder)
    assert len(table) == 4
    assert (table["status"] == "ok").all()
    assert (table["attempts"] == 1).all()
    pairs = sorted(zip(table["seed"], table["env.kwargs.cost"], strict=True))
    assert pairs == [(0, 0.001), (0, 0.01), (1, 0.001), (1, 0.01)]
    assert table["objective"].is_monotonic_increasing  # sorted by the metric (min)
    for trial, row in table.iterrows():
        run = folder / "trials" / trial
        trial_config = load_config(run / "config.yaml")
        assert trial_config.seed == row["seed"]
        assert trial_config.env.kwargs == {"cost": row["env.kwargs.cost"]}
        scores = {r["hedger"]: r for r in
                  json.loads((run / "report" / "scores.json").read_text())["records"]}
        assert row["objective"] == pytest.approx(scores["deep hedging agent"]["objective"])
        assert row["delta_std_cost"] == pytest.approx(scores["delta"]["std_cost"])
        assert row["objective_vs_delta"] == pytest.approx(
            row["objective"] - row["delta_objective"])
    # delta does not depend on the agent's seed: one value per cost level
    assert table.groupby("env.kwargs.cost")["delta_objective"].nunique().eq(1).all()
    assert table.groupby("env.kwargs.cost")["objective"].mean().is_monotonic_increasing


def test_failed_trials_are_retried_then_reported_in_the_table(ray_instance, tmp_path):
    sweep = {"space": {"env.kwargs.cost": [0.001, -1.0]}, "max_failures": 1}
    from hedgearena.sweep import run_sweep

    config = load_config(_write_config(tmp_path, sweep))
    with pytest.raises(ValueError, match=r"sweep.space.env.kwargs.cost: the value -1.0 fails"):
        run_sweep(config, progress=False)  # checked before Ray starts
    result = run_sweep(config, progress=False, check_values=False)  # let it fail as a trial
    table = result.table.set_index("env.kwargs.cost")
    assert table.loc[0.001, "status"] == "ok"
    assert table.loc[-1.0, "status"] == "failed"
    assert table.loc[-1.0, "attempts"] == 2  # the first try and one retry
    assert "ProportionalCost.rate must be" in table.loc[-1.0, "error"]
    assert math.isnan(table.loc[-1.0, "objective"])
    assert "| failed | 2 |" in (result.folder / "results.md").read_text()
    logs = [path.read_text() for path in (result.folder / "trials").rglob("trial.log")]
    assert any("Traceback" in log and "ProportionalCost.rate must be" in log for log in logs)


def _interrupt_after(n: int, flag: Path):
    """A Tune callback that presses Ctrl-C once, when ``n`` trials have finished.

    The flag file keeps the copy that Tune restores with the sweep from pressing it again.
    """
    from ray import tune

    class InterruptAfter(tune.Callback):
        def __init__(self) -> None:
            self.done = 0

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            self.done += 1
            if self.done == n and not flag.exists():
                flag.write_text("interrupted")
                os.kill(os.getpid(), signal.SIGINT)

    return InterruptAfter()


def test_an_interrupted_sweep_resumes_without_running_finished_trials_again(ray_instance,
                                                                             tmp_path):
    from hedgearena.sweep import run_sweep

    config_file = _write_config(tmp_path, {**GRID, "max_concurrent": 1})
    interrupt = _interrupt_after(2, tmp_path / "interrupted")
    first = run_sweep(load_config(config_file), progress=False, callbacks=[interrupt])
    assert first.interrupted  # the CLI exits 130 on it
    # trials not yet started are created lazily: 0 to 2 of them are in the table as unfinished
    assert (first.table["status"] == "ok").sum() == 2
    assert set(first.table["status"]) <= {"ok", "unfinished"}
    finished = first.table.loc[first.table["status"] == "ok", "trial"].tolist()
    scores = {t: first.folder / "trials" / t / "report" / "scores.json" for t in finished}
    stamps = {t: path.stat().st_mtime_ns for t, path in scores.items()}

    with pytest.raises(SystemExit):  # a second sweep into the same folder needs --resume
        main(["sweep", "--config", str(config_file), "--no-progress"])
    main(["sweep", "--config", str(config_file), "--resume", "--no-progress"])
    table = _table(first.folder)
    assert len(table) == 4
    assert (table["status"] == "ok").all()
    assert set(first.table["trial"]) <= set(table.index)
    for trial in finished:  # not run again
        assert table.loc[trial, "attempts"] == 1
        assert scores[trial].stat().st_mtime_ns == stamps[trial]


def test_an_optuna_search_samples_log_uniform_hyperparameters(ray_instance, tmp_path):
    sweep = {"space": {"agent.hyperparams.learning_rate": {"loguniform": ["1e-4", "1e-2"]}},
             "search": "optuna", "num_samples": 2, "seed": 3}
    from hedgearena.sweep import run_sweep

    result = run_sweep(load_config(_write_config(tmp_path, sweep)), progress=False)
    assert (result.table["status"] == "ok").all()
    key = "agent.hyperparams.learning_rate"
    rates = result.table[key]
    assert ((rates >= 1e-4) & (rates <= 1e-2)).all()
    assert rates.nunique() == 2
    for _, row in result.table.iterrows():
        saved = load_config(Path(row["run_dir"]) / "config.yaml")
        assert saved.agent.hyperparams["learning_rate"] == pytest.approx(row[key])


# --------------------------------------------------------------------------------- RLlib
def test_the_rllib_env_creator_gives_the_native_vector_env_with_next_step_autoreset():
    from gymnasium.vector import AutoresetMode

    from hedgearena.agents.rllib import make_vector_env
    from hedgearena.envs.vector_env import VecHedgingEnv

    env = make_vector_env("hedgearena/ShortCall-v0", {"num_envs": 8, "action_mode": "band"})
    assert isinstance(env.unwrapped, VecHedgingEnv)
    assert env.num_envs == 8
    assert env.unwrapped.autoreset_mode == AutoresetMode.NEXT_STEP
    assert env.unwrapped.config.action_mode == "band"


def test_rllib_ppo_trains_with_two_env_runners_and_is_scored_by_the_arena(ray_instance,
                                                                          tmp_path):
    rllib = {"n_timesteps": 480, "num_env_runners": 2, "num_envs_per_env_runner": 8,
             "eval_paths": 128, "env_kwargs": {"action_mode": "band", "risk_aversion": "auto",
                                               "reward_mode": "terminal_mean_variance"},
             "hyperparams": {"rollout_fragment_length": 10, "train_batch_size_per_learner": 160,
                             "minibatch_size": 80, "num_epochs": 1, "fcnet_hiddens": [16]}}
    config = tmp_path / "rllib.yml"
    config.write_text(yaml.safe_dump({"rllib": rllib, "arena": TINY_ARENA,
                                      "out": str(tmp_path / "runs")}))
    main(["rllib", "--config", str(config), "--no-progress"])
    run = tmp_path / "runs" / "rllib_ppo-ShortCall-seed0"
    info = json.loads((run / "training.json").read_text())
    assert info["timesteps"] >= 480
    assert info["iterations"] == 3
    saved_agent = json.loads((run / "model" / "rllib.json").read_text())
    assert len(saved_agent["observation_normalizer"]["mean"]) == 12  # normalize_obs: default on
    assert saved_agent["env"] == yaml.safe_load((run / "env.yaml").read_text())  # its env
    assert (run / "checkpoints" / "latest.json").is_file()
    written = yaml.safe_load((run / "config.yaml").read_text())["rllib"]["env_kwargs"]
    assert isinstance(written["risk_aversion"], float)  # 'auto' calibrated, the number written
    records = {r["hedger"]: r for r in
               json.loads((run / "report" / "scores.json").read_text())["records"]}
    assert set(records) == {"delta", "no hedge", "rllib ppo agent"}
    agent = records["rllib ppo agent"]
    assert math.isfinite(agent["objective"])
    assert agent["mean_turnover"] > 0  # a band agent trades
    main(["evaluate", str(run), "--no-progress"])  # loads the module without training again
    again = {r["hedger"]: r for r in
             json.loads((run / "evaluation" / "scores.json").read_text())["records"]}
    assert again["rllib ppo agent"]["objective"] == agent["objective"]
    saved = (run / "config.yaml").read_text()
    with pytest.raises(SystemExit):  # resuming under another env is refused, before any write
        main(["rllib", "--config", str(config), "--set", "env.kwargs.cost=0.002",
              "--no-progress"])
    assert (run / "config.yaml").read_text() == saved


# ------------------------------------------------------------- without Ray, and bad configs
def test_sweep_and_rllib_name_the_extra_when_ray_is_missing(monkeypatch, tmp_path, capsys):
    from hedgearena.sweep import MissingRayError, require

    for module in ("ray", "ray.tune", "optuna"):
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingRayError, match=r'pip install "hedgearena\[ray\]"'):
        require("ray.tune")
    config = _write_config(tmp_path, GRID)
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "--config", str(config), "--no-progress"])
    assert exit_info.value.code == 2
    assert "hedgearena[ray]" in capsys.readouterr().err


@pytest.mark.parametrize(("sweep", "message"), [
    ({"space": {"sed": [0, 1]}}, "'sed' is not a field"),
    ({"space": {"arena.paths.x": [1]}}, "'paths' is a value"),
    ({"space": {"out": ["a"]}}, "cannot be swept"),
    ({"space": {"rllib.num_env_runners": [1, 2]}}, "cannot be swept"),  # trials train `agent`
    ({"space": {"seed": {"normal": [0, 1]}}}, "kind in"),
    ({"space": {"agent.hyperparams.learning_rate": {"loguniform": [0, 1]}}}, "0 < low < high"),
    ({"search": "bayes"}, "sweep.search must be one of"),
    ({"metric": "sharpe"}, "sweep.metric must be one of"),
])
def test_bad_sweep_configs_fail_early_naming_the_key(sweep, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        load_config(_write_config(tmp_path, sweep))


def test_an_empty_space_is_an_error(tmp_path):
    from hedgearena.sweep import run_sweep

    with pytest.raises(ValueError, match=r"sweep\.space is empty"):
        run_sweep(load_config(None, [f"out={tmp_path}"]))


def test_yaml_exponents_are_numbers_in_a_space(tmp_path):
    key = "agent.hyperparams.learning_rate"
    config = load_config(_write_config(tmp_path, {"space": {key: ["1e-3", "3e-4", "band"]}}))
    assert config.sweep.space[key]["grid"] == [1e-3, 3e-4, "band"]


def test_a_missing_or_corrupt_rllib_agent_is_named(tmp_path: Path) -> None:
    """The agent's description is read (and checked) before Ray is needed."""
    from hedgearena.agents.rllib import load_rllib_hedger

    with pytest.raises(FileNotFoundError, match=r"RLlib agent description .* is missing"):
        load_rllib_hedger(tmp_path)
    (tmp_path / "rllib.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"RLlib agent description .* is not valid JSON"):
        load_rllib_hedger(tmp_path)
    (tmp_path / "rllib.json").write_text(json.dumps({"algo": "PPO"}))
    with pytest.raises(ValueError, match=r"lacks the key\(s\) \['env_kwargs'\]"):
        load_rllib_hedger(tmp_path)


def test_work_needing_more_cpus_than_the_local_instance_has_is_refused(ray_instance) -> None:
    """Ray waits for ever for resources a local instance will never have (a sweep's
    cpus_per_trial, RLlib's env runners): named instead."""
    from hedgearena.run_config import RaySpec
    from hedgearena.sweep import ray_session

    refused = r"rllib.num_env_runners needs 3 CPUs at once, but the local Ray instance has 2"
    with pytest.raises(ValueError, match=refused), ray_session(RaySpec(), 3,
                                                                "rllib.num_env_runners"):
        pass
    with ray_session(RaySpec(), 2, "rllib.num_env_runners"):
        pass


def test_trials_run_in_the_sweeps_working_directory(ray_instance, tmp_path, monkeypatch):
    """A replay of a CSV given by a relative path: Tune starts each trial in its own folder,
    where the path failed ('cannot read the CSV file'); trials now run where the sweep does."""
    from hedgearena.sweep import run_sweep

    days = pd.bdate_range("2020-01-01", periods=300)
    closes = 100.0 * np.exp(np.cumsum(np.random.default_rng(0).normal(0.0, 0.01, len(days))))
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "close": closes,
                  "iv": 0.2}).to_csv(tmp_path / "prices.csv", index=False)
    monkeypatch.chdir(tmp_path)
    replay = {"id": "hedgearena/HistoricalReplay-v0",
              "kwargs": {"market_kwargs": {"csv": "prices.csv", "vol_column": "iv"}}}
    config = load_config(_write_config(tmp_path, {"space": {"seed": [1]}, "max_failures": 0},
                                       env=replay))
    result = run_sweep(config, progress=False)
    assert list(result.table["status"]) == ["ok"]


def test_the_sweep_command_exits_1_when_a_trial_failed(ray_instance, tmp_path, monkeypatch):
    """A script running sweeps must see it: the command exited 0 with a failed trial."""
    from hedgearena import sweep as sweep_module

    monkeypatch.setattr(sweep_module, "check_space", lambda config: None)  # let it fail late
    config = _write_config(tmp_path, {"space": {"env.kwargs.cost": [0.001, -1.0]},
                                      "max_failures": 0})
    with pytest.raises(SystemExit) as stopped:
        main(["sweep", "--config", str(config), "--no-progress"])
    assert stopped.value.code == 1
