"""The one batched core: every P&L number of hedgearena is booked here.

An episode has two parts. The exogenous part, :class:`Episode`, does not depend on the hedger:
market paths, the option book's marks, greeks and cash flows, the hedging option's marks, the
cost coefficients and the observation features; it is computed once per episode for the whole
batch. The endogenous part, :class:`HedgeState`, is what the hedger's trades change: the
positions in the underlying and in the hedging option, and the cash account. :func:`transition`
applies one decision to it and books the P&L.

The formulas below are written with arithmetic operators and a one-function ``ops`` namespace
(``clip``), so the same code steps numpy arrays of many paths (the vector env) and
plain Python floats of one path (the single env, where numpy's per-call overhead would dominate).

Accounting. Wealth is ``W = B + h S + g O + cash``: the book's mark ``B`` (options held plus the
book's own stock), the hedge ``h`` units of the underlying at spot ``S``, ``g`` units of the
hedging option at mark ``O`` and the cash account. A decision at market step ``t`` trades to the
new positions at ``S_t`` and ``O_t`` paying the cost; then for each market step ``s`` until the
next decision, the P&L of ``(s, s+1]`` is::

    option_mtm  = B_{s+1} - B_s + settlement_{s+1} + premium_{s+1}      (marks of held options)
    hedge_pnl   = h (S_{s+1} - S_s) + g (O_{s+1} - O_s)
    carry       = cash_s (e^{r dt} - 1) + (h + stock) S_s (e^{q dt} - 1)  (interest, dividends)
    spread      = spread_income_{s+1}                                   (client half-spreads)
    dW          = option_mtm + hedge_pnl + carry + spread - cost

The sum of the components over an episode equals ``W_T - W_0`` (a test checks it on every path).

Stress mechanics (all off by default; the default path below is then the one that runs). When a
setting is on, the decision is executed by :func:`_stressed_transition`, market step by market
step, with the formulas of :mod:`hedgearena.envs.execution`:

- Partial fills (``Episode.fill_fraction``, ``Episode.fill_cap``, from the market paths): an
  order fills ``q * fill_fraction_s``, or nothing past ``fill_cap_s`` units. The unfilled part
  stays as exposure (the position is simply not reached) and is reported as ``unfilled``
  (``option_unfilled`` for the hedging option); costs are paid on the filled part only. The
  unwind at the end is subject to the last step's fills: what does not fill stays held, marked
  at the last step's prices (wealth stays honest) and reported in the last ``unfilled``;
  except under permanent impact, where the unwind (and a ``terminate`` limit's sale) fills
  whole, so that no position is left marked at a spot its own buying pushed up.
- Child orders (``CoreConfig.execution``): ``immediate`` (the whole order at the decision step),
  ``twap`` (``1 / rebalance_every`` of it at each market step of the interval) or
  ``participation`` (at most ``Episode.child_cap`` units a step, ``execution_rate * N /
  liquidity_s``, the rest carried on within the interval and dropped at the next decision).
  Each child pays its own step's price and cost.
  ``slippage`` = sum over the fills of ``q (executed price - decision price)`` (currency; the
  cost of delay and of impact, part of the P&L through the marks, reported apart from ``cost``).
- Permanent impact (``CoreConfig.permanent_impact`` = k): every unit traded moves the log spot
  by ``k / notional`` for the rest of the episode, so the traded spot is ``S_t e^{I_t}``,
  ``I_t = k sum(q) / N`` (``HedgeState.impact``); buying pushes the price up. A trade executes
  at the average price along its move (:func:`~hedgearena.envs.execution.average_price_factor`),
  then the book and the spot are re-marked exactly at the new spot (``transition``'s
  ``remark``, in place) and the revaluation is booked as::

    impact_pnl = (B' - B) + (h + q) S' - h S - q * price

  (primes after the trade). Rows whose impact is non-zero are re-marked at every later step
  before their P&L is booked. What the hedger is paid on stays the market's: options
  expiring at a step settle at the market's spot, and the hedging option is quoted at it
  (``O' = O``; :func:`hedgearena.envs.episode.mark_step`), so neither marking the close nor
  pushing the spot while holding the option pays. The hedge is unwound at the end
  (``unwind=True`` is required) and the unwind fills whole, so no position is left marked at
  a spot its own buying pushed up.

- Risk limits (``CoreConfig.risk_limits``, :mod:`hedgearena.envs.limits`) are watched by the
  envs after each decision, per row: a breach is reported, or forces the next decision to the
  model's position (``flatten``), or ends the episode (``terminate``), the positions then sold
  by :func:`liquidate` (the unwind's rules, at the breach step). They book no P&L of their own.

With the stress settings ``dW = option_mtm + hedge_pnl + carry + spread + impact_pnl - cost``,
and the identity holds in every mode. Fills and child orders work on torch tensors too
(differentiable); permanent impact and risk limits raise a ``ValueError`` there.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, NamedTuple, cast

import numpy as np

from hedgearena.envs.checks import is_integer, is_number
from hedgearena.envs.execution import (
    EXECUTIONS,
    average_price_factor,
    check_impact,
    child_order,
    filled_order,
)
from hedgearena.envs.frictions import cost_polynomial, round_to_lot
from hedgearena.envs.limits import RiskLimits
from hedgearena.envs.market import FloatArray

ACTION_MODES = ("target", "trade", "fraction", "band")
REWARD_MODES = ("pnl", "mean_variance", "terminal", "terminal_mean_variance")
INITIAL_HEDGES = ("zero", "delta")
ALL_FILLED = 1.0
"""``Episode.fill_fraction`` of episodes where every order fills (the default)."""
NO_CAP = math.inf
"""``Episode.fill_cap`` and ``Episode.child_cap`` without a cap (the default)."""
PNL_COMPONENTS = ("option_mtm", "hedge_pnl", "carry", "spread_income", "impact_pnl", "cost")
LIMIT_FIELDS = ("position_limit", "option_position_limit", "trade_limit", "band_limit")
"""The action ranges of :class:`CoreConfig`, in notionals (each in ``(0, MAX_LIMIT]``)."""
MAX_LIMIT = 1e9
"""Largest value of each of :data:`LIMIT_FIELDS`, notionals: far past any book (the gamma hedge
of a deep out-of-the-money hedging option may take 1e4 notionals), and bounded so that the
positions, their float32 observation entries and the P&L cannot overflow (a position limit of
1e100 made the observations inf, a trade limit of 1e308 the rewards NaN)."""
MAX_RISK_AVERSION = 1e15
"""Largest ``risk_aversion`` (per unit of scaled P&L): far past any calibration (``c /
Std[X]``), and bounded so that the mean-variance rewards' squares cannot overflow."""
MAX_PNL_REFERENCE = 1e12
"""Largest ``|pnl_reference|`` (units of ``reward_scale``): far past any episode's P&L, and
bounded so that ``risk_aversion / 2 * (X - pnl_reference)^2`` cannot overflow (1e160 made every
``terminal_mean_variance`` reward NaN)."""


