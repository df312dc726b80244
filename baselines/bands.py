"""No-transaction bands: trade only when the hedge drifts too far from the model's delta.

A band hedger holds its position while it lies within ``model +- w`` and otherwise trades back
to the band's edge (the optimal rule for proportional costs: Hodges and Neuberger 1989,
"Optimal replication of contingent claims under transaction costs", Review of Futures Markets
8(2); Davis, Panas and Zariphopoulou 1993) or, by desk habit, to its centre. The hedgers differ
in the half-width ``w`` (units of the underlying):

- :class:`FixedBand`: a fixed delta tolerance, a multiple of the book's notional;
- :class:`WhalleyWilmott`: the asymptotically optimal width of Whalley and Wilmott (1997);
- :class:`AdaptiveBand`: a tolerance scaled up when the book's gamma or the volatility spikes.

With a hedging option (``action_dim == 2``) they hold the model's (gamma-neutral) position in it
at every decision and band the underlying around the model hedge that goes with it.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from hedgearena.baselines.delta import EnvHedger, FloatArray, stack_positions
from hedgearena.baselines.hedger import State
from hedgearena.envs.checks import is_number, is_real
from hedgearena.envs.vector_env import VecHedgingEnv

BAND_TARGETS = ("edge", "centre")


def checked_risk_aversion(value: float) -> float:
    """``value`` as a float: an absolute risk aversion, finite and > 0, per currency.

    Raises:
        ValueError: naming the value and the allowed range.
    """
    if not is_number(value, gt=0.0):  # bools and NaN are not numbers here
        raise ValueError(f"risk_aversion must be > 0 (per currency), got {value!r}")
    return float(value)


def band_position(
    previous: FloatArray, centre: FloatArray, half_width: FloatArray | float, to: str = "edge"
) -> FloatArray:
    """The position after a no-transaction-band decision.

    Inside the band ``[centre - w, centre + w]`` the position is held; outside, it moves to the
    band's nearest edge (``to="edge"``: ``clip(previous, centre - w, centre + w)``, Hodges and
    Neuberger 1989's rule) or back to the centre (``to="centre"``).

    Args:
        previous: positions held before the decision, ``(n_paths,)`` units.
        centre: the model's positions, ``(n_paths,)`` units.
        half_width: ``w >= 0``, units (broadcast).
        to: ``"edge"`` or ``"centre"``.

    Returns:
        The positions to hold, ``(n_paths,)``.

    Examples:
        >>> previous, centre = np.array([0.0, 48.0, 80.0]), np.full(3, 50.0)
        >>> band_position(previous, centre, 5.0)
        array([45., 48., 55.])
        >>> band_position(previous, centre, 5.0, to="centre")
        array([50., 48., 50.])
    """
    if to not in BAND_TARGETS:
        raise ValueError(f"to must be one of {', '.join(BAND_TARGETS)}; got {to!r}")
    if not np.all(np.asarray(half_width) >= 0):  # NaN fails too
        raise ValueError("half_width must be >= 0 units (a NaN or negative width was given)")
    if to == "edge":
        return np.clip(previous, centre - half_width, centre + half_width)
    return np.where(np.abs(previous - centre) > half_width, centre, previous)


def whalley_wilmott_half_width(
    cost_linear: FloatArray | float,
    gamma: FloatArray | float,
    risk_aversion: float,
    rate: float = 0.0,
    tau: FloatArray | float = 0.0,
) -> FloatArray:
    r"""Half-width of Whalley and Wilmott's asymptotically optimal no-transaction band.

    .. math::

        H = \left(\frac{3}{2}\, e^{-r\tau}\, \frac{\lambda S\, \Gamma^2}{\gamma}\right)^{1/3}

    the leading order, for small proportional costs ``lambda``, of the band of the
    utility-indifference hedge with exponential utility (Whalley and Wilmott 1997, "An
    asymptotic analysis of an optimal hedging model for option pricing with transaction costs",
    Mathematical Finance 7(3), 307-324; pfhedge's ``WhalleyWilmott.width`` is the ``r = 0``
    case per option). Units: ``lambda S`` is the cost per unit traded (currency per unit: the
    env's ``state["cost_linear"]``), ``Gamma`` the book's gamma, d(delta in units) / d(price,
    currency per unit), so units^2 per currency, and ``gamma`` the absolute risk aversion, per
    currency: ``(currency / unit) (unit^4 / currency^2) / (1 / currency) = unit^3``, and ``H``
    is in units of the underlying. The band scales like ``cost^(1/3)`` and ``|Gamma|^(2/3)``.

    Args:
        cost_linear: ``lambda S``, currency per unit traded (>= 0).
        gamma: the book's gamma (units per currency of spot move).
        risk_aversion: ``gamma`` of the exponential utility, per currency (> 0).
        rate: risk-free rate, per year.
        tau: time to the book's horizon, years.

    Returns:
        ``H`` in units of the underlying (broadcast shape).

    Examples:
        Hand check: ``3/2 * 1.0 * 2.0^2 / 0.75 = 8`` and ``8^(1/3) = 2``.

        >>> float(whalley_wilmott_half_width(1.0, 2.0, 0.75))
        2.0
        >>> float(whalley_wilmott_half_width(8.0, 2.0, 0.75))  # 8 x the cost: 2 x the width
        4.0
    """
    if not is_number(risk_aversion, gt=0.0):  # a string or None: this error, not a TypeError
        raise ValueError(f"risk_aversion must be a finite number > 0, got {risk_aversion!r}")
    if not np.all(np.asarray(cost_linear) >= 0):  # NaN fails too
        raise ValueError("cost_linear must be >= 0 (currency per unit traded)")
    discount = np.exp(-rate * np.asarray(tau, dtype=np.float64))
    return np.cbrt(1.5 * discount * np.asarray(cost_linear) * np.square(gamma) / risk_aversion)


def adaptive_half_width(
    base: FloatArray | float,
    gamma_ratio: FloatArray | float,
    vol_ratio: FloatArray | float,
    gamma_power: float = 2.0 / 3.0,
    vol_power: float = 1.0 / 3.0,
    scale_range: tuple[float, float] = (0.25, 4.0),
) -> FloatArray:
    r"""A volatility- and gamma-adaptive band: ``w = base * clip(g^a v^b, low, high)``.

    ``g = |Gamma| / Gamma_ref`` and ``v = sigma / sigma_ref`` are the book's gamma and the
    implied vol relative to their reference levels. The exponents follow Whalley and Wilmott
    (1997): their width grows like ``|Gamma|^(2/3)`` and like ``cost^(1/3)``; with costs
    proportional to volatility (spreads widen with vol, e.g. :class:`~hedgearena.envs.frictions.
    SpreadCost`) that is ``vol^(1/3)``. The clip keeps the band within a desk's limits.

    Args:
        base: the half-width at the reference levels (units).
        gamma_ratio: ``|Gamma| / Gamma_ref`` (>= 0).
        vol_ratio: ``sigma / sigma_ref`` (> 0).
        gamma_power: ``a``.
        vol_power: ``b``.
        scale_range: ``(low, high)`` bounds of the scale factor.

    Returns:
        The half-width (units, broadcast shape).

    Examples:
        Gamma 8 times its reference, vol at its reference: ``8^(2/3) = 4``.

        >>> round(float(adaptive_half_width(5.0, 8.0, 1.0)), 12)
        20.0
        >>> float(adaptive_half_width(5.0, 0.0, 1.0))  # no gamma: the floor, 0.25 x base
        1.25
    """
    low, high = scale_range
    scale = np.power(gamma_ratio, gamma_power) * np.power(vol_ratio, vol_power)
    return base * np.clip(scale, low, high)


class FixedBand(EnvHedger):
    """A fixed delta tolerance: rebalance only when ``|hedge - model|`` exceeds it.

    ``tolerance`` is delta per unit of notional: the band's half-width is ``tolerance * N``
    units, N the book's notional (``env.config.book.notional``, units of the underlying). Desks
    quote the same rule as "+-0.05 delta per $1M": a book of $1M notional may carry up to
    $50,000 of unhedged delta (5% of its notional) before it trades, i.e. ``tolerance=0.05``;
    on the ShortCall book (N = 100 shares) that is +-5 shares.

    Args:
        tolerance: half-width in delta per notional (>= 0; 0 is the model hedge).
        to: rebalance to the band's ``"edge"`` (fewer trades) or its ``"centre"``.
    """

    uses_observations = False  # reads the state only

    def __init__(self, tolerance: float, to: str = "edge") -> None:
        if not is_number(tolerance, ge=0.0):  # bools, strings and None fail here by name
            raise ValueError(f"tolerance must be >= 0 (delta per notional), got {tolerance!r}")
        if to not in BAND_TARGETS:
            raise ValueError(f"to must be one of {', '.join(BAND_TARGETS)}; got {to!r}")
        self.tolerance, self.to = float(tolerance), to
        self.name = f"band {tolerance:g} ({to})"

    def half_width(self, state: State) -> FloatArray:
        """The band's half-width on each path, units of the underlying."""
        return np.full(len(state["spot"]), self.tolerance * self.config.book.notional)

    def positions(self, state: State, obs: NDArray[np.float32]) -> FloatArray:
        """The previous hedge, brought back into the band when it has left it."""
        hedge = band_position(state["hedge"], state["model_hedge"], self.half_width(state), self.to)
        return stack_positions(hedge, state["model_option"], self.config.action_dim)


class WhalleyWilmott(EnvHedger):
    """Whalley and Wilmott's band: the previous hedge clipped into ``delta +- H``.

    ``H`` is :func:`whalley_wilmott_half_width` with the step's linear cost coefficient
    (``state["cost_linear"]``, currency per unit: ``lambda S`` for a proportional cost), the
    book's gamma (net of the hedging option's, when one is held) and the time left. Quadratic
    and fixed cost terms are not in the formula. At zero cost the band collapses to the model
    hedge.

    Args:
        risk_aversion: absolute risk aversion of the exponential utility, per currency (> 0).
            Larger = narrower band, more trading.
    """

    uses_observations = False  # reads the state only

    def __init__(self, risk_aversion: float) -> None:
        self.risk_aversion = checked_risk_aversion(risk_aversion)
        self.name = f"Whalley-Wilmott {risk_aversion:g}"

    def half_width(self, state: State) -> FloatArray:
        """``H`` on each path, units of the underlying."""
        gamma = state["book_gamma"] + state["model_option"] * state["option_gamma"]
        return whalley_wilmott_half_width(
            state["cost_linear"], gamma, self.risk_aversion, state["rate"], state["tau"]
        )

    def positions(self, state: State, obs: NDArray[np.float32]) -> FloatArray:
        """The previous hedge clipped into the band around the model hedge."""
        hedge = band_position(state["hedge"], state["model_hedge"], self.half_width(state))
        return stack_positions(hedge, state["model_option"], self.config.action_dim)


class AdaptiveBand(EnvHedger):
    """A delta tolerance that widens when the book's gamma or the volatility spikes.

    Half-width, units: ``base * N * clip((|Gamma| / Gamma_ref)^a (sigma / sigma_ref)^b, low,
    high)`` (:func:`adaptive_half_width`), with ``N`` the notional, ``Gamma_ref`` the gamma of
    ``N`` at-the-money options over the episode at the start, ``N n(0) / (S_0 sigma_0 sqrt(T))``,
    and ``sigma_ref = sigma_0`` the at-the-money implied vol at the start (per path).

    Why a market maker uses it: when gamma is high (short-dated options near the money) the
    delta whips with every tick, and a fixed tight band would pay the spread on noise that
    mostly reverses; when vol spikes, spreads widen and the same band costs more. Widening the
    band then (Whalley and Wilmott's scaling: ``Gamma^(2/3)``, ``cost^(1/3)``) saves cost where
    trading is least useful, and the clip keeps the risk within the desk's delta limit.

    Args:
        base: half-width at the reference levels, delta per notional (> 0).
        gamma_power: ``a`` (>= 0).
        vol_power: ``b`` (>= 0).
        scale_range: ``(low, high)`` bounds of the scale factor, ``0 <= low <= high``.
        to: rebalance to the band's ``"edge"`` or its ``"centre"``.
    """

    uses_observations = False  # reads the state only

    def __init__(
        self,
        base: float = 0.05,
        gamma_power: float = 2.0 / 3.0,
        vol_power: float = 1.0 / 3.0,
        scale_range: tuple[float, float] = (0.25, 4.0),
        to: str = "edge",
    ) -> None:
        if not is_number(base, gt=0.0):  # bools, strings and None fail here by name
            raise ValueError(f"base must be > 0 (delta per notional), got {base!r}")
        if not (is_number(gamma_power, ge=0.0) and is_number(vol_power, ge=0.0)):
            raise ValueError(
                "gamma_power and vol_power must be finite numbers >= 0, "
                f"got {gamma_power!r}, {vol_power!r}"
            )
        pair = isinstance(scale_range, tuple | list) and len(scale_range) == 2
        if not (pair and is_number(scale_range[0], ge=0.0) and is_real(scale_range[1])
                and scale_range[0] <= scale_range[1]):
            raise ValueError(
                f"scale_range must be a pair (low, high) with 0 <= low <= high, got {scale_range!r}"
            )
        if to not in BAND_TARGETS:
            raise ValueError(f"to must be one of {', '.join(BAND_TARGETS)}; got {to!r}")
        self.base, self.gamma_power, self.vol_power = float(base), gamma_power, vol_power
        self.scale_range, self.to = (float(scale_range[0]), float(scale_range[1])), to
        self.name = f"adaptive band {base:g}"

    def reset(self, env: VecHedgingEnv) -> None:
        """Fix the reference gamma and vol of each path at the start of the episodes."""
        super().reset(env)
        self._vol_ref, self._gamma_ref = self._references(env.state)

    def _references(self, state: State) -> tuple[FloatArray, FloatArray]:
        """``(sigma_ref, Gamma_ref)`` of each path, read from its state at its episode's start."""
        config = self.config
        vol_ref = np.maximum(state["implied_vol"], 1e-8)
        horizon = float(config.n_steps or 0) * config.dt
        density_at_zero = 1.0 / math.sqrt(2.0 * math.pi)
        gamma_ref = (
            config.book.notional * density_at_zero / (state["spot"] * vol_ref)
        ) / math.sqrt(horizon)
        return vol_ref, gamma_ref

    def half_width(self, state: State) -> FloatArray:
        """The band's half-width on each path, units of the underlying."""
        gamma = state["book_gamma"] + state["model_option"] * state["option_gamma"]
        return adaptive_half_width(
            self.base * self.config.book.notional,
            np.abs(gamma) / self._gamma_ref,
            state["implied_vol"] / self._vol_ref,
            self.gamma_power,
            self.vol_power,
            self.scale_range,
        )

    def positions(self, state: State, obs: NDArray[np.float32]) -> FloatArray:
        """The previous hedge, brought back into the adaptive band when it has left it."""
        self._vol_ref, self._gamma_ref = self.restart_references(
            state, (self._vol_ref, self._gamma_ref), self._references)
        hedge = band_position(state["hedge"], state["model_hedge"], self.half_width(state), self.to)
        return stack_positions(hedge, state["model_option"], self.config.action_dim)
