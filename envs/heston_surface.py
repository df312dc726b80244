r"""Heston's own implied-volatility surface: the semi-closed form on a grid, interpolated.

Options on Heston paths are marked at the Black-Scholes vol that reproduces Heston's price for
the path's current variance ``v`` (:class:`HestonSurface`). Heston's price has no closed form;
it is an integral of the characteristic function (Heston 1993), here in the single-integral form
of Lewis (2001) with the "little Heston trap" branch of Albrecher, Mayer, Schoutens and Tistaert
(2007), which stays continuous at long expiries (:func:`heston_call_price`). Integrating for every
option of every path at every step would be too slow, so the surface tabulates the implied vol
once per parameter set on a grid of expiry, variance and standardised log-moneyness and
interpolates it, which costs about 40 array passes per option.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np
from numpy.typing import NDArray

from hedgearena.envs.checks import require_integer, require_number
from hedgearena.envs.vol_surface import _arrays, heston_average_variance
from hedgearena.envs.vol_table import (
    VolGrid,
    cell,
    cell_slope,
    clip_array,
    finish_table,
    flat_table,
    multilinear,
    multilinear_slopes,
    otm_implied_vols,
    refined,
    safe_power,
)

FloatArray = NDArray[np.float64]

_QUADRATURE_WIDTH = 40.0
"""Least upper end ``U`` of the pricing integral in units of ``1 / (sigma sqrt(tau))``,
``sigma`` the root of the expected average variance (enough for a near-normal log price)."""
_MAX_WIDENING = 12
"""``U`` doubles up to this many times until the integrand's tail bound is below
:data:`_TAIL_BOUND` (|rho| near 1 or a large vol of variance: the characteristic function
decays like ``exp(-c sqrt(u))``, far slower than a normal's)."""
_TAIL_BOUND = 1e-13
"""Bound on ``|phi(U - i/2)| / U``, the size of the integral's tail beyond ``U``."""
_HEAD = (8.0, 64)
"""The integral's first panel ``[0, min(8, U / 4)]`` and its Gauss-Legendre nodes: it resolves
the peak of ``1 / (u^2 + 1/4)`` at ``u = 0``, whatever the scale of the rest."""
_TAIL = (48, 16)
"""Geometric panels on the rest ``[8, U]`` (each wider by the same factor: ``1 / u^2`` varies by
the same ratio across each; 48 more for every doubling of ``U``, whose far part oscillates fast)
and Gauss-Legendre nodes in each."""


def heston_characteristic(
    u: Any, tau: Any, variance: Any, kappa: float, theta: float, xi: float, rho: float
) -> Any:
    r"""Characteristic function ``E[exp(i u ln(S_T / F))]`` of Heston's log price over ``tau``.

    .. math::

        d = \sqrt{(\rho\xi iu - \kappa)^2 + \xi^2(iu + u^2)},\quad
        g = \frac{\kappa - \rho\xi iu - d}{\kappa - \rho\xi iu + d},\\
        \ln\varphi = \frac{\kappa\theta}{\xi^2}\Big[(\kappa - \rho\xi iu - d)\tau
            - 2\ln\frac{1 - g e^{-d\tau}}{1 - g}\Big]
            + \frac{v}{\xi^2}(\kappa - \rho\xi iu - d)\frac{1 - e^{-d\tau}}{1 - g e^{-d\tau}}

    (Heston 1993 in the form of Albrecher et al. 2007, "The little Heston trap"), relative to the
    forward ``F``: ``phi(-i) = 1``. It is evaluated with ``beta - d = -xi^2 (iu + u^2) / (beta +
    d)`` and an accurate complex ``log1p``, which keep every digit as ``xi`` tends to 0 (the
    Black-Scholes limit).

    Args:
        u: complex arguments (broadcast with ``tau`` and ``variance``).
        tau: horizon, years (> 0).
        variance: instantaneous variance ``v`` at the start, per year (>= 0).
        kappa: mean-reversion speed of the variance, per year (> 0).
        theta: long-run variance, per year (> 0).
        xi: vol of variance, per sqrt(year) (> 0).
        rho: spot-variance correlation, in [-1, 1].

    Examples:
        >>> phi = heston_characteristic(np.array([-1j, 0.0, 1.0]), 0.5, 0.04, 2.0, 0.04, 0.5, -0.7)
        >>> np.round(phi, 7)  # 1 at -i (the martingale) and at 0
        array([1.       +0.j       , 1.       +0.j       , 0.9894106-0.0091762j])
    """
    iu = 1j * np.asarray(u, dtype=np.complex128)
    beta = kappa - rho * xi * iu
    d = np.sqrt(beta * beta + xi * xi * (iu - iu * iu))
    # beta - d = -xi^2 (iu + u^2) / (beta + d): no cancellation when xi is small
    drift = -(iu - iu * iu) / (beta + d)  # (beta - d) / xi^2
    g = xi * xi * drift / (beta + d)
    e = np.exp(-d * np.asarray(tau))
    log_ratio = _log1p(-g * e) - _log1p(-g)
    c = kappa * theta * (drift * tau - 2.0 * log_ratio / (xi * xi))
    dv = drift * (1.0 - e) / (1.0 - g * e)
    return np.exp(c + dv * np.asarray(variance))


def _log1p(z: Any) -> Any:
    """``log(1 + z)`` of complex ``z``, accurate for small ``|z|`` (numpy's loses the digits).

    Examples:
        >>> z = np.array(1e-12 + 1e-13j)
        >>> bool(abs(_log1p(z) - (z - z * z / 2)) < 1e-27)  # the series; log(1 + z) is off 1e-17
        True
    """
    x, y = np.real(z), np.imag(z)
    return 0.5 * np.log1p(x * (2.0 + x) + y * y) + 1j * np.arctan2(y, 1.0 + x)


def heston_call_price(
    log_strike: Any, tau: Any, variance: Any, kappa: float, theta: float, xi: float, rho: float
) -> FloatArray:
    r"""Undiscounted Heston call on a forward of 1: ``E[(S_T / F - K / F)^+]``.

    Lewis (2001), with :math:`k = \ln(K/F)` and :math:`\varphi` of :func:`heston_characteristic`:

    .. math::

        c = 1 - \frac{\sqrt{K/F}}{\pi}\int_0^\infty
            \mathrm{Re}\big[e^{-iuk}\varphi(u - i/2)\big]\frac{du}{u^2 + 1/4}

    integrated by composite Gauss-Legendre on ``u`` up to ``U``: at least :data:`_QUADRATURE_WIDTH`
    over ``sigma sqrt(tau)``, ``sigma^2`` the expected average variance to ``tau``, doubled until
    the tail beyond it is negligible (:data:`_TAIL_BOUND`); a short panel at ``u = 0``, where
    ``1 / (u^2 + 1/4)`` peaks, then geometrically growing panels. A call of spot
    ``S`` and strike ``K`` is worth ``S e^{-q tau} c(ln(K/F))``, ``F = S e^{(r - q) tau}``.
    Within 5 standard deviations of log-moneyness (``|k| <= 5 sigma sqrt(tau)``, where the vol
    table reads it) it agrees with QuantLib's AnalyticHestonEngine to 1e-8 of the forward
    (tests/envs/test_mutants_markets.py); far outside, the quadrature's error dominates prices
    that are almost 0 (2 days, ``v = 0.0004``, ``k = 0.74``: 9.7e-6 of
    the forward where QuantLib gives 9e-19).

    Args:
        log_strike: ``(..., n)`` log-moneyness ``ln(K/F)``, the last axis the strikes of one
            ``(tau, variance)``.
        tau: ``(...)`` horizons, years (> 0).
        variance: ``(...)`` instantaneous variances (>= 0).
        kappa: mean-reversion speed (see :func:`heston_characteristic`).
        theta: long-run variance.
        xi: vol of variance.
        rho: spot-variance correlation.

    Returns:
        ``(..., n)`` prices in units of the forward.

    Examples:
        >>> # QuantLib's AnalyticHestonEngine: 3.4052840 for S = K = 100, 73 days of 365, r = q = 0
        >>> p = heston_call_price(np.array([0.0]), 73 / 365, 0.04, 2.0, 0.04, 0.5, -0.7)
        >>> round(100 * float(p[0]), 7)
        3.405284
    """
    k = np.asarray(log_strike, dtype=np.float64)
    t = np.asarray(tau, dtype=np.float64)[..., None]
    v = np.asarray(variance, dtype=np.float64)[..., None]
    sigma = np.sqrt(np.maximum(heston_average_variance(v, t, kappa, theta), 1e-12))
    upper = _QUADRATURE_WIDTH / (sigma * np.sqrt(t))  # (..., 1)
    doublings = _doublings(upper, t, v, (kappa, theta, xi, rho))
    u, weights = _quadrature(upper * 2.0**doublings, doublings)  # (..., m)
    phi = heston_characteristic(u - 0.5j, t, v, kappa, theta, xi, rho)
    kernel = phi * weights / (u * u + 0.25)
    waves = np.exp(-1j * k[..., None] * u[..., None, :])  # (..., n, m)
    integral = np.real(np.einsum("...m,...nm->...n", kernel, waves))
    return 1.0 - np.exp(0.5 * k) / math.pi * integral


def _doublings(upper: FloatArray, t: FloatArray, v: FloatArray,
               params: tuple[float, float, float, float]) -> int:
    """How many times every ``upper`` must double for the integrand's tail to be negligible."""
    scale = 2.0 ** np.arange(_MAX_WIDENING + 1)  # (w,)
    u = upper * scale  # (..., w)
    tail = np.abs(heston_characteristic(u - 0.5j, t, v, *params)) / u
    small = np.all(tail.reshape(-1, scale.size) < _TAIL_BOUND, axis=0)
    return int(np.argmax(small)) if small.any() else _MAX_WIDENING


def _quadrature(upper: FloatArray, doublings: int = 0) -> tuple[FloatArray, FloatArray]:
    """Nodes and weights ``(..., m)`` of the composite rule, ``upper`` ``(..., 1)``."""
    head_end, head_nodes = _HEAD
    panels, panel_nodes = _TAIL
    panels *= 1 + doublings
    x, w = _gauss_legendre(head_nodes)
    a = np.minimum(head_end, upper / 4.0)
    xs, ws = _gauss_legendre(panel_nodes)
    edges = a * (upper / a) ** (np.arange(panels + 1) / panels)  # (..., panels + 1)
    width = np.diff(edges, axis=-1)[..., None]  # (..., panels, 1)
    tail = (edges[..., :-1, None] + width * xs).reshape(*edges.shape[:-1], -1)
    tail_w = (width * ws).reshape(tail.shape)
    return np.concatenate([a * x, tail], axis=-1), np.concatenate([a * w, tail_w], axis=-1)


@functools.cache
def _gauss_legendre(n: int) -> tuple[FloatArray, FloatArray]:
    """Gauss-Legendre nodes and weights of ``n`` points on ``[0, 1]``."""
    x, w = np.polynomial.legendre.leggauss(n)
    return 0.5 * (x + 1.0), 0.5 * w


@dataclass(frozen=True)
class HestonGrid(VolGrid):
    """Axes of :class:`HestonSurface`'s table: expiry, variance and ``z``.

    ``z``'s scale ``sigma`` is the root of the expected average variance to expiry
    (:func:`heston_average_variance`), so that one axis serves every expiry and variance. The
    variance axis is uniform in ``v**(1/4)`` (the root of the vol): dense at low variance, where
    the smile changes fastest and Heston's variance often is. Every axis of 4 nodes or more is
    refined four times by cubics for the interpolation (:meth:`HestonSurface.table`): the
    defaults' 41 x 41 x 41 nodes become 161 x 161 x 161 values (33 MB).

    Attributes:
        max_vol: the largest ``sqrt(v)`` tabulated, per sqrt(year) (> 0).
        n_vol: nodes on the variance axis (>= 2; from 4 on, refined four times by cubics
            for the interpolation, as the ``z`` axis is).
        n_tau: (:class:`~hedgearena.envs.vol_table.VolGrid`'s) nodes on the expiry axis, uniform
            in ``tau**(1/4)`` (>= 2; from 4 on, refined four times by cubics as well, so that an
            option's time decay follows Heston's: linear cells on the coarse nodes gave their
            chords' slope).
    """

    max_vol: float = 1.0
    n_vol: int = 41

    def __post_init__(self) -> None:
        super().__post_init__()
        require_number(type(self).__name__, "max_vol", self.max_vol, gt=0.0)
        require_integer(type(self).__name__, "n_vol", self.n_vol, ge=2)

    def vol_axis(self) -> FloatArray:
        """The nodes of ``sqrt(v)`` (uniform in ``v**(1/4)``)."""
        return np.linspace(0.0, math.sqrt(self.max_vol), self.n_vol) ** 2


class _Lookup(NamedTuple):
    """Where :class:`HestonSurface` reads its table for some options (arrays of their shape).

    Attributes:
        table: the refined table (:meth:`HestonSurface.table`), ``(n_tau, n_vol, n_z)``.
        cells: the options' cells in ``tau**(1/4)``, ``v**(1/4)`` and ``z``.
        t: the expiry, clipped into ``[0, max_tau]``, years.
        v: the variance, clipped at 0.
        quarter: ``v**(1/4)`` (:func:`~hedgearena.envs.vol_table.safe_power`).
        average: Heston's expected average variance to ``t``.
        spread: ``sqrt(average t)``, the ``z`` axis' scale.
        z: the standardised log-moneyness.
        at_expiry: the vol at ``t = 0``, ``sqrt(v)`` up to ``max_vol``.
    """

    table: FloatArray
    cells: list[tuple[Any, Any]]
    t: Any
    v: Any
    quarter: Any
    average: Any
    spread: Any
    z: Any
    at_expiry: Any


@dataclass(frozen=True)
class HestonSurface:
    r"""Heston's own implied vols, with the path's ``level`` as the variance ``v``.

    The implied vol of an option ``(strike, tau)`` is the Black-Scholes vol of Heston's price
    (:func:`heston_call_price`) for the path's current variance: the smile that the vol of variance
    ``xi`` and the correlation ``rho`` create, its term structure, and the convexity of the square
    root that the flat :class:`~hedgearena.envs.vol_surface.HestonTermVol` misses. The vols are
    tabulated once per parameter set (:class:`HestonGrid`: 41 x 41 x 41 nodes, about two seconds;
    more for a large vol of variance or ``|rho|`` near 1, whose pricing integral is longer) and
    interpolated linearly in each axis, every axis first refined four times by cubics (161 x 161
    x 161 values, 33 MB; the cubics keep a smile's minimum, which lies between ``z`` nodes:
    :func:`~hedgearena.envs.vol_table.refine`'s ``keep_extrema``). On the grid's own nodes they
    are Heston's to 1e-6 in vol; between nodes, at OptionBook's parameters, the interpolation
    error is at most about 6e-5 in vol (8e-6 on average) for ``|z| <= 3``, expiries of 1 to 365
    days and vols of 0.5% to 50% (5.2e-5 on 4,000 random options; 1.7e-4 and 2.6e-5 with the
    expiry axis linear on its nodes and the smile's bottom held within its nodes): about 0.001
    on a 60-day at-the-money call worth 3.70 on spot 100; up to about 1e-3 with a vol of
    variance of 1 (tests check both against QuantLib; ``grid`` trades build time for accuracy).
    The vol's slope in the variance, which prices a variance move, is Heston's within 4.3% (0.6%
    on average, vols of 5% to 50%): linear cells on the coarse variance nodes gave their chords'
    slope, up to 18% off (2.5% on average). Its slope in the expiry keeps an option's time decay
    (at a held variance) within 1.3% of Heston's (0.2% on average; 1,000 random options, vols of
    5% to 50%), 3.6% (0.5%) with the expiry axis linear on its nodes. With ``|rho|``
    near 1 one tail of the log price is thin (a vol of variance of 2 to 2.5 at moderate ``rho``
    keeps the ``z`` axis' error below 2e-3 in vol on prices above 1e-8 of the forward): on
    that side the smile falls off a cliff, its prices dropping below 1e-9 of the forward
    (:data:`~hedgearena.envs.vol_table.PRICE_NOISE`) within a fraction of a standard deviation,
    faster than the ``z`` nodes (a quarter of one apart) follow, and the strikes beyond take the
    last resolved vol. Against QuantLib (``|z| <= 5``, 7 to 730 days, vols 5% to 80%, rho -0.99,
    0.99 and -1) the error is then up to 4e-3 in vol on options worth more than 1e-3 of the
    forward (a 547-day 115 call at rho -0.99, worth 0.98 on spot 100, is marked at 0.85), 6e-3
    (1.2e-2 at rho -1) on those worth 1e-5 to 1e-3 of it and 3e-2 down to 1e-7 of it.
    ``HestonGrid(n_z=161)`` cuts the ``z`` axis' share of these errors about tenfold (rho -0.99:
    6.4e-3 to 3.8e-4 on prices above 1e-5 of the forward) for four times the build time, which
    with such parameters is already 6 to 30 s. Marking costs about 40 array passes per option,
    against 5 for :class:`~hedgearena.envs.vol_surface.HestonTermVol`: OptionBook's vector env
    steps at about 120,000 path-steps a second at 4,096 paths, against 193,000 with the term
    surface and 134,000 with the expiry axis unrefined (and two gathers a cell), whose 8.5 MB
    table the caches held better (measured side by side, 2026-11; its books are priced at their
    live slots).

    Outside the grid the vol is held at its edge, documented and never NaN for finite inputs
    (positive spot and strike): strikes beyond ``max_z`` standard deviations take the vol of the
    last tabulated strike (flat wings, below a steep smile's: at the defaults a 91-day 70 put at
    5% vol, worth 1.3e-5 of the forward, is marked at 0.193 against Heston's 0.222), variances
    above ``max_vol**2`` that of ``max_vol**2`` (a vol of 100% by default: raise
    ``grid.max_vol`` for markets that go beyond), expiries beyond ``max_tau`` (2 years) are marked
    as if they expired at ``max_tau`` (the forward and the smile of that expiry). At ``tau == 0``
    the vol is ``sqrt(v)`` (up to ``max_vol``); a negative ``tau`` or variance counts as 0. NaN
    inputs give NaN. Parameters whose prices the integral cannot resolve raise ValueError when
    the table is built.

    Greeks of a marked option are Black-Scholes greeks at its implied vol (sticky strike): they
    leave out the smile's own sensitivity to the spot and the variance.

    Attributes:
        kappa: mean-reversion speed of the variance, per year (> 0).
        theta: long-run variance, per year (> 0).
        xi: vol of variance, per sqrt(year) (> 0).
        rho: spot-variance correlation, in [-1, 1].
        grid: the table's axes.

    Examples:
        >>> import numpy as np
        >>> surface = HestonSurface(kappa=2.0, theta=0.04, xi=0.5, rho=-0.7)
        >>> vols = surface.implied_vol(100.0, np.array([90.0, 100.0, 110.0]), 60 / 250, 0.04,
        ...                            100.0, 0.0, 0.0)
        >>> np.round(vols, 4)  # Heston's 10.981, 3.703, 0.407 inverted: 0.2279, 0.1896, 0.1560
        array([0.2279, 0.1896, 0.156 ])
    """

    kappa: float = 2.0
    theta: float = 0.04
    xi: float = 0.5
    rho: float = -0.7
    grid: HestonGrid = HestonGrid()
    level_is_variance: ClassVar[bool] = True
    """The path's ``level`` is the variance ``v``."""

    def __post_init__(self) -> None:
        name = type(self).__name__
        require_number(name, "kappa", self.kappa, gt=0.0)
        require_number(name, "theta", self.theta, gt=0.0)
        require_number(name, "xi", self.xi, gt=0.0)
        require_number(name, "rho", self.rho, ge=-1.0, le=1.0)
        if not isinstance(self.grid, HestonGrid):
            raise ValueError(f"{name}.grid must be a HestonGrid, got {self.grid!r}")

    def nodes(self) -> FloatArray:
        """The implied vols ``(n_tau, n_vol, n_z)`` on the grid's nodes (computed once)."""
        return _vol_table(self.kappa, self.theta, self.xi, self.rho, self.grid)

    def table(self) -> FloatArray:
        """The table interpolated: :meth:`nodes` with every axis refined (:func:`refined`)."""
        return _fine_table(self.kappa, self.theta, self.xi, self.rho, self.grid)

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
        """Heston's implied vol of ``(strike, tau)`` at variance ``level``; broadcast shape."""
        xp, (spot, strike, tau, level) = _arrays(spot, strike, tau, level)
        look = self._lookup(xp, spot, strike, tau, level, rate, dividend)
        out = multilinear(xp, flat_table(xp, look.table, spot), look.cells, look.table.shape)
        return xp.where(look.t == 0.0, look.at_expiry, out)  # NaN inputs: NaN (see cell)

    def implied_vol_slopes(
        self,
        spot: Any,
        strike: Any,
        tau: Any,
        level: Any,
        anchor: Any,
        rate: float,
        dividend: float,
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        r""":meth:`implied_vol` and its slopes in the spot and the variance, in one numpy pass.

        The slopes are the exact ones of the interpolation, piecewise linear in each cell
        coordinate (:func:`~hedgearena.envs.vol_table.multilinear_slopes`), by the chain rule
        through the cells' coordinates ``z = ln(K / F) / s``, ``s = sqrt(A(v, tau) tau)``
        (``A`` Heston's expected average variance, ``dA / dv = (1 - e^{-kappa tau}) /
        (kappa tau)``) and ``v**(1/4)``:

        .. math::

            \frac{\partial\sigma}{\partial S} = -\frac{\sigma_z}{S\,s},\qquad
            \frac{\partial\sigma}{\partial v} = \sigma_u\,\frac{1}{4 v^{3/4}}
                - \sigma_z\,\frac{z}{s}\,\frac{\tau\,dA/dv}{2 s}

        (``sigma_z``, ``sigma_u`` the slopes in ``z`` and ``u = v**(1/4)``; at ``tau = 0``, where
        the vol is ``sqrt(v)``, ``1 / (2 sqrt(v))`` in ``v`` and 0 in the spot): the slopes torch
        autograd gives of :meth:`implied_vol`, to rounding, and the vol :meth:`implied_vol` gives
        of numpy float64 inputs, bit for bit; for 1.3 times the cost of the vol alone, half that
        of one autograd pass (OptionBook-v0's held options, one core, 2026-11).

        Args:
            spot: the spot, currency (numpy; broadcast against the others).
            strike: the strikes, currency.
            tau: the years to expiry.
            level: the variance ``v`` of each option's path.
            anchor: unused (the surface does not depend on it), as :meth:`implied_vol`'s.
            rate: the risk-free rate, per year.
            dividend: the dividend yield, per year.

        Returns:
            The vol, ``d vol / d spot`` (per currency) and ``d vol / d level`` (per unit of
            variance), float64 of the inputs' broadcast shape.

        Examples:
            >>> surface = HestonSurface(kappa=2.0, theta=0.04, xi=0.5, rho=-0.7)
            >>> vol, d_spot, d_level = surface.implied_vol_slopes(
            ...     np.array([100.0]), np.array([100.0]), np.array([0.25]), np.array([0.04]),
            ...     np.array([100.0]), 0.0, 0.0)
            >>> bool(vol[0] == surface.implied_vol(100.0, 100.0, 0.25, 0.04, 100.0, 0.0, 0.0))
            True
            >>> up = surface.implied_vol(100.0, 100.0, 0.25, 0.04 + 1e-6, 100.0, 0.0, 0.0)
            >>> bool(abs((up - vol[0]) / 1e-6 - d_level[0]) < 1e-3)  # one cell: the chord
            True
        """
        spot, strike, tau, level = np.broadcast_arrays(
            *(np.asarray(x, dtype=np.float64) for x in (spot, strike, tau, level)))
        shape = spot.shape
        spot, strike, tau, level = (x.reshape(-1) for x in (spot, strike, tau, level))
        grid, tiny = self.grid, np.finfo(np.float64).tiny
        look = self._lookup(np, spot, strike, tau, level, rate, dividend)
        n_vol, n_z = look.table.shape[1:]
        vol, (d_u, d_z) = multilinear_slopes(np, look.table.reshape(-1), look.cells,
                                             look.table.shape, axes=(1, 2))
        # in ln(K / F): the z cell's slope over the spread (> 0: safe_power's floor, sqrt(tiny))
        d_moneyness = d_z * grid.z_cell_slope(np, look.z, n_z) / look.spread
        # in v: through u = v**(1/4) (held where safe_power holds v at tiny) and the spread
        d_u = d_u * cell_slope(np, look.quarter, math.sqrt(grid.max_vol), n_vol)
        d_u = d_u * np.where(look.v >= tiny, 0.25 / (look.quarter * look.quarter * look.quarter),
                             0.0)
        # dA / dv is A's factor of v - theta: A itself at v = 1 and theta = 0, bit for bit
        average_slope = heston_average_variance(1.0, look.t, self.kappa, 0.0)
        d_spread = np.where(look.average * look.t >= tiny,
                            look.t * average_slope / (2.0 * look.spread), 0.0)
        d_spot = -d_moneyness / spot
        d_v = d_u - d_moneyness * look.z * d_spread
        expired = np.flatnonzero(look.t == 0.0)  # the vol is sqrt(v) (up to max_vol)
        if expired.size:
            v, root = look.v[expired], look.at_expiry[expired]
            vol[expired], d_spot[expired] = root, 0.0
            d_v[expired] = np.where((v >= tiny) & (safe_power(np, v, 0.5) <= grid.max_vol),
                                    0.5 / root, 0.0)
        d_level = np.where(level >= 0.0, d_v, 0.0)  # v = max(level, 0)
        return vol.reshape(shape), d_spot.reshape(shape), d_level.reshape(shape)

    def _lookup(self, xp: Any, spot: Any, strike: Any, tau: Any, level: Any, rate: float,
                dividend: float) -> _Lookup:
        """The table and the cells of the options (:class:`_Lookup`), arrays of namespace ``xp``."""
        grid = self.grid
        t = clip_array(xp, tau, 0.0, grid.max_tau)  # held at max_tau beyond it
        v = clip_array(xp, level, 0.0)
        average = heston_average_variance(v, t, self.kappa, self.theta)
        spread = safe_power(xp, average * t, 0.5)
        fine = self.table()
        z = grid.standard_moneyness(xp, spot, strike, t, spread, rate, dividend)
        tau_cell, z_cell = grid.cells_at(xp, t, z, fine.shape[2], fine.shape[0])
        quarter = safe_power(xp, v, 0.25)
        cells = [tau_cell, cell(xp, quarter, math.sqrt(grid.max_vol), fine.shape[1]), z_cell]
        at_expiry = xp.clip(safe_power(xp, v, 0.5), max=grid.max_vol)  # exactly sqrt(v)
        return _Lookup(fine, cells, t, v, quarter, average, spread, z, at_expiry)


@functools.lru_cache(maxsize=16)
def _vol_table(kappa: float, theta: float, xi: float, rho: float, grid: HestonGrid) -> FloatArray:
    """Heston's implied vols on ``grid``'s nodes (see :class:`HestonSurface`); read-only."""
    taus, z = grid.tau_z_axes()
    vols = grid.vol_axis()
    v = vols * vols
    table = np.empty((grid.n_tau, grid.n_vol, grid.n_z))
    limit = np.empty((grid.n_tau, grid.n_vol, 1))  # the short-time limit: root average variance
    table[0] = limit[0] = vols[:, None]  # tau == 0: sqrt(v) at every strike
    for i, t in enumerate(taus[1:], start=1):
        average = heston_average_variance(v, t, kappa, theta)  # (n_vol,)
        k = z * np.sqrt(average * t)[:, None]  # (n_vol, n_z)
        call = heston_call_price(k, np.full(grid.n_vol, t), v, kappa, theta, xi, rho)
        table[i] = otm_implied_vols(call, k, t)
        limit[i] = np.sqrt(average)[:, None]
    return finish_table(table, limit,
                        f"HestonSurface(kappa={kappa}, theta={theta}, xi={xi}, rho={rho})")


@functools.lru_cache(maxsize=4)  # 33 MB each (the nodes' cache keeps 16 sets: 0.5 MB each)
def _fine_table(kappa: float, theta: float, xi: float, rho: float,
                grid: HestonGrid) -> FloatArray:
    """:func:`_vol_table` refined along ``z``, ``v`` and ``tau`` (:meth:`HestonSurface.table`)."""
    return refined(_vol_table(kappa, theta, xi, rho, grid), axes=(-1, 1, 0), keep_extrema=True)
