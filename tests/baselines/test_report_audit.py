"""Audit of the arena's report: every number written against numpy, and what the pictures draw.

References: the definitions of :mod:`hedgearena.baselines.metrics` (cost ``premium - e^{-rT}
P&L``, ``Y = mean + c std`` of Cao, Chen, Hull and Poulos 2021, eq. (3); VaR the loss's
inverted-cdf quantile, ES the mean of the ``floor(n (1 - a))`` largest losses, Acerbi and Tasche
2002; entropic risk ``(1/a) log E[exp(-a P&L)]``, Follmer and Schied, ex. 4.34), recomputed here
with numpy on the arena's records and totals, and ``scipy.stats.ttest_rel`` for the paired test;
the README's "Reading a report" for the files and columns.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from scipy import stats

from hedgearena.baselines import metrics, report
from hedgearena.baselines.benchmark import BenchmarkReport, BenchmarkSettings, benchmark
from hedgearena.baselines.registry import FAMILIES
from hedgearena.envs import rendering
from hedgearena.envs.config import make_config

N_PATHS = 500
C = 1.5
RISK_AVERSION = 0.01


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[BenchmarkReport, Path]:
    """A whole report on ShortCall at r = 5% (the discounting matters): three hedgers, one of
    them tuned, and the band families' frontier (totals-only hedgers)."""
    config = make_config("ShortCall", market_kwargs={"rate": 0.05})
    settings = BenchmarkSettings(n_paths=N_PATHS, tune_paths=300, n_boot=20, c=C,
                                 risk_aversion=RISK_AVERSION, progress=False,
                                 keep_records=True)  # every path's, checked against the scores
    out_dir = tmp_path_factory.mktemp("report")
    out = benchmark(config, ["no_hedge", "delta", "band:best"], settings, out_dir)
    return out, out_dir


def _costs(out: BenchmarkReport, name: str) -> np.ndarray:
    """``premium - e^{-rT} P&L`` from the arena's totals, by hand."""
    totals, arena = out.arena.totals(name), out.arena
    return totals["initial_premium"] - math.exp(-arena.rate * arena.horizon) * totals[
        "terminal_pnl"]


def _expected(out: BenchmarkReport, name: str, reference: str) -> dict[str, float]:
    """Every summary number of hedger ``name``, by numpy from its records and totals."""
    record = out.arena.records[name]
    pnl, cost = record.totals["terminal_pnl"], _costs(out, name)
    n = pnl.size
    loss = np.sort(-pnl)
    want = {
        "n_paths": n, "mean_pnl": pnl.mean(), "mean_pnl_se": pnl.std(ddof=1) / math.sqrt(n),
        "std_pnl": pnl.std(ddof=1), "mean_cost": cost.mean(),
        "mean_cost_se": cost.std(ddof=1) / math.sqrt(n), "std_cost": cost.std(ddof=1),
        "var_cost": cost.var(ddof=1), "objective": cost.mean() + C * cost.std(ddof=1),
        "entropic_risk": math.log(np.mean(np.exp(-RISK_AVERSION * (pnl - pnl.mean()))))
        / RISK_AVERSION - pnl.mean(),
        # the records' per-decision arrays (the unwind's cost is in the last decision's)
        "mean_transaction_cost": record.cost.sum(axis=0).mean(),
        "mean_turnover": np.abs(record.trade).sum(axis=0).mean(),
        "mean_trades": (record.trade != 0).sum(axis=0).mean(),
    }
    for level, tag in ((0.95, "95"), (0.99, "99")):
        want[f"value_at_risk_{tag}"] = np.quantile(-pnl, level, method="inverted_cdf")
        want[f"expected_shortfall_{tag}"] = loss[-math.floor(n * (1 - level) + 1e-9):].mean()
    if name != reference:
        ref = _costs(out, reference)
        diff = cost - ref
        want.update(cost_diff=diff.mean(), cost_diff_se=diff.std(ddof=1) / math.sqrt(n),
                    cost_diff_p_value=stats.ttest_rel(cost, ref).pvalue,
                    objective_diff=want["objective"] - (ref.mean() + C * ref.std(ddof=1)))
    return want


