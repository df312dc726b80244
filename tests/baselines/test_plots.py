"""The plots draw the numbers they are given, readably: spikes, outliers, NaN, many hedgers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from hedgearena.baselines import report, stress
from hedgearena.envs import rendering


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The figures the report's plots save (left open for the test to read)."""
    saved: list[Any] = []

    def keep(fig: Any, path: str | Path) -> Path:
        fig.canvas.draw()
        saved.append(fig)
        return Path(path)

    monkeypatch.setattr(report, "_save", keep)
    yield saved
    import matplotlib.pyplot as plt

    for fig in saved:
        plt.close(fig)


def _texts(fig: Any) -> list[str]:
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]


def _legend_texts(ax: Any) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend is not None else []


# ----------------------------------------------------------------------------- distributions
def test_a_spike_is_cut_and_labelled_so_the_other_hedgers_stay_readable(figures) -> None:
    # the unhedged short call: half its paths at +premium (one bin), the hedgers' bell curves
    rng = np.random.default_rng(0)
    no_hedge = np.r_[np.full(5000, 10.0), rng.uniform(-200.0, 10.0, 5000)]
    delta = rng.normal(-50.0, 20.0, 10000)
    report.plot_distributions({"no hedge": no_hedge, "delta": delta},
                              {"no hedge": -no_hedge, "delta": -delta}, "d.png")
    ax = figures[0].axes[0]
    bins = np.linspace(*np.quantile(np.r_[no_hedge, delta], [0.005, 0.995]), 61)
    delta_peak = np.histogram(delta, bins)[0].max()
    assert delta_peak <= ax.get_ylim()[1] < 0.5 * 5000  # the bell curve fills the axes
    assert any(t.startswith("\u2191 5,") for t in _texts(figures[0]))  # the spike's count


def test_histograms_without_spikes_keep_their_full_height(figures) -> None:
    rng = np.random.default_rng(1)
    values = {"a": rng.normal(size=4000), "b": rng.normal(0.5, 2.0, 4000)}
    report.plot_distributions(values, values, "d.png")
    ax = figures[0].axes[0]
    tallest = max(p.get_path().vertices[:, 1].max() for p in ax.patches)
    assert ax.get_ylim()[1] >= tallest


def test_one_nan_path_does_not_blank_the_histograms(figures) -> None:
    # a hedger with a NaN (or infinite) P&L on one path: the pooled quantiles were NaN and
    # every histogram vanished; now the non-finite values are left out and counted
    rng = np.random.default_rng(2)
    good = rng.normal(size=500)
    bad = np.r_[rng.normal(size=498), np.nan, np.inf]
    report.plot_distributions({"good": good, "bad": bad}, {"good": good, "bad": bad}, "d.png")
    ax = figures[0].axes[0]
    heights = [p.get_path().vertices[:, 1].max() for p in ax.patches]
    assert len(heights) == 2
    assert min(heights) > 0
    assert np.isfinite(ax.get_xlim()).all()
    assert any("2 NaN/inf left out" in t for t in _legend_texts(ax))


def test_a_hedger_without_finite_values_is_named_and_the_others_drawn(figures) -> None:
    values = {"a": np.arange(100.0), "b": np.full(100, np.nan), "c": np.array([])}
    report.plot_distributions(values, values, "d.png")
    ax = figures[0].axes[0]
    assert len(ax.patches) == 1
    assert _legend_texts(ax)[1] == "b (mean -; 100 NaN/inf left out)"


def test_many_hedgers_get_distinct_colours_and_a_legend_beside_the_axes(figures) -> None:
    rng = np.random.default_rng(3)
    values = {f"hedger {i}": rng.normal(i, 1.0, 200) for i in range(14)}
    report.plot_distributions(values, values, "d.png")
    ax = figures[0].axes[0]
    colours = {tuple(np.round(p.get_edgecolor(), 3)) for p in ax.patches}
    assert len(colours) == 14
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # it hides no data


# --------------------------------------------------------------------------------- frontier
def _frontier_lines(ax: Any) -> dict[str, Any]:
    return {line.get_label(): line for line in ax.get_lines()}


