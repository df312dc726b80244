"""``train.py benchmark --agent RUN_DIR...``: saved agents scored beside the baselines.

A researcher who trained several agents compares them with each other and with the classical
hedges on the same paths, in one report (paired tests against the reference, the frontier,
the P&L attribution). Checked against each run's own report: scored on the same arena settings
(paths, seed, hedgers) an agent's row must be its run's, to the last digit; and everything a
benchmark of agents could get wrong is refused before its folder is written.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from tiny_runs import TINY_ARENA, tiny_runs

from hedgearena.cli import main


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny PPO run and a tiny deep-hedging run on ShortCall-v0, trained through train.py."""
    return tiny_runs(tmp_path_factory.mktemp("runs"))


def test_agents_score_beside_the_baselines_as_in_their_own_reports(runs, tmp_path) -> None:
    main(["benchmark", "--agent", str(runs["ppo"]), str(runs["deep_hedging"]),
          "--out", str(tmp_path), "--name", "both", *TINY_ARENA])
    folder = tmp_path / "both"
    table = pd.read_csv(folder / "scores.csv", index_col=0)
    assert list(table.index) == ["delta", "ppo agent", "deep hedging agent"]
    for algo, name in (("ppo", "ppo agent"), ("deep_hedging", "deep hedging agent")):
        own = pd.read_csv(runs[algo] / "report" / "scores.csv", index_col=0)
        for column in ("mean_cost", "std_cost", "objective", "expected_shortfall_95",
                       "mean_turnover", "objective_diff"):
            assert table.loc[name, column] == own.loc[name, column], (name, column)
        assert table.loc["delta", "objective"] == own.loc["delta", "objective"]
    record = yaml.safe_load((folder / "agents.yaml").read_text())
    assert {name: entry["run_dir"] for name, entry in record.items()} == {
        "ppo agent": str(runs["ppo"].absolute()),
        "deep hedging agent": str(runs["deep_hedging"].absolute())}
    assert record["ppo agent"]["algo"] == "ppo"
    assert record["deep hedging agent"]["model_sha256"]  # the weights it scored
    config = yaml.safe_load((folder / "run_config.yaml").read_text())
    assert config["env"]["id"] == "hedgearena/ShortCall-v0"  # the first agent's env


def test_one_agent_can_be_the_reference_of_the_paired_tests(runs, tmp_path) -> None:
    main(["benchmark", "--agent", str(runs["ppo"]), str(runs["deep_hedging"]),
          "--out", str(tmp_path), "--name", "ref", *TINY_ARENA,
          "--set", "arena.reference=ppo agent"])
    table = pd.read_csv(tmp_path / "ref" / "scores.csv", index_col=0)
    assert pd.isna(table.loc["ppo agent", "objective_diff"])  # the reference itself
    assert table.loc["deep hedging agent", "objective_diff"] == pytest.approx(
        table.loc["deep hedging agent", "objective"] - table.loc["ppo agent", "objective"],
        abs=1e-9)


@pytest.mark.parametrize(("extra", "message"), [
    (["--arena-seed", "0"], "equals arena.seed (0): the scoring paths would be the agent's"),
    (["--env", "hedgearena/OptionBook-v0"], "the benchmark env is hedgearena/OptionBook-v0"),
    (["--set", "env.kwargs.cost=0.002"], "benchmark it on its own env"),
])
def test_a_benchmark_of_agents_is_refused_before_it_writes(runs, tmp_path, capsys, extra,
                                                            message) -> None:
    with pytest.raises(SystemExit):
        main(["benchmark", "--agent", str(runs["ppo"]), "--out", str(tmp_path),
              "--name", "refused", *TINY_ARENA, *extra])
    assert message in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "refused").exists()


def test_a_folder_that_is_no_run_is_named(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["benchmark", "--agent", str(tmp_path / "nothing"), "--out", str(tmp_path)])
    assert "--agent" in capsys.readouterr().err


def test_a_replay_agent_is_scored_after_its_split_only(tmp_path, capsys) -> None:
    """An agent that learnt on the S&P 500 before arena.split may not be scored on days before
    it (its run folder's config is enough: the check comes before its model is read)."""
    from hedgearena.run_config import RunConfig

    run = tmp_path / "replay-run"
    trained = RunConfig.model_validate({"env": {"id": "hedgearena/HistoricalReplay-v0"},
                                        "arena": {"split": "2012-01-01"}})
    trained.dump(run / "config.yaml")
    for split in ([], ["--set", "arena.split=2011-06-01"]):
        with pytest.raises(SystemExit):
            main(["benchmark", "--agent", str(run), "--out", str(tmp_path), "--name", "r",
                  *split])
        err = " ".join(capsys.readouterr().err.split())
        assert "the agent learnt on the history before arena.split = 2012-01-01" in err
    assert not (tmp_path / "r").exists()
