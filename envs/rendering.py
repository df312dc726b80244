"""One path's story as a picture: spot, model hedge, hedge position, trades and cumulative cost.

Used by the envs' ``render_mode="rgb_array"`` (single and vector) and by the arena's path-story
plot, so all draw the same thing. matplotlib is imported lazily; the figures are drawn on an Agg
canvas of their own, without pyplot, so rendering neither needs a display nor changes the
caller's matplotlib backend (a notebook's inline plots, a script's windows).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from hedgearena.envs.config import EnvConfig


def distinct_colors(n: int) -> list[Any]:
    """``n`` colours told apart: tab10's up to 10, then tab20's light shades, then a colour map.

    Examples:
        >>> len(distinct_colors(12)), len(set(distinct_colors(20)))
        (12, 20)
    """
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:  # tab20's dark shades are tab10's: those first, then the light ones
        return [colormaps["tab20"](i) for i in [*range(0, 20, 2), *range(1, 20, 2)][:n]]
    return [colormaps["turbo"](x) for x in np.linspace(0.05, 0.95, n)]


def path_story_figure(
    times: Sequence[float] | np.ndarray,
    spot: Sequence[float] | np.ndarray,
    model_hedge: Sequence[float] | np.ndarray,
    hedges: dict[str, Sequence[float] | np.ndarray],
    costs: dict[str, Sequence[float] | np.ndarray] | None = None,
    strike: float | None = None,
    title: str = "",
    time_label: str = "time (years)",
    options: dict[str, Sequence[float] | np.ndarray] | None = None,
    figures: StoryFigures | None = None,
    labels: StoryLabels | None = None,
) -> Any:
    """A matplotlib Figure with two to four panels sharing the time axis.

    The legends sit to the right of the panels (they hide no data); a hedger has one colour
    in both panels; integer times (steps) get integer ticks; a story of one point (just after
    a reset) is drawn as markers; a long title is wrapped.

    Args:
        times: ``(m,)`` time of each point, years (or steps: say so in ``time_label``).
        spot: ``(m,)`` the underlying's price, currency.
        model_hedge: ``(m,)`` the model's hedge (e.g. minus the book's delta), units.
        hedges: hedger name -> ``(m,)`` position in the underlying held after the decision at
            each point, units; trades are drawn as markers where the position changes.
        costs: hedger name -> ``(m,)`` cumulative transaction cost, currency (the last panel,
            drawn as steps: a cost is paid at its decision, not accrued until the next).
        strike: drawn as a dashed line on the spot panel.
        title: the figure's title.
        time_label: the time axis' label.
        options: hedger name -> ``(m,)`` position in the hedging option held after the
            decision at each point, units (a panel after the underlying's, same colours).
        figures: draw on the figure these keep for stories of this layout, emptied of the
            last story (:class:`StoryFigures`: the same picture, faster), not on a new one.
        labels: the legend's names of the model hedge and the strike (:func:`story_labels`
            of the env config says which model and which strike they are); None: "model
            hedge" and "strike".

    Returns:
        The figure, on an Agg canvas of its own (not pyplot's: ``savefig`` it, or
        :func:`figure_to_rgb`; nothing to close). A kept figure (``figures``) shows this story
        until the next story of its layout is drawn on it.
    """
    import textwrap

    from matplotlib.ticker import MaxNLocator

    t = np.asarray(times, dtype=float)
    labels = labels or StoryLabels()
    layout = StoryLayout(rows=2 + bool(options) + bool(costs), points=np.unique(t).size < 2,
                         steps=bool(t.size and np.all(t == np.round(t))), titled=bool(title))
    fig = (figures or StoryFigures()).figure(layout)
    axes = fig.axes
    point = {"marker": "o", "ms": 4} if layout.points else {}  # no line to draw
    legend = {"fontsize": 8, "loc": "upper left", "bbox_to_anchor": (1.01, 1.0),
              "borderaxespad": 0.0}
    axes[0].plot(t, spot, color="black", lw=1.2, label="spot", **point)
    if strike is not None:
        axes[0].axhline(strike, color="grey", ls="--", lw=0.8, label=labels.strike)
    axes[0].set_ylabel("spot (currency)")
    axes[0].legend(**legend)
    colors = dict(zip(hedges, distinct_colors(len(hedges)), strict=True))
    axes[1].plot(t, model_hedge, color="black", ls=":", lw=1.2, label=labels.model,
                 **point)
    _positions(axes[1], t, hedges, colors, point)
    axes[1].set_ylabel("position in the\nunderlying (units)")
    axes[1].legend(**legend, ncols=1 if len(hedges) < 22 else 2)
    if options:
        _positions(axes[2], t, options, colors, point)
        axes[2].set_ylabel("position in the\nhedging option (units)")
    if costs:
        for i, (name, cost) in enumerate(costs.items()):
            color = colors.get(name, distinct_colors(len(costs))[i])
            axes[-1].step(t, cost, where="post", lw=1.0, color=color, label=name, **point)
        axes[-1].set_ylabel("cumulative transaction\ncost (currency)")
        if set(costs) != set(hedges):  # else the colours are the positions' legend's
            axes[-1].legend(**legend)
    if layout.steps:
        axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
        if layout.points:
            axes[-1].set_xlim(t[0] - 1.0, t[0] + 1.0)
    axes[-1].set_xlabel(time_label)
    if title:
        fig.suptitle(textwrap.fill(title, 95), fontsize=10)
    return fig


class StoryLabels(NamedTuple):
    """The legend's names of a story's model hedge and strike line."""

    model: str = "model hedge"
    strike: str = "strike"


def story_labels(config: EnvConfig) -> StoryLabels:
    """What a story of ``config``'s paths draws as the model hedge and as the strike.

    With a hedging option the model hedge is delta-gamma's (the book's delta net of the model's
    position in the option, :func:`hedgearena.envs.episode.build_episodes`), which a delta
    hedger does not follow; the strike line is the book's first initial option's
    (``ArenaResult.strike``), named so when the book has other options or client flow.

    Examples:
        >>> from hedgearena.envs.config import make_config
        >>> story_labels(make_config("ShortCall"))
        StoryLabels(model='model hedge', strike='strike')
        >>> story_labels(make_config("OptionBook", hedge_option=True))
        StoryLabels(model='model hedge (delta-gamma)', strike="first option's strike")
    """
    book = config.book
    alone = len(book.options) == 1 and book.client_flow is None
    return StoryLabels(
        model="model hedge" if config.hedge_option is None else "model hedge (delta-gamma)",
        strike="strike" if alone else "first option's strike",
    )


class StoryLayout(NamedTuple):
    """What a path-story figure is built for: stories of one layout can share a figure.

    ``rows`` panels; ``points``: the story has one time (drawn as markers, the time axis set
    by hand); ``steps``: integer times (integer ticks); ``titled``: it has a title.
    """

    rows: int
    points: bool
    steps: bool
    titled: bool


class StoryFigures:
    """Path-story figures kept to draw story after story on (``path_story_figure(figures=)``).

    Building a figure (its panels, axes and their ticks) and measuring text on a new canvas
    (whose cache is empty) take about a quarter of a saved story's time: drawing story after
    story on one figure per :class:`StoryLayout` saves them. Before each story the kept figure
    is emptied of the last one: its lines, legends and other artists removed, its data limits,
    autoscaling and colour cycle reset, its panels put back where a new figure's are (the
    layout engine starts from there). Nothing of a story is left to the next, and the picture
    is a new figure's, pixel for pixel (tests/baselines/test_story_reuse.py). A figure keeps
    the matplotlib style (rcParams) it was built with.
    """

    def __init__(self) -> None:
        self._kept: dict[StoryLayout, Any] = {}

    def __reduce__(self) -> tuple[type, tuple[()]]:
        """Copies and pickles start empty (a figure unpickled has no Agg canvas to draw on)."""
        return StoryFigures, ()

    def figure(self, layout: StoryLayout) -> Any:
        """The figure for a story of ``layout``: the kept one, emptied, else a new one (kept)."""
        fig = self._kept.get(layout)
        if fig is None:
            fig = self._kept[layout] = agg_figure(figsize=(8.6, 2.2 * layout.rows + 0.8),
                                                  layout="constrained")
            fig.subplots(layout.rows, 1, sharex=True, squeeze=False)
        else:
            _empty_story(fig)
        return fig


def _empty_story(fig: Any) -> None:
    """Take the last story off a kept figure: it is left as a new figure, its panels empty."""
    for ax in fig.axes:  # all emptied before any is drawn on: they share the time axis
        for artist in [*ax.lines, *ax.collections, *ax.patches, *ax.texts, *ax.images]:
            artist.remove()
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        ax.relim()  # nothing drawn: the null data limits of a new axes
        ax.set_autoscale_on(True)
        ax.set_prop_cycle(None)
        ax.set_subplotspec(ax.get_subplotspec())  # the position a new figure gives it


def _positions(
    ax: Any, t: np.ndarray, positions: dict[str, Sequence[float] | np.ndarray],
    colors: dict[str, Any], point: dict[str, Any],
) -> None:
    """Each hedger's positions as steps, with dots at its trades (in ``colors``' colours)."""
    for i, (name, position) in enumerate(positions.items()):
        color = colors.get(name, distinct_colors(len(positions))[i])
        h = np.asarray(position, dtype=float)
        ax.step(t, h, where="post", lw=1.0, label=name, color=color, **point)
        traded = np.flatnonzero(np.diff(h, prepend=0.0) != 0)
        ax.plot(t[traded], h[traded], ".", color=color, ms=4)


def held_to_end(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """``values`` with the last point drawn as the one before it: a ``(m,)`` float copy.

    At the episode's end the book has expired, so the model hedge is 0, and the env has unwound
    the hedge: drawn as they are, both fall to 0 over the last step, a trade the model never
    asked for. The stories hold them into the end instead (the unwind's cost is in the last
    decision's cumulative cost, as in the records).

    Examples:
        >>> held_to_end([50.0, 100.0, 0.0]), held_to_end([7.0])
        (array([ 50., 100., 100.]), array([7.]))
    """
    out = np.array(values, dtype=float)
    if out.size > 1:
        out[-1] = out[-2]
    return out


def agg_figure(**kwargs: Any) -> Any:
    """A matplotlib ``Figure(**kwargs)`` on an Agg canvas of its own, not pyplot's.

    Drawing leaves the caller's backend alone (a notebook's inline plots, a script's windows:
    ``matplotlib.use("Agg")`` would switch the whole process), and there is nothing to close:
    ``savefig`` it, or :func:`figure_to_rgb`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def figure_to_rgb(fig: Any) -> np.ndarray:
    """The figure's pixels, ``(height, width, 3)`` uint8; the figure is closed (if pyplot's)."""
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    if "matplotlib.pyplot" in sys.modules:  # a figure of pyplot's: release it
        sys.modules["matplotlib.pyplot"].close(fig)
    return pixels