def test_the_frontier_draws_the_csvs_numbers(figures, tmp_path: Path) -> None:
    frontier = pd.DataFrame({
        "family": ["fixed band"] * 3 + ["Whalley-Wilmott"] * 3,
        "parameter": [0.01, 0.1, 0.4, 0.001, 0.1, 10.0],
        "mean_cost": [453.1, 382.7, 319.2, 342.6, 388.9, 439.4],
        "std_cost": [83.5, 90.4, 219.7, 245.9, 94.4, 82.5]})
    frontier.to_csv(tmp_path / "frontier.csv", index=False)
    read = pd.read_csv(tmp_path / "frontier.csv")
    families = {name: report.FrontierFamily(rows["parameter"], rows["mean_cost"],
                                            rows["std_cost"], "p")
                for name, rows in read.groupby("family", sort=False)}
    report.plot_frontier(families, {"delta": (469.4, 85.6)}, "f.png")
    lines = _frontier_lines(figures[0].axes[0])
    for name, rows in read.groupby("family"):
        np.testing.assert_array_equal(lines[f"{name} (p)"].get_xdata(), rows["mean_cost"])
        np.testing.assert_array_equal(lines[f"{name} (p)"].get_ydata(), rows["std_cost"])
    assert list(lines["delta"].get_xdata()) == [469.4]
    assert list(lines["delta"].get_ydata()) == [85.6]
    assert _legend_texts(figures[0].axes[0])[0] == "delta"  # the hedgers first


def test_a_tuned_hedger_is_drawn_above_its_familys_point(figures) -> None:
    # the tuned member sits exactly on the family's point: its marker was hidden under it
    family = report.FrontierFamily([0.05, 0.1, 0.2], [410.0, 382.7, 353.2], [81.0, 90.4, 130.7])
    report.plot_frontier({"fixed band": family}, {"fixed band 0.1 (tuned)": (382.7, 90.4)},
                         "f.png")
    ax = figures[0].axes[0]
    lines = _frontier_lines(ax)
    assert lines["fixed band 0.1 (tuned)"].get_zorder() > lines["fixed band"].get_zorder()
    iso_labels = [t for t in ax.texts if t.get_text().startswith("Y = ")]
    assert iso_labels
    assert all(t.get_zorder() < lines["fixed band 0.1 (tuned)"].get_zorder() for t in iso_labels)


def test_labels_do_not_overlap_each_other_nor_other_markers(figures) -> None:
    family = report.FrontierFamily(np.geomspace(1e-4, 10, 11), np.linspace(320, 440, 11),
                                   np.r_[365, 324, 246, 179, 136, 110, 94, 87, 83, 82, 82.5])
    points = {"delta": (469.4, 85.6), "Leland": (443.0, 73.0), "band": (382.7, 90.4),
              "ww": (388.9, 94.4), "adaptive": (409.4, 84.0), "no hedge": (248.2, 359.7)}
    report.plot_frontier({"ww": family}, points, "f.png")
    fig = figures[0]
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    for i, a in enumerate(boxes):
        assert not any(a.overlaps(b) for b in boxes[i + 1:])
    written = {t.get_text() for t in ax.texts}
    assert {"delta", "no hedge"} <= written


def test_an_outlier_does_not_squash_the_frontier(figures) -> None:
    # the option book: no hedge's std of cost is 5 times the families' (frontier.csv's numbers)
    ww = report.FrontierFamily([1e-4, 1e-2, 10.0], [-146.8, -36.7, 34.6], [882.2, 590.0, 556.8])
    band = report.FrontierFamily([0.01, 0.2, 0.4], [40.1, -33.6, -84.8], [555.9, 582.1, 646.2])
    points = {"no hedge": (-327.7, 2919.3), "delta": (45.6, 555.8),
              "delta every 5": (-138.2, 1209.6)}
    report.plot_frontier({"Whalley-Wilmott": ww, "fixed band": band}, points, "f.png")
    ax = figures[0].axes[0]
    assert ax.get_ylim()[1] < 1500  # the families fill the axes, delta every 5 in view
    assert ax.get_ylim()[0] <= 555.8
    assert ax.get_xlim()[1] >= 45.6
    legend = _legend_texts(ax)
    assert "no hedge: off the chart at (-327.7, 2,919)" in legend
    assert any(t.get_text() == "no hedge \u2190\u2191 (-327.7, 2,919)" for t in ax.texts)
    assert "delta every 5" in legend


