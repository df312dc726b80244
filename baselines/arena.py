"""The arena: any set of hedgers on exactly the same paths, scored by the same rules.

Paths come in blocks of :data:`PATH_BLOCK`: block ``k`` of a run with seed ``s`` is built from
the generator ``default_rng(SeedSequence([s, k]))`` (the last block may be shorter), so the paths
depend on the seed and the number of paths only, every hedger of a run sees exactly the same
paths (common random numbers), and memory holds one block's full arrays at a time.
Each hedger trades through a :class:`~hedgearena.envs.vector_env.VecHedgingEnv` of the same
config (its P&L is booked by the env's core), so the records of all hedgers differ only by their
decisions. Scoring (:mod:`hedgearena.baselines.metrics`) and reports
(:mod:`hedgearena.baselines.report`) work on the concatenated records.

Examples:
    >>> from hedgearena.envs.config import make_config
    >>> from hedgearena.baselines.delta import BlackScholesDelta, NoHedge
    >>> result = run_arena(make_config("ShortCall"), [NoHedge(), BlackScholesDelta()],
    ...                    n_paths=2_000, seed=0, progress=False)
    >>> sorted(result.records)
    ['delta', 'no hedge']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from hedgearena.baselines.dependence import Overlap, overlap_of
from hedgearena.baselines.hedger import (
    RECORD_DTYPES,
    RECORD_FIELDS,
    EpisodeRecord,
    Hedger,
    live_records,
    record_arrays,
    run_hedger,
    uses_observations,
    zeros_view,
)
from hedgearena.envs.book import BookPaths
from hedgearena.envs.checks import is_integer
from hedgearena.envs.config import EnvConfig
from hedgearena.envs.core import Episode
from hedgearena.envs.episode import EpisodeBatch, Features, build_episodes, with_realised_vol
from hedgearena.envs.market import MarketPaths
from hedgearena.envs.vector_env import VecHedgingEnv

ENV_OVERRIDES = (
    "action_mode", "reward_mode", "risk_aversion", "pnl_reference", "position_limit",
    "trade_limit", "band_limit", "reward_scale", "realised_vol_halflife", "observe_pnl",
)
"""Config fields a hedger may override (``hedger.env_overrides``) without changing the paths:
how a learned agent's actions and observations are read, never the market, book or costs (a
hedger with another ``realised_vol_halflife`` gets the block's realised-vol feature recomputed,
:func:`~hedgearena.envs.episode.with_realised_vol`)."""


@dataclass
class ArenaResult:
    """What every hedger did on the same paths, and what scoring and plots need of the paths.

    The arena keeps per-path summaries, not the paths' full arrays (which are built and dropped
    block by block so that big runs fit memory): the spot and the model hedge of every path (for
    path stories) and each hedger's P&L attribution (computed on each block while it exists).

    Attributes:
        config: the env config every hedger ran on.
        records: hedger name -> its :class:`EpisodeRecord` over all paths (concatenated).
        attribution: hedger name -> term -> ``(n_paths,)`` P&L attribution
            (:func:`hedgearena.baselines.metrics.pnl_attribution`), currency per episode.
        times: ``(n_steps + 1,)`` years of the market grid.
        spot: ``(n_paths, n_steps + 1)`` the underlying's price.
        model_hedge: ``(n_paths, n_steps + 1)`` the model's hedge, units.
        strike: ``(n_paths,)`` strike of the book's first initial option, or None.
        rate: the market's rate (to discount the P&L in the hedging cost).
        seed: the run's seed.
        seconds: hedger name -> wall-clock seconds spent stepping and recording it.
        build_seconds: seconds spent building the paths.
        batches: the blocks' full :class:`EpisodeBatch` es (only with ``keep_batches=True``).
        totals_only: hedger name -> its episode totals, ``(n_paths,)`` each, for the hedgers
            run with ``totals_only`` (they have no ``records`` nor ``attribution`` entry).
        overlap: which paths share market history (dated paths: the historical replay's
            overlapping windows), for the standard errors of
            :func:`hedgearena.baselines.metrics.score`; None for simulated, independent paths.
    """

    config: EnvConfig
    records: dict[str, EpisodeRecord]
    attribution: dict[str, dict[str, np.ndarray]]
    times: np.ndarray
    spot: np.ndarray
    model_hedge: np.ndarray
    strike: np.ndarray | None
    rate: float
    seed: int
    seconds: dict[str, float]
    build_seconds: float
    batches: list[EpisodeBatch] = dataclasses.field(default_factory=list)
    totals_only: dict[str, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)
    overlap: Overlap | None = None

    def totals(self, name: str) -> dict[str, np.ndarray]:
        """Hedger ``name``'s episode totals, ``(n_paths,)`` each (with a record or not)."""
        return self.totals_only[name] if name in self.totals_only else self.records[name].totals

    def cost(self, name: str) -> np.ndarray:
        """Hedger ``name``'s hedging cost per path, ``(n_paths,)`` currency.

        :func:`hedgearena.baselines.metrics.hedging_cost` of its totals.
        """
        from hedgearena.baselines.metrics import hedging_cost  # late: metrics is big

        totals = self.totals(name)
        return hedging_cost(totals["terminal_pnl"], totals["initial_premium"], self.rate,
                            self.horizon)

    @property
    def n_paths(self) -> int:
        """Number of paths."""
        return int(self.spot.shape[0])

    @property
    def horizon(self) -> float:
        """The episode's length, years."""
        return float(self.times[-1])

    @property
    def batch(self) -> EpisodeBatch:
        """All paths' full arrays (kept with ``run_arena(..., keep_batches=True)`` only)."""
        if not self.batches:
            raise ValueError("the paths' full arrays were not kept: run_arena(keep_batches=True)")
        return concat_batches(self.batches)


