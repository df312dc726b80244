"""Episodes on demand: blocks of episodes built at once, handed out one path (or n paths) at a time.

Building one episode costs about as much as building a hundred (it is all vectorised numpy), so
the single env would spend most of its time in ``reset`` if it built one path per episode. An
:class:`EpisodeSource` builds ``block`` paths at a time from its generator and serves them in
order; the single env takes one per reset and the vector env ``num_envs`` per reset, so a vector
env of one path sees exactly the episodes of a single env with the same seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hedgearena.envs.book import BookPaths
from hedgearena.envs.checks import is_integer
from hedgearena.envs.config import EnvConfig
from hedgearena.envs.core import Episode
from hedgearena.envs.episode import EpisodeBatch, Features, build_episodes, market_rows


def check_block(block: Any) -> int:
    """``block`` (paths built at a time) as an int, or ``ValueError`` naming it.

    An integer >= 1 (an integral float such as ``256.0`` too, as ``num_envs``).

    Examples:
        >>> check_block(2.5)
        Traceback (most recent call last):
        ...
        ValueError: block must be an integer >= 1 (paths built at a time), got 2.5
    """
    if not is_integer(block, integral_floats=True):
        raise ValueError(f"block must be an integer >= 1 (paths built at a time), got {block!r}")
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block!r}")
    return int(block)


class EpisodeSource:
    """Serves episodes of ``config`` from ``rng`` in blocks of ``block`` paths.

    Args:
        config: the env's configuration.
        rng: the generator all episodes come from.
        block: paths built per call to :func:`build_episodes` (at least the request's size).
        observations: build the batches' observations (``build_episodes``'s keyword).
    """

    def __init__(
        self, config: EnvConfig, rng: np.random.Generator, block: int = 256,
        observations: bool = True,
    ) -> None:
        self.config, self.rng, self.block = config, rng, check_block(block)
        self.observations = observations
        self._batch: EpisodeBatch | None = None
        self._next = 0

    def take(self, n: int) -> EpisodeBatch:
        """The next ``n`` episodes (a new block is built when the current one runs out)."""
        return slice_batch(*self.next_rows(n))

    def next_rows(self, n: int) -> tuple[EpisodeBatch, slice]:
        """The block that holds the next ``n`` episodes, and their rows in it (no copies).

        A new block is built when the current one runs out.
        """
        if self._batch is None or self._next + n > self._batch.initial_cash.shape[0]:
            self._batch = build_episodes(
                self.config, max(n, self.block), self.rng, self.observations
            )
            self._next = 0
        rows = slice(self._next, self._next + n)
        self._next += n
        return self._batch, rows


def _episode_rows(value: Any, rows: slice | np.ndarray) -> Any:
    """Rows of one field of a time-major :class:`Episode`."""
    ndim = np.ndim(value)
    return value[:, rows] if ndim == 2 else value[rows] if ndim == 1 else value


def slice_batch(batch: EpisodeBatch, rows: slice | np.ndarray) -> EpisodeBatch:
    """The paths ``rows`` of a batch (views where numpy allows)."""
    episode = batch.episode
    fields = {name: _episode_rows(value, rows) for name, value in episode._asdict().items()}
    return EpisodeBatch(
        episode=Episode(**fields),
        features=Features(*(a[rows] for a in batch.features)),
        observations=batch.observations[:, rows],
        initial_cash=batch.initial_cash[rows],
        market=market_rows(batch.market, rows),
        instruments=BookPaths(*(a[rows] for a in batch.instruments)),
    )


def copy_batch(batch: EpisodeBatch) -> EpisodeBatch:
    """A deep copy of a batch's arrays (the surface and scalars are shared).

    Every array is its own afterwards (the fields that shared one array of zeros no longer do),
    so the copy may be written: an env that re-marks its paths (permanent impact) works on one.
    """
    copy = lambda value: value.copy() if isinstance(value, np.ndarray) else value  # noqa: E731
    return EpisodeBatch(
        episode=type(batch.episode)(*(copy(v) for v in batch.episode)),
        features=Features(*(copy(v) for v in batch.features)),
        observations=batch.observations.copy(),
        initial_cash=batch.initial_cash.copy(),
        market=market_rows(batch.market, np.arange(batch.initial_cash.shape[0])),
        instruments=type(batch.instruments)(*(copy(v) for v in batch.instruments)),
    )
