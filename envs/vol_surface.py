"""Implied-volatility surfaces (see :class:`hedgearena.envs.market.VolSurface`).

A surface maps an option ``(strike, tau)`` to the Black-Scholes implied volatility that marks it,
given the path's current ``spot``, its surface state ``level`` and the episode's ``anchor`` spot.
What ``level`` means is the surface's own:

============================  =====================================================
surface                       ``level``
============================  =====================================================
:class:`FlatVol`              at-the-money implied vol
:class:`SmileSurface`         at-the-money-forward implied vol (of the reference)
:class:`SABRSurface`          SABR's alpha of the spot (``F**(1 - beta)`` per sqrt year)
:class:`HestonTermVol`        Heston's instantaneous variance ``v``
============================  =====================================================

Every surface works on numpy arrays and torch tensors alike (the namespace of the inputs, found
with ``array-api-compat``), and stays finite at expiry (``tau == 0``).

The inputs are a domain that is not checked per call (that would cost a pass over every array at
every step): ``spot > 0`` (SABR's absorbed 0 too), ``strike > 0``, ``tau >= 0`` and a finite
``level >= 0`` (``> 0`` for SABR's alpha). NaN in an input the vol depends on gives NaN. The
tabulated surfaces count a negative ``tau`` or level as 0 and hold the vol at their grid's edges
(see each); outside the domain the closed forms give what their formulas give (a negative level
a negative vol, a zero strike an infinite or NaN one, a zero SABR alpha NaN), which
:func:`~hedgearena.envs.black_scholes.black_scholes_greeks` refuses for numpy inputs with an
error naming the vol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from array_api_compat import array_namespace, is_array_api_obj

from hedgearena.envs.checks import require_field, require_number

STICKY_MODES = ("delta", "strike")


def _arrays(*values: Any) -> tuple[Any, list[Any]]:
    """The array namespace of ``values`` (numpy if all are Python scalars) and them as arrays."""
    is_array = [is_array_api_obj(v) and not isinstance(v, np.generic) for v in values]
    arrays = [v for v, a in zip(values, is_array, strict=True) if a]
    xp = array_namespace(*arrays) if arrays else array_namespace(np.zeros(0))
    dtype = arrays[0].dtype if arrays and xp.isdtype(arrays[0].dtype, "real floating") else None
    return xp, [
        v if a else xp.asarray(float(v), dtype=dtype or xp.float64)
        for v, a in zip(values, is_array, strict=True)
    ]


def _forward(xp: Any, spot: Any, tau: Any, rate: float, dividend: float) -> Any:
    """Forward price ``spot * exp((rate - dividend) * tau)``."""
    return spot * xp.exp((rate - dividend) * tau)


@dataclass(frozen=True)
class FlatVol:
    """A flat surface: every strike and expiry has the path's current level as implied vol.

    ``level`` is the at-the-money implied volatility, annualised.

    Examples:
        >>> import numpy as np
        >>> FlatVol().implied_vol(np.array([100.0]), 90.0, 0.5, np.array([0.2]), 100.0, 0.0, 0.0)
        array([0.2])
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
        """Implied vol: ``level`` broadcast against ``spot``, ``strike`` and ``tau``."""
        xp, (spot, strike, tau, level) = _arrays(spot, strike, tau, level)
        return xp.broadcast_arrays(level, spot, strike, tau)[0] * 1.0


