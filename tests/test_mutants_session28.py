"""Tests that kill mutants the suite let live in session 28's code (mutation round).

The code: a sweep's summary by setting (:func:`hedgearena.sweep.summary_table`, its Markdown,
JSON and CSV files, each trial's training seconds, the plot's category order, mean ticks and
delta line) and ``train.py benchmark --agent RUN_DIR...`` (the agents' env, seed, split and
memory checks). Each test names the mutation it kills. The references are independent of the
code under test: numpy and plain Python on hand-made tables, Python's strict JSON parser, the
Markdown table grammar (one cell per column in every row), the documented memory bound
recomputed with :func:`hedgearena.baselines.arena.result_bytes` for the hedger count the
command line implies, and the run folders' own config files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from hedgearena import sweep
from hedgearena.baselines.report import format_number
from hedgearena.run_config import RunConfig, SweepSpec
from hedgearena.sweep import (
    RUN_COLUMNS,
    SUMMARY_MARKDOWN,
    TRIAL_METRICS,
    markdown_summary,
    results_table,
    summary_table,
    training_seconds,
    write_results,
)

METRICS = [*TRIAL_METRICS, *RUN_COLUMNS]


def _table(keys: dict[str, list], objective: list[float], status: list[str] | None = None,
           **metrics: list[float]) -> pd.DataFrame:
    """A results table: the swept ``keys``' values, ``objective`` and the other metrics (given
    in ``metrics``, else 1.0, 2.0, ... by trial), every trial ``ok`` unless ``status``."""
    n = len(objective)
    rows: dict[str, list] = {"trial": [f"t{i}" for i in range(n)],
                             "status": status or ["ok"] * n, "attempts": [1] * n, **keys}
    for key in METRICS:
        rows[key] = metrics.get(key, objective if key == "objective"
                                else [float(i + 1) for i in range(n)])
    return pd.DataFrame({**rows, "error": [""] * n, "run_dir": ["-"] * n})


# ----------------------------------------------------------------------- training seconds
@pytest.mark.parametrize("content", ["[1, 2]", '"41.5"', '{"seconds": [41.5]}',
                                     '{"seconds": {"total": 41.5}}'])
def test_a_training_json_that_is_no_record_of_seconds_is_nan(tmp_path: Path,
                                                             content: str) -> None:
    """Killed: dropping AttributeError (a JSON list or string has no ``.get``) or TypeError
    (``float`` of a list or dict) from :func:`training_seconds`'s caught errors."""
    (tmp_path / "training.json").write_text(content)
    assert math.isnan(training_seconds(tmp_path))


def test_the_results_table_reads_each_trials_training_seconds(tmp_path: Path) -> None:
    """Killed: ``train_seconds`` left out of the results' columns, or not read from the trial's
    ``training.json`` (a trial without one, still training, is NaN)."""
    spec = SweepSpec(space={"seed": [0, 1]})
    metrics = {key: 500.0 + i for i, key in enumerate(TRIAL_METRICS)}
    for trial, seconds in (("t0", 12.5), ("t1", None)):
        (tmp_path / trial).mkdir()
        if seconds is not None:
            (tmp_path / trial / "training.json").write_text(json.dumps({"seconds": seconds}))
    results = [SimpleNamespace(path=str(tmp_path / trial), metrics=dict(metrics), error=None)
               for trial in ("t0", "t1")]
    table = results_table(results, {"t0": {"seed": 0}, "t1": {"seed": 1}}, spec, tmp_path)
    seconds = dict(zip(table["trial"], table["train_seconds"], strict=True))
    assert seconds["t0"] == 12.5
    assert math.isnan(seconds["t1"])


# ------------------------------------------------------------------------ the summary table
def test_a_swept_null_is_a_setting_of_its_own() -> None:
    """``target_kl: [null, 0.02]`` sweeps "no target" against 0.02: its trials are a row.
    Killed: ``dropna=True`` in the grouping (the null setting's trials vanished)."""
    key = "agent.hyperparams.target_kl"
    table = _table({key: [None, None, 0.02, 0.02], "seed": [0, 1, 0, 1]},
                   [500.0, 504.0, 490.0, 492.0])
    summary = summary_table(table, SweepSpec(space={key: [None, 0.02], "seed": [0, 1]}))
    assert summary["trials"].tolist() == [2, 2]
    assert summary[key].iloc[0] == 0.02
    assert math.isnan(summary[key].iloc[1])
    assert summary["objective"].tolist() == [491.0, 502.0]


