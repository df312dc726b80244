"""The arena's outputs: a terminal table, CSV / JSON / Markdown files and PNG plots.

Everything takes the score table of :func:`hedgearena.baselines.metrics.score_table` or plain
arrays, and writes to the path it is given. Units: P&L, costs and risks are currency per episode
(per path); turnover is units of the underlying the decisions traded per episode (the unwind at the
end is a cost, not counted); rebalances a count per episode. matplotlib is imported lazily with the
Agg backend (no display needed).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from rich import box
from rich.console import Console
from rich.table import Table

from hedgearena.baselines.hedger import EpisodeRecord
from hedgearena.baselines.metrics import column_units, held_positions

OBJECTIVE_MARK = "*"
"""Marks the objective's column (lower is better)."""


class SummaryColumn(NamedTuple):
    """A column of the summary tables.

    ``key`` is the score's key, ``header`` the Markdown header, ``short`` the terminal's,
    ``se_key`` the key of its standard error, ``interval`` the keys of its confidence interval's
    ends (shown ``[low, high]``); ``terminal`` says if the terminal shows it.
    """

    key: str
    header: str
    short: str
    se_key: str | None = None
    terminal: bool = True
    interval: tuple[str, str] | None = None


SUMMARY_COLUMNS: tuple[SummaryColumn, ...] = (
    SummaryColumn("mean_pnl", "mean P&L", "mean\nP&L", "mean_pnl_se"),
    SummaryColumn("std_pnl", "std P&L", "std\nP&L", "std_pnl_se", terminal=False),
    SummaryColumn("mean_cost", "mean cost", "mean\ncost", "mean_cost_se"),
    SummaryColumn("std_cost", "std cost", "std\ncost", "std_cost_se"),
    SummaryColumn(
        "objective", f"{OBJECTIVE_MARK} Y = mean + c std", f"{OBJECTIVE_MARK} Y", "objective_se"
    ),
    SummaryColumn("expected_shortfall_95", "ES 95% of loss", "ES 95%\nloss"),
    SummaryColumn("entropic_risk", "entropic risk", "entropic\nrisk"),
    SummaryColumn("mean_transaction_cost", "transaction cost", "trans.\ncost",
                  "mean_transaction_cost_se"),
    SummaryColumn("mean_turnover", "turnover", "turn-\nover", "mean_turnover_se"),
    SummaryColumn("mean_trades", "rebalances", "rebal-\nances", "mean_trades_se"),
    SummaryColumn("cost_diff", "cost - reference cost", "cost -\nref", "cost_diff_se"),
    SummaryColumn("cost_diff_p_value", "p (paired t)", "p\n(paired)"),
    SummaryColumn("objective_diff", "Y - reference Y [95% CI]", "Y -\nref Y",
                  interval=("objective_diff_low", "objective_diff_high")),
)
"""What the terminal and Markdown tables show (the CSV and JSON hold every column)."""


# ------------------------------------------------------------------------------ formatting
def format_number(value: float) -> str:
    """A short rendering of a metric: 4 significant digits, thousands separated, "-" for NaN.

    Examples:
        >>> format_number(224.2157), format_number(0.012345), format_number(12345.6)
        ('224.2', '0.01235', '12,346')
        >>> format_number(float("nan")), format_number(0.0)
        ('-', '0')
    """
    if not math.isfinite(value):
        return "-"
    if value == 0.0:
        return "0"
    if abs(value) >= 1000.0:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def format_se(value: float) -> str:
    """A standard error: 2 significant digits below 100, else as :func:`format_number`.

    Examples:
        >>> format_se(1.9134), format_se(0.0012231), format_se(18.85), format_se(1234.5)
        ('1.9', '0.0012', '19', '1,234')
    """
    if not math.isfinite(value) or value == 0.0 or abs(value) >= 100.0:
        return format_number(value)
    return f"{value:.2g}"


