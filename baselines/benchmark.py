"""The benchmark: score a set of hedgers on the same paths and write the report.

``benchmark(config, ["no_hedge", "delta", "ww:best", ...])`` tunes the ``:best`` families on
their own tuning paths (a different seed: no selection bias on the scoring paths; on the
historical replay, ``split`` also puts them in another stretch of history), runs every
hedger and every member of the band families (the frontier) on the scoring paths with the
arena, scores them (:mod:`hedgearena.baselines.metrics`, each against the reference hedger on
the same paths) and, given an output folder, writes the report:

=========================  ====================================================================
file                       content
=========================  ====================================================================
``config.yaml``            the resolved env config, the benchmark settings, the hedgers
``scores.csv/.json/.md``   one row per hedger (every metric, with standard errors)
``frontier.csv``           mean and std of cost of each band-family member on the scoring paths
``distributions.png``      P&L and cost histograms
``frontier.png``           the cost-vs-risk frontier with each hedger's point
``path_story.png``         one path: spot, model hedge, positions and cumulative cost
=========================  ====================================================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from hedgearena.baselines import metrics, report
from hedgearena.baselines.arena import ArenaResult, check_result_memory, run_arena
from hedgearena.baselines.dependence import Overlap
from hedgearena.baselines.hedger import Hedger
from hedgearena.baselines.minimum_variance import (
    MinimumVarianceDelta,
    MinimumVarianceFit,
    fit_minimum_variance,
    fit_spec_edges,
    fitted_name,
)
from hedgearena.baselines.registry import (
    FAMILIES,
    describe,
    family_member,
    is_fitted,
    parse_hedger,
)
from hedgearena.envs.checks import is_integer, is_number, require_field, require_integer
from hedgearena.envs.config import EnvConfig, plain_data
from hedgearena.envs.rendering import StoryFigures, story_labels
from hedgearena.yaml_io import dump_yaml

DEFAULT_HEDGERS = ("no_hedge", "delta", "delta:5", "band:best", "ww:best", "zakamouline:best",
                   "adaptive", "leland")
"""The classical hedgers of a default benchmark (``:best`` tuned on separate paths)."""


@dataclass(frozen=True)
class BenchmarkSettings:
    """How a benchmark is run and scored.

    Attributes:
        n_paths: scoring paths per hedger.
        seed: seed of the scoring paths (and of the bootstrap).
        tune_paths: paths of the tuning run of the ``:best`` families.
        tune_seed: seed of the tuning paths (default ``seed + 1``: disjoint from scoring).
        c: weight of the cost's std in the objective ``mean(cost) + c std(cost)``.
        risk_aversion: of the entropic risk, per currency.
        n_boot: bootstrap resamples of the tail metrics and the paired test.
        reference: name of the hedger every other one is compared with (paired on the paths).
        frontier: sweep the band families on the scoring paths for the frontier plot.
        story_path: index of the path drawn in ``path_story.png``.
        keep_records: keep every path's per-decision records (positions, trades, costs) in
            the report's ``arena`` (``7 x 8`` bytes a decision, path and hedger: 900 MB for 8
            hedgers on 100,000 paths of 20 decisions). False (default): the drawn path's
            (``story_path``) only; the scores come from the totals and the P&L attribution,
            which cover every path either way.
        progress: show progress bars.
        split: a date (``"2010-01-01"``) that cuts a dated market's history (the historical
            replay): the ``:best`` members are tuned on the windows before it and every hedger
            is scored on the windows from it on, out of sample (:func:`split_configs`).
            None (default): both on the whole history; on the replay, tuning and scoring
            windows then share days (a different seed draws other windows of the same
            history), which the report's tuning line says.
    """

    n_paths: int = 100_000
    seed: int = 0
    tune_paths: int = 20_000
    tune_seed: int | None = None
    c: float = metrics.DEFAULT_C
    risk_aversion: float = metrics.DEFAULT_RISK_AVERSION
    n_boot: int = metrics.DEFAULT_N_BOOT
    reference: str = "delta"
    frontier: bool = True
    story_path: int = 0
    keep_records: bool = False
    progress: bool = True
    split: str | None = None

    def __post_init__(self) -> None:
        for name in ("n_paths", "tune_paths", "n_boot"):  # each named (True is no count)
            require_integer("BenchmarkSettings", name, getattr(self, name), integral_floats=True)
            object.__setattr__(self, name, int(getattr(self, name)))  # 1e4 (YAML) is 10000
        if not is_number(self.c, ge=0.0):
            raise ValueError(f"c must be a finite number >= 0, got {self.c!r}")
        if not is_number(self.risk_aversion, gt=0.0):
            raise ValueError(
                f"risk_aversion must be > 0 (per currency), got {self.risk_aversion!r}"
            )
        if not (isinstance(self.reference, str) and self.reference.strip()):
            raise ValueError(f"BenchmarkSettings.reference must be a hedger's name or spec (a "
                             f"non-empty string such as 'delta'), got {self.reference!r}")
        for name in ("seed", "tune_seed"):
            if getattr(self, name) is not None:
                require_integer("BenchmarkSettings", name, getattr(self, name), ge=0)
        if self.tune_seed == self.seed:
            raise ValueError(
                f"tune_seed must differ from seed (both {self.seed}): the ':best' members would "
                "be tuned on the scoring paths themselves (leave tune_seed unset: seed + 1)"
            )
        self._check_records()
        if self.split is not None:
            object.__setattr__(self, "split", split_date(self.split))

    def _check_records(self) -> None:
        """The drawn path, the switches (``keep_records``, ``frontier``, ``progress``), named."""
        for name in ("keep_records", "frontier", "progress"):  # "no" would be read as true
            value = getattr(self, name)
            require_field("BenchmarkSettings", name, value, isinstance(value, bool),
                          "True or False")
        if not (is_integer(self.story_path) and 0 <= self.story_path < self.n_paths):
            raise ValueError(f"story_path must be in [0, n_paths), got {self.story_path!r}")

    @property
    def tuning_seed(self) -> int:
        """The seed of the tuning paths."""
        return self.seed + 1 if self.tune_seed is None else self.tune_seed


@dataclass
class BenchmarkReport:
    """A benchmark's results.

    Attributes:
        table: the score table (one row per hedger, :func:`metrics.score_table`).
        scores: hedger name -> every metric.
        frontier: family label -> rows of (parameter, mean_cost, std_cost, objective) on the
            scoring paths.
        tuned: family key -> its best parameter on the tuning paths.
        arena: the arena's records and paths.
        files: name -> path of each file written.
        fitted: hedger name -> the fit of each ``mv_delta:fit`` hedger on the tuning paths.
    """

    table: pd.DataFrame
    scores: dict[str, dict[str, float]]
    frontier: dict[str, pd.DataFrame]
    tuned: dict[str, float]
    arena: ArenaResult
    files: dict[str, Path] = field(default_factory=dict)
    fitted: dict[str, MinimumVarianceFit] = field(default_factory=dict)


def split_date(value: Any) -> str:
    """``value`` as an ISO date (``YYYY-MM-DD``): the ``split`` of :class:`BenchmarkSettings`.

    Raises:
        ValueError: if ``value`` is not a date.

    Examples:
        >>> split_date("2010-01-01"), split_date(pd.Timestamp("2010-01-01 00:00"))
        ('2010-01-01', '2010-01-01')
    """
    try:
        stamp = pd.Timestamp(value) if isinstance(value, str | date | pd.Timestamp) else None
    except ValueError:
        stamp = None
    if stamp is None or pd.isna(stamp) or stamp != stamp.normalize():
        raise ValueError(f"split must be a date such as '2010-01-01' (the first scoring day), "
                         f"got {value!r}")
    return str(stamp.date())


def last_day_before(split: Any) -> pd.Timestamp:
    """The last calendar day before ``split``: where tuning (and an agent's training) ends.

    Examples:
        >>> str(last_day_before("2010-01-01").date())
        '2009-12-31'
    """
    return pd.Timestamp(split_date(split)) - pd.Timedelta(days=1)


def is_dated(market: Any) -> bool:
    """Whether ``market`` replays a dated history a date can cut (``between``: the replay)."""
    return callable(getattr(market, "between", None))


def split_configs(config: EnvConfig, split: str | None) -> tuple[EnvConfig, EnvConfig]:
    """The configs a benchmark tunes on and scores on: ``config`` twice, or its history cut.

    With ``split`` (a date), ``config``'s market must be dated (the historical replay,
    :class:`hedgearena.envs.historical.HistoricalReplay`): the tuning config replays the rows
    dated before ``split``, the scoring config the rows from ``split`` on, so no tuning window
    shares a day with a scoring window. Each part must hold one episode's window.

    Raises:
        ValueError: if the market has no dates, or a part is shorter than an episode.

    Examples:
        >>> from hedgearena.envs.config import make_config
        >>> tune, score = split_configs(make_config("HistoricalReplay"), "2010-01-01")
        >>> str(tune.market.data.index[-1].date()), str(score.market.data.index[0].date())
        ('2009-12-31', '2010-01-04')
    """
    if split is None:
        return config, config
    market = config.market
    if not is_dated(market):
        raise ValueError(
            f"split ({split}) cuts a dated market's history (market='historical', the replay); "
            f"the {type(market).__name__} market's paths have no dates: leave split unset"
        )
    last = last_day_before(split)
    parts = []
    for label, (start, end) in (("before", (None, last)),
                                ("from", (last + pd.Timedelta(days=1), None))):
        try:
            part = market.between(start, end)
            part.window_starts(config.n_steps)
        except ValueError as error:
            raise ValueError(
                f"split ({split}): the history {label} it cannot hold an episode of "
                f"{config.n_steps} steps: {error}"
            ) from None
        parts.append(config.replace(market=part))
    return parts[0], parts[1]


def validation_start(config: EnvConfig, valid_history: float) -> str | None:
    """The first day a learner validates on: ``valid_history`` of the history from its end.

    ``None`` on an undated market (its validation paths are independent draws) or with
    ``valid_history`` 0 (validation replays the training days). See :func:`validation_split`.

    Examples:
        >>> from hedgearena.envs.config import make_config
        >>> validation_start(make_config("HistoricalReplay"), 0.2)
        '2015-01-02'
    """
    if valid_history == 0 or not is_dated(config.market):
        return None
    days = config.market.data.index
    return str(days[min(len(days) - 1, round(len(days) * (1.0 - valid_history)))].date())


def validation_split(config: EnvConfig, valid_history: float) -> tuple[EnvConfig, EnvConfig]:
    """The env configs a learner trains and validates on: ``config`` twice, or its history cut.

    On a dated market (the historical replay) with ``valid_history > 0``, validation replays
    the days from :func:`validation_start` on, training the days before it
    (:func:`split_configs`: no window of one shares a day with a window of the other). Windows
    of one history overlap, so a validation set drawn from the training days holds the
    training windows again (the best weights would be picked on the data they were fitted
    to). Simulated markets: ``config`` twice (independent draws).

    Raises:
        ValueError: if a part of the history cannot hold an episode's window.

    Examples:
        >>> from hedgearena.envs.config import make_config
        >>> train, valid = validation_split(make_config("HistoricalReplay"), 0.2)
        >>> str(train.market.data.index[-1].date()), str(valid.market.data.index[0].date())
        ('2014-12-31', '2015-01-02')
    """
    first = validation_start(config, valid_history)
    if first is None:
        return config, config
    try:
        return split_configs(config, first)
    except ValueError as error:
        days = config.market.data.index
        raise ValueError(
            f"valid_history = {valid_history} cuts the history ({days[0].date()} to "
            f"{days[-1].date()}) at {first} for validation: {error}; choose another "
            "valid_history (0 validates on the whole history)"
        ) from None


def tune_family(
    config: EnvConfig, family: str, settings: BenchmarkSettings
) -> tuple[float, pd.DataFrame]:
    """The member of a band family with the lowest objective on the tuning paths.

    ``config`` is the tuning config (the first of :func:`split_configs`).

    Returns:
        The best parameter and the sweep (parameter, mean_cost, std_cost, objective).
    """
    _, grid = FAMILIES[family]
    members = [family_member(family, p) for p in grid]
    result = run_arena(config, members, settings.tune_paths, settings.tuning_seed,
                       progress=settings.progress, totals_only=[m.name for m in members])
    sweep = _family_rows(result, members, grid, settings.c)
    best = cast(int, sweep["objective"].idxmin())  # a label of the sweep's RangeIndex
    return float(cast(float, sweep.loc[best, "parameter"])), sweep


def _family_rows(
    result: ArenaResult, members: Sequence[Hedger], grid: Sequence[float], c: float
) -> pd.DataFrame:
    rows = []
    for parameter, hedger in zip(grid, members, strict=True):
        cost = result.cost(hedger.name)
        rows.append({"parameter": parameter, "mean_cost": cost.mean(),
                     "std_cost": cost.std(ddof=1), "objective": metrics.cost_objective(cost, c)[0]})
    return pd.DataFrame(rows)


def score_hedger(
    result: ArenaResult, name: str, *, c: float, risk_aversion: float, reference: str | None,
    n_boot: int, seed: int, conditional: bool = False,
) -> dict[str, float]:
    """Every metric of hedger ``name`` of an arena run (paired with ``reference`` if given).

    Dependent paths (``result.overlap``, the historical replay's) get long-run standard errors
    and block bootstraps, unless ``conditional``: then the errors are those of the average over
    these paths, the history taken as given (the stress report's reading).
    """
    paired = reference is not None and reference != name and reference in result.records
    return metrics.score(
        result.records[name], None, attribution=result.attribution[name],
        rate_time=(result.rate, result.horizon), c=c, risk_aversion=risk_aversion,
        reference=result.records[reference] if paired and reference else None,
        n_boot=n_boot, seed=seed, overlap=None if conditional else result.overlap,
    )


def tuned_family(spec: str) -> str | None:
    """The family of a ``family:best`` spec (tuned by the benchmark), or None for other specs.

    Raises:
        ValueError: if ``:best`` names a family that cannot be tuned.

    Examples:
        >>> tuned_family("ww:best"), tuned_family("delta:5")
        ('ww', None)
    """
    family, _, arg = spec.partition(":")
    if arg != "best":
        return None
    if family not in FAMILIES:
        raise ValueError(f"{spec!r}: ':best' exists for {sorted(FAMILIES)} only")
    return family


def spec_name(spec: str) -> str:
    """The name of the hedger of a spec, checked ("" for ``family:best``, named by tuning).

    Raises:
        ValueError: naming the spec and what is allowed.

    Examples:
        >>> spec_name("ww:0.10"), spec_name("mv_delta:fit:0.080:0.16"), spec_name("ww:best")
        ('Whalley-Wilmott 0.1', 'MV delta by maturity 0.08/0.16 (fitted)', '')
    """
    edges = fit_spec_edges(spec)
    if edges is not None:
        return fitted_name(edges)
    return "" if tuned_family(spec) is not None else parse_hedger(spec).name


def named_by_spec(text: str) -> str | None:
    """The name of the hedger the spec ``text`` makes, None if ``text`` is no spec.

    Two spellings of one hedger (``ww:0.1`` and ``ww:0.10``) give one name
    (:func:`spec_name`); a ``family:best`` gives None too (named when tuned).

    Examples:
        >>> named_by_spec("ww:0.10"), named_by_spec("Leland"), named_by_spec("ww:best")
        ('Whalley-Wilmott 0.1', None, None)
    """
    try:
        return spec_name(text) or None
    except ValueError:
        return None


def resolve_hedgers(
    config: EnvConfig, specs: Sequence[str | Hedger], settings: BenchmarkSettings
) -> tuple[list[Hedger], dict[str, float]]:
    """Hedgers from specs (``family:best`` tuned on the tuning paths) or hedger objects.

    ``mv_delta:fit`` is fitted on the same tuning paths
    (:func:`~hedgearena.baselines.minimum_variance.fit_minimum_variance`). ``config`` is the
    benchmark's (uncut) config: the tuning runs on the first of :func:`split_configs`.
    """
    tuning = split_configs(config, settings.split)[0] if any(
        isinstance(spec, str) and (tuned_family(spec) or is_fitted(spec))
        for spec in specs) else config
    hedgers: list[Hedger] = []
    tuned: dict[str, float] = {}
    for spec in specs:
        if not isinstance(spec, str):  # a hedger object (the arena's checks judge it)
            hedgers.append(spec)
            continue
        family, edges = tuned_family(spec), fit_spec_edges(spec)
        if edges is not None:  # mv_delta:fit, pooled, or mv_delta:fit:edge... by maturity
            try:
                fit = fit_minimum_variance(tuning, settings.tune_paths, settings.tuning_seed,
                                           maturity_edges=edges)
            except ValueError as error:
                raise ValueError(f"{spec!r} (fitted on tune_paths={settings.tune_paths:,}): "
                                 f"{error}") from None
            hedgers.append(MinimumVarianceDelta.fitted(fit))
        elif family is not None:
            tuned[family], _ = tune_family(tuning, family, settings)
            hedger = family_member(family, tuned[family])
            hedger.name = f"{FAMILIES[family][0]} {tuned[family]:g} (tuned)"
            hedgers.append(hedger)
        else:
            hedgers.append(parse_hedger(spec))
    return hedgers, tuned


def reference_name(
    reference: str, specs: Sequence[str | Hedger], hedgers: Sequence[Hedger]
) -> str:
    """The name of the reference hedger, given by its name or by its spec among ``specs``.

    ``hedgers`` are the hedgers of ``specs`` (:func:`resolve_hedgers`), in order: a spec such
    as ``leland`` or ``ww:best`` names the hedger it made (``Leland``, ``Whalley-Wilmott 0.1
    (tuned)``), and so does another spelling of a spec (``ww:0.10`` of ``ww:0.1``: the same
    hedger, :func:`named_by_spec`).

    Raises:
        ValueError: if ``reference`` is neither a name nor a spec of the hedgers.

    Examples:
        >>> reference_name("leland", ["delta", "leland"], [parse_hedger("delta"),
        ...                                                 parse_hedger("leland")])
        'Leland'
    """
    names = [h.name for h in hedgers]
    if reference in names:
        return reference
    by_spec = {spec: h.name for spec, h in zip(specs, hedgers, strict=True)
               if isinstance(spec, str)}
    if reference in by_spec:
        return by_spec[reference]
    named = named_by_spec(reference)
    if named is not None and named in names:
        return named
    raise ValueError(
        f"the reference hedger {reference!r} is neither a name among {names} nor a spec "
        f"among {sorted(by_spec)}"
    )


def benchmark(
    config: EnvConfig,
    hedgers: Sequence[str | Hedger] = DEFAULT_HEDGERS,
    settings: BenchmarkSettings | None = None,
    out_dir: str | Path | None = None,
    title: str = "",
) -> BenchmarkReport:
    """Score hedgers on the same paths; write the report when ``out_dir`` is given.

    Args:
        config: the env config (market, book, costs, conventions).
        hedgers: specs (:mod:`hedgearena.baselines.registry`) or :class:`Hedger` objects
            (trained agents, custom hedgers); the reference must be among them.
        settings: paths, seeds and scoring parameters.
        out_dir: folder of the report files (created), or None.
        title: title of the table and plots.

    Returns:
        The report.
    """
    settings = settings or BenchmarkSettings()
    scoring = split_configs(config, settings.split)[1]  # a bad split is named before tuning
    kept = None if settings.keep_records else [settings.story_path]
    check_memory(config, hedgers, settings)  # before tuning
    main, tuned = resolve_hedgers(config, hedgers, settings)
    names = [h.name for h in main]
    settings = dataclasses.replace(
        settings, reference=reference_name(settings.reference, hedgers, main))
    families = _frontier_members(settings) if settings.frontier else {}
    everyone = main + [h for members in families.values() for h in members]
    frontier_names = [h.name for members in families.values() for h in members]
    result = run_arena(scoring, everyone, settings.n_paths, settings.seed,
                       progress=settings.progress, totals_only=frontier_names,
                       record_paths=kept)
    scores = _score_all(result, names, settings)
    frontier = {FAMILIES[key][0]: _family_rows(result, members, FAMILIES[key][1], settings.c)
                for key, members in families.items()}
    out = BenchmarkReport(metrics.score_table(scores), scores, frontier, tuned, result,
                          fitted=fits_of(hedgers, main))
    if out_dir is not None:
        out.files = write_report(out, scoring, main, settings, Path(out_dir), title)
    return out


def check_memory(config: EnvConfig, specs: Sequence[str | Hedger], settings: BenchmarkSettings,
                 names: tuple[str, str] = ("n_paths", "tune_paths"), n_agents: int = 0) -> None:
    """Raise ``ValueError`` before a benchmark of ``specs`` whose arena runs would not fit.

    Nothing is simulated: the scoring run's result (every hedger of ``specs`` and ``n_agents``
    more, the agents a run config scores beside its ``arena.hedgers``, with their records of
    the drawn path, or of every path with ``keep_records``, and the frontier's members by
    their totals) is bounded by :func:`~hedgearena.baselines.arena.check_result_memory`, the
    bound :func:`~hedgearena.baselines.arena.run_arena` enforces, and so is each ``family:best``
    tuning run (:func:`check_tuning_memory`). ``config`` is the benchmark's (uncut) config;
    ``names`` name the paths and the tuning paths in the error (``("arena.paths",
    "arena.tune_paths")`` for a run config).

    Raises:
        ValueError: naming the setting, its size, the memory it would take and what fits.
    """
    tuning, scoring = split_configs(config, settings.split)
    n_frontier = sum(len(grid) for _, grid in FAMILIES.values()) if settings.frontier else 0
    n_kept = settings.n_paths if settings.keep_records else 1  # the drawn path's records
    n_hedgers = len(specs) + n_agents
    counted = (f" ({n_hedgers} scored and the frontier plot's {n_frontier} band members: "
               "frontier=False, arena.frontier=false, drops those)" if n_frontier else "")
    check_result_memory(scoring, settings.n_paths, n_hedgers + n_frontier, n_hedgers, n_kept,
                        setting=names[0],
                        records_hint="keep the drawn path's only (keep_records=False)",
                        counted=counted)
    check_tuning_memory(tuning, specs, settings, names[1])


def check_tuning_memory(tuning: EnvConfig, specs: Sequence[str | Hedger],
                        settings: BenchmarkSettings, setting: str = "tune_paths") -> None:
    """Raise ``ValueError`` before a ``family:best`` of ``specs`` whose tuning would not fit.

    :func:`tune_family` runs the family's grid on ``settings.tune_paths`` paths of ``tuning``
    (the first config of :func:`split_configs`), every member by its totals and every path's
    spot and model hedge kept: that result is bounded by
    :func:`~hedgearena.baselines.arena.check_result_memory` (nothing is simulated).
    ``setting`` names the tuning paths in the error.

    Raises:
        ValueError: naming the setting, the spec, its size, the memory it would take and what
            fits.
    """
    for spec in specs:
        family = tuned_family(spec) if isinstance(spec, str) else None
        if family is None:
            continue
        n_members = len(FAMILIES[family][1])
        try:  # tune_family's run_arena: totals_only every member, record_paths None
            check_result_memory(tuning, settings.tune_paths, n_members, 0, settings.tune_paths,
                                setting=setting)
        except ValueError as error:
            raise ValueError(f"{setting}: {spec.strip()!r} is tuned on all of them ({n_members} "
                             f"members of its grid): {error}") from None


def _frontier_members(settings: BenchmarkSettings) -> dict[str, list[Hedger]]:
    families = {}
    for key, (label, grid) in FAMILIES.items():
        members = [family_member(key, p) for p in grid]
        for member, p in zip(members, grid, strict=True):
            member.name = f"frontier: {label} {p:g}"
        families[key] = members
    return families


def _score_all(
    result: ArenaResult, names: Sequence[str], settings: BenchmarkSettings
) -> dict[str, dict[str, float]]:
    return {
        name: score_hedger(result, name, c=settings.c, risk_aversion=settings.risk_aversion,
                           reference=settings.reference, n_boot=settings.n_boot,
                           seed=settings.seed)
        for name in names
    }


# ------------------------------------------------------------------------------- the report
def write_report(
    out: BenchmarkReport,
    config: EnvConfig,
    hedgers: Sequence[Hedger],
    settings: BenchmarkSettings,
    out_dir: Path,
    title: str = "",
) -> dict[str, Path]:
    """Write the report's files into ``out_dir``; return name -> path.

    The files are written in a staging folder and moved in together
    (:func:`hedgearena.baselines.report.write_staged`): an interrupted report leaves the
    previous one whole. A report file of an earlier run that this one does not write
    (``frontier.*`` without the frontier) is removed, so the folder holds one run's report only.
    """
    files = report.write_staged(
        out_dir, lambda stage: _write_files(out, config, hedgers, settings, stage, title)
    )
    for stale in set(REPORT_FILES) - {path.name for path in files.values()}:
        (out_dir / stale).unlink(missing_ok=True)
    return files


def _write_files(
    out: BenchmarkReport, config: EnvConfig, hedgers: Sequence[Hedger],
    settings: BenchmarkSettings, out_dir: Path, title: str,
) -> dict[str, Path]:
    """Every file of the report, written into ``out_dir``."""
    files = {"config": _write_config(out_dir / "config.yaml", config, hedgers, settings, out)}
    tables = report.write_tables(
        out.table, out_dir, "scores", c=settings.c, risk_aversion=settings.risk_aversion,
        seed=settings.seed, n_paths=settings.n_paths, extra={"title": title, "tuned": out.tuned},
        note=report_note(out, settings),
    )
    files.update({f"scores_{ext}": path for ext, path in tables.items()})
    if out.frontier:
        frontier = pd.concat(out.frontier, names=["family", "row"]).reset_index(level="row",
                                                                                drop=True)
        frontier.to_csv(out_dir / "frontier.csv")
        files["frontier_csv"] = out_dir / "frontier.csv"
    files.update(_plots(out, [h.name for h in hedgers], settings, out_dir, title))
    return files


def report_note(out: BenchmarkReport, settings: BenchmarkSettings) -> str | None:
    """The lines under a report's table: :func:`choice_notes` and :func:`dependence_note`."""
    dependence = dependence_note(out.arena.overlap)
    notes = [*choice_notes(out.tuned, out.fitted, settings, dated=out.arena.overlap is not None),
             *([dependence] if dependence else [])]
    return "\n".join(notes) or None


def fits_of(specs: Sequence[str | Hedger], hedgers: Sequence[Hedger]
            ) -> dict[str, MinimumVarianceFit]:
    """The fit of each ``mv_delta:fit[:edge...]`` spec of ``specs``, by its hedger's name.

    ``hedgers`` are the hedgers of ``specs`` (:func:`resolve_hedgers`), in order. A
    :class:`MinimumVarianceDelta` given as an object was fitted by its caller, on paths the
    report cannot name: not on the tuning paths, so it is not among them (its coefficients
    are in ``config.yaml``).
    """
    return {h.name: h.fit for spec, h in zip(specs, hedgers, strict=True)
            if isinstance(spec, str) and is_fitted(spec)
            and isinstance(h, MinimumVarianceDelta) and h.fit}


STRESSED_CHOICE = ("Each parameter was chosen on the unstressed env and is used unchanged in "
                   "every scenario.",
                   "The coefficients were fitted on the unstressed env and are used unchanged "
                   "in every scenario.")
"""What the stress report adds to its ``(tuned)`` and ``(fitted)`` lines (:func:`choice_notes`)."""


def choice_notes(tuned: dict[str, float], fitted: Mapping[str, MinimumVarianceFit],
                 settings: BenchmarkSettings, dated: bool = False,
                 stressed: bool = False) -> tuple[str, ...]:
    """The lines on where the ``(tuned)`` and ``(fitted)`` hedgers were chosen (those there are).

    :func:`tuning_note` and :func:`fitting_note`; the benchmark's and, with ``stressed``, the
    stress report's, which say that the choice was made on the unstressed env and is used
    unchanged in every scenario (:data:`STRESSED_CHOICE`).
    """
    notes = (tuning_note(tuned, settings, dated=dated), fitting_note(fitted, settings, dated=dated))
    return tuple(f"{note} {added}" if stressed else note
                 for note, added in zip(notes, STRESSED_CHOICE, strict=True) if note)


def dependence_note(overlap: Overlap | None) -> str | None:
    """The report's line on dependent paths (the historical replay's), None for independent ones.

    Examples:
        >>> import numpy as np, textwrap
        >>> overlap = Overlap(np.arange(0, 3650, 2), span=31)
        >>> print(textwrap.fill(dependence_note(overlap), 80))
        The paths are overlapping windows of one history (1,825 start days, each path
        spanning up to 31 days): standard errors, p-values and intervals are long-run
        ones (Newey-West over 93 days, moving-block bootstrap) on 39 independent
        stretches, not on the paths.
    """
    if overlap is None:
        return None
    return (
        f"The paths are overlapping windows of one history ({np.unique(overlap.start).size:,} "
        f"start days, each path spanning up to {overlap.span} days): standard errors, p-values "
        f"and intervals are long-run ones (Newey-West over {overlap.bandwidth} days, "
        f"moving-block bootstrap) on {overlap.stretches:,} independent stretches, not on the "
        "paths."
    )


def tuning_note(
    tuned: dict[str, float], settings: BenchmarkSettings, dated: bool = False
) -> str | None:
    """The report's line on the ``(tuned)`` hedgers: where their parameter was chosen.

    ``dated``: the paths are windows of one history (the replay), where other seeds draw other
    windows of the same days unless ``settings.split`` cuts the history.

    Examples:
        >>> import textwrap
        >>> print(textwrap.fill(tuning_note({"ww": 0.1}, BenchmarkSettings(seed=7)), 80))
        (tuned): the family's member with the lowest Y on 20,000 tuning paths (seed 8),
        apart from the scoring paths (seed 7); chosen: ww 0.1.
        >>> print(textwrap.fill(tuning_note({"band": 0.4}, BenchmarkSettings(seed=7)), 80))
        (tuned): the family's member with the lowest Y on 20,000 tuning paths (seed 8),
        apart from the scoring paths (seed 7); chosen: band 0.4 (the last of its grid:
        the best may lie beyond).
        >>> settings = BenchmarkSettings(seed=7, split="2010-01-01")
        >>> print(textwrap.fill(tuning_note({"ww": 0.1}, settings, dated=True), 80))
        (tuned): the family's member with the lowest Y on 20,000 tuning paths (seed 8)
        of the history before 2010-01-01, the scoring paths (seed 7) being windows from
        that day on (out of sample); chosen: ww 0.1.
    """
    if not tuned:
        return None
    chosen = ", ".join(f"{family} {value:g}{_edge_mark(family, value)}"
                       for family, value in tuned.items())
    where = tuning_paths(settings, dated)
    return f"(tuned): the family's member with the lowest Y on {where}; chosen: {chosen}."


def tuning_paths(settings: BenchmarkSettings, dated: bool) -> str:
    """The notes' words for the tuning paths and how they stand to the scoring paths.

    ``dated``: the paths are windows of one history (see :func:`tuning_note`).
    """
    tuning = f"{settings.tune_paths:,} tuning paths (seed {settings.tuning_seed})"
    if settings.split is not None:
        return (f"{tuning} of the history before {settings.split}, the scoring paths "
                f"(seed {settings.seed}) being windows from that day on (out of sample)")
    if dated:
        return (f"{tuning}: other windows of the same history as the scoring paths "
                f"(seed {settings.seed}), sharing days with them (in sample; the setting "
                "split tunes on an earlier stretch)")
    return f"{tuning}, apart from the scoring paths (seed {settings.seed})"


def fitting_note(fitted: Mapping[str, MinimumVarianceFit], settings: BenchmarkSettings,
                 dated: bool = False) -> str | None:
    """The report's line on the ``(fitted)`` hedgers: their coefficients and where they came from.

    The coefficients' standard errors are in brackets (clustered by path: the replay's windows
    overlap, so there, ``dated``, they are too small, which the line says).

    Examples:
        >>> import numpy as np
        >>> fit = MinimumVarianceFit(np.array([-0.05, -0.17, 0.14]), np.array([0.006, 0.02,
        ...                          0.02]), np.eye(3), 400_000, 20_000, 0.086)
        >>> import textwrap
        >>> note = fitting_note({"MV delta (fitted)": fit}, BenchmarkSettings(seed=7))
        >>> print(textwrap.fill(note, 80))
        (fitted): Hull and White's minimum-variance delta regressed on 20,000 tuning
        paths (seed 8), apart from the scoring paths (seed 7); MV delta (fitted): a
        -0.05 (0.006), b -0.17 (0.02), c 0.14 (0.02), gain 8.6% of the delta hedge's
        squared error on them.
    """
    if not fitted:
        return None
    fits = "; ".join(
        f"{name}: {fit.summary()}, gain {fit.gain:.1%} of the delta hedge's squared error on them"
        for name, fit in fitted.items())
    errors = (" (standard errors by path, too small for overlapping windows)" if dated else "")
    return (f"(fitted): Hull and White's minimum-variance delta regressed on "
            f"{tuning_paths(settings, dated)}; {fits}{errors}.")


def _edge_mark(family: str, value: float) -> str:
    """`` (the first/last of its grid: ...)`` when ``value`` ends ``family``'s grid, else ``""``.

    The tuning picks the best member of a grid: at its first or last member, the family's best
    may lie outside it.
    """
    grid = FAMILIES[family][1] if family in FAMILIES else ()
    if not grid or value not in (grid[0], grid[-1]):
        return ""
    return f" (the {'first' if value == grid[0] else 'last'} of its grid: the best may lie beyond)"


REPORT_FILES = ("config.yaml", "scores.csv", "scores.json", "scores.md", "frontier.csv",
                "frontier.png", "distributions.png", "path_story.png")
"""The files a benchmark report may write into its folder."""


def _write_config(
    path: Path, config: EnvConfig, hedgers: Sequence[Hedger], settings: BenchmarkSettings,
    out: BenchmarkReport,
) -> Path:
    document = {
        "env": config.to_dict(),
        "benchmark": {**dataclasses.asdict(settings), "tuning_seed": settings.tuning_seed},
        "hedgers": {h.name: describe(h) for h in hedgers},
        "tuned": out.tuned,
        "arena": {"build_seconds": out.arena.build_seconds, "hedger_seconds": out.arena.seconds},
    }
    path.write_text(dump_yaml(plain_data(document)))
    return path


def _plots(
    out: BenchmarkReport, names: Sequence[str], settings: BenchmarkSettings, out_dir: Path,
    title: str,
) -> dict[str, Path]:
    result = out.arena
    pnl = {n: result.records[n].totals["terminal_pnl"] for n in names}
    cost = {n: result.cost(n) for n in names}
    files = {"distributions": report.plot_distributions(pnl, cost, out_dir / "distributions.png",
                                                        title=title)}
    if out.frontier:
        families = {label: report.FrontierFamily(rows["parameter"], rows["mean_cost"],
                                                 rows["std_cost"], _parameter_name(label))
                    for label, rows in out.frontier.items()}
        points = {n: (float(cost[n].mean()), float(cost[n].std(ddof=1))) for n in names}
        files["frontier"] = report.plot_frontier(families, points, out_dir / "frontier.png",
                                                 c=settings.c, title=title)
    files["path_story"] = plot_story(result, story_hedgers(names, settings.reference),
                                 settings.story_path, out_dir / "path_story.png")
    return files


def story_hedgers(names: Sequence[str], reference: str, limit: int = 4) -> list[str]:
    """The hedgers drawn in the path story, at most ``limit``.

    The reference first, then the tuned bands and the agents, then the rest.
    """

    def rank(name: str) -> int:
        return 0 if name == reference else 1 if "(tuned)" in name or "agent" in name else 2

    return sorted(names, key=rank)[:limit]


def _parameter_name(label: str) -> str:
    """The legend's name of a band family's parameter, with its unit."""
    aversion = "risk aversion, per currency"
    return {"Whalley-Wilmott": aversion, "Zakamouline": aversion,
            "fixed band": "tolerance, delta per notional"}.get(label, "")


def plot_story(
    result: ArenaResult, names: Sequence[str], index: int, path: Path, title: str = "",
    figures: StoryFigures | None = None,
) -> Path:
    """Path ``index``'s story for the hedgers ``names`` of ``result``; returns ``path``.

    :func:`hedgearena.baselines.report.plot_path_story` of their positions in the underlying,
    in the hedging option (when one of them holds it on the path) and their cumulative costs,
    on the figures ``figures`` keep (None: a new one). ``index`` is a path of the run, whose
    records are in column ``result.column(index)`` (the path itself unless the run kept some
    paths' records only).
    """
    column = result.column(index)
    series = {n: report.story_series(result.records[n], len(result.times) - 1) for n in names}
    options = {n: s.option for n, s in series.items()}
    return report.plot_path_story(
        column, result.times, result.spot, result.model_hedge,
        {n: s.hedge for n, s in series.items()}, path,
        costs={n: s.cost for n, s in series.items()},
        options=options if any(o[column].any() for o in options.values()) else None,
        strike=None if result.strike is None else float(result.strike[column]), title=title,
        figures=figures, label=index, labels=story_labels(result.config),
    )