@pytest.mark.parametrize("mode", ["min", "max"])
def test_a_setting_whose_metric_is_unknown_comes_last(mode: str) -> None:
    """A finished trial without the sweep's metric (NaN) sorts its setting last in either mode,
    as the results table does. Killed: ``na_position="first"``."""
    table = _table({"agent.algo": ["ppo", "sac", "td3"], "seed": [0, 0, 0]},
                   [500.0, 490.0, 495.0], objective_vs_delta=[3.0, float("nan"), -2.0])
    spec = SweepSpec(space={"agent.algo": ["ppo", "sac", "td3"], "seed": [0]},
                     metric="objective_vs_delta", mode=mode)
    order = summary_table(table, spec)["agent.algo"].tolist()
    assert order == (["td3", "ppo", "sac"] if mode == "min" else ["ppo", "td3", "sac"])


def test_results_json_is_strict_json_with_infinities_as_null(tmp_path: Path) -> None:
    """``results.json`` must parse with a strict JSON parser (no ``Infinity``, ``NaN``).
    Killed: nulling NaN only (``math.isnan``), which wrote an infinite metric as Infinity."""
    table = _table({"agent.algo": ["ppo", "ppo", "sac"], "seed": [0, 1, 0]},
                   [500.0, 510.0, 490.0], std_cost=[1.0, float("inf"), 2.0])
    write_results(table, RunConfig(sweep=SweepSpec(space={"agent.algo": ["ppo", "sac"],
                                                          "seed": [0, 1]})), tmp_path)

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    document = json.loads((tmp_path / "results.json").read_text(), parse_constant=refuse)
    by_trial = {r["trial"]: r for r in document["records"]}
    assert by_trial["t1"]["std_cost"] is None
    assert by_trial["t0"]["std_cost"] == 1.0
    summary = {r["agent.algo"]: r for r in document["summary"]}
    assert summary["ppo"]["std_cost"] is None  # the mean of 1 and inf
    assert summary["sac"]["std_cost"] == 2.0


# ----------------------------------------------------------------------- summary.md
def _cells(line: str) -> list[str]:
    """The cells of a Markdown table row ``| a | b |``."""
    assert line.startswith("|"), line
    assert line.endswith("|"), line
    return [cell.strip() for cell in line[1:-1].split("|")]


def _markdown(table: pd.DataFrame, spec: SweepSpec, c: float = 1.5) -> tuple[list[str], str]:
    """The table's header cells and the whole summary.md text."""
    text = markdown_summary(summary_table(table, spec), spec, c)
    return _cells(text.splitlines()[0]), text


ALGOS = {"agent.algo": ["ppo", "ppo", "sac"], "seed": [0, 1, 0]}
SPACE = {"agent.algo": ["ppo", "sac"], "seed": [0, 1]}


@pytest.mark.parametrize(("metric", "extra"), [("objective", []), ("mean_cost", []),
                                                ("delta_objective", ["delta_objective"])])
def test_summary_md_shows_the_sweeps_metric_once(metric: str, extra: list[str]) -> None:
    """The sorting metric is a column, once: appended when summary.md has no column of it.
    Killed: never appending it (``delta_objective``) and always appending it (a column twice)."""
    header, _ = _markdown(_table(ALGOS, [500.0, 510.0, 490.0]),
                          SweepSpec(space=SPACE, metric=metric))
    assert header == ["agent.algo", *SUMMARY_MARKDOWN, *extra]


