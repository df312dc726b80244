r"""The model's own minimum-variance delta: the smile-consistent hedge of a stochastic-vol market.

The env marks an option at the Black-Scholes price at the surface's implied vol,
``C(S, level) = BS(S, K, T, sigma_imp(K, T; S, level))``, where ``level`` is the path's surface
state (Heston's variance ``v``, SABR's alpha, ...; :mod:`hedgearena.envs.vol_surface`). The
Black-Scholes delta at the implied vol (:class:`~hedgearena.baselines.delta.BlackScholesDelta`)
holds the vol fixed; but the vol moves with the spot, through the surface's own dependence on
the spot and through the level, whose moves are correlated with the spot's. The hedge ratio that
minimises the variance of the hedged option over the next instant is

.. math::

    \Delta_{MV} = \frac{\mathrm{Cov}(dC, dS)}{\mathrm{Var}(dS)}
        = C_S + C_{level}\,\frac{\mathrm{Cov}(d\,level, dS)}{\mathrm{Var}(dS)},\qquad
    C_S = \Delta_{BS} + \mathcal{V}_{BS}\,\frac{\partial\sigma_{imp}}{\partial S},\quad
    C_{level} = \mathcal{V}_{BS}\,\frac{\partial\sigma_{imp}}{\partial\,level}

(Bakshi, Cao and Chen 1997, "Empirical performance of alternative option pricing models",
J. Finance 52(5), 2003-2049; Alexander and Nogueira 2007, "Model-free hedge ratios and
scale-invariant models", J. Banking & Finance 31(6), 1839-1861). The covariance ratio is the
market model's (:func:`vol_spot_covariance`):

=========================  =======================================  ===========================
market                     dynamics of spot and level               Cov(d level, dS) / Var(dS)
=========================  =======================================  ===========================
``heston``                 ``dS = sqrt(v) S dW1``,                  ``rho xi / S``
                           ``dv = xi sqrt(v) dW2``
``sabr``                   ``dS = alpha S^beta dW1``,               ``rho nu / S^beta``
                           ``d alpha = nu alpha dW2``               (Bartlett 2006)
``gbm``                    the level (the vol) does not move        0: ``C_S`` (``Delta_BS`` on
                                                                    a flat surface, exactly)
``merton``                 the level does not move; log-normal      0, and the jumps' own
                           jumps ``Y ~ N(m, s^2)`` at rate lambda   covariance (below)
=========================  =======================================  ===========================

(``d W1 d W2 = rho dt``; Bartlett 2006, "Hedging under SABR model", Wilmott Magazine, July,
2-4, with the spot as the underlying and the spot's alpha as the level, which carry leaves
as it is: :class:`~hedgearena.envs.sabr.SABR`.) Under Merton's jumps the price and the spot
also move together by jumps, and the ratio is the quadratic hedge of an exponential-Levy model
(Cont and Tankov 2004, "Financial modelling with jump processes", Chapman & Hall, section
10.4.2):

.. math::

    \Delta_{MV} = \frac{\sigma^2 C_S + \frac{\lambda}{S} E[(C(S e^Y) - C(S))(e^Y - 1)]}
        {\sigma^2 + \lambda E[(e^Y - 1)^2]}

(:func:`merton_minimum_variance_delta`, the expectation by Gauss-Hermite quadrature,
:func:`jump_covariance`), ``C(x)`` the mark at spot ``x`` (the surface's vol of ``x`` at the
path's level). Without jumps it is ``C_S``, which the jumps alone would make a poor hedge:
``C_S`` hedges the next instant's small moves, and a jump is not small.

The S&P 500 replay (``historical``) has no model of how its vol moves with the spot, and a
stress scenario's wrapper changes the base model's dynamics: both are refused, by name, when
the hedger is reset on them.

The surface's derivatives are exact derivatives of the surface function by torch autograd
(every surface of :mod:`hedgearena.envs` works on torch tensors): of a closed form (SABR, the
smile, the flat and the term surfaces) the closed form's, of a tabulated one (Heston's own,
Merton's) its interpolation's, piecewise linear on the refined table. Heston's own gives its vol
and these slopes in one numpy pass instead (:func:`one_pass_slopes`: the chain rule through its
table's cells, :meth:`~hedgearena.envs.heston_surface.HestonSurface.implied_vol_slopes`; the
same vol bit for bit and autograd's slopes to rounding, the hedger about twice as fast on
OptionBook-v0). Heston's vol slope in the variance is within 4.3% of Heston's
(:class:`~hedgearena.envs.heston_surface.HestonSurface`) for vols of 5% to 50%, and below a
variance of :data:`VARIANCE_FLOOR` (a vol of 2%), where the table's slope in ``v`` is
meaningless, it is taken at the floor. Against QuantLib's
AnalyticHestonEngine (``C_S + rho xi / S C_v`` by finite differences; 30 and 73 days, strikes
90 to 110, vols 14% to 30%, calls and puts, with and without carry) the hedge ratio is within
0.002 of Heston's own.

The book's hedge sums its held options (:class:`ModelDelta`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
from numpy.typing import NDArray

from hedgearena.baselines.delta import EnvHedger, FloatArray, stack_positions
from hedgearena.baselines.hedger import State
from hedgearena.baselines.leland import BookSlots
from hedgearena.baselines.minimum_variance import BookReader
from hedgearena.envs.black_scholes import black_scholes_greeks, black_scholes_price
from hedgearena.envs.gbm import GBM
from hedgearena.envs.heston import Heston
from hedgearena.envs.historical import HistoricalReplay
from hedgearena.envs.market import MarketModel, MarketPaths, VolSurface
from hedgearena.envs.merton import MertonJumpDiffusion
from hedgearena.envs.sabr import SABR
from hedgearena.envs.vector_env import VecHedgingEnv
from hedgearena.envs.vol_surface import level_is_variance

MODEL_MARKETS = ("gbm", "heston", "sabr", "merton")
"""The markets whose vol-spot covariance the hedger knows (:func:`vol_spot_covariance`)."""
VARIANCE_FLOOR = 4e-4
"""The least variance (a vol of 2%) at which a variance level's vol slope is taken
(:func:`model_slopes`; the option's vega stays its own). Heston's own surface is tabulated in
``v**(1/4)`` and interpolated linearly: near ``v = 0`` its slope in ``v`` grows like
``v**(-3/4)`` where Heston's ``C_v`` stays finite (at-the-money, 5 to 250 days: QuantLib's
``C_v`` is 88 to 59 at ``v = 1e-7``, the table's -35 to -26, and 108 to 72 at ``v = 1e-6``;
on OptionBook-v0 a path near ``v = 0`` asked for 246,000 units). From ``v = 4e-4`` up the
table's ``C_v`` is QuantLib's within 2.5% (to ``v = 0.01``); below it Heston's ``C_v`` changes
little, and the floor's slope gives at-the-money 73, 81, 77 against QuantLib's 88, 86, 80 at
``v = 1e-6`` (5, 20, 60 days; 3.3 against 4.2 for a 20-day 95 call), where the spot's own
variance, ``v S^2``, is small anyway."""


class VolSpotCovariance(NamedTuple):
    """``Cov(d level, dS) / Var(dS) = scale * S**(-power)`` of a market's dynamics.

    Attributes:
        scale: ``rho xi`` (Heston), ``rho nu`` (SABR), 0 (a level that does not move).
        power: the power of the spot it is divided by: 1 (Heston), ``beta`` (SABR), 0.
    """

    scale: float
    power: float

    def ratio(self, spot: Any) -> FloatArray:
        """The ratio at ``spot`` (currency), level units per currency, broadcast shape.

        Examples:
            >>> VolSpotCovariance(-0.35, 1.0).ratio(np.array([100.0, 50.0]))
            array([-0.0035, -0.007 ])
        """
        spot = np.asarray(spot, dtype=np.float64)
        if self.scale == 0.0:
            return np.zeros_like(spot)
        return self.scale * spot ** (-self.power)


def vol_spot_covariance(market: MarketModel) -> VolSpotCovariance:
    """The covariance ratio of the level and the spot of ``market`` (the module's table).

    Raises:
        ValueError: for a market without a model of how its vol moves with its spot: the S&P
            500 (or another) historical replay, a stress scenario's wrapper, a model of one's
            own; naming it and the markets allowed (:data:`MODEL_MARKETS`).

    Examples:
        >>> vol_spot_covariance(Heston(xi=0.5, rho=-0.7))
        VolSpotCovariance(scale=-0.35, power=1.0)
        >>> vol_spot_covariance(SABR(beta=0.5, rho=-0.3, nu=0.4))
        VolSpotCovariance(scale=-0.12, power=0.5)
    """
    if isinstance(market, Heston):
        return VolSpotCovariance(market.rho * market.xi, 1.0)
    if isinstance(market, SABR):
        return VolSpotCovariance(market.rho * market.nu, float(market.beta))
    if isinstance(market, GBM | MertonJumpDiffusion):
        return VolSpotCovariance(0.0, 0.0)
    allowed = (f"the model's minimum-variance delta allows the markets "
               f"{', '.join(MODEL_MARKETS)}, whose dynamics say how the vol moves with the spot")
    if isinstance(market, HistoricalReplay):
        raise ValueError(f"the historical replay of {market.name!r} (market 'historical') has no "
                         f"model of how its vol moves with its spot: {allowed} (hedge the replay "
                         "with delta or mv_delta:fit, which regresses it)")
    raise ValueError(f"{type(market).__name__} is not one of the markets it knows: {allowed}, "
                     "unwrapped (a stress scenario's wrapper changes the base's dynamics)")


JUMP_NODES = 24
"""Gauss-Hermite nodes of :meth:`JumpLaw.nodes`. The marks of Merton's tabulated surface are
smooth only piecewise (linear cells in the moneyness), so the rule converges slowly: at Merton's
defaults, 20-day calls struck at 80 to 120, the hedge ratio is within 6e-6 of an adaptive
quadrature's at 24 nodes, 8e-5 at 16, 6e-7 at 32 (tests)."""


class JumpLaw(NamedTuple):
    """Merton's diffusion and log-normal jumps (a ``MertonJumpDiffusion``'s).

    Attributes:
        sigma: the diffusive vol, per sqrt(year).
        intensity: ``lambda``, jumps per year.
        mean: ``m``, the mean log jump.
        std: ``s``, the log jump's standard deviation.
    """

    sigma: float
    intensity: float
    mean: float
    std: float

    def nodes(self) -> tuple[FloatArray, FloatArray]:
        """Log jumps ``y_j`` and weights ``w_j`` with ``E[f(Y)] ~ sum_j w_j f(y_j)``, ``(n,)``.

        Gauss-Hermite (probabilists') of :data:`JUMP_NODES` nodes; one node when ``s = 0``.

        Examples:
            >>> y, w = JumpLaw(0.2, 1.0, -0.1, 0.15).nodes()
            >>> round(float(w @ np.exp(y)), 12) == round(float(np.exp(-0.1 + 0.15**2 / 2)), 12)
            True
        """
        if self.std == 0.0:
            return np.array([self.mean]), np.ones(1)
        x, w = np.polynomial.hermite_e.hermegauss(JUMP_NODES)
        return self.mean + self.std * x, w / math.sqrt(2.0 * math.pi)

    def jump_variance(self) -> float:
        """``E[(e^Y - 1)^2] = e^{2m + 2s^2} - 2 e^{m + s^2/2} + 1``.

        Examples:
            >>> JumpLaw(0.2, 1.0, 0.0, 0.0).jump_variance()
            0.0
        """
        m, v = self.mean, self.std**2
        return math.expm1(2.0 * m + 2.0 * v) - 2.0 * math.expm1(m + 0.5 * v)


def jump_law(market: MarketModel) -> JumpLaw | None:
    """Merton's jumps of ``market``, None for a market without (or with no jumps: rate 0).

    Examples:
        >>> jump_law(MertonJumpDiffusion(sigma=0.2, jump_intensity=1.0, jump_mean=-0.1,
        ...                              jump_std=0.15))
        JumpLaw(sigma=0.2, intensity=1.0, mean=-0.1, std=0.15)
    """
    if not isinstance(market, MertonJumpDiffusion) or market.jump_intensity == 0.0:
        return None
    return JumpLaw(float(market.sigma), float(market.jump_intensity), float(market.jump_mean),
                   float(market.jump_std))


def jump_covariance(
    mark: Callable[[FloatArray], FloatArray], price: FloatArray, spot: FloatArray, law: JumpLaw
) -> FloatArray:
    """``E[(C(S e^Y) - C(S)) (e^Y - 1)]`` of some options, currency, ``(k,)``.

    Args:
        mark: the options' marks at spots ``(k,)`` (currency, ``(k,)``), each at its own.
        price: their marks at ``spot``, ``C(S)``, ``(k,)``.
        spot: the spot of each option's path, ``(k,)``.
        law: the jumps (:meth:`JumpLaw.nodes`; one mark of every option per node).

    Examples:
        A forward ``C(x) = x``: ``S E[(e^Y - 1)^2]``.

        >>> law = JumpLaw(0.2, 1.0, -0.1, 0.15)
        >>> got = jump_covariance(lambda x: x, np.array([100.0]), np.array([100.0]), law)
        >>> bool(abs(got[0] - 100.0 * law.jump_variance()) < 1e-12)
        True
    """
    total = np.zeros_like(spot)
    for y, w in zip(*law.nodes(), strict=True):  # a loop over the nodes, not over the paths
        total += w * math.expm1(y) * (mark(spot * math.exp(y)) - price)
    return total


def merton_minimum_variance_delta(
    c_s: FloatArray, covariance: FloatArray, spot: FloatArray, law: JumpLaw
) -> FloatArray:
    r"""The quadratic hedge of an option under Merton (Cont and Tankov 2004, section 10.4.2).

    ``(sigma^2 C_S + lambda J / S) / (sigma^2 + lambda E[(e^Y - 1)^2])``, ``J`` the option's
    :func:`jump_covariance`.

    Args:
        c_s: the options' ``C_S`` (their marks' slope in the spot), ``(k,)``.
        covariance: their :func:`jump_covariance`, currency, ``(k,)``.
        spot: the spot of each option's path, ``(k,)``.
        law: the jumps.

    Returns:
        ``(k,)`` units of the underlying per unit of the option.

    Examples:
        A forward (``C_S = 1``, ``J = S E[(e^Y - 1)^2]``) is hedged one for one.

        >>> law = JumpLaw(0.2, 1.0, -0.1, 0.15)
        >>> merton_minimum_variance_delta(np.array([1.0]), np.array([100 * law.jump_variance()]),
        ...                               np.array([100.0]), law)
        array([1.])
    """
    diffusion = law.sigma**2
    return ((diffusion * c_s + law.intensity * covariance / spot)
            / (diffusion + law.intensity * law.jump_variance()))


class SurfaceSlopes(NamedTuple):
    """The surface's implied-vol slopes of some options, ``(k,)`` each.

    Attributes:
        spot: ``d sigma_imp / dS`` at a fixed level (and anchor), vol per currency.
        level: ``d sigma_imp / d level`` at a fixed spot, vol per unit of the level.
    """

    spot: FloatArray
    level: FloatArray


def surface_slopes(
    surface: VolSurface, spot: Any, strike: Any, tau: Any, level: Any, anchor: Any,
    rate: float, dividend: float,
) -> SurfaceSlopes:
    """The exact slopes of ``surface``'s implied vol in the spot and the level (torch autograd).

    Each option's vol depends on its own entries only, so one backward pass of the sum of the
    vols gives every option's slopes. A surface whose vol does not depend on an input (the
    flat surface on the spot) has slope 0 there.

    Args:
        surface: the surface (it must work on torch tensors, as every surface of
            :mod:`hedgearena.envs` does).
        spot: the spot of each option's path, currency, ``(k,)``.
        strike: the options' strikes, currency, ``(k,)``.
        tau: their years to expiry, ``(k,)``.
        level: the surface level of each option's path, ``(k,)`` (see
            :class:`~hedgearena.envs.market.VolSurface`).
        anchor: the anchor spot of each option's path (the episode's first), ``(k,)``.
        rate: the market's risk-free rate, per year.
        dividend: the market's dividend yield, per year.

    Returns:
        The slopes (:class:`SurfaceSlopes`), float64 ``(k,)`` each.

    Examples:
        A sticky-delta smile ``level (1 + skew x)``, ``x = ln(K / S) / sqrt(T)``: its slope in
        the spot is ``-level skew / (S sqrt(T))`` = 0.2 * 0.1 / (100 * 0.5) = 4e-4.

        >>> from hedgearena.envs.vol_surface import SmileSurface
        >>> slopes = surface_slopes(SmileSurface(skew=-0.1, curvature=0.0), np.array([100.0]),
        ...                         np.array([100.0]), np.array([0.25]), np.array([0.2]),
        ...                         np.array([100.0]), 0.0, 0.0)
        >>> [round(float(s[0]), 12) for s in slopes]
        [0.0004, 1.0]
    """
    def tensor(values: Any, grad: bool = False) -> torch.Tensor:
        return torch.tensor(np.asarray(values, dtype=np.float64), requires_grad=grad)

    spot_t, level_t = tensor(spot, grad=True), tensor(level, grad=True)
    vol = surface.implied_vol(spot_t, tensor(strike), tensor(tau), level_t, tensor(anchor),
                              rate, dividend)
    if not (isinstance(vol, torch.Tensor) and vol.requires_grad):
        zeros = np.zeros(np.shape(spot_t))
        return SurfaceSlopes(zeros, zeros.copy())
    slopes = torch.autograd.grad(vol.sum(), (spot_t, level_t), allow_unused=True)
    return SurfaceSlopes(*(np.zeros(np.shape(spot_t)) if s is None else s.numpy()
                           for s in slopes))


def model_slopes(
    surface: VolSurface, spot: Any, strike: Any, tau: Any, level: Any, anchor: Any,
    rate: float, dividend: float,
) -> SurfaceSlopes:
    """:func:`surface_slopes`, the level's taken at a variance of at least :data:`VARIANCE_FLOOR`.

    For a surface whose level is a variance
    (:func:`~hedgearena.envs.vol_surface.level_is_variance`) the slope in the level is taken at
    ``max(v, VARIANCE_FLOOR)`` (see :data:`VARIANCE_FLOOR`); the slope in the spot at ``v``. A
    surface with its own one-pass ``implied_vol_slopes`` (:func:`one_pass_slopes`) gives them
    by it: :func:`surface_slopes`' to rounding. Arguments and shapes as :func:`surface_slopes`'.
    """
    return _model_vol_slopes(surface, one_pass_slopes(surface), spot, strike, tau, level,
                             anchor, rate, dividend)[1]


OnePass = Callable[[Any, Any, Any, Any, Any, float, float],
                   tuple[FloatArray, FloatArray, FloatArray]]
"""A surface's ``implied_vol_slopes(spot, strike, tau, level, anchor, rate, dividend)``: its
vol and the vol's slopes in the spot and the level, float64 of the inputs' shape each."""


def one_pass_slopes(surface: VolSurface) -> OnePass | None:
    """The surface's one-pass vol and slopes, if it has them for its own vol; else None.

    A surface may offer ``implied_vol_slopes`` (:data:`OnePass`): its vol, exactly as
    ``implied_vol`` gives it on numpy float64 arrays, and the exact slopes of that vol that
    :func:`surface_slopes` gets by torch autograd (to rounding), in one numpy pass (the tabulated
    :class:`~hedgearena.envs.heston_surface.HestonSurface`: half the cost of one autograd
    pass, which came on top of the vol's). Only one defined by the class that defines the
    surface's ``implied_vol`` counts: a subclass that overrides ``implied_vol`` alone is
    differentiated by autograd.

    Examples:
        >>> from hedgearena.envs.heston_surface import HestonSurface
        >>> from hedgearena.envs.vol_surface import SABRSurface
        >>> one_pass_slopes(HestonSurface()) is not None, one_pass_slopes(SABRSurface())
        (True, None)
    """
    for klass in type(surface).__mro__:
        attributes = vars(klass)
        if "implied_vol_slopes" in attributes:
            own: OnePass | None = getattr(surface, "implied_vol_slopes", None)
            return own if "implied_vol" in attributes else None
        if "implied_vol" in attributes:
            return None
    return None


def _model_vol_slopes(
    surface: VolSurface, one_pass: OnePass | None, spot: Any, strike: Any, tau: Any,
    level: Any, anchor: Any, rate: float, dividend: float,
) -> tuple[FloatArray | None, SurfaceSlopes]:
    """:func:`model_slopes`, and the vol where the surface's one pass gives it (else None).

    ``one_pass`` is :func:`one_pass_slopes` of ``surface`` (looked up once by the caller).
    """
    def slopes_at(s: Any, k: Any, t: Any, v: Any, a: Any) -> tuple[FloatArray | None,
                                                                    SurfaceSlopes]:
        if one_pass is None:
            return None, surface_slopes(surface, s, k, t, v, a, rate, dividend)
        vol, d_spot, d_level = one_pass(s, k, t, v, a, rate, dividend)
        return vol, SurfaceSlopes(d_spot, d_level)

    vol, slopes = slopes_at(spot, strike, tau, level, anchor)
    low = np.flatnonzero(np.asarray(level) < VARIANCE_FLOOR) if level_is_variance(surface) \
        else np.zeros(0, dtype=np.intp)
    if low.size:
        slopes.level[low] = slopes_at(
            np.take(spot, low), np.take(strike, low), np.take(tau, low),
            np.full(low.size, VARIANCE_FLOOR), np.take(anchor, low),
        )[1].level
    return vol, slopes


def smile_adjustment(vega: Any, slopes: SurfaceSlopes, ratio: Any) -> FloatArray:
    r"""``Delta_MV - Delta_BS = vega (d sigma / dS + ratio * d sigma / d level)``, units.

    The model's minimum-variance delta of an option is its Black-Scholes delta plus this
    (the module's formula: ``C_S - Delta_BS`` and ``C_level`` times the covariance ratio).

    Args:
        vega: one unit's Black-Scholes vega, currency per unit of vol, ``(k,)``.
        slopes: the surface's slopes of the options (:func:`surface_slopes`).
        ratio: ``Cov(d level, dS) / Var(dS)`` at each option's path
            (:meth:`VolSpotCovariance.ratio`), ``(k,)``.

    Returns:
        ``(k,)`` units of the underlying per unit of the option.

    Examples:
        >>> smile_adjustment(np.array([20.0]), SurfaceSlopes(np.array([4e-4]), np.array([1.5])),
        ...                  np.array([-0.0035]))
        array([-0.097])
    """
    return np.asarray(vega) * (slopes.spot + np.asarray(ratio) * slopes.level)


class ModelDelta(EnvHedger):
    """The model's own minimum-variance delta hedge of the book, with the underlying.

    Holds ``-(sum_i q_i Delta_MV,i + stock) = -(book delta + sum_i q_i vega_i (d sigma_i / dS
    + ratio d sigma_i / d level))`` over the options ``i`` held on the path at the decision
    (``q_i`` signed units, ``vega_i`` one unit's at the surface's vol; see the module's
    docstring and :func:`smile_adjustment`), at every decision; with a hedging option it holds
    none, as :class:`~hedgearena.baselines.delta.BlackScholesDelta` does. On a flat surface
    whose level does not move (GBM) it is the Black-Scholes delta hedge, to the last bit. Under
    Merton's jumps each option's ratio is :func:`merton_minimum_variance_delta` instead
    (:data:`JUMP_NODES` repricings of every held option a decision).

    Refused at :meth:`reset` (before its first position): a market without a vol-spot model
    (:func:`vol_spot_covariance`), a surface that does not work on torch tensors. The held
    options' vols and slopes come in one pass from a surface that has one
    (:func:`one_pass_slopes`: Heston's own), else from autograd.
    """

    uses_observations = False  # reads the state only

    name = "model MV delta"

    def __init__(self) -> None:
        self._reader: BookReader | None = None
        self._covariance = VolSpotCovariance(0.0, 0.0)
        self._jumps: JumpLaw | None = None
        self._one_pass: OnePass | None = None

    def reset(self, env: VecHedgingEnv) -> None:
        """Read the market's covariance ratio and the book (a ``ValueError`` if refused)."""
        covariance = vol_spot_covariance(env.config.market)
        _check_torch_surface(env.batch.market.surface)
        super().reset(env)
        self._covariance, self._jumps = covariance, jump_law(env.config.market)
        self._one_pass = one_pass_slopes(env.batch.market.surface)
        self._reader = BookReader()
        self._reader.reset(env)

    def positions(self, state: State, obs: NDArray[np.float32]) -> FloatArray:
        """Minus the book's model delta, ``(n_paths, action_dim)`` (none of a hedging option)."""
        hedge = -(np.asarray(state["book_delta"]) + self.book_adjustment(state))
        return stack_positions(hedge, np.zeros_like(hedge), self.config.action_dim)

    def book_adjustment(self, state: State) -> FloatArray:
        """``sum_i q_i (Delta_MV,i - Delta_BS,i)`` over the options held, ``(n_paths,)``, units.

        The held options' vols and their slopes come from the surface's one pass where it has
        one (:func:`one_pass_slopes`), else the vols from the book's reader (shared with the
        arena's other hedgers of the batch) and the slopes from autograd (:func:`model_slopes`).
        """
        reader = self._reader
        if reader is None:
            raise RuntimeError("ModelDelta: call reset(env) before positions()")
        held = self._held(reader, state)
        law, market = self._jumps, self.env.batch.market
        greeks = black_scholes_greeks(  # a put's vega is its call's: the same numbers
            held.spot, held.slots.strike, held.slots.tau, held.vol, market.rate, market.dividend,
            True if law is None else held.slots.is_call,
            select=("vega",) if law is None else ("price", "delta", "vega"))
        adjustment = smile_adjustment(greeks.vega, held.slopes, held.ratio)
        if law is not None:  # Merton: the diffusion's C_S and the jumps' covariance
            delta = np.asarray(greeks.delta, dtype=np.float64)
            covariance = jump_covariance(held.mark, np.asarray(greeks.price), held.spot, law)
            adjustment = merton_minimum_variance_delta(
                delta + adjustment, covariance, held.spot, law) - delta
        return np.bincount(held.slots.path, weights=held.slots.held * adjustment,
                           minlength=len(state["spot"]))

    def _held(self, reader: BookReader, state: State) -> _HeldOptions:
        """The options held at ``state``, their vols and model slopes (:class:`_HeldOptions`)."""
        market = self.env.batch.market
        if self._one_pass is None:
            slots, vol = reader.held_implied_vols(state)
        else:  # the vols come with the slopes
            slots, vol = reader.book_slots(state, held_only=True), None
        paths = np.asarray(state["spot"], dtype=np.float64)  # each path's, then each slot's
        level = market.vol_state[np.arange(len(paths)), np.asarray(state["step"])]
        spot, level, anchor, ratio = (
            x.take(slots.path)
            for x in (paths, level, market.spot[:, 0], self._covariance.ratio(paths)))
        own, slopes = _model_vol_slopes(market.surface, self._one_pass, spot, slots.strike,
                                        slots.tau, level, anchor, market.rate, market.dividend)
        return _HeldOptions(slots, spot, level, anchor, ratio, own if vol is None else vol,
                            slopes, market)


class _HeldOptions(NamedTuple):
    """The options held on each path at one decision, ``(k,)`` each (path-major).

    Attributes:
        slots: the book's held slots (:meth:`BookReader.book_slots`).
        spot: the spot of each option's path, currency.
        level: the surface level of each option's path.
        anchor: the anchor spot of each option's path (its first).
        ratio: the covariance ratio at each option's path (:meth:`VolSpotCovariance.ratio`).
        vol: the surface's vol of each option.
        slopes: the surface's slopes of each option (:func:`model_slopes`).
        market: the batch's market paths (their surface, rate and dividend).
    """

    slots: BookSlots
    spot: FloatArray
    level: FloatArray
    anchor: FloatArray
    ratio: FloatArray
    vol: FloatArray
    slopes: SurfaceSlopes
    market: MarketPaths

    def mark(self, spot: FloatArray) -> FloatArray:
        """The options' marks at spots ``spot`` (each its own), their paths' levels, currency."""
        market, slots = self.market, self.slots
        vol = market.surface.implied_vol(spot, slots.strike, slots.tau, self.level, self.anchor,
                                         market.rate, market.dividend)
        return np.asarray(black_scholes_price(spot, slots.strike, slots.tau, vol, market.rate,
                                              market.dividend, slots.is_call), dtype=np.float64)


def _check_torch_surface(surface: VolSurface) -> None:
    """Raise ``ValueError`` unless ``surface``'s vol of a torch tensor is a tensor with a grad."""
    one = np.ones(1)
    try:
        slopes = surface_slopes(surface, 100.0 * one, 100.0 * one, 0.1 * one, 0.04 * one,
                                100.0 * one, 0.0, 0.0)
    except (TypeError, ValueError, RuntimeError, AttributeError) as error:
        raise ValueError(
            f"the model's minimum-variance delta differentiates the surface with torch autograd: "
            f"{type(surface).__name__}.implied_vol failed on torch tensors ({error}); a surface "
            "must compute with the namespace of its inputs (array_api_compat.array_namespace), "
            "as the surfaces of hedgearena.envs.vol_surface do"
        ) from None
    if not all(np.isfinite(s).all() for s in slopes):
        raise ValueError(f"{type(surface).__name__}: its vol's slopes are not finite at spot "
                         "100, strike 100, 0.1 years, level 0.04")