RENDER_MODES = ("ansi", "rgb_array")
"""The envs' render modes: a line of text per step, or the path's story as a picture."""


WRAPPER_HINTS = {
    "human": "for a window, wrap an env made with render_mode='rgb_array' in "
    "gymnasium.wrappers.HumanRendering (it needs pygame)",
    "rgb_array_list": "for a list of frames, wrap an env made with render_mode='rgb_array' in "
    "gymnasium.wrappers.RenderCollection",
    "ansi_list": "for a list of lines, wrap an env made with render_mode='ansi' in "
    "gymnasium.wrappers.RenderCollection",
}
"""What :func:`check_render_mode` adds for the modes Gymnasium's wrappers give (the envs do not
apply them themselves: ``gym.make`` passes ``render_mode`` to the env as given)."""


def check_render_mode(render_mode: Any) -> None:
    """Raise ``ValueError`` unless ``render_mode`` is None or one of :data:`RENDER_MODES`.

    Examples:
        >>> check_render_mode("human")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: render_mode must be one of ['ansi', 'rgb_array'], got 'human'; for a window...
    """
    if render_mode is not None and render_mode not in RENDER_MODES:
        hint = WRAPPER_HINTS.get(render_mode, "") if isinstance(render_mode, str) else ""
        hint = f"; {hint}" if hint else ""
        raise ValueError(
            f"render_mode must be one of {list(RENDER_MODES)}, got {render_mode!r}{hint}"
        )


