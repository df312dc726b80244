"""The stress report: every hedger across every stress scenario, scored by the arena's rules.

``stress_test(config, hedgers, scenarios, settings, out_dir)`` applies each scenario of
:mod:`hedgearena.envs.scenarios` to the env config, runs every hedger on the same paths of the
stressed config with the arena (the same seed in every scenario: a scenario's paths share their
random numbers with the base's), scores them (:func:`hedgearena.baselines.metrics.score`, each
against the reference hedger on the same paths), counts the risk-limit breaches and finds each
hedger's worst path. Hedgers are specs (``ww:best`` is tuned once, on the unstressed config:
parameters chosen in normal markets, then stressed) or :class:`Hedger` objects (saved agents).

=================================  ================================================================
file                               content
=================================  ================================================================
``stress_config.yaml``             the env config, the settings, the hedgers, every scenario's
                                   parameters, the execution mechanics it switches on and, for
                                   a labelled one, its ``kind`` (``make_scenario(kind, label=...)``)
``stress.csv`` / ``.json``         one row per (scenario, hedger): every metric, the breaches and
                                   the worst path (its index and P&L); the JSON also the notes
``stress.md``                      objective and ES 95% tables (hedger x scenario), the scenarios
``heatmap_objective.png``          hedger x scenario heat map of the objective
``heatmap_es95.png``               the same for the expected shortfall (95%) of the loss
``worst_paths/<scenario>__<h>.png`` the path story of each hedger's worst path in each scenario
=================================  ================================================================

Units: currency per episode (per path), in each scenario's own scale: a historical window's
prices are S&P 500 index points, so its numbers are not comparable with a simulated scenario's.
The heat maps colour each scenario's column from its best hedger to its worst.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from hedgearena.baselines import metrics, report
from hedgearena.baselines.arena import ArenaResult, check_result_memory, run_arena
from hedgearena.baselines.benchmark import (
    BenchmarkSettings,
    check_tuning_memory,
    choice_notes,
    fits_of,
    is_dated,
    plain_data,
    plot_story,
    reference_name,
    resolve_hedgers,
    score_hedger,
)
from hedgearena.baselines.hedger import EpisodeRecord, Hedger
from hedgearena.baselines.registry import describe
from hedgearena.envs.checks import require_integer, require_number
from hedgearena.envs.config import EnvConfig
from hedgearena.envs.episode import build_episodes
from hedgearena.envs.frictions import CostCoefficients
from hedgearena.envs.rendering import StoryFigures, agg_figure
from hedgearena.envs.scenarios import (
    SCENARIO_WRAPPERS,
    SCENARIOS,
    Scenario,
    StressWindow,
    make_scenario,
)
from hedgearena.yaml_io import dump_yaml

DEFAULT_STRESS_HEDGERS = ("no_hedge", "delta", "delta:5", "ww:best", "adaptive", "leland")
"""The classical hedgers of a default stress report (``ww:best`` tuned on the unstressed env)."""

DEFAULT_STRESS_COST: dict[str, Any] = {
    "proportional": 0.0005,
    "spread": {"half_spread": 0.0005, "vol_sensitivity": 1.0},
    "sqrt_impact": {"coefficient": 1.0, "daily_volume": 2000.0},
}
"""The cost of the ``stress`` command's env: a 5 bp fee, a 5 bp half-spread widening with vol
and square-root impact against a daily volume of 20 notionals (of the ShortCall book), so that
spreads and impact scale with the scenarios' liquidity multiplier (a flat fee would not)."""

HEATMAP_METRICS = {
    "objective": ("objective", "Y = mean(cost) + {c:g} std(cost)"),
    "es95": ("expected_shortfall_95", "expected shortfall 95% of the loss"),
}
"""File tag -> (score key, label) of the heat maps (``{c:g}``: the objective's ``c``)."""
HEATMAP_UNITS = "currency per episode, each scenario in its own price scale"
"""The unit line of the heat maps' titles (historical windows: S&P 500 points)."""


@dataclass(frozen=True)
class StressSettings:
    """How a stress test is run and scored.

    Attributes:
        n_paths: paths per hedger and scenario.
        seed: seed of the paths (the same in every scenario) and of the bootstrap.
        tune_paths: paths of the tuning run of ``:best`` specs (on the unstressed config).
        c: weight of the cost's std in the objective ``mean(cost) + c std(cost)``.
        risk_aversion: of the entropic risk, per currency.
        n_boot: bootstrap resamples of the tail metrics and the paired test.
        reference: the hedger every other one is compared with (skipped if absent, with an
            :class:`UnpairedStressWarning`).
        risk_limits: the env's risk limits in every scenario (a dict of
            ``hedgearena.envs.limits.RiskLimits`` fields), or None for the config's own.
        worst_paths: draw the worst path of every hedger in every scenario.
        progress: show progress bars.
    """

    n_paths: int = 20_000
    seed: int = 0
    tune_paths: int = 20_000
    c: float = metrics.DEFAULT_C
    risk_aversion: float = metrics.DEFAULT_RISK_AVERSION
    n_boot: int = 100
    reference: str = "delta"
    risk_limits: Mapping[str, Any] | None = None
    worst_paths: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        # each check names the field (inf, NaN, None, True or "x" used to escape as
        # OverflowError or TypeError, or be taken for 1)
        for name in ("n_paths", "tune_paths", "n_boot"):
            require_integer("StressSettings", name, getattr(self, name), integral_floats=True)
        require_number("StressSettings", "c", self.c, ge=0.0)
        require_number("StressSettings", "risk_aversion", self.risk_aversion, gt=0.0)
        require_integer("StressSettings", "seed", self.seed, ge=0)

    def benchmark(self) -> BenchmarkSettings:
        """The benchmark settings that tune ``:best`` specs."""
        return BenchmarkSettings(n_paths=self.n_paths, seed=self.seed, tune_paths=self.tune_paths,
                                 c=self.c,
                                 risk_aversion=self.risk_aversion, n_boot=self.n_boot,
                                 reference=self.reference, frontier=False,
                                 progress=self.progress)


