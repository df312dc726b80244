"""The arena's outputs: a terminal table, CSV / JSON / Markdown files and PNG plots.

Everything takes the score table of :func:`hedgearena.baselines.metrics.score_table` or plain
arrays, and writes to the path it is given. Units: P&L, costs and risks are currency per episode
(per path); turnover is units of the underlying the decisions traded per episode (the unwind at the
end is a cost, not counted); rebalances a count per episode; option turnover and option trades
the same for a hedging option. matplotlib is imported lazily with the
Agg backend (no display needed).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
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
from hedgearena.envs.rendering import StoryFigures, StoryLabels, agg_figure

OBJECTIVE_MARK = "*"
"""Marks the objective's column (lower is better)."""


class SummaryColumn(NamedTuple):
    """A column of the summary tables.

    ``key`` is the score's key, ``header`` the Markdown header, ``short`` the terminal's,
    ``se_key`` the key of its standard error, ``interval`` the keys of its confidence interval's
    ends (shown ``[low, high]``); ``terminal`` says if the terminal shows it; an ``optional``
    column is shown only when a row's value is not 0 (the hedging option's trading).
    """

    key: str
    header: str
    short: str
    se_key: str | None = None
    terminal: bool = True
    interval: tuple[str, str] | None = None
    optional: bool = False


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
    SummaryColumn("mean_option_turnover", "option turnover", "option\nturnover",
                  "mean_option_turnover_se", optional=True),
    SummaryColumn("mean_option_trades", "option trades", "option\ntrades",
                  "mean_option_trades_se", optional=True),
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
    """A table cell: the value, ``± SE`` where the standard error is known, ``[low, high]``.

    An undefined standard error (NaN: one path) is left out, not written ``± -``.
    """
    value = float(row[column.key])
    if column.key.endswith("p_value") and math.isfinite(value):
        return "<0.001" if value < 1e-3 else f"{value:.3f}"
    text = format_number(value)
    se_key = column.se_key
    se = float(row[se_key]) if se_key is not None and se_key in row.index else math.nan
    if math.isfinite(value) and math.isfinite(se):
        text += f"{separator}{format_se(se)}"
    if column.interval is not None and all(k in row.index for k in column.interval):
        low, high = (float(row[k]) for k in column.interval)
        if math.isfinite(low) and math.isfinite(high):
            gap = "\n" if "\n" in separator else " "  # a new line where the SE gets one
            text += f"{gap}[{format_number(low)}, {format_number(high)}]"
    return text


def _present(table: pd.DataFrame) -> list[SummaryColumn]:
    """The summary columns the table holds (not all NaN; an optional one not all 0 or NaN)."""
    return [c for c in SUMMARY_COLUMNS if c.key in table and not table[c.key].isna().all()
            and not (c.optional and not table[c.key].fillna(0.0).any())]


REFERENCE_CELL = "reference"
"""What the reference hedger's row shows in the ``cost - reference cost`` column."""


def _reference_row(table: pd.DataFrame) -> Any:
    """The index of the reference hedger, or None.

    The paired columns are scored against the reference, so its own ``cost_diff`` alone is
    NaN (:func:`hedgearena.baselines.metrics.score` leaves them out for it): the one row
    without ``cost_diff`` when other rows have it.
    """
    if "cost_diff" not in table:
        return None
    missing = table.index[table["cost_diff"].isna()]
    return missing[0] if len(missing) == 1 and len(table) > 1 else None


def _row_cells(
    row: pd.Series, columns: Sequence[SummaryColumn], is_reference: bool, separator: str = " ± ",
) -> list[str]:
    """A row's cells (:func:`_format_cell`); the reference's paired column names it."""
    return [REFERENCE_CELL if is_reference and c.key == "cost_diff"
            else _format_cell(row, c, separator) for c in columns]


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
        "traded by the decisions and rebalances in decisions that traded it, per episode (the "
        "unwind not counted: it is in the transaction cost; a hedging option's trades are in "
        "option turnover and option trades, shown when held); "
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
    best, reference = _best_row(table), _reference_row(table)
    for name, row in table.iterrows():
        cells = _row_cells(row, columns, name == reference, "\n± ")
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
    reference = _reference_row(table)
    for name, row in table.iterrows():
        cells = _row_cells(row, columns, name == reference)
        if name == best and "objective" in table:
            j = [c.key for c in columns].index("objective")
            cells[j] = f"**{cells[j]}**"
        lines.append(_markdown_row([str(name), *cells]))
    return "\n".join(lines)


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