def _clip_scalar(x: float, low: float, high: float) -> float:
    return low if x < low else high if x > high else x


SCALAR_OPS = SimpleNamespace(clip=_clip_scalar)
"""Operations on Python floats (the single env's path)."""
ARRAY_OPS = SimpleNamespace(clip=np.clip)
"""Operations on numpy arrays (the vector env's path)."""


def _clip_tensor(x: Any, low: Any, high: Any) -> Any:
    import torch

    return torch.minimum(torch.maximum(x, low), high)


TORCH_OPS = SimpleNamespace(clip=_clip_tensor)
"""Operations on torch tensors (the deep-hedging trainer's path; differentiable)."""


@dataclass(frozen=True)
class CoreConfig:
    """Conventions of the transition (all lengths in units of the underlying).

    Attributes:
        action_mode: how an action in [-1, 1] becomes a hedge; see :func:`target_position`.
        reward_mode: ``pnl`` (step P&L), ``mean_variance`` (step P&L minus
            ``risk_aversion / 2`` times its square, Kolm and Ritter 2019), ``terminal``
            (the episode's P&L on the last step, zero before) or ``terminal_mean_variance``
            (step P&L, and on the last step minus ``risk_aversion / 2`` times the squared
            distance of the episode's P&L from ``pnl_reference``); see :func:`reward`.
        risk_aversion: kappa of the mean-variance rewards, per unit of scaled P&L (at most
            :data:`MAX_RISK_AVERSION`).
        pnl_reference: m of ``terminal_mean_variance``: the reference level of the episode's
            P&L, in units of ``reward_scale`` (best set to the episode P&L's mean; at most
            :data:`MAX_PNL_REFERENCE` in absolute value).
        reward_scale: currency per unit of reward (rewards are P&L divided by it).
        notional: the book's reference size; action ranges are multiples of it.
        position_limit: ``target`` mode spans positions in ``[-limit, limit] * notional``
            (this and the other limits are in ``(0, MAX_LIMIT]``, :data:`MAX_LIMIT`).
        option_position_limit: the same for the hedging option's position (it is larger: a
            gamma-neutral position takes several notionals of an at-the-money option).
        trade_limit: ``trade`` mode spans trades in ``[-limit, limit] * notional``.
        band_limit: ``band`` mode spans half-widths in ``[0, limit] * notional``.
        lot_size: a decision's order is rounded to multiples of it (0 = no rounding); with
            ``twap`` or ``participation`` execution its child orders, and under partial fills
            the filled parts, are not rounded again (they trade fractions of the lots).
        unwind: sell the hedge (paying costs) at the episode's end (required with
            ``permanent_impact``: see its check).
        rebalance_every: market steps per decision.
        execution: how a decision's order is executed over its interval: ``immediate``,
            ``twap`` or ``participation`` (see :mod:`hedgearena.envs.execution`).
        permanent_impact: log move of the spot per notional traded (>= 0; 0 = none): buying
            ``N`` units multiplies the spot by ``e^k`` for the rest of the episode; a trade
            that would move the log spot past
            :data:`~hedgearena.envs.execution.MAX_IMPACT_MOVE` raises ``ValueError``.
        risk_limits: the limits the envs enforce (None = none; a dict of
            :class:`~hedgearena.envs.limits.RiskLimits`' fields is converted, anything else
            refused); on torch tensors :func:`transition` refuses them (the envs, not the
            core, handle breaches).
        stressed: whether any stress mechanic is on (derived; not an argument).
    """

    action_mode: str = "target"
    reward_mode: str = "pnl"
    risk_aversion: float = 0.0
    pnl_reference: float = 0.0
    reward_scale: float = 1.0
    notional: float = 100.0
    position_limit: float = 1.5
    option_position_limit: float = 10.0
    trade_limit: float = 0.5
    band_limit: float = 0.5
    lot_size: float = 0.0
    unwind: bool = True
    rebalance_every: int = 1
    execution: str = "immediate"
    permanent_impact: float = 0.0
    risk_limits: RiskLimits | None = None
    stressed: bool = field(init=False, repr=False, compare=False, default=False)

    def __post_init__(self) -> None:
        _choice("action_mode", self.action_mode, ACTION_MODES)
        _choice("reward_mode", self.reward_mode, REWARD_MODES)
        _choice("execution", self.execution, EXECUTIONS)
        object.__setattr__(self, "risk_limits", RiskLimits.from_spec(self.risk_limits))
        impact = self.permanent_impact
        if not is_number(impact, ge=0.0):
            raise ValueError(
                f"permanent_impact must be a finite number >= 0 (log move of the spot per "
                f"notional traded), got {self.permanent_impact!r}"
            )
        stressed = (
            self.execution != "immediate" or self.permanent_impact != 0
            or self.risk_limits is not None
        )
        object.__setattr__(self, "stressed", stressed)
        self._check_sizes()
        if not is_number(self.lot_size, ge=0.0):
            raise ValueError(f"lot_size must be a finite number >= 0, got {self.lot_size!r}")
        if not isinstance(self.unwind, bool | np.bool_):
            raise ValueError(f"unwind must be True or False, got {self.unwind!r}")
        if self.permanent_impact and not self.unwind:
            raise ValueError(
                "permanent_impact needs unwind=True: positions held at the end would be marked "
                "at the spot the hedger's own buying pushed up (a profit no sale could realise: "
                "buying 10 notionals at the last decision would show one)"
            )
        if not (is_integer(self.rebalance_every) and self.rebalance_every >= 1):
            raise ValueError(
                f"rebalance_every must be an integer >= 1, got {self.rebalance_every!r}"
            )

    def _check_sizes(self) -> None:
        """Check the scales, the action ranges (:data:`MAX_LIMIT`) and the reward's settings."""
        for name in ("reward_scale", "notional", *LIMIT_FIELDS):
            value = getattr(self, name)
            if not is_number(value, gt=0.0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        for name in LIMIT_FIELDS:
            _at_most(name, getattr(self, name), MAX_LIMIT, "notionals (far past any book; larger "
                     "limits overflow the float32 observations and the P&L)")
        if not is_number(self.risk_aversion, ge=0.0):
            raise ValueError(
                f"risk_aversion must be a finite number >= 0, got {self.risk_aversion!r}"
            )
        _at_most("risk_aversion", self.risk_aversion, MAX_RISK_AVERSION,
                 "(larger values overflow the mean-variance rewards)")
        if not is_number(self.pnl_reference):
            raise ValueError(
                f"pnl_reference must be a finite number (episode P&L over reward_scale), "
                f"got {self.pnl_reference!r}"
            )
        _at_most("pnl_reference", self.pnl_reference, MAX_PNL_REFERENCE,
                 "in absolute value (larger values overflow the terminal_mean_variance reward)")


def _at_most(name: str, value: float, bound: float, why: str) -> None:
    """Raise ``ValueError`` naming ``name`` unless the number ``|value| <= bound``.

    Examples:
        >>> _at_most("position_limit", 1e100, MAX_LIMIT, "notionals")
        Traceback (most recent call last):
        ...
        ValueError: position_limit must be <= 1e+09 notionals, got 1e+100
    """
    if abs(value) > bound:
        raise ValueError(f"{name} must be <= {bound:g} {why}, got {value!r}")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


class Episode(NamedTuple):
    """The exogenous part of a batch of episodes, indexed by step first.

    Arrays are time-major, ``(n_steps + 1, n_paths)``, so ``episode.spot[s]`` is every path's
    spot at step ``s`` (a contiguous row); for one path (the single env) they are Python lists
    of ``n_steps + 1`` floats and ``stock`` a float.

    Attributes:
        spot: underlying price.
        option_price: mark of one unit of the hedging option (zeros without one).
        model_hedge: the model's hedge in the underlying (minus the book's delta, less the
            hedging option's delta times ``model_option``).
        model_option: the model's position in the hedging option (gamma neutral; zeros without).
        book_value: mark of the book (options held plus the book's stock).
        option_mtm: ``B_{s+1} - B_s + settlement_{s+1} + premium_{s+1}`` in column ``s``
            (last column 0).
        cash_flow: book cash flows at the step (premiums and settlements).
        spread_income: client half-spreads earned at the step.
        linear, quadratic, three_halves, fixed: cost coefficients of a trade of ``q`` units of
            the underlying at the step: ``linear |q| + quadratic q^2 + three_halves |q|^1.5 +
            fixed 1{q != 0}``.
        option_linear: cost per unit of hedging option traded (half-spread times vega).
        stock: the book's own stock position, ``(n_paths,)``.
        rate_growth: ``e^{r dt}`` (scalar).
        dividend_growth: ``e^{q dt}`` (scalar).
        fill_fraction: fraction of an order that fills at the step, in [0, 1] (a number: the
            same at every step; default :data:`ALL_FILLED`).
        fill_cap: largest order that fills at the step, units (all or nothing past it; a
            number: the same at every step; default :data:`NO_CAP`).
        child_cap: ``participation`` execution's largest child order at the step, units
            (default :data:`NO_CAP`).
        with_option: whether the episode has a hedging option. Without one the option's
            position and trades are 0 and its prices 0, and :func:`default_transition` skips
            their terms (exactly 0; about a third of a step's array passes).
    """

    spot: FloatArray
    option_price: FloatArray
    model_hedge: FloatArray
    model_option: FloatArray
    book_value: FloatArray
    option_mtm: FloatArray
    cash_flow: FloatArray
    spread_income: FloatArray
    linear: FloatArray
    quadratic: FloatArray
    three_halves: FloatArray
    fixed: FloatArray
    option_linear: FloatArray
    stock: FloatArray
    rate_growth: float
    dividend_growth: float
    fill_fraction: FloatArray | float = ALL_FILLED
    fill_cap: FloatArray | float = NO_CAP
    child_cap: FloatArray | float = NO_CAP
    with_option: bool = True


class HedgeState(NamedTuple):
    """The hedger's part of the state: floats for one path or ``(n_paths,)`` arrays.

    ``impact`` is the cumulative log move of the spot caused by the hedger's own trades
    (0 without permanent impact): the traded spot is the market's times ``e^impact``.
    """

    hedge: Any
    option: Any
    cash: Any
    impact: Any = 0.0


class StepResult(NamedTuple):
    """What one decision did: the new state and the P&L components over the decision interval.

    ``trade`` and ``option_trade`` are the executed trades (units); ``cost`` is positive and
    enters the P&L with a minus sign; ``pnl`` is the sum of the components less ``cost``.
    ``impact_pnl`` is the revaluation caused by the hedger's own permanent impact (a P&L
    component); ``unfilled`` and ``option_unfilled`` the units of the decision's orders (and
    of the unwind, on the last decision) that were not executed; ``slippage`` the executed
    price minus the decision price, times the units (currency; a diagnostic, inside the P&L).
    """

    state: HedgeState
    trade: Any
    option_trade: Any
    option_mtm: Any
    hedge_pnl: Any
    carry: Any
    spread_income: Any
    cost: Any
    pnl: Any
    impact_pnl: Any = 0.0
    unfilled: Any = 0.0
    option_unfilled: Any = 0.0
    slippage: Any = 0.0


def target_position(
    mode: str, action: Any, position: Any, model: Any, config: CoreConfig, ops: Any,
    option: bool = False,
) -> Any:
    """Turn an action in [-1, 1] into the position to hold (units of the instrument).

    - ``target``: ``action * position_limit * notional`` (``option_position_limit`` for the
      hedging option, ``option=True``).
    - ``trade``: ``position + action * trade_limit * notional``.
    - ``fraction``: move the fraction ``(action + 1) / 2`` of the way to the model's position.
    - ``band``: a no-trade band of half-width ``(action + 1) / 2 * band_limit * notional`` around
      the model's position; the position is clipped into it (Whalley and Wilmott's rule).

    Examples:
        >>> config = CoreConfig(notional=100.0, band_limit=0.5)
        >>> target_position("band", 0.0, 10.0, 50.0, config, SCALAR_OPS)  # band [25, 75]
        25.0
        >>> target_position("fraction", 0.0, 10.0, 50.0, config, SCALAR_OPS)
        30.0
    """
    if mode == "target":
        limit = config.option_position_limit if option else config.position_limit
        return action * (limit * config.notional)
    if mode == "trade":
        return position + action * (config.trade_limit * config.notional)
    fraction = (action + 1.0) * 0.5
    if mode == "fraction":
        return position + fraction * (model - position)
    width = fraction * (config.band_limit * config.notional)
    return ops.clip(position, model - width, model + width)


def transition(
    episode: Episode,
    step: Any,
    n_steps: int,
    state: HedgeState,
    hedge_target: Any,
    option_target: Any,
    config: CoreConfig,
    remark: Any = None,
) -> StepResult:
    """Trade to the targets at market step ``step`` and book the P&L until the next decision.

    Args:
        episode: the exogenous values, indexed by step: ``episode.spot[s]`` is the spot of every
            path at step ``s`` (a float for one path, an array for many; see :class:`Episode`).
        step: the market step of the decision (an int, or an int array for :class:`RowView`).
        n_steps: the episode's number of market steps.
        state: positions and cash before the decision.
        hedge_target: position to hold in the underlying.
        option_target: position to hold in the hedging option.
        config: the conventions.
        remark: with permanent impact, the episode's re-marker: ``remark(step, impact, mask,
            flows)`` re-marks step ``step`` of the rows ``mask`` at the spot moved by
            ``impact``, in place (see :class:`hedgearena.envs.episode.Remarker`).

    Returns:
        The new state and the interval's P&L components; when the interval ends the episode and
        ``config.unwind`` is set, the hedge (and hedging option) is sold at the last step's
        prices and its cost included.

    Raises:
        ValueError: for permanent impact or risk limits on torch tensors, or for a setting the
            episode lacks the arrays of (see :func:`_check_stress`).
    """
    if is_stressed(episode, config):
        return _stressed_transition(
            episode, step, n_steps, state, hedge_target, option_target, config, remark
        )
    return default_transition(episode, step, n_steps, state, hedge_target, option_target, config)


def is_stressed(episode: Episode, config: CoreConfig) -> bool:
    """Whether a decision needs the stressed path: a stress setting, or fills in the episode.

    Identity tests against the defaults (fast); any other value of the fill fields (even an
    equal one) takes the stressed path, which is general.
    """
    return (
        config.stressed or episode.fill_fraction is not ALL_FILLED
        or episode.fill_cap is not NO_CAP
    )


def default_transition(
    episode: Episode,
    step: Any,
    n_steps: int,
    state: HedgeState,
    hedge_target: Any,
    option_target: Any,
    config: CoreConfig,
) -> StepResult:
    """:func:`transition` without stress: the whole order at the decision step, all filled.

    What :func:`transition` runs when :func:`is_stressed` is False; a caller that knows it (the
    single env, once per episode) may call it directly. The holding P&L formulas of every path
    are these: the stressed path holds each market step through this function, trading 0.
    """
    hedge, option, cash, impact = state
    with_option = episode.with_option  # else the option's terms are 0: skipped (exact)
    trade = hedge_target - hedge
    if config.lot_size:
        trade = round_to_lot(trade, config.lot_size)
    option_trade = option_target - option if with_option else 0.0
    cost = _cost_at(episode, step, trade, option_trade)
    spot, option_price = episode.spot, episode.option_price
    spot0, opt0 = spot[step], option_price[step]
    cash = cash - trade * spot0
    if with_option:
        cash = cash - option_trade * opt0
        option = option + option_trade
    cash = cash - cost
    hedge = hedge + trade
    option_mtm = hedge_pnl = carry = spread = 0.0
    rate_growth, dividend_growth = episode.rate_growth - 1.0, episode.dividend_growth - 1.0
    for k in range(config.rebalance_every):
        s = step + k
        spot1, opt1 = spot[s + 1], option_price[s + 1]
        flow, income = episode.cash_flow[s + 1], episode.spread_income[s + 1]
        option_mtm = option_mtm + episode.option_mtm[s]
        hedge_pnl = hedge_pnl + hedge * (spot1 - spot0)
        if with_option:
            hedge_pnl = hedge_pnl + option * (opt1 - opt0)
        if rate_growth or dividend_growth:  # no carry at zero rates (skipped: exact, and faster)
            interest = cash * rate_growth
            dividends = (hedge + episode.stock) * spot0 * dividend_growth
            carry = carry + interest + dividends
            cash = cash + interest + dividends
        spread = spread + income
        cash = cash + flow + income
        spot0, opt0 = spot1, opt1
    if not (rate_growth or dividend_growth):
        carry = spot0 * 0.0  # zeros of the batch's shape and type (spot > 0: no -0.0)
    ending = config.unwind and step + config.rebalance_every >= n_steps
    if ending is not False:  # a Python bool on the scalar path, an array on the vector path
        unwind_cost = _cost_at(episode, n_steps, -hedge, -option) * ending
        cash = cash + (hedge * spot0 + option * opt0 - unwind_cost) * ending
        hedge, option = hedge - hedge * ending, option - option * ending
        cost = cost + unwind_cost
    pnl = option_mtm + hedge_pnl + carry + spread - cost
    # tuple.__new__ builds the NamedTuples without their __new__'s argument handling: the same
    # values, 0.3 us sooner, a twentieth of the single env's step
    state = _new_tuple(HedgeState, (hedge, option, cash, impact))
    return cast(StepResult, _new_tuple(StepResult, (
        state, trade, option_trade, option_mtm, hedge_pnl, carry, spread, cost, pnl,
        *_DEFAULT_PATH_ZEROS,
    )))


_new_tuple = tuple.__new__
_DEFAULT_PATH_ZEROS = tuple(StepResult._field_defaults.values())
"""The :class:`StepResult` fields the default path leaves at their defaults (0.0)."""


@functools.cache
def _holding(config: CoreConfig) -> CoreConfig:
    """The conventions under which :func:`transition` holds for one market step, trading 0.

    The stressed path books each market step's P&L through the default path with these (so the
    holding formulas are written once): one step, no unwind, no lots, no stress mechanics.
    """
    return dataclasses.replace(
        config, rebalance_every=1, unwind=False, lot_size=0.0, execution="immediate",
        permanent_impact=0.0, risk_limits=None,
    )


class _Account:
    """The hedger's positions and the running P&L of one decision (the stressed path's ledger).

    Attributes are floats, arrays or tensors; they are rebound, never changed in place (so
    torch's autograd and the arrays already handed out are safe).
    """

    def __init__(self, state: HedgeState, remark: Any) -> None:
        self.hedge, self.option, self.cash, self.impact = state
        self.remark = remark
        self.traded = self.option_traded = 0.0
        self.option_mtm = self.hedge_pnl = self.carry = self.spread = 0.0
        self.cost = self.impact_pnl = self.slippage = 0.0
        self.unfilled = self.option_unfilled = 0.0

    def state(self) -> HedgeState:
        """The positions, cash and impact now."""
        return HedgeState(self.hedge, self.option, self.cash, self.impact)

    def result(self) -> StepResult:
        """The decision's :class:`StepResult`."""
        pnl = (
            self.option_mtm + self.hedge_pnl + self.carry + self.spread + self.impact_pnl
            - self.cost
        )
        return StepResult(
            self.state(), self.traded, self.option_traded, self.option_mtm, self.hedge_pnl,
            self.carry, self.spread, self.cost, pnl, self.impact_pnl, self.unfilled,
            self.option_unfilled, self.slippage,
        )


def _stressed_transition(
    episode: Episode,
    step: Any,
    n_steps: int,
    state: HedgeState,
    hedge_target: Any,
    option_target: Any,
    config: CoreConfig,
    remark: Any,
) -> StepResult:
    """:func:`transition` with fills, child orders and permanent impact, step by step."""
    _check_stress(config, hedge_target, remark)
    parent = round_to_lot(hedge_target - state.hedge, config.lot_size)
    option_parent = option_target - state.option
    decision = (episode.spot[step] + 0.0, episode.option_price[step] + 0.0)  # copies
    account = _Account(state, remark)
    n_children = config.rebalance_every
    holding = _holding(config)  # a zero trade and one market step held, by the default path
    filled_in = episode._replace(fill_fraction=ALL_FILLED, fill_cap=NO_CAP)  # (fills done)
    for k in range(n_children):
        s = step + k
        if k == 0 or config.execution != "immediate":
            cap = _at(episode.child_cap, s)
            order = child_order(
                config.execution, parent - account.traded, parent, n_children, cap
            )
            option_order = child_order(
                config.execution, option_parent - account.option_traded, option_parent,
                n_children, cap,
            )
            filled, option_filled = _execute(
                episode, s, account, (order, option_order), config, decision
            )
            account.traded = account.traded + filled
            account.option_traded = account.option_traded + option_filled
        if config.permanent_impact:  # re-mark the next step where the spot has moved
            remark(s + 1, account.impact, account.impact != 0, True)
        held = default_transition(
            filled_in, s, n_steps, account.state(), account.hedge, account.option, holding
        )
        account.cash = held.state.cash
        account.option_mtm = account.option_mtm + held.option_mtm
        account.hedge_pnl = account.hedge_pnl + held.hedge_pnl
        account.carry = account.carry + held.carry
        account.spread = account.spread + held.spread_income
    account.unfilled = parent - account.traded
    account.option_unfilled = option_parent - account.option_traded
    ending = config.unwind and step + n_children >= n_steps
    if ending is not False:
        _close(episode, n_steps, account, ending, config)
    return account.result()


def _at(values: Any, step: Any) -> Any:
    """``values[step]``, or ``values`` itself when it is a number (the same at every step)."""
    return values if isinstance(values, float | int) else values[step]


def _check_stress(config: CoreConfig, target: Any, remark: Any) -> None:
    """Refuse what the stressed path cannot do, with the reason."""
    numeric = isinstance(target, float | int | np.ndarray | np.generic)
    if config.permanent_impact and not numeric:
        raise ValueError(
            "permanent_impact is not supported on torch tensors (the book is re-marked by the "
            "numpy pricer); use permanent_impact=0 with the deep-hedging trainer"
        )
    if config.risk_limits is not None and not numeric:
        raise ValueError(
            "risk_limits are enforced by the envs, not by transition on torch tensors; "
            "use risk_limits=None with the deep-hedging trainer"
        )
    if config.permanent_impact and remark is None:
        raise ValueError(
            "permanent_impact needs the episode's re-marker (transition's remark argument; the "
            "envs pass a hedgearena.envs.episode.Remarker of their batch)"
        )


def _execute(
    episode: Episode,
    step: Any,
    account: _Account,
    orders: tuple[Any, Any],
    config: CoreConfig,
    decision: tuple[Any, Any] | None,
    fills: bool = True,
) -> tuple[Any, Any]:
    """Execute orders in the underlying and the hedging option at one market step.

    The orders fill as the step's fills allow (wholly when not ``fills``); the filled units pay
    the step's cost and trade at the step's price, moved by their own permanent impact (then
    the step is re-marked and the revaluation booked as ``impact_pnl``). ``decision`` holds the
    decision's prices for the slippage (None: not part of a decision's order, e.g. the unwind).

    Returns:
        The filled units of the underlying and of the hedging option.
    """
    fraction, cap = (
        (_at(episode.fill_fraction, step), _at(episode.fill_cap, step)) if fills
        else (1.0, math.inf)
    )
    filled = filled_order(orders[0], fraction, cap)
    option_filled = filled_order(orders[1], fraction, cap)
    cost = _cost_at(episode, step, filled, option_filled)
    spot0, opt0 = episode.spot[step] + 0.0, episode.option_price[step] + 0.0  # copies
    price = spot0
    if config.permanent_impact:
        move = (config.permanent_impact / config.notional) * filled
        check_impact(account.impact + move, config.permanent_impact)
        price = spot0 * average_price_factor(move)
        book0 = episode.book_value[step] + 0.0
        account.impact = account.impact + move
        account.remark(step, account.impact, filled != 0, False)
        spot1 = episode.spot[step]  # the hedging option stays the market's (O' = O)
        account.impact_pnl = account.impact_pnl + (
            (episode.book_value[step] - book0)
            + (account.hedge + filled) * spot1 - account.hedge * spot0 - filled * price
        )
    account.cash = account.cash - filled * price - option_filled * opt0 - cost
    account.cost = account.cost + cost
    if decision is not None:
        account.slippage = account.slippage + (
            filled * (price - decision[0]) + option_filled * (opt0 - decision[1])
        )
    account.hedge, account.option = account.hedge + filled, account.option + option_filled
    return filled, option_filled


def _close(episode: Episode, step: Any, account: _Account, where: Any, config: CoreConfig) -> None:
    """Sell the positions at market step ``step`` where ``where`` (True, or a bool array).

    Subject to the step's fills: what does not fill stays held (added to ``unfilled``). Under
    permanent impact the sale fills whole: held, a position would be marked at the spot its
    own buying pushed up, a profit no sale could realise (+1,700 a path for 10 notionals
    bought at the last decision at half fills, ``permanent_impact`` 0.05).
    """
    orders = (-account.hedge * where, -account.option * where)
    filled, option_filled = _execute(episode, step, account, orders, config, None,
                                     fills=not config.permanent_impact)
    account.unfilled = account.unfilled + (orders[0] - filled)
    account.option_unfilled = account.option_unfilled + (orders[1] - option_filled)


def unfilled_units(unfilled: Any, left: Any) -> Any:
    """Units a step left unexecuted, counted per order: the decision's and the unwind's.

    A step's ``unfilled`` (:class:`StepResult`) is the signed sum of the decision's unfilled
    part and, when the step sold the positions (the unwind, a ``terminate`` limit's sale), the
    sale's, which is minus the units ``left`` held after it (0 without a sale): a buy 20 short
    and a sale 30 short net to -10 but leave 50 unexecuted.

    Examples:
        >>> unfilled_units(-10.0, 30.0), unfilled_units(-10.0, 0.0)
        (50.0, 10.0)
    """
    return abs(unfilled + left) + abs(left)


def liquidate(
    episode: Episode, step: Any, result: StepResult, config: CoreConfig, where: Any,
    remark: Any = None,
) -> StepResult:
    """Add the sale of ``result``'s positions at market step ``step`` to a decision's result.

    What the envs do when a risk limit ends an episode early with ``unwind`` set: the positions
    are sold like the unwind at the horizon (fills, costs and impact of the step), the cost and
    impact added to the decision's, what does not fill to ``unfilled``.

    Args:
        episode: the episode (or the rows' view).
        step: the market step of the sale (the step the decision's interval ended at).
        result: the decision's result.
        config: the conventions.
        where: True, or a bool array of the rows to sell.
        remark: the episode's re-marker (with permanent impact; see :func:`transition`).
    """
    account = _Account(result.state, remark)
    _close(episode, step, account, where, config)
    cost, impact_pnl = account.cost, account.impact_pnl
    return result._replace(
        state=account.state(),
        cost=result.cost + cost,
        impact_pnl=result.impact_pnl + impact_pnl,
        pnl=result.pnl + impact_pnl - cost,
        unfilled=result.unfilled + account.unfilled,
        option_unfilled=result.option_unfilled + account.option_unfilled,
    )


def _cost_at(episode: Episode, step: Any, trade: Any, option_trade: Any) -> Any:
    """The cost of trading ``trade`` units of the underlying and ``option_trade`` of the option."""
    linear, quadratic = episode.linear[step], episode.quadratic[step]
    three_halves, fixed = episode.three_halves[step], episode.fixed[step]
    option_linear = episode.option_linear[step]
    if isinstance(trade, float):  # one path: skip the terms that are 0, as arrays do below
        cost = linear * abs(trade)
        if quadratic or three_halves or fixed:
            cost = cost_polynomial(trade, linear, quadratic, three_halves, fixed)
        return cost + option_linear * abs(option_trade) if option_linear else cost
    if not isinstance(trade, np.ndarray):  # tensors: the whole polynomial (differentiable)
        cost = cost_polynomial(trade, linear, quadratic, three_halves, fixed)
        return cost + option_linear * abs(option_trade)
    if quadratic.any() or three_halves.any() or fixed.any():
        cost = cost_polynomial(trade, linear, quadratic, three_halves, fixed)
    else:
        # Only the polynomial's linear term is live (proportional costs and spreads, the usual
        # case). Skipping the zero terms is exact and saves the vector env much of its cost:
        # |q|^1.5 alone takes as long as the rest of a step.
        cost = linear * abs(trade)
    if not (episode.with_option and option_linear.any()):
        return cost  # no hedging option (or a free one): its term is 0
    return cost + option_linear * abs(option_trade)


class RowView:
    """Step-indexed access to some rows of a time-major array: ``view[s] == array[s, rows]``.

    Lets :func:`transition` step a subset of paths, each at its own step (``s`` an int array).
    """

    __slots__ = ("array", "rows")

    def __init__(self, array: FloatArray, rows: Any) -> None:
        self.array, self.rows = array, rows

    def __getitem__(self, step: Any) -> FloatArray:
        return self.array[step, self.rows]


def episode_rows(episode: Episode, rows: Any) -> Episode:
    """A view of the paths ``rows`` of a time-major episode, for per-row steps."""
    fields: dict[str, Any] = {}
    for name, value in episode._asdict().items():
        ndim = np.ndim(value)
        fields[name] = RowView(value, rows) if ndim == 2 else value[rows] if ndim == 1 else value
    return Episode(**fields)


def wealth(episode: Episode, step: Any, state: HedgeState) -> Any:
    """Wealth ``B + h S + g O + cash`` at market step ``step`` (currency)."""
    return (
        episode.book_value[step]
        + state.hedge * episode.spot[step]
        + state.option * episode.option_price[step]
        + state.cash
    )


def reward(config: CoreConfig, pnl: Any, episode_pnl: Any, done: Any) -> Any:
    """The reward of a decision from its P&L (currency), in units of ``config.reward_scale``.

    ``pnl`` is the decision's P&L, ``episode_pnl`` the episode's P&L so far with it included
    (the sum of the decisions' P&L), ``done`` whether the episode ends with the decision.

    - ``pnl``: ``pnl / scale``.
    - ``mean_variance``: ``x - risk_aversion / 2 * x^2`` with ``x = pnl / scale`` (Kolm and
      Ritter 2019, "Dynamic replication and hedging: a reinforcement learning approach").
    - ``terminal``: ``episode_pnl / scale`` on the last decision, 0 before.
    - ``terminal_mean_variance``: ``x``, and on the last decision also
      ``-risk_aversion / 2 * (X - m)^2`` with ``X = episode_pnl / scale`` and
      ``m = pnl_reference``. The rewards of an episode sum to ``X - kappa/2 (X - m)^2``, whose
      expectation is ``E[X] - kappa/2 (Var[X] + (E[X] - m)^2)``: with ``m = E[X]`` it is the
      mean-variance criterion of the episode's P&L, and maximising over the policy and ``m``
      together maximises ``E[X] - kappa/2 Var[X]`` (the embedding of Li and Ng 2000,
      "Optimal dynamic portfolio selection: multiperiod mean-variance formulation", Math.
      Finance 10(3)). For a fixed ``m`` the objective is an expected sum of rewards: an MDP
      once the P&L so far is part of the state (``observe_pnl``). ``E[X] - c Std[X]`` is
      reached near ``kappa = c / Std[X]`` and ``m = E[X]`` of the hedger sought (the minimiser
      of ``mean + c std`` of the hedging cost, a first-order match of the two criteria).

    Examples:
        >>> config = CoreConfig(reward_mode="mean_variance", risk_aversion=1.0, reward_scale=2.0)
        >>> reward(config, 4.0, 0.0, False)  # x = 2: 2 - 0.5 * 4
        0.0
        >>> config = CoreConfig(reward_mode="terminal_mean_variance", risk_aversion=2.0,
        ...                     pnl_reference=-1.0, reward_scale=2.0)
        >>> reward(config, 1.0, -4.0, False), reward(config, 1.0, -4.0, True)  # X = -2
        (0.5, -0.5)
    """
    if config.reward_mode == "terminal":
        return done * (episode_pnl / config.reward_scale)
    x = pnl / config.reward_scale
    if config.reward_mode == "mean_variance":
        return x - 0.5 * config.risk_aversion * (x * x)
    if config.reward_mode == "terminal_mean_variance":
        gap = episode_pnl / config.reward_scale - config.pnl_reference
        return x - done * (0.5 * config.risk_aversion * (gap * gap))
    return x
