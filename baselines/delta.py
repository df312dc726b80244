"""The reference hedges: no hedge, and the Black-Scholes delta hedge rebalanced on a clock.

The delta hedge holds minus the book's delta (at the market's implied vols, the env's
``state["book_delta"]``) in the underlying, and nothing in a hedging option: with one, the env's
model positions are delta-gamma neutral (``state["model_hedge"]``, ``state["model_option"]``;
see :mod:`hedgearena.envs.episode`), the hedge of
:class:`~hedgearena.baselines.delta_gamma.DeltaGamma`, and the delta hedge stays the classical
reference it is compared with. Time-based rebalancing trades to it at every ``every``-th
decision and holds in between (Boyle and Emanuel 1980, "Discretely adjusted option hedges",
J. Financial Economics 8(3)): the classical benchmark whose cost grows like
``sqrt(number of rebalances)`` while its hedging error shrinks like ``1 / sqrt(...)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from hedgearena.baselines.hedger import Hedger, State
from hedgearena.envs.checks import is_integer
from hedgearena.envs.config import EnvConfig
from hedgearena.envs.vector_env import VecHedgingEnv

FloatArray = NDArray[np.float64]


def time_based_rebalance(
    previous: FloatArray, target: FloatArray, decision: NDArray[np.int64], every: int
) -> FloatArray:
    """Trade to ``target`` at decisions whose index is a multiple of ``every``, else hold.

    ``h_k = target_k`` if ``k mod every == 0``, else ``h_{k-1}`` (Boyle and Emanuel 1980's
    discretely adjusted hedge; ``every=1`` rebalances at every decision).

    Args:
        previous: positions held before the decision, ``(n_paths,)``.
        target: the model's positions, ``(n_paths,)``.
        decision: the decision's index ``k`` on each path, ``(n_paths,)``.
        every: decisions per rebalance (>= 1).

    Returns:
        The positions to hold, ``(n_paths,)``.

    Examples:
        >>> time_based_rebalance(np.array([1.0, 1.0]), np.array([3.0, 3.0]), np.array([4, 5]), 2)
        array([3., 1.])
    """
    return np.where(decision % every == 0, target, previous)


def delta_hedge(state: State) -> FloatArray:
    """Units of the underlying that cancel the book's delta: ``-Delta_book``, ``(n_paths,)``.

    The env's model hedge when it has no hedging option (with one, the model's is delta-gamma).

    Examples:
        >>> delta_hedge({"book_delta": np.array([-51.0, 0.0])})
        array([51., -0.])
    """
    return -state["book_delta"]


def stack_positions(hedge: FloatArray, option: FloatArray, action_dim: int) -> FloatArray:
    """``(n_paths, action_dim)`` positions: the underlying, then (if traded) the hedging option.

    Examples:
        >>> stack_positions(np.array([1.0, 2.0]), np.array([3.0, 4.0]), 1)
        array([[1.],
               [2.]])
    """
    return np.stack((hedge, option)[:action_dim], axis=1).astype(np.float64, copy=False)


class EnvHedger(Hedger):
    """A hedger that keeps the env it was reset on (its config, batch and action size)."""

    _env: VecHedgingEnv | None = None

    def reset(self, env: VecHedgingEnv) -> None:
        """Remember ``env`` (subclasses read its config and batch)."""
        self._env = env

    @property
    def env(self) -> VecHedgingEnv:
        """The env of the last :meth:`reset` (RuntimeError before the first)."""
        if self._env is None:
            raise RuntimeError(f"{type(self).__name__}: call reset(env) before positions()")
        return self._env

    @property
    def config(self) -> EnvConfig:
        """The env's config."""
        return self.env.config

    def restart_references(
        self, state: State, kept: tuple[FloatArray, ...],
        references: Callable[[State], tuple[FloatArray, ...]],
    ) -> tuple[FloatArray, ...]:
        """Per-path references ``kept``, taken anew where a row starts an episode (step 0).

        ``references(state)`` gives them; ``(n_paths,)`` arrays. A vector env resets rows on
        its own (autoreset, in a user's loop without :meth:`reset`): references fixed at an
        episode's start (the adaptive band's gamma and vol, CPPI's floor) do not fit the new
        paths, whose spot and vol are others.
        """
        fresh = np.asarray(state["step"]) == 0
        if not fresh.any():
            return kept
        return tuple(np.where(fresh, new, old)
                     for new, old in zip(references(state), kept, strict=True))

    def decision_index(self, state: State) -> NDArray[np.int64]:
        """The index of the current decision on each path (market step / rebalance_every)."""
        return np.asarray(state["step"]) // self.config.rebalance_every


class NoHedge(EnvHedger):
    """Never trade: hold nothing in the underlying (nor in the hedging option).

    The lower benchmark of every comparison: zero cost, the whole risk of the book. Under
    ``initial_hedge="delta"`` the env opens every hedger at the model's position whatever it
    asks, so this one buys the model delta at the first decision and sells it at the second
    (both trades pay their cost), then holds nothing.
    """

    uses_observations = False  # reads the state only

    name = "no hedge"

    def positions(self, state: State, obs: NDArray[np.float32]) -> FloatArray:
        """Zero positions, ``(n_paths, action_dim)``."""
        return np.zeros((len(state["spot"]), self.config.action_dim))


class BlackScholesDelta(EnvHedger):
    """The Black-Scholes delta hedge, with the underlying only, on a clock.

    At decisions whose index is a multiple of ``every`` the hedger trades to
    :func:`delta_hedge` (minus the book's delta); in between it holds
    (:func:`time_based_rebalance`). ``every=1`` is the textbook daily delta hedge of the env's
    decision grid. With a hedging option it holds none (it sells any it starts with at its first
    rebalance): the delta-gamma hedge is :class:`~hedgearena.baselines.delta_gamma.DeltaGamma`.

    Args:
        every: decisions per rebalance (an integer >= 1).
    """

    uses_observations = False  # reads the state only

    def __init__(self, every: int = 1) -> None:
        if not (is_integer(every, integral_floats=True) and every >= 1):  # True is no count
            raise ValueError(f"every must be an integer >= 1 (decisions), got {every!r}")
        self.every = int(every)
        self.name = "delta" if self.every == 1 else f"delta every {self.every}"

    def positions(self, state: State, obs: NDArray[np.float32]) -> FloatArray:
        """The delta hedge at rebalancing decisions, the current positions otherwise."""
        no_option = np.zeros_like(state["hedge"])
        if self.every == 1:  # every decision is a rebalance
            hedge, option = delta_hedge(state), no_option
        else:
            decision = self.decision_index(state)
            hedge = time_based_rebalance(state["hedge"], delta_hedge(state), decision,
                                         self.every)
            option = time_based_rebalance(
                state["option_position"], no_option, decision, self.every
            )
        return stack_positions(hedge, option, self.config.action_dim)