def test_every_number_written_is_numpys_on_the_arenas_records(written: Any) -> None:
    """scores.csv, scores.json and scores.md against numpy (1e-9 relative; the Markdown cell
    is :func:`report.format_number` of the numpy value)."""
    out, out_dir = written
    reference = out.table.index[1]  # "delta"
    csv = pd.read_csv(out_dir / "scores.csv", index_col="hedger")
    document = json.loads((out_dir / "scores.json").read_text())
    records = pd.DataFrame(document["records"]).set_index("hedger")
    markdown = (out_dir / "scores.md").read_text().splitlines()
    header = [cell.strip() for cell in markdown[0].strip("|").split("|")]
    assert list(csv.index) == ["no hedge", "delta", f"fixed band {out.tuned['band']:g} (tuned)"]
    for name in csv.index:
        want = _expected(out, name, reference)
        for key, value in want.items():
            assert csv.loc[name, key] == pytest.approx(value, rel=1e-9, abs=1e-9), (name, key)
            assert records.loc[name, key] == pytest.approx(value, rel=1e-9, abs=1e-9), key
        row = next(line for line in markdown if line.startswith(f"| {name} |"))
        cells = dict(zip(header, (c.strip() for c in row.strip("|").split("|")), strict=True))
        assert cells["mean cost (currency)"].split(" ± ")[0] == report.format_number(
            want["mean_cost"])
        assert cells["* Y = mean + c std (currency)"].strip("*").split(" ± ")[0] == (
            report.format_number(want["objective"]))
        assert cells["ES 95% of loss (currency)"] == report.format_number(
            want["expected_shortfall_95"])
    assert document["metadata"]["n_paths"] == N_PATHS
    assert document["units"]["mean_turnover"] == "units"
    assert document["units"]["var_cost"] == "currency^2"


def test_the_frontier_csv_is_numpys_and_each_tuned_hedger_sits_at_its_parameter(
    written: Any,
) -> None:
    """frontier.csv (README: family, parameter, mean_cost, std_cost, objective) from the
    totals-only members' totals; the tuned band's point is its family's row at its parameter."""
    out, out_dir = written
    frontier = pd.read_csv(out_dir / "frontier.csv")
    assert list(frontier.columns) == ["family", "parameter", "mean_cost", "std_cost", "objective"]
    for label, grid in FAMILIES.values():
        rows = frontier[frontier["family"] == label]
        np.testing.assert_allclose(rows["parameter"], grid)
        for p, mean, std, objective in rows.iloc[:, 1:].itertuples(index=False):
            cost = _costs(out, f"frontier: {label} {p:g}")
            assert out.arena.records.get(f"frontier: {label} {p:g}") is None  # totals only
            np.testing.assert_allclose([mean, std, objective],
                                       [cost.mean(), cost.std(ddof=1),
                                        cost.mean() + C * cost.std(ddof=1)], rtol=1e-12)
    tuned = out.tuned["band"]
    row = frontier[(frontier["family"] == "fixed band") & np.isclose(frontier["parameter"], tuned)]
    cost = _costs(out, f"fixed band {tuned:g} (tuned)")
    np.testing.assert_allclose(row[["mean_cost", "std_cost"]].to_numpy()[0],
                               [cost.mean(), cost.std(ddof=1)], rtol=1e-12)


def test_the_reference_row_says_it_is_the_reference(written: Any) -> None:
    """The paired columns compare with the reference: its own row named it nowhere ("-", as an
    undefined number); it now says ``reference`` (README: "the reference's own row")."""
    _, out_dir = written
    line = next(x for x in (out_dir / "scores.md").read_text().splitlines()
                if x.startswith("| delta |"))
    assert "| reference |" in line
    assert sum(cell.strip() == "reference" for cell in line.split("|")) == 1
    other = next(x for x in (out_dir / "scores.md").read_text().splitlines()
                 if x.startswith("| no hedge |"))
    assert "reference" not in other


