"""Stress scenarios: named, reproducible markets (and env settings) where dynamic hedging breaks.

A :class:`Scenario` turns an env config into a stressed one: it wraps the config's market model
(or replaces it, for historical windows) and overrides some env fields. Market scenarios are
wrappers of a base :class:`~hedgearena.envs.market.MarketModel`: they simulate the base's paths
from the same generator first (so a scenario and its base share their random numbers, path by
path), then reshape them; a random event's step comes from a stream jumped ahead of the
generator's (:func:`event_generator`), so what the env draws after the market (a book's client
flow) is the base's too. Events that fall past the grid's end do not happen in it.

=====================  ==========================================================================
name                   what it does (defaults)
=====================  ==========================================================================
``base``               the config unchanged: the reference row of a stress report
``calm``               paths realise 0.6 x the vol the options are marked at (theta beats gamma)
``volatile``           paths realise 1.5 x the marked vol (gamma beats theta)
``gap``                an overnight jump of -20% between two decision steps (random step)
``flash_crash``        one day on a 5-minute grid: -9% in 15 minutes, 80% recovered in 20;
                       spreads x20, 30% fills, fills above 0.25 notional refused meanwhile
``vol_spike``          vol x4, its excess variance decaying with a 15-day half-life; the
                       implied-vol surface marks the expected average variance (2020-like)
``liquidity_drought``  10 steps of spreads and impact x5, 25% fills, fills above 0.2 notional
                       refused
``crowding``           portfolio insurers replicating a 90% put sell into their own decline
                       (permanent impact of their trades), plus the hedger's own impact
``crisis_2008``        S&P 500 windows within Sep-Dec 2008
``flash_crash_2010``   S&P 500 windows around 6 May 2010 (19 Apr - 28 May 2010)
``august_2011``        S&P 500 windows of 15 Jul - 15 Sep 2011 (the US downgrade)
``early_2018``         S&P 500 windows of Jan-Mar 2018 (Volmageddon, VIX from ``arch.data.vix``)
=====================  ==========================================================================

Some scenarios switch on execution mechanics of the core: partial fills (``fill_fraction`` and
``fill_cap`` arrays of :class:`MarketPaths`) and the hedger's own permanent impact (the
``permanent_impact`` field of :class:`~hedgearena.envs.config.EnvConfig`). Partial fills bind
the decisions' orders; under permanent impact (crowding, or a stack with it) the sale of the
positions at the end fills whole, and the hedging option stays quoted at the market's spot
(:mod:`hedgearena.envs.core`). The liquidity multipliers ("spreads x20", "x5") scale the cost
models that read liquidity (spreads, linear and square-root impact), not a plain proportional
fee: with the presets' proportional costs only the fills bite; ``train.py stress`` uses a
spread and impact cost by default (``stress.cost``) for that reason.

Examples:
    >>> from hedgearena.envs.config import make_config
    >>> config = apply_scenario(make_config("ShortCall"), "gap", step=10)
    >>> paths = config.market.simulate(2, 20, config.dt, np.random.default_rng(0))
    >>> jump = np.diff(np.log(paths.spot), axis=1)[:, 9]  # the interval (9, 10]
    >>> bool(np.all(np.abs(jump - np.log(0.8)) < 0.1))
    True
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from array_api_compat import array_namespace, is_array_api_obj
from numpy.typing import NDArray
from scipy.special import ndtr

from hedgearena.envs.checks import (
    is_integer,
    is_real,
    require_field,
    require_integer,
    require_number,
)
from hedgearena.envs.config import EnvConfig
from hedgearena.envs.gbm import GBM, price_drift
from hedgearena.envs.market import FloatArray, MarketModel, MarketPaths, VolSurface, time_major
from hedgearena.envs.vol_surface import heston_average_variance, level_is_variance

FILL_FIELDS = ("fill_fraction", "fill_cap")
"""Optional arrays of :class:`MarketPaths` for partial fills (the core's execution mechanics)."""
ENV_MECHANICS = ("permanent_impact", "execution", "risk_limits")
"""Optional fields of :class:`EnvConfig` for the hedger's impact, execution and risk limits."""
STEPS_PER_DAY = 78
"""Five-minute steps in a 6.5-hour trading day (the flash crash's intraday grid)."""


# ------------------------------------------------------------------------------ path helpers


def event_steps(
    step: int | None, low: int, high: int, n_paths: int, rng: np.random.Generator
) -> NDArray[np.int64]:
    """The step of an event on each path: ``step`` everywhere, or uniform in ``[low, high]``.

    Draws ``n_paths`` integers from ``rng`` only when ``step`` is None (``high < low`` draws
    ``low``).

    Examples:
        >>> event_steps(3, 1, 10, 2, np.random.default_rng(0)).tolist()
        [3, 3]
        >>> bool(np.all(event_steps(None, 1, 4, 100, np.random.default_rng(0)) <= 4))
        True
    """
    if step is None:
        return rng.integers(low, max(high, low) + 1, size=n_paths)
    return np.full(n_paths, int(step), dtype=np.int64)


def event_generator(rng: np.random.Generator, model: MarketModel) -> np.random.Generator:
    """The generator of ``model``'s own draws (its event steps), leaving ``rng``'s stream as is.

    A stream jumped ahead of ``rng``'s (:meth:`numpy.random.PCG64.jumped`), so that what the
    env draws from ``rng`` after the market (the book's client flow) is the same with the
    scenario as without it; stacked wrappers jump by their depth (one per wrapper down to the
    base model), so each draws its own numbers. A bit generator that cannot jump (SFC64) is
    drawn from directly.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> steps = event_steps(None, 1, 20, 3, event_generator(rng, Gap()))
        >>> float(rng.random()) == float(np.random.default_rng(0).random())  # rng untouched
        True
    """
    jumped = getattr(rng.bit_generator, "jumped", None)
    if jumped is None:
        return rng
    depth = 0
    while isinstance(model, SCENARIO_WRAPPERS):
        depth, model = depth + 1, model.base
    return np.random.Generator(jumped(max(depth, 1)))


def vol_level_factor(surface: VolSurface, factor: Any) -> Any:
    """What multiplies a surface's ``level`` to multiply its implied vols by ``factor``.

    The level of Heston's surfaces is a variance (``factor**2``, exact at short expiries; see
    :func:`~hedgearena.envs.vol_surface.level_is_variance`); the other surfaces' level is a vol
    (``factor``: exact for flat and smile surfaces, SABR's alpha to leading order).

    Examples:
        >>> from hedgearena.envs.vol_surface import FlatVol, HestonTermVol
        >>> vol_level_factor(FlatVol(), 2.0), vol_level_factor(HestonTermVol(), 2.0)
        (2.0, 4.0)
    """
    return factor * factor if level_is_variance(surface) else factor


def scale_returns(
    log_return: FloatArray, variance: FloatArray, factor: Any, drift: float, dt: float
) -> FloatArray:
    r"""Log returns whose diffusion is scaled by ``factor``, with the Itô drift corrected.

    :math:`r' = (\mu - f^2 v / 2)\Delta + f\,(r - (\mu - v/2)\Delta)`: for a geometric Brownian
    motion of variance ``v`` this is exactly the return of the same normal draw at vol
    ``f sqrt(v)`` (the price keeps its drift ``mu``); for other models an approximation that
    scales every move, jumps included.

    Args:
        log_return: ``(n_steps, n_paths)`` log returns of the intervals, time-major.
        variance: ``(n_steps, n_paths)`` the instantaneous variance at each interval's start.
        factor: the vol multiplier of each interval (broadcasts).
        drift: the price's drift ``mu``, per year.
        dt: years per step.

    Examples:
        >>> scale_returns(np.array([[0.01]]), np.array([[0.04]]), 2.0, 0.0, 0.0).tolist()
        [[0.02]]
    """
    centred = log_return - (drift - 0.5 * variance) * dt
    return (drift - 0.5 * factor * factor * variance) * dt + factor * centred


def with_fills(paths: MarketPaths, fill_fraction: FloatArray, fill_cap: FloatArray) -> MarketPaths:
    """``paths`` with partial fills (time-major arrays in), combined with the paths' own.

    Where the paths already carry fills the tighter of both holds (the smaller fraction and
    cap).
    """
    own_fraction, own_cap = paths.fill_fraction, paths.fill_cap
    if own_fraction is not None:
        fill_fraction = np.minimum(fill_fraction, time_major(own_fraction))
    if own_cap is not None:
        fill_cap = np.minimum(fill_cap, time_major(own_cap))
    return dataclasses.replace(paths, fill_fraction=fill_fraction.T, fill_cap=fill_cap.T)


def innermost(model: MarketModel) -> MarketModel:
    """The model under every scenario wrapper (``model.base`` followed down), or ``model``.

    The wrappers keep the price drift, rate and dividend of the model they wrap, so a stacked
    scenario (e.g. a gap on a calm market) reads them there.

    Examples:
        >>> innermost(Gap(RealisedVsImplied(GBM(mu=0.05)))).mu
        0.05
    """
    while isinstance(model, SCENARIO_WRAPPERS):
        model = model.base
    return model


def _drift(base: MarketModel, paths: MarketPaths) -> float:
    """The price drift of the base model (its ``mu``, or ``rate - dividend``), under wrappers."""
    return price_drift(getattr(innermost(base), "mu", None), paths.rate, paths.dividend)


def _log_returns(paths: MarketPaths) -> FloatArray:
    """``(n_steps, n_paths)`` log returns, time-major."""
    return np.diff(np.log(time_major(paths.spot)), axis=0)


def _spot_from_returns(spot0: FloatArray, log_return: FloatArray) -> FloatArray:
    """Time-major spot ``(n_steps + 1, n_paths)`` from the initial spot and the log returns."""
    log_spot = np.empty((log_return.shape[0] + 1, log_return.shape[1]))
    log_spot[0] = 0.0
    np.cumsum(log_return, axis=0, out=log_spot[1:])
    return spot0[None, :] * np.exp(log_spot)


def _rows(n_steps: int) -> NDArray[np.int64]:
    """``(n_steps + 1, 1)`` step indices, to compare with per-path event steps."""
    return np.arange(n_steps + 1)[:, None]


def _check_step(owner: str, name: str, value: int | None, low: int) -> None:
    ok = value is None or (is_integer(value) and value >= low)  # True is no step 1
    require_field(owner, name, value, ok, f"None (random) or an integer >= {low}")


def _check_count(owner: str, name: str, value: int, low: int = 1) -> None:
    ok = is_integer(value) and value >= low
    require_field(owner, name, value, ok, f"an integer >= {low}")


def _check_grid(owner: str, name: str, value: int | None, last: int, n_steps: int) -> None:
    if value is not None and value > last:
        raise ValueError(
            f"{owner}.{name} must be at most {last} on a grid of n_steps={n_steps}, got {value}"
        )


# ---------------------------------------------------------------------------- market wrappers


@dataclass(frozen=True)
class RealisedVsImplied:
    """The base's paths realise ``ratio`` times the vol at which the market marks options.

    The diffusion of every log return is scaled by ``ratio`` (:func:`scale_returns`), the
    ``variance`` the hedger may observe by ``ratio**2``; the surface's level, hence every
    option's mark and greeks, stays the base's. ``ratio < 1`` is a calm market where a short
    option's theta beats its gamma (implied above realised: the variance risk premium);
    ``ratio > 1`` a volatile one.

    Attributes:
        base: the market model whose paths are reshaped.
        ratio: realised vol / implied vol (> 0).

    Examples:
        >>> model = RealisedVsImplied(GBM(sigma=0.2), ratio=0.5)
        >>> paths = model.simulate(20_000, 2, 1 / 252, np.random.default_rng(0))
        >>> realised = np.diff(np.log(paths.spot)).std() * np.sqrt(252)
        >>> round(float(realised), 2), float(paths.vol_state[0, 0])
        (0.1, 0.2)
    """

    base: MarketModel = field(default_factory=GBM)
    ratio: float = 0.6

    def __post_init__(self) -> None:
        require_number(type(self).__name__, "ratio", self.ratio, gt=0.0)

    def simulate(
        self, n_paths: int, n_steps: int, dt: float, rng: np.random.Generator
    ) -> MarketPaths:
        """The base's paths with their realised vol scaled by ``ratio``."""
        paths = self.base.simulate(n_paths, n_steps, dt, rng)
        variance = time_major(paths.variance)
        returns = scale_returns(_log_returns(paths), variance[:-1], self.ratio,
                                _drift(self.base, paths), dt)
        spot = _spot_from_returns(time_major(paths.spot)[0], returns)
        return dataclasses.replace(paths, spot=spot.T, variance=(variance * self.ratio**2).T)


@dataclass(frozen=True)
class Gap:
    """An overnight gap: the price jumps by ``size`` between two decision steps.

    The log return of the interval ``(step - 1, step]`` gets ``log(1 + size)`` on top of the
    base's, so every later price is multiplied by ``1 + size`` and nobody trades across the
    jump. From ``step`` on, the vol (the realised diffusion and the surface's level, hence
    implied vols) is multiplied by ``vol_multiplier``.

    Attributes:
        base: the market model whose paths are reshaped.
        size: relative size of the jump (> -1; -0.2 = a 20% fall).
        step: the first step after the gap (>= 1), or None for a uniform step in
            ``[1, n_steps]`` on each path.
        vol_multiplier: vol after the gap / vol before (> 0).

    Examples:
        >>> paths = Gap(GBM(sigma=1e-9), size=-0.2, step=1).simulate(
        ...     1, 2, 1 / 252, np.random.default_rng(0))
        >>> np.round(paths.spot, 6).tolist()
        [[100.0, 80.0, 80.0]]
    """

    base: MarketModel = field(default_factory=GBM)
    size: float = -0.2
    step: int | None = None
    vol_multiplier: float = 1.0

    def __post_init__(self) -> None:
        name = type(self).__name__
        require_number(name, "size", self.size, gt=-1.0)
        _check_step(name, "step", self.step, 1)
        require_number(name, "vol_multiplier", self.vol_multiplier, gt=0.0)

    def check_grid(self, n_steps: int) -> None:
        """Raise if a fixed ``step`` lies past a grid of ``n_steps`` steps."""
        _check_grid(type(self).__name__, "step", self.step, n_steps, n_steps)

    def simulate(
        self, n_paths: int, n_steps: int, dt: float, rng: np.random.Generator
    ) -> MarketPaths:
        """The base's paths with the gap (its step drawn by :func:`event_generator`)."""
        paths = self.base.simulate(n_paths, n_steps, dt, rng)
        steps = event_steps(self.step, 1, n_steps, n_paths, event_generator(rng, self))
        after = _rows(n_steps) >= steps[None, :]  # (n_steps + 1, n_paths): past the gap
        returns = _log_returns(paths)
        variance, vol_state = time_major(paths.variance), time_major(paths.vol_state)
        m = self.vol_multiplier
        if m != 1.0:
            factor = np.where(after[:-1], m, 1.0)  # intervals (s, s + 1] with s >= step
            returns = scale_returns(returns, variance[:-1], factor, _drift(self.base, paths), dt)
            variance = np.where(after, variance * m * m, variance)
            vol_state = np.where(after, vol_state * vol_level_factor(paths.surface, m), vol_state)
        returns = returns + math.log1p(self.size) * (_rows(n_steps - 1) + 1 == steps[None, :])
        spot = _spot_from_returns(time_major(paths.spot)[0], returns)
        return dataclasses.replace(paths, spot=spot.T, variance=np.ascontiguousarray(variance).T,
                                   vol_state=np.ascontiguousarray(vol_state).T)


@dataclass(frozen=True)
class SpikeTermVol:
    r"""The surface after a vol spike whose excess variance decays at the rate ``kappa``.

    The path's ``level`` is the spot vol :math:`\sigma_0 m`; with the variance ratio
    :math:`m^2(t) = 1 + (m^2 - 1)e^{-\kappa t}` expected ahead, an option of expiry ``tau`` is
    marked by the ``base`` surface at the level
    :math:`\sigma_0\sqrt{1 + (m^2 - 1)(1 - e^{-\kappa\tau})/(\kappa\tau)}`, the root of the
    average variance to its expiry (:func:`heston_average_variance` with ``theta = 1``): the
    exact Black-Scholes implied vol for a deterministic variance path. ``level == base_level``
    marks as the base surface does.

    Attributes:
        base: the surface before the spike (its level a vol: flat, smile, SABR).
        base_level: :math:`\sigma_0`, the base's level (> 0).
        kappa: decay rate of the excess variance, per year (> 0).

    Examples:
        >>> from hedgearena.envs.vol_surface import FlatVol
        >>> surface = SpikeTermVol(FlatVol(), base_level=0.2, kappa=1e-12)
        >>> float(np.round(surface.implied_vol(100.0, 100.0, 0.5, 0.8, 100.0, 0.0, 0.0), 9))
        0.8
    """

    base: VolSurface
    base_level: float
    kappa: float

    def __post_init__(self) -> None:
        require_number(type(self).__name__, "base_level", self.base_level, gt=0.0)
        require_number(type(self).__name__, "kappa", self.kappa, gt=0.0)

    def implied_vol(
        self, spot: Any, strike: Any, tau: Any, level: Any, anchor: Any, rate: float,
        dividend: float,
    ) -> Any:
        """Implied vol of ``(strike, tau)`` after the spike (see the class docstring)."""
        arrays = [v for v in (spot, strike, tau, level) if is_array_api_obj(v)]
        xp = array_namespace(*arrays) if arrays else np
        ratio = (level / self.base_level) ** 2
        average = heston_average_variance(ratio, tau, self.kappa, 1.0)
        effective = self.base_level * xp.sqrt(xp.clip(average, min=0.0))
        return self.base.implied_vol(spot, strike, tau, effective, anchor, rate, dividend)


@dataclass(frozen=True)
class VolSpike:
    r"""Volatility jumps ``multiplier``-fold at ``step`` and decays back (2020-like).

    From the spike on, the variance is :math:`\sigma_0^2 (1 + (M^2 - 1) e^{-\kappa (t -
    t_s)})`, ``kappa = ln 2 / half_life``: each log return's diffusion is scaled by the root of
    the interval's average variance ratio (:func:`scale_returns`), the ``variance`` by the ratio,
    and the surface becomes :class:`SpikeTermVol`, so options are marked at the average variance
    expected to their expiry (the market does not see the spike coming, and then knows its
    decay). The base's level must be one constant vol (GBM, Merton: a flat or smile surface).

    Attributes:
        base: the market model whose paths are reshaped.
        multiplier: vol at the spike / vol before (> 0; 4 = 20% to 80%).
        step: the spike's step (>= 0), or None for a uniform step in ``[0, n_steps - 1]``.
        half_life: half-life of the excess variance, years (> 0; 15 trading days by default).

    Examples:
        >>> paths = VolSpike(GBM(sigma=0.2), multiplier=4.0, step=1).simulate(
        ...     1, 3, 1 / 252, np.random.default_rng(0))
        >>> np.round(np.sqrt(paths.variance[0]), 3).tolist()
        [0.2, 0.8, 0.783, 0.766]
    """

    base: MarketModel = field(default_factory=GBM)
    multiplier: float = 4.0
    step: int | None = None
    half_life: float = 15.0 / 252.0

    def __post_init__(self) -> None:
        name = type(self).__name__
        require_number(name, "multiplier", self.multiplier, gt=0.0)
        _check_step(name, "step", self.step, 0)
        require_number(name, "half_life", self.half_life, gt=0.0)

    @property
    def kappa(self) -> float:
        """Decay rate of the excess variance, per year."""
        return math.log(2.0) / self.half_life

    def check_grid(self, n_steps: int) -> None:
        """Raise if a fixed ``step`` lies past a grid of ``n_steps`` steps."""
        _check_grid(type(self).__name__, "step", self.step, n_steps - 1, n_steps)

    def simulate(
        self, n_paths: int, n_steps: int, dt: float, rng: np.random.Generator
    ) -> MarketPaths:
        """The base's paths with the spike (its step drawn by :func:`event_generator`)."""
        paths = self.base.simulate(n_paths, n_steps, dt, rng)
        vol_state = time_major(paths.vol_state)
        level = float(vol_state[0, 0])
        if level_is_variance(paths.surface) or not np.all(vol_state == level):
            raise ValueError(
                "VolSpike.base must have one constant vol level (GBM, or Merton with its own, "
                f"a flat or a smile surface), got {type(self.base).__name__} with a varying level"
            )
        steps = event_steps(self.step, 0, n_steps - 1, n_paths, event_generator(rng, self))
        age = (_rows(n_steps) - steps[None, :]) * dt  # years since the spike (< 0 before it)
        excess = self.multiplier**2 - 1.0
        ratio = 1.0 + np.where(age >= 0, excess * np.exp(-self.kappa * np.maximum(age, 0.0)), 0.0)
        # the interval (s, s + 1]'s average ratio: the exact integral of the exponential decay
        decay = -math.expm1(-self.kappa * dt) / (self.kappa * dt)
        interval = np.where(age[:-1] >= 0, 1.0 + (ratio[:-1] - 1.0) * decay, 1.0)
        variance = time_major(paths.variance)
        returns = scale_returns(_log_returns(paths), variance[:-1], np.sqrt(interval),
                                _drift(self.base, paths), dt)
        spot = _spot_from_returns(time_major(paths.spot)[0], returns)
        surface = SpikeTermVol(paths.surface, level, self.kappa)
        return dataclasses.replace(
            paths, spot=spot.T, variance=(variance * ratio).T,
            vol_state=(level * np.sqrt(ratio)).T, surface=surface,
        )


@dataclass(frozen=True)
class StressWindow:
    """Where a liquidity stress lasts, and how illiquid the market is meanwhile.

    Attributes:
        liquidity: multiplier of spreads and impact during the stress (>= 1).
        fill_fraction: fraction of an order that fills during the stress, in ``(0, 1]``.
        fill_cap: an order whose fill (the order times ``fill_fraction``) would exceed this
            multiple of the book's notional fills nothing during the stress (>= 0; ``inf`` =
            no cap): all or nothing past a size limit, as the core executes it.
    """

    liquidity: float = 5.0
    fill_fraction: float = 0.25
    fill_cap: float = 0.2

    def __post_init__(self) -> None:
        require_number(type(self).__name__, "liquidity", self.liquidity, ge=1.0)
        require_number(type(self).__name__, "fill_fraction", self.fill_fraction, gt=0.0, le=1.0)
        ok = is_real(self.fill_cap) and self.fill_cap >= 0  # numpy numbers too; inf allowed
        require_field(type(self).__name__, "fill_cap", self.fill_cap, ok, "a number >= 0 (or inf)")

    def arrays(self, stressed: NDArray[np.bool_]) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Liquidity, fill fraction and fill cap: the window's where ``stressed``, else 1, 1, inf.

        Examples:
            >>> window = StressWindow(5.0, 0.25, 0.2)
            >>> liquidity, fraction, cap = window.arrays(np.array([False, True]))
            >>> liquidity.tolist(), fraction.tolist(), cap.tolist()
            ([1.0, 5.0], [1.0, 0.25], [inf, 0.2])
        """
        return (
            np.where(stressed, self.liquidity, 1.0),
            np.where(stressed, self.fill_fraction, 1.0),
            np.where(stressed, float(self.fill_cap), np.inf),
        )

    def apply(self, paths: MarketPaths, stressed: NDArray[np.bool_]) -> MarketPaths:
        """``paths`` with the stress where ``stressed`` (time-major ``(n_steps + 1, n_paths)``)."""
        liquidity, fraction, cap = self.arrays(stressed)
        liquidity = liquidity * time_major(paths.liquidity)
        return with_fills(dataclasses.replace(paths, liquidity=liquidity.T), fraction, cap)


@dataclass(frozen=True)
class LiquidityDrought:
    """Liquidity dries up for ``length`` steps: spreads and impact multiplied, partial fills.

    During steps ``start .. start + length - 1`` the ``liquidity`` multiplier of the paths (which
    the spread and impact cost models scale with) is multiplied by ``window.liquidity``, only
    ``window.fill_fraction`` of an order fills and a fill above ``window.fill_cap`` notionals
    is refused (the unfilled part stays as exposure). Prices are the base's.

    Attributes:
        base: the market model whose paths are reshaped.
        window: the stress's liquidity and fills.
        start: the first stressed step (>= 0), or None for a uniform step such that the stress
            fits in the episode (a stress longer than the episode lasts all of it).
        length: stressed steps (>= 1).

    Examples:
        >>> model = LiquidityDrought(GBM(), start=1, length=2)
        >>> model.simulate(1, 4, 1 / 252, np.random.default_rng(0)).liquidity.tolist()
        [[1.0, 5.0, 5.0, 1.0, 1.0]]
    """

    base: MarketModel = field(default_factory=GBM)
    window: StressWindow = field(default_factory=StressWindow)
    start: int | None = None
    length: int = 10

    def __post_init__(self) -> None:
        _check_step(type(self).__name__, "start", self.start, 0)
        _check_count(type(self).__name__, "length", self.length)

    def check_grid(self, n_steps: int) -> None:
        """Raise if a fixed ``start`` lies past a grid of ``n_steps`` steps."""
        _check_grid(type(self).__name__, "start", self.start, n_steps, n_steps)

    def stressed(self, n_paths: int, n_steps: int, rng: np.random.Generator) -> NDArray[np.bool_]:
        """``(n_steps + 1, n_paths)`` True at the stressed steps (a random start: own stream)."""
        starts = event_steps(self.start, 0, n_steps + 1 - self.length, n_paths,
                             event_generator(rng, self))
        rows = _rows(n_steps)
        return (rows >= starts[None, :]) & (rows < starts[None, :] + self.length)

    def simulate(
        self, n_paths: int, n_steps: int, dt: float, rng: np.random.Generator
    ) -> MarketPaths:
        """The base's paths with the drought (its start drawn by :func:`event_generator`)."""
        paths = self.base.simulate(n_paths, n_steps, dt, rng)
        return self.window.apply(paths, self.stressed(n_paths, n_steps, rng))


@dataclass(frozen=True)
class FlashCrash:
    """A fast drop and recovery within a day, spreads blowing out and fills drying up meanwhile.

    Meant for an intraday grid (see :func:`intraday_grid`: 78 five-minute steps a day). From
    ``start`` the log price falls linearly to ``log(1 + drop)`` over ``crash_steps`` steps, then
    climbs back a fraction ``recovery`` of the way over ``recovery_steps`` steps, on top of the
    base's diffusion. The surface's level is multiplied by ``1 + (vol_multiplier - 1) d``, ``d``
    the fraction of the drop in place; during the ``crash_steps + recovery_steps`` steps after
    ``start`` the ``window`` holds (spreads and impact up, partial fills).

    Attributes:
        base: the market model whose paths are reshaped.
        drop: relative size of the fall at the bottom (> -1; -0.09 as on 6 May 2010).
        crash_steps: steps of the fall (>= 1).
        recovery_steps: steps of the recovery (>= 1).
        recovery: fraction of the fall recovered, in ``[0, 1]``.
        start: the step the crash starts from (>= 0), or None for a uniform step such that the
            crash and its recovery fit in the episode.
        vol_multiplier: implied vol at the bottom / before (> 0).
        window: spreads, impact and fills during the crash.

    Examples:
        >>> model = FlashCrash(GBM(sigma=1e-9), drop=-0.1, crash_steps=2, recovery_steps=2,
        ...                    recovery=1.0, start=0)
        >>> np.round(model.simulate(1, 5, 1e-4, np.random.default_rng(0)).spot, 2).tolist()
        [[100.0, 94.87, 90.0, 94.87, 100.0, 100.0]]
    """

    base: MarketModel = field(default_factory=GBM)
    drop: float = -0.09
    crash_steps: int = 3
    recovery_steps: int = 4
    recovery: float = 0.8
    start: int | None = None
    vol_multiplier: float = 2.0
    window: StressWindow = field(
        default_factory=lambda: StressWindow(liquidity=20.0, fill_fraction=0.3, fill_cap=0.25)
    )

    def __post_init__(self) -> None:
        name = type(self).__name__
        require_number(name, "drop", self.drop, gt=-1.0)
        _check_count(name, "crash_steps", self.crash_steps)
        _check_count(name, "recovery_steps", self.recovery_steps)
        require_number(name, "recovery", self.recovery, ge=0.0, le=1.0)
        _check_step(name, "start", self.start, 0)
        require_number(name, "vol_multiplier", self.vol_multiplier, gt=0.0)

    @property
    def span(self) -> int:
        """Steps from the start of the crash to the end of the recovery."""
        return self.crash_steps + self.recovery_steps

    def check_grid(self, n_steps: int) -> None:
        """Raise if the crash and its recovery, or a fixed ``start``, do not fit ``n_steps``."""
        if self.span > n_steps:
            raise ValueError(
                f"FlashCrash.crash_steps + recovery_steps ({self.span}) must be at most the "
                f"grid's n_steps ({n_steps}): the crash and its recovery must fit in the episode"
            )
        _check_grid(type(self).__name__, "start", self.start, n_steps - self.span, n_steps)

    def depth(self, since: FloatArray) -> FloatArray:
        """Fraction of the drop in place ``since`` steps after the start (0 before it).

        Examples:
            >>> FlashCrash(crash_steps=2, recovery_steps=2, recovery=0.5).depth(
            ...     np.arange(-1, 6)).tolist()
            [0.0, 0.0, 0.5, 1.0, 0.75, 0.5, 0.5]
        """
        falling = np.clip(since / self.crash_steps, 0.0, 1.0)
        climbing = np.clip((since - self.crash_steps) / self.recovery_steps, 0.0, 1.0)
        return falling - self.recovery * climbing

    def simulate(
        self, n_paths: int, n_steps: int, dt: float, rng: np.random.Generator
    ) -> MarketPaths:
        """The base's paths with the crash (its start drawn by :func:`event_generator`)."""
        paths = self.base.simulate(n_paths, n_steps, dt, rng)
        starts = event_steps(self.start, 0, n_steps - self.span, n_paths,
                             event_generator(rng, self))
        since = (_rows(n_steps) - starts[None, :]).astype(np.float64)
        depth = self.depth(since)
        spot = time_major(paths.spot) * np.exp(math.log1p(self.drop) * depth)
        factor = vol_level_factor(paths.surface, 1.0 + (self.vol_multiplier - 1.0) * depth)
        crashed = dataclasses.replace(
            paths, spot=spot.T, vol_state=(time_major(paths.vol_state) * factor).T
        )
        return self.window.apply(crashed, (since > 0) & (since <= self.span))


@dataclass(frozen=True)
class Crowding:
    r"""Portfolio insurers sell into their own decline: their trades move the price for good.

    A crowd insures a portfolio of the index with a synthetic put (Leland and Rubinstein's
    portfolio insurance): struck at ``floor`` times the initial spot, expiring ``horizon`` years
    after the start, it holds the fraction :math:`w = e^{-q\tau} N(d_1)` of its money in the
    index (the delta of stock plus put) and trades to it at every step. Each step the base's log
    return moves the price first; the crowd then trades to its new weight, and its trade, a
    fraction ``crowd_size`` of the market's depth per unit of weight, moves the log price by
    ``depth_impact`` per unit of depth, permanently:

    .. math::

        \ln S_{t+1} = \ln S_t + r_t + \lambda (w_{t+1} - w_t), \qquad
        \lambda = \text{crowd\_size} \cdot \text{depth\_impact}

    with :math:`w_{t+1}` the weight at the price after :math:`r_t` (before the crowd's own
    impact: an explicit scheme, see :meth:`feedback`). Falling prices make the
    crowd sell, which makes prices fall further (Brady Commission 1988 on October 1987): over an
    episode the crowd moves the log price by exactly :math:`\lambda (w_T - w_0)` against the
    same path without it. Vols and marks use the paths' surface (the crowd's delta too, unless
    ``crowd_vol`` is given).

    Attributes:
        base: the market model whose paths are reshaped.
        floor: the insured floor as a fraction of the initial spot (> 0).
        horizon: the insurance's expiry, years (> 0; past it the crowd's weight stays put).
        crowd_size: the crowd's money as a fraction of the market's depth (>= 0).
        depth_impact: permanent log-price move of trading the whole depth (>= 0).
        crowd_vol: the vol of the crowd's delta, or None for the paths' at-the-money implied vol.

    Examples:
        >>> model = Crowding(GBM(sigma=0.2), crowd_size=0.0)  # no crowd: the base's paths
        >>> crowd = model.simulate(2, 3, 1 / 252, np.random.default_rng(0)).spot
        >>> base = GBM(sigma=0.2).simulate(2, 3, 1 / 252, np.random.default_rng(0)).spot
        >>> bool(np.allclose(crowd, base))
        True
    """

    base: MarketModel = field(default_factory=GBM)
    floor: float = 0.9
    horizon: float = 0.25
    crowd_size: float = 1.0
    depth_impact: float = 0.2
    crowd_vol: float | None = None

    def __post_init__(self) -> None:
        name = type(self).__name__
        require_number(name, "floor", self.floor, gt=0.0)
        require_number(name, "horizon", self.horizon, gt=0.0)
        require_number(name, "crowd_size", self.crowd_size, ge=0.0)
        require_number(name, "depth_impact", self.depth_impact, ge=0.0)
        if self.crowd_vol is not None:
            require_number(name, "crowd_vol", self.crowd_vol, gt=0.0)

    @property
    def impact(self) -> float:
        """``lambda``: log-price move per unit of the crowd's weight traded."""
        return self.crowd_size * self.depth_impact

    def weight(self, paths: MarketPaths, spot: FloatArray, step: int, dt: float) -> FloatArray:
        """The crowd's weight in the index at ``spot`` (``(n_paths,)``) and market step ``step``."""
        tau = max(self.horizon - step * dt, dt)
        strike = self.floor * paths.spot[:, 0]
        if self.crowd_vol is None:
            forward = spot * math.exp((paths.rate - paths.dividend) * tau)
            vol = np.asarray(paths.surface.implied_vol(
                spot, forward, tau, paths.vol_state[:, step], paths.spot[:, 0], paths.rate,
                paths.dividend,
            ))
        else:
            vol = np.full_like(spot, self.crowd_vol)
        root = np.maximum(vol, 1e-8) * math.sqrt(tau)
        carry = (paths.rate - paths.dividend + 0.5 * vol * vol) * tau
        d1 = (np.log(spot / strike) + carry) / root
        return math.exp(-paths.dividend * tau) * ndtr(d1)

    def feedback(self, paths: MarketPaths, dt: float) -> tuple[FloatArray, FloatArray]:
        """The crowd's path on the base's returns: time-major log spot and weights.

        Returns:
            ``(log_spot, weight)``, ``(n_steps + 1, n_paths)`` each: the impacted log price and
            the crowd's weight held after its trade at each step (after the step of the
            horizon the insurance has expired: the weight stays put, the crowd trades no more).
        """
        returns = _log_returns(paths)
        n_steps, n_paths = returns.shape
        expiry = math.floor(self.horizon / dt + 1e-9)  # the horizon's step
        log_spot, weight = np.empty((n_steps + 1, n_paths)), np.empty((n_steps + 1, n_paths))
        log_spot[0] = np.log(paths.spot[:, 0])
        weight[0] = self.weight(paths, paths.spot[:, 0], 0, dt)
        for s in range(n_steps):
            moved = log_spot[s] + returns[s]
            weight[s + 1] = (self.weight(paths, np.exp(moved), s + 1, dt) if s + 1 <= expiry
                             else weight[s])
            log_spot[s + 1] = moved + self.impact * (weight[s + 1] - weight[s])
        return log_spot, weight

    def simulate(
        self, n_paths: int, n_steps: int, dt: float, rng: np.random.Generator
    ) -> MarketPaths:
        """The base's paths with the crowd's permanent impact (no extra random numbers)."""
        paths = self.base.simulate(n_paths, n_steps, dt, rng)
        if self.impact == 0.0:
            return paths
        log_spot, _ = self.feedback(paths, dt)
        return dataclasses.replace(paths, spot=np.exp(log_spot).T)


SCENARIO_WRAPPERS = (RealisedVsImplied, Gap, VolSpike, LiquidityDrought, FlashCrash, Crowding)
"""The market wrappers of this module (each reshapes the paths of its ``base``)."""


# --------------------------------------------------------------------------- historical windows

HISTORICAL_WINDOWS: dict[str, tuple[str, str, str]] = {
    "crisis_2008": ("2008-09-01", "2008-12-31", "Lehman, Sep-Dec 2008"),
    "flash_crash_2010": ("2010-04-19", "2010-05-28", "around the flash crash of 6 May 2010"),
    "august_2011": ("2011-07-15", "2011-09-15", "the US downgrade, Aug 2011"),
    "early_2018": ("2018-01-01", "2018-03-31", "Volmageddon, Jan-Mar 2018"),
}
"""name -> (first date, last date, what happened) of the S&P 500 windows."""


def sp500_window(base: MarketModel, start: str, end: str) -> MarketModel:
    """The S&P 500 replay (:meth:`HistoricalReplay.sp500`) of the rows dated in ``[start, end]``.

    Episodes are windows of consecutive rows drawn within the range. The rate and dividend are
    the base model's (under any scenario wrappers, :func:`innermost`; 0 if it has none); the
    surface is the base's if it is a replay, else flat.
    Implied vols are VIX/100 from 2014 on and the GARCH estimate before (see the replay).
    """
    from hedgearena.envs.historical import HistoricalReplay

    model = innermost(base)  # a stressed config's market: its rate under the wrappers
    surface = model.surface if isinstance(model, HistoricalReplay) else None
    replay = HistoricalReplay.sp500(
        rate=float(getattr(model, "rate", 0.0)), dividend=float(getattr(model, "dividend", 0.0)),
        surface=surface,
    )
    return replay.between(start, end)


# ---------------------------------------------------------------------------------- scenarios


def intraday_grid(
    config: EnvConfig, steps_per_day: int = STEPS_PER_DAY, days: int = 1, rebalance_every: int = 1
) -> dict[str, Any]:
    """Env overrides that put ``config`` on an intraday grid for ``days`` days.

    The step becomes ``1 / (days_per_year * steps_per_day)`` years; the book's expiries (initial
    options, client trades, the hedging option) and the realised-vol half-life keep their
    calendar length (multiplied by ``steps_per_day``); the episode lasts ``days`` days (at most
    the config's own length); decisions come every ``rebalance_every`` steps.

    Examples:
        >>> from hedgearena.envs.config import make_config
        >>> grid = intraday_grid(make_config("ShortCall"))
        >>> grid["n_steps"], grid["days_per_year"], grid["book"].options[0].expiry_steps
        (78, 19500.0, 1560)
    """
    assert config.n_steps is not None
    _check_count("intraday_grid", "steps_per_day", steps_per_day)
    _check_count("intraday_grid", "days", days)
    from hedgearena.envs.historical import HistoricalReplay  # late: the replay reads arch's data

    if isinstance(config.market, HistoricalReplay):
        raise ValueError("an intraday grid needs a simulated market: the historical replay has "
                         "daily closes only (its steps would be days on a minutes' clock)")
    book = config.book
    options = tuple(dataclasses.replace(o, expiry_steps=o.expiry_steps * steps_per_day)
                    for o in book.options)
    flow = book.client_flow
    if flow is not None:
        flow = dataclasses.replace(
            flow, expiry_steps=tuple(e * steps_per_day for e in flow.expiry_steps)
        )
    overrides: dict[str, Any] = {
        "days_per_year": config.days_per_year * steps_per_day,
        "n_steps": min(days, config.n_steps) * steps_per_day,
        "book": dataclasses.replace(book, options=options, client_flow=flow),
        "rebalance_every": rebalance_every,
        "realised_vol_halflife": config.realised_vol_halflife * steps_per_day,
    }
    if config.hedge_option is not None:
        overrides["hedge_option"] = dataclasses.replace(
            config.hedge_option, expiry_steps=config.hedge_option.expiry_steps * steps_per_day
        )
    return overrides


EnvOverrides = Mapping[str, Any] | Callable[[EnvConfig], Mapping[str, Any]]
"""Env overrides: a mapping, or a function of the base config that returns one."""


@dataclass(frozen=True)
class Scenario:
    """A named stress: how the market is built from the config's, and which env fields change.

    Attributes:
        name: the scenario's key in :data:`SCENARIOS` and in reports.
        description: one line for reports.
        market: the scenario's market from the base config's market (a wrapper class with its
            parameters bound, or a function that ignores the base).
        env_overrides: :class:`EnvConfig` fields to change (or a function of the base config
            returning them), e.g. ``{"permanent_impact": 0.01}``.
        parameters: the parameters the scenario was built with (for reports).
        mechanics: the core's execution mechanics it switches on (:data:`FILL_FIELDS`,
            :data:`ENV_MECHANICS`).
        kind: the name of the :data:`BUILDERS` entry that built it (``make_scenario(kind,
            **parameters)`` builds it again); by default ``name``. A scenario built with a
            ``label`` (:func:`make_scenario`) is named by the label, its kind stays the builder's.
    """

    name: str
    description: str
    market: Callable[[MarketModel], MarketModel]
    env_overrides: EnvOverrides = field(default_factory=dict)
    parameters: Mapping[str, Any] = field(default_factory=dict)
    mechanics: tuple[str, ...] = ()
    kind: str = ""

    def __post_init__(self) -> None:
        for key in ("name", "kind"):
            value = getattr(self, key)
            ok = isinstance(value, str) and (bool(value.strip()) or key == "kind")
            require_field("Scenario", key, value, ok, "a non-empty string")
        if not self.kind:
            object.__setattr__(self, "kind", self.name)

    def overrides(self, config: EnvConfig) -> dict[str, Any]:
        """The env overrides for ``config``."""
        overrides = self.env_overrides
        return dict(overrides(config) if callable(overrides) else overrides)

    def apply(self, config: EnvConfig) -> EnvConfig:
        """``config`` under this scenario (see :func:`apply_scenario`)."""
        overrides = self.overrides(config)
        fields = {f.name for f in dataclasses.fields(EnvConfig)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ValueError(f"scenario {self.name!r}: unknown env field(s) {unknown}")
        stressed = config.replace(market=self.market(config.market), **overrides)
        _check_market_grid(stressed)
        return stressed


def _check_market_grid(config: EnvConfig) -> None:
    """Raise early when a scenario's fixed event step (or a replay's rows) misses the grid."""
    assert config.n_steps is not None
    market = config.market
    check = getattr(market, "check_grid", None)
    if check is not None:
        check(config.n_steps)
    if hasattr(market, "window_starts"):
        market.window_starts(config.n_steps)
    base = getattr(market, "base", None)
    if base is not None:
        _check_market_grid(dataclasses.replace(config, market=base))


def _wrapper(cls: type, **parameters: Any) -> Callable[[MarketModel], MarketModel]:
    """``cls`` with its parameters bound (validated now, on a GBM probe)."""
    cls(GBM(), **parameters)
    return functools.partial(cls, **parameters)


def _unchanged(base: MarketModel) -> MarketModel:
    return base


def base_scenario() -> Scenario:
    """The config unchanged: the reference row of a stress report."""
    return Scenario("base", "the config's own market, no stress", _unchanged)


def calm(ratio: float = 0.6) -> Scenario:
    """Paths realise ``ratio`` (< 1) times the marked implied vol (:class:`RealisedVsImplied`)."""
    market = _wrapper(RealisedVsImplied, ratio=ratio)  # checks the parameters first
    require_number("calm", "ratio", ratio, lt=1.0)  # (> 1 is the volatile scenario)
    return Scenario(
        "calm", f"realised vol {ratio:g} x implied: theta beats gamma", market,
        parameters={"ratio": ratio},
    )


def volatile(ratio: float = 1.5) -> Scenario:
    """Paths realise ``ratio`` (> 1) times the marked implied vol (:class:`RealisedVsImplied`)."""
    market = _wrapper(RealisedVsImplied, ratio=ratio)
    require_number("volatile", "ratio", ratio, gt=1.0)  # (< 1 is the calm scenario)
    return Scenario(
        "volatile", f"realised vol {ratio:g} x implied: gamma beats theta", market,
        parameters={"ratio": ratio},
    )


def gap(size: float = -0.2, step: int | None = None, vol_multiplier: float = 1.0) -> Scenario:
    """An overnight gap of ``size`` between two decision steps (:class:`Gap`)."""
    parameters = {"size": size, "step": step, "vol_multiplier": vol_multiplier}
    market = _wrapper(Gap, **parameters)
    where = "a random step" if step is None else f"step {step}"
    return Scenario("gap", f"overnight gap of {size:+.0%} at {where}, no trading across it",
                    market, parameters=parameters)


def flash_crash(
    drop: float = -0.09,
    crash_steps: int = 3,
    recovery_steps: int = 4,
    recovery: float = 0.8,
    start: int | None = None,
    vol_multiplier: float = 2.0,
    liquidity: float = 20.0,
    fill_fraction: float = 0.3,
    fill_cap: float = 0.25,
    steps_per_day: int = STEPS_PER_DAY,
    days: int = 1,
    rebalance_every: int = 1,
) -> Scenario:
    """A flash crash on an intraday grid (:class:`FlashCrash`, :func:`intraday_grid`)."""
    parameters = dict(locals())  # the arguments only (the loop below would add its names)
    window = StressWindow(liquidity, fill_fraction, fill_cap)
    market = _wrapper(FlashCrash, drop=drop, crash_steps=crash_steps,
                      recovery_steps=recovery_steps, recovery=recovery, start=start,
                      vol_multiplier=vol_multiplier, window=window)
    for name, value in (("steps_per_day", steps_per_day), ("days", days),
                        ("rebalance_every", rebalance_every)):
        require_integer("flash_crash", name, value, ge=1)  # named when built, not when applied
    grid = functools.partial(intraday_grid, steps_per_day=steps_per_day, days=days,
                             rebalance_every=rebalance_every)
    minutes = 390 / steps_per_day  # a 6.5-hour day (not rounded: 1,000 steps are no 0-min grid)
    description = (f"{drop:+.0%} in {crash_steps * minutes:.3g} min, {recovery:.0%} back in "
                   f"{recovery_steps * minutes:.3g} min, in a {days}-day episode on a "
                   f"{minutes:.3g}-min grid; spreads x{liquidity:g}, {fill_fraction:.0%} fills "
                   "meanwhile")
    return Scenario("flash_crash", description, market, grid, parameters, FILL_FIELDS)


def vol_spike(multiplier: float = 4.0, step: int | None = None,
              half_life: float = 15.0 / 252.0) -> Scenario:
    """Vol jumping ``multiplier``-fold and decaying, the surface with it (:class:`VolSpike`)."""
    parameters = {"multiplier": multiplier, "step": step, "half_life": half_life}
    market = _wrapper(VolSpike, **parameters)
    return Scenario(
        "vol_spike", f"vol x{multiplier:g} decaying with a {half_life * 252:.0f}-day half-life",
        market, parameters=parameters,
    )


def liquidity_drought(
    liquidity: float = 5.0, fill_fraction: float = 0.25, fill_cap: float = 0.2,
    start: int | None = None, length: int = 10,
) -> Scenario:
    """Spreads and impact multiplied and partial fills for a while (:class:`LiquidityDrought`)."""
    window = StressWindow(liquidity, fill_fraction, fill_cap)
    parameters = {"liquidity": liquidity, "fill_fraction": fill_fraction, "fill_cap": fill_cap,
                  "start": start, "length": length}
    return Scenario(
        "liquidity_drought",
        f"{length} steps of spreads x{liquidity:g}, {fill_fraction:.0%} fills, fills above "
        f"{fill_cap:g} notional refused",
        _wrapper(LiquidityDrought, window=window, start=start, length=length),
        parameters=parameters, mechanics=FILL_FIELDS,
    )


def crowding(
    floor: float = 0.9, horizon: float = 0.25, crowd_size: float = 1.0,
    depth_impact: float = 0.2, crowd_vol: float | None = None, permanent_impact: float = 0.01,
) -> Scenario:
    """Portfolio insurers' feedback selling (:class:`Crowding`) and the hedger's own impact.

    ``permanent_impact`` is the env's: the hedger's trades move the spot permanently by that
    fraction per notional traded.
    """
    market = _wrapper(Crowding, floor=floor, horizon=horizon, crowd_size=crowd_size,
                      depth_impact=depth_impact, crowd_vol=crowd_vol)
    require_number("crowding", "permanent_impact", permanent_impact, ge=0.0)
    parameters = {"floor": floor, "horizon": horizon, "crowd_size": crowd_size,
                  "depth_impact": depth_impact, "crowd_vol": crowd_vol,
                  "permanent_impact": permanent_impact}
    return Scenario(
        "crowding",
        f"portfolio insurers ({crowd_size:g} x depth, {floor:.0%} floor) sell into the decline; "
        f"the hedger's impact {permanent_impact:g} per notional",
        market, {"permanent_impact": permanent_impact}, parameters, ("permanent_impact",),
    )


def _historical(name: str) -> Callable[..., Scenario]:
    default_start, default_end, story = HISTORICAL_WINDOWS[name]

    def build(start: str = default_start, end: str = default_end) -> Scenario:
        from hedgearena.envs.historical import _day

        days = [None if value is None else _day(f"{name}.{key}", value)  # None: unbounded
                for key, value in (("start", start), ("end", end))]  # 20080901 is no date
        if None not in days and days[0] > days[1]:  # else skipped as "inapplicable" to any env
            raise ValueError(f"{name}.start ({start}) must be on or before {name}.end ({end})")
        return Scenario(
            name, f"S&P 500 {start}..{end}: {story}",
            functools.partial(sp500_window, start=start, end=end),
            parameters={"start": start, "end": end},
        )

    build.__doc__ = f"S&P 500 windows within [start, end] ({story})."
    return build


BUILDERS: dict[str, Callable[..., Scenario]] = {
    "base": base_scenario,
    "calm": calm,
    "volatile": volatile,
    "gap": gap,
    "flash_crash": flash_crash,
    "vol_spike": vol_spike,
    "liquidity_drought": liquidity_drought,
    "crowding": crowding,
    **{name: _historical(name) for name in HISTORICAL_WINDOWS},
}
"""name -> the function that builds the scenario from its parameters."""

SCENARIOS: dict[str, Scenario] = {name: build() for name, build in BUILDERS.items()}
"""Every scenario with its default parameters."""


def make_scenario(name: str, /, **overrides: Any) -> Scenario:
    """The scenario ``name`` with some parameters changed, and optionally a ``label``.

    ``label`` (a non-empty string) names the scenario in reports instead of ``name``, so that
    one scenario can run at several magnitudes side by side (a gap ladder:
    ``make_scenario("gap", size=-0.1, label="gap -10%")``; in a run config
    ``{gap: {size: -0.1, label: gap -10%}}``). ``name`` is positional only, so that a parameter
    called ``name`` is refused as unknown like any other (not as a TypeError).

    Raises:
        ValueError: an unknown name or parameter (the allowed ones are listed), or a bad value.

    Examples:
        >>> make_scenario("gap", size=-0.3).parameters["size"]
        -0.3
        >>> ladder = make_scenario("gap", size=-0.1, label="gap -10%")
        >>> ladder.name, ladder.kind
        ('gap -10%', 'gap')
        >>> make_scenario("gap", sise=-0.3)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: scenario 'gap' has no parameter(s) ['sise']; allowed: ['size', 'step', ...]
    """
    if name not in BUILDERS:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(BUILDERS)}")
    label = overrides.pop("label", None)
    allowed = list(inspect.signature(BUILDERS[name]).parameters)
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise ValueError(f"scenario {name!r} has no parameter(s) {unknown}; allowed: "
                         f"{[*allowed, 'label']}")
    scenario = BUILDERS[name](**overrides) if overrides else SCENARIOS[name]
    if label is None:
        return scenario
    ok = isinstance(label, str) and bool(label.strip())
    require_field(f"scenario {name!r}", "label", label, ok, "a non-empty string")
    return dataclasses.replace(scenario, name=label, kind=name)


def apply_scenario(
    config: EnvConfig, scenario: str | Scenario, /, **overrides: Any
) -> EnvConfig:
    """``config`` under a scenario: its market wrapped (or replaced) and its env fields changed.

    Args:
        config: the base env config.
        scenario: a :class:`Scenario` or a name of :data:`SCENARIOS`.
        **overrides: parameters of the named scenario (see :func:`make_scenario`).

    Returns:
        The stressed config (validated; a fixed event step is checked against its grid).
    """
    if isinstance(scenario, str):
        scenario = make_scenario(scenario, **overrides)
    elif overrides:
        raise ValueError("parameters are given with a scenario's name, not with a Scenario")
    return scenario.apply(config)
