r"""The Heston (1993) stochastic-volatility model, simulated with Andersen's QE scheme.

.. math::

    dS_t = \mu S_t\,dt + \sqrt{v_t} S_t\,dW_t, \qquad
    dv_t = \kappa(\theta - v_t)\,dt + \xi\sqrt{v_t}\,dZ_t, \qquad d\langle W, Z\rangle_t = \rho\,dt

References:
    S. L. Heston (1993), "A closed-form solution for options with stochastic volatility with
    applications to bond and currency options", Review of Financial Studies 6(2), 327-343.
    L. Andersen (2008), "Simple and efficient simulation of the Heston stochastic volatility
    model", Journal of Computational Finance 11(3), 1-42 (QE scheme, section 3.2.4; log-spot
    scheme, eq. (33); martingale correction, section 4.2.3).
    R. Lord, R. Koekkoek, D. van Dijk (2010), "A comparison of biased simulation schemes for
    stochastic volatility models", Quantitative Finance 10(2), 177-194 (full truncation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from hedgearena.envs.checks import require_field, require_number, require_surface_or_name
from hedgearena.envs.gbm import price_drift, time_grid, validate_market
from hedgearena.envs.heston_surface import HestonSurface
from hedgearena.envs.market import FloatArray, MarketPaths, VolSurface
from hedgearena.envs.vol_surface import HestonTermVol

SCHEMES = ("qe", "full_truncation")
SURFACE_NAMES = ("own", "term")
"""The surfaces a Heston market can be given by name (see :attr:`Heston.surface`)."""
PSI_CRITICAL = 1.5
"""Andersen's switching level of ``psi = s^2 / m^2`` between the quadratic and exponential QE."""


class QEStep(NamedTuple):
    """One QE step of the variance: the new variance and ``log E[exp(A v_next) | v]``."""

    variance: FloatArray
    log_mgf: FloatArray


def qe_variance_step(
    v: FloatArray,
    dt: float,
    kappa: float,
    theta: float,
    xi: float,
    normal: FloatArray,
    uniform: FloatArray,
    mgf_arg: float,
) -> QEStep:
    r"""Andersen's (2008) quadratic-exponential step of the Heston variance.

    Matches the conditional mean ``m`` and variance ``s^2`` of :math:`v_{t+\Delta}` exactly:

    .. math::

        m = \theta + (v - \theta)e^{-\kappa\Delta}, \quad
        s^2 = \frac{v\xi^2 e^{-\kappa\Delta}}{\kappa}(1 - e^{-\kappa\Delta})
            + \frac{\theta\xi^2}{2\kappa}(1 - e^{-\kappa\Delta})^2, \quad \psi = s^2 / m^2.

    For :math:`\psi \le 1.5`: :math:`v' = a(b + Z)^2`,
    :math:`b^2 = 2/\psi - 1 + \sqrt{2/\psi}\sqrt{2/\psi - 1}`, :math:`a = m / (1 + b^2)`.
    Otherwise :math:`v' = 0` if :math:`U \le p`, else :math:`\ln((1 - p)/(1 - U))/\beta`, with
    :math:`p = (\psi - 1)/(\psi + 1)`, :math:`\beta = (1 - p)/m`. The variance is never negative.

    Also returns :math:`\ln M(A)`, :math:`M(A) = E[e^{A v'} | v]`, used by the martingale
    correction: :math:`e^{A b^2 a / (1 - 2Aa)} / \sqrt{1 - 2Aa}` (needs :math:`A < 1/(2a)`) and
    :math:`p + \beta(1 - p)/(\beta - A)` (needs :math:`A < \beta`); NaN where it does not exist.

    Args:
        v: variance at the start of the step, per year (>= 0).
        dt: step, years.
        kappa: mean-reversion speed, per year (> 0).
        theta: long-run variance, per year (> 0).
        xi: vol of variance, per sqrt(year) (> 0).
        normal: standard normal draws (used on quadratic paths).
        uniform: uniform [0, 1) draws (used on exponential paths).
        mgf_arg: the argument ``A`` of the moment generating function.

    Shape:
        All arrays ``(n_paths,)``.
    """
    decay = math.exp(-kappa * dt)
    growth = -math.expm1(-kappa * dt)  # 1 - decay, to every digit when kappa dt is tiny
    m = theta + (v - theta) * decay
    s2 = xi**2 * growth / kappa * (v * decay + 0.5 * theta * growth)
    psi = s2 / (m * m)
    quadratic = psi <= PSI_CRITICAL
    # quadratic branch (psi replaced by 1 where unused, to stay finite)
    two_over_psi = 2.0 / np.where(quadratic, psi, 1.0)
    b2 = two_over_psi - 1.0 + np.sqrt(two_over_psi * (two_over_psi - 1.0))
    a = m / (1.0 + b2)
    v_quadratic = a * (np.sqrt(b2) + normal) ** 2
    one_minus_2aa = 1.0 - 2.0 * mgf_arg * a
    ok_q = one_minus_2aa > 0
    safe_q = np.where(ok_q, one_minus_2aa, 1.0)
    log_mgf_q = np.where(ok_q, mgf_arg * b2 * a / safe_q - 0.5 * np.log(safe_q), np.nan)
    # exponential branch (psi replaced by 2 where unused)
    psi_e = np.where(quadratic, 2.0, psi)
    p = (psi_e - 1.0) / (psi_e + 1.0)
    beta = (1.0 - p) / m
    v_exponential = np.where(uniform <= p, 0.0, np.log((1.0 - p) / (1.0 - uniform)) / beta)
    ok_e = beta > mgf_arg
    safe_e = np.where(ok_e, beta - mgf_arg, 1.0)
    log_mgf_e = np.where(ok_e, np.log(p + beta * (1.0 - p) / safe_e), np.nan)
    return QEStep(
        np.where(quadratic, v_quadratic, v_exponential), np.where(quadratic, log_mgf_q, log_mgf_e)
    )


