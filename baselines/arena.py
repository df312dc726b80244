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
from hedgearena.envs.memory import physical_memory
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
        records: hedger name -> its :class:`EpisodeRecord`: totals of every path, the
            per-decision arrays of every path (or of the ``record_paths``).
        attribution: hedger name -> term -> ``(n_paths,)`` P&L attribution
            (:func:`hedgearena.baselines.metrics.pnl_attribution`), currency per episode.
        times: ``(n_steps + 1,)`` years of the market grid.
        spot: ``(n_paths, n_steps + 1)`` the underlying's price (the kept paths' rows with
            ``record_paths``).
        model_hedge: ``(n_paths, n_steps + 1)`` the model's hedge, units (likewise).
        strike: ``(n_paths,)`` strike of the book's first initial option, or None (likewise).
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
        record_paths: the paths whose per-decision records, ``spot``, ``model_hedge`` and
            ``strike`` were kept (``run_arena(record_paths=...)``), in their columns' (rows')
            order (:meth:`column`); None: every path, in order.
        paths_run: the number of paths run (None: ``spot``'s rows, every path kept).

    Totals and attribution arrays that are 0 on every path, or the same for several hedgers
    (the book's premium and mark-to-market, the market's attribution terms), are read-only
    (one array shared, or zeros taking no memory): compute new arrays from them.
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
    record_paths: np.ndarray | None = None
    paths_run: int | None = None

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
        """Number of paths run (and scored)."""
        return int(self.spot.shape[0]) if self.paths_run is None else int(self.paths_run)

    def column(self, path: int) -> int:
        """The column of path ``path`` in the records (its row in ``spot``, ``model_hedge``).

        ``path`` itself when every path's records were kept; else its place among
        ``record_paths``.

        Raises:
            ValueError: if the path's records were not kept.
        """
        if self.record_paths is None:
            if not 0 <= path < self.n_paths:
                raise ValueError(f"path must be in [0, {self.n_paths}), got {path!r}")
            return int(path)
        where = np.flatnonzero(self.record_paths == path)
        if not where.size:
            raise ValueError(
                f"path {path!r}'s records were not kept: run_arena(record_paths=...) kept "
                f"{self.record_paths[:10].tolist()}{' ...' if self.record_paths.size > 10 else ''}"
            )
        return int(where[0])

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
    return [(k, min(PATH_BLOCK, n_paths - k * PATH_BLOCK)) for k in range(block_count(n_paths))]


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
    record_paths: Sequence[int] | None = None,
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
        record_paths: the paths whose per-decision records, spot, model hedge and strike are
            kept (``result.record_paths``, e.g. the one a path story draws): those arrays then
            have a column (row) per kept path, in the given order, instead of one per path;
            the totals, the P&L attribution and the scores still cover every path. None
            (default): every path, ``(3 to 7) x n_decisions x 8`` bytes a path and hedger
            (a million paths of 60 decisions: 1.4 GB a hedger).

    Returns:
        The records of every hedger, their P&L attribution and the paths' summaries.

    Raises:
        ValueError: naming what is wrong with the arguments (:func:`check_arena_inputs`;
            ``n_paths`` and ``record_paths`` too, and a run whose results would not fit in the
            machine's memory, :func:`check_result_memory`, before anything is built), a saved
            agent on its training paths (:func:`check_scoring_paths`), or
            the hedger and the decision where a hedger's positions are not finite real numbers
            of shape ``(paths of the block, action_dim)``. Each hedger is ``reset`` on every
            block (:class:`~hedgearena.baselines.hedger.Hedger`); an error of its own
            propagates as it is (the arena writes no files).
    """
    check_arena_inputs(config, hedgers, seed)
    check_scoring_paths(config, hedgers, seed)
    n_blocks = block_count(n_paths)
    kept = check_record_paths(record_paths, n_paths)
    names = [h.name for h in hedgers]
    unknown = sorted(set(totals_only) - set(names))
    if unknown:
        raise ValueError(f"totals_only names hedgers that are not run: {unknown}")
    check_result_memory(config, n_paths, len(names), len(names) - len(set(totals_only)),
                        n_paths if kept is None else len(kept))
    configs = {h.name: hedger_config(config, h) for h in hedgers}
    runs = _Runs(names, n_paths, config.n_decisions, set(totals_only), kept)
    observe = keep_batches or any(uses_observations(h) for h in hedgers)
    envs = _Envs()
    total = n_blocks * len(hedgers) * config.n_decisions
    with tqdm(total=total, desc="arena", unit="decision", leave=False,
              disable=not progress) as bar:
        for index, size in path_blocks(n_paths):  # listed once the run is known to fit
            envs.close()  # the last block's paths go before this one is built (the hedgers
            # keep the env they were reset with); the last block's stay, as hedgers may read them
            if n_blocks > 1:  # the bar moves while a block's paths are built
                bar.set_postfix_str(f"building block {index + 1}/{n_blocks}")
            start = _now()
            batch = build_episodes(config, size, block_generator(seed, index), observe)
            runs.build += _now() - start
            if n_blocks > 1:
                bar.set_postfix_str(f"block {index + 1}/{n_blocks}")
            runs.add_block(batch, index * PATH_BLOCK, keep_batches)
            _run_block(batch, index * PATH_BLOCK, hedgers, config, configs, runs, envs, bar)
            del batch  # the block's arrays go before the next block is built
    return runs.result(config, seed)


def _run_block(batch: EpisodeBatch, lo: int, hedgers: Sequence[Hedger], config: EnvConfig,
               configs: Mapping[str, EnvConfig], runs: _Runs, envs: _Envs, bar: Any) -> None:
    """Step every hedger through the block's paths (from path ``lo``) into ``runs``.

    The hedgers' views of the block and the market's attribution terms live in this call
    only, and :func:`run_arena` closes the envs before it builds the next block (they, and the
    hedgers reset with them, then keep no paths), so none of the block's arrays (47 MB a
    ShortCall block, about 250 MB an OptionBook one, and the repricing hedgers' memo of the
    held options' vols, about 200 MB more: see ``baselines/leland.py``) is alive while the
    next is built.
    """
    size = len(batch.initial_cash)
    market = _market_attribution(batch)  # the attribution's terms shared by the hedgers
    views = _Views(config, batch)
    for hedger in hedgers:
        start = _now()
        env = envs.get(hedger, configs[hedger.name], size)
        live = live_records(env.core, env.config.action_dim, batch.episode)
        record = run_hedger(env, hedger, episodes=views.get(configs[hedger.name]),
                            on_step=lambda _: bar.update(1),
                            out=runs.out(hedger.name, lo, size, live))
        runs.add_record(hedger.name, record, batch, market, lo)
        runs.seconds[hedger.name] += _now() - start


def block_count(n_paths: Any) -> int:
    """The number of blocks of a run of ``n_paths`` paths (checked: an integer >= 1).

    Examples:
        >>> block_count(40_000), block_count(PATH_BLOCK)
        (3, 1)
    """
    if not (is_integer(n_paths) and n_paths >= 1):
        raise ValueError(f"n_paths must be an integer >= 1, got {n_paths!r}")
    return -(-int(n_paths) // PATH_BLOCK)


def check_record_paths(record_paths: Any, n_paths: int) -> np.ndarray | None:
    """``run_arena``'s ``record_paths`` as an int64 array (None: every path), checked.

    Raises:
        ValueError: unless it is None or a non-empty sequence of distinct integers in
            ``[0, n_paths)``.
    """
    if record_paths is None:
        return None
    values = list(record_paths) if isinstance(record_paths, Sequence | np.ndarray) else None
    if not values or isinstance(record_paths, str) or not all(is_integer(v) for v in values):
        raise ValueError(
            "record_paths must be None (every path) or a non-empty list of path indices "
            f"(integers), got {record_paths!r}"
        )
    kept = np.asarray(values, dtype=np.int64)
    bad = kept[(kept < 0) | (kept >= n_paths)]
    if bad.size:
        raise ValueError(f"record_paths must be path indices in [0, n_paths={n_paths}), got "
                         f"{bad[:5].tolist()}")
    if np.unique(kept).size != kept.size:
        raise ValueError(f"record_paths must be distinct, got {record_paths!r}")
    return kept


RESULT_BYTES_PER_PATH = {"totals": 18 * 8, "attribution": 10 * 8}
"""Upper bounds of the bytes a path costs in a result: each hedger's episode totals (18 float64
numbers), each recorded hedger's P&L attribution (10 terms)."""


def _record_bytes(config: EnvConfig) -> int:
    """Bytes of one hedger's per-decision records of one path (every field, 8 bytes each)."""
    return len(RECORD_FIELDS) * 8 * config.n_decisions


def result_bytes(config: EnvConfig, n_paths: int, n_hedgers: int, n_recorded: int,
                 n_kept: int) -> int:
    """Upper bound of the bytes a run's result keeps (:class:`ArenaResult`), beside one block.

    ``n_hedgers`` hedgers keep their totals over ``n_paths`` paths, ``n_recorded`` of them (not
    totals-only) their attribution too and their per-decision records (the 7 fields) of
    ``n_kept`` paths, which also keep their spot and model hedge (``n_steps + 1`` each).
    """
    assert config.n_steps is not None
    per_path = n_hedgers * RESULT_BYTES_PER_PATH["totals"]
    per_path += n_recorded * RESULT_BYTES_PER_PATH["attribution"]
    per_kept = n_recorded * _record_bytes(config) + 2 * 8 * (config.n_steps + 1)
    return int(n_paths) * per_path + int(n_kept) * per_kept


RECORDS_HINT = "keep a few paths' (record_paths=[...]) or none (totals_only=[...])"
"""What :func:`run_arena`'s caller can change when every path's records do not fit: its
``record_paths`` and ``totals_only`` arguments (:func:`check_result_memory`'s default hint)."""


def check_result_memory(config: EnvConfig, n_paths: int, n_hedgers: int, n_recorded: int,
                        n_kept: int, setting: str = "n_paths",
                        records_hint: str = RECORDS_HINT, counted: str = "") -> None:
    """Raise ``ValueError`` before a run whose result would not fit in the machine's memory.

    The bound is :func:`result_bytes` against the physical memory (``os.sysconf``; no check
    where it is unknown), named with what to change: fewer paths (``setting`` names them:
    ``arena.paths`` for a run config) and, when every path's records are kept, what the
    caller can change about them: ``records_hint``, :data:`RECORDS_HINT` (``record_paths``,
    ``totals_only``) for :func:`run_arena`'s, the settings a report or command reads for
    theirs (``train.py stress`` cannot set ``record_paths``). ``counted`` follows the count of
    hedgers in the message (what the count holds besides the caller's hedgers).
    """
    need = result_bytes(config, n_paths, n_hedgers, n_recorded, n_kept)
    have = physical_memory()
    if have is None or need <= have:
        return
    hint = "" if n_kept < n_paths or not n_recorded else (
        f"; the per-decision records take {n_recorded * _record_bytes(config)} bytes a "
        f"path ({_record_bytes(config)} for each of the {n_recorded} recorded hedger(s)): "
        f"{records_hint}"
    )
    raise ValueError(
        f"{setting}={n_paths:,} would keep about {need / 2**30:,.1f} GiB of results for "
        f"{n_hedgers} hedger(s){counted}, more than this machine's {have / 2**30:,.1f} GiB of "
        f"memory: use fewer paths (about {max(1, int(n_paths * have / need) // 2):,} fit in "
        f"half of it){hint}"
    )


def check_scoring_paths(config: EnvConfig, hedgers: Sequence[Hedger], seed: int) -> None:
    """Let each hedger with a ``scoring_check`` (a saved agent) refuse the paths of ``seed``.

    Raises:
        ValueError: the paths, or the replayed history, are ones the agent trained on.
    """
    for hedger in hedgers:
        check = getattr(hedger, "scoring_check", None)
        if check is not None:
            check(int(seed), config)


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
    """The envs of a run, reused from block to block (each reset on new paths).

    Hedgers run one after another, so the hedgers of one config (the hedger's view,
    :func:`hedger_config`) that read observations alike share one env (each env holds about
    8 MB a 16,384-path block: the frontier's 31 members would hold 250 MB). A hedger that
    reads no observations (``uses_observations = False``) gets a state-only env. A block of
    another size (the last one) drops the envs of the previous size.
    """

    def __init__(self) -> None:
        self._envs: dict[tuple[int, bool], VecHedgingEnv] = {}
        self._size = 0

    def get(self, hedger: Hedger, config: EnvConfig, size: int) -> VecHedgingEnv:
        """The env of ``hedger`` on ``config`` (kept by the caller for the run) for ``size``."""
        if size != self._size:
            self._envs.clear()
            self._size = size
        key = (id(config), uses_observations(hedger))
        if key not in self._envs:
            self._envs[key] = VecHedgingEnv(num_envs=size, config=config, block=size,
                                            observations=key[1])
        return self._envs[key]

    def close(self) -> None:
        """Close every env before the next block: the last block's paths are released.

        (:meth:`VecHedgingEnv.close_extras`; the next block's reset opens the envs again.)
        """
        for env in self._envs.values():
            env.close()


class _PathColumns:
    """Per-path numbers of every hedger over all paths, ``(n_paths,)`` each, written in place.

    Each block writes its slice of each hedger's arrays (no per-block arrays to concatenate,
    which held every number twice at the end). An array takes memory only where it must: one
    that is 0 on every path so far has none (read-only zeros in the result), and one equal to
    the first hedger's array of the same key on every path so far shares it (read-only in the
    result): the hedger-independent totals (``initial_premium``, the book's ``option_mtm``,
    ``end_step`` without risk limits) and attribution terms (``gamma``, ``theta``, ``vega``),
    and the many zeros of a book without a hedging option, fills or limits. Hedgers run one
    after another on each block, so the first hedger's slice is written before it is compared.
    """

    def __init__(self, n_paths: int) -> None:
        self.n_paths = n_paths
        self.keys: dict[str, dict[str, None]] = {}  # name -> its keys, in first-written order
        self.own: dict[tuple[str, str], np.ndarray] = {}  # (name, key) -> its own array
        self.shares: dict[tuple[str, str], str] = {}  # (name, key) -> the owner it shares
        self.owner: dict[str, str] = {}  # key -> the hedger whose array others may share

    def write(self, name: str, values: Mapping[str, Any], lo: int) -> None:
        """Write hedger ``name``'s numbers of the paths ``lo`` to ``lo + len`` (key -> array)."""
        keys = self.keys.setdefault(name, {})
        for key, value in values.items():
            block = np.asarray(value, dtype=np.float64)
            hi = lo + len(block)
            keys.setdefault(key, None)
            where = (name, key)
            if where in self.own:
                self.own[where][lo:hi] = block
                continue
            owner = self.shares.get(where)
            if owner is not None:
                shared = self.own[owner, key]
                if np.array_equal(shared[lo:hi], block):
                    continue
                del self.shares[where]  # it differs here: its own copy from now on
                self._allocate(where, lo)[:lo] = shared[:lo]
                self.own[where][lo:hi] = block
                continue
            if not block.any():  # 0 on every path so far
                continue
            owner = self.owner.get(key)
            if lo == 0 and owner is not None and np.array_equal(self.own[owner, key][:hi], block):
                self.shares[where] = owner
                continue
            self._allocate(where, lo)[lo:hi] = block

    def _allocate(self, where: tuple[str, str], lo: int) -> np.ndarray:
        """A new own array of ``where`` (0 on the paths before ``lo``)."""
        array = self.own[where] = np.zeros(self.n_paths)
        self.owner.setdefault(where[1], where[0])
        return array

    def get(self, name: str) -> dict[str, np.ndarray]:
        """Hedger ``name``'s arrays by key (shared and zero ones read-only)."""
        out = {}
        for key in self.keys.get(name, {}):
            where = (name, key)
            if where in self.own:
                out[key] = self.own[where]
            elif where in self.shares:
                shared = self.own[self.shares[where], key]
                shared.flags.writeable = False  # one array, several hedgers
                out[key] = shared
            else:
                out[key] = zeros_view((self.n_paths,))
        return out


class _Runs:
    """What the arena gathers block by block, written into the run's arrays as it goes.

    The per-decision records and the paths' summaries are allocated once for all kept paths
    (zeros) and every block writes its columns (rows) in place: no per-block arrays to
    concatenate; the totals and the attribution likewise (:class:`_PathColumns`).
    A record field is allocated when a block first has it live
    (:func:`~hedgearena.baselines.hedger.live_records`); one never live stays read-only zeros.
    With ``kept`` paths (``record_paths``) a hedger writes a block's records into scratch
    arrays, whose kept columns are then copied.
    """

    def __init__(
        self, names: Sequence[str], n_paths: int, n_decisions: int, totals_only: set[str],
        kept: np.ndarray | None = None,
    ) -> None:
        self.n_paths = n_paths
        self.kept_paths = kept
        self.shape = (n_decisions, n_paths if kept is None else len(kept))
        self.totals_only = totals_only
        self.arrays: dict[str, list[np.ndarray | None]] = {
            name: [None] * len(RECORD_FIELDS) for name in names if name not in totals_only
        }
        # one block's scratch arrays, shared by the hedgers that write there (one at a time)
        scratch_shape = (n_decisions, min(PATH_BLOCK, n_paths))
        self.scratch = record_arrays(scratch_shape) if totals_only or kept is not None else []
        self.totals = _PathColumns(n_paths)
        self.steps: dict[str, np.ndarray] = {}
        self.attribution = _PathColumns(n_paths)
        # the paths' summaries, allocated by the first block
        self.spot, self.model_hedge = np.empty((0, 0)), np.empty((0, 0))
        self.times, self.rate = np.empty(0), 0.0  # the market's grid and rate (every block's)
        self.strike: np.ndarray | None = None
        self.start_day: np.ndarray | None = None  # dated paths: each path's first day
        self.span = 0
        self.kept: list[EpisodeBatch] = []
        self.seconds = dict.fromkeys(names, 0.0)
        self.build = 0.0

    def _kept_in(self, lo: int, hi: int) -> tuple[Any, Any]:
        """The kept columns of the paths ``lo`` to ``hi`` and their rows in the block."""
        if self.kept_paths is None:
            return slice(lo, hi), slice(0, hi - lo)
        inside = np.flatnonzero((self.kept_paths >= lo) & (self.kept_paths < hi))
        return inside, self.kept_paths[inside] - lo

    def add_block(self, batch: EpisodeBatch, lo: int, keep: bool) -> None:
        """Keep the spot, model hedge and first strike of the block's (kept) paths.

        The block's paths start at path ``lo``. All of the block is kept too if ``keep``.
        """
        spot, model_hedge = batch.market.spot, batch.episode.model_hedge
        strikes = batch.instruments.strike
        n_cols = self.shape[1]
        if not self.spot.size:  # the first block; the model hedge stays time-major
            self.spot = np.empty((n_cols, spot.shape[1]))
            self.model_hedge = np.empty((model_hedge.shape[0], n_cols))
            self.strike = np.empty(n_cols) if strikes.shape[1] else None
        hi = lo + len(spot)
        overlap = overlap_of(batch.market.dates)
        if overlap is not None:
            if self.start_day is None:
                self.start_day = np.empty(self.n_paths, dtype=np.int64)
            self.start_day[lo:hi] = overlap.start
            self.span = max(self.span, overlap.span)
        cols, rows = self._kept_in(lo, hi)
        self.spot[cols] = spot[rows]
        self.model_hedge[:, cols] = model_hedge[:, rows]
        if self.strike is not None:
            self.strike[cols] = strikes[rows, 0]
        self.times, self.rate = batch.market.times, batch.market.rate  # the same every block
        if keep:
            self.kept.append(batch)

    def out(self, name: str, lo: int, size: int, live: dict[str, bool]) -> list[np.ndarray]:
        """The arrays hedger ``name``'s record of the paths ``lo`` to ``lo + size`` goes into.

        ``live`` says which fields the block can write (the others get read-only zeros).
        The columns of the run's arrays; the shared scratch arrays (zeroed first) for a
        totals-only hedger, or when only some paths' records are kept.
        """
        arrays = self.arrays.get(name)
        if arrays is not None:
            for i, field in enumerate(RECORD_FIELDS):
                if live[field] and arrays[i] is None:
                    arrays[i] = np.zeros(self.shape, RECORD_DTYPES[field])
        if arrays is None or self.kept_paths is not None:
            parts = [values[:, :size] for values in self.scratch]
            for part, field in zip(parts, RECORD_FIELDS, strict=True):
                if live[field]:
                    part.fill(0)
            return [part if live[field] else zeros_view(part.shape, RECORD_DTYPES[field])
                    for part, field in zip(parts, RECORD_FIELDS, strict=True)]
        return [zeros_view((self.shape[0], size), RECORD_DTYPES[field]) if values is None
                else values[:, lo:lo + size] for values, field in zip(arrays, RECORD_FIELDS,
                                                                     strict=True)]

    def add_record(
        self, name: str, record: EpisodeRecord, batch: EpisodeBatch, market: dict[str, Any],
        lo: int,
    ) -> None:
        """Keep a hedger's totals and P&L attribution on a block (its paths from ``lo``).

        ``market`` holds the block's hedger-independent attribution terms
        (:func:`hedgearena.baselines.metrics.market_attribution`). With kept paths, their
        columns of the block's record are copied into the run's arrays.
        """
        from hedgearena.baselines.metrics import pnl_attribution

        self.totals.write(name, record.totals, lo)
        self.steps[name] = record.steps
        if name in self.totals_only:
            return
        self.attribution.write(name, pnl_attribution(record, batch, market), lo)
        if self.kept_paths is not None:
            cols, rows = self._kept_in(lo, lo + len(batch.initial_cash))
            for values, field in zip(self.arrays[name], RECORD_FIELDS, strict=True):
                if values is not None:
                    values[:, cols] = getattr(record, field)[:, rows]

    def result(self, config: EnvConfig, seed: int) -> ArenaResult:
        """The run's result."""
        records = {
            name: EpisodeRecord(self.totals.get(name), self.steps[name], *(
                zeros_view(self.shape, RECORD_DTYPES[field]) if values is None else values
                for values, field in zip(arrays, RECORD_FIELDS, strict=True)))
            for name, arrays in self.arrays.items()
        }
        attribution = {name: self.attribution.get(name) for name in self.arrays}
        return ArenaResult(config, records, attribution, self.times, self.spot,
                           self.model_hedge.T, self.strike, self.rate, seed,
                           self.seconds, self.build, self.kept,
                           {name: self.totals.get(name) for name in self.totals_only},
                           None if self.start_day is None else Overlap(self.start_day, self.span),
                           self.kept_paths, self.n_paths)


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