PATH_BLOCK = 16_384
"""Paths per independently seeded block, built and stepped at once (see the module docstring)."""


def block_generator(seed: int, index: int) -> np.random.Generator:
    """The generator of block ``index`` of a run with ``seed`` (independent streams)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def path_blocks(n_paths: int) -> list[tuple[int, int]]:
    """The blocks of a run of ``n_paths`` paths, as ``(block index, paths in the block)``.

    Examples:
        >>> path_blocks(40_000)
        [(0, 16384), (1, 16384), (2, 7232)]
    """
    if not (is_integer(n_paths) and n_paths >= 1):
        raise ValueError(f"n_paths must be an integer >= 1, got {n_paths!r}")
    starts = range(0, n_paths, PATH_BLOCK)
    return [(k, min(PATH_BLOCK, n_paths - lo)) for k, lo in enumerate(starts)]


def hedger_config(config: EnvConfig, hedger: Hedger) -> EnvConfig:
    """The config ``hedger`` runs on: ``config`` with the hedger's allowed overrides."""
    overrides = getattr(hedger, "env_overrides", {}) or {}
    if not isinstance(overrides, Mapping):
        raise ValueError(
            f"{hedger.name}: env_overrides must be a dict of config fields, got {overrides!r}"
        )
    bad = sorted(set(overrides) - set(ENV_OVERRIDES))
    if bad:
        raise ValueError(
            f"{hedger.name}: env_overrides may only change {ENV_OVERRIDES}, got {bad}"
        )
    return config.replace(**overrides) if overrides else config


