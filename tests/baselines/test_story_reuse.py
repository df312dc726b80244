"""Path stories drawn on kept figures, and the report's one-pass PNG writer: the same pixels.

The stress report draws its worst paths story after story on one figure per layout
(``rendering.StoryFigures``): nothing of a story may show in the next. ``report._save`` lays a
figure out once and draws it once, where ``savefig`` draws it twice: the pixels must be
``savefig``'s.
"""

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.image import imread

from hedgearena.baselines import report
from hedgearena.envs import rendering

TIMES = np.linspace(0.0, 0.08, 21)


def _story(seed: int, names: list[str], scale: float, strike: float | None,
           title: str) -> dict[str, Any]:
    """``plot_path_story``'s arguments for one path: spot near ``scale``, the hedgers ``names``."""
    rng = np.random.default_rng(seed)
    spot = scale * np.exp(np.cumsum(rng.normal(0.0, 0.02, TIMES.size)))[None, :]
    model = np.clip(50.0 + np.cumsum(rng.normal(0.0, 8.0, TIMES.size)), 0.0, 100.0)[None, :]
    hedges = {n: np.round(model + rng.normal(0.0, 3.0, model.shape)) for n in names}
    costs = {n: np.cumsum(rng.uniform(0.0, scale / 50.0, model.shape), axis=1) for n in names}
    return {"index": 0, "times": TIMES, "spot": spot, "model_hedge": model, "hedges": hedges,
            "costs": costs, "strike": strike, "title": title}


# stories that differ in everything a kept figure could leak: hedgers (and their number, hence
# legends and colours), scale (tick labels, offset text), strike line, title, costs' legend
A = _story(1, ["Whalley-Wilmott 0.316228 (tuned)", "delta"], 100.0, 100.0,
           "base: worst path of Whalley-Wilmott 0.316228 (tuned) (path 7, P&L -1,234)")
B = _story(2, ["no hedge"], 2.5e6, None, "gap: worst path of no hedge (path 3, P&L -9,876,543)")
C = {**_story(3, ["delta", "Leland"], 1_250.0, 1_300.0, "crowding: " + "a long title " * 12),
     "costs": None}
D = {**A, "costs": {"delta": A["costs"]["delta"]}}  # the costs' panel has a legend of its own


def _draw(story: dict[str, Any], path: Path, figures: Any = None) -> np.ndarray:
    report.plot_path_story(path=path, figures=figures, **story)
    return imread(path)


@pytest.mark.parametrize("order", [[A, B, A], [B, A, B], [A, D, A], [D, C, A]],
                         ids=["A-B-A", "B-A-B", "A-D-A", "D-C-A"])
def test_a_kept_figure_draws_each_story_as_a_new_one(tmp_path: Path, order: list) -> None:
    figures = rendering.StoryFigures()
    kept = [_draw(story, tmp_path / f"kept{i}.png", figures) for i, story in enumerate(order)]
    for i, story in enumerate(order):
        fresh = _draw(story, tmp_path / f"fresh{i}.png")
        np.testing.assert_array_equal(kept[i], fresh, err_msg=f"story {i} of {len(order)}")
    assert not np.array_equal(kept[0], kept[1])  # two stories, two pictures


def test_stories_of_one_layout_share_a_figure_and_others_get_their_own() -> None:
    figures = rendering.StoryFigures()

    def draw(story: dict[str, Any]) -> Any:
        def row(x: Any) -> Any:
            return None if x is None else {k: v[0] for k, v in x.items()}

        return rendering.path_story_figure(
            story["times"], story["spot"][0], story["model_hedge"][0], row(story["hedges"]),
            costs=row(story["costs"]), strike=story["strike"], title=story["title"],
            figures=figures)

    first, second = draw(A), draw(B)
    assert second is first
    assert [line.get_label() for line in first.axes[1].get_lines()][:2] == ["model hedge",
                                                                            "no hedge"]
    assert len(first.axes[0].get_lines()) == 1  # A's strike is gone
    assert draw(C) is not first  # no costs: two panels, another figure
    assert len(draw(C).axes) == 2


@pytest.mark.parametrize("times", [[0, 0], [0, 1, 2, 3, 4]], ids=["one point", "steps"])
def test_env_renders_on_a_kept_figure_are_new_figures_renders(times: list[int]) -> None:
    """The envs' frames: integer steps, and a story of one point (markers, the time axis set
    by hand), on kept figures."""
    figures = rendering.StoryFigures()
    m = len(times)

    def frame(scale: float, kept: bool) -> np.ndarray:
        fig = rendering.path_story_figure(
            times, scale * np.linspace(1.0, 1.1, m), np.linspace(0.4, 0.6, m),
            {"hedge": np.linspace(0.0, 0.5, m)}, costs={"hedge": scale * np.linspace(0, 1, m)},
            title=f"path at {scale}", time_label="step", figures=figures if kept else None)
        return rendering.figure_to_rgb(fig)

    kept = [frame(scale, kept=True) for scale in (100.0, 5e5, 100.0)]
    for scale, pixels in zip((100.0, 5e5, 100.0), kept, strict=True):
        np.testing.assert_array_equal(pixels, frame(scale, kept=False))


def test_the_report_png_writer_draws_what_savefig_draws(tmp_path: Path) -> None:
    """One layout and one draw (``report._save``), where savefig lays out in a draw of its own
    first: the same pixels, for the constrained-layout plots and the tight-layout heat map; the
    figure keeps its dpi and layout engine."""
    import pandas as pd

    from hedgearena.baselines import stress

    rng = np.random.default_rng(0)
    pnl = {"delta": rng.normal(size=300), "no hedge": 3.0 * rng.normal(size=300)}
    plots = {
        "story": lambda path: report.plot_path_story(path=path, **A),
        "distributions": lambda path: report.plot_distributions(
            pnl, {k: -v for k, v in pnl.items()}, path),
        "frontier": lambda path: report.plot_frontier({}, {"delta": (1.0, 2.0),
                                                           "no hedge": (0.5, 4.0)}, path),
        "heatmap": lambda path: stress.plot_heatmap(
            pd.DataFrame({"s1": [1.0, 2.0], "s2": [3.0, np.nan]}, index=["a", "b"]), path,
            title="t"),
    }
    figures: list[Any] = []

    def savefig(fig: Any, path: Any) -> Path:
        figures.append((fig, fig.dpi, fig.get_layout_engine()))
        fig.savefig(path, dpi=report.PNG_DPI)
        return Path(path)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(report, "_save", savefig)
        expected = {name: imread(plot(tmp_path / f"savefig_{name}.png"))
                    for name, plot in plots.items()}
    for name, plot in plots.items():
        np.testing.assert_array_equal(imread(plot(tmp_path / f"{name}.png")), expected[name],
                                      err_msg=name)
    fig, dpi, engine = figures[0]
    report._save(fig, tmp_path / "again.png")
    assert (fig.dpi, fig.get_layout_engine()) == (dpi, engine)