def _format_cell(row: pd.Series, column: SummaryColumn, separator: str = " ± ") -> str:
    value = float(row[column.key])
    if column.key.endswith("p_value") and math.isfinite(value):
        return "<0.001" if value < 1e-3 else f"{value:.3f}"
    text = format_number(value)
    if column.se_key is not None and column.se_key in row.index and math.isfinite(value):
        text += f"{separator}{format_se(float(row[column.se_key]))}"
    if column.interval is not None and all(k in row.index for k in column.interval):
        low, high = (float(row[k]) for k in column.interval)
        if math.isfinite(low) and math.isfinite(high):
            gap = "\n" if "\n" in separator else " "  # a new line where the SE gets one
            text += f"{gap}[{format_number(low)}, {format_number(high)}]"
    return text


def _present(table: pd.DataFrame) -> list[SummaryColumn]:
    """The summary columns the table holds (and that are not all NaN)."""
    return [c for c in SUMMARY_COLUMNS if c.key in table and not table[c.key].isna().all()]


def _best_row(table: pd.DataFrame) -> Any:
    """The index of the lowest objective, or None."""
    if "objective" not in table or table["objective"].isna().all():
        return None
    return table["objective"].idxmin()


def caption(c: float | None = None, risk_aversion: float | None = None) -> str:
    """The units and conventions printed under every summary table.

    Examples:
        >>> "c = 1.5" in caption(c=1.5, risk_aversion=0.01)
        True
    """
    c_text = "" if c is None else f" with c = {c:g}"
    a_text = "" if risk_aversion is None else f" at a = {risk_aversion:g} per currency"
    return (
        "Currency per episode (per path) unless stated; turnover in units of the underlying "
        "traded by the decisions (the unwind not counted) and rebalances in trades per episode; "
        "value ± one standard error. "
        f"{OBJECTIVE_MARK} objective Y = mean(cost) + c std(cost){c_text}, lower is better "
        "(the best highlighted). cost = initial premium - exp(-rT) P&L, what running the book "
        "pays out (Cao et al. 2021's accounting cost is this less the premium); "
        f"loss = -P&L; ES = expected shortfall; entropic risk{a_text}; "
        "the paired t test compares each hedger's cost with the reference's on the same paths, "
        "and Y - ref Y is the difference of the objectives there with its 95% bootstrap CI."
    )


# ---------------------------------------------------------------------------------- tables
def wide_console() -> Console:
    """A console at least 160 columns wide: the tables stay readable when piped or narrow."""
    return Console(width=max(Console().width, 160))


def print_table(
    table: pd.DataFrame,
    title: str,
    console: Console | None = None,
    *,
    c: float | None = None,
    risk_aversion: float | None = None,
    note: str | None = None,
) -> Table:
    """Print the summary of a score table as a rich table (one row per hedger).

    Args:
        table: :func:`hedgearena.baselines.metrics.score_table`'s output.
        title: the table's title.
        console: where to print (a new :func:`wide_console` by default).
        c: the objective's weight, for the caption.
        risk_aversion: the entropic risk's, per currency, for the caption.
        note: a line under the caption (e.g. how tuned hedgers were tuned).

    Returns:
        The rich table (already printed).
    """
    columns = [column for column in _present(table) if column.terminal]
    text = caption(c, risk_aversion) + (f"\n{note}" if note else "")
    rich_table = Table(
        title=title, caption=text, caption_justify="left",
        box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True,
    )
    rich_table.add_column("hedger", style="bold", no_wrap=True)
    for column in columns:
        style = "bold cyan" if column.key == "objective" else None
        rich_table.add_column(column.short, justify="right", style=style)
    best = _best_row(table)
    for name, row in table.iterrows():
        cells = [_format_cell(row, column, "\n± ") for column in columns]
        rich_table.add_row(str(name), *cells, style="green" if name == best else None)
    (console or wide_console()).print(rich_table)
    return rich_table


