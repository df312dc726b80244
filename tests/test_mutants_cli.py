"""Tests that kill mutants the suite let live (hand-made mutation testing of ``train.py``'s
command line, the run runner and the envs' ``rgb_array`` stories).

Files under test: ``hedgearena/cli.py``, ``hedgearena/training.py``, ``envs/rendering.py``.
Each test names the mutant it kills. No test trains: the training and scoring steps are
replaced by recorders where the test is about what the command line passes on.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from cli_refusal import refused as _refused

import hedgearena.training  # noqa: F401  (imported before any test patches what it imports)
from hedgearena import cli, training
from hedgearena.cli import build_parser, main, resolve_config
from hedgearena.run_config import RunConfig, load_config


def _resolve(*argv: str) -> RunConfig:
    return resolve_config(build_parser().parse_args(list(argv)))


def _run_folder(path: Path, *overrides: str) -> Path:
    """A run folder as far as the command line reads it: its ``config.yaml``."""
    load_config(None, list(overrides)).dump(path / "config.yaml")
    return path


# ------------------------------------------------------------------ the command line: parsing
def test_no_arguments_at_all_train_the_default_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python train.py`` alone is ``train`` (killed: the ``not argv`` test dropped, which
    raised IndexError on the empty list); options alone are ``train``'s too."""
    calls: list[tuple[RunConfig, bool]] = []
    monkeypatch.setattr(training, "train_and_score",
                        lambda config, progress: calls.append((config, progress)))
    monkeypatch.chdir(tmp_path)
    main([])
    main(["--seed", "3", "--no-progress"])
    assert calls == [(RunConfig(), True), (RunConfig(seed=3), False)]


def test_help_alone_is_the_commands_help_not_trains(
    capsys: pytest.CaptureFixture[str]
) -> None:
    """``train.py --help`` lists the commands (killed: only ``-h`` kept out of the "options
    alone are train's" rule, so ``--help`` printed ``train``'s options instead)."""
    for flag in ("-h", "--help"):
        with pytest.raises(SystemExit) as stopped:
            main([flag])
        assert stopped.value.code == 0
        out = " ".join(capsys.readouterr().out.split())
        assert "score the classical hedgers (and saved agents)" in out  # benchmark's line
        assert "score a saved agent again" in out  # evaluate's line
        assert "--agent" not in out  # train's own option


def test_every_shortcut_lands_in_its_config_field() -> None:
    """Each option sets its documented field (killed: any shortcut dropped from the mapping)."""
    config = _resolve("train", "--env", "hedgearena/OptionBook-v0", "--paths", "1234",
                      "--seed", "7", "--arena-seed", "99", "--hedgers", "delta", "no_hedge",
                      "--out", "elsewhere", "--name", "mine", "--agent", "ppo")
    assert (config.env.id, config.arena.paths, config.seed, config.arena.seed) == (
        "hedgearena/OptionBook-v0", 1234, 7, 99)
    assert (config.arena.hedgers, config.out, config.name, config.agent.algo) == (
        ["delta", "no_hedge"], "elsewhere", "mine", "ppo")
    assert config.run_dir == Path("elsewhere") / "mine"
    rllib = _resolve("rllib", "--num-cpus", "3", "--address", "auto")
    assert (rllib.ray.num_cpus, rllib.ray.address) == (3, "auto")
    sweep = _resolve("sweep", "--num-cpus", "2", "--address", "ray://head:10001",
                     "--agent", "sac")
    assert (sweep.ray.num_cpus, sweep.ray.address, sweep.agent.algo) == (
        2, "ray://head:10001", "sac")


def test_benchmark_seed_is_the_scoring_paths_seed() -> None:
    """``benchmark --seed s`` sets arena.seed (killed: --seed dropped), leaves the training
    seed at its default (killed: also passed on as ``seed``), and equal --seed and
    --arena-seed are one seed, not a clash (killed: any two refused)."""
    default = RunConfig()
    config = _resolve("benchmark", "--seed", "7")
    assert (config.arena.seed, config.seed) == (7, default.seed)
    assert _resolve("benchmark", "--arena-seed", "8").arena.seed == 8
    same = _resolve("benchmark", "--seed", "5", "--arena-seed", "5")
    assert (same.arena.seed, same.seed) == (5, default.seed)


def test_a_non_integer_count_is_named_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    """``--paths`` and stress's ``--seed`` are integers (killed: ``type=int`` dropped, which
    passed the text on to the config)."""
    err = _refused(["benchmark", "--paths", "1e3"], capsys)
    assert "argument --paths: invalid int value: '1e3'" in err
    err = _refused(["stress", "--seed", "x"], capsys)
    assert "argument --seed: invalid int value: 'x'" in err
    assert _resolve("stress", "--seed", "5").stress.seed == 5


def test_stress_agents_add_up_over_repeated_options(tmp_path: Path) -> None:
    """``--agent a --agent b c`` stresses all three (killed: ``action="store"``, which kept
    the last option's folders only)."""
    args = build_parser().parse_args(["stress", "--agent", "a", "--agent", "b", "c"])
    assert args.agents == [Path("a"), Path("b"), Path("c")]


