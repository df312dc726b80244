"""Smoke runs of the real entry point (train.py) on tiny budgets, CleanRL style.

Every agent trains, saves, loads and scores again to the same numbers; an interrupted run
resumes from its last checkpoint and continues its step count; bad configs fail with errors
that name the key.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hedgearena.cli import main
from hedgearena.run_config import load_config

TINY_ARENA = ["--set", "arena.paths=512", "--set", "arena.tune_paths=256",
              "--set", "arena.hedgers=[delta,no_hedge]", "--set", "arena.frontier=false",
              "--set", "arena.n_boot=20", "--no-progress"]
SB3_TINY = {
    "ppo": {"n_timesteps": 256, "n_envs": 16, "n_steps": 8, "batch_size": 64, "n_epochs": 1},
    "recurrent_ppo": {"n_timesteps": 256, "n_envs": 16, "n_steps": 8, "batch_size": 64,
                      "n_epochs": 1},
    "sac": {"n_timesteps": 256, "n_envs": 16, "learning_starts": 64, "batch_size": 32},
    "td3": {"n_timesteps": 256, "n_envs": 16, "learning_starts": 64, "batch_size": 32},
    "ddpg": {"n_timesteps": 256, "n_envs": 16, "learning_starts": 64, "batch_size": 32},
    "tqc": {"n_timesteps": 256, "n_envs": 16, "learning_starts": 64, "batch_size": 32},
}
DH_TINY = {"steps": 6, "batch_size": 64, "n_train": 128, "n_valid": 64, "eval_every": 3,
           "checkpoint_every": 3, "hidden": [8]}


def _args(algo: str, params: dict, out: Path) -> list[str]:
    sb3 = [] if algo == "deep_hedging" else ["--set", "agent.eval_paths=128"]  # SB3's validation
    return ["train", "--agent", algo, "--out", str(out),
            "--set", f"agent.hyperparams={json.dumps(params)}", *TINY_ARENA, *sb3]


def _scores(folder: Path) -> dict:
    return {r["hedger"]: r for r in json.loads((folder / "scores.json").read_text())["records"]}


@pytest.mark.parametrize("algo", [*SB3_TINY, "deep_hedging"])
def test_every_agent_trains_saves_loads_and_scores_again_identically(algo: str, tmp_path) -> None:
    params = DH_TINY if algo == "deep_hedging" else SB3_TINY[algo]
    main(_args(algo, params, tmp_path))
    run = tmp_path / f"{algo}-ShortCall-seed0"
    for name in ("config.yaml", "env.yaml", "training.json", "model", "report/scores.csv",
                 "report/scores.md", "report/distributions.png", "report/path_story.png"):
        assert (run / name).exists(), name
    assert any((run / "tb").rglob("events.out.tfevents.*"))
    buffers = list((run / "checkpoints").glob("step_*/replay_buffer.pkl"))
    assert len(buffers) == (algo in ("sac", "td3", "ddpg", "tqc"))  # the newest one only
    main(["evaluate", str(run), *TINY_ARENA])
    first, again = _scores(run / "report"), _scores(run / "evaluation")
    agent = f"{algo.replace('_', ' ')} agent"
    assert first[agent]["objective"] == again[agent]["objective"]
    assert first[agent]["mean_turnover"] == again[agent]["mean_turnover"]
    assert first["delta"]["objective"] == again["delta"]["objective"]


def test_an_interrupted_sb3_run_resumes_and_continues_its_step_count(tmp_path, monkeypatch,
                                                                    capsys) -> None:
    from hedgearena.agents import callbacks

    params = {**SB3_TINY["ppo"], "n_timesteps": 512}
    args = [*_args("ppo", params, tmp_path), "--set", "agent.checkpoint_freq=128"]
    original = callbacks.CheckpointCallback.save

    def save_then_stop(self):
        path = original(self)
        if self.num_timesteps >= 256:
            raise KeyboardInterrupt  # the user pressed Ctrl-C after a checkpoint
        return path

    monkeypatch.setattr(callbacks.CheckpointCallback, "save", save_then_stop)
    with pytest.raises(SystemExit) as stopped:  # Ctrl-C: a message and exit code 130
        main(args)
    assert stopped.value.code == 130
    monkeypatch.setattr(callbacks.CheckpointCallback, "save", original)
    run = tmp_path / "ppo-ShortCall-seed0"
    latest = json.loads((run / "checkpoints" / "latest.json").read_text())
    assert latest["timesteps"] == 256
    # the resolved zoo hyperparameters were recorded at the start; an edited zoo file (here:
    # the record, as if configs/ppo.yml had held another rate) refuses the resume
    recorded = (run / "hyperparams.yaml").read_text()
    assert "n_steps: 8" in recorded
    assert "learning_rate: 0.0003\n" in recorded
    (run / "hyperparams.yaml").write_text(recorded.replace("learning_rate: 0.0003\n",
                                                           "learning_rate: 0.003\n"))
    with pytest.raises(SystemExit):
        main(args)
    assert "hyperparams.yaml: learning_rate: 0.003 -> 0.0003" in capsys.readouterr().err
    (run / "hyperparams.yaml").write_text(recorded)
    # the resumed run draws fresh paths (it used to replay its first rollouts' paths)
    from hedgearena.agents import training as sb3_training

    seeds = []
    make_env = sb3_training.make_sb3_vec_env  # (the normalised env's raw env on a resume)
    monkeypatch.setattr(sb3_training, "make_sb3_vec_env",
                        lambda *a, **k: seeds.append(k["seed"]) or make_env(*a, **k))
    main(args)
    assert seeds == [sb3_training.resume_seed(0, 256)]
    info = json.loads((run / "training.json").read_text())
    assert info["resumed_from"] == 256
    assert info["timesteps"] == 512
    # the validation history and the best model survive the interruption
    steps = [entry["timesteps"] for entry in info["history"]]
    assert min(steps) < 256 < max(steps)
    assert info["best_objective"] == min(e["objective"] for e in info["history"])
    # a finished run started again changes nothing
    model = (run / "model" / "model.zip").read_bytes()
    main(args)
    again = json.loads((run / "training.json").read_text())
    assert again["history"] == info["history"]
    assert (run / "model" / "model.zip").read_bytes() == model


def test_an_interrupted_deep_hedging_run_resumes(tmp_path) -> None:
    params = {**DH_TINY, "steps": 6}
    main(_args("deep_hedging", {**params, "steps": 3}, tmp_path))
    run = tmp_path / "deep_hedging-ShortCall-seed0"
    main(_args("deep_hedging", params, tmp_path))
    info = json.loads((run / "training.json").read_text())
    assert info["steps"] == 6


def test_resolved_config_round_trips(tmp_path) -> None:
    main(_args("deep_hedging", DH_TINY, tmp_path))
    run = tmp_path / "deep_hedging-ShortCall-seed0"
    saved = load_config(run / "config.yaml")
    assert saved.agent.hyperparams["steps"] == DH_TINY["steps"]
    assert yaml.safe_load((run / "env.yaml").read_text())["n_steps"] == 20


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "agent.algo=a2c"], "agent.algo must be one of"),
        (["--set", "arena.paths=0"], "arena.paths"),
        (["--set", "typo=1"], "typo"),
        (["--env", "hedgearena/Nope-v0"], "env.id must be one of"),
        (["--set", "agent.env_kwargs={cost: 0.0}"], "agent.env_kwargs may only set"),
        (["--set", "env.kwargs={cost: -1}"], "rate"),
        (["--set", "agent.hyperparams={stepz: 3}"], "unknown deep_hedging hyperparameter"),
        (["--agent", "ppo", "--set", "agent.hyperparams={seed: 1, n_timesteps: 64}"],
         "top-level `seed`"),
    ],
)
def test_bad_configs_fail_with_a_named_error(args, message, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--out", str(tmp_path), *args, "--no-progress"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_an_sb3_agent_without_a_view_gets_the_default_one_calibrated_on_a_band(tmp_path) -> None:
    """``auto``: pnl_reference = E[X], risk_aversion = c / Std[X], X = the 0.1 band's P&L / scale.

    Checked against the hedging cost of the band on the same paths (the arena's scoring code,
    not the calibration's): with r = 0, P&L = premium - cost, so E[X] = (premium - E[cost]) /
    scale.
    """
    from hedgearena.agents.training import AUTO, DEFAULT_VIEW, resolve_view
    from hedgearena.baselines import metrics
    from hedgearena.baselines.arena import run_arena
    from hedgearena.baselines.bands import FixedBand
    from hedgearena.envs.hedging_env import default_reward_scale
    from hedgearena.run_config import RunConfig

    config = RunConfig.model_validate({"agent": {"algo": "ppo", "eval_paths": 2000}})
    resolved = resolve_view(config).agent.env_kwargs
    assert {k: v for k, v in DEFAULT_VIEW.items() if v != AUTO}.items() <= resolved.items()
    env_config = config.env.config()
    band = FixedBand(0.1)
    result = run_arena(env_config, [band], 2000, seed=config.arena.seed + 2, progress=False)
    totals = result.records[band.name].totals
    cost = metrics.hedging_cost(totals["terminal_pnl"], totals["initial_premium"], 0.0, 1.0)
    scale = default_reward_scale(env_config)
    x = (totals["initial_premium"] - cost) / scale
    assert resolved["pnl_reference"] == pytest.approx(x.mean(), abs=1e-4)
    assert resolved["risk_aversion"] == pytest.approx(1.5 / x.std(ddof=1), abs=1e-4)
    assert -2.0 < resolved["pnl_reference"] < 0.0  # a hedge loses money on a 1% cost
    explicit = config.model_copy(update={"agent": config.agent.model_copy(
        update={"env_kwargs": {"action_mode": "trade"}})})
    assert resolve_view(explicit) == explicit  # a given view is kept as it is


def test_a_run_refuses_to_resume_checkpoints_of_other_settings(tmp_path, capsys) -> None:
    """Same folder, another cost: a named error instead of resuming the old weights."""
    main(_args("deep_hedging", {**DH_TINY, "steps": 3}, tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        main([*_args("deep_hedging", DH_TINY, tmp_path), "--set", "env.kwargs={cost: 0.002}"])
    assert exit_info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "holds checkpoints trained with other settings" in err
    assert "env.kwargs.cost: unset -> 0.002" in err
    run = tmp_path / "deep_hedging-ShortCall-seed0"
    assert load_config(run / "config.yaml").env.kwargs == {}  # the folder is left as it was
    with pytest.raises(SystemExit):  # a typo is named as one, not as a checkpoint clash
        main([*_args("deep_hedging", DH_TINY, tmp_path), "--set", "env.kwargs={costt: 0.002}"])
    err = " ".join(capsys.readouterr().err.split())
    assert "costt" in err
    assert "holds checkpoints" not in err


def test_a_refused_start_leaves_the_run_as_it_was_and_evaluate_checks_its_folder(
    tmp_path, capsys
) -> None:
    main(_args("deep_hedging", DH_TINY, tmp_path))
    run = tmp_path / "deep_hedging-ShortCall-seed0"
    saved = (run / "config.yaml").read_text()
    with pytest.raises(SystemExit):
        main(_args("deep_hedging", {**DH_TINY, "steps": -1}, tmp_path))
    assert "steps must be an integer >= 1, got -1" in capsys.readouterr().err
    assert (run / "config.yaml").read_text() == saved
    with pytest.raises(SystemExit):
        main(["evaluate", str(tmp_path / "missing")])
    assert "run folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", str(run), "--out", str(tmp_path / "elsewhere")])
    assert "unrecognized arguments: --out" in capsys.readouterr().err


def test_a_budget_of_partial_rollouts_is_warned_about() -> None:
    """PPO collects whole rollouts (n_steps x n_envs): 200 steps of 128-step rollouts train 256."""
    import warnings

    from hedgearena.agents.training import _warn_partial_rollout

    with pytest.warns(UserWarning, match=r"rollouts \(n_steps x n_envs = 128\).* train 256 steps"):
        _warn_partial_rollout("ppo", {"n_steps": 8, "n_envs": 16}, 200)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_partial_rollout("ppo", {"n_steps": 8, "n_envs": 16}, 256)
        _warn_partial_rollout("sac", {"n_envs": 16}, 200)