def markdown_table(table: pd.DataFrame) -> str:
    """The summary of a score table as a GitHub Markdown table (units in the headers).

    Examples:
        >>> table = pd.DataFrame({"mean_cost": [2.0], "mean_cost_se": [0.1]},
        ...                      index=pd.Index(["delta"], name="hedger"))
        >>> print(markdown_table(table))
        | hedger | mean cost (currency) |
        |:---|---:|
        | delta | 2 ± 0.1 |
    """
    columns = _present(table)
    units = column_units([c.key for c in columns])
    best = _best_row(table)
    headers = ["hedger", *(f"{c.header} ({units[c.key]})" for c in columns)]
    lines = [_markdown_row(headers), "|:---|" + "---:|" * len(columns)]
    for name, row in table.iterrows():
        cells = [_format_cell(row, column) for column in columns]
        if name == best and "objective" in table:
            j = [c.key for c in columns].index("objective")
            cells[j] = f"**{cells[j]}**"
        lines.append(_markdown_row([str(name), *cells]))
    return "\n".join(lines)


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def write_tables(
    table: pd.DataFrame,
    out_dir: str | Path,
    stem: str,
    *,
    c: float,
    risk_aversion: float,
    seed: int | None,
    n_paths: int | None = None,
    extra: Mapping[str, Any] | None = None,
    note: str | None = None,
) -> dict[str, Path]:
    """Write the score table as ``<stem>.csv``, ``<stem>.json`` and ``<stem>.md``.

    The CSV holds every column (index ``hedger``); the JSON is ``{"metadata": ..., "units":
    column -> unit, "records": [{"hedger": name, column: value or null}, ...]}`` with the
    metadata ``c``, ``risk_aversion`` (per currency), ``n_paths``, ``seed`` and ``extra``; the
    Markdown is the summary (:func:`markdown_table`) with the caption under it.

    Args:
        table: :func:`hedgearena.baselines.metrics.score_table`'s output.
        out_dir: the directory (created if missing).
        stem: file name without extension.
        c: the objective's weight.
        risk_aversion: the entropic risk's, per currency.
        seed: the seed of the paths (and bootstrap) of the run.
        n_paths: paths per hedger (default: the table's ``n_paths`` column).
        extra: more metadata (JSON-serialisable), e.g. the env's resolved config.
        note: a line for the Markdown under the caption (e.g. how tuned hedgers were tuned).

    Returns:
        ``{"csv": path, "json": path, "md": path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {ext: out / f"{stem}.{ext}" for ext in ("csv", "json", "md")}
    table.to_csv(paths["csv"], index_label="hedger")
    if n_paths is None and "n_paths" in table and len(table):
        n_paths = int(table["n_paths"].max())
    metadata = {"c": c, "risk_aversion": risk_aversion, "n_paths": n_paths, "seed": seed}
    document = {
        "metadata": {**metadata, **dict(extra or {})},
        "units": column_units(list(table.columns)),
        "records": _json_records(table),
    }
    paths["json"].write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
    body = markdown_table(table) + "\n\n" + caption(c, risk_aversion) + "\n"
    if note:
        body += "\n" + note + "\n"
    paths["md"].write_text(body)
    return paths


def _json_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts with NaN written as null (strict JSON)."""
    records = []
    for name, row in table.iterrows():
        values = {str(k): (float(v) if math.isfinite(float(v)) else None) for k, v in row.items()}
        records.append({"hedger": str(name), **values})
    return records


# ----------------------------------------------------------------------------------- plots
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    _pyplot().close(fig)
    return out


def _histogram_panel(ax: Any, values: Mapping[str, ArrayLike], xlabel: str) -> None:
    """Overlaid step histograms on shared bins, the mean of each as a dashed line.

    The bins span the pooled 0.5% to 99.5% quantiles; values beyond are counted in the end bins.
    """
    arrays = {name: np.asarray(v, dtype=np.float64) for name, v in values.items()}
    pooled = np.concatenate(list(arrays.values()))
    low, high = np.quantile(pooled, [0.005, 0.995])
    if high <= low:
        low, high = low - 0.5, high + 0.5
    bins = np.linspace(low, high, 61)
    for name, x in arrays.items():
        _, _, patches = ax.hist(np.clip(x, low, high), bins=bins, histtype="step", lw=1.4,
                                label=f"{name} (mean {format_number(float(x.mean()))})")
        ax.axvline(float(x.mean()), color=patches[0].get_edgecolor(), ls="--", lw=1.0)
    ax.set_xlabel(xlabel)
    ax.text(0.5, 0.98, "the end bins hold every path beyond the pooled 0.5% / 99.5% quantiles",
            transform=ax.transAxes, ha="center", va="top", fontsize=7, color="grey")
    ax.set_ylabel("paths")
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)