def state_line(step: int, spot: float, hedge: float, model_hedge: float, wealth: float) -> str:
    """The ``ansi`` rendering of one path's current step.

    Examples:
        >>> state_line(3, 101.5, -52.0, -50.25, 1234.5)
        'step    3  spot   101.5000  hedge   -52.0000  model   -50.2500  wealth    1234.5000'
    """
    return (f"step {step:4d}  spot {spot:10.4f}  hedge {hedge:10.4f}  "
            f"model {model_hedge:10.4f}  wealth {wealth:12.4f}")


def story_frame(
    story: Sequence[tuple[int, float, float]], spot: np.ndarray, model_hedge: np.ndarray,
    title: str, figures: StoryFigures | None = None, labels: StoryLabels | None = None,
) -> np.ndarray:
    """The ``rgb_array`` rendering of one path: ``(H, W, 3)`` uint8.

    A story that has reached the episode's end (its last step is ``n_steps``) draws the model
    hedge and the hedge held into the end (:func:`held_to_end`), as the arena's path story
    does.

    Args:
        story: ``(step, hedge held after the decision, cumulative cost)`` of each decision, then
            the current step's.
        spot: ``(n_steps + 1,)`` the path's spot by step, currency.
        model_hedge: ``(n_steps + 1,)`` the model hedge by step, units.
        title: the picture's title.
        figures: the figures to draw frame after frame on (:class:`StoryFigures`; the env's
            own), or None for a new figure.
        labels: the legend's names (:func:`story_labels` of the env's config).
    """
    steps, hedge, cost = (list(x) for x in zip(*story, strict=True))
    model = np.array([model_hedge[s] for s in steps], dtype=float)
    held = np.array(hedge, dtype=float)
    if steps[-1] == len(spot) - 1:
        model, held = held_to_end(model), held_to_end(held)
    fig = path_story_figure(
        times=steps, spot=[spot[s] for s in steps], model_hedge=model,
        hedges={"hedge": held}, costs={"hedge": cost}, title=title, time_label="step",
        figures=figures, labels=labels,
    )
    return figure_to_rgb(fig)
