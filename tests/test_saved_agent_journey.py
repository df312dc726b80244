"""Scoring saved agents after training: the CLI (evaluate, stress --agent) and the Python API.

A researcher trains small agents, then scores their run folders again: through
``train.py stress --agent`` (with other seeds and path counts) and from Python with
:func:`hedgearena.agents.saved.load_saved_agent`, beside the arena's other hedgers. The numbers
must be those of the run's own report on the same paths, the stress rows those a plain numpy
recomputation gives from the paths (Acerbi and Tasche 2002's expected shortfall: the mean of the
``floor(n (1 - a))`` largest losses), the agent the one its ``model/`` and ``config.yaml`` hold,
and every report must say which saved agent it scored.

Not repeated here: evaluate == the run's report for every algorithm (tests/test_train.py), the
run-folder and seed errors (tests/test_bad_inputs.py, tests/test_cli_audit_2.py), corrupt
SB3/deep-hedging files (tests/agents/test_agents_audit.py, tests/test_cli_robustness.py).
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from tiny_runs import TINY_ARENA, tiny_runs

from hedgearena.agents import saved
from hedgearena.baselines import report, stress
from hedgearena.baselines.arena import run_arena
from hedgearena.baselines.benchmark import plot_story
from hedgearena.baselines.registry import parse_hedger
from hedgearena.cli import main
from hedgearena.envs.config import make_config
from hedgearena.envs.rendering import StoryFigures
from hedgearena.run_config import load_config


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny PPO run and a tiny deep-hedging run, trained through train.py."""
    return tiny_runs(tmp_path_factory.mktemp("runs"))


# ------------------------------------------------------------------- the Python API
@pytest.mark.parametrize("algo", ["ppo", "deep_hedging"])
def test_a_loaded_agent_scores_its_runs_own_report_to_the_cent(algo: str, runs) -> None:
    """load_saved_agent + benchmark on the run's arena settings == the run's report/."""
    from hedgearena.baselines.benchmark import benchmark

    run = runs[algo]
    agent = saved.load_saved_agent(run)
    config = load_config(run / "config.yaml")
    assert agent.name == f"{algo.replace('_', ' ')} agent"
    result = benchmark(config.env.config(), [*config.arena.hedgers, agent],
                       config.arena.settings(False))
    own = pd.read_csv(run / "report" / "scores.csv", index_col=0)
    for column in ("mean_cost", "std_cost", "objective", "mean_turnover"):
        assert result.table.loc[agent.name, column] == own.loc[agent.name, column], column
    assert saved.load_saved_agent(run, name="mine").name == "mine"


def test_an_sb3_agent_scores_with_its_saved_statistics_and_deterministic_actions(runs) -> None:
    """The positions are the policy's mean action on observations normalised by the run's own
    vecnormalize.pkl (not refitted, not sampled): what the README and SB3Hedger promise."""
    import gymnasium as gym

    import hedgearena  # noqa: F401  (registers the ids)

    run = runs["ppo"]
    agent = saved.load_saved_agent(run)
    with (run / "model" / "vecnormalize.pkl").open("rb") as handle:
        stats = pickle.load(handle)
    assert np.array_equal(agent.normalizer.mean, stats.obs_rms.mean)
    assert np.array_equal(agent.normalizer.var, stats.obs_rms.var)
    assert agent.normalizer.clip == stats.clip_obs
    venv = gym.make_vec("hedgearena/ShortCall-v0", num_envs=64,
                        vectorization_mode="vector_entry_point", **agent.env_overrides)
    obs, _ = venv.reset(seed=11)
    agent.reset(venv.unwrapped)
    positions = agent.positions(venv.unwrapped.state, obs)
    x = agent.normalizer(obs)
    mean_action, _ = agent.model.predict(x, deterministic=True)
    expected = venv.unwrapped.positions_from_actions(np.asarray(mean_action, np.float64))
    assert np.array_equal(positions, expected)
    sampled, _ = agent.model.predict(x, deterministic=False)  # log_std_init -1: they differ
    assert not np.allclose(sampled, mean_action)
    venv.close()