def plot_distributions(
    pnl: Mapping[str, ArrayLike],
    cost: Mapping[str, ArrayLike],
    path: str | Path,
    *,
    title: str = "",
) -> Path:
    """Histograms of P&L (top) and of hedging cost (bottom) per hedger, overlaid on shared bins.

    Args:
        pnl: hedger name -> ``(n_paths,)`` terminal P&L, currency per episode.
        cost: hedger name -> ``(n_paths,)`` hedging cost, currency per episode.
        path: the PNG to write.
        title: the figure's title.

    Returns:
        ``path``. Dashed lines mark the means; tails beyond the pooled 0.5% and 99.5%
        quantiles are counted in the end bins.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(8.0, 7.0))
    _histogram_panel(axes[0], pnl, "terminal P&L (currency per episode)")
    _histogram_panel(axes[1], cost, "hedging cost = premium - exp(-rT) P&L (currency per episode)")
    fig.suptitle(title or "P&L and hedging cost per hedger (dashed: mean)", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


class FrontierFamily(NamedTuple):
    """A hedger family swept over one parameter: its mean and std of cost at each value."""

    parameter: ArrayLike
    mean_cost: ArrayLike
    std_cost: ArrayLike
    parameter_name: str = ""


def _iso_objective_lines(ax: Any, c: float, x: NDArray[np.float64], y: NDArray[np.float64]) -> None:
    """Grey lines ``mean + c std = Y`` at round values of ``Y``, each labelled where it enters."""
    from matplotlib.ticker import MaxNLocator

    if c <= 0:
        return
    xlim, ylim = ax.get_xlim(), ax.get_ylim()
    objective = x + c * y
    xs = np.linspace(xlim[0], xlim[1], 200)
    for level in MaxNLocator(nbins=6).tick_values(objective.min(), objective.max()):
        ys = (level - xs) / c
        ax.plot(xs, ys, color="grey", lw=0.7, ls=":", zorder=0)
        inside = np.flatnonzero((ys >= ylim[0]) & (ys <= ylim[1]))
        if inside.size:
            k = inside[0]
            ax.annotate(f"Y = {format_number(float(level))}", (xs[k], ys[k]), fontsize=7,
                        color="dimgrey", textcoords="offset points", xytext=(4, -4), va="top",
                        bbox={"fc": "white", "ec": "none", "pad": 0.5, "alpha": 0.85})
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)


def plot_frontier(
    families: Mapping[str, FrontierFamily],
    points: Mapping[str, tuple[float, float]],
    path: str | Path,
    *,
    c: float = 1.5,
    title: str = "",
) -> Path:
    """The cost-vs-risk frontier: mean cost (x) against std of cost (y), lower-left is better.

    Args:
        families: family name -> its sweep (a line, each point annotated with its parameter).
        points: single hedger name -> ``(mean_cost, std_cost)`` (a labelled marker).
        path: the PNG to write.
        c: the objective's weight: grey lines are iso-objective ``mean + c std = Y``.
        title: the figure's title.

    Returns:
        ``path``.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.0, 6.0))
    xs, ys = [], []
    labels: list[tuple[str, float, float, tuple[int, int], int]] = []  # hedgers' first
    markers = "sDv^<>pP*Xh"
    for i, (name, (mean, std)) in enumerate(points.items()):
        ax.plot([mean], [std], markers[i % len(markers)], ms=7, label=name)
        labels.append((name, mean, std, (6, -10), 8))
        xs.append(np.array([mean]))
        ys.append(np.array([std]))
    for name, family in families.items():
        x, y = np.asarray(family.mean_cost, float), np.asarray(family.std_cost, float)
        label = f"{name} ({family.parameter_name})" if family.parameter_name else name
        ax.plot(x, y, "o-", ms=4, lw=1.3, label=label)
        for p, xi, yi in zip(np.asarray(family.parameter).ravel(), x, y, strict=True):
            labels.append((f"{p:g}", float(xi), float(yi), (4, 4), 7))
        xs.append(x)
        ys.append(y)
    ax.margins(0.08)
    if xs:
        _iso_objective_lines(ax, c, np.concatenate(xs), np.concatenate(ys))
    fig.tight_layout()  # the final layout: labels are laid out in its pixels
    _annotate_apart(fig, ax, labels)
    ax.set_xlabel("mean hedging cost (currency per episode)")
    ax.set_ylabel("std of hedging cost (currency per episode)")
    ax.set_title(title or f"Cost vs risk (dotted: mean + {c:g} std = Y)", fontsize=11)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def _annotate_apart(
    fig: Any, ax: Any, labels: list[tuple[str, float, float, tuple[int, int], int]]
) -> None:
    """Annotate ``(text, x, y, offset, fontsize)`` in order, skipping overlapping labels.

    A label whose box would overlap one already written is left out (the legend still names
    every marker), so the first labels (the hedgers') win.
    """
    renderer = fig.canvas.get_renderer()
    placed: list[Any] = []
    for text, x, y, offset, size in labels:
        note = ax.annotate(text, (x, y), textcoords="offset points", xytext=offset,
                           fontsize=size)
        box = note.get_window_extent(renderer).expanded(1.05, 1.15)
        if any(box.overlaps(other) for other in placed):
            note.remove()
        else:
            placed.append(box)