def run_arena(
    config: EnvConfig,
    hedgers: Sequence[Hedger],
    n_paths: int = 100_000,
    seed: int = 0,
    progress: bool = True,
    keep_batches: bool = False,
    totals_only: Collection[str] = (),
) -> ArenaResult:
    """Run every hedger on the same ``n_paths`` paths of ``config``.

    Args:
        config: the env config (market, book, costs, conventions).
        hedgers: the hedgers; their names must be unique.
        n_paths: number of paths (built and stepped in blocks of :data:`PATH_BLOCK`, so memory
            holds one block's full arrays at a time).
        seed: seed of the paths (block ``k`` uses :func:`block_generator`).
        progress: show a progress bar (decisions stepped over all hedgers and blocks).
        keep_batches: keep every block's full arrays in the result (``result.batch``).
        totals_only: names of hedgers kept by their episode totals alone
            (``result.totals_only``): no per-decision records over all paths and no P&L
            attribution, e.g. the many members of a frontier, which would otherwise hold
            ``7 x n_decisions x n_paths`` numbers each.

    Returns:
        The records of every hedger, their P&L attribution and the paths' summaries.

    Raises:
        ValueError: naming what is wrong with the arguments (:func:`check_arena_inputs`), or
            the hedger and the decision where a hedger's positions are not finite real numbers
            of shape ``(paths of the block, action_dim)``. Each hedger is ``reset`` on every
            block (:class:`~hedgearena.baselines.hedger.Hedger`); an error of its own
            propagates as it is (the arena writes no files).
    """
    check_arena_inputs(config, hedgers, seed)
    names = [h.name for h in hedgers]
    unknown = sorted(set(totals_only) - set(names))
    if unknown:
        raise ValueError(f"totals_only names hedgers that are not run: {unknown}")
    configs = {h.name: hedger_config(config, h) for h in hedgers}
    blocks = path_blocks(n_paths)
    runs = _Runs(names, n_paths, config.n_decisions, set(totals_only))
    observe = keep_batches or any(uses_observations(h) for h in hedgers)
    envs = _Envs()
    total = len(blocks) * len(hedgers) * config.n_decisions
    with tqdm(total=total, desc="arena", unit="decision", leave=False,
              disable=not progress) as bar:
        for index, size in blocks:
            start = _now()
            batch = build_episodes(config, size, block_generator(seed, index), observe)
            runs.build += _now() - start
            lo = index * PATH_BLOCK
            runs.add_block(batch, lo, keep_batches)
            market = _market_attribution(batch)  # the attribution's terms shared by the hedgers
            views = _Views(config, batch)
            for hedger in hedgers:
                start = _now()
                env = envs.get(hedger, configs[hedger.name], size)
                live = live_records(env.core, env.config.action_dim, batch.episode)
                record = run_hedger(env, hedger, episodes=views.get(configs[hedger.name]),
                                    on_step=lambda _: bar.update(1),
                                    out=runs.out(hedger.name, lo, size, live))
                runs.add_record(hedger.name, record, batch, market)
                runs.seconds[hedger.name] += _now() - start
    return runs.result(config, seed, batch)


def check_arena_inputs(config: Any, hedgers: Any, seed: Any) -> None:
    """Raise ``ValueError`` naming what is wrong with :func:`run_arena`'s arguments.

    ``config`` must be an :class:`EnvConfig`, ``hedgers`` a non-empty sequence of hedgers
    (:class:`Hedger` or alike) with unique non-empty string names, ``seed`` an integer >= 0.
    """
    if not isinstance(config, EnvConfig):
        raise ValueError(
            "config must be an EnvConfig (hedgearena.envs.config.make_config), "
            f"got {type(config).__name__}"
        )
    if not isinstance(hedgers, Sequence) or isinstance(hedgers, str) or not hedgers:
        raise ValueError(f"hedgers must be a non-empty list of Hedger objects, got {hedgers!r}")
    for hedger in hedgers:
        if isinstance(hedger, type):
            raise ValueError(
                f"hedgers must be Hedger objects, got the class {hedger.__name__}: pass an "
                f"instance, {hedger.__name__}(...)"
            )
        if not all(callable(getattr(hedger, m, None)) for m in ("reset", "positions")):
            raise ValueError(
                "hedgers must be Hedger objects (hedgearena.baselines.hedger.Hedger, with "
                "reset(env) and positions(state, obs); specs such as 'delta' go through "
                f"parse_hedger or benchmark), got {hedger!r}"
            )
        name = getattr(hedger, "name", None)
        if not (isinstance(name, str) and name):
            raise ValueError(
                f"a hedger's name must be a non-empty string, got {name!r} "
                f"({type(hedger).__name__}: set its name attribute)"
            )
    names = [h.name for h in hedgers]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(
            f"hedger names must be unique, got {names}: {repeated} more than once (give each "
            "hedger its own name attribute)"
        )
    if not (is_integer(seed) and seed >= 0):
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")


class _Views:
    """A block's batch as each hedger's view of the env sees it (built once per half-life)."""

    def __init__(self, config: EnvConfig, batch: EpisodeBatch) -> None:
        self._batches = {config.realised_vol_halflife: batch}

    def get(self, config: EnvConfig) -> EpisodeBatch:
        """The batch with ``config``'s realised-vol half-life."""
        halflife = config.realised_vol_halflife
        if halflife not in self._batches:
            base = next(iter(self._batches.values()))
            self._batches[halflife] = with_realised_vol(config, base)
        return self._batches[halflife]