def test_summary_md_is_a_table_of_formatted_cells() -> None:
    """Every row has one cell per column (the separator too), numbers as the reports write
    them (:func:`format_number`) and a single trial's unknown spread as "-". Killed: one
    separator cell fewer, and cells written with ``str`` (``nan``, 17 digits)."""
    table = _table(ALGOS, [500.123456, 510.0, 490.0])
    header, text = _markdown(table, SweepSpec(space=SPACE))
    lines = text.splitlines()
    assert lines[1] == "|" + "---|" * len(header)
    rows = {cells[0]: dict(zip(header, cells, strict=True)) for cells in map(_cells, lines[2:4])}
    assert rows["sac"]["objective_sd"] == "-"
    assert rows["sac"]["trials"] == "1"
    ppo = table[table["agent.algo"] == "ppo"]
    assert rows["ppo"]["objective"] == format_number(ppo["objective"].mean()) == "505.1"
    assert rows["ppo"]["objective_sd"] == format_number(float(np.std(ppo["objective"], ddof=1)))
    assert rows["ppo"]["objective_max"] == "510"


def test_summary_md_caption_names_the_groups_and_the_sort() -> None:
    """Killed: the caption's "all trials" (a sweep of seeds alone) and its metric name."""
    seeds = _table({"seed": [0, 1]}, [500.0, 510.0])
    _, text = _markdown(seeds, SweepSpec(space={"seed": [0, 1]}))
    assert "Finished trials by all trials, sorted by the mean objective (min)." in text
    _, text = _markdown(_table(ALGOS, [500.0, 510.0, 490.0]),
                        SweepSpec(space=SPACE, metric="mean_cost", mode="max"), c=2.0)
    caption = " ".join(text.split())
    assert "Finished trials by agent.algo, sorted by the mean mean_cost (max)." in caption
    assert "Y = mean(cost) + 2 std(cost)" in caption


# ------------------------------------------------------------------------------ the plot
def test_categories_are_ordered_by_their_mean_not_their_sum_or_median() -> None:
    """sac: 8 on five trials (mean 8, sum 40, median 8); ppo: 0, 0, 30 (mean 10, sum 30,
    median 0): by the mean sac is first. Killed: ``.sum()`` and ``.median()`` for ``.mean()``."""
    names = pd.Series(["ppo"] * 3 + ["sac"] * 5)
    objective = pd.Series([0.0, 0.0, 30.0] + [8.0] * 5)
    x, labels = sweep._positions(names, objective)
    assert labels == ["sac", "ppo"]
    assert x.tolist() == [1.0] * 3 + [0.0] * 5


def _errorbars(ax) -> list[tuple[float, float, float]]:
    """(x, mean, half bar) of each tick of the axes' one errorbar container."""
    (container,) = ax.containers
    data_line, _, bar_collections = container.lines
    ticks = data_line.get_xydata()
    bars = [seg[1][1] - seg[0][1] for seg in bar_collections[0].get_segments()]
    return [(float(x), float(y), float(b) / 2.0) for (x, y), b in zip(ticks, bars, strict=True)]


def test_mean_ticks_are_each_categorys_mean_and_sample_std() -> None:
    """Category 0: 3 trials, its sample std (ddof 1) as the bar; category 1: one trial, no bar
    (0, no NaN). Killed: ddof 0, a bar for one trial (``> 0``: NaN) and no bar at all."""
    ax = Figure().add_subplot()
    y = np.array([490.0, 500.0, 516.0, 480.0])
    sweep._mean_ticks(ax, np.array([0.0, 0.0, 0.0, 1.0]), y, "C0")
    (x0, m0, s0), (x1, m1, s1) = _errorbars(ax)
    assert (x0, x1) == (0.18, 1.18)
    assert m0 == pytest.approx(502.0, abs=1e-12)
    assert s0 == pytest.approx(math.sqrt(((490 - 502) ** 2 + 2 ** 2 + 14 ** 2) / 2), abs=1e-9)
    assert (m1, s1) == (480.0, 0.0)


def test_no_mean_ticks_when_every_category_has_one_trial() -> None:
    """Killed: dropping the early return (a tick on each lone point)."""
    ax = Figure().add_subplot()
    sweep._mean_ticks(ax, np.array([0.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0]), "C0")
    assert not ax.containers


