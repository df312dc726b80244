"""One path's story as a picture: spot, model hedge, hedge position, trades and cumulative cost.

Used by the envs' ``render_mode="rgb_array"`` and by the arena's path-story plot, so both draw
the same thing. matplotlib is imported lazily (the Agg backend: no display needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def path_story_figure(
    times: Sequence[float] | np.ndarray,
    spot: Sequence[float] | np.ndarray,
    model_hedge: Sequence[float] | np.ndarray,
    hedges: dict[str, Sequence[float] | np.ndarray],
    costs: dict[str, Sequence[float] | np.ndarray] | None = None,
    strike: float | None = None,
    title: str = "",
) -> Any:
    """A matplotlib Figure with two or three panels sharing the time axis.

    Args:
        times: ``(m,)`` time of each point, years (or steps).
        spot: ``(m,)`` the underlying's price, currency.
        model_hedge: ``(m,)`` the model's hedge (e.g. minus the book's delta), units.
        hedges: hedger name -> ``(m,)`` position held after the decision at each point, units;
            trades are drawn as markers where the position changes.
        costs: hedger name -> ``(m,)`` cumulative transaction cost, currency (a third panel).
        strike: drawn as a dashed line on the spot panel.
        title: the figure's title.

    Returns:
        The figure (close it with ``matplotlib.pyplot.close(fig)``).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows = 3 if costs else 2
    fig, axes = plt.subplots(rows, 1, figsize=(7.0, 2.2 * rows + 0.6), sharex=True)
    t = np.asarray(times, dtype=float)
    axes[0].plot(t, spot, color="black", lw=1.2, label="spot")
    if strike is not None:
        axes[0].axhline(strike, color="grey", ls="--", lw=0.8, label="strike")
    axes[0].set_ylabel("spot")
    axes[0].legend(loc="best", fontsize=8)
    axes[1].plot(t, model_hedge, color="black", ls=":", lw=1.2, label="model hedge")
    for name, position in hedges.items():
        h = np.asarray(position, dtype=float)
        (line,) = axes[1].step(t, h, where="post", lw=1.0, label=name)
        traded = np.flatnonzero(np.diff(h, prepend=0.0) != 0)
        axes[1].plot(t[traded], h[traded], ".", color=line.get_color(), ms=4)
    axes[1].set_ylabel("position (units)")
    axes[1].legend(loc="best", fontsize=8)
    if costs:
        for name, cost in costs.items():
            axes[2].plot(t, cost, lw=1.0, label=name)
        axes[2].set_ylabel("cumulative cost")
        axes[2].legend(loc="best", fontsize=8)
    axes[-1].set_xlabel("time")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def figure_to_rgb(fig: Any) -> np.ndarray:
    """The figure's pixels, ``(height, width, 3)`` uint8; the figure is closed."""
    import matplotlib.pyplot as plt

    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return pixels