def test_load_saved_agent_refuses_what_is_not_a_run_folder(runs, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"run_dir '.*report' is a report folder \(it holds "
                                         r"scores.json\)"):
        saved.load_saved_agent(runs["ppo"] / "report")
    with pytest.raises(ValueError, match=r"config.yaml is missing"):
        saved.load_saved_agent(runs["ppo"] / "model")
    empty = tmp_path / "empty"
    load_config(runs["ppo"] / "config.yaml").dump(empty / "config.yaml")
    with pytest.raises(ValueError, match=r"has no trained model \(model/ is missing\)"):
        saved.load_saved_agent(empty)


# ------------------------------------------------- a model/ that is not its config's agent
def _copy_run(run: Path, folder: Path, config_from: Path | None = None) -> Path:
    import shutil

    shutil.copytree(run / "model", folder / "model")
    shutil.copy(config_from or run / "config.yaml", folder / "config.yaml")
    return folder


def test_a_model_of_another_algorithm_is_named_not_scored_under_the_runs_name(
    runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An SB3 model with another algo in agent.json (an SAC model copied into a PPO run) was
    scored as "ppo agent"; a PPO model under a deep-hedging config failed with "settings.json is
    missing: train the run again" (it was not missing: the folder held another kind of agent)."""
    from stable_baselines3 import SAC
    from stable_baselines3.common.vec_env import VecNormalize

    from hedgearena.agents.callbacks import write_agent
    from hedgearena.envs.sb3_adapter import make_sb3_vec_env

    run = _copy_run(runs["ppo"], tmp_path / "sac_in_ppo")
    view = json.loads((run / "model" / "agent.json").read_text())["env_kwargs"]
    venv = VecNormalize(make_sb3_vec_env("hedgearena/ShortCall-v0", num_envs=4, seed=1, **view),
                        norm_reward=False)
    for name in ("model.zip", "vecnormalize.pkl"):
        (run / "model" / name).unlink()
    write_agent(SAC("MlpPolicy", venv, seed=1), venv, run / "model")  # an SAC agent's files
    (run / "model" / "agent.json").write_text(json.dumps({"algo": "sac", "env_kwargs": view}))
    with pytest.raises(SystemExit) as exit_info:  # was scored, as "ppo agent"
        main(["evaluate", str(run), *TINY_ARENA])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "model/agent.json holds an SB3 sac agent, agent.algo is ppo" in err
    assert "the model and the config are of different runs" in err
    assert not (run / "evaluation").exists()

    mixed = _copy_run(runs["ppo"], tmp_path / "ppo_under_dh",
                      config_from=runs["deep_hedging"] / "config.yaml")
    with pytest.raises(ValueError, match=r"model/ holds an SB3 agent \(agent.json\), agent.algo "
                                         r"is deep_hedging, whose model/ holds settings.json"):
        saved.load_saved_agent(mixed)
    with pytest.raises(SystemExit):  # stress --agent names it too, before writing anything
        main(["stress", "--agent", str(mixed), "--seed", "9", "--scenarios", "base",
              "--paths", "64", "--out", str(tmp_path / "out"), "--no-progress"])
    assert "whose model/ holds settings.json" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    from hedgearena.run_config import load_config
    from hedgearena.training import evaluate_run, load_agent

    config = load_config(mixed / "config.yaml")
    for python_call in (lambda: load_agent(mixed, config),  # from Python, not only the CLI
                        lambda: evaluate_run(mixed, config, progress=False)):
        with pytest.raises(ValueError, match=r"whose model/ holds settings.json"):
            python_call()


def test_a_view_or_network_other_than_the_configs_is_named(runs, tmp_path: Path) -> None:
    """The SB3 view (agent.json) and the deep hedger's network (settings.json) against the run's
    config.yaml; the config's ``auto`` values are what training calibrated, not a mismatch."""
    run = _copy_run(runs["ppo"], tmp_path / "view")
    config = load_config(run / "config.yaml")
    view = dict(config.agent.env_kwargs)
    edited = config.model_copy(update={"agent": config.agent.model_copy(
        update={"env_kwargs": {**view, "risk_aversion": 9.0}})})
    edited.dump(run / "config.yaml")
    with pytest.raises(ValueError, match=r"view of the env differs from agent.env_kwargs "
                                         r"\(risk_aversion: [0-9.]+ in the model, 9.0 in the "
                                         r"config\)"):
        saved.load_saved_agent(run)
    auto = config.model_copy(update={"agent": config.agent.model_copy(
        update={"env_kwargs": {**view, "risk_aversion": "auto"}})})
    saved.check_saved_agent(run, auto)

    dh = _copy_run(runs["deep_hedging"], tmp_path / "network")
    config = load_config(dh / "config.yaml")
    wider = config.model_copy(update={"agent": config.agent.model_copy(
        update={"hyperparams": {**config.agent.hyperparams, "hidden": [16, 16]}})})
    wider.dump(dh / "config.yaml")
    with pytest.raises(ValueError, match=r"policy differs from agent.hyperparams \(hidden: "
                                         r"\[8\] in the model, \[16, 16\] in the config\)"):
        saved.load_saved_agent(dh)


def test_saved_model_files_are_the_loaders_own() -> None:
    """check_saved_agent's names of the description files are the loaders'."""
    from hedgearena.agents import deep_hedging, rllib, training

    assert set(saved.MODEL_FILES) == {training.AGENT_FILE, deep_hedging.SETTINGS_FILE,
                                      rllib.AGENT_FILE}


def test_a_corrupt_policy_is_named_without_torchs_advice_to_skip_weights_only(
    tmp_path: Path,
) -> None:
    """torch's weights_only refusal opened with "Re-running torch.load with weights_only set to
    False will likely succeed" (running whatever code the file holds): the message now keeps the
    reason after "WeightsUnpickler error:"."""
    from hedgearena.agents.deep_hedging import WEIGHTS_FILE, load_policy, save_policy
    from hedgearena.agents.policies import HedgingPolicy, PolicySpec

    folder = save_policy(HedgingPolicy(PolicySpec.for_env(make_config("ShortCall"))),
                         tmp_path / "model")
    (folder / WEIGHTS_FILE).write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"deep-hedging weights '.*policy.pt' cannot be "
                                         r"loaded") as error:
        load_policy(folder)
    message = str(error.value)
    assert "weights_only" not in message
    assert "Unsupported operand" in message  # torch 2.x's reason for these bytes