@dataclass(frozen=True)
class SmileSurface:
    r"""A quadratic smile in standardised log-moneyness around the path's at-the-money level.

    .. math::

        x = \frac{\ln(K / F_{ref})}{\sqrt{\max(\tau, \tau_{min})}}, \qquad
        \sigma(K, \tau) = \text{level} \cdot \max\left(1 + \text{skew}\, x
            + \text{curvature}\, x^2,\ \text{floor}\right)

    with :math:`F_{ref} = S_{ref}\, e^{(r - q)\tau}` the forward of the reference spot: the current
    spot for ``sticky="delta"`` (the smile moves with the forward, so the vol of a fixed moneyness
    is constant) and the episode's anchor spot for ``sticky="strike"`` (the vol of a fixed strike
    does not move with spot). The smile is relative: it scales with ``level`` (the at-the-money
    vol of the reference forward). The ``floor`` keeps vols at least ``floor * level`` (> 0 for a
    positive level) when a negative skew or curvature would push the quadratic down; ``min_tau``
    keeps ``x`` finite at expiry.

    Attributes:
        skew: slope of the relative smile in ``x`` (negative: equity-like put skew).
        curvature: convexity of the relative smile in ``x``.
        sticky: ``"delta"`` or ``"strike"`` (see above).
        floor: smallest vol as a fraction of ``level``, in ``(0, 1]``.
        min_tau: floor of ``tau`` in the standardisation, years (default one day).

    Examples:
        >>> import numpy as np
        >>> smile = SmileSurface(skew=-0.1, curvature=0.5)
        >>> strike = 100.0 * np.exp(-0.05)  # x = -0.05 / sqrt(0.25) = -0.1
        >>> float(np.round(smile.implied_vol(100.0, strike, 0.25, 0.2, 100.0, 0.0, 0.0), 12))
        0.203
    """

    skew: float = -0.1
    curvature: float = 0.05
    sticky: str = "delta"
    floor: float = 0.25
    min_tau: float = 1.0 / 365.0

    def __post_init__(self) -> None:
        name = type(self).__name__
        require_number(name, "skew", self.skew)
        require_number(name, "curvature", self.curvature)
        ok = self.sticky in STICKY_MODES
        require_field(name, "sticky", self.sticky, ok, f"one of {STICKY_MODES}")
        require_number(name, "floor", self.floor, gt=0.0, le=1.0)
        require_number(name, "min_tau", self.min_tau, gt=0.0)

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
        """Implied vol of ``(strike, tau)``; shape of the broadcast of the array arguments."""
        xp, (spot, strike, tau, level, anchor) = _arrays(spot, strike, tau, level, anchor)
        reference = spot if self.sticky == "delta" else anchor
        x = xp.log(strike / _forward(xp, reference, tau, rate, dividend)) / xp.sqrt(
            xp.clip(tau, min=self.min_tau)
        )
        return level * xp.clip(1.0 + self.skew * x + self.curvature * x * x, min=self.floor)


def _z_over_x(xp: Any, z: Any, rho: float) -> Any:
    r"""Hagan's ratio :math:`z / x(z)` (see :func:`sabr_implied_vol` for :math:`x(z)`).

    ``x`` is computed with ``log1p`` of ``(s - 1 + z) / (1 - rho)``, ``s - 1`` written without
    cancellation, and the limit ``z -> 0`` by its series ``1 - rho z / 2 + (2 - 3 rho^2) z^2 / 12``
    (from the Legendre generating function; the next term is O(z^3)).
    """
    small = xp.abs(z) < 1e-6
    zs = xp.where(small, xp.ones_like(z), z)
    s = xp.sqrt(1.0 - 2.0 * rho * zs + zs * zs)
    x = xp.log1p(zs * (1.0 + (zs - 2.0 * rho) / (s + 1.0)) / (1.0 - rho))
    series = 1.0 - 0.5 * rho * z + (2.0 - 3.0 * rho * rho) * z * z / 12.0
    return xp.where(small, series, zs / x)