@contextlib.contextmanager
def staged_files(out_dir: Path) -> Iterator[Path]:
    """A staging folder inside ``out_dir`` whose files replace ``out_dir``'s at the end.

    A report is written into the staging folder; only when the block ends without an error
    (or Ctrl-C) are its files moved into ``out_dir`` (renames, one after the other, within one
    file system), so an interrupted report leaves the previous one as it was, not a mix of the
    two. The staging folder is removed either way.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".staging-", dir=out_dir))
    try:
        yield stage
        for path in sorted(stage.iterdir()):
            os.replace(path, out_dir / path.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def write_staged(
    out_dir: Path, write: Callable[[Path], Mapping[str, Path]]
) -> dict[str, Path]:
    """``write(stage)``'s files, written in a staging folder then moved into ``out_dir``.

    Returns:
        name -> path in ``out_dir`` of every file ``write`` wrote (see :func:`staged_files`).
    """
    with staged_files(out_dir) as stage:
        files = dict(write(stage))
    return {name: out_dir / path.relative_to(stage) for name, path in files.items()}


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
    column -> unit, "records": [{"hedger": name, column: value or null}, ...], "notes":
    [line, ...]}`` with the metadata ``c``, ``risk_aversion`` (per currency), ``n_paths``,
    ``seed`` and ``extra`` and the lines of ``note``; the Markdown is the summary
    (:func:`markdown_table`) with the caption and the note under it.

    Args:
        table: :func:`hedgearena.baselines.metrics.score_table`'s output.
        out_dir: the directory (created if missing).
        stem: file name without extension.
        c: the objective's weight.
        risk_aversion: the entropic risk's, per currency.
        seed: the seed of the paths (and bootstrap) of the run.
        n_paths: paths per hedger (default: the table's ``n_paths`` column).
        extra: more metadata (JSON-serialisable), e.g. the env's resolved config.
        note: lines under the caption (e.g. how tuned hedgers were tuned), in the Markdown and
            as the JSON's ``notes``.

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
        "notes": note.splitlines() if note else [],
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
PNG_DPI = 120
"""The resolution of the PNG plots, dots per inch."""

PNG_COMPRESS_LEVEL = 3
"""zlib's level for the PNG plots: a path story is written in 2/3 of level 6's time (PIL's
default), the file 8% larger; the pixels are the same at every level."""


def _save(fig: Any, path: str | Path) -> Path:
    """Write a figure (:func:`hedgearena.envs.rendering.agg_figure`'s) as a 120-dpi PNG.

    Laid out and drawn once (:func:`_laid_out`); zlib level :data:`PNG_COMPRESS_LEVEL`.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _laid_out(fig, PNG_DPI):
        fig.savefig(out, dpi=PNG_DPI, pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL})
    return out


@contextlib.contextmanager
def _laid_out(fig: Any, dpi: float) -> Iterator[None]:
    """Inside, ``fig`` is at ``dpi``, laid out by its layout engine, and has no engine.

    ``savefig`` on a figure with a layout engine (``layout="constrained"``) lays it out in a
    draw of its own, then draws it again; inside, it draws it once, as laid out: the same
    pixels, a path story on a new figure written in 10% less time. On exit the figure has its
    dpi and its engine back.
    """
    import matplotlib

    engine, own_dpi = fig.get_layout_engine(), fig.dpi
    fig.dpi = dpi  # laid out at the resolution it is drawn at, as savefig does
    try:
        if engine is not None and fig.axes:
            with contextlib.suppress(ValueError):  # as Figure.draw: a layout that cannot fit
                engine.execute(fig)
            with matplotlib.rc_context({"figure.autolayout": False,
                                        "figure.constrained_layout.use": False}):
                fig.set_layout_engine(None)  # None, not "none": savefig lays "none" out too
        yield
    finally:
        fig.dpi = own_dpi
        if engine is not None:
            fig.set_layout_engine(engine)


def _outside_legend(ax: Any, n_entries: int, **kwargs: Any) -> Any:
    """A legend to the right of the axes (it never hides data), in two columns past 22 entries."""
    return ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
                     ncols=1 if n_entries <= 22 else 2, **kwargs)