def test_the_reference_line_is_drawn_where_there_is_one_value() -> None:
    """NaN (an unfinished delta) left out: one dashed line at the value; two values: none.
    Killed: ``>= 1`` for ``== 1`` and keeping NaN in the distinct values."""
    ax = Figure().add_subplot()
    sweep._reference_line(ax, pd.Series([500.25, float("nan"), 500.25]), "delta", "C1")
    (line,) = ax.lines
    assert line.get_ydata()[0] == 500.25
    assert line.get_linestyle() == "--"
    other = Figure().add_subplot()
    sweep._reference_line(other, pd.Series([500.25, 501.0]), "delta", "C1")
    assert not other.lines


def test_an_algorithm_panel_orders_draws_ticks_and_delta_line() -> None:
    """``agent.algo``: td3 (mean 480) before ppo (500) before sac (505), unlike the name
    order; each mean a tick; delta (the same on every trial) one dashed line. Killed: no
    objective given to ``_positions`` (name order), the mean line for ticks on categories, and
    no delta line on a key that cannot change delta."""
    done = pd.DataFrame({"agent.algo": ["ppo", "sac", "td3", "ppo", "sac", "td3"],
                         "objective": [498.0, 505.0, 479.0, 502.0, 505.0, 481.0],
                         "delta_objective": [520.5] * 6})
    ax = Figure().add_subplot()
    sweep._objective_panel(ax, done, "agent.algo", log=False)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["td3", "ppo", "sac"]
    assert [m for _, m, _ in _errorbars(ax)] == pytest.approx([480.0, 500.0, 505.0])
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert [line.get_ydata()[0] for line in dashed] == [520.5]


# ------------------------------------------------------------- train.py benchmark --agent
@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny PPO run and a tiny deep-hedging run on ShortCall-v0, trained through train.py."""
    from tiny_runs import tiny_runs

    return tiny_runs(tmp_path_factory.mktemp("runs"))


def test_a_benchmark_counts_its_agents_in_the_memory_check_before_it_writes(
    runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A machine whose memory holds the results of 2 hedgers (delta and one agent) refuses a
    benchmark of delta and two agents, before its folder is written: the bound of
    :func:`~hedgearena.baselines.arena.result_bytes` for 3 hedgers on the 512 paths (the drawn
    path's records kept). Killed: ``check_arena(..., n_agents=0)``, which let it start, write
    its folder, and fail in the arena."""
    from tiny_runs import TINY_ARENA

    from hedgearena.baselines import arena
    from hedgearena.baselines.benchmark import split_configs
    from hedgearena.cli import main
    from hedgearena.envs.config import make_config

    scoring = split_configs(make_config("ShortCall"), None)[1]
    two = arena.result_bytes(scoring, 512, 2, 2, 1)
    assert arena.result_bytes(scoring, 512, 3, 3, 1) > two > arena.result_bytes(scoring, 512, 1,
                                                                                1, 1)
    monkeypatch.setattr(arena, "physical_memory", lambda: two)
    main(["benchmark", "--agent", str(runs["ppo"]), "--out", str(tmp_path), "--name", "one",
          *TINY_ARENA])  # delta and one agent fit
    assert (tmp_path / "one" / "scores.csv").is_file()
    with pytest.raises(SystemExit):
        main(["benchmark", "--agent", str(runs["ppo"]), str(runs["deep_hedging"]),
              "--out", str(tmp_path), "--name", "two", *TINY_ARENA])
    assert "arena.paths=512 would keep about" in capsys.readouterr().err
    assert not (tmp_path / "two").exists()


