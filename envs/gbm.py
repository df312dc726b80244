"""Geometric Brownian motion (Black-Scholes 1973), simulated exactly on the time grid."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hedgearena.envs.checks import is_integer, require_field, require_number, require_surface
from hedgearena.envs.market import FloatArray, MarketPaths, VolSurface
from hedgearena.envs.vol_surface import FlatVol


def time_grid(
    owner: str, n_paths: int, n_steps: int, dt: float, rng: np.random.Generator
) -> FloatArray:
    """Validate a simulation request and return its grid ``times = dt * arange(n_steps + 1)``.

    Args:
        owner: the model's name, for error messages.
        n_paths: number of paths (>= 1).
        n_steps: number of steps (>= 1).
        dt: step length, years (> 0).
        rng: the generator the paths are drawn from (a ``numpy.random.Generator``).

    Returns:
        ``(n_steps + 1,)`` times in years.

    Examples:
        >>> time_grid("GBM", 2, 4, 0.25, np.random.default_rng(0))
        array([0.  , 0.25, 0.5 , 0.75, 1.  ])
    """
    for name, value in (("n_paths", n_paths), ("n_steps", n_steps)):
        ok = is_integer(value) and value >= 1
        require_field(owner + ".simulate", name, value, ok, "an integer >= 1")
    require_number(owner + ".simulate", "dt", dt, gt=0.0)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"{owner}.simulate: rng must be a numpy.random.Generator "
            f"(e.g. numpy.random.default_rng(seed)), got {type(rng).__name__}"
        )
    return dt * np.arange(n_steps + 1, dtype=np.float64)


def validate_market(
    owner: str, spot0: float, rate: float, dividend: float, mu: float | None
) -> None:
    """Check the fields every model shares: ``spot0 > 0``, finite ``rate``, ``dividend``, ``mu``."""
    require_number(owner, "spot0", spot0, gt=0.0)
    require_number(owner, "rate", rate)
    require_number(owner, "dividend", dividend)
    if mu is not None:
        require_number(owner, "mu", mu)


def price_drift(mu: float | None, rate: float, dividend: float) -> float:
    """Drift of the price, per year: ``mu``, or the risk-neutral ``rate - dividend`` if None."""
    return rate - dividend if mu is None else mu


def log_normal_walk(
    out: FloatArray, scale: float, drift: float, spot0: float, rng: np.random.Generator
) -> FloatArray:
    """Spots of time-major log-normal paths, written into ``out`` row by row; returns ``out``.

    ``out`` is ``(n_steps + 1, n_paths)`` C-contiguous; row 0 becomes ``spot0`` and row ``s``
    ``spot0 * exp(x_1 + ... + x_s)`` with ``x_s = scale * Z_s + drift`` (``scale`` and ``drift``
    per step, in log units), the normals ``Z`` drawn from ``rng`` in row order.

    The same numbers as drawing the whole block at once and taking ``np.cumsum(axis=0)``,
    ``exp`` and the product by ``spot0`` over it (the same draws and elementwise operations in
    the same order), but a row's draws, sum and exponential are done while it is in cache, and
    the sum runs along contiguous rows (numpy's accumulation along axis 0 walks the columns).
    """
    out[0] = 0.0
    for s in range(1, out.shape[0]):
        row = out[s]
        rng.standard_normal(out=row)
        row *= scale
        row += drift
        if s > 1:
            row += out[s - 1]  # the log spot: the previous row is not exponentiated yet
        _exp_row(out[s - 1], spot0)
    _exp_row(out[-1], spot0)
    return out


def _exp_row(log_spot: FloatArray, spot0: float) -> None:
    """``spot0 * exp(log_spot)`` in place."""
    np.exp(log_spot, out=log_spot)
    log_spot *= spot0


@dataclass(frozen=True)
class GBM:
    r"""Geometric Brownian motion :math:`dS_t = \mu S_t\,dt + \sigma S_t\,dW_t`.

    Steps are exact log-normal draws,
    :math:`S_{t+\Delta} = S_t \exp((\mu - \sigma^2/2)\Delta + \sigma\sqrt{\Delta} Z)`, so
    :math:`E[S_T] = S_0 e^{\mu T}` and
    :math:`\mathrm{Var}[S_T] = S_0^2 e^{2\mu T}(e^{\sigma^2 T} - 1)` for any step size.

    ``mu`` is the expected growth rate of the price under the real-world measure (the dividend
    yield is paid out on top: the total expected return of holding the stock is ``mu +
    dividend``); ``mu=None`` simulates under the risk-neutral measure, ``mu = rate - dividend``.
    ``variance`` is :math:`\sigma^2` and ``vol_state`` is :math:`\sigma` on every path and step
    (the level of the default :class:`FlatVol`).

    Attributes:
        mu: drift of the price, per year (None: ``rate - dividend``).
        sigma: volatility, per sqrt(year) (> 0).
        spot0: initial spot, currency (> 0).
        rate: risk-free rate, continuously compounded, per year.
        dividend: continuous dividend yield, per year.
        surface: the implied-vol surface that marks options (level = ``sigma``).

    Examples:
        >>> paths = GBM(sigma=0.2).simulate(3, 5, 1 / 250, np.random.default_rng(0))
        >>> paths.spot.shape, float(paths.spot[0, 0]), float(paths.vol_state[0, 0])
        ((3, 6), 100.0, 0.2)
    """

    mu: float | None = 0.0
    sigma: float = 0.2
    spot0: float = 100.0
    rate: float = 0.0
    dividend: float = 0.0
    surface: VolSurface = field(default_factory=FlatVol)

    def __post_init__(self) -> None:
        validate_market(type(self).__name__, self.spot0, self.rate, self.dividend, self.mu)
        require_surface(type(self).__name__, self.surface, variance_level=False)
        require_number(type(self).__name__, "sigma", self.sigma, gt=0.0)

    def simulate(
        self, n_paths: int, n_steps: int, dt: float, rng: np.random.Generator
    ) -> MarketPaths:
        """Simulate ``n_paths`` paths of ``n_steps`` exact steps of ``dt`` years from ``rng``.

        Shape:
            Every array of the result is ``(n_paths, n_steps + 1)``: the transpose of a
            C-contiguous time-major block (see :func:`hedgearena.envs.market.time_major`).
        """
        times = time_grid(type(self).__name__, n_paths, n_steps, dt, rng)
        sigma = float(self.sigma)  # a numpy float32 sigma would make float32 arrays below
        drift = (price_drift(self.mu, self.rate, self.dividend) - 0.5 * sigma**2) * dt
        # Time-major storage (see hedgearena.envs.market): row s holds every path at step s, and
        # the normals are drawn in that order. The arrays handed out are the transposes.
        spot = log_normal_walk(
            np.empty((n_steps + 1, n_paths)), sigma * math.sqrt(dt), drift, self.spot0, rng
        )
        return MarketPaths(
            times=times,
            spot=spot.T,
            variance=np.full((n_steps + 1, n_paths), sigma * sigma).T,
            vol_state=np.full((n_steps + 1, n_paths), sigma).T,
            surface=self.surface,
            rate=self.rate,
            dividend=self.dividend,
        )