SPIKE_RATIO = 3.0
"""A histogram's highest bin is a spike (a point mass, e.g. the unhedged short call expiring out
of the money) when it holds more than this many times its highest bin apart from it."""


def _bulk_height(counts: NDArray[np.float64]) -> tuple[float, bool]:
    """The height that shows a histogram's shape, and whether its highest bin is a spike.

    Its highest bin, or, when that bin is a spike (:data:`SPIKE_RATIO`), its highest bin beyond
    the spike and its neighbours.
    """
    k = int(np.argmax(counts))
    rest = counts.copy()
    rest[max(k - 1, 0): k + 2] = 0.0
    other = float(rest.max()) if rest.size else 0.0
    if other > 0.0 and counts[k] > SPIKE_RATIO * other:
        return other, True
    return float(counts[k]), False


def _cap_spikes(ax: Any, histograms: list[tuple[NDArray[np.float64], Any]],
                bins: NDArray[np.float64]) -> None:
    """Cut the y axis above the spikes so that every hedger's shape stays readable.

    The bins cut are labelled with their counts (``↑ 9,860``, in the hedger's colour).
    """
    heights = [_bulk_height(counts) for counts, _ in histograms]
    if not any(spike for _, spike in heights):
        return
    top = 1.15 * max(height for height, _ in heights)
    if top <= 0.0 or top >= max(float(counts.max()) for counts, _ in histograms):
        return
    ax.set_ylim(0.0, top)
    centres = 0.5 * (bins[:-1] + bins[1:])
    stacked: dict[int, int] = {}
    for counts, color in histograms:
        for j in np.flatnonzero(counts > top):
            row = stacked.get(int(j), 0)
            stacked[int(j)] = row + 1
            ax.annotate(f"\u2191 {counts[j]:,.0f}", (centres[j], top), xytext=(0, -2 - 10 * row),
                        textcoords="offset points", ha="center", va="top", fontsize=7,
                        color=color, fontweight="bold",
                        bbox={"fc": "white", "ec": "none", "pad": 0.3, "alpha": 0.8})


def _histogram_panel(
    ax: Any, values: Mapping[str, ArrayLike], xlabel: str, colors: Sequence[Any] | None = None,
) -> None:
    """Overlaid step histograms on shared bins, the mean of each as a dashed line.

    The bins span the pooled 0.5% to 99.5% quantiles of the finite values; values beyond are
    counted in the end bins. NaN and infinite values are left out (the legend says how many).
    A spike (a point mass) is cut at the height of the other bins and labelled with its count.
    The legend sits to the right of the axes.
    """
    from hedgearena.envs.rendering import distinct_colors

    arrays = {name: np.asarray(v, dtype=np.float64).ravel() for name, v in values.items()}
    finite = {name: x[np.isfinite(x)] for name, x in arrays.items()}
    colors = list(colors) if colors is not None else distinct_colors(len(arrays))
    pooled = np.concatenate([np.empty(0), *finite.values()])
    low, high = np.quantile(pooled, [0.005, 0.995]) if pooled.size else (0.0, 0.0)
    if high <= low:
        low, high = low - 0.5, high + 0.5
    bins = np.linspace(low, high, 61)
    histograms = []
    for i, (name, x) in enumerate(finite.items()):
        style = {"color": colors[i], "ls": "-" if i < 10 else (0, (4, 1.5))}
        left_out = arrays[name].size - x.size
        mean = float(x.mean()) if x.size else math.nan
        label = f"{name} (mean {format_number(mean)}"
        label += f"; {left_out:,} NaN/inf left out)" if left_out else ")"
        if not x.size:
            ax.plot([], [], lw=1.4, label=label, **style)
            continue
        counts, _, _ = ax.hist(np.clip(x, low, high), bins=bins, histtype="step", lw=1.4,
                               label=label, **style)
        ax.axvline(mean, color=colors[i], ls="--", lw=1.0)
        histograms.append((np.asarray(counts, dtype=np.float64), colors[i]))
    if histograms:
        _cap_spikes(ax, histograms, bins)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("paths")
    _outside_legend(ax, len(arrays))
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
        quantiles are counted in the end bins; a spike (e.g. the unhedged short call's paths
        that expire out of the money) is cut and labelled with its count, so that the other
        hedgers' shapes stay readable; NaN and infinite values are left out and counted in the
        legend (to the right of the panels: it hides no data). Each hedger has one colour in
        both panels.
    """
    from hedgearena.envs.rendering import distinct_colors

    n = max(len(pnl), len(cost))
    fig = agg_figure(figsize=(11.0 if n <= 22 else 14.0, 7.5), layout="constrained")
    axes = fig.subplots(2, 1)
    fig.get_layout_engine().set(rect=(0.0, 0.03, 1.0, 0.97))  # room for the note below
    colors = distinct_colors(n)
    _histogram_panel(axes[0], pnl, "terminal P&L (currency per episode)", colors)
    _histogram_panel(axes[1], cost, "hedging cost = premium - exp(-rT) P&L (currency per episode)",
                     colors)
    fig.suptitle(title or "P&L and hedging cost per hedger", fontsize=11)
    fig.text(0.01, 0.005, "Dashed: the mean. The end bins hold every path beyond the pooled "
             "0.5% / 99.5% quantiles; a bar cut at the top is labelled with its count (\u2191).",
             fontsize=8, color="dimgrey", va="bottom")
    return _save(fig, path)


class FrontierFamily(NamedTuple):
    """A hedger family swept over one parameter: its mean and std of cost at each value."""

    parameter: ArrayLike
    mean_cost: ArrayLike
    std_cost: ArrayLike
    parameter_name: str = ""


FRONTIER_REACH = 2.0
"""The frontier's view holds the families and the hedgers within this many of the families'
spans of them; a hedger farther out is drawn on the frame, its numbers in its label."""

_FAMILY_STYLES = (("black", "-"), ("darkgoldenrod", "--"), ("slategrey", "-."), ("teal", ":"))
"""Colours and line styles of the families: none of them a hedger's (:func:`distinct_colors`)."""