@dataclass
class StressReport:
    """A stress test's results.

    Attributes:
        table: one row per (scenario, hedger) (a two-level index), every metric of
            :func:`metrics.score` plus ``mean_breaches``, ``breach_probability``,
            ``worst_path`` and ``worst_pnl``.
        scenarios: name -> the scenario as run.
        pnl: scenario -> hedger -> ``(n_paths,)`` terminal P&L, currency per episode.
        tuned: family -> the parameter of each ``:best`` spec.
        hedgers: the hedgers' names, in order.
        files: name -> path of each file written.
        skipped: name -> why, for the scenarios left out as not applicable to the env (see
            :func:`inapplicable`).
        notes: the lines on the ``(tuned)`` and ``(fitted)`` hedgers (where their parameters
            were chosen, on the unstressed env), under the report's tables.
    """

    table: pd.DataFrame
    scenarios: dict[str, Scenario]
    pnl: dict[str, dict[str, np.ndarray]]
    tuned: dict[str, float]
    hedgers: list[str]
    files: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def pivot(self, key: str) -> pd.DataFrame:
        """The metric ``key`` as a hedger x scenario table (scenarios in the run's order)."""
        wide = self.table[key].unstack("scenario")
        return wide.reindex(index=self.hedgers, columns=list(self.scenarios))


def resolve_scenarios(scenarios: Sequence[str | Scenario] | None) -> dict[str, Scenario]:
    """Scenarios from names of :data:`SCENARIOS` or :class:`Scenario` objects (None: all)."""
    chosen = list(SCENARIOS) if scenarios is None else list(scenarios)
    out: dict[str, Scenario] = {}
    files: dict[str, str] = {}  # the worst paths' PNGs are named by the scenario's slug
    for item in chosen:
        scenario = item if isinstance(item, Scenario) else make_scenario(item)
        if scenario.name in out:
            raise ValueError(
                f"scenario {scenario.name!r} is given twice; to run it at several magnitudes, "
                "label each (make_scenario('gap', size=-0.1, label='gap -10%'); in a run config "
                "{gap: {size: -0.1, label: gap -10%}})")
        other = files.setdefault(slug(scenario.name), scenario.name)
        if other != scenario.name:
            raise ValueError(
                f"scenarios {other!r} and {scenario.name!r} would write the same files "
                f"(worst_paths/{slug(other)}__*.png): give labels that differ in letters, "
                "digits, '.' or '-'")
        out[scenario.name] = scenario
    if not out:
        raise ValueError("give at least one scenario")
    return out


def inapplicable(scenario: Scenario, config: EnvConfig) -> str | None:
    """Why ``scenario`` cannot stress ``config`` (None if it can).

    The scenario is applied and two paths are built: a historical window shorter than the
    env's episode, or a volatility spike on a market without one constant vol level (Heston,
    the replay), fails there with the reason.

    Examples:
        >>> from hedgearena.envs.config import make_config
        >>> from hedgearena.envs.scenarios import make_scenario
        >>> inapplicable(make_scenario("gap"), make_config("ShortCall")) is None
        True
        >>> print(inapplicable(make_scenario("vol_spike"), make_config("OptionBook"))[:46])
        VolSpike.base must have one constant vol level
    """
    try:
        build_episodes(scenario.apply(config), 2, np.random.default_rng(0), False)
    except ValueError as error:
        return str(error)
    return None


class LiquidityBlindWarning(UserWarning):
    """A scenario multiplies spreads and impact, but the env's cost model has neither."""


class UnpairedStressWarning(UserWarning):
    """The stress reference is not among the hedgers: the report compares none with it."""


