from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hedgearena.envs.frictions import (
    COST_MODELS,
    CompositeCost,
    CostCoefficients,
    CostModel,
    FixedCost,
    LinearImpact,
    LotSize,
    OptionSpreadCost,
    ProportionalCost,
    SpreadCost,
    SquareRootImpact,
    cost_model_from_config,
)

MODELS: list[CostModel] = [
    ProportionalCost(2e-3),
    SpreadCost(5e-4),
    SpreadCost(0.02, relative=False),
    SpreadCost(5e-4, vol_sensitivity=2.0, reference_vol=0.25, floor=0.3),
    FixedCost(1.5),
    LinearImpact(eta=0.2, daily_volume=5e3),
    SquareRootImpact(coefficient=0.8, daily_volume=5e3),
    SquareRootImpact(coefficient=0.8, daily_volume=5e3, daily_vol=0.012),
    ProportionalCost(1e-3) + SpreadCost(5e-4, vol_sensitivity=1.0) + FixedCost(1.0)
    + LinearImpact(0.1, 1e4) + SquareRootImpact(0.5, 1e4),
]
IDS = [type(m).__name__ + str(i) for i, m in enumerate(MODELS)]

TRADE = np.array([-30.0, 0.0, 12.5, 400.0])
PRICE = np.array([100.0, 101.0, 99.0, 250.0])
VOL = np.array([0.2, 0.35, 0.1, 0.6])
LIQ = np.array([1.0, 2.0, 1.5, 3.0])


def cost(model: CostModel, trade=TRADE, price=PRICE, vol=VOL, liquidity=LIQ):
    return model.cost(trade, price, vol=vol, liquidity=liquidity)


# ---------------------------------------------------------------------- hand-computed values


def test_proportional_values() -> None:
    # 0.002 * |q| * S ; liquidity ignored: 0.002*30*100 = 6, 0.002*12.5*99 = 2.475, 0.002*400*250
    np.testing.assert_allclose(cost(ProportionalCost(2e-3)), [6.0, 0.0, 2.475, 200.0], rtol=1e-14)


def test_spread_values() -> None:
    # relative: 5e-4 * |q| * S * liq = 5e-4*30*100*1, 0, 5e-4*12.5*99*1.5, 5e-4*400*250*3
    np.testing.assert_allclose(
        cost(SpreadCost(5e-4)), [1.5, 0.0, 0.9281250, 150.0], rtol=1e-14
    )
    # absolute: 0.02 per unit * |q| * liq = 0.6, 0, 0.375, 24
    np.testing.assert_allclose(
        cost(SpreadCost(0.02, relative=False)), [0.6, 0.0, 0.375, 24.0], rtol=1e-14
    )


def test_spread_widens_with_vol() -> None:
    model = SpreadCost(5e-4, vol_sensitivity=2.0, reference_vol=0.25, floor=0.3)
    # m = max(1 + 2 (vol/0.25 - 1), 0.3): vol 0.2 -> 0.6, 0.35 -> 1.8, 0.1 -> -0.2 -> 0.3,
    # 0.6 -> 3.8
    np.testing.assert_allclose(model.multiplier(VOL), [0.6, 1.8, 0.3, 3.8], rtol=1e-14)
    # cost = 5e-4 * m * |q| * S * liq: 5e-4*0.6*3000*1 = 0.9, 0, 5e-4*0.3*1237.5*1.5 = 0.2784375,
    # 5e-4*3.8*1e5*3 = 570
    np.testing.assert_allclose(cost(model), [0.9, 0.0, 0.2784375, 570.0], rtol=1e-13)
    assert model.multiplier(0.25) == 1.0
    assert model.multiplier(0.0) == 0.3
    assert SpreadCost(5e-4).multiplier(None) == 1.0


def test_fixed_values() -> None:
    np.testing.assert_array_equal(cost(FixedCost(1.5)), [1.5, 0.0, 1.5, 1.5])
    tiny = np.array([1e-300, -1e-300, 0.0, -0.0])
    np.testing.assert_array_equal(FixedCost(2.0).cost(tiny, 10.0), [2.0, 2.0, 0.0, 0.0])