def story_series(record: EpisodeRecord, n_steps: int) -> tuple[NDArray[np.float64], ...]:
    """A record's positions and cumulative transaction cost at every market step.

    Returns:
        ``(hedge, cumulative_cost)``, ``(n_paths, n_steps + 1)`` each: the position held after
        the decision at each step (the last column repeats the position held into the end; the
        unwind is not drawn) and the costs paid up to each step (the unwind's cost is booked at
        the last decision, as in the record).
    """
    hedge, _ = held_positions(record, n_steps)
    positions = np.concatenate([hedge, hedge[:, -1:]], axis=1)
    paid = np.zeros((hedge.shape[0], n_steps + 1))
    np.add.at(paid.T, record.steps, record.cost)
    return positions, np.cumsum(paid, axis=1)


def plot_path_story(
    index: int,
    times: ArrayLike,
    spot: ArrayLike,
    model_hedge: ArrayLike,
    hedges: Mapping[str, ArrayLike],
    path: str | Path,
    *,
    costs: Mapping[str, ArrayLike] | None = None,
    strike: float | None = None,
    title: str = "",
) -> Path:
    """One path's story: spot, the model hedge, each hedger's positions and cumulative costs.

    Drawn by :func:`hedgearena.envs.rendering.path_story_figure` (the envs' render).

    Args:
        index: the path to draw.
        times: ``(m,)`` years.
        spot: ``(n_paths, m)`` the underlying's price.
        model_hedge: ``(n_paths, m)`` the model's hedge, units.
        hedges: hedger name -> ``(n_paths, m)`` positions (e.g. :func:`story_series`).
        path: the PNG to write.
        costs: hedger name -> ``(n_paths, m)`` cumulative transaction costs, currency.
        strike: drawn on the spot panel.
        title: the figure's title (default: the path's index).

    Returns:
        ``path``.
    """
    from hedgearena.envs.rendering import path_story_figure

    def row(values: ArrayLike) -> NDArray[np.float64]:
        return np.asarray(values, dtype=np.float64)[index]

    fig = path_story_figure(
        np.asarray(times, dtype=np.float64),
        row(spot),
        row(model_hedge),
        {name: row(h) for name, h in hedges.items()},
        costs={name: row(v) for name, v in costs.items()} if costs else None,
        strike=strike,
        title=title or f"path {index}",
    )
    return _save(fig, path)