# -------------------------------------------------------- which config is resolved, and where
def test_evaluate_reads_the_config_given_else_the_runs_own(tmp_path: Path) -> None:
    """``evaluate RUN_DIR --config FILE`` reads FILE (killed: always RUN_DIR/config.yaml)."""
    run = _run_folder(tmp_path / "run", "arena.paths=3000")
    assert _resolve("evaluate", str(run)).arena.paths == 3000
    other = tmp_path / "other.yml"
    other.write_text("arena: {paths: 4000}\n")
    assert _resolve("evaluate", str(run), "--config", str(other)).arena.paths == 4000


def test_stress_takes_the_first_agents_env_unless_an_env_is_given(tmp_path: Path) -> None:
    """With ``--agent`` and no env given, the env is the first agent's (killed: the last
    agent's); ``--config`` or ``--set env...`` give an env (killed: either not counted)."""
    first = _run_folder(tmp_path / "first", "env.kwargs={cost: 0.002}", "seed=1")
    second = _run_folder(tmp_path / "second", "env.kwargs={cost: 0.003}", "seed=2")
    agents = ["--agent", str(first), str(second)]
    assert _resolve("stress", *agents).env.kwargs == {"cost": 0.002}
    assert _resolve("stress", *agents, "--set", "env.kwargs={cost: 0.004}").env.kwargs == {
        "cost": 0.004}
    given = tmp_path / "stress.yml"
    given.write_text("stress: {paths: 100}\n")  # a file: its env (the default one) is given
    assert _resolve("stress", *agents, "--config", str(given)).env.kwargs == {}
    assert _resolve("stress", *agents, "--env", "hedgearena/ShortCall-v0").env.kwargs == {}


def test_a_whole_env_section_set_on_the_command_line_is_an_env_given(tmp_path: Path) -> None:
    """Bug fixed: ``stress --agent RUN --set env={kwargs: {cost: 0.004}}`` was silently
    stressed on the agent's env (cost 0.002): only ``--set env.<key>=...`` counted as an env
    given, so the agent's env replaced the section set. Now the env asked for is kept (and
    ``load_agents`` then names the clash with the agent's own env), as with ``env.kwargs=``."""
    run = _run_folder(tmp_path / "run", "env.kwargs={cost: 0.002}")
    for override in ("env={kwargs: {cost: 0.004}}", " env.kwargs={cost: 0.004}"):
        config = _resolve("stress", "--agent", str(run), "--set", override)
        assert config.env.kwargs == {"cost": 0.004}, override
    with pytest.raises(ValueError, match=r"stress it on its own env"):
        cli.load_agents([run], _resolve("stress", "--agent", str(run), "--set",
                                        "env={kwargs: {cost: 0.004}}"))


def test_report_folders_are_named_by_env_and_their_own_seed() -> None:
    """benchmark: ``benchmark-<env>-seed<arena.seed>``, stress: ``stress-<env without -v0>-
    seed<stress.seed>``; ``--name`` names either (killed: the suffix kept, another seed read,
    ``--name`` dropped)."""
    assert cli.benchmark_dir(_resolve("benchmark", "--out", "o", "--seed", "3")) == Path(
        "o/benchmark-ShortCall-v0-seed3")
    assert cli.benchmark_dir(_resolve("benchmark", "--out", "o", "--name", "b")) == Path("o/b")
    config = _resolve("stress", "--out", "o", "--seed", "4", "--env", "hedgearena/OptionBook-v0")
    assert config.arena.seed != 4
    assert cli.stress_dir(config) == Path("o/stress-OptionBook-seed4")
    assert cli.stress_dir(_resolve("stress", "--out", "o", "--name", "s")) == Path("o/s")


def test_benchmark_writes_its_run_config_beside_its_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run_config.yaml`` repeats the report with ``--config`` (killed: not written)."""
    from hedgearena.baselines import benchmark as bench

    def fake(env_config: Any, hedgers: Any, settings: Any, out_dir: Path, title: str) -> Any:
        raise KeyboardInterrupt  # stops the command after its folder is chosen

    monkeypatch.setattr(bench, "benchmark", fake)
    with pytest.raises(SystemExit) as stopped:
        main(["benchmark", "--out", str(tmp_path), "--seed", "11", "--paths", "300",
              "--no-progress"])
    assert stopped.value.code == 130
    written = load_config(tmp_path / "benchmark-ShortCall-v0-seed11" / "run_config.yaml")
    assert (written.arena.seed, written.arena.paths) == (11, 300)


# ---------------------------------------------------------------- what the commands pass on
@pytest.mark.parametrize(("command", "target"), [
    (["train"], "hedgearena.training.train_and_score"),
    (["benchmark"], "hedgearena.cli.run_benchmark"),
])
def test_no_progress_turns_the_progress_bars_off(
    command: list[str], target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(killed: ``progress`` passed as ``args.no_progress``, or always True, or
    ``--no-progress`` stored as False.)"""
    seen: list[bool] = []
    monkeypatch.setattr(target, lambda config, progress, **_: seen.append(progress))
    main([*command, "--out", str(tmp_path)])
    main([*command, "--out", str(tmp_path), "--no-progress"])
    assert seen == [True, False]