# ------------------------------------------------------------------------ stress --agent
def test_stress_names_its_agents_and_recomputes_from_the_paths(runs, tmp_path: Path) -> None:
    """``train.py stress --agent`` on another seed and path count: its ``run_config.yaml`` and
    ``agents.yaml`` (the run folders and the SHA-256 of their model files: --agent is no config
    field, and stress_config.yaml said only "class: SB3Hedger"), a row recomputed with numpy
    from the paths, and a rerun with the same seed identical."""
    args = ["stress", "--agent", str(runs["ppo"]), str(runs["deep_hedging"]), "--scenarios",
            "base", "gap", "--paths", "300", "--seed", "13", "--hedgers", "delta",
            "--set", "stress.n_boot=10", "--set", "stress.worst_paths=false", "--no-progress"]
    main([*args, "--out", str(tmp_path), "--name", "first"])
    main([*args, "--out", str(tmp_path), "--name", "again"])
    first = tmp_path / "first"
    for name in ("stress.csv", "stress.json", "stress.md"):
        assert (first / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name
    config = load_config(first / "run_config.yaml")
    assert (config.stress.seed, config.stress.paths) == (13, 300)
    record = yaml.safe_load((first / "agents.yaml").read_text())
    assert list(record) == ["ppo agent", "deep hedging agent"]
    for algo, name in (("ppo", "ppo agent"), ("deep_hedging", "deep hedging agent")):
        entry = record[name]
        assert entry["run_dir"] == str(runs[algo].absolute())
        assert entry["algo"] == algo
        assert entry["seed"] == 0
        model = runs[algo] / "model"
        assert entry["model_sha256"] == {
            f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in model.iterdir()}

    # the gap row of the PPO agent, from the arena's paths (the stress env: stress.cost)
    table = pd.read_csv(first / "stress.csv", index_col=[0, 1])
    env_config = config.stress.env_config(config.env)
    from hedgearena.envs.scenarios import apply_scenario

    agent = saved.load_saved_agent(runs["ppo"])
    result = run_arena(apply_scenario(env_config, "gap"), [parse_hedger("delta"), agent], 300,
                       13, progress=False)
    totals = result.records["ppo agent"].totals
    cost = totals["initial_premium"] - math.exp(-result.rate * result.horizon) * (
        totals["terminal_pnl"])
    loss = np.sort(-totals["terminal_pnl"])
    row = table.loc[("gap", "ppo agent")]
    assert row["mean_cost"] == pytest.approx(cost.mean(), rel=1e-12)
    assert row["std_cost"] == pytest.approx(cost.std(ddof=1), rel=1e-12)
    assert row["objective"] == pytest.approx(cost.mean() + 1.5 * cost.std(ddof=1), rel=1e-12)
    assert row["expected_shortfall_95"] == pytest.approx(loss[-15:].mean(), rel=1e-12)  # 300*5%
    assert row["worst_path"] == np.argmin(totals["terminal_pnl"])

    main(["stress", "--scenarios", "base", "--paths", "64", "--seed", "13", "--hedgers",
          "delta", "--set", "stress.worst_paths=false", "--out", str(tmp_path), "--name",
          "first", "--no-progress"])
    assert not (first / "agents.yaml").exists()  # an earlier report's agents are not this one's


# ------------------------------------------------------------------ worst-path stories
@pytest.mark.parametrize("config", [
    make_config("ShortCall", cost=stress.DEFAULT_STRESS_COST,
                risk_limits={"delta": 0.3}),  # breaches and early ends: per-decision arrays
    make_config("OptionBook", hedge_option=True),  # the hedging option's panel
], ids=["short_call_limits", "option_book"])
def test_one_paths_series_are_the_all_paths_series_of_that_path(config) -> None:
    hedgers = [parse_hedger(s) for s in ("delta", "ww:0.1", "no_hedge")]
    if config.hedge_option is not None:
        hedgers.append(parse_hedger("delta_gamma"))
    result = run_arena(config, hedgers, 48, 3, progress=False)
    names = [h.name for h in hedgers]
    n_steps = len(result.times) - 1
    for index in (0, 17, 47):
        cut = stress.one_path(result, names, index)
        assert np.array_equal(cut.spot[0], result.spot[index])
        assert np.array_equal(cut.model_hedge[0], result.model_hedge[index])
        assert result.strike is not None
        assert cut.strike is not None
        assert cut.strike[0] == result.strike[index]
        for name in names:
            whole = report.story_series(result.records[name], n_steps)
            one = report.story_series(cut.records[name], n_steps)
            for field in ("hedge", "cost", "option"):
                assert np.array_equal(getattr(one, field)[0], getattr(whole, field)[index])
    if config.hedge_option is not None:
        assert np.abs(report.story_series(result.records["delta-gamma"], n_steps).option).max() > 0
    with pytest.raises(ValueError, match=r"path must be in \[0, 48\), got 48"):
        stress.one_path(result, names, 48)


def test_a_worst_path_is_drawn_from_its_own_path_alone_and_looks_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stories' series were computed for all paths (14 ms per hedger at 20,000 paths, 1.4 s
    of a default stress run) to draw one; now one path's. The picture is byte for byte the one
    drawn from the whole result."""
    config = make_config("ShortCall", cost=stress.DEFAULT_STRESS_COST)
    paths_seen: list[int] = []
    series = report.story_series

    def spy(record, n_steps):
        paths_seen.append(record.hedge.shape[1])
        return series(record, n_steps)

    with monkeypatch.context() as patch:
        patch.setattr(report, "story_series", spy)
        settings = stress.StressSettings(n_paths=200, seed=5, n_boot=10, progress=False)
        stress.stress_test(config, ["delta", "no_hedge"], ["base"], settings, tmp_path / "s")
    assert len(list((tmp_path / "s" / "worst_paths").glob("*.png"))) == 2
    assert paths_seen
    assert set(paths_seen) == {1}, paths_seen  # was {200}

    hedgers = [parse_hedger("delta"), parse_hedger("ww:0.1")]
    result = run_arena(config, hedgers, 200, 5, progress=False)
    index = int(np.argmin(result.records["Whalley-Wilmott 0.1"].totals["terminal_pnl"]))
    shown = ["Whalley-Wilmott 0.1", "delta"]
    whole = plot_story(result, shown, index, tmp_path / "whole.png", title="t",
                       figures=StoryFigures())
    one = plot_story(stress.one_path(result, shown, index), shown, 0, tmp_path / "one.png",
                     title="t", figures=StoryFigures())
    assert whole.read_bytes() == one.read_bytes()
