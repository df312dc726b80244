"""The README's leaderboard tables are the shipped sweep summaries, to the digits they show.

``make leaderboard`` and ``make leaderboard-option-book`` copy each sweep's ``summary.csv`` into
``bench/results/leaderboard*/``; the README's Results section quotes them. A rerun that changes
the numbers, or an edit of one side only, fails here rather than leaving the README stale.
Likewise ``make zoo-blocks``' runs (``bench/results/zoo_blocks/``): the README's table of the
zoo blocks no leaderboard covers, and each block's comment, quote them; each run trained the
block its file holds now.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
ALGOS = {"deep hedging": "deep_hedging", "SAC": "sac", "PPO": "ppo",
         "RecurrentPPO": "recurrent_ppo", "TQC": "tqc", "TD3": "td3", "DDPG": "ddpg"}
"""README row names (before any bracket) -> the sweeps' ``agent.algo``."""
OPTION_BOOK_SUMMARIES = ("summary.csv", "deep_hedging_summary.csv")
TABLES = {
    "**Every learner, three seeds**": ("leaderboard", ("summary.csv",)),
    "**Every learner on the market maker's book**": ("leaderboard_option_book",
                                                     OPTION_BOOK_SUMMARIES),
}
"""The README paragraph that opens each table -> its results folder and summaries (a sweep of
seeds alone, deep hedging's on the book, has no ``agent.algo`` column: its file is named
``<algo>_summary.csv``)."""


def _table(title: str) -> list[list[str]]:
    """The cells of each row of the first Markdown table after ``title`` (bold unmarked)."""
    text = README[README.index(title):]
    table = text.split("\n\n| ", 1)[1].split("\n\n", 1)[0]
    return [[cell.strip().strip("*") for cell in line.strip("| ").split("|")]
            for line in table.splitlines()[2:]]  # below the header and its rule


def _rows(title: str) -> dict[str, list[str]]:
    """The agents' rows of the table after ``title``: algo -> cells."""
    rows = {}
    for cells in _table(title):
        name = re.sub(r" \(.*\)$", "", cells[0])
        if name in ALGOS:
            rows[ALGOS[name]] = cells
    return rows


def _summary(folder: str, files: tuple[str, ...]) -> pd.DataFrame:
    path = ROOT / "bench" / "results" / folder
    frames = []
    for name in files:
        frame = pd.read_csv(path / name)
        if "agent.algo" not in frame:
            frame.insert(0, "agent.algo", name.removesuffix("_summary.csv"))
        frames.append(frame)
    return pd.concat(frames).set_index("agent.algo")


def _number(cell: str) -> float:
    return float(cell.replace(",", "").replace("+", ""))


def _shows(cell: str, value: float) -> bool:
    """Whether ``cell`` is ``value`` rounded to the decimals the cell shows."""
    decimals = len(cell.split(".")[1]) if "." in cell else 0
    return _number(cell) == round(float(value), decimals)


@pytest.mark.parametrize("title", list(TABLES), ids=list(v[0] for v in TABLES.values()))
def test_the_readme_table_is_the_shipped_summary(title: str) -> None:
    folder, files = TABLES[title]
    summary = _summary(folder, files)
    rows = _rows(title)
    assert set(rows) == set(summary.index), (sorted(rows), sorted(summary.index))
    for algo, cells in rows.items():
        trial = summary.loc[algo]
        low, high = cells[3].split(" to ")
        shown = {"objective": cells[1], "objective_sd": cells[2], "objective_min": low,
                 "objective_max": high, "objective_vs_delta": cells[4],
                 "expected_shortfall_95": cells[5], "mean_turnover": cells[6],
                 "train_seconds": cells[7]}
        wrong = {key: (cell, trial[key]) for key, cell in shown.items()
                 if not _shows(cell, trial[key])}
        assert not wrong, (algo, wrong)
        assert trial["trials"] == 3, algo


def test_the_option_book_table_quotes_the_classical_hedges_on_the_same_paths() -> None:
    """Its hedgers' rows (the bands, delta, Leland) are the shipped benchmark's
    ``baselines_scores.csv``, whose delta is the one every trial scored beside its agent."""
    folder = ROOT / "bench" / "results" / "leaderboard_option_book"
    scores = pd.read_csv(folder / "baselines_scores.csv").set_index("hedger")
    quoted = {cells[0]: cells for cells in _table("**Every learner on the market maker's book**")
              if cells[0] in scores.index}
    assert set(quoted) == set(scores.index), (sorted(quoted), sorted(scores.index))
    delta = scores.loc["delta", "objective"]
    for name, cells in quoted.items():
        row = scores.loc[name]
        assert _shows(cells[1], row["objective"]), name
        assert _shows(cells[4], row["objective"] - delta), name
        assert _shows(cells[5], row["expected_shortfall_95"]), name
        assert _shows(cells[6], row["mean_turnover"]), name
    summary = _summary("leaderboard_option_book", OPTION_BOOK_SUMMARIES)
    assert (summary["delta_objective"].round(6) == round(delta, 6)).all()