@dataclass(frozen=True)
class Heston:
    r"""Heston's stochastic-volatility market, simulated for a whole batch at once.

    Schemes:

    - ``"qe"`` (default): Andersen's (2008) QE step of the variance (:func:`qe_variance_step`)
      and his log-spot step with central weights :math:`\gamma_1 = \gamma_2 = 1/2`,
      :math:`\ln X' = \ln X + K_0^* + K_1 v + K_2 v' + \sqrt{K_3 v + K_4 v'}\,Z`, with the
      martingale correction :math:`K_0^* = -\ln M(K_2 + K_4/2) - (K_1 + K_3/2) v`, which makes
      :math:`E[S_{t+\Delta} | S_t, v_t] = S_t e^{\mu\Delta}` exactly. Where :math:`M` does not
      exist (large steps with :math:`\rho > 0`), the uncorrected
      :math:`K_0 = -\rho\kappa\theta\Delta/\xi` is used, as Andersen suggests; the spot
      is then no martingale (one 5-year step at :math:`\xi = 2`, :math:`\rho = 0.95` gives
      :math:`E[S_T]` of 300 to 400 for a spot of 100): take smaller steps there.
    - ``"full_truncation"``: Lord, Koekkoek and van Dijk's (2010) full-truncation Euler scheme,
      :math:`\tilde v' = \tilde v + \kappa(\theta - \tilde v^+)\Delta
      + \xi\sqrt{\tilde v^+\Delta}\,Z_v`; the spot steps log-normally with :math:`\tilde v^+`.
      The reported variance is :math:`\tilde v^+` (never negative). The spot stays a
      martingale, but the variance is biased at coarse steps: with the defaults but
      :math:`v_0 = 0.09`, at :math:`\Delta = 1/4`, :math:`E[v_1]` comes out 0.0441 against
      0.0468 (0.0412 against 0.04 with :math:`v_0 = \theta`), and with :math:`\xi = 1`,
      :math:`\rho = -0.9`, :math:`v_0 = 0.02` a one-year at-the-money call is 12% too dear at
      monthly steps and still 0.3% at daily ones (+0.31% +- 0.08%, 800,000 paths; it was
      quoted as 1%) (QE: within its Monte Carlo error at monthly steps). Prefer ``"qe"``.

    ``mu`` is the real-world drift of the price (the variance keeps its dynamics: no market price
    of volatility risk); ``mu=None`` simulates under the risk-neutral measure, ``mu = rate -
    dividend``. ``variance`` and ``vol_state`` are both the instantaneous variance ``v``, the
    level of the default surface, Heston's own :class:`HestonSurface` of the model's parameters.

    Attributes:
        kappa: mean-reversion speed of the variance, per year (> 0).
        theta: long-run variance, per year (> 0).
        xi: vol of variance, per sqrt(year) (> 0).
        rho: correlation of spot and variance shocks, in [-1, 1].
        v0: initial variance, per year (>= 0).
        mu: drift of the price, per year (None: ``rate - dividend``).
        spot0: initial spot, currency (> 0).
        rate: risk-free rate, per year.
        dividend: continuous dividend yield, per year.
        scheme: ``"qe"`` or ``"full_truncation"``.
        surface: the implied-vol surface: a VolSurface, or by name (YAML and ``--set`` too)
            ``"own"`` (the default, also None: the model's own :class:`HestonSurface`) or
            ``"term"`` (:class:`HestonTermVol` of the model's ``kappa, theta``: flat in strike,
            faster).

    Examples:
        >>> paths = Heston(v0=0.04).simulate(4, 3, 1 / 252, np.random.default_rng(0))
        >>> paths.spot.shape, bool((paths.variance >= 0).all()), float(paths.vol_state[0, 0])
        ((4, 4), True, 0.04)
    """

    kappa: float = 2.0
    theta: float = 0.04
    xi: float = 0.5
    rho: float = -0.7
    v0: float = 0.04
    mu: float | None = None
    spot0: float = 100.0
    rate: float = 0.0
    dividend: float = 0.0
    scheme: str = "qe"
    surface: VolSurface | str | None = None

    def __post_init__(self) -> None:
        name = type(self).__name__
        validate_market(name, self.spot0, self.rate, self.dividend, self.mu)
        require_surface_or_name(name, self.surface, SURFACE_NAMES, variance_level=True)
        require_number(name, "kappa", self.kappa, gt=0.0)
        require_number(name, "theta", self.theta, gt=0.0)
        require_number(name, "xi", self.xi, gt=0.0)
        require_number(name, "rho", self.rho, ge=-1.0, le=1.0)
        require_number(name, "v0", self.v0, ge=0.0)
        require_field(name, "scheme", self.scheme, self.scheme in SCHEMES, f"one of {SCHEMES}")

    @property
    def vol_surface(self) -> VolSurface:
        """The surface that marks options: ``surface``, or the one it names."""
        if self.surface == "term":
            return HestonTermVol(self.kappa, self.theta)
        if self.surface is None or isinstance(self.surface, str):  # "own"
            return HestonSurface(self.kappa, self.theta, self.xi, self.rho)
        return self.surface

    def simulate(
        self, n_paths: int, n_steps: int, dt: float, rng: np.random.Generator
    ) -> MarketPaths:
        """Simulate ``n_paths`` paths of ``n_steps`` steps of ``dt`` years from ``rng``.

        Each step draws two standard normals and one uniform per path, in that order.

        Shape:
            Every array of the result is ``(n_paths, n_steps + 1)``.
        """
        times = time_grid(type(self).__name__, n_paths, n_steps, dt, rng)
        step = self._qe_step if self.scheme == "qe" else self._full_truncation_step
        log_spot = np.zeros((n_paths, n_steps + 1))
        variance = np.full((n_paths, n_steps + 1), float(self.v0))
        state = variance[:, 0].copy()  # the scheme's own variance state (may be < 0 for FT)
        for j in range(n_steps):
            normals = rng.standard_normal((2, n_paths))
            uniform = rng.random(n_paths)
            d_log, state = step(state, dt, normals, uniform)
            log_spot[:, j + 1] = log_spot[:, j] + d_log
            variance[:, j + 1] = np.maximum(state, 0.0)
        drift = price_drift(self.mu, self.rate, self.dividend)
        return MarketPaths(
            times=times,
            spot=self.spot0 * np.exp(log_spot + drift * times),
            variance=variance,
            vol_state=variance.copy(),
            surface=self.vol_surface,
            rate=self.rate,
            dividend=self.dividend,
        )

    def _qe_step(
        self, v: FloatArray, dt: float, normals: FloatArray, uniform: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Driftless log-spot increment and the new variance (Andersen 2008, eq. (33))."""
        kappa, theta, xi, rho = self.kappa, self.theta, self.xi, self.rho
        k1 = 0.5 * dt * (kappa * rho / xi - 0.5) - rho / xi
        k2 = 0.5 * dt * (kappa * rho / xi - 0.5) + rho / xi
        k3 = k4 = 0.5 * dt * (1.0 - rho * rho)
        new = qe_variance_step(v, dt, kappa, theta, xi, normals[0], uniform, k2 + 0.5 * k4)
        k0_uncorrected = -rho * kappa * theta * dt / xi
        k0 = np.where(
            np.isnan(new.log_mgf), k0_uncorrected, -np.nan_to_num(new.log_mgf) - (k1 + 0.5 * k3) * v
        )
        d_log = k0 + k1 * v + k2 * new.variance + np.sqrt(k3 * v + k4 * new.variance) * normals[1]
        return d_log, new.variance

    def _full_truncation_step(
        self, v: FloatArray, dt: float, normals: FloatArray, uniform: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Driftless log-spot increment and the new (auxiliary) variance (Lord et al. 2010)."""
        v_plus = np.maximum(v, 0.0)
        root = np.sqrt(v_plus * dt)
        z_spot = self.rho * normals[0] + math.sqrt(1.0 - self.rho**2) * normals[1]
        new = v + self.kappa * (self.theta - v_plus) * dt + self.xi * root * normals[0]
        return -0.5 * v_plus * dt + root * z_spot, new
