r"""Merton's (1976) jump diffusion: GBM plus compensated log-normal jumps.

.. math::

    \frac{dS_t}{S_{t-}} = (\mu - \lambda k)\,dt + \sigma\,dW_t + (e^{Y} - 1)\,dN_t, \qquad
    Y \sim N(m, s^2), \quad k = E[e^Y - 1] = e^{m + s^2/2} - 1

with :math:`N` a Poisson process of intensity :math:`\lambda`, so :math:`E[S_T] = S_0 e^{\mu T}`.

Reference: R. C. Merton (1976), "Option pricing when underlying stock returns are
discontinuous", Journal of Financial Economics 3, 125-144; E. G. Haug (2007), "The Complete Guide
to Option Pricing Formulas", 2nd ed., section 6.7.1.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from hedgearena.envs.black_scholes import black_scholes_price
from hedgearena.envs.checks import (
    require_integer,
    require_number,
    require_surface_or_name,
)
from hedgearena.envs.gbm import price_drift, time_grid, validate_market
from hedgearena.envs.market import FloatArray, MarketPaths, VolSurface
from hedgearena.envs.vol_surface import FlatVol, _arrays
from hedgearena.envs.vol_table import (
    VolGrid,
    clip_array,
    finish_table,
    flat_table,
    multilinear,
    otm_implied_vols,
    refined,
    safe_power,
)

SURFACE_NAMES = ("own", "flat")
"""The surfaces a Merton market can be given by name (see :attr:`MertonJumpDiffusion.surface`)."""


def validate_jumps(owner: str, jump_intensity: float, jump_mean: float, jump_std: float) -> None:
    """Check the jumps (else ValueError): ``lambda >= 0``, ``|m| <= 1``, ``0 <= s <= 1``.

    A log jump of 1 multiplies the price by 2.7 (-1: by 0.37), beyond any crash on record; past
    it the series' terms overflow. The market and its surface check the same bounds.
    """
    require_number(owner, "jump_intensity", jump_intensity, ge=0.0)
    require_number(owner, "jump_mean", jump_mean, ge=-1.0, le=1.0)
    require_number(owner, "jump_std", jump_std, ge=0.0, le=1.0)


def total_variance(sigma: float, jump_intensity: float, jump_mean: float,
                   jump_std: float) -> float:
    """Variance of the log return per year: ``sigma**2 + lambda (m**2 + s**2)``.

    Examples:
        >>> round(total_variance(0.2, 1.0, -0.1, 0.15), 12)
        0.0725
    """
    return sigma**2 + jump_intensity * (jump_mean**2 + jump_std**2)


def jump_compensator(jump_mean: float, jump_std: float) -> float:
    """Mean relative jump size ``k = exp(jump_mean + jump_std**2 / 2) - 1``.

    Examples:
        >>> jump_compensator(0.0, 0.0)
        0.0
    """
    return math.expm1(jump_mean + 0.5 * jump_std**2)


def merton_call_price(
    spot: Any,
    strike: Any,
    tau: Any,
    sigma: float,
    jump_intensity: float,
    jump_mean: float,
    jump_std: float,
    rate: float = 0.0,
    dividend: float = 0.0,
    n_terms: int | None = None,
) -> Any:
    r"""European call under Merton's jump diffusion: a Poisson mixture of Black-Scholes prices.

    Conditionally on :math:`n` jumps before expiry the terminal log price is normal, so

    .. math::

        C = \sum_{n=0}^{N-1} e^{-\lambda\tau}\frac{(\lambda\tau)^n}{n!}
            \mathrm{BS}\left(S e^{n(m + s^2/2) - \lambda k\tau}, K, \tau,
            \sqrt{\sigma^2 + n s^2/\tau}, r, q\right)

    (Merton 1976, eq. (16); Haug 2007, section 6.7.1, written with the spot scaled instead of the
    rate), with the shared :func:`hedgearena.envs.black_scholes.black_scholes_price`. The
    Poisson weights are computed in logs (no underflow of ``e^{-lambda tau}``). A term is at
    most :math:`S` times the Poisson weight of :math:`n` at the mean :math:`\lambda(1 + k)\tau`
    (Merton's own form of the series), which up-jumps (:math:`k > 0`) put past
    :math:`\lambda\tau`; so the series runs by default to ``mu + 10 sqrt(mu) + 40`` terms with
    ``mu = lambda tau max(1, 1 + k)``, past which the terms left out sum to less than 1e-15 of
    the spot. (It stopped at ``mu = lambda tau`` before: with 50 jumps a year of
    :math:`m = 1, s = 0.5` a one-year at-the-money call was 66.80 against 99.00.) Terms whose
    scaled spot would overflow float64 are priced per unit of it (the call is homogeneous), and
    those whose scaled spot would underflow are below ``1e-217`` of the spot and dropped (see
    :data:`FAR_GROWTH`).

    Args:
        spot: spot price, currency.
        strike: strike, currency.
        tau: time to expiry, years (> 0).
        sigma: diffusive vol, per sqrt(year).
        jump_intensity: expected number of jumps per year, ``lambda`` (>= 0).
        jump_mean: mean ``m`` of the log jump size.
        jump_std: standard deviation ``s`` of the log jump size (>= 0).
        rate: risk-free rate, per year.
        dividend: continuous dividend yield, per year.
        n_terms: number of terms of the series (>= 1; None: enough for every
            ``lambda tau``).

    Returns:
        The call price, currency; shape of the broadcast of ``spot``, ``strike``, ``tau``.

    Examples:
        >>> import numpy as np
        >>> price = merton_call_price(np.array([100.0]), 100.0, 1.0, 0.2, 1.0, -0.1, 0.15)
        >>> np.round(price, 6)  # QuantLib's BatesEngine with vol of variance -> 0 agrees
        array([10.275063])
    """
    spot, strike, tau = np.asarray(spot), np.asarray(strike), np.asarray(tau)
    if np.any(tau <= 0):
        raise ValueError(f"merton_call_price: tau must be > 0, got {tau}")
    for name, value in (("sigma", sigma), ("jump_intensity", jump_intensity),
                        ("jump_std", jump_std)):
        require_number("merton_call_price", name, value, ge=0.0)
    for name, value in (("jump_mean", jump_mean), ("rate", rate), ("dividend", dividend)):
        require_number("merton_call_price", name, value)  # NaN: no NaN price, no spot error
    if n_terms is not None:
        require_integer("merton_call_price", "n_terms", n_terms)  # 0 terms priced 0
    k = jump_compensator(jump_mean, jump_std)
    lam_tau = jump_intensity * tau
    if n_terms is None:
        # the terms' mass sits at Poisson(lambda (1 + k) tau) (see above), past lambda tau if k > 0
        most = float(np.max(lam_tau * max(1.0, 1.0 + k))) if lam_tau.size else 0.0
        n_terms = int(most + 10.0 * math.sqrt(most) + 40)
    log_lam_tau = np.log(np.maximum(lam_tau, 1e-300))
    price = np.zeros(np.broadcast_shapes(spot.shape, strike.shape, tau.shape))
    for n in range(n_terms):
        log_weight = -lam_tau + n * log_lam_tau - math.lgamma(n + 1)  # log Poisson(n; lam tau)
        growth = n * (jump_mean + 0.5 * jump_std**2) - jump_intensity * k * tau
        vol_n = np.sqrt(sigma**2 + n * jump_std**2 / tau)
        if np.all(np.abs(growth) <= FAR_GROWTH):  # the usual case
            term = np.exp(log_weight) * black_scholes_price(
                spot * np.exp(growth), strike, tau, vol_n, rate, dividend)
        else:
            term = _far_merton_term(spot, strike, tau, vol_n, rate, dividend, log_weight, growth)
        price = price + term
    return price


FAR_GROWTH = 500.0
"""Beyond this log growth ``|n (m + s^2/2) - lambda k tau|`` a term of :func:`merton_call_price`
has a spot ``S e^growth`` near float64's overflow (e^709) or underflow (e^-745)."""


def _far_merton_term(spot: Any, strike: Any, tau: Any, vol_n: Any, rate: float, dividend: float,
                     log_weight: Any, growth: Any) -> Any:
    """A term ``w BS(S e^g, K)`` of Merton's series where some ``|g| > FAR_GROWTH``.

    Where ``g > FAR_GROWTH``: ``w e^g S BS(1, K / (S e^g))`` (the call is homogeneous of degree 1
    in spot and strike; ``w e^g`` is a Poisson weight, no overflow; the strike ratio floored at
    1e-300, a change below 1e-300 S). Where ``g < -FAR_GROWTH``: 0 (the term is below
    ``S e^{-500 - q tau}``). Elsewhere as usual.
    """
    up, down = growth > FAR_GROWTH, growth < -FAR_GROWTH
    near = np.exp(log_weight) * black_scholes_price(
        spot * np.exp(np.where(up | down, 0.0, growth)), strike, tau, vol_n, rate, dividend)
    ratio = np.maximum(strike / spot * np.exp(-np.where(up, growth, 0.0)), 1e-300)
    scaled = np.exp(log_weight + np.where(up, growth, 0.0)) * spot * black_scholes_price(
        1.0, ratio, tau, vol_n, rate, dividend)
    return np.where(up, scaled, np.where(down, 0.0, near))


class MertonIncrements(NamedTuple):
    """Log returns of each step and the number of jumps in it, ``(n_paths, n_steps)`` arrays."""

    log_return: FloatArray
    jump_count: FloatArray


@dataclass(frozen=True)
class MertonJumpDiffusion:
    r"""Merton's jump-diffusion market, simulated exactly on the time grid.

    Each step draws the number of jumps :math:`N \sim \mathrm{Poisson}(\lambda\Delta)`, then the
    log return :math:`(\mu - \lambda k - \sigma^2/2)\Delta + \sigma\sqrt{\Delta} Z_1 + N m
    + s\sqrt{N} Z_2` (the sum of ``N`` normal log jumps), so the step distribution is exact.

    ``mu`` is the drift of the price (``E[S_T] = S_0 e^{mu T}``); ``mu=None`` simulates under the
    risk-neutral measure (``mu = rate - dividend``; jumps keep their law). ``variance`` is the
    variance of the log return per year, :math:`\sigma^2 + \lambda(m^2 + s^2)` (diffusion plus
    jumps), and ``vol_state`` its square root, the level of the default surface, Merton's own
    :class:`MertonSurface` of the model's parameters (the jump smile).

    Attributes:
        mu: drift of the price, per year (None: ``rate - dividend``).
        sigma: diffusive vol, per sqrt(year) (> 0).
        jump_intensity: expected jumps per year (>= 0).
        jump_mean: mean of the log jump size.
        jump_std: standard deviation of the log jump size (>= 0).
        spot0: initial spot, currency (> 0).
        rate: risk-free rate, per year.
        dividend: continuous dividend yield, per year.
        surface: the implied-vol surface (level = ``vol_state``): a VolSurface, or by name
            (YAML and ``--set`` too) ``"own"`` (the default, also None: the model's own
            :class:`MertonSurface`) or ``"flat"`` (:class:`FlatVol` at the total vol).

    Examples:
        >>> model = MertonJumpDiffusion(sigma=0.2, jump_intensity=1.0, jump_mean=0.0, jump_std=0.1)
        >>> paths = model.simulate(2, 3, 1 / 252, np.random.default_rng(0))
        >>> paths.spot.shape, round(float(paths.variance[0, 0]), 12)
        ((2, 4), 0.05)
    """

    mu: float | None = 0.0
    sigma: float = 0.2
    jump_intensity: float = 1.0
    jump_mean: float = -0.1
    jump_std: float = 0.15
    spot0: float = 100.0
    rate: float = 0.0
    dividend: float = 0.0
    surface: VolSurface | str | None = None

    def __post_init__(self) -> None:
        name = type(self).__name__
        validate_market(name, self.spot0, self.rate, self.dividend, self.mu)
        require_surface_or_name(name, self.surface, SURFACE_NAMES, variance_level=False)
        require_number(name, "sigma", self.sigma, gt=0.0)
        validate_jumps(name, self.jump_intensity, self.jump_mean, self.jump_std)

    @property
    def vol_surface(self) -> VolSurface:
        """The surface that marks options: ``surface``, or the one it names."""
        if self.surface == "flat":
            return FlatVol()
        if self.surface is None or isinstance(self.surface, str):  # "own"
            return MertonSurface(self.sigma, self.jump_intensity, self.jump_mean, self.jump_std)
        return self.surface

    @property
    def total_variance_rate(self) -> float:
        """Variance of the log return per year (see :func:`total_variance`)."""
        return total_variance(self.sigma, self.jump_intensity, self.jump_mean, self.jump_std)

    def sample_increments(
        self, n_paths: int, n_steps: int, dt: float, rng: np.random.Generator
    ) -> MertonIncrements:
        """Draw the log returns and jump counts of every step (what :meth:`simulate` uses).

        Draws the Poisson counts ``(n_paths, n_steps)`` first, then ``(2, n_paths, n_steps)``
        standard normals.
        """
        time_grid(type(self).__name__, n_paths, n_steps, dt, rng)
        counts = rng.poisson(self.jump_intensity * dt, (n_paths, n_steps)).astype(np.float64)
        z_diffusion, z_jump = rng.standard_normal((2, n_paths, n_steps))
        k = jump_compensator(self.jump_mean, self.jump_std)
        mu = price_drift(self.mu, self.rate, self.dividend)
        drift = (mu - self.jump_intensity * k - 0.5 * self.sigma**2) * dt
        jumps = counts * self.jump_mean + self.jump_std * np.sqrt(counts) * z_jump
        return MertonIncrements(drift + self.sigma * math.sqrt(dt) * z_diffusion + jumps, counts)

    def simulate(
        self, n_paths: int, n_steps: int, dt: float, rng: np.random.Generator
    ) -> MarketPaths:
        """Simulate ``n_paths`` paths of ``n_steps`` exact steps of ``dt`` years from ``rng``.

        Shape:
            Every array of the result is ``(n_paths, n_steps + 1)``.
        """
        times = time_grid(type(self).__name__, n_paths, n_steps, dt, rng)
        steps = self.sample_increments(n_paths, n_steps, dt, rng).log_return
        log_spot = np.concatenate([np.zeros((n_paths, 1)), np.cumsum(steps, axis=1)], axis=1)
        # float(): a numpy float32 parameter made float32 arrays (np.full takes the fill's dtype)
        variance = np.full((n_paths, n_steps + 1), float(self.total_variance_rate))
        return MarketPaths(
            times=times,
            spot=self.spot0 * np.exp(log_spot),
            variance=variance,
            vol_state=np.sqrt(variance),
            surface=self.vol_surface,
            rate=self.rate,
            dividend=self.dividend,
        )


MERTON_GRID = VolGrid(n_tau=121, n_z=121)
"""The default grid of :class:`MertonSurface`: Merton's series is cheap (a twentieth of a second
for the table), so the grid is fine."""


@dataclass(frozen=True)
class MertonSurface:
    r"""Merton's own implied vols: the jump smile of :func:`merton_call_price`, tabulated.

    At the model's own level (``vol_state`` = :math:`\sigma_{tot} = \sqrt{\sigma^2 + \lambda(m^2
    + s^2)}`) an option ``(strike, tau)`` is marked at the Black-Scholes vol of Merton's price:
    the skew and smile that the jumps create, steep at short expiries. A path whose level moves
    away (a stress scenario's vol spike) has the whole smile scaled by ``level / sigma_tot``.
    The vols are tabulated once per parameter set on a :class:`VolGrid` (:data:`MERTON_GRID`,
    121 x 121 nodes, ``z``'s scale ``sigma_tot``) and interpolated linearly in ``(tau, z)``,
    ``z`` refined by cubics first: at the default parameters within 4e-5 in vol of Merton's own
    (2e-6 on average) for 1 to 365 days and ``|z| <= 3`` (4,000 random options; the same with
    one jump in five years of -30% +- 20%, within 8e-5 with five jumps a year of -5% +- 5%,
    worst at 2-day expiries). Where the diffusion is small against the jumps the smile has a
    narrow trough at short expiries, between the ``z`` nodes (``sigma_tot / 12`` apart); the
    cubics keep it (:func:`~hedgearena.envs.vol_table.refine`'s ``keep_extrema``): with
    ``sigma`` 0.1 and three jumps a year of +20% +- 30% (``sigma_tot`` 0.63) the vols are
    within 2.2e-4 of QuantLib's BatesEngine without vol of variance (2 to 60 days, ``|z| <=
    3``; a 5-day option at ``z = -0.3`` is marked at 0.2133 against 0.2131), where the trough
    held within its nodes was off by up to 1.6e-3 (0.2144 there). Outside
    the grid they are held at its edge (flat wings beyond ``max_z``; beyond ``max_tau`` as if
    expiring at ``max_tau``); at ``tau == 0`` they are the diffusive ``sigma``; a negative
    ``tau`` or level counts as 0 and NaN inputs give NaN. The flat surface at ``sigma_tot``
    that marked Merton's paths before overpriced a 20-day at-the-money call by 15%.

    Greeks of a marked option are Black-Scholes greeks at its implied vol (sticky strike).

    Attributes:
        sigma: diffusive vol, per sqrt(year) (> 0).
        jump_intensity: expected jumps per year (>= 0).
        jump_mean: mean of the log jump size.
        jump_std: standard deviation of the log jump size (>= 0).
        grid: the table's axes.

    Examples:
        >>> surface = MertonSurface(sigma=0.2, jump_intensity=1.0, jump_mean=-0.1, jump_std=0.15)
        >>> vols = surface.implied_vol(100.0, np.array([90.0, 100.0, 110.0]), 20 / 250,
        ...                            surface.base_level, 100.0, 0.0, 0.0)
        >>> np.round(vols, 4)  # Merton's prices inverted: a skew, against a flat 0.2693
        array([0.3038, 0.2347, 0.2316])
    """

    sigma: float = 0.2
    jump_intensity: float = 1.0
    jump_mean: float = -0.1
    jump_std: float = 0.15
    grid: VolGrid = MERTON_GRID

    def __post_init__(self) -> None:
        name = type(self).__name__
        require_number(name, "sigma", self.sigma, gt=0.0)
        validate_jumps(name, self.jump_intensity, self.jump_mean, self.jump_std)
        if not isinstance(self.grid, VolGrid):
            raise ValueError(f"{name}.grid must be a VolGrid, got {self.grid!r}")

    @property
    def base_level(self) -> float:
        """``sigma_tot``: the level at which the marks are Merton's own prices."""
        return math.sqrt(total_variance(self.sigma, self.jump_intensity, self.jump_mean,
                                        self.jump_std))

    def nodes(self) -> FloatArray:
        """The implied vols ``(n_tau, n_z)`` on the grid's nodes (computed once)."""
        return _merton_table(self.sigma, self.jump_intensity, self.jump_mean, self.jump_std,
                             self.grid)

    def table(self) -> FloatArray:
        """The table interpolated: :meth:`nodes` with ``z`` refined by cubics."""
        return _merton_fine_table(self.sigma, self.jump_intensity, self.jump_mean, self.jump_std,
                                  self.grid)

    def implied_vol(
        self, spot: Any, strike: Any, tau: Any, level: Any, anchor: Any, rate: float,
        dividend: float,
    ) -> Any:
        """Merton's implied vol of ``(strike, tau)``, scaled by ``level / base_level``."""
        xp, (spot, strike, tau, level) = _arrays(spot, strike, tau, level)
        t = clip_array(xp, tau, 0.0, self.grid.max_tau)  # held at max_tau beyond it
        fine = self.table()
        spread = self.base_level * safe_power(xp, t, 0.5)
        cells = list(self.grid.tau_z_cells(xp, spot, strike, t, spread, rate, dividend,
                                           fine.shape[1]))
        out = multilinear(xp, flat_table(xp, fine, spot), cells, fine.shape)
        return out * (xp.clip(level, min=0.0) / self.base_level)  # NaN inputs: NaN (see cell)


@functools.lru_cache(maxsize=16)
def _merton_table(sigma: float, jump_intensity: float, jump_mean: float, jump_std: float,
                  grid: VolGrid) -> FloatArray:
    """Merton's implied vols on ``grid``'s nodes (see :class:`MertonSurface`); read-only."""
    taus, z = grid.tau_z_axes()
    base = math.sqrt(total_variance(sigma, jump_intensity, jump_mean, jump_std))
    t = taus[1:, None]
    k = z * base * np.sqrt(t)  # (n_tau - 1, n_z)
    call = merton_call_price(1.0, np.exp(k), t, sigma, jump_intensity, jump_mean, jump_std)
    table = np.empty((grid.n_tau, grid.n_z))
    table[0] = sigma  # tau == 0: the diffusion alone near the money
    table[1:] = otm_implied_vols(call, k, t)
    owner = (f"MertonSurface(sigma={sigma}, jump_intensity={jump_intensity}, "
             f"jump_mean={jump_mean}, jump_std={jump_std})")
    return finish_table(table, base, owner)


@functools.lru_cache(maxsize=16)
def _merton_fine_table(sigma: float, jump_intensity: float, jump_mean: float, jump_std: float,
                       grid: VolGrid) -> FloatArray:
    """:func:`_merton_table` refined along ``z`` (see :meth:`MertonSurface.table`); read-only."""
    table = _merton_table(sigma, jump_intensity, jump_mean, jump_std, grid)
    return refined(table, keep_extrema=True)