ZOO_TITLE = "The other learners' blocks for these two envs"
"""The README paragraph that opens the table of ``make zoo-blocks`` (bench/results/zoo_blocks/)."""
ZOO_ENVS = {"PortfolioInsurance": 1, "HistoricalReplay": 2}
"""The env of each run folder (``<algo>-<env>``) -> its column in the README table."""
INTERVAL = re.compile(r"Y ([+-][\d.,]+) \[([-\d.,]+), ([-\d.,]+)\]")
"""``Y +9.3 [9.0, 9.6]``: Y minus delta's and its 95% interval (the table's and comments' form)."""


def _zoo_runs() -> dict[tuple[str, str], Path]:
    folder = ROOT / "bench" / "results" / "zoo_blocks"
    return {tuple(run.name.split("-")): run for run in sorted(folder.iterdir()) if run.is_dir()}


def _interval(scores: pd.DataFrame) -> tuple[float, float, float]:
    agent = scores.drop(index="delta").iloc[0]
    return agent["objective_diff"], agent["objective_diff_low"], agent["objective_diff_high"]


def _shows_interval(text: str, values: tuple[float, float, float]) -> bool:
    match = INTERVAL.search(text)
    if match is None:
        return False
    return all(_shows(cell, value) for cell, value in zip(match.groups(), values, strict=True))


def _block_comment(algo: str, env_id: str) -> str:
    """The comment lines just above ``env_id``'s block in ``configs/<algo>.yml``."""
    lines = (ROOT / "configs" / f"{algo}.yml").read_text().splitlines()
    above = lines[:lines.index(f"{env_id}:")]
    start = len(above)
    while start and above[start - 1].startswith("#"):
        start -= 1
    return " ".join(line.lstrip("# ") for line in above[start:])


def test_every_zoo_block_run_is_shipped_with_the_block_it_trained() -> None:
    """One run per SB3 algorithm but PPO and env, each with the settings its file now holds
    (a changed block leaves its numbers stale: rerun ``make zoo-blocks``)."""
    from hedgearena.agents.sb3 import SB3_ALGOS
    from hedgearena.yaml_io import load_yaml

    runs = _zoo_runs()
    assert set(runs) == {(a, e) for a in SB3_ALGOS if a != "ppo" for e in ZOO_ENVS}
    for (algo, env), run in runs.items():
        env_id = f"hedgearena/{env}-v0"
        block = load_yaml((ROOT / "configs" / f"{algo}.yml").read_text())[env_id]
        assert load_yaml((run / "hyperparams.yaml").read_text()) == block, run.name
        config = load_yaml((run / "config.yaml").read_text())
        assert (config["env"]["id"], config["agent"]["algo"], config["seed"]) == (env_id, algo, 0)
        assert config["env"]["kwargs"] == {}, run.name
        assert config["agent"]["hyperparams"] == {}, run.name
        arena = config["arena"]
        assert (arena["paths"], arena["seed"], arena["hedgers"]) == (100_000, 2024, ["delta"])
        assert arena["split"] == ("2010-01-01" if env == "HistoricalReplay" else None), run.name
        training = json.loads((run / "training.json").read_text())
        assert training["timesteps"] == int(float(block["n_timesteps"])), run.name


def test_the_readme_zoo_table_and_the_block_comments_are_the_shipped_scores() -> None:
    rows = {cells[0]: cells for cells in _table(ZOO_TITLE)}
    names = {algo: name for name, algo in ALGOS.items()}
    header = README[README.index(ZOO_TITLE):].split("\n\n| ", 1)[1].splitlines()[0]
    for (algo, env), run in _zoo_runs().items():
        scores = pd.read_csv(run / "scores.csv").set_index("hedger")
        values = _interval(scores)
        cells = rows[names[algo]]
        assert _shows_interval("Y " + cells[ZOO_ENVS[env]], values), (algo, env, cells)
        assert _shows_interval(_block_comment(algo, f"hedgearena/{env}-v0"), values), (algo, env)
        delta = re.search(rf"`{env}-v0`[^|]*delta's Y ([\d,.]+)", header)
        assert delta is not None, header
        assert _shows(delta.group(1), scores.loc["delta", "objective"]), (env, delta.group(1))
        seconds = json.loads((run / "training.json").read_text())["seconds"]
        assert _shows(cells[3].split(", ")[ZOO_ENVS[env] - 1], seconds), (algo, env)
