"""Frictions and execution formulas against hand computations (tests found by mutation testing).

Every expected number is written out from the documented formula, not from the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hedgearena.envs.execution import child_order
from hedgearena.envs.frictions import (
    FixedCost,
    OptionSpreadCost,
    ProportionalCost,
    SpreadCost,
    round_to_lot,
)


def test_lot_rounding_of_a_tensor_is_straight_through() -> None:
    """Value rounded to whole lots, gradient the identity's (Bengio, Leonard and Courville 2013,
    "Estimating or propagating gradients through stochastic neurons", arXiv:1308.3432).

    Lots of 100: 149 -> 100, -260 -> -300, 40 -> 0; d(sum of 2 x executed) / d trade = 2.
    """
    trade = torch.tensor([149.0, -260.0, 40.0], dtype=torch.float64, requires_grad=True)
    executed = round_to_lot(trade, 100.0)
    np.testing.assert_array_equal(executed.detach().numpy(), [100.0, -300.0, 0.0])
    (2.0 * executed).sum().backward()
    assert trade.grad is not None
    np.testing.assert_array_equal(trade.grad.numpy(), [2.0, 2.0, 2.0])


@pytest.mark.parametrize(
    "build", [lambda: FixedCost(True), lambda: ProportionalCost(False),
              lambda: SpreadCost(False)],
)
def test_a_bool_is_not_a_cost_parameter_even_when_its_value_is_in_range(build) -> None:
    """``True``/``False`` (1 and 0 as numbers, inside every range here) are refused by type."""
    with pytest.raises(ValueError, match=r"must be a number in .* got (True|False)"):
        build()


@pytest.mark.parametrize("start", [1, 5, -3])
def test_only_zero_starts_a_sum_of_cost_models(start: int) -> None:
    """``sum(models)`` starts from the int 0; any other number plus a model is a TypeError."""
    with pytest.raises(TypeError):
        start + ProportionalCost(0.1)
    assert 0 + ProportionalCost(0.1) == ProportionalCost(0.1)


def test_option_half_spread_has_the_prices_shape() -> None:
    """One half-spread per option priced: ``vega * vol_points`` = 20 * 0.01 = 0.2 for each of
    three prices given one (scalar) vega."""
    half = OptionSpreadCost(vol_points=0.01).half_spread(np.array([3.0, 4.0, 5.0]), vega=20.0)
    assert isinstance(half, np.ndarray)
    np.testing.assert_allclose(half, [0.2, 0.2, 0.2], rtol=1e-15)
    assert half.shape == (3,)


def test_option_spread_costs_the_size_of_a_signed_vega_or_price() -> None:
    """The half-spread is ``|vega| * vol_points`` or ``relative * |V|``, so the cost is >= 0 as
    documented: 10 options at vega -20 and 1 vol point cost 10 * 20 * 0.01 = 2; at a mark of
    -5 and 2% relative, 10 * 0.1 = 1."""
    by_vega = OptionSpreadCost(vol_points=0.01).cost(np.array([10.0]), 4.0,
                                                     vega=np.array([-20.0]))
    np.testing.assert_allclose(by_vega, [2.0], rtol=1e-15)
    relative = OptionSpreadCost(relative=0.02).cost(np.array([-10.0]), np.array([-5.0]))
    np.testing.assert_allclose(relative, [1.0], rtol=1e-15)


def test_immediate_child_is_what_remains_of_the_parent() -> None:
    """``immediate`` sends the part of the parent order not executed yet (30 of 40 left: 30)."""
    assert child_order("immediate", 30.0, 40.0, 4, None) == 30.0
    np.testing.assert_array_equal(
        child_order("immediate", np.array([-5.0, 0.0]), np.array([-20.0, 7.0]), 2, None),
        [-5.0, 0.0],
    )


def test_participation_clips_tensor_children_on_both_sides() -> None:
    """At most ``cap`` units a step either way: sells of 30 and buys of 30 with a cap of 25 send
    -25 and 25, a child of 10 goes whole (the deep-hedging trainer's torch path)."""
    remaining = torch.tensor([-30.0, 30.0, 10.0], dtype=torch.float64)
    cap = torch.tensor([25.0, 25.0, 25.0], dtype=torch.float64)
    child = child_order("participation", remaining, remaining, 4, cap)
    np.testing.assert_array_equal(child.numpy(), [-25.0, 25.0, 10.0])


def test_average_price_factor_on_arrays_is_the_mean_of_the_price_along_the_move() -> None:
    """``(1/x) int_0^x e^y dy`` per start price, and 1 where the move is 0 (no trade, no move):
    against a midpoint rule on 20,000 points (error ~ x^2 / (24 n^2))."""
    from hedgearena.envs.execution import average_price_factor

    moves = np.array([0.0, 0.01, -0.01, 0.3, 0.0])
    grid = (np.arange(20_000) + 0.5) / 20_000
    want = [1.0 if x == 0 else float(np.mean(np.exp(x * grid))) for x in moves]
    np.testing.assert_allclose(average_price_factor(moves), want, rtol=1e-10)
