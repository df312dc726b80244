"""Reports: terminal table, CSV / JSON / Markdown round trips, PNG plots."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from rich.console import Console

from hedgearena.baselines import metrics, report
from hedgearena.baselines.hedger import EpisodeRecord, Hedger, run_hedger
from hedgearena.envs.episode import EpisodeBatch, build_episodes
from hedgearena.envs.vector_env import VecHedgingEnv


class Delta(Hedger):
    name = "delta"

    def positions(self, state: Any, obs: np.ndarray) -> np.ndarray:
        return state["model_hedge"][:, None]


class Band(Hedger):
    """A fixed no-trade band of ``width`` units around the model hedge."""

    def __init__(self, width: float) -> None:
        self.width, self.name = width, f"band {width:g}"

    def positions(self, state: Any, obs: np.ndarray) -> np.ndarray:
        model = state["model_hedge"]
        return np.clip(state["hedge"], model - self.width, model + self.width)[:, None]


class NoHedge(Hedger):
    name = "no hedge"

    def positions(self, state: Any, obs: np.ndarray) -> np.ndarray:
        return np.zeros((obs.shape[0], 1))


N_PATHS = 300


@pytest.fixture(scope="module")
def arena() -> tuple[dict[str, EpisodeRecord], EpisodeBatch, pd.DataFrame]:
    """A tiny arena: four hedgers on the same 300 paths with 1% costs, scored."""
    env = VecHedgingEnv(num_envs=N_PATHS, preset="ShortCall")
    batch = build_episodes(env.config, N_PATHS, np.random.default_rng(0))
    hedgers = [Delta(), NoHedge(), Band(5.0), Band(20.0)]
    records = {h.name: run_hedger(env, h, episodes=batch) for h in hedgers}
    scores = {
        name: metrics.score(record, batch, reference=records["delta"], n_boot=30)
        for name, record in records.items()
    }
    return records, batch, metrics.score_table(scores)


def assert_png(path: Path, min_size: tuple[int, int] = (600, 500)) -> None:
    assert path.exists()
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        assert min_size[0] <= width <= 2000
        assert min_size[1] <= height <= 2000
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert pixels.std() > 5  # something is drawn, not a blank canvas


# ------------------------------------------------------------------------------ tables
def test_write_tables_round_trip(arena: Any, tmp_path: Path) -> None:
    _, _, table = arena
    paths = report.write_tables(
        table, tmp_path / "out", "scores", c=1.5, risk_aversion=0.01, seed=7, extra={"cost": 0.01}
    )
    assert set(paths) == {"csv", "json", "md"}
    assert all(p.exists() for p in paths.values())
    csv = pd.read_csv(paths["csv"], index_col="hedger")
    pd.testing.assert_frame_equal(csv, table, check_exact=False, rtol=1e-12)

    document = json.loads(paths["json"].read_text())
    assert document["metadata"] == {
        "c": 1.5, "risk_aversion": 0.01, "n_paths": N_PATHS, "seed": 7, "cost": 0.01
    }
    assert document["units"]["mean_cost"] == "currency"
    records = pd.DataFrame(document["records"]).set_index("hedger").astype(float)
    pd.testing.assert_frame_equal(records, table, check_exact=False, rtol=1e-12)


def test_json_writes_nan_as_null(tmp_path: Path) -> None:
    table = metrics.score_table({"a": {"mean_cost": 1.0}, "b": {"std_cost": 2.0}})
    paths = report.write_tables(table, tmp_path, "t", c=1.5, risk_aversion=0.01, seed=None)
    records = json.loads(paths["json"].read_text())["records"]
    assert records[0] == {"hedger": "a", "mean_cost": 1.0, "std_cost": None}
    assert json.loads(paths["json"].read_text())["metadata"]["n_paths"] is None


def test_the_json_lists_the_notes_the_markdown_ends_with(tmp_path: Path) -> None:
    # The lines under the table (where tuned and fitted hedgers were chosen) were in the
    # Markdown only; the JSON lists them too, one a line, and [] without a note.
    table = metrics.score_table({"a": {"mean_cost": 1.0}})
    note = "(tuned): chosen on 2,000 tuning paths.\n(fitted): a -0.16 (0.004)."
    paths = report.write_tables(table, tmp_path, "t", c=1.5, risk_aversion=0.01, seed=0,
                                note=note)
    assert json.loads(paths["json"].read_text())["notes"] == [
        "(tuned): chosen on 2,000 tuning paths.", "(fitted): a -0.16 (0.004)."]
    assert paths["md"].read_text().endswith(note + "\n")
    paths = report.write_tables(table, tmp_path, "u", c=1.5, risk_aversion=0.01, seed=0)
    assert json.loads(paths["json"].read_text())["notes"] == []


def test_markdown_table_layout(arena: Any, tmp_path: Path) -> None:
    _, _, table = arena
    text = report.markdown_table(table)
    lines = text.splitlines()
    assert len(lines) == 2 + len(table)
    n_cols = lines[0].count("|")
    assert all(line.count("|") == n_cols for line in lines)
    assert "mean cost (currency)" in lines[0]
    assert "turnover (units)" in lines[0]
    assert "std P&L" in lines[0]  # the Markdown keeps the columns the terminal drops
    best = table["objective"].idxmin()
    best_line = next(line for line in lines if line.startswith(f"| {best} |"))
    assert best_line.count("**") == 2
    assert sum(line.count("**") for line in lines) == 2
    delta = next(line for line in lines if line.startswith("| delta |"))
    assert report.format_number(table.loc["delta", "mean_cost"]) in delta
    written = report.write_tables(table, tmp_path, "s", c=1.5, risk_aversion=0.01, seed=0)
    assert written["md"].read_text().startswith(text)
    assert "c = 1.5" in written["md"].read_text()


def test_print_table_shows_every_hedger_and_the_units(arena: Any) -> None:
    _, _, table = arena
    console = Console(record=True, width=160)
    printed = report.print_table(table, "ShortCall", console=console, c=1.5, risk_aversion=0.01)
    text = " ".join(console.export_text().split())  # the caption wraps at the table width
    for name in table.index:
        assert name in text
    assert "Y" in text
    assert "c = 1.5" in text
    assert "a = 0.01 per currency" in text
    assert "Currency per episode" in text
    shown = [c for c in report.SUMMARY_COLUMNS if c.terminal and c.key in table]
    assert len(printed.columns) == 1 + len(shown) - 2  # no hedging option: no option columns
    assert report.format_number(table.loc["no hedge", "mean_cost"]) in text


def test_formatting_never_prints_nan() -> None:
    row = pd.Series({"cost_diff": math.nan, "cost_diff_se": math.nan, "cost_diff_p_value": 1e-9})
    columns = {column.key: column for column in report.SUMMARY_COLUMNS}
    cost, p_value = columns["cost_diff"], columns["cost_diff_p_value"]
    assert report._format_cell(row, cost) == "-"
    assert report._format_cell(row, p_value) == "<0.001"


# ------------------------------------------------------------------------------- plots
def test_plot_distributions(arena: Any, tmp_path: Path) -> None:
    records, _batch, _ = arena
    pnl = {name: r.totals["terminal_pnl"] for name, r in records.items()}
    cost = {
        name: metrics.hedging_cost(r.totals["terminal_pnl"], r.totals["initial_premium"], 0.0, 0.08)
        for name, r in records.items()
    }
    out = report.plot_distributions(pnl, cost, tmp_path / "plots" / "dist.png")
    assert out == tmp_path / "plots" / "dist.png"
    assert_png(out)


def test_plot_distributions_of_constant_samples(tmp_path: Path) -> None:
    out = report.plot_distributions({"a": np.zeros(5)}, {"a": np.ones(5)}, tmp_path / "c.png")
    assert_png(out)


def test_plot_frontier(arena: Any, tmp_path: Path) -> None:
    _, _, table = arena
    family = report.FrontierFamily(
        parameter=[5.0, 20.0],
        mean_cost=table.loc[["band 5", "band 20"], "mean_cost"].to_numpy(),
        std_cost=table.loc[["band 5", "band 20"], "std_cost"].to_numpy(),
        parameter_name="half-width, units",
    )
    points = {n: (table.loc[n, "mean_cost"], table.loc[n, "std_cost"]) for n in ("delta",
                                                                                 "no hedge")}
    out = report.plot_frontier({"fixed band": family}, points, tmp_path / "frontier.png", c=1.5)
    assert_png(out)


def test_story_series_and_path_story(arena: Any, tmp_path: Path) -> None:
    records, batch, _ = arena
    n_steps = batch.market.n_steps
    positions, costs = {}, {}
    for name in ("delta", "band 5"):
        positions[name], costs[name], _ = report.story_series(records[name], n_steps)
        assert positions[name].shape == costs[name].shape == (N_PATHS, n_steps + 1)
        np.testing.assert_array_equal(positions[name][:, :n_steps], records[name].hedge.T)
        np.testing.assert_allclose(costs[name][:, -1], records[name].totals["cost"])
        assert (np.diff(costs[name], axis=1) >= 0).all()
    out = report.plot_path_story(
        3,
        batch.market.times,
        batch.market.spot,
        batch.episode.model_hedge.T,
        positions,
        tmp_path / "story.png",
        costs=costs,
        strike=float(batch.instruments.strike[3, 0]),
    )
    assert_png(out)


def test_the_summary_shows_the_objective_difference_with_its_interval() -> None:
    """The table ranks by Y, so it shows the difference of Y with its bootstrap CI beside the
    paired test of the mean cost (which can point the other way)."""
    table = pd.DataFrame(
        {"objective_diff": [197.2, float("nan")], "objective_diff_low": [169.7, float("nan")],
         "objective_diff_high": [226.8, float("nan")]},
        index=pd.Index(["no hedge", "delta"], name="hedger"),
    )
    lines = report.markdown_table(table).splitlines()
    assert lines[0] == "| hedger | Y - reference Y [95% CI] (currency) |"
    assert lines[2] == "| no hedge | 197.2 [169.7, 226.8] |"
    assert lines[3] == "| delta | - |"
