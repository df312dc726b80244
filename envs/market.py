"""The exogenous market: what every market model returns and what a volatility surface is.

A market model simulates a whole batch of paths at once and returns a :class:`MarketPaths`:
spot prices, the instantaneous variance a hedger may observe, the state of the implied-volatility
surface, a liquidity multiplier and (for historical replay) the dates. Nothing in here depends on
the hedger's own trades; those are stepped by the environments' core.

Units: prices in currency, time in years, volatilities annualised (0.2 = 20%), variance annualised
(0.04 = 20% vol squared). Arrays are float64 with shape ``(n_paths, n_steps + 1)``: column ``j``
is the state at time ``times[j]``, column 0 the start of the episode.

Memory layout: the environments work time-major (a step's values of all paths side by side), so a
model may store its arrays as ``(n_steps + 1, n_paths)`` C-contiguous blocks and hand out their
transposes; :func:`time_major` then gets the time-major block back for free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, cast, runtime_checkable

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def time_major(values: FloatArray) -> FloatArray:
    """``(n_paths, n_steps + 1)`` -> C-contiguous ``(n_steps + 1, n_paths)``.

    A view (no copy) when ``values`` is the transpose of a C-contiguous time-major array, as the
    arrays of :class:`MarketPaths` built by :class:`hedgearena.envs.gbm.GBM` are; a copy otherwise.

    Examples:
        >>> paths = np.arange(6.0).reshape(3, 2)  # 3 paths, 2 points
        >>> time_major(paths).tolist()
        [[0.0, 2.0, 4.0], [1.0, 3.0, 5.0]]
        >>> block = np.zeros((2, 3))  # stored time-major, handed out as block.T
        >>> np.shares_memory(time_major(block.T), block)
        True
    """
    return np.ascontiguousarray(values.T)


@runtime_checkable
class VolSurface(Protocol):
    """An implied-volatility surface driven by a per-path state.

    The surface maps an option (strike, time to expiry) to the Black-Scholes implied volatility
    that prices it, given the current spot, the path's surface state ``level`` (what it means is
    the surface's own: the at-the-money vol for flat and smile surfaces, SABR's alpha, Heston's
    instantaneous variance) and the ``anchor`` spot at which a sticky-strike smile was struck
    (the episode's initial spot). All arguments broadcast against each other.
    """

    def implied_vol(
        self,
        spot: Any,
        strike: Any,
        tau: Any,
        level: Any,
        anchor: Any,
        rate: float,
        dividend: float,
    ) -> Any:
        """Implied vol (annualised) of the option ``(strike, tau)``; shape of the broadcast."""
        ...


@dataclass(frozen=True)
class MarketPaths:
    """A batch of simulated (or replayed) market paths.

    Attributes:
        times: ``(n_steps + 1,)`` years since the start of the episode; ``times[0] == 0``.
        spot: ``(n_paths, n_steps + 1)`` price of the underlying, currency.
        variance: ``(n_paths, n_steps + 1)`` instantaneous variance of the underlying's log
            return, annualised; what a hedger may observe about the current volatility.
        vol_state: ``(n_paths, n_steps + 1)`` the ``level`` the surface takes (see
            :class:`VolSurface`).
        surface: the implied-volatility surface that marks options on these paths.
        rate: continuously compounded risk-free rate, per year.
        dividend: continuous dividend yield of the underlying, per year.
        liquidity: ``(n_paths, n_steps + 1)`` multiplier of spreads and impact (1 = normal,
            larger = less liquid; finite and >= 0).
        dates: ``(n_paths, n_steps + 1)`` ``datetime64[D]`` calendar dates for replayed paths,
            ``None`` for simulated ones.
        fill_fraction: ``(n_paths, n_steps + 1)`` in [0, 1], the fraction of an order that
            fills at the step (a liquidity drought); None = everything fills.
        fill_cap: ``(n_paths, n_steps + 1)`` >= 0 (``inf`` allowed), multiples of the book's
            notional: an order that is larger in absolute size after the fill fraction does
            not fill at all (all or nothing past a size limit); None = no cap.

    The hedger's orders are executed against ``fill_fraction`` and ``fill_cap`` by the core (see
    :mod:`hedgearena.envs.execution`); the unfilled part stays as exposure.
    """

    times: FloatArray
    spot: FloatArray
    variance: FloatArray
    vol_state: FloatArray
    surface: VolSurface
    rate: float = 0.0
    dividend: float = 0.0
    liquidity: FloatArray = field(default=cast(FloatArray, None))  # None: ones (__post_init__)
    dates: NDArray[np.datetime64] | None = None
    fill_fraction: FloatArray | None = None
    fill_cap: FloatArray | None = None

    def __post_init__(self) -> None:
        shape = self.spot.shape
        if self.spot.ndim != 2:
            raise ValueError(f"spot must have shape (n_paths, n_steps + 1), got {shape}")
        if self.times.shape != (shape[1],):
            raise ValueError(f"times must have shape ({shape[1]},), got {self.times.shape}")
        times = self.times  # from 0, strictly up (no NaN) and finite (its last is the largest)
        if not (times[0] == 0 and (np.diff(times) > 0).all() and np.isfinite(times[-1])):
            # the book's times to expiry and the carry are read from it: a NaN, a start past 0
            # or a step back in time would price options at the wrong (or a negative) tau
            raise ValueError(
                "times must start at 0 and increase strictly (years since the episode's start), "
                f"got {times[:4].tolist()}{' ...' if times.size > 4 else ''}"
            )
        for name in ("variance", "vol_state"):
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name} must have shape {shape}, got {getattr(self, name).shape}")
        if self.liquidity is None:  # stored time-major (see the module docstring)
            object.__setattr__(self, "liquidity", np.ones(shape[::-1]).T)
        elif np.shape(self.liquidity) != shape:
            raise ValueError(f"liquidity must have shape {shape}, got {np.shape(self.liquidity)}")
        elif not (np.isfinite(self.liquidity) & (self.liquidity >= 0)).all():
            # the cost models multiply spreads and impact by it: NaN or a negative value would
            # silently give NaN or negative trading costs
            raise ValueError(
                "liquidity must be finite and >= 0 (the multiplier of spreads and impact, "
                "1 = normal, larger = less liquid), no NaN"
            )
        _check_fills(self.fill_fraction, self.fill_cap, shape)

    @property
    def n_paths(self) -> int:
        """Number of paths in the batch."""
        return int(self.spot.shape[0])

    @property
    def n_steps(self) -> int:
        """Number of time steps (the grid has ``n_steps + 1`` points)."""
        return int(self.spot.shape[1] - 1)

    def implied_vol(self, strike: Any, tau: Any, step: int | None = None) -> FloatArray:
        """Implied vol of options ``(strike, tau)`` on every path, at one step or at all steps.

        Args:
            strike: strike(s), currency; broadcast against ``(n_paths, 1)`` (or
                ``(n_paths, n_steps + 1)`` when ``step`` is None).
            tau: time(s) to expiry, years; broadcast likewise.
            step: grid column, or None for every column.

        Returns:
            Annualised implied vols, ``(n_paths, ...)``.
        """
        cols = slice(None) if step is None else slice(step, step + 1)
        vol = self.surface.implied_vol(
            self.spot[:, cols], strike, tau, self.vol_state[:, cols], self.spot[:, :1],
            self.rate, self.dividend,
        )
        return np.asarray(vol, dtype=np.float64)


def _check_fills(
    fraction: FloatArray | None, cap: FloatArray | None, shape: tuple[int, ...]
) -> None:
    """Validate the optional fill arrays: their shape and range (no NaN)."""
    for name, values in (("fill_fraction", fraction), ("fill_cap", cap)):
        if values is not None and np.shape(values) != shape:
            raise ValueError(f"{name} must have shape {shape}, got {np.shape(values)}")
    if fraction is not None and not ((fraction >= 0) & (fraction <= 1)).all():
        raise ValueError("fill_fraction must lie in [0, 1] (the fraction of an order that fills)")
    if cap is not None and not (cap >= 0).all():
        raise ValueError("fill_cap must be >= 0 (multiples of the notional; inf = no cap), no NaN")


@runtime_checkable
class MarketModel(Protocol):
    """Anything that simulates :class:`MarketPaths` for a batch at once."""

    def simulate(
        self, n_paths: int, n_steps: int, dt: float, rng: np.random.Generator
    ) -> MarketPaths:
        """Simulate ``n_paths`` paths of ``n_steps`` steps of ``dt`` years each, from ``rng``.

        The same ``rng`` state gives the same paths; the draws fill arrays of all the paths at
        once, so the first paths of a run of 16 are not those of a run of 8 (the historical
        replay's are).
        """
        ...