def test_linear_impact_values() -> None:
    # 0.2 * S * q^2 / 5000 * liq: 0.2*100*900/5000 = 3.6, 0, 0.2*99*156.25/5000*1.5 = 0.928125,
    # 0.2*250*160000/5000*3 = 4800
    model = LinearImpact(eta=0.2, daily_volume=5e3)
    np.testing.assert_allclose(cost(model), [3.6, 0.0, 0.928125, 4800.0], rtol=1e-14)
    # the fill moves by eta*S*|q|/ADV = 0.2*100*30/5000 = 0.12 per unit, on 30 units
    assert cost(model)[0] == pytest.approx(0.12 * 30)


def test_square_root_impact_values() -> None:
    fixed = SquareRootImpact(coefficient=0.8, daily_volume=5e3, daily_vol=0.012)
    # 0.8 * 0.012 * S * |q| * sqrt(|q| / 5000) * liq
    expected = [
        0.8 * 0.012 * 100 * 30 * math.sqrt(30 / 5e3) * 1.0,
        0.0,
        0.8 * 0.012 * 99 * 12.5 * math.sqrt(12.5 / 5e3) * 1.5,
        0.8 * 0.012 * 250 * 400 * math.sqrt(400 / 5e3) * 3.0,
    ]
    np.testing.assert_allclose(cost(fixed), expected, rtol=1e-13)
    assert expected[0] == pytest.approx(2.2308384)  # 28.8 * sqrt(0.006) = 28.8 * 0.07745967
    from_vol = SquareRootImpact(coefficient=0.8, daily_volume=5e3)
    sigma = VOL / math.sqrt(252)  # 0.2 -> 0.012599
    np.testing.assert_allclose(
        cost(from_vol), 0.8 * sigma * PRICE * np.abs(TRADE) ** 1.5 / math.sqrt(5e3) * LIQ,
        rtol=1e-13,
    )


def test_composite_sums() -> None:
    parts = [ProportionalCost(1e-3), SpreadCost(5e-4, vol_sensitivity=1.0), FixedCost(1.0),
             LinearImpact(0.1, 1e4), SquareRootImpact(0.5, 1e4)]
    total = parts[0] + parts[1] + parts[2] + parts[3] + parts[4]
    assert isinstance(total, CompositeCost)
    assert total.components == tuple(parts)  # flattened, in order
    assert sum(parts) == total
    np.testing.assert_allclose(cost(total), sum(cost(p) for p in parts), rtol=1e-14)
    assert (parts[0] + parts[1]) + (parts[2] + parts[3]) == CompositeCost(tuple(parts[:4]))
    np.testing.assert_array_equal(cost(CompositeCost()), np.zeros(4))


def test_coefficients_are_the_cost_polynomial() -> None:
    model = MODELS[-1]
    c = model.coefficients(PRICE, vol=VOL, liquidity=LIQ)
    q = TRADE
    by_hand = (c.linear * abs(q) + c.quadratic * q**2 + c.three_halves * abs(q) ** 1.5
               + c.fixed * (q != 0))
    np.testing.assert_allclose(cost(model), by_hand, rtol=1e-14)
    assert c.fixed == 1.0
    np.testing.assert_allclose(c.quadratic, 0.1 * PRICE / 1e4 * LIQ, rtol=1e-14)


def test_liquidity_scales_spread_and_impact_not_fees() -> None:
    q, s, v = np.array([50.0]), np.array([80.0]), np.array([0.3])
    for model, scales in [
        (ProportionalCost(1e-3), False), (FixedCost(1.0), False), (SpreadCost(1e-3), True),
        (LinearImpact(0.1, 1e3), True), (SquareRootImpact(0.5, 1e3), True),
    ]:
        one = model.cost(q, s, vol=v)
        three = model.cost(q, s, vol=v, liquidity=np.array([3.0]))
        np.testing.assert_allclose(three, 3 * one if scales else one, rtol=1e-14)


def test_scalar_price_and_broadcasting() -> None:
    trade = np.array([[1.0, -2.0, 0.0]])
    price = np.array([[100.0], [200.0]])
    out = (ProportionalCost(0.01) + FixedCost(0.5)).cost(trade, price)
    np.testing.assert_allclose(out, [[1.5, 2.5, 0.0], [2.5, 4.5, 0.0]])
    assert CompositeCost().cost(trade, price).shape == (2, 3)
    assert SpreadCost(0.02, relative=False).cost(trade, price).shape == (2, 3)
    assert FixedCost(1.0).cost(trade, price).shape == (2, 3)
    assert SpreadCost(1e-3, vol_sensitivity=1.0).cost(trade, 100.0, vol=0.4).shape == (1, 3)


