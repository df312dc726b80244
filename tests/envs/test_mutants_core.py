"""The core's formulas against hand-computed ledgers (tests found by mutation testing).

Each test books a tiny episode whose every number is written out below from the accounting of
:mod:`hedgearena.envs.core`'s module docstring (a plain cash account: trade at the step's
price, pay the cost polynomial, earn interest on cash and dividends on the shares held, sell
everything at the last step), not from the code under test.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from hedgearena.envs.core import (
    SCALAR_OPS,
    CoreConfig,
    Episode,
    HedgeState,
    StepResult,
    liquidate,
    reward,
    target_position,
    transition,
    wealth,
)

R_GROWTH, Q_GROWTH = math.exp(0.01), math.exp(0.004)
"""One step's ``e^{r dt}`` and ``e^{q dt}`` (large on purpose: the carry must be visible)."""

COSTS = {
    # linear only (the vector path's short cut), linear + a ticket, the whole polynomial
    "linear": ([0.1, 0.2, 0.3], [0.0] * 3, [0.0] * 3, [0.0] * 3),
    "ticket": ([0.1, 0.2, 0.3], [0.0] * 3, [0.0] * 3, [1.0, 0.0, 2.0]),
    "polynomial": ([0.1, 0.2, 0.3], [0.01, 0.0, 0.02], [0.5, 0.0, 0.25], [1.0, 0.0, 2.0]),
}
"""Cost coefficients ``(linear, quadratic, three_halves, fixed)`` at market steps 0, 1, 2."""

OPTION_LINEAR = [0.05, 0.0, 0.07]


def ledger_episode(costs: str, as_floats: bool, **fills: Any) -> Episode:
    """A one-path, two-step episode: the book's marks, flows and ``option_mtm`` consistent.

    ``option_mtm[s] = B[s+1] - B[s] + cash_flow[s+1]`` (the module docstring's definition), so
    the wealth change equals the P&L.
    """
    book = [-300.0, -310.0, -290.0]
    flow = [0.0, 3.0, -7.0]
    mtm = [book[1] - book[0] + flow[1], book[2] - book[1] + flow[2], 0.0]
    linear, quadratic, three_halves, fixed = COSTS[costs]
    columns = {
        "spot": [100.0, 102.0, 99.0], "option_price": [5.0, 6.0, 4.0],
        "model_hedge": [0.0] * 3, "model_option": [0.0] * 3, "book_value": book,
        "option_mtm": mtm, "cash_flow": flow, "spread_income": [0.0, 0.5, 0.25],
        "linear": linear, "quadratic": quadratic, "three_halves": three_halves, "fixed": fixed,
        "option_linear": OPTION_LINEAR,
    }
    if as_floats:  # the single env's layout: lists of floats, the stock a float
        return Episode(**columns, stock=4.0, rate_growth=R_GROWTH, dividend_growth=Q_GROWTH,
                       **fills)
    arrays = {name: np.array(values)[:, None] for name, values in columns.items()}
    return Episode(**arrays, stock=np.array([4.0]), rate_growth=R_GROWTH,
                   dividend_growth=Q_GROWTH, **fills)


def poly(q: float, step: int, costs: str) -> float:
    """The cost polynomial of a trade of ``q`` shares at ``step``, written out."""
    linear, quadratic, three_halves, fixed = (c[step] for c in COSTS[costs])
    return linear * abs(q) + quadratic * q * q + three_halves * abs(q) ** 1.5 + fixed * (q != 0)