def _iso_objective_lines(
    ax: Any, c: float, x: NDArray[np.float64], y: NDArray[np.float64]
) -> list[Any]:
    """Grey lines ``mean + c std = Y`` at round values of ``Y``, each labelled where it enters.

    Non-finite points are ignored. The lines and labels sit under the data (markers drawn above
    them stay visible). Returns the labels.
    """
    from matplotlib.ticker import MaxNLocator

    objective = x + c * y
    objective = objective[np.isfinite(objective)]
    if c <= 0 or not objective.size:
        return []
    xlim, ylim = ax.get_xlim(), ax.get_ylim()
    xs = np.linspace(xlim[0], xlim[1], 200)
    notes = []
    for level in MaxNLocator(nbins=6).tick_values(objective.min(), objective.max()):
        ys = (level - xs) / c
        ax.plot(xs, ys, color="grey", lw=0.7, ls=":", zorder=0)
        inside = np.flatnonzero((ys >= ylim[0]) & (ys <= ylim[1]))
        if inside.size:
            k = inside[0]
            notes.append(ax.annotate(
                f"Y = {format_number(float(level))}", (xs[k], ys[k]), fontsize=7,
                color="dimgrey", textcoords="offset points", xytext=(4, -4), va="top",
                bbox={"fc": "white", "ec": "none", "pad": 0.5, "alpha": 0.85}, zorder=1))
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
    return notes


def _frontier_view(
    families: list[tuple[NDArray[np.float64], NDArray[np.float64]]],
    points: Mapping[str, tuple[float, float]],
) -> tuple[float, float, float, float] | None:
    """The frontier's view ``(x0, x1, y0, y1)``, or None (no family: everything is shown).

    It holds the families' finite points and the hedgers within :data:`FRONTIER_REACH` spans
    of them.
    """
    x = np.concatenate([np.empty(0), *(fx for fx, _ in families)])
    y = np.concatenate([np.empty(0), *(fy for _, fy in families)])
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return None
    x0, x1, y0, y1 = x[ok].min(), x[ok].max(), y[ok].min(), y[ok].max()
    w = max(x1 - x0, 0.05 * max(abs(x0), abs(x1)), 1e-9)
    h = max(y1 - y0, 0.05 * max(abs(y0), abs(y1)), 1e-9)
    for mean, std in points.values():
        if (x0 - FRONTIER_REACH * w <= mean <= x1 + FRONTIER_REACH * w
                and y0 - FRONTIER_REACH * h <= std <= y1 + FRONTIER_REACH * h):
            x0, x1, y0, y1 = min(x0, mean), max(x1, mean), min(y0, std), max(y1, std)
    return float(x0), float(x1), float(y0), float(y1)