def test_a_benchmark_names_the_agents_record_it_wrote(runs, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The closing line lists agents.yaml and says the --agent folders repeat the benchmark;
    a benchmark of the baselines alone writes no agents.yaml and says neither. Killed: leaving
    agents.yaml out of the listed files, and the "--agent folders" note."""
    from tiny_runs import TINY_ARENA

    from hedgearena.cli import main

    main(["benchmark", "--agent", str(runs["ppo"]), "--out", str(tmp_path), "--name", "a",
          *TINY_ARENA])
    out = "".join(capsys.readouterr().out.split())  # the console wraps long lines anywhere
    listed = sorted(path.name for path in (tmp_path / "a").iterdir())
    assert "agents.yaml" in listed
    assert f"({','.join(listed)};" in out
    assert "--configandthe--agentfoldersofagents.yaml)" in out
    main(["benchmark", "--out", str(tmp_path), "--name", "b", *TINY_ARENA])
    out = "".join(capsys.readouterr().out.split())
    listed = sorted(path.name for path in (tmp_path / "b").iterdir())
    assert "agents.yaml" not in listed
    assert f"({','.join(listed)};" in out
    assert "--agentfolders" not in out


def test_a_benchmark_refuses_an_rllib_agent_on_its_runners_seeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_ray
) -> None:
    """An RLlib run of seed 5 with 2 env runners sampled the paths of seeds 5, 6 and 7
    (:func:`~hedgearena.agents.rllib.runner_seeds`): ``benchmark --arena-seed 6`` must refuse
    it, naming arena.seed, before its model is read or the folder written (the run folder's
    config.yaml and model/rllib.json are enough). Killed: the RLlib check given stress.seed
    (2024 by default) instead of the benchmark's arena.seed."""
    from hedgearena.agents.rllib import AGENT_FILE
    from hedgearena.cli import main

    run = tmp_path / "rllib-run"
    RunConfig.model_validate({"seed": 5, "rllib": {"num_env_runners": 2}}).dump(
        run / "config.yaml")
    (run / "model").mkdir()
    (run / "model" / AGENT_FILE).write_text("{}")
    with pytest.raises(SystemExit):
        main(["benchmark", "--agent", str(run), "--arena-seed", "6", "--out", str(tmp_path),
              "--name", "r", "--no-progress"])
    err = " ".join(capsys.readouterr().err.split())
    assert "arena.seed (6) is one of the RLlib agent's env runner seeds (5..7)" in err
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------ lazy normal cdfs (black_scholes)
@pytest.mark.parametrize("select", [("theta",), ("gamma", "theta")])
@pytest.mark.parametrize("torch_inputs", [False, True])
def test_theta_with_a_dividend_and_no_rate_reads_its_cdfs(select, torch_inputs) -> None:
    """``r = 0``, ``q = 0.02``: the theta's carry ``w q S e^{-q tau} N(w d1)`` is not 0, so
    ``N(w d1)`` must be computed. Checked against Hull's theta (ch. 19; the module docstring's
    formula) written with scipy's normal, and against the full pass bit for bit. Killed: the
    carry test reading the rate alone (``bool(rate)``), which left ``N(w d1)`` out."""
    import torch
    from scipy.stats import norm

    from hedgearena.envs.black_scholes import black_scholes_greeks

    rng = np.random.default_rng(28)
    n, q = 64, 0.02
    spot, strike = rng.uniform(70.0, 130.0, n), rng.uniform(80.0, 120.0, n)
    tau, vol, is_call = rng.uniform(0.05, 2.0, n), rng.uniform(0.05, 0.6, n), rng.random(n) < 0.5
    w = np.where(is_call, 1.0, -1.0)
    d1 = (np.log(spot / strike) - q * tau) / (vol * np.sqrt(tau)) + vol * np.sqrt(tau) / 2.0
    hull = (-spot * np.exp(-q * tau) * norm.pdf(d1) * vol / (2.0 * np.sqrt(tau))
            + w * q * spot * np.exp(-q * tau) * norm.cdf(w * d1))  # r = 0: no strike term
    args: tuple = (spot, strike, tau, vol)
    flags: object = is_call
    if torch_inputs:
        args, flags = tuple(torch.tensor(a) for a in args), torch.tensor(is_call)
    part = black_scholes_greeks(*args, 0.0, q, flags, select=select)
    full = black_scholes_greeks(*args, 0.0, q, flags)
    theta = np.asarray(part.theta)
    np.testing.assert_allclose(theta, hull, rtol=1e-11, atol=1e-11)
    np.testing.assert_array_equal(theta, np.asarray(full.theta))