def sabr_implied_vol(
    forward: Any, strike: Any, tau: Any, alpha: Any, beta: float, rho: float, nu: float
) -> Any:
    r"""SABR lognormal (Black) implied volatility, Hagan et al. (2002), eq. (2.17a).

    .. math::

        \sigma_B = \frac{\alpha}{(FK)^{(1-\beta)/2}\left[1 + \frac{(1-\beta)^2}{24}\ell^2
            + \frac{(1-\beta)^4}{1920}\ell^4\right]} \frac{z}{x(z)}
            \left[1 + \left(\frac{(1-\beta)^2 \alpha^2}{24 (FK)^{1-\beta}}
            + \frac{\rho\beta\nu\alpha}{4 (FK)^{(1-\beta)/2}}
            + \frac{2 - 3\rho^2}{24}\nu^2\right)\tau\right]

    with :math:`\ell = \ln(F/K)`, :math:`z = \frac{\nu}{\alpha}(FK)^{(1-\beta)/2}\ell` and
    :math:`x(z) = \ln\frac{\sqrt{1 - 2\rho z + z^2} + z - \rho}{1 - \rho}`. At the money
    (``z -> 0``) ``z / x(z)`` is taken from its series, so ``F == K`` gives no 0/0. A forward at
    or below zero (a SABR path absorbed at 0) is replaced by the strike: the vol is then finite and
    irrelevant, since the option is worth its intrinsic value.

    The expansion is first order in ``tau``, and its last factor turns negative, and the vol with
    it, once ``(3 rho^2 - 2) nu^2 tau / 24`` (less the other terms) exceeds 1: at ``rho = -0.99``,
    ``nu = 3``, ``beta = 0.5`` and 20% vol (``alpha = 2`` at ``F = K = 100``) past 2.35 years
    (-0.056 at 3 years; QuantLib's ``sabrVolatility`` gives the same). The formula does not hold
    there; the value is returned as it is, and Black-Scholes refuses a negative vol.

    Reference: P. S. Hagan, D. Kumar, A. S. Lesniewski, D. E. Woodward (2002), "Managing smile
    risk", Wilmott Magazine, 84-108, eq. (2.17a).

    Args:
        forward: forward price of the underlying to the option's expiry, currency.
        strike: strike, currency (> 0).
        tau: time to expiry, years (>= 0).
        alpha: SABR's alpha (> 0), in units of ``forward ** (1 - beta)`` per sqrt(year).
        beta: CEV exponent in ``[0, 1]``.
        rho: correlation of the forward and alpha, in ``(-1, 1)``.
        nu: vol of alpha (>= 0), per sqrt(year).

    Returns:
        Annualised Black implied vol, shape of the broadcast of the array arguments.

    Shape:
        - forward, strike, tau, alpha: any shapes that broadcast together.
        - output: their broadcast shape.

    Examples:
        >>> import numpy as np
        >>> vol = sabr_implied_vol(np.array([100.0, 100.0]), np.array([100.0, 90.0]), 1.0,
        ...                        2.0, 0.5, -0.3, 0.4)
        >>> np.round(vol, 10)  # QuantLib's sabrVolatility gives the same
        array([0.20179   , 0.21467028])
    """
    xp, (f, k, t, a) = _arrays(forward, strike, tau, alpha)
    f = xp.where(f > 0, f, k)
    omb = 1.0 - beta
    log_fk = xp.log(f / k)
    fk_half = (f * k) ** (0.5 * omb)  # (F K)^((1 - beta) / 2)
    z = (nu / a) * fk_half * log_fk
    lg2 = (omb * log_fk) ** 2
    denominator = fk_half * (1.0 + lg2 / 24.0 + lg2 * lg2 / 1920.0)
    time_terms = (
        omb * omb * a * a / (24.0 * fk_half * fk_half)
        + 0.25 * rho * beta * nu * a / fk_half
        + (2.0 - 3.0 * rho * rho) * nu * nu / 24.0
    )
    return a / denominator * _z_over_x(xp, z, rho) * (1.0 + time_terms * t)


@dataclass(frozen=True)
class SABRSurface:
    """The SABR smile (Hagan et al. 2002) with the path's ``level`` as alpha.

    The forward to the option's expiry is ``F = spot * exp((rate - dividend) * tau)`` and the
    implied vol is :func:`sabr_implied_vol` ``(F, strike, tau, alpha, beta, rho, nu)`` with
    ``alpha = level * exp((1 - beta) (rate - dividend) tau)``: ``level`` is the alpha of the
    spot (the :class:`~hedgearena.envs.sabr.SABR` market's ``vol_state``), and the forward,
    ``e^{(r - q) tau}`` times the spot, has its alpha scaled by that factor to the power
    ``1 - beta`` (exact: the forward is SABR with that alpha; 1 at zero carry or ``beta = 1``).
    Being a function of ``F`` and alpha, the SABR smile moves with the forward (its "backbone",
    set by ``beta``); the anchor is not used.

    Attributes:
        beta: CEV exponent in ``[0, 1]``.
        rho: correlation of the forward and alpha, in ``(-1, 1)``.
        nu: vol of alpha (>= 0), per sqrt(year).

    Examples:
        >>> import numpy as np
        >>> surface = SABRSurface(beta=0.5, rho=-0.3, nu=0.4)
        >>> np.round(surface.implied_vol(np.array([100.0]), 90.0, 1.0, 2.0, 100.0, 0.0, 0.0), 10)
        array([0.21467028])
    """

    beta: float = 0.5
    rho: float = -0.3
    nu: float = 0.4

    def __post_init__(self) -> None:
        validate_sabr(type(self).__name__, self.beta, self.rho, self.nu)

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
        """Hagan's implied vol of ``(strike, tau)``, the forward's alpha from ``level``."""
        xp, (spot, strike, tau, level) = _arrays(spot, strike, tau, level)
        forward = _forward(xp, spot, tau, rate, dividend)
        carry = (1.0 - self.beta) * (rate - dividend)
        alpha = level * xp.exp(carry * tau) if carry else level
        return sabr_implied_vol(forward, strike, tau, alpha, self.beta, self.rho, self.nu)


def validate_sabr(owner: str, beta: float, rho: float, nu: float) -> None:
    """Check SABR's ``beta`` in [0, 1], ``rho`` in (-1, 1) and ``nu >= 0`` (else ValueError)."""
    require_number(owner, "beta", beta, ge=0.0, le=1.0)
    require_number(owner, "rho", rho, gt=-1.0, lt=1.0)
    require_number(owner, "nu", nu, ge=0.0)


