"""Hedging with a listed option as well: delta-gamma and delta-vega neutral positions.

First the hedging option cancels the book's second-order exposure (gamma, or vega), then the
underlying cancels the delta of the book and the option together (Hull, *Options, Futures and
Other Derivatives*, "Gamma" and "Vega" sections of the Greek letters chapter). Both need an env
with a hedging option (``hedge_option=True`` or a :class:`~hedgearena.envs.book.HedgeOption`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from hedgearena.baselines.delta import EnvHedger, FloatArray, stack_positions
from hedgearena.baselines.hedger import State
from hedgearena.envs.episode import delta_neutral_hedge, hedge_option_usable
from hedgearena.envs.vector_env import VecHedgingEnv


def vega_neutral_units(
    book_vega: FloatArray, option_vega: FloatArray, usable: NDArray[np.bool_],
    cap: float = np.inf,
) -> FloatArray:
    """Units of the hedging option that cancel the book's vega: ``-V_book / V_opt``.

    0 where the option is not ``usable`` (too far out of the money: the env's test,
    :func:`~hedgearena.envs.episode.hedge_option_usable`, the one its gamma-neutral position
    uses); clipped to ``+-cap`` units, the env's cap on the model's position in the option
    (``option_position_limit`` notionals): cancelling a book's vega with an option of almost
    none would ask for absurd positions (10^11 units on Heston paths whose vol collapses).

    Examples:
        >>> vega_neutral_units(np.array([-1200.0, 5.0, -1e3]), np.array([24.0, 0.0, 0.5]),
        ...                    np.array([True, False, True]), cap=1000.0)
        array([  50.,    0., 1000.])
    """
    units = np.where(usable, -book_vega / np.where(usable, option_vega, 1.0), 0.0)
    return np.clip(units, -cap, cap)


class _OptionHedger(EnvHedger):
    """A hedger that needs the env's hedging option."""

    cap: float = np.inf  # the env's cap on a position in the hedging option, units

    def reset(self, env: VecHedgingEnv) -> None:
        """Check that ``env`` has a hedging option; note its cap on positions in it."""
        if env.config.hedge_option is None:
            raise ValueError(
                f"{type(self).__name__} hedges with a listed option, but the env has none "
                "(hedge_option=None): make it with hedge_option=True or a HedgeOption (from the "
                "command line: --set env.kwargs.hedge_option=true)"
            )
        self.cap = env.config.option_position_limit * env.config.book.notional
        super().reset(env)


class DeltaGamma(_OptionHedger):
    """Gamma neutral with the hedging option, then delta neutral with the underlying.

    The env's model positions (``state["model_option"]``, ``state["model_hedge"]``), rebalanced
    at every decision: ``-Gamma_book / Gamma_opt`` units of the option within ``+-cap``, none
    while it is too far out of the money to carry gamma (see
    :mod:`hedgearena.envs.episode`), and the underlying
    :func:`~hedgearena.envs.episode.delta_neutral_hedge`.
    """

    name = "delta-gamma"
    uses_observations = False  # reads the state only

    def positions(self, state: State, obs: NDArray[np.float32]) -> FloatArray:
        """The delta-gamma neutral positions, ``(n_paths, 2)``."""
        return stack_positions(state["model_hedge"], state["model_option"], 2)


class DeltaVega(_OptionHedger):
    """Vega neutral with the hedging option, then delta neutral with the underlying.

    Units of the option ``-V_book / V_opt`` within the env's cap (:func:`vega_neutral_units`),
    hedge ``-(Delta_book + units Delta_opt)``: protects the book against moves of the implied
    vol rather than against convexity (the book keeps the gamma left over).
    """

    name = "delta-vega"
    uses_observations = False  # reads the state only

    def positions(self, state: State, obs: NDArray[np.float32]) -> FloatArray:
        """The delta-vega neutral positions, ``(n_paths, 2)``."""
        config = self.config
        assert config.hedge_option is not None  # (checked at reset)
        assert config.n_steps is not None
        # the option's time to expiry: its expiry less the time gone, T - tau
        tau = (config.hedge_option.expiry_steps - config.n_steps) * config.dt + state["tau"]
        usable = hedge_option_usable(state["option_vega"], state["spot"], tau)
        option = vega_neutral_units(state["book_vega"], state["option_vega"], usable, self.cap)
        hedge = delta_neutral_hedge(state["book_delta"], option, state["option_delta"])
        return stack_positions(hedge, option, 2)
