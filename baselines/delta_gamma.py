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
from hedgearena.envs.vector_env import VecHedgingEnv

_TINY = 1e-12  # greeks of the hedging option below this count as zero (no usable hedge)


def _neutralising_units(exposure: FloatArray, per_unit: FloatArray) -> FloatArray:
    usable = np.abs(per_unit) > _TINY
    return np.where(usable, -exposure / np.where(usable, per_unit, 1.0), 0.0)


def gamma_neutral_units(book_gamma: FloatArray, option_gamma: FloatArray) -> FloatArray:
    """Units of the hedging option that cancel the book's gamma: ``-Gamma_book / Gamma_opt``.

    0 where the option has no gamma (``|Gamma_opt| <= 1e-12``).

    Examples:
        Short 100 at-the-money calls of gamma 0.05 each, hedged with an option of gamma 0.04:

        >>> gamma_neutral_units(np.array([-5.0, 1.0]), np.array([0.04, 0.0]))
        array([125.,   0.])
    """
    return _neutralising_units(book_gamma, option_gamma)


def vega_neutral_units(book_vega: FloatArray, option_vega: FloatArray) -> FloatArray:
    """Units of the hedging option that cancel the book's vega: ``-V_book / V_opt``.

    0 where the option has no vega.

    Examples:
        >>> vega_neutral_units(np.array([-1200.0]), np.array([24.0]))
        array([50.])
    """
    return _neutralising_units(book_vega, option_vega)


def delta_neutral_hedge(
    book_delta: FloatArray, option_units: FloatArray, option_delta: FloatArray
) -> FloatArray:
    """Units of the underlying that cancel the delta of the book and the option held.

    ``h = -(Delta_book + n Delta_opt)``.

    Examples:
        The book above (delta -51) with 125 options of delta 0.52: ``-(-51 + 65) = -14``.

        >>> delta_neutral_hedge(np.array([-51.0]), np.array([125.0]), np.array([0.52]))
        array([-14.])
    """
    return -(book_delta + option_units * option_delta)


class _OptionHedger(EnvHedger):
    """A hedger that needs the env's hedging option."""

    def reset(self, env: VecHedgingEnv) -> None:
        """Check that ``env`` has a hedging option."""
        if env.config.hedge_option is None:
            raise ValueError(
                f"{type(self).__name__} hedges with a listed option, but the env has none "
                "(hedge_option=None): make it with hedge_option=True or a HedgeOption"
            )
        super().reset(env)


class DeltaGamma(_OptionHedger):
    """Gamma neutral with the hedging option, then delta neutral with the underlying.

    The option's units are :func:`gamma_neutral_units`, the underlying's
    :func:`delta_neutral_hedge`; they equal the env's model positions
    (``state["model_option"]``, ``state["model_hedge"]``), rebalanced at every decision.
    """

    name = "delta-gamma"
    uses_observations = False  # reads the state only

    def positions(self, state: State, obs: NDArray[np.float32]) -> FloatArray:
        """The delta-gamma neutral positions, ``(n_paths, 2)``."""
        option = gamma_neutral_units(state["book_gamma"], state["option_gamma"])
        hedge = delta_neutral_hedge(state["book_delta"], option, state["option_delta"])
        return stack_positions(hedge, option, 2)


class DeltaVega(_OptionHedger):
    """Vega neutral with the hedging option, then delta neutral with the underlying.

    Units of the option ``-V_book / V_opt`` (:func:`vega_neutral_units`), hedge
    ``-(Delta_book + units Delta_opt)``: protects the book against moves of the implied vol
    rather than against convexity (the book keeps the gamma left over).
    """

    name = "delta-vega"
    uses_observations = False  # reads the state only

    def positions(self, state: State, obs: NDArray[np.float32]) -> FloatArray:
        """The delta-vega neutral positions, ``(n_paths, 2)``."""
        option = vega_neutral_units(state["book_vega"], state["option_vega"])
        hedge = delta_neutral_hedge(state["book_delta"], option, state["option_delta"])
        return stack_positions(hedge, option, 2)