def hand_ledger(costs: str) -> dict[str, float]:
    """From (h, g, cash) = (10, 2, 50): trade to (30, -3) at step 0, hold two steps, unwind.

    The cash account, line by line (the module docstring of :mod:`hedgearena.envs.core`).
    """
    cost0 = poly(20.0, 0, costs) + 0.05 * 5.0  # buy 20 shares, sell 5 options
    cash = 50.0 - 20.0 * 100.0 + 5.0 * 5.0 - cost0
    # step 0 -> 1: interest on the cash, dividends on the 30 + 4 shares at S_0 = 100
    carry1 = cash * (R_GROWTH - 1.0) + 34.0 * 100.0 * (Q_GROWTH - 1.0)
    cash += carry1 + 3.0 + 0.5  # + cash flow + spread income of step 1
    # step 1 -> 2: dividends at S_1 = 102
    carry2 = cash * (R_GROWTH - 1.0) + 34.0 * 102.0 * (Q_GROWTH - 1.0)
    cash += carry2 - 7.0 + 0.25
    unwind_cost = poly(-30.0, 2, costs) + 0.07 * 3.0  # sell 30 shares, buy back 3 options
    cash += 30.0 * 99.0 - 3.0 * 4.0 - unwind_cost
    hedge_pnl = 30.0 * (102.0 - 100.0) - 3.0 * (6.0 - 5.0) + 30.0 * (99.0 - 102.0) - 3.0 * (
        4.0 - 6.0
    )
    option_mtm = (-310.0 + 300.0 + 3.0) + (-290.0 + 310.0 - 7.0)
    cost = cost0 + unwind_cost
    return {
        "trade": 20.0, "option_trade": -5.0, "option_mtm": option_mtm, "hedge_pnl": hedge_pnl,
        "carry": carry1 + carry2, "spread_income": 0.75, "cost": cost,
        "pnl": option_mtm + hedge_pnl + carry1 + carry2 + 0.75 - cost, "cash": cash,
    }


def _scalar(x: Any) -> float:
    return float(np.asarray(x).reshape(-1)[0])


def _check(result: StepResult, want: dict[str, float]) -> None:
    for name, value in want.items():
        got = result.state.cash if name == "cash" else getattr(result, name)
        assert _scalar(got) == pytest.approx(value, rel=1e-12, abs=1e-9), name
    assert _scalar(result.state.hedge) == 0.0
    assert _scalar(result.state.option) == 0.0


@pytest.mark.parametrize("costs", list(COSTS))
@pytest.mark.parametrize("as_floats", [False, True], ids=["arrays", "floats"])
def test_one_decision_with_carry_flows_and_unwind_matches_the_hand_ledger(
    costs: str, as_floats: bool
) -> None:
    """Every P&L component of a decision held over two steps and unwound, on both paths."""
    episode = ledger_episode(costs, as_floats)
    config = CoreConfig(rebalance_every=2)
    if as_floats:
        state, targets = HedgeState(10.0, 2.0, 50.0), (30.0, -3.0)
    else:
        state = HedgeState(np.array([10.0]), np.array([2.0]), np.array([50.0]))
        targets = (np.array([30.0]), np.array([-3.0]))
    result = transition(episode, 0, 2, state, *targets, config)
    want = hand_ledger(costs)
    _check(result, want)
    # wealth B + h S + g O + cash: its change is the P&L (option marks included)
    change = wealth(episode, 2, result.state) - wealth(episode, 0, state)
    assert _scalar(change) == pytest.approx(want["pnl"], rel=1e-12)
    assert _scalar(wealth(episode, 0, state)) == pytest.approx(-300.0 + 1000.0 + 10.0 + 50.0)


@pytest.mark.parametrize("stressed", [False, True], ids=["default", "stressed"])
def test_lots_round_the_order_on_both_paths(stressed: bool) -> None:
    """A target of 32 from 10 with lots of 5: 22 shares round to 20, the hand ledger's trade.

    Fills of exactly 1 (not the default object) take the stressed path with immediate
    execution; both paths must book the same ledger.
    """
    fills = {"fill_fraction": np.float64(1.0)} if stressed else {}
    episode = ledger_episode("polynomial", False, **fills)
    state = HedgeState(np.array([10.0]), np.array([2.0]), np.array([50.0]))
    config = CoreConfig(rebalance_every=2, lot_size=5.0)
    result = transition(episode, 0, 2, state, np.array([32.0]), np.array([-3.0]), config)
    _check(result, hand_ledger("polynomial"))


class _SpotRemarker:
    """A minimal re-marker: the spot of step ``s`` becomes ``S_s e^impact`` on the masked rows.

    Enough for a book-less, option-less episode (nothing else depends on the spot there).
    """

    def __init__(self, episode: Episode) -> None:
        self.episode, self.market = episode, episode.spot.copy()

    def __call__(self, step: int, impact: Any, mask: Any, flows: bool) -> None:
        spot = self.episode.spot
        spot[step] = np.where(mask, self.market[step] * np.exp(impact), spot[step])


