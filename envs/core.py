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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, NamedTuple

import numpy as np

from hedgearena.envs.frictions import cost_polynomial, round_to_lot
from hedgearena.envs.market import FloatArray

ACTION_MODES = ("target", "trade", "fraction", "band")
REWARD_MODES = ("pnl", "mean_variance", "terminal")
INITIAL_HEDGES = ("zero", "delta")
PNL_COMPONENTS = ("option_mtm", "hedge_pnl", "carry", "spread_income", "cost")


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
            ``risk_aversion / 2`` times its square, Kolm and Ritter 2019) or ``terminal``
            (the episode's P&L on the last step, zero before).
        risk_aversion: kappa of the mean-variance reward, per unit of scaled P&L.
        reward_scale: currency per unit of reward (rewards are P&L divided by it).
        notional: the book's reference size; action ranges are multiples of it.
        position_limit: ``target`` mode spans positions in ``[-limit, limit] * notional``.
        trade_limit: ``trade`` mode spans trades in ``[-limit, limit] * notional``.
        band_limit: ``band`` mode spans half-widths in ``[0, limit] * notional``.
        lot_size: trades are rounded to multiples of it (0 = no rounding).
        unwind: sell the hedge (paying costs) at the episode's end.
        rebalance_every: market steps per decision.
    """

    action_mode: str = "target"
    reward_mode: str = "pnl"
    risk_aversion: float = 0.0
    reward_scale: float = 1.0
    notional: float = 100.0
    position_limit: float = 1.5
    trade_limit: float = 0.5
    band_limit: float = 0.5
    lot_size: float = 0.0
    unwind: bool = True
    rebalance_every: int = 1

    def __post_init__(self) -> None:
        _choice("action_mode", self.action_mode, ACTION_MODES)
        _choice("reward_mode", self.reward_mode, REWARD_MODES)
        for name in ("reward_scale", "notional", "position_limit", "trade_limit", "band_limit"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if not (math.isfinite(self.risk_aversion) and self.risk_aversion >= 0):
            raise ValueError(
                f"risk_aversion must be a finite number >= 0, got {self.risk_aversion!r}"
            )
        if not (math.isfinite(self.lot_size) and self.lot_size >= 0):
            raise ValueError(f"lot_size must be a finite number >= 0, got {self.lot_size!r}")
        if int(self.rebalance_every) != self.rebalance_every or self.rebalance_every < 1:
            raise ValueError(
                f"rebalance_every must be an integer >= 1, got {self.rebalance_every!r}"
            )


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


class HedgeState(NamedTuple):
    """The hedger's part of the state: floats for one path or ``(n_paths,)`` arrays."""

    hedge: Any
    option: Any
    cash: Any


class StepResult(NamedTuple):
    """What one decision did: the new state and the P&L components over the decision interval.

    ``trade`` and ``option_trade`` are the executed trades (units); ``cost`` is positive and
    enters the P&L with a minus sign; ``pnl`` is the sum of the components less ``cost``.
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


def target_position(
    mode: str, action: Any, position: Any, model: Any, config: CoreConfig, ops: Any
) -> Any:
    """Turn an action in [-1, 1] into the position to hold (units of the instrument).

    - ``target``: ``action * position_limit * notional``.
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
        return action * (config.position_limit * config.notional)
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

    Returns:
        The new state and the interval's P&L components; when the interval ends the episode and
        ``config.unwind`` is set, the hedge (and hedging option) is sold at the last step's
        prices and its cost included.
    """
    hedge, option, cash = state
    trade = round_to_lot(hedge_target - hedge, config.lot_size)
    option_trade = option_target - option
    cost = _cost_at(episode, step, trade, option_trade)
    spot, option_price = episode.spot, episode.option_price
    spot0, opt0 = spot[step], option_price[step]
    cash = cash - trade * spot0 - option_trade * opt0 - cost
    hedge, option = hedge + trade, option + option_trade
    option_mtm = hedge_pnl = carry = spread = 0.0
    rate_growth, dividend_growth = episode.rate_growth - 1.0, episode.dividend_growth - 1.0
    for k in range(config.rebalance_every):
        s = step + k
        spot1, opt1 = spot[s + 1], option_price[s + 1]
        flow, income = episode.cash_flow[s + 1], episode.spread_income[s + 1]
        option_mtm = option_mtm + episode.option_mtm[s]
        hedge_pnl = hedge_pnl + hedge * (spot1 - spot0) + option * (opt1 - opt0)
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
    return StepResult(
        HedgeState(hedge, option, cash),
        trade,
        option_trade,
        option_mtm,
        hedge_pnl,
        carry,
        spread,
        cost,
        pnl,
    )


def _cost_at(episode: Episode, step: Any, trade: Any, option_trade: Any) -> Any:
    """The cost of trading ``trade`` units of the underlying and ``option_trade`` of the option."""
    linear, quadratic = episode.linear[step], episode.quadratic[step]
    three_halves, fixed = episode.three_halves[step], episode.fixed[step]
    option_linear = episode.option_linear[step]
    if not isinstance(trade, np.ndarray):  # floats (one path) or tensors: the whole polynomial
        cost = cost_polynomial(trade, linear, quadratic, three_halves, fixed)
        return cost + option_linear * abs(option_trade)
    if quadratic.any() or three_halves.any() or fixed.any():
        cost = cost_polynomial(trade, linear, quadratic, three_halves, fixed)
    else:
        # Only the polynomial's linear term is live (proportional costs and spreads, the usual
        # case). Skipping the zero terms is exact and saves the vector env much of its cost:
        # |q|^1.5 alone takes as long as the rest of a step.
        cost = linear * abs(trade)
    if not option_linear.any():
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
    fields = {}
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

    - ``pnl``: ``pnl / scale``.
    - ``mean_variance``: ``x - risk_aversion / 2 * x^2`` with ``x = pnl / scale`` (Kolm and
      Ritter 2019, "Dynamic replication and hedging: a reinforcement learning approach").
    - ``terminal``: ``episode_pnl / scale`` on the last decision, 0 before.

    Examples:
        >>> config = CoreConfig(reward_mode="mean_variance", risk_aversion=1.0, reward_scale=2.0)
        >>> reward(config, 4.0, 0.0, False)  # x = 2: 2 - 0.5 * 4
        0.0
    """
    if config.reward_mode == "terminal":
        return done * (episode_pnl / config.reward_scale)
    x = pnl / config.reward_scale
    if config.reward_mode == "mean_variance":
        return x - 0.5 * config.risk_aversion * (x * x)
    return x