# --------------------------------------------------------------------------------- properties

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False)


@pytest.mark.parametrize("model", MODELS, ids=IDS)
@settings(max_examples=60, deadline=None)
@given(
    trade=arrays(np.float64, 16, elements=finite),
    price=arrays(np.float64, 16, elements=st.floats(1e-3, 1e5)),
    vol=arrays(np.float64, 16, elements=st.floats(1e-3, 3.0)),
    liquidity=arrays(np.float64, 16, elements=st.floats(0.0, 10.0)),
)
def test_nonnegative_and_zero_for_zero_trades(model, trade, price, vol, liquidity) -> None:
    trade[::3] = 0.0
    out = model.cost(trade, price, vol=vol, liquidity=liquidity)
    assert out.shape == trade.shape
    assert np.all(np.isfinite(out))
    assert np.all(out >= 0)
    assert np.all(out[trade == 0] == 0)


@pytest.mark.parametrize("model", MODELS, ids=IDS)
@settings(max_examples=30, deadline=None)
@given(trade=arrays(np.float64, 8, elements=finite))
def test_symmetric_in_the_sign_of_the_trade(model, trade) -> None:
    np.testing.assert_array_equal(cost(model, trade, 50.0, 0.3, 1.0),
                                  cost(model, -trade, 50.0, 0.3, 1.0))


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_nondecreasing_in_trade_size(model) -> None:
    sizes = np.linspace(0.0, 1e4, 101)
    out = cost(model, sizes, 100.0, 0.3, 1.0)
    assert np.all(np.diff(out) >= 0)
    assert out[-1] > 0


# ---------------------------------------------------------------------------------- torch


def uses_vol(model: CostModel) -> bool:
    parts = model.components if isinstance(model, CompositeCost) else (model,)
    return any(
        (isinstance(p, SpreadCost) and p.vol_sensitivity > 0)
        or (isinstance(p, SquareRootImpact) and p.daily_vol is None)
        for p in parts
    )


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_torch_matches_numpy_and_has_gradients(model) -> None:
    expected = cost(model)
    trade = torch.tensor(TRADE, requires_grad=True)
    price, vol, liq = (torch.tensor(a, requires_grad=True) for a in (PRICE, VOL, LIQ))
    out = model.cost(trade, price, vol=vol, liquidity=liq)
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-12)
    out.sum().backward()
    for tensor in (trade, price):
        assert tensor.grad is not None
    for tensor in (trade, price, vol, liq):  # vol or liquidity may be unused by the model
        assert tensor.grad is None or torch.isfinite(tensor.grad).all()
    if uses_vol(model):
        assert vol.grad is not None
        assert (vol.grad[TRADE != 0] != 0).any()
    # d cost / d q at q = 0 is 0 (the kink of |q|; |q|^1.5 has no NaN gradient)
    assert trade.grad[1] == 0


def test_torch_gradient_values() -> None:
    trade = torch.tensor([10.0, -10.0], dtype=torch.float64, requires_grad=True)
    price = torch.tensor([100.0, 100.0], dtype=torch.float64)
    (ProportionalCost(0.01) + LinearImpact(0.5, 1e3)).cost(trade, price).sum().backward()
    # d/dq [0.01 * 100 |q| + 0.5 * 100 q^2 / 1000] = sign(q) * (1 + 0.1 q) -> +2, -2
    np.testing.assert_allclose(trade.grad.numpy(), [2.0, -2.0], rtol=1e-14)


def test_torch_float32_stays_float32() -> None:
    trade = torch.tensor([1.0, 0.0, -2.0])
    out = MODELS[-1].cost(trade, torch.tensor(100.0), vol=torch.tensor(0.2))
    assert out.dtype == torch.float32


# ------------------------------------------------------------------------------- options