def test_permanent_impact_ledger() -> None:
    """k = 0.01 per notional of 100: buy 20 at step 0, hold two steps, sell 30 at step 2.

    Hand ledger (module docstrings of :mod:`hedgearena.envs.core` and ``execution``): the buy
    moves the log spot by x1 = 0.01 * 20 / 100 and executes at ``S0 (e^x1 - 1) / x1``; every
    later spot is ``S e^x1``; the unwind moves it by x2 = -0.01 * 30 / 100 from there.
    ``impact_pnl = (h + q) S' - h S - q price`` at each trade, ``slippage = q (price - S0)``.
    """
    episode = ledger_episode("linear", False)._replace(
        book_value=np.zeros((3, 1)), option_mtm=np.zeros((3, 1)), cash_flow=np.zeros((3, 1)),
        spread_income=np.zeros((3, 1)), option_price=np.zeros((3, 1)), rate_growth=1.0,
        dividend_growth=1.0, spot=np.array([[100.0], [102.0], [99.0]]),
    )
    config = CoreConfig(rebalance_every=2, permanent_impact=0.01, notional=100.0)
    state = HedgeState(np.array([10.0]), np.array([0.0]), np.array([50.0]))
    result = transition(episode, 0, 2, state, np.array([30.0]), np.array([0.0]), config,
                        remark=_SpotRemarker(episode))
    x1, x2 = 0.002, -0.003
    price1 = 100.0 * math.expm1(x1) / x1
    s2 = 99.0 * math.exp(x1)  # the last spot before the unwind
    price2 = s2 * math.expm1(x2) / x2
    impact_pnl = (30.0 * 100.0 * math.exp(x1) - 10.0 * 100.0 - 20.0 * price1) + (
        30.0 * price2 - 30.0 * s2
    )
    hedge_pnl = 30.0 * (99.0 - 100.0) * math.exp(x1)
    cost = 0.1 * 20.0 + 0.3 * 30.0
    cash = 50.0 - 20.0 * price1 + 30.0 * price2 - cost
    assert _scalar(result.impact_pnl) == pytest.approx(impact_pnl, rel=1e-12)
    assert _scalar(result.hedge_pnl) == pytest.approx(hedge_pnl, rel=1e-12)
    assert _scalar(result.slippage) == pytest.approx(20.0 * (price1 - 100.0), rel=1e-12)
    assert _scalar(result.cost) == pytest.approx(cost, rel=1e-12)
    assert _scalar(result.state.cash) == pytest.approx(cash, rel=1e-12)
    assert _scalar(result.pnl) == pytest.approx(hedge_pnl + impact_pnl - cost, rel=1e-12)
    assert _scalar(result.state.impact) == pytest.approx(x1 + x2, rel=1e-12)


def test_half_fills_leave_half_the_order_and_half_the_unwind_unfilled() -> None:
    """Fill fraction 1/2 at every step, hand ledger.

    Step 0: the order (+20 shares, -5 options) fills (+10, -2.5) -> holding (20, -0.5).
    Step 2: the unwind (-20, +0.5) fills (-10, +0.25); (-10, +0.25) stays held, marked at
    S_2 = 99, O_2 = 4, and is reported unfilled with the decision's own (10, -2.5).
    """
    costs = "polynomial"
    episode = ledger_episode(costs, False, fill_fraction=np.float64(0.5))
    state = HedgeState(np.array([10.0]), np.array([2.0]), np.array([50.0]))
    result = transition(
        episode, 0, 2, state, np.array([30.0]), np.array([-3.0]), CoreConfig(rebalance_every=2)
    )
    cost0 = poly(10.0, 0, costs) + 0.05 * 2.5
    cash = 50.0 - 10.0 * 100.0 + 2.5 * 5.0 - cost0
    carry1 = cash * (R_GROWTH - 1.0) + 24.0 * 100.0 * (Q_GROWTH - 1.0)
    cash += carry1 + 3.5
    carry2 = cash * (R_GROWTH - 1.0) + 24.0 * 102.0 * (Q_GROWTH - 1.0)
    cash += carry2 - 6.75
    unwind_cost = poly(-10.0, 2, costs) + 0.07 * 0.25
    cash += 10.0 * 99.0 - 0.25 * 4.0 - unwind_cost
    hedge_pnl = 20.0 * (102.0 - 100.0 + 99.0 - 102.0) - 0.5 * (6.0 - 5.0 + 4.0 - 6.0)
    assert _scalar(result.trade) == pytest.approx(10.0)
    assert _scalar(result.option_trade) == pytest.approx(-2.5)
    assert _scalar(result.unfilled) == pytest.approx(10.0 - 10.0)  # +10 of the order, -10 unwind
    assert _scalar(result.option_unfilled) == pytest.approx(-2.5 + 0.25)
    assert _scalar(result.state.hedge) == pytest.approx(10.0)
    assert _scalar(result.state.option) == pytest.approx(-0.25)
    assert _scalar(result.state.cash) == pytest.approx(cash, rel=1e-12)
    assert _scalar(result.hedge_pnl) == pytest.approx(hedge_pnl, rel=1e-12)
    assert _scalar(result.carry) == pytest.approx(carry1 + carry2, rel=1e-12)
    assert _scalar(result.cost) == pytest.approx(cost0 + unwind_cost, rel=1e-12)