def test_nan_points_keep_the_iso_objective_lines_and_are_named(figures) -> None:
    family = report.FrontierFamily([1, 2, 3], [1.0, np.nan, 2.0], [3.0, 2.0, np.nan])
    report.plot_frontier({"f": family}, {"a": (1.0, 2.0), "agent": (np.nan, np.nan)}, "f.png")
    ax = figures[0].axes[0]
    assert any(t.get_text().startswith("Y = ") for t in ax.texts)
    assert "agent (no finite mean and std of cost)" in _legend_texts(ax)
    report.plot_frontier({}, {}, "empty.png")  # nothing to draw: no crash
    report.plot_frontier({}, {"agent": (np.nan, np.nan)}, "nan.png")
    assert not any(t.get_text().startswith("Y = ") for t in figures[-1].axes[0].texts)


# ------------------------------------------------------------------------------- path story
def test_the_path_story_holds_the_model_hedge_into_the_end(figures) -> None:
    # at expiry the book holds nothing and the model hedge is 0: drawn, it was a line down to 0
    # over the last step (an in-the-money call whose model hedge is 100 until the end)
    times = np.linspace(0.0, 0.08, 5)
    model = np.array([[50.0, 70.0, 90.0, 100.0, 0.0]])
    report.plot_path_story(0, times, np.full((1, 5), 100.0), model, {"delta": model}, "p.png",
                           costs={"delta": np.zeros((1, 5))})
    ax = figures[0].axes[1]
    line = next(x for x in ax.get_lines() if x.get_label() == "model hedge")
    assert list(line.get_ydata()) == [50.0, 70.0, 90.0, 100.0, 100.0]
    labels = [a.get_ylabel() for a in figures[0].axes]
    assert labels[0] == "spot (currency)"
    assert "(currency)" in labels[2]


def test_the_path_story_draws_the_hedging_options_positions_when_held(figures) -> None:
    """Delta-gamma's cost is mostly its option trades: the story shows them in a panel of
    their own (between the underlying's positions and the costs), and only when held."""
    from hedgearena.baselines.arena import run_arena
    from hedgearena.baselines.benchmark import plot_story
    from hedgearena.baselines.delta import BlackScholesDelta
    from hedgearena.baselines.delta_gamma import DeltaGamma
    from hedgearena.envs.config import make_config

    result = run_arena(make_config("ShortCall", hedge_option=True),
                       [BlackScholesDelta(), DeltaGamma()], n_paths=4, seed=0, progress=False)
    n_steps = len(result.times) - 1
    series = report.story_series(result.records["delta-gamma"], n_steps)
    held = result.records["delta-gamma"].option.T
    np.testing.assert_array_equal(series.option[:, :n_steps], held)
    np.testing.assert_array_equal(series.option[:, -1], series.option[:, -2])
    plot_story(result, ["delta", "delta-gamma"], 0, Path("story.png"))
    plot_story(result, ["delta"], 0, Path("story.png"))
    with_option, without = figures
    labels = [ax.get_ylabel() for ax in with_option.axes]
    assert labels[2] == "position in the\nhedging option (units)"
    assert "cost" in labels[3]
    drawn = {line.get_label(): line.get_ydata() for line in with_option.axes[2].get_lines()}
    np.testing.assert_array_equal(drawn["delta-gamma"], series.option[0])
    np.testing.assert_array_equal(drawn["delta"], 0.0)
    assert len(without.axes) == 3


def test_the_story_names_the_model_hedge_it_draws_and_whose_strike(figures) -> None:
    """With a hedging option the dotted line is delta-gamma's hedge, not delta's: the legend
    says so (the line is the delta-gamma hedger's own positions in the underlying, which
    trade to it at every decision), and a book of several options names its first option's
    strike; a short call's story keeps the plain names."""
    from hedgearena.baselines.arena import run_arena
    from hedgearena.baselines.benchmark import plot_story
    from hedgearena.baselines.delta import BlackScholesDelta
    from hedgearena.baselines.delta_gamma import DeltaGamma
    from hedgearena.envs.config import make_config

    two_options = {"options": [{"moneyness": 1.0, "expiry_steps": 20, "contracts": -1.0},
                               {"moneyness": 1.1, "expiry_steps": 20, "contracts": 1.0}]}
    cases = [(make_config("ShortCall", hedge_option=True, book=two_options), DeltaGamma(),
              "model hedge (delta-gamma)", "first option's strike"),
             (make_config("ShortCall"), BlackScholesDelta(), "model hedge", "strike")]
    for config, hedger, model_label, strike_label in cases:
        result = run_arena(config, [hedger], n_paths=2, seed=0, progress=False)
        plot_story(result, [hedger.name], 0, Path("story.png"))
        fig = figures[-1]
        assert _legend_texts(fig.axes[0]) == ["spot", strike_label]
        assert _legend_texts(fig.axes[1])[0] == model_label
        model, held = fig.axes[1].get_lines()[:2]
        n = len(result.times) - 1  # the decisions' points (the last is held into the end)
        np.testing.assert_allclose(model.get_ydata()[:n], held.get_ydata()[:n], rtol=1e-9,
                                   atol=1e-9)