def test_option_spread_vol_points() -> None:
    model = OptionSpreadCost(vol_points=0.005)
    trade = np.array([-10.0, 0.0, 4.0])
    vega = np.array([20.0, 30.0, 8.0])
    # |q| * vega * 0.005 * liq: 10*20*0.005 = 1, 0, 4*8*0.005*2 = 0.32
    out = model.cost(trade, np.array([4.0, 5.0, 1.0]), vega=vega, liquidity=np.array([1, 1, 2.0]))
    np.testing.assert_allclose(out, [1.0, 0.0, 0.32], rtol=1e-14)
    with pytest.raises(ValueError, match="OptionSpreadCost with vol_points needs the vega"):
        model.cost(trade, 4.0)


def test_option_spread_relative_and_minimum() -> None:
    model = OptionSpreadCost(relative=0.02, minimum=0.05)
    # half-spread per unit max(0.02 * V, 0.05): V=1 -> 0.05, V=10 -> 0.2, V=0.1 -> 0.05
    np.testing.assert_allclose(model.half_spread(np.array([1.0, 10.0, 0.1])), [0.05, 0.2, 0.05])
    out = model.cost(np.array([10.0, -10.0, 0.0]), np.array([1.0, 10.0, 0.1]))
    np.testing.assert_allclose(out, [0.5, 2.0, 0.0], rtol=1e-14)
    vega_model = OptionSpreadCost(vol_points=0.01, minimum=0.1)
    np.testing.assert_allclose(  # max(vega * 0.01, 0.1) * |q| = max(5, 0.1)*2, max(0.02, 0.1)*3
        vega_model.cost(np.array([2.0, 3.0]), 7.0, vega=np.array([500.0, 2.0])), [10.0, 0.3]
    )


def test_option_spread_torch() -> None:
    trade = torch.tensor([-10.0, 0.0, 4.0], dtype=torch.float64, requires_grad=True)
    vega = torch.tensor([20.0, 30.0, 8.0], dtype=torch.float64, requires_grad=True)
    out = OptionSpreadCost(vol_points=0.005).cost(trade, torch.tensor(4.0), vega=vega)
    np.testing.assert_allclose(out.detach().numpy(), [1.0, 0.0, 0.16], rtol=1e-14)
    out.sum().backward()
    np.testing.assert_allclose(vega.grad.numpy(), [0.05, 0.0, 0.02], rtol=1e-14)


# --------------------------------------------------------------------------------- lot size


def test_lot_size_rounds_to_nearest_with_ties_to_even() -> None:
    lot = LotSize(100.0)
    trades = np.array([149.0, 151.0, -260.0, 50.0, 150.0, 250.0, -150.0, 0.0])
    np.testing.assert_array_equal(
        lot.round_trade(trades), [100.0, 200.0, -300.0, 0.0, 200.0, 200.0, -200.0, 0.0]
    )
    out = lot.round_trade(torch.tensor(trades))
    np.testing.assert_array_equal(out.numpy(), lot.round_trade(trades))
    np.testing.assert_allclose(LotSize(0.1).round_trade(np.array([0.26])), [0.3])