@pytest.mark.parametrize(("statuses", "message"), [
    (["ok", "failed"], "1 trial(s) failed"),
    (["ok", "unfinished", "unfinished"], "2 trial(s) unfinished"),
])
def test_a_sweep_with_failed_or_unfinished_trials_exits_1(
    statuses: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A script running sweeps sees that not every trial finished (killed: exit 0, or the
    unfinished trials not counted)."""
    import pandas as pd

    from hedgearena import sweep

    folder = tmp_path / "sweep"
    folder.mkdir()
    (folder / "results.md").write_text("| trial |\n")
    table = pd.DataFrame({"trial": [f"t{i}" for i in range(len(statuses))], "status": statuses})
    monkeypatch.setattr(sweep, "run_sweep", lambda config, **kwargs: sweep.SweepResult(
        folder, table, {"md": folder / "results.md"}))
    argv = ["sweep", "--out", str(tmp_path), "--set", "sweep.space={seed: [1, 2, 3]}",
            "--no-progress"]
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 1
    assert message in " ".join(capsys.readouterr().out.split())
    table["status"] = "ok"
    main(argv)  # every trial finished: exit 0


def test_ctrl_c_before_the_config_resolved_says_nothing_was_written(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """(killed: the ``config is None`` case dropped: an AttributeError on the None config.)"""
    def interrupted(args: Any) -> RunConfig:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "resolve_config", interrupted)
    with pytest.raises(SystemExit) as stopped:
        main(["train"])
    assert stopped.value.code == 130
    assert "train.py train: interrupted; nothing was written" in capsys.readouterr().err


def test_an_out_below_a_file_names_out_and_how_to_change_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """(killed: the hint naming ``out`` and ``--out`` dropped.)"""
    blocker = tmp_path / "f"
    blocker.write_text("")
    err = _refused(["benchmark", "--out", str(blocker / "runs")], capsys)
    assert f"(out is {str(blocker / 'runs')!r}: --out or --set out=...)" in err


def test_each_command_checks_its_own_output_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """benchmark's default folder and evaluate's ``RUN_DIR/evaluation`` are checked, not
    another (killed: evaluate checked RUN_DIR; benchmark checked the train run's folder)."""
    (tmp_path / "benchmark-ShortCall-v0-seed2024").write_text("")
    err = _refused(["benchmark", "--out", str(tmp_path), "--no-progress"], capsys)
    assert "benchmark-ShortCall-v0-seed2024' is a file, not a folder" in err
    assert "(choose another --name or --out)" in err
    run = _run_folder(tmp_path / "run")
    (run / "evaluation").write_text("")
    err = _refused(["evaluate", str(run), "--no-progress"], capsys)
    assert f"{str(run / 'evaluation')!r} is a file, not a folder" in err
    assert "choose another" not in err  # evaluate has no --name or --out


def test_stress_refuses_scenarios_none_of_which_apply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With skip_inapplicable (the default) a stress of no applicable scenario is refused
    before its folder is written (killed: the check dropped)."""
    out = tmp_path / "runs"
    err = _refused(["stress", "--env", "hedgearena/OptionBook-v0", "--scenarios", "vol_spike",
                    "--hedgers", "delta", "--out", str(out), "--no-progress"], capsys)
    assert "no scenario of stress.scenarios applies to this env" in err
    assert "vol_spike" in err
    assert not out.exists()


def test_the_agents_record_names_each_agents_folder_seed_and_model_digests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``agents.yaml``: absolute run folder, algorithm, the run's ``seed``, SHA-256 of every
    file under ``model/`` (sub-folders too); without agents a stale record is removed
    (killed: relative folder, arena.seed for seed, top-level files only, stale file kept)."""
    from hedgearena.yaml_io import load_yaml

    run = _run_folder(tmp_path / "run", "agent.algo=ppo", "seed=7")
    (run / "model" / "sub").mkdir(parents=True)
    (run / "model" / "model.zip").write_bytes(b"weights")
    (run / "model" / "sub" / "stats.pkl").write_bytes(b"stats")
    monkeypatch.chdir(tmp_path)
    path = cli.write_agents_record(tmp_path / "agents.yaml", [Path("run")],
                                   [SimpleNamespace(name="ppo agent")])
    assert path is not None
    record = load_yaml(path.read_text())
    assert record == {"ppo agent": {
        "run_dir": str(run.absolute()), "algo": "ppo", "seed": 7,
        "model_sha256": {"model.zip": hashlib.sha256(b"weights").hexdigest(),
                         "sub/stats.pkl": hashlib.sha256(b"stats").hexdigest()}}}
    assert cli.write_agents_record(path, [], []) is None
    assert not path.exists()


# ------------------------------------------------------------------ the run runner (training)
@pytest.fixture
def fake_trainer(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The deep-hedging trainer replaced by one that records its settings and trains nothing:
    10 steps, the best at step 4, a two-entry history."""
    from hedgearena.agents import deep_hedging

    made: list[Any] = []

    class Fake:
        def __init__(self, env_config: Any, config: Any, **kwargs: Any) -> None:
            made.append(SimpleNamespace(env_config=env_config, config=config, **kwargs))

        def train(self) -> Any:
            return deep_hedging.TrainingResult(
                step=10, best_step=4, best={"objective": 1.5},
                history=[{"step": 4, "objective": 1.5}, {"step": 8, "objective": 2.0}],
                seconds=0.0)

        def save(self, path: Path) -> None:
            path.mkdir(parents=True, exist_ok=True)

    monkeypatch.setattr(deep_hedging, "DeepHedgingTrainer", Fake)
    return made


def test_a_run_trains_with_its_seed_and_records_what_training_did(
    tmp_path: Path, fake_trainer: list[Any]
) -> None:
    """The run's ``seed`` is the deep hedger's unless its hyperparameters give one (killed:
    not passed on: TrainerConfig's default 0 trained every seed alike); ``training.json``
    holds the steps done, the best step and the validation history (killed: best step
    recorded as the steps, history dropped); ``config.yaml`` and ``env.yaml`` beside it."""
    config = load_config(None, ["seed=13", f"out={tmp_path}"])
    training.train_run(config, progress=False)
    assert fake_trainer[0].config.seed == 13
    assert fake_trainer[0].checkpoint_dir == config.run_dir / "checkpoints"
    info = json.loads((config.run_dir / "training.json").read_text())
    assert (info["steps"], info["best_step"], info["best_validation"]) == (10, 4,
                                                                           {"objective": 1.5})
    assert [e["step"] for e in info["history"]] == [4, 8]
    assert info["seconds"] >= 0.0
    assert load_config(config.run_dir / "config.yaml") == config
    assert (config.run_dir / "env.yaml").is_file()
    own = load_config(None, ["seed=13", "agent.hyperparams={seed: 21}", f"out={tmp_path}",
                             "name=own"])
    training.train_run(own, progress=False)
    assert fake_trainer[1].config.seed == 21


def test_the_agent_learns_on_the_history_before_the_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``arena.split`` the trained env ends the day before the split (killed: the whole
    history passed, or the config without the cut)."""
    seen: list[Any] = []

    def record(config: RunConfig, env_config: Any, run_dir: Path, progress: bool) -> dict:
        seen.append((config, env_config))
        return {}

    monkeypatch.setattr(training, "train_agent", record)
    config = load_config(None, ["env.id=hedgearena/HistoricalReplay-v0",
                                "arena.split=2012-01-02", f"out={tmp_path}"])
    _, info = training.train_run(config, progress=False)
    learned, env_config = seen[0]
    assert learned.env.kwargs["market_kwargs"]["end"] == "2012-01-01"  # the calendar day before
    assert "..2011-12-30," in repr(env_config.market)  # 2011's last trading day, a Friday
    assert "..2011-12-30," not in repr(config.env.config().market)  # the whole history
    assert "seconds" in info


def test_the_announcement_says_whether_the_run_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``announce(resuming)``: True once the folder holds checkpoints (killed: always False)."""
    monkeypatch.setattr(training, "train_agent", lambda *args: {})
    config = load_config(None, [f"out={tmp_path}"])
    said: list[bool] = []
    training.train_run(config, progress=False, announce=said.append)
    (config.run_dir / "checkpoints").mkdir()
    training.train_run(config, progress=False, announce=said.append)  # empty: not resuming
    (config.run_dir / "checkpoints" / "step_2").mkdir()
    training.train_run(config, progress=False, announce=said.append)
    assert said == [False, False, True]


@pytest.mark.parametrize(("first", "then", "line"), [
    (["seed=1"], ["seed=2"], "seed: 1 -> 2"),
    ([], ["arena.split=2012-01-02"], "arena.split: None -> '2012-01-02'"),
    (["agent.algo=ppo"], ["agent.algo=sac"], "agent.algo: 'ppo' -> 'sac'"),
    (["agent.algo=ppo", "agent.env_kwargs={action_mode: trade}"],
     ["agent.algo=ppo", "agent.env_kwargs={action_mode: target}"],
     "agent.env_kwargs.action_mode: 'trade' -> 'target'"),
    (["env.kwargs={cost: 0.002}"], [], "env.kwargs.cost: 0.002 -> unset"),
])
def test_a_resume_under_other_training_settings_is_refused(
    first: list[str], then: list[str], line: str, tmp_path: Path
) -> None:
    """Checkpoints of one seed, split, algorithm, view or env resume under no other (killed:
    each setting dropped from the comparison; keys the new config lacks not compared)."""
    run = tmp_path / "run"
    _run_folder(run, *first)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "step_1").mkdir()
    with pytest.raises(ValueError, match="holds checkpoints trained with other settings") as error:
        training.check_resumable(load_config(None, then), run)
    assert line in str(error.value)
    training.check_resumable(load_config(None, first), run)  # the same settings resume


def test_a_resume_may_change_the_zoo_budget(tmp_path: Path) -> None:
    """The zoo record's ``n_timesteps`` is a budget, not a setting (killed: compared)."""
    from hedgearena.agents.training import HYPERPARAMS_FILE, resolved_hyperparams
    from hedgearena.yaml_io import dump_yaml

    config = load_config(None, ["agent.algo=ppo", "agent.hyperparams={n_timesteps: 512}"])
    record = {**resolved_hyperparams(config), "n_timesteps": 256}
    (tmp_path / HYPERPARAMS_FILE).write_text(dump_yaml(record))
    assert training._changed_zoo_hyperparams(config, tmp_path, "agent") == []


@pytest.mark.parametrize(("trained", "scored", "refused"), [
    ("2012-01-02", "2012-01-02", False),  # the same split: out of sample
    ("2012-01-02", "2013-01-02", False),  # later: out of sample
    ("2012-01-02", "2011-01-03", True),
    ("2012-01-02", None, True),  # the whole history, the training days included
    (None, None, False),
])
def test_scoring_may_not_replay_the_days_the_agent_learnt_on(
    trained: str | None, scored: str | None, refused: bool
) -> None:
    """(killed: the same split refused; no split let through.)"""
    def config(split: str | None) -> RunConfig:
        return load_config(None, [f"arena.split={split}"] if split else [])

    if refused:
        with pytest.raises(ValueError, match=f"set arena.split to {trained} or later"):
            training.check_scoring_split(config(trained), config(scored))
    else:
        training.check_scoring_split(config(trained), config(scored))


def test_evaluate_may_rename_and_move_its_output_and_writes_its_config_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``name`` and ``out`` are evaluation fields (killed: ``name`` refused); the evaluation's
    config goes to ``evaluation/run_config.yaml``, the run's ``config.yaml`` untouched (killed:
    written as ``evaluation/config.yaml``)."""
    run = _run_folder(tmp_path / "run", "seed=5")
    saved = (run / "config.yaml").read_text()
    monkeypatch.setattr(training, "load_agent", lambda run_dir, config: "agent")
    scored: list[Path] = []
    monkeypatch.setattr(training, "score_agent",
                        lambda config, env_config, hedger, out_dir, progress:
                        scored.append(out_dir))
    config = load_config(None, ["seed=5", "name=renamed", "out=elsewhere", "arena.paths=777"])
    assert training.evaluate_run(run, config, progress=False) == run / "evaluation"
    assert scored == [run / "evaluation"]
    assert load_config(run / "evaluation" / "run_config.yaml") == config
    assert not (run / "evaluation" / "config.yaml").exists()
    assert (run / "config.yaml").read_text() == saved


def test_evaluate_checks_its_hedgers_before_it_loads_or_writes(tmp_path: Path) -> None:
    """(killed: ``check_arena`` dropped: the run folder's missing model was named instead.)"""
    run = _run_folder(tmp_path / "run", "seed=5")
    config = load_config(None, ["seed=5", "arena.hedgers=[delta, delta_vega]"])
    with pytest.raises(ValueError, match=r"arena\.hedgers: 'delta_vega' cannot hedge this env"):
        training.evaluate_run(run, config, progress=False)
    assert not (run / "evaluation").exists()


# ------------------------------------------------------------ the env's rgb_array path story
@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The arguments of every path-story figure drawn (the real one is drawn too)."""
    from hedgearena.envs import rendering

    calls: list[dict[str, Any]] = []
    real = rendering.path_story_figure

    def spy(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(rendering, "path_story_figure", spy)
    return calls


def test_a_story_frame_draws_the_decisions_points_and_holds_them_into_the_end(
    drawn: list[dict[str, Any]]
) -> None:
    """A story rebalancing every 2nd step of 4: its points are steps 0, 2, 4, the spot and the
    model hedge read at those steps (killed: the first 3 spots, the next step's hedge); at the
    end (step 4 = n_steps) the model hedge and the hedge are held from step 2 (killed: end
    missed, either not held)."""
    from hedgearena.envs.rendering import story_frame

    spot = np.array([100.0, 101.0, 102.0, 103.0, 104.0])
    model = np.array([-50.0, -55.0, -60.0, -65.0, 0.0])  # 0 at expiry: the book has expired
    frame = story_frame([(0, 48.0, 0.1), (2, 61.0, 0.3), (4, 0.0, 0.7)], spot, model, "t")
    assert frame.dtype == np.uint8
    assert frame.shape[2] == 3
    (args,) = drawn
    assert list(args["times"]) == [0, 2, 4]
    assert list(args["spot"]) == [100.0, 102.0, 104.0]
    assert list(args["model_hedge"]) == [-50.0, -60.0, -60.0]
    assert list(args["hedges"]["hedge"]) == [48.0, 61.0, 61.0]
    assert list(args["costs"]["hedge"]) == [0.1, 0.3, 0.7]  # the unwind's cost is kept
    story_frame([(0, 48.0, 0.1), (2, 61.0, 0.3)], spot, model, "t")  # before the end
    assert list(drawn[1]["model_hedge"]) == [-50.0, -60.0]
    assert list(drawn[1]["hedges"]["hedge"]) == [48.0, 61.0]


def test_held_to_end_holds_a_two_point_story() -> None:
    """(killed: ``size > 2``.)"""
    from hedgearena.envs.rendering import held_to_end

    np.testing.assert_array_equal(held_to_end([3.0, 0.0]), [3.0, 3.0])


def test_trades_are_marked_where_the_position_changes_the_first_from_flat() -> None:
    """Trade markers at the points where the position differs from the one before, the first
    point against a flat start (killed: the first point compared with itself)."""
    from hedgearena.envs.rendering import path_story_figure

    fig = path_story_figure([0.0, 1.0, 2.0, 3.0], [100.0] * 4, [0.0] * 4,
                            {"a": [5.0, 5.0, 3.0, 3.0]})
    markers = [line for line in fig.axes[1].lines if line.get_marker() == "."]
    assert len(markers) == 1
    np.testing.assert_array_equal(markers[0].get_xdata(), [0.0, 2.0])
    np.testing.assert_array_equal(markers[0].get_ydata(), [5.0, 3.0])


def test_positions_and_costs_are_steps_held_after_each_decision() -> None:
    """Positions and costs are drawn ``steps-post`` (killed: ``pre``, which drew each one
    before its decision)."""
    from hedgearena.envs.rendering import path_story_figure

    fig = path_story_figure([0.0, 1.0, 2.0], [100.0] * 3, [0.0] * 3, {"a": [1.0, 2.0, 3.0]},
                            costs={"a": [0.0, 0.1, 0.2]})
    steps = [line for ax in fig.axes[1:] for line in ax.lines
             if line.get_drawstyle().startswith("steps")]
    assert [line.get_drawstyle() for line in steps] == ["steps-post", "steps-post"]


def test_the_panels_and_their_furniture_follow_the_story() -> None:
    """Two panels without costs (killed: always a cost panel); one shared time axis (killed:
    unshared); a strike line on the spot panel (killed: dropped); a costs legend only when the
    costs are not the positions' hedgers (killed: the test flipped); a cost's colour is its
    hedger's (killed: the costs' own palette); hedgers told apart by colour (killed: one
    colour); a long title wrapped (killed: one line)."""
    from hedgearena.envs.rendering import path_story_figure

    t, spot, model = [0.0, 0.5, 1.0], [100.0, 101.0, 99.0], [-0.5, -0.6, -0.4]
    hedges = {"a": [1.0, 2.0, 2.0], "b": [0.0, 1.0, 1.0]}
    plain = path_story_figure(t, spot, model, hedges, strike=100.0, title="x " * 80)
    assert len(plain.axes) == 2
    assert plain.axes[0].get_shared_x_axes().joined(plain.axes[0], plain.axes[1])
    strike = [line for line in plain.axes[0].lines if line.get_label() == "strike"]
    assert len(strike) == 1
    assert list(strike[0].get_ydata()) == [100.0, 100.0]
    assert "\n" in plain._suptitle.get_text()
    colors = {line.get_label(): line.get_color() for line in plain.axes[1].lines
              if line.get_label() in hedges}
    assert colors["a"] != colors["b"]

    same = path_story_figure(t, spot, model, hedges, costs={"a": [0, 1, 1], "b": [0, 0, 1]})
    assert len(same.axes) == 3
    assert same.axes[-1].get_legend() is None  # the positions' legend names the colours
    some = path_story_figure(t, spot, model, hedges, costs={"b": [0, 0, 1]})
    assert some.axes[-1].get_legend() is not None
    (cost,) = some.axes[-1].lines
    assert cost.get_color() == colors["b"]


def test_integer_times_get_integer_ticks_and_years_do_not() -> None:
    """(killed: ``steps`` true for any times, which ticked three years at 0, 1, 2, 3 only.
    Matplotlib's integer locator falls back to fractional ticks when fewer than two integers
    are in view, so the years span 0 to 3.)"""
    from hedgearena.envs.rendering import path_story_figure

    t = np.linspace(0.0, 3.0, 13)  # quarters of a year
    years = path_story_figure(t, [100.0] * 13, [0.0] * 13, {"a": [1] * 13})
    years.canvas.draw()
    ticks = years.axes[-1].get_xticks()
    assert np.any(ticks != np.round(ticks))


def test_a_one_point_story_is_drawn_as_markers_in_a_window_around_it() -> None:
    """One point (just after a reset, or one time twice): markers, the axis from t - 1 to
    t + 1 (killed: a two-entry time with one value drawn as a line; the window dropped)."""
    from hedgearena.envs.rendering import path_story_figure

    fig = path_story_figure([3, 3], [100.0, 100.0], [0.0, 0.0], {"a": [1.0, 1.0]},
                            costs={"a": [0.0, 0.0]})
    assert fig.axes[0].lines[0].get_marker() == "o"
    assert fig.axes[-1].get_xlim() == (2.0, 4.0)


def test_up_to_twenty_colours_are_tab10s_then_their_light_shades() -> None:
    """(killed: tab20 in its own order, which put a light shade second.)"""
    from matplotlib import colormaps

    from hedgearena.envs.rendering import distinct_colors

    tab10 = [colormaps["tab10"](i) for i in range(10)]
    assert distinct_colors(10) == tab10
    assert [tuple(np.round(c, 6)) for c in distinct_colors(12)[:10]] == [
        tuple(np.round(c, 6)) for c in tab10]


# ------------------------------------------------- round 2: survivors of the second mutant run
def test_a_deep_hedgers_own_seed_is_the_one_scoring_may_not_reuse() -> None:
    """The deep hedger trains on numpy's stream ``[hyperparams.seed, 0, 0]`` when its
    hyperparameters give a seed (the trainer's seed is the run's only by default, see
    ``deep_hedging_settings``), so scoring on ``arena.seed`` = that seed is refused and
    ``arena.seed`` = the run's unused ``seed`` is not (killed: the run's ``seed`` compared,
    which refused the harmless seed and let the training paths through)."""
    own = load_config(None, ["seed=13", "agent.hyperparams={seed: 21}"])
    with pytest.raises(ValueError, match=r"the deep hedger's seed equals arena\.seed \(21\)"):
        training.check_scoring_seed(own, 21, "arena.seed")
    training.check_scoring_seed(own, 13, "arena.seed")  # 13 trained nothing
    default = load_config(None, ["seed=13"])  # no own seed: the run's is the trainer's
    with pytest.raises(ValueError, match=r"the deep hedger's seed equals stress\.seed \(13\)"):
        training.check_scoring_seed(default, 13, "stress.seed")


def test_evaluate_refuses_to_score_on_the_history_the_agent_learnt_on(tmp_path: Path) -> None:
    """A run trained with ``arena.split`` learnt on the days before it (``training_config``):
    ``evaluate`` without a split would replay those days and is refused before it loads or
    writes anything (killed: ``check_scoring_split`` dropped from ``evaluate_run``, which
    went on to the missing model instead)."""
    replay = "env.id=hedgearena/HistoricalReplay-v0"
    run = _run_folder(tmp_path / "run", replay, "arena.split=2012-01-02")
    with pytest.raises(ValueError, match=r"set arena\.split to 2012-01-02 or later"):
        training.evaluate_run(run, load_config(None, [replay]), progress=False)
    assert not (run / "evaluation").exists()


@pytest.mark.parametrize(("own_end", "learnt_end"), [
    ("2015-06-30", "2012-01-01"),  # past the split: cut to the calendar day before it
    ("2010-06-30", "2010-06-30"),  # before the split: the history's own end is kept
])
def test_the_training_history_ends_before_the_split_whatever_end_it_was_given(
    own_end: str, learnt_end: str
) -> None:
    """``market_kwargs.end`` past ``arena.split`` would let the agent learn on the scored
    days (killed: a given ``end`` kept whatever it was)."""
    config = RunConfig.model_validate({
        "env": {"id": "hedgearena/HistoricalReplay-v0",
                "kwargs": {"market_kwargs": {"end": own_end}}},
        "arena": {"split": "2012-01-02"}})
    assert training.training_config(config).env.kwargs == {"market_kwargs": {"end": learnt_end}}


def test_the_agent_is_scored_after_the_baselines_its_row_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report lists ``arena.hedgers`` in their order, then the agent (the README's score
    table ends with the agent's row) (killed: the agent put first)."""
    seen: list[Any] = []

    class ScoredError(Exception):
        pass

    def record(env_config: Any, specs: list[Any], *args: Any) -> Any:
        seen.append(specs)
        raise ScoredError

    monkeypatch.setattr(training, "benchmark", record)
    config = load_config(None, ["arena.hedgers=[no_hedge, delta]"])
    agent = SimpleNamespace(name="deep hedging agent")
    with pytest.raises(ScoredError):
        training.score_agent(config, config.env.config(), agent, tmp_path, False)  # type: ignore[arg-type]
    assert seen == [["no_hedge", "delta", agent]]


def test_checkpoints_without_a_saved_config_have_nothing_to_compare_against(
    tmp_path: Path
) -> None:
    """Settings are compared with the folder's ``config.yaml`` only when it holds one (killed:
    checkpoints alone triggered the comparison, which failed on the missing file)."""
    run = tmp_path / "run"
    (run / "checkpoints" / "step_1").mkdir(parents=True)
    training.check_resumable(load_config(None, ["seed=3"]), run)


def test_a_saved_config_that_is_not_a_mapping_is_named(tmp_path: Path) -> None:
    """A run folder's ``config.yaml`` holding a list is named, not an AttributeError (killed:
    the mapping check dropped)."""
    run = tmp_path / "run"
    (run / "checkpoints" / "step_1").mkdir(parents=True)
    (run / "config.yaml").write_text("- seed\n- 3\n")
    with pytest.raises(ValueError, match=r"config\.yaml must hold a mapping, got list"):
        training.check_resumable(load_config(None, []), run)


def test_a_changed_calibrated_view_says_why_it_may_have_changed(tmp_path: Path) -> None:
    """A refused resume whose view's ``risk_aversion`` changed says that ``auto`` calibrates it
    on the validation paths (killed: the hint matched no setting)."""
    run = _run_folder(tmp_path / "run", "agent.algo=ppo", "agent.env_kwargs={risk_aversion: 1.0}")
    (run / "checkpoints" / "step_1").mkdir(parents=True)
    then = load_config(None, ["agent.algo=ppo", "agent.env_kwargs={risk_aversion: 2.0}"])
    with pytest.raises(ValueError, match=r"set to auto are calibrated on the validation paths"):
        training.check_resumable(then, run)


def test_the_agents_checks_see_the_history_before_the_split() -> None:
    """``learning_env`` (what ``check_agent`` cuts for validation) is the history before
    ``arena.split``: it ends on 2011-12-30, the last trading day (a Friday) before the split
    of 2012-01-02 (killed: the whole history checked)."""
    config = load_config(None, ["env.id=hedgearena/HistoricalReplay-v0",
                                "arena.split=2012-01-02"])
    whole = config.env.config()
    assert "..2011-12-30," in repr(training.learning_env(config, whole).market)
    assert "..2011-12-30," not in repr(whole.market)
    plain = load_config(None, [])
    assert training.learning_env(plain, plain.env.config()) == plain.env.config()


def test_a_trained_model_is_needed_to_load_the_agent(tmp_path: Path) -> None:
    """(killed: the ``model/`` check dropped, which failed later on a file inside it.)"""
    run = _run_folder(tmp_path / "run", "seed=5")
    with pytest.raises(ValueError, match=r"has no trained model \(model/ is missing\): train it"):
        training.load_agent(run, load_config(None, ["seed=5"]))


def test_the_budget_a_run_started_with_is_its_zoo_records(tmp_path: Path) -> None:
    """An SB3 run whose budget came from the zoo file keeps it in ``hyperparams.yaml``; with
    a checkpoint at 256 env steps (whole 128-step rollouts past a budget of 200), the same
    budget of 200 resumes even after the zoo file changed (killed: the record not read, the
    budget taken from today's zoo file, which refused it)."""
    from hedgearena.agents.training import HYPERPARAMS_FILE, resolved_hyperparams
    from hedgearena.yaml_io import dump_yaml

    run = tmp_path / "run"
    saved = RunConfig.model_validate({"agent": {"algo": "ppo"}, "out": str(tmp_path),
                                      "name": "run"})
    saved.dump(run / "config.yaml")
    assert resolved_hyperparams(saved).get("n_timesteps") != 200  # today's zoo budget differs
    (run / HYPERPARAMS_FILE).write_text(
        dump_yaml({**resolved_hyperparams(saved), "n_timesteps": 200}))
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "latest.json").write_text(
        json.dumps({"path": "step_256", "timesteps": 256}))
    again = saved.model_copy(update={"agent": saved.agent.model_copy(
        update={"hyperparams": {"n_timesteps": 200}})})
    training.check_budget(again, run)
    with pytest.raises(ValueError, match="checkpoint at 256 env steps"):
        training.check_budget(again.model_copy(update={"agent": again.agent.model_copy(
            update={"hyperparams": {"n_timesteps": 150}})}), run)


def test_an_evaluation_config_names_its_first_six_differences_then_an_ellipsis() -> None:
    """Eight leaves differ (seven hyperparameters and the seed): the first six in sorted order
    are shown, then ``; ...`` (killed: only the first shown)."""
    params = "{a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7}"
    with pytest.raises(ValueError, match="evaluate scores the run's own agent") as error:
        training.check_evaluation_config(
            load_config(None, []), load_config(None, ["seed=1", f"agent.hyperparams={params}"]))
    message = str(error.value)
    assert "not agent, seed (" in message
    shown = "; ".join(f"agent.hyperparams.{k}: unset -> {v}"
                      for v, k in enumerate("abcdef", start=1))
    assert message.endswith(f"({shown}; ...)")


def test_a_missing_model_file_is_a_usage_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run folder whose ``model/`` lacks a file exits 2 naming the file, not with a
    FileNotFoundError traceback (killed: only ValueError caught by ``main``)."""
    monkeypatch.chdir(tmp_path)
    run = _run_folder(Path("run"), "seed=5")
    (run / "model").mkdir()
    err = _refused(["evaluate", "run", "--no-progress"], capsys)
    assert "train.py evaluate: error: deep-hedging settings 'run/model/settings.json' is " \
           "missing: train the run again or restore the file" in err


def test_two_agents_of_one_name_are_told_apart_by_their_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two deep hedgers get their folder's name added; the one ppo agent keeps its name
    (killed: names renamed only when three agents shared them)."""
    monkeypatch.setattr(training, "load_agent", lambda run_dir, run: SimpleNamespace(
        name=training.agent_name(run)))
    folders = [_run_folder(tmp_path / "a", "seed=5"), _run_folder(tmp_path / "b", "seed=6"),
               _run_folder(tmp_path / "c", "seed=5", "agent.algo=ppo")]
    agents = cli.load_agents(folders, load_config(None, []))
    assert [a.name for a in agents] == ["deep hedging agent (a)", "deep hedging agent (b)",
                                        "ppo agent"]


def test_the_stress_agents_record_is_keyed_by_the_agents_not_the_baselines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``agents.yaml`` records the ``--agent`` hedgers, which follow ``stress.hedgers`` in the
    list scored (killed: the first hedgers of the list recorded, the baselines)."""
    from hedgearena.baselines import stress
    from hedgearena.yaml_io import load_yaml

    monkeypatch.setattr(training, "load_agent", lambda run_dir, run: SimpleNamespace(
        name=training.agent_name(run)))
    monkeypatch.setattr(stress, "stress_test", lambda *args, **kwargs: SimpleNamespace(
        skipped={}))
    monkeypatch.setattr(stress, "print_stress_table", lambda *args: None)
    run = _run_folder(tmp_path / "run", "seed=5")
    config = load_config(None, [f"out={tmp_path}", "stress.hedgers=[delta, no_hedge]"])
    out_dir = cli.run_stress(config, [run], progress=False)
    record = load_yaml((out_dir / cli.AGENTS_FILE).read_text())
    assert list(record) == ["deep hedging agent"]
    assert record["deep hedging agent"]["run_dir"] == str(run.absolute())