def test_an_undefined_standard_error_is_left_out() -> None:
    """One path: the standard errors are NaN (metrics' convention); the cell read ``1 ± -``."""
    table = pd.DataFrame({"mean_cost": [1.0], "mean_cost_se": [math.nan]},
                         index=pd.Index(["delta"], name="hedger"))
    assert report.markdown_table(table).splitlines()[-1] == "| delta | 1 |"
    table["mean_cost_se"] = 0.25
    assert report.markdown_table(table).splitlines()[-1] == "| delta | 1 ± 0.25 |"


def test_the_hedging_options_trading_is_scored_and_shown_when_held() -> None:
    """``turnover`` and ``trades`` are the underlying's; a delta-gamma hedge trades ~870 option
    units an episode on ShortCall beside its 408 of stock, which ``option_turnover`` and
    ``option_trades`` count (the sums of the record's ``|option trade|`` and trading
    decisions; the unwind, as for the underlying, not counted). The table shows them only when
    a hedger holds the option."""
    from hedgearena.baselines.arena import run_arena
    from hedgearena.baselines.delta import BlackScholesDelta
    from hedgearena.baselines.delta_gamma import DeltaGamma
    from hedgearena.envs.config import make_config

    result = run_arena(make_config("ShortCall", hedge_option=True),
                       [BlackScholesDelta(), DeltaGamma()], n_paths=50, seed=0, progress=False)
    record = result.records["delta-gamma"]
    trades = np.diff(record.option, axis=0, prepend=0.0)
    totals = record.totals
    np.testing.assert_allclose(totals["option_turnover"], np.abs(trades).sum(axis=0), rtol=1e-12)
    np.testing.assert_array_equal(totals["option_trades"], (trades != 0).sum(axis=0))
    assert totals["option_turnover"].mean() > 100.0
    assert not result.records["delta"].totals["option_turnover"].any()
    table = metrics.score_table({
        name: metrics.score(record, None, attribution=result.attribution[name],
                            rate_time=(result.rate, result.horizon))
        for name, record in result.records.items()
    })
    assert table.loc["delta-gamma", "mean_option_turnover"] == totals["option_turnover"].mean()

    def headers(rows: pd.DataFrame) -> list[str]:
        printed = report.print_table(rows, "ShortCall", console=Console(record=True, width=250))
        return [str(column.header) for column in printed.columns]

    assert {"option\nturnover", "option\ntrades"} <= set(headers(table))
    assert not any("option" in header for header in headers(table.drop(index="delta-gamma")))