def _arrow(mean: float, std: float, xlim: tuple[float, float], ylim: tuple[float, float]) -> str:
    """Where a point off the chart lies, as arrows (``↑``, ``→``, ...)."""
    return ("\u2190" * int(mean < xlim[0]) + "\u2192" * int(mean > xlim[1])
            + "\u2193" * int(std < ylim[0]) + "\u2191" * int(std > ylim[1]))


def plot_frontier(
    families: Mapping[str, FrontierFamily],
    points: Mapping[str, tuple[float, float]],
    path: str | Path,
    *,
    c: float = 1.5,
    title: str = "",
) -> Path:
    """The cost-vs-risk frontier: mean cost (x) against std of cost (y), lower-left is better.

    The view holds the families and the hedgers near them (:data:`FRONTIER_REACH`): a hedger
    far out (e.g. no hedge on a book) would squash the families into a corner, so it is drawn
    on the frame, hollow, its label saying where it is (``no hedge ↑ (-328, 2,919)``). The
    hedgers' markers are drawn above the families' lines (a tuned hedger sits on its family's
    point); each family point is labelled with its parameter in the family's colour (families
    share parameter values: 0.1 is a tolerance on one line, a risk aversion on another); the
    legend is to the right of the axes; a hedger without finite numbers is named in the legend
    only.

    Args:
        families: family name -> its sweep (a line, each point annotated with its parameter).
        points: single hedger name -> ``(mean_cost, std_cost)`` (a labelled marker).
        path: the PNG to write.
        c: the objective's weight: grey lines are iso-objective ``mean + c std = Y``.
        title: the figure's title.

    Returns:
        ``path``.
    """
    n_entries = len(points) + len(families)
    fig = agg_figure(figsize=(10.5 if n_entries <= 22 else 13.5, 6.5), layout="constrained")
    ax = fig.subplots()
    curves = {name: (np.asarray(f.mean_cost, dtype=np.float64).ravel(),
                     np.asarray(f.std_cost, dtype=np.float64).ravel())
              for name, f in families.items()}
    finite = {name: (float(m), float(s)) for name, (m, s) in points.items()
              if math.isfinite(m) and math.isfinite(s)}
    xs, ys = _frontier_axes(ax, families, curves, finite)
    notes = _iso_objective_lines(ax, c, xs, ys)
    labels = _hedger_markers(ax, points, finite)
    for j, (name, family) in enumerate(families.items()):
        color = _FAMILY_STYLES[j % len(_FAMILY_STYLES)][0]
        for p, xi, yi in zip(np.asarray(family.parameter).ravel(), *curves[name], strict=True):
            if math.isfinite(xi) and math.isfinite(yi):
                labels.append(_Label(f"{p:g}", float(xi), float(yi), 7, color))
    ax.set_xlabel("mean hedging cost (currency per episode)")
    ax.set_ylabel("std of hedging cost (currency per episode)")
    ax.set_title(title or "Cost vs risk", fontsize=11)
    handles, texts = ax.get_legend_handles_labels()  # the hedgers first, then the families
    k = len(families)
    if handles:
        _outside_legend(ax, n_entries, handles=handles[k:] + handles[:k],
                        labels=texts[k:] + texts[:k],
                        title=f"dotted: mean + {c:g} std = Y\nlower-left is better",
                        title_fontsize=8)
    ax.grid(alpha=0.3)
    fig.canvas.draw()  # the final layout: labels are laid out in its pixels
    _annotate_apart(fig, ax, labels, notes)
    return _save(fig, path)