class _Envs:
    """One env per hedger and block size, reused from block to block (each reset on new paths).

    A hedger that reads no observations (``uses_observations = False``) gets a state-only env.
    """

    def __init__(self) -> None:
        self._envs: dict[tuple[str, int], VecHedgingEnv] = {}

    def get(self, hedger: Hedger, config: EnvConfig, size: int) -> VecHedgingEnv:
        """The env of ``hedger`` for blocks of ``size`` paths."""
        key = (hedger.name, size)
        if key not in self._envs:
            self._envs[key] = VecHedgingEnv(
                num_envs=size, config=config, block=size, observations=uses_observations(hedger)
            )
        return self._envs[key]


class _Runs:
    """What the arena gathers block by block, written into the run's arrays as it goes.

    The per-decision records and the paths' summaries are allocated once for all paths (zeros)
    and every block writes its columns (rows) in place: no per-block arrays to concatenate.
    A record field is allocated when a block first has it live
    (:func:`~hedgearena.baselines.hedger.live_records`); one never live stays read-only zeros.
    """

    def __init__(
        self, names: Sequence[str], n_paths: int, n_decisions: int, totals_only: set[str]
    ) -> None:
        self.n_paths = n_paths
        self.shape = (n_decisions, n_paths)
        self.totals_only = totals_only
        self.arrays: dict[str, list[np.ndarray | None]] = {
            name: [None] * len(RECORD_FIELDS) for name in names if name not in totals_only
        }
        # one block's scratch arrays, shared by the totals-only hedgers (run one at a time)
        scratch_shape = (n_decisions, min(PATH_BLOCK, n_paths))
        self.scratch = record_arrays(scratch_shape) if totals_only else []
        self.totals: dict[str, list[dict[str, np.ndarray]]] = {name: [] for name in names}
        self.steps: dict[str, np.ndarray] = {}
        self.attribution: dict[str, list[dict[str, np.ndarray]]] = {name: [] for name in names}
        # the paths' summaries, allocated by the first block
        self.spot, self.model_hedge = np.empty((0, 0)), np.empty((0, 0))
        self.strike: np.ndarray | None = None
        self.start_day: np.ndarray | None = None  # dated paths: each path's first day
        self.span = 0
        self.kept: list[EpisodeBatch] = []
        self.seconds = dict.fromkeys(names, 0.0)
        self.build = 0.0

    def add_block(self, batch: EpisodeBatch, lo: int, keep: bool) -> None:
        """Keep the spot, model hedge and first strike of the block's paths from path ``lo``.

        All of the block is kept too if ``keep``.
        """
        spot, model_hedge = batch.market.spot, batch.episode.model_hedge
        strikes = batch.instruments.strike
        if not self.spot.size:  # the first block; the model hedge stays time-major
            self.spot = np.empty((self.n_paths, spot.shape[1]))
            self.model_hedge = np.empty((model_hedge.shape[0], self.n_paths))
            self.strike = np.empty(self.n_paths) if strikes.shape[1] else None
        hi = lo + len(spot)
        overlap = overlap_of(batch.market.dates)
        if overlap is not None:
            if self.start_day is None:
                self.start_day = np.empty(self.n_paths, dtype=np.int64)
            self.start_day[lo:hi] = overlap.start
            self.span = max(self.span, overlap.span)
        self.spot[lo:hi] = spot
        self.model_hedge[:, lo:hi] = model_hedge
        if self.strike is not None:
            self.strike[lo:hi] = strikes[:, 0]
        if keep:
            self.kept.append(batch)

    def out(self, name: str, lo: int, size: int, live: dict[str, bool]) -> list[np.ndarray]:
        """The columns of paths ``lo`` to ``lo + size`` of hedger ``name``'s record arrays.

        ``live`` says which fields the block can write (the others get read-only zeros).
        A totals-only hedger writes into the shared scratch arrays (zeroed first).
        """
        if name in self.totals_only:
            parts = [values[:, :size] for values in self.scratch]
            for part, field in zip(parts, RECORD_FIELDS, strict=True):
                if live[field]:
                    part.fill(0)
            return parts
        arrays = self.arrays[name]
        for i, field in enumerate(RECORD_FIELDS):
            if live[field] and arrays[i] is None:
                arrays[i] = np.zeros(self.shape, RECORD_DTYPES[field])
        return [zeros_view((self.shape[0], size), RECORD_DTYPES[field]) if values is None
                else values[:, lo:lo + size] for values, field in zip(arrays, RECORD_FIELDS,
                                                                     strict=True)]

    def add_record(
        self, name: str, record: EpisodeRecord, batch: EpisodeBatch, market: dict[str, Any]
    ) -> None:
        """Keep a hedger's totals on a block and its P&L attribution on the block.

        ``market`` holds the block's hedger-independent attribution terms
        (:func:`hedgearena.baselines.metrics.market_attribution`).
        """
        from hedgearena.baselines.metrics import pnl_attribution

        self.totals[name].append(record.totals)
        self.steps[name] = record.steps
        if name not in self.totals_only:
            self.attribution[name].append(pnl_attribution(record, batch, market))

    def result(self, config: EnvConfig, seed: int, last: EpisodeBatch) -> ArenaResult:
        """The run's result (the totals and attribution of the blocks concatenated)."""
        totals = {
            name: {key: np.concatenate([t[key] for t in blocks]) for key in blocks[0]}
            for name, blocks in self.totals.items()
        }
        records = {
            name: EpisodeRecord(totals[name], self.steps[name], *(
                zeros_view(self.shape, RECORD_DTYPES[field]) if values is None else values
                for values, field in zip(arrays, RECORD_FIELDS, strict=True)))
            for name, arrays in self.arrays.items()
        }
        attribution = {
            name: {term: np.concatenate([a[term] for a in blocks]) for term in blocks[0]}
            for name, blocks in self.attribution.items() if blocks
        }
        return ArenaResult(config, records, attribution, last.market.times, self.spot,
                           self.model_hedge.T, self.strike, last.market.rate, seed,
                           self.seconds, self.build, self.kept,
                           {name: totals[name] for name in self.totals_only},
                           None if self.start_day is None else Overlap(self.start_day, self.span))


