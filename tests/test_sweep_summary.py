"""A sweep's summary by setting (``summary.csv/.md``) and its trials' training seconds.

Checked against direct numpy on a hand-made results table: each setting's mean, sample std
(ddof 1), min and max of the objective over its finished trials (failed and unfinished trials
left out), sorted by the sweep's metric and mode; no Ray needed (:func:`write_results` and the
CLI's printing take a table).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from hedgearena import sweep
from hedgearena.cli import main
from hedgearena.run_config import RunConfig, SweepSpec
from hedgearena.sweep import (
    RUN_COLUMNS,
    TRIAL_METRICS,
    summary_table,
    training_seconds,
    write_results,
)

SPACE = {"agent.algo": ["ppo", "sac", "td3"], "seed": [0, 1, 2]}


def _results(rng: np.random.Generator) -> pd.DataFrame:
    """Nine trials of three algorithms x three seeds, one sac trial failed, one td3 unfinished."""
    algos = np.repeat(["ppo", "sac", "td3"], 3)
    rows = {"trial": [f"t{i}" for i in range(9)],
            "status": ["ok"] * 4 + ["failed", "ok", "ok", "unfinished", "ok"],
            "attempts": [1] * 9, "agent.algo": algos, "seed": np.tile([0, 1, 2], 3)}
    for key in [*TRIAL_METRICS, *RUN_COLUMNS]:
        rows[key] = rng.normal(500.0, 20.0, 9)
    table = pd.DataFrame({**rows, "error": [""] * 9, "run_dir": ["-"] * 9})
    table.loc[table["status"] != "ok", [*TRIAL_METRICS, *RUN_COLUMNS]] = np.nan
    return table


@pytest.mark.parametrize("mode", ["min", "max"])
def test_each_setting_is_summarised_over_its_finished_seeds(mode: str) -> None:
    table = _results(np.random.default_rng(7))
    summary = summary_table(table, SweepSpec(space=SPACE, mode=mode))
    assert len(summary) == 3
    for _, row in summary.iterrows():
        mine = table[(table["agent.algo"] == row["agent.algo"]) & (table["status"] == "ok")]
        y = mine["objective"].to_numpy()
        assert row["trials"] == len(y) == {"ppo": 3, "sac": 2, "td3": 2}[row["agent.algo"]]
        assert row["objective"] == pytest.approx(y.mean(), rel=1e-15)
        assert row["objective_sd"] == pytest.approx(np.std(y, ddof=1), rel=1e-12)
        assert (row["objective_min"], row["objective_max"]) == (y.min(), y.max())
        for key in [*TRIAL_METRICS, *RUN_COLUMNS]:
            assert row[key] == pytest.approx(mine[key].mean(), rel=1e-15), key
    expected = sorted(summary["objective"], reverse=mode == "max")
    assert summary["objective"].tolist() == expected


def test_the_summary_sorts_by_the_sweeps_metric() -> None:
    table = _results(np.random.default_rng(3))
    summary = summary_table(table, SweepSpec(space=SPACE, metric="mean_cost", mode="min"))
    assert summary["mean_cost"].is_monotonic_increasing
    assert not summary["objective"].is_monotonic_increasing  # a different order here


def test_a_sweep_of_seeds_alone_is_one_row_and_one_trial_has_no_spread() -> None:
    table = _results(np.random.default_rng(5)).drop(columns="agent.algo")
    summary = summary_table(table, SweepSpec(space={"seed": [0, 1, 2]}))
    done = table[table["status"] == "ok"]["objective"]
    assert len(summary) == 1
    assert summary.loc[0, "trials"] == 7
    assert summary.loc[0, "objective_sd"] == pytest.approx(done.std(ddof=1))
    single = _results(np.random.default_rng(5)).iloc[[0]]
    assert math.isnan(summary_table(single, SweepSpec(space=SPACE)).loc[0, "objective_sd"])


def test_training_seconds_come_from_the_run_folder(tmp_path: Path) -> None:
    assert math.isnan(training_seconds(tmp_path))  # no training.json yet (a running trial)
    (tmp_path / "training.json").write_text(json.dumps({"algo": "ppo", "seconds": 41.5}))
    assert training_seconds(tmp_path) == 41.5
    (tmp_path / "training.json").write_text("{not json")
    assert math.isnan(training_seconds(tmp_path))


def test_the_summary_files_and_the_printed_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    table = _results(np.random.default_rng(11))
    config = RunConfig(sweep=SweepSpec(space=SPACE))
    files = write_results(table, config, tmp_path)
    written = pd.read_csv(files["summary_csv"])
    pd.testing.assert_frame_equal(written, summary_table(table, config.sweep),
                                  check_dtype=False)
    document = json.loads(files["json"].read_text())
    assert [r["agent.algo"] for r in document["summary"]] == written["agent.algo"].tolist()
    assert "train_seconds" in document["metadata"]["metrics"]
    assert document["records"][4]["objective"] is None  # the failed trial's NaN
    markdown = files["summary_md"].read_text()
    assert markdown.splitlines()[0].startswith("| agent.algo | trials | objective | objective_sd")
    assert "| sac | 2 |" in markdown
    assert "train_seconds" in files["md"].read_text().splitlines()[0]

    def finished(config: RunConfig, **kwargs: Any) -> sweep.SweepResult:
        return sweep.SweepResult(tmp_path, table, files)

    monkeypatch.setattr(sweep, "run_sweep", finished)
    with pytest.raises(SystemExit):  # one trial failed: exit 1
        main(["sweep", "--out", str(tmp_path), "--set", "sweep.space={seed: [1, 2]}",
              "--no-progress"])
    out = capsys.readouterr().out
    assert "Finished trials by agent.algo" in " ".join(out.split())


def test_the_shipped_leaderboard_sweeps_every_learner_over_three_seeds() -> None:
    """configs/leaderboard.yml: each trial's config is a valid run (checked as the sweep does
    before Ray starts), every agent algorithm of hedgearena is in it, and the arena's paths
    are ``make run``'s (seed 2024, 100,000), where the README's Results table is."""
    from hedgearena.agents.sb3 import SB3_ALGOS
    from hedgearena.run_config import load_config
    from hedgearena.sweep import check_space, space_points

    config = load_config(Path(__file__).resolve().parents[1] / "configs" / "leaderboard.yml")
    check_space(config)
    points = space_points(config.sweep)
    algos = {point["agent.algo"] for point in points}
    assert algos == {"deep_hedging", *SB3_ALGOS}
    assert sorted({point["seed"] for point in points}) == [0, 1, 2]
    assert len(points) == 3 * len(algos)
    assert (config.arena.seed, config.arena.paths) == (2024, 100_000)


def test_the_option_book_leaderboard_scores_every_learner_on_the_same_paths() -> None:
    """configs/leaderboard_option_book.yml (the SB3 learners x seeds 0-2) and the deep-hedging
    sweep ``make leaderboard-option-book`` runs beside it (its Makefile command's ``--set`` and
    ``--hedgers``): every trial valid as the sweep checks it, and both score on the same env and
    the same 20,000 arena paths, so their rows are comparable."""
    import shlex

    from hedgearena.agents.sb3 import SB3_ALGOS
    from hedgearena.run_config import apply_overrides, load_config
    from hedgearena.sweep import check_space, space_points
    from hedgearena.yaml_io import load_yaml

    root = Path(__file__).resolve().parents[1]
    config = load_config(root / "configs" / "leaderboard_option_book.yml")
    check_space(config)
    points = space_points(config.sweep)
    assert {point["agent.algo"] for point in points} == set(SB3_ALGOS)
    assert sorted({point["seed"] for point in points}) == [0, 1, 2]
    assert len(points) == 3 * len(SB3_ALGOS)
    recipe = (root / "Makefile").read_text().split("leaderboard-option-book: ")[1]
    command = recipe.split("train.py sweep")[2].split("$(PY)")[0]  # deep hedging sweep only
    words = shlex.split(command.replace("\\\n", " "))
    space = words[words.index("--set") + 1].split("=", 1)
    hedgers = words[words.index("--hedgers") + 1]
    deep = load_config(root / words[words.index("--config") + 1])
    deep = apply_overrides(deep, {space[0]: load_yaml(space[1]), "arena.hedgers": [hedgers]})
    check_space(deep)
    assert deep.agent.algo == "deep_hedging"
    assert sorted(point["seed"] for point in space_points(deep.sweep)) == [0, 1, 2]
    for other in (config, deep):
        assert (other.env.id, other.env.kwargs) == ("hedgearena/OptionBook-v0", {})
        assert (other.arena.seed, other.arena.paths, other.arena.c) == (2024, 20_000, 1.5)
        assert other.arena.hedgers == ["delta"]


def test_categories_are_drawn_best_mean_first_and_numbers_where_they_are() -> None:
    from hedgearena.sweep import _positions

    names = pd.Series(["td3", "ppo", "sac", "ppo", "td3", "sac"])
    objective = pd.Series([501.0, 491.0, 495.0, 493.0, 499.0, 480.0])  # means 500, 492, 487.5
    x, labels = _positions(names, objective)
    assert labels == ["sac", "ppo", "td3"]
    assert x.tolist() == [2.0, 1.0, 0.0, 1.0, 2.0, 0.0]
    assert _positions(names)[1] == ["ppo", "sac", "td3"]  # no objective: by name
    numbers, none = _positions(pd.Series([0.001, 0.01]), objective.iloc[:2])
    assert none is None
    assert numbers.tolist() == [0.001, 0.01]


def test_a_category_with_one_finite_trial_gets_its_mean_and_no_bar() -> None:
    """A NaN objective (a delta missing on a finished trial) is left out of its category's
    mean and spread, silently (no numpy 'degrees of freedom' warning)."""
    import warnings

    from matplotlib.figure import Figure

    from hedgearena.sweep import _mean_ticks

    ax = Figure().add_subplot()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _mean_ticks(ax, np.array([0.0, 0.0, 1.0, 1.0]), np.array([500.0, np.nan, 490.0, 494.0]),
                    "C1")
    bars = ax.containers[0]
    assert bars.lines[0].get_ydata().tolist() == [500.0, 492.0]
    segments = bars.lines[2][0].get_segments()
    assert [round(s[1][1] - s[0][1], 12) for s in segments] == [0.0, round(2 * np.std(
        [490.0, 494.0], ddof=1), 12)]


@pytest.mark.parametrize(("key", "values", "whole"), [
    ("seed", [0, 1, 2], True),
    ("agent.hyperparams.steps", [100, 150, 200, 250], True),
    ("env.kwargs.cost", [0.001, 0.002, 0.004], False),
])
def test_a_panel_of_whole_numbers_has_whole_ticks(key: str, values: list, whole: bool) -> None:
    """A sweep of seeds (or counts) is read at 0, 1, 2, not at 0.25 steps between them."""
    from matplotlib.figure import Figure

    from hedgearena.sweep import _objective_panel

    done = pd.DataFrame({key: values, "objective": np.linspace(730.0, 750.0, len(values)),
                         "delta_objective": 877.2})
    ax = Figure().add_subplot()
    _objective_panel(ax, done, key, log=False)
    ticks = ax.get_xticks()
    assert np.all(ticks == np.round(ticks)) == whole, ticks