def _frontier_axes(
    ax: Any, families: Mapping[str, FrontierFamily],
    curves: Mapping[str, tuple[NDArray[np.float64], NDArray[np.float64]]],
    finite: Mapping[str, tuple[float, float]],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Draw the families' lines and set the view (:func:`_frontier_view`).

    Returns:
        The means and stds of cost shown (the families' and the hedgers' in view).
    """
    xs: list[NDArray[np.float64]] = [np.empty(0)]
    ys: list[NDArray[np.float64]] = [np.empty(0)]
    for j, (name, family) in enumerate(families.items()):
        x, y = curves[name]
        color, ls = _FAMILY_STYLES[j % len(_FAMILY_STYLES)]
        label = f"{name} ({family.parameter_name})" if family.parameter_name else name
        ax.plot(x, y, marker="o", ls=ls, color=color, ms=4, lw=1.3, label=label, zorder=2)
        xs.append(x)
        ys.append(y)
    view = _frontier_view(list(curves.values()), finite)
    if view is None:
        ax.plot([m for m, _ in finite.values()], [s for _, s in finite.values()], ls="none")
        ax.margins(0.08)
    else:
        x0, x1, y0, y1 = view
        ax.set_xlim(x0 - 0.08 * (x1 - x0 or 1.0), x1 + 0.08 * (x1 - x0 or 1.0))
        ax.set_ylim(y0 - 0.08 * (y1 - y0 or 1.0), y1 + 0.08 * (y1 - y0 or 1.0))
    xlim, ylim = ax.get_xlim(), ax.get_ylim()
    for mean, std in finite.values():
        if not _arrow(mean, std, xlim, ylim):
            xs.append(np.array([mean]))
            ys.append(np.array([std]))
    return np.concatenate(xs), np.concatenate(ys)


class _Label(NamedTuple):
    """A label to write beside a point of the frontier (data coordinates)."""

    text: str
    x: float
    y: float
    fontsize: int
    color: Any = "black"


def _hedger_markers(
    ax: Any, points: Mapping[str, tuple[float, float]], finite: Mapping[str, tuple[float, float]],
) -> list[_Label]:
    """Draw each hedger's marker above the families' lines; a hedger off the view on the frame.

    Returns:
        The labels to write (the hedgers' names, in black).
    """
    from hedgearena.envs.rendering import distinct_colors

    xlim, ylim = ax.get_xlim(), ax.get_ylim()
    colors = distinct_colors(len(points))
    markers = "sDv^<>pP*Xh"
    labels: list[_Label] = []
    for i, (name, (mean, std)) in enumerate(points.items()):
        style = {"marker": markers[i % len(markers)], "color": colors[i], "ms": 8, "ls": "none",
                 "mec": "white", "mew": 0.8, "zorder": 4}
        if name not in finite:
            ax.plot([], [], label=f"{name} (no finite mean and std of cost)", **style)
            continue
        arrow = _arrow(mean, std, xlim, ylim)
        if not arrow:
            ax.plot([mean], [std], label=name, **style)
            labels.append(_Label(name, mean, std, 8))
            continue
        where = (min(max(mean, xlim[0]), xlim[1]), min(max(std, ylim[0]), ylim[1]))
        numbers = f"({format_number(mean)}, {format_number(std)})"
        style.update(mfc="none", mec=colors[i], mew=1.5, clip_on=False)
        ax.plot([where[0]], [where[1]], label=f"{name}: off the chart at {numbers}", **style)
        labels.append(_Label(f"{name} {arrow} {numbers}", *where, 8))
    return labels


_LABEL_OFFSETS = ((6, 3, "left", "bottom"), (6, -3, "left", "top"),
                  (-6, 3, "right", "bottom"), (-6, -3, "right", "top"))


def _annotate_apart(
    fig: Any, ax: Any, labels: list[_Label], notes: Sequence[Any] = (),
) -> None:
    """Write the labels in order, apart from each other and from the markers.

    Each label goes beside its point where it overlaps no
    marker, no label already written and no ``notes`` (the iso-objective labels), inside the
    axes; a label with no such place is left out (the legend still names every marker), so
    the first labels (the hedgers') win. The labels have a light background: a line under one
    does not strike it through.
    """
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    centres = ax.transData.transform([(lab.x, lab.y) for lab in labels]) if labels else []
    markers = [(cx - 5, cy - 5, cx + 5, cy + 5) for cx, cy in centres]
    placed = [note.get_window_extent(renderer) for note in notes]

    def hits_marker(box: Any, own: int) -> bool:
        return any(k != own and box.x0 < x1 and box.x1 > x0 and box.y0 < y1 and box.y1 > y0
                   for k, (x0, y0, x1, y1) in enumerate(markers))

    for own, label in enumerate(labels):
        for dx, dy, ha, va in _LABEL_OFFSETS:
            note = ax.annotate(label.text, (label.x, label.y), textcoords="offset points",
                               xytext=(dx, dy), fontsize=label.fontsize, color=label.color,
                               ha=ha, va=va, zorder=3,
                               bbox={"fc": "white", "ec": "none", "pad": 0.3, "alpha": 0.7})
            box = note.get_window_extent(renderer)
            inside = (box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0
                      and box.y1 <= frame.y1)
            if inside and not hits_marker(box, own) and not any(box.overlaps(o) for o in placed):
                placed.append(box)
                break
            note.remove()


class StorySeries(NamedTuple):
    """A record's path-story series, ``(n_paths, n_steps + 1)`` each (:func:`story_series`)."""

    hedge: NDArray[np.float64]
    cost: NDArray[np.float64]
    option: NDArray[np.float64]


def story_series(record: EpisodeRecord, n_steps: int) -> StorySeries:
    """A record's positions and cumulative transaction cost at every market step.

    Returns:
        ``(hedge, cost, option)``, ``(n_paths, n_steps + 1)`` each: the positions in the
        underlying and in the hedging option held after the decision at each step, units (the
        last column repeats the position held into the end; the unwind is not drawn), and the
        costs paid up to each step, currency (the unwind's cost is booked at the last decision,
        as in the record).
    """
    hedge, option = held_positions(record, n_steps)
    paid = np.zeros((hedge.shape[0], n_steps + 1))
    np.add.at(paid.T, record.steps, record.cost)
    return StorySeries(_held_into_the_end(hedge), np.cumsum(paid, axis=1),
                       _held_into_the_end(option))


def _held_into_the_end(held: NDArray[np.float64]) -> NDArray[np.float64]:
    """Positions held over each interval, ``(n, n_steps)``, with the last repeated at the end."""
    return np.concatenate([held, held[:, -1:]], axis=1)


def plot_path_story(
    index: int,
    times: ArrayLike,
    spot: ArrayLike,
    model_hedge: ArrayLike,
    hedges: Mapping[str, ArrayLike],
    path: str | Path,
    *,
    costs: Mapping[str, ArrayLike] | None = None,
    options: Mapping[str, ArrayLike] | None = None,
    strike: float | None = None,
    title: str = "",
    figures: StoryFigures | None = None,
    label: int | None = None,
    labels: StoryLabels | None = None,
) -> Path:
    """One path's story: spot, the model hedge, each hedger's positions and cumulative costs.

    Drawn by :func:`hedgearena.envs.rendering.path_story_figure` (the envs' render). The model
    hedge's last point (at the end, when the book has expired and the model holds nothing) is
    drawn as the one before it, held into the end like the positions (:func:`story_series`,
    :func:`hedgearena.envs.rendering.held_to_end`): a line down to 0 over the last step would
    show a hedge the model never asked for. The positions in a hedging option get a panel of
    their own (``options``); the cumulative costs are steps, each paid at its decision.

    Args:
        index: the row of the arrays to draw.
        times: ``(m,)`` years.
        spot: ``(n_paths, m)`` the underlying's price.
        model_hedge: ``(n_paths, m)`` the model's hedge, units.
        hedges: hedger name -> ``(n_paths, m)`` positions in the underlying, units (e.g.
            :func:`story_series`).
        path: the PNG to write.
        costs: hedger name -> ``(n_paths, m)`` cumulative transaction costs, currency.
        options: hedger name -> ``(n_paths, m)`` positions in the hedging option, units.
        strike: drawn on the spot panel.
        title: the figure's title (default: the path's number, ``label``).
        figures: draw on the figures these keep (:class:`hedgearena.envs.rendering.StoryFigures`:
            the same picture, faster, for many stories), not on a new one.
        label: the path's number in the run (default ``index``: the arrays hold every path).
        labels: the legend's names of the model hedge and the strike
            (:func:`hedgearena.envs.rendering.story_labels` of the env config).

    Returns:
        ``path``.
    """
    from hedgearena.envs.rendering import held_to_end, path_story_figure

    def row(values: ArrayLike) -> NDArray[np.float64]:
        return np.asarray(values, dtype=np.float64)[index]

    fig = path_story_figure(
        np.asarray(times, dtype=np.float64),
        row(spot),
        held_to_end(row(model_hedge)),
        {name: row(h) for name, h in hedges.items()},
        costs={name: row(v) for name, v in costs.items()} if costs else None,
        options={name: row(v) for name, v in options.items()} if options else None,
        strike=strike,
        title=title or f"path {index if label is None else label}: spot, positions and "
        "transaction costs",
        figures=figures, labels=labels,
    )
    return _save(fig, path)