def test_liquidate_adds_the_sale_and_its_cost_to_the_result() -> None:
    """A risk limit's sale at step 1: sell 30 shares at 102, buy 3 options at 6, pay the cost.

    Hand ledger: cost = 0.2 * 30 (step 1's linear coefficient; the option's is 0 there), cash
    + 30 * 102 - 3 * 6 - cost, and the P&L loses exactly the cost.
    """
    episode = ledger_episode("linear", False)
    state = HedgeState(np.array([30.0]), np.array([-3.0]), np.array([-1000.0]))
    zero = np.zeros(1)
    result = StepResult(state, zero, zero, zero, zero, zero, zero, np.array([1.5]),
                        np.array([7.0]))
    sold = liquidate(episode, 1, result, CoreConfig(), True)
    assert _scalar(sold.cost) == pytest.approx(1.5 + 6.0)
    assert _scalar(sold.pnl) == pytest.approx(7.0 - 6.0)
    assert _scalar(sold.state.cash) == pytest.approx(-1000.0 + 3060.0 - 18.0 - 6.0)
    assert _scalar(sold.state.hedge) == 0.0
    assert _scalar(sold.unfilled) == 0.0


def test_action_modes_closed_forms() -> None:
    """``target_position``'s four formulas (its docstring), evaluated by hand.

    notional 100, position_limit 1.5, option_position_limit 10, trade_limit 0.5.
    """
    config = CoreConfig(notional=100.0, position_limit=1.5, option_position_limit=10.0,
                        trade_limit=0.5, band_limit=0.5)
    assert target_position("target", 0.5, 10.0, 50.0, config, SCALAR_OPS) == 75.0
    assert target_position("target", 0.5, 10.0, 50.0, config, SCALAR_OPS, option=True) == 500.0
    assert target_position("trade", 0.5, 10.0, 50.0, config, SCALAR_OPS) == 35.0
    assert target_position("trade", -0.5, 10.0, 50.0, config, SCALAR_OPS) == -15.0
    assert target_position("fraction", 0.5, 10.0, 50.0, config, SCALAR_OPS) == 40.0
    assert target_position("band", 0.5, 10.0, 50.0, config, SCALAR_OPS) == 12.5  # [12.5, 87.5]
    assert target_position("band", 0.5, 95.0, 50.0, config, SCALAR_OPS) == 87.5


def test_terminal_mean_variance_reward_closed_form() -> None:
    """``x - done * kappa/2 (X - m)^2`` with x = 1, X = -4, m = 3, kappa = 0.5 (scale 1).

    Before the last decision the reward is x = 1; on it 1 - 0.25 * 49 = -11.25. ``terminal``
    pays X = -4 on the last decision and 0 before.
    """
    config = CoreConfig(reward_mode="terminal_mean_variance", risk_aversion=0.5,
                        pnl_reference=3.0)
    assert reward(config, 1.0, -4.0, False) == 1.0
    assert reward(config, 1.0, -4.0, True) == pytest.approx(-11.25)
    terminal = CoreConfig(reward_mode="terminal")
    assert reward(terminal, 1.0, -4.0, False) == 0.0
    assert reward(terminal, 1.0, -4.0, True) == -4.0