# ------------------------------------------------------------------------------- pictures
@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The figures the report's plots and the envs' renders draw (left open to read)."""
    import matplotlib.pyplot as plt

    saved: list[Any] = []

    def keep(fig: Any, path: Any = None) -> Any:
        fig.canvas.draw()
        saved.append(fig)
        return Path(path) if path is not None else np.zeros((2, 2, 3), np.uint8)

    monkeypatch.setattr(report, "_save", keep)
    monkeypatch.setattr(rendering, "figure_to_rgb", keep)
    yield saved
    for fig in saved:
        plt.close(fig)


def test_frontier_parameter_labels_are_in_their_familys_colour(figures: list[Any]) -> None:
    """Families share parameter values (0.1 is a band's tolerance and a Whalley-Wilmott risk
    aversion): in black, a "0.1" beside two lines could not be told apart."""
    families = {
        "Whalley-Wilmott": report.FrontierFamily([0.01, 0.1], [367.5, 388.5], [135.7, 93.9]),
        "fixed band": report.FrontierFamily([0.1, 0.4], [382.5, 320.7], [89.9, 219.2]),
    }
    report.plot_frontier(families, {"delta": (467.5, 84.9)}, "f.png")
    ax = figures[0].axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    texts = {t.get_text(): t for t in ax.texts}
    from matplotlib.colors import to_rgba

    for name, family in families.items():
        for p in family.parameter:
            if f"{p:g}" in texts and f"{p:g}" != "0.1":
                assert to_rgba(texts[f"{p:g}"].get_color()) == to_rgba(lines[name].get_color())
    assert {"0.01", "0.4"} <= set(texts)
    assert to_rgba(texts["0.4"].get_color()) != to_rgba("black")
    assert to_rgba(texts["delta"].get_color()) == to_rgba("black")  # hedgers stay black


def test_cumulative_costs_are_steps_paid_at_the_decisions(figures: list[Any]) -> None:
    """A cost is paid at its decision: a line from one decision to the next drew it accruing
    before the trade (a band hedger's cost rising for the whole interval before it trades)."""
    times = np.arange(4.0)
    report.plot_path_story(0, times, np.full((1, 4), 100.0), np.full((1, 4), 50.0),
                           {"band": np.full((1, 4), 50.0)}, "p.png",
                           costs={"band": np.array([[5.0, 5.0, 9.0, 9.0]])})
    line = next(x for x in figures[0].axes[2].get_lines() if x.get_label() == "band")
    assert line.get_drawstyle() == "steps-post"


def test_the_envs_story_holds_the_model_hedge_and_the_hedge_into_the_end(
    figures: list[Any],
) -> None:
    """ShortCall seed 2 ends in the money (S_T = 110.5): the model hedge is 100 units at step
    19 and 0 at expiry, the hedge 90 then unwound. The env's picture drew both falling to 0
    over the last step; the arena's path story holds them (the unwind's cost is in the last
    decision's cost), and now so does the env's."""
    import gymnasium as gym

    import hedgearena  # noqa: F401  (registers the ids)

    env = gym.make("hedgearena/ShortCall-v0", render_mode="rgb_array", action_mode="band")
    env.reset(seed=2)
    terminated = False
    while not terminated:
        _, _, terminated, _, _ = env.step(np.array([-0.6], np.float32))
    assert env.unwrapped.state["spot"] > 110.0
    env.render()
    lines = {x.get_label(): x for x in figures[-1].axes[1].get_lines()}
    model, hedge = lines["model hedge"].get_ydata(), lines["hedge"].get_ydata()
    assert model[-2] > 99.0
    assert model[-1] == model[-2]
    assert hedge[-2] > 80.0
    assert hedge[-1] == hedge[-2]
    assert figures[-1].axes[1].get_ylabel() == "position in the\nunderlying (units)"


@pytest.mark.parametrize(
    "values",
    [
        {"one path": np.array([3.0])},
        {"constant": np.full(50, -7.0)},
        {"a": np.full(50, 1.0), "b": np.full(50, 1.0)},
        {"huge": np.random.default_rng(0).normal(1e12, 1e9, 200),
         "negative": -np.random.default_rng(1).lognormal(20.0, 1.0, 200)},
    ],
    ids=["one path", "all equal", "two equal hedgers", "huge and negative"],
)
def test_edge_cases_draw_every_hedger_at_its_mean(figures: list[Any], values: Any) -> None:
    """One path, zero variance, equal hedgers, 1e12 and -e^20: no crash, a finite view that
    holds every hedger's mean (the dashed line), and a bar for each."""
    report.plot_distributions(values, values, "d.png")
    ax = figures[0].axes[0]
    x0, x1 = ax.get_xlim()
    assert np.isfinite([x0, x1]).all()
    for x in values.values():
        assert x0 <= x.mean() <= x1
    assert len(ax.patches) == len(values)
    family = report.FrontierFamily([1.0, 2.0], [v.mean() for v in list(values.values())[:1]] * 2,
                                   [0.0, 0.0])
    report.plot_frontier({"f": family}, {k: (v.mean(), v.std()) for k, v in values.items()},
                         "f.png")
    assert all(math.isfinite(v) for v in figures[1].axes[0].get_ylim())