# ------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ProportionalCost(-0.1), r"ProportionalCost.rate must be a number in \[0.0, 1.0\)"),
        (lambda: ProportionalCost(1.0), r"rate must be a number in \[0.0, 1.0\), got 1.0"),
        (lambda: ProportionalCost(float("nan")), r"rate must be a number .* got nan"),
        (lambda: ProportionalCost("0.1"), r"rate must be a number .* got '0.1'"),
        (lambda: ProportionalCost(True), r"rate must be a number .* got True"),
        (lambda: SpreadCost(-1e-4), r"SpreadCost.half_spread must be a number in \[0.0, 1.0\)"),
        (lambda: SpreadCost(2.0, relative=False, floor=1.5), r"SpreadCost.floor .* \[0.0, 1.0\]"),
        (lambda: SpreadCost(1e-3, reference_vol=0.0), r"reference_vol .* \[0.0001, inf\), got 0.0"),
        (lambda: SpreadCost(1e-3, vol_sensitivity=-1), r"vol_sensitivity .* got -1"),
        (lambda: FixedCost(-1.0), r"FixedCost.ticket must be a number in \[0.0, 1000000000000000"),
        (lambda: LinearImpact(0.1, 0.0), r"LinearImpact.daily_volume .* \[1e-06, inf\), got 0.0"),
        (lambda: LinearImpact(-0.1, 1e3), r"LinearImpact.eta .* got -0.1"),
        # fees and coefficients large enough to overflow the rewards' squares into inf
        (lambda: FixedCost(1e308), r"ticket must be .* 1000000000000000.0\], got 1e\+308"),
        (lambda: SpreadCost(1e16, relative=False), r"half_spread .* \[0.0, 1000000000000000.0\]"),
        (lambda: LinearImpact(1e7, 1e3), r"LinearImpact.eta .* \[0.0, 1000000.0\]"),
        (lambda: SquareRootImpact(1e7, 1e3), r"coefficient .* \[0.0, 1000000.0\]"),
        (lambda: SpreadCost(1e-3, vol_sensitivity=1e7), r"vol_sensitivity .* 1000000.0\]"),
        (lambda: SquareRootImpact(-1.0, 1e3), r"SquareRootImpact.coefficient .* got -1.0"),
        (lambda: SquareRootImpact(1.0, 1e3, daily_vol=0.0), r"daily_vol .* \(0.0, 1.0\]"),
        (lambda: LotSize(0.0), r"LotSize.lot must be a number in \(0.0, inf\), got 0.0"),
        (lambda: OptionSpreadCost(), r"exactly one of vol_points and relative, got vol_points=No"),
        (lambda: OptionSpreadCost(vol_points=0.01, relative=0.01), r"exactly one of"),
        (lambda: OptionSpreadCost(vol_points=2.0), r"vol_points must be a number in \[0.0, 1.0\]"),
        (lambda: OptionSpreadCost(relative=0.01, minimum=-1.0), r"minimum .* got -1.0"),
        (lambda: CompositeCost((ProportionalCost(0.1), 0.1)), r"must be CostModel instances"),
    ],
)
def test_validation_errors(build, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_missing_vol_errors() -> None:
    with pytest.raises(ValueError, match="SpreadCost with vol_sensitivity > 0 needs the vol"):
        SpreadCost(1e-3, vol_sensitivity=1.0).cost(TRADE, PRICE)
    with pytest.raises(ValueError, match="SquareRootImpact without daily_vol needs the vol"):
        SquareRootImpact(1.0, 1e3).cost(TRADE, PRICE)


def test_adding_a_non_model_fails() -> None:
    with pytest.raises(TypeError):
        ProportionalCost(0.1) + 0.1


# --------------------------------------------------------------------------------- factory


def test_config_factory() -> None:
    model = cost_model_from_config({"proportional": 0.01, "spread": {"half_spread": 5e-4}})
    assert model == ProportionalCost(0.01) + SpreadCost(5e-4)
    assert cost_model_from_config({"fixed": 2.0}) == FixedCost(2.0)
    full = cost_model_from_config({
        "linear_impact": {"eta": 0.1, "daily_volume": 1e4},
        "sqrt_impact": {"coefficient": 0.5, "daily_volume": 1e4, "daily_vol": 0.01},
    })
    assert full == LinearImpact(0.1, 1e4) + SquareRootImpact(0.5, 1e4, 0.01)
    assert cost_model_from_config({}) == CompositeCost()
    assert set(COST_MODELS) == {"proportional", "spread", "fixed", "linear_impact", "sqrt_impact"}


def test_config_factory_errors() -> None:
    known = r"known: \['fixed', 'linear_impact', 'proportional', 'spread', 'sqrt_impact'\]"
    with pytest.raises(ValueError, match=r"unknown cost model 'commission'; " + known):
        cost_model_from_config({"commission": 0.01})
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['width'\]; SpreadCost takes"):
        cost_model_from_config({"spread": {"width": 0.01}})
    with pytest.raises(ValueError, match=r"linear_impact: .*daily_volume.*; LinearImpact takes"):
        cost_model_from_config({"linear_impact": {"eta": 0.1}})
    with pytest.raises(ValueError, match=r"ProportionalCost.rate must be .* got 2.0"):
        cost_model_from_config({"proportional": 2.0})


def test_coefficients_add() -> None:
    a = CostCoefficients(linear=1.0, fixed=2.0)
    b = CostCoefficients(quadratic=3.0, three_halves=4.0, fixed=0.5)
    assert a + b == CostCoefficients(1.0, 3.0, 4.0, 2.5)
    # 1*2 + 3*4 + 4*2^1.5 + 2.5 = 16.5 + 8*sqrt(2)
    np.testing.assert_allclose((a + b).cost(np.array([-2.0])), [16.5 + 8 * math.sqrt(2)])
