"""The arena: any set of hedgers on exactly the same paths, scored by the same rules.

Paths come in blocks of :data:`PATH_BLOCK`: block ``k`` of a run with seed ``s`` is built from
the generator ``default_rng(SeedSequence([s, k]))`` (the last block may be shorter), so the paths
depend on the seed and the number of paths only, not on the batch size that memory allows, and
every hedger of a run sees exactly the same paths (common random numbers). Hedgers step through
batches of whole blocks.
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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hedgearena.baselines.hedger import EpisodeRecord, Hedger, run_hedger
from hedgearena.envs.book import BookPaths
from hedgearena.envs.config import EnvConfig
from hedgearena.envs.core import Episode
from hedgearena.envs.episode import EpisodeBatch, Features, build_episodes
from hedgearena.envs.market import MarketPaths
from hedgearena.envs.vector_env import VecHedgingEnv

ENV_OVERRIDES = (
    "action_mode", "reward_mode", "risk_aversion", "position_limit", "trade_limit", "band_limit",
    "reward_scale", "realised_vol_halflife",
)
"""Config fields a hedger may override (``hedger.env_overrides``) without changing the paths:
how a learned agent's actions and observations are read, never the market, book or costs."""


@dataclass(frozen=True)
class ArenaResult:
    """The records of every hedger on the same paths.

    Attributes:
        config: the env config every hedger ran on.
        records: hedger name -> its :class:`EpisodeRecord` over all paths (concatenated).
        batch: the paths' exogenous arrays (market, book marks, features), all paths.
        seed: the run's seed.
        seconds: hedger name -> wall-clock seconds spent stepping it (episode building excluded).
        build_seconds: seconds spent building the paths.
    """

    config: EnvConfig
    records: dict[str, EpisodeRecord]
    batch: EpisodeBatch
    seed: int
    seconds: dict[str, float]
    build_seconds: float

    @property
    def n_paths(self) -> int:
        """Number of paths."""
        return int(self.batch.initial_cash.shape[0])


PATH_BLOCK = 4096
"""Paths per independently seeded block (see the module docstring)."""


def block_generator(seed: int, index: int) -> np.random.Generator:
    """The generator of block ``index`` of a run with ``seed`` (independent streams)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def batch_blocks(n_paths: int, batch_size: int) -> list[list[tuple[int, int]]]:
    """Group the blocks of ``n_paths`` paths into batches of about ``batch_size`` paths.

    Returns:
        For each batch, its blocks as ``(block index, paths in the block)``.

    Examples:
        >>> batch_blocks(10_000, 8192)
        [[(0, 4096), (1, 4096)], [(2, 1808)]]
    """
    if n_paths < 1 or batch_size < 1:
        raise ValueError(f"n_paths and batch_size must be >= 1, got {n_paths}, {batch_size}")
    sizes = [min(PATH_BLOCK, n_paths - lo) for lo in range(0, n_paths, PATH_BLOCK)]
    per_batch = max(1, batch_size // PATH_BLOCK)
    blocks = list(enumerate(sizes))
    return [blocks[i : i + per_batch] for i in range(0, len(blocks), per_batch)]


def build_paths(config: EnvConfig, blocks: Sequence[tuple[int, int]], seed: int) -> EpisodeBatch:
    """The paths of the given blocks of a run with ``seed``, as one batch."""
    return concat_batches(
        [build_episodes(config, size, block_generator(seed, index)) for index, size in blocks]
    )


def hedger_config(config: EnvConfig, hedger: Hedger) -> EnvConfig:
    """The config ``hedger`` runs on: ``config`` with the hedger's allowed overrides."""
    overrides = dict(getattr(hedger, "env_overrides", {}) or {})
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
    batch_size: int = 50_000,
    seed: int = 0,
    progress: bool = True,
) -> ArenaResult:
    """Run every hedger on the same ``n_paths`` paths of ``config``.

    Args:
        config: the env config (market, book, costs, conventions).
        hedgers: the hedgers; their names must be unique.
        n_paths: number of paths.
        batch_size: paths per batch, rounded down to whole blocks of :data:`PATH_BLOCK` (memory:
            about ``n_steps * batch_size * 200`` bytes); does not change the paths.
        seed: seed of the paths (block ``k`` uses :func:`block_generator`).
        progress: show a progress bar (decisions stepped over all hedgers and batches).

    Returns:
        The records of every hedger and the paths.
    """
    names = [h.name for h in hedgers]
    if len(set(names)) != len(names):
        raise ValueError(f"hedger names must be unique, got {names}")
    configs = {h.name: hedger_config(config, h) for h in hedgers}
    batches_of_blocks = batch_blocks(n_paths, batch_size)
    parts: dict[str, list[EpisodeRecord]] = {name: [] for name in names}
    batches: list[EpisodeBatch] = []
    seconds = dict.fromkeys(names, 0.0)
    build = 0.0
    with _progress(progress, len(batches_of_blocks) * len(hedgers) * config.n_decisions) as bar:
        for blocks in batches_of_blocks:
            start = _now()
            batch = build_paths(config, blocks, seed)
            size = int(batch.initial_cash.shape[0])
            build += _now() - start
            batches.append(batch)
            for hedger in hedgers:
                start = _now()
                env = VecHedgingEnv(num_envs=size, config=configs[hedger.name], block=size)
                parts[hedger.name].append(run_hedger(env, hedger, episodes=batch,
                                                     on_step=lambda _: bar.update(1)))
                seconds[hedger.name] += _now() - start
    records = {name: concat_records(parts[name]) for name in names}
    return ArenaResult(config, records, concat_batches(batches), seed, seconds, build)


def _now() -> float:
    import time

    return time.perf_counter()


class _NoBar:
    def update(self, n: int) -> None:
        del n


class _progress:  # noqa: N801  (a context manager used like a function)
    """A tqdm bar (or nothing) as a context manager."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total = enabled, total
        self.bar: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return _NoBar()
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total, desc="arena", unit="decision", leave=False)
        return self.bar

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


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