def _market_attribution(batch: EpisodeBatch) -> dict[str, np.ndarray]:
    """:func:`hedgearena.baselines.metrics.market_attribution` (imported late: metrics is big)."""
    from hedgearena.baselines.metrics import market_attribution

    return market_attribution(batch)


def _now() -> float:
    import time

    return time.perf_counter()


# --------------------------------------------------------------------------- concatenation
def concat_records(records: Sequence[EpisodeRecord]) -> EpisodeRecord:
    """One record of all paths from records of consecutive batches."""
    if len(records) == 1:
        return records[0]
    first = records[0]
    totals = {key: np.concatenate([r.totals[key] for r in records]) for key in first.totals}
    stacked = {
        name: np.concatenate([getattr(r, name) for r in records], axis=1)
        for name in EpisodeRecord._fields[2:]
        if getattr(first, name) is not None
    }
    return EpisodeRecord(totals=totals, steps=first.steps, **stacked)


def concat_batches(batches: Sequence[EpisodeBatch]) -> EpisodeBatch:
    """One batch of all paths from consecutive batches (arrays copied once)."""
    if len(batches) == 1:
        return batches[0]
    return EpisodeBatch(
        episode=Episode(**{name: _concat_episode_field([getattr(b.episode, name)
                                                        for b in batches])
                           for name in Episode._fields}),
        features=Features(*(np.concatenate(parts) for parts in zip(*(b.features for b in batches),
                                                                    strict=True))),
        observations=np.concatenate([b.observations for b in batches], axis=1),
        initial_cash=np.concatenate([b.initial_cash for b in batches]),
        market=_concat_market([b.market for b in batches]),
        instruments=BookPaths(*(np.concatenate(parts) for parts in
                                zip(*(b.instruments for b in batches), strict=True))),
    )


def _concat_episode_field(values: list[Any]) -> Any:
    """Time-major 2-d fields join along paths (axis 1), per-path 1-d ones along axis 0."""
    ndim = np.ndim(values[0])
    if ndim == 2:
        return np.concatenate(values, axis=1)
    if ndim == 1:
        return np.concatenate(values)
    return values[0]


def _concat_market(markets: list[MarketPaths]) -> MarketPaths:
    """Join the per-path arrays of market paths (optional ones stay None when absent)."""
    first = markets[0]
    changes = {}
    for name in ("spot", "variance", "vol_state", "liquidity", "dates", "fill_fraction",
                 "fill_cap"):
        if getattr(first, name) is not None:
            changes[name] = np.concatenate([getattr(m, name) for m in markets])
    return dataclasses.replace(first, **changes)