def cost_reads_liquidity(cost: Any) -> bool:
    """Whether a cost model's coefficients change with the ``liquidity`` multiplier.

    Probed at a price of 100 and a vol of 20%, liquidity 1 against 2: spreads and impact
    (:class:`~hedgearena.envs.frictions.SpreadCost`, ``LinearImpact``, ``SquareRootImpact``)
    read it, fees (``ProportionalCost``, ``FixedCost``) do not (:mod:`hedgearena.envs.frictions`).

    Examples:
        >>> from hedgearena.envs.config import make_cost
        >>> fee, stress_cost = make_cost(0.01), make_cost(DEFAULT_STRESS_COST)
        >>> cost_reads_liquidity(fee), cost_reads_liquidity(stress_cost)
        (False, True)
    """
    price, vol = np.array([100.0]), np.array([0.2])
    one = cost.coefficients(price, vol=vol, liquidity=np.array([1.0]))
    two = cost.coefficients(price, vol=vol, liquidity=np.array([2.0]))
    return any(not np.allclose(getattr(one, f.name), getattr(two, f.name), rtol=1e-12, atol=0.0)
               for f in dataclasses.fields(CostCoefficients))


def liquidity_multiplier(scenario: Scenario, config: EnvConfig) -> float:
    """The largest liquidity multiplier of ``scenario``'s stress windows on ``config`` (1: none).

    Read from the :class:`~hedgearena.envs.scenarios.StressWindow` of each scenario wrapper of
    the stressed market (the liquidity drought's x5, the flash crash's x20).

    Examples:
        >>> from hedgearena.envs.config import make_config
        >>> liquidity_multiplier(SCENARIOS["liquidity_drought"], make_config("ShortCall"))
        5.0
        >>> liquidity_multiplier(SCENARIOS["gap"], make_config("ShortCall"))
        1.0
    """
    model, largest = scenario.market(config.market), 1.0
    while isinstance(model, SCENARIO_WRAPPERS):
        window = getattr(model, "window", None)
        if isinstance(window, StressWindow):
            largest = max(largest, float(window.liquidity))
        model = model.base
    return largest


def warn_liquidity_blind(scenarios: Mapping[str, Scenario], config: EnvConfig) -> list[str]:
    """Warn (:class:`LiquidityBlindWarning`) if ``config``'s cost ignores the scenarios' liquidity.

    A liquidity drought or flash crash multiplies spreads and impact; on a cost of fees only
    (the presets' ``ProportionalCost``: ShortCall-v0's 1%) it changes nothing but the fills, and
    the report would show a drought that costs no more to trade in (a hedging option's spread,
    ``HedgeOption.half_spread_vol``, does scale with it). ``train.py stress`` runs on
    ``stress.cost`` (:data:`DEFAULT_STRESS_COST`, which reads it) for that reason.

    Returns:
        The names of the scenarios warned about (empty: none, or the cost reads liquidity).
    """
    multipliers = {name: m for name, s in scenarios.items()
                   if (m := liquidity_multiplier(s, config)) != 1.0}
    if not multipliers or cost_reads_liquidity(config.cost):
        return []
    listed = ", ".join(f"{name} (x{m:g})" for name, m in multipliers.items())
    warnings.warn(
        f"the env's cost of trading the underlying, {config.cost!r}, has no spread or impact, so "
        f"the liquidity multiplier of {listed} does not reach it (only their partial fills "
        "bite, and a hedging option's spread); give the config a "
        "spread or impact cost, e.g. config.replace(cost=DEFAULT_STRESS_COST) as train.py stress "
        "does by default (stress.cost: leave it unset, or give a spread or impact cost there)",
        LiquidityBlindWarning, stacklevel=3,
    )
    return list(multipliers)


def with_risk_limits(config: EnvConfig, limits: Mapping[str, Any] | None) -> EnvConfig:
    """``config`` with ``risk_limits`` set (``config`` itself when ``limits`` is None)."""
    if limits is None:
        return config
    return config.replace(risk_limits=dict(limits))