def test_a_long_title_is_wrapped_inside_the_figure() -> None:
    title = ("crowding: worst path of Whalley-Wilmott 0.316228 (tuned) (path 102, P&L -625) "
             "- the market's spot, before the hedgers' impact")
    fig = rendering.path_story_figure([0.0, 1.0], [100.0, 101.0], [0.5, 0.6],
                                      {"a": [0.5, 0.6]}, title=title)
    fig.canvas.draw()
    box = fig._suptitle.get_window_extent()
    assert "\n" in fig._suptitle.get_text()
    assert box.x0 >= 0
    assert box.x1 <= fig.bbox.x1
    rendering.figure_to_rgb(fig)


def test_a_story_of_one_time_is_drawn_as_points() -> None:
    # just after a reset: two entries at step 0, no line to draw: the frame was empty
    fig = rendering.path_story_figure([0, 0], [100.0, 100.0], [0.5, 0.5], {"hedge": [0.0, 0.0]},
                                      costs={"hedge": [0.0, 0.0]}, time_label="step")
    assert all(line.get_marker() == "o" for ax in fig.axes for line in ax.get_lines()
               if not line.get_label().startswith("_"))
    rendering.figure_to_rgb(fig)


# --------------------------------------------------------------------------------- heat map
def test_column_scale_keeps_missing_values_missing() -> None:
    values = pd.DataFrame({"s1": [1.0, np.nan, 3.0], "s2": [np.nan] * 3, "s3": [2.0, np.inf, 2.0]})
    scaled = stress.column_scale(values)
    assert scaled[0, 0] == 0.0
    assert scaled[2, 0] == 1.0
    assert np.isnan(scaled[1, 0])
    assert np.isnan(scaled[:, 1]).all()
    assert np.isnan(scaled[1, 2])
    assert scaled[0, 2] == 0.5


def test_heatmap_marks_missing_cells_and_no_best_in_an_empty_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hedgearena.envs.rendering import agg_figure

    saved: list[Any] = []
    monkeypatch.setattr(stress, "agg_figure",
                        lambda **kwargs: saved.append(agg_figure(**kwargs)) or saved[-1])
    values = pd.DataFrame({"s1": [1.0, np.nan, 3.0], "s2": [np.nan] * 3},
                          index=["a", "b", "c"])
    stress.plot_heatmap(values, tmp_path / "h.png", title="t")
    ax = saved[0].axes[0]
    cells = {(round(t.get_position()[0]), round(t.get_position()[1])): t for t in ax.texts}
    assert cells[0, 0].get_text() == "1"
    assert cells[0, 0].get_fontweight() == "bold"
    missing = [cells[0, 1], cells[1, 0], cells[1, 1], cells[1, 2]]  # (column, row)
    assert all(t.get_text() == "-" and t.get_color() == "black" for t in missing)
    assert all(t.get_fontweight() == "normal" for t in missing)


def test_the_report_plots_leave_the_callers_matplotlib_backend_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """They called ``matplotlib.use("Agg")``, which switches the whole process: a notebook's
    inline plots stopped showing after a benchmark. They now draw on Agg canvases of their
    own (``rendering.agg_figure``) and write the same PNGs."""
    import matplotlib

    monkeypatch.setattr(matplotlib, "use", lambda *args, **kwargs: pytest.fail("backend set"))
    rng = np.random.default_rng(0)
    pnl = {"delta": rng.normal(size=200), "no hedge": rng.normal(size=200)}
    paths = [
        report.plot_distributions(pnl, {k: -v for k, v in pnl.items()}, tmp_path / "d.png"),
        report.plot_frontier({}, {"delta": (1.0, 2.0)}, tmp_path / "f.png"),
        stress.plot_heatmap(pd.DataFrame({"s1": [1.0, 2.0]}, index=["a", "b"]),
                            tmp_path / "h.png", title="t"),
        report.plot_path_story(0, np.arange(3.0), np.ones((1, 3)), np.zeros((1, 3)),
                               {"delta": np.zeros((1, 3))}, tmp_path / "s.png"),
    ]
    assert all(p.stat().st_size > 1000 for p in paths)