def heston_average_variance(variance: Any, tau: Any, kappa: float, theta: float) -> Any:
    r"""Expected average of Heston's variance over ``[0, tau]`` given ``v_0 = variance``.

    .. math::

        \frac{1}{\tau}\int_0^\tau E[v_t]\,dt = \theta + (v_0 - \theta)
            \frac{1 - e^{-\kappa\tau}}{\kappa\tau}

    from :math:`E[v_t] = \theta + (v_0 - \theta)e^{-\kappa t}` (Heston 1993); the factor
    tends to 1 as :math:`\kappa\tau \to 0` (series ``1 - x/2`` below ``1e-8``), so ``tau == 0``
    gives ``v_0``.

    Args:
        variance: instantaneous variance ``v_0``, per year.
        tau: horizon, years (>= 0).
        kappa: mean-reversion speed, per year (>= 0).
        theta: long-run variance, per year.

    Returns:
        The expected average variance, per year; shape of the broadcast.

    Examples:
        >>> import numpy as np
        >>> # at tau = 1: 0.04 + 0.05 * (1 - 1/2) / ln 2
        >>> np.round(heston_average_variance(np.array([0.09, 0.09]), np.array([0.0, 1.0]),
        ...                                  np.log(2.0), 0.04), 12)
        array([0.09      , 0.07606738])
    """
    xp, (v, t) = _arrays(variance, tau)
    x = kappa * t
    small = x < 1e-8
    xs = xp.where(small, xp.ones_like(x), x)
    factor = xp.where(small, 1.0 - 0.5 * x, -xp.expm1(-xs) / xs)
    return theta + (v - theta) * factor


def level_is_variance(surface: Any) -> bool:
    """Whether ``surface``'s ``level`` is a variance (Heston's surfaces) rather than a vol.

    Examples:
        >>> level_is_variance(FlatVol()), level_is_variance(HestonTermVol())
        (False, True)
    """
    return bool(getattr(surface, "level_is_variance", False))


@dataclass(frozen=True)
class HestonTermVol:
    r"""Heston's term structure of at-the-money vol, with the path's ``level`` as variance ``v``.

    .. math::

        \sigma(\tau) = \sqrt{\theta + (v - \theta)\frac{1 - e^{-\kappa\tau}}{\kappa\tau}}

    the square root of the expected average variance to expiry
    (:func:`heston_average_variance`); ``sqrt(v)`` at ``tau == 0``. This is an approximation: it
    is flat in strike and ignores the smile that the vol of variance and the spot-vol correlation
    create (and the convexity of the square root), so the marks are not Heston's prices and the
    hedged P&L carries the difference as a drift. At OptionBook's defaults (kappa 2, theta = v =
    0.04, xi 0.5, rho -0.7, 252 days a year) against QuantLib's AnalyticHestonEngine: a 60-day
    at-the-money call 3.89 against 3.69 (+5.5%), a 110 call 0.89 against 0.40, a 90 put 0.66
    against 0.97; a one-year at-the-money call is marked at 20% vol against Heston's 18.05%.
    Heston's own surface is :class:`~hedgearena.envs.heston_surface.HestonSurface` (the default
    of the Heston market); this one is a cheaper approximation, chosen explicitly.

    Attributes:
        kappa: mean-reversion speed of the variance, per year (>= 0).
        theta: long-run variance, per year (>= 0).

    Examples:
        >>> import numpy as np
        >>> surface = HestonTermVol(kappa=np.log(2.0), theta=0.04)
        >>> np.round(surface.implied_vol(100.0, 100.0, np.array([0.0, 1.0]), 0.09, 100.0, 0, 0), 10)
        array([0.3       , 0.27580315])
    """

    kappa: float = 2.0
    theta: float = 0.04
    level_is_variance: ClassVar[bool] = True
    """The path's ``level`` is a variance, not a vol (see :func:`level_is_variance`)."""

    def __post_init__(self) -> None:
        require_number(type(self).__name__, "kappa", self.kappa, ge=0.0)
        require_number(type(self).__name__, "theta", self.theta, ge=0.0)

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
        """Implied vol of expiry ``tau`` (the same for every strike)."""
        xp, (spot, strike, tau, level) = _arrays(spot, strike, tau, level)
        average = heston_average_variance(level, tau, self.kappa, self.theta)
        return xp.broadcast_arrays(xp.sqrt(xp.clip(average, min=0.0)), spot, strike)[0]