def breach_counts(totals: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """Limit breaches per path from an episode's totals (None when the env reports none).

    Reads ``totals["breaches"]`` (the env's count per episode), else sums the totals whose
    key contains ``breach``.

    Examples:
        >>> breach_counts({"breaches": np.array([0.0, 2.0])}).tolist()
        [0.0, 2.0]
        >>> breach_counts({"pnl": np.zeros(2)}) is None
        True
    """
    if "breaches" in totals:
        return np.asarray(totals["breaches"], dtype=np.float64)
    keys = [k for k in totals if "breach" in k]
    if not keys:
        return None
    return np.sum([np.asarray(totals[k], dtype=np.float64) for k in keys], axis=0)


def stress_test(
    config: EnvConfig,
    hedgers: Sequence[str | Hedger] = DEFAULT_STRESS_HEDGERS,
    scenarios: Sequence[str | Scenario] | None = None,
    settings: StressSettings | None = None,
    out_dir: str | Path | None = None,
    title: str = "",
    skip_inapplicable: bool | None = None,
    notes: Sequence[str] = (),
) -> StressReport:
    """Every hedger across every scenario on the same paths; write the report to ``out_dir``.

    Args:
        config: the unstressed env config (market, book, costs, conventions).
        hedgers: specs (:mod:`hedgearena.baselines.registry`) or :class:`Hedger` objects.
        scenarios: names of :data:`SCENARIOS` or :class:`Scenario` objects; None = all.
        settings: paths, seeds and scoring parameters.
        out_dir: folder of the report files (created), or None for no files.
        title: title of the tables and plots.
        skip_inapplicable: leave out the scenarios that cannot stress ``config``
            (:func:`inapplicable`; listed in ``StressReport.skipped`` and the report) instead of
            failing on them. None: only when ``scenarios`` is None (all of them).
        notes: lines the report's notes begin with (:attr:`StressReport.notes`), before the
            ``(tuned)`` and ``(fitted)`` lines.

    Returns:
        The report.

    Raises:
        ValueError: if a scenario does not apply and is not skipped (before anything runs),
            or none applies; a hedger's refusal of a scenario's market (``model_delta`` of a
            wrapper), named with the scenario (``train.py stress`` refuses it before it runs).

    Warns:
        LiquidityBlindWarning: a scenario multiplies spreads and impact (a drought, a flash
            crash) but ``config``'s cost has neither (:func:`warn_liquidity_blind`).
        UnpairedStressWarning: the reference is not among the hedgers (by name or spec).

    Examples:
        >>> from hedgearena.envs.config import make_config
        >>> settings = StressSettings(n_paths=256, n_boot=10, worst_paths=False, progress=False)
        >>> out = stress_test(make_config("ShortCall"), ["no_hedge", "delta"], ["base", "gap"],
        ...                   settings)
        >>> out.pivot("objective").shape
        (2, 2)
    """
    settings = settings or StressSettings()
    config = with_risk_limits(config, settings.risk_limits)
    skip = scenarios is None if skip_inapplicable is None else skip_inapplicable
    chosen, skipped = applicable(resolve_scenarios(scenarios), config, skip)
    warn_liquidity_blind(chosen, config)
    check_memory(config, chosen, hedgers, settings)  # before tuning
    main, tuned = resolve_hedgers(config, hedgers, settings.benchmark())
    names = [h.name for h in main]
    if settings.reference not in names:  # a spec (leland, ww:best) names its hedger
        with contextlib.suppress(ValueError):  # none: the hedgers are not paired
            settings = dataclasses.replace(
                settings, reference=reference_name(settings.reference, hedgers, main))
    if settings.reference not in names:
        warnings.warn(f"the stress reference {settings.reference!r} is not among the hedgers "
                      f"{names}: no hedger is compared with it path by path (add it to the "
                      "hedgers, or name one of them as the reference)", UnpairedStressWarning,
                      stacklevel=2)
    out_path = None if out_dir is None else Path(out_dir)
    stories = None  # this run's worst paths, moved in with the rest of the report
    if settings.worst_paths and out_path is not None:
        out_path.mkdir(parents=True, exist_ok=True)
        stories = Path(tempfile.mkdtemp(prefix=".worst-paths-", dir=out_path))
    try:
        rows: dict[tuple[str, str], dict[str, float]] = {}
        pnl: dict[str, dict[str, np.ndarray]] = {}
        drawn: dict[str, Path] = {}
        figures = StoryFigures()  # one figure per story layout, drawn on again and again
        with tqdm(total=len(chosen), desc="stress", unit="scenario",
                  disable=not settings.progress) as bar:
            for name, scenario in chosen.items():
                bar.set_postfix_str(name)
                try:
                    result = run_arena(scenario.apply(config), main, settings.n_paths,
                                       settings.seed, progress=settings.progress)
                except ValueError as error:  # a hedger refused the scenario's market
                    raise ValueError(f"scenario {name!r}: {error}") from error
                for hedger in names:
                    rows[name, hedger] = _score(result, hedger, settings)
                pnl[name] = {h: result.records[h].totals["terminal_pnl"].copy() for h in names}
                if stories is not None:
                    drawn.update(_worst_stories(result, name, names, rows, settings, stories,
                                                figures))
                del result  # freed before the next scenario's run: check_memory bounds one
                bar.update(1)
        table = pd.DataFrame.from_dict(rows, orient="index")
        table.index = pd.MultiIndex.from_tuples(list(rows), names=["scenario", "hedger"])
        out = StressReport(table.astype(np.float64), chosen, pnl, tuned, names, skipped=skipped,
                           notes=(*notes, *choice_notes(
                               tuned, fits_of(hedgers, main), settings.benchmark(),
                               dated=is_dated(config.market), stressed=True)))
        if out_path is not None:
            out.files = write_report(out, config, main, settings, out_path, title,
                                     (stories, drawn) if stories is not None else None)
    finally:
        if stories is not None:
            shutil.rmtree(stories, ignore_errors=True)
    return out


def check_memory(config: EnvConfig, scenarios: Mapping[str, Scenario],
                 hedgers: Sequence[str | Hedger], settings: StressSettings,
                 names: tuple[str, str] = ("n_paths", "tune_paths")) -> None:
    """Raise ``ValueError`` before a stress test whose arena runs would not fit in memory.

    Nothing is simulated: each scenario's run (every hedger, every path's records, on the
    scenario's config: :meth:`Scenario.apply`) is bounded by
    :func:`~hedgearena.baselines.arena.check_result_memory`, the bound
    :func:`~hedgearena.baselines.arena.run_arena` enforces, and so is each ``family:best``
    tuning run on the unstressed ``config``
    (:func:`~hedgearena.baselines.benchmark.check_tuning_memory`). ``names`` name the paths and
    the tuning paths in the error (``("stress.paths", "stress.tune_paths")`` for a run config).

    Raises:
        ValueError: naming the setting (and the scenario), its size, the memory it would take
            and what fits: fewer paths or hedgers (a stress test keeps every path's records,
            it has no ``run_arena`` ``record_paths`` or ``totals_only`` to set).
    """
    n = len(hedgers)
    hint = (f"a stress test keeps every path's (each hedger's worst path is drawn from them), "
            f"so give fewer {names[0]} or fewer hedgers")
    for name, scenario in scenarios.items():  # stress_test's run_arena: every path recorded
        try:
            check_result_memory(scenario.apply(config), settings.n_paths, n, n, settings.n_paths,
                                setting=names[0], records_hint=hint)
        except ValueError as error:
            raise ValueError(f"scenario {name!r}: {error}") from None
    check_tuning_memory(config, hedgers, settings.benchmark(), names[1])


def applicable(
    scenarios: Mapping[str, Scenario], config: EnvConfig, skip: bool
) -> tuple[dict[str, Scenario], dict[str, str]]:
    """The scenarios that can stress ``config``, and why each other one cannot.

    Checked before anything runs (:func:`inapplicable`): with ``skip`` the others are left out,
    else they are refused.

    Raises:
        ValueError: naming each scenario that cannot stress ``config`` and why (unless
            ``skip``), or when none can.
    """
    skipped = {name: why for name, s in scenarios.items()
               if (why := inapplicable(s, config)) is not None}
    if skipped and not skip:
        lines = "; ".join(f"{name}: {why}" for name, why in skipped.items())
        raise ValueError(f"these scenarios cannot stress this env: {lines} (leave them out, or "
                         "pass skip_inapplicable=True to list them instead)")
    chosen = {name: s for name, s in scenarios.items() if name not in skipped}
    if not chosen:
        raise ValueError(f"no scenario applies to this env: {skipped}")
    return chosen, skipped


CONDITIONAL_ERRORS = (
    "A scenario's standard errors are the Monte Carlo errors of its average over its paths, the "
    "scenario taken as given: for a historical window, over the window's start dates, not the "
    "uncertainty about another crisis."
)
"""How the stress report reads its standard errors (the benchmark's replay scores read them as
long-run ones instead, :mod:`hedgearena.baselines.dependence`)."""


def _score(result: ArenaResult, hedger: str, settings: StressSettings) -> dict[str, float]:
    """Every metric of one hedger in one scenario, the breaches and the worst path.

    Conditional on the scenario (:data:`CONDITIONAL_ERRORS`): the paths' overlap is not used.
    """
    record = result.records[hedger]
    scores = score_hedger(result, hedger, c=settings.c, risk_aversion=settings.risk_aversion,
                          reference=settings.reference, n_boot=settings.n_boot,
                          seed=settings.seed, conditional=True)
    scores.update(_breach_columns(record))
    terminal = record.totals["terminal_pnl"]
    worst = int(np.argmin(terminal))
    scores.update(worst_path=float(worst), worst_pnl=float(terminal[worst]))
    return scores


def _breach_columns(record: EpisodeRecord) -> dict[str, float]:
    counts = breach_counts(record.totals)
    if counts is None:
        return {"mean_breaches": math.nan, "breach_probability": math.nan}
    return {"mean_breaches": float(counts.mean()), "breach_probability": float((counts > 0).mean())}


def slug(text: str) -> str:
    """A file-name-safe version of a label.

    Examples:
        >>> slug("Whalley-Wilmott 0.1 (tuned)")
        'Whalley-Wilmott_0.1_tuned'
    """
    return re.sub(r"[^A-Za-z0-9.\-]+", "_", text).strip("_")


def _worst_stories(
    result: ArenaResult, scenario: str, names: Sequence[str],
    rows: Mapping[tuple[str, str], Mapping[str, float]], settings: StressSettings, out_dir: Path,
    figures: StoryFigures,
) -> dict[str, Path]:
    """The path story of each hedger's worst path (with the reference's positions beside).

    The spot and model hedge drawn are the market's: with permanent impact (the crowding
    scenario) the hedger traded at the spot its own trades moved, which the plot does not show.
    Drawn on the figures ``figures`` keep (:class:`StoryFigures`: :func:`stress_test` keeps
    one set for the run; the same pictures, faster), from the drawn path alone
    (:func:`one_path`).
    """
    files = {}
    for hedger in names:
        index = int(rows[scenario, hedger]["worst_path"])
        shown = [hedger] + [settings.reference] * (
            settings.reference in names and settings.reference != hedger)
        path = out_dir / "worst_paths" / f"{slug(scenario)}__{slug(hedger)}.png"
        worst = format(rows[scenario, hedger]["worst_pnl"], ",.0f")
        files[f"worst_{scenario}_{hedger}"] = plot_story(
            one_path(result, shown, index), shown, 0, path,
            title=f"{scenario}: worst path of {hedger} (path {index}, P&L {worst} currency)"
            + (" - the market's spot, before the hedgers' impact"
               if result.config.permanent_impact else ""),
            figures=figures,
        )
    return files


def one_path(result: ArenaResult, names: Sequence[str], index: int) -> ArenaResult:
    """``result`` cut to its path ``index`` (as path 0) and the hedgers ``names``: a view.

    What a path story needs of ``result`` (the spot, the model hedge, the strike and the
    hedgers' records), without copying: a worst path drawn from it is the one drawn from the
    whole result (:func:`hedgearena.baselines.report.story_series` is computed per path), but
    its series cost one path's work, not ``n_paths``' (14 ms a hedger and story at 20,000
    paths: 1.4 s of a default stress run, more with agents, went to paths never drawn).

    Args:
        result: the arena's result, ``n_paths`` paths.
        names: the hedgers to keep (they must have records).
        index: the path, ``0 <= index < n_paths`` (one whose records were kept, if the run
            kept some paths' only: ``run_arena(record_paths=...)``).

    Raises:
        ValueError: ``index`` outside the paths, or a path whose records were not kept.

    Examples:
        >>> from hedgearena.baselines.registry import parse_hedger
        >>> from hedgearena.envs.config import make_config
        >>> result = run_arena(make_config("ShortCall"), [parse_hedger("delta")], 8, 1,
        ...                    progress=False)
        >>> cut = one_path(result, ["delta"], 5)
        >>> cut.spot.shape, cut.records["delta"].hedge.shape
        ((1, 21), (20, 1))
        >>> bool((cut.spot[0] == result.spot[5]).all())
        True
    """
    column = result.column(index)  # (ValueError: not a path, or its records not kept)
    keep = slice(column, column + 1)

    def cut(values: np.ndarray | None) -> np.ndarray | None:  # time-major (n_decisions, n)
        return None if values is None else values[:, keep]

    records = {}
    for name in names:
        record = result.records[name]
        records[name] = record._replace(
            totals={k: np.asarray(v)[keep] for k, v in record.totals.items()},
            hedge=record.hedge[:, keep], option=record.option[:, keep],
            trade=record.trade[:, keep], cost=record.cost[:, keep],
            unfilled=cut(record.unfilled), slippage=cut(record.slippage),
            breach=cut(record.breach),
        )
    return dataclasses.replace(
        result, records=records, attribution={}, spot=result.spot[keep],
        model_hedge=result.model_hedge[keep],
        strike=None if result.strike is None else result.strike[keep],
        batches=[], totals_only={}, overlap=None, record_paths=None, paths_run=None,
    )


# ------------------------------------------------------------------------------- the report
def write_report(
    out: StressReport, config: EnvConfig, hedgers: Sequence[Hedger], settings: StressSettings,
    out_dir: Path, title: str = "", stories: tuple[Path, Mapping[str, Path]] | None = None,
) -> dict[str, Path]:
    """Write the tables, heat maps and config of a stress report into ``out_dir``.

    Written in a staging folder and moved in together
    (:func:`hedgearena.baselines.report.write_staged`): an interrupted report leaves the
    previous one whole. ``stories`` are the worst paths drawn (a folder holding
    ``worst_paths/``, and name -> file in it), moved in with the rest; an earlier report's
    ``worst_paths/`` is replaced (removed without them).
    """

    def write(stage: Path) -> dict[str, Path]:
        files = _write_files(out, config, hedgers, settings, stage, title)
        if stories is not None and (stories[0] / "worst_paths").is_dir():
            folder, drawn = stories
            os.replace(folder / "worst_paths", stage / "worst_paths")
            files.update({k: stage / p.relative_to(folder) for k, p in drawn.items()})
        shutil.rmtree(out_dir / "worst_paths", ignore_errors=True)  # not this report's
        return files

    return report.write_staged(out_dir, write)


def _write_files(
    out: StressReport, config: EnvConfig, hedgers: Sequence[Hedger], settings: StressSettings,
    out_dir: Path, title: str,
) -> dict[str, Path]:
    """Every file of :func:`write_report`, written into ``out_dir``."""
    files = {"config": _write_config(out_dir / "stress_config.yaml", out, config, hedgers,
                                     settings)}
    files.update(write_tables(out, out_dir, settings, title))
    for tag, (key, label) in HEATMAP_METRICS.items():
        label = f"{label.format(c=settings.c)} ({HEATMAP_UNITS})"
        files[f"heatmap_{tag}"] = plot_heatmap(
            out.pivot(key), out_dir / f"heatmap_{tag}.png",
            title=f"{title}\n{label}" if title else label,
            colorbar_label="colour: within each scenario, best to worst",
        )
    return files


def _write_config(
    path: Path, out: StressReport, config: EnvConfig, hedgers: Sequence[Hedger],
    settings: StressSettings,
) -> Path:
    document = {
        "env": config.to_dict(),
        "stress": dataclasses.asdict(settings),
        "hedgers": {h.name: describe(h) for h in hedgers},
        "tuned": out.tuned,
        "scenarios": {
            name: {"description": s.description, "parameters": dict(s.parameters),
                   "mechanics": list(s.mechanics), **({"kind": s.kind} if s.kind != name else {})}
            for name, s in out.scenarios.items()
        },
    }
    path.write_text(dump_yaml(plain_data(document)))
    return path


def write_tables(
    out: StressReport, out_dir: Path, settings: StressSettings, title: str = ""
) -> dict[str, Path]:
    """``stress.csv`` (every column), ``stress.json`` (with units) and ``stress.md``.

    The report's notes (:attr:`StressReport.notes`) are under the Markdown's tables and the
    JSON's ``notes`` list (one string a note).
    """
    paths = {ext: out_dir / f"stress.{ext}" for ext in ("csv", "json", "md")}
    out.table.to_csv(paths["csv"])
    units = metrics.column_units(list(out.table.columns))
    units.update(mean_breaches="count", breach_probability="probability", worst_path="index")
    records = []
    columns = [str(c) for c in out.table.columns]
    for (scenario, hedger), row in zip(out.table.index, out.table.to_numpy(), strict=True):
        values = {k: (float(v) if math.isfinite(v) else None) for k, v in zip(columns, row,
                                                                              strict=True)}
        records.append({"scenario": scenario, "hedger": hedger, **values})
    document = {
        "metadata": {"title": title, "c": settings.c, "risk_aversion": settings.risk_aversion,
                     "n_paths": settings.n_paths, "seed": settings.seed, "tuned": out.tuned,
                     "skipped": out.skipped},
        "units": units,
        "records": records,
        "notes": list(out.notes),
    }
    paths["json"].write_text(json.dumps(plain_data(document), indent=2, allow_nan=False) + "\n")
    paths["md"].write_text(markdown_report(out, settings, title))
    return paths


def markdown_report(out: StressReport, settings: StressSettings, title: str = "") -> str:
    """The objective and ES tables (scenario rows, hedger columns) and the scenarios' list."""
    lines = [f"# {title or 'Stress report'}", ""]
    for key, se_key, label in (
        ("objective", "objective_se",
         f"Objective Y = mean(cost) + {settings.c:g} std(cost) (lower is better)"),
        ("expected_shortfall_95", None, "Expected shortfall 95% of the loss (lower is better)"),
        ("worst_pnl", None, "Worst path's P&L (higher is better)"),
    ):
        lines += [f"## {label}", "", _pivot_markdown(out, key, se_key), ""]
    lines += ["## Scenarios", "", "| scenario | what it does | execution mechanics |",
              "|:---|:---|:---|"]
    for name, scenario in out.scenarios.items():
        mechanics = ", ".join(scenario.mechanics) or "-"
        lines.append(f"| {name} | {scenario.description} | {mechanics} |")
    if out.skipped:
        lines += ["", "Not applicable to this env (left out):", ""]
        lines += [f"- {name}: {why}" for name, why in out.skipped.items()]
    lines += ["", report.caption(settings.c, settings.risk_aversion),
              "Each scenario in its own price scale (historical windows: S&P 500 points). "
              f"{CONDITIONAL_ERRORS} Bold: the best hedger of each scenario.", ""]
    lines += [line for note in out.notes for line in (note, "")]
    return "\n".join(lines)


def _pivot_markdown(out: StressReport, key: str, se_key: str | None) -> str:
    values = out.pivot(key).T  # scenario rows, hedger columns
    array = values.to_numpy(dtype=np.float64)
    errors = out.pivot(se_key).T.to_numpy(dtype=np.float64) if se_key else None
    best = best_index(array if key != "worst_pnl" else -array, axis=1)
    header = "| scenario | " + " | ".join(str(h).replace("|", "\\|") for h in values.columns)
    lines = [header + " |", "|:---|" + "---:|" * len(values.columns)]
    for i, scenario in enumerate(values.index):
        cells = []
        for j, value in enumerate(array[i]):
            text = report.format_number(float(value))
            if errors is not None and math.isfinite(value) and math.isfinite(errors[i, j]):
                text += f" ± {report.format_se(float(errors[i, j]))}"  # (NaN: one path)
            cells.append(f"**{text}**" if j == best[i] else text)
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def print_stress_table(out: StressReport, title: str = "", console: Any = None) -> Any:
    """Print the objective and ES 95% of every hedger (columns) in every scenario (rows).

    Each cell is ``Y / ES``; the scenario's lowest objective is green. The report's notes
    (:attr:`StressReport.notes`) are lines under the caption, as the benchmark's are
    (:func:`hedgearena.baselines.report.print_table`). Returns the rich table.
    """
    from rich import box
    from rich.table import Table

    objective, shortfall = out.pivot("objective").T, out.pivot("expected_shortfall_95").T
    table = Table(title=title or "Stress report", box=box.SIMPLE_HEAD,
                  caption="cell: objective Y = mean(cost) + c std(cost) / ES 95% of the loss, "
                  "currency per episode, lower is better (green: the scenario's best Y)"
                  + "".join(f"\n{note}" for note in out.notes),
                  caption_justify="left")
    table.add_column("scenario", style="bold", no_wrap=True)
    for hedger in objective.columns:
        table.add_column(str(hedger), justify="right")
    values = objective.to_numpy(dtype=np.float64)
    tails = shortfall.to_numpy(dtype=np.float64)
    bests = best_index(values, axis=1)
    for i, scenario in enumerate(objective.index):
        best = bests[i]
        cells = [
            f"{'[green]' if j == best else ''}{report.format_number(float(values[i, j]))}"
            f"{'[/green]' if j == best else ''} / {report.format_number(float(tails[i, j]))}"
            for j in range(values.shape[1])
        ]
        table.add_row(str(scenario), *cells)
    (console or report.wide_console()).print(table)
    return table


def best_index(values: np.ndarray, axis: int) -> np.ndarray:
    """The index of the lowest finite value along ``axis``, -1 where there is none.

    A scenario (or hedger) whose values are all missing (NaN or infinite) has no best: its
    cells are drawn unmarked instead of failing the report (``np.nanargmin`` raises there).

    Examples:
        >>> best_index(np.array([[3.0, 1.0], [np.nan, np.nan]]), axis=1).tolist()
        [1, -1]
    """
    present = np.isfinite(values)
    lowest = np.argmin(np.where(present, values, np.inf), axis=axis)
    return np.where(present.any(axis=axis), lowest, -1)


def column_scale(values: pd.DataFrame) -> np.ndarray:
    """Each column scaled to [0, 1], its lowest value 0 and its highest 1 (0.5 if constant).

    A missing (NaN or infinite) value stays NaN: it has no place between best and worst.

    Examples:
        >>> column_scale(pd.DataFrame({"a": [1.0, 3.0, 2.0], "b": [5.0, 5.0, 5.0]})).tolist()
        [[0.0, 0.5], [1.0, 0.5], [0.5, 0.5]]
        >>> column_scale(pd.DataFrame({"a": [1.0, float("nan")], "b": [float("nan")] * 2})).tolist()
        [[0.5, nan], [nan, nan]]
    """
    array = values.to_numpy(dtype=np.float64)
    array = np.where(np.isfinite(array), array, np.nan)
    present = np.isfinite(array).any(axis=0)
    filled = np.where(present[None, :], array, 0.0)  # no all-NaN slices for nanmin
    low, high = np.nanmin(filled, axis=0), np.nanmax(filled, axis=0)
    span = high - low
    flat = ~(span > 0)
    scaled = (array - low) / np.where(flat, 1.0, span)
    return np.where(np.isnan(array), np.nan, np.where(flat[None, :], 0.5, scaled))


def plot_heatmap(
    values: pd.DataFrame, path: str | Path, *, title: str = "", colorbar_label: str = "",
) -> Path:
    """A hedger x scenario heat map: each cell annotated with its value, coloured by column.

    Colours run from green (the scenario's lowest value, the best) to red (its highest), so
    scenarios of different scales share one picture; the best cell of each column is bold. A
    missing value (NaN: e.g. a hedger that could not be scored there) is a grey cell marked
    "-", and a column without any value has no best.

    Args:
        values: hedgers as rows, scenarios as columns (lower is better).
        path: the PNG to write.
        title: the figure's title.
        colorbar_label: the colour bar's label.

    Returns:
        ``path``.
    """
    import matplotlib

    n_rows, n_cols = values.shape
    fig = agg_figure(figsize=(max(6.0, 1.15 * n_cols + 3.0), max(3.0, 0.55 * n_rows + 2.2)))
    ax = fig.subplots()
    scaled = column_scale(values)
    cmap = matplotlib.colormaps["RdYlGn_r"].with_extremes(bad="0.85")
    image = ax.imshow(np.ma.masked_invalid(scaled), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(n_cols), [str(c) for c in values.columns], rotation=35, ha="right",
                  rotation_mode="anchor", fontsize=9)
    ax.set_yticks(range(n_rows), [str(r) for r in values.index], fontsize=9)
    array = values.to_numpy(dtype=np.float64)
    present = np.isfinite(array)
    best = best_index(array, axis=0)
    for i in range(n_rows):
        for j in range(n_cols):
            # white text on the deep greens and reds, black on the pale ones and the grey
            dark = present[i, j] and not 0.2 <= scaled[i, j] <= 0.8
            ax.text(j, i, report.format_number(float(array[i, j])), ha="center", va="center",
                    fontsize=8, color="white" if dark else "black",
                    fontweight="bold" if best[j] == i else "normal")
    ax.set_xticks(np.arange(n_cols + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(n_rows + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel("scenario")
    ax.set_ylabel("hedger")
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, ticks=[0.0, 1.0])
    bar.ax.set_yticklabels(["best", "worst"])
    bar.set_label(colorbar_label, fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return report._save(fig, path)
